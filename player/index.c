/*
 * The index of one recording: keyframes, markers, typed lines and a log of
 * rendered lines, built in one pass; and cursors that replay from the
 * nearest keyframe.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <msgpack.h>

#include "base.h"
#include "index.h"

/* A keyframe after this much output since the last (or 16 snapshots' worth). */
#define INDEX_KF_BYTES (256u * 1024)
/* ... or after this many events. */
#define INDEX_KF_EVENTS 20000u
/* Log records are buffered up to this size before a write(2). */
#define INDEX_LOG_BUF (256u * 1024)

/* State while the index is built. */
struct index_builder {
	struct index *ix;
	struct term *term;
	struct typed typed;
	uint8_t *buf;		/* log records not yet written */
	size_t len;
	uint64_t log_written;
	int err;
	uint64_t time_ns;
	size_t inputs_cap;
	struct index_spans spans;
};

/* The unsigned integer at key in map m, or false. */
static bool
index_map_uint(const msgpack_object *m, const char *key, uint64_t *v)
{
	size_t n = strlen(key);
	uint32_t i;

	for (i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key, *x = &m->via.map.ptr[i].val;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
		    memcmp(k->via.str.ptr, key, n) == 0 && x->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
			*v = x->via.u64;
			return true;
		}
	}
	return false;
}

/* Read the spans of an R event (docs/format.md): [interval, "R", [{at, len, kind}...]]. */
void
index_spans_parse(struct index_spans *sp, const uint8_t *raw, size_t len)
{
	const msgpack_object *a;
	msgpack_unpacked u;
	size_t used = 0;
	uint32_t i;

	sp->n = 0;
	msgpack_unpacked_init(&u);
	if (raw == NULL || msgpack_unpack_next(&u, (const char *)raw, len, &used) !=
	    MSGPACK_UNPACK_SUCCESS || u.data.type != MSGPACK_OBJECT_ARRAY ||
	    u.data.via.array.size != 3 || u.data.via.array.ptr[2].type != MSGPACK_OBJECT_ARRAY)
		goto out;
	a = &u.data.via.array.ptr[2];
	for (i = 0; i < a->via.array.size && sp->n < INDEX_MAX_SPANS; i++) {
		const msgpack_object *m = &a->via.array.ptr[i];
		uint64_t at, n;

		if (m->type != MSGPACK_OBJECT_MAP || !index_map_uint(m, "at", &at) ||
		    !index_map_uint(m, "len", &n) || at + n < at ||
		    (sp->n > 0 && at < sp->at[sp->n - 1] + sp->len[sp->n - 1]))
			break;	/* in increasing order, not overlapping */
		sp->at[sp->n] = at;
		sp->len[sp->n++] = n;
	}
out:
	msgpack_unpacked_destroy(&u);
}

/* Write [from, to) of a payload, its redacted spans in reverse video. */
void
index_feed(struct term *t, const uint8_t *data, size_t from, size_t to,
    const struct index_spans *sp)
{
	size_t i, a, b;

	for (i = 0; sp != NULL && i < sp->n && from < to; i++) {
		if (sp->at[i] + sp->len[i] <= from)
			continue;
		if (sp->at[i] >= to)
			break;
		a = sp->at[i] > from ? (size_t)sp->at[i] : from;
		b = sp->at[i] + sp->len[i] < to ? (size_t)(sp->at[i] + sp->len[i]) : to;
		if (a > from)
			term_write(t, data + from, a - from);
		term_write(t, "\033[7m", 4);
		term_write(t, data + a, b - a);
		term_write(t, "\033[27m", 5);
		from = b;
	}
	if (to > from)
		term_write(t, data + from, to - from);
}

/* Write all of p to fd. */
static int
index_write(int fd, const void *p, size_t n)
{
	const char *c = p;
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, c, n)) < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Give up the search log (playing goes on without search), saying why. */
static void
index_log_fail(struct index_builder *b, int err)
{
	if (b->ix->log_error[0] == '\0')
		snprintf(b->ix->log_error, sizeof b->ix->log_error,
		    "no search index: %s", strerror(-err));
	if (b->ix->log_fd >= 0)
		close(b->ix->log_fd);
	b->ix->log_fd = -1;
	b->log_written = 0;
	b->len = 0;
}

