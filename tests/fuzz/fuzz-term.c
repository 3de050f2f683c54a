/*
 * libFuzzer harness for libterm: any output, in any pieces, with resizes,
 * drawings for a watcher and snapshots, through an emulator with the
 * plain-text fast path and one without, both reporting lines (the first
 * joining wrapped rows, the second keeping a small scrollback). Never a
 * crash or a hang: every session's output reaches the broker's screens.
 *
 * The input: two bytes for the size, then operations: 0xf0 and two bytes
 * resizes both, 0xf1 and two bytes draws the first on a terminal of that
 * size, 0xf2 replays a snapshot of the first into the second; any other
 * byte n writes the next n bytes to both.
 */
#include <stdint.h>
#include <stdlib.h>

#include "term.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Count the lines reported. */
static void
fuzz_line(void *arg, const char *text, size_t len, uint64_t since, uint64_t seq)
{
	(*(uint64_t *)arg)++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct term *a = NULL, *b = NULL;
	uint64_t na = 0, nb = 0;
	size_t i, n, len;
	int cols, rows;
	char *s;

	if (size < 2)
		return 0;
	if (term_new(&a, data[0] % 90, data[1] % 40) < 0 ||
	    term_new(&b, data[0] % 90, data[1] % 40) < 0)
		goto out;
	term_set_fast(b, false);
	term_set_line_fn(a, fuzz_line, &na);
	term_set_line_fn(b, fuzz_line, &nb);
	term_set_line_join(a, true);
	if (term_set_scrollback(b, 50, 2048) < 0)
		goto out;
	for (i = 2; i < size; i += n) {
		n = data[i++];
		if (n == 0xf0 && size - i >= 2) {
			term_resize(a, data[i] % 90, data[i + 1] % 40);
			term_resize(b, data[i] % 90, data[i + 1] % 40);
			n = 2;
		} else if (n == 0xf1 && size - i >= 2) {
			if (term_render(a, data[i] % 100, data[i + 1] % 50, &s, &len) == 0)
				free(s);
			n = 2;
		} else if (n == 0xf2) {
			term_size(a, &cols, &rows);
			if (term_snapshot(a, &s, &len) == 0) {
				(void)term_restore(b, cols, rows, s, len);
				free(s);
			}
			n = 0;
		} else {
			if (n > size - i)
				n = size - i;
			term_write(a, data + i, n);
			term_write(b, data + i, n);
		}
	}
	term_finish(a);
	term_finish(b);
	/* Every row kept reads back, and every line of the screen. */
	for (i = 0; i < term_scrollback(b, NULL); i++)
		(void)term_scrollback_line(b, i, &len);
	term_size(a, &cols, &rows);
	for (n = 0; n < (size_t)rows; n++) {
		char line[4096];

		(void)term_line_text(a, (int)n, line, sizeof line);
	}
out:
	term_free(a);
	term_free(b);
	return 0;
}
