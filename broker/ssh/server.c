/*
 * The server: loads the configuration, makes sure the host key exists,
 * listens with libuv and hands each accepted socket to libssh through
 * ssh_bind_accept_fd. One loop serves every connection. SIGHUP reloads
 * the configuration (reload.c), SIGTERM and SIGINT stop gracefully,
 * SIGCHLD reaps the targets. The descriptor budget and the clean refusal
 * of connections at its limit are capacity.c.
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
#include "ssh/demo.h"
#include "ssh/keys.h"
#include "ssh/metrics.h"
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

/* Public key signature algorithms clients may use (no SHA-1 "ssh-rsa"). */
#define SERVER_PUBKEY_TYPES \
	"ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521," \
	"rsa-sha2-512,rsa-sha2-256"

/* Split "HOST:PORT" or "[V6]:PORT". */
int
server_parse_listen(const char *spec, char **host, uint16_t *port)
{
	const char *colon, *h = spec;
	unsigned char addr[sizeof(struct in6_addr)];
	char *end, *copy = NULL;
	unsigned long p;
	size_t hlen;
	int family = AF_INET;

	*host = NULL;
	*port = 0;
	if (spec == NULL)
		return -EINVAL;
	if (*spec == '[') {
		const char *close = strchr(spec, ']');

		if (close == NULL || close[1] != ':')
			return -EINVAL;
		h = spec + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
		family = AF_INET6;
	} else {
		if ((colon = strrchr(spec, ':')) == NULL)
			return -EINVAL;
		hlen = (size_t)(colon - spec);
		if (memchr(spec, ':', hlen) != NULL)
			return -EINVAL;
	}
	if (hlen == 0 || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || p == 0 || p > 65535)
		return -EINVAL;
	if ((copy = strndup(h, hlen)) == NULL)
		return -ENOMEM;
	if (inet_pton(family, copy, addr) != 1) {
		free(copy);
		return -EINVAL;
	}
	*host = copy;
	*port = (uint16_t)p;
	return 0;
}

/* "address:port" of a connected socket's peer. */
static void
server_peer(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char addr[INET6_ADDRSTRLEN];

	snprintf(buf, len, "unknown");
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof addr);
		snprintf(buf, len, "%s:%u", addr, ntohs(sin->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof addr);
		snprintf(buf, len, "[%s]:%u", addr, ntohs(sin6->sin6_port));
	}
}

/* Connections accepted per readiness of the listening socket (fairness). */
#define SERVER_ACCEPT_BATCH 32
/* Longest pause in accepting after EMFILE. */
#define SERVER_ACCEPT_BACKOFF_MAX_MS 1000

