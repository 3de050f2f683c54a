/*
 * Secret redaction for everything a session keeps: the recording, the
 * audit log and live views. The client's own terminal (and the target)
 * always get the real bytes: the redactor sits only on the recording
 * path and never delays the session's I/O.
 *
 * Secrets are replaced by "[REDACTED:kind]". Built-in detectors (kinds):
 *   private-key      PEM blocks "-----BEGIN ... PRIVATE KEY-----" (RSA,
 *                    EC, OPENSSH, ENCRYPTED, PGP ...) and the body lines
 *                    that have a key's shape (base64 lines; headers and a
 *                    blank line before them; a short last line and an "="
 *                    checksum line only before END), through the END line.
 *                    Redacted line by line as they arrive (the line still
 *                    arriving is held back); the span stops at the first
 *                    line without that shape, and at REDACT_PEM_MAX bytes
 *                    from its BEGIN.
 *   aws-access-key   AKIA or ASIA and 16 of [A-Z0-9], standing alone
 *   aws-secret-key   the value of aws_secret_access_key = ..., and of keys
 *                    ending in SecretAccessKey ("SecretAccessKey": "...")
 *   github-token     ghp_ gho_ ghu_ ghs_ ghr_ and 20+ of [A-Za-z0-9];
 *                    github_pat_ and 22+ of [A-Za-z0-9_]
 *   gitlab-token     glpat- and 20+ of [A-Za-z0-9_-]
 *   jwt              eyJ... . ... . ... (three base64url segments, the last
 *                    may be empty): OIDC and Kubernetes service-account
 *                    tokens, wherever they appear
 *   password         the value in KEY=VALUE and KEY: VALUE pairs (quoted or
 *                    not, JSON and YAML included) whose key ends in
 *                    password, passwd, passphrase, secret, token, apikey,
 *                    api_key, secretkey, privatekey or credential(s)
 *                    (case, '_', '-' and '.' ignored: DB_PASSWORD,
 *                    client-secret, "apiKey"; a kubeconfig's "token:"
 *                    line); an "Authorization: Bearer X" header's X; the
 *                    password in a URL's user:password@. A value that is a
 *                    JWT is reported as jwt, under an AWS secret key as
 *                    aws-secret-key.
 *   custom           (or the entry's kind) patterns of the config's
 *                    top-level redact list, matched within each line
 *                    (up to '\n'; lines longer than REDACT_HOLD_MAX are
 *                    matched in pieces).
 * Not detected: secrets passed as separate arguments (mysql -pX,
 * --password X), secrets typed with line editing in between, and secrets
 * that merely look like random text.
 *
 * Streaming. One struct redact per session keeps a single queue of the
 * session's events in the order they were fed, each with the caller's
 * time. Events of codes 'o', 'e' and 'i' are scanned, each code as its
 * own stream: a secret may span any number of feeds of its stream. To see
 * a secret split across reads, a stream may hold back undecided bytes
 * (those that may be the start of a secret whose end has not arrived):
 * at most REDACT_HOLD_MAX bytes per stream after every call; a candidate
 * longer than that is decided as a secret (fail safe). Other codes ('r',
 * 'm', 'x', ...) are opaque: their bytes come back unchanged, in order.
 * An event comes out (redact_next) once all its bytes are decided and
 * every event fed before it came out, so the output keeps the global
 * order of the input across streams, and each event keeps its time and
 * code; only its bytes change. A redacted span lies in the chunk where the
 * secret starts; the secret's bytes in later chunks are removed (such a
 * chunk may become empty: callers skip empty chunks).
 *
 * Bounds: held bytes per stream <= REDACT_HOLD_MAX; when more than
 * REDACT_QUEUE_MAX bytes wait in the queue behind a held event, that
 * event's stream is flushed. Each redacted span is the marker text only.
 *
 * Errors are negative errno values; out-parameters are cleared on entry.
 */
#ifndef PODGATE_REDACT_H
#define PODGATE_REDACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/config.h"

#define REDACT_HOLD_MAX (8u * 1024)	/* undecided bytes one stream may hold */
#define REDACT_PEM_MAX (16u * 1024)	/* a PEM block without END is redacted this far */
#define REDACT_QUEUE_MAX (256u * 1024)	/* queued bytes behind a held event */
#define REDACT_IDLE_NS (500000000ull)	/* redact_tick flushes after this much quiet */
#define REDACT_KIND_MAX CFG_REDACT_KIND_MAX	/* longest custom kind */