/* Write the buffered log records. */
static void
index_log_flush(struct index_builder *b)
{
	int r;

	if (b->len == 0 || b->ix->log_fd < 0)
		return;
	if ((r = index_write(b->ix->log_fd, b->buf, b->len)) < 0) {
		index_log_fail(b, r);
		return;
	}
	b->log_written += b->len;
	b->len = 0;
}

/* Append a varint. */
static size_t
index_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* Read a varint; returns bytes used or 0 when malformed. */
static size_t
index_get_varint(const uint8_t *p, size_t n, uint64_t *v)
{
	size_t i;
	int shift = 0;

	*v = 0;
	for (i = 0; i < n && i < 10; i++) {
		*v |= (uint64_t)(p[i] & 0x7f) << shift;
		if (!(p[i] & 0x80))
			return i + 1;
		shift += 7;
	}
	return 0;
}

/* Append one log record: kind, seq_from (or input number), seq_to, time, text. */
static void
index_log_add(struct index_builder *b, enum index_kind kind, uint64_t from, uint64_t to,
    const char *text, size_t len)
{
	uint8_t hdr[48];
	size_t h = 0;

	if (b->err < 0 || b->ix->log_fd < 0)
		return;
	hdr[h++] = (uint8_t)kind;
	h += index_varint(hdr + h, from);
	h += index_varint(hdr + h, to);
	h += index_varint(hdr + h, b->time_ns);
	h += index_varint(hdr + h, len);
	if (b->len + h + len > INDEX_LOG_BUF)
		index_log_flush(b);
	if (b->ix->log_fd < 0)
		return;
	if (h + len > INDEX_LOG_BUF) {
		int r;

		if ((r = index_write(b->ix->log_fd, hdr, h)) < 0 ||
		    (r = index_write(b->ix->log_fd, text, len)) < 0) {
			index_log_fail(b, r);
			return;
		}
		b->log_written += h + len;
		return;
	}
	memcpy(b->buf + b->len, hdr, h);
	memcpy(b->buf + b->len + h, text, len);
	b->len += h + len;
}

/* A rendered line: into the log. */
static void
index_line_cb(void *arg, const char *text, size_t len, uint64_t since, uint64_t seq)
{
	struct index_builder *b = arg;

	if (len > 0)
		index_log_add(b, INDEX_SCREEN, since, seq, text, len);
}

/* A typed line: into the list of inputs and the log. */
static void
index_typed_cb(void *arg, const char *text, size_t len, const uint64_t *seqs, uint64_t seq)
{
	struct index_builder *b = arg;
	struct index *ix = b->ix;
	struct index_input *in, *p;

	if (b->err < 0)
		return;
	if (ix->ninputs == b->inputs_cap) {
		size_t cap = b->inputs_cap ? b->inputs_cap * 2 : 16;

		if ((p = realloc(ix->inputs, cap * sizeof *p)) == NULL) {
			b->err = -ENOMEM;
			return;
		}
		ix->inputs = p;
		b->inputs_cap = cap;
	}
	in = &ix->inputs[ix->ninputs];
	memset(in, 0, sizeof *in);
	in->text = malloc(len + 1);
	in->seqs = malloc(len * sizeof *in->seqs);
	if (in->text == NULL || in->seqs == NULL) {
		free(in->text);
		free(in->seqs);
		b->err = -ENOMEM;
		return;
	}
	memcpy(in->text, text, len);
	in->text[len] = '\0';
	memcpy(in->seqs, seqs, len * sizeof *seqs);
	in->len = len;
	in->seq = seq;
	in->time_ns = b->time_ns;
	index_log_add(b, INDEX_INPUT, ix->ninputs, seq, text, len);
	ix->ninputs++;
}

