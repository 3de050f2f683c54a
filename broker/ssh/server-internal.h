/* What the files of the SSH server share (server.c, capacity.c, reload.c). */
#ifndef PODGATE_SERVER_INTERNAL_H
#define PODGATE_SERVER_INTERNAL_H

#include <stdbool.h>

struct server;

#define SERVER_DIGEST_LEN 32

/* The most of a failed reload's error text that goes into its audit event. */
#define SERVER_AUDIT_ERRORS_MAX 4096
/* How long a refused client gets to read why before its socket is closed. */
#define SERVER_REFUSAL_LINGER_MS 2000
/* Refused connections lingering at once; past that, the socket is just closed. */
#define SERVER_REFUSALS_CLOSING_MAX 8
/* SSH_DISCONNECT_TOO_MANY_CONNECTIONS (RFC 4253, section 11.1). */
#define SERVER_SSH_TOO_MANY_CONNECTIONS 12

/* capacity.c */
void server_fds_announce(struct server *srv);
void server_fds_raise(struct server *srv);
void server_refuse_with_reason(struct server *srv, int fd, const char *why);

/* reload.c */
bool server_config_digest(const char *path, unsigned char out[SERVER_DIGEST_LEN]);
void server_reload(struct server *srv);
void server_unwatch_config(struct server *srv);
void server_watch_config(struct server *srv);

#endif
