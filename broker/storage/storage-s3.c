/*
 * Shipping recordings to S3-compatible object storage: libcurl's multi
 * interface on the broker's libuv loop (as curl's multi-uv example does),
 * SigV4 by libcurl, hashing and STS on the thread pool.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "base.h"
#include "base/log.h"
#include "s3.h"
#include "storage/storage.h"

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

#define STORAGE_TICK_MS 250		/* how often recordings are looked at */
#define STORAGE_MAX_XFERS 4		/* requests in flight at once */
#define STORAGE_BACKOFF_MAX_MS 60000	/* longest wait between retries */
#define STORAGE_BODY_MAX (1u << 20)	/* largest answer body kept (lists, errors) */
#define STORAGE_CREDS_EARLY_S 300	/* renew web identity credentials this early */

/* What a transfer does. */
enum storage_op {
	STORAGE_PUT_SEGMENT,
	STORAGE_PUT_FINAL,
	STORAGE_HEAD_FINAL,
	STORAGE_LIST_SEGMENTS,
	STORAGE_DELETE_SEGMENT,
};

static const char *const storage_op_names[] = {
	"upload segment", "upload recording", "look up recording", "list segments",
	"delete segment",
};

struct storage;

/* One recording being shipped. */
struct storage_rec {
	TAILQ_ENTRY(storage_rec) entry;
	struct storage *st;
	char id[64];
	char *path;
	int fd;			/* read-only, for hashing and uploads; -1 until needed */
	uint64_t ckpt;		/* end of the latest checkpoint the writer reported */
	uint64_t shipped;	/* bytes [0, shipped) are in segment objects */
	uint64_t size;		/* the whole file, once done */
	uint64_t last_segment;	/* loop time (ms) of the last segment started */
	uint64_t retry_at;	/* loop time (ms) before which nothing is tried */
	unsigned attempts;	/* failures in a row */
	bool done;		/* the recording is closed */
	bool leftover;		/* found in the spool at start */
	bool checked;		/* leftover: the bucket was asked whether it holds it */
	bool final_stored;	/* PREFIX ID.rec holds the whole file */
	bool segments_gone;	/* no segment objects remain */
	bool busy;		/* hashing or a transfer in flight */
	bool closing;		/* the shipper stops: free when not busy */
	char **doomed;		/* segment keys still to delete */
	size_t ndoomed;
	uv_work_t work;		/* hashing */
	uint64_t hash_off, hash_len;
	int hash_err;
	char hash_hex[65];
	enum storage_op hash_op;
};
TAILQ_HEAD(storage_rec_list, storage_rec);

/* One HTTP request. */
struct storage_xfer {
	TAILQ_ENTRY(storage_xfer) entry;
	struct storage_rec *rec;
	enum storage_op op;
	CURL *h;
	struct curl_slist *hdrs;
	char *key;
	uint64_t off, len, sent;
	struct buf body;		/* an answer's body: lists and error messages */
	char err[CURL_ERROR_SIZE];
};
TAILQ_HEAD(storage_xfer_list, storage_xfer);

/* A socket libcurl asked the loop to watch. */
struct storage_sock {
	uv_poll_t poll;
	struct storage *st;
	curl_socket_t fd;
};

struct storage {
	uv_loop_t *loop;
	struct audit *audit;
	struct s3_bucket bucket;
	char *prefix;
	enum cfg_s3_creds creds_kind;
	char *access_key_file, *secret_key_file;
	struct s3_creds creds;
	bool creds_ok;
	bool creds_busy;	/* an STS call on the thread pool */
	uint64_t creds_retry_at;
	uv_work_t creds_work;
	struct s3_creds creds_new;
	int creds_err;
	char creds_why[256];
	uint64_t segment_ms;
	bool keep_local;
	char *spool;
	CURLM *multi;
	uv_timer_t tick;	/* looks at the recordings */
	uv_timer_t curl_timer;	/* libcurl's timeout */
	unsigned handles;	/* open uv handles (tick, curl_timer, polls) */
	unsigned works;		/* thread pool jobs in flight */
	bool closing;
	struct storage_rec_list recs;
	struct storage_xfer_list xfers;
	unsigned nxfers;
};

static void storage_kick(struct storage *st);
static void storage_rec_step(struct storage_rec *r);

