/*
 * podgate-player cat: the recorded output bytes, exactly; with --safe,
 * without the control strings that act outside the screen.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "player.h"
#include "walk.h"

/*
 * The --safe filter: drops OSC strings (ESC ], clipboard writes with OSC
 * 52, hyperlinks with OSC 8, window titles), DCS (ESC P) and APC, PM and
 * SOS strings, up to their BEL or ST, across events. Everything else is
 * kept as it was.
 */
enum cat_safe_state { SAFE_GROUND, SAFE_ESC, SAFE_STRING, SAFE_STRING_ESC };

/* Filter p[0..n) into out (at least n + 1 bytes); returns the length kept. */
static size_t
cat_safe(enum cat_safe_state *st, const uint8_t *p, size_t n, uint8_t *out)
{
	size_t i, o = 0;
	uint8_t c;

	for (i = 0; i < n; i++) {
		c = p[i];
		switch (*st) {
		case SAFE_GROUND:
			if (c == 0x1b)
				*st = SAFE_ESC;	/* held until the next byte says what it starts */
			else
				out[o++] = c;
			break;
		case SAFE_ESC:
			if (c == ']' || c == 'P' || c == '_' || c == '^' || c == 'X') {
				*st = SAFE_STRING;
			} else if (c != 0x1b) {
				out[o++] = 0x1b;
				out[o++] = c;
				*st = SAFE_GROUND;
			} else
				out[o++] = 0x1b;
			break;
		case SAFE_STRING:
			if (c == 0x07 || c == 0x18 || c == 0x1a)
				*st = SAFE_GROUND;
			else if (c == 0x1b)
				*st = SAFE_STRING_ESC;
			break;
		case SAFE_STRING_ESC:
			if (c == '\\') {
				*st = SAFE_GROUND;
			} else {
				*st = SAFE_ESC;	/* the ESC starts a new sequence */
				i--;
			}
			break;
		}
	}
	return o;
}

/* How often -f looks for more of a recording still being written. */
#define CAT_FOLLOW_NS 200000000L

/*
 * -f: wait for more of a recording still being written, then read on from
 * the end of the last whole event (a reader stops at the end of the file).
 */
static int
cat_follow(struct player_file *f, uint64_t time_ns)
{
	struct timespec ts = { 0, CAT_FOLLOW_NS };
	uint64_t off = rec_reader_offset(f->reader);

	nanosleep(&ts, NULL);
	rec_reader_free(f->reader);
	f->reader = NULL;
	return rec_reader_open_at(&f->reader, f->fd, off, time_ns);
}

/* Write o events to stdout, e to stderr, and i to stdout with --input. */
int
cmd_cat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "input", no_argument, NULL, 'i' },
		{ "safe", no_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "follow", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum cat_safe_state safe_st[2] = { SAFE_GROUND, SAFE_GROUND };
	struct player_file f;
	struct rec_event ev;
	bool input = false, safe = false, follow = false, ended = false;
	uint64_t time_ns = 0;
	uint8_t *buf = NULL;
	const char *dir = NULL;
	char *file = NULL;
	const uint8_t *data;
	size_t len;
	int c, rc, st, wr;

	optind = 1;
	while ((c = getopt_long(argc, argv, "isd:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			input = true;
			break;
		case 's':
			safe = true;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'f':
			follow = true;
			break;
		case 'h':
			printf("usage: podgate-player cat [--input] [--safe] [-f] [--dir DIR] FILE|ID\n\n"
			    "The recorded output bytes, exactly (stderr of a session without a PTY\n"
			    "to stderr), for a terminal.\n\n"
			    "  --input   also what was typed, where it was typed\n"
			    "  --safe    leave out OSC strings (clipboard writes, hyperlinks, window\n"
			    "            titles), DCS, APC, PM and SOS strings\n"
			    "  -f        follow a recording still being written, as tail -f, until the\n"
			    "            session ends (its exit status or seal); Ctrl-C stops\n"
			    "  --dir DIR where to look up a session ID (default $PODGATE_RECORDINGS,\n"
			    "            else state/recordings)\n");
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		player_warn("usage: podgate-player cat [--input] [--safe] [-f] [--dir DIR] FILE|ID");
		return EXIT_USAGE;
	}
	if (walk_find_session(argv[optind], dir, &file) < 0)
		return EXIT_USAGE;
	if (player_open(&f, file) < 0) {
		free(file);
		return EXIT_USAGE;
	}
	for (;;) {
		int fd = -1;

		if ((rc = rec_reader_next(f.reader, &ev)) != 1) {
			/* The end of what is written so far: wait for more. */
			if (!follow || ended || (rc != 0 && rc != -ENODATA))
				break;
			if ((rc = cat_follow(&f, time_ns)) < 0)
				break;
			continue;
		}
		time_ns = ev.time_ns;
		if (ev.code == REC_EXIT || ev.code == REC_SEAL)
			ended = true;	/* only the seal may follow */

		if (ev.code == REC_OUTPUT || (input && ev.code == REC_INPUT))
			fd = STDOUT_FILENO;
		else if (ev.code == REC_STDERR)
			fd = STDERR_FILENO;
		if (fd < 0)
			continue;
		data = ev.data;
		len = ev.len;
		if (safe) {
			free(buf);
			if ((buf = malloc(ev.len + 1)) == NULL) {
				player_warn("out of memory");
				player_close(&f);
				free(file);
				return EXIT_USAGE;
			}
			len = cat_safe(&safe_st[fd == STDERR_FILENO], ev.data, ev.len, buf);
			data = buf;
		}
		if ((wr = player_write_all(fd, data, len)) < 0) {
			player_warn("write: %s", strerror(-wr));
			free(buf);
			player_close(&f);
			free(file);
			return EXIT_USAGE;
		}
	}
	free(buf);
	st = player_read_end(&f, rc);
	player_close(&f);
	free(file);
	return st;
}
