/*
 * What was typed: input bytes turned back into the lines a person typed,
 * the way a line editor would take them (backspace, ^U and ^W edit the
 * line, CR or LF ends it, escape sequences such as arrow keys are left
 * out, ^C ends the line with "^C" appended).
 */
#ifndef PODGATE_TYPED_H
#define PODGATE_TYPED_H

#include <stddef.h>
#include <stdint.h>

#define TYPED_MAX_LINE 65536

/*
 * A finished line: its text and, for each byte, the sequence number of the
 * event that typed it (seqs[len - 1] is the last); seq is the event that
 * ended the line.
 */
typedef void typed_line_fn(void *arg, const char *text, size_t len, const uint64_t *seqs,
    uint64_t seq);

struct typed {
	char line[TYPED_MAX_LINE];
	uint64_t seqs[TYPED_MAX_LINE];
	size_t len;
	int esc;		/* 0, or where in an escape sequence we are */
};

void typed_init(struct typed *t);

/* Take the input bytes of event seq; finished lines go to fn. */
void typed_feed(struct typed *t, const uint8_t *p, size_t n, uint64_t seq,
    typed_line_fn *fn, void *arg);

/* Hand the unfinished line, if any, to fn and start afresh. */
void typed_finish(struct typed *t, uint64_t seq, typed_line_fn *fn, void *arg);

#endif
