/*
 * Times given on the command line (ls --since/--until): dates
 * YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z] (local time unless Z, which means
 * UTC; a space may stand for the T), durations ago like 30m, 2h, 3d, 1w,
 * 90s, and "now".
 */
#ifndef PODGATE_WHEN_H
#define PODGATE_WHEN_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse s with now_ns as the current time (UTC ns since the epoch) into
 * *out. Returns 0 or -EINVAL.
 */
int when_parse(const char *s, uint64_t now_ns, uint64_t *out);

/*
 * A time within a recording (play --start): seconds, M:SS or H:MM:SS, each
 * with an optional fraction ("90", "1:30.5", "1:02:03"). Returns 0 or
 * -EINVAL.
 */
int when_parse_offset(const char *s, uint64_t *ns);

/* A time within a recording as H:MM:SS.mmm (buf of 32 bytes). */
void when_format_offset(uint64_t ns, char *buf, size_t cap);

/* UTC time (ns since the epoch) as YYYY-MM-DDTHH:MM:SSZ (buf of 32 bytes). */
void when_format_utc(uint64_t ns, char *buf, size_t cap);

#endif
