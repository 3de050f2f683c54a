/*
 * Unit tests for broker/guard.c and the guard keys of broker/config.c:
 * every key parsed (and every mistake reported with its line), the
 * command policy (allow, deny, deny wins, globs, regexes, shell control
 * characters, pty and exec), refusal lines, typed-line reconstruction,
 * input masking, reasons and limits.
 */
#include <stdint.h>

#include "policy/config.h"
#include "policy/guard.h"
#include "unit.h"

#define KEY "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDAyAMLG3/AKjNcLoN06yCmkF1ADo+psC7xsb27+Ek/R"
#define USERS "users: [{name: alice, keys: [\"" KEY "\"], groups: [agents]}]\n"

/* The example of the issue, every key with a value. */
static void
test_config_full(void)
{
	static const char yaml[] =
	    USERS
	    "rules:\n"
	    "  - groups: [agents]\n"
	    "    targets: [\"prod:dev/*\"]\n"
	    "    pty: false\n"
	    "    commands: {allow: [\"ls *\", \"cat *\", \"re:^kubectl get \"], deny: [\"*rm -rf*\"]}\n"
	    "    watch: [{on: input, pattern: \"re:curl .*\\\\| *sh\", action: terminate}]\n"
	    "    require_reason: true\n"
	    "    limits: {max_sessions: 4, max_duration: 1h, idle_timeout: 15m, max_output: 100MB}\n"
	    "  - users: [alice]\n"
	    "    targets: [local]\n"
	    "    exec: false\n"
	    "    pty: true\n"
	    "    commands: [\"uptime\"]\n"
	    "    watch:\n"
	    "      - 'sudo *'\n"
	    "      - {on: both, pattern: 're:DROP +TABLE', message: no schema changes here}\n"
	    "      - {on: output, pattern: '*Permission denied*', action: alert}\n"
	    "    limits: {max_duration: 1h30m, max_output: 1GiB}\n"
	    "targets: {local: {user: nobody}, kubernetes: [{name: prod}]}\n"
	    "redact: [\"re:corp-[0-9a-f]{32}\", {pattern: 'sk_live_*', kind: stripe}]\n";
	struct config *c = expect_ok(yaml);
	const struct cfg_rule *r = &c->rules[0];

	assert(c->nrules == 2);
	assert(r->deny_pty && !r->deny_exec && r->require_reason);
	assert(r->has_allow && r->nallow == 3 && r->ndeny == 1);
	assert(strcmp(r->allow[0].text, "ls *") == 0 && !r->allow[0].regex && r->allow[0].line == 6);
	assert(strcmp(r->allow[2].text, "re:^kubectl get ") == 0 && r->allow[2].regex);
	assert(strcmp(r->deny[0].text, "*rm -rf*") == 0);
	assert(r->nwatch == 1 && r->watch[0].line == 7);
	assert(r->watch[0].on == CFG_WATCH_INPUT && r->watch[0].action == CFG_WATCH_TERMINATE);
	assert(r->watch[0].pattern.regex && strcmp(r->watch[0].pattern.text, "re:curl .*\\| *sh") == 0);
	assert(r->watch[0].message == NULL);
	assert(r->limits.max_sessions == 4 && r->limits.max_duration == 3600);
	assert(r->limits.idle_timeout == 900 && r->limits.max_output == 100000000);

	r = &c->rules[1];
	assert(!r->deny_pty && r->deny_exec && !r->require_reason);
	assert(r->has_allow && r->nallow == 1 && r->ndeny == 0);
	assert(r->nwatch == 3);
	assert(r->watch[0].on == CFG_WATCH_INPUT && r->watch[0].action == CFG_WATCH_ALERT &&
	    strcmp(r->watch[0].pattern.text, "sudo *") == 0 && r->watch[0].line == 16);
	assert(r->watch[1].on == (CFG_WATCH_INPUT | CFG_WATCH_OUTPUT) &&
	    strcmp(r->watch[1].message, "no schema changes here") == 0);
	assert(r->watch[2].on == CFG_WATCH_OUTPUT);
	assert(r->limits.max_sessions == 0 && r->limits.max_duration == 5400 &&
	    r->limits.idle_timeout == 0 && r->limits.max_output == 1073741824);

	assert(c->nredact == 2);
	assert(strcmp(c->redact[0].pattern.text, "re:corp-[0-9a-f]{32}") == 0 && c->redact[0].line == 21);
	assert(strcmp(c->redact[0].kind, "custom") == 0 && strcmp(c->redact[1].kind, "stripe") == 0);
	config_unref(c);
}

