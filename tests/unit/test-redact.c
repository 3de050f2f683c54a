/*
 * Unit tests for broker/redact.c: every built-in kind with exact output,
 * secrets split at every byte across two feeds, a private key printed one
 * byte at a time, text without secrets passing through byte-identical with
 * its times and order, the hold-back bound, spans, custom patterns, the
 * queue across streams, flush and tick.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "policy/config.h"
#include "policy/redact.h"
#include "policy/redact-detect.h"
#include "unit.h"

#define JWT "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0." \
	"dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
#define GHP "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"
#define PAT "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
#define GLPAT "glpat-xYz12_3456-7890abcdefg"
#define AWSKEY "AKIAIOSFODNN7EXAMPLE"
#define AWSSECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define RSA_KEY "-----BEGIN RSA PRIVATE KEY-----\n" \
	"MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n" \
	"VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n" \
	"-----END RSA PRIVATE KEY-----"
#define OPENSSH_KEY "-----BEGIN OPENSSH PRIVATE KEY-----\n" \
	"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n" \
	"QyNTUxOQAAACDL+3ZZKeK1KXTVM5ZZDMHDSNB4xuxqy0Y2hIl8m3nZmQAAAJhkT9+CZE/f\n" \
	"-----END OPENSSH PRIVATE KEY-----"

/* What one run of the redactor gave: the concatenated bytes and spans. */
struct result {
	char *out;
	size_t len;
	size_t nspans;
	char kinds[256];	/* "jwt,password," ... */
};

/* Drain every final chunk into res, checking order, times and span marks. */
static void
drain(struct redact *r, struct result *res, uint64_t *last_time, char code)
{
	struct redact_chunk ch;
	size_t i;
	int n;

	while ((n = redact_next(r, &ch)) == 1) {
		assert(ch.time >= *last_time);
		*last_time = ch.time;
		if (code != 0)
			assert(ch.code == code);
		for (i = 0; i < ch.nspans; i++) {
			assert(ch.spans[i].at + ch.spans[i].len <= ch.len);
			assert(memcmp(ch.data + ch.spans[i].at, "[REDACTED:", 10) == 0);
			assert(ch.data[ch.spans[i].at + ch.spans[i].len - 1] == ']');
			assert(i == 0 || ch.spans[i].at >= ch.spans[i - 1].at + ch.spans[i - 1].len);
			strcat(res->kinds, ch.spans[i].kind);
			strcat(res->kinds, ",");
			res->nspans++;
		}
		res->out = realloc(res->out, res->len + ch.len + 1);
		assert(res->out != NULL);
		memcpy(res->out + res->len, ch.data, ch.len);
		res->len += ch.len;
		res->out[res->len] = '\0';
	}
	assert(n == 0);
}

/* Feed parts (NULL-terminated) as 'o' events at times 1, 2, ..., flush, drain. */
static struct result
run_parts(const struct config *c, const char *const *parts, const size_t *lens)
{
	struct result res = { .out = calloc(1, 1) };
	struct redact *r = NULL;
	uint64_t t = 0;
	size_t i;

	assert(redact_new(c, &r) == 0);
	for (i = 0; parts[i] != NULL; i++) {
		assert(redact_feed(r, 'o', i + 1, parts[i], lens[i]) == 0);
		assert(redact_held(r, 'o') <= REDACT_HOLD_MAX);
		drain(r, &res, &t, 'o');
	}
	assert(redact_flush(r) == 0);
	drain(r, &res, &t, 'o');
	assert(redact_queued(r) == 0);
	redact_free(r);
	return res;
}

/* Feed s in one piece. */
static struct result
run1(const struct config *c, const char *s)
{
	const char *parts[] = { s, NULL };
	size_t lens[] = { strlen(s) };

	return run_parts(c, parts, lens);
}

static void
expect(const struct config *c, const char *in, const char *want)
{
	struct result res = run1(c, in);

	if (strcmp(res.out, want) != 0) {
		fprintf(stderr, "in:   %s\nwant: %s\ngot:  %s\n", in, want, res.out);
		abort();
	}
	free(res.out);
}

