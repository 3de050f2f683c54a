/*
 * The configuration's targets: targets.local (the account it runs as)
 * and targets.kubernetes (the clusters, how the broker reaches them).
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/config-parse.h"

/* Whether s is an absolute path. */
static int
config_abs_ok(const char *s)
{
	return *s == '/';
}

static const struct config_entry config_local_entries[] = {
	CONFIG_FIELD("shell", CONFIG_STRING, struct cfg_local_target, shell, .ok = config_abs_ok,
	    .bad = "shell must be an absolute path"),
	CONFIG_FIELD("user", CONFIG_STRING, struct cfg_local_target, user),
	CONFIG_FIELD("allow_broker_user", CONFIG_BOOL, struct cfg_local_target,
	    allow_broker_user),
	CONFIG_END
};

/*
 * The local target's account: it must exist, and be neither root nor the
 * broker's own uid (which can read the signing key, the recordings and
 * the audit log) unless allow_broker_user is true. Another account needs
 * a broker running as root.
 */
static void
config_check_local_user(struct config_parse *p, yaml_node_t *n)
{
	struct cfg_local_target *l = &p->c->local;
	struct passwd *pw;
	uid_t me = geteuid();

	if (l->user == NULL) {
		if (!l->allow_broker_user)
			config_error(p, n, "targets.local needs user: an unprivileged Unix account "
			    "the local target runs as (it must not be able to read the broker's "
			    "keys, recordings or audit log); allow_broker_user: true runs it as "
			    "the broker's own user instead");
		else
			config_warn_line(p, (int)n->start_mark.line + 1, "the local target runs "
			    "as the broker's own user: what it runs can read the signing key, "
			    "the recordings and the audit log");
		return;
	}
	if ((pw = getpwnam(l->user)) == NULL) {
		config_error(p, n, "targets.local.user: no such user \"%s\"", l->user);
		return;
	}
	if (pw->pw_uid == 0 || pw->pw_uid == me) {
		if (!l->allow_broker_user)
			config_error(p, n, "targets.local.user \"%s\" is %s: the local target "
			    "could read the broker's keys, recordings and audit log; name an "
			    "unprivileged account, or set allow_broker_user: true", l->user,
			    pw->pw_uid == 0 ? "root" : "the broker's own user");
		else
			config_warn_line(p, (int)n->start_mark.line + 1, "targets.local.user "
			    "\"%s\" is %s: what the local target runs can read the signing key, "
			    "the recordings and the audit log", l->user,
			    pw->pw_uid == 0 ? "root" : "the broker's own user");
		return;
	}
	if (me != 0)
		config_error(p, n, "targets.local.user \"%s\": the broker must run as root to "
		    "start sessions as another account", l->user);
}

/* targets.local: present (even empty) means enabled. */
static void
config_parse_target_local(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;

	c->local.enabled = true;
	if (!config_is_null(n))
		config_walk_map(p, n, "targets.local", config_local_entries, &c->local);
	config_check_local_user(p, n);
}

/* Whether s is a DNS-1123 label: 1..63 of [a-z0-9-], no '-' at either end. */
static int
config_label_ok(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		if (n >= 63 || strchr("abcdefghijklmnopqrstuvwxyz0123456789-", s[n]) == NULL)
			return 0;
	}
	return n > 0 && s[0] != '-' && s[n - 1] != '-';
}

/*
 * An entry of targets.kubernetes[].env: NAME (passed from the broker's own
 * environment when set there) or NAME=VALUE. kubectl's PATH, HOME,
 * KUBECONFIG and locale are the broker's to set (an exec plugin outside
 * PATH is named by its absolute path in the kubeconfig).
 */
static int
config_kube_env_ok(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");

	if (n == 0 || (s[0] >= '0' && s[0] <= '9') || (s[n] != '\0' && s[n] != '='))
		return 0;
	if ((n == 4 && strncmp(s, "HOME", 4) == 0) || (n == 10 && strncmp(s, "KUBECONFIG", 10) == 0) ||
	    (n == 4 && strncmp(s, "LANG", 4) == 0) || (n == 4 && strncmp(s, "TERM", 4) == 0) ||
	    (n == 4 && strncmp(s, "PATH", 4) == 0))
		return 0;
	return strpbrk(s + n, "\n\r") == NULL;
}

/*
 * targets.kubernetes[].kubeconfig: the file must exist now, or every
 * session to the cluster would fail later with kubectl's own message.
 */
