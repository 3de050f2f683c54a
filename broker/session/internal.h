/*
 * struct session and what the files of the session module share among
 * themselves. session-guard.c and session-pick.c see the session only
 * through this header, so they sit below session.c and never include
 * session.h; the layers above include session.h, which brings the struct.
 */
#ifndef PODGATE_SESSION_INTERNAL_H
#define PODGATE_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <uv.h>

#include "policy/audit.h"
#include "policy/guard.h"
#include "pty.h"
#include "rec.h"
#include "session/host.h"
#include "session/record.h"
#include "targets/target.h"

/* The guard's state of one session; zeroed with the session. */
struct session_guard {
	bool counted;			/* holds one of the user's server-wide session counts */
	char *user;			/* the name counted (the conn may be gone at free) */
	char *command;			/* the command, redacted (for header and audit), or NULL */
	char command_hmac[65];		/* HMAC-SHA256 of the command when redaction changed it */
	char *reason;			/* the reason given, redacted, or NULL */
	char *reason_given;		/* the reason as given (the audit log proves it) */
	const char **what;		/* the header's what pairs with the reason added */
	bool limits_on;			/* the target started: limits count */
	struct guard_limits_state limits;
	struct guard_line reason_line;	/* the reason being typed */
	struct guard_line in, out;	/* typed and printed lines, for watch patterns */
	char prompt[256];		/* the target's current output line (passprompt) */
	size_t promptlen;
	bool pass_armed;		/* a passprompt matched: mask input up to Enter */
};

enum session_state {
	SESSION_NEW,		/* collecting pty-req and env requests */
	SESSION_STARTING,	/* exec or shell accepted: the start steps run at the next turn */
	SESSION_MENU,		/* picking a target from the menu (or the pod picker) */
	SESSION_PICKED,		/* a target was picked (or none): start at the next turn */
	SESSION_REASON,		/* asking for the reason the rule requires */
	SESSION_HELD,		/* an exec request waiting for an approver (admin/live.c) */
	SESSION_ADMIN,		/* running an admin command (admin/live.c) */
	SESSION_RUNNING,	/* the target runs */
	SESSION_DRAINING,	/* the target exited: its output is drained */
	SESSION_CLOSING,	/* ended: handles closing, then freed */
};

/* The steps of the start path (start.c), in order. */
enum session_step {
	SESSION_STEP_RESOLVE,	/* the target's kind and canonical name */
	SESSION_STEP_AUTHORIZE,	/* a rule grants it, and it exists */
	SESSION_STEP_CHECK,	/* the rule's command and PTY checks */
	SESSION_STEP_COUNT,	/* the user's max_sessions */
	SESSION_STEP_REASON,	/* the reason the rule requires (may ask: wait) */
	SESSION_STEP_APPROVE,	/* commands.approve (may hold: wait) */
	SESSION_STEP_ROOM,	/* descriptors left for one more session */
	SESSION_STEP_DESCRIBE,	/* the kind's header and audit pairs */
	SESSION_STEP_RECORD,	/* the recording's file and header */
	SESSION_STEP_SPAWN,	/* the target's process */
	SESSION_STEPS
};

/* Why a running target is being ended (the first reason wins). */
enum session_stop {
	SESSION_STOP_NONE,
	SESSION_STOP_HANGUP,	/* the client left, an auditor, a limit or a watch pattern */
	SESSION_STOP_RECORDING,	/* the recording failed: no session without its record */
	SESSION_STOP_ABORT,	/* the broker's shutdown grace is over: output is dropped */
};

/*
 * One of the child's descriptors, with its poll handle; or, for a target
 * that runs in the loop (s->proc), one of its streams, with no descriptor.
 */
struct session_fd {
	struct session *session;
	uv_poll_t poll;
	int fd;			/* -1 once closed, or for a stream */
	bool stream;		/* a stream of s->proc, until its end */
	char code;		/* 'o' or 'e' for output, 0 for stdin only */
	bool input;		/* the child's input goes here */
	bool inited;		/* poll handle initialized (must be closed) */
	int events;
};

#define SESSION_INBUF (64u * 1024)
#define SESSION_MAXENV 32

struct session {
	TAILQ_ENTRY(session) entry;
	struct session_host *host;	/* its connection (session/host.h) */
	ssh_channel channel;		/* NULL once detached from libssh */
	struct ssh_channel_callbacks_struct cb;
	enum session_state state;
	enum session_step step;		/* the next start step (start.c) */
	enum session_stop stop;		/* why the target is being ended, if it is */
	struct config *config;		/* the configuration it started under */
	const struct cfg_user *account;	/* the user's entry in config, once starting */

	/* requests */
	bool pty;
	char term[64];
	uint16_t cols, rows;
	char *env[SESSION_MAXENV];
	size_t nenv;
	char *exec;			/* exec request text; NULL for a shell */
	bool peer_eof;			/* the client sent EOF */
	bool peer_closed;		/* the client closed the channel */
	bool close_sent;		/* our CLOSE went out */
	bool broken;			/* writing to the channel failed */

	/* menu */
	struct session_pick *pick;	/* the pod picker while it runs (session-pick.h) */
	char **menu;
	char line[256];
	size_t linelen;

