/*
 * The guard wired into a session (session-guard.h): what the rule lets
 * the session do, what ends it, and what typed input the record masks.
 * The client and the target always get the real bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>

#include <openssl/evp.h>

#include "rec.h"
#include "base/log.h"
#include "session/internal.h"
#include "session/session-guard.h"

#define SESSION_GUARD_PROMPT "Reason (ticket or incident): "

/* Now on the clock the recording's events are stamped with. */
static uint64_t
session_guard_now(void)
{
	return rec_now_mono_ns();
}

/* Redact a string for the audit log or the header; NULL when out of memory. */
static char *
session_guard_redact(const struct session *s, const char *str)
{
	char *out = NULL;

	if (str == NULL || redact_string(s->config, str, strlen(str), &out, NULL) < 0)
		return NULL;
	return out;
}

/* The command for the header and audit events (redacted). */
const char *
session_guard_command(struct session *s)
{
	if (s->command == NULL)
		return NULL;
	if (s->guard.command == NULL)
		s->guard.command = session_guard_redact(s, s->command);
	return s->guard.command != NULL ? s->guard.command : "[REDACTED:unavailable]";
}

/* The HMAC of the command as given, when redaction changed it. */
const char *
session_guard_command_hmac(struct session *s)
{
	const struct session_broker *b = s->host->broker;
	unsigned char md[32];
	const char *red = session_guard_command(s);
	size_t mdlen = 0, i;

	if (red == NULL || strcmp(red, s->command) == 0 || b->redact_key == NULL)
		return NULL;
	if (s->guard.command_hmac[0] == '\0') {
		if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, b->redact_key,
		    b->redact_keylen, (const unsigned char *)s->command, strlen(s->command),
		    md, sizeof md, &mdlen) == NULL || mdlen != sizeof md)
			return NULL;
		for (i = 0; i < mdlen; i++)
			snprintf(s->guard.command_hmac + 2 * i, 3, "%02x", md[i]);
	}
	return s->guard.command_hmac;
}

/* The header's what_extra pairs: what (may be NULL), the reason, the command's HMAC. */
const char *const *
session_guard_header(struct session *s, const char *const *what)
{
	const char *hmac = session_guard_command_hmac(s);
	size_t n = 0, i;

	if (s->guard.reason == NULL && hmac == NULL)
		return what;
	while (what != NULL && what[n] != NULL && what[n + 1] != NULL)
		n += 2;
	free(s->guard.what);
	if ((s->guard.what = calloc(n + 5, sizeof *s->guard.what)) == NULL)
		return what;
	for (i = 0; i < n; i++)
		s->guard.what[i] = what[i];
	if (s->guard.reason != NULL) {
		s->guard.what[n++] = "reason";
		s->guard.what[n++] = s->guard.reason;
	}
	if (hmac != NULL) {
		s->guard.what[n++] = "command_hmac";
		s->guard.what[n++] = hmac;
	}
	return s->guard.what;
}

/* Audit fields naming the rule. */
#define SESSION_GUARD_RULE(s) AUDIT_NUM("rule", (s)->rule != NULL ? (s)->rule->line : 0)

/* The rule's command and PTY checks; a refused request gets a short recording, exit 126. */
int
session_guard_check(struct session *s, struct session_no *no)
{
	struct guard_verdict v;
	char msg[GUARD_PATTERN_MAX + 256];
	int r;

	if (guard_check_request(s->rule, s->pty, s->command, &v) == GUARD_OK)
		return SESSION_GO;
	guard_verdict_message(&v, msg, sizeof msg);
	if ((r = session_record_open(s)) < 0) {
		log_error_r(r, "session %s: cannot record the refused request", s->id);
		record_drop(&s->rec);
	}
	{
		struct audit_field f[] = {
			AUDIT_STR("target", s->target),
			AUDIT_SECRET("command", s->command, s->config),
			AUDIT_NUM("pty", s->pty),
			SESSION_GUARD_RULE(s),
			AUDIT_STR("decision", guard_decision_name(v.decision)),
			AUDIT_STR("recording", s->rec.path),
			AUDIT_STR("pattern", v.pattern != NULL ? v.pattern->text : NULL),
		};

		session_audit(s, "command_refused", f, v.pattern != NULL ? 7 : 6);
	}
	log_info("session %s: %s@%s -> %s: %s", s->id, s->host->user, s->host->client,
	    s->target, msg);
	return session_refuse_no(s, no, GUARD_EXIT_REFUSED, NULL, "%s", msg);
}

