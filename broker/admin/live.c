/*
 * Live supervision: the registry of running sessions, admin commands,
 * watchers and held requests. See live.h for the contract and
 * docs/live.md for what users see.
 *
 * A watcher is an auditor's own session channel. The watched session's
 * output is copied into the watcher's queue (at most LIVE_QUEUE_MAX
 * bytes) and sent from there as the watcher's window allows; a full
 * queue drops the watcher, so the watched session never waits. Sending
 * happens on the watcher's connection from a zero-delay timer (the kick),
 * never inside the watched session's read.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "policy/audit.h"
#include "policy/config.h"
#include "policy/guard.h"
#include "admin/live.h"
#include "base/log.h"
#include "base/queue.h"
#include "admin/peer-client.h"
#include "admin/screen.h"
#include "session/session-guard.h"
#include "session/session.h"

enum live_kind {
	LIVE_CMD,		/* sessions, kill, pending, approve, deny: done at once */
	LIVE_WATCH,		/* a watcher */
	LIVE_HELD,		/* an exec request waiting for an approver */
};

struct live_session;

/* An admin session (command or watcher) or a held request. */
struct live_admin {
	TAILQ_ENTRY(live_admin) all;	/* live->admins */
	TAILQ_ENTRY(live_admin) peer;	/* watched->watchers, or live->held */
	struct live *live;
	struct session *s;
	enum live_kind kind;

	/* watch */
	struct live_session *watched;	/* NULL once it ended or dropped us */
	uint8_t *q;
	size_t qoff, qlen;
	bool raw;			/* forward bytes as they come; else redraw */
	bool redraw;			/* a redraw is due (render mode) */
	bool done;			/* send what is queued, then end */
	int status;
	bool kick;

	/* held */
	uv_timer_t *timer;		/* approve_timeout */
	uint64_t requested_ns;

	/* other replicas (peer.h) */
	struct peer_query *pq;		/* a command sent to them, until they answer */
	struct peer_relay *relay;	/* a watch relayed from one of them */
	const struct cfg_user *user;	/* the admin (in s->config) */
	int cmd;			/* live_cmds index */
	bool json;
	char *local;			/* this replica's part of the answer (JSON) */
	bool located;			/* kill, approve, deny: sent to the replica holding it */
	char *id;			/* the ID asked for */
};

struct live_session {
	TAILQ_ENTRY(live_session) entry;
	struct session *s;
	struct screen *screen;
	/*
	 * Without a PTY the output is a plain stream: while nobody watches,
	 * only its last LIVE_TAIL_MAX bytes are kept (a ring), and the screen
	 * is rebuilt from them when a watcher arrives. Emulating a flood that
	 * nobody sees would hold the session to the emulator's pace.
	 */
	uint8_t *tail;
	size_t tail_len, tail_end;	/* bytes held; where the next byte goes */
	bool stale;			/* the screen lags the tail */
	TAILQ_HEAD(, live_admin) watchers;
	unsigned nwatchers;
	uint64_t start_ns;		/* wall clock */
	uint64_t last_mono;		/* last output, loop time in ms */
};

/* Remembered held requests of other replicas (LIVE_REMOTE_MAX, oldest dropped). */
#define LIVE_REMOTE_MAX 256
struct live_remote {
	char id[37];
	char replica[128];	/* the replica's name as peer.h gives it */
	bool ended;		/* reported ended: its replica went away */
};

struct live {
	uv_loop_t *loop;
	struct peer_client peers;	/* the other replicas (peer-client.h) */
	struct live_remote remote[LIVE_REMOTE_MAX];
	size_t nremote;
	TAILQ_HEAD(, live_session) sessions;
	TAILQ_HEAD(, live_admin) admins;
	TAILQ_HEAD(, live_admin) held;
	uv_timer_t kick;
};

/* The target kind admin sessions are recorded under. */
static const struct target_ops live_target_ops = { .kind = "podgate" };

/* The admin commands: name, role, and whether it runs on a live session id. */
static const struct {
	const char *name;
	const char *role;
} live_cmds[] = {
	{ "sessions", "auditor" },
	{ "watch", "auditor" },
	{ "kill", "auditor" },
	{ "pending", "approver" },
	{ "approve", "approver" },
	{ "deny", "approver" },
};

static void live_kick_cb(uv_timer_t *t);
struct live_text;
static int live_peer_start(struct session *s, struct live *l, struct live_admin *a,
    char **argv, size_t argc, struct live_text *out);

/* Wall clock in nanoseconds. */
static uint64_t
live_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* RFC 3339 UTC time of a wall clock value, to the second. */
static void
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
}

/* Write one audit event with the acting session's who fields. */
static void
live_audit(struct session *s, const char *event, const struct audit_field *extra,
    size_t nextra)
{
	struct audit_field f[16];
	size_t n = 0, i;

	f[n++] = AUDIT_STR("user", s->host->user);
	f[n++] = AUDIT_STR("client", s->host->client);
	f[n++] = AUDIT_STR("key_fp", s->host->key_fp);
	if (s->id[0] != '\0')
		f[n++] = AUDIT_STR("session", s->id);
	for (i = 0; i < nextra && n < sizeof f / sizeof f[0]; i++)
		f[n++] = extra[i];
	audit_event(s->host->broker->audit, event, f, n);
}

/* Have the admin session's connection do its work at the next loop turn. */
static void
live_kick(struct live_admin *a)
{
	a->kick = true;
	if (!uv_is_active((uv_handle_t *)&a->live->kick))
		uv_timer_start(&a->live->kick, live_kick_cb, 0, 0);
}

/* The kick: run every kicked admin session's connection. */
static void
live_kick_cb(uv_timer_t *t)
{
	struct live *l = t->data;
	struct live_admin *a;
	bool again = true;

	/* A wake may end sessions and kick others: start over until quiet. */
	while (again) {
		again = false;
		TAILQ_FOREACH(a, &l->admins, all) {
			if (!a->kick)
				continue;
			a->kick = false;
			session_wake(a->s);
			again = true;
			break;
		}
	}
}

