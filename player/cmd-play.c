/*
 * podgate-player play: replay a recording in a curses UI. The recording is
 * indexed first (keyframes, markers, rendered and typed lines), so seeking
 * and search replay only from the nearest keyframe.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curses.h>

#include "display.h"
#include "index.h"
#include "player.h"
#include "search.h"
#include "when.h"

#define PLAY_USAGE "play FILE [--speed X] [--idle-limit SECS] [--start TIME] [--regex] [-i]"
#define NS 1000000000ull
#define PLAY_OVERLAY_LINES 6
#define PLAY_MAX_MATCHES 1000000
#define PLAY_STEP_BUDGET_NS 30000000ull	/* replay at most this long per frame */

static const double play_speeds[] = { 0.25, 0.5, 1, 2, 4, 8, 16 };
#define PLAY_NSPEEDS (sizeof play_speeds / sizeof play_speeds[0])

static const char *const play_help[] = {
	"podgate-player play: keys",
	"",
	"  space        pause / resume",
	"  .            step one event (while paused)",
	"  + / -        faster / slower (0.25x to 16x)",
	"  left/right   back / forward 5 seconds",
	"  PgUp/PgDn    back / forward 60 seconds",
	"  0 ... 9      jump to 0% ... 90%",
	"  g / G        start / end",
	"  ] / [        next / previous marker",
	"  / and ?      search forward / backward (prefix re: for a regular expression)",
	"  n / N        next / previous match",
	"  i            show / hide what was typed",
	"  H J K L      pan the view left, down, up, right (also shift+arrows)",
	"               when the recording is larger than this terminal",
	"  h            this help (any key closes it)",
	"  q            quit",
	"",
	"Search finds text as it was on screen (also lines that scrolled off) and",
	"what was typed, and stops where the match first became visible.",
	NULL,
};

/* The player's state. */
struct play {
	struct index *ix;
	struct index_cursor *cur;
	struct display *disp;
	uint64_t pos;		/* playback position, ns since the start */
	uint64_t wall;		/* monotonic time of the last update */
	size_t speed;		/* index into play_speeds */
	uint64_t idle_ns;	/* longest pause played (0: no limit) */
	uint64_t seeked;	/* where the last seek landed: a pause counts from there */
	bool paused;
	bool overlay;
	bool help;
	int pan_row, pan_col;
	/* Search. */
	bool regex, icase;
	bool has_search;
	struct search search;
	struct index_match *matches;
	size_t nmatches;
	bool more_matches;
	size_t match;		/* the match shown, when nmatches > 0 */
	bool match_shown;
	char message[160];
	const char *integrity;	/* verified / modified, when known */
};

/* Monotonic time in nanoseconds. */
static uint64_t
play_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

/* Show where indexing got to on stderr. */
static void
play_progress(void *arg, uint64_t done)
{
	uint64_t *total = arg;

	if (*total > 0 && isatty(STDERR_FILENO))
		fprintf(stderr, "\rindexing %3u%%", (unsigned)(done * 100 / *total));
}

/* Seek to time t (clamped) and remember it as the position. */
static void
play_seek(struct play *p, int64_t t)
{
	uint64_t to = t < 0 ? 0 : (uint64_t)t;

	if (to > p->ix->duration_ns)
		to = p->ix->duration_ns;
	if (index_cursor_seek_time(p->cur, to) < 0)
		snprintf(p->message, sizeof p->message, "seek failed");
	p->pos = to;
	p->seeked = to;
	p->match_shown = false;
}

/* Seek to the state at seq and set the position to its time. */
static void
play_seek_seq(struct play *p, uint64_t seq)
{
	if (index_cursor_seek_seq(p->cur, seq) < 0)
		snprintf(p->message, sizeof p->message, "seek failed");
	p->pos = p->cur->time_ns;
	p->seeked = p->pos;
	p->match_shown = false;
}

