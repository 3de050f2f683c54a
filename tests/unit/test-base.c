/*
 * Unit tests for libbase: the growable buffer, the UTF-8 check, and JSON
 * text written through jansson with each escaping (exact bytes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "unit.h"

/* Appends grow the buffer, keep it NUL-terminated and survive reset. */
static void
test_buf(void)
{
	struct buf b = { 0 };
	size_t i;

	buf_add(&b, "", 0);
	assert(b.len == 0 && b.data != NULL && b.data[0] == '\0');
	for (i = 0; i < 1000; i++)
		buf_printf(&b, "%zu,", i);
	assert(!b.oom && strncmp(b.data, "0,1,2,", 6) == 0);
	assert(strcmp(b.data + b.len - 4, "999,") == 0 && strlen(b.data) == b.len);
	assert(b.cap > b.len);
	buf_reset(&b);
	assert(b.len == 0 && b.data[0] == '\0');
	buf_str(&b, "a");
	buf_add(&b, "\0b", 2);
	assert(b.len == 3 && memcmp(b.data, "a\0b", 4) == 0);
	/* An impossible size sets oom, and later appends do nothing. */
	assert(!buf_reserve(&b, SIZE_MAX - 1) && b.oom);
	buf_str(&b, "more");
	assert(b.len == 3);
	buf_free(&b);
	assert(b.data == NULL && b.len == 0 && b.cap == 0 && !b.oom);
}

/* Valid characters, maximal invalid subparts, characters cut by the end. */
static void
test_utf8(void)
{
	static const struct {
		const char *s;
		size_t n, len, bad;
		bool cut;
		uint32_t cp;
	} t[] = {
		{ "a", 1, 1, 0, false, 'a' },
		{ "\x00", 1, 1, 0, false, 0 },
		{ "\xc3\xa9", 2, 2, 0, false, 0xe9 },
		{ "\xe2\x82\xac", 3, 3, 0, false, 0x20ac },
		{ "\xf0\x9f\x98\x80", 4, 4, 0, false, 0x1f600 },
		{ "\xf4\x8f\xbf\xbf", 4, 4, 0, false, 0x10ffff },
		{ "\xef\xbf\xbd", 3, 3, 0, false, 0xfffd },
		{ "\xff", 1, 0, 1, false, 0 },
		{ "\x80", 1, 0, 1, false, 0 },
		{ "\xc0\xaf", 2, 0, 1, false, 0 },		/* overlong lead */
		{ "\xe0\x80\x80", 3, 0, 1, false, 0 },		/* overlong */
		{ "\xed\xa0\x80", 3, 0, 1, false, 0 },		/* surrogate */
		{ "\xf4\x90\x80\x80", 4, 0, 1, false, 0 },	/* past U+10FFFF */
		{ "\xe2\x82|", 3, 0, 2, false, 0 },
		{ "\xe2\x82", 2, 0, 2, true, 0 },
		{ "\xc3", 1, 0, 1, true, 0 },
		{ "\xf0\x9f\x98", 3, 0, 3, true, 0 },
		{ "\xf0\x9f\x98" "a", 4, 0, 3, false, 0 },
	};
	size_t i, len, bad;

	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		len = utf8_char(t[i].s, t[i].n, &bad);
		assert(len == t[i].len);
		if (len == 0)
			assert(bad == t[i].bad);
		else
			assert(utf8_decode(t[i].s, len) == t[i].cp);
		assert(utf8_cut(t[i].s, t[i].n) == t[i].cut);
		assert(utf8_valid(t[i].s, t[i].n) == (len == t[i].n));
	}
	assert(utf8_valid("", 0));
	assert(!utf8_cut("", 0));
}

/* Sanitizing replaces each maximal subpart once, as the audit log's vector shows. */
static void
test_utf8_sanitize(void)
{
	static const char in[] = "\xff|\xe2\x82|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xc3";
	static const char want[] = "\xef\xbf\xbd|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|"
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
	    "\xef\xbf\xbd|\xef\xbf\xbd";
	struct buf b = { 0 };

	assert(utf8_sanitize(&b, in, sizeof in - 1) == 12);
	assert(b.len == sizeof want - 1 && memcmp(b.data, want, b.len) == 0);
	buf_reset(&b);
	assert(utf8_sanitize(&b, "caf\xc3\xa9", 5) == 0 && strcmp(b.data, "caf\xc3\xa9") == 0);
	buf_free(&b);
}

/* A string through jsonout_string and jsonout_dump with esc. */
static void
expect_string(const char *s, size_t n, unsigned esc, const char *want)
{
	struct buf b = { 0 };
	json_t *v;

	assert((v = jsonout_string(s, n)) != NULL);
	assert(jsonout_dump(v, JSON_ENCODE_ANY, esc, &b) == 0);
	if (strcmp(b.data, want) != 0) {
		fprintf(stderr, "got  %s\nwant %s\n", b.data, want);
		abort();
	}
	json_decref(v);
	buf_free(&b);
}

/* Each escaping, byte for byte. */
static void
test_jsonout_escaping(void)
{
	static const char ctl[] = "q\"\\/\b\f\n\r\t\x01\x1b\x1f\x7f\0z";

	/* The audit log and the admin commands: every control as \u00xx. */
	expect_string(ctl, sizeof ctl - 1, JSONOUT_DEL,
	    "\"q\\\"\\\\/\\u0008\\u000c\\u000a\\u000d\\u0009\\u0001\\u001b\\u001f"
	    "\\u007f\\u0000z\"");
	/* asciicast, as serde_json writes: names, lower-case hex, DEL as is. */
	expect_string(ctl, sizeof ctl - 1, JSONOUT_SHORT,
	    "\"q\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001b\\u001f\x7f\\u0000z\"");
	/* librec's JSON: names and DEL escaped. */
	expect_string(ctl, sizeof ctl - 1, JSONOUT_SHORT | JSONOUT_DEL,
	    "\"q\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001b\\u001f\\u007f\\u0000z\"");
	/* UTF-8 as is; invalid bytes as U+FFFD. */
	expect_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, 0,
	    "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	expect_string("a\xffz\xe2\x82", 5, 0, "\"a\xef\xbf\xbdz\xef\xbf\xbd\"");
	expect_string("", 0, 0, "\"\"");
	expect_string(NULL, 0, 0, "\"\"");
}

