/*
 * What the broker counts for /metrics (metrics.c): the server owns the
 * counters, connections and ended sessions add to them.
 */
#ifndef PODGATE_COUNTERS_H
#define PODGATE_COUNTERS_H

#include <stdint.h>

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

#endif