/* Take a keyframe of the state at seq. */
static int
index_add_kf(struct index_builder *b, uint64_t seq, uint64_t offset, uint64_t time_ns)
{
	struct index *ix = b->ix;
	struct index_kf *kf;
	char *snap = NULL;
	size_t len = 0;
	int r;

	if ((ix->nkf & (ix->nkf - 1)) == 0) {
		size_t cap = ix->nkf == 0 ? 16 : ix->nkf * 2;

		if (ix->nkf == 0 || ix->nkf >= 16) {
			if ((kf = realloc(ix->kf, cap * sizeof *kf)) == NULL)
				return -ENOMEM;
			ix->kf = kf;
		}
	}
	if ((r = term_snapshot(b->term, &snap, &len)) < 0)
		return r;
	kf = &ix->kf[ix->nkf++];
	kf->seq = seq;
	kf->offset = offset;
	kf->time_ns = time_ns;
	term_size(b->term, &kf->cols, &kf->rows);
	kf->snap = snap;
	kf->snap_len = len;
	return 0;
}

/* Add a marker. */
static int
index_add_marker(struct index *ix, uint64_t seq, uint64_t time_ns, const uint8_t *p, size_t n)
{
	struct index_marker *m;

	if ((ix->nmarkers & (ix->nmarkers - 1)) == 0) {
		size_t cap = ix->nmarkers == 0 ? 16 : ix->nmarkers * 2;

		if (ix->nmarkers == 0 || ix->nmarkers >= 16) {
			if ((m = realloc(ix->markers, cap * sizeof *m)) == NULL)
				return -ENOMEM;
			ix->markers = m;
		}
	}
	m = &ix->markers[ix->nmarkers];
	/* Not strndup: the payload need not be followed by a NUL. */
	if ((m->label = malloc(n + 1)) == NULL)
		return -ENOMEM;
	memcpy(m->label, p, n);
	m->label[n] = '\0';
	m->seq = seq;
	m->time_ns = time_ns;
	ix->nmarkers++;
	return 0;
}

/* Make an unlinked temporary file for the log. */
static int
index_tmpfd(void)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd;

	snprintf(path, sizeof path, "%s/podgate-player-XXXXXX",
	    dir != NULL && dir[0] != '\0' ? dir : "/tmp");
	if ((fd = mkostemp(path, O_CLOEXEC)) < 0)
		return -errno;
	unlink(path);
	return fd;
}

