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
 * The screen is drawn with plain escape sequences on the alternate screen
 * and fits any size from 20x5 up; 80x24 shows 19 pods at a time.
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
#include "kube/kube-pick.h"
#include "kube/kube.h"
#include "policy/pattern.h"

#define KP_MAXGROUPS 32		/* query groups */
#define KP_MAXLIST 64		/* namespaces, allow patterns, as-groups per group */
#define KP_OUT_MAX (32u * 1024 * 1024)
#define KP_ERR_MAX (64u * 1024)
#define KP_FILTER_MAX 64
#define KP_MSG_MAX 512
#define KP_RESULT_FD 3

/* One query group: a cluster, an identity, namespaces and patterns. */
struct kp_group {
	const char *cluster, *cache;
	struct kube_exec e;
	unsigned timeout;
	bool all;
	const char *ns[KP_MAXLIST];
	size_t nns;
	const char *allow[KP_MAXLIST];
	size_t nallow;
	const char *as_groups[KP_MAXLIST + 1];
	size_t nas_groups;
	bool native;			/* --native: the API server directly, not kubectl */
	struct kube_conn *conn;		/* native: kept alive across the group's lists */
};

/* One row of the list. */
struct kp_entry {
	char *target;		/* what a pick writes: "CLUSTER:NS/POD[/CONTAINER]" or "local" */
	char *where;		/* NAMESPACE column ("CLUSTER:NS" with several clusters) */
	char *name;
	char *containers;	/* "app,sidecar" */
	char *status;
	time_t created;		/* 0: unknown (no age shown) */
	char *key;		/* lowercase text the filter looks in */
};

struct kp {
	struct kp_group g[KP_MAXGROUPS];
	size_t ng;
	bool local;
	bool multi;		/* several clusters: show the cluster with the namespace */
	struct kp_entry *v;
	size_t n, max;
	char msg[KP_MSG_MAX];	/* failures of the listing, shown under the list */
	/* the screen */
	unsigned cols, rows;
	char filter[KP_FILTER_MAX];
	size_t nfilter;
	size_t *shown, nshown;	/* indexes into v that pass the filter */
	size_t sel, top;	/* selected and first visible index into shown */
	struct termios saved;
	bool raw;
};

static volatile sig_atomic_t kp_winch;

/* SIGWINCH: redraw at the next turn. */
static void
kp_winch_cb(int sig)
{
	(void)sig;
	kp_winch = 1;
}

/* Write all of buf to the terminal. */
static void
kp_write(const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(STDOUT_FILENO, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* A growing output buffer for one screen. */
struct kp_out {
	char *data;
	size_t len, max;
	bool oom;
};

/* Append formatted text. */
static void kp_printf(struct kp_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
kp_printf(struct kp_out *o, const char *fmt, ...)
{
	va_list ap;
	char *nd;
	int n;

	if (o->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (o->len + (size_t)n + 1 > o->max) {
		o->max = (o->len + (size_t)n + 1) * 2;
		if ((nd = realloc(o->data, o->max)) == NULL) {
			o->oom = true;
			return;
		}
		o->data = nd;
	}
	va_start(ap, fmt);
	vsnprintf(o->data + o->len, o->max - o->len, fmt, ap);
	va_end(ap);
	o->len += (size_t)n;
}

/* Append s in exactly w columns: cut with '~', or padded with blanks. */
static void
kp_cell(struct kp_out *o, const char *s, size_t w)
{
	size_t len = strlen(s);

	if (w == 0)
		return;
	if (len > w)
		kp_printf(o, "%.*s~", (int)(w - 1), s);
	else
		kp_printf(o, "%s%*s", s, (int)(w - len), "");
}

/* Put the terminal back as it was and leave the alternate screen. */
static void
kp_restore(struct kp *k)
{
	static const char leave[] = "\033[?25h\033[?1049l";

	if (!k->raw)
		return;
	kp_write(leave, sizeof leave - 1);
	tcsetattr(STDIN_FILENO, TCSADRAIN, &k->saved);
	k->raw = false;
}

/* Raw mode (no echo, no signals from keys) on the alternate screen. */
static void
kp_enter(struct kp *k)
{
	static const char enter[] = "\033[?1049h\033[?25l\033[H\033[2J";
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &k->saved) == 0) {
		t = k->saved;
		t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL |
		    IXON);
		t.c_oflag &= ~(tcflag_t)OPOST;
		t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
		t.c_cflag |= CS8;
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0)
			k->raw = true;
	}
	kp_write(enter, sizeof enter - 1);
}

/* Read the terminal's size (80x24 when it has none). */
static void
kp_size(struct kp *k)
{
	struct winsize ws;

	k->cols = 80;
	k->rows = 24;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
		k->cols = ws.ws_col;
		k->rows = ws.ws_row;
	}
}

