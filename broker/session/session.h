/*
 * One session channel: its requests (pty-req, env, window-change,
 * exec/shell, signal), the target picked for it, the child process it
 * runs, the bytes forwarded both ways with backpressure, and its
 * recording and audit events.
 */
#ifndef PODGATE_SESSION_H
#define PODGATE_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <uv.h>

#include "pty.h"
#include "rec.h"
#include "session/session-guard.h"
#include "targets/target.h"

struct conn;
struct storage_rec;

enum session_state {
	SESSION_NEW,		/* collecting pty-req and env requests */
	SESSION_STARTING,	/* exec or shell accepted; start at the next turn */
	SESSION_MENU,		/* picking a target from the menu */
	SESSION_REASON,		/* asking for the reason the rule requires */
	SESSION_PICKED,		/* a target was picked; start at the next turn */
	SESSION_RUNNING,	/* target running, or its output draining */
	SESSION_CLOSING,	/* done; handles closing */
};

/* One of the child's descriptors, with its poll handle. */
struct session_fd {
	struct session *session;
	uv_poll_t poll;
	int fd;			/* -1 once closed */
	char code;		/* 'o' or 'e' for output, 0 for stdin only */
	bool input;		/* the child's input goes here */
	bool inited;		/* poll handle initialized (must be closed) */
	int events;
};

#define SESSION_INBUF (64u * 1024)
#define SESSION_MAXENV 32

struct session {
	TAILQ_ENTRY(session) entry;
	struct conn *conn;
	ssh_channel channel;		/* NULL once detached from libssh */
	struct ssh_channel_callbacks_struct cb;
	enum session_state state;
	struct config *config;		/* the configuration it started under */

	/* requests */
	bool pty;
	char term[64];
	uint16_t cols, rows;
	char *env[SESSION_MAXENV];
	size_t nenv;
	char *exec;			/* exec request text; NULL for a shell */
	bool peer_eof;			/* the client sent EOF */
	bool peer_closed;		/* the client closed the channel */
	bool close_sent;		/* our CLOSE went out */
	bool broken;			/* writing to the channel failed */

	/* menu */
	struct session_pick *pick;	/* the pod picker while it runs (session-pick.h) */
	char **menu;
	char line[256];
	size_t linelen;

	/* target */
	char *target;
	char *canonical;		/* the name policy matched, when the kind has one */
	char **where_extra;		/* from the kind's describe: header and audit pairs */
	char **who_extra;
	char *command;
	const struct target_ops *ops;
	struct pty_child child;
	struct target_proc *proc;	/* a target running in the loop (no process), or NULL */
	pid_t pgid;
	char *cgroup;			/* the local target's cgroup (cgroup.h), or NULL */
	bool started;
	bool exited;
	struct pty_exit exit;
	bool killed;
	bool aborted;			/* shutdown grace over: output is dropped */
	struct session_fd fds[3];	/* PTY master or stdout; stderr; stdin */
	bool input_closed;		/* child's stdin gone: input is dropped */

	/* client -> child */
	uint8_t *inbuf;
	size_t inlen;
	bool chan_pending;		/* libssh holds channel data we did not take */

	/* recording */
	char id[37];
	char *rec_path;
	struct recfile *rf;		/* the recording's file; NULL without one */
	struct storage_rec *ship;	/* its shipping to object storage; NULL: none */
	struct rec_writer *rec;
	bool rec_failed;
	bool unrecorded;		/* on_recording_failure: continue took effect */
	const struct cfg_rule *rule;	/* the rule that granted the target (in config) */

	/* timers */
	uv_timer_t flush_timer, linger_timer, kill_timer;
	uv_timer_t resize_timer;	/* applies the last window change (coalesced) */
	bool linger_over;

	uint64_t bytes_in, bytes_out;
	uint64_t start_mono;
	unsigned handles;		/* uv handles not yet closed */
	bool finished;			/* exit reported and audited */
	struct session_guard guard;	/* guard and redaction (session-guard.h) */

	/* live supervision (live.h) */
	struct live_session *live;	/* in the server's registry while running */
	struct live_admin *admin;	/* an admin command or a held request, or NULL */
	char **what_extra;		/* header "what" pairs (an approval), or NULL */
	bool approved;			/* an approver let this request start */
};

/*
 * A client asked to open a session channel: make a session and its
 * channel (NULL when refused).
 */
ssh_channel session_open(struct conn *c);

/* Do the work left by callbacks and update polling (from conn_after_io). */
void session_after_io(struct session *s);

/* One of the session's uv handles finished closing; the last one frees it. */
void session_handle_closed(struct session *s);

/* Check whether the session's child has ended (on SIGCHLD). */
void session_reap(struct session *s);

/*
 * The connection is going away: forget the channel (libssh frees it) and
 * end the target (SIGHUP, then SIGKILL).
 */
void session_detach(struct session *s);

/* The server's shutdown grace is over: end the target. */
void session_abort(struct session *s);

/* The session that owns channel on c, or NULL. */
struct session *session_find(struct conn *c, ssh_channel channel);

/* Refuse a request on the session's channel: audit and tell the client. */
void session_refuse_request(struct session *s, const char *what);

/* A "break" request: send a break to the PTY. False when there is none. */
bool session_break(struct session *s);

/* Whether the session still counts as live (for a graceful stop). */
bool session_live(const struct session *s);

/* ---- for live.c: admin commands and watchers ---- */

/*
 * Record bytes as output (stderr when err) and send what the client's
 * window takes. Returns the bytes sent (0 when the channel is gone).
 */
size_t session_write(struct session *s, bool err, const void *buf, size_t len);

/* How many bytes may be sent to the client now (window and connection queue). */
size_t session_room(const struct session *s);

/* Show a one-line message on the client's stderr and mark it in the recording. */
void session_notice(struct session *s, const char *msg);

/* Open the session's recording (s->target, s->command and s->ops set). */
int session_record_start(struct session *s);

/* End a session that runs no child with this exit status (recorded, audited). */
void session_end_status(struct session *s, int status);

/* Refuse before anything runs: audit reason, msg on stderr, exit 1. */
void session_refuse_msg(struct session *s, const char *reason, const char *msg);

/*
 * End a running target on someone's word: show msg, mark it in the
 * recording, SIGHUP (then SIGKILL) the process group.
 */
void session_terminate(struct session *s, const char *msg);

/* Mark the connection as having work, and run it when nothing else will. */
void session_wake(struct session *s);

#endif
