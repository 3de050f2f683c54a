/*
 * Secret redaction's built-in detectors (redact-detect.h): PEM private
 * keys, AWS keys, GitHub and GitLab tokens, JWTs, and key=value pairs,
 * URLs and Authorization headers whose value is a password. Each works
 * on a window of one stream and answers "no", "a secret from here to
 * there", or "not yet" (the candidate reaches the end of what arrived).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/redact.h"
#include "policy/redact-detect.h"

#define REDACT_KEY_MAX 64		/* longest key before '=' or ':' */
#define REDACT_VALUE_MAX 4096		/* longest quoted value */
#define REDACT_URL_MAX 256		/* longest user:password@ */

const char KIND_PRIVATE_KEY[] = "private-key";
static const char KIND_AWS_ACCESS[] = "aws-access-key";
static const char KIND_AWS_SECRET[] = "aws-secret-key";
static const char KIND_GITHUB[] = "github-token";
static const char KIND_GITLAB[] = "gitlab-token";
static const char KIND_JWT[] = "jwt";
static const char KIND_PASSWORD[] = "password";
uint8_t redact_class[256];

/* Fill the class table once. */
void
redact_class_init(void)
{
	int c;

	if (redact_class['a'] != 0)
		return;
	for (c = 0; c < 256; c++) {
		uint8_t f = 0;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			f |= C_ALNUM | C_B64URL | C_WORD | C_IDENT;
		if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			f |= C_UPALNUM | C_LABEL;
		if (c == '_' || c == '-')
			f |= C_B64URL | C_WORD;
		if (c == '_')
			f |= C_IDENT;
		if (c == '.')
			f |= C_WORD;
		if (c == ' ')
			f |= C_LABEL;
		if ((c > 0x20 && c < 0x7f && strchr("\"',;&", c) == NULL) || c >= 0x80)
			f |= C_VALUE;
		if (c != 0 && strchr(REDACT_ANCHORS, c) != NULL)
			f |= C_ANCHOR;
		redact_class[c] = f;
	}
}

/*
 * Ordinary output holds few anchors, and every byte of it is looked at:
 * compare 16 bytes at a time with each anchor (the compiler's vector
 * extension: SSE2 or NEON), then the rest one by one. The anchors are
 * REDACT_ANCHORS; the unit test checks the two against each other.
 */
typedef uint8_t redact_v16 __attribute__((vector_size(16)));
typedef int8_t redact_m16 __attribute__((vector_size(16)));

#define SPLAT(c) ((redact_v16){ c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c })

size_t
redact_next_anchor(const uint8_t *b, size_t p, size_t n)
{
	redact_v16 v;
	redact_m16 hit;
	uint64_t half[2];

	for (; p + 16 <= n; p += 16) {
		memcpy(&v, b + p, sizeof v);
		hit = (redact_m16)(v == SPLAT('-')) | (redact_m16)(v == SPLAT('K')) |
		    (redact_m16)(v == SPLAT('S')) | (redact_m16)(v == SPLAT('_')) |
		    (redact_m16)(v == SPLAT('J')) | (redact_m16)(v == SPLAT('=')) |
		    (redact_m16)(v == SPLAT(':'));
		memcpy(half, &hit, sizeof half);
		if ((half[0] | half[1]) != 0)
			break;
	}
	while (p < n && !IS(b[p], C_ANCHOR))
		p++;
	return p;
}

/* ---- Detectors ---- */

/* Whether window index i starts a word (nothing of class cls before it). */
static bool
redact_boundary(const uint8_t *b, size_t i, uint8_t cls)
{
	return i == 0 || !IS(b[i - 1], cls);
}

/* Length of the run of class cls from i (stops at n). */
static size_t
redact_run(const uint8_t *b, size_t n, size_t i, uint8_t cls)
{
	size_t j = i;

	while (j < n && IS(b[j], cls))
		j++;
	return j - i;
}

/*
 * A token made of a prefix at start and a run of cls from body: a secret
 * when the run has at least min characters and ends before n.
 */
static struct det
redact_token(const uint8_t *b, size_t n, size_t start, size_t body, uint8_t cls, size_t min,
    const char *kind, bool force)
{
	struct det d = { .res = DET_NO };
	size_t run = redact_run(b, n, body, cls);

	if (body + run == n) {
		if (!force)
			return (struct det){ .res = DET_MORE, .start = start };
		/* forced: the prefix alone is distinctive; what follows stays redacted */
		return (struct det){ DET_MATCH, start, n, kind, CONT_TOKEN, 0 };
	}
	if (run < min)
		return d;
	return (struct det){ DET_MATCH, start, body + run, kind, CONT_NONE, 0 };
}

