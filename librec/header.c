/*
 * Recording header: session ids, clocks, and the header map in both
 * directions (packing for the writer, decoding for the reader).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "rec.h"
#include "rec-int.h"

/* Current UTC time in nanoseconds since the epoch. */
uint64_t
rec_now_utc_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Current monotonic time in nanoseconds. */
uint64_t
rec_now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Make a UUIDv7: 48 bits of Unix milliseconds, then random bits. */
int
rec_uuid7(char buf[37])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[16];
	uint64_t ms = rec_now_utc_ns() / 1000000u;
	size_t i, o = 0;

	buf[0] = '\0';
	if (getrandom(b + 6, sizeof b - 6, 0) != (ssize_t)(sizeof b - 6))
		return -errno;
	for (i = 0; i < 6; i++)
		b[i] = (uint8_t)(ms >> (40 - 8 * i));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x70);	/* version 7 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);	/* variant 10 */
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			buf[o++] = '-';
		buf[o++] = hex[b[i] >> 4];
		buf[o++] = hex[b[i] & 15];
	}
	buf[o] = '\0';
	return 0;
}

/* Mask undisplayed input: '*' per character (UTF-8 aware), CR and LF kept. */
size_t
rec_input_mask(const void *in, size_t len, uint8_t *out)
{
	const uint8_t *p = in;
	size_t i, n = 0;
	uint8_t c;

	for (i = 0; i < len; i++) {
		c = p[i];
		if (c == '\r' || c == '\n')
			out[n++] = c;
		else if ((c & 0xc0) != 0x80)	/* not a UTF-8 continuation byte */
			out[n++] = '*';
	}
	return n;
}

/* Free the strings of a header filled by the reader and zero it. */
void
rec_header_clear(struct rec_header *h)
{
	if (h == NULL)
		return;
	free((char *)h->session_id);
	free((char *)h->term);
	free((char *)h->user);
	free((char *)h->key_fp);
	free((char *)h->client);
	free((char *)h->target_kind);
	free((char *)h->target);
	free((char *)h->command);
	memset(h, 0, sizeof *h);
}

/* Pack a str, or nil for NULL. */
static void
pack_str(msgpack_packer *pk, const char *s)
{
	size_t n;

	if (s == NULL) {
		msgpack_pack_nil(pk);
		return;
	}
	n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/* Count the key/value pairs of a NULL-terminated extra list. */
static size_t
extra_count(const char *const *extra)
{
	size_t n = 0;

	while (extra != NULL && extra[2 * n] != NULL)
		n++;
	return n;
}

/* Pack the extra key/value pairs (values may be NULL: nil). */
static void
pack_extra(msgpack_packer *pk, const char *const *extra)
{
	size_t i, n = extra_count(extra);

	for (i = 0; i < n; i++) {
		pack_str(pk, extra[2 * i]);
		pack_str(pk, extra[2 * i + 1]);
	}
}

/* Pack the header map for session id sid started at start_ns. */
void
rec_header_pack(msgpack_packer *pk, const struct rec_header *h, const char *sid,
    uint64_t start_ns, const struct rec_key *signer)
{
	msgpack_pack_map(pk, signer != NULL ? 11 : 10);
	pack_str(pk, "format");
	pack_str(pk, REC_FORMAT_NAME);
	pack_str(pk, "version");
	msgpack_pack_uint32(pk, REC_FORMAT_VERSION);
	pack_str(pk, "session");
	pack_str(pk, sid);
	pack_str(pk, "start");
	msgpack_pack_uint64(pk, start_ns);

	pack_str(pk, "term");
	msgpack_pack_map(pk, 3);
	pack_str(pk, "cols");
	msgpack_pack_uint16(pk, h->cols);
	pack_str(pk, "rows");
	msgpack_pack_uint16(pk, h->rows);
	pack_str(pk, "type");
	pack_str(pk, h->term);

	pack_str(pk, "pty");
	if (h->pty)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);

	pack_str(pk, "who");
	msgpack_pack_map(pk, 3 + extra_count(h->who_extra));
	pack_str(pk, "user");
	pack_str(pk, h->user);
	pack_str(pk, "key_fp");
	pack_str(pk, h->key_fp);
	pack_str(pk, "client");
	pack_str(pk, h->client);
	pack_extra(pk, h->who_extra);

	pack_str(pk, "where");
	msgpack_pack_map(pk, 2 + extra_count(h->where_extra));
	pack_str(pk, "kind");
	pack_str(pk, h->target_kind);
	pack_str(pk, "target");
	pack_str(pk, h->target);
	pack_extra(pk, h->where_extra);

	pack_str(pk, "what");
	msgpack_pack_map(pk, 1 + extra_count(h->what_extra));
	pack_str(pk, "command");
	pack_str(pk, h->command);
	pack_extra(pk, h->what_extra);

	/* Checkpoint and seal digests: SHA-256 of every byte before them. */
	pack_str(pk, "chain");
	pack_str(pk, "sha256");
	if (signer != NULL) {
		pack_str(pk, "signer");
		msgpack_pack_map(pk, 3);
		pack_str(pk, "alg");
		pack_str(pk, "ed25519");
		pack_str(pk, "key");
		msgpack_pack_bin(pk, sizeof signer->pub);
		msgpack_pack_bin_body(pk, signer->pub, sizeof signer->pub);
		pack_str(pk, "key_fp");
		pack_str(pk, signer->fp);
	}
}

