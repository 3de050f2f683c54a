/*
 * The server: loads the configuration, makes sure the host key exists,
 * listens with libuv and hands each accepted socket to libssh through
 * ssh_bind_accept_fd. One loop serves every connection. SIGHUP reloads
 * the configuration, SIGTERM and SIGINT stop gracefully, SIGCHLD reaps
 * the targets.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "audit.h"
#include "conn.h"
#include "demo.h"
#include "keys.h"
#include "kube-incluster.h"
#include "live.h"
#include "log.h"
#include "peer.h"
#include "server.h"
#include "session.h"

static void server_unwatch_config(struct server *srv);
static bool server_config_digest(const char *path, unsigned char out[SERVER_DIGEST_LEN]);

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

/* A new TCP connection: refuse it over max_connections, else serve it. */
static void
server_accept_cb(uv_stream_t *l, int status)
{
	struct server *srv = l->data;
	uv_tcp_t *t = NULL;
	char client[80];
	uv_os_fd_t ufd;
	unsigned parked = 0;
	int fd = -1, r;

	if (status < 0) {
		log_warn("accept: %s", uv_strerror(status));
		return;
	}
	if ((t = malloc(sizeof *t)) == NULL)
		return;
	uv_tcp_init(&srv->loop, t);
	if ((r = uv_accept(l, (uv_stream_t *)t)) < 0) {
		log_warn("accept: %s", uv_strerror(r));
		uv_close((uv_handle_t *)t, (uv_close_cb)free);
		return;
	}
	uv_tcp_nodelay(t, 1);
	/* libssh takes its own descriptor; libuv closes the one it accepted. */
	if (uv_fileno((uv_handle_t *)t, &ufd) == 0)
		fd = fcntl(ufd, F_DUPFD_CLOEXEC, 3);
	uv_close((uv_handle_t *)t, (uv_close_cb)free);
	if (fd < 0) {
		log_warn("accept: cannot take the socket: %s", strerror(errno));
		return;
	}
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

		audit_event(srv->audit, "refused", f, 2);
		log_warn("%s: refused: max_connections (%zu) reached", client,
		    srv->config->max_connections);
		close(fd);
		return;
	}
	/*
	 * Over max_unauthenticated_per_address, connections wait their turn
	 * (conn.c); past CONN_PARK_FACTOR times that many waiting, refuse.
	 */
	if (conn_unauthenticated_from(srv, client, &parked) >=
	    srv->config->max_unauthenticated_per_address &&
	    parked >= CONN_PARK_FACTOR * srv->config->max_unauthenticated_per_address) {
		const char *who = client;
		struct audit_field f[] = {
			AUDIT_STR("client", who),
			AUDIT_STR("reason", "too many unauthenticated connections from this address"),
		};

		audit_event(srv->audit, "refused", f, 2);
		log_warn("%s: refused: %u connections from this address are not "
		    "authenticated yet and %u wait (max_unauthenticated_per_address)", client,
		    srv->config->max_unauthenticated_per_address, parked);
		close(fd);
		return;
	}
	if ((r = conn_accept(srv, fd, client)) < 0)
		log_warn("%s: connection not served: %s", client, strerror(-r));
}

/* Whether two optional strings differ. */
static bool
server_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/* SIGHUP: load the configuration again; keep the old one if it is broken. */
static void
server_reload(struct server *srv)
{
	struct config *c = NULL, *old = srv->config;
	int r;

	if (srv->config_path != NULL)
		r = config_load(srv->config_path, stderr, &c);
	else
		r = config_load_string("demo", srv->demo_yaml, strlen(srv->demo_yaml), stderr, &c);
	if (r < 0) {
		log_error("reload of %s failed (%s); keeping the running configuration",
		    srv->config_path != NULL ? srv->config_path : "the demo configuration",
		    strerror(-r));
		return;
	}
	if (server_differs(c->listen_host, old->listen_host) ||
	    c->listen_port != old->listen_port)
		log_warn("reload: listen changes only at restart");
	if (server_differs(c->host_key, old->host_key))
		log_warn("reload: host_key changes only at restart");
	if (server_differs(c->audit_log, old->audit_log))
		log_warn("reload: audit_log changes only at restart");
	if (server_differs(c->peer_host, old->peer_host) || c->peer_port != old->peer_port ||
	    server_differs(c->peer_key, old->peer_key) ||
	    (srv->peer == NULL && (c->npeers > 0 || c->peers_dns != NULL)))
		log_warn("reload: peer_listen and peer_key change only at restart");
	srv->config = c;
	config_unref(old);
	{
		struct audit_field f[] = {
			AUDIT_STR("config", srv->config_path != NULL ? srv->config_path : "demo"),
			AUDIT_NUM("users", c->nusers),
			AUDIT_NUM("rules", c->nrules),
		};
		audit_event(srv->audit, "config_reload", f, 3);
	}
	log_info("configuration reloaded: %zu users, %zu rules", c->nusers, c->nrules);
}

