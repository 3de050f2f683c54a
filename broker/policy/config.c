/*
 * Broker configuration: libyaml's document API turns the file into a tree
 * of nodes, and the tables below walk the tree into a struct config.
 * Every problem is reported with its line and the walk goes on, so one
 * run shows all the mistakes in a file.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <openssl/evp.h>
#include <yaml.h>

#include "policy/config.h"
#include "policy/guard.h"
#include "base/log.h"
#include "policy/redact.h"
#include "s3.h"

#define CONFIG_FILE_MAX		(1024 * 1024)	/* config and authorized_keys files */
#define CONFIG_NAME_MAX		255		/* user and group names */
#define CONFIG_PATTERN_MAX	253		/* target patterns, as target names */
#define CONFIG_KEY_LINE_MAX	16384		/* one public key line */
#define CONFIG_RSA_MIN_BITS	2048

/* Where one parse stands: the document, the config being filled, the tally. */
struct config_parse {
	const char *name;	/* file name used in messages */
	FILE *errs;
	yaml_document_t *doc;
	struct config *c;
	unsigned nerrors;
	int oom;		/* an allocation failed: the result is -ENOMEM */
};

/* A key the mapping walker knows; parse NULL means accepted and ignored. */
struct config_entry {
	const char *key;
	void (*parse)(struct config_parse *, yaml_node_t *, void *);
};

static void config_free_strings(char **list, size_t n);
static void config_vreport(struct config_parse *, const char *, size_t, int, const char *,
    va_list) __attribute__((format(printf, 5, 0)));

/* Print one problem as "FILE:LINE: message" (LINE 0: no line) and count errors. */
static void
config_vreport(struct config_parse *p, const char *file, size_t line, int warning,
    const char *fmt, va_list ap)
{
	if (!warning)
		p->nerrors++;
	if (p->errs == NULL)
		return;
	if (line > 0)
		fprintf(p->errs, "%s:%zu: %s", file, line, warning ? "warning: " : "");
	else
		fprintf(p->errs, "%s: %s", file, warning ? "warning: " : "");
	vfprintf(p->errs, fmt, ap);
	fputc('\n', p->errs);
}

static void config_error(struct config_parse *, const yaml_node_t *, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static void config_error_at(struct config_parse *, const char *, size_t, const char *, ...)
    __attribute__((format(printf, 4, 5)));
static void config_warn_line(struct config_parse *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* Report an error at the line where node n starts. */
static void
config_error(struct config_parse *p, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_vreport(p, p->name, n != NULL ? n->start_mark.line + 1 : 0, 0, fmt, ap);
	va_end(ap);
}

/* Report an error in another file (an authorized_keys file) or without a line. */
static void
config_error_at(struct config_parse *p, const char *file, size_t line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_vreport(p, file, line, 0, fmt, ap);
	va_end(ap);
}

/* Report a warning at a line of the config file. */
static void
config_warn_line(struct config_parse *p, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_vreport(p, p->name, (size_t)line, 1, fmt, ap);
	va_end(ap);
}

/* Copy s, noting an allocation failure in p. */
static char *
config_strdup(struct config_parse *p, const char *s)
{
	char *r;

	if ((r = strdup(s)) == NULL)
		p->oom = 1;
	return r;
}

/* The node with this id in the document being parsed. */
static yaml_node_t *
config_node(struct config_parse *p, int id)
{
	return yaml_document_get_node(p->doc, id);
}

/* Whether n is YAML's null: "~", "null" or nothing, written plain. */
static int
config_is_null(const yaml_node_t *n)
{
	const char *v;

	if (n->type != YAML_SCALAR_NODE)
		return 0;
	if (n->tag != NULL && strcmp((const char *)n->tag, YAML_NULL_TAG) == 0)
		return 1;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	v = (const char *)n->data.scalar.value;
	return *v == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	    strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* The text of a string node, or NULL after reporting that what is not a string. */
static const char *
config_scalar(struct config_parse *p, const yaml_node_t *n, const char *what)
{
	const char *v;

	if (n->type != YAML_SCALAR_NODE || config_is_null(n)) {
		config_error(p, n, "%s must be a string", what);
		return NULL;
	}
	v = (const char *)n->data.scalar.value;
	if (strlen(v) != n->data.scalar.length) {
		config_error(p, n, "%s contains a NUL byte", what);
		return NULL;
	}
	return v;
}

/* Replace *dst with a copy of the non-empty string in n. */
static void
config_set_string(struct config_parse *p, yaml_node_t *n, const char *what, char **dst)
{
	const char *v;
	char *copy;

	if ((v = config_scalar(p, n, what)) == NULL)
		return;
	if (*v == '\0') {
		config_error(p, n, "%s must not be empty", what);
		return;
	}
	if ((copy = config_strdup(p, v)) == NULL)
		return;
	free(*dst);
	*dst = copy;
}

/* Whether s is a user or group name: [A-Za-z0-9._@:+/-], 1..255, no leading '-' or '.'. */
static int
config_name_ok(const char *s)
{
	size_t n;

	if (*s == '\0' || *s == '-' || *s == '.')
		return 0;
	for (n = 0; s[n] != '\0'; n++) {
		if (n >= CONFIG_NAME_MAX)
			return 0;
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789._@:+/-", s[n]) == NULL)
			return 0;
	}
	return 1;
}

/*
 * Whether s is a target pattern: the characters of a target name plus the
 * fnmatch(3) ones (* ? [ ] !), 1..253 long, no leading '-'.
 */
static int
config_pattern_ok(const char *s)
{
	size_t n;

	if (*s == '\0' || *s == '-')
		return 0;
	for (n = 0; s[n] != '\0'; n++) {
		if (n >= CONFIG_PATTERN_MAX)
			return 0;
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789._:/-*?[]!", s[n]) == NULL)
			return 0;
	}
	return 1;
}

/* Read a list of strings (null: empty), checking each with ok when not NULL. */
static void
config_set_list(struct config_parse *p, yaml_node_t *n, const char *what,
    int (*ok)(const char *), const char *okwhat, char ***list, size_t *count)
{
	yaml_node_item_t *item;
	yaml_node_t *in;
	const char *v;
	char **l = NULL, *s;
	size_t max, i, cnt = 0;

	if (config_is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		config_error(p, n, "%s must be a list of strings", what);
		return;
	}
	max = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (max == 0)
		return;
	if ((l = calloc(max, sizeof *l)) == NULL) {
		p->oom = 1;
		return;
	}
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		in = config_node(p, *item);
		if ((v = config_scalar(p, in, what)) == NULL)
			continue;
		if (ok != NULL && !ok(v)) {
			config_error(p, in, "%s: \"%s\" is not a valid %s", what, v, okwhat);
			continue;
		}
		for (i = 0; i < cnt; i++) {
			if (strcmp(l[i], v) == 0)
				break;
		}
		if (i < cnt)
			continue;	/* a repeat changes nothing */
		if ((s = config_strdup(p, v)) == NULL)
			break;
		l[cnt++] = s;
	}
	config_free_strings(*list, *count);
	*list = l;
	*count = cnt;
}

/* Read an unsigned decimal integer in [min, max]. */
static int
config_uint(struct config_parse *p, yaml_node_t *n, const char *what,
    unsigned long long min, unsigned long long max, unsigned long long *out)
{
	const char *v, *s;
	unsigned long long r = 0;

	if (n->type != YAML_SCALAR_NODE || config_is_null(n)) {
		config_error(p, n, "%s must be a number", what);
		return -1;
	}
	v = (const char *)n->data.scalar.value;
	if (*v == '\0' || v[strspn(v, "0123456789")] != '\0' ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
		config_error(p, n, "%s must be a number, not \"%s\"", what, v);
		return -1;
	}
	for (s = v; *s != '\0' && r <= max; s++)
		r = r * 10 + (unsigned long long)(*s - '0');
	if (r < min || r > max) {
		config_error(p, n, "%s must be from %llu to %llu", what, min, max);
		return -1;
	}
	*out = r;
	return 0;
}

/*
 * Read a duration in [min, max] seconds: a number of seconds, or numbers
 * each followed by s, m or h ("30s", "2m", "1m30s").
 */
static int
config_duration(struct config_parse *p, yaml_node_t *n, const char *what,
    unsigned long long min, unsigned long long max, unsigned long long *out)
{
	const char *s;
	unsigned long long total = 0, num, mul;
	int units = 0;

	if (n->type != YAML_SCALAR_NODE || config_is_null(n))
		goto bad;
	s = (const char *)n->data.scalar.value;
	if (*s == '\0')
		goto bad;
	while (*s != '\0') {
		if (*s < '0' || *s > '9')
			goto bad;
		for (num = 0; *s >= '0' && *s <= '9'; s++) {
			num = num * 10 + (unsigned long long)(*s - '0');
			if (num > max)
				goto range;
		}
		switch (*s) {
		case '\0':
			if (units)
				goto bad;	/* "1m30": the unit of 30 is missing */
			mul = 1;
			break;
		case 's':
			mul = 1;
			break;
		case 'm':
			mul = 60;
			break;
		case 'h':
			mul = 3600;
			break;
		default:
			goto bad;
		}
		if (*s != '\0') {
			s++;
			units = 1;
		}
		total += num * mul;
		if (total > max)
			goto range;
	}
	if (total < min)
		goto range;
	*out = total;
	return 0;
bad:
	config_error(p, n, "%s must be a duration: seconds, or a number with s, m or h "
	    "(\"30s\", \"2m\")", what);
	return -1;
range:
	config_error(p, n, "%s must be from %llu to %llu seconds", what, min, max);
	return -1;
}

/* Read a boolean: true or false, written plain (True, TRUE, False, FALSE too). */
static int
config_bool(struct config_parse *p, yaml_node_t *n, const char *what, bool *out)
{
	static const char *const yes[] = { "true", "True", "TRUE" };
	static const char *const no[] = { "false", "False", "FALSE" };
	const char *v;
	size_t i;

	if (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		v = (const char *)n->data.scalar.value;
		for (i = 0; i < 3; i++) {
			if (strcmp(v, yes[i]) == 0 || strcmp(v, no[i]) == 0) {
				*out = strcmp(v, yes[i]) == 0;
				return 0;
			}
		}
	}
	config_error(p, n, "%s must be true or false", what);
	return -1;
}

/*
 * Read a size in bytes in [min, max]: a number of bytes, or a number with
 * a unit as Kubernetes writes quantities: k, M, G, T (also kB, KB, MB, GB,
 * TB) are powers of 1000; Ki, Mi, Gi, Ti (also KiB, MiB, GiB, TiB) powers
 * of 1024; B is bytes. "100MB" is 100000000, "1GiB" 1073741824, "512k"
 * 512000.
 */
static int
config_size(struct config_parse *p, yaml_node_t *n, const char *what,
    unsigned long long min, unsigned long long max, unsigned long long *out)
{
	static const struct {
		const char *unit;
		unsigned long long mul;
	} units[] = {
		{ "", 1 }, { "B", 1 },
		{ "k", 1000ull }, { "K", 1000ull }, { "kB", 1000ull }, { "KB", 1000ull },
		{ "M", 1000000ull }, { "MB", 1000000ull },
		{ "G", 1000000000ull }, { "GB", 1000000000ull },
		{ "T", 1000000000000ull }, { "TB", 1000000000000ull },
		{ "Ki", 1ull << 10 }, { "KiB", 1ull << 10 },
		{ "Mi", 1ull << 20 }, { "MiB", 1ull << 20 },
		{ "Gi", 1ull << 30 }, { "GiB", 1ull << 30 },
		{ "Ti", 1ull << 40 }, { "TiB", 1ull << 40 },
	};
	const char *s;
	unsigned long long num = 0;
	size_t i;

	if (n->type != YAML_SCALAR_NODE || config_is_null(n))
		goto bad;
	s = (const char *)n->data.scalar.value;
	if (*s < '0' || *s > '9')
		goto bad;
	for (; *s >= '0' && *s <= '9'; s++) {
		num = num * 10 + (unsigned long long)(*s - '0');
		if (num > max)
			goto range;
	}
	for (i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(s, units[i].unit) == 0)
			break;
	}
	if (i == sizeof units / sizeof units[0])
		goto bad;
	if (num > max / units[i].mul)
		goto range;
	num *= units[i].mul;
	if (num < min)
		goto range;
	*out = num;
	return 0;
bad:
	config_error(p, n, "%s must be a size: bytes, or a number with kB, MB, GB, TB "
	    "(powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), like \"100MB\"", what);
	return -1;
range:
	config_error(p, n, "%s must be from %llu to %llu bytes", what, min, max);
	return -1;
}

/*
 * Walk a mapping: each key must be a string, appear once and be in the
 * table; its value goes to the entry's parser with obj.
 */
static void
config_walk_map(struct config_parse *p, yaml_node_t *n, const char *what,
    const struct config_entry *table, void *obj)
{
	yaml_node_pair_t *pair, *prev;
	yaml_node_t *k, *pk;
	const struct config_entry *e;
	const char *key;

	if (n->type != YAML_MAPPING_NODE) {
		config_error(p, n, "%s must be a mapping of keys to values", what);
		return;
	}
	for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
		k = config_node(p, pair->key);
		if (k->type != YAML_SCALAR_NODE) {
			config_error(p, k, "keys in %s must be strings", what);
			continue;
		}
		key = (const char *)k->data.scalar.value;
		for (prev = n->data.mapping.pairs.start; prev < pair; prev++) {
			pk = config_node(p, prev->key);
			if (pk->type == YAML_SCALAR_NODE &&
			    strcmp((const char *)pk->data.scalar.value, key) == 0)
				break;
		}
		if (prev < pair) {
			config_error(p, k, "duplicate key \"%s\" in %s (first at line %zu)", key,
			    what, pk->start_mark.line + 1);
			continue;
		}
		for (e = table; e->key != NULL; e++) {
			if (strcmp(e->key, key) == 0)
				break;
		}
		if (e->key == NULL) {
			config_error(p, k, "unknown key \"%s\" in %s", key, what);
			continue;
		}
		if (e->parse != NULL)
			e->parse(p, config_node(p, pair->value), obj);
	}
}

