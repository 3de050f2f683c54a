/*
 * The configuration's users: names, public keys (inline or from an
 * authorized_keys file, checked with libssh), groups and roles; the
 * top-level groups list; and the lookups the server makes on them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <openssl/evp.h>

#include "policy/config-parse.h"

#define CONFIG_KEY_LINE_MAX	16384		/* one public key line */
#define CONFIG_RSA_MIN_BITS	2048

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
int
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
void
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

/* Whether s names a role of live supervision (docs/live.md). */
static int
config_role_ok(const char *s)
{
	return strcmp(s, "auditor") == 0 || strcmp(s, "approver") == 0;
}

static const struct config_entry config_user_entries[] = {
	CONFIG_CALL_FIELD("name", config_parse_user_name),
	CONFIG_CALL_FIELD("keys", config_parse_user_keys),
	CONFIG_CALL_FIELD("authorized_keys", config_parse_user_authorized_keys),
	CONFIG_LIST_FIELD("groups", CONFIG_LIST, struct cfg_user, groups, ngroups,
	    .ok = config_name_ok, .bad = "group name"),
	CONFIG_LIST_FIELD("roles", CONFIG_LIST, struct cfg_user, roles, nroles,
	    .ok = config_role_ok, .bad = "role (auditor or approver)"),
	CONFIG_END
};

/* users: a list of mappings; names are unique and every user has a key. */
void
config_parse_users(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;
	struct cfg_user *u;
	yaml_node_item_t *item;
	yaml_node_t *in;
	size_t i;

	if (!config_list_alloc(p, n, "users must be a list", (void **)&c->users,
	    sizeof *c->users))
		return;
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		u = &c->users[c->nusers++];
		if ((in = config_list_map(p, *item, "each user must be a mapping with name and keys",
		    &u->line)) == NULL)
			continue;
		config_walk_map(p, in, "user", config_user_entries, u);
		if (u->name == NULL) {
			config_error(p, in, "user has no name");
			continue;
		}
		if ((i = CONFIG_NAME_FIND(struct cfg_user, c->users, c->nusers, 0)) + 1 < c->nusers)
			config_error(p, in, "duplicate user \"%s\" (first at line %d)", u->name,
			    c->users[i].line);
		if (u->nkeys == 0)
			config_error(p, in, "user \"%s\" has no keys (keys or authorized_keys)",
			    u->name);
	}
}

static const struct config_entry config_group_entries[] = {
	CONFIG_FIELD("name", CONFIG_STRING, struct cfg_group, name, .ok = config_name_ok,
	    .bad = "group name \"%s\" is not valid"),
	CONFIG_LIST_FIELD("roles", CONFIG_LIST, struct cfg_group, roles, nroles,
	    .ok = config_role_ok, .bad = "role (auditor or approver)"),
	CONFIG_END
};

/* groups: a list of {name, roles}; names are unique. */
void
config_parse_groups(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;
	struct cfg_group *g;
	yaml_node_item_t *item;
	yaml_node_t *in;
	size_t i;

	if (!config_list_alloc(p, n, "groups must be a list", (void **)&c->groups,
	    sizeof *c->groups))
		return;
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		g = &c->groups[c->ngroups++];
		if ((in = config_list_map(p, *item, "each group must be a mapping with name and roles",
		    &g->line)) == NULL)
			continue;
		config_walk_map(p, in, "group", config_group_entries, g);
		if (g->name == NULL) {
			config_error(p, in, "group has no name");
			continue;
		}
		if ((i = CONFIG_NAME_FIND(struct cfg_group, c->groups, c->ngroups, 0)) + 1 <
		    c->ngroups)
			config_error(p, in, "duplicate group \"%s\" (first at line %d)", g->name,
			    c->groups[i].line);
	}
}

/* Free the users, the groups and the peers' keys. */
void
config_free_users(struct config *c)
{
	size_t i, j;

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
	for (i = 0; i < c->peer_keys.nkeys; i++)
		config_free_key(&c->peer_keys.keys[i]);
	free(c->peer_keys.keys);
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
