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

#include "policy/audit.h"
#include "base/queue.h"
#include "policy/config.h"
#include "session/host.h"
#include "ssh/conn.h"
#include "ssh/counters.h"
#include "ssh/server-internal.h"
#include "rec.h"


/* How long the configuration's directory must be quiet before a change is loaded. */
#define SERVER_WATCH_SETTLE_MS 200

struct storage;
struct guard_counts;

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
	struct cgroup_base *cgroups;	/* local sessions' cgroups; NULL: none (cgroup.h) */
	char **cgroups_later;		/* session cgroups still emptying: removed later */
	size_t ncgroups_later;
	unsigned char redact_key[32];	/* proves what redaction hid (keys_hmac_ensure) */
	bool have_redact_key;
	struct guard_counts *guard_counts;	/* live sessions per user (made at first use) */
	ssh_bind bind;
	char *listen_host;
	uint16_t listen_port;
	int listen_fd;			/* the listening socket, accepted from by hand */
	uv_poll_t listener;		/* polls listen_fd */
	bool listening;
	uv_timer_t accept_timer;	/* resumes accepting after EMFILE (accept_backoff_ms) */
	unsigned accept_backoff_ms;	/* 0 while accepting normally */
	unsigned fds_limit;		/* RLIMIT_NOFILE after start */
	unsigned fds_reserve;		/* kept free for running sessions (server_fds_room) */
	unsigned refusals_closing;	/* refused connections waiting for the client to read why */
	uv_signal_t sig_hup, sig_term, sig_int, sig_chld;
	uv_timer_t stop_timer;
	uv_fs_event_t watch;		/* the configuration's directory */
	uv_timer_t watch_timer;
	bool watching;
	unsigned char config_digest[SERVER_DIGEST_LEN];	/* of the file last loaded */
	uv_timer_t audit_timer;		/* audit_tick, once a second */
	struct conn_list conns;
	size_t nconns;
	struct live *live;		/* live sessions, watchers, held requests (live.h) */
	struct metrics_counters counters;
	struct conn_server cs;		/* what conn.c, metrics.c and peer.c see of it (conn.h) */
	struct session_broker sessions;	/* what sessions see of the broker (session/host.h) */
	struct storage *storage;	/* shipping to object storage (storage.h); NULL: none */
	bool stopping;
	bool grace_over;
	bool debug;
};

/* Descriptors a connection holds: libssh's socket and conn.c's own for polling. */
#define SERVER_FDS_CONN 2
/* Descriptors a running session keeps: PTY master and recording, or three pipes and recording. */
#define SERVER_FDS_PTY 2
#define SERVER_FDS_PIPES 4
/* A native Kubernetes session: its TLS connection to the API server and its recording. */
#define SERVER_FDS_NATIVE 2
/*
 * Descriptors starting a session may hold at once: its recording, three
 * pipes (six ends until the child has its own) and the exec-status pipe.
 */
#define SERVER_FDS_START 9
/* The reserve for running sessions: a sixteenth of the limit, within these. */
#define SERVER_FDS_RESERVE_MIN 16
#define SERVER_FDS_RESERVE_MAX 128

/*
 * Whether n more descriptors can be opened right now, on top of the
 * reserve (fds_reserve) kept for running sessions. Near the limit the
 * broker refuses new connections and new sessions instead of starting
 * ones it could not finish.
 */
bool server_fds_room(struct server *s, unsigned n);

/*
 * Exit statuses of podgate-broker. SERVER_EXIT_CONFIG is one meaning
 * everywhere: the command line or the configuration is wrong (a usage
 * error, a file that does not load, or under --config a key file that
 * does not exist without generate_keys), at start and in --check-config.
 */
#define SERVER_EXIT_FAILURE	1	/* could not start or run for another reason */
#define SERVER_EXIT_CONFIG	2

/*
 * Run the broker until it is stopped. Returns the process exit status:
 * 0 after a clean stop, SERVER_EXIT_CONFIG when the configuration is
 * wrong, SERVER_EXIT_FAILURE when it could not start otherwise (after
 * logging why).
 */
int server_run(const struct server_opts *o);

/*
 * Load the recording signing key of c into *out; when it does not exist,
 * generate it if c->generate_keys, else fail with -ENOENT. Logs why it
 * fails; returns a negative errno with *out NULL.
 */
int server_signing_key(const struct config *c, struct rec_key **out);

/*
 * Split "HOST:PORT" ("[v6]:PORT" for IPv6) into a new host string and a
 * port. Returns -EINVAL when it is not of that form.
 */
int server_parse_listen(const char *spec, char **host, uint16_t *port);

/*
 * Remove the session cgroup at path (taken over) once its processes are
 * gone: retried every second, and when the broker stops.
 */
void server_cgroup_later(struct server *srv, char *path);

#endif
