/*
 * One SSH connection. The socket is polled by libuv; when it is readable
 * (or writable while libssh has output queued) libssh is run without
 * blocking: ssh_handle_key_exchange until the keys are agreed, then
 * ssh_event_dopoll with a zero timeout. libssh calls back into this file
 * (authentication, refused requests) and session/session.c (channels).
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/queue.h"
#include "policy/audit.h"
#include "ssh/conn.h"
#include "ssh/keys.h"
#include "base/log.h"
#include "session/session.h"

/* Refused requests a connection may make before it is dropped. */
#define CONN_MAX_REFUSALS 64
#define CONN_SESSIONS_MAX 10		/* session channels open on one connection */
/* The connection whose session host h is. */
#define CONN_OF(h) ((struct conn *)((char *)(h) - offsetof(struct conn, host)))
#define CONN_OF_CONST(h) ((const struct conn *)((const char *)(h) - offsetof(struct conn, host)))

static const struct session_host_ops conn_host_ops;
/* While stopping, how long a client gets to disconnect after its last session. */
#define CONN_STOP_LINGER_MS 1000

static void conn_close_cb(uv_handle_t *h);
static void conn_refused(struct conn *c, const char *reason);

/* The connection libssh is working for right now (for its log callback). */
static struct conn *conn_current;
static bool conn_debug;
/* The loop's thread: libssh's client side (admin/peer-*.c) logs from threads of its own. */
static pthread_t conn_loop_thread;

/*
 * libssh's log. Besides forwarding it with --debug, it is the only place
 * where libssh 0.10 tells that a client asked for agent forwarding
 * without a channel callback (with one, libssh would answer "success").
 */
static void
conn_log_cb(int priority, const char *function, const char *buffer, void *userdata)
{
	if (pthread_equal(pthread_self(), conn_loop_thread) && conn_current != NULL &&
	    buffer != NULL && strstr(buffer, "auth-agent-req") != NULL)
		conn_current->agent_requests++;
	if (conn_debug)
		log_write(LOG_DEBUG, "libssh", "%s: %s", function, buffer);
}

/* Route libssh's log through ours (at protocol level, for conn_log_cb). */
void
conn_log_setup(bool debug)
{
	conn_debug = debug;
	conn_loop_thread = pthread_self();
	ssh_set_log_callback(conn_log_cb);
	ssh_set_log_level(debug ? SSH_LOG_PACKET : SSH_LOG_PROTOCOL);
}

/* Audit agent forwarding requests seen in libssh's log (refused by libssh). */
static void
conn_agent_refused(struct conn *c)
{
	struct session *s, *last = NULL;

	if (c->agent_requests == 0)
		return;
	c->agent_requests = 0;
	TAILQ_FOREACH(s, &c->sessions, entry) {
		if (s->state == SESSION_NEW)
			last = s;
	}
	if (last != NULL)
		session_refuse_request(last, "agent forwarding");
	else
		conn_refused(c, "agent forwarding refused");
}

