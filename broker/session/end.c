/*
 * The end of a session (session.h): one function, session_end, for every
 * way a session ends, whether it was refused before anything ran, its
 * target exited, or an admin command or a held request is over. It seals
 * the recording (the exit, then the seal), ends whatever the session
 * started, tells the client, audits and closes. The entry points below it
 * only say why.
 *
 * A running target is not ended here but stopped (session_stop): SIGHUP
 * to its process group, SIGKILL if it lingers; its exit then comes back
 * through the running path and ends the session.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "session/internal.h"
#include "session/session-guard.h"
#include "session/session.h"
#include "targets/cgroup.h"

/* The name of a signal without "SIG" ("KILL"), or "UNKNOWN". */
const char *
session_signame(int signo)
{
	const char *n = sigabbrev_np(signo);

	return n != NULL ? n : "UNKNOWN";
}

/* Whether the session ran: a target, an admin command or a held request. */
static bool
session_ran(const struct session *s)
{
	return s->state == SESSION_RUNNING || s->state == SESSION_DRAINING ||
	    s->state == SESSION_ADMIN || s->state == SESSION_HELD;
}

/* The session_end audit event, the counters and the log line of a session that ran. */
static void
session_end_report(struct session *s, const struct session_end *e)
{
	struct session_broker *b = s->host->broker;
	struct audit_field f[10];
	uint64_t dur = uv_now(s->host->broker->loop) - s->start_mono;
	bool failed = s->rec.state == RECORD_FAILED;
	size_t n = 0;

	f[n++] = AUDIT_STR("target", s->target);
	f[n++] = AUDIT_STR("recording", s->rec.path);
	f[n++] = AUDIT_NUM("bytes_in", s->bytes_in);
	f[n++] = AUDIT_NUM("bytes_out", s->bytes_out);
	if (e->signame != NULL)
		f[n++] = AUDIT_STR("exit_signal", e->signame);
	else
		f[n++] = AUDIT_NUM("exit_status", e->status);
	f[n++] = AUDIT_NUM("duration_ms", dur);
	if (failed)
		f[n++] = AUDIT_STR("error", "recording failed");
	else if (s->rec.state == RECORD_DROPPED)
		f[n++] = AUDIT_STR("error", "unrecorded (on_recording_failure: continue)");
	session_audit(s, "session_end", f, n);
	b->ops->ended(b, failed ? SESSION_OUTCOME_RECORDING_FAILED : s->signalled ?
	    SESSION_OUTCOME_KILLED : e->signame != NULL ? SESSION_OUTCOME_SIGNAL :
	    SESSION_OUTCOME_EXIT, s->bytes_in, s->bytes_out);
	log_info("session %s: ended (%s %d), %llu bytes in, %llu out", s->id,
	    e->signame != NULL ? "signal" : "status",
	    e->signame != NULL ? s->exit.signal : e->status,
	    (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out);
}

/*
 * End the session: the one way out. The recording gets msg as a marker,
 * then the exit and the seal; nothing the session started outlives it;
 * the client gets msg and the exit; the end (or the refusal) is audited;
 * the handles close and the session is freed.
 */
void
session_end(struct session *s, const struct session_end *e)
{
	bool ran = session_ran(s);
	int r;

	if (s->state == SESSION_CLOSING)
		return;
	if (s->live != NULL)
		session_admin(s)->ended(s);	/* its watchers are told and detached */
	if (e->msg != NULL)
		session_mark(s, e->msg);
	if ((r = record_close(&s->rec, e->status, e->signame)) < 0)
		log_error_r(r, "session %s: closing recording %s", s->id, s->rec.path);
	/* Nothing the session started outlives it: its group, and its cgroup. */
	if (s->pgid > 0)
		kill(-s->pgid, SIGHUP);
	cgroup_kill(s->cgroup);
	if (e->msg != NULL)
		session_say(s, true, e->msg);
	session_close_channel(s, e->status, e->signame, e->core);
	if (ran)
		session_end_report(s, e);
	else if (e->refused != NULL)
		session_audit_refused(s, e->refused);
	session_release(s);
}

/*
 * Stop the running target for why: SIGHUP to its process group (and
 * SIGCONT, so a stopped one sees it), SIGKILL after SESSION_KILL_MS. The
 * first reason is the one reported; the broker's shutdown always drops
 * the output from then on.
 */
void
session_stop(struct session *s, enum session_stop why)
{
	if (s->stop == SESSION_STOP_NONE || why == SESSION_STOP_ABORT)
		s->stop = why;
	session_dirty(s);
	if (s->signalled || (s->state != SESSION_RUNNING && s->state != SESSION_DRAINING))
		return;
	if (s->proc != NULL) {
		if (s->state == SESSION_RUNNING) {
			s->signalled = true;
			s->proc->ops->hangup(s->proc);
		}
		return;
	}
	if (s->pgid <= 0)
		return;
	s->signalled = true;
	if (s->state == SESSION_RUNNING) {
		kill(-s->pgid, SIGHUP);
		kill(-s->pgid, SIGCONT);
		uv_timer_start(&s->kill_timer, session_kill_cb, SESSION_KILL_MS, 0);
	}
}

/*
 * A recording error: the rule decides. on_recording_failure: continue
 * gives the file up and the session goes on unrecorded (its watchers
 * still get the redacted output); otherwise the session is ended.
 */
void
session_record_failed(struct session *s, int err)
{
	if (s->rec.state != RECORD_ON)
		return;
	if (s->rule != NULL && s->rule->rec_failure_continue) {
		/* The rule chose the session over its record. */
		log_error_r(err, "session %s: recording %s failed; the session goes on unrecorded "
		    "(on_recording_failure: continue)", s->id, s->rec.path);
		struct audit_field f[] = {
			AUDIT_STR("reason", "recording failed; session continues unrecorded"),
			AUDIT_STR("recording", s->rec.path),
			AUDIT_STR("error", strerror(-err)),
		};
		session_audit(s, "recording_failed", f, 3);
		record_drop(&s->rec);
		return;
	}
	record_fail(&s->rec);
	log_error_r(err, "session %s: recording %s failed; closing the session", s->id,
	    s->rec.path);
	{
		struct audit_field f[] = {
			AUDIT_STR("reason", "session recording failed; session closed"),
			AUDIT_STR("recording", s->rec.path),
			AUDIT_STR("error", strerror(-err)),
		};
		session_audit(s, "recording_failed", f, 3);
	}
	session_say(s, true, "podgate: session recording failed; session closed");
	session_stop(s, SESSION_STOP_RECORDING);
}

/* ---- entry points: why a session ends ---- */

/* Refuse before anything ran: audit reason, msg on stderr, exit 1. */
void
session_refuse(struct session *s, const char *reason, const char *msg)
{
	struct session_end e = { .status = 1, .refused = reason, .msg = msg };

	session_end(s, &e);
}

/* An admin command or a held request is over. */
void
session_exit(struct session *s, int status)
{
	struct session_end e = { .status = status };

	if (s->state == SESSION_CLOSING)
		return;
	memset(&s->exit, 0, sizeof s->exit);
	s->exit.status = status;
	session_end(s, &e);
}

/* End the target on an auditor's word (kill): the line shown and marked as it is. */
void
session_hangup(struct session *s, const char *msg)
{
	session_notice(s, msg);
	session_stop(s, SESSION_STOP_HANGUP);
}

/* The connection is going away: forget the channel and end the target. */
void
session_detach(struct session *s)
{
	static const struct session_end left = { .status = 1 };

	if (s->channel != NULL) {
		ssh_remove_channel_callbacks(s->channel, &s->cb);
		s->channel = NULL;	/* libssh frees it with the session */
	}
	s->peer_closed = true;
	if (s->state == SESSION_RUNNING || s->state == SESSION_DRAINING ||
	    s->state == SESSION_ADMIN || s->state == SESSION_HELD)
		session_stop(s, SESSION_STOP_HANGUP);	/* ends at its next turn */
	else
		session_end(s, &left);
}

/* The shutdown grace is over: end the target; the exit is still reported. */
void
session_abort(struct session *s)
{
	if (s->state == SESSION_RUNNING || s->state == SESSION_DRAINING ||
	    s->state == SESSION_ADMIN || s->state == SESSION_HELD) {
		session_say(s, true, "podgate: the broker is shutting down");
		session_stop(s, SESSION_STOP_ABORT);
	} else if (s->state != SESSION_CLOSING) {
		session_refuse(s, "broker shutting down", "podgate: the broker is shutting down");
	}
}
