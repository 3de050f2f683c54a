/*
 * The client side of replicas (peer-client.h): queries to the other
 * replicas and relayed watches. docs/live.md says what users see.
 *
 * A query makes one job per replica. Each job runs on a thread of its own
 * (not libuv's thread pool, which recordings' fsyncs need) and touches
 * nothing of the loop's: the query holds copies of what the jobs need (the
 * user, the roles, the command, the key path and the peers' public keys)
 * and each job leaves its reply in itself. A coordinating thread starts
 * the jobs, joins them and wakes the loop through a uv_async, whose
 * callback hands the replies to the caller. A job's connection is kept
 * for the same admin's next command to that replica (the pool). A relay (a watch, or pending
 * --follow) is a thread that reads the remote command's bytes into a
 * buffer under a mutex and wakes the loop with a uv_async.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <libssh/server.h>		/* ssh_send_keepalive, a client's probe too */
#include <uv.h>

#include "admin/peer-client.h"
#include "base/log.h"
#include "base/strv.h"
#include "policy/config.h"
#include "session/session.h"

/* Bytes of one reply kept; more is an error (a listing is far smaller). */
#define PEER_REPLY_MAX (4u << 20)
/* Bytes a relay holds for the loop before it stops reading the replica. */
#define PEER_RELAY_MAX (256u * 1024)
/* A relay that heard nothing from its replica for this long asks whether it is there. */
#define PEER_PROBE_MS 1000
/* Connections kept between commands, and how long one is kept unused. */
#define PEER_POOL_MAX 32
#define PEER_IDLE_MS 30000

/* What a job needs, copied off the configuration. */
struct peer_creds {
	char *user;
	char *roles;		/* "auditor,approver" */
	char *key_path;
	char **pubkeys;		/* "TYPE BASE64" of each peer key */
	size_t npubkeys;
	char *own_host;		/* peer_listen's address: "0.0.0.0" or "::" is every one */
	uint16_t own_port;
};

struct peer_job {
	uv_thread_t thread;
	bool started;
	struct peer_query *q;
	char *host;
	uint16_t port;
	struct peer_reply reply;
};

struct peer_query {
	struct peer_client pc;		/* a copy: it may outlive its caller */
	struct peer_creds creds;
	char *command;
	char *dns;		/* resolve this first, then one job per address */
	uv_thread_t thread;	/* runs the jobs' threads, then wakes the loop */
	uv_async_t async;
	char **addrs;		/* "HOST:PORT" of the peers ("[V6]:PORT") */
	char **names;		/* for peers.dns: each address's reverse DNS name, or NULL */
	size_t naddrs;
	struct strv skip;	/* addresses not to ask (followed already) */
	struct peer_job *jobs;
	size_t njobs;
	peer_done_cb done;	/* NULL once cancelled */
	void *arg;
};

struct peer_relay {
	struct peer_client pc;		/* a copy: it may outlive its caller */
	struct peer_creds creds;
	char *host;
	uint16_t port;
	char *command;
	int cols, rows;		/* the PTY asked for; 0: none */
	uv_thread_t thread;
	uv_async_t async;
	uv_mutex_t mu;
	uint8_t *buf;		/* bytes for the loop, under mu */
	size_t len;
	bool finished;		/* the thread is done (under mu) */
	int status;
	char why[256];		/* what went wrong, once finished ("": nothing) */
	atomic_bool quit;	/* send 'q' to the replica */
	atomic_bool stop;	/* close at once */
	atomic_int new_cols, new_rows;	/* the watcher's terminal, when resized */
	atomic_bool resized;
	peer_relay_cb cb;	/* NULL once cancelled */
	void *arg;
};

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
static void
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
static int
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
static char *
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
static bool
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
static uint64_t
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
static void
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
static ssh_session
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

/* Open a channel running command (on a PTY when cols > 0). */
static ssh_channel
peer_channel(ssh_session ssh, const struct peer_creds *c, const char *command, int cols,
    int rows)
{
	ssh_channel ch;

	if ((ch = ssh_channel_new(ssh)) == NULL)
		return NULL;
	if (ssh_channel_open_session(ch) != SSH_OK ||
	    ssh_channel_request_env(ch, "PODGATE_ROLES", c->roles) != SSH_OK ||
	    (cols > 0 && ssh_channel_request_pty_size(ch, "xterm", cols, rows) != SSH_OK) ||
	    ssh_channel_request_exec(ch, command) != SSH_OK) {
		ssh_channel_free(ch);
		return NULL;
	}
	return ch;
}

