/*
 * pending --follow (docs/live.md, "Approvals"): an approver is told of
 * each request as it is held and as it ends (approved, denied, timeout,
 * ended), on this replica and on every other one.
 *
 * A follower is an admin session with a queue, as a watcher is: events
 * are written into it on the loop and sent as the follower's channel
 * allows; a follower whose queue is full is dropped, so nothing ever
 * waits for it. Each event is a JSON object, written as it is (--json)
 * or as a line of text. The other replicas' events come through one
 * relay per replica running "pending --follow --json" there
 * (peer-client.h): a thread that hands their lines to the loop. Every
 * LIVE_FOLLOW_RETRY_MS the replicas not followed (down at the start, gone
 * since, or new under peers.dns) are asked again, and followed once they
 * answer. The other replicas' requests a follower learns of join the
 * registry's memory of them (live->remote), which approve and deny use.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base.h"
#include "admin/live-internal.h"
#include "admin/live.h"
#include "admin/peer-client.h"
#include "base/log.h"
#include "session/session-guard.h"
#include "session/session.h"

/* The longest line taken from another replica; longer ones are skipped. */
#define LIVE_FOLLOW_LINE_MAX (64u * 1024)
/* How often the replicas not followed are looked for. */
#define LIVE_FOLLOW_RETRY_MS 3000

/* Another replica followed through a relay. */
struct live_follow_peer {
	struct live_admin *a;
	struct peer_relay *relay;	/* NULL once it ended */
	bool refused;			/* it answered, refusing the admin: not asked again */
	char addr[128];			/* where it is reached, as peer_reply says */
	char name[128];			/* as peer_reply names it (notices) */
	char replica[128];		/* as its own rows name it */
	struct buf line;		/* the start of a line not yet complete */
	bool overlong;			/* skipping the rest of a line too long */
};

struct live_follow {
	struct live_follow_peer **peers;	/* each replica followed once, by address */
	size_t npeers;
	uv_timer_t *retry;		/* looks for the replicas not followed */
	struct peer_query *pq;		/* the look, until they answer */
	/* The other replicas' requests announced and not ended yet (name: the peer's). */
	struct live_remote *shown;
	size_t nshown;
};

/* A string field of an event, or NULL. */
static const char *
live_follow_str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* An event as a line of text: EVENT [REPLICA] ID, then what the event says. */
static void
live_follow_text(json_t *o, struct buf *out)
{
	const char *event = live_follow_str(o, "event"), *v;
	char cell[128], user[64], target[96];

	live_clean(cell, sizeof cell, event);
	buf_printf(out, "%-8s  ", cell);
	if ((v = live_follow_str(o, "replica")) != NULL) {
		live_clean(cell, sizeof cell, v);
		buf_printf(out, "%-16s  ", cell);
	}
	live_clean(cell, sizeof cell, live_follow_str(o, "id"));
	buf_printf(out, "%s", cell);
	if (event != NULL && strcmp(event, "held") == 0) {
		live_clean(user, sizeof user, live_follow_str(o, "user"));
		live_clean(target, sizeof target, live_follow_str(o, "target"));
		buf_printf(out, "  %-12s  %-20s  ", user, target);
		live_escaped(out, live_follow_str(o, "command"));
	} else if ((v = live_follow_str(o, "by")) != NULL) {
		live_clean(user, sizeof user, v);
		buf_printf(out, "  by %s", user);
	}
	if ((v = live_follow_str(o, "reason")) != NULL) {
		buf_printf(out, ": ");
		live_escaped(out, v);
	}
	buf_printf(out, "\n");
}

/* Stop following: leave the list, end the relays. The queue is still sent. */
void
live_follow_stop(struct live_admin *a)
{
	struct live_follow *f = a->following;
	size_t i;

	if (f == NULL)
		return;
	TAILQ_REMOVE(&a->live->followers, a, peer);
	peer_query_cancel(f->pq);
	if (f->retry != NULL)
		uv_close((uv_handle_t *)f->retry, live_timer_close_cb);
	for (i = 0; i < f->npeers; i++) {
		peer_relay_cancel(f->peers[i]->relay);
		buf_free(&f->peers[i]->line);
		free(f->peers[i]);
	}
	free(f->peers);
	free(f->shown);
	free(f);
	a->following = NULL;
}

