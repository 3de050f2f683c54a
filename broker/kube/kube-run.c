/*
 * Running kubectl from the helpers, with a deadline (kube-run.h).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kube/kube-run.h"
#include "kube/kube.h"
#include "pty.h"

extern char **environ;

/* Milliseconds on the monotonic clock. */
static long long
kube_run_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
kube_run(const struct kube_run *o, struct buf *out, struct buf *err)
{
	struct pty_spawn_opts so;
	struct pty_child c;
	struct pty_exit ex;
	struct pollfd pf[3];
	long long deadline = kube_run_now_ms() + o->timeout_ms, left;
	int r = 0, nfd, npf, i;
	char buf[16384];
	ssize_t n;

	memset(&so, 0, sizeof so);
	so.path = o->argv[0];
	so.argv = o->argv;
	so.envp = o->envp != NULL ? o->envp : environ;
	so.stdio = PTY_STDIO_PIPES;
	so.same_session = o->same_session;
	if ((r = pty_spawn(&so, &c)) < 0)
		return r;
	if (o->pgid != NULL && !o->same_session)
		*o->pgid = c.pid;
	/* Nothing to say to it: its input ends at once, as /dev/null's would. */
	close(c.in);
	pf[0].fd = c.out;
	pf[1].fd = c.err;
	pf[2].fd = o->cancel_fd;
	npf = o->cancel_fd >= 0 && o->cancel != NULL ? 3 : 2;
	while (pf[0].fd >= 0 || pf[1].fd >= 0) {
		if ((left = deadline - kube_run_now_ms()) <= 0) {
			r = -ETIMEDOUT;
			break;
		}
		for (i = 0; i < npf; i++)
			pf[i].events = POLLIN;
		nfd = poll(pf, (nfds_t)npf, left > 60000 ? 60000 : (int)left);
		if (nfd < 0 && errno == EINTR)
			continue;
		if (nfd < 0) {
			r = -errno;
			break;
		}
		if (npf == 3 && pf[2].revents != 0 && o->cancel()) {
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
			kube_capture(i == 0 ? out : err, buf, (size_t)n, i == 0 ? o->out_max :
			    o->err_max);
		}
	}
	for (i = 0; i < 2; i++) {
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	}
	if (r < 0)
		kill(o->same_session ? c.pid : -c.pid, SIGKILL);
	(void)pty_wait(c.pid, false, &ex);
	if (o->pgid != NULL)
		*o->pgid = 0;
	if (r < 0)
		return r;
	return ex.status >= 0 ? ex.status : 128 + ex.signal;
}

/* The last non-empty line of b (in place), or "". */
const char *
kube_run_last_line(struct buf *b)
{
	char *end, *start;

	if (b->data == NULL)
		return "";
	end = b->data + b->len;
	while (end > b->data && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	*end = '\0';
	start = end;
	while (start > b->data && start[-1] != '\n')
		start--;
	return start;
}