/* Append to a watcher's queue; false when it does not fit. */
static bool
live_enqueue(struct live_admin *a, const void *buf, size_t len)
{
	if (a->q == NULL || a->qlen + len > LIVE_QUEUE_MAX)
		return false;
	if (a->qoff + a->qlen + len > LIVE_QUEUE_MAX) {
		memmove(a->q, a->q + a->qoff, a->qlen);
		a->qoff = 0;
	}
	memcpy(a->q + a->qoff + a->qlen, buf, len);
	a->qlen += len;
	return true;
}

/* Stop watching: leave the watched session's list, queue a last message. */
static void
live_watch_stop(struct live_admin *a, int status, const char *msg)
{
	char line[256];
	int n;

	if (a->watched != NULL) {
		TAILQ_REMOVE(&a->watched->watchers, a, peer);
		a->watched->nwatchers--;
		{
			struct audit_field f[] = {
				AUDIT_STR("watched", a->watched->s->id),
				AUDIT_STR("reason", msg != NULL ? msg : "left"),
			};
			live_audit(a->s, "watch_end", f, 2);
		}
		a->watched = NULL;
	}
	if (msg != NULL) {
		n = snprintf(line, sizeof line, "\033[0m\r\n%s\r\n", msg);
		if (n > 0 && !live_enqueue(a, line, (size_t)n)) {
			a->qoff = a->qlen = 0;	/* dropped: the message goes first */
			live_enqueue(a, line, (size_t)n);
		}
	}
	a->done = true;
	a->status = status;
	live_kick(a);
}

/* Drop a watcher that could not keep up. */
static void
live_watch_drop(struct live_admin *a)
{
	a->qoff = a->qlen = 0;
	live_watch_stop(a, 1, "podgate: you were too slow; watch again to rejoin");
}

/*
 * Queue what a watcher needs to see the screen now: a drawing clipped to
 * its terminal, with a status line when the session does not fit.
 */
static void
live_watch_draw(struct live_admin *a)
{
	struct live_session *le = a->watched;
	int sc, sr, wc = a->s->cols, wr = a->s->rows, rows;
	char *buf = NULL, status[512];
	size_t len;
	bool fits;
	int n;

	screen_size(le->screen, &sc, &sr);
	fits = sc <= wc && sr <= wr;
	/* Raw bytes draw right only on a terminal of the same width. */
	a->raw = le->s->pty && sc == wc && sr <= wr;
	rows = fits ? sr : wr - 1;
	if (rows < 1)
		rows = 1;
	if (screen_render(le->screen, wc, rows, &buf, &len) < 0) {
		live_watch_drop(a);
		return;
	}
	if (!live_enqueue(a, buf, len)) {
		free(buf);
		live_watch_drop(a);
		return;
	}
	free(buf);
	if (a->raw && sr < wr) {
		/* Keep the session's scrolling within its rows: DECSTBM, then redraw the cursor. */
		n = snprintf(status, sizeof status, "\0337\033[1;%dr\0338", sr);
		live_enqueue(a, status, (size_t)n);
	}
	if (!fits && wr > 1) {
		n = snprintf(status, sizeof status,
		    "\0337\033[%d;1H\033[0;7m podgate: session is %dx%d, your terminal %dx%d: "
		    "showing the top-left \033[0m\033[K\0338", wr, sc, sr, wc, wr);
		if (n > 0 && (size_t)n < sizeof status)
			live_enqueue(a, status, (size_t)n);
	}
	a->redraw = false;
}

/* Keep the last bytes of a session without a PTY. */
static void
live_tail_add(struct live_session *le, const uint8_t *p, size_t len)
{
	size_t n;

	if (len >= LIVE_TAIL_MAX) {
		p += len - LIVE_TAIL_MAX;
		len = LIVE_TAIL_MAX;
	}
	le->tail_len = le->tail_len + len > LIVE_TAIL_MAX ? LIVE_TAIL_MAX : le->tail_len + len;
	while (len > 0) {
		n = LIVE_TAIL_MAX - le->tail_end;
		if (n > len)
			n = len;
		memcpy(le->tail + le->tail_end, p, n);
		le->tail_end = (le->tail_end + n) % LIVE_TAIL_MAX;
		p += n;
		len -= n;
	}
}