/* Free the storage once every handle is closed and no job runs. */
static void
storage_maybe_free(struct storage *st)
{
	if (!st->closing || st->handles > 0 || st->works > 0 || !TAILQ_EMPTY(&st->recs))
		return;
	if (st->multi != NULL)
		curl_multi_cleanup(st->multi);
	s3_creds_clear(&st->creds);
	s3_bucket_clear(&st->bucket);
	free(st->prefix);
	free(st->access_key_file);
	free(st->secret_key_file);
	free(st->spool);
	free(st);
}

/* A handle of the storage finished closing. */
static void
storage_handle_closed_cb(uv_handle_t *h)
{
	struct storage *st;

	if (h->type == UV_POLL) {
		struct storage_sock *ss = h->data;

		st = ss->st;
		free(ss);
	} else
		st = h->data;
	st->handles--;
	storage_maybe_free(st);
}

/* Free a recording's state (not busy). */
static void
storage_rec_free(struct storage_rec *r)
{
	struct storage *st = r->st;
	size_t i;

	TAILQ_REMOVE(&st->recs, r, entry);
	if (r->fd >= 0)
		close(r->fd);
	for (i = 0; i < r->ndoomed; i++)
		free(r->doomed[i]);
	free(r->doomed);
	free(r->path);
	free(r);
	storage_maybe_free(st);
}

/* Object names: PREFIX ID.rec and PREFIX ID.rec.seg/OFFSET (20 digits, so names sort by offset). */
static char *
storage_key(const struct storage_rec *r, bool segment, uint64_t off)
{
	char *k = NULL;

	if ((segment ? asprintf(&k, "%s%s.rec.seg/%020" PRIu64, r->st->prefix, r->id, off) :
	    asprintf(&k, "%s%s.rec", r->st->prefix, r->id)) < 0)
		return NULL;
	return k;
}

/* ---- audit ---- */

/* A request failed: audit it and wait before the next try. */
static void
storage_failed(struct storage_rec *r, enum storage_op op, const char *key, const char *why)
{
	struct storage *st = r->st;
	uint64_t wait;

	r->attempts++;
	wait = 1000ull << (r->attempts > 6 ? 6 : r->attempts - 1);
	if (wait > STORAGE_BACKOFF_MAX_MS)
		wait = STORAGE_BACKOFF_MAX_MS;
	r->retry_at = uv_now(st->loop) + wait;
	log_warn("storage: %s %s failed (attempt %u), retrying in %" PRIu64 " s: %s",
	    storage_op_names[op], key ? key : r->id, r->attempts, wait / 1000, why);
	{
		struct audit_field f[] = {
			AUDIT_STR("session", r->id),
			AUDIT_STR("object", key ? key : ""),
			AUDIT_STR("operation", storage_op_names[op]),
			AUDIT_STR("error", why),
			AUDIT_NUM("attempt", r->attempts),
			AUDIT_NUM("retry_in_ms", wait),
		};
		audit_event(st->audit, "storage_failed", f, sizeof f / sizeof f[0]);
	}
}

/* A request succeeded: audit the end of a failure streak. */
static void
storage_succeeded(struct storage_rec *r, enum storage_op op, const char *key)
{
	if (r->attempts == 0)
		return;
	{
		struct audit_field f[] = {
			AUDIT_STR("session", r->id),
			AUDIT_STR("object", key ? key : ""),
			AUDIT_STR("operation", storage_op_names[op]),
			AUDIT_NUM("failed_attempts", r->attempts),
		};
		audit_event(r->st->audit, "storage_ok", f, sizeof f / sizeof f[0]);
	}
	r->attempts = 0;
}

/* ---- credentials ---- */

/* STS on the thread pool. */
static void
storage_creds_work_cb(uv_work_t *w)
{
	struct storage *st = w->data;

	st->creds_err = s3_creds_web_identity(st->bucket.region, &st->creds_new, st->creds_why,
	    sizeof st->creds_why);
}