/* The built-in detectors: input, exact output. */
static const struct {
	const char *in, *want;
} cases[] = {
	/* private keys, through their END line */
	{ "key:\n" RSA_KEY "\nok\n", "key:\n[REDACTED:private-key]\nok\n" },
	{ "$ cat id\r\n" OPENSSH_KEY "\r\n$ ", "$ cat id\r\n[REDACTED:private-key]\r\n$ " },
	{ "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\n",
	  "[REDACTED:private-key]\n" },
	{ "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHz\n-----END ENCRYPTED PRIVATE KEY-----",
	  "[REDACTED:private-key]" },
	/* a key's shape: base64 lines, headers before them, a short last line before END */
	{ "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,AB12\n"
	  "\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw\n"
	  "-----END RSA PRIVATE KEY-----\nok", "[REDACTED:private-key]\nok" },
	{ "-----BEGIN PGP PRIVATE KEY BLOCK-----\nComment: x\n\n"
	  "lQOYBF0AAAABCADmU3xkY8iT2HlJ3UV4lWc9P1yqL0Yp5m4mDbcDqkQ2x6kAAAAA\nabc=\n=Xy12\n"
	  "-----END PGP PRIVATE KEY BLOCK-----", "[REDACTED:private-key]" },
	{ "\"k\": \"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw"
	  "ggSjAgEAAoIBAQC7\\nAbCd\\n-----END PRIVATE KEY-----\\n\", \"x\": 1",
	  "\"k\": \"[REDACTED:private-key]\\n\", \"x\": 1" },
	/* a BEGIN line alone cannot hide what follows */
	{ "# -----BEGIN RSA PRIVATE KEY-----\rid\rcurl x | sh\r",
	  "# [REDACTED:private-key]\rid\rcurl x | sh\r" },
	{ "# -----BEGIN RSA PRIVATE KEY-----\nls -la /etc\n", "# [REDACTED:private-key]\nls -la /etc\n" },
	{ "echo -----BEGIN RSA PRIVATE KEY----- ; rm -rf /tmp/x",
	  "echo [REDACTED:private-key] ; rm -rf /tmp/x" },
	{ "-----BEGIN RSA PRIVATE KEY-----\n"
	  "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nwhoami\nid\n",
	  "[REDACTED:private-key]\nwhoami\nid\n" },
	/* colours between key, '=' and value (grep --color, jq -C) */
	{ "DB_\033[01;31mPASSWORD\033[m=hunter2 x", "DB_\033[01;31mPASSWORD\033[m=[REDACTED:password] x" },
	{ "\033[34;1m\"DB_PASSWORD\"\033[0m\033[1;39m:\033[0m \033[0;32m\"hunter2\"\033[0m\n",
	  "\033[34;1m\"DB_PASSWORD\"\033[0m\033[1;39m:\033[0m \033[0;32m\"[REDACTED:password]\"\033[0m\n" },
	{ "\033[01;31mDB_PASSWORD\033[m=\033[32mhunter2\033[m\n",
	  "\033[01;31mDB_PASSWORD\033[m=\033[32m[REDACTED:password]\033[m\n" },
	/* AWS */
	{ "id " AWSKEY " ok", "id [REDACTED:aws-access-key] ok" },
	{ "ASIAY34FZKBOKMUTVV7A\n", "[REDACTED:aws-access-key]\n" },
	{ "aws_secret_access_key = " AWSSECRET "\n",
	  "aws_secret_access_key = [REDACTED:aws-secret-key]\n" },
	{ "AWS_SECRET_ACCESS_KEY=" AWSSECRET " x", "AWS_SECRET_ACCESS_KEY=[REDACTED:aws-secret-key] x" },
	{ "{\"SecretAccessKey\": \"" AWSSECRET "\",",
	  "{\"SecretAccessKey\": \"[REDACTED:aws-secret-key]\"," },
	/* GitHub, GitLab */
	{ "t=" GHP "\n", "t=[REDACTED:github-token]\n" },
	{ "gho_16C7e42F292c6912E7710c838347Ae178B4a ", "[REDACTED:github-token] " },
	{ "x " PAT ".", "x [REDACTED:github-token]." },
	{ "(" GLPAT ")", "([REDACTED:gitlab-token])" },
	/* JWTs and Kubernetes tokens */
	{ "Bearer-less " JWT " end", "Bearer-less [REDACTED:jwt] end" },
	{ "    token: " JWT "\n", "    token: [REDACTED:jwt]\n" },
	{ "    token: abcdef.0123456789abcdef\n", "    token: [REDACTED:password]\n" },
	/* key=value pairs */
	{ "DB_PASSWORD=hunter2 next", "DB_PASSWORD=[REDACTED:password] next" },
	{ "password: 's3cr3t'\n", "password: '[REDACTED:password]'\n" },
	{ "{\"password\":\"two words\"}", "{\"password\":\"[REDACTED:password]\"}" },
	{ "passwd: abc\r\n", "passwd: [REDACTED:password]\r\n" },
	{ "--client-secret=abc;", "--client-secret=[REDACTED:password];" },
	{ "GET /?token=abc&x=1", "GET /?token=[REDACTED:password]&x=1" },
	{ "apiKey: \"k-123\"", "apiKey: \"[REDACTED:password]\"" },
	{ "Authorization: Bearer abc.def\r\n", "Authorization: Bearer [REDACTED:password]\r\n" },
	{ "DATABASE_URL=postgres://app:pa55w0rd@db:5432/x",
	  "DATABASE_URL=postgres://app:[REDACTED:password]@db:5432/x" },
	{ "a password=x b token=y", "a password=[REDACTED:password] b token=[REDACTED:password]" },
	/* no secrets */
	{ "cat: /etc/passwd: No such file or directory\n",
	  "cat: /etc/passwd: No such file or directory\n" },
	{ "Password: ", "Password: " },
	{ "[sudo] password for alice: \r\n", "[sudo] password for alice: \r\n" },
	{ "if a == b; x=1 y: 2 max_tokens=100\n", "if a == b; x=1 y: 2 max_tokens=100\n" },
	{ "https://example.com/a:b@c ghp_short AKIAIOSFODNN7EXAMPL eyJhbGc.x",
	  "https://example.com/a:b@c ghp_short AKIAIOSFODNN7EXAMPL eyJhbGc.x" },
	{ "XAKIAIOSFODNN7EXAMPLE " "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
	  "XAKIAIOSFODNN7EXAMPLE " "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" },
	{ "secret:\n  secretName: foo\n", "secret:\n  secretName: foo\n" },
	{ "", "" },
};

