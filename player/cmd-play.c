/*
 * podgate-player play: replay a recording in a curses UI. The recording is
 * indexed first (keyframes, markers, rendered and typed lines), so seeking
 * and search replay only from the nearest keyframe. With -f, a recording
 * still being written is followed as tail -f follows a file: the index is
 * extended as it grows, until it is sealed or the reviewer quits. A
 * recording in object storage is played the same way while the rest of it
 * is downloaded, and with -f followed as the broker ships it.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "play.h"
#include "player.h"
#include "remote.h"
#include "search.h"
#include "trust.h"
#include "walk.h"
#include "when.h"

#define PLAY_USAGE "play FILE|ID [-f] [--speed X] [--idle-limit SECS] [--start TIME] [--regex] " \
    "[-i] [--key PUB]... [--dir DIR]"
#define PLAY_MAX_MATCHES 100000	/* bounds the memory a search takes (~5 MB) */
#define PLAY_STEP_BUDGET_NS 30000000ull	/* replay at most this long per frame */

#define PLAY_MIN_SPEED (1.0 / 64)
#define PLAY_MAX_SPEED 64.0
#define PLAY_STEP_MAX 100000	/* events '.' looks through for a visible one */
#define PLAY_FOLLOW_NS (NS / 5)	/* -f: how often to look for more */
#define PLAY_SETTLE_NS NS	/* -f: quiet this long after the exit or seal: the end */

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
		p->pos += (uint64_t)((double)(now - p->wall) * p->speed);
	p->wall = now;
	/* Paused inside an event at a search hit: stay there. */
	while (!(p->paused && p->cur->partial > 0) && index_cursor_peek(p->cur, &ev) == 1) {
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

	if (p->ix->live != NULL && p->ix->live_more)
		return 0;	/* more of a growing file to index */
	if (p->paused || p->help || index_cursor_peek(p->cur, &ev) != 1)
		return 250;
	if (ev->time_ns <= p->pos)
		return 0;
	wait = (uint64_t)((double)(ev->time_ns - p->pos) / p->speed);
	if (p->idle_ns > 0 && ev->time_ns - p->cur->time_ns > p->idle_ns)
		wait = 1000000;
	wait /= 1000000;
	return wait > 50 ? 50 : (int)wait;
}

/*
 * Pan a viewport smaller than the recording to the match on screen: the
 * row showing the matched line, and the columns of the match in it.
 */
static void
play_pan_to_match(struct play *p, const struct index_match *m)
{
	int cols, rows, vc, vr, row, best = -1, bcol = 0, bend = 0;
	size_t cap, n, so, eo;
	char *buf;
	int *map;

	term_size(p->cur->term, &cols, &rows);
	display_size(p->disp, &vc, &vr);
	vr -= vr >= 8 ? 2 : 1;	/* the status line and the timeline */
	if (cols <= vc && rows <= vr)
		return;
	cap = (size_t)cols * VTERM_MAX_CHARS_PER_CELL * 4 + 1;
	buf = malloc(cap);
	map = malloc(cap * sizeof *map);
	for (row = 0; buf != NULL && map != NULL && row < rows; row++) {
		n = term_row_text(p->cur->term, row, buf, cap, map);
		if (n == 0 || !search_find(&p->search, buf, n, 0, &so, &eo) || eo == 0)
			continue;
		if (best < 0 || (n <= m->len && memcmp(buf, m->text, n) == 0)) {
			best = row;
			bcol = map[so];
			bend = map[eo - 1];
			if (n <= m->len && memcmp(buf, m->text, n) == 0)
				break;
		}
	}
	free(buf);
	free(map);
	if (best < 0)
		return;
	if (best < p->pan_row || best >= p->pan_row + vr)
		p->pan_row = best - vr / 2;
	if (bcol < p->pan_col || bend >= p->pan_col + vc)
		p->pan_col = bend - bcol < vc ? bcol - (vc - (bend - bcol)) / 2 : bcol;
	if (p->pan_row < 0)
		p->pan_row = 0;
	if (p->pan_col < 0)
		p->pan_col = 0;
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
	else
		play_pan_to_match(p, &p->matches[i]);
}

