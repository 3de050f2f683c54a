/*
 * Trusted signing keys and the state and signer a reviewer is shown
 * (see trust.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base.h"
#include "player.h"
#include "trust.h"

#define TRUST_LINE_MAX 4096

/* Add a fingerprint to the list. */
static int
trust_add(struct trust *t, const char *fp)
{
	char (*p)[REC_KEY_FP_LEN];

	if (trust_has(t, fp))
		return 0;
	if ((p = realloc(t->fps, (t->n + 1) * sizeof *p)) == NULL)
		return -ENOMEM;
	t->fps = p;
	snprintf(t->fps[t->n++], REC_KEY_FP_LEN, "%s", fp);
	return 0;
}

/* Whether s is "SHA256:" and 43 characters of unpadded base64. */
static bool
trust_fp_valid(const char *s, size_t len)
{
	size_t i;

	if (len != 7 + 43 || strncmp(s, "SHA256:", 7) != 0)
		return false;
	for (i = 7; i < len; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '/'))
			return false;
	return true;
}

/* Load one PEM block through librec (from an anonymous file) and trust its key. */
static int
trust_add_pem(struct trust *t, const char *pem, size_t len)
{
	struct rec_key *k = NULL;
	char path[64];
	int fd, r;

	if ((fd = memfd_create("podgate-key", MFD_CLOEXEC)) < 0)
		return -errno;
	if ((r = player_write_all(fd, pem, len)) == 0) {
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		if ((r = rec_key_load(path, false, &k)) == 0)
			r = trust_add(t, rec_key_fingerprint(k));
	}
	rec_key_free(k);
	close(fd);
	return r;
}

/* Read one list file; -ENOENT is returned quietly when quiet_missing. */
static int
trust_file(struct trust *t, const char *path, bool quiet_missing)
{
	char line[TRUST_LINE_MAX], *p;
	struct buf pem = { 0 };
	size_t len, lineno = 0, found = 0;
	bool in_pem = false;
	FILE *f;
	int r = 0;

	if ((f = fopen(path, "re")) == NULL) {
		r = -errno;
		if (!(quiet_missing && r == -ENOENT))
			player_warn("trusted keys %s: %s", path, strerror(-r));
		return r;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		len = strlen(line);
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
		    line[len - 1] == ' ' || line[len - 1] == '\t'))
			line[--len] = '\0';
		if (!in_pem && strncmp(line, "-----BEGIN ", 11) == 0)
			in_pem = true;
		if (in_pem) {
			buf_add(&pem, line, len);
			buf_add(&pem, "\n", 1);
			if (pem.oom) {
				r = -ENOMEM;
				goto out;
			}
			if (strncmp(line, "-----END ", 9) == 0) {
				in_pem = false;
				if ((r = trust_add_pem(t, pem.data, pem.len)) < 0) {
					player_warn("trusted keys %s:%zu: %s", path, lineno,
					    r == -EKEYREJECTED ? "not an Ed25519 key in PEM form" :
					    strerror(-r));
					goto out;
				}
				buf_reset(&pem);
				found++;
			}
			continue;
		}
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		if (*p == '\0' || *p == '#')
			continue;
		if (!trust_fp_valid(p, strlen(p))) {
			player_warn("trusted keys %s:%zu: not a PEM public key or a SHA256: "
			    "fingerprint", path, lineno);
			r = -EKEYREJECTED;
			goto out;
		}
		if ((r = trust_add(t, p)) < 0)
			goto out;
		found++;
	}
	if (ferror(f)) {
		r = -EIO;
		player_warn("trusted keys %s: read error", path);
	} else if (in_pem) {
		r = -EKEYREJECTED;
		player_warn("trusted keys %s: a PEM block does not end", path);
	} else if (found == 0) {
		r = -EKEYREJECTED;
		player_warn("trusted keys %s: no key in it", path);
	}
out:
	buf_free(&pem);
	fclose(f);
	return r;
}

/* Load the trusted keys from the files given or from the default list. */
int
trust_load(struct trust *t, char *const *files, size_t n)
{
	const char *env, *base;
	char path[4096], *list = NULL, *tok, *save = NULL;
	size_t i;
	int r = 0;

	memset(t, 0, sizeof *t);
	if (n > 0) {
		for (i = 0; i < n && r == 0; i++)
			r = trust_file(t, files[i], false);
		snprintf(t->source, sizeof t->source, "--key");
		goto out;
	}
	if ((env = getenv("PODGATE_KEYS")) != NULL && env[0] != '\0') {
		if ((list = strdup(env)) == NULL)
			return -ENOMEM;
		for (tok = strtok_r(list, ":", &save); tok != NULL && r == 0;
		    tok = strtok_r(NULL, ":", &save))
			r = trust_file(t, tok, false);
		snprintf(t->source, sizeof t->source, "$PODGATE_KEYS");
		goto out;
	}
	if ((base = getenv("XDG_CONFIG_HOME")) != NULL && base[0] == '/')
		snprintf(path, sizeof path, "%s/podgate/trusted_keys", base);
	else if ((base = getenv("HOME")) != NULL && base[0] == '/')
		snprintf(path, sizeof path, "%s/.config/podgate/trusted_keys", base);
	else
		path[0] = '\0';
	if (path[0] != '\0' && (r = trust_file(t, path, true)) != -ENOENT) {
		snprintf(t->source, sizeof t->source, "%s", path);
		goto out;
	}
	snprintf(path, sizeof path, "/etc/podgate/trusted_keys");
	if ((r = trust_file(t, path, true)) == -ENOENT) {
		r = 0;	/* no list anywhere: signers are shown as unverified */
		goto out;
	}
	snprintf(t->source, sizeof t->source, "%s", path);
out:
	free(list);
	if (r < 0) {
		trust_free(t);
		return r;
	}
	t->configured = t->source[0] != '\0';
	return 0;
}