/* No Nagle delay on a client's socket: keystrokes and echoes go at once. */
static void
server_nodelay(int fd)
{
	int on = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

/* An accepted socket: refuse it (over max_connections, near the descriptor limit) or serve it. */
static void
server_serve(struct server *srv, int fd)
{
	char client[80];
	unsigned parked = 0;
	int r;

	server_peer(fd, client, sizeof client);
	if (srv->stopping) {
		close(fd);
		return;
	}
	if (srv->nconns >= srv->config->max_connections) {
		const char *who = client;
		struct audit_field f[] = {
			AUDIT_STR("client", who),
			AUDIT_STR("reason", "max_connections reached"),
		};

		audit_event_from(srv->audit, client, "refused", f, 2);
		srv->counters.refused++;
		log_warn("%s: refused: max_connections (%zu) reached", client,
		    srv->config->max_connections);
		close(fd);
		return;
	}
	/*
	 * Room for the connection and one session started on it, beyond the
	 * reserve; otherwise say so now rather than fail the session later.
	 */
	if (!server_fds_room(srv, SERVER_FDS_CONN + SERVER_FDS_START)) {
		const char *who = client;
		struct audit_field f[] = {
			AUDIT_STR("client", who),
			AUDIT_STR("reason", "open file limit reached"),
		};

		audit_event(srv->audit, "refused", f, 2);
		srv->counters.refused++;
		log_warn("%s: refused: open file limit (%u) nearly reached with %zu connections",
		    client, srv->fds_limit, srv->nconns);
		server_refuse_with_reason(srv, fd, "podgate: the broker is at its capacity "
		    "(open file limit); try again later");
		return;
	}
	/*
	 * Over max_unauthenticated_per_address, connections wait their turn
	 * (conn.c); past CONN_PARK_FACTOR times that many waiting, refuse.
	 */
	if (conn_unauthenticated_from(&srv->cs, client, &parked) >=
	    srv->config->max_unauthenticated_per_address &&
	    parked >= CONN_PARK_FACTOR * srv->config->max_unauthenticated_per_address) {
		const char *who = client;
		struct audit_field f[] = {
			AUDIT_STR("client", who),
			AUDIT_STR("reason", "too many unauthenticated connections from this address"),
		};

		audit_event_from(srv->audit, client, "refused", f, 2);
		srv->counters.refused++;
		log_warn("%s: refused: %u connections from this address are not "
		    "authenticated yet and %u wait (max_unauthenticated_per_address)", client,
		    srv->config->max_unauthenticated_per_address, parked);
		close(fd);
		return;
	}
	if ((r = conn_accept(&srv->cs, fd, client)) < 0)
		log_warn("%s: connection not served: %s", client, strerror(-r));
}

/* Load the recording signing key of c, generating it first when c allows. */
int
server_signing_key(const struct config *c, struct rec_key **out)
{
	int r;

	*out = NULL;
	r = rec_key_load(c->signing_key, true, out);
	if (r == -ENOENT && c->generate_keys) {
		if ((r = rec_key_generate(c->signing_key, out)) == 0)
			log_info("generated recording signing key %s", c->signing_key);
		else if (r == -EEXIST)	/* made by someone else meanwhile */
			r = rec_key_load(c->signing_key, true, out);
	}
	if (r == -ENOENT)
		log_error("recording signing key %s does not exist: make it with "
		    "(umask 077; openssl genpkey -algorithm ed25519 -out %s), or set "
		    "generate_keys: true", c->signing_key, c->signing_key);
	else if (r < 0)
		log_error("cannot load or make the recording signing key %s: %s%s",
		    c->signing_key, rec_strerror(r), r == -EPERM ?
		    " (readable by others: chmod 600 it)" : "");
	return r;
}

static void server_accept_cb(uv_poll_t *h, int status, int events);

/* The accept pause is over: poll the listening socket again. */
static void
server_accept_timer_cb(uv_timer_t *t)
{
	struct server *srv = t->data;

	if (srv->listening)
		uv_poll_start(&srv->listener, UV_READABLE, server_accept_cb);
}

/*
 * Out of descriptors (or kernel memory) to accept with: stop polling the
 * listening socket for a while, doubling the pause while it lasts. The
 * connections wait in the listen queue instead of the loop spinning on
 * a socket that stays readable.
 */
static void
server_accept_backoff(struct server *srv, int err)
{
	if (srv->accept_backoff_ms == 0) {
		srv->accept_backoff_ms = 10;
		log_warn("accept: %s; pausing accepts while it lasts (%u open files, %zu "
		    "connections)", strerror(err), srv->fds_limit, srv->nconns);
	} else if (srv->accept_backoff_ms < SERVER_ACCEPT_BACKOFF_MAX_MS) {
		srv->accept_backoff_ms *= 2;
		if (srv->accept_backoff_ms > SERVER_ACCEPT_BACKOFF_MAX_MS)
			srv->accept_backoff_ms = SERVER_ACCEPT_BACKOFF_MAX_MS;
	}
	uv_poll_stop(&srv->listener);
	uv_timer_start(&srv->accept_timer, server_accept_timer_cb, srv->accept_backoff_ms, 0);
}

/* The listening socket is readable: accept what waits, a batch at a time. */
static void
server_accept_cb(uv_poll_t *h, int status, int events)
{
	struct server *srv = h->data;
	unsigned i;
	int fd;

	(void)events;
	if (status < 0) {
		log_warn("accept: %s", uv_strerror(status));
		return;
	}
	for (i = 0; i < SERVER_ACCEPT_BATCH && srv->listening; i++) {
		fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				server_accept_backoff(srv, errno);
				return;
			}
			log_warn("accept: %s", strerror(errno));
			break;
		}
		if (srv->accept_backoff_ms != 0) {
			log_info("accepting connections again");
			srv->accept_backoff_ms = 0;
		}
		server_nodelay(fd);
		server_serve(srv, fd);
	}
}

