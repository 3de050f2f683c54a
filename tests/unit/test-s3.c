/*
 * Unit tests of libs3 (names, URLs, queries, the XML answers, credentials
 * files) and of the broker's storage.s3 configuration block.
 */
#include "policy/config.h"
#include "s3.h"
#include "unit.h"

/* The credentials files' directory. */
static char *tmpdir;

#define USERS "users:\n  - name: alice\n    keys: [\"ssh-ed25519 " \
	"AAAAC3NzaC1lZDI1NTE5AAAAIGjbPL0TdOg2sw69SA3DAaYeqhGqSGhc/cdVFm32dPSc\"]\n"

/* The storage block as the issue writes it, and defaults. */
static void
test_config_ok(void)
{
	struct config *c = NULL;
	char *errs = NULL;

	assert(load(USERS "storage:\n  s3:\n"
	    "    endpoint: https://s3.eu-west-1.amazonaws.com\n"
	    "    region: eu-west-1\n    bucket: podgate-recordings\n    prefix: prod/\n"
	    "    path_style: false\n    credentials: env\n    segment_seconds: 10\n"
	    "    keep_local: false\n", &c, &errs) == 0);
	assert(*errs == '\0');
	assert(c->s3.enabled && strcmp(c->s3.bucket, "podgate-recordings") == 0);
	assert(strcmp(c->s3.region, "eu-west-1") == 0 && strcmp(c->s3.prefix, "prod/") == 0);
	assert(c->s3.credentials == CFG_S3_CREDS_ENV && c->s3.segment_seconds == 10);
	assert(!c->s3.keep_local && !c->s3.path_style);
	assert(c->s3.multipart_threshold == 5ull << 30 && c->s3.part_size == 64ull << 20);
	config_unref(c);
	free(errs);

	assert(load(USERS "storage:\n  s3:\n    endpoint: http://127.0.0.1:4568\n"
	    "    bucket: b12\n    credentials: {access_key_file: /a, secret_key_file: /b}\n",
	    &c, &errs) == 0);
	assert(*errs == '\0');
	assert(strcmp(c->s3.region, "us-east-1") == 0 && strcmp(c->s3.prefix, "") == 0);
	assert(c->s3.segment_seconds == 10 && c->s3.credentials == CFG_S3_CREDS_FILES);
	assert(strcmp(c->s3.access_key_file, "/a") == 0);
	config_unref(c);
	free(errs);

	assert(load(USERS "storage:\n  s3: {endpoint: https://minio.storage:9000, bucket: rec,"
	    " path_style: true, credentials: web_identity, keep_local: true}\n", &c, &errs) == 0);
	assert(c->s3.credentials == CFG_S3_CREDS_WEB_IDENTITY && c->s3.keep_local);
	config_unref(c);
	free(errs);

	/* Multipart sizes in bytes or with a unit. */
	assert(load(USERS "storage:\n  s3: {endpoint: https://h, bucket: rec,"
	    " multipart_threshold: 6MiB, part_size: 5242880}\n", &c, &errs) == 0);
	assert(*errs == '\0');
	assert(c->s3.multipart_threshold == 6ull << 20 && c->s3.part_size == 5ull << 20);
	config_unref(c);
	free(errs);

	/* Absent or empty: local files only. */
	assert(load(USERS "storage:\n", &c, &errs) == 0);
	assert(!c->s3.enabled);
	config_unref(c);
	free(errs);

	/* Plain http to another host works, with a warning. */
	assert(load(USERS "storage:\n  s3: {endpoint: http://minio:9000, bucket: rec}\n", &c,
	    &errs) == 0);
	if (strstr(errs, "warning: storage.s3.endpoint http://minio:9000 is plain http") == NULL) {
		fprintf(stderr, "%s", errs);
		abort();
	}
	config_unref(c);
	free(errs);
}

