/*
 * podgate-player export: a recording as asciicast v2 or v3 (as asciinema 3
 * writes them) or as a plain-text transcript of the rendered screen.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asciicast.h"
#include "player.h"
#include "term.h"

#define EXPORT_USAGE "export FILE --format asciicast-v2|asciicast-v3|text [-o OUT]"

enum export_format { EXPORT_V2, EXPORT_V3, EXPORT_TEXT };

/* Streams of an export in progress. */
struct export_state {
	enum export_format fmt;
	FILE *out;
	uint64_t clock_ms;		/* v3: time printed so far */
	struct asciicast_utf8 carry[3];	/* o, e, i */
	char *conv;
	size_t conv_cap;
};

/* The exit status asciinema would record for a signal name. */
static int
export_signal_status(const char *name)
{
	int i;

	for (i = 1; i < NSIG; i++) {
		const char *abbrev = sigabbrev_np(i);

		if (abbrev != NULL && strcmp(abbrev, name) == 0)
			return 128 + i;
	}
	return 128;
}

/* Write the event time. */
static void
export_time(struct export_state *s, uint64_t ns)
{
	char buf[48];

	if (s->fmt == EXPORT_V2)
		asciicast_time_v2(ns, buf, sizeof buf);
	else
		asciicast_time_v3(&s->clock_ms, ns, buf, sizeof buf);
	fputs(buf, s->out);
}

/* Write one event line with data that is valid UTF-8. */
static void
export_line(struct export_state *s, uint64_t ns, char code, const char *data, size_t len)
{
	fputc('[', s->out);
	export_time(s, ns);
	fprintf(s->out, ", \"%c\", ", code);
	asciicast_json_string(s->out, data, len);
	fputs("]\n", s->out);
}

/* Make room for converting n bytes. */
static int
export_room(struct export_state *s, size_t n)
{
	size_t need = 3 * (n + 4);
	char *c;

	if (need <= s->conv_cap)
		return 0;
	if ((c = realloc(s->conv, need)) == NULL)
		return -ENOMEM;
	s->conv = c;
	s->conv_cap = need;
	return 0;
}

/* Write bytes of stream k (0 o, 1 e, 2 i) as an event, carrying split characters. */
static int
export_data(struct export_state *s, uint64_t ns, int k, char code, const uint8_t *p, size_t n,
    bool final)
{
	size_t len;
	int r;

	if ((r = export_room(s, n)) < 0)
		return r;
	len = asciicast_utf8(&s->carry[k], p, n, final, s->conv);
	if (len > 0)
		export_line(s, ns, code, s->conv, len);
	return 0;
}

/* Write the header line. */
static void
export_header(struct export_state *s, const struct rec_header *h)
{
	unsigned cols = h->cols > 0 ? h->cols : 80, rows = h->rows > 0 ? h->rows : 24;
	char *title = NULL;

	if (s->fmt == EXPORT_V2)
		fprintf(s->out, "{\"version\":2,\"width\":%u,\"height\":%u", cols, rows);
	else {
		fprintf(s->out, "{\"version\":3,\"term\":{\"cols\":%u,\"rows\":%u", cols, rows);
		if (h->term != NULL) {
			fputs(",\"type\":", s->out);
			asciicast_json_string(s->out, h->term, strlen(h->term));
		}
		fputc('}', s->out);
	}
	fprintf(s->out, ",\"timestamp\":%" PRIu64, h->start_ns / 1000000000u);
	if (h->command != NULL) {
		fputs(",\"command\":", s->out);
		asciicast_json_string(s->out, h->command, strlen(h->command));
	}
	if (h->user != NULL && asprintf(&title, "%s@%s", h->user,
	    h->target != NULL ? h->target : "-") >= 0) {
		fputs(",\"title\":", s->out);
		asciicast_json_string(s->out, title, strlen(title));
		free(title);
	}
	if (s->fmt == EXPORT_V2 && h->term != NULL) {
		fputs(",\"env\":{\"TERM\":", s->out);
		asciicast_json_string(s->out, h->term, strlen(h->term));
		fputc('}', s->out);
	}
	fputs("}\n", s->out);
}