/* The listening poll handle closed: close the socket. */
static void
server_listener_close_cb(uv_handle_t *h)
{
	struct server *srv = h->data;

	close(srv->listen_fd);
	srv->listen_fd = -1;
}

/* Stop accepting: new clients get "connection refused" from the kernel. */
static void
server_unlisten(struct server *srv)
{
	if (!srv->listening)
		return;
	srv->listening = false;
	uv_timer_stop(&srv->accept_timer);
	uv_close((uv_handle_t *)&srv->listener, server_listener_close_cb);
}

/* Close the handles that keep the loop running; uv_run then returns. */
static void
server_finish(struct server *srv)
{
	kube_client_close_spares();
	metrics_stop(&srv->cs);
	peer_stop(&srv->cs);
	server_unwatch_config(srv);
	server_unlisten(srv);
	if (!uv_is_closing((uv_handle_t *)&srv->sig_hup)) {
		uv_close((uv_handle_t *)&srv->sig_hup, NULL);
		uv_close((uv_handle_t *)&srv->sig_term, NULL);
		uv_close((uv_handle_t *)&srv->sig_int, NULL);
		uv_close((uv_handle_t *)&srv->sig_chld, NULL);
		uv_close((uv_handle_t *)&srv->stop_timer, NULL);
		uv_close((uv_handle_t *)&srv->accept_timer, NULL);
		uv_close((uv_handle_t *)&srv->audit_timer, NULL);
	}
	storage_close(srv->storage);
	srv->storage = NULL;
}

/* A connection was freed; the last one ends a graceful stop. */
static void
server_conn_gone(struct conn_server *cs)
{
	struct server *srv = (struct server *)((char *)cs - offsetof(struct server, cs));

	if (srv->stopping && srv->nconns == 0)
		server_finish(srv);
}

/* shutdown_grace is over: end every target that is still running. */
static void
server_grace_cb(uv_timer_t *t)
{
	struct server *srv = t->data;
	struct conn *c, *ctmp;
	struct session *s, *stmp;

	srv->grace_over = true;
	log_info("shutdown grace over: ending %zu connection(s)", srv->nconns);
	TAILQ_FOREACH_SAFE(c, &srv->conns, entry, ctmp) {
		TAILQ_FOREACH_SAFE(s, &c->sessions, entry, stmp)
			session_abort(s);
		conn_after_io(c);
	}
}

/* SIGTERM/SIGINT: stop accepting, let sessions end within shutdown_grace. */
static void
server_stop(struct server *srv, int signo)
{
	struct conn *c, *tmp;

	if (srv->stopping) {
		if (!srv->grace_over) {
			log_info("SIG%s again: not waiting for sessions", sigabbrev_np(signo));
			uv_timer_stop(&srv->stop_timer);
			server_grace_cb(&srv->stop_timer);
		}
		return;
	}
	srv->stopping = true;
	log_info("SIG%s: stopping; live sessions have %us to end", sigabbrev_np(signo),
	    srv->config->shutdown_grace);
	server_unlisten(srv);
	uv_timer_start(&srv->stop_timer, server_grace_cb,
	    (uint64_t)srv->config->shutdown_grace * 1000, 0);
	TAILQ_FOREACH_SAFE(c, &srv->conns, entry, tmp)
		conn_shutdown(c);
	if (srv->nconns == 0)
		server_finish(srv);
}

/* SIGCHLD: see which targets ended. */
static void
server_reap(struct server *srv)
{
	struct conn *c, *ctmp;
	struct session *s, *stmp;

	TAILQ_FOREACH_SAFE(c, &srv->conns, entry, ctmp) {
		TAILQ_FOREACH_SAFE(s, &c->sessions, entry, stmp)
			session_reap(s);
		conn_after_io(c);
	}
}

/* One handler for every signal the broker watches. */
static void
server_signal_cb(uv_signal_t *h, int signo)
{
	struct server *srv = h->data;

	switch (signo) {
	case SIGHUP:
		/* logrotate's postrotate: the audit log moved away gets a new file. */
		if (audit_reopen(srv->audit) == 1)
			log_info("SIGHUP: audit log reopened");
		if (srv->watching)
			server_config_digest(srv->config_path, srv->config_digest);
		server_reload(srv);
		break;
	case SIGTERM:
	case SIGINT:
		server_stop(srv, signo);
		break;
	case SIGCHLD:
		server_reap(srv);
		break;
	}
}