/* Bad storage blocks: one clear error each. */
static void
test_config_errors(void)
{
	static const struct {
		const char *block;
		const char *want;
	} cases[] = {
		{ "  s3: {bucket: b12}\n", "storage.s3 needs an endpoint" },
		{ "  s3: {endpoint: https://h}\n", "storage.s3 needs a bucket" },
		{ "  s3: {endpoint: ftp://h, bucket: b12}\n", "storage.s3.endpoint must be https://" },
		{ "  s3: {endpoint: https://h/path, bucket: b12}\n", "storage.s3.endpoint must be" },
		{ "  s3: {endpoint: https://h, bucket: B_1}\n", "storage.s3.bucket must be a bucket" },
		{ "  s3: {endpoint: https://h, bucket: b12, prefix: /x}\n", "storage.s3.prefix must" },
		{ "  s3: {endpoint: https://h, bucket: b12, prefix: a/../b}\n", "storage.s3.prefix" },
		{ "  s3: {endpoint: https://h, bucket: b12, region: EU}\n", "storage.s3.region must" },
		{ "  s3: {endpoint: https://h, bucket: b12, credentials: keys}\n",
		    "storage.s3.credentials must be env, web_identity or" },
		{ "  s3: {endpoint: https://h, bucket: b12, credentials: {access_key_file: /a}}\n",
		    "needs access_key_file and secret_key_file" },
		{ "  s3: {endpoint: https://h, bucket: b12, segment_seconds: 0}\n",
		    "storage.s3.segment_seconds must be from 1 to 3600" },
		{ "  s3: {endpoint: https://h, bucket: b12, keep_local: yes}\n",
		    "storage.s3.keep_local must be true or false" },
		{ "  s3: {endpoint: https://h, bucket: b12, part_size: 4MiB}\n",
		    "storage.s3.part_size must be from 5242880 to 5368709120 bytes" },
		{ "  s3: {endpoint: https://h, bucket: b12, multipart_threshold: 6GiB}\n",
		    "storage.s3.multipart_threshold must be from 5242880 to 5368709120 bytes" },
		{ "  s3: {endpoint: https://h, bucket: b12, part_size: big}\n",
		    "storage.s3.part_size must be a size" },
		{ "  s3: {endpoint: https://h, bucket: b12, acl: private}\n",
		    "unknown key \"acl\" in storage.s3" },
		{ "  gcs: {}\n", "unknown key \"gcs\" in storage" },
		{ "  - s3\n", "storage must be a mapping" },
	};
	struct config *c;
	char yaml[1024], *errs;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		c = NULL;
		errs = NULL;
		snprintf(yaml, sizeof yaml, USERS "storage:\n%s", cases[i].block);
		if (load(yaml, &c, &errs) != -EINVAL || strstr(errs, cases[i].want) == NULL) {
			fprintf(stderr, "missing \"%s\" in:\n%s--- for:\n%s\n", cases[i].want, errs,
			    yaml);
			abort();
		}
		assert(c == NULL);
		free(errs);
	}
}

/* Object URLs, path-style and virtual-hosted, with keys encoded. */
static void
test_urls(void)
{
	struct s3_bucket b;
	char *u, *bucket, *key;

	assert(s3_bucket_set(&b, "https://s3.eu-west-1.amazonaws.com/", "eu-west-1",
	    "podgate-recordings", false) == 0);
	assert(s3_url(&b, "prod/a b+c.rec", NULL, &u) == 0);
	assert(strcmp(u, "https://podgate-recordings.s3.eu-west-1.amazonaws.com/prod/a%20b%2Bc.rec")
	    == 0);
	free(u);
	s3_bucket_clear(&b);
	assert(s3_bucket_set(&b, "http://127.0.0.1:4568", "us-east-1", "rec", true) == 0);
	assert(s3_url(&b, "", "list-type=2&prefix=p%2F", &u) == 0);
	assert(strcmp(u, "http://127.0.0.1:4568/rec/?list-type=2&prefix=p%2F") == 0);
	free(u);
	s3_bucket_clear(&b);
	assert(s3_bucket_set(&b, "s3.amazonaws.com", "us-east-1", "rec", true) == -EINVAL);
	assert(s3_bucket_set(&b, "https://", "us-east-1", "rec", true) == -EINVAL);
	assert(s3_bucket_set(&b, "https://h", "us-east-1", "-rec", true) == -EINVAL);
	assert(s3_bucket_set(&b, "https://u@h", "us-east-1", "rec", true) == -EINVAL);

	assert(s3_list_query("prod/x y", NULL, &u) == 0);
	assert(strcmp(u, "list-type=2&prefix=prod%2Fx%20y") == 0);
	free(u);
	assert(s3_list_query("p/", "a+b=", &u) == 0);
	assert(strcmp(u, "continuation-token=a%2Bb%3D&list-type=2&prefix=p%2F") == 0);
	free(u);

	assert(s3_parse_url("s3://bucket-1/prod/x.rec", &bucket, &key) == 0);
	assert(strcmp(bucket, "bucket-1") == 0 && strcmp(key, "prod/x.rec") == 0);
	free(bucket);
	free(key);
	assert(s3_parse_url("s3://bucket-1", &bucket, &key) == 0 && strcmp(key, "") == 0);
	free(bucket);
	free(key);
	assert(s3_parse_url("s3://Bad_Bucket/x", &bucket, &key) == -EINVAL && bucket == NULL);
	assert(s3_parse_url("http://b/x", &bucket, &key) == -EINVAL);
	assert(s3_is_url("s3://x") && !s3_is_url("./s3:/x"));
}