/* STS answered (or failed). */
static void
storage_creds_after_cb(uv_work_t *w, int status)
{
	struct storage *st = w->data;

	st->works--;
	st->creds_busy = false;
	if (status == 0 && st->creds_err == 0) {
		s3_creds_clear(&st->creds);
		st->creds = st->creds_new;
		memset(&st->creds_new, 0, sizeof st->creds_new);
		st->creds_ok = true;
		log_info("storage: web identity credentials until %" PRIu64, st->creds.expires);
	} else {
		s3_creds_clear(&st->creds_new);
		st->creds_retry_at = uv_now(st->loop) + 10000;
		log_warn("storage: web identity: %s", status < 0 ? uv_strerror(status) :
		    st->creds_why);
		struct audit_field f[] = {
			AUDIT_STR("operation", "get credentials"),
			AUDIT_STR("error", status < 0 ? uv_strerror(status) : st->creds_why),
		};
		audit_event(st->audit, "storage_failed", f, 2);
	}
	if (st->closing)
		storage_maybe_free(st);
	else
		storage_kick(st);
}

/* Load or renew credentials; returns true when requests may go. */
static bool
storage_creds_ready(struct storage *st)
{
	uint64_t now_s = (uint64_t)time(NULL);
	int r;

	if (st->creds_kind != CFG_S3_CREDS_WEB_IDENTITY)
		return st->creds_ok;
	if (st->creds_ok && (st->creds.expires == 0 ||
	    st->creds.expires > now_s + STORAGE_CREDS_EARLY_S))
		return true;
	if (!st->creds_busy && uv_now(st->loop) >= st->creds_retry_at) {
		st->creds_work.data = st;
		if ((r = uv_queue_work(st->loop, &st->creds_work, storage_creds_work_cb,
		    storage_creds_after_cb)) == 0) {
			st->creds_busy = true;
			st->works++;
		} else
			log_warn("storage: cannot ask STS: %s", uv_strerror(r));
	}
	/* Expiring credentials still work until they expire. */
	return st->creds_ok && st->creds.expires > now_s + 30;
}

/* Read the credentials of env or files (again: a Secret's files may have been rotated). */
static int
storage_creds_load(struct storage *st)
{
	struct s3_creds c;
	int r;

	if (st->creds_kind == CFG_S3_CREDS_WEB_IDENTITY)
		return 0;
	r = st->creds_kind == CFG_S3_CREDS_ENV ? s3_creds_from_env(&c) :
	    s3_creds_from_files(st->access_key_file, st->secret_key_file, &c);
	if (r < 0)
		return r;
	s3_creds_clear(&st->creds);
	st->creds = c;
	st->creds_ok = true;
	return 0;
}

/* ---- transfers ---- */

/* Free a transfer (removed from the multi handle). */
static void
storage_xfer_free(struct storage_xfer *x)
{
	struct storage *st = x->rec->st;

	TAILQ_REMOVE(&st->xfers, x, entry);
	st->nxfers--;
	if (x->h != NULL) {
		curl_multi_remove_handle(st->multi, x->h);
		curl_easy_cleanup(x->h);
	}
	curl_slist_free_all(x->hdrs);
	free(x->key);
	buf_free(&x->body);
	free(x);
}

/* libcurl wants body bytes: read them from the spool file. */
static size_t
storage_read_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct storage_xfer *x = arg;
	uint64_t left = x->len - x->sent;
	ssize_t got;

	n *= size;
	if (n > left)
		n = (size_t)left;
	if (n == 0)
		return 0;
	do
		got = pread(x->rec->fd, buf, n, (off_t)(x->off + x->sent));
	while (got < 0 && errno == EINTR);
	if (got <= 0) {
		snprintf(x->err, sizeof x->err, "reading %s: %s", x->rec->path,
		    got < 0 ? strerror(errno) : "the file is shorter than expected");
		return CURL_READFUNC_ABORT;
	}
	x->sent += (uint64_t)got;
	return (size_t)got;
}

/* Keep an answer's body (lists and error messages), up to STORAGE_BODY_MAX. */
static size_t
storage_write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct storage_xfer *x = arg;

	n *= size;
	if (x->body.len + n > STORAGE_BODY_MAX)
		return 0;
	buf_add(&x->body, p, n);
	return x->body.oom ? 0 : n;
}

