/*
 * HTTP probes and metrics on metrics_listen.
 */
#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base.h"
#include "ssh/conn.h"
#include "base/log.h"
#include "ssh/metrics.h"
#include "ssh/peer.h"
#include "session/session.h"
#include "targets/target.h"

#define METRICS_MAX_CLIENTS 32
#define METRICS_REQUEST_MS 5000
#define METRICS_URL_MAX 256
#define METRICS_LAG_MS 1000

struct metrics {
	struct conn_server *srv;
	uv_tcp_t listener;
	uv_timer_t lag_timer;
	uint64_t lag_due;		/* loop time the lag timer should fire */
	double lag_seconds;		/* how late it fired last */
	unsigned nclients;
	TAILQ_HEAD(, metrics_client) clients;
	int handles;			/* listener and lag timer, while open */
};

struct metrics_client {
	TAILQ_ENTRY(metrics_client) entry;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wr;
	struct metrics *m;
	http_parser parser;
	char url[METRICS_URL_MAX];
	size_t urllen;
	bool url_long, answered;
	int handles;			/* open handles: freed when both are closed */
	char *resp;
};

/* A handle of the client closed: free it with the last one. */
static void
metrics_client_close_cb(uv_handle_t *h)
{
	struct metrics_client *cl = h->data;

	struct metrics *m = cl->m;

	if (--cl->handles > 0)
		return;
	m->nclients--;
	TAILQ_REMOVE(&m->clients, cl, entry);
	free(cl->resp);
	free(cl);
	if (m->handles == 0 && m->nclients == 0)
		free(m);	/* stopped, and this was the last client */
}

/* Drop a client. */
static void
metrics_client_close(struct metrics_client *cl)
{
	if (!uv_is_closing((uv_handle_t *)&cl->tcp))
		uv_close((uv_handle_t *)&cl->tcp, metrics_client_close_cb);
	if (!uv_is_closing((uv_handle_t *)&cl->timer))
		uv_close((uv_handle_t *)&cl->timer, metrics_client_close_cb);
}

/* The response is out: close. */
static void
metrics_write_cb(uv_write_t *w, int status)
{
	metrics_client_close(w->data);
}

/* Send one response and close the connection after it. */
static void
metrics_respond(struct metrics_client *cl, int code, const char *reason, const char *type,
    const char *body, size_t len)
{
	uv_buf_t buf;
	int n;

	cl->answered = true;
	n = asprintf(&cl->resp, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "Cache-Control: no-store\r\nConnection: close\r\n\r\n%.*s", code, reason, type, len,
	    (int)len, body);
	if (n < 0) {
		cl->resp = NULL;
		metrics_client_close(cl);
		return;
	}
	buf = uv_buf_init(cl->resp, (unsigned)n);
	cl->wr.data = cl;
	if (uv_write(&cl->wr, (uv_stream_t *)&cl->tcp, &buf, 1, metrics_write_cb) < 0)
		metrics_client_close(cl);
}

/* Whether the broker can take sessions: a reason when it cannot, else NULL. */
static const char *
metrics_unready(const struct metrics *m)
{
	const struct conn_server *srv = m->srv;
	struct statvfs vfs;

	if (*srv->stopping)
		return "stopping";
	if (*srv->config == NULL)
		return "no configuration loaded";
	if (access((*srv->config)->recordings, W_OK | X_OK) < 0)
		return "the recordings directory is not writable";
	if (statvfs((*srv->config)->recordings, &vfs) == 0 && vfs.f_bavail == 0)
		return "the recordings file system is full";
	return NULL;
}