/* Defaults: a rule without guard keys allows everything and limits nothing. */
static void
test_config_defaults(void)
{
	struct config *c = expect_ok(USERS "rules: [{users: [alice], targets: [local]}]\n"
	    "targets: {local: {user: nobody}}\n");
	const struct cfg_rule *r = &c->rules[0];

	assert(!r->deny_pty && !r->deny_exec && !r->has_allow && !r->require_reason);
	assert(r->nallow == 0 && r->ndeny == 0 && r->nwatch == 0 && r->allow == NULL);
	assert(r->limits.max_sessions == 0 && r->limits.max_duration == 0 &&
	    r->limits.idle_timeout == 0 && r->limits.max_output == 0);
	assert(c->nredact == 0 && c->redact == NULL);
	config_unref(c);

	/* an empty allow list allows nothing; null lists are empty */
	c = expect_ok(USERS "rules: [{users: [alice], targets: [x], commands: {allow: [], "
	    "deny: ~}, watch: ~, limits: ~}]\nredact: ~\n");
	assert(c->rules[0].has_allow && c->rules[0].nallow == 0);
	config_unref(c);
}

/* Sizes: decimal and binary units. */
static void
test_config_sizes(void)
{
	static const struct {
		const char *v;
		uint64_t want;
	} sizes[] = {
		{ "1", 1 }, { "512k", 512000 }, { "512K", 512000 }, { "2kB", 2000 },
		{ "100MB", 100000000 }, { "100M", 100000000 }, { "3G", 3000000000ull },
		{ "1GiB", 1073741824 }, { "1Gi", 1073741824 }, { "64KiB", 65536 },
		{ "2MiB", 2097152 }, { "1TB", 1000000000000ull }, { "1TiB", 1ull << 40 },
		{ "10B", 10 },
	};
	char yaml[512];
	struct config *c;
	size_t i;

	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		snprintf(yaml, sizeof yaml, USERS "rules: [{users: [alice], targets: [x], "
		    "limits: {max_output: %s}}]\n", sizes[i].v);
		c = expect_ok(yaml);
		assert(c->rules[0].limits.max_output == sizes[i].want);
		config_unref(c);
	}
}

/* Every mistake, with its line. */
static void
test_config_errors(void)
{
	static const struct {
		const char *rule;	/* keys of a rule, starting on line 4 */
		const char *want;
	} cases[] = {
		{ "    pty: maybe\n", "t:4: pty must be true or false" },
		{ "    exec: 'true'\n", "t:4: exec must be true or false" },
		{ "    require_reason: [x]\n", "t:4: require_reason must be true or false" },
		{ "    commands: ls\n", "t:4: commands must be a mapping with allow and deny lists" },
		{ "    commands: {allow: ls}\n", "t:4: commands.allow must be a list of patterns" },
		{ "    commands: {allow: [ls], permit: [x]}\n",
		  "t:4: unknown key \"permit\" in commands" },
		{ "    commands:\n      deny:\n        - x\n        - 're:(rm'\n",
		  "t:7: bad regular expression 're:(rm': " },
		{ "    commands: {allow: ['']}\n", "t:4: commands.allow: empty pattern" },
		{ "    commands: {allow: ['re:']}\n", "t:4: commands.allow: empty pattern" },
		{ "    commands: {deny: [[x]]}\n", "t:4: commands.deny must be a string" },
		{ "    watch: {pattern: x}\n", "t:4: watch must be a list of {on, pattern, action}" },
		{ "    watch:\n      - {on: input}\n", "t:5: watch has no pattern" },
		{ "    watch:\n      - {pattern: x, on: stdin}\n",
		  "t:5: watch on must be input, output or both, not \"stdin\"" },
		{ "    watch:\n      - {pattern: x, action: kill}\n",
		  "t:5: watch action must be alert or terminate, not \"kill\"" },
		{ "    watch:\n      - {pattern: 're:a{2'}\n", "t:5: bad regular expression 're:a{2'" },
		{ "    watch:\n      - 're:['\n", "t:5: bad regular expression 're:['" },
		{ "    watch: [[x]]\n", "t:4: each watch must be a pattern or a mapping" },
		{ "    watch: [{pattern: x, message: \"a\\nb\"}]\n",
		  "t:4: watch message must be one line" },
		{ "    watch: [{pattern: x, when: now}]\n", "t:4: unknown key \"when\" in watch" },
		{ "    limits: 5\n", "t:4: limits must be a mapping of keys to values" },
		{ "    limits: {max_sessions: 0}\n", "t:4: max_sessions must be from 1 to 100000" },
		{ "    limits: {max_sessions: four}\n", "t:4: max_sessions must be a number" },
		{ "    limits: {max_duration: 1d}\n", "t:4: max_duration must be a duration" },
		{ "    limits: {max_duration: 1h30}\n", "t:4: max_duration must be a duration" },
		{ "    limits:\n      idle_timeout: -5m\n", "t:5: idle_timeout must be a duration" },
		{ "    limits: {idle_timeout: 0}\n", "t:4: idle_timeout must be from 1 to 2592000 seconds" },
		{ "    limits: {max_duration: 31d}\n", "t:4: max_duration must be a duration" },
		{ "    limits: {max_duration: 721h}\n",
		  "t:4: max_duration must be from 1 to 2592000 seconds" },
		{ "    limits: {max_output: 100XB}\n", "t:4: max_output must be a size" },
		{ "    limits: {max_output: MB}\n", "t:4: max_output must be a size" },
		{ "    limits: {max_output: 0}\n", "t:4: max_output must be from 1 to" },
		{ "    limits: {max_output: 99999999TiB}\n", "t:4: max_output must be from 1 to" },
		{ "    limits: {max_output: 1.5GB}\n", "t:4: max_output must be a size" },
		{ "    limits: {max_users: 3}\n", "t:4: unknown key \"max_users\" in limits" },
	};
	static const struct {
		const char *top;	/* top-level keys, starting on line 3 */
		const char *want;
	} tops[] = {
		{ "redact: 're:x'\n", "t:3: redact must be a list of patterns" },
		{ "redact: ['re:(x']\n", "t:3: bad regular expression 're:(x'" },
		{ "redact:\n  - ok\n  - ''\n", "t:5: redact: empty pattern" },
		{ "redact: [{kind: x}]\n", "t:3: redact entry has no pattern" },
		{ "redact: [{pattern: x, kind: 'Not OK'}]\n", "t:3: redact: kind \"Not OK\" is not valid" },
		{ "redact: [{pattern: x, color: red}]\n", "t:3: unknown key \"color\" in redact entry" },
		{ "redact: [[x]]\n", "t:3: each redact entry must be a pattern or a mapping" },
	};
	char yaml[1024];
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(yaml, sizeof yaml, USERS "rules:\n  - users: [alice]\n%s"
		    "    targets: [x]\n", cases[i].rule);
		expect_error(yaml, cases[i].want);
	}
	for (i = 0; i < sizeof tops / sizeof tops[0]; i++) {
		snprintf(yaml, sizeof yaml, USERS "rules: [{users: [alice], targets: [x]}]\n%s",
		    tops[i].top);
		expect_error(yaml, tops[i].want);
	}
}

