/*
 * librec unit tests: golden encodings, round trips of random event
 * streams, truncation at every offset, corruption, limits and size.
 */
#include <signal.h>

#include <jansson.h>

#include "rec.h"
#include "unit.h"

/* A small deterministic PRNG (xorshift64*), so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1du;
}

/* An anonymous temporary file. */
static int
tmpfd(void)
{
	FILE *f = tmpfile();
	int fd;

	assert(f != NULL);
	fd = dup(fileno(f));
	fclose(f);
	assert(fd >= 0);
	return fd;
}

/* Read the whole file at fd into a malloc'd buffer. */
static uint8_t *
slurp(int fd, size_t *len)
{
	off_t end = lseek(fd, 0, SEEK_END);
	uint8_t *p = malloc((size_t)end + 1);

	assert(p != NULL);
	assert(pread(fd, p, (size_t)end, 0) == end);
	*len = (size_t)end;
	return p;
}

/* A file holding exactly these bytes, positioned at its start. */
static int
fd_with(const uint8_t *p, size_t n)
{
	int fd = tmpfd();

	assert(write(fd, p, n) == (ssize_t)n);
	assert(lseek(fd, 0, SEEK_SET) == 0);
	return fd;
}

static const struct rec_header test_header = {
	.session_id = "0193d1a2-0000-7000-8000-000000000001",
	.start_ns = 1764345600000000000u,
	.cols = 80, .rows = 24, .term = "xterm", .pty = true,
	.user = "alice", .key_fp = "SHA256:abc", .client = "127.0.0.1:5000",
	.target_kind = "local", .target = "local", .command = "echo hi",
};

/* Header fields come back as written, extras included. */
static void
test_header_roundtrip(void)
{
	static const char *const extra[] = { "cluster", "prod", "pod", NULL, NULL };
	struct rec_header h = test_header, back;
	struct rec_writer *w;
	struct rec_reader *r;
	struct rec_event ev;
	int fd = tmpfd();

	h.where_extra = extra;
	assert(rec_writer_open(&w, fd, &h, NULL) == 0);
	assert(strcmp(rec_writer_session_id(w), h.session_id) == 0);
	assert(rec_writer_close(w) == 0);
	assert(lseek(fd, 0, SEEK_SET) == 0);
	assert(rec_reader_open(&r, fd, &back) == 0);
	assert(strcmp(back.session_id, h.session_id) == 0);
	assert(back.start_ns == h.start_ns);
	assert(back.cols == 80 && back.rows == 24 && back.pty);
	assert(strcmp(back.term, "xterm") == 0);
	assert(strcmp(back.user, "alice") == 0);
	assert(strcmp(back.key_fp, "SHA256:abc") == 0);
	assert(strcmp(back.client, "127.0.0.1:5000") == 0);
	assert(strcmp(back.target_kind, "local") == 0);
	assert(strcmp(back.command, "echo hi") == 0);
	assert(back.version == REC_FORMAT_VERSION);
	assert(rec_reader_next(r, &ev) == 1 && ev.code == REC_SEAL);
	assert(rec_reader_next(r, &ev) == 1 && ev.code == REC_TRAILER && ev.len == 8);
	assert(rec_reader_next(r, &ev) == 0);
	rec_header_clear(&back);
	rec_reader_free(r);
	close(fd);
}

/* JSON of recordings: strings byte for byte, and the header map as jansson reads it back. */
static void
test_json(void)
{
	static const char *const extra[] = { "pod", "a\nb\x7f\xff\"", NULL, NULL };
	struct rec_header h = test_header, back;
	struct rec_writer *w;
	struct rec_reader *r;
	json_t *o;
	char *text;
	size_t len;
	FILE *f;
	int fd = tmpfd();

	assert((f = open_memstream(&text, &len)) != NULL);
	rec_json_string(f, "q\"\\\b\f\n\r\t\x01\x1b\x7f\0\xe2\x82|\xc3\xa9", 17);
	fclose(f);
	assert(strcmp(text, "\"q\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001b\\u007f\\u0000"
	    "\xef\xbf\xbd|\xc3\xa9\"") == 0);
	free(text);

	h.where_extra = extra;
	assert(rec_writer_open(&w, fd, &h, NULL) == 0);
	assert(rec_writer_close(w) == 0);
	assert(lseek(fd, 0, SEEK_SET) == 0);
	assert(rec_reader_open(&r, fd, &back) == 0);
	assert((f = open_memstream(&text, &len)) != NULL);
	assert(rec_reader_header_json(r, f) == 0);
	fclose(f);
	assert(strncmp(text, "{\"format\":\"podgate-rec\",\"version\":2,", 35) == 0);
	assert(strstr(text, "\"pod\":\"a\\nb\\u007f\xef\xbf\xbd\\\"\"") != NULL);
	assert((o = json_loads(text, 0, NULL)) != NULL);
	assert(json_integer_value(json_object_get(o, "start")) == (json_int_t)h.start_ns);
	assert(json_is_true(json_object_get(o, "pty")));
	json_decref(o);
	free(text);
	rec_header_clear(&back);
	rec_reader_free(r);
	close(fd);
}

/* A writer makes a UUIDv7 when none is given; ids are time-ordered. */
static void
test_uuid7(void)
{
	char a[37], b[37];

	assert(rec_uuid7(a) == 0);
	assert(strlen(a) == 36 && a[14] == '7' && a[8] == '-' && a[23] == '-');
	assert(strchr("89ab", a[19]) != NULL);
	usleep(2000);
	assert(rec_uuid7(b) == 0);
	assert(strcmp(a, b) < 0);
}

