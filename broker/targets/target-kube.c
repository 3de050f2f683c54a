/*
 * The kubernetes target: a command in a pod's container. With transport
 * native (the default) the broker speaks to the API server itself, in its
 * loop (kube-native.c). With transport kubectl it runs kubectl
 * exec: the session's child is the broker binary itself in its helper
 * mode (podgate-broker --kube-exec, broker/kube-exec.c), started with an
 * argv (no shell) and an environment built from scratch; the helper asks
 * the API server about the pod first (bounded by the cluster's timeout),
 * prints one clear line and exits 1 when it cannot be reached, and
 * otherwise runs kubectl exec. Nothing the helper does blocks the event
 * loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube/kube.h"
#include "kube/kube-incluster.h"
#include "base/log.h"
#include "base/mkdirs.h"
#include "base/strv.h"
#include "policy/policy.h"
#include "targets/kube-native.h"
#include "targets/target.h"

#define TARGET_KUBE_PATH "/usr/local/bin:/usr/bin:/bin"
#define TARGET_KUBE_MAXARGS 96
#define TARGET_KUBE_SELF "/proc/self/exe"

/* The default interactive shell: bash when the container has it, else sh. */
static const char target_kube_login[] =
    "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi";

/* Whether a target name reads as a Kubernetes one (has a '/' or a ':'). */
static bool
target_kube_serves(const char *target)
{
	return strchr(target, '/') != NULL || strchr(target, ':') != NULL;
}

/* Whether the target parses for this configuration's clusters. */
static bool
target_kube_exists(const struct config *c, const char *target)
{
	struct kube_target t;
	char err[256];

	return kube_target_parse(c, target, &t, err, sizeof err) == 0;
}