/* Objects keep insertion order; escapes inside keys and nested values are re-spelled too. */
static void
test_jsonout_object(void)
{
	struct buf b = { 0 };
	json_t *o, *a;
	char *text;
	FILE *f;
	size_t len;

	assert((o = json_object()) != NULL && (a = json_array()) != NULL);
	json_object_set_new(o, "z", json_integer(-9223372036854775807LL - 1));
	json_object_set_new(o, "k\n", jsonout_string("v\x7f", 2));
	json_object_set_new(o, "a", a);
	json_array_append_new(a, json_true());
	json_array_append_new(a, json_null());
	json_array_append_new(a, jsonout_string("\t", 1));
	assert(jsonout_dump(o, JSON_COMPACT, JSONOUT_DEL, &b) == 0);
	assert(strcmp(b.data, "{\"z\":-9223372036854775808,\"k\\u000a\":\"v\\u007f\","
	    "\"a\":[true,null,\"\\u0009\"]}") == 0);
	buf_reset(&b);
	assert(jsonout_dump(a, 0, JSONOUT_SHORT, &b) == 0);
	assert(strcmp(b.data, "[true, null, \"\\t\"]") == 0);
	buf_free(&b);

	assert((f = open_memstream(&text, &len)) != NULL);
	assert(jsonout_print(f, o, JSON_COMPACT, JSONOUT_SHORT) == 0);
	assert(jsonout_print_string(f, "\n", 1, 0) == 0);
	fclose(f);
	assert(strcmp(text, "{\"z\":-9223372036854775808,\"k\\n\":\"v\x7f\","
	    "\"a\":[true,null,\"\\t\"]}\"\\u000a\"") == 0);
	free(text);
	json_decref(o);
}

/* A string long enough that jansson hands it over in many pieces. */
static void
test_jsonout_long(void)
{
	struct buf b = { 0 };
	size_t n = 100000, i;
	char *s;
	json_t *v;

	assert((s = malloc(n)) != NULL);
	for (i = 0; i < n; i++)
		s[i] = "a\n\x7f\\"[i % 4];
	assert((v = jsonout_string(s, n)) != NULL);
	assert(jsonout_dump(v, JSON_ENCODE_ANY, JSONOUT_DEL, &b) == 0);
	assert(b.len == 2 + n / 4 * (1 + 6 + 6 + 2));
	for (i = 0; i < n / 4; i++)
		assert(memcmp(b.data + 1 + i * 15, "a\\u000a\\u007f\\\\", 15) == 0);
	json_decref(v);
	buf_free(&b);
	free(s);
}

/*
 * Random bytes through every escaping read back by jansson: the text is
 * always valid JSON and holds the sanitized bytes.
 */
static void
test_jsonout_roundtrip(void)
{
	static const unsigned escs[] = { 0, JSONOUT_SHORT, JSONOUT_DEL, JSONOUT_SHORT | JSONOUT_DEL };
	static const uint8_t pick[] = { 0x00, 0x01, 0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x1b, 0x1f,
	    '"', '\\', '/', 'u', 'a', 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xe0, 0xe2, 0xed, 0xef,
	    0xf0, 0xf4, 0xff, 0x82, 0xac, 0x9f };
	struct buf text = { 0 }, want = { 0 };
	uint8_t in[64];
	json_error_t e;
	unsigned seed = 1;
	size_t round, i, n, k;
	json_t *v, *back;

	for (round = 0; round < 10000; round++) {
		n = (seed = seed * 1103515245 + 12345) >> 16 & 63;
		for (i = 0; i < n; i++) {
			seed = seed * 1103515245 + 12345;
			in[i] = pick[(seed >> 16) % sizeof pick];
		}
		buf_reset(&want);
		utf8_sanitize(&want, in, n);
		assert(utf8_valid(want.data, want.len));
		assert((v = jsonout_string(in, n)) != NULL);
		for (k = 0; k < sizeof escs / sizeof escs[0]; k++) {
			buf_reset(&text);
			assert(jsonout_dump(v, JSON_ENCODE_ANY, escs[k], &text) == 0);
			for (i = 0; i < text.len; i++) {
				assert((uint8_t)text.data[i] >= 0x20);
				assert(!(escs[k] & JSONOUT_DEL) || text.data[i] != 0x7f);
			}
			back = json_loadb(text.data, text.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
			assert(back != NULL && json_is_string(back));
			assert(json_string_length(back) == want.len);
			assert(memcmp(json_string_value(back), want.data, want.len) == 0);
			json_decref(back);
		}
		json_decref(v);
	}
	buf_free(&text);
	buf_free(&want);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{ "buf", test_buf },
		{ "utf8", test_utf8 },
		{ "utf8_sanitize", test_utf8_sanitize },
		{ "jsonout_escaping", test_jsonout_escaping },
		{ "jsonout_object", test_jsonout_object },
		{ "jsonout_long", test_jsonout_long },
		{ "jsonout_roundtrip", test_jsonout_roundtrip },
	};

	return unit_run("base", tests, UNIT_COUNT(tests));
}
