/*
 * The session's pod picker (session-pick.h): which clusters, namespaces
 * and identities to list come from the rules that apply to the user, the
 * helper (kube-pick.c) does the listing and the screen, and the pick comes
 * back through a pipe on the helper's fd 3. The helper's output goes to
 * the client as it is, unrecorded, and the helper never blocks the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube/kube-pick.h"
#include "kube/kube.h"
#include "kube/kube-incluster.h"
#include "base/log.h"
#include "base/mkdirs.h"
#include "policy/policy.h"
#include "session/session-pick.h"
#include "session/internal.h"
#include "base/strv.h"

#define SESSION_PICK_SELF "/proc/self/exe"
#define SESSION_PICK_PATH "/usr/local/bin:/usr/bin:/bin"
#define SESSION_PICK_MAXARGS 4096

struct session_pick {
	struct session *session;
	uv_poll_t poll;
	bool inited;		/* poll handle initialized (must be closed) */
	int events;
	int master;		/* the helper's PTY, -1 once closed */
	int result;		/* read end of the helper's fd 3, -1 once closed */
	pid_t pid;
	bool exited;
	int status;		/* exit status, 128+N for a signal */
	bool eof;		/* the PTY reported end of file or EIO */
	bool picked;		/* the pick arrived: s->target holds it */
	char line[2 * KUBE_NAME_MAX + 8];	/* what fd 3 gave so far */
	size_t nline;
};

/* What one cluster is listed with under one identity. */
struct session_pick_group {
	const struct cfg_kube_cluster *k;
	char *as_user;			/* NULL: the broker's own credentials */
	char **as_groups;		/* NULL-terminated, or NULL */
	bool all;			/* a namespace glob: list every namespace */
	struct strv ns, allow;
};

/* Whether two identities are the same. */
static bool
session_pick_same_id(const struct session_pick_group *g, const char *user, char **groups)
{
	size_t i;

	if ((g->as_user == NULL) != (user == NULL) ||
	    (user != NULL && strcmp(g->as_user, user) != 0))
		return false;
	for (i = 0; g->as_groups != NULL && g->as_groups[i] != NULL; i++) {
		if (groups == NULL || groups[i] == NULL || strcmp(g->as_groups[i], groups[i]) != 0)
			return false;
	}
	return groups == NULL || groups[i] == NULL;
}

/* The groups to list, from the rules of u that name kubernetes targets. */
static int
session_pick_groups(const struct config *c, const struct cfg_user *u,
    struct session_pick_group **out, size_t *nout)
{
	struct session_pick_group *v = NULL, *nv, *g;
	size_t n = 0, ri, ti, ki, gi;
	char *user = NULL, **groups = NULL;
	int r = 0;

	for (ri = 0; ri < c->nrules; ri++) {
		const struct cfg_rule *rule = &c->rules[ri];

		if (!policy_rule_applies(rule, u))
			continue;
		if ((r = target_kube_impersonation(rule, u, u->name, &user, &groups)) < 0)
			goto out;
		for (ti = 0; ti < rule->ntargets; ti++) {
			const char *pat = rule->targets[ti], *colon, *slash;
			char cglob[KUBE_NAME_MAX + 1], ns[KUBE_NAME_MAX + 1];
			bool glob;

			if ((colon = strchr(pat, ':')) == NULL ||
			    (slash = strchr(colon + 1, '/')) == NULL ||
			    (size_t)(colon - pat) >= sizeof cglob ||
			    (size_t)(slash - colon - 1) >= sizeof ns)
				continue;
			snprintf(cglob, sizeof cglob, "%.*s", (int)(colon - pat), pat);
			snprintf(ns, sizeof ns, "%.*s", (int)(slash - colon - 1), colon + 1);
			glob = strpbrk(ns, "*?[\\") != NULL;
			if (!glob && !kube_label_ok(ns))
				continue;
			for (ki = 0; ki < c->nkube; ki++) {
				if (!pattern_target_match(cglob, c->kube[ki].name))
					continue;
				for (gi = 0; gi < n; gi++) {
					if (v[gi].k == &c->kube[ki] &&
					    session_pick_same_id(&v[gi], user, groups))
						break;
				}
				if (gi == n) {
					if ((nv = realloc(v, (n + 1) * sizeof *v)) == NULL) {
						r = -ENOMEM;
						goto out;
					}
					v = nv;
					g = &v[n++];
					memset(g, 0, sizeof *g);
					g->k = &c->kube[ki];
					if ((user != NULL && (g->as_user = strdup(user)) == NULL)) {
						r = -ENOMEM;
						goto out;
					}
					if (groups != NULL) {
						size_t j;

						for (j = 0; groups[j] != NULL; j++)
							;
						if ((g->as_groups = calloc(j + 1, sizeof *g->as_groups)) ==
						    NULL) {
							r = -ENOMEM;
							goto out;
						}
						for (j = 0; groups[j] != NULL; j++) {
							if ((g->as_groups[j] = strdup(groups[j])) == NULL) {
								r = -ENOMEM;
								goto out;
							}
						}
					}
				}
				g = &v[gi];
				if (glob)
					g->all = true;
				else if (!strv_has(&g->ns, ns))
					strv_take(&g->ns, strdup(ns));
				if (!strv_has(&g->allow, pat))
					strv_take(&g->allow, strdup(pat));
				if (g->ns.oom || g->allow.oom) {
					r = -ENOMEM;
					goto out;
				}
			}
		}
		free(user);
		user = NULL;
		target_free_pairs(groups);
		groups = NULL;
	}
out:
	free(user);
	target_free_pairs(groups);
	*out = v;
	*nout = n;
	return r;
}

