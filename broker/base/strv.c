/*
 * String arrays built one string at a time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strv.h"

/* Append s, taken over. */
void
strv_take(struct strv *l, char *s)
{
	char **nv;

	if (s == NULL)
		l->oom = true;
	if (l->oom) {
		free(s);
		return;
	}
	if (l->n + 2 > l->max) {
		l->max = l->max == 0 ? 16 : l->max * 2;
		if ((nv = realloc(l->v, l->max * sizeof *nv)) == NULL) {
			l->oom = true;
			free(s);
			return;
		}
		l->v = nv;
	}
	l->v[l->n++] = s;
	l->v[l->n] = NULL;
}

/* Append a copy of s. */
void
strv_add(struct strv *l, const char *s)
{
	strv_take(l, strdup(s));
}

/* Append "PREFIX=VALUE", or a copy of prefix. */
void
strv_addf(struct strv *l, const char *prefix, const char *value)
{
	char *s = NULL;

	if (value == NULL)
		s = strdup(prefix);
	else if (asprintf(&s, "%s=%s", prefix, value) < 0)
		s = NULL;
	strv_take(l, s);
}

/* Whether l holds s. */
bool
strv_has(const struct strv *l, const char *s)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (strcmp(l->v[i], s) == 0)
			return true;
	}
	return false;
}

/* Hand the array over, or free it on a past allocation failure. */
int
strv_done(struct strv *l, char ***out)
{
	*out = NULL;
	if (l->oom) {
		strv_free(l);
		return -ENOMEM;
	}
	*out = l->v;
	memset(l, 0, sizeof *l);
	return 0;
}

/* Free the strings and the array. */
void
strv_free(struct strv *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof *l);
}
