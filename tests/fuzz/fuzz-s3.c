/*
 * libFuzzer harness for the object storage answers libs3 parses: any bytes
 * as a ListObjectsV2 page, an STS answer, CreateMultipartUpload and
 * CompleteMultipartUpload answers and an error body. A parse either
 * fails cleanly (nothing allocated) or gives keys that are strings within
 * the input's length; never a crash or a leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *xml = (const char *)data;
	struct s3_list l;
	struct s3_creds c;
	char buf[128], *id;
	size_t i;

	if (s3_list_parse(xml, size, &l) == 0) {
		for (i = 0; i < l.n; i++) {
			if (l.keys[i] == NULL || strlen(l.keys[i]) > size)
				__builtin_trap();
		}
		if (l.truncated && l.next_token == NULL)
			__builtin_trap();
		s3_list_free(&l);
	} else if (l.n != 0 || l.keys != NULL)
		__builtin_trap();
	if (s3_sts_parse(xml, size, &c) == 0) {
		if (c.access_key == NULL || c.secret_key == NULL || c.session_token == NULL)
			__builtin_trap();
		s3_creds_clear(&c);
	} else if (c.access_key != NULL)
		__builtin_trap();
	if (s3_create_parse(xml, size, &id) == 0) {
		/* One word that fits in a query. */
		if (id == NULL || id[0] == '\0' || strlen(id) > size || strpbrk(id, " \t\r\n"))
			__builtin_trap();
		free(id);
	} else if (id != NULL)
		__builtin_trap();
	if (s3_complete_parse(xml, size) == 0 &&
	    memmem(xml, size, "<CompleteMultipartUploadResult", 30) == NULL)
		__builtin_trap();
	s3_error_text(xml, size, buf, sizeof buf);
	if (strlen(buf) >= sizeof buf)
		__builtin_trap();
	return 0;
}