/* The Prometheus text of the broker's figures. */
static void
metrics_render(const struct metrics *m, struct buf *t)
{
	static const char *const outcome[METRICS_NOUTCOMES] = {
		"exit", "signal", "killed", "recording_failed",
	};
	const struct conn_server *srv = m->srv;
	const struct metrics_counters *k = srv->counters;
	uint64_t bykind[TARGET_NKINDS + 1] = { 0 }, admin = 0, other = 0, held = 0;
	const struct conn *c;
	const struct session *s;
	size_t i;

	TAILQ_FOREACH(c, srv->conns, entry) {
		TAILQ_FOREACH(s, &c->sessions, entry) {
			if (s->state == SESSION_HELD)
				held++;
			else if (s->state == SESSION_ADMIN)
				admin++;
			else if ((s->state != SESSION_RUNNING && s->state != SESSION_DRAINING) ||
			    s->ops == NULL)
				other++;
			else
				bykind[target_kind_index(s->ops)]++;
		}
	}
	buf_printf(t, "# HELP podgate_build_info The broker's version.\n"
	    "# TYPE podgate_build_info gauge\npodgate_build_info{version=\"%s\"} 1\n",
	    PODGATE_VERSION);
	buf_printf(t, "# HELP podgate_connections SSH connections open.\n"
	    "# TYPE podgate_connections gauge\npodgate_connections %zu\n", *srv->nconns);
	buf_printf(t, "# HELP podgate_sessions Sessions open, by what they are.\n"
	    "# TYPE podgate_sessions gauge\n");
	for (i = 0; i < TARGET_NKINDS; i++)
		buf_printf(t, "podgate_sessions{kind=\"%s\"} %llu\n", target_kind(i)->kind,
		    (unsigned long long)bykind[i]);
	buf_printf(t, "podgate_sessions{kind=\"admin\"} %llu\n"
	    "podgate_sessions{kind=\"starting\"} %llu\n",
	    (unsigned long long)admin, (unsigned long long)(other + bykind[TARGET_NKINDS]));
	buf_printf(t, "# HELP podgate_approvals_held Requests waiting for an approver.\n"
	    "# TYPE podgate_approvals_held gauge\npodgate_approvals_held %llu\n",
	    (unsigned long long)held);
	buf_printf(t, "# HELP podgate_sessions_ended_total Sessions ended, by outcome.\n"
	    "# TYPE podgate_sessions_ended_total counter\n");
	for (i = 0; i < METRICS_NOUTCOMES; i++)
		buf_printf(t, "podgate_sessions_ended_total{outcome=\"%s\"} %llu\n",
		    outcome[i], (unsigned long long)k->sessions_ended[i]);
	buf_printf(t, "# HELP podgate_refused_total Connections and requests refused.\n"
	    "# TYPE podgate_refused_total counter\npodgate_refused_total %llu\n",
	    (unsigned long long)k->refused);
	buf_printf(t, "# HELP podgate_auth_failures_total Failed authentications.\n"
	    "# TYPE podgate_auth_failures_total counter\npodgate_auth_failures_total %llu\n",
	    (unsigned long long)k->auth_failures);
	buf_printf(t, "# HELP podgate_session_bytes_total Bytes of ended sessions.\n"
	    "# TYPE podgate_session_bytes_total counter\n"
	    "podgate_session_bytes_total{direction=\"in\"} %llu\n"
	    "podgate_session_bytes_total{direction=\"out\"} %llu\n",
	    (unsigned long long)k->bytes_in, (unsigned long long)k->bytes_out);
	peer_metrics_text(srv, t);
	buf_printf(t, "# HELP podgate_event_loop_lag_seconds How late a 1 s timer fired last.\n"
	    "# TYPE podgate_event_loop_lag_seconds gauge\npodgate_event_loop_lag_seconds %.6f\n",
	    m->lag_seconds);
}

