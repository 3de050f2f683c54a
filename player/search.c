/*
 * Text search: plain or POSIX extended regular expressions.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search.h"

/* Prepare a search. */
int
search_init(struct search *s, const char *pattern, bool regex, bool icase, char *err,
    size_t errlen)
{
	int rc;

	memset(s, 0, sizeof *s);
	if (errlen > 0)
		err[0] = '\0';
	if (pattern == NULL || pattern[0] == '\0') {
		snprintf(err, errlen, "empty pattern");
		return -EINVAL;
	}
	if ((s->pat = strdup(pattern)) == NULL)
		return -ENOMEM;
	s->patlen = strlen(pattern);
	s->regex = regex;
	s->icase = icase;
	if (!regex)
		return 0;
	if ((rc = regcomp(&s->re, pattern, REG_EXTENDED | REG_NEWLINE |
	    (icase ? REG_ICASE : 0))) != 0) {
		regerror(rc, &s->re, err, errlen);
		free(s->pat);
		s->pat = NULL;
		return -EINVAL;
	}
	s->compiled = true;
	return 0;
}

/* Free a search. */
void
search_free(struct search *s)
{
	if (s->compiled)
		regfree(&s->re);
	free(s->pat);
	memset(s, 0, sizeof *s);
}

/* Case-insensitive (ASCII) memmem. */
static const char *
search_memcasemem(const char *h, size_t hl, const char *n, size_t nl)
{
	size_t i, j;

	if (nl > hl)
		return NULL;
	for (i = 0; i + nl <= hl; i++) {
		for (j = 0; j < nl; j++)
			if (tolower((unsigned char)h[i + j]) != tolower((unsigned char)n[j]))
				break;
		if (j == nl)
			return h + i;
	}
	return NULL;
}

/* Find the first match at or after from. */
bool
search_find(const struct search *s, const char *text, size_t len, size_t from, size_t *so,
    size_t *eo)
{
	regmatch_t m;
	const char *p;

	if (from > len)
		return false;
	if (!s->regex) {
		p = s->icase ? search_memcasemem(text + from, len - from, s->pat, s->patlen) :
		    memmem(text + from, len - from, s->pat, s->patlen);
		if (p == NULL)
			return false;
		*so = (size_t)(p - text);
		*eo = *so + s->patlen;
		return true;
	}
	m.rm_so = (regoff_t)from;
	m.rm_eo = (regoff_t)len;
	if (regexec(&s->re, text, 1, &m, REG_STARTEND | (from > 0 ? REG_NOTBOL : 0)) != 0)
		return false;
	*so = (size_t)m.rm_so;
	*eo = (size_t)m.rm_eo;
	if (*eo == *so && *eo < len)
		(*eo)++;	/* an empty match still moves on */
	return true;
}
