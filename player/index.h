/*
 * The index of one recording, built by reading it once: keyframes of the
 * emulator (to seek anywhere by replaying from the nearest one), markers,
 * the lines typed, and a log of every rendered line for search. A cursor
 * replays the recording from any point through an emulator.
 *
 * Events are numbered from 0 in file order ("seq"); "the state at seq"
 * means the state after events 0..seq-1 were applied.
 */
#ifndef PODGATE_INDEX_H
#define PODGATE_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "player.h"
#include "search.h"
#include "term.h"
#include "typed.h"

struct index_kf {
	uint64_t seq;		/* the state at seq */
	uint64_t offset;	/* file offset of event seq */
	uint64_t time_ns;	/* time of event seq - 1 (0 when seq is 0) */
	int cols, rows;
	char *snap;		/* term_snapshot() */
	size_t snap_len;
};

struct index_marker {
	uint64_t seq, time_ns;
	char *label;
};

/* A shell prompt the shell marked (OSC 133;A). */
struct index_prompt {
	uint64_t seq, time_ns;	/* the event that drew it */
	int status;		/* exit status of the command before (OSC 133;D), or -1 */
};

struct index_input {
	uint64_t seq;		/* the event that ended the line */
	uint64_t time_ns;
	char *text;
	size_t len;
	uint64_t *seqs;		/* the event that typed each byte */
};

/* Where a rendered line or a typed line lies in the recording. */
enum index_kind { INDEX_SCREEN = 0, INDEX_INPUT = 1 };

struct index_match {
	enum index_kind kind;
	uint64_t seq_from;	/* screen: the event that first changed the row */
	uint64_t seq_to;	/* the event during which the line was completed */
	uint64_t time_ns;	/* its time */
	size_t input;		/* INDEX_INPUT: position in index.inputs */
	const char *text;	/* the whole line (in the index's log, not NUL-terminated) */
	size_t len;
};

struct index_builder;

struct index {
	const struct player_file *file;
	uint64_t first_offset;	/* offset of event 0 */
	int cols, rows;		/* terminal size at the start */
	struct index_kf *kf;
	size_t nkf;
	struct index_marker *markers;
	size_t nmarkers;
	struct index_input *inputs;
	size_t ninputs;
	struct index_prompt *prompts;	/* in order */
	size_t nprompts;
	uint64_t nevents;	/* events that could be read */
	uint64_t duration_ns;	/* time of the last event */
	uint64_t output_bytes;
	const char *state;	/* complete, incomplete, truncated, corrupt */
	char error[200];	/* how reading ended, when damaged */
	int rc;			/* rec_reader_next's last result */
	bool exited;
	int exit_status;
	char exit_signal[32];
	bool sealed;		/* a seal was read */
	struct index_builder *live;	/* following a file still being written */
	bool live_more;		/* index_extend stopped with more to read */
	/*
	 * Log of rendered and typed lines, for search, in an unlinked file in
	 * $TMPDIR. When it cannot be written (no space), the recording is
	 * still indexed for playing and log_error says why search is missing.
	 */
	int log_fd;
	uint8_t *log;
	size_t log_len;
	char log_error[160];
};

/*
 * Read the whole recording f (opened with player_open, at its first event)
 * and index it. progress, when not NULL, is called now and then with the
 * bytes read so far. f must stay open while the index lives.
 */
int index_build(struct index **out, struct player_file *f,
    void (*progress)(void *arg, uint64_t done), void *arg);
void index_free(struct index *ix);

/*
 * index_build for a recording still being written (play -f): the end of
 * what is written so far, even inside an event, is not damage (state
 * "live"; the build reads what the file held when it started), and
 * index_extend indexes what was written since, a few MiB at a time
 * (live_more says there is more: call it again soon). It returns 1 when
 * there were new events, 0 when none, or a negative error; on damage the
 * index ends there, with the state and error index_build would give. index_end
 * stops following and finishes the index as index_build would have. The
 * search log is mapped anew when it grows: matches found before an
 * extension point into the old map and must be searched for again.
 */
