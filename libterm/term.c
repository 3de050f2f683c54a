/*
 * The emulator: libvterm with rendered lines and the state snapshots need
 * (see term.h). Its callbacks follow which rows changed, report a row when
 * it is complete, and keep the main screen behind the alternate one; the
 * bytes reach libvterm through scan.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "term-int.h"

static int term_damage_cb(VTermRect rect, void *user);
static int term_moverect_cb(VTermRect dest, VTermRect src, void *user);
static int term_movecursor_cb(VTermPos pos, VTermPos oldpos, int visible, void *user);
static int term_settermprop_cb(VTermProp prop, VTermValue *val, void *user);
static int term_resize_cb(int rows, int cols, void *user);
static int term_pushline_cb(int cols, const VTermScreenCell *cells, void *user);

/*
 * libvterm reads a whole row of cells for sb_pushline on every scroll, so
 * the callback is only set while the top row holds an unreported change.
 */
static const VTermScreenCallbacks term_screen_cbs = {
	.damage = term_damage_cb,
	.moverect = term_moverect_cb,
	.movecursor = term_movecursor_cb,
	.settermprop = term_settermprop_cb,
	.resize = term_resize_cb,
};
static const VTermScreenCallbacks term_screen_cbs_push = {
	.damage = term_damage_cb,
	.moverect = term_moverect_cb,
	.movecursor = term_movecursor_cb,
	.settermprop = term_settermprop_cb,
	.resize = term_resize_cb,
	.sb_pushline = term_pushline_cb,
};

/*
 * Feed bytes to libvterm in pieces of at most TERM_VT_CHUNK, each cut
 * before a UTF-8 lead byte so that no character is split between writes.
 */
void
term_vt_write(VTerm *vt, const char *p, size_t len)
{
	size_t n, k;

	while (len > 0) {
		n = len;
		if (n > TERM_VT_CHUNK) {
			n = TERM_VT_CHUNK;
			for (k = 0; k < 3 && ((unsigned char)p[n - k] & 0xc0) == 0x80; k++)
				;
			if (((unsigned char)p[n - k] & 0xc0) != 0x80)
				n -= k;
		}
		vterm_input_write(vt, p, n);
		p += n;
		len -= n;
	}
}

/* Clamp a dimension to what the emulator accepts, at least min. */
static int
term_clamp(int n, int min)
{
	return n < min ? min : n > TERM_MAX_DIM ? TERM_MAX_DIM : n;
}
/* FNV-1a hash of a row's text. */
static uint64_t
term_hash(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325u;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 0x100000001b3u;
	return h | 1;	/* never 0, which means "nothing reported yet" */
}
/* Make sure the text buffer holds a row. */
char *
term_text_buf(struct term *t, size_t *cap)
{
	size_t want = (size_t)t->cols * VTERM_MAX_CHARS_PER_CELL * 4 + 1;
	char *p;

	if (t->text_cap < want) {
		if ((p = realloc(t->text, want)) == NULL)
			return NULL;
		t->text = p;
		t->text_cap = want;
	}
	*cap = t->text_cap;
	return t->text;
}
/* Set or clear the sb_pushline callback as row 0 needs it. */
void
term_sync_push(struct term *t)
{
	bool want = (t->line_fn != NULL && t->dirty[0]) || t->sb_max > 0;

	if (want == t->push_cb)
		return;
	t->push_cb = want;
	vterm_screen_set_callbacks(t->vs, want ? &term_screen_cbs_push : &term_screen_cbs, t);
}

/* Report a row's text when it differs from what was last reported for it. */
static void
term_report(struct term *t, int row, const char *text, size_t len, bool full)
{
	uint64_t h = term_hash(text, len);

	t->dirty[row] = 0;
	if (h == t->hash[row])
		return;
	t->hash[row] = h;
	term_emit_line(t, text, len, t->since[row], full);
}

/* Whether the last of n cells holds a character (or the end of a wide one). */
bool
term_cells_full(const VTermScreenCell *last, const VTermScreenCell *before)
{
	return (last->chars[0] != 0 && last->chars[0] != ' ') ||
	    (before != NULL && before->width == 2);
}

