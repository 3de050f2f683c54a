/*
 * One native exec as a target process: the session's side (its output
 * and input, moved between the session and the exec stream with no
 * descriptor between them), window changes and the end (struct
 * target_proc), and starting it. The API server's side (the
 * credential, the pre-flight GETs, the exec upgraded to a WebSocket on
 * the same connection, framed by wslay: sans-I/O, we move the bytes) is
 * kube-native-exec.c; both share kube-native-run.h.
 *
 * Channels: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close
 * (v5 only: [255, 0] half-closes stdin). Flow control both ways: bytes
 * for the session wait in a small buffer per stream until it reads them,
 * and while one holds KN_OUT_HIGH nothing more is read from the
 * WebSocket; the session's input is taken only while wslay's queue is
 * short, so a pod that does not read fills the session's input buffer,
 * and through it the client's window. Pings keep an idle stream alive and
 * notice a dead API server.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <wslay/wslay.h>

#include "policy/audit.h"
#include "kube/kube-client.h"
#include "kube/kube-http.h"
#include "kube/kube-json.h"
#include "targets/kube-native-run.h"
#include "targets/kube-native.h"
#include "base/log.h"

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
	buf_free(&run->status);
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
void
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
	} else if (run->stage == KN_STREAM) {
		uint64_t quiet;

		/* While the client holds output back we do not read: silence means nothing. */
		if (kn_obuf_pending(&run->ob[0]) >= KN_OUT_HIGH ||
		    kn_obuf_pending(&run->ob[1]) >= KN_OUT_HIGH)
			run->last_rx = uv_now(run->loop);
		quiet = uv_now(run->loop) - run->last_rx;

		if (quiet > (uint64_t)run->keepalive * 2000 + 1000) {
			kn_fail(run, "the API server of cluster %s stopped answering (nothing for "
			    "%llus)", run->cluster, (unsigned long long)(quiet / 1000));
		} else if (run->ws != NULL) {
			struct wslay_event_msg m = { WSLAY_PING, (const uint8_t *)"", 0 };

			wslay_event_queue_msg(run->ws, &m);
			kn_pump(run);
		}
	}
	kn_ready(run);
}

/* The session read everything: report the exit on a later turn. */
static void
kn_done(struct kn_run *run)
{
	kn_drop_stream(run);
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
int
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
size_t
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
		run->ready_due = true;
		if (!run->failed_audit) {
			run->failed_audit = true;
			kn_audit_failure(run, run->failure);
		}
	}
	/* The stream is over: keep nothing open towards the API server. */
	kn_drop_stream(run);
	if (run->timer_inited)
		uv_timer_stop(&run->timer);
	kn_pump(run);
}

/* Fail with one line: exit status 1. */
void
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

/* ---- moving bytes ---- */

/* Tell the session it has work: at the end of our own loop callbacks only. */
void
kn_ready(struct kn_run *run)
{
	if (!run->ready_due || run->released || run->starting)
		return;
	run->ready_due = false;
	run->on_ready(run->exit_arg);
}

/* The session's input ended: half-close the pod's stdin (v5 only; v4 cannot). */
static void
kn_input_eof(struct kn_run *run)
{
	static const uint8_t close_stdin[] = { 255, 0 };
	struct wslay_event_msg m;

	if (!run->input_eof || run->eof_sent)
		return;
	run->eof_sent = true;
	if (run->v5 && !run->tty) {
		m.opcode = WSLAY_BINARY_FRAME;
		m.msg = close_stdin;
		m.msg_length = sizeof close_stdin;
		wslay_event_queue_msg(run->ws, &m);
	}
}

/* Move bytes every way they can go, then set what to wait for. */
void
kn_pump(struct kn_run *run)
{
	bool rd = false, wr = false;
	int rounds;

	if (run->stage == KN_DONE)
		return;
	if (run->stage == KN_STREAM && run->ws != NULL) {
		for (rounds = 0; rounds < 64; rounds++) {
			if (kn_obuf_pending(&run->ob[0]) >= KN_OUT_HIGH ||
			    kn_obuf_pending(&run->ob[1]) >= KN_OUT_HIGH || run->status_seen ||
			    run->stream_over)
				break;
			if (wslay_event_recv(run->ws) != 0)
				run->stream_over = true;
			if (!kube_conn_pending(run->conn))
				break;
		}
		if (!run->status_seen && !run->stream_over)
			kn_input_eof(run);
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
		if (run->input_waits &&
		    wslay_event_get_queued_msg_length(run->ws) < KN_QUEUE_HIGH) {
			run->input_waits = false;
			run->ready_due = true;	/* room for input again */
		}
	}
	if (run->stage == KN_ENDING && kn_obuf_pending(&run->ob[0]) == 0 &&
	    kn_obuf_pending(&run->ob[1]) == 0)
		kn_done(run);
}