/* Append to a growing reply buffer; false when it would exceed the cap. */
static bool
peer_append(char **buf, size_t *len, const char *p, size_t n)
{
	char *nb;

	if (*len + n > PEER_REPLY_MAX || (nb = realloc(*buf, *len + n + 1)) == NULL)
		return false;
	memcpy(nb + *len, p, n);
	*len += n;
	nb[*len] = '\0';
	*buf = nb;
	return true;
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
static char *
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
static ssh_session
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
static void
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

/* ---- queries ---- */

/* Forget a reply's output: it is asked for again. */
static void
peer_reply_clear(struct peer_reply *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
	r->outlen = 0;
	r->status = -1;
}

/*
 * Run the job's command on ssh, collecting stdout, stderr and the exit
 * status by deadline. Returns 0, or -1 with *why set.
 */
static int
peer_job_run(struct peer_job *j, ssh_session ssh, uint64_t deadline, const char **why)
{
	struct peer_reply *r = &j->reply;
	ssh_channel ch = NULL;
	size_t errlen = 0;
	char buf[16384];
	int n, rc = -1;

	if ((ch = peer_channel(ssh, &j->q->creds, j->q->command, 0, 0)) == NULL) {
		*why = "the command was refused";
		return -1;
	}
	for (;;) {
		if (peer_now_ms() > deadline) {
			*why = "no answer in time";
			goto out;
		}
		n = ssh_channel_read_timeout(ch, buf, sizeof buf, 0, 100);
		if (n == SSH_ERROR) {
			*why = "connection lost";
			goto out;
		}
		if (n > 0 && !peer_append(&r->out, &r->outlen, buf, (size_t)n)) {
			*why = "reply too large";
			goto out;
		}
		while ((n = ssh_channel_read_nonblocking(ch, buf, sizeof buf, 1)) > 0) {
			if (!peer_append(&r->err, &errlen, buf, (size_t)n)) {
				*why = "reply too large";
				goto out;
			}
		}
		if (n == SSH_ERROR) {
			*why = "connection lost";
			goto out;
		}
		if (ssh_channel_is_eof(ch) && ssh_channel_poll(ch, 0) <= 0 &&
		    ssh_channel_poll(ch, 1) <= 0)
			break;
	}
	r->status = ssh_channel_get_exit_status(ch);
	rc = 0;
out:
	ssh_channel_close(ch);
	ssh_channel_free(ch);
	return rc;
}

/*
 * Run one job: on a kept connection to the replica, else on a new one;
 * collect stdout, stderr and status, and keep the connection.
 */
static void
peer_job_thread(void *arg)
{
	struct peer_job *j = arg;
	struct peer_query *q = j->q;
	struct peer_reply *r = &j->reply;
	uint64_t deadline = peer_now_ms() + PEER_TIMEOUT_MS;
	ssh_session ssh = NULL;
	const char *why = NULL;
	char *key = NULL;

	if (peer_is_self(j->host, j->port, &q->creds)) {
		r->self = true;
		return;
	}
	if ((key = peer_pool_key(j->host, j->port, &q->creds)) != NULL &&
	    (ssh = peer_pool_take(key)) != NULL) {
		/*
		 * An answer on a kept connection is taken when the command
		 * succeeded. Anything else is asked again on a new connection,
		 * so that no answer rests on a connection gone stale or on what
		 * the replica trusted when it was made (its peer_keys, its users):
		 * a replica that no longer takes us is named as it would be.
		 */
		if (peer_job_run(j, ssh, deadline, &why) == 0 && r->status == 0)
			goto done;
		peer_close(ssh);
		ssh = NULL;
		peer_reply_clear(r);
		if (peer_now_ms() >= deadline) {
			why = "no answer in time";
			goto fail;
		}
	}
	if ((ssh = peer_connect(j->host, j->port, &q->creds, PEER_TIMEOUT_MS, &why)) == NULL ||
	    peer_job_run(j, ssh, deadline, &why) < 0)
		goto fail;
done:
	r->reachable = true;
	if (key != NULL) {
		peer_pool_put(key, ssh);
		key = NULL;	/* transferred, with ssh */
		ssh = NULL;
	}
	goto out;
fail:
	r->why = strdup(why != NULL ? why : "error");
out:
	if (r->out == NULL)
		r->out = strdup("");
	if (r->err == NULL)
		r->err = strdup("");
	peer_close(ssh);
	free(key);
}

/* Free a query and its jobs (its async handle is closed). */
static void
peer_query_close_cb(uv_handle_t *h)
{
	struct peer_query *q = h->data;
	size_t i;

	for (i = 0; i < q->njobs; i++) {
		free(q->jobs[i].host);
		free(q->jobs[i].reply.name);
		free(q->jobs[i].reply.addr);
		free(q->jobs[i].reply.out);
		free(q->jobs[i].reply.err);
		free(q->jobs[i].reply.why);
	}
	for (i = 0; i < q->naddrs; i++) {
		free(q->addrs[i]);
		if (q->names != NULL)
			free(q->names[i]);
	}
	strv_free(&q->skip);
	free(q->addrs);
	free(q->names);
	free(q->jobs);
	free(q->command);
	free(q->dns);
	peer_creds_free(&q->creds);
	free(q);
}

/* Every job is in (the query's thread ended): hand the replies to the caller. */
static void
peer_query_async_cb(uv_async_t *a)
{
	struct peer_query *q = a->data;
	struct peer_reply *replies = NULL;
	size_t i, n = 0;

	uv_thread_join(&q->thread);
	if ((replies = calloc(q->njobs + 1, sizeof *replies)) != NULL) {
		for (i = 0; i < q->njobs; i++) {
			if (q->jobs[i].reply.self)
				continue;
			q->pc.seen(q->pc.seen_arg, q->jobs[i].reply.name,
			    q->jobs[i].reply.reachable);
			replies[n++] = q->jobs[i].reply;
		}
	}
	if (q->done != NULL)
		q->done(q->arg, replies, n);
	free(replies);
	uv_close((uv_handle_t *)&q->async, peer_query_close_cb);
}

/* Split "HOST:PORT" (or "[V6]:PORT"). */
static int
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

/*
 * Resolve peers.dns: one "ADDR:PORT" per address, each named by reverse
 * DNS when it has a name. The name's IPv4 addresses are taken, or its IPv6
 * ones when it has none: a dual-stack Service gives each replica one of
 * each, and a replica must be asked once. A replica is reached at the
 * address itself: its name may resolve to others too.
 */
static void
peer_resolve(struct peer_query *q)
{
	static const int families[] = { AF_INET, AF_INET6 };
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	char host[NI_MAXHOST], addr[INET6_ADDRSTRLEN];
	char **list, *spec = NULL;
	size_t f, i, before = q->naddrs;

	if (getaddrinfo(q->dns, NULL, &hints, &res) != 0)
		return;
	for (f = 0; f < 2 && q->naddrs == before; f++) {
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			if (ai->ai_family != families[f] || getnameinfo(ai->ai_addr,
			    ai->ai_addrlen, addr, sizeof addr, NULL, 0, NI_NUMERICHOST) != 0)
				continue;
			if (asprintf(&spec, ai->ai_family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr,
			    q->creds.own_port) < 0) {
				spec = NULL;
				goto out;
			}
			for (i = 0; i < q->naddrs && strcmp(q->addrs[i], spec) != 0; i++)
				;
			if (i < q->naddrs) {
				free(spec);	/* a repeat */
				spec = NULL;
				continue;
			}
			if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, NULL, 0,
			    NI_NAMEREQD) != 0)
				host[0] = '\0';
			if ((list = reallocarray(q->addrs, q->naddrs + 1, sizeof *list)) == NULL)
				goto out;
			q->addrs = list;
			if ((list = reallocarray(q->names, q->naddrs + 1, sizeof *list)) == NULL)
				goto out;
			if (q->names == NULL)
				memset(list, 0, q->naddrs * sizeof *list);	/* peers listed too */
			q->names = list;
			q->names[q->naddrs] = host[0] != '\0' ? strdup(host) : NULL;
			q->addrs[q->naddrs++] = spec;
			spec = NULL;	/* transferred */
		}
	}
