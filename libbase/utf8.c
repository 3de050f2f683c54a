/*
 * The UTF-8 check every part of podgate uses: which bytes form a
 * character, and how many one U+FFFD replaces when they do not.
 */
#include <string.h>

#include "base.h"

/*
 * How many bytes the character led by b has (0 when b cannot lead one),
 * and the range its second byte must be in: the narrowed ranges after
 * E0, ED, F0 and F4 are what rule out overlong forms, surrogates and code
 * points past U+10FFFF (RFC 3629's table).
 */
static size_t
utf8_lead(uint8_t b, uint8_t *lo, uint8_t *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		return 2;
	if (b >= 0xe0 && b <= 0xef) {
		if (b == 0xe0)
			*lo = 0xa0;
		else if (b == 0xed)
			*hi = 0x9f;
		return 3;
	}
	if (b >= 0xf0 && b <= 0xf4) {
		if (b == 0xf0)
			*lo = 0x90;
		else if (b == 0xf4)
			*hi = 0x8f;
		return 4;
	}
	return 0;
}

/* The length of the valid character at s, or 0 and the bytes one U+FFFD replaces. */
size_t
utf8_char(const void *s, size_t n, size_t *bad)
{
	const uint8_t *p = s;
	uint8_t lo, hi;
	size_t need, i;

	*bad = 1;
	if ((need = utf8_lead(p[0], &lo, &hi)) == 0)
		return 0;
	for (i = 1; i < need; i++) {
		if (i >= n || p[i] < lo || p[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need;
}

/* Whether s[0..n) is a valid character's start that the next bytes may complete. */
bool
utf8_cut(const void *s, size_t n)
{
	uint8_t lo, hi;
	size_t bad;

	if (n == 0 || utf8_char(s, n, &bad) != 0)
		return false;
	return bad == n && n < utf8_lead(*(const uint8_t *)s, &lo, &hi);
}

/* The code point of a valid character. */
uint32_t
utf8_decode(const void *s, size_t len)
{
	static const uint8_t mask[] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
	const uint8_t *p = s;
	uint32_t c = p[0] & mask[len];
	size_t i;

	for (i = 1; i < len; i++)
		c = c << 6 | (p[i] & 0x3f);
	return c;
}

/* Whether s[0..n) is all valid UTF-8. */
bool
utf8_valid(const void *s, size_t n)
{
	const uint8_t *p = s;
	size_t i = 0, len, bad;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((len = utf8_char(p + i, n - i, &bad)) == 0)
			return false;
		i += len;
	}
	return true;
}

/* Append s with invalid subparts replaced by U+FFFD. */
size_t
utf8_sanitize(struct buf *out, const void *s, size_t n)
{
	const uint8_t *p = s;
	size_t i = 0, from = 0, len, bad, replaced = 0;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((len = utf8_char(p + i, n - i, &bad)) != 0) {
			i += len;
			continue;
		}
		buf_add(out, p + from, i - from);
		buf_add(out, "\xef\xbf\xbd", 3);
		replaced++;
		i += bad;
		from = i;
	}
	buf_add(out, p + from, n - from);
	return replaced;
}
