/*
 * The client side of replicas (peer-client.h): what a query
 * (peer-query.c) and a relay (peer-relay.c) share. This replica's name,
 * the credentials copied off the configuration, connecting to a replica
 * and checking its host key, telling this replica's own address from the
 * others', and the pool of connections kept for the same admin's next
 * command. docs/live.md says what users see.
 *
 * Everything below peer_roles_include runs off the loop, on the threads
 * of queries and relays, and touches nothing of the loop's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <uv.h>

#include "admin/peer-client-int.h"
#include "admin/peer-client.h"
#include "policy/config.h"
#include "session/session.h"

/* Connections kept between commands, and how long one is kept unused. */
#define PEER_POOL_MAX 32
#define PEER_IDLE_MS 30000

/* Whether the configuration names peers. */
bool
peer_enabled(const struct config *c)
{
	return c != NULL && (c->npeers > 0 || c->peers_dns != NULL);
}

/* This replica's name. */
const char *
peer_self_name(void)
{
	static char name[128];
	const char *e;

	if (name[0] != '\0')
		return name;
	if ((e = getenv("PODGATE_REPLICA")) != NULL && *e != '\0' && strlen(e) < sizeof name) {
		snprintf(name, sizeof name, "%s", e);
		return name;
	}
	if (gethostname(name, sizeof name - 1) < 0 || name[0] == '\0')
		snprintf(name, sizeof name, "localhost");
	name[strcspn(name, ".")] = '\0';
	return name;
}

/* Whether the roles a peer passed along include role. */
bool
peer_roles_include(const struct session *s, const char *role)
{
	const char *v = NULL, *p;
	size_t i, n = strlen(role);

	for (i = 0; i < s->nenv; i++) {
		if (strncmp(s->env[i], "PODGATE_ROLES=", 14) == 0)
			v = s->env[i] + 14;
	}
	for (p = v; p != NULL && *p != '\0'; p += strcspn(p, ",") + (p[strcspn(p, ",")] != '\0')) {
		if (strncmp(p, role, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return true;
	}
	return false;
}

/* ---- the client side (off the loop) ---- */

/* Free the copies a job or relay holds. */
void
peer_creds_free(struct peer_creds *c)
{
	size_t i;

	free(c->user);
	free(c->roles);
	free(c->key_path);
	free(c->own_host);
	for (i = 0; i < c->npubkeys; i++)
		free(c->pubkeys[i]);
	free(c->pubkeys);
	memset(c, 0, sizeof *c);
}

/* Copy what the client side needs off the configuration. */
int
peer_creds_fill(const struct peer_client *pc, const struct cfg_user *u,
    struct peer_creds *out)
{
	static const char *const roles[] = { "auditor", "approver" };
	const struct config *c = *pc->config;
	char buf[64] = "";
	size_t i;

	memset(out, 0, sizeof *out);
	for (i = 0; i < sizeof roles / sizeof roles[0]; i++) {
		if (config_user_has_role(c, u, roles[i]))
			snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s",
			    buf[0] != '\0' ? "," : "", roles[i]);
	}
	out->own_port = c->peer_port;
	if ((out->user = strdup(u->name)) == NULL || (out->roles = strdup(buf)) == NULL ||
	    (out->own_host = strdup(c->peer_host)) == NULL ||
	    (out->key_path = strdup(c->peer_key)) == NULL ||
	    (out->pubkeys = calloc(c->peer_keys.nkeys + 1, sizeof *out->pubkeys)) == NULL)
		goto oom;
	for (i = 0; i < c->peer_keys.nkeys; i++) {
		if (asprintf(&out->pubkeys[i], "%s %s", c->peer_keys.keys[i].type,
		    c->peer_keys.keys[i].base64) < 0) {
			out->pubkeys[i] = NULL;
			goto oom;
		}
		out->npubkeys++;
	}
	return 0;
oom:
	peer_creds_free(out);
	return -ENOMEM;
}

/* The name of a replica by its address: a DNS name's first label, else ADDR:PORT. */
char *
peer_name_of(const char *host, uint16_t port)
{
	unsigned char a[sizeof(struct in6_addr)];
	char *n = NULL;

	if (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1) {
		if (asprintf(&n, strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u", host, port) < 0)
			return NULL;
		return n;
	}
	return strndup(host, strcspn(host, "."));
}

/* Whether addr is one of this machine's interface addresses. */
static bool
peer_addr_is_local(const struct sockaddr *sa)
{
	struct ifaddrs *ifs = NULL, *i;
	bool local = false;

	if (getifaddrs(&ifs) < 0)
		return false;
	for (i = ifs; i != NULL && !local; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != sa->sa_family)
			continue;
		if (sa->sa_family == AF_INET)
			local = memcmp(&((const struct sockaddr_in *)sa)->sin_addr,
			    &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4) == 0;
		else if (sa->sa_family == AF_INET6)
			local = memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr,
			    &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16) == 0;
	}
	freeifaddrs(ifs);
	return local;
}

/* Whether sa is the address own (numeric), or one of this machine's when own is a wildcard. */
static bool
peer_addr_is_own(const struct sockaddr *sa, const char *own)
{
	unsigned char a[sizeof(struct in6_addr)];

	if (strcmp(own, "0.0.0.0") == 0 || strcmp(own, "::") == 0)
		return peer_addr_is_local(sa);
	if (sa->sa_family == AF_INET && inet_pton(AF_INET, own, a) == 1)
		return memcmp(&((const struct sockaddr_in *)sa)->sin_addr, a, 4) == 0;
	if (sa->sa_family == AF_INET6 && inet_pton(AF_INET6, own, a) == 1)
		return memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, a, 16) == 0;
	return false;
}

