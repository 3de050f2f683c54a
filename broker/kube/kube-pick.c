/*
 * podgate-broker --kube-pick: list the pods a user may reach and let the
 * user pick one on the session's terminal (see kube-pick.h).
 *
 * Options, each "--name=value" (groups start at --cluster):
 *   --local                    offer "local" as the first entry
 *   --cluster=NAME             a query group for cluster NAME, then
 *     --kubectl= --kubeconfig= --context= --timeout=SECONDS --cache=DIR
 *     --as=USER --as-group=G...   the identity the group lists pods as
 *     --namespace=NS...        list these namespaces, or
 *     --all-namespaces         list every namespace
 *     --allow=PATTERN...       a pod is shown when a pattern matches
 *                              "CLUSTER:NS/POD" (or ".../CONTAINER" for one
 *                              of its containers) under fnmatch FNM_PATHNAME
 *
 * The screen (kube-pick-screen.c) is drawn with plain escape sequences on
 * the alternate screen and fits any size from 20x5 up; 80x24 shows 19 pods
 * at a time. This file lists the pods and reads the options.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "kube/kube-client.h"
#include "kube/kube-json.h"
#include "kube/kube-pick-int.h"
#include "kube/kube-pick.h"
#include "kube/kube-run.h"
#include "kube/kube.h"
#include "base/strv.h"
#include "policy/pattern.h"
#include "pty.h"

extern char **environ;

/* ---- listing ---- */

/* Whether the user pressed Ctrl-C, q or Escape while waiting. */
static bool
kp_cancel_key(void)
{
	char buf[64];
	ssize_t n, i;

	n = read(STDIN_FILENO, buf, sizeof buf);
	for (i = 0; i < n; i++) {
		if (buf[i] == 0x03 || buf[i] == 'q' || buf[i] == 0x1b)
			return true;
	}
	return false;
}

/*
 * Run argv with HOME=home, stdin from /dev/null, stdout into out and
 * stderr into err, for at most timeout seconds (then it is killed).
 * Returns its exit status, -ETIMEDOUT, -ECANCELED (the user cancelled) or
 * another negative errno.
 */
static int
kp_run(char **argv, const char *home, unsigned timeout, struct buf *out, struct buf *err)
{
	/* In our session and process group, as a child on the terminal would be. */
	struct kube_run o = {
		.argv = argv, .same_session = true, .timeout_ms = (long long)timeout * 1000 + 1000,
		.out_max = KP_OUT_MAX, .err_max = KP_ERR_MAX, .cancel_fd = STDIN_FILENO,
		.cancel = kp_cancel_key,
	};
	struct strv env = { 0 };
	char **e;
	int r;

	for (e = environ; e != NULL && *e != NULL; e++) {
		if (home == NULL || strncmp(*e, "HOME=", 5) != 0)
			strv_add(&env, *e);
	}
	if (home != NULL)
		strv_addf(&env, "HOME", home);
	if ((r = strv_done(&env, &o.envp)) < 0)
		return r;
	r = kube_run(&o, out, err);
	for (e = o.envp; e != NULL && *e != NULL; e++)
		free(*e);
	free(o.envp);
	return r;
}

/* The last non-empty line of b without kubectl's "Error from server (X): ". */
static const char *
kp_reason(struct buf *b)
{
	const char *start = kube_run_last_line(b), *p;

	if (strncmp(start, "Error from server", 17) == 0 && (p = strstr(start, "): ")) != NULL)
		return p + 3;
	if (strncmp(start, "error: ", 7) == 0)
		return start + 7;
	return start;
}

/* Whether a pattern of g grants name. */
static bool
kp_allowed(const struct kp_group *g, const char *name)
{
	size_t i;

	for (i = 0; i < g->nallow; i++) {
		if (pattern_target_match(g->allow[i], name))
			return true;
	}
	return false;
}

