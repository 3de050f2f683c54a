/*
 * The audit log: each event is formatted into one buffer and appended with
 * a single write(2), so lines from several writers never interleave.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "policy/audit.h"
#include "policy/redact.h"
#include "base/log.h"

/* Events of one address within the current window (audit_event_from). */
struct audit_limit {
	char addr[64];		/* "" when free */
	uint64_t window_ms;	/* when the window started */
	uint64_t last_ms;	/* the last event */
	unsigned count;		/* events written in the window */
	unsigned suppressed;	/* events dropped in the window */
	char first[32];		/* the first dropped event's name */
};

struct audit {
	int fd;
	bool own_fd;		/* false for stdout, which is not ours to close */
	char *path;
	struct audit_limit limits[AUDIT_LIMIT_ADDRS];
	unsigned char key[64];	/* the redaction key (audit_set_redaction_key) */
	size_t keylen;		/* 0: secrets are redacted without proof */
};

/* A growing line; a failed allocation sets oom and later appends do nothing. */
struct audit_buf {
	char *data;
	size_t len;
	size_t size;
	bool oom;
};

/* Make room for n more bytes in b. */
static bool
audit_buf_reserve(struct audit_buf *b, size_t n)
{
	size_t size;
	char *data;

	if (b->oom)
		return false;
	if (b->size - b->len >= n)
		return true;
	size = b->size != 0 ? b->size : 256;
	while (size - b->len < n) {
		if (size > SIZE_MAX / 2) {
			b->oom = true;
			return false;
		}
		size *= 2;
	}
	if ((data = realloc(b->data, size)) == NULL) {
		b->oom = true;
		return false;
	}
	b->data = data;
	b->size = size;
	return true;
}