out:
	free(spec);
	freeaddrinfo(res);
}

/*
 * The query's thread: resolve peers.dns if needed, run one thread per
 * replica, wait for them all, then wake the loop.
 */
static void
peer_query_thread(void *arg)
{
	struct peer_query *q = arg;
	size_t i;

	if (q->dns != NULL)
		peer_resolve(q);
	if (q->naddrs > 0 && (q->jobs = calloc(q->naddrs, sizeof *q->jobs)) != NULL) {
		q->njobs = q->naddrs;
		for (i = 0; i < q->njobs; i++) {
			struct peer_job *j = &q->jobs[i];

			j->q = q;
			j->reply.status = -1;
			if (strv_has(&q->skip, q->addrs[i]))
				continue;	/* left out as this replica is */
			if (peer_split(q->addrs[i], &j->host, &j->port) < 0 ||
			    (j->reply.name = peer_name_of(q->names != NULL && q->names[i] != NULL ?
			    q->names[i] : j->host, j->port)) == NULL ||
			    (j->reply.addr = strdup(q->addrs[i])) == NULL ||
			    uv_thread_create(&j->thread, peer_job_thread, j) < 0) {
				j->reply.why = strdup("cannot start");
				continue;
			}
			j->started = true;
		}
		for (i = 0; i < q->njobs; i++) {
			if (q->jobs[i].started)
				uv_thread_join(&q->jobs[i].thread);
			if (q->jobs[i].reply.name == NULL)
				q->jobs[i].reply.self = true;	/* out of memory: leave it out */
		}
	}
	uv_async_send(&q->async);
}

