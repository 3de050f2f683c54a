/*
 * What the layers above give the session layer, as interfaces the
 * session layer owns (so that nothing here reaches up):
 *
 *   struct session_broker   broker-wide: the loop, the configuration,
 *                           the audit log, keys, storage, cgroups, and a
 *                           few services of the server (ops); filled by
 *                           the SSH server.
 *   struct session_host     one connection: who is on the other end, and
 *                           its output queue; filled by the connection.
 *   struct session_admin_ops  admin commands, held requests and watchers;
 *                           filled by the admin layer.
 */
#ifndef PODGATE_SESSION_HOST_H
#define PODGATE_SESSION_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libssh/libssh.h>
#include <uv.h>

struct audit;
struct cfg_user;
struct cgroup_base;
struct config;
struct guard_counts;
struct rec_key;
struct session;
struct session_broker;
struct session_host;
struct storage;

/* How a session that ran ended, for the broker's counters. */
enum session_outcome {
	SESSION_OUTCOME_EXIT,
	SESSION_OUTCOME_SIGNAL,
	SESSION_OUTCOME_KILLED,
	SESSION_OUTCOME_RECORDING_FAILED,
};

/* Services of the broker a session calls. */
struct session_broker_ops {
	/* Whether one more session may start (descriptors left above the reserve). */
	bool (*start_room)(struct session_broker *b);
	/* Remove a session's cgroup (path taken over) once its processes are gone. */
	void (*cgroup_later)(struct session_broker *b, char *path);
	/* A session that ran ended: count it with its bytes. */
	void (*ended)(struct session_broker *b, enum session_outcome how, uint64_t bytes_in,
	    uint64_t bytes_out);
	/* Something a client asked for was refused: count it. */
	void (*refused)(struct session_broker *b);
};

/* Admin commands, held requests and live views (admin/live.h). */
struct session_admin_ops {
	/* A target started running; it ends; it is being freed. */
	void (*started)(struct session *s);
	void (*ended)(struct session *s);
	void (*gone)(struct session *s);
	/* The session's output, redacted as the recording holds it. */
	void (*output)(struct session *s, const void *buf, size_t len);
	/* The session's terminal changed size. */
	void (*resized)(struct session *s);
	/* Whether the exec request names an admin command; run it. */
	bool (*wants)(const struct session *s);
	void (*start)(struct session *s, const struct cfg_user *u);
	/* Keystrokes and work of an admin session or a held request. */
	uint32_t (*input)(struct session *s, const void *data, uint32_t len);
	void (*after_io)(struct session *s);
	/* Whether the request must wait for an approver (held when true). */
	bool (*hold)(struct session *s);
};

struct session_broker {
	uv_loop_t *loop;
	struct config *const *config;	/* the broker's current configuration */
	struct audit *audit;
	const struct rec_key *sign_key;	/* signs recordings; NULL: unsigned */
	struct storage *storage;	/* shipping to object storage; NULL: none */
	struct cgroup_base *cgroups;	/* local sessions' cgroups; NULL: none */
	struct guard_counts **guard_counts;	/* live sessions per user (made at first use) */
	const unsigned char *redact_key;	/* proves what redaction hid; NULL: none */
	size_t redact_keylen;
	const struct session_broker_ops *ops;
	const struct session_admin_ops *admin;	/* NULL: no admin commands, no watchers */
	void *admin_arg;		/* the admin layer's registry */
};

/* What a connection does for its sessions. */
struct session_host_ops {
	/* A session has work: run the sessions' turn after this callback. */
	void (*dirty)(struct session_host *h);
	/* Run the sessions' turn now (from a timer or a loop callback). */
	void (*wake)(struct session_host *h);
	/* n bytes were handed to libssh for the client. */
	void (*queued)(struct session_host *h, size_t n);
	/* Bytes the connection's queue takes now (0 when full or dead). */
	size_t (*room)(const struct session_host *h);
	/* Whether the connection still talks to its client. */
	bool (*alive)(const struct session_host *h);
	/* A request on the connection was refused (counted against it). */
	void (*refused)(struct session_host *h);
	/* The session was freed. */
	void (*gone)(struct session_host *h, struct session *s);
};

struct session_host {
	struct session_broker *broker;
	const struct session_host_ops *ops;
	ssh_session ssh;
	const char *user;		/* after authentication */
	const char *client;		/* "address:port" */
	const char *key_fp;
	bool peer;			/* a replica passing an admin command on */
};

#endif
