/*
 * podgate-player cat: the recorded output bytes, exactly.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "player.h"

/* Write o events to stdout, e to stderr, and i to stdout with --input. */
int
cmd_cat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "input", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct player_file f;
	struct rec_event ev;
	bool input = false;
	int c, rc, st, wr;

	optind = 1;
	while ((c = getopt_long(argc, argv, "ih", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			input = true;
			break;
		case 'h':
			printf("usage: podgate-player cat [--input] FILE\n");
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		player_warn("usage: podgate-player cat [--input] FILE");
		return EXIT_USAGE;
	}
	if (player_open(&f, argv[optind]) < 0)
		return EXIT_USAGE;
	while ((rc = rec_reader_next(f.reader, &ev)) == 1) {
		int fd = -1;

		if (ev.code == REC_OUTPUT || (input && ev.code == REC_INPUT))
			fd = STDOUT_FILENO;
		else if (ev.code == REC_STDERR)
			fd = STDERR_FILENO;
		if (fd >= 0 && (wr = player_write_all(fd, ev.data, ev.len)) < 0) {
			player_warn("write: %s", strerror(-wr));
			player_close(&f);
			return EXIT_USAGE;
		}
	}
	st = player_read_end(&f, rc);
	player_close(&f);
	return st;
}
