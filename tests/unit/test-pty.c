/*
 * Unit tests for libpty: spawning on a PTY, on pipes and on given
 * descriptors, in a new session or the caller's, exit statuses,
 * window size, descriptor and signal hygiene in the child, raw mode.
 *
 * Run without arguments to run the tests. The binary is also its own
 * helper child: "test-pty helper <what>" prints what a spawned child sees.
 */
#include <sys/ioctl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <termios.h>
#include <time.h>

#include "pty.h"
#include "unit.h"

extern char **environ;

/* Every wait for a child's output gives up after this long. */
#define TEST_DEADLINE_MS 20000

/* Output collected from a child. */
struct test_buf {
	char data[16384];
	size_t len;
	bool eof;
};

/* The path of this executable, for spawning it as a helper. */
static char test_self[PATH_MAX];

/* Milliseconds on the monotonic clock. */
static long long
test_now_ms(void)
{
	struct timespec ts;

	assert(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Read fd into b until needle appears (or, with needle NULL, until EOF)
 * or the deadline passes; returns whether the condition was met. EIO from
 * a PTY master counts as EOF: the slave side has gone.
 */
static bool
test_read_until(int fd, struct test_buf *b, const char *needle)
{
	long long deadline = test_now_ms() + TEST_DEADLINE_MS;
	struct pollfd pfd;
	ssize_t n;
	int left;

	for (;;) {
		b->data[b->len] = '\0';
		if (needle != NULL && strstr(b->data, needle) != NULL)
			return true;
		if (b->eof)
			return needle == NULL;
		if ((left = (int)(deadline - test_now_ms())) <= 0)
			return false;
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		n = poll(&pfd, 1, left);
		if (n == -1 && errno == EINTR)
			continue;
		assert(n >= 0);
		if (n == 0)
			continue;
		assert(b->len < sizeof(b->data) - 1);
		n = read(fd, b->data + b->len, sizeof(b->data) - 1 - b->len);
		if (n > 0)
			b->len += (size_t)n;
		else if (n == 0 || errno == EIO)
			b->eof = true;
		else
			assert(errno == EAGAIN || errno == EINTR);
	}
}

/* Read fd to EOF into b (cleared first) and return the text. */
static const char *
test_read_all(int fd, struct test_buf *b)
{
	memset(b, 0, sizeof(*b));
	assert(test_read_until(fd, b, NULL));
	return b->data;
}

/* Number of open descriptors in this process. */
static int
test_count_fds(void)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	assert((d = opendir("/proc/self/fd")) != NULL);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return n - 1;	/* the directory itself */
}

/* Whether this process has no child left to reap (no zombie). */
static bool
test_no_children(void)
{
	return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
}

/* Spawn argv (argv[0] is the path) with stdio mode and the default env. */
static void
test_spawn(enum pty_stdio stdio, char *const *argv, struct pty_child *c)
{
	struct pty_spawn_opts o;

	memset(&o, 0, sizeof(o));
	o.path = argv[0];
	o.argv = argv;
	o.envp = environ;
	o.stdio = stdio;
	assert(pty_spawn(&o, c) == 0);
	assert(c->pid > 0);
}

/* Wait for c to end, close its fds and check it ended with status. */
static void
test_finish(struct pty_child *c, int status)
{
	struct pty_exit ex;

	assert(pty_wait(c->pid, false, &ex) == 0);
	assert(ex.status == status);
	assert(ex.signal == 0);
	assert(!ex.core_dumped);
	pty_child_close(c);
}

/* Helper child: print the descriptors open in this process. */
static int
test_helper_fds(void)
{
	DIR *d;
	struct dirent *de;
	int dfd;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return 1;
	dfd = dirfd(d);
	printf("fds:");
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || atoi(de->d_name) == dfd)
			continue;
		printf(" %s", de->d_name);
	}
	printf("\n");
	closedir(d);
	return 0;
}

/* Helper child: print the ignored and the blocked signals. */
static int
test_helper_signals(void)
{
	struct sigaction sa;
	sigset_t mask;
	bool any = false;
	int sig;

	printf("ignored:");
	for (sig = 1; sig < NSIG; sig++) {
		if (sigaction(sig, NULL, &sa) == 0 &&
		    !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN) {
			printf(" %d", sig);
			any = true;
		}
	}
	printf("%s blocked:", any ? "" : " none");
	any = false;
	if (sigprocmask(SIG_BLOCK, NULL, &mask) != 0)
		return 1;
	for (sig = 1; sig < NSIG; sig++) {
		if (sigismember(&mask, sig) == 1) {
			printf(" %d", sig);
			any = true;
		}
	}
	printf("%s\n", any ? "" : " none");
	return 0;
}

/* Helper child: print its session, process group and terminal. */
static int
test_helper_session(void)
{
	const char *tty = ttyname(0);
	int fd;

	fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	printf("pid=%d sid=%d pgrp=%d tcsid=%d tcpgrp=%d isatty=%d devtty=%d tty=%s end\n",
	    (int)getpid(), (int)getsid(0), (int)getpgrp(), (int)tcgetsid(0),
	    (int)tcgetpgrp(0), isatty(0), fd >= 0, tty != NULL ? tty : "none");
	if (fd >= 0)
		close(fd);
	return 0;
}

