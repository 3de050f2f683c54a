/*
 * Player unit tests: asciicast time formats and UTF-8 carry, command-line
 * times, typed-line reconstruction and search. The emulator's are in
 * test-term.c.
 */
#include <time.h>

#include "asciicast.h"
#include "search.h"
#include "typed.h"
#include "when.h"
#include "unit.h"

/* v2 time: microseconds, trailing zeros trimmed, one decimal kept. */
static void
test_time_v2(void)
{
	static const struct { uint64_t ns; const char *want; } cases[] = {
		{ 0, "0.0" },
		{ 1000000000, "1.0" },
		{ 5600001000, "5.600001" },
		{ 5600001999, "5.600001" },	/* truncated to microseconds */
		{ 1500000000, "1.5" },
		{ 1230000, "0.00123" },
		{ 999, "0.0" },
		{ 3600000000000ull, "3600.0" },
		{ 12345678912345ull, "12345.678912" },
	};
	char buf[32];
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		asciicast_time_v2(cases[i].ns, buf, sizeof buf);
		if (strcmp(buf, cases[i].want) != 0)
			fprintf(stderr, "v2 %llu: got %s want %s\n",
			    (unsigned long long)cases[i].ns, buf, cases[i].want);
		assert(strcmp(buf, cases[i].want) == 0);
	}
}

/* v3 time: intervals in ms, rounding error carried forward. */
static void
test_time_v3(void)
{
	/* Absolute times 0.4 ms, 0.8 ms, 1.2 ms, 1.6 ms, 1.0004 s, 2.0 s. */
	static const uint64_t abs_ns[] = { 400000, 800000, 1200000, 1600000, 1000400000,
	    2000000000 };
	static const char *const want[] = { "0.000", "0.001", "0.000", "0.001", "0.998",
	    "1.000" };
	uint64_t clock = 0;
	char buf[32];
	size_t i;

	for (i = 0; i < sizeof abs_ns / sizeof abs_ns[0]; i++) {
		asciicast_time_v3(&clock, abs_ns[i], buf, sizeof buf);
		if (strcmp(buf, want[i]) != 0)
			fprintf(stderr, "v3 #%zu: got %s want %s\n", i, buf, want[i]);
		assert(strcmp(buf, want[i]) == 0);
	}
	assert(clock == 2000);
}

/* Convert chunks in order and compare the concatenated output per chunk. */
static void
check_utf8(const char *const *chunks, size_t n, const char *const *want)
{
	struct asciicast_utf8 u = { .npending = 0 };
	char out[256];
	size_t i, len;

	for (i = 0; i < n; i++) {
		len = asciicast_utf8(&u, (const uint8_t *)chunks[i], strlen(chunks[i]), i == n - 1,
		    out);
		out[len] = '\0';
		if (strcmp(out, want[i]) != 0)
			fprintf(stderr, "utf8 chunk %zu: got '%s' want '%s'\n", i, out, want[i]);
		assert(strcmp(out, want[i]) == 0);
	}
}

/* A character split across events is carried; invalid bytes become U+FFFD. */
static void
test_utf8_carry(void)
{
	const char *a[] = { "caf\xc3", "\xa9!" };
	const char *wa[] = { "caf", "\xc3\xa9!" };
	const char *b[] = { "\xe2\x82", "\xac", "x" };	/* euro sign over 3 events */
	const char *wb[] = { "", "\xe2\x82\xac", "x" };
	const char *c[] = { ("a\xff" "b"), "\xc3(" };	/* invalid byte; bad continuation */
	const char *wc[] = { ("a\xef\xbf\xbd" "b"), "\xef\xbf\xbd(" };
	const char *d[] = { "ok\xf0\x9f\x98" };		/* cut at the end of the stream */
	const char *wd[] = { "ok\xef\xbf\xbd" };
	const char *e[] = { "\xed\xa0\x80", "\xe0\x80\xaf" };	/* surrogate, overlong */
	const char *we[] = { "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" };
	const char *f[] = { "\xf0\x9f", "\x98\x80" };	/* 4-byte split in the middle */
	const char *wf[] = { "", "\xf0\x9f\x98\x80" };
	const char *g[] = { "\xc3", "A" };		/* carried byte then invalid */
	const char *wg[] = { "", ("\xef\xbf\xbd" "A") };

	check_utf8(a, 2, wa);
	check_utf8(b, 3, wb);
	check_utf8(c, 2, wc);
	check_utf8(d, 1, wd);
	check_utf8(e, 2, we);
	check_utf8(f, 2, wf);
	check_utf8(g, 2, wg);
}

