/*
 * Requests held for an approver (docs/live.md, "Approvals"): the start
 * path's approve step holds an exec request whose command matches the
 * rule's commands.approve; pending lists them, approve resumes the start,
 * deny and approve_timeout end it with exit 126. Followers (pending
 * --follow, follow.c) are told of each request held and of its end.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "rec.h"
#include "admin/live-internal.h"
#include "admin/live.h"
#include "admin/peer-client.h"
#include "admin/screen.h"
#include "base/log.h"
#include "policy/audit.h"
#include "policy/config.h"
#include "policy/guard.h"
#include "policy/pattern.h"
#include "session/session-guard.h"
#include "session/session.h"

/* The options of pending: --json, --follow (or -f), each at most once, in any order. */
bool
live_pending_args(char **argv, size_t argc, bool *json, bool *follow)
{
	size_t i;

	*json = *follow = false;
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 && !*json)
			*json = true;
		else if ((strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0) &&
		    !*follow)
			*follow = true;
		else
			return false;
	}
	return true;
}

/*
 * pending [--json] [--follow]: held requests, each command whole and
 * escaped; a JSON array, or one object a line when following.
 */
int
live_cmd_pending(struct session *s, struct live *l, char **argv, size_t argc,
    struct buf *out)
{
	struct live_admin *a;
	bool json, follow;
	char when[40], user[64], target[96];
	json_t *rows = NULL, *o;

	if (!live_pending_args(argv, argc, &json, &follow)) {
		session_notice(s, "usage: pending [--json] [--follow]");
		return 2;
	}
	if (json && (rows = json_array()) == NULL)
		out->oom = true;
	if (!json)
		buf_printf(out, "%-36s  %-12s  %-20s  %-20s  %s\n", "ID", "USER", "TARGET",
		    "REQUESTED", "COMMAND");
	TAILQ_FOREACH(a, &l->held, peer) {
		live_time(a->requested_ns, when, sizeof when);
		if (json) {
			if (rows == NULL)
				break;
			if ((o = live_json_row(l, a->s)) == NULL ||
			    json_object_set_new(o, "requested", json_string(when)) < 0 ||
			    json_array_append_new(rows, o) < 0) {
				json_decref(o);
				out->oom = true;
				break;
			}
			continue;
		}
		live_clean(user, sizeof user, a->s->host->user);
		live_clean(target, sizeof target, a->s->target);
		buf_printf(out, "%-36s  %-12s  %-20s  %-20s  ", a->s->id, user, target, when);
		live_escaped(out, session_guard_command(a->s));
		buf_printf(out, "\n");
	}
	/* A follower gets one object a line; otherwise one array. */
	for (size_t i = 0; json && follow && !out->oom && i < json_array_size(rows); i++)
		live_json(out, json_array_get(rows, i), "\n");
	if (json && !follow && !out->oom)
		live_json(out, rows, "\n");
	json_decref(rows);
	if (follow) {
		s->admin->json = json;
		return live_follow_start(s->admin, out);
	}
	return 0;
}

/* The held request with this id (or a unique prefix of 8 or more). */
struct live_admin *
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
int
live_cmd_decide(struct session *s, struct live *l, char **argv, size_t argc,
    struct buf *out, bool approve)
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
	buf_printf(out, "podgate: request %s %s\n", id, approve ? "approved" : "denied");
	return 0;
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
		if (pattern_match(&s->rule->approve[i], s->command))
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
			AUDIT_SECRET("command", s->command, s->config),
		};
		live_audit(s, "approval_timeout", f, 2);
	}
	live_follow_event(h->live, "timeout", h, NULL, NULL);
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
	h->requested_ns = rec_now_utc_ns();
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
			AUDIT_SECRET("command", s->command, s->config),
			AUDIT_NUM("timeout_s", timeout),
		};
		live_audit(s, "approval_requested", f, 3);
	}
	snprintf(msg, sizeof msg, "waiting for approval: %s", s->id);
	session_notice(s, msg);
	live_follow_event(l, "held", h, NULL, NULL);
	return true;
}

/*
 * A held request ends undecided (its requester left, or the broker stops):
 * no longer pending, followers told why.
 */
void
live_held_end(struct live_admin *h)
{
	if (h->kind != LIVE_HELD)
		return;
	live_follow_event(h->live, "ended", h, NULL, h->s->stop == SESSION_STOP_ABORT ?
	    "the broker is shutting down" : "the requester left");
	TAILQ_REMOVE(&h->live->held, h, peer);
	uv_timer_stop(h->timer);
	h->kind = LIVE_CMD;
}

/* An approver decided on a held request. */
static void
live_decide(struct live_admin *h, struct session *by, bool approve, const char *reason)
{
	struct session *s = h->s;
	char when[40], msg[512];
	char **what;

	live_time(rec_now_utc_ns(), when, sizeof when);
	{
		/* A deny's reason as the approver typed it: redacted and proved (reason_hmac). */
		const char *given = reason != NULL ? live_rest(by->command, 1) : NULL;
		struct audit_field f[] = {
			AUDIT_STR("session", s->id),
			AUDIT_STR("requester", s->host->user),
			AUDIT_STR("target", s->target),
			AUDIT_SECRET("command", s->command, s->config),
			{ .key = "decided_at", .str = when },
			given != NULL ? AUDIT_SECRET("reason", given, by->config) :
			    AUDIT_STR("reason", reason),
		};
		/* The approver's own session field names the admin session: "decided" names the request. */
		f[0].key = "request";
		live_audit(by, approve ? "approved" : "denied", f, reason != NULL ? 6 : 5);
	}
	live_follow_event(h->live, approve ? "approved" : "denied", h, by, reason);
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

