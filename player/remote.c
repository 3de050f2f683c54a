/*
 * Reading recordings from S3-compatible object storage: names, look-up by
 * session id, listing, and downloads by range into a temporary file, all
 * at once or (for play) the rest on a thread while the start is read.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "player.h"
#include "remote.h"
#include "s3.h"

#define REMOTE_CHUNK (8u << 20)		/* bytes per range request */
#define REMOTE_BODY_MAX (8u << 20)	/* largest answer kept in memory (lists, errors) */
#define REMOTE_FIRST (256u << 10)	/* streaming: the first range, read before play starts */
#define REMOTE_FOLLOW_MS 1000	/* -f: how often to look for new segments or the seal */

/* The process's connection to object storage, made at first use. */
static struct {
	bool ready;
	CURL *h;
	struct s3_creds creds;
	char *endpoint;
	char *region;
	bool path_style;
	char *cached_url;	/* the last recording downloaded, and its copy */
	int cached_fd;
} remote = { .cached_fd = -1 };

/* Where an answer goes: memory, or a file at an offset. */
struct remote_sink {
	struct buf body;	/* in memory when fd is -1 */
	int fd;
	uint64_t off;
	int err;
};

/* What a name resolved to. */
struct remote_rec {
	char *key;		/* the sealed object, or NULL */
	uint64_t size;
	struct s3_list segs;	/* or its segments, in order */
};

/*
 * The download a thread finishes while play reads what is there
 * (remote_stream_start). The thread has the connection to itself: the
 * main thread makes no request until it has ended.
 */
static struct {
	bool running;		/* a thread was started and not joined */
	pthread_t thread;
	atomic_bool stop;	/* asks the transfer to give up */
	atomic_int result;	/* 1 while running, then 0 or a negative errno */
	char *url;
	struct s3_bucket b;
	struct remote_rec rec;
	int fd;
	uint64_t from;		/* sealed object: the first byte still to get */
	size_t seg;		/* segments: the first segment still to get */
	uint64_t at;		/* ... and where it goes */
	bool follow;		/* -f: segments go on until the sealed object is there */
	char error[512];	/* why it failed, said by remote_stream_poll */
} stream = { .result = 0, .fd = -1 };

/* Set on the streaming thread: messages are kept for later, not printed. */
static _Thread_local bool remote_quiet;

/*
 * Say what went wrong: on stderr, or on the streaming thread (whose
 * messages would land in the middle of play's screen) into stream.error.
 */
static void remote_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
remote_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (remote_quiet) {
		if (stream.error[0] == '\0')
			vsnprintf(stream.error, sizeof stream.error, fmt, ap);
	} else {
		char buf[1024];

		vsnprintf(buf, sizeof buf, fmt, ap);
		player_warn("%s", buf);
	}
	va_end(ap);
}

/* Whether path names object storage. */
bool
remote_is_url(const char *path)
{
	return s3_is_url(path);
}

/* Whether url names a prefix. */
bool
remote_is_prefix(const char *url)
{
	const char *k;

	if (!remote_is_url(url))
		return false;
	k = strchr(url + 5, '/');
	return k == NULL || k[1] == '\0' || url[strlen(url) - 1] == '/';
}

/* Free what remote holds (at exit). */
static void
remote_cleanup(void)
{
	remote_stream_stop();
	if (remote.h != NULL)
		curl_easy_cleanup(remote.h);
	s3_creds_clear(&remote.creds);
	free(remote.endpoint);
	free(remote.region);
	free(remote.cached_url);
	if (remote.cached_fd >= 0)
		close(remote.cached_fd);
	curl_global_cleanup();
}

