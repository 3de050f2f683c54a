/*
 * Unit tests for broker/config.c: a full file, defaults, every documented
 * error with its line, authorized_keys files, file permissions and the
 * key types ssh-keygen makes.
 */
#include <libssh/libssh.h>

#include "policy/config.h"
#include "unit.h"

#define ALICE_KEY "AAAAC3NzaC1lZDI1NTE5AAAAIDAyAMLG3/AKjNcLoN06yCmkF1ADo+psC7xsb27+Ek/R"
#define ALICE_FP "SHA256:H7bfvMpy3Kru7dciui5jqHybQgaJdk5MblQb+TJvTXg"
#define BOB_KEY "AAAAC3NzaC1lZDI1NTE5AAAAIM80WIPXzSPlwR0nswE6qiHqyjqWEL+Ka7aVyVZambgB"
#define BOB_FP "SHA256:PuisL0DrZa2FW5b4ldeyaa2DWBxkl6Ac0QQ/eRSbjqA"

/* printf 'listen: 127.0.0.1:2222\n' | sha256sum */
#define SHA256_LISTEN "a3e8d98598cb07a9ec0ea6a28e10d32a31205c24307bf0ba32d1b128ccc5814f"

static char *tmpdir;		/* the scratch directory, made by main */

/* Write text to tmpdir/name with mode; returns the path (caller frees). */
#define write_file(name, text, mode) unit_write_file(tmpdir, name, text, mode)

/* A complete file: every key, including those accepted for later features. */
static void
test_full(void)
{
	static const char yaml[] =
	    "listen: 0.0.0.0:2022\n"
	    "host_key: /etc/podgate/host_ed25519\n"
	    "recordings: /var/lib/podgate/rec\n"
	    "audit_log: \"-\"\n"
	    "max_auth_tries: 3\n"
	    "login_grace_time: 2m\n"
	    "shutdown_grace: 45s\n"
	    "max_connections: 50\n"
	    "redact: [{pattern: 'password=\\S+'}]\n"
	    "signing_key: state/signing.key\n"
	    "groups: [{name: oncall, roles: [auditor]}, {name: dev, roles: [approver]}]\n"
	    "users:\n"
	    "  - name: alice\n"
	    "    keys: [\"ssh-ed25519 " ALICE_KEY " alice@laptop\"]\n"
	    "    groups: [oncall, dev]\n"
	    "  - name: bob\n"
	    "    keys:\n"
	    "      - ssh-ed25519 " BOB_KEY "\n"
	    "rules:\n"
	    "  - groups: [oncall]\n"
	    "    targets: [local]\n"
	    "    impersonate: {user: \"{user}\", groups: [oncall]}\n"
	    "    commands: [\"ls *\"]\n"
	    "    pty: true\n"
	    "    exec: false\n"
	    "    watch: [reviewers]\n"
	    "    require_reason: true\n"
	    "    limits: {max_duration: 1h}\n"
	    "    on_recording_failure: continue\n"
	    "    announce_watchers: true\n"
	    "  - users: [bob]\n"
	    "    groups: [dev]\n"
	    "    targets: ['prod:*/*', local]\n"
	    "targets:\n"
	    "  local: {shell: /bin/bash, user: nobody}\n"
	    "  kubernetes: [{name: prod, kubeconfig: prod.kubeconfig}]\n";
	struct config *c = expect_ok(yaml);
	const struct cfg_user *u;

	assert(c->refs == 1);
	assert(c->path == NULL);
	assert(strcmp(c->listen_host, "0.0.0.0") == 0);
	assert(c->listen_port == 2022);
	assert(strcmp(c->host_key, "/etc/podgate/host_ed25519") == 0);
	assert(strcmp(c->recordings, "/var/lib/podgate/rec") == 0);
	assert(strcmp(c->audit_log, "-") == 0);
	assert(c->max_auth_tries == 3);
	assert(c->login_grace_time == 120);
	assert(c->shutdown_grace == 45);
	assert(c->max_connections == 50);
	assert(c->nusers == 2);
	u = &c->users[0];
	assert(u->line == 13);
	assert(strcmp(u->name, "alice") == 0);
	assert(u->nkeys == 1);
	assert(strcmp(u->keys[0].type, "ssh-ed25519") == 0);
	assert(strcmp(u->keys[0].base64, ALICE_KEY) == 0);
	assert(strcmp(u->keys[0].comment, "alice@laptop") == 0);
	assert(strcmp(u->keys[0].fingerprint, ALICE_FP) == 0);
	assert(u->keys[0].pubkey != NULL);
	assert(u->ngroups == 2);
	assert(strcmp(u->groups[0], "oncall") == 0 && strcmp(u->groups[1], "dev") == 0);
	u = &c->users[1];
	assert(strcmp(u->name, "bob") == 0);
	assert(u->nkeys == 1 && u->keys[0].comment == NULL);
	assert(strcmp(u->keys[0].fingerprint, BOB_FP) == 0);
	assert(u->ngroups == 0);
	assert(c->ngroups == 2 && strcmp(c->groups[1].name, "dev") == 0);
	assert(config_user_has_role(c, &c->users[0], "auditor"));
	assert(config_user_has_role(c, &c->users[0], "approver"));
	assert(!config_user_has_role(c, &c->users[1], "auditor"));
	assert(c->nrules == 2);
	assert(c->rules[0].line == 20);
	assert(c->rules[0].announce_watchers && !c->rules[1].announce_watchers);
	assert(c->rules[0].nusers == 0 && c->rules[0].ngroups == 1);
	assert(c->rules[0].ntargets == 1 && strcmp(c->rules[0].targets[0], "local") == 0);
	assert(c->rules[1].line == 31);
	assert(c->rules[1].nusers == 1 && strcmp(c->rules[1].users[0], "bob") == 0);
	assert(c->rules[1].ngroups == 1 && strcmp(c->rules[1].groups[0], "dev") == 0);
	assert(c->rules[1].ntargets == 2 && strcmp(c->rules[1].targets[0], "prod:*/*") == 0);
	assert(c->local.enabled);
	assert(strcmp(c->local.shell, "/bin/bash") == 0);
	assert(strcmp(c->signing_key, "state/signing.key") == 0);
	assert(!c->generate_keys);
	config_unref(c);
}

