/*
 * Keys on disk: the host key (generated when missing, if asked), the demo
 * client key, fingerprints. Private key text is wiped before it is freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "ssh/keys.h"
#include "base/mkdirs.h"
#include "base/log.h"

/* Create path and its missing parents with mode; existing ones are kept. */
int
keys_mkdirs(const char *path, mode_t mode)
{
	return mkdirs(path, mode);
}

/* Make the directory that holds path (mode 0700 for the ones created). */
static int
keys_mkparent(const char *path)
{
	char *copy = NULL, *slash;
	int r = 0;

	if ((copy = strdup(path)) == NULL)
		return -ENOMEM;
	if ((slash = strrchr(copy, '/')) != NULL && slash != copy) {
		*slash = '\0';
		r = keys_mkdirs(copy, 0700);
	}
	free(copy);
	return r;
}

/* Write all of buf to a new file (O_EXCL, mode), fsync'd. */
static int
keys_write_new(const char *path, const char *buf, size_t len, mode_t mode)
{
	size_t off = 0;
	ssize_t n;
	int fd = -1, r = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	while (off < len) {
		n = write(fd, buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0)
		r = -errno;
out:
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0)
		unlink(path);
	return r;
}

/* Parse 2 * KEYS_HMAC_LEN hex digits (then blanks) into key. */
static int
keys_hmac_parse(const char *text, size_t len, unsigned char key[KEYS_HMAC_LEN])
{
	size_t i;
	int hi, lo;

	for (i = 0; i < KEYS_HMAC_LEN; i++) {
		if (2 * i + 1 >= len)
			return -EINVAL;
		hi = OPENSSL_hexchar2int((unsigned char)text[2 * i]);
		lo = OPENSSL_hexchar2int((unsigned char)text[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		key[i] = (unsigned char)(hi << 4 | lo);
	}
	for (i = 2 * KEYS_HMAC_LEN; i < len; i++) {
		if (text[i] != '\n' && text[i] != '\r' && text[i] != ' ' && text[i] != '\t')
			return -EINVAL;
	}
	return 0;
}

/* Load the redaction key, or make one. */
int
keys_hmac_ensure(const char *path, unsigned char key[KEYS_HMAC_LEN])
{
	char text[2 * KEYS_HMAC_LEN + 8];
	unsigned char fresh[KEYS_HMAC_LEN];
	struct stat st;
	ssize_t n;
	size_t i;
	int fd = -1, r;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		if ((r = keys_mkparent(path)) < 0) {
			log_error_r(r, "cannot make the directory of %s", path);
			return r;
		}
		if (RAND_bytes(fresh, sizeof fresh) != 1) {
			log_error("cannot make the redaction key %s: no random bytes", path);
			return -EIO;
		}
		for (i = 0; i < KEYS_HMAC_LEN; i++)
			snprintf(text + 2 * i, 3, "%02x", fresh[i]);
		text[2 * KEYS_HMAC_LEN] = '\n';
		r = keys_write_new(path, text, 2 * KEYS_HMAC_LEN + 1, 0600);
		OPENSSL_cleanse(text, sizeof text);
		if (r < 0) {
			OPENSSL_cleanse(fresh, sizeof fresh);
			log_error_r(r, "cannot write the redaction key %s", path);
			return r;
		}
		memcpy(key, fresh, KEYS_HMAC_LEN);
		OPENSSL_cleanse(fresh, sizeof fresh);
		log_info("made a redaction key in %s", path);
		return 0;
	}
	if (fd < 0) {
		r = -errno;
		log_error_r(r, "cannot open the redaction key %s", path);
		return r;
	}
	r = 0;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		log_error_r(r, "cannot read the redaction key %s", path);
	} else if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		log_error("the redaction key %s is not a regular file", path);
	} else if ((st.st_mode & 077) != 0) {
		r = -EPERM;
		log_error("the redaction key %s is readable by others (mode %o); fix with: "
		    "chmod 600 %s", path, (unsigned)(st.st_mode & 0777), path);
	} else if ((n = read(fd, text, sizeof text)) < 0) {
		r = -errno;
		log_error_r(r, "cannot read the redaction key %s", path);
	} else if (keys_hmac_parse(text, (size_t)n, key) < 0) {
		r = -EINVAL;
		log_error("the redaction key %s is not 64 hex digits", path);
	}
	OPENSSL_cleanse(text, sizeof text);
	close(fd);
	return r;
}

