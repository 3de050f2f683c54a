/*
 * A NULL-terminated array of strings built up one at a time (argv,
 * environments, name lists). An allocation failure is remembered and
 * reported once, at strv_done, so callers append without checking.
 */
#ifndef PODGATE_STRV_H
#define PODGATE_STRV_H

#include <stdbool.h>
#include <stddef.h>

struct strv {
	char **v;		/* NULL-terminated once anything was added */
	size_t n, max;
	bool oom;		/* an allocation failed: the list is incomplete */
};

/* Append s, taking it over (NULL counts as an allocation failure). */
void strv_take(struct strv *l, char *s);

/* Append a copy of s. */
void strv_add(struct strv *l, const char *s);

/* Append "PREFIX=VALUE", or a copy of prefix when value is NULL. */
void strv_addf(struct strv *l, const char *prefix, const char *value);

/* Whether l holds a string equal to s. */
bool strv_has(const struct strv *l, const char *s);

/*
 * Hand the array over to *out (NULL when empty) and reset l; after a failed
 * allocation, free everything and return -ENOMEM with *out NULL.
 */
int strv_done(struct strv *l, char ***out);

/* Free the strings and the array, and reset l. */
void strv_free(struct strv *l);

#endif
