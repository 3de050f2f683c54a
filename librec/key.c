/*
 * Signing keys for recordings: Ed25519 through OpenSSL, stored as PEM
 * (PKCS#8 private keys, SubjectPublicKeyInfo public keys).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "rec.h"
#include "rec-int.h"

/* Wrap an EVP_PKEY after checking it is Ed25519; takes it over. */
static int
key_wrap(EVP_PKEY *pk, bool private, struct rec_key **out)
{
	struct rec_key *k;
	size_t len = sizeof k->pub;

	if (EVP_PKEY_get_id(pk) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pk);
		return -EKEYREJECTED;
	}
	if ((k = calloc(1, sizeof *k)) == NULL) {
		EVP_PKEY_free(pk);
		return -ENOMEM;
	}
	k->pkey = pk;
	k->private = private;
	if (EVP_PKEY_get_raw_public_key(pk, k->pub, &len) != 1 || len != sizeof k->pub) {
		rec_key_free(k);
		return -EKEYREJECTED;
	}
	rec_key_fp_of(k->pub, k->fp);
	*out = k;
	return 0;
}

/* "SHA256:" and the unpadded base64 of the SHA-256 of a raw public key. */
void
rec_key_fp_of(const uint8_t pub[32], char fp[REC_KEY_FP_LEN])
{
	uint8_t digest[32];
	unsigned int dlen = 0;
	char b64[48];
	int n;

	EVP_Digest(pub, 32, digest, &dlen, EVP_sha256(), NULL);
	n = EVP_EncodeBlock((unsigned char *)b64, digest, (int)dlen);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	b64[n] = '\0';
	snprintf(fp, REC_KEY_FP_LEN, "SHA256:%s", b64);
}

/* Load a PEM key; a private key gives the public half too. */
int
rec_key_load(const char *path, bool private, struct rec_key **out)
{
	EVP_PKEY *pk = NULL;
	struct stat st;
	FILE *f;

	*out = NULL;
	if ((f = fopen(path, "re")) == NULL)
		return -errno;
	if (private && fstat(fileno(f), &st) == 0 && (st.st_mode & 0077) != 0) {
		fclose(f);
		return -EPERM;	/* a private key others can read is not private */
	}
	if (private)
		pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	else {
		pk = PEM_read_PUBKEY(f, NULL, NULL, NULL);
		if (pk == NULL) {
			/* A private key file also names its public key. */
			rewind(f);
			pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		}
	}
	fclose(f);
	if (pk == NULL)
		return -EKEYREJECTED;
	return key_wrap(pk, private, out);
}

/* Make a directory and its parents, mode 0700 for the ones created. */
static int
mkdirs(const char *dir)
{
	char *copy, *parent;
	int r = 0;

	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return 0;
	if (errno != ENOENT)
		return -errno;
	if ((copy = strdup(dir)) == NULL)
		return -ENOMEM;
	parent = dirname(copy);
	if (strcmp(parent, dir) != 0 && (r = mkdirs(parent)) == 0 && mkdir(dir, 0700) < 0 &&
	    errno != EEXIST)
		r = -errno;
	free(copy);
	return r;
}

/* Generate a new Ed25519 key and store it at path (0600, never over a file). */
int
rec_key_generate(const char *path, struct rec_key **out)
{
	EVP_PKEY *pk = NULL;
	char *copy = NULL;
	FILE *f = NULL;
	int fd = -1, r;

	*out = NULL;
	if ((copy = strdup(path)) == NULL)
		return -ENOMEM;
	r = mkdirs(dirname(copy));
	free(copy);
	if (r < 0)
		return r;
	if ((pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL)
		return -EIO;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	if ((f = fdopen(fd, "w")) == NULL) {
		r = -errno;
		close(fd);
		goto fail;
	}
	if (PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) != 1) {
		fclose(f);
		unlink(path);
		r = -EIO;
		goto fail;
	}
	if (fclose(f) != 0) {
		r = -errno;
		unlink(path);
		goto fail;
	}
	return key_wrap(pk, true, out);
fail:
	EVP_PKEY_free(pk);
	return r;
}

/* Load the private key at path, generating it first when it does not exist. */
int
rec_key_load_or_generate(const char *path, struct rec_key **out)
{
	int r = rec_key_load(path, true, out);

	if (r == -ENOENT)
		r = rec_key_generate(path, out);
	if (r == -EEXIST)	/* made by someone else meanwhile */
		r = rec_key_load(path, true, out);
	return r;
}

/* The key's fingerprint. */
const char *
rec_key_fingerprint(const struct rec_key *k)
{
	return k->fp;
}

/* Write the public half as PEM. */
int
rec_key_write_public(const struct rec_key *k, FILE *out)
{
	return PEM_write_PUBKEY(out, k->pkey) == 1 ? 0 : -EIO;
}

/* Free a key; OpenSSL wipes the private material. */
void
rec_key_free(struct rec_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

/* Sign msg with k into sig (64 bytes). */
int
rec_key_sign(const struct rec_key *k, const uint8_t *msg, size_t len, uint8_t sig[64])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t siglen = 64;
	int r = -EIO;

	if (ctx == NULL)
		return -ENOMEM;
	if (k->private && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	    EVP_DigestSign(ctx, sig, &siglen, msg, len) == 1 && siglen == 64)
		r = 0;
	EVP_MD_CTX_free(ctx);
	return r;
}

/* Check a signature of msg against a raw Ed25519 public key. */
bool
rec_sig_ok(const uint8_t pub[32], const uint8_t *msg, size_t len, const uint8_t sig[64])
{
	EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = false;

	if (pk != NULL && ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1)
		ok = EVP_DigestVerify(ctx, sig, 64, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return ok;
}
