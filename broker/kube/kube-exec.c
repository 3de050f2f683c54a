/*
 * podgate-broker --kube-exec: the helper a kubernetes session runs as its
 * child (target-kube.c builds its argv and environment). It asks the API
 * server for the pod first (kubectl get -o json, bounded by --timeout),
 * resolves deploy/NAME and sts/NAME to a running pod, checks the phase and
 * the container, and on any failure prints ONE line on stderr, writes a
 * "target_failed" audit event and exits 1. Otherwise it runs kubectl exec
 * and stays as its parent: stdin and stdout (the session's PTY, or its
 * pipes) go to kubectl untouched, kubectl's stderr is relayed (dropping its
 * trailing "command terminated with exit code N", which ssh gets as the
 * exit status instead), and the helper exits with kubectl's status.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "policy/audit.h"
#include "kube/kube-exec.h"
#include "kube/kube-run.h"
#include "kube/kube.h"
#include "pty.h"

#define KX_OUT_MAX (16u * 1024 * 1024)
#define KX_ERR_MAX (64u * 1024)
#define KX_MAXGROUPS 32

extern char **environ;

struct kx {
	struct kube_exec e;
	const char *cluster, *target, *user, *session, *audit;
	const char *deploy, *sts;
	unsigned timeout;
	const char *as_groups[KX_MAXGROUPS + 1];
	/* what was found */
	char pod[KUBE_NAME_MAX + 1];
	char container[KUBE_LABEL_MAX + 1];
};

static volatile sig_atomic_t kx_child_pgid;

