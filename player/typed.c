/*
 * What was typed: input bytes back into lines.
 */
#include <string.h>

#include "typed.h"

enum { TYPED_GROUND, TYPED_ESC, TYPED_CSI, TYPED_SS3 };

/* Start with an empty line. */
void
typed_init(struct typed *t)
{
	t->len = 0;
	t->esc = TYPED_GROUND;
}

/* Remove the last character (a whole UTF-8 sequence). */
static void
typed_rubout(struct typed *t)
{
	while (t->len > 0) {
		t->len--;
		if (((uint8_t)t->line[t->len] & 0xc0) != 0x80)
			break;
	}
}

/* Append one byte. */
static void
typed_add(struct typed *t, char c, uint64_t seq)
{
	if (t->len >= TYPED_MAX_LINE)
		return;
	t->line[t->len] = c;
	t->seqs[t->len] = seq;
	t->len++;
}

/* End the line. */
static void
typed_emit(struct typed *t, uint64_t seq, typed_line_fn *fn, void *arg)
{
	if (t->len > 0 && fn != NULL)
		fn(arg, t->line, t->len, t->seqs, seq);
	t->len = 0;
}

/* Take one event's input bytes. */
void
typed_feed(struct typed *t, const uint8_t *p, size_t n, uint64_t seq, typed_line_fn *fn,
    void *arg)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t c = p[i];

		switch (t->esc) {
		case TYPED_ESC:
			t->esc = c == '[' ? TYPED_CSI : c == 'O' ? TYPED_SS3 : TYPED_GROUND;
			continue;
		case TYPED_CSI:
			if (c >= 0x40 && c <= 0x7e)
				t->esc = TYPED_GROUND;
			continue;
		case TYPED_SS3:
			t->esc = TYPED_GROUND;
			continue;
		default:
			break;
		}
		switch (c) {
		case 0x1b:
			t->esc = TYPED_ESC;
			break;
		case '\r':
		case '\n':
			typed_emit(t, seq, fn, arg);
			break;
		case 0x08:
		case 0x7f:
			typed_rubout(t);
			break;
		case 0x15:	/* ^U */
			t->len = 0;
			break;
		case 0x17:	/* ^W */
			while (t->len > 0 && t->line[t->len - 1] == ' ')
				t->len--;
			while (t->len > 0 && t->line[t->len - 1] != ' ')
				typed_rubout(t);
			break;
		case 0x03:	/* ^C */
			if (t->len > 0) {
				typed_add(t, '^', seq);
				typed_add(t, 'C', seq);
			}
			typed_emit(t, seq, fn, arg);
			break;
		case '\t':
			typed_add(t, '\t', seq);
			break;
		default:
			if (c >= 0x20)
				typed_add(t, (char)c, seq);
			break;
		}
	}
}

/* Hand over the unfinished line. */
void
typed_finish(struct typed *t, uint64_t seq, typed_line_fn *fn, void *arg)
{
	typed_emit(t, seq, fn, arg);
	t->esc = TYPED_GROUND;
}