/* Free the groups from session_pick_groups. */
static void
session_pick_groups_free(struct session_pick_group *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].as_user);
		target_free_pairs(v[i].as_groups);
		strv_free(&v[i].ns);
		strv_free(&v[i].allow);
	}
	free(v);
}

/* The helper's argv: podgate-broker --kube-pick [--local] GROUPS... */
static int
session_pick_argv(struct session *s, const struct cfg_user *u, struct strv *a)
{
	struct session_pick_group *v = NULL;
	char num[32], incluster[4096];
	size_t n = 0, i, j;
	int r;

	if ((r = session_pick_groups(s->config, u, &v, &n)) < 0)
		goto out;
	if (n == 0) {
		r = 1;
		goto out;
	}
	strv_addf(a, "podgate-broker", NULL);
	strv_addf(a, "--kube-pick", NULL);
	if (policy_match(s->config, u, "local") != NULL)
		strv_addf(a, "--local", NULL);
	for (i = 0; i < n; i++) {
		const struct cfg_kube_cluster *k = v[i].k;

		if ((r = mkdirs(k->cache_dir, 0700)) < 0) {
			log_warn_r(r, "session %s: cannot make %s", s->id, k->cache_dir);
			goto out;
		}
		if (k->kubeconfig == NULL &&
		    (r = kube_incluster_ensure(k->cache_dir, incluster, sizeof incluster)) < 0) {
			log_warn_r(r, "session %s: cluster %s has no kubeconfig and no in-cluster "
			    "configuration (KUBERNETES_SERVICE_HOST/PORT)", s->id, k->name);
			goto out;
		}
		strv_addf(a, "--cluster", k->name);
		if (k->transport == CFG_KUBE_NATIVE)
			strv_addf(a, "--native", NULL);
		strv_addf(a, "--kubectl", k->kubectl);
		strv_addf(a, "--kubeconfig", k->kubeconfig != NULL ? k->kubeconfig : incluster);
		if (k->context != NULL)
			strv_addf(a, "--context", k->context);
		snprintf(num, sizeof num, "%u", k->timeout);
		strv_addf(a, "--timeout", num);
		strv_addf(a, "--cache", k->cache_dir);
		if (v[i].as_user != NULL) {
			strv_addf(a, "--as", v[i].as_user);
			for (j = 0; v[i].as_groups != NULL && v[i].as_groups[j] != NULL; j++)
				strv_addf(a, "--as-group", v[i].as_groups[j]);
		}
		if (v[i].all)
			strv_addf(a, "--all-namespaces", NULL);
		else
			for (j = 0; j < v[i].ns.n; j++)
				strv_addf(a, "--namespace", v[i].ns.v[j]);
		for (j = 0; j < v[i].allow.n; j++)
			strv_addf(a, "--allow", v[i].allow.v[j]);
	}
	r = a->oom || a->n > SESSION_PICK_MAXARGS ? -ENOMEM : 0;
out:
	session_pick_groups_free(v, n);
	return r;
}

