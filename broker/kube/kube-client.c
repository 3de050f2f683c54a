/*
 * The native Kubernetes client: clusters (kubeconfig, TLS context), the
 * requests it writes, the spare connection and one GET on a private loop.
 * Credentials are kube-auth.c's, connections kube-conn.c's. Nothing here
 * blocks the loop but the reading of small local files (a kubeconfig, a
 * token file).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "kube/kube-client-int.h"
#include "kube/kube-client.h"
#include "kube/kube-json.h"
#include "kube/kube.h"
#include "kube/kubeconfig.h"
#include "base/log.h"

struct kube_client *kube_clients;
static bool kube_client_quiet;	/* a helper on a terminal: no log lines */

/* ---- TLS context ---- */

/* The first OpenSSL error as text, clearing the queue. */
const char *
kube_ssl_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "unknown error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* Add every certificate of a PEM bundle to the store. Returns how many. */
static int
kube_add_pem_certs(X509_STORE *store, const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *x;
	int n = 0;

	if (bio == NULL)
		return 0;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (X509_STORE_add_cert(store, x) == 1)
			n++;
		X509_free(x);
	}
	ERR_clear_error();
	BIO_free(bio);
	return n;
}

/* Load a certificate chain from PEM into ctx. */
static int
kube_use_cert_pem(SSL_CTX *ctx, const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *x, *extra;
	int ok = 0;

	if (bio == NULL)
		return 0;
	if ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		ok = SSL_CTX_use_certificate(ctx, x);
		X509_free(x);
		while (ok && (extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
			if (!SSL_CTX_add_extra_chain_cert(ctx, extra))
				X509_free(extra);
		}
	}
	ERR_clear_error();
	BIO_free(bio);
	return ok;
}

/* Load a private key from PEM into ctx. */
static int
kube_use_key_pem(SSL_CTX *ctx, const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *k;
	int ok = 0;

	if (bio == NULL)
		return 0;
	if ((k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) != NULL) {
		ok = SSL_CTX_use_PrivateKey(ctx, k);
		EVP_PKEY_free(k);
	}
	BIO_free(bio);
	return ok;
}