/* Export as asciicast; returns the reader's last result. */
static int
export_asciicast(struct export_state *s, struct player_file *f)
{
	struct rec_event ev;
	uint64_t last = 0;
	char buf[64];
	int rc, r, k;

	export_header(s, &f->header);
	while ((rc = rec_reader_next(f->reader, &ev)) == 1) {
		last = ev.time_ns;
		r = 0;
		switch (ev.code) {
		case REC_OUTPUT:
			r = export_data(s, ev.time_ns, 0, 'o', ev.data, ev.len, false);
			break;
		case REC_STDERR:
			r = export_data(s, ev.time_ns, 1, 'o', ev.data, ev.len, false);
			break;
		case REC_INPUT:
			r = export_data(s, ev.time_ns, 2, 'i', ev.data, ev.len, false);
			break;
		case REC_MARKER: {
			struct asciicast_utf8 u = { .npending = 0 };

			if ((r = export_room(s, ev.len)) == 0)
				export_line(s, ev.time_ns, 'm', s->conv,
				    asciicast_utf8(&u, ev.data, ev.len, true, s->conv));
			break;
		}
		case REC_RESIZE:
			snprintf(buf, sizeof buf, "%ux%u", ev.cols, ev.rows);
			export_line(s, ev.time_ns, 'r', buf, strlen(buf));
			break;
		case REC_EXIT:
			snprintf(buf, sizeof buf, "%d", ev.exit_signal[0] != '\0' ?
			    export_signal_status(ev.exit_signal) : ev.exit_status);
			export_line(s, ev.time_ns, 'x', buf, strlen(buf));
			break;
		default:
			break;
		}
		if (r < 0)
			return r;
	}
	/* Characters still incomplete at the end become U+FFFD. */
	for (k = 0; k < 3; k++)
		if (s->carry[k].npending > 0 &&
		    (r = export_data(s, last, k, k == 2 ? 'i' : 'o', NULL, 0, true)) < 0)
			return r;
	return rc;
}

/* A rendered line of the transcript. */
static void
export_text_line(void *arg, const char *text, size_t len, uint64_t since, uint64_t seq)
{
	FILE *out = arg;

	fwrite(text, 1, len, out);
	fputc('\n', out);
}

/* Export the rendered screen lines as text; returns the reader's last result. */
static int
export_text(struct export_state *s, struct player_file *f)
{
	struct rec_event ev;
	struct term *t = NULL;
	uint64_t seq = 0;
	int rc;

	if ((rc = term_new(&t, f->header.cols > 0 ? f->header.cols : 80,
	    f->header.rows > 0 ? f->header.rows : 24)) < 0)
		return rc;
	term_set_line_fn(t, export_text_line, s->out);
	while ((rc = rec_reader_next(f->reader, &ev)) == 1) {
		term_set_seq(t, seq++);
		if (ev.code == REC_OUTPUT || ev.code == REC_STDERR)
			term_write(t, ev.data, ev.len);
		else if (ev.code == REC_RESIZE)
			term_resize(t, ev.cols, ev.rows);
	}
	term_finish(t);
	term_free(t);
	return rc;
}

/* Export one recording. */
int
cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct export_state s;
	struct player_file f;
	const char *format = NULL, *outpath = NULL;
	int c, rc, st, werr, fd = -1;

	memset(&s, 0, sizeof s);
	optind = 1;
	while ((c = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			format = optarg;
			break;
		case 'o':
			outpath = optarg;
			break;
		case 'h':
			printf("usage: podgate-player " EXPORT_USAGE "\n");
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1 || format == NULL) {
		player_warn("usage: podgate-player " EXPORT_USAGE);
		return EXIT_USAGE;
	}
	if (strcmp(format, "asciicast-v2") == 0)
		s.fmt = EXPORT_V2;
	else if (strcmp(format, "asciicast-v3") == 0)
		s.fmt = EXPORT_V3;
	else if (strcmp(format, "text") == 0)
		s.fmt = EXPORT_TEXT;
	else {
		player_warn("unknown format '%s' (asciicast-v2, asciicast-v3 or text)", format);
		return EXIT_USAGE;
	}
	if (player_open(&f, argv[optind]) < 0)
		return EXIT_USAGE;
	if (outpath == NULL || strcmp(outpath, "-") == 0)
		s.out = stdout;
	else if ((fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
	    (s.out = fdopen(fd, "w")) == NULL) {
		player_warn("%s: %s", outpath, strerror(errno));
		if (fd >= 0)
			close(fd);
		player_close(&f);
		return EXIT_USAGE;
	}
	rc = s.fmt == EXPORT_TEXT ? export_text(&s, &f) : export_asciicast(&s, &f);
	st = rc == -ENOMEM ? (player_warn("out of memory"), EXIT_USAGE) : player_read_end(&f, rc);
	werr = ferror(s.out) != 0;
	if (s.out != stdout)
		werr |= fclose(s.out) != 0;
	else
		werr |= fflush(s.out) != 0;
	if (werr) {
		player_warn("%s: write failed", outpath != NULL ? outpath : "stdout");
		st = EXIT_USAGE;
	}
	free(s.conv);
	player_close(&f);
	return st;
}
