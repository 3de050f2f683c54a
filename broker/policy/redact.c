/*
 * Secret redaction: streaming detectors over the session's streams and an
 * ordered queue of events (contracts in redact.h).
 *
 * Each stream ('o', 'e', 'i') keeps a window: a look-behind of decided
 * bytes (for keys before '=' and word boundaries) followed by the
 * undecided bytes. A scan finds cheap anchors with a byte table ('-' 'K'
 * 'S' '_' 'J' '=' ':'), and only there runs the detector that owns the
 * anchor; a detector answers "no", "a secret from here to there", or "not
 * yet" (the candidate reaches the end of what has arrived). Decided secrets
 * become marks in stream offsets; events leave the queue once their bytes
 * are decided, rewritten through the marks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "policy/redact.h"

#define REDACT_LOOKBEHIND 128		/* decided bytes kept before the undecided ones */
#define REDACT_KEY_MAX 64		/* longest key before '=' or ':' */
#define REDACT_VALUE_MAX 4096		/* longest quoted value */
#define REDACT_URL_MAX 256		/* longest user:password@ */
#define REDACT_MAX_EVENT (16u * 1024 * 1024)

static const char KIND_PRIVATE_KEY[] = "private-key";
static const char KIND_AWS_ACCESS[] = "aws-access-key";
static const char KIND_AWS_SECRET[] = "aws-secret-key";
static const char KIND_GITHUB[] = "github-token";
static const char KIND_GITLAB[] = "gitlab-token";
static const char KIND_JWT[] = "jwt";
static const char KIND_PASSWORD[] = "password";

/* Character classes, as bits in a table. */
enum {
	C_ALNUM = 1,		/* [A-Za-z0-9] */
	C_UPALNUM = 2,		/* [A-Z0-9] */
	C_B64URL = 4,		/* [A-Za-z0-9_-] */
	C_WORD = 8,		/* key characters [A-Za-z0-9_.-] */
	C_VALUE = 16,		/* unquoted value: visible, not " ' , ; & */
	C_ANCHOR = 32,		/* a detector starts here */
	C_LABEL = 64,		/* PEM label [A-Z0-9 ] */
	C_IDENT = 128,		/* [A-Za-z0-9_] */
};

static uint8_t redact_class[256];

/* Fill the class table once. */
static void
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
		if (c != 0 && strchr("-KS_J=:", c) != NULL)
			f |= C_ANCHOR;
		redact_class[c] = f;
	}
}

#define IS(c, cls) ((redact_class[(uint8_t)(c)] & (cls)) != 0)

/* What a detector found. */
enum det_res { DET_NO = 0, DET_MATCH, DET_MORE };

/* How a secret forced to the end of a stream continues in the next feed. */
enum cont_class {
	CONT_NONE = 0,
	CONT_TOKEN,		/* [A-Za-z0-9_-] */
	CONT_JWT,		/* [A-Za-z0-9_-.] */
	CONT_VALUE,		/* unquoted value characters */
	CONT_QUOTE,		/* up to the closing quote (or a line end) */
	CONT_WAIT,		/* "key=" seen, its value not yet: blanks, then a value */
	CONT_PEM,		/* inside a private key block, up to its END line */
};

struct det {
	enum det_res res;
	size_t start, end;	/* window indexes: the secret, or (DET_MORE) where to hold from */
	const char *kind;
	enum cont_class cont;	/* DET_MATCH reaching the end: how it continues */
	char quote;
	size_t resume;		/* CONT_PEM: where the undecided line starts */
};

/* A decided secret, in stream offsets. */
struct redact_mark {
	uint64_t start, end;
	const char *kind;
	bool cont;		/* continues an earlier mark: no marker text */
};