/* Compare what has arrived at i with the literal s: 1 equal, 0 a prefix of it, -1 differs. */
static int
redact_lit(const uint8_t *b, size_t n, size_t i, const char *s, size_t slen)
{
	size_t k = n - i < slen ? n - i : slen;

	if (memcmp(b + i, s, k) != 0)
		return -1;
	return k == slen ? 1 : 0;
}


#define REDACT_PEM_LINE 128	/* longest line of a PEM body */
#define REDACT_PEM_FULL 40	/* a body line this long or longer is not the last */

/*
 * The end of a line at b[i..n): sets *next after its terminator ("\n",
 * "\r\n", "\r", or the two characters "\\n" of an escaped string) and
 * returns the line's length, or returns -1 when no terminator has arrived
 * within REDACT_PEM_LINE bytes (*next = n) or -2 when none can come.
 */
static long
redact_pem_line(const uint8_t *b, size_t n, size_t i, size_t *next)
{
	size_t j;

	for (j = i; j < n && j - i <= REDACT_PEM_LINE; j++) {
		if (b[j] == '\n') {
			*next = j + 1;
			return (long)(j - i);
		}
		if (b[j] == '\r') {
			*next = j + 1 < n && b[j + 1] == '\n' ? j + 2 : j + 1;
			return (long)(j - i);
		}
		if (b[j] == '\\') {
			/* An escaped string: "\\n" or "\\r\\n" ends the line. */
			if (j + 1 == n)
				break;
			if (b[j + 1] == 'n') {
				*next = j + 2;
				return (long)(j - i);
			}
			if (b[j + 1] == 'r') {
				if (j + 3 >= n)
					break;
				if (b[j + 2] == '\\' && b[j + 3] == 'n') {
					*next = j + 4;
					return (long)(j - i);
				}
			}
		}
	}
	*next = n;
	return j - i > REDACT_PEM_LINE ? -2 : -1;
}

/* Whether b[i..i+len) is an END line "-----END LABEL-----" (1), may become one (0), or not (-1). */
static int
redact_pem_endline(const uint8_t *b, size_t i, size_t len, bool complete)
{
	static const char end[] = "-----END ";
	size_t k = len < sizeof end - 1 ? len : sizeof end - 1, j;

	if (memcmp(b + i, end, k) != 0)
		return -1;
	if (k < sizeof end - 1)
		return complete ? -1 : 0;
	for (j = i + k; j < i + len && IS(b[j], C_LABEL); j++)
		;
	if (j + 5 == i + len && memcmp(b + j, "-----", 5) == 0 && j > i + k)
		return 1;
	if (!complete && j < i + len && b[j] == '-' && i + len - j < 5 &&
	    memcmp(b + j, "-----", i + len - j) == 0)
		return 0;
	return complete || j < i + len ? -1 : 0;
}

/* Whether b[i..i+len) is base64 (and '='): a body line. */
static bool
redact_pem_b64(const uint8_t *b, size_t i, size_t len)
{
	size_t j;

	for (j = i; j < i + len; j++) {
		if (!IS(b[j], C_ALNUM) && b[j] != '+' && b[j] != '/' && b[j] != '=')
			return false;
	}
	return len > 0;
}

/* Whether b[i..i+len) is an encapsulated header "Name: value" (Proc-Type, DEK-Info, Comment). */
static bool
redact_pem_header(const uint8_t *b, size_t i, size_t len)
{
	size_t j;

	if (len < 3 || !IS(b[i], C_ALNUM))
		return false;
	for (j = i; j < i + len && (IS(b[j], C_ALNUM) || b[j] == '-'); j++)
		;
	if (j + 1 >= i + len || b[j] != ':' || b[j + 1] != ' ')
		return false;
	for (j += 2; j < i + len; j++) {
		if (b[j] < 0x20 || b[j] > 0x7e)
			return false;
	}
	return true;
}