/* Pack an exit map. */
void
rec_pack_exit(msgpack_packer *pk, int status, const char *signal)
{
	msgpack_pack_map(pk, 1);
	if (signal != NULL && signal[0] != '\0') {
		pack_str(pk, "signal");
		msgpack_pack_str(pk, strnlen(signal, 31));
		msgpack_pack_str_body(pk, signal, strnlen(signal, 31));
	} else {
		pack_str(pk, "status");
		msgpack_pack_int(pk, status);
	}
}

/* Pack a bin of 32 or 64 bytes under a key. */
static void
pack_bin_field(msgpack_packer *pk, const char *key, const uint8_t *p, size_t n)
{
	pack_str(pk, key);
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, p, n);
}

/* Pack an unsigned integer under a key (smallest encoding). */
static void
pack_uint_field(msgpack_packer *pk, const char *key, uint64_t v)
{
	pack_str(pk, key);
	msgpack_pack_uint64(pk, v);
}

/* Pack the seal's totals: events, bytes, duration, exit. */
static void
pack_totals(msgpack_packer *pk, const struct rec_totals *t)
{
	int i;

	pack_uint_field(pk, "events", t->events);
	pack_str(pk, "bytes");
	msgpack_pack_array(pk, 3);
	for (i = 0; i < 3; i++)
		msgpack_pack_uint64(pk, t->bytes[i]);
	pack_uint_field(pk, "duration", t->duration_ns);
	pack_str(pk, "exit");
	if (t->exited)
		rec_pack_exit(pk, t->exit_status, t->exit_signal);
	else
		msgpack_pack_nil(pk);
}

/* Pack a checkpoint or seal event, as version m->version lays it out. */
void
rec_pack_mark(msgpack_packer *pk, const struct rec_mark *m)
{
	bool seal = m->code == REC_SEAL, sig = m->sig != NULL;

	msgpack_pack_array(pk, 3);
	msgpack_pack_uint64(pk, m->interval);
	msgpack_pack_str(pk, 1);
	msgpack_pack_str_body(pk, &m->code, 1);
	if (m->version < 2) {
		msgpack_pack_map(pk, (seal ? 6 : 2) + sig);
		pack_uint_field(pk, "seq", m->seq);
		pack_bin_field(pk, "digest", m->digest, 32);
		if (seal)
			pack_totals(pk, m->totals);
	} else if (seal) {
		msgpack_pack_map(pk, 7 + sig);
		pack_uint_field(pk, "seq", m->seq);
		pack_uint_field(pk, "offset", m->offset);
		pack_bin_field(pk, "digest", m->digest, 32);
		pack_totals(pk, m->totals);
	} else {
		msgpack_pack_map(pk, 5 + sig);
		pack_uint_field(pk, "seq", m->seq);
		pack_uint_field(pk, "time", m->time_ns);
		pack_uint_field(pk, "offset", m->offset);
		pack_uint_field(pk, "events", m->totals->events);
		pack_bin_field(pk, "digest", m->digest, 32);
	}
	if (sig)
		pack_bin_field(pk, "sig", m->sig, 64);
}

