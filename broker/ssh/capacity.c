/*
 * The broker's descriptor budget (docs/deploy.md, "Sizing"): the soft
 * RLIMIT_NOFILE raised to the hard limit at start, the capacity it gives,
 * a reserve kept for running sessions, and new connections refused
 * cleanly near the limit (one line to the client, an audit event, a
 * socket closed once the client has read it).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "policy/audit.h"
#include "targets/cgroup.h"
#include "ssh/conn.h"
#include "ssh/keys.h"
#include "kube/kube-incluster.h"
#include "kube/kube-client.h"
#include "admin/live.h"
#include "admin/peer-client.h"
#include "base/log.h"
#include "ssh/peer.h"
#include "ssh/server.h"
#include "ssh/server-internal.h"
#include "session/session.h"
#include "storage/storage.h"
#include "ssh/server-internal.h"

/* Count the descriptors open now (once, at start). */
static unsigned
server_fds_open(void)
{
	DIR *d;
	struct dirent *e;
	unsigned n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return n > 0 ? n - 1 : 0;	/* not the directory's own */
}

/*
 * Raise the soft RLIMIT_NOFILE to the hard limit, as event-loop servers
 * do: every session holds descriptors, and the soft limit a shell hands
 * down (often 1,024) would cap the broker at a few hundred sessions.
 */
void
server_fds_raise(struct server *srv)
{
	struct rlimit rl;
	rlim_t was;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("cannot read the open file limit: %s", strerror(errno));
		srv->fds_limit = 1024;
	} else {
		was = rl.rlim_cur;
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
				log_warn("cannot raise the open file limit from %llu to %llu: %s",
				    (unsigned long long)was, (unsigned long long)rl.rlim_max,
				    strerror(errno));
				rl.rlim_cur = was;
			} else {
				log_info("open file limit raised from %llu to %llu",
				    (unsigned long long)was, (unsigned long long)rl.rlim_cur);
			}
		}
		srv->fds_limit = rl.rlim_cur > INT_MAX ? INT_MAX : (unsigned)rl.rlim_cur;
	}
	/* A sixteenth of the limit, within SERVER_FDS_RESERVE_MIN..MAX. */
	srv->fds_reserve = srv->fds_limit / 16;
	if (srv->fds_reserve < SERVER_FDS_RESERVE_MIN)
		srv->fds_reserve = SERVER_FDS_RESERVE_MIN;
	if (srv->fds_reserve > SERVER_FDS_RESERVE_MAX)
		srv->fds_reserve = SERVER_FDS_RESERVE_MAX;
}

/* Log what the limit gives, once listening (descriptors open by then count). */
void
server_fds_announce(struct server *srv)
{
	unsigned used = server_fds_open(), room = 0;

	if (srv->fds_limit > used + srv->fds_reserve)
		room = srv->fds_limit - used - srv->fds_reserve;
	log_info("capacity: %u open files (%u in use, %u kept in reserve); a session holds "
	    "%u with a PTY on its own connection (about %u such sessions), %u without a PTY "
	    "plus %u per connection (about %u at 10 per connection), %u on the native "
	    "Kubernetes transport (about %u at 10 per connection)", srv->fds_limit, used,
	    srv->fds_reserve, SERVER_FDS_CONN + SERVER_FDS_PTY,
	    room / (SERVER_FDS_CONN + SERVER_FDS_PTY), SERVER_FDS_PIPES, SERVER_FDS_CONN,
	    (unsigned)((uint64_t)room * 10 / (10 * SERVER_FDS_PIPES + SERVER_FDS_CONN)),
	    SERVER_FDS_NATIVE,
	    (unsigned)((uint64_t)room * 10 / (10 * SERVER_FDS_NATIVE + SERVER_FDS_CONN)));
}

/* Whether n descriptors and the reserve can be opened now: open them, then close them. */
bool
server_fds_room(struct server *srv, unsigned n)
{
	int fds[SERVER_FDS_CONN + SERVER_FDS_START + SERVER_FDS_RESERVE_MAX];
	unsigned want = n + srv->fds_reserve, got = 0;
	int probe = uv_backend_fd(&srv->loop);
	bool ok;

	if (want > sizeof fds / sizeof fds[0])
		want = sizeof fds / sizeof fds[0];
	while (got < want && (fds[got] = fcntl(probe, F_DUPFD_CLOEXEC, 3)) >= 0)
		got++;
	ok = got == want;
	while (got > 0)
		close(fds[--got]);
	return ok;
}