/* Free one key's strings and libssh key. */
static void
config_free_key(struct cfg_key *k)
{
	free(k->type);
	free(k->base64);
	free(k->comment);
	free(k->fingerprint);
	if (k->pubkey != NULL)
		ssh_key_free(k->pubkey);
	memset(k, 0, sizeof *k);
}

/* Free a list of n strings. */
static void
config_free_strings(char **list, size_t n)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* Decode standard base64 into a new buffer; -EINVAL if it is not base64. */
static int
config_base64_decode(const char *b64, unsigned char **out, size_t *outlen)
{
	unsigned char *buf;
	size_t len = strlen(b64), pad = 0;
	int n;

	*out = NULL;
	*outlen = 0;
	if (len == 0 || len % 4 != 0 || len > CONFIG_KEY_LINE_MAX)
		return -EINVAL;
	if (b64[len - 1] == '=')
		pad++;
	if (b64[len - 2] == '=')
		pad++;
	if ((buf = malloc(len / 4 * 3 + 1)) == NULL)
		return -ENOMEM;
	n = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)len);
	if (n < 0 || (size_t)n < pad) {
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	*outlen = (size_t)n - pad;
	return 0;
}

/* Read one SSH wire string (uint32 length, bytes) from *p; -EINVAL past end. */
static int
config_blob_string(const unsigned char **p, size_t *left, const unsigned char **s,
    size_t *slen)
{
	size_t n;

	if (*left < 4)
		return -EINVAL;
	n = (size_t)(*p)[0] << 24 | (size_t)(*p)[1] << 16 | (size_t)(*p)[2] << 8 | (*p)[3];
	if (n > *left - 4)
		return -EINVAL;
	*s = *p + 4;
	*slen = n;
	*p += 4 + n;
	*left -= 4 + n;
	return 0;
}

/*
 * Check the blob against its declared type: the blob names the same type
 * and an RSA modulus has at least CONFIG_RSA_MIN_BITS bits.
 */
static int
config_key_blob_check(const char *type, const char *b64, char *why, size_t whylen)
{
	unsigned char *blob = NULL;
	const unsigned char *p, *s, *mod;
	size_t left, slen, modlen, bits;
	unsigned char top;
	int r;

	if ((r = config_base64_decode(b64, &blob, &left)) != 0) {
		if (r == -EINVAL)
			snprintf(why, whylen, "key data is not valid base64");
		goto out;
	}
	p = blob;
	r = -EINVAL;
	if (config_blob_string(&p, &left, &s, &slen) != 0 || slen != strlen(type) ||
	    memcmp(s, type, slen) != 0) {
		snprintf(why, whylen, "key data is not a %s key", type);
		goto out;
	}
	if (strcmp(type, "ssh-rsa") == 0) {
		if (config_blob_string(&p, &left, &s, &slen) != 0 ||
		    config_blob_string(&p, &left, &mod, &modlen) != 0) {
			snprintf(why, whylen, "key data is not a %s key", type);
			goto out;
		}
		while (modlen > 0 && *mod == 0) {
			mod++;
			modlen--;
		}
		bits = modlen * 8;
		if (modlen > 0) {
			for (top = mod[0]; (top & 0x80) == 0; top <<= 1)
				bits--;
		}
		if (bits < CONFIG_RSA_MIN_BITS) {
			snprintf(why, whylen, "RSA key has %zu bits; at least %d are required",
			    bits, CONFIG_RSA_MIN_BITS);
			goto out;
		}
	}
	r = 0;
out:
	free(blob);
	return r;
}

/* Whether libssh's key type is one the broker accepts for users. */
static int
config_key_type_ok(enum ssh_keytypes_e t)
{
	switch (t) {
	case SSH_KEYTYPE_ED25519:
	case SSH_KEYTYPE_ECDSA_P256:
	case SSH_KEYTYPE_ECDSA_P384:
	case SSH_KEYTYPE_ECDSA_P521:
	case SSH_KEYTYPE_RSA:
		return 1;
	default:
		return 0;
	}
}

/* Whether a word after the first of line names a key type (options came first). */
static int
config_key_has_type_word(const char *line)
{
	char word[64];
	size_t n;

	line += strcspn(line, " \t");
	for (;;) {
		line += strspn(line, " \t");
		if ((n = strcspn(line, " \t")) == 0)
			return 0;
		if (n < sizeof word) {
			memcpy(word, line, n);
			word[n] = '\0';
			if (ssh_key_type_from_name(word) != SSH_KEYTYPE_UNKNOWN)
				return 1;
		}
		line += n;
	}
}

/*
 * Parse one public key line "TYPE BASE64 [COMMENT]" into *k. Returns 0,
 * -ENOENT for a blank or comment line, -EINVAL with the reason in why, or
 * -ENOMEM. Options before the type are refused: dropping from= or
 * command= silently would grant more than the file says.
 */
static int
config_key_parse(const char *line, struct cfg_key *k, char *why, size_t whylen)
{
	char *copy = NULL, *type, *b64, *comment, *end, *b64out = NULL;
	char *fp = NULL;
	unsigned char *hash = NULL;
	size_t hlen = 0;
	enum ssh_keytypes_e t;
	ssh_key key = NULL;
	int r = -ENOMEM;

	memset(k, 0, sizeof *k);
	*why = '\0';
	line += strspn(line, " \t");
	if (*line == '\0' || *line == '#' || *line == '\r' || *line == '\n')
		return -ENOENT;
	if (strlen(line) > CONFIG_KEY_LINE_MAX) {
		snprintf(why, whylen, "key line is longer than %d bytes", CONFIG_KEY_LINE_MAX);
		return -EINVAL;
	}
	if ((copy = strdup(line)) == NULL)
		goto out;
	end = copy + strlen(copy);
	while (end > copy && strchr(" \t\r\n", end[-1]) != NULL)
		*--end = '\0';

	r = -EINVAL;
	type = copy;
	b64 = type + strcspn(type, " \t");
	if (*b64 != '\0')
		*b64++ = '\0';
	b64 += strspn(b64, " \t");
	comment = b64 + strcspn(b64, " \t");
	if (*comment != '\0')
		*comment++ = '\0';
	comment += strspn(comment, " \t");

	t = ssh_key_type_from_name(type);
	if (t == SSH_KEYTYPE_UNKNOWN) {
		if (config_key_has_type_word(line) || strchr(type, '=') != NULL)
			snprintf(why, whylen, "authorized_keys options (\"%.40s\") are not "
			    "supported; remove them or use a separate user", type);
		else if (strncmp(type, "ssh-", 4) == 0 || strncmp(type, "ecdsa-", 6) == 0 ||
		    strncmp(type, "sk-", 3) == 0 || strncmp(type, "rsa-", 4) == 0)
			snprintf(why, whylen, "unsupported key type \"%.40s\" (use ssh-ed25519, "
			    "ecdsa-sha2-nistp256/384/521 or ssh-rsa)", type);
		else
			snprintf(why, whylen, "not a public key: expected \"TYPE BASE64 "
			    "[COMMENT]\", found \"%.40s\"", type);
		goto out;
	}
	if (!config_key_type_ok(t) || strcmp(type, ssh_key_type_to_char(t)) != 0) {
		snprintf(why, whylen, "unsupported key type \"%.40s\" (use ssh-ed25519, "
		    "ecdsa-sha2-nistp256/384/521 or ssh-rsa)", type);
		goto out;
	}
	if (*b64 == '\0') {
		snprintf(why, whylen, "%s key has no key data", type);
		goto out;
	}
	if ((r = config_key_blob_check(type, b64, why, whylen)) != 0)
		goto out;
	r = -EINVAL;
	if (ssh_pki_import_pubkey_base64(b64, t, &key) != SSH_OK || key == NULL) {
		snprintf(why, whylen, "key data is not a valid %s key", type);
		goto out;
	}
	if (ssh_key_type(key) != t ||
	    ssh_pki_export_pubkey_base64(key, &b64out) != SSH_OK ||
	    strcmp(b64out, b64) != 0) {
		snprintf(why, whylen, "key data is not a valid %s key (trailing or "
		    "mismatched data)", type);
		goto out;
	}
	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != 0 ||
	    (fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = -ENOMEM;
	if ((k->type = strdup(type)) == NULL || (k->base64 = strdup(b64)) == NULL ||
	    (k->fingerprint = strdup(fp)) == NULL ||
	    (*comment != '\0' && (k->comment = strdup(comment)) == NULL)) {
		config_free_key(k);
		goto out;
	}
	k->pubkey = key;
	key = NULL;	/* transferred */
	r = 0;
out:
	if (hash != NULL)
		ssh_clean_pubkey_hash(&hash);
	if (fp != NULL)
		ssh_string_free_char(fp);
	if (b64out != NULL)
		ssh_string_free_char(b64out);
	if (key != NULL)
		ssh_key_free(key);
	free(copy);
	return r;
}

/* Append k to the user's keys (taking its contents), unless it is a repeat. */
static void
config_user_add_key(struct config_parse *p, struct cfg_user *u, struct cfg_key *k)
{
	struct cfg_key *keys;
	size_t i;

	for (i = 0; i < u->nkeys; i++) {
		if (strcmp(u->keys[i].base64, k->base64) == 0) {
			config_free_key(k);
			return;
		}
	}
	if ((keys = reallocarray(u->keys, u->nkeys + 1, sizeof *keys)) == NULL) {
		p->oom = 1;
		config_free_key(k);
		return;
	}
	u->keys = keys;
	u->keys[u->nkeys++] = *k;
	memset(k, 0, sizeof *k);	/* transferred */
}

/*
 * Read a whole regular file of at most max bytes that neither group nor
 * others may write. On failure returns a negative errno with the reason in why.
 */
static int
config_read_file(const char *path, char **out, size_t *outlen, char *why, size_t whylen)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd = -1, r;

	*out = NULL;
	*outlen = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) == -1) {
		r = -errno;
		snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == -1) {
		r = -errno;
		snprintf(why, whylen, "cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	r = -EINVAL;
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s is not a regular file", path);
		goto out;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		r = -EPERM;
		snprintf(why, whylen, "%s is writable by group or others; fix with: "
		    "chmod go-w %s", path, path);
		goto out;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		r = -EPERM;
		snprintf(why, whylen, "%s is owned by uid %u, not by root or the broker's "
		    "user; fix with: chown", path, (unsigned)st.st_uid);
		goto out;
	}
	if (st.st_size > CONFIG_FILE_MAX) {
		r = -EFBIG;
		snprintf(why, whylen, "%s is larger than %d bytes", path, CONFIG_FILE_MAX);
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		r = -ENOMEM;
		snprintf(why, whylen, "out of memory reading %s", path);
		goto out;
	}
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = -errno;
			snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;	/* transferred */
	r = 0;
out:
	free(buf);
	if (fd != -1)
		close(fd);
	return r;
}