/* Start one request for r. Returns 0, or a negative errno (r is then not busy). */
static int
storage_xfer_start(struct storage_rec *r, enum storage_op op, char *key, const char *query,
    uint64_t off, uint64_t len, const char *sha256)
{
	static const char *const methods[] = { "PUT", "PUT", "HEAD", "GET", "DELETE" };
	struct storage *st = r->st;
	struct storage_xfer *x;
	int rc;

	if ((x = calloc(1, sizeof *x)) == NULL) {
		free(key);
		return -ENOMEM;
	}
	x->rec = r;
	x->op = op;
	x->key = key;
	x->off = off;
	x->len = len;
	TAILQ_INSERT_TAIL(&st->xfers, x, entry);
	st->nxfers++;
	if ((x->h = curl_easy_init()) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = s3_request(x->h, &st->bucket, &st->creds, methods[op],
	    op == STORAGE_LIST_SEGMENTS ? "" : key, query, sha256, &x->hdrs)) < 0)
		goto fail;
	curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->err);
	curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, storage_write_cb);
	curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT, 10L);
	/* A server that stops answering is a failure, not a wait forever. */
	curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_TIME, 30L);
	if (op == STORAGE_PUT_SEGMENT || op == STORAGE_PUT_FINAL) {
		curl_easy_setopt(x->h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(x->h, CURLOPT_READFUNCTION, storage_read_cb);
		curl_easy_setopt(x->h, CURLOPT_READDATA, x);
		curl_easy_setopt(x->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	}
	if (curl_multi_add_handle(st->multi, x->h) != CURLM_OK) {
		rc = -ENOMEM;
		goto fail;
	}
	r->busy = true;
	return 0;
fail:
	storage_xfer_free(x);
	return rc;
}

/* A list of segments arrived: keep the keys to delete. */
static int
storage_take_list(struct storage_rec *r, struct storage_xfer *x)
{
	struct s3_list l;
	int rc;

	if ((rc = s3_list_parse(x->body.data ? x->body.data : "", x->body.len, &l)) < 0)
		return rc;
	free(r->doomed);	/* emptied by the deletes of the previous page */
	r->doomed = l.keys;
	r->ndoomed = l.n;
	l.keys = NULL;
	l.n = 0;
	s3_list_free(&l);
	if (r->ndoomed == 0)
		r->segments_gone = true;
	return 0;
}

/* The final object and everything after it are done: drop the spool file. */
static void
storage_rec_finished(struct storage_rec *r)
{
	struct storage *st = r->st;

	if (!st->keep_local && unlink(r->path) < 0 && errno != ENOENT)
		log_warn("storage: cannot remove %s: %s", r->path, strerror(errno));
	storage_rec_free(r);
}

/* A transfer ended: see how, and move its recording on. */
static void
storage_xfer_done(struct storage_xfer *x, CURLcode cc)
{
	struct storage_rec *r = x->rec;
	struct storage *st = r->st;
	long code = 0;
	char why[512], text[256];
	bool ok;
	size_t i;

	r->busy = false;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
	ok = cc == CURLE_OK && code >= 200 && code < 300;
	if (x->op == STORAGE_HEAD_FINAL && cc == CURLE_OK && (code == 404 || code == 403)) {
		/* Not in the bucket yet (403: not allowed to know): upload it. */
		r->checked = true;
		storage_succeeded(r, x->op, x->key);
		goto out;
	}
	if (x->op == STORAGE_DELETE_SEGMENT && cc == CURLE_OK && code == 404)
		ok = true;	/* already gone */
	if (!ok) {
		if (cc != CURLE_OK)
			snprintf(why, sizeof why, "%s", x->err[0] ? x->err : curl_easy_strerror(cc));
		else {
			s3_error_text(x->body.data, x->body.len, text, sizeof text);
			snprintf(why, sizeof why, "HTTP %ld%s%s", code, text[0] ? ": " : "", text);
			/* Files of a Secret may have been rotated. */
			if ((code == 401 || code == 403) && storage_creds_load(st) < 0)
				log_warn("storage: cannot read the credentials again");
		}
		storage_failed(r, x->op, x->key, why);
		goto out;
	}
	switch (x->op) {
	case STORAGE_PUT_SEGMENT:
		r->shipped = x->off + x->len;
		storage_succeeded(r, x->op, x->key);
		log_debug("storage: %s (%" PRIu64 " bytes)", x->key, x->len);
		break;
	case STORAGE_PUT_FINAL:
		r->final_stored = true;
		storage_succeeded(r, x->op, x->key);
		{
			struct audit_field f[] = {
				AUDIT_STR("session", r->id),
				AUDIT_STR("object", x->key),
				AUDIT_STR("operation", storage_op_names[x->op]),
				AUDIT_NUM("bytes", x->len),
			};
			audit_event(st->audit, "storage_ok", f, sizeof f / sizeof f[0]);
		}
		log_info("storage: stored %s (%" PRIu64 " bytes)", x->key, x->len);
		break;
	case STORAGE_HEAD_FINAL:
		r->checked = true;
		{
			curl_off_t len = -1;

			curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
			r->final_stored = len >= 0 && (uint64_t)len == r->size;
		}
		storage_succeeded(r, x->op, x->key);
		break;
	case STORAGE_LIST_SEGMENTS:
		if (storage_take_list(r, x) < 0) {
			storage_failed(r, x->op, x->key, "not a ListObjectsV2 answer");
			goto out;
		}
		storage_succeeded(r, x->op, x->key);
		break;
	case STORAGE_DELETE_SEGMENT:
		for (i = 0; i < r->ndoomed; i++) {
			if (strcmp(r->doomed[i], x->key) == 0) {
				free(r->doomed[i]);
				r->doomed[i] = r->doomed[--r->ndoomed];
				break;
			}
		}
		storage_succeeded(r, x->op, x->key);
		break;
	}
out:
	storage_xfer_free(x);
	if (r->closing)
		storage_rec_free(r);
	else
		storage_rec_step(r);
}

/* Collect the transfers libcurl finished. */
static void
storage_check_done(struct storage *st)
{
	struct storage_xfer *x;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(st->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		x = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x != NULL)
			storage_xfer_done(x, m->data.result);
	}
}

