/*
 * libbase: what every part of podgate shares below the recording format:
 * a growable buffer, the one UTF-8 check, and JSON text written through
 * jansson with the escaping each output documents.
 *
 * Errors are negative errno values (-ENOMEM); nothing here logs.
 */
#ifndef PODGATE_BASE_H
#define PODGATE_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* ---- buf.c: a growable byte buffer ---- */

/*
 * Bytes appended at the end, kept NUL-terminated (the NUL is not counted
 * in len) so text can be used as a C string. A failed allocation sets oom;
 * later appends then do nothing, so a caller checks once at the end.
 * Start it zeroed ({ 0 }); buf_free releases it.
 */
struct buf {
	char *data;
	size_t len;
	size_t cap;
	bool oom;
};

/* Make room for n more bytes (and the NUL); false when out of memory. */
bool buf_reserve(struct buf *b, size_t n);

/* Append n bytes. */
void buf_add(struct buf *b, const void *p, size_t n);

/* Append a C string. */
void buf_str(struct buf *b, const char *s);

/* Append formatted text. */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Forget the contents, keeping the allocation (and clearing oom). */
void buf_reset(struct buf *b);

/* Free the bytes and zero the buffer. */
void buf_free(struct buf *b);

/* ---- utf8.c: the UTF-8 check ---- */

/*
 * The character at s[0..n) (n > 0): its length (1 to 4) when it is valid
 * UTF-8; otherwise 0, with *bad the number of bytes one U+FFFD replaces
 * (the maximal invalid subpart, as Unicode recommends). Overlong forms,
 * surrogates and code points past U+10FFFF are invalid.
 */
size_t utf8_char(const void *s, size_t n, size_t *bad);

/* Whether s[0..n) is the start of a valid character that more bytes could complete. */
bool utf8_cut(const void *s, size_t n);

/* The code point of the valid character of len bytes at s (from utf8_char). */
uint32_t utf8_decode(const void *s, size_t len);

/* Whether s[0..n) is all valid UTF-8. */
bool utf8_valid(const void *s, size_t n);

/*
 * Append s[0..n) to out with each maximal invalid subpart replaced by
 * U+FFFD; returns how many were replaced.
 */
size_t utf8_sanitize(struct buf *out, const void *s, size_t n);

/* ---- jsonout.c: JSON text through jansson ---- */

/*
 * How control characters in strings are spelled. jansson chooses one
 * spelling; the formats podgate writes were fixed before, so the text it
 * produces is re-spelled as it is written (the values are the same JSON):
 *   JSONOUT_SHORT  \b \f \n \r \t by name; without it every control
 *                  character below 0x20 is \u00xx (lower-case hex)
 *   JSONOUT_DEL    DEL (0x7f) as \u007f; without it DEL is written as is
 */
#define JSONOUT_SHORT	0x1
#define JSONOUT_DEL	0x2

/*
 * A new jansson string holding s[0..n), which may be any bytes: invalid
 * UTF-8 becomes U+FFFD (maximal subparts), NUL bytes are kept. NULL only
 * when out of memory.
 */
json_t *jsonout_string(const void *s, size_t n);

/*
 * Append v as JSON text to out: jansson's json_dump_callback with flags
 * (JSON_COMPACT, JSON_ENCODE_ANY, ...), control characters spelled as esc
 * says. Returns 0 or -ENOMEM (out->oom is then set too).
 */
int jsonout_dump(const json_t *v, size_t flags, unsigned esc, struct buf *out);

/* The same, written to f; 0, -ENOMEM, or -EIO when f fails. */
int jsonout_print(FILE *f, const json_t *v, size_t flags, unsigned esc);

/* Write s[0..n) as one JSON string literal to f, as jsonout_string and jsonout_print. */
int jsonout_print_string(FILE *f, const void *s, size_t n, unsigned esc);

#endif