/* A rule built from yaml keys (users: [alice], targets: [x] added). */
static struct config *
rule_config(const char *keys)
{
	char yaml[2048];

	snprintf(yaml, sizeof yaml, USERS "rules:\n  - users: [alice]\n    targets: [x]\n%s", keys);
	return expect_ok(yaml);
}

/* The command policy: table of rule, pty, command, decision, deciding pattern. */
static void
test_commands(void)
{
	static const struct {
		const char *keys;
		bool pty;
		const char *command;
		enum guard_decision want;
		const char *pattern;
	} cases[] = {
		/* no list: everything */
		{ "", false, "rm -rf /", GUARD_OK, NULL },
		{ "", true, NULL, GUARD_OK, NULL },
		/* globs without FNM_PATHNAME: '*' crosses '/' */
		{ "    commands: {allow: ['ls *', 'cat *']}\n", false, "ls /etc/x", GUARD_OK, "ls *" },
		{ "    commands: {allow: ['ls *', 'cat *']}\n", false, "cat /a/b/c", GUARD_OK, "cat *" },
		{ "    commands: {allow: ['ls *', 'cat *']}\n", false, "ls", GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['ls *', 'cat *']}\n", false, "lsof -i", GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['ls*']}\n", false, "ls", GUARD_OK, "ls*" },
		{ "    commands: ['uptime']\n", false, "uptime", GUARD_OK, "uptime" },
		{ "    commands: ['uptime']\n", false, "uptime -p", GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: []}\n", false, "true", GUARD_NOT_ALLOWED, NULL },
		/* regexes are searched: anchor them */
		{ "    commands: {allow: ['re:^kubectl get ']}\n", false, "kubectl get pods -A",
		  GUARD_OK, "re:^kubectl get " },
		{ "    commands: {allow: ['re:^kubectl get ']}\n", false, "kubectl delete pod x",
		  GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['re:get']}\n", false, "kubectl get x", GUARD_OK, "re:get" },
		/* deny wins, glob or regex */
		{ "    commands: {allow: ['*'], deny: ['*rm -rf*']}\n", false, "rm -rf /tmp/x",
		  GUARD_DENIED, "*rm -rf*" },
		{ "    commands: {allow: ['ls *'], deny: ['*rm -rf*']}\n", false, "ls; rm -rf /",
		  GUARD_DENIED, "*rm -rf*" },
		{ "    commands: {deny: ['*rm -rf*']}\n", false, "rm -rf /", GUARD_DENIED, "*rm -rf*" },
		{ "    commands: {deny: ['*rm -rf*']}\n", false, "rm -r /", GUARD_OK, NULL },
		{ "    commands: {deny: ['re:(^|[;&|] *)shutdown']}\n", false, "ls && shutdown now",
		  GUARD_DENIED, "re:(^|[;&|] *)shutdown" },
		{ "    commands: {allow: ['cat *'], deny: ['cat /etc/shadow*']}\n", false,
		  "cat /etc/shadow", GUARD_DENIED, "cat /etc/shadow*" },
		/* shell control characters are not let through by an allow '*' */
		{ "    commands: {allow: ['ls *']}\n", false, "ls; rm x", GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['ls *']}\n", false, "ls x && id", GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['ls *']}\n", false, "ls | sh", GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['ls *']}\n", false, "ls $(id)", GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['ls *']}\n", false, "ls `id`", GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['ls *']}\n", false, "ls > /etc/x", GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['ls *']}\n", false, "ls x\nid", GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['ls *']}\n", false, "ls $HOME", GUARD_OK, "ls *" },
		{ "    commands: {allow: ['re:^kubectl get ']}\n", false, "kubectl get x; id",
		  GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['ps * | grep *']}\n", false, "ps aux | grep x", GUARD_OK,
		  "ps * | grep *" },
		{ "    commands: {allow: ['ps * | grep *']}\n", false, "ps aux | grep x; id",
		  GUARD_NOT_ALLOWED, NULL },
		/* control characters match only at their position in the pattern */
		{ "    commands: {allow: ['ps * | grep *']}\n", false, "ps x | grep x | sh -c id",
		  GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['ps * | grep *']}\n", false, "ps x|grep y", GUARD_OK,
		  "ps * | grep *" },
		{ "    commands: {allow: ['ps * | grep *']}\n", false, "ps x || grep y",
		  GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['ps * | grep *']}\n", false, "ps x | sh",
		  GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['ps * | grep *']}\n", false, "ps x & grep y | id",
		  GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['ps * | grep *']}\n", false, "ps 'a|b' | grep \"x;y\"",
		  GUARD_OK, "ps * | grep *" },
		{ "    commands: {allow: ['ps * | grep *']}\n", false, "ps x | grep $(id)",
		  GUARD_NOT_ALLOWED, NULL },
		{ "    commands: {allow: ['echo *']}\n", false, "echo 'a; b' \"c | d\"", GUARD_OK,
		  "echo *" },
		{ "    commands: {allow: ['echo *']}\n", false, "echo \"$(id)\"", GUARD_NOT_ALLOWED,
		  NULL },
		{ "    commands: {allow: ['echo *']}\n", false, "echo '$(id)'", GUARD_OK, "echo *" },
		{ "    commands: {allow: ['echo *']}\n", false, "echo a\\; id", GUARD_OK, "echo *" },
		{ "    commands: {allow: ['echo *']}\n", false, "echo 'a' ; id", GUARD_NOT_ALLOWED,
		  NULL },
		{ "    commands: {allow: ['re:^ps [a-z]+ .*$']}\n", false, "ps x | sh",
		  GUARD_NOT_ALLOWED, NULL },
		/* pty and exec */
		{ "    pty: false\n", false, "ls", GUARD_OK, NULL },
		{ "    pty: false\n", true, "ls", GUARD_NO_PTY, NULL },
		{ "    pty: false\n", false, NULL, GUARD_NO_PTY, NULL },
		{ "    exec: false\n", true, NULL, GUARD_OK, NULL },
		{ "    exec: false\n", false, NULL, GUARD_OK, NULL },
		{ "    exec: false\n", true, "ls", GUARD_NO_EXEC, NULL },
		{ "    pty: false\n    exec: false\n", false, "ls", GUARD_NO_EXEC, NULL },
		/* commands do not apply to interactive shells */
		{ "    commands: {allow: []}\n", true, NULL, GUARD_OK, NULL },
	};
	struct guard_verdict v;
	struct config *c;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		c = rule_config(cases[i].keys);
		if (guard_check_request(&c->rules[0], cases[i].pty, cases[i].command, &v) !=
		    cases[i].want || v.decision != cases[i].want) {
			fprintf(stderr, "case %zu: %s%s: got %s\n", i, cases[i].keys,
			    cases[i].command != NULL ? cases[i].command : "(shell)",
			    guard_decision_name(v.decision));
			abort();
		}
		assert(v.rule == &c->rules[0]);
		assert((v.pattern == NULL) == (cases[i].pattern == NULL));
		assert(v.pattern == NULL || strcmp(v.pattern->text, cases[i].pattern) == 0);
		config_unref(c);
	}
	assert(guard_check_request(NULL, true, "x", &v) == GUARD_OK && v.rule == NULL);
}

