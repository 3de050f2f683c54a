/*
 * Recordings in S3-compatible object storage, read as the aws CLI would:
 * credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN (or AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, or the
 * [AWS_PROFILE] section of ~/.aws/credentials), the endpoint from
 * AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (path-style requests) or AWS
 * itself, the region from AWS_REGION or AWS_DEFAULT_REGION.
 *
 * Names are s3://BUCKET/KEY for one recording and s3://BUCKET/PREFIX/ for
 * every recording under a prefix. A KEY that names no object is looked up
 * as a session id or a unique prefix of one (KEY.rec, then KEY*.rec);
 * a recording the broker has not sealed yet is read from its segments
 * (docs/storage.md).
 */
#ifndef PODGATE_REMOTE_H
#define PODGATE_REMOTE_H

#include <stdbool.h>

#include "walk.h"

/* Whether path names object storage (s3://...). */
bool remote_is_url(const char *path);

/*
 * Open the recording url names for reading from its start: a descriptor
 * of a local temporary copy (deleted when closed), downloaded with range
 * requests. Each call gives a descriptor of its own (the last recording
 * is downloaded once). Prints one line naming url and the reason on
 * failure and returns a negative errno.
 */
int remote_open(const char *url);

/*
 * Call fn (named false) with "s3://BUCKET/KEY" for every recording under
 * the prefix url names, in key order; a recording known only by its
 * segments is given as its sealed name KEY.rec. Returns fn's negative
 * return, or a negative errno after printing why the listing failed.
 */
int remote_walk(const char *url, walk_fn *fn, void *arg);

/* Whether url names a prefix (ends with '/', or is s3://BUCKET). */
bool remote_is_prefix(const char *url);

/*
 * Start reading the recording url names into its local copy without
 * waiting for all of it (play): the first range (or segment) is read now,
 * and remote_open(url) then gives descriptors of the copy while a thread
 * reads the rest, in order. With follow, a recording not sealed yet is
 * read on as the broker ships it: new segments as they come, then the
 * rest of the sealed object once it is there (the read is over then).
 * Prints why on failure and returns a negative errno.
 */
int remote_stream_start(const char *url, bool follow);

/*
 * Whether that read is over: 0 while it goes on, 1 when the copy is whole,
 * or a negative errno with *why saying what failed (the copy then holds
 * what was read).
 */
int remote_stream_poll(const char **why);

/* Stop the read (the copy stays as far as it got); nothing when none runs. */
void remote_stream_stop(void);

#endif