/* Each case in one feed. */
static void
test_kinds(void)
{
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect(NULL, cases[i].in, cases[i].want);
}

/* Each case split in two feeds at every byte, then with a third feed after. */
static void
test_split_everywhere(void)
{
	const char *parts[4];
	size_t lens[3], i, k, len;
	struct result res;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		len = strlen(cases[i].in);
		for (k = 0; k <= len; k++) {
			parts[0] = cases[i].in;
			lens[0] = k;
			parts[1] = cases[i].in + k;
			lens[1] = len - k;
			parts[2] = NULL;
			res = run_parts(NULL, parts, lens);
			if (strcmp(res.out, cases[i].want) != 0) {
				fprintf(stderr, "split at %zu of: %s\nwant: %s\ngot:  %s\n", k,
				    cases[i].in, cases[i].want, res.out);
				abort();
			}
			free(res.out);
		}
	}
}

/* A private key printed one byte per read, with each event's time kept; at most
 * the line still arriving (and a short last line) is held back. */
static void
test_slow_private_key(void)
{
	static const char in[] = "$ cat key\r\n" OPENSSH_KEY "\r\n$ exit\r\n";
	static const char want[] = "$ cat key\r\n[REDACTED:private-key]\r\n$ exit\r\n";
	struct result res = { .out = calloc(1, 1) };
	struct redact *r = NULL;
	struct redact_chunk ch;
	uint64_t t = 0;
	size_t i, spans = 0;

	assert(redact_new(NULL, &r) == 0);
	for (i = 0; i < sizeof in - 1; i++) {
		assert(redact_feed(r, 'o', 100 + i, in + i, 1) == 0);
		assert(redact_held(r, 'o') <= 256);
		while (redact_next(r, &ch) == 1) {
			/* one chunk per byte fed, in order, with its own time */
			assert(ch.time == 100 + t);
			t++;
			spans += ch.nspans;
			res.out = realloc(res.out, res.len + ch.len + 1);
			memcpy(res.out + res.len, ch.data, ch.len);
			res.len += ch.len;
			res.out[res.len] = '\0';
		}
	}
	assert(redact_flush(r) == 0);
	while (redact_next(r, &ch) == 1) {
		assert(ch.time == 100 + t);
		t++;
		res.out = realloc(res.out, res.len + ch.len + 1);
		memcpy(res.out + res.len, ch.data, ch.len);
		res.len += ch.len;
		res.out[res.len] = '\0';
	}
	assert(t == sizeof in - 1);
	assert(spans == 1);
	assert(strcmp(res.out, want) == 0);
	free(res.out);
	redact_free(r);
}

