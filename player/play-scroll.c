/*
 * podgate-player play's scrollback view, as tmux's copy mode: the rows that
 * scrolled off the top of the recorded screen up to the position, above
 * the rows of the screen itself, scrolled and searched while the player
 * stays paused where it was.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curses.h>

#include "display.h"
#include "index.h"
#include "play.h"
#include "search.h"

/*
 * What the view keeps: tmux's default history-limit of rows, and a bound
 * on their text for a recording whose rows are wide.
 */
#define PLAY_SB_LINES 10000
#define PLAY_SB_BYTES (16u << 20)

struct play_sb {
	struct play *p;
	struct term *term;	/* the screen at the position, the rows above it kept */
	size_t nsb;		/* rows kept from above the screen */
	size_t n;		/* rows in all: those kept, then the screen's */
	bool cut;		/* older rows may have been left out */
	size_t top;		/* the first row shown */
	int pan_col;
	struct search search;	/* the view's own search, once there is one */
	bool has_search;
	bool forward;		/* its direction: n goes on that way */
	size_t hit;		/* the row of the match shown */
	char message[160];
	char *row;		/* a screen row's text */
	size_t row_cap;
};

/* The rows shown at once: all but the status line. */
static size_t
play_sb_height(const struct play_sb *v)
{
	int cols, rows;

	display_size(v->p->disp, &cols, &rows);
	return rows > 1 ? (size_t)rows - 1 : 1;
}

/* Row i: one kept from above the screen, or one of the screen. */
static const char *
play_sb_row(struct play_sb *v, size_t i, size_t *len)
{
	if (i < v->nsb)
		return term_scrollback_line(v->term, i, len);
	*len = term_row_text(v->term, (int)(i - v->nsb), v->row, v->row_cap, NULL);
	return v->row;
}

/* Scroll so that row i is shown, in the middle when it was not. */
static void
play_sb_show(struct play_sb *v, size_t i)
{
	size_t h = play_sb_height(v);

	if (i >= v->top && i < v->top + h)
		return;
	v->top = i > h / 2 ? i - h / 2 : 0;
}

/* Keep the rows shown within the rows there are. */
static void
play_sb_clamp(struct play_sb *v)
{
	size_t h = play_sb_height(v);

	if (v->top + h > v->n)
		v->top = v->n > h ? v->n - h : 0;
}

/*
 * Find the next row matching s from row from (not included) in one
 * direction, going round past either end; true with its number in *at.
 */
static bool
play_sb_find(struct play_sb *v, const struct search *s, size_t from, bool forward, size_t *at)
{
	const char *text;
	size_t k, i, len, so, eo;

	for (k = 1; k <= v->n; k++) {
		i = forward ? (from + k) % v->n : (from + v->n - k % v->n) % v->n;
		text = play_sb_row(v, i, &len);
		if (len > 0 && search_find(s, text, len, 0, &so, &eo)) {
			*at = i;
			return true;
		}
	}
	return false;
}

/* The search the view shows: its own, else the player's match shown, or NULL. */
static const struct search *
play_sb_pattern(const struct play_sb *v)
{
	if (v->has_search)
		return &v->search;
	return v->p->has_search && v->p->match_shown ? &v->p->search : NULL;
}

/* Go to the next match of the search shown in a direction. */
static void
play_sb_next(struct play_sb *v, bool forward)
{
	const struct search *s = play_sb_pattern(v);
	size_t at;

	if (s == NULL) {
		snprintf(v->message, sizeof v->message, "no search");
		return;
	}
	if (!play_sb_find(v, s, v->hit, forward, &at)) {
		snprintf(v->message, sizeof v->message, "no match for '%.100s'", s->pat);
		return;
	}
	if (forward ? at <= v->hit : at >= v->hit)
		snprintf(v->message, sizeof v->message, "search wrapped");
	v->hit = at;
	play_sb_show(v, at);
}

/* / or ?: ask for a pattern and go to its first match that way. */
static void
play_sb_search(struct play_sb *v, bool forward)
{
	struct search s;
	char buf[256], err[200];
	const char *pat;
	bool regex;

	if (!play_ask_pattern(v->p, forward, buf, sizeof buf, &pat, &regex))
		return;
	if (search_init(&s, pat, regex, v->p->icase, err, sizeof err) < 0) {
		snprintf(v->message, sizeof v->message, "bad pattern: %.100s", err);
		return;
	}
	if (v->has_search)
		search_free(&v->search);
	v->search = s;
	v->has_search = true;
	v->forward = forward;
	/* From the edge of the rows shown, as less searches from its page. */
	v->hit = forward ? (v->top + v->n - 1) % v->n : v->top + play_sb_height(v);
	if (v->hit >= v->n)
		v->hit = 0;
	play_sb_next(v, forward);
}