/* A follower that could not keep up: its queue is emptied and it ends. */
static void
live_follow_drop(struct live_admin *a)
{
	a->qoff = a->qlen = 0;
	live_follow_stop(a);
	session_notice(a->s, "podgate: you were too slow; follow again to rejoin");
	a->done = true;
	a->status = 1;
	live_kick(a);
}

/* Queue an event for one follower, as JSON or text. */
static void
live_follow_emit(struct live_admin *a, json_t *o)
{
	struct buf t = { 0 };

	if (a->json)
		live_json(&t, o, "\n");
	else
		live_follow_text(o, &t);
	if (t.oom || !live_enqueue(a, t.data, t.len))
		live_follow_drop(a);
	else
		live_kick(a);
	buf_free(&t);
}

/* Set a string field (invalid UTF-8 replaced); false when out of memory. */
static bool
live_follow_set(json_t *o, const char *key, const char *v)
{
	return v == NULL || json_object_set_new(o, key, live_json_string(v)) == 0;
}

/*
 * Tell every follower of an event of held request h: held, approved or
 * denied (by, with a deny's reason), timeout, or ended (reason).
 */
void
live_follow_event(struct live *l, const char *event, struct live_admin *h,
    const struct session *by, const char *reason)
{
	struct live_admin *a, *tmp;
	char when[40];
	json_t *o;

	if (TAILQ_EMPTY(&l->followers))
		return;
	live_time(h->requested_ns, when, sizeof when);
	if ((o = json_object()) == NULL || !live_follow_set(o, "event", event) ||
	    !live_follow_set(o, "id", h->s->id) || !live_follow_set(o, "user", h->s->host->user) ||
	    !live_follow_set(o, "client", h->s->host->client) ||
	    !live_follow_set(o, "target", h->s->target) ||
	    !live_follow_set(o, "command", session_guard_command(h->s)) ||
	    (peer_enabled(*l->peers.config) && !live_follow_set(o, "replica", peer_self_name())) ||
	    !live_follow_set(o, "requested", when) ||
	    (by != NULL && !live_follow_set(o, "by", by->host->user)) ||
	    !live_follow_set(o, "reason", reason)) {
		log_warn("request %s: out of memory: followers not told of it", h->s->id);
		json_decref(o);
		return;
	}
	TAILQ_FOREACH_SAFE(a, &l->followers, peer, tmp)
		live_follow_emit(a, o);
	json_decref(o);
}

/* Forget shown request i. */
static void
live_follow_forget(struct live_follow *f, size_t i)
{
	memmove(&f->shown[i], &f->shown[i + 1], (f->nshown - i - 1) * sizeof f->shown[0]);
	f->nshown--;
}

/* Whether id was announced (and not ended); its index in *at. */
static bool
live_follow_shown(const struct live_follow *f, const char *id, size_t *at)
{
	size_t i;

	for (i = 0; i < f->nshown; i++) {
		if (strcmp(f->shown[i].id, id) == 0) {
			*at = i;
			return true;
		}
	}
	return false;
}

/* Remember an announced request of replica name (the oldest forgotten when full). */
static void
live_follow_remember(struct live_follow *f, const char *id, const char *name)
{
	struct live_remote *e;
	size_t i;

	if (strlen(id) >= sizeof f->shown[0].id || live_follow_shown(f, id, &i))
		return;
	if (f->nshown == LIVE_REMOTE_MAX)
		live_follow_forget(f, 0);
	if (f->shown == NULL && (f->shown = calloc(LIVE_REMOTE_MAX, sizeof *f->shown)) == NULL)
		return;
	e = &f->shown[f->nshown++];
	snprintf(e->id, sizeof e->id, "%s", id);
	snprintf(e->replica, sizeof e->replica, "%s", name);
	e->ended = false;
}

/* Remember a request of the replica p follows, here and in the registry. */
static void
live_follow_learn(struct live_follow_peer *p, const char *id)
{
	live_follow_remember(p->a->following, id, p->name);
	live_remote_add(p->a->live, id, p->name);
}

/*
 * A line from another replica: an object of its listing (no "event": held
 * before the relay began; news when it was not in ours) or an event.
 */
