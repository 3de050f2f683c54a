/*
 * asciicast output (asciinema's format, versions 2 and 3): the pieces that
 * must come out exactly as asciinema 3 writes them, kept free of I/O so
 * they can be tested alone.
 */
#ifndef PODGATE_ASCIICAST_H
#define PODGATE_ASCIICAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base.h"
#include "rec.h"

/*
 * v2 time: seconds since the start with microseconds (truncated), trailing
 * zeros trimmed but one decimal kept ("1.0", "5.600001"). buf should hold
 * 32 bytes; returns the length.
 */
size_t asciicast_time_v2(uint64_t ns, char *buf, size_t cap);

/*
 * v3 time: the interval since the previous event, rounded to milliseconds
 * with the rounding error carried into the next interval (so the sum of
 * the printed intervals stays the rounded absolute time), with three
 * decimals. *clock_ms holds the absolute time already printed, in ms;
 * start it at 0.
 */
size_t asciicast_time_v3(uint64_t *clock_ms, uint64_t ns, char *buf, size_t cap);

/*
 * UTF-8 carried across events of one stream: a character split between two
 * reads is completed with the next event; bytes that can never form a
 * character become U+FFFD (one per maximal invalid subpart, as Unicode
 * recommends).
 */
struct asciicast_utf8 {
	uint8_t pending[4];
	size_t npending;
	uint64_t replaced;	/* U+FFFD written for bytes that were not UTF-8 */
};

/*
 * Convert p[0..n) to valid UTF-8 into out (which must hold 3 * (n + 4)
 * bytes), taking the bytes carried from the previous call first. With
 * final, an incomplete character at the end becomes U+FFFD; otherwise it
 * is carried. Returns the length written.
 */
size_t asciicast_utf8(struct asciicast_utf8 *u, const uint8_t *p, size_t n, bool final,
    char *out);

/*
 * Write valid UTF-8 as a JSON string literal the way serde_json does:
 * '"' and '\\' escaped, \b \f \n \r \t by name, other control characters
 * below 0x20 as \u00XX; everything else (DEL included) as is.
 */
void asciicast_json_string(FILE *out, const char *s, size_t len);

/*
 * Writes a recording as asciicast v2 or v3: the header line, then one line
 * per event ([time, "code", "data"]); o and e become "o", i stays "i", r is
 * "COLSxROWS", m the label, x the exit status as a decimal string (128 +
 * the signal number for a signal). Unknown codes are left out.
 */
struct asciicast_writer {
	int version;			/* 2 or 3 */
	FILE *out;
	uint64_t clock_ms;		/* v3: time printed so far */
	uint64_t last_ns;
	struct asciicast_utf8 carry[3];	/* o, e, i */
	struct buf conv;		/* an event's data made valid UTF-8 */
};

/*
 * Start writing version 2 or 3 to out (not taken over): the header line.
 * -EINVAL for another version, or -ENOMEM.
 */
int asciicast_writer_init(struct asciicast_writer *w, int version, FILE *out,
    const struct rec_header *h);

/* Write one event; -ENOMEM when out of memory. */
int asciicast_writer_event(struct asciicast_writer *w, const struct rec_event *ev);

/* Write what is still carried (as U+FFFD) and free the writer's buffers. */
int asciicast_writer_finish(struct asciicast_writer *w);

#endif