/* The example in the documentation, and the defaults of config.h. */
static void
test_defaults(void)
{
	static const char yaml[] =
	    "listen: 127.0.0.1:2222          # host:port; also [::1]:2222\n"
	    "host_key: state/host_ed25519    # path\n"
	    "recordings: state/recordings    # directory\n"
	    "audit_log: state/audit.jsonl    # JSON lines; \"-\" means stdout\n"
	    "users:\n"
	    "  - name: alice\n"
	    "    keys: [\"ssh-ed25519 " ALICE_KEY " alice@laptop\"]\n"
	    "    groups: [oncall]\n"
	    "rules:\n"
	    "  - groups: [oncall]\n"
	    "    targets: [local]\n"
	    "targets:\n"
	    "  local: {shell: /bin/sh, user: nobody}\n";
	static const char *const empty[] = { "", "{}\n", "# nothing\n", "---\n",
	    "users: []\nrules: []\n", "users:\nrules:\ntargets:\n" };
	struct config *c;
	size_t i;

	c = expect_ok(yaml);
	assert(strcmp(c->listen_host, "127.0.0.1") == 0 && c->listen_port == 2222);
	assert(c->max_auth_tries == 6);
	assert(c->login_grace_time == 30);
	assert(c->shutdown_grace == 10);
	assert(c->max_connections == 1024);
	assert(c->nusers == 1 && c->nrules == 1 && c->local.enabled);
	config_unref(c);

	for (i = 0; i < sizeof empty / sizeof empty[0]; i++) {
		c = expect_ok(empty[i]);
		assert(strcmp(c->listen_host, "127.0.0.1") == 0 && c->listen_port == 2222);
		assert(strcmp(c->host_key, "state/host_ed25519") == 0);
		assert(strcmp(c->signing_key, "state/signing_ed25519") == 0);
		assert(!c->generate_keys);
		assert(strcmp(c->recordings, "state/recordings") == 0);
		assert(strcmp(c->audit_log, "state/audit.jsonl") == 0);
		assert(c->max_auth_tries == 6 && c->login_grace_time == 30);
		assert(c->shutdown_grace == 10 && c->max_connections == 1024);
		assert(c->nusers == 0 && c->nrules == 0);
		assert(!c->local.enabled && strcmp(c->local.shell, "/bin/sh") == 0);
		config_unref(c);
	}

	/* targets.local needs an account other than the broker's (root here). */
	expect_error("targets:\n  local:\n", "t:2: targets.local needs user: an unprivileged");
	expect_error("targets: {local: {user: root}}\n",
	    "t:1: targets.local.user \"root\" is root: the local target could read");
	expect_error("targets: {local: {user: no-such-account-x}}\n",
	    "t:1: targets.local.user: no such user \"no-such-account-x\"");
	c = expect_ok("targets: {local: {user: nobody}}\n");
	assert(c->local.enabled && strcmp(c->local.shell, "/bin/sh") == 0);
	assert(strcmp(c->local.user, "nobody") == 0 && !c->local.allow_broker_user);
	config_unref(c);
	{
		char *errs = NULL;

		/* allow_broker_user: true loads, with a warning. */
		assert(load("targets: {local: {user: root, allow_broker_user: true}}\n", &c,
		    &errs) == 0);
		assert(c->local.enabled && c->local.allow_broker_user);
		assert(strstr(errs, "t:1: warning: targets.local.user \"root\" is root") != NULL);
		config_unref(c);
		free(errs);
		assert(load("targets: {local: {allow_broker_user: true}}\n", &c, &errs) == 0);
		assert(c->local.enabled && c->local.user == NULL);
		assert(strstr(errs, "warning: the local target runs as the broker's own user") != NULL);
		config_unref(c);
		free(errs);
	}
}

/* YAML syntax errors carry libyaml's line. */
static void
test_yaml_syntax(void)
{
	expect_error("listen: 127.0.0.1:2222\nusers: [alice\nrules: []\n",
	    "t:3: YAML syntax error: did not find expected ',' or ']' (while parsing a "
	    "flow sequence at line 2)");
	expect_error("a: b\n  c: d\n", "t:2: YAML syntax error");
	expect_error("users:\n  - name: \"alice\n", "t:3: YAML syntax error");
	/* inside keys that are otherwise ignored */
	expect_error("redact: {a: [b}\n", "t:1: YAML syntax error");
	expect_error("listen: 127.0.0.1:2222\n---\nlisten: 1.2.3.4:22\n",
	    "t:3: only one YAML document is allowed");
	expect_error("- a\n- b\n", "t:1: the configuration must be a mapping");
	expect_error("listen: \"a\\0b\"\n", "t:1: listen contains a NUL byte");
	expect_error("\xff\xfe: x\n", "t:1: YAML syntax error: invalid leading UTF-8 octet");
	expect_error("a: b\nc: \xc3\x28\n", "t:2: YAML syntax error: invalid trailing UTF-8 octet");
}

