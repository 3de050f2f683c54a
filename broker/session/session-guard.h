/*
 * The guard (guard.h) and redaction (redact.h) in a live session: the
 * request check before the target starts, the per-user session count,
 * the reason a rule requires (asked on the terminal when needed), limits,
 * watch patterns, masking of input typed with echo off, and the redacted
 * path of every event into the recording.
 *
 * session.c calls these at a few points:
 *   session_guard_begin      after policy picked the rule, before the
 *                            recording and the target start
 *   session_guard_data       for every event recorded (instead of
 *                            rec_writer_data); also watches and counts
 *   session_guard_resize     a terminal resize for the recording
 *   session_guard_tick       from the periodic flush timer
 *   session_guard_flush      before the exit event is written
 *   session_guard_free       when the session is freed
 * and session-guard.c uses the session.c functions declared below.
 */
#ifndef PODGATE_SESSION_GUARD_H
#define PODGATE_SESSION_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/audit.h"
#include "policy/guard.h"
#include "policy/redact.h"

struct session;
struct cfg_user;

/* The guard's state of one session; zeroed with the session. */
struct session_guard {
	struct redact *redact;		/* the recording's redactor; made at the first event */
	bool counted;			/* holds one of the user's server-wide session counts */
	char *user;			/* the name counted (the conn may be gone at free) */
	char *command;			/* the command, redacted (for header and audit), or NULL */
	char command_hmac[65];		/* HMAC-SHA256 of the command when redaction changed it */
	char *reason;			/* the reason given, redacted, or NULL */
	char *reason_given;		/* the reason as given (the audit log proves it) */
	const char **what;		/* the header's what pairs with the reason added */
	const struct cfg_user *account;	/* to resume the start once the reason is typed */
	bool limits_on;			/* the target started: limits count */
	struct guard_limits_state limits;
	bool ended;			/* a limit or a watch pattern ended the session */
	struct guard_line reason_line;	/* the reason being typed */
	struct guard_line in, out;	/* typed and printed lines, for watch patterns */
	char prompt[256];		/* the target's current output line (passprompt) */
	size_t promptlen;
	bool pass_armed;		/* a passprompt matched: mask input up to Enter */
};

/*
 * After policy picked s->rule: check the request, count the session and
 * get the reason. Returns 0 when the target may start now; 1 when the
 * session was refused (and is closing) or a reason is being asked on the
 * terminal (state SESSION_REASON: the start resumes from
 * session_guard_reason_input).
 */
int session_guard_begin(struct session *s, const struct cfg_user *u);

/* Typed bytes while asking for the reason; returns the number consumed. */
uint32_t session_guard_reason_input(struct session *s, const uint8_t *data, uint32_t len);

/*
 * One event for the recording (o, e, i or m): masked when it is input
 * typed with echo off, watched and counted against the limits, then
 * redacted and appended. Returns 0 or a recording error (the caller ends
 * the session). Sessions without a recording are still watched.
 */
int session_guard_data(struct session *s, char code, const void *data, size_t len);

/* A terminal resize for the recording, in order with the data. */
int session_guard_resize(struct session *s);

/* From the flush timer: let quiet held bytes reach the recording; check limits. */
void session_guard_tick(struct session *s);

/* Write every held event to the recording (before the exit event). */
void session_guard_flush(struct session *s);

/* The command for the header and audit events (redacted). */
const char *session_guard_command(struct session *s);

/*
 * When redaction changed the command: the hex HMAC-SHA256 of the command
 * as given, under the broker's redaction key (what proves what was
 * hidden); otherwise NULL.
 */
const char *session_guard_command_hmac(struct session *s);

/*
 * The header's what_extra pairs: what (NULL-terminated pairs, or NULL)
 * with the reason added when there is one (valid until the guard is freed).
 */
const char *const *session_guard_header(struct session *s, const char *const *what);

/* Release the session count and free the guard's state. */
void session_guard_free(struct session *s);

/* ---- provided by session.c ---- */

void session_audit(struct session *s, const char *event, const struct audit_field *extra,
    size_t nextra);
int session_send(struct session *s, bool err, const void *buf, size_t len);
void session_say(struct session *s, bool err, const char *msg);
void session_refuse(struct session *s, const char *reason, const char *msg, bool to_stdout);
void session_close_channel(struct session *s, int status, const char *signame, bool core);
void session_release(struct session *s);
void session_kill(struct session *s);
void session_rec_fail(struct session *s, int r);
int session_open_recording(struct session *s);
void session_start_run(struct session *s, const struct cfg_user *u);

#endif