/* Draw the rows shown and the status line. */
static void
play_sb_draw(struct play_sb *v)
{
	const struct search *hl = play_sb_pattern(v);
	size_t h = play_sb_height(v), i, k, *lens;
	char status[512], kept[96] = "", **rows;

	play_sb_clamp(v);
	rows = calloc(h, sizeof *rows);
	lens = calloc(h, sizeof *lens);
	for (k = 0, i = v->top; rows != NULL && lens != NULL && k < h && i < v->n; k++, i++) {
		const char *text = play_sb_row(v, i, &lens[k]);

		/* Screen rows share one buffer: each is copied. */
		if ((rows[k] = strndup(text, lens[k])) == NULL)
			break;
	}
	if (v->cut)
		snprintf(kept, sizeof kept, "  the last %zu rows kept, not older ones", v->nsb);
	snprintf(status, sizeof status, " SCROLLBACK rows %zu-%zu / %zu%s  %s%sq:back",
	    v->n > 0 ? v->top + 1 : 0, v->top + k, v->n, kept, v->message,
	    v->message[0] != '\0' ? "  " : "");
	display_draw_text(v->p->disp, (const char *const *)rows, lens, k, v->pan_col, hl, status);
	for (i = 0; rows != NULL && i < k; i++)
		free(rows[i]);
	free(rows);
	free(lens);
}

/* Act on a key; false to leave the view. */
static bool
play_sb_key(struct play_sb *v, int c)
{
	size_t h = play_sb_height(v);

	v->message[0] = '\0';
	switch (c) {
	case 'q':
	case 27:	/* Escape */
	case 3:		/* Ctrl-C */
		return false;
	case KEY_UP:
	case 'k':
		if (v->top > 0)
			v->top--;
		break;
	case KEY_DOWN:
	case 'j':
		v->top++;
		break;
	case KEY_PPAGE:
	case 2:		/* Ctrl-B */
		v->top = v->top > h - 1 ? v->top - (h - 1) : 0;
		break;
	case KEY_NPAGE:
	case 6:		/* Ctrl-F */
		v->top += h - 1 > 0 ? h - 1 : 1;
		break;
	case 'g':
	case KEY_HOME:
		v->top = 0;
		break;
	case 'G':
	case KEY_END:
		v->top = v->n;
		break;
	case 'H':
	case KEY_LEFT:
	case KEY_SLEFT:
		v->pan_col = v->pan_col > 8 ? v->pan_col - 8 : 0;
		break;
	case 'L':
	case KEY_RIGHT:
	case KEY_SRIGHT:
		v->pan_col += 8;
		break;
	case '/':
	case '?':
		play_sb_search(v, c == '/');
		break;
	case 'n':
	case 'N':
		play_sb_next(v, c == 'n' ? v->forward : !v->forward);
		break;
	default:
		break;
	}
	play_sb_clamp(v);
	return true;
}

/* v: the scrollback view, until q or Escape; the player stays paused where it was. */
void
play_scroll(struct play *p)
{
	struct play_sb v;
	int cols, rows, c, r;

	memset(&v, 0, sizeof v);
	v.p = p;
	p->paused = true;
	/* The replay can take a while (index_cursor_scrollback): say so meanwhile. */
	snprintf(p->message, sizeof p->message, "reading the scrollback");
	play_draw(p);
	p->message[0] = '\0';
	if ((r = index_cursor_scrollback(p->cur, PLAY_SB_LINES, PLAY_SB_BYTES, &v.term)) < 0) {
		snprintf(p->message, sizeof p->message, "scrollback: %s", rec_strerror(r));
		return;
	}
	term_size(v.term, &cols, &rows);
	v.row_cap = (size_t)cols * VTERM_MAX_CHARS_PER_CELL * 4 + 1;
	if ((v.row = malloc(v.row_cap)) == NULL) {
		snprintf(p->message, sizeof p->message, "out of memory");
		term_free(v.term);
		return;
	}
	v.cut = r == 1;
	v.nsb = term_scrollback(v.term, NULL);
	v.n = v.nsb + (size_t)rows;
	v.forward = true;
	/* The screen at the bottom, as it is; a search hit on it in view. */
	v.top = v.n;
	play_sb_clamp(&v);
	v.pan_col = p->pan_col;
	/* n and N go on from the hit with the player's search. */
	if (play_sb_pattern(&v) != NULL && play_sb_find(&v, &p->search, 0, false, &v.hit))
		play_sb_show(&v, v.hit);
	for (;;) {
		play_sb_draw(&v);
		if ((c = display_key(p->disp, -1)) < 0 || c == KEY_RESIZE)
			continue;
		if (!play_sb_key(&v, c))
			break;
	}
	if (v.has_search)
		search_free(&v.search);
	free(v.row);
	term_free(v.term);
}
