/*
 * Walking files and directories for ls and grep.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/* What walk_find_session looks for and found. */
struct walk_find {
	const char *prefix;
	size_t len;
	char *found;
	int n;
};

/* A file named PREFIX...rec. */
static int
walk_find_cb(const char *path, bool named, void *arg)
{
	struct walk_find *w = arg;
	const char *base = strrchr(path, '/');
	size_t n;

	(void)named;
	base = base != NULL ? base + 1 : path;
	n = strlen(base);
	if (n < 4 || strcmp(base + n - 4, ".rec") != 0 || strncasecmp(base, w->prefix, w->len) != 0)
		return 0;
	if (w->n++ == 0 && (w->found = strdup(path)) == NULL)
		return -ENOMEM;
	return 0;
}

/* Find a recording by session ID or a unique prefix of one. */
int
walk_find_session(const char *arg, const char *dir, char **out)
{
	struct walk_find w = { .prefix = arg, .len = strlen(arg) };
	struct stat st;
	char *paths[1];
	size_t i;
	int r;

	*out = NULL;
	for (i = 0; arg[i] != '\0' && (isxdigit((unsigned char)arg[i]) || arg[i] == '-'); i++)
		;
	if (stat(arg, &st) == 0 || arg[i] != '\0' || i < 4 || i > 36) {
		if ((*out = strdup(arg)) == NULL)
			return -ENOMEM;
		return 0;
	}
	if (dir == NULL && ((dir = getenv("PODGATE_RECORDINGS")) == NULL || dir[0] == '\0'))
		dir = "state/recordings";
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		player_warn("%s: no such file, and no recordings directory %s to find the session "
		    "in (--dir, $PODGATE_RECORDINGS)", arg, dir);
		return -ENOENT;
	}
	paths[0] = (char *)dir;
	if ((r = walk_paths(paths, 1, walk_find_cb, &w)) < 0 && w.found == NULL) {
		free(w.found);
		return r;
	}
	if (w.n == 0) {
		player_warn("%s: no such file, and no session %s... in %s", arg, arg, dir);
		free(w.found);
		return -ENOENT;
	}
	if (w.n > 1) {
		player_warn("%s: %d sessions in %s start with %s: give more of the ID", arg, w.n,
		    dir, arg);
		free(w.found);
		return -EEXIST;
	}
	*out = w.found;
	return 0;
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
