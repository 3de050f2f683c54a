/*
 * libFuzzer harness for the HTTP/1.1 response reader of the native
 * Kubernetes transport (broker/kube-http.c): any bytes, fed in pieces
 * whose sizes come from the input, as a response to a GET or to an
 * upgrade. Never a crash; the reader never takes more than it is given,
 * a body stays within its limit, and feeding the same bytes in one piece
 * gives the same response.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube-http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feed data in pieces of step bytes (0: all at once). Returns the status or a negative errno. */
static long
feed(struct kube_http_resp *r, const uint8_t *data, size_t size, size_t step, size_t *used)
{
	size_t off = 0, n;
	long taken;

	*used = 0;
	while (off < size) {
		n = step == 0 || size - off < step ? size - off : step;
		taken = kube_http_resp_feed(r, data + off, n);
		if (taken < 0)
			return taken;
		if ((size_t)taken > n)
			__builtin_trap();
		off += (size_t)taken;
		if (kube_http_resp_done(r))
			break;
		if ((size_t)taken < n)
			__builtin_trap();	/* only a whole response stops early */
	}
	*used = off;
	if (!kube_http_resp_done(r) && kube_http_resp_eof(r) < 0)
		return -1;
	return r->status;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_http_resp a, b;
	size_t step, ua, ub;
	long ra, rb;

	if (size < 1)
		return 0;
	step = data[0] % 17;
	data++;
	size--;
	kube_http_resp_init(&a, false);
	kube_http_resp_init(&b, false);
	ra = feed(&a, data, size, step, &ua);
	rb = feed(&b, data, size, 0, &ub);
	if (a.body.len > KUBE_HTTP_BODY_MAX || (a.body.data != NULL && a.body.data[a.body.len] != '\0'))
		__builtin_trap();
	if (ra >= 0 && rb >= 0) {
		/* Pieces or not, the same response. */
		if (ra != rb || ua != ub || a.body.len != b.body.len ||
		    (a.body.len > 0 && memcmp(a.body.data, b.body.data, a.body.len) != 0) ||
		    a.keep_alive != b.keep_alive)
			__builtin_trap();
	}
	kube_http_resp_clear(&a);
	kube_http_resp_clear(&b);
	return 0;
}