/* ---- target_proc ---- */

/* The session takes output of stream 0 (stdout, or the terminal) or 1 (stderr). */
static ssize_t
kn_read(struct target_proc *p, int stream, void *buf, size_t len)
{
	struct kn_run *run = (struct kn_run *)p;
	struct kn_obuf *b;
	size_t n;
	bool full;

	if (stream < 0 || stream > 1)
		return -1;
	b = &run->ob[stream];
	if ((n = kn_obuf_pending(b)) == 0)
		return run->stage >= KN_ENDING ? -1 : 0;
	full = n >= KN_OUT_HIGH;
	if (n > len)
		n = len;
	memcpy(buf, b->buf + b->off, n);
	b->off += n;
	if (kn_obuf_pending(b) == 0) {
		/* Drained: a session that waits keeps no buffer (16 KiB and up). */
		free(b->buf);
		b->buf = NULL;
		b->off = b->len = b->cap = 0;
	}
	/* Read the WebSocket again below the mark; or end once all is read. */
	if ((full && kn_obuf_pending(b) < KN_OUT_HIGH) || run->stage == KN_ENDING)
		kn_pump(run);
	return (ssize_t)n;
}

/* The session's input for the pod (channel 0), as far as wslay's queue is short. */
static ssize_t
kn_write(struct target_proc *p, const void *data, size_t len)
{
	struct kn_run *run = (struct kn_run *)p;
	uint8_t buf[KN_READ_MAX + 1];
	struct wslay_event_msg m;
	size_t done = 0, n;

	if (run->stage >= KN_ENDING || run->input_eof)
		return -1;
	if (run->stage != KN_STREAM || run->ws == NULL || run->status_seen ||
	    run->stream_over) {
		run->input_waits = true;	/* until the stream runs (or ends) */
		return 0;
	}
	for (;;) {
		while (done < len && wslay_event_get_queued_msg_length(run->ws) < KN_QUEUE_HIGH) {
			n = len - done;
			if (n > KN_READ_MAX)
				n = KN_READ_MAX;
			buf[0] = 0;
			memcpy(buf + 1, (const uint8_t *)data + done, n);
			m.opcode = WSLAY_BINARY_FRAME;
			m.msg = buf;
			m.msg_length = n + 1;
			if (wslay_event_queue_msg(run->ws, &m) != 0) {
				run->stream_over = true;
				break;
			}
			done += n;
		}
		if (done < len)
			run->input_waits = true;
		kn_pump(run);
		/*
		 * The pump may have sent the whole queue: then nothing is left
		 * to wake the session (the connection is not watched for
		 * writing, and a pod that reads quietly sends nothing), so take
		 * more now rather than wait for a wake-up that would come only
		 * with the next keepalive.
		 */
		if (done == len || run->input_waits || run->stage != KN_STREAM ||
		    run->ws == NULL || run->status_seen || run->stream_over)
			break;
	}
	return (ssize_t)done;
}

/* The session's input ended. */
static void
kn_close_input(struct target_proc *p)
{
	struct kn_run *run = (struct kn_run *)p;

	if (run->input_eof)
		return;
	run->input_eof = true;
	kn_pump(run);
}

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
	.read = kn_read,
	.write = kn_write,
	.close_input = kn_close_input,
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

/* Start an exec. */
int
kube_native_start(const struct kube_native_req *r, struct pty_child *child,
    struct target_proc **proc)
{
	const struct cfg_kube_cluster *k = r->t->cluster;
	struct kube_client *cl = NULL;
	struct kn_run *run = NULL;
	int rc;
	char why[600];
	bool oom = false;

	memset(child, 0, sizeof *child);
	child->master = child->in = child->out = child->err = -1;
	*proc = NULL;
	if ((run = calloc(1, sizeof *run)) == NULL)
		return -ENOMEM;
	run->proc.ops = &kn_ops;
	run->loop = r->loop;
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
	run->on_ready = r->on_ready;
	run->exit_arg = r->exit_arg;
	if (oom || run->argv == NULL || (r->as_groups != NULL && run->as_groups == NULL)) {
		rc = -ENOMEM;
		goto fail;
	}
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
	run->starting = true;	/* a credential at hand calls back at once */
	kn_step(run);
	run->starting = false;
	return 0;
fail:
	*proc = NULL;
	run->released = true;
	kn_maybe_free(run);
	return rc;
}
