/*
 * Guard: the per-rule checks on what a session may do, as pure functions
 * over the configuration (no SSH, no event loop), so that the session
 * only calls them:
 *
 *   - request policy: pty: false, exec: false and commands {allow, deny}
 *     (guard_check_request, guard_verdict_message);
 *   - watch patterns over typed lines and output lines (guard_line_*,
 *     guard_watch_match);
 *   - the reason a rule may require (guard_reason_*);
 *   - limits: a per-user session counter table and the duration, idle and
 *     output checks of one session (guard_counts_*, guard_limits_*).
 *
 * Patterns are struct cfg_pattern, compiled and matched by
 * policy/pattern.h in the mode config.c gave them. Errors are negative
 * errno values.
 */
#ifndef PODGATE_GUARD_H
#define PODGATE_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/config.h"

/* Exit status of a refused request (as a shell's "cannot execute"). */
#define GUARD_EXIT_REFUSED 126

/* Longest pattern text in the configuration, "re:" included. */
#define GUARD_PATTERN_MAX PATTERN_TEXT_MAX

/* ---- Request policy ---- */

enum guard_decision {
	GUARD_OK = 0,		/* allowed */
	GUARD_NO_PTY,		/* pty: false, and the session is interactive or asked for a PTY */
	GUARD_NO_EXEC,		/* exec: false, and a command was given */
	GUARD_DENIED,		/* the command matches a deny pattern */
	GUARD_NOT_ALLOWED,	/* the rule has an allow list and the command matches none */
};

struct guard_verdict {
	enum guard_decision decision;
	const struct cfg_rule *rule;		/* the rule that decided (NULL: none given) */
	const struct cfg_pattern *pattern;	/* the deny or allow pattern that decided, or NULL */
};

/*
 * Decide whether rule r (the one policy_match chose) lets the session
 * run: pty is whether a PTY was requested, command the command after the
 * target (NULL for an interactive shell). Fills *v (cleared on entry) and
 * returns v->decision.
 *
 *   - deny_pty refuses a session with a PTY or without a command;
 *     deny_exec refuses a session with a command. pty is checked first.
 *   - A command matching any deny pattern is refused (deny wins).
 *   - With an allow list (has_allow) the command must match one of its
 *     patterns; without one every command not denied is allowed.
 *   - Allow patterns match the command's structure (PATTERN_ALLOW);
 *     deny patterns the command as written or in its shell-word form
 *     (PATTERN_COMMAND); see policy/pattern.h.
 * A NULL r allows everything (no rule: policy already refused).
 */
enum guard_decision guard_check_request(const struct cfg_rule *r, bool pty,
    const char *command, struct guard_verdict *v);

/* A stable name for the decision, for audit events: "ok", "no-pty", "denied", ... */
const char *guard_decision_name(enum guard_decision d);

/*
 * The line shown to the user for a refusal, without newline, e.g.
 * "podgate: command refused by rule at line 12: matches deny pattern
 * '*rm -rf*'". Returns snprintf's count; "" for GUARD_OK.
 */
int guard_verdict_message(const struct guard_verdict *v, char *buf, size_t len);

/* ---- Typed and printed lines ---- */

/* Longest line kept, in bytes; what is typed beyond is dropped (truncated set). */
#define GUARD_LINE_MAX 1024

/*
 * Reconstructs lines from a byte stream. In input mode (the client's
 * keystrokes): printable bytes and UTF-8 sequences are appended; BS and
 * DEL erase the last character, ^U the line, ^W the word before the end
 * (trailing blanks, then non-blanks); ^C discards the line; CR or LF ends
 * it (a LF right after a CR is part of the same line end); escape
 * sequences (arrows, function keys, bracketed-paste marks: CSI, SS3, OSC,
 * two-byte ESC x) and other control bytes are dropped; a tab is kept.
 * Output mode (the target's bytes) is the same without ^U, ^W and ^C.
 * Cursor movement inside a line, history recall and completion are not
 * modelled: the line is what was typed, not necessarily what ran.
 */
struct guard_line {
	char buf[GUARD_LINE_MAX + 1];
	size_t len;
	bool input;		/* input mode */
	bool truncated;		/* the current line lost bytes beyond GUARD_LINE_MAX */
	bool after_cr;		/* the previous byte ended a line with CR */
	uint8_t esc;		/* escape-sequence state */
	char done[GUARD_LINE_MAX + 1];	/* the line last returned */
};

/* Start empty; input picks the mode. */
void guard_line_init(struct guard_line *l, bool input);

/*
 * Consume data up to and including the first line end. Returns the
 * number of bytes consumed (all of len when no line ended). When a line
 * ended, *line is its text, NUL-terminated, valid until the next call, and
 * *linelen its length (may be 0); otherwise *line is NULL. Callers loop
 * until all of data is consumed.
 */
