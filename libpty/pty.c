/*
 * libpty: pseudo-terminals, child processes and local terminal modes.
 *
 * The contract is in pty.h. Everything the child does between vfork(2) and
 * execve(2) is async-signal-safe: the parent may have other threads, and
 * the child shares its memory, so the child must not allocate, lock or
 * touch stdio.
 */

#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <grp.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "pty.h"

#define PTY_DEFAULT_COLS 80
#define PTY_DEFAULT_ROWS 24
#define PTY_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

/* Where the child's stdio comes from, prepared by the parent before fork. */
struct pty_spawn_plan {
	const char *path;		/* opts->path */
	char *const *argv;
	char *const *envp;		/* never NULL */
	const char *search;		/* PATH to search, NULL if path has a '/' */
	const char *cwd;
	bool ctty;			/* make stdio[0] the controlling terminal */
	bool setsid;			/* start a new session */
	int stdio[3];			/* child's fds for 0, 1 and 2 */
	int errfd;			/* write end of the exec-status pipe */
	int extra;			/* becomes fd 3, or -1 */
	int maxfd;			/* fallback bound for closing fds */
	int cgroup;			/* cgroup.procs to join, or -1 */
	bool set_ids;
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	size_t ngroups;
};

/* Signals that restore the terminal before being re-raised in raw mode. */
static const int pty_raw_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define PTY_RAW_NSIGNALS (sizeof(pty_raw_signals) / sizeof(pty_raw_signals[0]))

/*
 * Raw-mode state. It is only changed with pty_raw_signals blocked, so the
 * signal handler sees it whole.
 */
static volatile sig_atomic_t pty_raw_active;
static int pty_raw_fd = -1;
static struct termios pty_raw_saved;
static struct sigaction pty_raw_oldact[PTY_RAW_NSIGNALS];
static bool pty_raw_installed[PTY_RAW_NSIGNALS];
static bool pty_raw_atexit_done;

/* Close fd if it is open and mark it closed, keeping errno. */
static void
pty_close_fd(int *fd)
{
	int saved_errno = errno;

	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	errno = saved_errno;
}

/* Open a master/slave pair, both close-on-exec. */
int
pty_open(int *master, int *slave, bool nonblock)
{
	int m = -1, s = -1, r;
	int flags = O_RDWR | O_NOCTTY | O_CLOEXEC;
	char name[128];

	if (master != NULL)
		*master = -1;
	if (slave != NULL)
		*slave = -1;
	if (master == NULL || slave == NULL)
		return -EINVAL;

	if ((m = posix_openpt(flags | (nonblock ? O_NONBLOCK : 0))) == -1) {
		r = -errno;
		goto out;
	}
	if (grantpt(m) != 0 || unlockpt(m) != 0) {
		r = -errno;
		goto out;
	}
#ifdef TIOCGPTPEER
	/* Open the peer through the master: no path lookup, no race. */
	s = ioctl(m, TIOCGPTPEER, flags);
	if (s == -1 && errno != EINVAL && errno != ENOTTY) {
		r = -errno;
		goto out;
	}
#endif
	if (s == -1) {
		if ((r = ptsname_r(m, name, sizeof(name))) != 0) {
			r = -r;
			goto out;
		}
		if ((s = open(name, flags)) == -1) {
			r = -errno;
			goto out;
		}
	}

	*master = m;
	*slave = s;
	m = s = -1;	/* transferred */
	r = 0;
 out:
	pty_close_fd(&m);
	pty_close_fd(&s);
	return r;
}

/*
 * Close every fd from lo to hi inclusive (hi -1: to the end) in the child;
 * without close_range(2) the loop stops at maxfd.
 */
static void
pty_close_range(int lo, int hi, int maxfd)
{
	int fd;

	if (hi != -1 && lo > hi)
		return;
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned int)lo,
	    hi == -1 ? ~0U : (unsigned int)hi, 0) == 0)
		return;