/* Unknown and repeated keys are errors at every level. */
static void
test_unknown_key(void)
{
	static const char *const top[] = {
	    "t:2: unknown key \"lisen\" in the configuration",
	    "t:5: unknown key \"key\" in user",
	    "t:8: unknown key \"user\" in rule",
	    "t:11: unknown key \"kube\" in targets",
	    "t:12: unknown key \"shel\" in targets.local",
	    NULL
	};

	expect_errors(
	    "listen: 127.0.0.1:2222\n"
	    "lisen: 127.0.0.1:2222\n"
	    "users:\n"
	    "  - name: alice\n"
	    "    key: x\n"
	    "    keys: [\"ssh-ed25519 " ALICE_KEY "\"]\n"
	    "rules:\n"
	    "  - user: [alice]\n"
	    "    targets: [local]\n"
	    "targets:\n"
	    "  kube: {}\n"
	    "  local: {shel: /bin/sh}\n", top);
	expect_error("listen: 127.0.0.1:2222\nhost_key: a\nlisten: 1.2.3.4:5\n",
	    "t:3: duplicate key \"listen\" in the configuration (first at line 1)");
	expect_error("[a]: b\n", "t:1: keys in the configuration must be strings");
}

/* Wrong types are reported with the line of the value. */
static void
test_types(void)
{
	static const char *const want[] = {
	    "t:1: host_key must be a string",
	    "t:2: recordings must not be empty",
	    "t:3: max_auth_tries must be a number, not \"many\"",
	    "t:4: max_connections must be from 1 to 1000000",
	    "t:5: login_grace_time must be a duration",
	    "t:6: shutdown_grace must be a duration",
	    "t:7: users must be a list",
	    "t:8: rules must be a list",
	    "t:9: targets must be a mapping",
	    "t:10: audit_log must be a string",
	    NULL
	};
	struct config *c;

	expect_errors(
	    "host_key: [a]\n"
	    "recordings: ''\n"
	    "max_auth_tries: many\n"
	    "max_connections: 0\n"
	    "login_grace_time: 5x\n"
	    "shutdown_grace: 1m30\n"
	    "users: alice\n"
	    "rules: {a: b}\n"
	    "targets: [local]\n"
	    "audit_log:\n", want);
	expect_error("max_auth_tries: 99999999999999999999999\n",
	    "t:1: max_auth_tries must be from 1 to 100");
	expect_error("max_auth_tries: '3'\n", "t:1: max_auth_tries must be a number");
	expect_error("login_grace_time: 0\n", "t:1: login_grace_time must be from 1 to 3600");
	expect_error("login_grace_time: 2h\n", "t:1: login_grace_time must be from 1 to 3600");
	expect_error("users:\n  - alice\n", "t:2: each user must be a mapping");
	expect_error("users:\n  - name: alice\n    keys: \"ssh-ed25519 " ALICE_KEY "\"\n",
	    "t:3: keys must be a list of public keys");
	expect_error("users:\n  - name: alice\n    keys: [\"ssh-ed25519 " ALICE_KEY "\"]\n"
	    "    groups: oncall\n", "t:4: groups must be a list of strings");
	expect_error("targets: {local: {shell: sh, user: nobody}}\n", "t:1: shell must be an absolute path");

	c = expect_ok("login_grace_time: 30s\nshutdown_grace: 0\n");
	assert(c->login_grace_time == 30 && c->shutdown_grace == 0);
	config_unref(c);
	c = expect_ok("login_grace_time: 1m30s\nshutdown_grace: 1h\n");
	assert(c->login_grace_time == 90 && c->shutdown_grace == 3600);
	config_unref(c);
	c = expect_ok("login_grace_time: 45\nmax_auth_tries: 1\nmax_connections: 1000000\n");
	assert(c->login_grace_time == 45 && c->max_auth_tries == 1);
	assert(c->max_connections == 1000000);
	config_unref(c);
}

/* listen: numeric IPv4 or bracketed IPv6 and a port in 1..65535. */
static void
test_listen(void)
{
	static const struct {
		const char *value;
		const char *error;
	} bad[] = {
		{ "127.0.0.1", "listen must be HOST:PORT" },
		{ "2222", "listen must be HOST:PORT" },
		{ ":2222", "listen must be HOST:PORT" },
		{ "127.0.0.1:", "port must be a number from 1 to 65535" },
		{ "127.0.0.1:0", "port must be a number from 1 to 65535" },
		{ "127.0.0.1:65536", "port must be a number from 1 to 65535" },
		{ "127.0.0.1:99999999999999999999", "port must be a number from 1 to 65535" },
		{ "127.0.0.1:22x", "port must be a number from 1 to 65535" },
		{ "127.0.0.1:-1", "port must be a number from 1 to 65535" },
		{ "localhost:2222", "\"localhost\" is not a numeric IPv4 address" },
		{ "256.0.0.1:2222", "is not a numeric IPv4 address" },
		{ "::1:2222", "write an IPv6 address in brackets" },
		{ "[::1]", "listen must be HOST:PORT" },
		{ "[::1]2222", "listen must be HOST:PORT" },
		{ "[]:2222", "listen must be HOST:PORT" },
		{ "[::g]:2222", "\"::g\" is not a numeric IPv6 address" },
		{ "[127.0.0.1]:2222", "is not a numeric IPv6 address" },
	};
	char yaml[128], want[128];
	struct config *c;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(yaml, sizeof yaml, "# listen\nlisten: '%s'\n", bad[i].value);
		expect_error(yaml, bad[i].error);
		snprintf(want, sizeof want, "t:2: listen");
		expect_error(yaml, want);
	}
	c = expect_ok("listen: '[::1]:2222'\n");
	assert(strcmp(c->listen_host, "::1") == 0 && c->listen_port == 2222);
	config_unref(c);
	c = expect_ok("listen: \"[::]:65535\"\n");
	assert(strcmp(c->listen_host, "::") == 0 && c->listen_port == 65535);
	config_unref(c);
	c = expect_ok("listen: 10.1.2.3:1\n");
	assert(strcmp(c->listen_host, "10.1.2.3") == 0 && c->listen_port == 1);
	config_unref(c);
}

