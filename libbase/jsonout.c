/*
 * JSON text through jansson. jansson builds, orders and escapes; its text
 * passes through a small re-speller on the way out, because each format
 * podgate writes documents its own spelling of control characters (the
 * audit log's exact bytes, asciinema's serde_json spelling) and jansson
 * has one: \b \f \n \r \t by name, other controls as \u00XX, DEL as is.
 *
 * Re-spelling jansson's output needs no parser: outside strings jansson
 * writes neither a backslash nor DEL, and inside them a backslash always
 * starts an escape, so a three-state scan over the text is exact.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base.h"

struct jsonout {
	struct buf *out;
	unsigned esc;		/* JSONOUT_* */
	int state;		/* 0 text, 1 after '\', 2 in \u's hex digits */
	unsigned code;		/* the \u escape's value so far */
	int digits;
};

/* Spell control character (or \u-escaped code unit) c as esc asks. */
static void
jsonout_control(struct jsonout *j, unsigned c)
{
	static const char named[] = "\b\f\n\r\t", names[] = "bfnrt", hex[] = "0123456789abcdef";
	const char *p;
	char tmp[8];
	int i;

	if ((j->esc & JSONOUT_SHORT) && c != 0 && c < 0x20 &&
	    (p = memchr(named, (int)c, sizeof named - 1)) != NULL) {
		tmp[0] = '\\';
		tmp[1] = names[p - named];
		buf_add(j->out, tmp, 2);
		return;
	}
	memcpy(tmp, "\\u", 2);
	for (i = 0; i < 4; i++)
		tmp[2 + i] = hex[(c >> (12 - 4 * i)) & 0xf];
	buf_add(j->out, tmp, 6);
}

/* Where the text from i on needs re-spelling: a backslash, or DEL when escaped. */
static size_t
jsonout_plain(const struct jsonout *j, const char *text, size_t i, size_t n)
{
	const char *bs, *del;

	bs = memchr(text + i, '\\', n - i);
	if ((j->esc & JSONOUT_DEL) &&
	    (del = memchr(text + i, 0x7f, (bs != NULL ? (size_t)(bs - text) : n) - i)) != NULL)
		return (size_t)(del - text);
	return bs != NULL ? (size_t)(bs - text) : n;
}

/* jansson's dump callback: copy text, re-spelling escapes. */
static int
jsonout_cb(const char *text, size_t n, void *data)
{
	struct jsonout *j = data;
	size_t i = 0, from;
	unsigned char c;

	while (i < n) {
		c = (unsigned char)text[i];
		switch (j->state) {
		case 0:
			from = i;
			i = jsonout_plain(j, text, i, n);
			buf_add(j->out, text + from, i - from);
			if (i == n)
				break;
			if (text[i] == 0x7f)
				jsonout_control(j, 0x7f);
			else
				j->state = 1;
			i++;
			break;
		case 1:
			j->state = 0;
			i++;
			switch (c) {
			case 'b': jsonout_control(j, '\b'); break;
			case 'f': jsonout_control(j, '\f'); break;
			case 'n': jsonout_control(j, '\n'); break;
			case 'r': jsonout_control(j, '\r'); break;
			case 't': jsonout_control(j, '\t'); break;
			case 'u':
				j->state = 2;
				j->code = 0;
				j->digits = 0;
				break;
			default:	/* \" \\ \/ */
				buf_add(j->out, "\\", 1);
				buf_add(j->out, &text[i - 1], 1);
				break;
			}
			break;
		default:
			j->code = j->code << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
			i++;
			if (++j->digits == 4) {
				jsonout_control(j, j->code);
				j->state = 0;
			}
			break;
		}
	}
	return j->out->oom ? -1 : 0;
}

/* A jansson string from any bytes. */
json_t *
jsonout_string(const void *s, size_t n)
{
	struct buf b = { 0 };
	json_t *v;

	if (utf8_valid(s, n))
		return json_stringn_nocheck(n > 0 ? s : "", n);
	utf8_sanitize(&b, s, n);
	v = b.oom ? NULL : json_stringn_nocheck(b.data, b.len);
	buf_free(&b);
	return v;
}

/* Append v as JSON text. */
int
jsonout_dump(const json_t *v, size_t flags, unsigned esc, struct buf *out)
{
	struct jsonout j = { .out = out, .esc = esc };

	if (v == NULL || json_dump_callback(v, jsonout_cb, &j, flags) != 0) {
		out->oom = true;
		return -ENOMEM;
	}
	return out->oom ? -ENOMEM : 0;
}

/* Write v as JSON text to f. */
int
jsonout_print(FILE *f, const json_t *v, size_t flags, unsigned esc)
{
	struct buf b = { 0 };
	int r;

	if ((r = jsonout_dump(v, flags, esc, &b)) == 0 && fwrite(b.data, 1, b.len, f) != b.len)
		r = -EIO;
	buf_free(&b);
	return r;
}

/* Write bytes as a JSON string literal to f. */
int
jsonout_print_string(FILE *f, const void *s, size_t n, unsigned esc)
{
	json_t *v = jsonout_string(s, n);
	int r;

	r = jsonout_print(f, v, JSON_ENCODE_ANY, esc);
	json_decref(v);
	return r;
}
