/*
 * Shipping recordings to S3-compatible object storage: libcurl's multi
 * interface on the broker's libuv loop (as curl's multi-uv example does),
 * SigV4 by libcurl, hashing and STS on the thread pool. This file keeps
 * each recording's state, the credentials and the API; the requests and
 * the hashing are storage-xfer.c's.
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

const char *const storage_op_names[] = {
	"upload segment", "upload recording", "look up recording", "list segments",
	"delete segment", "start multipart upload", "upload part", "complete multipart upload",
	"abort multipart upload",
};

static void storage_kick(struct storage *st);

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
void
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
void
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
	storage_mp_forget(r);
	free(r->abort_id);
	free(r->path);
	free(r);
	storage_maybe_free(st);
}

/*
 * Forget the multipart upload of r and its parts (stored, given up, or
 * lost). What the service keeps of an upload that is neither completed nor
 * aborted is invisible to readers.
 */
void
storage_mp_forget(struct storage_rec *r)
{
	unsigned i;

	if (r->etags != NULL) {
		for (i = 0; i < r->nparts; i++)
			free(r->etags[i]);
		free(r->etags);
	}
	r->etags = NULL;
	r->nparts = 0;
	free(r->upload_id);
	r->upload_id = NULL;
	free(r->complete_xml);
	r->complete_xml = NULL;
	r->complete_len = 0;
}

/*
 * The id of a multipart upload in progress is kept beside the spool file,
 * in ID.rec.upload, until the upload is completed or aborted: a broker
 * restarted after a stop or a crash aborts the upload it left instead of
 * leaving its parts in the bucket, unseen and paid for.
 */
static char *
storage_upload_path(const char *rec_path)
{
	char *p;

	return asprintf(&p, "%s.upload", rec_path) < 0 ? NULL : p;
}

/*
 * Write the note of r's upload: a new file, fsync'd, renamed over the old
 * one, then the directory fsync'd, so that the note outlives a crash of
 * the machine right after. Runs on the thread pool (storage_upload_note);
 * returns 0 or -errno.
 */
static int
storage_note_write(const char *rec_path, const char *upload_id)
{
	char *path = NULL, *tmp = NULL, *dir = NULL, *slash;
	size_t n = strlen(upload_id);
	int fd = -1, dfd = -1, rc = 0;

	if ((path = storage_upload_path(rec_path)) == NULL || (dir = strdup(rec_path)) == NULL ||
	    asprintf(&tmp, "%s.tmp", path) < 0) {
		tmp = NULL;
		rc = -ENOMEM;
		goto out;
	}
	if ((slash = strrchr(dir, '/')) == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	errno = 0;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0 ||
	    write(fd, upload_id, n) != (ssize_t)n || write(fd, "\n", 1) != 1 || fsync(fd) < 0) {
		rc = errno ? -errno : -EIO;
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto out;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(dfd) < 0)
		rc = -errno;
out:
	if (fd >= 0) {
		close(fd);
		(void)unlink(tmp);
	}
	if (dfd >= 0)
		close(dfd);
	free(dir);
	free(tmp);
	free(path);
	return rc;
}

/* The note is written (thread pool). */
static void
storage_note_work_cb(uv_work_t *w)
{
	struct storage_rec *r = w->data;

	r->note_err = storage_note_write(r->path, r->upload_id);
}

/* The note is on disk (or could not be written): the parts may go. */
static void
storage_note_after_cb(uv_work_t *w, int status)
{
	struct storage_rec *r = w->data;
	struct storage *st = r->st;

	st->works--;
	r->busy = false;
	if (status < 0 || r->note_err < 0)
		log_warn("storage: cannot note the multipart upload %s of %s: %s", r->upload_id,
		    r->path, status < 0 ? uv_strerror(status) : strerror(-r->note_err));
	if (r->closing) {
		storage_rec_free(r);
		return;
	}
	storage_rec_step(r);
}

/*
 * Note the upload id of r durably before any of its parts is sent, off
 * the loop as the recordings' own fsyncs are; r is busy meanwhile. A
 * failure only loses the note (logged): the upload goes on, and what a
 * crash would then leave is the bucket's lifecycle rule's to remove.
 */
void
storage_upload_note(struct storage_rec *r)
{
	struct storage *st = r->st;
	int rc;

	r->work.data = r;
	if ((rc = uv_queue_work(st->loop, &r->work, storage_note_work_cb,
	    storage_note_after_cb)) < 0) {
		/* No thread pool: written in place, on the loop. */
		if ((rc = storage_note_write(r->path, r->upload_id)) < 0)
			log_warn("storage: cannot note the multipart upload %s of %s: %s",
			    r->upload_id, r->path, strerror(-rc));
		return;
	}
	st->works++;
	r->busy = true;
}

/* The upload noted for r is completed, aborted or gone. */
void
storage_upload_unnote(struct storage_rec *r)
{
	char *path = storage_upload_path(r->path);

	if (path != NULL && unlink(path) < 0 && errno != ENOENT)
		log_warn("storage: cannot remove %s: %s", path, strerror(errno));
	free(path);
}

