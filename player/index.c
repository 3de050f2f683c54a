/*
 * The index of one recording: keyframes, markers, typed lines and a log of
 * rendered lines, built in one pass (cursors over it: cursor.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>

#include "base.h"
#include "index.h"

/* A keyframe after this much output since the last (or 16 snapshots' worth). */
#define INDEX_KF_BYTES (256u * 1024)
/* ... or after this many events. */
#define INDEX_KF_EVENTS 20000u
/* Following a file: at most this much is indexed per index_extend. */
#define INDEX_EXTEND_BYTES (4u << 20)
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
	struct rec_reader *reader;	/* the events come from here */
	int fd;			/* following: a descriptor of its own, else -1 */
	uint64_t seq;		/* the next event */
	uint64_t offset;	/* end of the last whole event read */
	uint64_t limit;		/* stop reading at this offset (0: read to the end) */
	uint64_t since_bytes, since_events, threshold, last_progress;
	/* OSC 133 shell marks, across events: how much of one was read. */
	unsigned osc;
	char osc_kind;
	char osc_arg[16];
	size_t osc_len;
	int osc_status;		/* from the last "D;STATUS", -1 when none */
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

/* Add a shell prompt (OSC 133;A) at the event being read. */
static int
index_add_prompt(struct index_builder *b)
{
	struct index *ix = b->ix;
	struct index_prompt *pr;

	/* A prompt drawn again in the same event (a redraw) is one. */
	if (ix->nprompts > 0 && ix->prompts[ix->nprompts - 1].seq == b->seq)
		return 0;
	if ((ix->nprompts & (ix->nprompts - 1)) == 0) {
		size_t cap = ix->nprompts == 0 ? 16 : ix->nprompts * 2;

		if (ix->nprompts == 0 || ix->nprompts >= 16) {
			if ((pr = realloc(ix->prompts, cap * sizeof *pr)) == NULL)
				return -ENOMEM;
			ix->prompts = pr;
		}
	}
	pr = &ix->prompts[ix->nprompts++];
	pr->seq = b->seq;
	pr->time_ns = b->time_ns;
	pr->status = b->osc_status;
	b->osc_status = -1;
	return 0;
}

/*
 * Find the semantic prompt marks shells emit (OSC 133, as iTerm2, kitty,
 * WezTerm and VS Code read them): ESC ] 133 ; KIND [; ARGS] ended by BEL
 * or ESC \. "A" starts a prompt; "D;STATUS" ends a command with its exit
 * status, kept for the prompt that follows. A mark may be split across
 * events.
 */
static int
index_osc133(struct index_builder *b, const uint8_t *p, size_t n)
{
	static const char prefix[] = "\033]133;";
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (b->osc < sizeof prefix - 1) {
			if (c == (uint8_t)prefix[b->osc])
				b->osc++;
			else
				b->osc = c == 0x1b;
			continue;
		}
		if (b->osc == sizeof prefix - 1) {
			b->osc_kind = (char)c;
			b->osc_len = 0;
			b->osc++;
			continue;
		}
		if (b->osc == sizeof prefix && c == 0x1b) {
			b->osc++;	/* ESC \ ends it */
			continue;
		}
		if (b->osc == sizeof prefix && c != 0x07) {
			/* Only the start of the arguments matters (D's status). */
			if (b->osc_len < sizeof b->osc_arg - 1)
				b->osc_arg[b->osc_len++] = (char)c;
			continue;
		}
		/* BEL, or the byte after ESC: ST, or the start of another sequence. */
		if (c != 0x07 && c != '\\') {
			b->osc = c == ']' ? 2 : 0;
			continue;
		}
		b->osc = 0;
		b->osc_arg[b->osc_len] = '\0';
		if (b->osc_kind == 'A') {
			if ((r = index_add_prompt(b)) < 0)
				return r;
		} else if (b->osc_kind == 'D') {
			/* "D;STATUS" (or "D" alone: unknown). */
			b->osc_status = b->osc_arg[0] == ';' && b->osc_arg[1] >= '0' &&
			    b->osc_arg[1] <= '9' ? atoi(b->osc_arg + 1) : -1;
		}
	}
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

/*
 * Index the events the builder's reader gives until it stops; returns its
 * last result (0 at a clean end, or the reader's error), or 1 when it
 * stopped at b->limit with more to read.
 */
