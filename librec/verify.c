/*
 * Recording verification: recompute the SHA-256 of the byte stream, check
 * each checkpoint's digest, sequence, time, offset and signature, the
 * seal's totals, and (version 2) the trailer that makes a seal findable.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "rec.h"
#include "rec-int.h"

/* One side of a verdict: what the signer says, or how the file ends. */
struct verify_part {
	enum rec_verdict v;
	char reason[256];
};

struct verify_state {
	struct rec_verify *out;
	EVP_MD_CTX *sha;
	unsigned version;
	const char *sid;
	bool has_key;
	uint8_t pub[32];
	uint64_t seq;		/* next checkpoint sequence number */
	bool sealed;
	uint64_t seal_offset;
	bool trailer;		/* the trailer after the seal was read */
	struct rec_totals totals;
	struct verify_part key;	/* REC_SEALED (signed, key right), UNSIGNED, WRONG_KEY, MODIFIED */
	struct verify_part end;	/* REC_SEALED, TRUNCATED, MODIFIED */
};

/* Set a part's verdict, keeping the first reason for the worst one. */
static void part(struct verify_part *p, enum rec_verdict v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
part(struct verify_part *p, enum rec_verdict v, const char *fmt, ...)
{
	va_list ap;

	if (v < p->v || (v == p->v && p->reason[0] != '\0'))
		return;
	p->v = v;
	va_start(ap, fmt);
	vsnprintf(p->reason, sizeof p->reason, fmt, ap);
	va_end(ap);
}

/* The file was modified at offset off. */
static void modified(struct verify_state *s, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
modified(struct verify_state *s, uint64_t off, const char *fmt, ...)
{
	va_list ap;

	if (s->end.v == REC_MODIFIED || s->key.v == REC_MODIFIED)
		return;
	s->end.v = REC_MODIFIED;
	s->out->bad_offset = off;
	va_start(ap, fmt);
	vsnprintf(s->end.reason, sizeof s->end.reason, fmt, ap);
	va_end(ap);
}

static bool
is_modified(const struct verify_state *s)
{
	return s->end.v == REC_MODIFIED || s->key.v == REC_MODIFIED;
}

/* The digest of everything hashed so far, keeping the running hash. */
static int
digest_now(EVP_MD_CTX *sha, uint8_t digest[32])
{
	EVP_MD_CTX *copy = EVP_MD_CTX_new();
	unsigned int n = 0;
	int r = -EIO;

	if (copy != NULL && EVP_MD_CTX_copy_ex(copy, sha) == 1 &&
	    EVP_DigestFinal_ex(copy, digest, &n) == 1 && n == 32)
		r = 0;
	EVP_MD_CTX_free(copy);
	return r;
}

/* Decode the raw header map into u; false when it cannot be. */
static bool
header_unpack(const struct rec_reader *r, msgpack_unpacked *u)
{
	const uint8_t *raw;
	size_t len, used = 0;

	raw = rec_reader_header_raw(r, &len);
	return raw != NULL && msgpack_unpack_next(u, (const char *)raw, len, &used) ==
	    MSGPACK_UNPACK_SUCCESS && u->data.type == MSGPACK_OBJECT_MAP;
}

/* Read the signer and chain of the header. */
static void
verify_header(struct verify_state *s, const struct rec_reader *r, const struct rec_key *pinned)
{
	const msgpack_object *signer, *key, *fp, *chain, *alg;
	char computed[REC_KEY_FP_LEN];
	msgpack_unpacked u;

	msgpack_unpacked_init(&u);
	if (!header_unpack(r, &u)) {
		modified(s, 0, "header cannot be decoded");
		goto out;
	}
	chain = rec_map_get(&u.data, "chain");
	signer = rec_map_get(&u.data, "signer");
	if (chain == NULL && signer != NULL) {
		modified(s, 0, "the header names a signer but no hash chain");
		goto out;
	}
	if (chain == NULL) {
		part(&s->key, REC_UNSIGNED, "no integrity data (no hash chain in the header)");
		goto out;
	}
	if (!rec_obj_is(chain, "sha256")) {
		modified(s, 0, "unknown hash chain in the header");
		goto out;
	}
	if (signer == NULL) {
		if (pinned != NULL)
			part(&s->key, REC_UNSIGNED, "unsigned, but a key was given");
		else
			part(&s->key, REC_UNSIGNED, "unsigned (hash chain only)");
		goto out;
	}
	key = rec_map_get(signer, "key");
	fp = rec_map_get(signer, "key_fp");
	alg = rec_map_get(signer, "alg");
	if (alg == NULL || !rec_obj_is(alg, "ed25519") || key == NULL ||
	    key->type != MSGPACK_OBJECT_BIN || key->via.bin.size != 32) {
		modified(s, 0, "bad signer in the header");
		goto out;
	}
	memcpy(s->pub, key->via.bin.ptr, 32);
	s->has_key = true;
	rec_key_fp_of(s->pub, computed);
	memcpy(s->out->key_fp, computed, sizeof computed);
	if (fp != NULL && !rec_obj_is(fp, computed)) {
		modified(s, 0, "signer fingerprint does not match the signer key");
		goto out;
	}
	if (pinned != NULL && memcmp(pinned->pub, s->pub, 32) != 0)
		part(&s->key, REC_WRONG_KEY, "wrong key: signed by %s, not by %s", computed,
		    rec_key_fingerprint(pinned));
out:
	msgpack_unpacked_destroy(&u);
}

/*
 * A header that could not be decoded as a recording's: modified when it
 * names a signer (the writer that signed it never writes a wrong type),
 * else not a recording.
 */
static void
verify_bad_header(struct verify_state *s, const struct rec_reader *r)
{
	const msgpack_object *v;
	msgpack_unpacked u;

	msgpack_unpacked_init(&u);
	if (header_unpack(r, &u) && rec_map_get(&u.data, "signer") != NULL) {
		v = rec_map_get(&u.data, "version");
		if (v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    v->via.u64 >= REC_FORMAT_VERSION_MIN && v->via.u64 <= REC_FORMAT_VERSION)
			s->out->version = (unsigned)v->via.u64;
		modified(s, 0, "signed header with %s", rec_reader_error(r));
	} else {
		s->end.v = REC_NOT_RECORDING;
		snprintf(s->end.reason, sizeof s->end.reason, "not a podgate recording (%s)",
		    rec_reader_error(r));
	}
	msgpack_unpacked_destroy(&u);
}

/* Check a checkpoint or the seal against the digest of what precedes it. */
static bool
verify_mark(struct verify_state *s, const struct rec_event *ev, const uint8_t *raw, size_t len)
{
	uint8_t digest[32], msg[REC_SIGNED_MAX];
	const msgpack_object *m, *seq, *dg, *sig;
	const char *what = ev->code == REC_SEAL ? "seal" : "checkpoint";
	struct rec_mark mark = { .version = s->version, .code = ev->code, .seq = s->seq,
	    .time_ns = ev->time_ns, .offset = ev->offset, .digest = digest,
	    .totals = &s->totals };
	msgpack_unpacked u;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t used = 0, mlen;
	bool ok = false, same;

	msgpack_unpacked_init(&u);
	if (digest_now(s->sha, digest) < 0 ||
	    msgpack_unpack_next(&u, (const char *)raw, len, &used) != MSGPACK_UNPACK_SUCCESS) {
		modified(s, ev->offset, "%s at byte %llu cannot be decoded", what,
		    (unsigned long long)ev->offset);
		goto out;
	}
	m = &u.data.via.array.ptr[2];
	seq = rec_map_get(m, "seq");
	dg = rec_map_get(m, "digest");
	sig = rec_map_get(m, "sig");
	if (seq == NULL || seq->type != MSGPACK_OBJECT_POSITIVE_INTEGER || seq->via.u64 != s->seq) {
		modified(s, ev->offset, "%s at byte %llu is out of sequence (expected %llu)",
		    what, (unsigned long long)ev->offset, (unsigned long long)s->seq);
		goto out;
	}
	if (dg == NULL || dg->type != MSGPACK_OBJECT_BIN || dg->via.bin.size != 32 ||
	    memcmp(dg->via.bin.ptr, digest, 32) != 0) {
		modified(s, ev->offset, "modified before byte %llu: %s %llu does not match the "
		    "bytes after byte %llu", (unsigned long long)ev->offset, what,
		    (unsigned long long)s->seq, (unsigned long long)s->out->verified_bytes);
		goto out;
	}
	if (s->has_key) {
		mlen = rec_signed_msg(msg, s->sid, &mark);
		if (sig == NULL || sig->type != MSGPACK_OBJECT_BIN || sig->via.bin.size != 64 ||
		    !rec_sig_ok(s->pub, msg, mlen, (const uint8_t *)sig->via.bin.ptr)) {
			modified(s, ev->offset, "%s %llu at byte %llu: bad signature", what,
			    (unsigned long long)s->seq, (unsigned long long)ev->offset);
			goto out;
		}
		mark.sig = (const uint8_t *)sig->via.bin.ptr;
	} else if (sig != NULL) {
		modified(s, ev->offset, "%s at byte %llu is signed but the header names no signer",
		    what, (unsigned long long)ev->offset);
		goto out;
	}
	/*
	 * Every byte of the mark must be what the writer would have written,
	 * in the smallest encodings: its time and offset are its own, and the
	 * seal comes at the time of the last event (interval 0) and holds the
	 * totals of the events before it.
	 */
	if (ev->code == REC_SEAL)
		mark.interval = 0;
	else
		mark.interval = ev->interval_ns;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	rec_pack_mark(&pk, &mark);
	same = sb.size == len && memcmp(sb.data, raw, len) == 0;
	msgpack_sbuffer_destroy(&sb);
	if (!same) {
		modified(s, ev->offset, "%s at byte %llu: %s", what, (unsigned long long)ev->offset,
		    ev->code == REC_SEAL ? "totals, offset or time do not match the events" :
		    "not as written (time, offset, event count or encoding)");
		goto out;
	}
	ok = true;
	s->seq++;
	if (ev->code == REC_CHECKPOINT)
		s->out->checkpoints++;
	s->out->verified_bytes = ev->offset + ev->size;
	s->out->verified_time_ns = ev->time_ns;
	s->out->verified_events = s->totals.events;
out:
	msgpack_unpacked_destroy(&u);
	return ok;
}

/* Add an ordinary event to the running totals. */
static void
count_event(struct rec_totals *t, const struct rec_event *ev)
{
	t->events++;
	t->duration_ns = ev->time_ns;
	if (ev->code == REC_OUTPUT)
		t->bytes[0] += ev->len;
	else if (ev->code == REC_STDERR)
		t->bytes[1] += ev->len;
	else if (ev->code == REC_INPUT)
		t->bytes[2] += ev->len;
	else if (ev->code == REC_EXIT) {
		t->exited = true;
		t->exit_status = ev->exit_status;
		memcpy(t->exit_signal, ev->exit_signal, sizeof t->exit_signal);
	}
}

/* Describe the verified prefix. */
static void
prefix_text(const struct rec_verify *v, char *buf, size_t len)
{
	if (v->checkpoints == 0)
		snprintf(buf, len, "no checkpoint verified");
	else
		snprintf(buf, len, "verified up to checkpoint %llu at byte %llu (%.3f s)",
		    (unsigned long long)(v->checkpoints - 1), (unsigned long long)v->verified_bytes,
		    (double)v->verified_time_ns / 1e9);
}

/* Read exactly n bytes at off; false when the file is not seekable or shorter. */
static bool
read_at(int fd, uint64_t off, uint8_t *buf, size_t n)
{
	ssize_t got;
	size_t done = 0;

	while (done < n) {
		got = pread(fd, buf + done, n - done, (off_t)(off + done));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return false;
		done += (size_t)got;
	}
	return true;
}

/*
 * After the seal, the file ends inside an object that starts at off:
 * a cut when those bytes are the start of the trailer, else data after
 * the seal.
 */
static void
verify_cut_after_seal(struct verify_state *s, int fd, uint64_t base, uint64_t off)
{
	uint8_t want[REC_TRAILER_LEN], got[REC_TRAILER_LEN];
	struct stat st;
	uint64_t n;

	if (s->version >= 2 && !s->trailer && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size >= base + off) {
		n = (uint64_t)st.st_size - base - off;
		rec_pack_trailer(want, s->seal_offset);
		if (n < REC_TRAILER_LEN && read_at(fd, base + off, got, (size_t)n) &&
		    memcmp(got, want, (size_t)n) == 0) {
			part(&s->end, REC_TRUNCATED, "truncated inside the trailer at byte %llu: "
			    "verified up to the seal at byte %llu (%.3f s)",
			    (unsigned long long)off, (unsigned long long)s->out->verified_bytes,
			    (double)s->out->verified_time_ns / 1e9);
			return;
		}
	}
	modified(s, off, "data after the seal, at byte %llu", (unsigned long long)off);
}

/*
 * A version 2 file that ends with a trailer claims a seal: when it was
 * not read intact, the seal or what precedes it was damaged.
 */
static void
verify_claimed_seal(struct verify_state *s, int fd, uint64_t base)
{
	static const uint8_t frame[6] = { 0x93, 0x00, 0xa1, REC_TRAILER, 0xc4, 0x08 };
	uint8_t tail[REC_TRAILER_LEN];
	uint64_t named = 0, end;
	struct stat st;
	int i;

	if (s->version < 2 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size < base + REC_TRAILER_LEN)
		return;
	end = (uint64_t)st.st_size - base;
	if (!read_at(fd, base + end - REC_TRAILER_LEN, tail, sizeof tail) ||
	    memcmp(tail, frame, sizeof frame) != 0)
		return;
	for (i = 6; i < REC_TRAILER_LEN; i++)
		named = named << 8 | tail[i];
	modified(s, named < end ? named : end - REC_TRAILER_LEN, "the trailer at byte %llu names "
	    "a seal at byte %llu, which is damaged or missing",
	    (unsigned long long)(end - REC_TRAILER_LEN), (unsigned long long)named);
}

/* Put the two parts together into out's verdict and reason. */
static void
verify_finish(struct verify_state *s)
{
	struct rec_verify *out = s->out;

	if (s->key.v == REC_MODIFIED)
		s->end = s->key;
	if (s->end.v == REC_MODIFIED || s->end.v == REC_NOT_RECORDING) {
		out->verdict = s->end.v;
		snprintf(out->reason, sizeof out->reason, "%s", s->end.reason);
	} else if (s->key.v > s->end.v) {
		out->verdict = s->key.v;
		if (s->end.v == REC_TRUNCATED) {
			/* Both reasons, the second cut at the buffer's end when long. */
			if (snprintf(out->reason, sizeof out->reason, "%s; %s", s->key.reason,
			    s->end.reason) < 0)
				out->reason[0] = '\0';
		} else
			snprintf(out->reason, sizeof out->reason, "%s; sealed", s->key.reason);
	} else if (s->end.v == REC_TRUNCATED) {
		out->verdict = REC_TRUNCATED;
		snprintf(out->reason, sizeof out->reason, "%s", s->end.reason);
	} else {
		out->verdict = REC_SEALED;
		snprintf(out->reason, sizeof out->reason, "sealed and intact (%llu checkpoint%s), "
		    "signed by %s", (unsigned long long)out->checkpoints,
		    out->checkpoints == 1 ? "" : "s", out->key_fp);
	}
}

/* Verify the recording on fd. */
int
rec_verify_fd(int fd, const struct rec_key *pinned, struct rec_verify *out)
{
	struct verify_state s = { .out = out };
	uint8_t trailer[REC_TRAILER_LEN];
	struct rec_reader *r = NULL;
	struct rec_header h;
	struct rec_event ev;
	const uint8_t *raw;
	char prefix[128];
	off_t pos;
	uint64_t base;
	size_t len;
	int rc;

	memset(out, 0, sizeof *out);
	pos = lseek(fd, 0, SEEK_CUR);
	base = pos > 0 ? (uint64_t)pos : 0;
	rc = rec_reader_open_verify(&r, fd, &h);
	if (rc == -EPROTO && r != NULL) {
		verify_bad_header(&s, r);
		rc = 0;
		goto done;
	}
	if (rc == -EBADMSG || rc == -ENODATA || rc == -EPROTO || rc == -EPROTONOSUPPORT) {
		out->verdict = REC_NOT_RECORDING;
		snprintf(out->reason, sizeof out->reason, "not a podgate recording (%s)",
		    rc == -ENODATA ? "truncated inside the header" : rec_strerror(rc));
		return 0;
	}
	if (rc < 0)
		return rc;
	s.version = out->version = h.version;
	s.sid = h.session_id;
	if ((s.sha = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(s.sha, EVP_sha256(), NULL) != 1) {
		rc = -ENOMEM;
		goto out;
	}
	s.totals.exit_status = -1;
	verify_header(&s, r, pinned);
	raw = rec_reader_header_raw(r, &len);
	EVP_DigestUpdate(s.sha, raw, len);
	out->verified_bytes = len;

	while (!is_modified(&s) && (rc = rec_reader_next(r, &ev)) == 1) {
		out->events++;
		raw = rec_reader_event_raw(r, &len);
		if (s.sealed) {
			/* Version 2: the trailer, once; nothing else. */
			rec_pack_trailer(trailer, s.seal_offset);
			if (s.version >= 2 && !s.trailer && len == sizeof trailer &&
			    memcmp(raw, trailer, len) == 0) {
				s.trailer = true;
				out->verified_bytes = ev.offset + ev.size;
				continue;
			}
			modified(&s, ev.offset, "data after the seal, at byte %llu",
			    (unsigned long long)ev.offset);
			break;
		}
		if (ev.code == REC_CHECKPOINT || ev.code == REC_SEAL) {
			if (!verify_mark(&s, &ev, raw, len))
				break;
			if (ev.code == REC_SEAL) {
				s.sealed = true;
				s.seal_offset = ev.offset;
			}
		}
		count_event(&s.totals, &ev);
		EVP_DigestUpdate(s.sha, raw, len);
	}
	out->file_size = rec_reader_offset(r);
	if (!is_modified(&s)) {
		prefix_text(out, prefix, sizeof prefix);
		if (rc == -ENODATA) {
			out->file_size = rec_reader_error_offset(r);
			if (s.sealed)
				verify_cut_after_seal(&s, fd, base, rec_reader_error_offset(r));
			else
				part(&s.end, REC_TRUNCATED, "truncated at byte %llu: %s",
				    (unsigned long long)rec_reader_error_offset(r), prefix);
		} else if (rc == -EBADMSG || rc == -EPROTO) {
			modified(&s, rec_reader_error_offset(r), "%s: %s", rec_reader_error(r), prefix);
		} else if (rc < 0) {
			goto out;
		} else if (!s.sealed)
			part(&s.end, REC_TRUNCATED, "not sealed: %s", prefix);
		else if (s.version >= 2 && !s.trailer)
			part(&s.end, REC_TRUNCATED, "truncated after the seal (no trailer): "
			    "verified up to the seal at byte %llu (%.3f s)",
			    (unsigned long long)out->verified_bytes,
			    (double)out->verified_time_ns / 1e9);
		if (s.end.v == REC_TRUNCATED && !s.sealed)
			verify_claimed_seal(&s, fd, base);
	}
	rc = 0;
done:
	verify_finish(&s);
out:
	EVP_MD_CTX_free(s.sha);
	rec_header_clear(&h);
	rec_reader_free(r);
	return rc;
}

/* The verdict's name. */
const char *
rec_verdict_name(enum rec_verdict v)
{
	static const char *const names[] = { "sealed", "truncated", "not a recording",
	    "unsigned", "wrong key", "modified" };

	return (unsigned)v < sizeof names / sizeof names[0] ? names[v] : "unknown";
}