/* Every case fed one byte at a time. */
static void
test_bytewise(void)
{
	const char *parts[600];
	size_t lens[600], i, k, len;
	struct result res;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		len = strlen(cases[i].in);
		assert(len < 600);
		for (k = 0; k < len; k++) {
			parts[k] = cases[i].in + k;
			lens[k] = 1;
		}
		parts[len] = NULL;
		res = run_parts(NULL, parts, lens);
		if (strcmp(res.out, cases[i].want) != 0) {
			fprintf(stderr, "bytewise: %s\nwant: %s\ngot:  %s\n", cases[i].in,
			    cases[i].want, res.out);
			abort();
		}
		free(res.out);
	}
}

/* A tiny deterministic generator (xorshift). */
static uint64_t rng = 88172645463325252ull;

static uint64_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/*
 * Property: bytes holding no anchor character and no start of a secret
 * come out byte-identical, event by event, in order, with their times and
 * codes, across interleaved streams and opaque events.
 */
static void
test_passthrough(void)
{
	static const char codes[] = "oeirm";
	struct redact *r = NULL;
	struct redact_chunk ch;
	uint8_t buf[4096];
	struct {
		char code;
		size_t len;
		uint8_t *data;
	} *fed;
	size_t nfed = 2000, i, j, got = 0;
	uint8_t c;

	fed = calloc(nfed, sizeof *fed);
	assert(redact_new(NULL, &r) == 0);
	for (i = 0; i < nfed; i++) {
		fed[i].code = codes[next_rand() % 5];
		fed[i].len = next_rand() % (i % 50 == 0 ? sizeof buf : 64);
		for (j = 0; j < fed[i].len; j++) {
			do
				c = (uint8_t)next_rand();
			while (strchr("-KS_J=:Age", c) != NULL && c != 0);
			buf[j] = c;
		}
		fed[i].data = malloc(fed[i].len + 1);
		memcpy(fed[i].data, buf, fed[i].len);
		assert(redact_feed(r, fed[i].code, 1000 + i, buf, fed[i].len) == 0);
		/* nothing is ever held: each event comes out at once */
		assert(redact_next(r, &ch) == 1);
		assert(ch.code == fed[i].code && ch.time == 1000 + i && ch.nspans == 0);
		assert(ch.len == fed[i].len && memcmp(ch.data, fed[i].data, ch.len) == 0);
		assert(redact_next(r, &ch) == 0);
		got++;
	}
	assert(got == nfed);
	for (i = 0; i < nfed; i++)
		free(fed[i].data);
	free(fed);
	redact_free(r);
}

/* The hold-back never exceeds its bound, whatever arrives. */
static void
test_hold_bound(void)
{
	static const char *const heads[] = { "ghp_", "eyJhbGciOiJIUzI1NiIs", "password=",
	    "token: \"", "postgres://u:", "glpat-", "x" };
	struct config *c = NULL;
	struct redact *r = NULL;
	struct redact_chunk ch;
	char chunk[97];
	size_t h, i, j, out;
	static const char yaml[] = "redact: ['re:corp-[0-9a-f]{32}']\n";

	assert(config_load_string("t", yaml, strlen(yaml), stderr, &c) == 0);
	for (h = 0; h < sizeof heads / sizeof heads[0]; h++) {
		assert(redact_new(c, &r) == 0);
		assert(redact_feed(r, 'o', 1, heads[h], strlen(heads[h])) == 0);
		out = 0;
		for (i = 0; i < 400; i++) {
			for (j = 0; j < sizeof chunk; j++)
				chunk[j] = "abcdefABCDEF0123456789"[next_rand() % 22];
			assert(redact_feed(r, 'o', 2 + i, chunk, sizeof chunk) == 0);
			assert(redact_held(r, 'o') <= REDACT_HOLD_MAX);
			while (redact_next(r, &ch) == 1)
				out++;
		}
		assert(out > 300);
		redact_free(r);
	}
	config_unref(c);
}

