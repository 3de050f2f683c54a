/*
 * The native Kubernetes client: clusters (kubeconfig, TLS context,
 * credentials, the exec credential plugin) and connections to the API
 * server driven by uv_poll on a nonblocking socket, with OpenSSL on the
 * descriptor. Nothing here blocks the loop but the reading of small local
 * files (a kubeconfig, a token file).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
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

#include "kube/kube-client.h"
#include "kube/kube-json.h"
#include "kube/kube.h"
#include "kube/kubeconfig.h"
#include "base/log.h"

#define KUBE_PLUGIN_OUT_MAX (1u * 1024 * 1024)
#define KUBE_PLUGIN_ERR_MAX (4u * 1024)
#define KUBE_TOKEN_MAX (64u * 1024)
#define KUBE_CRED_SLACK 10	/* seconds before expiry a credential counts as expired */

extern char **environ;

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
	struct kube_buf obuf, ebuf;
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

static struct kube_client *kube_clients;
static void kube_client_drop_spare(struct kube_client *cl);
static bool kube_client_quiet;	/* a helper on a terminal: no log lines */

/* ---- TLS context ---- */

/* The first OpenSSL error as text, clearing the queue. */
static const char *
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
				asprintf(&cl->error, "certificate-authority-data holds no "
				    "certificate");
				return -EINVAL;
			}
		} else if (kc->ca_file != NULL) {
			if (SSL_CTX_load_verify_locations(cl->ctx, kc->ca_file, NULL) != 1) {
				asprintf(&cl->error, "cannot load the CA %s: %s", kc->ca_file,
				    kube_ssl_error(e, sizeof e));
				return -EINVAL;
			}
		} else {
			SSL_CTX_set_default_verify_paths(cl->ctx);
		}
	}
	if (kc->cert_pem != NULL && !kube_use_cert_pem(cl->ctx, kc->cert_pem, kc->cert_len)) {
		asprintf(&cl->error, "client-certificate-data is not a PEM certificate");
		return -EINVAL;
	}
	if (kc->cert_file != NULL &&
	    SSL_CTX_use_certificate_chain_file(cl->ctx, kc->cert_file) != 1) {
		asprintf(&cl->error, "cannot load the client certificate %s: %s", kc->cert_file,
		    kube_ssl_error(e, sizeof e));
		return -EINVAL;
	}
	if (kc->key_pem != NULL && !kube_use_key_pem(cl->ctx, kc->key_pem, kc->key_len)) {
		asprintf(&cl->error, "client-key-data is not a PEM private key");
		return -EINVAL;
	}
	if (kc->key_file != NULL &&
	    SSL_CTX_use_PrivateKey_file(cl->ctx, kc->key_file, SSL_FILETYPE_PEM) != 1) {
		asprintf(&cl->error, "cannot load the client key %s: %s", kc->key_file,
		    kube_ssl_error(e, sizeof e));
		return -EINVAL;
	}
	if ((kc->key_pem != NULL || kc->key_file != NULL) &&
	    SSL_CTX_check_private_key(cl->ctx) != 1) {
		asprintf(&cl->error, "the client key does not match the client certificate");
		return -EINVAL;
	}
	return 0;