/* Load the keys of an authorized_keys file for user u; n is the path's node. */
static void
config_user_authorized_keys(struct config_parse *p, struct cfg_user *u, yaml_node_t *n,
    const char *path)
{
	struct cfg_key k;
	char why[512], *buf = NULL, *line, *next;
	size_t len, lineno = 0;
	int r;

	if ((r = config_read_file(path, &buf, &len, why, sizeof why)) != 0) {
		if (r == -ENOMEM)
			p->oom = 1;
		else
			config_error(p, n, "authorized_keys: %s", why);
		return;
	}
	if (strlen(buf) != len) {
		config_error(p, n, "authorized_keys: %s contains a NUL byte", path);
		goto out;
	}
	for (line = buf; line != NULL && *line != '\0'; line = next) {
		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		r = config_key_parse(line, &k, why, sizeof why);
		if (r == -ENOENT)
			continue;
		if (r == -ENOMEM) {
			p->oom = 1;
			break;
		}
		if (r != 0) {
			config_error_at(p, path, lineno, "%s", why);
			continue;
		}
		config_user_add_key(p, u, &k);
	}
out:
	free(buf);
}

/* users[].name */
static void
config_parse_user_name(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_user *u = obj;
	const char *v;

	if ((v = config_scalar(p, n, "user name")) == NULL)
		return;
	/* An invalid name is still kept, so no "user has no name" follows. */
	if (!config_name_ok(v))
		config_error(p, n, "user name \"%s\" is not valid: use letters, digits and "
		    "._@:+/- (not first - or .), at most %d", v, CONFIG_NAME_MAX);
	free(u->name);
	u->name = config_strdup(p, v);
}

/* users[].keys: public key lines. */
static void
config_parse_user_keys(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_user *u = obj;
	struct cfg_key k;
	yaml_node_item_t *item;
	yaml_node_t *in;
	const char *v;
	char why[512];
	int r;

	if (config_is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		config_error(p, n, "keys must be a list of public keys");
		return;
	}
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		in = config_node(p, *item);
		if ((v = config_scalar(p, in, "key")) == NULL)
			continue;
		if (strpbrk(v, "\r\n") != NULL) {
			config_error(p, in, "a key must be on one line");
			continue;
		}
		r = config_key_parse(v, &k, why, sizeof why);
		if (r == -ENOENT)
			config_error(p, in, "empty key");
		else if (r == -ENOMEM)
			p->oom = 1;
		else if (r != 0)
			config_error(p, in, "%s", why);
		else
			config_user_add_key(p, u, &k);
	}
}

/* users[].authorized_keys: a file of public keys. */
static void
config_parse_user_authorized_keys(struct config_parse *p, yaml_node_t *n, void *obj)
{
	const char *v;

	if ((v = config_scalar(p, n, "authorized_keys")) == NULL)
		return;
	if (*v == '\0') {
		config_error(p, n, "authorized_keys must not be empty");
		return;
	}
	config_user_authorized_keys(p, obj, n, v);
}

/* users[].groups */
static void
config_parse_user_groups(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_user *u = obj;

	config_set_list(p, n, "groups", config_name_ok, "group name", &u->groups,
	    &u->ngroups);
}

/* Whether s names a role of live supervision (docs/live.md). */
static int
config_role_ok(const char *s)
{
	return strcmp(s, "auditor") == 0 || strcmp(s, "approver") == 0;
}

/* users[].roles */
static void
config_parse_user_roles(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_user *u = obj;

	config_set_list(p, n, "roles", config_role_ok, "role (auditor or approver)",
	    &u->roles, &u->nroles);
}

static const struct config_entry config_user_entries[] = {
	{ "name", config_parse_user_name },
	{ "keys", config_parse_user_keys },
	{ "authorized_keys", config_parse_user_authorized_keys },
	{ "groups", config_parse_user_groups },
	{ "roles", config_parse_user_roles },
	{ NULL, NULL }
};

/* users: a list of mappings; names are unique and every user has a key. */
static void
config_parse_users(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;
	struct cfg_user *u;
	yaml_node_item_t *item;
	yaml_node_t *in;
	size_t max, i;

	if (config_is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		config_error(p, n, "users must be a list");
		return;
	}
	max = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (max == 0 || c->users != NULL)
		return;
	if ((c->users = calloc(max, sizeof *c->users)) == NULL) {
		p->oom = 1;
		return;
	}
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		in = config_node(p, *item);
		u = &c->users[c->nusers++];
		u->line = (int)in->start_mark.line + 1;
		if (in->type != YAML_MAPPING_NODE) {
			config_error(p, in, "each user must be a mapping with name and keys");
			continue;
		}
		config_walk_map(p, in, "user", config_user_entries, u);
		if (u->name == NULL) {
			config_error(p, in, "user has no name");
			continue;
		}
		for (i = 0; i + 1 < c->nusers; i++) {
			if (c->users[i].name != NULL && strcmp(c->users[i].name, u->name) == 0)
				break;
		}
		if (i + 1 < c->nusers)
			config_error(p, in, "duplicate user \"%s\" (first at line %d)", u->name,
			    c->users[i].line);
		if (u->nkeys == 0)
			config_error(p, in, "user \"%s\" has no keys (keys or authorized_keys)",
			    u->name);
	}
}

/* rules[].users */
static void
config_parse_rule_users(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;

	config_set_list(p, n, "users", config_name_ok, "user name", &r->users, &r->nusers);
}

/* rules[].groups */
static void
config_parse_rule_groups(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;

	config_set_list(p, n, "groups", config_name_ok, "group name", &r->groups,
	    &r->ngroups);
}

/* rules[].targets: names or fnmatch(3) patterns. */
static void
config_parse_rule_targets(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;

	config_set_list(p, n, "targets", config_pattern_ok, "target name or pattern",
	    &r->targets, &r->ntargets);
}

/* Free a list of n patterns. */
static void
config_free_patterns(struct cfg_pattern *list, size_t n)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < n; i++)
		guard_pattern_free(&list[i]);
	free(list);
}

/* Free a list of n watch entries. */
static void
config_free_watches(struct cfg_watch *list, size_t n)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < n; i++) {
		guard_pattern_free(&list[i].pattern);
		free(list[i].message);
	}
	free(list);
}

/* Compile the pattern in node n into *pat; false after reporting a problem. */
static bool
config_pattern(struct config_parse *p, yaml_node_t *n, const char *what,
    struct cfg_pattern *pat)
{
	char err[512];
	const char *v;
	int r;

	memset(pat, 0, sizeof *pat);
	if ((v = config_scalar(p, n, what)) == NULL)
		return false;
	if ((r = guard_pattern_compile(pat, v, err, sizeof err)) == -ENOMEM) {
		p->oom = 1;
		return false;
	}
	if (r < 0) {
		if (strncmp(err, "bad regular expression", 22) == 0)
			config_error(p, n, "%s", err);
		else
			config_error(p, n, "%s: %s", what, err);
		return false;
	}
	pat->line = (int)n->start_mark.line + 1;
	return true;
}

/* Read a list of patterns (null: empty), replacing *list. */
static void
config_set_patterns(struct config_parse *p, yaml_node_t *n, const char *what,
    struct cfg_pattern **list, size_t *count)
{
	yaml_node_item_t *item;
	struct cfg_pattern *l;
	size_t max, cnt = 0;

	config_free_patterns(*list, *count);
	*list = NULL;
	*count = 0;
	if (config_is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		config_error(p, n, "%s must be a list of patterns", what);
		return;
	}
	max = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (max == 0)
		return;
	if ((l = calloc(max, sizeof *l)) == NULL) {
		p->oom = 1;
		return;
	}
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		if (config_pattern(p, config_node(p, *item), what, &l[cnt]))
			cnt++;
	}
	*list = l;
	*count = cnt;
}

/* rules[].commands.allow */
static void
config_parse_commands_allow(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;

	r->has_allow = true;
	config_set_patterns(p, n, "commands.allow", &r->allow, &r->nallow);
}

/* rules[].commands.deny */
static void
config_parse_commands_deny(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;

	config_set_patterns(p, n, "commands.deny", &r->deny, &r->ndeny);
}

/* rules[].commands.approve: exec commands that wait for an approver. */
static void
config_parse_commands_approve(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;

	config_set_patterns(p, n, "commands.approve", &r->approve, &r->napprove);
}

/* rules[].commands.approve_timeout */
static void
config_parse_commands_approve_timeout(struct config_parse *p, yaml_node_t *n, void *obj)
{
	unsigned long long v;

	if (config_duration(p, n, "approve_timeout", 1, 7 * 86400, &v) == 0)
		((struct cfg_rule *)obj)->approve_timeout = v;
}

