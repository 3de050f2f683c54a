/*
 * Recording reader: streams objects from a file descriptor through a
 * bounded buffer, measures each object before decoding it (so a hostile
 * length never allocates), and decodes events with msgpack-c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rec.h"
#include "rec-int.h"

#define READ_CHUNK (64u * 1024)

struct rec_reader {
	int fd;
	bool eof;
	uint8_t *buf;
	size_t start, end, cap;	/* unread bytes are buf[start..end) */
	uint64_t base;		/* file offset of buf[0] */
	uint64_t time_ns;
	unsigned version;	/* of the header read; 0 when opened in the middle */
	msgpack_unpacked obj;

	const uint8_t *raw;	/* the last object read */
	size_t raw_len;
	uint8_t *hdr_raw;
	size_t hdr_len;

	int sticky;		/* an event error: every later call returns it */
	uint64_t err_off;
	char err[192];
};

/* Read big-endian n-byte length at p. */
static uint64_t
be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * Measure one msgpack object without decoding it: walk the items, counting
 * how many are still owed by the containers seen so far.
 */
ssize_t
rec_object_size(const uint8_t *p, size_t n)
{
	uint64_t owed = 1, items = 0, len;
	size_t off = 0;
	uint8_t b;
	int lb;

	while (owed > 0) {
		if (off >= n)
			return 0;
		if (++items > REC_MAX_ITEMS)
			return -EBADMSG;
		owed--;
		b = p[off++];
		len = 0;
		lb = 0;
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
			continue;
		if ((b & 0xf0) == 0x80) {		/* fixmap */
			owed += 2u * (b & 0x0f);
			continue;
		}
		if ((b & 0xf0) == 0x90) {		/* fixarray */
			owed += b & 0x0f;
			continue;
		}
		if ((b & 0xe0) == 0xa0) {		/* fixstr */
			len = b & 0x1f;
			goto skip;
		}
		switch (b) {
		case 0xc4: case 0xd9: lb = 1; break;	/* bin8, str8 */
		case 0xc5: case 0xda: lb = 2; break;	/* bin16, str16 */
		case 0xc6: case 0xdb: lb = 4; break;	/* bin32, str32 */
		case 0xcc: case 0xd0: len = 1; goto skip;
		case 0xcd: case 0xd1: len = 2; goto skip;
		case 0xce: case 0xd2: case 0xca: len = 4; goto skip;
		case 0xcf: case 0xd3: case 0xcb: len = 8; goto skip;
		case 0xd4: len = 2; goto skip;		/* fixext: type + data */
		case 0xd5: len = 3; goto skip;
		case 0xd6: len = 5; goto skip;
		case 0xd7: len = 9; goto skip;
		case 0xd8: len = 17; goto skip;
		case 0xc7: case 0xc8: case 0xc9:	/* ext8/16/32: len, type, data */
			lb = b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4;
			if (n - off < (size_t)lb)
				return 0;
			len = be(p + off, lb) + 1;
			off += (size_t)lb;
			goto skip;
		case 0xdc: case 0xdd:			/* array16/32 */
		case 0xde: case 0xdf:			/* map16/32 */
			lb = (b == 0xdc || b == 0xde) ? 2 : 4;
			if (n - off < (size_t)lb)
				return 0;
			len = be(p + off, lb);
			off += (size_t)lb;
			if (len > REC_MAX_ITEMS)
				return -EBADMSG;
			owed += b >= 0xde ? 2 * len : len;
			continue;
		default:				/* 0xc1: never used */
			return -EBADMSG;
		}
		if (n - off < (size_t)lb)
			return 0;
		len = be(p + off, lb);
		off += (size_t)lb;
skip:
		if (len > REC_MAX_OBJECT)
			return -EBADMSG;
		if (n - off < len)
			return 0;
		off += (size_t)len;
		if (off > REC_MAX_OBJECT)
			return -EBADMSG;
	}
	return (ssize_t)off;
}

/* Record an error with the offset it concerns. */
static int fail(struct rec_reader *r, int err, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(struct rec_reader *r, int err, uint64_t off, const char *fmt, ...)
{
	va_list ap;

	r->err_off = off;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof r->err, fmt, ap);
	va_end(ap);
	return err;
}

