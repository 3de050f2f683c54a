/*
 * Inside the native Kubernetes client (kube-client.c, kube-auth.c,
 * kube-conn.c): a cluster's client and what waits on its credentials.
 * Not for use elsewhere: kube-client.h is the interface.
 */
#ifndef PODGATE_KUBE_CLIENT_INT_H
#define PODGATE_KUBE_CLIENT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "kube/kube-client.h"
#include "kube/kube-json.h"
#include "kube/kube.h"
#include "kube/kubeconfig.h"

#define KUBE_PLUGIN_OUT_MAX (1u * 1024 * 1024)
#define KUBE_PLUGIN_ERR_MAX (4u * 1024)
#define KUBE_TOKEN_MAX (64u * 1024)
#define KUBE_CRED_SLACK 10	/* seconds before expiry a credential counts as expired */

/* Someone waiting for credentials. */
struct kube_auth_wait {
	struct kube_auth_wait *next;
	kube_client_auth_cb cb;
	void *arg;
};

/* The exec credential plugin while it runs. */
struct kube_plugin {
	struct kube_client *cl;
	uv_process_t proc;
	uv_pipe_t out, err;
	uv_timer_t timer;
	struct buf obuf, ebuf;
	unsigned handles;
	bool exited, timed_out;
	int64_t status;
	int term_signal;
};

struct kube_client {
	struct kube_client *next;
	bool stale;			/* replaced after its kubeconfig changed */
	char *name, *path, *context;	/* the key: cluster name, kubeconfig, context */
	struct timespec mtime;		/* of the kubeconfig when read */
	off_t size;
	ino_t ino;
	char *error;			/* set: the cluster cannot be used natively */
	struct kubeconfig kc;
	char where[300];		/* HOST:PORT */
	char hosthdr[300];		/* the Host header value */
	unsigned timeout;
	SSL_CTX *ctx;
	/* bearer token: static or from tokenFile */
	char *token;
	struct stat token_st;
	bool token_read;
	/* exec plugin's credential */
	char *cred_token;
	X509 *cred_cert;
	EVP_PKEY *cred_key;
	time_t cred_expires;
	bool cred_valid;
	struct kube_plugin *plugin;	/* while it runs */
	struct kube_auth_wait *waiters;
	struct kube_conn *spare;	/* a connection opened ahead for the next session */
	char last_error[512];
};

/* Every cluster's client, made on first use (kube-client.c). */
extern struct kube_client *kube_clients;

/* kube-client.c */
const char *kube_ssl_error(char *buf, size_t len);

/* kube-conn.c */
void kube_client_drop_spare(struct kube_client *cl);

#endif
