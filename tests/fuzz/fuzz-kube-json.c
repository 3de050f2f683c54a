/*
 * libFuzzer harness for the Kubernetes JSON the broker reads from kubectl:
 * any bytes as a Pod, a PodList and a workload's selector. Never a crash;
 * a parsed pod has a name and a NULL-terminated container list, and a
 * selector is made only of the characters labels may hold.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_pod(const struct kube_pod *p)
{
	char *const *c;

	if (p->name == NULL || p->containers == NULL)
		__builtin_trap();
	for (c = p->containers; *c != NULL; c++)
		if (!kube_pod_has_container(p, *c))
			__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_pod pod, *pods = NULL;
	const char *json = (const char *)data;
	char *sel = NULL;
	size_t n = 0, i;

	if (kube_pod_parse(json, size, &pod) == 0)
		check_pod(&pod);
	kube_pod_clear(&pod);
	if (kube_pods_parse(json, size, &pods, &n) == 0)
		for (i = 0; i < n; i++)
			check_pod(&pods[i]);
	kube_pods_free(pods, n);
	if (kube_selector_parse(json, size, &sel) == 0) {
		for (i = 0; sel[i] != '\0'; i++)
			if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789-_./=,", sel[i]) == NULL)
				__builtin_trap();
		free(sel);
	}
	return 0;
}