/* Free the list. */
void
trust_free(struct trust *t)
{
	free(t->fps);
	memset(t, 0, sizeof *t);
}

/* Whether fp is in the list. */
bool
trust_has(const struct trust *t, const char *fp)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->fps[i], fp) == 0)
			return true;
	return false;
}

/* Whether the verdict comes from a hash chain (a seal to take the state from). */
static bool
trust_chained(const struct rec_verify *v, int verify_rc)
{
	return verify_rc == 0 && (v->verdict == REC_SEALED || v->verdict == REC_TRUNCATED ||
	    v->verdict == REC_WRONG_KEY || v->verdict == REC_MODIFIED);
}

/* The session's state. */
const char *
trust_state(const struct rec_verify *v, int verify_rc, const struct trust_events *e)
{
	if (trust_chained(v, verify_rc)) {
		if (v->verdict == REC_MODIFIED)
			return "modified";
		if (v->verdict == REC_TRUNCATED)
			return e->writing ? "open" : "truncated";
	}
	if (e->read_rc == -ENODATA)
		return e->writing ? "open" : "truncated";
	if (e->read_rc < 0)
		return "corrupt";
	return e->exited ? "complete" : "incomplete";
}

/* Whether the exit status read is covered by what verified. */
bool
trust_exit_verified(const struct rec_verify *v, int verify_rc, const struct trust_events *e)
{
	if (!e->exited)
		return false;
	if (!trust_chained(v, verify_rc))
		return true;
	return v->verdict != REC_MODIFIED && e->exit_offset < v->verified_bytes;
}

/* The one-word summary. */
const char *
trust_word(const struct trust *t, const struct rec_verify *v, int verify_rc)
{
	if (verify_rc < 0)
		return "unknown";
	switch (v->verdict) {
	case REC_SEALED:
	case REC_TRUNCATED:
	case REC_WRONG_KEY:
		if (v->key_fp[0] == '\0')
			return "unsigned";	/* a chain without a signer */
		if (!t->configured)
			return "unverified-signer";
		return trust_has(t, v->key_fp) ? "verified" : "unknown-key";
	case REC_UNSIGNED:
		return "unsigned";
	case REC_MODIFIED:
		return "MODIFIED";
	case REC_NOT_RECORDING:
		return "not-a-recording";
	}
	return "unknown";
}

/* The line for humans. */
void
trust_describe(const struct trust *t, const struct rec_verify *v, int verify_rc, char *buf,
    size_t len)
{
	const char *w = trust_word(t, v, verify_rc);
	const char *name = rec_verdict_name(v->verdict);
	size_t nlen = strlen(name);
	/*
	 * The reason of a sealed recording says so itself, and others may
	 * begin with the verdict's name ("truncated at byte ..."): say it once.
	 */
	bool said = v->verdict == REC_SEALED || (strncmp(v->reason, name, nlen) == 0 &&
	    (v->reason[nlen] == ' ' || v->reason[nlen] == ':' || v->reason[nlen] == '\0'));
	const char *pre = said ? "" : name;
	const char *sep = said ? "" : ": ";

	if (verify_rc < 0)
		snprintf(buf, len, "unknown (%s)", strerror(-verify_rc));
	else if (strcmp(w, "verified") == 0)
		snprintf(buf, len, "verified: %s%s%s", pre, sep, v->reason);
	else if (strcmp(w, "unknown-key") == 0)
		snprintf(buf, len, "signed by an unknown key %s (not in the trusted keys of %s); "
		    "%s%s%s", v->key_fp, t->source, pre, sep, v->reason);
	else if (strcmp(w, "unverified-signer") == 0)
		snprintf(buf, len, "unverified signer %s (no trusted keys: give --key, "
		    "$PODGATE_KEYS or ~/.config/podgate/trusted_keys); %s%s%s", v->key_fp,
		    pre, sep, v->reason);
	else
		snprintf(buf, len, "%s%s%s", pre, sep, v->reason);
}