/* Spans give the marker's place and kind in the chunk. */
static void
test_spans(void)
{
	static const char in[] = "a " GHP " b password=x\n";
	struct redact *r = NULL;
	struct redact_chunk ch;

	assert(redact_new(NULL, &r) == 0);
	assert(redact_feed(r, 'e', 7, in, sizeof in - 1) == 0);
	assert(redact_next(r, &ch) == 1);
	assert(ch.code == 'e' && ch.time == 7);
	assert(ch.len == strlen("a [REDACTED:github-token] b password=[REDACTED:password]\n"));
	assert(memcmp(ch.data, "a [REDACTED:github-token] b password=[REDACTED:password]\n",
	    ch.len) == 0);
	assert(ch.nspans == 2);
	assert(ch.spans[0].at == 2 && ch.spans[0].len == 23 &&
	    strcmp(ch.spans[0].kind, "github-token") == 0);
	assert(ch.spans[1].at == 37 && ch.spans[1].len == 19 &&
	    strcmp(ch.spans[1].kind, "password") == 0);
	assert(redact_next(r, &ch) == 0);
	redact_free(r);
}

/* A secret across two events: the marker in the first, the rest removed. */
static void
test_span_across_events(void)
{
	struct redact *r = NULL;
	struct redact_chunk ch;

	assert(redact_new(NULL, &r) == 0);
	assert(redact_feed(r, 'o', 1, "x ghp_aBcDeFgHiJ", 16) == 0);
	assert(redact_next(r, &ch) == 0);	/* held: the token may go on */
	assert(redact_held(r, 'o') == 14);
	assert(redact_feed(r, 'o', 2, "kLmNoPqRsTuVwXyZ0123456789 y", 28) == 0);
	assert(redact_next(r, &ch) == 1);
	assert(ch.time == 1 && ch.len == 25 && memcmp(ch.data, "x [REDACTED:github-token]", 25) == 0);
	assert(ch.nspans == 1 && ch.spans[0].at == 2);
	assert(redact_next(r, &ch) == 1);
	assert(ch.time == 2 && ch.len == 2 && memcmp(ch.data, " y", 2) == 0 && ch.nspans == 0);
	assert(redact_next(r, &ch) == 0);
	redact_free(r);
}

/* Custom patterns from the config, regex and glob, with kinds; per line. */
static void
test_custom(void)
{
	static const char yaml[] =
	    "redact:\n"
	    "  - 're:corp-[0-9a-f]{32}'\n"
	    "  - {pattern: 'sk_live_*', kind: stripe}\n";
	struct config *c = NULL;
	const char *parts[3];
	size_t lens[2];
	struct result res;
	char in[] = "k=corp-0123456789abcdef0123456789abcdef x sk_live_abc9 y\nnext\n";
	const char *want = "k=[REDACTED:custom] x [REDACTED:stripe] y\nnext\n";
	size_t k;

	assert(config_load_string("t", yaml, strlen(yaml), stderr, &c) == 0);
	assert(c->nredact == 2 && c->redact[1].line == 3);
	assert(strcmp(c->redact[0].kind, "custom") == 0 && strcmp(c->redact[1].kind, "stripe") == 0);
	for (k = 0; k <= strlen(in); k++) {
		parts[0] = in;
		lens[0] = k;
		parts[1] = in + k;
		lens[1] = strlen(in) - k;
		parts[2] = NULL;
		res = run_parts(c, parts, lens);
		if (strcmp(res.out, want) != 0) {
			fprintf(stderr, "custom split %zu: got %s\n", k, res.out);
			abort();
		}
		assert(strcmp(res.kinds, "custom,stripe,") == 0);
		free(res.out);
	}
	/* a custom match that overlaps a built-in one is one span */
	expect(c, "password=corp-0123456789abcdef0123456789abcdef\n",
	    "password=[REDACTED:password]\n");
	config_unref(c);
}

