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
 * test_fast_path in tests/unit/test-term.c compares this path with
 * libvterm on random output.
 */
#include <string.h>

#include "term-int.h"

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
const char *
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
		buf_add(&t->known, row, len + 1);
	else if (len > 0)
		term_emit_line(t, row, len, t->seq, len == (size_t)t->cols);
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
void
term_fast_run(struct term *t, const char **from, const char *a, const char *b)
{
	const char *p, *lf, *s1, *s2, *x;
	unsigned scrolls;
	VTermPos pos;
	int n;

	/* Modes that change how plain text is drawn. */
	if (t->fast_off || t->sb_max > 0 || t->rows < 2 || t->cols < 2 || t->alt || t->insert ||
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
	t->known.oom = false;
	if (t->line_fn != NULL && !t->quiet)
		term_fast_lines(t, s1, s2, b);
	t->fast_skipped += (uint64_t)(s2 - s1);
	t->damaged = true;
	*from = s2;
}
