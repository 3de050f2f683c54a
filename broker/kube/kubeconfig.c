/*
 * kubeconfig files (YAML, through libyaml's document loader) and the
 * in-cluster service account, for the native Kubernetes transport.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <yaml.h>

#include "kube/kubeconfig.h"

static int kc_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write a reason to err and return -EINVAL. */
static int
kc_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* The value of key in mapping n, or NULL. */
static yaml_node_t *
kc_get(yaml_document_t *doc, yaml_node_t *n, const char *key)
{
	yaml_node_pair_t *pair;
	yaml_node_t *k;

	if (n == NULL || n->type != YAML_MAPPING_NODE)
		return NULL;
	for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
		k = yaml_document_get_node(doc, pair->key);
		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(doc, pair->value);
	}
	return NULL;
}

/* The string of a scalar, or NULL (also for an empty or null scalar). */
static const char *
kc_str(const yaml_node_t *n)
{
	const char *v;

	if (n == NULL || n->type != YAML_SCALAR_NODE)
		return NULL;
	v = (const char *)n->data.scalar.value;
	if (*v == '\0' || (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (strcmp(v, "null") == 0 || strcmp(v, "~") == 0)))
		return NULL;
	return v;
}

/* Whether a scalar reads as true. */
static bool
kc_true(const yaml_node_t *n)
{
	const char *v = kc_str(n);

	return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "True") == 0 ||
	    strcmp(v, "TRUE") == 0);
}

/* The entry of a named list (clusters, users, contexts) called name: its inner mapping. */
static yaml_node_t *
kc_named(yaml_document_t *doc, yaml_node_t *root, const char *list, const char *inner,
    const char *name)
{
	yaml_node_t *l = kc_get(doc, root, list), *item;
	yaml_node_item_t *it;
	const char *v;

	if (l == NULL || l->type != YAML_SEQUENCE_NODE)
		return NULL;
	for (it = l->data.sequence.items.start; it < l->data.sequence.items.top; it++) {
		item = yaml_document_get_node(doc, *it);
		if ((v = kc_str(kc_get(doc, item, "name"))) != NULL && strcmp(v, name) == 0)
			return kc_get(doc, item, inner);
	}
	return NULL;
}

/* A copy of s, or NULL when s is NULL; *oom set on failure. */
static char *
kc_dup(const char *s, bool *oom)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*oom = true;
	return d;
}

/* A path made absolute against dir. */
static char *
kc_path(const char *dir, const char *p, bool *oom)
{
	char *s = NULL;

	if (p == NULL)
		return NULL;
	if (p[0] == '/' || dir == NULL)
		return kc_dup(p, oom);
	if (asprintf(&s, "%s/%s", dir, p) < 0) {
		*oom = true;
		return NULL;
	}
	return s;
}

/* Decode base64 data (whitespace allowed). Returns 0, -EINVAL or -ENOMEM. */
static int
kc_base64(const char *in, char **out, size_t *outlen)
{
	EVP_ENCODE_CTX *ctx;
	size_t n = strlen(in);
	int l1 = 0, l2 = 0;
	char *buf;

	*out = NULL;
	*outlen = 0;
	if (n > KUBECONFIG_MAX)
		return -EINVAL;
	if ((buf = malloc(n / 4 * 3 + 4)) == NULL)
		return -ENOMEM;
	if ((ctx = EVP_ENCODE_CTX_new()) == NULL) {
		free(buf);
		return -ENOMEM;
	}
	EVP_DecodeInit(ctx);
	if (EVP_DecodeUpdate(ctx, (unsigned char *)buf, &l1, (const unsigned char *)in,
	    (int)n) < 0 || EVP_DecodeFinal(ctx, (unsigned char *)buf + l1, &l2) < 0) {
		EVP_ENCODE_CTX_free(ctx);
		free(buf);
		return -EINVAL;
	}
	EVP_ENCODE_CTX_free(ctx);
	buf[l1 + l2] = '\0';
	*out = buf;
	*outlen = (size_t)(l1 + l2);
	return 0;
}

