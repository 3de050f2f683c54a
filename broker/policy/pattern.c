/*
 * Patterns in one place: what each mode accepts, how it is compiled and
 * how it matches (pattern.h). The shell reading of commands is here too,
 * since allow, deny and approve patterns match by it.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/pattern.h"

/* Whether text can be a pattern: not empty, not too long. */
int
pattern_text_check(const char *text, char *err, size_t errlen)
{
	if (errlen > 0)
		*err = '\0';
	if (*text == '\0' || strcmp(text, "re:") == 0) {
		snprintf(err, errlen, "empty pattern");
		return -EINVAL;
	}
	if (strlen(text) > PATTERN_TEXT_MAX) {
		snprintf(err, errlen, "pattern is longer than %d bytes", PATTERN_TEXT_MAX);
		return -EINVAL;
	}
	return 0;
}

/*
 * Turn a glob into an ERE found inside a line: '*' is a run of non-blank
 * characters, '?' one, [...] a bracket expression ("[!" is "[^").
 */
static char *
pattern_glob_to_ere(const char *g)
{
	size_t n = strlen(g), o = 0, j;
	char *e;

	if ((e = malloc(n * 16 + 1)) == NULL)
		return NULL;
	for (; *g != '\0'; g++) {
		if (*g == '*') {
			o += (size_t)sprintf(e + o, "[^[:space:]]*");
		} else if (*g == '?') {
			o += (size_t)sprintf(e + o, "[^[:space:]]");
		} else if (*g == '[' && (j = strcspn(g + 1 + (g[1] == '!' || g[1] == ']'),
		    "]")) < strlen(g + 1 + (g[1] == '!' || g[1] == ']'))) {
			size_t blen = j + 2 + (g[1] == '!' || g[1] == ']');

			memcpy(e + o, g, blen);
			if (g[1] == '!')
				e[o + 1] = '^';
			o += blen;
			g += blen - 1;
		} else {
			if (strchr(".[]{}()\\*+?^$|", *g) != NULL)
				e[o++] = '\\';
			e[o++] = *g;
		}
	}
	e[o] = '\0';
	return e;
}

/*
 * Whether an ERE puts one repetition right after another ("a++", "a*{2}"):
 * POSIX leaves it undefined, and glibc's regcomp takes time exponential
 * in the run's length to compile it (a configuration with "p" and twenty
 * '+' would hold the broker's start for minutes). Escapes and bracket
 * expressions are skipped.
 */
static bool
pattern_repeats_repetition(const char *re)
{
	bool after_rep = false, rep;
	const char *c;

	for (c = re; *c != '\0'; c++) {
		if (*c == '\\') {
			if (c[1] != '\0')
				c++;
			after_rep = false;
			continue;
		}
		if (*c == '[') {
			/* ] first is a member; [: :] [. .] [= =] hold no ']' that ends it */
			c++;
			if (*c == '^')
				c++;
			if (*c == ']')
				c++;
			while (*c != '\0' && *c != ']') {
				if (*c == '[' && (c[1] == ':' || c[1] == '.' || c[1] == '=')) {
					const char *e = strchr(c + 2, c[1]);

					c = e != NULL && e[1] == ']' ? e + 1 : c;
				}
				c++;
			}
			if (*c == '\0')
				return false;	/* regcomp says what is wrong */
			after_rep = false;
			continue;
		}
		rep = *c == '*' || *c == '+' || *c == '?';
		if (*c == '{' && c[1] >= '0' && c[1] <= '9') {
			const char *e = strchr(c, '}');

			if (e != NULL) {
				c = e;
				rep = true;
			}
		}
		if (rep && after_rep)
			return true;
		after_rep = rep;
	}
	return false;
}

/*
 * Compile "re:ERE", or keep a glob. Only redaction compiles its globs:
 * the redactor needs where a match starts and ends, which fnmatch(3)
 * cannot tell, and REG_NEWLINE keeps every match within a line.
 */
int
pattern_compile(struct cfg_pattern *p, enum pattern_mode mode, const char *text, char *err,
    size_t errlen)
{
	char why[256], *ere = NULL;
	int r, flags = REG_EXTENDED | REG_NOSUB;

	memset(p, 0, sizeof *p);
	if ((r = pattern_text_check(text, err, errlen)) < 0)
		return r;
	if (mode < PATTERN_ALLOW || mode > PATTERN_REDACT) {
		snprintf(err, errlen, "not a pattern mode");
		return -EINVAL;
	}
	p->mode = mode;
	if (mode == PATTERN_REDACT) {
		flags = REG_EXTENDED | REG_NEWLINE;
		if (strncmp(text, "re:", 3) != 0 && (ere = pattern_glob_to_ere(text)) == NULL)
			return -ENOMEM;
	}
	if (ere == NULL && strncmp(text, "re:", 3) == 0 && pattern_repeats_repetition(text + 3)) {
		snprintf(err, errlen, "bad regular expression '%s': a repetition follows a "
		    "repetition (write one: 'a+', not 'a++')", text);
		return -EINVAL;
	}
	if (ere != NULL || strncmp(text, "re:", 3) == 0) {
		r = regcomp(&p->re, ere != NULL ? ere : text + 3, flags);
		free(ere);
		if (r != 0) {
			if (r == REG_ESPACE)
				return -ENOMEM;
			regerror(r, &p->re, why, sizeof why);
			snprintf(err, errlen, "bad regular expression '%s': %s", text, why);
			return -EINVAL;
		}
		p->regex = true;
	}
	if ((p->text = strdup(text)) == NULL) {
		pattern_free(p);
		return -ENOMEM;
	}
	return 0;
}

