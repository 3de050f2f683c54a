/*
 * Live supervision (live.h): the registry of running sessions, what the
 * session layer calls (session/host.h), and the helpers the admin
 * commands share: arguments, lookups, and the text and JSON they write.
 * docs/live.md says what users see. The rest of the admin layer:
 *   commands.c   admin sessions: sessions, kill, and running any command
 *   watch.c      watchers: queues, screens, the kick that sends them
 *   approvals.c  requests held for an approver: pending, approve, deny
 *   follow.c     pending --follow: requests announced as they come and go
 *   replicas.c   commands passed on to the other replicas (peer-client.h)
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base.h"
#include "rec.h"
#include "admin/live-internal.h"
#include "admin/live.h"
#include "admin/peer-client.h"
#include "admin/screen.h"
#include "base/log.h"
#include "policy/audit.h"
#include "policy/config.h"
#include "policy/guard.h"
#include "session/session-guard.h"
#include "session/session.h"

/* The admin commands, by index (struct live_admin's cmd). */
const struct live_cmd live_cmds[LIVE_NCMDS] = {
	{ "sessions", "auditor" },
	{ "watch", "auditor" },
	{ "kill", "auditor" },
	{ "pending", "approver" },
	{ "approve", "approver" },
	{ "deny", "approver" },
};

/* RFC 3339 UTC time of a wall clock value, to the second. */
void
live_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Set up the registry. */
int
live_init(uv_loop_t *loop, const struct peer_client *peers, struct live **out)
{
	struct live *l;

	*out = NULL;
	if ((l = calloc(1, sizeof *l)) == NULL)
		return -ENOMEM;
	l->loop = loop;
	l->peers = *peers;
	TAILQ_INIT(&l->sessions);
	TAILQ_INIT(&l->admins);
	TAILQ_INIT(&l->held);
	TAILQ_INIT(&l->followers);
	uv_timer_init(loop, &l->kick);
	l->kick.data = l;
	*out = l;
	return 0;
}

/* Free the registry once its timer is closed. */
static void
live_close_cb(uv_handle_t *h)
{
	free(h->data);
}

/* Close the registry (every session is gone by now). */
void
live_close(struct live *l)
{
	if (l != NULL)
		uv_close((uv_handle_t *)&l->kick, live_close_cb);
	peer_pool_clear();
}

/* Write one audit event with the acting session's who fields (as every session does). */
void
live_audit(struct session *s, const char *event, const struct audit_field *extra,
    size_t nextra)
{
	session_audit(s, event, extra, nextra);
}

/* Register a running target session. */
void
live_session_start(struct session *s)
{
	struct live *l = ((struct live *)s->host->broker->admin_arg);
	struct live_session *le;

	if (l == NULL || s->live != NULL || s->admin != NULL)
		return;
	if ((le = calloc(1, sizeof *le)) == NULL) {
		log_warn("session %s: out of memory: it cannot be watched", s->id);
		return;
	}
	if (screen_new(&le->screen, s->pty ? s->cols : 80, s->pty ? s->rows : 24,
	    !s->pty) < 0 || (!s->pty && (le->tail = malloc(LIVE_TAIL_MAX)) == NULL)) {
		screen_free(le->screen);
		free(le);
		log_warn("session %s: out of memory: it cannot be watched", s->id);
		return;
	}
	le->s = s;
	TAILQ_INIT(&le->watchers);
	le->start_ns = rec_now_utc_ns();
	le->last_mono = uv_now(s->host->broker->loop);
	TAILQ_INSERT_TAIL(&l->sessions, le, entry);
	s->live = le;
}

/* Unregister: tell the watchers, free the screen. */
void
live_session_end(struct session *s)
{
	struct live *l = ((struct live *)s->host->broker->admin_arg);
	struct live_session *le = s->live;
	struct live_admin *a;

	if (le == NULL)
		return;
	while ((a = TAILQ_FIRST(&le->watchers)) != NULL)
		live_watch_stop(a, 0, "podgate: session ended");
	if (l != NULL)
		TAILQ_REMOVE(&l->sessions, le, entry);
	screen_free(le->screen);
	free(le->tail);
	free(le);
	s->live = NULL;
}