/*
 * Run command on the replica at addr, or on every other one (addr NULL)
 * but those at skip's addresses.
 */
static int
peer_query_start(const struct peer_client *pc, const struct cfg_user *u, const char *addr,
    char *const *skip, size_t nskip, const char *command, peer_done_cb done, void *arg,
    struct peer_query **qp)
{
	const struct config *c = *pc->config;
	struct peer_query *q = NULL;
	size_t i;
	int r = -ENOMEM;

	*qp = NULL;
	if (!peer_enabled(c))
		return -ENOENT;
	if ((q = calloc(1, sizeof *q)) == NULL)
		return -ENOMEM;
	q->pc = *pc;
	q->done = done;
	q->arg = arg;
	if (peer_creds_fill(pc, u, &q->creds) < 0 || (q->command = strdup(command)) == NULL)
		goto fail;
	for (i = 0; i < nskip; i++)
		strv_add(&q->skip, skip[i]);
	if (q->skip.oom)
		goto fail;
	if (addr != NULL) {
		if ((q->addrs = calloc(1, sizeof *q->addrs)) == NULL ||
		    (q->addrs[0] = strdup(addr)) == NULL)
			goto fail;
		q->naddrs = 1;
	} else {
		if (c->peers_dns != NULL && (q->dns = strdup(c->peers_dns)) == NULL)
			goto fail;
		if (c->npeers > 0 && (q->addrs = calloc(c->npeers, sizeof *q->addrs)) == NULL)
			goto fail;
		for (i = 0; i < c->npeers; i++) {
			if ((q->addrs[i] = strdup(c->peers[i])) == NULL)
				goto fail;
			q->naddrs++;
		}
	}
	if ((r = uv_async_init(pc->loop, &q->async, peer_query_async_cb)) < 0)
		goto fail;
	q->async.data = q;
	if ((r = uv_thread_create(&q->thread, peer_query_thread, q)) < 0) {
		q->done = NULL;
		uv_close((uv_handle_t *)&q->async, peer_query_close_cb);
		return r;
	}
	*qp = q;
	return 0;
fail:
	q->async.data = q;
	peer_query_close_cb((uv_handle_t *)&q->async);
	return r;
}

/* Run command on every other replica. */
int
peer_query(const struct peer_client *pc, const struct cfg_user *u, const char *command,
    peer_done_cb done, void *arg, struct peer_query **qp)
{
	return peer_query_start(pc, u, NULL, NULL, 0, command, done, arg, qp);
}

/* Run command on every other replica not at one of skip's addresses. */
int
peer_query_others(const struct peer_client *pc, const struct cfg_user *u, char *const *skip,
    size_t nskip, const char *command, peer_done_cb done, void *arg, struct peer_query **qp)
{
	return peer_query_start(pc, u, NULL, skip, nskip, command, done, arg, qp);
}

/* Run command on the replica at addr. */
int
peer_query_at(const struct peer_client *pc, const struct cfg_user *u, const char *addr,
    const char *command, peer_done_cb done, void *arg, struct peer_query **qp)
{
	return peer_query_start(pc, u, addr, NULL, 0, command, done, arg, qp);
}

