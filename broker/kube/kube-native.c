/*
 * One native exec: credentials, a connection to the API server, the
 * pre-flight GETs (the pod; or the deployment or statefulset and then its
 * pods by selector), and the exec itself upgraded to a WebSocket on the
 * same connection, framed by wslay (sans-I/O: we move the bytes).
 *
 * Channels: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close
 * (v5 only: [255, 0] half-closes stdin). Flow control both ways: bytes
 * for the session wait in a small buffer per descriptor, and while one
 * is not empty nothing more is read from the WebSocket; the session's
 * input is read only while wslay's queue is short, so a pod that does not
 * read stops our reads of the session, and through it the client's
 * window. Pings keep an idle stream alive and notice a dead API server.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <wslay/wslay.h>

#include "policy/audit.h"
#include "kube/kube-client.h"
#include "kube/kube-http.h"
#include "kube/kube-json.h"
#include "kube/kube-native.h"
#include "base/log.h"

#define KN_OUT_HIGH (64u * 1024)	/* stop reading the WebSocket above this */
#define KN_QUEUE_HIGH (256u * 1024)	/* stop reading the session's input above this */
#define KN_READ_MAX (32u * 1024)
#define KN_STATUS_MAX (64u * 1024)
#define KN_MSG_MAX (16u * 1024 * 1024)

enum kn_stage {
	KN_AUTH,		/* waiting for credentials */
	KN_CONNECT,		/* connecting */
	KN_GET,			/* a pre-flight GET is out */
	KN_UPGRADE,		/* the exec request is out */
	KN_STREAM,		/* the exec stream runs */
	KN_ENDING,		/* writing what is left to the session */
	KN_DONE,		/* descriptors closed; the exit is reported */
};

enum kn_get {
	KN_GET_POD,
	KN_GET_WORKLOAD,
	KN_GET_PODS,
};

/* One of our ends of the session's descriptors. */
struct kn_fd {
	struct kn_run *run;
	int fd;			/* -1 once closed */
	uv_poll_t poll;
	bool inited;
	int events;
};

/* Bytes waiting for a session descriptor. */
struct kn_obuf {
	char *buf;
	size_t len, off, cap;
};

struct kn_run {
	struct target_proc proc;	/* first: what the session holds */
	uv_loop_t *loop;
	struct kube_client *cl;
	struct kube_conn *conn;
	enum kn_stage stage;
	enum kn_get get;
	bool auth_pending;
	bool retried;			/* a 401 was retried once */
	bool reused;			/* the connection was opened ahead and waited idle */
	bool reconnected;		/* a request on such a connection was sent again */
	/* what */
	char *cluster, *context, *target, *ns, *name, *container;
	enum kube_kind kind;
	char **argv;
	bool tty;
	uint16_t cols, rows;
	char *as_user;
	char **as_groups;
	char *user, *session_id, *audit_log;
	unsigned timeout, keepalive;
	char pod[KUBE_NAME_MAX + 1];
	char use_container[KUBE_LABEL_MAX + 1];
	char accept[29];
	char *pods_path;		/* the pods of a workload, by its selector */
	/* the session's side: input; output (the same socket as input with a tty); stderr */
	struct kn_fd in, out, err;
	struct kn_obuf ob[2];		/* for out and err */
	bool input_eof;
	bool eof_sent;
	/* the stream */
	wslay_event_context_ptr ws;
	bool v5;
	uint8_t frame_op;
	bool msg_first;
	int channel;
	char *status;
	size_t statuslen;
	bool status_seen, stream_over;
	uint64_t last_rx;
	/* the end */
	uv_timer_t timer;
	bool timer_inited;
	int exit_status;
	int exit_signal;
	char failure[700];		/* a line for the client, or "" */
	bool failed_audit;
	bool exit_due, exit_reported;
	bool released;
	unsigned handles;
	void (*on_exit)(void *arg, const struct pty_exit *ex);
	void *exit_arg;
};