/* Read more of the file into the buffer; 0 at end of file. */
static ssize_t
fill(struct rec_reader *r)
{
	size_t want;
	ssize_t n;
	uint8_t *p;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->base += r->start;
		r->end -= r->start;
		r->start = 0;
	}
	want = r->end + READ_CHUNK;
	if (want > r->cap) {
		if ((p = realloc(r->buf, want)) == NULL)
			return -ENOMEM;
		r->buf = p;
		r->cap = want;
	}
	do
		n = read(r->fd, r->buf + r->end, r->cap - r->end);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	r->end += (size_t)n;
	return n;
}

/*
 * Make the next whole object available and decode it into r->obj.
 * Returns 1, 0 at a clean end, or a negative error.
 */
static int
next_object(struct rec_reader *r)
{
	ssize_t size, n;
	size_t used = 0;

	for (;;) {
		/* Nothing buffered yet (buf may still be NULL): read first. */
		size = r->end > r->start ? rec_object_size(r->buf + r->start, r->end - r->start) : 0;
		if (size < 0)
			return fail(r, -EBADMSG, r->base + r->start,
			    "corrupt object at byte %llu", (unsigned long long)(r->base + r->start));
		if (size > 0)
			break;
		if (r->eof || (n = fill(r)) == 0) {
			r->eof = true;
			if (r->start == r->end)
				return 0;
			return fail(r, -ENODATA, r->base + r->start, "truncated at byte %llu",
			    (unsigned long long)(r->base + r->start));
		}
		if (n < 0)
			return fail(r, (int)n, r->base + r->end, "read failed: %s", strerror((int)-n));
	}
	if (msgpack_unpack_next(&r->obj, (const char *)r->buf + r->start, (size_t)size,
	    &used) != MSGPACK_UNPACK_SUCCESS || used != (size_t)size)
		return fail(r, -EBADMSG, r->base + r->start, "corrupt object at byte %llu",
		    (unsigned long long)(r->base + r->start));
	r->raw = r->buf + r->start;
	r->raw_len = (size_t)size;
	r->start += (size_t)size;
	return 1;
}

/*
 * Open a reader on fd and decode the header. With keep_bad, a header field
 * of the wrong type returns -EPROTO with the reader (and its raw header)
 * still in *out.
 */
static int
reader_open(struct rec_reader **out, int fd, struct rec_header *h, bool keep_bad)
{
	struct rec_reader *r = NULL;
	const char *what = NULL;
	ssize_t n;
	int rc;

	*out = NULL;
	memset(h, 0, sizeof *h);
	if (fd < 0)
		return -EINVAL;
	if ((r = calloc(1, sizeof *r)) == NULL)
		return -ENOMEM;
	r->fd = fd;
	msgpack_unpacked_init(&r->obj);
	if ((n = fill(r)) < 0) {
		rc = (int)n;
		goto fail;
	}
	/* Anything but a map first is not a recording: say so at once. */
	if (r->end == 0 || !((r->buf[0] & 0xf0) == 0x80 || r->buf[0] == 0xde ||
	    r->buf[0] == 0xdf)) {
		rc = fail(r, -EBADMSG, 0, "not a podgate recording");
		goto fail;
	}
	if ((rc = next_object(r)) <= 0) {
		if (rc == 0 || rc == -ENODATA)
			rc = fail(r, -ENODATA, 0, "truncated inside the header");
		goto fail;
	}
	if ((r->hdr_raw = malloc(r->raw_len)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	memcpy(r->hdr_raw, r->raw, r->raw_len);
	r->hdr_len = r->raw_len;
	if ((rc = rec_header_decode(&r->obj.data, h, &what)) < 0) {
		if (rc == -EBADMSG)
			fail(r, rc, 0, "not a podgate recording");
		else if (rc == -EPROTONOSUPPORT)
			fail(r, rc, 0, "recording format version not supported (reads %d to %d)",
			    REC_FORMAT_VERSION_MIN, REC_FORMAT_VERSION);
		else
			fail(r, rc, 0, "bad header field '%s'", what);
		if (rc == -EPROTO && keep_bad) {
			*out = r;
			return rc;
		}
		goto fail;
	}
	r->version = h->version;
	*out = r;
	return 0;
fail:
	rec_reader_free(r);
	return rc;
}

/* Open a reader on fd and decode the header. */
int
rec_reader_open(struct rec_reader **out, int fd, struct rec_header *h)
{
	return reader_open(out, fd, h, false);
}

/* Open for the verifier: a header with a bad field still gives a reader. */
int
rec_reader_open_verify(struct rec_reader **out, int fd, struct rec_header *h)
{
	return reader_open(out, fd, h, true);
}

/* Open a reader positioned at an event in the middle of a recording. */
int
rec_reader_open_at(struct rec_reader **out, int fd, uint64_t offset, uint64_t time_ns)
{
	struct rec_reader *r = NULL;

	*out = NULL;
	if (fd < 0 || offset > INT64_MAX)
		return -EINVAL;
	if (lseek(fd, (off_t)offset, SEEK_SET) < 0)
		return -errno;
	if ((r = calloc(1, sizeof *r)) == NULL)
		return -ENOMEM;
	r->fd = fd;
	r->base = offset;
	r->time_ns = time_ns;
	msgpack_unpacked_init(&r->obj);
	*out = r;
	return 0;
}

/* Decode an exit map. */
static int
decode_exit(const msgpack_object *m, struct rec_event *ev)
{
	const msgpack_object *v;

	if (m->type != MSGPACK_OBJECT_MAP)
		return -EPROTO;
	if ((v = rec_map_get(m, "reason")) != NULL && v->type != MSGPACK_OBJECT_STR)
		return -EPROTO;
	if ((v = rec_map_get(m, "signal")) != NULL) {
		if (rec_map_get(m, "status") != NULL)
			return -EPROTO;	/* one or the other */
		if (v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0 ||
		    v->via.str.size >= sizeof ev->exit_signal ||
		    memchr(v->via.str.ptr, '\0', v->via.str.size) != NULL)
			return -EPROTO;
		memcpy(ev->exit_signal, v->via.str.ptr, v->via.str.size);
		ev->exit_signal[v->via.str.size] = '\0';
		return 0;
	}
	v = rec_map_get(m, "status");
	if (v == NULL)
		return -EPROTO;
	if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT32_MAX)
		ev->exit_status = (int)v->via.u64;
	else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && v->via.i64 >= INT32_MIN)
		ev->exit_status = (int)v->via.i64;
	else
		return -EPROTO;
	return 0;
}

