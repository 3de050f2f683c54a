/*
 * The broker's HTTP listener (metrics_listen): GET /healthz (the event loop
 * answers), GET /readyz (a configuration is loaded, the recordings
 * directory is writable and the broker is not stopping) and GET /metrics
 * (Prometheus' text format). Requests are parsed with http-parser; anything
 * else gets 404 or 400, and a client that does not finish its request
 * within a few seconds is dropped.
 */
#ifndef PODGATE_METRICS_H
#define PODGATE_METRICS_H

#include <stdint.h>

struct conn_server;

/*
 * Start listening on the configuration's metrics_listen (nothing when it
 * is unset). Returns 0, or a negative errno (logged) when the address
 * cannot be bound.
 */
int metrics_start(struct conn_server *srv);

/* Stop listening and drop the clients; the loop then closes their handles. */
void metrics_stop(struct conn_server *srv);

#endif