/* Free a compiled pattern. */
void
pattern_free(struct cfg_pattern *p)
{
	if (p->regex)
		regfree(&p->re);
	free(p->text);
	memset(p, 0, sizeof *p);
}

/* Search s with the regex, or match all of s against the glob. */
static bool
pattern_text_match(const struct cfg_pattern *p, const char *s)
{
	if (p == NULL || p->text == NULL || s == NULL)
		return false;
	if (p->regex)
		return regexec(&p->re, s, 0, NULL, 0) == 0;
	return fnmatch(p->text, s, 0) == 0;
}

/* ---- Commands as sh reads them ---- */

/* Whether c is a blank sh separates words with. */
static bool
pattern_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Close part p at end (exclusive), trimming blanks; op is what follows it. */
static void
pattern_cmd_close(struct pattern_cmd_part *p, const char *start, const char *end, const char *op)
{
	while (start < end && pattern_blank(*start))
		start++;
	while (end > start && pattern_blank(end[-1]))
		end--;
	p->s = start;
	p->len = (size_t)(end - start);
	snprintf(p->op, sizeof p->op, "%s", op);
}

/* Split a command into its list and pipeline parts, quotes respected. */
int
pattern_command_split(const char *cmd, struct pattern_cmd_part *parts, size_t max, size_t *n)
{
	const char *s = cmd, *start = cmd;
	char quote = 0, op[3];
	unsigned flags = 0;

	*n = 0;
	if (max == 0)
		return -E2BIG;
	for (; *s != '\0'; s++) {
		if (quote == '\'') {
			if (*s == '\'')
				quote = 0;
			continue;
		}
		if (*s == '\\') {
			if (s[1] != '\0')
				s++;
			continue;
		}
		if (*s == '`')
			flags |= PATTERN_CMD_BACKQUOTE;
		if (*s == '$' && s[1] == '(')
			flags |= PATTERN_CMD_DOLLAR_PAREN;
		if (quote == '"') {
			if (*s == '"')
				quote = 0;
			continue;
		}
		switch (*s) {
		case '\'':
		case '"':
			quote = *s;
			continue;
		case '<':
			flags |= PATTERN_CMD_REDIR_IN;
			continue;
		case '>':
			flags |= PATTERN_CMD_REDIR_OUT;
			continue;
		case '\r':
			flags |= PATTERN_CMD_CR;
			continue;
		case ';':
		case '&':
		case '|':
		case '\n':
			break;
		default:
			continue;
		}
		op[0] = *s;
		op[1] = op[2] = '\0';
		if ((*s == '&' && s[1] == '&') || (*s == '|' && (s[1] == '|' || s[1] == '&')))
			op[1] = *++s;
		if (*n == max)
			return -E2BIG;
		pattern_cmd_close(&parts[*n], start, s + 1 - strlen(op), op);
		parts[(*n)++].flags = flags;
		flags = 0;
		start = s + 1;
	}
	if (*n == max)
		return -E2BIG;
	pattern_cmd_close(&parts[*n], start, s, "");
	parts[(*n)++].flags = flags;
	return 0;
}

/* Split a command into shell words (quotes removed), operators as words. */
char *
pattern_command_words(const char *cmd)
{
	size_t n = strlen(cmd), o = 0;
	char *out, quote = 0;
	bool word = false, sep = false;
	const char *s;

	/* Each byte gives at most itself and two separators. */
	if ((out = malloc(3 * n + 1)) == NULL)
		return NULL;
	for (s = cmd; *s != '\0'; s++) {
		if (quote == '\'') {
			if (*s == '\'')
				quote = 0;
			else
				out[o++] = *s;
			continue;
		}
		if (quote == '"') {
			if (*s == '"')
				quote = 0;
			else if (*s == '\\' && strchr("$`\"\\\n", s[1]) != NULL && s[1] != '\0')
				out[o++] = *++s;
			else
				out[o++] = *s;
			continue;
		}
		switch (*s) {
		case '\'':
		case '"':
			quote = *s;
			if (sep && o > 0)
				out[o++] = ' ';
			sep = false;
			word = true;
			continue;
		case '\\':
			if (s[1] == '\0')
				continue;
			if (sep && o > 0)
				out[o++] = ' ';
			sep = false;
			word = true;
			if (*++s != '\n')
				out[o++] = *s;
			continue;
		case ' ':
		case '\t':
			if (word)
				sep = true;
			word = false;
			continue;
		case ';':
		case '&':
		case '|':
		case '\n':
			if (o > 0)
				out[o++] = ' ';
			out[o++] = *s == '\n' ? ';' : *s;
			if ((*s == '&' || *s == '|') && (s[1] == *s || (*s == '|' && s[1] == '&')))
				out[o++] = *++s;
			word = false;
			sep = true;
			continue;
		default:
			if (sep && o > 0)
				out[o++] = ' ';
			sep = false;
			word = true;
			out[o++] = *s;
		}
	}
	out[o] = '\0';
	return out;
}

