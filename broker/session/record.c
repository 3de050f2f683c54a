/*
 * A session's record (record.h): the redactor, the tee to watchers, the
 * recording's writer and its file, with syncs on libuv's thread pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/mkdirs.h"
#include "policy/redact.h"
#include "session/record.h"
#include "storage/storage.h"

#define RECORD_COALESCE_NS 2000000u
#define RECORD_SPANS 16

/*
 * The recording's descriptor. The writer writes to fd from the loop
 * thread; fdatasync and the final fsync run on the thread pool, and fd is
 * closed only when no sync is in flight, so a sync never runs on a closed
 * (or reused) descriptor. It outlives the session while a sync runs.
 *
 * Once a sync has made a stretch of the file durable, its pages are handed
 * back to the kernel (POSIX_FADV_DONTNEED): a recording is written once and
 * read later, if at all, so a busy broker neither fills the page cache (in a
 * container, its memory cgroup) with recordings nor takes fresh pages for
 * every megabyte it writes; the pages it gave back are the next ones used.
 */
struct recfile {
	int fd;
	int err;		/* the first failed sync (negative errno), or 0 */
	int work_err;		/* the sync just done (thread pool), or 0 */
	bool syncing;		/* a sync is on the thread pool */
	bool again;		/* another sync was asked for meanwhile */
	bool closing;		/* recfile_close was called: fsync, close, free */
	bool final;		/* the sync on the thread pool is the final fsync */
	off_t dropped;		/* bytes before this left the page cache (thread pool) */
	uv_loop_t *loop;
	uv_work_t work;
};

/* Create a new recording file: O_EXCL, O_NOFOLLOW, mode 0600. */
static int
recfile_create(const char *path, uv_loop_t *loop, struct recfile **out)
{
	struct recfile *f;
	int r;

	*out = NULL;
	if ((f = calloc(1, sizeof *f)) == NULL)
		return -ENOMEM;
	f->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		r = -errno;
		free(f);
		return r;
	}
	f->loop = loop;
	*out = f;
	return 0;
}

/* The final fsync is done: close and free. */
static void
recfile_finish(struct recfile *f)
{
	if (f->err != 0)
		log_warn("syncing a recording to disk: %s", strerror(-f->err));
	close(f->fd);
	free(f);
}

/*
 * Sync the file (thread pool, or in place), then drop from the page cache
 * what the sync made durable and was not dropped yet: the bytes written
 * before it began. The kernel keeps a page the range ends inside (the
 * writer is still filling it); the next sync drops it.
 */
static int
recfile_sync_now(struct recfile *f, bool final)
{
	struct stat st;
	bool sized = fstat(f->fd, &st) == 0;
	off_t page = (off_t)sysconf(_SC_PAGESIZE);

	if ((final ? fsync(f->fd) : fdatasync(f->fd)) < 0)
		return -errno;
	if (sized && st.st_size > f->dropped && page > 0 &&
	    posix_fadvise(f->fd, f->dropped, st.st_size - f->dropped, POSIX_FADV_DONTNEED) == 0)
		f->dropped = st.st_size - st.st_size % page;
	return 0;
}

static void
recfile_work(uv_work_t *w)
{
	struct recfile *f = w->data;

	f->work_err = recfile_sync_now(f, f->final);
}

static void recfile_start(struct recfile *f, bool final);

/* A sync finished on the thread pool: note a failure, then go on. */
static void
recfile_sync_cb(uv_work_t *w, int status)
{
	struct recfile *f = w->data;

	(void)status;		/* work that was queued is never cancelled */
	if (f->work_err != 0 && f->err == 0)
		f->err = f->work_err;
	f->syncing = false;
	if (f->final)
		recfile_finish(f);
	else if (f->closing)
		recfile_start(f, true);
	else if (f->again)
		recfile_start(f, false);
}

/* Queue an fdatasync, or the final fsync; done in place if it cannot be queued. */
static void
recfile_start(struct recfile *f, bool final)
{
	int e;

	f->again = false;
	f->syncing = true;
	f->final = final;
	f->work.data = f;
	if (uv_queue_work(f->loop, &f->work, recfile_work, recfile_sync_cb) == 0)
		return;
	f->syncing = false;
	if ((e = recfile_sync_now(f, final)) != 0 && f->err == 0)
		f->err = e;
	if (final)
		recfile_finish(f);
}

/* Ask for an fdatasync; one asked while another runs follows it. */
static void
recfile_sync(struct recfile *f)
{
	if (f->syncing)
		f->again = true;
	else
		recfile_start(f, false);
}

/* fsync, close and free, after any sync in flight. */
static void
recfile_close(struct recfile *f)
{
	if (f == NULL)
		return;
	f->closing = true;
	if (!f->syncing)
		recfile_start(f, true);
}

void
record_init(struct record *r, uv_loop_t *loop, const struct config *c,
    const unsigned char *key, size_t keylen, void (*tee)(void *, const void *, size_t),
    void *arg)
{
	r->state = RECORD_OFF;
	r->loop = loop;
	r->config = c;
	r->key = key;
	r->keylen = keylen;
	r->tee = tee;
	r->tee_arg = arg;
}

