/*
 * Recording verification: recompute the SHA-256 of the byte stream, check
 * each checkpoint's digest, sequence and signature, and the seal's totals.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include <openssl/evp.h>

#include "rec.h"
#include "rec-int.h"

struct verify_state {
	struct rec_verify *out;
	EVP_MD_CTX *sha;
	bool has_key;
	uint8_t pub[32];
	uint64_t seq;		/* next checkpoint sequence number */
	bool sealed;
	struct rec_totals totals;
	enum rec_verdict worst;
};

/* Raise the verdict to v (keeping the worse one) with a reason. */
static void verdict(struct verify_state *s, enum rec_verdict v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
verdict(struct verify_state *s, enum rec_verdict v, const char *fmt, ...)
{
	va_list ap;

	if (v < s->worst || (v == s->worst && s->out->reason[0] != '\0'))
		return;
	s->worst = v;
	va_start(ap, fmt);
	vsnprintf(s->out->reason, sizeof s->out->reason, fmt, ap);
	va_end(ap);
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

/* Read the signer and chain of the header. */
static void
verify_header(struct verify_state *s, const struct rec_reader *r, const struct rec_key *pinned)
{
	const msgpack_object *signer, *key, *fp, *chain, *alg;
	char computed[REC_KEY_FP_LEN];
	msgpack_unpacked u;
	const uint8_t *raw;
	size_t len, used = 0;

	raw = rec_reader_header_raw(r, &len);
	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, (const char *)raw, len, &used) != MSGPACK_UNPACK_SUCCESS) {
		verdict(s, REC_MODIFIED, "header cannot be decoded");
		goto out;
	}
	chain = rec_map_get(&u.data, "chain");
	if (chain == NULL) {
		verdict(s, REC_UNSIGNED, "no integrity data (no hash chain in the header)");
		goto out;
	}
	if (!rec_obj_is(chain, "sha256")) {
		verdict(s, REC_MODIFIED, "unknown hash chain in the header");
		goto out;
	}
	signer = rec_map_get(&u.data, "signer");
	if (signer == NULL) {
		if (pinned != NULL)
			verdict(s, REC_UNSIGNED, "unsigned, but a key was given");
		else
			verdict(s, REC_UNSIGNED, "unsigned (hash chain only)");
		goto out;
	}
	key = rec_map_get(signer, "key");
	fp = rec_map_get(signer, "key_fp");
	alg = rec_map_get(signer, "alg");
	if (alg == NULL || !rec_obj_is(alg, "ed25519") || key == NULL ||
	    key->type != MSGPACK_OBJECT_BIN || key->via.bin.size != 32) {
		verdict(s, REC_MODIFIED, "bad signer in the header");
		goto out;
	}
	memcpy(s->pub, key->via.bin.ptr, 32);
	s->has_key = true;
	rec_key_fp_of(s->pub, computed);
	memcpy(s->out->key_fp, computed, sizeof computed);
	if (fp != NULL && !rec_obj_is(fp, computed)) {
		verdict(s, REC_MODIFIED, "signer fingerprint does not match the signer key");
		goto out;
	}
	if (pinned != NULL && memcmp(pinned->pub, s->pub, 32) != 0)
		verdict(s, REC_WRONG_KEY, "wrong key: signed by %s, not by %s", computed,
		    rec_key_fingerprint(pinned));
out:
	msgpack_unpacked_destroy(&u);
}

/* Whether o is an unsigned integer equal to v. */
static bool
uint_is(const msgpack_object *o, uint64_t v)
{
	return o != NULL && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == v;
}

