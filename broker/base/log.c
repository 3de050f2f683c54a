#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/log.h"

static enum log_level log_level = LOG_INFO;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

/* Set the most verbose level that is written. */
void
log_set_level(enum log_level level)
{
	log_level = level;
}

/*
 * Copy msg into out (outlen > 0) with control characters escaped: "\\n",
 * "\\r", "\\t", "\\e" and "\\xNN" for the others and DEL, and a
 * backslash doubled, so that what a client sent (a command, a name) can
 * never start a line of its own; cut at outlen - 1 bytes.
 */
size_t
log_escape(const char *msg, char *out, size_t outlen)
{
	size_t o = 0;
	char esc[5];
	const char *e;

	for (; *msg != '\0'; msg++) {
		unsigned char c = (unsigned char)*msg;

		e = NULL;
		if (c == '\n')
			e = "\\n";
		else if (c == '\r')
			e = "\\r";
		else if (c == '\t')
			e = "\\t";
		else if (c == 0x1b)
			e = "\\e";
		else if (c == '\\')
			e = "\\\\";
		else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof esc, "\\x%02x", c);
			e = esc;
		}
		if (e == NULL) {
			if (o + 1 >= outlen)
				break;
			out[o++] = (char)c;
		} else {
			if (o + strlen(e) >= outlen)
				break;
			memcpy(out + o, e, strlen(e));
			o += strlen(e);
		}
	}
	out[o] = '\0';
	return o;
}

/* Write one line to stderr: time, level, function, message (escaped). */
void
log_write(enum log_level level, const char *func, const char *fmt, ...)
{
	char raw[2048], msg[4096], when[32];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	log_escape(raw, msg, sizeof msg);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s %s: %s\n", when, ts.tv_nsec / 1000000,
	    log_names[level], func, msg);
}
