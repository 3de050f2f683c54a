/*
 * Kubernetes target names, kubectl argv, and the Kubernetes JSON both
 * transports read (Pod, PodList, workload selectors) through jansson.
 * Nothing here runs a process: the names a client sends are checked
 * before any of them reaches an argv, and the argv is a plain array (no
 * shell).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "kube/kube-json.h"
#include "kube/kube.h"
#include "base/strv.h"

#define KUBE_TARGET_MAX 600
#define KUBE_ARGV_MAX 64

static const char kube_rules[] = "Kubernetes names are lowercase letters, digits and '-' "
    "(and '.' in pod names), starting and ending with a letter or digit";

/* Whether s is a DNS-1123 label. */
bool
kube_label_ok(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		if (n >= KUBE_LABEL_MAX ||
		    strchr("abcdefghijklmnopqrstuvwxyz0123456789-", s[n]) == NULL)
			return false;
	}
	return n > 0 && s[0] != '-' && s[n - 1] != '-';
}

/* Whether s is a DNS-1123 subdomain: labels joined by '.'. */
bool
kube_subdomain_ok(const char *s)
{
	char label[KUBE_LABEL_MAX + 1];
	size_t len = strnlen(s, KUBE_NAME_MAX + 1), i, start = 0;

	if (len == 0 || len > KUBE_NAME_MAX)
		return false;
	for (i = 0; i <= len; i++) {
		if (s[i] != '.' && s[i] != '\0')
			continue;
		if (i - start == 0 || i - start > KUBE_LABEL_MAX)
			return false;
		memcpy(label, s + start, i - start);
		label[i - start] = '\0';
		if (!kube_label_ok(label))
			return false;
		start = i + 1;
	}
	return true;
}

/* Copy s for a message: at most 64 bytes, anything unprintable as '?'. */
static void
kube_shown(const char *s, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < outlen && i < 64; i++)
		out[i] = (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
	if (outlen > 0)
		out[i] = '\0';
}

