/*
 * Watchers (docs/live.md, "Watching"). A watcher is an auditor's own
 * session channel. The watched session's output is copied into the
 * watcher's queue (at most LIVE_QUEUE_MAX bytes) and sent from there as
 * the watcher's window allows; a full queue drops the watcher, so the
 * watched session never waits. Sending happens on the watcher's
 * connection from a zero-delay timer (the kick), never inside the
 * watched session's read.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

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

static void live_kick_cb(uv_timer_t *t);

/* Have the admin session's connection do its work at the next loop turn. */
void
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
bool
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
void
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
void
live_watch_drop(struct live_admin *a)
{
	a->qoff = a->qlen = 0;
	live_watch_stop(a, 1, "podgate: you were too slow; watch again to rejoin");
}

/*
 * Queue what a watcher needs to see the screen now: a drawing clipped to
 * its terminal, with a status line when the session does not fit.
 */
void
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
void
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

/* watch ID: attach a watcher. Returns -1 when it now runs as a watcher. */
int
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

