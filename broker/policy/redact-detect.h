/*
 * The built-in detectors of secret redaction (redact.h): a byte class
 * table to find anchors, and per anchor the detector that decides
 * whether a secret starts there. Shared by redact.c (the streams and the
 * queue) and redact-detect.c; not for use outside them.
 */
#ifndef PODGATE_REDACT_DETECT_H
#define PODGATE_REDACT_DETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

extern uint8_t redact_class[256];

/* The bytes a detector starts at (C_ANCHOR). */
#define REDACT_ANCHORS "-KS_J=:"

/* Fill redact_class (once; later calls do nothing). */
void redact_class_init(void);

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
/* How a walk over a PEM body ended. */
enum pem_walk {
	PEM_ENDED,		/* the END line closed it */
	PEM_BROKEN,		/* a line that is not PEM: the secret ends before it */
	PEM_OPEN,		/* more is needed to decide the line at the returned end */
};

/* The kind a PEM block is reported as (its continuation is the streams'). */
extern const char KIND_PRIVATE_KEY[];

/*
 * Run the detector that owns the anchor at b[p] over the window b[0..n):
 * no secret, a secret (start, end, kind, and how it continues when it
 * reaches n), or more bytes needed (with force: decide now).
 */
struct det redact_detect(const uint8_t *b, size_t n, size_t p, bool force);

/*
 * Whether the anchor at b[p] may start a secret: false only where the
 * detector that owns it would say no at its first test (the bytes around
 * the anchor), so that most anchors in ordinary output cost no call.
 * '=' and ':' (key = value, URLs) are always looked at.
 */
static inline bool
redact_may_detect(const uint8_t *b, size_t n, size_t p)
{
	switch (b[p]) {
	case '-':	/* glpat-, or -----BEGIN */
		return (p > 0 && b[p - 1] == 't') ||
		    ((p == 0 || b[p - 1] != '-') && (p + 1 == n || b[p + 1] == '-'));
	case 'K':	/* AKIA, ASIA */
	case 'S':
		return p > 0 && b[p - 1] == 'A';
	case '_':	/* ghp_ ..., github_pat_ */
		return (p >= 3 && b[p - 3] == 'g' && b[p - 2] == 'h') || (p > 0 && b[p - 1] == 't');
	case 'J':	/* eyJ */
		return p >= 2 && b[p - 2] == 'e' && b[p - 1] == 'y';
	default:
		return true;
	}
}

/* The first anchor (REDACT_ANCHORS) in b[p..n), or n. */
size_t redact_next_anchor(const uint8_t *b, size_t p, size_t n);

/*
 * The start of the longest tail of b[lo..n) that is a proper prefix of a
 * detector's fixed start, or n: those bytes wait for what follows.
 */
size_t redact_partial_tail(const uint8_t *b, size_t lo, size_t n);

/*
 * Walk a PEM body from the line start at i (see redact-detect.c): how it
 * ended, *end where the secret ends, *resume where an undecided line
 * starts.
 */
enum pem_walk redact_pem_walk(const uint8_t *b, size_t n, size_t i, size_t cend, bool *body,
    bool force, size_t *end, size_t *resume);

#endif
