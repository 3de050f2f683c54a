/*
 * The start path (session.h): what a session runs, decided once its exec
 * or shell request is in. First the choice: a target named in the exec
 * request, the menu or the pod picker when none is, an admin command.
 * Then a table of steps, each returning go, wait or refuse (with the exit
 * status and message): resolve, authorize, check, count, reason,
 * approve, room, describe, record, spawn. A step that waits (the reason
 * asked on the terminal, a request held for an approver) is resumed
 * through session_start, from the step after it. A refusal ends the
 * session through session_end (end.c), like every other end.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "kube/kube.h"
#include "policy/policy.h"
#include "session/internal.h"
#include "session/session-guard.h"
#include "session/session-pick.h"
#include "session/session.h"
#include "targets/cgroup.h"

#define SESSION_PROMPT "Select a target (number or name, empty to quit): "

/* Fill no with a refusal; returns SESSION_REFUSE. */
int
session_refuse_no(struct session *s, struct session_no *no, int status, const char *reason,
    const char *fmt, ...)
{
	va_list ap;

	no->status = status;
	no->reason = NULL;
	if (reason != NULL) {
		snprintf(no->why, sizeof no->why, "%s", reason);
		no->reason = no->why;
	}
	va_start(ap, fmt);
	vsnprintf(no->msg, sizeof no->msg, fmt, ap);
	va_end(ap);
	return SESSION_REFUSE;
}

/* Show the target menu and the prompt. */
static void
session_menu_show(struct session *s)
{
	char line[300];
	size_t i;

	session_say(s, false, "podgate: targets you may reach:");
	for (i = 0; s->menu[i] != NULL; i++) {
		snprintf(line, sizeof line, "  %zu) %s", i + 1, s->menu[i]);
		session_say(s, false, line);
	}
	session_send(s, false, SESSION_PROMPT, strlen(SESSION_PROMPT));
}

