/*
 * Unit tests for broker/kube.c: target names (accepted, refused, canonical
 * form), the kubernetes configuration keys, kubectl argv, and the JSON
 * kubectl prints.
 */
#include "policy/config.h"
#include "kube/kube.h"
#include "kube/kube-incluster.h"
#include "unit.h"

static const char conf[] =
    "recordings: /var/lib/podgate/recordings\n"
    "groups: [{name: oncall}]\n"
    "rules:\n"
    "  - groups: [oncall]\n"
    "    targets: [\"prod:*/*\"]\n"
    "    impersonate: {user: \"{user}\", groups: [oncall, \"team-{user}\"]}\n"
    "    shell: none\n"
    "    interactive_shell: [bash, sh]\n"
    "targets:\n"
    "  kubernetes:\n"
    "    - name: prod\n"
    "      kubeconfig: prod.kubeconfig\n"
    "      context: prod-admin\n"
    "      timeout: 30s\n"
    "    - name: staging\n";

/* The configuration keys land where target-kube.c reads them. */
static void
test_config(void)
{
	struct config *c = load_valid(conf);
	static const char bad[] =
	    "targets:\n  kubernetes:\n    - name: Prod\n    - {kubeconfig: /x}\n"
	    "    - {name: a, kubectl: \"--x\"}\n";
	struct config *b = NULL;

	assert(c->nkube == 2);
	CHECK_STR(c->kube[0].name, "prod");
	CHECK_STR(c->kube[0].kubeconfig, "prod.kubeconfig");
	CHECK_STR(c->kube[0].context, "prod-admin");
	CHECK_STR(c->kube[0].kubectl, "kubectl");
	assert(c->kube[0].timeout == 30);
	CHECK_STR(c->kube[0].cache_dir, "/var/lib/podgate/recordings/.kube/prod");
	assert(c->kube[1].kubeconfig == NULL && c->kube[1].timeout == 10);
	assert(c->rules[0].impersonate && strcmp(c->rules[0].as_user, "{user}") == 0);
	assert(c->rules[0].nas_groups == 2);
	assert(strcmp(c->rules[0].shell, "none") == 0 && c->rules[0].ninteractive == 2);
	config_unref(c);
	assert(config_load_string("bad", bad, strlen(bad), NULL, &b) == -EINVAL && b == NULL);
}

/* Names that parse, and their canonical form. */
static void
test_names_ok(void)
{
	static const struct {
		const char *name, *canonical;
		enum kube_kind kind;
	} ok[] = {
		{ "prod/web-0", "prod:prod/web-0", KUBE_POD },
		{ "prod/web-0/app", "prod:prod/web-0/app", KUBE_POD },
		{ "staging:ns/pod.with.dots", "staging:ns/pod.with.dots", KUBE_POD },
		{ "ns/deploy/api", "prod:ns/deploy/api", KUBE_DEPLOY },
		{ "ns/deployment/api/app", "prod:ns/deploy/api/app", KUBE_DEPLOY },
		{ "prod:ns/sts/web", "prod:ns/sts/web", KUBE_STS },
	};
	struct config *c = load_valid(conf);
	struct kube_target t;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		assert(kube_target_parse(c, ok[i].name, &t, err, sizeof err) == 0);
		assert(strcmp(t.canonical, ok[i].canonical) == 0);
		assert(t.kind == ok[i].kind);
	}
	assert(kube_target_parse(c, "nope:ns/pod", &t, err, sizeof err) == -ENOENT);
	CHECK_STR(err, "no such cluster 'nope'");
	config_unref(c);
}

/* Names refused before they go near kubectl, with the part named. */
static void
test_names_refused(void)
{
	static const struct {
		const char *name, *why;
	} bad[] = {
		{ "", "empty target name" },
		{ "--kubeconfig=/x", "'=' is not allowed" },
		{ "ns/$(id)", "'$' is not allowed" },
		{ "ns/a;b", "';' is not allowed" },
		{ "ns/pod name", "blanks and control characters" },
		{ "ns/p\xc3\xa9", "only ASCII" },
		{ "ns/-c", "pod '-c' is not a valid name" },
		{ "ns//pod", "the pod is empty" },
		{ "/pod", "the namespace is empty" },
		{ "ns/", "the pod is empty" },
		{ ":ns/pod", "the cluster is empty" },
		{ "a:b:ns/pod", "more than one ':'" },
		{ "ns/pod/c/d", "too many '/'" },
		{ "ns/pod-/c", "pod 'pod-' is not a valid name" },
		{ "ns/pod/--as=x", "'=' is not allowed" },
		{ "ns", "the syntax is" },
		{ "Ns/pod", "'N' is not allowed" },
		{ "ns/..", "pod '..' is not a valid name" },
	};
	struct config *c = load_valid(conf);
	struct kube_target t;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert(kube_target_parse(c, bad[i].name, &t, err, sizeof err) == -EINVAL);
		if (strstr(err, bad[i].why) == NULL) {
			fprintf(stderr, "%s: %s\n", bad[i].name, err);
			assert(0);
		}
		assert(strchr(err, '\n') == NULL && strstr(err, "\xc3") == NULL);
	}
	config_unref(c);
}

