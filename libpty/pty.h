/*
 * libpty: pseudo-terminals, child processes and local terminal modes.
 *
 * Every function returns 0 (or a non-negative value where stated) on
 * success and a negative errno value (-ENOENT, -EIO, ...) on failure.
 * Out-parameters are cleared on entry and only filled on success.
 * File descriptors returned by this library are close-on-exec; the caller
 * owns them and closes them.
 */
#ifndef PODGATE_PTY_H
#define PODGATE_PTY_H

#include <stdbool.h>
#include <sys/types.h>
#include <termios.h>

/* How a child's stdio is connected. */
enum pty_stdio {
	PTY_STDIO_PTY = 0,	/* a new PTY: stdin, stdout, stderr are its slave */
	PTY_STDIO_PIPES = 1,	/* three pipes: stdin, stdout, stderr apart */
	PTY_STDIO_GIVEN = 2,	/* the caller's descriptors, opts->fds */
};

struct pty_spawn_opts {
	const char *path;		/* executable; looked up in PATH if no '/' */
	char *const *argv;		/* NULL-terminated; argv[0] required */
	char *const *envp;		/* NULL-terminated; NULL means an empty environment */
	const char *cwd;		/* NULL: inherit */
	enum pty_stdio stdio;
	unsigned short cols, rows;	/* PTY only; 0 means 80x24 */
	const struct termios *termios;	/* PTY only; NULL: the kernel's defaults */
	bool nonblock;			/* parent's ends are O_NONBLOCK */
	int extra_fd;			/* > 2: given to the child as its fd 3 (the
					   caller keeps its copy); below 3: none */
	bool set_ids;			/* run as uid/gid with groups (needs root) */
	uid_t uid;
	gid_t gid;
	const gid_t *groups;		/* supplementary groups, ngroups of them */
	size_t ngroups;
	int cgroup_procs_fd;		/* > 2: an open cgroup.procs the child
					   writes itself into first; below 3: none */
	int fds[3];			/* PTY_STDIO_GIVEN: the child's stdin, stdout
					   and stderr (the caller keeps its copies);
					   below 0: /dev/null */
	bool same_session;		/* stay in the caller's session and process
					   group, no setsid (not with a PTY): a
					   helper's child that shares its terminal */
};

/*
 * A spawned child. For PTY_STDIO_PTY, `master` is the parent's end and
 * the pipe fds are -1. For PTY_STDIO_PIPES, `master` is -1, `in` is the
 * write end of the child's stdin, `out` and `err` the read ends of its
 * stdout and stderr. For PTY_STDIO_GIVEN all four are -1.
 */
struct pty_child {
	pid_t pid;
	int master;
	int in, out, err;
};

/* How a child ended: exactly one of status (>= 0) and signal (> 0) is set. */
struct pty_exit {
	int status;		/* exit status, or -1 when killed by a signal */
	int signal;		/* terminating signal, or 0 */
	bool core_dumped;
};

/*
 * Open a new master/slave pair. Both fds are close-on-exec; the master is
 * O_NONBLOCK when nonblock is true. On failure both outs are -1.
 */
int pty_open(int *master, int *slave, bool nonblock);

/*
 * Start a child: the one way the broker, its helpers and the player start
 * a process. The child runs in a new session (setsid; with same_session,
 * in the caller's session and process group) with the PTY slave as its
 * controlling terminal (PTY mode), with every signal
 * disposition reset to default, an empty signal mask, and no descriptors
 * but 0, 1 and 2 (and 3, a copy of opts->extra_fd, when that is above 2).
 * With set_ids the child joins opts->cgroup_procs_fd's cgroup (when given),
 * takes ownership of its PTY, sets its supplementary groups, gid and uid,
 * and fails (-EPERM) when it could regain the old uid. Failure to exec is
 * reported as the return value when
 * detectable (-ENOENT, -EACCES) and the child is reaped; the outs are
 * then cleared (pid 0, fds -1).
 *
 * A path without '/' is searched in the PATH of opts->envp, or in
 * "/usr/local/bin:/usr/bin:/bin" when envp has none; as with execvp, an
 * entry giving EACCES is skipped and -EACCES returned if no entry works,
 * but a file that is not a valid executable gives -ENOEXEC (no retry with
 * /bin/sh). A cwd the child cannot enter fails the same way (-ENOENT...).
 * Bad opts (no path, no argv[0], unknown stdio, same_session with a PTY)
 * give -EINVAL.
 */
int pty_spawn(const struct pty_spawn_opts *opts, struct pty_child *child);

/* Close the parent's ends held in child (idempotent; sets them to -1). */
void pty_child_close(struct pty_child *child);

/* Set / get the window size of a PTY (master or slave, or a tty). */
int pty_set_size(int fd, unsigned short cols, unsigned short rows);
int pty_get_size(int fd, unsigned short *cols, unsigned short *rows);

/* Set or clear O_NONBLOCK. */
int pty_set_nonblock(int fd, bool on);

/*
 * Wait for a child. With nohang true, returns -EAGAIN if it has not ended.
 * Retries on EINTR. pid must be > 0 (-EINVAL otherwise); -ECHILD if it is
 * not our child or was already reaped. ex may be NULL; it is cleared on
 * entry and filled only when 0 is returned.
 */
int pty_wait(pid_t pid, bool nohang, struct pty_exit *ex);

/*
 * Translate a wait(2) status into a pty_exit. A stopped or continued
 * status (never returned by pty_wait) gives status -1 and signal 0.
 */
void pty_exit_from_wstatus(int wstatus, struct pty_exit *ex);

/*
 * Raw mode for a local terminal. pty_raw_enter saves the terminal's modes,
 * puts it in raw mode, and arranges for the saved modes to be restored on
 * pty_raw_leave, at exit(3), and when SIGINT, SIGTERM, SIGHUP or SIGQUIT
 * arrive (the signal is then re-raised with its previous disposition).
 * Only one terminal can be in raw mode through this API at a time:
 * a second enter returns -EBUSY.
 *
 * A signal that is ignored at pty_raw_enter is left ignored (no handler
 * is installed for it). After a caught signal has restored the terminal,
 * raw mode is over and pty_raw_enter may be called again. pty_raw_leave
 * returns 0 when not in raw mode, or the tcsetattr error (the state is
 * reset either way). pty_raw_enter on a non-terminal gives -ENOTTY.
 */
int pty_raw_enter(int fd);
int pty_raw_leave(void);

/* Fill t with a raw-mode variant of itself (like cfmakeraw). */
void pty_termios_make_raw(struct termios *t);

#endif
