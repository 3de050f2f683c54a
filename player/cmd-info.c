/*
 * podgate-player info: what a recording holds, and whether it is whole.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <openssl/evp.h>

#include "player.h"
#include "summary.h"
#include "trust.h"
#include "walk.h"

/* What reading a whole recording found. */
struct info_stats {
	uint64_t events, duration_ns;
	uint64_t count[7];	/* o e i r m x R */
	uint64_t other;
	uint64_t bytes[3];	/* o e i */
	bool exited;
	int exit_status;
	char exit_signal[32];
	uint64_t exit_offset;
	bool exit_verified;	/* the exit event is inside what verified */
	const char *state;	/* complete, incomplete, truncated, corrupt, modified */
	int rc;
	struct rec_verify verify;	/* integrity, against the header's signer */
	int verify_rc;
	const struct trust *trust;
};

static const char info_codes[] = "oeirmxR";

/* Read every event of f and count them. */
static void
info_scan(struct player_file *f, struct info_stats *s, const struct trust *trust)
{
	struct trust_events te = { 0 };
	struct rec_event ev;
	const char *c;

	memset(s, 0, sizeof *s);
	s->trust = trust;
	while ((s->rc = rec_reader_next(f->reader, &ev)) == 1) {
		s->events++;
		s->duration_ns = ev.time_ns;
		if (ev.code == 0 || (c = strchr(info_codes, ev.code)) == NULL) {
			s->other++;
			continue;
		}
		s->count[c - info_codes]++;
		if (c - info_codes < 3)
			s->bytes[c - info_codes] += ev.len;
		if (ev.code == REC_EXIT) {
			s->exited = true;
			s->exit_status = ev.exit_status;
			s->exit_offset = ev.offset;
			memcpy(s->exit_signal, ev.exit_signal, sizeof s->exit_signal);
		}
	}
	if (lseek(f->fd, 0, SEEK_SET) == 0)
		s->verify_rc = rec_verify_fd(f->fd, NULL, &s->verify);
	else
		s->verify_rc = -errno;
	/* The state comes from the verified seal, not from unsigned events. */
	te.read_rc = s->rc;
	te.exited = s->exited;
	te.exit_offset = s->exit_offset;
	te.writing = rec_being_written(f->fd);
	s->state = trust_state(&s->verify, s->verify_rc, &te);
	s->exit_verified = trust_exit_verified(&s->verify, s->verify_rc, &te);
}

/* Format UTC nanoseconds as RFC 3339 with milliseconds. */
static void
format_time(uint64_t ns, char *buf, size_t len)
{
	time_t sec = (time_t)(ns / 1000000000u);
	struct tm tm;
	char day[32];

	gmtime_r(&sec, &tm);
	strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03uZ", day, (unsigned)(ns % 1000000000u / 1000000u));
}

/* Print "label" and a recorded string (escaped: it is the client's) or dflt. */
static void
info_field(const char *label, const char *v, const char *dflt)
{
	char *e = player_escape_str(v, dflt);

	printf("%s%s", label, e != NULL ? e : "?");
	free(e);
}