struct redact_stream {
	char code;
	uint8_t *buf;
	size_t len, cap;
	size_t lb;		/* buf[0..lb) is decided (look-behind) */
	size_t scan;		/* the built-in scan resumes here (>= lb) */
	size_t line;		/* custom patterns: start of the current line (>= lb) */
	uint64_t base;		/* stream offset of buf[0] */
	uint64_t fed;		/* stream offset after the last byte fed */
	enum cont_class cont;	/* an open mark continues (all before it is decided) */
	const char *cont_kind;
	char cont_quote;
	uint64_t cont_from;	/* CONT_PEM: offset of the BEGIN */
	bool pem_body;		/* CONT_PEM: a base64 line was seen (no more headers) */
	uint64_t pem_end;	/* CONT_PEM: where the secret ends so far (scan: the next line) */
	EVP_MAC_CTX *proof;	/* the secret being proved, as its events come out */
	const char *proof_kind;
	uint64_t proof_len;
	bool proof_queued;	/* an empty event was queued to close it */
	struct redact_mark *marks;
	size_t nmarks, capmarks;
};

struct redact_ev {
	struct redact_ev *next;
	struct redact_stream *st;	/* NULL: opaque */
	uint64_t time;
	uint64_t start;			/* stream offset of data[0] */
	size_t len;
	char code;
	uint8_t data[];
};

struct redact {
	const struct config *config;
	struct redact_stream streams[3];	/* o, e, i */
	struct redact_ev *head, *tail;
	size_t queued;			/* bytes in the queue */
	struct redact_ev *last;		/* returned by redact_next, freed at the next call */
	uint8_t *out;
	size_t outcap;
	struct redact_span *spans;
	size_t capspans;
	uint64_t last_feed;
	bool fed_since_flush;
	bool failed;
	EVP_MAC *mac;			/* HMAC, with key (redact_set_key) */
	unsigned char key[64];
	size_t keylen;
	struct redact_proof *proofs;	/* of the chunk last returned */
	size_t nproofs, capproofs;
};

/* ---- Buffers and marks ---- */

/* Grow *buf to hold need bytes. */
static int
redact_reserve(uint8_t **buf, size_t *cap, size_t need)
{
	uint8_t *nb;
	size_t ncap = *cap > 0 ? *cap : 4096;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	if ((nb = realloc(*buf, ncap)) == NULL)
		return -ENOMEM;
	*buf = nb;
	*cap = ncap;
	return 0;
}

/* Add a mark for window indexes [start, end), merging with the last when they touch. */
static int
redact_mark_add(struct redact_stream *st, size_t start, size_t end, const char *kind,
    bool cont)
{
	uint64_t s = st->base + start, e = st->base + end;
	struct redact_mark *m;

	if (end <= start)
		return 0;
	if (st->nmarks > 0) {
		m = &st->marks[st->nmarks - 1];
		if (s <= m->end && s >= m->start) {	/* overlaps or continues the last */
			if (e > m->end)
				m->end = e;
			return 0;
		}
	}
	if (st->nmarks == st->capmarks) {
		size_t ncap = st->capmarks > 0 ? st->capmarks * 2 : 8;

		if ((m = reallocarray(st->marks, ncap, sizeof *m)) == NULL)
			return -ENOMEM;
		st->marks = m;
		st->capmarks = ncap;
	}
	st->marks[st->nmarks++] = (struct redact_mark){ s, e, kind, cont };
	return 0;
}

