/*
 * Recording writer: packs events into an explicit buffer and appends it to
 * a file descriptor with write(2) when the buffer fills or on flush.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "rec.h"
#include "rec-int.h"

/* Most bytes merged into one o/e/i event. */
#define COALESCE_MAX (64u * 1024)

struct rec_writer {
	int fd;
	bool locked;		/* holds the lock readers test (rec_being_written) */
	int err;		/* sticky: the first write error */
	char sid[37];
	uint64_t prev;		/* monotonic time of the last event (pending included) */
	uint64_t written;
	uint64_t coalesce_ns;

	uint8_t *buf;		/* packed events not yet written */
	size_t len, cap, flush_at;
	msgpack_packer pk;

	/* Integrity: a running SHA-256 of every byte packed so far. */
	EVP_MD_CTX *sha;
	size_t hashed;		/* buf[0..hashed) is already in sha */
	const struct rec_key *key;
	uint64_t cp_seq;	/* checkpoints written */
	uint64_t cp_ns, cp_bytes;
	uint64_t cp_last_t;	/* time of the last checkpoint (or the start) */
	uint64_t cp_last_off;	/* stream offset after the last checkpoint */
	uint64_t packed;	/* bytes packed in all (written + buffered) */
	uint64_t since_cp;	/* events appended since the last checkpoint */
	uint64_t start;		/* monotonic start */
	struct rec_totals totals;

	/* An o/e/i event still open for merging. */
	char pend_code;		/* 0: none */
	uint64_t pend_interval;
	uint8_t *pend;
	size_t pend_len;
};

/* Grow the buffer to hold need more bytes. */
static int
buf_reserve(struct rec_writer *w, size_t need)
{
	size_t cap = w->cap;
	uint8_t *p;

	if (w->len + need <= w->cap)
		return 0;
	while (cap < w->len + need)
		cap *= 2;
	if ((p = realloc(w->buf, cap)) == NULL)
		return -ENOMEM;
	w->buf = p;
	w->cap = cap;
	return 0;
}