/* A watched socket is ready. */
static void
storage_poll_cb(uv_poll_t *p, int status, int events)
{
	struct storage_sock *ss = p->data;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(ss->st->multi, ss->fd, flags, &running);
	storage_check_done(ss->st);
}

/* libcurl's timeout expired. */
static void
storage_curl_timeout_cb(uv_timer_t *t)
{
	struct storage *st = t->data;
	int running;

	curl_multi_socket_action(st->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	storage_check_done(st);
}

/* libcurl asks for a timeout. */
static int
storage_curl_timer_cb(CURLM *m, long timeout_ms, void *arg)
{
	struct storage *st = arg;

	if (st->closing)
		return 0;
	if (timeout_ms < 0)
		uv_timer_stop(&st->curl_timer);
	else
		uv_timer_start(&st->curl_timer, storage_curl_timeout_cb, (uint64_t)timeout_ms, 0);
	return 0;
}

/* libcurl asks to watch (or stop watching) a socket. */
static int
storage_curl_socket_cb(CURL *e, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct storage *st = arg;
	struct storage_sock *ss = sockp;
	int events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (ss != NULL) {
			uv_poll_stop(&ss->poll);
			uv_close((uv_handle_t *)&ss->poll, storage_handle_closed_cb);
			if (!st->closing)
				curl_multi_assign(st->multi, fd, NULL);
		}
		return 0;
	}
	if (ss == NULL) {
		if ((ss = calloc(1, sizeof *ss)) == NULL)
			return -1;
		ss->st = st;
		ss->fd = fd;
		if (uv_poll_init_socket(st->loop, &ss->poll, fd) < 0) {
			free(ss);
			return -1;
		}
		ss->poll.data = ss;
		st->handles++;
		curl_multi_assign(st->multi, fd, ss);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&ss->poll, events, storage_poll_cb);
	return 0;
}

/* ---- hashing (thread pool) ---- */

/* SHA-256 of [hash_off, hash_off + hash_len) of the file. */
static void
storage_hash_work_cb(uv_work_t *w)
{
	struct storage_rec *r = w->data;
	unsigned char buf[1 << 16], md[32];
	uint64_t done = 0;
	EVP_MD_CTX *ctx;
	ssize_t got;
	size_t want, i;

	r->hash_err = 0;
	if ((ctx = EVP_MD_CTX_new()) == NULL || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		r->hash_err = -ENOMEM;
		goto out;
	}
	while (done < r->hash_len) {
		want = r->hash_len - done < sizeof buf ? (size_t)(r->hash_len - done) : sizeof buf;
		got = pread(r->fd, buf, want, (off_t)(r->hash_off + done));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			r->hash_err = got < 0 ? -errno : -ENODATA;
			goto out;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)got);
		done += (uint64_t)got;
	}
	EVP_DigestFinal_ex(ctx, md, NULL);
	for (i = 0; i < 32; i++)
		snprintf(r->hash_hex + 2 * i, 3, "%02x", md[i]);