/* Sort marks by start and merge overlapping ones (after custom marks were added). */
static void
redact_marks_normalize(struct redact_stream *st)
{
	struct redact_mark t;
	size_t i, j, n = 0;

	for (i = 1; i < st->nmarks; i++) {	/* insertion sort: nearly sorted, short */
		t = st->marks[i];
		for (j = i; j > 0 && st->marks[j - 1].start > t.start; j--)
			st->marks[j] = st->marks[j - 1];
		st->marks[j] = t;
	}
	for (i = 0; i < st->nmarks; i++) {
		if (n > 0 && st->marks[i].start <= st->marks[n - 1].end) {
			if (st->marks[i].end > st->marks[n - 1].end)
				st->marks[n - 1].end = st->marks[i].end;
			continue;
		}
		st->marks[n++] = st->marks[i];
	}
	st->nmarks = n;
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

/* How a walk over a PEM body ended. */
enum pem_walk {
	PEM_ENDED,		/* the END line closed it */
	PEM_BROKEN,		/* a line that is not PEM: the secret ends before it */
	PEM_OPEN,		/* more is needed to decide the line at the returned end */
};

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
static enum pem_walk
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
static struct det
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
static size_t
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

/* ---- Streams ---- */

/* Whether byte c continues a forced secret of class cls (quote for CONT_QUOTE). */
static bool
redact_cont_byte(enum cont_class cls, char quote, uint8_t c)
{
	switch (cls) {
	case CONT_TOKEN:
		return IS(c, C_B64URL);
	case CONT_JWT:
		return IS(c, C_B64URL) || c == '.';
	case CONT_VALUE:
		return IS(c, C_VALUE);
	case CONT_QUOTE:
		return c != (uint8_t)quote && c != '\n' && c != '\r';
	default:
		return false;
	}
}

/*
 * Continue an open secret at st->scan (== st->lb): swallow what belongs
 * to it. Returns 0 or -ENOMEM; st->cont is CONT_NONE once it ended.
 */
static int
redact_stream_continue(struct redact_stream *st, bool force)
{
	uint8_t *b = st->buf;
	size_t n = st->len, i = st->scan, from, l;
	enum pem_walk w;
	int r;

	if (st->cont == CONT_WAIT) {
		while (i < n && (b[i] == ' ' || b[i] == '\t'))
			i++;
		st->scan = i;
		if (i == n)
			return 0;
		if (b[i] == '"' || b[i] == '\'') {
			st->cont = CONT_QUOTE;
			st->cont_quote = (char)b[i];
			st->scan = ++i;
			if ((r = redact_mark_add(st, i, i, st->cont_kind, false)) < 0)
				return r;
		} else if (IS(b[i], C_VALUE)) {
			st->cont = CONT_VALUE;
		} else {
			st->cont = CONT_NONE;
			return 0;
		}
		/* the value is a new secret: it gets its own marker */
		for (from = i; i < n && redact_cont_byte(st->cont, st->cont_quote, b[i]); i++)
			;
		st->scan = i;
		if (i < n)
			st->cont = CONT_NONE;
		return redact_mark_add(st, from, i, st->cont_kind, false);
	}
	if (st->cont == CONT_PEM) {
		/* The body goes on line by line while it has a key's shape. */
		size_t at = (size_t)(st->pem_end - st->base);

		w = redact_pem_walk(b, n, i, at, &st->pem_body, force, &l, &from);
		if (st->base + l - st->cont_from > REDACT_PEM_MAX) {
			/* The bound: at the last line end within it, then scan again. */
			l = (size_t)(st->cont_from + REDACT_PEM_MAX - st->base);
			while (l > at && b[l] != '\n' && b[l] != '\r')
				l--;
			w = PEM_BROKEN;
		}
		if (w != PEM_OPEN) {
			st->cont = CONT_NONE;
			from = l;
		}
		st->pem_end = st->base + l;
		st->scan = from;
		return redact_mark_add(st, at, l, KIND_PRIVATE_KEY, true);
	}
	for (; i < n && redact_cont_byte(st->cont, st->cont_quote, b[i]); i++)
		;
	if ((r = redact_mark_add(st, st->scan, i, st->cont_kind, true)) < 0)
		return r;
	st->scan = i;
	if (i < n)
		st->cont = CONT_NONE;
	return 0;
}

/*
 * Run the custom patterns over whole lines b[ls..le) (compiled with
 * REG_NEWLINE: no match crosses a line end) and mark their matches.
 */
static int
redact_custom_line(struct redact *rd, struct redact_stream *st, size_t ls, size_t le)
{
	const struct config *c = rd->config;
	regmatch_t m;
	size_t i, at;
	int r, flags;

	for (i = 0; i < c->nredact; i++) {
		for (at = ls, flags = REG_STARTEND; at < le; flags |= REG_NOTBOL) {
			m.rm_so = (regoff_t)at;
			m.rm_eo = (regoff_t)le;
			if (regexec(&c->redact[i].pattern.re, (const char *)st->buf, 1, &m, flags) != 0)
				break;
			if (m.rm_eo <= m.rm_so) {
				at = (size_t)m.rm_so + 1;
				continue;
			}
			if ((r = redact_mark_add(st, (size_t)m.rm_so, (size_t)m.rm_eo,
			    c->redact[i].kind, false)) < 0)
				return r;
			at = (size_t)m.rm_eo;
		}
	}
	redact_marks_normalize(st);
	return 0;
}

/* Where undecided bytes start that no mark covers: a partial prefix lies after it. */
static size_t
redact_undecided_from(const struct redact_stream *st)
{
	size_t lo = st->lb;
	uint64_t end;

	if (st->nmarks > 0) {
		end = st->marks[st->nmarks - 1].end;
		if (end > st->base + lo)
			lo = (size_t)(end - st->base);
	}
	return lo < st->len ? lo : st->len;
}

/* How hard a pass decides. */
enum redact_pass {
	PASS_NORMAL,		/* hold what may still grow into a secret */
	PASS_BOUND,		/* the hold is over its bound: decide candidates, keep a partial prefix */
	PASS_FLUSH,		/* decide everything */
};

/*
 * Scan a stream's undecided bytes and move its decided point (st->lb).
 * Returns 0 or -ENOMEM.
 */
static int
redact_stream_scan(struct redact *rd, struct redact_stream *st, enum redact_pass pass)
{
	const bool force = pass != PASS_NORMAL;
	const bool custom = rd->config != NULL && rd->config->nredact > 0;
	uint8_t *b = st->buf;
	size_t n = st->len, p, hold = n, nl, resume = SIZE_MAX;
	const uint8_t *q;
	struct det d;
	int r;

	/* An open secret first: everything before it is decided. */
	while (st->cont != CONT_NONE && (st->scan < n || (force && st->cont == CONT_PEM))) {
		if ((r = redact_stream_continue(st, force)) < 0)
			return r;
		if (st->cont != CONT_NONE)
			break;
	}
	if (st->cont == CONT_NONE) {
		for (p = st->scan; p < n; p++) {
			if (!IS(b[p], C_ANCHOR))
				continue;
			d = redact_detect(b, n, p, force);
			if (d.res == DET_NO)
				continue;
			if (d.res == DET_MORE) {
				hold = d.start;
				break;
			}
			if (d.start < st->lb)
				d.start = st->lb;	/* its start is out already: redact the rest */
			if (st->nmarks > 0 && st->marks[st->nmarks - 1].end > st->base + d.start)
				d.start = (size_t)(st->marks[st->nmarks - 1].end - st->base);
			if (d.start > d.end)
				d.start = d.end;
			if ((r = redact_mark_add(st, d.start, d.end, d.kind, false)) < 0)
				return r;
			if (d.cont != CONT_NONE && (d.end == n || d.cont == CONT_PEM)) {
				st->cont = d.cont;
				st->cont_kind = d.kind;
				st->cont_quote = d.quote;
				st->cont_from = st->base + d.start;
				if (d.cont == CONT_PEM) {
					/* What follows the secret so far waits. */
					st->pem_body = d.quote != 0;
					st->pem_end = st->base + d.end;
					st->cont_quote = 0;
					hold = d.end;
					resume = d.resume;
				}
				p = n;
				break;
			}
			p = d.end - 1;
		}
		st->scan = p < n ? hold : n;
		if (hold == n && st->cont == CONT_NONE && pass != PASS_FLUSH)
			hold = redact_partial_tail(b, redact_undecided_from(st), n);
		if (hold < st->scan)
			st->scan = hold;
		if (resume != SIZE_MAX)
			st->scan = resume;
	} else {
		hold = st->cont == CONT_PEM ? (size_t)(st->pem_end - st->base) : n;
	}
	if (hold < st->lb)
		hold = st->lb;
	/* Custom patterns see whole lines: the current one waits for its end. */
	if (custom) {
		if (st->line < st->lb)
			st->line = st->lb;
		if (st->line < n && (q = memrchr(b + st->line, '\n', n - st->line)) != NULL) {
			nl = (size_t)(q - b);
			if ((r = redact_custom_line(rd, st, st->line, nl)) < 0)
				return r;
			st->line = nl + 1;
		}
		if (force && st->line < n) {
			if ((r = redact_custom_line(rd, st, st->line, n)) < 0)
				return r;
			st->line = n;
		}
		if (st->line < hold)
			hold = st->line;
	}
	st->lb = hold;
	if (st->scan < st->lb)
		st->scan = st->lb;
	return 0;
}

/* Drop decided bytes beyond the look-behind. */
static void
redact_stream_compact(struct redact_stream *st)
{
	size_t shift;

	if (st->lb <= REDACT_LOOKBEHIND)
		return;
	shift = st->lb - REDACT_LOOKBEHIND;
	memmove(st->buf, st->buf + shift, st->len - shift);
	explicit_bzero(st->buf + st->len - shift, shift);
	st->len -= shift;
	st->buf[st->len] = '\0';
	st->lb -= shift;
	st->scan -= shift;
	st->line = st->line > shift ? st->line - shift : 0;
	st->base += shift;
}

/* Append data to a stream and decide what can be. */
static int
redact_stream_feed(struct redact *rd, struct redact_stream *st, const void *data, size_t len)
{
	int r;

	/* One more byte: a NUL after the data (regexec's sanitizer reads up to one). */
	if ((r = redact_reserve(&st->buf, &st->cap, st->len + len + 1)) < 0)
		return r;
	memcpy(st->buf + st->len, data, len);
	st->len += len;
	st->buf[st->len] = '\0';
	st->fed += len;
	if ((r = redact_stream_scan(rd, st, PASS_NORMAL)) < 0)
		return r;
	if (st->len - st->lb > REDACT_HOLD_MAX &&
	    (r = redact_stream_scan(rd, st, PASS_BOUND)) < 0)
		return r;
	redact_stream_compact(st);
	return 0;
}

/* Decide everything a stream holds. */
static int
redact_stream_flush(struct redact *rd, struct redact_stream *st)
{
	int r;

	if (st->lb == st->len && st->cont == CONT_NONE)
		return 0;
	if ((r = redact_stream_scan(rd, st, PASS_FLUSH)) < 0)
		return r;
	redact_stream_compact(st);
	return 0;
}

/* ---- The redactor ---- */

/* The stream of code, or NULL for an opaque code. */
static struct redact_stream *
redact_stream_of(struct redact *r, char code)
{
	switch (code) {
	case 'o':
		return &r->streams[0];
	case 'e':
		return &r->streams[1];
	case 'i':
		return &r->streams[2];
	}
	return NULL;
}

int
redact_new(const struct config *c, struct redact **out)
{
	struct redact *r;

	*out = NULL;
	redact_class_init();
	if ((r = calloc(1, sizeof *r)) == NULL)
		return -ENOMEM;
	r->config = c;
	r->streams[0].code = 'o';
	r->streams[1].code = 'e';
	r->streams[2].code = 'i';
	*out = r;
	return 0;
}

/* Free one queued event, wiping its bytes. */
static void
redact_ev_free(struct redact_ev *ev)
{
	if (ev == NULL)
		return;
	explicit_bzero(ev->data, ev->len);
	free(ev);
}

void
redact_free(struct redact *r)
{
	struct redact_ev *ev, *next;
	size_t i;

	if (r == NULL)
		return;
	for (ev = r->head; ev != NULL; ev = next) {
		next = ev->next;
		redact_ev_free(ev);
	}
	redact_ev_free(r->last);
	for (i = 0; i < 3; i++) {
		if (r->streams[i].buf != NULL)
			explicit_bzero(r->streams[i].buf, r->streams[i].cap);
		free(r->streams[i].buf);
		free(r->streams[i].marks);
		EVP_MAC_CTX_free(r->streams[i].proof);
	}
	OPENSSL_cleanse(r->key, sizeof r->key);
	EVP_MAC_free(r->mac);
	free(r->proofs);
	if (r->out != NULL)
		explicit_bzero(r->out, r->outcap);
	free(r->out);
	free(r->spans);
	free(r);
}

/* Whether the head event's bytes are all decided. */
static bool
redact_head_final(const struct redact *r)
{
	const struct redact_ev *ev = r->head;

	return ev != NULL && (ev->st == NULL || ev->start + ev->len <= ev->st->base + ev->st->lb);
}

int
redact_feed(struct redact *r, char code, uint64_t time, const void *data, size_t len)
{
	struct redact_ev *ev;
	struct redact_stream *st;
	int e;

	if (r == NULL || code == 0 || (len > 0 && data == NULL))
		return -EINVAL;
	if (r->failed)
		return -ENOMEM;
	if (len > REDACT_MAX_EVENT)
		return -EMSGSIZE;
	if ((ev = malloc(sizeof *ev + len)) == NULL)
		goto oom;
	st = redact_stream_of(r, code);
	ev->next = NULL;
	ev->st = st;
	ev->time = time;
	ev->start = st != NULL ? st->fed : 0;
	ev->len = len;
	ev->code = code;
	if (len > 0)
		memcpy(ev->data, data, len);
	if (r->tail != NULL)
		r->tail->next = ev;
	else
		r->head = ev;
	r->tail = ev;
	r->queued += len;
	r->last_feed = time;
	r->fed_since_flush = true;
	if (st != NULL && len > 0 && (e = redact_stream_feed(r, st, data, len)) < 0)
		goto fail;
	/* Too much waits behind a held event: decide its stream now. */
	if (r->queued > REDACT_QUEUE_MAX && !redact_head_final(r) &&
	    (e = redact_stream_flush(r, r->head->st)) < 0)
		goto fail;
	return 0;
oom:
	e = -ENOMEM;
fail:
	r->failed = true;
	return e;
}

/* Make room for one more span in the output. */
static int
redact_span_push(struct redact *r, size_t *n, size_t at, size_t len, const char *kind)
{
	struct redact_span *s;

	if (*n == r->capspans) {
		size_t ncap = r->capspans > 0 ? r->capspans * 2 : 8;

		if ((s = reallocarray(r->spans, ncap, sizeof *s)) == NULL)
			return -ENOMEM;
		r->spans = s;
		r->capspans = ncap;
	}
	r->spans[(*n)++] = (struct redact_span){ at, len, kind };
	return 0;
}

/* Start proving a secret of kind on st. */
static int
redact_proof_start(struct redact *r, struct redact_stream *st, const char *kind)
{
	OSSL_PARAM params[2];

	if (r->mac == NULL)
		return 0;
	if ((st->proof = EVP_MAC_CTX_new(r->mac)) == NULL)
		return -ENOMEM;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(st->proof, r->key, r->keylen, params) != 1) {
		EVP_MAC_CTX_free(st->proof);
		st->proof = NULL;
		return -ENOMEM;
	}
	st->proof_kind = kind;
	st->proof_len = 0;
	return 0;
}

