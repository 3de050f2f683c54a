/*
 * podgate-player export: a recording as asciicast v2 or v3 (as asciinema 3
 * writes them) or as a plain-text transcript of the rendered screen.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asciicast.h"
#include "player.h"
#include "term.h"
#include "walk.h"
#include "when.h"

#define EXPORT_USAGE "export FILE|ID --format asciicast-v2|asciicast-v3|text [--at TIME] " \
    "[-o OUT] [--dir DIR]"

enum export_format { EXPORT_V2, EXPORT_V3, EXPORT_TEXT };

/* The marker that opens the asciicast of a session recorded without a PTY. */
#define EXPORT_ONLCR_NOTE "podgate: recorded without a terminal; each LF is written as CR LF, " \
    "as a terminal would have shown it"

/*
 * Output recorded without a PTY had no ONLCR on its way to the client's
 * terminal, which turned each LF into CR LF; a player given the bytes as
 * they are draws a staircase. Write p[0..n) with each LF as CR LF into *buf
 * (grown as needed); returns the new length, or 0 with errno on failure.
 */
static size_t
export_onlcr(const uint8_t *p, size_t n, uint8_t **buf, size_t *cap)
{
	uint8_t *b;
	size_t i, o = 0;

	if (n > SIZE_MAX / 2 - 1) {
		errno = ENOMEM;
		return 0;
	}
	if (2 * n > *cap) {
		if ((b = realloc(*buf, 2 * n)) == NULL)
			return 0;
		*buf = b;
		*cap = 2 * n;
	}
	for (i = 0; i < n; i++) {
		if (p[i] == '\n')
			(*buf)[o++] = '\r';
		(*buf)[o++] = p[i];
	}
	return o;
}

