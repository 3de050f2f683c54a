/*
 * Broker configuration: the YAML file (libyaml) turned into a struct.
 *
 * A struct config is immutable once loaded and reference-counted: the
 * server holds one, each session holds the one it started under, and
 * SIGHUP swaps in a new one without touching live sessions.
 */
#ifndef PODGATE_CONFIG_H
#define PODGATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "policy/pattern.h"

struct ssh_key_struct;		/* libssh's ssh_key */

struct cfg_key {
	char *type;		/* "ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", ... */
	char *base64;		/* the key blob, base64 as in authorized_keys */
	char *comment;		/* may be NULL */
	char *fingerprint;	/* "SHA256:..." */
	struct ssh_key_struct *pubkey;	/* libssh's parsed key (ssh_key), owned here */
};

struct cfg_user {
	int line;		/* where the user starts in the file */
	char *name;
	struct cfg_key *keys;
	size_t nkeys;
	char **groups;
	size_t ngroups;
	char **roles;		/* "auditor", "approver" (docs/live.md) */
	size_t nroles;
};

/* A top-level groups entry: roles given to every member of the group. */
struct cfg_group {
	int line;
	char *name;
	char **roles;
	size_t nroles;
};

/* Which side a watch pattern looks at (a bit set). */
enum cfg_watch_on {
	CFG_WATCH_INPUT = 1,	/* lines as the user typed them */
	CFG_WATCH_OUTPUT = 2,	/* lines the target printed */
};

enum cfg_watch_action {
	CFG_WATCH_ALERT = 0,	/* an audit event; the session goes on */
	CFG_WATCH_TERMINATE,	/* an audit event, and the session ends with the reason shown */
};

/* One rules[].watch entry: {on, pattern, action, message}. */
struct cfg_watch {
	int line;
	unsigned on;			/* CFG_WATCH_INPUT and/or CFG_WATCH_OUTPUT; default input */
	enum cfg_watch_action action;	/* default alert */
	struct cfg_pattern pattern;	/* PATTERN_LINE */
	char *message;			/* shown to the user instead of the default, or NULL */
};

/* rules[].limits; 0 means no limit. */
struct cfg_limits {
	unsigned max_sessions;		/* concurrent sessions of one user */
	uint64_t max_duration;		/* seconds */
	uint64_t idle_timeout;		/* seconds without input or output */
	uint64_t max_output;		/* bytes the target may write (stdout + stderr) */
};

/* Longest kind of a redact entry. */
#define CFG_REDACT_KIND_MAX 32

/*
 * A top-level redact entry: a pattern added to the built-in detectors
 * (policy/redact.h), compiled as PATTERN_REDACT (policy/pattern.h).
 */
struct cfg_redact {
	int line;
	struct cfg_pattern pattern;
	char *kind;		/* shown as [REDACTED:kind]; default "custom" */
};

struct cfg_rule {
	int line;		/* where the rule starts in the file (for reasons) */
	char **users;		/* names this rule applies to */
	size_t nusers;
	char **groups;		/* or members of these groups */
	size_t ngroups;
	char **targets;		/* target names or PATTERN_TARGET globs ("local", "prod:*\/\*") */
	size_t ntargets;

	/* Guard (broker/guard.h); zero values are the defaults. */
	bool deny_pty;		/* pty: false */
	bool deny_exec;		/* exec: false */
	bool has_allow;		/* commands.allow given (even empty: nothing allowed) */
	struct cfg_pattern *allow;	/* commands.allow (PATTERN_ALLOW) */
	size_t nallow;
	struct cfg_pattern *deny;	/* commands.deny (PATTERN_COMMAND) */
	size_t ndeny;
	struct cfg_watch *watch;	/* watch */
	size_t nwatch;
	bool require_reason;	/* require_reason: true */
	bool rec_failure_continue;	/* on_recording_failure: continue (default close) */
	struct cfg_limits limits;	/* limits */

	/* Live supervision (broker/live.h, docs/live.md). */
	bool announce_watchers;	/* announce_watchers: true: tell the user who watches */
	struct cfg_pattern *approve;	/* commands.approve: exec commands that wait
					   (PATTERN_COMMAND) */
	size_t napprove;
	uint64_t approve_timeout;	/* commands.approve_timeout, seconds; default 300 */
	bool self_approve;	/* commands.self_approve: a requester may approve their own */
	struct cfg_pattern *passprompt;	/* passprompt: output lines that ask for a password
					   (PATTERN_LINE) */
	size_t npassprompt;

