/*
 * libFuzzer harness for the kubeconfig reader of the native Kubernetes
 * transport (broker/kubeconfig.c): any bytes as a kubeconfig, for its
 * current context and for a named one, and as a server URL. Never a
 * crash; an accepted kubeconfig has a host and port that are safe in a
 * Host header, and a client certificate only with a key.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kubeconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether s is safe in a request head. */
static int
safe(const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return 0;
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const contexts[] = { NULL, "podgate-test" };
	struct kubeconfig kc;
	char err[512], *url, *host, *port, *prefix;
	size_t i;
	bool tls;

	for (i = 0; i < 2; i++) {
		if (kubeconfig_parse((const char *)data, size, contexts[i], "/etc/podgate", &kc,
		    err, sizeof err) == 0) {
			if (kc.host == NULL || kc.port == NULL || kc.prefix == NULL ||
			    !safe(kc.host) || !safe(kc.port) || !safe(kc.prefix))
				__builtin_trap();
			if ((kc.cert_pem != NULL || kc.cert_file != NULL) !=
			    (kc.key_pem != NULL || kc.key_file != NULL))
				__builtin_trap();
		}
		kubeconfig_clear(&kc);
	}
	if ((url = malloc(size + 1)) == NULL)
		return 0;
	memcpy(url, data, size);
	url[size] = '\0';
	if (kubeconfig_split_url(url, &tls, &host, &port, &prefix) == 0) {
		if (!safe(host) || !safe(port) || !safe(prefix) || *host == '\0')
			__builtin_trap();
		free(host);
		free(port);
		free(prefix);
	}
	free(url);
	return 0;
}
