/*
 * libFuzzer harness for the recording reader and verifier: any bytes, read
 * as a recording to the end, must give events or a clean error, and a
 * verdict, never a crash or a read outside the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rec_header h;
	struct rec_verify v;
	struct rec_reader *r;
	struct rec_event ev;
	static FILE *devnull;
	int fd, rc;

	if (devnull == NULL)
		devnull = fopen("/dev/null", "w");
	fd = memfd_create("fuzz", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET) != 0)
		__builtin_trap();
	if (rec_reader_open(&r, fd, &h) == 0) {
		rec_reader_header_json(r, devnull);
		while ((rc = rec_reader_next(r, &ev)) == 1) {
			if (ev.offset + ev.size > size || ev.len > REC_MAX_PAYLOAD)
				__builtin_trap();
			if ((ev.code == 'o' || ev.code == 'm') && ev.len > 0)
				rec_json_string(devnull, ev.data, ev.len);
		}
		if (rc < 0 && rec_reader_error(r)[0] == '\0')
			__builtin_trap();
		rec_header_clear(&h);
		rec_reader_free(r);
	}
	if (lseek(fd, 0, SEEK_SET) != 0 || rec_verify_fd(fd, NULL, &v) != 0 ||
	    v.verdict > REC_MODIFIED || v.reason[0] == '\0' || v.verified_bytes > size ||
	    (v.verdict == REC_SEALED && v.verified_bytes != size))
		__builtin_trap();
	close(fd);
	return 0;
}
