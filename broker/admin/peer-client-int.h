/*
 * Inside the client side of replicas (peer-client.c, peer-query.c,
 * peer-relay.c): credentials, connections and the pool they share. Not
 * for use elsewhere: peer-client.h is the interface. Everything here may
 * be called off the loop.
 */
#ifndef PODGATE_PEER_CLIENT_INT_H
#define PODGATE_PEER_CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libssh/libssh.h>

#include "admin/peer-client.h"

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

/* Copy what the client side needs off the configuration; 0 or -ENOMEM. */
int peer_creds_fill(const struct peer_client *pc, const struct cfg_user *u,
    struct peer_creds *out);

/* Free the copies a job or relay holds. */
void peer_creds_free(struct peer_creds *c);

/* The name of a replica by its address: a DNS name's first label, else ADDR:PORT. */
char *peer_name_of(const char *host, uint16_t port);

/* Whether HOST:PORT is this replica's own peer listener. */
bool peer_is_self(const char *host, uint16_t port, const struct peer_creds *c);

/* Split "HOST:PORT" (or "[V6]:PORT"); 0, -EINVAL or -ENOMEM. */
int peer_split(const char *spec, char **host, uint16_t *port);

/* Milliseconds on a monotonic clock. */
uint64_t peer_now_ms(void);

/*
 * Connect and authenticate to a replica within timeout_ms. Returns the
 * session, or NULL with *why set.
 */
ssh_session peer_connect(const char *host, uint16_t port, const struct peer_creds *c,
    long timeout_ms, const char **why);

/*
 * Open a channel running command (on a PTY when cols > 0); NULL on
 * failure. *sent (when not NULL) says whether the command went out.
 */
ssh_channel peer_channel(ssh_session ssh, const struct peer_creds *c, const char *command,
    int cols, int rows, bool *sent);

/* Disconnect and free a session (NULL: nothing). */
void peer_close(ssh_session ssh);

/* The pool's key of a connection to host:port made with creds; NULL when out of memory. */
char *peer_pool_key(const char *host, uint16_t port, const struct peer_creds *c);

/* A kept connection with this key, taken out of the pool; NULL when there is none. */
ssh_session peer_pool_take(const char *key);

/* Keep a connection that served a command (taking key and ssh over), or close it. */
void peer_pool_put(char *key, ssh_session ssh);

#endif