/* Print the human form. */
static void
info_text(const struct player_file *f, const struct info_stats *s)
{
	const struct rec_header *h = &f->header;
	char when[48], line[640];

	format_time(h->start_ns, when, sizeof when);
	info_field("file:      ", f->path, "-");
	printf("\nformat:    %s version %u", REC_FORMAT_NAME, h->version);
	info_field("\nsession:   ", h->session_id, "-");
	printf("\nstart:     %s\n", when);
	printf("duration:  %.3fs\n", (double)s->duration_ns / 1e9);
	info_field("user:      ", h->user, "-");
	if (h->key_fp != NULL) {
		info_field(" (", h->key_fp, "");
		printf(")");
	}
	if (h->client != NULL)
		info_field(" from ", h->client, "");
	info_field("\ntarget:    ", h->target, "-");
	info_field(" (", h->target_kind, "-");
	info_field(")\ncommand:   ", h->command, h->target_kind != NULL &&
	    strcmp(h->target_kind, "podgate") == 0 ? "(admin command)" : "(interactive shell)");
	info_field("\nterminal:  ", "", "");
	printf("%ux%u ", h->cols, h->rows);
	info_field("", h->term, "-");
	printf("%s\n", h->pty ? " (pty)" : " (no pty)");
	printf("events:    %" PRIu64 " (o %" PRIu64 ", e %" PRIu64 ", i %" PRIu64 ", r %" PRIu64
	    ", m %" PRIu64 ", x %" PRIu64 ", redactions R %" PRIu64 ", other %" PRIu64 ")\n",
	    s->events, s->count[0], s->count[1], s->count[2], s->count[3], s->count[4],
	    s->count[5], s->count[6], s->other);
	printf("bytes:     output %" PRIu64 ", stderr %" PRIu64 ", input %" PRIu64 "\n",
	    s->bytes[0], s->bytes[1], s->bytes[2]);
	if (!s->exited)
		printf("exit:      -");
	else if (s->exit_signal[0] != '\0')
		printf("exit:      signal %s", s->exit_signal);
	else
		printf("exit:      status %d", s->exit_status);
	if (s->exited && !s->exit_verified)
		printf(" (unverified: after the last verified byte %llu)",
		    (unsigned long long)s->verify.verified_bytes);
	printf("\nstate:     %s", s->state);
	if (s->rc < 0)
		printf(" (%s)", rec_reader_error(f->reader));
	printf("\n");
	trust_describe(s->trust, &s->verify, s->verify_rc, line, sizeof line);
	printf("integrity: %s\n", line);
}

/*
 * Append a msgpack object to b as JSON: strings escaped as all recording
 * JSON is, binary values (the signer's key) as base64 strings, at most 16
 * levels deep.
 */
