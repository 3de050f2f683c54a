/*
 * Unit tests for broker/policy.c: deny by default, rules by user and by
 * group, glob semantics, first match wins, the target list and the target
 * name validator; and broker/policy/pattern.c, the one pattern module:
 * each mode, and the configuration giving each key its mode.
 */
#include "policy/config.h"
#include "policy/pattern.h"
#include "policy/policy.h"
#include "unit.h"

#define KEY "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDAyAMLG3/AKjNcLoN06yCmkF1ADo+psC7xsb27+Ek/R"

/* Users shared by the tests: alice in oncall, bob in dev, carol in nothing. */
#define USERS \
	"users:\n" \
	"  - name: alice\n" \
	"    keys: [\"" KEY "\"]\n" \
	"    groups: [oncall]\n" \
	"  - name: bob\n" \
	"    keys: [\"" KEY "\"]\n" \
	"    groups: [dev, readers]\n" \
	"  - name: carol\n" \
	"    keys: [\"" KEY "\"]\n"

/* The index of the rule that grants user name access to target, or -1. */
static int
match(const struct config *c, const char *name, const char *target)
{
	const struct cfg_rule *r;

	r = policy_match(c, config_find_user(c, name), target);
	return r == NULL ? -1 : (int)(r - c->rules);
}

/* No rule, no access. */
static void
test_deny_by_default(void)
{
	struct config *c = load_valid(USERS "targets: {local: {user: nobody}}\n");
	char **list;

	assert(match(c, "alice", "local") == -1);
	assert(match(c, "carol", "prod:ns/pod") == -1);
	assert(policy_match(c, NULL, "local") == NULL);
	assert(policy_match(c, &c->users[0], NULL) == NULL);
	assert(policy_match(NULL, &c->users[0], "local") == NULL);
	assert((list = policy_targets(c, &c->users[0])) != NULL && list[0] == NULL);
	policy_free_list(list);
	policy_free_list(NULL);
	config_unref(c);
}

/* Rules apply by user name or by group; first match wins. */
static void
test_users_and_groups(void)
{
	struct config *c = load_valid(USERS
	    "rules:\n"
	    "  - users: [carol]\n"
	    "    targets: ['prod:web/*']\n"
	    "  - groups: [oncall]\n"
	    "    targets: [local, 'prod:*/*']\n"
	    "  - groups: [readers]\n"
	    "    users: [alice]\n"
	    "    targets: ['prod:*/*', 'staging:*/*/*']\n"
	    "targets: {local: {user: nobody}, kubernetes: [{name: prod}, {name: staging}]}\n");

	assert(match(c, "carol", "prod:web/web-0") == 0);
	assert(match(c, "carol", "prod:db/db-0") == -1);
	assert(match(c, "carol", "local") == -1);
	assert(match(c, "alice", "local") == 1);
	assert(match(c, "alice", "prod:db/db-0") == 1);	/* first match wins */
	assert(match(c, "alice", "staging:ns/pod/c") == 2);
	assert(match(c, "bob", "prod:db/db-0") == 2);	/* by the second of his groups */
	assert(match(c, "bob", "local") == -1);
	assert(match(c, "bob", "staging:ns/pod/c") == 2);
	assert(match(c, "nobody", "local") == -1);
	config_unref(c);
}

/* '*' and '?' do not cross '/'; brackets work; patterns are anchored. */
static void
test_globs(void)
{
	static const struct {
		const char *target;
		int rule;
	} cases[] = {
		{ "prod:ns/pod", 0 },
		{ "prod:ns/pod/container", -1 },
		{ "prod:ns", -1 },
		{ "prodx:ns/pod", -1 },
		{ "xprod:ns/pod", -1 },
		{ "dev:web-1", 1 },
		{ "dev:web-12", -1 },
		{ "dev:web-a", -1 },
		{ "dev:db/pod", -1 },
		{ "qa:anything", 2 },
		{ "qa:a/b", -1 },
		{ "lab:x/y/z", 3 },
		{ "local", 4 },
		{ "locally", -1 },
		{ "other", -1 },
		{ "prod:ns/-c", -1 },		/* invalid names are denied even by '*' */
		{ "prod:ns/$(id)", -1 },
		{ "prod:../x", -1 },
	};
	struct config *c = load_valid(USERS
	    "rules:\n"
	    "  - users: [alice]\n"
	    "    targets: ['prod:*/*', 'dev:web-[0-9]', 'qa:*', 'lab:*/*/*', local]\n"
	    "targets: {local: {user: nobody}, kubernetes: [{name: prod}, {name: dev}, {name: qa}, "
	    "{name: lab}]}\n");
	size_t i;
	int want;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		want = cases[i].rule == -1 ? -1 : 0;
		if (match(c, "alice", cases[i].target) != want) {
			fprintf(stderr, "target %s: want %d\n", cases[i].target, want);
			abort();
		}
	}
	config_unref(c);

	/* A lone '*' matches any one-part name, including "local". */
	c = load_valid(USERS "rules:\n  - groups: [dev]\n    targets: ['*']\n"
	    "targets: {local: {user: nobody}}\n");
	assert(match(c, "bob", "local") == 0);
	assert(match(c, "bob", "anything") == 0);
	assert(match(c, "bob", "a/b") == -1);
	assert(match(c, "alice", "local") == -1);
	config_unref(c);
}