int index_build_live(struct index **out, struct player_file *f,
    void (*progress)(void *arg, uint64_t done), void *arg);
int index_extend(struct index *ix);
int index_end(struct index *ix);

/* The keyframe to start from to reach the state at seq / at time t. */
const struct index_kf *index_kf_for_seq(const struct index *ix, uint64_t seq);
const struct index_kf *index_kf_for_time(const struct index *ix, uint64_t t);

/*
 * Every line of the log that matches s, in order, into *out (malloc'd) and
 * *n; at most max matches (*more is set when there were more).
 */
int index_search(const struct index *ix, const struct search *s, size_t max,
    struct index_match **out, size_t *n, bool *more);

/*
 * The redacted spans an R event lists for the next o, e or i event (byte
 * ranges of its payload holding a redaction marker); the emulator is given
 * them in reverse video, so that a marker is not mistaken for printed text
 * that looks like one. At most INDEX_MAX_SPANS are kept.
 */
#define INDEX_MAX_SPANS 64
struct index_spans {
	uint64_t at[INDEX_MAX_SPANS], len[INDEX_MAX_SPANS];
	size_t n;
};

/* Read the spans of an R event from its raw bytes (none when malformed). */
void index_spans_parse(struct index_spans *sp, const uint8_t *raw, size_t len);

/*
 * Write bytes [from, to) of an output event's payload to t, the spans in
 * it in reverse video.
 */
void index_feed(struct term *t, const uint8_t *data, size_t from, size_t to,
    const struct index_spans *sp);

/* A replay position: an emulator and a reader at the next event. */
struct index_cursor {
	struct index *ix;
	struct term *term;
	struct rec_reader *reader;
	uint64_t seq;		/* next event */
	uint64_t time_ns;	/* time of the last event applied */
	struct rec_event next;
	bool has_next;
	size_t partial;		/* bytes of the next (output) event already applied */
	struct index_spans spans;	/* from an R event, for the next data event */
	bool at_end;
	struct typed typed;	/* the line being typed */
};

int index_cursor_new(struct index_cursor **out, struct index *ix);
void index_cursor_free(struct index_cursor *c);

/* After index_extend: a cursor that had reached the end reads on. */
int index_cursor_resume(struct index_cursor *c);

/* Go to the state at seq (clamped to the end). */
int index_cursor_seek_seq(struct index_cursor *c, uint64_t seq);

/* Go to the state after every event at or before time t. */
int index_cursor_seek_time(struct index_cursor *c, uint64_t t);

/*
 * The next event without applying it: 1 with *ev pointing at it (valid
 * until the cursor moves), 0 at the end, or a negative error.
 */
int index_cursor_peek(struct index_cursor *c, const struct rec_event **ev);

/* Apply the next event: 1, 0 at the end, or a negative error. */
int index_cursor_step(struct index_cursor *c);

/*
 * Go to the moment match m first became visible: the first state in which
 * a row shows the matched line drawn at least up to a match of s (screen
 * lines), or in which the typed line holds the match (typed lines). An
 * output event that goes on to scroll the match away is applied only up to
 * the end of the matched line (c->partial bytes); stepping applies the rest.
 */
int index_cursor_reveal(struct index_cursor *c, const struct search *s,
    const struct index_match *m);

/*
 * The rows that scrolled off the top of the screen up to c's position (as
 * far as c has applied its next event), kept in the scrollback of a new
 * emulator that shows c's screen (*out; the caller frees it), at most
 * max_lines rows and max_bytes of text (term_set_scrollback): the
 * recording is replayed from a keyframe far enough back to fill them, or
 * from its start, replaying at most 64 MiB of it. Returns 1 when older
 * rows may have been left out (the bounds were reached, or the replay did
 * not start at the beginning), 0 when every row that scrolled off is kept,
 * or a negative errno.
 */
int index_cursor_scrollback(const struct index_cursor *c, size_t max_lines, size_t max_bytes,
    struct term **out);

#endif
