/*
 * Shipping recordings to S3-compatible object storage (docs/storage.md).
 *
 * The recordings directory is the spool: sessions write there as always,
 * and the shipper copies what they wrote to the bucket. While a session
 * runs, the bytes up to its latest checkpoint go up as segment objects
 * (PREFIX ID.rec.seg/OFFSET) at least every segment_seconds; when its
 * recording is closed, the whole file goes up as one object (PREFIX
 * ID.rec), then the segments are deleted and, unless keep_local, the
 * spool file. Files left in the spool by an earlier run are shipped the
 * same way when the shipper starts.
 *
 * Everything runs on the broker's loop: transfers through libcurl's multi
 * interface driven by uv_poll and uv_timer handles, file hashing (the
 * SHA-256 each PUT is signed with) and STS calls on the thread pool. A
 * failed request is retried with backoff and audited (storage_failed);
 * sessions never wait for the bucket.
 *
 * Every function accepts a NULL storage or NULL rec and then does nothing,
 * so callers need not know whether storage is configured.
 */
#ifndef PODGATE_STORAGE_H
#define PODGATE_STORAGE_H

#include <stdint.h>

#include <uv.h>

#include "policy/audit.h"
#include "policy/config.h"

struct storage;
struct storage_rec;

/*
 * Start shipping to the bucket of cfg (copied) from the spool directory
 * (copied), auditing to audit (borrowed: it must outlive the storage).
 * Files already in the spool are queued. Returns 0 with *out set, or a
 * negative errno (logged).
 */
int storage_open(uv_loop_t *loop, const struct cfg_s3 *cfg, const char *spool,
    struct audit *audit, struct storage **out);

/* A session's recording at path: ship it while it grows. NULL when st is NULL or out of memory. */
struct storage_rec *storage_track(struct storage *st, const char *id, const char *path);

/* The file holds a checkpoint ending at byte offset: bytes before it may be shipped. */
void storage_checkpoint(struct storage_rec *r, uint64_t offset);

/* The recording is closed (sealed, or cut short): ship it whole. r is the shipper's now. */
void storage_done(struct storage_rec *r);

/*
 * Stop: transfers in flight are abandoned (their files stay in the spool
 * for the next start), handles are closed and st is freed once they are.
 */
void storage_close(struct storage *st);

#endif