/* The structure pattern_command_split reads. */
static void
test_command_split(void)
{
	struct pattern_cmd_part p[4];
	size_t n;

	assert(pattern_command_split("a | b && 'c;d' ; e\\|f || g", p, 4, &n) == -E2BIG && n == 4);
	struct pattern_cmd_part q[8];
	assert(pattern_command_split(" a | b && 'c;d' ; e\\|f || g ", q, 8, &n) == 0 && n == 5);
	assert(q[0].len == 1 && strncmp(q[0].s, "a", 1) == 0 && strcmp(q[0].op, "|") == 0);
	assert(q[1].len == 1 && strcmp(q[1].op, "&&") == 0);
	assert(q[2].len == 5 && strncmp(q[2].s, "'c;d'", 5) == 0 && strcmp(q[2].op, ";") == 0);
	assert(q[3].len == 4 && strncmp(q[3].s, "e\\|f", 4) == 0 && strcmp(q[3].op, "||") == 0);
	assert(q[4].len == 1 && strcmp(q[4].op, "") == 0);
	assert(pattern_command_split("x \"$(a)\" `b` < c > d\r", q, 8, &n) == 0 && n == 1);
	assert(q[0].flags == (PATTERN_CMD_DOLLAR_PAREN | PATTERN_CMD_BACKQUOTE | PATTERN_CMD_REDIR_IN |
	    PATTERN_CMD_REDIR_OUT | PATTERN_CMD_CR));
	assert(pattern_command_split("x '$(a) `b` <>' \"<>\"", q, 8, &n) == 0 && n == 1 &&
	    q[0].flags == 0);
	assert(pattern_command_split("a\nb |& c", q, 8, &n) == 0 && n == 3 &&
	    strcmp(q[0].op, "\n") == 0 && strcmp(q[1].op, "|&") == 0);
	assert(pattern_command_split("", q, 8, &n) == 0 && n == 1 && q[0].len == 0);
}