/* Credentials from the [profile] section of the shared credentials file. */
static int
remote_creds_file(struct s3_creds *c)
{
	const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE"), *home = getenv("HOME");
	const char *profile = getenv("AWS_PROFILE");
	char path[4096], line[4096], want[256], *k, *v, *e;
	bool in = false;
	FILE *f;

	memset(c, 0, sizeof *c);
	if (file != NULL && *file != '\0')
		snprintf(path, sizeof path, "%s", file);
	else if (home != NULL)
		snprintf(path, sizeof path, "%s/.aws/credentials", home);
	else
		return -ENOKEY;
	snprintf(want, sizeof want, "[%s]", profile != NULL && *profile ? profile : "default");
	if ((f = fopen(path, "re")) == NULL)
		return -ENOKEY;
	while (fgets(line, sizeof line, f) != NULL) {
		for (e = line + strlen(line); e > line && isspace((unsigned char)e[-1]); e--)
			;
		*e = '\0';
		for (k = line; isspace((unsigned char)*k); k++)
			;
		if (*k == '[') {
			in = strcmp(k, want) == 0;
			continue;
		}
		if (!in || (v = strchr(k, '=')) == NULL)
			continue;
		for (e = v; e > k && isspace((unsigned char)e[-1]); e--)
			;
		*e = '\0';
		for (v++; isspace((unsigned char)*v); v++)
			;
		if (strcmp(k, "aws_access_key_id") == 0 && c->access_key == NULL)
			c->access_key = strdup(v);
		else if (strcmp(k, "aws_secret_access_key") == 0 && c->secret_key == NULL)
			c->secret_key = strdup(v);
		else if (strcmp(k, "aws_session_token") == 0 && c->session_token == NULL)
			c->session_token = strdup(v);
	}
	explicit_bzero(line, sizeof line);
	fclose(f);
	if (c->access_key == NULL || c->secret_key == NULL) {
		s3_creds_clear(c);
		return -ENOKEY;
	}
	return 0;
}

/* Set up at first use: credentials, endpoint, region. */
static int
remote_setup(void)
{
	const char *ep = getenv("AWS_ENDPOINT_URL_S3"), *region = getenv("AWS_REGION");
	char why[512];
	int r;

	if (remote.ready)
		return 0;
	if (ep == NULL || *ep == '\0')
		ep = getenv("AWS_ENDPOINT_URL");
	if (region == NULL || *region == '\0')
		region = getenv("AWS_DEFAULT_REGION");
	if (region == NULL || *region == '\0')
		region = "us-east-1";
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	atexit(remote_cleanup);
	if ((remote.h = curl_easy_init()) == NULL)
		return -ENOMEM;
	if (ep != NULL && *ep != '\0') {
		remote.endpoint = strdup(ep);
		remote.path_style = true;
	} else if (asprintf(&remote.endpoint, "https://s3.%s.amazonaws.com", region) < 0)
		remote.endpoint = NULL;
	if (remote.endpoint == NULL || (remote.region = strdup(region)) == NULL)
		return -ENOMEM;
	if (s3_creds_from_env(&remote.creds) < 0) {
		if (getenv("AWS_ROLE_ARN") != NULL && getenv("AWS_WEB_IDENTITY_TOKEN_FILE") != NULL) {
			if ((r = s3_creds_web_identity(region, &remote.creds, why, sizeof why)) < 0) {
				remote_warn("object storage credentials: %s", why);
				return r;
			}
		} else if (remote_creds_file(&remote.creds) < 0) {
			remote_warn("object storage: no credentials: set AWS_ACCESS_KEY_ID and "
			    "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or AWS_ROLE_ARN and "
			    "AWS_WEB_IDENTITY_TOKEN_FILE)");
			return -ENOKEY;
		}
	}
	remote.ready = true;
	return 0;
}

/* The bucket of a name. */
static int
remote_bucket(const char *name, struct s3_bucket *b)
{
	int r;

	if ((r = s3_bucket_set(b, remote.endpoint, remote.region, name, remote.path_style)) < 0)
		remote_warn("bad object storage endpoint %s or region %s", remote.endpoint,
		    remote.region);
	return r;
}