/* Build the index. */
int
index_build(struct index **out, struct player_file *f,
    void (*progress)(void *arg, uint64_t done), void *arg)
{
	struct index_builder b;
	struct index *ix = NULL;
	struct rec_event ev;
	uint64_t since_bytes = 0, since_events = 0, threshold = INDEX_KF_BYTES, seq = 0;
	uint64_t last_progress = 0;
	int r;

	*out = NULL;
	memset(&b, 0, sizeof b);
	if ((ix = calloc(1, sizeof *ix)) == NULL)
		return -ENOMEM;
	ix->log_fd = -1;
	ix->file = f;
	ix->cols = f->header.cols > 0 ? f->header.cols : 80;
	ix->rows = f->header.rows > 0 ? f->header.rows : 24;
	ix->first_offset = rec_reader_offset(f->reader);
	b.ix = ix;
	typed_init(&b.typed);
	if ((b.buf = malloc(INDEX_LOG_BUF)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = index_tmpfd()) < 0) {
		ix->log_fd = -1;
		index_log_fail(&b, r);
	} else
		ix->log_fd = r;
	if ((r = term_new(&b.term, ix->cols, ix->rows)) < 0)
		goto out;
	term_set_onlcr(b.term, !f->header.pty);
	term_set_line_fn(b.term, index_line_cb, &b);
	if ((r = index_add_kf(&b, 0, ix->first_offset, 0)) < 0)
		goto out;
	while ((r = rec_reader_next(f->reader, &ev)) == 1) {
		b.time_ns = ev.time_ns;
		term_set_seq(b.term, seq);
		switch (ev.code) {
		case REC_OUTPUT:
		case REC_STDERR:
			index_feed(b.term, ev.data, 0, ev.len, &b.spans);
			b.spans.n = 0;
			since_bytes += ev.len;
			ix->output_bytes += ev.len;
			break;
		case REC_INPUT:
			b.spans.n = 0;
			typed_feed(&b.typed, ev.data, ev.len, seq, index_typed_cb, &b);
			break;
		case REC_REDACTED: {
			const uint8_t *raw;
			size_t rlen;

			raw = rec_reader_event_raw(f->reader, &rlen);
			index_spans_parse(&b.spans, raw, rlen);
			break;
		}
		case REC_RESIZE:
			term_resize(b.term, ev.cols, ev.rows);
			break;
		case REC_MARKER:
			if ((r = index_add_marker(ix, seq, ev.time_ns, ev.data, ev.len)) < 0)
				goto out;
			break;
		case REC_EXIT:
			ix->exited = true;
			ix->exit_status = ev.exit_status;
			memcpy(ix->exit_signal, ev.exit_signal, sizeof ix->exit_signal);
			break;
		default:
			break;
		}
		seq++;
		since_events++;
		ix->duration_ns = ev.time_ns;
		if (b.err < 0) {
			r = b.err;
			goto out;
		}
		/* Not between an R event and the event it describes. */
		if (ev.code != REC_REDACTED &&
		    (since_bytes >= threshold || since_events >= INDEX_KF_EVENTS)) {
			if ((r = index_add_kf(&b, seq, rec_reader_offset(f->reader), ev.time_ns)) < 0)
				goto out;
			since_bytes = since_events = 0;
			threshold = ix->kf[ix->nkf - 1].snap_len * 16;
			if (threshold < INDEX_KF_BYTES)
				threshold = INDEX_KF_BYTES;
		}
		if (progress != NULL && ev.offset - last_progress >= (16u << 20)) {
			last_progress = ev.offset;
			progress(arg, ev.offset);
		}
	}
	ix->rc = r;
	ix->nevents = seq;
	if (r == -ENODATA)
		ix->state = "truncated";
	else if (r < 0)
		ix->state = "corrupt";
	else
		ix->state = ix->exited ? "complete" : "incomplete";
	if (r < 0)
		snprintf(ix->error, sizeof ix->error, "%s", rec_reader_error(f->reader));
	if (r < 0 && r != -ENODATA && r != -EBADMSG && r != -EPROTO)
		goto out;
	term_set_seq(b.term, seq > 0 ? seq - 1 : 0);
	term_finish(b.term);
	typed_finish(&b.typed, seq > 0 ? seq - 1 : 0, index_typed_cb, &b);
	index_log_flush(&b);
	if ((r = b.err) < 0)
		goto out;
	ix->log_len = (size_t)b.log_written;
	if (ix->log_len > 0 && ix->log_fd >= 0) {
		ix->log = mmap(NULL, ix->log_len, PROT_READ, MAP_PRIVATE, ix->log_fd, 0);
		if (ix->log == MAP_FAILED) {
			ix->log = NULL;
			ix->log_len = 0;
			index_log_fail(&b, -errno);
		}
	}
	*out = ix;
	ix = NULL;
	r = 0;
out:
	term_free(b.term);
	free(b.buf);
	index_free(ix);
	return r;
}

/* Free an index. */
void
index_free(struct index *ix)
{
	size_t i;

	if (ix == NULL)
		return;
	for (i = 0; i < ix->nkf; i++)
		free(ix->kf[i].snap);
	free(ix->kf);
	for (i = 0; i < ix->nmarkers; i++)
		free(ix->markers[i].label);
	free(ix->markers);
	for (i = 0; i < ix->ninputs; i++) {
		free(ix->inputs[i].text);
		free(ix->inputs[i].seqs);
	}
	free(ix->inputs);
	if (ix->log != NULL)
		munmap(ix->log, ix->log_len);
	if (ix->log_fd >= 0)
		close(ix->log_fd);
	free(ix);
}