/* peers, peer_listen, peer_key, peer_keys (docs/live.md, "Several replicas"). */
static void
test_peers(void)
{
	static const struct {
		const char *yaml;
		const char *error;
	} bad[] = {
		{ "peers: [a:1]\n", "peers needs peer_listen, peer_key and peer_keys" },
		{ "peers: [a:1]\npeer_listen: 127.0.0.1:2223\npeer_key: k\n",
		    "peers needs peer_listen, peer_key and peer_keys" },
		{ "peers: [a]\n", "peers: \"a\" is not a valid HOST:PORT" },
		{ "peers: ['a:0']\n", "is not a valid HOST:PORT" },
		{ "peers: ['a b:22']\n", "is not a valid HOST:PORT" },
		{ "peers: ['-a:22']\n", "is not a valid HOST:PORT" },
		{ "peers: []\n", "peers: the list is empty" },
		{ "peers: podgate-1:2223\n", "peers must be a list of HOST:PORT or {dns: NAME}" },
		{ "peers: {srv: x}\n", "peers must be a list of HOST:PORT or {dns: NAME}" },
		{ "peers: {dns: 'a b'}\n", "peers.dns: \"a b\" is not a DNS name" },
		{ "peer_listen: podgate:2223\n", "\"podgate\" is not a numeric IPv4 address" },
		{ "peer_keys: [nonsense]\n", "not a public key" },
	};
	struct config *c;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		expect_error(bad[i].yaml, bad[i].error);
	c = expect_ok("peers: [podgate-1.podgate-peers:2223, '10.0.0.2:2223']\n"
	    "peer_listen: 0.0.0.0:2223\npeer_key: state/peer_ed25519\n"
	    "peer_keys: ['ssh-ed25519 " ALICE_KEY " r0', 'ssh-ed25519 " BOB_KEY "']\n");
	assert(c->npeers == 2 && strcmp(c->peers[0], "podgate-1.podgate-peers:2223") == 0);
	assert(strcmp(c->peers[1], "10.0.0.2:2223") == 0 && c->peers_dns == NULL);
	assert(strcmp(c->peer_host, "0.0.0.0") == 0 && c->peer_port == 2223);
	assert(strcmp(c->peer_key, "state/peer_ed25519") == 0);
	assert(c->peer_keys.nkeys == 2 && strcmp(c->peer_keys.keys[1].fingerprint, BOB_FP) == 0);
	config_unref(c);
	c = expect_ok("peers: {dns: podgate-peers.podgate.svc.cluster.local}\n"
	    "peer_listen: 0.0.0.0:2223\npeer_key: k\npeer_keys: ['ssh-ed25519 " ALICE_KEY "']\n");
	assert(c->npeers == 0 && strcmp(c->peers_dns, "podgate-peers.podgate.svc.cluster.local") == 0);
	config_unref(c);
	/* Without peers, the other keys are read and nothing else. */
	c = expect_ok("peer_listen: 0.0.0.0:2223\n");
	assert(c->npeers == 0 && c->peers_dns == NULL);
	config_unref(c);
}

/* Users: a name, unique, valid, and at least one key. */
static void
test_users(void)
{
	static const char *const want[] = {
	    "t:4: user has no name",
	    "t:7: duplicate user \"alice\" (first at line 2)",
	    "t:9: user \"carol\" has no keys",
	    "t:11: user name \"-x\" is not valid",
	    "t:12: groups: \"a b\" is not a valid group name",
	    "t:13: user \"dave\" has no keys",
	    NULL
	};

	expect_errors(
	    "users:\n"
	    "  - name: alice\n"
	    "    keys: [\"ssh-ed25519 " ALICE_KEY "\"]\n"
	    "  - keys: [\"ssh-ed25519 " BOB_KEY "\"]\n"
	    "  - name: bob\n"
	    "    keys: [\"ssh-ed25519 " BOB_KEY "\"]\n"
	    "  - name: alice\n"
	    "    keys: [\"ssh-ed25519 " BOB_KEY "\"]\n"
	    "  - name: carol\n"
	    "  - keys: [\"ssh-ed25519 " BOB_KEY "\"]\n"
	    "    name: -x\n"
	    "    groups: [ok, a b]\n"
	    "  - name: dave\n"
	    "    keys: []\n", want);
	expect_error("users:\n  - name: ~\n    keys: [\"ssh-ed25519 " ALICE_KEY "\"]\n",
	    "t:2: user name must be a string");
}

/* Keys that do not parse, of unsupported types, or with options. */
static void
test_bad_keys(void)
{
	static const struct {
		const char *key;
		const char *error;
	} bad[] = {
		{ "", "empty key" },
		{ "ssh-ed25519", "ssh-ed25519 key has no key data" },
		{ "ssh-ed25519 AAAA", "key data is not a ssh-ed25519 key" },
		{ "ssh-ed25519 not!base64", "key data is not valid base64" },
		{ "ssh-ed25519 " ALICE_KEY "AAAA", "not a valid ssh-ed25519 key" },
		{ "ecdsa-sha2-nistp256 " ALICE_KEY, "key data is not a ecdsa-sha2-nistp256 key" },
		{ "ssh-rsa " ALICE_KEY, "key data is not a ssh-rsa key" },
		{ "ssh-dss AAAAB3NzaC1kc3M=", "unsupported key type \"ssh-dss\"" },
		{ "rsa-sha2-512 AAAA", "unsupported key type \"rsa-sha2-512\"" },
		{ "sk-ssh-ed25519@openssh.com AAAA", "unsupported key type" },
		{ "ssh-ed25519-cert-v01@openssh.com AAAA", "unsupported key type" },
		{ "from=\\\"10.0.0.1\\\" ssh-ed25519 " ALICE_KEY, "authorized_keys options" },
		{ "command=\\\"echo hi\\\" ssh-ed25519 " ALICE_KEY, "authorized_keys options" },
		{ "no-pty ssh-ed25519 " ALICE_KEY, "authorized_keys options (\"no-pty\")" },
		{ "hello world", "not a public key" },
		{ "ssh-ed25519 " ALICE_KEY "\\nssh-ed25519 " BOB_KEY, "a key must be on one line" },
	};
	char yaml[1024];
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(yaml, sizeof yaml, "users:\n  - name: alice\n    keys:\n"
		    "      - \"ssh-ed25519 %s\"\n      - \"%s\"\n", ALICE_KEY, bad[i].key);
		expect_error(yaml, bad[i].error);
		expect_error(yaml, "t:5: ");
	}
	expect_error("users:\n  - name: alice\n    keys: [[a]]\n", "t:3: key must be a string");
}