static void kn_pump(struct kn_run *run);
static void kn_step(struct kn_run *run);
static size_t kn_obuf_pending(const struct kn_obuf *b);
static void kn_fail(struct kn_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void kn_conn_cb(struct kube_conn *kc, enum kube_conn_event ev, int err, void *arg);

/* ---- lifetime ---- */

/* Free the run once the session let go and every handle is closed. */
static void
kn_maybe_free(struct kn_run *run)
{
	char **p;

	if (!run->released || run->handles > 0 || run->auth_pending)
		return;
	free(run->cluster);
	free(run->context);
	free(run->target);
	free(run->ns);
	free(run->name);
	free(run->container);
	for (p = run->argv; p != NULL && *p != NULL; p++)
		free(*p);
	free(run->argv);
	free(run->as_user);
	for (p = run->as_groups; p != NULL && *p != NULL; p++)
		free(*p);
	free(run->as_groups);
	free(run->user);
	free(run->session_id);
	free(run->audit_log);
	free(run->ob[0].buf);
	free(run->ob[1].buf);
	free(run->status);
	free(run->pods_path);
	free(run);
}

/* A handle closed. */
static void
kn_handle_closed(uv_handle_t *h)
{
	struct kn_run *run = h->data;

	run->handles--;
	kn_maybe_free(run);
}

/* Close one of our descriptors. */
static void
kn_fd_close(struct kn_fd *f)
{
	if (f->fd < 0)
		return;
	if (f->inited) {
		uv_poll_stop(&f->poll);
		f->poll.data = f->run;
		uv_close((uv_handle_t *)&f->poll, kn_handle_closed);
		f->inited = false;
	}
	close(f->fd);
	f->fd = -1;
	f->events = 0;
}

/* Poll one of our descriptors for ev. */
static void kn_fd_cb(uv_poll_t *h, int status, int events);

static void
kn_fd_poll(struct kn_fd *f, int ev)
{
	if (f->fd < 0 || !f->inited || ev == f->events)
		return;
	if (ev == 0)
		uv_poll_stop(&f->poll);
	else
		uv_poll_start(&f->poll, ev, kn_fd_cb);
	f->events = ev;
}

/* Drop the connection and the WebSocket. */
static void
kn_drop_stream(struct kn_run *run)
{
	if (run->ws != NULL) {
		wslay_event_context_free(run->ws);
		run->ws = NULL;
	}
	if (run->conn != NULL) {
		kube_conn_close(run->conn);
		run->conn = NULL;
	}
	if (run->auth_pending) {
		kube_client_auth_cancel(run->cl, run);
		run->auth_pending = false;
	}
}

/* Report the exit to the session (from the timer: a later loop turn). */
static void
kn_timer_cb(uv_timer_t *t)
{
	struct kn_run *run = t->data;
	struct pty_exit ex;

	if (run->stage == KN_DONE) {
		if (run->exit_reported || run->released)
			return;
		run->exit_reported = true;
		memset(&ex, 0, sizeof ex);
		if (run->exit_signal > 0) {
			ex.status = -1;
			ex.signal = run->exit_signal;
		} else {
			ex.status = run->exit_status;
		}
		run->on_exit(run->exit_arg, &ex);
		return;
	}
	if (run->stage < KN_STREAM) {
		kn_fail(run, "the API server of cluster %s did not answer within %us",
		    run->cluster, run->timeout);
		return;
	}
	if (run->stage == KN_STREAM) {
		uint64_t quiet;

		/* While the client holds output back we do not read: silence means nothing. */
		if (kn_obuf_pending(&run->ob[0]) >= KN_OUT_HIGH ||
		    kn_obuf_pending(&run->ob[1]) >= KN_OUT_HIGH)
			run->last_rx = uv_now(run->loop);
		quiet = uv_now(run->loop) - run->last_rx;

		if (quiet > (uint64_t)run->keepalive * 2000 + 1000) {
			kn_fail(run, "the API server of cluster %s stopped answering (nothing for "
			    "%llus)", run->cluster, (unsigned long long)(quiet / 1000));
			return;
		}
		if (run->ws != NULL) {
			struct wslay_event_msg m = { WSLAY_PING, (const uint8_t *)"", 0 };

			wslay_event_queue_msg(run->ws, &m);
			kn_pump(run);
		}
	}
}

/* Everything is written and closed: report the exit on a later turn. */
static void
kn_done(struct kn_run *run)
{
	kn_drop_stream(run);
	kn_fd_close(&run->in);
	kn_fd_close(&run->out);
	kn_fd_close(&run->err);
	run->stage = KN_DONE;
	if (run->timer_inited) {
		uv_timer_stop(&run->timer);
		uv_timer_start(&run->timer, kn_timer_cb, 0, 0);
	}
}

/* Audit a failure before or at the exec, as the kubectl helper does. */
static void
kn_audit_failure(struct kn_run *run, const char *why)
{
	struct audit *a = NULL;

	if (run->audit_log == NULL || audit_open(run->audit_log, &a) < 0)
		return;
	{
		struct audit_field f[] = {
			AUDIT_STR("user", run->user),
			AUDIT_STR("session", run->session_id),
			AUDIT_STR("target", run->target),
			AUDIT_STR("cluster", run->cluster),
			AUDIT_STR("context", run->context),
			AUDIT_STR("namespace", run->ns),
			AUDIT_STR("pod", run->pod[0] != '\0' ? run->pod : run->name),
			AUDIT_STR("container", run->use_container),
			AUDIT_STR("as_user", run->as_user),
			AUDIT_STR("reason", why),
		};
		audit_event(a, "target_failed", f, sizeof f / sizeof f[0]);
	}
	audit_close(a);
}

/* Append bytes to an output buffer. */
static int
kn_obuf_add(struct kn_obuf *b, const void *p, size_t n)
{
	char *nb;

	if (n == 0)
		return 0;
	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n > b->cap) {
		if (b->off > 0) {
			memmove(b->buf, b->buf + b->off, b->len - b->off);
			b->len -= b->off;
			b->off = 0;
		}
		if (b->len + n > b->cap) {
			size_t cap = b->cap == 0 ? 16384 : b->cap;

			while (cap < b->len + n)
				cap *= 2;
			if ((nb = realloc(b->buf, cap)) == NULL)
				return -ENOMEM;
			b->buf = nb;
			b->cap = cap;
		}
	}
	memcpy(b->buf + b->len, p, n);
	b->len += n;
	return 0;
}

/* Bytes waiting in b. */
static size_t
kn_obuf_pending(const struct kn_obuf *b)
{
	return b->len - b->off;
}

