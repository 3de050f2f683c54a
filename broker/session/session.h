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
 *
 * Within the folder, session.c, start.c, io.c and end.c sit on top and
 * call down into session-guard.c and session-pick.c; those two see the
 * session only through internal.h (struct session and the calls the files
 * share), never through this header, so no file of the module includes
 * one that includes it back.
 */
#ifndef PODGATE_SESSION_H
#define PODGATE_SESSION_H

#include "session/internal.h"

/*
 * A client asked to open a session channel on h: make a session and its
 * channel (s->channel); NULL when out of memory. The connection keeps it
 * on its list until h->ops->gone.
 */
struct session *session_open(struct session_host *h);

/* The session's turn: do the work left by callbacks and update polling. */
void session_after_io(struct session *s);

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

/* Show a one-line message on the client's stderr and mark it in the recording. */
void session_notice(struct session *s, const char *msg);

/* An admin command or a held request is over: end with this exit status. */
void session_exit(struct session *s, int status);

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