/* Free a held request's timer once it is closed. */
void
live_timer_close_cb(uv_handle_t *h)
{
	free(h);
}

/* The session is freed: forget it in every role. */
void
live_session_gone(struct session *s)
{
	struct live *l = ((struct live *)s->host->broker->admin_arg);
	struct live_admin *a = s->admin;

	live_session_end(s);
	if (a == NULL)
		return;
	if (a->kind == LIVE_WATCH && a->watched != NULL) {
		TAILQ_REMOVE(&a->watched->watchers, a, peer);
		a->watched->nwatchers--;
	}
	live_held_end(a);
	live_follow_stop(a);
	if (a->timer != NULL)
		uv_close((uv_handle_t *)a->timer, live_timer_close_cb);
	if (l != NULL)
		TAILQ_REMOVE(&l->admins, a, all);
	peer_query_cancel(a->pq);
	peer_relay_cancel(a->relay);
	free(a->local);
	free(a->id);
	free(a->q);
	free(a);
	s->admin = NULL;
}

/* Feed output to the screen and the watchers. */
void
live_output(struct session *s, const void *buf, size_t len)
{
	struct live_session *le = s->live;
	struct live_admin *a, *tmp;

	if (le == NULL)
		return;
	le->last_mono = uv_now(s->host->broker->loop);
	if (le->tail != NULL) {
		live_tail_add(le, buf, len);
		if (le->nwatchers == 0) {
			le->stale = true;
			return;
		}
	}
	screen_feed(le->screen, buf, len);
	TAILQ_FOREACH_SAFE(a, &le->watchers, peer, tmp) {
		if (a->raw) {
			if (!live_enqueue(a, buf, len)) {
				live_watch_drop(a);
				continue;
			}
		} else {
			a->redraw = true;
		}
		live_kick(a);
	}
}

/* A resize of a watched session or of a watcher: redraw. */
void
live_resize(struct session *s)
{
	struct live_session *le = s->live;
	struct live_admin *a, *tmp;

	if (le != NULL) {
		screen_resize(le->screen, s->cols, s->rows);
		TAILQ_FOREACH_SAFE(a, &le->watchers, peer, tmp) {
			live_watch_draw(a);
			live_kick(a);
		}
	}
	if (s->admin != NULL && s->admin->relay != NULL)
		peer_relay_resize(s->admin->relay, s->cols, s->rows);
	if (s->admin != NULL && s->admin->kind == LIVE_WATCH && s->admin->watched != NULL) {
		live_watch_draw(s->admin);
		live_kick(s->admin);
	}
}

/* Which admin command the session's first word names (-1: none). */
int
live_cmd_index(const char *word)
{
	size_t i;

	if (word == NULL)
		return -1;
	for (i = 0; i < sizeof live_cmds / sizeof live_cmds[0]; i++) {
		if (strcmp(live_cmds[i].name, word) == 0)
			return (int)i;
	}
	return -1;
}

/* Whether the exec request is an admin command. */
bool
live_admin_wants(const struct session *s)
{
	return s->admin == NULL && s->exec != NULL &&
	    live_cmd_index(s->target) >= 0;
}

/* Split the arguments of an admin command into words (at most max). */
size_t
live_args(char *line, char **argv, size_t max)
{
	size_t n = 0;
	char *p = line;

	while (p != NULL && *p != '\0' && n < max) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		argv[n++] = p;
		p += strcspn(p, " \t");
		if (*p != '\0')
			*p++ = '\0';
	}
	return n;
}

/* The text after the first n words of s (the reason of kill and deny). */
const char *
live_rest(const char *s, size_t n)
{
	if (s == NULL)
		return NULL;
	while (n-- > 0) {
		s += strspn(s, " \t");
		s += strcspn(s, " \t");
	}
	s += strspn(s, " \t");
	return *s != '\0' ? s : NULL;
}

/* The live session with this id, or a unique prefix of at least 8 characters. */
struct live_session *
live_find(struct live *l, const char *id)
{
	struct live_session *le, *found = NULL;
	size_t n = strlen(id);

	TAILQ_FOREACH(le, &l->sessions, entry) {
		if (strcmp(le->s->id, id) == 0)
			return le;
		if (n >= 8 && strncmp(le->s->id, id, n) == 0) {
			if (found != NULL)
				return NULL;
			found = le;
		}
	}
	return found;
}