/* Keep only printable ASCII of s, in place. */
static void
kp_printable(char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
	}
}

/* Add a failure to the message line. */
static void kp_note(struct kp *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
kp_note(struct kp *k, const char *fmt, ...)
{
	size_t len = strlen(k->msg);
	va_list ap;

	if (len > 0 && len + 2 < sizeof k->msg) {
		memcpy(k->msg + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(k->msg + len, sizeof k->msg - len, fmt, ap);
	va_end(ap);
	kp_printable(k->msg);
}

/* Show a one-line status while pods are being listed. */
static void
kp_status(struct kp *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
kp_status(struct kp *k, const char *fmt, ...)
{
	struct kp_out o = { 0 };
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	kp_printf(&o, "\033[H\033[2J");
	kp_cell(&o, line, k->cols > 1 ? k->cols - 1 : 1);
	if (!o.oom)
		kp_write(o.data, o.len);
	free(o.data);
}

/* ---- listing ---- */

/* Milliseconds on the monotonic clock. */
static long long
kp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
kp_run(char **argv, const char *home, unsigned timeout, struct kube_buf *out, struct kube_buf *err)
{
	struct pollfd pf[3];
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, st, r = 0, nfd, i;
	long long deadline = kp_now_ms() + (long long)timeout * 1000 + 1000, left;
	char buf[16384];
	ssize_t n;
	pid_t pid;

	if (pipe2(po, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(pe, O_CLOEXEC) < 0) {
		r = -errno;
		close(po[0]);
		close(po[1]);
		return r;
	}
	if ((pid = fork()) < 0) {
		r = -errno;
		close(po[0]);
		close(po[1]);
		close(pe[0]);
		close(pe[1]);
		return r;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		signal(SIGWINCH, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		if (null < 0 || dup2(null, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
			_exit(127);
		if (home != NULL)
			setenv("HOME", home, 1);
		execvp(argv[0], argv);
		dprintf(2, "error: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	pf[0].fd = po[0];
	pf[1].fd = pe[0];
	pf[2].fd = STDIN_FILENO;
	while (pf[0].fd >= 0 || pf[1].fd >= 0) {
		left = deadline - kp_now_ms();
		if (left <= 0) {
			r = -ETIMEDOUT;
			break;
		}
		for (i = 0; i < 3; i++)
			pf[i].events = POLLIN;
		nfd = poll(pf, 3, (int)left);
		if (nfd < 0 && errno == EINTR)
			continue;
		if (nfd < 0) {
			r = -errno;
			break;
		}
		if (pf[2].revents != 0 && kp_cancel_key()) {
			r = -ECANCELED;
			break;
		}
		for (i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || pf[i].revents == 0)
				continue;
			n = read(pf[i].fd, buf, sizeof buf);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				continue;
			}
			kube_buf_add(i == 0 ? out : err, buf, (size_t)n, i == 0 ? KP_OUT_MAX : KP_ERR_MAX);
		}
	}
	for (i = 0; i < 2; i++) {
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	}
	if (r < 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (r < 0)
		return r;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* The last non-empty line of b without kubectl's "Error from server (X): ". */
static const char *
kp_reason(struct kube_buf *b)
{
	char *end, *start;
	const char *p;

	if (b->data == NULL)
		return "";
	end = b->data + b->len;
	while (end > b->data && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	*end = '\0';
	start = end;
	while (start > b->data && start[-1] != '\n')
		start--;
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
	struct kube_buf out = { 0 }, err = { 0 };
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
		kp_note(k, "cannot run %s: %s", g->e.kubectl, strerror(-r));
	else if (r != 0) {
		why = kp_reason(&err);
		kp_note(k, "cluster %s: %s", g->cluster, *why != '\0' ? why : "kubectl failed");
	} else if (kube_pods_parse(out.data != NULL ? out.data : "", out.len, &pods, &n) < 0)
		kp_note(k, "cluster %s: kubectl printed something that is not a pod list",
		    g->cluster);
	else if (kp_add_pods(k, g, pods, n) < 0)
		kp_note(k, "out of memory");
	kube_pods_free(pods, n);
	free(out.data);
	free(err.data);
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

/* ---- the screen ---- */

/* Recompute which entries pass the filter; keep the selection in range. */
static void
kp_refilter(struct kp *k)
{
	char needle[KP_FILTER_MAX];
	size_t i;

	for (i = 0; i <= k->nfilter && i < sizeof needle; i++)
		needle[i] = (char)(k->filter[i] >= 'A' && k->filter[i] <= 'Z' ?
		    k->filter[i] - 'A' + 'a' : k->filter[i]);
	k->nshown = 0;
	for (i = 0; i < k->n; i++) {
		if (k->nfilter == 0 || strstr(k->v[i].key, needle) != NULL)
			k->shown[k->nshown++] = i;
	}
	if (k->sel >= k->nshown)
		k->sel = k->nshown > 0 ? k->nshown - 1 : 0;
}

/* How many list rows the screen has. */
static size_t
kp_list_rows(const struct kp *k)
{
	return k->rows > 4 ? k->rows - 4 : 1;
}

/* An age like kubectl's: 45s, 12m, 3h, 5d. */
static void
kp_age(time_t created, char *buf, size_t len)
{
	time_t now = time(NULL);
	long long d;

	if (created == 0 || now < created) {
		snprintf(buf, len, "%s", created == 0 ? "?" : "0s");
		return;
	}
	d = (long long)(now - created);
	if (d < 120)
		snprintf(buf, len, "%llds", d);
	else if (d < 2 * 3600)
		snprintf(buf, len, "%lldm", d / 60);
	else if (d < 2 * 86400)
		snprintf(buf, len, "%lldh", d / 3600);
	else
		snprintf(buf, len, "%lldd", d / 86400);
}

/* Draw the whole screen. */
static void
kp_draw(struct kp *k)
{
	struct kp_out o = { 0 };
	size_t w = k->cols > 1 ? k->cols - 1 : 1;	/* never write the last column */
	size_t rows = kp_list_rows(k), i, wns, wname, wcont, wage = 5, wst, rest;
	char age[32], title[128];

	wst = w >= 70 ? 17 : w >= 50 ? 12 : 8;
	rest = w > 2 + 4 + wage + wst + 6 ? w - 2 - 4 - wage - wst : 6;
	wns = rest * 27 / 100;
	wcont = rest * 25 / 100;
	wname = rest - wns - wcont;
	if (k->sel < k->top)
		k->top = k->sel;
	if (k->sel >= k->top + rows)
		k->top = k->sel - rows + 1;
	if (k->top + rows > k->nshown)
		k->top = k->nshown > rows ? k->nshown - rows : 0;

	kp_printf(&o, "\033[H\033[1m");
	snprintf(title, sizeof title, "podgate: pick a target (%zu of %zu)", k->nshown, k->n);
	kp_cell(&o, title, w);
	kp_printf(&o, "\033[0m\033[K\r\n\033[1m  ");
	kp_cell(&o, "NAMESPACE", wns);
	kp_printf(&o, " ");
	kp_cell(&o, "NAME", wname);
	kp_printf(&o, " ");
	kp_cell(&o, "CONTAINERS", wcont);
	kp_printf(&o, " ");
	kp_cell(&o, "AGE", wage);
	kp_printf(&o, " ");
	kp_cell(&o, "STATUS", wst);
	kp_printf(&o, "\033[0m\033[K");
	for (i = 0; i < rows; i++) {
		size_t idx = k->top + i;
		const struct kp_entry *e;

		kp_printf(&o, "\r\n");
		if (idx >= k->nshown) {
			if (idx == 0)
				kp_printf(&o, "  %s", k->n == 0 ? "(no targets)" : "(nothing matches)");
			kp_printf(&o, "\033[K");
			continue;
		}
		e = &k->v[k->shown[idx]];
		if (idx == k->sel)
			kp_printf(&o, "\033[7m> ");
		else
			kp_printf(&o, "  ");
		kp_age(e->created, age, sizeof age);
		kp_cell(&o, e->where, wns);
		kp_printf(&o, " ");
		kp_cell(&o, e->name, wname);
		kp_printf(&o, " ");
		kp_cell(&o, e->containers, wcont);
		kp_printf(&o, " ");
		kp_cell(&o, strcmp(e->target, "local") == 0 ? "" : age, wage);
		kp_printf(&o, " ");
		kp_cell(&o, e->status, wst);
		kp_printf(&o, "\033[0m\033[K");
	}
	kp_printf(&o, "\r\n");
	kp_cell(&o, k->msg[0] != '\0' ? k->msg :
	    "Up/Down PgUp/PgDn move, type to filter, Enter picks, q or ^C quits", w);
	kp_printf(&o, "\033[K\r\nfilter: %.*s\033[K", (int)(w > 9 ? w - 9 : 0), k->filter);
	if (!o.oom)
		kp_write(o.data, o.len);
	free(o.data);
}

/*
 * Pick the selected entry: write it to fd 3, then leave the screen and
 * exit. The line goes first: the session stops passing keys on once it
 * sees it, so what the user types next reaches the target.
 */
static void __attribute__((noreturn))
kp_pick(struct kp *k)
{
	const char *t = k->v[k->shown[k->sel]].target;
	char line[KUBE_NAME_MAX * 2 + 8];
	int n;

	n = snprintf(line, sizeof line, "%s\n", t);
	if (n <= 0 || (size_t)n >= sizeof line || write(KP_RESULT_FD, line, (size_t)n) != n) {
		kp_restore(k);
		_exit(KUBE_PICK_CANCEL);
	}
	kp_restore(k);
	_exit(KUBE_PICK_OK);
}

/* Move the selection by d rows. */
static void
kp_move(struct kp *k, long d)
{
	long s = (long)k->sel + d;

	if (s < 0 || k->nshown == 0)
		s = 0;
	else if ((size_t)s >= k->nshown)
		s = (long)k->nshown - 1;
	k->sel = (size_t)s;
}

/*
 * Handle the keys in buf (len bytes). Escape sequences: arrows (CSI or
 * SS3), PgUp/PgDn, Home/End. Returns false to quit without a pick.
 */
static bool
kp_keys(struct kp *k, const unsigned char *buf, size_t len)
{
	long page = (long)kp_list_rows(k);
	size_t i = 0;

	while (i < len) {
		unsigned char c = buf[i++];

		if (c == 0x1b) {
			if (i >= len) {
				/* Escape alone: clear the filter, or quit. */
				if (k->nfilter == 0)
					return false;
				k->nfilter = 0;
				k->filter[0] = '\0';
				kp_refilter(k);
				continue;
			}
			if (buf[i] != '[' && buf[i] != 'O')
				continue;
			i++;
			/* CSI params then a final byte */
			{
				char param[8] = "";
				size_t np = 0;

				while (i < len && buf[i] >= 0x30 && buf[i] <= 0x3f) {
					if (np + 1 < sizeof param)
						param[np++] = (char)buf[i];
					i++;
				}
				param[np] = '\0';
				if (i >= len)
					break;
				c = buf[i++];
				if (c == 'A')
					kp_move(k, -1);
				else if (c == 'B')
					kp_move(k, 1);
				else if (c == 'H')
					k->sel = 0;
				else if (c == 'F')
					kp_move(k, (long)k->nshown);
				else if (c == '~' && strcmp(param, "5") == 0)
					kp_move(k, -page);
				else if (c == '~' && strcmp(param, "6") == 0)
					kp_move(k, page);
				else if (c == '~' && (strcmp(param, "1") == 0 || strcmp(param, "7") == 0))
					k->sel = 0;
				else if (c == '~' && (strcmp(param, "4") == 0 || strcmp(param, "8") == 0))
					kp_move(k, (long)k->nshown);
			}
			continue;
		}
		if (c == '\r' || c == '\n') {
			if (k->nshown > 0)
				kp_pick(k);
			continue;
		}
		if (c == 0x03 || c == 0x04)
			return false;
		if (c == 'q' && k->nfilter == 0)
			return false;
		if (c == 0x0e)			/* ^N */
			kp_move(k, 1);
		else if (c == 0x10)		/* ^P */
			kp_move(k, -1);
		else if (c == 0x7f || c == 0x08) {
			if (k->nfilter > 0) {
				k->filter[--k->nfilter] = '\0';
				kp_refilter(k);
			}
		} else if (c == 0x15) {		/* ^U */
			k->nfilter = 0;
			k->filter[0] = '\0';
			kp_refilter(k);
		} else if (c > 0x20 && c < 0x7f && k->nfilter + 1 < sizeof k->filter) {
			k->filter[k->nfilter++] = (char)c;
			k->filter[k->nfilter] = '\0';
			k->sel = 0;
			kp_refilter(k);
		}
	}
	return true;
}

/* Read keys until a pick (exits) or a cancel (returns). */
static void
kp_loop(struct kp *k)
{
	unsigned char buf[256];
	struct pollfd pf;
	ssize_t n;
	size_t len;

	kp_draw(k);
	for (;;) {
		if (kp_winch) {
			kp_winch = 0;
			kp_size(k);
			kp_draw(k);
		}
		n = read(STDIN_FILENO, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;		/* the terminal is gone */
		len = (size_t)n;
		/* A sequence split across reads: wait a moment for its rest. */
		while (buf[len - 1] == 0x1b || (len >= 2 && buf[len - 2] == 0x1b) ||
		    (len >= 3 && buf[len - 3] == 0x1b && buf[len - 2] == '[' &&
		    buf[len - 1] >= '0' && buf[len - 1] <= '9')) {
			pf.fd = STDIN_FILENO;
			pf.events = POLLIN;
			if (len >= sizeof buf || poll(&pf, 1, 50) <= 0)
				break;
			if ((n = read(STDIN_FILENO, buf + len, sizeof buf - len)) <= 0)
				break;
			len += (size_t)n;
		}
		if (!kp_keys(k, buf, len))
			return;
		kp_draw(k);
	}
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
