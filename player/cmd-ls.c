/*
 * podgate-player ls: one line per recorded session found under the paths
 * given, filtered by user, target and start time.
 *
 * Directories are read recursively. Files in them that cannot be read or
 * are not recordings are reported on stderr and skipped. The exit status
 * is 2 when a path named on the command line cannot be read or is not a
 * recording (or on a usage error), 0 otherwise: damaged recordings are
 * listed with their state, and an empty directory lists nothing.
 */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "player.h"
#include "trust.h"
#include "walk.h"
#include "when.h"

#define LS_USAGE "ls PATH... [--user U] [--target GLOB] [--since WHEN] [--until WHEN] " \
    "[--key PUB]... [--json]"

/* One session to list. */
struct ls_entry {
	char *path;
	char *session, *user, *target, *command;
	uint64_t start_ns, duration_ns;
	bool exited;		/* an exit status inside what verified */
	int exit_status;
	char exit_signal[32];
	const char *state;
	const char *trust;	/* trust_word */
	char key_fp[REC_KEY_FP_LEN];	/* the signer, or "" */
};

struct ls_state {
	const char *user, *target;
	uint64_t since, until;
	bool has_since, has_until;
	bool json;
	bool error;
	struct trust trust;
	struct ls_entry *ents;
	size_t n, cap;
};

/* A heap copy of a string that may be NULL. */
static char *
ls_dup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* Free one entry's strings. */
static void
ls_entry_clear(struct ls_entry *e)
{
	free(e->path);
	free(e->session);
	free(e->user);
	free(e->target);
	free(e->command);
}

/* Read one recording and keep it when it passes the filters. */
static int
ls_file(const char *path, bool named, void *arg)
{
	struct ls_state *s = arg;
	struct player_file f;
	struct rec_event ev;
	struct ls_entry e, *p;
	const struct rec_header *h;
	struct rec_verify v;
	struct trust_events te;
	int rc, vrc;

	if (player_open(&f, path) < 0) {
		if (named)
			s->error = true;
		return 0;
	}
	h = &f.header;
	if ((s->user != NULL && (h->user == NULL || strcmp(h->user, s->user) != 0)) ||
	    (s->target != NULL && (h->target == NULL || fnmatch(s->target, h->target, 0) != 0)) ||
	    (s->has_since && h->start_ns < s->since) || (s->has_until && h->start_ns > s->until)) {
		player_close(&f);
		return 0;
	}
	memset(&e, 0, sizeof e);
	memset(&te, 0, sizeof te);
	while ((rc = rec_reader_next(f.reader, &ev)) == 1) {
		e.duration_ns = ev.time_ns;
		if (ev.code == REC_EXIT) {
			te.exited = true;
			te.exit_offset = ev.offset;
			e.exit_status = ev.exit_status;
			memcpy(e.exit_signal, ev.exit_signal, sizeof e.exit_signal);
		}
	}
	te.read_rc = rc;
	/* The state comes from the verified seal, not from unsigned events. */
	vrc = player_verify_path(path, &v);
	e.state = trust_state(&v, vrc, &te);
	e.exited = trust_exit_verified(&v, vrc, &te);
	e.trust = trust_word(&s->trust, &v, vrc);
	if (vrc == 0)
		memcpy(e.key_fp, v.key_fp, sizeof e.key_fp);
	e.start_ns = h->start_ns;
	e.path = strdup(path);
	e.session = ls_dup(h->session_id);
	e.user = ls_dup(h->user);
	e.target = ls_dup(h->target);
	e.command = ls_dup(h->command);
	player_close(&f);
	if (e.path == NULL || (h->session_id != NULL && e.session == NULL))
		goto nomem;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;

		if ((p = realloc(s->ents, cap * sizeof *p)) == NULL)
			goto nomem;
		s->ents = p;
		s->cap = cap;
	}
	s->ents[s->n++] = e;
	return 0;
nomem:
	ls_entry_clear(&e);
	return -ENOMEM;
}

/* Order sessions by start time, then path. */
static int
ls_cmp(const void *a, const void *b)
{
	const struct ls_entry *x = a, *y = b;

	if (x->start_ns != y->start_ns)
		return x->start_ns < y->start_ns ? -1 : 1;
	return strcmp(x->path, y->path);
}

/* Write a JSON string, or null. */
static void
ls_json_str(const char *s)
{
	if (s == NULL)
		fputs("null", stdout);
	else
		rec_json_string(stdout, s, strlen(s));
}

