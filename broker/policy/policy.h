/*
 * Policy: which user may reach which target. Deny unless a rule allows.
 */
#ifndef PODGATE_POLICY_H
#define PODGATE_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/config.h"

/*
 * The first rule that grants user access to target, or NULL. Target is
 * the canonical target name ("local", or later "cluster:ns/pod/container").
 * A rule applies to u when it names u or one of u's groups, and grants
 * target when one of its patterns matches (PATTERN_TARGET,
 * policy/pattern.h: '*', '?' and '[...]' never match '/'). Names failing
 * policy_target_name_ok are denied, and so is "local" when targets.local
 * is not configured. Whether other targets exist is the caller's check.
 */
const struct cfg_rule *policy_match(const struct config *c, const struct cfg_user *u,
    const char *target);

/*
 * The pattern by which policy_match would grant user u the target: the
 * first of the first granting rule's targets that matches, or NULL (for
 * refusals that say which rule nearly applies).
 */
const char *policy_match_pattern(const struct config *c, const struct cfg_user *u,
    const char *target);

/* Whether rule r applies to user u: by name, or by one of u's groups. */
bool policy_rule_applies(const struct cfg_rule *r, const struct cfg_user *u);

/*
 * The targets the user may reach that the configuration alone names:
 * "local", when configured and granted (Kubernetes pods are listed by
 * the picker, which asks the API server). A NULL-terminated array the
 * caller frees with policy_free_list; never patterns. An empty list is
 * an array holding only NULL; NULL means out of memory.
 */
char **policy_targets(const struct config *c, const struct cfg_user *u);
void policy_free_list(char **list);

/*
 * Whether name is a syntactically valid target name (no shell or option
 * tricks): 1..253 characters of [A-Za-z0-9._:/-]; the parts between ':'
 * and '/' are non-empty, do not start with '-' and are not "."; no "..".
 */
bool policy_target_name_ok(const char *name);

#endif