/* SIGHUP while kubectl get runs: end its process group with us. */
static void
kx_hup(int sig)
{
	if (kx_child_pgid > 0)
		kill(-kx_child_pgid, SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The reason text of a kubectl error line: without "Error from server (X): " or "error: ". */
static const char *
kx_strip(const char *line)
{
	const char *p;

	if (strncmp(line, "Error from server", 17) == 0 && (p = strstr(line, "): ")) != NULL)
		return p + 3;
	if (strncmp(line, "error: ", 7) == 0)
		return line + 7;
	return line;
}

/* Print the one failure line, audit it, and exit 1 (no atexit handlers). */
static void kx_fail(const struct kx *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void
kx_fail(const struct kx *k, const char *fmt, ...)
{
	char whybuf[1024], line[1200];
	const char *why = whybuf;
	struct audit *a = NULL;
	va_list ap;
	size_t i;
	int n;

	va_start(ap, fmt);
	vsnprintf(whybuf, sizeof whybuf, fmt, ap);
	va_end(ap);
	for (i = 0; whybuf[i] != '\0'; i++) {
		if ((unsigned char)whybuf[i] < 0x20)
			whybuf[i] = ' ';
	}
	n = snprintf(line, sizeof line, "podgate: %s: %s\n", k->target, why);
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n :
	    sizeof line - 1) < 0) {
		/* nothing more to do */
	}
	if (k->audit != NULL && audit_open(k->audit, &a) == 0) {
		struct audit_field f[] = {
			AUDIT_STR("user", k->user),
			AUDIT_STR("session", k->session),
			AUDIT_STR("target", k->target),
			AUDIT_STR("cluster", k->cluster),
			AUDIT_STR("context", k->e.context),
			AUDIT_STR("namespace", k->e.ns),
			AUDIT_STR("pod", k->pod[0] != '\0' ? k->pod : k->e.pod),
			AUDIT_STR("container", k->container),
			AUDIT_STR("as_user", k->e.as_user),
			AUDIT_STR("reason", why),
		};
		audit_event(a, "target_failed", f, sizeof f / sizeof f[0]);
		audit_close(a);
	}
	_exit(1);
}

/*
 * Run argv with stdin from /dev/null, collecting stdout and stderr, for at
 * most timeout seconds (then its process group is killed). Returns its
 * exit status, or -ETIMEDOUT, or another negative errno (-ENOENT: no such
 * program).
 */
static int
kx_run(char **argv, unsigned timeout, struct buf *out, struct buf *err)
{
	/* A session of its own, so its process group can be ended with us (kx_hup). */
	const struct kube_run o = {
		.argv = argv, .timeout_ms = (long long)timeout * 1000, .out_max = KX_OUT_MAX,
		.err_max = KX_ERR_MAX, .cancel_fd = -1, .pgid = &kx_child_pgid,
	};

	return kube_run(&o, out, err);
}

/* Whether a kubectl error means the API server could not be reached. */
static bool
kx_unreachable(const char *line)
{
	static const char *const marks[] = {
		"The connection to the server", "Unable to connect to the server",
		"connection refused", "no such host", "i/o timeout", "deadline exceeded",
		"Client.Timeout", "dial tcp", "TLS handshake timeout",
	};
	size_t i;

	for (i = 0; i < sizeof marks / sizeof marks[0]; i++) {
		if (strstr(line, marks[i]) != NULL)
			return true;
	}
	return false;
}

/* Run kubectl get and return its stdout; fail with one clear line otherwise. */
static void
kx_get(struct kx *k, const char *resource, const char *name, char *const *extra,
    struct buf *out)
{
	struct buf err = { 0 };
	char **argv = NULL;
	const char *line;
	int r;

	if (kube_get_argv(&k->e, resource, name, k->timeout, extra, &argv) < 0)
		kx_fail(k, "out of memory");
	r = kx_run(argv, k->timeout, out, &err);
	kube_free_argv(argv);
	if (r == -ETIMEDOUT)
		kx_fail(k, "the API server of cluster %s did not answer within %us", k->cluster,
		    k->timeout);
	if (r < 0)
		kx_fail(k, "cannot run %s: %s", k->e.kubectl, strerror(-r));
	if (r == 0 && out->len > 0) {
		buf_free(&err);
		return;
	}
	line = kube_run_last_line(&err);
	if (kx_unreachable(line))
		kx_fail(k, "cannot reach the API server of cluster %s: %s", k->cluster, line);
	if (*line == '\0')
		kx_fail(k, "kubectl failed with status %d", r);
	kx_fail(k, "%s", kx_strip(line));
}

/* Pick the pod to exec into: the named one, or a running pod of the workload. */
static void
kx_find_pod(struct kx *k, struct kube_pod *pod)
{
	struct buf out = { 0 };
	struct kube_pod *pods = NULL;
	char *sel = NULL, *arg = NULL;
	size_t n = 0, i;

	if (k->deploy == NULL && k->sts == NULL) {
		kx_get(k, "pod", k->e.pod, NULL, &out);
		if (kube_pod_parse(out.data, out.len, pod) < 0)
			kx_fail(k, "kubectl printed something that is not a pod");
		buf_free(&out);
		return;
	}
	kx_get(k, k->deploy != NULL ? "deployment" : "statefulset",
	    k->deploy != NULL ? k->deploy : k->sts, NULL, &out);
	if (kube_selector_parse(out.data, out.len, &sel) < 0)
		kx_fail(k, "the %s has no usable selector", k->deploy != NULL ? "deployment" :
		    "statefulset");
	buf_free(&out);
	if (asprintf(&arg, "--selector=%s", sel) < 0)
		kx_fail(k, "out of memory");
	{
		char *extra[] = { arg, NULL };

		kx_get(k, "pods", NULL, extra, &out);
	}
	if (kube_pods_parse(out.data, out.len, &pods, &n) < 0)
		kx_fail(k, "kubectl printed something that is not a pod list");
	for (i = 0; i < n; i++) {
		if (strcmp(pods[i].phase, "Running") == 0 && !pods[i].deleting)
			break;
	}
	if (i == n)
		kx_fail(k, "the %s has no running pod", k->deploy != NULL ? "deployment" :
		    "statefulset");
	*pod = pods[i];
	memset(&pods[i], 0, sizeof pods[i]);	/* transferred */
	kube_pods_free(pods, n);
	free(sel);
	free(arg);
	buf_free(&out);
}

/* Check the pod's phase and container; settle which container to use. */
static void
kx_check_pod(struct kx *k, const struct kube_pod *pod)
{
	char list[512] = "";
	char *const *c;

	/* Names from the API server reach kubectl's argv: check them as the ones that go in. */
	if (pod->name == NULL || !kube_subdomain_ok(pod->name))
		kx_fail(k, "the API server returned a pod whose name is not a valid name");
	for (c = pod->containers; c != NULL && *c != NULL; c++) {
		if (!kube_label_ok(*c))
			kx_fail(k, "the API server returned a container whose name is not a valid "
			    "name in pod %s", pod->name);
	}
	snprintf(k->pod, sizeof k->pod, "%s", pod->name);
	if (strcmp(pod->phase, "Succeeded") == 0 || strcmp(pod->phase, "Failed") == 0)
		kx_fail(k, "cannot exec into a completed pod (phase %s)", pod->phase);
	if (pod->deleting)
		kx_fail(k, "pod %s is terminating", pod->name);
	if (strcmp(pod->phase, "Running") != 0)
		kx_fail(k, "pod %s is not running (phase %s)", pod->name, pod->phase);
	if (pod->containers == NULL || pod->containers[0] == NULL)
		kx_fail(k, "pod %s has no containers", pod->name);
	if (k->e.container != NULL) {
		if (!kube_pod_has_container(pod, k->e.container)) {
			for (c = pod->containers; *c != NULL; c++) {
				if (c != pod->containers)
					strncat(list, ", ", sizeof list - strlen(list) - 1);
				strncat(list, *c, sizeof list - strlen(list) - 1);
			}
			kx_fail(k, "container %s is not in pod %s (containers: %s)",
			    k->e.container, pod->name, list);
		}
		snprintf(k->container, sizeof k->container, "%s", k->e.container);
	} else if (pod->default_container != NULL && kube_label_ok(pod->default_container) &&
	    kube_pod_has_container(pod, pod->default_container)) {
		snprintf(k->container, sizeof k->container, "%s", pod->default_container);
	} else {
		snprintf(k->container, sizeof k->container, "%s", pod->containers[0]);
	}
}

/*
 * Copy kubectl's stderr to ours, holding back a line that may turn out to
 * be "command terminated with exit code N" (kubectl's report of the remote
 * status, which ssh gives as the exit status instead).
 */
struct kx_relay {
	char held[128];
	size_t nheld;
	bool candidate;		/* at a line start, or in a line that may be the report */
	bool complete;		/* held is a whole report line */
	char last[512];		/* the last complete line, for the audit */
	size_t nlast;
	char cur[512];
	size_t ncur;
};

static const char kx_terminated[] = "command terminated with exit code ";

/* Write all of buf to fd. */
static void
kx_write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* Pass n bytes of kubectl's stderr through the relay. */
static void
kx_relay(struct kx_relay *rl, const char *p, size_t n)
{
	const size_t t = sizeof kx_terminated - 1;
	size_t i;
	bool ok;

	for (i = 0; i < n; i++) {
		char ch = p[i];

		if (rl->ncur + 1 < sizeof rl->cur)
			rl->cur[rl->ncur++] = ch;
		if (ch == '\n') {
			memcpy(rl->last, rl->cur, rl->ncur);
			rl->nlast = rl->ncur;
			rl->ncur = 0;
		}
		if (rl->complete) {
			/* The report was not the last thing kubectl wrote: it is output. */
			kx_write_all(STDERR_FILENO, rl->held, rl->nheld);
			rl->nheld = 0;
			rl->complete = false;
			rl->candidate = true;
		}
		if (!rl->candidate) {
			kx_write_all(STDERR_FILENO, &ch, 1);
			rl->candidate = ch == '\n';
			continue;
		}
		rl->held[rl->nheld++] = ch;
		if (rl->nheld <= t)
			ok = memcmp(rl->held, kx_terminated, rl->nheld) == 0;
		else if (ch == '\n')
			ok = rl->complete = rl->nheld > t + 1;
		else
			ok = ch >= '0' && ch <= '9' && rl->nheld < sizeof rl->held - 1;
		if (!ok) {
			kx_write_all(STDERR_FILENO, rl->held, rl->nheld);
			rl->nheld = 0;
			rl->candidate = ch == '\n';
		}
	}
}

/*
 * Run kubectl exec as a child with stderr relayed; exit with its status.
 * Under a PTY kubectl still has the terminal as stdin and stdout (raw mode,
 * window size) and is in the helper's process group (SIGWINCH); its
 * stderr, where it reports the remote status, is the relayed pipe.
 */
static void
kx_exec_relayed(struct kx *k, char **argv)
{
	struct pty_spawn_opts o;
	struct pty_child c;
	struct kx_relay rl;
	char buf[16384];
	int pe[2], st, r;
	ssize_t n;
	pid_t pid;

	memset(&rl, 0, sizeof rl);
	rl.candidate = true;
	if (pipe2(pe, O_CLOEXEC) < 0)
		kx_fail(k, "pipe: %s", strerror(errno));
	memset(&o, 0, sizeof o);
	o.path = argv[0];
	o.argv = argv;
	o.envp = environ;
	o.stdio = PTY_STDIO_GIVEN;
	o.fds[0] = STDIN_FILENO;
	o.fds[1] = STDOUT_FILENO;
	o.fds[2] = pe[1];
	o.same_session = true;		/* the terminal's signals reach it */
	if ((r = pty_spawn(&o, &c)) == -EAGAIN || r == -ENOMEM)
		kx_fail(k, "fork: %s", strerror(-r));
	if (r < 0) {
		/* What a child that could not exec kubectl said, and its status. */
		dprintf(STDERR_FILENO, "podgate: %s: cannot run %s: %s\n", k->target, argv[0],
		    strerror(-r));
		_exit(127);
	}
	pid = c.pid;
	close(pe[1]);
	/* Our stdin and stdout stay with kubectl only. */
	close(STDIN_FILENO);
	close(STDOUT_FILENO);
	for (;;) {
		n = read(pe[0], buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		kx_relay(&rl, buf, (size_t)n);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st)) {
		char expect[64];
		int code = WEXITSTATUS(st);

		snprintf(expect, sizeof expect, "%s%d\n", kx_terminated, code);
		if (rl.nheld > 0 && !(rl.complete && code != 0 && strlen(expect) == rl.nheld &&
		    memcmp(expect, rl.held, rl.nheld) == 0))
			kx_write_all(STDERR_FILENO, rl.held, rl.nheld);
		if (code == 1 && rl.nlast > 0 && (strncmp(rl.last, "Error from server", 17) == 0 ||
		    strncmp(rl.last, "error: ", 7) == 0 || kx_unreachable(rl.last)) &&
		    k->audit != NULL) {
			struct audit *a = NULL;
			char why[512];

			snprintf(why, sizeof why, "%.*s", (int)(rl.nlast - 1), rl.last);
			const char *reason = kx_strip(why);
			if (audit_open(k->audit, &a) == 0) {
				struct audit_field f[] = {
					AUDIT_STR("user", k->user),
					AUDIT_STR("session", k->session),
					AUDIT_STR("target", k->target),
					AUDIT_STR("cluster", k->cluster),
					AUDIT_STR("namespace", k->e.ns),
					AUDIT_STR("pod", k->pod),
					AUDIT_STR("container", k->container),
					AUDIT_STR("as_user", k->e.as_user),
					AUDIT_STR("reason", reason),
				};
				audit_event(a, "target_failed", f, sizeof f / sizeof f[0]);
				audit_close(a);
			}
		}
		_exit(code);
	}
	if (rl.nheld > 0)
		kx_write_all(STDERR_FILENO, rl.held, rl.nheld);
	signal(WTERMSIG(st), SIG_DFL);
	raise(WTERMSIG(st));
	_exit(128 + WTERMSIG(st));
}

/* Read --name=value options up to "--"; the words after it are the command. */
static int
kx_parse(int argc, char **argv, struct kx *k)
{
	size_t ngroups = 0;
	int i;

	memset(k, 0, sizeof *k);
	k->timeout = 10;
	k->target = "?";
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = strchr(a, '=');
		size_t klen = v != NULL ? (size_t)(v - a) : strlen(a);

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "--tty") == 0) {
			k->e.tty = true;
			continue;
		}
		if (v == NULL)
			return -EINVAL;
		v++;
