/*
 * A screen rendered: as text, a row at a time (UTF-8, no escape
 * sequences), and as the escape string that draws it, for a snapshot that
 * rebuilds an emulator and for a watcher's terminal (term_render). Both
 * escape strings come from one painter, term_paint().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "term-int.h"

/* Modes a snapshot starts from, whatever came before it. */
#define TERM_RESET_MODES "\033[?6l\033[?7h\033[4l\033[r\033(B\033[?25h"

/* Append short formatted text (an escape sequence, under 128 bytes) with one vsnprintf. */
static void __attribute__((format(printf, 2, 3)))
term_buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
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

/* Text of a row of cells as UTF-8, trailing blanks trimmed. */
size_t
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

/* Text of the line that starts at a row: the rows it wraps across, joined. */
size_t
term_line_text(const struct term *t, int row, char *buf, size_t cap)
{
	VTermScreenCell cells[TERM_MAX_DIM];
	VTermPos pos;
	size_t len = 0;
	int n = t->cols;
	bool full = true;

	if (cap == 0)
		return 0;
	buf[0] = '\0';
	for (pos.row = row; full && pos.row >= 0 && pos.row < t->rows && len + 1 < cap;
	    pos.row++) {
		for (pos.col = 0; pos.col < n; pos.col++)
			vterm_screen_get_cell(t->vs, pos, &cells[pos.col]);
		len += term_cells_text(cells, n, buf + len, cap - len, NULL);
		full = term_cells_full(&cells[n - 1], n >= 2 ? &cells[n - 2] : NULL);
	}
	return len;
}

/*
 * SGR parameters for a colour, each after a ';', into p (at least 24
 * bytes); returns how many parameters.
 */
static int
term_sgr_color(char *p, size_t cap, const VTermColor *c, bool fg)
{
	p[0] = '\0';
	if (fg ? VTERM_COLOR_IS_DEFAULT_FG(c) : VTERM_COLOR_IS_DEFAULT_BG(c))
		return 0;
	if (VTERM_COLOR_IS_INDEXED(c)) {
		if (c->indexed.idx < 8) {
			snprintf(p, cap, ";%d", (fg ? 30 : 40) + c->indexed.idx);
			return 1;
		}
		if (c->indexed.idx < 16) {
			snprintf(p, cap, ";%d", (fg ? 90 : 100) + c->indexed.idx - 8);
			return 1;
		}
		snprintf(p, cap, ";%d;5;%d", fg ? 38 : 48, c->indexed.idx);
		return 3;
	}
	snprintf(p, cap, ";%d;2;%d;%d;%d", fg ? 38 : 48, c->rgb.red, c->rgb.green, c->rgb.blue);
	return 5;
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

/*
 * The SGR sequence that sets a pen from scratch. A pen with every
 * attribute and two RGB colours takes 19 parameters, more than libvterm
 * 0.1.4 takes in one sequence (TERM_VT_MAX_SEPS): the colours then go in
 * a second one.
 */
static void
term_sgr(struct buf *b, const struct term_pen *p)
{
	char fg[24], bg[24];
	size_t start = b->len, i;
	int n = 1;

	buf_add(b, "\033[0", 3);
	if (p->a.bold)
		buf_add(b, ";1", 2);
	if (p->a.italic)
		buf_add(b, ";3", 2);
	if (p->a.underline == VTERM_UNDERLINE_SINGLE)
		buf_add(b, ";4", 2);
	else if (p->a.underline == VTERM_UNDERLINE_DOUBLE)
		buf_add(b, ";21", 3);
	else if (p->a.underline == VTERM_UNDERLINE_CURLY)
		buf_add(b, ";4:3", 4);
	if (p->a.blink)
		buf_add(b, ";5", 2);
	if (p->a.reverse)
		buf_add(b, ";7", 2);
	if (p->a.strike)
		buf_add(b, ";9", 2);
	if (p->a.font)
		term_buf_printf(b, ";%d", 10 + p->a.font);
	for (i = start; !b->oom && i < b->len; i++)
		if (b->data[i] == ';' || b->data[i] == ':')
			n++;
	n += term_sgr_color(fg, sizeof fg, &p->fg, true);
	n += term_sgr_color(bg, sizeof bg, &p->bg, false);
	if (n > TERM_VT_MAX_SEPS + 1 && fg[0] != '\0') {
		term_buf_printf(b, "m\033[%s%s", fg + 1, bg);
	} else {
		buf_add(b, fg, strlen(fg));
		buf_add(b, bg, strlen(bg));
	}
	buf_add(b, "m", 1);
}

/* Whether a cell would be left blank by a reset screen. */
static bool
term_cell_blank(const VTermScreenCell *c)
{
	return (c->chars[0] == 0 || c->chars[0] == ' ') && !c->attrs.reverse &&
	    !c->attrs.underline && !c->attrs.strike && VTERM_COLOR_IS_DEFAULT_BG(&c->bg);
}

/*
 * Paint the cells of the screen shown now, clipped to its top-left cols x
 * rows, on a terminal whose pen was reset and whose screen is blank.
 */
static void
term_paint(const struct term *t, struct buf *b, int cols, int rows)
{
	VTermScreenCell c;
	struct term_pen pen, cur;
	VTermPos pos;
	char u[4 * VTERM_MAX_CHARS_PER_CELL];
	int last, i;
	bool moved;
	size_t n;

	if (rows > t->rows)
		rows = t->rows;
	if (cols > t->cols)
		cols = t->cols;
	memset(&cur, 0, sizeof cur);
	vterm_color_indexed(&cur.fg, 7);
	cur.fg.type |= VTERM_COLOR_DEFAULT_FG;
	vterm_color_indexed(&cur.bg, 0);
	cur.bg.type |= VTERM_COLOR_DEFAULT_BG;
	for (pos.row = 0; pos.row < rows; pos.row++) {
		last = -1;
		for (pos.col = 0; pos.col < cols; pos.col++) {
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
			/* A wide character cut by the clip is left out. */
			if (c.width > 1 && pos.col + c.width > cols)
				break;
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
				buf_add(b, " ", 1);
				continue;
			}
			for (i = 0, n = 0; i < VTERM_MAX_CHARS_PER_CELL && c.chars[i] != 0; i++)
				n += term_utf8_encode(c.chars[i], u + n);
			buf_add(b, u, n);
		}
	}
}