/* Export as asciicast; returns the reader's last result. */
static int
export_asciicast(FILE *out, int version, struct player_file *f)
{
	struct asciicast_writer w;
	struct rec_event ev, note;
	uint64_t replaced;
	uint8_t *crlf = NULL;
	size_t crlf_cap = 0;
	bool onlcr = !f->header.pty;
	int rc, r;

	if ((r = asciicast_writer_init(&w, version, out, &f->header)) < 0)
		return r;
	if (onlcr) {
		/* Say in the file itself that its output is not byte for byte. */
		memset(&note, 0, sizeof note);
		note.code = REC_MARKER;
		note.data = (const uint8_t *)EXPORT_ONLCR_NOTE;
		note.len = strlen(EXPORT_ONLCR_NOTE);
		if ((r = asciicast_writer_event(&w, &note)) < 0) {
			asciicast_writer_finish(&w);
			return r;
		}
	}
	while ((rc = rec_reader_next(f->reader, &ev)) == 1) {
		if (onlcr && (ev.code == REC_OUTPUT || ev.code == REC_STDERR) && ev.len > 0) {
			if ((ev.len = export_onlcr(ev.data, ev.len, &crlf, &crlf_cap)) == 0) {
				rc = -ENOMEM;
				break;
			}
			ev.data = crlf;
		}
		if ((r = asciicast_writer_event(&w, &ev)) < 0)
			break;
	}
	free(crlf);
	if ((r = asciicast_writer_finish(&w)) < 0 && rc >= 0)
		rc = r;
	replaced = w.carry[0].replaced + w.carry[1].replaced + w.carry[2].replaced;
	/* asciicast is JSON text: say what could not be kept as it was. */
	if (replaced > 0)
		player_warn("%s: %llu invalid UTF-8 sequence%s replaced by U+FFFD (cat keeps the bytes)",
		    f->path, (unsigned long long)replaced, replaced == 1 ? "" : "s");
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
export_text(FILE *out, struct player_file *f, bool has_at, uint64_t at)
{
	struct rec_event ev;
	struct term *t = NULL;
	uint64_t seq = 0;
	char when[32], *label, *row = NULL;
	size_t cap;
	int rc, r, cols, rows, last;

	if ((rc = term_new(&t, f->header.cols > 0 ? f->header.cols : 80,
	    f->header.rows > 0 ? f->header.rows : 24)) < 0)
		return rc;
	term_set_onlcr(t, !f->header.pty);
	if (!has_at) {
		term_set_line_fn(t, export_text_line, out);
		term_set_line_join(t, true);	/* a line the terminal wrapped is one line */
	}
	while ((rc = rec_reader_next(f->reader, &ev)) == 1) {
		if (has_at && ev.time_ns > at)
			break;
		term_set_seq(t, seq++);
		if (ev.code == REC_OUTPUT || ev.code == REC_STDERR)
			term_write(t, ev.data, ev.len);
		else if (ev.code == REC_RESIZE)
			term_resize(t, ev.cols, ev.rows);
		else if (ev.code == REC_MARKER && !has_at) {
			/* Markers are kept, in the order they came, escaped. */
			when_format_offset(ev.time_ns, when, sizeof when);
			label = player_escape(ev.data, ev.len);
			fprintf(out, "--- marker at %s: %s ---\n", when, label != NULL ? label : "");
			free(label);
		}
	}
	if (!has_at) {
		term_finish(t);
		term_free(t);
		return rc;
	}
	/* One screen: its rows, without the blank ones at the bottom. */
	term_size(t, &cols, &rows);
	cap = (size_t)cols * VTERM_MAX_CHARS_PER_CELL * 4 + 1;
	if ((row = malloc(cap)) == NULL) {
		term_free(t);
		return -ENOMEM;
	}
	for (last = rows - 1; last >= 0 && term_row_text(t, last, row, cap, NULL) == 0; last--)
		;
	for (r = 0; r <= last; r++) {
		fwrite(row, 1, term_row_text(t, r, row, cap, NULL), out);
		fputc('\n', out);
	}
	free(row);
	term_free(t);
	return rc == 1 ? 0 : rc;
}

/* Export one recording. */
int
cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "dir", required_argument, NULL, 'd' },
		{ "at", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum export_format fmt;
	FILE *out = NULL;
	struct player_file f;
	const char *format = NULL, *outpath = NULL, *dir = NULL;
	char *file = NULL;
	uint64_t at = 0;
	bool has_at = false;
	int c, rc, st, werr, fd = -1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f:o:d:a:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			format = optarg;
			break;
		case 'o':
			outpath = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'a':
			if (when_parse_offset(optarg, &at) < 0) {
				player_warn("bad time '%s' (seconds, M:SS or H:MM:SS)", optarg);
				return EXIT_USAGE;
			}
			has_at = true;
			break;
		case 'h':
			printf("usage: podgate-player " EXPORT_USAGE "\n\n"
			    "Write a recording for other tools: asciicast v2 or v3 (asciinema), or the\n"
			    "text of every line as it was rendered on screen. Output recorded without\n"
			    "a PTY is written with each LF as CR LF, as a terminal showed it (the\n"
			    "asciicast opens with a marker saying so).\n\n"
			    "  --format F   asciicast-v2, asciicast-v3 or text (markers as lines\n"
			    "               \"--- marker at TIME: LABEL ---\")\n"
			    "  --at TIME    text: only the screen as it was at TIME (seconds, M:SS,\n"
			    "               H:MM:SS)\n"
			    "  -o OUT       write to OUT (mode 0600) instead of stdout\n"
			    "  --dir DIR    where to look up a session ID (default $PODGATE_RECORDINGS,\n"
			    "               else state/recordings)\n");
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
		fmt = EXPORT_V2;
	else if (strcmp(format, "asciicast-v3") == 0)
		fmt = EXPORT_V3;
	else if (strcmp(format, "text") == 0)
		fmt = EXPORT_TEXT;
	else {
		player_warn("unknown format '%s' (asciicast-v2, asciicast-v3 or text)", format);
		return EXIT_USAGE;
	}
	if (has_at && fmt != EXPORT_TEXT) {
		player_warn("--at needs --format text");
		return EXIT_USAGE;
	}
	if (walk_find_session(argv[optind], dir, &file) < 0)
		return EXIT_USAGE;
	if (player_open(&f, file) < 0) {
		free(file);
		return EXIT_USAGE;
	}
	if (outpath == NULL || strcmp(outpath, "-") == 0)
		out = stdout;
	else if ((fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
	    (out = fdopen(fd, "w")) == NULL) {
		player_warn("%s: %s", outpath, strerror(errno));
		if (fd >= 0)
			close(fd);
		player_close(&f);
		free(file);
		return EXIT_USAGE;
	}
	rc = fmt == EXPORT_TEXT ? export_text(out, &f, has_at, at) :
	    export_asciicast(out, fmt == EXPORT_V2 ? 2 : 3, &f);
	st = rc == -ENOMEM ? (player_warn("out of memory"), EXIT_USAGE) : player_read_end(&f, rc);
	werr = ferror(out) != 0;
	if (out != stdout)
		werr |= fclose(out) != 0;
	else
		werr |= fflush(out) != 0;
	if (werr) {
		player_warn("%s: write failed", outpath != NULL ? outpath : "stdout");
		st = EXIT_USAGE;
	}
	player_close(&f);
	free(file);
	return st;
}
