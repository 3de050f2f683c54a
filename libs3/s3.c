/*
 * libs3: buckets, credentials, request set-up for libcurl's SigV4, and the
 * XML answers podgate reads.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base.h"
#include "s3.h"

/* Free a string holding a secret, wiped first. */
static void
s3_free_secret(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* Free and wipe credentials. */
void
s3_creds_clear(struct s3_creds *c)
{
	s3_free_secret(c->access_key);
	s3_free_secret(c->secret_key);
	s3_free_secret(c->session_token);
	memset(c, 0, sizeof *c);
}

/* Free a bucket's strings. */
void
s3_bucket_clear(struct s3_bucket *b)
{
	free(b->endpoint);
	free(b->region);
	free(b->name);
	memset(b, 0, sizeof *b);
}

/* Whether name is a bucket name: 3..63 of [a-z0-9.-], starting and ending alphanumeric. */
static bool
s3_bucket_name_ok(const char *name)
{
	size_t n = strlen(name), i;

	if (n < 3 || n > 63 || !isalnum((unsigned char)name[0]) ||
	    !isalnum((unsigned char)name[n - 1]))
		return false;
	for (i = 0; i < n; i++) {
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		    name[i] == '.' || name[i] == '-'))
			return false;
	}
	return true;
}

/* Fill a bucket description. */
int
s3_bucket_set(struct s3_bucket *b, const char *endpoint, const char *region,
    const char *name, bool path_style)
{
	const char *host;
	size_t n;

	memset(b, 0, sizeof *b);
	if (strncmp(endpoint, "https://", 8) == 0)
		host = endpoint + 8;
	else if (strncmp(endpoint, "http://", 7) == 0)
		host = endpoint + 7;
	else
		return -EINVAL;
	n = strlen(endpoint);
	while (n > 0 && endpoint[n - 1] == '/')
		n--;
	if (host >= endpoint + n || strcspn(host, "/?#@ ") < (size_t)(endpoint + n - host) ||
	    !s3_bucket_name_ok(name) || region == NULL || *region == '\0' ||
	    strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region))
		return -EINVAL;
	if ((b->endpoint = strndup(endpoint, n)) == NULL || (b->region = strdup(region)) == NULL ||
	    (b->name = strdup(name)) == NULL) {
		s3_bucket_clear(b);
		return -ENOMEM;
	}
	b->path_style = path_style;
	return 0;
}

/* A copy of an environment variable, or NULL when unset or empty. */
static char *
s3_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? strdup(v) : NULL;
}

/* Credentials from the environment. */
int
s3_creds_from_env(struct s3_creds *c)
{
	memset(c, 0, sizeof *c);
	c->access_key = s3_env("AWS_ACCESS_KEY_ID");
	c->secret_key = s3_env("AWS_SECRET_ACCESS_KEY");
	c->session_token = s3_env("AWS_SESSION_TOKEN");
	if (c->access_key == NULL || c->secret_key == NULL) {
		s3_creds_clear(c);
		return -ENOKEY;
	}
	return 0;
}

/* Read a small file's one value, trimmed. */
static int
s3_read_value(const char *path, char **out)
{
	char buf[8192];
	size_t n = 0, start = 0;
	ssize_t r;
	int fd, err = 0;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		n += (size_t)r;
	}
	close(fd);
	if (err == 0) {
		while (n > 0 && isspace((unsigned char)buf[n - 1]))
			n--;
		while (start < n && isspace((unsigned char)buf[start]))
			start++;
		if (start == n)
			err = -ENOKEY;
		else if ((*out = strndup(buf + start, n - start)) == NULL)
			err = -ENOMEM;
	}
	OPENSSL_cleanse(buf, sizeof buf);
	return err;
}

/* Credentials from two files. */
int
s3_creds_from_files(const char *access_key_file, const char *secret_key_file, struct s3_creds *c)
{
	int r;

	memset(c, 0, sizeof *c);
	if ((r = s3_read_value(access_key_file, &c->access_key)) < 0 ||
	    (r = s3_read_value(secret_key_file, &c->secret_key)) < 0)
		s3_creds_clear(c);
	return r;
}

