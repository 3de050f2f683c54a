/*
 * One session channel (session.h): its requests, recorded by libssh's
 * channel callbacks, which only note what was asked; the work they leave
 * is done from session_after_io, at the top of a libuv callback, by the
 * session's state. Freeing, once the last handle is closed, is here too.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <libssh/server.h>

#include "base/log.h"
#include "policy/audit.h"
#include "policy/policy.h"
#include "session/internal.h"
#include "session/session-guard.h"
#include "session/session-pick.h"
#include "session/session.h"
#include "targets/cgroup.h"

#define SESSION_RESIZE_MS 20		/* window changes are applied at most this often */
#define SESSION_MAX_COLS 1000		/* a terminal's largest size */
#define SESSION_MAX_ROWS 500

static void session_close_cb(uv_handle_t *h);
static void session_callbacks_fill(struct ssh_channel_callbacks_struct *cb);

/* Signals a client may send, by their names without "SIG". */
static const struct {
	const char *name;
	int signo;
} session_signals[] = {
	{ "ABRT", SIGABRT }, { "ALRM", SIGALRM }, { "FPE", SIGFPE }, { "HUP", SIGHUP },
	{ "ILL", SIGILL }, { "INT", SIGINT }, { "KILL", SIGKILL }, { "PIPE", SIGPIPE },
	{ "QUIT", SIGQUIT }, { "SEGV", SIGSEGV }, { "TERM", SIGTERM }, { "USR1", SIGUSR1 },
	{ "USR2", SIGUSR2 },
};

/* Whether the channel can still carry data and requests to the client. */
bool
session_chan_ok(const struct session *s)
{
	return s->channel != NULL && !s->peer_closed && !s->close_sent && !s->broken;
}

/* Line ending for messages to the client: a raw-mode terminal needs CR. */
static const char *
session_eol(const struct session *s)
{
	return s->pty ? "\r\n" : "\n";
}

/* Mark the connection as having work for conn_after_io. */
void
session_dirty(struct session *s)
{
	s->host->ops->dirty(s->host);
}

/* Send bytes to the client (stdout or stderr), within the window. */
int
session_send(struct session *s, bool err, const void *buf, size_t len)
{
	uint32_t win;
	int n;

	if (!session_chan_ok(s) || len == 0)
		return 0;
	win = ssh_channel_window_size(s->channel);
	if (len > win)
		len = win;	/* never block on the window: drop what does not fit */
	if (len == 0)
		return 0;
	n = err ? ssh_channel_write_stderr(s->channel, buf, (uint32_t)len) :
	    ssh_channel_write(s->channel, buf, (uint32_t)len);
	if (n < 0) {
		log_warn("session %s: write to channel failed: %s", s->id,
		    ssh_get_error(s->host->ssh));
		s->broken = true;
		session_dirty(s);
		return -EIO;
	}
	s->host->ops->queued(s->host, (size_t)n);
	return n;
}