/* Helper child: print whether 0, 1 and 2 are O_NONBLOCK. */
static int
test_helper_nonblock(void)
{
	int i, fl;

	printf("nonblock:");
	for (i = 0; i < 3; i++) {
		if ((fl = fcntl(i, F_GETFL)) == -1)
			return 1;
		printf(" %d", (fl & O_NONBLOCK) != 0);
	}
	printf("\n");
	return 0;
}

/* Spawn this binary as a helper printing what, in mode stdio. */
static void
test_spawn_helper(enum pty_stdio stdio, const char *what, struct pty_child *c)
{
	char *argv[] = { test_self, (char *)"helper", (char *)what, NULL };

	test_spawn(stdio, argv, c);
}

/* pty_open: two close-on-exec fds talking to each other. */
static void
test_open(void)
{
	int m, s, n;
	char buf[16];
	unsigned short cols, rows;

	assert(pty_open(&m, &s, false) == 0);
	assert(m >= 0 && s >= 0 && m != s);
	assert(fcntl(m, F_GETFD) & FD_CLOEXEC);
	assert(fcntl(s, F_GETFD) & FD_CLOEXEC);
	assert(!(fcntl(m, F_GETFL) & O_NONBLOCK));
	assert(isatty(s));
	assert(write(m, "x\n", 2) == 2);
	n = (int)read(s, buf, sizeof(buf));
	assert(n == 2 && memcmp(buf, "x\n", 2) == 0);

	assert(pty_set_size(m, 132, 43) == 0);
	assert(pty_get_size(s, &cols, &rows) == 0);
	assert(cols == 132 && rows == 43);
	close(m);
	close(s);

	assert(pty_open(&m, &s, true) == 0);
	assert(fcntl(m, F_GETFL) & O_NONBLOCK);
	assert(!(fcntl(s, F_GETFL) & O_NONBLOCK));
	assert(read(m, buf, sizeof(buf)) == -1 && errno == EAGAIN);
	assert(pty_set_nonblock(m, false) == 0);
	assert(!(fcntl(m, F_GETFL) & O_NONBLOCK));
	assert(pty_set_nonblock(m, true) == 0);
	assert(fcntl(m, F_GETFL) & O_NONBLOCK);
	close(m);
	close(s);
}

/* Output from a PTY child reaches the master; its exit status comes back. */
static void
test_exit_status(void)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"printf hello; exit 3", NULL };
	struct pty_child c;
	struct test_buf b;
	unsigned short cols, rows;

	test_spawn(PTY_STDIO_PTY, argv, &c);
	assert(c.master >= 0 && c.in == -1 && c.out == -1 && c.err == -1);
	assert(fcntl(c.master, F_GETFD) & FD_CLOEXEC);
	/* cols and rows 0: the default size. */
	assert(pty_get_size(c.master, &cols, &rows) == 0);
	assert(cols == 80 && rows == 24);
	assert(strcmp(test_read_all(c.master, &b), "hello") == 0);
	test_finish(&c, 3);
	assert(c.master == -1);
	pty_child_close(&c);	/* idempotent */
}

/* The child leads a new session whose controlling terminal is the PTY. */
static void
test_ctty(void)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"test -t 0 && test -t 1 && test -t 2 && echo TTY; tty", NULL };
	struct pty_child c;
	struct test_buf b;
	char pts[128], expect[512];
	int pid;

	test_spawn(PTY_STDIO_PTY, argv, &c);
	assert(ptsname_r(c.master, pts, sizeof(pts)) == 0);
	test_read_all(c.master, &b);
	snprintf(expect, sizeof(expect), "TTY\r\n%s\r\n", pts);
	assert(strcmp(b.data, expect) == 0);
	test_finish(&c, 0);

	test_spawn_helper(PTY_STDIO_PTY, "session", &c);
	assert(ptsname_r(c.master, pts, sizeof(pts)) == 0);
	test_read_all(c.master, &b);
	pid = (int)c.pid;
	snprintf(expect, sizeof(expect),
	    "pid=%d sid=%d pgrp=%d tcsid=%d tcpgrp=%d isatty=1 devtty=1 tty=%s end\r\n",
	    pid, pid, pid, pid, pid, pts);
	assert(strcmp(b.data, expect) == 0);
	test_finish(&c, 0);
}

/* A window size change reaches the child as SIGWINCH and a new size. */
static void
test_resize(void)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"trap 'stty size; exit 0' WINCH; echo ready; "
	    "while :; do sleep 0.05; done", NULL };
	struct pty_spawn_opts o;
	struct pty_child c;
	struct test_buf b;
	unsigned short cols, rows;

	memset(&o, 0, sizeof(o));
	o.path = argv[0];
	o.argv = argv;
	o.envp = environ;
	o.cols = 120;
	o.rows = 30;
	assert(pty_spawn(&o, &c) == 0);
	assert(pty_get_size(c.master, &cols, &rows) == 0);
	assert(cols == 120 && rows == 30);

	memset(&b, 0, sizeof(b));
	assert(test_read_until(c.master, &b, "ready\r\n"));
	assert(pty_set_size(c.master, 100, 40) == 0);
	assert(pty_get_size(c.master, &cols, &rows) == 0);
	assert(cols == 100 && rows == 40);
	assert(test_read_until(c.master, &b, "40 100\r\n"));
	test_read_until(c.master, &b, NULL);
	test_finish(&c, 0);
}

