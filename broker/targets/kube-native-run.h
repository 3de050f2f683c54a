/*
 * Inside one native exec (kube-native.c and kube-native-exec.c): the run's
 * state, shared by the session's side (its output and input, the pump,
 * target_proc)
 * and the API server's side (the pre-flight GETs, the upgrade, the
 * WebSocket stream). Not for use elsewhere: kube-native.h is the interface.
 */
#ifndef PODGATE_KUBE_NATIVE_RUN_H
#define PODGATE_KUBE_NATIVE_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>
#include <wslay/wslay.h>

#include "kube/kube-client.h"
#include "kube/kube.h"
#include "pty.h"
#include "targets/target.h"

#define KN_OUT_HIGH (64u * 1024)	/* stop reading the WebSocket above this */
#define KN_QUEUE_HIGH (256u * 1024)	/* take no more of the session's input above this */
#define KN_READ_MAX (32u * 1024)	/* input bytes per stdin message */
#define KN_STATUS_MAX (64u * 1024)
#define KN_MSG_MAX (16u * 1024 * 1024)

enum kn_stage {
	KN_AUTH,		/* waiting for credentials */
	KN_CONNECT,		/* connecting */
	KN_GET,			/* a pre-flight GET is out */
	KN_UPGRADE,		/* the exec request is out */
	KN_STREAM,		/* the exec stream runs */
	KN_ENDING,		/* the session reads what is left */
	KN_DONE,		/* output read to its end; the exit is reported */
};

enum kn_get {
	KN_GET_POD,
	KN_GET_WORKLOAD,
	KN_GET_PODS,
};

/* Output waiting for the session to read it. */
struct kn_obuf {
	char *buf;
	size_t len, off, cap;
};

struct kn_run {
	struct target_proc proc;	/* first: what the session holds */
	uv_loop_t *loop;
	struct kube_client *cl;
	struct kube_conn *conn;
	enum kn_stage stage;
	enum kn_get get;
	bool auth_pending;
	bool retried;			/* a 401 was retried once */
	bool reused;			/* the connection was opened ahead and waited idle */
	bool reconnected;		/* a request on such a connection was sent again */
	/* what */
	char *cluster, *context, *target, *ns, *name, *container;
	enum kube_kind kind;
	char **argv;
	bool tty;
	uint16_t cols, rows;
	char *as_user;
	char **as_groups;
	char *user, *session_id, *audit_log;
	unsigned timeout, keepalive;
	char pod[KUBE_NAME_MAX + 1];
	char use_container[KUBE_LABEL_MAX + 1];
	char accept[29];
	char *pods_path;		/* the pods of a workload, by its selector */
	/* the session's side: output (stdout, or the terminal) and stderr; input */
	struct kn_obuf ob[2];
	bool input_eof;			/* the session's input ended (close_input) */
	bool eof_sent;
	bool input_waits;		/* write found no room: on_ready once there is */
	bool ready_due;			/* on_ready at the end of this loop callback */
	bool starting;			/* inside kube_native_start: no on_ready */
	/* the stream */
	wslay_event_context_ptr ws;
	bool v5;
	uint8_t frame_op;
	bool msg_first;
	int channel;
	struct buf status;		/* channel 3, up to KN_STATUS_MAX */
	bool status_seen, stream_over;
	uint64_t last_rx;
	/* the end */
	uv_timer_t timer;
	bool timer_inited;
	int exit_status;
	int exit_signal;
	char failure[700];		/* a line for the client, or "" */
	bool failed_audit;
	bool exit_due, exit_reported;
	bool released;
	unsigned handles;
	void (*on_exit)(void *arg, const struct pty_exit *ex);
	void (*on_ready)(void *arg);
	void *exit_arg;
};

/* kube-native.c: the run and the session's side */
void kn_timer_cb(uv_timer_t *t);
int kn_obuf_add(struct kn_obuf *b, const void *p, size_t n);
size_t kn_obuf_pending(const struct kn_obuf *b);
void kn_fail(struct kn_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void kn_pump(struct kn_run *run);
void kn_ready(struct kn_run *run);

/* kube-native-exec.c: the API server's side */
void kn_conn_cb(struct kube_conn *kc, enum kube_conn_event ev, int err, void *arg);
void kn_step(struct kn_run *run);

#endif