/*
 * Check an R payload: an array of {"at": uint, "len": uint, "kind": str}
 * maps, in increasing order and not overlapping.
 */
static int
check_spans(const msgpack_object *p)
{
	const msgpack_object *m, *at, *len, *kind;
	uint64_t end = 0;
	uint32_t i;

	if (p->type != MSGPACK_OBJECT_ARRAY)
		return -EPROTO;
	for (i = 0; i < p->via.array.size; i++) {
		m = &p->via.array.ptr[i];
		at = rec_map_get(m, "at");
		len = rec_map_get(m, "len");
		kind = rec_map_get(m, "kind");
		if (m->type != MSGPACK_OBJECT_MAP || at == NULL || len == NULL || kind == NULL ||
		    at->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    len->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    kind->type != MSGPACK_OBJECT_STR || at->via.u64 < end ||
		    len->via.u64 > UINT64_MAX - at->via.u64)
			return -EPROTO;
		end = at->via.u64 + len->via.u64;
	}
	return 0;
}

/* Decode the object in r->obj as an event. */
static int
decode_event(struct rec_reader *r, struct rec_event *ev)
{
	const msgpack_object *o = &r->obj.data, *a, *p;
	uint64_t off = r->base + r->start - r->raw_len;

	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3)
		return fail(r, -EPROTO, off, "event at byte %llu is not [interval, code, payload]",
		    (unsigned long long)off);
	a = o->via.array.ptr;
	if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return fail(r, -EPROTO, off, "event at byte %llu: bad interval",
		    (unsigned long long)off);
	if (a[1].type != MSGPACK_OBJECT_STR || a[1].via.str.size != 1)
		return fail(r, -EPROTO, off, "event at byte %llu: bad code",
		    (unsigned long long)off);
	ev->code = a[1].via.str.ptr[0];
	ev->interval_ns = a[0].via.u64;
	ev->time_ns = r->time_ns + ev->interval_ns < r->time_ns ? UINT64_MAX :
	    r->time_ns + ev->interval_ns;
	ev->offset = off;
	ev->size = r->raw_len;
	ev->exit_status = -1;
	p = &a[2];
	/* Writers split or refuse payloads over the limit; so does the reader. */
	if ((p->type == MSGPACK_OBJECT_BIN || p->type == MSGPACK_OBJECT_STR) &&
	    p->via.bin.size > REC_MAX_PAYLOAD)
		return fail(r, -EPROTO, off, "event at byte %llu: payload of %u bytes over the "
		    "limit of %u", (unsigned long long)off, (unsigned)p->via.bin.size,
		    REC_MAX_PAYLOAD);
	switch (ev->code) {
	case REC_OUTPUT:
	case REC_STDERR:
	case REC_INPUT:
		if (p->type != MSGPACK_OBJECT_BIN)
			goto bad;
		ev->data = (const uint8_t *)p->via.bin.ptr;
		ev->len = p->via.bin.size;
		break;
	case REC_MARKER:
		if (p->type != MSGPACK_OBJECT_STR)
			goto bad;
		ev->data = (const uint8_t *)p->via.str.ptr;
		ev->len = p->via.str.size;
		break;
	case REC_RESIZE:
		if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 2 ||
		    p->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    p->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    p->via.array.ptr[0].via.u64 > UINT16_MAX ||
		    p->via.array.ptr[1].via.u64 > UINT16_MAX)
			goto bad;
		ev->cols = (uint16_t)p->via.array.ptr[0].via.u64;
		ev->rows = (uint16_t)p->via.array.ptr[1].via.u64;
		break;
	case REC_EXIT:
		if (decode_exit(p, ev) < 0)
			goto bad;
		break;
	case REC_REDACTED:
		if (check_spans(p) < 0)
			goto bad;
		break;
	case REC_TRAILER:
		/* Unknown to version 1, which skips it. */
		if (r->version != 1 && (p->type != MSGPACK_OBJECT_BIN || p->via.bin.size != 8))
			goto bad;
		if (p->type == MSGPACK_OBJECT_BIN) {
			ev->data = (const uint8_t *)p->via.bin.ptr;
			ev->len = p->via.bin.size;
		}
		break;
	default:
		break;	/* unknown or reserved: the caller skips it */
	}
	r->time_ns = ev->time_ns;
	return 1;
