/*
 * HTTP/1.1 responses read from bytes as they arrive, and the small pieces
 * of a request the native Kubernetes transport needs. No I/O: the caller
 * moves bytes (kube-conn.c).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "kube/kube-http.h"

#define KUBE_HTTP_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Prepare r for a new response. */
void
kube_http_resp_init(struct kube_http_resp *r, bool head_only)
{
	memset(r, 0, sizeof *r);
	r->state = KUBE_HTTP_HEAD;
	r->head_only = head_only;
	r->content_length = -1;
}

/* Free r's strings and buffers. */
void
kube_http_resp_clear(struct kube_http_resp *r)
{
	free(r->upgrade);
	free(r->connection);
	free(r->accept);
	free(r->protocol);
	free(r->content_type);
	buf_free(&r->head);
	buf_free(&r->body);
	kube_http_resp_init(r, r->head_only);
}

/* Whether a comma-separated header value holds token (case-insensitive). */
static bool
kube_http_has_token(const char *value, const char *token)
{
	size_t tl = strlen(token);
	const char *p = value;

	while (p != NULL && *p != '\0') {
		p += strspn(p, " \t,");
		if (strncasecmp(p, token, tl) == 0 && (p[tl] == '\0' || p[tl] == ',' ||
		    p[tl] == ' ' || p[tl] == '\t'))
			return true;
		p = strchr(p, ',');
	}
	return false;
}

/* Copy a header value, dropping one already seen (the last one wins). */
static int
kube_http_set(char **dst, const char *v, size_t n)
{
	free(*dst);
	if ((*dst = strndup(v, n)) == NULL)
		return -ENOMEM;
	return 0;
}

/* Parse the status line and headers in r->head (NUL-terminated, CRLF lines). */
static int
kube_http_parse_head(struct kube_http_resp *r)
{
	char *line = r->head.data, *next, *colon, *v, *end;
	long status;
	int minor, rc;

	next = strstr(line, "\r\n");
	if (next == NULL)
		return -EPROTO;
	*next = '\0';
	if (strncmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
	    line[8] != ' ')
		return -EPROTO;
	minor = line[7] - '0';
	if (!isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) ||
	    !isdigit((unsigned char)line[11]) || (line[12] != ' ' && line[12] != '\0'))
		return -EPROTO;
	status = strtol(line + 9, NULL, 10);
	if (status < 100 || status > 599)
		return -EPROTO;
	r->status = (int)status;
	r->keep_alive = minor == 1;
	for (line = next + 2; *line != '\0'; line = next + 2) {
		if ((next = strstr(line, "\r\n")) == NULL)
			return -EPROTO;
		*next = '\0';
		if (*line == ' ' || *line == '\t')
			return -EPROTO;	/* obsolete line folding */
		if ((colon = strchr(line, ':')) == NULL || colon == line)
			return -EPROTO;
		for (v = line; v < colon; v++) {
			if ((unsigned char)*v <= 0x20 || (unsigned char)*v >= 0x7f)
				return -EPROTO;
		}
		*colon = '\0';
		v = colon + 1;
		v += strspn(v, " \t");
		end = v + strlen(v);
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		for (char *q = v; q < end; q++) {
			if ((unsigned char)*q < 0x20 && *q != '\t')
				return -EPROTO;
		}
		rc = 0;
		if (strcasecmp(line, "Content-Length") == 0) {
			int64_t cl = 0;
			char *q;

			if (v == end)
				return -EPROTO;
			for (q = v; q < end; q++) {
				if (!isdigit((unsigned char)*q) || cl > (INT64_MAX - 9) / 10)
					return -EPROTO;
				cl = cl * 10 + (*q - '0');
			}
			if (r->content_length >= 0 && r->content_length != cl)
				return -EPROTO;
			r->content_length = cl;
		} else if (strcasecmp(line, "Transfer-Encoding") == 0) {
			*end = '\0';
			if (!kube_http_has_token(v, "chunked"))
				return -EPROTO;	/* no other coding was asked for */
			r->chunked = true;
		} else if (strcasecmp(line, "Connection") == 0) {
			rc = kube_http_set(&r->connection, v, (size_t)(end - v));
		} else if (strcasecmp(line, "Upgrade") == 0) {
			rc = kube_http_set(&r->upgrade, v, (size_t)(end - v));
		} else if (strcasecmp(line, "Sec-WebSocket-Accept") == 0) {
			rc = kube_http_set(&r->accept, v, (size_t)(end - v));
		} else if (strcasecmp(line, "Sec-WebSocket-Protocol") == 0) {
			rc = kube_http_set(&r->protocol, v, (size_t)(end - v));
		} else if (strcasecmp(line, "Content-Type") == 0) {
			rc = kube_http_set(&r->content_type, v, (size_t)(end - v));
		}
		if (rc < 0)
			return rc;
	}
	if (r->connection != NULL) {
		if (kube_http_has_token(r->connection, "close"))
			r->keep_alive = false;
		else if (kube_http_has_token(r->connection, "keep-alive"))
			r->keep_alive = true;
	}
	if (r->chunked)
		r->content_length = -1;	/* chunked wins over a length (RFC 9112 6.3) */
	return 0;
}

