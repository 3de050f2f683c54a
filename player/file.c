/*
 * Opening recordings and reporting on them: the helpers every subcommand
 * shares.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
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

/* Whether code point c must not reach a terminal as it is. */
static bool
escape_cp(uint32_t c)
{
	return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x061c || c == 0x200e ||
	    c == 0x200f || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

/* s made safe to print on a terminal. */
char *
player_escape(const void *s, size_t len)
{
	const unsigned char *p = s;
	char *out, *o;
	uint32_t cp;
	size_t i = 0, n, bad;

	/* At most 6 bytes out per byte in ("\u202e" is 6 for 3). */
	if (len > (SIZE_MAX - 1) / 6 || (out = malloc(len * 6 + 1)) == NULL)
		return NULL;
	o = out;
	while (i < len) {
		if ((n = utf8_char(p + i, len - i, &bad)) == 0) {
			o += sprintf(o, "\\x%02x", p[i]);
			i++;
			continue;
		}
		cp = utf8_decode(p + i, n);
		if (cp == '\\')
			o += sprintf(o, "\\\\");
		else if (cp == '\t')
			o += sprintf(o, "\\t");
		else if (cp == '\n')
			o += sprintf(o, "\\n");
		else if (cp == '\r')
			o += sprintf(o, "\\r");
		else if (escape_cp(cp) && cp < 0x80)
			o += sprintf(o, "\\x%02x", (unsigned)cp);
		else if (escape_cp(cp))
			o += sprintf(o, "\\u%04x", (unsigned)cp);
		else {
			memcpy(o, p + i, n);
			o += n;
		}
		i += n;
	}
	*o = '\0';
	return out;
}

/* player_escape of a string that may be NULL. */
char *
player_escape_str(const char *s, const char *dflt)
{
	if (s == NULL)
		return strdup(dflt);
	return player_escape(s, strlen(s));
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
	return player_open_quiet(f, path, false);
}

/* Open a recording; say nothing about a file that is not one when quiet. */
int
player_open_quiet(struct player_file *f, const char *path, bool quiet)
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
		if (quiet && (r == -EBADMSG || r == -ENODATA)) {
			r = -EBADMSG;
		} else if (r == -EISDIR)
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
