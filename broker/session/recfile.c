/*
 * Recording files: creation with safe flags and syncs on the thread pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "session/recfile.h"

/* Create a new recording file. */
int
recfile_create(const char *path, struct recfile **out)
{
	struct recfile *f;
	int r;

	*out = NULL;
	if ((f = calloc(1, sizeof *f)) == NULL)
		return -ENOMEM;
	f->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		r = -errno;
		free(f);
		return r;
	}
	*out = f;
	return 0;
}

/* The final fsync is done: close and free. */
static void
recfile_finish(struct recfile *f)
{
	if (f->err < 0)
		log_warn("syncing a recording to disk: %s", strerror(-f->err));
	close(f->fd);
	free(f);
}

static void recfile_start(struct recfile *f, bool final);

/* A sync finished on the thread pool: note a failure, then go on. */
static void
recfile_sync_cb(uv_fs_t *req)
{
	struct recfile *f = req->data;
	bool final = req->fs_type == UV_FS_FSYNC;

	if (req->result < 0 && f->err == 0)
		f->err = (int)req->result;	/* libuv's errors are negative errnos */
	uv_fs_req_cleanup(req);
	f->syncing = false;
	if (final)
		recfile_finish(f);
	else if (f->closing)
		recfile_start(f, true);
	else if (f->again)
		recfile_start(f, false);
}

/* Queue an fdatasync, or the final fsync; done in place if it cannot be queued. */
static void
recfile_start(struct recfile *f, bool final)
{
	int r;

	f->again = false;
	f->syncing = true;
	f->req.data = f;
	r = final ? uv_fs_fsync(f->loop, &f->req, f->fd, recfile_sync_cb) :
	    uv_fs_fdatasync(f->loop, &f->req, f->fd, recfile_sync_cb);
	if (r == 0)
		return;
	f->syncing = false;
	if ((final ? fsync(f->fd) : fdatasync(f->fd)) < 0 && f->err == 0)
		f->err = -errno;
	if (final)
		recfile_finish(f);
}

/* Ask for an fdatasync; one asked while another runs follows it. */
void
recfile_sync(struct recfile *f, uv_loop_t *loop)
{
	f->loop = loop;
	if (f->syncing)
		f->again = true;
	else
		recfile_start(f, false);
}

/* fsync, close and free, after any sync in flight. */
void
recfile_close(struct recfile *f, uv_loop_t *loop)
{
	if (f == NULL)
		return;
	f->loop = loop;
	f->closing = true;
	if (!f->syncing)
		recfile_start(f, true);
}
