/*
 * podgate-player play, shared between its files: the player's state
 * (cmd-play.c runs it), its screen (play-screen.c draws it) and its
 * scrollback view (play-scroll.c).
 */
#ifndef PODGATE_PLAY_H
#define PODGATE_PLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "display.h"
#include "index.h"
#include "search.h"

#define NS 1000000000ull
#define PLAY_OVERLAY_LINES 6

/* The player's state. */
struct play {
	struct index *ix;
	struct index_cursor *cur;
	struct display *disp;
	uint64_t pos;		/* playback position, ns since the start */
	uint64_t wall;		/* monotonic time of the last update */
	double speed;		/* 1: as recorded */
	uint64_t idle_ns;	/* longest pause played (0: no limit) */
	uint64_t seeked;	/* where the last seek landed: a pause counts from there */
	bool paused;
	bool overlay;
	bool help;
	int pan_row, pan_col;
	/* Search. */
	bool regex, icase;
	bool has_search;
	struct search search;
	struct index_match *matches;
	size_t nmatches;
	bool more_matches;
	size_t match;		/* the match shown, when nmatches > 0 */
	bool match_shown;
	char message[160];
	char pattern[256];	/* the last search */
	bool pattern_regex;
	struct buf copied;	/* screens copied with y, printed when play ends */
	const char *state;	/* complete, truncated, ... (trust_state) */
	const char *integrity;	/* verified, unknown-key, ... (trust_word) */
	/* -f: following a recording still being written. */
	uint64_t follow_polled;	/* monotonic time of the last look */
	uint64_t follow_grew;	/* ... of the last time it had grown */
	bool follow;		/* -f */
	bool loading;		/* an s3:// recording, still being downloaded */
	bool downloaded;	/* ... and now whole (or as whole as it will be) */
};

/* The keys, as the help overlay lists them. */
extern const char *const play_help[];

/* Draw the current state. */
void play_draw(struct play *p);

/*
 * Ask for a search pattern after "/" (forward) or "?" on the status line,
 * into buf: false when the reviewer gave none. *pat is the pattern and
 * *regex whether it is a regular expression (--regex, or a "re:" prefix,
 * which *pat leaves out).
 */
bool play_ask_pattern(struct play *p, bool forward, char *buf, size_t cap, const char **pat,
    bool *regex);

/*
 * The scrollback view (play-scroll.c): the rows that scrolled off the top
 * up to the position, until the reviewer leaves it; playback is paused.
 */
void play_scroll(struct play *p);

#endif