/* Exact bytes of each event kind (table-driven golden test). */
static void
test_golden_events(void)
{
	static const struct {
		struct rec_event ev;
		uint64_t at;		/* ns after the start */
		const char *bytes;	/* expected encoding, hex */
	} table[] = {
		{ { .code = 'o', .data = (const uint8_t *)"hi", .len = 2 }, 1250000,
		  "93ce001312d0a16fc4026869" },
		{ { .code = 'i', .data = (const uint8_t *)"", .len = 0 }, 1250000,
		  "9300a169c400" },
		{ { .code = 'e', .data = (const uint8_t *)"\xff\x00", .len = 2 }, 1250100,
		  "9364a165c402ff00" },
		{ { .code = 'r', .cols = 132, .rows = 43 }, 1250100 + 5000000000u,
		  "93cf000000012a05f200a17292cc842b" },
		{ { .code = 'm', .data = (const uint8_t *)"ok", .len = 2 }, 1250100 + 5000000000u,
		  "9300a16da26f6b" },
		{ { .code = 'x', .exit_status = 3 }, 1250100 + 5000000001u,
		  "9301a17881a6737461747573 03" },
		{ { .code = 'x', .exit_signal = "KILL" }, 1250100 + 5000000001u,
		  "9300a17881a67369676e616ca44b494c4c" },
	};
	struct rec_writer_opts opts = { .start_mono_ns = 1000, .checkpoint_ns = UINT64_MAX };
	struct rec_writer *w;
	uint8_t *file, want[64];
	size_t i, len, hdr, pos, n;
	int fd = tmpfd();

	assert(rec_writer_open(&w, fd, &test_header, &opts) == 0);
	assert(rec_writer_flush(w) == 0);
	hdr = (size_t)rec_writer_written(w);
	for (i = 0; i < sizeof table / sizeof table[0]; i++)
		assert(rec_writer_append(w, 1000 + table[i].at, &table[i].ev) == 0);
	assert(rec_writer_flush(w) == 0);
	rec_writer_abandon(w);
	file = slurp(fd, &len);
	pos = hdr;
	for (i = 0; i < sizeof table / sizeof table[0]; i++) {
		const char *h = table[i].bytes;

		for (n = 0; *h != '\0'; h++) {
			unsigned v;

			if (*h == ' ')
				continue;
			assert(sscanf(h, "%2x", &v) == 1);
			want[n++] = (uint8_t)v;
			h++;
		}
		if (pos + n > len || memcmp(file + pos, want, n) != 0) {
			fprintf(stderr, "golden event %zu differs at byte %zu\n", i, pos);
			abort();
		}
		pos += n;
	}
	assert(pos == len);
	free(file);
	close(fd);
}

/* Put a hex string (spaces ignored) into out; returns the byte count. */
static size_t
unhex(const char *h, uint8_t *out)
{
	size_t n = 0;
	unsigned v;

	for (; *h != '\0'; h++) {
		if (*h == ' ')
			continue;
		assert(sscanf(h, "%2x", &v) == 1);
		out[n++] = (uint8_t)v;
		h++;
	}
	return n;
}

/*
 * Exact bytes of a checkpoint, the seal and the trailer: keys in order,
 * smallest encodings, the checkpoint's own time, offset and event count.
 */
static void
test_golden_marks(void)
{
	struct rec_writer_opts opts = { .start_mono_ns = 1000, .checkpoint_bytes = 1,
	    .checkpoint_ns = UINT64_MAX };
	struct rec_writer *w;
	uint8_t *file, want[128];
	size_t len, hdr, n, cp, seal, seal_head;
	int fd = tmpfd();

	assert(rec_writer_open(&w, fd, &test_header, &opts) == 0);
	assert(rec_writer_flush(w) == 0);
	hdr = (size_t)rec_writer_written(w);
	assert(hdr >= 128);	/* offsets pack as uint8 and uint16 below */
	assert(rec_writer_append(w, 1005, &(struct rec_event){ .code = 'o',
	    .data = (const uint8_t *)"hi", .len = 2 }) == 0);
	assert(rec_writer_checkpoints(w) == 1);
	assert(rec_writer_close(w) == 0);
	file = slurp(fd, &len);
	/* [5, "o", b"hi"] */
	n = unhex("9305a16fc4026869", want);
	assert(memcmp(file + hdr, want, n) == 0);
	cp = hdr + n;
	/* [0, "c", {"seq": 0, "time": 5, "offset": cp, "events": 1, "digest": bin 32}] */
	assert(cp < 256);
	n = unhex("9300a16385 a3736571 00 a474696d65 05 a66f6666736574 cc", want);
	want[n++] = (uint8_t)cp;
	n += unhex("a66576656e7473 01 a6646967657374 c420", want + n);
	assert(memcmp(file + cp, want, n) == 0);
	seal = cp + n + 32;
	/* [0, "s", {"seq": 1, "offset": seal, "digest": ..., "events": 2, "bytes": [2, 0, 0],
	 *  "duration": 5, "exit": nil}] then [0, "t", bin 8 of the seal's offset] */
	n = unhex("9300a17387 a3736571 01 a66f6666736574 cd", want);
	want[n++] = (uint8_t)(seal >> 8);
	want[n++] = (uint8_t)seal;
	n += unhex("a6646967657374 c420", want + n);
	assert(memcmp(file + seal, want, n) == 0);
	seal_head = n;
	n = unhex("a66576656e7473 02 a56279746573 93020000 a86475726174696f6e 05 a465786974 c0",
	    want);
	assert(memcmp(file + seal + seal_head + 32, want, n) == 0);
	assert(len == seal + seal_head + 32 + n + REC_TRAILER_LEN);
	n = unhex("9300a174c408 000000000000", want);
	want[n++] = (uint8_t)(seal >> 8);
	want[n++] = (uint8_t)seal;
	assert(memcmp(file + len - REC_TRAILER_LEN, want, REC_TRAILER_LEN) == 0);
	free(file);
	close(fd);
}

struct gen {
	char code;
	uint8_t *data;
	size_t len;
	uint16_t cols, rows;
	int status;
	uint64_t at;
};

/* Random size, mostly small, sometimes up to 1 MiB. */
static size_t
rand_size(void)
{
	switch (rng() % 8) {
	case 0: return 0;
	case 1: return (size_t)(rng() % (1024 * 1024 + 1));
	case 2: return (size_t)(rng() % 70000);
	default: return (size_t)(rng() % 300);
	}
}

