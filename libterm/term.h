/*
 * libterm: the terminal emulator and renderer the player and the broker's
 * live screens share; libvterm behind a small interface that adds what
 * libvterm lacks for a recording player and for a watcher who joins late.
 *
 * - Snapshots: libvterm cannot copy its state, so term_snapshot() writes
 *   the escape string that rebuilds the screen (cells, attributes, the main
 *   screen behind an alternate screen, scroll region, modes, pen and
 *   cursor) and term_restore() replays one into a fresh emulator.
 * - Rendered lines: with a line callback set, every row is handed over as
 *   text (UTF-8, no escape sequences, trailing blanks trimmed) when it is
 *   completed: when the cursor leaves it, when it scrolls (including off the
 *   top, through sb_pushline), and for the final screen in term_finish().
 *   A row is reported again only when its text changed. Rows the terminal
 *   wrapped can be joined into the line they show (term_set_line_join).
 * - Rendering: term_render() draws the screen on another terminal, clipped
 *   to its size (a watcher's); it and term_snapshot() share one painter.
 *
 * Errors are negative errno values; out-parameters are cleared on entry.
 */
#ifndef PODGATE_TERM_H
#define PODGATE_TERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vterm.h>

/*
 * A completed row: its text and the sequence numbers (term_set_seq) of the
 * event that first changed it since it was last reported and of the event
 * being processed now.
 */
typedef void term_line_fn(void *arg, const char *text, size_t len, uint64_t since,
    uint64_t seq);

struct term;

/*
 * A new emulator of cols x rows, UTF-8, blank. cols is clamped to 2..1000
 * (libvterm cannot hold a wide character in one column), rows to 1..1000.
 */
int term_new(struct term **out, int cols, int rows);
void term_free(struct term *t);

/* Report completed rows to fn (NULL: stop reporting). */
void term_set_line_fn(struct term *t, term_line_fn *fn, void *arg);

/*
 * Join wrapped rows into the lines they show (off by default): a row
 * reported that holds a character in its last column is held, and the rows
 * reported after it are added to it, up to one that does not reach the
 * last column, so that a line longer than the screen is wide is reported
 * once, whole (since: its first row's; at most 64 KiB, the rest in the
 * next line). libvterm does not say which rows were wrapped: a row that is
 * exactly full is joined with the next row reported too. term_finish()
 * reports a line still held; turning joining off does as well.
 */
void term_set_line_join(struct term *t, bool on);

/*
 * The text of the line that starts at a row of the screen: the row and,
 * while a row reaches the last column, the row after it, as term_row_text()
 * gives each, into buf (always NUL-terminated). Returns the length.
 */
size_t term_line_text(const struct term *t, int row, char *buf, size_t cap);

/* The sequence number of the event whose bytes are written next. */
void term_set_seq(struct term *t, uint64_t seq);

/*
 * Feed output bytes. Long runs of plain text scrolling at the bottom of
 * the screen take a fast path that gives libvterm only their beginning and
 * their last screenful and reports the lines in between itself, exactly as
 * libvterm would have them reported (see fast.c).
 */
void term_write(struct term *t, const void *buf, size_t len);

/*
 * Output recorded without a PTY has no ONLCR: with onlcr on, every LF
 * written is given to the emulator as CR LF, as a terminal would have
 * shown it. Off by default; kept across term_resize and term_restore.
 */
void term_set_onlcr(struct term *t, bool on);

/*
 * Scrollback: keep the text of the rows that scroll off the top of the
 * main screen (term_row_text's form; blank rows too), the last max_lines
 * of them and at most max_bytes of text, as a terminal's history does.
 * Rows pushed while a snapshot is replayed (term_restore) are not kept.
 * The fast path is not taken while rows are kept: libvterm pushes every
 * row itself. 0 (the default) keeps none and forgets those kept; a new
 * bound also starts afresh. Returns 0 or -ENOMEM.
 */
int term_set_scrollback(struct term *t, size_t max_lines, size_t max_bytes);

/*
 * The rows kept, oldest first, and (in *dropped, when not NULL) how many
 * older ones were pushed out of the bounds since the scrollback was set.
 */
size_t term_scrollback(const struct term *t, uint64_t *dropped);

/* Row i of those kept (0 the oldest); *len gets its length. */
const char *term_scrollback_line(const struct term *t, size_t i, size_t *len);

/* Turn the fast path on (the default) or off, and the bytes it skipped. */
void term_set_fast(struct term *t, bool on);
uint64_t term_fast_skipped(const struct term *t);

/* Resize to cols x rows (clamped as term_new does). */
void term_resize(struct term *t, int cols, int rows);

/* Report every changed row of the screen (the final screen) as lines. */
void term_finish(struct term *t);

/* Size, cursor and a cell of the screen shown now. */
void term_size(const struct term *t, int *cols, int *rows);
void term_cursor(const struct term *t, int *row, int *col, bool *visible);
void term_cell(const struct term *t, int row, int col, VTermScreenCell *cell);

/* True when the screen changed since the last call (and clear the flag). */
bool term_take_damage(struct term *t);

/*
 * The text of one row as UTF-8 into buf (always NUL-terminated), trailing
 * blanks trimmed; cols[i], when not NULL, receives the column of byte i.
 * Returns the length.
 */
size_t term_row_text(const struct term *t, int row, char *buf, size_t cap, int *cols);

/*
 * The escape string that rebuilds the emulator's state in a fresh one,
 * in *out (malloc'd, the caller frees it) of *len bytes.
 */
int term_snapshot(struct term *t, char **out, size_t *len);

/*
 * Replace the emulator's state with a fresh cols x rows emulator that has
 * been fed snap. The line callback is kept but not called for the replay.
 */
int term_restore(struct term *t, int cols, int rows, const char *snap, size_t len);

/*
 * The escape string that draws the screen shown now on a terminal of cols
 * x rows (each at least 1): reset the pen, clear, each row's cells with
 * their attributes (clipped to the top-left cols x rows; a wide character
 * cut by the clip is left out), then the pen the emulator writes with, the
 * cursor position (clamped to the clip) and its visibility. Modes such as
 * the scroll region are not drawn: the terminal's own stay as they are.
 * *out is a new string (the caller frees it) of *len bytes.
 */
int term_render(const struct term *t, int cols, int rows, char **out, size_t *len);

#endif
