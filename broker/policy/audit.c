/*
 * The audit log: each event is formatted into one buffer and appended with
 * a single write(2), so lines from several writers never interleave.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "base.h"
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

/* Add key: value to the event object o, a string or a number. */
static int
audit_set(json_t *o, const char *key, json_t *v)
{
	json_t *k;
	int r = -1;

	/* Keys are escaped like values: through a string that is valid UTF-8. */
	if (v != NULL && (k = jsonout_string(key, strlen(key))) != NULL) {
		r = json_object_setn_new_nocheck(o, json_string_value(k), json_string_length(k), v);
		v = NULL;	/* taken by the object, even on failure */
		json_decref(k);
	}
	json_decref(v);
	return r;
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

/*
 * Format one event as a line of JSON and append it with one write(2).
 * jansson keeps the keys in the order they are set; control characters
 * and DEL are spelled \u00xx, so a line holds no byte a terminal acts on.
 */
void
audit_event(struct audit *a, const char *event, const struct audit_field *fields,
    size_t nfields)
{
	struct buf b = { 0 };
	json_t *o = NULL;
	struct timespec ts;
	struct tm tm;
	char when[64];
	const char *s;
	size_t i, off;
	ssize_t n;
	int r;

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

	s = event != NULL ? event : "";
	r = (o = json_object()) == NULL ||
	    audit_set(o, "time", json_string(when)) != 0 ||
	    audit_set(o, "event", jsonout_string(s, strlen(s))) != 0;
	for (i = 0; i < nfields && r == 0; i++) {
		s = fields[i].str;
		r = audit_set(o, fields[i].key != NULL ? fields[i].key : "", s != NULL ?
		    jsonout_string(s, strlen(s)) : json_integer(fields[i].num));
	}
	if (r != 0 || jsonout_dump(o, JSON_COMPACT, JSONOUT_DEL, &b) != 0 ||
	    (buf_add(&b, "\n", 1), b.oom)) {
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
	json_decref(o);
	buf_free(&b);
}

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