#endif
	if (hi == -1 || hi > maxfd)
		hi = maxfd;
	for (fd = lo; fd <= hi; fd++)
		close(fd);
}

/* Report errno to the parent through the exec-status pipe and exit. */
static void __attribute__((noreturn))
pty_spawn_fail(const struct pty_spawn_plan *plan)
{
	int err = errno;
	ssize_t n;

	do {
		n = write(plan->errfd, &err, sizeof(err));
	} while (n == -1 && errno == EINTR);
	_exit(127);
}

/* Whether an exec error means "try the next PATH entry" (as execvp does). */
static bool
pty_spawn_try_next(int err)
{
	switch (err) {
	case ENOENT:
	case ENOTDIR:
	case ESTALE:
	case ENODEV:
	case ETIMEDOUT:
	case ENAMETOOLONG:
		return true;
	default:
		return false;
	}
}

/* Execute plan->path, searching plan->search; returns only on failure. */
static void
pty_spawn_exec(const struct pty_spawn_plan *plan)
{
	char buf[PATH_MAX];
	const char *p, *end, *file = plan->path;
	size_t dlen, flen = strlen(file);
	bool eacces = false;

	if (plan->search == NULL) {
		execve(file, plan->argv, plan->envp);
		return;
	}
	if (*file == '\0') {
		errno = ENOENT;
		return;
	}
	for (p = plan->search; ; p = end + 1) {
		if ((end = strchr(p, ':')) == NULL)
			end = p + strlen(p);
		dlen = (size_t)(end - p);
		if (dlen == 0) {
			/* An empty entry is the current directory. */
			execve(file, plan->argv, plan->envp);
		} else if (dlen + 1 + flen + 1 > sizeof(buf)) {
			errno = ENAMETOOLONG;
		} else {
			memcpy(buf, p, dlen);
			buf[dlen] = '/';
			memcpy(buf + dlen + 1, file, flen + 1);
			execve(buf, plan->argv, plan->envp);
		}
		if (errno == EACCES)
			eacces = true;
		else if (!pty_spawn_try_next(errno))
			return;
		if (*end == '\0')
			break;
	}
	errno = eacces ? EACCES : ENOENT;
}

/* Set up the child's process state and exec; never returns. */
static void __attribute__((noreturn))
pty_spawn_child(const struct pty_spawn_plan *shared)
{
	struct pty_spawn_plan mine = *shared, *plan = &mine;	/* the parent's stays as it is */
	struct sigaction sa;
	sigset_t none;
	int i, fd, sig;

	/* Keep the status pipe and the extra descriptor out of the way of 0..3. */
	if (plan->errfd < 4) {
		if ((fd = fcntl(plan->errfd, F_DUPFD_CLOEXEC, 4)) == -1)
			_exit(127);
		plan->errfd = fd;
	}
	if (plan->extra >= 0 && plan->extra < 4) {
		if ((fd = fcntl(plan->extra, F_DUPFD_CLOEXEC, 4)) == -1)
			pty_spawn_fail(plan);
		plan->extra = fd;
	}
	/* Join the session's cgroup first, so that everything it starts is in it. */
	if (plan->cgroup >= 0 && write(plan->cgroup, "0", 1) != 1)
		pty_spawn_fail(plan);

	/* Every disposition to default, then an empty mask. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		(void)sigaction(sig, &sa, NULL);	/* fails for reserved RT signals */
	}
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
		pty_spawn_fail(plan);

	if (plan->setsid && setsid() == -1)
		pty_spawn_fail(plan);
	if (plan->ctty && ioctl(plan->stdio[0], TIOCSCTTY, 0) == -1)
		pty_spawn_fail(plan);

	/* Lift the sources above 2 so that no dup2 below clobbers another. */
	for (i = 0; i < 3; i++) {
		if (plan->stdio[i] >= 3)
			continue;
		if ((fd = fcntl(plan->stdio[i], F_DUPFD_CLOEXEC, 3)) == -1)
			pty_spawn_fail(plan);
		plan->stdio[i] = fd;
	}
	for (i = 0; i < 3; i++) {
		/* dup2 clears close-on-exec on the new descriptor. */
		if (dup2(plan->stdio[i], i) == -1)
			pty_spawn_fail(plan);
	}
	if (plan->extra >= 0) {
		if (dup2(plan->extra, 3) == -1)
			pty_spawn_fail(plan);
		/* Closing from 4 on closes the source too. */
		pty_close_range(4, plan->errfd - 1, plan->maxfd);
	} else {
		pty_close_range(3, plan->errfd - 1, plan->maxfd);
	}
	pty_close_range(plan->errfd + 1, -1, plan->maxfd);

	if (plan->set_ids) {
		if (plan->ctty && fchown(0, plan->uid, (gid_t)-1) == -1)
			pty_spawn_fail(plan);
		if (setgroups(plan->ngroups, plan->groups) == -1 ||
		    setresgid(plan->gid, plan->gid, plan->gid) == -1 ||
		    setresuid(plan->uid, plan->uid, plan->uid) == -1)
			pty_spawn_fail(plan);
		/* Dropped for good: the old identity must be out of reach. */
		if (plan->uid != 0 && (setuid(0) != -1 || seteuid(0) != -1)) {
			errno = EPERM;
			pty_spawn_fail(plan);
		}
	}
	if (plan->cwd != NULL && chdir(plan->cwd) == -1)
		pty_spawn_fail(plan);

	pty_spawn_exec(plan);
	pty_spawn_fail(plan);
}

