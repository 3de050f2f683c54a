/*
 * The running target (session.h): the data path both ways, the child's
 * descriptors and their polling, the session's timers, and the target's
 * exit.
 *
 * The child's output (PTY master, or stdout and stderr pipes; or the
 * streams of a target that runs in the loop, read through its ops with no
 * descriptor, when it says they are ready) is read only while the
 * client's channel window has room and the connection's queue takes more
 * (session_host's room); the client's input is taken from libssh only
 * while the session's input buffer has room, so libssh stops opening the
 * client's window. Every byte sent or received enters the record
 * (record.h) as it passes.
 *
 * An idle session costs no wakeups: its tick timer runs only while the
 * record holds something to flush or a time limit is set.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "session/internal.h"
#include "session/session-guard.h"
#include "session/session-pick.h"
#include "session/session.h"
#include "targets/cgroup.h"

#define SESSION_READ_MAX (32u * 1024)

static void session_fd_close_cb(uv_handle_t *h);
static void session_fd_cb(uv_poll_t *h, int status, int events);

/* Whether one of the child's descriptors or streams is still open. */
static bool
session_fd_open(const struct session_fd *sf)
{
	return sf->fd >= 0 || sf->stream;
}

/*
 * Close one of the child's descriptors and its poll handle; or forget a
 * stream, telling the target when it was its input.
 */
