/*
 * The configuration's rules: who may reach which targets, and the guard
 * of each rule (commands, watch, limits, reasons, supervision,
 * impersonation); the top-level redact list; and the checks of rules
 * against the users, groups and clusters once everything is read.
 * Patterns are compiled by policy/pattern.c in the mode of their key.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policy/config-parse.h"

/* Free a list of n watch entries. */
static void
config_free_watches(struct cfg_watch *list, size_t n)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < n; i++) {
		pattern_free(&list[i].pattern);
		free(list[i].message);
	}
	free(list);
}

/* rules[].commands.allow: also given when empty (then nothing is allowed). */
static void
config_parse_commands_allow(struct config_parse *p, yaml_node_t *n, void *obj)
{
	static const struct config_entry allow = CONFIG_LIST_FIELD("allow", CONFIG_PATTERNS,
	    struct cfg_rule, allow, nallow, .what = "commands.allow", .mode = PATTERN_ALLOW);
	struct cfg_rule *r = obj;

	r->has_allow = true;
	config_read_value(p, n, &allow, r);
}

static const struct config_entry config_commands_entries[] = {
	CONFIG_CALL_FIELD("allow", config_parse_commands_allow),
	CONFIG_LIST_FIELD("deny", CONFIG_PATTERNS, struct cfg_rule, deny, ndeny,
	    .what = "commands.deny", .mode = PATTERN_COMMAND),
	CONFIG_LIST_FIELD("approve", CONFIG_PATTERNS, struct cfg_rule, approve, napprove,
	    .what = "commands.approve", .mode = PATTERN_COMMAND),
	CONFIG_INT("approve_timeout", CONFIG_DURATION, struct cfg_rule, approve_timeout, 1,
	    7 * 86400),
	CONFIG_FIELD("self_approve", CONFIG_BOOL, struct cfg_rule, self_approve),
	CONFIG_END
};

/* rules[].commands: {allow: [...], deny: [...]}, or a list (the allow list). */
static void
config_parse_rule_commands(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;

	if (config_is_null(n))
		return;
	if (n->type == YAML_SEQUENCE_NODE) {
		config_parse_commands_allow(p, n, obj);
		return;
	}
	if (n->type != YAML_MAPPING_NODE) {
		config_error(p, n, "commands must be a mapping with allow and deny lists");
		return;
	}
	config_walk_map(p, n, "commands", config_commands_entries, r);
}

/* Whether s is a watch message: one line of at most 200 bytes. */
static int
config_message_ok(const char *s)
{
	return strpbrk(s, "\r\n") == NULL && strlen(s) <= 200;
}

static const struct config_enum config_watch_on[] = {
	{ "input", CFG_WATCH_INPUT },
	{ "output", CFG_WATCH_OUTPUT },
	{ "both", CFG_WATCH_INPUT | CFG_WATCH_OUTPUT },
	{ NULL, 0 }
};

static const struct config_enum config_watch_actions[] = {
	{ "alert", CFG_WATCH_ALERT },
	{ "terminate", CFG_WATCH_TERMINATE },
	{ NULL, 0 }
};

static const struct config_entry config_watch_entries[] = {
	CONFIG_ENUM_FIELD("on", struct cfg_watch, on, .what = "watch on",
	    .names = config_watch_on, .bad = "watch on must be input, output or both",
	    .quote = true),
	CONFIG_FIELD("pattern", CONFIG_PATTERN, struct cfg_watch, pattern,
	    .what = "watch pattern", .mode = PATTERN_LINE),
	CONFIG_ENUM_FIELD("action", struct cfg_watch, action, .what = "watch action",
	    .names = config_watch_actions, .bad = "watch action must be alert or terminate",
	    .quote = true),
	CONFIG_FIELD("message", CONFIG_STRING, struct cfg_watch, message,
	    .what = "watch message", .ok = config_message_ok,
	    .bad = "watch message must be one line of at most 200 bytes"),
	CONFIG_END
};

/*
 * rules[].watch: a list of {on, pattern, action, message}; a plain string
 * is {pattern: STRING} (on input, alert).
 */
