/*
 * podgate-player verify: check recordings offline with a public key, and
 * podgate-player key: show the public half of a signing key.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "player.h"
#include "summary.h"
#include "walk.h"

struct verify_state {
	const struct rec_key *key;
	bool json, verbose;
	int status;		/* the worst so far */
	uint64_t skipped;	/* files in directories that are not recordings */
};

/*
 * Verify one file and print its line; returns its exit status, or -1 for
 * a file found in a directory that is not a recording at all (keys, the
 * audit log), skipped without a word as ls and grep skip it.
 */
static int
verify_one(const char *path, bool named, const struct verify_state *s)
{
	const struct rec_key *key = s->key;
	const char *name, *reason;
	bool json = s->json;
	struct rec_verify v;
	struct summary j;
	size_t nlen;
	int fd, r;

	if ((fd = player_open_fd(path)) < 0) {
		r = fd;
		goto fail;
	}
	r = rec_verify_fd(fd, key, &v);
	close(fd);
	if (r < 0)
		goto fail;
	if (!named && v.verdict == REC_NOT_RECORDING && v.version == 0) {
		if (s->verbose)
			player_warn("%s: not a podgate recording", path);
		return -1;
	}
	/* The reason may begin with the verdict's own name: say it once. */
	name = rec_verdict_name(v.verdict);
	nlen = strlen(name);
	reason = v.reason;
	if (strncmp(reason, name, nlen) == 0 && (reason[nlen] == ':' || reason[nlen] == ' ' ||
	    reason[nlen] == '\0'))
		name = NULL;
	if (json) {
		summary_start(&j, path);
		summary_verdict(&j, &v, NULL);
		summary_uint(&j, "checkpoints", v.checkpoints);
		summary_uint(&j, "verified_bytes", v.verified_bytes);
		summary_uint(&j, "verified_time_ns", v.verified_time_ns);
		summary_uint(&j, "verified_events", v.verified_events);
		summary_uint(&j, "file_bytes", v.file_size);
		summary_uint(&j, "events", v.events);
		if (v.verdict == REC_MODIFIED)
			summary_uint(&j, "bad_offset", v.bad_offset);
		summary_print(&j);
	} else if (v.verdict == REC_SEALED)
		printf("%s: %s (format version %u)\n", path, v.reason, v.version);
	else if (v.version != 0)
		printf("%s: %s%s%s (format version %u)\n", path, name != NULL ? name : "",
		    name != NULL ? ": " : "", reason, v.version);
	else
		printf("%s: %s%s%s\n", path, name != NULL ? name : "", name != NULL ? ": " : "",
		    reason);
	return (int)v.verdict;
fail:
	if (json) {
		summary_start(&j, path);
		summary_str(&j, "state", "unreadable");
		summary_str(&j, "reason", strerror(-r));
		summary_print(&j);
	}
	player_warn("%s: %s", path, strerror(-r));
	return EXIT_USAGE;
}

/* Load a public key given with --key, saying why when it cannot be. */
static int
load_key_arg(const char *path, bool private, struct rec_key **key)
{
	int r = rec_key_load(path, private, key);

	if (r == -EKEYREJECTED)
		player_warn("%s: not an Ed25519 key in PEM form", path);
	else if (r == -EPERM)
		player_warn("%s: private key readable by others; run: chmod 600 %s", path, path);
	else if (r < 0)
		player_warn("%s: %s", path, strerror(-r));
	return r;
}

/* A file named or found under a directory: verify it, keep the worst status. */
static int
verify_file(const char *path, bool named, void *arg)
{
	struct verify_state *s = arg;
	int one = verify_one(path, named, s);

	if (one < 0)
		s->skipped++;
	else if (one > s->status)
		s->status = one;
	return 0;
}

