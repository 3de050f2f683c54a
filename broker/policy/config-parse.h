/*
 * Reading the configuration, shared by config.c, config-parse.c (the
 * value readers and the table walker) and the files that read one
 * section each (config-users.c, config-rules.c, config-targets.c,
 * config-server.c, config-storage.c). Not for use outside them.
 *
 * A mapping is read with a table of struct config_entry, as OpenSSH's
 * servconf.c reads sshd_config with its keyword table: each key has a
 * type, the offset of its field in the object being filled and its
 * bounds, and config_walk_map reads, checks and stores the value. Only
 * values with a structure of their own (a list of users, a key that may be
 * a list or a mapping) have a function of their own (CONFIG_CALL).
 */
#ifndef PODGATE_CONFIG_PARSE_H
#define PODGATE_CONFIG_PARSE_H

#include <stdarg.h>
#include <stddef.h>

#include <yaml.h>

#include "policy/config.h"

#define CONFIG_FILE_MAX		(1024 * 1024)	/* config and authorized_keys files */
#define CONFIG_NAME_MAX		255		/* user and group names */

/* Where one parse stands: the document, the config being filled, the tally. */
struct config_parse {
	const char *name;	/* file name used in messages */
	FILE *errs;
	yaml_document_t *doc;
	struct config *c;
	unsigned nerrors;
	int oom;		/* an allocation failed: the result is -ENOMEM */
};

enum config_type {
	CONFIG_STRING = 1,	/* char *: a non-empty string (unless empty_ok) */
	CONFIG_TEXT,		/* const char *: the document's string, not copied */
	CONFIG_NODE,		/* yaml_node_t *: the value, for the section to read */
	CONFIG_BOOL,		/* bool */
	CONFIG_NOT,		/* bool: the opposite of what is written ("pty: false") */
	CONFIG_UINT,		/* an unsigned integer of size bytes in [min, max] */
	CONFIG_DURATION,	/* the same in seconds: 30, "30s", "2m", "1h30m" */
	CONFIG_SIZE,		/* the same in bytes: 1000, "100MB", "1GiB" */
	CONFIG_ENUM,		/* an integer of size bytes: the value of one of names */
	CONFIG_LIST,		/* char ** with its size_t count at off2 (null: empty) */
	CONFIG_PATTERNS,	/* struct cfg_pattern * with its count at off2, in mode */
	CONFIG_PATTERN,		/* struct cfg_pattern, in mode */
	CONFIG_ADDR,		/* char *host with its uint16_t port at off2: HOST:PORT */
	CONFIG_MAP,		/* a mapping read with map into the object at off (null: none) */
	CONFIG_CALL,		/* parse reads the value into the object at off */
};

/* One name of a CONFIG_ENUM and the value it stores. */
struct config_enum {
	const char *name;
	int value;
};

/* A key a mapping may hold. */
struct config_entry {
	const char *key;
	enum config_type type;
	size_t off;		/* the field in the object the mapping fills */
	size_t off2;		/* a list's count; an address's port */
	size_t size;		/* an integer's size */
	const char *what;	/* its name in messages; NULL: the key */
	unsigned long long min, max;	/* integers */
	int (*ok)(const char *);	/* strings, lists: whether a value is valid */
	const char *bad;	/* strings: the message when ok fails, "%s" standing for
				   the value; lists: what a valid item is; enums: the
				   message for another word */
	bool quote;		/* enums: the message ends ", not \"VALUE\"" */
	bool empty_ok;		/* strings: "" is a value too */
	const struct config_enum *names;	/* enums, up to a NULL name */
	enum pattern_mode mode;			/* patterns */
	const struct config_entry *map;		/* CONFIG_MAP, up to a NULL key */
	/* CONFIG_CALL: reads the value; other types: checks it once stored. */
	void (*parse)(struct config_parse *, yaml_node_t *, void *);
};

/* Table rows: the key, the type, the object's type and field, then options. */
#define CONFIG_FIELD(k, t, T, f, ...) \
	{ .key = (k), .type = (t), .off = offsetof(T, f), __VA_ARGS__ }
#define CONFIG_INT(k, t, T, f, lo, hi, ...) \
	{ .key = (k), .type = (t), .off = offsetof(T, f), .size = sizeof(((T *)0)->f), \
	  .min = (lo), .max = (hi), __VA_ARGS__ }
#define CONFIG_ENUM_FIELD(k, T, f, ...) \
	{ .key = (k), .type = CONFIG_ENUM, .off = offsetof(T, f), \
	  .size = sizeof(((T *)0)->f), __VA_ARGS__ }
#define CONFIG_LIST_FIELD(k, t, T, f, n, ...) \
	{ .key = (k), .type = (t), .off = offsetof(T, f), .off2 = offsetof(T, n), __VA_ARGS__ }
#define CONFIG_CALL_FIELD(k, fn) { .key = (k), .type = CONFIG_CALL, .parse = (fn) }
#define CONFIG_END { .key = NULL }

