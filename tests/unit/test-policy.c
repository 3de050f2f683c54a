/*
 * Unit tests for broker/policy.c: deny by default, rules by user and by
 * group, glob semantics, first match wins, the target list and the target
 * name validator.
 */
#include "policy/config.h"
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
	};

	return unit_run("policy", tests, UNIT_COUNT(tests));
}