bad:
	return fail(r, -EPROTO, off, "event at byte %llu: bad payload for '%c'",
	    (unsigned long long)off, ev->code);
}

/* Read the next event: 1, 0 at the end, or a negative error. */
int
rec_reader_next(struct rec_reader *r, struct rec_event *ev)
{
	int rc;

	memset(ev, 0, sizeof *ev);
	if (r->sticky < 0)
		return r->sticky;
	if ((rc = next_object(r)) <= 0)
		return rc;
	if ((rc = decode_event(r, ev)) < 0) {
		/* Do not move past a bad event: the offset stays its start. */
		r->start -= r->raw_len;
		r->sticky = rc;
		memset(ev, 0, sizeof *ev);
	}
	return rc;
}

/* Offset just past the last complete object. */
uint64_t
rec_reader_offset(const struct rec_reader *r)
{
	return r->base + r->start;
}

/* Offset of the object an error concerns. */
uint64_t
rec_reader_error_offset(const struct rec_reader *r)
{
	return r->err_off;
}

/* The last error, as text. */
const char *
rec_reader_error(const struct rec_reader *r)
{
	return r->err;
}

/* Raw bytes of the header. */
const uint8_t *
rec_reader_header_raw(const struct rec_reader *r, size_t *len)
{
	*len = r->hdr_len;
	return r->hdr_raw;
}

/* Raw bytes of the last event read. */
const uint8_t *
rec_reader_event_raw(const struct rec_reader *r, size_t *len)
{
	*len = r->raw_len;
	return r->raw;
}

/* Write the header map as one line of JSON. */
int
rec_reader_header_json(const struct rec_reader *r, FILE *out)
{
	msgpack_unpacked u;
	size_t used = 0;
	int rc = 0;

	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, (const char *)r->hdr_raw, r->hdr_len, &used) !=
	    MSGPACK_UNPACK_SUCCESS)
		rc = -EBADMSG;
	else
		rec_json_object(out, &u.data);
	msgpack_unpacked_destroy(&u);
	return rc;
}

/* Free the reader. */
void
rec_reader_free(struct rec_reader *r)
{
	if (r == NULL)
		return;
	msgpack_unpacked_destroy(&r->obj);
	free(r->hdr_raw);
	free(r->buf);
	free(r);
}