/* Send a one-line message from the broker to the client. */
void
session_say(struct session *s, bool err, const char *msg)
{
	char buf[1024];
	int n;

	n = snprintf(buf, sizeof buf, "%s%s", msg, session_eol(s));
	if (n > 0)
		session_send(s, err, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Write one audit event with the session's who/where fields added. */
void
session_audit(struct session *s, const char *event, const struct audit_field *extra,
    size_t nextra)
{
	struct audit_field f[24];
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

/* Audit a refusal of something the client asked for. */
void
session_audit_refused(struct session *s, const char *reason)
{
	struct audit_field f[] = {
		AUDIT_STR("reason", reason),
		AUDIT_STR("target", s->target),
	};

	session_audit(s, "refused", f, s->target != NULL ? 2 : 1);
	s->host->broker->ops->refused(s->host->broker);
	log_info("%s@%s: refused: %s", s->host->user, s->host->client, reason);
}

/* Refuse a request on the session's channel: audit and tell the client. */
void
session_refuse_request(struct session *s, const char *what)
{
	char msg[256];

	snprintf(msg, sizeof msg, "%s refused: not supported by podgate", what);
	session_audit_refused(s, msg);
	snprintf(msg, sizeof msg, "podgate: %s refused: not supported", what);
	session_say(s, true, msg);
	s->host->ops->refused(s->host);
}

/* Send exit-status or exit-signal, EOF and CLOSE, as far as still possible. */
void
session_close_channel(struct session *s, int status, const char *signame, bool core)
{
	if (s->channel == NULL || s->close_sent)
		return;
	if (session_chan_ok(s)) {
		if (signame != NULL)
			ssh_channel_request_send_exit_signal(s->channel, signame, core, "", "");
		else
			ssh_channel_request_send_exit_status(s->channel, status);
		ssh_channel_send_eof(s->channel);
	}
	s->close_sent = true;
	ssh_channel_close(s->channel);
}

/* Start closing every handle; the session is freed when the last one is. */
void
session_release(struct session *s)
{
	size_t i;

	if (s->state == SESSION_CLOSING)
		return;
	s->state = SESSION_CLOSING;
	for (i = 0; i < 3; i++)
		session_fd_close(&s->fds[i]);
	session_pick_release(s);
	uv_close((uv_handle_t *)&s->tick_timer, session_close_cb);
	uv_close((uv_handle_t *)&s->linger_timer, session_close_cb);
	uv_close((uv_handle_t *)&s->kill_timer, session_close_cb);
	uv_close((uv_handle_t *)&s->resize_timer, session_close_cb);
}

/* Free the session once its last handle is closed. */
void
session_handle_closed(struct session *s)
{
	struct session_host *h = s->host;
	size_t i;

	if (--s->handles > 0)
		return;
	if (s->channel != NULL) {
		ssh_remove_channel_callbacks(s->channel, &s->cb);
		if (!s->close_sent) {
			s->close_sent = true;
			ssh_channel_close(s->channel);
		}
		ssh_channel_free(s->channel);
		s->channel = NULL;
	}
	if (s->proc != NULL) {
		s->proc->ops->release(s->proc);
		s->proc = NULL;
	}
	session_guard_free(s);
	if (s->cgroup != NULL) {
		int r;

		cgroup_kill(s->cgroup);
		if ((r = cgroup_remove(s->cgroup)) < 0)
			h->broker->ops->cgroup_later(h->broker, s->cgroup);	/* still emptying */
		else
			free(s->cgroup);
		s->cgroup = NULL;
	}
	record_free(&s->rec);
	for (i = 0; i < s->nenv; i++)
		free(s->env[i]);
	policy_free_list(s->menu);
	free(s->exec);
	free(s->target);
	free(s->canonical);
	target_free_pairs(s->where_extra);
	target_free_pairs(s->who_extra);
	free(s->command);
	free(s->inbuf);
	if (s->config != NULL)
		config_unref(s->config);
	if (session_admin(s) != NULL)
		session_admin(s)->gone(s);
	target_free_pairs(s->what_extra);
	h->ops->gone(h, s);	/* off the connection's list */
	free(s);
}

/* A session timer finished closing. */
static void
session_close_cb(uv_handle_t *h)
{
	session_handle_closed(h->data);
}

/* Make a session and its channel for a channel open request on h. */
struct session *
session_open(struct session_host *h)
{
	struct session *s = NULL;
	size_t i;

	if ((s = calloc(1, sizeof *s)) == NULL)
		goto fail;
	s->host = h;
	s->pgid = -1;
	s->child.master = s->child.in = s->child.out = s->child.err = -1;
	s->cols = 80;
	s->rows = 24;
	for (i = 0; i < 3; i++) {
		s->fds[i].session = s;
		s->fds[i].fd = -1;
	}
	if ((s->channel = ssh_channel_new(h->ssh)) == NULL)
		goto fail;
	s->cb.userdata = s;
	ssh_callbacks_init(&s->cb);
	session_callbacks_fill(&s->cb);
	if (ssh_set_channel_callbacks(s->channel, &s->cb) != SSH_OK) {
		ssh_channel_free(s->channel);
		goto fail;
	}
	uv_timer_init(h->broker->loop, &s->tick_timer);
	uv_timer_init(h->broker->loop, &s->linger_timer);
	uv_timer_init(h->broker->loop, &s->kill_timer);
	uv_timer_init(h->broker->loop, &s->resize_timer);
	s->tick_timer.data = s->linger_timer.data = s->kill_timer.data = s;
	s->resize_timer.data = s;
	s->handles = 4;
	record_init(&s->rec, h->broker->loop, NULL, h->broker->redact_key,
	    h->broker->redact_keylen, session_tee, s);
	return s;
fail:
	log_error("out of memory opening a session for %s", h->client);
	free(s);
	return NULL;
}

/* A "break" request: pass it to the PTY when the target has one. */
bool
session_break(struct session *s)
{
	if (!s->pty || (s->state != SESSION_RUNNING && s->state != SESSION_DRAINING) ||
	    (s->fds[0].fd < 0 && !s->fds[0].stream))
		return false;
	if (s->fds[0].fd >= 0)
		tcsendbreak(s->fds[0].fd, 0);
	return true;
}

/* Whether the session still counts as live. */
bool
session_live(const struct session *s)
{
	return s->state != SESSION_CLOSING;
}

/* ---- channel callbacks (record what was asked; work happens later) ---- */

/* channel_data_function: client bytes. */
static int
session_data_cb(ssh_session ssh, ssh_channel channel, void *data, uint32_t len,
    int is_stderr, void *userdata)
{
	struct session *s = userdata;

	if (is_stderr)
		return (int)len;
	switch (s->state) {
	case SESSION_NEW:
	case SESSION_STARTING:
	case SESSION_PICKED:
	case SESSION_REASON:	/* taken by session_pull_input */
	case SESSION_HELD:
		s->chan_pending = true;	/* kept by libssh until the target runs */
		return 0;
	case SESSION_MENU:
		return (int)session_menu_input(s, data, len);
	case SESSION_ADMIN:
		return (int)session_admin(s)->input(s, data, len);
	case SESSION_RUNNING:
	case SESSION_DRAINING:
		return (int)session_input(s, data, len);
	case SESSION_CLOSING:
		break;
	}
	return (int)len;
}

/* channel_eof_function: the client will send no more data. */
static void
session_eof_cb(ssh_session ssh, ssh_channel channel, void *userdata)
{
	struct session *s = userdata;

	s->peer_eof = true;
	session_dirty(s);
}

/* channel_close_function: the client closed the channel. */
static void
session_close_req_cb(ssh_session ssh, ssh_channel channel, void *userdata)
{
	struct session *s = userdata;

	s->peer_closed = true;
	session_dirty(s);
}

/* Keep only printable ASCII of a TERM value. */
static bool
session_term_ok(const char *term)
{
	size_t i;

	for (i = 0; term[i] != '\0'; i++) {
		if (i >= 63 || term[i] <= 0x20 || term[i] >= 0x7f)
			return false;
	}
	return true;
}

/* Clamp a terminal dimension to 1..max (0: the default). */
static uint16_t
session_dim(int v, uint16_t dflt, uint16_t max)
{
	if (v <= 0)
		return dflt;
	return v > max ? max : (uint16_t)v;
}

/* channel_pty_request_function */
static int
session_pty_cb(ssh_session ssh, ssh_channel channel, const char *term, int width,
    int height, int pxwidth, int pxheight, void *userdata)
{
	struct session *s = userdata;

	if (s->state != SESSION_NEW || s->pty)
		return -1;
	if (term == NULL || !session_term_ok(term))
		term = "xterm";
	snprintf(s->term, sizeof s->term, "%s", term);
	s->cols = session_dim(width, 80, SESSION_MAX_COLS);
	s->rows = session_dim(height, 24, SESSION_MAX_ROWS);
	s->pty = true;
	return 0;
}

/* channel_pty_window_change_function */
static int
session_winch_cb(ssh_session ssh, ssh_channel channel, int width, int height,
    int pxwidth, int pxheight, void *userdata)
{
	struct session *s = userdata;
	uint16_t cols, rows;

	if (!s->pty)
		return -1;
	cols = session_dim(width, s->cols, SESSION_MAX_COLS);
	rows = session_dim(height, s->rows, SESSION_MAX_ROWS);
	if (cols == s->cols && rows == s->rows && !uv_is_active((uv_handle_t *)&s->resize_timer))
		return 0;
	s->cols = cols;
	s->rows = rows;
	/* A burst of window changes is applied once, with the last size. */
	if (s->state != SESSION_CLOSING && !uv_is_active((uv_handle_t *)&s->resize_timer))
		uv_timer_start(&s->resize_timer, session_resize_cb, SESSION_RESIZE_MS, 0);
	return 0;
}

/* Whether an environment variable may be passed to the target. */
static bool
session_env_name_ok(const char *name)
{
	const char *p;

	if (strcmp(name, "TERM") == 0 || strcmp(name, "LANG") == 0)
		return true;
	if (strncmp(name, "LC_", 3) == 0)
		p = name + 3;
	else if (strncmp(name, "PODGATE_", 8) == 0)
		p = name + 8;
	else
		return false;
	if (*p == '\0' || strlen(name) > 64)
		return false;
	for (; *p != '\0'; p++) {
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	}
	return true;
}

/* channel_env_request_function: TERM, LANG, LC_* and PODGATE_* only. */
static int
session_env_cb(ssh_session ssh, ssh_channel channel, const char *name, const char *value,
    void *userdata)
{
	struct session *s = userdata;
	char reason[128];
	char *var = NULL;

	if (name == NULL || value == NULL)
		return 1;
	if (!session_env_name_ok(name) || strlen(value) > 1024 ||
	    s->state != SESSION_NEW || s->nenv >= SESSION_MAXENV) {
		snprintf(reason, sizeof reason, "environment variable %.64s not allowed", name);
		session_audit_refused(s, reason);
		s->host->ops->refused(s->host);
		return 1;
	}
	if (asprintf(&var, "%s=%s", name, value) < 0)
		return 1;
	s->env[s->nenv++] = var;
	return 0;
}

/* channel_exec_request_function: run a command (its first word is the target). */
static int
session_exec_cb(ssh_session ssh, ssh_channel channel, const char *command, void *userdata)
{
	struct session *s = userdata;

	if (s->state != SESSION_NEW || command == NULL)
		return 1;
	if ((s->exec = strdup(command)) == NULL)
		return 1;
	s->state = SESSION_STARTING;
	session_dirty(s);
	return 0;
}

/* channel_shell_request_function: no command; a PTY gets the target menu. */
static int
session_shell_cb(ssh_session ssh, ssh_channel channel, void *userdata)
{
	struct session *s = userdata;

	if (s->state != SESSION_NEW)
		return 1;
	s->state = SESSION_STARTING;
	session_dirty(s);
	return 0;
}

/* channel_subsystem_request_function: refused (no sftp through the broker). */
static int
session_subsystem_cb(ssh_session ssh, ssh_channel channel, const char *subsystem,
    void *userdata)
{
	struct session *s = userdata;
	char what[96];

	snprintf(what, sizeof what, "subsystem '%.64s'", subsystem != NULL ? subsystem : "");
	for (char *p = what; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	}
	session_refuse_request(s, what);
	return 1;
}

/* channel_signal_function: forward to the target's process group. */
static void
session_signal_cb(ssh_session ssh, ssh_channel channel, const char *signal, void *userdata)
{
	struct session *s = userdata;
	size_t i;

	if (signal == NULL || s->pgid <= 0 || s->state != SESSION_RUNNING)
		return;
	for (i = 0; i < sizeof session_signals / sizeof session_signals[0]; i++) {
		if (strcmp(session_signals[i].name, signal) == 0) {
			log_info("session %s: client sent SIG%s", s->id, signal);
			kill(-s->pgid, session_signals[i].signo);
			return;
		}
	}
}

/* channel_write_wontblock_function: the client's window opened again. */
static int
session_wontblock_cb(ssh_session ssh, ssh_channel channel, uint32_t bytes, void *userdata)
{
	session_dirty(userdata);
	return 0;
}

/* Fill the channel callbacks every session uses. */
static void
session_callbacks_fill(struct ssh_channel_callbacks_struct *cb)
{
	cb->channel_data_function = session_data_cb;
	cb->channel_eof_function = session_eof_cb;
	cb->channel_close_function = session_close_req_cb;
	cb->channel_signal_function = session_signal_cb;
	cb->channel_pty_request_function = session_pty_cb;
	cb->channel_shell_request_function = session_shell_cb;
	cb->channel_pty_window_change_function = session_winch_cb;
	cb->channel_exec_request_function = session_exec_cb;
	cb->channel_env_request_function = session_env_cb;
	cb->channel_subsystem_request_function = session_subsystem_cb;
	cb->channel_write_wontblock_function = session_wontblock_cb;
	/*
	 * x11-req and auth-agent-req are left without callbacks: libssh then
	 * refuses them (with a callback it would answer "success"), and
	 * conn.c audits them.
	 */
}

/* The session's turn: do what callbacks asked for, by state, and keep the data flowing. */
void
session_after_io(struct session *s)
{
	static const struct session_end left = { .status = 1 };
	bool gone = s->peer_closed || s->broken || s->channel == NULL;

	switch (s->state) {
	case SESSION_NEW:
		if (gone)
			session_end(s, &left);
		return;
	case SESSION_STARTING:
	case SESSION_PICKED:
		if (gone) {
			session_end(s, &left);
			return;
		}
		session_start(s);
		if (s->state == SESSION_MENU)
			session_pull_input(s);	/* typed ahead of the menu */
		else if (s->state == SESSION_RUNNING || s->state == SESSION_ADMIN ||
		    s->state == SESSION_HELD)
			session_after_io(s);	/* started: its first turn */
		return;
	case SESSION_REASON:
	case SESSION_MENU:
		if (gone) {
			session_end(s, &left);
			return;
		}
		session_pull_input(s);
		session_pick_after_io(s);
		return;
	case SESSION_HELD:
	case SESSION_ADMIN:
		session_admin(s)->after_io(s);
		return;
	case SESSION_RUNNING:
	case SESSION_DRAINING:
		session_running_after_io(s);
		return;
	case SESSION_CLOSING:
		return;
	}
}

/* Bytes the client can take now. */
size_t
session_room(const struct session *s)
{
	size_t room, queue;

	if (!session_chan_ok(s) || (queue = s->host->ops->room(s->host)) == 0)
		return 0;
	room = ssh_channel_window_size(s->channel);
	if (room > queue)
		room = queue;
	return room;
}

/* Run the sessions' turn on the session's connection now. */
void
session_wake(struct session *s)
{
	session_dirty(s);
	s->host->ops->wake(s->host);
}
