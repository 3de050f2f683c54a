/*
 * libFuzzer harness for the JSON the native Kubernetes transport reads
 * (broker/kube-json.c, broker/kube.c): any bytes as the exec status of
 * channel 3, as the Status body of a refused request, as an exec plugin's
 * ExecCredential, and as a Pod, a PodList and a workload. Never a crash;
 * an exit code is 0..255 or -1 with a message of printable bytes; a
 * selector holds only characters a label selector may.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube-json.h"
#include "kube/kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_json_cred c;
	char msg[300], err[300];
	size_t i;
	int code;

	if (kube_json_exec_status((const char *)data, size, &code, msg, sizeof msg) == 0) {
		if (code < -1 || code > 255)
			__builtin_trap();
	}
	for (i = 0; msg[i] != '\0'; i++) {
		if ((unsigned char)msg[i] < 0x20)
			__builtin_trap();
	}
	kube_json_status_message((const char *)data, size, msg, sizeof msg);
	for (i = 0; msg[i] != '\0'; i++) {
		if ((unsigned char)msg[i] < 0x20)
			__builtin_trap();
	}
	if (kube_json_exec_credential((const char *)data, size,
	    "client.authentication.k8s.io/v1", &c, err, sizeof err) == 0) {
		if (c.token == NULL && c.cert_pem == NULL)
			__builtin_trap();
		if ((c.cert_pem == NULL) != (c.key_pem == NULL))
			__builtin_trap();
		kube_json_cred_clear(&c);
	}
	{
		struct kube_pod pod, *pods = NULL;
		char *sel = NULL;
		size_t n = 0;

		if (kube_pod_parse((const char *)data, size, &pod) == 0 && pod.name == NULL)
			__builtin_trap();
		kube_pod_clear(&pod);
		if (kube_pods_parse((const char *)data, size, &pods, &n) == 0)
			kube_pods_free(pods, n);
		if (kube_selector_parse((const char *)data, size, &sel) == 0) {
			if (strspn(sel, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789._-/=,") != strlen(sel))
				__builtin_trap();
			free(sel);
		}
	}
	return 0;
}
