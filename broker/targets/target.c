/*
 * Target kinds: which kind serves a target name.
 */
#include <stddef.h>
#include <stdlib.h>

#include "targets/target.h"

static const struct target_ops *const target_kinds[] = {
	&target_local_ops,
	&target_kube_ops,
};

/* The kind that serves name, or NULL when no kind does. */
const struct target_ops *
target_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof target_kinds / sizeof target_kinds[0]; i++) {
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