out:
	EVP_MD_CTX_free(ctx);
}

/* The hash is ready: upload the bytes it covers. */
static void
storage_hash_after_cb(uv_work_t *w, int status)
{
	struct storage_rec *r = w->data;
	struct storage *st = r->st;
	char *key;
	int rc;

	st->works--;
	r->busy = false;
	if (r->closing) {
		storage_rec_free(r);
		return;
	}
	key = storage_key(r, r->hash_op == STORAGE_PUT_SEGMENT, r->hash_off);
	if (status < 0 || r->hash_err < 0) {
		storage_failed(r, r->hash_op, key, status < 0 ? uv_strerror(status) :
		    strerror(-r->hash_err));
		free(key);
		return;
	}
	if (key == NULL || (rc = storage_xfer_start(r, r->hash_op, key, NULL, r->hash_off,
	    r->hash_len, r->hash_hex)) < 0)
		storage_failed(r, r->hash_op, NULL, "out of memory");
}

/* Hash then upload [off, off + len) as a segment or as the final object. */
static void
storage_upload(struct storage_rec *r, enum storage_op op, uint64_t off, uint64_t len)
{
	struct storage *st = r->st;
	int rc;

	r->hash_op = op;
	r->hash_off = off;
	r->hash_len = len;
	r->work.data = r;
	if ((rc = uv_queue_work(st->loop, &r->work, storage_hash_work_cb,
	    storage_hash_after_cb)) < 0) {
		storage_failed(r, op, NULL, uv_strerror(rc));
		return;
	}
	st->works++;
	r->busy = true;
}

/* ---- the state of one recording ---- */

