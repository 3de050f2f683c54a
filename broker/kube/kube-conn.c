/*
 * Connections to the API server: resolved and connected without
 * blocking, driven by uv_poll on a nonblocking socket with OpenSSL on the
 * descriptor; one request and its response head, then the bytes of a
 * stream (a WebSocket) for whoever holds the connection. A cluster keeps
 * one connection opened ahead for its next session, and helpers make one
 * GET on a private loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "kube/kube-client-int.h"
#include "kube/kube-client.h"
#include "kube/kube-json.h"
#include "kube/kube.h"
#include "kube/kubeconfig.h"
#include "base/log.h"

/* ---- connections ---- */

enum kube_conn_state {
	KC_RESOLVE,
	KC_CONNECT,
	KC_HANDSHAKE,
	KC_READY,
	KC_REQUEST,
	KC_STREAM,
	KC_FAILED,
};

struct kube_conn {
	struct kube_client *cl;
	uv_loop_t *loop;
	enum kube_conn_state state;
	kube_conn_cb cb;
	void *arg;
	uv_getaddrinfo_t gai;
	bool gai_pending;
	struct addrinfo *ai, *ai_next;
	bool ai_uv;			/* ai from uv_getaddrinfo (uv_freeaddrinfo) */
	int fd;
	uv_poll_t *poll;		/* NULL when not polling */
	int events;
	unsigned refs;			/* the owner, a pending lookup, poll handles */
	bool closed;			/* the owner let go */
	SSL *ssl;
	int rd_ssl, wr_ssl;		/* what SSL asked for last (SSL_ERROR_WANT_*) */
	bool want_rd, want_wr;
	char *out;			/* the request being written */
	size_t outlen, outoff;
	struct kube_http_resp resp;
	char *extra;			/* bytes that followed a response head */
	size_t extralen, extraoff;
	bool eof;
	char err[400];
};

static void kube_conn_poll_cb(uv_poll_t *h, int status, int events);
static void kube_conn_try_next(struct kube_conn *kc);

/* Drop a reference; the last one frees. */
static void
kube_conn_unref(struct kube_conn *kc)
{
	if (--kc->refs > 0)
		return;
	if (kc->ssl != NULL)
		SSL_free(kc->ssl);
	if (kc->fd >= 0)
		close(kc->fd);
	if (kc->ai != NULL) {
		if (kc->ai_uv)
			uv_freeaddrinfo(kc->ai);
		else
			freeaddrinfo(kc->ai);
	}
	kube_http_resp_clear(&kc->resp);
	free(kc->out);
	free(kc->extra);
	free(kc);
}

/* A poll handle finished closing. */
static void
kube_conn_poll_closed(uv_handle_t *h)
{
	struct kube_conn *kc = h->data;

	free(h);
	kube_conn_unref(kc);
}

/* Stop polling and close the descriptor's handle. */
static void
kube_conn_stop_poll(struct kube_conn *kc)
{
	if (kc->poll == NULL)
		return;
	uv_poll_stop(kc->poll);
	uv_close((uv_handle_t *)kc->poll, kube_conn_poll_closed);
	kc->poll = NULL;
	kc->events = 0;
}

/* Poll for ev (0 stops). */
static void
kube_conn_poll(struct kube_conn *kc, int ev)
{
	if (kc->poll == NULL || ev == kc->events)
		return;
	if (ev == 0)
		uv_poll_stop(kc->poll);
	else
		uv_poll_start(kc->poll, ev, kube_conn_poll_cb);
	kc->events = ev;
}