/* All problems of a file are reported, not only the first. */
static void
test_all_errors(void)
{
	static const char yaml[] =
	    "listen: nowhere\n"
	    "users:\n"
	    "  - name: alice\n"
	    "    keys: [\"ssh-ed25519 AAAA\"]\n"
	    "  - name: alice\n"
	    "    keys: [\"ssh-ed25519 " ALICE_KEY "\"]\n"
	    "rules:\n"
	    "  - targets: [local]\n"
	    "  - users: [alice]\n"
	    "  - users: [alice]\n"
	    "    targets: [\"a b\"]\n"
	    "bogus: 1\n";
	static const char *const want[] = {
	    "t:1: listen must be HOST:PORT",
	    "t:4: key data is not a ssh-ed25519 key",
	    "t:3: user \"alice\" has no keys",
	    "t:5: duplicate user \"alice\" (first at line 3)",
	    "t:8: rule has no users or groups",
	    "t:9: rule has no targets",
	    "t:11: targets: \"a b\" is not a valid target name or pattern",
	    "t:10: rule has no targets",
	    "t:12: unknown key \"bogus\" in the configuration",
	    NULL
	};
	struct config *c = NULL;
	char *errs = NULL, *p;
	size_t lines = 0;

	expect_errors(yaml, want);
	assert(load(yaml, &c, &errs) == -EINVAL);
	for (p = errs; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	assert(lines == 10);	/* the nine above and the warning about "local" */
	assert(strstr(errs, "t:8: warning: rule names target \"local\" but targets.local "
	    "is not configured") != NULL);
	free(errs);
	/* With no error stream the result is the same. */
	assert(config_load_string("t", yaml, sizeof yaml - 1, NULL, &c) == -EINVAL);
	assert(c == NULL);
}

/* Rules: users or groups, and targets; unknown users are a warning. */
static void
test_rules(void)
{
	struct config *c = NULL;
	char *errs = NULL;

	expect_error("rules:\n  - targets: [local]\n    users: []\n    groups: []\n",
	    "t:2: rule has no users or groups");
	expect_error("rules:\n  - groups: [x]\n    targets: []\n", "t:2: rule has no targets");
	expect_error("rules:\n  - groups: [x]\n", "t:2: rule has no targets");
	expect_error("rules:\n  - groups: [x]\n    targets: [-c]\n",
	    "t:3: targets: \"-c\" is not a valid target name or pattern");
	expect_error("rules:\n  - [a]\n", "t:2: each rule must be a mapping");

	/* An unknown user grants nothing: a warning. */
	assert(load("users:\n  - name: alice\n    keys: [\"ssh-ed25519 " ALICE_KEY "\"]\n"
	    "rules:\n  - users: [alice, bbo]\n"
	    "    targets: [local]\ntargets: {local: {user: nobody}}\n", &c, &errs) == 0);
	assert(strcmp(errs, "t:5: warning: rule names unknown user \"bbo\"\n") == 0);
	assert(c->nrules == 1 && c->rules[0].nusers == 2);
	free(errs);
	config_unref(c);
}

/*
 * A rule's group must be known: a user is in it, or the top-level groups
 * list names it (a group written before its members).
 */
static void
test_rule_groups(void)
{
	struct config *c;

	expect_error("users:\n  - name: alice\n    keys: [\"ssh-ed25519 " ALICE_KEY "\"]\n"
	    "    groups: [oncall]\n"
	    "rules:\n  - users: [alice]\n    targets: [local]\n"
	    "  - groups: [oncal]\n    targets: [local]\ntargets: {local: {user: nobody}}\n",
	    "t:8: rule names unknown group \"oncal\": no user is in it");
	c = expect_ok("users:\n  - name: alice\n    keys: [\"ssh-ed25519 " ALICE_KEY "\"]\n"
	    "    groups: [oncall]\n"
	    "groups: [{name: nobody-yet}]\n"
	    "rules:\n  - groups: [oncall, nobody-yet]\n    targets: [local]\n"
	    "targets: {local: {user: nobody}}\n");
	assert(c->nrules == 1 && c->rules[0].ngroups == 2);
	config_unref(c);
}

/*
 * Kubernetes target patterns name their cluster: one without a cluster is
 * refused with the fix, one naming an unknown cluster (or a glob matching
 * none) is an error; "*:" and literal clusters pass.
 */
static void
test_rule_clusters(void)
{
	static const char head[] =
	    "users:\n  - name: alice\n    keys: [\"ssh-ed25519 " ALICE_KEY "\"]\n"
	    "rules:\n  - users: [alice]\n";
	static const char tail[] =
	    "targets:\n  local: {user: nobody}\n  kubernetes: [{name: lab}, {name: staging}]\n";
	static const struct {
		const char *targets;
		const char *error;	/* NULL: loads */
	} cases[] = {
		{ "['prod/*']", "t:5: rule target \"prod/*\" names no cluster and would match "
		    "nothing: write \"lab:prod/*\" or \"*:prod/*\"" },
		{ "['*/*/*']", "write \"lab:*/*/*\" or \"*:*/*/*\"" },
		{ "['stagign:*/*']", "t:5: rule target \"stagign:*/*\" names unknown cluster "
		    "\"stagign\" (clusters: lab, staging)" },
		{ "['prod:*/*']", "names unknown cluster \"prod\"" },
		{ "['p*:*/*']", "rule target \"p*:*/*\" matches no cluster with \"p*\"" },
		{ "['lab:*/*', 'staging:prod/*/*', '*:*/*', 'st[a-z]*:x/y', local, '*']", NULL },
	};
	char yaml[1024];
	struct config *c;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(yaml, sizeof yaml, "%s    targets: %s\n%s", head, cases[i].targets,
		    tail);
		if (cases[i].error != NULL) {
			expect_error(yaml, cases[i].error);
		} else {
			c = expect_ok(yaml);
			config_unref(c);
		}
	}
	/* Without clusters at all, a Kubernetes pattern grants nothing: an error too. */
	expect_error("rules:\n  - users: [alice]\n    targets: ['prod:*/*']\n",
	    "t:2: rule target \"prod:*/*\" names unknown cluster \"prod\" "
	    "(targets.kubernetes defines none)");
	expect_error("rules:\n  - users: [alice]\n    targets: ['prod/*']\n",
	    "t:2: rule target \"prod/*\" names no cluster, and targets.kubernetes defines none");
}

