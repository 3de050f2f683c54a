/*
 * libFuzzer harness for target names: any bytes, as the first word of an
 * ssh command, go through the target-name checks and the Kubernetes target
 * parser. Never a crash; an accepted name is made only of safe characters,
 * parses the same way again from its canonical form, and never reaches
 * kubectl's argv as an option.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/config.h"
#include "kube/kube.h"
#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char yaml[] =
    "targets:\n"
    "  local: {shell: /bin/sh, user: nobody}\n"
    "  kubernetes:\n"
    "    - {name: prod}\n"
    "    - {name: staging}\n";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config *c;
	struct kube_target t, again;
	char why[512], *s;
	size_t i;

	if (c == NULL && config_load_string("fuzz", yaml, sizeof yaml - 1, NULL, &c) != 0)
		__builtin_trap();
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	policy_target_name_ok(s);
	if (kube_target_parse(c, s, &t, why, sizeof why) == 0) {
		/* What kubectl will see: no option, no blank, no shell character. */
		if (t.ns[0] == '-' || t.name[0] == '-' || t.container[0] == '-' ||
		    !kube_label_ok(t.ns) || (t.container[0] != '\0' && !kube_label_ok(t.container)))
			__builtin_trap();
		for (i = 0; t.canonical[i] != '\0'; i++)
			if (strchr("abcdefghijklmnopqrstuvwxyz0123456789-.:/", t.canonical[i]) == NULL)
				__builtin_trap();
		/* The canonical name names the same thing. */
		if (kube_target_parse(c, t.canonical, &again, why, sizeof why) != 0 ||
		    strcmp(again.canonical, t.canonical) != 0 || again.cluster != t.cluster ||
		    again.kind != t.kind)
			__builtin_trap();
	}
	free(s);
	return 0;
}