/* Split "https://host:port/prefix". */
int
kubeconfig_split_url(const char *url, bool *tls, char **host, char **port, char **prefix)
{
	const char *p, *h, *hend, *slash, *colon = NULL;
	char *ph;

	*host = *port = *prefix = NULL;
	if (strncmp(url, "https://", 8) == 0) {
		*tls = true;
		p = url + 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		*tls = false;
		p = url + 7;
	} else {
		return -EINVAL;
	}
	slash = p + strcspn(p, "/?#");
	if (*slash == '?' || *slash == '#')
		return -EINVAL;
	if (*p == '[') {
		h = p + 1;
		if ((hend = memchr(h, ']', (size_t)(slash - h))) == NULL)
			return -EINVAL;
		if (hend[1] == ':')
			colon = hend + 1;
		else if (hend + 1 != slash)
			return -EINVAL;
	} else {
		h = p;
		colon = memchr(p, ':', (size_t)(slash - p));
		hend = colon != NULL ? colon : slash;
	}
	if (hend == h)
		return -EINVAL;
	for (const char *q = h; q < hend; q++) {
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f || *q == '@')
			return -EINVAL;
	}
	if (colon != NULL) {
		if (colon + 1 == slash || slash - colon - 1 > 5)
			return -EINVAL;
		for (const char *q = colon + 1; q < slash; q++) {
			if (*q < '0' || *q > '9')
				return -EINVAL;
		}
		if (atoi(colon + 1) < 1 || atoi(colon + 1) > 65535)
			return -EINVAL;
	}
	if ((*host = strndup(h, (size_t)(hend - h))) == NULL)
		return -ENOMEM;
	if (colon != NULL)
		*port = strndup(colon + 1, (size_t)(slash - colon - 1));
	else
		*port = strdup(*tls ? "443" : "80");
	/* The prefix without a trailing '/'. */
	ph = strdup(slash);
	if (ph != NULL) {
		size_t l = strlen(ph);

		while (l > 0 && ph[l - 1] == '/')
			ph[--l] = '\0';
		for (size_t i = 0; i < l; i++) {
			if ((unsigned char)ph[i] <= 0x20 || (unsigned char)ph[i] >= 0x7f) {
				free(ph);
				ph = NULL;
				free(*host);
				free(*port);
				*host = *port = NULL;
				return -EINVAL;
			}
		}
	}
	*prefix = ph;
	if (*port == NULL || *prefix == NULL) {
		free(*host);
		free(*port);
		free(*prefix);
		*host = *port = *prefix = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Read the exec plugin's settings. */
static int
kc_exec(yaml_document_t *doc, yaml_node_t *ex, struct kubeconfig *kc, bool *oom,
    char *err, size_t errlen)
{
	yaml_node_t *args = kc_get(doc, ex, "args"), *env = kc_get(doc, ex, "env"), *item;
	yaml_node_item_t *it;
	const char *v, *name, *value;
	size_t n = 0;

	if ((v = kc_str(kc_get(doc, ex, "command"))) == NULL)
		return kc_fail(err, errlen, "the user's exec plugin has no command");
	kc->exec_command = kc_dup(v, oom);
	v = kc_str(kc_get(doc, ex, "apiVersion"));
	if (v == NULL || (strcmp(v, "client.authentication.k8s.io/v1") != 0 &&
	    strcmp(v, "client.authentication.k8s.io/v1beta1") != 0))
		return kc_fail(err, errlen, "the user's exec plugin has apiVersion %.80s; "
		    "client.authentication.k8s.io/v1 and v1beta1 are understood",
		    v != NULL ? v : "(none)");
	kc->exec_api_version = kc_dup(v, oom);
	kc->exec_cluster_info = kc_true(kc_get(doc, ex, "provideClusterInfo"));
	if ((v = kc_str(kc_get(doc, ex, "interactiveMode"))) != NULL &&
	    strcmp(v, "Always") == 0)
		return kc_fail(err, errlen, "the user's exec plugin needs a terminal "
		    "(interactiveMode: Always)");
	if (args != NULL && args->type == YAML_SEQUENCE_NODE) {
		n = (size_t)(args->data.sequence.items.top - args->data.sequence.items.start);
		if ((kc->exec_args = calloc(n + 1, sizeof *kc->exec_args)) == NULL)
			return -ENOMEM;
		n = 0;
		for (it = args->data.sequence.items.start; it < args->data.sequence.items.top;
		    it++) {
			item = yaml_document_get_node(doc, *it);
			if (item == NULL || item->type != YAML_SCALAR_NODE)
				return kc_fail(err, errlen, "the exec plugin's args must be strings");
			kc->exec_args[n++] = kc_dup((const char *)item->data.scalar.value, oom);
		}
	}
	if (env != NULL && env->type == YAML_SEQUENCE_NODE) {
		n = (size_t)(env->data.sequence.items.top - env->data.sequence.items.start);
		if ((kc->exec_env = calloc(n + 1, sizeof *kc->exec_env)) == NULL)
			return -ENOMEM;
		n = 0;
		for (it = env->data.sequence.items.start; it < env->data.sequence.items.top;
		    it++) {
			item = yaml_document_get_node(doc, *it);
			name = kc_str(kc_get(doc, item, "name"));
			value = kc_str(kc_get(doc, item, "value"));
			if (name == NULL || strchr(name, '=') != NULL)
				return kc_fail(err, errlen, "the exec plugin's env needs names");
			if (asprintf(&kc->exec_env[n], "%s=%s", name, value != NULL ? value : "") < 0)
				return -ENOMEM;
			n++;
		}
	}
	return 0;
}

/* Note the first unsupported setting. */
static void
kc_unsupported(struct kubeconfig *kc, const char *what, bool *oom)
{
	if (kc->unsupported == NULL)
		kc->unsupported = kc_dup(what, oom);
}

/* Fill kc from a loaded document. */
static int
kc_fill(yaml_document_t *doc, const char *context, const char *dir, struct kubeconfig *kc,
    char *err, size_t errlen)
{
	yaml_node_t *root = yaml_document_get_root_node(doc), *ctx, *cl, *us, *ex;
	const char *cname, *clname, *uname, *v;
	bool oom = false;
	int r;

	if (root == NULL || root->type != YAML_MAPPING_NODE)
		return kc_fail(err, errlen, "not a kubeconfig (no mapping at the top)");
	cname = context != NULL ? context : kc_str(kc_get(doc, root, "current-context"));
	if (cname == NULL)
		return kc_fail(err, errlen, "no context given and no current-context");
	if ((ctx = kc_named(doc, root, "contexts", "context", cname)) == NULL)
		return kc_fail(err, errlen, "context \"%.80s\" not found", cname);
	clname = kc_str(kc_get(doc, ctx, "cluster"));
	uname = kc_str(kc_get(doc, ctx, "user"));
	if (clname == NULL || (cl = kc_named(doc, root, "clusters", "cluster", clname)) == NULL)
		return kc_fail(err, errlen, "the cluster of context \"%.80s\" is not defined",
		    cname);
	us = uname != NULL ? kc_named(doc, root, "users", "user", uname) : NULL;
	kc->context = kc_dup(cname, &oom);
	kc->cluster = kc_dup(clname, &oom);
	kc->user = kc_dup(uname != NULL ? uname : "", &oom);

	if ((v = kc_str(kc_get(doc, cl, "server"))) == NULL)
		return kc_fail(err, errlen, "cluster \"%.80s\" has no server", clname);
	kc->server = kc_dup(v, &oom);
	if ((r = kubeconfig_split_url(v, &kc->tls, &kc->host, &kc->port, &kc->prefix)) < 0) {
		if (r == -ENOMEM)
			return r;
		return kc_fail(err, errlen, "cluster \"%.80s\": server \"%.120s\" is not an "
		    "http(s) URL", clname, v);
	}
	if ((v = kc_str(kc_get(doc, cl, "certificate-authority-data"))) != NULL) {
		if ((r = kc_base64(v, &kc->ca_pem, &kc->ca_len)) < 0)
			return r == -ENOMEM ? r : kc_fail(err, errlen,
			    "certificate-authority-data is not base64");
	} else {
		kc->ca_file = kc_path(dir, kc_str(kc_get(doc, cl, "certificate-authority")), &oom);
	}
	kc->server_name = kc_dup(kc_str(kc_get(doc, cl, "tls-server-name")), &oom);
	kc->insecure = kc_true(kc_get(doc, cl, "insecure-skip-tls-verify"));
	if (kc_str(kc_get(doc, cl, "proxy-url")) != NULL)
		kc_unsupported(kc, "proxy-url", &oom);

	if (us != NULL) {
		if ((v = kc_str(kc_get(doc, us, "client-certificate-data"))) != NULL &&
		    (r = kc_base64(v, &kc->cert_pem, &kc->cert_len)) < 0)
			return r == -ENOMEM ? r : kc_fail(err, errlen,
			    "client-certificate-data is not base64");
		if ((v = kc_str(kc_get(doc, us, "client-key-data"))) != NULL &&
		    (r = kc_base64(v, &kc->key_pem, &kc->key_len)) < 0)
			return r == -ENOMEM ? r : kc_fail(err, errlen,
			    "client-key-data is not base64");
		kc->cert_file = kc_path(dir, kc_str(kc_get(doc, us, "client-certificate")), &oom);
		kc->key_file = kc_path(dir, kc_str(kc_get(doc, us, "client-key")), &oom);
		kc->token = kc_dup(kc_str(kc_get(doc, us, "token")), &oom);
		kc->token_file = kc_path(dir, kc_str(kc_get(doc, us, "tokenFile")), &oom);
		if ((ex = kc_get(doc, us, "exec")) != NULL && ex->type == YAML_MAPPING_NODE &&
		    (r = kc_exec(doc, ex, kc, &oom, err, errlen)) < 0)
			return r;
		if (kc_get(doc, us, "auth-provider") != NULL)
			kc_unsupported(kc, "auth-provider", &oom);
		if (kc_str(kc_get(doc, us, "username")) != NULL ||
		    kc_str(kc_get(doc, us, "password")) != NULL)
			kc_unsupported(kc, "username/password (basic authentication)", &oom);
		if (kc_get(doc, us, "as") != NULL || kc_get(doc, us, "as-groups") != NULL)
			kc_unsupported(kc, "impersonation in the kubeconfig (as, as-groups)", &oom);
		if ((kc->cert_pem != NULL || kc->cert_file != NULL) !=
		    (kc->key_pem != NULL || kc->key_file != NULL))
			return kc_fail(err, errlen, "user \"%.80s\" has a client certificate "
			    "without a key, or a key without a certificate", uname);
	}
	return oom ? -ENOMEM : 0;
}

/* Parse kubeconfig text. */
int
kubeconfig_parse(const char *text, size_t len, const char *context, const char *dir,
    struct kubeconfig *kc, char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	int r;

	memset(kc, 0, sizeof *kc);
	if (errlen > 0)
		err[0] = '\0';
	if (len > KUBECONFIG_MAX)
		return kc_fail(err, errlen, "the kubeconfig is larger than %u bytes",
		    KUBECONFIG_MAX);
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		r = kc_fail(err, errlen, "not valid YAML (line %zu: %.80s)",
		    parser.problem_mark.line + 1, parser.problem != NULL ? parser.problem : "?");
		yaml_parser_delete(&parser);
		return r;
	}
	yaml_parser_delete(&parser);
	r = kc_fill(&doc, context, dir, kc, err, errlen);
	yaml_document_delete(&doc);
	return r;
}

