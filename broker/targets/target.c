/*
 * Target kinds: which kind serves a target name.
 */
#include <stddef.h>
#include <stdlib.h>

#include "targets/target.h"

static const struct target_ops *const target_kinds[TARGET_NKINDS] = {
	&target_local_ops,
	&target_kube_ops,
};

/* The i-th kind, or NULL past the last. */
const struct target_ops *
target_kind(size_t i)
{
	return i < TARGET_NKINDS ? target_kinds[i] : NULL;
}

/* Where ops is in the table; TARGET_NKINDS when it is not there. */
size_t
target_kind_index(const struct target_ops *ops)
{
	size_t i;

	for (i = 0; i < TARGET_NKINDS; i++) {
		if (target_kinds[i] == ops)
			break;
	}
	return i;
}

/* The kind that serves name, or NULL when no kind does. */
const struct target_ops *
target_find(const char *name)
{
	size_t i;

	for (i = 0; i < TARGET_NKINDS; i++) {
		if (target_kinds[i]->serves(name))
			return target_kinds[i];
	}
	return NULL;
}

/* Free a NULL-terminated array of strings from describe. */
void
target_free_pairs(char **pairs)
{
	char **p;

	if (pairs == NULL)
		return;
	for (p = pairs; *p != NULL; p++)
		free(*p);
	free(pairs);
}
