/*
 * The guard and redaction wired into a session (session-guard.h): what
 * the rule lets the session do, what ends it, and what the record keeps.
 * The client and the target always get the real bytes; only the events
 * written to the recording and the audit log go through the redactor.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>

#include <openssl/evp.h>

#include "ssh/conn.h"
#include "admin/live.h"
#include "base/log.h"
#include "session/recfile.h"
#include "ssh/server.h"
#include "session/session.h"
#include "session/session-guard.h"

#define SESSION_GUARD_PROMPT "Reason (ticket or incident): "
#define SESSION_GUARD_SPANS 16

static void session_guard_end(struct session *s, const char *msg);

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
	const struct server *srv = s->conn->server;
	unsigned char md[32];
	const char *red = session_guard_command(s);
	size_t mdlen = 0, i;

	if (red == NULL || strcmp(red, s->command) == 0 || !srv->have_redact_key)
		return NULL;
	if (s->guard.command_hmac[0] == '\0') {
		if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, srv->redact_key,
		    sizeof srv->redact_key, (const unsigned char *)s->command, strlen(s->command),
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

/*
 * Record the proof of each secret that ended by this chunk: a marker
 * "redacted KIND: N bytes of STREAM, hmac-sha256 HEX", so that whoever
 * holds the broker's redaction key can show what was hidden.
 */
static int
session_guard_proofs(struct session *s, const struct redact_chunk *ch)
{
	static const char *const streams[] = { "o", "output", "e", "stderr", "i", "input" };
	const struct redact_proof *p;
	const char *name;
	struct rec_event ev;
	char text[256];
	size_t i, k;
	int n, r;

	for (i = 0; i < ch->nproofs; i++) {
		p = &ch->proofs[i];
		name = "?";
		for (k = 0; k < 6; k += 2) {
			if (streams[k][0] == p->code)
				name = streams[k + 1];
		}
		n = snprintf(text, sizeof text, "redacted %s: %llu bytes of %s, hmac-sha256 %s",
		    p->kind, (unsigned long long)p->len, name, p->hmac);
		if (n < 0 || (size_t)n >= sizeof text)
			continue;
		memset(&ev, 0, sizeof ev);
		ev.code = REC_MARKER;
		ev.data = (const uint8_t *)text;
		ev.len = (size_t)n;
		if ((r = rec_writer_append_spans(s->rec, ch->time, &ev, NULL, 0)) < 0)
			return r;
	}
	return 0;
}

/* Append the chunks the redactor has decided to the recording. */
static int
session_guard_drain(struct session *s)
{
	struct redact *rd = s->guard.redact;
	struct rec_span stack[SESSION_GUARD_SPANS], *spans;
	struct redact_chunk ch;
	struct rec_event ev;
	size_t i;
	int r;

	while ((r = redact_next(rd, &ch)) == 1) {
		/* Live views see what the record holds: secrets redacted. */
		if ((ch.code == REC_OUTPUT || ch.code == REC_STDERR) && ch.len > 0)
			live_output(s, ch.data, ch.len);
		if (s->rec == NULL || s->rec_failed)
			continue;	/* the recording was dropped: discard */
		memset(&ev, 0, sizeof ev);
		ev.code = ch.code;
		spans = NULL;
		switch (ch.code) {
		case REC_OUTPUT:
		case REC_STDERR:
		case REC_INPUT:
			if (ch.len == 0) {
				if ((r = session_guard_proofs(s, &ch)) < 0)
					return r;
				continue;
			}
			ev.data = ch.data;
			ev.len = ch.len;
			if (ch.nspans == 0)
				break;
			spans = ch.nspans <= SESSION_GUARD_SPANS ? stack :
			    calloc(ch.nspans, sizeof *spans);
			if (spans == NULL)
				return -ENOMEM;
			for (i = 0; i < ch.nspans; i++) {
				spans[i].at = ch.spans[i].at;
				spans[i].len = ch.spans[i].len;
				spans[i].kind = ch.spans[i].kind;
			}
			break;
		case REC_RESIZE:
			if (ch.len != 4)
				continue;
			ev.cols = (uint16_t)(ch.data[0] << 8 | ch.data[1]);
			ev.rows = (uint16_t)(ch.data[2] << 8 | ch.data[3]);
			break;
		case REC_MARKER:
			ev.data = ch.data;
			ev.len = ch.len;
			break;
		default:
			continue;
		}
		r = rec_writer_append_spans(s->rec, ch.time, &ev, spans,
		    spans != NULL ? ch.nspans : 0);
		if (spans != NULL && spans != stack)
			free(spans);
		if (r < 0)
			return r;
		if ((r = session_guard_proofs(s, &ch)) < 0)
			return r;
	}
	return r;
}