static int kube_fail(char *err, size_t errlen, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Write "invalid target 'NAME': REASON" to err and return -EINVAL. */
static int
kube_fail(char *err, size_t errlen, const char *name, const char *fmt, ...)
{
	char shown[80], why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	kube_shown(name, shown, sizeof shown);
	snprintf(err, errlen, "invalid target '%s': %s", shown, why);
	return -EINVAL;
}

/* Check one part of a target name: a label, or a subdomain when sub. */
static int
kube_part(const char *name, const char *part, const char *what, bool sub, char *dst,
    size_t dstlen, char *err, size_t errlen)
{
	char shown[80];

	if (*part == '\0')
		return kube_fail(err, errlen, name, "the %s is empty", what);
	if (!(sub ? kube_subdomain_ok(part) : kube_label_ok(part))) {
		kube_shown(part, shown, sizeof shown);
		return kube_fail(err, errlen, name, "%s '%s' is not a valid name: %s", what,
		    shown, kube_rules);
	}
	if (strlen(part) >= dstlen)
		return kube_fail(err, errlen, name, "the %s is too long", what);
	strcpy(dst, part);
	return 0;
}

/* Parse [CLUSTER:]NAMESPACE/POD[/CONTAINER] or NAMESPACE/deploy|sts/NAME[/CONTAINER]. */
int
kube_target_parse(const struct config *c, const char *name, struct kube_target *t,
    char *err, size_t errlen)
{
	char buf[KUBE_TARGET_MAX + 1], *parts[5], *rest, *colon, *p;
	const char *cluster = NULL;
	size_t len, i, nparts = 0;
	int r;

	memset(t, 0, sizeof *t);
	if (errlen > 0)
		*err = '\0';
	if (name == NULL || *name == '\0') {
		snprintf(err, errlen, "empty target name");
		return -EINVAL;
	}
	len = strnlen(name, KUBE_TARGET_MAX + 1);
	if (len > KUBE_TARGET_MAX)
		return kube_fail(err, errlen, name, "the name is too long");
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch >= 0x80)
			return kube_fail(err, errlen, name, "only ASCII is allowed");
		if (ch <= 0x20 || ch == 0x7f)
			return kube_fail(err, errlen, name, "blanks and control characters "
			    "are not allowed");
		if (strchr("abcdefghijklmnopqrstuvwxyz0123456789-.:/", ch) == NULL)
			return kube_fail(err, errlen, name, "'%c' is not allowed: %s", ch,
			    kube_rules);
	}
	memcpy(buf, name, len + 1);
	rest = buf;
	if ((colon = strchr(buf, ':')) != NULL) {
		*colon = '\0';
		if (strchr(colon + 1, ':') != NULL)
			return kube_fail(err, errlen, name, "more than one ':'");
		if (*buf == '\0')
			return kube_fail(err, errlen, name, "the cluster is empty");
		if (!kube_label_ok(buf))
			return kube_fail(err, errlen, name, "cluster '%s' is not a valid name", buf);
		cluster = buf;
		rest = colon + 1;
	}
	for (p = rest; nparts < 5; ) {
		parts[nparts++] = p;
		if ((p = strchr(p, '/')) == NULL)
			break;
		*p++ = '\0';
	}
	if (p != NULL || nparts < 2)
		return kube_fail(err, errlen, name, "the syntax is [CLUSTER:]NAMESPACE/POD"
		    "[/CONTAINER] or NAMESPACE/deploy/NAME");
	if ((r = kube_part(name, parts[0], "namespace", false, t->ns, sizeof t->ns, err,
	    errlen)) < 0)
		return r;
	if (nparts >= 3 && (strcmp(parts[1], "deploy") == 0 ||
	    strcmp(parts[1], "deployment") == 0 || strcmp(parts[1], "sts") == 0 ||
	    strcmp(parts[1], "statefulset") == 0)) {
		t->kind = parts[1][0] == 'd' ? KUBE_DEPLOY : KUBE_STS;
		if ((r = kube_part(name, parts[2], t->kind == KUBE_DEPLOY ? "deployment" :
		    "statefulset", true, t->name, sizeof t->name, err, errlen)) < 0)
			return r;
		if (nparts == 4 && (r = kube_part(name, parts[3], "container", false,
		    t->container, sizeof t->container, err, errlen)) < 0)
			return r;
		if (nparts > 4)
			return kube_fail(err, errlen, name, "too many '/'");
	} else {
		if (nparts > 3)
			return kube_fail(err, errlen, name, "too many '/'");
		if ((r = kube_part(name, parts[1], "pod", true, t->name, sizeof t->name, err,
		    errlen)) < 0)
			return r;
		if (nparts == 3 && (r = kube_part(name, parts[2], "container", false,
		    t->container, sizeof t->container, err, errlen)) < 0)
			return r;
	}
	if (c == NULL || c->nkube == 0) {
		snprintf(err, errlen, "no Kubernetes clusters are configured");
		return -ENOENT;
	}
	t->cluster = &c->kube[0];
	if (cluster != NULL) {
		t->cluster = NULL;
		for (i = 0; i < c->nkube; i++) {
			if (strcmp(c->kube[i].name, cluster) == 0)
				t->cluster = &c->kube[i];
		}
		if (t->cluster == NULL) {
			snprintf(err, errlen, "no such cluster '%s'", cluster);
			return -ENOENT;
		}
	}
	snprintf(t->canonical, sizeof t->canonical, "%s:%s/%s%s%s%s", t->cluster->name, t->ns,
	    t->kind == KUBE_DEPLOY ? "deploy/" : t->kind == KUBE_STS ? "sts/" : "", t->name,
	    t->container[0] != '\0' ? "/" : "", t->container);
	return 0;
}

/* An argv under construction. */
struct kube_argv {
	char **v;
	size_t n, max;
	bool oom;
};

