/*
 * podgate-player grep: search many recordings for text as it appeared on
 * screen (rendered through the emulator, so escape sequences and cursor
 * moves do not split a command), or for what was typed; with --raw, the
 * bytes as they were recorded, so that what a carriage return or an erase
 * hid from the screen is found too.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "player.h"
#include "search.h"
#include "summary.h"
#include "term.h"
#include "typed.h"
#include "walk.h"
#include "when.h"

#define GREP_USAGE "grep PATTERN PATH... [--input] [--raw] [--regex] [-i] [-l] [-c] [-A N] " \
    "[-B N] [-C N] [--user U] [--since WHEN] [--until WHEN] [-v] [--json]"
#define GREP_MAX_CONTEXT 100
#define GREP_MAX_JOIN (64u * 1024)	/* --raw: longer lines are matched in pieces */

struct grep_state {
	struct search search;
	bool input, json;
	bool raw;		/* match recorded bytes, split at line feeds */
	bool list, count;	/* -l: file names only; -c: a count per file */
	bool verbose;
	const char *user;
	uint64_t since, until;
	bool has_since, has_until;
	int before, after;	/* context lines */
	bool matched;
	bool error;
	struct player_file *f;
	uint64_t time_ns;	/* time of the event being processed */
	uint64_t nmatch;	/* matching lines in this file */
	bool file_done;		/* -l: this file is listed, the rest can be skipped */
	/* -B: the lines before, a ring; -A: lines still to print after a match. */
	char *ring[GREP_MAX_CONTEXT];
	uint64_t ring_time[GREP_MAX_CONTEXT];
	int ring_n, ring_at;
	int after_left;
	bool printed_any;	/* a group was printed: the next one gets "--" */
	uint64_t skipped;	/* files that are not recordings */
	/* --raw: the line being read from each stream (o, e; or i). */
	char *rawbuf[2];
	size_t raw_len[2], raw_cap[2];
};

/* Forget the lines kept for -B. */
static void
grep_ring_clear(struct grep_state *g)
{
	int i;

	for (i = 0; i < GREP_MAX_CONTEXT; i++) {
		free(g->ring[i]);
		g->ring[i] = NULL;
	}
	g->ring_n = g->ring_at = 0;
}

/* Print one line in the text form: file, time, user@target, a mark, the line. */
static void
grep_print_text(struct grep_state *g, uint64_t time_ns, char mark, const char *text, size_t len)
{
	const struct rec_header *h = &g->f->header;
	char when[32], *path, *user, *target, *line;

	when_format_offset(time_ns, when, sizeof when);
	/* What was recorded is the client's: never raw on the reviewer's terminal. */
	path = player_escape_str(g->f->path, "-");
	user = player_escape_str(h->user, "-");
	target = player_escape_str(h->target, "-");
	line = player_escape(text, len);
	if (path != NULL && user != NULL && target != NULL && line != NULL) {
		if (g->before > 0 || g->after > 0)
			printf("%s  %s  %s@%s %c %s\n", path, when, user, target, mark, line);
		else
			printf("%s  %s  %s@%s  %s\n", path, when, user, target, line);
	}
	free(path);
	free(user);
	free(target);
	free(line);
}

/* A line that does not match: keep it for -B, or print it for -A. */
static void
grep_context(struct grep_state *g, const char *text, size_t len)
{
	char *copy;

	if (g->json || g->list || g->count)
		return;
	if (g->after_left > 0) {
		g->after_left--;
		grep_print_text(g, g->time_ns, '-', text, len);
		return;
	}
	if (g->before == 0 || (copy = strndup(text, len)) == NULL)
		return;
	free(g->ring[g->ring_at]);
	g->ring[g->ring_at] = copy;
	g->ring_time[g->ring_at] = g->time_ns;
	g->ring_at = (g->ring_at + 1) % g->before;
	if (g->ring_n < g->before)
		g->ring_n++;
}

