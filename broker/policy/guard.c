/*
 * Guard: request policy, watch patterns, typed-line reconstruction, input
 * masking, reasons and limits. Pure functions over the configuration; the
 * contracts are in guard.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "policy/guard.h"

/* ---- Request policy ---- */

/* Decide pty, exec and commands for one request. */
enum guard_decision
guard_check_request(const struct cfg_rule *r, bool pty, const char *command,
    struct guard_verdict *v)
{
	size_t i;

	memset(v, 0, sizeof *v);
	v->rule = r;
	if (r == NULL)
		return v->decision = GUARD_OK;
	if (r->deny_pty && (pty || command == NULL))
		return v->decision = GUARD_NO_PTY;
	if (command == NULL)
		return v->decision = GUARD_OK;
	if (r->deny_exec)
		return v->decision = GUARD_NO_EXEC;
	for (i = 0; i < r->ndeny; i++) {
		if (pattern_match(&r->deny[i], command)) {
			v->pattern = &r->deny[i];
			return v->decision = GUARD_DENIED;
		}
	}
	if (!r->has_allow)
		return v->decision = GUARD_OK;
	for (i = 0; i < r->nallow; i++) {
		if (pattern_match(&r->allow[i], command)) {
			v->pattern = &r->allow[i];
			return v->decision = GUARD_OK;
		}
	}
	return v->decision = GUARD_NOT_ALLOWED;
}

/* The decision's name for audit events. */
const char *
guard_decision_name(enum guard_decision d)
{
	switch (d) {
	case GUARD_OK:
		return "ok";
	case GUARD_NO_PTY:
		return "no-pty";
	case GUARD_NO_EXEC:
		return "no-exec";
	case GUARD_DENIED:
		return "denied";
	case GUARD_NOT_ALLOWED:
		return "not-allowed";
	}
	return "unknown";
}

/* The one line a refused client sees. */
int
guard_verdict_message(const struct guard_verdict *v, char *buf, size_t len)
{
	int line = v->rule != NULL ? v->rule->line : 0;

	switch (v->decision) {
	case GUARD_OK:
		break;
	case GUARD_NO_PTY:
		return snprintf(buf, len, "podgate: interactive session refused by rule at line "
		    "%d: pty is not allowed; give a command without -t", line);
	case GUARD_NO_EXEC:
		return snprintf(buf, len, "podgate: command refused by rule at line %d: exec is "
		    "not allowed; use an interactive session (ssh -t)", line);
	case GUARD_DENIED:
		return snprintf(buf, len, "podgate: command refused by rule at line %d: matches "
		    "deny pattern '%s'", line, v->pattern != NULL ? v->pattern->text : "");
	case GUARD_NOT_ALLOWED:
		return snprintf(buf, len, "podgate: command refused by rule at line %d: matches "
		    "no allow pattern", line);
	}
	if (len > 0)
		*buf = '\0';
	return 0;
}

/* ---- Typed and printed lines ---- */

/* Escape-sequence states. */
enum {
	GUARD_ESC_NONE = 0,
	GUARD_ESC_START,	/* after ESC */
	GUARD_ESC_CSI,		/* ESC [ params, up to a final byte 0x40..0x7e */
	GUARD_ESC_SS3,		/* ESC O x */
	GUARD_ESC_STRING,	/* ESC ] (OSC), P, X, ^, _: up to BEL or ESC \ */
	GUARD_ESC_STRING_ESC,	/* an ESC inside a string */
	GUARD_ESC_INTER,	/* ESC and intermediate bytes 0x20..0x2f, up to a final */
};

void
guard_line_init(struct guard_line *l, bool input)
{
	memset(l, 0, sizeof *l);
	l->input = input;
}

/* Remove the last character (a whole UTF-8 sequence). */
static void
guard_line_erase_char(struct guard_line *l)
{
	while (l->len > 0 && ((unsigned char)l->buf[l->len - 1] & 0xc0) == 0x80)
		l->len--;
	if (l->len > 0)
		l->len--;
}

/* ^W: trailing blanks, then the word before them. */
static void
guard_line_erase_word(struct guard_line *l)
{
	while (l->len > 0 && (l->buf[l->len - 1] == ' ' || l->buf[l->len - 1] == '\t'))
		l->len--;
	while (l->len > 0 && l->buf[l->len - 1] != ' ' && l->buf[l->len - 1] != '\t')
		l->len--;
}