/* Body bytes: into memory, or into the file. */
static size_t
remote_write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct remote_sink *s = arg;
	ssize_t w;
	size_t done = 0;

	n *= size;
	if (atomic_load(&stream.stop)) {
		s->err = -ECANCELED;
		return 0;
	}
	if (s->fd >= 0) {
		while (done < n) {
			w = pwrite(s->fd, p + done, n - done, (off_t)(s->off + done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				s->err = w < 0 ? -errno : -EIO;
				return 0;
			}
			done += (size_t)w;
		}
		s->off += n;
		return n;
	}
	if (s->body.len + n > REMOTE_BODY_MAX || (buf_add(&s->body, p, n), s->body.oom)) {
		s->err = -ENOMEM;
		return 0;
	}
	return n;
}

/* Called by curl about once a second even while nothing comes: give up when asked to. */
static int
remote_progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
    curl_off_t ulnow)
{
	return atomic_load(&stream.stop) ? 1 : 0;
}

/*
 * One request. *code is the HTTP status; a transfer failure prints why
 * (naming url) and returns a negative errno.
 */
static int
remote_request(const char *url, const struct s3_bucket *b, const char *method, const char *key,
    const char *query, const char *range, struct remote_sink *sink, long *code,
    uint64_t *length)
{
	struct curl_slist *hdrs = NULL, *t;
	char err[CURL_ERROR_SIZE] = "", rh[96];
	curl_off_t len = -1;
	CURLcode cc;
	int r;

	*code = 0;
	curl_easy_reset(remote.h);
	if ((r = s3_request(remote.h, b, &remote.creds, method, key, query, NULL, &hdrs)) < 0) {
		remote_warn("%s: %s", url, strerror(-r));
		return r;
	}
	if (range != NULL) {
		snprintf(rh, sizeof rh, "Range: %s", range);
		if ((t = curl_slist_append(hdrs, rh)) == NULL) {
			curl_slist_free_all(hdrs);
			return -ENOMEM;
		}
		hdrs = t;
		curl_easy_setopt(remote.h, CURLOPT_HTTPHEADER, hdrs);
	}
	curl_easy_setopt(remote.h, CURLOPT_WRITEFUNCTION, remote_write_cb);
	curl_easy_setopt(remote.h, CURLOPT_WRITEDATA, sink);
	curl_easy_setopt(remote.h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(remote.h, CURLOPT_CONNECTTIMEOUT, 20L);
	curl_easy_setopt(remote.h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(remote.h, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(remote.h, CURLOPT_XFERINFOFUNCTION, remote_progress_cb);
	curl_easy_setopt(remote.h, CURLOPT_NOPROGRESS, 0L);
	cc = curl_easy_perform(remote.h);
	curl_slist_free_all(hdrs);
	if (cc != CURLE_OK) {
		if (sink->err < 0 && sink->fd >= 0)
			remote_warn("%s: writing a local copy: %s", url, strerror(-sink->err));
		else
			remote_warn("%s: %s", url, err[0] ? err : curl_easy_strerror(cc));
		return sink->err < 0 ? sink->err : -EIO;
	}
	curl_easy_getinfo(remote.h, CURLINFO_RESPONSE_CODE, code);
	if (length != NULL) {
		curl_easy_getinfo(remote.h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
		*length = len >= 0 ? (uint64_t)len : 0;
	}
	return 0;
}

/* Say why a request was refused. */
static int
remote_refused(const char *url, long code, const struct remote_sink *s)
{
	char text[256];

	s3_error_text(s->body.data, s->body.len, text, sizeof text);
	remote_warn("%s: HTTP %ld%s%s", url, code, text[0] ? ": " : "", text);
	return code == 404 ? -ENOENT : code == 403 || code == 401 ? -EACCES : -EIO;
}

/* Whether key exists; its size in *size. 1 yes, 0 no, negative on error. */
static int
remote_head(const char *url, const struct s3_bucket *b, const char *key, uint64_t *size)
{
	struct remote_sink s = { .fd = -1 };
	long code;
	int r;

	if ((r = remote_request(url, b, "HEAD", key, NULL, NULL, &s, &code, size)) < 0)
		return r;
	buf_free(&s.body);
	if (code == 200)
		return 1;
	if (code == 404 || code == 403)
		return 0;	/* 403: a missing key without s3:ListBucket */
	remote_warn("%s: HTTP %ld", url, code);
	return -EIO;
}

/* Every key under prefix (all pages) into *out. */
static int
remote_list(const char *url, const struct s3_bucket *b, const char *prefix, struct s3_list *out)
{
	struct s3_list page;
	char *query = NULL, *token = NULL;
	struct remote_sink s;
	long code;
	int r;
	void *t1, *t2;

	memset(out, 0, sizeof *out);
	for (;;) {
		memset(&s, 0, sizeof s);
		s.fd = -1;
		if ((r = s3_list_query(prefix, token, &query)) < 0)
			break;
		r = remote_request(url, b, "GET", "", query, NULL, &s, &code, NULL);
		free(query);
		query = NULL;
		if (r < 0)
			break;
		if (code != 200) {
			r = remote_refused(url, code, &s);
			buf_free(&s.body);
			break;
		}
		r = s3_list_parse(s.body.data ? s.body.data : "", s.body.len, &page);
		buf_free(&s.body);
		if (r < 0) {
			remote_warn("%s: not a ListObjectsV2 answer", url);
			break;
		}
		t1 = realloc(out->keys, (out->n + page.n + 1) * sizeof *out->keys);
		if (t1 != NULL)
			out->keys = t1;
		t2 = realloc(out->sizes, (out->n + page.n + 1) * sizeof *out->sizes);
		if (t2 != NULL)
			out->sizes = t2;
		if (t1 == NULL || t2 == NULL) {
			s3_list_free(&page);
			r = -ENOMEM;
			break;
		}
		if (page.n > 0) {
			memcpy(out->keys + out->n, page.keys, page.n * sizeof *page.keys);
			memcpy(out->sizes + out->n, page.sizes, page.n * sizeof *page.sizes);
		}
		out->n += page.n;
		page.n = 0;
		free(token);
		token = page.next_token;
		page.next_token = NULL;
		if (!page.truncated) {
			s3_list_free(&page);
			free(token);
			return 0;
		}
		s3_list_free(&page);
	}
	free(token);
	s3_list_free(out);
	return r;
}

/* Whether key is a sealed recording's name (X.rec). */
static bool
remote_is_rec(const char *key)
{
	size_t n = strlen(key);

	return n > 4 && strcmp(key + n - 4, ".rec") == 0;
}

/* For a segment key X.rec.seg/OFFSET, the length of X.rec; 0 otherwise. */
static size_t
remote_seg_base(const char *key)
{
	const char *p = strstr(key, ".rec.seg/");

	return p != NULL ? (size_t)(p - key) + 4 : 0;
}

/* Find the recording of key: the sealed object, or its segments. */
static int
remote_resolve_rec(const char *url, const struct s3_bucket *b, const char *key,
    struct remote_rec *out)
{
	char *seg = NULL;
	int r;

	if ((r = remote_head(url, b, key, &out->size)) < 0)
		return r;
	if (r == 1)
		return (out->key = strdup(key)) != NULL ? 0 : -ENOMEM;
	if (asprintf(&seg, "%s.seg/", key) < 0)
		return -ENOMEM;
	r = remote_list(url, b, seg, &out->segs);
	free(seg);
	if (r < 0)
		return r;
	return out->segs.n > 0 ? 0 : -ENOENT;
}

/* Find what key names: an object, KEY.rec, or the one recording whose name starts with KEY. */
static int
remote_resolve(const char *url, const struct s3_bucket *b, const char *key, struct remote_rec *out)
{
	struct s3_list l;
	char *name = NULL, *found = NULL;
	size_t i, n;
	int r, count = 0;

	memset(out, 0, sizeof *out);
	if ((r = remote_head(url, b, key, &out->size)) < 0)
		return r;
	if (r == 1)
		return (out->key = strdup(key)) != NULL ? 0 : -ENOMEM;
	if (remote_is_rec(key)) {
		if ((r = remote_resolve_rec(url, b, key, out)) == -ENOENT)
			remote_warn("%s: no such recording", url);
		return r;
	}
	/* A session id, or the start of one. */
	if ((r = remote_list(url, b, key, &l)) < 0)
		return r;
	for (i = 0; i < l.n; i++) {
		n = remote_is_rec(l.keys[i]) ? strlen(l.keys[i]) : remote_seg_base(l.keys[i]);
		if (n == 0 || (found != NULL && strlen(found) == n && strncmp(found, l.keys[i], n) == 0))
			continue;
		count++;
		free(found);
		if ((found = strndup(l.keys[i], n)) == NULL) {
			s3_list_free(&l);
			return -ENOMEM;
		}
	}
	s3_list_free(&l);
	if (count == 0) {
		remote_warn("%s: no such recording", url);
		free(found);
		return -ENOENT;
	}
	if (count > 1) {
		remote_warn("%s: %d recordings start with this name; give more of the session id", url,
		    count);
		free(found);
		return -EINVAL;
	}
	name = found;
	r = remote_resolve_rec(url, b, name, out);
	free(name);
	return r;
}

/* A file that is gone when closed, for the local copy. */
static int
remote_tmpfile(void)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	if ((fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) >= 0)
		return fd;
	snprintf(path, sizeof path, "%s/podgate-player.XXXXXX", dir);
	if ((fd = mkostemp(path, O_CLOEXEC)) < 0)
		return -errno;
	unlink(path);
	return fd;
}

/* Download [from, size) of key into fd at off + from, by ranges. */
static int
remote_get(const char *url, const struct s3_bucket *b, const char *key, uint64_t from,
    uint64_t size, int fd, uint64_t off)
{
	struct remote_sink s = { .fd = fd };
	char range[64];
	uint64_t at = from, end;
	long code;
	int r;

	while (at < size) {
		end = size - at > REMOTE_CHUNK ? at + REMOTE_CHUNK : size;
		snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, at, end - 1);
		s.off = off + at;
		memset(&s.body, 0, sizeof s.body);
		if ((r = remote_request(url, b, "GET", key, NULL, range, &s, &code, NULL)) < 0)
			return r;
		if (code != 206 && code != 200) {
			/* The error body went to the file: say what we know. */
			remote_warn("%s: HTTP %ld", url, code);
			return code == 404 ? -ENOENT : -EIO;
		}
		if (s.off - off != end) {
			if (code == 200 && s.off - off == size)
				return 0;	/* a server that ignores ranges sent it all */
			remote_warn("%s: the object changed while it was read", url);
			return -EIO;
		}
		at = end;
	}
	return 0;
}

/* Download what url names into a new temporary file. */
static int
remote_download(const char *url, int *out)
{
	struct s3_bucket b = { 0 };
	struct remote_rec rec = { 0 };
	char *bucket = NULL, *key = NULL;
	uint64_t at = 0, start;
	size_t i;
	int fd = -1, r;

	*out = -1;
	if ((r = s3_parse_url(url, &bucket, &key)) < 0) {
		remote_warn("%s: not s3://BUCKET/KEY", url);
		return -EINVAL;
	}
	if (*key == '\0' || key[strlen(key) - 1] == '/') {
		remote_warn("%s: names a prefix, not a recording", url);
		r = -EISDIR;
		goto out;
	}
	if ((r = remote_setup()) < 0 || (r = remote_bucket(bucket, &b)) < 0 ||
	    (r = remote_resolve(url, &b, key, &rec)) < 0)
		goto out;
	if ((fd = remote_tmpfile()) < 0) {
		r = fd;
		remote_warn("%s: cannot make a temporary file: %s", url, strerror(-r));
		goto out;
	}
	if (rec.key != NULL)
		r = remote_get(url, &b, rec.key, 0, rec.size, fd, 0);
	else {
		remote_warn("%s: not sealed in the bucket yet: reading the %zu segment(s) shipped "
		    "so far", url, rec.segs.n);
		for (i = 0; i < rec.segs.n && r == 0; i++) {
			const char *slash = strrchr(rec.segs.keys[i], '/');

			start = strtoull(slash + 1, NULL, 10);
			if (start != at) {
				remote_warn("%s: segment %s does not follow byte %" PRIu64, url,
				    rec.segs.keys[i], at);
				break;
			}
			r = remote_get(url, &b, rec.segs.keys[i], 0, rec.segs.sizes[i], fd, at);
			at += rec.segs.sizes[i];
		}
	}
	if (r == 0 && lseek(fd, 0, SEEK_SET) < 0)
		r = -errno;
	if (r == 0) {
		*out = fd;
		fd = -1;
	}
out:
	if (fd >= 0)
		close(fd);
	free(rec.key);
	s3_list_free(&rec.segs);
	s3_bucket_clear(&b);
	free(bucket);
	free(key);
	return r;
}

/* Open the recording url names. */
int
remote_open(const char *url)
{
	char path[64];
	int fd, r;

	if (remote.cached_url == NULL || strcmp(remote.cached_url, url) != 0) {
		if ((r = remote_download(url, &fd)) < 0)
			return r;
		if (remote.cached_fd >= 0)
			close(remote.cached_fd);
		free(remote.cached_url);
		remote.cached_fd = fd;
		if ((remote.cached_url = strdup(url)) == NULL) {
			close(remote.cached_fd);
			remote.cached_fd = -1;
			return -ENOMEM;
		}
	}
	/* A file description of its own: readers keep their own offsets. */
	snprintf(path, sizeof path, "/proc/self/fd/%d", remote.cached_fd);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		r = -errno;
		remote_warn("%s: %s", url, strerror(-r));
		return r;
	}
	return fd;
}

/* Keep fd as the copy of url that remote_open gives descriptors of. */
static int
remote_cache(const char *url, int fd)
{
	if (remote.cached_fd >= 0)
		close(remote.cached_fd);
	free(remote.cached_url);
	remote.cached_fd = fd;
	if ((remote.cached_url = strdup(url)) == NULL) {
		close(remote.cached_fd);
		remote.cached_fd = -1;
		return -ENOMEM;
	}
	return 0;
}

/* The segments of stream.rec from stream.seg on, each where it belongs, up to byte upto. */
static int
remote_stream_segments(uint64_t upto)
{
	const char *slash;
	uint64_t start;
	int r = 0;

	for (; stream.seg < stream.rec.segs.n && stream.at < upto && r == 0; stream.seg++) {
		slash = strrchr(stream.rec.segs.keys[stream.seg], '/');
		start = strtoull(slash + 1, NULL, 10);
		if (start != stream.at) {
			remote_warn("%s: segment %s does not follow byte %" PRIu64, stream.url,
			    stream.rec.segs.keys[stream.seg], stream.at);
			stream.seg = stream.rec.segs.n;
			return 0;	/* read as cut there, as remote_download does */
		}
		r = remote_get(stream.url, &stream.b, stream.rec.segs.keys[stream.seg], 0,
		    stream.rec.segs.sizes[stream.seg], stream.fd, stream.at);
		stream.at += stream.rec.segs.sizes[stream.seg];
	}
	return r;
}

/* Wait ms milliseconds, or less when asked to stop: -ECANCELED then. */
static int
remote_stream_wait(int ms)
{
	struct timespec ts = { 0, 50 * 1000000L };
	int i;

	for (i = 0; i < ms / 50; i++) {
		if (atomic_load(&stream.stop))
			return -ECANCELED;
		nanosleep(&ts, NULL);
	}
	return atomic_load(&stream.stop) ? -ECANCELED : 0;
}

/*
 * -f on a recording not sealed yet: while the session runs, the broker
 * ships what was written since the last segment as a new segment, and at
 * its end the whole recording as the sealed object, then deletes the
 * segments (docs/storage.md). Look every REMOTE_FOLLOW_MS: once the sealed
 * object is there, read it from where the segments read so far end (its
 * bytes up to there are theirs); until then, read the new segments.
 */
static int
remote_stream_follow(void)
{
	struct s3_list l = { 0 };
	const char *slash;
	char *sealed = NULL, *prefix = NULL;
	uint64_t size = 0;
	size_t n;
	int r;

	if (stream.rec.segs.n == 0 || (n = remote_seg_base(stream.rec.segs.keys[0])) == 0)
		return 0;
	if ((sealed = strndup(stream.rec.segs.keys[0], n)) == NULL ||
	    asprintf(&prefix, "%s.seg/", sealed) < 0) {
		prefix = NULL;
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		if ((r = remote_stream_wait(REMOTE_FOLLOW_MS)) < 0 ||
		    (r = remote_head(stream.url, &stream.b, sealed, &size)) < 0)
			goto out;
		if (r == 1) {
			if (size < stream.at) {
				remote_warn("%s: the sealed recording is shorter (%" PRIu64 " bytes) "
				    "than its segments (%" PRIu64 ")", stream.url, size, stream.at);
				r = -EIO;
			} else
				r = remote_get(stream.url, &stream.b, sealed, stream.at, size,
				    stream.fd, 0);
			goto out;
		}
		if ((r = remote_list(stream.url, &stream.b, prefix, &l)) < 0)
			goto out;
		s3_list_free(&stream.rec.segs);
		stream.rec.segs = l;
		memset(&l, 0, sizeof l);	/* transferred */
		/* The segments read already end at stream.at: go on from there. */
		for (stream.seg = 0; stream.seg < stream.rec.segs.n; stream.seg++) {
			slash = strrchr(stream.rec.segs.keys[stream.seg], '/');
			if (slash != NULL && strtoull(slash + 1, NULL, 10) >= stream.at)
				break;
		}
		if ((r = remote_stream_segments(UINT64_MAX)) < 0)
			goto out;
	}
out:
	s3_list_free(&l);
	free(sealed);
	free(prefix);
	return r;
}

/* The thread: the rest of the recording. */
static void *
remote_stream_main(void *arg)
{
	int r;

	remote_quiet = true;
	if (stream.rec.key != NULL)
		r = remote_get(stream.url, &stream.b, stream.rec.key, stream.from, stream.rec.size,
		    stream.fd, 0);
	else if ((r = remote_stream_segments(UINT64_MAX)) == 0 && stream.follow)
		r = remote_stream_follow();
	atomic_store(&stream.result, r);
	return NULL;
}

/* Start reading url: the first range now, the rest on a thread. */
int
remote_stream_start(const char *url, bool follow)
{
	char *bucket = NULL, *key = NULL;
	uint64_t first;
	int fd = -1, r;

	if (stream.running || stream.url != NULL)
		return -EBUSY;
	if ((r = s3_parse_url(url, &bucket, &key)) < 0) {
		remote_warn("%s: not s3://BUCKET/KEY", url);
		return -EINVAL;
	}
	if (*key == '\0' || key[strlen(key) - 1] == '/') {
		remote_warn("%s: names a prefix, not a recording", url);
		r = -EISDIR;
		goto fail;
	}
	if ((stream.url = strdup(url)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = remote_setup()) < 0 || (r = remote_bucket(bucket, &stream.b)) < 0 ||
	    (r = remote_resolve(url, &stream.b, key, &stream.rec)) < 0)
		goto fail;
	if ((fd = remote_tmpfile()) < 0) {
		r = fd;
		remote_warn("%s: cannot make a temporary file: %s", url, strerror(-r));
		goto fail;
	}
	stream.fd = fd;
	if (stream.rec.key != NULL) {
		first = stream.rec.size < REMOTE_FIRST ? stream.rec.size : REMOTE_FIRST;
		if ((r = remote_get(url, &stream.b, stream.rec.key, 0, first, fd, 0)) < 0)
			goto fail;
		stream.from = first;
	} else {
		if (!follow)
			remote_warn("%s: not sealed in the bucket yet: reading the %zu segment(s) "
			    "shipped so far", url, stream.rec.segs.n);
		stream.follow = follow;
		/* Segments up to the first range's worth, the header among them. */
		stream.seg = 0;
		stream.at = 0;
		if ((r = remote_stream_segments(REMOTE_FIRST)) < 0)
			goto fail;
	}
	if ((fd = dup(stream.fd)) < 0 || (r = remote_cache(url, fd)) < 0) {
		r = fd < 0 ? -errno : r;
		fd = -1;
		goto fail;
	}
	fd = -1;
	atomic_store(&stream.stop, false);
	atomic_store(&stream.result, 1);
	stream.error[0] = '\0';
	if ((r = -pthread_create(&stream.thread, NULL, remote_stream_main, NULL)) < 0) {
		atomic_store(&stream.result, 0);
		remote_warn("%s: cannot start reading in the background: %s", url, strerror(-r));
		goto fail;
	}
	stream.running = true;
	free(bucket);
	free(key);
	return 0;
fail:
	remote_stream_stop();
	free(bucket);
	free(key);
	return r;
}

/* Whether the background read is over: 1 done, 0 going on, or its error. */
int
remote_stream_poll(const char **why)
{
	int r = atomic_load(&stream.result);

	*why = NULL;
	if (r == 1)
		return 0;
	if (stream.running) {
		pthread_join(stream.thread, NULL);
		stream.running = false;
	}
	if (r < 0) {
		*why = stream.error[0] != '\0' ? stream.error : strerror(-r);
		return r;
	}
	return 1;
}

/* Stop the background read (if any) and forget it. */
void
remote_stream_stop(void)
{
	if (stream.running) {
		atomic_store(&stream.stop, true);
		pthread_join(stream.thread, NULL);
		stream.running = false;
	}
	if (stream.fd >= 0)
		close(stream.fd);
	stream.fd = -1;
	free(stream.url);
	stream.url = NULL;
	free(stream.rec.key);
	stream.rec.key = NULL;
	s3_list_free(&stream.rec.segs);
	memset(&stream.rec.segs, 0, sizeof stream.rec.segs);
	s3_bucket_clear(&stream.b);
	stream.follow = false;
	atomic_store(&stream.stop, false);
}

/* Every recording under a prefix. */
int
remote_walk(const char *url, walk_fn *fn, void *arg)
{
	struct s3_bucket b = { 0 };
	struct s3_list l = { 0 };
	char *bucket = NULL, *prefix = NULL, *name = NULL, *last = NULL;
	size_t i, n;
	int r;

	if ((r = s3_parse_url(url, &bucket, &prefix)) < 0) {
		remote_warn("%s: not s3://BUCKET/PREFIX/", url);
		return -EINVAL;
	}
	if ((r = remote_setup()) < 0 || (r = remote_bucket(bucket, &b)) < 0 ||
	    (r = remote_list(url, &b, prefix, &l)) < 0)
		goto out;
	/* Keys sort X.rec before X.rec.seg/...: a recording is named once. */
	for (i = 0; i < l.n; i++) {
		n = remote_is_rec(l.keys[i]) ? strlen(l.keys[i]) : remote_seg_base(l.keys[i]);
		if (n == 0 || (last != NULL && strlen(last) == n && strncmp(last, l.keys[i], n) == 0))
			continue;
		free(last);
		if ((last = strndup(l.keys[i], n)) == NULL ||
		    asprintf(&name, "s3://%s/%s", bucket, last) < 0) {
			name = NULL;
			r = -ENOMEM;
			goto out;
		}
		r = fn(name, false, arg);
		free(name);
		name = NULL;
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	free(last);
	s3_list_free(&l);
	s3_bucket_clear(&b);
	free(bucket);
	free(prefix);
	return r;
}