/* The helper's environment: PATH, LANG, TERM and the listed clusters' env. */
static int
session_pick_env(const struct session *s, const struct strv *a, struct strv *e)
{
	const char *lang = "C.UTF-8";
	size_t i;

	for (i = 0; i < s->nenv; i++) {
		const char *val = s->env[i] + 5;
		size_t n = strspn(val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789_.@-");

		if (strncmp(s->env[i], "LANG=", 5) == 0 && n > 0 && n <= 32 && val[n] == '\0')
			lang = val;
	}
	strv_addf(e, "PATH", SESSION_PICK_PATH);
	strv_addf(e, "LANG", lang);
	strv_addf(e, "TERM", s->term[0] != '\0' ? s->term : "xterm");
	/* What the listed clusters' exec credential plugins need (targets.kubernetes[].env). */
	for (i = 0; i < s->config->nkube; i++) {
		const struct cfg_kube_cluster *k = &s->config->kube[i];
		size_t j;

		for (j = 0; j + 1 < a->n; j++) {
			if (strcmp(a->v[j], "--cluster") == 0 && strcmp(a->v[j + 1], k->name) == 0) {
				kube_env_add(k, e);
				break;
			}
		}
	}
	return e->oom ? -ENOMEM : 0;
}

/* The poll handle is closed: free the picker, then count the handle gone. */
static void
session_pick_close_cb(uv_handle_t *h)
{
	struct session_pick *p = h->data;
	struct session *s = p->session;

	free(p);
	session_handle_closed(s);
}

/* Close the picker's descriptors and handle; s->pick is NULL after. */
static void
session_pick_close(struct session *s)
{
	struct session_pick *p = s->pick;

	if (p == NULL)
		return;
	s->pick = NULL;
	if (p->master >= 0)
		close(p->master);
	if (p->result >= 0)
		close(p->result);
	p->master = p->result = -1;
	if (p->inited) {
		uv_poll_stop(&p->poll);
		uv_close((uv_handle_t *)&p->poll, session_pick_close_cb);
	} else {
		free(p);
	}
}

/* Read the helper's screen and send what the client has room for. */
static void
session_pick_read(struct session_pick *p, bool drain)
{
	struct session *s = p->session;
	char buf[16384];
	size_t room;
	ssize_t n;

	while (p->master >= 0 && !p->eof) {
		room = session_room(s);
		if (room == 0 && !drain)
			return;
		if (room == 0 || room > sizeof buf)
			room = sizeof buf;	/* when draining, what does not fit is dropped */
		n = read(p->master, buf, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			p->eof = true;	/* EIO: the helper's side is closed */
			return;
		}
		session_send(s, false, buf, (size_t)n);
	}
}

/*
 * Read what the helper wrote on fd 3. A whole line is the pick: the
 * session goes to SESSION_PICKED at once, so the keys that follow stay
 * with libssh for the target; the target starts once the helper is gone.
 */
static void
session_pick_result(struct session_pick *p)
{
	struct session *s = p->session;
	char *nl;
	ssize_t n;

	while (!p->picked && p->result >= 0 && p->nline + 1 < sizeof p->line) {
		n = read(p->result, p->line + p->nline, sizeof p->line - 1 - p->nline);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		p->nline += (size_t)n;
		p->line[p->nline] = '\0';
		if ((nl = strchr(p->line, '\n')) == NULL)
			continue;
		*nl = '\0';
		p->picked = true;
		free(s->target);
		s->target = NULL;
		if (policy_target_name_ok(p->line) && (s->target = strdup(p->line)) == NULL)
			s->broken = true;
		if (s->target != NULL)
			log_info("%s@%s: picked %s", s->host->user, s->host->client, s->target);
		if (s->state == SESSION_MENU)
			s->state = SESSION_PICKED;	/* with no target: "no target selected" */
		session_dirty(s);
	}
}

/* The helper's PTY is readable. */
static void
session_pick_poll_cb(uv_poll_t *h, int status, int events)
{
	struct session_pick *p = h->data;
	struct session *s = p->session;

	session_pick_result(p);
	if (status < 0)
		p->eof = true;
	else if (events & UV_READABLE)
		session_pick_read(p, false);
	session_dirty(s);
	s->host->ops->wake(s->host);
}

/* Start the helper on a new PTY with a pipe on its fd 3. */
int
session_pick_start(struct session *s, const struct cfg_user *u)
{
	struct strv a = { 0 }, e = { 0 };
	struct session_pick *p = NULL;
	struct pty_spawn_opts o;
	struct pty_child child;
	int fds[2] = { -1, -1 }, r;

	if (s->config->nkube == 0)
		return 1;
	if ((r = session_pick_argv(s, u, &a)) != 0 || (r = session_pick_env(s, &a, &e)) < 0)
		goto out;
	if ((p = calloc(1, sizeof *p)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	p->session = s;
	p->master = p->result = -1;
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = -errno;
		goto out;
	}
	memset(&o, 0, sizeof o);
	o.path = SESSION_PICK_SELF;
	o.argv = a.v;
	o.envp = e.v;
	o.cwd = "/";
	o.stdio = PTY_STDIO_PTY;
	o.cols = s->cols;
	o.rows = s->rows;
	o.nonblock = true;
	o.extra_fd = fds[1];
	if ((r = pty_spawn(&o, &child)) < 0) {
		log_warn_r(r, "session %s: cannot start the pod picker", s->id);
		goto out;
	}
	close(fds[1]);
	fds[1] = -1;
	p->pid = child.pid;
	p->master = child.master;
	p->result = fds[0];
	fds[0] = -1;		/* transferred */
	if ((r = uv_poll_init(s->host->broker->loop, &p->poll, p->master)) < 0) {
		log_error("session %s: poll: %s", s->id, uv_strerror(r));
		kill(-p->pid, SIGKILL);
		pty_wait(p->pid, false, NULL);
		close(p->master);
		close(p->result);
		r = -EIO;
		goto out;
	}
	p->poll.data = p;
	p->inited = true;
	s->handles++;
	s->pick = p;
	p = NULL;		/* transferred */
	log_info("session %s: %s@%s: pod picker (pid %d)", s->id[0] != '\0' ? s->id : "-",
	    s->host->user, s->host->client, (int)s->pick->pid);
	session_pick_after_io(s);
	r = 0;
out:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	free(p);
	target_free_pairs(a.v);
	target_free_pairs(e.v);
	return r;
}

/* Pass client keys to the helper; a full PTY drops them. */
uint32_t
session_pick_input(struct session *s, const uint8_t *data, uint32_t len)
{
	struct session_pick *p = s->pick;
	size_t off = 0;
	ssize_t n;

	while (p != NULL && p->master >= 0 && !p->exited && off < len) {
		n = write(p->master, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	return len;
}

/* Keep the helper's screen flowing while the client has room. */
void
session_pick_after_io(struct session *s)
{
	struct session_pick *p = s->pick;
	int ev;

	if (p == NULL || p->exited)
		return;
	ev = !p->eof && session_room(s) > 0 ? UV_READABLE : 0;
	if (ev != p->events) {
		if (ev != 0)
			uv_poll_start(&p->poll, ev, session_pick_poll_cb);
		else
			uv_poll_stop(&p->poll);
		p->events = ev;
	}
}

/* The helper exited: drain its screen, settle the pick, close the picker. */
static void
session_pick_end(struct session *s)
{
	struct session_pick *p = s->pick;
	bool picked;
	int status;

	session_pick_result(p);
	session_pick_read(p, true);
	status = p->status;
	picked = p->picked;
	session_pick_close(s);
	session_dirty(s);
	if (picked)
		return;
	if (status == KUBE_PICK_NONE) {
		session_refuse(s, "no targets for user", "podgate: no targets are available to you");
		return;
	}
	free(s->target);
	s->target = NULL;
	s->state = SESSION_PICKED;	/* with no target: "no target selected" */
}

/* Collect the helper's exit. */
void
session_pick_reap(struct session *s)
{
	struct session_pick *p = s->pick;
	struct pty_exit ex;

	if (p == NULL || p->exited || pty_wait(p->pid, true, &ex) < 0)
		return;
	p->exited = true;
	p->status = ex.signal > 0 ? 128 + ex.signal : ex.status;
	session_pick_end(s);
}

/* Give the helper the client's new window size. */
void
session_pick_resize(struct session *s)
{
	int r;

	if (s->pick != NULL && s->pick->master >= 0 &&
	    (r = pty_set_size(s->pick->master, s->cols, s->rows)) < 0)
		log_warn_r(r, "session %s: resize of the pod picker", s->id);
}

/* End the helper and its kubectl (one process group), then close. */
void
session_pick_release(struct session *s)
{
	struct session_pick *p = s->pick;

	if (p == NULL)
		return;
	if (!p->exited) {
		kill(-p->pid, SIGKILL);
		/* SIGKILL cannot be caught: this wait is short. */
		pty_wait(p->pid, false, NULL);
		p->exited = true;
	}
	session_pick_close(s);
}
