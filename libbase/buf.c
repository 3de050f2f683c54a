/*
 * A growable buffer: doubling, NUL-terminated, with a sticky out-of-memory
 * flag so a sequence of appends is checked once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

/* Make room for n more bytes and a NUL. */
bool
buf_reserve(struct buf *b, size_t n)
{
	size_t cap;
	char *data;

	if (b->oom)
		return false;
	if (n < b->cap - b->len)
		return true;
	if (n > SIZE_MAX - b->len - 1) {
		b->oom = true;
		return false;
	}
	cap = b->cap != 0 ? b->cap : 256;
	while (cap - b->len <= n) {
		if (cap > SIZE_MAX / 2) {
			cap = b->len + n + 1;
			break;
		}
		cap *= 2;
	}
	if ((data = realloc(b->data, cap)) == NULL) {
		b->oom = true;
		return false;
	}
	b->data = data;
	b->cap = cap;
	return true;
}

/* Append n bytes. */
void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (!buf_reserve(b, n))
		return;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/* Append a C string. */
void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* Append formatted text. */
void
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list copy;
	int n;

	if (b->oom)
		return;
	va_copy(copy, ap);
	n = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if (!buf_reserve(b, (size_t)n))
		return;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

/* Append formatted text. */
void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

/* Forget the contents, keeping the allocation. */
void
buf_reset(struct buf *b)
{
	b->len = 0;
	b->oom = false;
	if (b->data != NULL)
		b->data[0] = '\0';
}

/* Free the bytes and zero the buffer. */
void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}