/* Whether b[i..i+len) may still grow into a header line. */
static bool
redact_pem_header_prefix(const uint8_t *b, size_t i, size_t len)
{
	size_t j;

	if (len == 0 || !IS(b[i], C_ALNUM))
		return false;
	for (j = i; j < i + len && (IS(b[j], C_ALNUM) || b[j] == '-'); j++)
		;
	if (j == i + len)
		return true;
	if (b[j] != ':' || (j + 1 < i + len && b[j + 1] != ' '))
		return false;
	for (j += 2; j < i + len; j++) {
		if (b[j] < 0x20 || b[j] > 0x7e)
			return false;
	}
	return true;
}

/*
 * Walk a PEM body from the line start at i: lines of base64 (a short one
 * only right before the END line, or before a short "=" checksum line),
 * headers and one blank line before the first base64 line, then the END
 * line. cend is where the secret ends so far (the end of the line before
 * i, without its terminator); *body says whether a base64 line was seen
 * (in and out). Returns how it ended and sets *end where the secret ends:
 * after the END line (PEM_ENDED), or at the end of the last line that is
 * part of it (PEM_BROKEN: the next line is not PEM; PEM_OPEN: the line at
 * *resume needs more bytes to be decided). With force, a line still
 * arriving is decided as not PEM.
 */
enum pem_walk
redact_pem_walk(const uint8_t *b, size_t n, size_t i, size_t cend, bool *body, bool force,
    size_t *end, size_t *resume)
{
	size_t next, pend = SIZE_MAX, pcend = cend, k;
	bool blank = false;
	long len;
	int e;

	for (;;) {
		len = redact_pem_line(b, n, i, &next);
		if (len < 0) {
			/* The line is still arriving: it may be the END line. */
			k = n - i;
			/* a terminator may be arriving: "\\", "\\r", "\\r\\" */
			if (k >= 1 && b[n - 1] == '\\')
				k--;
			if (k >= 2 && b[i + k - 1] == 'r' && b[i + k - 2] == '\\')
				k -= 2;
			if (redact_pem_endline(b, i, k, true) == 1) {
				*end = i + k;
				return PEM_ENDED;
			}
			if (len == -1 && !force && (redact_pem_endline(b, i, k, false) >= 0 ||
			    redact_pem_b64(b, i, k) || k == 0 ||
			    (!*body && pend == SIZE_MAX && redact_pem_header_prefix(b, i, k))))
				break;
			*end = pend != SIZE_MAX ? pcend : cend;
			return PEM_BROKEN;
		}
		/* An END line may have no terminator yet: it ends with its dashes. */
		if ((e = redact_pem_endline(b, i, (size_t)len, true)) == 1) {
			*end = i + (size_t)len;
			return PEM_ENDED;
		}
		if (pend != SIZE_MAX) {
			/* After a short line only a short checksum line may come before END. */
			if (!(len > 0 && len < REDACT_PEM_FULL && b[i] == '=' &&
			    redact_pem_b64(b, i, (size_t)len))) {
				*end = pcend;
				return PEM_BROKEN;
			}
		} else if (len == 0 && !*body && !blank) {
			blank = true;
		} else if (!*body && redact_pem_header(b, i, (size_t)len)) {
			;
		} else if (redact_pem_b64(b, i, (size_t)len)) {
			*body = true;
			if (len < REDACT_PEM_FULL) {
				pend = i;	/* the last line: decided by what follows */
				pcend = cend;
			}
		} else {
			*end = cend;
			return PEM_BROKEN;
		}
		cend = i + (size_t)len;
		i = next;
	}
	*end = pend != SIZE_MAX ? pcend : cend;
	*resume = pend != SIZE_MAX ? pend : i;
	return PEM_OPEN;
}