/* Copy a client-supplied name for logs: printable ASCII, at most 64 bytes. */
static void
conn_clean(char *dst, size_t dstlen, const char *src)
{
	size_t i;

	for (i = 0; src != NULL && src[i] != '\0' && i + 1 < dstlen && i < 64; i++)
		dst[i] = (src[i] > 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
}

static void conn_poll_cb(uv_poll_t *h, int status, int events);
static void conn_kex(struct conn *c);
static void conn_unpark_next(struct conn *c);

/* auth_failure_delay is over: read the connection again. */
static void
conn_penalty_cb(uv_timer_t *t)
{
	struct conn *c = t->data;

	c->penalized = false;
	c->poll_events = 0;	/* conn_update_poll starts polling again */
	if (!c->released)
		conn_poll_cb(&c->poll, 0, UV_READABLE);	/* what libssh already holds */
}

/* Stop reading c for auth_failure_delay: each guess costs the client that long. */
static void
conn_penalize(struct conn *c)
{
	unsigned ms = (*c->server->config)->auth_failure_delay_ms;

	if (ms == 0 || c->state == CONN_DEAD || c->released)
		return;
	c->penalized = true;
	uv_poll_stop(&c->poll);
	c->poll_events = 0;
	uv_timer_start(&c->penalty, conn_penalty_cb, ms, 0);
}

/*
 * Audit an authentication failure and drop the client after too many.
 * A failure that is more than a "would this key do?" query (delay) also
 * pauses the connection for auth_failure_delay.
 */
static void
conn_auth_failed(struct conn *c, const char *user, const char *fp, const char *reason,
    bool delay)
{
	struct audit_field f[] = {
		AUDIT_STR("user", user),
		AUDIT_STR("key_fp", fp),
		AUDIT_STR("client", c->client),
		AUDIT_STR("reason", reason),
	};
	char name[80];

	audit_event_from(*c->server->audit, c->client, "auth_failure", f, sizeof f / sizeof f[0]);
	c->server->counters->auth_failures++;
	conn_clean(name, sizeof name, user);
	log_info("%s: authentication failed for '%s': %s", c->client, name, reason);
	c->auth_failures++;
	if (c->auth_failures >= (*c->server->config)->max_auth_tries)
		conn_kill(c, "too many authentication failures");
	else if (delay)
		conn_penalize(c);
}

/*
 * A user name over CONN_USER_MAX bytes is refused at once: the connection
 * ends, after one audit event holding the name's first CONN_USER_MAX
 * bytes. Returns whether user was too long.
 */
static bool
conn_user_too_long(struct conn *c, const char *user)
{
	char cut[CONN_USER_MAX + 1], reason[64];
	size_t len = user != NULL ? strnlen(user, CONN_USER_MAX + 1) : 0;

	if (len <= CONN_USER_MAX)
		return false;
	memcpy(cut, user, CONN_USER_MAX);
	cut[CONN_USER_MAX] = '\0';
	snprintf(reason, sizeof reason, "user name longer than %d bytes", CONN_USER_MAX);
	{
		struct audit_field f[] = {
			AUDIT_STR("user", cut),
			AUDIT_STR("key_fp", ""),
			AUDIT_STR("client", c->client),
			AUDIT_STR("reason", reason),
		};

		audit_event_from(*c->server->audit, c->client, "auth_failure", f,
		    sizeof f / sizeof f[0]);
	}
	conn_kill(c, reason);
	return true;
}

/* auth_pubkey_function: the user's configured keys only; same answer for unknowns. */
static int
conn_auth_pubkey_cb(ssh_session ssh, const char *user, struct ssh_key_struct *pubkey,
    char signature_state, void *userdata)
{
	struct conn *c = userdata;
	const struct config *cfg = (*c->server->config);
	const struct cfg_user *u = NULL;
	const struct cfg_key *k = NULL;
	char *fp = NULL;
	int r = SSH_AUTH_DENIED;

	/* CONN_KEX too: libssh may read a pipelined request as the keys settle. */
	if ((c->state != CONN_AUTH && c->state != CONN_KEX) || user == NULL || pubkey == NULL)
		return SSH_AUTH_DENIED;
	if (conn_user_too_long(c, user))
		return SSH_AUTH_DENIED;
	if (keys_fingerprint(pubkey, &fp) < 0)
		fp = NULL;
	u = config_find_user(cfg, user);
	if (c->peer)
		k = u != NULL ? config_user_pubkey(&cfg->peer_keys, pubkey) : NULL;
	else if (u != NULL)
		k = config_user_pubkey(u, pubkey);
	if (k != NULL && signature_state == SSH_PUBLICKEY_STATE_NONE) {
		r = SSH_AUTH_SUCCESS;	/* "would this key do?": yes, sign with it */
		goto out;
	}
	if (k != NULL && signature_state == SSH_PUBLICKEY_STATE_VALID) {
		struct audit_field f[] = {
			AUDIT_STR("user", u->name),
			AUDIT_STR("key_fp", fp),
			AUDIT_STR("client", c->client),
			AUDIT_STR("key_type", ssh_key_type_to_char(ssh_key_type(pubkey))),
			AUDIT_STR("via", c->peer ? "peer" : NULL),
		};

		if ((c->user = strdup(u->name)) == NULL ||
		    (c->key_fp = strdup(fp != NULL ? fp : "")) == NULL) {
			conn_kill(c, "out of memory");
			goto out;
		}
		c->config = config_ref((*c->server->config));
		c->host.user = c->user;
		c->host.key_fp = c->key_fp;
		c->state = CONN_OPEN;
		uv_timer_stop(&c->grace);
		conn_unpark_next(c);
		audit_event(*c->server->audit, "auth_success", f, sizeof f / sizeof f[0] -
		    (c->peer ? 0 : 1));
		log_info("%s: authenticated as %s with %s", c->client, u->name, fp);
		r = SSH_AUTH_SUCCESS;
		goto out;
	}
	conn_auth_failed(c, user, fp, u == NULL ? "unknown user" :
	    k == NULL ? (c->peer ? "unknown peer key" : "key not authorized for user") :
	    "invalid signature",
	    signature_state != SSH_PUBLICKEY_STATE_NONE);
out:
	free(fp);
	return r;
}

/* service_request_function: only the user authentication service. */
static int
conn_service_cb(ssh_session ssh, const char *service, void *userdata)
{
	if (service != NULL && strcmp(service, "ssh-userauth") == 0)
		return 0;
	return -1;
}

/* channel_open_request_session_function: a session, within the connection's share. */
static ssh_channel
conn_channel_open_cb(ssh_session ssh, void *userdata)
{
	struct conn *c = userdata;
	struct session *s;

	if (c->state != CONN_OPEN || *c->server->stopping)
		return NULL;
	if (c->nsessions >= CONN_SESSIONS_MAX) {
		struct audit_field f[] = {
			AUDIT_STR("user", c->user),
			AUDIT_STR("client", c->client),
			AUDIT_STR("reason", "too many sessions on one connection"),
		};
		audit_event(*c->server->audit, "refused", f, 3);
		c->refusals++;
		return NULL;
	}
	if ((s = session_open(&c->host)) == NULL)
		return NULL;
	TAILQ_INSERT_TAIL(&c->sessions, s, entry);
	c->nsessions++;
	return s->channel;
}

/* The session that owns channel on c, or NULL. */
static struct session *
conn_session_find(struct conn *c, ssh_channel channel)
{
	struct session *s;

	TAILQ_FOREACH(s, &c->sessions, entry) {
		if (s->channel == channel)
			return s;
	}
	return NULL;
}

/* Audit a refused request that has no session channel to report to. */
static void
conn_refused(struct conn *c, const char *reason)
{
	struct audit_field f[] = {
		AUDIT_STR("user", c->user),
		AUDIT_STR("client", c->client),
		AUDIT_STR("reason", reason),
	};

	if (c->user == NULL)
		audit_event_from(*c->server->audit, c->client, "refused", f, sizeof f / sizeof f[0]);
	else
		audit_event(*c->server->audit, "refused", f, sizeof f / sizeof f[0]);
	c->server->counters->refused++;
	log_info("%s: refused: %s", c->client, reason);
	c->refusals++;
}

/* The name of an unwanted channel type, for the refusal reason. */
static const char *
conn_channel_type(int subtype)
{
	switch (subtype) {
	case SSH_CHANNEL_DIRECT_TCPIP:
		return "port forwarding (direct-tcpip channel)";
	case SSH_CHANNEL_FORWARDED_TCPIP:
		return "forwarded-tcpip channel";
	case SSH_CHANNEL_X11:
		return "x11 channel";
	case SSH_CHANNEL_AUTH_AGENT:
		return "agent channel";
	default:
		return "unknown channel type";
	}
}

/*
 * Messages no callback took: other authentication methods, other channel
 * types, x11-req, global requests. All are refused (default reply).
 */
static int
conn_message_cb(ssh_session ssh, ssh_message msg, void *userdata)
{
	struct conn *c = userdata;
	struct session *s;
	char reason[128];
	int type = ssh_message_type(msg), sub = ssh_message_subtype(msg);

	switch (type) {
	case SSH_REQUEST_AUTH:
		if (sub == SSH_AUTH_METHOD_NONE || c->state == CONN_OPEN || c->state == CONN_DEAD)
			break;
		snprintf(reason, sizeof reason, "method %s not allowed",
		    sub == SSH_AUTH_METHOD_PASSWORD ? "password" :
		    sub == SSH_AUTH_METHOD_INTERACTIVE ? "keyboard-interactive" :
		    sub == SSH_AUTH_METHOD_HOSTBASED ? "hostbased" :
		    sub == SSH_AUTH_METHOD_GSSAPI_MIC ? "gssapi-with-mic" : "unknown");
		if (!conn_user_too_long(c, ssh_message_auth_user(msg)))
			conn_auth_failed(c, ssh_message_auth_user(msg), NULL, reason, true);
		break;
	case SSH_REQUEST_CHANNEL_OPEN:
		snprintf(reason, sizeof reason, "%s refused", conn_channel_type(sub));
		conn_refused(c, reason);
		break;
	case SSH_REQUEST_CHANNEL:
		s = conn_session_find(c, ssh_message_channel_request_channel(msg));
		if (sub == SSH_CHANNEL_REQUEST_X11 && s != NULL)
			session_refuse_request(s, "X11 forwarding");
		else if (sub == SSH_CHANNEL_REQUEST_X11)
			conn_refused(c, "X11 forwarding refused");
		else if (sub == SSH_CHANNEL_REQUEST_UNKNOWN && s != NULL && session_break(s)) {
			/*
			 * libssh parses every standard client request but "break"
			 * (RFC 4335), which is the one left for a session here.
			 */
			ssh_message_channel_request_reply_success(msg);
			return 0;
		}
		break;
	case SSH_REQUEST_GLOBAL:
		if (sub == SSH_GLOBAL_REQUEST_TCPIP_FORWARD)
			conn_refused(c, "remote port forwarding (tcpip-forward) refused");
		else if (sub == SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD)
			conn_refused(c, "cancel-tcpip-forward refused");
		break;
	default:
		break;
	}
	if (c->refusals > CONN_MAX_REFUSALS)
		conn_kill(c, "too many refused requests");
	return 1;	/* libssh sends the default (refusing) reply */
}

/* Continue the key exchange; set up the event once it is done. */
static void
conn_kex(struct conn *c)
{
	int rc = ssh_handle_key_exchange(c->ssh);

	if (rc == SSH_AGAIN)
		return;
	if (rc != SSH_OK) {
		log_info("%s: key exchange failed: %s", c->client, ssh_get_error(c->ssh));
		conn_kill(c, "key exchange failed");
		return;
	}
	if ((c->event = ssh_event_new()) == NULL ||
	    ssh_event_add_session(c->event, c->ssh) != SSH_OK) {
		conn_kill(c, "cannot set up the connection's event");
		return;
	}
	if (c->state == CONN_KEX)
		c->state = CONN_AUTH;
	log_debug("%s: key exchange done", c->client);
}

/* The socket is readable or writable: let libssh do its work. */
/*
 * Acknowledge what the client sent at once rather than after the
 * kernel's delayed-ACK timer (40 ms). OpenSSH's client keeps Nagle on
 * for sessions without a PTY, so its second small packet in a row (the
 * channel's EOF after its exec request, its close after our close) waits
 * for the ACK of the first: with a delayed ACK, `ssh broker TARGET --
 * true` took 60-80 ms instead of 15. Linux leaves quick-ACK mode by
 * itself, so it is asked for again at each read.
 */
static void
conn_quickack(struct conn *c)
{
#ifdef TCP_QUICKACK
	int on = 1;

	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
#else
	(void)c;
#endif
}

static void
conn_poll_cb(uv_poll_t *h, int status, int events)
{
	struct conn *c = h->data;

	if (status < 0) {
		/* libuv reports POLLERR (a reset connection) as EBADF. */
		conn_kill(c, status == UV_EBADF ? "socket error" : uv_strerror(status));
	} else if (c->state != CONN_DEAD) {
		if (events & UV_READABLE)
			conn_quickack(c);
		c->depth++;
		conn_current = c;
		if (c->state == CONN_KEX)
			conn_kex(c);
		if (c->state == CONN_AUTH || c->state == CONN_OPEN) {
			if (ssh_event_dopoll(c->event, 0) == SSH_ERROR)
				conn_kill(c, ssh_get_error(c->ssh));
		}
		conn_current = NULL;
		c->depth--;
	}
	conn_after_io(c);
}

/* login_grace_time passed without a successful authentication. */
static void
conn_grace_cb(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->state == CONN_KEX || c->state == CONN_AUTH) {
		struct audit_field f[] = {
			AUDIT_STR("user", ""),
			AUDIT_STR("client", c->client),
			AUDIT_STR("reason", "login grace time exceeded"),
		};

		audit_event_from(*c->server->audit, c->client, "auth_failure", f,
		    sizeof f / sizeof f[0]);
		conn_kill(c, "login grace time exceeded");
	}
	conn_after_io(c);
}