/* opts->termios is what the child finds on its terminal. */
static void
test_termios(void)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)"stty -a", NULL };
	struct pty_spawn_opts o;
	struct pty_child c;
	struct test_buf b;
	struct termios t;
	int m, s;

	/* Kernel defaults: echo on. */
	test_spawn(PTY_STDIO_PTY, argv, &c);
	test_read_all(c.master, &b);
	assert(strstr(b.data, " echo ") != NULL);
	test_finish(&c, 0);

	assert(pty_open(&m, &s, false) == 0);
	assert(tcgetattr(s, &t) == 0);
	close(m);
	close(s);
	t.c_lflag &= ~(tcflag_t)ECHO;
	memset(&o, 0, sizeof(o));
	o.path = argv[0];
	o.argv = argv;
	o.termios = &t;
	assert(pty_spawn(&o, &c) == 0);
	test_read_all(c.master, &b);
	assert(strstr(b.data, " -echo ") != NULL);
	test_finish(&c, 0);
}

/* A child killed by a signal: signal set, status -1. */
static void
test_killed(void)
{
	char *self[] = { (char *)"/bin/sh", (char *)"-c", (char *)"kill -TERM $$", NULL };
	char *sleeper[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"echo ready; exec sleep 30", NULL };
	struct pty_child c;
	struct pty_exit ex;
	struct test_buf b;

	test_spawn(PTY_STDIO_PTY, self, &c);
	test_read_all(c.master, &b);
	assert(pty_wait(c.pid, false, &ex) == 0);
	assert(ex.status == -1 && ex.signal == SIGTERM && !ex.core_dumped);
	pty_child_close(&c);

	test_spawn(PTY_STDIO_PTY, sleeper, &c);
	memset(&b, 0, sizeof(b));
	assert(test_read_until(c.master, &b, "ready\r\n"));
	ex.status = 99;
	assert(pty_wait(c.pid, true, &ex) == -EAGAIN);
	assert(ex.status == 0 && ex.signal == 0);	/* cleared */
	assert(kill(c.pid, SIGKILL) == 0);
	assert(pty_wait(c.pid, false, &ex) == 0);
	assert(ex.status == -1 && ex.signal == SIGKILL);
	pty_child_close(&c);
	assert(pty_wait(c.pid, true, &ex) == -ECHILD);
	assert(pty_wait(0, false, &ex) == -EINVAL);

	/* ex may be NULL. */
	test_spawn(PTY_STDIO_PIPES, self, &c);
	test_read_all(c.out, &b);
	assert(pty_wait(c.pid, false, NULL) == 0);
	pty_child_close(&c);
}

/* pty_exit_from_wstatus on exits, signals and core dumps. */
static void
test_wstatus(void)
{
	static const struct {
		int wstatus;
		int status, signal;
		bool core;
	} t[] = {
		{ 0x0000, 0, 0, false },
		{ 0x0300, 3, 0, false },
		{ 0xff00, 255, 0, false },
		{ 0x000f, -1, SIGTERM, false },
		{ 0x0009, -1, SIGKILL, false },
		{ 0x0086, -1, SIGABRT, true },
	};
	struct pty_exit ex;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&ex, 0x5a, sizeof(ex));
		pty_exit_from_wstatus(t[i].wstatus, &ex);
		assert(ex.status == t[i].status);
		assert(ex.signal == t[i].signal);
		assert(ex.core_dumped == t[i].core);
	}
}

/* PIPES mode: stdout and stderr apart, no master. */
static void
test_pipes(void)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"echo out; echo err >&2; exit 5", NULL };
	struct pty_child c;
	struct test_buf b;

	test_spawn(PTY_STDIO_PIPES, argv, &c);
	assert(c.master == -1 && c.in >= 0 && c.out >= 0 && c.err >= 0);
	assert(fcntl(c.in, F_GETFD) & FD_CLOEXEC);
	assert(fcntl(c.out, F_GETFD) & FD_CLOEXEC);
	assert(fcntl(c.err, F_GETFD) & FD_CLOEXEC);
	assert(!(fcntl(c.out, F_GETFL) & O_NONBLOCK));
	assert(strcmp(test_read_all(c.out, &b), "out\n") == 0);
	assert(strcmp(test_read_all(c.err, &b), "err\n") == 0);
	test_finish(&c, 5);
	assert(c.in == -1 && c.out == -1 && c.err == -1);
}