/* rules[].passprompt: prompts after which typed input is masked up to Enter. */
static void
config_parse_rule_passprompt(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;

	config_set_patterns(p, n, "passprompt", &r->passprompt, &r->npassprompt);
}

/* rules[].commands.self_approve */
static void
config_parse_commands_self_approve(struct config_parse *p, yaml_node_t *n, void *obj)
{
	(void)config_bool(p, n, "self_approve", &((struct cfg_rule *)obj)->self_approve);
}

static const struct config_entry config_commands_entries[] = {
	{ "allow", config_parse_commands_allow },
	{ "deny", config_parse_commands_deny },
	{ "approve", config_parse_commands_approve },
	{ "approve_timeout", config_parse_commands_approve_timeout },
	{ "self_approve", config_parse_commands_self_approve },
	{ NULL, NULL }
};

/* rules[].commands: {allow: [...], deny: [...]}, or a list (the allow list). */
static void
config_parse_rule_commands(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;

	if (config_is_null(n))
		return;
	if (n->type == YAML_SEQUENCE_NODE) {
		config_parse_commands_allow(p, n, obj);
		return;
	}
	if (n->type != YAML_MAPPING_NODE) {
		config_error(p, n, "commands must be a mapping with allow and deny lists");
		return;
	}
	config_walk_map(p, n, "commands", config_commands_entries, r);
}

/* rules[].pty */
static void
config_parse_rule_pty(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;
	bool v;

	if (config_bool(p, n, "pty", &v) == 0)
		r->deny_pty = !v;
}

/* rules[].exec */
static void
config_parse_rule_exec(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;
	bool v;

	if (config_bool(p, n, "exec", &v) == 0)
		r->deny_exec = !v;
}

/* rules[].require_reason */
static void
config_parse_rule_require_reason(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;
	bool v;

	if (config_bool(p, n, "require_reason", &v) == 0)
		r->require_reason = v;
}

/* Where a watch entry stands while its keys are read. */
struct config_watch_parse {
	struct cfg_watch *w;
	bool has_pattern;
};

/* rules[].watch[].on: input, output or both */
static void
config_parse_watch_on(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config_watch_parse *wp = obj;
	const char *v;

	if ((v = config_scalar(p, n, "watch on")) == NULL)
		return;
	if (strcmp(v, "input") == 0)
		wp->w->on = CFG_WATCH_INPUT;
	else if (strcmp(v, "output") == 0)
		wp->w->on = CFG_WATCH_OUTPUT;
	else if (strcmp(v, "both") == 0)
		wp->w->on = CFG_WATCH_INPUT | CFG_WATCH_OUTPUT;
	else
		config_error(p, n, "watch on must be input, output or both, not \"%s\"", v);
}

/* rules[].watch[].pattern */
static void
config_parse_watch_pattern(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config_watch_parse *wp = obj;

	guard_pattern_free(&wp->w->pattern);
	wp->has_pattern = true;	/* a bad one was reported already */
	config_pattern(p, n, "watch pattern", &wp->w->pattern);
}

/* rules[].watch[].action: alert or terminate */
static void
config_parse_watch_action(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config_watch_parse *wp = obj;
	const char *v;

	if ((v = config_scalar(p, n, "watch action")) == NULL)
		return;
	if (strcmp(v, "alert") == 0)
		wp->w->action = CFG_WATCH_ALERT;
	else if (strcmp(v, "terminate") == 0)
		wp->w->action = CFG_WATCH_TERMINATE;
	else
		config_error(p, n, "watch action must be alert or terminate, not \"%s\"", v);
}

/* rules[].watch[].message: one line shown to the user */
static void
config_parse_watch_message(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config_watch_parse *wp = obj;
	const char *v;

	if ((v = config_scalar(p, n, "watch message")) == NULL)
		return;
	if (strpbrk(v, "\r\n") != NULL || strlen(v) > 200) {
		config_error(p, n, "watch message must be one line of at most 200 bytes");
		return;
	}
	config_set_string(p, n, "watch message", &wp->w->message);
}

static const struct config_entry config_watch_entries[] = {
	{ "on", config_parse_watch_on },
	{ "pattern", config_parse_watch_pattern },
	{ "action", config_parse_watch_action },
	{ "message", config_parse_watch_message },
	{ NULL, NULL }
};

/*
 * rules[].watch: a list of {on, pattern, action, message}; a plain string
 * is {pattern: STRING} (on input, alert).
 */
static void
config_parse_rule_watch(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;
	struct config_watch_parse wp;
	yaml_node_item_t *item;
	yaml_node_t *in;
	struct cfg_watch *w;
	size_t max;

	config_free_watches(r->watch, r->nwatch);
	r->watch = NULL;
	r->nwatch = 0;
	if (config_is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		config_error(p, n, "watch must be a list of {on, pattern, action}");
		return;
	}
	max = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (max == 0)
		return;
	if ((r->watch = calloc(max, sizeof *r->watch)) == NULL) {
		p->oom = 1;
		return;
	}
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		in = config_node(p, *item);
		w = &r->watch[r->nwatch];
		memset(w, 0, sizeof *w);
		w->line = (int)in->start_mark.line + 1;
		w->on = CFG_WATCH_INPUT;
		w->action = CFG_WATCH_ALERT;
		if (in->type == YAML_SCALAR_NODE) {
			if (config_pattern(p, in, "watch pattern", &w->pattern))
				r->nwatch++;
			continue;
		}
		if (in->type != YAML_MAPPING_NODE) {
			config_error(p, in, "each watch must be a pattern or a mapping with on, "
			    "pattern and action");
			continue;
		}
		wp.w = w;
		wp.has_pattern = false;
		config_walk_map(p, in, "watch", config_watch_entries, &wp);
		if (!wp.has_pattern)
			config_error(p, in, "watch has no pattern");
		if (w->pattern.text == NULL) {
			guard_pattern_free(&w->pattern);
			free(w->message);
			memset(w, 0, sizeof *w);
			continue;
		}
		r->nwatch++;
	}
}

/* rules[].limits.max_sessions */
static void
config_parse_limit_sessions(struct config_parse *p, yaml_node_t *n, void *obj)
{
	unsigned long long v;

	if (config_uint(p, n, "max_sessions", 1, 100000, &v) == 0)
		((struct cfg_limits *)obj)->max_sessions = (unsigned)v;
}

/* rules[].limits.max_duration */
static void
config_parse_limit_duration(struct config_parse *p, yaml_node_t *n, void *obj)
{
	unsigned long long v;

	if (config_duration(p, n, "max_duration", 1, 30 * 86400, &v) == 0)
		((struct cfg_limits *)obj)->max_duration = v;
}

/* rules[].limits.idle_timeout */
static void
config_parse_limit_idle(struct config_parse *p, yaml_node_t *n, void *obj)
{
	unsigned long long v;

	if (config_duration(p, n, "idle_timeout", 1, 30 * 86400, &v) == 0)
		((struct cfg_limits *)obj)->idle_timeout = v;
}

/* rules[].limits.max_output */
static void
config_parse_limit_output(struct config_parse *p, yaml_node_t *n, void *obj)
{
	unsigned long long v;

	if (config_size(p, n, "max_output", 1, 1ull << 50, &v) == 0)
		((struct cfg_limits *)obj)->max_output = v;
}

static const struct config_entry config_limits_entries[] = {
	{ "max_sessions", config_parse_limit_sessions },
	{ "max_duration", config_parse_limit_duration },
	{ "idle_timeout", config_parse_limit_idle },
	{ "max_output", config_parse_limit_output },
	{ NULL, NULL }
};

/* rules[].limits */
static void
config_parse_rule_limits(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;

	if (!config_is_null(n))
		config_walk_map(p, n, "limits", config_limits_entries, &r->limits);
}

/* rules[].on_recording_failure: close (the default) or continue */
static void
config_parse_rule_on_rec_failure(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;
	const char *v = config_scalar(p, n, "on_recording_failure");

	if (v == NULL)
		return;
	if (strcmp(v, "close") == 0)
		r->rec_failure_continue = false;
	else if (strcmp(v, "continue") == 0)
		r->rec_failure_continue = true;
	else
		config_error(p, n, "on_recording_failure must be close or continue");
}