#define KX_OPT(name) (klen == sizeof(name) - 1 && memcmp(a, name, klen) == 0)
		if (KX_OPT("--kubectl"))
			k->e.kubectl = v;
		else if (KX_OPT("--kubeconfig"))
			k->e.kubeconfig = v;
		else if (KX_OPT("--context"))
			k->e.context = v;
		else if (KX_OPT("--timeout"))
			k->timeout = (unsigned)strtoul(v, NULL, 10);
		else if (KX_OPT("--cluster"))
			k->cluster = v;
		else if (KX_OPT("--target"))
			k->target = v;
		else if (KX_OPT("--user"))
			k->user = v;
		else if (KX_OPT("--session"))
			k->session = v;
		else if (KX_OPT("--audit"))
			k->audit = v;
		else if (KX_OPT("--namespace"))
			k->e.ns = v;
		else if (KX_OPT("--pod"))
			k->e.pod = v;
		else if (KX_OPT("--deploy"))
			k->deploy = v;
		else if (KX_OPT("--sts"))
			k->sts = v;
		else if (KX_OPT("--container"))
			k->e.container = v;
		else if (KX_OPT("--as"))
			k->e.as_user = v;
		else if (KX_OPT("--as-group") && ngroups < KX_MAXGROUPS)
			k->as_groups[ngroups++] = v;
		else
			return -EINVAL;