/* PIPES mode: what is written to in reaches the child, then EOF. */
static void
test_pipes_stdin(void)
{
	char *argv[] = { (char *)"cat", NULL };
	struct pty_child c;
	struct test_buf b;

	test_spawn(PTY_STDIO_PIPES, argv, &c);
	assert(write(c.in, "abc\n", 4) == 4);
	memset(&b, 0, sizeof(b));
	assert(test_read_until(c.out, &b, "abc\n"));
	assert(write(c.in, "def", 3) == 3);
	close(c.in);
	c.in = -1;
	assert(test_read_until(c.out, &b, NULL));
	assert(strcmp(b.data, "abc\ndef") == 0);
	assert(strcmp(test_read_all(c.err, &b), "") == 0);
	test_finish(&c, 0);
}

/* PIPES mode: a new session with no terminal; nonblock only on our ends. */
static void
test_pipes_session(void)
{
	char *argv[] = { test_self, (char *)"helper", (char *)"session", NULL };
	struct pty_spawn_opts o;
	struct pty_child c;
	struct test_buf b;
	char expect[256];

	memset(&o, 0, sizeof(o));
	o.path = argv[0];
	o.argv = argv;
	o.envp = environ;
	o.stdio = PTY_STDIO_PIPES;
	o.nonblock = true;
	assert(pty_spawn(&o, &c) == 0);
	assert(fcntl(c.in, F_GETFL) & O_NONBLOCK);
	assert(fcntl(c.out, F_GETFL) & O_NONBLOCK);
	assert(fcntl(c.err, F_GETFL) & O_NONBLOCK);
	test_read_all(c.out, &b);
	snprintf(expect, sizeof(expect),
	    "pid=%d sid=%d pgrp=%d tcsid=-1 tcpgrp=-1 isatty=0 devtty=0 tty=none end\n",
	    (int)c.pid, (int)c.pid, (int)c.pid);
	assert(strcmp(b.data, expect) == 0);
	test_finish(&c, 0);

	argv[2] = (char *)"nonblock";
	assert(pty_spawn(&o, &c) == 0);
	assert(strcmp(test_read_all(c.out, &b), "nonblock: 0 0 0\n") == 0);
	test_finish(&c, 0);

	/* The same on a PTY with a nonblocking master. */
	o.stdio = PTY_STDIO_PTY;
	assert(pty_spawn(&o, &c) == 0);
	assert(fcntl(c.master, F_GETFL) & O_NONBLOCK);
	assert(strcmp(test_read_all(c.master, &b), "nonblock: 0 0 0\r\n") == 0);
	test_finish(&c, 0);
}

/*
 * GIVEN mode: the child's stdio are the caller's descriptors (below 0:
 * /dev/null), the parent gets no ends, and the child has nothing else.
 */
static void
test_given(void)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"cat; echo out; echo err >&2; ls /proc/self/fd | wc -l", NULL };
	struct pty_spawn_opts o;
	struct pty_child c;
	struct test_buf b;
	int p[2];

	assert(pipe2(p, O_CLOEXEC) == 0);
	memset(&o, 0, sizeof(o));
	o.path = argv[0];
	o.argv = argv;
	o.envp = environ;
	o.stdio = PTY_STDIO_GIVEN;
	o.fds[0] = -1;
	o.fds[1] = o.fds[2] = p[1];
	assert(pty_spawn(&o, &c) == 0);
	assert(c.pid > 0 && c.master == -1 && c.in == -1 && c.out == -1 && c.err == -1);
	close(p[1]);
	/* cat ends at once on /dev/null; ls sees 0, 1, 2 and its own directory. */
	assert(strcmp(test_read_all(p[0], &b), "out\nerr\n4\n") == 0);
	close(p[0]);
	test_finish(&c, 0);
}

/* same_session: the child stays in our session and process group. */
static void
test_same_session(void)
{
	char *argv[] = { test_self, (char *)"helper", (char *)"session", NULL };
	struct pty_spawn_opts o;
	struct pty_child c;
	struct test_buf b;
	int p[2], pid, sid, pgrp;

	assert(pipe2(p, O_CLOEXEC) == 0);
	memset(&o, 0, sizeof(o));
	o.path = argv[0];
	o.argv = argv;
	o.envp = environ;
	o.stdio = PTY_STDIO_GIVEN;
	o.fds[0] = o.fds[2] = -1;
	o.fds[1] = p[1];
	o.same_session = true;
	assert(pty_spawn(&o, &c) == 0);
	close(p[1]);
	assert(sscanf(test_read_all(p[0], &b), "pid=%d sid=%d pgrp=%d", &pid, &sid, &pgrp) == 3);
	close(p[0]);
	assert(pid == (int)c.pid && sid == (int)getsid(0) && pgrp == (int)getpgrp());
	test_finish(&c, 0);

	/* Pipes too; a PTY needs a session of its own. */
	o.stdio = PTY_STDIO_PIPES;
	assert(pty_spawn(&o, &c) == 0);
	assert(sscanf(test_read_all(c.out, &b), "pid=%d sid=%d pgrp=%d", &pid, &sid, &pgrp) == 3);
	assert(sid == (int)getsid(0) && pgrp == (int)getpgrp());
	test_finish(&c, 0);
	o.stdio = PTY_STDIO_PTY;
	assert(pty_spawn(&o, &c) == -EINVAL);
	assert(c.pid == 0 && c.master == -1);
}