/* Whether s is a word for an argv: printable ASCII without blanks, no leading '-'. */
static int
config_word_ok(const char *s)
{
	size_t n;

	if (*s == '\0' || *s == '-')
		return 0;
	for (n = 0; s[n] != '\0'; n++) {
		if (n >= 4096 || (unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
			return 0;
	}
	return 1;
}

/* rules[].impersonate.user: a user name, "{user}" standing for the podgate user. */
static void
config_parse_imp_user(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;
	const char *v;

	if ((v = config_scalar(p, n, "impersonate.user")) == NULL)
		return;
	if (!config_word_ok(v)) {
		config_error(p, n, "impersonate.user: \"%s\" is not a valid user name", v);
		return;
	}
	config_set_string(p, n, "impersonate.user", &r->as_user);
}

/* rules[].impersonate.groups */
static void
config_parse_imp_groups(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;

	config_set_list(p, n, "impersonate.groups", config_word_ok, "group name",
	    &r->as_groups, &r->nas_groups);
}

static const struct config_entry config_imp_entries[] = {
	{ "user", config_parse_imp_user },
	{ "groups", config_parse_imp_groups },
	{ NULL, NULL }
};

/*
 * rules[].impersonate: {user, groups}, or true for the podgate user with
 * the user's podgate groups, or false.
 */
static void
config_parse_rule_impersonate(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;
	bool on;

	if (n->type == YAML_SCALAR_NODE) {
		if (config_bool(p, n, "impersonate", &on) == 0 && on) {
			r->impersonate = true;
			r->as_user_groups = true;
			config_free_strings(r->as_groups, r->nas_groups);
			r->as_groups = NULL;
			r->nas_groups = 0;
			free(r->as_user);
			r->as_user = config_strdup(p, "{user}");
		}
		return;
	}
	r->impersonate = true;
	config_walk_map(p, n, "impersonate", config_imp_entries, r);
	if (r->as_user == NULL)
		config_error(p, n, "impersonate needs a user (\"{user}\" is the podgate user)");
}

/* rules[].shell: the shell that runs a command ("SHELL -c COMMAND"), or none. */
static void
config_parse_rule_shell(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;
	const char *v;

	if ((v = config_scalar(p, n, "shell")) == NULL)
		return;
	if (!config_word_ok(v)) {
		config_error(p, n, "shell must be a path or a program name, or none");
		return;
	}
	config_set_string(p, n, "shell", &r->shell);
}

/* rules[].interactive_shell: a program or a list tried in order. */
static void
config_parse_rule_interactive(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;
	const char *v;

	if (n->type == YAML_SCALAR_NODE && !config_is_null(n)) {
		if ((v = config_scalar(p, n, "interactive_shell")) == NULL)
			return;
		if (!config_word_ok(v)) {
			config_error(p, n, "interactive_shell must be a path or a program name");
			return;
		}
		config_free_strings(r->interactive, r->ninteractive);
		r->ninteractive = 0;
		if ((r->interactive = calloc(1, sizeof *r->interactive)) == NULL) {
			p->oom = 1;
			return;
		}
		if ((r->interactive[0] = config_strdup(p, v)) != NULL)
			r->ninteractive = 1;
		return;
	}
	config_set_list(p, n, "interactive_shell", config_word_ok, "program",
	    &r->interactive, &r->ninteractive);
}

/* rules[].announce_watchers */
static void
config_parse_rule_announce(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;
	bool v;

	if (config_bool(p, n, "announce_watchers", &v) == 0)
		r->announce_watchers = v;
}

/* Keys of later features are parsed by libyaml (so syntax errors show) and ignored. */
static const struct config_entry config_rule_entries[] = {
	{ "users", config_parse_rule_users },
	{ "groups", config_parse_rule_groups },
	{ "targets", config_parse_rule_targets },
	{ "impersonate", config_parse_rule_impersonate },
	{ "shell", config_parse_rule_shell },
	{ "interactive_shell", config_parse_rule_interactive },
	{ "commands", config_parse_rule_commands },
	{ "pty", config_parse_rule_pty },
	{ "exec", config_parse_rule_exec },
	{ "watch", config_parse_rule_watch },
	{ "require_reason", config_parse_rule_require_reason },
	{ "limits", config_parse_rule_limits },
	{ "on_recording_failure", config_parse_rule_on_rec_failure },
	{ "announce_watchers", config_parse_rule_announce },
	{ "passprompt", config_parse_rule_passprompt },
	{ NULL, NULL }
};

/* rules: a list of mappings, each with users or groups, and targets. */
static void
config_parse_rules(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;
	struct cfg_rule *r;
	yaml_node_item_t *item;
	yaml_node_t *in;
	size_t max;

	if (config_is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		config_error(p, n, "rules must be a list");
		return;
	}
	max = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (max == 0 || c->rules != NULL)
		return;
	if ((c->rules = calloc(max, sizeof *c->rules)) == NULL) {
		p->oom = 1;
		return;
	}
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		in = config_node(p, *item);
		r = &c->rules[c->nrules++];
		r->line = (int)in->start_mark.line + 1;
		if (in->type != YAML_MAPPING_NODE) {
			config_error(p, in, "each rule must be a mapping with users or groups, "
			    "and targets");
			continue;
		}
		config_walk_map(p, in, "rule", config_rule_entries, r);
		if (r->nusers == 0 && r->ngroups == 0)
			config_error(p, in, "rule has no users or groups");
		if (r->ntargets == 0)
			config_error(p, in, "rule has no targets");
	}
}

/* targets.local.shell */
static void
config_parse_local_shell(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_local_target *l = obj;
	const char *v;

	if ((v = config_scalar(p, n, "shell")) == NULL)
		return;
	if (*v != '/') {
		config_error(p, n, "shell must be an absolute path");
		return;
	}
	config_set_string(p, n, "shell", &l->shell);
}

/* targets.local.user */
static void
config_parse_local_user(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_local_target *l = obj;

	if (config_scalar(p, n, "user") != NULL)
		config_set_string(p, n, "user", &l->user);
}

/* targets.local.allow_broker_user */
static void
config_parse_local_allow_broker_user(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_local_target *l = obj;

	(void)config_bool(p, n, "allow_broker_user", &l->allow_broker_user);
}

static const struct config_entry config_local_entries[] = {
	{ "shell", config_parse_local_shell },
	{ "user", config_parse_local_user },
	{ "allow_broker_user", config_parse_local_allow_broker_user },
	{ NULL, NULL }
};

/*
 * The local target's account: it must exist, and be neither root nor the
 * broker's own uid (which can read the signing key, the recordings and
 * the audit log) unless allow_broker_user is true. Another account needs
 * a broker running as root.
 */
static void
config_check_local_user(struct config_parse *p, yaml_node_t *n)
{
	struct cfg_local_target *l = &p->c->local;
	struct passwd *pw;
	uid_t me = geteuid();

	if (l->user == NULL) {
		if (!l->allow_broker_user)
			config_error(p, n, "targets.local needs user: an unprivileged Unix account "
			    "the local target runs as (it must not be able to read the broker's "
			    "keys, recordings or audit log); allow_broker_user: true runs it as "
			    "the broker's own user instead");
		else
			config_warn_line(p, (int)n->start_mark.line + 1, "the local target runs "
			    "as the broker's own user: what it runs can read the signing key, "
			    "the recordings and the audit log");
		return;
	}
	if ((pw = getpwnam(l->user)) == NULL) {
		config_error(p, n, "targets.local.user: no such user \"%s\"", l->user);
		return;
	}
	if (pw->pw_uid == 0 || pw->pw_uid == me) {
		if (!l->allow_broker_user)
			config_error(p, n, "targets.local.user \"%s\" is %s: the local target "
			    "could read the broker's keys, recordings and audit log; name an "
			    "unprivileged account, or set allow_broker_user: true", l->user,
			    pw->pw_uid == 0 ? "root" : "the broker's own user");
		else
			config_warn_line(p, (int)n->start_mark.line + 1, "targets.local.user "
			    "\"%s\" is %s: what the local target runs can read the signing key, "
			    "the recordings and the audit log", l->user,
			    pw->pw_uid == 0 ? "root" : "the broker's own user");
		return;
	}
	if (me != 0)
		config_error(p, n, "targets.local.user \"%s\": the broker must run as root to "
		    "start sessions as another account", l->user);
}

/* targets.local: present (even empty) means enabled. */
static void
config_parse_target_local(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;

	c->local.enabled = true;
	if (!config_is_null(n))
		config_walk_map(p, n, "targets.local", config_local_entries, &c->local);
	config_check_local_user(p, n);
}

/* Whether s is a DNS-1123 label: 1..63 of [a-z0-9-], no '-' at either end. */
static int
config_label_ok(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		if (n >= 63 || strchr("abcdefghijklmnopqrstuvwxyz0123456789-", s[n]) == NULL)
			return 0;
	}
	return n > 0 && s[0] != '-' && s[n - 1] != '-';
}

/* targets.kubernetes[].name */
static void
config_parse_kube_name(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_kube_cluster *k = obj;
	const char *v;

	if ((v = config_scalar(p, n, "name")) == NULL)
		return;
	if (!config_label_ok(v)) {
		config_error(p, n, "cluster name \"%s\" must be 1 to 63 lowercase letters, "
		    "digits or '-', not starting or ending with '-'", v);
		return;
	}
	config_set_string(p, n, "name", &k->name);
}

/* A path or program name for targets.kubernetes[]: no blanks, no leading '-'. */
static void
config_kube_path(struct config_parse *p, yaml_node_t *n, const char *what, char **dst)
{
	const char *v;

	if ((v = config_scalar(p, n, what)) == NULL)
		return;
	if (!config_word_ok(v)) {
		config_error(p, n, "%s must not be empty, start with '-' or hold blanks", what);
		return;
	}
	config_set_string(p, n, what, dst);
}

/*
 * targets.kubernetes[].kubeconfig: the file must exist now, or every
 * session to the cluster would fail later with kubectl's own message.
 */
static void
config_parse_kube_kubeconfig(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_kube_cluster *k = obj;
	struct stat st;

	config_kube_path(p, n, "kubeconfig", &k->kubeconfig);
	if (k->kubeconfig == NULL)
		return;
	if (stat(k->kubeconfig, &st) < 0)
		config_error(p, n, "kubeconfig %s: %s", k->kubeconfig, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		config_error(p, n, "kubeconfig %s is not a regular file", k->kubeconfig);
}

/* targets.kubernetes[].context */
static void
config_parse_kube_context(struct config_parse *p, yaml_node_t *n, void *obj)
{
	config_kube_path(p, n, "context", &((struct cfg_kube_cluster *)obj)->context);
}

/* targets.kubernetes[].kubectl */
static void
config_parse_kube_kubectl(struct config_parse *p, yaml_node_t *n, void *obj)
{
	config_kube_path(p, n, "kubectl", &((struct cfg_kube_cluster *)obj)->kubectl);
}

/* targets.kubernetes[].cache_dir */
static void
config_parse_kube_cache(struct config_parse *p, yaml_node_t *n, void *obj)
{
	config_kube_path(p, n, "cache_dir", &((struct cfg_kube_cluster *)obj)->cache_dir);
}

/* targets.kubernetes[].timeout */
static void
config_parse_kube_timeout(struct config_parse *p, yaml_node_t *n, void *obj)
{
	unsigned long long v;

	if (config_duration(p, n, "timeout", 1, 600, &v) == 0)
		((struct cfg_kube_cluster *)obj)->timeout = (unsigned)v;
}

/*
 * An entry of targets.kubernetes[].env: NAME (passed from the broker's own
 * environment when set there) or NAME=VALUE. kubectl's PATH, HOME,
 * KUBECONFIG and locale are the broker's to set (an exec plugin outside
 * PATH is named by its absolute path in the kubeconfig).
 */
static int
config_kube_env_ok(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");

	if (n == 0 || (s[0] >= '0' && s[0] <= '9') || (s[n] != '\0' && s[n] != '='))
		return 0;
	if ((n == 4 && strncmp(s, "HOME", 4) == 0) || (n == 10 && strncmp(s, "KUBECONFIG", 10) == 0) ||
	    (n == 4 && strncmp(s, "LANG", 4) == 0) || (n == 4 && strncmp(s, "TERM", 4) == 0) ||
	    (n == 4 && strncmp(s, "PATH", 4) == 0))
		return 0;
	return strpbrk(s + n, "\n\r") == NULL;
}

/* targets.kubernetes[].env: what exec credential plugins need of the environment */
static void
config_parse_kube_env(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_kube_cluster *k = obj;

	config_set_list(p, n, "env", config_kube_env_ok,
	    "NAME or NAME=VALUE (not PATH, HOME, KUBECONFIG, LANG or TERM)", &k->env, &k->nenv);
}

/* targets.kubernetes[].transport: native or kubectl */
static void
config_parse_kube_transport(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_kube_cluster *k = obj;
	const char *v;

	if ((v = config_scalar(p, n, "transport")) == NULL)
		return;
	if (strcmp(v, "native") == 0)
		k->transport = CFG_KUBE_NATIVE;
	else if (strcmp(v, "kubectl") == 0)
		k->transport = CFG_KUBE_KUBECTL;
	else
		config_error(p, n, "transport must be native or kubectl");
}

/* targets.kubernetes[].keepalive */
static void
config_parse_kube_keepalive(struct config_parse *p, yaml_node_t *n, void *obj)
{
	unsigned long long v;

	if (config_duration(p, n, "keepalive", 1, 3600, &v) == 0)
		((struct cfg_kube_cluster *)obj)->keepalive = (unsigned)v;
}

static const struct config_entry config_kube_entries[] = {
	{ "name", config_parse_kube_name },
	{ "env", config_parse_kube_env },
	{ "kubeconfig", config_parse_kube_kubeconfig },
	{ "context", config_parse_kube_context },
	{ "kubectl", config_parse_kube_kubectl },
	{ "cache_dir", config_parse_kube_cache },
	{ "timeout", config_parse_kube_timeout },
	{ "transport", config_parse_kube_transport },
	{ "keepalive", config_parse_kube_keepalive },
	{ NULL, NULL }
};

/* targets.kubernetes: a list of clusters, each {name, kubeconfig, context, ...}. */
static void
config_parse_target_kube(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;
	struct cfg_kube_cluster *k;
	yaml_node_item_t *item;
	yaml_node_t *in;
	size_t max, i;

	if (config_is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		config_error(p, n, "targets.kubernetes must be a list of clusters");
		return;
	}
	max = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (max == 0 || c->kube != NULL)
		return;
	if ((c->kube = calloc(max, sizeof *c->kube)) == NULL) {
		p->oom = 1;
		return;
	}
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		in = config_node(p, *item);
		k = &c->kube[c->nkube++];
		k->line = (int)in->start_mark.line + 1;
		k->timeout = 10;
		k->keepalive = 30;
		if (in->type != YAML_MAPPING_NODE) {
			config_error(p, in, "each targets.kubernetes entry must be a mapping "
			    "with a name");
			continue;
		}
		config_walk_map(p, in, "targets.kubernetes entry", config_kube_entries, k);
		if (k->name == NULL) {
			config_error(p, in, "targets.kubernetes entry has no name");
			continue;
		}
		for (i = 0; i + 1 < c->nkube; i++) {
			if (c->kube[i].name != NULL && strcmp(c->kube[i].name, k->name) == 0)
				config_error(p, in, "cluster \"%s\" is already defined at line %d",
				    k->name, c->kube[i].line);
		}
		if (k->kubectl == NULL)
			k->kubectl = config_strdup(p, "kubectl");
	}
}