/* Hand the rows held to the line callback as one line. */
static void
term_join_flush(struct term *t)
{
	size_t len = t->joined.len;

	if (len == 0)
		return;
	t->joined.len = 0;
	t->line_fn(t->line_arg, t->joined.data, len, t->join_since, t->seq);
}

/*
 * Hand a completed row to the line callback. Joining, a row that reaches
 * the last column is held and the rows reported after it are added, up to
 * one that does not (or TERM_MAX_JOIN bytes): the line goes as one.
 */
void
term_emit_line(struct term *t, const char *text, size_t len, uint64_t since, bool full)
{
	struct buf *j = &t->joined;

	if (!t->join || (j->len == 0 && !full)) {
		t->line_fn(t->line_arg, text, len, since, t->seq);
		return;
	}
	if (j->len == 0)
		t->join_since = since;
	j->oom = false;
	buf_add(j, text, len);
	if (j->oom) {
		/* No room: what was held goes alone, then this row. */
		term_join_flush(t);
		t->line_fn(t->line_arg, text, len, since, t->seq);
		return;
	}
	if (full && j->len < TERM_MAX_JOIN)
		return;
	term_join_flush(t);
}

/* Join wrapped rows or not. */
void
term_set_line_join(struct term *t, bool on)
{
	if (!on && t->line_fn != NULL)
		term_join_flush(t);
	t->joined.len = 0;
	t->join = on;
}

/* Report a screen row if it changed; blank rows only when blank_ok. */
void
term_capture_row(struct term *t, int row, bool blank_ok)
{
	VTermScreenCell last, before;
	size_t cap, len;
	bool full;
	char *buf;

	if (t->line_fn == NULL || t->quiet || row < 0 || row >= t->rows || !t->dirty[row])
		return;
	if (t->known_pos < t->known.len && row == t->rows - 2) {
		/* A row the fast path drew too: it knows the text (ASCII). */
		buf = t->known.data + t->known_pos;
		len = strlen(buf);
		t->known_pos += len + 1;
		full = len == (size_t)t->cols;
	} else if ((buf = term_text_buf(t, &cap)) != NULL) {
		len = term_row_text(t, row, buf, cap, NULL);
		term_cell(t, row, t->cols - 1, &last);
		if (t->cols >= 2)
			term_cell(t, row, t->cols - 2, &before);
		full = term_cells_full(&last, t->cols >= 2 ? &before : NULL);
	} else {
		return;
	}
	if (len == 0 && !blank_ok) {
		t->dirty[row] = 0;
		return;
	}
	term_report(t, row, buf, len, full);
}

/*
 * Report a screen row if it changed. Blank rows are not reported: they are
 * mostly rows that were erased, not lines that were written.
 */
static void
term_capture(struct term *t, int row)
{
	term_capture_row(t, row, false);
}

/* Set the hash of every row to its current text without reporting it. */
static void
term_rehash(struct term *t)
{
	size_t cap, len;
	char *buf;
	int r;

	if (t->line_fn == NULL || (buf = term_text_buf(t, &cap)) == NULL)
		return;
	for (r = 0; r < t->rows; r++) {
		len = term_row_text(t, r, buf, cap, NULL);
		t->hash[r] = term_hash(buf, len);
		t->dirty[r] = 0;
	}
	term_sync_push(t);
}

/* libvterm: part of the screen changed. */
static int
term_damage_cb(VTermRect rect, void *user)
{
	struct term *t = user;
	int r;

	t->damaged = true;
	for (r = rect.start_row; r < rect.end_row && r < t->rows; r++) {
		if (r >= 0 && !t->dirty[r]) {
			t->dirty[r] = 1;
			t->since[r] = t->seq;
		}
	}
	term_sync_push(t);
	return 1;
}

