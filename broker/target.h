/*
 * Targets: where a session's command runs. A target kind turns a request
 * (who, which target, which command, PTY or not, accepted environment)
 * into a started child process whose stdio the session then forwards.
 * The local kind runs a command on the broker host; a Kubernetes kind
 * (kubectl exec) fits the same interface.
 */
#ifndef PODGATE_TARGET_H
#define PODGATE_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "pty.h"

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
};

struct target_ops {
	const char *kind;		/* "local", ... */
	/* Whether this kind serves the target name (already syntax-checked). */
	bool (*serves)(const char *target);
	/* Whether the target exists in this configuration. */
	bool (*exists)(const struct config *c, const char *target);
	/*
	 * Start the child. Returns 0 with *child filled (nonblocking parent
	 * ends, a new process group led by child->pid), or a negative errno
	 * with *child cleared.
	 */
	int (*spawn)(const struct config *c, const struct target_request *req,
	    struct pty_child *child);
};

/* The kind that serves name, or NULL when no kind does. */
const struct target_ops *target_find(const char *name);

extern const struct target_ops target_local_ops;

#endif