static const struct config_entry config_target_entries[] = {
	{ "local", config_parse_target_local },
	{ "kubernetes", config_parse_target_kube },
	{ NULL, NULL }
};

/* targets */
static void
config_parse_targets(struct config_parse *p, yaml_node_t *n, void *obj)
{
	if (!config_is_null(n))
		config_walk_map(p, n, "targets", config_target_entries, obj);
}

/*
 * An address to listen on: "HOST:PORT" with a numeric IPv4 host or
 * "[IPV6]:PORT". Host names are refused: the broker binds one address and
 * must not depend on DNS to decide which.
 */
static void
config_parse_addr(struct config_parse *p, yaml_node_t *n, const char *key, char **hostp,
    uint16_t *portp)
{
	unsigned char addr[sizeof(struct in6_addr)];
	const char *v, *colon, *s;
	char host[INET6_ADDRSTRLEN + 1], *copy;
	size_t hlen;
	unsigned long port = 0;
	int family = AF_INET;

	if ((v = config_scalar(p, n, key)) == NULL)
		return;
	if (*v == '[') {
		family = AF_INET6;
		if ((s = strchr(v, ']')) == NULL || s[1] != ':')
			goto bad;
		colon = s + 1;
		v++;
		hlen = (size_t)(s - v);
	} else {
		if ((colon = strrchr(v, ':')) == NULL)
			goto bad;
		hlen = (size_t)(colon - v);
		if (memchr(v, ':', hlen) != NULL) {
			config_error(p, n, "%s: write an IPv6 address in brackets, like "
			    "[::1]:2222", key);
			return;
		}
	}
	if (hlen == 0 || hlen >= sizeof host)
		goto bad;
	memcpy(host, v, hlen);
	host[hlen] = '\0';
	if (inet_pton(family, host, addr) != 1) {
		config_error(p, n, "%s: \"%s\" is not a numeric %s address", key, host,
		    family == AF_INET ? "IPv4" : "IPv6");
		return;
	}
	for (s = colon + 1; *s >= '0' && *s <= '9' && port <= 65535; s++)
		port = port * 10 + (unsigned long)(*s - '0');
	if (s == colon + 1 || *s != '\0' || port == 0 || port > 65535) {
		config_error(p, n, "%s: port must be a number from 1 to 65535", key);
		return;
	}
	if ((copy = config_strdup(p, host)) == NULL)
		return;
	free(*hostp);
	*hostp = copy;
	*portp = (uint16_t)port;
	return;
bad:
	config_error(p, n, "%s must be HOST:PORT, like 127.0.0.1:2222 or [::1]:2222", key);
}

/* listen */
static void
config_parse_listen(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;

	config_parse_addr(p, n, "listen", &c->listen_host, &c->listen_port);
}

/* metrics_listen: the HTTP listener for probes and metrics */
static void
config_parse_metrics_listen(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;

	config_parse_addr(p, n, "metrics_listen", &c->metrics_host, &c->metrics_port);
}

/* peer_listen: where other replicas connect (docs/live.md) */
static void
config_parse_peer_listen(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;

	config_parse_addr(p, n, "peer_listen", &c->peer_host, &c->peer_port);
}

/* peer_key: this replica's private key */
static void
config_parse_peer_key(struct config_parse *p, yaml_node_t *n, void *obj)
{
	config_set_string(p, n, "peer_key", &((struct config *)obj)->peer_key);
}

/* peer_keys: the replicas' public keys, as OpenSSH lines */
static void
config_parse_peer_keys(struct config_parse *p, yaml_node_t *n, void *obj)
{
	config_parse_user_keys(p, n, &((struct config *)obj)->peer_keys);
}

/* Whether s is a peer address: HOST:PORT with a DNS name or IPv4 address. */
static int
config_peer_ok(const char *s)
{
	const char *colon = strrchr(s, ':'), *q;
	unsigned long port = 0;

	if (colon == NULL || colon == s || colon - s > 253 || colon[1] == '\0')
		return 0;
	for (q = s; q < colon; q++) {
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-",
		    *q) == NULL)
			return 0;
	}
	for (q = colon + 1; *q >= '0' && *q <= '9' && port <= 65535; q++)
		port = port * 10 + (unsigned long)(*q - '0');
	return *q == '\0' && port >= 1 && port <= 65535 && *s != '-' && *s != '.';
}

