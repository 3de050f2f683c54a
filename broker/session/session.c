/*
 * One session channel. Requests arrive through libssh channel callbacks,
 * which only record what was asked; the target is started, refused or
 * ended from session_after_io, at the top of a libuv callback.
 *
 * Data path: the child's output (PTY master, or stdout and stderr pipes)
 * is read only while the client's channel window has room and the
 * connection's libssh queue is below CONN_QUEUE_MAX; the client's input
 * is taken from libssh only while the session's input buffer has room,
 * so libssh stops opening the client's window. Every byte sent or
 * received is appended to the recording first.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "policy/audit.h"
#include "targets/cgroup.h"
#include "ssh/conn.h"
#include "ssh/keys.h"
#include "kube/kube.h"
#include "base/log.h"
#include "policy/policy.h"
#include "admin/live.h"
#include "session/recfile.h"
#include "policy/redact.h"
#include "storage/storage.h"
#include "session/session-pick.h"
#include "session/session.h"

#define SESSION_MAX_PER_CONN 10
#define SESSION_READ_MAX (32u * 1024)
#define SESSION_FLUSH_MS 250
#define SESSION_LINGER_MS 200
#define SESSION_KILL_MS 2000
#define SESSION_COALESCE_NS 2000000u
#define SESSION_RESIZE_MS 20		/* window changes are applied at most this often */
#define SESSION_MAX_COLS 1000		/* a terminal's largest size */
#define SESSION_MAX_ROWS 500
#define SESSION_PROMPT "Select a target (number or name, empty to quit): "

static void session_fd_cb(uv_poll_t *h, int status, int events);
static void session_close_cb(uv_handle_t *h);
static void session_fd_close_cb(uv_handle_t *h);
void session_kill(struct session *s);
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

/* The name of a signal without "SIG" ("KILL"), or "UNKNOWN". */
static const char *
session_signame(int signo)
{
	const char *n = sigabbrev_np(signo);

	return n != NULL ? n : "UNKNOWN";
}

/* Whether the channel can still carry data and requests to the client. */
static bool
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
static void
session_dirty(struct session *s)
{
	s->conn->dirty = true;
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
		    ssh_get_error(s->conn->ssh));
		s->broken = true;
		session_dirty(s);
		return -EIO;
	}
	conn_queued(s->conn, (size_t)n);
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

	f[n++] = AUDIT_STR("user", s->conn->user);
	f[n++] = AUDIT_STR("client", s->conn->client);
	f[n++] = AUDIT_STR("key_fp", s->conn->key_fp);
	if (s->id[0] != '\0')
		f[n++] = AUDIT_STR("session", s->id);
	for (i = 0; i < nextra && n < sizeof f / sizeof f[0]; i++)
		f[n++] = extra[i];
	audit_event(s->conn->server->audit, event, f, n);
}

/* Audit a refusal of something the client asked for. */
static void
session_audit_refused(struct session *s, const char *reason)
{
	struct audit_field f[] = {
		AUDIT_STR("reason", reason),
		AUDIT_STR("target", s->target),
	};

	session_audit(s, "refused", f, s->target != NULL ? 2 : 1);
	s->conn->server->counters.refused++;
	log_info("%s@%s: refused: %s", s->conn->user, s->conn->client, reason);
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
	s->conn->refusals++;
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

/* Close one of the child's descriptors and its poll handle. */
static void
session_fd_close(struct session_fd *sf)
{
	struct session *s = sf->session;

	if (sf->fd < 0)
		return;
	if (sf->inited) {
		uv_poll_stop(&sf->poll);
		uv_close((uv_handle_t *)&sf->poll, session_fd_close_cb);
		sf->inited = false;
	}
	close(sf->fd);
	sf->fd = -1;
	sf->events = 0;
	if (sf->input)
		s->input_closed = true;
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
	uv_close((uv_handle_t *)&s->flush_timer, session_close_cb);
	uv_close((uv_handle_t *)&s->linger_timer, session_close_cb);
	uv_close((uv_handle_t *)&s->kill_timer, session_close_cb);
	uv_close((uv_handle_t *)&s->resize_timer, session_close_cb);
}

/* Free the session once its last handle is closed. */
void
session_handle_closed(struct session *s)
{
	struct conn *c = s->conn;
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
			server_cgroup_later(c->server, s->cgroup);	/* still emptying */
		else
			free(s->cgroup);
		s->cgroup = NULL;
	}
	if (s->rec != NULL)
		rec_writer_close(s->rec);
	recfile_close(s->rf, &c->server->loop);
	storage_done(s->ship);	/* the shipper owns it now */
	for (i = 0; i < s->nenv; i++)
		free(s->env[i]);
	policy_free_list(s->menu);
	free(s->exec);
	free(s->target);
	free(s->canonical);
	target_free_pairs(s->where_extra);
	target_free_pairs(s->who_extra);
	free(s->command);
	free(s->rec_path);
	free(s->inbuf);
	if (s->config != NULL)
		config_unref(s->config);
	live_session_gone(s);
	target_free_pairs(s->what_extra);
	TAILQ_REMOVE(&c->sessions, s, entry);
	free(s);
	conn_session_gone(c, NULL);
}

