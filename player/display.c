/*
 * The player's curses display. The recording is only ever drawn through
 * curses from the emulator's cells: no recorded byte reaches the viewer's
 * terminal.
 */
#include <errno.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include <curses.h>

#include "display.h"

#define DISPLAY_PAIR_SLOTS 4096

struct display {
	SCREEN *screen;
	bool color;
	int colors;
	int max_pairs;
	int next_pair;
	int hl_pair, frame_pair;
	/* (fg, bg) -> pair, open addressing; fg and bg are curses colours + 1. */
	struct { int key; short pair; } slots[DISPLAY_PAIR_SLOTS];
	int *hl_cols;		/* highlight flags for one row */
	int hl_cap;
};

/* Take over the terminal. */
int
display_open(struct display **out)
{
	struct display *d;

	*out = NULL;
	if ((d = calloc(1, sizeof *d)) == NULL)
		return -ENOMEM;
	setlocale(LC_ALL, "");
	if ((d->screen = newterm(NULL, stdout, stdin)) == NULL) {
		free(d);
		return -ENOTTY;
	}
	set_term(d->screen);
	raw();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	meta(stdscr, TRUE);
	intrflush(stdscr, FALSE);
	set_escdelay(25);
	/* Shift+arrows as xterm and tmux send them, whatever terminfo says. */
	define_key("\033[1;2D", KEY_SLEFT);
	define_key("\033[1;2C", KEY_SRIGHT);
	define_key("\033[1;2A", KEY_SR);
	define_key("\033[1;2B", KEY_SF);
	if (has_colors()) {
		start_color();
		use_default_colors();
		d->color = true;
		d->colors = COLORS;
		d->max_pairs = COLOR_PAIRS < 32767 ? COLOR_PAIRS : 32767;
		d->next_pair = 1;
	}
	curs_set(0);
	*out = d;
	return 0;
}

/* Give the terminal back. */
void
display_close(struct display *d)
{
	if (d == NULL)
		return;
	endwin();
	delscreen(d->screen);
	free(d->hl_cols);
	free(d);
}

/* Wait for a key. */
int
display_key(struct display *d, int timeout_ms)
{
	int c;

	timeout(timeout_ms);
	c = getch();
	return c == ERR ? -1 : c;
}

/* The terminal size. */
void
display_size(const struct display *d, int *cols, int *rows)
{
	*cols = COLS;
	*rows = LINES;
}

/* The xterm 256-colour index nearest to an RGB colour. */
static int
display_rgb256(int r, int g, int b)
{
	static const int steps[6] = { 0, 95, 135, 175, 215, 255 };
	int ri = 0, gi = 0, bi = 0, i, gray, gidx;
	long dc, dg;

	for (i = 0; i < 6; i++) {
		if (abs(steps[i] - r) < abs(steps[ri] - r))
			ri = i;
		if (abs(steps[i] - g) < abs(steps[gi] - g))
			gi = i;
		if (abs(steps[i] - b) < abs(steps[bi] - b))
			bi = i;
	}
	gray = (r + g + b) / 3;
	gidx = gray < 8 ? 0 : gray > 238 ? 23 : (gray - 8) / 10;
	dc = (long)(steps[ri] - r) * (steps[ri] - r) + (long)(steps[gi] - g) * (steps[gi] - g) +
	    (long)(steps[bi] - b) * (steps[bi] - b);
	dg = (long)(8 + 10 * gidx - r) * (8 + 10 * gidx - r) +
	    (long)(8 + 10 * gidx - g) * (8 + 10 * gidx - g) +
	    (long)(8 + 10 * gidx - b) * (8 + 10 * gidx - b);
	return dg < dc ? 232 + gidx : 16 + 36 * ri + 6 * gi + bi;
}

/* A curses colour for a libvterm colour (-1: the default). */
static int
display_color(const struct display *d, const VTermColor *c, bool fg)
{
	int idx;

	if (fg ? VTERM_COLOR_IS_DEFAULT_FG(c) : VTERM_COLOR_IS_DEFAULT_BG(c))
		return -1;
	if (VTERM_COLOR_IS_INDEXED(c))
		idx = c->indexed.idx;
	else
		idx = display_rgb256(c->rgb.red, c->rgb.green, c->rgb.blue);
	if (idx < d->colors)
		return idx;
	if (idx >= 16 && idx < 232) {	/* cube to the 8 basic colours */
		int v = idx - 16, r = v / 36, g = v / 6 % 6, b = v % 6;

		idx = (r >= 3 ? 1 : 0) | (g >= 3 ? 2 : 0) | (b >= 3 ? 4 : 0);
	} else if (idx >= 232)
		idx = idx < 244 ? 0 : 7;
	else
		idx &= 7;
	return idx < d->colors ? idx : -1;
}

