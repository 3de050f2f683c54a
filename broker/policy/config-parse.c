/*
 * Reading the configuration's YAML tree through typed tables
 * (config-parse.h): reporting problems with their lines, the value
 * readers (strings, lists, numbers, durations, sizes, patterns) and the
 * walker that reads a mapping as its table of keys says. config.c holds
 * the top level and loading; each section has its own file
 * (config-users.c, config-rules.c, config-targets.c, config-server.c,
 * config-storage.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "policy/config-parse.h"

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

/* Report an error at the line where node n starts. */
void
config_error(struct config_parse *p, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_vreport(p, p->name, n != NULL ? n->start_mark.line + 1 : 0, 0, fmt, ap);
	va_end(ap);
}

/* Report an error in another file (an authorized_keys file) or without a line. */
void
config_error_at(struct config_parse *p, const char *file, size_t line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_vreport(p, file, line, 0, fmt, ap);
	va_end(ap);
}

/* Report a warning at a line of the config file. */
void
config_warn_line(struct config_parse *p, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_vreport(p, p->name, (size_t)line, 1, fmt, ap);
	va_end(ap);
}

/* Copy s, noting an allocation failure in p. */
char *
config_strdup(struct config_parse *p, const char *s)
{
	char *r;

	if ((r = strdup(s)) == NULL)
		p->oom = 1;
	return r;
}

/* The node with this id in the document being parsed. */
yaml_node_t *
config_node(struct config_parse *p, int id)
{
	return yaml_document_get_node(p->doc, id);
}

/* Whether n is YAML's null: "~", "null" or nothing, written plain. */
int
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

/* A list of mappings: its items' array (config-parse.h). */
bool
config_list_alloc(struct config_parse *p, yaml_node_t *n, const char *notlist, void **arr,
    size_t elem)
{
	size_t max;

	if (config_is_null(n))
		return false;
	if (n->type != YAML_SEQUENCE_NODE) {
		config_error(p, n, "%s", notlist);
		return false;
	}
	max = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (max == 0 || *arr != NULL)
		return false;
	if ((*arr = calloc(max, elem)) == NULL) {
		p->oom = 1;
		return false;
	}
	return true;
}

/* A list item that must be a mapping, or NULL after saying it is not. */
yaml_node_t *
config_list_map(struct config_parse *p, yaml_node_item_t item, const char *notmap, int *line)
{
	yaml_node_t *in = config_node(p, item);

	*line = (int)in->start_mark.line + 1;
	if (in->type != YAML_MAPPING_NODE) {
		config_error(p, in, "%s", notmap);
		return NULL;
	}
	return in;
}

/* The first earlier entry named as the last one (config-parse.h). */
size_t
config_name_find(const void *list, size_t count, size_t elem, size_t name_off, size_t start)
{
	const char *base = list, *name, *other;
	size_t i;

	memcpy(&name, base + (count - 1) * elem + name_off, sizeof name);
	for (i = start; i + 1 < count; i++) {
		memcpy(&other, base + i * elem + name_off, sizeof other);
		if (other != NULL && strcmp(other, name) == 0)
			break;
	}
	return i;
}

/* The text of a string node, or NULL after reporting that what is not a string. */
const char *
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
void
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
int
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