/* A session timer finished closing. */
static void
session_close_cb(uv_handle_t *h)
{
	session_handle_closed(h->data);
}

/* A descriptor's poll handle finished closing. */
static void
session_fd_close_cb(uv_handle_t *h)
{
	struct session_fd *sf = h->data;

	session_handle_closed(sf->session);
}

/* End a session that never ran a target: tell the client why, exit 1. */
void
session_refuse(struct session *s, const char *reason, const char *msg, bool to_stdout)
{
	session_audit_refused(s, reason);
	if (msg != NULL)
		session_say(s, !to_stdout, msg);
	session_close_channel(s, 1, NULL, false);
	s->finished = true;
	session_release(s);
}

/* Drop the recording and go on without one (on_recording_failure: continue). */
static void
session_unrecord(struct session *s)
{
	rec_writer_abandon(s->rec);
	s->rec = NULL;
	recfile_close(s->rf, &s->conn->server->loop);
	s->rf = NULL;
	s->unrecorded = true;
}

/* Recording failed mid-session: end it (no session without a recording). */
void
session_rec_fail(struct session *s, int r)
{
	if (s->rec_failed || s->unrecorded)
		return;
	if (s->rule != NULL && s->rule->rec_failure_continue) {
		/* The rule chose the session over its record. */
		log_error_r(r, "session %s: recording %s failed; the session goes on unrecorded "
		    "(on_recording_failure: continue)", s->id, s->rec_path);
		struct audit_field f[] = {
			AUDIT_STR("reason", "recording failed; session continues unrecorded"),
			AUDIT_STR("recording", s->rec_path),
			AUDIT_STR("error", strerror(-r)),
		};
		session_audit(s, "recording_failed", f, 3);
		session_unrecord(s);
		return;
	}
	s->rec_failed = true;
	log_error_r(r, "session %s: recording %s failed; closing the session", s->id,
	    s->rec_path);
	{
		struct audit_field f[] = {
			AUDIT_STR("reason", "session recording failed; session closed"),
			AUDIT_STR("recording", s->rec_path),
			AUDIT_STR("error", strerror(-r)),
		};
		session_audit(s, "recording_failed", f, 3);
	}
	session_say(s, true, "podgate: session recording failed; session closed");
	session_kill(s);
}

/* Append data to the recording; a failure ends the session. */
static void
session_record(struct session *s, char code, const void *buf, size_t len)
{
	int r;

	if ((r = session_guard_data(s, code, buf, len)) < 0)
		session_rec_fail(s, r);
}

/* Flush the recording and write a checkpoint when one is due. */
static void
session_flush_cb(uv_timer_t *t)
{
	struct session *s = t->data;
	int r;

	session_guard_tick(s);
	if (s->rec != NULL && !s->rec_failed) {
		/* A checkpoint went to the file: have it reach the disk, off the loop. */
		if (!rec_writer_quiet(s->rec) && (r = rec_writer_tick(s->rec, 0)) != 0) {
			if (r < 0)
				session_rec_fail(s, r);
			else {
				recfile_sync(s->rf, &s->conn->server->loop);
				storage_checkpoint(s->ship, rec_writer_written(s->rec));
			}
		}
		/* (on_recording_failure: continue may just have dropped the file) */
		if (!s->rec_failed && s->rf != NULL && s->rf->err < 0)
			session_rec_fail(s, s->rf->err);
	}
	conn_after_io(s->conn);
}

/* Send SIGKILL to a target that did not end after SIGHUP. */
static void
session_kill_cb(uv_timer_t *t)
{
	struct session *s = t->data;

	if (s->pgid > 0 && !s->exited) {
		log_info("session %s: target did not end after SIGHUP, sending SIGKILL", s->id);
		kill(-s->pgid, SIGKILL);
	}
	cgroup_kill(s->cgroup);
	conn_after_io(s->conn);
}

/* Output linger after exit: treat the output as drained unless paused. */
static void
session_linger_cb(uv_timer_t *t)
{
	struct session *s = t->data;

	s->linger_over = true;
	conn_after_io(s->conn);
}

/* End the target: SIGHUP to its process group, SIGKILL if it lingers. */
void
session_kill(struct session *s)
{
	if (!s->killed && s->proc != NULL && !s->exited) {
		s->killed = true;
		s->proc->ops->hangup(s->proc);
		return;
	}
	if (s->killed || s->pgid <= 0)
		return;
	s->killed = true;
	if (!s->exited) {
		kill(-s->pgid, SIGHUP);
		kill(-s->pgid, SIGCONT);
		uv_timer_start(&s->kill_timer, session_kill_cb, SESSION_KILL_MS, 0);
	}
}