/* Begin the end: no more reading; write what is left, then close. */
static void
kn_end(struct kn_run *run)
{
	if (run->stage >= KN_ENDING)
		return;
	run->stage = KN_ENDING;
	if (run->failure[0] != '\0') {
		char line[760];
		int n = snprintf(line, sizeof line, "podgate: %s: %s%s", run->target,
		    run->failure, run->tty ? "\r\n" : "\n");

		if (n > 0)
			kn_obuf_add(&run->ob[run->tty ? 0 : 1], line, (size_t)n < sizeof line ?
			    (size_t)n : sizeof line - 1);
		if (!run->failed_audit) {
			run->failed_audit = true;
			kn_audit_failure(run, run->failure);
		}
	}
	/* The stream is over: keep nothing open towards the API server. */
	kn_drop_stream(run);
	kn_fd_close(&run->in);
	if (run->timer_inited)
		uv_timer_stop(&run->timer);
	kn_pump(run);
}

/* Fail with one line: exit status 1. */
static void
kn_fail(struct kn_run *run, const char *fmt, ...)
{
	va_list ap;
	size_t i;

	if (run->stage >= KN_ENDING)
		return;
	va_start(ap, fmt);
	vsnprintf(run->failure, sizeof run->failure, fmt, ap);
	va_end(ap);
	for (i = 0; run->failure[i] != '\0'; i++) {
		if ((unsigned char)run->failure[i] < 0x20)
			run->failure[i] = ' ';
	}
	run->exit_status = 1;
	kn_end(run);
}

/* ---- the session's side ---- */

/* Write waiting output to the session's descriptors. Returns false on a write error. */
static void
kn_flush(struct kn_run *run)
{
	struct kn_fd *fds[2] = { &run->out, &run->err };
	ssize_t n;
	size_t i;

	for (i = 0; i < 2; i++) {
		struct kn_obuf *b = &run->ob[i];
		struct kn_fd *f = fds[i];

		while (kn_obuf_pending(b) > 0) {
			if (f->fd < 0) {
				b->off = b->len = 0;	/* the session closed it: dropped */
				break;
			}
			n = write(f->fd, b->buf + b->off, kn_obuf_pending(b));
			if (n > 0) {
				b->off += (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			/* EPIPE: the session no longer reads. */
			b->off = b->len = 0;
			if (f != &run->out || !run->tty)
				kn_fd_close(f);
			break;
		}
		if (kn_obuf_pending(b) == 0)
			b->off = b->len = 0;
	}
}

/* ---- wslay callbacks ---- */

/* Read from the connection, unless output is waiting for the session. */
static ssize_t
kn_ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
	struct kn_run *run = user;
	long n;

	if (run->status_seen || kn_obuf_pending(&run->ob[0]) >= KN_OUT_HIGH ||
	    kn_obuf_pending(&run->ob[1]) >= KN_OUT_HIGH) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	n = kube_conn_read(run->conn, buf, len);
	if (n == -EAGAIN) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (n <= 0) {
		run->stream_over = true;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	run->last_rx = uv_now(run->loop);
	return n;
}

/* Write to the connection. */
static ssize_t
kn_ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
	struct kn_run *run = user;
	long n = kube_conn_write(run->conn, data, len);

	if (n == -EAGAIN) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (n < 0) {
		run->stream_over = true;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return n;
}

/* Masking keys. */
static int
kn_ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

/* A frame starts. */
static void
kn_ws_frame_start(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
	struct kn_run *run = user;

	run->frame_op = arg->opcode;
	if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
		run->msg_first = true;
		run->channel = -1;
	}
}

/* Bytes of a frame: route data messages by their channel byte. */
static void
kn_ws_frame_chunk(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
	struct kn_run *run = user;
	const uint8_t *p = arg->data;
	size_t n = arg->data_length;

	if (run->frame_op != WSLAY_TEXT_FRAME && run->frame_op != WSLAY_BINARY_FRAME &&
	    run->frame_op != WSLAY_CONTINUATION_FRAME)
		return;
	if (run->msg_first && n > 0) {
		run->channel = p[0];
		run->msg_first = false;
		p++;
		n--;
	}
	if (n == 0 || run->status_seen)
		return;
	switch (run->channel) {
	case 1:
		kn_obuf_add(&run->ob[0], p, n);
		break;
	case 2:
		kn_obuf_add(&run->ob[run->tty ? 0 : 1], p, n);
		break;
	case 3:
		if (run->statuslen + n <= KN_STATUS_MAX) {
			char *ns = realloc(run->status, run->statuslen + n + 1);

			if (ns != NULL) {
				run->status = ns;
				memcpy(ns + run->statuslen, p, n);
				run->statuslen += n;
				ns[run->statuslen] = '\0';
			}
		}
		break;
	default:
		break;
	}
}

/* A frame ended: a whole status message ends the exec. */
static void
kn_ws_frame_end(wslay_event_context_ptr ctx, void *user)
{
	struct kn_run *run = user;

	if (run->channel == 3 && run->statuslen > 0 && !run->status_seen) {
		char msg[600];
		int code;

		/* A status message is one frame in practice; parse once it ends. */
		if (kube_json_exec_status(run->status, run->statuslen, &code, msg,
		    sizeof msg) < 0)
			return;		/* not whole yet */
		run->status_seen = true;
		if (code >= 0) {
			run->exit_status = code;
		} else {
			snprintf(run->failure, sizeof run->failure, "%s", msg);
			run->exit_status = 1;
		}
	}
}

/* A whole message: a close frame ends the stream. */
static void
kn_ws_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
    void *user)
{
	struct kn_run *run = user;

	if (arg->opcode == WSLAY_CONNECTION_CLOSE)
		run->stream_over = true;
}