/* Rebuild a stale screen from the tail, starting at its first whole line. */
static void
live_tail_replay(struct live_session *le)
{
	size_t start = (le->tail_end + LIVE_TAIL_MAX - le->tail_len) % LIVE_TAIL_MAX;
	size_t left = le->tail_len, n;
	struct screen *fresh = NULL;
	int cols, rows;
	bool skip = le->tail_len == LIVE_TAIL_MAX;	/* cut: drop the partial first line */

	if (!le->stale)
		return;
	screen_size(le->screen, &cols, &rows);
	if (screen_new(&fresh, cols, rows, true) < 0)
		return;		/* keep the old screen: better late than none */
	screen_free(le->screen);
	le->screen = fresh;
	while (left > 0) {
		n = LIVE_TAIL_MAX - start;
		if (n > left)
			n = left;
		if (skip) {
			const uint8_t *nl = memchr(le->tail + start, '\n', n);

			if (nl == NULL) {
				start = (start + n) % LIVE_TAIL_MAX;
				left -= n;
				continue;
			}
			n = (size_t)(nl + 1 - (le->tail + start));
			skip = false;
			start = (start + n) % LIVE_TAIL_MAX;
			left -= n;
			continue;
		}
		screen_feed(le->screen, le->tail + start, n);
		start = (start + n) % LIVE_TAIL_MAX;
		left -= n;
	}
	le->stale = false;
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
	le->start_ns = live_now_ns();
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
static void
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
	if (a->kind == LIVE_HELD && l != NULL)
		TAILQ_REMOVE(&l->held, a, peer);
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
static int
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
static size_t
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
static const char *
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
static struct live_session *
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

/* A growing text for command output. */
struct live_text {
	char *p;
	size_t len;
	bool oom;
};

/* Append formatted text. */
static void __attribute__((format(printf, 2, 3)))
live_printf(struct live_text *t, const char *fmt, ...)
{
	va_list ap;
	char *np;
	int n;

	if (t->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (np = realloc(t->p, t->len + (size_t)n + 1)) == NULL) {
		t->oom = true;
		return;
	}
	t->p = np;
	va_start(ap, fmt);
	vsnprintf(t->p + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

/* Append a JSON string (quoted, escaped; control bytes as \u00XX). */
static void
live_json_str(struct live_text *t, const char *s)
{
	const unsigned char *p;

	if (s == NULL) {
		live_printf(t, "null");
		return;
	}
	live_printf(t, "\"");
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			live_printf(t, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			live_printf(t, "\\u%04x", *p);
		else
			live_printf(t, "%c", *p);
	}
	live_printf(t, "\"");
}

/* Replace control characters for a table cell. */
static void
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
static void
live_escaped(struct live_text *out, const char *text)
{
	const unsigned char *p = (const unsigned char *)(text != NULL ? text : "-");
	unsigned cp;

	for (; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			live_printf(out, "\\x%02x", *p);
		} else if (*p == '\\') {
			live_printf(out, "\\\\");
		} else if (*p == 0xe2 && p[1] >= 0x80 && p[1] <= 0x81 && p[2] >= 0x80 && p[2] <= 0xbf) {
			cp = 0x2000u | (unsigned)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
			if ((cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) ||
			    (cp >= 0x2060 && cp <= 0x2069)) {
				live_printf(out, "\\u{%04X}", cp);
				p += 2;
			} else {
				live_printf(out, "%c", *p);
			}
		} else if ((*p == 0xd8 && p[1] == 0x9c) || (*p == 0xef && p[1] == 0xbb && p[2] == 0xbf)) {
			live_printf(out, "\\u{%04X}", *p == 0xd8 ? 0x061cu : 0xfeffu);
			p += *p == 0xd8 ? 1 : 2;
		} else {
			live_printf(out, "%c", *p);
		}
	}
}

/* sessions [--json]: the live sessions. */
static int
live_cmd_sessions(struct session *s, struct live *l, char **argv, size_t argc,
    struct live_text *out)
{
	struct live_session *le;
	uint64_t now = uv_now(l->loop);
	bool json = argc > 0 && strcmp(argv[0], "--json") == 0;
	char start[40], user[64], target[96];
	bool first = true;

	if (argc > 1 || (argc == 1 && !json)) {
		session_notice(s, "usage: sessions [--json]");
		return 2;
	}
	if (json)
		live_printf(out, "[");
	else
		live_printf(out, "%-36s  %-12s  %-20s  %-20s  %6s  %10s  %10s  %8s  %s\n", "ID",
		    "USER", "TARGET", "START", "IDLE", "IN", "OUT", "WATCHERS", "COMMAND");
	TAILQ_FOREACH(le, &l->sessions, entry) {
		struct session *t = le->s;
		uint64_t idle = (now - le->last_mono) / 1000;

		live_time(le->start_ns, start, sizeof start);
		if (json) {
			live_printf(out, "%s{\"id\":", first ? "" : ",");
			live_json_str(out, t->id);
			live_printf(out, ",\"user\":");
			live_json_str(out, t->host->user);
			live_printf(out, ",\"client\":");
			live_json_str(out, t->host->client);
			live_printf(out, ",\"target\":");
			live_json_str(out, t->target);
			live_printf(out, ",\"command\":");
			live_json_str(out, session_guard_command(t));
			if (peer_enabled(*l->peers.config))
				live_printf(out, ",\"replica\":\"%s\"", peer_self_name());
			live_printf(out, ",\"pty\":%s,\"start\":\"%s\",\"idle_seconds\":%llu,"
			    "\"bytes_in\":%llu,\"bytes_out\":%llu,\"watchers\":%u}",
			    t->pty ? "true" : "false", start, (unsigned long long)idle,
			    (unsigned long long)t->bytes_in, (unsigned long long)t->bytes_out,
			    le->nwatchers);
		} else {
			live_clean(user, sizeof user, t->host->user);
			live_clean(target, sizeof target, t->target);
			live_printf(out, "%-36s  %-12s  %-20s  %-20s  %5llus  %10llu  %10llu  %8u  ",
			    t->id, user, target, start, (unsigned long long)idle,
			    (unsigned long long)t->bytes_in, (unsigned long long)t->bytes_out,
			    le->nwatchers);
			live_escaped(out, session_guard_command(t));
			live_printf(out, "\n");
		}
		first = false;
	}
	if (json)
		live_printf(out, "]\n");
	return 0;
}

/* kill ID [REASON]: end a live session. */
static int
live_cmd_kill(struct session *s, struct live *l, char **argv, size_t argc,
    struct live_text *out)
{
	struct live_session *le;
	const char *reason;
	char msg[512], id[37];

	if (argc < 1) {
		session_notice(s, "usage: kill ID [REASON]");
		return 2;
	}
	if ((le = live_find(l, argv[0])) == NULL) {
		snprintf(msg, sizeof msg, "podgate: no live session '%.64s'", argv[0]);
		session_notice(s, msg);
		return 1;
	}
	reason = live_rest(session_guard_command(s), 1);
	if (reason == NULL)
		reason = "no reason given";
	snprintf(id, sizeof id, "%s", le->s->id);
	snprintf(msg, sizeof msg, "podgate: session ended by %s: %.400s", s->host->user, reason);
	{
		struct audit_field f[] = {
			AUDIT_STR("killed", le->s->id),
			AUDIT_STR("killed_user", le->s->host->user),
			AUDIT_STR("target", le->s->target),
			AUDIT_STR("reason", reason),
		};
		live_audit(s, "session_killed", f, 4);
	}
	log_info("session %s: ended by %s: %s", id, s->host->user, reason);
	session_hangup(le->s, msg);
	live_printf(out, "podgate: session %s ended\n", id);
	return 0;
}

/* watch ID: attach a watcher. Returns -1 when it now runs as a watcher. */
static int
live_cmd_watch(struct session *s, struct live *l, char **argv, size_t argc,
    struct live_admin *a)
{
	struct live_session *le;
	char msg[512];

	if (argc != 1) {
		session_notice(s, "usage: watch ID");
		return 2;
	}
	if ((le = live_find(l, argv[0])) == NULL) {
		snprintf(msg, sizeof msg, "podgate: no live session '%.64s'", argv[0]);
		session_notice(s, msg);
		return 1;
	}
	if ((a->q = malloc(LIVE_QUEUE_MAX)) == NULL) {
		session_notice(s, "podgate: internal error");
		return 1;
	}
	a->kind = LIVE_WATCH;
	a->watched = le;
	live_tail_replay(le);
	TAILQ_INSERT_TAIL(&le->watchers, a, peer);
	le->nwatchers++;
	{
		struct audit_field f[] = {
			AUDIT_STR("watched", le->s->id),
			AUDIT_STR("watched_user", le->s->host->user),
			AUDIT_STR("target", le->s->target),
		};
		live_audit(s, "watch_start", f, 3);
	}
	if (le->s->rule != NULL && le->s->rule->announce_watchers) {
		snprintf(msg, sizeof msg, "podgate: %s is watching this session", s->host->user);
		session_notice(le->s, msg);
	}
	live_watch_draw(a);
	live_kick(a);
	return -1;
}

/* pending [--json]: held requests, each command whole and escaped. */
static int
live_cmd_pending(struct session *s, struct live *l, char **argv, size_t argc,
    struct live_text *out)
{
	struct live_admin *a;
	bool json = argc > 0 && strcmp(argv[0], "--json") == 0;
	char when[40], user[64], target[96];
	bool first = true;

	if (argc > 1 || (argc == 1 && !json)) {
		session_notice(s, "usage: pending [--json]");
		return 2;
	}
	if (json)
		live_printf(out, "[");
	else
		live_printf(out, "%-36s  %-12s  %-20s  %-20s  %s\n", "ID", "USER", "TARGET",
		    "REQUESTED", "COMMAND");
	TAILQ_FOREACH(a, &l->held, peer) {
		live_time(a->requested_ns, when, sizeof when);
		if (json) {
			live_printf(out, "%s{\"id\":", first ? "" : ",");
			live_json_str(out, a->s->id);
			live_printf(out, ",\"user\":");
			live_json_str(out, a->s->host->user);
			live_printf(out, ",\"client\":");
			live_json_str(out, a->s->host->client);
			live_printf(out, ",\"target\":");
			live_json_str(out, a->s->target);
			live_printf(out, ",\"command\":");
			live_json_str(out, session_guard_command(a->s));
			if (peer_enabled(*l->peers.config))
				live_printf(out, ",\"replica\":\"%s\"", peer_self_name());
			live_printf(out, ",\"requested\":\"%s\"}", when);
			first = false;
			continue;
		}
		live_clean(user, sizeof user, a->s->host->user);
		live_clean(target, sizeof target, a->s->target);
		live_printf(out, "%-36s  %-12s  %-20s  %-20s  ", a->s->id, user, target, when);
		live_escaped(out, session_guard_command(a->s));
		live_printf(out, "\n");
	}
	if (json)
		live_printf(out, "]\n");
	return 0;
}

/* The held request with this id (or a unique prefix of 8 or more). */
static struct live_admin *
live_find_held(struct live *l, const char *id)
{
	struct live_admin *a, *found = NULL;
	size_t n = strlen(id);

	TAILQ_FOREACH(a, &l->held, peer) {
		if (strcmp(a->s->id, id) == 0)
			return a;
		if (n >= 8 && strncmp(a->s->id, id, n) == 0) {
			if (found != NULL)
				return NULL;
			found = a;
		}
	}
	return found;
}

static void live_decide(struct live_admin *h, struct session *by, bool approve,
    const char *reason);

/* approve ID / deny ID [REASON]. */
static int
live_cmd_decide(struct session *s, struct live *l, char **argv, size_t argc,
    struct live_text *out, bool approve)
{
	struct live_admin *h;
	const char *reason = NULL;
	char msg[256], id[37];

	if (argc < 1 || (approve && argc != 1)) {
		session_notice(s, approve ? "usage: approve ID" : "usage: deny ID [REASON]");
		return 2;
	}
	if ((h = live_find_held(l, argv[0])) == NULL) {
		snprintf(msg, sizeof msg, "podgate: no pending request '%.64s'", argv[0]);
		session_notice(s, msg);
		return 1;
	}
	/* Four eyes: a requester who is also an approver does not approve their own. */
	if (approve && strcmp(h->s->host->user, s->host->user) == 0 &&
	    (h->s->rule == NULL || !h->s->rule->self_approve)) {
		snprintf(msg, sizeof msg, "podgate: request %.36s is your own; another approver "
		    "must approve it (commands.self_approve is off)", h->s->id);
		session_notice(s, msg);
		return 1;
	}
	if (!approve)
		reason = live_rest(session_guard_command(s), 1);
	snprintf(id, sizeof id, "%s", h->s->id);
	live_decide(h, s, approve, reason);
	live_printf(out, "podgate: request %s %s\n", id, approve ? "approved" : "denied");
	return 0;
}

/* Make the admin session's recording and state. */
static struct live_admin *
live_admin_new(struct session *s, struct live *l, const char *name)
{
	struct live_admin *a;
	char *target = NULL;
	int r;

	if ((a = calloc(1, sizeof *a)) == NULL || asprintf(&target, "podgate:%s", name) < 0) {
		free(a);
		session_refuse(s, "out of memory", "podgate: internal error");
		return NULL;
	}
	free(s->target);
	s->target = target;
	s->ops = &live_target_ops;
	if ((r = session_record_open(s)) < 0) {
		free(a);
		session_refuse(s, "session recording failed",
		    "podgate: session recording failed; session refused");
		return NULL;
	}
	a->live = l;
	a->s = s;
	a->kind = LIVE_CMD;
	TAILQ_INSERT_TAIL(&l->admins, a, all);
	s->admin = a;
	s->start_mono = uv_now(l->loop);
	s->state = SESSION_ADMIN;
	return a;
}

/* Run an admin command. */
void
live_admin_start(struct session *s, const struct cfg_user *u)
{
	struct live *l = ((struct live *)s->host->broker->admin_arg);
	struct live_text out = { 0 };
	struct live_admin *a;
	char *args = NULL, *argv[8];
	char msg[256];
	size_t argc;
	int i, status;

	i = live_cmd_index(s->target);
	if (!config_user_has_role(s->config, u, live_cmds[i].role) ||
	    (s->host->peer && !peer_roles_include(s, live_cmds[i].role))) {
		snprintf(msg, sizeof msg, "podgate: '%s' needs the %s role", live_cmds[i].name,
		    live_cmds[i].role);
		session_refuse(s, msg + 9, msg);
		return;
	}
	if (l == NULL || (a = live_admin_new(s, l, live_cmds[i].name)) == NULL) {
		if (l == NULL)
			session_refuse(s, "no registry", "podgate: internal error");
		return;
	}
	{
		struct audit_field f[] = {
			AUDIT_STR("command", live_cmds[i].name),
			AUDIT_STR("args", session_guard_command(s)),
			AUDIT_STR("recording", s->rec.path),
		};
		live_audit(s, "admin_command", f, 3);
	}
	if (s->command != NULL && (args = strdup(s->command)) == NULL) {
		session_exit(s, 1);
		return;
	}
	argc = live_args(args, argv, sizeof argv / sizeof argv[0]);
	a->user = u;
	a->cmd = i;
	if (peer_enabled(*l->peers.config) && !s->host->peer &&
	    (status = live_peer_start(s, l, a, argv, argc, &out)) != 0) {
		/* Sent to the other replicas too (or refused): their answer ends it. */
	} else switch (i) {
	case 0:
		status = live_cmd_sessions(s, l, argv, argc, &out);
		break;
	case 1:
		status = live_cmd_watch(s, l, argv, argc, a);
		break;
	case 2:
		status = live_cmd_kill(s, l, argv, argc, &out);
		break;
	case 3:
		status = live_cmd_pending(s, l, argv, argc, &out);
		break;
	default:
		status = live_cmd_decide(s, l, argv, argc, &out, i == 4);
		break;
	}
	free(args);
	if (out.oom) {
		session_notice(s, "podgate: out of memory");
		status = 1;
	} else if (out.len > 0) {
		session_write(s, false, out.p, out.len);
	}
	free(out.p);
	if (status >= 0)
		session_exit(s, status);
}

/* Keystrokes: 'q' leaves a watch; the rest is dropped. */
uint32_t
live_admin_input(struct session *s, const void *data, uint32_t len)
{
	struct live_admin *a = s->admin;

	if (a->kind == LIVE_HELD) {
		s->chan_pending = true;	/* kept by libssh for the target, once approved */
		return 0;
	}
	s->bytes_in += len;
	if (a->kind == LIVE_WATCH && !a->done && memchr(data, 'q', len) != NULL) {
		if (a->relay != NULL)
			peer_relay_quit(a->relay);
		else if (a->watched != NULL)
			live_watch_stop(a, 0, "podgate: stopped watching");
		else
			a->done = true;
		live_kick(a);
	}
	return len;
}

/* Work for an admin session or a held request. */
void
live_admin_after_io(struct session *s)
{
	struct live_admin *a = s->admin;
	size_t room;

	if (s->peer_closed || s->broken || s->channel == NULL || s->stop == SESSION_STOP_ABORT ||
	    !s->host->ops->alive(s->host)) {
		if (a->kind == LIVE_WATCH && a->watched != NULL)
			live_watch_stop(a, 0, NULL);
		peer_query_cancel(a->pq);
		a->pq = NULL;
		peer_relay_cancel(a->relay);
		a->relay = NULL;
		if (a->kind == LIVE_HELD && s->stop == SESSION_STOP_ABORT)
			session_notice(s, "podgate: the broker is shutting down");
		session_exit(s, a->kind == LIVE_HELD ? 126 : 0);
		return;
	}
	if (a->kind != LIVE_WATCH)
		return;
	if (a->redraw && a->qlen == 0 && a->watched != NULL)
		live_watch_draw(a);
	while (a->qlen > 0 && (room = session_room(s)) > 0) {
		size_t n = a->qlen < room ? a->qlen : room;

		if ((n = session_write(s, false, a->q + a->qoff, n)) == 0)
			break;
		a->qoff += n;
		a->qlen -= n;
	}
	if (a->qlen == 0)
		a->qoff = 0;
	if (a->done && a->qlen == 0)
		session_exit(s, a->status);
}

/* ---- approvals ---- */

/* Whether the command matches one of the rule's approve patterns. */
static bool
live_needs_approval(const struct session *s)
{
	size_t i;

	if (s->rule == NULL || s->rule->napprove == 0 || s->command == NULL)
		return false;
	for (i = 0; i < s->rule->napprove; i++) {
		if (guard_command_match(&s->rule->approve[i], s->command))
			return true;
	}
	return false;
}

/* approve_timeout passed: refuse the request. */
static void
live_held_timeout_cb(uv_timer_t *t)
{
	struct live_admin *h = t->data;
	struct session *s = h->s;

	{
		struct audit_field f[] = {
			AUDIT_STR("target", s->target),
			AUDIT_STR("command", session_guard_command(s)),
		};
		live_audit(s, "approval_timeout", f, 2);
	}
	TAILQ_REMOVE(&h->live->held, h, peer);
	h->kind = LIVE_CMD;
	session_notice(s, "podgate: no approval in time; request refused");
	session_exit(s, 126);
	session_wake(s);
}

/* Hold an exec request for an approver. */
bool
live_approval_hold(struct session *s)
{
	struct live *l = ((struct live *)s->host->broker->admin_arg);
	struct live_admin *h;
	uint64_t timeout;
	char msg[128];

	if (s->admin != NULL || l == NULL || !live_needs_approval(s))
		return false;
	if ((h = calloc(1, sizeof *h)) == NULL || (h->timer = calloc(1, sizeof *h->timer)) == NULL) {
		free(h);
		session_refuse(s, "out of memory", "podgate: internal error");
		return true;
	}
	if (s->id[0] == '\0')
		rec_uuid7(s->id);
	h->live = l;
	h->s = s;
	h->kind = LIVE_HELD;
	h->requested_ns = live_now_ns();
	uv_timer_init(l->loop, h->timer);
	h->timer->data = h;
	timeout = s->rule->approve_timeout ? s->rule->approve_timeout : LIVE_APPROVE_TIMEOUT;
	uv_timer_start(h->timer, live_held_timeout_cb, timeout * 1000, 0);
	TAILQ_INSERT_TAIL(&l->admins, h, all);
	TAILQ_INSERT_TAIL(&l->held, h, peer);
	s->admin = h;
	s->start_mono = uv_now(l->loop);
	s->state = SESSION_HELD;
	{
		struct audit_field f[] = {
			AUDIT_STR("target", s->target),
			AUDIT_STR("command", session_guard_command(s)),
			AUDIT_NUM("timeout_s", timeout),
		};
		live_audit(s, "approval_requested", f, 3);
	}
	snprintf(msg, sizeof msg, "waiting for approval: %s", s->id);
	session_notice(s, msg);
	return true;
}

/* An approver decided on a held request. */
static void
live_decide(struct live_admin *h, struct session *by, bool approve, const char *reason)
{
	struct session *s = h->s;
	char when[40], msg[512];
	char **what;

	live_time(live_now_ns(), when, sizeof when);
	{
		struct audit_field f[] = {
			AUDIT_STR("session", s->id),
			AUDIT_STR("requester", s->host->user),
			AUDIT_STR("target", s->target),
			AUDIT_STR("command", session_guard_command(s)),
			{ .key = "decided_at", .str = when },
			AUDIT_STR("reason", reason),
		};
		/* The approver's own session field names the admin session: "decided" names the request. */
		f[0].key = "request";
		live_audit(by, approve ? "approved" : "denied", f, reason != NULL ? 6 : 5);
	}
	TAILQ_REMOVE(&h->live->held, h, peer);
	uv_timer_stop(h->timer);
	if (!approve) {
		h->kind = LIVE_CMD;
		snprintf(msg, sizeof msg, "podgate: request denied by %s%s%.400s", by->host->user,
		    reason != NULL ? ": " : "", reason != NULL ? reason : "");
		session_notice(s, msg);
		session_exit(s, 126);
		session_wake(s);
		return;
	}
	/* Start it: back through session_start, with the decision in the header. */
	what = calloc(7, sizeof *what);
	if (what != NULL) {
		what[0] = strdup("approver");
		what[1] = strdup(by->host->user);
		what[2] = strdup("decision");
		what[3] = strdup("approved");
		what[4] = strdup("decided_at");
		what[5] = strdup(when);
		if (what[0] == NULL || what[1] == NULL || what[2] == NULL || what[3] == NULL ||
		    what[4] == NULL || what[5] == NULL) {
			target_free_pairs(what);
			what = NULL;
		}
	}
	target_free_pairs(s->what_extra);
	s->what_extra = what;
	s->admin = NULL;
	TAILQ_REMOVE(&h->live->admins, h, all);
	uv_close((uv_handle_t *)h->timer, live_timer_close_cb);
	free(h);
	session_resume(s);
	session_wake(s);
}

/* ---- other replicas (peer.h) ---- */

/* Tell the admin which replicas did not answer. */
static void
live_peer_unreachable(struct session *s, const struct peer_reply *r, size_t n)
{
	char msg[512];
	size_t i;

	for (i = 0; i < n; i++) {
		if (r[i].reachable)
			continue;
		snprintf(msg, sizeof msg, "podgate: replica %.128s unreachable (%.200s)", r[i].name,
		    r[i].why != NULL ? r[i].why : "no answer");
		session_notice(s, msg);
	}
}

static const struct live_remote *live_remote_ended(const struct live *l, const char *id);
static void live_remote_update(struct live *l, struct session *s, const struct peer_reply *r,
    size_t n, bool listing, bool notify);

/* A JSON string field, or "-". */
static const char *
live_peer_str(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL ? v : "-";
}

/* The rows of every replica, this one's first; NULL when out of memory. */
static json_t *
live_peer_rows(const char *local, const struct peer_reply *r, size_t n)
{
	json_t *all = json_array(), *part;
	size_t i;

	if (all == NULL)
		return NULL;
	if ((part = json_loads(local != NULL ? local : "[]", 0, NULL)) != NULL &&
	    json_is_array(part))
		json_array_extend(all, part);
	json_decref(part);
	for (i = 0; i < n; i++) {
		if (!r[i].reachable || r[i].status != 0)
			continue;
		if ((part = json_loads(r[i].out, 0, NULL)) != NULL && json_is_array(part))
			json_array_extend(all, part);
		else
			log_warn("replica %s: unreadable answer", r[i].name);
		json_decref(part);
	}
	return all;
}

/* sessions or pending on every replica: one table (or JSON array) with a replica column. */
static int
live_peer_list(struct live_admin *a, json_t *rows, struct live_text *out)
{
	char cells[6][256];
	const char *keys_s[] = { "replica", "id", "user", "target", "start", "command" };
	const char *keys_p[] = { "replica", "id", "user", "target", "requested", "command" };
	const char **keys = a->cmd == 0 ? keys_s : keys_p;
	json_t *o;
	size_t i, k;
	char *text;

	if (a->json) {
		if ((text = json_dumps(rows, JSON_COMPACT)) == NULL)
			return 1;
		live_printf(out, "%s\n", text);
		free(text);
		return 0;
	}
	if (a->cmd == 0)
		live_printf(out, "%-16s  %-36s  %-12s  %-20s  %-20s  %6s  %10s  %10s  %8s  %s\n",
		    "REPLICA", "ID", "USER", "TARGET", "START", "IDLE", "IN", "OUT", "WATCHERS",
		    "COMMAND");
	else
		live_printf(out, "%-16s  %-36s  %-12s  %-20s  %-20s  %s\n", "REPLICA", "ID", "USER",
		    "TARGET", "REQUESTED", "COMMAND");
	json_array_foreach(rows, i, o) {
		for (k = 0; k < 6; k++)
			live_clean(cells[k], k == 5 ? 256 : 96, live_peer_str(o, keys[k]));
		if (a->cmd == 0)
			live_printf(out, "%-16s  %-36s  %-12s  %-20s  %-20s  %5llus  %10llu  %10llu  "
			    "%8llu  %s\n", cells[0], cells[1], cells[2], cells[3], cells[4],
			    (unsigned long long)json_integer_value(json_object_get(o, "idle_seconds")),
			    (unsigned long long)json_integer_value(json_object_get(o, "bytes_in")),
			    (unsigned long long)json_integer_value(json_object_get(o, "bytes_out")),
			    (unsigned long long)json_integer_value(json_object_get(o, "watchers")),
			    cells[5]);
		else
			live_printf(out, "%-16s  %-36s  %-12s  %-20s  %-20s  %s\n", cells[0], cells[1],
			    cells[2], cells[3], cells[4], cells[5]);
	}
	return 0;
}

/* Whether a row's id is the one asked for (or a prefix of 8 or more of it). */
static bool
live_peer_id_match(json_t *o, const char *id)
{
	const char *v = json_string_value(json_object_get(o, "id"));
	size_t n = strlen(id);

	return v != NULL && (strcmp(v, id) == 0 || (n >= 8 && strncmp(v, id, n) == 0));
}

/* Bytes from a relayed watch, or its end. */
static void
live_peer_relay_cb(void *arg, const void *buf, size_t len, int status)
{
	struct live_admin *a = arg;

	if (len == 0) {
		a->relay = NULL;	/* it frees itself */
		a->done = true;
		a->status = status;
	} else if (!live_enqueue(a, buf, len)) {
		peer_relay_cancel(a->relay);
		a->relay = NULL;
		live_watch_drop(a);
	}
	live_kick(a);
}

/*
 * Find the session (or request) a->id names among this replica's rows
 * (a->local) and the others' answers. Returns how many match; with one,
 * *addr is the replica holding it (NULL: this one) and id its full id.
 */
static size_t
live_peer_locate(struct live_admin *a, const struct peer_reply *r, size_t n,
    const char **addr, char id[37])
{
	json_t *rows, *o;
	size_t i, j, found = 0;

	*addr = NULL;
	id[0] = '\0';
	for (i = 0; i <= n; i++) {
		const char *text = i == 0 ? a->local : r[i - 1].out;

		if (i > 0 && (!r[i - 1].reachable || r[i - 1].status != 0))
			continue;
		if (text == NULL || (rows = json_loads(text, 0, NULL)) == NULL)
			continue;
		json_array_foreach(rows, j, o) {
			if (!live_peer_id_match(o, a->id))
				continue;
			if (found++ == 0) {
				*addr = i == 0 ? NULL : r[i - 1].addr;
				snprintf(id, 37, "%s", live_peer_str(o, "id"));
			}
		}
		json_decref(rows);
	}
	return found;
}

/* Watch a session held by the replica at addr: relay its watcher's view. */
static int
live_peer_watch(struct live_admin *a, const char *addr, const char *id)
{
	struct session *s = a->s;

	if ((a->q = malloc(LIVE_QUEUE_MAX)) == NULL ||
	    peer_relay_start(&a->live->peers, a->user, addr, id, s->pty ? s->cols : 80,
	    s->pty ? s->rows : 24, live_peer_relay_cb, a, &a->relay) < 0) {
		session_notice(s, "podgate: internal error");
		return 1;
	}
	a->kind = LIVE_WATCH;
	return -1;
}

/* Nothing (or more than one) matches the id: say so. Returns the exit status. */
static int
live_peer_not_found(struct live_admin *a, size_t matches)
{
	const struct live_remote *e = a->cmd >= 4 ? live_remote_ended(a->live, a->id) : NULL;
	char msg[512];

	if (matches > 1)
		snprintf(msg, sizeof msg, "podgate: '%.64s' names more than one %s on the "
		    "replicas; give more of the id", a->id, a->cmd >= 4 ? "request" : "session");
	else if (e != NULL)
		snprintf(msg, sizeof msg, "podgate: request %s ended: replica %.128s "
		    "unreachable", e->id, e->replica);
	else
		snprintf(msg, sizeof msg, a->cmd <= 2 ? "podgate: no live session '%.64s'" :
		    "podgate: no pending request '%.64s'", a->id);
	session_notice(a->s, msg);
	return 1;
}

/* kill, approve, deny: the answer of the replica that held the session. */
static int
live_peer_act(struct live_admin *a, const struct peer_reply *r, size_t n,
    struct live_text *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (r[i].reachable && r[i].status == 0) {
			live_printf(out, "%s", r[i].out);
			return 0;
		}
	}
	for (i = 0; i < n; i++) {
		if (r[i].reachable && r[i].status != 1 && r[i].err[0] != '\0') {
			session_write(a->s, true, r[i].err, strlen(r[i].err));
			return r[i].status;
		}
	}
	return live_peer_not_found(a, 0);
}

/* Forget remembered request i. */
static void
live_remote_drop(struct live *l, size_t i)
{
	memmove(&l->remote[i], &l->remote[i + 1], (l->nremote - i - 1) * sizeof l->remote[0]);
	l->nremote--;
}

/*
 * Keep track of the requests other replicas hold: a replica's listing of
 * them (listing) replaces what was known of it; the requests of a replica
 * that no longer answers are remembered as ended, and reported once when
 * notify.
 */
static void
live_remote_update(struct live *l, struct session *s, const struct peer_reply *r, size_t n,
    bool listing, bool notify)
{
	char msg[512];
	json_t *rows, *o;
	size_t i, k, j;

	for (i = 0; i < n; i++) {
		if (!r[i].reachable) {
			for (k = 0; k < l->nremote; k++) {
				if (l->remote[k].ended || strcmp(l->remote[k].replica, r[i].name) != 0)
					continue;
				l->remote[k].ended = true;
				if (!notify)
					continue;
				snprintf(msg, sizeof msg, "podgate: request %s ended: replica %.128s "
				    "unreachable", l->remote[k].id, r[i].name);
				session_notice(s, msg);
			}
			continue;
		}
		if (!listing || r[i].status != 0 || (rows = json_loads(r[i].out, 0, NULL)) == NULL)
			continue;
		for (k = l->nremote; k-- > 0;) {
			if (strcmp(l->remote[k].replica, r[i].name) == 0)
				live_remote_drop(l, k);
		}
		json_array_foreach(rows, j, o) {
			const char *id = json_string_value(json_object_get(o, "id"));

			if (id == NULL || strlen(id) >= sizeof l->remote[0].id)
				continue;
			if (l->nremote == LIVE_REMOTE_MAX)
				live_remote_drop(l, 0);
			k = l->nremote++;
			snprintf(l->remote[k].id, sizeof l->remote[k].id, "%s", id);
			snprintf(l->remote[k].replica, sizeof l->remote[k].replica, "%s", r[i].name);
			l->remote[k].ended = false;
		}
		json_decref(rows);
	}
}

/* A remembered request of a replica that went away, by id or prefix; NULL if none. */
static const struct live_remote *
live_remote_ended(const struct live *l, const char *id)
{
	size_t i, n = strlen(id);

	for (i = 0; i < l->nremote; i++) {
		if (l->remote[i].ended && (strcmp(l->remote[i].id, id) == 0 ||
		    (n >= 8 && strncmp(l->remote[i].id, id, n) == 0)))
			return &l->remote[i];
	}
	return NULL;
}

/* Every other replica answered (or timed out): finish the command. */
static void
live_peer_done_cb(void *arg, const struct peer_reply *r, size_t n)
{
	struct live_admin *a = arg;
	struct session *s = a->s;
	struct live_text out = { 0 };
	const char *addr;
	char id[37];
	json_t *rows;
	int status;

	a->pq = NULL;
	if (a->cmd == 0 || a->cmd == 3) {
		if ((rows = live_peer_rows(a->local, r, n)) == NULL) {
			status = 1;
			out.oom = true;
		} else {
			status = live_peer_list(a, rows, &out);
			json_decref(rows);
		}
		if (a->cmd == 3)
			live_remote_update(a->live, s, r, n, true, true);
	} else if (!a->located) {
		/* Where is it? Then act there alone. */
		live_remote_update(a->live, s, r, n, a->cmd >= 4, false);
		if (live_peer_locate(a, r, n, &addr, id) != 1 || addr == NULL) {
			status = live_peer_not_found(a, live_peer_locate(a, r, n, &addr, id));
		} else if (a->cmd == 1) {
			status = live_peer_watch(a, addr, id);
		} else {
			const char *rest = live_rest(s->command, 1);
			char *line = NULL;

			a->located = true;
			status = 1;
			if (asprintf(&line, "%s %s%s%s", live_cmds[a->cmd].name, id,
			    rest != NULL ? " " : "", rest != NULL ? rest : "") < 0)
				line = NULL;
			if (line != NULL && peer_query_at(&a->live->peers, a->user, addr, line,
			    live_peer_done_cb, a, &a->pq) == 0)
				status = -1;
			else
				session_notice(s, "podgate: internal error");
			free(line);
		}
	} else {
		status = live_peer_act(a, r, n, &out);
	}
	if (out.oom) {
		session_notice(s, "podgate: out of memory");
		status = 1;
	} else if (out.len > 0) {
		session_write(s, false, out.p, out.len);
	}
	free(out.p);
	live_peer_unreachable(s, r, n);
	if (status >= 0)
		session_exit(s, status);
	else
		live_kick(a);
	session_wake(s);
}

/*
 * Send the command to the other replicas too: sessions and pending always,
 * watch, kill, approve and deny when the session is not held here.
 * Returns 0 to run it here alone, -1 when the replicas' answer will end
 * it, or an exit status.
 */
static int
live_peer_start(struct session *s, struct live *l, struct live_admin *a, char **argv,
    size_t argc, struct live_text *out)
{
	struct live_text local = { 0 };
	char *line = NULL;
	int r;

	switch (a->cmd) {
	case 0:
	case 3:
		a->json = argc == 1 && strcmp(argv[0], "--json") == 0;
		if (argc > 1 || (argc == 1 && !a->json))
			return 0;	/* the usage message */
		{
			char *jarg[] = { (char *)"--json" };

			r = a->cmd == 0 ? live_cmd_sessions(s, l, jarg, 1, &local) :
			    live_cmd_pending(s, l, jarg, 1, &local);
		}
		if (r != 0 || local.oom) {
			free(local.p);
			return 0;
		}
		a->local = local.p;
		if (asprintf(&line, "%s --json", live_cmds[a->cmd].name) < 0)
			return 0;
		break;
	case 1:
	case 2:
	case 4:
	case 5:
		if (argc < 1 || (a->cmd == 1 && argc != 1) || (a->cmd == 4 && argc != 1))
			return 0;
		if (a->cmd <= 2 ? live_find(l, argv[0]) != NULL :
		    live_find_held(l, argv[0]) != NULL)
			return 0;
		if ((a->id = strdup(argv[0])) == NULL)
			return 0;
		{
			char *jarg[] = { (char *)"--json" };

			r = a->cmd <= 2 ? live_cmd_sessions(s, l, jarg, 1, &local) :
			    live_cmd_pending(s, l, jarg, 1, &local);
		}
		if (r != 0 || local.oom) {
			free(local.p);
			return 0;
		}
		a->local = local.p;
		if ((line = strdup(a->cmd <= 2 ? "sessions --json" : "pending --json")) == NULL)
			return 0;
		break;
	default:
		return 0;
	}
	(void)out;
	r = peer_query(&l->peers, a->user, line, live_peer_done_cb, a, &a->pq);
	free(line);
	if (r < 0) {
		log_warn_r(r, "cannot ask the other replicas");
		return 0;
	}
	return -1;
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