/* Append s URI-encoded. */
int
s3_uri_encode(const char *s, bool keep_slash, char **out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s), i, o = 0;
	char *buf;

	*out = NULL;
	if ((buf = malloc(n * 3 + 1)) == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~' ||
		    (keep_slash && ch == '/')) {
			buf[o++] = (char)ch;
		} else {
			buf[o++] = '%';
			buf[o++] = hex[ch >> 4];
			buf[o++] = hex[ch & 15];
		}
	}
	buf[o] = '\0';
	*out = buf;
	return 0;
}

/* The URL of an object. */
int
s3_url(const struct s3_bucket *b, const char *key, const char *query, char **out)
{
	char *ekey = NULL;
	const char *scheme_end;
	int r;

	*out = NULL;
	if ((r = s3_uri_encode(key, true, &ekey)) < 0)
		return r;
	if (b->path_style)
		r = asprintf(out, "%s/%s/%s%s%s", b->endpoint, b->name, ekey,
		    query ? "?" : "", query ? query : "");
	else {
		scheme_end = strstr(b->endpoint, "://") + 3;
		r = asprintf(out, "%.*s%s.%s/%s%s%s", (int)(scheme_end - b->endpoint), b->endpoint,
		    b->name, scheme_end, ekey, query ? "?" : "", query ? query : "");
	}
	free(ekey);
	if (r < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Set up one signed request. */
int
s3_request(CURL *h, const struct s3_bucket *b, const struct s3_creds *c, const char *method,
    const char *key, const char *query, const char *payload_sha256, struct curl_slist **hdrs)
{
	char *url = NULL, *line = NULL, sigv4[128];
	struct curl_slist *l = NULL, *t;
	int r = -ENOMEM;

	*hdrs = NULL;
	if ((r = s3_url(b, key, query, &url)) < 0)
		return r;
	r = -ENOMEM;
	if (asprintf(&line, "x-amz-content-sha256: %s",
	    payload_sha256 != NULL ? payload_sha256 : S3_EMPTY_SHA256) < 0) {
		line = NULL;
		goto out;
	}
	if ((t = curl_slist_append(l, line)) == NULL)
		goto out;
	l = t;
	free(line);
	line = NULL;
	if (c->session_token != NULL) {
		if (asprintf(&line, "x-amz-security-token: %s", c->session_token) < 0) {
			line = NULL;
			goto out;
		}
		t = curl_slist_append(l, line);
		s3_free_secret(line);
		line = NULL;
		if (t == NULL)
			goto out;
		l = t;
	}
	/* No "Expect: 100-continue" round trip before a body. */
	if ((t = curl_slist_append(l, "Expect:")) == NULL)
		goto out;
	l = t;
	snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", b->region);
	if (curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
	    strcmp(method, "GET") == 0 ? NULL : method) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_USERNAME, c->access_key) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PASSWORD, c->secret_key) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_HTTPHEADER, l) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK) {
		r = -EINVAL;
		goto out;
	}
	*hdrs = l;
	l = NULL;
	r = 0;
out:
	free(url);
	free(line);
	curl_slist_free_all(l);
	return r;
}