static void
config_parse_rule_watch(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;
	yaml_node_item_t *item;
	yaml_node_t *in;
	struct cfg_watch *w;
	size_t max;

	config_free_watches(r->watch, r->nwatch);
	r->watch = NULL;
	r->nwatch = 0;
	if (config_is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		config_error(p, n, "watch must be a list of {on, pattern, action}");
		return;
	}
	max = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (max == 0)
		return;
	if ((r->watch = calloc(max, sizeof *r->watch)) == NULL) {
		p->oom = 1;
		return;
	}
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		in = config_node(p, *item);
		w = &r->watch[r->nwatch];
		memset(w, 0, sizeof *w);
		w->line = (int)in->start_mark.line + 1;
		w->on = CFG_WATCH_INPUT;
		w->action = CFG_WATCH_ALERT;
		if (in->type == YAML_SCALAR_NODE) {
			if (config_pattern(p, in, "watch pattern", PATTERN_LINE, &w->pattern))
				r->nwatch++;
			continue;
		}
		if (in->type != YAML_MAPPING_NODE) {
			config_error(p, in, "each watch must be a pattern or a mapping with on, "
			    "pattern and action");
			continue;
		}
		config_walk_map(p, in, "watch", config_watch_entries, w);
		/* A bad pattern was reported already. */
		if (!config_map_has(p, in, "pattern"))
			config_error(p, in, "watch has no pattern");
		if (w->pattern.text == NULL) {
			pattern_free(&w->pattern);
			free(w->message);
			memset(w, 0, sizeof *w);
			continue;
		}
		r->nwatch++;
	}
}

static const struct config_entry config_limits_entries[] = {
	CONFIG_INT("max_sessions", CONFIG_UINT, struct cfg_limits, max_sessions, 1, 100000),
	CONFIG_INT("max_duration", CONFIG_DURATION, struct cfg_limits, max_duration, 1,
	    30 * 86400),
	CONFIG_INT("idle_timeout", CONFIG_DURATION, struct cfg_limits, idle_timeout, 1,
	    30 * 86400),
	CONFIG_INT("max_output", CONFIG_SIZE, struct cfg_limits, max_output, 1, 1ull << 50),
	CONFIG_END
};

static const struct config_enum config_rec_failure[] = {
	{ "close", 0 },
	{ "continue", 1 },
	{ NULL, 0 }
};

static const struct config_entry config_imp_entries[] = {
	CONFIG_FIELD("user", CONFIG_STRING, struct cfg_rule, as_user, .what = "impersonate.user",
	    .ok = config_word_ok, .bad = "impersonate.user: \"%s\" is not a valid user name"),
	CONFIG_LIST_FIELD("groups", CONFIG_LIST, struct cfg_rule, as_groups, nas_groups,
	    .what = "impersonate.groups", .ok = config_word_ok, .bad = "group name"),
	CONFIG_END
};

/*
 * rules[].impersonate: {user, groups}, or true for the podgate user with
 * the user's podgate groups, or false.
 */
static void
config_parse_rule_impersonate(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;
	bool on;

	if (n->type == YAML_SCALAR_NODE) {
		if (config_bool(p, n, "impersonate", &on) == 0 && on) {
			r->impersonate = true;
			r->as_user_groups = true;
			config_free_strings(r->as_groups, r->nas_groups);
			r->as_groups = NULL;
			r->nas_groups = 0;
			free(r->as_user);
			r->as_user = config_strdup(p, "{user}");
		}
		return;
	}
	r->impersonate = true;
	config_walk_map(p, n, "impersonate", config_imp_entries, r);
	if (r->as_user == NULL)
		config_error(p, n, "impersonate needs a user (\"{user}\" is the podgate user)");
}

/* rules[].interactive_shell: a program or a list tried in order. */
static void
config_parse_rule_interactive(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct cfg_rule *r = obj;
	const char *v;

	if (n->type == YAML_SCALAR_NODE && !config_is_null(n)) {
		if ((v = config_scalar(p, n, "interactive_shell")) == NULL)
			return;
		if (!config_word_ok(v)) {
			config_error(p, n, "interactive_shell must be a path or a program name");
			return;
		}
		config_free_strings(r->interactive, r->ninteractive);
		r->ninteractive = 0;
		if ((r->interactive = calloc(1, sizeof *r->interactive)) == NULL) {
			p->oom = 1;
			return;
		}
		if ((r->interactive[0] = config_strdup(p, v)) != NULL)
			r->ninteractive = 1;
		return;
	}
	config_set_list(p, n, "interactive_shell", config_word_ok, "program",
	    &r->interactive, &r->ninteractive);
}