static int
index_read(struct index_builder *b, void (*progress)(void *arg, uint64_t done), void *arg)
{
	struct index *ix = b->ix;
	struct rec_event ev;
	int r;

	while ((r = rec_reader_next(b->reader, &ev)) == 1) {
		if (b->limit > 0 && ev.offset >= b->limit) {
			/* Read one event too many: the next read starts there again. */
			return 1;
		}
		b->time_ns = ev.time_ns;
		term_set_seq(b->term, b->seq);
		switch (ev.code) {
		case REC_OUTPUT:
		case REC_STDERR:
			index_feed(b->term, ev.data, 0, ev.len, &b->spans);
			b->spans.n = 0;
			b->since_bytes += ev.len;
			ix->output_bytes += ev.len;
			if (ev.code == REC_OUTPUT && (r = index_osc133(b, ev.data, ev.len)) < 0)
				return r;
			break;
		case REC_INPUT:
			b->spans.n = 0;
			typed_feed(&b->typed, ev.data, ev.len, b->seq, index_typed_cb, b);
			break;
		case REC_REDACTED: {
			const uint8_t *raw;
			size_t rlen;

			raw = rec_reader_event_raw(b->reader, &rlen);
			index_spans_parse(&b->spans, raw, rlen);
			break;
		}
		case REC_RESIZE:
			term_resize(b->term, ev.cols, ev.rows);
			break;
		case REC_MARKER:
			if ((r = index_add_marker(ix, b->seq, ev.time_ns, ev.data, ev.len)) < 0)
				return r;
			break;
		case REC_EXIT:
			ix->exited = true;
			ix->exit_status = ev.exit_status;
			memcpy(ix->exit_signal, ev.exit_signal, sizeof ix->exit_signal);
			break;
		case REC_SEAL:
			ix->sealed = true;
			break;
		default:
			break;
		}
		b->seq++;
		b->since_events++;
		ix->nevents = b->seq;
		ix->duration_ns = ev.time_ns;
		b->offset = rec_reader_offset(b->reader);
		if (b->err < 0)
			return b->err;
		/* Not between an R event and the event it describes. */
		if (ev.code != REC_REDACTED &&
		    (b->since_bytes >= b->threshold || b->since_events >= INDEX_KF_EVENTS)) {
			if ((r = index_add_kf(b, b->seq, b->offset, ev.time_ns)) < 0)
				return r;
			b->since_bytes = b->since_events = 0;
			b->threshold = ix->kf[ix->nkf - 1].snap_len * 16;
			if (b->threshold < INDEX_KF_BYTES)
				b->threshold = INDEX_KF_BYTES;
		}
		if (progress != NULL && ev.offset - b->last_progress >= (16u << 20)) {
			b->last_progress = ev.offset;
			progress(arg, ev.offset);
		}
	}
	return r;
}

/* Say how reading ended: the state, and the reader's error when damaged. */
static void
index_set_state(struct index_builder *b, int r)
{
	struct index *ix = b->ix;

	ix->rc = r;
	ix->error[0] = '\0';
	if (r == -ENODATA)
		ix->state = "truncated";
	else if (r < 0)
		ix->state = "corrupt";
	else
		ix->state = ix->exited ? "complete" : "incomplete";
	if (r < 0 && b->reader != NULL)
		snprintf(ix->error, sizeof ix->error, "%s", rec_reader_error(b->reader));
}

/* Map the log written so far (again, when it grew). */
static void
index_map_log(struct index_builder *b)
{
	struct index *ix = b->ix;

	index_log_flush(b);
	if (ix->log != NULL)
		munmap(ix->log, ix->log_len);
	ix->log = NULL;
	ix->log_len = (size_t)b->log_written;
	if (ix->log_len > 0 && ix->log_fd >= 0) {
		ix->log = mmap(NULL, ix->log_len, PROT_READ, MAP_PRIVATE, ix->log_fd, 0);
		if (ix->log == MAP_FAILED) {
			ix->log = NULL;
			ix->log_len = 0;
			index_log_fail(b, -errno);
		}
	}
}

/* The rows still on screen and the line being typed go to the log too. */
static int
index_finish(struct index_builder *b)
{
	uint64_t seq = b->seq;

	term_set_seq(b->term, seq > 0 ? seq - 1 : 0);
	term_finish(b->term);
	typed_finish(&b->typed, seq > 0 ? seq - 1 : 0, index_typed_cb, b);
	index_log_flush(b);
	if (b->err < 0)
		return b->err;
	index_map_log(b);
	return 0;
}

/* Free a builder kept for a recording still being written. */
static void
index_builder_free(struct index_builder *b)
{
	if (b == NULL)
		return;
	if (b->reader != b->ix->file->reader)
		rec_reader_free(b->reader);
	if (b->fd >= 0)
		close(b->fd);
	term_free(b->term);
	free(b->buf);
	free(b);
}