/* A held event keeps later events of other streams and opaque ones behind it. */
static void
test_order_across_streams(void)
{
	struct redact *r = NULL;
	struct redact_chunk ch;

	assert(redact_new(NULL, &r) == 0);
	assert(redact_feed(r, 'o', 1, "export TOKEN=", 13) == 0);
	assert(redact_feed(r, 'i', 2, "x", 1) == 0);
	assert(redact_feed(r, 'r', 3, "\x00\x50\x00\x18", 4) == 0);
	assert(redact_next(r, &ch) == 0);
	assert(redact_held(r, 'o') == 1 && redact_held(r, 'i') == 0);
	assert(redact_queued(r) == 18);
	assert(redact_feed(r, 'o', 4, "abc\r\n", 5) == 0);
	assert(redact_next(r, &ch) == 1 && ch.code == 'o' && ch.time == 1);
	assert(ch.len == 13 && memcmp(ch.data, "export TOKEN=", 13) == 0 && ch.nspans == 0);
	assert(redact_next(r, &ch) == 1 && ch.code == 'i' && ch.time == 2 && ch.len == 1);
	assert(redact_next(r, &ch) == 1 && ch.code == 'r' && ch.time == 3 && ch.len == 4 &&
	    memcmp(ch.data, "\x00\x50\x00\x18", 4) == 0);
	/* the value starts in this event: the marker is here */
	assert(redact_next(r, &ch) == 1 && ch.code == 'o' && ch.time == 4);
	assert(ch.len == 21 && memcmp(ch.data, "[REDACTED:password]\r\n", 21) == 0);
	assert(ch.nspans == 1 && ch.spans[0].at == 0 && ch.spans[0].len == 19);
	assert(redact_next(r, &ch) == 0);
	redact_free(r);
}

/* A stream that holds while another floods: the queue stays bounded. */
static void
test_queue_bound(void)
{
	struct redact *r = NULL;
	struct redact_chunk ch;
	char chunk[4096];
	size_t i, max = 0;

	memset(chunk, 'x', sizeof chunk);
	chunk[sizeof chunk - 1] = '\n';
	assert(redact_new(NULL, &r) == 0);
	assert(redact_feed(r, 'e', 1, "token: abc", 10) == 0);
	for (i = 0; i < 1000; i++) {
		assert(redact_feed(r, 'o', 2 + i, chunk, sizeof chunk) == 0);
		if (redact_queued(r) > max)
			max = redact_queued(r);
		while (redact_next(r, &ch) == 1)
			;
	}
	assert(max <= REDACT_QUEUE_MAX + sizeof chunk);
	/* the forced value stays redacted as it goes on */
	assert(redact_feed(r, 'e', 5000, "def ok\n", 7) == 0);
	assert(redact_next(r, &ch) == 1 && ch.len == 4 && memcmp(ch.data, " ok\n", 4) == 0);
	redact_free(r);
}

/* Flush and tick decide what is held; a forced secret goes on being redacted. */
static void
test_flush_and_tick(void)
{
	struct redact *r = NULL;
	struct redact_chunk ch;

	assert(redact_new(NULL, &r) == 0);
	assert(redact_feed(r, 'i', 1000, "echo ghp_abc", 12) == 0);
	assert(redact_next(r, &ch) == 0);
	assert(redact_tick(r, 1000 + REDACT_IDLE_NS - 1) == 0);
	assert(redact_next(r, &ch) == 0);
	assert(redact_tick(r, 1000 + REDACT_IDLE_NS) == 1);
	assert(redact_next(r, &ch) == 1);
	assert(ch.len == 28 && memcmp(ch.data, "echo [REDACTED:github-token]", 28) == 0);
	assert(redact_tick(r, 1000 + 2 * REDACT_IDLE_NS) == 0);	/* nothing new */
	assert(redact_feed(r, 'i', 2000, "defGHI0123\r", 11) == 0);
	assert(redact_next(r, &ch) == 1 && ch.len == 1 && ch.data[0] == '\r' && ch.nspans == 0);
	/* "Password: " at a flush waits for a value on the same line */
	assert(redact_feed(r, 'o', 3000, "Password: ", 10) == 0);
	assert(redact_flush(r) == 0);
	assert(redact_next(r, &ch) == 1 && ch.len == 10);
	assert(redact_feed(r, 'o', 3001, "\r\n", 2) == 0);
	assert(redact_next(r, &ch) == 1 && ch.len == 2);
	redact_free(r);
}

