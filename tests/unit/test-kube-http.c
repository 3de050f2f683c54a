/*
 * Unit tests for the native Kubernetes transport's parts without I/O:
 * broker/kube-http.c (responses fed whole and byte by byte, golden
 * table), broker/kube-json.c (exec status, Status, ExecCredential) and
 * broker/kubeconfig.c (contexts, credentials, refusals, in-cluster), and
 * the transport and keepalive configuration keys.
 */
#include "policy/config.h"
#include "kube/kube-http.h"
#include "kube/kube-json.h"
#include "kube/kubeconfig.h"
#include "unit.h"

/* A response and what reading it must give. */
static const struct {
	const char *in;
	long status;		/* negative: the error expected */
	const char *body;
	bool keep_alive;
	size_t rest;		/* bytes left over after the response */
} responses[] = {
	{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", true, 0 },
	{ "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nConnection: close\r\n\r\nhiXY", 200, "hi", false, 2 },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n",
	  200, "abcde", true, 0 },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\n\r\n",
	  200, "a", true, 0 },
	{ "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x82\x01\x01", 101, "",
	  true, 3 },
	{ "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, "", true, 0 },
	{ "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nz", 200, "z", false, 0 },
	{ "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}", 404, "{}", true, 0 },
	{ "HTTP/1.1 200 OK\nContent-Length: 0\n\n", -EPROTO, NULL, false, 0 },
	{ "HTTP/2 200 OK\r\n\r\n", -EPROTO, NULL, false, 0 },
	{ "HTTP/1.1 99 Low\r\n\r\n", -EPROTO, NULL, false, 0 },
	{ "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", -EPROTO, NULL, false, 0 },
	{ "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", -EPROTO, NULL, false, 0 },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", -EPROTO, NULL, false, 0 },
	{ "HTTP/1.1 200 OK\r\n folded\r\n\r\n", -EPROTO, NULL, false, 0 },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", -EPROTO, NULL, false, 0 },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", -EPROTO, NULL, false, 0 },
};

/* Feed in, whole or one byte at a time. */
static long
feed(struct kube_http_resp *r, const char *in, size_t len, bool bytewise, size_t *used)
{
	size_t off = 0;
	long n;

	while (off < len && !kube_http_resp_done(r)) {
		n = kube_http_resp_feed(r, in + off, bytewise ? 1 : len - off);
		if (n < 0)
			return n;
		off += (size_t)n;
		if (n == 0)
			break;
	}
	*used = off;
	return kube_http_resp_done(r) ? r->status : -EAGAIN;
}