/*
 * Start the child with vfork: it shares the parent's memory until it has
 * exec'd (or exited), and the parent waits until then. Unlike fork, this
 * copies no page tables, so a child costs the same to start beside ten
 * sessions as beside thousands. The child touches only its own copy of
 * the plan, descriptors, signal dispositions and stack.
 */
static pid_t
pty_spawn_vfork(const struct pty_spawn_plan *plan)
{
	pid_t pid = vfork();

	if (pid == 0)
		pty_spawn_child(plan);
	return pid;
}

/* Find PATH= in envp, or NULL. */
static const char *
pty_spawn_getpath(char *const *envp)
{
	for (; *envp != NULL; envp++) {
		if (strncmp(*envp, "PATH=", 5) == 0)
			return *envp + 5;
	}
	return NULL;
}

/* Wait for pid, retrying on EINTR; returns waitpid's result. */
static pid_t
pty_waitpid(pid_t pid, int *wstatus, int flags)
{
	pid_t r;

	do {
		r = waitpid(pid, wstatus, flags);
	} while (r == -1 && errno == EINTR);
	return r;
}

/* Start a child on a new PTY, three pipes or given descriptors; report exec failure. */
int
pty_spawn(const struct pty_spawn_opts *opts, struct pty_child *child)
{
	static char *const empty_env[] = { NULL };
	struct pty_spawn_plan plan;
	struct pty_child c = { .pid = 0, .master = -1, .in = -1, .out = -1, .err = -1 };
	struct winsize ws;
	struct rlimit rl;
	sigset_t all, old;
	int slave = -1, cin = -1, cout = -1, cerr = -1, null = -1, i;
	int errpipe[2] = { -1, -1 };
	int p[2], r, err, wstatus;
	bool masked = false;
	ssize_t n;
	pid_t pid;

	if (child != NULL) {
		child->pid = 0;
		child->master = child->in = child->out = child->err = -1;
	}
	if (opts == NULL || child == NULL || opts->path == NULL ||
	    opts->argv == NULL || opts->argv[0] == NULL ||
	    (opts->stdio != PTY_STDIO_PTY && opts->stdio != PTY_STDIO_PIPES &&
	    opts->stdio != PTY_STDIO_GIVEN) ||
	    (opts->stdio == PTY_STDIO_PTY && opts->same_session))
		return -EINVAL;

	memset(&plan, 0, sizeof(plan));
	plan.path = opts->path;
	plan.argv = opts->argv;
	plan.envp = opts->envp != NULL ? opts->envp : empty_env;
	plan.cwd = opts->cwd;
	plan.errfd = -1;
	plan.extra = opts->extra_fd > 2 ? opts->extra_fd : -1;
	plan.cgroup = opts->cgroup_procs_fd > 2 ? opts->cgroup_procs_fd : -1;
	plan.set_ids = opts->set_ids;
	plan.uid = opts->uid;
	plan.gid = opts->gid;
	plan.groups = opts->groups;
	plan.ngroups = opts->ngroups;
	plan.setsid = !opts->same_session;
	if (strchr(opts->path, '/') == NULL) {
		if ((plan.search = pty_spawn_getpath(plan.envp)) == NULL)
			plan.search = PTY_DEFAULT_PATH;
	}
	plan.maxfd = 65535;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)INT_MAX)
		plan.maxfd = (int)rl.rlim_cur;

	if (opts->stdio == PTY_STDIO_PTY) {
		if ((r = pty_open(&c.master, &slave, opts->nonblock)) != 0)
			goto out;
		memset(&ws, 0, sizeof(ws));
		ws.ws_col = opts->cols != 0 ? opts->cols : PTY_DEFAULT_COLS;
		ws.ws_row = opts->rows != 0 ? opts->rows : PTY_DEFAULT_ROWS;
		if (ioctl(c.master, TIOCSWINSZ, &ws) == -1) {
			r = -errno;
			goto out;
		}
		if (opts->termios != NULL &&
		    tcsetattr(slave, TCSANOW, opts->termios) == -1) {
			r = -errno;
			goto out;
		}
		plan.ctty = true;
		plan.stdio[0] = plan.stdio[1] = plan.stdio[2] = slave;
	} else if (opts->stdio == PTY_STDIO_PIPES) {
		if (pipe2(p, O_CLOEXEC) == -1) {
			r = -errno;
			goto out;
		}
		cin = p[0];
		c.in = p[1];
		if (pipe2(p, O_CLOEXEC) == -1) {
			r = -errno;
			goto out;
		}
		c.out = p[0];
		cout = p[1];
		if (pipe2(p, O_CLOEXEC) == -1) {
			r = -errno;
			goto out;
		}
		c.err = p[0];
		cerr = p[1];
		if (opts->nonblock &&
		    ((r = pty_set_nonblock(c.in, true)) != 0 ||
		    (r = pty_set_nonblock(c.out, true)) != 0 ||
		    (r = pty_set_nonblock(c.err, true)) != 0))
			goto out;
		plan.stdio[0] = cin;
		plan.stdio[1] = cout;
		plan.stdio[2] = cerr;
	} else {
		for (i = 0; i < 3; i++) {
			if (opts->fds[i] >= 0) {
				plan.stdio[i] = opts->fds[i];
				continue;
			}
			if (null < 0 && (null = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1) {
				r = -errno;
				goto out;
			}
			plan.stdio[i] = null;
		}
	}

	if (pipe2(errpipe, O_CLOEXEC) == -1) {
		r = -errno;
		goto out;
	}
	plan.errfd = errpipe[1];

	/*
	 * Block everything across fork so that no handler of ours runs in
	 * the child before it has reset the dispositions.
	 */
	sigfillset(&all);
	if ((r = pthread_sigmask(SIG_SETMASK, &all, &old)) != 0) {
		r = -r;
		goto out;
	}
	masked = true;

	if ((pid = pty_spawn_vfork(&plan)) == -1) {
		r = -errno;
		goto out;
	}

	pthread_sigmask(SIG_SETMASK, &old, NULL);
	masked = false;
	c.pid = pid;

	/* The child's ends are its own now. */
	pty_close_fd(&slave);
	pty_close_fd(&cin);
	pty_close_fd(&cout);
	pty_close_fd(&cerr);
	pty_close_fd(&null);
	pty_close_fd(&errpipe[1]);

	/* EOF means execve succeeded; an int is the errno of the failure. */
	do {
		n = read(errpipe[0], &err, sizeof(err));
	} while (n == -1 && errno == EINTR);
	if (n == (ssize_t)sizeof(err)) {
		(void)pty_waitpid(pid, &wstatus, 0);
		c.pid = 0;
		r = err > 0 ? -err : -EIO;
		goto out;
	}
	/* A failed read cannot tell; the child runs or exits on its own. */

	*child = c;
	c.master = c.in = c.out = c.err = -1;	/* transferred */
	r = 0;
 out:
	if (masked)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	pty_close_fd(&slave);
	pty_close_fd(&cin);
	pty_close_fd(&cout);
	pty_close_fd(&cerr);
	pty_close_fd(&null);
	pty_close_fd(&errpipe[0]);
	pty_close_fd(&errpipe[1]);
	pty_child_close(&c);
	return r;
}