/* Read a whole small file (NUL-terminated). */
static int
kc_read_file(const char *path, size_t max, char **out, size_t *outlen)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, r = 0;

	*out = NULL;
	*outlen = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		r = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return r;
}

/* Load a kubeconfig file. */
int
kubeconfig_load(const char *path, const char *context, struct kubeconfig *kc, char *err,
    size_t errlen)
{
	char *text = NULL, *dir = NULL, *slash;
	size_t len;
	int r;

	memset(kc, 0, sizeof *kc);
	if ((r = kc_read_file(path, KUBECONFIG_MAX, &text, &len)) < 0)
		return kc_fail(err, errlen, "cannot read %.200s: %s", path, strerror(-r));
	if ((dir = strdup(path)) == NULL) {
		OPENSSL_clear_free(text, len);
		return -ENOMEM;
	}
	if ((slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		if (*dir == '\0')
			strcpy(dir, "/");
	} else {
		free(dir);
		dir = NULL;
	}
	r = kubeconfig_parse(text, len, context, dir, kc, err, errlen);
	OPENSSL_clear_free(text, len);
	free(dir);
	return r;
}

/* The in-cluster service account. */
int
kubeconfig_in_cluster(const char *sa_dir, struct kubeconfig *kc, char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	bool oom = false;

	memset(kc, 0, sizeof *kc);
	if (sa_dir == NULL)
		sa_dir = KUBECONFIG_SA_DIR;
	if (host == NULL || *host == '\0' || port == NULL || *port == '\0')
		return kc_fail(err, errlen, "no kubeconfig and not in a cluster "
		    "(KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set)");
	if (strlen(host) > 255 || strspn(port, "0123456789") != strlen(port) ||
	    strlen(port) > 5 || strpbrk(host, " /@[]\t") != NULL)
		return kc_fail(err, errlen, "KUBERNETES_SERVICE_HOST or _PORT is malformed");
	kc->tls = true;
	kc->host = kc_dup(host, &oom);
	kc->port = kc_dup(port, &oom);
	kc->prefix = kc_dup("", &oom);
	kc->context = kc_dup("", &oom);
	kc->cluster = kc_dup("in-cluster", &oom);
	kc->user = kc_dup("", &oom);
	if (asprintf(&kc->server, strchr(host, ':') != NULL ? "https://[%s]:%s" :
	    "https://%s:%s", host, port) < 0)
		kc->server = NULL, oom = true;
	if (asprintf(&kc->token_file, "%s/token", sa_dir) < 0)
		kc->token_file = NULL, oom = true;
	if (asprintf(&kc->ca_file, "%s/ca.crt", sa_dir) < 0)
		kc->ca_file = NULL, oom = true;
	if (access(kc->token_file != NULL ? kc->token_file : "/", R_OK) < 0)
		return kc_fail(err, errlen, "cannot read the service account token %.200s: %s",
		    kc->token_file != NULL ? kc->token_file : "", strerror(errno));
	return oom ? -ENOMEM : 0;
}

/* Free a string array. */
static void
kc_free_strv(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

/* Free what kc holds. */
void
kubeconfig_clear(struct kubeconfig *kc)
{
	free(kc->server);
	free(kc->host);
	free(kc->port);
	free(kc->prefix);
	free(kc->context);
	free(kc->cluster);
	free(kc->user);
	free(kc->ca_pem);
	free(kc->ca_file);
	free(kc->server_name);
	free(kc->cert_pem);
	if (kc->key_pem != NULL)
		OPENSSL_clear_free(kc->key_pem, kc->key_len);
	free(kc->cert_file);
	free(kc->key_file);
	if (kc->token != NULL)
		OPENSSL_clear_free(kc->token, strlen(kc->token));
	free(kc->token_file);
	free(kc->exec_command);
	kc_free_strv(kc->exec_args);
	kc_free_strv(kc->exec_env);
	free(kc->exec_api_version);
	free(kc->unsupported);
	memset(kc, 0, sizeof *kc);
}
