/*
 * JSON output for recordings: string literals from arbitrary bytes and
 * msgpack objects rendered as JSON (for `info --json` and exports).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "rec.h"
#include "rec-int.h"

/* Length of the valid UTF-8 sequence at p[0..n), or 0 if invalid. */
static size_t
utf8_len(const uint8_t *p, size_t n)
{
	size_t len, i;
	uint32_t c;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, c = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, c = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, c = p[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are invalid. */
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return len;
}

/* Write bytes as a JSON string literal. */
void
rec_json_string(FILE *out, const void *s, size_t len)
{
	const uint8_t *p = s;
	size_t i = 0, n;

	fputc('"', out);
	while (i < len) {
		uint8_t c = p[i];

		if (c == '"' || c == '\\') {
			fputc('\\', out);
			fputc(c, out);
			i++;
		} else if (c == '\n') {
			fputs("\\n", out), i++;
		} else if (c == '\r') {
			fputs("\\r", out), i++;
		} else if (c == '\t') {
			fputs("\\t", out), i++;
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(out, "\\u%04x", c), i++;
		} else if ((n = utf8_len(p + i, len - i)) == 0) {
			fputs("\xef\xbf\xbd", out), i++;
		} else {
			fwrite(p + i, 1, n, out);
			i += n;
		}
	}
	fputc('"', out);
}

/* Write a msgpack object as JSON. */
void
rec_json_object(FILE *out, const msgpack_object *o)
{
	uint32_t i;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		fputs("null", out);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		fputs(o->via.boolean ? "true" : "false", out);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		fprintf(out, "%" PRIu64, o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		fprintf(out, "%" PRId64, o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		fprintf(out, "%.17g", o->via.f64);
		break;
	case MSGPACK_OBJECT_STR:
		rec_json_string(out, o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_BIN:
		rec_json_string(out, o->via.bin.ptr, o->via.bin.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		fputc('[', out);
		for (i = 0; i < o->via.array.size; i++) {
			if (i > 0)
				fputc(',', out);
			rec_json_object(out, &o->via.array.ptr[i]);
		}
		fputc(']', out);
		break;
	case MSGPACK_OBJECT_MAP:
		fputc('{', out);
		for (i = 0; i < o->via.map.size; i++) {
			const msgpack_object *k = &o->via.map.ptr[i].key;

			if (i > 0)
				fputc(',', out);
			if (k->type == MSGPACK_OBJECT_STR)
				rec_json_string(out, k->via.str.ptr, k->via.str.size);
			else
				fputs("\"?\"", out);
			fputc(':', out);
			rec_json_object(out, &o->via.map.ptr[i].val);
		}
		fputc('}', out);
		break;
	default:
		fputs("null", out);
		break;
	}
}

/* A one-line description of an error returned by librec. */
const char *
rec_strerror(int err)
{
	switch (err) {
	case -EBADMSG:
		return "not a podgate recording, or corrupt";
	case -ENODATA:
		return "truncated";
	case -EPROTONOSUPPORT:
		return "recording format version not supported";
	case -EPROTO:
		return "malformed recording";
	case -EMSGSIZE:
		return "payload too large";
	default:
		return strerror(-err);
	}
}