/*
 * Generate an Ed25519 key into path (mode 0600, never replacing a file);
 * *key is the new private key. libssh writes a temporary file under a
 * 077 umask, which is then linked into place.
 */
static int
keys_generate(const char *path, ssh_key *key)
{
	ssh_key k = NULL;
	char *tmp = NULL;
	mode_t old;
	int r = -EIO, rc;

	*key = NULL;
	if ((r = keys_mkparent(path)) < 0) {
		log_error_r(r, "cannot make the directory of %s", path);
		goto out;
	}
	if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &k) != SSH_OK) {
		log_error("cannot generate an Ed25519 key");
		r = -EIO;
		goto out;
	}
	if (asprintf(&tmp, "%s.new.%ld", path, (long)getpid()) < 0) {
		tmp = NULL;
		r = -ENOMEM;
		goto out;
	}
	unlink(tmp);
	old = umask(077);
	rc = ssh_pki_export_privkey_file(k, NULL, NULL, NULL, tmp);
	umask(old);
	if (rc != SSH_OK || chmod(tmp, 0600) < 0) {
		log_error("cannot write %s", tmp);
		r = -EIO;
		goto out;
	}
	if (link(tmp, path) < 0) {
		r = -errno;
		log_error_r(r, "cannot create %s", path);
		goto out;
	}
	*key = k;
	k = NULL;	/* transferred */
	r = 0;
out:
	if (tmp != NULL)
		unlink(tmp);
	free(tmp);
	ssh_key_free(k);
	return r;
}

/* "TYPE BASE64" of the public half of key. */
static int
keys_publine(const ssh_key key, char **out)
{
	ssh_key pub = NULL;
	char *b64 = NULL;
	int r = -EIO;

	*out = NULL;
	if (ssh_pki_export_privkey_to_pubkey(key, &pub) != SSH_OK ||
	    ssh_pki_export_pubkey_base64(pub, &b64) != SSH_OK)
		goto out;
	if (asprintf(out, "%s %s", ssh_key_type_to_char(ssh_key_type(pub)), b64) < 0) {
		*out = NULL;
		r = -ENOMEM;
		goto out;
	}
	r = 0;
out:
	ssh_string_free_char(b64);
	ssh_key_free(pub);
	return r;
}

/* Load (or first generate, when asked) the host key at path; give its public line. */
int
keys_host_ensure(const char *path, bool generate, char **publine, enum ssh_keytypes_e *type)
{
	struct stat st;
	ssh_key key = NULL;
	int r;

	*publine = NULL;
	*type = SSH_KEYTYPE_UNKNOWN;
	if (stat(path, &st) < 0 && errno == ENOENT) {
		if (!generate) {
			log_error("host key %s does not exist: make it with "
			    "ssh-keygen -t ed25519 -N '' -f %s, or set generate_keys: true",
			    path, path);
			r = -ENOENT;
			goto out;
		}
		if ((r = keys_generate(path, &key)) < 0)
			goto out;
		log_info("generated host key %s", path);
	} else {
		if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key) != SSH_OK) {
			log_error("cannot load host key %s", path);
			r = -EINVAL;
			goto out;
		}
		if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
			log_warn("host key %s is readable by others (mode %03o); fix with: "
			    "chmod 600 %s", path, (unsigned)(st.st_mode & 0777), path);
	}
	if ((r = keys_publine(key, publine)) < 0) {
		log_error("cannot export the public half of %s", path);
		goto out;
	}
	*type = ssh_key_type(key);
out:
	ssh_key_free(key);
	return r;
}

/* SHA256 fingerprint text of a public key. */
int
keys_fingerprint(const ssh_key key, char **out)
{
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp;

	*out = NULL;
	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != 0)
		return -EINVAL;
	fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
	ssh_clean_pubkey_hash(&hash);
	if (fp == NULL)
		return -ENOMEM;
	*out = strdup(fp);
	ssh_string_free_char(fp);
	return *out != NULL ? 0 : -ENOMEM;
}

