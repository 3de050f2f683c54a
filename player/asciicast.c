/*
 * asciicast output: time formats, UTF-8 carried across events, JSON
 * strings and whole event lines as asciinema 3 writes them.
 */
#include <errno.h>
#include <inttypes.h>
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

/*
 * How a UTF-8 sequence starting with lead continues: its length (0 for a
 * byte that cannot start one) and the range its second byte must be in.
 */
static size_t
asciicast_lead(uint8_t b, uint8_t *lo, uint8_t *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		return 2;
	if (b >= 0xe0 && b <= 0xef) {
		if (b == 0xe0)
			*lo = 0xa0;
		else if (b == 0xed)
			*hi = 0x9f;
		return 3;
	}
	if (b >= 0xf0 && b <= 0xf4) {
		if (b == 0xf0)
			*lo = 0x90;
		else if (b == 0xf4)
			*hi = 0x8f;
		return 4;
	}
	return 0;
}

/* Convert one chunk to valid UTF-8, carrying a split character. */
size_t
asciicast_utf8(struct asciicast_utf8 *u, const uint8_t *p, size_t n, bool final, char *out)
{
	static const char repl[] = "\xef\xbf\xbd";
	uint8_t seq[4], lo, hi;
	size_t o = 0, i = 0, need, have;

	/* Work through the carried bytes, then the new ones, one character at a time. */
	for (;;) {
		uint8_t b;

		if (u->npending > 0)
			b = u->pending[0];
		else if (i < n)
			b = p[i];
		else
			break;
		need = asciicast_lead(b, &lo, &hi);
		/* Gather up to need bytes from pending then p. */
		have = 0;
		while (have < (need ? need : 1)) {
			uint8_t c;

			if (have < u->npending)
				c = u->pending[have];
			else if (i + (have - u->npending) < n)
				c = p[i + (have - u->npending)];
			else
				break;
			if (have > 0) {
				uint8_t l = have == 1 ? lo : 0x80, h = have == 1 ? hi : 0xbf;

				if (c < l || c > h)
					break;
			}
			seq[have++] = c;
		}
		if (need == 0) {
			memcpy(out + o, repl, 3), o += 3;
			u->replaced++;
			have = 1;
		} else if (have == need) {
			memcpy(out + o, seq, need), o += need;
		} else if (u->npending + (n - i) == have && !final) {
			/* The input ends inside a character: carry it. */
			memcpy(u->pending, seq, have);
			u->npending = have;
			return o;
		} else {
			/* A maximal invalid subpart: one replacement character. */
			memcpy(out + o, repl, 3), o += 3;
			u->replaced++;
		}
		/* Consume have bytes: pending first. */
		if (have <= u->npending) {
			memmove(u->pending, u->pending + have, u->npending - have);
			u->npending -= have;
		} else {
			i += have - u->npending;
			u->npending = 0;
		}
	}
	return o;
}

/* Write a JSON string literal as serde_json does. */
void
asciicast_json_string(FILE *out, const char *s, size_t len)
{
	size_t i, from = 0;

	fputc('"', out);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char tmp[8];

		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			if (c < 0x20) {
				snprintf(tmp, sizeof tmp, "\\u%04x", c);
				esc = tmp;
			}
			break;
		}
		if (esc == NULL)
			continue;
		fwrite(s + from, 1, i - from, out);
		fputs(esc, out);
		from = i + 1;
	}
	fwrite(s + from, 1, len - from, out);
	fputc('"', out);
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
	fputc('[', s->out);
	asciicast_put_time(s, ns);
	fprintf(s->out, ", \"%c\", ", code);
	asciicast_json_string(s->out, data, len);
	fputs("]\n", s->out);
}

/* Make room for converting n bytes. */
static int
asciicast_room(struct asciicast_writer *s, size_t n)
{
	size_t need = 3 * (n + 4);
	char *c;

	if (need <= s->conv_cap)
		return 0;
	if ((c = realloc(s->conv, need)) == NULL)
		return -ENOMEM;
	s->conv = c;
	s->conv_cap = need;
	return 0;
}

/* Write bytes of stream k (0 o, 1 e, 2 i) as an event, carrying split characters. */
static int
asciicast_put_data(struct asciicast_writer *s, uint64_t ns, int k, char code, const uint8_t *p, size_t n,
    bool final)
{
	size_t len;
	int r;

	if ((r = asciicast_room(s, n)) < 0)
		return r;
	len = asciicast_utf8(&s->carry[k], p, n, final, s->conv);
	if (len > 0)
		asciicast_put_line(s, ns, code, s->conv, len);
	return 0;
}

/* Write a header string (from the recording: any bytes) as valid UTF-8 JSON. */
static void
asciicast_header_string(struct asciicast_writer *s, const char *str)
{
	struct asciicast_utf8 u = { .npending = 0 };
	size_t n = strlen(str);

	if (asciicast_room(s, n) < 0) {
		fputs("\"\"", s->out);
		return;
	}
	asciicast_json_string(s->out, s->conv, asciicast_utf8(&u, (const uint8_t *)str, n,
	    true, s->conv));
}

/* Write the header line. */
static void
asciicast_header(struct asciicast_writer *s, const struct rec_header *h)
{
	unsigned cols = h->cols > 0 ? h->cols : 80, rows = h->rows > 0 ? h->rows : 24;
	char *title = NULL;

	if (s->version == 2)
		fprintf(s->out, "{\"version\":2,\"width\":%u,\"height\":%u", cols, rows);
	else {
		fprintf(s->out, "{\"version\":3,\"term\":{\"cols\":%u,\"rows\":%u", cols, rows);
		if (h->term != NULL) {
			fputs(",\"type\":", s->out);
			asciicast_header_string(s, h->term);
		}
		fputc('}', s->out);
	}
	fprintf(s->out, ",\"timestamp\":%" PRIu64, h->start_ns / 1000000000u);
	if (h->command != NULL) {
		fputs(",\"command\":", s->out);
		asciicast_header_string(s, h->command);
	}
	if (h->user != NULL && asprintf(&title, "%s@%s", h->user,
	    h->target != NULL ? h->target : "-") >= 0) {
		fputs(",\"title\":", s->out);
		asciicast_header_string(s, title);
		free(title);
	}
	if (s->version == 2 && h->term != NULL) {
		fputs(",\"env\":{\"TERM\":", s->out);
		asciicast_header_string(s, h->term);
		fputc('}', s->out);
	}
	fputs("}\n", s->out);
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
	asciicast_header(s, h);
	return 0;
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
		struct asciicast_utf8 u = { .npending = 0 };

		if ((r = asciicast_room(s, ev->len)) == 0)
			asciicast_put_line(s, ev->time_ns, 'm', s->conv,
			    asciicast_utf8(&u, ev->data, ev->len, true, s->conv));
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
	free(s->conv);
	s->conv = NULL;
	s->conv_cap = 0;
	return r;
}
