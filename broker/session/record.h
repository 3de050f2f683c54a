/*
 * A session's record: the one path its events take after the guard has
 * masked typed passwords.
 *
 *   event -> redactor -> tee -> recording file (when there is one)
 *                            -> watchers (the tee callback)
 *
 * The module owns the redactor, the recording's writer and its file (and
 * the file's shipping to object storage). Watchers get exactly what the
 * recording holds, secrets redacted, whether or not a file is kept: a
 * session running unrecorded (on_recording_failure: continue) still
 * redacts for its watchers. The file's syncs to disk run on libuv's
 * thread pool; its descriptor is closed only when no sync is in flight.
 *
 * record_open writes the header; record_event, record_resize and
 * record_tick keep it going; record_close seals it with the exit. Errors
 * are negative errno values: the caller decides whether the session goes
 * on without its file (record_drop) or ends (record_fail).
 */
#ifndef PODGATE_RECORD_H
#define PODGATE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "rec.h"

struct config;
struct recfile;
struct redact;
struct storage;
struct storage_rec;

enum record_state {
	RECORD_OFF,		/* no file yet: events are not kept */
	RECORD_ON,		/* events go to the file (and the watchers) */
	RECORD_DROPPED,		/* the file was given up: events reach watchers only */
	RECORD_FAILED,		/* a write failed: the file is left unsealed, nothing is kept */
	RECORD_CLOSED,		/* sealed with the exit, or given up */
};

/* Pending resizes kept in order with the redactor's held bytes. */
#define RECORD_RESIZES 32

struct record {
	enum record_state state;
	char *path;			/* the recording's path, once opened */
	struct rec_writer *writer;
	struct recfile *file;
	struct storage_rec *ship;	/* its shipping to object storage, or NULL */
	struct redact *redact;		/* made at the first event */
	const struct config *config;	/* the session's (its redact patterns) */
	const unsigned char *key;	/* the broker's redaction key, or NULL */
	size_t keylen;
	uv_loop_t *loop;
	/* Where the redacted output goes besides the file (o and e bytes). */
	void (*tee)(void *arg, const void *data, size_t len);
	void *tee_arg;
	struct {
		uint16_t cols, rows;
	} resize[RECORD_RESIZES];	/* resizes still inside the redactor, oldest first */
	unsigned nresize;
	uint64_t checkpoints;		/* the writer's checkpoints already synced and shipped */
};

/* Set up r (zeroed) for a session; nothing is opened yet. */
void record_init(struct record *r, uv_loop_t *loop, const struct config *c,
    const unsigned char *key, size_t keylen, void (*tee)(void *, const void *, size_t),
    void *arg);

/*
 * Create DIR/ID.rec (O_EXCL, mode 0600, DIR made when missing), write h
 * and start shipping it to st (may be NULL). h->session_id names it.
 */
int record_open(struct record *r, const char *dir, const struct rec_header *h,
    const struct rec_key *sign_key, struct storage *st);

/* One event (o, e, i or m), in order; o and e reach the tee redacted. */
int record_event(struct record *r, char code, const void *data, size_t len);

/* A terminal resize, in order with the events around it. */
int record_resize(struct record *r, uint16_t cols, uint16_t rows);

/*
 * Let quiet held bytes out (redactor), write a checkpoint when one is due
 * and have it reach the disk. Returns 0 or the file's error.
 */
int record_tick(struct record *r);

/* Whether record_tick has work: held bytes, or events since the last checkpoint. */
bool record_pending(const struct record *r);

/* Whether events reach a file or watchers (the file is on or was dropped). */
bool record_live(const struct record *r);

/*
 * Seal the recording: everything held, the exit (status, or signame when
 * not NULL), the seal. A failed recording is closed as it is. Returns the
 * first error of the recording.
 */
int record_close(struct record *r, int status, const char *signame);

/* Give the file up and go on for the watchers (on_recording_failure: continue). */
void record_drop(struct record *r);

/* A write failed: keep nothing more; the file stays unsealed. */
void record_fail(struct record *r);

/* Close whatever is still open and free the state. */
void record_free(struct record *r);

#endif