int
record_open(struct record *r, const char *dir, const struct rec_header *h,
    const struct rec_key *sign_key, struct storage *st)
{
	struct rec_writer_opts o = {
		.coalesce_ns = RECORD_COALESCE_NS,
		.sign_key = sign_key,
	};
	int e;

	if ((e = mkdirs(dir, 0700)) < 0) {
		log_error_r(e, "cannot make %s", dir);
		return e;
	}
	free(r->path);
	if (asprintf(&r->path, "%s/%s.rec", dir, h->session_id) < 0) {
		r->path = NULL;
		return -ENOMEM;
	}
	if ((e = recfile_create(r->path, r->loop, &r->file)) < 0) {
		log_error_r(e, "cannot create %s", r->path);
		return e;
	}
	if ((e = rec_writer_open(&r->writer, r->file->fd, h, &o)) < 0 ||
	    (e = rec_writer_flush(r->writer)) < 0) {
		log_error_r(e, "cannot write %s", r->path);
		return e;
	}
	r->state = RECORD_ON;
	r->ship = storage_track(st, h->session_id, r->path);
	return 0;
}

/*
 * Record the proof of each secret that ended by this chunk: a marker
 * "redacted KIND: N bytes of STREAM, hmac-sha256 HEX", so that whoever
 * holds the broker's redaction key can show what was hidden.
 */
static int
record_proofs(struct record *r, const struct redact_chunk *ch)
{
	static const char *const streams[] = { "o", "output", "e", "stderr", "i", "input" };
	const struct redact_proof *p;
	const char *name;
	struct rec_event ev;
	char text[256];
	size_t i, k;
	int n, e;

	for (i = 0; i < ch->nproofs; i++) {
		p = &ch->proofs[i];
		name = "?";
		for (k = 0; k < 6; k += 2) {
			if (streams[k][0] == p->code)
				name = streams[k + 1];
		}
		n = snprintf(text, sizeof text, "redacted %s: %llu bytes of %s, hmac-sha256 %s",
		    p->kind, (unsigned long long)p->len, name, p->hmac);
		if (n < 0 || (size_t)n >= sizeof text)
			continue;
		memset(&ev, 0, sizeof ev);
		ev.code = REC_MARKER;
		ev.data = (const uint8_t *)text;
		ev.len = (size_t)n;
		if ((e = rec_writer_append_spans(r->writer, ch->time, &ev, NULL, 0)) < 0)
			return e;
	}
	return 0;
}

/* Append one decided chunk to the file. */
static int
record_write(struct record *r, const struct redact_chunk *ch)
{
	struct rec_span stack[RECORD_SPANS], *spans = NULL;
	struct rec_event ev;
	size_t i;
	int e;

	memset(&ev, 0, sizeof ev);
	ev.code = ch->code;
	switch (ch->code) {
	case REC_OUTPUT:
	case REC_STDERR:
	case REC_INPUT:
		if (ch->len == 0)
			return record_proofs(r, ch);
		ev.data = ch->data;
		ev.len = ch->len;
		if (ch->nspans == 0)
			break;
		spans = ch->nspans <= RECORD_SPANS ? stack : calloc(ch->nspans, sizeof *spans);
		if (spans == NULL)
			return -ENOMEM;
		for (i = 0; i < ch->nspans; i++) {
			spans[i].at = ch->spans[i].at;
			spans[i].len = ch->spans[i].len;
			spans[i].kind = ch->spans[i].kind;
		}
		break;
	case REC_MARKER:
		ev.data = ch->data;
		ev.len = ch->len;
		break;
	default:
		return 0;
	}
	e = rec_writer_append_spans(r->writer, ch->time, &ev, spans,
	    spans != NULL ? ch->nspans : 0);
	if (spans != NULL && spans != stack)
		free(spans);
	if (e < 0)
		return e;
	return record_proofs(r, ch);
}

/* A resize came out of the redactor: the oldest one queued. */
static int
record_write_resize(struct record *r, uint64_t time)
{
	struct rec_event ev;

	if (r->nresize == 0)
		return 0;
	memset(&ev, 0, sizeof ev);
	ev.code = REC_RESIZE;
	ev.cols = r->resize[0].cols;
	ev.rows = r->resize[0].rows;
	r->nresize--;
	memmove(r->resize, r->resize + 1, r->nresize * sizeof r->resize[0]);
	if (r->state != RECORD_ON)
		return 0;
	return rec_writer_append_spans(r->writer, time, &ev, NULL, 0);
}

/*
 * A checkpoint went to the file (from a tick, or written on the way by an
 * append that found one due): have it reach the disk, off the loop, and
 * let the shipper send the bytes up to it. The writer drains its buffer
 * right after a checkpoint, so the bytes written end with it.
 */
static void
record_checkpointed(struct record *r)
{
	uint64_t n = rec_writer_checkpoints(r->writer);

	if (n == r->checkpoints)
		return;
	r->checkpoints = n;
	recfile_sync(r->file);
	storage_checkpoint(r->ship, rec_writer_written(r->writer));
}

