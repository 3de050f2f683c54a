/*
 * The player's terminal emulator: libvterm plus snapshots and rendered
 * lines (see term.h).
 *
 * libvterm keeps modes such as the scroll region and origin mode to itself,
 * so a small scanner watches the output for the few sequences a snapshot
 * must reproduce. It also notices when the alternate screen is about to be
 * entered, to keep the main screen (which libvterm hides) for snapshots.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "term.h"

#define TERM_MAX_DIM 1000
/*
 * Most bytes handed to libvterm at once: it decodes a write's text into an
 * array on the stack as long as the write, so one large output event given
 * whole overflows the stack.
 */
#define TERM_VT_CHUNK (16u * 1024)
#define SCAN_MAX_PARAMS 16
/* Modes a snapshot starts from, whatever came before it. */
#define TERM_RESET_MODES "\033[?6l\033[?7h\033[4l\033[r\033(B\033[?25h"

enum scan_state { SCAN_GROUND, SCAN_ESC, SCAN_ESC_INTER, SCAN_CSI, SCAN_CHARSET, SCAN_STRING };

/* A growing byte buffer. */
struct term_buf {
	char *p;
	size_t len, cap;
	int err;
};

struct term {
	VTerm *vt;
	VTermScreen *vs;
	VTermState *st;
	int rows, cols;
	bool damaged;
	bool alt;		/* the alternate screen is shown */
	bool cursor_visible;
	bool reverse;		/* DECSCNM */

	/* Modes libvterm does not expose, followed by the scanner. */
	int top, bottom;	/* scroll region, 0-based, bottom exclusive; 0,0: whole */
	bool origin, noautowrap, insert, g0_graphics;
	/* ... and those that change how plain text is drawn (term_fast_run). */
	bool newline;		/* LNM: LF also returns the carriage */
	bool onlcr;		/* every LF written is CR LF (output without a PTY) */
	bool line_full;		/* the row being reported reaches the last column */
	bool lrmm;		/* DECLRMM: left and right margins */
	bool g0_other;		/* G0 is not ASCII */
	int gl;			/* the character set shifted in (SO, SI, LS2, LS3) */
	bool u8_unsure;		/* libvterm may hold part of a UTF-8 character */
	enum scan_state sc;
	char sc_lead;		/* CSI private marker, or 0 */
	char sc_inter;		/* CSI intermediate byte, or 0 */
	unsigned sc_param[SCAN_MAX_PARAMS];
	int sc_nparam;
	bool sc_str_esc;	/* an ESC inside a string */
	bool push_cb;		/* sb_pushline is set */
	char u8[4];		/* an incomplete UTF-8 character at the end of a write */
	size_t nu8;

	char *main_snap;	/* the main screen, kept while the alternate one is shown */
	size_t main_snap_len;
	uint64_t *main_hash;

	/* Rendered lines. */
	term_line_fn *line_fn;
	void *line_arg;
	bool quiet;
	uint64_t seq;
	uint8_t *dirty;
	uint64_t *since;
	uint64_t *hash;
	int pushed;		/* rows pushed off the top in the current scroll */
	char *text;
	size_t text_cap;

	/* The plain-text fast path. */
	bool fast_off;
	struct term_buf known;	/* texts of rows libvterm is about to scroll up */
	size_t known_pos;	/* the next one */
	uint64_t fast_skipped;	/* bytes kept from libvterm */
	unsigned full_scrolls;	/* whole-screen scrolls by one row seen */
};

static int term_damage_cb(VTermRect rect, void *user);
static int term_moverect_cb(VTermRect dest, VTermRect src, void *user);
static int term_movecursor_cb(VTermPos pos, VTermPos oldpos, int visible, void *user);
static int term_settermprop_cb(VTermProp prop, VTermValue *val, void *user);
static int term_resize_cb(int rows, int cols, void *user);
static int term_pushline_cb(int cols, const VTermScreenCell *cells, void *user);
static void term_scan_reset_modes(struct term *t);
static void term_scan_reset_charsets(struct term *t);

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
static void
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

/* Clamp a dimension to what the player accepts. */
static int
term_clamp(int n)
{
	return n < 1 ? 1 : n > TERM_MAX_DIM ? TERM_MAX_DIM : n;
}

