/*
 * libFuzzer harness for the times given on the player's command line
 * (ls --since/--until, play --start): any bytes through when_parse and
 * when_parse_offset. Never a crash; an accepted offset formats within its
 * buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "when.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint64_t now = 1764345600ULL * 1000000000ULL;	/* 2025-11-28T16:00:00Z */
	uint64_t t;
	char *s, buf[32];

	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (when_parse(s, now, &t) == 0) {
		when_format_utc(t, buf, sizeof buf);
		if (memchr(buf, '\0', sizeof buf) == NULL)
			__builtin_trap();
	}
	if (when_parse_offset(s, &t) == 0) {
		when_format_offset(t, buf, sizeof buf);
		if (memchr(buf, '\0', sizeof buf) == NULL)
			__builtin_trap();
	}
	free(s);
	return 0;
}
