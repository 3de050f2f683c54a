/*
 * Queries (peer-client.h): one admin command run on every other replica,
 * or on one. A query makes one job per replica. Each job runs on a thread
 * of its own (not libuv's thread pool, which recordings' fsyncs need) and
 * touches nothing of the loop's: the query holds copies of what the jobs
 * need (the user, the roles, the command, the key path and the peers'
 * public keys) and each job leaves its reply in itself. A coordinating
 * thread resolves peers.dns, starts the jobs, joins them and wakes the
 * loop through a uv_async, whose callback hands the replies to the
 * caller. A job's connection is kept for the same admin's next command to
 * that replica (peer-client.c's pool).
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libssh/libssh.h>
#include <uv.h>

#include "base.h"
#include "admin/peer-client-int.h"
#include "admin/peer-client.h"
#include "base/strv.h"
#include "policy/config.h"

/* Bytes of one reply kept; more is an error (a listing is far smaller). */
#define PEER_REPLY_MAX (4u << 20)

/* One replica's part of a query, on a thread of its own. */
struct peer_job {
	uv_thread_t thread;
	bool started;
	struct peer_query *q;
	char *host;
	uint16_t port;
	struct peer_reply reply;
};

/* One command asked of the other replicas. */
struct peer_query {
	struct peer_client pc;		/* a copy: it may outlive its caller */
	struct peer_creds creds;
	char *command;
	bool once;		/* the command acts: never sent twice (peer_query_at) */
	char *dns;		/* resolve this first, then one job per address */
	uv_thread_t thread;	/* runs the jobs' threads, then wakes the loop */
	uv_async_t async;
	char **addrs;		/* "HOST:PORT" of the peers ("[V6]:PORT") */
	char **names;		/* for peers.dns: each address's reverse DNS name, or NULL */
	size_t naddrs;
	struct strv skip;	/* addresses not to ask (followed already) */
	struct peer_job *jobs;
	size_t njobs;
	peer_done_cb done;	/* NULL once cancelled */
	void *arg;
};

/* Append to a reply's stdout or stderr; false when it would exceed the cap or memory. */
static bool
peer_append(struct buf *b, const char *p, size_t n)
{
	if (b->len + n > PEER_REPLY_MAX)
		return false;
	buf_add(b, p, n);
	return !b->oom;
}

/* Forget a reply's output: it is asked for again. */
static void
peer_reply_clear(struct peer_reply *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
	r->outlen = 0;
	r->status = -1;
}

/*
 * Run the job's command on ssh, collecting stdout, stderr and the exit
 * status by deadline. Returns 0, or -1 with *why set and *sent saying
 * whether the command went out.
 */
static int
peer_job_run(struct peer_job *j, ssh_session ssh, uint64_t deadline, const char **why,
    bool *sent)
{
	struct peer_reply *r = &j->reply;
	struct buf out = { 0 }, err = { 0 };
	ssh_channel ch = NULL;
	char buf[16384];
	int n, rc = -1;

	if ((ch = peer_channel(ssh, &j->q->creds, j->q->command, 0, 0, sent)) == NULL) {
		*why = *sent ? "connection lost" : "the command was refused";
		return -1;
	}
	for (;;) {
		if (peer_now_ms() > deadline) {
			*why = "no answer in time";
			goto out;
		}
		n = ssh_channel_read_timeout(ch, buf, sizeof buf, 0, 100);
		if (n == SSH_ERROR) {
			*why = "connection lost";
			goto out;
		}
		if (n > 0 && !peer_append(&out, buf, (size_t)n)) {
			*why = "reply too large";
			goto out;
		}
		while ((n = ssh_channel_read_nonblocking(ch, buf, sizeof buf, 1)) > 0) {
			if (!peer_append(&err, buf, (size_t)n)) {
				*why = "reply too large";
				goto out;
			}
		}
		if (n == SSH_ERROR) {
			*why = "connection lost";
			goto out;
		}
		if (ssh_channel_is_eof(ch) && ssh_channel_poll(ch, 0) <= 0 &&
		    ssh_channel_poll(ch, 1) <= 0)
			break;
	}
	r->status = ssh_channel_get_exit_status(ch);
	rc = 0;
out:
	ssh_channel_close(ch);
	ssh_channel_free(ch);
	r->out = out.data;	/* transferred */
	r->outlen = out.len;
	r->err = err.data;
	return rc;
}