static void
live_follow_line(struct live_follow_peer *p, const char *text)
{
	struct live_admin *a = p->a;
	struct live_follow *f = a->following;
	const char *id, *event, *replica;
	json_t *o;
	size_t at;
	bool known;

	if ((o = json_loads(text, 0, NULL)) == NULL || !json_is_object(o) ||
	    (id = live_follow_str(o, "id")) == NULL) {
		log_warn("replica %s: unreadable event", p->name);
		json_decref(o);
		return;
	}
	if ((replica = live_follow_str(o, "replica")) != NULL)
		snprintf(p->replica, sizeof p->replica, "%s", replica);
	known = live_follow_shown(f, id, &at);
	if ((event = live_follow_str(o, "event")) == NULL || strcmp(event, "held") == 0) {
		if (!known && (event != NULL ||
		    json_object_set_new(o, "event", json_string("held")) == 0)) {
			live_follow_learn(p, id);
			live_follow_emit(a, o);
		}
	} else {
		if (known)
			live_follow_forget(f, at);
		live_remote_forget(a->live, id);
		live_follow_emit(a, o);
	}
	json_decref(o);
}

/*
 * A relay's replica went away: say so, and end the requests it held as far
 * as this follower knows them, as pending does.
 */
static void
live_follow_lost(struct live_follow_peer *p, const char *why)
{
	struct live_admin *a = p->a;
	struct live_follow *f = a->following;
	char msg[512];
	json_t *o;
	size_t i;

	snprintf(msg, sizeof msg, "podgate: replica %.128s unreachable (%.200s)", p->name,
	    why != NULL ? why : "connection closed");
	session_notice(a->s, msg);
	snprintf(msg, sizeof msg, "replica %.128s unreachable", p->name);
	for (i = f->nshown; i-- > 0 && a->following == f;) {
		if (strcmp(f->shown[i].replica, p->name) != 0)
			continue;
		if ((o = json_object()) != NULL && live_follow_set(o, "event", "ended") &&
		    live_follow_set(o, "id", f->shown[i].id) &&
		    live_follow_set(o, "replica", p->replica[0] != '\0' ? p->replica : p->name) &&
		    live_follow_set(o, "reason", msg)) {
			live_follow_forget(f, i);
			live_follow_emit(a, o);
		}
		json_decref(o);
	}
}

/* Bytes from another replica's pending --follow --json, or its end. */
static void
live_follow_relay_cb(void *arg, const void *buf, size_t len, int status, const char *why)
{
	struct live_follow_peer *p = arg;
	struct live_admin *a = p->a;
	struct live_follow *f = a->following;
	char *nl, *text;
	size_t n;

	(void)status;		/* any end is the replica going away: why says more */
	if (len == 0) {
		p->relay = NULL;	/* it frees itself */
		live_follow_lost(p, why);
		return;
	}
	buf_add(&p->line, buf, len);
	while (p->line.data != NULL && (nl = memchr(p->line.data, '\n', p->line.len)) != NULL) {
		n = (size_t)(nl - p->line.data);
		text = p->overlong ? NULL : strndup(p->line.data, n);
		p->overlong = false;
		memmove(p->line.data, nl + 1, p->line.len - n - 1);
		p->line.len -= n + 1;
		p->line.data[p->line.len] = '\0';
		if (text != NULL)
			live_follow_line(p, text);
		free(text);
		if (a->following != f)
			return;		/* dropped: p is gone */
	}
	if (p->line.oom || p->line.len > LIVE_FOLLOW_LINE_MAX) {
		buf_free(&p->line);
		p->overlong = true;
	}
}

/* The follower's entry for the replica at r->addr, made when it has none. */
static struct live_follow_peer *
live_follow_peer(struct live_admin *a, const struct peer_reply *r)
{
	struct live_follow *f = a->following;
	struct live_follow_peer *p, **list;
	size_t i;

	for (i = 0; i < f->npeers; i++) {
		if (strcmp(f->peers[i]->addr, r->addr) == 0)
			return f->peers[i];
	}
	if ((list = reallocarray(f->peers, f->npeers + 1, sizeof *list)) == NULL)
		return NULL;
	f->peers = list;
	if ((p = calloc(1, sizeof *p)) == NULL)
		return NULL;
	p->a = a;
	snprintf(p->addr, sizeof p->addr, "%s", r->addr);
	snprintf(p->name, sizeof p->name, "%s", r->name);
	f->peers[f->npeers++] = p;
	return p;
}

/*
 * Follow the replica that answered with r: its pending --follow --json
 * runs for this follower. When listed, its requests in r were shown in
 * the listing already; otherwise its relay's own listing announces them.
 * Returns whether it is followed.
 */
