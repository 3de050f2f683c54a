/*
 * Admin commands across replicas (docs/live.md, "Several replicas"):
 * sessions and pending gather every replica's rows, kill, approve, deny
 * and watch find the replica that holds the ID and act there.
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
		if (r[i].unknown)
			snprintf(msg, sizeof msg, "podgate: replica %.128s did not answer (%.200s "
			    "after the command was sent): it may have run", r[i].name,
			    r[i].why != NULL ? r[i].why : "no answer");
		else
			snprintf(msg, sizeof msg, "podgate: replica %.128s unreachable (%.200s)",
			    r[i].name, r[i].why != NULL ? r[i].why : "no answer");
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

/*
 * sessions or pending on every replica: one table (or JSON array, or one
 * object a line for pending --follow --json) with a replica column.
 */
static int
live_peer_list(struct live_admin *a, json_t *rows, struct buf *out)
{
	char cells[6][256];
	const char *keys_s[] = { "replica", "id", "user", "target", "start", "command" };
	const char *keys_p[] = { "replica", "id", "user", "target", "requested", "command" };
	const char **keys = a->cmd == 0 ? keys_s : keys_p;
	json_t *o;
	size_t i, k;

	if (a->json && a->follow) {
		json_array_foreach(rows, i, o)
			live_json(out, o, "\n");
		return out->oom ? 1 : 0;
	}
	if (a->json) {
		live_json(out, rows, "\n");
		return out->oom ? 1 : 0;
	}
	if (a->cmd == 0)
		buf_printf(out, "%-16s  %-36s  %-12s  %-20s  %-20s  %6s  %10s  %10s  %8s  %s\n",
		    "REPLICA", "ID", "USER", "TARGET", "START", "IDLE", "IN", "OUT", "WATCHERS",
		    "COMMAND");
	else
		buf_printf(out, "%-16s  %-36s  %-12s  %-20s  %-20s  %s\n", "REPLICA", "ID", "USER",
		    "TARGET", "REQUESTED", "COMMAND");
	json_array_foreach(rows, i, o) {
		for (k = 0; k < 6; k++)
			live_clean(cells[k], k == 5 ? 256 : 96, live_peer_str(o, keys[k]));
		if (a->cmd == 0)
			buf_printf(out, "%-16s  %-36s  %-12s  %-20s  %-20s  %5llus  %10llu  %10llu  "
			    "%8llu  %s\n", cells[0], cells[1], cells[2], cells[3], cells[4],
			    (unsigned long long)json_integer_value(json_object_get(o, "idle_seconds")),
			    (unsigned long long)json_integer_value(json_object_get(o, "bytes_in")),
			    (unsigned long long)json_integer_value(json_object_get(o, "bytes_out")),
			    (unsigned long long)json_integer_value(json_object_get(o, "watchers")),
			    cells[5]);
		else
			buf_printf(out, "%-16s  %-36s  %-12s  %-20s  %-20s  %s\n", cells[0], cells[1],
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
live_peer_relay_cb(void *arg, const void *buf, size_t len, int status, const char *why)
{
	struct live_admin *a = arg;

	(void)why;	/* on a PTY the replica's failure is in the stream */
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
	char cmd[64];

	snprintf(cmd, sizeof cmd, "watch %s", id);
	if ((a->q = malloc(LIVE_QUEUE_MAX)) == NULL ||
	    peer_relay_start(&a->live->peers, a->user, addr, cmd, s->pty ? s->cols : 80,
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
    struct buf *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (r[i].reachable && r[i].status == 0) {
			buf_printf(out, "%s", r[i].out);
			return 0;
		}
	}
	for (i = 0; i < n; i++) {
		if (r[i].reachable && r[i].status != 1 && r[i].err[0] != '\0') {
			session_write(a->s, true, r[i].err, strlen(r[i].err));
			return r[i].status;
		}
		if (r[i].unknown)
			return 1;	/* said by live_peer_unreachable: it may have run */
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

/* Remember that replica holds request id (listed by it, or announced to a follower). */
void
live_remote_add(struct live *l, const char *id, const char *replica)
{
	size_t k;

	if (strlen(id) >= sizeof l->remote[0].id)
		return;
	for (k = 0; k < l->nremote && strcmp(l->remote[k].id, id) != 0; k++)
		;
	if (k == l->nremote) {
		if (l->nremote == LIVE_REMOTE_MAX)
			live_remote_drop(l, 0);
		k = l->nremote++;
	}
	snprintf(l->remote[k].id, sizeof l->remote[k].id, "%s", id);
	snprintf(l->remote[k].replica, sizeof l->remote[k].replica, "%s", replica);
	l->remote[k].ended = false;
}

/* Forget request id: it was decided, timed out or ended where it was held. */
void
live_remote_forget(struct live *l, const char *id)
{
	size_t k;

	for (k = 0; k < l->nremote; k++) {
		if (strcmp(l->remote[k].id, id) == 0) {
			live_remote_drop(l, k);
			return;
		}
	}
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

			if (id != NULL)
				live_remote_add(l, id, r[i].name);
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
	struct buf out = { 0 };
	const char *addr;
	char id[37];
	json_t *rows;
	int status;

	a->pq = NULL;
	if (a->cmd == 3 && a->follow) {
		/* This replica's part as it is now: its events from here on reach the follower. */
		char *jarg[] = { (char *)"--json" };
		struct buf local = { 0 };

		free(a->local);
		a->local = NULL;
		if (live_cmd_pending(s, a->live, jarg, 1, &local) == 0 && !local.oom)
			a->local = local.data;
		else
			buf_free(&local);
	}
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
		if (a->cmd == 3 && a->follow && status == 0 && !out.oom) {
			status = live_follow_start(a, &out);
			if (status < 0)
				live_follow_peers(a, r, n);
		}
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
	status = live_send(s, &out, status);
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
int
live_peer_start(struct session *s, struct live *l, struct live_admin *a, char **argv,
    size_t argc, struct buf *out)
{
	struct buf local = { 0 };
	char *line = NULL;
	int r;

	switch (a->cmd) {
	case 0:
	case 3:
		if (a->cmd == 0) {
			a->json = argc == 1 && strcmp(argv[0], "--json") == 0;
			if (argc > 1 || (argc == 1 && !a->json))
				return 0;	/* the usage message */
		} else if (!live_pending_args(argv, argc, &a->json, &a->follow)) {
			return 0;	/* the usage message */
		}
		{
			char *jarg[] = { (char *)"--json" };

			r = a->cmd == 0 ? live_cmd_sessions(s, l, jarg, 1, &local) :
			    live_cmd_pending(s, l, jarg, 1, &local);
		}
		if (r != 0 || local.oom) {
			buf_free(&local);
			return 0;
		}
		a->local = local.data;
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
			buf_free(&local);
			return 0;
		}
		a->local = local.data;
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