/* The colour pair for fg/bg, made on first use. */
static short
display_pair(struct display *d, int fg, int bg)
{
	int key = (fg + 1) * 512 + (bg + 1), h, i;

	if (!d->color || (fg == -1 && bg == -1))
		return 0;
	h = (key * 2654435761u) % DISPLAY_PAIR_SLOTS;
	for (i = 0; i < DISPLAY_PAIR_SLOTS; i++, h = (h + 1) % DISPLAY_PAIR_SLOTS) {
		if (d->slots[h].key == key)
			return d->slots[h].pair;
		if (d->slots[h].key == 0)
			break;
	}
	if (d->next_pair >= d->max_pairs || i == DISPLAY_PAIR_SLOTS ||
	    d->next_pair > DISPLAY_PAIR_SLOTS / 2) {
		/* Full: start over (every frame is drawn whole). */
		memset(d->slots, 0, sizeof d->slots);
		d->next_pair = 1;
		d->hl_pair = d->frame_pair = 0;
		h = (key * 2654435761u) % DISPLAY_PAIR_SLOTS;
	}
	if (d->next_pair >= d->max_pairs)
		return 0;
	init_pair((short)d->next_pair, (short)fg, (short)bg);
	d->slots[h].key = key;
	d->slots[h].pair = (short)d->next_pair;
	return (short)d->next_pair++;
}

/* Draw one cell at y, x. */
static void
display_cell(struct display *d, int y, int x, const VTermScreenCell *c, bool screen_reverse,
    bool hl)
{
	wchar_t wc[VTERM_MAX_CHARS_PER_CELL + 1];
	attr_t a = A_NORMAL;
	cchar_t cc;
	short pair;
	int i, n = 0;

	for (i = 0; i < VTERM_MAX_CHARS_PER_CELL && c->chars[i] != 0; i++) {
		uint32_t ch = c->chars[i];

		if (ch < 0x20 || (ch >= 0x7f && ch < 0xa0) || ch > 0x10ffff)
			ch = '?';
		wc[n++] = (wchar_t)ch;
	}
	if (n == 0)
		wc[n++] = L' ';
	wc[n] = L'\0';
	if (c->attrs.bold)
		a |= A_BOLD;
	if (c->attrs.underline)
		a |= A_UNDERLINE;
	if (c->attrs.italic)
		a |= A_ITALIC;
	if (c->attrs.blink)
		a |= A_BLINK;
	if ((bool)c->attrs.reverse != screen_reverse)
		a |= A_REVERSE;
	if (hl) {
		if (d->hl_pair == 0)
			d->hl_pair = display_pair(d, COLOR_BLACK, COLOR_YELLOW);
		pair = (short)d->hl_pair;
		a = A_BOLD | (pair == 0 ? A_STANDOUT : 0);
	} else
		pair = display_pair(d, display_color(d, &c->fg, true),
		    display_color(d, &c->bg, false));
	if (setcchar(&cc, wc, a, pair, NULL) == ERR)
		return;
	mvadd_wch(y, x, &cc);
}

/* Mark the columns of a row that show a match. */
static void
display_row_highlight(struct display *d, struct term *t, int row, const struct search *s,
    int cols)
{
	size_t cap = (size_t)cols * VTERM_MAX_CHARS_PER_CELL * 4 + 1, len, from = 0, so, eo, k;
	char *buf = malloc(cap);
	int *map = malloc(cap * sizeof *map);

	memset(d->hl_cols, 0, (size_t)cols * sizeof *d->hl_cols);
	if (buf == NULL || map == NULL)
		goto out;
	len = term_row_text(t, row, buf, cap, map);
	while (from < len && search_find(s, buf, len, from, &so, &eo)) {
		for (k = so; k < eo && k < len; k++)
			d->hl_cols[map[k]] = 1;
		from = eo > so ? eo : so + 1;
	}
out:
	free(buf);
	free(map);
}

