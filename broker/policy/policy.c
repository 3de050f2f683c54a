/*
 * Policy: deny unless a rule allows. A rule applies to a user named in its
 * users or holding one of its groups; it grants the targets whose names
 * match one of its patterns.
 */
#include <stdlib.h>
#include <string.h>

#include "policy/pattern.h"
#include "policy/policy.h"

#define POLICY_NAME_MAX 253

/* Whether s is one of the n strings in list. */
static bool
policy_in_list(char *const *list, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(list[i], s) == 0)
			return true;
	}
	return false;
}

/* Whether rule r applies to user u: by name, or by one of u's groups. */
bool
policy_rule_applies(const struct cfg_rule *r, const struct cfg_user *u)
{
	size_t i;

	if (policy_in_list(r->users, r->nusers, u->name))
		return true;
	for (i = 0; i < u->ngroups; i++) {
		if (policy_in_list(r->groups, r->ngroups, u->groups[i]))
			return true;
	}
	return false;
}

/*
 * The first of rule r's patterns that matches target, or NULL
 * (PATTERN_TARGET: '*' never crosses '/').
 */
static const char *
policy_rule_pattern(const struct cfg_rule *r, const char *target)
{
	size_t i;

	for (i = 0; i < r->ntargets; i++) {
		if (pattern_target_match(r->targets[i], target))
			return r->targets[i];
	}
	return NULL;
}

/* Whether one of rule r's patterns matches target. */
static bool
policy_rule_grants(const struct cfg_rule *r, const char *target)
{
	return policy_rule_pattern(r, target) != NULL;
}

/*
 * The first rule granting u access to target. Invalid target names are
 * denied, and so is "local" when targets.local is not configured.
 */
const struct cfg_rule *
policy_match(const struct config *c, const struct cfg_user *u, const char *target)
{
	size_t i;

	if (c == NULL || u == NULL || u->name == NULL || target == NULL ||
	    !policy_target_name_ok(target))
		return NULL;
	if (strcmp(target, "local") == 0 && !c->local.enabled)
		return NULL;
	for (i = 0; i < c->nrules; i++) {
		if (policy_rule_applies(&c->rules[i], u) &&
		    policy_rule_grants(&c->rules[i], target))
			return &c->rules[i];
	}
	return NULL;
}

/* The pattern of the first granting rule that matches target. */
const char *
policy_match_pattern(const struct config *c, const struct cfg_user *u, const char *target)
{
	const struct cfg_rule *r = policy_match(c, u, target);

	return r != NULL ? policy_rule_pattern(r, target) : NULL;
}

/*
 * List "local" when u may reach it. Kubernetes targets are not listed
 * here: which pods exist is the API server's to say, and the picker
 * (session/session-pick.c) asks it.
 */
char **
policy_targets(const struct config *c, const struct cfg_user *u)
{
	static const char *const existing[] = { "local" };
	char **list;
	size_t i, n = 0;

	if ((list = calloc(sizeof existing / sizeof existing[0] + 1, sizeof *list)) == NULL)
		return NULL;
	for (i = 0; i < sizeof existing / sizeof existing[0]; i++) {
		if (policy_match(c, u, existing[i]) == NULL)
			continue;
		if ((list[n] = strdup(existing[i])) == NULL) {
			policy_free_list(list);
			return NULL;
		}
		n++;
	}
	return list;
}

/* Free a list from policy_targets. */
void
policy_free_list(char **list)
{
	char **p;

	if (list == NULL)
		return;
	for (p = list; *p != NULL; p++)
		free(*p);
	free(list);
}

/*
 * Whether name is a valid target name: 1..253 of [A-Za-z0-9._:/-]; the
 * parts between ':' and '/' are not empty, do not start with '-' (so no
 * part reads as an option to kubectl) and are not "." or "..", and ".."
 * appears nowhere.
 */
bool
policy_target_name_ok(const char *name)
{
	size_t i, len, part = 0;

	if (name == NULL)
		return false;
	len = strnlen(name, POLICY_NAME_MAX + 1);
	if (len == 0 || len > POLICY_NAME_MAX || strstr(name, "..") != NULL)
		return false;
	for (i = 0; i <= len; i++) {
		if (name[i] == '\0' || name[i] == '/' || name[i] == ':') {
			if (i == part || name[part] == '-' ||
			    (i - part == 1 && name[part] == '.'))
				return false;
			part = i + 1;
			continue;
		}
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789._-", name[i]) == NULL)
			return false;
	}
	return true;
}
