/*
 * Cursors over an indexed recording: replay from the nearest keyframe to
 * any event or time, and stop inside an event where a search hit shows.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "index.h"

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

/* After index_extend: a cursor that reached the old end reads on. */
int
index_cursor_resume(struct index_cursor *c)
{
	struct rec_reader *r = NULL;
	int rc;

	if (!c->at_end || c->has_next || c->reader == NULL || c->seq >= c->ix->nevents)
		return 0;
	if ((rc = rec_reader_open_at(&r, c->ix->file->fd, rec_reader_offset(c->reader),
	    c->time_ns)) < 0)
		return rc;
	rec_reader_free(c->reader);
	c->reader = r;
	c->at_end = false;
	return 0;
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
 * Whether the screen shows the beginning of line (at least up to a match
 * of s): the line as it is being drawn, once the match is on it; a line
 * the terminal wrapped, across its rows (term_line_text).
 */
static bool
index_screen_shows(struct term *t, const struct search *s, const char *line, size_t len)
{
	int cols, rows, row;
	size_t cap, n, so, eo;
	char *buf;
	bool found = false;

	term_size(t, &cols, &rows);
	/* Room for one row more than the line: a longer text is not it. */
	cap = len + (size_t)cols * VTERM_MAX_CHARS_PER_CELL * 4 + 1;
	if ((buf = malloc(cap)) == NULL)
		return false;
	for (row = 0; row < rows && !found; row++) {
		n = term_line_text(t, row, buf, cap);
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

/* The most of a recording replayed to find what scrolled off (bytes). */
#define INDEX_SCROLLBACK_REPLAY (64ull << 20)

/*
 * Bring h to c's position from where h is (before it): the events up to
 * c's next one, and as much of that as c has applied.
 */
static int
index_cursor_catch_up(struct index_cursor *h, const struct index_cursor *c)
{
	int r;

	while (h->seq < c->seq)
		if ((r = index_cursor_step(h)) <= 0)
			return r < 0 ? r : -EIO;
	if (c->partial == 0)
		return 0;
	if ((r = index_cursor_fetch(h)) <= 0)
		return r < 0 ? r : -EIO;
	index_feed(h->term, h->next.data, 0, c->partial, &h->spans);
	h->partial = c->partial;
	return 0;
}

/* The rows that scrolled off the top up to c's position. */
int
index_cursor_scrollback(const struct index_cursor *c, size_t max_lines, size_t max_bytes,
    struct term **out)
{
	struct index_cursor *h = NULL;
	size_t k, next, back = 1;
	uint64_t dropped = 0, end;
	int r;

	*out = NULL;
	if ((r = index_cursor_new(&h, c->ix)) < 0)
		return r;
	/*
	 * A keyframe holds a screen, not what scrolled off before it: replay
	 * from keyframes ever further back (1, 2, 4 ... before c's) until the
	 * rows kept reach the bounds, the replay starts at the beginning, or
	 * it would replay more than INDEX_SCROLLBACK_REPLAY bytes (a long
	 * recording that seldom scrolls).
	 */
	k = (size_t)(index_kf_for_seq(c->ix, c->seq) - c->ix->kf);
	end = c->reader != NULL ? rec_reader_offset(c->reader) : c->ix->kf[k].offset;
	for (;;) {
		if ((r = term_set_scrollback(h->term, max_lines, max_bytes)) < 0 ||
		    (r = index_cursor_restore(h, &c->ix->kf[k])) < 0 ||
		    (r = index_cursor_catch_up(h, c)) < 0)
			goto out;
		if (k == 0 || term_scrollback(h->term, &dropped) >= max_lines || dropped > 0)
			break;
		next = k > back ? k - back : 0;
		if (end - c->ix->kf[next].offset > INDEX_SCROLLBACK_REPLAY)
			break;
		k = next;
		back *= 2;
	}
	/* Not from the start, or rows pushed out: there may be older ones. */
	r = dropped > 0 || k > 0;
	*out = h->term;
	h->term = NULL;	/* transferred */
out:
	index_cursor_free(h);
	return r;
}