/* The shell-word form deny and approve patterns also match. */
static void
test_command_words(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "echo \"approve\" x", "echo approve x" },
		{ "echo ap\"\"prove x", "echo approve x" },
		{ "echo \\approve  'x  y'", "echo approve x  y" },
		{ "r\"m\" -rf /;id&&ls|cat", "rm -rf / ; id && ls | cat" },
		{ "a \"b\\\"c\" 'd\\e'\nf", "a b\"c d\\e ; f" },
		{ "", "" },
	};
	struct config *c;
	struct guard_verdict v;
	size_t i;
	char *w;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert((w = pattern_command_words(cases[i].in)) != NULL);
		if (strcmp(w, cases[i].want) != 0) {
			fprintf(stderr, "words of [%s]: [%s], want [%s]\n", cases[i].in, w,
			    cases[i].want);
			abort();
		}
		free(w);
	}
	c = rule_config("    commands: {deny: ['*rm -rf*']}\n");
	assert(guard_check_request(&c->rules[0], false, "r\"m\" -rf /tmp/x", &v) == GUARD_DENIED);
	assert(guard_check_request(&c->rules[0], false, "'rm' '-rf' /tmp/x", &v) == GUARD_DENIED);
	assert(guard_check_request(&c->rules[0], false, "rm -r -f /tmp/x", &v) == GUARD_OK);
	config_unref(c);
}

/* The one line a refused client sees, and decision names. */
static void
test_messages(void)
{
	struct config *c = rule_config("    commands: {allow: ['ls *'], deny: ['*rm -rf*']}\n"
	    "    pty: false\n");
	struct guard_verdict v;
	char buf[256];

	assert(guard_check_request(&c->rules[0], false, "rm -rf /", &v) == GUARD_DENIED);
	guard_verdict_message(&v, buf, sizeof buf);
	assert(strcmp(buf, "podgate: command refused by rule at line 3: matches deny pattern "
	    "'*rm -rf*'") == 0);
	assert(strcmp(guard_decision_name(v.decision), "denied") == 0);
	assert(guard_check_request(&c->rules[0], false, "id", &v) == GUARD_NOT_ALLOWED);
	guard_verdict_message(&v, buf, sizeof buf);
	assert(strcmp(buf, "podgate: command refused by rule at line 3: matches no allow "
	    "pattern") == 0);
	assert(strcmp(guard_decision_name(v.decision), "not-allowed") == 0);
	assert(guard_check_request(&c->rules[0], true, NULL, &v) == GUARD_NO_PTY);
	guard_verdict_message(&v, buf, sizeof buf);
	assert(strcmp(buf, "podgate: interactive session refused by rule at line 3: pty is not "
	    "allowed; give a command without -t") == 0);
	assert(guard_check_request(&c->rules[0], false, "ls /", &v) == GUARD_OK);
	assert(guard_verdict_message(&v, buf, sizeof buf) == 0 && buf[0] == '\0');
	config_unref(c);
	c = rule_config("    exec: false\n");
	assert(guard_check_request(&c->rules[0], false, "ls", &v) == GUARD_NO_EXEC);
	guard_verdict_message(&v, buf, sizeof buf);
	assert(strcmp(buf, "podgate: command refused by rule at line 3: exec is not allowed; "
	    "use an interactive session (ssh -t)") == 0);
	assert(strcmp(guard_decision_name(GUARD_NO_EXEC), "no-exec") == 0);
	assert(strcmp(guard_decision_name(GUARD_NO_PTY), "no-pty") == 0);
	assert(strcmp(guard_decision_name(GUARD_OK), "ok") == 0);
	assert(GUARD_EXIT_REFUSED == 126);
	config_unref(c);
}