/* Advance playback to the wall clock, within a time budget. */
static void
play_advance(struct play *p)
{
	const struct rec_event *ev;
	uint64_t now = play_now(), start = now, base;

	if (!p->paused && !p->help)
		p->pos += (uint64_t)((double)(now - p->wall) * play_speeds[p->speed]);
	p->wall = now;
	while (index_cursor_peek(p->cur, &ev) == 1) {
		/* A long pause is cut to the idle limit. */
		base = p->cur->time_ns > p->seeked ? p->cur->time_ns : p->seeked;
		if (p->idle_ns > 0 && ev->time_ns > base + p->idle_ns &&
		    p->pos >= base + p->idle_ns && p->pos < ev->time_ns)
			p->pos = ev->time_ns;
		if (ev->time_ns > p->pos)
			break;
		if (index_cursor_step(p->cur) <= 0)
			break;
		if (play_now() - start > PLAY_STEP_BUDGET_NS) {
			/* Behind: let the clock wait for the replay. */
			p->pos = p->cur->time_ns;
			break;
		}
	}
	if (p->cur->at_end || p->pos >= p->ix->duration_ns) {
		if (p->pos > p->ix->duration_ns)
			p->pos = p->ix->duration_ns;
		if (index_cursor_peek(p->cur, &ev) == 0)
			p->pos = p->ix->duration_ns;
	}
}

/* Milliseconds until the next event is due (capped). */
static int
play_timeout(struct play *p)
{
	const struct rec_event *ev;
	uint64_t wait;

	if (p->paused || p->help || index_cursor_peek(p->cur, &ev) != 1)
		return 250;
	if (ev->time_ns <= p->pos)
		return 0;
	wait = (uint64_t)((double)(ev->time_ns - p->pos) / play_speeds[p->speed]);
	if (p->idle_ns > 0 && ev->time_ns - p->cur->time_ns > p->idle_ns)
		wait = 1000000;
	wait /= 1000000;
	return wait > 50 ? 50 : (int)wait;
}

/* Append "  part" to the status line when part is not empty. */
static void
play_status_add(char *buf, size_t cap, const char *part)
{
	size_t n = strlen(buf);

	if (part[0] != '\0' && n < cap)
		snprintf(buf + n, cap - n, "  %s", part);
}

/*
 * Format the status line: mode, position / duration, speed, user@target,
 * the match shown, the recording's state and integrity, the viewport when
 * panning, a message, and where help is.
 */
static void
play_status(struct play *p, char *buf, size_t cap)
{
	const struct rec_header *h = &p->ix->file->header;
	char pos[32], dur[32], part[200];
	const struct rec_event *ev;
	const char *mode;
	int cols, rows, vc, vr;

	when_format_offset(p->pos, pos, sizeof pos);
	when_format_offset(p->ix->duration_ns, dur, sizeof dur);
	if (index_cursor_peek(p->cur, &ev) == 0)
		mode = "END";
	else
		mode = p->paused ? "PAUSED" : "PLAYING";
	snprintf(buf, cap, " %s %s / %s", mode, pos, dur);
	snprintf(part, sizeof part, "%gx", play_speeds[p->speed]);
	play_status_add(buf, cap, part);
	snprintf(part, sizeof part, "%.80s@%.80s", h->user != NULL ? h->user : "-",
	    h->target != NULL ? h->target : "-");
	play_status_add(buf, cap, part);
	part[0] = '\0';
	if (p->has_search)
		snprintf(part, sizeof part, "match %zu/%zu%s", p->nmatches > 0 ? p->match + 1 : 0,
		    p->nmatches, p->more_matches ? "+" : "");
	play_status_add(buf, cap, part);
	play_status_add(buf, cap, p->ix->state);
	/* The integrity check's verdict (verified / modified) goes here when known. */
	play_status_add(buf, cap, p->integrity != NULL ? p->integrity : "");
	term_size(p->cur->term, &cols, &rows);
	display_size(p->disp, &vc, &vr);
	part[0] = '\0';
	if (cols > vc || rows > vr - 1)
		snprintf(part, sizeof part, "view %dx%d+%d+%d", cols, rows, p->pan_col, p->pan_row);
	play_status_add(buf, cap, part);
	play_status_add(buf, cap, p->message);
	play_status_add(buf, cap, "h:help");
}