/* A JSON string of s (any bytes: invalid UTF-8 as U+FFFD), or null for NULL; NULL when out of memory. */
json_t *
live_json_string(const char *s)
{
	return s != NULL ? jsonout_string(s, strlen(s)) : json_null();
}

/*
 * The fields every listing row has (sessions, pending): id, user, client,
 * target, command, and replica when peers are set. NULL when out of memory.
 */
json_t *
live_json_row(const struct live *l, struct session *s)
{
	json_t *o = json_object();

	if (o == NULL || json_object_set_new(o, "id", live_json_string(s->id)) < 0 ||
	    json_object_set_new(o, "user", live_json_string(s->host->user)) < 0 ||
	    json_object_set_new(o, "client", live_json_string(s->host->client)) < 0 ||
	    json_object_set_new(o, "target", live_json_string(s->target)) < 0 ||
	    json_object_set_new(o, "command", live_json_string(session_guard_command(s))) < 0 ||
	    (peer_enabled(*l->peers.config) &&
	    json_object_set_new(o, "replica", live_json_string(peer_self_name())) < 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/*
 * Append v as compact JSON text (control bytes and DEL as \u00xx), then
 * end; v NULL (out of memory) sets out->oom.
 */
void
live_json(struct buf *out, const json_t *v, const char *end)
{
	if (v == NULL || jsonout_dump(v, JSON_COMPACT | JSON_ENCODE_ANY, JSONOUT_DEL, out) < 0)
		out->oom = true;
	else
		buf_str(out, end);
}

/*
 * Write a command's output to its session and free it; the status, or 1
 * when the output ran out of memory (said on stderr instead).
 */
int
live_send(struct session *s, struct buf *out, int status)
{
	if (out->oom) {
		session_notice(s, "podgate: out of memory");
		status = 1;
	} else if (out->len > 0) {
		session_write(s, false, out->data, out->len);
	}
	buf_free(out);
	return status;
}

/* Replace control characters for a table cell. */
void
live_clean(char *dst, size_t len, const char *src)
{
	size_t i;

	if (src == NULL)
		src = "-";
	for (i = 0; src[i] != '\0' && i + 1 < len; i++)
		dst[i] = ((unsigned char)src[i] < 0x20 || src[i] == 0x7f) ? '?' : src[i];
	dst[i] = '\0';
}

/*
 * Print text whole, escaped for a terminal: control characters as \xNN,
 * a backslash doubled, and the characters that reorder or hide text
 * (bidirectional controls, zero-width ones) as \u{XXXX}.
 */
void
live_escaped(struct buf *out, const char *text)
{
	const unsigned char *p = (const unsigned char *)(text != NULL ? text : "-");
	unsigned cp;

	for (; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			buf_printf(out, "\\x%02x", *p);
		} else if (*p == '\\') {
			buf_printf(out, "\\\\");
		} else if (*p == 0xe2 && p[1] >= 0x80 && p[1] <= 0x81 && p[2] >= 0x80 && p[2] <= 0xbf) {
			cp = 0x2000u | (unsigned)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
			if ((cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) ||
			    (cp >= 0x2060 && cp <= 0x2069)) {
				buf_printf(out, "\\u{%04X}", cp);
				p += 2;
			} else {
				buf_printf(out, "%c", *p);
			}
		} else if ((*p == 0xd8 && p[1] == 0x9c) || (*p == 0xef && p[1] == 0xbb && p[2] == 0xbf)) {
			buf_printf(out, "\\u{%04X}", *p == 0xd8 ? 0x061cu : 0xfeffu);
			p += *p == 0xd8 ? 1 : 2;
		} else {
			buf_printf(out, "%c", *p);
		}
	}
}

const struct session_admin_ops live_admin_ops = {
	.started = live_session_start,
	.ended = live_session_end,
	.gone = live_session_gone,
	.output = live_output,
	.resized = live_resize,
	.wants = live_admin_wants,
	.start = live_admin_start,
	.input = live_admin_input,
	.after_io = live_admin_after_io,
	.hold = live_approval_hold,
};

