/*
 * Throughput of the redactor on typical terminal output: 100 MB (or the
 * size given in MB as the first argument) of log lines, ls -l listings,
 * JSON and YAML with a few secrets, fed in 64 KiB reads as a session
 * does. Prints MB/s for a plain copy of the same reads (no redaction),
 * the built-in detectors, and the built-ins with two custom patterns.
 * Built by meson, not run as a test.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/config.h"
#include "policy/redact.h"

#define READ_SIZE (64 * 1024)

/* Monotonic seconds. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Fill buf with len bytes of typical output. */
static void
make_output(char *buf, size_t len)
{
	static const char *const lines[] = {
		"2024-11-28T10:15:32.123Z INFO  http: GET /api/v1/namespaces/default/pods "
		    "status=200 duration=3.2ms user_agent=kubectl/v1.30.2\r\n",
		"-rw-r--r--  1 app app   18734 Nov 28 10:15 config.yaml\r\n",
		"drwxr-xr-x  5 app app    4096 Nov 28 09:01 node_modules\r\n",
		"{\"level\":\"debug\",\"ts\":1732788932.5,\"caller\":\"server/handler.go:118\","
		    "\"msg\":\"request done\",\"status\":200,\"bytes\":5123}\r\n",
		"  containers:\r\n    - name: web\r\n      image: registry.example.com/web:1.4.2\r\n",
		"NAME                     READY   STATUS    RESTARTS   AGE\r\n",
		"web-7d9c8b6f5d-x2kqp     1/1     Running   0          3d4h\r\n",
		"Sep 12 08:00:01 host CRON[1234]: (root) CMD (run-parts --report /etc/cron.hourly)\r\n",
		"export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\r\n",
	};
	static const char *const secrets[] = {
		"DB_PASSWORD=hunter2\r\n",
		"    token: eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2lnbmF0dXJl\r\n",
		"aws_access_key_id = AKIAIOSFODNN7EXAMPLE\r\n",
	};
	size_t off = 0, i = 0, n;
	const char *l;

	while (off < len) {
		l = (i % 997 == 996) ? secrets[i / 997 % 3] : lines[i % 9];
		n = strlen(l);
		if (n > len - off)
			n = len - off;
		memcpy(buf + off, l, n);
		off += n;
		i++;
	}
}

/* Feed buf through a redactor in reads; returns seconds and counts spans. */
static double
run(const struct config *c, const char *buf, size_t len, size_t *spans, size_t *outlen)
{
	struct redact *r = NULL;
	struct redact_chunk ch;
	double t0 = now();
	size_t off, n;
	uint64_t t = 0;

	*spans = 0;
	*outlen = 0;
	if (redact_new(c, &r) != 0)
		exit(1);
	for (off = 0; off < len; off += n) {
		n = len - off < READ_SIZE ? len - off : READ_SIZE;
		if (redact_feed(r, 'o', ++t, buf + off, n) != 0)
			exit(1);
		while (redact_next(r, &ch) == 1) {
			*spans += ch.nspans;
			*outlen += ch.len;
		}
	}
	redact_flush(r);
	while (redact_next(r, &ch) == 1) {
		*spans += ch.nspans;
		*outlen += ch.len;
	}
	redact_free(r);
	return now() - t0;
}

int
main(int argc, char **argv)
{
	static const char yaml[] = "redact: ['re:corp-[0-9a-f]{32}', 'sk_live_*']\n";
	size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 100, len, off, n, spans, outlen;
	struct config *c = NULL;
	char *buf, *copy;
	double t0, t;
	unsigned sum = 0;

	len = mb * 1000 * 1000;
	if ((buf = malloc(len)) == NULL || (copy = malloc(READ_SIZE)) == NULL)
		return 1;
	make_output(buf, len);
	if (config_load_string("bench", yaml, sizeof yaml - 1, stderr, &c) != 0)
		return 1;

	t0 = now();
	for (off = 0; off < len; off += n) {
		n = len - off < READ_SIZE ? len - off : READ_SIZE;
		memcpy(copy, buf + off, n);
		sum += (unsigned char)copy[n / 2];
	}
	t = now() - t0;
	printf("no redaction (copy of each read): %8.0f MB/s (%u)\n", (double)len / 1e6 / t, sum);

	t = run(NULL, buf, len, &spans, &outlen);
	printf("built-in detectors:               %8.0f MB/s, %zu spans, %zu -> %zu bytes\n",
	    (double)len / 1e6 / t, spans, len, outlen);
	t = run(c, buf, len, &spans, &outlen);
	printf("built-ins + 2 custom patterns:    %8.0f MB/s, %zu spans\n",
	    (double)len / 1e6 / t, spans);
	config_unref(c);
	free(copy);
	free(buf);
	return 0;
}