/* The request line is complete: answer it. */
static int
metrics_on_headers_complete(http_parser *p)
{
	struct metrics_client *cl = p->data;
	struct metrics *m = cl->m;
	struct buf t = { 0 };
	const char *why;
	char *q;

	if (cl->answered)
		return 1;
	cl->url[cl->urllen] = '\0';
	if ((q = strchr(cl->url, '?')) != NULL)
		*q = '\0';
	if (p->method != HTTP_GET) {
		metrics_respond(cl, 405, "Method Not Allowed", "text/plain", "GET only\n", 9);
	} else if (cl->url_long) {
		metrics_respond(cl, 414, "URI Too Long", "text/plain", "URI too long\n", 13);
	} else if (strcmp(cl->url, "/healthz") == 0) {
		metrics_respond(cl, 200, "OK", "text/plain", "ok\n", 3);
	} else if (strcmp(cl->url, "/readyz") == 0) {
		if ((why = metrics_unready(m)) == NULL) {
			metrics_respond(cl, 200, "OK", "text/plain", "ready\n", 6);
		} else {
			buf_printf(&t, "not ready: %s\n", why);
			metrics_respond(cl, 503, "Service Unavailable", "text/plain",
			    t.oom ? "" : t.data, t.oom ? 0 : t.len);
		}
	} else if (strcmp(cl->url, "/metrics") == 0) {
		metrics_render(m, &t);
		if (t.oom)
			metrics_respond(cl, 500, "Internal Server Error", "text/plain", "", 0);
		else
			metrics_respond(cl, 200, "OK", "text/plain; version=0.0.4", t.data, t.len);
	} else {
		metrics_respond(cl, 404, "Not Found", "text/plain", "not found\n", 10);
	}
	buf_free(&t);
	return 1;	/* nothing after the headers is read */
}

/* Collect the request target. */
static int
metrics_on_url(http_parser *p, const char *at, size_t len)
{
	struct metrics_client *cl = p->data;

	if (cl->urllen + len >= sizeof cl->url) {
		cl->url_long = true;
		return 0;
	}
	memcpy(cl->url + cl->urllen, at, len);
	cl->urllen += len;
	return 0;
}

static const http_parser_settings metrics_parser_settings = {
	.on_url = metrics_on_url,
	.on_headers_complete = metrics_on_headers_complete,
};

/* Room for the request, on the stack of the read. */
static void
metrics_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char space[4096];

	buf->base = space;
	buf->len = sizeof space;
}

/* Bytes of the request arrived. */
static void
metrics_read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct metrics_client *cl = st->data;
	size_t used;

	if (n == 0)
		return;
	if (n < 0 || cl->answered) {
		if (!cl->answered)
			metrics_client_close(cl);
		return;
	}
	used = http_parser_execute(&cl->parser, &metrics_parser_settings, buf->base, (size_t)n);
	if (cl->answered) {
		uv_read_stop(st);
		return;
	}
	if (used != (size_t)n || HTTP_PARSER_ERRNO(&cl->parser) != HPE_OK) {
		uv_read_stop(st);
		metrics_respond(cl, 400, "Bad Request", "text/plain", "bad request\n", 12);
	}
}

/* A client took too long to send its request. */
static void
metrics_client_timer_cb(uv_timer_t *t)
{
	struct metrics_client *cl = t->data;

	if (!cl->answered)
		metrics_client_close(cl);
}

/* A handle whose data is its own allocation is closed: free it. */
static void
metrics_free_cb(uv_handle_t *h)
{
	free(h->data);
}

/* A client connected. */
static void
metrics_connection_cb(uv_stream_t *server, int status)
{
	struct metrics *m = server->data;
	struct metrics_client *cl;

	if (status < 0)
		return;
	if (m->nclients >= METRICS_MAX_CLIENTS || (cl = calloc(1, sizeof *cl)) == NULL) {
		/* Accept and close it at once, or libuv stops accepting altogether. */
		uv_tcp_t *drop = malloc(sizeof *drop);

		if (drop == NULL || uv_tcp_init(server->loop, drop) < 0) {
			free(drop);
			return;
		}
		drop->data = drop;
		uv_accept(server, (uv_stream_t *)drop);
		uv_close((uv_handle_t *)drop, metrics_free_cb);
		return;
	}
	cl->m = m;
	http_parser_init(&cl->parser, HTTP_REQUEST);
	cl->parser.data = cl;
	if (uv_tcp_init(server->loop, &cl->tcp) < 0) {
		free(cl);
		return;
	}
	m->nclients++;
	TAILQ_INSERT_TAIL(&m->clients, cl, entry);
	cl->tcp.data = cl;
	cl->handles = 1;
	if (uv_accept(server, (uv_stream_t *)&cl->tcp) < 0 ||
	    uv_timer_init(server->loop, &cl->timer) < 0) {
		uv_close((uv_handle_t *)&cl->tcp, metrics_client_close_cb);
		return;
	}
	cl->handles = 2;
	cl->timer.data = cl;
	uv_timer_start(&cl->timer, metrics_client_timer_cb, METRICS_REQUEST_MS, 0);
	if (uv_read_start((uv_stream_t *)&cl->tcp, metrics_alloc_cb, metrics_read_cb) < 0)
		metrics_client_close(cl);
}