/* Make a session and its channel for a channel open request. */
ssh_channel
session_open(struct conn *c)
{
	struct session *s = NULL;
	size_t i;

	if (c->state != CONN_OPEN || c->server->stopping)
		return NULL;
	if (c->nsessions >= SESSION_MAX_PER_CONN) {
		struct audit_field f[] = {
			AUDIT_STR("user", c->user),
			AUDIT_STR("client", c->client),
			AUDIT_STR("reason", "too many sessions on one connection"),
		};
		audit_event(c->server->audit, "refused", f, 3);
		c->refusals++;
		return NULL;
	}
	if ((s = calloc(1, sizeof *s)) == NULL ||
	    (s->inbuf = malloc(SESSION_INBUF)) == NULL)
		goto fail;
	s->conn = c;
	s->pgid = -1;
	s->child.master = s->child.in = s->child.out = s->child.err = -1;
	s->cols = 80;
	s->rows = 24;
	for (i = 0; i < 3; i++) {
		s->fds[i].session = s;
		s->fds[i].fd = -1;
	}
	if ((s->channel = ssh_channel_new(c->ssh)) == NULL)
		goto fail;
	s->cb.userdata = s;
	ssh_callbacks_init(&s->cb);
	session_callbacks_fill(&s->cb);
	if (ssh_set_channel_callbacks(s->channel, &s->cb) != SSH_OK) {
		ssh_channel_free(s->channel);
		goto fail;
	}
	uv_timer_init(&c->server->loop, &s->flush_timer);
	uv_timer_init(&c->server->loop, &s->linger_timer);
	uv_timer_init(&c->server->loop, &s->kill_timer);
	uv_timer_init(&c->server->loop, &s->resize_timer);
	s->flush_timer.data = s->linger_timer.data = s->kill_timer.data = s;
	s->resize_timer.data = s;
	s->handles = 4;
	TAILQ_INSERT_TAIL(&c->sessions, s, entry);
	c->nsessions++;
	return s->channel;
fail:
	log_error("out of memory opening a session for %s", c->client);
	if (s != NULL)
		free(s->inbuf);
	free(s);
	return NULL;
}

/* The session that owns channel. */
struct session *
session_find(struct conn *c, ssh_channel channel)
{
	struct session *s;

	TAILQ_FOREACH(s, &c->sessions, entry) {
		if (s->channel == channel)
			return s;
	}
	return NULL;
}