/* Print one matching line. */
static void
grep_print(struct grep_state *g, const char *text, size_t len)
{
	const struct rec_header *h = &g->f->header;
	const char *user = h->user != NULL ? h->user : "-";
	const char *target = h->target != NULL ? h->target : "-";
	struct summary j;
	int i, k;

	g->matched = true;
	g->nmatch++;
	if (g->list) {
		if (!g->file_done) {
			char *path = player_escape_str(g->f->path, "-");

			if (path != NULL)
				printf("%s\n", path);
			free(path);
		}
		g->file_done = true;
		return;
	}
	if (g->count)
		return;
	if (!g->json) {
		if ((g->before > 0 || g->after > 0) && g->printed_any && g->ring_n > 0)
			printf("--\n");
		for (i = 0; i < g->ring_n; i++) {
			k = (g->ring_at - g->ring_n + i + 2 * g->before) % g->before;
			grep_print_text(g, g->ring_time[k], '-', g->ring[k], strlen(g->ring[k]));
		}
		grep_ring_clear(g);
		grep_print_text(g, g->time_ns, ':', text, len);
		g->after_left = g->after;
		g->printed_any = true;
		return;
	}
	summary_start(&j, g->f->path);
	summary_str(&j, "session", h->session_id);
	summary_uint(&j, "time_ns", g->time_ns);
	summary_seconds(&j, "time", g->time_ns);
	summary_str(&j, "user", user);
	summary_str(&j, "target", target);
	summary_str(&j, "kind", g->raw ? (g->input ? "raw-input" : "raw") :
	    g->input ? "input" : "screen");
	summary_strn(&j, "line", text, len);
	summary_print(&j);
}

/* Match one (logical) screen line. */
static void
grep_screen_match(struct grep_state *g, const char *text, size_t len)
{
	size_t so, eo;

	if (search_find(&g->search, text, len, 0, &so, &eo))
		grep_print(g, text, len);
	else
		grep_context(g, text, len);
}

/*
 * A rendered line: rows that reach the right margin come joined with the
 * rows that follow (term_set_line_join), so that a word wrapped across the
 * edge is found.
 */
static void
grep_screen_line(void *arg, const char *text, size_t len, uint64_t since, uint64_t seq)
{
	grep_screen_match(arg, text, len);
}

/* A typed line: print it when it matches. */
static void
grep_typed_line(void *arg, const char *text, size_t len, const uint64_t *seqs, uint64_t seq)
{
	struct grep_state *g = arg;
	char buf[TYPED_MAX_LINE + 1];
	size_t so, eo;

	memcpy(buf, text, len);
	buf[len] = '\0';
	if (search_find(&g->search, buf, len, 0, &so, &eo))
		grep_print(g, buf, len);
	else
		grep_context(g, buf, len);
}

/* Match a raw line and start the next one. */
static void
grep_raw_flush(struct grep_state *g, int k)
{
	if (g->raw_len[k] == 0)
		return;
	g->rawbuf[k][g->raw_len[k]] = '\0';
	grep_screen_match(g, g->rawbuf[k], g->raw_len[k]);
	g->raw_len[k] = 0;
}

/*
 * --raw: the bytes of stream k, cut into lines at each line feed (and, for
 * what was typed, at each carriage return: Enter). Everything else, escape
 * sequences and carriage returns included, stays in the line it came in,
 * across events; a line longer than GREP_MAX_JOIN is matched in pieces.
 */
static bool
grep_raw_feed(struct grep_state *g, int k, const uint8_t *p, size_t n)
{
	char *nb;
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\n' || (g->input && p[i] == '\r')) {
			grep_raw_flush(g, k);
			continue;
		}
		if (g->raw_len[k] + 2 > g->raw_cap[k]) {
			if ((nb = realloc(g->rawbuf[k], GREP_MAX_JOIN + 2)) == NULL)
				return false;
			g->rawbuf[k] = nb;
			g->raw_cap[k] = GREP_MAX_JOIN + 2;
		}
		g->rawbuf[k][g->raw_len[k]++] = (char)p[i];
		if (g->raw_len[k] >= GREP_MAX_JOIN)
			grep_raw_flush(g, k);
	}
	return true;
}

