/*
 * Relayed output (peer-client.h): a watch, or pending --follow, run on
 * another replica. A relay is a thread that reads the remote command's
 * bytes into a buffer under a mutex and wakes the loop with a uv_async,
 * whose callback passes them on.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libssh/libssh.h>
#include <libssh/server.h>		/* ssh_send_keepalive, a client's probe too */
#include <uv.h>

#include "base.h"
#include "admin/peer-client-int.h"
#include "admin/peer-client.h"

/* Bytes a relay holds for the loop before it stops reading the replica. */
#define PEER_RELAY_MAX (256u * 1024)
/* A relay that heard nothing from its replica for this long asks whether it is there. */
#define PEER_PROBE_MS 1000

/* One command whose output comes from another replica as it runs. */
struct peer_relay {
	struct peer_client pc;		/* a copy: it may outlive its caller */
	struct peer_creds creds;
	char *host;
	uint16_t port;
	char *command;
	int cols, rows;		/* the PTY asked for; 0: none */
	uv_thread_t thread;
	uv_async_t async;
	uv_mutex_t mu;
	struct buf out;		/* bytes for the loop, under mu */
	bool finished;		/* the thread is done (under mu) */
	int status;
	char why[256];		/* what went wrong, once finished ("": nothing) */
	atomic_bool quit;	/* send 'q' to the replica */
	atomic_bool stop;	/* close at once */
	atomic_int new_cols, new_rows;	/* the watcher's terminal, when resized */
	atomic_bool resized;
	peer_relay_cb cb;	/* NULL once cancelled */
	void *arg;
};

/* Hand bytes to the loop; waits (briefly) while the loop has not taken the last ones. */
static bool
peer_relay_put(struct peer_relay *r, const char *buf, size_t n)
{
	bool ok;

	while (!atomic_load(&r->stop)) {
		uv_mutex_lock(&r->mu);
		if (r->out.len + n <= PEER_RELAY_MAX) {
			buf_add(&r->out, buf, n);
			ok = !r->out.oom;
			uv_mutex_unlock(&r->mu);
			uv_async_send(&r->async);
			return ok;
		}
		uv_mutex_unlock(&r->mu);
		uv_sleep(10);
	}
	return false;
}

/* Keep the first line of a failed command's stderr (a relay without a PTY). */
static void
peer_relay_err(struct peer_relay *r, const char *buf, size_t n)
{
	size_t have = strlen(r->why), room = sizeof r->why - 1 - have;

	if (have > 0 && memchr(r->why, '\n', have) != NULL)
		return;
	if (n > room)
		n = room;
	memcpy(r->why + have, buf, n);
	r->why[have + n] = '\0';
}

/*
 * Whether the replica still answers: a keepalive@openssh.com global
 * request wants a reply (a refusal will do), which libssh waits for up to
 * the session's timeout, PEER_TIMEOUT_MS. ssh_send_keepalive does not say
 * whether the reply came, so a wait as long as the timeout is the sign of
 * a replica that holds its connection open and no longer answers (stopped,
 * or cut off by a partition that drops packets).
 */
static bool
peer_alive(ssh_session ssh, const char **why)
{
	uint64_t t0 = peer_now_ms();

	ssh_send_keepalive(ssh);
	if (!ssh_is_connected(ssh)) {
		*why = "connection lost";
		return false;
	}
	if (peer_now_ms() - t0 >= PEER_TIMEOUT_MS) {
		*why = "no answer in time";
		return false;
	}
	return true;
}

/*
 * The relay's thread: run the command on the replica and pass its bytes
 * on. A quiet replica is probed every PEER_PROBE_MS: a watched session or
 * a follow may be silent for long, and a replica that stops answering
 * without closing its connection would otherwise never be noticed.
 */