/* Start serving an accepted socket on bind. */
static int
conn_accept_on(struct conn_server *srv, ssh_bind bind, bool peer, int fd, const char *client)
{
	struct conn *c = NULL;
	int r;

	if ((c = calloc(1, sizeof *c)) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	c->server = srv;
	c->peer = peer;
	c->state = CONN_KEX;
	/*
	 * libssh closes its descriptor when the peer goes away; polling a
	 * descriptor of our own keeps that number from being reused by the
	 * next accept while our poll handle still watches it.
	 */
	if ((c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		r = -errno;
		close(fd);
		free(c);
		return r;
	}
	TAILQ_INIT(&c->sessions);
	if ((c->client = strdup(client)) == NULL || (c->ssh = ssh_new()) == NULL) {
		close(fd);
		close(c->fd);
		free(c->client);
		free(c);
		return -ENOMEM;
	}
	if (ssh_bind_accept_fd(bind, c->ssh, fd) != SSH_OK) {
		log_error("%s: cannot start SSH: %s", client, ssh_get_error(bind));
		ssh_free(c->ssh);	/* closes fd */
		close(c->fd);
		free(c->client);
		free(c);
		return -EIO;
	}
	ssh_set_blocking(c->ssh, 0);
	ssh_set_auth_methods(c->ssh, SSH_AUTH_METHOD_PUBLICKEY);
	c->host.broker = srv->sessions;
	c->host.ops = &conn_host_ops;
	c->host.ssh = c->ssh;
	c->host.client = c->client;
	c->host.peer = c->peer;
	c->cb.userdata = c;
	c->cb.auth_pubkey_function = conn_auth_pubkey_cb;
	c->cb.service_request_function = conn_service_cb;
	c->cb.channel_open_request_session_function = conn_channel_open_cb;
	ssh_callbacks_init(&c->cb);
	ssh_set_server_callbacks(c->ssh, &c->cb);
	ssh_set_message_callback(c->ssh, conn_message_cb, c);
	if ((r = uv_poll_init(srv->loop, &c->poll, c->fd)) < 0) {
		log_error("%s: poll: %s", client, uv_strerror(r));
		ssh_free(c->ssh);
		close(c->fd);
		free(c->client);
		free(c);
		return r;
	}
	c->poll.data = c;
	uv_timer_init(srv->loop, &c->grace);
	c->grace.data = c;
	uv_timer_init(srv->loop, &c->penalty);
	c->penalty.data = c;
	c->handles = 3;
	/*
	 * Over max_unauthenticated_per_address, wait (unread) until another
	 * connection of the address authenticates or ends: one address gets
	 * only so much key exchange work, and a burst of clients still gets in.
	 */
	c->parked = conn_unauthenticated_from(srv, client, NULL) >=
	    (*srv->config)->max_unauthenticated_per_address;
	TAILQ_INSERT_TAIL(srv->conns, c, entry);
	(*srv->nconns)++;
	uv_timer_start(&c->grace, conn_grace_cb, (uint64_t)(*srv->config)->login_grace_time * 1000,
	    0);
	log_debug("%s: connected%s", client, c->parked ? " (parked)" : "");
	if (c->parked)
		return 0;
	c->depth++;
	conn_kex(c);
	c->depth--;
	conn_after_io(c);
	return 0;
}

/* Start serving an accepted socket. */
int
conn_accept(struct conn_server *srv, int fd, const char *client)
{
	return conn_accept_on(srv, *srv->bind, false, fd, client);
}

/* Start serving a socket accepted on the peer listener. */
int
conn_accept_peer(struct conn_server *srv, ssh_bind bind, int fd, const char *client)
{
	return conn_accept_on(srv, bind, true, fd, client);
}

/* The length of the address part of "addr:port" or "[v6]:port". */
static size_t
conn_addr_len(const char *client)
{
	const char *colon = strrchr(client, ':');

	return colon != NULL ? (size_t)(colon - client) : strlen(client);
}

/* Whether two "addr:port" strings have the same address. */
static bool
conn_same_addr(const char *a, const char *b)
{
	size_t len = conn_addr_len(a);

	return conn_addr_len(b) == len && memcmp(a, b, len) == 0;
}

/* Connections from the address of client in key exchange or authentication. */
unsigned
conn_unauthenticated_from(const struct conn_server *srv, const char *client, unsigned *parked)
{
	const struct conn *c;
	unsigned n = 0, np = 0;

	TAILQ_FOREACH(c, srv->conns, entry) {
		if ((c->state != CONN_KEX && c->state != CONN_AUTH) ||
		    !conn_same_addr(c->client, client))
			continue;
		if (c->parked)
			np++;
		else
			n++;
	}
	if (parked != NULL)
		*parked = np;
	return n;
}

/* A parked connection's turn came: start its key exchange. */
static void
conn_unpark_cb(uv_timer_t *t)
{
	struct conn *c = t->data;

	c->parked = false;
	if (c->state == CONN_KEX && !c->released) {
		c->depth++;
		conn_current = c;
		conn_kex(c);
		conn_current = NULL;
		c->depth--;
	}
	conn_after_io(c);
}

/* c no longer counts as unauthenticated: let the oldest parked one of its address go. */
static void
conn_unpark_next(struct conn *c)
{
	struct conn *p;

	TAILQ_FOREACH(p, c->server->conns, entry) {
		if (p != c && p->parked && !uv_is_active((uv_handle_t *)&p->penalty) &&
		    p->state == CONN_KEX && conn_same_addr(p->client, c->client)) {
			uv_timer_start(&p->penalty, conn_unpark_cb, 0, 0);
			return;
		}
	}
}

/* Mark the connection dead; conn_after_io releases it. */
void
conn_kill(struct conn *c, const char *why)
{
	if (c->state == CONN_DEAD)
		return;
	c->state = CONN_DEAD;
	c->death = strdup(why != NULL ? why : "closed");
	c->dirty = true;
	if (c->user != NULL)
		log_info("%s: %s: connection ended: %s", c->client, c->user, why);
	else
		log_info("%s: connection ended: %s", c->client, why);
}

/* Free libssh's objects and start closing the handles. */
static void
conn_release(struct conn *c)
{
	struct session *s, *tmp;

	c->released = true;
	if (c->user == NULL && !c->parked)
		conn_unpark_next(c);
	if (c->user != NULL) {
		struct audit_field f[] = {
			AUDIT_STR("user", c->user),
			AUDIT_STR("client", c->client),
			AUDIT_STR("key_fp", c->key_fp),
			AUDIT_STR("reason", c->death != NULL ? c->death : "closed"),
		};

		audit_event(*c->server->audit, "disconnect", f, sizeof f / sizeof f[0]);
	}
	TAILQ_FOREACH_SAFE(s, &c->sessions, entry, tmp)
		session_detach(s);
	uv_close((uv_handle_t *)&c->poll, conn_close_cb);	/* before the fd closes */
	uv_close((uv_handle_t *)&c->grace, conn_close_cb);
	uv_close((uv_handle_t *)&c->penalty, conn_close_cb);
	if (c->event != NULL) {
		ssh_event_remove_session(c->event, c->ssh);
		ssh_event_free(c->event);
		c->event = NULL;
	}
	ssh_disconnect(c->ssh);
	ssh_free(c->ssh);	/* closes libssh's descriptor and frees every channel */
	c->ssh = NULL;
	close(c->fd);		/* after uv_close above stopped polling it */
	c->fd = -1;
}

/* Free the connection once nothing refers to it. */
static void
conn_free_if_done(struct conn *c)
{
	struct conn_server *srv = c->server;

	if (!c->released || c->handles > 0 || c->nsessions > 0)
		return;
	TAILQ_REMOVE(srv->conns, c, entry);
	(*srv->nconns)--;
	if (c->config != NULL)
		config_unref(c->config);
	free(c->user);
	free(c->key_fp);
	free(c->death);
	free(c->client);
	free(c);
	srv->conn_gone(srv);
}

/* A connection handle finished closing. */
static void
conn_close_cb(uv_handle_t *h)
{
	struct conn *c = h->data;

	c->handles--;
	conn_free_if_done(c);
}

/* Whether any session of c is still live. */
static bool
conn_has_live_session(struct conn *c)
{
	struct session *s;

	TAILQ_FOREACH(s, &c->sessions, entry) {
		if (session_live(s))
			return true;
	}
	return false;
}

/* Stopping: the client did not disconnect after its last session ended. */
static void
conn_stop_cb(uv_timer_t *t)
{
	struct conn *c = t->data;

	conn_kill(c, "broker shutting down");
	conn_after_io(c);
}

/* A session was freed (session_host_ops.gone): off the list. */
static void
conn_host_gone(struct session_host *h, struct session *s)
{
	struct conn *c = CONN_OF(h);

	TAILQ_REMOVE(&c->sessions, s, entry);
	c->nsessions--;
	/*
	 * Stopping: let the client close its side and disconnect first, so
	 * that it does not see its connection reset.
	 */
	if (*c->server->stopping && !c->released && c->state != CONN_DEAD &&
	    !conn_has_live_session(c))
		uv_timer_start(&c->grace, conn_stop_cb, CONN_STOP_LINGER_MS, 0);
	if (!c->released)
		conn_after_io(c);
	else
		conn_free_if_done(c);
}

/* The server is stopping: end c now if it serves no live session. */
void
conn_shutdown(struct conn *c)
{
	if (c->released)
		return;
	if (!conn_has_live_session(c))
		conn_kill(c, "broker shutting down");
	conn_after_io(c);
}

/* ---- what the sessions see of the connection (session/host.h) ---- */

/* A session left work for conn_after_io. */
static void
conn_host_dirty(struct session_host *h)
{
	CONN_OF(h)->dirty = true;
}

/* Run the sessions' turn now. */
static void
conn_host_wake(struct session_host *h)
{
	conn_after_io(CONN_OF(h));
}

/* Note bytes handed to libssh for the client. */
static void
conn_host_queued(struct session_host *h, size_t n)
{
	CONN_OF(h)->queued += n;
}

/* Bytes targets may still hand libssh: none once CONN_QUEUE_MAX are queued. */
static size_t
conn_host_room(const struct session_host *h)
{
	const struct conn *c = CONN_OF_CONST(h);

	if (c->state == CONN_DEAD || c->queued >= CONN_QUEUE_MAX)
		return 0;
	return CONN_QUEUE_MAX - c->queued;
}

/* Whether the connection still talks to its client. */
static bool
conn_host_alive(const struct session_host *h)
{
	return CONN_OF_CONST(h)->state != CONN_DEAD;
}

/* A request of one of its sessions was refused. */
static void
conn_host_refused(struct session_host *h)
{
	CONN_OF(h)->refusals++;
}

static const struct session_host_ops conn_host_ops = {
	.dirty = conn_host_dirty,
	.wake = conn_host_wake,
	.queued = conn_host_queued,
	.room = conn_host_room,
	.alive = conn_host_alive,
	.refused = conn_host_refused,
	.gone = conn_host_gone,
};

/* Poll the socket for reading, and for writing while libssh has output queued. */
static void
conn_update_poll(struct conn *c)
{
	int ev = UV_READABLE;

	if (c->penalized || c->parked)
		return;		/* conn_penalty_cb or conn_unpark_cb resumes */
	if (ssh_get_poll_flags(c->ssh) & SSH_WRITE_PENDING)
		ev |= UV_WRITABLE;
	if (ev != c->poll_events) {
		uv_poll_start(&c->poll, ev, conn_poll_cb);
		c->poll_events = ev;
	}
}

/* Do what callbacks left, update polling, release a dead connection. */
void
conn_after_io(struct conn *c)
{
	struct session *s, *tmp;
	int rounds;

	if (c->depth > 0)
		return;
	c->depth++;
	if (!c->released && c->state != CONN_DEAD && !c->parked) {
		int st = ssh_get_status(c->ssh);

		if ((st & (SSH_CLOSED | SSH_CLOSED_ERROR)) != 0 || !ssh_is_connected(c->ssh))
			conn_kill(c, "closed by the client");
		else if ((ssh_get_poll_flags(c->ssh) & SSH_WRITE_PENDING) == 0)
			c->queued = 0;	/* libssh's queue is empty */
	}
	/* Callbacks run by libssh inside session work may leave more work. */
	conn_current = c->released ? NULL : c;
	for (rounds = 0; rounds < 8; rounds++) {
		c->dirty = false;
		if (!c->released)
			conn_agent_refused(c);
		TAILQ_FOREACH_SAFE(s, &c->sessions, entry, tmp)
			session_after_io(s);
		if (!c->dirty && c->agent_requests == 0)
			break;
	}
	conn_current = NULL;
	c->depth--;
	if (c->released)
		return;
	if (c->state == CONN_DEAD)
		conn_release(c);
	else
		conn_update_poll(c);
}