/* Set up the ssh_bind that every accepted socket is handed to. */
static int
server_bind(struct server *srv, enum ssh_keytypes_e keytype)
{
	bool no = false;
	int verbosity = srv->debug ? SSH_LOG_PACKET : SSH_LOG_PROTOCOL, minrsa = 2048;
	const char *hostalgs;

	switch (keytype) {
	case SSH_KEYTYPE_ED25519:
		hostalgs = "ssh-ed25519";
		break;
	case SSH_KEYTYPE_ECDSA_P256:
		hostalgs = "ecdsa-sha2-nistp256";
		break;
	case SSH_KEYTYPE_ECDSA_P384:
		hostalgs = "ecdsa-sha2-nistp384";
		break;
	case SSH_KEYTYPE_ECDSA_P521:
		hostalgs = "ecdsa-sha2-nistp521";
		break;
	case SSH_KEYTYPE_RSA:
		hostalgs = "rsa-sha2-512,rsa-sha2-256";
		break;
	default:
		log_error("host key %s: unsupported key type", srv->config->host_key);
		return -EINVAL;
	}
	if ((srv->bind = ssh_bind_new()) == NULL)
		return -ENOMEM;
	if (ssh_bind_options_set(srv->bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
	    ssh_bind_options_set(srv->bind, SSH_BIND_OPTIONS_LOG_VERBOSITY, &verbosity) < 0 ||
	    ssh_bind_options_set(srv->bind, SSH_BIND_OPTIONS_HOSTKEY,
	    srv->config->host_key) < 0 ||
	    ssh_bind_options_set(srv->bind, SSH_BIND_OPTIONS_HOSTKEY_ALGORITHMS, hostalgs) < 0 ||
	    ssh_bind_options_set(srv->bind, SSH_BIND_OPTIONS_PUBKEY_ACCEPTED_KEY_TYPES,
	    SERVER_PUBKEY_TYPES) < 0 ||
	    ssh_bind_options_set(srv->bind, SSH_BIND_OPTIONS_RSA_MIN_SIZE, &minrsa) < 0) {
		log_error("cannot set up SSH: %s", ssh_get_error(srv->bind));
		return -EINVAL;
	}
	return 0;
}

/*
 * Listen on the configured (or overridden) address. The socket is the
 * broker's own, polled by libuv, so that accepting can pause on EMFILE
 * (server_accept_backoff) instead of dropping the waiting clients.
 */
static int
server_listen(struct server *srv)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int r, on = 1, off = 0, fd = -1;

	memset(&ss, 0, sizeof ss);
	if (strchr(srv->listen_host, ':') != NULL) {
		r = uv_ip6_addr(srv->listen_host, srv->listen_port, (struct sockaddr_in6 *)&ss);
		sl = sizeof(struct sockaddr_in6);
	} else {
		r = uv_ip4_addr(srv->listen_host, srv->listen_port, (struct sockaddr_in *)&ss);
		sl = sizeof(struct sockaddr_in);
	}
	if (r < 0)
		goto fail;
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
	    (ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) < 0) ||
	    bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, SOMAXCONN) < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = uv_poll_init_socket(&srv->loop, &srv->listener, fd)) < 0)
		goto fail;
	srv->listen_fd = fd;
	srv->listener.data = srv;
	srv->listening = true;
	uv_timer_init(&srv->loop, &srv->accept_timer);	/* closed by server_finish */
	srv->accept_timer.data = srv;
	uv_poll_start(&srv->listener, UV_READABLE, server_accept_cb);
	log_info("listening on %s port %u", srv->listen_host, srv->listen_port);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	log_error("cannot listen on %s port %u: %s", srv->listen_host, srv->listen_port,
	    uv_strerror(r));
	return r;
}

/* Remove the session cgroups that have emptied (all of them: last). */
static void
server_cgroups_sweep(struct server *srv, bool last)
{
	size_t i, keep = 0;

	for (i = 0; i < srv->ncgroups_later; i++) {
		if (last)
			cgroup_kill(srv->cgroups_later[i]);
		if (cgroup_remove(srv->cgroups_later[i]) == 0 || last)
			free(srv->cgroups_later[i]);
		else
			srv->cgroups_later[keep++] = srv->cgroups_later[i];
	}
	srv->ncgroups_later = keep;
	if (last) {
		free(srv->cgroups_later);
		srv->cgroups_later = NULL;
	}
}