/* Random events through writer and reader come back exactly. */
static void
roundtrip(uint64_t coalesce_ns, size_t nevents)
{
	static const char codes[] = "oeirmx";
	struct rec_writer_opts opts = { .coalesce_ns = coalesce_ns, .start_mono_ns = 1,
	    .buffer_size = 1 + (size_t)(rng() % 100000) };
	struct gen *g = calloc(nevents, sizeof *g);
	struct rec_header back;
	struct rec_writer *w;
	struct rec_reader *r;
	struct rec_event ev;
	/* Concatenated bytes per code, to compare after merging. */
	size_t want_len[3] = { 0 }, got_len[3] = { 0 }, i, k;
	uint8_t *want[3], *got[3];
	uint64_t t = 1, nread = 0, last_off = 0;
	int fd = tmpfd(), rc;

	for (k = 0; k < 3; k++) {
		want[k] = malloc(nevents * 1024 * 1024 + 1);
		got[k] = malloc(nevents * 1024 * 1024 + 1);
	}
	assert(rec_writer_open(&w, fd, &test_header, &opts) == 0);
	for (i = 0; i < nevents; i++) {
		struct rec_event e = { 0 };

		g[i].code = codes[rng() % 6];
		t += rng() % 3 == 0 ? rng() % 3000000000u : rng() % 2000;
		g[i].at = t;
		e.code = g[i].code;
		switch (g[i].code) {
		case 'o': case 'e': case 'i': case 'm':
			g[i].len = g[i].code == 'm' ? rng() % 40 : rand_size();
			g[i].data = malloc(g[i].len + 1);
			for (k = 0; k < g[i].len; k++)
				g[i].data[k] = g[i].code == 'm' ? (uint8_t)('a' + rng() % 26) :
				    (uint8_t)rng();
			e.data = g[i].data;
			e.len = g[i].len;
			k = g[i].code == 'o' ? 0 : g[i].code == 'e' ? 1 : 2;
			if (g[i].code != 'm') {
				memcpy(want[k] + want_len[k], g[i].data, g[i].len);
				want_len[k] += g[i].len;
			}
			break;
		case 'r':
			e.cols = g[i].cols = (uint16_t)rng();
			e.rows = g[i].rows = (uint16_t)rng();
			break;
		case 'x':
			e.exit_status = g[i].status = (int)(rng() % 256);
			break;
		}
		assert(rec_writer_append(w, t, &e) == 0);
	}
	assert(rec_writer_close(w) == 0);

	assert(lseek(fd, 0, SEEK_SET) == 0);
	assert(rec_reader_open(&r, fd, &back) == 0);
	i = 0;
	while ((rc = rec_reader_next(r, &ev)) == 1) {
		assert(ev.offset == last_off || last_off == 0);
		last_off = ev.offset + ev.size;
		if (ev.code == REC_CHECKPOINT || ev.code == REC_SEAL || ev.code == REC_TRAILER)
			continue;
		nread++;
		if (ev.code == 'o' || ev.code == 'e' || ev.code == 'i') {
			k = ev.code == 'o' ? 0 : ev.code == 'e' ? 1 : 2;
			memcpy(got[k] + got_len[k], ev.data, ev.len);
			got_len[k] += ev.len;
		}
		if (coalesce_ns == 0) {
			/* Without merging, every event comes back as written. */
			assert(ev.code == g[i].code);
			assert(ev.time_ns == g[i].at - 1);
			if (ev.code == 'r')
				assert(ev.cols == g[i].cols && ev.rows == g[i].rows);
			if (ev.code == 'x')
				assert(ev.exit_status == g[i].status);
			if (ev.code == 'm')
				assert(ev.len == g[i].len && memcmp(ev.data, g[i].data, ev.len) == 0);
			if (ev.code != 'r' && ev.code != 'x' && ev.code != 'm')
				assert(ev.len == g[i].len);
		}
		i++;
	}
	assert(rc == 0);
	assert(rec_reader_offset(r) == (uint64_t)lseek(fd, 0, SEEK_END));
	if (coalesce_ns == 0)
		assert(nread == nevents);
	else
		assert(nread <= nevents);
	for (k = 0; k < 3; k++) {
		assert(got_len[k] == want_len[k]);
		assert(memcmp(got[k], want[k], want_len[k]) == 0);
		free(want[k]);
		free(got[k]);
	}
	for (i = 0; i < nevents; i++)
		free(g[i].data);
	free(g);
	rec_header_clear(&back);
	rec_reader_free(r);
	close(fd);
}

static void
test_roundtrip_random(void)
{
	int i;

	for (i = 0; i < 40; i++)
		roundtrip(0, 1 + (size_t)(rng() % 24));
}

static void
test_roundtrip_coalesced(void)
{
	int i;

	for (i = 0; i < 40; i++)
		roundtrip(1000 + rng() % 1000000, 1 + (size_t)(rng() % 24));
}