/* Add hidden bytes to the open proof of st. */
static int
redact_proof_update(struct redact_stream *st, const uint8_t *b, size_t len)
{
	if (st->proof == NULL || len == 0)
		return 0;
	st->proof_len += len;
	return EVP_MAC_update(st->proof, b, len) == 1 ? 0 : -ENOMEM;
}

/* Close the open proof of st into the chunk's list. */
static int
redact_proof_finish(struct redact *r, struct redact_stream *st)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	struct redact_proof *p;
	size_t mdlen = 0, i;
	int e = 0;

	if (st->proof == NULL)
		return 0;
	if (r->nproofs == r->capproofs) {
		size_t ncap = r->capproofs > 0 ? r->capproofs * 2 : 4;

		if ((p = reallocarray(r->proofs, ncap, sizeof *p)) == NULL) {
			e = -ENOMEM;
			goto out;
		}
		r->proofs = p;
		r->capproofs = ncap;
	}
	if (EVP_MAC_final(st->proof, md, &mdlen, sizeof md) != 1 || mdlen * 2 > REDACT_PROOF_HEX) {
		e = -ENOMEM;
		goto out;
	}
	p = &r->proofs[r->nproofs++];
	p->code = st->code;
	p->kind = st->proof_kind;
	p->len = st->proof_len;
	for (i = 0; i < mdlen; i++)
		snprintf(p->hmac + 2 * i, 3, "%02x", md[i]);