size_t guard_line_feed(struct guard_line *l, const void *data, size_t len, const char **line,
    size_t *linelen);

/* The line being typed (NUL-terminated), e.g. for a watch at close; *len may be 0. */
const char *guard_line_partial(struct guard_line *l, size_t *len);

/*
 * The first watch of r after `after` (NULL: from the start) whose side
 * includes on (CFG_WATCH_INPUT or CFG_WATCH_OUTPUT) and whose pattern
 * matches line; NULL when none. Globs match the whole line, so write
 * "*curl*" to find a word anywhere.
 */
const struct cfg_watch *guard_watch_match(const struct cfg_rule *r, unsigned on,
    const char *line, const struct cfg_watch *after);

/*
 * The line shown to the user when watch w ends a session: its message,
 * or "podgate: session terminated: typed input matches watch pattern
 * 'P' (rule at line N)". Returns snprintf's count.
 */
int guard_watch_message(const struct cfg_watch *w, unsigned on, char *buf, size_t len);

/* ---- Reasons ---- */

/* The environment variable a client sets: ssh -o SetEnv=PODGATE_REASON="INC-42". */
#define GUARD_REASON_ENV "PODGATE_REASON"
#define GUARD_REASON_MAX 200

/*
 * Whether s is an acceptable reason: 1..GUARD_REASON_MAX bytes of valid
 * UTF-8 without control characters, and not only blanks.
 */
bool guard_reason_ok(const char *s);

/*
 * The reason in env, an array of n "NAME=value" strings (as the session
 * keeps its env requests): the value of the last PODGATE_REASON, or NULL.
 */
const char *guard_reason_from_env(char *const *env, size_t n);

/* ---- Limits ---- */

/*
 * The server's count of live sessions per user name. Not thread-safe;
 * one per server, on its loop.
 */
struct guard_counts;

int guard_counts_new(struct guard_counts **out);
void guard_counts_free(struct guard_counts *t);

/*
 * Count one more session of user when fewer than max are live (max 0:
 * no limit). Returns 0, -EUSERS when user already has max, or -ENOMEM.
 * Every successful acquire is paired with one guard_counts_release.
 */
int guard_counts_acquire(struct guard_counts *t, const char *user, unsigned max);
void guard_counts_release(struct guard_counts *t, const char *user);

/* Live sessions of user. */
unsigned guard_counts_get(const struct guard_counts *t, const char *user);

enum guard_limit {
	GUARD_LIMIT_NONE = 0,
	GUARD_LIMIT_SESSIONS,	/* max_sessions (from guard_counts_acquire's -EUSERS) */
	GUARD_LIMIT_DURATION,	/* max_duration */
	GUARD_LIMIT_IDLE,	/* idle_timeout: no input and no output */
	GUARD_LIMIT_OUTPUT,	/* max_output */
};

/* One session's clocks and tally; times are monotonic nanoseconds. */
struct guard_limits_state {
	uint64_t start_ns;
	uint64_t last_ns;	/* last input or output */
	uint64_t output;	/* bytes the target wrote */
};

void guard_limits_start(struct guard_limits_state *st, uint64_t now_ns);
void guard_limits_activity(struct guard_limits_state *st, uint64_t now_ns);

/* Count n output bytes (also activity); GUARD_LIMIT_OUTPUT once over max_output. */
enum guard_limit guard_limits_output(struct guard_limits_state *st, const struct cfg_limits *l,
    uint64_t now_ns, size_t n);

/* Duration and idle checks at now_ns; GUARD_LIMIT_NONE when within both. */
enum guard_limit guard_limits_check(const struct guard_limits_state *st,
    const struct cfg_limits *l, uint64_t now_ns);

/*
 * Nanoseconds from now_ns until guard_limits_check may next report a
 * limit (for a timer), or UINT64_MAX when no time limit is set; 0 when
 * one is due now.
 */
uint64_t guard_limits_next_ns(const struct guard_limits_state *st, const struct cfg_limits *l,
    uint64_t now_ns);

/* A stable name for audit events: "max_sessions", "max_duration", ... */
const char *guard_limit_name(enum guard_limit k);

/*
 * The line shown to the user, e.g. "podgate: session ended: maximum
 * session duration (1h) reached". Returns snprintf's count.
 */
int guard_limit_message(enum guard_limit k, const struct cfg_limits *l, char *buf, size_t len);

/* Write seconds as "1h30m", "15m", "45s" ("0s" for 0). Returns snprintf's count. */
int guard_format_duration(uint64_t seconds, char *buf, size_t len);

/* Write bytes as the largest exact unit: "100MB", "1GiB", "512kB", "1000B". */
int guard_format_size(uint64_t bytes, char *buf, size_t len);

#endif
