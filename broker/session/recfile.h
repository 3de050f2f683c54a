/*
 * A recording's file descriptor and its syncs to disk, off the event loop.
 *
 * The writer (librec) writes to recfile->fd from the loop thread; fdatasync
 * and the final fsync run on libuv's thread pool. The fd is closed only
 * when no sync is in flight, after recfile_close, so a sync never runs on
 * a closed (or reused) descriptor. A struct recfile outlives its session
 * when a sync is still running; the session only reads ->err.
 */
#ifndef PODGATE_RECFILE_H
#define PODGATE_RECFILE_H

#include <stdbool.h>
#include <uv.h>

struct recfile {
	int fd;
	int err;		/* the first failed sync (negative errno), or 0 */
	bool syncing;		/* a sync is on the thread pool */
	bool again;		/* another sync was asked for meanwhile */
	bool closing;		/* recfile_close was called: fsync, close, free */
	uv_loop_t *loop;
	uv_fs_t req;
};

/*
 * Create path for a new recording: O_EXCL, O_NOFOLLOW, mode 0600. Returns
 * 0 with *out set, or a negative errno.
 */
int recfile_create(const char *path, struct recfile **out);

/* Ask for an fdatasync (coalesced with one in flight). Failures land in ->err. */
void recfile_sync(struct recfile *f, uv_loop_t *loop);

/* fsync, close and free, off the loop (f must not be used afterwards). */
void recfile_close(struct recfile *f, uv_loop_t *loop);

#endif
