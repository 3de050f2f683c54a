/*
 * Walking files and directories for ls and grep.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "player.h"
#include "remote.h"
#include "walk.h"

/* Skip hidden entries. */
static int
walk_visible(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Walk one directory. */
static int
walk_dir(const char *dir, walk_fn *fn, void *arg, int depth)
{
	struct dirent **ents = NULL;
	struct stat st;
	char *path = NULL;
	int n, i, r = 0, err;

	if ((n = scandir(dir, &ents, walk_visible, alphasort)) < 0) {
		err = -errno;
		player_warn("%s: %s", dir, strerror(errno));
		/* Only a directory named on the command line makes this an error. */
		return depth == 0 ? err : 0;
	}
	for (i = 0; i < n; i++) {
		free(path);
		if (asprintf(&path, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
		    ents[i]->d_name) < 0) {
			path = NULL;
			r = -ENOMEM;
			goto out;
		}
		if (lstat(path, &st) < 0) {
			player_warn("%s: %s", path, strerror(errno));
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			if (depth < 64 && (r = walk_dir(path, fn, arg, depth + 1)) < 0)
				goto out;
			continue;
		}
		if (S_ISLNK(st.st_mode) && (stat(path, &st) < 0 || !S_ISREG(st.st_mode)))
			continue;
		if (!S_ISREG(st.st_mode))
			continue;
		if ((r = fn(path, false, arg)) < 0)
			goto out;
	}
out:
	free(path);
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	return r;
}

/* Walk the paths named on the command line. */
int
walk_paths(char **paths, int n, walk_fn *fn, void *arg)
{
	struct stat st;
	int i, r, err = 0;

	for (i = 0; i < n; i++) {
		if (remote_is_prefix(paths[i])) {
			/* s3://BUCKET/PREFIX/: every recording under it. */
			if ((r = remote_walk(paths[i], fn, arg)) == -ENOMEM)
				return r;
			if (r < 0)
				err = r;
			continue;
		}
		if (!remote_is_url(paths[i]) && stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			if ((r = walk_dir(paths[i], fn, arg, 0)) == -ENOMEM)
				return r;
			if (r < 0)
				err = r;
			continue;
		}
		if ((r = fn(paths[i], true, arg)) < 0)
			return r;
	}
	return err;
}
