/*
 * Opening recordings and reporting on them: the helpers every subcommand
 * shares.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "player.h"
#include "remote.h"

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

/* A descriptor of a local path or of a copy of an s3:// recording (which says why not). */
int
player_open_fd(const char *path)
{
	int fd;

	if (remote_is_url(path))
		return remote_open(path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

/* Open a recording, or say why not. */
int
player_open(struct player_file *f, const char *path)
{
	int r;

	memset(f, 0, sizeof *f);
	f->path = path;
	f->fd = player_open_fd(path);
	if (f->fd < 0) {
		r = f->fd;
		f->fd = -1;
		if (!remote_is_url(path))
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

/* Verify the recording at path on a descriptor of its own (against its header's signer). */
int
player_verify_path(const char *path, struct rec_verify *v)
{
	int fd = player_open_fd(path), r;

	memset(v, 0, sizeof *v);
	if (fd < 0)
		return fd;
	r = rec_verify_fd(fd, NULL, v);
	close(fd);
	return r;
}