/* ---- moving bytes ---- */

/* Read the session's input into wslay's queue. */
static void
kn_read_input(struct kn_run *run)
{
	uint8_t buf[KN_READ_MAX + 1];
	struct wslay_event_msg m;
	ssize_t n;

	while (run->in.fd >= 0 && !run->input_eof &&
	    wslay_event_get_queued_msg_length(run->ws) < KN_QUEUE_HIGH) {
		n = read(run->in.fd, buf + 1, KN_READ_MAX);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			run->input_eof = true;
			break;
		}
		buf[0] = 0;
		m.opcode = WSLAY_BINARY_FRAME;
		m.msg = buf;
		m.msg_length = (size_t)n + 1;
		if (wslay_event_queue_msg(run->ws, &m) != 0) {
			run->stream_over = true;
			return;
		}
	}
	if (run->input_eof && !run->eof_sent) {
		run->eof_sent = true;
		if (!run->tty)
			kn_fd_close(&run->in);
		if (run->v5 && !run->tty) {
			static const uint8_t close_stdin[] = { 255, 0 };

			m.opcode = WSLAY_BINARY_FRAME;
			m.msg = close_stdin;
			m.msg_length = sizeof close_stdin;
			wslay_event_queue_msg(run->ws, &m);
		}
	}
}

/* Move bytes every way they can go, then set what to wait for. */
static void
kn_pump(struct kn_run *run)
{
	bool rd = false, wr = false;
	int rounds;

	if (run->stage == KN_DONE)
		return;
	kn_flush(run);
	if (run->stage == KN_STREAM && run->ws != NULL) {
		for (rounds = 0; rounds < 64; rounds++) {
			if (kn_obuf_pending(&run->ob[0]) >= KN_OUT_HIGH ||
			    kn_obuf_pending(&run->ob[1]) >= KN_OUT_HIGH || run->status_seen ||
			    run->stream_over)
				break;
			if (wslay_event_recv(run->ws) != 0)
				run->stream_over = true;
			kn_flush(run);
			if (!kube_conn_pending(run->conn))
				break;
		}
		if (!run->status_seen && !run->stream_over)
			kn_read_input(run);
		if (!run->stream_over && wslay_event_send(run->ws) != 0)
			run->stream_over = true;
		if (run->status_seen || run->stream_over) {
			if (!run->status_seen) {
				snprintf(run->failure, sizeof run->failure, "the exec stream of "
				    "cluster %s ended without an exit status", run->cluster);
				run->exit_status = 1;
			}
			kn_end(run);
			return;
		}
		rd = wslay_event_want_read(run->ws) &&
		    kn_obuf_pending(&run->ob[0]) < KN_OUT_HIGH &&
		    kn_obuf_pending(&run->ob[1]) < KN_OUT_HIGH;
		wr = wslay_event_want_write(run->ws);
		kube_conn_want(run->conn, rd, wr);
		kn_fd_poll(&run->in, !run->input_eof &&
		    wslay_event_get_queued_msg_length(run->ws) < KN_QUEUE_HIGH ? UV_READABLE : 0);
	}
	kn_fd_poll(&run->out, kn_obuf_pending(&run->ob[0]) > 0 ? UV_WRITABLE : 0);
	kn_fd_poll(&run->err, kn_obuf_pending(&run->ob[1]) > 0 ? UV_WRITABLE : 0);
	if (run->stage == KN_ENDING && kn_obuf_pending(&run->ob[0]) == 0 &&
	    kn_obuf_pending(&run->ob[1]) == 0)
		kn_done(run);
}

/* One of the session's descriptors is ready. */
static void
kn_fd_cb(uv_poll_t *h, int status, int events)
{
	struct kn_fd *f = h->data;
	struct kn_run *run = f->run;

	if (status < 0 && f == &run->in)
		run->input_eof = true;
	kn_pump(run);
}

/* ---- the pre-flight and the upgrade ---- */

/* A credential is at hand (or not). */
static void
kn_auth_cb(void *arg, int err, const char *why)
{
	struct kn_run *run = arg;

	run->auth_pending = false;
	if (run->stage >= KN_ENDING)
		return;
	if (err < 0) {
		kn_fail(run, "cannot authenticate to cluster %s: %s", run->cluster,
		    why != NULL && *why != '\0' ? why : strerror(-err));
		return;
	}
	run->stage = KN_CONNECT;
	kn_step(run);
}