/* A copy of s in lowercase (NULL when out of memory). */
static char *
kp_lower(const char *s)
{
	char *l = strdup(s), *p;

	for (p = l; p != NULL && *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	return l;
}

/* Free one entry's strings. */
static void
kp_entry_clear(struct kp_entry *e)
{
	free(e->target);
	free(e->where);
	free(e->name);
	free(e->containers);
	free(e->status);
	free(e->key);
	memset(e, 0, sizeof *e);
}

/* Append an entry; the strings are taken over. Returns -ENOMEM on failure. */
static int
kp_add(struct kp *k, struct kp_entry *e)
{
	struct kp_entry *nv;
	size_t i;

	if (e->target == NULL || e->where == NULL || e->name == NULL || e->containers == NULL ||
	    e->status == NULL || e->key == NULL) {
		kp_entry_clear(e);
		return -ENOMEM;
	}
	for (i = 0; i < k->n; i++) {
		if (strcmp(k->v[i].target, e->target) == 0) {
			kp_entry_clear(e);	/* listed by another group already */
			return 0;
		}
	}
	if (k->n == k->max) {
		k->max = k->max == 0 ? 32 : k->max * 2;
		if ((nv = realloc(k->v, k->max * sizeof *nv)) == NULL) {
			kp_entry_clear(e);
			return -ENOMEM;
		}
		k->v = nv;
	}
	k->v[k->n++] = *e;
	memset(e, 0, sizeof *e);
	return 0;
}

/*
 * The target a pick of pod gives under g: "CLUSTER:NS/POD" when a pattern
 * grants it, else "CLUSTER:NS/POD/C" for the first container (the default
 * one first) a pattern grants; NULL when none does.
 */
static char *
kp_target(const struct kp_group *g, const struct kube_pod *pod)
{
	char *t = NULL;
	char *const *c;

	if (asprintf(&t, "%s:%s/%s", g->cluster, pod->ns, pod->name) < 0)
		return NULL;
	if (kp_allowed(g, t))
		return t;
	free(t);
	t = NULL;
	if (pod->default_container != NULL && kube_label_ok(pod->default_container) &&
	    kube_pod_has_container(pod, pod->default_container)) {
		if (asprintf(&t, "%s:%s/%s/%s", g->cluster, pod->ns, pod->name,
		    pod->default_container) < 0)
			return NULL;
		if (kp_allowed(g, t))
			return t;
		free(t);
		t = NULL;
	}
	for (c = pod->containers; c != NULL && *c != NULL; c++) {
		if (!kube_label_ok(*c))
			continue;
		if (asprintf(&t, "%s:%s/%s/%s", g->cluster, pod->ns, pod->name, *c) < 0)
			return NULL;
		if (kp_allowed(g, t))
			return t;
		free(t);
		t = NULL;
	}
	return NULL;
}

/* Add the pods of one kubectl answer that g's patterns grant. */
static int
kp_add_pods(struct kp *k, const struct kp_group *g, const struct kube_pod *pods, size_t n)
{
	struct kp_entry e;
	size_t i, len;
	char *const *c;
	int r;

	for (i = 0; i < n; i++) {
		const struct kube_pod *p = &pods[i];

		if (!kube_label_ok(p->ns) || !kube_subdomain_ok(p->name))
			continue;	/* not a name a target can hold */
		memset(&e, 0, sizeof e);
		if ((e.target = kp_target(g, p)) == NULL)
			continue;
		if (k->multi) {
			if (asprintf(&e.where, "%s:%s", g->cluster, p->ns) < 0)
				e.where = NULL;
		} else {
			e.where = strdup(p->ns);
		}
		e.name = strdup(p->name);
		for (len = 1, c = p->containers; c != NULL && *c != NULL; c++)
			len += strlen(*c) + 1;
		if ((e.containers = calloc(1, len)) != NULL) {
			for (c = p->containers; c != NULL && *c != NULL; c++) {
				if (c != p->containers)
					strcat(e.containers, ",");
				strcat(e.containers, *c);
			}
			kp_printable(e.containers);
		}
		e.status = strdup(p->deleting ? "Terminating" : p->status != NULL ? p->status :
		    p->phase != NULL ? p->phase : "Unknown");
		if (e.status != NULL)
			kp_printable(e.status);
		e.created = p->created;
		e.key = kp_lower(e.target);
		if ((r = kp_add(k, &e)) < 0)
			return r;
	}
	return 0;
}

/* List pods of g natively (ns NULL: every namespace), on a keep-alive connection. */
static void
kp_list_native(struct kp *k, struct kp_group *g, const char *ns)
{
	static uv_loop_t loop;
	static bool loop_ready;
	struct cfg_kube_cluster cc;
	struct kube_client *cl = NULL;
	struct kube_ident id = { g->e.as_user, (char *const *)g->as_groups };
	struct kube_pod *pods = NULL;
	char err[600] = "", msg[600], *path = NULL, *body = NULL;
	size_t n = 0, bodylen = 0;
	int status = 0, r;

	if (!loop_ready) {
		if (uv_loop_init(&loop) < 0) {
			kp_note(k, "cluster %s: cannot make an event loop", g->cluster);
			return;
		}
		loop_ready = true;
	}
	memset(&cc, 0, sizeof cc);
	cc.name = (char *)g->cluster;
	cc.kubeconfig = (char *)g->e.kubeconfig;
	cc.context = (char *)g->e.context;
	cc.timeout = g->timeout;
	cc.transport = CFG_KUBE_NATIVE;
	if (kube_client_get(&cc, &cl, err, sizeof err) < 0) {
		kp_note(k, "%s", err);
		return;
	}
	if ((ns != NULL ? asprintf(&path, "/api/v1/namespaces/%s/pods", ns) :
	    asprintf(&path, "/api/v1/pods")) < 0) {
		kp_note(k, "out of memory");
		return;
	}
	r = kube_client_sync_get(cl, &loop, &g->conn, path, &id, g->timeout, &status, &body,
	    &bodylen, err, sizeof err);
	free(path);
	if (r < 0)
		kp_note(k, "cluster %s: %s", g->cluster, err);
	else if (status != 200 && kube_json_status_message(body, bodylen, msg, sizeof msg) == 0)
		kp_note(k, "cluster %s: %s", g->cluster, msg);
	else if (status != 200)
		kp_note(k, "cluster %s: the API server answered %d", g->cluster, status);
	else if (kube_pods_parse(body != NULL ? body : "", bodylen, &pods, &n) < 0)
		kp_note(k, "cluster %s: the API server sent something that is not a pod list",
		    g->cluster);
	else if (kp_add_pods(k, g, pods, n) < 0)
		kp_note(k, "out of memory");
	kube_pods_free(pods, n);
	free(body);
}

/* Run one kubectl get pods for g (ns NULL: every namespace). */
static void
kp_list(struct kp *k, struct kp_group *g, const char *ns)
{
	static char *const all[] = { (char *)"--all-namespaces", NULL };
	struct buf out = { 0 }, err = { 0 };
	struct kube_exec e = g->e;
	struct kube_pod *pods = NULL;
	char **argv = NULL;
	const char *why;
	size_t n = 0;
	int r;

	kp_status(k, "podgate: listing pods of cluster %s%s%s... (q quits)", g->cluster,
	    ns != NULL ? ", namespace " : "", ns != NULL ? ns : "");
	if (g->native) {
		kp_list_native(k, g, ns);
		return;
	}
	e.ns = ns;
	if (kube_get_argv(&e, "pods", NULL, g->timeout, ns == NULL ? all : NULL, &argv) < 0) {
		kp_note(k, "out of memory");
		return;
	}
	r = kp_run(argv, g->cache, g->timeout, &out, &err);
	kube_free_argv(argv);
	if (r == -ECANCELED) {
		kp_restore(k);
		_exit(KUBE_PICK_CANCEL);
	}
	if (r == -ETIMEDOUT)
		kp_note(k, "cluster %s did not answer within %us", g->cluster, g->timeout);
	else if (r < 0)
		kp_note(k, "cluster %s: cannot run %s: %s", g->cluster, g->e.kubectl,
		    strerror(-r));
	else if (r != 0) {
		why = kp_reason(&err);
		kp_note(k, "cluster %s: %s", g->cluster, *why != '\0' ? why : "kubectl failed");
	} else if (kube_pods_parse(out.data != NULL ? out.data : "", out.len, &pods, &n) < 0)
		kp_note(k, "cluster %s: kubectl printed something that is not a pod list",
		    g->cluster);
	else if (kp_add_pods(k, g, pods, n) < 0)
		kp_note(k, "out of memory");
	kube_pods_free(pods, n);
	buf_free(&out);
	buf_free(&err);
}

/* Order entries: local first, then by target name. */
static int
kp_cmp(const void *a, const void *b)
{
	const struct kp_entry *x = a, *y = b;
	bool xl = strcmp(x->target, "local") == 0, yl = strcmp(y->target, "local") == 0;

	if (xl != yl)
		return xl ? -1 : 1;
	return strcmp(x->target, y->target);
}

/* ---- options ---- */

/* Read the options into k. Returns 0 or -EINVAL. */
static int
kp_parse(int argc, char **argv, struct kp *k)
{
	struct kp_group *g = NULL;
	size_t i, j;
	int a;

	for (a = 1; a < argc; a++) {
		const char *o = argv[a], *v = strchr(o, '=');
		size_t klen = v != NULL ? (size_t)(v - o) : strlen(o);

#define KP_OPT(name) (klen == sizeof(name) - 1 && memcmp(o, name, klen) == 0)
		if (KP_OPT("--local") && v == NULL) {
			k->local = true;
			continue;
		}
		if (KP_OPT("--all-namespaces") && v == NULL && g != NULL) {
			g->all = true;
			continue;
		}
		if (KP_OPT("--native") && v == NULL && g != NULL) {
			g->native = true;
			continue;
		}
		if (v == NULL)
			return -EINVAL;
		v++;
		if (KP_OPT("--cluster")) {
			if (k->ng == KP_MAXGROUPS || !kube_label_ok(v))
				return -EINVAL;
			g = &k->g[k->ng++];
			g->cluster = v;
			g->timeout = 10;
			g->e.kubectl = "kubectl";
			continue;
		}
		if (g == NULL)
			return -EINVAL;
		if (KP_OPT("--kubectl"))
			g->e.kubectl = v;
		else if (KP_OPT("--kubeconfig"))
			g->e.kubeconfig = v;
		else if (KP_OPT("--context"))
			g->e.context = v;
		else if (KP_OPT("--timeout"))
			g->timeout = (unsigned)strtoul(v, NULL, 10);
		else if (KP_OPT("--cache"))
			g->cache = v;
		else if (KP_OPT("--as"))
			g->e.as_user = v;
		else if (KP_OPT("--as-group") && g->nas_groups < KP_MAXLIST)
			g->as_groups[g->nas_groups++] = v;
		else if (KP_OPT("--namespace") && g->nns < KP_MAXLIST && kube_label_ok(v))
			g->ns[g->nns++] = v;
		else if (KP_OPT("--allow") && g->nallow < KP_MAXLIST)
			g->allow[g->nallow++] = v;
		else
			return -EINVAL;
#undef KP_OPT
	}
	for (i = 0; i < k->ng; i++) {
		k->g[i].e.as_groups = (char *const *)k->g[i].as_groups;
		k->g[i].e.nas_groups = k->g[i].nas_groups;
		if (k->g[i].timeout == 0)
			return -EINVAL;
		for (j = 0; j < i; j++) {
			if (strcmp(k->g[i].cluster, k->g[j].cluster) != 0)
				k->multi = true;
		}
	}
	return k->ng > 0 || k->local ? 0 : -EINVAL;
}

/* The helper's main: list, show, pick. */
int
kube_pick_main(int argc, char **argv)
{
	static struct kp k;
	struct sigaction sa;
	struct kp_entry e;
	size_t i, j;

	if (kp_parse(argc, argv, &k) < 0 || fcntl(KP_RESULT_FD, F_GETFD) < 0) {
		fprintf(stderr, "podgate-broker: --kube-pick is for the broker's own use\n");
		return KUBE_PICK_NONE;
	}
	signal(SIGPIPE, SIG_IGN);
	kube_client_set_quiet(true);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = kp_winch_cb;	/* no SA_RESTART: a resize ends a wait */
	sigaction(SIGWINCH, &sa, NULL);
	kp_size(&k);
	kp_enter(&k);
	if (k.local) {
		memset(&e, 0, sizeof e);
		e.target = strdup("local");
		e.where = strdup("-");
		e.name = strdup("local");
		e.containers = strdup("");
		e.status = strdup("broker host");
		e.key = strdup("local");
		kp_add(&k, &e);
	}
	for (i = 0; i < k.ng; i++) {
		if (k.g[i].all || k.g[i].nns == 0) {
			kp_list(&k, &k.g[i], NULL);
			continue;
		}
		for (j = 0; j < k.g[i].nns; j++)
			kp_list(&k, &k.g[i], k.g[i].ns[j]);
	}
	if (k.n == 0) {
		kp_restore(&k);
		fprintf(stderr, "podgate: no pods you may reach%s%s\r\n", k.msg[0] != '\0' ?
		    ": " : "", k.msg);
		return KUBE_PICK_NONE;
	}
	qsort(k.v, k.n, sizeof *k.v, kp_cmp);
	if ((k.shown = calloc(k.n, sizeof *k.shown)) == NULL) {
		kp_restore(&k);
		return KUBE_PICK_NONE;
	}
	kp_refilter(&k);
	kp_loop(&k);
	kp_restore(&k);
	return KUBE_PICK_CANCEL;
}
