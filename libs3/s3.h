/*
 * libs3: what the broker and the player share to talk to S3-compatible
 * object storage through libcurl: where a bucket is, credentials, request
 * set-up with libcurl's own AWS Signature V4 (CURLOPT_AWS_SIGV4), and the
 * few XML answers podgate reads (ListObjectsV2, multipart uploads, errors,
 * STS).
 *
 * Nothing here blocks except s3_creds_web_identity (one HTTPS request to
 * STS); the callers drive the transfers (the broker from its libuv loop,
 * the player with curl_easy_perform).
 *
 * Errors are negative errno values; out-parameters are cleared on entry.
 * Secrets are wiped before they are freed.
 */
#ifndef PODGATE_S3_H
#define PODGATE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

/* Hex SHA-256 of the empty string: the payload hash of a request without a body. */
#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Where a bucket is. */
struct s3_bucket {
	char *endpoint;		/* "https://host[:port]", no path, no trailing '/' */
	char *region;		/* "eu-west-1"; signing needs one */
	char *name;		/* the bucket */
	bool path_style;	/* ENDPOINT/BUCKET/KEY rather than BUCKET.HOST/KEY */
};

/* Credentials; expires is a Unix time (0: do not expire). */
struct s3_creds {
	char *access_key;
	char *secret_key;
	char *session_token;	/* NULL when none */
	uint64_t expires;
};

/* Free and wipe; the struct is zeroed and may be reused. */
void s3_creds_clear(struct s3_creds *c);
void s3_bucket_clear(struct s3_bucket *b);

/*
 * Set endpoint (a copy without trailing '/'), region and name. Returns
 * -EINVAL when endpoint is not http:// or https:// followed by a host, or
 * when name is not a bucket name (3..63 of [a-z0-9.-]).
 */
int s3_bucket_set(struct s3_bucket *b, const char *endpoint, const char *region,
    const char *name, bool path_style);

/* AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; -ENOKEY when unset. */
int s3_creds_from_env(struct s3_creds *c);

/*
 * Read the access key and the secret key from two files (one line each,
 * surrounding white space removed). -ENOKEY for an empty file, or the
 * errno of reading it.
 */
int s3_creds_from_files(const char *access_key_file, const char *secret_key_file,
    struct s3_creds *c);

/*
 * Web identity (EKS service accounts, any OIDC issuer): AssumeRoleWithWebIdentity
 * at STS with the token in AWS_WEB_IDENTITY_TOKEN_FILE for AWS_ROLE_ARN
 * (session name AWS_ROLE_SESSION_NAME, default "podgate"). STS is
 * AWS_ENDPOINT_URL_STS, or https://sts.REGION.amazonaws.com. Blocking.
 * -ENOKEY when the variables are unset; -EACCES when STS refuses, with
 * its message in err.
 */
int s3_creds_web_identity(const char *region, struct s3_creds *c, char *err, size_t errlen);

/* Parse an AssumeRoleWithWebIdentity answer; -EBADMSG when it holds no credentials. */
int s3_sts_parse(const char *xml, size_t len, struct s3_creds *c);

/*
 * The URL of key (URI-encoded, '/' kept) in bucket b, with query appended
 * after '?' when not NULL. The query must be canonical already: names in
 * order, names and values encoded with s3_uri_encode.
 */
int s3_url(const struct s3_bucket *b, const char *key, const char *query, char **out);

/* Append s URI-encoded as SigV4 wants (unreserved kept; '/' too when keep_slash). */
int s3_uri_encode(const char *s, bool keep_slash, char **out);

/*
 * Set up h for one request: URL, method, SigV4 signing with c, and the
 * headers (x-amz-content-sha256 = payload_sha256, or the empty hash when
 * NULL; x-amz-security-token when c has one) in *hdrs, which the caller
 * frees with curl_slist_free_all after the transfer. Body and output
 * callbacks are the caller's. Returns -ENOMEM or -EINVAL.
 */
int s3_request(CURL *h, const struct s3_bucket *b, const struct s3_creds *c,
    const char *method, const char *key, const char *query, const char *payload_sha256,
    struct curl_slist **hdrs);

/* The canonical ListObjectsV2 query for prefix (and a continuation token, or NULL). */
int s3_list_query(const char *prefix, const char *token, char **out);

/* One page of a ListObjectsV2 answer. */
struct s3_list {
	char **keys;
	uint64_t *sizes;
	size_t n;
	bool truncated;
	char *next_token;	/* NextContinuationToken, or NULL */
};

/* Parse one ListObjectsV2 page; -EBADMSG when it is not one. */
int s3_list_parse(const char *xml, size_t len, struct s3_list *out);
void s3_list_free(struct s3_list *l);

/*
 * Multipart upload (an object of up to 10000 parts; each but the last at
 * least S3_PART_MIN bytes). The queries are canonical, for s3_request.
 */
#define S3_PART_MIN (5ull << 20)
#define S3_PARTS_MAX 10000u

/* "partNumber=N&uploadId=ID" (UploadPart); "uploadId=ID" when part is 0 (Complete, Abort). */
int s3_upload_query(const char *upload_id, unsigned part, char **out);

/* The UploadId of a CreateMultipartUpload answer; -EBADMSG when it holds none. */
int s3_create_parse(const char *xml, size_t len, char **upload_id);

/*
 * The CompleteMultipartUpload body for the n parts whose ETags (as the
 * service sent them, quotes included) are etags[0..n-1], parts 1..n.
 */
int s3_complete_body(char *const *etags, size_t n, char **out, size_t *outlen);

/*
 * Whether a CompleteMultipartUpload answer says the object is whole: 0,
 * or -EBADMSG (S3 may answer 200 with an <Error> when it fails late; its
 * text is s3_error_text's).
 */
int s3_complete_parse(const char *xml, size_t len);

/* The <Code> and <Message> of an S3 error answer, as one line ("" when none). */
void s3_error_text(const char *xml, size_t len, char *buf, size_t buflen);

/*
 * Split "s3://BUCKET/KEY" into bucket and key (key may be ""). -EINVAL
 * when url is not of that form.
 */
int s3_parse_url(const char *url, char **bucket, char **key);

/* Whether s starts with "s3://". */
bool s3_is_url(const char *s);

#endif