/* Append n bytes to the body, within the limit. */
static int
kube_http_body_add(struct kube_http_resp *r, const char *p, size_t n)
{
	if (n == 0)
		return 0;
	if (n > KUBE_HTTP_BODY_MAX - r->body.len)
		return -EMSGSIZE;
	buf_add(&r->body, p, n);
	return r->body.oom ? -ENOMEM : 0;
}

/* Decide how the body is framed once the head is read. */
static void
kube_http_after_head(struct kube_http_resp *r)
{
	if (r->head_only || r->status == 101 || r->status == 204 || r->status == 304 ||
	    r->status < 200) {
		r->state = KUBE_HTTP_DONE;
	} else if (r->chunked) {
		r->state = KUBE_HTTP_CHUNK_SIZE;
	} else if (r->content_length >= 0) {
		r->left = (uint64_t)r->content_length;
		r->state = r->left > 0 ? KUBE_HTTP_BODY : KUBE_HTTP_DONE;
	} else {
		r->keep_alive = false;
		r->state = KUBE_HTTP_UNTIL_CLOSE;
	}
}

/* Read a chunk size line "HEX[;ext]". */
static int
kube_http_chunk_size(struct kube_http_resp *r)
{
	uint64_t v = 0;
	size_t i;
	int d;

	r->line[r->linelen] = '\0';
	if (r->linelen == 0)
		return -EPROTO;
	for (i = 0; i < r->linelen && r->line[i] != ';'; i++) {
		char ch = r->line[i];

		if (ch >= '0' && ch <= '9')
			d = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			d = ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			d = ch - 'A' + 10;
		else if (ch == ' ' || ch == '\t')
			continue;
		else
			return -EPROTO;
		if (v > (KUBE_HTTP_BODY_MAX >> 4))
			return -EMSGSIZE;
		v = (v << 4) | (uint64_t)d;
	}
	if (i == 0)
		return -EPROTO;
	r->left = v;
	r->linelen = 0;
	r->state = v == 0 ? KUBE_HTTP_TRAILER : KUBE_HTTP_CHUNK_DATA;
	return 0;
}