void
server_cgroup_later(struct server *srv, char *path)
{
	char **n;

	if ((n = reallocarray(srv->cgroups_later, srv->ncgroups_later + 1, sizeof *n)) == NULL) {
		free(path);
		return;
	}
	srv->cgroups_later = n;
	srv->cgroups_later[srv->ncgroups_later++] = path;
}

/* Once a second: summarise suppressed audit events, remove emptied cgroups. */
static void
server_audit_cb(uv_timer_t *t)
{
	struct server *srv = t->data;

	audit_tick(srv->audit);
	server_cgroups_sweep(srv, false);
}

/* Start the signal watchers and the stop timer. */
static void
server_signals(struct server *srv)
{
	uv_signal_t *sigs[] = { &srv->sig_hup, &srv->sig_term, &srv->sig_int, &srv->sig_chld };
	int nums[] = { SIGHUP, SIGTERM, SIGINT, SIGCHLD };
	size_t i;

	for (i = 0; i < 4; i++) {
		uv_signal_init(&srv->loop, sigs[i]);
		sigs[i]->data = srv;
		uv_signal_start(sigs[i], server_signal_cb, nums[i]);
	}
	uv_timer_init(&srv->loop, &srv->stop_timer);
	srv->stop_timer.data = srv;
	/* Summaries of suppressed audit events (audit_event_from). */
	uv_timer_init(&srv->loop, &srv->audit_timer);
	srv->audit_timer.data = srv;
	uv_timer_start(&srv->audit_timer, server_audit_cb, 1000, 1000);
	uv_unref((uv_handle_t *)&srv->audit_timer);
}

/* ---- what sessions see of the broker (session/host.h) ---- */

#define SERVER_OF(b) ((struct server *)((char *)(b) - offsetof(struct server, sessions)))

/* Whether one more session may start: its descriptors fit above the reserve. */
static bool
server_sessions_start_room(struct session_broker *b)
{
	return server_fds_room(SERVER_OF(b), SERVER_FDS_START);
}

/* A session's cgroup is still emptying: remove it later. */
static void
server_sessions_cgroup_later(struct session_broker *b, char *path)
{
	server_cgroup_later(SERVER_OF(b), path);
}

/* A session that ran ended: count it for /metrics. */
static void
server_sessions_ended(struct session_broker *b, enum session_outcome how, uint64_t bytes_in,
    uint64_t bytes_out)
{
	static const enum metrics_outcome outcome[] = {
		[SESSION_OUTCOME_EXIT] = METRICS_EXIT,
		[SESSION_OUTCOME_SIGNAL] = METRICS_SIGNAL,
		[SESSION_OUTCOME_KILLED] = METRICS_KILLED,
		[SESSION_OUTCOME_RECORDING_FAILED] = METRICS_RECORDING_FAILED,
	};
	struct metrics_counters *k = &SERVER_OF(b)->counters;

	k->sessions_ended[outcome[how]]++;
	k->bytes_in += bytes_in;
	k->bytes_out += bytes_out;
}

/* Something a client asked for was refused. */
static void
server_sessions_refused(struct session_broker *b)
{
	SERVER_OF(b)->counters.refused++;
}

/* Fill srv->sessions once the loop, keys, audit log, storage and registry are up. */
static void
server_sessions_init(struct server *srv)
{
	static const struct session_broker_ops ops = {
		.start_room = server_sessions_start_room,
		.cgroup_later = server_sessions_cgroup_later,
		.ended = server_sessions_ended,
		.refused = server_sessions_refused,
	};

	srv->sessions = (struct session_broker){
		.loop = &srv->loop,
		.config = &srv->config,
		.audit = srv->audit,
		.sign_key = srv->sign_key,
		.storage = srv->storage,
		.cgroups = srv->cgroups,
		.guard_counts = &srv->guard_counts,
		.redact_key = srv->have_redact_key ? srv->redact_key : NULL,
		.redact_keylen = sizeof srv->redact_key,
		.ops = &ops,
		.admin = &live_admin_ops,
		.admin_arg = srv->live,
	};
}

