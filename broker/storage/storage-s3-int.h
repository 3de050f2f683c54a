/*
 * Inside the object storage shipper (storage-s3.c: recordings, credentials
 * and the API; storage-xfer.c: transfers on the loop and hashing). Not for
 * use elsewhere: storage.h is the interface.
 */
#ifndef PODGATE_STORAGE_S3_INT_H
#define PODGATE_STORAGE_S3_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <curl/curl.h>
#include <uv.h>

#include "base.h"
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
#define STORAGE_ABORT_TRIES 3		/* refusals of an abort before it is left to the lifecycle rule */
#define STORAGE_BODY_MAX (1u << 20)	/* largest answer body kept (lists, errors) */
#define STORAGE_CREDS_EARLY_S 300	/* renew web identity credentials this early */

/* What a transfer does. */
enum storage_op {
	STORAGE_PUT_SEGMENT,
	STORAGE_PUT_FINAL,
	STORAGE_HEAD_FINAL,
	STORAGE_LIST_SEGMENTS,
	STORAGE_DELETE_SEGMENT,
	STORAGE_MP_CREATE,	/* the final object in parts: CreateMultipartUpload */
	STORAGE_MP_PART,	/* UploadPart */
	STORAGE_MP_COMPLETE,	/* CompleteMultipartUpload */
	STORAGE_MP_ABORT,	/* AbortMultipartUpload */
};

/* What each operation is called in the log and the audit. */
extern const char *const storage_op_names[];

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
	char *upload_id;	/* the multipart upload of the final object, or NULL */
	char *abort_id;		/* an upload given up, to abort before the next starts */
	unsigned abort_refusals;	/* refusals of aborting abort_id so far */
	uint64_t part_size;	/* bytes per part of upload_id */
	unsigned nparts;
	char **etags;		/* nparts ETags; NULL for a part not stored yet */
	char *complete_xml;	/* the CompleteMultipartUpload body while it is sent */
	size_t complete_len;
	char **doomed;		/* segment keys still to delete */
	size_t ndoomed;
	uv_work_t work;		/* hashing, or writing the upload's note */
	int note_err;
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
	uint64_t mp_threshold;	/* larger final objects go up in parts */
	uint64_t part_size;
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
/* storage-s3.c: recordings, audit, credentials */
void storage_handle_closed_cb(uv_handle_t *h);
void storage_rec_free(struct storage_rec *r);
char *storage_key(const struct storage_rec *r, bool segment, uint64_t off);
void storage_failed(struct storage_rec *r, enum storage_op op, const char *key, const char *why);
void storage_succeeded(struct storage_rec *r, enum storage_op op, const char *key);
int storage_creds_load(struct storage *st);
void storage_rec_step(struct storage_rec *r);
void storage_mp_forget(struct storage_rec *r);
void storage_upload_note(struct storage_rec *r);
void storage_upload_unnote(struct storage_rec *r);

/* storage-xfer.c: transfers and hashing */
void storage_xfer_free(struct storage_xfer *x);
int storage_xfer_start(struct storage_rec *r, enum storage_op op, char *key, const char *query,
    uint64_t off, uint64_t len, const char *sha256);
void storage_rec_finished(struct storage_rec *r);
int storage_curl_timer_cb(CURLM *m, long timeout_ms, void *arg);
int storage_curl_socket_cb(CURL *e, curl_socket_t fd, int what, void *arg, void *sockp);
void storage_upload(struct storage_rec *r, enum storage_op op, uint64_t off, uint64_t len);

#endif