/* kubectl's argv, exactly. */
static void
test_argv(void)
{
	char sh[] = "sh", dash_c[] = "-c", script[] = "echo hi; id";
	char oncall[] = "oncall", sre[] = "sre";
	char *cmd[] = { sh, dash_c, script, NULL };
	char *groups[] = { oncall, sre, NULL };
	struct kube_exec e = {
		.kubectl = "/usr/bin/kubectl", .kubeconfig = "/k", .context = "ctx",
		.ns = "prod", .pod = "web-0", .container = "app", .tty = true,
		.as_user = "alice", .as_groups = groups, .nas_groups = 2, .command = cmd,
	};
	static const char *const want[] = { "/usr/bin/kubectl", "--kubeconfig", "/k",
	    "--context", "ctx", "exec", "-i", "-t", "-n", "prod", "web-0", "-c", "app", "--as",
	    "alice", "--as-group", "oncall", "--as-group", "sre", "--", "sh", "-c",
	    "echo hi; id", NULL };
	static const char *const want_get[] = { "kubectl", "get", "pod", "web-0", "-n", "prod",
	    "-o", "json", "--request-timeout=5s", NULL };
	char **argv = NULL;
	size_t i;

	assert(kube_exec_argv(&e, &argv) == 0);
	for (i = 0; want[i] != NULL; i++)
		assert(argv[i] != NULL && strcmp(argv[i], want[i]) == 0);
	assert(argv[i] == NULL);
	kube_free_argv(argv);
	memset(&e, 0, sizeof e);
	e.ns = "prod";
	assert(kube_get_argv(&e, "pod", "web-0", 5, NULL, &argv) == 0);
	for (i = 0; want_get[i] != NULL; i++)
		assert(argv[i] != NULL && strcmp(argv[i], want_get[i]) == 0);
	assert(argv[i] == NULL);
	kube_free_argv(argv);
	assert(kube_exec_argv(&e, &argv) == -EINVAL && argv == NULL);
}

/* Pods, pod lists and selectors from kubectl's JSON. */
static void
test_json(void)
{
	static const char pod_json[] =
	    "{\"kind\": \"Pod\", \"metadata\": {\"name\": \"web-0\", \"namespace\": \"prod\",\n"
	    "  \"creationTimestamp\": \"2024-01-02T03:04:05Z\", \"annotations\":\n"
	    "  {\"kubectl.kubernetes.io/default-container\": \"sidecar\"}},\n"
	    " \"spec\": {\"containers\": [{\"name\": \"app\"}, {\"name\": \"sidecar\"}]},\n"
	    " \"status\": {\"phase\": \"Running\", \"containerStatuses\": [{\"name\": \"app\",\n"
	    "  \"state\": {\"waiting\": {\"reason\": \"CrashLoopBackOff\"}}}]}}";
	static const char list_json[] =
	    "{\"kind\": \"PodList\", \"items\": [{\"metadata\": {\"name\": \"a\"}, \"status\":"
	    " {\"phase\": \"Succeeded\"}}, {\"metadata\": {\"name\": \"b\", \"deletionTimestamp\":"
	    " \"2024-01-01T00:00:00Z\"}}, {\"metadata\": {}}]}";
	static const char sel_json[] =
	    "{\"spec\": {\"selector\": {\"matchLabels\": {\"app\": \"api\", \"tier\": \"web\"}}}}";
	static const char bad_sel[] =
	    "{\"spec\": {\"selector\": {\"matchLabels\": {\"app\": \"a,b\"}}}}";
	struct kube_pod pod, *pods = NULL;
	char *sel = NULL;
	size_t n = 0;

	assert(kube_pod_parse(pod_json, strlen(pod_json), &pod) == 0);
	assert(strcmp(pod.name, "web-0") == 0 && strcmp(pod.ns, "prod") == 0);
	CHECK_STR(pod.phase, "Running");
	CHECK_STR(pod.status, "CrashLoopBackOff");
	CHECK_STR(pod.default_container, "sidecar");
	assert(kube_pod_has_container(&pod, "app") && !kube_pod_has_container(&pod, "x"));
	assert(pod.created == 1704164645);
	kube_pod_clear(&pod);
	assert(kube_pod_parse("[1, 2]", 6, &pod) == -EINVAL);
	assert(kube_pod_parse("{not json", 9, &pod) == -EINVAL);

	assert(kube_pods_parse(list_json, strlen(list_json), &pods, &n) == 0);
	assert(n == 2);
	assert(strcmp(pods[0].phase, "Succeeded") == 0 && pods[0].containers[0] == NULL);
	assert(pods[1].deleting && strcmp(pods[1].status, "Terminating") == 0);
	kube_pods_free(pods, n);

	assert(kube_selector_parse(sel_json, strlen(sel_json), &sel) == 0);
	CHECK_STR(sel, "app=api,tier=web");
	free(sel);
	assert(kube_selector_parse(bad_sel, strlen(bad_sel), &sel) == -EINVAL && sel == NULL);
}