/* Step the escape-sequence state over c; false when c is not part of one. */
static bool
guard_line_escape(struct guard_line *l, unsigned char c)
{
	switch (l->esc) {
	case GUARD_ESC_NONE:
		return false;
	case GUARD_ESC_START:
		if (c == '[')
			l->esc = GUARD_ESC_CSI;
		else if (c == 'O')
			l->esc = GUARD_ESC_SS3;
		else if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_')
			l->esc = GUARD_ESC_STRING;
		else if (c >= 0x20 && c <= 0x2f)
			l->esc = GUARD_ESC_INTER;
		else if (c == 0x1b)
			l->esc = GUARD_ESC_START;
		else
			l->esc = GUARD_ESC_NONE;	/* ESC x (Alt-x): dropped */
		return true;
	case GUARD_ESC_CSI:
		if (c >= 0x40 && c <= 0x7e)
			l->esc = GUARD_ESC_NONE;
		else if (c == 0x1b)
			l->esc = GUARD_ESC_START;
		else if (c < 0x20 || c > 0x7e)
			l->esc = GUARD_ESC_NONE;	/* a broken sequence: drop it */
		return true;
	case GUARD_ESC_SS3:
		l->esc = GUARD_ESC_NONE;
		return true;
	case GUARD_ESC_STRING:
		if (c == 0x07)
			l->esc = GUARD_ESC_NONE;
		else if (c == 0x1b)
			l->esc = GUARD_ESC_STRING_ESC;
		return true;
	case GUARD_ESC_STRING_ESC:
		l->esc = c == '\\' ? GUARD_ESC_NONE : GUARD_ESC_STRING;
		return true;
	case GUARD_ESC_INTER:
		if (c < 0x20 || c > 0x2f)
			l->esc = GUARD_ESC_NONE;
		return true;
	}
	l->esc = GUARD_ESC_NONE;
	return false;
}

/* Feed bytes until a line ends. */
size_t
guard_line_feed(struct guard_line *l, const void *data, size_t len, const char **line,
    size_t *linelen)
{
	const unsigned char *p = data;
	unsigned char c;
	bool after_cr;
	size_t i;

	*line = NULL;
	*linelen = 0;
	for (i = 0; i < len; i++) {
		c = p[i];
		after_cr = l->after_cr;
		l->after_cr = false;
		if (guard_line_escape(l, c))
			continue;
		if (c == '\r' || c == '\n') {
			if (c == '\n' && after_cr)
				continue;
			l->after_cr = c == '\r';
			memcpy(l->done, l->buf, l->len);
			l->done[l->len] = '\0';
			*line = l->done;
			*linelen = l->len;
			l->len = 0;
			l->truncated = false;
			return i + 1;
		}
		if (c == 0x1b) {
			l->esc = GUARD_ESC_START;
			continue;
		}
		if (c == 0x08 || c == 0x7f) {
			guard_line_erase_char(l);
			continue;
		}
		if (l->input && (c == 0x15 || c == 0x03)) {	/* ^U, ^C */
			l->len = 0;
			l->truncated = false;
			continue;
		}
		if (l->input && c == 0x17) {			/* ^W */
			guard_line_erase_word(l);
			continue;
		}
		if (c < 0x20 && c != '\t')
			continue;
		if (l->len >= GUARD_LINE_MAX) {
			l->truncated = true;
			continue;
		}
		l->buf[l->len++] = (char)c;
	}
	return len;
}

/* The unfinished line. */
const char *
guard_line_partial(struct guard_line *l, size_t *len)
{
	l->buf[l->len] = '\0';
	*len = l->len;
	return l->buf;
}

/* The next watch of r that matches line on side on. */
const struct cfg_watch *
guard_watch_match(const struct cfg_rule *r, unsigned on, const char *line,
    const struct cfg_watch *after)
{
	size_t i;

	if (r == NULL || line == NULL)
		return NULL;
	i = after == NULL ? 0 : (size_t)(after - r->watch) + 1;
	for (; i < r->nwatch; i++) {
		if ((r->watch[i].on & on) != 0 && pattern_match(&r->watch[i].pattern, line))
			return &r->watch[i];
	}
	return NULL;
}

/* The line shown when a watch ends a session. */
int
guard_watch_message(const struct cfg_watch *w, unsigned on, char *buf, size_t len)
{
	if (w->message != NULL)
		return snprintf(buf, len, "podgate: session terminated: %s", w->message);
	return snprintf(buf, len, "podgate: session terminated: %s matches watch pattern "
	    "'%s' (rule at line %d)", on == CFG_WATCH_OUTPUT ? "output" : "typed input",
	    w->pattern.text, w->line);
}

/* ---- Reasons ---- */

/* Length of the valid UTF-8 sequence at s (of n bytes), or 0; C1 controls are not valid here. */
static size_t
guard_utf8_len(const unsigned char *s, size_t n)
{
	size_t len, bad;

	if ((len = utf8_char(s, n, &bad)) == 2 && utf8_decode(s, len) <= 0x9f)
		return 0;
	return len;
}