/* Typed lines: input, and the lines (NUL-separated) expected. */
static const struct {
	bool input;
	const char *in;
	size_t inlen;
	const char *want;	/* lines joined with '|' */
	const char *partial;
} lines[] = {
#define L(input, in, want, partial) { input, in, sizeof in - 1, want, partial }
	L(true, "ls -l\r", "ls -l|", ""),
	L(true, "ls\rpwd\n", "ls|pwd|", ""),
	L(true, "a\r\nb\r\n", "a|b|", ""),
	L(true, "\r\r", "||", ""),
	L(true, "lss\x7f -l\r", "ls -l|", ""),
	L(true, "lss\b -l\r", "ls -l|", ""),
	L(true, "\x7f\x7fok\r", "ok|", ""),
	L(true, "rm -rf /\x15ls\r", "ls|", ""),
	L(true, "git push origin\x17main\r", "git push main|", ""),
	L(true, "git push   \x17x\r", "git x|", ""),
	L(true, "git push   \x17\x17x\r", "x|", ""),
	L(true, "echo hi\x03ls\r", "ls|", ""),
	L(true, "ls\x1b[A\x1b[D\x1b[C -a\r", "ls -a|", ""),
	L(true, "ls\x1bOA\x1bOB!\r", "ls!|", ""),
	L(true, "\x1b[200~curl x | sh\x1b[201~\r", "curl x | sh|", ""),
	L(true, "a\x1b]0;title\x07" "b\r", "ab|", ""),
	L(true, "a\x1b]0;title\x1b\\b\r", "ab|", ""),
	L(true, "a\x1b" "bc\r", "ac|", ""),
	L(true, "a\tb\x01\x02\x04\r", "a\tb|", ""),
	L(true, "caf\xc3\xa9\x7f\x7fx\r", "cax|", ""),
	L(true, "half typed", "", "half typed"),
	L(true, "a\0b\r", "ab|", ""),
	L(false, "total 0\r\ndrwx x\r\n$ ", "total 0|drwx x|", "$ "),
	L(false, "\x1b[1;32mgreen\x1b[0m\r\n", "green|", ""),
	L(false, "abc\x15\x17" "d\n", "abcd|", ""),
	L(false, "50%\r100%\r\n", "50%|100%|", ""),
#undef L
};

/* Feed each case whole and one byte at a time: the same lines. */
static void
test_lines(void)
{
	struct guard_line l;
	char got[4096];
	const char *line, *part;
	size_t i, off, n, linelen, step, plen, chunk;

	for (i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		for (step = 0; step < 2; step++) {
			guard_line_init(&l, lines[i].input);
			got[0] = '\0';
			for (off = 0; off < lines[i].inlen; off += n) {
				chunk = step == 0 ? lines[i].inlen - off : 1;
				n = guard_line_feed(&l, lines[i].in + off, chunk, &line, &linelen);
				assert(n > 0 && n <= chunk);
				if (line != NULL) {
					assert(strlen(line) == linelen);
					strcat(got, line);
					strcat(got, "|");
				} else {
					assert(n == chunk);
				}
			}
			part = guard_line_partial(&l, &plen);
			if (strcmp(got, lines[i].want) != 0 || strcmp(part, lines[i].partial) != 0 ||
			    plen != strlen(part)) {
				fprintf(stderr, "lines case %zu step %zu: got \"%s\" partial \"%s\"\n",
				    i, step, got, part);
				abort();
			}
		}
	}
}

/* A line longer than the bound keeps its start and says so. */
static void
test_line_bound(void)
{
	struct guard_line l;
	const char *line;
	size_t i, n = 0, len;

	guard_line_init(&l, true);
	for (i = 0; i < 3 * GUARD_LINE_MAX; i++) {
		assert(guard_line_feed(&l, "x", 1, &line, &len) == 1 && line == NULL);
	}
	assert(l.truncated);
	assert(guard_line_feed(&l, "\r", 1, &line, &len) == 1);
	assert(line != NULL && len == GUARD_LINE_MAX && strlen(line) == GUARD_LINE_MAX);
	assert(!l.truncated);
	assert(guard_line_feed(&l, "ok\r", 3, &line, &n) == 3 && strcmp(line, "ok") == 0);
}

/* Watches by side, in order, with the termination message. */
static void
test_watch(void)
{
	struct config *c = rule_config(
	    "    watch:\n"
	    "      - {pattern: 're:curl .*\\| *sh', action: terminate}\n"
	    "      - {on: output, pattern: '*Permission denied*'}\n"
	    "      - {on: both, pattern: '*curl*', message: no downloads}\n");
	const struct cfg_rule *r = &c->rules[0];
	const struct cfg_watch *w;
	char buf[256];

	w = guard_watch_match(r, CFG_WATCH_INPUT, "curl -s http://x | sh", NULL);
	assert(w == &r->watch[0] && w->action == CFG_WATCH_TERMINATE);
	w = guard_watch_match(r, CFG_WATCH_INPUT, "curl -s http://x | sh", w);
	assert(w == &r->watch[2]);
	assert(guard_watch_match(r, CFG_WATCH_INPUT, "curl -s http://x | sh", w) == NULL);
	assert(guard_watch_match(r, CFG_WATCH_OUTPUT, "curl x | sh", NULL) == &r->watch[2]);
	assert(guard_watch_match(r, CFG_WATCH_INPUT, "ls: Permission denied", NULL) == NULL);
	assert(guard_watch_match(r, CFG_WATCH_OUTPUT, "ls: Permission denied", NULL) ==
	    &r->watch[1]);
	assert(guard_watch_match(r, CFG_WATCH_INPUT, "ls", NULL) == NULL);
	assert(guard_watch_match(NULL, CFG_WATCH_INPUT, "ls", NULL) == NULL);
	guard_watch_message(&r->watch[0], CFG_WATCH_INPUT, buf, sizeof buf);
	assert(strcmp(buf, "podgate: session terminated: typed input matches watch pattern "
	    "'re:curl .*\\| *sh' (rule at line 6)") == 0);
	guard_watch_message(&r->watch[1], CFG_WATCH_OUTPUT, buf, sizeof buf);
	assert(strcmp(buf, "podgate: session terminated: output matches watch pattern "
	    "'*Permission denied*' (rule at line 7)") == 0);
	guard_watch_message(&r->watch[2], CFG_WATCH_INPUT, buf, sizeof buf);
	assert(strcmp(buf, "podgate: session terminated: no downloads") == 0);
	config_unref(c);
}

