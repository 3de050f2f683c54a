/*
 * Replicas of one broker service (docs/live.md, "Several replicas").
 *
 * The peer listener is a second ssh_bind on peer_listen whose host key is
 * peer_key; only the keys in peer_keys authenticate there, and a peer
 * connection may run admin commands only, as the user named in its SSH
 * user name, with the roles it passes in PODGATE_ROLES checked again
 * against this replica's configuration.
 *
 * The other side, libssh's client that admin commands use to reach the
 * other replicas, is admin/peer-client.h.
 */
#ifndef PODGATE_PEER_H
#define PODGATE_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libssh/libssh.h>

struct conn_server;

/* Start the peer listener when peers are configured. Returns 0 or a negative errno. */
int peer_start(struct conn_server *srv);

/* Stop the peer listener (the loop then closes its handle). */
void peer_stop(struct conn_server *srv);

/* A replica answered a command (up) or did not (srv: the server), for /metrics. */
void peer_seen(void *srv, const char *name, bool up);

struct buf;

/* Append the podgate_peer_up lines for /metrics to t; nothing without peers. */
void peer_metrics_text(const struct conn_server *srv, struct buf *t);

#endif
