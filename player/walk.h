/*
 * Walking the paths given to ls and grep: files as named, directories
 * recursively (entries in name order, hidden ones and symlinked
 * directories skipped).
 */
#ifndef PODGATE_WALK_H
#define PODGATE_WALK_H

#include <stdbool.h>

/*
 * Called for each file; named is true for a path given on the command line
 * (false for one found in a directory). A negative return stops the walk.
 */
typedef int walk_fn(const char *path, bool named, void *arg);

/*
 * Walk paths[0..n). A directory that cannot be read is reported on stderr
 * and walk_paths returns -errno at the end (after walking the rest); the
 * callback's negative return stops the walk and is returned.
 */
int walk_paths(char **paths, int n, walk_fn *fn, void *arg);

/*
 * The recording named by arg: arg itself when it is a file or does not look
 * like a session ID; else the one file in the recordings directory (dir,
 * else $PODGATE_RECORDINGS, else the broker's default "state/recordings")
 * whose name starts with arg (a session ID or a unique prefix of one, at
 * least 4 characters) and ends in ".rec". *out is a heap copy the caller
 * frees. Returns 0, or a negative errno after saying why on stderr.
 */
int walk_find_session(const char *arg, const char *dir, char **out);

#endif