/* A kubeconfig that does not exist (or is not a file) is an error at its line. */
static void
test_kubeconfig_missing(void)
{
	struct config *c;

	expect_error("targets:\n  kubernetes:\n    - name: lab\n"
	    "      kubeconfig: /nonexistent/lab.kubeconfig\n",
	    "t:4: kubeconfig /nonexistent/lab.kubeconfig: No such file or directory");
	expect_error("targets:\n  kubernetes:\n    - {name: lab, kubeconfig: /}\n",
	    "t:3: kubeconfig / is not a regular file");
	c = expect_ok("targets:\n  kubernetes:\n    - {name: lab, kubeconfig: prod.kubeconfig}\n"
	    "    - {name: incluster}\n");
	assert(c->nkube == 2 && c->kube[1].kubeconfig == NULL);
	config_unref(c);
}

/*
 * Groups and clusters, like users, name each entry once; a cluster named a
 * third time is reported against each earlier one.
 */
static void
test_duplicate_names(void)
{
	static const char *const want[] = {
	    "t:4: duplicate group \"dev\" (first at line 2)",
	    "t:9: cluster \"lab\" is already defined at line 7",
	    "t:10: cluster \"lab\" is already defined at line 7",
	    "t:10: cluster \"lab\" is already defined at line 9",
	    NULL
	};

	expect_errors(
	    "groups:\n"
	    "  - {name: dev, roles: [auditor]}\n"
	    "  - {name: ops, roles: [auditor]}\n"
	    "  - {name: dev, roles: [approver]}\n"
	    "targets:\n"
	    "  kubernetes:\n"
	    "    - {name: lab}\n"
	    "    - {name: prod}\n"
	    "    - {name: lab}\n"
	    "    - {name: lab}\n", want);
}

/* Users, groups, rules and clusters are lists of mappings: anything else is said so. */
static void
test_list_items(void)
{
	static const char *const want[] = {
	    "t:1: each user must be a mapping with name and keys",
	    "t:2: each group must be a mapping with name and roles",
	    "t:3: each rule must be a mapping with users or groups, and targets",
	    "t:5: each targets.kubernetes entry must be a mapping with a name",
	    NULL
	};

	expect_errors("users: [alice]\ngroups: [dev]\nrules: [[prod]]\n"
	    "targets:\n  kubernetes: [lab]\n", want);
}

/*
 * generate_keys (default false), and signing_key's default: beside
 * host_key, wherever the broker runs.
 */
static void
test_keys(void)
{
	static const struct {
		const char *yaml;
		const char *signing_key;
	} cases[] = {
		{ "host_key: /etc/podgate/keys/host_ed25519\n", "/etc/podgate/keys/signing_ed25519" },
		{ "host_key: keys/host\n", "keys/signing_ed25519" },
		{ "host_key: host\n", "signing_ed25519" },
		{ "host_key: /host\n", "/signing_ed25519" },
		{ "host_key: /a/host\nsigning_key: /b/sign\n", "/b/sign" },
		{ "signing_key: /b/sign\nhost_key: /a/host\n", "/b/sign" },
		{ "", "state/signing_ed25519" },
	};
	struct config *c;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		c = expect_ok(cases[i].yaml);
		if (strcmp(c->signing_key, cases[i].signing_key) != 0) {
			fprintf(stderr, "signing_key %s, want %s, for:\n%s", c->signing_key,
			    cases[i].signing_key, cases[i].yaml);
			abort();
		}
		assert(!c->generate_keys);
		config_unref(c);
	}
	c = expect_ok("generate_keys: true\n");
	assert(c->generate_keys);
	config_unref(c);
	c = expect_ok("generate_keys: false\n");
	assert(!c->generate_keys);
	config_unref(c);
	expect_error("\ngenerate_keys: yes\n", "t:2: generate_keys must be true or false");
}

/* The hash of the text loaded, for the audit log. */
static void
test_sha256(void)
{
	struct config *c = expect_ok("listen: 127.0.0.1:2222\n");

	assert(strcmp(c->sha256, SHA256_LISTEN) == 0);
	config_unref(c);
	c = expect_ok("listen: 127.0.0.1:2223\n");
	assert(strlen(c->sha256) == 64 && strcmp(c->sha256, SHA256_LISTEN) != 0);
	config_unref(c);
}