/* Close the parent's ends held in child. */
void
pty_child_close(struct pty_child *child)
{
	if (child == NULL)
		return;
	pty_close_fd(&child->master);
	pty_close_fd(&child->in);
	pty_close_fd(&child->out);
	pty_close_fd(&child->err);
}

/* Set the window size of a terminal. */
int
pty_set_size(int fd, unsigned short cols, unsigned short rows)
{
	struct winsize ws;

	memset(&ws, 0, sizeof(ws));
	ws.ws_col = cols;
	ws.ws_row = rows;
	if (ioctl(fd, TIOCSWINSZ, &ws) == -1)
		return -errno;
	return 0;
}

/* Get the window size of a terminal. */
int
pty_get_size(int fd, unsigned short *cols, unsigned short *rows)
{
	struct winsize ws;

	if (cols != NULL)
		*cols = 0;
	if (rows != NULL)
		*rows = 0;
	if (cols == NULL || rows == NULL)
		return -EINVAL;
	memset(&ws, 0, sizeof(ws));
	if (ioctl(fd, TIOCGWINSZ, &ws) == -1)
		return -errno;
	*cols = ws.ws_col;
	*rows = ws.ws_row;
	return 0;
}

/* Set or clear O_NONBLOCK on fd. */
int
pty_set_nonblock(int fd, bool on)
{
	int flags, nflags;

	if ((flags = fcntl(fd, F_GETFL)) == -1)
		return -errno;
	nflags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
	if (nflags != flags && fcntl(fd, F_SETFL, nflags) == -1)
		return -errno;
	return 0;
}