/*
 * Run one job: on a kept connection to the replica, else on a new one;
 * collect stdout, stderr and status, and keep the connection.
 */
static void
peer_job_thread(void *arg)
{
	struct peer_job *j = arg;
	struct peer_query *q = j->q;
	struct peer_reply *r = &j->reply;
	uint64_t deadline = peer_now_ms() + PEER_TIMEOUT_MS;
	ssh_session ssh = NULL;
	const char *why = NULL;
	char *key = NULL;
	bool sent = false;

	if (peer_is_self(j->host, j->port, &q->creds)) {
		r->self = true;
		return;
	}
	if ((key = peer_pool_key(j->host, j->port, &q->creds)) != NULL &&
	    (ssh = peer_pool_take(key)) != NULL) {
		/*
		 * An answer on a kept connection is taken when the command
		 * succeeded. Anything else is asked again on a new connection,
		 * so that no answer rests on a connection gone stale or on what
		 * the replica trusted when it was made (its peer_keys, its users):
		 * a replica that no longer takes us is named as it would be. A
		 * command that acts is not sent again once it went out: it may
		 * have run, and its second run would deny the first.
		 */
		if (peer_job_run(j, ssh, deadline, &why, &sent) == 0) {
			if (r->status == 0)
				goto done;
		} else if (sent && q->once) {
			goto lost;
		}
		peer_close(ssh);
		ssh = NULL;
		peer_reply_clear(r);
		if (peer_now_ms() >= deadline) {
			why = "no answer in time";
			goto fail;
		}
	}
	if ((ssh = peer_connect(j->host, j->port, &q->creds, PEER_TIMEOUT_MS, &why)) == NULL)
		goto fail;
	if (peer_job_run(j, ssh, deadline, &why, &sent) < 0) {
		if (sent && q->once)
			goto lost;
		goto fail;
	}
done:
	r->reachable = true;
	if (key != NULL) {
		peer_pool_put(key, ssh);
		key = NULL;	/* transferred, with ssh */
		ssh = NULL;
	}
	goto out;
lost:
	r->unknown = true;	/* named with why, and that it may have run */
fail:
	r->why = strdup(why != NULL ? why : "error");
out:
	if (r->out == NULL)
		r->out = strdup("");
	if (r->err == NULL)
		r->err = strdup("");
	peer_close(ssh);
	free(key);
}

/* Free a query and its jobs (its async handle is closed). */
static void
peer_query_close_cb(uv_handle_t *h)
{
	struct peer_query *q = h->data;
	size_t i;

	for (i = 0; i < q->njobs; i++) {
		free(q->jobs[i].host);
		free(q->jobs[i].reply.name);
		free(q->jobs[i].reply.addr);
		free(q->jobs[i].reply.out);
		free(q->jobs[i].reply.err);
		free(q->jobs[i].reply.why);
	}
	for (i = 0; i < q->naddrs; i++) {
		free(q->addrs[i]);
		if (q->names != NULL)
			free(q->names[i]);
	}
	strv_free(&q->skip);
	free(q->addrs);
	free(q->names);
	free(q->jobs);
	free(q->command);
	free(q->dns);
	peer_creds_free(&q->creds);
	free(q);
}