/* Fail the connection: say why, and tell the owner. */
static void kube_conn_fail(struct kube_conn *kc, enum kube_conn_event ev, int err,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
kube_conn_fail(struct kube_conn *kc, enum kube_conn_event ev, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(kc->err, sizeof kc->err, fmt, ap);
	va_end(ap);
	kc->state = KC_FAILED;
	kube_conn_poll(kc, 0);
	if (!kc->closed)
		kc->cb(kc, ev, err, kc->arg);
}

/* The TLS handshake, as far as it goes now. */
static void
kube_conn_handshake(struct kube_conn *kc)
{
	char e[256];
	long vr;
	int r, se;

	ERR_clear_error();
	r = SSL_do_handshake(kc->ssl);
	if (r == 1) {
		kc->state = KC_READY;
		kube_conn_poll(kc, 0);
		kc->cb(kc, KUBE_CONN_OPEN, 0, kc->arg);
		return;
	}
	se = SSL_get_error(kc->ssl, r);
	if (se == SSL_ERROR_WANT_READ) {
		kube_conn_poll(kc, UV_READABLE);
		return;
	}
	if (se == SSL_ERROR_WANT_WRITE) {
		kube_conn_poll(kc, UV_WRITABLE);
		return;
	}
	vr = SSL_get_verify_result(kc->ssl);
	if (vr != X509_V_OK)
		kube_conn_fail(kc, KUBE_CONN_OPEN, -EPROTO, "TLS handshake with %s failed: "
		    "certificate verify failed (%s)", kc->cl->where,
		    X509_verify_cert_error_string(vr));
	else if (se == SSL_ERROR_SYSCALL || se == SSL_ERROR_ZERO_RETURN)
		kube_conn_fail(kc, KUBE_CONN_OPEN, -EPROTO, "TLS handshake with %s failed: the "
		    "connection was closed", kc->cl->where);
	else
		kube_conn_fail(kc, KUBE_CONN_OPEN, -EPROTO, "TLS handshake with %s failed: %s",
		    kc->cl->where, kube_ssl_error(e, sizeof e));
	ERR_clear_error();
}

/* Set up TLS on the connected socket. */
static int
kube_conn_start_tls(struct kube_conn *kc)
{
	struct kube_client *cl = kc->cl;
	const char *name = cl->kc.server_name != NULL ? cl->kc.server_name : cl->kc.host;
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;

	if ((kc->ssl = SSL_new(cl->ctx)) == NULL || SSL_set_fd(kc->ssl, kc->fd) != 1)
		return -ENOMEM;
	SSL_set_connect_state(kc->ssl);
	if (!is_ip)
		SSL_set_tlsext_host_name(kc->ssl, name);
	if (!cl->kc.insecure) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(kc->ssl);

		if (is_ip)
			X509_VERIFY_PARAM_set1_ip_asc(vp, name);
		else
			X509_VERIFY_PARAM_set1_host(vp, name, 0);
	}
	if (cl->cred_cert != NULL && cl->cred_key != NULL &&
	    (SSL_use_certificate(kc->ssl, cl->cred_cert) != 1 ||
	    SSL_use_PrivateKey(kc->ssl, cl->cred_key) != 1))
		return -EINVAL;
	kc->state = KC_HANDSHAKE;
	kube_conn_handshake(kc);
	return 0;
}

/* The socket connected (or failed to). */
static void
kube_conn_connected(struct kube_conn *kc)
{
	socklen_t sl = sizeof(int);
	int soerr = 0, one = 1;

	if (getsockopt(kc->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr != 0) {
		snprintf(kc->err, sizeof kc->err, "connect to %s: %s", kc->cl->where,
		    strerror(soerr));
		kube_conn_try_next(kc);
		return;
	}
	setsockopt(kc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (!kc->cl->kc.tls) {
		kc->state = KC_READY;
		kube_conn_poll(kc, 0);
		kc->cb(kc, KUBE_CONN_OPEN, 0, kc->arg);
		return;
	}
	if (kube_conn_start_tls(kc) < 0)
		kube_conn_fail(kc, KUBE_CONN_OPEN, -EPROTO, "cannot start TLS with %s",
		    kc->cl->where);
}

/* Try the next address. */
static void
kube_conn_try_next(struct kube_conn *kc)
{
	struct addrinfo *a;
	int fd, r;

	kube_conn_stop_poll(kc);
	if (kc->fd >= 0) {
		close(kc->fd);
		kc->fd = -1;
	}
	while ((a = kc->ai_next) != NULL) {
		kc->ai_next = a->ai_next;
		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    a->ai_protocol);
		if (fd < 0) {
			snprintf(kc->err, sizeof kc->err, "socket: %s", strerror(errno));
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			snprintf(kc->err, sizeof kc->err, "connect to %s: %s", kc->cl->where,
			    strerror(errno));
			close(fd);
			continue;
		}
		if ((kc->poll = calloc(1, sizeof *kc->poll)) == NULL ||
		    (r = uv_poll_init(kc->loop, kc->poll, fd)) < 0) {
			free(kc->poll);
			kc->poll = NULL;
			close(fd);
			snprintf(kc->err, sizeof kc->err, "out of memory");
			break;
		}
		kc->poll->data = kc;
		kc->refs++;
		kc->fd = fd;
		kc->state = KC_CONNECT;
		kube_conn_poll(kc, UV_WRITABLE);
		return;
	}
	kube_conn_fail(kc, KUBE_CONN_OPEN, -ECONNREFUSED, "%s", kc->err[0] ? kc->err :
	    "no address to connect to");
}

/* The name was looked up. */
static void
kube_conn_gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct kube_conn *kc = req->data;

	kc->gai_pending = false;
	if (kc->closed) {
		if (res != NULL)
			uv_freeaddrinfo(res);
		kube_conn_unref(kc);
		return;
	}
	kube_conn_unref(kc);	/* the owner still holds one */
	if (status < 0) {
		kube_conn_fail(kc, KUBE_CONN_OPEN, -EHOSTUNREACH, "cannot resolve %s: %s",
		    kc->cl->kc.host, uv_strerror(status));
		return;
	}
	kc->ai = kc->ai_next = res;
	kc->ai_uv = true;
	kube_conn_try_next(kc);
}