/* Search for pat and go to the first match in one direction. */
static void
play_search_run(struct play *p, const char *pat, bool regex, bool forward)
{
	char err[200];
	size_t i;
	int r;

	if (p->ix->log_error[0] != '\0') {
		snprintf(p->message, sizeof p->message, "%s", p->ix->log_error);
		return;
	}
	if (pat != p->pattern)
		snprintf(p->pattern, sizeof p->pattern, "%s", pat);
	p->pattern_regex = regex;
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

/* Ask for a pattern and go to the first match in one direction. */
static void
play_search(struct play *p, bool forward)
{
	char buf[256];
	const char *pat;
	bool regex;

	if (play_ask_pattern(p, forward, buf, sizeof buf, &pat, &regex))
		play_search_run(p, pat, regex, forward);
}

/* Go to the next or previous marker. */
static void
play_marker(struct play *p, bool next)
{
	const struct index *ix = p->ix;
	const char *what = NULL, *text = NULL;
	uint64_t best = 0, seq;
	size_t i, len = 0, nm = ix->nmarkers, ni = ix->ninputs;
	bool found = false;
	char status[64], *e;

	/*
	 * The nearest broker marker, end of a typed command line, or shell
	 * prompt (OSC 133); at one event, a marker first, then a command.
	 */
	for (i = 0; i < nm + ni + ix->nprompts; i++) {
		if (i < nm)
			seq = ix->markers[i].seq;
		else if (i < nm + ni)
			seq = ix->inputs[i - nm].seq;
		else
			seq = ix->prompts[i - nm - ni].seq;
		if (i >= nm && i < nm + ni && ix->inputs[i - nm].len == 0)
			continue;	/* Enter alone is not a command */
		if (next ? seq < p->cur->seq : seq + 1 >= p->cur->seq)
			continue;
		if (found && (next ? seq >= best : seq <= best))
			continue;
		found = true;
		best = seq;
		if (i < nm) {
			what = "marker";
			text = ix->markers[i].label;
			len = strlen(text);
		} else if (i < nm + ni) {
			what = "command";
			text = ix->inputs[i - nm].text;
			len = ix->inputs[i - nm].len;
		} else {
			what = "prompt";
			if (ix->prompts[i - nm - ni].status >= 0)
				snprintf(status, sizeof status, "the command before exited %d",
				    ix->prompts[i - nm - ni].status);
			else
				snprintf(status, sizeof status, "marked by the shell");
			text = status;
			len = strlen(status);
		}
	}
	if (!found) {
		snprintf(p->message, sizeof p->message, "no %s marker or command",
		    next ? "next" : "previous");
		return;
	}
	play_seek_seq(p, best + 1);
	e = player_escape(text, len);
	snprintf(p->message, sizeof p->message, "%s: %.100s", what, e != NULL ? e : "");
	free(e);
}

/*
 * Step to the next event that shows: output that changes the screen, a
 * resize, a marker, or typed input while it is shown.
 */
static void
play_step(struct play *p)
{
	const struct rec_event *ev;
	bool shows = false;
	int i;

	(void)term_take_damage(p->cur->term);
	for (i = 0; i < PLAY_STEP_MAX && !shows; i++) {
		if (index_cursor_peek(p->cur, &ev) != 1)
			break;
		shows = ev->code == REC_RESIZE || ev->code == REC_MARKER ||
		    (ev->code == REC_INPUT && p->overlay);
		if (index_cursor_step(p->cur) != 1)
			break;
		p->pos = p->cur->time_ns;
		shows = shows || term_take_damage(p->cur->term);
	}
}

/* y: keep the text of the screen shown, to print when play ends. */
static void
play_copy(struct play *p)
{
	int cols, rows, r, last;
	size_t cap, n;
	char *row;

	term_size(p->cur->term, &cols, &rows);
	cap = (size_t)cols * VTERM_MAX_CHARS_PER_CELL * 4 + 1;
	if ((row = malloc(cap)) == NULL)
		goto nomem;
	for (last = rows - 1; last >= 0 && term_row_text(p->cur->term, last, row, cap, NULL) == 0;
	    last--)
		;
	for (r = 0; r <= last; r++) {
		n = term_row_text(p->cur->term, r, row, cap, NULL);
		buf_add(&p->copied, row, n);
		buf_add(&p->copied, "\n", 1);
	}
	if (p->copied.oom)
		goto nomem;
	free(row);
	snprintf(p->message, sizeof p->message, "screen copied: printed when play ends");
	return;
nomem:
	free(row);
	snprintf(p->message, sizeof p->message, "out of memory");
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
	case 3:		/* Ctrl-C: the terminal is in raw mode */
		return false;
	case 'y':
		play_copy(p);
		break;
	case 'v':
		play_scroll(p);
		break;
	case ' ':
		p->paused = !p->paused;
		if (!p->paused && p->cur->at_end && p->ix->live == NULL)
			play_seek_seq(p, 0);
		break;
	case '.':
		if (p->paused)
			play_step(p);
		break;
	case '+':
	case '=':
	case '>':
		if (p->speed * 2 <= PLAY_MAX_SPEED)
			p->speed *= 2;
		break;
	case '-':
	case '_':
	case '<':
		if (p->speed / 2 >= PLAY_MIN_SPEED)
			p->speed /= 2;
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
	case 'c':
		p->icase = !p->icase;
		if (p->has_search)
			play_search_run(p, p->pattern, p->pattern_regex, true);
		if (p->message[0] == '\0' || strncmp(p->message, "search wrapped", 14) == 0)
			snprintf(p->message, sizeof p->message, "search %s case",
			    p->icase ? "ignores" : "matches");
		break;
	case '{':
	case '}':
		if (c == '}')
			p->idle_ns = p->idle_ns == 0 ? NS : p->idle_ns * 2;
		else
			p->idle_ns /= 2;
		if (p->idle_ns > 3600 * NS)
			p->idle_ns = 3600 * NS;
		if (p->idle_ns < NS / 8)
			p->idle_ns = 0;
		if (p->idle_ns == 0)
			snprintf(p->message, sizeof p->message, "idle limit: none");
		else
			snprintf(p->message, sizeof p->message, "idle limit: %gs",
			    (double)p->idle_ns / 1e9);
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

/* The state and signer shown, from a verification of the file as it is now. */
static void
play_verdict(struct play *p, const char *file, const struct trust *trust)
{
	struct rec_verify verdict;
	struct trust_events te = { 0 };
	int vrc;

	vrc = player_verify_path(file, &verdict);
	p->integrity = trust_word(trust, &verdict, vrc);
	/* The state comes from the verified seal, not from unsigned events. */
	te.read_rc = p->ix->rc;
	te.exited = p->ix->exited;
	te.exit_offset = 0;
	te.writing = rec_being_written(p->ix->file->fd);	/* a local copy of s3:// is not */
	p->state = p->ix->live == NULL ? trust_state(&verdict, vrc, &te) :
	    p->loading && !p->follow ? "loading" : "live";
	if (strcmp(p->integrity, "MODIFIED") == 0) {
		p->state = "MODIFIED";
		p->integrity = "";
	}
}

/*
 * The log the matches point into is mapped anew when the index grows:
 * find them again, keeping the one shown.
 */
static void
play_research(struct play *p)
{
	if (!p->has_search)
		return;
	free(p->matches);
	p->matches = NULL;
	p->nmatches = 0;
	if (index_search(p->ix, &p->search, PLAY_MAX_MATCHES, &p->matches, &p->nmatches,
	    &p->more_matches) < 0)
		snprintf(p->message, sizeof p->message, "search failed");
	if (p->match >= p->nmatches)
		p->match = p->nmatches > 0 ? p->nmatches - 1 : 0;
	if (p->nmatches == 0)
		p->match_shown = false;
}

/*
 * -f, or an s3:// recording still downloading: index what was written
 * since the last look. Playing at the end of what was there goes on with
 * the new events at once (the clock jumps to the first of them). Following
 * ends when the recording has been quiet for a while after its exit status
 * or seal (a download: when it is over), or when it turns out damaged;
 * the state and signer are then checked again.
 */
static void
play_follow(struct play *p, const char *file, const struct trust *trust)
{
	const struct rec_event *ev;
	uint64_t now = play_now();
	const char *why;
	bool at_edge;
	int r, done, grew;

	/* More is waiting to be indexed: no pause between the steps. */
	if (p->ix->live == NULL || (!p->ix->live_more && now - p->follow_polled < PLAY_FOLLOW_NS))
		return;
	p->follow_polled = now;
	/* Downloading: what is read now is all there will be once it is over. */
	if (p->loading && (done = remote_stream_poll(&why)) != 0) {
		p->loading = false;
		p->downloaded = true;
		if (done < 0)
			snprintf(p->message, sizeof p->message, "download stopped: %.120s", why);
	}
	at_edge = index_cursor_peek(p->cur, &ev) == 0;
	if ((grew = index_extend(p->ix)) < 0) {
		snprintf(p->message, sizeof p->message, "follow: %s", rec_strerror(grew));
		(void)index_end(p->ix);
	} else if (grew == 1) {
		p->follow_grew = now;
		play_research(p);
		if ((r = index_cursor_resume(p->cur)) < 0)
			snprintf(p->message, sizeof p->message, "follow: %s", rec_strerror(r));
		if (at_edge && !p->paused && index_cursor_peek(p->cur, &ev) == 1 &&
		    ev->time_ns > p->pos)
			p->pos = ev->time_ns;
	}
	/* The end: all of a download indexed, or a file quiet after its end. */
	if (p->ix->live != NULL && !p->ix->live_more && grew == 0 && (p->downloaded ||
	    (!p->loading && (p->ix->sealed || p->ix->exited) &&
	    now - p->follow_grew >= PLAY_SETTLE_NS))) {
		if ((r = index_end(p->ix)) < 0)
			snprintf(p->message, sizeof p->message, "follow: %s", rec_strerror(r));
		play_research(p);
	}
	if (p->ix->live == NULL)
		play_verdict(p, file, trust);
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
		{ "key", required_argument, NULL, 'k' },
		{ "dir", required_argument, NULL, 'd' },
		{ "follow", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct player_file f;
	struct play p;
	struct trust trust;
	struct stat sb;
	char **keys, *file = NULL;
	const char *dir = NULL;
	size_t nkeys = 0;
	bool follow = false;
	double speed = 1, idle = 2;
	uint64_t start = 0, total;
	char *end;
	int c, r, st = 0;
	size_t i;

	memset(&p, 0, sizeof p);
	if ((keys = calloc((size_t)argc, sizeof *keys)) == NULL)
		return EXIT_USAGE;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:l:t:Eik:d:fh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			speed = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || !(speed >= PLAY_MIN_SPEED &&
			    speed <= PLAY_MAX_SPEED)) {
				player_warn("bad speed '%s' (a number from 1/64 to 64)", optarg);
				free(keys);
				return EXIT_USAGE;
			}
			break;
		case 'l':
			idle = strtod(optarg, &end);
			if (*end != '\0' || !(idle >= 0 && idle <= 86400)) {
				player_warn("bad idle limit '%s' (seconds, 0 for none)", optarg);
				free(keys);
				return EXIT_USAGE;
			}
			break;
		case 't':
			if (when_parse_offset(optarg, &start) < 0) {
				player_warn("bad start time '%s' (seconds, M:SS or H:MM:SS)", optarg);
				free(keys);
				return EXIT_USAGE;
			}
			break;
		case 'E':
			p.regex = true;
			break;
		case 'i':
			p.icase = true;
			break;
		case 'k':
			keys[nkeys++] = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'f':
			follow = true;
			break;
		case 'h':
			printf("usage: podgate-player " PLAY_USAGE "\n\n"
			    "  -f               follow a recording still being written, as tail -f:\n"
			    "                   play on as it grows (LIVE at its end) until it is\n"
			    "                   sealed or q quits (s3://: as its segments come)\n"
			    "  --speed X        play X times as fast (1/64 to 64, any number: 1.7)\n"
			    "  --idle-limit S   play pauses longer than S seconds as S (0: as recorded)\n"
			    "  --start TIME     start at TIME (seconds, M:SS or H:MM:SS)\n"
			    "  --regex          searches are POSIX extended regular expressions\n"
			    "  -i               searches ignore case\n"
			    "  --key PUB        trust this signing key (repeatable); default: $PODGATE_KEYS,\n"
			    "                   ~/.config/podgate/trusted_keys, /etc/podgate/trusted_keys\n"
			    "  --dir DIR        where to look up a session ID (default $PODGATE_RECORDINGS,\n"
			    "                   else state/recordings)\n\n");
			for (i = 2; play_help[i] != NULL; i++)
				printf("%s\n", play_help[i]);
			free(keys);
			return 0;
		default:
			free(keys);
			return EXIT_USAGE;
		}
	}
	r = argc - optind != 1 ? -EINVAL : trust_load(&trust, keys, nkeys);
	free(keys);
	if (r == -EINVAL)
		player_warn("usage: podgate-player " PLAY_USAGE);
	if (r < 0)
		return EXIT_USAGE;
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		player_warn("play needs a terminal");
		trust_free(&trust);
		return EXIT_USAGE;
	}
	if (walk_find_session(argv[optind], dir, &file) < 0) {
		trust_free(&trust);
		return EXIT_USAGE;
	}
	/*
	 * Object storage: play what has come while the rest comes; with -f,
	 * a session still running is followed through the segments the broker
	 * ships until its sealed recording is there.
	 */
	if (remote_is_url(file)) {
		if (remote_stream_start(file, follow) < 0) {
			trust_free(&trust);
			free(file);
			return EXIT_USAGE;
		}
		p.loading = true;
	}
	p.follow = follow;
	p.speed = speed;
	p.idle_ns = (uint64_t)(idle * 1e9);
	if (player_open(&f, file) < 0) {
		trust_free(&trust);
		free(file);
		return EXIT_USAGE;
	}
	total = fstat(f.fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	r = follow || p.loading ? index_build_live(&p.ix, &f, play_progress, &total) :
	    index_build(&p.ix, &f, play_progress, &total);
	if (isatty(STDERR_FILENO) && total >= (16u << 20))
		fputs("\r\033[K", stderr);
	if (r < 0) {
		player_warn("%s: %s", f.path, rec_strerror(r));
		remote_stream_stop();
		trust_free(&trust);
		player_close(&f);
		free(file);
		return EXIT_USAGE;
	}
	/* The status line shows whether the file is whole and who signed it. */
	play_verdict(&p, file, &trust);
	p.follow_polled = p.follow_grew = play_now();
	if (p.ix->log_error[0] != '\0')
		snprintf(p.message, sizeof p.message, "%s", p.ix->log_error);
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
		play_follow(&p, file, &trust);
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
	if (p.copied.len > 0 && player_write_all(STDOUT_FILENO, p.copied.data, p.copied.len) < 0)
		st = EXIT_USAGE;
	if (p.ix->rc < 0) {
		player_warn("%s: %s", f.path, p.ix->error);
		st = EXIT_DAMAGED;
	}
out:
	remote_stream_stop();
	trust_free(&trust);
	if (p.has_search)
		search_free(&p.search);
	free(p.matches);
	buf_free(&p.copied);
	index_cursor_free(p.cur);
	index_free(p.ix);
	player_close(&f);
	free(file);
	return st;
}