/* Open a connection when there is none that can carry a request. */
static bool
kn_need_conn(struct kn_run *run)
{
	int r;

	if (run->conn != NULL && kube_conn_reusable(run->conn))
		return false;
	if (run->conn != NULL) {
		kube_conn_close(run->conn);
		run->conn = NULL;
	}
	run->stage = KN_CONNECT;
	r = kube_client_conn(run->cl, run->loop, kn_conn_cb, run, &run->conn);
	if (r == 1) {
		run->reused = true;	/* opened ahead: ready now */
		return false;
	}
	run->reused = false;
	if (r < 0) {
		run->conn = NULL;
		kn_fail(run, "cannot reach the API server of cluster %s: %s", run->cluster,
		    strerror(-r));
	}
	return true;
}

/* Send a request on the connection. */
static void
kn_send(struct kn_run *run, const char *path, const char *extra, enum kn_stage stage)
{
	struct kube_ident id = { run->as_user, run->as_groups };
	char *req = NULL;
	size_t len = 0;
	int r;

	if ((r = kube_client_request(run->cl, "GET", path, &id, extra, &req, &len)) < 0 ||
	    (r = kube_conn_request(run->conn, req, len, false)) < 0) {
		free(req);
		kn_fail(run, "cannot send a request to cluster %s: %s", run->cluster,
		    strerror(-r));
		return;
	}
	free(req);
	run->stage = stage;
}

