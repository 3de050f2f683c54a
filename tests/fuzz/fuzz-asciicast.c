/*
 * libFuzzer harness for the asciicast exporter: any bytes, read as a
 * recording and written as asciicast v2 and v3, must give lines that are
 * valid UTF-8 without raw control characters, and output bytes that were
 * valid UTF-8 must come out unchanged however they were split.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "asciicast.h"
#include "rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether p[0..n) is valid UTF-8 without control characters (DEL allowed). */
static int
valid_line(const char *p, size_t n)
{
	const uint8_t *s = (const uint8_t *)p;
	size_t i = 0, len, k;

	while (i < n) {
		if (s[i] < 0x20)
			return 0;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		len = s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : s[i] >= 0xc2 ? 2 : 0;
		if (len == 0 || s[i] > 0xf4 || i + len > n)
			return 0;
		for (k = 1; k < len; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		/* No overlong forms, surrogates or values past U+10FFFF. */
		if ((s[i] == 0xe0 && s[i + 1] < 0xa0) || (s[i] == 0xed && s[i + 1] > 0x9f) ||
		    (s[i] == 0xf0 && s[i + 1] < 0x90) || (s[i] == 0xf4 && s[i + 1] > 0x8f))
			return 0;
		i += len;
	}
	return 1;
}

/* Export the recording in fd as version v and check every line. */
static void
export_check(int fd, int v)
{
	struct asciicast_writer w;
	struct rec_header h;
	struct rec_reader *r;
	struct rec_event ev;
	char *buf = NULL, *line, *nl;
	size_t len = 0;
	FILE *out;

	if (lseek(fd, 0, SEEK_SET) != 0 || rec_reader_open(&r, fd, &h) < 0)
		return;
	if ((out = open_memstream(&buf, &len)) == NULL)
		__builtin_trap();
	if (asciicast_writer_init(&w, v, out, &h) < 0)
		__builtin_trap();
	while (rec_reader_next(r, &ev) == 1)
		if (asciicast_writer_event(&w, &ev) < 0)
			break;
	asciicast_writer_finish(&w);
	fclose(out);
	for (line = buf; line < buf + len; line = nl + 1) {
		if ((nl = memchr(line, '\n', (size_t)(buf + len - line))) == NULL)
			__builtin_trap();	/* every line ends with a newline */
		if (!valid_line(line, (size_t)(nl - line)))
			__builtin_trap();
		if (line != buf && (line[0] != '[' || nl[-1] != ']'))
			__builtin_trap();
	}
	free(buf);
	rec_header_clear(&h);
	rec_reader_free(r);
}

/* Split the input at points it chooses; valid UTF-8 must pass through unchanged. */
static void
carry_check(const uint8_t *data, size_t size)
{
	struct asciicast_utf8 u = { .npending = 0 };
	char *out = malloc(3 * (size + 4)), *all = malloc(3 * (size + 4) + 16);
	size_t i = 0, n, total = 0, step;

	if (out == NULL || all == NULL)
		__builtin_trap();
	while (i < size) {
		step = 1 + data[i] % 7;
		if (step > size - i)
			step = size - i;
		n = asciicast_utf8(&u, data + i, step, i + step == size, out);
		memcpy(all + total, out, n);
		total += n;
		i += step;
	}
	if (u.npending != 0)
		__builtin_trap();
	/* Valid input comes out byte for byte; anything else stays valid UTF-8. */
	if (valid_line((const char *)data, size) && (total != size || memcmp(all, data, size) != 0))
		__builtin_trap();
	for (i = 0; i < total; i++)
		if ((uint8_t)all[i] < 0x20)
			all[i] = ' ';
	if (!valid_line(all, total))
		__builtin_trap();
	free(out);
	free(all);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t clock = 0, t;
	char tbuf[48];
	int fd;

	carry_check(data, size);
	if (size >= 8) {
		memcpy(&t, data, 8);
		asciicast_time_v2(t, tbuf, sizeof tbuf);
		asciicast_time_v3(&clock, t, tbuf, sizeof tbuf);
		if (clock != t / 1000000 + (t % 1000000 >= 500000))
			__builtin_trap();
	}
	fd = memfd_create("fuzz", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		__builtin_trap();
	export_check(fd, 2);
	export_check(fd, 3);
	close(fd);
	return 0;
}
