/*
 * Command-line times: dates, date-times and durations ago.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "when.h"

#define NS 1000000000ull

/* Parse exactly n digits at *p into *v and move on. */
static int
when_digits(const char **p, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -EINVAL;
		*v = *v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return 0;
}

/* A duration ago: a number and one unit. */
static int
when_ago(const char *s, uint64_t now_ns, uint64_t *out)
{
	unsigned long long n, unit;
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0 || end[0] == '\0' || end[1] != '\0')
		return -EINVAL;
	switch (end[0]) {
	case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	case 'w': unit = 7 * 86400; break;
	default: return -EINVAL;
	}
	if (n > (now_ns / NS) / unit)
		*out = 0;
	else
		*out = now_ns - n * unit * NS;
	return 0;
}

/* Parse a command-line time. */
int
when_parse(const char *s, uint64_t now_ns, uint64_t *out)
{
	struct tm tm, chk;
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	bool utc = false;
	time_t t;

	*out = 0;
	if (s == NULL || s[0] == '\0')
		return -EINVAL;
	if (strcmp(s, "now") == 0) {
		*out = now_ns;
		return 0;
	}
	if (strlen(s) < 10 || s[4] != '-')
		return when_ago(s, now_ns, out);
	if (when_digits(&p, 4, &y) < 0 || *p++ != '-' || when_digits(&p, 2, &mo) < 0 ||
	    *p++ != '-' || when_digits(&p, 2, &d) < 0)
		return -EINVAL;
	if (*p == 'T' || *p == ' ') {
		p++;
		if (when_digits(&p, 2, &h) < 0 || *p++ != ':' || when_digits(&p, 2, &mi) < 0)
			return -EINVAL;
		if (*p == ':') {
			p++;
			if (when_digits(&p, 2, &sec) < 0)
				return -EINVAL;
		}
		if (*p == 'Z') {
			utc = true;
			p++;
		}
	} else if (*p == 'Z') {
		utc = true;
		p++;
	}
	if (*p != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60)
		return -EINVAL;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	tm.tm_isdst = -1;
	t = utc ? timegm(&tm) : mktime(&tm);
	if (t == (time_t)-1 || t < 0)
		return -EINVAL;
	/* Reject dates that do not exist (2025-02-30). */
	if (utc)
		gmtime_r(&t, &chk);
	else
		localtime_r(&t, &chk);
	if (chk.tm_mday != d || chk.tm_mon != mo - 1)
		return -EINVAL;
	*out = (uint64_t)t * NS;
	return 0;
}

/* Format a time within a recording. */
void
when_format_offset(uint64_t ns, char *buf, size_t cap)
{
	uint64_t ms = ns / 1000000;

	snprintf(buf, cap, "%u:%02u:%02u.%03u", (unsigned)(ms / 3600000),
	    (unsigned)(ms / 60000 % 60), (unsigned)(ms / 1000 % 60), (unsigned)(ms % 1000));
}

/* Format a UTC time. */
void
when_format_utc(uint64_t ns, char *buf, size_t cap)
{
	time_t t = (time_t)(ns / NS);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Parse a time within a recording. */
int
when_parse_offset(const char *s, uint64_t *ns)
{
	unsigned long long part[3] = { 0, 0, 0 }, frac = 0, scale = NS;
	const char *p = s;
	int n = 0, digits;

	*ns = 0;
	for (;;) {
		if (!isdigit((unsigned char)*p) || n == 3)
			return -EINVAL;
		for (digits = 0; isdigit((unsigned char)*p); p++, digits++) {
			if (digits >= 9)
				return -EINVAL;
			part[n] = part[n] * 10 + (unsigned)(*p - '0');
		}
		n++;
		if (*p != ':')
			break;
		p++;
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++) {
			if (scale > 1) {
				scale /= 10;
				frac += (unsigned)(*p - '0') * scale;
			}
		}
	}
	if (*p != '\0')
		return -EINVAL;
	/* Minutes and seconds after the first field stay below 60. */
	if (n >= 2 && part[n - 1] >= 60)
		return -EINVAL;
	if (n == 3 && part[1] >= 60)
		return -EINVAL;
	if (n == 1)
		*ns = part[0] * NS + frac;
	else if (n == 2)
		*ns = (part[0] * 60 + part[1]) * NS + frac;
	else
		*ns = (part[0] * 3600 + part[1] * 60 + part[2]) * NS + frac;
	return 0;
}
