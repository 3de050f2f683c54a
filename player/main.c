/*
 * podgate-player: the reviewer's command line. Dispatches subcommands and
 * holds the helpers they share.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "player.h"

static const struct player_cmd {
	const char *name;
	int (*fn)(int, char **);
	const char *usage;
} player_cmds[] = {
	{ "rec", cmd_rec, "rec [-o FILE] [-q] [--no-input] [--key PRIVATE] -- CMD [ARG...]" },
	{ "cat", cmd_cat, "cat [--input] FILE" },
	{ "info", cmd_info, "info [--json] FILE..." },
	{ "verify", cmd_verify, "verify [--key PUB] [--json] FILE..." },
	{ "key", cmd_key, "key [--key PRIVATE]" },
	{ "play", cmd_play, "play FILE [--speed X] [--idle-limit SECS] [--start TIME] [--regex] [-i]" },
	{ "ls", cmd_ls, "ls PATH... [--user U] [--target GLOB] [--since WHEN] [--until WHEN] [--json]" },
	{ "grep", cmd_grep, "grep PATTERN PATH... [--input] [--regex] [-i] [--json]" },
	{ "export", cmd_export, "export FILE --format asciicast-v2|asciicast-v3|text [-o OUT]" },
};

/* Print "podgate-player: " and a message to stderr. */
void
player_warn(const char *fmt, ...)
{
	va_list ap;

	fputs("podgate-player: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Write all of buf to fd. */
int
player_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Open a recording, or say why not. */
int
player_open(struct player_file *f, const char *path)
{
	int r;

	memset(f, 0, sizeof *f);
	f->path = path;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		r = -errno;
		player_warn("%s: %s", path, strerror(-r));
		return r;
	}
	if ((r = rec_reader_open(&f->reader, f->fd, &f->header)) < 0) {
		if (r == -EISDIR)
			player_warn("%s: is a directory", path);
		else if (r == -EBADMSG)
			player_warn("%s: not a podgate recording", path);
		else if (r == -ENODATA)
			player_warn("%s: not a podgate recording (truncated inside the header)",
			    path);
		else
			player_warn("%s: %s", path, rec_strerror(r));
		close(f->fd);
		f->fd = -1;
		return r;
	}
	return 0;
}

/* Close a recording opened with player_open. */
void
player_close(struct player_file *f)
{
	rec_reader_free(f->reader);
	rec_header_clear(&f->header);
	if (f->fd >= 0)
		close(f->fd);
	f->reader = NULL;
	f->fd = -1;
}

/* Report how reading ended and pick the exit status. */
int
player_read_end(const struct player_file *f, int rc)
{
	if (rc >= 0)
		return 0;
	if (rc == -ENODATA || rc == -EBADMSG || rc == -EPROTO) {
		player_warn("%s: %s", f->path, rec_reader_error(f->reader));
		return EXIT_DAMAGED;
	}
	player_warn("%s: %s", f->path, rec_strerror(rc));
	return EXIT_USAGE;
}

/* Print the usage of every subcommand. */
static void
usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: podgate-player COMMAND [ARGS]\n\ncommands:\n");
	for (i = 0; i < sizeof player_cmds / sizeof player_cmds[0]; i++)
		fprintf(out, "  podgate-player %s\n", player_cmds[i].usage);
	fprintf(out, "\nexit status: 0 ok, 1 damaged recording, 2 usage error or not a "
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