static void
info_json_value(struct buf *b, const msgpack_object *o, int depth)
{
	unsigned char *b64;
	uint32_t i;
	int n;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		buf_str(b, "null");
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		buf_str(b, o->via.boolean ? "true" : "false");
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		buf_printf(b, "%" PRIu64, o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		buf_printf(b, "%" PRId64, o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		buf_printf(b, "%.17g", o->via.f64);
		break;
	case MSGPACK_OBJECT_STR:
		summary_append_string(b, o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_BIN:
		if ((b64 = malloc((size_t)o->via.bin.size / 3 * 4 + 5)) == NULL) {
			buf_str(b, "null");
			break;
		}
		n = EVP_EncodeBlock(b64, (const unsigned char *)o->via.bin.ptr, (int)o->via.bin.size);
		buf_printf(b, "\"%.*s\"", n, (const char *)b64);
		free(b64);
		break;
	case MSGPACK_OBJECT_ARRAY:
		buf_add(b, "[", 1);
		for (i = 0; i < o->via.array.size && depth < 16; i++) {
			if (i > 0)
				buf_add(b, ",", 1);
			info_json_value(b, &o->via.array.ptr[i], depth + 1);
		}
		buf_add(b, "]", 1);
		break;
	case MSGPACK_OBJECT_MAP:
		buf_add(b, "{", 1);
		for (i = 0; i < o->via.map.size && depth < 16; i++) {
			const msgpack_object *k = &o->via.map.ptr[i].key;

			if (i > 0)
				buf_add(b, ",", 1);
			if (k->type == MSGPACK_OBJECT_STR)
				summary_append_string(b, k->via.str.ptr, k->via.str.size);
			else
				buf_str(b, "\"?\"");
			buf_add(b, ":", 1);
			info_json_value(b, &o->via.map.ptr[i].val, depth + 1);
		}
		buf_add(b, "}", 1);
		break;
	default:
		buf_str(b, "null");
		break;
	}
}

/* Append the header to b as JSON. */
static void
info_json_header(struct buf *b, const struct player_file *f)
{
	msgpack_unpacked u;
	const uint8_t *raw;
	size_t len, used = 0;

	raw = rec_reader_header_raw(f->reader, &len);
	msgpack_unpacked_init(&u);
	if (raw != NULL && msgpack_unpack_next(&u, (const char *)raw, len, &used) ==
	    MSGPACK_UNPACK_SUCCESS)
		info_json_value(b, &u.data, 0);
	else
		buf_str(b, "null");
	msgpack_unpacked_destroy(&u);
}

/* Print one JSON object on one line. */
static void
info_json(const struct player_file *f, const struct info_stats *s)
{
	struct summary j, sub;
	char code[2] = { 0 };
	size_t i;

	summary_start(&j, f->path);
	info_json_header(summary_value(&j, "header"), f);
	summary_uint(&j, "duration_ns", s->duration_ns);
	summary_uint(&j, "events", s->events);
	summary_start_object(&sub);
	for (i = 0; i < 7; i++) {
		code[0] = info_codes[i];
		summary_uint(&sub, code, s->count[i]);
	}
	summary_uint(&sub, "other", s->other);
	summary_add(&j, "counts", &sub);
	summary_start_object(&sub);
	summary_uint(&sub, "o", s->bytes[0]);
	summary_uint(&sub, "e", s->bytes[1]);
	summary_uint(&sub, "i", s->bytes[2]);
	summary_add(&j, "bytes", &sub);
	summary_exit(&j, s->exited, s->exit_signal, s->exit_status);
	summary_bool(&j, "exit_verified", s->exit_verified);
	summary_str(&j, "state", s->state);
	if (s->rc < 0) {
		summary_str(&j, "error", rec_reader_error(f->reader));
		summary_uint(&j, "valid_bytes", rec_reader_error_offset(f->reader));
	} else
		summary_null(&j, "error");
	if (s->verify_rc < 0)
		summary_null(&j, "integrity");
	else {
		summary_start_object(&sub);
		summary_verdict(&sub, &s->verify, trust_word(s->trust, &s->verify, s->verify_rc));
		summary_add(&j, "integrity", &sub);
	}
	summary_print(&j);
}

#define INFO_USAGE "info [--json] [--key PUB]... [--dir DIR] FILE|ID..."

/* Describe each recording named on the command line. */
int
cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "key", required_argument, NULL, 'k' },
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct info_stats s;
	struct player_file f;
	struct trust trust;
	char **keys, *file;
	const char *dir = NULL;
	size_t nkeys = 0;
	bool json = false;
	int c, i, st = 0;

	if ((keys = calloc((size_t)argc, sizeof *keys)) == NULL)
		return EXIT_USAGE;
	optind = 1;
	while ((c = getopt_long(argc, argv, "jk:d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'k':
			keys[nkeys++] = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'h':
			printf("usage: podgate-player " INFO_USAGE "\n\n"
			    "What a recording holds: header, duration, event counts, exit status,\n"
			    "state (from the verified seal) and integrity (against trusted keys).\n\n"
			    "  --json       one JSON object per file, on one line\n"
			    "  --key PUB    trust this signing key (PEM public key, or a list of keys;\n"
			    "               repeatable); default: $PODGATE_KEYS, then\n"
			    "               ~/.config/podgate/trusted_keys, then /etc/podgate/trusted_keys\n"
			    "  --dir DIR    where to look up a session ID (default $PODGATE_RECORDINGS,\n"
			    "               else state/recordings)\n");
			free(keys);
			return 0;
		default:
			free(keys);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		player_warn("usage: podgate-player " INFO_USAGE);
		free(keys);
		return EXIT_USAGE;
	}
	if (trust_load(&trust, keys, nkeys) < 0) {
		free(keys);
		return EXIT_USAGE;
	}
	free(keys);
	for (i = optind; i < argc; i++) {
		if (walk_find_session(argv[i], dir, &file) < 0) {
			st = EXIT_USAGE;
			continue;
		}
		if (player_open(&f, file) < 0) {
			free(file);
			st = EXIT_USAGE;
			continue;
		}
		info_scan(&f, &s, &trust);
		if (json)
			info_json(&f, &s);
		else {
			if (i > optind)
				printf("\n");
			info_text(&f, &s);
		}
		if (s.rc < 0 && st == 0)
			st = s.rc == -ENODATA || s.rc == -EBADMSG || s.rc == -EPROTO ?
			    EXIT_DAMAGED : EXIT_USAGE;
		else if (st == 0 && (strcmp(s.state, "truncated") == 0 ||
		    strcmp(s.state, "modified") == 0))
			st = EXIT_DAMAGED;
		player_close(&f);
		free(file);
	}
	trust_free(&trust);
	return st;
}