/* Print one session. */
static void
ls_print(const struct ls_state *s, const struct ls_entry *e)
{
	char start[32], dur[32], ex[48], *user, *target, *command, *path;

	when_format_utc(e->start_ns, start, sizeof start);
	if (s->json) {
		fputs("{\"file\":", stdout);
		ls_json_str(e->path);
		fputs(",\"session\":", stdout);
		ls_json_str(e->session);
		printf(",\"start\":\"%s\",\"start_ns\":%llu,\"duration_ns\":%llu,\"user\":", start,
		    (unsigned long long)e->start_ns, (unsigned long long)e->duration_ns);
		ls_json_str(e->user);
		fputs(",\"target\":", stdout);
		ls_json_str(e->target);
		fputs(",\"command\":", stdout);
		ls_json_str(e->command);
		fputs(",\"exit\":", stdout);
		if (!e->exited)
			fputs("null", stdout);
		else if (e->exit_signal[0] != '\0')
			printf("{\"signal\":\"%s\"}", e->exit_signal);
		else
			printf("{\"status\":%d}", e->exit_status);
		printf(",\"state\":\"%s\",\"trust\":\"%s\",\"signer\":", e->state, e->trust);
		ls_json_str(e->key_fp[0] != '\0' ? e->key_fp : NULL);
		fputs("}\n", stdout);
		return;
	}
	when_format_offset(e->duration_ns, dur, sizeof dur);
	if (!e->exited)
		snprintf(ex, sizeof ex, "-");
	else if (e->exit_signal[0] != '\0')
		snprintf(ex, sizeof ex, "SIG%s", e->exit_signal);
	else
		snprintf(ex, sizeof ex, "%d", e->exit_status);
	/* Recorded strings are the recorded client's: never raw on the terminal. */
	user = player_escape_str(e->user, "-");
	target = player_escape_str(e->target, "-");
	command = player_escape_str(e->command, "(shell)");
	path = player_escape_str(e->path, "-");
	if (user != NULL && target != NULL && command != NULL && path != NULL)
		printf("%s  %s  %-10s  %-20s  %-30s  %-7s  %-10s  %-17s  %s\n", start, dur, user,
		    target, command, ex, e->state, e->trust, path);
	free(user);
	free(target);
	free(command);
	free(path);
}

/* List sessions. */
int
cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "user", required_argument, NULL, 'u' },
		{ "target", required_argument, NULL, 't' },
		{ "since", required_argument, NULL, 'S' },
		{ "until", required_argument, NULL, 'U' },
		{ "json", no_argument, NULL, 'j' },
		{ "key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ls_state s;
	uint64_t now = rec_now_utc_ns();
	char **keys;
	size_t i, nkeys = 0;
	int c, r, st = 0;

	memset(&s, 0, sizeof s);
	if ((keys = calloc((size_t)argc, sizeof *keys)) == NULL)
		return EXIT_USAGE;
	optind = 1;
	while ((c = getopt_long(argc, argv, "u:t:S:U:jk:h", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			s.user = optarg;
			break;
		case 't':
			s.target = optarg;
			break;
		case 'S':
		case 'U':
			if (when_parse(optarg, now, c == 'S' ? &s.since : &s.until) < 0) {
				player_warn("bad time '%s' (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z], "
				    "or 30m, 2h, 3d ago)", optarg);
				free(keys);
				return EXIT_USAGE;
			}
			if (c == 'S')
				s.has_since = true;
			else
				s.has_until = true;
			break;
		case 'j':
			s.json = true;
			break;
		case 'k':
			keys[nkeys++] = optarg;
			break;
		case 'h':
			printf("usage: podgate-player " LS_USAGE "\n\n"
			    "One line per recorded session under the paths (directories recursively):\n"
			    "start, duration, user, target, command, exit status, state, signer, file.\n"
			    "The state and exit status are those the verified seal covers.\n\n"
			    "  --user U        sessions of user U\n"
			    "  --target GLOB   sessions whose target matches GLOB\n"
			    "  --since WHEN    started at or after WHEN (2025-11-28, 2025-11-28T16:00Z, 2h)\n"
			    "  --until WHEN    started at or before WHEN\n"
			    "  --key PUB       trust this signing key (repeatable); default: $PODGATE_KEYS,\n"
			    "                  ~/.config/podgate/trusted_keys, /etc/podgate/trusted_keys\n"
			    "  --json          one JSON object per session\n");
			free(keys);
			return 0;
		default:
			free(keys);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		player_warn("usage: podgate-player " LS_USAGE);
		free(keys);
		return EXIT_USAGE;
	}
	r = trust_load(&s.trust, keys, nkeys);
	free(keys);
	if (r < 0)
		return EXIT_USAGE;
	r = walk_paths(argv + optind, argc - optind, ls_file, &s);
	if (r == -ENOMEM) {
		player_warn("out of memory");
		st = EXIT_USAGE;
	} else {
		if (s.n > 0)
			qsort(s.ents, s.n, sizeof *s.ents, ls_cmp);
		for (i = 0; i < s.n; i++)
			ls_print(&s, &s.ents[i]);
		if (r < 0 || s.error)
			st = EXIT_USAGE;
	}
	for (i = 0; i < s.n; i++)
		ls_entry_clear(&s.ents[i]);
	free(s.ents);
	trust_free(&s.trust);
	if (fflush(stdout) != 0) {
		player_warn("write: %s", strerror(errno));
		st = EXIT_USAGE;
	}
	return st;
}
