/*
 * Broker configuration: libyaml's document API turns the file into a tree
 * of nodes, and tables of typed keys (config-parse.h, read by
 * config-parse.c) walk the tree into a struct config. Every problem is
 * reported with its line and the walk goes on, so one run shows all the
 * mistakes in a file. This file holds the top-level keys, the defaults
 * and checks that span sections, loading and the reference count; each
 * section has its own file (config-users.c, config-rules.c,
 * config-targets.c, config-server.c, config-storage.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <yaml.h>

#include "policy/config-parse.h"

/* The keys at the top of the file. */
static const struct config_entry config_top_entries[] = {
	CONFIG_FIELD("listen", CONFIG_ADDR, struct config, listen_host,
	    .off2 = offsetof(struct config, listen_port)),
	CONFIG_FIELD("metrics_listen", CONFIG_ADDR, struct config, metrics_host,
	    .off2 = offsetof(struct config, metrics_port)),
	CONFIG_CALL_FIELD("peers", config_parse_peers),
	CONFIG_FIELD("peer_listen", CONFIG_ADDR, struct config, peer_host,
	    .off2 = offsetof(struct config, peer_port)),
	CONFIG_FIELD("peer_key", CONFIG_STRING, struct config, peer_key),
	CONFIG_FIELD("peer_keys", CONFIG_CALL, struct config, peer_keys,
	    .parse = config_parse_user_keys),
	CONFIG_FIELD("host_key", CONFIG_STRING, struct config, host_key),
	CONFIG_FIELD("recordings", CONFIG_STRING, struct config, recordings),
	CONFIG_FIELD("storage", CONFIG_MAP, struct config, s3, .map = config_storage_entries),
	CONFIG_FIELD("audit_log", CONFIG_STRING, struct config, audit_log),
	CONFIG_CALL_FIELD("users", config_parse_users),
	CONFIG_CALL_FIELD("rules", config_parse_rules),
	{ .key = "targets", .type = CONFIG_MAP, .map = config_target_entries },
	CONFIG_INT("max_auth_tries", CONFIG_UINT, struct config, max_auth_tries, 1, 100),
	CONFIG_INT("login_grace_time", CONFIG_DURATION, struct config, login_grace_time, 1, 3600),
	CONFIG_INT("shutdown_grace", CONFIG_DURATION, struct config, shutdown_grace, 0, 86400),
	CONFIG_INT("max_connections", CONFIG_UINT, struct config, max_connections, 1, 1000000),
	CONFIG_INT("max_unauthenticated_per_address", CONFIG_UINT, struct config,
	    max_unauthenticated_per_address, 1, 100000),
	CONFIG_CALL_FIELD("auth_failure_delay", config_parse_auth_failure_delay),
	CONFIG_CALL_FIELD("redact", config_parse_redact),
	CONFIG_FIELD("signing_key", CONFIG_STRING, struct config, signing_key),
	CONFIG_FIELD("generate_keys", CONFIG_BOOL, struct config, generate_keys),
	CONFIG_FIELD("redaction_key", CONFIG_STRING, struct config, redaction_key),
	CONFIG_CALL_FIELD("groups", config_parse_groups),
	CONFIG_END
};

/* A key file's default: NAME in host_key's directory. */
static void
config_key_default(struct config_parse *p, char **key, const char *name)
{
	const struct config *c = p->c;
	const char *slash;

	if (*key != NULL || c->host_key == NULL)
		return;
	slash = strrchr(c->host_key, '/');
	if ((slash != NULL ? asprintf(key, "%.*s/%s", (int)(slash - c->host_key), c->host_key,
	    name) : asprintf(key, "%s", name)) < 0) {
		*key = NULL;
		p->oom = 1;
	}
}

/*
 * Fill in signing_key and redaction_key when they are not given:
 * signing_ed25519 and redaction_key in host_key's directory, so that the
 * broker's keys live together wherever the broker starts.
 */
static void
config_key_defaults(struct config_parse *p)
{
	config_key_default(p, &p->c->signing_key, "signing_ed25519");
	config_key_default(p, &p->c->redaction_key, "redaction_key");
}

/*
 * Checks across sections, once everything is read: the defaults that
 * depend on other keys, peers' needs, and the rules against the users,
 * groups and clusters (config_check_rules).
 */
static void
config_check(struct config_parse *p)
{
	struct config *c = p->c;

	config_kube_defaults(p);
	config_key_defaults(p);
	if ((c->npeers > 0 || c->peers_dns != NULL) && (c->peer_host == NULL ||
	    c->peer_key == NULL || c->peer_keys.nkeys == 0))
		config_error_at(p, p->name, 1, "peers needs peer_listen, peer_key and peer_keys");
	config_check_rules(p);
}