static void
test_responses(void)
{
	struct kube_http_resp r;
	size_t i, used, len;
	long st;

	for (i = 0; i < sizeof responses / sizeof responses[0]; i++) {
		for (int bytewise = 0; bytewise < 2; bytewise++) {
			len = strlen(responses[i].in);
			kube_http_resp_init(&r, false);
			st = feed(&r, responses[i].in, len, bytewise, &used);
			if (st != responses[i].status) {
				fprintf(stderr, "response %zu (%s): %ld, expected %ld\n", i,
				    bytewise ? "bytewise" : "whole", st, responses[i].status);
				assert(0);
			}
			if (st > 0) {
				assert(strcmp(r.body.data != NULL ? r.body.data : "", responses[i].body) == 0);
				assert(r.keep_alive == responses[i].keep_alive);
				assert(len - used == responses[i].rest);
			}
			kube_http_resp_clear(&r);
		}
	}
	/* A body up to the end of the connection. */
	kube_http_resp_init(&r, false);
	assert(kube_http_resp_feed(&r, "HTTP/1.1 200 OK\r\n\r\nall of it", 29) == 29);
	assert(!kube_http_resp_done(&r));
	assert(kube_http_resp_eof(&r) == 0 && strcmp(r.body.data, "all of it") == 0 && !r.keep_alive);
	kube_http_resp_clear(&r);
	/* Cut short. */
	kube_http_resp_init(&r, false);
	assert(kube_http_resp_feed(&r, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", 41) == 41);
	assert(kube_http_resp_eof(&r) == -EPIPE);
	kube_http_resp_clear(&r);
	/* Headers the upgrade needs. */
	{
		static const char up[] = "HTTP/1.1 101 Switching Protocols\r\n"
		    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		    "Sec-WebSocket-Accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n"
		    "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n";

		kube_http_resp_init(&r, false);
		st = kube_http_resp_feed(&r, up, sizeof up - 1);
	}
	assert(st > 0 && kube_http_resp_done(&r));
	assert(strcmp(r.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
	assert(strcmp(r.protocol, "v5.channel.k8s.io") == 0);
	kube_http_resp_clear(&r);
}

/* The head and the body stop at their limits; a NUL in the head is refused. */
static void
test_limits(void)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\n";
	struct kube_http_resp r;
	char line[1024], *body;
	size_t fed, at;
	long n;

	/* Header lines up to 64 KiB of head, and not a byte more. */
	memset(line, 'a', sizeof line);
	memcpy(line, "X-Pad: ", 7);
	line[sizeof line - 2] = '\r';
	line[sizeof line - 1] = '\n';
	kube_http_resp_init(&r, false);
	assert(kube_http_resp_feed(&r, ok, sizeof ok - 1) == (long)(sizeof ok - 1));
	for (fed = sizeof ok - 1; fed + sizeof line < KUBE_HTTP_HEAD_MAX; fed += sizeof line)
		assert(kube_http_resp_feed(&r, line, sizeof line) == (long)sizeof line);
	assert(kube_http_resp_feed(&r, line, sizeof line) == -EMSGSIZE);
	kube_http_resp_clear(&r);

	/* A NUL in a later line of the head. */
	kube_http_resp_init(&r, false);
	assert(kube_http_resp_feed(&r, ok, sizeof ok - 1) == (long)(sizeof ok - 1));
	assert(kube_http_resp_feed(&r, "X-A: b\0c\r\n", 10) == -EPROTO);
	kube_http_resp_clear(&r);

	/* A body of exactly the limit is read whole; one byte more is refused. */
	assert((body = malloc(KUBE_HTTP_BODY_MAX + 1)) != NULL);
	memset(body, 'b', KUBE_HTTP_BODY_MAX + 1);
	for (at = 0; at < 2; at++) {
		char head[128];
		int hl = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
		    (size_t)KUBE_HTTP_BODY_MAX + at);

		kube_http_resp_init(&r, false);
		assert(kube_http_resp_feed(&r, head, (size_t)hl) == hl);
		n = kube_http_resp_feed(&r, body, KUBE_HTTP_BODY_MAX + at);
		if (at == 0) {
			assert(n == (long)KUBE_HTTP_BODY_MAX && kube_http_resp_done(&r));
			assert(r.body.len == KUBE_HTTP_BODY_MAX && r.body.data[r.body.len] == '\0');
		} else {
			assert(n == -EMSGSIZE);
		}
		kube_http_resp_clear(&r);
	}
	free(body);
}

static void
test_escape_and_key(void)
{
	struct buf b = { 0 };
	char key[25], acc[29], again[29];

	assert(kube_http_escape(&b, "sh") == 0);
	assert(kube_http_escape(&b, " -c 'a&b=c';~._/\n") == 0);
	assert(strcmp(b.data, "sh%20-c%20%27a%26b%3Dc%27%3B~._%2F%0A") == 0 &&
	    b.len == strlen(b.data));
	buf_free(&b);
	/* Nothing to encode is still a string. */
	assert(kube_http_escape(&b, "") == 0 && b.data != NULL && *b.data == '\0');
	buf_free(&b);
	/* RFC 6455's example. */
	kube_http_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", acc);
	assert(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
	assert(kube_http_ws_key(key, acc) == 0 && strlen(key) == 24 && strlen(acc) == 28);
	kube_http_ws_accept(key, again);
	assert(strcmp(acc, again) == 0);
}

static void
test_json(void)
{
	struct kube_json_cred c;
	char msg[200], err[200];
	int code;

	assert(kube_json_exec_status("{\"metadata\":{},\"status\":\"Success\"}", 34, &code, msg,
	    sizeof msg) == 0 && code == 0);
	{
		const char *s = "{\"status\":\"Failure\",\"reason\":\"NonZeroExitCode\",\"details\":"
		    "{\"causes\":[{\"reason\":\"ExitCode\",\"message\":\"42\"}]},\"message\":\"x\"}";

		assert(kube_json_exec_status(s, strlen(s), &code, msg, sizeof msg) == 0);
		assert(code == 42);
	}
	{
		const char *s = "{\"status\":\"Failure\",\"reason\":\"InternalError\",\"message\":"
		    "\"Internal error\\noccurred\"}";

		assert(kube_json_exec_status(s, strlen(s), &code, msg, sizeof msg) == 0);
		assert(code == -1 && strcmp(msg, "Internal error occurred") == 0);
	}
	{
		const char *s = "{\"status\":\"Failure\",\"reason\":\"NonZeroExitCode\",\"details\":"
		    "{\"causes\":[{\"reason\":\"ExitCode\",\"message\":\"300\"}]}}";

		assert(kube_json_exec_status(s, strlen(s), &code, msg, sizeof msg) == 0);
		assert(code == -1);
	}
	assert(kube_json_exec_status("[1]", 3, &code, msg, sizeof msg) == -EINVAL);
	assert(kube_json_exec_status("{\"status\":", 10, &code, msg, sizeof msg) == -EINVAL);
	assert(kube_json_status_message("{\"message\":\"pods \\\"x\\\" not found\"}", 34, msg,
	    sizeof msg) == 0 && strcmp(msg, "pods \"x\" not found") == 0);
	assert(kube_json_status_message("{}", 2, msg, sizeof msg) == -EINVAL);
	{
		const char *s = "{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":"
		    "\"ExecCredential\",\"status\":{\"token\":\"t\",\"expirationTimestamp\":"
		    "\"2030-01-02T03:04:05.5+01:00\"}}";

		assert(kube_json_exec_credential(s, strlen(s), "client.authentication.k8s.io/v1",
		    &c, err, sizeof err) == -EINVAL);
		assert(strstr(err, "v1beta1") != NULL);
		assert(kube_json_exec_credential(s, strlen(s),
		    "client.authentication.k8s.io/v1beta1", &c, err, sizeof err) == 0);
		assert(strcmp(c.token, "t") == 0 && c.expires == 1893553445 - 3600);
		kube_json_cred_clear(&c);
	}
	{
		const char *s = "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":"
		    "\"ExecCredential\",\"status\":{\"clientCertificateData\":\"C\"}}";

		assert(kube_json_exec_credential(s, strlen(s), "client.authentication.k8s.io/v1",
		    &c, err, sizeof err) == -EINVAL);
	}
	assert(kube_json_time("2024-01-02T03:04:05Z") == 1704164645);
	assert(kube_json_time("2024-01-02T03:04:05") == 0);
	assert(kube_json_time("yesterday") == 0);
}

static const char kubeconfig[] =
    "apiVersion: v1\n"
    "kind: Config\n"
    "clusters:\n"
    "- name: a\n"
    "  cluster:\n"
    "    server: https://[::1]:6443/proxy/\n"
    "    certificate-authority-data: aGVsbG8=\n"
    "    tls-server-name: kubernetes.default\n"
    "- name: b\n"
    "  cluster: {server: \"http://kube.example\", certificate-authority: ca.crt, "
    "insecure-skip-tls-verify: true}\n"
    "users:\n"
    "- name: t\n"
    "  user: {token: sekret, client-certificate: c.crt, client-key: /k.key}\n"
    "- name: p\n"
    "  user:\n"
    "    exec:\n"
    "      apiVersion: client.authentication.k8s.io/v1\n"
    "      command: get-token\n"
    "      args: [--cluster, b]\n"
    "      env: [{name: A, value: \"1\"}]\n"
    "      provideClusterInfo: true\n"
    "- name: o\n"
    "  user: {auth-provider: {name: oidc}}\n"
    "- name: half\n"
    "  user: {client-certificate-data: aGVsbG8=}\n"
    "contexts:\n"
    "- {name: ctx-a, context: {cluster: a, user: t}}\n"
    "- {name: ctx-b, context: {cluster: b, user: p}}\n"
    "- {name: ctx-o, context: {cluster: a, user: o}}\n"
    "- {name: ctx-half, context: {cluster: a, user: half}}\n"
    "- {name: ctx-none, context: {cluster: nope, user: t}}\n"
    "current-context: ctx-a\n";

static void
test_kubeconfig(void)
{
	struct kubeconfig kc;
	char err[300], *dir, *path;

	assert(kubeconfig_parse(kubeconfig, sizeof kubeconfig - 1, NULL, "/etc/pg", &kc, err,
	    sizeof err) == 0);
	assert(strcmp(kc.context, "ctx-a") == 0 && kc.tls);
	assert(strcmp(kc.host, "::1") == 0 && strcmp(kc.port, "6443") == 0);
	assert(strcmp(kc.prefix, "/proxy") == 0);
	assert(kc.ca_len == 5 && memcmp(kc.ca_pem, "hello", 5) == 0);
	assert(strcmp(kc.server_name, "kubernetes.default") == 0);
	assert(strcmp(kc.token, "sekret") == 0);
	assert(strcmp(kc.cert_file, "/etc/pg/c.crt") == 0 && strcmp(kc.key_file, "/k.key") == 0);
	assert(kc.unsupported == NULL);
	kubeconfig_clear(&kc);

	assert(kubeconfig_parse(kubeconfig, sizeof kubeconfig - 1, "ctx-b", NULL, &kc, err,
	    sizeof err) == 0);
	assert(!kc.tls && strcmp(kc.port, "80") == 0 && kc.insecure);
	assert(strcmp(kc.ca_file, "ca.crt") == 0);
	assert(strcmp(kc.exec_command, "get-token") == 0 && kc.exec_cluster_info);
	assert(strcmp(kc.exec_args[0], "--cluster") == 0 && kc.exec_args[2] == NULL);
	assert(strcmp(kc.exec_env[0], "A=1") == 0 && kc.exec_env[1] == NULL);
	kubeconfig_clear(&kc);

	assert(kubeconfig_parse(kubeconfig, sizeof kubeconfig - 1, "ctx-o", NULL, &kc, err,
	    sizeof err) == 0);
	assert(kc.unsupported != NULL && strcmp(kc.unsupported, "auth-provider") == 0);
	kubeconfig_clear(&kc);

	assert(kubeconfig_parse(kubeconfig, sizeof kubeconfig - 1, "ctx-half", NULL, &kc, err,
	    sizeof err) == -EINVAL && strstr(err, "without a key") != NULL);
	kubeconfig_clear(&kc);
	assert(kubeconfig_parse(kubeconfig, sizeof kubeconfig - 1, "ctx-none", NULL, &kc, err,
	    sizeof err) == -EINVAL && strstr(err, "not defined") != NULL);
	kubeconfig_clear(&kc);
	assert(kubeconfig_parse(kubeconfig, sizeof kubeconfig - 1, "nope", NULL, &kc, err,
	    sizeof err) == -EINVAL && strstr(err, "context \"nope\" not found") != NULL);
	kubeconfig_clear(&kc);
	assert(kubeconfig_parse("[1, 2", 5, NULL, NULL, &kc, err, sizeof err) == -EINVAL);
	kubeconfig_clear(&kc);

	/* Server URLs. */
	{
		static const char *const bad[] = { "ftp://x", "https://", "https://a:0",
		    "https://a:65536", "https://a b", "https://u@h", "https://[::1", "https://a?x",
		    "https://a:/" };
		char *h, *p, *pre;
		bool tls;
		size_t i;

		for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
			assert(kubeconfig_split_url(bad[i], &tls, &h, &p, &pre) == -EINVAL);
		assert(kubeconfig_split_url("https://k8s.example.com", &tls, &h, &p, &pre) == 0);
		assert(tls && strcmp(h, "k8s.example.com") == 0 && strcmp(p, "443") == 0 &&
		    strcmp(pre, "") == 0);
		free(h);
		free(p);
		free(pre);
	}

	/* In-cluster: the environment and the service account directory. */
	dir = unit_tmpdir("kube-sa");
	path = unit_write_file(dir, "token", "tok\n", 0600);
	unsetenv("KUBERNETES_SERVICE_HOST");
	assert(kubeconfig_in_cluster(dir, &kc, err, sizeof err) == -EINVAL);
	kubeconfig_clear(&kc);
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert(kubeconfig_in_cluster(dir, &kc, err, sizeof err) == 0);
	assert(strcmp(kc.host, "10.96.0.1") == 0 && strcmp(kc.port, "443") == 0 && kc.tls);
	assert(strcmp(kc.token_file, path) == 0 && strstr(kc.ca_file, "/ca.crt") != NULL);
	kubeconfig_clear(&kc);
	unit_rmtree(dir);
	free(path);
	free(dir);
}

static void
test_config_keys(void)
{
	static const char ok[] =
	    "targets:\n  kubernetes:\n"
	    "    - {name: a}\n"
	    "    - {name: b, transport: kubectl, keepalive: 2m}\n";
	static const char bad[] =
	    "targets:\n  kubernetes:\n    - {name: a, transport: spdy}\n";
	struct config *c = NULL;

	assert(config_load_string("t", ok, sizeof ok - 1, NULL, &c) == 0);
	assert(c->kube[0].transport == CFG_KUBE_NATIVE && c->kube[0].keepalive == 30);
	assert(c->kube[1].transport == CFG_KUBE_KUBECTL && c->kube[1].keepalive == 120);
	config_unref(c);
	assert(config_load_string("t", bad, sizeof bad - 1, NULL, &c) == -EINVAL && c == NULL);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{ "responses", test_responses },
		{ "limits", test_limits },
		{ "escape_and_key", test_escape_and_key },
		{ "json", test_json },
		{ "kubeconfig", test_kubeconfig },
		{ "config_keys", test_config_keys },
	};

	return unit_run("kube-http", tests, UNIT_COUNT(tests));
}