/* Search one file. */
static int
grep_file(const char *path, bool named, void *arg)
{
	struct grep_state *g = arg;
	struct player_file f;
	struct rec_event ev;
	struct term *t = NULL;
	struct typed *ty = NULL;
	uint64_t seq = 0;
	int rc;

	if ((rc = player_open_quiet(&f, path, !named && !g->verbose)) < 0) {
		if (named)
			g->error = true;
		else if (rc == -EBADMSG)
			g->skipped++;
		return 0;
	}
	if ((g->user != NULL && (f.header.user == NULL || strcmp(f.header.user, g->user) != 0)) ||
	    (g->has_since && f.header.start_ns < g->since) ||
	    (g->has_until && f.header.start_ns > g->until)) {
		player_close(&f);
		return 0;
	}
	g->f = &f;
	g->time_ns = 0;
	g->nmatch = 0;
	g->file_done = false;
	g->after_left = 0;
	grep_ring_clear(g);
	g->raw_len[0] = g->raw_len[1] = 0;
	if (g->raw) {
		/* Neither an emulator nor the line editor: the bytes themselves. */
	} else if (g->input) {
		if ((ty = malloc(sizeof *ty)) == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		typed_init(ty);
	} else {
		if ((rc = term_new(&t, f.header.cols > 0 ? f.header.cols : 80,
		    f.header.rows > 0 ? f.header.rows : 24)) < 0)
			goto out;
		term_set_onlcr(t, !f.header.pty);
		term_set_line_fn(t, grep_screen_line, g);
		term_set_line_join(t, true);
	}
	while (!g->file_done && (rc = rec_reader_next(f.reader, &ev)) == 1) {
		g->time_ns = ev.time_ns;
		if (g->raw) {
			if (g->input ? ev.code == REC_INPUT : ev.code == REC_OUTPUT ||
			    ev.code == REC_STDERR) {
				if (!grep_raw_feed(g, ev.code == REC_STDERR, ev.data, ev.len)) {
					rc = -ENOMEM;
					goto out;
				}
			}
		} else if (ty != NULL) {
			if (ev.code == REC_INPUT)
				typed_feed(ty, ev.data, ev.len, seq, grep_typed_line, g);
		} else {
			term_set_seq(t, seq);
			if (ev.code == REC_OUTPUT || ev.code == REC_STDERR)
				term_write(t, ev.data, ev.len);
			else if (ev.code == REC_RESIZE)
				term_resize(t, ev.cols, ev.rows);
		}
		seq++;
	}
	if (g->file_done)
		rc = 0;
	else if (g->raw) {
		grep_raw_flush(g, 0);
		grep_raw_flush(g, 1);
	} else if (ty != NULL)
		typed_finish(ty, seq, grep_typed_line, g);
	else
		term_finish(t);
	if (g->count) {
		char *p = player_escape_str(path, "-");

		if (p != NULL)
			printf("%s:%llu\n", p, (unsigned long long)g->nmatch);
		free(p);
	}
	if (rc < 0 && player_read_end(&f, rc) == EXIT_USAGE)
		g->error = true;
	rc = 0;
out:
	free(ty);
	term_free(t);
	grep_ring_clear(g);
	player_close(&f);
	g->f = NULL;
	return rc;
}

/* Search recordings. */
int
cmd_grep(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "input", no_argument, NULL, 'I' },
		{ "raw", no_argument, NULL, 'R' },
		{ "regex", no_argument, NULL, 'E' },
		{ "ignore-case", no_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "files-with-matches", no_argument, NULL, 'l' },
		{ "count", no_argument, NULL, 'c' },
		{ "after-context", required_argument, NULL, 'A' },
		{ "before-context", required_argument, NULL, 'B' },
		{ "context", required_argument, NULL, 'C' },
		{ "user", required_argument, NULL, 'u' },
		{ "since", required_argument, NULL, 'S' },
		{ "until", required_argument, NULL, 'U' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct grep_state g;
	bool regex = false, icase = false;
	uint64_t now = rec_now_utc_ns();
	char err[256], *end;
	long n;
	int c, r;

	memset(&g, 0, sizeof g);
	optind = 1;
	while ((c = getopt_long(argc, argv, "IREijlcA:B:C:u:S:U:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			g.list = true;
			break;
		case 'c':
			g.count = true;
			break;
		case 'A':
		case 'B':
		case 'C':
			n = strtol(optarg, &end, 10);
			if (end == optarg || *end != '\0' || n < 0 || n > GREP_MAX_CONTEXT) {
				player_warn("bad context '%s' (0 to %d lines)", optarg,
				    GREP_MAX_CONTEXT);
				return EXIT_USAGE;
			}
			if (c != 'B')
				g.after = (int)n;
			if (c != 'A')
				g.before = (int)n;
			break;
		case 'u':
			g.user = optarg;
			break;
		case 'S':
		case 'U':
			if (when_parse(optarg, now, c == 'S' ? &g.since : &g.until) < 0) {
				player_warn("bad time '%s' (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z], "
				    "or 30m, 2h, 3d ago)", optarg);
				return EXIT_USAGE;
			}
			if (c == 'S')
				g.has_since = true;
			else
				g.has_until = true;
			break;
		case 'v':
			g.verbose = true;
			break;
		case 'I':
			g.input = true;
			break;
		case 'R':
			g.raw = true;
			break;
		case 'E':
			regex = true;
			break;
		case 'i':
			icase = true;
			break;
		case 'j':
			g.json = true;
			break;
		case 'h':
			printf("usage: podgate-player " GREP_USAGE "\n\n"
			    "Search recordings (directories recursively) for text as it was on screen,\n"
			    "rendered by the emulator, or for what was typed. Exit 0 when a line matched,\n"
			    "1 when none did, 2 on an error. Files that are not recordings are skipped.\n\n"
			    "  --input            search what was typed instead of the screen\n"
			    "  --raw              match the recorded bytes, lines cut at line feeds\n"
			    "                     (with --input at Enter too), for text a carriage\n"
			    "                     return or an erase hid; printed escaped (\\r, \\x1b)\n"
			    "  --regex            PATTERN is a POSIX extended regular expression\n"
			    "  -i, --ignore-case  case-insensitive\n"
			    "  -l                 print only the names of files with a match\n"
			    "  -c                 print FILE:COUNT of matching lines for each file\n"
			    "  -A N, -B N, -C N   N lines after, before, around each match\n"
			    "  --user U           only sessions of user U\n"
			    "  --since WHEN       only sessions started at or after WHEN\n"
			    "  --until WHEN       only sessions started at or before WHEN\n"
			    "  -v                 say which files were skipped as not recordings\n"
			    "  --json             one JSON object per matching line\n");
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (argc - optind < 2) {
		player_warn("usage: podgate-player " GREP_USAGE);
		return EXIT_USAGE;
	}
	if ((r = search_init(&g.search, argv[optind], regex, icase, err, sizeof err)) < 0) {
		player_warn("bad pattern '%s': %s", argv[optind], r == -ENOMEM ? "out of memory" : err);
		return EXIT_USAGE;
	}
	r = walk_paths(argv + optind + 1, argc - optind - 1, grep_file, &g);
	search_free(&g.search);
	grep_ring_clear(&g);
	free(g.rawbuf[0]);
	free(g.rawbuf[1]);
	if (fflush(stdout) != 0) {
		player_warn("write: %s", strerror(errno));
		return EXIT_USAGE;
	}
	if (r == -ENOMEM)
		player_warn("out of memory");
	if (r < 0 || g.error)
		return EXIT_USAGE;
	return g.matched ? 0 : 1;
}