void
session_fd_close(struct session_fd *sf)
{
	struct session *s = sf->session;

	if (sf->stream) {
		sf->stream = false;
		if (!sf->input)
			return;
		s->input_closed = true;
		if (sf->code == 0 && s->proc != NULL && s->state != SESSION_CLOSING)
			s->proc->ops->close_input(s->proc);	/* EOF to its stdin */
		return;
	}
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

/* A descriptor's poll handle finished closing. */
static void
session_fd_close_cb(uv_handle_t *h)
{
	struct session_fd *sf = h->data;

	session_handle_closed(sf->session);
}

/* One event into the record (masked, redacted, teed); a failure is handled by the rule. */
void
session_record(struct session *s, char code, const void *buf, size_t len)
{
	int r;

	if ((r = session_guard_data(s, code, buf, len)) < 0)
		session_record_failed(s, r);
	session_tick_arm(s);	/* what entered the record is flushed and checkpointed */
}

/* The record's redacted output, for the session's watchers. */
void
session_tee(void *arg, const void *data, size_t len)
{
	struct session *s = arg;

	if (s->live != NULL)
		session_admin(s)->output(s, data, len);
}

/* The record or a time limit has work: let it out, write checkpoints, check limits. */
void
session_tick_cb(uv_timer_t *t)
{
	struct session *s = t->data;
	int r;

	if ((r = record_tick(&s->rec)) < 0)
		session_record_failed(s, r);
	session_guard_tick(s);
	session_tick_arm(s);
	s->host->ops->wake(s->host);
}

/*
 * Arm the tick for what needs it: the record's held bytes and checkpoints
 * (every SESSION_TICK_MS while there are any) and the next time limit.
 * An idle session has neither, and its timer stays stopped. A deadline
 * already armed earlier stays: steady traffic does not push it away.
 */
void
session_tick_arm(struct session *s)
{
	uv_timer_t *t = &s->tick_timer;
	uint64_t ms = UINT64_MAX, lim;

	if (s->state != SESSION_RUNNING && s->state != SESSION_DRAINING)
		return;
	if (record_pending(&s->rec))
		ms = SESSION_TICK_MS;
	if ((lim = session_guard_next_ms(s)) < ms)
		ms = lim;
	if (ms == UINT64_MAX) {
		uv_timer_stop(t);
		return;
	}
	if (uv_is_active((uv_handle_t *)t) && uv_timer_get_due_in(t) <= ms)
		return;
	uv_timer_start(t, session_tick_cb, ms, 0);
}

/* Send SIGKILL to a target that did not end after SIGHUP. */
void
session_kill_cb(uv_timer_t *t)
{
	struct session *s = t->data;

	if (s->pgid > 0 && s->state == SESSION_RUNNING) {
		log_info("session %s: target did not end after SIGHUP, sending SIGKILL", s->id);
		kill(-s->pgid, SIGKILL);
	}
	cgroup_kill(s->cgroup);
	s->host->ops->wake(s->host);
}

/* Output linger after exit: treat the output as drained unless paused. */
void
session_linger_cb(uv_timer_t *t)
{
	struct session *s = t->data;

	s->linger_over = true;
	s->host->ops->wake(s->host);
}

/* Hand buffered input to the child: bytes taken, 0 when it has no room now, -1 when gone. */
static ssize_t
session_put_input(struct session *s, struct session_fd *sf)
{
	ssize_t n;

	if (sf->stream)
		return s->proc->ops->write(s->proc, s->inbuf, s->inlen);
	do
		n = write(sf->fd, s->inbuf, s->inlen);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return n > 0 ? n : -1;
}

/* Write buffered input to the child; drop it when the child's stdin is gone. */
static void
session_write_input(struct session *s)
{
	struct session_fd *sf = s->pty ? &s->fds[0] : &s->fds[2];
	ssize_t n;

	while (s->inlen > 0) {
		if (!session_fd_open(sf) || s->input_closed) {
			s->inlen = 0;
			break;
		}
		n = session_put_input(s, sf);
		if (n > 0) {
			memmove(s->inbuf, s->inbuf + n, s->inlen - (size_t)n);
			s->inlen -= (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		/* EPIPE, EIO: the child no longer reads; drop input from now on. */
		s->input_closed = true;
		s->inlen = 0;
	}
}

/* Take client bytes for the running target, as far as the buffer has room. */
uint32_t
session_input(struct session *s, const uint8_t *data, uint32_t len)
{
	size_t take;

	if (s->input_closed || s->state != SESSION_RUNNING || s->stop != SESSION_STOP_NONE) {
		session_record(s, REC_INPUT, data, len);
		s->bytes_in += len;
		return len;
	}
	take = SESSION_INBUF - s->inlen;
	if (take > len)
		take = len;
	/* Made at the first input: a session that is only watched never needs it. */
	if (take > 0 && s->inbuf == NULL && (s->inbuf = malloc(SESSION_INBUF)) == NULL) {
		log_error("session %s: out of memory for input; the client waits", s->id);
		take = 0;
	}
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

/* Apply the last window change: the PTY, the recording, the menu and live views. */
void
session_resize_cb(uv_timer_t *t)
{
	struct session *s = t->data;
	bool sized = false;
	int r;

	if (s->state == SESSION_CLOSING)
		return;
	if (s->state == SESSION_RUNNING && s->proc != NULL) {
		s->proc->ops->resize(s->proc, s->cols, s->rows);
		sized = true;
	} else if (s->state == SESSION_RUNNING && s->fds[0].fd >= 0) {
		if ((r = pty_set_size(s->fds[0].fd, s->cols, s->rows)) < 0)
			log_warn_r(r, "session %s: resize", s->id);
		sized = true;
	}
	if (sized && (r = record_resize(&s->rec, s->cols, s->rows)) < 0)
		session_record_failed(s, r);
	session_pick_resize(s);
	if (session_admin(s) != NULL)
		session_admin(s)->resized(s);
	if (s->proc != NULL)
		session_wake(s);	/* what the resize let through (it says nothing in our calls) */
}

/* Set up polling of the child's descriptors. */
static int
session_watch_child(struct session *s)
{
	uv_loop_t *loop = s->host->broker->loop;
	size_t i;
	int r;

	if (s->proc != NULL) {
		/* No descriptors: its streams are read and written through its ops. */
		s->fds[0].stream = true;
		s->fds[0].code = REC_OUTPUT;
		s->fds[0].input = s->pty;
		if (!s->pty) {
			s->fds[1].stream = true;
			s->fds[1].code = REC_STDERR;
			s->fds[2].stream = true;
			s->fds[2].input = true;
		}
		return 0;
	}
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

/* A target running in the loop ended (its output is written and closed). */
void
session_proc_exit(void *arg, const struct pty_exit *ex)
{
	struct session *s = arg;

	if (s->state != SESSION_RUNNING)
		return;
	s->exit = *ex;
	s->state = SESSION_DRAINING;
	session_wake(s);
}

/* A target running in the loop has output waiting, or room for input again. */
void
session_proc_ready(void *arg)
{
	session_wake(arg);
}

/* The target was spawned: watch its descriptors, register it, start the clock. */
void
session_run(struct session *s)
{
	s->state = SESSION_RUNNING;
	if (session_admin(s) != NULL)
		session_admin(s)->started(s);
	if (session_watch_child(s) < 0) {
		session_record_failed(s, -EIO);
		session_stop(s, SESSION_STOP_HANGUP);
	}
	session_tick_arm(s);
}

/* ---- running ---- */

/* Whether the child's output may be read now (room in window and queue). */
static bool
session_can_output(const struct session *s)
{
	if (!session_chan_ok(s) || s->stop == SESSION_STOP_ABORT)
		return true;	/* the client is gone or we stop: drain and discard */
	return ssh_channel_window_size(s->channel) > 0 && s->host->ops->room(s->host) > 0;
}

/* Whether every output descriptor reached end of file. */
static bool
session_drained(const struct session *s)
{
	size_t i;

	for (i = 0; i < 3; i++) {
		if (s->fds[i].code != 0 && session_fd_open(&s->fds[i]))
			return false;
	}
	return true;
}

/* Take output of the child: bytes read, 0 when none waits, -1 at its end. */
static ssize_t
session_take_output(struct session_fd *sf, void *buf, size_t len)
{
	struct session *s = sf->session;
	ssize_t n;

	if (sf->stream)
		return s->proc->ops->read(s->proc, sf->code == REC_STDERR ? 1 : 0, buf, len);
	n = read(sf->fd, buf, len);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	/* End of file; EIO on a PTY master once the slave side is closed. */
	return n > 0 ? n : -1;
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

	if (session_chan_ok(s) && s->stop != SESSION_STOP_ABORT) {
		uint32_t win = ssh_channel_window_size(s->channel);

		if (win < room)
			room = win;
		if (room == 0 || s->host->ops->room(s->host) == 0)
			return -2;
	}
	if ((n = session_take_output(sf, buf, room)) == 0)
		return 0;
	if (n < 0) {
		session_fd_close(sf);
		return -1;
	}
	if (s->state == SESSION_DRAINING)
		uv_timer_start(&s->linger_timer, session_linger_cb, SESSION_LINGER_MS, 0);
	if (!session_chan_ok(s) || s->rec.state == RECORD_FAILED ||
	    s->stop == SESSION_STOP_ABORT)
		return 1;	/* nobody to send to, no recording, or stopping: dropped */
	/* Into the record, and from it to the watchers (redacted, recorded or not). */
	session_record(s, sf->code, buf, (size_t)n);
	s->bytes_out += (uint64_t)n;
	session_send(s, sf->code == REC_STDERR, buf, (size_t)n);
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
		while (session_fd_open(sf) && (r = session_read_output(sf)) == 1)
			;
		if (session_fd_open(sf) && r == -2)
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

	if (status < 0) {
		/* An error on the descriptor is its end. */
		session_fd_close(sf);
	} else {
		if ((events & UV_WRITABLE) && sf->input)
			session_write_input(s);
		if ((events & UV_READABLE) && sf->code != 0 && sf->fd >= 0)
			session_read_output(sf);
	}
	s->host->ops->wake(s->host);
}

/*
 * Take channel data libssh kept for us while our input buffer was full
 * (or before the target ran). libssh still holds it, so ssh_channel_poll
 * and the read below do not wait for the network.
 */
void
session_pull_input(struct session *s)
{
	uint8_t tmp[16384];
	size_t want;
	int avail, n;

	while (s->chan_pending && s->channel != NULL && !s->peer_closed &&
	    (s->state == SESSION_RUNNING || s->state == SESSION_DRAINING ||
	    s->state == SESSION_MENU || s->state == SESSION_REASON)) {
		if (s->state == SESSION_MENU || s->state == SESSION_REASON)
			want = 1;	/* leave what follows a choice to the target */
		else if (s->input_closed || s->state != SESSION_RUNNING ||
		    s->stop != SESSION_STOP_NONE)
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

/*
 * Read the streams of a target that runs in the loop as far as the client
 * takes them: what polling a descriptor does for a process.
 */
static void
session_proc_output(struct session *s)
{
	size_t i;

	for (i = 0; i < 2; i++) {
		while (s->fds[i].stream && s->fds[i].code != 0 &&
		    session_read_output(&s->fds[i]) == 1)
			;
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

/* SIGCHLD: collect the child's exit status if it ended. */
void
session_reap(struct session *s)
{
	struct pty_exit ex;
	int r;

	session_pick_reap(s);
	if (s->state != SESSION_RUNNING || s->child.pid <= 0)
		return;
	r = pty_wait(s->child.pid, true, &ex);
	if (r == -EAGAIN)
		return;
	if (r < 0) {
		log_warn_r(r, "session %s: wait for pid %d", s->id, (int)s->child.pid);
		memset(&ex, 0, sizeof ex);
		ex.status = 255;
	}
	s->exit = ex;
	s->state = SESSION_DRAINING;
	uv_timer_stop(&s->kill_timer);
	session_dirty(s);
}

/* ---- for admin commands and watchers ---- */

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

/*
 * A line from the broker into the recording, as a marker without its
 * "podgate: " (refusals, limits, watch patterns, a target that did not
 * start: what the guard and the end write).
 */
void
session_mark(struct session *s, const char *msg)
{
	if (strncmp(msg, "podgate: ", 9) == 0)
		msg += 9;
	session_record(s, REC_MARKER, msg, strlen(msg));
}

/* A line from the broker on stderr, marked in the recording as shown. */
void
session_notice(struct session *s, const char *msg)
{
	session_say(s, true, msg);
	session_record(s, REC_MARKER, msg, strlen(msg));
}

/* A running (or draining) target's turn: end it when its client left, move data. */
void
session_running_after_io(struct session *s)
{
	static const struct session_end none;
	struct session_end e = none;

	if ((s->peer_closed || s->broken || s->channel == NULL ||
	    !s->host->ops->alive(s->host)) && !s->signalled)
		session_stop(s, SESSION_STOP_HANGUP);
	session_pull_input(s);
	session_write_input(s);
	if (!s->pty && s->peer_eof && s->inlen == 0 && !s->chan_pending &&
	    session_fd_open(&s->fds[2]))
		session_fd_close(&s->fds[2]);	/* EOF to the child's stdin */
	if (s->proc != NULL && s->state != SESSION_CLOSING)
		session_proc_output(s);
	if (s->state == SESSION_DRAINING && !session_drained(s)) {
		if (s->linger_over && session_drain_now(s)) {
			/* drained */
		} else if (s->linger_over) {
			s->linger_over = false;
			uv_timer_start(&s->linger_timer, session_linger_cb, SESSION_LINGER_MS, 0);
		} else if (!uv_is_active((uv_handle_t *)&s->linger_timer)) {
			uv_timer_start(&s->linger_timer, session_linger_cb, SESSION_LINGER_MS, 0);
		}
	}
	if (s->state == SESSION_DRAINING && session_drained(s)) {
		/* The target ended and its output is drained. */
		e.status = s->exit.status;
		if (s->exit.signal > 0)
			e.signame = session_signame(s->exit.signal);
		e.core = s->exit.core_dumped;
		session_end(s, &e);
		return;
	}
	session_update_polls(s);
	session_tick_arm(s);
}