/* Match as written, or in the shell-word form. */
static bool
pattern_command_match(const struct cfg_pattern *p, const char *command)
{
	char *words;
	bool ok;

	if (pattern_text_match(p, command))
		return true;
	if (command == NULL || (words = pattern_command_words(command)) == NULL)
		return false;
	ok = strcmp(words, command) != 0 && pattern_text_match(p, words);
	free(words);
	return ok;
}

/* Match a part of a command against a part of a glob (both trimmed). */
static bool
pattern_part_match(const struct pattern_cmd_part *g, const struct pattern_cmd_part *c)
{
	char *gs, *cs;
	bool ok;

	if ((c->flags & ~g->flags) != 0 || strcmp(g->op, c->op) != 0)
		return false;
	gs = strndup(g->s, g->len);
	cs = strndup(c->s, c->len);
	ok = gs != NULL && cs != NULL && fnmatch(gs, cs, 0) == 0;
	free(gs);
	free(cs);
	return ok;
}

/* Whether an allow pattern matches the command, part by part. */
static bool
pattern_allow_match(const struct cfg_pattern *p, const char *command)
{
	struct pattern_cmd_part *cp = NULL, *gp = NULL;
	size_t nc = 0, ng = 0, i;
	unsigned named = 0;
	bool ok = false;

	if (p == NULL || p->text == NULL || command == NULL)
		return false;
	if ((cp = calloc(PATTERN_CMD_MAX_PARTS, sizeof *cp)) == NULL ||
	    (gp = calloc(PATTERN_CMD_MAX_PARTS, sizeof *gp)) == NULL)
		goto out;
	if (pattern_command_split(command, cp, PATTERN_CMD_MAX_PARTS, &nc) < 0)
		goto out;
	if (p->regex) {
		/* The characters the regex's text names are allowed. */
		if (strstr(p->text, "$(") != NULL)
			named |= PATTERN_CMD_DOLLAR_PAREN;
		if (strchr(p->text, '`') != NULL)
			named |= PATTERN_CMD_BACKQUOTE;
		if (strchr(p->text, '<') != NULL)
			named |= PATTERN_CMD_REDIR_IN;
		if (strchr(p->text, '>') != NULL)
			named |= PATTERN_CMD_REDIR_OUT;
		if (strchr(p->text, '\r') != NULL)
			named |= PATTERN_CMD_CR;
		ok = nc == 1 && (cp[0].flags & ~named) == 0 && pattern_text_match(p, command);
		goto out;
	}
	if (pattern_command_split(p->text, gp, PATTERN_CMD_MAX_PARTS, &ng) < 0 || ng != nc)
		goto out;
	for (i = 0; i < nc; i++) {
		if (!pattern_part_match(&gp[i], &cp[i]))
			goto out;
	}
	ok = true;
out:
	free(cp);
	free(gp);
	return ok;
}

/* Match in the pattern's mode. */
bool
pattern_match(const struct cfg_pattern *p, const char *s)
{
	if (p == NULL || p->text == NULL || s == NULL)
		return false;
	switch (p->mode) {
	case PATTERN_ALLOW:
		return pattern_allow_match(p, s);
	case PATTERN_COMMAND:
		return pattern_command_match(p, s);
	case PATTERN_LINE:
		return pattern_text_match(p, s);
	case PATTERN_REDACT:
		return regexec(&p->re, s, 0, NULL, 0) == 0;
	case PATTERN_TARGET:
		return pattern_target_match(p->text, s);
	}
	return false;
}

/* Whether s is a target pattern: target name characters and glob ones. */
bool
pattern_target_ok(const char *s)
{
	size_t n;

	if (*s == '\0' || *s == '-')
		return false;
	for (n = 0; s[n] != '\0'; n++) {
		if (n >= PATTERN_TARGET_MAX)
			return false;
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789._:/-*?[]!", s[n]) == NULL)
			return false;
	}
	return true;
}

/*
 * FNM_PATHNAME keeps '*', '?' and '[...]' from matching '/', so "prod:*"
 * is one namespace level and "prod:*\/\*" matches "prod:ns/pod" but not
 * "prod:ns/pod/container".
 */
bool
pattern_target_match(const char *glob, const char *name)
{
	if (glob == NULL || name == NULL)
		return false;
	return fnmatch(glob, name, FNM_PATHNAME) == 0;
}
