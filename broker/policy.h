/*
 * Policy: which user may reach which target. Deny unless a rule allows.
 */
#ifndef PODGATE_POLICY_H
#define PODGATE_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/*
 * The first rule that grants user access to target, or NULL. Target is
 * the canonical target name ("local", or later "cluster:ns/pod/container").
 */
const struct cfg_rule *policy_match(const struct config *c, const struct cfg_user *u,
    const char *target);

/*
 * The names of the targets the user may reach, for the picker: a
 * NULL-terminated array the caller frees with policy_free_list.
 */
char **policy_targets(const struct config *c, const struct cfg_user *u);
void policy_free_list(char **list);

/* Whether name is a syntactically valid target name (no shell or option tricks). */
bool policy_target_name_ok(const char *name);

#endif