/* Wait for a child and translate how it ended. */
int
pty_wait(pid_t pid, bool nohang, struct pty_exit *ex)
{
	int wstatus = 0;
	pid_t r;

	if (ex != NULL)
		memset(ex, 0, sizeof(*ex));
	if (pid <= 0)
		return -EINVAL;
	if ((r = pty_waitpid(pid, &wstatus, nohang ? WNOHANG : 0)) == -1)
		return -errno;
	if (r == 0)
		return -EAGAIN;
	if (ex != NULL)
		pty_exit_from_wstatus(wstatus, ex);
	return 0;
}

/* Translate a wait(2) status into a pty_exit. */
void
pty_exit_from_wstatus(int wstatus, struct pty_exit *ex)
{
	memset(ex, 0, sizeof(*ex));
	if (WIFEXITED(wstatus)) {
		ex->status = WEXITSTATUS(wstatus);
	} else if (WIFSIGNALED(wstatus)) {
		ex->status = -1;
		ex->signal = WTERMSIG(wstatus);
#ifdef WCOREDUMP
		ex->core_dumped = WCOREDUMP(wstatus) != 0;
#endif
	} else {
		/* Stopped or continued: not an end; waitpid is never asked. */
		ex->status = -1;
	}
}

/* Turn t into its raw-mode variant, as cfmakeraw does. */
void
pty_termios_make_raw(struct termios *t)
{
	t->c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR |
	    IGNCR | ICRNL | IXON | IXANY | IXOFF);
	t->c_oflag &= ~(tcflag_t)OPOST;
	t->c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t->c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
	t->c_cflag |= CS8;
	t->c_cc[VMIN] = 1;
	t->c_cc[VTIME] = 0;
}