/* The pattern that grants a target: the first match of the first granting rule. */
static void
test_match_pattern(void)
{
	struct config *c = load_valid(USERS
	    "rules:\n"
	    "  - users: [alice]\n"
	    "    targets: [local, 'prod:web/*', 'prod:*/*']\n"
	    "  - groups: [dev]\n"
	    "    targets: ['prod:*/deploy/*']\n"
	    "targets: {local: {user: nobody}, kubernetes: [{name: prod}]}\n");
	const struct cfg_user *alice = config_find_user(c, "alice");
	const char *p;

	assert((p = policy_match_pattern(c, alice, "prod:web/web-0")) != NULL &&
	    strcmp(p, "prod:web/*") == 0);
	assert((p = policy_match_pattern(c, alice, "prod:db/db-0")) != NULL &&
	    strcmp(p, "prod:*/*") == 0);
	assert((p = policy_match_pattern(c, alice, "local")) != NULL && strcmp(p, "local") == 0);
	assert(policy_match_pattern(c, alice, "prod:web/web-0/sidecar") == NULL);
	assert((p = policy_match_pattern(c, config_find_user(c, "bob"), "prod:ns/deploy/api")) !=
	    NULL && strcmp(p, "prod:*/deploy/*") == 0);
	assert(policy_match_pattern(c, config_find_user(c, "carol"), "local") == NULL);
	assert(policy_match_pattern(c, NULL, "local") == NULL);
	config_unref(c);
}

/* "local" is only reachable when targets.local is configured. */
static void
test_local_absent(void)
{
	struct config *c = NULL;
	char **list;
	const char *yaml = USERS "rules:\n  - users: [alice]\n    targets: [local, '*']\n";

	assert(config_load_string("t", yaml, strlen(yaml), NULL, &c) == 0);
	assert(match(c, "alice", "local") == -1);
	assert(match(c, "alice", "other") == 0);
	list = policy_targets(c, config_find_user(c, "alice"));
	assert(list != NULL && list[0] == NULL);
	policy_free_list(list);
	config_unref(c);
}

/* The picker's list: existing targets the user may reach. */
static void
test_targets_list(void)
{
	struct config *c = load_valid(USERS
	    "rules:\n"
	    "  - groups: [oncall]\n"
	    "    targets: ['prod:*/*', local, 'loc*']\n"
	    "  - users: [bob]\n"
	    "    targets: ['l?cal']\n"
	    "targets: {local: {shell: /bin/sh, user: nobody}, kubernetes: [{name: prod}]}\n");
	char **list;

	list = policy_targets(c, config_find_user(c, "alice"));
	assert(list != NULL && list[0] != NULL && strcmp(list[0], "local") == 0);
	assert(list[1] == NULL);
	policy_free_list(list);
	list = policy_targets(c, config_find_user(c, "bob"));
	assert(list != NULL && strcmp(list[0], "local") == 0 && list[1] == NULL);
	policy_free_list(list);
	list = policy_targets(c, config_find_user(c, "carol"));
	assert(list != NULL && list[0] == NULL);
	policy_free_list(list);
	config_unref(c);
}

