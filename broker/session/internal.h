/*
 * What the files of the session module share among themselves (not for
 * the layers above: they use session.h).
 */
#ifndef PODGATE_SESSION_INTERNAL_H
#define PODGATE_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/audit.h"
#include "session/host.h"
#include "session/session.h"

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

/* end.c */
void session_end(struct session *s, const struct session_end *e);
void session_stop(struct session *s, enum session_stop why);
void session_record_failed(struct session *s, int err);
const char *session_signame(int signo);

#endif