/* Every job is in (the query's thread ended): hand the replies to the caller. */
static void
peer_query_async_cb(uv_async_t *a)
{
	struct peer_query *q = a->data;
	struct peer_reply *replies = NULL;
	size_t i, n = 0;

	uv_thread_join(&q->thread);
	if ((replies = calloc(q->njobs + 1, sizeof *replies)) != NULL) {
		for (i = 0; i < q->njobs; i++) {
			if (q->jobs[i].reply.self)
				continue;
			q->pc.seen(q->pc.seen_arg, q->jobs[i].reply.name,
			    q->jobs[i].reply.reachable);
			replies[n++] = q->jobs[i].reply;
		}
	}
	if (q->done != NULL)
		q->done(q->arg, replies, n);
	free(replies);
	uv_close((uv_handle_t *)&q->async, peer_query_close_cb);
}

/*
 * Resolve peers.dns: one "ADDR:PORT" per address, each named by reverse
 * DNS when it has a name. The name's IPv4 addresses are taken, or its IPv6
 * ones when it has none: a dual-stack Service gives each replica one of
 * each, and a replica must be asked once. A replica is reached at the
 * address itself: its name may resolve to others too.
 */
static void
peer_resolve(struct peer_query *q)
{
	static const int families[] = { AF_INET, AF_INET6 };
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	char host[NI_MAXHOST], addr[INET6_ADDRSTRLEN];
	char **list, *spec = NULL;
	size_t f, i, before = q->naddrs;

	if (getaddrinfo(q->dns, NULL, &hints, &res) != 0)
		return;
	for (f = 0; f < 2 && q->naddrs == before; f++) {
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			if (ai->ai_family != families[f] || getnameinfo(ai->ai_addr,
			    ai->ai_addrlen, addr, sizeof addr, NULL, 0, NI_NUMERICHOST) != 0)
				continue;
			if (asprintf(&spec, ai->ai_family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr,
			    q->creds.own_port) < 0) {
				spec = NULL;
				goto out;
			}
			for (i = 0; i < q->naddrs && strcmp(q->addrs[i], spec) != 0; i++)
				;
			if (i < q->naddrs) {
				free(spec);	/* a repeat */
				spec = NULL;
				continue;
			}
			if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, NULL, 0,
			    NI_NAMEREQD) != 0)
				host[0] = '\0';
			if ((list = reallocarray(q->addrs, q->naddrs + 1, sizeof *list)) == NULL)
				goto out;
			q->addrs = list;
			if ((list = reallocarray(q->names, q->naddrs + 1, sizeof *list)) == NULL)
				goto out;
			if (q->names == NULL)
				memset(list, 0, q->naddrs * sizeof *list);	/* peers listed too */
			q->names = list;
			q->names[q->naddrs] = host[0] != '\0' ? strdup(host) : NULL;
			q->addrs[q->naddrs++] = spec;
			spec = NULL;	/* transferred */
		}
	}
out:
	free(spec);
	freeaddrinfo(res);
}

/*
 * The query's thread: resolve peers.dns if needed, run one thread per
 * replica, wait for them all, then wake the loop.
 */
static void
peer_query_thread(void *arg)
{
	struct peer_query *q = arg;
	size_t i;

	if (q->dns != NULL)
		peer_resolve(q);
	if (q->naddrs > 0 && (q->jobs = calloc(q->naddrs, sizeof *q->jobs)) != NULL) {
		q->njobs = q->naddrs;
		for (i = 0; i < q->njobs; i++) {
			struct peer_job *j = &q->jobs[i];

			j->q = q;
			j->reply.status = -1;
			if (strv_has(&q->skip, q->addrs[i]))
				continue;	/* left out as this replica is */
			if (peer_split(q->addrs[i], &j->host, &j->port) < 0 ||
			    (j->reply.name = peer_name_of(q->names != NULL && q->names[i] != NULL ?
			    q->names[i] : j->host, j->port)) == NULL ||
			    (j->reply.addr = strdup(q->addrs[i])) == NULL ||
			    uv_thread_create(&j->thread, peer_job_thread, j) < 0) {
				j->reply.why = strdup("cannot start");
				continue;
			}
			j->started = true;
		}
		for (i = 0; i < q->njobs; i++) {
			if (q->jobs[i].started)
				uv_thread_join(&q->jobs[i].thread);
			if (q->jobs[i].reply.name == NULL)
				q->jobs[i].reply.self = true;	/* out of memory: leave it out */
		}
	}
	uv_async_send(&q->async);
}