/* Run ssh-keygen -t type into tmpdir/name, return the .pub line (caller frees). */
static char *
keygen(const char *name, const char *type, int bits)
{
	char cmd[512], bitsarg[32] = "", *line = NULL, *path;
	size_t cap = 0;
	FILE *f;

	if (bits != 0)
		snprintf(bitsarg, sizeof bitsarg, "-b %d", bits);
	snprintf(cmd, sizeof cmd, "ssh-keygen -q -t %s %s -N '' -C %s@test -f %s/%s "
	    "</dev/null >/dev/null", type, bitsarg, name, tmpdir, name);
	assert(system(cmd) == 0);
	assert(asprintf(&path, "%s/%s.pub", tmpdir, name) > 0);
	assert((f = fopen(path, "r")) != NULL);
	assert(getline(&line, &cap, f) > 0);
	line[strcspn(line, "\n")] = '\0';
	fclose(f);
	free(path);
	return line;
}

/* The fingerprint ssh-keygen -l prints for tmpdir/name.pub (caller frees). */
static char *
keygen_fingerprint(const char *name)
{
	char cmd[512], *line = NULL, *fp;
	size_t cap = 0;
	FILE *f;

	snprintf(cmd, sizeof cmd, "ssh-keygen -l -E sha256 -f %s/%s.pub", tmpdir, name);
	assert((f = popen(cmd, "r")) != NULL);
	assert(getline(&line, &cap, f) > 0);
	assert(pclose(f) == 0);
	fp = strchr(line, ' ') + 1;
	fp[strcspn(fp, " ")] = '\0';
	fp = strdup(fp);
	free(line);
	return fp;
}

/* Every supported type from ssh-keygen loads with ssh-keygen's fingerprint. */
static void
test_keygen_types(void)
{
	static const struct {
		const char *name;
		const char *type;
		int bits;
		const char *ktype;
	} keys[] = {
		{ "ed", "ed25519", 0, "ssh-ed25519" },
		{ "p256", "ecdsa", 256, "ecdsa-sha2-nistp256" },
		{ "p384", "ecdsa", 384, "ecdsa-sha2-nistp384" },
		{ "p521", "ecdsa", 521, "ecdsa-sha2-nistp521" },
		{ "rsa", "rsa", 3072, "ssh-rsa" },
	};
	char *line, *fp, *yaml, *blob;
	struct config *c;
	const struct cfg_user *u;
	ssh_key key = NULL;
	size_t i;

	for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		line = keygen(keys[i].name, keys[i].type, keys[i].bits);
		fp = keygen_fingerprint(keys[i].name);
		assert(asprintf(&yaml, "users:\n  - name: u\n    keys: [\"%s\"]\n", line) > 0);
		c = expect_ok(yaml);
		u = config_find_user(c, "u");
		assert(u != NULL && u->nkeys == 1);
		assert(strcmp(u->keys[0].type, keys[i].ktype) == 0);
		assert(strcmp(u->keys[0].fingerprint, fp) == 0);
		assert(strncmp(line + strlen(keys[i].ktype) + 1, u->keys[0].base64,
		    strlen(u->keys[0].base64)) == 0);
		assert(strcmp(u->keys[0].comment, keys[i].name) != 0);
		assert(strncmp(u->keys[0].comment, keys[i].name, strlen(keys[i].name)) == 0);
		/* lookups by blob and by libssh key */
		blob = u->keys[0].base64;
		assert(config_user_key(u, keys[i].ktype, blob) == &u->keys[0]);
		assert(config_user_key(u, NULL, blob) == &u->keys[0]);
		assert(config_user_key(u, "ssh-ed25519", ALICE_KEY) == NULL);
		if (strcmp(keys[i].ktype, "ssh-rsa") == 0) {
			assert(config_user_key(u, "rsa-sha2-512", blob) == &u->keys[0]);
			assert(config_user_key(u, "rsa-sha2-256", blob) == &u->keys[0]);
		} else {
			assert(config_user_key(u, "ssh-rsa", blob) == NULL);
		}
		assert(ssh_pki_import_pubkey_base64(blob,
		    ssh_key_type_from_name(keys[i].ktype), &key) == SSH_OK);
		assert(config_user_pubkey(u, key) == &u->keys[0]);
		ssh_key_free(key);
		key = NULL;
		config_unref(c);
		free(yaml);
		free(fp);
		free(line);
	}

	/* RSA below 2048 bits is refused. */
	line = keygen("rsa1024", "rsa", 1024);
	assert(asprintf(&yaml, "users:\n  - name: u\n    keys: [\"%s\"]\n", line) > 0);
	expect_error(yaml, "t:3: RSA key has 1024 bits; at least 2048 are required");
	free(yaml);
	free(line);
}

