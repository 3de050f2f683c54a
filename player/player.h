/*
 * podgate-player: subcommands and the helpers they share.
 *
 * Exit statuses, for every subcommand:
 *   0  success
 *   1  the recording is damaged (truncated or corrupt): what could be
 *      read was processed, and a line on stderr says where it stops
 *   2  usage error, unreadable file, or not a recording
 * `rec` exits with the recorded command's status instead.
 */
#ifndef PODGATE_PLAYER_H
#define PODGATE_PLAYER_H

#include <stdbool.h>

#include "rec.h"

#define EXIT_DAMAGED 1
#define EXIT_USAGE 2

int cmd_rec(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_play(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_grep(int argc, char **argv);
int cmd_export(int argc, char **argv);

/*
 * The signing key for `rec`: the private key at path, or the per-user key
 * ($XDG_CONFIG_HOME or ~/.config, podgate/signing_ed25519), generated
 * when missing. Prints why on failure.
 */
int player_signing_key(const char *path, struct rec_key **key);
int player_user_key_path(char *buf, size_t len);

/* Print "podgate-player: " and a formatted message to stderr. */
void player_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* An open recording. */
struct player_file {
	const char *path;
	int fd;
	struct rec_reader *reader;
	struct rec_header header;
};

/*
 * A read-only descriptor for path, or for a local copy of the recording an
 * s3:// name gives (player/remote.h; failures of those are printed).
 * Returns the descriptor or a negative errno.
 */
int player_open_fd(const char *path);

/*
 * Open path as a recording. On failure prints one line naming the file
 * and the reason and returns a negative errno; f is then closed.
 */
int player_open(struct player_file *f, const char *path);

/*
 * player_open, saying nothing when the file is not a recording when quiet
 * is set (files found in a directory: keys, logs); returns -EBADMSG then.
 */
int player_open_quiet(struct player_file *f, const char *path, bool quiet);
void player_close(struct player_file *f);

/*
 * Report how reading ended (rc from rec_reader_next): nothing for a clean
 * end, a line on stderr otherwise. Returns the exit status to use.
 */
int player_read_end(const struct player_file *f, int rc);

/*
 * Verify the recording at path (opened anew, so a player_file on it keeps
 * its position) against the signer its header names.
 */
int player_verify_path(const char *path, struct rec_verify *v);

/*
 * s[0..len) made safe to print on a terminal, as a NUL-terminated heap
 * string (NULL when out of memory): control characters (C0, DEL, C1),
 * bidirectional controls and bytes that are not UTF-8 are written as
 * escapes (\t \n \r, \x1b, \u202e), and a backslash as \\; printable
 * UTF-8 is kept.
 */
char *player_escape(const void *s, size_t len);

/* player_escape of a NUL-terminated string; NULL gives a copy of dflt. */
char *player_escape_str(const char *s, const char *dflt);

/* Write all of buf to fd, retrying on EINTR and short writes. */
int player_write_all(int fd, const void *buf, size_t len);

#endif