/* libvterm: a rectangle moved (scrolling, or characters inserted/deleted). */
static int
term_moverect_cb(VTermRect dest, VTermRect src, void *user)
{
	struct term *t = user;
	int n, r;

	t->damaged = true;
	t->pushed = 0;
	/*
	 * A screen that shrinks moves rows of its old size, past the per-row
	 * arrays term_resize() has sized for the new one and sets afresh
	 * once libvterm is done.
	 */
	if (src.end_row > t->rows || dest.end_row > t->rows)
		return 1;
	if (dest.start_col != 0 || dest.end_col != t->cols || dest.start_row == src.start_row) {
		term_damage_cb(dest, t);
		term_sync_push(t);
		return 1;
	}
	/* Whole rows moved: their state moves with them. */
	if (dest.start_row == 0 && src.start_row == 1 && src.end_row == t->rows)
		t->full_scrolls++;
	n = dest.end_row - dest.start_row;
	memmove(t->dirty + dest.start_row, t->dirty + src.start_row, (size_t)n);
	memmove(t->since + dest.start_row, t->since + src.start_row, (size_t)n * sizeof *t->since);
	memmove(t->hash + dest.start_row, t->hash + src.start_row, (size_t)n * sizeof *t->hash);
	/* The rows left behind are erased (and damaged) by libvterm. */
	for (r = src.start_row; r < src.end_row; r++) {
		if (r >= dest.start_row && r < dest.end_row)
			continue;
		t->dirty[r] = 0;
		t->hash[r] = 0;
	}
	/* A row that scrolled is complete. */
	if (t->line_fn != NULL && !t->quiet)
		for (r = dest.start_row; r < dest.end_row; r++)
			term_capture_row(t, r, false);
	term_sync_push(t);
	return 1;
}

/* libvterm: the cursor moved; a row the cursor leaves is complete. */
static int
term_movecursor_cb(VTermPos pos, VTermPos oldpos, int visible, void *user)
{
	struct term *t = user;

	t->damaged = true;
	if (pos.row != oldpos.row)
		term_capture(t, oldpos.row);
	term_sync_push(t);
	return 1;
}

/* libvterm: a terminal property changed. */
static int
term_settermprop_cb(VTermProp prop, VTermValue *val, void *user)
{
	struct term *t = user;

	t->damaged = true;
	switch (prop) {
	case VTERM_PROP_ALTSCREEN:
		if (t->alt == (bool)val->boolean)
			break;
		t->alt = val->boolean;
		if (!t->alt) {
			free(t->main_snap);
			t->main_snap = NULL;
			t->main_snap_len = 0;
			if (t->main_hash != NULL)
				memcpy(t->hash, t->main_hash, (size_t)t->rows * sizeof *t->hash);
		} else if (t->hash != NULL) {
			if (t->main_hash != NULL)
				memcpy(t->main_hash, t->hash, (size_t)t->rows * sizeof *t->hash);
			memset(t->hash, 0, (size_t)t->rows * sizeof *t->hash);
		}
		break;
	case VTERM_PROP_CURSORVISIBLE:
		t->cursor_visible = val->boolean;
		break;
	case VTERM_PROP_REVERSE:
		t->reverse = val->boolean;
		break;
	default:
		break;
	}
	return 1;
}

/* libvterm: the screen was resized (the size is applied in term_resize). */
static int
term_resize_cb(int rows, int cols, void *user)
{
	struct term *t = user;

	t->damaged = true;
	return 1;
}

/* Forget the rows of the scrollback. */
static void
term_sb_clear(struct term *t)
{
	size_t i;

	for (i = 0; i < t->sb_n; i++)
		free(t->sb[(t->sb_first + i) % t->sb_max].text);
	t->sb_first = t->sb_n = t->sb_bytes = 0;
	t->sb_dropped = 0;
}

/* Push the oldest row out of the scrollback. */
static void
term_sb_drop(struct term *t)
{
	struct term_sb_line *l = &t->sb[t->sb_first];

	t->sb_bytes -= l->len;
	free(l->text);
	l->text = NULL;
	t->sb_first = (t->sb_first + 1) % t->sb_max;
	t->sb_n--;
	t->sb_dropped++;
}

