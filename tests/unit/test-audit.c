/*
 * Unit tests for broker/audit.c: exact bytes of escaped lines, the file's
 * mode and directory, refused paths and stdout; secrets redacted and proved.
 */
#include <fcntl.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "policy/audit.h"
#include "policy/config.h"
#include "unit.h"

static char *tmpdir;		/* the scratch directory, made by main */

/* A whole file as a new string. */
#define slurp(path) unit_slurp(path, NULL)

/* Check that line starts with a well-formed time and return what follows it. */
static const char *
skip_time(const char *line)
{
	static const char shape[] = "{\"time\":\"dddd-dd-ddTdd:dd:dd.dddddddddZ\"";
	size_t i;

	for (i = 0; shape[i] != '\0'; i++) {
		if (shape[i] == 'd')
			assert(line[i] >= '0' && line[i] <= '9');
		else
			assert(line[i] == shape[i]);
	}
	return line + i;
}

/* Lines in a new file under a new directory: exact bytes, mode 0600, dir 0700. */
static void
test_file(void)
{
	struct audit *a = NULL;
	struct stat st;
	char *path, *dir, *text, *line2;
	const char *rest;
	mode_t old;

	assert(asprintf(&dir, "%s/state/sub", tmpdir) > 0);
	assert(asprintf(&path, "%s/audit.jsonl", dir) > 0);
	old = umask(0);
	assert(audit_open(path, &a) == 0 && a != NULL);
	umask(old);
	assert(stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600);
	assert(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);

	audit_event(a, "auth_success", (struct audit_field[]){
		AUDIT_STR("user", "alice"),
		AUDIT_STR("key", "SHA256:abc/+="),
		AUDIT_NUM("port", 52100),
		AUDIT_NUM("neg", -9223372036854775807LL - 1),
	}, 4);
	audit_event(a, "odd", (struct audit_field[]){
		AUDIT_STR("q", "say \"hi\"\\ now"),
		AUDIT_STR("nl", "a\nb\r\tc\x01\x1f\x7f"),
		AUDIT_STR("utf8", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
		AUDIT_STR("bad", "\xff|\xe2\x82|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xc3"),
		AUDIT_STR("null", NULL),
		AUDIT_STR("k\"ey", "/"),
	}, 6);
	audit_event(a, "empty", NULL, 0);
	audit_close(a);

	text = slurp(path);
	rest = skip_time(text);
	line2 = strchr(text, '\n') + 1;
	assert(strncmp(rest, ",\"event\":\"auth_success\",\"user\":\"alice\","
	    "\"key\":\"SHA256:abc/+=\",\"port\":52100,\"neg\":-9223372036854775808}\n",
	    (size_t)(line2 - rest)) == 0);
	rest = skip_time(line2);
	line2 = strchr(line2, '\n') + 1;
	assert(strncmp(rest, ",\"event\":\"odd\","
	    "\"q\":\"say \\\"hi\\\"\\\\ now\","
	    "\"nl\":\"a\\u000ab\\u000d\\u0009c\\u0001\\u001f\\u007f\","
	    "\"utf8\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\","
	    "\"bad\":\"\xef\xbf\xbd|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|"
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
	    "\xef\xbf\xbd|\xef\xbf\xbd\","
	    "\"null\":\"\",\"k\\\"ey\":\"/\"}\n", (size_t)(line2 - rest)) == 0);
	rest = skip_time(line2);
	assert(strcmp(rest, ",\"event\":\"empty\"}\n") == 0);
	free(text);

	/* Reopening appends. */
	assert(audit_open(path, &a) == 0);
	audit_event(a, "again", NULL, 0);
	audit_close(a);
	text = slurp(path);
	assert(strstr(text, "\"event\":\"empty\"}\n{\"time\":") != NULL);
	assert(strstr(text, ",\"event\":\"again\"}\n") != NULL);
	free(text);
	free(path);
	free(dir);
}

/* Symlinks, FIFOs and impossible paths are refused, without hanging. */
static void
test_refused(void)
{
	struct audit *a = (struct audit *)1;
	char *link, *fifo, *file, *under;
	int r;

	assert(asprintf(&file, "%s/target", tmpdir) > 0);
	assert(asprintf(&link, "%s/link", tmpdir) > 0);
	assert(asprintf(&fifo, "%s/fifo", tmpdir) > 0);
	assert(asprintf(&under, "%s/target/x.jsonl", tmpdir) > 0);
	close(open(file, O_WRONLY | O_CREAT, 0600));
	assert(symlink(file, link) == 0);
	assert(mkfifo(fifo, 0600) == 0);

	assert(audit_open(link, &a) == -ELOOP && a == NULL);
	r = audit_open(fifo, &a);
	assert((r == -ENXIO || r == -EINVAL) && a == NULL);
	a = (struct audit *)1;
	assert(audit_open(under, &a) == -ENOTDIR && a == NULL);
	assert(audit_open("", &a) == -EINVAL && a == NULL);

	/* A NULL log is accepted and does nothing. */
	audit_event(NULL, "x", NULL, 0);
	audit_close(NULL);
	free(file);
	free(link);
	free(fifo);
	free(under);
}

/* "-" writes to stdout and does not close it. */
static void
test_stdout(void)
{
	struct audit *a = NULL;
	char *path, *text;
	int fd, saved;

	assert(asprintf(&path, "%s/stdout", tmpdir) > 0);
	assert((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) != -1);
	fflush(stdout);
	assert((saved = dup(STDOUT_FILENO)) != -1);
	assert(dup2(fd, STDOUT_FILENO) == STDOUT_FILENO);
	close(fd);
	assert(audit_open("-", &a) == 0);
	audit_event(a, "to_stdout", (struct audit_field[]){ AUDIT_NUM("n", 1) }, 1);
	audit_close(a);
	assert(fcntl(STDOUT_FILENO, F_GETFD) != -1);	/* still open */
	assert(dup2(saved, STDOUT_FILENO) == STDOUT_FILENO);
	close(saved);
	text = slurp(path);
	assert(strcmp(skip_time(text), ",\"event\":\"to_stdout\",\"n\":1}\n") == 0);
	free(text);
	free(path);
}

/* A long value is still one line written whole. */
static void
test_long(void)
{
	struct audit *a = NULL;
	char *path, *big, *text;
	size_t n = 1 << 20;

	assert(asprintf(&path, "%s/long.jsonl", tmpdir) > 0);
	assert((big = malloc(n + 1)) != NULL);
	memset(big, 'x', n);
	big[n] = '\0';
	big[7] = '\n';
	assert(audit_open(path, &a) == 0);
	audit_event(a, "long", (struct audit_field[]){ AUDIT_STR("v", big) }, 1);
	audit_close(a);
	text = slurp(path);
	assert(strlen(text) == 40 + strlen(",\"event\":\"long\",\"v\":\"\"}\n") + n + 5);
	assert(strchr(text, '\n') == text + strlen(text) - 1);
	free(text);
	free(big);
	free(path);
}

/*
 * AUDIT_SECRET fields are written redacted, with the config's patterns,
 * and followed by KEY_hmac (the HMAC-SHA256 of the value as given under
 * the redaction key) only when redaction changed them and a key is set.
 */
static void
test_secrets(void)
{
	static const char key[] = "0123456789abcdef0123456789abcdef";
	static const char yaml[] = "redact: ['corp-*']\n";
	static const char cmd[] = "DB_PASSWORD=hunter2 ls";
	unsigned char md[32];
	unsigned int mdlen = 0, i;
	char want[65], *path, *text, *p;
	struct config *c = NULL;
	struct audit *a = NULL;

	assert(config_load_string("t", yaml, sizeof yaml - 1, stderr, &c) == 0);
	assert(HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)cmd, strlen(cmd),
	    md, &mdlen) != NULL && mdlen == 32);
	for (i = 0; i < 32; i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);
	assert(asprintf(&path, "%s/secrets.jsonl", tmpdir) > 0);
	assert(audit_open(path, &a) == 0);
	assert(audit_set_redaction_key(a, key, 0) == -EINVAL);
	assert(audit_set_redaction_key(a, key, 65) == -EINVAL);
	/* Without a key: redacted all the same, no proof. */
	audit_event(a, "one", (struct audit_field[]){ AUDIT_SECRET("command", cmd, NULL) }, 1);
	assert(audit_set_redaction_key(a, key, strlen(key)) == 0);
	audit_event(a, "two", (struct audit_field[]){
		AUDIT_STR("target", "local"),
		AUDIT_SECRET("command", cmd, NULL),
		AUDIT_NUM("pty", 0),
		AUDIT_SECRET("line", "ls -l", c),
		AUDIT_SECRET("reason", "token corp-42 leaked", c),
		AUDIT_SECRET("none", NULL, c),
	}, 6);
	audit_close(a);

	text = slurp(path);
	p = strchr(text, '\n');
	assert(p != NULL);
	*p++ = '\0';
	assert(strcmp(skip_time(text), ",\"event\":\"one\",\"command\":"
	    "\"DB_PASSWORD=[REDACTED:password] ls\"}") == 0);
	assert(strstr(text, "hunter2") == NULL && strstr(text, "_hmac") == NULL);
	assert(strstr(p, "hunter2") == NULL && strstr(p, "corp-42") == NULL);
	assert(strstr(p, ",\"target\":\"local\",\"command\":\"DB_PASSWORD=[REDACTED:password] "
	    "ls\",\"command_hmac\":\"") != NULL);
	assert(strstr(p, want) != NULL);
	assert(strstr(p, "\"pty\":0,\"line\":\"ls -l\",\"reason\":\"token "
	    "[REDACTED:custom] leaked\",\"reason_hmac\":\"") != NULL);
	assert(strstr(p, "line_hmac") == NULL && strstr(p, "\"none\":\"\"}\n") != NULL);
	free(text);
	free(path);
	config_unref(c);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{ "file", test_file },
		{ "refused", test_refused },
		{ "stdout", test_stdout },
		{ "long", test_long },
		{ "secrets", test_secrets },
	};
	int status;

	tmpdir = unit_tmpdir("audit");
	status = unit_run("audit", tests, UNIT_COUNT(tests));
	unit_rmtree(tmpdir);
	free(tmpdir);
	return status;
}