/* The target name validator. */
static void
test_target_names(void)
{
	static const struct {
		const char *name;
		bool ok;
	} cases[] = {
		{ "local", true },
		{ "prod:ns/pod", true },
		{ "prod:kube-system/coredns-5d78c9869d-abcde/coredns", true },
		{ "a.b_c-d", true },
		{ "a", true },
		{ "web-0", true },
		{ "v1.2", true },
		{ "--kubeconfig=/x", false },
		{ "-c", false },
		{ "-", false },
		{ "prod:ns/-c", false },
		{ "prod:-n/pod", false },
		{ "$(id)", false },
		{ "`id`", false },
		{ "a;b", false },
		{ "a|b", false },
		{ "a&b", false },
		{ "a b", false },
		{ "a\tb", false },
		{ "a\nb", false },
		{ "'a'", false },
		{ "\"a\"", false },
		{ "a=b", false },
		{ "a*", false },
		{ "\xc3\xa9", false },
		{ "caf\xc3\xa9", false },
		{ "", false },
		{ "a//b", false },
		{ "/a", false },
		{ "a/", false },
		{ ":a", false },
		{ "a:", false },
		{ "a::b", false },
		{ "../x", false },
		{ "a/../b", false },
		{ "a..b", false },
		{ "a/./b", false },
		{ ".", false },
		{ "a\\b", false },
		{ "a\x7f", false },
	};
	char name[300];
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (policy_target_name_ok(cases[i].name) != cases[i].ok) {
			fprintf(stderr, "name \"%s\": want %d\n", cases[i].name, cases[i].ok);
			abort();
		}
	}
	assert(!policy_target_name_ok(NULL));
	memset(name, 'a', sizeof name);
	name[253] = '\0';
	assert(policy_target_name_ok(name));
	name[253] = 'a';
	name[254] = '\0';
	assert(!policy_target_name_ok(name));
}

/* One pattern text, each mode: what it matches differs by where it is written. */
static void
test_pattern_modes(void)
{
	struct cfg_pattern p;
	char err[256];

	/* A glob matches the whole text as a line, but a command by its parts. */
	assert(pattern_compile(&p, PATTERN_LINE, "ps * | grep *", err, sizeof err) == 0);
	assert(p.mode == PATTERN_LINE && !p.regex);
	assert(pattern_match(&p, "ps x | grep y | sh -c id"));
	pattern_free(&p);
	assert(pattern_compile(&p, PATTERN_ALLOW, "ps * | grep *", err, sizeof err) == 0);
	assert(pattern_match(&p, "ps x | grep y"));
	assert(!pattern_match(&p, "ps x | grep y | sh -c id"));
	assert(!pattern_match(&p, "ps x; sh"));
	assert(!pattern_match(&p, "ps $(id) | grep y"));
	pattern_free(&p);

	/* Deny and approve: as written or in shell-word form, so quotes do not dodge. */
	assert(pattern_compile(&p, PATTERN_COMMAND, "*approve*", err, sizeof err) == 0);
	assert(pattern_match(&p, "echo ap\"\"prove x"));
	assert(pattern_match(&p, "echo 'approve' x"));
	assert(!pattern_match(&p, "echo app rove"));
	pattern_free(&p);
	assert(pattern_compile(&p, PATTERN_LINE, "*approve*", err, sizeof err) == 0);
	assert(!pattern_match(&p, "echo ap\"\"prove x"));
	pattern_free(&p);

	/* Regexes are searched in every mode but redaction's globs are found in a line. */
	assert(pattern_compile(&p, PATTERN_COMMAND, "re:^kubectl get", err, sizeof err) == 0);
	assert(p.regex && pattern_match(&p, "kubectl get pods"));
	assert(!pattern_match(&p, "x; kubectl get pods"));
	pattern_free(&p);
	assert(pattern_compile(&p, PATTERN_REDACT, "sk_live_*", err, sizeof err) == 0);
	assert(p.regex && p.mode == PATTERN_REDACT);
	assert(pattern_match(&p, "key is sk_live_abc, ok"));
	assert(!pattern_match(&p, "key is sk_test_abc"));
	pattern_free(&p);

	/* Errors, and the text check shared by every mode. */
	assert(pattern_compile(&p, PATTERN_ALLOW, "re:a(", err, sizeof err) == -EINVAL);
	assert(strncmp(err, "bad regular expression 're:a(': ", 32) == 0 && p.text == NULL);
	assert(pattern_compile(&p, PATTERN_REDACT, "re:", err, sizeof err) == -EINVAL);
	assert(strcmp(err, "empty pattern") == 0);
	assert(pattern_compile(&p, PATTERN_TARGET, "local", err, sizeof err) == -EINVAL);
	assert(pattern_text_check("x", err, sizeof err) == 0);
	assert(!pattern_match(NULL, "x") && !pattern_match(&p, "x"));
	pattern_free(&p);

	/* Targets: '*' never crosses '/'; the picker re-checks pods with the same call. */
	assert(pattern_target_ok("prod:*/*") && pattern_target_ok("local"));
	assert(!pattern_target_ok("-x") && !pattern_target_ok("") && !pattern_target_ok("a b"));
	assert(pattern_target_match("prod:*/*", "prod:ns/pod"));
	assert(!pattern_target_match("prod:*/*", "prod:ns/pod/container"));
	assert(!pattern_target_match("prod:*", "prod:ns/pod"));
	assert(!pattern_target_match(NULL, "x") && !pattern_target_match("x", NULL));
}

