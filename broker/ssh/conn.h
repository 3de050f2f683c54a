/*
 * One SSH connection: a non-blocking libssh session driven from a
 * uv_poll on its socket, public key authentication, and the session
 * channels opened on it.
 *
 * libssh callbacks only record what happened; the work that follows
 * (starting targets, closing channels, freeing) runs from conn_after_io
 * at the top of a libuv callback. A connection is freed from a uv close
 * callback once its handles are closed and its sessions are gone.
 */
#ifndef PODGATE_CONN_H
#define PODGATE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <uv.h>

#include "session/host.h"
#include "ssh/counters.h"

struct audit;
struct config;
struct conn;
struct metrics;
struct peer;
struct session;
TAILQ_HEAD(conn_list, conn);
TAILQ_HEAD(session_list, session);

/*
 * What connections, and the metrics and peer listeners, see of the
 * server. server.c fills it once and owns what it points to; the modules
 * below the server reach it only through this, never through server.h.
 */
struct conn_server {
	uv_loop_t *loop;
	ssh_bind *bind;			/* the SSH listener's */
	struct config *const *config;	/* the current configuration */
	struct audit *const *audit;
	struct conn_list *conns;	/* every connection */
	size_t *nconns;
	struct metrics_counters *counters;
	const bool *stopping;		/* a graceful stop is under way */
	bool debug;
	struct session_broker *sessions;	/* what sessions see of the broker */
	struct metrics *metrics;	/* the HTTP listener (metrics.c), or NULL */
	struct peer *peer;		/* the peer listener (peer.c), or NULL */
	/* A connection was freed (the last one ends a graceful stop). */
	void (*conn_gone)(struct conn_server *cs);
};

enum conn_state {
	CONN_KEX,		/* key exchange under way */
	CONN_AUTH,		/* waiting for user authentication */
	CONN_OPEN,		/* authenticated: channels may be opened */
	CONN_DEAD,		/* ending: no more I/O with the client */
};

/* Bytes queued in libssh for one connection before its targets pause. */
#define CONN_QUEUE_MAX (256u * 1024)

struct conn {
	TAILQ_ENTRY(conn) entry;
	struct conn_server *server;
	ssh_session ssh;
	ssh_event event;
	int fd;				/* our own descriptor of the socket, for uv_poll */
	uv_poll_t poll;
	int poll_events;
	uv_timer_t grace;
	struct ssh_server_callbacks_struct cb;
	enum conn_state state;
	char *client;			/* "address:port" */
	unsigned auth_failures;
	unsigned refusals;
	char *user;			/* after authentication */
	char *key_fp;
	struct config *config;		/* the configuration it authenticated under */
	struct session_list sessions;
	struct session_host host;	/* what its sessions see of it (session/host.h) */
	unsigned nsessions;		/* sessions not yet freed */
	size_t queued;			/* bytes handed to libssh since its queue was empty */
	unsigned depth;			/* > 0 while libssh runs our callbacks */
	unsigned handles;		/* uv handles not yet closed */
	bool dirty;			/* a callback left work for conn_after_io */
	bool released;			/* libssh objects freed, handles closing */
	unsigned agent_requests;	/* auth-agent-req seen (refused by libssh) */
	char *death;			/* why it ended */
	uv_timer_t penalty;		/* auth_failure_delay: ends the pause below */
	bool penalized;			/* not read until the penalty timer fires */
	bool peer;			/* came through peer_listen (peer.h) */
	bool parked;			/* waits for its address to be under
					   max_unauthenticated_per_address */
};

/* Longest user name a client may give; a longer one ends the connection. */
#define CONN_USER_MAX 256

/* Parked connections one address may have, per max_unauthenticated_per_address. */
#define CONN_PARK_FACTOR 10

/* Route libssh's log through the broker's (once, at start). */
void conn_log_setup(bool debug);

/* Start serving an accepted socket (taken over: closed on failure). */
int conn_accept(struct conn_server *s, int fd, const char *client);

/*
 * The same for a socket accepted on the peer listener: bind has the peer
 * host key, and only peer_keys authenticate (as a configured user's name).
 */
int conn_accept_peer(struct conn_server *s, ssh_bind bind, int fd, const char *client);

/*
 * Connections from the address of client ("addr:port") in key exchange or
 * authentication; *parked (optional) gets those parked, not counted.
 */
unsigned conn_unauthenticated_from(const struct conn_server *srv, const char *client,
    unsigned *parked);

/* End the connection: sessions are aborted, the socket closed. */
void conn_kill(struct conn *c, const char *why);

/*
 * Do the work callbacks left, update every session's polling and the
 * socket's, and release the connection once it is dead. Call at the end
 * of every libuv callback that touched the connection or its sessions.
 */
void conn_after_io(struct conn *c);

/* The server is stopping: end the connection if it has no live session. */
void conn_shutdown(struct conn *c);


#endif