static void
peer_relay_thread(void *arg)
{
	struct peer_relay *r = arg;
	ssh_session ssh = NULL;
	ssh_channel ch = NULL;
	const char *why = NULL;
	char buf[16384], msg[256];
	bool quit_sent = false;
	uint64_t heard;
	int n, status = 1;

	if ((ssh = peer_connect(r->host, r->port, &r->creds, PEER_TIMEOUT_MS, &why)) == NULL)
		goto fail;
	if ((ch = peer_channel(ssh, &r->creds, r->command, r->cols, r->rows, NULL)) == NULL) {
		why = r->cols > 0 ? "the watch was refused" : "the command was refused";
		goto fail;
	}
	heard = peer_now_ms();
	while (!atomic_load(&r->stop)) {
		if (peer_now_ms() - heard >= PEER_PROBE_MS) {
			if (!peer_alive(ssh, &why))
				goto fail;
			heard = peer_now_ms();
		}
		if (atomic_exchange(&r->resized, false))
			ssh_channel_change_pty_size(ch, atomic_load(&r->new_cols),
			    atomic_load(&r->new_rows));
		if (atomic_load(&r->quit) && !quit_sent) {
			ssh_channel_write(ch, "q", 1);
			quit_sent = true;
		}
		n = ssh_channel_read_timeout(ch, buf, sizeof buf, 0, 50);
		if (n == SSH_ERROR) {
			why = "connection lost";
			goto fail;
		}
		if (n > 0)
			heard = peer_now_ms();
		if (n > 0 && !peer_relay_put(r, buf, (size_t)n))
			break;
		while ((n = ssh_channel_read_nonblocking(ch, buf, sizeof buf, 1)) > 0) {
			heard = peer_now_ms();
			if (r->cols == 0)
				peer_relay_err(r, buf, (size_t)n);
			else if (!peer_relay_put(r, buf, (size_t)n))
				break;
		}
		if (ssh_channel_is_eof(ch) && ssh_channel_poll(ch, 0) <= 0 &&
		    ssh_channel_poll(ch, 1) <= 0) {
			status = ssh_channel_get_exit_status(ch);
			break;
		}
	}
	if (status == 0)
		r->why[0] = '\0';
	r->why[strcspn(r->why, "\r\n")] = '\0';
	goto out;
fail:
	if (r->cols > 0) {
		n = snprintf(msg, sizeof msg, "\r\npodgate: replica %s:%u unreachable: %s\r\n",
		    r->host, r->port, why);
		peer_relay_put(r, msg, (size_t)n);
	}
	snprintf(r->why, sizeof r->why, "%s", why);
out:
	if (ch != NULL) {
		ssh_channel_close(ch);
		ssh_channel_free(ch);
	}
	peer_close(ssh);
	uv_mutex_lock(&r->mu);
	r->finished = true;
	r->status = status < 0 ? 1 : status;
	uv_mutex_unlock(&r->mu);
	uv_async_send(&r->async);
}

/* Free a relay once its async handle is closed. */
static void
peer_relay_close_cb(uv_handle_t *h)
{
	struct peer_relay *r = h->data;

	uv_mutex_destroy(&r->mu);
	peer_creds_free(&r->creds);
	free(r->host);
	free(r->command);
	buf_free(&r->out);
	free(r);
}

/* The thread has bytes or finished: pass them on, on the loop. */
static void
peer_relay_async_cb(uv_async_t *a)
{
	struct peer_relay *r = a->data;
	struct buf out;
	bool finished;
	int status;

	uv_mutex_lock(&r->mu);
	out = r->out;	/* taken: the thread starts a new one */
	r->out = (struct buf){ 0 };
	finished = r->finished;
	status = r->status;
	uv_mutex_unlock(&r->mu);
	if (out.len > 0 && r->cb != NULL)
		r->cb(r->arg, out.data, out.len, 0, NULL);
	buf_free(&out);
	if (!finished)
		return;
	uv_thread_join(&r->thread);
	if (r->cb != NULL)
		r->cb(r->arg, NULL, 0, status, r->why[0] != '\0' ? r->why : NULL);
	r->cb = NULL;
	uv_close((uv_handle_t *)&r->async, peer_relay_close_cb);
}

/* Run a command on another replica and pass its output on. */
int
peer_relay_start(const struct peer_client *pc, const struct cfg_user *u, const char *addr,
    const char *command, int cols, int rows, peer_relay_cb cb, void *arg,
    struct peer_relay **rp)
{
	struct peer_relay *r;
	int e;

	*rp = NULL;
	if ((r = calloc(1, sizeof *r)) == NULL)
		return -ENOMEM;
	if (peer_creds_fill(pc, u, &r->creds) < 0 || (r->command = strdup(command)) == NULL ||
	    peer_split(addr, &r->host, &r->port) < 0) {
		peer_creds_free(&r->creds);
		free(r->command);
		free(r);
		return -ENOMEM;
	}
	r->pc = *pc;
	r->cols = cols;
	r->rows = rows;
	r->cb = cb;
	r->arg = arg;
	atomic_init(&r->quit, false);
	atomic_init(&r->stop, false);
	atomic_init(&r->resized, false);
	atomic_init(&r->new_cols, cols);
	atomic_init(&r->new_rows, rows);
	uv_mutex_init(&r->mu);
	uv_async_init(pc->loop, &r->async, peer_relay_async_cb);
	r->async.data = r;
	if ((e = uv_thread_create(&r->thread, peer_relay_thread, r)) < 0) {
		r->cb = NULL;
		uv_close((uv_handle_t *)&r->async, peer_relay_close_cb);
		return e;
	}
	*rp = r;
	return 0;
}

/* Ask the replica to stop the watch. */
void
peer_relay_quit(struct peer_relay *r)
{
	if (r != NULL)
		atomic_store(&r->quit, true);
}

/* The watcher's terminal changed size: pass it on. */
void
peer_relay_resize(struct peer_relay *r, int cols, int rows)
{
	if (r == NULL)
		return;
	atomic_store(&r->new_cols, cols);
	atomic_store(&r->new_rows, rows);
	atomic_store(&r->resized, true);
}

/* Forget the caller of a relay. */
void
peer_relay_cancel(struct peer_relay *r)
{
	if (r == NULL)
		return;
	r->cb = NULL;
	atomic_store(&r->stop, true);
}