/* Draw the emulator's screen into the viewport. */
static void
display_screen(struct display *d, struct display_frame *f, int avail_rows)
{
	int cols, rows, y0 = 0, x0 = 0, vis_rows, vis_cols, r, c, cy, cx;
	bool framed, visible;
	VTermScreenCell cell;
	bool screen_reverse = false;

	term_size(f->term, &cols, &rows);
	framed = cols + 2 <= COLS && rows + 2 <= avail_rows;
	if (framed) {
		y0 = 1;
		x0 = 1;
		f->pan_row = f->pan_col = 0;
		if (d->frame_pair == 0 && d->color)
			d->frame_pair = display_pair(d, COLOR_BLUE, -1);
		attrset(COLOR_PAIR(d->frame_pair));
		mvaddch(0, 0, ACS_ULCORNER);
		mvhline(0, 1, ACS_HLINE, cols);
		mvaddch(0, cols + 1, ACS_URCORNER);
		mvvline(1, 0, ACS_VLINE, rows);
		mvvline(1, cols + 1, ACS_VLINE, rows);
		mvaddch(rows + 1, 0, ACS_LLCORNER);
		mvhline(rows + 1, 1, ACS_HLINE, cols);
		mvaddch(rows + 1, cols + 1, ACS_LRCORNER);
		attrset(A_NORMAL);
	}
	vis_rows = rows < avail_rows ? rows : avail_rows;
	vis_cols = cols < COLS ? cols : COLS;
	if (f->pan_row > rows - vis_rows)
		f->pan_row = rows - vis_rows;
	if (f->pan_col > cols - vis_cols)
		f->pan_col = cols - vis_cols;
	if (f->pan_row < 0)
		f->pan_row = 0;
	if (f->pan_col < 0)
		f->pan_col = 0;
	if (d->hl_cap < cols) {
		int *p = realloc(d->hl_cols, (size_t)cols * sizeof *p);

		if (p != NULL) {
			d->hl_cols = p;
			d->hl_cap = cols;
		}
	}
	for (r = 0; r < vis_rows; r++) {
		bool hl_row = f->highlight != NULL && d->hl_cap >= cols;

		if (hl_row)
			display_row_highlight(d, f->term, r + f->pan_row, f->highlight, cols);
		for (c = 0; c < vis_cols; c++) {
			int sc = c + f->pan_col;

			term_cell(f->term, r + f->pan_row, sc, &cell);
			if (cell.chars[0] == (uint32_t)-1) {
				if (c == 0)	/* the right half of a wide character */
					mvaddch(y0 + r, x0, ' ');
				continue;
			}
			if (cell.width == 2 && c == vis_cols - 1) {
				cell.chars[0] = ' ';
				cell.chars[1] = 0;
			}
			display_cell(d, y0 + r, x0 + c, &cell, screen_reverse,
			    hl_row && d->hl_cols[sc]);
		}
	}
	term_cursor(f->term, &cy, &cx, &visible);
	cy -= f->pan_row;
	cx -= f->pan_col;
	if (visible && cy >= 0 && cy < vis_rows && cx >= 0 && cx < vis_cols) {
		move(y0 + cy, x0 + cx);
		curs_set(1);
	} else
		curs_set(0);
}

/* Draw the typed-input overlay above the status line. */
static void
display_overlay(struct display *d, const struct display_frame *f, int avail_rows)
{
	int n = (int)f->noverlay, h, top, i;

	if (n > avail_rows - 2)
		n = avail_rows - 2;
	if (n < 1)
		n = 1;
	h = n + 2;
	top = avail_rows - h;
	if (top < 0)
		return;
	attrset(A_REVERSE);
	for (i = 0; i < h; i++)
		mvhline(top + i, 0, ' ', COLS);
	mvaddstr(top, 1, " typed ");
	if (f->noverlay == 0)
		mvaddstr(top + 1, 2, "(nothing typed yet)");
	for (i = 0; i < n && (size_t)i < f->noverlay; i++) {
		const char *s = f->overlay[f->noverlay - (size_t)n + (size_t)i];

		mvaddnstr(top + 1 + i, 2, s, COLS - 4 > 0 ? COLS - 4 : 0);
	}
	attrset(A_NORMAL);
}

/* Draw the help screen. */
static void
display_help(const struct display_frame *f, int avail_rows)
{
	int i;

	erase();
	for (i = 0; f->help[i] != NULL && i < avail_rows; i++)
		mvaddnstr(i, 1, f->help[i], COLS - 2 > 0 ? COLS - 2 : 0);
}

