/*
 * The player's curses display: draws an emulator's screen into the
 * viewer's terminal (framed when it fits, through a pannable viewport when
 * it does not), a status line, the typed-input overlay and help.
 */
#ifndef PODGATE_DISPLAY_H
#define PODGATE_DISPLAY_H

#include <stdbool.h>
#include <stddef.h>

#include "search.h"
#include "term.h"

struct display;

/* What one frame shows. */
struct display_frame {
	struct term *term;
	int pan_row, pan_col;		/* in/out: top-left of the viewport, clamped */
	const struct search *highlight;	/* matches to highlight on screen, or NULL */
	const char *const *overlay;	/* typed lines, oldest first, or NULL */
	size_t noverlay;
	const char *status;
	const char *timeline;		/* a line drawn above the status line, or NULL */
	const char *const *help;	/* help lines, NULL-terminated, shown when not NULL */
};

/* Take over the terminal. */
int display_open(struct display **out);

/* Give the terminal back and free. */
void display_close(struct display *d);

/* Wait up to timeout_ms for a key: a curses key code, or -1. */
int display_key(struct display *d, int timeout_ms);

/* The viewer's terminal size. */
void display_size(const struct display *d, int *cols, int *rows);

/* Draw a frame. */
void display_draw(struct display *d, struct display_frame *f);

/*
 * Draw n rows of text (UTF-8 without escape sequences, as term_row_text
 * gives them; each NUL-terminated at its length) from the top, as many as
 * fit above the status line, each from column pan_col on and clipped to
 * the width, the matches of highlight (when not NULL) marked as on the
 * screen; then the status line.
 */
void display_draw_text(struct display *d, const char *const *rows, const size_t *lens, size_t n,
    int pan_col, const struct search *highlight, const char *status);

/*
 * Read a line on the status row after prompt into buf. Returns 0, or -1
 * when the viewer cancelled with Escape or ^C.
 */
int display_prompt(struct display *d, const char *prompt, char *buf, size_t cap);

#endif
