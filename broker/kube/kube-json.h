/*
 * JSON read from Kubernetes, through jansson: objects for kubectl's
 * answers (kube.c) and, for the native transport, the exec
 * stream's status (a metav1.Status on channel 3), the Status body of a
 * refused request, and an exec credential plugin's ExecCredential.
 */
#ifndef PODGATE_KUBE_JSON_H
#define PODGATE_KUBE_JSON_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

/*
 * Load a JSON object of at most max bytes with jansson's flags
 * (JSON_REJECT_DUPLICATES, ...). NULL when json is empty or longer, not
 * JSON, or not an object.
 */
json_t *kube_json_object(const char *json, size_t len, size_t max, size_t flags);

/*
 * Read the exec status. Returns 0 with *code the exit status ("Success":
 * 0; "NonZeroExitCode" with an ExitCode cause: that code, 0..255), or
 * with *code -1 and the status' message in msg (another failure).
 * Returns -EINVAL when json is not a Status object; msg then is "".
 */
int kube_json_exec_status(const char *json, size_t len, int *code, char *msg, size_t msglen);

/*
 * The "message" of a Status body (an API error), with control characters
 * replaced by blanks. Returns 0, or -EINVAL when there is none.
 */
int kube_json_status_message(const char *json, size_t len, char *msg, size_t msglen);

/* What an exec credential plugin gave. */
struct kube_json_cred {
	char *token;		/* status.token, or NULL */
	char *cert_pem;		/* status.clientCertificateData, or NULL */
	char *key_pem;		/* status.clientKeyData, or NULL */
	time_t expires;		/* status.expirationTimestamp; 0 when none */
};

/*
 * Read an ExecCredential of api_version (client.authentication.k8s.io/v1
 * or v1beta1). Returns 0, or -EINVAL with a reason in err (wrong kind or
 * version, no token and no certificate, a certificate without a key),
 * -ENOMEM. *c is cleared on entry; free it with kube_json_cred_clear.
 */
int kube_json_exec_credential(const char *json, size_t len, const char *api_version,
    struct kube_json_cred *c, char *err, size_t errlen);

/* Free (and wipe) what c holds. */
void kube_json_cred_clear(struct kube_json_cred *c);

/* Parse an RFC 3339 time ("2024-01-02T03:04:05Z", fractions and offsets allowed); 0 if not. */
time_t kube_json_time(const char *s);

#endif