/* Append a copy of s to a. */
static void
kube_push(struct kube_argv *a, const char *s)
{
	char **nv;

	if (a->oom)
		return;
	if (a->n + 2 > a->max) {
		a->max = a->max == 0 ? 32 : a->max * 2;
		if ((nv = realloc(a->v, a->max * sizeof *nv)) == NULL) {
			a->oom = true;
			return;
		}
		a->v = nv;
	}
	if ((a->v[a->n] = strdup(s)) == NULL) {
		a->oom = true;
		return;
	}
	a->v[++a->n] = NULL;
}

/* kubectl and its cluster flags. */
static void
kube_push_common(struct kube_argv *a, const struct kube_exec *e)
{
	kube_push(a, e->kubectl != NULL ? e->kubectl : "kubectl");
	if (e->kubeconfig != NULL) {
		kube_push(a, "--kubeconfig");
		kube_push(a, e->kubeconfig);
	}
	if (e->context != NULL) {
		kube_push(a, "--context");
		kube_push(a, e->context);
	}
}

/* --as USER and --as-group G... */
static void
kube_push_as(struct kube_argv *a, const struct kube_exec *e)
{
	size_t i;

	if (e->as_user == NULL)
		return;
	kube_push(a, "--as");
	kube_push(a, e->as_user);
	for (i = 0; i < e->nas_groups; i++) {
		kube_push(a, "--as-group");
		kube_push(a, e->as_groups[i]);
	}
}

/* Hand the argv over, or free it on failure. */
static int
kube_argv_done(struct kube_argv *a, char ***out)
{
	if (a->oom || a->v == NULL) {
		kube_free_argv(a->v);
		return -ENOMEM;
	}
	*out = a->v;
	return 0;
}

/* Build the kubectl exec argv. */
int
kube_exec_argv(const struct kube_exec *e, char ***out)
{
	struct kube_argv a = { NULL, 0, 0, false };
	size_t i;

	*out = NULL;
	if (e->command == NULL || e->command[0] == NULL)
		return -EINVAL;
	kube_push_common(&a, e);
	kube_push(&a, "exec");
	kube_push(&a, "-i");
	if (e->tty)
		kube_push(&a, "-t");
	kube_push(&a, "-n");
	kube_push(&a, e->ns);
	kube_push(&a, e->pod);
	if (e->container != NULL && *e->container != '\0') {
		kube_push(&a, "-c");
		kube_push(&a, e->container);
	}
	kube_push_as(&a, e);
	kube_push(&a, "--");
	for (i = 0; e->command[i] != NULL; i++)
		kube_push(&a, e->command[i]);
	return kube_argv_done(&a, out);
}

/* Build a kubectl get argv. */
int
kube_get_argv(const struct kube_exec *e, const char *resource, const char *name,
    unsigned timeout, char *const *extra, char ***out)
{
	struct kube_argv a = { NULL, 0, 0, false };
	char buf[64];
	size_t i;

	*out = NULL;
	kube_push_common(&a, e);
	kube_push(&a, "get");
	kube_push(&a, resource);
	if (name != NULL)
		kube_push(&a, name);
	if (e->ns != NULL) {
		kube_push(&a, "-n");
		kube_push(&a, e->ns);
	}
	kube_push(&a, "-o");
	kube_push(&a, "json");
	snprintf(buf, sizeof buf, "--request-timeout=%us", timeout);
	kube_push(&a, buf);
	kube_push_as(&a, e);
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		kube_push(&a, extra[i]);
	return kube_argv_done(&a, out);
}

/* Free an argv from kube_exec_argv or kube_get_argv. */
void
kube_free_argv(char **argv)
{
	char **p;

	if (argv == NULL)
		return;
	for (p = argv; *p != NULL; p++)
		free(*p);
	free(argv);
}

/* ---- JSON through jansson ---- */

/* kubectl's answers: a list of every pod of a namespace may be large. */
#define KUBECTL_JSON_MAX (32u * 1024 * 1024)

/* Follow a path of keys ("metadata", "name", NULL). */
static json_t *
kube_json_path(json_t *n, const char *const *keys)
{
	for (; n != NULL && *keys != NULL; keys++)
		n = json_object_get(n, *keys);
	return n;
}