/* The last keyframe at or before seq. */
const struct index_kf *
index_kf_for_seq(const struct index *ix, uint64_t seq)
{
	size_t lo = 0, hi = ix->nkf;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (ix->kf[mid].seq <= seq)
			lo = mid;
		else
			hi = mid;
	}
	return &ix->kf[lo];
}

/* The last keyframe whose state comes before time t. */
const struct index_kf *
index_kf_for_time(const struct index *ix, uint64_t t)
{
	size_t lo = 0, hi = ix->nkf;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (ix->kf[mid].time_ns <= t)
			lo = mid;
		else
			hi = mid;
	}
	return &ix->kf[lo];
}

/* Search the log. */
int
index_search(const struct index *ix, const struct search *s, size_t max,
    struct index_match **out, size_t *n, bool *more)
{
	struct index_match *m = NULL, *p;
	size_t off = 0, cap = 0, count = 0, used, so, eo;
	uint64_t kind, from, to, when, len;
	struct buf text = { 0 };
	const char *line;

	*out = NULL;
	*n = 0;
	*more = false;
	while (off < ix->log_len) {
		kind = ix->log[off++];
		if ((used = index_get_varint(ix->log + off, ix->log_len - off, &from)) == 0)
			break;
		off += used;
		if ((used = index_get_varint(ix->log + off, ix->log_len - off, &to)) == 0)
			break;
		off += used;
		if ((used = index_get_varint(ix->log + off, ix->log_len - off, &when)) == 0)
			break;
		off += used;
		if ((used = index_get_varint(ix->log + off, ix->log_len - off, &len)) == 0 ||
		    len > ix->log_len - off - used)
			break;
		off += used;
		/* regexec wants a NUL-terminated string. */
		buf_reset(&text);
		buf_add(&text, ix->log + off, (size_t)len);
		if (text.oom) {
			buf_free(&text);
			free(m);
			return -ENOMEM;
		}
		line = (const char *)ix->log + off;
		off += len;
		if (!search_find(s, text.data, (size_t)len, 0, &so, &eo))
			continue;
		if (count == max) {
			*more = true;
			break;
		}
		if (count == cap) {
			cap = cap ? cap * 2 : 64;
			if ((p = realloc(m, cap * sizeof *p)) == NULL) {
				buf_free(&text);
				free(m);
				return -ENOMEM;
			}
			m = p;
		}
		m[count].kind = kind == INDEX_INPUT ? INDEX_INPUT : INDEX_SCREEN;
		m[count].seq_to = to;
		m[count].time_ns = when;
		m[count].text = line;
		m[count].len = (size_t)len;
		if (m[count].kind == INDEX_INPUT) {
			m[count].input = (size_t)from;
			m[count].seq_from = from < ix->ninputs && ix->inputs[from].len > 0 ?
			    ix->inputs[from].seqs[0] : to;
		} else {
			m[count].input = 0;
			m[count].seq_from = from;
		}
		count++;
	}
	buf_free(&text);
	*out = m;
	*n = count;
	return 0;
}

/* Make a cursor at the start of the recording. */
int
index_cursor_new(struct index_cursor **out, struct index *ix)
{
	struct index_cursor *c;
	int r;

	*out = NULL;
	if ((c = calloc(1, sizeof *c)) == NULL)
		return -ENOMEM;
	c->ix = ix;
	typed_init(&c->typed);
	if ((r = term_new(&c->term, ix->cols, ix->rows)) < 0) {
		index_cursor_free(c);
		return r;
	}
	term_set_onlcr(c->term, !ix->file->header.pty);
	if ((r = index_cursor_seek_seq(c, 0)) < 0) {
		index_cursor_free(c);
		return r;
	}
	*out = c;
	return 0;
}

/* Free a cursor. */
void
index_cursor_free(struct index_cursor *c)
{
	if (c == NULL)
		return;
	rec_reader_free(c->reader);
	term_free(c->term);
	free(c);
}