/* Put back the dispositions that pty_raw_enter replaced. */
static void
pty_raw_restore_signals(void)
{
	size_t i;

	for (i = 0; i < PTY_RAW_NSIGNALS; i++) {
		if (!pty_raw_installed[i])
			continue;
		(void)sigaction(pty_raw_signals[i], &pty_raw_oldact[i], NULL);
		pty_raw_installed[i] = false;
	}
}

/* Restore the terminal, drop our handlers and re-raise the signal. */
static void
pty_raw_signal_cb(int sig)
{
	int saved_errno = errno;

	if (pty_raw_active) {
		(void)tcsetattr(pty_raw_fd, TCSANOW, &pty_raw_saved);
		pty_raw_active = 0;
		pty_raw_fd = -1;
	}
	pty_raw_restore_signals();
	/* Blocked while we run: delivered on return, to the old disposition. */
	(void)raise(sig);
	errno = saved_errno;
}

/* Restore the terminal at exit(3). */
static void
pty_raw_atexit_cb(void)
{
	(void)pty_raw_leave();
}

/* Block (or unblock, with old) the signals the raw-mode handler catches. */
static void
pty_raw_block(sigset_t *old)
{
	sigset_t set;
	size_t i;

	sigemptyset(&set);
	for (i = 0; i < PTY_RAW_NSIGNALS; i++)
		sigaddset(&set, pty_raw_signals[i]);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

/* Save the modes of fd, make it raw and arrange for the restore. */
int
pty_raw_enter(int fd)
{
	struct termios saved, raw;
	struct sigaction sa, cur;
	sigset_t old;
	size_t i;
	int r;

	pty_raw_block(&old);
	if (pty_raw_active) {
		r = -EBUSY;
		goto out;
	}
	if (tcgetattr(fd, &saved) == -1) {
		r = -errno;
		goto out;
	}
	if (!pty_raw_atexit_done) {
		if (atexit(pty_raw_atexit_cb) != 0) {
			r = -ENOMEM;
			goto out;
		}
		pty_raw_atexit_done = true;
	}

	pty_raw_fd = fd;
	pty_raw_saved = saved;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pty_raw_signal_cb;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < PTY_RAW_NSIGNALS; i++)
		sigaddset(&sa.sa_mask, pty_raw_signals[i]);
	for (i = 0; i < PTY_RAW_NSIGNALS; i++) {
		if (sigaction(pty_raw_signals[i], NULL, &cur) == -1) {
			r = -errno;
			goto out;
		}
		/* An ignored signal stays ignored; the terminal stays raw. */
		if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_IGN)
			continue;
		if (sigaction(pty_raw_signals[i], &sa, &pty_raw_oldact[i]) == -1) {
			r = -errno;
			goto out;
		}
		pty_raw_installed[i] = true;
	}

	raw = saved;
	pty_termios_make_raw(&raw);
	if (tcsetattr(fd, TCSADRAIN, &raw) == -1) {
		r = -errno;
		goto out;
	}
	pty_raw_active = 1;
	r = 0;
 out:
	if (r != 0 && r != -EBUSY) {
		pty_raw_restore_signals();
		pty_raw_fd = -1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* Restore the terminal saved by pty_raw_enter and our signal handlers. */
int
pty_raw_leave(void)
{
	sigset_t old;
	int r = 0;

	pty_raw_block(&old);
	if (!pty_raw_active)
		goto out;
	if (tcsetattr(pty_raw_fd, TCSADRAIN, &pty_raw_saved) == -1)
		r = -errno;
	pty_raw_active = 0;
	pty_raw_fd = -1;
	pty_raw_restore_signals();
 out:
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}
