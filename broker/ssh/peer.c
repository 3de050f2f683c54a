/*
 * The peer listener (peer.h): replicas of one broker service connect here
 * to run admin commands; what answered and what did not, for /metrics.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <uv.h>

#include "base.h"
#include "admin/peer-client.h"
#include "base/log.h"
#include "policy/config.h"
#include "ssh/conn.h"
#include "ssh/keys.h"
#include "ssh/peer.h"

/* Replicas whose reachability /metrics reports. */
#define PEER_SEEN_MAX 64

struct peer_seen {
	char name[128];
	bool up;
};

/* The peer listener. */
struct peer {
	struct conn_server *srv;
	ssh_bind bind;
	uv_tcp_t listener;
	bool listening;
	struct peer_seen seen[PEER_SEEN_MAX];
	size_t nseen;
};

/* ---- the listener ---- */

/* A replica connects: hand the socket to conn.c as a peer connection. */
static void
peer_accept_cb(uv_stream_t *l, int status)
{
	struct peer *p = l->data;
	uv_tcp_t *t = NULL;
	uv_os_fd_t ufd;
	struct sockaddr_storage ss;
	int namelen = sizeof ss, fd = -1, r;
	char addr[INET6_ADDRSTRLEN] = "unknown", client[80];

	if (status < 0 || (t = malloc(sizeof *t)) == NULL)
		return;
	uv_tcp_init(p->srv->loop, t);
	if ((r = uv_accept(l, (uv_stream_t *)t)) < 0) {
		uv_close((uv_handle_t *)t, (uv_close_cb)free);
		return;
	}
	uv_tcp_nodelay(t, 1);
	if (uv_fileno((uv_handle_t *)t, &ufd) == 0)
		fd = fcntl(ufd, F_DUPFD_CLOEXEC, 3);
	memset(&ss, 0, sizeof ss);
	snprintf(client, sizeof client, "unknown");
	if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &namelen) == 0) {
		if (ss.ss_family == AF_INET) {
			uv_ip4_name((struct sockaddr_in *)&ss, addr, sizeof addr);
			snprintf(client, sizeof client, "%s:%u", addr,
			    ntohs(((struct sockaddr_in *)&ss)->sin_port));
		} else if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, addr, sizeof addr);
			snprintf(client, sizeof client, "[%s]:%u", addr,
			    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
		}
	}
	uv_close((uv_handle_t *)t, (uv_close_cb)free);
	if (fd < 0)
		return;
	if (*p->srv->stopping || *p->srv->nconns >= (*p->srv->config)->max_connections) {
		close(fd);
		return;
	}
	if ((r = conn_accept_peer(p->srv, p->bind, fd, client)) < 0)
		log_warn("%s: peer connection not served: %s", client, strerror(-r));
}

/* Start the peer listener when peers are configured. */
int
peer_start(struct conn_server *srv)
{
	const struct config *c = *srv->config;
	struct peer *p = NULL;
	struct sockaddr_storage ss;
	enum ssh_keytypes_e type;
	char *line = NULL;
	bool no = false;
	int r, verbosity = srv->debug ? SSH_LOG_PACKET : SSH_LOG_PROTOCOL;

	if (!peer_enabled(*srv->config))
		return 0;
	if ((r = keys_host_ensure(c->peer_key, c->generate_keys, &line, &type)) < 0)
		return r;
	free(line);
	if ((p = calloc(1, sizeof *p)) == NULL)
		return -ENOMEM;
	p->srv = srv;
	if ((p->bind = ssh_bind_new()) == NULL) {
		free(p);
		return -ENOMEM;
	}
	if (ssh_bind_options_set(p->bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
	    ssh_bind_options_set(p->bind, SSH_BIND_OPTIONS_LOG_VERBOSITY, &verbosity) < 0 ||
	    ssh_bind_options_set(p->bind, SSH_BIND_OPTIONS_HOSTKEY, c->peer_key) < 0) {
		log_error("peer_key %s: cannot set up the peer listener: %s", c->peer_key,
		    ssh_get_error(p->bind));
		ssh_bind_free(p->bind);
		free(p);
		return -EINVAL;
	}
	if (strchr(c->peer_host, ':') != NULL)
		r = uv_ip6_addr(c->peer_host, c->peer_port, (struct sockaddr_in6 *)&ss);
	else
		r = uv_ip4_addr(c->peer_host, c->peer_port, (struct sockaddr_in *)&ss);
	uv_tcp_init(srv->loop, &p->listener);
	p->listener.data = p;
	p->listening = true;
	srv->peer = p;
	if (r < 0 || (r = uv_tcp_bind(&p->listener, (struct sockaddr *)&ss, 0)) < 0 ||
	    (r = uv_listen((uv_stream_t *)&p->listener, 64, peer_accept_cb)) < 0) {
		log_error("cannot listen for peers on %s port %u: %s", c->peer_host, c->peer_port,
		    uv_strerror(r));
		return r;
	}
	log_info("listening for peers on %s port %u as replica %s", c->peer_host, c->peer_port,
	    peer_self_name());
	return 0;
}

/* Free the listener once its handle is closed. */
static void
peer_close_cb(uv_handle_t *h)
{
	struct peer *p = h->data;

	ssh_bind_free(p->bind);
	free(p);
}

/* Stop the peer listener. */
void
peer_stop(struct conn_server *srv)
{
	struct peer *p = srv->peer;

	if (p == NULL)
		return;
	srv->peer = NULL;
	if (p->listening)
		uv_close((uv_handle_t *)&p->listener, peer_close_cb);
	else
		peer_close_cb((uv_handle_t *)&p->listener);
}

/* Note whether a replica answered, for /metrics. */
void
peer_seen(void *arg, const char *name, bool up)
{
	struct conn_server *srv = arg;
	struct peer *p = srv->peer;
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nseen; i++) {
		if (strcmp(p->seen[i].name, name) == 0)
			break;
	}
	if (i == p->nseen) {
		if (p->nseen == PEER_SEEN_MAX)
			return;
		p->nseen++;
		snprintf(p->seen[i].name, sizeof p->seen[i].name, "%s", name);
	}
	p->seen[i].up = up;
}

/*
 * Append the podgate_peer_up lines for /metrics; nothing without peers.
 * A replica's name is a label value: backslash, quote and newline escaped.
 */
void
peer_metrics_text(const struct conn_server *srv, struct buf *t)
{
	const struct peer *p = srv->peer;
	const char *c;
	size_t i;

	if (p == NULL)
		return;
	buf_str(t, "# HELP podgate_peer_up Whether the replica answered the last "
	    "command sent to it.\n# TYPE podgate_peer_up gauge\n");
	for (i = 0; i < p->nseen; i++) {
		buf_str(t, "podgate_peer_up{replica=\"");
		for (c = p->seen[i].name; *c != '\0'; c++) {
			if (*c == '\\' || *c == '"')
				buf_printf(t, "\\%c", *c);
			else if (*c == '\n')
				buf_str(t, "\\n");
			else
				buf_add(t, c, 1);
		}
		buf_printf(t, "\"} %d\n", p->seen[i].up);
	}
}