#undef KX_OPT
	}
	k->e.as_groups = (char *const *)k->as_groups;
	k->e.nas_groups = ngroups;
	k->e.command = i < argc ? argv + i : NULL;
	if (k->e.kubectl == NULL || k->e.ns == NULL || k->cluster == NULL ||
	    (k->e.pod == NULL && k->deploy == NULL && k->sts == NULL) ||
	    k->e.command == NULL || k->e.command[0] == NULL || k->timeout == 0)
		return -EINVAL;
	return 0;
}

/* The helper's main: preflight, then kubectl exec. Never returns on success. */
int
kube_exec_main(int argc, char **argv)
{
	struct kube_pod pod;
	struct kx k;
	char **xargv = NULL;

	if (kx_parse(argc, argv, &k) < 0) {
		fprintf(stderr, "podgate-broker: --kube-exec is for the broker's own use\n");
		return 2;
	}
	signal(SIGHUP, kx_hup);
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	kx_find_pod(&k, &pod);
	kx_check_pod(&k, &pod);
	kube_pod_clear(&pod);
	k.e.pod = k.pod;
	k.e.container = k.container;
	if (kube_exec_argv(&k.e, &xargv) < 0)
		kx_fail(&k, "out of memory");
	signal(SIGHUP, SIG_DFL);
	kx_exec_relayed(&k, xargv);
	return 1;
}