/* Close the handles that keep the loop running; uv_run then returns. */
static void
server_finish(struct server *srv)
{
	metrics_stop(srv);
	peer_stop(srv);
	server_unwatch_config(srv);
	if (srv->listening) {
		uv_close((uv_handle_t *)&srv->listener, NULL);
		srv->listening = false;
	}
	if (!uv_is_closing((uv_handle_t *)&srv->sig_hup)) {
		uv_close((uv_handle_t *)&srv->sig_hup, NULL);
		uv_close((uv_handle_t *)&srv->sig_term, NULL);
		uv_close((uv_handle_t *)&srv->sig_int, NULL);
		uv_close((uv_handle_t *)&srv->sig_chld, NULL);
		uv_close((uv_handle_t *)&srv->stop_timer, NULL);
	}
}

/* A connection was freed; the last one ends a graceful stop. */
void
server_conn_gone(struct server *srv)
{
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
	if (srv->listening) {
		uv_close((uv_handle_t *)&srv->listener, NULL);
		srv->listening = false;
	}
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

/* Listen on the configured (or overridden) address. */
static int
server_listen(struct server *srv)
{
	struct sockaddr_storage ss;
	int r;

	if (strchr(srv->listen_host, ':') != NULL)
		r = uv_ip6_addr(srv->listen_host, srv->listen_port, (struct sockaddr_in6 *)&ss);
	else
		r = uv_ip4_addr(srv->listen_host, srv->listen_port, (struct sockaddr_in *)&ss);
	if (r < 0)
		goto fail;
	uv_tcp_init(&srv->loop, &srv->listener);
	srv->listener.data = srv;
	srv->listening = true;
	if ((r = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0)) < 0 ||
	    (r = uv_listen((uv_stream_t *)&srv->listener, 128, server_accept_cb)) < 0)
		goto fail;
	log_info("listening on %s port %u", srv->listen_host, srv->listen_port);
	return 0;
fail:
	log_error("cannot listen on %s port %u: %s", srv->listen_host, srv->listen_port,
	    uv_strerror(r));
	return r;
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
}

/*
 * The SHA-256 of the configuration file's bytes now (at most 2 MiB are
 * read: more is refused by the loader anyway). Returns false when the
 * file cannot be read.
 */
static bool
server_config_digest(const char *path, unsigned char out[SERVER_DIGEST_LEN])
{
	static char buf[2u << 20];
	unsigned int len = 0;
	size_t n;
	FILE *f;
	bool ok;

	if ((f = fopen(path, "re")) == NULL)
		return false;
	n = fread(buf, 1, sizeof buf, f);
	ok = !ferror(f) && EVP_Digest(buf, n, out, &len, EVP_sha256(), NULL) == 1 &&
	    len == SERVER_DIGEST_LEN;
	fclose(f);
	return ok;
}

/* The configuration's directory settled after a change: reload if the file's bytes changed. */
static void
server_watch_timer_cb(uv_timer_t *t)
{
	struct server *srv = t->data;
	unsigned char d[SERVER_DIGEST_LEN];

	if (srv->stopping || !server_config_digest(srv->config_path, d) ||
	    memcmp(d, srv->config_digest, sizeof d) == 0)
		return;
	memcpy(srv->config_digest, d, sizeof d);
	log_info("%s changed: reloading", srv->config_path);
	server_reload(srv);
}

/* Something changed in the configuration's directory (an edit, a ConfigMap's symlink swap). */
static void
server_watch_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct server *srv = h->data;

	/* Writers and kubelet make several changes in a row: wait until they settle. */
	uv_timer_start(&srv->watch_timer, server_watch_timer_cb, SERVER_WATCH_SETTLE_MS, 0);
}

