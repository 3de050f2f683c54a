/*
 * asciicast output: time formats, UTF-8 carried across events, JSON
 * strings and whole event lines as asciinema 3 writes them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "asciicast.h"

/* Format v2 absolute time. */
size_t
asciicast_time_v2(uint64_t ns, char *buf, size_t cap)
{
	uint64_t us = ns / 1000;
	int n, len;

	n = snprintf(buf, cap, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
	if (n < 0 || (size_t)n >= cap)
		return 0;
	len = n;
	while (len > 2 && buf[len - 1] == '0' && buf[len - 2] != '.')
		len--;
	buf[len] = '\0';
	return (size_t)len;
}

/* Format a v3 interval, carrying the rounding error. */
size_t
asciicast_time_v3(uint64_t *clock_ms, uint64_t ns, char *buf, size_t cap)
{
	uint64_t abs_ms = ns / 1000000 + (ns % 1000000 >= 500000 ? 1 : 0);
	uint64_t iv = abs_ms > *clock_ms ? abs_ms - *clock_ms : 0;
	int n;

	*clock_ms += iv;
	n = snprintf(buf, cap, "%" PRIu64 ".%03" PRIu64, iv / 1000, iv % 1000);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* Convert one chunk to valid UTF-8, carrying a split character. */
size_t
asciicast_utf8(struct asciicast_utf8 *u, const uint8_t *p, size_t n, bool final, char *out)
{
	static const char repl[] = "\xef\xbf\xbd";
	uint8_t seq[4];
	const uint8_t *c;
	size_t o = 0, i = 0, have, len, bad, k;

	for (;;) {
		/* The next character: from p directly, or through the bytes carried. */
		if (u->npending == 0) {
			if (i == n)
				break;
			for (k = i; k < n && p[k] < 0x80; k++)
				;
			memcpy(out + o, p + i, k - i), o += k - i;
			if ((i = k) == n)
				break;
			c = p + i;
			have = n - i;
		} else {
			memcpy(seq, u->pending, u->npending);
			for (have = u->npending, k = i; have < sizeof seq && k < n; )
				seq[have++] = p[k++];
			c = seq;
		}
		if ((len = utf8_char(c, have, &bad)) != 0) {
			memcpy(out + o, c, len), o += len;
		} else if (!final && have == u->npending + (n - i) && utf8_cut(c, have)) {
			/* The input ends inside a character: carry it. */
			memmove(u->pending, c, have);
			u->npending = have;
			return o;
		} else {
			/* A maximal invalid subpart: one replacement character. */
			memcpy(out + o, repl, 3), o += 3;
			u->replaced++;
			len = bad;
		}
		/* Consume len bytes: carried ones first. */
		if (len <= u->npending) {
			memmove(u->pending, u->pending + len, u->npending - len);
			u->npending -= len;
		} else {
			i += len - u->npending;
			u->npending = 0;
		}
	}
	return o;
}

/* Write a JSON string literal as serde_json does. */
void
asciicast_json_string(FILE *out, const char *s, size_t len)
{
	jsonout_print_string(out, s, len, JSONOUT_SHORT);
}

/* The exit status asciinema would record for a signal name. */
static int
asciicast_signal_status(const char *name)
{
	int i;

	for (i = 1; i < NSIG; i++) {
		const char *abbrev = sigabbrev_np(i);

		if (abbrev != NULL && strcmp(abbrev, name) == 0)
			return 128 + i;
	}
	return 128;
}

/* Write the event time. */
static void
asciicast_put_time(struct asciicast_writer *s, uint64_t ns)
{
	char buf[48];

	if (s->version == 2)
		asciicast_time_v2(ns, buf, sizeof buf);
	else
		asciicast_time_v3(&s->clock_ms, ns, buf, sizeof buf);
	fputs(buf, s->out);
}

/* Write one event line with data that is valid UTF-8. */
static void
asciicast_put_line(struct asciicast_writer *s, uint64_t ns, char code, const char *data, size_t len)
{
	json_t *v;

	fputc('[', s->out);
	asciicast_put_time(s, ns);
	fprintf(s->out, ", \"%c\", ", code);
	/* data is valid UTF-8 already: skip jsonout_string's check. */
	v = json_stringn_nocheck(data, len);
	jsonout_print(s->out, v, JSON_ENCODE_ANY, JSONOUT_SHORT);
	json_decref(v);
	fputs("]\n", s->out);
}

/* Write bytes of stream k (0 o, 1 e, 2 i) as an event, carrying split characters. */
static int
asciicast_put_data(struct asciicast_writer *s, uint64_t ns, int k, char code, const uint8_t *p, size_t n,
    bool final)
{
	size_t len;

	buf_reset(&s->conv);
	if (n > SIZE_MAX / 3 - 4 || !buf_reserve(&s->conv, 3 * (n + 4)))
		return -ENOMEM;
	len = asciicast_utf8(&s->carry[k], p, n, final, s->conv.data);
	if (len > 0)
		asciicast_put_line(s, ns, code, s->conv.data, len);
	return 0;
}

/* Add a header string (from the recording: any bytes) to o. */
static void
asciicast_header_set(json_t *o, const char *key, const char *str)
{
	json_object_set_new(o, key, jsonout_string(str, strlen(str)));
}

/*
 * Write the header line: a jansson object, dumped compact with its keys in
 * the order asciinema writes them.
 */
static int
asciicast_header(struct asciicast_writer *s, const struct rec_header *h)
{
	unsigned cols = h->cols > 0 ? h->cols : 80, rows = h->rows > 0 ? h->rows : 24;
	json_t *o, *term;
	char *title = NULL;
	int r;

	if ((o = json_object()) == NULL)
		return -ENOMEM;
	json_object_set_new(o, "version", json_integer(s->version));
	if (s->version == 2) {
		json_object_set_new(o, "width", json_integer(cols));
		json_object_set_new(o, "height", json_integer(rows));
	} else {
		term = json_object();
		json_object_set_new(term, "cols", json_integer(cols));
		json_object_set_new(term, "rows", json_integer(rows));
		if (h->term != NULL)
			asciicast_header_set(term, "type", h->term);
		json_object_set_new(o, "term", term);
	}
	json_object_set_new(o, "timestamp", json_integer((json_int_t)(h->start_ns / 1000000000u)));
	if (h->command != NULL)
		asciicast_header_set(o, "command", h->command);
	if (h->user != NULL && asprintf(&title, "%s@%s", h->user,
	    h->target != NULL ? h->target : "-") >= 0) {
		asciicast_header_set(o, "title", title);
		free(title);
	}
	if (s->version == 2 && h->term != NULL) {
		term = json_object();
		asciicast_header_set(term, "TERM", h->term);
		json_object_set_new(o, "env", term);
	}
	/* A failed write shows on the stream (ferror), as for the event lines. */
	r = jsonout_print(s->out, o, JSON_COMPACT, JSONOUT_SHORT);
	json_decref(o);
	if (r == -ENOMEM)
		return r;
	fputc('\n', s->out);
	return 0;
}

/* Start a writer and write the header line. */
int
asciicast_writer_init(struct asciicast_writer *s, int version, FILE *out,
    const struct rec_header *h)
{
	memset(s, 0, sizeof *s);
	if (version != 2 && version != 3)
		return -EINVAL;
	s->version = version;
	s->out = out;
	return asciicast_header(s, h);
}

/* Write one event. */
int
asciicast_writer_event(struct asciicast_writer *s, const struct rec_event *ev)
{
	char buf[64];
	int r = 0;

	s->last_ns = ev->time_ns;
	switch (ev->code) {
	case REC_OUTPUT:
		r = asciicast_put_data(s, ev->time_ns, 0, 'o', ev->data, ev->len, false);
		break;
	case REC_STDERR:
		r = asciicast_put_data(s, ev->time_ns, 1, 'o', ev->data, ev->len, false);
		break;
	case REC_INPUT:
		r = asciicast_put_data(s, ev->time_ns, 2, 'i', ev->data, ev->len, false);
		break;
	case REC_MARKER: {
		struct buf label = { 0 };

		utf8_sanitize(&label, ev->data, ev->len);
		if (label.oom)
			r = -ENOMEM;
		else
			asciicast_put_line(s, ev->time_ns, 'm', label.data != NULL ? label.data : "",
			    label.len);
		buf_free(&label);
		break;
	}
	case REC_RESIZE:
		snprintf(buf, sizeof buf, "%ux%u", ev->cols, ev->rows);
		asciicast_put_line(s, ev->time_ns, 'r', buf, strlen(buf));
		break;
	case REC_EXIT:
		snprintf(buf, sizeof buf, "%d", ev->exit_signal[0] != '\0' ?
		    asciicast_signal_status(ev->exit_signal) : ev->exit_status);
		asciicast_put_line(s, ev->time_ns, 'x', buf, strlen(buf));
		break;
	default:
		break;
	}
	return r;
}

/* Write what is still carried, and free the writer's buffers. */
int
asciicast_writer_finish(struct asciicast_writer *s)
{
	int k, r = 0;

	/* Characters still incomplete at the end become U+FFFD. */
	for (k = 0; k < 3 && r == 0; k++)
		if (s->carry[k].npending > 0)
			r = asciicast_put_data(s, s->last_ns, k, k == 2 ? 'i' : 'o', NULL, 0, true);
	buf_free(&s->conv);
	return r;
}