/* Keep a row that scrolled off the top, within the bounds. */
static void
term_sb_push(struct term *t, const char *text, size_t len)
{
	struct term_sb_line *l;
	char *p;

	if (len > t->sb_max_bytes)
		len = t->sb_max_bytes;
	while (t->sb_n > 0 && (t->sb_n == t->sb_max || t->sb_bytes + len > t->sb_max_bytes))
		term_sb_drop(t);
	if ((p = malloc(len + 1)) == NULL) {
		t->sb_dropped++;	/* a gap, counted as rows pushed out */
		return;
	}
	memcpy(p, text, len);
	p[len] = '\0';
	l = &t->sb[(t->sb_first + t->sb_n) % t->sb_max];
	l->text = p;
	l->len = len;
	t->sb_n++;
	t->sb_bytes += len;
}

/* Set the scrollback's bounds. */
int
term_set_scrollback(struct term *t, size_t max_lines, size_t max_bytes)
{
	struct term_sb_line *sb = NULL;

	term_sb_clear(t);
	if (max_lines > 0 && max_bytes > 0 && (sb = calloc(max_lines, sizeof *sb)) == NULL)
		return -ENOMEM;
	free(t->sb);
	t->sb = sb;
	t->sb_max = sb != NULL ? max_lines : 0;
	t->sb_max_bytes = max_bytes;
	term_sync_push(t);
	return 0;
}

/* The rows kept. */
size_t
term_scrollback(const struct term *t, uint64_t *dropped)
{
	if (dropped != NULL)
		*dropped = t->sb_dropped;
	return t->sb_n;
}

/* One row kept. */
const char *
term_scrollback_line(const struct term *t, size_t i, size_t *len)
{
	const struct term_sb_line *l;

	if (i >= t->sb_n) {
		*len = 0;
		return "";
	}
	l = &t->sb[(t->sb_first + i) % t->sb_max];
	*len = l->len;
	return l->text;
}

/* libvterm: a row scrolls off the top of the main screen. */
static int
term_pushline_cb(int cols, const VTermScreenCell *cells, void *user)
{
	struct term *t = user;
	int row = t->pushed++, n;
	size_t cap, len;
	char *buf;
	bool report;

	report = t->line_fn != NULL && !t->quiet && row < t->rows && t->dirty[row];
	if ((!report && (t->sb_max == 0 || t->quiet)) || (buf = term_text_buf(t, &cap)) == NULL)
		return 1;
	n = cols < t->cols ? cols : t->cols;
	len = term_cells_text(cells, n, buf, cap, NULL);
	if (t->sb_max > 0 && !t->quiet)
		term_sb_push(t, buf, len);
	if (report && len > 0)
		term_report(t, row, buf, len, n == t->cols &&
		    term_cells_full(&cells[n - 1], n >= 2 ? &cells[n - 2] : NULL));
	/*
	 * No term_sync_push() here: libvterm 0.1.4 checks for sb_pushline
	 * once and calls it for every row of a scroll by several, so taking
	 * it away now makes it call NULL. The move that follows the rows
	 * pushed sets the callbacks.
	 */
	return 1;
}

/* Allocate the per-row arrays for rows rows. */
static int
term_alloc_rows(struct term *t, int rows)
{
	uint8_t *d = calloc((size_t)rows, 1);
	uint64_t *s = calloc((size_t)rows, sizeof *s);
	uint64_t *h = calloc((size_t)rows, sizeof *h);
	uint64_t *m = calloc((size_t)rows, sizeof *m);

	if (d == NULL || s == NULL || h == NULL || m == NULL) {
		free(d);
		free(s);
		free(h);
		free(m);
		return -ENOMEM;
	}
	free(t->dirty);
	free(t->since);
	free(t->hash);
	free(t->main_hash);
	t->dirty = d;
	t->since = s;
	t->hash = h;
	t->main_hash = m;
	return 0;
}