/*
 * Run command on the replica at addr, or on every other one (addr NULL)
 * but those at skip's addresses. A command for one replica acts there
 * (peer_query_at): it is sent at most once.
 */
static int
peer_query_start(const struct peer_client *pc, const struct cfg_user *u, const char *addr,
    char *const *skip, size_t nskip, const char *command, peer_done_cb done, void *arg,
    struct peer_query **qp)
{
	const struct config *c = *pc->config;
	struct peer_query *q = NULL;
	size_t i;
	int r = -ENOMEM;

	*qp = NULL;
	if (!peer_enabled(c))
		return -ENOENT;
	if ((q = calloc(1, sizeof *q)) == NULL)
		return -ENOMEM;
	q->pc = *pc;
	q->done = done;
	q->arg = arg;
	q->once = addr != NULL;
	if (peer_creds_fill(pc, u, &q->creds) < 0 || (q->command = strdup(command)) == NULL)
		goto fail;
	for (i = 0; i < nskip; i++)
		strv_add(&q->skip, skip[i]);
	if (q->skip.oom)
		goto fail;
	if (addr != NULL) {
		if ((q->addrs = calloc(1, sizeof *q->addrs)) == NULL ||
		    (q->addrs[0] = strdup(addr)) == NULL)
			goto fail;
		q->naddrs = 1;
	} else {
		if (c->peers_dns != NULL && (q->dns = strdup(c->peers_dns)) == NULL)
			goto fail;
		if (c->npeers > 0 && (q->addrs = calloc(c->npeers, sizeof *q->addrs)) == NULL)
			goto fail;
		for (i = 0; i < c->npeers; i++) {
			if ((q->addrs[i] = strdup(c->peers[i])) == NULL)
				goto fail;
			q->naddrs++;
		}
	}
	if ((r = uv_async_init(pc->loop, &q->async, peer_query_async_cb)) < 0)
		goto fail;
	q->async.data = q;
	if ((r = uv_thread_create(&q->thread, peer_query_thread, q)) < 0) {
		q->done = NULL;
		uv_close((uv_handle_t *)&q->async, peer_query_close_cb);
		return r;
	}
	*qp = q;
	return 0;
fail:
	q->async.data = q;
	peer_query_close_cb((uv_handle_t *)&q->async);
	return r;
}

/* Run command on every other replica. */
int
peer_query(const struct peer_client *pc, const struct cfg_user *u, const char *command,
    peer_done_cb done, void *arg, struct peer_query **qp)
{
	return peer_query_start(pc, u, NULL, NULL, 0, command, done, arg, qp);
}

/* Run command on every other replica not at one of skip's addresses. */
int
peer_query_others(const struct peer_client *pc, const struct cfg_user *u, char *const *skip,
    size_t nskip, const char *command, peer_done_cb done, void *arg, struct peer_query **qp)
{
	return peer_query_start(pc, u, NULL, skip, nskip, command, done, arg, qp);
}

/* Run command on the replica at addr. */
int
peer_query_at(const struct peer_client *pc, const struct cfg_user *u, const char *addr,
    const char *command, peer_done_cb done, void *arg, struct peer_query **qp)
{
	return peer_query_start(pc, u, addr, NULL, 0, command, done, arg, qp);
}

/* Forget the caller of a query. */
void
peer_query_cancel(struct peer_query *q)
{
	if (q != NULL)
		q->done = NULL;
}
