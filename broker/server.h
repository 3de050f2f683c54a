/*
 * The broker's server: one libuv loop, the listening socket, signals
 * (SIGHUP reload, SIGTERM/SIGINT graceful stop, SIGCHLD reaping), the
 * current configuration and the audit log. Connections (conn.h) and
 * their sessions (session.h) hang off it.
 */
#ifndef PODGATE_SERVER_H
#define PODGATE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <libssh/libssh.h>
#include <libssh/server.h>
#include <uv.h>

#include "audit.h"
#include "config.h"
#include "metrics.h"
#include "rec.h"

/* glibc's sys/queue.h lacks the safe iterator. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

/* How long the configuration's directory must be quiet before a change is loaded. */
#define SERVER_WATCH_SETTLE_MS 200
#define SERVER_DIGEST_LEN 32

struct conn;
struct guard_counts;
TAILQ_HEAD(conn_list, conn);

/* How the broker was started (main.c fills this from the command line). */
struct server_opts {
	const char *config_path;	/* --config FILE */
	const char *demo_dir;		/* --demo DIR */
	const char *listen;		/* --listen HOST:PORT, or NULL */
	const char *argv0;		/* to find podgate-player for the demo hints */
	bool debug;
};

struct server {
	uv_loop_t loop;
	char *config_path;		/* NULL in demo mode */
	char *demo_yaml;		/* the demo configuration text */
	struct config *config;		/* the current one (one reference) */
	struct audit *audit;
	struct rec_key *sign_key;	/* signs recordings; NULL: unsigned */
	struct guard_counts *guard_counts;	/* live sessions per user (made at first use) */
	ssh_bind bind;
	char *listen_host;
	uint16_t listen_port;
	uv_tcp_t listener;
	bool listening;
	uv_signal_t sig_hup, sig_term, sig_int, sig_chld;
	uv_timer_t stop_timer;
	uv_fs_event_t watch;		/* the configuration's directory */
	uv_timer_t watch_timer;
	bool watching;
	unsigned char config_digest[SERVER_DIGEST_LEN];	/* of the file last loaded */
	struct conn_list conns;
	size_t nconns;
	struct live *live;		/* live sessions, watchers, held requests (live.h) */
	struct metrics *metrics;	/* the HTTP listener (metrics.h), or NULL */
	struct peer *peer;		/* the peer listener (peer.h), or NULL */
	struct metrics_counters counters;
	bool stopping;
	bool grace_over;
	bool debug;
};

/*
 * Run the broker until it is stopped. Returns the process exit status:
 * 0 after a clean stop, 1 when it could not start (after logging why).
 */
int server_run(const struct server_opts *o);

/* Called by conn.c when a connection has been freed. */
void server_conn_gone(struct server *s);

/*
 * Split "HOST:PORT" ("[v6]:PORT" for IPv6) into a new host string and a
 * port. Returns -EINVAL when it is not of that form.
 */
int server_parse_listen(const char *spec, char **host, uint16_t *port);

#endif
