/*
 * Recording benchmark (not a test): the cost of a checkpoint, signed and
 * unsigned, and the writer's bulk rate. Prints one JSON line.
 *
 *   bench-rec [CHECKPOINTS]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "rec.h"

/* Monotonic seconds. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds for n checkpoints, each after one small event. */
static double
checkpoints(const struct rec_key *key, int n)
{
	struct rec_writer_opts o = { .start_mono_ns = 1, .sign_key = key };
	struct rec_header h = { .user = "bench", .target = "local" };
	struct rec_writer *w;
	uint64_t t = 1;
	double t0;
	int fd = memfd_create("bench", MFD_CLOEXEC), i;

	if (fd < 0 || rec_writer_open(&w, fd, &h, &o) < 0)
		exit(1);
	t0 = now();
	for (i = 0; i < n; i++) {
		/* An event, then a tick a second after the last checkpoint: one each. */
		if (rec_writer_append(w, t + 1, &(struct rec_event){ .code = 'o',
		    .data = (const uint8_t *)"x", .len = 1 }) < 0 ||
		    rec_writer_tick(w, t + 1000000001u) != 1)
			exit(1);
		t += 1000000001u;
	}
	t0 = now() - t0;
	rec_writer_close(w);
	close(fd);
	return t0;
}

/* MB/s appending 64 KiB output events, signed, to a memory file. */
static double
bulk(const struct rec_key *key, size_t mb)
{
	struct rec_writer_opts o = { .sign_key = key };
	struct rec_header h = { .user = "bench", .target = "local" };
	static char buf[65536];
	struct rec_writer *w;
	double t0;
	size_t i;
	int fd = memfd_create("bulk", MFD_CLOEXEC);

	memset(buf, 'y', sizeof buf);
	if (fd < 0 || rec_writer_open(&w, fd, &h, &o) < 0)
		exit(1);
	t0 = now();
	for (i = 0; i < mb * 16; i++)
		if (rec_writer_data(w, 'o', buf, sizeof buf) < 0)
			exit(1);
	if (rec_writer_close(w) < 0)
		exit(1);
	t0 = now() - t0;
	close(fd);
	return (double)(mb * 16 * sizeof buf) / 1e6 / t0;
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/bench-rec-XXXXXX", path[64];
	struct rec_key *key;
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	double sig, plain;

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof path, "%s/key", dir);
	if (rec_key_generate(path, &key) < 0)
		return 1;
	unlink(path);
	rmdir(dir);
	sig = checkpoints(key, n);
	plain = checkpoints(NULL, n);
	printf("{\"checkpoints\":%d,\"signed_us\":%.2f,\"unsigned_us\":%.2f,"
	    "\"signing_us\":%.2f,\"bulk_signed_mbs\":%.0f}\n", n, sig / n * 1e6, plain / n * 1e6,
	    (sig - plain) / n * 1e6, bulk(key, 256));
	rec_key_free(key);
	return 0;
}