/* Build the index; with live, keep what it takes to extend it. */
static int
index_build_as(struct index **out, struct player_file *f, bool live,
    void (*progress)(void *arg, uint64_t done), void *arg)
{
	struct index_builder *b;
	struct index *ix = NULL;
	struct stat st;
	int r;

	*out = NULL;
	if ((b = calloc(1, sizeof *b)) == NULL)
		return -ENOMEM;
	b->fd = -1;
	if ((ix = calloc(1, sizeof *ix)) == NULL) {
		free(b);
		return -ENOMEM;
	}
	ix->log_fd = -1;
	ix->file = f;
	ix->cols = f->header.cols > 0 ? f->header.cols : 80;
	ix->rows = f->header.rows > 0 ? f->header.rows : 24;
	ix->first_offset = rec_reader_offset(f->reader);
	b->ix = ix;
	b->reader = f->reader;
	b->offset = ix->first_offset;
	b->threshold = INDEX_KF_BYTES;
	b->osc_status = -1;
	typed_init(&b->typed);
	/*
	 * Following a file: the builder reads on through a descriptor of its
	 * own, so that a cursor's reads on f->fd keep their offset.
	 */
	if (live) {
		char path[64];

		/* The same file as f->fd (a local copy of a remote one too), anew. */
		snprintf(path, sizeof path, "/proc/self/fd/%d", f->fd);
		if ((b->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
			r = -errno;
			goto out;
		}
		/*
		 * What is there now, not what is added meanwhile (a download
		 * can outrun indexing): the rest is for index_extend.
		 */
		if (fstat(b->fd, &st) == 0 && st.st_size > 0)
			b->limit = (uint64_t)st.st_size;
	}
	if ((b->buf = malloc(INDEX_LOG_BUF)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = index_tmpfd()) < 0) {
		ix->log_fd = -1;
		index_log_fail(b, r);
	} else
		ix->log_fd = r;
	if ((r = term_new(&b->term, ix->cols, ix->rows)) < 0)
		goto out;
	term_set_onlcr(b->term, !f->header.pty);
	term_set_line_fn(b->term, index_line_cb, b);
	term_set_line_join(b->term, true);	/* a line the terminal wrapped is one line */
	if ((r = index_add_kf(b, 0, ix->first_offset, 0)) < 0)
		goto out;
	r = index_read(b, progress, arg);
	if (r == -ENOMEM)
		goto out;
	if (live && (r == 0 || r == -ENODATA || r == 1)) {
		/* The end of what is written so far, not damage. */
		ix->live_more = r == 1;
		ix->rc = 0;
		ix->state = "live";
		index_map_log(b);
		ix->live = b;
		*out = ix;
		return 0;
	}
	index_set_state(b, r);
	if (r < 0 && r != -ENODATA && r != -EBADMSG && r != -EPROTO)
		goto out;
	if ((r = index_finish(b)) < 0)
		goto out;
	*out = ix;
	ix = NULL;
	r = 0;
out:
	index_builder_free(b);
	index_free(ix);
	return r;
}

/* Build the index. */
int
index_build(struct index **out, struct player_file *f,
    void (*progress)(void *arg, uint64_t done), void *arg)
{
	return index_build_as(out, f, false, progress, arg);
}

/* Build the index of a recording still being written. */
int
index_build_live(struct index **out, struct player_file *f,
    void (*progress)(void *arg, uint64_t done), void *arg)
{
	return index_build_as(out, f, true, progress, arg);
}

/* Index what was written since. */
int
index_extend(struct index *ix)
{
	struct index_builder *b = ix->live;
	uint64_t before = ix->nevents;
	int r;

	if (b == NULL)
		return 0;
	/* A reader stops for good at the end of the file: a new one reads on. */
	if (b->reader != ix->file->reader)
		rec_reader_free(b->reader);
	b->reader = NULL;
	if ((r = rec_reader_open_at(&b->reader, b->fd, b->offset, b->time_ns)) < 0)
		return r;
	/* A bounded step, so that playing goes on while much is to be read. */
	b->limit = b->offset + INDEX_EXTEND_BYTES;
	r = index_read(b, NULL, NULL);
	ix->live_more = r == 1;
	if (r == 1)
		r = 0;
	if (r != 0 && r != -ENODATA) {
		/* Damage, not the end of what is written: the index ends here. */
		if (r == -ENOMEM)
			return r;
		index_set_state(b, r);
		if ((r = index_finish(b)) < 0)
			return r;
		index_builder_free(b);
		ix->live = NULL;
		return 1;
	}
	if (ix->nevents == before)
		return 0;
	index_map_log(b);
	return b->err < 0 ? b->err : 1;
}

/* Stop following: the index as index_build makes it. */
int
index_end(struct index *ix)
{
	struct index_builder *b = ix->live;
	int r;

	if (b == NULL)
		return 0;
	/* Whatever is left after the last whole event is a cut, as a reader says. */
	index_set_state(b, b->offset < (uint64_t)lseek(b->fd, 0, SEEK_END) ? -ENODATA : 0);
	if (ix->rc == -ENODATA)
		snprintf(ix->error, sizeof ix->error, "truncated at byte %llu",
		    (unsigned long long)b->offset);
	r = index_finish(b);
	index_builder_free(b);
	ix->live = NULL;
	return r;
}

/* Free an index. */
void
index_free(struct index *ix)
{
	size_t i;

	if (ix == NULL)
		return;
	index_builder_free(ix->live);
	for (i = 0; i < ix->nkf; i++)
		free(ix->kf[i].snap);
	free(ix->kf);
	for (i = 0; i < ix->nmarkers; i++)
		free(ix->markers[i].label);
	free(ix->markers);
	free(ix->prompts);
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