/* "-----BEGIN ... PRIVATE KEY-----" at p, then a PEM body, through its END line. */
static struct det
redact_det_pem(const uint8_t *b, size_t n, size_t p, bool force)
{
	static const char begin[] = "-----BEGIN ";
	struct det d = { .res = DET_NO };
	size_t q, label, next, end, resume = 0;
	bool body = false;
	enum pem_walk w;
	long len;
	int r;

	if ((p > 0 && b[p - 1] == '-') || (p + 1 < n && b[p + 1] != '-'))
		return d;
	if ((r = redact_lit(b, n, p, begin, sizeof begin - 1)) < 0)
		return d;
	if (r == 0)
		return force ? d : (struct det){ .res = DET_MORE, .start = p };
	label = p + sizeof begin - 1;
	for (q = label; q < n && q - label <= 64 && IS(b[q], C_LABEL); q++)
		;
	if (q == n || (q < n && b[q] == '-' && n - q < 5)) {
		if (q - label > 64)
			return d;
		return force ? d : (struct det){ .res = DET_MORE, .start = p };
	}
	if (n - q < 5 || memcmp(b + q, "-----", 5) != 0)
		return d;
	if (memmem(b + label, q - label, "PRIVATE KEY", 11) == NULL)
		return d;
	q += 5;
	/* The BEGIN line ends there: a body follows on the next line. */
	len = redact_pem_line(b, n, q, &next);
	if (len != 0) {
		if (len == -1 && q + 2 > n && !force)
			return (struct det){ .res = DET_MORE, .start = p };
		/* Not the shape of a key: only the BEGIN line is hidden. */
		return (struct det){ DET_MATCH, p, q, KIND_PRIVATE_KEY, CONT_NONE, 0 };
	}
	w = redact_pem_walk(b, n, next, q, &body, force, &end, &resume);
	if (end - p > REDACT_PEM_MAX) {
		/* The bound: at the last line end within it. */
		for (end = p + REDACT_PEM_MAX; end > q && b[end] != '\n' && b[end] != '\r'; end--)
			;
		return (struct det){ DET_MATCH, p, end, KIND_PRIVATE_KEY, CONT_NONE, 0 };
	}
	if (w != PEM_OPEN)
		return (struct det){ DET_MATCH, p, end, KIND_PRIVATE_KEY, CONT_NONE, 0 };
	/* Open: the lines so far are the secret; from resume on it waits (CONT_PEM). */
	d = (struct det){ DET_MATCH, p, end, KIND_PRIVATE_KEY, CONT_PEM, 0 };
	d.quote = body ? 1 : 0;
	d.resume = resume;
	return d;
}

/* AKIA / ASIA and 16 of [A-Z0-9]; anchor p is the K or S. */
static struct det
redact_det_aws(const uint8_t *b, size_t n, size_t p, bool force)
{
	struct det d = { .res = DET_NO };
	size_t start = p - 1, i;

	if (p == 0 || b[start] != 'A' || !redact_boundary(b, start, C_ALNUM))
		return d;
	if (redact_lit(b, n, p + 1, "IA", 2) < 0)
		return d;
	for (i = p + 1; i < start + 20; i++) {
		if (i == n)
			return force ? d : (struct det){ .res = DET_MORE, .start = start };
		if (i >= p + 3 && !IS(b[i], C_UPALNUM))
			return d;
	}
	if (i == n && !force)
		return (struct det){ .res = DET_MORE, .start = start };
	if (i < n && IS(b[i], C_ALNUM))
		return d;
	return (struct det){ DET_MATCH, start, i, KIND_AWS_ACCESS, CONT_NONE, 0 };
}

/* ghp_ gho_ ghu_ ghs_ ghr_ and github_pat_; anchor p is the '_'. */
static struct det
redact_det_github(const uint8_t *b, size_t n, size_t p, bool force)
{
	struct det d = { .res = DET_NO };

	if (p >= 3 && b[p - 3] == 'g' && b[p - 2] == 'h' && b[p - 1] != '\0' &&
	    strchr("pousr", b[p - 1]) != NULL && redact_boundary(b, p - 3, C_ALNUM | C_B64URL))
		return redact_token(b, n, p - 3, p + 1, C_ALNUM, 20, KIND_GITHUB, force);
	if (p >= 10 && memcmp(b + p - 10, "github_pat", 10) == 0 &&
	    redact_boundary(b, p - 10, C_ALNUM | C_B64URL))
		return redact_token(b, n, p - 10, p + 1, C_IDENT, 22, KIND_GITHUB, force);
	return d;
}

/* glpat- and 20 of [A-Za-z0-9_-]; anchor p is the '-'. */
static struct det
redact_det_gitlab(const uint8_t *b, size_t n, size_t p, bool force)
{
	struct det d = { .res = DET_NO };

	if (p >= 5 && b[p - 1] == 't' && memcmp(b + p - 5, "glpat", 5) == 0 &&
	    redact_boundary(b, p - 5, C_ALNUM | C_B64URL))
		return redact_token(b, n, p - 5, p + 1, C_B64URL, 20, KIND_GITLAB, force);
	return d;
}

