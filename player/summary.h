/*
 * A recording's summary as one line of JSON: what `info`, `ls`, `grep`
 * and `verify` print with --json. Fields are written in the order they
 * are added; strings go through libbase's jsonout (jansson) with the
 * escaping of all recording JSON (\n by name, DEL as \u007f, bytes that
 * are not UTF-8 as U+FFFD), numbers exactly as given, so a 64-bit count
 * or a fixed number of decimals is never rounded through a double.
 *
 * Adding never fails on its own: when memory runs out the summary
 * remembers it and summary_print reports it.
 */
#ifndef PODGATE_SUMMARY_H
#define PODGATE_SUMMARY_H

#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "rec.h"

struct summary {
	struct buf b;		/* the object's text so far, without its closing brace */
	bool any;		/* a field was added: the next needs a comma */
	const char *path;	/* the file, for a failure to print */
};

/* Start s as {"file": path}: every summary names its file first. */
void summary_start(struct summary *s, const char *path);

/* Start s as an empty object, to be nested in another (summary_add). */
void summary_start_object(struct summary *s);

/*
 * Add key and return the buffer its value is to be written to, as JSON
 * text, before anything else is added.
 */
struct buf *summary_value(struct summary *s, const char *key);

/* Append v[0..len), any bytes, to b as a JSON string escaped as a summary's are. */
void summary_append_string(struct buf *b, const void *v, size_t len);

/* Add key: the string v, or null when v is NULL. */
void summary_str(struct summary *s, const char *key, const char *v);

/* Add key: the string v[0..len), which may be any bytes. */
void summary_strn(struct summary *s, const char *key, const void *v, size_t len);

/* Add key: a number. */
void summary_uint(struct summary *s, const char *key, uint64_t v);

/* Add key: true or false. */
void summary_bool(struct summary *s, const char *key, bool v);

/* Add key: null. */
void summary_null(struct summary *s, const char *key);

/* Add key: ns as seconds with three decimals ("12.345"). */
void summary_seconds(struct summary *s, const char *key, uint64_t ns);

/* Add key: the object sub holds, which is closed and freed. */
void summary_add(struct summary *s, const char *key, struct summary *sub);

/*
 * Add "exit": null when the session has not exited, else {"signal": NAME}
 * or {"status": N}.
 */
void summary_exit(struct summary *s, bool exited, const char *signal, int status);

/*
 * Add what verifying found: "state" (the verdict's name), "version",
 * "trust" (only when trust is not NULL), "reason" and "key_fp" (null
 * when the header names no signer).
 */
void summary_verdict(struct summary *s, const struct rec_verify *v, const char *trust);

/*
 * Write the summary as one line to stdout and free it. Returns 0, or
 * -ENOMEM (nothing written) or -EIO after saying so on stderr.
 */
int summary_print(struct summary *s);

#endif
