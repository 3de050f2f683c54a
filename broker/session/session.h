/*
 * One session channel: its requests (pty-req, env, window-change,
 * exec/shell, signal), the start path that decides what runs, the child
 * process it runs, the bytes forwarded both ways with backpressure, its
 * record (record.h) and its end.
 *
 * The files of the module:
 *   session.c   the channel: requests, the state machine's turn, freeing
 *   start.c     the start path, a table of steps (resolve ... spawn), menu
 *   io.c        the running target: input, output, polls, timers, reaping
 *   end.c       the one end of every session: seal, audit, close
 *   record.c    the output pipeline: mask -> redact -> {recording, watchers}
 *   session-guard.c  request checks, counts, reason, limits, watch, masking
 *   session-pick.c   the pod picker in front of the menu
 *
 * A session is always in exactly one state:
 *
 *   NEW --exec/shell--> STARTING --steps--> RUNNING --exit--> DRAINING --> CLOSING
 *                         |   ^                                              ^
 *                         |   +-- MENU (picker) -> PICKED --+               |
 *                         +-- REASON (asked) -----------------(resume)       |
 *                         +-- HELD (approval) ----------------(resume)       |
 *                         +-- ADMIN (an admin command) ------------------->--+
 *
 * Every way out ends in session_end (end.c): refused before anything
 * ran, the target's exit, an admin command's status, a denied request.
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
#include "session/host.h"
#include "session/record.h"
#include "session/session-guard.h"
#include "targets/target.h"

enum session_state {
	SESSION_NEW,		/* collecting pty-req and env requests */
	SESSION_STARTING,	/* exec or shell accepted: the start steps run at the next turn */
	SESSION_MENU,		/* picking a target from the menu (or the pod picker) */
	SESSION_PICKED,		/* a target was picked (or none): start at the next turn */
	SESSION_REASON,		/* asking for the reason the rule requires */
	SESSION_HELD,		/* an exec request waiting for an approver (admin/live.c) */
	SESSION_ADMIN,		/* running an admin command (admin/live.c) */
	SESSION_RUNNING,	/* the target runs */
	SESSION_DRAINING,	/* the target exited: its output is drained */
	SESSION_CLOSING,	/* ended: handles closing, then freed */
};

/* The steps of the start path (start.c), in order. */
enum session_step {
	SESSION_STEP_RESOLVE,	/* the target's kind and canonical name */
	SESSION_STEP_AUTHORIZE,	/* a rule grants it, and it exists */
	SESSION_STEP_CHECK,	/* the rule's command and PTY checks */
	SESSION_STEP_COUNT,	/* the user's max_sessions */
	SESSION_STEP_REASON,	/* the reason the rule requires (may ask: wait) */
	SESSION_STEP_APPROVE,	/* commands.approve (may hold: wait) */
	SESSION_STEP_ROOM,	/* descriptors left for one more session */
	SESSION_STEP_DESCRIBE,	/* the kind's header and audit pairs */
	SESSION_STEP_RECORD,	/* the recording's file and header */
	SESSION_STEP_SPAWN,	/* the target's process */
	SESSION_STEPS
};

/* Why a running target is being ended (the first reason wins). */
enum session_stop {
	SESSION_STOP_NONE,
	SESSION_STOP_HANGUP,	/* the client left, an auditor, a limit or a watch pattern */
	SESSION_STOP_RECORDING,	/* the recording failed: no session without its record */
	SESSION_STOP_ABORT,	/* the broker's shutdown grace is over: output is dropped */
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
	struct session_host *host;	/* its connection (session/host.h) */
	ssh_channel channel;		/* NULL once detached from libssh */
	struct ssh_channel_callbacks_struct cb;
	enum session_state state;
	enum session_step step;		/* the next start step (start.c) */
	enum session_stop stop;		/* why the target is being ended, if it is */
	struct config *config;		/* the configuration it started under */
	const struct cfg_user *account;	/* the user's entry in config, once starting */

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
	struct pty_exit exit;		/* how the target ended (state DRAINING) */
	bool signalled;			/* SIGHUP went to the target */
	struct session_fd fds[3];	/* PTY master or stdout; stderr; stdin */
	bool input_closed;		/* child's stdin gone: input is dropped */

	/* client -> child */
	uint8_t *inbuf;
	size_t inlen;
	bool chan_pending;		/* libssh holds channel data we did not take */

	/* record */
	char id[37];
	struct record rec;		/* redactor, recording, tee to watchers (record.h) */
	const struct cfg_rule *rule;	/* the rule that granted the target (in config) */

	/* timers */
	uv_timer_t tick_timer;		/* armed only while the record or a limit needs it */
	uv_timer_t linger_timer, kill_timer;
	uv_timer_t resize_timer;	/* applies the last window change (coalesced) */
	bool linger_over;

	uint64_t bytes_in, bytes_out;
	uint64_t start_mono;
	unsigned handles;		/* uv handles not yet closed */
	struct session_guard guard;	/* guard state (session-guard.h) */

	/* live supervision (admin/live.h) */
	struct live_session *live;	/* in the admin layer's registry while running */
	struct live_admin *admin;	/* an admin command or a held request, or NULL */
	char **what_extra;		/* header "what" pairs (an approval), or NULL */
};

/*
 * A client asked to open a session channel on h: make a session and its
 * channel (s->channel); NULL when out of memory. The connection keeps it
 * on its list until h->ops->gone.
 */
struct session *session_open(struct session_host *h);

/* The session's turn: do the work left by callbacks and update polling. */
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

/* Refuse a request on the session's channel: audit and tell the client. */
void session_refuse_request(struct session *s, const char *what);

/* A "break" request: send a break to the PTY. False when there is none. */
bool session_break(struct session *s);

/* Whether the session still counts as live (for a graceful stop). */
bool session_live(const struct session *s);

/* ---- for admin commands and watchers (admin/live.c) ---- */

/*
 * Record bytes as output (stderr when err) and send what the client's
 * window takes. Returns the bytes sent (0 when the channel is gone).
 */
size_t session_write(struct session *s, bool err, const void *buf, size_t len);

/* How many bytes may be sent to the client now (window and connection queue). */
size_t session_room(const struct session *s);

/* Show a one-line message on the client's stderr and mark it in the recording. */
void session_notice(struct session *s, const char *msg);

/* Open the recording of a session that runs no target (s->target and s->ops set). */
int session_record_open(struct session *s);

/* An admin command or a held request is over: end with this exit status. */
void session_exit(struct session *s, int status);

/* Refuse before anything ran: audit reason, msg on stderr, exit 1. */
void session_refuse(struct session *s, const char *reason, const char *msg);

/*
 * End a running target on someone's word: show msg, mark it in the
 * recording, SIGHUP (then SIGKILL) the process group. The session ends
 * when the target has exited and its output is drained.
 */
void session_hangup(struct session *s, const char *msg);

/* Go on with the start steps after an approver let a held request start. */
void session_resume(struct session *s);

/* Mark the connection as having work, and run it when nothing else will. */
void session_wake(struct session *s);

#endif