/* A config holding the defaults and one reference, or NULL. */
static struct config *
config_new(void)
{
	struct config *c;

	if ((c = calloc(1, sizeof *c)) == NULL)
		return NULL;
	c->refs = 1;
	c->listen_port = 2222;
	c->max_auth_tries = 6;
	c->login_grace_time = 30;
	c->shutdown_grace = 10;
	c->max_connections = 1024;
	c->max_unauthenticated_per_address = 10;
	c->auth_failure_delay_ms = 1000;
	if ((c->listen_host = strdup("127.0.0.1")) == NULL ||
	    (c->host_key = strdup("state/host_ed25519")) == NULL ||
	    (c->recordings = strdup("state/recordings")) == NULL ||
	    (c->audit_log = strdup("state/audit.jsonl")) == NULL ||
	    (c->local.shell = strdup("/bin/sh")) == NULL) {
		config_unref(c);
		return NULL;
	}
	return c;
}

/*
 * Report a libyaml parser error with its line. Encoding errors have no
 * mark, only a byte offset, so their line is counted in the input.
 */
static void
config_yaml_error(struct config_parse *p, const yaml_parser_t *parser, const char *yaml,
    size_t len)
{
	const char *problem = parser->problem != NULL ? parser->problem : "unknown error";
	size_t line = parser->problem_mark.line + 1, i;

	if (parser->error == YAML_READER_ERROR) {
		line = 1;
		for (i = 0; i < parser->problem_offset && i < len; i++) {
			if (yaml[i] == '\n')
				line++;
		}
	}
	if (parser->context != NULL)
		config_error_at(p, p->name, line, "YAML syntax error: %s (%s at line %zu)",
		    problem, parser->context, parser->context_mark.line + 1);
	else
		config_error_at(p, p->name, line, "YAML syntax error: %s", problem);
}

/* Load and validate a configuration from a string. */
int
config_load_string(const char *name, const char *yaml, size_t len, FILE *errs,
    struct config **out)
{
	struct config_parse p;
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	yaml_node_t *root;
	int r = -ENOMEM, parser_ok = 0, doc_ok = 0;

	*out = NULL;
	memset(&p, 0, sizeof p);
	p.name = name != NULL ? name : "config";
	p.errs = errs;
	p.doc = &doc;
	if ((p.c = config_new()) == NULL)
		goto out;
	if (!yaml_parser_initialize(&parser))
		goto out;
	parser_ok = 1;
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);	/* no UTF-16 guessing */
	if (!yaml_parser_load(&parser, &doc)) {
		if (parser.error == YAML_MEMORY_ERROR)
			goto out;
		config_yaml_error(&p, &parser, yaml, len);
		r = -EINVAL;
		goto out;
	}
	doc_ok = 1;
	/* An empty file or document: the defaults, and nobody may log in. */
	if ((root = yaml_document_get_root_node(&doc)) != NULL && !config_is_null(root))
		config_walk_map(&p, root, "the configuration", config_top_entries, p.c);

	if (!yaml_parser_load(&parser, &extra)) {
		if (parser.error == YAML_MEMORY_ERROR)
			goto out;
		config_yaml_error(&p, &parser, yaml, len);
	} else {
		if ((root = yaml_document_get_root_node(&extra)) != NULL)
			config_error(&p, root, "only one YAML document is allowed");
		yaml_document_delete(&extra);
	}
	config_check(&p);
	if (p.oom)
		goto out;
	r = p.nerrors > 0 ? -EINVAL : 0;
	if (r == 0) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0, i;

		/* Which text is in force, for the audit log; empty if it cannot be told. */
		if (EVP_Digest(yaml, len, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32) {
			for (i = 0; i < mdlen; i++)
				snprintf(p.c->sha256 + 2 * i, 3, "%02x", md[i]);
		}
		*out = p.c;
		p.c = NULL;	/* transferred */
	}
out:
	if (r == -ENOMEM && errs != NULL)
		fprintf(errs, "%s: out of memory\n", p.name);
	if (doc_ok)
		yaml_document_delete(&doc);
	if (parser_ok)
		yaml_parser_delete(&parser);
	config_unref(p.c);
	return r;
}

/* Load and validate a configuration file that only its owner may write. */
int
config_load(const char *path, FILE *errs, struct config **out)
{
	struct config *c = NULL;
	char why[512], *buf = NULL;
	size_t len;
	int r;

	*out = NULL;
	if ((r = config_read_file(path, &buf, &len, why, sizeof why)) != 0) {
		if (errs != NULL)
			fprintf(errs, "%s: %s\n", path, why);
		goto out;
	}
	if ((r = config_load_string(path, buf, len, errs, &c)) != 0)
		goto out;
	if ((c->path = strdup(path)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	*out = c;
	c = NULL;	/* transferred */
out:
	config_unref(c);
	free(buf);
	return r;
}

/* Take another reference to c. */
struct config *
config_ref(struct config *c)
{
	if (c != NULL)
		c->refs++;
	return c;
}

/* Drop a reference to c and free everything when it was the last. */
void
config_unref(struct config *c)
{
	if (c == NULL || --c->refs > 0)
		return;
	config_free_users(c);
	config_free_rules(c);
	config_free_targets(c);
	config_free_storage(c);
	free(c->path);
	free(c->listen_host);
	free(c->metrics_host);
	free(c->peer_host);
	free(c->peer_key);
	config_free_strings(c->peers, c->npeers);
	free(c->peers_dns);
	free(c->host_key);
	free(c->signing_key);
	free(c->redaction_key);
	free(c->recordings);
	free(c->audit_log);
	free(c);
}
