/*
 * libFuzzer harness for the configuration parser and the policy on top of
 * it: any bytes must give a valid config or reported errors, never a
 * crash, a leak or a half-built config.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "policy/config.h"
#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	struct config *c = NULL;
	char **list;
	size_t i;
	int r;

	if (devnull == NULL)
		devnull = fopen("/dev/null", "w");
	r = config_load_string("fuzz", (const char *)data, size, devnull, &c);
	if ((r == 0) != (c != NULL))
		__builtin_trap();
	if (c == NULL)
		return 0;
	for (i = 0; i < c->nrules; i++) {
		if (c->rules[i].ntargets == 0 ||
		    (c->rules[i].nusers == 0 && c->rules[i].ngroups == 0))
			__builtin_trap();
	}
	for (i = 0; i < c->nusers; i++) {
		if (c->users[i].name == NULL || c->users[i].nkeys == 0 ||
		    config_find_user(c, c->users[i].name) != &c->users[i])
			__builtin_trap();
		if ((list = policy_targets(c, &c->users[i])) == NULL)
			__builtin_trap();
		policy_free_list(list);
		policy_match(c, &c->users[i], "prod:ns/pod");
		policy_match(c, &c->users[i], "local");
	}
	config_unref(c);
	return 0;
}