static void kube_client_error(struct kube_client *cl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Say why the client cannot be used (out of memory says so too, never leaving it unset). */
static void
kube_client_error(struct kube_client *cl, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	free(cl->error);
	cl->error = msg != NULL ? msg : strdup("out of memory");
}

/* Make the cluster's TLS context. Returns 0 or -EINVAL with cl->error set. */
static int
kube_client_tls(struct kube_client *cl)
{
	static const unsigned char alpn[] = "\x08http/1.1";
	struct kubeconfig *kc = &cl->kc;
	char e[256];

	if ((cl->ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(cl->ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(cl->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_protos(cl->ctx, alpn, sizeof alpn - 1);
	if (kc->insecure) {
		SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_NONE, NULL);
		if (!kube_client_quiet)
			log_warn("cluster %s: insecure-skip-tls-verify is set in its kubeconfig: "
			    "the API server's certificate is not checked", cl->name);
	} else {
		SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_PEER, NULL);
		if (kc->ca_pem != NULL) {
			if (kube_add_pem_certs(SSL_CTX_get_cert_store(cl->ctx), kc->ca_pem,
			    kc->ca_len) == 0) {
				kube_client_error(cl, "certificate-authority-data holds no "
				    "certificate");
				return -EINVAL;
			}
		} else if (kc->ca_file != NULL) {
			if (SSL_CTX_load_verify_locations(cl->ctx, kc->ca_file, NULL) != 1) {
				kube_client_error(cl, "cannot load the CA %s: %s", kc->ca_file,
				    kube_ssl_error(e, sizeof e));
				return -EINVAL;
			}
		} else {
			SSL_CTX_set_default_verify_paths(cl->ctx);
		}
	}
	if (kc->cert_pem != NULL && !kube_use_cert_pem(cl->ctx, kc->cert_pem, kc->cert_len)) {
		kube_client_error(cl, "client-certificate-data is not a PEM certificate");
		return -EINVAL;
	}
	if (kc->cert_file != NULL &&
	    SSL_CTX_use_certificate_chain_file(cl->ctx, kc->cert_file) != 1) {
		kube_client_error(cl, "cannot load the client certificate %s: %s", kc->cert_file,
		    kube_ssl_error(e, sizeof e));
		return -EINVAL;
	}
	if (kc->key_pem != NULL && !kube_use_key_pem(cl->ctx, kc->key_pem, kc->key_len)) {
		kube_client_error(cl, "client-key-data is not a PEM private key");
		return -EINVAL;
	}
	if (kc->key_file != NULL &&
	    SSL_CTX_use_PrivateKey_file(cl->ctx, kc->key_file, SSL_FILETYPE_PEM) != 1) {
		kube_client_error(cl, "cannot load the client key %s: %s", kc->key_file,
		    kube_ssl_error(e, sizeof e));
		return -EINVAL;
	}
	if ((kc->key_pem != NULL || kc->key_file != NULL) &&
	    SSL_CTX_check_private_key(cl->ctx) != 1) {
		kube_client_error(cl, "the client key does not match the client certificate");
		return -EINVAL;
	}
	return 0;
fail:
	kube_client_error(cl, "cannot make a TLS context: %s", kube_ssl_error(e, sizeof e));
	return -EINVAL;
}

/* ---- clients ---- */

/* Whether two strings are equal, NULL equal to NULL. */
static bool
kube_streq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Make a client for k. Never fails but for memory: errors go to cl->error. */
static struct kube_client *
kube_client_new(const struct cfg_kube_cluster *k, const struct stat *st)
{
	struct kube_client *cl;
	char err[512] = "";
	int r;

	if ((cl = calloc(1, sizeof *cl)) == NULL)
		return NULL;
	cl->name = strdup(k->name);
	cl->path = k->kubeconfig != NULL ? strdup(k->kubeconfig) : NULL;
	cl->context = k->context != NULL ? strdup(k->context) : NULL;
	cl->timeout = k->timeout;
	if (st != NULL) {
		cl->mtime = st->st_mtim;
		cl->size = st->st_size;
		cl->ino = st->st_ino;
	}
	if (k->kubeconfig != NULL)
		r = kubeconfig_load(k->kubeconfig, k->context, &cl->kc, err, sizeof err);
	else
		r = kubeconfig_in_cluster(NULL, &cl->kc, err, sizeof err);
	if (r == -ENOMEM)
		snprintf(err, sizeof err, "out of memory");
	if (r < 0) {
		kube_client_error(cl, "%s", err);
	} else if (cl->kc.unsupported != NULL) {
		kube_client_error(cl, "%s in its kubeconfig is not supported by transport: native; "
		    "use transport: kubectl", cl->kc.unsupported);
	} else {
		snprintf(cl->where, sizeof cl->where, strchr(cl->kc.host, ':') != NULL ?
		    "[%s]:%s" : "%s:%s", cl->kc.host, cl->kc.port);
		snprintf(cl->hosthdr, sizeof cl->hosthdr, "%s", cl->where);
		if (cl->kc.tls)
			kube_client_tls(cl);
		if (cl->kc.token != NULL && (cl->token = strdup(cl->kc.token)) == NULL)
			kube_client_error(cl, "out of memory");
	}
	if (cl->error != NULL && !kube_client_quiet)
		log_error("cluster %s: cannot use transport: native: %s", cl->name, cl->error);
	cl->next = kube_clients;
	kube_clients = cl;
	return cl;
}

/* The client of cluster k. */
int
kube_client_get(const struct cfg_kube_cluster *k, struct kube_client **out, char *err,
    size_t errlen)
{
	struct kube_client *cl;
	struct stat st;
	bool have = false;

	*out = NULL;
	if (k->kubeconfig != NULL && stat(k->kubeconfig, &st) == 0)
		have = true;
	for (cl = kube_clients; cl != NULL; cl = cl->next) {
		if (cl->stale || strcmp(cl->name, k->name) != 0 ||
		    !kube_streq(cl->path, k->kubeconfig) || !kube_streq(cl->context, k->context))
			continue;
		if (have && (st.st_mtim.tv_sec != cl->mtime.tv_sec ||
		    st.st_mtim.tv_nsec != cl->mtime.tv_nsec || st.st_size != cl->size ||
		    st.st_ino != cl->ino)) {
			cl->stale = true;	/* sessions may still use it: it stays */
			continue;
		}
		break;
	}
	if (cl == NULL && (cl = kube_client_new(k, have ? &st : NULL)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	cl->timeout = k->timeout;
	if (cl->error != NULL) {
		snprintf(err, errlen, "cluster %s cannot be used: %s", cl->name, cl->error);
		return -EINVAL;
	}
	*out = cl;
	return 0;
}

/* Log nothing (a helper whose stderr is the user's terminal). */
void
kube_client_set_quiet(bool quiet)
{
	kube_client_quiet = quiet;
}

/* Check every native cluster of c. */
void
kube_client_check_config(const struct config *c)
{
	struct kube_client *cl;
	char err[512];
	size_t i;

	for (i = 0; c != NULL && i < c->nkube; i++) {
		if (c->kube[i].transport == CFG_KUBE_NATIVE)
			kube_client_get(&c->kube[i], &cl, err, sizeof err);
	}
}

const char *
kube_client_where(const struct kube_client *cl)
{
	return cl->where;
}

const char *
kube_client_name(const struct kube_client *cl)
{
	return cl->name;
}

bool
kube_client_has_plugin(const struct kube_client *cl)
{
	return cl->kc.exec_command != NULL;
}

static bool
kube_header_ok(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	}
	return true;
}

/* Build a request head. */
int
kube_client_request(struct kube_client *cl, const char *method, const char *path,
    const struct kube_ident *id, const char *extra, struct buf *out)
{
	const char *token = cl->cred_token != NULL ? cl->cred_token : cl->token;

	if ((id != NULL && id->user != NULL && !kube_header_ok(id->user)) ||
	    (token != NULL && !kube_header_ok(token)))
		return -EINVAL;
	buf_printf(out, "%s %s%s HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: podgate/" PODGATE_VERSION "\r\n", method, cl->kc.prefix, path,
	    cl->hosthdr);
	if (token != NULL)
		buf_printf(out, "Authorization: Bearer %s\r\n", token);
	if (id != NULL && id->user != NULL) {
		buf_printf(out, "Impersonate-User: %s\r\n", id->user);
		for (char *const *g = id->groups; g != NULL && *g != NULL; g++) {
			if (!kube_header_ok(*g))
				return -EINVAL;
			buf_printf(out, "Impersonate-Group: %s\r\n", *g);
		}
	}
	if (extra != NULL)
		buf_str(out, extra);
	buf_str(out, "\r\n");
	return out->oom ? -ENOMEM : 0;
}