	/* Kubernetes targets (broker/target-kube.c, docs/kubernetes.md). */
	bool impersonate;	/* impersonate given: kubectl --as / --as-group */
	char *as_user;		/* impersonate.user; "{user}" is the podgate user */
	char **as_groups;	/* impersonate.groups; "{user}" expands too */
	size_t nas_groups;
	bool as_user_groups;	/* impersonate: true: the user's podgate groups */
	char *shell;		/* shell: runs "SHELL -c COMMAND"; NULL: sh; "none": argv */
	char **interactive;	/* interactive_shell: tried in order; default bash, sh */
	size_t ninteractive;
};

struct cfg_local_target {
	bool enabled;		/* targets.local present */
	char *shell;		/* default /bin/sh */
	char *user;		/* user: the Unix account sessions run as */
	bool allow_broker_user;	/* allow_broker_user: true: user may be the broker's
				   own uid or root, or be left out (the broker's) */
};

/* One targets.kubernetes entry: a cluster kubectl reaches. */
struct cfg_kube_cluster {
	int line;
	char *name;		/* CLUSTER in target names */
	char *kubeconfig;	/* NULL: in-cluster configuration */
	char *context;		/* NULL: the kubeconfig's current context */
	char *kubectl;		/* default "kubectl" (looked up in PATH) */
	char *cache_dir;	/* kubectl's HOME; default <recordings>/.kube/<name> */
	unsigned timeout;	/* seconds for API requests before exec; default 10 */
	char **env;		/* NAME or NAME=VALUE for kubectl (exec credential plugins) */
	size_t nenv;
	enum cfg_kube_transport {
		CFG_KUBE_NATIVE,	/* the broker speaks to the API server itself */
		CFG_KUBE_KUBECTL,	/* kubectl exec through the --kube-exec helper */
	} transport;		/* transport: native (default) or kubectl */
	unsigned keepalive;	/* seconds between WebSocket pings (native); default 30 */
};

/* How the broker gets its object storage credentials (storage.s3.credentials). */
enum cfg_s3_creds {
	CFG_S3_CREDS_ENV = 0,	/* AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN */
	CFG_S3_CREDS_FILES,	/* {access_key_file, secret_key_file} */
	CFG_S3_CREDS_WEB_IDENTITY, /* AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE through STS */
};

/* storage.s3: recordings shipped to S3-compatible object storage (docs/storage.md). */
struct cfg_s3 {
	bool enabled;		/* storage.s3 present */
	int line;
	char *endpoint;		/* https://host[:port] */
	char *region;		/* default us-east-1 */
	char *bucket;
	char *prefix;		/* default "": objects are PREFIX + SESSION-ID + ... */
	bool path_style;	/* default false */
	enum cfg_s3_creds credentials;	/* default env */
	char *access_key_file;	/* CFG_S3_CREDS_FILES */
	char *secret_key_file;
	unsigned segment_seconds;	/* default 10 */
	bool keep_local;	/* default false */
	uint64_t multipart_threshold;	/* larger recordings go up in parts; default 5 GiB */
	uint64_t part_size;	/* bytes per part; default 64 MiB */
};