/* Append n bytes to b. */
static void
audit_buf_add(struct audit_buf *b, const void *p, size_t n)
{
	if (!audit_buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

/* Append a C string to b. */
static void
audit_buf_str(struct audit_buf *b, const char *s)
{
	audit_buf_add(b, s, strlen(s));
}

/*
 * The length of the valid UTF-8 sequence at s (at most n bytes), or 0 if
 * the bytes there are not one; *bad is then how many bytes form the
 * maximal invalid prefix that one U+FFFD replaces (Unicode's "maximal
 * subpart" practice). Overlong forms, surrogates and code points above
 * U+10FFFF are invalid.
 */
static size_t
audit_utf8_len(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t need, i;

	*bad = 1;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;		/* overlong */
	else if (s[0] == 0xed)
		hi = 0x9f;		/* surrogates */
	else if (s[0] == 0xf0)
		lo = 0x90;		/* overlong */
	else if (s[0] == 0xf4)
		hi = 0x8f;		/* above U+10FFFF */
	for (i = 1; i < need; i++) {
		if (i >= n || s[i] < lo || s[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need;
}

/*
 * Append s as a JSON string: quotes and backslash escaped, control
 * characters (and DEL) as \u00XX, invalid UTF-8 as U+FFFD.
 */
static void
audit_buf_json_string(struct audit_buf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str), i = 0, len, bad;
	char esc[8];

	audit_buf_add(b, "\"", 1);
	while (i < n) {
		if (s[i] == '"' || s[i] == '\\') {
			esc[0] = '\\';
			esc[1] = (char)s[i];
			audit_buf_add(b, esc, 2);
			i++;
		} else if (s[i] < 0x20 || s[i] == 0x7f) {
			snprintf(esc, sizeof esc, "\\u%04x", s[i]);
			audit_buf_add(b, esc, 6);
			i++;
		} else if ((len = audit_utf8_len(s + i, n - i, &bad)) != 0) {
			audit_buf_add(b, s + i, len);
			i += len;
		} else {
			audit_buf_add(b, "\xef\xbf\xbd", 3);
			i += bad;
		}
	}
	audit_buf_add(b, "\"", 1);
}

/* Create the directory holding path (mode 0700 for what is created), like mkdir -p. */
static int
audit_mkdir_parent(const char *path)
{
	char *dir, *p, c;
	int r = 0;

	if ((dir = strdup(path)) == NULL)
		return -ENOMEM;
	if ((p = strrchr(dir, '/')) == NULL || p == dir)
		goto out;
	*p = '\0';
	for (p = dir + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		c = *p;
		*p = '\0';
		if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
			r = -errno;
			goto out;
		}
		*p = c;
		if (c == '\0')
			break;
	}
out:
	free(dir);
	return r;
}

/* Open the file at path for appending, as audit_open describes; *fdp is -1 on failure. */
static int
audit_open_file(const char *path, int *fdp)
{
	struct stat st;
	int fd = -1, flags, r;

	*fdp = -1;
	if ((r = audit_mkdir_parent(path)) != 0) {
		log_error_r(r, "cannot create the directory of %s", path);
		return r;
	}
	/* O_NONBLOCK so a FIFO planted at path cannot hang the open. */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
	    O_NONBLOCK, 0600);
	if (fd == -1) {
		r = -errno;
		log_error_r(r, "cannot open %s", path);
		goto out;
	}
	if (fstat(fd, &st) == -1) {
		r = -errno;
		log_error_r(r, "cannot stat %s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		log_error("%s is not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0)
		log_warn("%s is readable or writable by group or others (mode %o); "
		    "fix with: chmod 600 %s", path, (unsigned)(st.st_mode & 0777), path);
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1) {
		r = -errno;
		log_error_r(r, "cannot set flags of %s", path);
		goto out;
	}
	*fdp = fd;
	fd = -1;	/* transferred */
	r = 0;
out:
	if (fd != -1)
		close(fd);
	return r;
}

/* Open the audit log at path, or stdout for "-". */
int
audit_open(const char *path, struct audit **out)
{
	struct audit *a = NULL;
	int r;

	*out = NULL;
	if (path == NULL || *path == '\0')
		return -EINVAL;
	if ((a = calloc(1, sizeof *a)) == NULL || (a->path = strdup(path)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (strcmp(path, "-") == 0) {
		a->fd = STDOUT_FILENO;
		a->own_fd = false;
	} else {
		if ((r = audit_open_file(path, &a->fd)) < 0)
			goto out;
		a->own_fd = true;
	}
	*out = a;
	a = NULL;	/* transferred */
	r = 0;
out:
	audit_close(a);
	return r;
}

/* Open the log's path again (after logrotate moved the file away). */
int
audit_reopen(struct audit *a)
{
	int fd, r;

	if (a == NULL || !a->own_fd)
		return 0;
	if ((r = audit_open_file(a->path, &fd)) < 0)
		return r;	/* keep writing where we were */
	close(a->fd);
	a->fd = fd;
	return 1;
}

/* Keep the redaction key. */
int
audit_set_redaction_key(struct audit *a, const void *key, size_t len)
{
	if (a == NULL || len == 0 || len > sizeof a->key)
		return -EINVAL;
	memcpy(a->key, key, len);
	a->keylen = len;
	return 0;
}

/*
 * audit_event with its AUDIT_SECRET fields redacted, each one that
 * redaction changed followed by its "KEY_hmac" under the redaction key.
 */
static void
audit_event_secrets(struct audit *a, const char *event, const struct audit_field *fields,
    size_t nfields)
{
	struct audit_field *f = NULL;
	char **red = NULL, **names = NULL, (*hmac)[REDACT_PROOF_HEX + 1] = NULL;
	size_t i, m = 0;

	if ((f = calloc(2 * nfields, sizeof *f)) == NULL ||
	    (red = calloc(nfields, sizeof *red)) == NULL ||
	    (names = calloc(nfields, sizeof *names)) == NULL ||
	    (hmac = calloc(nfields, sizeof *hmac)) == NULL) {
		log_error("out of memory formatting audit event %s", event);
		goto out;
	}
	for (i = 0; i < nfields; i++) {
		if (!fields[i].secret || fields[i].str == NULL) {
			f[m++] = fields[i];
			continue;
		}
		/* Fail closed: a value that cannot be redacted is not written. */
		if (redact_string_proved(fields[i].redact, a->keylen > 0 ? a->key : NULL,
		    a->keylen, fields[i].str, strlen(fields[i].str), &red[i], NULL, hmac[i]) < 0)
			red[i] = NULL;
		f[m++] = AUDIT_STR(fields[i].key, red[i] != NULL ? red[i] :
		    "[REDACTED:unavailable]");
		if (hmac[i][0] == '\0')
			continue;
		if (asprintf(&names[i], "%s_hmac", fields[i].key != NULL ? fields[i].key : "") < 0) {
			names[i] = NULL;
			f[m - 1].str = "[REDACTED:unavailable]";	/* no value without its proof */
			continue;
		}
		f[m++] = AUDIT_STR(names[i], hmac[i]);
	}
	audit_event(a, event, f, m);
out:
	for (i = 0; red != NULL && names != NULL && i < nfields; i++) {
		free(red[i]);
		free(names[i]);
	}
	free(f);
	free(red);
	free(names);
	free(hmac);
}

/* Format one event as a line of JSON and append it with one write(2). */
void
audit_event(struct audit *a, const char *event, const struct audit_field *fields,
    size_t nfields)
{
	struct audit_buf b = { 0 };
	struct timespec ts;
	struct tm tm;
	char when[64], num[32];
	size_t i, off;
	ssize_t n;

	if (a == NULL)
		return;
	for (i = 0; i < nfields; i++) {
		if (fields[i].secret) {
			audit_event_secrets(a, event, fields, nfields);
			return;
		}
	}
	if (clock_gettime(CLOCK_REALTIME, &ts) == -1 || gmtime_r(&ts.tv_sec, &tm) == NULL) {
		log_error("cannot read the clock for audit event %s", event);
		return;
	}
	off = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + off, sizeof when - off, ".%09ldZ", (long)ts.tv_nsec);

	audit_buf_str(&b, "{\"time\":\"");
	audit_buf_str(&b, when);
	audit_buf_str(&b, "\",\"event\":");
	audit_buf_json_string(&b, event != NULL ? event : "");
	for (i = 0; i < nfields; i++) {
		audit_buf_add(&b, ",", 1);
		audit_buf_json_string(&b, fields[i].key != NULL ? fields[i].key : "");
		audit_buf_add(&b, ":", 1);
		if (fields[i].str != NULL) {
			audit_buf_json_string(&b, fields[i].str);
		} else {
			snprintf(num, sizeof num, "%" PRId64, fields[i].num);
			audit_buf_str(&b, num);
		}
	}
	audit_buf_add(&b, "}\n", 2);
	if (b.oom) {
		log_error("out of memory formatting audit event %s", event);
		goto out;
	}
	/* One write for the whole line; the loop only finishes a short write. */
	for (off = 0; off < b.len; off += (size_t)n) {
		n = write(a->fd, b.data + off, b.len - off);
		if (n == -1 && errno == EINTR) {
			n = 0;
			continue;
		}
		if (n <= 0) {
			log_error("cannot write audit event %s to %s: %s", event, a->path,
			    n == 0 ? "short write" : strerror(errno));
			break;
		}
	}
out:
	free(b.data);
}

/* Close the log (not stdout) and free a. */
/* Milliseconds of the monotonic clock. */
static uint64_t
audit_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Write the summary of what l dropped, and start a new window at now. */
static void
audit_limit_summarise(struct audit *a, struct audit_limit *l, uint64_t now)
{
	if (l->suppressed > 0) {
		struct audit_field f[] = {
			AUDIT_STR("address", l->addr),
			AUDIT_NUM("suppressed", l->suppressed),
			AUDIT_STR("first", l->first),
			AUDIT_NUM("seconds", (now - l->window_ms + 999) / 1000),
		};

		audit_event(a, "audit_suppressed", f, sizeof f / sizeof f[0]);
	}
	l->window_ms = now;
	l->count = 0;
	l->suppressed = 0;
	l->first[0] = '\0';
}

void
audit_tick(struct audit *a)
{
	uint64_t now = audit_now_ms();
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < AUDIT_LIMIT_ADDRS; i++) {
		struct audit_limit *l = &a->limits[i];

		if (l->addr[0] != '\0' && now - l->window_ms >= AUDIT_LIMIT_WINDOW_MS) {
			audit_limit_summarise(a, l, now);
			if (now - l->last_ms >= AUDIT_LIMIT_WINDOW_MS)
				l->addr[0] = '\0';	/* quiet: forget it */
		}
	}
}

void
audit_event_from(struct audit *a, const char *client, const char *event,
    const struct audit_field *fields, size_t nfields)
{
	struct audit_limit *l = NULL, *oldest = NULL, *free_slot = NULL;
	const char *colon;
	char addr[sizeof l->addr];
	uint64_t now;
	size_t i, len;

	if (a == NULL)
		return;
	/* The address: "addr:port" and "[v6]:port" without the port. */
	colon = client != NULL ? strrchr(client, ':') : NULL;
	len = client == NULL ? 0 : colon != NULL ? (size_t)(colon - client) : strlen(client);
	snprintf(addr, sizeof addr, "%.*s", (int)len, client != NULL ? client : "");
	now = audit_now_ms();
	for (i = 0; i < AUDIT_LIMIT_ADDRS; i++) {
		struct audit_limit *e = &a->limits[i];

		if (e->addr[0] == '\0') {
			if (free_slot == NULL)
				free_slot = e;
			continue;
		}
		if (strcmp(e->addr, addr) == 0) {
			l = e;
			break;
		}
		if (oldest == NULL || e->last_ms < oldest->last_ms)
			oldest = e;
	}
	if (l == NULL) {
		/* A new address: a free slot, or the one quiet the longest. */
		if ((l = free_slot) == NULL) {
			l = oldest;
			audit_limit_summarise(a, l, now);
		}
		memset(l, 0, sizeof *l);
		snprintf(l->addr, sizeof l->addr, "%s", addr);
		l->window_ms = now;
	} else if (now - l->window_ms >= AUDIT_LIMIT_WINDOW_MS) {
		audit_limit_summarise(a, l, now);
	}
	l->last_ms = now;
	if (l->count < AUDIT_LIMIT_BURST) {
		l->count++;
		audit_event(a, event, fields, nfields);
		return;
	}
	if (l->suppressed++ == 0)
		snprintf(l->first, sizeof l->first, "%s", event);
}

void
audit_close(struct audit *a)
{
	size_t i;
	uint64_t now = audit_now_ms();

	if (a == NULL)
		return;
	for (i = 0; i < AUDIT_LIMIT_ADDRS; i++) {
		if (a->limits[i].addr[0] != '\0')
			audit_limit_summarise(a, &a->limits[i], now);
	}
	if (a->own_fd && a->fd != -1 && close(a->fd) == -1)
		log_error("closing %s: %s", a->path, strerror(errno));
	free(a->path);
	OPENSSL_cleanse(a->key, sizeof a->key);
	free(a);
}