/* Whether s is a usable reason. */
bool
guard_reason_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n, i, k;
	bool blank = true;

	if (s == NULL || (n = strlen(s)) == 0 || n > GUARD_REASON_MAX)
		return false;
	for (i = 0; i < n; i += k) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
		if ((k = guard_utf8_len(p + i, n - i)) == 0)
			return false;
		if (p[i] != ' ')
			blank = false;
	}
	return !blank;
}

/* The value of the last PODGATE_REASON=... in env. */
const char *
guard_reason_from_env(char *const *env, size_t n)
{
	static const char name[] = GUARD_REASON_ENV "=";
	const char *found = NULL;
	size_t i;

	for (i = 0; env != NULL && i < n; i++) {
		if (env[i] != NULL && strncmp(env[i], name, sizeof name - 1) == 0)
			found = env[i] + sizeof name - 1;
	}
	return found;
}

/* ---- Limits: per-user session counts ---- */

#define GUARD_COUNTS_BUCKETS 256

struct guard_count {
	struct guard_count *next;
	unsigned n;
	char user[];
};

struct guard_counts {
	struct guard_count *buckets[GUARD_COUNTS_BUCKETS];
};

/* FNV-1a of a user name, folded to a bucket. */
static size_t
guard_counts_bucket(const char *user)
{
	uint32_t h = 2166136261u;

	for (; *user != '\0'; user++)
		h = (h ^ (unsigned char)*user) * 16777619u;
	return h % GUARD_COUNTS_BUCKETS;
}

int
guard_counts_new(struct guard_counts **out)
{
	*out = calloc(1, sizeof **out);
	return *out == NULL ? -ENOMEM : 0;
}

void
guard_counts_free(struct guard_counts *t)
{
	struct guard_count *e, *next;
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < GUARD_COUNTS_BUCKETS; i++) {
		for (e = t->buckets[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(t);
}

/* The entry of user, or NULL; *prevp gets the link that points to it. */
static struct guard_count *
guard_counts_find(const struct guard_counts *t, const char *user, struct guard_count ***prevp)
{
	struct guard_count *const *pp;

	for (pp = &t->buckets[guard_counts_bucket(user)]; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->user, user) == 0)
			break;
	}
	if (prevp != NULL)
		*prevp = (struct guard_count **)pp;
	return *pp;
}

int
guard_counts_acquire(struct guard_counts *t, const char *user, unsigned max)
{
	struct guard_count *e, **link;
	size_t len;

	if (t == NULL || user == NULL)
		return -EINVAL;
	if ((e = guard_counts_find(t, user, &link)) != NULL) {
		if (max > 0 && e->n >= max)
			return -EUSERS;
		e->n++;
		return 0;
	}
	len = strlen(user);
	if ((e = malloc(sizeof *e + len + 1)) == NULL)
		return -ENOMEM;
	memcpy(e->user, user, len + 1);
	e->n = 1;
	e->next = NULL;
	*link = e;
	return 0;
}

void
guard_counts_release(struct guard_counts *t, const char *user)
{
	struct guard_count *e, **link;

	if (t == NULL || user == NULL || (e = guard_counts_find(t, user, &link)) == NULL)
		return;
	if (--e->n == 0) {
		*link = e->next;
		free(e);
	}
}

unsigned
guard_counts_get(const struct guard_counts *t, const char *user)
{
	const struct guard_count *e;

	if (t == NULL || user == NULL || (e = guard_counts_find(t, user, NULL)) == NULL)
		return 0;
	return e->n;
}

/* ---- Limits: one session ---- */

#define GUARD_NS 1000000000ull

void
guard_limits_start(struct guard_limits_state *st, uint64_t now_ns)
{
	st->start_ns = now_ns;
	st->last_ns = now_ns;
	st->output = 0;
}

void
guard_limits_activity(struct guard_limits_state *st, uint64_t now_ns)
{
	if (now_ns > st->last_ns)
		st->last_ns = now_ns;
}

enum guard_limit
guard_limits_output(struct guard_limits_state *st, const struct cfg_limits *l,
    uint64_t now_ns, size_t n)
{
	guard_limits_activity(st, now_ns);
	st->output += n;
	if (l != NULL && l->max_output > 0 && st->output > l->max_output)
		return GUARD_LIMIT_OUTPUT;
	return GUARD_LIMIT_NONE;
}

/* A limit of seconds as nanoseconds, saturating. */
static uint64_t
guard_secs_ns(uint64_t s)
{
	return s > UINT64_MAX / GUARD_NS ? UINT64_MAX : s * GUARD_NS;
}