/* Whether s is a target name or pattern (policy/pattern.h). */
static int
config_target_ok(const char *s)
{
	return pattern_target_ok(s);
}

/* Keys of a rule. */
static const struct config_entry config_rule_entries[] = {
	CONFIG_LIST_FIELD("users", CONFIG_LIST, struct cfg_rule, users, nusers,
	    .ok = config_name_ok, .bad = "user name"),
	CONFIG_LIST_FIELD("groups", CONFIG_LIST, struct cfg_rule, groups, ngroups,
	    .ok = config_name_ok, .bad = "group name"),
	CONFIG_LIST_FIELD("targets", CONFIG_LIST, struct cfg_rule, targets, ntargets,
	    .ok = config_target_ok, .bad = "target name or pattern"),
	CONFIG_CALL_FIELD("impersonate", config_parse_rule_impersonate),
	CONFIG_FIELD("shell", CONFIG_STRING, struct cfg_rule, shell, .ok = config_word_ok,
	    .bad = "shell must be a path or a program name, or none"),
	CONFIG_CALL_FIELD("interactive_shell", config_parse_rule_interactive),
	CONFIG_CALL_FIELD("commands", config_parse_rule_commands),
	CONFIG_FIELD("pty", CONFIG_NOT, struct cfg_rule, deny_pty),
	CONFIG_FIELD("exec", CONFIG_NOT, struct cfg_rule, deny_exec),
	CONFIG_CALL_FIELD("watch", config_parse_rule_watch),
	CONFIG_FIELD("require_reason", CONFIG_BOOL, struct cfg_rule, require_reason),
	CONFIG_FIELD("limits", CONFIG_MAP, struct cfg_rule, limits, .map = config_limits_entries),
	CONFIG_ENUM_FIELD("on_recording_failure", struct cfg_rule, rec_failure_continue,
	    .names = config_rec_failure, .bad = "on_recording_failure must be close or continue"),
	CONFIG_FIELD("announce_watchers", CONFIG_BOOL, struct cfg_rule, announce_watchers),
	CONFIG_LIST_FIELD("passprompt", CONFIG_PATTERNS, struct cfg_rule, passprompt,
	    npassprompt, .mode = PATTERN_LINE),
	CONFIG_END
};

/* rules: a list of mappings, each with users or groups, and targets. */
void
config_parse_rules(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;
	struct cfg_rule *r;
	yaml_node_item_t *item;
	yaml_node_t *in;

	if (!config_list_alloc(p, n, "rules must be a list", (void **)&c->rules,
	    sizeof *c->rules))
		return;
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		r = &c->rules[c->nrules++];
		if ((in = config_list_map(p, *item, "each rule must be a mapping with users or "
		    "groups, and targets", &r->line)) == NULL)
			continue;
		config_walk_map(p, in, "rule", config_rule_entries, r);
		if (r->nusers == 0 && r->ngroups == 0)
			config_error(p, in, "rule has no users or groups");
		if (r->ntargets == 0)
			config_error(p, in, "rule has no targets");
	}
}

/* Where a redact entry stands while its keys are read. */
struct config_redact_parse {
	yaml_node_t *pattern;
	const char *kind;
};

static const struct config_entry config_redact_entries[] = {
	CONFIG_FIELD("pattern", CONFIG_NODE, struct config_redact_parse, pattern),
	CONFIG_FIELD("kind", CONFIG_TEXT, struct config_redact_parse, kind,
	    .what = "redact kind"),
	CONFIG_END
};