/* Count the session against the user's max_sessions. */
int
session_guard_count(struct session *s, struct session_no *no)
{
	struct guard_counts **counts = s->host->broker->guard_counts;
	const struct cfg_limits *l;
	char msg[256];
	int r;

	if (s->rule == NULL)
		return SESSION_GO;
	l = &s->rule->limits;
	if (*counts == NULL && (r = guard_counts_new(counts)) < 0)
		goto fail;
	if ((s->guard.user = strdup(s->host->user)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	r = guard_counts_acquire(*counts, s->guard.user, l->max_sessions);
	if (r == 0) {
		s->guard.counted = true;
		return SESSION_GO;
	}
	if (r == -EUSERS) {
		struct audit_field f[] = {
			AUDIT_STR("target", s->target),
			SESSION_GUARD_RULE(s),
			AUDIT_STR("limit", guard_limit_name(GUARD_LIMIT_SESSIONS)),
			AUDIT_NUM("max_sessions", l->max_sessions),
		};

		session_audit(s, "limit", f, 4);
		guard_limit_message(GUARD_LIMIT_SESSIONS, l, msg, sizeof msg);
		return session_refuse_no(s, no, 1, "max_sessions reached", "%s", msg);
	}
fail:
	return session_refuse_no(s, no, 1, "out of memory", "podgate: internal error");
}

/* Keep a valid reason (redacted); false when it is not acceptable. */
static bool
session_guard_take_reason(struct session *s, const char *reason)
{
	if (!guard_reason_ok(reason))
		return false;
	free(s->guard.reason);
	free(s->guard.reason_given);
	s->guard.reason = session_guard_redact(s, reason);
	s->guard.reason_given = strdup(reason);
	return s->guard.reason != NULL && s->guard.reason_given != NULL;
}

/* The target may start: the limits' clocks start now. */
static void
session_guard_go(struct session *s)
{
	guard_limits_start(&s->guard.limits, session_guard_now());
	s->guard.limits_on = true;
	guard_line_init(&s->guard.in, true);
	guard_line_init(&s->guard.out, false);
}

/* The reason the rule requires: from the environment, or asked on the terminal. */
int
session_guard_reason(struct session *s, struct session_no *no)
{
	const struct cfg_rule *rule = s->rule;
	const char *reason;

	if (rule != NULL && rule->require_reason) {
		reason = guard_reason_from_env(s->env, s->nenv);
		if (reason != NULL && !session_guard_take_reason(s, reason))
			return session_refuse_no(s, no, 1, "invalid reason",
			    "podgate: session refused by rule at line %d: the reason in %s must be "
			    "1 to %d characters of text", rule->line, GUARD_REASON_ENV,
			    GUARD_REASON_MAX);
		if (reason == NULL && !s->pty)
			return session_refuse_no(s, no, 1, "reason required",
			    "podgate: session refused by rule at line %d: a reason is required; "
			    "give it with ssh -o SetEnv=%s=\"TICKET\"", rule->line,
			    GUARD_REASON_ENV);
		if (reason == NULL) {
			/* Ask on the terminal; the start resumes at the answer. */
			guard_line_init(&s->guard.reason_line, true);
			s->state = SESSION_REASON;
			session_send(s, false, SESSION_GUARD_PROMPT, strlen(SESSION_GUARD_PROMPT));
			s->chan_pending = true;
			session_dirty(s);
			return SESSION_WAIT;
		}
	}
	session_guard_go(s);
	return SESSION_GO;
}

/* Number of characters (not UTF-8 continuation bytes) in s[0..n). */
static size_t
session_guard_chars(const char *s, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

/* Typed bytes while asking for the reason: edit, echo, and start on Enter. */
uint32_t
session_guard_reason_input(struct session *s, const uint8_t *data, uint32_t len)
{
	struct guard_line *l = &s->guard.reason_line;
	const char *line, *before_p, *cur;
	size_t before, after, n, k;
	uint32_t i = 0;
	char before_buf[GUARD_LINE_MAX + 1];

	while (i < len && s->state == SESSION_REASON) {
		if (data[i] == 0x03 || data[i] == 0x04) {	/* ^C, ^D: no reason */
			session_say(s, false, "");
			session_refuse(s, "no reason given", "podgate: no reason given");
			return i + 1;
		}
		before_p = guard_line_partial(l, &before);
		memcpy(before_buf, before_p, before + 1);
		n = guard_line_feed(l, data + i, 1, &line, &k);
		i += (uint32_t)n;
		if (line != NULL) {
			session_send(s, false, "\r\n", 2);
			if (!session_guard_take_reason(s, line)) {
				session_say(s, false, "podgate: a reason is 1 to 200 characters of "
				    "text (a ticket, an incident)");
				session_send(s, false, SESSION_GUARD_PROMPT,
				    strlen(SESSION_GUARD_PROMPT));
				continue;
			}
			session_guard_go(s);
			/* Resume the start after the reason step. */
			s->state = SESSION_STARTING;
			session_dirty(s);
			session_start(s);
			return i;
		}
		cur = guard_line_partial(l, &after);
		if (after > before && memcmp(before_buf, cur, before) == 0) {
			session_send(s, false, cur + before, after - before);
		} else if (after < before) {
			for (k = session_guard_chars(before_buf + after, before - after); k > 0; k--)
				session_send(s, false, "\b \b", 3);
		}
	}
	return i;
}

/*
 * Whether the local PTY is reading a password: echo off in canonical mode,
 * as getpass, read -s and sudo set it. Readline and full-screen programs
 * (bash, zsh, python, vim, less, top) turn echo off too, but also leave
 * canonical mode: their input is recorded as typed.
 */
static bool
session_guard_password_mode(const struct session *s)
{
	struct termios t;

	if (!s->pty || s->fds[0].fd < 0)
		return false;
	return tcgetattr(s->fds[0].fd, &t) == 0 && (t.c_lflag & ECHO) == 0 &&
	    (t.c_lflag & ICANON) != 0;
}

/* Keep the target's current output line (after the last line end), for passprompt. */
static void
session_guard_prompt_track(struct session *s, const uint8_t *p, size_t len)
{
	struct session_guard *g = &s->guard;
	size_t i, from = 0;

	for (i = 0; i < len; i++) {
		if (p[i] == '\n' || p[i] == '\r') {
			from = i + 1;
			g->promptlen = 0;
		}
	}
	for (i = from; i < len; i++) {
		if (g->promptlen + 1 >= sizeof g->prompt) {
			/* Keep the tail: a prompt is at the end of the line. */
			memmove(g->prompt, g->prompt + sizeof g->prompt / 2,
			    g->promptlen - sizeof g->prompt / 2);
			g->promptlen -= sizeof g->prompt / 2;
		}
		g->prompt[g->promptlen++] = (char)(p[i] != '\0' ? p[i] : ' ');
	}
	g->prompt[g->promptlen] = '\0';
}

/*
 * Whether typed input is to be masked: in password mode, or after an
 * output line matching one of the rule's passprompt patterns, up to the
 * Enter that answers it.
 */
static bool
session_guard_mask_input(struct session *s, const uint8_t *p, size_t len)
{
	struct session_guard *g = &s->guard;
	size_t i;

	if (session_guard_password_mode(s))
		return true;
	if (s->rule == NULL || s->rule->npassprompt == 0)
		return false;
	if (!g->pass_armed) {
		for (i = 0; i < s->rule->npassprompt; i++) {
			if (pattern_match(&s->rule->passprompt[i], g->prompt)) {
				g->pass_armed = true;
				g->promptlen = 0;	/* answered: the same prompt arms once */
				g->prompt[0] = '\0';
				break;
			}
		}
	}
	if (!g->pass_armed)
		return false;
	if (memchr(p, '\r', len) != NULL || memchr(p, '\n', len) != NULL)
		g->pass_armed = false;
	return true;
}

/* A limit or a watch pattern ends the target: tell the user, mark it, stop it. */
static void
session_guard_stop(struct session *s, const char *msg)
{
	if (s->stop != SESSION_STOP_NONE)
		return;
	log_info("session %s: %s", s->id, msg);
	session_say(s, true, msg);
	session_mark(s, msg);
	session_stop(s, SESSION_STOP_HANGUP);
}

/* A limit was reached: audit it and end the session. */
static void
session_guard_limit(struct session *s, enum guard_limit k)
{
	const struct cfg_limits *l = &s->rule->limits;
	char msg[256];

	if (s->stop != SESSION_STOP_NONE)
		return;
	{
		struct audit_field f[] = {
			AUDIT_STR("target", s->target),
			SESSION_GUARD_RULE(s),
			AUDIT_STR("limit", guard_limit_name(k)),
			AUDIT_NUM("bytes_out", s->guard.limits.output),
		};

		session_audit(s, "limit", f, 4);
	}
	guard_limit_message(k, l, msg, sizeof msg);
	session_guard_stop(s, msg);
}

/* A completed line: audit each watch pattern it matches; end on terminate. */
static void
session_guard_watch_line(struct session *s, unsigned on, const char *line)
{
	const struct cfg_watch *w = NULL;
	char msg[GUARD_PATTERN_MAX + 256];

	while ((w = guard_watch_match(s->rule, on, line, w)) != NULL) {
		{
			struct audit_field f[] = {
				AUDIT_STR("target", s->target),
				SESSION_GUARD_RULE(s),
				AUDIT_NUM("watch", w->line),
				AUDIT_STR("on", on == CFG_WATCH_INPUT ? "input" : "output"),
				AUDIT_STR("pattern", w->pattern.text),
				AUDIT_STR("action", w->action == CFG_WATCH_TERMINATE ? "terminate" :
				    "alert"),
				AUDIT_SECRET("line", line, s->config),
			};

			session_audit(s, "watch", f, 7);
		}
		if (w->action == CFG_WATCH_TERMINATE) {
			guard_watch_message(w, on, msg, sizeof msg);
			session_guard_stop(s, msg);
			return;
		}
	}
}

/* Feed bytes to a line rebuilder and watch each completed line. */
static void
session_guard_watch(struct session *s, struct guard_line *l, unsigned on, const uint8_t *p,
    size_t len)
{
	const char *line;
	size_t n, linelen;

	while (len > 0 && s->stop == SESSION_STOP_NONE) {
		n = guard_line_feed(l, p, len, &line, &linelen);
		p += n;
		len -= n;
		if (line != NULL)
			session_guard_watch_line(s, on, line);
	}
}

/* Watch and count one event of the running target. */
static void
session_guard_observe(struct session *s, char code, const uint8_t *p, size_t len)
{
	const struct cfg_rule *rule = s->rule;
	enum guard_limit k = GUARD_LIMIT_NONE;
	uint64_t now;

	if (rule == NULL || !s->guard.limits_on || s->stop != SESSION_STOP_NONE)
		return;
	now = session_guard_now();
	if (code == REC_INPUT)
		guard_limits_activity(&s->guard.limits, now);
	else
		k = guard_limits_output(&s->guard.limits, &rule->limits, now, len);
	if (rule->nwatch > 0) {
		if (code == REC_INPUT)
			session_guard_watch(s, &s->guard.in, CFG_WATCH_INPUT, p, len);
		else
			session_guard_watch(s, &s->guard.out, CFG_WATCH_OUTPUT, p, len);
	}
	if (k != GUARD_LIMIT_NONE)
		session_guard_limit(s, k);
}

/* One event for the record: mask, then record (record.h); then watch and count. */
int
session_guard_data(struct session *s, char code, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint8_t *masked = NULL;
	int r;

	if (code != REC_OUTPUT && code != REC_STDERR && code != REC_INPUT)
		return record_event(&s->rec, code, data, len);
	if (code != REC_INPUT && s->rule != NULL && s->rule->npassprompt > 0)
		session_guard_prompt_track(s, data, len);
	if (code == REC_INPUT && len > 0 && session_guard_mask_input(s, data, len)) {
		if ((masked = malloc(len)) == NULL)
			return -ENOMEM;
		len = rec_input_mask(data, len, masked);
		p = masked;
	}
	r = record_event(&s->rec, code, p, len);
	session_guard_observe(s, code, p, len);
	if (masked != NULL) {
		explicit_bzero(masked, len);
		free(masked);
	}
	return r;
}

/* From the session's tick: check the time limits. */
void
session_guard_tick(struct session *s)
{
	enum guard_limit k;

	if (s->rule == NULL || !s->guard.limits_on || s->stop != SESSION_STOP_NONE ||
	    s->state != SESSION_RUNNING)
		return;
	k = guard_limits_check(&s->guard.limits, &s->rule->limits, session_guard_now());
	if (k != GUARD_LIMIT_NONE)
		session_guard_limit(s, k);
}

/* Milliseconds until a time limit may be reached. */
uint64_t
session_guard_next_ms(struct session *s)
{
	uint64_t ns;

	if (s->rule == NULL || !s->guard.limits_on || s->stop != SESSION_STOP_NONE ||
	    s->state != SESSION_RUNNING)
		return UINT64_MAX;
	ns = guard_limits_next_ns(&s->guard.limits, &s->rule->limits, session_guard_now());
	if (ns == UINT64_MAX)
		return UINT64_MAX;
	return ns / 1000000 + 1;	/* never early: a check before the limit reports none */
}

/* Release the session count and free the guard's state. */
void
session_guard_free(struct session *s)
{
	struct session_guard *g = &s->guard;

	if (g->counted)
		guard_counts_release(*s->host->broker->guard_counts, g->user);
	g->counted = false;
	free(g->user);
	free(g->command);
	free(g->what);
	g->what = NULL;
	if (g->reason != NULL)
		explicit_bzero(g->reason, strlen(g->reason));
	free(g->reason);
	if (g->reason_given != NULL)
		explicit_bzero(g->reason_given, strlen(g->reason_given));
	free(g->reason_given);
	g->user = g->command = g->reason = g->reason_given = NULL;
}
