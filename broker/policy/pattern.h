/*
 * Patterns: every pattern the configuration holds is checked, compiled
 * and matched here, in the mode fixed by where it is written:
 *
 *   PATTERN_TARGET   rules[].targets, and the picker re-checking the pods
 *                    it lists: an fnmatch(3) glob with FNM_PATHNAME over a
 *                    whole target name ('*', '?' and [...] never match
 *                    '/'); no "re:". Kept as text (pattern_target_*).
 *   PATTERN_ALLOW    commands.allow: matched against a command by its
 *                    shell structure (pattern_command_split). A glob is
 *                    split like the command: both need the same operators
 *                    in the same order, each part of the command must
 *                    match the glob's part at that position, and hold no
 *                    "$(", '`', '<', '>' or CR that the glob's part does
 *                    not also hold. So "ps * | grep *" allows
 *                    "ps x | grep y" and never "ps x | grep y | sh" or
 *                    "ps x; sh". A regex matches only a command of one
 *                    part that holds none of those, unless its text holds
 *                    the character, and is searched in the whole command.
 *   PATTERN_COMMAND  commands.deny and commands.approve: matched against
 *                    the command as written and in its shell-word form
 *                    (pattern_command_words), so quoting cannot dodge it.
 *   PATTERN_LINE     watch and passprompt: matched against one line.
 *   PATTERN_REDACT   the top-level redact list: found within a line;
 *                    in a glob '*' is a run of non-blank characters and
 *                    '?' one (the redactor reads the match's position).
 *
 * Except for targets, "re:" starts a POSIX extended regular expression,
 * found anywhere in the text unless anchored; anything else is a glob,
 * which (but in PATTERN_REDACT) must match the whole text under
 * fnmatch(3) without FNM_PATHNAME ('*' crosses '/': "ls *" matches
 * "ls /etc/x"). See docs/guard.md.
 */
#ifndef PODGATE_PATTERN_H
#define PODGATE_PATTERN_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

/* Longest pattern text, "re:" included. */
#define PATTERN_TEXT_MAX 1024

/* Longest target pattern: as long as a target name. */
#define PATTERN_TARGET_MAX 253

enum pattern_mode {
	PATTERN_TARGET = 1,
	PATTERN_ALLOW,
	PATTERN_COMMAND,
	PATTERN_LINE,
	PATTERN_REDACT,
};

/* A compiled pattern (the configuration's struct cfg_pattern). */
struct cfg_pattern {
	int line;		/* where it is written (the caller's to set) */
	enum pattern_mode mode;
	char *text;		/* as written, "re:" included (for reasons) */
	bool regex;		/* "re:": re is compiled and must be regfree'd */
	regex_t re;		/* PATTERN_REDACT: a glob is compiled too */
};

/*
 * Whether text may be a pattern at all: not empty (nor only "re:") and
 * at most PATTERN_TEXT_MAX bytes. Returns 0, or -EINVAL with the reason
 * ("empty pattern", "pattern is longer than 1024 bytes") in err.
 */
int pattern_text_check(const char *text, char *err, size_t errlen);

/*
 * Compile text into *p (cleared on entry) for mode (not PATTERN_TARGET).
 * Returns 0, -EINVAL with a one-line reason in err ("bad regular
 * expression 're:(': ..." or as pattern_text_check), or -ENOMEM.
 */
int pattern_compile(struct cfg_pattern *p, enum pattern_mode mode, const char *text,
    char *err, size_t errlen);

/* Free what pattern_compile made and zero *p; a zeroed p is fine. */
void pattern_free(struct cfg_pattern *p);

/*
 * Whether s matches p in p's mode (see above). NULL p or s: false.
 * PATTERN_REDACT patterns are searched by the redactor, which needs the
 * match's position (p->re); here they only say whether one is found.
 */
bool pattern_match(const struct cfg_pattern *p, const char *s);

/*
 * Whether s is a target pattern: the characters of a target name plus
 * the glob ones (* ? [ ] !), 1..PATTERN_TARGET_MAX long, no leading '-'.
 */
bool pattern_target_ok(const char *s);

/* Whether target pattern glob matches the whole of name (FNM_PATHNAME). */
bool pattern_target_match(const char *glob, const char *name);

/* ---- Commands as sh reads them ---- */

/* Most parts of a command pattern_command_split keeps. */
#define PATTERN_CMD_MAX_PARTS 64

/* What a part of a command holds outside quotes that a pattern must name. */
enum {
	PATTERN_CMD_DOLLAR_PAREN = 1 << 0,	/* "$(" (also inside double quotes) */
	PATTERN_CMD_BACKQUOTE = 1 << 1,		/* '`' (also inside double quotes) */
	PATTERN_CMD_REDIR_IN = 1 << 2,		/* '<' */
	PATTERN_CMD_REDIR_OUT = 1 << 3,		/* '>' */
	PATTERN_CMD_CR = 1 << 4,		/* a carriage return */
};

/* One simple command of a list or pipeline, and the operator after it. */
struct pattern_cmd_part {
	const char *s;		/* into the command; blanks around it trimmed */
	size_t len;
	char op[3];		/* "|", "||", "|&", "&", "&&", ";", "\n"; "" for the last */
	unsigned flags;		/* PATTERN_CMD_* found in the part */
};

/*
 * Split cmd as sh reads its lists and pipelines: the unquoted operators
 * ';', '&', '&&', '|', '||', '|&' and newline separate parts; single and
 * double quotes and backslash escapes are respected (an unterminated
 * quote runs to the end). Fills parts[0..*n-1]. Returns 0, or -E2BIG when
 * cmd has more than max parts (then *n is max).
 */
int pattern_command_split(const char *cmd, struct pattern_cmd_part *parts, size_t max,
    size_t *n);

/*
 * The shell-word form of cmd, as sh would split it: quotes and backslash
 * escapes removed, words separated by one space, list and pipeline
 * operators kept as words ("echo ap\"\"prove x;id" is "echo approve x ; id").
 * A new string, or NULL when out of memory.
 */
char *pattern_command_words(const char *cmd);

#endif