/* A "break" request: pass it to the PTY when the target has one. */
bool
session_break(struct session *s)
{
	if (!s->pty || s->state != SESSION_RUNNING || s->fds[0].fd < 0)
		return false;
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

/* Write buffered input to the child; drop it when the child's stdin is gone. */
static void
session_write_input(struct session *s)
{
	struct session_fd *sf = s->pty ? &s->fds[0] : &s->fds[2];
	ssize_t n;

	while (s->inlen > 0) {
		if (sf->fd < 0 || s->input_closed) {
			s->inlen = 0;
			break;
		}
		n = write(sf->fd, s->inbuf, s->inlen);
		if (n > 0) {
			memmove(s->inbuf, s->inbuf + n, s->inlen - (size_t)n);
			s->inlen -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* EPIPE, EIO: the child no longer reads; drop input from now on. */
		s->input_closed = true;
		s->inlen = 0;
	}
}

/* Take client bytes for the running target, as far as the buffer has room. */
static uint32_t
session_input(struct session *s, const uint8_t *data, uint32_t len)
{
	size_t take;

	if (s->admin != NULL)
		return live_admin_input(s, data, len);
	if (s->input_closed || s->exited || s->killed || s->rec_failed) {
		session_record(s, REC_INPUT, data, len);
		s->bytes_in += len;
		return len;
	}
	take = SESSION_INBUF - s->inlen;
	if (take > len)
		take = len;
	if (take > 0) {
		memcpy(s->inbuf + s->inlen, data, take);
		s->inlen += take;
		s->bytes_in += take;
		session_record(s, REC_INPUT, data, take);
		session_write_input(s);
	}
	s->chan_pending = take < len;
	session_dirty(s);
	return (uint32_t)take;
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
static uint32_t
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
		s->chan_pending = true;	/* kept by libssh until the target runs */
		return 0;
	case SESSION_MENU:
		return (int)session_menu_input(s, data, len);
	case SESSION_RUNNING:
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

/* Apply the last window change: the PTY, the recording, the menu and live views. */
static void
session_resize_cb(uv_timer_t *t)
{
	struct session *s = t->data;
	int r;

	if (s->state == SESSION_CLOSING)
		return;
	if (s->state == SESSION_RUNNING && s->proc != NULL) {
		s->proc->ops->resize(s->proc, s->cols, s->rows);
		if (s->rec != NULL && !s->rec_failed &&
		    (r = session_guard_resize(s)) < 0)
			session_rec_fail(s, r);
	} else if (s->state == SESSION_RUNNING && s->fds[0].fd >= 0) {
		if ((r = pty_set_size(s->fds[0].fd, s->cols, s->rows)) < 0)
			log_warn_r(r, "session %s: resize", s->id);
		if (s->rec != NULL && !s->rec_failed &&
		    (r = session_guard_resize(s)) < 0)
			session_rec_fail(s, r);
	}
	session_pick_resize(s);
	live_resize(s);
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
		s->conn->refusals++;
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

	if (signal == NULL || s->pgid <= 0 || s->exited)
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

/* ---- starting a target ---- */

/* Open the recording file and write its header (before the target starts). */
int
session_open_recording(struct session *s)
{
	const struct config *c = s->config;
	struct rec_writer_opts o = {
		.coalesce_ns = SESSION_COALESCE_NS,
		.sign_key = s->conn->server->sign_key,
	};
	struct rec_header h;
	int r;

	if (s->id[0] == '\0' && (r = rec_uuid7(s->id)) < 0)
		return r;	/* a request held for approval already has its id */
	if ((r = keys_mkdirs(c->recordings, 0700)) < 0) {
		log_error_r(r, "cannot make %s", c->recordings);
		return r;
	}
	if (asprintf(&s->rec_path, "%s/%s.rec", c->recordings, s->id) < 0) {
		s->rec_path = NULL;
		return -ENOMEM;
	}
	if ((r = recfile_create(s->rec_path, &s->rf)) < 0) {
		log_error_r(r, "cannot create %s", s->rec_path);
		return r;
	}
	memset(&h, 0, sizeof h);
	h.session_id = s->id;
	h.cols = s->pty ? s->cols : 0;
	h.rows = s->pty ? s->rows : 0;
	h.term = s->pty ? s->term : NULL;
	h.pty = s->pty;
	h.user = s->conn->user;
	h.key_fp = s->conn->key_fp;
	h.client = s->conn->client;
	h.target_kind = (char *)s->ops->kind;
	h.target = s->target;
	h.command = session_guard_command(s);
	h.where_extra = (const char *const *)s->where_extra;
	h.who_extra = (const char *const *)s->who_extra;
	h.what_extra = (const char *const *)s->what_extra;
	h.what_extra = session_guard_header(s, h.what_extra);
	if ((r = rec_writer_open(&s->rec, s->rf->fd, &h, &o)) < 0 ||
	    (r = rec_writer_flush(s->rec)) < 0) {
		log_error_r(r, "cannot write %s", s->rec_path);
		return r;
	}
	s->ship = storage_track(s->conn->server->storage, s->id, s->rec_path);
	return 0;
}

/* Set up polling of the child's descriptors. */
static int
session_watch_child(struct session *s)
{
	uv_loop_t *loop = &s->conn->server->loop;
	size_t i;
	int r;

	if (s->pty) {
		s->fds[0].fd = s->child.master;
		s->fds[0].code = REC_OUTPUT;
		s->fds[0].input = true;
	} else {
		s->fds[0].fd = s->child.out;
		s->fds[0].code = REC_OUTPUT;
		s->fds[1].fd = s->child.err;
		s->fds[1].code = REC_STDERR;
		s->fds[2].fd = s->child.in;
		s->fds[2].input = true;
	}
	/* The session owns these descriptors now. */
	s->child.master = s->child.in = s->child.out = s->child.err = -1;
	for (i = 0; i < 3; i++) {
		if (s->fds[i].fd < 0)
			continue;
		if ((r = uv_poll_init(loop, &s->fds[i].poll, s->fds[i].fd)) < 0) {
			log_error("session %s: poll: %s", s->id, uv_strerror(r));
			return r;
		}
		s->fds[i].poll.data = &s->fds[i];
		s->fds[i].inited = true;
		s->handles++;
	}
	return 0;
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
	session_refuse(s, "no target given", NULL, true);
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

/* Check the target, open the recording, start the child. */
static void
session_start_target(struct session *s, const struct cfg_user *u)
{
	char msg[1024];
	int r;

	s->ops = target_find(s->target);
	if (s->ops != NULL && s->ops->resolve != NULL) {
		char why[400];

		r = s->ops->resolve(s->config, s->target, &s->canonical, why, sizeof why);
		if (r == -ENOENT) {
			snprintf(msg, sizeof msg, "podgate: access to '%s' denied: %s", s->target,
			    why);
			session_refuse(s, "no such target", msg, false);
			return;
		}
		if (r < 0) {
			free(s->target);
			s->target = NULL;
			snprintf(msg, sizeof msg, "podgate: %s", why);
			session_refuse(s, why, msg, false);
			return;
		}
	} else if (!policy_target_name_ok(s->target)) {
		free(s->target);
		s->target = NULL;
		session_refuse(s, "invalid target name", "podgate: invalid target name", false);
		return;
	}
	if ((s->rule = policy_match(s->config, u, s->canonical != NULL ? s->canonical :
	    s->target)) == NULL) {
		char hint[600];

		session_container_hint(s, u, hint, sizeof hint);
		snprintf(msg, sizeof msg, "podgate: access to '%s' denied: no rule grants it%s",
		    s->target, hint);
		session_refuse(s, "no rule grants it", msg, false);
		return;
	}
	if (s->ops == NULL || !s->ops->exists(s->config, s->target)) {
		snprintf(msg, sizeof msg, "podgate: access to '%s' denied: no such target",
		    s->target);
		session_refuse(s, "no such target", msg, false);
		return;
	}
	if (session_guard_begin(s, u) != 0)
		return;		/* refused, or the reason is asked first */
	session_start_run(s, u);
}

/* A target running in the loop ended (its output is written and closed). */
static void
session_proc_exit(void *arg, const struct pty_exit *ex)
{
	struct session *s = arg;

	if (s->exited)
		return;
	s->exited = true;
	s->exit = *ex;
	session_wake(s);
}

/* Describe the target, open the recording, start the child (the guard let it). */
void
session_start_run(struct session *s, const struct cfg_user *u)
{
	struct target_request req;
	char msg[512];
	int r;

	if (live_approval_hold(s))
		return;		/* waits for an approver (live.c) */
	/* Start nothing that could not finish; the reserve stays for running sessions. */
	if (!server_fds_room(s->conn->server, SERVER_FDS_START)) {
		log_warn("session %s: refused: open file limit nearly reached", s->id);
		session_refuse(s, "open file limit reached", "podgate: the broker is at its "
		    "capacity (open file limit); session refused, try again later", false);
		return;
	}
	memset(&req, 0, sizeof req);
	req.user = s->conn->user;
	req.target = s->target;
	req.command = s->command;
	req.pty = s->pty;
	req.term = s->term;
	req.cols = s->cols;
	req.rows = s->rows;
	req.env = s->env;
	req.nenv = s->nenv;
	req.account = u;
	req.rule = s->rule;
	req.canonical = s->canonical != NULL ? s->canonical : s->target;
	if (s->ops->describe != NULL &&
	    s->ops->describe(s->config, &req, &s->where_extra, &s->who_extra) < 0) {
		session_refuse(s, "out of memory", "podgate: internal error", false);
		return;
	}
	if ((r = session_open_recording(s)) < 0) {
		snprintf(msg, sizeof msg, "session recording failed: %s", strerror(-r));
		if (!s->rule->rec_failure_continue) {
			session_refuse(s, msg, "podgate: session recording failed; session refused",
			    false);
			return;
		}
		/* on_recording_failure: continue: the session runs unrecorded. */
		log_error("session %s: %s; going on unrecorded (on_recording_failure: continue)",
		    s->id, msg);
		{
			const char *why = msg;
			struct audit_field f[] = {
				AUDIT_STR("reason", why),
				AUDIT_STR("target", s->target),
			};
			session_audit(s, "recording_failed", f, 2);
		}
		session_unrecord(s);
	}
	req.session_id = s->id;
	req.cgroup_procs_fd = -1;
	req.loop = &s->conn->server->loop;
	req.proc = &s->proc;
	req.on_exit = session_proc_exit;
	req.exit_arg = s;
	if (s->ops->host_cgroup && s->conn->server->cgroups != NULL &&
	    (r = cgroup_session_new(s->conn->server->cgroups, s->id, &s->cgroup,
	    &req.cgroup_procs_fd)) < 0)
		log_warn_r(r, "session %s: no cgroup; what it leaves behind may outlive it", s->id);
	r = s->ops->spawn(s->config, &req, &s->child);
	if (req.cgroup_procs_fd >= 0)
		close(req.cgroup_procs_fd);
	if (r < 0) {
		snprintf(msg, sizeof msg, "podgate: cannot start target '%s': %s", s->target,
		    strerror(-r));
		session_record(s, REC_MARKER, msg + 9, strlen(msg + 9));
		session_guard_flush(s);
		if (s->rec != NULL)
			rec_writer_exit(s->rec, 1, NULL);
		session_refuse(s, "target failed to start", msg, false);
		return;
	}
	s->pgid = s->child.pid;
	s->started = true;
	s->start_mono = uv_now(&s->conn->server->loop);
	{
		struct audit_field f[18] = {
			AUDIT_STR("target", s->target),
			AUDIT_STR("kind", s->ops->kind),
			AUDIT_SECRET("command", s->command, s->config),
			AUDIT_NUM("pty", s->pty),
			AUDIT_STR("recording", s->rec_path),
			AUDIT_NUM("pid", s->child.pid),
		};
		size_t n = 6;
		char **p;

		if (s->guard.reason != NULL)
			f[n++] = AUDIT_SECRET("reason", s->guard.reason_given, s->config);

		for (p = s->where_extra; p != NULL && p[0] != NULL && p[1] != NULL &&
		    n < 12; p += 2)
			f[n++] = AUDIT_STR(p[0], p[1]);
		for (p = s->who_extra; p != NULL && p[0] != NULL && p[1] != NULL &&
		    n < 18; p += 2)
			f[n++] = AUDIT_STR(p[0], p[1]);
		session_audit(s, "session_start", f, n);
	}
	log_info("session %s: %s@%s -> %s%s%s (pid %d, %s)", s->id, s->conn->user,
	    s->conn->client, s->target, s->command != NULL ? ": " : "",
	    s->command != NULL ? session_guard_command(s) : "", (int)s->child.pid,
	    s->pty ? "pty" : "pipes");
	s->state = SESSION_RUNNING;
	live_session_start(s);
	if (session_watch_child(s) < 0) {
		session_rec_fail(s, -EIO);
		session_kill(s);
	}
	uv_timer_start(&s->flush_timer, session_flush_cb, SESSION_FLUSH_MS, SESSION_FLUSH_MS);
}

/* exec or shell was accepted: decide what runs. */
static void
session_start(struct session *s)
{
	const struct cfg_user *u;
	int r;

	if (s->pick != NULL)
		return;		/* a pick is in; the picker is still ending */
	if (s->config == NULL)
		s->config = config_ref(s->conn->server->config);
	u = config_find_user(s->config, s->conn->user);
	if (u == NULL) {
		session_refuse(s, "user no longer configured",
		    "podgate: access denied: user no longer configured", false);
		return;
	}
	if (s->state == SESSION_STARTING && s->exec != NULL &&
	    (r = session_parse_exec(s)) < 0) {
		session_refuse(s, "out of memory", "podgate: internal error", false);
		return;
	}
	if (s->conn->peer && !live_admin_wants(s)) {
		session_refuse(s, "peers may run admin commands only",
		    "podgate: peers may run admin commands only", false);
		return;
	}
	if (s->target == NULL && s->state == SESSION_PICKED) {
		session_refuse(s, "no target selected", "podgate: no target selected", false);
		return;
	}
	if (s->target == NULL) {
		if (!s->pty) {
			session_list_targets(s, u);
			return;
		}
		/* Clusters configured: the pod picker (session-pick.h). */
		if ((r = session_pick_start(s, u)) <= 0) {
			if (r < 0)
				session_refuse(s, "cannot start the pod picker",
				    "podgate: internal error", false);
			else
				s->state = SESSION_MENU;
			return;
		}
		s->menu = policy_targets(s->config, u);
		if (s->menu == NULL || s->menu[0] == NULL) {
			session_refuse(s, "no targets for user",
			    "podgate: no targets are available to you", false);
			return;
		}
		s->state = SESSION_MENU;
		session_menu_show(s);
		return;
	}
	if (live_admin_wants(s)) {
		live_admin_start(s, u);
		return;
	}
	session_start_target(s, u);
}

/* ---- running ---- */

/* Whether the child's output may be read now (room in window and queue). */
static bool
session_can_output(const struct session *s)
{
	if (!session_chan_ok(s) || s->aborted)
		return true;	/* the client is gone or we stop: drain and discard */
	return ssh_channel_window_size(s->channel) > 0 && conn_can_send(s->conn);
}

/* Whether every output descriptor reached end of file. */
static bool
session_drained(const struct session *s)
{
	size_t i;

	for (i = 0; i < 3; i++) {
		if (s->fds[i].code != 0 && s->fds[i].fd >= 0)
			return false;
	}
	return true;
}

/*
 * Read one chunk of the child's output and forward it. Returns 1 when
 * bytes were read, 0 when none are waiting, -1 at end of file, and -2
 * when the client has no room for more now.
 */
static int
session_read_output(struct session_fd *sf)
{
	static uint8_t buf[SESSION_READ_MAX];
	struct session *s = sf->session;
	size_t room = SESSION_READ_MAX;
	ssize_t n;

	if (session_chan_ok(s) && !s->aborted) {
		uint32_t win = ssh_channel_window_size(s->channel);

		if (win < room)
			room = win;
		if (room == 0 || !conn_can_send(s->conn))
			return -2;
	}
	n = read(sf->fd, buf, room);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n <= 0) {
		/* End of file; EIO on a PTY master once the slave side is closed. */
		session_fd_close(sf);
		return -1;
	}
	if (s->exited)
		uv_timer_start(&s->linger_timer, session_linger_cb, SESSION_LINGER_MS, 0);
	if (!session_chan_ok(s) || s->rec_failed || s->aborted)
		return 1;	/* nobody to send to, no recording, or stopping: dropped */
	session_record(s, sf->code, buf, (size_t)n);
	s->bytes_out += (uint64_t)n;
	session_send(s, sf->code == REC_STDERR, buf, (size_t)n);
	/*
	 * With a recording, watchers get the redacted bytes from the guard's
	 * drain; without one, each read is redacted on its own.
	 */
	if (s->rec == NULL && s->live != NULL) {
		char *red = NULL;
		size_t rlen = 0;

		if (redact_string(s->config, buf, (size_t)n, &red, &rlen) == 0)
			live_output(s, red, rlen);
		free(red);
	}
	return 1;
}

/*
 * The child exited and its output went quiet (something it left behind
 * may hold the descriptors open): read what is waiting now, then stop
 * reading. Returns false when the client has no room yet.
 */
static bool
session_drain_now(struct session *s)
{
	size_t i;
	int r = 0;

	for (i = 0; i < 3; i++) {
		struct session_fd *sf = &s->fds[i];

		if (sf->code == 0)
			continue;
		while (sf->fd >= 0 && (r = session_read_output(sf)) == 1)
			;
		if (sf->fd >= 0 && r == -2)
			return false;
	}
	for (i = 0; i < 3; i++) {
		if (s->fds[i].code != 0)
			session_fd_close(&s->fds[i]);
	}
	return true;
}

/* A child descriptor is readable or writable. */
static void
session_fd_cb(uv_poll_t *h, int status, int events)
{
	struct session_fd *sf = h->data;
	struct session *s = sf->session;
	struct conn *c = s->conn;

	if (status < 0) {
		/* An error on the descriptor is its end. */
		session_fd_close(sf);
	} else {
		if ((events & UV_WRITABLE) && sf->input)
			session_write_input(s);
		if ((events & UV_READABLE) && sf->code != 0 && sf->fd >= 0)
			session_read_output(sf);
	}
	conn_after_io(c);
}

/*
 * Take channel data libssh kept for us while our input buffer was full
 * (or before the target ran). libssh still holds it, so ssh_channel_poll
 * and the read below do not wait for the network.
 */
static void
session_pull_input(struct session *s)
{
	uint8_t tmp[16384];
	size_t want;
	int avail, n;

	while (s->chan_pending && s->channel != NULL && !s->peer_closed &&
	    (s->state == SESSION_RUNNING || s->state == SESSION_MENU ||
	    s->state == SESSION_REASON)) {
		if (s->state == SESSION_MENU || s->state == SESSION_REASON)
			want = 1;	/* leave what follows a choice to the target */
		else if (s->input_closed || s->exited || s->killed || s->rec_failed)
			want = sizeof tmp;
		else
			want = SESSION_INBUF - s->inlen;
		if (want == 0)
			return;
		if (want > sizeof tmp)
			want = sizeof tmp;
		avail = ssh_channel_poll(s->channel, 0);
		if (avail <= 0) {
			s->chan_pending = false;
			return;
		}
		if (want > (size_t)avail)
			want = (size_t)avail;
		n = ssh_channel_read_nonblocking(s->channel, tmp, (uint32_t)want, 0);
		if (n <= 0) {
			s->chan_pending = false;
			return;
		}
		if (s->state == SESSION_MENU)
			session_menu_input(s, tmp, (uint32_t)n);
		else if (s->state == SESSION_REASON)
			session_guard_reason_input(s, tmp, (uint32_t)n);
		else
			session_input(s, tmp, (uint32_t)n);
		s->chan_pending = n < avail;
	}
}

/* Recompute which child descriptors to poll. */
static void
session_update_polls(struct session *s)
{
	bool out = session_can_output(s);
	size_t i;
	int ev;

	for (i = 0; i < 3; i++) {
		struct session_fd *sf = &s->fds[i];

		if (sf->fd < 0 || !sf->inited)
			continue;
		ev = 0;
		if (sf->code != 0 && out)
			ev |= UV_READABLE;
		if (sf->input && s->inlen > 0 && !s->input_closed)
			ev |= UV_WRITABLE;
		if (ev == sf->events)
			continue;
		if (ev != 0)
			uv_poll_start(&sf->poll, ev, session_fd_cb);
		else
			uv_poll_stop(&sf->poll);
		sf->events = ev;
	}
}

/* The target ended and its output is drained: record, report, audit. */
static void
session_finish(struct session *s)
{
	const char *signame = NULL;
	uint64_t dur;
	int r, status = s->exit.status;

	live_session_end(s);
	if (s->exit.signal > 0)
		signame = session_signame(s->exit.signal);
	session_guard_flush(s);
	if (s->rec != NULL) {
		if (!s->rec_failed && (r = rec_writer_exit(s->rec, signame ? -1 : status, signame)) < 0)
			session_rec_fail(s, r);
		r = rec_writer_close(s->rec);
		s->rec = NULL;
		if (r < 0 && !s->rec_failed)
			log_error_r(r, "session %s: closing recording %s", s->id, s->rec_path);
		recfile_close(s->rf, &s->conn->server->loop);
		s->rf = NULL;
	}
	/* Nothing the session started outlives it: its group, and its cgroup. */
	if (s->pgid > 0)
		kill(-s->pgid, SIGHUP);
	cgroup_kill(s->cgroup);
	session_close_channel(s, status, signame, s->exit.core_dumped);
	dur = uv_now(&s->conn->server->loop) - s->start_mono;
	{
		struct audit_field f[10];
		size_t n = 0;

		f[n++] = AUDIT_STR("target", s->target);
		f[n++] = AUDIT_STR("recording", s->rec_path);
		f[n++] = AUDIT_NUM("bytes_in", s->bytes_in);
		f[n++] = AUDIT_NUM("bytes_out", s->bytes_out);
		if (signame != NULL)
			f[n++] = AUDIT_STR("exit_signal", signame);
		else
			f[n++] = AUDIT_NUM("exit_status", status);
		f[n++] = AUDIT_NUM("duration_ms", dur);
		if (s->rec_failed)
			f[n++] = AUDIT_STR("error", "recording failed");
		else if (s->unrecorded)
			f[n++] = AUDIT_STR("error", "unrecorded (on_recording_failure: continue)");
		session_audit(s, "session_end", f, n);
	}
	{
		struct metrics_counters *k = &s->conn->server->counters;

		k->sessions_ended[s->rec_failed ? METRICS_RECORDING_FAILED : s->killed ?
		    METRICS_KILLED : signame != NULL ? METRICS_SIGNAL : METRICS_EXIT]++;
		k->bytes_in += s->bytes_in;
		k->bytes_out += s->bytes_out;
	}
	log_info("session %s: ended (%s %d), %llu bytes in, %llu out", s->id,
	    signame != NULL ? "signal" : "status",
	    signame != NULL ? s->exit.signal : status,
	    (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out);
	s->finished = true;
	session_release(s);
}

/* Do what callbacks asked for and keep the data flowing. */
void
session_after_io(struct session *s)
{
	switch (s->state) {
	case SESSION_NEW:
		if (s->peer_closed || s->broken || s->channel == NULL) {
			session_close_channel(s, 1, NULL, false);
			session_release(s);
		}
		return;
	case SESSION_STARTING:
	case SESSION_PICKED:
		if (s->peer_closed || s->broken || s->channel == NULL) {
			session_close_channel(s, 1, NULL, false);
			session_release(s);
			return;
		}
		session_start(s);
		if (s->state == SESSION_MENU)
			session_pull_input(s);	/* typed ahead of the menu */
		if (s->state == SESSION_RUNNING)
			break;
		return;
	case SESSION_REASON:
	case SESSION_MENU:
		if (s->peer_closed || s->broken || s->channel == NULL) {
			session_close_channel(s, 1, NULL, false);
			session_release(s);
			return;
		}
		session_pull_input(s);
		session_pick_after_io(s);
		return;
	case SESSION_RUNNING:
		break;
	case SESSION_CLOSING:
		return;
	}

	/* Running. */
	if (s->admin != NULL) {
		live_admin_after_io(s);
		return;
	}
	if ((s->peer_closed || s->broken || s->channel == NULL ||
	    s->conn->state == CONN_DEAD || s->rec_failed) && !s->killed)
		session_kill(s);
	session_pull_input(s);
	session_write_input(s);
	if (!s->pty && s->peer_eof && s->inlen == 0 && !s->chan_pending &&
	    s->fds[2].fd >= 0)
		session_fd_close(&s->fds[2]);	/* EOF to the child's stdin */
	if (s->exited && !session_drained(s)) {
		if (s->linger_over && session_drain_now(s)) {
			/* drained */
		} else if (s->linger_over) {
			s->linger_over = false;
			uv_timer_start(&s->linger_timer, session_linger_cb, SESSION_LINGER_MS, 0);
		} else if (!uv_is_active((uv_handle_t *)&s->linger_timer)) {
			uv_timer_start(&s->linger_timer, session_linger_cb, SESSION_LINGER_MS, 0);
		}
	}
	if (s->exited && session_drained(s)) {
		session_finish(s);
		return;
	}
	session_update_polls(s);
}

/* SIGCHLD: collect the child's exit status if it ended. */
void
session_reap(struct session *s)
{
	struct pty_exit ex;
	int r;

	session_pick_reap(s);
	if (!s->started || s->exited || s->child.pid <= 0)
		return;
	r = pty_wait(s->child.pid, true, &ex);
	if (r == -EAGAIN)
		return;
	if (r < 0) {
		log_warn_r(r, "session %s: wait for pid %d", s->id, (int)s->child.pid);
		memset(&ex, 0, sizeof ex);
		ex.status = 255;
	}
	s->exited = true;
	s->exit = ex;
	uv_timer_stop(&s->kill_timer);
	session_dirty(s);
}

/* The connection is going away: forget the channel and end the target. */
void
session_detach(struct session *s)
{
	if (s->channel != NULL) {
		ssh_remove_channel_callbacks(s->channel, &s->cb);
		s->channel = NULL;	/* libssh frees it with the session */
	}
	s->peer_closed = true;
	if (s->state != SESSION_CLOSING && s->state != SESSION_RUNNING)
		session_release(s);
	else
		session_kill(s);
}

/* The shutdown grace is over: end the target; the exit is still reported. */
void
session_abort(struct session *s)
{
	if (s->state == SESSION_RUNNING) {
		session_say(s, true, "podgate: the broker is shutting down");
		s->aborted = true;
		session_kill(s);
	} else if (s->state != SESSION_CLOSING) {
		session_refuse(s, "broker shutting down", "podgate: the broker is shutting down",
		    false);
	}
}

/* ---- for live.c ---- */

/* Record and send bytes of an admin command or a watcher's view. */
size_t
session_write(struct session *s, bool err, const void *buf, size_t len)
{
	int n;

	if (len == 0)
		return 0;
	if ((n = session_send(s, err, buf, len)) <= 0)
		return 0;
	session_record(s, err ? REC_STDERR : REC_OUTPUT, buf, (size_t)n);
	s->bytes_out += (uint64_t)n;
	return (size_t)n;
}

/* Bytes the client can take now. */
size_t
session_room(const struct session *s)
{
	size_t room;

	if (!session_chan_ok(s) || !conn_can_send(s->conn))
		return 0;
	room = ssh_channel_window_size(s->channel);
	if (room > CONN_QUEUE_MAX - s->conn->queued)
		room = CONN_QUEUE_MAX - s->conn->queued;
	return room;
}

/* A line from the broker on stderr, marked in the recording. */
void
session_notice(struct session *s, const char *msg)
{
	session_say(s, true, msg);
	if (s->rec != NULL && !s->rec_failed)
		session_record(s, REC_MARKER, msg, strlen(msg));
}

/* Open the recording of a session that runs no target of its own. */
int
session_record_start(struct session *s)
{
	return session_open_recording(s);
}

/* End a session without a child: exit status, recording sealed, audited. */
void
session_end_status(struct session *s, int status)
{
	if (s->state == SESSION_CLOSING)
		return;
	memset(&s->exit, 0, sizeof s->exit);
	s->exit.status = status;
	s->exited = true;
	session_finish(s);
}

/* Refuse before anything runs. */
void
session_refuse_msg(struct session *s, const char *reason, const char *msg)
{
	session_refuse(s, reason, msg, false);
}

/* End the target on someone's word. */
void
session_terminate(struct session *s, const char *msg)
{
	session_notice(s, msg);
	session_kill(s);
	session_dirty(s);
}

/* Have conn_after_io run for the session's connection. */
void
session_wake(struct session *s)
{
	session_dirty(s);
	conn_after_io(s->conn);
}