/* Feed bytes of the response. */
long
kube_http_resp_feed(struct kube_http_resp *r, const void *buf, size_t n)
{
	const char *p = buf;
	size_t i = 0, take, hlen;
	char *h, *end;
	int rc;

	while (i < n && r->state != KUBE_HTTP_DONE) {
		switch (r->state) {
		case KUBE_HTTP_HEAD:
			/* Take bytes up to and including the empty line. */
			take = 0;
			while (i + take < n) {
				take++;
				if (p[i + take - 1] == '\n')
					break;
			}
			if (r->head.len + take + 1 > KUBE_HTTP_HEAD_MAX)
				return -EMSGSIZE;
			buf_add(&r->head, p + i, take);
			if (r->head.oom)
				return -ENOMEM;
			i += take;
			/* Only the bytes just added can hold a NUL. */
			if (memchr(r->head.data + r->head.len - take, '\0', take) != NULL)
				return -EPROTO;
			h = r->head.data;
			hlen = r->head.len;
			if (hlen >= 4 && memcmp(h + hlen - 4, "\r\n\r\n", 4) == 0) {
				end = h + hlen - 2;
				*end = '\0';	/* keep the last header's CRLF */
				if ((rc = kube_http_parse_head(r)) < 0)
					return rc;
				if (r->status == 100) {
					/* An interim response: the real one follows. */
					buf_reset(&r->head);
					continue;
				}
				kube_http_after_head(r);
			} else if (hlen >= 2 && h[hlen - 1] == '\n' && h[hlen - 2] != '\r') {
				return -EPROTO;	/* bare LF */
			}
			break;
		case KUBE_HTTP_BODY:
			take = n - i < r->left ? n - i : (size_t)r->left;
			if ((rc = kube_http_body_add(r, p + i, take)) < 0)
				return rc;
			i += take;
			r->left -= take;
			if (r->left == 0)
				r->state = KUBE_HTTP_DONE;
			break;
		case KUBE_HTTP_UNTIL_CLOSE:
			if ((rc = kube_http_body_add(r, p + i, n - i)) < 0)
				return rc;
			i = n;
			break;
		case KUBE_HTTP_CHUNK_SIZE:
			if (p[i] == '\n') {
				if (r->linelen == 0 || r->line[r->linelen - 1] != '\r')
					return -EPROTO;
				r->linelen--;
				i++;
				if ((rc = kube_http_chunk_size(r)) < 0)
					return rc;
				break;
			}
			if (r->linelen + 2 >= sizeof r->line)
				return -EPROTO;
			r->line[r->linelen++] = p[i++];
			break;
		case KUBE_HTTP_CHUNK_DATA:
			take = n - i < r->left ? n - i : (size_t)r->left;
			if ((rc = kube_http_body_add(r, p + i, take)) < 0)
				return rc;
			i += take;
			r->left -= take;
			if (r->left == 0) {
				r->state = KUBE_HTTP_CHUNK_CRLF;
				r->linelen = 0;
			}
			break;
		case KUBE_HTTP_CHUNK_CRLF:
			if (r->linelen == 0 && p[i] == '\r') {
				r->linelen = 1;
			} else if (r->linelen == 1 && p[i] == '\n') {
				r->linelen = 0;
				r->state = KUBE_HTTP_CHUNK_SIZE;
			} else {
				return -EPROTO;
			}
			i++;
			break;
		case KUBE_HTTP_TRAILER:
			/* Trailer lines are skipped; an empty line ends the response. */
			if (p[i] == '\n') {
				if (r->linelen == 0 || r->line[r->linelen - 1] != '\r')
					return -EPROTO;
				if (r->linelen == 1)
					r->state = KUBE_HTTP_DONE;
				r->linelen = 0;
			} else if (r->linelen + 2 < sizeof r->line) {
				r->line[r->linelen++] = p[i];
			} else {
				r->line[1] = p[i];	/* a long trailer line: keep it non-empty */
				r->linelen = 2;
			}
			i++;
			break;
		case KUBE_HTTP_DONE:
			break;
		}
	}
	return (long)i;
}

/* The connection ended. */
int
kube_http_resp_eof(struct kube_http_resp *r)
{
	if (r->state == KUBE_HTTP_UNTIL_CLOSE) {
		r->state = KUBE_HTTP_DONE;
		return 0;
	}
	return r->state == KUBE_HTTP_DONE ? 0 : -EPIPE;
}

/* Whether the response is complete. */
bool
kube_http_resp_done(const struct kube_http_resp *r)
{
	return r->state == KUBE_HTTP_DONE;
}

/* Percent-encode s onto b. */
int
kube_http_escape(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	if (!buf_reserve(b, strlen(s) * 3))
		return -ENOMEM;
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		char pct[3] = { '%', hex[ch >> 4], hex[ch & 15] };

		if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~')
			buf_add(b, s, 1);
		else
			buf_add(b, pct, sizeof pct);
	}
	buf_add(b, "", 0);	/* data is a string even when s is empty */
	return b->oom ? -ENOMEM : 0;
}

/* The accept value for key: base64(SHA-1(key + GUID)). */
void
kube_http_ws_accept(const char *key, char accept[29])
{
	unsigned char md[SHA_DIGEST_LENGTH];
	char in[128];
	int n;

	n = snprintf(in, sizeof in, "%s%s", key, KUBE_HTTP_WS_GUID);
	if (n < 0 || (size_t)n >= sizeof in)
		n = 0;
	SHA1((const unsigned char *)in, (size_t)n, md);
	EVP_EncodeBlock((unsigned char *)accept, md, SHA_DIGEST_LENGTH);
	accept[28] = '\0';
}

/* A new key and its accept value. */
int
kube_http_ws_key(char key[25], char accept[29])
{
	unsigned char raw[16];

	if (RAND_bytes(raw, sizeof raw) != 1)
		return -EIO;
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
	key[24] = '\0';
	kube_http_ws_accept(key, accept);
	return 0;
}