/* Check a checkpoint or the seal against the digest of what precedes it. */
static bool
verify_mark(struct verify_state *s, const struct rec_event *ev, const uint8_t *raw, size_t len,
    const char *sid)
{
	uint8_t digest[32], msg[REC_SIGNED_MAX];
	const msgpack_object *m, *seq, *dg, *sig;
	const char *what = ev->code == REC_SEAL ? "seal" : "checkpoint";
	msgpack_unpacked u;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t used = 0, mlen;
	bool ok = false, same;

	msgpack_unpacked_init(&u);
	if (digest_now(s->sha, digest) < 0 ||
	    msgpack_unpack_next(&u, (const char *)raw, len, &used) != MSGPACK_UNPACK_SUCCESS) {
		verdict(s, REC_MODIFIED, "%s at byte %llu cannot be decoded", what,
		    (unsigned long long)ev->offset);
		goto out;
	}
	m = &u.data.via.array.ptr[2];
	seq = rec_map_get(m, "seq");
	dg = rec_map_get(m, "digest");
	sig = rec_map_get(m, "sig");
	if (!uint_is(seq, s->seq)) {
		verdict(s, REC_MODIFIED, "%s at byte %llu is out of sequence (expected %llu)",
		    what, (unsigned long long)ev->offset, (unsigned long long)s->seq);
		goto out;
	}
	if (dg == NULL || dg->type != MSGPACK_OBJECT_BIN || dg->via.bin.size != 32 ||
	    memcmp(dg->via.bin.ptr, digest, 32) != 0) {
		verdict(s, REC_MODIFIED, "modified before byte %llu: %s %llu does not match the "
		    "bytes after byte %llu", (unsigned long long)ev->offset, what,
		    (unsigned long long)s->seq, (unsigned long long)s->out->verified_bytes);
		goto out;
	}
	if (s->has_key) {
		mlen = rec_signed_msg(msg, ev->code, sid, s->seq, digest,
		    ev->code == REC_SEAL ? &s->totals : NULL);
		if (sig == NULL || sig->type != MSGPACK_OBJECT_BIN || sig->via.bin.size != 64 ||
		    !rec_sig_ok(s->pub, msg, mlen, (const uint8_t *)sig->via.bin.ptr)) {
			verdict(s, REC_MODIFIED, "%s %llu at byte %llu: bad signature", what,
			    (unsigned long long)s->seq, (unsigned long long)ev->offset);
			goto out;
		}
	} else if (sig != NULL) {
		verdict(s, REC_MODIFIED, "%s at byte %llu is signed but the header names no signer",
		    what, (unsigned long long)ev->offset);
		goto out;
	}
	/*
	 * Every byte of the mark must be what the writer would have written:
	 * the seal comes at the time of the last event (interval 0) and holds
	 * the totals of the events before it.
	 */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	rec_pack_mark(&pk, ev->code, ev->code == REC_SEAL ? 0 : ev->interval_ns, s->seq, digest,
	    &s->totals, s->has_key ? (const uint8_t *)sig->via.bin.ptr : NULL);
	same = sb.size == len && memcmp(sb.data, raw, len) == 0;
	msgpack_sbuffer_destroy(&sb);
	if (!same) {
		verdict(s, REC_MODIFIED, "%s at byte %llu: %s", what, (unsigned long long)ev->offset,
		    ev->code == REC_SEAL ? "totals or time do not match the events" :
		    "not as written");
		goto out;
	}
	ok = true;
	s->seq++;
	if (ev->code == REC_CHECKPOINT)
		s->out->checkpoints++;
	s->out->verified_bytes = ev->offset + ev->size;
	s->out->verified_time_ns = ev->time_ns;
out:
	if (!ok)
		s->out->bad_offset = ev->offset;
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

/* Verify the recording on fd. */
int
rec_verify_fd(int fd, const struct rec_key *pinned, struct rec_verify *out)
{
	struct verify_state s = { .out = out, .worst = REC_SEALED };
	struct rec_reader *r = NULL;
	struct rec_header h;
	struct rec_event ev;
	const uint8_t *raw;
	char prefix[128];
	size_t len;
	int rc;

	memset(out, 0, sizeof *out);
	rc = rec_reader_open(&r, fd, &h);
	if (rc == -EBADMSG || rc == -ENODATA || rc == -EPROTO || rc == -EPROTONOSUPPORT) {
		out->verdict = REC_NOT_RECORDING;
		snprintf(out->reason, sizeof out->reason, "not a podgate recording (%s)",
		    rc == -ENODATA ? "truncated inside the header" : rec_strerror(rc));
		return 0;
	}
	if (rc < 0)
		return rc;
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

	while (s.worst != REC_MODIFIED && (rc = rec_reader_next(r, &ev)) == 1) {
		out->events++;
		raw = rec_reader_event_raw(r, &len);
		if (s.sealed) {
			verdict(&s, REC_MODIFIED, "data after the seal, at byte %llu",
			    (unsigned long long)ev.offset);
			out->bad_offset = ev.offset;
			break;
		}
		if (ev.code == REC_CHECKPOINT || ev.code == REC_SEAL) {
			if (!verify_mark(&s, &ev, raw, len, h.session_id))
				break;
			if (ev.code == REC_SEAL)
				s.sealed = true;
		}
		count_event(&s.totals, &ev);
		EVP_DigestUpdate(s.sha, raw, len);
	}
	out->file_size = rec_reader_offset(r);
	if (s.worst != REC_MODIFIED) {
		prefix_text(out, prefix, sizeof prefix);
		if (rc == -ENODATA) {
			out->file_size = rec_reader_error_offset(r);
			verdict(&s, REC_TRUNCATED, "truncated at byte %llu: %s",
			    (unsigned long long)rec_reader_error_offset(r), prefix);
		} else if (rc == -EBADMSG || rc == -EPROTO) {
			out->bad_offset = rec_reader_error_offset(r);
			verdict(&s, REC_MODIFIED, "%s: %s", rec_reader_error(r), prefix);
		} else if (rc < 0) {
			goto out;
		} else if (!s.sealed)
			verdict(&s, REC_TRUNCATED, "not sealed: %s", prefix);
	}
	if (s.worst == REC_SEALED)
		snprintf(out->reason, sizeof out->reason, "sealed and intact (%llu checkpoint%s), "
		    "signed by %s", (unsigned long long)out->checkpoints,
		    out->checkpoints == 1 ? "" : "s", out->key_fp);
	out->verdict = s.worst;
	rc = 0;
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