/* Strings for the audit log. */
static void
test_string(void)
{
	static const char cmd[] = "curl -H 'Authorization: Bearer " JWT "' x";
	char *s = NULL;
	size_t len = 0;

	assert(redact_string(NULL, cmd, sizeof cmd - 1, &s, &len) == 0);
	assert(strcmp(s, "curl -H 'Authorization: Bearer [REDACTED:jwt]' x") == 0);
	assert(len == strlen(s));
	free(s);
	assert(redact_string(NULL, "", 0, &s, NULL) == 0);
	assert(strcmp(s, "") == 0);
	free(s);
	assert(redact_string(NULL, "a\0b", 3, &s, &len) == 0 && len == 3);
	free(s);
}

/* Bad arguments. */
static void
test_errors(void)
{
	struct redact *r = NULL;
	struct redact_chunk ch;
	struct cfg_pattern p;
	char err[256];

	assert(redact_new(NULL, &r) == 0);
	assert(redact_feed(r, 0, 1, "x", 1) == -EINVAL);
	assert(redact_feed(r, 'o', 1, NULL, 1) == -EINVAL);
	assert(redact_feed(r, 'o', 1, NULL, 0) == 0);
	assert(redact_next(r, &ch) == 1 && ch.len == 0);
	redact_free(r);
	redact_free(NULL);
	assert(pattern_compile(&p, PATTERN_REDACT, "re:(", err, sizeof err) == -EINVAL);
	assert(strncmp(err, "bad regular expression 're:(': ", 31) == 0);
	assert(pattern_compile(&p, PATTERN_REDACT, "", err, sizeof err) == -EINVAL);
	assert(pattern_compile(&p, PATTERN_REDACT, "a[b*?.c", err, sizeof err) == 0 && p.regex);
	pattern_free(&p);
	pattern_free(&p);
}

/* Hex HMAC-SHA256 of s under key. */
static void
hmac_hex(const char *key, const char *s, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0, i;

	assert(HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)s, len, md,
	    &mdlen) != NULL && mdlen == 32);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/*
 * Each secret gives one proof, however its bytes were cut into events:
 * the HMAC-SHA256 of exactly the bytes it hid, its length and kind.
 */
static void
test_proofs(void)
{
	static const char key[] = "0123456789abcdef0123456789abcdef";
	static const char in[] = "a " GHP " b\n-----BEGIN RSA PRIVATE KEY-----\n"
	    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw\n"
	    "-----END RSA PRIVATE KEY-----\nid\n";
	const char *pem = strstr(in, "-----BEGIN");
	size_t pemlen = (size_t)(strstr(in, "KEY-----\nid") + 8 - pem), len = sizeof in - 1, k;
	char want_ghp[65], want_pem[65];
	struct redact_chunk ch;
	struct redact *r;

	hmac_hex(key, GHP, strlen(GHP), want_ghp);
	hmac_hex(key, pem, pemlen, want_pem);
	for (k = 0; k <= len; k++) {
		size_t got = 0;

		assert(redact_new(NULL, &r) == 0);
		assert(redact_set_key(r, key, strlen(key)) == 0);
		assert(redact_feed(r, 'o', 1, in, k) == 0);
		for (size_t fed = k;; fed = len) {
			while (redact_next(r, &ch) == 1) {
				for (size_t i = 0; i < ch.nproofs; i++) {
					const struct redact_proof *p = &ch.proofs[i];

					assert(p->code == 'o');
					if (got == 0) {
						assert(strcmp(p->kind, "github-token") == 0);
						assert(p->len == strlen(GHP));
						assert(strcmp(p->hmac, want_ghp) == 0);
					} else {
						assert(got == 1 && strcmp(p->kind, "private-key") == 0);
						if (p->len != pemlen || strcmp(p->hmac, want_pem) != 0) {
							fprintf(stderr, "split %zu: len %llu of %zu\n", k,
							    (unsigned long long)p->len, pemlen);
							abort();
						}
					}
					got++;
				}
			}
			if (fed == len)
				break;
			assert(redact_feed(r, 'o', 2, in + k, len - k) == 0);
		}
		assert(redact_flush(r) == 0);
		while (redact_next(r, &ch) == 1) {
			for (size_t i = 0; i < ch.nproofs; i++) {
				assert(got == 1 && ch.proofs[i].len == pemlen);
				got++;
			}
		}
		assert(got == 2);
		redact_free(r);
	}
	/* Without a key, no proofs. */
	assert(redact_new(NULL, &r) == 0);
	assert(redact_feed(r, 'o', 1, in, len) == 0 && redact_flush(r) == 0);
	while (redact_next(r, &ch) == 1)
		assert(ch.nproofs == 0);
	redact_free(r);
}

