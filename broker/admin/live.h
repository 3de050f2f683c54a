/*
 * Live supervision (docs/live.md): the registry of running sessions, the
 * admin commands auditors and approvers run as the command of an ssh
 * session (sessions, watch, kill, pending, approve, deny), watchers with
 * bounded queues, and exec requests held for approval.
 *
 * Everything runs on the server's one loop thread. The session module
 * calls in at a few points: a target session is registered when it
 * starts running (live_session_start) and unregistered when it ends
 * (live_session_end, then live_session_gone when it is freed); its
 * output reaches live_output from the session's record, redacted as the
 * recording holds it (session/record.h), and resizes reach live_resize.
 * A watched session never waits for a watcher: a watcher whose queue is
 * full is dropped.
 */
#ifndef PODGATE_LIVE_H
#define PODGATE_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "session/host.h"

struct live;
struct peer_client;
struct session;
struct cfg_user;

/* Bytes queued for one watcher before it is dropped. */
#define LIVE_QUEUE_MAX (256u * 1024)
/* Output kept for a late watcher of a session without a PTY. */
#define LIVE_TAIL_MAX (64u * 1024)

/* Default commands.approve_timeout, seconds. */
#define LIVE_APPROVE_TIMEOUT 300

/* The functions below, as the session layer calls them (session/host.h). */
extern const struct session_admin_ops live_admin_ops;

/*
 * Make the registry on loop (initialized), reaching the other replicas
 * through peers. Returns 0 with *out set, or -ENOMEM.
 */
int live_init(uv_loop_t *loop, const struct peer_client *peers, struct live **out);

/* Close the registry's handle (before the loop's last run); frees it later. */
void live_close(struct live *l);

/* A target session started running: register it and give it a screen. */
void live_session_start(struct session *s);

/* The session is ending: its watchers are told and detached. */
void live_session_end(struct session *s);

/* The session is being freed: forget it as a target, watcher or held request. */
void live_session_gone(struct session *s);

/* Output the target wrote, redacted (already sent to the session's own client). */
void live_output(struct session *s, const void *buf, size_t len);

/* The session's terminal (or a watcher's) changed size. */
void live_resize(struct session *s);

/* Whether the exec request names an admin command (a reserved target name). */
bool live_admin_wants(const struct session *s);

/* Run the admin command (or refuse it without the role). */
void live_admin_start(struct session *s, const struct cfg_user *u);

/* Keystrokes on an admin session: taken and ignored, but 'q' leaves a watch. */
uint32_t live_admin_input(struct session *s, const void *data, uint32_t len);

/* Work for an admin session or a held request (from session_after_io). */
void live_admin_after_io(struct session *s);

/*
 * Whether an exec request must wait for an approver (its command matches
 * the rule's commands.approve): the start path's approve step. When it
 * must, the request is held (state SESSION_HELD): the client is told
 * "waiting for approval: ID" and true is returned; the caller starts
 * nothing. An approved request resumes through session_resume, from the
 * step after approve; a denied or timed-out one ends with exit 126.
 */
bool live_approval_hold(struct session *s);

#endif
