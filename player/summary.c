/*
 * A recording's summary as one line of JSON (see summary.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "player.h"
#include "summary.h"

/* How recording JSON spells control characters (as rec_json_string). */
#define SUMMARY_ESC	(JSONOUT_SHORT | JSONOUT_DEL)

/* Start s as an empty object. */
void
summary_start_object(struct summary *s)
{
	memset(s, 0, sizeof *s);
	buf_add(&s->b, "{", 1);
}

/* Start s as {"file": path}. */
void
summary_start(struct summary *s, const char *path)
{
	summary_start_object(s);
	s->path = path;
	summary_str(s, "file", path);
}

/* Add key; the value is written next. */
struct buf *
summary_value(struct summary *s, const char *key)
{
	/* Keys are this program's own words: no escaping needed. */
	buf_printf(&s->b, "%s\"%s\":", s->any ? "," : "", key);
	s->any = true;
	return &s->b;
}

/* Append a JSON string of any bytes. */
void
summary_append_string(struct buf *b, const void *v, size_t len)
{
	json_t *j = jsonout_string(v, len);

	jsonout_dump(j, JSON_ENCODE_ANY, SUMMARY_ESC, b);
	json_decref(j);
}

/* Add key: a string of any bytes. */
void
summary_strn(struct summary *s, const char *key, const void *v, size_t len)
{
	summary_append_string(summary_value(s, key), v, len);
}

/* Add key: a string, or null. */
void
summary_str(struct summary *s, const char *key, const char *v)
{
	if (v == NULL)
		summary_null(s, key);
	else
		summary_strn(s, key, v, strlen(v));
}

/* Add key: a number. */
void
summary_uint(struct summary *s, const char *key, uint64_t v)
{
	buf_printf(summary_value(s, key), "%" PRIu64, v);
}

/* Add key: true or false. */
void
summary_bool(struct summary *s, const char *key, bool v)
{
	buf_str(summary_value(s, key), v ? "true" : "false");
}

/* Add key: null. */
void
summary_null(struct summary *s, const char *key)
{
	buf_str(summary_value(s, key), "null");
}

/* Add key: seconds to the millisecond. */
void
summary_seconds(struct summary *s, const char *key, uint64_t ns)
{
	buf_printf(summary_value(s, key), "%.3f", (double)ns / 1e9);
}

/* Add key: a nested object, closing and freeing it. */
void
summary_add(struct summary *s, const char *key, struct summary *sub)
{
	struct buf *b = summary_value(s, key);

	if (sub->b.oom)
		b->oom = true;
	buf_add(b, sub->b.data, sub->b.len);
	buf_add(b, "}", 1);
	buf_free(&sub->b);
}

/* Add "exit". */
void
summary_exit(struct summary *s, bool exited, const char *signal, int status)
{
	struct summary x;

	if (!exited) {
		summary_null(s, "exit");
		return;
	}
	summary_start_object(&x);
	if (signal[0] != '\0')
		summary_str(&x, "signal", signal);
	else
		buf_printf(summary_value(&x, "status"), "%d", status);
	summary_add(s, "exit", &x);
}

/* Add what verifying found. */
void
summary_verdict(struct summary *s, const struct rec_verify *v, const char *trust)
{
	summary_str(s, "state", rec_verdict_name(v->verdict));
	summary_uint(s, "version", v->version);
	if (trust != NULL)
		summary_str(s, "trust", trust);
	summary_str(s, "reason", v->reason);
	summary_str(s, "key_fp", v->key_fp[0] != '\0' ? v->key_fp : NULL);
}

/* Write the summary as one line and free it. */
int
summary_print(struct summary *s)
{
	int r = 0;

	buf_add(&s->b, "}\n", 2);
	if (s->b.oom)
		r = -ENOMEM;
	else if (fwrite(s->b.data, 1, s->b.len, stdout) != s->b.len)
		r = -EIO;
	buf_free(&s->b);
	if (r < 0)
		player_warn("%s: %s", s->path != NULL ? s->path : "-", strerror(-r));
	return r;
}