/* Open the spool file for reading, once. */
static int
storage_rec_open(struct storage_rec *r)
{
	struct stat sb;

	if (r->fd < 0 && (r->fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return -errno;
	if (r->done) {
		if (fstat(r->fd, &sb) < 0)
			return -errno;
		r->size = (uint64_t)sb.st_size;
	}
	return 0;
}

/* Do the next thing a recording needs, unless it waits. */
static void
storage_rec_step(struct storage_rec *r)
{
	struct storage *st = r->st;
	uint64_t now = uv_now(st->loop);
	char *key, *query = NULL;
	int rc;

	if (r->busy || r->closing || st->closing || now < r->retry_at ||
	    st->nxfers + st->works >= STORAGE_MAX_XFERS || !storage_creds_ready(st))
		return;
	if (!r->done) {
		/* Live: the bytes up to the latest checkpoint, every half segment_seconds. */
		if (r->ckpt > r->shipped && now - r->last_segment >= st->segment_ms / 2) {
			if ((rc = storage_rec_open(r)) < 0) {
				storage_failed(r, STORAGE_PUT_SEGMENT, NULL, strerror(-rc));
				return;
			}
			r->last_segment = now;
			storage_upload(r, STORAGE_PUT_SEGMENT, r->shipped, r->ckpt - r->shipped);
		}
		return;
	}
	if (r->fd < 0 || r->size == 0) {
		if ((rc = storage_rec_open(r)) < 0) {
			if (rc == -ENOENT) {
				log_warn("storage: %s is gone from the spool", r->path);
				storage_rec_free(r);
				return;
			}
			storage_failed(r, STORAGE_PUT_FINAL, NULL, strerror(-rc));
			return;
		}
	}
	if (r->leftover && !r->checked && !r->final_stored) {
		/* A file from an earlier run may be stored already (keep_local, or a crash before unlink). */
		if ((key = storage_key(r, false, 0)) == NULL ||
		    storage_xfer_start(r, STORAGE_HEAD_FINAL, key, NULL, 0, 0, NULL) < 0)
			storage_failed(r, STORAGE_HEAD_FINAL, NULL, "out of memory");
		return;
	}
	if (!r->final_stored) {
		storage_upload(r, STORAGE_PUT_FINAL, 0, r->size);
		return;
	}
	if (r->ndoomed > 0) {
		key = strdup(r->doomed[r->ndoomed - 1]);
		if (key == NULL || storage_xfer_start(r, STORAGE_DELETE_SEGMENT, key, NULL, 0, 0,
		    NULL) < 0)
			storage_failed(r, STORAGE_DELETE_SEGMENT, NULL, "out of memory");
		return;
	}
	if (!r->segments_gone) {
		/* List what segments remain (a page at a time) and delete them. */
		if ((key = storage_key(r, true, 0)) == NULL) {
			storage_failed(r, STORAGE_LIST_SEGMENTS, NULL, "out of memory");
			return;
		}
		key[strlen(key) - 20] = '\0';	/* PREFIX ID.rec.seg/ */
		if ((rc = s3_list_query(key, NULL, &query)) < 0 ||
		    storage_xfer_start(r, STORAGE_LIST_SEGMENTS, key, query, 0, 0, NULL) < 0)
			storage_failed(r, STORAGE_LIST_SEGMENTS, NULL, "out of memory");
		free(query);
		return;
	}
	storage_rec_finished(r);
}

/* Look at every recording. */
static void
storage_kick(struct storage *st)
{
	struct storage_rec *r, *tmp;

	TAILQ_FOREACH_SAFE(r, &st->recs, entry, tmp)
		storage_rec_step(r);
}

/* The periodic look. */
static void
storage_tick_cb(uv_timer_t *t)
{
	storage_kick(t->data);
}

/* ---- the API ---- */

/* A new recording to ship. */
static struct storage_rec *
storage_rec_new(struct storage *st, const char *id, const char *path)
{
	struct storage_rec *r;

	if (strlen(id) >= sizeof r->id || (r = calloc(1, sizeof *r)) == NULL)
		return NULL;
	if ((r->path = strdup(path)) == NULL) {
		free(r);
		return NULL;
	}
	snprintf(r->id, sizeof r->id, "%s", id);
	r->st = st;
	r->fd = -1;
	r->last_segment = uv_now(st->loop);
	TAILQ_INSERT_TAIL(&st->recs, r, entry);
	return r;
}

/* Whether name is ID.rec with ID a session id (36 of [0-9a-f-]). */
static bool
storage_spool_name(const char *name, char id[37])
{
	size_t n = strlen(name);

	if (n != 40 || strcmp(name + 36, ".rec") != 0 ||
	    strspn(name, "0123456789abcdef-") != 36)
		return false;
	memcpy(id, name, 36);
	id[36] = '\0';
	return true;
}

/* Queue the files an earlier run left in the spool. */
static void
storage_scan_spool(struct storage *st)
{
	struct dirent **ents = NULL;
	struct storage_rec *r;
	struct stat sb;
	char id[37], *path;
	int n, i;

	if ((n = scandir(st->spool, &ents, NULL, alphasort)) < 0) {
		if (errno != ENOENT)
			log_warn("storage: cannot read the spool %s: %s", st->spool, strerror(errno));
		return;
	}
	for (i = 0; i < n; i++) {
		if (storage_spool_name(ents[i]->d_name, id) &&
		    asprintf(&path, "%s/%s", st->spool, ents[i]->d_name) >= 0) {
			if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
			    (r = storage_rec_new(st, id, path)) != NULL) {
				r->done = true;
				r->leftover = true;
			}
			free(path);
		}
		free(ents[i]);
	}
	free(ents);
	i = 0;
	TAILQ_FOREACH(r, &st->recs, entry)
		i++;
	if (i > 0)
		log_info("storage: %d recording(s) in the spool to ship", i);
}

/* Start shipping. */
int
storage_open(uv_loop_t *loop, const struct cfg_s3 *cfg, const char *spool, struct audit *audit,
    struct storage **out)
{
	struct storage *st;
	int r;

	*out = NULL;
	if ((st = calloc(1, sizeof *st)) == NULL)
		return -ENOMEM;
	st->loop = loop;
	st->audit = audit;
	TAILQ_INIT(&st->recs);
	TAILQ_INIT(&st->xfers);
	st->creds_kind = cfg->credentials;
	st->segment_ms = (uint64_t)cfg->segment_seconds * 1000;
	st->keep_local = cfg->keep_local;
	if ((r = s3_bucket_set(&st->bucket, cfg->endpoint, cfg->region, cfg->bucket,
	    cfg->path_style)) < 0) {
		log_error("storage: bad endpoint or bucket");
		goto fail;
	}
	r = -ENOMEM;
	if ((st->prefix = strdup(cfg->prefix ? cfg->prefix : "")) == NULL ||
	    (st->spool = strdup(spool)) == NULL ||
	    (cfg->access_key_file != NULL &&
	    (st->access_key_file = strdup(cfg->access_key_file)) == NULL) ||
	    (cfg->secret_key_file != NULL &&
	    (st->secret_key_file = strdup(cfg->secret_key_file)) == NULL))
		goto fail;
	if ((r = storage_creds_load(st)) < 0) {
		if (cfg->credentials == CFG_S3_CREDS_ENV)
			log_error("storage: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set "
			    "(storage.s3.credentials: env)");
		else
			log_error("storage: cannot read the credentials files %s and %s: %s",
			    st->access_key_file, st->secret_key_file, strerror(-r));
		goto fail;
	}
	if (cfg->credentials == CFG_S3_CREDS_WEB_IDENTITY &&
	    (getenv("AWS_ROLE_ARN") == NULL || getenv("AWS_WEB_IDENTITY_TOKEN_FILE") == NULL)) {
		log_error("storage: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE must be set "
		    "(storage.s3.credentials: web_identity)");
		r = -ENOKEY;
		goto fail;
	}
	/* Before any thread runs: libcurl's global set-up is not thread-safe. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (st->multi = curl_multi_init()) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	curl_multi_setopt(st->multi, CURLMOPT_SOCKETFUNCTION, storage_curl_socket_cb);
	curl_multi_setopt(st->multi, CURLMOPT_SOCKETDATA, st);
	curl_multi_setopt(st->multi, CURLMOPT_TIMERFUNCTION, storage_curl_timer_cb);
	curl_multi_setopt(st->multi, CURLMOPT_TIMERDATA, st);
	uv_timer_init(loop, &st->tick);
	uv_timer_init(loop, &st->curl_timer);
	st->tick.data = st->curl_timer.data = st;
	st->handles = 2;
	storage_scan_spool(st);
	uv_timer_start(&st->tick, storage_tick_cb, 0, STORAGE_TICK_MS);
	log_info("storage: shipping recordings to %s bucket %s prefix \"%s\" every %u s",
	    st->bucket.endpoint, st->bucket.name, st->prefix, cfg->segment_seconds);
	*out = st;
	return 0;
fail:
	if (st->multi != NULL)
		curl_multi_cleanup(st->multi);
	s3_creds_clear(&st->creds);
	s3_bucket_clear(&st->bucket);
	free(st->prefix);
	free(st->spool);
	free(st->access_key_file);
	free(st->secret_key_file);
	free(st);
	return r;
}

/* A session's recording to ship while it grows. */
struct storage_rec *
storage_track(struct storage *st, const char *id, const char *path)
{
	struct storage_rec *r;

	if (st == NULL || st->closing)
		return NULL;
	if ((r = storage_rec_new(st, id, path)) == NULL)
		log_warn("storage: out of memory: %s is shipped by the next start", path);
	return r;
}

/* A checkpoint ends at offset. */
void
storage_checkpoint(struct storage_rec *r, uint64_t offset)
{
	if (r != NULL && offset > r->ckpt)
		r->ckpt = offset;
}

/* The recording is closed: ship it whole. */
void
storage_done(struct storage_rec *r)
{
	if (r == NULL)
		return;
	r->done = true;
	storage_rec_step(r);
}

/* Stop shipping and free everything once closed. */
void
storage_close(struct storage *st)
{
	struct storage_rec *r, *rtmp;

	if (st == NULL || st->closing)
		return;
	st->closing = true;
	while (!TAILQ_EMPTY(&st->xfers)) {
		struct storage_xfer *x = TAILQ_FIRST(&st->xfers);

		x->rec->busy = false;
		storage_xfer_free(x);
	}
	/* Closes the connections it keeps; their poll handles close through the socket callback. */
	curl_multi_cleanup(st->multi);
	st->multi = NULL;
	TAILQ_FOREACH_SAFE(r, &st->recs, entry, rtmp) {
		if (r->busy)
			r->closing = true;	/* hashing: freed when it ends */
		else
			storage_rec_free(r);
	}
	uv_timer_stop(&st->tick);
	uv_timer_stop(&st->curl_timer);
	uv_close((uv_handle_t *)&st->tick, storage_handle_closed_cb);
	uv_close((uv_handle_t *)&st->curl_timer, storage_handle_closed_cb);
}