/* Read a list of strings (null: empty), checking each with ok when not NULL. */
void
config_set_list(struct config_parse *p, yaml_node_t *n, const char *what,
    int (*ok)(const char *), const char *okwhat, char ***list, size_t *count)
{
	yaml_node_item_t *item;
	yaml_node_t *in;
	const char *v;
	char **l = NULL, *s, notlist[256];
	size_t i, cnt = 0;

	snprintf(notlist, sizeof notlist, "%s must be a list of strings", what);
	if (!config_list_alloc(p, n, notlist, (void **)&l, sizeof *l))
		return;
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
 * Read the decimal digits at *s into *num and move *s past them: -EINVAL
 * when there are none, -ERANGE when the number passes max.
 */
static int
config_digits(const char **s, unsigned long long max, unsigned long long *num)
{
	const char *d = *s;

	if (*d < '0' || *d > '9')
		return -EINVAL;
	for (*num = 0; *d >= '0' && *d <= '9'; d++) {
		*num = *num * 10 + (unsigned long long)(*d - '0');
		if (*num > max)
			return -ERANGE;
	}
	*s = d;
	return 0;
}

/*
 * Read n with parse into *out when it is in [min, max]; otherwise report
 * that what must be form (parse gave -EINVAL), or must be in the range,
 * counted in unit (-ERANGE).
 */
static int
config_quantity(struct config_parse *p, yaml_node_t *n, const char *what,
    unsigned long long min, unsigned long long max, unsigned long long *out,
    int (*parse)(const char *, unsigned long long, unsigned long long *), const char *form,
    const char *unit)
{
	unsigned long long v = 0;
	int r = -EINVAL;

	if (n->type == YAML_SCALAR_NODE && !config_is_null(n))
		r = parse((const char *)n->data.scalar.value, max, &v);
	if (r == 0 && v < min)
		r = -ERANGE;
	if (r == -ERANGE)
		config_error(p, n, "%s must be from %llu to %llu %s", what, min, max, unit);
	else if (r != 0)
		config_error(p, n, "%s must be %s", what, form);
	else
		*out = v;
	return r == 0 ? 0 : -1;
}

/* Seconds from "30", "30s", "2m", "1m30s": 0, -EINVAL, or -ERANGE past max. */
static int
config_parse_duration(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long total = 0, num, mul;
	bool units = false;
	int r;

	do {
		if ((r = config_digits(&s, max, &num)) != 0)
			return r;
		switch (*s) {
		case '\0':
			if (units)
				return -EINVAL;	/* "1m30": the unit of 30 is missing */
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
			return -EINVAL;
		}
		if (*s != '\0') {
			s++;
			units = true;
		}
		total += num * mul;
		if (total > max)
			return -ERANGE;
	} while (*s != '\0');
	*out = total;
	return 0;
}

/*
 * Read a duration in [min, max] seconds: a number of seconds, or numbers
 * each followed by s, m or h ("30s", "2m", "1m30s").
 */
int
config_duration(struct config_parse *p, yaml_node_t *n, const char *what,
    unsigned long long min, unsigned long long max, unsigned long long *out)
{
	return config_quantity(p, n, what, min, max, out, config_parse_duration,
	    "a duration: seconds, or a number with s, m or h (\"30s\", \"2m\")", "seconds");
}

/* Read a boolean: true or false, written plain (True, TRUE, False, FALSE too). */
int
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

/* Bytes from "512", "100MB", "1GiB": 0, -EINVAL, or -ERANGE past max. */
static int
config_parse_size(const char *s, unsigned long long max, unsigned long long *out)
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
	unsigned long long num;
	size_t i;
	int r;

	if ((r = config_digits(&s, max, &num)) != 0)
		return r;
	for (i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(s, units[i].unit) == 0)
			break;
	}
	if (i == sizeof units / sizeof units[0])
		return -EINVAL;
	if (num > max / units[i].mul)
		return -ERANGE;
	*out = num * units[i].mul;
	return 0;
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
	return config_quantity(p, n, what, min, max, out, config_parse_size,
	    "a size: bytes, or a number with kB, MB, GB, TB (powers of 1000) or KiB, MiB, "
	    "GiB, TiB (powers of 1024), like \"100MB\"", "bytes");
}

/* Free a list of n strings. */
void
config_free_strings(char **list, size_t n)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* Whether s is a word for an argv: printable ASCII without blanks, no leading '-'. */
int
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

/* Free a list of n patterns. */
void
config_free_patterns(struct cfg_pattern *list, size_t n)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < n; i++)
		pattern_free(&list[i]);
	free(list);
}

/* Compile the pattern in node n into *pat in mode; false after reporting a problem. */
bool
config_pattern(struct config_parse *p, yaml_node_t *n, const char *what,
    enum pattern_mode mode, struct cfg_pattern *pat)
{
	char err[512];
	const char *v;
	int r;