/* The SGR sequence for the pen the terminal writes with now. */
static void
term_state_pen(const struct term *t, struct buf *b)
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
	struct buf b = { 0 };
	VTermPos cur;

	*out = NULL;
	*len = 0;
	/* Start from known modes whatever came before (main screen replay). */
	buf_add(&b, TERM_RESET_MODES, sizeof TERM_RESET_MODES - 1);
	if (t->alt && t->main_snap != NULL) {
		buf_add(&b, t->main_snap, t->main_snap_len);
		buf_add(&b, "\033[?1049h" TERM_RESET_MODES, 8 + sizeof TERM_RESET_MODES - 1);
	}
	buf_add(&b, "\033[0m", 4);
	term_paint(t, &b, t->cols, t->rows);
	if (t->top != 0 || t->bottom != 0)
		term_buf_printf(&b, "\033[%d;%dr", t->top + 1, t->bottom);
	if (t->noautowrap)
		buf_add(&b, "\033[?7l", 5);
	if (t->insert)
		buf_add(&b, "\033[4h", 4);
	if (t->g0_graphics)
		buf_add(&b, "\033(0", 3);
	if (t->reverse)
		buf_add(&b, "\033[?5h", 5);
	if (!t->cursor_visible)
		buf_add(&b, "\033[?25l", 6);
	term_state_pen(t, &b);
	vterm_state_get_cursorpos(t->st, &cur);
	if (t->origin) {
		buf_add(&b, "\033[?6h", 5);
		term_buf_printf(&b, "\033[%d;%dH", cur.row - t->top + 1, cur.col + 1);
	} else
		term_buf_printf(&b, "\033[%d;%dH", cur.row + 1, cur.col + 1);
	/* A character split between events stays pending after the replay. */
	if (t->nu8 > 0)
		buf_add(&b, t->u8, t->nu8);
	if (b.oom) {
		buf_free(&b);
		return -ENOMEM;
	}
	*out = b.data;
	*len = b.len;
	return 0;
}

/* Draw the screen on a terminal of cols x rows. */
int
term_render(const struct term *t, int cols, int rows, char **out, size_t *len)
{
	struct buf b = { 0 };
	int row, col;
	bool visible;

	*out = NULL;
	*len = 0;
	if (cols < 1)
		cols = 1;
	if (rows < 1)
		rows = 1;
	buf_add(&b, "\033[0m\033[H\033[2J", 11);
	term_paint(t, &b, cols, rows);
	term_state_pen(t, &b);
	term_cursor(t, &row, &col, &visible);
	if (row >= rows)
		row = rows - 1;
	if (col >= cols)
		col = cols - 1;
	term_buf_printf(&b, "\033[%d;%dH%s", row + 1, col + 1,
	    visible ? "\033[?25h" : "\033[?25l");
	if (b.oom) {
		buf_free(&b);
		return -ENOMEM;
	}
	*out = b.data;
	*len = b.len;
	return 0;
}