/* Queue one event for the recording and write what is decided. */
static int
session_guard_feed(struct session *s, char code, const void *data, size_t len)
{
	int r;

	if (s->rec == NULL || s->rec_failed)
		return 0;
	if (s->guard.redact == NULL) {
		const struct server *srv = s->conn->server;

		if ((r = redact_new(s->config, &s->guard.redact)) < 0)
			return r;
		if (srv->have_redact_key && (r = redact_set_key(s->guard.redact, srv->redact_key,
		    sizeof srv->redact_key)) < 0)
			return r;
	}
	if ((r = redact_feed(s->guard.redact, code, session_guard_now(), data, len)) < 0)
		return r;
	return session_guard_drain(s);
}

/* A recording error from inside the guard: ends the session as session.c does. */
static void
session_guard_rec_error(struct session *s, int r)
{
	if (r < 0)
		session_rec_fail(s, r);
}

/* Write a marker (the message without "podgate: ") into the recording. */
static void
session_guard_marker(struct session *s, const char *msg)
{
	if (strncmp(msg, "podgate: ", 9) == 0)
		msg += 9;
	session_guard_rec_error(s, session_guard_feed(s, REC_MARKER, msg, strlen(msg)));
}

/* Audit fields naming the rule. */
#define SESSION_GUARD_RULE(s) AUDIT_NUM("rule", (s)->rule != NULL ? (s)->rule->line : 0)

/* The request is refused by the rule: one line, exit 126, a short recording. */
static void
session_guard_refuse(struct session *s, const struct guard_verdict *v)
{
	char msg[GUARD_PATTERN_MAX + 256];
	int r;

	guard_verdict_message(v, msg, sizeof msg);
	if ((r = session_open_recording(s)) < 0) {
		log_error_r(r, "session %s: cannot record the refused request", s->id);
		if (s->rec != NULL) {
			rec_writer_abandon(s->rec);
			s->rec = NULL;
		}
	} else {
		session_guard_marker(s, msg);
		session_guard_flush(s);
		if (s->rec != NULL && !s->rec_failed &&
		    (r = rec_writer_exit(s->rec, GUARD_EXIT_REFUSED, NULL)) < 0)
			log_error_r(r, "session %s: recording %s", s->id, s->rec_path);
	}
	if (s->rec != NULL) {
		if ((r = rec_writer_close(s->rec)) < 0)
			log_error_r(r, "session %s: closing recording %s", s->id, s->rec_path);
		s->rec = NULL;
	}
	if (s->rf != NULL) {
		recfile_close(s->rf, &s->conn->server->loop);
		s->rf = NULL;
	}
	{
		struct audit_field f[] = {
			AUDIT_STR("target", s->target),
			AUDIT_SECRET("command", s->command, s->config),
			AUDIT_NUM("pty", s->pty),
			SESSION_GUARD_RULE(s),
			AUDIT_STR("decision", guard_decision_name(v->decision)),
			AUDIT_STR("recording", s->rec_path),
			AUDIT_STR("pattern", v->pattern != NULL ? v->pattern->text : NULL),
		};

		session_audit(s, "command_refused", f, v->pattern != NULL ? 7 : 6);
	}
	log_info("session %s: %s@%s -> %s: %s", s->id, s->conn->user, s->conn->client,
	    s->target, msg);
	session_say(s, true, msg);
	session_close_channel(s, GUARD_EXIT_REFUSED, NULL, false);
	s->finished = true;
	session_release(s);
}