/* The exec request: the command as repeated query parameters. */
static void
kn_send_exec(struct kn_run *run)
{
	char *path = NULL, key[25], extra[300];
	size_t len = 0;
	int r = 0;

	if (kube_http_ws_key(key, run->accept) < 0) {
		kn_fail(run, "cannot make a WebSocket key");
		return;
	}
	/* The namespace, pod and container are checked DNS names: nothing to escape. */
	if (asprintf(&path, "/api/v1/namespaces/%s/pods/%s/exec?container=%s&stdin=true&"
	    "stdout=true&stderr=%s&tty=%s", run->ns, run->pod, run->use_container,
	    run->tty ? "false" : "true", run->tty ? "true" : "false") < 0) {
		path = NULL;
		r = -ENOMEM;
	}
	len = path != NULL ? strlen(path) : 0;
	for (char **a = run->argv; r == 0 && a != NULL && *a != NULL; a++) {
		char *np = realloc(path, len + 10);

		if (np == NULL) {
			r = -ENOMEM;
			break;
		}
		path = np;
		memcpy(path + len, "&command=", 10);
		len += 9;
		r = kube_http_escape(&path, &len, *a);
	}
	if (r < 0 || path == NULL) {
		free(path);
		kn_fail(run, "out of memory");
		return;
	}
	snprintf(extra, sizeof extra, "Connection: Upgrade\r\nUpgrade: websocket\r\n"
	    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Protocol: v5.channel.k8s.io, v4.channel.k8s.io\r\n", key);
	kn_send(run, path, extra, KN_UPGRADE);
	free(path);
}

/* The failure line for a refused request, from its Status body. */
static void
kn_http_failure(struct kn_run *run, struct kube_http_resp *resp)
{
	char msg[600];

	if (resp->status == 401) {
		kn_fail(run, "the API server of cluster %s refused the broker's credentials "
		    "(401 Unauthorized)", run->cluster);
		return;
	}
	if (kube_json_status_message(resp->body, resp->bodylen, msg, sizeof msg) == 0) {
		kn_fail(run, "%s", msg);
		return;
	}
	kn_fail(run, "the API server of cluster %s answered %d", run->cluster, resp->status);
}

/* Check the pod and settle the container (as the kubectl helper does). */
static bool
kn_check_pod(struct kn_run *run, const struct kube_pod *pod)
{
	char list[512] = "";
	char *const *c;

	snprintf(run->pod, sizeof run->pod, "%s", pod->name);
	if (strcmp(pod->phase, "Succeeded") == 0 || strcmp(pod->phase, "Failed") == 0) {
		kn_fail(run, "cannot exec into a completed pod (phase %s)", pod->phase);
		return false;
	}
	if (pod->deleting) {
		kn_fail(run, "pod %s is terminating", pod->name);
		return false;
	}
	if (strcmp(pod->phase, "Running") != 0) {
		kn_fail(run, "pod %s is not running (phase %s)", pod->name, pod->phase);
		return false;
	}
	if (pod->containers == NULL || pod->containers[0] == NULL) {
		kn_fail(run, "pod %s has no containers", pod->name);
		return false;
	}
	if (run->container != NULL) {
		if (!kube_pod_has_container(pod, run->container)) {
			for (c = pod->containers; *c != NULL; c++) {
				if (c != pod->containers)
					strncat(list, ", ", sizeof list - strlen(list) - 1);
				strncat(list, *c, sizeof list - strlen(list) - 1);
			}
			kn_fail(run, "container %s is not in pod %s (containers: %s)",
			    run->container, pod->name, list);
			return false;
		}
		snprintf(run->use_container, sizeof run->use_container, "%s", run->container);
	} else if (pod->default_container != NULL &&
	    kube_pod_has_container(pod, pod->default_container)) {
		snprintf(run->use_container, sizeof run->use_container, "%s",
		    pod->default_container);
	} else {
		snprintf(run->use_container, sizeof run->use_container, "%s", pod->containers[0]);
	}
	return true;
}

/* A pre-flight response arrived. */
static void
kn_got(struct kn_run *run, struct kube_http_resp *resp)
{
	struct kube_pod pod, *pods = NULL;
	char *sel = NULL, *path = NULL;
	size_t n = 0, i, len = 0;

	if (resp->status != 200) {
		kn_http_failure(run, resp);
		return;
	}
	switch (run->get) {
	case KN_GET_POD:
		if (kube_pod_parse(resp->body, resp->bodylen, &pod) < 0) {
			kn_fail(run, "the API server of cluster %s sent something that is not a pod",
			    run->cluster);
			return;
		}
		if (kn_check_pod(run, &pod)) {
			kube_pod_clear(&pod);
			run->stage = KN_UPGRADE;
			kn_step(run);
			return;
		}
		kube_pod_clear(&pod);
		return;
	case KN_GET_WORKLOAD:
		if (kube_selector_parse(resp->body, resp->bodylen, &sel) < 0) {
			kn_fail(run, "the %s has no usable selector", run->kind == KUBE_DEPLOY ?
			    "deployment" : "statefulset");
			return;
		}
		if (kube_http_escape(&path, &len, sel) < 0) {
			free(sel);
			kn_fail(run, "out of memory");
			return;
		}
		free(sel);
		sel = NULL;
		if (asprintf(&run->pods_path, "/api/v1/namespaces/%s/pods?labelSelector=%s",
		    run->ns, path) < 0) {
			run->pods_path = NULL;
			free(path);
			kn_fail(run, "out of memory");
			return;
		}
		free(path);
		run->get = KN_GET_PODS;
		run->stage = KN_GET;
		kn_step(run);
		return;
	case KN_GET_PODS:
		if (kube_pods_parse(resp->body, resp->bodylen, &pods, &n) < 0) {
			kn_fail(run, "the API server of cluster %s sent something that is not a "
			    "pod list", run->cluster);
			return;
		}
		for (i = 0; i < n; i++) {
			if (strcmp(pods[i].phase, "Running") == 0 && !pods[i].deleting)
				break;
		}
		if (i == n) {
			kube_pods_free(pods, n);
			kn_fail(run, "the %s has no running pod", run->kind == KUBE_DEPLOY ?
			    "deployment" : "statefulset");
			return;
		}
		if (kn_check_pod(run, &pods[i])) {
			kube_pods_free(pods, n);
			run->stage = KN_UPGRADE;
			kn_step(run);
			return;
		}
		kube_pods_free(pods, n);
		return;
	}
}

/* The upgrade was answered: start the stream. */
static void
kn_upgraded(struct kn_run *run, struct kube_http_resp *resp)
{
	struct wslay_event_callbacks cb = {
		.recv_callback = kn_ws_recv,
		.send_callback = kn_ws_send,
		.genmask_callback = kn_ws_genmask,
		.on_frame_recv_start_callback = kn_ws_frame_start,
		.on_frame_recv_chunk_callback = kn_ws_frame_chunk,
		.on_frame_recv_end_callback = kn_ws_frame_end,
		.on_msg_recv_callback = kn_ws_msg,
	};

	if (resp->status != 101) {
		kn_http_failure(run, resp);
		return;
	}
	if (resp->upgrade == NULL || strcasecmp(resp->upgrade, "websocket") != 0 ||
	    resp->accept == NULL || strcmp(resp->accept, run->accept) != 0) {
		kn_fail(run, "the API server of cluster %s answered the exec with a bad "
		    "WebSocket handshake", run->cluster);
		return;
	}
	if (resp->protocol != NULL && strcmp(resp->protocol, "v5.channel.k8s.io") == 0) {
		run->v5 = true;
	} else if (resp->protocol != NULL && strcmp(resp->protocol, "v4.channel.k8s.io") == 0) {
		run->v5 = false;
	} else {
		kn_fail(run, "the API server of cluster %s chose no exec protocol podgate speaks "
		    "(%s)", run->cluster, resp->protocol != NULL ? resp->protocol : "none");
		return;
	}
	if (wslay_event_context_client_init(&run->ws, &cb, run) != 0) {
		run->ws = NULL;
		kn_fail(run, "out of memory");
		return;
	}
	wslay_event_config_set_no_buffering(run->ws, 1);
	wslay_event_config_set_max_recv_msg_length(run->ws, KN_MSG_MAX);
	run->stage = KN_STREAM;
	run->last_rx = uv_now(run->loop);
	uv_timer_stop(&run->timer);
	uv_timer_start(&run->timer, kn_timer_cb, (uint64_t)run->keepalive * 1000,
	    (uint64_t)run->keepalive * 1000);
	if (run->tty)
		run->proc.ops->resize(&run->proc, run->cols, run->rows);
	kn_pump(run);
}

/* The connection has news. */
static void
kn_conn_cb(struct kube_conn *kc, enum kube_conn_event ev, int err, void *arg)
{
	struct kn_run *run = arg;
	struct kube_http_resp *resp;

	if (run->stage >= KN_ENDING)
		return;
	if (ev == KUBE_CONN_IO) {
		kn_pump(run);
		return;
	}
	if (err < 0 && ev == KUBE_CONN_RESPONSE && run->reused && !run->reconnected) {
		/* The server closed the idle connection as we used it: once more, afresh. */
		run->reconnected = true;
		kube_conn_close(run->conn);
		run->conn = NULL;
		if (run->stage == KN_GET)
			run->stage = KN_CONNECT;
		kn_step(run);
		return;
	}
	if (err < 0) {
		if (ev == KUBE_CONN_OPEN)
			kn_fail(run, "cannot reach the API server of cluster %s: %s", run->cluster,
			    kube_conn_error(kc));
		else
			kn_fail(run, "cluster %s: %s", run->cluster, kube_conn_error(kc));
		return;
	}
	if (ev == KUBE_CONN_OPEN) {
		kn_step(run);
		return;
	}
	resp = kube_conn_response(kc);
	if (resp->status == 401 && !run->retried && kube_client_has_plugin(run->cl)) {
		/* The plugin's credential was refused: run it again, once. */
		run->retried = true;
		kube_client_unauthorized(run->cl);
		kube_conn_close(run->conn);
		run->conn = NULL;
		run->stage = KN_AUTH;
		kn_step(run);
		return;
	}
	if (run->stage == KN_UPGRADE)
		kn_upgraded(run, resp);
	else
		kn_got(run, resp);
}

/* Take the next step of the pre-flight. */
static void
kn_step(struct kn_run *run)
{
	char *path = NULL;
	int r;

	switch (run->stage) {
	case KN_AUTH:
		run->auth_pending = true;
		if ((r = kube_client_auth(run->cl, run->loop, kn_auth_cb, run)) < 0) {
			run->auth_pending = false;
			kn_fail(run, "cannot authenticate to cluster %s: %s", run->cluster,
			    strerror(-r));
		}
		return;
	case KN_CONNECT:
	case KN_GET:
		if (kn_need_conn(run))
			return;
		if (run->get == KN_GET_POD)
			r = asprintf(&path, "/api/v1/namespaces/%s/pods/%s", run->ns, run->name);
		else if (run->get == KN_GET_WORKLOAD)
			r = asprintf(&path, "/apis/apps/v1/namespaces/%s/%s/%s", run->ns,
			    run->kind == KUBE_DEPLOY ? "deployments" : "statefulsets", run->name);
		else
			r = (path = strdup(run->pods_path)) == NULL ? -1 : 0;
		if (r < 0) {
			kn_fail(run, "out of memory");
			return;
		}
		kn_send(run, path, "Accept: application/json\r\n", KN_GET);
		free(path);
		return;
	case KN_UPGRADE:
		if (kn_need_conn(run)) {
			if (run->stage == KN_CONNECT)
				run->stage = KN_UPGRADE;	/* connect, then come back here */
			return;
		}
		kn_send_exec(run);
		return;
	default:
		return;
	}
}

/* ---- target_proc ---- */

/* The client's window changed: tell the pod (channel 4). */
static void
kn_resize(struct target_proc *p, uint16_t cols, uint16_t rows)
{
	struct kn_run *run = (struct kn_run *)p;
	struct wslay_event_msg m;
	uint8_t buf[64];
	int n;

	run->cols = cols;
	run->rows = rows;
	if (!run->tty || run->stage != KN_STREAM || run->ws == NULL)
		return;
	buf[0] = 4;
	n = snprintf((char *)buf + 1, sizeof buf - 1, "{\"Width\":%u,\"Height\":%u}",
	    (unsigned)cols, (unsigned)rows);
	m.opcode = WSLAY_BINARY_FRAME;
	m.msg = buf;
	m.msg_length = (size_t)n + 1;
	wslay_event_queue_msg(run->ws, &m);
	kn_pump(run);
}

/* End the exec on the session's word. */
static void
kn_hangup(struct target_proc *p)
{
	struct kn_run *run = (struct kn_run *)p;

	if (run->stage == KN_DONE)
		return;
	run->stage = KN_ENDING;
	run->exit_signal = SIGHUP;
	run->ob[0].off = run->ob[0].len = 0;
	run->ob[1].off = run->ob[1].len = 0;
	kn_done(run);
}

/* The session forgets the run. */
static void
kn_release(struct target_proc *p)
{
	struct kn_run *run = (struct kn_run *)p;

	run->released = true;
	if (run->stage != KN_DONE) {
		run->ob[0].off = run->ob[0].len = 0;
		run->ob[1].off = run->ob[1].len = 0;
		kn_done(run);
	}
	if (run->timer_inited) {
		run->timer_inited = false;
		uv_timer_stop(&run->timer);
		uv_close((uv_handle_t *)&run->timer, kn_handle_closed);
	}
	kn_maybe_free(run);
}

static const struct target_proc_ops kn_ops = {
	.resize = kn_resize,
	.hangup = kn_hangup,
	.release = kn_release,
};

/* ---- starting ---- */

/* Copy a NULL-terminated array. */
static char **
kn_copy_strv(char *const *v)
{
	size_t n = 0, i;
	char **c;

	if (v == NULL)
		return NULL;
	while (v[n] != NULL)
		n++;
	if ((c = calloc(n + 1, sizeof *c)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if ((c[i] = strdup(v[i])) == NULL) {
			while (i > 0)
				free(c[--i]);
			free(c);
			return NULL;
		}
	}
	return c;
}

/* A copy of s, NULL staying NULL; *oom on failure. */
static char *
kn_dup(const char *s, bool *oom)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*oom = true;
	return d;
}

/* Set up a descriptor of ours for polling. */
static int
kn_fd_init(struct kn_run *run, struct kn_fd *f, int fd)
{
	int r;

	f->run = run;
	f->fd = fd;
	if (fd < 0)
		return 0;
	if ((r = uv_poll_init(run->loop, &f->poll, fd)) < 0)
		return r;
	f->poll.data = f;
	f->inited = true;
	run->handles++;
	return 0;
}

/* Start an exec. */
int
kube_native_start(const struct kube_native_req *r, struct pty_child *child,
    struct target_proc **proc)
{
	const struct cfg_kube_cluster *k = r->t->cluster;
	struct kube_client *cl = NULL;
	struct kn_run *run = NULL;
	int p_in[2] = { -1, -1 }, p_out[2] = { -1, -1 }, p_err[2] = { -1, -1 }, sv[2] = { -1, -1 };
	int mine_in = -1, mine_out = -1, mine_err = -1, rc;
	char why[600];
	bool oom = false;

	memset(child, 0, sizeof *child);
	child->master = child->in = child->out = child->err = -1;
	*proc = NULL;
	if ((run = calloc(1, sizeof *run)) == NULL)
		return -ENOMEM;
	run->proc.ops = &kn_ops;
	run->loop = r->loop;
	run->in.fd = run->out.fd = run->err.fd = -1;
	run->in.run = run->out.run = run->err.run = run;
	run->cluster = kn_dup(k->name, &oom);
	run->context = kn_dup(k->context != NULL ? k->context : "", &oom);
	run->target = kn_dup(r->t->canonical, &oom);
	run->ns = kn_dup(r->t->ns, &oom);
	run->name = kn_dup(r->t->name, &oom);
	run->container = r->t->container[0] != '\0' ? kn_dup(r->t->container, &oom) : NULL;
	run->kind = r->t->kind;
	run->get = r->t->kind == KUBE_POD ? KN_GET_POD : KN_GET_WORKLOAD;
	run->argv = kn_copy_strv(r->argv);
	run->tty = r->tty;
	run->cols = r->cols;
	run->rows = r->rows;
	run->as_user = kn_dup(r->as_user, &oom);
	run->as_groups = kn_copy_strv(r->as_groups);
	run->user = kn_dup(r->user, &oom);
	run->session_id = kn_dup(r->session_id, &oom);
	run->audit_log = kn_dup(r->audit_log, &oom);
	run->timeout = k->timeout;
	run->keepalive = k->keepalive > 0 ? k->keepalive : 30;
	run->on_exit = r->on_exit;
	run->exit_arg = r->exit_arg;
	if (oom || run->argv == NULL || (r->as_groups != NULL && run->as_groups == NULL)) {
		rc = -ENOMEM;
		goto fail;
	}
	/* The session's descriptors. */
	if (r->tty) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0 ||
		    (mine_in = fcntl(sv[1], F_DUPFD_CLOEXEC, 0)) < 0) {
			rc = -errno;
			goto fail;
		}
		child->master = sv[0];
		mine_out = sv[1];
		sv[0] = sv[1] = -1;	/* transferred */
	} else {
		if (pipe2(p_in, O_NONBLOCK | O_CLOEXEC) < 0 ||
		    pipe2(p_out, O_NONBLOCK | O_CLOEXEC) < 0 ||
		    pipe2(p_err, O_NONBLOCK | O_CLOEXEC) < 0) {
			rc = -errno;
			goto fail;
		}
		child->in = p_in[1];
		child->out = p_out[0];
		child->err = p_err[0];
		mine_in = p_in[0];
		mine_out = p_out[1];
		mine_err = p_err[1];
		p_in[0] = p_in[1] = p_out[0] = p_out[1] = p_err[0] = p_err[1] = -1;
	}
	if ((rc = kn_fd_init(run, &run->in, mine_in)) < 0)
		goto fail;
	mine_in = -1;
	if ((rc = kn_fd_init(run, &run->out, mine_out)) < 0)
		goto fail;
	mine_out = -1;
	if ((rc = kn_fd_init(run, &run->err, mine_err)) < 0)
		goto fail;
	mine_err = -1;
	uv_timer_init(run->loop, &run->timer);
	run->timer.data = run;
	run->timer_inited = true;
	run->handles++;
	*proc = &run->proc;
	/* From here on every failure is the client's one line. */
	if (kube_client_get(k, &cl, why, sizeof why) < 0) {
		kn_fail(run, "%s", why);
		return 0;
	}
	run->cl = cl;
	uv_timer_start(&run->timer, kn_timer_cb, (uint64_t)run->timeout * 1000, 0);
	run->stage = KN_AUTH;
	kn_step(run);
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (p_in[i] >= 0)
			close(p_in[i]);
		if (p_out[i] >= 0)
			close(p_out[i]);
		if (p_err[i] >= 0)
			close(p_err[i]);
		if (sv[i] >= 0)
			close(sv[i]);
	}
	if (mine_in >= 0)
		close(mine_in);
	if (mine_out >= 0)
		close(mine_out);
	if (mine_err >= 0)
		close(mine_err);
	pty_child_close(child);
	child->pid = 0;
	*proc = NULL;
	run->released = true;
	kn_fd_close(&run->in);
	kn_fd_close(&run->out);
	kn_fd_close(&run->err);
	kn_maybe_free(run);
	return rc;
}