/* The canonical ListObjectsV2 query. */
int
s3_list_query(const char *prefix, const char *token, char **out)
{
	char *ep = NULL, *et = NULL;
	int r;

	*out = NULL;
	if ((r = s3_uri_encode(prefix, false, &ep)) < 0 ||
	    (token != NULL && (r = s3_uri_encode(token, false, &et)) < 0)) {
		free(ep);
		return r;
	}
	/* Names in order, as SigV4's canonical query wants. */
	if (et != NULL)
		r = asprintf(out, "continuation-token=%s&list-type=2&prefix=%s", et, ep);
	else
		r = asprintf(out, "list-type=2&prefix=%s", ep);
	free(ep);
	free(et);
	if (r < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/*
 * Find <tag>...</tag> in [p, end): the text between, entities decoded, in
 * *out (malloc'd). Returns a pointer past the closing tag, or NULL.
 */
static const char *
s3_xml_text(const char *p, const char *end, const char *tag, char **out)
{
	char open[64], close[64];
	const char *a, *b;
	size_t ol, cl, i, o = 0;
	char *buf;

	*out = NULL;
	ol = (size_t)snprintf(open, sizeof open, "<%s>", tag);
	cl = (size_t)snprintf(close, sizeof close, "</%s>", tag);
	a = memmem(p, (size_t)(end - p), open, ol);
	if (a == NULL)
		return NULL;
	a += ol;
	if ((b = memmem(a, (size_t)(end - a), close, cl)) == NULL)
		return NULL;
	if ((buf = malloc((size_t)(b - a) + 1)) == NULL)
		return NULL;
	for (i = 0; a + i < b; i++) {
		static const struct {
			const char *ent;
			char ch;
		} ents[] = {
			{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' },
			{ "&apos;", '\'' },
		};
		size_t k;

		if (a[i] == '&') {
			for (k = 0; k < sizeof ents / sizeof ents[0]; k++) {
				size_t el = strlen(ents[k].ent);

				if ((size_t)(b - a) - i >= el && memcmp(a + i, ents[k].ent, el) == 0)
					break;
			}
			if (k < sizeof ents / sizeof ents[0]) {
				buf[o++] = ents[k].ch;
				i += strlen(ents[k].ent) - 1;
				continue;
			}
		}
		buf[o++] = a[i];
	}
	buf[o] = '\0';
	*out = buf;
	return b + cl;
}

/* Free a list page. */
void
s3_list_free(struct s3_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->keys[i]);
	free(l->keys);
	free(l->sizes);
	free(l->next_token);
	memset(l, 0, sizeof *l);
}

/* Parse one ListObjectsV2 page. */
int
s3_list_parse(const char *xml, size_t len, struct s3_list *out)
{
	const char *p = xml, *end = xml + len, *cend;
	char *v = NULL, *key = NULL, *size = NULL;
	void *t;

	memset(out, 0, sizeof *out);
	if (memmem(xml, len, "<ListBucketResult", 17) == NULL)
		return -EBADMSG;
	while ((p = memmem(p, (size_t)(end - p), "<Contents>", 10)) != NULL) {
		if ((cend = memmem(p, (size_t)(end - p), "</Contents>", 11)) == NULL)
			break;
		if (s3_xml_text(p, cend, "Key", &key) == NULL)
			goto bad;
		s3_xml_text(p, cend, "Size", &size);
		if ((t = realloc(out->keys, (out->n + 1) * sizeof *out->keys)) == NULL)
			goto nomem;
		out->keys = t;
		if ((t = realloc(out->sizes, (out->n + 1) * sizeof *out->sizes)) == NULL)
			goto nomem;
		out->sizes = t;
		out->keys[out->n] = key;
		out->sizes[out->n] = size != NULL ? strtoull(size, NULL, 10) : 0;
		out->n++;
		key = NULL;
		free(size);
		size = NULL;
		p = cend + 11;
	}
	if (s3_xml_text(xml, end, "IsTruncated", &v) != NULL)
		out->truncated = strcmp(v, "true") == 0;
	free(v);
	s3_xml_text(xml, end, "NextContinuationToken", &out->next_token);
	if (out->truncated && out->next_token == NULL)
		goto bad;
	return 0;
nomem:
	free(key);
	free(size);
	s3_list_free(out);
	return -ENOMEM;
bad:
	free(key);
	free(size);
	s3_list_free(out);
	return -EBADMSG;
}

/* An S3 error answer as one line. */
void
s3_error_text(const char *xml, size_t len, char *buf, size_t buflen)
{
	char *code = NULL, *msg = NULL;
	size_t i;

	if (buflen == 0)
		return;
	buf[0] = '\0';
	if (xml == NULL)
		return;
	s3_xml_text(xml, xml + len, "Code", &code);
	s3_xml_text(xml, xml + len, "Message", &msg);
	if (code != NULL || msg != NULL)
		snprintf(buf, buflen, "%s%s%s", code ? code : "", code && msg ? ": " : "",
		    msg ? msg : "");
	for (i = 0; buf[i] != '\0'; i++) {
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = ' ';
	}
	free(code);
	free(msg);
}

/* The query of an UploadPart (part > 0), or of a Complete or Abort (part 0). */
int
s3_upload_query(const char *upload_id, unsigned part, char **out)
{
	char *eid = NULL;
	int r;

	*out = NULL;
	if (part > S3_PARTS_MAX)
		return -EINVAL;
	if ((r = s3_uri_encode(upload_id, false, &eid)) < 0)
		return r;
	/* Names in order, as SigV4's canonical query wants. */
	if (part > 0)
		r = asprintf(out, "partNumber=%u&uploadId=%s", part, eid);
	else
		r = asprintf(out, "uploadId=%s", eid);
	free(eid);
	if (r < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* The UploadId of a CreateMultipartUpload answer. */
int
s3_create_parse(const char *xml, size_t len, char **upload_id)
{
	const char *res;
	size_t i;

	*upload_id = NULL;
	if ((res = memmem(xml, len, "<InitiateMultipartUploadResult", 30)) == NULL)
		return -EBADMSG;
	if (s3_xml_text(res, xml + len, "UploadId", upload_id) == NULL)
		return -EBADMSG;
	/* It goes into queries and the log: one printable word of sane length. */
	for (i = 0; (*upload_id)[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)(*upload_id)[i];

		if (ch <= 0x20 || ch == 0x7f)
			break;
	}
	if (i == 0 || (*upload_id)[i] != '\0' || i > 1024) {
		free(*upload_id);
		*upload_id = NULL;
		return -EBADMSG;
	}
	return 0;
}

/* The CompleteMultipartUpload body. */
int
s3_complete_body(char *const *etags, size_t n, char **out, size_t *outlen)
{
	struct buf b = { 0 };
	const char *p;
	size_t i;

	*out = NULL;
	*outlen = 0;
	if (n == 0 || n > S3_PARTS_MAX)
		return -EINVAL;
	buf_str(&b, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (i = 0; i < n; i++) {
		if (etags[i] == NULL) {
			buf_free(&b);
			return -EINVAL;
		}
		buf_printf(&b, "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1);
		/* The quotes stay as they came (SDKs send them so); markup is escaped. */
		for (p = etags[i]; *p != '\0'; p++) {
			if (*p == '&')
				buf_str(&b, "&amp;");
			else if (*p == '<')
				buf_str(&b, "&lt;");
			else if (*p == '>')
				buf_str(&b, "&gt;");
			else
				buf_add(&b, p, 1);
		}
		buf_str(&b, "</ETag></Part>");
	}
	buf_str(&b, "</CompleteMultipartUpload>");
	if (b.oom) {
		buf_free(&b);
		return -ENOMEM;
	}
	*out = b.data;
	*outlen = b.len;
	return 0;
}

/* Whether a CompleteMultipartUpload answer says the object is whole. */
int
s3_complete_parse(const char *xml, size_t len)
{
	if (xml == NULL || memmem(xml, len, "<CompleteMultipartUploadResult", 30) == NULL ||
	    memmem(xml, len, "<Error>", 7) != NULL)
		return -EBADMSG;
	return 0;
}

/* Parse an AssumeRoleWithWebIdentity answer. */
int
s3_sts_parse(const char *xml, size_t len, struct s3_creds *c)
{
	const char *end = xml + len, *cr;
	char *exp = NULL;
	struct tm tm;

	memset(c, 0, sizeof *c);
	if ((cr = memmem(xml, len, "<Credentials>", 13)) == NULL)
		return -EBADMSG;
	s3_xml_text(cr, end, "AccessKeyId", &c->access_key);
	s3_xml_text(cr, end, "SecretAccessKey", &c->secret_key);
	s3_xml_text(cr, end, "SessionToken", &c->session_token);
	s3_xml_text(cr, end, "Expiration", &exp);
	if (c->access_key == NULL || c->secret_key == NULL || c->session_token == NULL) {
		free(exp);
		s3_creds_clear(c);
		return -EBADMSG;
	}
	memset(&tm, 0, sizeof tm);
	/* "2026-12-06T04:31:00Z", fractions of a second ignored */
	if (exp != NULL && strptime(exp, "%Y-%m-%dT%H:%M:%S", &tm) != NULL)
		c->expires = (uint64_t)timegm(&tm);
	free(exp);
	return 0;
}

/* Collect a response body, up to 1 MiB. */
static size_t
s3_body_cb(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;

	n *= size;
	if (b->len + n > (1u << 20))
		return 0;
	buf_add(b, p, n);
	return b->oom ? 0 : n;
}

/* AssumeRoleWithWebIdentity with the environment's role and token. */
int
s3_creds_web_identity(const char *region, struct s3_creds *c, char *err, size_t errlen)
{
	const char *role = getenv("AWS_ROLE_ARN"), *tokfile = getenv("AWS_WEB_IDENTITY_TOKEN_FILE");
	const char *name = getenv("AWS_ROLE_SESSION_NAME"), *sts = getenv("AWS_ENDPOINT_URL_STS");
	char *token = NULL, *erole = NULL, *etok = NULL, *ename = NULL, *url = NULL;
	struct buf body = { 0 };
	CURL *h = NULL;
	long code = 0;
	CURLcode cr;
	int r;

	memset(c, 0, sizeof *c);
	if (errlen > 0)
		err[0] = '\0';
	if (role == NULL || *role == '\0' || tokfile == NULL || *tokfile == '\0') {
		snprintf(err, errlen, "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE must be set");
		return -ENOKEY;
	}
	if ((r = s3_read_value(tokfile, &token)) < 0) {
		snprintf(err, errlen, "%s: %s", tokfile, strerror(-r));
		return r;
	}
	if ((r = s3_uri_encode(role, false, &erole)) < 0 ||
	    (r = s3_uri_encode(token, false, &etok)) < 0 ||
	    (r = s3_uri_encode(name != NULL && *name != '\0' ? name : "podgate", false,
	    &ename)) < 0)
		goto out;
	if ((sts != NULL && *sts != '\0' ?
	    asprintf(&url, "%s/?Action=AssumeRoleWithWebIdentity&RoleArn=%s&RoleSessionName=%s"
	    "&Version=2011-06-15&WebIdentityToken=%s", sts, erole, ename, etok) :
	    asprintf(&url, "https://sts.%s.amazonaws.com/?Action=AssumeRoleWithWebIdentity"
	    "&RoleArn=%s&RoleSessionName=%s&Version=2011-06-15&WebIdentityToken=%s",
	    region, erole, ename, etok)) < 0) {
		url = NULL;
		r = -ENOMEM;
		goto out;
	}
	if ((h = curl_easy_init()) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s3_body_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	if ((cr = curl_easy_perform(h)) != CURLE_OK) {
		snprintf(err, errlen, "STS: %s", curl_easy_strerror(cr));
		r = -EHOSTUNREACH;
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) {
		char why[256];

		s3_error_text(body.data, body.len, why, sizeof why);
		snprintf(err, errlen, "STS refused (HTTP %ld)%s%s", code, why[0] ? ": " : "", why);
		r = -EACCES;
		goto out;
	}
	if ((r = s3_sts_parse(body.data, body.len, c)) < 0)
		snprintf(err, errlen, "STS: an answer without credentials");
out:
	if (h != NULL)
		curl_easy_cleanup(h);
	if (body.data != NULL)
		OPENSSL_cleanse(body.data, body.len);
	free(body.data);
	s3_free_secret(url);
	s3_free_secret(etok);
	s3_free_secret(token);
	free(erole);
	free(ename);
	return r;
}

/* Whether s is an s3:// URL. */
bool
s3_is_url(const char *s)
{
	return strncmp(s, "s3://", 5) == 0;
}

/* Split an s3:// URL. */
int
s3_parse_url(const char *url, char **bucket, char **key)
{
	const char *b, *slash;

	*bucket = *key = NULL;
	if (!s3_is_url(url))
		return -EINVAL;
	b = url + 5;
	slash = strchr(b, '/');
	if ((*bucket = slash ? strndup(b, (size_t)(slash - b)) : strdup(b)) == NULL)
		return -ENOMEM;
	if (!s3_bucket_name_ok(*bucket)) {
		free(*bucket);
		*bucket = NULL;
		return -EINVAL;
	}
	if ((*key = strdup(slash ? slash + 1 : "")) == NULL) {
		free(*bucket);
		*bucket = NULL;
		return -ENOMEM;
	}
	return 0;
}