struct config {
	unsigned refs;
	char *path;		/* the file it was loaded from (NULL for the demo) */
	char sha256[65];	/* SHA-256 of the loaded text, lowercase hex */
	char *listen_host;	/* numeric IPv4 or IPv6 (no brackets), default 127.0.0.1 */
	uint16_t listen_port;	/* default 2222 */
	char *metrics_host;	/* metrics_listen: HTTP probes and metrics; NULL: none */
	uint16_t metrics_port;
	char *peer_host;	/* peer_listen: where other replicas connect; NULL: none */
	uint16_t peer_port;
	char *peer_key;		/* peer_key: this replica's private key (and the peer
				   listener's host key) */
	struct cfg_user peer_keys;	/* peer_keys: the replicas' public keys (.keys) */
	char **peers;		/* peers: "HOST:PORT" each (a static list) */
	size_t npeers;
	char *peers_dns;	/* peers: {dns: NAME}: resolved at each use, on peer_listen's port */
	char *host_key;		/* default state/host_ed25519 */
	char *signing_key;	/* recording signing key (Ed25519 PEM, 0600), default
				   signing_ed25519 in host_key's directory */
	bool generate_keys;	/* generate_keys: true: make missing host and signing
				   keys at start (default false: refuse to start) */
	char *redaction_key;	/* HMAC key proving what redaction hid (64 hex digits,
				   0600), default redaction_key in host_key's directory;
				   made when missing */
	char *recordings;	/* default state/recordings */
	char *audit_log;	/* default state/audit.jsonl; "-" is stdout */
	unsigned max_auth_tries;	/* default 6 */
	unsigned login_grace_time;	/* seconds, default 30 */
	unsigned shutdown_grace;	/* seconds live sessions get on SIGTERM, default 10 */
	size_t max_connections;		/* default 1024 */
	unsigned max_unauthenticated_per_address; /* connections from one address not yet
					   authenticated, default 10 */
	unsigned auth_failure_delay_ms;	/* a connection is not read for this long after a
					   failed authentication attempt, default 1000 */
	struct cfg_user *users;
	size_t nusers;
	struct cfg_rule *rules;
	size_t nrules;
	struct cfg_local_target local;
	struct cfg_kube_cluster *kube;	/* targets.kubernetes; the first is the default */
	size_t nkube;
	struct cfg_redact *redact;	/* redact: patterns added to the built-in detectors */
	size_t nredact;
	struct cfg_group *groups;	/* top-level groups: roles by group */
	size_t ngroups;
	struct cfg_s3 s3;		/* storage.s3 */
};

/*
 * Load and validate path. On success *out holds a config with one
 * reference. On failure prints each problem as "PATH:LINE: message" to
 * errs (when not NULL) and returns -EINVAL (or the errno of opening the
 * file); *out is NULL. Relative paths in the file are kept as written
 * (relative to the broker's working directory).
 *
 * The file (and each authorized_keys file) must be a regular file of at
 * most 1 MiB, owned by root or the broker's user and not writable by
 * group or others: otherwise -EPERM (or -EFBIG) with the fix in the
 * message. Unknown keys are errors, except keys of later features, which
 * are parsed and ignored. Warnings (a rule naming an unknown user, or
 * "local" without targets.local) are printed as "PATH:LINE: warning: ..."
 * and do not fail the load. A rule naming a group no user is in (and the
 * top-level groups list does not name), a rule target pattern with '/'
 * but no cluster ("prod/\*", refused with the fix) or whose cluster part
 * matches no targets.kubernetes entry, and a kubeconfig that does not
 * exist are errors. signing_key defaults to signing_ed25519 beside
 * host_key; c->sha256 is the hash of the text loaded. The guard keys of a rule (pty, exec,
 * commands, watch, require_reason, limits) and the top-level redact list
 * are parsed into struct cfg_rule and struct config: patterns are
 * compiled here, so a bad regular expression is a load error ("PATH:LINE:
 * bad regular expression ..."); see docs/guard.md for their syntax.
 * User and group names are 1..255 of
 * [A-Za-z0-9._@:+/-], not starting with '-' or '.'; keys are ssh-ed25519,
 * ecdsa-sha2-nistp256/384/521 or ssh-rsa (2048 bits or more), without
 * authorized_keys options; every user has at least one key.
 */
int config_load(const char *path, FILE *errs, struct config **out);

/* The same, from a string (name is used in messages; c->path stays NULL). */
int config_load_string(const char *name, const char *yaml, size_t len, FILE *errs,
    struct config **out);

/* Take a reference (NULL is passed through); returns c. */
struct config *config_ref(struct config *c);
/* Drop a reference; the last one frees everything. NULL is ignored. */
void config_unref(struct config *c);

/*
 * Whether the user has the role ("auditor", "approver"), given on the
 * user or on one of the user's groups in the top-level groups list.
 */
bool config_user_has_role(const struct config *c, const struct cfg_user *u,
    const char *role);

/* The user with this name, or NULL. */
const struct cfg_user *config_find_user(const struct config *c, const char *name);

/*
 * Whether the user has this key (type and base64 blob); NULL if not. The
 * RSA signature names "rsa-sha2-256" and "rsa-sha2-512" count as "ssh-rsa";
 * type may be NULL to match on the blob alone (it names its own type).
 */
const struct cfg_key *config_user_key(const struct cfg_user *u, const char *type,
    const char *base64);

/* The same for a key libssh parsed (an ssh_key); NULL if not the user's. */
const struct cfg_key *config_user_pubkey(const struct cfg_user *u,
    struct ssh_key_struct *key);

#endif
