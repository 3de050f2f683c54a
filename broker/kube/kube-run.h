/*
 * Running kubectl from the helpers (kube-exec.c, kube-pick.c): argv
 * through libpty's spawn, input at EOF, stdout and stderr collected up to
 * their caps, within a deadline.
 */
#ifndef PODGATE_KUBE_RUN_H
#define PODGATE_KUBE_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "base.h"

struct kube_run {
	char **argv;
	char **envp;			/* NULL: the helper's own environment */
	bool same_session;		/* stay in our session and group (on a terminal) */
	long long timeout_ms;		/* then it is killed: -ETIMEDOUT */
	size_t out_max, err_max;	/* what is kept of stdout and stderr */
	int cancel_fd;			/* readable: ask cancel (-1: none) */
	bool (*cancel)(void);		/* true: kill it, -ECANCELED */
	volatile sig_atomic_t *pgid;	/* set to its process group while it runs, or NULL */
};

/*
 * Run o->argv to its end. Returns its exit status (128 + N for signal N),
 * -ETIMEDOUT, -ECANCELED or another negative errno (-ENOENT: no such
 * program).
 */
int kube_run(const struct kube_run *o, struct buf *out, struct buf *err);

/* The last non-empty line of b (cut in place: kubectl's reason), or "". */
const char *kube_run_last_line(struct buf *b);

#endif
