/*
 * Secret redaction: streams that run the detectors (redact-detect.c) over
 * the session's output and input, and an ordered queue of events
 * (contracts in redact.h).
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

#include "base.h"
#include "policy/redact.h"
#include "policy/redact-detect.h"

#define REDACT_LOOKBEHIND 128		/* decided bytes kept before the undecided ones */
#define REDACT_MAX_EVENT (16u * 1024 * 1024)

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
			if ((p = redact_next_anchor(b, p, n)) == n)
				break;
			if (!redact_may_detect(b, n, p))
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
	struct buf b = { 0 };
	int e;

	*out = NULL;
	if (outlen != NULL)
		*outlen = 0;
	if ((e = redact_new(c, &r)) < 0)
		return e;
	if ((e = redact_feed(r, 'o', 0, s, len)) < 0 || (e = redact_flush(r)) < 0)
		goto out;
	while ((e = redact_next(r, &ch)) == 1)
		buf_add(&b, ch.data, ch.len);
	if (e < 0)
		goto out;
	buf_add(&b, "", 0);	/* a string even when s is empty */
	if (b.oom) {
		e = -ENOMEM;
		goto out;
	}
	*out = b.data;
	if (outlen != NULL)
		*outlen = b.len;
	memset(&b, 0, sizeof b);	/* transferred */
out:
	buf_free(&b);
	redact_free(r);
	return e;
}

/* Redact s; and when that changed it, its HMAC under key. */
int
redact_string_proved(const struct config *c, const void *key, size_t keylen, const void *s,
    size_t len, char **out, size_t *outlen, char hmac[REDACT_PROOF_HEX + 1])
{
	unsigned char md[32];
	size_t n = 0, mdlen = 0, i;
	int e;

	hmac[0] = '\0';
	if ((e = redact_string(c, s, len, out, &n)) < 0)
		return e;
	if (outlen != NULL)
		*outlen = n;
	if (key == NULL || keylen == 0 || (n == len && memcmp(*out, s, len) == 0))
		return 0;
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen, s, len, md, sizeof md,
	    &mdlen) == NULL || mdlen != sizeof md) {
		/* With a key, a redacted value never goes out without its proof. */
		free(*out);
		*out = NULL;
		if (outlen != NULL)
			*outlen = 0;
		return -ENOMEM;
	}
	for (i = 0; i < mdlen; i++)
		snprintf(hmac + 2 * i, 3, "%02x", md[i]);
	return 0;
}
