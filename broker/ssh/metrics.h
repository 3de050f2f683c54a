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

struct server;

/* Outcomes counted in podgate_sessions_ended_total. */
enum metrics_outcome {
	METRICS_EXIT,		/* the target exited (any status) */
	METRICS_SIGNAL,		/* the target was killed by a signal */
	METRICS_KILLED,		/* ended by an admin's kill or a guard */
	METRICS_RECORDING_FAILED,
	METRICS_NOUTCOMES
};

/* Counters the listener reports; the server owns them, sessions add to them. */
struct metrics_counters {
	uint64_t sessions_ended[METRICS_NOUTCOMES];
	uint64_t refused;		/* requests and connections refused */
	uint64_t auth_failures;
	uint64_t bytes_in, bytes_out;	/* of ended sessions */
};

/*
 * Start listening on the configuration's metrics_listen (nothing when it
 * is unset). Returns 0, or a negative errno (logged) when the address
 * cannot be bound.
 */
int metrics_start(struct server *srv);

/* Stop listening and drop the clients; the loop then closes their handles. */
void metrics_stop(struct server *srv);

#endif