/*
 * Whether HOST:PORT is this replica's own peer listener: its port, and
 * peer_listen's address (any of this machine's when that is a wildcard),
 * so that replicas sharing a machine and a port on different addresses
 * still reach each other.
 */
bool
peer_is_self(const char *host, uint16_t port, const struct peer_creds *c)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	bool self = false;

	if (port != c->own_port || getaddrinfo(host, NULL, &hints, &res) != 0)
		return false;
	for (ai = res; ai != NULL && !self; ai = ai->ai_next)
		self = peer_addr_is_own(ai->ai_addr, c->own_host);
	freeaddrinfo(res);
	return self;
}

/* Milliseconds on a monotonic clock. */
uint64_t
peer_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Whether the replica's host key is one of the peer keys. */
static bool
peer_host_key_ok(ssh_session ssh, const struct peer_creds *c)
{
	ssh_key key = NULL, k = NULL;
	bool ok = false;
	size_t i;

	if (ssh_get_server_publickey(ssh, &key) != SSH_OK)
		return false;
	for (i = 0; i < c->npubkeys && !ok; i++) {
		char type[64];
		size_t n = strcspn(c->pubkeys[i], " ");

		if (n >= sizeof type || c->pubkeys[i][n] == '\0')
			continue;
		memcpy(type, c->pubkeys[i], n);
		type[n] = '\0';
		if (ssh_pki_import_pubkey_base64(c->pubkeys[i] + n + 1,
		    ssh_key_type_from_name(type), &k) != SSH_OK)
			continue;
		ok = ssh_key_cmp(k, key, SSH_KEY_CMP_PUBLIC) == 0;
		ssh_key_free(k);
		k = NULL;
	}
	ssh_key_free(key);
	return ok;
}

/* Disconnect and free a session. */
void
peer_close(ssh_session ssh)
{
	if (ssh == NULL)
		return;
	ssh_disconnect(ssh);
	ssh_free(ssh);
}

/*
 * Connect and authenticate to a replica within timeout_ms. Returns the
 * session, or NULL with *why set.
 */