/* One redacted span in a chunk: the "[REDACTED:kind]" text. */
struct redact_span {
	size_t at;		/* offset in the chunk's bytes */
	size_t len;		/* length of the marker text */
	const char *kind;	/* "jwt", ..., or a custom kind (lives as long as the config) */
};

/* Hex digits of a proof's HMAC-SHA256. */
#define REDACT_PROOF_HEX 64

/*
 * A secret that ended, with what proves what it hid (redact_set_key): the
 * HMAC-SHA256, under the broker's redaction key, of the exact bytes the
 * secret's markers replaced, over every event of its stream.
 */
struct redact_proof {
	char code;			/* its stream: 'o', 'e' or 'i' */
	const char *kind;
	uint64_t len;			/* bytes hidden */
	char hmac[REDACT_PROOF_HEX + 1];	/* lowercase hex */
};

/* An event that is final. Pointers are valid until the next call on the redactor. */
struct redact_chunk {
	char code;
	uint64_t time;			/* as fed */
	const uint8_t *data;		/* redacted bytes (opaque codes: as fed) */
	size_t len;			/* may be 0 */
	const struct redact_span *spans;	/* in order, not overlapping */
	size_t nspans;
	const struct redact_proof *proofs;	/* secrets that ended by this chunk (its
						   data may be empty), with a key set */
	size_t nproofs;
};

struct redact;

/*
 * A redactor with the built-in detectors and c's redact patterns (c may
 * be NULL: built-ins only). c is borrowed and must outlive the redactor
 * (a session holds a reference to its config).
 */
int redact_new(const struct config *c, struct redact **out);

/*
 * Prove each redaction from now on with an HMAC-SHA256 under key (copied,
 * wiped at redact_free): chunks then carry the proofs of the secrets that
 * ended (struct redact_proof). Returns 0, -EINVAL or -ENOMEM.
 */
int redact_set_key(struct redact *r, const void *key, size_t len);

/* Free the redactor, wiping held bytes; NULL is ignored. */
void redact_free(struct redact *r);

/*
 * Queue one event of code at time (any clock; returned as is). Data is
 * copied. Returns 0, -EINVAL (code 0), -EMSGSIZE (len over 16 MiB) or
 * -ENOMEM (the redactor is then unusable except for redact_free).
 */
int redact_feed(struct redact *r, char code, uint64_t time, const void *data, size_t len);

/*
 * The oldest event that is final: returns 1 with *out filled, 0 when the
 * queue is empty or its head is still undecided, or a negative error.
 */
int redact_next(struct redact *r, struct redact_chunk *out);

/*
 * Decide every held byte with what has arrived (as at the end of the
 * session): a candidate secret at the end of a stream is redacted when
 * its prefix is distinctive (ghp_, glpat-, AKIA..., eyJ..., key=), and the
 * same secret continuing in the next feed stays redacted. Afterwards
 * every queued event is final.
 */
int redact_flush(struct redact *r);

/*
 * Called periodically with the time of the caller's clock: flushes when
 * something is held and nothing was fed for REDACT_IDLE_NS. Returns 1
 * when it flushed, else 0.
 */
int redact_tick(struct redact *r, uint64_t now);

/* Undecided bytes held back on stream code ('o', 'e', 'i'). */
size_t redact_held(const struct redact *r, char code);

/* Bytes of the events queued (not yet returned by redact_next). */
size_t redact_queued(const struct redact *r);

/*
 * Redact a complete string (a command, a reason, a watched line) with the
 * same detectors: *out is a new NUL-terminated string the caller frees
 * (and *outlen its length when outlen is not NULL). c may be NULL.
 */
int redact_string(const struct config *c, const void *s, size_t len, char **out,
    size_t *outlen);

/*
 * redact_string, proved: when redaction changed s and key is not NULL,
 * hmac gets the lowercase hex HMAC-SHA256 of s as given under key (the
 * broker's redaction key), as a redacted command in the recording's
 * header and the audit log carries it; otherwise hmac is "". Returns 0
 * or a negative errno (*out NULL, hmac "").
 */
int redact_string_proved(const struct config *c, const void *key, size_t keylen,
    const void *s, size_t len, char **out, size_t *outlen, char hmac[REDACT_PROOF_HEX + 1]);

#endif