/* The string of a node, or NULL. */
static const char *
kube_json_str(json_t *n)
{
	return json_is_string(n) ? json_string_value(n) : NULL;
}

/* Copy the string at a path, or def (NULL: none). */
static int
kube_json_copy(json_t *n, const char *const *keys, const char *def, char **out)
{
	const char *v = kube_json_str(kube_json_path(n, keys));

	*out = NULL;
	if (v == NULL)
		v = def;
	if (v == NULL)
		return 0;
	return (*out = strdup(v)) == NULL ? -ENOMEM : 0;
}

/* Fill pod from the Pod object n. */
static int
kube_pod_fill(json_t *n, struct kube_pod *pod)
{
	static const char *const k_name[] = { "metadata", "name", NULL };
	static const char *const k_ns[] = { "metadata", "namespace", NULL };
	static const char *const k_phase[] = { "status", "phase", NULL };
	static const char *const k_created[] = { "metadata", "creationTimestamp", NULL };
	static const char *const k_deleted[] = { "metadata", "deletionTimestamp", NULL };
	static const char *const k_ann[] = { "metadata", "annotations",
	    "kubectl.kubernetes.io/default-container", NULL };
	static const char *const k_containers[] = { "spec", "containers", NULL };
	static const char *const k_statuses[] = { "status", "containerStatuses", NULL };
	static const char *const k_waiting[] = { "state", "waiting", "reason", NULL };
	json_t *list, *item, *del;
	const char *v;
	size_t n_c = 0, i;
	int r;

	if (!json_is_object(n))
		return -EINVAL;
	if ((r = kube_json_copy(n, k_name, NULL, &pod->name)) < 0 ||
	    (r = kube_json_copy(n, k_ns, "", &pod->ns)) < 0 ||
	    (r = kube_json_copy(n, k_phase, "Unknown", &pod->phase)) < 0 ||
	    (r = kube_json_copy(n, k_ann, NULL, &pod->default_container)) < 0)
		return r;
	if (pod->name == NULL)
		return -EINVAL;
	pod->created = kube_json_time(kube_json_str(kube_json_path(n, k_created)));
	del = kube_json_path(n, k_deleted);
	pod->deleting = del != NULL && !json_is_null(del);
	list = kube_json_path(n, k_containers);
	if (json_is_array(list))
		n_c = json_array_size(list);
	if ((pod->containers = calloc(n_c + 1, sizeof *pod->containers)) == NULL)
		return -ENOMEM;
	n_c = 0;
	json_array_foreach(list, i, item) {
		if ((v = kube_json_str(json_object_get(item, "name"))) == NULL)
			continue;
		if ((pod->containers[n_c++] = strdup(v)) == NULL)
			return -ENOMEM;
	}
	v = pod->deleting ? "Terminating" : pod->phase;
	list = kube_json_path(n, k_statuses);
	if (!pod->deleting) {
		json_array_foreach(list, i, item) {
			const char *w = kube_json_str(kube_json_path(item, k_waiting));

			if (w != NULL) {
				v = w;
				break;
			}
		}
	}
	return (pod->status = strdup(v)) == NULL ? -ENOMEM : 0;
}

/* Read one Pod object. */
int
kube_pod_parse(const char *json, size_t len, struct kube_pod *pod)
{
	json_t *root;
	int r;

	memset(pod, 0, sizeof *pod);
	if ((root = kube_json_object(json, len, KUBECTL_JSON_MAX, 0)) == NULL)
		return -EINVAL;
	r = kube_pod_fill(root, pod);
	json_decref(root);
	if (r < 0)
		kube_pod_clear(pod);
	return r;
}