/* msgpack_packer callback: append to the buffer. */
static int
buf_write_cb(void *data, const char *p, size_t n)
{
	struct rec_writer *w = data;

	if (buf_reserve(w, n) < 0) {
		w->err = -ENOMEM;
		return -1;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	w->packed += n;
	return 0;
}

/* Add the buffered bytes not yet hashed to the running digest. */
static void
buf_hash(struct rec_writer *w)
{
	if (w->hashed < w->len && EVP_DigestUpdate(w->sha, w->buf + w->hashed,
	    w->len - w->hashed) != 1)
		w->err = -EIO;
	w->hashed = w->len;
}

/* Write the whole buffer to fd. */
static int
buf_drain(struct rec_writer *w)
{
	size_t off = 0;
	ssize_t n;

	buf_hash(w);
	if (w->err < 0)
		return w->err;
	while (off < w->len) {
		n = write(w->fd, w->buf + off, w->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			w->err = n < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)n;
		w->written += (uint64_t)n;
	}
	memmove(w->buf, w->buf + off, w->len - off);
	w->len -= off;
	w->hashed -= off;
	return w->err;
}

static void writer_free(struct rec_writer *w);

/* Pack [interval, code, ...] framing; the payload follows. */
static void
pack_frame(struct rec_writer *w, uint64_t interval, char code)
{
	w->totals.events++;
	w->since_cp++;
	msgpack_pack_array(&w->pk, 3);
	msgpack_pack_uint64(&w->pk, interval);
	msgpack_pack_str(&w->pk, 1);
	msgpack_pack_str_body(&w->pk, &code, 1);
}

/* Pack a bin-payload event. */
static void
pack_bin(struct rec_writer *w, uint64_t interval, char code, const void *p, size_t n)
{
	pack_frame(w, interval, code);
	msgpack_pack_bin(&w->pk, n);
	msgpack_pack_bin_body(&w->pk, p, n);
}

/* Move the pending merged event into the buffer. */
static void
pend_emit(struct rec_writer *w)
{
	if (w->pend_code == 0)
		return;
	pack_bin(w, w->pend_interval, w->pend_code, w->pend, w->pend_len);
	w->totals.bytes[w->pend_code == REC_OUTPUT ? 0 : w->pend_code == REC_STDERR ? 1 : 2] +=
	    w->pend_len;
	w->pend_code = 0;
	w->pend_len = 0;
}

/* Start a recording on fd: header into the buffer, clocks started. */
int
rec_writer_open(struct rec_writer **out, int fd, const struct rec_header *h,
    const struct rec_writer_opts *opts)
{
	struct rec_writer *w = NULL;
	int r;

	*out = NULL;
	if (fd < 0 || h == NULL)
		return -EINVAL;
	if ((w = calloc(1, sizeof *w)) == NULL)
		return -ENOMEM;
	w->fd = fd;
	/*
	 * Readers tell a recording still being written from one a crash cut
	 * short by this lock (rec_being_written): held until the seal, and
	 * let go by the kernel when the writer dies. Without flock the
	 * recording is simply never shown as open.
	 */
	w->locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
	w->key = opts != NULL ? opts->sign_key : NULL;
	w->cp_ns = opts != NULL && opts->checkpoint_ns > 0 ? opts->checkpoint_ns : 1000000000u;
	w->cp_bytes = opts != NULL && opts->checkpoint_bytes > 0 ? opts->checkpoint_bytes :
	    1024u * 1024;
	w->totals.exit_status = -1;
	if ((w->sha = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) != 1) {
		r = -ENOMEM;
		goto fail;
	}
	w->cap = opts != NULL && opts->buffer_size > 0 ? opts->buffer_size : 64u * 1024;
	w->flush_at = w->cap;
	w->coalesce_ns = opts != NULL ? opts->coalesce_ns : 0;
	if ((w->buf = malloc(w->cap)) == NULL ||
	    (w->coalesce_ns > 0 && (w->pend = malloc(COALESCE_MAX)) == NULL)) {
		r = -ENOMEM;
		goto fail;
	}
	if (h->session_id != NULL) {
		if (strlen(h->session_id) != REC_SID_LEN) {
			r = -EINVAL;
			goto fail;
		}
		strcpy(w->sid, h->session_id);
	} else if ((r = rec_uuid7(w->sid)) < 0)
		goto fail;
	msgpack_packer_init(&w->pk, w, buf_write_cb);
	rec_header_pack(&w->pk, h, w->sid, h->start_ns ? h->start_ns : rec_now_utc_ns(), w->key);
	if (w->err < 0) {
		r = w->err;
		goto fail;
	}
	w->start = w->prev = w->cp_last_t = opts != NULL && opts->start_mono_ns != 0 ?
	    opts->start_mono_ns : rec_now_mono_ns();
	w->cp_last_off = w->packed;
	*out = w;
	return 0;
fail:
	writer_free(w);
	return r;
}

/* The digest of every byte packed so far (the running hash is kept). */
static int
digest_now(struct rec_writer *w, uint8_t digest[32])
{
	EVP_MD_CTX *copy = EVP_MD_CTX_new();
	unsigned int n = 0;
	int r = -EIO;

	buf_hash(w);
	if (copy != NULL && EVP_MD_CTX_copy_ex(copy, w->sha) == 1 &&
	    EVP_DigestFinal_ex(copy, digest, &n) == 1 && n == 32)
		r = 0;
	EVP_MD_CTX_free(copy);
	return r;
}

/*
 * Pack a checkpoint ('c') or the seal ('s') at time t: sequence number,
 * its own time and offset, the digest of everything before it, totals for
 * the seal, and a signature over all of them. The seal is followed by the
 * trailer that names its offset.
 */
static int
pack_mark(struct rec_writer *w, char code, uint64_t t)
{
	uint8_t digest[32], sig[64], msg[REC_SIGNED_MAX], trailer[REC_TRAILER_LEN];
	struct rec_mark m = { .version = REC_FORMAT_VERSION, .code = code, .digest = digest,
	    .totals = &w->totals };
	size_t mlen;
	int r;

	pend_emit(w);
	if ((r = digest_now(w, digest)) < 0)
		return w->err = r;
	if (t < w->prev)
		t = w->prev;
	if (code == REC_SEAL)
		w->totals.duration_ns = w->prev - w->start;
	m.interval = t - w->prev;
	m.seq = w->cp_seq;
	m.time_ns = t - w->start;
	m.offset = w->packed;
	mlen = rec_signed_msg(msg, w->sid, &m);
	if (w->key != NULL && (r = rec_key_sign(w->key, msg, mlen, sig)) < 0)
		return w->err = r;
	m.sig = w->key != NULL ? sig : NULL;
	w->prev = t;
	rec_pack_mark(&w->pk, &m);
	if (code == REC_SEAL) {
		rec_pack_trailer(trailer, m.offset);
		buf_write_cb(w, (const char *)trailer, sizeof trailer);
	}
	w->totals.events++;	/* after packing: a mark's "events" excludes itself */
	w->cp_seq++;
	w->since_cp = 0;
	w->cp_last_t = t;
	w->cp_last_off = w->packed;
	return w->err;
}

/* Write a checkpoint if one is due at time t; 1 if written. */
static int
checkpoint_due(struct rec_writer *w, uint64_t t)
{
	int r;

	if (w->since_cp == 0 && w->pend_code == 0)
		return 0;
	if (t - w->cp_last_t < w->cp_ns && w->packed + w->pend_len - w->cp_last_off < w->cp_bytes)
		return 0;
	if ((r = pack_mark(w, REC_CHECKPOINT, t)) < 0 || (r = buf_drain(w)) < 0)
		return r;
	return 1;
}

/* Session id of the recording. */
const char *
rec_writer_session_id(const struct rec_writer *w)
{
	return w->sid;
}

/* Append one event stamped with mono_ns (0: now). */
int
rec_writer_append(struct rec_writer *w, uint64_t mono_ns, const struct rec_event *ev)
{
	uint64_t t, interval;
	bool bin;

	if (w == NULL || ev == NULL)
		return -EINVAL;
	if (w->err < 0)
		return w->err;
	bin = ev->code == REC_OUTPUT || ev->code == REC_STDERR || ev->code == REC_INPUT;
	if ((bin || ev->code == REC_MARKER) && ev->len > REC_MAX_PAYLOAD)
		return -EMSGSIZE;
	if ((bin || ev->code == REC_MARKER) && ev->len > 0 && ev->data == NULL)
		return -EINVAL;
	t = mono_ns != 0 ? mono_ns : rec_now_mono_ns();
	if (t < w->prev)
		t = w->prev;

	if (ev->code != REC_OUTPUT && ev->code != REC_STDERR && ev->code != REC_INPUT &&
	    ev->code != REC_MARKER && ev->code != REC_RESIZE && ev->code != REC_EXIT)
		return -EINVAL;

	/* Merge into the open event: same code, within the window from its start. */
	if (bin && w->pend_code == ev->code && t - w->prev <= w->coalesce_ns &&
	    w->pend_len + ev->len <= COALESCE_MAX) {
		memcpy(w->pend + w->pend_len, ev->data, ev->len);
		w->pend_len += ev->len;
		return checkpoint_due(w, t) < 0 ? w->err : 0;
	}
	pend_emit(w);
	interval = t - w->prev;
	w->prev = t;

	switch (ev->code) {
	case REC_OUTPUT:
	case REC_STDERR:
	case REC_INPUT:
		if (w->coalesce_ns > 0 && ev->len <= COALESCE_MAX) {
			w->pend_code = ev->code;
			w->pend_interval = interval;
			if (ev->len > 0)
				memcpy(w->pend, ev->data, ev->len);
			w->pend_len = ev->len;
		} else
			pack_bin(w, interval, ev->code, ev->data, ev->len);
		break;
	case REC_MARKER:
		pack_frame(w, interval, ev->code);
		msgpack_pack_str(&w->pk, ev->len);
		msgpack_pack_str_body(&w->pk, ev->data, ev->len);
		break;
	case REC_RESIZE:
		pack_frame(w, interval, ev->code);
		msgpack_pack_array(&w->pk, 2);
		msgpack_pack_uint16(&w->pk, ev->cols);
		msgpack_pack_uint16(&w->pk, ev->rows);
		break;
	case REC_EXIT:
		pack_frame(w, interval, ev->code);
		rec_pack_exit(&w->pk, ev->exit_status, ev->exit_signal);
		break;
	default:
		return -EINVAL;
	}
	if (bin && w->pend_code == 0)
		w->totals.bytes[ev->code == REC_OUTPUT ? 0 : ev->code == REC_STDERR ? 1 : 2] += ev->len;
	if (ev->code == REC_EXIT) {
		w->totals.exited = true;
		w->totals.exit_status = ev->exit_signal[0] != '\0' ? -1 : ev->exit_status;
		memcpy(w->totals.exit_signal, ev->exit_signal, sizeof w->totals.exit_signal);
		w->totals.exit_signal[sizeof w->totals.exit_signal - 1] = '\0';
	}
	if (w->err < 0)
		return w->err;
	if (checkpoint_due(w, t) < 0)
		return w->err;
	if (w->len >= w->flush_at)
		return buf_drain(w);
	return 0;
}

/* Append a data event preceded by the R event that marks its redactions. */
int
rec_writer_append_spans(struct rec_writer *w, uint64_t mono_ns, const struct rec_event *ev,
    const struct rec_span *spans, size_t nspans)
{
	uint64_t t, end = 0, interval;
	size_t i, klen;

	if (w == NULL || ev == NULL || (nspans > 0 && spans == NULL))
		return -EINVAL;
	if (nspans == 0)
		return rec_writer_append(w, mono_ns, ev);
	if (ev->code != REC_OUTPUT && ev->code != REC_STDERR && ev->code != REC_INPUT)
		return -EINVAL;
	for (i = 0; i < nspans; i++) {
		if (spans[i].at < end || spans[i].len > ev->len ||
		    spans[i].at > ev->len - spans[i].len || spans[i].kind == NULL)
			return -EINVAL;
		end = spans[i].at + spans[i].len;
	}
	if (w->err < 0)
		return w->err;
	t = mono_ns != 0 ? mono_ns : rec_now_mono_ns();
	if (t < w->prev)
		t = w->prev;
	/* The marked event must start anew: close any merge first. */
	pend_emit(w);
	interval = t - w->prev;
	w->prev = t;
	pack_frame(w, interval, REC_REDACTED);
	msgpack_pack_array(&w->pk, nspans);
	for (i = 0; i < nspans; i++) {
		klen = strlen(spans[i].kind);
		msgpack_pack_map(&w->pk, 3);
		msgpack_pack_str(&w->pk, 2);
		msgpack_pack_str_body(&w->pk, "at", 2);
		msgpack_pack_uint64(&w->pk, spans[i].at);
		msgpack_pack_str(&w->pk, 3);
		msgpack_pack_str_body(&w->pk, "len", 3);
		msgpack_pack_uint64(&w->pk, spans[i].len);
		msgpack_pack_str(&w->pk, 4);
		msgpack_pack_str_body(&w->pk, "kind", 4);
		msgpack_pack_str(&w->pk, klen);
		msgpack_pack_str_body(&w->pk, spans[i].kind, klen);
	}
	if (w->err < 0)
		return w->err;
	return rec_writer_append(w, t, ev);
}

/* Append o, e, i or m data stamped now. */
int
rec_writer_data(struct rec_writer *w, char code, const void *data, size_t len)
{
	struct rec_event ev = { .code = code, .data = data, .len = len };

	return rec_writer_append(w, 0, &ev);
}

/* Append a resize stamped now. */
int
rec_writer_resize(struct rec_writer *w, uint16_t cols, uint16_t rows)
{
	struct rec_event ev = { .code = REC_RESIZE, .cols = cols, .rows = rows };

	return rec_writer_append(w, 0, &ev);
}

/* Append an exit: a status, or a signal name when signal_name is set. */
int
rec_writer_exit(struct rec_writer *w, int status, const char *signal_name)
{
	struct rec_event ev = { .code = REC_EXIT, .exit_status = status };

	if (signal_name != NULL && signal_name[0] != '\0') {
		if (strncmp(signal_name, "SIG", 3) == 0)
			signal_name += 3;
		snprintf(ev.exit_signal, sizeof ev.exit_signal, "%s", signal_name);
		ev.exit_status = -1;
	}
	return rec_writer_append(w, 0, &ev);
}

/* Append a marker stamped now. */
int
rec_writer_marker(struct rec_writer *w, const char *label)
{
	return rec_writer_data(w, REC_MARKER, label, strlen(label));
}

/* Write everything buffered, the open merged event included. */
int
rec_writer_flush(struct rec_writer *w)
{
	if (w->err < 0)
		return w->err;
	pend_emit(w);
	if (w->err < 0)
		return w->err;
	return buf_drain(w);
}

/* Write a checkpoint when due, and flush. */
int
rec_writer_tick(struct rec_writer *w, uint64_t mono_ns)
{
	uint64_t t = mono_ns != 0 ? mono_ns : rec_now_mono_ns();
	int r;

	if (w->err < 0)
		return w->err;
	if (t < w->prev)
		t = w->prev;
	if ((r = checkpoint_due(w, t)) != 0)
		return r;
	return rec_writer_flush(w);
}

/* Whether the writer needs no tick until the next event. */
bool
rec_writer_quiet(const struct rec_writer *w)
{
	return w->len == 0 && w->pend_code == 0 && w->since_cp == 0;
}

/* Checkpoints written so far. */
uint64_t
rec_writer_checkpoints(const struct rec_writer *w)
{
	return w->cp_seq;
}

/* Bytes written to fd so far. */
uint64_t
rec_writer_written(const struct rec_writer *w)
{
	return w->written;
}

/* Bytes held in memory, not yet written. */
size_t
rec_writer_pending(const struct rec_writer *w)
{
	return w->len + w->pend_len;
}

/* The recording is no longer being written: let readers see it so. */
static void
writer_unlock(struct rec_writer *w)
{
	if (w->locked)
		(void)flock(w->fd, LOCK_UN);
	w->locked = false;
}

/* Free the writer's memory. */
static void
writer_free(struct rec_writer *w)
{
	EVP_MD_CTX_free(w->sha);
	free(w->pend);
	free(w->buf);
	free(w);
}

/* Seal, flush and free the writer. */
int
rec_writer_close(struct rec_writer *w)
{
	int r;

	if (w == NULL)
		return 0;
	r = w->err;
	if (r == 0)
		r = pack_mark(w, REC_SEAL, w->prev);
	if (r == 0)
		r = rec_writer_flush(w);
	writer_unlock(w);
	writer_free(w);
	return r;
}

/* Free the writer without sealing or flushing. */
void
rec_writer_abandon(struct rec_writer *w)
{
	if (w != NULL) {
		writer_unlock(w);
		writer_free(w);
	}
}

/* Whether another process is writing the recording open on fd. */
bool
rec_being_written(int fd)
{
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		(void)flock(fd, LOCK_UN);
		return false;
	}
	return errno == EWOULDBLOCK;
}