/*
 * Watch the directory holding the configuration file, so that an edited
 * file or an updated ConfigMap is loaded without a signal.
 */
static void
server_watch_config(struct server *srv)
{
	char *dir = NULL, *slash;
	int r;

	if (srv->config_path == NULL)
		return;
	server_config_digest(srv->config_path, srv->config_digest);
	if ((dir = strdup(srv->config_path)) == NULL)
		return;
	if ((slash = strrchr(dir, '/')) == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	uv_timer_init(&srv->loop, &srv->watch_timer);
	srv->watch_timer.data = srv;
	uv_fs_event_init(&srv->loop, &srv->watch);
	srv->watch.data = srv;
	srv->watching = true;
	if ((r = uv_fs_event_start(&srv->watch, server_watch_cb, dir, 0)) < 0)
		log_warn("cannot watch %s for changes (%s): reload with SIGHUP", dir,
		    uv_strerror(r));
	free(dir);
}

/* Stop watching the configuration. */
static void
server_unwatch_config(struct server *srv)
{
	if (!srv->watching)
		return;
	srv->watching = false;
	uv_close((uv_handle_t *)&srv->watch, NULL);
	uv_close((uv_handle_t *)&srv->watch_timer, NULL);
}

/* Run the broker until it is stopped. */
int
server_run(const struct server_opts *o)
{
	struct server srv;
	enum ssh_keytypes_e keytype;
	char *hostline = NULL, *identity = NULL;
	int r, status = 1;
	bool loop_ok = false;

	memset(&srv, 0, sizeof srv);
	TAILQ_INIT(&srv.conns);
	srv.debug = o->debug;
	if (o->debug)
		log_set_level(LOG_DEBUG);
	signal(SIGPIPE, SIG_IGN);
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
		goto out;
	}
	if (o->listen != NULL && o->demo_dir == NULL) {
		if ((r = server_parse_listen(o->listen, &srv.listen_host, &srv.listen_port)) < 0)
			goto out;
	} else if ((srv.listen_host = strdup(srv.config->listen_host)) != NULL) {
		srv.listen_port = srv.config->listen_port;
	} else {
		goto out;
	}
	if ((r = keys_host_ensure(srv.config->host_key, &hostline, &keytype)) < 0)
		goto out;
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
	if ((r = rec_key_load_or_generate(srv.config->signing_key, &srv.sign_key)) < 0) {
		log_error("cannot load or make the recording signing key %s: %s%s",
		    srv.config->signing_key, rec_strerror(r), r == -EPERM ?
		    " (readable by others: chmod 600 it)" : "");
		goto out;
	}
	log_info("recordings are signed by %s (%s)", rec_key_fingerprint(srv.sign_key),
	    srv.config->signing_key);
	if ((r = audit_open(srv.config->audit_log, &srv.audit)) < 0) {
		log_error_r(r, "cannot open the audit log %s", srv.config->audit_log);
		goto out;
	}
	if ((r = server_bind(&srv, keytype)) < 0)
		goto out;
	if ((r = uv_loop_init(&srv.loop)) < 0) {
		log_error("cannot start the event loop: %s", uv_strerror(r));
		goto out;
	}
	loop_ok = true;
	if ((r = live_init(&srv)) < 0) {
		log_error("cannot start: out of memory");
		goto out;
	}
	if ((r = server_listen(&srv)) < 0 || (r = metrics_start(&srv)) < 0 ||
	    (r = peer_start(&srv)) < 0)
		goto out;
	server_signals(&srv);
	server_watch_config(&srv);
	{
		struct audit_field f[] = {
			AUDIT_STR("listen", srv.listen_host),
			AUDIT_NUM("port", srv.listen_port),
			AUDIT_STR("version", PODGATE_VERSION),
		};
		audit_event(srv.audit, "broker_start", f, 3);
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
		metrics_stop(&srv);
		peer_stop(&srv);
		server_unwatch_config(&srv);
		live_close(&srv);
		if (srv.listening) {
			uv_close((uv_handle_t *)&srv.listener, NULL);
			srv.listening = false;
		}
		uv_run(&srv.loop, UV_RUN_DEFAULT);
		if (uv_loop_close(&srv.loop) != 0)
			log_warn("event loop closed with handles still open");
	}
	if (srv.bind != NULL)
		ssh_bind_free(srv.bind);
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