/* Read the next event into c->next. */
static int
index_cursor_fetch(struct index_cursor *c)
{
	int r;

	if (c->has_next || c->at_end)
		return c->has_next ? 1 : 0;
	if (c->seq >= c->ix->nevents) {
		c->at_end = true;
		return 0;
	}
	r = rec_reader_next(c->reader, &c->next);
	if (r <= 0) {
		c->at_end = true;
		return r == -ENODATA || r == -EBADMSG || r == -EPROTO ? 0 : r;
	}
	c->has_next = true;
	return 1;
}

/* Peek at the next event. */
int
index_cursor_peek(struct index_cursor *c, const struct rec_event **ev)
{
	int r;

	*ev = NULL;
	if ((r = index_cursor_fetch(c)) == 1)
		*ev = &c->next;
	return r;
}

/* Apply the next event. */
int
index_cursor_step(struct index_cursor *c)
{
	const struct rec_event *ev;
	int r;

	if ((r = index_cursor_fetch(c)) != 1)
		return r;
	ev = &c->next;
	term_set_seq(c->term, c->seq);
	switch (ev->code) {
	case REC_OUTPUT:
	case REC_STDERR:
		if (c->partial < ev->len)
			index_feed(c->term, ev->data, c->partial, ev->len, &c->spans);
		c->spans.n = 0;
		break;
	case REC_REDACTED: {
		const uint8_t *raw;
		size_t rlen;

		raw = rec_reader_event_raw(c->reader, &rlen);
		index_spans_parse(&c->spans, raw, rlen);
		break;
	}
	case REC_RESIZE:
		term_resize(c->term, ev->cols, ev->rows);
		break;
	case REC_INPUT:
		c->spans.n = 0;
		typed_feed(&c->typed, ev->data, ev->len, c->seq, NULL, NULL);
		break;
	default:
		break;
	}
	c->time_ns = ev->time_ns;
	c->seq++;
	c->has_next = false;
	c->partial = 0;
	return 1;
}

/* Restore a keyframe and position the reader after it. */
static int
index_cursor_restore(struct index_cursor *c, const struct index_kf *kf)
{
	struct rec_reader *r = NULL;
	int rc;

	if ((rc = rec_reader_open_at(&r, c->ix->file->fd, kf->offset, kf->time_ns)) < 0)
		return rc;
	if ((rc = term_restore(c->term, kf->cols, kf->rows, kf->snap, kf->snap_len)) < 0) {
		rec_reader_free(r);
		return rc;
	}
	rec_reader_free(c->reader);
	c->reader = r;
	c->seq = kf->seq;
	c->time_ns = kf->time_ns;
	c->has_next = false;
	c->partial = 0;
	c->spans.n = 0;
	c->at_end = false;
	typed_init(&c->typed);
	return 0;
}

/* Go to the state at seq. */
int
index_cursor_seek_seq(struct index_cursor *c, uint64_t seq)
{
	const struct index_kf *kf;
	int r;

	if (seq > c->ix->nevents)
		seq = c->ix->nevents;
	kf = index_kf_for_seq(c->ix, seq);
	/* Replaying forward from here is cheaper than from the keyframe. */
	if (c->reader == NULL || seq < c->seq || kf->seq > c->seq ||
	    (c->partial > 0 && seq == c->seq)) {
		if ((r = index_cursor_restore(c, kf)) < 0)
			return r;
	}
	while (c->seq < seq)
		if ((r = index_cursor_step(c)) <= 0)
			return r;
	return 0;
}

/* Go to the state after every event at or before t. */
int
index_cursor_seek_time(struct index_cursor *c, uint64_t t)
{
	const struct index_kf *kf = index_kf_for_time(c->ix, t);
	const struct rec_event *ev;
	int r;

	if (c->reader == NULL || c->time_ns > t || kf->seq > c->seq) {
		if ((r = index_cursor_restore(c, kf)) < 0)
			return r;
	}
	while ((r = index_cursor_peek(c, &ev)) == 1 && ev->time_ns <= t)
		if ((r = index_cursor_step(c)) <= 0)
			return r;
	return r < 0 ? r : 0;
}