/* The end of a JWT starting at start, or why not: eyJ...(10+).xxxx(4+).sig(0+). */
static struct det
redact_jwt_at(const uint8_t *b, size_t n, size_t start, bool force)
{
	struct det d = { .res = DET_NO };
	size_t i = start, run;
	int seg;

	for (seg = 0; seg < 3; seg++) {
		run = redact_run(b, n, i, C_B64URL);
		i += run;
		if (i == n) {
			if (!force)
				return (struct det){ .res = DET_MORE, .start = start };
			if (seg == 0 && run < 10)
				return d;
			return (struct det){ DET_MATCH, start, n, KIND_JWT, CONT_JWT, 0 };
		}
		if ((seg == 0 && run < 10) || (seg == 1 && run < 4))
			return d;
		if (seg < 2) {
			if (b[i] != '.')
				return d;
			i++;
		}
	}
	if (b[i] == '.')
		return d;	/* more segments: not a JWS */
	return (struct det){ DET_MATCH, start, i, KIND_JWT, CONT_NONE, 0 };
}

/* A JWT; anchor p is the J of eyJ. */
static struct det
redact_det_jwt(const uint8_t *b, size_t n, size_t p, bool force)
{
	struct det d = { .res = DET_NO };

	if (p < 2 || b[p - 2] != 'e' || b[p - 1] != 'y' ||
	    !redact_boundary(b, p - 2, C_B64URL) || (p > 2 && b[p - 3] == '.'))
		return d;
	return redact_jwt_at(b, n, p - 2, force);
}

/* Keys whose value is a secret, normalized (lower case, no '_', '-', '.'). */
static const struct {
	const char *suffix;
	size_t len;
	const char *kind;
} redact_keys[] = {
#define K(s, kind) { s, sizeof s - 1, kind }
	K("secretaccesskey", KIND_AWS_SECRET),
	K("password", KIND_PASSWORD),
	K("passwd", KIND_PASSWORD),
	K("passphrase", KIND_PASSWORD),
	K("secret", KIND_PASSWORD),
	K("token", KIND_PASSWORD),
	K("apikey", KIND_PASSWORD),
	K("secretkey", KIND_PASSWORD),
	K("privatekey", KIND_PASSWORD),
	K("credential", KIND_PASSWORD),
	K("credentials", KIND_PASSWORD),
	K("authorization", KIND_PASSWORD),
#undef K
};

/*
 * Length of the colour change (SGR: ESC '[' digits and ';' or ':' 'm')
 * that ends right before i, or 0.
 */
static size_t
redact_sgr_before(const uint8_t *b, size_t i)
{
	size_t j;

	if (i < 3 || b[i - 1] != 'm')
		return 0;
	for (j = i - 1; j > 0 && i - j <= 32 && ((b[j - 1] >= '0' && b[j - 1] <= '9') ||
	    b[j - 1] == ';' || b[j - 1] == ':'); j--)
		;
	if (j < 2 || b[j - 1] != '[' || b[j - 2] != 0x1b)
		return 0;
	return i - (j - 2);
}

/*
 * Length of the colour change that starts at i (within n), or 0; a
 * sequence cut by n counts as what has arrived (its length to n).
 */
static size_t
redact_sgr_at(const uint8_t *b, size_t n, size_t i)
{
	size_t j;

	if (i >= n || b[i] != 0x1b)
		return 0;
	if (i + 1 == n)
		return 1;
	if (b[i + 1] != '[')
		return 0;
	for (j = i + 2; j < n && j - i <= 32 && ((b[j] >= '0' && b[j] <= '9') || b[j] == ';' ||
	    b[j] == ':'); j++)
		;
	if (j == n)
		return n - i;
	return b[j] == 'm' ? j + 1 - i : 0;
}

/*
 * The kind of the key that ends just before index q (after blanks and a
 * closing quote), or NULL; *auth is set for an Authorization header.
 */