/* A line was entered in the menu: pick a target or ask again. */
static void
session_menu_pick(struct session *s)
{
	char *end, *name = s->line;
	unsigned long n;
	size_t count;

	s->line[s->linelen] = '\0';
	while (*name == ' ' || *name == '\t')
		name++;
	end = name + strlen(name);
	while (end > name && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	s->linelen = 0;
	if (*name == '\0') {
		session_say(s, false, "");
		s->state = SESSION_PICKED;	/* with no target: ends the session */
		return;
	}
	for (count = 0; s->menu[count] != NULL; count++)
		;
	if (*name >= '0' && *name <= '9') {
		n = strtoul(name, &end, 10);
		if (*end != '\0' || n == 0 || n > count) {
			session_say(s, false, "");
			session_say(s, false, "podgate: no such choice");
			session_send(s, false, SESSION_PROMPT, strlen(SESSION_PROMPT));
			return;
		}
		name = s->menu[n - 1];
	}
	session_say(s, false, "");
	free(s->target);
	s->target = strdup(name);
	s->state = SESSION_PICKED;
	if (s->target == NULL)
		s->broken = true;
}

/* Menu input from a raw-mode terminal: echo, edit, and pick on Enter. */
uint32_t
session_menu_input(struct session *s, const uint8_t *data, uint32_t len)
{
	uint32_t i;

	if (s->pick != NULL)
		return session_pick_input(s, data, len);
	for (i = 0; i < len && s->state == SESSION_MENU; i++) {
		uint8_t ch = data[i];

		if (ch == '\r' || ch == '\n') {
			session_menu_pick(s);
			session_dirty(s);
		} else if (ch == 0x03 || ch == 0x04) {	/* ^C, ^D */
			s->linelen = 0;
			session_say(s, false, "");
			s->state = SESSION_PICKED;
			free(s->target);
			s->target = NULL;
			session_dirty(s);
		} else if (ch == 0x7f || ch == 0x08) {
			if (s->linelen > 0) {
				s->linelen--;
				session_send(s, false, "\b \b", 3);
			}
		} else if (ch >= 0x20 && ch < 0x7f && s->linelen + 1 < sizeof s->line) {
			s->line[s->linelen++] = (char)ch;
			session_send(s, false, &ch, 1);
		}
	}
	if (i < len)
		s->chan_pending = true;	/* bytes after the choice go to the target */
	return i;
}

/* Open the session's recording (s->target, s->command and s->ops set). */
int
session_record_open(struct session *s)
{
	struct rec_header h;
	int r;

	if (s->id[0] == '\0' && (r = rec_uuid7(s->id)) < 0)
		return r;	/* a request held for approval already has its id */
	memset(&h, 0, sizeof h);
	h.session_id = s->id;
	h.cols = s->pty ? s->cols : 0;
	h.rows = s->pty ? s->rows : 0;
	h.term = s->pty ? s->term : NULL;
	h.pty = s->pty;
	h.user = s->host->user;
	h.key_fp = s->host->key_fp;
	h.client = s->host->client;
	h.target_kind = (char *)s->ops->kind;
	h.target = s->target;
	h.command = session_guard_command(s);
	h.where_extra = (const char *const *)s->where_extra;
	h.who_extra = (const char *const *)s->who_extra;
	h.what_extra = session_guard_header(s, (const char *const *)s->what_extra);
	return record_open(&s->rec, s->config->recordings, &h, s->host->broker->sign_key,
	    s->host->broker->storage);
}

/* Parse "TARGET [--] COMMAND" from an exec request. */
static int
session_parse_exec(struct session *s)
{
	const char *p = s->exec, *end;

	p += strspn(p, " \t");
	end = p + strcspn(p, " \t");
	if (end == p)
		return 0;	/* empty: like a shell request */
	if ((s->target = strndup(p, (size_t)(end - p))) == NULL)
		return -ENOMEM;
	p = end + strspn(end, " \t");
	if (p[0] == '-' && p[1] == '-' && (p[2] == '\0' || p[2] == ' ' || p[2] == '\t'))
		p += 2 + strspn(p + 2, " \t");
	if (*p != '\0' && (s->command = strdup(p)) == NULL)
		return -ENOMEM;
	return 0;
}

/* List the reachable targets on stdout (no PTY, no target given), exit 1. */
static void
session_list_targets(struct session *s, const struct cfg_user *u)
{
	char **list = policy_targets(s->config, u);
	char line[300];
	size_t i;

	session_say(s, false, "podgate: no target given; targets you may reach:");
	for (i = 0; list != NULL && list[i] != NULL; i++) {
		snprintf(line, sizeof line, "  %s", list[i]);
		session_say(s, false, line);
	}
	if (list == NULL || list[0] == NULL)
		session_say(s, false, "  (none)");
	session_say(s, false, "usage: ssh [-t] BROKER TARGET [-- COMMAND]");
	policy_free_list(list);
	session_refuse(s, "no target given", NULL);
}

/* Fill hint for a refused target, as its kind gives one (target.h). */
static void
session_container_hint(struct session *s, const struct cfg_user *u, char *hint,
    size_t len)
{
	hint[0] = '\0';
	if (s->ops != NULL && s->ops->deny_hint != NULL)
		s->ops->deny_hint(s->config, u, s->target, hint, len);
}

/* resolve: the target's kind, and its canonical name when the kind has one. */
static int
session_step_resolve(struct session *s, struct session_no *no)
{
	char why[400];
	int r;

	s->ops = target_find(s->target);
	if (s->ops != NULL && s->ops->resolve != NULL) {
		r = s->ops->resolve(s->config, s->target, &s->canonical, why, sizeof why);
		if (r == -ENOENT)
			return session_refuse_no(s, no, 1, "no such target",
			    "podgate: access to '%s' denied: %s", s->target, why);
		if (r < 0) {
			free(s->target);
			s->target = NULL;
			return session_refuse_no(s, no, 1, why, "podgate: %s", why);
		}
	} else if (!policy_target_name_ok(s->target)) {
		free(s->target);
		s->target = NULL;
		return session_refuse_no(s, no, 1, "invalid target name",
		    "podgate: invalid target name");
	}
	return SESSION_GO;
}

/* authorize: a rule grants the target, and the target exists. */
static int
session_step_authorize(struct session *s, struct session_no *no)
{
	const struct cfg_user *u = s->account;
	char hint[600];

	s->rule = policy_match(s->config, u, s->canonical != NULL ? s->canonical : s->target);
	if (s->rule == NULL) {
		session_container_hint(s, u, hint, sizeof hint);
		return session_refuse_no(s, no, 1, "no rule grants it",
		    "podgate: access to '%s' denied: no rule grants it%s", s->target, hint);
	}
	if (s->ops == NULL || !s->ops->exists(s->config, s->target))
		return session_refuse_no(s, no, 1, "no such target",
		    "podgate: access to '%s' denied: no such target", s->target);
	return SESSION_GO;
}

/* approve: a command matching commands.approve waits for an approver (admin/approvals.c). */
static int
session_step_approve(struct session *s, struct session_no *no)
{
	if (session_admin(s) == NULL || !session_admin(s)->hold(s))
		return SESSION_GO;
	return SESSION_WAIT;
}

/* room: start nothing that could not finish; the reserve stays for running sessions. */
static int
session_step_room(struct session *s, struct session_no *no)
{
	if (s->host->broker->ops->start_room(s->host->broker))
		return SESSION_GO;
	log_warn("session %s: refused: open file limit nearly reached", s->id);
	return session_refuse_no(s, no, 1, "open file limit reached", "podgate: the broker is "
	    "at its capacity (open file limit); session refused, try again later");
}

/* What the target's kind is asked to describe and spawn. */
static void
session_request(struct session *s, struct target_request *req)
{
	memset(req, 0, sizeof *req);
	req->user = s->host->user;
	req->target = s->target;
	req->command = s->command;
	req->pty = s->pty;
	req->term = s->term;
	req->cols = s->cols;
	req->rows = s->rows;
	req->env = s->env;
	req->nenv = s->nenv;
	req->account = s->account;
	req->rule = s->rule;
	req->canonical = s->canonical != NULL ? s->canonical : s->target;
}

/* describe: the kind's header and audit pairs (where, who). */
static int
session_step_describe(struct session *s, struct session_no *no)
{
	struct target_request req;

	session_request(s, &req);
	if (s->ops->describe != NULL &&
	    s->ops->describe(s->config, &req, &s->where_extra, &s->who_extra) < 0)
		return session_refuse_no(s, no, 1, "out of memory", "podgate: internal error");
	return SESSION_GO;
}

/* record: the recording's file and header; without one, the rule decides. */
static int
session_step_record(struct session *s, struct session_no *no)
{
	char msg[512];
	int r;

	if ((r = session_record_open(s)) >= 0)
		return SESSION_GO;
	snprintf(msg, sizeof msg, "session recording failed: %s", strerror(-r));
	if (!s->rule->rec_failure_continue)
		return session_refuse_no(s, no, 1, msg,
		    "podgate: session recording failed; session refused");
	/* on_recording_failure: continue: the session runs unrecorded. */
	log_error("session %s: %s; going on unrecorded (on_recording_failure: continue)",
	    s->id, msg);
	{
		struct audit_field f[] = {
			AUDIT_STR("reason", msg),
			AUDIT_STR("target", s->target),
		};
		session_audit(s, "recording_failed", f, 2);
	}
	record_drop(&s->rec);
	return SESSION_GO;
}

/* The session_start audit event and log line. */
static void
session_started(struct session *s)
{
	struct audit_field f[18] = {
		AUDIT_STR("target", s->target),
		AUDIT_STR("kind", s->ops->kind),
		AUDIT_SECRET("command", s->command, s->config),
		AUDIT_NUM("pty", s->pty),
		AUDIT_STR("recording", s->rec.path),
		AUDIT_NUM("pid", s->child.pid),
	};
	size_t n = 6;
	char **p;

	if (s->guard.reason != NULL)
		f[n++] = AUDIT_SECRET("reason", s->guard.reason_given, s->config);
	for (p = s->where_extra; p != NULL && p[0] != NULL && p[1] != NULL && n < 12; p += 2)
		f[n++] = AUDIT_STR(p[0], p[1]);
	for (p = s->who_extra; p != NULL && p[0] != NULL && p[1] != NULL && n < 18; p += 2)
		f[n++] = AUDIT_STR(p[0], p[1]);
	session_audit(s, "session_start", f, n);
	log_info("session %s: %s@%s -> %s%s%s (pid %d, %s)", s->id, s->host->user,
	    s->host->client, s->target, s->command != NULL ? ": " : "",
	    s->command != NULL ? session_guard_command(s) : "", (int)s->child.pid,
	    s->pty ? "pty" : "pipes");
}

/* spawn: the target's process (or its run in the loop), then it runs. */
static int
session_step_spawn(struct session *s, struct session_no *no)
{
	struct target_request req;
	int r;

	session_request(s, &req);
	req.session_id = s->id;
	req.cgroup_procs_fd = -1;
	req.loop = s->host->broker->loop;
	req.proc = &s->proc;
	req.on_exit = session_proc_exit;
	req.on_ready = session_proc_ready;
	req.exit_arg = s;
	if (s->ops->host_cgroup && s->host->broker->cgroups != NULL &&
	    (r = cgroup_session_new(s->host->broker->cgroups, s->id, &s->cgroup,
	    &req.cgroup_procs_fd)) < 0)
		log_warn_r(r, "session %s: no cgroup; what it leaves behind may outlive it", s->id);
	r = s->ops->spawn(s->config, &req, &s->child);
	if (req.cgroup_procs_fd >= 0)
		close(req.cgroup_procs_fd);
	if (r < 0)
		return session_refuse_no(s, no, 1, "target failed to start",
		    "podgate: cannot start target '%s': %s", s->target, strerror(-r));
	s->pgid = s->child.pid;
	s->start_mono = uv_now(s->host->broker->loop);
	session_started(s);
	session_run(s);
	return SESSION_GO;
}

/* The start path, in order (enum session_step). */
static const struct {
	const char *name;
	int (*run)(struct session *s, struct session_no *no);
} session_steps[SESSION_STEPS] = {
	[SESSION_STEP_RESOLVE] = { "resolve", session_step_resolve },
	[SESSION_STEP_AUTHORIZE] = { "authorize", session_step_authorize },
	[SESSION_STEP_CHECK] = { "check", session_guard_check },
	[SESSION_STEP_COUNT] = { "count", session_guard_count },
	[SESSION_STEP_REASON] = { "reason", session_guard_reason },
	[SESSION_STEP_APPROVE] = { "approve", session_step_approve },
	[SESSION_STEP_ROOM] = { "room", session_step_room },
	[SESSION_STEP_DESCRIBE] = { "describe", session_step_describe },
	[SESSION_STEP_RECORD] = { "record", session_step_record },
	[SESSION_STEP_SPAWN] = { "spawn", session_step_spawn },
};

/* Whether the exec request names an admin command. */
static bool
session_admin_wants(const struct session *s)
{
	return session_admin(s) != NULL && session_admin(s)->wants(s);
}

/*
 * Before the steps: decide what the request asks for. Returns true when a
 * target is named and the steps may run; otherwise the menu, the picker,
 * the list of targets or an admin command took over, or the session ended.
 */
static bool
session_choose(struct session *s)
{
	const struct cfg_user *u;
	int r;

	if (s->config == NULL) {
		s->config = config_ref(*s->host->broker->config);
		s->rec.config = s->config;
	}
	if ((u = config_find_user(s->config, s->host->user)) == NULL) {
		session_refuse(s, "user no longer configured",
		    "podgate: access denied: user no longer configured");
		return false;
	}
	s->account = u;
	if (s->state == SESSION_STARTING && s->exec != NULL &&
	    (r = session_parse_exec(s)) < 0) {
		session_refuse(s, "out of memory", "podgate: internal error");
		return false;
	}
	if (s->host->peer && !session_admin_wants(s)) {
		session_refuse(s, "peers may run admin commands only",
		    "podgate: peers may run admin commands only");
		return false;
	}
	if (s->target == NULL && s->state == SESSION_PICKED) {
		session_refuse(s, "no target selected", "podgate: no target selected");
		return false;
	}
	if (s->target == NULL) {
		if (!s->pty) {
			session_list_targets(s, u);
			return false;
		}
		/* Clusters configured: the pod picker (session-pick.h). */
		if ((r = session_pick_start(s, u)) <= 0) {
			if (r < 0)
				session_refuse(s, "cannot start the pod picker",
				    "podgate: internal error");
			else
				s->state = SESSION_MENU;
			return false;
		}
		s->menu = policy_targets(s->config, u);
		if (s->menu == NULL || s->menu[0] == NULL) {
			session_refuse(s, "no targets for user",
			    "podgate: no targets are available to you");
			return false;
		}
		s->state = SESSION_MENU;
		session_menu_show(s);
		return false;
	}
	if (session_admin_wants(s)) {
		session_admin(s)->start(s, u);
		return false;
	}
	return true;
}

/*
 * Start (or resume) the session: the choice, then the steps from
 * s->step. A step that waits leaves s->step at the one after it.
 */
void
session_start(struct session *s)
{
	struct session_no no;
	int r;

	if (s->pick != NULL)
		return;		/* a pick is in; the picker is still ending */
	if (s->step == SESSION_STEP_RESOLVE && !session_choose(s))
		return;
	while (s->step < SESSION_STEPS) {
		memset(&no, 0, sizeof no);
		r = session_steps[s->step].run(s, &no);
		if (s->state == SESSION_CLOSING)
			return;		/* the step ended the session itself */
		if (r == SESSION_REFUSE) {
			struct session_end e = {
				.status = no.status,
				.refused = no.reason,
				.msg = no.msg[0] != '\0' ? no.msg : NULL,
			};

			log_debug("session %s: refused at %s", s->id, session_steps[s->step].name);
			session_end(s, &e);
			return;
		}
		s->step++;
		if (r == SESSION_WAIT)
			return;
	}
}

/* An approver let a held request start: on from the step after approve. */
void
session_resume(struct session *s)
{
	if (s->state != SESSION_HELD)
		return;
	s->state = SESSION_STARTING;
	session_start(s);
}