/* The in-cluster kubeconfig: written from the service variables, refused when they are odd. */
static void
test_incluster(void)
{
	char *dir = unit_tmpdir("kube-incluster"), path[4096], *text;
	struct stat st;

	unsetenv("KUBERNETES_SERVICE_HOST");
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert(kube_incluster_write(dir, path, sizeof path) == -ENOENT && path[0] == '\0');
	setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1\nusers: []", 1);
	assert(kube_incluster_write(dir, path, sizeof path) == -EINVAL);
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443x", 1);
	assert(kube_incluster_write(dir, path, sizeof path) == -EINVAL);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert(kube_incluster_write(dir, path, sizeof path) == 0);
	assert(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	text = unit_slurp(path, NULL);
	assert(strstr(text, "server: \"https://[fd00::1]:443\"\n") != NULL);
	assert(strstr(text, "tokenFile: " KUBE_INCLUSTER_DIR "/token\n") != NULL);
	assert(strstr(text, "certificate-authority: " KUBE_INCLUSTER_DIR "/ca.crt\n") != NULL);
	free(text);
	/* ensure: an existing file is left as it is; a missing one is written. */
	{
		struct stat before, after;

		assert(stat(path, &before) == 0);
		assert(kube_incluster_ensure(dir, path, sizeof path) == 0);
		assert(stat(path, &after) == 0 && after.st_ino == before.st_ino);
		assert(unlink(path) == 0);
		assert(kube_incluster_ensure(dir, path, sizeof path) == 0 && stat(path, &after) == 0);
	}
	assert(unlink(path) == 0 && rmdir(dir) == 0);
	free(dir);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

/* Captured output keeps at most its cap and stays a string. */
static void
test_capture(void)
{
	struct buf b = { 0 };
	char big[300];

	kube_capture(&b, "", 0, 8);
	assert(b.len == 0);
	kube_capture(&b, "hello", 5, 8);
	assert(b.len == 5 && strcmp(b.data, "hello") == 0);
	kube_capture(&b, " world", 6, 8);
	assert(b.len == 8 && strcmp(b.data, "hello wo") == 0);
	kube_capture(&b, "more", 4, 8);
	assert(b.len == 8 && strcmp(b.data, "hello wo") == 0);
	buf_free(&b);
	/* Past the first allocation. */
	memset(big, 'x', sizeof big);
	kube_capture(&b, big, sizeof big, 1000);
	kube_capture(&b, big, sizeof big, 1000);
	assert(b.len == 2 * sizeof big && b.data[b.len] == '\0' && !b.oom);
	buf_free(&b);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{ "config", test_config },
		{ "incluster", test_incluster },
		{ "names_ok", test_names_ok },
		{ "names_refused", test_names_refused },
		{ "argv", test_argv },
		{ "json", test_json },
		{ "capture", test_capture },
	};
	char *dir = unit_tmpdir("kube");
	int status;

	/* Run in a directory of its own, where prod.kubeconfig exists. */
	assert(chdir(dir) == 0);
	free(unit_write_file(NULL, "prod.kubeconfig", "", 0600));
	status = unit_run("kube", tests, UNIT_COUNT(tests));
	unit_rmtree(dir);
	free(dir);
	return status;
}
