/*
 * The audit log: one JSON object per line, appended to a file (mode
 * 0600) or written to stdout ("-"). Every line has "time" (UTC, RFC 3339
 * with nanoseconds) and "event".
 */
#ifndef PODGATE_AUDIT_H
#define PODGATE_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct audit;
struct config;

/* A field of an event: a key with a string or an integer value. */
struct audit_field {
	const char *key;
	const char *str;	/* used when not NULL (escaped as JSON) */
	int64_t num;		/* used when str is NULL */
	bool secret;		/* str may hold a secret (AUDIT_SECRET) */
	const struct config *redact;	/* whose redact patterns apply (NULL: built-ins) */
};

/* A string field; NULL is written as "" (a function: an array argument is never NULL). */
static inline const char *
audit_str_value(const char *v)
{
	return v != NULL ? v : "";
}

#define AUDIT_STR(k, v) ((struct audit_field){ .key = (k), .str = audit_str_value(v) })
#define AUDIT_NUM(k, v) ((struct audit_field){ .key = (k), .str = NULL, .num = (int64_t)(v) })

/*
 * A string as the client or an admin gave it (a command, a watched line,
 * a reason), which may hold a secret: written redacted with config c's
 * patterns (policy/redact.h), and when redaction changed it and the log
 * has a redaction key, followed by "KEY_hmac": the HMAC-SHA256 of v as
 * given under that key, which proves what the markers hide.
 */
#define AUDIT_SECRET(k, v, c) \
	((struct audit_field){ .key = (k), .str = audit_str_value(v), .secret = true, .redact = (c) })

/*
 * Open the log at path ("-": stdout). The file is opened for appending
 * with O_NOFOLLOW, created mode 0600 (missing directories 0700); anything
 * but a regular file is refused. Returns a negative errno on failure
 * (logged), with *out NULL.
 */
int audit_open(const char *path, struct audit **out);

/*
 * Append one event: {"time":..., "event": event, fields...}. Written with
 * one write(2) so lines never interleave. Failures are logged, not returned.
 * Strings are escaped for JSON: '"' and '\\' with a backslash, control
 * characters and DEL as \u00XX, invalid UTF-8 replaced by U+FFFD. A NULL
 * a does nothing.
 */
void audit_event(struct audit *a, const char *event, const struct audit_field *fields,
    size_t nfields);

/*
 * The broker's redaction key (copied; wiped at audit_close): AUDIT_SECRET
 * fields that redaction changed get their HMAC under it. Without one they
 * are redacted all the same. Returns 0, or -EINVAL (len 0 or over 64).
 */
int audit_set_redaction_key(struct audit *a, const void *key, size_t len);

/*
 * Open the log's file again at its path, for logrotate: a file moved away
 * gets no more lines and a new one is made. Returns 1 when a file was
 * opened again, 0 for stdout or a NULL a (nothing to do); on failure
 * (logged) the log keeps its old file and a negative errno is returned.
 */
int audit_reopen(struct audit *a);

/* Per address, at most this many events a window; more are counted. */
#define AUDIT_LIMIT_BURST 20
#define AUDIT_LIMIT_WINDOW_MS 10000
#define AUDIT_LIMIT_ADDRS 1024		/* addresses tracked; the quietest makes room */

/*
 * audit_event for events an unauthenticated client can cause (failed
 * authentication, refusals), from client ("addr:port" or "[v6]:port"):
 * an address gets AUDIT_LIMIT_BURST events per AUDIT_LIMIT_WINDOW_MS
 * window; beyond that they are counted, and once the window is over one
 * event "audit_suppressed" {address, suppressed, first (the first dropped
 * event's name), seconds} summarises them (at the address's next event,
 * at audit_tick, or at audit_close).
 */
void audit_event_from(struct audit *a, const char *client, const char *event,
    const struct audit_field *fields, size_t nfields);

/* Summarise the windows that are over; call about once a second. NULL is ignored. */
void audit_tick(struct audit *a);

/* Close the log (stdout stays open) and free a; NULL is ignored. */
void audit_close(struct audit *a);

#endif