/* Spawn path in mode stdio with envp and cwd; expect err and no traces. */
static void
test_spawn_fails(enum pty_stdio stdio, const char *path, char *const *envp,
    const char *cwd, int err)
{
	char *argv[] = { (char *)"prog", NULL };
	struct pty_spawn_opts o;
	struct pty_child c;
	int nfds = test_count_fds();

	memset(&o, 0, sizeof(o));
	o.path = path;
	o.argv = argv;
	o.envp = envp;
	o.cwd = cwd;
	o.stdio = stdio;
	memset(&c, 0x5a, sizeof(c));
	assert(pty_spawn(&o, &c) == err);
	assert(c.pid == 0 && c.master == -1 && c.in == -1 && c.out == -1 && c.err == -1);
	assert(test_no_children());
	assert(test_count_fds() == nfds);
}

/* A missing executable, directly or through PATH: -ENOENT, child reaped. */
static void
test_enoent(void)
{
	char *env[] = { (char *)"PATH=/nonexistent:/also/not/there", NULL };
	char *shenv[] = { (char *)"PATH=/nonexistent", NULL };

	test_spawn_fails(PTY_STDIO_PTY, "/nonexistent/prog", environ, NULL, -ENOENT);
	test_spawn_fails(PTY_STDIO_PIPES, "/nonexistent/prog", environ, NULL, -ENOENT);
	test_spawn_fails(PTY_STDIO_PTY, "no-such-program-podgate", NULL, NULL, -ENOENT);
	test_spawn_fails(PTY_STDIO_PIPES, "no-such-program-podgate", env, NULL, -ENOENT);
	/* PATH from the child's envp, not ours. */
	test_spawn_fails(PTY_STDIO_PTY, "sh", shenv, NULL, -ENOENT);
	test_spawn_fails(PTY_STDIO_PTY, "", NULL, NULL, -ENOENT);
	/* A missing working directory is reported the same way. */
	test_spawn_fails(PTY_STDIO_PTY, "/bin/sh", NULL, "/nonexistent", -ENOENT);
}

/* Files that cannot be run: -EACCES (directly or through PATH), -ENOEXEC. */
static void
test_eacces(void)
{
	char *dir = unit_tmpdir("pty");
	char file[PATH_MAX], shadow[PATH_MAX], pathenv[PATH_MAX + 8];
	char *env[] = { pathenv, NULL };
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)"echo found", NULL };
	struct pty_spawn_opts o;
	struct pty_child c;
	struct test_buf b;
	int fd;

	snprintf(file, sizeof(file), "%s/podgate-noexec", dir);
	assert((fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0);
	assert(write(fd, "#!/bin/sh\nexit 0\n", 17) == 17);
	close(fd);

	test_spawn_fails(PTY_STDIO_PTY, file, NULL, NULL, -EACCES);
	test_spawn_fails(PTY_STDIO_PIPES, file, NULL, NULL, -EACCES);
	snprintf(pathenv, sizeof(pathenv), "PATH=/nonexistent:%s:/usr/bin:/bin", dir);
	test_spawn_fails(PTY_STDIO_PTY, "podgate-noexec", env, NULL, -EACCES);
	/* A directory is not executable either. */
	test_spawn_fails(PTY_STDIO_PTY, dir, NULL, NULL, -EACCES);

	/* Executable but not a format the kernel runs: -ENOEXEC. */
	assert(chmod(file, 0700) == 0);
	assert((fd = open(file, O_WRONLY | O_TRUNC | O_CLOEXEC)) >= 0);
	assert(write(fd, "\x01\x02junk\n", 7) == 7);
	close(fd);
	test_spawn_fails(PTY_STDIO_PTY, file, NULL, NULL, -ENOEXEC);
	assert(chmod(file, 0600) == 0);

	/* As execvp does, EACCES moves on to the next PATH entry. */
	snprintf(shadow, sizeof(shadow), "%s/sh", dir);
	assert(rename(file, shadow) == 0);
	snprintf(pathenv, sizeof(pathenv), "PATH=%s:/usr/bin:/bin", dir);
	memset(&o, 0, sizeof(o));
	o.path = "sh";
	o.argv = argv;
	o.envp = env;
	o.stdio = PTY_STDIO_PIPES;
	assert(pty_spawn(&o, &c) == 0);
	assert(strcmp(test_read_all(c.out, &b), "found\n") == 0);
	test_finish(&c, 0);

	assert(unlink(shadow) == 0);
	assert(rmdir(dir) == 0);
	free(dir);
}