/* Create the libvterm objects for cols x rows. */
static int
term_open_vt(struct term *t, int cols, int rows)
{
	VTerm *vt;

	if ((vt = vterm_new(rows, cols)) == NULL)
		return -ENOMEM;
	if (term_alloc_rows(t, rows) < 0) {
		vterm_free(vt);
		return -ENOMEM;
	}
	if (t->vt != NULL)
		vterm_free(t->vt);
	t->vt = vt;
	t->rows = rows;
	t->cols = cols;
	vterm_set_utf8(vt, 1);
	t->st = vterm_obtain_state(vt);
	t->vs = vterm_obtain_screen(vt);
	vterm_screen_set_callbacks(t->vs, &term_screen_cbs, t);
	t->push_cb = false;
	vterm_screen_set_damage_merge(t->vs, VTERM_DAMAGE_CELL);
	/* The alternate screen's cells (rows x cols, 36 bytes each) are made
	 * when the output first asks for it (scan.c), not for every screen. */
	vterm_screen_reset(t->vs, 1);
	memset(t->dirty, 0, (size_t)rows);
	t->nu8 = 0;
	t->alt = false;
	t->cursor_visible = true;
	t->reverse = false;
	t->top = t->bottom = 0;
	term_scan_reset_modes(t);
	term_scan_reset_charsets(t);
	t->u8_unsure = false;
	t->printed = false;
	t->last_ascii = false;
	t->sc = SCAN_GROUND;
	free(t->main_snap);
	t->main_snap = NULL;
	t->main_snap_len = 0;
	t->damaged = true;
	term_sync_push(t);	/* the scrollback needs sb_pushline from the start */
	return 0;
}

/* Make an emulator. */
int
term_new(struct term **out, int cols, int rows)
{
	struct term *t;
	int r;

	*out = NULL;
	if ((t = calloc(1, sizeof *t)) == NULL)
		return -ENOMEM;
	if ((r = term_open_vt(t, term_clamp(cols, TERM_MIN_COLS), term_clamp(rows, 1))) < 0) {
		term_free(t);
		return r;
	}
	*out = t;
	return 0;
}

/* Free an emulator. */
void
term_free(struct term *t)
{
	if (t == NULL)
		return;
	if (t->vt != NULL)
		vterm_free(t->vt);
	free(t->dirty);
	free(t->since);
	free(t->hash);
	free(t->main_hash);
	free(t->main_snap);
	free(t->text);
	buf_free(&t->known);
	buf_free(&t->joined);
	term_sb_clear(t);
	free(t->sb);
	free(t);
}

/* Set the line callback. */
void
term_set_line_fn(struct term *t, term_line_fn *fn, void *arg)
{
	t->line_fn = fn;
	t->line_arg = arg;
	term_sync_push(t);
}

/* Turn the plain-text fast path on or off. */
void
term_set_fast(struct term *t, bool on)
{
	t->fast_off = !on;
}

/* Bytes the fast path kept from libvterm. */
uint64_t
term_fast_skipped(const struct term *t)
{
	return t->fast_skipped;
}

/* Set the current event's sequence number. */
void
term_set_seq(struct term *t, uint64_t seq)
{
	t->seq = seq;
}
/* Keep the main screen before the alternate one covers it. */
void
term_keep_main(struct term *t)
{
	char *snap = NULL;
	size_t len = 0;
	int r;

	for (r = 0; r < t->rows; r++)
		term_capture_row(t, r, false);
	if (term_snapshot(t, &snap, &len) < 0)
		return;
	free(t->main_snap);
	t->main_snap = snap;
	t->main_snap_len = len;
}
/* Report every changed, non-blank row (before the screen goes away). */
void
term_flush_rows(struct term *t)
{
	int r;

	for (r = 0; r < t->rows; r++)
		term_capture_row(t, r, false);
}

/*
 * Leave libvterm, after a resize, in a state it can go on from. 0.1.4
 * keeps the scroll region of the old size, and a region starting below
 * the new last row makes it copy a negative size; it also moves the cursor
 * up with the rows a shrinking resize pushes off the top, to above the
 * screen, where the next character written in insert mode makes it write
 * through a NULL pointer. A terminal resets the region and keeps the
 * cursor on the screen; so does this, when needed, by giving libvterm the
 * sequences, after ending one the output left unfinished (which would
 * otherwise swallow them).
 */
