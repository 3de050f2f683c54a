/*
 * podgate-player grep: search many recordings for text as it appeared on
 * screen (rendered through the emulator, so escape sequences and cursor
 * moves do not split a command), or for what was typed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "player.h"
#include "search.h"
#include "term.h"
#include "typed.h"
#include "walk.h"
#include "when.h"

#define GREP_USAGE "grep PATTERN PATH... [--input] [--regex] [-i] [--json]"

struct grep_state {
	struct search search;
	bool input, json;
	bool matched;
	bool error;
	struct player_file *f;
	uint64_t time_ns;	/* time of the event being processed */
};

/* Print one matching line. */
static void
grep_print(struct grep_state *g, const char *text, size_t len)
{
	const struct rec_header *h = &g->f->header;
	const char *user = h->user != NULL ? h->user : "-";
	const char *target = h->target != NULL ? h->target : "-";
	char when[32];

	g->matched = true;
	if (!g->json) {
		when_format_offset(g->time_ns, when, sizeof when);
		printf("%s  %s  %s@%s  %.*s\n", g->f->path, when, user, target, (int)len, text);
		return;
	}
	fputs("{\"file\":", stdout);
	rec_json_string(stdout, g->f->path, strlen(g->f->path));
	fputs(",\"session\":", stdout);
	rec_json_string(stdout, h->session_id, strlen(h->session_id));
	printf(",\"time_ns\":%llu,\"time\":%.3f,\"user\":", (unsigned long long)g->time_ns,
	    (double)g->time_ns / 1e9);
	rec_json_string(stdout, user, strlen(user));
	fputs(",\"target\":", stdout);
	rec_json_string(stdout, target, strlen(target));
	printf(",\"kind\":\"%s\",\"line\":", g->input ? "input" : "screen");
	rec_json_string(stdout, text, len);
	fputs("}\n", stdout);
}

/* A rendered row: print it when it matches. */
static void
grep_screen_line(void *arg, const char *text, size_t len, uint64_t since, uint64_t seq)
{
	struct grep_state *g = arg;
	size_t so, eo;

	if (search_find(&g->search, text, len, 0, &so, &eo))
		grep_print(g, text, len);
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

	if (player_open(&f, path) < 0) {
		if (named)
			g->error = true;
		return 0;
	}
	g->f = &f;
	g->time_ns = 0;
	if (g->input) {
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
	}
	while ((rc = rec_reader_next(f.reader, &ev)) == 1) {
		g->time_ns = ev.time_ns;
		if (ty != NULL) {
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
	if (ty != NULL)
		typed_finish(ty, seq, grep_typed_line, g);
	else
		term_finish(t);
	if (rc < 0 && player_read_end(&f, rc) == EXIT_USAGE)
		g->error = true;
	rc = 0;
out:
	free(ty);
	term_free(t);
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
		{ "regex", no_argument, NULL, 'E' },
		{ "ignore-case", no_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct grep_state g;
	bool regex = false, icase = false;
	char err[256];
	int c, r;

	memset(&g, 0, sizeof g);
	optind = 1;
	while ((c = getopt_long(argc, argv, "IEijh", opts, NULL)) != -1) {
		switch (c) {
		case 'I':
			g.input = true;
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
			printf("usage: podgate-player " GREP_USAGE "\n");
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
