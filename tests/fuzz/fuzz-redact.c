/*
 * libFuzzer harness for the streaming redactor: any bytes, cut into
 * events of any size on any stream, must come out in order with their
 * times, with spans inside their chunks and the hold-back within its
 * bound, and nothing left once flushed; never a crash or a leak. The
 * same bytes as one string (a command or a reason, as the audit log and
 * the admin commands show them) carry a proof exactly when redaction
 * changed them.
 *
 * The first byte picks the event sizes, the second the streams; the rest
 * is the data. A config with custom patterns is used for odd seeds.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/config.h"
#include "policy/redact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Take every final chunk and check it. */
static void
drain(struct redact *r, uint64_t *last)
{
	struct redact_chunk ch;
	size_t i;
	int n;

	while ((n = redact_next(r, &ch)) == 1) {
		if (ch.time < *last || (ch.len > 0 && ch.data == NULL))
			__builtin_trap();
		*last = ch.time;
		for (i = 0; i < ch.nproofs; i++) {
			if (strlen(ch.proofs[i].hmac) != REDACT_PROOF_HEX || ch.proofs[i].len == 0 ||
			    strchr("oei", ch.proofs[i].code) == NULL)
				__builtin_trap();
		}
		for (i = 0; i < ch.nspans; i++) {
			if (ch.spans[i].at + ch.spans[i].len > ch.len ||
			    memcmp(ch.data + ch.spans[i].at, "[REDACTED:", 10) != 0 ||
			    (i > 0 && ch.spans[i].at < ch.spans[i - 1].at + ch.spans[i - 1].len))
				__builtin_trap();
		}
	}
	if (n != 0)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char yaml[] = "redact: ['re:corp-[0-9a-f]{8}', {pattern: 'x*y', kind: k}]\n";
	static struct config *c;
	struct redact *r = NULL;
	uint64_t t = 0, last = 0;
	size_t off, n, step;
	uint8_t sizes, streams;
	char code;

	if (c == NULL && config_load_string("fuzz", yaml, sizeof yaml - 1, NULL, &c) != 0)
		__builtin_trap();
	if (size < 2)
		return 0;
	sizes = data[0];
	streams = data[1];
	data += 2;
	size -= 2;
	if (redact_new((sizes & 1) ? c : NULL, &r) != 0)
		return 0;
	if ((streams & 0x80) && redact_set_key(r, "fuzz-key", 8) != 0)
		__builtin_trap();
	for (off = 0, step = 0; off < size; off += n, step++) {
		n = (size_t)(sizes >> 1) + 1;
		if (sizes & 0x80)
			n = (step % 7) + 1;
		if (n > size - off)
			n = size - off;
		code = "oeio"[(streams >> (2 * (step % 4))) & 3];
		if (step % 13 == 12)
			code = 'r';
		if (redact_feed(r, code, ++t, data + off, n) != 0)
			__builtin_trap();
		if (redact_held(r, 'o') > REDACT_HOLD_MAX || redact_held(r, 'e') > REDACT_HOLD_MAX ||
		    redact_held(r, 'i') > REDACT_HOLD_MAX)
			__builtin_trap();
		if (step % 5 == 4 && redact_tick(r, t + REDACT_IDLE_NS) < 0)
			__builtin_trap();
		drain(r, &last);
	}
	if (redact_flush(r) != 0)
		__builtin_trap();
	drain(r, &last);
	if (redact_queued(r) != 0)
		__builtin_trap();
	redact_free(r);
	{
		char hmac[REDACT_PROOF_HEX + 1], *out = NULL;
		size_t outlen = 0;
		bool changed;

		if (redact_string_proved((sizes & 1) ? c : NULL, "fuzz-key", 8, data, size, &out,
		    &outlen, hmac) != 0 || out == NULL || out[outlen] != '\0')
			__builtin_trap();
		changed = outlen != size || memcmp(out, data, size) != 0;
		if (changed != (hmac[0] != '\0') || (changed && strlen(hmac) != REDACT_PROOF_HEX))
			__builtin_trap();
		free(out);
	}
	return 0;
}