/* Patterns compiled by hand. */
static void
test_patterns(void)
{
	struct cfg_pattern p;
	char err[256];

	assert(pattern_compile(&p, PATTERN_LINE, "re:^a+$", err, sizeof err) == 0 && p.regex);
	assert(pattern_match(&p, "aaa") && !pattern_match(&p, "ab"));
	pattern_free(&p);
	pattern_free(&p);
	assert(pattern_compile(&p, PATTERN_LINE, "a?[bc]*", err, sizeof err) == 0 && !p.regex);
	assert(pattern_match(&p, "axb/c/d") && !pattern_match(&p, "axd"));
	assert(!pattern_match(&p, NULL) && !pattern_match(NULL, "x"));
	pattern_free(&p);
	assert(pattern_compile(&p, PATTERN_LINE, "re:a(", err, sizeof err) == -EINVAL);
	assert(strncmp(err, "bad regular expression 're:a(': ", 32) == 0);
	assert(p.text == NULL);
	assert(pattern_compile(&p, PATTERN_LINE, "", err, sizeof err) == -EINVAL);
	assert(strcmp(err, "empty pattern") == 0);
}

/* Reasons. */
static void
test_reason(void)
{
	char e0[] = "LANG=C", e1[] = "PODGATE_REASON=INC-1", e2[] = "PODGATE_REASONX=no",
	    e3[] = "PODGATE_REASON=INC-42 disk full";
	char *env[] = { e0, e1, e2, e3 };
	char longer[GUARD_REASON_MAX + 2];

	assert(strcmp(guard_reason_from_env(env, 4), "INC-42 disk full") == 0);
	assert(strcmp(guard_reason_from_env(env, 2), "INC-1") == 0);
	assert(guard_reason_from_env(env, 1) == NULL);
	assert(guard_reason_from_env(NULL, 0) == NULL);
	assert(guard_reason_ok("INC-42"));
	assert(guard_reason_ok("r\xc3\xa9paration du disque"));
	assert(!guard_reason_ok(""));
	assert(!guard_reason_ok("   "));
	assert(!guard_reason_ok(NULL));
	assert(!guard_reason_ok("a\nb"));
	assert(!guard_reason_ok("a\x1b[31m"));
	assert(!guard_reason_ok("bad \xc3"));
	assert(!guard_reason_ok("c1 \xc2\x9b"));
	memset(longer, 'x', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	assert(!guard_reason_ok(longer));
	longer[GUARD_REASON_MAX] = '\0';
	assert(guard_reason_ok(longer));
}

/* The per-user session counter. */
static void
test_counts(void)
{
	struct guard_counts *t = NULL;
	char name[32];
	int i;

	assert(guard_counts_new(&t) == 0);
	assert(guard_counts_get(t, "alice") == 0);
	assert(guard_counts_acquire(t, "alice", 2) == 0);
	assert(guard_counts_acquire(t, "alice", 2) == 0);
	assert(guard_counts_acquire(t, "alice", 2) == -EUSERS);
	assert(guard_counts_acquire(t, "bob", 2) == 0);
	assert(guard_counts_get(t, "alice") == 2 && guard_counts_get(t, "bob") == 1);
	assert(guard_counts_acquire(t, "alice", 0) == 0);	/* another rule: no limit */
	assert(guard_counts_get(t, "alice") == 3);
	guard_counts_release(t, "alice");
	guard_counts_release(t, "alice");
	assert(guard_counts_acquire(t, "alice", 2) == 0);
	guard_counts_release(t, "alice");
	guard_counts_release(t, "alice");
	assert(guard_counts_get(t, "alice") == 0);
	guard_counts_release(t, "alice");	/* not counted: ignored */
	guard_counts_release(t, "nobody");
	assert(guard_counts_acquire(t, NULL, 1) == -EINVAL);
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof name, "user%d", i);
		assert(guard_counts_acquire(t, name, 1) == 0);
	}
	assert(guard_counts_get(t, "user999") == 1 && guard_counts_get(t, "bob") == 1);
	guard_counts_free(t);	/* with live entries */
	guard_counts_free(NULL);
}

