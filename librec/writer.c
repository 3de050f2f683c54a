/*
 * Recording writer: packs events into an explicit buffer and appends it to
 * a file descriptor with write(2) when the buffer fills or on flush.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rec.h"
#include "rec-int.h"

/* Most bytes merged into one o/e/i event. */
#define COALESCE_MAX (64u * 1024)

struct rec_writer {
	int fd;
	int err;		/* sticky: the first write error */
	char sid[37];
	uint64_t prev;		/* monotonic time of the last event (pending included) */
	uint64_t written;
	uint64_t coalesce_ns;

	uint8_t *buf;		/* packed events not yet written */
	size_t len, cap, flush_at;
	msgpack_packer pk;

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
	return 0;
}

/* Write the whole buffer to fd. */
static int
buf_drain(struct rec_writer *w)
{
	size_t off = 0;
	ssize_t n;

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
	return w->err;
}

/* Pack [interval, code, ...] framing; the payload follows. */
static void
pack_frame(struct rec_writer *w, uint64_t interval, char code)
{
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
	w->cap = opts != NULL && opts->buffer_size > 0 ? opts->buffer_size : 64u * 1024;
	w->flush_at = w->cap;
	w->coalesce_ns = opts != NULL ? opts->coalesce_ns : 0;
	if ((w->buf = malloc(w->cap)) == NULL ||
	    (w->coalesce_ns > 0 && (w->pend = malloc(COALESCE_MAX)) == NULL)) {
		r = -ENOMEM;
		goto fail;
	}
	if (h->session_id != NULL) {
		if (strlen(h->session_id) >= sizeof w->sid) {
			r = -EINVAL;
			goto fail;
		}
		strcpy(w->sid, h->session_id);
	} else if ((r = rec_uuid7(w->sid)) < 0)
		goto fail;
	msgpack_packer_init(&w->pk, w, buf_write_cb);
	rec_header_pack(&w->pk, h, w->sid, h->start_ns ? h->start_ns : rec_now_utc_ns());
	if (w->err < 0) {
		r = w->err;
		goto fail;
	}
	w->prev = opts != NULL && opts->start_mono_ns != 0 ?
	    opts->start_mono_ns : rec_now_mono_ns();
	*out = w;
	return 0;
fail:
	free(w->pend);
	free(w->buf);
	free(w);
	return r;
}

/* Session id of the recording. */
const char *
rec_writer_session_id(const struct rec_writer *w)
{
	return w->sid;
}

/* Pack a map {"status": n} or {"signal": name} for an exit event. */
static void
pack_exit(struct rec_writer *w, const struct rec_event *ev)
{
	size_t n;

	msgpack_pack_map(&w->pk, 1);
	if (ev->exit_signal[0] != '\0') {
		msgpack_pack_str(&w->pk, 6);
		msgpack_pack_str_body(&w->pk, "signal", 6);
		n = strnlen(ev->exit_signal, sizeof ev->exit_signal);
		msgpack_pack_str(&w->pk, n);
		msgpack_pack_str_body(&w->pk, ev->exit_signal, n);
	} else {
		msgpack_pack_str(&w->pk, 6);
		msgpack_pack_str_body(&w->pk, "status", 6);
		msgpack_pack_int(&w->pk, ev->exit_status);
	}
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

	/* Merge into the open event: same code, within the window from its start. */
	if (bin && w->pend_code == ev->code && t - w->prev <= w->coalesce_ns &&
	    w->pend_len + ev->len <= COALESCE_MAX) {
		memcpy(w->pend + w->pend_len, ev->data, ev->len);
		w->pend_len += ev->len;
		return 0;
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
		pack_exit(w, ev);
		break;
	default:
		return -EINVAL;
	}
	if (w->err < 0)
		return w->err;
	if (w->len >= w->flush_at)
		return buf_drain(w);
	return 0;
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

/* Flush and free the writer. */
int
rec_writer_close(struct rec_writer *w)
{
	int r;

	if (w == NULL)
		return 0;
	r = rec_writer_flush(w);
	free(w->pend);
	free(w->buf);
	free(w);
	return r;
}
