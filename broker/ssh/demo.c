/*
 * The --demo mode: a default configuration built as YAML text (so that it
 * goes through config_load_string like any file), with one user named
 * after whoever runs the broker, allowed to reach the local target (run
 * as nobody when the broker runs as root).
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "ssh/demo.h"
#include "ssh/keys.h"

/* Append s to a YAML document as a double-quoted scalar. */
static void
demo_quote(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\x%02x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

/* The demo user's name: $SUDO_USER, $USER, or "demo" when neither fits. */
static const char *
demo_user(void)
{
	const char *names[] = { getenv("SUDO_USER"), getenv("USER") };
	size_t i, j;

	for (i = 0; i < 2; i++) {
		const char *n = names[i];

		if (n == NULL || *n == '\0' || *n == '-' || *n == '.' || strlen(n) > 32)
			continue;
		for (j = 0; n[j] != '\0'; j++) {
			if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789._-", n[j]) == NULL)
				break;
		}
		if (n[j] == '\0')
			return n;
	}
	return "demo";
}

/* Build the demo configuration. */
int
demo_config(const char *dir, const char *listen, char **yaml, char **identity)
{
	char *publine = NULL, *buf = NULL, *path = NULL;
	size_t len = 0;
	FILE *f = NULL;
	int r;

	*yaml = NULL;
	*identity = NULL;
	if ((r = keys_mkdirs(dir, 0700)) < 0) {
		log_error_r(r, "cannot make %s", dir);
		return r;
	}
	if ((r = keys_demo_client(dir, &publine, identity)) < 0)
		goto out;
	if ((f = open_memstream(&buf, &len)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	fprintf(f, "# podgate demo configuration (podgate-broker --demo)\nlisten: ");
	demo_quote(f, listen != NULL ? listen : "127.0.0.1:2222");
	fprintf(f, "\nhost_key: ");
	if (asprintf(&path, "%s/host_ed25519", dir) < 0)
		goto oom;
	demo_quote(f, path);
	free(path);
	fprintf(f, "\nsigning_key: ");
	if (asprintf(&path, "%s/signing_ed25519", dir) < 0)
		goto oom;
	demo_quote(f, path);
	free(path);
	fprintf(f, "\ngenerate_keys: true\nredaction_key: ");
	if (asprintf(&path, "%s/redaction_key", dir) < 0)
		goto oom;
	demo_quote(f, path);
	free(path);
	fprintf(f, "\nrecordings: ");
	if (asprintf(&path, "%s/recordings", dir) < 0)
		goto oom;
	demo_quote(f, path);
	free(path);
	fprintf(f, "\naudit_log: ");
	if (asprintf(&path, "%s/audit.jsonl", dir) < 0)
		goto oom;
	demo_quote(f, path);
	free(path);
	path = NULL;
	fprintf(f, "\nusers:\n  - name: ");
	demo_quote(f, demo_user());
	fprintf(f, "\n    keys:\n      - ");
	demo_quote(f, publine);
	fprintf(f, "\nrules:\n  - users: [");
	demo_quote(f, demo_user());
	fprintf(f, "]\n    targets: [\"local\"]\ntargets:\n  local:\n    shell: /bin/sh\n");
	/*
	 * The local target never runs as the broker: as root, sessions run as
	 * nobody; a broker that cannot switch users says so when it loads this.
	 */
	if (geteuid() == 0 && getpwnam("nobody") != NULL)
		fprintf(f, "    user: nobody\n");
	else
		fprintf(f, "    allow_broker_user: true\n");
	if (fclose(f) != 0) {
		f = NULL;
		goto oom;
	}
	f = NULL;
	*yaml = buf;
	buf = NULL;	/* transferred */
	r = 0;
	goto out;
oom:
	path = NULL;
	r = -ENOMEM;
out:
	if (f != NULL)
		fclose(f);
	free(buf);
	free(publine);
	if (r < 0) {
		free(*identity);
		*identity = NULL;
	}
	return r;
}

/* podgate-player next to this build's broker, or the bare name. */
static char *
demo_player(const char *argv0)
{
	char *p = NULL, *copy, *slash;

	if (argv0 == NULL || strchr(argv0, '/') == NULL || (copy = strdup(argv0)) == NULL)
		return strdup("podgate-player");
	if ((slash = strrchr(copy, '/')) != NULL)
		*slash = '\0';
	if ((slash = strrchr(copy, '/')) != NULL) {
		*slash = '\0';
		if (asprintf(&p, "%s/player/podgate-player", copy) < 0)
			p = NULL;
		else if (access(p, X_OK) < 0) {
			free(p);
			p = NULL;
		}
	}
	free(copy);
	return p != NULL ? p : strdup("podgate-player");
}

/* Write known_hosts and print how to connect and replay. */
int
demo_announce(const char *dir, const char *host, uint16_t port, const char *hostkey,
    const char *identity, const char *argv0)
{
	char *kh = NULL, *line = NULL, *player = NULL, hostspec[80], idopt[512] = "";
	const char *user = demo_user();
	int r = 0, fd = -1;

	if (strchr(host, ':') != NULL)
		snprintf(hostspec, sizeof hostspec, "[%s]:%u", host, port);
	else if (port != 22)
		snprintf(hostspec, sizeof hostspec, "[%s]:%u", host, port);
	else
		snprintf(hostspec, sizeof hostspec, "%s", host);
	if (asprintf(&kh, "%s/known_hosts", dir) < 0 ||
	    asprintf(&line, "%s %s\n", hostspec, hostkey) < 0) {
		kh = line = NULL;
		r = -ENOMEM;
		goto out;
	}
	fd = open(kh, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, line, strlen(line)) != (ssize_t)strlen(line)) {
		r = -errno;
		log_warn_r(r, "cannot write %s", kh);
	}
	if (identity != NULL)
		snprintf(idopt, sizeof idopt, "-i %s ", identity);
	player = demo_player(argv0);
	printf("podgate demo broker on %s port %u (state in %s/)\n\n", host, port, dir);
	printf("Run a shell on the local target:\n"
	    "  ssh %s-p %u -o UserKnownHostsFile=%s %s@%s local\n", idopt, port, kh, user, host);
	printf("Run one command:\n"
	    "  ssh %s-p %u -o UserKnownHostsFile=%s %s@%s local -- uname -a\n", idopt, port, kh,
	    user, host);
	printf("Pick a target from a menu:\n"
	    "  ssh -t %s-p %u -o UserKnownHostsFile=%s %s@%s\n\n", idopt, port, kh, user, host);
	printf("Replay the latest recording, show it, verify its signatures:\n"
	    "  %s cat \"$(ls -t %s/recordings/*.rec | head -1)\"\n"
	    "  %s info \"$(ls -t %s/recordings/*.rec | head -1)\"\n"
	    "  %s verify --key %s/signing_ed25519 %s/recordings/*.rec\n"
	    "Audit log: %s/audit.jsonl\n\n", player, dir, player, dir, player, dir, dir, dir);
	fflush(stdout);
out:
	if (fd >= 0)
		close(fd);
	free(player);
	free(kh);
	free(line);
	return r;
}
