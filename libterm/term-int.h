/*
 * libterm's insides, shared by its files and by nothing else:
 *
 *   term.c    the emulator: libvterm, its callbacks, rendered lines, sizes
 *   scan.c    the write path and the scanner that follows the modes
 *             libvterm keeps to itself
 *   fast.c    the plain-text fast path
 *   render.c  a screen as text (rows) and as escape strings (snapshots,
 *             a drawing for another terminal)
 */
#ifndef PODGATE_TERM_INT_H
#define PODGATE_TERM_INT_H

#include "base.h"
#include "term.h"

/* The largest side. */
#define TERM_MAX_DIM 1000
/*
 * The fewest columns: libvterm 0.1.4 writes through a NULL pointer when a
 * wide character is written on a screen of one column.
 */
#define TERM_MIN_COLS 2
/*
 * Most bytes handed to libvterm at once: it decodes a write's text into an
 * array on the stack as long as the write, so one large output event given
 * whole overflows the stack.
 */
#define TERM_VT_CHUNK (16u * 1024)
#define SCAN_MAX_PARAMS 16
/*
 * Most parameter separators of a CSI sequence given to libvterm: 0.1.4
 * writes past its array of 16 arguments on the 17th. Those after are kept
 * from it, with their digits (the parameters are ignored, as xterm ignores
 * those past its own limit).
 */
#define TERM_VT_MAX_SEPS 15
/* The longest line made of wrapped rows (term_set_line_join); longer ones are cut. */
#define TERM_MAX_JOIN (64u * 1024)

enum scan_state { SCAN_GROUND, SCAN_ESC, SCAN_ESC_INTER, SCAN_CSI, SCAN_CHARSET, SCAN_STRING };

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
	bool lrmm;		/* DECLRMM: left and right margins */
	bool g0_other;		/* G0 is not ASCII */
	int gl;			/* the character set shifted in (SO, SI, LS2, LS3) */
	bool u8_unsure;		/* libvterm may hold part of a UTF-8 character */
	bool printed;		/* libvterm has printed an ASCII character */
	bool last_ascii;	/* ... and the last character printed was ASCII */
	char last_char;		/* ... that character */
	unsigned rep;		/* the repeats of a REP being written (scan.c) */
	enum scan_state sc;
	char sc_lead;		/* CSI private marker, or 0 */
	char sc_inter;		/* CSI intermediate byte, or 0 */
	unsigned sc_param[SCAN_MAX_PARAMS];
	int sc_nparam;
	bool sc_str_esc;	/* an ESC inside a string */
	unsigned sc_seps;	/* separators in the CSI sequence so far */
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
	bool join;		/* term_set_line_join */
	struct buf joined;	/* rows held: each reached the last column */
	uint64_t join_since;	/* ... the since of the first */
	int pushed;		/* rows pushed off the top in the current scroll */
	char *text;
	size_t text_cap;

	/* Scrollback (term_set_scrollback): a ring of the rows pushed off the top. */
	struct term_sb_line {
		char *text;
		size_t len;
	} *sb;
	size_t sb_max, sb_max_bytes;	/* 0: none kept */
	size_t sb_first, sb_n;	/* the oldest, and how many */
	size_t sb_bytes;
	uint64_t sb_dropped;	/* rows pushed out of the ring */

	/* The plain-text fast path. */
	bool fast_off;
	struct buf known;	/* texts of rows libvterm is about to scroll up */
	size_t known_pos;	/* the next one */
	uint64_t fast_skipped;	/* bytes kept from libvterm */
	unsigned full_scrolls;	/* whole-screen scrolls by one row seen */
};

/* term.c */
void term_vt_write(VTerm *vt, const char *p, size_t len);
char *term_text_buf(struct term *t, size_t *cap);
void term_sync_push(struct term *t);
void term_capture_row(struct term *t, int row, bool blank_ok);
void term_keep_main(struct term *t);
void term_flush_rows(struct term *t);
void term_emit_line(struct term *t, const char *text, size_t len, uint64_t since, bool full);
bool term_cells_full(const VTermScreenCell *last, const VTermScreenCell *before);

/* scan.c */
void term_scan_reset_modes(struct term *t);
void term_scan_reset_charsets(struct term *t);
void term_write_bytes(struct term *t, const void *buf, size_t len);

/* fast.c */
const char *term_find_special(const char *p, const char *end);
void term_fast_run(struct term *t, const char **from, const char *a, const char *b);

/* render.c */
size_t term_cells_text(const VTermScreenCell *cells, int n, char *buf, size_t cap, int *cols);
/* Encode code point c as UTF-8 into p (4 bytes); returns the length. */
size_t term_utf8_encode(uint32_t c, char *p);

#endif
