/*
 * Trusted signing keys, and what a reviewer is told about a recording's
 * state and signer.
 *
 * A recording names its own signer in its header, so a signature proves
 * nothing until the signer is one the reviewer trusts. The trusted keys
 * come from --key FILE (repeatable) or, without it, from the first list
 * found of $PODGATE_KEYS (files separated by ':'),
 * $XDG_CONFIG_HOME/podgate/trusted_keys (~/.config/...) and
 * /etc/podgate/trusted_keys. A list file holds PEM public keys (as
 * `podgate-broker --print-signing-key` writes them) and lines
 * "SHA256:..." naming a key by its fingerprint; blank lines and lines
 * starting with '#' are skipped.
 *
 * The state of a session is taken from the verified seal where the
 * recording has a hash chain: unsigned events after the last verified
 * checkpoint (an exit status, a missing seal) do not make it complete.
 */
#ifndef PODGATE_TRUST_H
#define PODGATE_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rec.h"

struct trust {
	char (*fps)[REC_KEY_FP_LEN];	/* trusted fingerprints */
	size_t n;
	bool configured;		/* a list was given or found */
	char source[256];		/* where it came from, for messages */
};

/*
 * Load the trusted keys from the files given (n > 0) or from the default
 * list. A file given or named by $PODGATE_KEYS that cannot be read or
 * holds something that is not a key is an error (printed, -errno or
 * -EKEYREJECTED); a default file that does not exist is skipped. t is
 * cleared on entry and empty on failure.
 */
int trust_load(struct trust *t, char *const *files, size_t n);
void trust_free(struct trust *t);

/* Whether the fingerprint "SHA256:..." is trusted. */
bool trust_has(const struct trust *t, const char *fp);

/* What reading a recording's events found, for trust_state. */
struct trust_events {
	int read_rc;		/* how reading ended: 0, -ENODATA, -EBADMSG, ... */
	bool exited;		/* an exit event was read */
	uint64_t exit_offset;	/* its offset */
	bool writing;		/* a writer still holds it (rec_being_written) */
};

/*
 * The state of the session: "complete" (an exit status), "incomplete"
 * (none), "truncated", "corrupt", or "modified". With a verdict
 * (verify_rc 0) from a recording with a hash chain, a missing seal makes
 * it "truncated" whatever the events say (or "open" while a writer still
 * holds the file), and a modification "modified".
 */
const char *trust_state(const struct rec_verify *v, int verify_rc, const struct trust_events *e);

/*
 * Whether the exit status read can be believed: it comes before the end
 * of what verified, or the recording has no chain to verify it by.
 */
bool trust_exit_verified(const struct rec_verify *v, int verify_rc,
    const struct trust_events *e);

/*
 * The one-word summary of integrity and signer: "verified" (sealed, or
 * intact so far, and signed by a trusted key), "unknown-key" (signed by a
 * key not in the list), "unverified-signer" (no list configured),
 * "unsigned", "MODIFIED", "not-a-recording", or "unknown" (the check
 * failed).
 */
const char *trust_word(const struct trust *t, const struct rec_verify *v, int verify_rc);

/*
 * A line for humans: "verified: sealed and intact ..., signed by SHA256:...",
 * "signed by an unknown key SHA256:...", "unverified signer SHA256:... (no
 * trusted keys: --key, $PODGATE_KEYS, ...)", the verdict's reason, ...
 */
void trust_describe(const struct trust *t, const struct rec_verify *v, int verify_rc,
    char *buf, size_t len);

#endif