/* The upload id noted beside rec_path by an earlier run, or NULL. */
static char *
storage_upload_noted(const char *rec_path)
{
	char *path = storage_upload_path(rec_path), buf[1100], *id = NULL;
	ssize_t n = -1;
	int fd;

	if (path != NULL && (fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
		n = read(fd, buf, sizeof buf - 1);
		close(fd);
	}
	if (n > 0) {
		buf[n] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		/* An S3 upload id: printable, no space, bounded. */
		if (buf[0] != '\0' && strlen(buf) <= 1024 &&
		    strspn(buf, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-._~+/=") == strlen(buf))
			id = strdup(buf);
		else
			log_warn("storage: %s does not hold an upload id; ignored", path);
	}
	free(path);
	return id;
}

/* Object names: PREFIX ID.rec and PREFIX ID.rec.seg/OFFSET (20 digits, so names sort by offset). */
char *
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
void
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
void
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
int
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

/*
 * The next step of a final object sent in parts: start the upload, send
 * the first part not stored yet (hashed first, as every PUT), or complete
 * it. Parts are read from the spool file as they are sent, never held.
 */
static void
storage_mp_step(struct storage_rec *r)
{
	struct storage *st = r->st;
	unsigned char md[32];
	char hex[65], *key, *query = NULL;
	uint64_t off;
	unsigned i;

	if (r->upload_id == NULL) {
		/* The configured part size, larger when the file needs more parts than S3 allows. */
		r->part_size = st->part_size;
		if ((r->size + r->part_size - 1) / r->part_size > S3_PARTS_MAX) {
			r->part_size = (r->size + S3_PARTS_MAX - 1) / S3_PARTS_MAX;
			r->part_size = (r->part_size + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
		}
		if ((key = storage_key(r, false, 0)) == NULL ||
		    storage_xfer_start(r, STORAGE_MP_CREATE, key, "uploads=", 0, 0, NULL) < 0)
			storage_failed(r, STORAGE_MP_CREATE, NULL, "out of memory");
		return;
	}
	for (i = 0; i < r->nparts && r->etags[i] != NULL; i++)
		;
	if (i < r->nparts) {
		off = (uint64_t)i * r->part_size;
		storage_upload(r, STORAGE_MP_PART, off,
		    r->size - off < r->part_size ? r->size - off : r->part_size);
		return;
	}
	if (r->complete_xml == NULL && s3_complete_body(r->etags, r->nparts, &r->complete_xml,
	    &r->complete_len) < 0) {
		storage_failed(r, STORAGE_MP_COMPLETE, NULL, "out of memory");
		return;
	}
	if (!EVP_Digest(r->complete_xml, r->complete_len, md, NULL, EVP_sha256(), NULL)) {
		storage_failed(r, STORAGE_MP_COMPLETE, NULL, "cannot hash the request");
		return;
	}
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	if ((key = storage_key(r, false, 0)) == NULL ||
	    s3_upload_query(r->upload_id, 0, &query) < 0 ||
	    storage_xfer_start(r, STORAGE_MP_COMPLETE, key, query, 0, r->complete_len, hex) < 0) {
		if (query == NULL)
			free(key);
		storage_failed(r, STORAGE_MP_COMPLETE, NULL, "out of memory");
	}
	free(query);
}

/* Abort an upload given up or left by an earlier run (storage_xfer_done says when to try again). */
static void
storage_mp_abort(struct storage_rec *r)
{
	char *key, *query = NULL;

	if ((key = storage_key(r, false, 0)) == NULL ||
	    s3_upload_query(r->abort_id, 0, &query) < 0 ||
	    storage_xfer_start(r, STORAGE_MP_ABORT, key, query, 0, 0, NULL) < 0) {
		if (query == NULL)
			free(key);
		storage_failed(r, STORAGE_MP_ABORT, NULL, "out of memory");
	}
	free(query);
}

/* Do the next thing a recording needs, unless it waits. */
void
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
	if (r->abort_id != NULL) {
		storage_mp_abort(r);
		return;
	}
	if (!r->final_stored) {
		if (r->size > st->mp_threshold)
			storage_mp_step(r);
		else
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

/* Whether name is ID.rec.upload. */
static bool
storage_orphan_note(const char *name)
{
	char id[37], rec[41];

	if (strlen(name) != 47 || strcmp(name + 40, ".upload") != 0)
		return false;
	memcpy(rec, name, 40);
	rec[40] = '\0';
	return storage_spool_name(rec, id);
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
				/* An upload the earlier run left: aborted before anything else. */
				r->abort_id = storage_upload_noted(path);
			}
			free(path);
		} else if (storage_orphan_note(ents[i]->d_name) &&
		    asprintf(&path, "%s/%s", st->spool, ents[i]->d_name) >= 0) {
			/* Its recording was stored and removed: the upload is completed. */
			char *rec = strndup(path, strlen(path) - strlen(".upload"));

			if (rec != NULL && access(rec, F_OK) < 0 && errno == ENOENT)
				(void)unlink(path);
			free(rec);
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
	st->mp_threshold = cfg->multipart_threshold ? cfg->multipart_threshold : 5ull << 30;
	st->part_size = cfg->part_size ? cfg->part_size : 64ull << 20;
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
			r->closing = true;	/* hashing or noting: freed when it ends */
		else
			storage_rec_free(r);
	}
	uv_timer_stop(&st->tick);
	uv_timer_stop(&st->curl_timer);
	uv_close((uv_handle_t *)&st->tick, storage_handle_closed_cb);
	uv_close((uv_handle_t *)&st->curl_timer, storage_handle_closed_cb);
}
