/*
 * A kubeconfig read the way client-go reads it, for the native transport:
 * the chosen context's cluster (server URL, CA, tls-server-name,
 * insecure-skip-tls-verify) and user (token, tokenFile, client
 * certificate and key as files or -data, an exec credential plugin), or
 * the in-cluster service account. Anything the native transport does not
 * speak (auth-provider, basic auth, proxy-url, ...) is reported so that
 * the cluster can be refused with one line.
 */
#ifndef PODGATE_KUBECONFIG_H
#define PODGATE_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define KUBECONFIG_MAX (4u * 1024 * 1024)
#define KUBECONFIG_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kubeconfig {
	char *server;		/* the URL as written */
	bool tls;		/* https */
	char *host;		/* without brackets */
	char *port;		/* "443" when not written */
	char *prefix;		/* path before /api, "" usually */
	char *context;		/* the context used ("" in-cluster) */
	char *cluster;		/* its cluster's name */
	char *user;		/* its user's name */
	/* TLS */
	char *ca_pem;		/* certificate-authority-data, decoded (PEM), or NULL */
	size_t ca_len;
	char *ca_file;		/* certificate-authority (absolute), or NULL */
	char *server_name;	/* tls-server-name, or NULL */
	bool insecure;		/* insecure-skip-tls-verify: true */
	char *cert_pem, *key_pem;	/* client-certificate-data, client-key-data */
	size_t cert_len, key_len;
	char *cert_file, *key_file;	/* client-certificate, client-key */
	/* bearer token */
	char *token;		/* token, or NULL */
	char *token_file;	/* tokenFile (absolute), or NULL */
	/* exec credential plugin */
	char *exec_command;	/* NULL: none */
	char **exec_args;	/* NULL-terminated (may be NULL) */
	char **exec_env;	/* "NAME=VALUE", NULL-terminated (may be NULL) */
	char *exec_api_version;	/* client.authentication.k8s.io/v1 or v1beta1 */
	bool exec_cluster_info;	/* provideClusterInfo */
	/* set when something is not supported natively: what it is */
	char *unsupported;
};

/*
 * Read kubeconfig text for context (NULL: current-context). dir is the
 * directory of the file, for relative paths (NULL: the working
 * directory). Returns 0 with *kc filled (check kc->unsupported), or
 * -EINVAL with a one-line reason in err, or -ENOMEM. *kc is cleared on
 * entry and must be freed with kubeconfig_clear in every case.
 */
int kubeconfig_parse(const char *text, size_t len, const char *context, const char *dir,
    struct kubeconfig *kc, char *err, size_t errlen);

/* Read the file at path (at most KUBECONFIG_MAX bytes) as kubeconfig_parse does. */
int kubeconfig_load(const char *path, const char *context, struct kubeconfig *kc,
    char *err, size_t errlen);

/*
 * The in-cluster configuration: KUBERNETES_SERVICE_HOST and _PORT from
 * the environment, the token file and ca.crt in sa_dir (NULL:
 * KUBECONFIG_SA_DIR). Returns 0, or -EINVAL with a reason in err.
 */
int kubeconfig_in_cluster(const char *sa_dir, struct kubeconfig *kc, char *err, size_t errlen);

/* Free what kc holds (secrets wiped) and clear it. */
void kubeconfig_clear(struct kubeconfig *kc);

/*
 * Split a server URL into tls, host, port and prefix (new strings).
 * Returns 0 or -EINVAL.
 */
int kubeconfig_split_url(const char *url, bool *tls, char **host, char **port, char **prefix);

#endif
