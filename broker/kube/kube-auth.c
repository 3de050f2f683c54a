/*
 * A Kubernetes cluster's credentials: a bearer token (static, or a
 * tokenFile read again when it changes) or the exec credential plugin run
 * as a child of the loop, its answer cached until it expires; everyone
 * asking while the plugin runs waits for its answer.
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

#include <jansson.h>
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

extern char **environ;

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
	buf_free(&p->obuf);
	buf_free(&p->ebuf);
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
			kube_capture(&p->obuf, buf->base, (size_t)n, KUBE_PLUGIN_OUT_MAX);
		else
			kube_capture(&p->ebuf, buf->base, (size_t)n, KUBE_PLUGIN_ERR_MAX);
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

/* KUBERNETES_EXEC_INFO for the plugin (NULL when it cannot be made). */
static char *
kube_plugin_info(const struct kube_client *cl)
{
	json_t *root, *spec, *cluster;
	char *s = NULL, *ca = NULL;
	int bad = 0;

	root = json_object();
	spec = json_object();
	if (root == NULL || spec == NULL) {
		json_decref(root);
		json_decref(spec);
		return NULL;
	}
	bad |= json_object_set_new(root, "apiVersion", json_string(cl->kc.exec_api_version));
	bad |= json_object_set_new(root, "kind", json_string("ExecCredential"));
	bad |= json_object_set_new(spec, "interactive", json_false());
	if (cl->kc.exec_cluster_info) {
		/* cluster: server, tls-server-name, insecure, CA data (base64 of the PEM). */
		if ((cluster = json_object()) == NULL)
			bad = 1;
		else {
			bad |= json_object_set_new(cluster, "server", json_string(cl->kc.server));
			if (cl->kc.server_name != NULL)
				bad |= json_object_set_new(cluster, "tls-server-name",
				    json_string(cl->kc.server_name));
			bad |= json_object_set_new(cluster, "insecure-skip-tls-verify",
			    json_boolean(cl->kc.insecure));
			if (cl->kc.ca_pem != NULL &&
			    (ca = malloc(cl->kc.ca_len / 3 * 4 + 8)) != NULL) {
				EVP_EncodeBlock((unsigned char *)ca,
				    (const unsigned char *)cl->kc.ca_pem, (int)cl->kc.ca_len);
				bad |= json_object_set_new(cluster, "certificate-authority-data",
				    json_string(ca));
				free(ca);
			}
			bad |= json_object_set_new(spec, "cluster", cluster);
		}
	}
	bad |= json_object_set_new(root, "spec", spec);
	/* json_string refuses invalid UTF-8 (NULL, so the set fails): no info then. */
	if (bad == 0)
		s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
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
