/*
 * Admin sessions (docs/live.md): an admin command is the exec request of
 * an ssh session, recorded like any other; sessions and kill are done at
 * once, watch turns the session into a watcher (watch.c), pending,
 * approve and deny work on held requests (approvals.c), pending --follow
 * turns the session into a follower (follow.c).
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

/* The target kind admin sessions are recorded under. */
static const struct target_ops live_target_ops = { .kind = "podgate" };

/* sessions [--json]: the live sessions. */
int
live_cmd_sessions(struct session *s, struct live *l, char **argv, size_t argc,
    struct buf *out)
{
	struct live_session *le;
	uint64_t now = uv_now(l->loop);
	bool json = argc > 0 && strcmp(argv[0], "--json") == 0;
	char start[40], user[64], target[96];
	json_t *rows = NULL, *o;

	if (argc > 1 || (argc == 1 && !json)) {
		session_notice(s, "usage: sessions [--json]");
		return 2;
	}
	if (json && (rows = json_array()) == NULL)
		out->oom = true;
	if (!json)
		buf_printf(out, "%-36s  %-12s  %-20s  %-20s  %6s  %10s  %10s  %8s  %s\n", "ID",
		    "USER", "TARGET", "START", "IDLE", "IN", "OUT", "WATCHERS", "COMMAND");
	TAILQ_FOREACH(le, &l->sessions, entry) {
		struct session *t = le->s;
		uint64_t idle = (now - le->last_mono) / 1000;

		live_time(le->start_ns, start, sizeof start);
		if (json) {
			if (rows == NULL)
				break;
			if ((o = live_json_row(l, t)) == NULL ||
			    json_object_set_new(o, "pty", json_boolean(t->pty)) < 0 ||
			    json_object_set_new(o, "start", json_string(start)) < 0 ||
			    json_object_set_new(o, "idle_seconds", json_integer((json_int_t)idle)) < 0 ||
			    json_object_set_new(o, "bytes_in",
			    json_integer((json_int_t)t->bytes_in)) < 0 ||
			    json_object_set_new(o, "bytes_out",
			    json_integer((json_int_t)t->bytes_out)) < 0 ||
			    json_object_set_new(o, "watchers", json_integer(le->nwatchers)) < 0 ||
			    json_array_append_new(rows, o) < 0) {
				json_decref(o);
				out->oom = true;
				break;
			}
		} else {
			live_clean(user, sizeof user, t->host->user);
			live_clean(target, sizeof target, t->target);
			buf_printf(out, "%-36s  %-12s  %-20s  %-20s  %5llus  %10llu  %10llu  %8u  ",
			    t->id, user, target, start, (unsigned long long)idle,
			    (unsigned long long)t->bytes_in, (unsigned long long)t->bytes_out,
			    le->nwatchers);
			live_escaped(out, session_guard_command(t));
			buf_printf(out, "\n");
		}
	}
	if (json && !out->oom)
		live_json(out, rows, "\n");
	json_decref(rows);
	return 0;
}

/* kill ID [REASON]: end a live session. */
static int
live_cmd_kill(struct session *s, struct live *l, char **argv, size_t argc,
    struct buf *out)
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
		/* The reason as the auditor typed it: redacted and proved (reason_hmac). */
		const char *given = live_rest(s->command, 1);
		struct audit_field f[] = {
			AUDIT_STR("killed", le->s->id),
			AUDIT_STR("killed_user", le->s->host->user),
			AUDIT_STR("target", le->s->target),
			given != NULL ? AUDIT_SECRET("reason", given, s->config) :
			    AUDIT_STR("reason", reason),
		};
		live_audit(s, "session_killed", f, 4);
	}
	log_info("session %s: ended by %s: %s", id, s->host->user, reason);
	session_hangup(le->s, msg);
	buf_printf(out, "podgate: session %s ended\n", id);
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

/*
 * Whether the key a replica authenticated with is still among peer_keys:
 * replicas keep connections for later commands (peer-client.h), and a
 * key dropped by a reload must stop serving at once, not at the next
 * connection.
 */
static bool
live_peer_key_trusted(const struct session *s)
{
	size_t i;

	for (i = 0; i < s->config->peer_keys.nkeys; i++) {
		if (s->host->key_fp != NULL &&
		    strcmp(s->config->peer_keys.keys[i].fingerprint, s->host->key_fp) == 0)
			return true;
	}
	return false;
}

/* Run an admin command. */
void
live_admin_start(struct session *s, const struct cfg_user *u)
{
	struct live *l = ((struct live *)s->host->broker->admin_arg);
	struct buf out = { 0 };
	struct live_admin *a;
	char *args = NULL, *argv[8];
	char msg[256];
	size_t argc;
	int i, status;

	i = live_cmd_index(s->target);
	if (s->host->peer && !live_peer_key_trusted(s)) {
		session_refuse(s, "peer key no longer trusted", "podgate: peer key no longer trusted");
		return;
	}
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
			AUDIT_SECRET("args", s->command, s->config),
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
	status = live_send(s, &out, status);
	if (status >= 0)
		session_exit(s, status);
}

/* Keystrokes: 'q' leaves a watch, 'q' or Ctrl-C a follow; the rest is dropped. */
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
	if (a->kind == LIVE_FOLLOW && !a->done && (memchr(data, 'q', len) != NULL ||
	    memchr(data, 0x03, len) != NULL)) {
		live_follow_stop(a);
		a->done = true;
		a->status = 0;
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
		bool held = a->kind == LIVE_HELD;

		if (a->kind == LIVE_WATCH && a->watched != NULL)
			live_watch_stop(a, 0, NULL);
		live_follow_stop(a);
		live_held_end(a);
		peer_query_cancel(a->pq);
		a->pq = NULL;
		peer_relay_cancel(a->relay);
		a->relay = NULL;
		if (held && s->stop == SESSION_STOP_ABORT)
			session_notice(s, "podgate: the broker is shutting down");
		session_exit(s, held ? 126 : 0);
		return;
	}
	if (a->kind != LIVE_WATCH && a->kind != LIVE_FOLLOW)
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