/*
 * Whether a row of the screen shows the beginning of line (at least up to
 * a match of s): the line as it is being drawn, once the match is on it.
 */
static bool
index_screen_shows(struct term *t, const struct search *s, const char *line, size_t len)
{
	int cols, rows, row;
	size_t cap, n, so, eo;
	char *buf;
	bool found = false;

	term_size(t, &cols, &rows);
	cap = (size_t)cols * VTERM_MAX_CHARS_PER_CELL * 4 + 1;
	if ((buf = malloc(cap)) == NULL)
		return false;
	for (row = 0; row < rows && !found; row++) {
		n = term_row_text(t, row, buf, cap, NULL);
		found = n <= len && memcmp(buf, line, n) == 0 && search_find(s, buf, n, 0, &so, &eo);
	}
	free(buf);
	return found;
}

/* Go to where a match first became visible. */
int
index_cursor_reveal(struct index_cursor *c, const struct search *s,
    const struct index_match *m)
{
	const struct index_input *in;
	const struct rec_event *ev;
	const uint8_t *nl;
	size_t so, eo, upto, shown;
	uint64_t seq;
	int r;

	if (m->kind == INDEX_INPUT) {
		seq = m->seq_to;
		if (m->input < c->ix->ninputs) {
			in = &c->ix->inputs[m->input];
			if (search_find(s, in->text, in->len, 0, &so, &eo) && eo > 0)
				seq = in->seqs[eo - 1];
		}
		return index_cursor_seek_seq(c, seq + 1);
	}
	if ((r = index_cursor_seek_seq(c, m->seq_from)) < 0)
		return r;
	while (c->seq <= m->seq_to) {
		if ((r = index_cursor_fetch(c)) <= 0)
			return r;
		ev = &c->next;
		if ((ev->code != REC_OUTPUT && ev->code != REC_STDERR) || ev->len == 0) {
			if ((r = index_cursor_step(c)) < 0)
				return r;
			if (r == 0 || index_screen_shows(c->term, s, m->text, m->len))
				return 0;
			continue;
		}
		/*
		 * Output: a line at a time, up to (not including) each LF, so
		 * that a burst that scrolls on stops where the match shows.
		 */
		term_set_seq(c->term, c->seq);
		while (c->partial < ev->len) {
			nl = memchr(ev->data + c->partial, '\n', ev->len - c->partial);
			upto = nl != NULL ? (size_t)(nl - ev->data) : ev->len;
			if (upto == c->partial)
				upto++;	/* the LF itself */
			index_feed(c->term, ev->data, c->partial, upto, &c->spans);
			c->partial = upto;
			if (index_screen_shows(c->term, s, m->text, m->len))
				break;
		}
		if (c->partial < ev->len) {
			/*
			 * Shown: when the rest of the event keeps it on screen, apply
			 * it all; when it scrolls it away, stop at the matched line.
			 */
			shown = c->partial;
			seq = c->seq;
			index_feed(c->term, ev->data, c->partial, ev->len, &c->spans);
			c->partial = ev->len;
			if (!index_screen_shows(c->term, s, m->text, m->len)) {
				if ((r = index_cursor_seek_seq(c, seq)) < 0 ||
				    (r = index_cursor_fetch(c)) <= 0)
					return r;
				ev = &c->next;
				index_feed(c->term, ev->data, 0, shown, &c->spans);
				c->partial = shown;
				c->time_ns = ev->time_ns;	/* inside this event */
				return 0;
			}
		}
		c->time_ns = ev->time_ns;
		c->seq++;
		c->has_next = false;
		c->partial = 0;
		c->spans.n = 0;
		if (index_screen_shows(c->term, s, m->text, m->len))
			return 0;
	}
	return 0;
}