/* A redacted string is proved by the HMAC of the string as given; an unchanged one is not. */
static void
test_string_proved(void)
{
	static const char key[] = "0123456789abcdef0123456789abcdef";
	static const char cmd[] = "curl -H 'Authorization: Bearer " GHP "' x";
	char want[65], hmac[REDACT_PROOF_HEX + 1], *out;
	size_t len;

	hmac_hex(key, cmd, strlen(cmd), want);
	assert(redact_string_proved(NULL, key, strlen(key), cmd, strlen(cmd), &out, &len,
	    hmac) == 0);
	assert(strstr(out, GHP) == NULL && strlen(out) == len && strcmp(hmac, want) == 0);
	free(out);
	assert(redact_string_proved(NULL, NULL, 0, cmd, strlen(cmd), &out, NULL, hmac) == 0);
	assert(strstr(out, GHP) == NULL && hmac[0] == '\0');
	free(out);
	assert(redact_string_proved(NULL, key, strlen(key), "ls -l", 5, &out, &len, hmac) == 0);
	assert(strcmp(out, "ls -l") == 0 && len == 5 && hmac[0] == '\0');
	free(out);
}

/*
 * The vector search for anchors finds what a byte-by-byte walk finds: every
 * anchor and every other byte value at every offset of a buffer, searched
 * from the start and from around it, within and
 * across 16-byte blocks, and buffers of every length up to 40.
 */
static void
test_next_anchor(void)
{
	uint8_t b[64];
	size_t at, n, p, want, k;
	int c;

	redact_class_init();
	for (c = 0; c < 256; c++) {
		for (at = 0; at < 40; at++) {
			memset(b, 'x', sizeof b);
			b[at] = (uint8_t)c;
			for (n = 0; n <= 40; n++) {
				/* From the start, just before, at and just after it. */
				for (k = 0; k < 4; k++) {
					p = k == 0 ? 0 : at + k - 2 + (at == 0);
					if (p > n)
						continue;
					want = p <= at && at < n && strchr(REDACT_ANCHORS, c) != NULL &&
					    c != 0 ? at : n;
					assert(redact_next_anchor(b, p, n) == want);
				}
			}
		}
	}
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{ "kinds", test_kinds },
		{ "split_everywhere", test_split_everywhere },
		{ "slow_private_key", test_slow_private_key },
		{ "bytewise", test_bytewise },
		{ "passthrough", test_passthrough },
		{ "hold_bound", test_hold_bound },
		{ "spans", test_spans },
		{ "span_across_events", test_span_across_events },
		{ "custom", test_custom },
		{ "order_across_streams", test_order_across_streams },
		{ "queue_bound", test_queue_bound },
		{ "flush_and_tick", test_flush_and_tick },
		{ "string", test_string },
		{ "errors", test_errors },
		{ "proofs", test_proofs },
		{ "string_proved", test_string_proved },
		{ "next_anchor", test_next_anchor },
	};

	return unit_run("redact", tests, UNIT_COUNT(tests));
}
