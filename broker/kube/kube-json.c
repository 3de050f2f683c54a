/*
 * Kubernetes JSON read with jansson: exec status, API errors and
 * ExecCredential objects.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "kube/kube-json.h"

#define KUBE_JSON_MAX (16u * 1024 * 1024)

/* Load a JSON object of at most max bytes. */
json_t *
kube_json_object(const char *json, size_t len, size_t max, size_t flags)
{
	json_error_t e;
	json_t *root;

	if (json == NULL || len == 0 || len > max)
		return NULL;
	root = json_loadb(json, len, flags, &e);
	if (root != NULL && !json_is_object(root)) {
		json_decref(root);
		return NULL;
	}
	return root;
}

/* What the native transport reads: an object, a key given twice refused. */
static json_t *
kube_json_load(const char *json, size_t len)
{
	return kube_json_object(json, len, KUBE_JSON_MAX, JSON_REJECT_DUPLICATES);
}

/* The string at key of object o, or NULL. */
static const char *
kube_json_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Copy s into msg with control characters as blanks. */
static void
kube_json_copy_msg(const char *s, char *msg, size_t msglen)
{
	size_t i;

	if (msglen == 0)
		return;
	for (i = 0; s != NULL && s[i] != '\0' && i + 1 < msglen; i++)
		msg[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
	msg[i] = '\0';
}

/* Read the exec status. */
int
kube_json_exec_status(const char *json, size_t len, int *code, char *msg, size_t msglen)
{
	json_t *root = kube_json_load(json, len), *causes, *c;
	const char *status, *reason, *m;
	size_t i;
	int r = -EINVAL;

	*code = -1;
	kube_json_copy_msg("", msg, msglen);
	if (root == NULL)
		return -EINVAL;
	if ((status = kube_json_str(root, "status")) == NULL)
		goto out;
	r = 0;
	if (strcmp(status, "Success") == 0) {
		*code = 0;
		goto out;
	}
	reason = kube_json_str(root, "reason");
	causes = json_object_get(json_object_get(root, "details"), "causes");
	if (reason != NULL && strcmp(reason, "NonZeroExitCode") == 0 && json_is_array(causes)) {
		json_array_foreach(causes, i, c) {
			const char *cr = kube_json_str(c, "reason");
			char *end;
			long v;

			if (cr == NULL || strcmp(cr, "ExitCode") != 0 ||
			    (m = kube_json_str(c, "message")) == NULL)
				continue;
			v = strtol(m, &end, 10);
			if (end != m && *end == '\0' && v >= 0 && v <= 255) {
				*code = (int)v;
				goto out;
			}
		}
	}
	m = kube_json_str(root, "message");
	kube_json_copy_msg(m != NULL ? m : status, msg, msglen);
out:
	json_decref(root);
	return r;
}

/* The message of a Status body. */
int
kube_json_status_message(const char *json, size_t len, char *msg, size_t msglen)
{
	json_t *root = kube_json_load(json, len);
	const char *m;
	int r = -EINVAL;

	kube_json_copy_msg("", msg, msglen);
	if (root == NULL)
		return -EINVAL;
	if ((m = kube_json_str(root, "message")) != NULL && *m != '\0') {
		kube_json_copy_msg(m, msg, msglen);
		r = 0;
	}
	json_decref(root);
	return r;
}

/* Parse an RFC 3339 time. */
time_t
kube_json_time(const char *s)
{
	struct tm tm;
	const char *p;
	long off = 0;
	time_t t;

	if (s == NULL)
		return 0;
	memset(&tm, 0, sizeof tm);
	if ((p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return 0;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
	    p[2] <= '9' && p[3] == ':' && p[4] >= '0' && p[4] <= '9' && p[5] >= '0' &&
	    p[5] <= '9') {
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 +
		    (p[5] - '0')) * 60;
		if (*p == '-')
			off = -off;
		p += 6;
	} else {
		return 0;
	}
	if (*p != '\0')
		return 0;
	if ((t = timegm(&tm)) == (time_t)-1)
		return 0;
	return t - off;
}

/* Read an ExecCredential. */
int
kube_json_exec_credential(const char *json, size_t len, const char *api_version,
    struct kube_json_cred *c, char *err, size_t errlen)
{
	json_t *root = kube_json_load(json, len), *st;
	const char *v, *token, *cert, *key, *exp;
	int r = -EINVAL;

	memset(c, 0, sizeof *c);
	if (root == NULL) {
		snprintf(err, errlen, "the plugin did not print a JSON object");
		return -EINVAL;
	}
	if ((v = kube_json_str(root, "kind")) == NULL || strcmp(v, "ExecCredential") != 0) {
		snprintf(err, errlen, "the plugin did not print an ExecCredential");
		goto out;
	}
	if ((v = kube_json_str(root, "apiVersion")) == NULL || strcmp(v, api_version) != 0) {
		snprintf(err, errlen, "the plugin printed apiVersion %.80s, %s was asked for",
		    v != NULL ? v : "(none)", api_version);
		goto out;
	}
	st = json_object_get(root, "status");
	token = kube_json_str(st, "token");
	cert = kube_json_str(st, "clientCertificateData");
	key = kube_json_str(st, "clientKeyData");
	exp = kube_json_str(st, "expirationTimestamp");
	if ((token == NULL || *token == '\0') && cert == NULL) {
		snprintf(err, errlen, "the plugin's ExecCredential has no token and no certificate");
		goto out;
	}
	if ((cert == NULL) != (key == NULL)) {
		snprintf(err, errlen, "the plugin's ExecCredential has a certificate without a key");
		goto out;
	}
	if (exp != NULL && (c->expires = kube_json_time(exp)) == 0) {
		snprintf(err, errlen, "the plugin's expirationTimestamp is not a time");
		goto out;
	}
	if ((token != NULL && *token != '\0' && (c->token = strdup(token)) == NULL) ||
	    (cert != NULL && (c->cert_pem = strdup(cert)) == NULL) ||
	    (key != NULL && (c->key_pem = strdup(key)) == NULL)) {
		kube_json_cred_clear(c);
		r = -ENOMEM;
		goto out;
	}
	r = 0;
out:
	json_decref(root);
	return r;
}

/* Free a credential. */
void
kube_json_cred_clear(struct kube_json_cred *c)
{
	if (c->token != NULL)
		OPENSSL_clear_free(c->token, strlen(c->token));
	if (c->key_pem != NULL)
		OPENSSL_clear_free(c->key_pem, strlen(c->key_pem));
	free(c->cert_pem);
	memset(c, 0, sizeof *c);
}
