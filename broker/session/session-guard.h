/*
 * The guard (policy/guard.h) in a live session: the request check, the
 * per-user session count and the reason a rule requires (start steps,
 * start.c), limits, watch patterns, and masking of input typed with echo
 * off before an event enters the record (record.h).
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
struct session_no;

/*
 * Start steps (enum session_go). check: the rule's command and PTY
 * checks; a refused request still gets a short recording and a
 * command_refused audit event (exit 126). count: the user's max_sessions.
 * reason: from PODGATE_REASON, or asked on the terminal (wait: state
 * SESSION_REASON, the start resumes from session_guard_reason_input).
 */
int session_guard_check(struct session *s, struct session_no *no);
int session_guard_count(struct session *s, struct session_no *no);
int session_guard_reason(struct session *s, struct session_no *no);

/* Typed bytes while asking for the reason; returns the number consumed. */
uint32_t session_guard_reason_input(struct session *s, const uint8_t *data, uint32_t len);

/*
 * One event (o, e, i or m) into the record: masked when it is input
 * typed with echo off, then recorded (record.h), watched and counted
 * against the limits. Returns 0 or a recording error.
 */
int session_guard_data(struct session *s, char code, const void *data, size_t len);

/* Check the time limits (from the session's tick). */
void session_guard_tick(struct session *s);

/* Milliseconds until a time limit may be reached, or UINT64_MAX when none is set. */
uint64_t session_guard_next_ms(struct session *s);

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

#endif