static bool
live_follow_add(struct live_admin *a, const struct peer_reply *r, bool listed)
{
	struct live_follow_peer *p;
	json_t *rows, *o;
	size_t j;
	char msg[512];

	if ((p = live_follow_peer(a, r)) == NULL || p->relay != NULL)
		return false;
	if (r->status != 0) {
		p->refused = true;
		return false;
	}
	buf_free(&p->line);
	p->overlong = false;
	if (listed && (rows = json_loads(r->out, 0, NULL)) != NULL) {
		json_array_foreach(rows, j, o) {
			if (live_follow_str(o, "replica") != NULL)
				snprintf(p->replica, sizeof p->replica, "%s",
				    live_follow_str(o, "replica"));
			if (live_follow_str(o, "id") != NULL)
				live_follow_learn(p, live_follow_str(o, "id"));
		}
		json_decref(rows);
	}
	if (peer_relay_start(&a->live->peers, a->user, r->addr, "pending --follow --json", 0, 0,
	    live_follow_relay_cb, p, &p->relay) < 0) {
		snprintf(msg, sizeof msg, "podgate: replica %.128s not followed: out of memory",
		    p->name);
		session_notice(a->s, msg);
		return false;
	}
	return true;
}

/* The replicas not followed answered (or not): follow those that did. */
static void
live_follow_retry_done_cb(void *arg, const struct peer_reply *r, size_t n)
{
	struct live_admin *a = arg;
	char msg[512];
	size_t i;

	a->following->pq = NULL;
	for (i = 0; i < n; i++) {
		if (!r[i].reachable || !live_follow_add(a, &r[i], false))
			continue;
		snprintf(msg, sizeof msg, "podgate: replica %.128s followed", r[i].name);
		session_notice(a->s, msg);
	}
	session_wake(a->s);
}

/* Time to look for the replicas not followed: ask all the others. */
static void
live_follow_retry_cb(uv_timer_t *t)
{
	struct live_admin *a = t->data;
	struct live_follow *f = a->following;
	char **skip;
	size_t i, n = 0;
	int r;

	if (f == NULL || f->pq != NULL)
		return;		/* the last look is not over */
	if ((skip = calloc(f->npeers + 1, sizeof *skip)) == NULL)
		return;
	for (i = 0; i < f->npeers; i++) {
		if (f->peers[i]->relay != NULL || f->peers[i]->refused)
			skip[n++] = f->peers[i]->addr;
	}
	if ((r = peer_query_others(&a->live->peers, a->user, skip, n, "pending --json",
	    live_follow_retry_done_cb, a, &f->pq)) < 0)
		log_warn_r(r, "cannot look for the replicas not followed");
	free(skip);
}

/*
 * Follow the replicas that answered the listing: each runs pending
 * --follow --json for this follower. Their requests listed are known
 * already; one held since is announced when its listing comes. The
 * others are looked for every LIVE_FOLLOW_RETRY_MS.
 */
void
live_follow_peers(struct live_admin *a, const struct peer_reply *r, size_t n)
{
	struct live_follow *f = a->following;
	size_t i;

	if (f == NULL)
		return;
	for (i = 0; i < n; i++) {
		if (r[i].reachable)
			live_follow_add(a, &r[i], true);
	}
	if ((f->retry = malloc(sizeof *f->retry)) == NULL)
		return;
	uv_timer_init(a->live->loop, f->retry);
	f->retry->data = a;
	uv_timer_start(f->retry, live_follow_retry_cb, LIVE_FOLLOW_RETRY_MS,
	    LIVE_FOLLOW_RETRY_MS);
}

/*
 * pending --follow: the listing is out (in listing); follow from now on.
 * Returns -1 (the session now runs as a follower) or an exit status.
 */
int
live_follow_start(struct live_admin *a, struct buf *listing)
{
	if ((a->q = malloc(LIVE_QUEUE_MAX)) == NULL ||
	    (a->following = calloc(1, sizeof *a->following)) == NULL) {
		free(a->q);
		a->q = NULL;
		session_notice(a->s, "podgate: out of memory");
		return 1;
	}
	a->kind = LIVE_FOLLOW;
	TAILQ_INSERT_TAIL(&a->live->followers, a, peer);
	if (listing->len > 0 && !live_enqueue(a, listing->data, listing->len))
		live_follow_drop(a);
	listing->len = 0;	/* sent from the queue */
	live_kick(a);
	return -1;
}