/* Draw a frame. */
void
display_draw(struct display *d, struct display_frame *f)
{
	int avail_rows = LINES - 1;

	erase();
	if (f->timeline != NULL && LINES >= 8) {
		avail_rows--;
		mvaddnstr(LINES - 2, 0, f->timeline, COLS);
	}
	if (f->help != NULL)
		display_help(f, avail_rows);
	else {
		display_screen(d, f, avail_rows);
		if (f->overlay != NULL)
			display_overlay(d, f, avail_rows);
	}
	attrset(A_REVERSE);
	mvhline(LINES - 1, 0, ' ', COLS);
	mvaddnstr(LINES - 1, 0, f->status, COLS);
	attrset(A_NORMAL);
	if (f->help != NULL)
		curs_set(0);
	refresh();
}

/*
 * Draw a row of text at y from column pan_col on, clipped to the width, the
 * matches of hl (or none) marked as on the screen. Characters the screen
 * would not show as they are (controls, bytes that are not UTF-8) are '?';
 * combining characters are left out.
 */
static void
display_text_row(struct display *d, int y, const char *s, size_t len, int pan_col,
    const struct search *hl)
{
	VTermScreenCell cell;
	mbstate_t mb;
	size_t i, k, so, eo, from = 0;
	uint8_t *mark = NULL;
	wchar_t wc;
	int col = 0, w, x;

	if (hl != NULL && (mark = calloc(len + 1, 1)) != NULL) {
		while (from < len && search_find(hl, s, len, from, &so, &eo)) {
			memset(mark + so, 1, (eo < len ? eo : len) - so);
			from = eo > so ? eo : so + 1;
		}
	}
	memset(&mb, 0, sizeof mb);
	for (i = 0; i < len && col - pan_col < COLS; i += k) {
		k = mbrtowc(&wc, s + i, len - i, &mb);
		if (k == (size_t)-1 || k == (size_t)-2 || k == 0) {
			memset(&mb, 0, sizeof mb);
			wc = L'?';
			k = 1;
		}
		if ((w = wcwidth(wc)) < 0) {
			wc = L'?';
			w = 1;
		}
		if (w == 0)
			continue;
		x = col - pan_col;
		col += w;
		if (x < 0 || x + w > COLS)
			continue;
		memset(&cell, 0, sizeof cell);
		cell.chars[0] = (uint32_t)wc;
		cell.width = (char)w;
		cell.fg.type = VTERM_COLOR_DEFAULT_FG;
		cell.bg.type = VTERM_COLOR_DEFAULT_BG;
		display_cell(d, y, x, &cell, false, mark != NULL && mark[i]);
	}
	free(mark);
}

/* Draw rows of text and the status line. */
void
display_draw_text(struct display *d, const char *const *rows, const size_t *lens, size_t n,
    int pan_col, const struct search *highlight, const char *status)
{
	size_t i;

	erase();
	for (i = 0; i < n && (int)i < LINES - 1; i++)
		display_text_row(d, (int)i, rows[i], lens[i], pan_col, highlight);
	attrset(A_REVERSE);
	mvhline(LINES - 1, 0, ' ', COLS);
	mvaddnstr(LINES - 1, 0, status, COLS);
	attrset(A_NORMAL);
	curs_set(0);
	refresh();
}

/* Read a line on the status row. */
int
display_prompt(struct display *d, const char *prompt, char *buf, size_t cap)
{
	size_t len = 0;
	int c;

	buf[0] = '\0';
	curs_set(1);
	for (;;) {
		attrset(A_NORMAL);
		mvhline(LINES - 1, 0, ' ', COLS);
		mvaddnstr(LINES - 1, 0, prompt, COLS);
		addnstr(buf, COLS - (int)strlen(prompt) > 0 ? COLS - (int)strlen(prompt) : 0);
		refresh();
		timeout(-1);
		c = getch();
		if (c == 27 || c == 3 || c == 7) {
			buf[0] = '\0';
			return -1;
		}
		if (c == '\r' || c == '\n' || c == KEY_ENTER)
			return 0;
		if (c == KEY_BACKSPACE || c == 127 || c == 8) {
			/* Remove a whole UTF-8 character. */
			while (len > 0 && ((unsigned char)buf[--len] & 0xc0) == 0x80)
				;
			buf[len] = '\0';
		} else if (c == 21) {
			len = 0;
			buf[0] = '\0';
		} else if (c >= 0x20 && c < 0x100 && len + 1 < cap) {
			buf[len++] = (char)c;
			buf[len] = '\0';
		}
	}
}
