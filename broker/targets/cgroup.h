/*
 * A cgroup (v2) per local session, so that ending a session ends every
 * process it started, also those that left its process group and session
 * (setsid, nohup, a double fork).
 *
 * At start the broker finds the cgroup v2 hierarchy (the "cgroup2" mount)
 * and its own cgroup there, and makes a child "podgate-<pid>" in it; each
 * local session gets "session-<id>" below that, joined by the target
 * before it executes (pty_spawn's cgroup_procs_fd). Ending the session
 * writes cgroup.kill (SIGKILL to every member; on kernels without it, each
 * member listed in cgroup.procs is killed), then the directory is removed.
 * A broker that died without ending its sessions (kill -9, a crash) left
 * its "podgate-<pid>" with their processes in it: the next broker started
 * in the same cgroup ends them and removes it, when no process has that
 * pid any more.
 * Where there is no writable cgroup v2 hierarchy (no cgroup2 mount, or a
 * broker that may not create cgroups: not root, nothing delegated), the
 * broker says so once at start and sessions end as before: SIGHUP, then
 * SIGKILL, to the target's process group only.
 *
 * Errors are negative errno values.
 */
#ifndef PODGATE_CGROUP_H
#define PODGATE_CGROUP_H

struct cgroup_base;

/*
 * Find and make the broker's cgroup for sessions. Returns 0 with *out set,
 * or 0 with *out NULL when cgroups cannot be used (why is logged once).
 */
int cgroup_base_new(struct cgroup_base **out);

/* Remove what the broker made (after its sessions); NULL is ignored. */
void cgroup_base_free(struct cgroup_base *b);

/*
 * Make the cgroup of session id: *path (a new string) and *procs_fd (its
 * cgroup.procs, open for writing, close-on-exec). Returns 0 or a negative
 * errno with *path NULL and *procs_fd -1.
 */
int cgroup_session_new(struct cgroup_base *b, const char *id, char **path, int *procs_fd);

/* SIGKILL every process in the cgroup at path. */
void cgroup_kill(const char *path);

/* Remove the cgroup at path; -EBUSY while processes are still in it. */
int cgroup_remove(const char *path);

#endif