/* Whether k is a redact entry's kind: 1..CFG_REDACT_KIND_MAX of [a-z0-9-]. */
static bool
config_kind_ok(const char *k)
{
	size_t n = strlen(k);

	return n > 0 && n <= CFG_REDACT_KIND_MAX &&
	    strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* Compile one redact entry; false after reporting a problem. */
static bool
config_redact_entry(struct config_parse *p, yaml_node_t *pn, const char *v, const char *kind,
    struct cfg_redact *e)
{
	char err[512];
	int r;

	memset(e, 0, sizeof *e);
	/* The pattern's text is checked first, then the kind, then the expression. */
	if (pattern_text_check(v, err, sizeof err) == 0 && kind != NULL && !config_kind_ok(kind)) {
		config_error(p, pn, "redact: kind \"%s\" is not valid: use 1 to %d of a-z, 0-9 "
		    "and -", kind, CFG_REDACT_KIND_MAX);
		return false;
	}
	if ((r = pattern_compile(&e->pattern, PATTERN_REDACT, v, err, sizeof err)) == -ENOMEM) {
		p->oom = 1;
		return false;
	}
	if (r < 0) {
		if (strncmp(err, "bad regular expression", 22) == 0)
			config_error(p, pn, "%s", err);
		else
			config_error(p, pn, "redact: %s", err);
		return false;
	}
	if ((e->kind = config_strdup(p, kind != NULL ? kind : "custom")) == NULL) {
		pattern_free(&e->pattern);
		return false;
	}
	e->line = e->pattern.line = (int)pn->start_mark.line + 1;
	return true;
}

/*
 * redact: a list of patterns added to the built-in detectors, each a
 * string or {pattern, kind}.
 */
void
config_parse_redact(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;
	struct config_redact_parse rp;
	yaml_node_item_t *item;
	yaml_node_t *in;
	const char *v;
	size_t max;

	if (config_is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		config_error(p, n, "redact must be a list of patterns");
		return;
	}
	max = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (max == 0 || c->redact != NULL)
		return;
	if ((c->redact = calloc(max, sizeof *c->redact)) == NULL) {
		p->oom = 1;
		return;
	}
	for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
		in = config_node(p, *item);
		memset(&rp, 0, sizeof rp);
		if (in->type == YAML_MAPPING_NODE) {
			config_walk_map(p, in, "redact entry", config_redact_entries, &rp);
			if (rp.pattern == NULL) {
				config_error(p, in, "redact entry has no pattern");
				continue;
			}
		} else if (in->type == YAML_SCALAR_NODE) {
			rp.pattern = in;
		} else {
			config_error(p, in, "each redact entry must be a pattern or a mapping "
			    "with pattern and kind");
			continue;
		}
		if ((v = config_scalar(p, rp.pattern, "redact pattern")) == NULL)
			continue;
		if (config_redact_entry(p, rp.pattern, v, rp.kind, &c->redact[c->nredact]))
			c->nredact++;
		else if (p->oom)
			return;
	}
}

/* Whether a user with this name exists in a config still being checked. */
static int
config_has_user(const struct config *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nusers; i++) {
		if (c->users[i].name != NULL && strcmp(c->users[i].name, name) == 0)
			return 1;
	}
	return 0;
}

/* Whether a group is known: a user is in it, or the top-level groups list names it. */
static int
config_has_group(const struct config *c, const char *name)
{
	size_t i, j;

	for (i = 0; i < c->ngroups; i++) {
		if (c->groups[i].name != NULL && strcmp(c->groups[i].name, name) == 0)
			return 1;
	}
	for (i = 0; i < c->nusers; i++) {
		for (j = 0; j < c->users[i].ngroups; j++) {
			if (strcmp(c->users[i].groups[j], name) == 0)
				return 1;
		}
	}
	return 0;
}

/*
 * Check a rule's target pattern against targets.kubernetes: a Kubernetes
 * pattern (one with '/') must name its cluster, since policy matches the
 * canonical name "CLUSTER:NS/POD"; and its cluster part must be one of the
 * clusters, or a glob matching at least one.
 */