/* peers: a list of HOST:PORT, or {dns: NAME} (a headless Service) */
static void
config_parse_peers(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;
	yaml_node_pair_t *pair;
	yaml_node_t *k, *v;

	if (n->type == YAML_SEQUENCE_NODE) {
		config_set_list(p, n, "peers", config_peer_ok, "HOST:PORT", &c->peers, &c->npeers);
		if (c->npeers == 0)
			config_error(p, n, "peers: the list is empty");
		return;
	}
	if (n->type != YAML_MAPPING_NODE || n->data.mapping.pairs.top -
	    n->data.mapping.pairs.start != 1) {
		config_error(p, n, "peers must be a list of HOST:PORT or {dns: NAME}");
		return;
	}
	pair = n->data.mapping.pairs.start;
	k = config_node(p, pair->key);
	v = config_node(p, pair->value);
	if (k->type != YAML_SCALAR_NODE || strcmp((const char *)k->data.scalar.value, "dns") != 0) {
		config_error(p, k, "peers must be a list of HOST:PORT or {dns: NAME}");
		return;
	}
	config_set_string(p, v, "peers.dns", &c->peers_dns);
	if (c->peers_dns != NULL && (strlen(c->peers_dns) > 253 || c->peers_dns[0] == '-' ||
	    strspn(c->peers_dns, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != strlen(c->peers_dns)))
		config_error(p, v, "peers.dns: \"%s\" is not a DNS name", c->peers_dns);
}

/* host_key */
static void
config_parse_host_key(struct config_parse *p, yaml_node_t *n, void *obj)
{
	config_set_string(p, n, "host_key", &((struct config *)obj)->host_key);
}

/* signing_key */
static void
config_parse_signing_key(struct config_parse *p, yaml_node_t *n, void *obj)
{
	config_set_string(p, n, "signing_key", &((struct config *)obj)->signing_key);
}

/* generate_keys */
static void
config_parse_generate_keys(struct config_parse *p, yaml_node_t *n, void *obj)
{
	bool v;

	if (config_bool(p, n, "generate_keys", &v) == 0)
		((struct config *)obj)->generate_keys = v;
}

/* redaction_key */
static void
config_parse_redaction_key(struct config_parse *p, yaml_node_t *n, void *obj)
{
	config_set_string(p, n, "redaction_key", &((struct config *)obj)->redaction_key);
}

/* recordings */
static void
config_parse_recordings(struct config_parse *p, yaml_node_t *n, void *obj)
{
	config_set_string(p, n, "recordings", &((struct config *)obj)->recordings);
}

/* storage.s3.endpoint: http(s)://host[:port]; plain http only with a warning. */
static void
config_parse_s3_endpoint(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_s3 *s = obj;
	struct s3_bucket b;
	const char *v;

	if ((v = config_scalar(p, n, "storage.s3.endpoint")) == NULL)
		return;
	if (s3_bucket_set(&b, v, "us-east-1", "podgate", false) < 0) {
		config_error(p, n, "storage.s3.endpoint must be https://HOST[:PORT] (or http://), "
		    "not \"%s\"", v);
		return;
	}
	s3_bucket_clear(&b);
	config_set_string(p, n, "storage.s3.endpoint", &s->endpoint);
}

/* storage.s3.region */
static void
config_parse_s3_region(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_s3 *s = obj;
	const char *v;

	if ((v = config_scalar(p, n, "storage.s3.region")) == NULL)
		return;
	if (*v == '\0' || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(v)) {
		config_error(p, n, "storage.s3.region must be a region name like eu-west-1");
		return;
	}
	config_set_string(p, n, "storage.s3.region", &s->region);
}

/* storage.s3.bucket */
static void
config_parse_s3_bucket(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_s3 *s = obj;
	struct s3_bucket b;
	const char *v;

	if ((v = config_scalar(p, n, "storage.s3.bucket")) == NULL)
		return;
	if (s3_bucket_set(&b, "https://s3", "us-east-1", v, false) < 0) {
		config_error(p, n, "storage.s3.bucket must be a bucket name: 3 to 63 of a-z 0-9 . -");
		return;
	}
	s3_bucket_clear(&b);
	config_set_string(p, n, "storage.s3.bucket", &s->bucket);
}

/* storage.s3.prefix: [A-Za-z0-9._/-], no leading '/', no "//" or ".." */
static void
config_parse_s3_prefix(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_s3 *s = obj;
	const char *v;
	char *copy;

	if ((v = config_scalar(p, n, "storage.s3.prefix")) == NULL)
		return;
	if (strlen(v) > 512 || v[0] == '/' || strstr(v, "//") != NULL || strstr(v, "..") != NULL ||
	    strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._/-") !=
	    strlen(v)) {
		config_error(p, n, "storage.s3.prefix must be at most 512 of A-Z a-z 0-9 . _ / -, "
		    "not starting with / and without // or ..");
		return;
	}
	if ((copy = config_strdup(p, v)) == NULL)
		return;
	free(s->prefix);
	s->prefix = copy;
}

/* storage.s3.path_style */
static void
config_parse_s3_path_style(struct config_parse *p, yaml_node_t *n, void *obj)
{
	config_bool(p, n, "storage.s3.path_style", &((struct cfg_s3 *)obj)->path_style);
}

/* storage.s3.credentials.access_key_file */
static void
config_parse_s3_access_key_file(struct config_parse *p, yaml_node_t *n, void *obj)
{
	config_set_string(p, n, "access_key_file", &((struct cfg_s3 *)obj)->access_key_file);
}

/* storage.s3.credentials.secret_key_file */
static void
config_parse_s3_secret_key_file(struct config_parse *p, yaml_node_t *n, void *obj)
{
	config_set_string(p, n, "secret_key_file", &((struct cfg_s3 *)obj)->secret_key_file);
}

static const struct config_entry config_s3_files_entries[] = {
	{ "access_key_file", config_parse_s3_access_key_file },
	{ "secret_key_file", config_parse_s3_secret_key_file },
	{ NULL, NULL }
};

/* storage.s3.credentials: env, web_identity, or {access_key_file, secret_key_file} */
static void
config_parse_s3_credentials(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_s3 *s = obj;
	const char *v;

	if (n->type == YAML_MAPPING_NODE) {
		s->credentials = CFG_S3_CREDS_FILES;
		config_walk_map(p, n, "storage.s3.credentials", config_s3_files_entries, s);
		if (s->access_key_file == NULL || s->secret_key_file == NULL)
			config_error(p, n, "storage.s3.credentials needs access_key_file and "
			    "secret_key_file");
		return;
	}
	if ((v = config_scalar(p, n, "storage.s3.credentials")) == NULL)
		return;
	if (strcmp(v, "env") == 0)
		s->credentials = CFG_S3_CREDS_ENV;
	else if (strcmp(v, "web_identity") == 0)
		s->credentials = CFG_S3_CREDS_WEB_IDENTITY;
	else
		config_error(p, n, "storage.s3.credentials must be env, web_identity or "
		    "{access_key_file, secret_key_file}, not \"%s\"", v);
}

/* storage.s3.segment_seconds */
static void
config_parse_s3_segment_seconds(struct config_parse *p, yaml_node_t *n, void *obj)
{
	unsigned long long v;

	if (config_uint(p, n, "storage.s3.segment_seconds", 1, 3600, &v) == 0)
		((struct cfg_s3 *)obj)->segment_seconds = (unsigned)v;
}

/* storage.s3.keep_local */
static void
config_parse_s3_keep_local(struct config_parse *p, yaml_node_t *n, void *obj)
{
	config_bool(p, n, "storage.s3.keep_local", &((struct cfg_s3 *)obj)->keep_local);
}

static const struct config_entry config_s3_entries[] = {
	{ "endpoint", config_parse_s3_endpoint },
	{ "region", config_parse_s3_region },
	{ "bucket", config_parse_s3_bucket },
	{ "prefix", config_parse_s3_prefix },
	{ "path_style", config_parse_s3_path_style },
	{ "credentials", config_parse_s3_credentials },
	{ "segment_seconds", config_parse_s3_segment_seconds },
	{ "keep_local", config_parse_s3_keep_local },
	{ NULL, NULL }
};

/* storage.s3 */
static void
config_parse_storage_s3(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_s3 *s = &((struct config *)obj)->s3;

	s->enabled = true;
	s->line = (int)n->start_mark.line + 1;
	s->segment_seconds = 10;
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

static const struct config_entry config_storage_entries[] = {
	{ "s3", config_parse_storage_s3 },
	{ NULL, NULL }
};

/* storage: absent or empty, recordings stay in the local directory only. */
static void
config_parse_storage(struct config_parse *p, yaml_node_t *n, void *obj)
{
	if (!config_is_null(n))
		config_walk_map(p, n, "storage", config_storage_entries, obj);
}

/* audit_log */
static void
config_parse_audit_log(struct config_parse *p, yaml_node_t *n, void *obj)
{
	config_set_string(p, n, "audit_log", &((struct config *)obj)->audit_log);
}

/* max_auth_tries */
static void
config_parse_max_auth_tries(struct config_parse *p, yaml_node_t *n, void *obj)
{
	unsigned long long v;

	if (config_uint(p, n, "max_auth_tries", 1, 100, &v) == 0)
		((struct config *)obj)->max_auth_tries = (unsigned)v;
}

/* login_grace_time */
static void
config_parse_login_grace_time(struct config_parse *p, yaml_node_t *n, void *obj)
{
	unsigned long long v;

	if (config_duration(p, n, "login_grace_time", 1, 3600, &v) == 0)
		((struct config *)obj)->login_grace_time = (unsigned)v;
}

/* shutdown_grace */
static void
config_parse_shutdown_grace(struct config_parse *p, yaml_node_t *n, void *obj)
{
	unsigned long long v;

	if (config_duration(p, n, "shutdown_grace", 0, 86400, &v) == 0)
		((struct config *)obj)->shutdown_grace = (unsigned)v;
}

/* max_connections */
static void
config_parse_max_connections(struct config_parse *p, yaml_node_t *n, void *obj)
{
	unsigned long long v;

	if (config_uint(p, n, "max_connections", 1, 1000000, &v) == 0)
		((struct config *)obj)->max_connections = (size_t)v;
}

/* max_unauthenticated_per_address */
static void
config_parse_max_unauth_per_address(struct config_parse *p, yaml_node_t *n, void *obj)
{
	unsigned long long v;

	if (config_uint(p, n, "max_unauthenticated_per_address", 1, 100000, &v) == 0)
		((struct config *)obj)->max_unauthenticated_per_address = (unsigned)v;
}

/* auth_failure_delay: seconds ("2s") or milliseconds ("500ms"), at most 60 s. */
static void
config_parse_auth_failure_delay(struct config_parse *p, yaml_node_t *n, void *obj)
{
	const char *v = n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
	size_t len = v != NULL ? strlen(v) : 0;
	unsigned long long ms;

	if (len > 2 && strcmp(v + len - 2, "ms") == 0 && len - 2 <= 5 &&
	    strspn(v, "0123456789") == len - 2) {
		ms = strtoull(v, NULL, 10);
		if (ms > 60000) {
			config_error(p, n, "auth_failure_delay must be from 0 to 60s");
			return;
		}
		((struct config *)obj)->auth_failure_delay_ms = (unsigned)ms;
		return;
	}
	if (config_duration(p, n, "auth_failure_delay", 0, 60, &ms) == 0)
		((struct config *)obj)->auth_failure_delay_ms = (unsigned)ms * 1000;
}

/* Where a redact entry stands while its keys are read. */
struct config_redact_parse {
	yaml_node_t *pattern;
	const char *kind;
};

/* redact[].pattern */
static void
config_parse_redact_pattern(struct config_parse *p, yaml_node_t *n, void *obj)
{
	((struct config_redact_parse *)obj)->pattern = n;
}

/* redact[].kind */
static void
config_parse_redact_kind(struct config_parse *p, yaml_node_t *n, void *obj)
{
	((struct config_redact_parse *)obj)->kind = config_scalar(p, n, "redact kind");
}

static const struct config_entry config_redact_entries[] = {
	{ "pattern", config_parse_redact_pattern },
	{ "kind", config_parse_redact_kind },
	{ NULL, NULL }
};

/*
 * redact: a list of patterns added to the built-in detectors, each a
 * string or {pattern, kind}.
 */
static void
config_parse_redact(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;
	struct config_redact_parse rp;
	yaml_node_item_t *item;
	yaml_node_t *in;
	const char *v;
	char err[512];
	size_t max;
	int r;

	if (config_is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		config_error(p, n, "redact must be a list of patterns");
		return;
	}
	max = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (max == 0 || c->redact != NULL)
		return;
	if ((c->redact = calloc(max, sizeof *c->redact)) == NULL) {
		p->oom = 1;
		return;
	}
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		in = config_node(p, *item);
		memset(&rp, 0, sizeof rp);
		if (in->type == YAML_MAPPING_NODE) {
			config_walk_map(p, in, "redact entry", config_redact_entries, &rp);
			if (rp.pattern == NULL) {
				config_error(p, in, "redact entry has no pattern");
				continue;
			}
		} else if (in->type == YAML_SCALAR_NODE) {
			rp.pattern = in;
		} else {
			config_error(p, in, "each redact entry must be a pattern or a mapping "
			    "with pattern and kind");
			continue;
		}
		if ((v = config_scalar(p, rp.pattern, "redact pattern")) == NULL)
			continue;
		r = redact_pattern_compile(&c->redact[c->nredact], v, rp.kind, err, sizeof err);
		if (r == -ENOMEM) {
			p->oom = 1;
			return;
		}
		if (r < 0) {
			if (strncmp(err, "bad regular expression", 22) == 0)
				config_error(p, rp.pattern, "%s", err);
			else
				config_error(p, rp.pattern, "redact: %s", err);
			continue;
		}
		c->redact[c->nredact++].line = (int)rp.pattern->start_mark.line + 1;
	}
}

/* groups[].name */
static void
config_parse_group_name(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_group *g = obj;
	const char *v;

	if ((v = config_scalar(p, n, "name")) == NULL)
		return;
	if (!config_name_ok(v)) {
		config_error(p, n, "group name \"%s\" is not valid", v);
		return;
	}
	config_set_string(p, n, "name", &g->name);
}

/* groups[].roles */
static void
config_parse_group_roles(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_group *g = obj;

	config_set_list(p, n, "roles", config_role_ok, "role (auditor or approver)",
	    &g->roles, &g->nroles);
}

static const struct config_entry config_group_entries[] = {
	{ "name", config_parse_group_name },
	{ "roles", config_parse_group_roles },
	{ NULL, NULL }
};

/* groups: a list of {name, roles}; names are unique. */
static void
config_parse_groups(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;
	struct cfg_group *g;
	yaml_node_item_t *item;
	yaml_node_t *in;
	size_t max, i;

	if (config_is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		config_error(p, n, "groups must be a list");
		return;
	}
	max = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (max == 0 || c->groups != NULL)
		return;
	if ((c->groups = calloc(max, sizeof *c->groups)) == NULL) {
		p->oom = 1;
		return;
	}
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		in = config_node(p, *item);
		g = &c->groups[c->ngroups++];
		g->line = (int)in->start_mark.line + 1;
		if (in->type != YAML_MAPPING_NODE) {
			config_error(p, in, "each group must be a mapping with name and roles");
			continue;
		}
		config_walk_map(p, in, "group", config_group_entries, g);
		if (g->name == NULL) {
			config_error(p, in, "group has no name");
			continue;
		}
		for (i = 0; i + 1 < c->ngroups; i++) {
			if (c->groups[i].name != NULL && strcmp(c->groups[i].name, g->name) == 0)
				break;
		}
		if (i + 1 < c->ngroups)
			config_error(p, in, "duplicate group \"%s\" (first at line %d)", g->name,
			    c->groups[i].line);
	}
}

static const struct config_entry config_top_entries[] = {
	{ "listen", config_parse_listen },
	{ "metrics_listen", config_parse_metrics_listen },
	{ "peers", config_parse_peers },
	{ "peer_listen", config_parse_peer_listen },
	{ "peer_key", config_parse_peer_key },
	{ "peer_keys", config_parse_peer_keys },
	{ "host_key", config_parse_host_key },
	{ "recordings", config_parse_recordings },
	{ "storage", config_parse_storage },
	{ "audit_log", config_parse_audit_log },
	{ "users", config_parse_users },
	{ "rules", config_parse_rules },
	{ "targets", config_parse_targets },
	{ "max_auth_tries", config_parse_max_auth_tries },
	{ "login_grace_time", config_parse_login_grace_time },
	{ "shutdown_grace", config_parse_shutdown_grace },
	{ "max_connections", config_parse_max_connections },
	{ "max_unauthenticated_per_address", config_parse_max_unauth_per_address },
	{ "auth_failure_delay", config_parse_auth_failure_delay },
	{ "redact", config_parse_redact },
	{ "signing_key", config_parse_signing_key },
	{ "generate_keys", config_parse_generate_keys },
	{ "redaction_key", config_parse_redaction_key },
	{ "groups", config_parse_groups },
	{ NULL, NULL }
};