/* Read a PodList's items. */
int
kube_pods_parse(const char *json, size_t len, struct kube_pod **pods, size_t *n)
{
	json_t *root, *items, *it;
	struct kube_pod *list = NULL;
	size_t cnt = 0, i;
	int r = -EINVAL;

	*pods = NULL;
	*n = 0;
	if ((root = kube_json_object(json, len, KUBECTL_JSON_MAX, 0)) == NULL)
		return -EINVAL;
	items = json_object_get(root, "items");
	if (!json_is_array(items))
		goto out;
	if ((list = calloc(json_array_size(items) + 1, sizeof *list)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	json_array_foreach(items, i, it) {
		r = kube_pod_fill(it, &list[cnt]);
		if (r == -ENOMEM)
			goto out;
		if (r < 0) {
			kube_pod_clear(&list[cnt]);
			continue;
		}
		cnt++;
	}
	*pods = list;
	*n = cnt;
	list = NULL;	/* transferred */
	r = 0;
out:
	kube_pods_free(list, cnt + (list != NULL ? 1 : 0));
	json_decref(root);
	return r;
}

/* Free a pod's strings and zero it. */
void
kube_pod_clear(struct kube_pod *pod)
{
	char **p;

	if (pod == NULL)
		return;
	free(pod->ns);
	free(pod->name);
	free(pod->phase);
	free(pod->status);
	free(pod->default_container);
	for (p = pod->containers; p != NULL && *p != NULL; p++)
		free(*p);
	free(pod->containers);
	memset(pod, 0, sizeof *pod);
}

/* Free an array of n pods. */
void
kube_pods_free(struct kube_pod *pods, size_t n)
{
	size_t i;

	if (pods == NULL)
		return;
	for (i = 0; i < n; i++)
		kube_pod_clear(&pods[i]);
	free(pods);
}

/* Whether a label key or value is safe in a selector: [A-Za-z0-9._/-]. */
static bool
kube_selector_word_ok(const char *s, bool key)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		if (n >= KUBE_NAME_MAX || strchr("abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/", s[n]) == NULL)
			return false;
		if (!key && s[n] == '/')
			return false;
	}
	return !key || n > 0;
}

/* spec.selector.matchLabels as "k=v,k2=v2". */
int
kube_selector_parse(const char *json, size_t len, char **out)
{
	static const char *const k_labels[] = { "spec", "selector", "matchLabels", NULL };
	json_t *root, *m, *val;
	char *sel = NULL, *nsel;
	const char *k, *v;
	int r = -EINVAL;

	*out = NULL;
	if ((root = kube_json_object(json, len, KUBECTL_JSON_MAX, 0)) == NULL)
		return -EINVAL;
	m = kube_json_path(root, k_labels);
	if (!json_is_object(m))
		goto out;
	json_object_foreach(m, k, val) {
		v = kube_json_str(val);
		if (v == NULL || !kube_selector_word_ok(k, true) ||
		    !kube_selector_word_ok(v, false))
			goto out;
		if (asprintf(&nsel, "%s%s%s=%s", sel != NULL ? sel : "", sel != NULL ? "," : "",
		    k, v) < 0) {
			r = -ENOMEM;
			goto out;
		}
		free(sel);
		sel = nsel;
	}
	if (sel == NULL)
		goto out;
	*out = sel;
	sel = NULL;	/* transferred */
	r = 0;
out:
	free(sel);
	json_decref(root);
	return r;
}

/* Whether pod has a container named name. */
bool
kube_pod_has_container(const struct kube_pod *pod, const char *name)
{
	char **p;

	for (p = pod->containers; p != NULL && *p != NULL; p++) {
		if (strcmp(*p, name) == 0)
			return true;
	}
	return false;
}

/* Append bytes to a capped buffer. */
void
kube_capture(struct buf *b, const char *p, size_t n, size_t cap)
{
	if (b->len >= cap)
		return;
	if (n > cap - b->len)
		n = cap - b->len;
	if (n > 0)
		buf_add(b, p, n);
}

void
kube_env_add(const struct cfg_kube_cluster *k, struct strv *e)
{
	const char *v;
	size_t i;

	for (i = 0; i < k->nenv; i++) {
		if (strchr(k->env[i], '=') != NULL)
			strv_add(e, k->env[i]);
		else if ((v = getenv(k->env[i])) != NULL)
			strv_addf(e, k->env[i], v);
	}
}
