/*
 * What the files of the admin layer share (not for other layers: they
 * use live.h).
 */
#ifndef PODGATE_LIVE_INTERNAL_H
#define PODGATE_LIVE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "base.h"

#include "admin/peer-client.h"
#include "base/queue.h"
#include "policy/audit.h"

struct cfg_user;
struct screen;
struct session;

enum live_kind {
	LIVE_CMD,		/* sessions, kill, pending, approve, deny: done at once */
	LIVE_WATCH,		/* a watcher */
	LIVE_HELD,		/* an exec request waiting for an approver */
	LIVE_FOLLOW,		/* pending --follow: told of requests as they come and go */
};

struct live_follow;
struct live_session;

/* An admin session (command or watcher) or a held request. */
struct live_admin {
	TAILQ_ENTRY(live_admin) all;	/* live->admins */
	TAILQ_ENTRY(live_admin) peer;	/* watched->watchers, live->held or live->followers */
	struct live *live;
	struct session *s;
	enum live_kind kind;

	/* watch, and pending --follow (the queue) */
	struct live_session *watched;	/* NULL once it ended or dropped us */
	uint8_t *q;
	size_t qoff, qlen;
	bool raw;			/* forward bytes as they come; else redraw */
	bool redraw;			/* a redraw is due (render mode) */
	bool done;			/* send what is queued, then end */
	int status;
	bool kick;

	/* held */
	uv_timer_t *timer;		/* approve_timeout */
	uint64_t requested_ns;

	/* pending --follow (follow.c) */
	bool follow;			/* asked for: follow once the listing is out */
	struct live_follow *following;	/* in live->followers; NULL once it stopped */

	/* other replicas (peer.h) */
	struct peer_query *pq;		/* a command sent to them, until they answer */
	struct peer_relay *relay;	/* a watch relayed from one of them */
	const struct cfg_user *user;	/* the admin (in s->config) */
	int cmd;			/* live_cmds index */
	bool json;
	char *local;			/* this replica's part of the answer (JSON) */
	bool located;			/* kill, approve, deny: sent to the replica holding it */
	char *id;			/* the ID asked for */
};

struct live_session {
	TAILQ_ENTRY(live_session) entry;
	struct session *s;
	struct screen *screen;
	/*
	 * Without a PTY the output is a plain stream: while nobody watches,
	 * only its last LIVE_TAIL_MAX bytes are kept (a ring), and the screen
	 * is rebuilt from them when a watcher arrives. Emulating a flood that
	 * nobody sees would hold the session to the emulator's pace.
	 */
	uint8_t *tail;
	size_t tail_len, tail_end;	/* bytes held; where the next byte goes */
	bool stale;			/* the screen lags the tail */
	TAILQ_HEAD(, live_admin) watchers;
	unsigned nwatchers;
	uint64_t start_ns;		/* wall clock */
	uint64_t last_mono;		/* last output, loop time in ms */
};

/* Remembered held requests of other replicas (LIVE_REMOTE_MAX, oldest dropped). */
#define LIVE_REMOTE_MAX 256
struct live_remote {
	char id[37];
	char replica[128];	/* the replica's name as peer.h gives it */
	bool ended;		/* reported ended: its replica went away */
};

struct live {
	uv_loop_t *loop;
	struct peer_client peers;	/* the other replicas (peer-client.h) */
	struct live_remote remote[LIVE_REMOTE_MAX];
	size_t nremote;
	TAILQ_HEAD(, live_session) sessions;
	TAILQ_HEAD(, live_admin) admins;
	TAILQ_HEAD(, live_admin) held;
	TAILQ_HEAD(, live_admin) followers;	/* pending --follow */
	uv_timer_t kick;
};

/* An admin command: its name and the role it needs. */
struct live_cmd {
	const char *name;
	const char *role;
};

#define LIVE_NCMDS 6
extern const struct live_cmd live_cmds[LIVE_NCMDS];

/* live.c */
size_t live_args(char *line, char **argv, size_t max);
void live_audit(struct session *s, const char *event, const struct audit_field *extra,
    size_t nextra);
void live_clean(char *dst, size_t len, const char *src);
int live_cmd_index(const char *word);
void live_escaped(struct buf *out, const char *text);
struct live_session *live_find(struct live *l, const char *id);
void live_json(struct buf *out, const json_t *v, const char *end);
int live_send(struct session *s, struct buf *out, int status);
json_t *live_json_row(const struct live *l, struct session *s);
json_t *live_json_string(const char *s);
const char *live_rest(const char *s, size_t n);
void live_time(uint64_t ns, char *buf, size_t len);
void live_timer_close_cb(uv_handle_t *h);

/* commands.c */
int live_cmd_sessions(struct session *s, struct live *l, char **argv, size_t argc,
    struct buf *out);

/* watch.c */
int live_cmd_watch(struct session *s, struct live *l, char **argv, size_t argc,
    struct live_admin *a);
bool live_enqueue(struct live_admin *a, const void *buf, size_t len);
void live_kick(struct live_admin *a);
void live_tail_add(struct live_session *le, const uint8_t *p, size_t len);
void live_watch_draw(struct live_admin *a);
void live_watch_drop(struct live_admin *a);
void live_watch_stop(struct live_admin *a, int status, const char *msg);

/* approvals.c */
int live_cmd_decide(struct session *s, struct live *l, char **argv, size_t argc,
    struct buf *out, bool approve);
int live_cmd_pending(struct session *s, struct live *l, char **argv, size_t argc,
    struct buf *out);
struct live_admin *live_find_held(struct live *l, const char *id);
void live_held_end(struct live_admin *h);
bool live_pending_args(char **argv, size_t argc, bool *json, bool *follow);

/* follow.c */
void live_follow_event(struct live *l, const char *event, struct live_admin *h,
    const struct session *by, const char *reason);
void live_follow_peers(struct live_admin *a, const struct peer_reply *r, size_t n);
int live_follow_start(struct live_admin *a, struct buf *listing);
void live_follow_stop(struct live_admin *a);

/* replicas.c */
void live_remote_add(struct live *l, const char *id, const char *replica);
void live_remote_forget(struct live *l, const char *id);
int live_peer_start(struct session *s, struct live *l, struct live_admin *a, char **argv,
    size_t argc, struct buf *out);

#endif