static void
config_check_kubeconfig(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_kube_cluster *k = obj;
	struct stat st;

	if (k->kubeconfig == NULL)
		return;
	if (stat(k->kubeconfig, &st) < 0)
		config_error(p, n, "kubeconfig %s: %s", k->kubeconfig, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		config_error(p, n, "kubeconfig %s is not a regular file", k->kubeconfig);
}

static const struct config_enum config_kube_transports[] = {
	{ "native", CFG_KUBE_NATIVE },
	{ "kubectl", CFG_KUBE_KUBECTL },
	{ NULL, 0 }
};

/* Paths and program names: no blanks, no leading '-'. */
#define CONFIG_KUBE_PATH(k, f) \
	CONFIG_FIELD(k, CONFIG_STRING, struct cfg_kube_cluster, f, .ok = config_word_ok, \
	    .bad = k " must not be empty, start with '-' or hold blanks")

static const struct config_entry config_kube_entries[] = {
	CONFIG_FIELD("name", CONFIG_STRING, struct cfg_kube_cluster, name, .ok = config_label_ok,
	    .bad = "cluster name \"%s\" must be 1 to 63 lowercase letters, digits or '-', "
	    "not starting or ending with '-'"),
	CONFIG_LIST_FIELD("env", CONFIG_LIST, struct cfg_kube_cluster, env, nenv,
	    .ok = config_kube_env_ok,
	    .bad = "NAME or NAME=VALUE (not PATH, HOME, KUBECONFIG, LANG or TERM)"),
	CONFIG_FIELD("kubeconfig", CONFIG_STRING, struct cfg_kube_cluster, kubeconfig,
	    .ok = config_word_ok,
	    .bad = "kubeconfig must not be empty, start with '-' or hold blanks",
	    .parse = config_check_kubeconfig),
	CONFIG_KUBE_PATH("context", context),
	CONFIG_KUBE_PATH("kubectl", kubectl),
	CONFIG_KUBE_PATH("cache_dir", cache_dir),
	CONFIG_INT("timeout", CONFIG_DURATION, struct cfg_kube_cluster, timeout, 1, 600),
	CONFIG_ENUM_FIELD("transport", struct cfg_kube_cluster, transport,
	    .names = config_kube_transports, .bad = "transport must be native or kubectl"),
	CONFIG_INT("keepalive", CONFIG_DURATION, struct cfg_kube_cluster, keepalive, 1, 3600),
	CONFIG_END
};

/* targets.kubernetes: a list of clusters, each {name, kubeconfig, context, ...}. */
static void
config_parse_target_kube(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;
	struct cfg_kube_cluster *k;
	yaml_node_item_t *item;
	yaml_node_t *in;
	size_t i;

	if (!config_list_alloc(p, n, "targets.kubernetes must be a list of clusters", (void **)&c->kube,
	    sizeof *c->kube))
		return;
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		k = &c->kube[c->nkube++];
		k->timeout = 10;
		k->keepalive = 30;
		if ((in = config_list_map(p, *item, "each targets.kubernetes entry must be a "
		    "mapping with a name", &k->line)) == NULL)
			continue;
		config_walk_map(p, in, "targets.kubernetes entry", config_kube_entries, k);
		if (k->name == NULL) {
			config_error(p, in, "targets.kubernetes entry has no name");
			continue;
		}
		/* Every earlier cluster of the name is reported, not only the first. */
		for (i = 0; (i = CONFIG_NAME_FIND(struct cfg_kube_cluster, c->kube, c->nkube,
		    i)) + 1 < c->nkube; i++)
			config_error(p, in, "cluster \"%s\" is already defined at line %d",
			    k->name, c->kube[i].line);
		if (k->kubectl == NULL)
			k->kubectl = config_strdup(p, "kubectl");
	}
}

const struct config_entry config_target_entries[] = {
	CONFIG_CALL_FIELD("local", config_parse_target_local),
	CONFIG_CALL_FIELD("kubernetes", config_parse_target_kube),
	CONFIG_END
};

/*
 * Fill in each cluster's cache_dir: ".kube/NAME" inside the recordings
 * directory, the one place the broker must be able to write anyway (a
 * read-only root with only the recordings volume writable still works).
 */
void
config_kube_defaults(struct config_parse *p)
{
	struct config *c = p->c;
	size_t i;

	for (i = 0; i < c->nkube; i++) {
		if (c->kube[i].cache_dir != NULL || c->kube[i].name == NULL ||
		    c->recordings == NULL)
			continue;
		if (asprintf(&c->kube[i].cache_dir, "%s/.kube/%s", c->recordings,
		    c->kube[i].name) < 0) {
			c->kube[i].cache_dir = NULL;
			p->oom = 1;
		}
	}
}

/* Free the targets. */
void
config_free_targets(struct config *c)
{
	size_t i;

	for (i = 0; i < c->nkube; i++) {
		free(c->kube[i].name);
		free(c->kube[i].kubeconfig);
		free(c->kube[i].context);
		free(c->kube[i].kubectl);
		free(c->kube[i].cache_dir);
		config_free_strings(c->kube[i].env, c->kube[i].nenv);
	}
	free(c->kube);
	free(c->local.shell);
	free(c->local.user);
}