/* Check each file (directories and s3:// prefixes recursively); exit with the worst verdict. */
int
cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char usage[] = "usage: podgate-player verify [--key PUB] [--json] [-v] PATH...";
	struct verify_state s;
	struct rec_key *key = NULL;
	const char *keypath = NULL;
	int c, r;

	memset(&s, 0, sizeof s);
	optind = 1;
	while ((c = getopt_long(argc, argv, "k:jvh", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			keypath = optarg;
			break;
		case 'j':
			s.json = true;
			break;
		case 'v':
			s.verbose = true;
			break;
		case 'h':
			printf("%s\n\n"
			    "Check recordings offline: every checkpoint, the seal and the signatures.\n"
			    "A PATH may be a file, a directory (every recording under it; files that\n"
			    "are not recordings are skipped) or s3://BUCKET/KEY or s3://BUCKET/PREFIX/.\n\n"
			    "  --key PUB   the signer's public key (PEM); without it, the key the\n"
			    "              header names is used and a valid signature reads as sealed\n"
			    "  --json      one JSON object per recording\n"
			    "  -v          say which files were skipped as not recordings\n\n"
			    "exit status: 0 sealed and intact, 1 truncated or unsealed, "
			    "2 not a recording or unreadable,\n3 unsigned, 4 wrong key, 5 modified "
			    "(the worst over all files)\n", usage);
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		player_warn("%s", usage);
		return EXIT_USAGE;
	}
	if (keypath != NULL && load_key_arg(keypath, false, &key) < 0)
		return EXIT_USAGE;
	s.key = key;
	r = walk_paths(argv + optind, argc - optind, verify_file, &s);
	rec_key_free(key);
	if (r == -ENOMEM)
		player_warn("out of memory");
	/* A directory that could not be read is as bad as an unreadable file. */
	if (r < 0 && s.status < EXIT_USAGE)
		s.status = EXIT_USAGE;
	return s.status;
}

/* The per-user signing key: $XDG_CONFIG_HOME or ~/.config, podgate/signing_ed25519. */
int
player_user_key_path(char *buf, size_t len)
{
	const char *base = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	int n;

	if (base != NULL && base[0] == '/')
		n = snprintf(buf, len, "%s/podgate/signing_ed25519", base);
	else if (home != NULL && home[0] == '/')
		n = snprintf(buf, len, "%s/.config/podgate/signing_ed25519", home);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Load the signing key named by --key, or the per-user one (made when missing). */
int
player_signing_key(const char *path, struct rec_key **key)
{
	char def[4096];
	int r;

	*key = NULL;
	if (path != NULL)
		return load_key_arg(path, true, key);
	if ((r = player_user_key_path(def, sizeof def)) < 0) {
		player_warn("no HOME to keep a signing key in; give one with --key");
		return r;
	}
	if ((r = rec_key_load_or_generate(def, key)) < 0)
		return load_key_arg(def, true, key);
	return 0;
}

/* Print the public half of the signing key (--key, or the per-user one). */
int
cmd_key(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rec_key *key = NULL;
	const char *path = NULL;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			path = optarg;
			break;
		case 'h':
			printf("usage: podgate-player key [--key PRIVATE]\n\n"
			    "Print the public half of a signing key (PEM) on stdout and its\n"
			    "fingerprint on stderr: the key to give reviewers for verify --key.\n\n"
			    "  --key PRIVATE  the private key (PEM, mode 0600); default: the per-user\n"
			    "                 key $XDG_CONFIG_HOME/podgate/signing_ed25519 (else\n"
			    "                 ~/.config/podgate/signing_ed25519), made when missing\n");
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		player_warn("usage: podgate-player key [--key PRIVATE]");
		return EXIT_USAGE;
	}
	if (player_signing_key(path, &key) < 0)
		return EXIT_USAGE;
	fprintf(stderr, "%s\n", rec_key_fingerprint(key));
	c = rec_key_write_public(key, stdout);
	rec_key_free(key);
	return c < 0 ? EXIT_USAGE : 0;
}
