/*
 * The configuration's storage: storage.s3, recordings shipped to
 * S3-compatible object storage (docs/storage.md). Endpoints and bucket
 * names are checked with libs3's own parser.
 */
#include <stdlib.h>
#include <string.h>

#include "policy/config-parse.h"
#include "s3.h"

/* Whether s is an endpoint libs3 accepts: http(s)://host[:port]. */
static int
config_s3_endpoint_ok(const char *s)
{
	struct s3_bucket b;

	if (s3_bucket_set(&b, s, "us-east-1", "podgate", false) < 0)
		return 0;
	s3_bucket_clear(&b);
	return 1;
}

/* Whether s is a bucket name libs3 accepts. */
static int
config_s3_bucket_ok(const char *s)
{
	struct s3_bucket b;

	if (s3_bucket_set(&b, "https://s3", "us-east-1", s, false) < 0)
		return 0;
	s3_bucket_clear(&b);
	return 1;
}

/* Whether s is a region name. */
static int
config_s3_region_ok(const char *s)
{
	return *s != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(s);
}

/* Whether s is a prefix: [A-Za-z0-9._/-], at most 512, no leading '/', no "//" or "..". */
static int
config_s3_prefix_ok(const char *s)
{
	return strlen(s) <= 512 && s[0] != '/' && strstr(s, "//") == NULL &&
	    strstr(s, "..") == NULL && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._/-") == strlen(s);
}

static const struct config_entry config_s3_files_entries[] = {
	CONFIG_FIELD("access_key_file", CONFIG_STRING, struct cfg_s3, access_key_file),
	CONFIG_FIELD("secret_key_file", CONFIG_STRING, struct cfg_s3, secret_key_file),
	CONFIG_END
};

static const struct config_enum config_s3_creds[] = {
	{ "env", CFG_S3_CREDS_ENV },
	{ "web_identity", CFG_S3_CREDS_WEB_IDENTITY },
	{ NULL, 0 }
};

/* storage.s3.credentials: env, web_identity, or {access_key_file, secret_key_file} */
static void
config_parse_s3_credentials(struct config_parse *p, yaml_node_t *n, void *obj)
{
	static const struct config_entry named = CONFIG_ENUM_FIELD("credentials", struct cfg_s3,
	    credentials, .what = "storage.s3.credentials", .names = config_s3_creds,
	    .bad = "storage.s3.credentials must be env, web_identity or {access_key_file, "
	    "secret_key_file}", .quote = true);
	struct cfg_s3 *s = obj;

	if (n->type == YAML_MAPPING_NODE) {
		s->credentials = CFG_S3_CREDS_FILES;
		config_walk_map(p, n, "storage.s3.credentials", config_s3_files_entries, s);
		if (s->access_key_file == NULL || s->secret_key_file == NULL)
			config_error(p, n, "storage.s3.credentials needs access_key_file and "
			    "secret_key_file");
		return;
	}
	config_read_value(p, n, &named, s);
}

static const struct config_entry config_s3_entries[] = {
	CONFIG_FIELD("endpoint", CONFIG_STRING, struct cfg_s3, endpoint,
	    .what = "storage.s3.endpoint", .ok = config_s3_endpoint_ok,
	    .bad = "storage.s3.endpoint must be https://HOST[:PORT] (or http://), not \"%s\""),
	CONFIG_FIELD("region", CONFIG_STRING, struct cfg_s3, region, .what = "storage.s3.region",
	    .ok = config_s3_region_ok, .bad = "storage.s3.region must be a region name like "
	    "eu-west-1"),
	CONFIG_FIELD("bucket", CONFIG_STRING, struct cfg_s3, bucket, .what = "storage.s3.bucket",
	    .ok = config_s3_bucket_ok, .bad = "storage.s3.bucket must be a bucket name: 3 to 63 "
	    "of a-z 0-9 . -"),
	CONFIG_FIELD("prefix", CONFIG_STRING, struct cfg_s3, prefix, .what = "storage.s3.prefix",
	    .ok = config_s3_prefix_ok, .empty_ok = true, .bad = "storage.s3.prefix must be at "
	    "most 512 of A-Z a-z 0-9 . _ / -, not starting with / and without // or .."),
	CONFIG_FIELD("path_style", CONFIG_BOOL, struct cfg_s3, path_style,
	    .what = "storage.s3.path_style"),
	CONFIG_CALL_FIELD("credentials", config_parse_s3_credentials),
	CONFIG_INT("segment_seconds", CONFIG_UINT, struct cfg_s3, segment_seconds, 1, 3600,
	    .what = "storage.s3.segment_seconds"),
	CONFIG_FIELD("keep_local", CONFIG_BOOL, struct cfg_s3, keep_local,
	    .what = "storage.s3.keep_local"),
	/* S3's bounds: parts of 5 MiB at least (the last aside), 5 GiB in one PUT at most. */
	CONFIG_INT("multipart_threshold", CONFIG_SIZE, struct cfg_s3, multipart_threshold,
	    5ull << 20, 5ull << 30, .what = "storage.s3.multipart_threshold"),
	CONFIG_INT("part_size", CONFIG_SIZE, struct cfg_s3, part_size, 5ull << 20, 5ull << 30,
	    .what = "storage.s3.part_size"),
	CONFIG_END
};

/* storage.s3 */
static void
config_parse_storage_s3(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_s3 *s = obj;

	s->enabled = true;
	s->line = (int)n->start_mark.line + 1;
	s->segment_seconds = 10;
	s->multipart_threshold = 5ull << 30;
	s->part_size = 64ull << 20;
	config_walk_map(p, n, "storage.s3", config_s3_entries, s);
	if (s->endpoint == NULL)
		config_error(p, n, "storage.s3 needs an endpoint");
	if (s->bucket == NULL)
		config_error(p, n, "storage.s3 needs a bucket");
	if (s->region == NULL && (s->region = config_strdup(p, "us-east-1")) == NULL)
		return;
	if (s->prefix == NULL && (s->prefix = config_strdup(p, "")) == NULL)
		return;
	if (s->endpoint != NULL && strncmp(s->endpoint, "http://", 7) == 0 &&
	    strncmp(s->endpoint, "http://127.", 11) != 0 &&
	    strncmp(s->endpoint, "http://localhost", 16) != 0 &&
	    strncmp(s->endpoint, "http://[::1]", 12) != 0)
		config_warn_line(p, s->line, "storage.s3.endpoint %s is plain http: recordings and "
		    "request signatures cross the network unencrypted", s->endpoint);
}

/* storage: absent or empty, recordings stay in the local directory only. */
const struct config_entry config_storage_entries[] = {
	CONFIG_CALL_FIELD("s3", config_parse_storage_s3),
	CONFIG_END
};

/* Free storage.s3's strings. */
void
config_free_storage(struct config *c)
{
	free(c->s3.endpoint);
	free(c->s3.region);
	free(c->s3.bucket);
	free(c->s3.prefix);
	free(c->s3.access_key_file);
	free(c->s3.secret_key_file);
}