/* Hand every decided chunk on: to the watchers, then to the file. */
static int
record_drain(struct record *r)
{
	struct redact_chunk ch;
	int e;

	while ((e = redact_next(r->redact, &ch)) == 1) {
		if (ch.code == REC_RESIZE) {
			if ((e = record_write_resize(r, ch.time)) < 0)
				return e;
			continue;
		}
		/* Watchers see what the record holds: secrets redacted. */
		if ((ch.code == REC_OUTPUT || ch.code == REC_STDERR) && ch.len > 0 &&
		    r->tee != NULL)
			r->tee(r->tee_arg, ch.data, ch.len);
		if (r->state == RECORD_ON && (e = record_write(r, &ch)) < 0)
			return e;
		if (r->state == RECORD_ON)
			record_checkpointed(r);
	}
	return e;
}

bool
record_live(const struct record *r)
{
	return r->state == RECORD_ON || r->state == RECORD_DROPPED;
}

int
record_event(struct record *r, char code, const void *data, size_t len)
{
	int e;

	if (!record_live(r))
		return 0;
	if (r->redact == NULL) {
		if ((e = redact_new(r->config, &r->redact)) < 0)
			return e;
		if (r->key != NULL && (e = redact_set_key(r->redact, r->key, r->keylen)) < 0)
			return e;
	}
	if ((e = redact_feed(r->redact, code, rec_now_mono_ns(), data, len)) < 0)
		return e;
	return record_drain(r);
}

int
record_resize(struct record *r, uint16_t cols, uint16_t rows)
{
	int e;

	if (r->state != RECORD_ON)
		return 0;
	if (r->redact == NULL || redact_queued(r->redact) == 0 ||
	    r->nresize == RECORD_RESIZES) {
		/* Nothing held before it (or too many resizes queued): write it now. */
		if (r->redact != NULL && ((e = redact_flush(r->redact)) < 0 ||
		    (e = record_drain(r)) < 0))
			return e;
		return rec_writer_resize(r->writer, cols, rows);
	}
	/* Bytes are held: the resize waits in line behind them, as a resize. */
	r->resize[r->nresize].cols = cols;
	r->resize[r->nresize].rows = rows;
	r->nresize++;
	if ((e = redact_feed(r->redact, REC_RESIZE, rec_now_mono_ns(), NULL, 0)) < 0)
		return e;
	return record_drain(r);
}

int
record_tick(struct record *r)
{
	int e;

	if (!record_live(r))
		return 0;
	if (r->redact != NULL && redact_tick(r->redact, rec_now_mono_ns()) == 1 &&
	    (e = record_drain(r)) < 0)
		return e;
	if (r->state != RECORD_ON)
		return 0;
	/* A checkpoint due goes to the file, and on to the disk and the shipper. */
	if (!rec_writer_quiet(r->writer) && (e = rec_writer_tick(r->writer, 0)) < 0)
		return e;
	record_checkpointed(r);
	return r->file->err;
}

bool
record_pending(const struct record *r)
{
	if (!record_live(r))
		return false;
	if (r->redact != NULL && redact_queued(r->redact) > 0)
		return true;
	return r->state == RECORD_ON && !rec_writer_quiet(r->writer);
}

int
record_close(struct record *r, int status, const char *signame)
{
	int e = 0, e2;

	if (r->state == RECORD_ON && r->redact != NULL &&
	    ((e = redact_flush(r->redact)) < 0 || (e = record_drain(r)) < 0))
		r->state = RECORD_FAILED;
	if (r->state == RECORD_ON && (e = rec_writer_exit(r->writer, signame != NULL ? -1 :
	    status, signame)) < 0)
		r->state = RECORD_FAILED;
	if (r->writer != NULL) {
		e2 = rec_writer_close(r->writer);
		r->writer = NULL;
		if (e == 0 && r->state == RECORD_ON)
			e = e2;
	}
	recfile_close(r->file);
	r->file = NULL;
	storage_done(r->ship);	/* the shipper owns it now */
	r->ship = NULL;
	if (r->state != RECORD_OFF)
		r->state = RECORD_CLOSED;
	return e;
}

void
record_drop(struct record *r)
{
	if (r->writer != NULL)
		rec_writer_abandon(r->writer);
	r->writer = NULL;
	recfile_close(r->file);
	r->file = NULL;
	storage_done(r->ship);
	r->ship = NULL;
	r->nresize = 0;
	r->state = RECORD_DROPPED;
}

void
record_fail(struct record *r)
{
	if (r->state == RECORD_ON)
		r->state = RECORD_FAILED;
}

void
record_free(struct record *r)
{
	/* Whatever is still held reaches the file if it is open. */
	if (r->state == RECORD_ON && r->redact != NULL &&
	    (redact_flush(r->redact) < 0 || record_drain(r) < 0))
		log_warn("recording %s: held events not recorded", r->path);
	if (r->writer != NULL)
		rec_writer_close(r->writer);
	r->writer = NULL;
	recfile_close(r->file);
	r->file = NULL;
	storage_done(r->ship);
	r->ship = NULL;
	redact_free(r->redact);
	r->redact = NULL;
	free(r->path);
	r->path = NULL;
}
