/*
 * The pod picker of a session: a PTY session that asked for a shell
 * without a target, when Kubernetes clusters are configured, runs
 * `podgate-broker --kube-pick` (kube-pick.h) on its own PTY, passes the
 * client's keys and window size to it and its screen back, and reads the
 * pick from the helper's fd 3 when it exits. The picker's screen is not
 * recorded: the recording starts once a target is picked, as with the
 * numbered menu.
 */
#ifndef PODGATE_SESSION_PICK_H
#define PODGATE_SESSION_PICK_H

#include <stdint.h>

struct session;
struct cfg_user;

/*
 * Start the picker for s (which has a PTY and no target). Returns 0 when
 * it runs (s->pick is set; the caller puts s in SESSION_MENU), 1 when
 * there are no clusters or no rule of u reaches one (use the numbered
 * menu), or a negative errno.
 */
int session_pick_start(struct session *s, const struct cfg_user *u);

/* Client keys for the picker; all of them are taken. */
uint32_t session_pick_input(struct session *s, const uint8_t *data, uint32_t len);

/*
 * Keep the picker's screen flowing. When the helper writes its pick, s
 * goes to SESSION_PICKED with s->target set, while s->pick stays until the
 * helper has exited (the target starts only then).
 */
void session_pick_after_io(struct session *s);

/*
 * SIGCHLD: when the helper has ended, close the picker; without a pick, s
 * goes to SESSION_PICKED with no target, or is refused when there was
 * nothing to pick.
 */
void session_pick_reap(struct session *s);

/* The client's window changed. */
void session_pick_resize(struct session *s);

/* The session goes away: kill and reap the helper, close the picker. */
void session_pick_release(struct session *s);

#endif
