/*
 * A session's screen in the broker: libterm's emulator, sized within the
 * broker's bounds and fed in large pieces, and its renderer for a watcher
 * who joins late.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin/screen.h"
#include "term.h"

/*
 * libterm's emulator feeds long runs of plain scrolling text past libvterm,
 * so keeping a screen costs little even when a session floods.
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

/* Clamp a dimension to 1..max. */
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

/* Draw the screen, clipped to cols x rows. */
int
screen_render(struct screen *sc, int cols, int rows, char **out, size_t *len)
{
	screen_flush(sc);
	return term_render(sc->t, cols, rows, out, len);
}
