/*
 * The native Kubernetes exec transport: the pre-flight GETs and the exec
 * WebSocket (v5.channel.k8s.io, else v4) inside the broker's loop, with no
 * process per session and no descriptor but the connection's. The session
 * reads its output and writes its input through struct target_proc
 * (target.h), which also carries window changes and the end.
 */
#ifndef PODGATE_KUBE_NATIVE_H
#define PODGATE_KUBE_NATIVE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "kube/kube.h"
#include "pty.h"
#include "targets/target.h"

/* What to run. Strings are borrowed for the duration of the call. */
struct kube_native_req {
	const struct kube_target *t;	/* the parsed target, with its cluster */
	char *const *argv;		/* the command's words, NULL-terminated */
	bool tty;
	uint16_t cols, rows;		/* when tty */
	const char *as_user;		/* NULL: no impersonation */
	char *const *as_groups;		/* NULL-terminated, or NULL */
	const char *user, *session_id;	/* for the audit and the log */
	const char *audit_log;		/* where a failure is audited ("-": stdout), or NULL */
	uv_loop_t *loop;
	void (*on_exit)(void *arg, const struct pty_exit *ex);
	void (*on_ready)(void *arg);
	void *exit_arg;			/* for both */
};

/*
 * Start an exec. Returns 0 with *proc set (child cleared: no process, no
 * descriptors), or a negative errno with both cleared. Failures found later
 * (the API server, the pod, the exec) reach the client as one line on
 * stderr, exit status 1 and a target_failed audit event, like the
 * kubectl transport's.
 */
int kube_native_start(const struct kube_native_req *r, struct pty_child *child,
    struct target_proc **proc);

#endif
