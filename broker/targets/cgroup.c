/*
 * Per-session cgroups (contract in cgroup.h): found through
 * /proc/self/mountinfo and /proc/self/cgroup, made with mkdir, ended with
 * cgroup.kill.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "targets/cgroup.h"
#include "base/log.h"

struct cgroup_base {
	char *path;		/* <mount><own cgroup>/podgate-<pid> */
};

/* The mount point of the cgroup2 file system (its root mounted), or NULL. */
static char *
cgroup_mount(void)
{
	char line[4096], *res = NULL, *fields[5], *tok, *save;
	FILE *f;
	int i;

	if ((f = fopen("/proc/self/mountinfo", "re")) == NULL)
		return NULL;
	while (res == NULL && fgets(line, sizeof line, f) != NULL) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER */
		save = NULL;
		tok = strtok_r(line, " \n", &save);
		for (i = 0; i < 5 && tok != NULL; i++) {
			fields[i] = tok;
			tok = strtok_r(NULL, " \n", &save);
		}
		if (i < 5)
			continue;
		while (tok != NULL && strcmp(tok, "-") != 0)
			tok = strtok_r(NULL, " \n", &save);
		if (tok == NULL || (tok = strtok_r(NULL, " \n", &save)) == NULL)
			continue;
		if (strcmp(tok, "cgroup2") == 0 && strcmp(fields[3], "/") == 0)
			res = strdup(fields[4]);
	}
	fclose(f);
	return res;
}

/* The broker's own cgroup in the v2 hierarchy ("0::PATH"), or NULL. */
static char *
cgroup_own(void)
{
	char line[4096], *res = NULL;
	FILE *f;

	if ((f = fopen("/proc/self/cgroup", "re")) == NULL)
		return NULL;
	while (res == NULL && fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			res = strdup(line + 3);
		}
	}
	fclose(f);
	return res;
}

/* Each "session-*" cgroup under path: ended (end), or removed. Returns how many are left. */
static int
cgroup_sessions(const char *path, bool end)
{
	char sub[4096];
	struct dirent *e;
	DIR *d;
	int n, left = 0;

	if ((d = opendir(path)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "session-", 8) != 0)
			continue;
		n = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
		if (n < 0 || (size_t)n >= sizeof sub)
			continue;
		if (end)
			cgroup_kill(sub);
		if (end || cgroup_remove(sub) == -EBUSY)
			left++;
	}
	closedir(d);
	return left;
}

/*
 * End what a broker that is gone left under parent: each "podgate-<pid>"
 * whose pid no process has, its sessions' processes killed and their
 * cgroups removed (waiting at most a second for the kills), then itself.
 */
static void
cgroup_reap(const char *parent)
{
	char path[4096];
	struct dirent *e;
	char *end;
	long pid;
	DIR *d;
	int n, rc, tries;

	if ((d = opendir(parent)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "podgate-", 8) != 0)
			continue;
		pid = strtol(e->d_name + 8, &end, 10);
		if (*end != '\0' || pid <= 0 || pid == (long)getpid() ||
		    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;	/* not a broker's, or its broker still runs */
		n = snprintf(path, sizeof path, "%s/%s", parent, e->d_name);
		if (n < 0 || (size_t)n >= sizeof path)
			continue;
		n = cgroup_sessions(path, true);
		/* cgroup.kill is asynchronous: a cgroup can go once it is empty. */
		for (tries = 0; cgroup_sessions(path, false) > 0 && tries < 100; tries++)
			usleep(10000);
		if ((rc = cgroup_remove(path)) < 0)
			log_warn("cannot remove the cgroup %s that broker %ld left: %s", path, pid,
			    strerror(-rc));
		log_warn("broker %ld is gone: the processes of its %d sessions left in %s "
		    "were ended", pid, n, path);
	}
	closedir(d);
}

int
cgroup_base_new(struct cgroup_base **out)
{
	struct cgroup_base *b = NULL;
	char *mnt = NULL, *own = NULL, *parent = NULL;
	int r = 0;

	*out = NULL;
	if ((mnt = cgroup_mount()) == NULL || (own = cgroup_own()) == NULL) {
		log_warn("no cgroup v2 hierarchy: processes a local session leaves behind "
		    "(setsid, nohup) are not ended with it");
		goto out;
	}
	/* Our own cgroup ("/" at the root: no second slash). */
	if (asprintf(&parent, "%s%s", mnt, strcmp(own, "/") == 0 ? "" : own) < 0 ||
	    (b = calloc(1, sizeof *b)) == NULL ||
	    asprintf(&b->path, "%s/podgate-%ld", parent, (long)getpid()) < 0) {
		if (b != NULL)
			b->path = NULL;
		r = -ENOMEM;
		goto out;
	}
	cgroup_reap(parent);
	if (mkdir(b->path, 0755) < 0 && errno != EEXIST) {
		log_warn("cannot make the cgroup %s (%s): processes a local session leaves "
		    "behind (setsid, nohup) are not ended with it", b->path, strerror(errno));
		goto out;
	}
	log_info("local sessions run in cgroups under %s", b->path);
	*out = b;
	b = NULL;	/* transferred */
out:
	if (b != NULL) {
		free(b->path);
		free(b);
	}
	free(mnt);
	free(own);
	free(parent);
	return r;
}

void
cgroup_base_free(struct cgroup_base *b)
{
	if (b == NULL)
		return;
	if (rmdir(b->path) < 0 && errno != ENOENT)
		log_warn("cannot remove the cgroup %s: %s", b->path, strerror(errno));
	free(b->path);
	free(b);
}

int
cgroup_session_new(struct cgroup_base *b, const char *id, char **path, int *procs_fd)
{
	char *p = NULL, *procs = NULL;
	int r = 0, fd = -1;

	*path = NULL;
	*procs_fd = -1;
	if (asprintf(&p, "%s/session-%s", b->path, id) < 0) {
		p = NULL;
		r = -ENOMEM;
		goto out;
	}
	if (asprintf(&procs, "%s/cgroup.procs", p) < 0) {
		procs = NULL;
		r = -ENOMEM;
		goto out;
	}
	if (mkdir(p, 0755) < 0) {
		r = -errno;
		goto out;
	}
	if ((fd = open(procs, O_WRONLY | O_CLOEXEC)) < 0) {
		r = -errno;
		rmdir(p);
		goto out;
	}
	*path = p;
	p = NULL;	/* transferred */
	*procs_fd = fd;
out:
	free(p);
	free(procs);
	return r;
}

void
cgroup_kill(const char *path)
{
	char file[4096];
	FILE *f;
	long pid;
	int fd;

	if (path == NULL)
		return;
	snprintf(file, sizeof file, "%s/cgroup.kill", path);
	if ((fd = open(file, O_WRONLY | O_CLOEXEC)) >= 0) {
		ssize_t n = write(fd, "1", 1);

		close(fd);
		if (n == 1)
			return;
	}
	/* Without cgroup.kill (before Linux 5.14): each member. */
	snprintf(file, sizeof file, "%s/cgroup.procs", path);
	if ((f = fopen(file, "re")) == NULL)
		return;
	while (fscanf(f, "%ld", &pid) == 1) {
		if (pid > 1)
			kill((pid_t)pid, SIGKILL);
	}
	fclose(f);
}

int
cgroup_remove(const char *path)
{
	if (path == NULL)
		return 0;
	if (rmdir(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}
