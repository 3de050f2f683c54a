/*
 * A session's screen in the broker: libvterm with its screen layer, and a
 * renderer that turns the cells back into escape sequences for a watcher
 * who joins late. The emulator is the player's (player/term.c); the
 * rendering draws only what a watcher's terminal needs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vterm.h>

#include "admin/screen.h"
#include "term.h"

/*
 * The emulator is the player's (player/term.c): it feeds long runs of plain
 * scrolling text past libvterm, so keeping a screen costs little even
 * when a session floods.
 */
struct screen {
	struct term *t;
	int cols, rows;
	/*
	 * Output not fed yet. Feeding in large pieces lets the emulator skip
	 * most of a flood (it draws only the last screenful of plain text);
	 * the screen is brought up to date before anyone looks at it.
	 */
	char *pend;
	size_t plen;
};

/* Most output held back before the emulator sees it. */
#define SCREEN_PENDING_MAX (64u * 1024)

/* Feed what is held back. */
static void
screen_flush(struct screen *sc)
{
	if (sc->plen > 0) {
		term_write(sc->t, sc->pend, sc->plen);
		sc->plen = 0;
	}
}

/* A growing string. */
struct screen_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

/* Append n bytes. */
static void
screen_buf_add(struct screen_buf *b, const char *s, size_t n)
{
	char *np;
	size_t cap;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Append formatted text. */
static void __attribute__((format(printf, 2, 3)))
screen_buf_printf(struct screen_buf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		screen_buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Clamp a dimension to 1..1000. */
static int
screen_dim(int v, int max)
{
	return v < 1 ? 1 : v > max ? max : v;
}

/* A new blank screen. */
int
screen_new(struct screen **out, int cols, int rows, bool crlf)
{
	struct screen *sc;
	int r;

	*out = NULL;
	if ((sc = calloc(1, sizeof *sc)) == NULL)
		return -ENOMEM;
	sc->cols = screen_dim(cols, SCREEN_MAX_COLS);
	sc->rows = screen_dim(rows, SCREEN_MAX_ROWS);
	if ((r = term_new(&sc->t, sc->cols, sc->rows)) < 0) {
		free(sc);
		return r;
	}
	term_set_fast(sc->t, true);
	if (crlf)
		term_write(sc->t, "\033[20h", 5);	/* LNM: LF is CR LF */
	*out = sc;
	return 0;
}

/* Free the screen. */
void
screen_free(struct screen *sc)
{
	if (sc == NULL)
		return;
	term_free(sc->t);
	free(sc->pend);
	free(sc);
}

/* Feed target output (held back up to SCREEN_PENDING_MAX bytes). */
void
screen_feed(struct screen *sc, const void *buf, size_t len)
{
	if (sc == NULL || len == 0)
		return;
	if (sc->plen + len > SCREEN_PENDING_MAX)
		screen_flush(sc);
	if (len >= SCREEN_PENDING_MAX ||
	    (sc->pend == NULL && (sc->pend = malloc(SCREEN_PENDING_MAX)) == NULL)) {
		term_write(sc->t, buf, len);
		return;
	}
	memcpy(sc->pend + sc->plen, buf, len);
	sc->plen += len;
}

/* Resize. */
void
screen_resize(struct screen *sc, int cols, int rows)
{
	if (sc == NULL)
		return;
	screen_flush(sc);
	sc->cols = screen_dim(cols, SCREEN_MAX_COLS);
	sc->rows = screen_dim(rows, SCREEN_MAX_ROWS);
	term_resize(sc->t, sc->cols, sc->rows);
}

/* The size now. */
void
screen_size(const struct screen *sc, int *cols, int *rows)
{
	*cols = sc->cols;
	*rows = sc->rows;
}

/* SGR parameters for a colour (nothing for the default). */
static void
screen_sgr_color(struct screen_buf *b, const VTermColor *c, bool fg)
{
	if (fg ? VTERM_COLOR_IS_DEFAULT_FG(c) : VTERM_COLOR_IS_DEFAULT_BG(c))
		return;
	if (VTERM_COLOR_IS_INDEXED(c)) {
		if (c->indexed.idx < 8)
			screen_buf_printf(b, ";%d", (fg ? 30 : 40) + c->indexed.idx);
		else if (c->indexed.idx < 16)
			screen_buf_printf(b, ";%d", (fg ? 90 : 100) + c->indexed.idx - 8);
		else
			screen_buf_printf(b, ";%d;5;%d", fg ? 38 : 48, c->indexed.idx);
	} else {
		screen_buf_printf(b, ";%d;2;%d;%d;%d", fg ? 38 : 48, c->rgb.red, c->rgb.green,
		    c->rgb.blue);
	}
}

/* The attributes a cell is drawn with. */
struct screen_pen {
	bool bold, italic, blink, reverse, strike;
	unsigned underline;
	VTermColor fg, bg;
};

/* Whether two pens draw differently. */
static bool
screen_pen_differs(const struct screen_pen *x, const struct screen_pen *y)
{
	return x->bold != y->bold || x->italic != y->italic || x->blink != y->blink ||
	    x->reverse != y->reverse || x->strike != y->strike ||
	    x->underline != y->underline ||
	    !vterm_color_is_equal(&x->fg, &y->fg) ||
	    (x->fg.type & VTERM_COLOR_DEFAULT_MASK) != (y->fg.type & VTERM_COLOR_DEFAULT_MASK) ||
	    !vterm_color_is_equal(&x->bg, &y->bg) ||
	    (x->bg.type & VTERM_COLOR_DEFAULT_MASK) != (y->bg.type & VTERM_COLOR_DEFAULT_MASK);
}

/* The SGR sequence that sets a pen from scratch. */
static void
screen_sgr(struct screen_buf *b, const struct screen_pen *p)
{
	screen_buf_add(b, "\033[0", 3);
	if (p->bold)
		screen_buf_add(b, ";1", 2);
	if (p->italic)
		screen_buf_add(b, ";3", 2);
	if (p->underline == VTERM_UNDERLINE_SINGLE)
		screen_buf_add(b, ";4", 2);
	else if (p->underline == VTERM_UNDERLINE_DOUBLE)
		screen_buf_add(b, ";21", 3);
	else if (p->underline != 0)
		screen_buf_add(b, ";4", 2);
	if (p->blink)
		screen_buf_add(b, ";5", 2);
	if (p->reverse)
		screen_buf_add(b, ";7", 2);
	if (p->strike)
		screen_buf_add(b, ";9", 2);
	screen_sgr_color(b, &p->fg, true);
	screen_sgr_color(b, &p->bg, false);
	screen_buf_add(b, "m", 1);
}

/* Whether a cell looks blank on a cleared terminal. */
static bool
screen_cell_blank(const VTermScreenCell *c)
{
	return (c->chars[0] == 0 || c->chars[0] == ' ') && !c->attrs.reverse &&
	    !c->attrs.underline && !c->attrs.strike && VTERM_COLOR_IS_DEFAULT_BG(&c->bg);
}

/* The pen of a cell. */
static void
screen_cell_pen(const VTermScreenCell *c, struct screen_pen *p)
{
	memset(p, 0, sizeof *p);
	p->bold = c->attrs.bold;
	p->italic = c->attrs.italic;
	p->blink = c->attrs.blink;
	p->reverse = c->attrs.reverse;
	p->strike = c->attrs.strike;
	p->underline = c->attrs.underline;
	p->fg = c->fg;
	p->bg = c->bg;
}

/* The pen the target writes with now. */
static void
screen_state_pen(struct screen *sc, struct screen_pen *p)
{
	VTermState *st = vterm_obtain_state(term_vterm(sc->t));
	VTermValue v;

	memset(p, 0, sizeof *p);
	vterm_state_get_penattr(st, VTERM_ATTR_BOLD, &v);
	p->bold = v.boolean;
	vterm_state_get_penattr(st, VTERM_ATTR_UNDERLINE, &v);
	p->underline = (unsigned)v.number;
	vterm_state_get_penattr(st, VTERM_ATTR_ITALIC, &v);
	p->italic = v.boolean;
	vterm_state_get_penattr(st, VTERM_ATTR_BLINK, &v);
	p->blink = v.boolean;
	vterm_state_get_penattr(st, VTERM_ATTR_REVERSE, &v);
	p->reverse = v.boolean;
	vterm_state_get_penattr(st, VTERM_ATTR_STRIKE, &v);
	p->strike = v.boolean;
	vterm_state_get_penattr(st, VTERM_ATTR_FOREGROUND, &v);
	p->fg = v.color;
	vterm_state_get_penattr(st, VTERM_ATTR_BACKGROUND, &v);
	p->bg = v.color;
}

/* Draw the screen, clipped to cols x rows. */
int
screen_render(struct screen *sc, int cols, int rows, char **out, size_t *len)
{
	struct screen_buf b = { 0 };
	struct screen_pen pen, cur;
	VTermScreen *vs;
	VTermScreenCell c;
	VTermPos pos;
	bool cursor_visible;
	char u[4 * VTERM_MAX_CHARS_PER_CELL];
	int maxr, maxc, last, i;
	bool moved;
	size_t n;

	*out = NULL;
	*len = 0;
	screen_flush(sc);
	vs = vterm_obtain_screen(term_vterm(sc->t));
	maxr = rows < sc->rows ? rows : sc->rows;
	maxc = cols < sc->cols ? cols : sc->cols;
	screen_buf_add(&b, "\033[0m\033[H\033[2J", 11);
	memset(&cur, 0, sizeof cur);
	vterm_color_indexed(&cur.fg, 7);
	cur.fg.type |= VTERM_COLOR_DEFAULT_FG;
	vterm_color_indexed(&cur.bg, 0);
	cur.bg.type |= VTERM_COLOR_DEFAULT_BG;
	for (pos.row = 0; pos.row < maxr; pos.row++) {
		last = -1;
		for (pos.col = 0; pos.col < maxc; pos.col++) {
			vterm_screen_get_cell(vs, pos, &c);
			if (c.chars[0] != (uint32_t)-1 && !screen_cell_blank(&c))
				last = pos.col;
		}
		if (last < 0)
			continue;
		screen_buf_printf(&b, "\033[%d;1H", pos.row + 1);
		moved = false;
		for (pos.col = 0; pos.col <= last; pos.col++) {
			vterm_screen_get_cell(vs, pos, &c);
			if (c.chars[0] == (uint32_t)-1) {
				moved = true;	/* the right half of a wide character */
				continue;
			}
			if (c.width > 1 && pos.col + c.width > maxc)
				break;		/* a wide character cut by the clip */
			if (moved) {
				screen_buf_printf(&b, "\033[%d;%dH", pos.row + 1, pos.col + 1);
				moved = false;
			}
			screen_cell_pen(&c, &pen);
			if (screen_pen_differs(&pen, &cur)) {
				screen_sgr(&b, &pen);
				cur = pen;
			}
			if (c.chars[0] == 0) {
				screen_buf_add(&b, " ", 1);
				continue;
			}
			for (i = 0, n = 0; i < VTERM_MAX_CHARS_PER_CELL && c.chars[i] != 0; i++)
				n += term_utf8_encode(c.chars[i], u + n);
			screen_buf_add(&b, u, n);
		}
	}
	screen_state_pen(sc, &pen);
	screen_sgr(&b, &pen);
	term_cursor(sc->t, &pos.row, &pos.col, &cursor_visible);
	if (pos.row >= maxr)
		pos.row = maxr - 1;
	if (pos.col >= maxc)
		pos.col = maxc - 1;
	screen_buf_printf(&b, "\033[%d;%dH%s", pos.row + 1, pos.col + 1,
	    cursor_visible ? "\033[?25h" : "\033[?25l");
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}
