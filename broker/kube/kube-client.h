/*
 * The native Kubernetes client, inside a libuv loop: per-cluster state
 * (kubeconfig, OpenSSL context, credentials) and connections to the API
 * server (TCP, TLS through OpenSSL, HTTP/1.1 requests and responses).
 * The exec stream (targets/kube-native.c) and the pod picker build on it.
 *
 * Credentials: a static token, a tokenFile re-read whenever it changes,
 * a client certificate and key, or an exec credential plugin run off the
 * loop (uv_spawn) whose ExecCredential is cached until it expires and
 * dropped on a 401. In-cluster: the service account token file (re-read;
 * bound tokens rotate) and its ca.crt.
 */
#ifndef PODGATE_KUBE_CLIENT_H
#define PODGATE_KUBE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "policy/config.h"
#include "kube/kube-http.h"

struct kube_client;
struct kube_conn;

/* Who requests are made as: Impersonate-User and Impersonate-Group. */
struct kube_ident {
	const char *user;		/* NULL: the broker's own identity */
	char *const *groups;		/* NULL-terminated, or NULL */
};

/*
 * The client of cluster k (made at first use, kept for the process;
 * made again when the kubeconfig file changes). Returns 0, or -EINVAL
 * with a one-line reason in err when the cluster cannot be used natively
 * (a bad or unreadable kubeconfig, or something only kubectl speaks:
 * then the reason says to use transport: kubectl). Never NULL on success.
 */
int kube_client_get(const struct cfg_kube_cluster *k, struct kube_client **out, char *err,
    size_t errlen);

/* Log nothing from here on (for a helper whose stderr is the user's terminal). */
void kube_client_set_quiet(bool quiet);

/* Make the clients of every native cluster of c, logging one line for each that fails. */
void kube_client_check_config(const struct config *c);

/* "HOST:PORT" of the API server, for messages. */
const char *kube_client_where(const struct kube_client *cl);

/* The cluster's name, for messages. */
const char *kube_client_name(const struct kube_client *cl);

/*
 * Make sure credentials are at hand (read a changed token file, run the
 * exec plugin when its credential is missing or expired). cb is called
 * once, on a later loop turn or from inside this call when nothing has to
 * run, with 0 or a negative errno and a reason in the client's last
 * error (kube_client_error). Returns 0, or a negative errno (cb is then
 * never called).
 */
typedef void (*kube_client_auth_cb)(void *arg, int err, const char *why);
int kube_client_auth(struct kube_client *cl, uv_loop_t *loop, kube_client_auth_cb cb,
    void *arg);

/* Cancel a pending kube_client_auth callback for arg (the caller is going away). */
void kube_client_auth_cancel(struct kube_client *cl, void *arg);

/* A 401: forget the plugin's credential so that the next auth runs it again. */
void kube_client_unauthorized(struct kube_client *cl);

/* Whether credentials come from an exec plugin (a 401 is worth one retry). */
bool kube_client_has_plugin(const struct kube_client *cl);

/*
 * Append the request head for METHOD PATH (PATH begins with "/api", the
 * kubeconfig's prefix is added) with Host, User-Agent, Authorization,
 * Impersonate-* and the extra header lines (each ending in CRLF), and
 * the final CRLF to out. Returns 0, -EINVAL when a header value would
 * break the head, or -ENOMEM.
 */
int kube_client_request(struct kube_client *cl, const char *method, const char *path,
    const struct kube_ident *id, const char *extra, struct buf *out);

/* ---- connections ---- */

enum kube_conn_event {
	KUBE_CONN_OPEN,		/* connected (and TLS established), or failed */
	KUBE_CONN_RESPONSE,	/* the response (or its head) was read, or failed */
	KUBE_CONN_IO,		/* stream mode: readable or writable */
};

/*
 * Called with err 0 or a negative errno; on failure the connection's
 * reason (kube_conn_error) says what happened. The connection may be
 * closed from inside the callback.
 */
typedef void (*kube_conn_cb)(struct kube_conn *kc, enum kube_conn_event ev, int err,
    void *arg);

/*
 * Connect to the cluster's API server (resolve, TCP, TLS). Returns 0
 * with *out set and cb called with KUBE_CONN_OPEN, later, or from inside
 * this call when the connection fails at once; or a negative errno (cb
 * never called).
 */
int kube_conn_open(struct kube_client *cl, uv_loop_t *loop, kube_conn_cb cb, void *arg,
    struct kube_conn **out);

/*
 * A connection for the next request. The cluster keeps one connection
 * opened ahead (TCP and TLS done) for the next session: this takes it
 * and starts opening another. Returns 1 with *out ready for a request (no
 * KUBE_CONN_OPEN follows), 0 with *out opening (KUBE_CONN_OPEN follows, or
 * came already: cb may run from inside this call), or a negative errno.
 */
int kube_client_conn(struct kube_client *cl, uv_loop_t *loop, kube_conn_cb cb, void *arg,
    struct kube_conn **out);

/* Close the connections kept ahead (when the loop ends). */
void kube_client_close_spares(void);

/*
 * Send a request (the whole text, copied) and read its response: the
 * head only when head_only (an upgrade). cb gets KUBE_CONN_RESPONSE.
 * Returns 0 or a negative errno.
 */
int kube_conn_request(struct kube_conn *kc, const char *req, size_t len, bool head_only);

/* The response read by the last request (valid until the next one). */
struct kube_http_resp *kube_conn_response(struct kube_conn *kc);

/* Why the last failure happened (one line), or "". */
const char *kube_conn_error(const struct kube_conn *kc);

/* Whether the connection can carry another request. */
bool kube_conn_reusable(const struct kube_conn *kc);

/*
 * Stream mode (after a 101): read up to len bytes (bytes that followed
 * the response head come first). Returns the count, 0 at the end of the
 * stream, -EAGAIN, or another negative errno.
 */
long kube_conn_read(struct kube_conn *kc, void *buf, size_t len);

/* Stream mode: write up to len bytes; returns the count, -EAGAIN or a negative errno. */
long kube_conn_write(struct kube_conn *kc, const void *buf, size_t len);

/* Whether decrypted bytes wait inside the connection (read them without polling). */
bool kube_conn_pending(const struct kube_conn *kc);

/* Stream mode: which events the owner wants (KUBE_CONN_IO callbacks). */
void kube_conn_want(struct kube_conn *kc, bool rd, bool wr);

/* Close and free the connection (on a later loop turn); no callback follows. */
void kube_conn_close(struct kube_conn *kc);

/*
 * Run one GET to completion on a private loop (for helpers outside the
 * broker's loop, such as the pod picker): the body in *body (a new
 * string), the HTTP status in *status. A connection in *conn is reused
 * when it can be and left open for the next call (close it with
 * kube_client_sync_close). Returns 0, or a negative errno with a one-line
 * reason in err (-ETIMEDOUT after timeout seconds).
 */
int kube_client_sync_get(struct kube_client *cl, uv_loop_t *loop, struct kube_conn **conn,
    const char *path, const struct kube_ident *id, unsigned timeout, int *status,
    char **body, size_t *bodylen, char *err, size_t errlen);

/* Close a connection left by kube_client_sync_get and let the loop finish. */
void kube_client_sync_close(uv_loop_t *loop, struct kube_conn *conn);

#endif