/* Whether a user with this name exists in a config still being checked. */
static int
config_has_user(const struct config *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nusers; i++) {
		if (c->users[i].name != NULL && strcmp(c->users[i].name, name) == 0)
			return 1;
	}
	return 0;
}

/*
 * Fill in each cluster's cache_dir: ".kube/NAME" inside the recordings
 * directory, the one place the broker must be able to write anyway (a
 * read-only root with only the recordings volume writable still works).
 */
static void
config_kube_defaults(struct config_parse *p)
{
	struct config *c = p->c;
	size_t i;

	for (i = 0; i < c->nkube; i++) {
		if (c->kube[i].cache_dir != NULL || c->kube[i].name == NULL ||
		    c->recordings == NULL)
			continue;
		if (asprintf(&c->kube[i].cache_dir, "%s/.kube/%s", c->recordings,
		    c->kube[i].name) < 0) {
			c->kube[i].cache_dir = NULL;
			p->oom = 1;
		}
	}
}

/* Whether a group is known: a user is in it, or the top-level groups list names it. */
static int
config_has_group(const struct config *c, const char *name)
{
	size_t i, j;

	for (i = 0; i < c->ngroups; i++) {
		if (c->groups[i].name != NULL && strcmp(c->groups[i].name, name) == 0)
			return 1;
	}
	for (i = 0; i < c->nusers; i++) {
		for (j = 0; j < c->users[i].ngroups; j++) {
			if (strcmp(c->users[i].groups[j], name) == 0)
				return 1;
		}
	}
	return 0;
}

/*
 * Check a rule's target pattern against targets.kubernetes: a Kubernetes
 * pattern (one with '/') must name its cluster, since policy matches the
 * canonical name "CLUSTER:NS/POD"; and its cluster part must be one of the
 * clusters, or a glob matching at least one.
 */
static void
config_check_pattern(struct config_parse *p, const struct cfg_rule *r, const char *pat)
{
	const struct config *c = p->c;
	const char *colon = strchr(pat, ':');
	char cluster[CONFIG_PATTERN_MAX + 1], known[512] = "";
	size_t i, len;

	for (i = 0; i < c->nkube; i++) {
		if (c->kube[i].name == NULL)
			continue;
		len = strlen(known);
		snprintf(known + len, sizeof known - len, "%s%s", len > 0 ? ", " : "",
		    c->kube[i].name);
	}
	if (colon == NULL) {
		if (strchr(pat, '/') == NULL)
			return;		/* "local", or a glob of it */
		if (c->nkube > 0 && c->kube[0].name != NULL)
			config_error_at(p, p->name, (size_t)r->line, "rule target \"%s\" names no "
			    "cluster and would match nothing: write \"%s:%s\" or \"*:%s\"", pat,
			    c->kube[0].name, pat, pat);
		else
			config_error_at(p, p->name, (size_t)r->line, "rule target \"%s\" names no "
			    "cluster, and targets.kubernetes defines none", pat);
		return;
	}
	len = (size_t)(colon - pat);
	memcpy(cluster, pat, len);
	cluster[len] = '\0';
	for (i = 0; i < c->nkube; i++) {
		if (c->kube[i].name != NULL && fnmatch(cluster, c->kube[i].name, 0) == 0)
			return;
	}
	config_error_at(p, p->name, (size_t)r->line, "rule target \"%s\" %s \"%s\" (%s%s)",
	    pat, strpbrk(cluster, "*?[") != NULL ? "matches no cluster with" :
	    "names unknown cluster", cluster, known[0] != '\0' ? "clusters: " :
	    "targets.kubernetes defines none", known);
}

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
 * Checks across sections, once everything is read. A rule naming an
 * unknown user is a warning: it grants nothing, so it fails closed, but it
 * is most likely a typo. A rule naming a group that no user is in and the
 * top-level groups list does not name is an error (a typo there would
 * silently grant nothing to the people meant), and so is a Kubernetes
 * target pattern without a cluster or naming an unknown one.
 */
static void
config_check(struct config_parse *p)
{
	struct config *c = p->c;
	struct cfg_rule *r;
	size_t i, j;

	config_kube_defaults(p);
	config_key_defaults(p);
	if ((c->npeers > 0 || c->peers_dns != NULL) && (c->peer_host == NULL ||
	    c->peer_key == NULL || c->peer_keys.nkeys == 0))
		config_error_at(p, p->name, 1, "peers needs peer_listen, peer_key and peer_keys");
	for (i = 0; i < c->nrules; i++) {
		r = &c->rules[i];
		for (j = 0; j < r->nusers; j++) {
			if (!config_has_user(c, r->users[j]))
				config_warn_line(p, r->line, "rule names unknown user \"%s\"",
				    r->users[j]);
		}
		for (j = 0; j < r->ngroups; j++) {
			if (!config_has_group(c, r->groups[j]))
				config_error_at(p, p->name, (size_t)r->line, "rule names unknown "
				    "group \"%s\": no user is in it (name it under the top-level "
				    "groups list to keep it without members)", r->groups[j]);
		}
		for (j = 0; j < r->ntargets; j++)
			config_check_pattern(p, r, r->targets[j]);
		for (j = 0; j < r->ntargets; j++) {
			if (strcmp(r->targets[j], "local") == 0 && !c->local.enabled)
				config_warn_line(p, r->line, "rule names target \"local\" but "
				    "targets.local is not configured; it grants nothing");
		}
	}
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
	size_t i, j;

	if (c == NULL || --c->refs > 0)
		return;
	for (i = 0; i < c->nusers; i++) {
		free(c->users[i].name);
		for (j = 0; j < c->users[i].nkeys; j++)
			config_free_key(&c->users[i].keys[j]);
		free(c->users[i].keys);
		config_free_strings(c->users[i].groups, c->users[i].ngroups);
		config_free_strings(c->users[i].roles, c->users[i].nroles);
	}
	free(c->users);
	for (i = 0; i < c->ngroups; i++) {
		free(c->groups[i].name);
		config_free_strings(c->groups[i].roles, c->groups[i].nroles);
	}
	free(c->groups);
	for (i = 0; i < c->nrules; i++) {
		config_free_strings(c->rules[i].users, c->rules[i].nusers);
		config_free_strings(c->rules[i].groups, c->rules[i].ngroups);
		config_free_strings(c->rules[i].targets, c->rules[i].ntargets);
		config_free_patterns(c->rules[i].allow, c->rules[i].nallow);
		config_free_patterns(c->rules[i].deny, c->rules[i].ndeny);
		config_free_patterns(c->rules[i].approve, c->rules[i].napprove);
		config_free_patterns(c->rules[i].passprompt, c->rules[i].npassprompt);
		config_free_watches(c->rules[i].watch, c->rules[i].nwatch);
		free(c->rules[i].as_user);
		config_free_strings(c->rules[i].as_groups, c->rules[i].nas_groups);
		free(c->rules[i].shell);
		config_free_strings(c->rules[i].interactive, c->rules[i].ninteractive);
	}
	for (i = 0; i < c->nkube; i++) {
		free(c->kube[i].name);
		free(c->kube[i].kubeconfig);
		free(c->kube[i].context);
		free(c->kube[i].kubectl);
		free(c->kube[i].cache_dir);
		config_free_strings(c->kube[i].env, c->kube[i].nenv);
	}
	free(c->kube);
	free(c->rules);
	for (i = 0; i < c->nredact; i++)
		redact_pattern_free(&c->redact[i]);
	free(c->redact);
	free(c->path);
	free(c->listen_host);
	free(c->metrics_host);
	free(c->peer_host);
	free(c->peer_key);
	for (i = 0; i < c->peer_keys.nkeys; i++)
		config_free_key(&c->peer_keys.keys[i]);
	free(c->peer_keys.keys);
	config_free_strings(c->peers, c->npeers);
	free(c->peers_dns);
	free(c->host_key);
	free(c->signing_key);
	free(c->redaction_key);
	free(c->recordings);
	free(c->s3.endpoint);
	free(c->s3.region);
	free(c->s3.bucket);
	free(c->s3.prefix);
	free(c->s3.access_key_file);
	free(c->s3.secret_key_file);
	free(c->audit_log);
	free(c->local.shell);
	free(c->local.user);
	free(c);
}

/* Whether role is in the list. */
static bool
config_has_role(char *const *roles, size_t n, const char *role)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(roles[i], role) == 0)
			return true;
	}
	return false;
}

/* Whether the user has the role, on the user or through a group. */
bool
config_user_has_role(const struct config *c, const struct cfg_user *u, const char *role)
{
	size_t i, j;

	if (c == NULL || u == NULL)
		return false;
	if (config_has_role(u->roles, u->nroles, role))
		return true;
	for (i = 0; i < u->ngroups; i++) {
		for (j = 0; j < c->ngroups; j++) {
			if (c->groups[j].name != NULL && strcmp(c->groups[j].name, u->groups[i]) == 0 &&
			    config_has_role(c->groups[j].roles, c->groups[j].nroles, role))
				return true;
		}
	}
	return false;
}

/* Find a user by name. */
const struct cfg_user *
config_find_user(const struct config *c, const char *name)
{
	size_t i;

	if (c == NULL || name == NULL)
		return NULL;
	for (i = 0; i < c->nusers; i++) {
		if (strcmp(c->users[i].name, name) == 0)
			return &c->users[i];
	}
	return NULL;
}

/* libssh's type for a key type name, counting RSA signature names as ssh-rsa. */
static enum ssh_keytypes_e
config_key_type(const char *name)
{
	if (strcmp(name, "rsa-sha2-256") == 0 || strcmp(name, "rsa-sha2-512") == 0)
		return SSH_KEYTYPE_RSA;
	return ssh_key_type_from_name(name);
}

/* Find one of the user's keys by type and base64 blob. */
const struct cfg_key *
config_user_key(const struct cfg_user *u, const char *type, const char *base64)
{
	enum ssh_keytypes_e t = SSH_KEYTYPE_UNKNOWN;
	size_t i;

	if (u == NULL || base64 == NULL)
		return NULL;
	if (type != NULL && (t = config_key_type(type)) == SSH_KEYTYPE_UNKNOWN)
		return NULL;
	for (i = 0; i < u->nkeys; i++) {
		if (strcmp(u->keys[i].base64, base64) != 0)
			continue;
		if (type != NULL && config_key_type(u->keys[i].type) != t)
			continue;
		return &u->keys[i];
	}
	return NULL;
}

/* Find one of the user's keys equal to a key libssh parsed. */
const struct cfg_key *
config_user_pubkey(const struct cfg_user *u, struct ssh_key_struct *key)
{
	size_t i;

	if (u == NULL || key == NULL)
		return NULL;
	for (i = 0; i < u->nkeys; i++) {
		if (u->keys[i].pubkey != NULL &&
		    ssh_key_cmp(u->keys[i].pubkey, key, SSH_KEY_CMP_PUBLIC) == 0)
			return &u->keys[i];
	}
	return NULL;
}