/* Bad arguments: -EINVAL, outs cleared. */
static void
test_einval(void)
{
	char *noargs[] = { NULL };
	struct pty_spawn_opts o;
	struct pty_child c;
	unsigned short cols = 7, rows = 7;
	int p[2];

	memset(&o, 0, sizeof(o));
	o.path = "/bin/true";
	o.argv = noargs;
	memset(&c, 0x5a, sizeof(c));
	assert(pty_spawn(&o, &c) == -EINVAL);
	assert(c.pid == 0 && c.master == -1 && c.in == -1 && c.out == -1 && c.err == -1);
	o.argv = NULL;
	assert(pty_spawn(&o, &c) == -EINVAL);
	assert(pty_spawn(NULL, &c) == -EINVAL);

	assert(pipe2(p, O_CLOEXEC) == 0);
	assert(pty_set_size(p[0], 80, 24) == -ENOTTY);
	assert(pty_get_size(p[0], &cols, &rows) == -ENOTTY);
	assert(cols == 0 && rows == 0);
	assert(pty_raw_enter(p[0]) == -ENOTTY);
	close(p[0]);
	close(p[1]);
	assert(pty_set_nonblock(p[0], true) == -EBADF);
}

/* PATH lookup uses the child's envp; NULL envp is empty with a default PATH. */
static void
test_env_cwd(void)
{
	char *env[] = { (char *)"PATH=/nonexistent::/usr/bin:/bin", (char *)"FOO=bar", NULL };
	char *argv[] = { (char *)"sh", (char *)"-c",
	    (char *)"echo \"foo=$FOO path=$PATH\"; pwd", NULL };
	struct pty_spawn_opts o;
	struct pty_child c;
	struct test_buf b;

	memset(&o, 0, sizeof(o));
	o.path = "sh";
	o.argv = argv;
	o.envp = env;
	o.stdio = PTY_STDIO_PIPES;
	o.cwd = "/";
	assert(pty_spawn(&o, &c) == 0);
	assert(strcmp(test_read_all(c.out, &b),
	    "foo=bar path=/nonexistent::/usr/bin:/bin\n/\n") == 0);
	test_finish(&c, 0);

	o.envp = NULL;
	o.cwd = NULL;
	argv[2] = (char *)"echo \"foo=$FOO\"; env | grep -c =";
	assert(pty_spawn(&o, &c) == 0);
	/* Only what sh exports itself (PWD). */
	assert(strcmp(test_read_all(c.out, &b), "foo=\n1\n") == 0);
	test_finish(&c, 0);
}

/* The child holds 0, 1 and 2 only, even when we leak fds without CLOEXEC. */
static void
test_fds(void)
{
	char script[128];
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", script, NULL };
	struct pty_child c;
	struct test_buf b;
	int low, high;

	assert((low = open("/dev/null", O_RDONLY)) >= 0);
	if (low < 3) {
		/* Our own 0, 1 or 2 was closed: take a descriptor above. */
		assert((high = fcntl(low, F_DUPFD, 3)) >= 3);
		close(low);
		low = high;
	}
	assert(!(fcntl(low, F_GETFD) & FD_CLOEXEC));
	assert((high = fcntl(low, F_DUPFD, 200)) >= 200);

	test_spawn_helper(PTY_STDIO_PTY, "fds", &c);
	assert(strcmp(test_read_all(c.master, &b), "fds: 0 1 2\r\n") == 0);
	test_finish(&c, 0);

	test_spawn_helper(PTY_STDIO_PIPES, "fds", &c);
	assert(strcmp(test_read_all(c.out, &b), "fds: 0 1 2\n") == 0);
	test_finish(&c, 0);

	snprintf(script, sizeof(script),
	    "for f in %d %d; do test -e /proc/$$/fd/$f && echo leak $f; done; echo done",
	    low, high);
	test_spawn(PTY_STDIO_PTY, argv, &c);
	assert(strcmp(test_read_all(c.master, &b), "done\r\n") == 0);
	test_finish(&c, 0);

	close(high);
	close(low);
}

/* Spawn argv with extra_fd given as fd 3. */
static void
test_spawn_extra(enum pty_stdio stdio, char *const *argv, int extra, struct pty_child *c)
{
	struct pty_spawn_opts o;

	memset(&o, 0, sizeof(o));
	o.path = argv[0];
	o.argv = argv;
	o.envp = environ;
	o.stdio = stdio;
	o.extra_fd = extra;
	assert(pty_spawn(&o, c) == 0);
}

/* extra_fd: the child gets it as fd 3, and nothing else above 2. */
static void
test_extra_fd(void)
{
	char *fds[] = { test_self, (char *)"helper", (char *)"fds", NULL };
	char *echo[] = { (char *)"/bin/sh", (char *)"-c", (char *)"echo picked >&3", NULL };
	struct pty_child c;
	struct test_buf b;
	char got[32];
	int p[2];

	assert(pipe2(p, O_CLOEXEC) == 0);
	test_spawn_extra(PTY_STDIO_PTY, fds, p[1], &c);
	assert(strcmp(test_read_all(c.master, &b), "fds: 0 1 2 3\r\n") == 0);
	test_finish(&c, 0);
	test_spawn_extra(PTY_STDIO_PIPES, echo, p[1], &c);
	close(p[1]);
	assert(read(p[0], got, sizeof(got)) == 7 && memcmp(got, "picked\n", 7) == 0);
	assert(read(p[0], got, sizeof(got)) == 0);	/* the child's copy is gone */
	close(p[0]);
	test_finish(&c, 0);
}

