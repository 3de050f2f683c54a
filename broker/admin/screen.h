/*
 * A session's screen as a late joiner should see it: a libvterm emulator
 * fed every byte the target writes, and the escape string that draws its
 * current state on another terminal (docs/live.md).
 *
 * Errors are negative errno values; out-parameters are cleared on entry.
 */
#ifndef PODGATE_SCREEN_H
#define PODGATE_SCREEN_H

#include <stdbool.h>
#include <stddef.h>

struct screen;

/* The largest screen emulated; a larger terminal shows its top-left part. */
#define SCREEN_MAX_COLS 500
#define SCREEN_MAX_ROWS 200

/*
 * A blank screen of cols x rows (clamped to 1..SCREEN_MAX_COLS and
 * 1..SCREEN_MAX_ROWS). With crlf, a line
 * feed also returns the carriage (output of a session without a PTY).
 */
int screen_new(struct screen **out, int cols, int rows, bool crlf);

/* Free sc; NULL is ignored. */
void screen_free(struct screen *sc);

/* Feed bytes the target wrote (cheap: libvterm parses them in place). */
void screen_feed(struct screen *sc, const void *buf, size_t len);

/* Change the size (clamped as above), as the target's terminal was resized. */
void screen_resize(struct screen *sc, int cols, int rows);

/* The size now. */
void screen_size(const struct screen *sc, int *cols, int *rows);

/*
 * The escape string that draws the screen on a terminal of cols x rows:
 * reset the pen, clear, each row's cells with their attributes (clipped
 * to the top-left cols x rows), then the pen and the cursor position of
 * the emulator (the cursor is clamped to the clip). *out is a new string
 * (free it) of *len bytes.
 */
int screen_render(struct screen *sc, int cols, int rows, char **out, size_t *len);

#endif