/* Append a big-endian 64-bit value. */
static uint8_t *
put_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

/* The exact message a checkpoint or the seal signs, as version m->version defines it. */
size_t
rec_signed_msg(uint8_t *buf, const char *sid, const struct rec_mark *m)
{
	static const char cp1[] = "podgate-rec/1 checkpoint", seal1[] = "podgate-rec/1 seal";
	static const char cp2[] = "podgate-rec/2 checkpoint", seal2[] = "podgate-rec/2 seal";
	const struct rec_totals *t = m->totals;
	bool seal = m->code == REC_SEAL, v1 = m->version < 2;
	const char *ctx = seal ? (v1 ? seal1 : seal2) : (v1 ? cp1 : cp2);
	size_t clen = (seal ? sizeof seal1 : sizeof cp1);	/* the NUL separates */
	uint8_t *p = buf;

	memcpy(p, ctx, clen);
	p += clen;
	memset(p, 0, REC_SID_LEN);
	memcpy(p, sid, strnlen(sid, REC_SID_LEN));
	p += REC_SID_LEN;
	p = put_be64(p, m->seq);
	if (!v1 && !seal) {
		p = put_be64(p, m->time_ns);
		p = put_be64(p, m->offset);
		p = put_be64(p, t->events);
	} else if (!v1)
		p = put_be64(p, m->offset);
	memcpy(p, m->digest, 32);
	p += 32;
	if (seal) {
		p = put_be64(p, t->events);
		p = put_be64(p, t->bytes[0]);
		p = put_be64(p, t->bytes[1]);
		p = put_be64(p, t->bytes[2]);
		p = put_be64(p, t->duration_ns);
		p = put_be64(p, t->exited ? (uint64_t)(int64_t)t->exit_status : UINT64_MAX);
		memset(p, 0, 32);
		memcpy(p, t->exit_signal, strnlen(t->exit_signal, 31));
		p += 32;
	}
	return (size_t)(p - buf);
}

/* Pack the trailer that follows the seal: [0, "t", bin 8 of the seal's offset]. */
void
rec_pack_trailer(uint8_t out[REC_TRAILER_LEN], uint64_t seal_offset)
{
	static const uint8_t frame[6] = { 0x93, 0x00, 0xa1, REC_TRAILER, 0xc4, 0x08 };

	memcpy(out, frame, sizeof frame);
	put_be64(out + sizeof frame, seal_offset);
}

/* Whether o is a str equal to s. */
bool
rec_obj_is(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);

	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
	    memcmp(o->via.str.ptr, s, n) == 0;
}

/* The value for key in map m, or NULL. */
const msgpack_object *
rec_map_get(const msgpack_object *m, const char *key)
{
	uint32_t i;

	if (m == NULL || m->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (i = 0; i < m->via.map.size; i++)
		if (rec_obj_is(&m->via.map.ptr[i].key, key))
			return &m->via.map.ptr[i].val;
	return NULL;
}

/* Copy a str object into *out (NULL for nil or absent). */
static int
dup_str(const msgpack_object *o, const char **out)
{
	char *copy;

	*out = NULL;
	if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (o->type != MSGPACK_OBJECT_STR)
		return -EPROTO;
	if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
		return -EPROTO;
	/* Not strndup: the bytes need not be followed by a NUL in the buffer. */
	if ((copy = malloc((size_t)o->via.str.size + 1)) == NULL)
		return -ENOMEM;
	memcpy(copy, o->via.str.ptr, o->via.str.size);
	copy[o->via.str.size] = '\0';
	*out = copy;
	return 0;
}

/* Read an unsigned integer no larger than max. */
static int
get_uint(const msgpack_object *o, uint64_t max, uint64_t *out)
{
	*out = 0;
	if (o == NULL)
		return 0;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max)
		return -EPROTO;
	*out = o->via.u64;
	return 0;
}

