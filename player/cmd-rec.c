/*
 * podgate-player rec: run a command under a PTY and record the session,
 * like script(1), passing bytes through in raw mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "player.h"
#include "pty.h"

extern char **environ;

#define REC_COALESCE_NS 2000000u	/* merge output read within 2 ms */
#define REC_TICK_MS 200		/* checkpoint and flush a quiet recording this often */

struct rec_session {
	struct rec_writer *w;
	struct pty_child child;
	int sfd;			/* signalfd */
	bool record_input;
	int marker_key;			/* a byte typed that adds a marker instead, or -1 */
	unsigned markers;
	bool stdin_tty;
	bool stdin_open;
	bool child_done;
	bool master_done;
	struct pty_exit exit;
	char inbuf[16384];		/* stdin bytes not yet taken by the PTY */
	size_t in_off, in_len;
	int err;			/* first recording error */
};

/* Quote argv for display the way a shell user would type it. */
static char *
rec_join_argv(char **argv)
{
	size_t len = 1, i;
	char *s, *p, *a;

	for (i = 0; argv[i] != NULL; i++)
		len += 4 * strlen(argv[i]) + 3;
	if ((s = p = malloc(len)) == NULL)
		return NULL;
	for (i = 0; argv[i] != NULL; i++) {
		a = argv[i];
		if (i > 0)
			*p++ = ' ';
		if (*a != '\0' && strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789@%_-+=:,./") == strlen(a)) {
			p = stpcpy(p, a);
			continue;
		}
		*p++ = '\'';
		for (; *a != '\0'; a++) {
			if (*a == '\'')
				p = stpcpy(p, "'\\''");
			else
				*p++ = *a;
		}
		*p++ = '\'';
	}
	*p = '\0';
	return s;
}

/* Record an event, keeping the first error. */
static void
rec_note(struct rec_session *s, char code, const void *p, size_t n)
{
	int r;

	if (s->err == 0 && (r = rec_writer_data(s->w, code, p, n)) < 0)
		s->err = r;
}

/* Read the PTY: copy to stdout and record. */
static void
rec_from_master(struct rec_session *s)
{
	char buf[65536];
	ssize_t n;

	for (;;) {
		n = read(s->child.master, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {	/* EIO: every slave fd is closed */
			s->master_done = true;
			return;
		}
		rec_note(s, REC_OUTPUT, buf, (size_t)n);
		if (player_write_all(STDOUT_FILENO, buf, (size_t)n) < 0) {
			/* Nobody reads our output any more: keep recording. */
		}
		if ((size_t)n < sizeof buf)
			return;
	}
}

/* Whether the command's terminal has echo off (a password prompt). */
static bool
rec_echo_off(const struct rec_session *s)
{
	struct termios t;

	return tcgetattr(s->child.master, &t) == 0 && (t.c_lflag & ECHO) == 0;
}

/*
 * Record typed input; what the terminal does not echo is recorded masked
 * (docs/format.md), never in clear.
 */
static void
rec_input(struct rec_session *s, const char *p, size_t n)
{
	uint8_t masked[sizeof s->inbuf];

	if (!rec_echo_off(s)) {
		rec_note(s, REC_INPUT, p, n);
		return;
	}
	n = rec_input_mask(p, n, masked);
	rec_note(s, REC_INPUT, masked, n);
	explicit_bzero(masked, sizeof masked);
}

/* Read stdin into the input buffer (only when it is empty). */
static void
rec_from_stdin(struct rec_session *s)
{
	ssize_t n;

	do
		n = read(STDIN_FILENO, s->inbuf, sizeof s->inbuf);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		s->stdin_open = false;
		if (!s->stdin_tty) {
			/* End of piped input: send the terminal's EOF character. */
			s->inbuf[0] = 0x04;
			s->in_off = 0;
			s->in_len = 1;
		}
		return;
	}
	/* The marker key adds a marker and goes no further. */
	if (s->marker_key >= 0) {
		char *p, label[32];

		while ((p = memchr(s->inbuf, s->marker_key, (size_t)n)) != NULL) {
			memmove(p, p + 1, (size_t)n - (size_t)(p - s->inbuf) - 1);
			n--;
			snprintf(label, sizeof label, "marker %u", ++s->markers);
			if (s->err == 0 && (s->err = rec_writer_marker(s->w, label)) < 0)
				break;
		}
		if (n == 0)
			return;
	}
	if (s->record_input)
		rec_input(s, s->inbuf, (size_t)n);
	s->in_off = 0;
	s->in_len = (size_t)n;
}