/* JSON strings as serde_json writes them. */
static void
test_json_string(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	const char *in = "a\"b\\c\x1b[0m\r\n\t\b\f\x01\x7f\xc3\xa9/";

	assert(f != NULL);
	asciicast_json_string(f, in, strlen(in));
	fclose(f);
	assert(strcmp(buf, "\"a\\\"b\\\\c\\u001b[0m\\r\\n\\t\\b\\f\\u0001\x7f\xc3\xa9/\"") == 0);
	free(buf);
}

/* WHEN: dates, date-times, durations ago. */
static void
test_when(void)
{
	const uint64_t now = 1764345600ull * 1000000000u;	/* 2025-11-28T16:00:00Z */
	uint64_t t;

	setenv("TZ", "UTC", 1);
	tzset();
	assert(when_parse("2025-11-28", now, &t) == 0 && t == 1764288000ull * 1000000000u);
	assert(when_parse("2025-11-28T16:00Z", now, &t) == 0 && t == now);
	assert(when_parse("2025-11-28T16:00:30Z", now, &t) == 0 &&
	    t == now + 30ull * 1000000000u);
	assert(when_parse("2025-11-28T16:00:30", now, &t) == 0 &&
	    t == now + 30ull * 1000000000u);
	assert(when_parse("2025-11-28 16:00", now, &t) == 0 && t == now);
	assert(when_parse("2h", now, &t) == 0 && t == now - 7200ull * 1000000000u);
	assert(when_parse("30m", now, &t) == 0 && t == now - 1800ull * 1000000000u);
	assert(when_parse("3d", now, &t) == 0 && t == now - 3 * 86400ull * 1000000000u);
	assert(when_parse("1w", now, &t) == 0 && t == now - 7 * 86400ull * 1000000000u);
	assert(when_parse("45s", now, &t) == 0 && t == now - 45ull * 1000000000u);
	assert(when_parse("now", now, &t) == 0 && t == now);
	assert(when_parse("99999999d", now, &t) == 0 && t == 0);
	assert(when_parse("", now, &t) == -EINVAL);
	assert(when_parse("2h30m", now, &t) == -EINVAL);
	assert(when_parse("h", now, &t) == -EINVAL);
	assert(when_parse("5x", now, &t) == -EINVAL);
	assert(when_parse("2025-02-30", now, &t) == -EINVAL);
	assert(when_parse("2025-13-01", now, &t) == -EINVAL);
	assert(when_parse("2025-11-28T25:00", now, &t) == -EINVAL);
	assert(when_parse("2025-11-28T16", now, &t) == -EINVAL);
	assert(when_parse("2025-11-28T16:00Zjunk", now, &t) == -EINVAL);
	assert(when_parse("1969-12-31", now, &t) == -EINVAL);
}