/* Count the session against the user's max_sessions; false when refused. */
static bool
session_guard_count(struct session *s)
{
	struct server *srv = s->conn->server;
	const struct cfg_limits *l = &s->rule->limits;
	char msg[256];
	int r;

	if (srv->guard_counts == NULL && (r = guard_counts_new(&srv->guard_counts)) < 0)
		goto fail;
	if ((s->guard.user = strdup(s->conn->user)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	r = guard_counts_acquire(srv->guard_counts, s->guard.user, l->max_sessions);
	if (r == 0) {
		s->guard.counted = true;
		return true;
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
		session_refuse(s, "max_sessions reached", msg, false);
		return false;
	}
fail:
	session_refuse(s, "out of memory", "podgate: internal error", false);
	return false;
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

/* Check the request, count the session and get the reason. */
int
session_guard_begin(struct session *s, const struct cfg_user *u)
{
	const struct cfg_rule *rule = s->rule;
	struct guard_verdict v;
	const char *reason;
	char msg[512];

	if (guard_check_request(rule, s->pty, s->command, &v) != GUARD_OK) {
		session_guard_refuse(s, &v);
		return 1;
	}
	if (rule == NULL) {
		session_guard_go(s);
		return 0;
	}
	if (!session_guard_count(s))
		return 1;
	if (rule->require_reason) {
		reason = guard_reason_from_env(s->env, s->nenv);
		if (reason != NULL && !session_guard_take_reason(s, reason)) {
			snprintf(msg, sizeof msg, "podgate: session refused by rule at line %d: "
			    "the reason in %s must be 1 to %d characters of text", rule->line,
			    GUARD_REASON_ENV, GUARD_REASON_MAX);
			session_refuse(s, "invalid reason", msg, false);
			return 1;
		}
		if (reason == NULL && !s->pty) {
			snprintf(msg, sizeof msg, "podgate: session refused by rule at line %d: "
			    "a reason is required; give it with ssh -o SetEnv=%s=\"TICKET\"",
			    rule->line, GUARD_REASON_ENV);
			session_refuse(s, "reason required", msg, false);
			return 1;
		}
		if (reason == NULL) {
			/* Ask on the terminal; the start resumes at the answer. */
			s->guard.account = u;
			guard_line_init(&s->guard.reason_line, true);
			s->state = SESSION_REASON;
			session_send(s, false, SESSION_GUARD_PROMPT, strlen(SESSION_GUARD_PROMPT));
			s->chan_pending = true;
			s->conn->dirty = true;
			return 1;
		}
	}
	session_guard_go(s);
	return 0;
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
			session_refuse(s, "no reason given", "podgate: no reason given", false);
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
			s->conn->dirty = true;
			session_start_run(s, s->guard.account);
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

/* End the session for a limit or a watch pattern: tell the user, mark, kill. */
static void
session_guard_end(struct session *s, const char *msg)
{
	if (s->guard.ended)
		return;
	s->guard.ended = true;
	log_info("session %s: %s", s->id, msg);
	session_say(s, true, msg);
	session_guard_marker(s, msg);
	session_kill(s);
}

/* A limit was reached: audit it and end the session. */
static void
session_guard_limit(struct session *s, enum guard_limit k)
{
	const struct cfg_limits *l = &s->rule->limits;
	char msg[256];

	if (s->guard.ended)
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
	session_guard_end(s, msg);
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
			session_guard_end(s, msg);
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

	while (len > 0 && !s->guard.ended) {
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

	if (rule == NULL || !s->guard.limits_on || s->guard.ended)
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

/* One event for the recording: mask, redact and append; then watch and count. */
int
session_guard_data(struct session *s, char code, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint8_t *masked = NULL;
	int r;

	if (code != REC_OUTPUT && code != REC_STDERR && code != REC_INPUT)
		return session_guard_feed(s, code, data, len);
	if (code != REC_INPUT && s->rule != NULL && s->rule->npassprompt > 0)
		session_guard_prompt_track(s, data, len);
	if (code == REC_INPUT && len > 0 && session_guard_mask_input(s, data, len)) {
		if ((masked = malloc(len)) == NULL)
			return -ENOMEM;
		len = guard_input_mask(data, len, masked);
		p = masked;
	}
	r = session_guard_feed(s, code, p, len);
	session_guard_observe(s, code, p, len);
	if (masked != NULL) {
		explicit_bzero(masked, len);
		free(masked);
	}
	return r;
}

/* A terminal resize for the recording, in order with the data. */
int
session_guard_resize(struct session *s)
{
	uint8_t b[4] = {
		(uint8_t)(s->cols >> 8), (uint8_t)s->cols,
		(uint8_t)(s->rows >> 8), (uint8_t)s->rows,
	};

	return session_guard_feed(s, REC_RESIZE, b, sizeof b);
}

/* From the flush timer: release quiet held bytes; check the time limits. */
void
session_guard_tick(struct session *s)
{
	enum guard_limit k;
	uint64_t now = session_guard_now();
	int r;

	if (s->guard.redact != NULL && s->rec != NULL && !s->rec_failed &&
	    redact_tick(s->guard.redact, now) == 1 && (r = session_guard_drain(s)) < 0)
		session_guard_rec_error(s, r);
	if (s->rule == NULL || !s->guard.limits_on || s->guard.ended || s->exited)
		return;
	k = guard_limits_check(&s->guard.limits, &s->rule->limits, now);
	if (k != GUARD_LIMIT_NONE)
		session_guard_limit(s, k);
}

/* Write every held event to the recording (before the exit event). */
void
session_guard_flush(struct session *s)
{
	int r;

	if (s->guard.redact == NULL || s->rec == NULL || s->rec_failed)
		return;
	if ((r = redact_flush(s->guard.redact)) < 0 || (r = session_guard_drain(s)) < 0)
		session_guard_rec_error(s, r);
}

/* Release the session count and free the guard's state. */
void
session_guard_free(struct session *s)
{
	struct session_guard *g = &s->guard;

	/* Whatever is still held reaches the recording if it is open. */
	if (g->redact != NULL && s->rec != NULL && !s->rec_failed &&
	    redact_flush(g->redact) == 0 && session_guard_drain(s) < 0)
		log_warn("session %s: held events not recorded", s->id);
	redact_free(g->redact);
	g->redact = NULL;
	if (g->counted)
		guard_counts_release(s->conn->server->guard_counts, g->user);
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