/* A refused connection: told why, closed once the client has read it. */
struct server_refusal {
	struct server *srv;
	int fd;
	uv_poll_t poll;
	uv_timer_t timer;
	unsigned handles;
};

/* One of a refusal's handles closed; the last one closes the socket. */
static void
server_refusal_close_cb(uv_handle_t *h)
{
	struct server_refusal *r = h->data;

	if (--r->handles > 0)
		return;
	close(r->fd);
	r->srv->refusals_closing--;
	free(r);
}

/* Stop waiting for the refused client. */
static void
server_refusal_end(struct server_refusal *r)
{
	if (uv_is_closing((uv_handle_t *)&r->poll))
		return;
	uv_close((uv_handle_t *)&r->poll, server_refusal_close_cb);
	uv_close((uv_handle_t *)&r->timer, server_refusal_close_cb);
}

/* The refused client sent something or closed: drop it, end at EOF. */
static void
server_refusal_read_cb(uv_poll_t *h, int status, int events)
{
	struct server_refusal *r = h->data;
	char buf[512];
	ssize_t n;

	(void)events;
	if (status < 0) {
		server_refusal_end(r);
		return;
	}
	while ((n = read(r->fd, buf, sizeof buf)) > 0)
		;
	if (n == 0 || (errno != EAGAIN && errno != EINTR))
		server_refusal_end(r);
}

/* SERVER_REFUSAL_LINGER_MS passed. */
static void
server_refusal_timer_cb(uv_timer_t *t)
{
	server_refusal_end(t->data);
}

/* Put a big-endian 32-bit number. */
static unsigned char *
server_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
	return p + 4;
}

/*
 * Tell a client that is not served why, before any key exchange: the
 * identification line, then an unencrypted SSH_MSG_DISCONNECT (RFC 4253:
 * packets before the first NEWKEYS have no cipher and no MAC). OpenSSH
 * prints its description ("Received disconnect from ...: <why>"). libssh
 * cannot send it without starting a key exchange, which a broker out of
 * descriptors should not do. Then the socket lingers until the client
 * closes it, so that no reset races the reason.
 */
void
server_refuse_with_reason(struct server *srv, int fd, const char *why)
{
	static const char ident[] = "SSH-2.0-podgate\r\n";
	unsigned char buf[sizeof ident + 256], *p = buf;
	size_t wlen = strlen(why), payload, pad, len;
	struct server_refusal *r = NULL;

	if (wlen > 160)
		wlen = 160;
	memcpy(p, ident, sizeof ident - 1);
	p += sizeof ident - 1;
	/* byte type, uint32 reason, string description, string language */
	payload = 1 + 4 + 4 + wlen + 4;
	pad = 8 - (4 + 1 + payload) % 8;
	if (pad < 4)
		pad += 8;
	p = server_put32(p, (uint32_t)(1 + payload + pad));
	*p++ = (unsigned char)pad;
	*p++ = 1;	/* SSH_MSG_DISCONNECT */
	p = server_put32(p, SERVER_SSH_TOO_MANY_CONNECTIONS);
	p = server_put32(p, (uint32_t)wlen);
	memcpy(p, why, wlen);
	p += wlen;
	p = server_put32(p, 0);
	memset(p, 0, pad);
	p += pad;
	len = (size_t)(p - buf);
	/* A fresh socket's send buffer takes this whole. */
	if (write(fd, buf, len) != (ssize_t)len || shutdown(fd, SHUT_WR) < 0 ||
	    srv->refusals_closing >= SERVER_REFUSALS_CLOSING_MAX ||
	    (r = calloc(1, sizeof *r)) == NULL) {
		close(fd);
		return;
	}
	r->srv = srv;
	r->fd = fd;
	if (uv_poll_init(&srv->loop, &r->poll, fd) < 0) {
		close(fd);
		free(r);
		return;
	}
	r->poll.data = r;
	uv_timer_init(&srv->loop, &r->timer);
	r->timer.data = r;
	r->handles = 2;
	srv->refusals_closing++;
	uv_poll_start(&r->poll, UV_READABLE, server_refusal_read_cb);
	uv_timer_start(&r->timer, server_refusal_timer_cb, SERVER_REFUSAL_LINGER_MS, 0);
}