static const char *
redact_key_kind(const uint8_t *b, size_t q, bool *auth)
{
	char key[REDACT_KEY_MAX + 1];
	size_t end, start, k = 0, klen, i, slen, sgr;
	uint8_t c;

	*auth = false;
	end = q;
	/* Blanks and colours (grep --color, jq -C) between the key and the '=' or ':'. */
	for (;;) {
		if (end > 0 && q - end < 64 && (b[end - 1] == ' ' || b[end - 1] == '\t'))
			end--;
		else if ((sgr = redact_sgr_before(b, end)) > 0 && q - end < 64)
			end -= sgr;
		else
			break;
	}
	if (end > 0 && (b[end - 1] == '"' || b[end - 1] == '\''))
		end--;
	while ((sgr = redact_sgr_before(b, end)) > 0 && q - end < 96)
		end -= sgr;
	if (end == 0)
		return NULL;
	/* Cheap reject on the last letter: d e t n y l s. */
	c = b[end - 1] | 0x20;
	if (c != 'd' && c != 'e' && c != 't' && c != 'n' && c != 'y' && c != 'l' && c != 's')
		return NULL;
	/* The key, read backwards: word characters, colour changes skipped. */
	for (start = end; start > 0 && end - start < 4 * REDACT_KEY_MAX; ) {
		if ((sgr = redact_sgr_before(b, start)) > 0) {
			start -= sgr;
			continue;
		}
		if (!IS(b[start - 1], C_WORD))
			break;
		if (++k > REDACT_KEY_MAX)
			return NULL;
		start--;
	}
	if (k == 0 || (start > 0 && b[start - 1] == '/'))
		return NULL;	/* no key, or a path such as /etc/passwd: */
	/* Colours before the key are not part of it. */
	while (start < end && b[start] == 0x1b && (sgr = redact_sgr_at(b, end, start)) > 0)
		start += sgr;
	k = 0;
	for (i = start; i < end; i++) {
		c = b[i];
		if (c == 0x1b && (sgr = redact_sgr_at(b, end, i)) > 0) {
			i += sgr - 1;
			continue;
		}
		if (!IS(c, C_WORD))
			return NULL;
		if (c == '_' || c == '-' || c == '.')
			continue;
		key[k++] = (char)(c | 0x20);
	}
	key[k] = '\0';
	klen = k;
	if (klen < 2)
		return NULL;
	for (i = 0; i < sizeof redact_keys / sizeof redact_keys[0]; i++) {
		slen = redact_keys[i].len;
		if (klen >= slen && key[klen - 1] == redact_keys[i].suffix[slen - 1] &&
		    key[klen - 2] == redact_keys[i].suffix[slen - 2] && memcmp(key + klen - slen, redact_keys[i].suffix, slen) == 0) {
			*auth = strcmp(redact_keys[i].suffix, "authorization") == 0;
			return redact_keys[i].kind;
		}
	}
	return NULL;
}

/* A value's kind: a JWT is a jwt whatever its key. */
static const char *
redact_value_kind(const uint8_t *b, size_t n, size_t v, size_t end, const char *kind)
{
	struct det j;

	if (kind == KIND_PASSWORD && end - v > 12 && b[v] == 'e' && b[v + 1] == 'y' &&
	    b[v + 2] == 'J') {
		j = redact_jwt_at(b, n, v, true);
		if (j.res == DET_MATCH && j.end == end)
			return KIND_JWT;
	}
	return kind;
}

/* scheme://user:password@ ; anchor p is the ':' before "//". */
static struct det
redact_det_url(const uint8_t *b, size_t n, size_t p, bool force)
{
	struct det d = { .res = DET_NO };
	size_t s = p, i, colon = 0;
	int r;

	while (s > 0 && p - s < 16 && (IS(b[s - 1], C_ALNUM) || b[s - 1] == '+'))
		s--;
	if (p - s < 2 || (r = redact_lit(b, n, p, "://", 3)) < 0)
		return d;
	if (r == 0)
		return force ? d : (struct det){ .res = DET_MORE, .start = p };
	for (i = p + 3; i < n && i - p < REDACT_URL_MAX; i++) {
		uint8_t c = b[i];

		if (c == '@') {
			if (colon == 0 || i == colon + 1)
				return d;
			return (struct det){ DET_MATCH, colon + 1, i, KIND_PASSWORD, CONT_NONE, 0 };
		}
		if (c == ':' && colon == 0) {
			if (i == p + 3)
				return d;
			colon = i;
			continue;
		}
		if (c <= ' ' || c == 0x7f || c == '/' || c == '?' || c == '#' || c == '"' ||
		    c == '\'' || (colon == 0 && c == '['))
			return d;
	}
	if (i == n && !force)
		return (struct det){ .res = DET_MORE, .start = p };
	return d;
}

