/*
 * libFuzzer harness for the PEM key loader: any bytes in a key file (mode
 * 0600), loaded as a private and as a public key. Never a crash; a loaded
 * key has a fingerprint and writes its public half.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[] = "/tmp/podgate-fuzz-key-XXXXXX";
	static int fd = -1;
	static FILE *devnull;
	struct rec_key *k = NULL;
	int private;

	if (fd < 0) {
		if ((fd = mkstemp(path)) < 0 || (devnull = fopen("/dev/null", "w")) == NULL)
			__builtin_trap();
		unlink(path);	/* reached through /proc/self/fd, gone at exit */
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		__builtin_trap();
	for (private = 0; private <= 1; private++) {
		if (rec_key_load(path, private, &k) != 0)
			continue;
		if (strncmp(rec_key_fingerprint(k), "SHA256:", 7) != 0 ||
		    rec_key_write_public(k, devnull) != 0)
			__builtin_trap();
		rec_key_free(k);
		k = NULL;
	}
	/* A rejected file leaves its reasons in OpenSSL's error queue: start the next run empty. */
	ERR_clear_error();
	return 0;
}