enum guard_limit
guard_limits_check(const struct guard_limits_state *st, const struct cfg_limits *l,
    uint64_t now_ns)
{
	if (l == NULL)
		return GUARD_LIMIT_NONE;
	if (l->max_duration > 0 && now_ns >= st->start_ns &&
	    now_ns - st->start_ns >= guard_secs_ns(l->max_duration))
		return GUARD_LIMIT_DURATION;
	if (l->idle_timeout > 0 && now_ns >= st->last_ns &&
	    now_ns - st->last_ns >= guard_secs_ns(l->idle_timeout))
		return GUARD_LIMIT_IDLE;
	if (l->max_output > 0 && st->output > l->max_output)
		return GUARD_LIMIT_OUTPUT;
	return GUARD_LIMIT_NONE;
}

/* Nanoseconds until deadline (a start plus a limit), 0 when passed. */
static uint64_t
guard_until(uint64_t from_ns, uint64_t limit_s, uint64_t now_ns)
{
	uint64_t lim = guard_secs_ns(limit_s), end;

	end = from_ns > UINT64_MAX - lim ? UINT64_MAX : from_ns + lim;
	return end <= now_ns ? 0 : end - now_ns;
}

uint64_t
guard_limits_next_ns(const struct guard_limits_state *st, const struct cfg_limits *l,
    uint64_t now_ns)
{
	uint64_t next = UINT64_MAX, t;

	if (l == NULL)
		return next;
	if (l->max_duration > 0 && (t = guard_until(st->start_ns, l->max_duration, now_ns)) < next)
		next = t;
	if (l->idle_timeout > 0 && (t = guard_until(st->last_ns, l->idle_timeout, now_ns)) < next)
		next = t;
	return next;
}

const char *
guard_limit_name(enum guard_limit k)
{
	switch (k) {
	case GUARD_LIMIT_NONE:
		return "none";
	case GUARD_LIMIT_SESSIONS:
		return "max_sessions";
	case GUARD_LIMIT_DURATION:
		return "max_duration";
	case GUARD_LIMIT_IDLE:
		return "idle_timeout";
	case GUARD_LIMIT_OUTPUT:
		return "max_output";
	}
	return "unknown";
}

int
guard_format_duration(uint64_t s, char *buf, size_t len)
{
	char tmp[64];
	size_t n = 0;

	if (s == 0)
		return snprintf(buf, len, "0s");
	if (s >= 3600)
		n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%lluh",
		    (unsigned long long)(s / 3600));
	if (s % 3600 >= 60)
		n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%llum",
		    (unsigned long long)(s % 3600 / 60));
	if (s % 60 > 0)
		snprintf(tmp + n, sizeof tmp - n, "%llus", (unsigned long long)(s % 60));
	return snprintf(buf, len, "%s", tmp);
}

int
guard_format_size(uint64_t b, char *buf, size_t len)
{
	static const struct {
		const char *unit;
		uint64_t mul;
	} units[] = {
		{ "TB", 1000000000000ull }, { "TiB", 1ull << 40 },
		{ "GB", 1000000000ull }, { "GiB", 1ull << 30 },
		{ "MB", 1000000ull }, { "MiB", 1ull << 20 },
		{ "kB", 1000ull }, { "KiB", 1ull << 10 },
	};
	size_t i;

	for (i = 0; b > 0 && i < sizeof units / sizeof units[0]; i++) {
		if (b % units[i].mul == 0)
			return snprintf(buf, len, "%llu%s",
			    (unsigned long long)(b / units[i].mul), units[i].unit);
	}
	return snprintf(buf, len, "%lluB", (unsigned long long)b);
}

int
guard_limit_message(enum guard_limit k, const struct cfg_limits *l, char *buf, size_t len)
{
	char v[32] = "";

	switch (k) {
	case GUARD_LIMIT_NONE:
		break;
	case GUARD_LIMIT_SESSIONS:
		return snprintf(buf, len, "podgate: session refused: you already have %u "
		    "sessions open, the most your rule allows", l != NULL ? l->max_sessions : 0);
	case GUARD_LIMIT_DURATION:
		guard_format_duration(l != NULL ? l->max_duration : 0, v, sizeof v);
		return snprintf(buf, len, "podgate: session ended: maximum session duration "
		    "(%s) reached", v);
	case GUARD_LIMIT_IDLE:
		guard_format_duration(l != NULL ? l->idle_timeout : 0, v, sizeof v);
		return snprintf(buf, len, "podgate: session ended: idle for %s", v);
	case GUARD_LIMIT_OUTPUT:
		guard_format_size(l != NULL ? l->max_output : 0, v, sizeof v);
		return snprintf(buf, len, "podgate: session ended: output quota (%s) exceeded", v);
	}
	if (len > 0)
		*buf = '\0';
	return 0;
}