/* ListObjectsV2 pages, STS answers and error bodies. */
static void
test_xml(void)
{
	static const char page[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	    "<Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount>"
	    "<IsTruncated>true</IsTruncated><NextContinuationToken>tok&amp;1</NextContinuationToken>"
	    "<Contents><Key>p/a&amp;b.rec</Key><Size>12</Size></Contents>"
	    "<Contents><Key>p/c.rec.seg/00000000000000000000</Key><Size>7</Size></Contents>"
	    "</ListBucketResult>";
	static const char sts[] =
	    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
	    "<AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>sec/ret</SecretAccessKey>"
	    "<SessionToken>tok</SessionToken><Expiration>2030-01-02T03:04:05Z</Expiration>"
	    "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
	struct s3_list l;
	struct s3_creds c;
	char buf[128];

	assert(s3_list_parse(page, strlen(page), &l) == 0);
	assert(l.n == 2 && strcmp(l.keys[0], "p/a&b.rec") == 0 && l.sizes[0] == 12);
	assert(l.sizes[1] == 7 && l.truncated && strcmp(l.next_token, "tok&1") == 0);
	s3_list_free(&l);
	assert(s3_list_parse("<Error/>", 8, &l) == -EBADMSG && l.n == 0);
	/* Truncated without a token: no way on, so not an answer. */
	assert(s3_list_parse("<ListBucketResult><IsTruncated>true</IsTruncated>", 49, &l) ==
	    -EBADMSG);
	assert(s3_list_parse("<ListBucketResult><Contents><Size>1</Size></Contents>", 53, &l) ==
	    -EBADMSG);

	assert(s3_sts_parse(sts, strlen(sts), &c) == 0);
	assert(strcmp(c.access_key, "ASIA1") == 0 && strcmp(c.secret_key, "sec/ret") == 0);
	assert(strcmp(c.session_token, "tok") == 0 && c.expires == 1893553445);
	s3_creds_clear(&c);
	assert(c.access_key == NULL);
	assert(s3_sts_parse("<Credentials><AccessKeyId>x</AccessKeyId></Credentials>", 56, &c) ==
	    -EBADMSG);

	s3_error_text("<Error><Code>NoSuchKey</Code><Message>gone\n</Message></Error>", 62, buf,
	    sizeof buf);
	assert(strcmp(buf, "NoSuchKey: gone ") == 0);
	s3_error_text(NULL, 0, buf, sizeof buf);
	assert(buf[0] == '\0');
}

/* Multipart uploads: the queries, the Create and Complete answers, the Complete body. */
static void
test_multipart(void)
{
	static const char created[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	    "<Bucket>b</Bucket><Key>p/x.rec</Key>"
	    "<UploadId>VXBsb2FkIElE+ZW&amp;1</UploadId></InitiateMultipartUploadResult>";
	static const char completed[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	    "<Location>http://h/b/p/x.rec</Location><Bucket>b</Bucket><Key>p/x.rec</Key>"
	    "<ETag>\"3858f62230ac3c915f300c664312c11f-2\"</ETag>"
	    "</CompleteMultipartUploadResult>";
	static const char late[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<Error><Code>InternalError</Code><Message>try again</Message></Error>";
	char e1[] = "\"a1\"", e2[] = "\"b&<2>\"";
	char *etags[] = { e1, e2 }, *none[] = { e1, NULL };
	char *q, *id, *body, buf[128];
	size_t len;

	assert(s3_upload_query("VXBs+ZW&1", 3, &q) == 0);
	assert(strcmp(q, "partNumber=3&uploadId=VXBs%2BZW%261") == 0);
	free(q);
	assert(s3_upload_query("abc", 0, &q) == 0 && strcmp(q, "uploadId=abc") == 0);
	free(q);
	assert(s3_upload_query("abc", S3_PARTS_MAX + 1, &q) == -EINVAL && q == NULL);

	assert(s3_create_parse(created, strlen(created), &id) == 0);
	assert(strcmp(id, "VXBsb2FkIElE+ZW&1") == 0);
	free(id);
	assert(s3_create_parse(late, strlen(late), &id) == -EBADMSG && id == NULL);
	assert(s3_create_parse("<InitiateMultipartUploadResult><UploadId></UploadId>", 52, &id) ==
	    -EBADMSG && id == NULL);
	assert(s3_create_parse("<InitiateMultipartUploadResult><UploadId>a b</UploadId>", 55,
	    &id) == -EBADMSG && id == NULL);
	assert(s3_create_parse("<InitiateMultipartUploadResult>", 31, &id) == -EBADMSG);

	assert(s3_complete_body(etags, 2, &body, &len) == 0 && len == strlen(body));
	assert(strcmp(body, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/"
	    "2006-03-01/\"><Part><PartNumber>1</PartNumber><ETag>\"a1\"</ETag></Part>"
	    "<Part><PartNumber>2</PartNumber><ETag>\"b&amp;&lt;2&gt;\"</ETag></Part>"
	    "</CompleteMultipartUpload>") == 0);
	free(body);
	assert(s3_complete_body(none, 2, &body, &len) == -EINVAL && body == NULL && len == 0);
	assert(s3_complete_body(etags, 0, &body, &len) == -EINVAL);

	assert(s3_complete_parse(completed, strlen(completed)) == 0);
	/* 200 with an error inside: not stored. */
	assert(s3_complete_parse(late, strlen(late)) == -EBADMSG);
	assert(s3_complete_parse(NULL, 0) == -EBADMSG);
	s3_error_text(late, strlen(late), buf, sizeof buf);
	assert(strcmp(buf, "InternalError: try again") == 0);
}

/* Credentials from the environment and from files. */
static void
test_creds(void)
{
	struct s3_creds c;
	char a[256], s[256];
	FILE *f;

	unsetenv("AWS_ACCESS_KEY_ID");
	assert(s3_creds_from_env(&c) == -ENOKEY && c.access_key == NULL);
	setenv("AWS_ACCESS_KEY_ID", "AK", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
	unsetenv("AWS_SESSION_TOKEN");
	assert(s3_creds_from_env(&c) == 0 && c.session_token == NULL);
	assert(strcmp(c.access_key, "AK") == 0 && strcmp(c.secret_key, "SK") == 0);
	s3_creds_clear(&c);

	snprintf(a, sizeof a, "%s/access", tmpdir);
	snprintf(s, sizeof s, "%s/secret", tmpdir);
	assert((f = fopen(a, "w")) != NULL && fputs("  AKFILE\n", f) >= 0 && fclose(f) == 0);
	assert((f = fopen(s, "w")) != NULL && fputs("\n", f) >= 0 && fclose(f) == 0);
	assert(s3_creds_from_files(a, s, &c) == -ENOKEY && c.access_key == NULL);
	assert((f = fopen(s, "w")) != NULL && fputs("SK/FILE", f) >= 0 && fclose(f) == 0);
	assert(s3_creds_from_files(a, s, &c) == 0);
	assert(strcmp(c.access_key, "AKFILE") == 0 && strcmp(c.secret_key, "SK/FILE") == 0);
	s3_creds_clear(&c);
	assert(s3_creds_from_files(a, "/nonexistent/x", &c) == -ENOENT);
	unlink(a);
	unlink(s);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{ "config_ok", test_config_ok },
		{ "config_errors", test_config_errors },
		{ "urls", test_urls },
		{ "xml", test_xml },
		{ "multipart", test_multipart },
		{ "creds", test_creds },
	};
	int status;

	tmpdir = unit_tmpdir("s3");
	status = unit_run("s3", tests, UNIT_COUNT(tests));
	assert(rmdir(tmpdir) == 0);
	free(tmpdir);
	return status;
}
