/*
 * Object storage transfers: one libcurl easy handle per request on the
 * multi interface, its sockets and timeout driven by the broker's loop
 * (as curl's multi-uv example does); and the SHA-256 of what is uploaded,
 * computed on the thread pool.
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

#include "base/log.h"
#include "s3.h"
#include "storage/storage-s3-int.h"
#include "storage/storage.h"

/* ---- transfers ---- */

/* Free a transfer (removed from the multi handle). */
void
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
int
storage_xfer_start(struct storage_rec *r, enum storage_op op, char *key, const char *query,
    uint64_t off, uint64_t len, const char *sha256)
{
	static const char *const methods[] = {
		"PUT", "PUT", "HEAD", "GET", "DELETE", "POST", "PUT", "POST", "DELETE",
	};
	struct storage *st = r->st;
	struct storage_xfer *x;
	struct curl_slist *t;
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
	if (op == STORAGE_PUT_SEGMENT || op == STORAGE_PUT_FINAL || op == STORAGE_MP_PART) {
		curl_easy_setopt(x->h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(x->h, CURLOPT_READFUNCTION, storage_read_cb);
		curl_easy_setopt(x->h, CURLOPT_READDATA, x);
		curl_easy_setopt(x->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	} else if (op == STORAGE_MP_CREATE || op == STORAGE_MP_COMPLETE) {
		/*
		 * The object takes the type of the request that starts it: the
		 * one a single PUT gets, not libcurl's form type for a POST.
		 */
		if ((t = curl_slist_append(x->hdrs, op == STORAGE_MP_CREATE ?
		    "Content-Type: binary/octet-stream" : "Content-Type: application/xml")) == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
		x->hdrs = t;
		curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
		curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, op == STORAGE_MP_COMPLETE ?
		    r->complete_xml : "");
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

/* The upload to abort is aborted, gone, or given up. */
static void
storage_abort_forget(struct storage_rec *r)
{
	free(r->abort_id);
	r->abort_id = NULL;
	r->abort_refusals = 0;
	storage_upload_unnote(r);
}

/* The final object and everything after it are done: drop the spool file. */
void
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
	if (x->op == STORAGE_MP_ABORT) {
		if (ok || (cc == CURLE_OK && code == 404)) {
			/* Aborted, or no longer known to the service (completed, expired). */
			storage_succeeded(r, x->op, x->key);
			log_debug("storage: %s: upload %s aborted", x->key, r->abort_id);
			storage_abort_forget(r);
			goto out;
		}
		if (cc != CURLE_OK)
			snprintf(why, sizeof why, "%s", x->err[0] ? x->err : curl_easy_strerror(cc));
		else {
			s3_error_text(x->body.data, x->body.len, text, sizeof text);
			snprintf(why, sizeof why, "HTTP %ld%s%s", code, text[0] ? ": " : "", text);
		}
		storage_failed(r, x->op, x->key, why);
		/*
		 * No answer, or the service's own trouble (5xx, 429): asked again
		 * after the back-off, as any request. Refused (no
		 * s3:AbortMultipartUpload, not supported): asked STORAGE_ABORT_TRIES
		 * times, then left to the bucket's lifecycle rule, so that it never
		 * holds up the recording's own upload.
		 */
		if (cc == CURLE_OK && code < 500 && code != 429 &&
		    ++r->abort_refusals >= STORAGE_ABORT_TRIES) {
			log_warn("storage: the multipart upload %s of %s is left to the bucket's "
			    "lifecycle rule", r->abort_id, x->key);
			storage_abort_forget(r);
		}
		goto out;
	}
	if (ok && x->op == STORAGE_MP_COMPLETE &&
	    s3_complete_parse(x->body.data, x->body.len) < 0) {
		/* S3 answers 200 with an <Error> when completing fails late: try again. */
		s3_error_text(x->body.data, x->body.len, text, sizeof text);
		storage_failed(r, x->op, x->key, text[0] ? text :
		    "not a CompleteMultipartUpload answer");
		goto out;
	}
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
		if ((x->op == STORAGE_MP_PART || x->op == STORAGE_MP_COMPLETE) &&
		    cc == CURLE_OK && code == 404) {
			/* NoSuchUpload: aborted or expired; the next try starts anew. */
			storage_mp_forget(r);
			storage_upload_unnote(r);
		} else if (x->op == STORAGE_MP_COMPLETE && cc == CURLE_OK && code == 400) {
			/* The parts do not make an object (InvalidPart...): abort, then start anew. */
			r->abort_id = r->upload_id;
			r->upload_id = NULL;
			storage_mp_forget(r);
		}
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
	case STORAGE_MP_CREATE:
		if (s3_create_parse(x->body.data ? x->body.data : "", x->body.len,
		    &r->upload_id) < 0) {
			storage_failed(r, x->op, x->key, "not a CreateMultipartUpload answer");
			goto out;
		}
		r->nparts = (unsigned)((r->size + r->part_size - 1) / r->part_size);
		if ((r->etags = calloc(r->nparts, sizeof *r->etags)) == NULL) {
			storage_mp_forget(r);
			storage_failed(r, x->op, x->key, "out of memory");
			goto out;
		}
		storage_succeeded(r, x->op, x->key);
		log_debug("storage: %s: upload %s in %u parts of %" PRIu64 " bytes", x->key,
		    r->upload_id, r->nparts, r->part_size);
		/* Its id on disk first: the first part goes once the note is durable. */
		storage_upload_note(r);
		break;
	case STORAGE_MP_PART:
		{
			struct curl_header *etag = NULL;
			unsigned part = (unsigned)(x->off / r->part_size);

			if (curl_easy_header(x->h, "ETag", 0, CURLH_HEADER, -1, &etag) != CURLHE_OK ||
			    etag->value[0] == '\0') {
				storage_failed(r, x->op, x->key, "no ETag in the UploadPart answer");
				goto out;
			}
			if ((r->etags[part] = strdup(etag->value)) == NULL) {
				storage_failed(r, x->op, x->key, "out of memory");
				goto out;
			}
			storage_succeeded(r, x->op, x->key);
			log_debug("storage: %s part %u of %u (%" PRIu64 " bytes)", x->key, part + 1,
			    r->nparts, x->len);
		}
		break;
	case STORAGE_MP_COMPLETE:
		r->final_stored = true;
		storage_succeeded(r, x->op, x->key);
		{
			struct audit_field f[] = {
				AUDIT_STR("session", r->id),
				AUDIT_STR("object", x->key),
				AUDIT_STR("operation", storage_op_names[STORAGE_PUT_FINAL]),
				AUDIT_NUM("bytes", r->size),
				AUDIT_NUM("parts", r->nparts),
			};
			audit_event(st->audit, "storage_ok", f, sizeof f / sizeof f[0]);
		}
		log_info("storage: stored %s (%" PRIu64 " bytes in %u parts)", x->key, r->size,
		    r->nparts);
		storage_mp_forget(r);
		storage_upload_unnote(r);
		break;
	case STORAGE_MP_ABORT:
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
	if (r->busy)
		return;		/* writing the upload's note: steps on when it is done */
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
int
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
int
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
	char *key, *query = NULL;
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
	/* A part names its upload and its number (from 1). */
	if (r->hash_op == STORAGE_MP_PART && s3_upload_query(r->upload_id,
	    (unsigned)(r->hash_off / r->part_size) + 1, &query) < 0) {
		free(key);
		key = NULL;
	}
	if (key == NULL || (rc = storage_xfer_start(r, r->hash_op, key, query, r->hash_off,
	    r->hash_len, r->hash_hex)) < 0)
		storage_failed(r, r->hash_op, NULL, "out of memory");
	free(query);
}

/* Hash then upload [off, off + len) as a segment, the final object or one of its parts. */
void
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
