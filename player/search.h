/*
 * Text search for play and grep: plain text (the default) or a POSIX
 * extended regular expression, optionally ignoring case.
 */
#ifndef PODGATE_SEARCH_H
#define PODGATE_SEARCH_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

struct search {
	char *pat;
	size_t patlen;
	bool regex, icase;
	bool compiled;
	regex_t re;
};

/*
 * Prepare pattern. Returns 0, -EINVAL for an empty pattern or a bad
 * regular expression (the reason in err), or -ENOMEM.
 */
int search_init(struct search *s, const char *pattern, bool regex, bool icase,
    char *err, size_t errlen);
void search_free(struct search *s);

/*
 * Find the first match in text[from..len) (text NUL-terminated at len).
 * Returns true and the match's byte range [*so, *eo).
 */
bool search_find(const struct search *s, const char *text, size_t len, size_t from,
    size_t *so, size_t *eo);

#endif