/* Once a second: how late did the loop come to this timer? */
static void
metrics_lag_cb(uv_timer_t *t)
{
	struct metrics *m = t->data;
	uint64_t now;

	uv_update_time(t->loop);
	now = uv_now(t->loop);
	m->lag_seconds = now > m->lag_due ? (double)(now - m->lag_due) / 1000.0 : 0.0;
	m->lag_due = now + METRICS_LAG_MS;
}

int
metrics_start(struct conn_server *srv)
{
	const struct config *c = *srv->config;
	struct sockaddr_storage sa;
	struct metrics *m;
	int r;

	if (c->metrics_host == NULL)
		return 0;
	if (strchr(c->metrics_host, ':') != NULL)
		r = uv_ip6_addr(c->metrics_host, c->metrics_port, (struct sockaddr_in6 *)&sa);
	else
		r = uv_ip4_addr(c->metrics_host, c->metrics_port, (struct sockaddr_in *)&sa);
	if (r < 0) {
		log_error("metrics_listen: %s: %s", c->metrics_host, uv_strerror(r));
		return -EINVAL;
	}
	if ((m = calloc(1, sizeof *m)) == NULL)
		return -ENOMEM;
	m->srv = srv;
	TAILQ_INIT(&m->clients);
	if ((r = uv_tcp_init(srv->loop, &m->listener)) < 0) {
		free(m);
		return r;
	}
	m->listener.data = m;
	if ((r = uv_tcp_bind(&m->listener, (const struct sockaddr *)&sa, 0)) < 0 ||
	    (r = uv_listen((uv_stream_t *)&m->listener, 64, metrics_connection_cb)) < 0) {
		log_error("cannot listen for metrics on %s port %u: %s", c->metrics_host,
		    c->metrics_port, uv_strerror(r));
		uv_close((uv_handle_t *)&m->listener, NULL);
		uv_run(srv->loop, UV_RUN_NOWAIT);
		free(m);
		return r;
	}
	uv_timer_init(srv->loop, &m->lag_timer);
	m->handles = 2;
	m->lag_timer.data = m;
	m->lag_due = uv_now(srv->loop) + METRICS_LAG_MS;
	uv_timer_start(&m->lag_timer, metrics_lag_cb, METRICS_LAG_MS, METRICS_LAG_MS);
	uv_unref((uv_handle_t *)&m->lag_timer);
	srv->metrics = m;
	log_info("metrics and probes on http://%s%s%s:%u/ (/healthz, /readyz, /metrics)",
	    strchr(c->metrics_host, ':') ? "[" : "", c->metrics_host,
	    strchr(c->metrics_host, ':') ? "]" : "", c->metrics_port);
	return 0;
}

/* One of the listener's handles is closed: free it with the last handle of all. */
static void
metrics_listener_close_cb(uv_handle_t *h)
{
	struct metrics *m = h->data;

	if (--m->handles == 0 && m->nclients == 0)
		free(m);
}

void
metrics_stop(struct conn_server *srv)
{
	struct metrics *m = srv->metrics;
	struct metrics_client *cl;

	if (m == NULL)
		return;
	srv->metrics = NULL;
	TAILQ_FOREACH(cl, &m->clients, entry)
		metrics_client_close(cl);
	uv_close((uv_handle_t *)&m->lag_timer, metrics_listener_close_cb);
	uv_close((uv_handle_t *)&m->listener, metrics_listener_close_cb);
}
