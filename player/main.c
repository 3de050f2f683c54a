/*
 * podgate-player: the reviewer's command line; dispatches subcommands
 * (the helpers they share are in file.c).
 */
#include <stdio.h>
#include <string.h>

#include "player.h"

static const struct player_cmd {
	const char *name;
	int (*fn)(int, char **);
	const char *usage;
} player_cmds[] = {
	{ "rec", cmd_rec, "rec [-o FILE] [-q] [--no-input] [--key PRIVATE] -- CMD [ARG...]" },
	{ "cat", cmd_cat, "cat [--input] [--safe] [--dir DIR] FILE|ID" },
	{ "info", cmd_info, "info [--json] [--key PUB]... [--dir DIR] FILE|ID..." },
	{ "verify", cmd_verify, "verify [--key PUB] [--json] [-v] PATH..." },
	{ "key", cmd_key, "key [--key PRIVATE]" },
	{ "play", cmd_play, "play FILE|ID [-f] [--speed X] [--idle-limit SECS] [--start TIME] "
	    "[--regex] [-i] [--key PUB]... [--dir DIR]" },
	{ "ls", cmd_ls, "ls PATH... [--user U] [--target GLOB] [--command GLOB] [--state S] "
	    "[--exit N] [--since WHEN] [--sort FIELD] [--limit N] [--verify] [--json] ..." },
	{ "grep", cmd_grep, "grep PATTERN PATH... [--input] [--raw] [--regex] [-i] [-l] [-c] [-C N] "
	    "[--user U] [--since WHEN] [--json] ..." },
	{ "export", cmd_export, "export FILE|ID --format asciicast-v2|asciicast-v3|text [-o OUT] "
	    "[--dir DIR]" },
};

/* Print the usage of every subcommand. */
static void
usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: podgate-player COMMAND [ARGS]\n\ncommands:\n");
	for (i = 0; i < sizeof player_cmds / sizeof player_cmds[0]; i++)
		fprintf(out, "  podgate-player %s\n", player_cmds[i].usage);
	fprintf(out, "\nID: a session ID, or a unique prefix of one, looked up in --dir, else\n"
	    "$PODGATE_RECORDINGS, else state/recordings. `podgate-player COMMAND --help`\n"
	    "lists a command's options.\n"
	    "\nexit status: 0 ok, 1 damaged recording, 2 usage error or not a "
	    "recording;\n`rec` exits with the recorded command's status.\n");
}

int
main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("podgate-player %s\n", PODGATE_VERSION);
		return 0;
	}
	for (i = 0; i < sizeof player_cmds / sizeof player_cmds[0]; i++)
		if (strcmp(argv[1], player_cmds[i].name) == 0)
			return player_cmds[i].fn(argc - 1, argv + 1);
	player_warn("unknown command '%s' (try podgate-player --help)", argv[1]);
	return EXIT_USAGE;
}