static void
config_check_pattern(struct config_parse *p, const struct cfg_rule *r, const char *pat)
{
	const struct config *c = p->c;
	const char *colon = strchr(pat, ':');
	char cluster[PATTERN_TARGET_MAX + 1], known[512] = "";
	size_t i, len;

	for (i = 0; i < c->nkube; i++) {
		if (c->kube[i].name == NULL)
			continue;
		len = strlen(known);
		snprintf(known + len, sizeof known - len, "%s%s", len > 0 ? ", " : "",
		    c->kube[i].name);
	}
	if (colon == NULL) {
		if (strchr(pat, '/') == NULL)
			return;		/* "local", or a glob of it */
		if (c->nkube > 0 && c->kube[0].name != NULL)
			config_error_at(p, p->name, (size_t)r->line, "rule target \"%s\" names no "
			    "cluster and would match nothing: write \"%s:%s\" or \"*:%s\"", pat,
			    c->kube[0].name, pat, pat);
		else
			config_error_at(p, p->name, (size_t)r->line, "rule target \"%s\" names no "
			    "cluster, and targets.kubernetes defines none", pat);
		return;
	}
	len = (size_t)(colon - pat);
	memcpy(cluster, pat, len);
	cluster[len] = '\0';
	for (i = 0; i < c->nkube; i++) {
		if (c->kube[i].name != NULL && pattern_target_match(cluster, c->kube[i].name))
			return;
	}
	config_error_at(p, p->name, (size_t)r->line, "rule target \"%s\" %s \"%s\" (%s%s)",
	    pat, strpbrk(cluster, "*?[") != NULL ? "matches no cluster with" :
	    "names unknown cluster", cluster, known[0] != '\0' ? "clusters: " :
	    "targets.kubernetes defines none", known);
}

/*
 * Check the rules once everything is read. A rule naming an unknown user
 * is a warning: it grants nothing, so it fails closed, but it is most
 * likely a typo. A rule naming a group that no user is in and the
 * top-level groups list does not name is an error (a typo there would
 * silently grant nothing to the people meant), and so is a Kubernetes
 * target pattern without a cluster or naming an unknown one.
 */
void
config_check_rules(struct config_parse *p)
{
	struct config *c = p->c;
	struct cfg_rule *r;
	size_t i, j;

	for (i = 0; i < c->nrules; i++) {
		r = &c->rules[i];
		for (j = 0; j < r->nusers; j++) {
			if (!config_has_user(c, r->users[j]))
				config_warn_line(p, r->line, "rule names unknown user \"%s\"",
				    r->users[j]);
		}
		for (j = 0; j < r->ngroups; j++) {
			if (!config_has_group(c, r->groups[j]))
				config_error_at(p, p->name, (size_t)r->line, "rule names unknown "
				    "group \"%s\": no user is in it (name it under the top-level "
				    "groups list to keep it without members)", r->groups[j]);
		}
		for (j = 0; j < r->ntargets; j++)
			config_check_pattern(p, r, r->targets[j]);
		for (j = 0; j < r->ntargets; j++) {
			if (strcmp(r->targets[j], "local") == 0 && !c->local.enabled)
				config_warn_line(p, r->line, "rule names target \"local\" but "
				    "targets.local is not configured; it grants nothing");
		}
	}
}

/* Free the rules and the redact list. */
void
config_free_rules(struct config *c)
{
	size_t i;

	for (i = 0; i < c->nrules; i++) {
		config_free_strings(c->rules[i].users, c->rules[i].nusers);
		config_free_strings(c->rules[i].groups, c->rules[i].ngroups);
		config_free_strings(c->rules[i].targets, c->rules[i].ntargets);
		config_free_patterns(c->rules[i].allow, c->rules[i].nallow);
		config_free_patterns(c->rules[i].deny, c->rules[i].ndeny);
		config_free_patterns(c->rules[i].approve, c->rules[i].napprove);
		config_free_patterns(c->rules[i].passprompt, c->rules[i].npassprompt);
		config_free_watches(c->rules[i].watch, c->rules[i].nwatch);
		free(c->rules[i].as_user);
		config_free_strings(c->rules[i].as_groups, c->rules[i].nas_groups);
		free(c->rules[i].shell);
		config_free_strings(c->rules[i].interactive, c->rules[i].ninteractive);
	}
	free(c->rules);
	for (i = 0; i < c->nredact; i++) {
		pattern_free(&c->redact[i].pattern);
		free(c->redact[i].kind);
	}
	free(c->redact);
}
