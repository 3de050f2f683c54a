/*
 * Player benchmark (not a test): index a recording, then seek to random
 * points, and print the timings as one JSON line.
 *
 *   bench-player FILE [SEEKS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "index.h"
#include "player.h"

/* Monotonic seconds. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct player_file f;
	struct index *ix = NULL;
	struct index_cursor *c = NULL;
	int i, seeks = argc > 2 ? atoi(argv[2]) : 20;
	double t0, index_s, worst = 0, sum = 0;
	unsigned seed = 7;

	if (argc < 2 || player_open(&f, argv[1]) < 0)
		return 2;
	t0 = now();
	if (index_build(&ix, &f, NULL, NULL) < 0 || index_cursor_new(&c, ix) < 0)
		return 1;
	index_s = now() - t0;
	printf("{\"file\":\"%s\",\"output_bytes\":%llu,\"index_s\":%.3f,\"keyframes\":%zu,"
	    "\"seeks_ms\":[", argv[1], (unsigned long long)ix->output_bytes, index_s, ix->nkf);
	for (i = 0; i < seeks; i++) {
		uint64_t t = ix->duration_ns == 0 ? 0 :
		    (uint64_t)((double)rand_r(&seed) / RAND_MAX * (double)ix->duration_ns);
		double d;

		t0 = now();
		if (index_cursor_seek_time(c, t) < 0)
			return 1;
		d = (now() - t0) * 1000;
		sum += d;
		if (d > worst)
			worst = d;
		printf("%s%.2f", i ? "," : "", d);
	}
	printf("],\"seek_mean_ms\":%.2f,\"seek_max_ms\":%.2f}\n", seeks ? sum / seeks : 0, worst);
	index_cursor_free(c);
	index_free(ix);
	player_close(&f);
	return 0;
}