	memset(pat, 0, sizeof *pat);
	if ((v = config_scalar(p, n, what)) == NULL)
		return false;
	if ((r = pattern_compile(pat, mode, v, err, sizeof err)) == -ENOMEM) {
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

/* Read a list of patterns (null: empty) in mode, replacing *list. */
static void
config_set_patterns(struct config_parse *p, yaml_node_t *n, const char *what,
    enum pattern_mode mode, struct cfg_pattern **list, size_t *count)
{
	yaml_node_item_t *item;
	struct cfg_pattern *l = NULL;
	size_t cnt = 0;
	char notlist[256];

	config_free_patterns(*list, *count);
	*list = NULL;
	*count = 0;
	snprintf(notlist, sizeof notlist, "%s must be a list of patterns", what);
	if (!config_list_alloc(p, n, notlist, (void **)&l, sizeof *l))
		return;
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		if (config_pattern(p, config_node(p, *item), what, mode, &l[cnt]))
			cnt++;
	}
	*list = l;
	*count = cnt;
}

/* Store v in the unsigned integer of size bytes at dst. */
static void
config_store_uint(void *dst, size_t size, unsigned long long v)
{
	uint8_t u8 = (uint8_t)v;
	uint16_t u16 = (uint16_t)v;
	uint32_t u32 = (uint32_t)v;
	uint64_t u64 = (uint64_t)v;

	switch (size) {
	case 1:
		memcpy(dst, &u8, 1);
		break;
	case 2:
		memcpy(dst, &u16, 2);
		break;
	case 4:
		memcpy(dst, &u32, 4);
		break;
	default:
		memcpy(dst, &u64, 8);
		break;
	}
}

/* Report a table's message for value v: "%s" in bad stands for v. */
static void
config_error_bad(struct config_parse *p, yaml_node_t *n, const char *bad, const char *v)
{
	const char *s = strstr(bad, "%s");

	if (s == NULL)
		config_error(p, n, "%s", bad);
	else
		config_error(p, n, "%.*s%s%s", (int)(s - bad), bad, v, s + 2);
}

/* Read one value as its entry says. */
void
config_read_value(struct config_parse *p, yaml_node_t *n, const struct config_entry *e,
    void *obj)
{
	char *o = (char *)obj + e->off, *o2 = (char *)obj + e->off2, *copy;
	const char *what = e->what != NULL ? e->what : e->key, *v;
	const struct config_enum *en;
	unsigned long long num;
	bool b;
	int r = -1;

	switch (e->type) {
	case CONFIG_STRING:
		if ((v = config_scalar(p, n, what)) == NULL)
			return;
		if (e->ok != NULL && !e->ok(v)) {
			config_error_bad(p, n, e->bad, v);
			return;
		}
		if (!e->empty_ok) {
			config_set_string(p, n, what, (char **)(void *)o);
		} else if ((copy = config_strdup(p, v)) != NULL) {
			free(*(char **)(void *)o);
			*(char **)(void *)o = copy;
		}
		break;
	case CONFIG_TEXT:
		*(const char **)(void *)o = config_scalar(p, n, what);
		return;
	case CONFIG_NODE:
		*(yaml_node_t **)(void *)o = n;
		return;
	case CONFIG_BOOL:
	case CONFIG_NOT:
		if (config_bool(p, n, what, &b) == 0)
			*(bool *)(void *)o = e->type == CONFIG_BOOL ? b : !b;
		break;
	case CONFIG_UINT:
	case CONFIG_DURATION:
	case CONFIG_SIZE:
		if (e->type == CONFIG_UINT)
			r = config_uint(p, n, what, e->min, e->max, &num);
		else if (e->type == CONFIG_DURATION)
			r = config_duration(p, n, what, e->min, e->max, &num);
		else
			r = config_size(p, n, what, e->min, e->max, &num);
		if (r == 0)
			config_store_uint(o, e->size, num);
		break;
	case CONFIG_ENUM:
		if ((v = config_scalar(p, n, what)) == NULL)
			return;
		for (en = e->names; en->name != NULL; en++) {
			if (strcmp(en->name, v) == 0)
				break;
		}
		if (en->name == NULL) {
			if (e->quote)
				config_error(p, n, "%s, not \"%s\"", e->bad, v);
			else
				config_error(p, n, "%s", e->bad);
			return;
		}
		config_store_uint(o, e->size, (unsigned long long)en->value);
		break;
	case CONFIG_LIST:
		config_set_list(p, n, what, e->ok, e->bad, (char ***)(void *)o, (size_t *)(void *)o2);
		break;
	case CONFIG_PATTERNS:
		config_set_patterns(p, n, what, e->mode, (struct cfg_pattern **)(void *)o,
		    (size_t *)(void *)o2);
		break;
	case CONFIG_PATTERN:
		pattern_free((struct cfg_pattern *)(void *)o);
		config_pattern(p, n, what, e->mode, (struct cfg_pattern *)(void *)o);
		break;
	case CONFIG_ADDR:
		config_addr(p, n, what, (char **)(void *)o, (uint16_t *)(void *)o2);
		break;
	case CONFIG_MAP:
		if (!config_is_null(n))
			config_walk_map(p, n, what, e->map, o);
		break;
	case CONFIG_CALL:
		e->parse(p, n, o);
		return;
	}
	if (e->parse != NULL)
		e->parse(p, n, obj);
}

/* Whether mapping n has key. */
bool
config_map_has(struct config_parse *p, yaml_node_t *n, const char *key)
{
	yaml_node_pair_t *pair;
	yaml_node_t *k;

	if (n->type != YAML_MAPPING_NODE)
		return false;
	for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
		k = config_node(p, pair->key);
		if (k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return true;
	}
	return false;
}

/*
 * Walk a mapping: each key must be a string, appear once and be in the
 * table; its value is read as the entry says.
 */
void
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
		config_read_value(p, config_node(p, pair->value), e, obj);
	}
}