	/* target */
	char *target;
	char *canonical;		/* the name policy matched, when the kind has one */
	char **where_extra;		/* from the kind's describe: header and audit pairs */
	char **who_extra;
	char *command;
	const struct target_ops *ops;
	struct pty_child child;
	struct target_proc *proc;	/* a target running in the loop (no process), or NULL */
	pid_t pgid;
	char *cgroup;			/* the local target's cgroup (cgroup.h), or NULL */
	struct pty_exit exit;		/* how the target ended (state DRAINING) */
	bool signalled;			/* SIGHUP went to the target */
	struct session_fd fds[3];	/* PTY master or stdout; stderr; stdin */
	bool input_closed;		/* child's stdin gone: input is dropped */

	/* client -> child */
	uint8_t *inbuf;			/* SESSION_INBUF, made at the first input */
	size_t inlen;
	bool chan_pending;		/* libssh holds channel data we did not take */

	/* record */
	char id[37];
	struct record rec;		/* redactor, recording, tee to watchers (record.h) */
	const struct cfg_rule *rule;	/* the rule that granted the target (in config) */

	/* timers */
	uv_timer_t tick_timer;		/* armed only while the record or a limit needs it */
	uv_timer_t linger_timer, kill_timer;
	uv_timer_t resize_timer;	/* applies the last window change (coalesced) */
	bool linger_over;

	uint64_t bytes_in, bytes_out;
	uint64_t start_mono;
	unsigned handles;		/* uv handles not yet closed */
	struct session_guard guard;	/* guard state (session-guard.c) */

	/* live supervision (admin/live.h) */
	struct live_session *live;	/* in the admin layer's registry while running */
	struct live_admin *admin;	/* an admin command or a held request, or NULL */
	char **what_extra;		/* header "what" pairs (an approval), or NULL */
};

#define SESSION_LINGER_MS 200
#define SESSION_KILL_MS 2000
#define SESSION_TICK_MS 250		/* the record's flush and checkpoint pace */

/* What a start step decided. */
enum session_go {
	SESSION_GO,		/* on to the next step */
	SESSION_WAIT,		/* asked something (reason, approval): resumes later */
	SESSION_REFUSE,		/* the session ends here, as struct session_no says */
};

/* A start step's refusal: the exit status, the audit reason and the client's line. */
struct session_no {
	int status;
	const char *reason;	/* audit "refused" with it; NULL: the step audited already */
	char why[256];		/* reason's text */
	char msg[1024];		/* to the client's stderr (marked when recording), or "" */
};

/* How a session ends (end.c). */
struct session_end {
	int status;		/* the exit status, when signame is NULL */
	const char *signame;	/* the signal that ended the target, without "SIG" */
	bool core;
	const char *refused;	/* never ran: the audit "refused" reason, or NULL */
	const char *msg;	/* a line to the client's stderr (a marker when recording), or NULL */
};

/* The admin layer's hooks (session/host.h), when it is there. */
static inline const struct session_admin_ops *
session_admin(const struct session *s)
{
	return s->host->broker->admin;
}

/* The broker's current configuration. */
static inline struct config *
session_config_now(const struct session *s)
{
	return *s->host->broker->config;
}

/* Also for the layers above (session.h brings them). */
/* One of the session's uv handles finished closing; the last one frees it. */
void session_handle_closed(struct session *s);

/* How many bytes may be sent to the client now (window and connection queue). */
size_t session_room(const struct session *s);

/* Open the recording of a session that runs no target (s->target and s->ops set). */
int session_record_open(struct session *s);

/* Refuse before anything ran: audit reason, msg on stderr, exit 1. */
void session_refuse(struct session *s, const char *reason, const char *msg);

/* session.c */
bool session_chan_ok(const struct session *s);
void session_dirty(struct session *s);
int session_send(struct session *s, bool err, const void *buf, size_t len);
void session_say(struct session *s, bool err, const char *msg);
void session_audit(struct session *s, const char *event, const struct audit_field *extra,
    size_t nextra);
void session_audit_refused(struct session *s, const char *reason);
void session_close_channel(struct session *s, int status, const char *signame, bool core);
void session_release(struct session *s);

/* start.c */
void session_start(struct session *s);
uint32_t session_menu_input(struct session *s, const uint8_t *data, uint32_t len);
int session_refuse_no(struct session *s, struct session_no *no, int status, const char *reason,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* io.c */
void session_run(struct session *s);
void session_running_after_io(struct session *s);
uint32_t session_input(struct session *s, const uint8_t *data, uint32_t len);
void session_pull_input(struct session *s);
void session_fd_close(struct session_fd *sf);
void session_record(struct session *s, char code, const void *buf, size_t len);
void session_tick_arm(struct session *s);
void session_resize_cb(uv_timer_t *t);
void session_tick_cb(uv_timer_t *t);
void session_linger_cb(uv_timer_t *t);
void session_kill_cb(uv_timer_t *t);
void session_tee(void *arg, const void *data, size_t len);
void session_mark(struct session *s, const char *msg);
void session_proc_exit(void *arg, const struct pty_exit *ex);
void session_proc_ready(void *arg);

/* end.c */
void session_end(struct session *s, const struct session_end *e);
void session_stop(struct session *s, enum session_stop why);
void session_record_failed(struct session *s, int err);
const char *session_signame(int signo);

#endif