out:
	EVP_MAC_CTX_free(st->proof);
	st->proof = NULL;
	st->proof_queued = false;
	return e;
}

int
redact_set_key(struct redact *r, const void *key, size_t len)
{
	if (r == NULL || key == NULL || len == 0 || len > sizeof r->key)
		return -EINVAL;
	if (r->mac == NULL && (r->mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
		return -ENOMEM;
	memcpy(r->key, key, len);
	r->keylen = len;
	return 0;
}

int
redact_next(struct redact *r, struct redact_chunk *out)
{
	struct redact_ev *ev;
	struct redact_stream *st;
	struct redact_mark *m;
	uint64_t s0, s1, cur, from, to;
	size_t i, keep, o = 0, nspans = 0, need;
	char marker[16 + REDACT_KIND_MAX + 64];
	int ml, e;

	memset(out, 0, sizeof *out);
	if (r == NULL)
		return -EINVAL;
	redact_ev_free(r->last);
	r->last = NULL;
	if (r->failed)
		return -ENOMEM;
	if (!redact_head_final(r))
		return 0;
	ev = r->head;
	r->head = ev->next;
	if (r->head == NULL)
		r->tail = NULL;
	r->queued -= ev->len;
	r->last = ev;
	out->code = ev->code;
	out->time = ev->time;
	out->data = ev->data;
	out->len = ev->len;
	r->nproofs = 0;
	st = ev->st;
	/* A secret being proved ends unless this event continues it. */
	if (st != NULL && st->proof != NULL && !(st->nmarks > 0 && st->marks[0].cont &&
	    st->marks[0].start == ev->start && ev->len > 0)) {
		if ((e = redact_proof_finish(r, st)) < 0)
			goto fail;
	}
	out->proofs = r->proofs;
	out->nproofs = r->nproofs;
	if (st == NULL || st->nmarks == 0 || st->marks[0].start >= ev->start + ev->len)
		return 1;	/* nothing to change: the bytes as fed */

	s0 = ev->start;
	s1 = ev->start + ev->len;
	need = ev->len;
	for (i = 0; i < st->nmarks && st->marks[i].start < s1; i++)
		need += sizeof marker;
	if ((e = redact_reserve(&r->out, &r->outcap, need)) < 0)
		goto fail;
	cur = s0;
	for (i = 0; i < st->nmarks && st->marks[i].start < s1; i++) {
		m = &st->marks[i];
		if (m->end <= cur)
			continue;
		from = m->start > cur ? m->start : cur;
		memcpy(r->out + o, ev->data + (cur - s0), from - cur);
		o += from - cur;
		if (m->start >= s0 && !m->cont) {
			ml = snprintf(marker, sizeof marker, "[REDACTED:%s]", m->kind);
			memcpy(r->out + o, marker, (size_t)ml);
			if ((e = redact_span_push(r, &nspans, o, (size_t)ml, m->kind)) < 0)
				goto fail;
			o += (size_t)ml;
			if ((e = redact_proof_finish(r, st)) < 0 ||
			    (e = redact_proof_start(r, st, m->kind)) < 0)
				goto fail;
		} else if (st->proof == NULL && (e = redact_proof_start(r, st, m->kind)) < 0) {
			goto fail;
		}
		to = m->end < s1 ? m->end : s1;
		if ((e = redact_proof_update(st, ev->data + (from - s0), to - from)) < 0)
			goto fail;
		/* Followed by a byte it did not hide, or nothing may continue it: done. */
		if ((to < s1 || (m->end <= s1 && st->cont == CONT_NONE)) &&
		    (e = redact_proof_finish(r, st)) < 0)
			goto fail;
		cur = to;
	}
	memcpy(r->out + o, ev->data + (cur - s0), s1 - cur);
	o += s1 - cur;
	/* Marks wholly before the next event are done; a later part loses its marker. */
	for (keep = 0, i = 0; i < st->nmarks; i++) {
		m = &st->marks[i];
		if (m->end <= s1)
			continue;
		if (m->start < s1) {
			m->start = s1;
			m->cont = true;
		}
		st->marks[keep++] = *m;
	}
	st->nmarks = keep;
	out->data = r->out;
	out->len = o;
	out->spans = r->spans;
	out->nspans = nspans;
	out->proofs = r->proofs;
	out->nproofs = r->nproofs;
	return 1;
fail:
	r->failed = true;
	return e;
}

int
redact_flush(struct redact *r)
{
	size_t i;
	int e;

	if (r == NULL)
		return -EINVAL;
	if (r->failed)
		return -ENOMEM;
	for (i = 0; i < 3; i++) {
		if ((e = redact_stream_flush(r, &r->streams[i])) < 0) {
			r->failed = true;
			return e;
		}
	}
	/* A proof still open has nothing left to wait for: an empty event closes it. */
	for (i = 0; i < 3; i++) {
		struct redact_stream *st = &r->streams[i];

		if (st->proof != NULL && st->cont == CONT_NONE && !st->proof_queued) {
			if ((e = redact_feed(r, st->code, r->last_feed, NULL, 0)) < 0)
				return e;
			st->proof_queued = true;
		}
	}
	r->fed_since_flush = false;
	return 0;
}

int
redact_tick(struct redact *r, uint64_t now)
{
	if (r == NULL || r->failed || !r->fed_since_flush || now < r->last_feed ||
	    now - r->last_feed < REDACT_IDLE_NS)
		return 0;
	return redact_flush(r) == 0 ? 1 : 0;
}

size_t
redact_held(const struct redact *r, char code)
{
	const struct redact_stream *st;

	if (r == NULL)
		return 0;
	st = redact_stream_of((struct redact *)r, code);
	return st != NULL ? st->len - st->lb : 0;
}

size_t
redact_queued(const struct redact *r)
{
	return r != NULL ? r->queued : 0;
}

int
redact_string(const struct config *c, const void *s, size_t len, char **out, size_t *outlen)
{
	struct redact *r = NULL;
	struct redact_chunk ch;
	char *buf = NULL, *nb;
	size_t n = 0;
	int e;

	*out = NULL;
	if (outlen != NULL)
		*outlen = 0;
	if ((e = redact_new(c, &r)) < 0)
		return e;
	if ((e = redact_feed(r, 'o', 0, s, len)) < 0 || (e = redact_flush(r)) < 0)
		goto out;
	if ((buf = malloc(1)) == NULL) {
		e = -ENOMEM;
		goto out;
	}
	while ((e = redact_next(r, &ch)) == 1) {
		if ((nb = realloc(buf, n + ch.len + 1)) == NULL) {
			e = -ENOMEM;
			goto out;
		}
		buf = nb;
		memcpy(buf + n, ch.data, ch.len);
		n += ch.len;
	}
	if (e < 0)
		goto out;
	buf[n] = '\0';
	*out = buf;
	if (outlen != NULL)
		*outlen = n;
	buf = NULL;	/* transferred */
out:
	free(buf);
	redact_free(r);
	return e;
}