/* The configuration gives each key its mode, without compiling anything itself. */
static void
test_pattern_config_modes(void)
{
	static const char yaml[] = USERS
	    "targets: {local: {allow_broker_user: true}}\n"
	    "rules:\n"
	    "  - users: [alice]\n"
	    "    targets: [local]\n"
	    "    commands: {allow: ['ls *'], deny: ['*rm*'], approve: ['sudo *']}\n"
	    "    watch: ['*curl*', {pattern: 're:wget', on: output}]\n"
	    "    passprompt: ['re:[Pp]assword: *$']\n"
	    "redact: ['corp-*', {pattern: 're:x[0-9]+', kind: corp}]\n";
	const struct cfg_rule *r;
	struct config *c;

	c = load_valid(yaml);
	r = &c->rules[0];
	assert(r->nallow == 1 && r->allow[0].mode == PATTERN_ALLOW);
	assert(r->ndeny == 1 && r->deny[0].mode == PATTERN_COMMAND);
	assert(r->napprove == 1 && r->approve[0].mode == PATTERN_COMMAND);
	assert(r->nwatch == 2 && r->watch[0].pattern.mode == PATTERN_LINE &&
	    r->watch[1].pattern.mode == PATTERN_LINE);
	assert(r->npassprompt == 1 && r->passprompt[0].mode == PATTERN_LINE);
	assert(c->nredact == 2 && c->redact[0].pattern.mode == PATTERN_REDACT &&
	    c->redact[1].pattern.mode == PATTERN_REDACT);
	assert(strcmp(c->redact[0].kind, "custom") == 0 && strcmp(c->redact[1].kind, "corp") == 0);
	assert(c->redact[1].line == c->redact[1].pattern.line && c->redact[1].line > 0);
	config_unref(c);
}

/*
 * A repetition right after a repetition is refused before regcomp, which
 * takes exponential time on a run of them; escapes and brackets are not
 * repetitions.
 */
static void
test_pattern_repeated_repetition(void)
{
	static const char *const bad[] = {
		"re:^als p ++++++++++++++++++++*", "re:a++", "re:a*?", "re:a{2}+", "re:(x)*{3}",
	};
	static const char *const good[] = {
		"re:a+b*c?", "re:a\\++", "re:[+*]+", "re:[]+]*", "re:[[:alpha:]+]+", "re:(a+)+",
		"re:a{2,3}b+",
	};
	struct cfg_pattern p;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert(pattern_compile(&p, PATTERN_COMMAND, bad[i], err, sizeof err) == -EINVAL);
		assert(strstr(err, "a repetition follows a repetition") != NULL);
	}
	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		assert(pattern_compile(&p, PATTERN_COMMAND, good[i], err, sizeof err) == 0);
		pattern_free(&p);
	}
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{ "deny_by_default", test_deny_by_default },
		{ "users_and_groups", test_users_and_groups },
		{ "globs", test_globs },
		{ "match_pattern", test_match_pattern },
		{ "local_absent", test_local_absent },
		{ "targets_list", test_targets_list },
		{ "target_names", test_target_names },
		{ "pattern_modes", test_pattern_modes },
		{ "pattern_config_modes", test_pattern_config_modes },
		{ "pattern_repeated_repetition", test_pattern_repeated_repetition },
	};

	return unit_run("policy", tests, UNIT_COUNT(tests));
}