/* Do nothing with a signal. */
static void
test_noop_handler(int sig)
{
	(void)sig;
}

/* Ignored, caught and blocked signals in the parent are reset in the child. */
static void
test_signals(void)
{
	struct sigaction ign, catch, old_int, old_pipe, old_usr1;
	sigset_t block, old_mask;
	struct pty_child c;
	struct test_buf b;

	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	memset(&catch, 0, sizeof(catch));
	catch.sa_handler = test_noop_handler;
	sigemptyset(&catch.sa_mask);
	assert(sigaction(SIGINT, &ign, &old_int) == 0);
	assert(sigaction(SIGPIPE, &ign, &old_pipe) == 0);
	assert(sigaction(SIGUSR1, &catch, &old_usr1) == 0);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGTERM);
	assert(sigprocmask(SIG_BLOCK, &block, &old_mask) == 0);

	test_spawn_helper(PTY_STDIO_PIPES, "signals", &c);
	assert(strcmp(test_read_all(c.out, &b), "ignored: none blocked: none\n") == 0);
	test_finish(&c, 0);

	test_spawn_helper(PTY_STDIO_PTY, "signals", &c);
	assert(strcmp(test_read_all(c.master, &b), "ignored: none blocked: none\r\n") == 0);
	test_finish(&c, 0);

	/* And a shell sees SIGINT at its default: kill -INT ends it. */
	{
		char *argv[] = { (char *)"/bin/sh", (char *)"-c",
		    (char *)"kill -INT $$; echo survived", NULL };
		struct pty_exit ex;

		test_spawn(PTY_STDIO_PIPES, argv, &c);
		assert(strcmp(test_read_all(c.out, &b), "") == 0);
		assert(pty_wait(c.pid, false, &ex) == 0);
		assert(ex.signal == SIGINT && ex.status == -1);
		pty_child_close(&c);
	}

	/* Our own state is as we left it. */
	{
		struct sigaction cur;
		sigset_t mask;

		assert(sigaction(SIGINT, NULL, &cur) == 0 && cur.sa_handler == SIG_IGN);
		assert(sigprocmask(SIG_BLOCK, NULL, &mask) == 0);
		assert(sigismember(&mask, SIGUSR2) == 1);
	}

	assert(sigprocmask(SIG_SETMASK, &old_mask, NULL) == 0);
	assert(sigaction(SIGINT, &old_int, NULL) == 0);
	assert(sigaction(SIGPIPE, &old_pipe, NULL) == 0);
	assert(sigaction(SIGUSR1, &old_usr1, NULL) == 0);
}

/* Whether t looks like the raw variant of a cooked terminal. */
static bool
test_is_raw(const struct termios *t)
{
	return !(t->c_lflag & (ICANON | ECHO | ISIG | IEXTEN)) &&
	    !(t->c_iflag & (ICRNL | IXON)) && !(t->c_oflag & OPOST) &&
	    (t->c_cflag & CSIZE) == CS8 && t->c_cc[VMIN] == 1 && t->c_cc[VTIME] == 0;
}

/* Whether two termios carry the same modes. */
static bool
test_same_modes(const struct termios *a, const struct termios *b)
{
	return a->c_iflag == b->c_iflag && a->c_oflag == b->c_oflag &&
	    a->c_cflag == b->c_cflag && a->c_lflag == b->c_lflag &&
	    memcmp(a->c_cc, b->c_cc, sizeof(a->c_cc)) == 0;
}

/* Raw mode on a PTY slave: enter, -EBUSY on a second enter, leave restores. */
static void
test_raw(void)
{
	struct termios before, t;
	int m, s, m2, s2;

	assert(pty_open(&m, &s, false) == 0);
	assert(pty_open(&m2, &s2, false) == 0);
	assert(tcgetattr(s, &before) == 0);
	assert(before.c_lflag & ICANON && before.c_lflag & ECHO);

	assert(pty_raw_leave() == 0);	/* not in raw mode: nothing to do */
	assert(pty_raw_enter(s) == 0);
	assert(tcgetattr(s, &t) == 0);
	assert(test_is_raw(&t));
	assert(pty_raw_enter(s) == -EBUSY);
	assert(pty_raw_enter(s2) == -EBUSY);
	assert(tcgetattr(s2, &t) == 0 && (t.c_lflag & ICANON));
	assert(pty_raw_leave() == 0);
	assert(tcgetattr(s, &t) == 0);
	assert(test_same_modes(&t, &before));
	assert(pty_raw_leave() == 0);

	/* Once left, another terminal can go raw. */
	assert(pty_raw_enter(s2) == 0);
	assert(tcgetattr(s2, &t) == 0 && test_is_raw(&t));
	assert(pty_raw_leave() == 0);
	assert(tcgetattr(s2, &t) == 0 && (t.c_lflag & ICANON));

	t = before;
	pty_termios_make_raw(&t);
	assert(test_is_raw(&t));

	close(m);
	close(s);
	close(m2);
	close(s2);
}

static volatile sig_atomic_t test_hup_count;

/* Count SIGHUPs. */
static void
test_hup_handler(int sig)
{
	(void)sig;
	test_hup_count++;
}