/* Check the name and give its canonical form. */
static int
target_kube_resolve(const struct config *c, const char *target, char **canonical,
    char *err, size_t errlen)
{
	struct kube_target t;
	int r;

	*canonical = NULL;
	if ((r = kube_target_parse(c, target, &t, err, errlen)) < 0)
		return r;
	if ((*canonical = strdup(t.canonical)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* Replace "{user}" in pattern with user (a new string, or NULL). */
static char *
target_kube_expand(const char *pattern, const char *user)
{
	const char *at = strstr(pattern, "{user}");
	char *s = NULL;

	if (at == NULL)
		return strdup(pattern);
	if (asprintf(&s, "%.*s%s%s", (int)(at - pattern), pattern, user, at + 6) < 0)
		return NULL;
	return s;
}

/* The impersonated user and groups for a request (expanded), into u and g. */
static void
target_kube_identity(const struct target_request *req, char **user,
    struct strv *groups)
{
	const struct cfg_rule *r = req->rule;
	size_t i;

	*user = NULL;
	if (r == NULL || !r->impersonate || r->as_user == NULL)
		return;
	*user = target_kube_expand(r->as_user, req->user);
	if (r->as_user_groups && req->account != NULL) {
		for (i = 0; i < req->account->ngroups; i++)
			strv_add(groups, req->account->groups[i]);
	}
	for (i = 0; i < r->nas_groups; i++)
		strv_take(groups, target_kube_expand(r->as_groups[i], req->user));
}

/* The identity a rule gives user, for the pod picker. */
int
target_kube_impersonation(const struct cfg_rule *rule, const struct cfg_user *account,
    const char *user, char **as_user, char ***as_groups)
{
	struct target_request req;
	struct strv g = { 0 };

	memset(&req, 0, sizeof req);
	req.user = user;
	req.account = account;
	req.rule = rule;
	*as_groups = NULL;
	target_kube_identity(&req, as_user, &g);
	if (rule != NULL && rule->impersonate && rule->as_user != NULL && *as_user == NULL)
		g.oom = true;
	if (strv_done(&g, as_groups) < 0) {
		free(*as_user);
		*as_user = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Describe a request: where (cluster, context, namespace, pod, container), who. */
static int
target_kube_describe(const struct config *c, const struct target_request *req,
    char ***where, char ***who)
{
	struct strv w = { 0 }, h = { 0 }, g = { 0 };
	struct kube_target t;
	char err[256], *user = NULL, *joined = NULL, *nj;
	size_t i;
	int r;

	*where = *who = NULL;
	if (kube_target_parse(c, req->target, &t, err, sizeof err) < 0)
		return 0;
	strv_add(&w, "cluster");
	strv_add(&w, t.cluster->name);
	strv_add(&w, "context");
	strv_add(&w, t.cluster->context != NULL ? t.cluster->context : "");
	strv_add(&w, "namespace");
	strv_add(&w, t.ns);
	if (t.kind == KUBE_POD) {
		strv_add(&w, "pod");
		strv_add(&w, t.name);
	} else {
		strv_add(&w, "workload");
		strv_take(&w, target_kube_expand(t.kind == KUBE_DEPLOY ?
		    "deploy/{user}" : "sts/{user}", t.name));
	}
	strv_add(&w, "container");
	strv_add(&w, t.container);
	strv_add(&w, "canonical");
	strv_add(&w, t.canonical);
	target_kube_identity(req, &user, &g);
	if (user != NULL) {
		strv_add(&h, "as_user");
		strv_add(&h, user);
		for (i = 0; i < g.n; i++) {
			if (asprintf(&nj, "%s%s%s", joined != NULL ? joined : "",
			    joined != NULL ? "," : "", g.v[i]) < 0) {
				h.oom = true;
				break;
			}
			free(joined);
			joined = nj;
		}
		strv_add(&h, "as_groups");
		strv_add(&h, joined != NULL ? joined : "");
	}
	free(user);
	free(joined);
	target_free_pairs(g.v);
	if ((r = strv_done(&w, where)) < 0 || (r = strv_done(&h, who)) < 0) {
		target_free_pairs(*where);
		*where = NULL;
		return r;
	}
	return g.oom ? -ENOMEM : 0;
}

/* Whether a LANG value is safe to pass on: [A-Za-z0-9_.@-], 1..32. */
static bool
target_kube_lang_ok(const char *v)
{
	size_t n = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@-");

	return n > 0 && n <= 32 && v[n] == '\0';
}

/* kubectl's environment: PATH, HOME (the cache), TERM, LANG. */
static int
target_kube_env(const struct cfg_kube_cluster *k, const struct target_request *req,
    char ***out)
{
	struct strv e = { 0 };
	const char *lang = "C.UTF-8";
	size_t i;

	for (i = 0; i < req->nenv; i++) {
		if (strncmp(req->env[i], "LANG=", 5) == 0 && target_kube_lang_ok(req->env[i] + 5))
			lang = req->env[i] + 5;
	}
	strv_addf(&e, "PATH", TARGET_KUBE_PATH);
	strv_addf(&e, "HOME", k->cache_dir);
	strv_addf(&e, "LANG", lang);
	if (req->pty)
		strv_addf(&e, "TERM", req->term != NULL && *req->term != '\0' ?
		    req->term : "xterm");
	kube_env_add(k, &e);
	return strv_done(&e, out);
}

/* The words the container runs: the command through the rule's shell, or a login shell. */
static void
target_kube_command(const struct target_request *req, struct strv *a)
{
	const struct cfg_rule *r = req->rule;
	const char *shell = r != NULL && r->shell != NULL ? r->shell : "sh";
	char *script = NULL, *ns;
	const char *p, *q;
	size_t i;

	if (req->command != NULL) {
		if (strcmp(shell, "none") != 0) {
			strv_add(a, shell);
			strv_add(a, "-c");
			strv_add(a, req->command);
			return;
		}
		/* No shell: the words of the command, split at blanks. */
		for (p = req->command; *p != '\0'; p = q) {
			p += strspn(p, " \t");
			if (*p == '\0')
				break;
			q = p + strcspn(p, " \t");
			strv_take(a, strndup(p, (size_t)(q - p)));
		}
		return;
	}
	if (r == NULL || r->ninteractive == 0) {
		strv_add(a, "sh");
		strv_add(a, "-c");
		strv_add(a, target_kube_login);
		return;
	}
	if (r->ninteractive == 1) {
		strv_add(a, r->interactive[0]);
		return;
	}
	/* Several shells: the first the container has (names are quoted for sh). */
	for (i = 0; i < r->ninteractive; i++) {
		char *quoted = NULL;
		size_t j, k = 0, len = strlen(r->interactive[i]);

		if ((quoted = malloc(len * 4 + 3)) == NULL) {
			a->oom = true;
			break;
		}
		quoted[k++] = '\'';
		for (j = 0; j < len; j++) {
			if (r->interactive[i][j] == '\'') {
				memcpy(quoted + k, "'\\''", 4);
				k += 4;
			} else {
				quoted[k++] = r->interactive[i][j];
			}
		}
		quoted[k++] = '\'';
		quoted[k] = '\0';
		if (asprintf(&ns, "%s%sif command -v %s >/dev/null 2>&1; then exec %s; fi",
		    script != NULL ? script : "", script != NULL ? "; " : "", quoted,
		    quoted) < 0)
			ns = NULL;
		free(quoted);
		free(script);
		if ((script = ns) == NULL) {
			a->oom = true;
			break;
		}
	}
	strv_add(a, "sh");
	strv_add(a, "-c");
	strv_take(a, script);
}

/* Start a native exec in the broker's loop: no process. */
static int
target_kube_native(const struct config *c, const struct target_request *req,
    const struct kube_target *t, struct pty_child *child)
{
	struct kube_native_req nr;
	struct strv a = { 0 }, g = { 0 };
	char *user = NULL, **groups = NULL;
	int r;

	if (req->loop == NULL || req->proc == NULL || req->on_exit == NULL ||
	    req->on_ready == NULL)
		return -EINVAL;
	target_kube_command(req, &a);
	target_kube_identity(req, &user, &g);
	if (user == NULL && req->rule != NULL && req->rule->impersonate &&
	    req->rule->as_user != NULL)
		g.oom = true;
	if ((r = strv_done(&g, &groups)) < 0 || a.oom || a.n == 0) {
		r = -ENOMEM;
		goto out;
	}
	memset(&nr, 0, sizeof nr);
	nr.t = t;
	nr.argv = a.v;
	nr.tty = req->pty;
	nr.cols = req->cols;
	nr.rows = req->rows;
	nr.as_user = user;
	nr.as_groups = groups;
	nr.user = req->user;
	nr.session_id = req->session_id;
	nr.audit_log = c->audit_log;
	nr.loop = req->loop;
	nr.on_exit = req->on_exit;
	nr.on_ready = req->on_ready;
	nr.exit_arg = req->exit_arg;
	if ((r = kube_native_start(&nr, child, req->proc)) < 0)
		log_warn_r(r, "session %s: cannot start the native exec", req->session_id);
out:
	free(user);
	target_free_pairs(groups);
	strv_free(&g);
	strv_free(&a);
	return r;
}

/* Start the helper: podgate-broker --kube-exec OPTIONS -- WORDS... */
static int
target_kube_spawn(const struct config *c, const struct target_request *req,
    struct pty_child *child)
{
	struct strv a = { 0 }, g = { 0 };
	struct pty_spawn_opts o;
	struct kube_target t;
	char err[256], **env = NULL, *user = NULL, num[32], cwd[4096], incluster[4096];
	const char *kind = "--pod";
	size_t i;
	int r;

	memset(child, 0, sizeof *child);
	child->master = child->in = child->out = child->err = -1;
	if ((r = kube_target_parse(c, req->target, &t, err, sizeof err)) < 0)
		return r == -ENOENT ? -ENOENT : -EINVAL;
	if (t.cluster->transport == CFG_KUBE_NATIVE)
		return target_kube_native(c, req, &t, child);
	if ((r = mkdirs(t.cluster->cache_dir, 0700)) < 0) {
		log_warn_r(r, "session %s: cannot make %s", req->session_id,
		    t.cluster->cache_dir);
		return r;
	}
	if (t.cluster->kubeconfig == NULL &&
	    (r = kube_incluster_ensure(t.cluster->cache_dir, incluster, sizeof incluster)) < 0) {
		log_warn_r(r, "session %s: cluster %s has no kubeconfig and no in-cluster "
		    "configuration (KUBERNETES_SERVICE_HOST/PORT)", req->session_id, t.cluster->name);
		return r == -ENOENT ? -EHOSTUNREACH : r;
	}
	if ((r = target_kube_env(t.cluster, req, &env)) < 0)
		goto out;
	if (t.kind == KUBE_DEPLOY)
		kind = "--deploy";
	else if (t.kind == KUBE_STS)
		kind = "--sts";
	strv_add(&a, "podgate-broker");
	strv_add(&a, "--kube-exec");
	strv_addf(&a, "--kubectl", t.cluster->kubectl);
	if (t.cluster->kubeconfig != NULL)
		strv_addf(&a, "--kubeconfig", t.cluster->kubeconfig);
	else
		strv_addf(&a, "--kubeconfig", incluster);
	if (t.cluster->context != NULL)
		strv_addf(&a, "--context", t.cluster->context);
	snprintf(num, sizeof num, "%u", t.cluster->timeout);
	strv_addf(&a, "--timeout", num);
	strv_addf(&a, "--cluster", t.cluster->name);
	strv_addf(&a, "--target", t.canonical);
	strv_addf(&a, "--user", req->user);
	strv_addf(&a, "--session", req->session_id);
	if (c->audit_log != NULL && strcmp(c->audit_log, "-") != 0) {
		/* The helper runs in the cache directory: give it an absolute path. */
		char *abs = NULL;

		if (c->audit_log[0] != '/' && getcwd(cwd, sizeof cwd) != NULL &&
		    asprintf(&abs, "%s/%s", cwd, c->audit_log) >= 0) {
			strv_addf(&a, "--audit", abs);
			free(abs);
		} else {
			strv_addf(&a, "--audit", c->audit_log);
		}
	}
	strv_addf(&a, "--namespace", t.ns);
	strv_addf(&a, kind, t.name);
	if (t.container[0] != '\0')
		strv_addf(&a, "--container", t.container);
	target_kube_identity(req, &user, &g);
	if (user != NULL) {
		strv_addf(&a, "--as", user);
		for (i = 0; i < g.n; i++)
			strv_addf(&a, "--as-group", g.v[i]);
	}
	if (req->pty)
		strv_add(&a, "--tty");
	strv_add(&a, "--");
	target_kube_command(req, &a);
	if (a.oom || g.oom || a.n > TARGET_KUBE_MAXARGS + 4096) {
		r = -ENOMEM;
		goto out;
	}
	memset(&o, 0, sizeof o);
	o.path = TARGET_KUBE_SELF;
	o.argv = a.v;
	o.envp = env;
	o.cwd = t.cluster->cache_dir;
	o.stdio = req->pty ? PTY_STDIO_PTY : PTY_STDIO_PIPES;
	o.cols = req->cols;
	o.rows = req->rows;
	o.nonblock = true;
	if ((r = pty_spawn(&o, child)) < 0)
		log_warn_r(r, "session %s: cannot start the kubectl helper", req->session_id);
out:
	free(user);
	target_free_pairs(g.v);
	target_free_pairs(a.v);
	target_free_pairs(env);
	return r;
}

/*
 * Fill hint for a refused target that names a container when a rule
 * grants the same pod (or workload) without one: '*' never crosses '/',
 * so "prod:*\/\*" grants pods but not their named containers. The hint
 * names the granting pattern with "/\*" added. Empty otherwise.
 */
static void
target_kube_deny_hint(const struct config *c, const struct cfg_user *u, const char *target,
    char *hint, size_t len)
{
	struct kube_target t;
	char why[400], pod[sizeof t.canonical];
	const char *pat;
	size_t n;

	hint[0] = '\0';
	if (kube_target_parse(c, target, &t, why, sizeof why) < 0 || t.container[0] == '\0')
		return;
	n = strlen(t.canonical) - strlen(t.container) - 1;	/* without "/CONTAINER" */
	snprintf(pod, sizeof pod, "%.*s", (int)n, t.canonical);
	if ((pat = policy_match_pattern(c, u, pod)) == NULL)
		return;
	snprintf(hint, len, " (rules grant %s without a container; add \"%s/*\")", pod, pat);
}

const struct target_ops target_kube_ops = {
	.kind = "kubernetes",
	.serves = target_kube_serves,
	.exists = target_kube_exists,
	.spawn = target_kube_spawn,
	.resolve = target_kube_resolve,
	.describe = target_kube_describe,
	.deny_hint = target_kube_deny_hint,
};