/* Give buffered input to the PTY. */
static void
rec_to_master(struct rec_session *s)
{
	ssize_t n;

	while (s->in_off < s->in_len) {
		n = write(s->child.master, s->inbuf + s->in_off, s->in_len - s->in_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {	/* the PTY is gone: drop the input */
			s->in_off = s->in_len = 0;
			return;
		}
		s->in_off += (size_t)n;
	}
	s->in_off = s->in_len = 0;
}

/* Handle the signals that arrive through the signalfd. */
static void
rec_signal(struct rec_session *s)
{
	struct signalfd_siginfo si;
	unsigned short cols, rows;

	while (read(s->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
		switch (si.ssi_signo) {
		case SIGWINCH:
			if (s->stdin_tty && pty_get_size(STDIN_FILENO, &cols, &rows) == 0 &&
			    cols > 0 && rows > 0) {
				pty_set_size(s->child.master, cols, rows);
				if (s->err == 0) {
					int r = rec_writer_resize(s->w, cols, rows);

					if (r < 0)
						s->err = r;
				}
			}
			break;
		case SIGCHLD:
			if (!s->child_done && pty_wait(s->child.pid, true, &s->exit) == 0)
				s->child_done = true;
			break;
		default:
			/* SIGINT, SIGTERM, SIGHUP: pass on to the command's session. */
			kill(-s->child.pid, (int)si.ssi_signo);
			break;
		}
	}
}

/* Pump bytes until the command has exited and its output is drained. */
static void
rec_loop(struct rec_session *s)
{
	uint64_t now, last_tick = rec_now_mono_ns();
	struct pollfd pfd[3];
	int n, timeout;

	while (!(s->child_done && s->master_done)) {
		pfd[0] = (struct pollfd){ .fd = s->sfd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = s->master_done ? -1 : s->child.master,
		    .events = POLLIN | (s->in_len > s->in_off ? POLLOUT : 0) };
		pfd[2] = (struct pollfd){ .fd = s->stdin_open && s->in_len == 0 ?
		    STDIN_FILENO : -1, .events = POLLIN };
		timeout = rec_writer_quiet(s->w) ? -1 : REC_TICK_MS;
		if (s->child_done)
			timeout = 0;	/* drain what is there, then stop */
		n = poll(pfd, 3, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (n == 0 && s->child_done)
			break;
		/* Checkpoint when due (a second after the last one), flush. */
		now = rec_now_mono_ns();
		if (s->err == 0 && now - last_tick >= REC_TICK_MS * 1000000ull) {
			last_tick = now;
			if ((n = rec_writer_tick(s->w, now)) < 0)
				s->err = n;
		}
		if (pfd[0].revents & POLLIN)
			rec_signal(s);
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))
			rec_from_master(s);
		if (pfd[1].revents & POLLOUT)
			rec_to_master(s);
		if (pfd[2].revents & (POLLIN | POLLHUP | POLLERR)) {
			rec_from_stdin(s);
			rec_to_master(s);
		}
	}
	if (!s->child_done && pty_wait(s->child.pid, false, &s->exit) == 0)
		s->child_done = true;
}

/* Open the output file: never over an existing file, never through a symlink. */
static int
rec_open_output(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		player_warn("%s: %s%s", path, strerror(errno),
		    errno == EEXIST ? " (will not overwrite a recording)" : "");
	return fd;
}

/* Run CMD under a PTY, record it, and exit with its status. */
int
cmd_rec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "no-input", no_argument, NULL, 'n' },
		{ "key", required_argument, NULL, 'k' },
		{ "marker-key", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rec_writer_opts wopts = { .coalesce_ns = REC_COALESCE_NS };
	struct rec_session s = { .sfd = -1, .record_input = true, .stdin_open = true,
	    .marker_key = -1 };
	struct rec_header h = { .pty = true, .target_kind = "local", .target = "local" };
	struct pty_spawn_opts so = { .stdio = PTY_STDIO_PTY, .nonblock = true };
	struct termios tio;
	struct passwd *pw;
	sigset_t mask, oldmask;
	char sid[37], defpath[64], sig[32];
	const char *out = NULL, *keypath = NULL;
	struct rec_key *key = NULL;
	char *command = NULL;
	bool quiet = false, raw = false;
	int c, fd = -1, r, st = EXIT_USAGE;

	s.child.master = s.child.in = s.child.out = s.child.err = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+o:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'n':
			s.record_input = false;
			break;
		case 'k':
			keypath = optarg;
			break;
		case 'M':
			/* ^X: a control key, as stty writes them. */
			if (optarg[0] == '^' && optarg[1] >= '@' && optarg[1] <= '_' && optarg[2] == '\0')
				s.marker_key = optarg[1] - '@';
			else if (optarg[0] == '^' && optarg[1] >= 'a' && optarg[1] <= 'z' &&
			    optarg[2] == '\0')
				s.marker_key = optarg[1] - 'a' + 1;
			else {
				player_warn("bad marker key '%s' (a control key: ^A ... ^_)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			printf("usage: podgate-player rec [-o FILE] [-q] [--no-input] [--key PRIVATE] "
			    "[--marker-key ^X] -- CMD [ARG...]\n\n"
			    "Record CMD under a PTY, like script(1); exits with its status.\n\n"
			    "  -o FILE         where to write (default SESSION-ID.rec; never overwritten)\n"
			    "  -q              no messages\n"
			    "  --no-input      do not record what is typed\n"
			    "  --key PRIVATE   sign with this key (default ~/.config/podgate/signing_ed25519,\n"
			    "                  made when missing)\n"
			    "  --marker-key ^X typing this control key adds a marker (\"marker N\") to\n"
			    "                  the recording instead of reaching the command\n");
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		player_warn("usage: podgate-player rec [-o FILE] [-q] [--no-input] [--key PRIVATE] -- CMD [ARG...]");
		return EXIT_USAGE;
	}
	if ((r = rec_uuid7(sid)) < 0) {
		player_warn("cannot make a session id: %s", strerror(-r));
		return EXIT_USAGE;
	}
	if (out == NULL) {
		snprintf(defpath, sizeof defpath, "%s.rec", sid);
		out = defpath;
	}

	s.stdin_tty = isatty(STDIN_FILENO);
	so.cols = 80;
	so.rows = 24;
	if (s.stdin_tty) {
		if (pty_get_size(STDIN_FILENO, &so.cols, &so.rows) < 0 || so.cols == 0 ||
		    so.rows == 0) {
			so.cols = 80;
			so.rows = 24;
		}
		if (tcgetattr(STDIN_FILENO, &tio) == 0)
			so.termios = &tio;
	}
	if ((command = rec_join_argv(argv + optind)) == NULL) {
		player_warn("out of memory");
		return EXIT_USAGE;
	}
	pw = getpwuid(getuid());
	h.session_id = sid;
	h.cols = so.cols;
	h.rows = so.rows;
	h.term = getenv("TERM");
	h.user = pw != NULL ? pw->pw_name : getenv("USER");
	h.command = command;

	if (player_signing_key(keypath, &key) < 0)
		goto out;
	wopts.sign_key = key;
	if ((fd = rec_open_output(out)) < 0)
		goto out;
	if ((r = rec_writer_open(&s.w, fd, &h, &wopts)) < 0 || (r = rec_writer_flush(s.w)) < 0) {
		player_warn("%s: cannot write the recording: %s", out, rec_strerror(r));
		goto out;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGWINCH);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	if ((s.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		player_warn("signalfd: %s", strerror(errno));
		goto out_mask;
	}

	so.path = argv[optind];
	so.argv = argv + optind;
	so.envp = environ;
	if ((r = pty_spawn(&so, &s.child)) < 0) {
		player_warn("%s: %s", argv[optind], strerror(-r));
		st = r == -ENOENT ? 127 : 126;
		rec_writer_exit(s.w, st, NULL);
		goto out_mask;
	}
	if (!quiet)
		fprintf(stderr, "podgate-player: recording to %s\r\n", out);
	if (s.stdin_tty && pty_raw_enter(STDIN_FILENO) == 0)
		raw = true;

	rec_loop(&s);

	if (raw)
		pty_raw_leave();
	if (s.exit.signal > 0) {
		const char *name = sigabbrev_np(s.exit.signal);

		snprintf(sig, sizeof sig, "%s", name != NULL ? name : "UNKNOWN");
		rec_writer_exit(s.w, -1, sig);
		st = 128 + s.exit.signal;
	} else {
		rec_writer_exit(s.w, s.exit.status, NULL);
		st = s.exit.status;
	}
	if (s.err < 0)
		player_warn("%s: recording failed: %s", out, rec_strerror(s.err));
	else if (!quiet)
		fprintf(stderr, "podgate-player: recorded to %s\n", out);
out_mask:
	pty_child_close(&s.child);
	if (s.sfd >= 0)
		close(s.sfd);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
out:
	if (s.w != NULL && (r = rec_writer_close(s.w)) < 0 && s.err == 0)
		player_warn("%s: recording failed: %s", out, rec_strerror(r));
	if (fd >= 0)
		close(fd);
	rec_key_free(key);
	free(command);
	return st;
}