static void
term_settle(struct term *t)
{
	VTermPos pos;
	char seq[64];
	int n;

	/*
	 * The region is reset whether or not the scanner saw one set: the
	 * reset costs nothing, and a region libvterm took that the scanner
	 * did not follow must not outlive the size it was set for.
	 */
	vterm_state_get_cursorpos(t->st, &pos);
	pos.row = pos.row < 0 ? 0 : pos.row >= t->rows ? t->rows - 1 : pos.row;
	pos.col = pos.col < 0 ? 0 : pos.col >= t->cols ? t->cols - 1 : pos.col;
	n = snprintf(seq, sizeof seq, "%s%s\033[%d;%dH",
	    t->sc == SCAN_STRING ? "\033\\" : t->sc != SCAN_GROUND ? "\030" : "",
	    "\033[r", pos.row + 1, pos.col + 1);
	t->sc = SCAN_GROUND;
	t->quiet = true;
	vterm_input_write(t->vt, seq, (size_t)n);
	t->quiet = false;
}

/* Resize the emulator. */
void
term_resize(struct term *t, int cols, int rows)
{
	int r;

	cols = term_clamp(cols, TERM_MIN_COLS);
	rows = term_clamp(rows, 1);
	if (cols == t->cols && rows == t->rows)
		return;
	for (r = 0; r < t->rows; r++)
		term_capture_row(t, r, false);
	if (term_alloc_rows(t, rows) < 0)
		return;
	t->rows = rows;
	t->cols = cols;
	vterm_set_size(t->vt, rows, cols);
	term_settle(t);
	t->pushed = 0;
	t->top = t->bottom = 0;
	t->damaged = true;
	term_rehash(t);
	term_sync_push(t);
}

/* Report the final screen. */
void
term_finish(struct term *t)
{
	size_t cap;
	char *buf;
	int r, last = -1;

	if (t->line_fn == NULL || (buf = term_text_buf(t, &cap)) == NULL)
		return;
	for (r = 0; r < t->rows; r++)
		if (t->dirty[r] && term_row_text(t, r, buf, cap, NULL) > 0)
			last = r;
	for (r = 0; r <= last; r++)
		term_capture(t, r);
	term_join_flush(t);
	for (r = 0; r < t->rows; r++)
		t->dirty[r] = 0;
	term_sync_push(t);
}

/* The emulator's size. */
void
term_size(const struct term *t, int *cols, int *rows)
{
	*cols = t->cols;
	*rows = t->rows;
}

/* The cursor. */
void
term_cursor(const struct term *t, int *row, int *col, bool *visible)
{
	VTermPos pos;

	vterm_state_get_cursorpos(t->st, &pos);
	*row = pos.row;
	*col = pos.col;
	*visible = t->cursor_visible;
}

/* One cell of the screen. */
void
term_cell(const struct term *t, int row, int col, VTermScreenCell *cell)
{
	VTermPos pos = { .row = row, .col = col };

	memset(cell, 0, sizeof *cell);
	if (row < 0 || row >= t->rows || col < 0 || col >= t->cols)
		return;
	vterm_screen_get_cell(t->vs, pos, cell);
}

/* Take the damage flag. */
bool
term_take_damage(struct term *t)
{
	bool d = t->damaged;

	t->damaged = false;
	return d;
}

/* Rebuild the emulator from a snapshot. */
int
term_restore(struct term *t, int cols, int rows, const char *snap, size_t len)
{
	int r;

	if ((r = term_open_vt(t, term_clamp(cols, TERM_MIN_COLS), term_clamp(rows, 1))) < 0)
		return r;
	t->quiet = true;
	term_write_bytes(t, snap, len);	/* a snapshot is not output: no onlcr */
	t->quiet = false;
	term_rehash(t);
	t->damaged = true;
	return 0;
}