/*
 * A signal in raw mode restores the terminal, then goes to the previous
 * disposition: our handler here, an ignored signal stays ignored.
 */
static void
test_raw_signal(void)
{
	struct sigaction sa, old_hup, old_quit, cur;
	struct termios before, t;
	int m, s;

	assert(pty_open(&m, &s, false) == 0);
	assert(tcgetattr(s, &before) == 0);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = test_hup_handler;
	sigemptyset(&sa.sa_mask);
	assert(sigaction(SIGHUP, &sa, &old_hup) == 0);
	sa.sa_handler = SIG_IGN;
	assert(sigaction(SIGQUIT, &sa, &old_quit) == 0);

	test_hup_count = 0;
	assert(pty_raw_enter(s) == 0);
	assert(sigaction(SIGHUP, NULL, &cur) == 0 && cur.sa_handler != test_hup_handler);
	assert(sigaction(SIGQUIT, NULL, &cur) == 0 && cur.sa_handler == SIG_IGN);
	assert(raise(SIGQUIT) == 0);
	assert(tcgetattr(s, &t) == 0 && test_is_raw(&t));

	assert(raise(SIGHUP) == 0);
	assert(test_hup_count == 1);
	assert(tcgetattr(s, &t) == 0 && test_same_modes(&t, &before));
	assert(sigaction(SIGHUP, NULL, &cur) == 0 && cur.sa_handler == test_hup_handler);
	/* Raw mode has ended: a new enter is allowed. */
	assert(pty_raw_enter(s) == 0);
	assert(pty_raw_leave() == 0);

	assert(sigaction(SIGHUP, &old_hup, NULL) == 0);
	assert(sigaction(SIGQUIT, &old_quit, NULL) == 0);
	close(m);
	close(s);
}

/* Fork a child that enters raw mode on s and then ends by how; check s after. */
static void
test_raw_child(int s, const struct termios *before, int how, int status, int sig)
{
	struct pty_exit ex;
	struct termios t;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	assert((pid = fork()) >= 0);
	if (pid == 0) {
		if (pty_raw_enter(s) != 0 || tcgetattr(s, &t) != 0 || !test_is_raw(&t))
			_exit(100);
		if (how == 0)
			exit(7);	/* atexit restores */
		raise(how);
		_exit(101);
	}
	assert(pty_wait(pid, false, &ex) == 0);
	assert(ex.status == status && ex.signal == sig);
	assert(tcgetattr(s, &t) == 0 && test_same_modes(&t, before));
}

/* Raw mode is undone at exit(3) and by a fatal SIGTERM or SIGINT. */
static void
test_raw_exit(void)
{
	struct termios before;
	int m, s;

	assert(pty_open(&m, &s, false) == 0);
	assert(tcgetattr(s, &before) == 0);
	test_raw_child(s, &before, 0, 7, 0);
	test_raw_child(s, &before, SIGTERM, -1, SIGTERM);
	test_raw_child(s, &before, SIGINT, -1, SIGINT);
	test_raw_child(s, &before, SIGHUP, -1, SIGHUP);
	close(m);
	close(s);
}

/* Run as a helper child: print what was asked for. */
static int
test_helper(const char *what)
{
	if (strcmp(what, "fds") == 0)
		return test_helper_fds();
	if (strcmp(what, "signals") == 0)
		return test_helper_signals();
	if (strcmp(what, "session") == 0)
		return test_helper_session();
	if (strcmp(what, "nonblock") == 0)
		return test_helper_nonblock();
	return 2;
}

static const struct unit_test tests[] = {
	{ "open", test_open },
	{ "exit_status", test_exit_status },
	{ "ctty", test_ctty },
	{ "resize", test_resize },
	{ "termios", test_termios },
	{ "killed", test_killed },
	{ "wstatus", test_wstatus },
	{ "pipes", test_pipes },
	{ "pipes_stdin", test_pipes_stdin },
	{ "pipes_session", test_pipes_session },
	{ "given", test_given },
	{ "same_session", test_same_session },
	{ "enoent", test_enoent },
	{ "eacces", test_eacces },
	{ "einval", test_einval },
	{ "env_cwd", test_env_cwd },
	{ "fds", test_fds },
	{ "extra_fd", test_extra_fd },
	{ "signals", test_signals },
	{ "raw", test_raw },
	{ "raw_signal", test_raw_signal },
	{ "raw_exit", test_raw_exit },
};

/* Descriptors open before the first test: each test leaves as many. */
static int nfds;

/* After each test: no child left to reap, no descriptor left open. */
static void
test_after(void)
{
	assert(test_no_children());
	assert(test_count_fds() == nfds);
}

int
main(int argc, char **argv)
{
	ssize_t n;

	if (argc == 3 && strcmp(argv[1], "helper") == 0)
		return test_helper(argv[2]);

	n = readlink("/proc/self/exe", test_self, sizeof(test_self) - 1);
	assert(n > 0);
	test_self[n] = '\0';

	nfds = test_count_fds();
	return unit_run_with("pty", tests, UNIT_COUNT(tests), test_after);
}