ssh_session
peer_connect(const char *host, uint16_t port, const struct peer_creds *c, long timeout_ms,
    const char **why)
{
	ssh_session ssh = NULL;
	ssh_key priv = NULL;
	unsigned int uport = port;
	long secs = timeout_ms / 1000, usecs = (timeout_ms % 1000) * 1000;
	bool no = false;
	int verbosity = SSH_LOG_NOLOG;

	*why = "out of memory";
	if ((ssh = ssh_new()) == NULL)
		return NULL;
	if (ssh_options_set(ssh, SSH_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
	    ssh_options_set(ssh, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) < 0 ||
	    ssh_options_set(ssh, SSH_OPTIONS_HOST, host) < 0 ||
	    ssh_options_set(ssh, SSH_OPTIONS_PORT, &uport) < 0 ||
	    ssh_options_set(ssh, SSH_OPTIONS_USER, c->user) < 0 ||
	    ssh_options_set(ssh, SSH_OPTIONS_TIMEOUT, &secs) < 0 ||
	    ssh_options_set(ssh, SSH_OPTIONS_TIMEOUT_USEC, &usecs) < 0 ||
	    ssh_options_set(ssh, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") < 0 ||
	    ssh_options_set(ssh, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") < 0) {
		*why = "cannot set up SSH";
		goto fail;
	}
	if (ssh_connect(ssh) != SSH_OK) {
		*why = "no connection";
		goto fail;
	}
	if (!peer_host_key_ok(ssh, c)) {
		*why = "its host key is not one of peer_keys";
		goto fail;
	}
	if (ssh_pki_import_privkey_file(c->key_path, NULL, NULL, NULL, &priv) != SSH_OK) {
		*why = "cannot read peer_key";
		goto fail;
	}
	if (ssh_userauth_publickey(ssh, NULL, priv) != SSH_AUTH_SUCCESS) {
		*why = "authentication refused";
		goto fail;
	}
	ssh_key_free(priv);
	return ssh;
fail:
	ssh_key_free(priv);
	peer_close(ssh);
	return NULL;
}

/*
 * Open a channel running command (on a PTY when cols > 0). *sent (when
 * not NULL) says whether the command went out: from then on a failure
 * leaves unknown whether it ran.
 */
ssh_channel
peer_channel(ssh_session ssh, const struct peer_creds *c, const char *command, int cols,
    int rows, bool *sent)
{
	ssh_channel ch;

	if (sent != NULL)
		*sent = false;
	if ((ch = ssh_channel_new(ssh)) == NULL)
		return NULL;
	if (ssh_channel_open_session(ch) != SSH_OK ||
	    ssh_channel_request_env(ch, "PODGATE_ROLES", c->roles) != SSH_OK ||
	    (cols > 0 && ssh_channel_request_pty_size(ch, "xterm", cols, rows) != SSH_OK))
		goto fail;
	if (sent != NULL)
		*sent = true;
	if (ssh_channel_request_exec(ch, command) != SSH_OK)
		goto fail;
	return ch;
fail:
	ssh_channel_free(ch);
	return NULL;
}

/* Split "HOST:PORT" (or "[V6]:PORT"). */
int
peer_split(const char *spec, char **host, uint16_t *port)
{
	const char *colon = strrchr(spec, ':');
	bool v6 = spec[0] == '[' && colon != NULL && colon > spec && colon[-1] == ']';

	*host = NULL;
	if (colon == NULL)
		return -EINVAL;
	*port = (uint16_t)strtoul(colon + 1, NULL, 10);
	if ((*host = v6 ? strndup(spec + 1, (size_t)(colon - spec) - 2) :
	    strndup(spec, (size_t)(colon - spec))) == NULL)
		return -ENOMEM;
	return 0;
}

/* ---- connections kept between commands ---- */

/*
 * Authenticated connections to the other replicas, kept for the next
 * command of the same admin: the replica, the user, peer_key and
 * peer_keys they were made with are their key, so a configuration that
 * changes any of these makes new ones. A connection is used by one thread
 * at a time (libssh sessions are not thread-safe): taken out of the pool,
 * used, put back. A thread of the pool's closes those idle PEER_IDLE_MS.
 */
struct peer_idle {
	char *key;
	ssh_session ssh;
	uint64_t since;		/* put back at, peer_now_ms */
};

static struct {
	uv_once_t once;
	uv_mutex_t mu;
	uv_cond_t cond;		/* the pool changed: the reaper looks again */
	bool reaping;		/* the reaper runs */
	struct peer_idle idle[PEER_POOL_MAX];
	size_t n;
} peer_pool = { .once = UV_ONCE_INIT };

static void
peer_pool_init(void)
{
	uv_mutex_init(&peer_pool.mu);
	uv_cond_init(&peer_pool.cond);
}

/* Close a connection taken out of the pool. */
static void
peer_idle_close(struct peer_idle *e)
{
	peer_close(e->ssh);
	free(e->key);
}

/* The pool's key of a connection to host:port made with creds; NULL when out of memory. */
char *
peer_pool_key(const char *host, uint16_t port, const struct peer_creds *c)
{
	char *key = NULL, *k;
	size_t i;

	if (asprintf(&key, "%s:%u\n%s\n%s", host, port, c->user, c->key_path) < 0)
		return NULL;
	for (i = 0; i < c->npubkeys; i++) {
		if (asprintf(&k, "%s\n%s", key, c->pubkeys[i]) < 0) {
			free(key);
			return NULL;
		}
		free(key);
		key = k;
	}
	return key;
}

/* Close the connections idle for PEER_IDLE_MS, until the pool is empty. */
static void *
peer_pool_reaper(void *arg)
{
	struct peer_idle gone[PEER_POOL_MAX];
	uint64_t now, next;
	size_t i, ngone;

	(void)arg;
	uv_mutex_lock(&peer_pool.mu);
	while (peer_pool.n > 0) {
		now = peer_now_ms();
		next = UINT64_MAX;
		ngone = 0;
		for (i = peer_pool.n; i-- > 0;) {
			if (now - peer_pool.idle[i].since >= PEER_IDLE_MS) {
				gone[ngone++] = peer_pool.idle[i];
				peer_pool.idle[i] = peer_pool.idle[--peer_pool.n];
			} else if (peer_pool.idle[i].since + PEER_IDLE_MS < next) {
				next = peer_pool.idle[i].since + PEER_IDLE_MS;
			}
		}
		if (ngone > 0) {
			uv_mutex_unlock(&peer_pool.mu);
			for (i = 0; i < ngone; i++)
				peer_idle_close(&gone[i]);
			uv_mutex_lock(&peer_pool.mu);
		} else if (peer_pool.n > 0) {
			uv_cond_timedwait(&peer_pool.cond, &peer_pool.mu, (next - now) * 1000000u);
		}
	}
	peer_pool.reaping = false;
	uv_mutex_unlock(&peer_pool.mu);
	return NULL;
}

/* A kept connection with this key, taken out of the pool; NULL when there is none. */
ssh_session
peer_pool_take(const char *key)
{
	ssh_session ssh = NULL;
	size_t i;

	uv_once(&peer_pool.once, peer_pool_init);
	uv_mutex_lock(&peer_pool.mu);
	for (i = peer_pool.n; i-- > 0;) {
		if (strcmp(peer_pool.idle[i].key, key) == 0) {
			ssh = peer_pool.idle[i].ssh;
			free(peer_pool.idle[i].key);
			peer_pool.idle[i] = peer_pool.idle[--peer_pool.n];
			break;
		}
	}
	uv_mutex_unlock(&peer_pool.mu);
	return ssh;
}

/* Keep a connection that served a command (taking key and ssh over), or close it. */
void
peer_pool_put(char *key, ssh_session ssh)
{
	pthread_attr_t attr;
	pthread_t t;
	bool kept = false;

	uv_once(&peer_pool.once, peer_pool_init);
	uv_mutex_lock(&peer_pool.mu);
	if (peer_pool.n < PEER_POOL_MAX && !peer_pool.reaping &&
	    pthread_attr_init(&attr) == 0) {
		/* Detached: it ends by itself once the pool is empty. */
		if (pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
		    pthread_create(&t, &attr, peer_pool_reaper, NULL) == 0)
			peer_pool.reaping = true;
		pthread_attr_destroy(&attr);
	}
	if (peer_pool.n < PEER_POOL_MAX && peer_pool.reaping) {
		peer_pool.idle[peer_pool.n++] = (struct peer_idle){ key, ssh, peer_now_ms() };
		uv_cond_signal(&peer_pool.cond);
		kept = true;
	}
	uv_mutex_unlock(&peer_pool.mu);
	if (!kept) {
		peer_close(ssh);
		free(key);
	}
}

/* Close every kept connection (the broker stops). */
void
peer_pool_clear(void)
{
	struct peer_idle gone[PEER_POOL_MAX];
	size_t i, n;

	uv_once(&peer_pool.once, peer_pool_init);
	uv_mutex_lock(&peer_pool.mu);
	n = peer_pool.n;
	memcpy(gone, peer_pool.idle, n * sizeof gone[0]);
	peer_pool.n = 0;
	uv_cond_signal(&peer_pool.cond);
	uv_mutex_unlock(&peer_pool.mu);
	for (i = 0; i < n; i++)
		peer_idle_close(&gone[i]);
}