fail:
	asprintf(&cl->error, "cannot make a TLS context: %s", kube_ssl_error(e, sizeof e));
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
		asprintf(&cl->error, "%s", err);
	} else if (cl->kc.unsupported != NULL) {
		asprintf(&cl->error, "%s in its kubeconfig is not supported by transport: native; "
		    "use transport: kubectl", cl->kc.unsupported);
	} else {
		snprintf(cl->where, sizeof cl->where, strchr(cl->kc.host, ':') != NULL ?
		    "[%s]:%s" : "%s:%s", cl->kc.host, cl->kc.port);
		snprintf(cl->hosthdr, sizeof cl->hosthdr, "%s", cl->where);
		if (cl->kc.tls)
			kube_client_tls(cl);
		if (cl->kc.token != NULL && (cl->token = strdup(cl->kc.token)) == NULL)
			asprintf(&cl->error, "out of memory");
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

/* ---- credentials ---- */

/* Re-read the token file when it changed. Returns 0 or -errno with last_error set. */
static int
kube_client_token_file(struct kube_client *cl)
{
	struct stat st;
	char *buf = NULL, *nt;
	ssize_t n;
	size_t len = 0;
	int fd, r;

	if (cl->kc.token_file == NULL || cl->kc.token != NULL)
		return 0;
	if (stat(cl->kc.token_file, &st) < 0) {
		r = -errno;
		snprintf(cl->last_error, sizeof cl->last_error, "cannot read the token file %s: %s",
		    cl->kc.token_file, strerror(errno));
		return r;
	}
	if (cl->token_read && st.st_mtim.tv_sec == cl->token_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == cl->token_st.st_mtim.tv_nsec &&
	    st.st_size == cl->token_st.st_size && st.st_ino == cl->token_st.st_ino)
		return 0;
	if ((fd = open(cl->kc.token_file, O_RDONLY | O_CLOEXEC)) < 0 ||
	    (buf = malloc(KUBE_TOKEN_MAX + 1)) == NULL) {
		r = fd < 0 ? -errno : -ENOMEM;
		if (fd >= 0)
			close(fd);
		snprintf(cl->last_error, sizeof cl->last_error, "cannot read the token file %s: %s",
		    cl->kc.token_file, strerror(-r));
		return r;
	}
	while (len < KUBE_TOKEN_MAX && (n = read(fd, buf + len, KUBE_TOKEN_MAX - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
		len--;
	buf[len] = '\0';
	if (len == 0) {
		free(buf);
		snprintf(cl->last_error, sizeof cl->last_error, "the token file %s is empty",
		    cl->kc.token_file);
		return -EINVAL;
	}
	if ((nt = strdup(buf)) == NULL) {
		OPENSSL_clear_free(buf, KUBE_TOKEN_MAX + 1);
		return -ENOMEM;
	}
	OPENSSL_clear_free(buf, KUBE_TOKEN_MAX + 1);
	if (cl->token != NULL)
		OPENSSL_clear_free(cl->token, strlen(cl->token));
	cl->token = nt;
	cl->token_st = st;
	cl->token_read = true;
	return 0;
}

/* Forget the plugin's credential. */
static void
kube_client_cred_clear(struct kube_client *cl)
{
	if (cl->cred_token != NULL)
		OPENSSL_clear_free(cl->cred_token, strlen(cl->cred_token));
	cl->cred_token = NULL;
	X509_free(cl->cred_cert);
	EVP_PKEY_free(cl->cred_key);
	cl->cred_cert = NULL;
	cl->cred_key = NULL;
	cl->cred_valid = false;
	cl->cred_expires = 0;
}

/* A 401: the plugin's credential is no good any more. */
void
kube_client_unauthorized(struct kube_client *cl)
{
	if (cl->kc.exec_command != NULL)
		kube_client_cred_clear(cl);
	kube_client_drop_spare(cl);	/* it may carry the old client certificate */
}

/* Tell every waiter how credentials went. */
static void
kube_client_wake(struct kube_client *cl, int err)
{
	struct kube_auth_wait *w;

	while ((w = cl->waiters) != NULL) {
		cl->waiters = w->next;
		w->cb(w->arg, err, cl->last_error);
		free(w);
	}
}

/* Take in the plugin's ExecCredential. */
static int
kube_plugin_take(struct kube_client *cl, struct kube_plugin *p)
{
	struct kube_json_cred c;
	char why[256];
	BIO *bio;
	int r;

	r = kube_json_exec_credential(p->obuf.data, p->obuf.len, cl->kc.exec_api_version, &c,
	    why, sizeof why);
	if (r < 0) {
		snprintf(cl->last_error, sizeof cl->last_error, "the exec plugin %s: %s",
		    cl->kc.exec_command, r == -ENOMEM ? "out of memory" : why);
		return r;
	}
	kube_client_cred_clear(cl);
	cl->cred_token = c.token;
	c.token = NULL;	/* transferred */
	if (c.cert_pem != NULL) {
		if ((bio = BIO_new_mem_buf(c.cert_pem, -1)) != NULL) {
			cl->cred_cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
			BIO_free(bio);
		}
		if ((bio = BIO_new_mem_buf(c.key_pem, -1)) != NULL) {
			cl->cred_key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
			BIO_free(bio);
		}
		ERR_clear_error();
		if (cl->cred_cert == NULL || cl->cred_key == NULL) {
			kube_client_cred_clear(cl);
			kube_json_cred_clear(&c);
			snprintf(cl->last_error, sizeof cl->last_error, "the exec plugin %s gave a "
			    "certificate or key that is not PEM", cl->kc.exec_command);
			return -EINVAL;
		}
	}
	cl->cred_expires = c.expires;
	cl->cred_valid = true;
	kube_json_cred_clear(&c);
	return 0;
}

/* One of the plugin's handles closed; the last one ends it. */
static void
kube_plugin_closed(uv_handle_t *h)
{
	struct kube_plugin *p = h->data;
	struct kube_client *cl = p->cl;
	char line[200];
	int r = 0;
	size_t i;

	if (--p->handles > 0)
		return;
	cl->plugin = NULL;
	if (p->timed_out) {
		snprintf(cl->last_error, sizeof cl->last_error, "the exec plugin %s did not "
		    "finish within %us", cl->kc.exec_command, cl->timeout);
		r = -ETIMEDOUT;
	} else if (p->status != 0 || p->term_signal != 0) {
		/* Its last line of stderr says why. */
		snprintf(line, sizeof line, "%s", p->ebuf.data != NULL ? p->ebuf.data : "");
		for (i = strlen(line); i > 0 && (line[i - 1] == '\n' || line[i - 1] == ' '); i--)
			line[i - 1] = '\0';
		for (i = 0; line[i] != '\0'; i++) {
			if ((unsigned char)line[i] < 0x20)
				line[i] = ' ';
		}
		snprintf(cl->last_error, sizeof cl->last_error, "the exec plugin %s failed "
		    "(%s %d)%s%s", cl->kc.exec_command, p->term_signal ? "signal" : "status",
		    p->term_signal ? p->term_signal : (int)p->status, line[0] ? ": " : "", line);
		r = -EACCES;
	} else {
		r = kube_plugin_take(cl, p);
	}
	free(p->obuf.data);
	if (p->ebuf.data != NULL)
		free(p->ebuf.data);
	if (p->obuf.data != NULL)
		p->obuf.data = NULL;
	free(p);
	kube_client_wake(cl, r);
}

/* Buffers for the plugin's pipes. */
static void
kube_plugin_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char scratch[16384];

	buf->base = scratch;
	buf->len = sizeof scratch;
}

/* Output of the plugin. */
static void
kube_plugin_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct kube_plugin *p = s->data;

	if (n > 0) {
		if ((uv_pipe_t *)s == &p->out)
			kube_buf_add(&p->obuf, buf->base, (size_t)n, KUBE_PLUGIN_OUT_MAX);
		else
			kube_buf_add(&p->ebuf, buf->base, (size_t)n, KUBE_PLUGIN_ERR_MAX);
	} else if (n < 0) {
		uv_read_stop(s);
		if (!uv_is_closing((uv_handle_t *)s))
			uv_close((uv_handle_t *)s, kube_plugin_closed);
	}
}

/* The plugin exited. */
static void
kube_plugin_exit(uv_process_t *proc, int64_t status, int sig)
{
	struct kube_plugin *p = proc->data;

	p->exited = true;
	p->status = status;
	p->term_signal = sig;
	uv_timer_stop(&p->timer);
	uv_close((uv_handle_t *)&p->timer, kube_plugin_closed);
	uv_close((uv_handle_t *)proc, kube_plugin_closed);
}

/* The plugin took too long. */
static void
kube_plugin_timeout(uv_timer_t *t)
{
	struct kube_plugin *p = t->data;

	p->timed_out = true;
	uv_process_kill(&p->proc, SIGKILL);
}

/* KUBERNETES_EXEC_INFO for the plugin. */
static char *
kube_plugin_info(const struct kube_client *cl)
{
	char *s = NULL, *ca = NULL;
	size_t i, k = 0;

	if (cl->kc.exec_cluster_info) {
		/* cluster: server, tls-server-name, insecure, CA data (base64 of the PEM). */
		if (cl->kc.ca_pem != NULL && (ca = malloc(cl->kc.ca_len / 3 * 4 + 8)) != NULL)
			EVP_EncodeBlock((unsigned char *)ca, (const unsigned char *)cl->kc.ca_pem,
			    (int)cl->kc.ca_len);
		if (asprintf(&s, "{\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\",\"spec\":"
		    "{\"interactive\":false,\"cluster\":{\"server\":\"%s\",%s%s%s"
		    "\"insecure-skip-tls-verify\":%s%s%s%s}}}", cl->kc.exec_api_version,
		    cl->kc.server, cl->kc.server_name != NULL ? "\"tls-server-name\":\"" : "",
		    cl->kc.server_name != NULL ? cl->kc.server_name : "",
		    cl->kc.server_name != NULL ? "\"," : "", cl->kc.insecure ? "true" : "false",
		    ca != NULL ? ",\"certificate-authority-data\":\"" : "", ca != NULL ? ca : "",
		    ca != NULL ? "\"" : "") < 0)
			s = NULL;
		free(ca);
	} else if (asprintf(&s, "{\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
	    "\"spec\":{\"interactive\":false}}", cl->kc.exec_api_version) < 0) {
		s = NULL;
	}
	/* Values from the kubeconfig go into a JSON string: refuse what would break it. */
	for (i = 0; s != NULL && s[i] != '\0'; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == '\\')
			k++;
	}
	if (k > 0) {
		free(s);
		s = NULL;
	}
	return s;
}

/* Start the plugin. Returns 0 or a negative errno with last_error set. */
static int
kube_plugin_start(struct kube_client *cl, uv_loop_t *loop)
{
	uv_process_options_t o;
	uv_stdio_container_t io[3];
	struct kube_plugin *p;
	char **env = NULL, **args = NULL, *info = NULL;
	size_t n = 0, i, na = 0;
	int r;

	if ((p = calloc(1, sizeof *p)) == NULL)
		return -ENOMEM;
	p->cl = cl;
	for (char **e = environ; e != NULL && *e != NULL; e++)
		n++;
	for (char **e = cl->kc.exec_env; e != NULL && *e != NULL; e++)
		n++;
	for (char **a = cl->kc.exec_args; a != NULL && *a != NULL; a++)
		na++;
	env = calloc(n + 2, sizeof *env);
	args = calloc(na + 2, sizeof *args);
	info = kube_plugin_info(cl);
	if (env == NULL || args == NULL || info == NULL ||
	    asprintf(&env[0], "KUBERNETES_EXEC_INFO=%s", info) < 0) {
		r = -ENOMEM;
		if (env != NULL)
			env[0] = NULL;
		goto fail;
	}
	n = 1;
	for (char **e = environ; e != NULL && *e != NULL; e++) {
		if (strncmp(*e, "KUBERNETES_EXEC_INFO=", 21) != 0)
			env[n++] = *e;
	}
	for (char **e = cl->kc.exec_env; e != NULL && *e != NULL; e++)
		env[n++] = *e;
	args[0] = cl->kc.exec_command;
	for (i = 0; i < na; i++)
		args[i + 1] = cl->kc.exec_args[i];
	uv_pipe_init(loop, &p->out, 0);
	uv_pipe_init(loop, &p->err, 0);
	uv_timer_init(loop, &p->timer);
	p->out.data = p->err.data = p->timer.data = p->proc.data = p;
	memset(&o, 0, sizeof o);
	memset(io, 0, sizeof io);
	io[0].flags = UV_IGNORE;
	io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	io[1].data.stream = (uv_stream_t *)&p->out;
	io[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	io[2].data.stream = (uv_stream_t *)&p->err;
	o.file = cl->kc.exec_command;
	o.args = args;
	o.env = env;
	o.stdio = io;
	o.stdio_count = 3;
	o.exit_cb = kube_plugin_exit;
	if ((r = uv_spawn(loop, &p->proc, &o)) < 0) {
		snprintf(cl->last_error, sizeof cl->last_error, "cannot run the exec plugin %s: %s",
		    cl->kc.exec_command, uv_strerror(r));
		p->handles = 3;
		uv_close((uv_handle_t *)&p->out, kube_plugin_closed);
		uv_close((uv_handle_t *)&p->err, kube_plugin_closed);
		uv_close((uv_handle_t *)&p->timer, kube_plugin_closed);
		p->status = 127;
		p->exited = true;
		cl->plugin = p;
		/* The close callbacks report the failure to the waiters. */
		free(env[0]);
		free(env);
		free(args);
		free(info);
		return 0;
	}
	p->handles = 4;
	cl->plugin = p;
	uv_read_start((uv_stream_t *)&p->out, kube_plugin_alloc, kube_plugin_read);
	uv_read_start((uv_stream_t *)&p->err, kube_plugin_alloc, kube_plugin_read);
	uv_timer_start(&p->timer, kube_plugin_timeout, (uint64_t)cl->timeout * 1000, 0);
	free(env[0]);
	free(env);
	free(args);
	free(info);
	return 0;
fail:
	if (env != NULL)
		free(env[0]);
	free(env);
	free(args);
	free(info);
	free(p);
	snprintf(cl->last_error, sizeof cl->last_error, "cannot run the exec plugin: %s",
	    strerror(-r));
	return r;
}

/* Make sure credentials are at hand. */
int
kube_client_auth(struct kube_client *cl, uv_loop_t *loop, kube_client_auth_cb cb, void *arg)
{
	struct kube_auth_wait *w;
	int r;

	cl->last_error[0] = '\0';
	if (cl->kc.exec_command == NULL || (cl->cred_valid && (cl->cred_expires == 0 ||
	    cl->cred_expires > time(NULL) + KUBE_CRED_SLACK))) {
		r = kube_client_token_file(cl);
		cb(arg, r, cl->last_error);
		return 0;
	}
	if ((w = calloc(1, sizeof *w)) == NULL)
		return -ENOMEM;
	w->cb = cb;
	w->arg = arg;
	if (cl->plugin == NULL && (r = kube_plugin_start(cl, loop)) < 0) {
		free(w);
		cb(arg, r, cl->last_error);
		return 0;
	}
	w->next = cl->waiters;
	cl->waiters = w;
	return 0;
}

/* Forget a waiter. */
void
kube_client_auth_cancel(struct kube_client *cl, void *arg)
{
	struct kube_auth_wait **pp = &cl->waiters, *w;

	while ((w = *pp) != NULL) {
		if (w->arg == arg) {
			*pp = w->next;
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

/* Whether s may go into a header value. */
static bool
kube_header_ok(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	}
	return true;
}

/* Append formatted text to a growing buffer. */
static int kube_append(char **buf, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
kube_append(char **buf, size_t *len, const char *fmt, ...)
{
	va_list ap;
	char *nb;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (nb = realloc(*buf, *len + (size_t)n + 1)) == NULL)
		return -ENOMEM;
	*buf = nb;
	va_start(ap, fmt);
	vsnprintf(nb + *len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	*len += (size_t)n;
	return 0;
}

/* Build a request head. */
int
kube_client_request(struct kube_client *cl, const char *method, const char *path,
    const struct kube_ident *id, const char *extra, char **buf, size_t *len)
{
	const char *token = cl->cred_token != NULL ? cl->cred_token : cl->token;
	int r = 0;

	if ((id != NULL && id->user != NULL && !kube_header_ok(id->user)) ||
	    (token != NULL && !kube_header_ok(token)))
		return -EINVAL;
	r |= kube_append(buf, len, "%s %s%s HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: podgate/" PODGATE_VERSION "\r\n", method, cl->kc.prefix, path,
	    cl->hosthdr);
	if (token != NULL)
		r |= kube_append(buf, len, "Authorization: Bearer %s\r\n", token);
	if (id != NULL && id->user != NULL) {
		r |= kube_append(buf, len, "Impersonate-User: %s\r\n", id->user);
		for (char *const *g = id->groups; g != NULL && *g != NULL; g++) {
			if (!kube_header_ok(*g))
				return -EINVAL;
			r |= kube_append(buf, len, "Impersonate-Group: %s\r\n", *g);
		}
	}
	if (extra != NULL)
		r |= kube_append(buf, len, "%s", extra);
	r |= kube_append(buf, len, "\r\n");
	return r < 0 ? -ENOMEM : 0;
}

/* ---- connections ---- */

enum kube_conn_state {
	KC_RESOLVE,
	KC_CONNECT,
	KC_HANDSHAKE,
	KC_READY,
	KC_REQUEST,
	KC_STREAM,
	KC_FAILED,
};

struct kube_conn {
	struct kube_client *cl;
	uv_loop_t *loop;
	enum kube_conn_state state;
	kube_conn_cb cb;
	void *arg;
	uv_getaddrinfo_t gai;
	bool gai_pending;
	struct addrinfo *ai, *ai_next;
	bool ai_uv;			/* ai from uv_getaddrinfo (uv_freeaddrinfo) */
	int fd;
	uv_poll_t *poll;		/* NULL when not polling */
	int events;
	unsigned refs;			/* the owner, a pending lookup, poll handles */
	bool closed;			/* the owner let go */
	SSL *ssl;
	int rd_ssl, wr_ssl;		/* what SSL asked for last (SSL_ERROR_WANT_*) */
	bool want_rd, want_wr;
	char *out;			/* the request being written */
	size_t outlen, outoff;
	struct kube_http_resp resp;
	char *extra;			/* bytes that followed a response head */
	size_t extralen, extraoff;
	bool eof;
	char err[400];
};

static void kube_conn_poll_cb(uv_poll_t *h, int status, int events);
static void kube_conn_try_next(struct kube_conn *kc);

/* Drop a reference; the last one frees. */
static void
kube_conn_unref(struct kube_conn *kc)
{
	if (--kc->refs > 0)
		return;
	if (kc->ssl != NULL)
		SSL_free(kc->ssl);
	if (kc->fd >= 0)
		close(kc->fd);
	if (kc->ai != NULL) {
		if (kc->ai_uv)
			uv_freeaddrinfo(kc->ai);
		else
			freeaddrinfo(kc->ai);
	}
	kube_http_resp_clear(&kc->resp);
	free(kc->out);
	free(kc->extra);
	free(kc);
}

/* A poll handle finished closing. */
static void
kube_conn_poll_closed(uv_handle_t *h)
{
	struct kube_conn *kc = h->data;

	free(h);
	kube_conn_unref(kc);
}

/* Stop polling and close the descriptor's handle. */
static void
kube_conn_stop_poll(struct kube_conn *kc)
{
	if (kc->poll == NULL)
		return;
	uv_poll_stop(kc->poll);
	uv_close((uv_handle_t *)kc->poll, kube_conn_poll_closed);
	kc->poll = NULL;
	kc->events = 0;
}

/* Poll for ev (0 stops). */
static void
kube_conn_poll(struct kube_conn *kc, int ev)
{
	if (kc->poll == NULL || ev == kc->events)
		return;
	if (ev == 0)
		uv_poll_stop(kc->poll);
	else
		uv_poll_start(kc->poll, ev, kube_conn_poll_cb);
	kc->events = ev;
}

/* Fail the connection: say why, and tell the owner. */
static void kube_conn_fail(struct kube_conn *kc, enum kube_conn_event ev, int err,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
kube_conn_fail(struct kube_conn *kc, enum kube_conn_event ev, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(kc->err, sizeof kc->err, fmt, ap);
	va_end(ap);
	kc->state = KC_FAILED;
	kube_conn_poll(kc, 0);
	if (!kc->closed)
		kc->cb(kc, ev, err, kc->arg);
}

/* The TLS handshake, as far as it goes now. */
static void
kube_conn_handshake(struct kube_conn *kc)
{
	char e[256];
	long vr;
	int r, se;

	ERR_clear_error();
	r = SSL_do_handshake(kc->ssl);
	if (r == 1) {
		kc->state = KC_READY;
		kube_conn_poll(kc, 0);
		kc->cb(kc, KUBE_CONN_OPEN, 0, kc->arg);
		return;
	}
	se = SSL_get_error(kc->ssl, r);
	if (se == SSL_ERROR_WANT_READ) {
		kube_conn_poll(kc, UV_READABLE);
		return;
	}
	if (se == SSL_ERROR_WANT_WRITE) {
		kube_conn_poll(kc, UV_WRITABLE);
		return;
	}
	vr = SSL_get_verify_result(kc->ssl);
	if (vr != X509_V_OK)
		kube_conn_fail(kc, KUBE_CONN_OPEN, -EPROTO, "TLS handshake with %s failed: "
		    "certificate verify failed (%s)", kc->cl->where,
		    X509_verify_cert_error_string(vr));
	else if (se == SSL_ERROR_SYSCALL || se == SSL_ERROR_ZERO_RETURN)
		kube_conn_fail(kc, KUBE_CONN_OPEN, -EPROTO, "TLS handshake with %s failed: the "
		    "connection was closed", kc->cl->where);
	else
		kube_conn_fail(kc, KUBE_CONN_OPEN, -EPROTO, "TLS handshake with %s failed: %s",
		    kc->cl->where, kube_ssl_error(e, sizeof e));
	ERR_clear_error();
}

/* Set up TLS on the connected socket. */
static int
kube_conn_start_tls(struct kube_conn *kc)
{
	struct kube_client *cl = kc->cl;
	const char *name = cl->kc.server_name != NULL ? cl->kc.server_name : cl->kc.host;
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;

	if ((kc->ssl = SSL_new(cl->ctx)) == NULL || SSL_set_fd(kc->ssl, kc->fd) != 1)
		return -ENOMEM;
	SSL_set_connect_state(kc->ssl);
	if (!is_ip)
		SSL_set_tlsext_host_name(kc->ssl, name);
	if (!cl->kc.insecure) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(kc->ssl);

		if (is_ip)
			X509_VERIFY_PARAM_set1_ip_asc(vp, name);
		else
			X509_VERIFY_PARAM_set1_host(vp, name, 0);
	}
	if (cl->cred_cert != NULL && cl->cred_key != NULL &&
	    (SSL_use_certificate(kc->ssl, cl->cred_cert) != 1 ||
	    SSL_use_PrivateKey(kc->ssl, cl->cred_key) != 1))
		return -EINVAL;
	kc->state = KC_HANDSHAKE;
	kube_conn_handshake(kc);
	return 0;
}

/* The socket connected (or failed to). */
static void
kube_conn_connected(struct kube_conn *kc)
{
	socklen_t sl = sizeof(int);
	int soerr = 0, one = 1;

	if (getsockopt(kc->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr != 0) {
		snprintf(kc->err, sizeof kc->err, "connect to %s: %s", kc->cl->where,
		    strerror(soerr));
		kube_conn_try_next(kc);
		return;
	}
	setsockopt(kc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (!kc->cl->kc.tls) {
		kc->state = KC_READY;
		kube_conn_poll(kc, 0);
		kc->cb(kc, KUBE_CONN_OPEN, 0, kc->arg);
		return;
	}
	if (kube_conn_start_tls(kc) < 0)
		kube_conn_fail(kc, KUBE_CONN_OPEN, -EPROTO, "cannot start TLS with %s",
		    kc->cl->where);
}

/* Try the next address. */
static void
kube_conn_try_next(struct kube_conn *kc)
{
	struct addrinfo *a;
	int fd, r;

	kube_conn_stop_poll(kc);
	if (kc->fd >= 0) {
		close(kc->fd);
		kc->fd = -1;
	}
	while ((a = kc->ai_next) != NULL) {
		kc->ai_next = a->ai_next;
		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    a->ai_protocol);
		if (fd < 0) {
			snprintf(kc->err, sizeof kc->err, "socket: %s", strerror(errno));
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			snprintf(kc->err, sizeof kc->err, "connect to %s: %s", kc->cl->where,
			    strerror(errno));
			close(fd);
			continue;
		}
		if ((kc->poll = calloc(1, sizeof *kc->poll)) == NULL ||
		    (r = uv_poll_init(kc->loop, kc->poll, fd)) < 0) {
			free(kc->poll);
			kc->poll = NULL;
			close(fd);
			snprintf(kc->err, sizeof kc->err, "out of memory");
			break;
		}
		kc->poll->data = kc;
		kc->refs++;
		kc->fd = fd;
		kc->state = KC_CONNECT;
		kube_conn_poll(kc, UV_WRITABLE);
		return;
	}
	kube_conn_fail(kc, KUBE_CONN_OPEN, -ECONNREFUSED, "%s", kc->err[0] ? kc->err :
	    "no address to connect to");
}

/* The name was looked up. */
static void
kube_conn_gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct kube_conn *kc = req->data;

	kc->gai_pending = false;
	if (kc->closed) {
		if (res != NULL)
			uv_freeaddrinfo(res);
		kube_conn_unref(kc);
		return;
	}
	kube_conn_unref(kc);	/* the owner still holds one */
	if (status < 0) {
		kube_conn_fail(kc, KUBE_CONN_OPEN, -EHOSTUNREACH, "cannot resolve %s: %s",
		    kc->cl->kc.host, uv_strerror(status));
		return;
	}
	kc->ai = kc->ai_next = res;
	kc->ai_uv = true;
	kube_conn_try_next(kc);
}

/* Open a connection. */
int
kube_conn_open(struct kube_client *cl, uv_loop_t *loop, kube_conn_cb cb, void *arg,
    struct kube_conn **out)
{
	struct addrinfo hints;
	struct kube_conn *kc;
	int r;

	*out = NULL;
	if ((kc = calloc(1, sizeof *kc)) == NULL)
		return -ENOMEM;
	kc->cl = cl;
	kc->loop = loop;
	kc->cb = cb;
	kc->arg = arg;
	kc->fd = -1;
	kc->refs = 1;
	kc->state = KC_RESOLVE;
	kube_http_resp_init(&kc->resp, false);
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(cl->kc.host, cl->kc.port, &hints, &kc->ai) == 0) {
		/* A numeric address: connect now. */
		kc->ai_next = kc->ai;
		*out = kc;
		kube_conn_try_next(kc);
		return 0;
	}
	kc->ai = NULL;
	hints.ai_flags = AI_NUMERICSERV;
	kc->gai.data = kc;
	if ((r = uv_getaddrinfo(loop, &kc->gai, kube_conn_gai_cb, cl->kc.host, cl->kc.port,
	    &hints)) < 0) {
		free(kc);
		return r;
	}
	kc->gai_pending = true;
	kc->refs++;
	*out = kc;
	return 0;
}

/* Read from the socket or TLS. Returns n, 0 at EOF, -EAGAIN, or -errno. */
static long
kube_conn_raw_read(struct kube_conn *kc, void *buf, size_t len)
{
	ssize_t n;
	int r, se;

	if (kc->ssl == NULL) {
		n = recv(kc->fd, buf, len, 0);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ?
			    -EAGAIN : -errno;
		return (long)n;
	}
	ERR_clear_error();
	r = SSL_read(kc->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (r > 0) {
		kc->rd_ssl = 0;
		return r;
	}
	se = SSL_get_error(kc->ssl, r);
	if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
		kc->rd_ssl = se;
		return -EAGAIN;
	}
	if (se == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (se == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		return errno != 0 && r < 0 ? -errno : 0;
	ERR_clear_error();
	return -EPROTO;
}

/* Write to the socket or TLS. Returns n, -EAGAIN, or -errno. */
static long
kube_conn_raw_write(struct kube_conn *kc, const void *buf, size_t len)
{
	ssize_t n;
	int r, se;

	if (len == 0)
		return 0;
	if (kc->ssl == NULL) {
		n = send(kc->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ?
			    -EAGAIN : -errno;
		return (long)n;
	}
	ERR_clear_error();
	r = SSL_write(kc->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (r > 0) {
		kc->wr_ssl = 0;
		return r;
	}
	se = SSL_get_error(kc->ssl, r);
	if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
		kc->wr_ssl = se;
		return -EAGAIN;
	}
	ERR_clear_error();
	return -EPIPE;
}

/* Move a request and its response along. */
static void
kube_conn_request_io(struct kube_conn *kc)
{
	char buf[16384];
	long n, taken;

	while (kc->outoff < kc->outlen) {
		n = kube_conn_raw_write(kc, kc->out + kc->outoff, kc->outlen - kc->outoff);
		if (n == -EAGAIN) {
			kube_conn_poll(kc, kc->wr_ssl == SSL_ERROR_WANT_READ ? UV_READABLE :
			    UV_WRITABLE);
			return;
		}
		if (n < 0) {
			kube_conn_fail(kc, KUBE_CONN_RESPONSE, -EPIPE, "the API server at %s "
			    "closed the connection", kc->cl->where);
			return;
		}
		kc->outoff += (size_t)n;
	}
	for (;;) {
		n = kube_conn_raw_read(kc, buf, sizeof buf);
		if (n == -EAGAIN) {
			kube_conn_poll(kc, kc->rd_ssl == SSL_ERROR_WANT_WRITE ? UV_WRITABLE :
			    UV_READABLE);
			return;
		}
		if (n <= 0) {
			if (n == 0 && kube_http_resp_eof(&kc->resp) == 0)
				break;
			kube_conn_fail(kc, KUBE_CONN_RESPONSE, -EPIPE, "the API server at %s "
			    "closed the connection without an answer", kc->cl->where);
			return;
		}
		taken = kube_http_resp_feed(&kc->resp, buf, (size_t)n);
		if (taken < 0) {
			kube_conn_fail(kc, KUBE_CONN_RESPONSE, (int)taken, "the API server at %s "
			    "sent a malformed response (%s)", kc->cl->where,
			    strerror((int)-taken));
			return;
		}
		if (kube_http_resp_done(&kc->resp)) {
			if (taken < n) {
				free(kc->extra);
				kc->extralen = (size_t)(n - taken);
				kc->extraoff = 0;
				if ((kc->extra = malloc(kc->extralen)) == NULL) {
					kube_conn_fail(kc, KUBE_CONN_RESPONSE, -ENOMEM,
					    "out of memory");
					return;
				}
				memcpy(kc->extra, buf + taken, kc->extralen);
			}
			break;
		}
	}
	kc->state = kc->resp.status == 101 ? KC_STREAM : KC_READY;
	if (kc->state == KC_READY && (!kc->resp.keep_alive || kc->extralen > 0))
		kc->eof = true;	/* no further requests on it */
	kube_conn_poll(kc, 0);
	kc->cb(kc, KUBE_CONN_RESPONSE, 0, kc->arg);
}

/* The descriptor is ready. */
static void
kube_conn_poll_cb(uv_poll_t *h, int status, int events)
{
	struct kube_conn *kc = h->data;

	if (kc->closed)
		return;
	switch (kc->state) {
	case KC_CONNECT:
		kube_conn_connected(kc);
		break;
	case KC_HANDSHAKE:
		kube_conn_handshake(kc);
		break;
	case KC_REQUEST:
		kube_conn_request_io(kc);
		break;
	case KC_STREAM:
		kc->cb(kc, KUBE_CONN_IO, status < 0 ? status : 0, kc->arg);
		break;
	case KC_READY: {
		/*
		 * An idle connection became readable: TLS records after the
		 * handshake (session tickets), or the server closing it.
		 */
		char b[64];
		long n = kube_conn_raw_read(kc, b, sizeof b);

		if (n == -EAGAIN) {
			kube_conn_poll(kc, kc->rd_ssl == SSL_ERROR_WANT_WRITE ? UV_WRITABLE :
			    UV_READABLE);
			break;
		}
		kc->eof = true;
		kube_conn_poll(kc, 0);
		break;
	}
	default:
		kube_conn_poll(kc, 0);
		break;
	}
}

/* Send a request. */
int
kube_conn_request(struct kube_conn *kc, const char *req, size_t len, bool head_only)
{
	if (kc->state != KC_READY || kc->eof)
		return -EPIPE;
	free(kc->out);
	if ((kc->out = malloc(len)) == NULL)
		return -ENOMEM;
	memcpy(kc->out, req, len);
	kc->outlen = len;
	kc->outoff = 0;
	kube_http_resp_clear(&kc->resp);
	kube_http_resp_init(&kc->resp, head_only);
	kc->state = KC_REQUEST;
	kube_conn_poll(kc, UV_WRITABLE);
	return 0;
}

struct kube_http_resp *
kube_conn_response(struct kube_conn *kc)
{
	return &kc->resp;
}

const char *
kube_conn_error(const struct kube_conn *kc)
{
	return kc->err;
}

bool
kube_conn_reusable(const struct kube_conn *kc)
{
	return kc->state == KC_READY && !kc->eof;
}

/* Stream mode read. */
long
kube_conn_read(struct kube_conn *kc, void *buf, size_t len)
{
	size_t n;

	if (kc->extraoff < kc->extralen) {
		n = kc->extralen - kc->extraoff;
		if (n > len)
			n = len;
		memcpy(buf, kc->extra + kc->extraoff, n);
		kc->extraoff += n;
		return (long)n;
	}
	if (kc->state != KC_STREAM)
		return -EPIPE;
	return kube_conn_raw_read(kc, buf, len);
}

/* Stream mode write. */
long
kube_conn_write(struct kube_conn *kc, const void *buf, size_t len)
{
	if (kc->state != KC_STREAM)
		return -EPIPE;
	return kube_conn_raw_write(kc, buf, len);
}

bool
kube_conn_pending(const struct kube_conn *kc)
{
	return kc->extraoff < kc->extralen || (kc->ssl != NULL && SSL_pending(kc->ssl) > 0);
}

/* Stream mode: what the owner waits for. */
void
kube_conn_want(struct kube_conn *kc, bool rd, bool wr)
{
	int ev = 0;

	if (kc->state != KC_STREAM)
		return;
	kc->want_rd = rd;
	kc->want_wr = wr;
	if (rd)
		ev |= kc->rd_ssl == SSL_ERROR_WANT_WRITE ? UV_WRITABLE : UV_READABLE;
	if (wr)
		ev |= kc->wr_ssl == SSL_ERROR_WANT_READ ? UV_READABLE : UV_WRITABLE;
	kube_conn_poll(kc, ev);
}

/* Close the connection. */
void
kube_conn_close(struct kube_conn *kc)
{
	if (kc == NULL || kc->closed)
		return;
	kc->closed = true;
	if (kc->gai_pending)
		uv_cancel((uv_req_t *)&kc->gai);
	kube_conn_stop_poll(kc);
	kube_conn_unref(kc);
}

/* ---- the spare connection ---- */

/* News of the spare: once open it waits, unreferenced, for the next session. */
static void
kube_spare_cb(struct kube_conn *kc, enum kube_conn_event ev, int err, void *arg)
{
	struct kube_client *cl = arg;

	if (cl->spare != kc)
		return;
	if (ev == KUBE_CONN_OPEN && err == 0 && kc->state == KC_READY) {
		/* Notice the server closing it; it keeps no loop alive. */
		kube_conn_poll(kc, UV_READABLE);
		if (kc->poll != NULL)
			uv_unref((uv_handle_t *)kc->poll);
		return;
	}
	cl->spare = NULL;
	kube_conn_close(kc);
}

/* Close the spare connection, if any. */
static void
kube_client_drop_spare(struct kube_client *cl)
{
	struct kube_conn *kc = cl->spare;

	if (kc == NULL)
		return;
	cl->spare = NULL;
	kube_conn_close(kc);
}

/* A connection for a request: the spare when it is open (or opening), else a new one. */
int
kube_client_conn(struct kube_client *cl, uv_loop_t *loop, kube_conn_cb cb, void *arg,
    struct kube_conn **out)
{
	struct kube_conn *kc = cl->spare;
	int r;

	*out = NULL;
	if (kc != NULL && kc->loop == loop && !kc->eof && kc->state != KC_FAILED &&
	    kc->state <= KC_READY) {
		cl->spare = NULL;
		kc->cb = cb;
		kc->arg = arg;
		if (kc->poll != NULL)
			uv_ref((uv_handle_t *)kc->poll);
		if (kc->state == KC_READY)
			kube_conn_poll(kc, 0);
		*out = kc;
		r = kc->state == KC_READY ? 1 : 0;
	} else {
		kube_client_drop_spare(cl);
		if ((r = kube_conn_open(cl, loop, cb, arg, out)) < 0)
			return r;
	}
	/* Open the next one now, off the next session's path. */
	if (cl->spare == NULL && kube_conn_open(cl, loop, kube_spare_cb, cl, &cl->spare) < 0)
		cl->spare = NULL;
	return r;
}

/* Close every spare connection (the loop is ending). */
void
kube_client_close_spares(void)
{
	struct kube_client *cl;

	for (cl = kube_clients; cl != NULL; cl = cl->next)
		kube_client_drop_spare(cl);
}

/* ---- one GET on a private loop ---- */

struct kube_sync {
	bool done;
	int err;
	enum kube_conn_event ev;
	char why[512];
};

static void
kube_sync_auth_cb(void *arg, int err, const char *why)
{
	struct kube_sync *s = arg;

	s->done = true;
	s->err = err;
	snprintf(s->why, sizeof s->why, "%s", why != NULL ? why : "");
}

static void
kube_sync_conn_cb(struct kube_conn *kc, enum kube_conn_event ev, int err, void *arg)
{
	struct kube_sync *s = arg;

	s->done = true;
	s->err = err;
	s->ev = ev;
	if (err < 0)
		snprintf(s->why, sizeof s->why, "%s", kc->err);
}

static void
kube_sync_timer_cb(uv_timer_t *t)
{
	struct kube_sync *s = t->data;

	s->done = true;
	s->err = -ETIMEDOUT;
}

/* Run the loop until s is done. */
static void
kube_sync_wait(uv_loop_t *loop, struct kube_sync *s)
{
	while (!s->done && uv_run(loop, UV_RUN_ONCE) != 0)
		;
}

/* One GET to completion. */
int
kube_client_sync_get(struct kube_client *cl, uv_loop_t *loop, struct kube_conn **conn,
    const char *path, const struct kube_ident *id, unsigned timeout, int *status,
    char **body, size_t *bodylen, char *err, size_t errlen)
{
	struct kube_sync s;
	uv_timer_t timer;
	char *req = NULL;
	size_t len = 0;
	int r, attempt;

	*status = 0;
	*body = NULL;
	*bodylen = 0;
	uv_timer_init(loop, &timer);
	memset(&s, 0, sizeof s);
	timer.data = &s;
	uv_timer_start(&timer, kube_sync_timer_cb, (uint64_t)timeout * 1000, 0);
	for (attempt = 0; attempt < 2; attempt++) {
		memset(&s, 0, sizeof s);
		if ((r = kube_client_auth(cl, loop, kube_sync_auth_cb, &s)) < 0)
			goto out;
		kube_sync_wait(loop, &s);
		if ((r = s.err) < 0) {
			if (r != -ETIMEDOUT)
				snprintf(err, errlen, "%s", s.why);
			kube_client_auth_cancel(cl, &s);
			goto out;
		}
		if (*conn != NULL && !kube_conn_reusable(*conn)) {
			kube_conn_close(*conn);
			*conn = NULL;
		}
		if (*conn == NULL) {
			memset(&s, 0, sizeof s);
			if ((r = kube_conn_open(cl, loop, kube_sync_conn_cb, &s, conn)) < 0) {
				snprintf(err, errlen, "cannot connect: %s", strerror(-r));
				goto out;
			}
			kube_sync_wait(loop, &s);
			if ((r = s.err) < 0) {
				if (r != -ETIMEDOUT)
					snprintf(err, errlen, "cannot reach the API server of "
					    "cluster %s: %s", cl->name, s.why);
				goto out;
			}
		}
		free(req);
		req = NULL;
		len = 0;
		if ((r = kube_client_request(cl, "GET", path, id, "Accept: application/json\r\n",
		    &req, &len)) < 0) {
			snprintf(err, errlen, "cannot build the request");
			goto out;
		}
		memset(&s, 0, sizeof s);
		(*conn)->arg = &s;
		if ((r = kube_conn_request(*conn, req, len, false)) < 0) {
			snprintf(err, errlen, "cannot send the request");
			goto out;
		}
		kube_sync_wait(loop, &s);
		if ((r = s.err) < 0) {
			if (r != -ETIMEDOUT)
				snprintf(err, errlen, "%s", s.why);
			goto out;
		}
		if ((*conn)->resp.status == 401 && attempt == 0 && kube_client_has_plugin(cl)) {
			kube_client_unauthorized(cl);
			continue;
		}
		break;
	}
	*status = (*conn)->resp.status;
	*body = (*conn)->resp.body;
	*bodylen = (*conn)->resp.bodylen;
	(*conn)->resp.body = NULL;	/* transferred */
	(*conn)->resp.bodylen = 0;
	r = 0;
out:
	if (r == -ETIMEDOUT)
		snprintf(err, errlen, "the API server of cluster %s did not answer within %us",
		    cl->name, timeout);
	if (r < 0 && *conn != NULL) {
		kube_conn_close(*conn);
		*conn = NULL;
	}
	free(req);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return r;
}

/* Close a connection of the sync API. */
void
kube_client_sync_close(uv_loop_t *loop, struct kube_conn *conn)
{
	kube_conn_close(conn);
	uv_run(loop, UV_RUN_NOWAIT);
}
