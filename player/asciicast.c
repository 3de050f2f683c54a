/*
 * asciicast output: time formats, UTF-8 carried across events and JSON
 * strings as asciinema 3 writes them.
 */
#include <inttypes.h>
#include <string.h>

#include "asciicast.h"

/* Format v2 absolute time. */
size_t
asciicast_time_v2(uint64_t ns, char *buf, size_t cap)
{
	uint64_t us = ns / 1000;
	int n, len;

	n = snprintf(buf, cap, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
	if (n < 0 || (size_t)n >= cap)
		return 0;
	len = n;
	while (len > 2 && buf[len - 1] == '0' && buf[len - 2] != '.')
		len--;
	buf[len] = '\0';
	return (size_t)len;
}

/* Format a v3 interval, carrying the rounding error. */
size_t
asciicast_time_v3(uint64_t *clock_ms, uint64_t ns, char *buf, size_t cap)
{
	uint64_t abs_ms = ns / 1000000 + (ns % 1000000 >= 500000 ? 1 : 0);
	uint64_t iv = abs_ms > *clock_ms ? abs_ms - *clock_ms : 0;
	int n;

	*clock_ms += iv;
	n = snprintf(buf, cap, "%" PRIu64 ".%03" PRIu64, iv / 1000, iv % 1000);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/*
 * How a UTF-8 sequence starting with lead continues: its length (0 for a
 * byte that cannot start one) and the range its second byte must be in.
 */
static size_t
asciicast_lead(uint8_t b, uint8_t *lo, uint8_t *hi)
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

/* Convert one chunk to valid UTF-8, carrying a split character. */
size_t
asciicast_utf8(struct asciicast_utf8 *u, const uint8_t *p, size_t n, bool final, char *out)
{
	static const char repl[] = "\xef\xbf\xbd";
	uint8_t seq[4], lo, hi;
	size_t o = 0, i = 0, need, have;

	/* Work through the carried bytes, then the new ones, one character at a time. */
	for (;;) {
		uint8_t b;

		if (u->npending > 0)
			b = u->pending[0];
		else if (i < n)
			b = p[i];
		else
			break;
		need = asciicast_lead(b, &lo, &hi);
		/* Gather up to need bytes from pending then p. */
		have = 0;
		while (have < (need ? need : 1)) {
			uint8_t c;

			if (have < u->npending)
				c = u->pending[have];
			else if (i + (have - u->npending) < n)
				c = p[i + (have - u->npending)];
			else
				break;
			if (have > 0) {
				uint8_t l = have == 1 ? lo : 0x80, h = have == 1 ? hi : 0xbf;

				if (c < l || c > h)
					break;
			}
			seq[have++] = c;
		}
		if (need == 0) {
			memcpy(out + o, repl, 3), o += 3;
			have = 1;
		} else if (have == need) {
			memcpy(out + o, seq, need), o += need;
		} else if (u->npending + (n - i) == have && !final) {
			/* The input ends inside a character: carry it. */
			memcpy(u->pending, seq, have);
			u->npending = have;
			return o;
		} else {
			/* A maximal invalid subpart: one replacement character. */
			memcpy(out + o, repl, 3), o += 3;
		}
		/* Consume have bytes: pending first. */
		if (have <= u->npending) {
			memmove(u->pending, u->pending + have, u->npending - have);
			u->npending -= have;
		} else {
			i += have - u->npending;
			u->npending = 0;
		}
	}
	return o;
}

/* Write a JSON string literal as serde_json does. */
void
asciicast_json_string(FILE *out, const char *s, size_t len)
{
	size_t i, from = 0;

	fputc('"', out);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char tmp[8];

		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			if (c < 0x20) {
				snprintf(tmp, sizeof tmp, "\\u%04x", c);
				esc = tmp;
			}
			break;
		}
		if (esc == NULL)
			continue;
		fwrite(s + from, 1, i - from, out);
		fputs(esc, out);
		from = i + 1;
	}
	fwrite(s + from, 1, len - from, out);
	fputc('"', out);
}
