/*
 * Keys on disk: the broker's host key (made when missing, if asked), the
 * demo client key, and key fingerprints.
 */
#ifndef PODGATE_KEYS_H
#define PODGATE_KEYS_H

#include <stdbool.h>
#include <sys/types.h>

#include <libssh/libssh.h>

/*
 * Load the host key at path. When the file is missing and generate is
 * true, generate an Ed25519 key and write it mode 0600 (creating its
 * directory mode 0700); when generate is false, fail with -ENOENT. On
 * success *publine is "TYPE BASE64" (caller frees) and *type the key's
 * type. Returns a negative errno on failure, after logging why.
 */
int keys_host_ensure(const char *path, bool generate, char **publine,
    enum ssh_keytypes_e *type);

/*
 * The demo user's public key: the invoking user's ~/.ssh/id_ed25519.pub
 * (or id_ecdsa.pub, id_rsa.pub); without one, DIR/client_ed25519 (made
 * when missing, 0600). *publine is the authorized_keys line; *identity
 * the private key file to give `ssh -i`, or NULL when ssh finds it by
 * itself. Both are the caller's to free.
 */
int keys_demo_client(const char *dir, char **publine, char **identity);

#define KEYS_HMAC_LEN 32

/*
 * The redaction key at path: 64 hex digits (a line), the HMAC-SHA256 key
 * that proves what a redaction hid. When the file is missing, 32 random
 * bytes are written there mode 0600 (its directory made mode 0700). A key
 * readable by group or others gives -EPERM, a malformed one -EINVAL.
 * Returns 0 with key[0..KEYS_HMAC_LEN) filled, or a negative errno after
 * logging why.
 */
int keys_hmac_ensure(const char *path, unsigned char key[KEYS_HMAC_LEN]);

/* "SHA256:..." of a public key into *out (caller frees). */
int keys_fingerprint(const ssh_key key, char **out);

/* mkdir -p: create path and missing parents with mode (existing ones stay). */
int keys_mkdirs(const char *path, mode_t mode);

#endif