/* What connections and the listeners below see of the server (conn.h). */
static void
server_conns_init(struct server *srv)
{
	srv->cs = (struct conn_server){
		.loop = &srv->loop,
		.bind = &srv->bind,
		.config = &srv->config,
		.audit = &srv->audit,
		.conns = &srv->conns,
		.nconns = &srv->nconns,
		.counters = &srv->counters,
		.stopping = &srv->stopping,
		.debug = srv->debug,
		.sessions = &srv->sessions,
		.conn_gone = server_conn_gone,
	};
}

/* Run the broker until it is stopped. */
int
server_run(const struct server_opts *o)
{
	struct server srv;
	enum ssh_keytypes_e keytype;
	char *hostline = NULL, *identity = NULL;
	int r, status = SERVER_EXIT_FAILURE;
	bool loop_ok = false;

	memset(&srv, 0, sizeof srv);
	srv.listen_fd = -1;
	TAILQ_INIT(&srv.conns);
	srv.debug = o->debug;
	server_conns_init(&srv);
	if (o->debug)
		log_set_level(LOG_DEBUG);
	signal(SIGPIPE, SIG_IGN);
	server_fds_raise(&srv);
	if (ssh_init() < 0) {
		log_error("cannot initialize libssh");
		return 1;
	}
	conn_log_setup(o->debug);
	if (o->demo_dir != NULL) {
		if ((r = demo_config(o->demo_dir, o->listen, &srv.demo_yaml, &identity)) < 0)
			goto out;
		r = config_load_string("demo", srv.demo_yaml, strlen(srv.demo_yaml), stderr,
		    &srv.config);
	} else {
		if ((srv.config_path = strdup(o->config_path)) == NULL) {
			r = -ENOMEM;
			goto out;
		}
		r = config_load(srv.config_path, stderr, &srv.config);
	}
	if (r < 0) {
		log_error("cannot load the configuration");
		status = SERVER_EXIT_CONFIG;
		goto out;
	}
	kube_client_check_config(srv.config);
	if (o->listen != NULL && o->demo_dir == NULL) {
		if ((r = server_parse_listen(o->listen, &srv.listen_host, &srv.listen_port)) < 0)
			goto out;
	} else if ((srv.listen_host = strdup(srv.config->listen_host)) != NULL) {
		srv.listen_port = srv.config->listen_port;
	} else {
		goto out;
	}
	if ((r = keys_host_ensure(srv.config->host_key, srv.config->generate_keys, &hostline,
	    &keytype)) < 0) {
		if (r == -ENOENT && !srv.config->generate_keys)
			status = SERVER_EXIT_CONFIG;
		goto out;
	}
	if ((r = keys_mkdirs(srv.config->recordings, 0700)) < 0) {
		log_error_r(r, "cannot make the recordings directory %s", srv.config->recordings);
		goto out;
	}
	/*
	 * Whoever can plant a symbolic link there could send the evidence
	 * elsewhere: the recordings directory must be a real directory.
	 */
	{
		struct stat st;

		if (lstat(srv.config->recordings, &st) < 0) {
			log_error("cannot stat the recordings directory %s: %s",
			    srv.config->recordings, strerror(errno));
			r = -errno;
			goto out;
		}
		if (!S_ISDIR(st.st_mode)) {
			log_error("the recordings directory %s is %s; refusing to start "
			    "(recordings could be sent elsewhere): make it a real directory "
			    "or name its target in \"recordings\"", srv.config->recordings,
			    S_ISLNK(st.st_mode) ? "a symbolic link" : "not a directory");
			r = -EINVAL;
			goto out;
		}
	}
	if (chmod(srv.config->recordings, 0700) < 0)
		log_warn("cannot make %s mode 0700: %s", srv.config->recordings, strerror(errno));
	/* kubectl's cache: a directory that cannot be made fails here, not per session. */
	for (size_t i = 0; i < srv.config->nkube; i++) {
		const struct cfg_kube_cluster *k = &srv.config->kube[i];

		if (k->transport != CFG_KUBE_KUBECTL)
			continue;
		if ((r = keys_mkdirs(k->cache_dir, 0700)) < 0) {
			log_error_r(r, "cannot make kubectl's cache directory %s for cluster %s "
			    "(targets.kubernetes[].cache_dir: a writable directory)",
			    k->cache_dir, k->name);
			goto out;
		}
		if (k->kubeconfig == NULL) {
			char path[4096];
			int e = kube_incluster_write(k->cache_dir, path, sizeof path);

			if (e == -ENOENT)
				log_warn("cluster %s has no kubeconfig and the broker is not in a pod "
				    "(KUBERNETES_SERVICE_HOST/PORT unset): its sessions will fail", k->name);
			else if (e < 0)
				log_warn_r(e, "cluster %s: cannot write its in-cluster kubeconfig", k->name);
		}
	}
	/* The signing key is the broker's own, apart from the host key. */
	if ((r = server_signing_key(srv.config, &srv.sign_key)) < 0) {
		if (r == -ENOENT && !srv.config->generate_keys)
			status = SERVER_EXIT_CONFIG;
		goto out;
	}
	log_info("recordings are signed by %s (%s)", rec_key_fingerprint(srv.sign_key),
	    srv.config->signing_key);
	/* The redaction key is apart from the signing key: it proves what was hidden. */
	if ((r = keys_hmac_ensure(srv.config->redaction_key, srv.redact_key)) < 0)
		goto out;
	srv.have_redact_key = true;
	if (srv.config->local.enabled && (r = cgroup_base_new(&srv.cgroups)) < 0)
		goto out;
	if ((r = audit_open(srv.config->audit_log, &srv.audit)) < 0) {
		log_error_r(r, "cannot open the audit log %s", srv.config->audit_log);
		goto out;
	}
	(void)audit_set_redaction_key(srv.audit, srv.redact_key, sizeof srv.redact_key);
	if ((r = server_bind(&srv, keytype)) < 0)
		goto out;
	if ((r = uv_loop_init(&srv.loop)) < 0) {
		log_error("cannot start the event loop: %s", uv_strerror(r));
		goto out;
	}
	loop_ok = true;
	{
		struct peer_client peers = {
			.loop = &srv.loop,
			.config = &srv.config,
			.seen = peer_seen,
			.seen_arg = &srv.cs,
		};

		r = live_init(&srv.loop, &peers, &srv.live);
	}
	if (r < 0) {
		log_error("cannot start: out of memory");
		goto out;
	}
	if (srv.config->s3.enabled &&
	    (r = storage_open(&srv.loop, &srv.config->s3, srv.config->recordings, srv.audit,
	    &srv.storage)) < 0)
		goto out;
	server_sessions_init(&srv);
	if ((r = server_listen(&srv)) < 0 || (r = metrics_start(&srv.cs)) < 0 ||
	    (r = peer_start(&srv.cs)) < 0)
		goto out;
	server_signals(&srv);
	server_watch_config(&srv);
	server_fds_announce(&srv);
	{
		struct audit_field f[] = {
			AUDIT_STR("listen", srv.listen_host),
			AUDIT_NUM("port", srv.listen_port),
			AUDIT_STR("version", PODGATE_VERSION),
			AUDIT_STR("config", srv.config_path != NULL ? srv.config_path : "demo"),
			AUDIT_STR("sha256", srv.config->sha256),
		};
		audit_event(srv.audit, "broker_start", f, 5);
	}
	if (o->demo_dir != NULL)
		demo_announce(o->demo_dir, srv.listen_host, srv.listen_port, hostline, identity,
		    o->argv0);
	uv_run(&srv.loop, UV_RUN_DEFAULT);
	audit_event(srv.audit, "broker_stop", NULL, 0);
	log_info("stopped");
	status = 0;
out:
	if (loop_ok) {
		metrics_stop(&srv.cs);
		peer_stop(&srv.cs);
		server_unwatch_config(&srv);
		live_close(srv.live);
		srv.live = NULL;
		storage_close(srv.storage);
		srv.storage = NULL;
		server_unlisten(&srv);
		uv_run(&srv.loop, UV_RUN_DEFAULT);
		if (uv_loop_close(&srv.loop) != 0)
			log_warn("event loop closed with handles still open");
	}
	if (srv.bind != NULL)
		ssh_bind_free(srv.bind);
	server_cgroups_sweep(&srv, true);
	cgroup_base_free(srv.cgroups);
	if (srv.audit != NULL)
		audit_close(srv.audit);
	rec_key_free(srv.sign_key);
	guard_counts_free(srv.guard_counts);
	if (srv.config != NULL)
		config_unref(srv.config);
	free(srv.listen_host);
	free(srv.config_path);
	free(srv.demo_yaml);
	free(hostline);
	free(identity);
	ssh_finalize();
	return status;
}

