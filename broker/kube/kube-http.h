/*
 * HTTP/1.1 for the native Kubernetes transport, without I/O: a reader
 * for one response (status line, headers, a body of Content-Length,
 * chunked or up to the end of the connection) fed bytes as they come,
 * and the pieces of a request (percent-encoding, the WebSocket key and
 * its expected accept value).
 */
#ifndef PODGATE_KUBE_HTTP_H
#define PODGATE_KUBE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define KUBE_HTTP_HEAD_MAX (64u * 1024)
#define KUBE_HTTP_BODY_MAX (32u * 1024 * 1024)

enum kube_http_state {
	KUBE_HTTP_HEAD,		/* reading the status line and headers */
	KUBE_HTTP_BODY,		/* reading a Content-Length body */
	KUBE_HTTP_CHUNK_SIZE,	/* chunked: reading a size line */
	KUBE_HTTP_CHUNK_DATA,	/* chunked: reading chunk bytes */
	KUBE_HTTP_CHUNK_CRLF,	/* chunked: the CRLF after a chunk */
	KUBE_HTTP_TRAILER,	/* chunked: trailer lines up to an empty one */
	KUBE_HTTP_UNTIL_CLOSE,	/* a body that ends with the connection */
	KUBE_HTTP_DONE,		/* a whole response was read */
};

/* One response being read. */
struct kube_http_resp {
	enum kube_http_state state;
	bool head_only;		/* stop after the headers (a HEAD, or an upgrade) */
	int status;		/* 100..599 */
	bool keep_alive;	/* the connection may carry another request */
	bool chunked;
	int64_t content_length;	/* -1 when not given */
	char *upgrade;		/* Upgrade: value, or NULL */
	char *connection;	/* Connection: value, or NULL */
	char *accept;		/* Sec-WebSocket-Accept, or NULL */
	char *protocol;		/* Sec-WebSocket-Protocol, or NULL */
	char *content_type;
	/* internal */
	struct buf head;	/* bytes of the head read so far */
	char line[64];		/* a chunk size line */
	size_t linelen;
	uint64_t left;		/* bytes of the body or chunk still to come */
	/* the body */
	struct buf body;	/* NUL-terminated; data NULL when empty */
};

/* Prepare r for a response; head_only stops after the headers. */
void kube_http_resp_init(struct kube_http_resp *r, bool head_only);

/* Free what r holds and clear it. */
void kube_http_resp_clear(struct kube_http_resp *r);

/*
 * Feed n bytes of the connection. Returns the number of bytes taken (less
 * than n once the response is complete: the rest belongs to whatever
 * follows, such as WebSocket frames), or -EPROTO on a malformed response,
 * -EMSGSIZE when the head or body is larger than allowed, -ENOMEM.
 */
long kube_http_resp_feed(struct kube_http_resp *r, const void *buf, size_t n);

/*
 * The connection ended. Returns 0 when that completes the response (a
 * body read to the end of the connection), -EPIPE otherwise.
 */
int kube_http_resp_eof(struct kube_http_resp *r);

/* Whether the whole response was read. */
bool kube_http_resp_done(const struct kube_http_resp *r);

/*
 * Append s to b percent-encoded for a URL query (everything but
 * A-Z a-z 0-9 - . _ ~); returns 0 or -ENOMEM.
 */
int kube_http_escape(struct buf *b, const char *s);

/*
 * A fresh Sec-WebSocket-Key (base64 of 16 random bytes, 24 characters and
 * a NUL in key) and the Sec-WebSocket-Accept the server must answer with
 * (28 characters and a NUL in accept). Returns 0 or -EIO.
 */
int kube_http_ws_key(char key[25], char accept[29]);

/* The Sec-WebSocket-Accept value for key (28 characters and a NUL). */
void kube_http_ws_accept(const char *key, char accept[29]);

#endif
