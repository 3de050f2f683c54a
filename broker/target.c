/*
 * Target kinds: which kind serves a target name.
 */
#include <stddef.h>

#include "target.h"

static const struct target_ops *const target_kinds[] = {
	&target_local_ops,
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