/* The typed lines up to the position, and the line being typed. */
static size_t
play_typed(struct play *p, const char **lines, char *partial, size_t cap)
{
	size_t n = 0, i, hi = p->ix->ninputs, lo = 0, first;

	/* Inputs ended before the cursor's next event. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->ix->inputs[mid].seq < p->cur->seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	first = lo > PLAY_OVERLAY_LINES - 1 ? lo - (PLAY_OVERLAY_LINES - 1) : 0;
	for (i = first; i < lo; i++)
		lines[n++] = p->ix->inputs[i].text;
	if (p->cur->typed.len > 0) {
		size_t len = p->cur->typed.len < cap - 1 ? p->cur->typed.len : cap - 1;

		memcpy(partial, p->cur->typed.line, len);
		partial[len] = '\0';
		lines[n++] = partial;
	}
	return n;
}

/* Draw the current state. */
static void
play_draw(struct play *p)
{
	struct display_frame f;
	const char *lines[PLAY_OVERLAY_LINES + 1];
	char status[512], partial[512];

	memset(&f, 0, sizeof f);
	play_status(p, status, sizeof status);
	f.term = p->cur->term;
	f.pan_row = p->pan_row;
	f.pan_col = p->pan_col;
	f.status = status;
	f.highlight = p->has_search && p->match_shown ? &p->search : NULL;
	if (p->overlay) {
		f.noverlay = play_typed(p, lines, partial, sizeof partial);
		f.overlay = lines;
	}
	if (p->help)
		f.help = play_help;
	display_draw(p->disp, &f);
	p->pan_row = f.pan_row;
	p->pan_col = f.pan_col;
}

/* Show match i. */
static void
play_show_match(struct play *p, size_t i)
{
	p->match = i;
	if (index_cursor_reveal(p->cur, &p->search, &p->matches[i]) < 0)
		snprintf(p->message, sizeof p->message, "seek failed");
	p->pos = p->cur->time_ns;
	p->seeked = p->pos;
	p->paused = true;
	p->match_shown = true;
	if (p->matches[i].kind == INDEX_INPUT)
		p->overlay = true;
}

/* Ask for a pattern and go to the first match in one direction. */
static void
play_search(struct play *p, bool forward)
{
	char buf[256], err[200];
	const char *pat = buf;
	bool regex = p->regex;
	size_t i;
	int r;

	if (display_prompt(p->disp, forward ? "/" : "?", buf, sizeof buf) < 0 || buf[0] == '\0')
		return;
	if (strncmp(buf, "re:", 3) == 0) {
		regex = true;
		pat += 3;
	}
	if (p->has_search) {
		search_free(&p->search);
		free(p->matches);
		p->matches = NULL;
		p->nmatches = 0;
		p->has_search = false;
	}
	if ((r = search_init(&p->search, pat, regex, p->icase, err, sizeof err)) < 0) {
		snprintf(p->message, sizeof p->message, "bad pattern: %.100s", err);
		return;
	}
	p->has_search = true;
	if (index_search(p->ix, &p->search, PLAY_MAX_MATCHES, &p->matches, &p->nmatches,
	    &p->more_matches) < 0) {
		snprintf(p->message, sizeof p->message, "search failed");
		return;
	}
	if (p->nmatches == 0) {
		snprintf(p->message, sizeof p->message, "no match for '%.100s'", pat);
		return;
	}
	if (forward) {
		for (i = 0; i < p->nmatches && p->matches[i].seq_to < p->cur->seq; i++)
			;
		if (i == p->nmatches) {
			i = 0;
			snprintf(p->message, sizeof p->message, "search wrapped");
		}
	} else {
		for (i = p->nmatches; i > 0 && p->matches[i - 1].seq_to + 1 >= p->cur->seq; i--)
			;
		if (i == 0) {
			i = p->nmatches;
			snprintf(p->message, sizeof p->message, "search wrapped");
		}
		i--;
	}
	play_show_match(p, i);
}

/* Go to the next or previous marker. */
static void
play_marker(struct play *p, bool next)
{
	const struct index *ix = p->ix;
	size_t i;

	if (next) {
		for (i = 0; i < ix->nmarkers; i++)
			if (ix->markers[i].seq >= p->cur->seq) {
				play_seek_seq(p, ix->markers[i].seq + 1);
				snprintf(p->message, sizeof p->message, "marker: %.100s",
				    ix->markers[i].label);
				return;
			}
	} else {
		for (i = ix->nmarkers; i > 0; i--)
			if (ix->markers[i - 1].seq + 1 < p->cur->seq) {
				play_seek_seq(p, ix->markers[i - 1].seq + 1);
				snprintf(p->message, sizeof p->message, "marker: %.100s",
				    ix->markers[i - 1].label);
				return;
			}
	}
	snprintf(p->message, sizeof p->message, "no %s marker", next ? "next" : "previous");
}

/* Act on one key; false to quit. */
static bool
play_key(struct play *p, int c)
{
	int64_t pos = (int64_t)p->pos;

	if (p->help) {
		p->help = false;
		return c != 'q';
	}
	p->message[0] = '\0';
	switch (c) {
	case 'q':
		return false;
	case ' ':
		p->paused = !p->paused;
		if (!p->paused && p->cur->at_end)
			play_seek_seq(p, 0);
		break;
	case '.':
		if (p->paused) {
			if (index_cursor_step(p->cur) == 1)
				p->pos = p->cur->time_ns;
		}
		break;
	case '+':
	case '=':
		if (p->speed + 1 < PLAY_NSPEEDS)
			p->speed++;
		break;
	case '-':
	case '_':
		if (p->speed > 0)
			p->speed--;
		break;
	case KEY_LEFT:
		play_seek(p, pos - 5 * (int64_t)NS);
		break;
	case KEY_RIGHT:
		play_seek(p, pos + 5 * (int64_t)NS);
		break;
	case KEY_PPAGE:
		play_seek(p, pos - 60 * (int64_t)NS);
		break;
	case KEY_NPAGE:
		play_seek(p, pos + 60 * (int64_t)NS);
		break;
	case 'g':
	case KEY_HOME:
		play_seek_seq(p, 0);
		p->pos = 0;
		break;
	case 'G':
	case KEY_END:
		play_seek_seq(p, p->ix->nevents);
		p->pos = p->ix->duration_ns;
		break;
	case ']':
		play_marker(p, true);
		break;
	case '[':
		play_marker(p, false);
		break;
	case '/':
	case '?':
		play_search(p, c == '/');
		break;
	case 'n':
	case 'N':
		if (p->has_search && p->nmatches > 0)
			play_show_match(p, c == 'n' ? (p->match + 1) % p->nmatches :
			    (p->match + p->nmatches - 1) % p->nmatches);
		else
			snprintf(p->message, sizeof p->message, "no search");
		break;
	case 'i':
		p->overlay = !p->overlay;
		break;
	case 'h':
		p->help = true;
		break;
	case 'H':
	case KEY_SLEFT:
		p->pan_col -= 8;
		break;
	case 'L':
	case KEY_SRIGHT:
		p->pan_col += 8;
		break;
	case 'K':
	case KEY_SR:
		p->pan_row -= 4;
		break;
	case 'J':
	case KEY_SF:
		p->pan_row += 4;
		break;
	default:
		if (c >= '0' && c <= '9')
			play_seek(p, (int64_t)(p->ix->duration_ns / 10 * (uint64_t)(c - '0')));
		break;
	}
	return true;
}

/* Play a recording. */
int
cmd_play(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "speed", required_argument, NULL, 's' },
		{ "idle-limit", required_argument, NULL, 'l' },
		{ "start", required_argument, NULL, 't' },
		{ "regex", no_argument, NULL, 'E' },
		{ "ignore-case", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct player_file f;
	struct play p;
	struct rec_verify verdict;
	struct stat sb;
	double speed = 1, idle = 2;
	uint64_t start = 0, total;
	char *end;
	int c, r, st = 0;
	size_t i;

	memset(&p, 0, sizeof p);
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:l:t:Eih", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			speed = strtod(optarg, &end);
			if (*end != '\0' || !(speed >= 0.25 && speed <= 16)) {
				player_warn("bad speed '%s' (0.25 to 16)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'l':
			idle = strtod(optarg, &end);
			if (*end != '\0' || !(idle >= 0 && idle <= 86400)) {
				player_warn("bad idle limit '%s' (seconds, 0 for none)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 't':
			if (when_parse_offset(optarg, &start) < 0) {
				player_warn("bad start time '%s' (seconds, M:SS or H:MM:SS)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'E':
			p.regex = true;
			break;
		case 'i':
			p.icase = true;
			break;
		case 'h':
			printf("usage: podgate-player " PLAY_USAGE "\n\n");
			for (i = 2; play_help[i] != NULL; i++)
				printf("%s\n", play_help[i]);
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		player_warn("usage: podgate-player " PLAY_USAGE);
		return EXIT_USAGE;
	}
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		player_warn("play needs a terminal");
		return EXIT_USAGE;
	}
	/* The nearest listed speed at or above the one asked for. */
	for (p.speed = 0; p.speed + 1 < PLAY_NSPEEDS && play_speeds[p.speed] < speed; p.speed++)
		;
	p.idle_ns = (uint64_t)(idle * 1e9);
	/* The status line shows whether the file is whole and signed. */
	if (player_verify_path(argv[optind], &verdict) == 0 &&
	    (verdict.verdict == REC_SEALED || verdict.verdict == REC_MODIFIED))
		p.integrity = verdict.verdict == REC_SEALED ? "verified" : "MODIFIED";
	if (player_open(&f, argv[optind]) < 0)
		return EXIT_USAGE;
	total = fstat(f.fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	r = index_build(&p.ix, &f, play_progress, &total);
	if (isatty(STDERR_FILENO) && total >= (16u << 20))
		fputs("\r\033[K", stderr);
	if (r < 0) {
		player_warn("%s: %s", f.path, rec_strerror(r));
		player_close(&f);
		return EXIT_USAGE;
	}
	if ((r = index_cursor_new(&p.cur, p.ix)) < 0) {
		player_warn("%s: %s", f.path, rec_strerror(r));
		st = EXIT_USAGE;
		goto out;
	}
	if (start > 0)
		play_seek(&p, (int64_t)start);
	if ((r = display_open(&p.disp)) < 0) {
		player_warn("cannot start the display");
		st = EXIT_USAGE;
		goto out;
	}
	p.wall = play_now();
	for (;;) {
		play_advance(&p);
		play_draw(&p);
		if ((c = display_key(p.disp, play_timeout(&p))) < 0)
			continue;
		if (c == KEY_RESIZE)
			continue;
		if (!play_key(&p, c))
			break;
		p.wall = play_now();
	}
	display_close(p.disp);
	if (p.ix->rc < 0) {
		player_warn("%s: %s", f.path, p.ix->error);
		st = EXIT_DAMAGED;
	}
out:
	if (p.has_search)
		search_free(&p.search);
	free(p.matches);
	index_cursor_free(p.cur);
	index_free(p.ix);
	player_close(&f);
	return st;
}