/* Forget the caller of a query. */
void
peer_query_cancel(struct peer_query *q)
{
	if (q != NULL)
		q->done = NULL;
}

/* ---- relayed output ---- */

/* Hand bytes to the loop; waits (briefly) while the loop has not taken the last ones. */
static bool
peer_relay_put(struct peer_relay *r, const char *buf, size_t n)
{
	uint8_t *nb;
	bool ok = false;

	while (!atomic_load(&r->stop)) {
		uv_mutex_lock(&r->mu);
		if (r->len + n <= PEER_RELAY_MAX) {
			if ((nb = realloc(r->buf, r->len + n)) != NULL) {
				memcpy(nb + r->len, buf, n);
				r->buf = nb;
				r->len += n;
				ok = true;
			}
			uv_mutex_unlock(&r->mu);
			uv_async_send(&r->async);
			return ok;
		}
		uv_mutex_unlock(&r->mu);
		uv_sleep(10);
	}
	return false;
}

/* Keep the first line of a failed command's stderr (a relay without a PTY). */
static void
peer_relay_err(struct peer_relay *r, const char *buf, size_t n)
{
	size_t have = strlen(r->why), room = sizeof r->why - 1 - have;

	if (have > 0 && memchr(r->why, '\n', have) != NULL)
		return;
	if (n > room)
		n = room;
	memcpy(r->why + have, buf, n);
	r->why[have + n] = '\0';
}

/*
 * Whether the replica still answers: a keepalive@openssh.com global
 * request wants a reply (a refusal will do), which libssh waits for up to
 * the session's timeout, PEER_TIMEOUT_MS. ssh_send_keepalive does not say
 * whether the reply came, so a wait as long as the timeout is the sign of
 * a replica that holds its connection open and no longer answers (stopped,
 * or cut off by a partition that drops packets).
 */
static bool
peer_alive(ssh_session ssh, const char **why)
{
	uint64_t t0 = peer_now_ms();

	ssh_send_keepalive(ssh);
	if (!ssh_is_connected(ssh)) {
		*why = "connection lost";
		return false;
	}
	if (peer_now_ms() - t0 >= PEER_TIMEOUT_MS) {
		*why = "no answer in time";
		return false;
	}
	return true;
}

/*
 * The relay's thread: run the command on the replica and pass its bytes
 * on. A quiet replica is probed every PEER_PROBE_MS: a watched session or
 * a follow may be silent for long, and a replica that stops answering
 * without closing its connection would otherwise never be noticed.
 */
static void
peer_relay_thread(void *arg)
{
	struct peer_relay *r = arg;
	ssh_session ssh = NULL;
	ssh_channel ch = NULL;
	const char *why = NULL;
	char buf[16384], msg[256];
	bool quit_sent = false;
	uint64_t heard;
	int n, status = 1;

	if ((ssh = peer_connect(r->host, r->port, &r->creds, PEER_TIMEOUT_MS, &why)) == NULL)
		goto fail;
	if ((ch = peer_channel(ssh, &r->creds, r->command, r->cols, r->rows)) == NULL) {
		why = r->cols > 0 ? "the watch was refused" : "the command was refused";
		goto fail;
	}
	heard = peer_now_ms();
	while (!atomic_load(&r->stop)) {
		if (peer_now_ms() - heard >= PEER_PROBE_MS) {
			if (!peer_alive(ssh, &why))
				goto fail;
			heard = peer_now_ms();
		}
		if (atomic_exchange(&r->resized, false))
			ssh_channel_change_pty_size(ch, atomic_load(&r->new_cols),
			    atomic_load(&r->new_rows));
		if (atomic_load(&r->quit) && !quit_sent) {
			ssh_channel_write(ch, "q", 1);
			quit_sent = true;
		}
		n = ssh_channel_read_timeout(ch, buf, sizeof buf, 0, 50);
		if (n == SSH_ERROR) {
			why = "connection lost";
			goto fail;
		}
		if (n > 0)
			heard = peer_now_ms();
		if (n > 0 && !peer_relay_put(r, buf, (size_t)n))
			break;
		while ((n = ssh_channel_read_nonblocking(ch, buf, sizeof buf, 1)) > 0) {
			heard = peer_now_ms();
			if (r->cols == 0)
				peer_relay_err(r, buf, (size_t)n);
			else if (!peer_relay_put(r, buf, (size_t)n))
				break;
		}
		if (ssh_channel_is_eof(ch) && ssh_channel_poll(ch, 0) <= 0 &&
		    ssh_channel_poll(ch, 1) <= 0) {
			status = ssh_channel_get_exit_status(ch);
			break;
		}
	}
	if (status == 0)
		r->why[0] = '\0';
	r->why[strcspn(r->why, "\r\n")] = '\0';
	goto out;
fail:
	if (r->cols > 0) {
		n = snprintf(msg, sizeof msg, "\r\npodgate: replica %s:%u unreachable: %s\r\n",
		    r->host, r->port, why);
		peer_relay_put(r, msg, (size_t)n);
	}
	snprintf(r->why, sizeof r->why, "%s", why);
out:
	if (ch != NULL) {
		ssh_channel_close(ch);
		ssh_channel_free(ch);
	}
	peer_close(ssh);
	uv_mutex_lock(&r->mu);
	r->finished = true;
	r->status = status < 0 ? 1 : status;
	uv_mutex_unlock(&r->mu);
	uv_async_send(&r->async);
}

