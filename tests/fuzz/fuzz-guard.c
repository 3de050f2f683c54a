/*
 * libFuzzer harness for the guard: the input is a command checked against
 * rules with globs and regexes, a pattern compiled and matched, typed
 * bytes rebuilt into lines in both modes, masked, a command split into
 * its list and pipeline parts and matched by structure, and a reason checked;
 * never a crash, a leak or an inconsistent verdict.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/config.h"
#include "policy/guard.h"
#include "rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char yaml[] =
    "rules:\n"
    "  - users: [a]\n"
    "    targets: [x]\n"
    "    commands: {allow: ['ls *', 'cat *', 're:^kubectl get [a-z]+$', 'ps * | grep *'],\n"
    "               deny: ['*rm -rf*', 're:(^|[;&|] *)shutdown']}\n"
    "    watch: [{on: both, pattern: 're:curl .*\\| *sh', action: terminate}, '*sudo*']\n"
    "  - users: [a]\n"
    "    targets: [y]\n"
    "    pty: false\n"
    "    exec: false\n"
    "  - users: [a]\n"
    "    targets: [z]\n"
    "    commands: {allow: []}\n";

/* Check one verdict for consistency. */
static void
check(const struct cfg_rule *r, bool pty, const char *cmd)
{
	struct guard_verdict v;
	enum guard_decision d;
	char msg[2048];

	d = guard_check_request(r, pty, cmd, &v);
	if (d != v.decision || v.rule != r)
		__builtin_trap();
	if (d == GUARD_DENIED && (v.pattern == NULL || !pattern_match(v.pattern, cmd)))
		__builtin_trap();
	if (d == GUARD_OK && v.pattern != NULL && !pattern_match(v.pattern, cmd))
		__builtin_trap();
	if ((guard_verdict_message(&v, msg, sizeof msg) == 0) != (d == GUARD_OK))
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config *c;
	struct guard_line l;
	struct cfg_pattern p;
	struct pattern_cmd_part parts[PATTERN_CMD_MAX_PARTS];
	size_t np;
	const char *line, *nl;
	char *s, err[512];
	uint8_t *mask;
	size_t i, off, n, len;

	if (c == NULL && config_load_string("fuzz", yaml, sizeof yaml - 1, NULL, &c) != 0)
		__builtin_trap();
	if ((s = malloc(size + 1)) == NULL || (mask = malloc(size + 1)) == NULL) {
		free(s);
		return 0;
	}
	memcpy(s, data, size);
	s[size] = '\0';	/* a command is a C string: it ends at the first NUL */
	for (i = 0; i < c->nrules; i++) {
		check(&c->rules[i], false, s);
		check(&c->rules[i], true, s);
		check(&c->rules[i], size & 1, NULL);
	}
	/* The first line as a pattern, the rest as the text. */
	if ((nl = strchr(s, '\n')) != NULL) {
		char *pat = strndup(s, (size_t)(nl - s));

		int mode;

		/* The same text in every mode, then as a target pattern. */
		for (mode = PATTERN_ALLOW; pat != NULL && mode <= PATTERN_REDACT; mode++) {
			if (pattern_compile(&p, (enum pattern_mode)mode, pat, err, sizeof err) != 0)
				continue;
			if (p.mode != (enum pattern_mode)mode)
				__builtin_trap();
			pattern_match(&p, nl + 1);
			/* A glob always allows the command it was written as. */
			if (mode == PATTERN_ALLOW && !p.regex && strpbrk(pat, "*?[\\") == NULL &&
			    pattern_command_split(pat, parts, PATTERN_CMD_MAX_PARTS, &np) == 0 &&
			    !pattern_match(&p, pat))
				__builtin_trap();
			pattern_free(&p);
		}
		if (pat != NULL && pattern_target_ok(pat))
			pattern_target_match(pat, nl + 1);
		free(pat);
	}
	for (i = 0; i < 2; i++) {
		guard_line_init(&l, i == 0);
		for (off = 0; off < size; off += n) {
			n = guard_line_feed(&l, data + off, size - off, &line, &len);
			if (n == 0 || n > size - off)
				__builtin_trap();
			if (line != NULL) {
				if (strlen(line) != len || len > GUARD_LINE_MAX)
					__builtin_trap();
				guard_watch_match(&c->rules[0], i == 0 ? CFG_WATCH_INPUT :
				    CFG_WATCH_OUTPUT, line, NULL);
			}
		}
		line = guard_line_partial(&l, &len);
		if (strlen(line) != len)
			__builtin_trap();
	}
	{
		size_t k;

		if (pattern_command_split(s, parts, PATTERN_CMD_MAX_PARTS, &np) == 0) {
			if (np == 0 || parts[np - 1].op[0] != '\0')
				__builtin_trap();
		}
		for (k = 0; k < np; k++) {
			if (parts[k].s < s || parts[k].s + parts[k].len > s + strlen(s))
				__builtin_trap();
		}
	}
	{
		char *w = pattern_command_words(s);

		if (w != NULL && strlen(w) > 3 * strlen(s))
			__builtin_trap();
		free(w);
	}
	if (rec_input_mask(data, size, mask) > size)
		__builtin_trap();
	guard_reason_ok(s);
	free(mask);
	free(s);
	return 0;
}
