/*
 * Targets: where a session's command runs. A target kind turns a request
 * (who, which target, which command, PTY or not, accepted environment)
 * into a started child process whose stdio the session then forwards.
 * The local kind runs a command on the broker host; the Kubernetes kind
 * fits the same interface, through kubectl exec or natively in the loop.
 */
#ifndef PODGATE_TARGET_H
#define PODGATE_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "policy/config.h"
#include "pty.h"

/*
 * A target that runs inside the broker's loop rather than as a process
 * (the native Kubernetes transport). It has no descriptors: its spawn
 * leaves the child's cleared (pid 0), sets *req->proc, and the session
 * moves the bytes through the ops below. It calls req->on_ready when
 * output waits or input found room again, only from its own loop
 * callbacks (never inside a call from the session: after those the
 * session looks again itself), and reports the end through req->on_exit,
 * always on a later loop turn than any call into it, and only once the
 * session read every byte of output (read gave -1 for each stream).
 */
struct target_proc;

struct target_proc_ops {
	/*
	 * Take up to len bytes of output of stream 0 (stdout, or the
	 * terminal) or 1 (stderr, without a PTY). Returns the count, 0 when
	 * none waits now, or -1 at the stream's end.
	 */
	ssize_t (*read)(struct target_proc *p, int stream, void *buf, size_t len);
	/*
	 * Input for the target (stdin, or the terminal). Returns the bytes
	 * taken, 0 when it has no room now, or -1 when it reads no more.
	 */
	ssize_t (*write)(struct target_proc *p, const void *buf, size_t len);
	/* End of input (stdin's end of file, without a PTY). */
	void (*close_input)(struct target_proc *p);
	/* The client's window changed. */
	void (*resize)(struct target_proc *p, uint16_t cols, uint16_t rows);
	/* End it (like SIGHUP to a process); on_exit follows. */
	void (*hangup)(struct target_proc *p);
	/* The session forgets it: no callback follows; it frees itself. */
	void (*release)(struct target_proc *p);
};

struct target_proc {
	const struct target_proc_ops *ops;
};

/* What to start. Strings are borrowed for the duration of the call. */
struct target_request {
	const char *user;		/* the podgate user name */
	const char *target;		/* the target as named ("local") */
	const char *command;		/* NULL: an interactive shell */
	bool pty;
	const char *term;		/* TERM, when pty */
	uint16_t cols, rows;		/* when pty */
	char *const *env;		/* accepted client variables, "NAME=value" */
	size_t nenv;
	const char *session_id;
	const struct cfg_user *account;	/* the podgate user's entry */
	const struct cfg_rule *rule;	/* the rule that granted the target */
	const char *canonical;		/* the name policy matched */
	int cgroup_procs_fd;		/* > 2: the session's cgroup.procs (local
					   target); otherwise none */
	/* for targets that run inside the loop (struct target_proc) */
	uv_loop_t *loop;
	struct target_proc **proc;	/* out: set when the target runs in the loop */
	void (*on_exit)(void *arg, const struct pty_exit *ex);
	void (*on_ready)(void *arg);	/* output waits or input has room */
	void *exit_arg;			/* for both */
};

struct target_ops {
	const char *kind;		/* "local", ... */
	/* Whether this kind serves the target name (already syntax-checked). */
	bool (*serves)(const char *target);
	/* Whether the target exists in this configuration. */
	bool (*exists)(const struct config *c, const char *target);
	/*
	 * Start the child. Returns 0 with *child filled (nonblocking parent
	 * ends, a new process group led by child->pid; or, for a target that
	 * runs in the loop, *child cleared with pid 0 and *req->proc set), or
	 * a negative errno with *child cleared.
	 */
	int (*spawn)(const struct config *c, const struct target_request *req,
	    struct pty_child *child);
	/*
	 * Optional. Check the name as this kind reads it and give the name
	 * policy matches (a new string in *canonical). Returns 0, or -EINVAL
	 * (a bad name) or -ENOENT (no such cluster) with a one-line reason in
	 * err and *canonical NULL.
	 */
	int (*resolve)(const struct config *c, const char *target, char **canonical,
	    char *err, size_t errlen);
	/*
	 * Optional. Describe a request for the recording header and the audit:
	 * *where and *who get NULL-terminated {key, value, ...} arrays of new
	 * strings (free with target_free_pairs), or NULL. Returns 0 or -ENOMEM.
	 */
	int (*describe)(const struct config *c, const struct target_request *req,
	    char ***where, char ***who);
	/*
	 * Optional. Policy denied target to the user u: a hint for the refusal
	 * into hint[0..len) ("" when there is none to give).
	 */
	void (*deny_hint)(const struct config *c, const struct cfg_user *u,
	    const char *target, char *hint, size_t len);
	/* The child runs on the broker host, inside the session's cgroup. */
	bool host_cgroup;
};

/* Free an array from describe; NULL is ignored. */
void target_free_pairs(char **pairs);

/* The kind that serves name, or NULL when no kind does. */
const struct target_ops *target_find(const char *name);

/*
 * The kinds as a table: target_kind(i) for i < TARGET_NKINDS, in the order
 * target_find tries them; target_kind_index gives ops's place, or
 * TARGET_NKINDS for ops not in the table.
 */
#define TARGET_NKINDS 2
const struct target_ops *target_kind(size_t i);
size_t target_kind_index(const struct target_ops *ops);

/*
 * The identity a kubernetes rule makes kubectl act as for user (account
 * is the user's entry): *as_user a new string or NULL (no impersonation),
 * *as_groups a NULL-terminated array of new strings (target_free_pairs)
 * or NULL. Returns 0 or -ENOMEM with both outs NULL.
 */
int target_kube_impersonation(const struct cfg_rule *rule, const struct cfg_user *account,
    const char *user, char **as_user, char ***as_groups);

extern const struct target_ops target_local_ops;
extern const struct target_ops target_kube_ops;

#endif
