/*
 * The other replicas of one broker service, as admin commands reach them
 * (docs/live.md, "Several replicas"): libssh's client. A query runs one
 * admin command on every other replica, each on a thread of its own
 * (libssh's client calls block), and hands the replies back on the loop;
 * its connections are kept for the same admin's next commands.
 * A relayed watch (or pending --follow) runs on a thread of its own and
 * hands the bytes back through a uv_async. Nothing waits longer than
 * PEER_TIMEOUT_MS for a replica that does not answer. Queries are
 * peer-query.c, relays peer-relay.c, what they share (connections, their
 * pool, this replica's name) peer-client.c. The listener that answers
 * them is ssh/peer.h.
 */
#ifndef PODGATE_PEER_CLIENT_H
#define PODGATE_PEER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct cfg_user;
struct config;
struct session;

/* What the client side needs of the broker (the SSH server fills it). */
struct peer_client {
	uv_loop_t *loop;
	struct config *const *config;	/* the broker's current configuration */
	/* A replica answered a command (up) or did not, for /metrics. */
	void (*seen)(void *arg, const char *name, bool up);
	void *seen_arg;
};

/* How long a replica gets to connect and answer a command. */
#define PEER_TIMEOUT_MS 3000

/* One replica's answer to a query. */
struct peer_reply {
	char *name;		/* "podgate-1" (a DNS name's first label) or "ADDR:PORT" */
	char *addr;		/* "HOST:PORT" it was reached at */
	bool reachable;		/* false: name it as unreachable */
	bool self;		/* the address is this replica's own: ignore */
	int status;		/* the command's exit status (reachable only) */
	char *out;		/* its stdout, NUL-terminated */
	size_t outlen;
	char *err;		/* its stderr, NUL-terminated */
	char *why;		/* why it is unreachable */
	bool unknown;		/* unreachable after the command was sent: it may have run */
};

struct peer_query;

/*
 * Called on the loop once every replica answered or timed out; replies
 * (self excluded) are freed after it returns.
 */
typedef void (*peer_done_cb)(void *arg, const struct peer_reply *replies, size_t n);

/* Whether the configuration names peers. */
bool peer_enabled(const struct config *c);

/* This replica's name: $PODGATE_REPLICA, else the host name's first label. */
const char *peer_self_name(void);

/*
 * Run "command" on every other replica as user (with the user's roles in
 * this configuration). On success *qp is the query and done will be
 * called once; on failure (a negative errno) done is never called.
 */
int peer_query(const struct peer_client *pc, const struct cfg_user *u, const char *command,
    peer_done_cb done, void *arg, struct peer_query **qp);

/*
 * The same on one replica only (addr is a reply's addr, "HOST:PORT"), for
 * a command that acts (kill, approve, deny): it is run there at most once.
 * A kept connection that fails before the command is sent is replaced, as
 * for any query; when the answer is lost after it was sent, the reply is
 * unreachable and unknown, and the command is not sent again.
 */
int peer_query_at(const struct peer_client *pc, const struct cfg_user *u, const char *addr,
    const char *command, peer_done_cb done, void *arg, struct peer_query **qp);

/*
 * The same on every other replica but those reached at the nskip addresses
 * in skip (replies' addr): peers.dns is resolved anew, so a replica that
 * started since is asked too.
 */
int peer_query_others(const struct peer_client *pc, const struct cfg_user *u, char *const *skip,
    size_t nskip, const char *command, peer_done_cb done, void *arg, struct peer_query **qp);

/* Forget the caller: done will not be called; the query frees itself. */
void peer_query_cancel(struct peer_query *q);

/*
 * Close the connections kept for later commands (a query's connection is
 * kept, one admin's, for PEER_IDLE_MS after its command): the broker stops.
 */
void peer_pool_clear(void);

/* ---- relayed output: a watch, or pending --follow ---- */

struct peer_relay;

/*
 * Bytes to pass on (len > 0), or the end (len == 0): status is the remote
 * exit, why says what went wrong (NULL when the command ran to its end).
 */
typedef void (*peer_relay_cb)(void *arg, const void *buf, size_t len, int status,
    const char *why);

/*
 * Run command on the replica at addr ("HOST:PORT", a reply's addr) and
 * pass its output on as it comes: "watch ID" on a PTY of cols x rows
 * there, or without a PTY when cols is 0 ("pending --follow --json").
 * On a PTY, a failure is also told in the stream, as a watcher sees it;
 * without one, stderr is kept apart and its first line is the why of a
 * failed command. cb gets the bytes on the loop, then once the end.
 * Returns 0 or a negative errno (cb then never called).
 */
int peer_relay_start(const struct peer_client *pc, const struct cfg_user *u, const char *addr,
    const char *command, int cols, int rows, peer_relay_cb cb, void *arg,
    struct peer_relay **rp);

/* Ask the replica to stop ('q'); the end follows through cb. */
void peer_relay_quit(struct peer_relay *r);

/* The watcher's terminal changed size: the replica draws for the new size. */
void peer_relay_resize(struct peer_relay *r, int cols, int rows);

/* Forget the caller: cb will not be called again; the relay frees itself. */
void peer_relay_cancel(struct peer_relay *r);

/* Whether the roles a peer passed along (PODGATE_ROLES) include role. */
bool peer_roles_include(const struct session *s, const char *role);

#endif