/* Append bytes to a buffer, remembering the first allocation failure. */
static void
term_buf_add(struct term_buf *b, const void *p, size_t n)
{
	char *np;
	size_t cap;

	if (b->err < 0)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->err = -ENOMEM;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Append formatted text to a buffer. */
static void term_buf_printf(struct term_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
term_buf_printf(struct term_buf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		term_buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Encode a code point as UTF-8. */
size_t
term_utf8_encode(uint32_t c, char *p)
{
	if (c >= 0xd800 && c <= 0xdfff)
		c = 0xfffd;
	if (c < 0x80) {
		p[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		p[0] = (char)(0xc0 | c >> 6);
		p[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		p[0] = (char)(0xe0 | c >> 12);
		p[1] = (char)(0x80 | (c >> 6 & 0x3f));
		p[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	if (c > 0x10ffff)
		return term_utf8_encode(0xfffd, p);
	p[0] = (char)(0xf0 | c >> 18);
	p[1] = (char)(0x80 | (c >> 12 & 0x3f));
	p[2] = (char)(0x80 | (c >> 6 & 0x3f));
	p[3] = (char)(0x80 | (c & 0x3f));
	return 4;
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

/* Text of a row of cells as UTF-8, trailing blanks trimmed. */
static size_t
term_cells_text(const VTermScreenCell *cells, int n, char *buf, size_t cap, int *cols)
{
	size_t len = 0, keep = 0, k;
	char u[4];
	int col, i;

	for (col = 0; col < n; col++) {
		const VTermScreenCell *c = &cells[col];

		if (c->chars[0] == (uint32_t)-1)
			continue;
		for (i = 0; i < VTERM_MAX_CHARS_PER_CELL; i++) {
			size_t ul;

			if (i > 0 && c->chars[i] == 0)
				break;
			if (c->chars[0] == 0)
				ul = (u[0] = ' ', 1);
			else
				ul = term_utf8_encode(c->chars[i], u);
			if (len + ul + 1 > cap)
				goto out;
			for (k = 0; k < ul; k++) {
				if (cols != NULL)
					cols[len] = col;
				buf[len++] = u[k];
			}
			if (c->chars[0] == 0)
				break;
		}
		if (c->chars[0] != 0 && c->chars[0] != ' ')
			keep = len;
	}
out:
	buf[keep] = '\0';
	return keep;
}

/* Make sure the text buffer holds a row. */
static char *
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

/* Text of a screen row. */
size_t
term_row_text(const struct term *t, int row, char *buf, size_t cap, int *cols)
{
	VTermScreenCell cells[TERM_MAX_DIM];
	VTermPos pos;
	int n = t->cols;

	if (cap == 0)
		return 0;
	if (row < 0 || row >= t->rows) {
		buf[0] = '\0';
		return 0;
	}
	pos.row = row;
	for (pos.col = 0; pos.col < n; pos.col++)
		vterm_screen_get_cell(t->vs, pos, &cells[pos.col]);
	return term_cells_text(cells, n, buf, cap, cols);
}

/* Set or clear the sb_pushline callback as row 0 needs it. */
static void
term_sync_push(struct term *t)
{
	bool want = t->line_fn != NULL && t->dirty[0];

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
	t->line_full = full;
	t->line_fn(t->line_arg, text, len, t->since[row], t->seq);
	t->line_full = false;
}

/* Whether the last of n cells holds a character (or the end of a wide one). */
static bool
term_cells_full(const VTermScreenCell *last, const VTermScreenCell *before)
{
	return (last->chars[0] != 0 && last->chars[0] != ' ') ||
	    (before != NULL && before->width == 2);
}

/* Whether the row being reported reaches the last column. */
bool
term_line_full(const struct term *t)
{
	return t->line_full;
}

/* Report a screen row if it changed; blank rows only when blank_ok. */
static void
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
		buf = t->known.p + t->known_pos;
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

/* libvterm: a row scrolls off the top of the main screen. */
static int
term_pushline_cb(int cols, const VTermScreenCell *cells, void *user)
{
	struct term *t = user;
	int row = t->pushed++, n;
	size_t cap, len;
	char *buf;

	if (t->line_fn == NULL || t->quiet || row >= t->rows || !t->dirty[row])
		return 1;
	if ((buf = term_text_buf(t, &cap)) == NULL)
		return 1;
	n = cols < t->cols ? cols : t->cols;
	len = term_cells_text(cells, n, buf, cap, NULL);
	if (len > 0)
		term_report(t, row, buf, len, n == t->cols &&
		    term_cells_full(&cells[n - 1], n >= 2 ? &cells[n - 2] : NULL));
	term_sync_push(t);
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
	vterm_screen_enable_altscreen(t->vs, 1);
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
	t->sc = SCAN_GROUND;
	free(t->main_snap);
	t->main_snap = NULL;
	t->main_snap_len = 0;
	t->damaged = true;
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
	if ((r = term_open_vt(t, term_clamp(cols), term_clamp(rows))) < 0) {
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
	free(t->known.p);
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

/* Forget the modes the scanner follows (RIS; libvterm 0.1.4 ignores DECSTR). */
static void
term_scan_reset_modes(struct term *t)
{
	t->top = t->bottom = 0;
	t->origin = t->noautowrap = t->insert = t->g0_graphics = false;
	t->newline = t->lrmm = false;
}

/* Forget the character sets followed (RIS). */
static void
term_scan_reset_charsets(struct term *t)
{
	t->g0_other = false;
	t->gl = 0;
}

/* Keep the main screen before the alternate one covers it. */
static void
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

/* What the scanner asks for before a sequence takes effect. */
enum scan_act {
	SCAN_ACT_NONE,
	SCAN_ACT_ENTER_ALT,	/* keep the main screen */
	SCAN_ACT_FLUSH,		/* report the rows: the screen is about to go */
};

/* The scanner saw a complete CSI sequence ending in final. */
static enum scan_act
term_scan_csi(struct term *t, char final)
{
	enum scan_act act = SCAN_ACT_NONE;
	int i;

	if (t->sc_lead == '?' && t->sc_inter == 0 && (final == 'h' || final == 'l')) {
		for (i = 0; i < t->sc_nparam; i++) {
			switch (t->sc_param[i]) {
			case 6:
				t->origin = final == 'h';
				break;
			case 7:
				t->noautowrap = final == 'l';
				break;
			case 69:
				t->lrmm = final == 'h';
				break;
			case 47: case 1047: case 1049:
				/* Whether libvterm is on the alternate screen is
				 * checked once the bytes before this one reached it. */
				act = final == 'h' ? SCAN_ACT_ENTER_ALT : SCAN_ACT_FLUSH;
				break;
			default:
				break;
			}
		}
	} else if (t->sc_lead == 0 && t->sc_inter == 0 && (final == 'h' || final == 'l')) {
		for (i = 0; i < t->sc_nparam; i++) {
			if (t->sc_param[i] == 4)
				t->insert = final == 'h';
			else if (t->sc_param[i] == 20)
				t->newline = final == 'h';
		}
	} else if (t->sc_lead == 0 && t->sc_inter == 0 && final == 'r') {
		unsigned top = t->sc_nparam > 0 ? t->sc_param[0] : 0;
		unsigned bot = t->sc_nparam > 1 ? t->sc_param[1] : 0;

		if (top == 0)
			top = 1;
		if (bot == 0 || bot > (unsigned)t->rows)
			bot = (unsigned)t->rows;
		if (top < bot) {
			t->top = (int)top - 1;
			t->bottom = (int)bot;
			if (t->top == 0 && t->bottom == t->rows)
				t->top = t->bottom = 0;
		}
	} else if (t->sc_lead == 0 && t->sc_inter == 0 && final == 'J' && t->sc_nparam > 0 &&
	    (t->sc_param[0] == 2 || t->sc_param[0] == 3)) {
		act = SCAN_ACT_FLUSH;
	}
	return act;
}

/* Report every changed, non-blank row (before the screen goes away). */
static void
term_flush_rows(struct term *t)
{
	int r;

	for (r = 0; r < t->rows; r++)
		term_capture_row(t, r, false);
}

/* Length of the incomplete UTF-8 sequence at the end of p[0..n), or 0. */
static size_t
term_utf8_tail(const char *p, size_t n)
{
	size_t i, k, need;
	unsigned char c;

	for (k = 1; k <= 3 && k <= n; k++) {
		c = (unsigned char)p[n - k];
		if ((c & 0xc0) == 0x80)
			continue;
		if (c < 0xc0)
			return 0;
		need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
		for (i = n - k + 1; i < n; i++)
			if (((unsigned char)p[i] & 0xc0) != 0x80)
				return 0;
		return k < need ? k : 0;
	}
	return 0;
}

/* A C0 control the scanner follows: the shifts between G0 and G1. */
static void
term_scan_c0(struct term *t, unsigned char c)
{
	if (c == 0x0e)
		t->gl = 1;	/* SO */
	else if (c == 0x0f)
		t->gl = 0;	/* SI */
}

/*
 * The plain-text fast path.
 *
 * Most of a large recording is plain text scrolling at the bottom of the
 * screen, and libvterm moves the whole screen for every line of it. While
 * the cursor is at the bottom of a full-screen scroll region, every line
 * of a run of printable ASCII, CR and LF ends up scrolled off the screen
 * except the last screenful; what the slow path reports for such a line is
 * fixed by the run alone: it is drawn into a row the previous LF (or wrap)
 * just blanked, so it is reported, with both sequence numbers the current
 * event's, when it scrolls up, unless blank. term_fast_run() hands
 * libvterm the beginning of the run, up to a scroll that shows the
 * conditions hold, and the end, from which libvterm rebuilds the whole
 * screen; the lines in between are drawn here and only reported.
 *
 * The modes that change how plain text is drawn (insert, autowrap, LNM,
 * character sets and shifts, a UTF-8 character libvterm holds half of)
 * come from the scanner, which must follow them as libvterm 0.1.4 does.
 * test_fast_path in tests/unit/test-player.c compares this path with
 * libvterm on random output.
 */

/*
 * Whether one of the 8 bytes of w is below 0x20 or from 0x7f on. It may
 * say so of a word without one (a borrow or carry reaches the next byte
 * only from a byte that is one), never the other way round.
 */
static bool
term_word_special(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101u;

	return (((w - ones * 0x20) | (w + ones) | w) & (ones * 0x80)) != 0;
}

/* The first byte in [p, end) below 0x20 or from 0x7f on, or end. */
static const char *
term_find_special(const char *p, const char *end)
{
	uint64_t w;

	for (; end - p >= 8; p += 8) {
		memcpy(&w, p, 8);
		if (term_word_special(w))
			break;
	}
	for (; p < end; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			break;
	return p;
}

/*
 * A row of the fast path (cols bytes, blanks past hi) scrolls up: report
 * it, or when libvterm will scroll it (late), keep its text for the
 * capture; then blank it.
 */
static void
term_fast_row(struct term *t, char *row, int *hi, bool late)
{
	size_t len;

	for (len = (size_t)*hi; len > 0 && row[len - 1] == ' '; len--)
		;
	row[len] = '\0';
	if (late)
		term_buf_add(&t->known, row, len + 1);
	else if (len > 0) {
		t->line_full = len == (size_t)t->cols;
		t->line_fn(t->line_arg, row, len, t->seq, t->seq);
		t->line_full = false;
	}
	memset(row, ' ', (size_t)t->cols + 1);
	row[t->cols] = '\0';
	*hi = 0;
}

/*
 * Draw the rows of [p, end): report those that scroll up before mid, which
 * libvterm does not see, and keep the text of the others.
 */
static void
term_fast_lines(struct term *t, const char *p, const char *mid, const char *end)
{
	const char *q;
	size_t cap, n;
	char *row;
	int col = 0, hi = 0, cols = t->cols;
	bool phantom = false;	/* a character in the last column, not wrapped yet */

	if ((row = term_text_buf(t, &cap)) == NULL)
		return;
	memset(row, ' ', (size_t)cols);
	row[cols] = '\0';
	while (p < end) {
		if (*p == '\r') {
			col = 0;
			phantom = false;
			p++;
			continue;
		}
		if (*p == '\n') {
			/*
			 * The row scrolls up. libvterm keeps the column and a
			 * pending wrap across LF (only CR ends one): the next
			 * character then scrolls a blank row up too.
			 */
			term_fast_row(t, row, &hi, p >= mid);
			p++;
			continue;
		}
		/* Printable characters up to the next CR or LF, wrapping. */
		for (q = term_find_special(p, end); p < q; p += n) {
			if (phantom) {
				term_fast_row(t, row, &hi, p >= mid);
				col = 0;
				phantom = false;
			}
			n = (size_t)(q - p) < (size_t)(cols - col) ? (size_t)(q - p) :
			    (size_t)(cols - col);
			memcpy(row + col, p, n);
			col += (int)n;
			if (col > hi)
				hi = col;
			if (col == cols) {
				col = cols - 1;
				phantom = true;
			}
		}
	}
}

/*
 * Skip most of the plain run [a, b) (no ESC, bytes 0x20-0x7e, CR, LF),
 * where the bytes from *from on are not yet written to libvterm.
 */
static void
term_fast_run(struct term *t, const char **from, const char *a, const char *b)
{
	const char *p, *lf, *s1, *s2, *x;
	unsigned scrolls;
	VTermPos pos;
	int n;

	/* Modes that change how plain text is drawn. */
	if (t->fast_off || t->rows < 2 || t->cols < 2 || t->alt || t->insert ||
	    t->noautowrap || t->newline || t->lrmm || t->g0_other || t->gl != 0 || t->u8_unsure)
		return;
	/*
	 * libvterm goes up to the first LF after some text (which uses up a
	 * single shift, ESC N or ESC O, before the run), and must scroll the
	 * whole screen up by one for it, leaving the cursor at the start of a
	 * blank, single-width bottom row. Checking this on libvterm itself
	 * covers the scroll region, the margins and the cursor position.
	 */
	for (p = a; p < b && (*p == '\r' || *p == '\n'); p++)
		;
	if (p == b || (lf = memchr(p, '\n', (size_t)(b - p))) == NULL)
		return;
	term_vt_write(t->vt, *from, (size_t)(lf - *from));
	*from = lf;
	vterm_state_get_cursorpos(t->st, &pos);
	if (pos.row != t->rows - 1)
		return;
	scrolls = t->full_scrolls;
	term_vt_write(t->vt, lf, 1);
	*from = s1 = lf + 1;
	vterm_state_get_cursorpos(t->st, &pos);
	if (t->full_scrolls != scrolls + 1 || t->alt || pos.row != t->rows - 1 || pos.col != 0 ||
	    vterm_state_get_lineinfo(t->st, t->rows - 1)->doublewidth)
		return;
	/*
	 * libvterm takes over again after a CR LF (the cursor back at the start
	 * of a blank bottom row) followed by at least a screenful of LFs, which
	 * scroll every row it did not see off the screen, and by some text,
	 * which leaves its memory of the last character (for combining
	 * characters) as the whole run would.
	 */
	for (x = b, n = 0; x > s1; x--)
		if (x[-1] == '\n' && ++n == t->rows)
			break;
	if (n < t->rows)
		return;
	x--;	/* the LF that starts the last screenful */
	for (s2 = NULL; x > s1 + 1; x--) {
		if (x[-1] == '\n' && x[-2] == '\r') {
			s2 = x;
			break;
		}
	}
	if (s2 == NULL)
		return;
	for (p = s2; p < b && (*p == '\r' || *p == '\n'); p++)
		;
	if (p == b)
		return;
	/*
	 * The rows libvterm scrolls up when it is given [s2, b) (with what
	 * follows: splitting its input there is not neutral) take their text
	 * from the drawing, which the rows before s2 show to be libvterm's,
	 * instead of reading it back cell by cell; term_write() forgets what
	 * is left of them once it has written everything.
	 */
	t->known.len = t->known_pos = 0;
	t->known.err = 0;
	if (t->line_fn != NULL && !t->quiet)
		term_fast_lines(t, s1, s2, b);
	t->fast_skipped += (uint64_t)(s2 - s1);
	t->damaged = true;
	*from = s2;
}

/*
 * The UTF-8 character at p, a byte from 0x80 on in ground-state text:
 * whether libvterm's decoder is left holding part of one (its pending bytes
 * outlive ASCII text and controls, and come out as U+FFFD later), and the
 * bytes to step over.
 */
static size_t
term_scan_utf8(struct term *t, const char *p, const char *end)
{
	unsigned char c = (unsigned char)*p;
	size_t need, i;

	need = c >= 0xfc ? 5 : c >= 0xf8 ? 4 : c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
	if (need == 0 || c >= 0xfe || (size_t)(end - p) <= need) {
		t->u8_unsure = true;
		return 1;
	}
	for (i = 1; i <= need; i++) {
		if (((unsigned char)p[i] & 0xc0) != 0x80) {
			t->u8_unsure = true;
			return i;
		}
	}
	t->u8_unsure = false;	/* a whole character: the decoder starts afresh */
	return need + 1;
}

/*
 * Follow ground-state text [p, end) for the scanner (the shifts) and give
 * its long plain runs to the fast path.
 */
static void
term_scan_text(struct term *t, const char **from, const char *p, const char *end)
{
	const char *run = p;
	int lfs = 0;

	for (; p < end; p++) {
		unsigned char c;

		if ((p = term_find_special(p, end)) == end)
			break;
		c = (unsigned char)*p;
		if (c == '\r')
			continue;
		if (c == '\n') {
			lfs++;
			continue;
		}
		if (lfs > t->rows + 1)
			term_fast_run(t, from, run, p);
		if (c < 0x20)
			term_scan_c0(t, c);
		else if (c >= 0x80)
			p += term_scan_utf8(t, p, end) - 1;
		run = p + 1;
		lfs = 0;
	}
	if (lfs > t->rows + 1)
		term_fast_run(t, from, run, end);
}

/*
 * Feed bytes to libvterm, following the sequences snapshots need. Before
 * the final byte of a sequence that enters the alternate screen, the bytes
 * so far go to libvterm and the main screen is kept.
 */
static void
term_write_bytes(struct term *t, const void *buf, size_t len)
{
	const char *p = buf, *from = buf, *end = p + len, *e;
	enum scan_act act;
	unsigned char c;
	size_t tail;
	char u[8];

	/* Complete a character split at the end of the last write. */
	if (t->nu8 > 0) {
		memcpy(u, t->u8, t->nu8);
		tail = t->nu8;
		t->nu8 = 0;
		while (p < end && tail < 4 && ((unsigned char)*p & 0xc0) == 0x80)
			u[tail++] = *p++;
		if (p == end && term_utf8_tail(u, tail) == tail) {
			memcpy(t->u8, u, tail);	/* still incomplete */
			t->nu8 = tail;
			return;
		}
		term_vt_write(t->vt, u, tail);
		(void)term_scan_utf8(t, u, u + tail);
		from = p;
	}

	while (p < end) {
		if (t->sc == SCAN_GROUND) {
			e = memchr(p, 0x1b, (size_t)(end - p));
			term_scan_text(t, &from, p, e != NULL ? e : end);
			if (e == NULL)
				break;
			p = e + 1;
			t->sc = SCAN_ESC;
			continue;
		}
		c = (unsigned char)*p;
		if (c >= 0x80 && t->sc != SCAN_STRING)
			t->u8_unsure = true;	/* what libvterm makes of it is unclear */
		switch (t->sc) {
		case SCAN_ESC:
			if (c < 0x20 && c != 0x18 && c != 0x1a && c != 0x1b) {
				term_scan_c0(t, c);	/* done inside the sequence */
				break;
			}
			t->sc = SCAN_GROUND;
			if (c == '[') {
				t->sc = SCAN_CSI;
				t->sc_lead = 0;
				t->sc_inter = 0;
				t->sc_nparam = 0;
				memset(t->sc_param, 0, sizeof t->sc_param);
			} else if (c == '(') {
				t->sc = SCAN_CHARSET;
			} else if (c == ']' || c == 'P' || c == '_' || c == '^' || c == 'X') {
				t->sc = SCAN_STRING;
				t->sc_str_esc = false;
			} else if (c >= 0x20 && c <= 0x2f) {
				t->sc = SCAN_ESC_INTER;
			} else if (c == 'c') {
				term_scan_reset_modes(t);
				term_scan_reset_charsets(t);
			} else if (c == 'n' || c == 'o') {
				t->gl = c == 'n' ? 2 : 3;	/* LS2, LS3 */
			} else if (c == 0x1b) {
				t->sc = SCAN_ESC;
			}
			break;
		case SCAN_CHARSET:
		case SCAN_ESC_INTER:
			/* An escape sequence ends with a byte from 0x30 to 0x7e. */
			if (c < 0x20 && c != 0x18 && c != 0x1a && c != 0x1b) {
				term_scan_c0(t, c);
			} else if (c >= 0x20 && c <= 0x2f) {
				t->sc = SCAN_ESC_INTER;
			} else if (c == 0x1b) {
				t->sc = SCAN_ESC;
			} else if (c == '[' || c == ']' || c == 'P' || c == '_' || c == '^' ||
			    c == 'X') {
				/* libvterm starts these whatever the intermediates. */
				t->sc = SCAN_ESC;
				continue;
			} else {
				if (t->sc == SCAN_CHARSET && c >= 0x30 && c <= 0x7e) {
					t->g0_graphics = c == '0';
					t->g0_other = c != 'B';
				}
				t->sc = SCAN_GROUND;
			}
			break;
		case SCAN_STRING:
			if (t->sc_str_esc) {
				t->sc_str_esc = false;
				if (c == '\\') {
					t->sc = SCAN_GROUND;
					break;
				}
				t->sc = SCAN_ESC;
				continue;	/* the ESC started a new sequence */
			}
			if (c == 0x07)
				t->sc = SCAN_GROUND;
			else if (c == 0x1b)
				t->sc_str_esc = true;
			break;
		case SCAN_CSI:
			if (c >= '0' && c <= '9') {
				if (t->sc_nparam == 0)
					t->sc_nparam = 1;
				if (t->sc_nparam <= SCAN_MAX_PARAMS &&
				    t->sc_param[t->sc_nparam - 1] < 100000)
					t->sc_param[t->sc_nparam - 1] =
					    t->sc_param[t->sc_nparam - 1] * 10 + (c - '0');
			} else if (c == ';' || c == ':') {
				if (t->sc_nparam == 0)
					t->sc_nparam = 1;
				if (t->sc_nparam < SCAN_MAX_PARAMS)
					t->sc_nparam++;
			} else if (c >= 0x3c && c <= 0x3f) {
				t->sc_lead = (char)c;
			} else if (c >= 0x20 && c <= 0x2f) {
				t->sc_inter = (char)c;
			} else if (c >= 0x40 && c <= 0x7e) {
				t->sc = SCAN_GROUND;
				if (t->sc_nparam > SCAN_MAX_PARAMS)
					t->sc_nparam = SCAN_MAX_PARAMS;
				if ((act = term_scan_csi(t, (char)c)) != SCAN_ACT_NONE) {
					if (p > from)
						term_vt_write(t->vt, from, (size_t)(p - from));
					from = p;
					if (act == SCAN_ACT_FLUSH)
						term_flush_rows(t);
					else if (!t->alt)
						term_keep_main(t);
				}
			} else if (c == 0x1b) {
				t->sc = SCAN_ESC;
			} else if (c == 0x18 || c == 0x1a) {
				t->sc = SCAN_GROUND;
			} else if (c < 0x20) {
				term_scan_c0(t, c);
			}
			break;
		default:
			t->sc = SCAN_GROUND;
			break;
		}
		p++;
	}
	/* libvterm does not keep a character split between writes: we do. */
	if (t->sc == SCAN_GROUND && (tail = term_utf8_tail(from, (size_t)(end - from))) > 0) {
		end -= tail;
		memcpy(t->u8, end, tail);
		t->nu8 = tail;
	}
	if (end > from)
		term_vt_write(t->vt, from, (size_t)(end - from));
	t->known.len = t->known_pos = 0;
}

/* Feed output bytes, LF as CR LF with onlcr on. */
void
term_write(struct term *t, const void *buf, size_t len)
{
	const char *p = buf, *end = p + len, *lf;
	char piece[2 * TERM_VT_CHUNK];
	size_t n;

	if (!t->onlcr) {
		term_write_bytes(t, buf, len);
		return;
	}
	/* Translate in pieces, so that runs of lines still reach the fast path. */
	while (p < end) {
		n = 0;
		while (p < end && n + 2 < sizeof piece) {
			if ((lf = memchr(p, '\n', (size_t)(end - p))) == NULL)
				lf = end;
			if ((size_t)(lf - p) > sizeof piece - 2 - n)
				lf = p + (sizeof piece - 2 - n);
			memcpy(piece + n, p, (size_t)(lf - p));
			n += (size_t)(lf - p);
			p = lf;
			if (p < end && *p == '\n') {
				piece[n++] = '\r';
				piece[n++] = '\n';
				p++;
			}
		}
		term_write_bytes(t, piece, n);
	}
}

/* Give LF the CR a PTY would have added. */
void
term_set_onlcr(struct term *t, bool on)
{
	t->onlcr = on;
}

/* Resize the emulator. */
void
term_resize(struct term *t, int cols, int rows)
{
	int r;

	cols = term_clamp(cols);
	rows = term_clamp(rows);
	if (cols == t->cols && rows == t->rows)
		return;
	for (r = 0; r < t->rows; r++)
		term_capture_row(t, r, false);
	if (term_alloc_rows(t, rows) < 0)
		return;
	t->rows = rows;
	t->cols = cols;
	vterm_set_size(t->vt, rows, cols);
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

/* The libvterm object, for reading. */
VTerm *
term_vterm(const struct term *t)
{
	return t->vt;
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

/* SGR parameters for a colour. */
static void
term_sgr_color(struct term_buf *b, const VTermColor *c, bool fg)
{
	if (fg ? VTERM_COLOR_IS_DEFAULT_FG(c) : VTERM_COLOR_IS_DEFAULT_BG(c))
		return;
	if (VTERM_COLOR_IS_INDEXED(c)) {
		if (c->indexed.idx < 8)
			term_buf_printf(b, ";%d", (fg ? 30 : 40) + c->indexed.idx);
		else if (c->indexed.idx < 16)
			term_buf_printf(b, ";%d", (fg ? 90 : 100) + c->indexed.idx - 8);
		else
			term_buf_printf(b, ";%d;5;%d", fg ? 38 : 48, c->indexed.idx);
	} else
		term_buf_printf(b, ";%d;2;%d;%d;%d", fg ? 38 : 48, c->rgb.red, c->rgb.green,
		    c->rgb.blue);
}

/* A pen: the attributes and colours of a cell. */
struct term_pen {
	VTermScreenCellAttrs a;
	VTermColor fg, bg;
};

/* Whether two pens differ. */
static bool
term_pen_differs(const struct term_pen *x, const struct term_pen *y)
{
	return x->a.bold != y->a.bold || x->a.underline != y->a.underline ||
	    x->a.italic != y->a.italic || x->a.blink != y->a.blink ||
	    x->a.reverse != y->a.reverse || x->a.strike != y->a.strike ||
	    x->a.font != y->a.font || !vterm_color_is_equal(&x->fg, &y->fg) ||
	    (x->fg.type & VTERM_COLOR_DEFAULT_MASK) != (y->fg.type & VTERM_COLOR_DEFAULT_MASK) ||
	    !vterm_color_is_equal(&x->bg, &y->bg) ||
	    (x->bg.type & VTERM_COLOR_DEFAULT_MASK) != (y->bg.type & VTERM_COLOR_DEFAULT_MASK);
}

/* The SGR sequence that sets a pen from scratch. */
static void
term_sgr(struct term_buf *b, const struct term_pen *p)
{
	term_buf_add(b, "\033[0", 3);
	if (p->a.bold)
		term_buf_add(b, ";1", 2);
	if (p->a.italic)
		term_buf_add(b, ";3", 2);
	if (p->a.underline == VTERM_UNDERLINE_SINGLE)
		term_buf_add(b, ";4", 2);
	else if (p->a.underline == VTERM_UNDERLINE_DOUBLE)
		term_buf_add(b, ";21", 3);
	else if (p->a.underline == VTERM_UNDERLINE_CURLY)
		term_buf_add(b, ";4:3", 4);
	if (p->a.blink)
		term_buf_add(b, ";5", 2);
	if (p->a.reverse)
		term_buf_add(b, ";7", 2);
	if (p->a.strike)
		term_buf_add(b, ";9", 2);
	if (p->a.font)
		term_buf_printf(b, ";%d", 10 + p->a.font);
	term_sgr_color(b, &p->fg, true);
	term_sgr_color(b, &p->bg, false);
	term_buf_add(b, "m", 1);
}

/* Whether a cell would be left blank by a reset screen. */
static bool
term_cell_blank(const VTermScreenCell *c)
{
	return (c->chars[0] == 0 || c->chars[0] == ' ') && !c->attrs.reverse &&
	    !c->attrs.underline && !c->attrs.strike && VTERM_COLOR_IS_DEFAULT_BG(&c->bg);
}

/* Paint the cells of the screen shown now. */
static void
term_paint(struct term *t, struct term_buf *b)
{
	VTermScreenCell c;
	struct term_pen pen, cur;
	VTermPos pos;
	char u[4 * VTERM_MAX_CHARS_PER_CELL];
	int last, i;
	bool moved;
	size_t n;

	memset(&cur, 0, sizeof cur);
	vterm_color_indexed(&cur.fg, 7);
	cur.fg.type |= VTERM_COLOR_DEFAULT_FG;
	vterm_color_indexed(&cur.bg, 0);
	cur.bg.type |= VTERM_COLOR_DEFAULT_BG;
	term_buf_add(b, "\033[0m", 4);
	for (pos.row = 0; pos.row < t->rows; pos.row++) {
		last = -1;
		for (pos.col = 0; pos.col < t->cols; pos.col++) {
			vterm_screen_get_cell(t->vs, pos, &c);
			if (c.chars[0] != (uint32_t)-1 && !term_cell_blank(&c))
				last = pos.col;
		}
		if (last < 0)
			continue;
		term_buf_printf(b, "\033[%d;1H", pos.row + 1);
		moved = false;
		for (pos.col = 0; pos.col <= last; pos.col++) {
			vterm_screen_get_cell(t->vs, pos, &c);
			if (c.chars[0] == (uint32_t)-1) {
				moved = true;
				continue;
			}
			/*
			 * After the right half of a wide character, place the
			 * cursor: the half may be a stray one whose left half
			 * was overwritten by a narrow character.
			 */
			if (moved) {
				term_buf_printf(b, "\033[%d;%dH", pos.row + 1, pos.col + 1);
				moved = false;
			}
			pen.a = c.attrs;
			pen.a.dwl = pen.a.dhl = 0;
			pen.fg = c.fg;
			pen.bg = c.bg;
			if (term_pen_differs(&pen, &cur)) {
				term_sgr(b, &pen);
				cur = pen;
			}
			if (c.chars[0] == 0) {
				term_buf_add(b, " ", 1);
				continue;
			}
			for (i = 0, n = 0; i < VTERM_MAX_CHARS_PER_CELL && c.chars[i] != 0; i++)
				n += term_utf8_encode(c.chars[i], u + n);
			term_buf_add(b, u, n);
		}
	}
}

/* The SGR sequence for the pen the terminal writes with now. */
static void
term_state_pen(struct term *t, struct term_buf *b)
{
	struct term_pen p;
	VTermValue v;

	memset(&p, 0, sizeof p);
	vterm_state_get_penattr(t->st, VTERM_ATTR_BOLD, &v);
	p.a.bold = v.boolean ? 1 : 0;
	vterm_state_get_penattr(t->st, VTERM_ATTR_UNDERLINE, &v);
	p.a.underline = (unsigned)v.number & 3;
	vterm_state_get_penattr(t->st, VTERM_ATTR_ITALIC, &v);
	p.a.italic = v.boolean ? 1 : 0;
	vterm_state_get_penattr(t->st, VTERM_ATTR_BLINK, &v);
	p.a.blink = v.boolean ? 1 : 0;
	vterm_state_get_penattr(t->st, VTERM_ATTR_REVERSE, &v);
	p.a.reverse = v.boolean ? 1 : 0;
	vterm_state_get_penattr(t->st, VTERM_ATTR_STRIKE, &v);
	p.a.strike = v.boolean ? 1 : 0;
	vterm_state_get_penattr(t->st, VTERM_ATTR_FONT, &v);
	p.a.font = (unsigned)v.number & 15;
	vterm_state_get_penattr(t->st, VTERM_ATTR_FOREGROUND, &v);
	p.fg = v.color;
	vterm_state_get_penattr(t->st, VTERM_ATTR_BACKGROUND, &v);
	p.bg = v.color;
	term_sgr(b, &p);
}

/* The escape string that rebuilds this emulator. */
int
term_snapshot(struct term *t, char **out, size_t *len)
{
	struct term_buf b = { 0 };
	VTermPos cur;

	*out = NULL;
	*len = 0;
	/* Start from known modes whatever came before (main screen replay). */
	term_buf_add(&b, TERM_RESET_MODES, sizeof TERM_RESET_MODES - 1);
	if (t->alt && t->main_snap != NULL) {
		term_buf_add(&b, t->main_snap, t->main_snap_len);
		term_buf_add(&b, "\033[?1049h" TERM_RESET_MODES, 8 + sizeof TERM_RESET_MODES - 1);
	}
	term_paint(t, &b);
	if (t->top != 0 || t->bottom != 0)
		term_buf_printf(&b, "\033[%d;%dr", t->top + 1, t->bottom);
	if (t->noautowrap)
		term_buf_add(&b, "\033[?7l", 5);
	if (t->insert)
		term_buf_add(&b, "\033[4h", 4);
	if (t->g0_graphics)
		term_buf_add(&b, "\033(0", 3);
	if (t->reverse)
		term_buf_add(&b, "\033[?5h", 5);
	if (!t->cursor_visible)
		term_buf_add(&b, "\033[?25l", 6);
	term_state_pen(t, &b);
	vterm_state_get_cursorpos(t->st, &cur);
	if (t->origin) {
		term_buf_add(&b, "\033[?6h", 5);
		term_buf_printf(&b, "\033[%d;%dH", cur.row - t->top + 1, cur.col + 1);
	} else
		term_buf_printf(&b, "\033[%d;%dH", cur.row + 1, cur.col + 1);
	/* A character split between events stays pending after the replay. */
	if (t->nu8 > 0)
		term_buf_add(&b, t->u8, t->nu8);
	if (b.err < 0) {
		free(b.p);
		return b.err;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/* Rebuild the emulator from a snapshot. */
int
term_restore(struct term *t, int cols, int rows, const char *snap, size_t len)
{
	int r;

	if ((r = term_open_vt(t, term_clamp(cols), term_clamp(rows))) < 0)
		return r;
	t->quiet = true;
	term_write_bytes(t, snap, len);	/* a snapshot is not output: no onlcr */
	t->quiet = false;
	term_rehash(t);
	t->damaged = true;
	return 0;
}
