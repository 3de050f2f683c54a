/* librec internals shared between the writer, the reader and JSON output. */
#ifndef PODGATE_REC_INT_H
#define PODGATE_REC_INT_H

#include <msgpack.h>

#include "rec.h"

/* Largest object a reader accepts: a full payload plus framing. */
#define REC_MAX_OBJECT (REC_MAX_PAYLOAD + 4096u)
/* Most msgpack items (containers and scalars) in one object. */
#define REC_MAX_ITEMS 65536u

void rec_header_pack(msgpack_packer *pk, const struct rec_header *h, const char *sid,
    uint64_t start_ns, const struct rec_key *signer);
int rec_header_decode(const msgpack_object *m, struct rec_header *h, const char **what);
bool rec_obj_is(const msgpack_object *o, const char *s);
const msgpack_object *rec_map_get(const msgpack_object *m, const char *key);

/*
 * Measure the msgpack object at p[0..n): its total size when complete,
 * 0 when more bytes are needed, -EBADMSG when malformed or over the limits.
 */
ssize_t rec_object_size(const uint8_t *p, size_t n);

struct rec_key {
	struct evp_pkey_st *pkey;	/* EVP_PKEY */
	bool private;
	uint8_t pub[32];
	char fp[REC_KEY_FP_LEN];
};

void rec_key_fp_of(const uint8_t pub[32], char fp[REC_KEY_FP_LEN]);
int rec_key_sign(const struct rec_key *k, const uint8_t *msg, size_t len, uint8_t sig[64]);
bool rec_sig_ok(const uint8_t pub[32], const uint8_t *msg, size_t len, const uint8_t sig[64]);

/* Totals carried by the seal, recomputed by the verifier. */
struct rec_totals {
	uint64_t events;	/* events before the seal, checkpoints included */
	uint64_t bytes[3];	/* o, e, i */
	uint64_t duration_ns;	/* time of the last event before the seal */
	bool exited;
	int exit_status;	/* -1 with a signal */
	char exit_signal[32];
};

/*
 * A checkpoint ('c') or the seal ('s') as the writer packs it and the
 * verifier expects it: totals holds the events before it (events excludes
 * the mark itself); time_ns and offset are the mark's own time and byte
 * offset. sig is NULL for an unsigned recording.
 */
struct rec_mark {
	unsigned version;
	char code;
	uint64_t interval, seq, time_ns, offset;
	const uint8_t *digest;		/* 32 bytes */
	const struct rec_totals *totals;
	const uint8_t *sig;		/* 64 bytes, or NULL */
};

/* The message a mark signs; returns its length (at most REC_SIGNED_MAX). */
#define REC_SIGNED_MAX 256
size_t rec_signed_msg(uint8_t *buf, const char *sid, const struct rec_mark *m);

/* Pack an exit map: {"signal": name} when signal is non-empty, else {"status": n}. */
void rec_pack_exit(msgpack_packer *pk, int status, const char *signal);

/*
 * Pack a whole mark. Writer and verifier share this, so a verifier can
 * compare a mark byte for byte with what it must be (smallest encodings).
 */
void rec_pack_mark(msgpack_packer *pk, const struct rec_mark *m);

/* The fixed bytes of the trailer naming the seal at seal_offset. */
void rec_pack_trailer(uint8_t out[REC_TRAILER_LEN], uint64_t seal_offset);

/*
 * rec_reader_open, but a header with a field of the wrong type still
 * gives a reader (and -EPROTO), so the verifier can see whether the bad
 * header claims to be signed.
 */
int rec_reader_open_verify(struct rec_reader **out, int fd, struct rec_header *h);

/* Write a msgpack object as JSON (bin as a string of its bytes). */
void rec_json_object(FILE *out, const msgpack_object *o);

#endif