/* KEY=VALUE, KEY: VALUE; anchor p is the '=' or ':'. */
static struct det
redact_det_kv(const uint8_t *b, size_t n, size_t p, bool force)
{
	struct det d = { .res = DET_NO };
	const char *kind;
	size_t v, e, run;
	bool auth;

	if (b[p] == ':' && (p + 1 == n || b[p + 1] == '/')) {
		d = redact_det_url(b, n, p, force);
		if (d.res != DET_NO)
			return d;
	}
	if (p > 0 && (b[p - 1] == '=' || b[p - 1] == '!' || b[p - 1] == '<' || b[p - 1] == '>'))
		return d;
	if ((kind = redact_key_kind(b, p, &auth)) == NULL)
		return d;
	if (p + 1 < n && b[p + 1] == '=')
		return d;	/* == */
	/* Blanks and colours before the value. */
	for (v = p + 1; v < n && v - p <= 96; ) {
		if (b[v] == ' ' || b[v] == '\t')
			v++;
		else if ((run = redact_sgr_at(b, n, v)) > 0)
			v += run;
		else
			break;
	}
	if (v == n) {
		if (!force)
			return (struct det){ .res = DET_MORE, .start = p };
		return (struct det){ DET_MATCH, n, n, kind, CONT_WAIT, 0 };
	}
	if (b[v] == '"' || b[v] == '\'') {
		for (e = v + 1; e < n && e - v <= REDACT_VALUE_MAX; e++) {
			if (b[e] == b[v] || b[e] == '\n' || b[e] == '\r')
				break;
		}
		if (e == n) {
			if (!force)
				return (struct det){ .res = DET_MORE, .start = p };
			return (struct det){ DET_MATCH, v + 1, n, kind, CONT_QUOTE, (char)b[v] };
		}
		if (b[e] != b[v] || e == v + 1)
			return d;
		return (struct det){ DET_MATCH, v + 1, e, redact_value_kind(b, n, v + 1, e, kind),
		    CONT_NONE, 0 };
	}
	run = redact_run(b, n, v, C_VALUE);
	if (run == 0)
		return d;
	if (auth && v + run < n && b[v + run] == ' ' &&
	    ((run == 6 && strncasecmp((const char *)b + v, "bearer", 6) == 0) ||
	    (run == 5 && strncasecmp((const char *)b + v, "basic", 5) == 0) ||
	    (run == 5 && strncasecmp((const char *)b + v, "token", 5) == 0))) {
		v += run + 1;
		if (v == n) {
			if (!force)
				return (struct det){ .res = DET_MORE, .start = p };
			return (struct det){ DET_MATCH, n, n, kind, CONT_WAIT, 0 };
		}
		if ((run = redact_run(b, n, v, C_VALUE)) == 0)
			return d;
	}
	if (v + run == n) {
		if (!force)
			return (struct det){ .res = DET_MORE, .start = p };
		return (struct det){ DET_MATCH, v, n, kind, CONT_VALUE, 0 };
	}
	return (struct det){ DET_MATCH, v, v + run, redact_value_kind(b, n, v, v + run, kind),
	    CONT_NONE, 0 };
}

/* Run the detector that owns the anchor at p. */
struct det
redact_detect(const uint8_t *b, size_t n, size_t p, bool force)
{
	struct det d = { .res = DET_NO };

	switch (b[p]) {
	case '-':
		d = redact_det_gitlab(b, n, p, force);
		if (d.res == DET_NO)
			d = redact_det_pem(b, n, p, force);
		break;
	case 'K':
	case 'S':
		d = redact_det_aws(b, n, p, force);
		break;
	case '_':
		d = redact_det_github(b, n, p, force);
		break;
	case 'J':
		d = redact_det_jwt(b, n, p, force);
		break;
	case '=':
	case ':':
		d = redact_det_kv(b, n, p, force);
		break;
	}
	return d;
}

/*
 * The start of the longest tail of b[lo..n) that is a proper prefix of a
 * detector's fixed start, or n: those bytes wait for what follows.
 */
size_t
redact_partial_tail(const uint8_t *b, size_t lo, size_t n)
{
	static const char *const words[] = {
		"-----BEGIN ", "github_pat_", "glpat-", "AKIA", "ASIA", "ghp_", "gho_", "ghu_",
		"ghs_", "ghr_", "eyJ",
	};
	size_t k, i, wl;

	for (k = n - lo < 10 ? n - lo : 10; k > 0; k--) {
		for (i = 0; i < sizeof words / sizeof words[0]; i++) {
			wl = strlen(words[i]);
			if (wl > k && memcmp(b + n - k, words[i], k) == 0)
				return n - k;
		}
	}
	return n;
}