/*
 * Decode the header map into h. Returns -EBADMSG if this is not a podgate
 * recording (no format name, no uint version), -EPROTONOSUPPORT for a
 * version this library does not read (0, or newer), -EPROTO for a bad field
 * (with *what naming it).
 */
int
rec_header_decode(const msgpack_object *m, struct rec_header *h, const char **what)
{
	const msgpack_object *v, *term, *who, *where, *whatm;
	uint64_t u;

	memset(h, 0, sizeof *h);
	*what = "header";
	if (m->type != MSGPACK_OBJECT_MAP)
		return -EBADMSG;
	v = rec_map_get(m, "format");
	if (v == NULL || !rec_obj_is(v, REC_FORMAT_NAME))
		return -EBADMSG;
	*what = "version";
	v = rec_map_get(m, "version");
	if (v == NULL || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return -EBADMSG;
	if (v->via.u64 < REC_FORMAT_VERSION_MIN || v->via.u64 > REC_FORMAT_VERSION)
		return -EPROTONOSUPPORT;
	h->version = (unsigned)v->via.u64;
	*what = "session";
	v = rec_map_get(m, "session");
	if (v == NULL || v->type != MSGPACK_OBJECT_STR || v->via.str.size != REC_SID_LEN ||
	    dup_str(v, &h->session_id) < 0 || h->session_id == NULL)
		goto fail;
	*what = "start";
	if ((v = rec_map_get(m, "start")) == NULL || get_uint(v, UINT64_MAX, &h->start_ns) < 0)
		goto fail;
	*what = "term";
	term = rec_map_get(m, "term");
	if (term != NULL && term->type != MSGPACK_OBJECT_MAP)
		goto fail;
	if (get_uint(rec_map_get(term, "cols"), UINT16_MAX, &u) < 0)
		goto fail;
	h->cols = (uint16_t)u;
	if (get_uint(rec_map_get(term, "rows"), UINT16_MAX, &u) < 0)
		goto fail;
	h->rows = (uint16_t)u;
	if (dup_str(rec_map_get(term, "type"), &h->term) < 0)
		goto fail;
	*what = "pty";
	v = rec_map_get(m, "pty");
	if (v != NULL && v->type != MSGPACK_OBJECT_BOOLEAN)
		goto fail;
	h->pty = v != NULL && v->via.boolean;
	*what = "who";
	who = rec_map_get(m, "who");
	if ((who != NULL && who->type != MSGPACK_OBJECT_MAP) ||
	    dup_str(rec_map_get(who, "user"), &h->user) < 0 ||
	    dup_str(rec_map_get(who, "key_fp"), &h->key_fp) < 0 ||
	    dup_str(rec_map_get(who, "client"), &h->client) < 0)
		goto fail;
	*what = "where";
	where = rec_map_get(m, "where");
	if ((where != NULL && where->type != MSGPACK_OBJECT_MAP) ||
	    dup_str(rec_map_get(where, "kind"), &h->target_kind) < 0 ||
	    dup_str(rec_map_get(where, "target"), &h->target) < 0)
		goto fail;
	*what = "what";
	whatm = rec_map_get(m, "what");
	if ((whatm != NULL && whatm->type != MSGPACK_OBJECT_MAP) ||
	    dup_str(rec_map_get(whatm, "command"), &h->command) < 0)
		goto fail;
	*what = NULL;
	return 0;
fail:
	rec_header_clear(h);
	return -EPROTO;
}