/* Free a relay once its async handle is closed. */
static void
peer_relay_close_cb(uv_handle_t *h)
{
	struct peer_relay *r = h->data;

	uv_mutex_destroy(&r->mu);
	peer_creds_free(&r->creds);
	free(r->host);
	free(r->command);
	free(r->buf);
	free(r);
}

/* The thread has bytes or finished: pass them on, on the loop. */
static void
peer_relay_async_cb(uv_async_t *a)
{
	struct peer_relay *r = a->data;
	uint8_t *buf;
	size_t len;
	bool finished;
	int status;

	uv_mutex_lock(&r->mu);
	buf = r->buf;
	len = r->len;
	r->buf = NULL;
	r->len = 0;
	finished = r->finished;
	status = r->status;
	uv_mutex_unlock(&r->mu);
	if (len > 0 && r->cb != NULL)
		r->cb(r->arg, buf, len, 0, NULL);
	free(buf);
	if (!finished)
		return;
	uv_thread_join(&r->thread);
	if (r->cb != NULL)
		r->cb(r->arg, NULL, 0, status, r->why[0] != '\0' ? r->why : NULL);
	r->cb = NULL;
	uv_close((uv_handle_t *)&r->async, peer_relay_close_cb);
}

/* Run a command on another replica and pass its output on. */
int
peer_relay_start(const struct peer_client *pc, const struct cfg_user *u, const char *addr,
    const char *command, int cols, int rows, peer_relay_cb cb, void *arg,
    struct peer_relay **rp)
{
	struct peer_relay *r;
	int e;

	*rp = NULL;
	if ((r = calloc(1, sizeof *r)) == NULL)
		return -ENOMEM;
	if (peer_creds_fill(pc, u, &r->creds) < 0 || (r->command = strdup(command)) == NULL ||
	    peer_split(addr, &r->host, &r->port) < 0) {
		peer_creds_free(&r->creds);
		free(r->command);
		free(r);
		return -ENOMEM;
	}
	r->pc = *pc;
	r->cols = cols;
	r->rows = rows;
	r->cb = cb;
	r->arg = arg;
	atomic_init(&r->quit, false);
	atomic_init(&r->stop, false);
	atomic_init(&r->resized, false);
	atomic_init(&r->new_cols, cols);
	atomic_init(&r->new_rows, rows);
	uv_mutex_init(&r->mu);
	uv_async_init(pc->loop, &r->async, peer_relay_async_cb);
	r->async.data = r;
	if ((e = uv_thread_create(&r->thread, peer_relay_thread, r)) < 0) {
		r->cb = NULL;
		uv_close((uv_handle_t *)&r->async, peer_relay_close_cb);
		return e;
	}
	*rp = r;
	return 0;
}

/* Ask the replica to stop the watch. */
void
peer_relay_quit(struct peer_relay *r)
{
	if (r != NULL)
		atomic_store(&r->quit, true);
}

/* The watcher's terminal changed size: pass it on. */
void
peer_relay_resize(struct peer_relay *r, int cols, int rows)
{
	if (r == NULL)
		return;
	atomic_store(&r->new_cols, cols);
	atomic_store(&r->new_rows, rows);
	atomic_store(&r->resized, true);
}

/* Forget the caller of a relay. */
void
peer_relay_cancel(struct peer_relay *r)
{
	if (r == NULL)
		return;
	r->cb = NULL;
	atomic_store(&r->stop, true);
}