/* Open a connection. */
int
kube_conn_open(struct kube_client *cl, uv_loop_t *loop, kube_conn_cb cb, void *arg,
    struct kube_conn **out)
{
	struct addrinfo hints;
	struct kube_conn *kc;
	int r;

	*out = NULL;
	if ((kc = calloc(1, sizeof *kc)) == NULL)
		return -ENOMEM;
	kc->cl = cl;
	kc->loop = loop;
	kc->cb = cb;
	kc->arg = arg;
	kc->fd = -1;
	kc->refs = 1;
	kc->state = KC_RESOLVE;
	kube_http_resp_init(&kc->resp, false);
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(cl->kc.host, cl->kc.port, &hints, &kc->ai) == 0) {
		/* A numeric address: connect now. */
		kc->ai_next = kc->ai;
		*out = kc;
		kube_conn_try_next(kc);
		return 0;
	}
	kc->ai = NULL;
	hints.ai_flags = AI_NUMERICSERV;
	kc->gai.data = kc;
	if ((r = uv_getaddrinfo(loop, &kc->gai, kube_conn_gai_cb, cl->kc.host, cl->kc.port,
	    &hints)) < 0) {
		free(kc);
		return r;
	}
	kc->gai_pending = true;
	kc->refs++;
	*out = kc;
	return 0;
}