/* play --start offsets. */
static void
test_offset(void)
{
	uint64_t t;
	char buf[32];

	assert(when_parse_offset("90", &t) == 0 && t == 90ull * 1000000000u);
	assert(when_parse_offset("1:30.5", &t) == 0 && t == 90500000000ull);
	assert(when_parse_offset("1:02:03", &t) == 0 && t == 3723ull * 1000000000u);
	assert(when_parse_offset("0.25", &t) == 0 && t == 250000000ull);
	assert(when_parse_offset("1:60", &t) == -EINVAL);
	assert(when_parse_offset("1::2", &t) == -EINVAL);
	assert(when_parse_offset("-1", &t) == -EINVAL);
	assert(when_parse_offset("1:2:3:4", &t) == -EINVAL);
	assert(when_parse_offset("", &t) == -EINVAL);
	when_format_offset(3723004000000ull, buf, sizeof buf);
	assert(strcmp(buf, "1:02:03.004") == 0);
	when_format_utc(1764345600ull * 1000000000u, buf, sizeof buf);
	assert(strcmp(buf, "2025-11-28T16:00:00Z") == 0);
}

struct typed_got {
	char lines[8][64];
	uint64_t last_seq[8];
	int n;
};

/* Collect typed lines. */
static void
typed_collect(void *arg, const char *text, size_t len, const uint64_t *seqs, uint64_t seq)
{
	struct typed_got *g = arg;

	assert(g->n < 8 && len < 64);
	memcpy(g->lines[g->n], text, len);
	g->lines[g->n][len] = '\0';
	g->last_seq[g->n] = seqs[len - 1];
	g->n++;
}

/* Typed lines: editing keys, escape sequences, ^C. */
static void
test_typed(void)
{
	static struct typed t;
	struct typed_got g = { .n = 0 };
	const char *in1 = "ls -l\x7f\x7f" "a\r";
	const char *in2 = "rm -rf \x1b[D\x1b[C/tmp/x";
	const char *in3 = "\x7fy\r";
	const char *in4 = "junk words\x17\x17keep\x15sleep 9\x03";

	typed_init(&t);
	typed_feed(&t, (const uint8_t *)in1, strlen(in1), 1, typed_collect, &g);
	typed_feed(&t, (const uint8_t *)in2, strlen(in2), 2, typed_collect, &g);
	typed_feed(&t, (const uint8_t *)in3, strlen(in3), 3, typed_collect, &g);
	typed_feed(&t, (const uint8_t *)in4, strlen(in4), 4, typed_collect, &g);
	typed_feed(&t, (const uint8_t *)"tail", 4, 5, typed_collect, &g);
	typed_finish(&t, 6, typed_collect, &g);
	assert(g.n == 4);
	assert(strcmp(g.lines[0], "ls a") == 0);
	assert(strcmp(g.lines[1], "rm -rf /tmp/y") == 0 && g.last_seq[1] == 3);
	assert(strcmp(g.lines[2], "sleep 9^C") == 0);
	assert(strcmp(g.lines[3], "tail") == 0);
}

/* Plain, case-insensitive and regular-expression search. */
static void
test_search(void)
{
	struct search s;
	char err[128];
	size_t so, eo;
	const char *text = "$ rm -rf /tmp/x # RM again";

	assert(search_init(&s, "rm -rf", false, false, err, sizeof err) == 0);
	assert(search_find(&s, text, strlen(text), 0, &so, &eo) && so == 2 && eo == 8);
	assert(!search_find(&s, text, strlen(text), 3, &so, &eo));
	search_free(&s);
	assert(search_init(&s, "rm", false, true, err, sizeof err) == 0);
	assert(search_find(&s, text, strlen(text), 3, &so, &eo) && so == 18);
	search_free(&s);
	assert(search_init(&s, "/tmp/[a-z]+", true, false, err, sizeof err) == 0);
	assert(search_find(&s, text, strlen(text), 0, &so, &eo) && so == 9 && eo == 15);
	search_free(&s);
	assert(search_init(&s, "(", true, false, err, sizeof err) == -EINVAL && err[0] != '\0');
	assert(search_init(&s, "", false, false, err, sizeof err) == -EINVAL);
}

int
main(void)
{
	test_time_v2();
	test_time_v3();
	test_utf8_carry();
	test_json_string();
	test_when();
	test_offset();
	test_typed();
	test_search();
	printf("ok\n");
	return 0;
}