/* Merging keeps bytes, merges only same-code events within the window. */
static void
test_coalesce_window(void)
{
	struct rec_writer_opts opts = { .coalesce_ns = 1000, .start_mono_ns = 10 };
	struct rec_header back;
	struct rec_writer *w;
	struct rec_reader *r;
	struct rec_event ev;
	int fd = tmpfd();

	assert(rec_writer_open(&w, fd, &test_header, &opts) == 0);
	assert(rec_writer_append(w, 100, &(struct rec_event){ .code = 'o',
	    .data = (const uint8_t *)"ab", .len = 2 }) == 0);
	assert(rec_writer_append(w, 600, &(struct rec_event){ .code = 'o',
	    .data = (const uint8_t *)"cd", .len = 2 }) == 0);
	/* 1100 is more than 1000 after the merged event's start (100). */
	assert(rec_writer_append(w, 1101, &(struct rec_event){ .code = 'o',
	    .data = (const uint8_t *)"ef", .len = 2 }) == 0);
	assert(rec_writer_append(w, 1102, &(struct rec_event){ .code = 'i',
	    .data = (const uint8_t *)"x", .len = 1 }) == 0);
	assert(rec_writer_pending(w) > 0);
	assert(rec_writer_close(w) == 0);
	assert(lseek(fd, 0, SEEK_SET) == 0);
	assert(rec_reader_open(&r, fd, &back) == 0);
	assert(rec_reader_next(r, &ev) == 1);
	assert(ev.code == 'o' && ev.len == 4 && memcmp(ev.data, "abcd", 4) == 0);
	assert(ev.time_ns == 90);
	assert(rec_reader_next(r, &ev) == 1);
	assert(ev.code == 'o' && ev.len == 2 && ev.time_ns == 1091);
	assert(rec_reader_next(r, &ev) == 1);
	assert(ev.code == 'i' && ev.len == 1 && ev.time_ns == 1092);
	assert(back.version == REC_FORMAT_VERSION);
	assert(rec_reader_next(r, &ev) == 1 && ev.code == REC_SEAL);
	assert(rec_reader_next(r, &ev) == 1 && ev.code == REC_TRAILER && ev.len == 8);
	assert(rec_reader_next(r, &ev) == 0);
	rec_header_clear(&back);
	rec_reader_free(r);
	close(fd);
}

/* Build a small recording in memory; returns its bytes and event ends. */
static uint8_t *
small_recording(size_t *len, uint64_t *ends, size_t *nends)
{
	struct rec_writer_opts opts = { .start_mono_ns = 1, .checkpoint_ns = UINT64_MAX,
	    .checkpoint_bytes = UINT64_MAX };
	struct rec_writer *w;
	uint8_t buf[300];
	uint8_t *file;
	size_t i;
	int fd = tmpfd();

	assert(rec_writer_open(&w, fd, &test_header, &opts) == 0);
	assert(rec_writer_flush(w) == 0);
	ends[0] = rec_writer_written(w);
	for (i = 0; i < 30; i++) {
		size_t n = (size_t)(rng() % sizeof buf);

		memset(buf, 'a' + (int)(i % 26), n);
		if (i % 7 == 3)
			assert(rec_writer_resize(w, 100, 30) == 0);
		else if (i == 29)
			assert(rec_writer_exit(w, 0, NULL) == 0);
		else
			assert(rec_writer_append(w, 1 + i * 1000, &(struct rec_event){
			    .code = i % 2 ? 'o' : 'i', .data = buf, .len = n }) == 0);
		assert(rec_writer_flush(w) == 0);
		ends[i + 1] = rec_writer_written(w);
	}
	assert(rec_writer_close(w) == 0);
	file = slurp(fd, len);
	ends[31] = *len - REC_TRAILER_LEN;	/* the seal */
	ends[32] = *len;			/* the trailer */
	*nends = 33;
	close(fd);
	return file;
}

/* A recording cut at every offset reads to its last complete event. */
static void
test_truncate_every_offset(void)
{
	uint64_t ends[64];
	size_t len, nends, cut, j;
	uint8_t *file = small_recording(&len, ends, &nends);

	for (cut = 0; cut <= len; cut++) {
		struct rec_header h;
		struct rec_reader *r;
		struct rec_event ev;
		size_t complete = 0;
		int fd = fd_with(file, cut), rc;

		rc = rec_reader_open(&r, fd, &h);
		if (cut < ends[0]) {
			assert(rc == (cut == 0 ? -EBADMSG : -ENODATA));
			assert(r == NULL);
			close(fd);
			continue;
		}
		assert(rc == 0);
		while ((rc = rec_reader_next(r, &ev)) == 1)
			complete++;
		/* The events whose end is within the cut. */
		for (j = 1; j < nends && ends[j] <= cut; j++)
			;
		assert(complete == j - 1);
		if (ends[j - 1] == cut) {
			assert(rc == 0);
		} else {
			assert(rc == -ENODATA);
			assert(rec_reader_offset(r) == ends[j - 1]);
			assert(rec_reader_error_offset(r) == ends[j - 1]);
			assert(strstr(rec_reader_error(r), "truncated at byte") != NULL);
		}
		rec_header_clear(&h);
		rec_reader_free(r);
		close(fd);
	}
	free(file);
}

/* Read a buffer to the end; returns the final status. */
static int
read_all(const uint8_t *p, size_t n)
{
	struct rec_header h;
	struct rec_reader *r;
	struct rec_event ev;
	int fd = fd_with(p, n), rc;

	if ((rc = rec_reader_open(&r, fd, &h)) == 0) {
		while ((rc = rec_reader_next(r, &ev)) == 1)
			assert(ev.offset < n);
		if (rc < 0)
			assert(rec_reader_error(r)[0] != '\0' && rec_reader_error_offset(r) < n);
		rec_header_clear(&h);
		rec_reader_free(r);
	}
	close(fd);
	return rc;
}

/* Garbage and flipped bytes give errors, never crashes. */
static void
test_garbage(void)
{
	uint64_t ends[64];
	size_t len, nends, i, k;
	uint8_t *file = small_recording(&len, ends, &nends), junk[4096];
	static const char json[] = "{\"version\": 2, \"width\": 80}\n";

	assert(read_all((const uint8_t *)json, sizeof json - 1) == -EBADMSG);
	for (i = 0; i < 300; i++) {
		size_t n = (size_t)(rng() % sizeof junk);

		for (k = 0; k < n; k++)
			junk[k] = (uint8_t)rng();
		assert(read_all(junk, n) <= 0);
	}
	for (i = 0; i < len; i++) {
		uint8_t save = file[i];

		file[i] ^= (uint8_t)(1 + rng() % 255);
		assert(read_all(file, len) <= 0);
		file[i] = save;
	}
	free(file);
}