/* Read the first line of a public key file, if it parses as a key. */
static int
keys_read_pubfile(const char *path, char **line)
{
	ssh_key key = NULL;
	char *b64 = NULL;
	int r = -ENOENT;

	*line = NULL;
	if (access(path, R_OK) < 0)
		return -errno;
	if (ssh_pki_import_pubkey_file(path, &key) != SSH_OK)
		return -EINVAL;
	if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) {
		r = -EINVAL;
		goto out;
	}
	if (asprintf(line, "%s %s", ssh_key_type_to_char(ssh_key_type(key)), b64) < 0) {
		*line = NULL;
		r = -ENOMEM;
		goto out;
	}
	r = 0;
out:
	ssh_string_free_char(b64);
	ssh_key_free(key);
	return r;
}

/* The home directory of the user who ran the broker (through sudo, too). */
static const char *
keys_invoker_home(void)
{
	const char *sudo = getenv("SUDO_USER");
	struct passwd *pw = NULL;

	if (sudo != NULL && *sudo != '\0')
		pw = getpwnam(sudo);
	if (pw == NULL)
		pw = getpwuid(getuid());
	return pw != NULL ? pw->pw_dir : getenv("HOME");
}

/* Give a file made as root under sudo back to the user who ran sudo. */
static void
keys_chown_invoker(const char *path)
{
	const char *uid = getenv("SUDO_UID"), *gid = getenv("SUDO_GID");

	if (geteuid() != 0 || uid == NULL || gid == NULL)
		return;
	if (chown(path, (uid_t)strtoul(uid, NULL, 10), (gid_t)strtoul(gid, NULL, 10)) < 0)
		log_warn("cannot give %s to uid %s: %s", path, uid, strerror(errno));
}

/* Find or make the key the demo user logs in with. */
int
keys_demo_client(const char *dir, char **publine, char **identity)
{
	static const char *const names[] = { "id_ed25519", "id_ecdsa", "id_rsa" };
	const char *home = keys_invoker_home();
	char *pub = NULL, *priv = NULL, *line = NULL;
	ssh_key key = NULL;
	size_t i;
	int r;

	*publine = NULL;
	*identity = NULL;
	for (i = 0; home != NULL && i < sizeof names / sizeof names[0]; i++) {
		free(pub);
		free(priv);
		pub = priv = NULL;
		if (asprintf(&pub, "%s/.ssh/%s.pub", home, names[i]) < 0 ||
		    asprintf(&priv, "%s/.ssh/%s", home, names[i]) < 0) {
			pub = priv = NULL;
			r = -ENOMEM;
			goto out;
		}
		if (keys_read_pubfile(pub, &line) == 0 && access(priv, F_OK) == 0) {
			*publine = line;
			*identity = priv;
			priv = NULL;	/* transferred */
			r = 0;
			goto out;
		}
	}
	free(pub);
	free(priv);
	pub = priv = NULL;
	if (asprintf(&priv, "%s/client_ed25519", dir) < 0 ||
	    asprintf(&pub, "%s/client_ed25519.pub", dir) < 0) {
		pub = priv = NULL;
		r = -ENOMEM;
		goto out;
	}
	if (access(priv, F_OK) < 0) {
		if ((r = keys_generate(priv, &key)) < 0)
			goto out;
		keys_chown_invoker(priv);
		if ((r = keys_publine(key, &line)) < 0)
			goto out;
		unlink(pub);
		{
			char *text = NULL;

			if (asprintf(&text, "%s podgate-demo\n", line) < 0) {
				r = -ENOMEM;
				goto out;
			}
			r = keys_write_new(pub, text, strlen(text), 0644);
			free(text);
		}
		if (r < 0) {
			log_error_r(r, "cannot write %s", pub);
			goto out;
		}
		keys_chown_invoker(pub);
		log_info("generated demo client key %s", priv);
	} else {
		if (ssh_pki_import_privkey_file(priv, NULL, NULL, NULL, &key) != SSH_OK) {
			log_error("cannot load demo client key %s", priv);
			r = -EINVAL;
			goto out;
		}
		if ((r = keys_publine(key, &line)) < 0)
			goto out;
	}
	*publine = line;
	line = NULL;	/* transferred */
	*identity = priv;
	priv = NULL;	/* transferred */
	r = 0;
out:
	ssh_key_free(key);
	free(line);
	free(pub);
	free(priv);
	return r;
}