/* Read from the socket or TLS. Returns n, 0 at EOF, -EAGAIN, or -errno. */
static long
kube_conn_raw_read(struct kube_conn *kc, void *buf, size_t len)
{
	ssize_t n;
	int r, se;

	if (kc->ssl == NULL) {
		n = recv(kc->fd, buf, len, 0);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ?
			    -EAGAIN : -errno;
		return (long)n;
	}
	ERR_clear_error();
	r = SSL_read(kc->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (r > 0) {
		kc->rd_ssl = 0;
		return r;
	}
	se = SSL_get_error(kc->ssl, r);
	if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
		kc->rd_ssl = se;
		return -EAGAIN;
	}
	if (se == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (se == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		return errno != 0 && r < 0 ? -errno : 0;
	ERR_clear_error();
	return -EPROTO;
}

/* Write to the socket or TLS. Returns n, -EAGAIN, or -errno. */
static long
kube_conn_raw_write(struct kube_conn *kc, const void *buf, size_t len)
{
	ssize_t n;
	int r, se;

	if (len == 0)
		return 0;
	if (kc->ssl == NULL) {
		n = send(kc->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ?
			    -EAGAIN : -errno;
		return (long)n;
	}
	ERR_clear_error();
	r = SSL_write(kc->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (r > 0) {
		kc->wr_ssl = 0;
		return r;
	}
	se = SSL_get_error(kc->ssl, r);
	if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
		kc->wr_ssl = se;
		return -EAGAIN;
	}
	ERR_clear_error();
	return -EPIPE;
}

/* Move a request and its response along. */
static void
kube_conn_request_io(struct kube_conn *kc)
{
	char buf[16384];
	long n, taken;

	while (kc->outoff < kc->outlen) {
		n = kube_conn_raw_write(kc, kc->out + kc->outoff, kc->outlen - kc->outoff);
		if (n == -EAGAIN) {
			kube_conn_poll(kc, kc->wr_ssl == SSL_ERROR_WANT_READ ? UV_READABLE :
			    UV_WRITABLE);
			return;
		}
		if (n < 0) {
			kube_conn_fail(kc, KUBE_CONN_RESPONSE, -EPIPE, "the API server at %s "
			    "closed the connection", kc->cl->where);
			return;
		}
		kc->outoff += (size_t)n;
	}
	for (;;) {
		n = kube_conn_raw_read(kc, buf, sizeof buf);
		if (n == -EAGAIN) {
			kube_conn_poll(kc, kc->rd_ssl == SSL_ERROR_WANT_WRITE ? UV_WRITABLE :
			    UV_READABLE);
			return;
		}
		if (n <= 0) {
			if (n == 0 && kube_http_resp_eof(&kc->resp) == 0)
				break;
			kube_conn_fail(kc, KUBE_CONN_RESPONSE, -EPIPE, "the API server at %s "
			    "closed the connection without an answer", kc->cl->where);
			return;
		}
		taken = kube_http_resp_feed(&kc->resp, buf, (size_t)n);
		if (taken < 0) {
			kube_conn_fail(kc, KUBE_CONN_RESPONSE, (int)taken, "the API server at %s "
			    "sent a malformed response (%s)", kc->cl->where,
			    strerror((int)-taken));
			return;
		}
		if (kube_http_resp_done(&kc->resp)) {
			if (taken < n) {
				free(kc->extra);
				kc->extralen = (size_t)(n - taken);
				kc->extraoff = 0;
				if ((kc->extra = malloc(kc->extralen)) == NULL) {
					kube_conn_fail(kc, KUBE_CONN_RESPONSE, -ENOMEM,
					    "out of memory");
					return;
				}
				memcpy(kc->extra, buf + taken, kc->extralen);
			}
			break;
		}
	}
	kc->state = kc->resp.status == 101 ? KC_STREAM : KC_READY;
	if (kc->state == KC_READY && (!kc->resp.keep_alive || kc->extralen > 0))
		kc->eof = true;	/* no further requests on it */
	kube_conn_poll(kc, 0);
	kc->cb(kc, KUBE_CONN_RESPONSE, 0, kc->arg);
}

/* The descriptor is ready. */
static void
kube_conn_poll_cb(uv_poll_t *h, int status, int events)
{
	struct kube_conn *kc = h->data;

	if (kc->closed)
		return;
	switch (kc->state) {
	case KC_CONNECT:
		kube_conn_connected(kc);
		break;
	case KC_HANDSHAKE:
		kube_conn_handshake(kc);
		break;
	case KC_REQUEST:
		kube_conn_request_io(kc);
		break;
	case KC_STREAM:
		kc->cb(kc, KUBE_CONN_IO, status < 0 ? status : 0, kc->arg);
		break;
	case KC_READY: {
		/*
		 * An idle connection became readable: TLS records after the
		 * handshake (session tickets), or the server closing it.
		 */
		char b[64];
		long n = kube_conn_raw_read(kc, b, sizeof b);

		if (n == -EAGAIN) {
			kube_conn_poll(kc, kc->rd_ssl == SSL_ERROR_WANT_WRITE ? UV_WRITABLE :
			    UV_READABLE);
			break;
		}
		kc->eof = true;
		kube_conn_poll(kc, 0);
		break;
	}
	default:
		kube_conn_poll(kc, 0);
		break;
	}
}

/* Send a request. */
int
kube_conn_request(struct kube_conn *kc, const char *req, size_t len, bool head_only)
{
	if (kc->state != KC_READY || kc->eof)
		return -EPIPE;
	free(kc->out);
	if ((kc->out = malloc(len)) == NULL)
		return -ENOMEM;
	memcpy(kc->out, req, len);
	kc->outlen = len;
	kc->outoff = 0;
	kube_http_resp_clear(&kc->resp);
	kube_http_resp_init(&kc->resp, head_only);
	kc->state = KC_REQUEST;
	kube_conn_poll(kc, UV_WRITABLE);
	return 0;
}

struct kube_http_resp *
kube_conn_response(struct kube_conn *kc)
{
	return &kc->resp;
}

const char *
kube_conn_error(const struct kube_conn *kc)
{
	return kc->err;
}

bool
kube_conn_reusable(const struct kube_conn *kc)
{
	return kc->state == KC_READY && !kc->eof;
}

/* Stream mode read. */
long
kube_conn_read(struct kube_conn *kc, void *buf, size_t len)
{
	size_t n;

	if (kc->extraoff < kc->extralen) {
		n = kc->extralen - kc->extraoff;
		if (n > len)
			n = len;
		memcpy(buf, kc->extra + kc->extraoff, n);
		kc->extraoff += n;
		return (long)n;
	}
	if (kc->state != KC_STREAM)
		return -EPIPE;
	return kube_conn_raw_read(kc, buf, len);
}

/* Stream mode write. */
long
kube_conn_write(struct kube_conn *kc, const void *buf, size_t len)
{
	if (kc->state != KC_STREAM)
		return -EPIPE;
	return kube_conn_raw_write(kc, buf, len);
}

bool
kube_conn_pending(const struct kube_conn *kc)
{
	return kc->extraoff < kc->extralen || (kc->ssl != NULL && SSL_pending(kc->ssl) > 0);
}

/* Stream mode: what the owner waits for. */
void
kube_conn_want(struct kube_conn *kc, bool rd, bool wr)
{
	int ev = 0;

	if (kc->state != KC_STREAM)
		return;
	kc->want_rd = rd;
	kc->want_wr = wr;
	if (rd)
		ev |= kc->rd_ssl == SSL_ERROR_WANT_WRITE ? UV_WRITABLE : UV_READABLE;
	if (wr)
		ev |= kc->wr_ssl == SSL_ERROR_WANT_READ ? UV_READABLE : UV_WRITABLE;
	kube_conn_poll(kc, ev);
}

/* Close the connection. */
void
kube_conn_close(struct kube_conn *kc)
{
	if (kc == NULL || kc->closed)
		return;
	kc->closed = true;
	if (kc->gai_pending)
		uv_cancel((uv_req_t *)&kc->gai);
	kube_conn_stop_poll(kc);
	kube_conn_unref(kc);
}

/* ---- the spare connection ---- */

/* News of the spare: once open it waits, unreferenced, for the next session. */
static void
kube_spare_cb(struct kube_conn *kc, enum kube_conn_event ev, int err, void *arg)
{
	struct kube_client *cl = arg;

	if (cl->spare != kc)
		return;
	if (ev == KUBE_CONN_OPEN && err == 0 && kc->state == KC_READY) {
		/* Notice the server closing it; it keeps no loop alive. */
		kube_conn_poll(kc, UV_READABLE);
		if (kc->poll != NULL)
			uv_unref((uv_handle_t *)kc->poll);
		return;
	}
	cl->spare = NULL;
	kube_conn_close(kc);
}

/* Close the spare connection, if any. */
void
kube_client_drop_spare(struct kube_client *cl)
{
	struct kube_conn *kc = cl->spare;

	if (kc == NULL)
		return;
	cl->spare = NULL;
	kube_conn_close(kc);
}

/* A connection for a request: the spare when it is open (or opening), else a new one. */
int
kube_client_conn(struct kube_client *cl, uv_loop_t *loop, kube_conn_cb cb, void *arg,
    struct kube_conn **out)
{
	struct kube_conn *kc = cl->spare;
	int r;

	*out = NULL;
	if (kc != NULL && kc->loop == loop && !kc->eof && kc->state != KC_FAILED &&
	    kc->state <= KC_READY) {
		cl->spare = NULL;
		kc->cb = cb;
		kc->arg = arg;
		if (kc->poll != NULL)
			uv_ref((uv_handle_t *)kc->poll);
		if (kc->state == KC_READY)
			kube_conn_poll(kc, 0);
		*out = kc;
		r = kc->state == KC_READY ? 1 : 0;
	} else {
		kube_client_drop_spare(cl);
		if ((r = kube_conn_open(cl, loop, cb, arg, out)) < 0)
			return r;
	}
	/* Open the next one now, off the next session's path. */
	if (cl->spare == NULL && kube_conn_open(cl, loop, kube_spare_cb, cl, &cl->spare) < 0)
		cl->spare = NULL;
	return r;
}

/* Close every spare connection (the loop is ending). */
void
kube_client_close_spares(void)
{
	struct kube_client *cl;

	for (cl = kube_clients; cl != NULL; cl = cl->next)
		kube_client_drop_spare(cl);
}

/* ---- one GET on a private loop ---- */

struct kube_sync {
	bool done;
	int err;
	enum kube_conn_event ev;
	char why[512];
};

static void
kube_sync_auth_cb(void *arg, int err, const char *why)
{
	struct kube_sync *s = arg;

	s->done = true;
	s->err = err;
	snprintf(s->why, sizeof s->why, "%s", why != NULL ? why : "");
}

static void
kube_sync_conn_cb(struct kube_conn *kc, enum kube_conn_event ev, int err, void *arg)
{
	struct kube_sync *s = arg;

	s->done = true;
	s->err = err;
	s->ev = ev;
	if (err < 0)
		snprintf(s->why, sizeof s->why, "%s", kc->err);
}

static void
kube_sync_timer_cb(uv_timer_t *t)
{
	struct kube_sync *s = t->data;

	s->done = true;
	s->err = -ETIMEDOUT;
}

/* Run the loop until s is done. */
static void
kube_sync_wait(uv_loop_t *loop, struct kube_sync *s)
{
	while (!s->done && uv_run(loop, UV_RUN_ONCE) != 0)
		;
}

/* One GET to completion. */
int
kube_client_sync_get(struct kube_client *cl, uv_loop_t *loop, struct kube_conn **conn,
    const char *path, const struct kube_ident *id, unsigned timeout, int *status,
    char **body, size_t *bodylen, char *err, size_t errlen)
{
	struct kube_sync s;
	uv_timer_t timer;
	struct buf req = { 0 };
	int r, attempt;

	*status = 0;
	*body = NULL;
	*bodylen = 0;
	uv_timer_init(loop, &timer);
	memset(&s, 0, sizeof s);
	timer.data = &s;
	uv_timer_start(&timer, kube_sync_timer_cb, (uint64_t)timeout * 1000, 0);
	for (attempt = 0; attempt < 2; attempt++) {
		memset(&s, 0, sizeof s);
		if ((r = kube_client_auth(cl, loop, kube_sync_auth_cb, &s)) < 0)
			goto out;
		kube_sync_wait(loop, &s);
		if ((r = s.err) < 0) {
			if (r != -ETIMEDOUT)
				snprintf(err, errlen, "%s", s.why);
			kube_client_auth_cancel(cl, &s);
			goto out;
		}
		if (*conn != NULL && !kube_conn_reusable(*conn)) {
			kube_conn_close(*conn);
			*conn = NULL;
		}
		if (*conn == NULL) {
			memset(&s, 0, sizeof s);
			if ((r = kube_conn_open(cl, loop, kube_sync_conn_cb, &s, conn)) < 0) {
				snprintf(err, errlen, "cannot connect: %s", strerror(-r));
				goto out;
			}
			kube_sync_wait(loop, &s);
			if ((r = s.err) < 0) {
				if (r != -ETIMEDOUT)
					snprintf(err, errlen, "cannot reach the API server of "
					    "cluster %s: %s", cl->name, s.why);
				goto out;
			}
		}
		buf_reset(&req);
		if ((r = kube_client_request(cl, "GET", path, id, "Accept: application/json\r\n",
		    &req)) < 0) {
			snprintf(err, errlen, "cannot build the request");
			goto out;
		}
		memset(&s, 0, sizeof s);
		(*conn)->arg = &s;
		if ((r = kube_conn_request(*conn, req.data, req.len, false)) < 0) {
			snprintf(err, errlen, "cannot send the request");
			goto out;
		}
		kube_sync_wait(loop, &s);
		if ((r = s.err) < 0) {
			if (r != -ETIMEDOUT)
				snprintf(err, errlen, "%s", s.why);
			goto out;
		}
		if ((*conn)->resp.status == 401 && attempt == 0 && kube_client_has_plugin(cl)) {
			kube_client_unauthorized(cl);
			continue;
		}
		break;
	}
	*status = (*conn)->resp.status;
	*body = (*conn)->resp.body.data;
	*bodylen = (*conn)->resp.body.len;
	memset(&(*conn)->resp.body, 0, sizeof (*conn)->resp.body);	/* transferred */
	r = 0;
out:
	if (r == -ETIMEDOUT)
		snprintf(err, errlen, "the API server of cluster %s did not answer within %us",
		    cl->name, timeout);
	if (r < 0 && *conn != NULL) {
		kube_conn_close(*conn);
		*conn = NULL;
	}
	buf_free(&req);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return r;
}

/* Close a connection of the sync API. */
void
kube_client_sync_close(uv_loop_t *loop, struct kube_conn *conn)
{
	kube_conn_close(conn);
	uv_run(loop, UV_RUN_NOWAIT);
}