/* Hostile lengths are refused without allocating them. */
static void
test_limits(void)
{
	uint64_t ends[64];
	size_t len, nends;
	uint8_t *file = small_recording(&len, ends, &nends);
	uint8_t *bad = malloc(ends[0] + 64);
	/* array32 of 4G elements; map32 inside an event; bin32 of 4 GiB. */
	static const uint8_t huge_array[] = { 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01 };
	static const uint8_t huge_map[] = { 0x93, 0x00, 0xa1, 'x', 0xdf, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t huge_bin[] = { 0x93, 0x00, 0xa1, 'o', 0xc6, 0xff, 0xff, 0xff, 0xf0, 1 };
	static const uint8_t bad_payload[] = { 0x93, 0x00, 0xa1, 'o', 0xa2, 'h', 'i' };
	static const uint8_t unknown[] = { 0x93, 0x05, 0xa1, 'z', 0x81, 0xa1, 'k', 0x01,
	    0x93, 0x05, 0xa1, 'o', 0xc4, 0x01, 'A' };
	struct rec_header h;
	struct rec_reader *r;
	struct rec_event ev;
	int fd;

	memcpy(bad, file, ends[0]);
	memcpy(bad + ends[0], huge_array, sizeof huge_array);
	assert(read_all(bad, ends[0] + sizeof huge_array) == -EBADMSG);
	memcpy(bad + ends[0], huge_map, sizeof huge_map);
	assert(read_all(bad, ends[0] + sizeof huge_map) == -EBADMSG);
	memcpy(bad + ends[0], huge_bin, sizeof huge_bin);
	assert(read_all(bad, ends[0] + sizeof huge_bin) == -EBADMSG);
	memcpy(bad + ends[0], bad_payload, sizeof bad_payload);
	assert(read_all(bad, ends[0] + sizeof bad_payload) == -EPROTO);

	/* Known codes with payloads of the wrong type: an R with a str, an exit with both. */
	static const uint8_t r_str[] = { 0x93, 0x00, 0xa1, 'R', 0xa2, 'h', 'i' };
	static const uint8_t exit_both[] = { 0x93, 0x00, 0xa1, 'x', 0x82,
	    0xa6, 's', 't', 'a', 't', 'u', 's', 0x00, 0xa6, 's', 'i', 'g', 'n', 'a', 'l',
	    0xa4, 'K', 'I', 'L', 'L' };
	static const uint8_t r_ok[] = { 0x93, 0x00, 0xa1, 'R', 0x91, 0x83, 0xa2, 'a', 't', 0x00,
	    0xa3, 'l', 'e', 'n', 0x02, 0xa4, 'k', 'i', 'n', 'd', 0xa1, 'x' };
	memcpy(bad + ends[0], r_str, sizeof r_str);
	assert(read_all(bad, ends[0] + sizeof r_str) == -EPROTO);
	memcpy(bad + ends[0], exit_both, sizeof exit_both);
	assert(read_all(bad, ends[0] + sizeof exit_both) == -EPROTO);
	memcpy(bad + ends[0], r_ok, sizeof r_ok);
	assert(read_all(bad, ends[0] + sizeof r_ok) == 0);
	/* A payload one byte over REC_MAX_PAYLOAD is refused; one at it is read. */
	{
		size_t big = ends[0] + 9 + REC_MAX_PAYLOAD + 1;
		uint8_t *over = malloc(big);

		assert(over != NULL);
		memcpy(over, file, ends[0]);
		memcpy(over + ends[0], (const uint8_t[]){ 0x93, 0x00, 0xa1, 'o', 0xc6,
		    (REC_MAX_PAYLOAD + 1) >> 24, ((REC_MAX_PAYLOAD + 1) >> 16) & 0xff,
		    ((REC_MAX_PAYLOAD + 1) >> 8) & 0xff, (REC_MAX_PAYLOAD + 1) & 0xff }, 9);
		memset(over + ends[0] + 9, 'A', REC_MAX_PAYLOAD + 1);
		assert(read_all(over, big) == -EPROTO);
		over[ends[0] + 8] = REC_MAX_PAYLOAD & 0xff;
		assert(read_all(over, big - 1) == 0);
		free(over);
	}

	/* Unknown codes are returned for skipping, and reading goes on. */
	memcpy(bad + ends[0], unknown, sizeof unknown);
	fd = fd_with(bad, ends[0] + sizeof unknown);
	assert(rec_reader_open(&r, fd, &h) == 0);
	assert(rec_reader_next(r, &ev) == 1 && ev.code == 'z' && ev.offset == ends[0]);
	assert(rec_reader_next(r, &ev) == 1 && ev.code == 'o' && ev.len == 1);
	assert(ev.time_ns == 10);
	assert(rec_reader_next(r, &ev) == 0);
	rec_header_clear(&h);
	rec_reader_free(r);
	close(fd);

	assert(rec_writer_data(NULL, 'o', "", 0) == -EINVAL);
	free(bad);
	free(file);
}

/*
 * A newer version is refused, version 1 is read, a session id must be 36
 * bytes, and a map without the format name is not a recording.
 */
static void
test_versions(void)
{
	/* {"format": "podgate-rec", "version": 3, "session": <36 bytes>, "start": 0} */
	static const uint8_t v3[] = { 0x84, 0xa6, 'f', 'o', 'r', 'm', 'a', 't',
	    0xab, 'p', 'o', 'd', 'g', 'a', 't', 'e', '-', 'r', 'e', 'c',
	    0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x03,
	    0xa7, 's', 'e', 's', 's', 'i', 'o', 'n', 0xd9, 36,
	    '0', '1', '9', '3', 'd', '1', 'a', '2', '-', '0', '0', '0', '0', '-', '7', '0', '0',
	    '0', '-', '8', '0', '0', '0', '-', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0',
	    '0', '1',
	    0xa5, 's', 't', 'a', 'r', 't', 0x00 };
	static const uint8_t other[] = { 0x81, 0xa1, 'a', 0x01 };
	uint8_t v[sizeof v3];
	struct rec_writer *w;
	struct rec_header h = test_header;
	int fd = tmpfd();

	assert(read_all(v3, sizeof v3) == -EPROTONOSUPPORT);
	memcpy(v, v3, sizeof v3);
	v[28] = 0x02;
	assert(read_all(v, sizeof v) == 0);
	v[28] = 0x01;
	assert(read_all(v, sizeof v) == 0);
	v[28] = 0x00;
	assert(read_all(v, sizeof v) == -EPROTONOSUPPORT);
	v[28] = 0x02;
	v[38] = 35;	/* a 35-byte session id, then one byte too many */
	assert(read_all(v, sizeof v) < 0);
	assert(read_all(other, sizeof other) == -EBADMSG);
	/* The writer refuses a session id of another length. */
	h.session_id = "0193d1a2-0000-7000-8000-00000000001";
	assert(rec_writer_open(&w, fd, &h, NULL) == -EINVAL && w == NULL);
	close(fd);
}

/* Bulk output costs at most 3% over the raw bytes, in typical PTY reads. */
static void
test_size_overhead(void)
{
	struct rec_writer_opts opts = { .coalesce_ns = 2000000 };
	static uint8_t chunk[4095];
	struct rec_writer *w;
	uint64_t raw = 0;
	size_t i;
	int fd = tmpfd();

	memset(chunk, 'y', sizeof chunk);
	assert(rec_writer_open(&w, fd, &test_header, &opts) == 0);
	for (i = 0; i < 2560; i++) {
		size_t n = 1 + (size_t)(rng() % sizeof chunk);

		assert(rec_writer_data(w, 'o', chunk, n) == 0);
		raw += n;
	}
	assert(rec_writer_close(w) == 0);
	printf("  %llu raw bytes -> %lld bytes on disk (%.3f%%)\n", (unsigned long long)raw,
	    (long long)lseek(fd, 0, SEEK_END),
	    100.0 * (double)((uint64_t)lseek(fd, 0, SEEK_END) - raw) / (double)raw);
	assert((double)lseek(fd, 0, SEEK_END) <= 1.03 * (double)raw);
	close(fd);
}


/* A scratch directory for keys. */
static char *keydir;		/* made by main */

/* Generate (once per name) a signing key in the scratch directory. */
static struct rec_key *
test_key(const char *name)
{
	char path[256];
	struct rec_key *k;

	snprintf(path, sizeof path, "%s/%s", keydir, name);
	assert(rec_key_load_or_generate(path, &k) == 0);
	return k;
}

/* A signed recording with a checkpoint every ~150 bytes; returns its bytes. */
static uint8_t *
signed_recording(const struct rec_key *k, size_t *len, bool seal)
{
	struct rec_writer_opts opts = { .start_mono_ns = 1, .sign_key = k,
	    .checkpoint_bytes = 150, .checkpoint_ns = UINT64_MAX };
	struct rec_writer *w;
	uint8_t buf[120], *file;
	size_t i;
	int fd = tmpfd();

	assert(rec_writer_open(&w, fd, &test_header, &opts) == 0);
	for (i = 0; i < 12; i++) {
		memset(buf, 'A' + (int)i, sizeof buf);
		assert(rec_writer_append(w, 10 + i * 1000000, &(struct rec_event){
		    .code = i % 3 ? 'o' : 'i', .data = buf, .len = 20 + i * 8 }) == 0);
	}
	assert(rec_writer_append(w, 20000000, &(struct rec_event){ .code = 'x',
	    .exit_signal = "KILL" }) == 0);
	assert(rec_writer_checkpoints(w) >= 4);
	if (seal)
		assert(rec_writer_close(w) == 0);
	else {
		assert(rec_writer_flush(w) == 0);
		rec_writer_abandon(w);
	}
	file = slurp(fd, len);
	close(fd);
	return file;
}

/* Verify a buffer; returns the verdict. */
static enum rec_verdict
verify_buf(const uint8_t *p, size_t n, const struct rec_key *pinned, struct rec_verify *v)
{
	int fd = fd_with(p, n);

	assert(rec_verify_fd(fd, pinned, v) == 0);
	close(fd);
	assert(v->reason[0] != '\0');
	return v->verdict;
}

/* A sealed, signed recording verifies; with the right key too. */
static void
test_verify_sealed(void)
{
	struct rec_key *k = test_key("a"), *other = test_key("b");
	struct rec_verify v;
	size_t len;
	uint8_t *file = signed_recording(k, &len, true);

	assert(verify_buf(file, len, NULL, &v) == REC_SEALED);
	assert(strcmp(v.key_fp, rec_key_fingerprint(k)) == 0);
	assert(v.verified_bytes == len && v.file_size == len);
	assert(strstr(v.reason, "sealed") != NULL);
	assert(verify_buf(file, len, k, &v) == REC_SEALED);
	assert(verify_buf(file, len, other, &v) == REC_WRONG_KEY);
	assert(strstr(v.reason, rec_key_fingerprint(other)) != NULL);
	free(file);
	rec_key_free(k);
	rec_key_free(other);
}

/* Every single flipped byte is detected. */
static void
test_verify_every_flip(void)
{
	struct rec_key *k = test_key("a");
	struct rec_verify v;
	size_t len, i;
	uint8_t *file = signed_recording(k, &len, true);
	int seen[6] = { 0 };

	for (i = 0; i < len; i++) {
		uint8_t save = file[i];

		file[i] ^= (uint8_t)(i % 2 ? 0x01 : 1 + rng() % 255);
		if (verify_buf(file, len, k, &v) == REC_SEALED) {
			fprintf(stderr, "flip at byte %zu not detected\n", i);
			abort();
		}
		seen[v.verdict]++;
		file[i] = save;
	}
	/* Most flips land in payloads and are caught by the digests. */
	assert(seen[REC_MODIFIED] > (int)len / 2);
	/* The trailer names the seal: no damage to a sealed file passes as a cut. */
	assert(seen[REC_TRUNCATED] == 0);
	free(file);
	rec_key_free(k);
}

/* Cut at every offset: truncated, with the verified prefix at the last checkpoint. */
static void
test_verify_every_cut(void)
{
	struct rec_key *k = test_key("a");
	struct rec_verify v;
	struct rec_header h;
	struct rec_reader *r;
	struct rec_event ev;
	uint64_t cps[64], cp_time[64], seal_end = 0;
	size_t len, cut, ncp = 0, j;
	uint8_t *file = signed_recording(k, &len, true);
	int fd = fd_with(file, len);

	assert(rec_reader_open(&r, fd, &h) == 0);
	while (rec_reader_next(r, &ev) == 1) {
		if (ev.code == REC_CHECKPOINT) {
			cp_time[ncp] = ev.time_ns;
			cps[ncp++] = ev.offset + ev.size;
		}
		if (ev.code == REC_SEAL)
			seal_end = ev.offset + ev.size;
	}
	assert(seal_end == len - REC_TRAILER_LEN);
	rec_header_clear(&h);
	rec_reader_free(r);
	close(fd);

	for (cut = 0; cut < len; cut++) {
		enum rec_verdict got = verify_buf(file, cut, k, &v);

		assert(got == REC_TRUNCATED || got == REC_NOT_RECORDING);
		if (got == REC_NOT_RECORDING)
			continue;
		for (j = 0; j < ncp && cps[j] <= cut; j++)
			;
		assert(v.checkpoints == j);
		if (cut >= seal_end) {
			/* Cut after the seal or inside the trailer: verified to the seal. */
			assert(v.verified_bytes == seal_end);
			assert(strstr(v.reason, "the seal") != NULL);
		} else if (j > 0) {
			assert(v.verified_bytes == cps[j - 1]);
			assert(v.verified_time_ns == cp_time[j - 1]);
		}
		assert(v.verified_bytes <= cut);
	}
	assert(verify_buf(file, len, k, &v) == REC_SEALED);
	free(file);
	rec_key_free(k);
}

/* Unsigned, unsealed, and extended recordings get their own verdicts. */
static void
test_verify_other_verdicts(void)
{
	struct rec_key *k = test_key("a");
	struct rec_verify v;
	size_t len;
	uint8_t *file, *longer;

	file = signed_recording(NULL, &len, true);
	assert(verify_buf(file, len, NULL, &v) == REC_UNSIGNED);
	assert(verify_buf(file, len, k, &v) == REC_UNSIGNED);
	file[len - 40] ^= 0x10;		/* inside the seal's digest */
	assert(verify_buf(file, len, NULL, &v) == REC_MODIFIED);
	free(file);

	file = signed_recording(k, &len, false);
	assert(verify_buf(file, len, k, &v) == REC_TRUNCATED);
	assert(strstr(v.reason, "not sealed") != NULL);
	assert(v.checkpoints >= 4);
	free(file);

	file = signed_recording(k, &len, true);
	longer = malloc(len + 8);
	memcpy(longer, file, len);
	memcpy(longer + len, "\x93\x00\xa1o\xc4\x02hi", 8);
	assert(verify_buf(longer, len + 8, k, &v) == REC_MODIFIED);
	assert(strstr(v.reason, "after the seal") != NULL && v.bad_offset == len);
	assert(verify_buf((const uint8_t *)"hello", 5, k, &v) == REC_NOT_RECORDING);
	free(longer);
	free(file);
	rec_key_free(k);
}

/* Checkpoints come by time through tick, and none while idle. */
static void
test_checkpoint_by_time(void)
{
	struct rec_writer_opts opts = { .start_mono_ns = 1 };
	struct rec_writer *w;
	int fd = tmpfd();

	assert(rec_writer_open(&w, fd, &test_header, &opts) == 0);
	assert(rec_writer_tick(w, 2000000000u) == 0);		/* idle: nothing to cover */
	assert(rec_writer_checkpoints(w) == 0);
	/* The first event after a second of silence is covered at once. */
	assert(rec_writer_append(w, 2000000001u, &(struct rec_event){ .code = 'o',
	    .data = (const uint8_t *)"x", .len = 1 }) == 0);
	assert(rec_writer_checkpoints(w) == 1);
	assert(rec_writer_append(w, 2000000002u, &(struct rec_event){ .code = 'o',
	    .data = (const uint8_t *)"y", .len = 1 }) == 0);
	assert(rec_writer_checkpoints(w) == 1);
	assert(rec_writer_tick(w, 2500000000u) == 0);		/* not a second yet */
	assert(rec_writer_checkpoints(w) == 1);
	assert(rec_writer_tick(w, 3000000002u) == 1);		/* a second since the last */
	assert(rec_writer_checkpoints(w) == 2);
	assert(rec_writer_tick(w, 9000000000u) == 0);		/* idle again */
	assert(rec_writer_checkpoints(w) == 2);
	assert(rec_writer_written(w) > 0 && rec_writer_pending(w) == 0);
	assert(rec_writer_close(w) == 0);
	close(fd);
}

/* Private keys readable by others are refused; public keys load from PEM. */
static void
test_key_files(void)
{
	struct rec_key *k = test_key("perm"), *pub;
	char path[256], pubpath[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/perm", keydir);
	assert(rec_key_generate(path, &pub) == -EEXIST);
	snprintf(pubpath, sizeof pubpath, "%s/perm.pub", keydir);
	assert((f = fopen(pubpath, "w")) != NULL);
	assert(rec_key_write_public(k, f) == 0);
	fclose(f);
	assert(rec_key_load(pubpath, false, &pub) == 0);
	assert(strcmp(rec_key_fingerprint(pub), rec_key_fingerprint(k)) == 0);
	assert(strncmp(rec_key_fingerprint(pub), "SHA256:", 7) == 0);
	assert(strlen(rec_key_fingerprint(pub)) == 7 + 43);
	rec_key_free(pub);
	/* A public key cannot sign: loading it as private fails. */
	assert(rec_key_load(pubpath, true, &pub) < 0 && pub == NULL);
	assert(chmod(path, 0644) == 0);
	assert(rec_key_load(path, true, &pub) == -EPERM);
	assert(rec_key_load("/etc/hostname", false, &pub) == -EKEYREJECTED);
	assert(rec_key_load("/nonexistent", false, &pub) == -ENOENT);
	rec_key_free(k);
}

/* Redaction marks: an R event right before its data event, same time, no merging. */
static void
test_redaction_spans(void)
{
	struct rec_writer_opts opts = { .start_mono_ns = 1, .coalesce_ns = 1000000 };
	static const struct rec_span spans[] = { { 3, 15, "jwt" } };
	static const char marked[] = "ab [REDACTED:jwt] cd";
	struct rec_writer *w;
	struct rec_header h;
	struct rec_reader *r;
	struct rec_event ev;
	struct rec_verify v;
	const uint8_t *raw;
	size_t len;
	int fd = tmpfd();

	assert(rec_writer_open(&w, fd, &test_header, &opts) == 0);
	assert(rec_writer_append(w, 10, &(struct rec_event){ .code = 'o',
	    .data = (const uint8_t *)"xy", .len = 2 }) == 0);
	assert(rec_writer_append_spans(w, 20, &(struct rec_event){ .code = 'o',
	    .data = (const uint8_t *)marked, .len = sizeof marked - 1 }, spans, 1) == 0);
	assert(rec_writer_append(w, 30, &(struct rec_event){ .code = 'o',
	    .data = (const uint8_t *)"!", .len = 1 }) == 0);
	/* Spans outside the payload are refused. */
	assert(rec_writer_append_spans(w, 40, &(struct rec_event){ .code = 'o',
	    .data = (const uint8_t *)"x", .len = 1 }, spans, 1) == -EINVAL);
	assert(rec_writer_close(w) == 0);

	assert(lseek(fd, 0, SEEK_SET) == 0);
	assert(rec_reader_open(&r, fd, &h) == 0);
	assert(rec_reader_next(r, &ev) == 1 && ev.code == 'o' && ev.len == 2);
	assert(rec_reader_next(r, &ev) == 1 && ev.code == REC_REDACTED && ev.time_ns == 19);
	raw = rec_reader_event_raw(r, &len);
	/* [10, "R", [{"at": 3, "len": 15, "kind": "jwt"}]] */
	assert(len == 24 && memcmp(raw, "\x93\x0a\xa1R", 4) == 0);
	assert(memcmp(raw + 4, "\x91\x83\xa2" "at\x03\xa3" "len\x0f\xa4" "kind\xa3" "jwt", 20) == 0);
	assert(rec_reader_next(r, &ev) == 1 && ev.code == 'o' && ev.interval_ns == 0);
	/* The byte that followed within the merge window joined the marked event. */
	assert(ev.len == sizeof marked && memcmp(ev.data, marked, sizeof marked - 1) == 0);
	rec_header_clear(&h);
	rec_reader_free(r);
	assert(lseek(fd, 0, SEEK_SET) == 0);
	assert(rec_verify_fd(fd, NULL, &v) == 0 && v.verdict == REC_UNSIGNED);
	close(fd);
}

/* A write error sticks: later appends and the close report it. */
static void
test_write_error(void)
{
	struct rec_writer *w;
	int fds[2];

	assert(pipe(fds) == 0);
	close(fds[0]);
	signal(SIGPIPE, SIG_IGN);
	assert(rec_writer_open(&w, fds[1], &test_header, NULL) == 0);
	assert(rec_writer_data(w, 'o', "x", 1) == 0);
	assert(rec_writer_flush(w) == -EPIPE);
	assert(rec_writer_data(w, 'o', "x", 1) == -EPIPE);
	assert(rec_writer_close(w) == -EPIPE);
	close(fds[1]);
}

/* Masking typed input: one '*' per character, line ends kept. */
static void
test_input_mask(void)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
	} cases[] = {
		{ "hunter2\r", 8, "*******\r" },
		{ "a\r\nb", 4, "*\r\n*" },
		{ "p\xc3\xa9\xe2\x82\xac!", 7, "****" },
		{ "\x7f\x15x", 3, "***" },
		{ "", 0, "" },
	};
	uint8_t out[64];
	size_t i, n;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		n = rec_input_mask(cases[i].in, cases[i].len, out);
		assert(n == strlen(cases[i].want) && memcmp(out, cases[i].want, n) == 0);
	}
	/* in place */
	memcpy(out, "s3cret\n", 7);
	assert(rec_input_mask(out, 7, out) == 7 && memcmp(out, "******\n", 7) == 0);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{ "header_roundtrip", test_header_roundtrip },
		{ "json", test_json },
		{ "uuid7", test_uuid7 },
		{ "golden_events", test_golden_events },
		{ "golden_marks", test_golden_marks },
		{ "roundtrip_random", test_roundtrip_random },
		{ "roundtrip_coalesced", test_roundtrip_coalesced },
		{ "coalesce_window", test_coalesce_window },
		{ "truncate_every_offset", test_truncate_every_offset },
		{ "garbage", test_garbage },
		{ "limits", test_limits },
		{ "versions", test_versions },
		{ "size_overhead", test_size_overhead },
		{ "write_error", test_write_error },
		{ "verify_sealed", test_verify_sealed },
		{ "verify_every_flip", test_verify_every_flip },
		{ "verify_every_cut", test_verify_every_cut },
		{ "verify_other_verdicts", test_verify_other_verdicts },
		{ "checkpoint_by_time", test_checkpoint_by_time },
		{ "key_files", test_key_files },
		{ "redaction_spans", test_redaction_spans },
		{ "input_mask", test_input_mask },
	};
	int status;

	keydir = unit_tmpdir("rec-keys");
	status = unit_run("rec", tests, UNIT_COUNT(tests));
	unit_rmtree(keydir);
	free(keydir);
	return status;
}