/* Keys from an authorized_keys file; its errors carry its own name and line. */
static void
test_authorized_keys(void)
{
	char *ak, *bad, *loose, *yaml, *want;
	struct config *c;
	const struct cfg_user *u;

	ak = write_file("ak", "# alice's keys\n\n"
	    "ssh-ed25519 " ALICE_KEY " alice@laptop\n"
	    "   ssh-ed25519 " BOB_KEY "   second key  \r\n"
	    "ssh-ed25519 " ALICE_KEY " again\n", 0600);
	assert(asprintf(&yaml, "users:\n  - name: alice\n    authorized_keys: %s\n"
	    "    keys: [\"ssh-ed25519 " ALICE_KEY "\"]\n", ak) > 0);
	c = expect_ok(yaml);
	u = config_find_user(c, "alice");
	assert(u != NULL && u->nkeys == 2);	/* the repeat is dropped */
	assert(strcmp(u->keys[0].base64, ALICE_KEY) == 0);
	assert(strcmp(u->keys[0].comment, "alice@laptop") == 0);
	assert(strcmp(u->keys[1].base64, BOB_KEY) == 0);
	assert(strcmp(u->keys[1].comment, "second key") == 0);
	assert(config_find_user(c, "bob") == NULL);
	config_unref(c);
	free(yaml);

	bad = write_file("ak-bad", "ssh-ed25519 " ALICE_KEY "\n"
	    "restrict,command=\"id\" ssh-ed25519 " BOB_KEY "\n"
	    "ssh-ed25519 AAAA\n", 0644);
	assert(asprintf(&yaml, "users:\n  - name: alice\n    authorized_keys: %s\n", bad) > 0);
	assert(asprintf(&want, "%s:2: authorized_keys options", bad) > 0);
	expect_error(yaml, want);
	free(want);
	assert(asprintf(&want, "%s:3: key data is not a ssh-ed25519 key", bad) > 0);
	expect_error(yaml, want);
	free(want);
	free(yaml);

	/* missing, group-writable, empty */
	assert(asprintf(&yaml, "users:\n  - name: alice\n    authorized_keys: %s/none\n",
	    tmpdir) > 0);
	expect_error(yaml, "t:3: authorized_keys: cannot open");
	expect_error(yaml, "No such file or directory");
	expect_error(yaml, "t:2: user \"alice\" has no keys");
	free(yaml);
	loose = write_file("ak-loose", "ssh-ed25519 " ALICE_KEY "\n", 0620);
	assert(asprintf(&yaml, "users:\n  - name: alice\n    authorized_keys: %s\n", loose) > 0);
	expect_error(yaml, "is writable by group or others; fix with: chmod go-w");
	free(yaml);
	assert(asprintf(&yaml, "users:\n  - name: alice\n    authorized_keys: %s\n", tmpdir) > 0);
	expect_error(yaml, "t:3: authorized_keys: ");
	expect_error(yaml, "is not a regular file");
	free(yaml);
	free(ak);
	free(bad);
	free(loose);
}

/* config_load: permissions, errors named after the path, path kept. */
static void
test_load_file(void)
{
	char *path, *errs = NULL, *want;
	struct config *c = NULL;
	size_t len = 0;
	FILE *f;

	path = write_file("podgate.yaml", "listen: 127.0.0.1:2200\n", 0644);
	assert(config_load(path, stderr, &c) == 0);
	assert(c->path != NULL && strcmp(c->path, path) == 0);
	assert(c->listen_port == 2200);
	config_unref(c);

	/* group- or other-writable is refused with the fix */
	assert(chmod(path, 0664) == 0);
	assert((f = open_memstream(&errs, &len)) != NULL);
	assert(config_load(path, f, &c) == -EPERM);
	fclose(f);
	assert(c == NULL);
	assert(asprintf(&want, "%s: %s is writable by group or others; fix with: "
	    "chmod go-w %s\n", path, path, path) > 0);
	assert(strcmp(errs, want) == 0);
	free(want);
	free(errs);
	assert(chmod(path, 0602) == 0);
	assert(config_load(path, NULL, &c) == -EPERM && c == NULL);

	/* missing file: the errno */
	assert(config_load("/nonexistent/podgate.yaml", NULL, &c) == -ENOENT);
	assert(c == NULL);
	free(path);

	/* errors in a file are named after its path */
	path = write_file("bad.yaml", "listen: 127.0.0.1:2200\nusers: 3\n", 0600);
	assert((f = open_memstream(&errs, &len)) != NULL);
	assert(config_load(path, f, &c) == -EINVAL);
	fclose(f);
	assert(asprintf(&want, "%s:2: users must be a list\n", path) > 0);
	assert(strcmp(errs, want) == 0);
	free(want);
	free(errs);
	free(path);
}

/* Reference counting: the last unref frees (LSan checks). */
static void
test_refcount(void)
{
	struct config *c = expect_ok("users:\n  - name: a\n    keys: [\"ssh-ed25519 "
	    ALICE_KEY "\"]\n    groups: [g]\nrules:\n  - groups: [g]\n    targets: ['*']\n");

	assert(config_ref(c) == c && c->refs == 2);
	config_unref(c);
	assert(c->refs == 1);
	config_unref(c);
	config_unref(NULL);
	assert(config_ref(NULL) == NULL);
}

/* Anchors and aliases are YAML: they work where values are expected. */
static void
test_aliases(void)
{
	struct config *c = expect_ok(
	    "users:\n"
	    "  - name: alice\n"
	    "    keys: &k [\"ssh-ed25519 " ALICE_KEY "\"]\n"
	    "    groups: &g [ops]\n"
	    "  - name: bob\n"
	    "    keys: *k\n"
	    "    groups: *g\n");

	assert(c->nusers == 2 && c->users[1].nkeys == 1 && c->users[1].ngroups == 1);
	config_unref(c);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{ "full", test_full },
		{ "defaults", test_defaults },
		{ "yaml_syntax", test_yaml_syntax },
		{ "unknown_key", test_unknown_key },
		{ "types", test_types },
		{ "listen", test_listen },
		{ "peers", test_peers },
		{ "users", test_users },
		{ "bad_keys", test_bad_keys },
		{ "all_errors", test_all_errors },
		{ "rules", test_rules },
		{ "rule_groups", test_rule_groups },
		{ "rule_clusters", test_rule_clusters },
		{ "kubeconfig_missing", test_kubeconfig_missing },
		{ "duplicate_names", test_duplicate_names },
		{ "list_items", test_list_items },
		{ "keys", test_keys },
		{ "sha256", test_sha256 },
		{ "keygen_types", test_keygen_types },
		{ "authorized_keys", test_authorized_keys },
		{ "load_file", test_load_file },
		{ "refcount", test_refcount },
		{ "aliases", test_aliases },
	};
	int status;

	tmpdir = unit_tmpdir("config");
	/* Relative paths in the tests (prod.kubeconfig) are found here. */
	assert(chdir(tmpdir) == 0);
	free(write_file("prod.kubeconfig", "", 0600));
	status = unit_run("config", tests, UNIT_COUNT(tests));
	unit_rmtree(tmpdir);
	free(tmpdir);
	return status;
}