#define S 1000000000ull

/* Duration, idle and output limits, the next deadline and the messages. */
static void
test_limits(void)
{
	const struct cfg_limits l = { .max_sessions = 4, .max_duration = 3600, .idle_timeout = 900,
	    .max_output = 100000000 };
	const struct cfg_limits none = { 0 };
	struct guard_limits_state st;
	char buf[256];
	uint64_t t0 = 5 * S;

	guard_limits_start(&st, t0);
	assert(guard_limits_check(&st, &l, t0) == GUARD_LIMIT_NONE);
	assert(guard_limits_next_ns(&st, &l, t0) == 900 * S);
	assert(guard_limits_check(&st, &l, t0 + 899 * S) == GUARD_LIMIT_NONE);
	assert(guard_limits_check(&st, &l, t0 + 900 * S) == GUARD_LIMIT_IDLE);
	guard_limits_activity(&st, t0 + 800 * S);
	assert(guard_limits_check(&st, &l, t0 + 900 * S) == GUARD_LIMIT_NONE);
	assert(guard_limits_next_ns(&st, &l, t0 + 900 * S) == 800 * S);
	assert(guard_limits_output(&st, &l, t0 + 3000 * S, 100000000) == GUARD_LIMIT_NONE);
	assert(guard_limits_output(&st, &l, t0 + 3000 * S, 1) == GUARD_LIMIT_OUTPUT);
	assert(guard_limits_check(&st, &l, t0 + 3001 * S) == GUARD_LIMIT_OUTPUT);
	guard_limits_start(&st, t0);
	guard_limits_activity(&st, t0 + 3500 * S);
	assert(guard_limits_next_ns(&st, &l, t0 + 3500 * S) == 100 * S);
	assert(guard_limits_check(&st, &l, t0 + 3600 * S) == GUARD_LIMIT_DURATION);
	assert(guard_limits_next_ns(&st, &l, t0 + 3600 * S) == 0);
	assert(guard_limits_check(&st, &none, t0 + 1000000 * S) == GUARD_LIMIT_NONE);
	assert(guard_limits_next_ns(&st, &none, t0) == UINT64_MAX);
	assert(guard_limits_output(&st, &none, t0, SIZE_MAX / 2) == GUARD_LIMIT_NONE);

	guard_limit_message(GUARD_LIMIT_DURATION, &l, buf, sizeof buf);
	assert(strcmp(buf, "podgate: session ended: maximum session duration (1h) reached") == 0);
	guard_limit_message(GUARD_LIMIT_IDLE, &l, buf, sizeof buf);
	assert(strcmp(buf, "podgate: session ended: idle for 15m") == 0);
	guard_limit_message(GUARD_LIMIT_OUTPUT, &l, buf, sizeof buf);
	assert(strcmp(buf, "podgate: session ended: output quota (100MB) exceeded") == 0);
	guard_limit_message(GUARD_LIMIT_SESSIONS, &l, buf, sizeof buf);
	assert(strcmp(buf, "podgate: session refused: you already have 4 sessions open, the "
	    "most your rule allows") == 0);
	assert(guard_limit_message(GUARD_LIMIT_NONE, &l, buf, sizeof buf) == 0 && *buf == '\0');
	assert(strcmp(guard_limit_name(GUARD_LIMIT_IDLE), "idle_timeout") == 0);
	assert(strcmp(guard_limit_name(GUARD_LIMIT_OUTPUT), "max_output") == 0);

	guard_format_duration(5400, buf, sizeof buf);
	assert(strcmp(buf, "1h30m") == 0);
	guard_format_duration(3661, buf, sizeof buf);
	assert(strcmp(buf, "1h1m1s") == 0);
	guard_format_duration(45, buf, sizeof buf);
	assert(strcmp(buf, "45s") == 0);
	guard_format_duration(0, buf, sizeof buf);
	assert(strcmp(buf, "0s") == 0);
	guard_format_size(1073741824, buf, sizeof buf);
	assert(strcmp(buf, "1GiB") == 0);
	guard_format_size(512000, buf, sizeof buf);
	assert(strcmp(buf, "512kB") == 0);
	guard_format_size(1001, buf, sizeof buf);
	assert(strcmp(buf, "1001B") == 0);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{ "config_full", test_config_full },
		{ "config_defaults", test_config_defaults },
		{ "config_sizes", test_config_sizes },
		{ "config_errors", test_config_errors },
		{ "commands", test_commands },
		{ "command_split", test_command_split },
		{ "command_words", test_command_words },
		{ "messages", test_messages },
		{ "lines", test_lines },
		{ "line_bound", test_line_bound },
		{ "watch", test_watch },
		{ "patterns", test_patterns },
		{ "reason", test_reason },
		{ "counts", test_counts },
		{ "limits", test_limits },
	};

	return unit_run("guard", tests, UNIT_COUNT(tests));
}