/* ---- config-parse.c: reporting and reading values ---- */

void config_error(struct config_parse *, const yaml_node_t *, const char *, ...)
    __attribute__((format(printf, 3, 4)));
void config_error_at(struct config_parse *, const char *, size_t, const char *, ...)
    __attribute__((format(printf, 4, 5)));
void config_warn_line(struct config_parse *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));

char *config_strdup(struct config_parse *p, const char *s);
yaml_node_t *config_node(struct config_parse *p, int id);
int config_is_null(const yaml_node_t *n);

/*
 * A list of mappings at n (users, groups, rules, clusters): a new zeroed
 * array of its items, elem bytes each, in *arr. Returns whether the items
 * are to be read: false when n is null, empty, not a list (notlist is
 * then the error), already read (*arr set: a repeated key's first wins)
 * or out of memory.
 */
bool config_list_alloc(struct config_parse *p, yaml_node_t *n, const char *notlist,
    void **arr, size_t elem);

/*
 * One item of such a list: its node when it is a mapping, with its line
 * in *line either way; NULL after reporting notmap when it is not.
 */
yaml_node_t *config_list_map(struct config_parse *p, yaml_node_item_t item, const char *notmap,
    int *line);

/*
 * Among the first count - 1 of count structs of elem bytes, each naming
 * itself with a char * at name_off, the index of the first from start on
 * that has the last one's name; count - 1 when none has. The check for a
 * repeated name in users, groups and clusters: CONFIG_NAME_FIND(T, list,
 * count, start) fills in the sizes from struct type T.
 */
size_t config_name_find(const void *list, size_t count, size_t elem, size_t name_off,
    size_t start);
#define CONFIG_NAME_FIND(T, list, count, start) \
	config_name_find((list), (count), sizeof(T), offsetof(T, name), (start))
const char *config_scalar(struct config_parse *p, const yaml_node_t *n, const char *what);
void config_set_string(struct config_parse *p, yaml_node_t *n, const char *what, char **dst);
void config_set_list(struct config_parse *p, yaml_node_t *n, const char *what,
    int (*ok)(const char *), const char *okwhat, char ***list, size_t *count);
int config_bool(struct config_parse *p, yaml_node_t *n, const char *what, bool *out);
int config_duration(struct config_parse *p, yaml_node_t *n, const char *what,
    unsigned long long min, unsigned long long max, unsigned long long *out);
void config_free_strings(char **list, size_t n);
void config_free_patterns(struct cfg_pattern *list, size_t n);
bool config_pattern(struct config_parse *p, yaml_node_t *n, const char *what,
    enum pattern_mode mode, struct cfg_pattern *pat);

/* Whether mapping n has key. */
bool config_map_has(struct config_parse *p, yaml_node_t *n, const char *key);

/*
 * Walk a mapping: each key must be a string, appear once and be in the
 * table; its value is read as the entry says into obj.
 */
void config_walk_map(struct config_parse *p, yaml_node_t *n, const char *what,
    const struct config_entry *table, void *obj);

/* Read one value as entry e says, into obj (for a key with two shapes). */
void config_read_value(struct config_parse *p, yaml_node_t *n, const struct config_entry *e,
    void *obj);

/*
 * Read a whole regular file of at most CONFIG_FILE_MAX bytes that neither
 * group nor others may write. On failure returns a negative errno with
 * the reason in why.
 */
int config_read_file(const char *path, char **out, size_t *outlen, char *why, size_t whylen);

/* Name checks for tables. */
int config_name_ok(const char *s);	/* user and group names */
int config_word_ok(const char *s);	/* a word for an argv */

/* ---- The sections ---- */

/* config-users.c: users, their keys, groups; peer_keys. */
void config_parse_users(struct config_parse *p, yaml_node_t *n, void *obj);
void config_parse_groups(struct config_parse *p, yaml_node_t *n, void *obj);
void config_parse_user_keys(struct config_parse *p, yaml_node_t *n, void *obj);
void config_free_users(struct config *c);

/* config-rules.c: rules and the top-level redact list. */
void config_parse_rules(struct config_parse *p, yaml_node_t *n, void *obj);
void config_parse_redact(struct config_parse *p, yaml_node_t *n, void *obj);
void config_check_rules(struct config_parse *p);
void config_free_rules(struct config *c);

/* config-targets.c: targets.local and targets.kubernetes. */
extern const struct config_entry config_target_entries[];
void config_kube_defaults(struct config_parse *p);
void config_free_targets(struct config *c);

/* config-server.c: addresses, peers, the delay after a failed authentication. */
void config_addr(struct config_parse *p, yaml_node_t *n, const char *key, char **hostp,
    uint16_t *portp);
void config_parse_peers(struct config_parse *p, yaml_node_t *n, void *obj);
void config_parse_auth_failure_delay(struct config_parse *p, yaml_node_t *n, void *obj);

/* config-storage.c: storage.s3. */
extern const struct config_entry config_storage_entries[];
void config_free_storage(struct config *c);

#endif
