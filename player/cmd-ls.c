/*
 * podgate-player ls: one line per recorded session found under the paths
 * given, filtered by user, target and start time.
 *
 * Directories are read recursively. Files in them that cannot be read are
 * reported on stderr and skipped; files that are not recordings (keys, the
 * audit log) are skipped quietly (named on stderr with -v). The exit status
 * is 2 when a path named on the command line cannot be read or is not a
 * recording (or on a usage error), 0 otherwise: damaged recordings are
 * listed with their state, and an empty directory lists nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>

#include "player.h"
#include "summary.h"
#include "trust.h"
#include "walk.h"
#include "when.h"

#define LS_USAGE "ls PATH... [--user U] [--target GLOB] [--command GLOB] [--client GLOB] " \
    "[--key-fp FP] [--state S] [--exit N] [--since WHEN] [--until WHEN] [--min-duration T] " \
    "[--max-duration T] [--sort FIELD] [--limit N] [--header] [--verify] [--key PUB]... [-v] " \
    "[--json]"

/* One session to list. */
struct ls_entry {
	char *path;
	char *session, *user, *target, *command;
	bool admin;		/* a broker admin command (target kind "podgate"), not a shell */
	uint64_t start_ns, duration_ns;
	bool exited;		/* an exit status inside what verified */
	int exit_status;
	char exit_signal[32];
	const char *state;
	const char *trust;	/* trust_word */
	char key_fp[REC_KEY_FP_LEN];	/* the signer, or "" */
};

/* ls --sort: the orders sessions can be listed in. */
enum ls_sort { LS_SORT_START, LS_SORT_DURATION, LS_SORT_USER, LS_SORT_TARGET };

struct ls_state {
	const char *user, *target;
	const char *command, *client, *key_fp, *state, *exit;
	uint64_t min_dur, max_dur;
	bool has_min_dur, has_max_dur;
	enum ls_sort sort;
	size_t limit;		/* 0: all */
	bool header;
	uint64_t since, until;
	bool has_since, has_until;
	bool json;
	bool error;
	bool verify;		/* --verify: check every byte, and the signer */
	bool verbose;		/* -v: name the files skipped as not recordings */
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

/* How much of a recording's end is searched for its seal. */
#define LS_TAIL (64u * 1024)

/* What the header and the seal at the end say, without reading the rest. */
struct ls_end {
	bool chained;		/* the header names a hash chain: a seal is expected */
	bool sealed;
	uint64_t duration_ns;
	bool exited;
	int exit_status;
	char exit_signal[32];
};

/* The value of key in a msgpack map, or NULL. */
static const msgpack_object *
ls_map_get(const msgpack_object *m, const char *key)
{
	size_t n = strlen(key);
	uint32_t i;

	if (m->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
		    memcmp(k->via.str.ptr, key, n) == 0)
			return &m->via.map.ptr[i].val;
	}
	return NULL;
}

/* Whether the header names a hash chain. */
static bool
ls_header_chained(const struct player_file *f)
{
	msgpack_unpacked u;
	const uint8_t *raw;
	size_t len, used = 0;
	bool chained = false;

	raw = rec_reader_header_raw(f->reader, &len);
	msgpack_unpacked_init(&u);
	if (raw != NULL && msgpack_unpack_next(&u, (const char *)raw, len, &used) ==
	    MSGPACK_UNPACK_SUCCESS)
		chained = ls_map_get(&u.data, "chain") != NULL;
	msgpack_unpacked_destroy(&u);
	return chained;
}

/* Read the totals of a seal event (docs/format.md): duration and exit. */
static bool
ls_seal_totals(const uint8_t *raw, size_t len, struct ls_end *end)
{
	const msgpack_object *m, *d, *x, *v;
	msgpack_unpacked u;
	size_t used = 0;
	bool ok = false;

	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, (const char *)raw, len, &used) != MSGPACK_UNPACK_SUCCESS ||
	    u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size != 3)
		goto out;
	m = &u.data.via.array.ptr[2];
	if ((d = ls_map_get(m, "duration")) == NULL || d->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		goto out;
	end->duration_ns = d->via.u64;
	x = ls_map_get(m, "exit");
	if (x != NULL && x->type == MSGPACK_OBJECT_MAP) {
		if ((v = ls_map_get(x, "signal")) != NULL && v->type == MSGPACK_OBJECT_STR &&
		    v->via.str.size > 0 && v->via.str.size < sizeof end->exit_signal) {
			memcpy(end->exit_signal, v->via.str.ptr, v->via.str.size);
			end->exit_signal[v->via.str.size] = '\0';
			end->exited = true;
		} else if ((v = ls_map_get(x, "status")) != NULL &&
		    ((v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT32_MAX) ||
		    (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && v->via.i64 >= INT32_MIN))) {
			end->exit_status = (int)v->via.i64;
			end->exited = true;
		}
	}
	ok = true;
out:
	msgpack_unpacked_destroy(&u);
	return ok;
}

/*
 * Find the seal at the end of the file: the last event, [0, "s", {...}]
 * (in version 2 followed only by the trailer), which a reader started on
 * it reads to a clean end of file. Reads at
 * most LS_TAIL bytes, on a descriptor of its own.
 */
static void
ls_find_seal(const char *path, uint64_t from, struct ls_end *end)
{
	static const uint8_t lead[] = { 0x93, 0x00, 0xa1, 's' };
	struct rec_reader *r = NULL;
	struct rec_event ev;
	struct stat st;
	uint8_t *buf = NULL;
	const uint8_t *raw;
	uint64_t start;
	size_t n, i, len;
	ssize_t got;
	int fd;

	if ((fd = player_open_fd(path)) < 0)	/* a local copy for s3:// names */
		return;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < from + sizeof lead)
		goto out;
	n = (uint64_t)st.st_size - from < LS_TAIL ? (size_t)((uint64_t)st.st_size - from) : LS_TAIL;
	start = (uint64_t)st.st_size - n;
	if ((buf = malloc(n)) == NULL ||
	    (got = pread(fd, buf, n, (off_t)start)) < 0 || (size_t)got != n)
		goto out;
	for (i = n - sizeof lead + 1; i-- > 0;) {
		if (memcmp(buf + i, lead, sizeof lead) != 0)
			continue;
		if (rec_reader_open_at(&r, fd, start + i, 0) < 0)
			break;
		if (rec_reader_next(r, &ev) == 1 && ev.code == REC_SEAL &&
		    (raw = rec_reader_event_raw(r, &len)) != NULL &&
		    ls_seal_totals(raw, len, end)) {
			/* Version 2 ends with the trailer that names the seal. */
			int k = rec_reader_next(r, &ev);

			if (k == 1 && ev.code == REC_TRAILER)
				k = rec_reader_next(r, &ev);
			if (k == 0) {
				end->sealed = true;
				break;
			}
		}
		rec_reader_free(r);
		r = NULL;
		memset(end->exit_signal, 0, sizeof end->exit_signal);
		end->exited = false;
	}
out:
	rec_reader_free(r);
	free(buf);
	close(fd);
}

/* Whether an entry passes the filters on what reading it found. */
static bool
ls_keep(const struct ls_state *s, const struct ls_entry *e)
{
	char ex[48];

	if (s->state != NULL && strcmp(s->state, e->state) != 0)
		return false;
	if (s->has_min_dur && e->duration_ns < s->min_dur)
		return false;
	if (s->has_max_dur && e->duration_ns > s->max_dur)
		return false;
	if (s->exit != NULL) {
		if (!e->exited)
			return false;
		if (e->exit_signal[0] != '\0')
			snprintf(ex, sizeof ex, "SIG%s", e->exit_signal);
		else
			snprintf(ex, sizeof ex, "%d", e->exit_status);
		if (strcmp(s->exit, ex) != 0 && strcmp(s->exit, ex + (ex[0] == 'S' ? 3 : 0)) != 0)
			return false;
	}
	return true;
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
	struct trust_events te = { 0 };
	struct ls_end end;
	int rc, vrc;

	if (player_open_quiet(&f, path, !named && !s->verbose) < 0) {
		if (named)
			s->error = true;
		return 0;
	}
	h = &f.header;
	if ((s->user != NULL && (h->user == NULL || strcmp(h->user, s->user) != 0)) ||
	    (s->target != NULL && (h->target == NULL || fnmatch(s->target, h->target, 0) != 0)) ||
	    (s->command != NULL && fnmatch(s->command, h->command != NULL ? h->command : "",
	    0) != 0) ||
	    (s->client != NULL && (h->client == NULL || fnmatch(s->client, h->client, 0) != 0)) ||
	    (s->key_fp != NULL && (h->key_fp == NULL || strcmp(h->key_fp, s->key_fp) != 0)) ||
	    (s->has_since && h->start_ns < s->since) || (s->has_until && h->start_ns > s->until)) {
		player_close(&f);
		return 0;
	}
	memset(&e, 0, sizeof e);
	memset(&te, 0, sizeof te);
	memset(&end, 0, sizeof end);
	if (!s->verify) {
		/*
		 * Without --verify only the header and the end are read: the state
		 * comes from the seal (a recording with a hash chain and no seal is
		 * truncated, whatever its events say), unchecked.
		 */
		end.chained = ls_header_chained(&f);
		if (end.chained)
			ls_find_seal(path, rec_reader_offset(f.reader), &end);
		e.trust = end.chained ? "unchecked" : "unsigned";
		if (end.sealed) {
			e.state = end.exited ? "complete" : "incomplete";
			e.duration_ns = end.duration_ns;
			e.exited = end.exited;
			e.exit_status = end.exit_status;
			memcpy(e.exit_signal, end.exit_signal, sizeof e.exit_signal);
			goto keep;
		}
	}
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
	te.writing = rec_being_written(f.fd);
	if (!s->verify) {
		memset(&v, 0, sizeof v);
		v.verdict = REC_TRUNCATED;	/* a chain without a seal */
		vrc = end.chained ? 0 : -ENODATA;
		e.state = trust_state(&v, vrc, &te);
		e.exited = te.exited && !end.chained;
		goto keep;
	}
	/* The state comes from the verified seal, not from unsigned events. */
	vrc = player_verify_path(path, &v);
	e.state = trust_state(&v, vrc, &te);
	e.exited = trust_exit_verified(&v, vrc, &te);
	e.trust = trust_word(&s->trust, &v, vrc);
	if (vrc == 0)
		memcpy(e.key_fp, v.key_fp, sizeof e.key_fp);
keep:
	if (!ls_keep(s, &e)) {
		player_close(&f);
		return 0;
	}
	e.start_ns = h->start_ns;
	e.path = strdup(path);
	e.session = ls_dup(h->session_id);
	e.user = ls_dup(h->user);
	e.target = ls_dup(h->target);
	e.command = ls_dup(h->command);
	e.admin = h->target_kind != NULL && strcmp(h->target_kind, "podgate") == 0;
	rc = e.path == NULL || (h->session_id != NULL && e.session == NULL);
	player_close(&f);
	if (rc)
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

/* Compare two strings that may be NULL (NULL first). */
static int
ls_strcmp(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a != NULL) - (b != NULL);
	return strcmp(a, b);
}

static enum ls_sort ls_sort_by;

/* Order sessions by the --sort field, then start time, then path. */
static int
ls_cmp(const void *a, const void *b)
{
	const struct ls_entry *x = a, *y = b;
	int c = 0;

	if (ls_sort_by == LS_SORT_DURATION && x->duration_ns != y->duration_ns)
		return x->duration_ns < y->duration_ns ? -1 : 1;
	if (ls_sort_by == LS_SORT_USER)
		c = ls_strcmp(x->user, y->user);
	else if (ls_sort_by == LS_SORT_TARGET)
		c = ls_strcmp(x->target, y->target);
	if (c != 0)
		return c;

	if (x->start_ns != y->start_ns)
		return x->start_ns < y->start_ns ? -1 : 1;
	return strcmp(x->path, y->path);
}

/* Print one session. */
static void
ls_print(const struct ls_state *s, const struct ls_entry *e)
{
	char start[32], dur[32], ex[48], *user, *target, *command, *path;
	struct summary j;

	when_format_utc(e->start_ns, start, sizeof start);
	if (s->json) {
		summary_start(&j, e->path);
		summary_str(&j, "session", e->session);
		summary_str(&j, "start", start);
		summary_uint(&j, "start_ns", e->start_ns);
		summary_uint(&j, "duration_ns", e->duration_ns);
		summary_str(&j, "user", e->user);
		summary_str(&j, "target", e->target);
		summary_str(&j, "command", e->command);
		summary_exit(&j, e->exited, e->exit_signal, e->exit_status);
		summary_str(&j, "state", e->state);
		summary_str(&j, "trust", e->trust);
		summary_str(&j, "signer", e->key_fp[0] != '\0' ? e->key_fp : NULL);
		summary_print(&j);
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
	command = player_escape_str(e->command, e->admin ? "(admin)" : "(shell)");
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
		{ "verify", no_argument, NULL, 'V' },
		{ "command", required_argument, NULL, 'c' },
		{ "client", required_argument, NULL, 'a' },
		{ "key-fp", required_argument, NULL, 'f' },
		{ "state", required_argument, NULL, 's' },
		{ "exit", required_argument, NULL, 'x' },
		{ "min-duration", required_argument, NULL, 'm' },
		{ "max-duration", required_argument, NULL, 'M' },
		{ "sort", required_argument, NULL, 'o' },
		{ "limit", required_argument, NULL, 'n' },
		{ "header", no_argument, NULL, 'H' },
		{ "verbose", no_argument, NULL, 'v' },
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
	while ((c = getopt_long(argc, argv, "u:t:S:U:jk:Vvc:a:f:s:x:m:M:o:n:Hh", opts, NULL)) != -1) {
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
		case 'V':
			s.verify = true;
			break;
		case 'v':
			s.verbose = true;
			break;
		case 'c':
			s.command = optarg;
			break;
		case 'a':
			s.client = optarg;
			break;
		case 'f':
			s.key_fp = optarg;
			break;
		case 's':
			if (strcmp(optarg, "complete") != 0 && strcmp(optarg, "incomplete") != 0 &&
			    strcmp(optarg, "open") != 0 &&
			    strcmp(optarg, "truncated") != 0 && strcmp(optarg, "corrupt") != 0 &&
			    strcmp(optarg, "modified") != 0) {
				player_warn("bad state '%s' (complete, incomplete, open, truncated, "
				    "corrupt, modified)", optarg);
				free(keys);
				return EXIT_USAGE;
			}
			s.state = optarg;
			break;
		case 'x':
			s.exit = optarg;
			break;
		case 'm':
		case 'M':
			if (when_parse_offset(optarg, c == 'm' ? &s.min_dur : &s.max_dur) < 0) {
				player_warn("bad duration '%s' (seconds, M:SS or H:MM:SS)", optarg);
				free(keys);
				return EXIT_USAGE;
			}
			if (c == 'm')
				s.has_min_dur = true;
			else
				s.has_max_dur = true;
			break;
		case 'o':
			if (strcmp(optarg, "start") == 0)
				s.sort = LS_SORT_START;
			else if (strcmp(optarg, "duration") == 0)
				s.sort = LS_SORT_DURATION;
			else if (strcmp(optarg, "user") == 0)
				s.sort = LS_SORT_USER;
			else if (strcmp(optarg, "target") == 0)
				s.sort = LS_SORT_TARGET;
			else {
				player_warn("bad sort '%s' (start, duration, user, target)", optarg);
				free(keys);
				return EXIT_USAGE;
			}
			break;
		case 'n': {
			char *end;
			unsigned long long n = strtoull(optarg, &end, 10);

			if (end == optarg || *end != '\0' || n == 0 || optarg[0] == '-') {
				player_warn("bad limit '%s' (a number of sessions)", optarg);
				free(keys);
				return EXIT_USAGE;
			}
			s.limit = (size_t)n;
			break;
		}
		case 'H':
			s.header = true;
			break;
		case 'h':
			printf("usage: podgate-player " LS_USAGE "\n\n"
			    "One line per recorded session under the paths (directories recursively):\n"
			    "start, duration, user, target, command, exit status, state, signer, file.\n"
			    "Only a recording's header and its end are read: the state and exit status\n"
			    "are the seal's (a recording with a hash chain and no seal is truncated),\n"
			    "and the signer is \"unchecked\". With --verify every byte is checked: the\n"
			    "state and exit status are those the verified seal covers, and the signer\n"
			    "is verified, unknown-key, unverified-signer, unsigned or MODIFIED.\n\n"
			    "  --user U        sessions of user U\n"
			    "  --target GLOB   sessions whose target matches GLOB\n"
			    "  --command GLOB  sessions whose command matches GLOB (\"\" for shells)\n"
			    "  --client GLOB   sessions from a client address (ip:port) matching GLOB\n"
			    "  --key-fp FP     sessions of the client key with fingerprint FP\n"
			    "  --state S       complete, incomplete, open, truncated, corrupt or modified\n"
			    "  --exit N        sessions that exited with status N (or signal, KILL)\n"
			    "  --since WHEN    started at or after WHEN (2025-11-28, 2025-11-28T16:00Z, 2h)\n"
			    "  --until WHEN    started at or before WHEN\n"
			    "  --min-duration T, --max-duration T\n"
			    "                  sessions at least / at most T long (seconds, M:SS, H:MM:SS)\n"
			    "  --sort FIELD    start (the default), duration, user or target\n"
			    "  --limit N       the first N sessions in that order\n"
			    "  --header        a first line naming the columns\n"
			    "  --verify        check every recording as `verify` does, and its signer\n"
			    "  --key PUB       trust this signing key (repeatable); default: $PODGATE_KEYS,\n"
			    "                  ~/.config/podgate/trusted_keys, /etc/podgate/trusted_keys\n"
			    "  -v              say which files were skipped as not recordings\n"
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
		ls_sort_by = s.sort;
		if (s.n > 0)
			qsort(s.ents, s.n, sizeof *s.ents, ls_cmp);
		if (s.header && !s.json)
			printf("%-20s  %-11s  %-10s  %-20s  %-30s  %-7s  %-10s  %-17s  %s\n", "START",
			    "DURATION", "USER", "TARGET", "COMMAND", "EXIT", "STATE", "SIGNER", "FILE");
		for (i = 0; i < s.n && (s.limit == 0 || i < s.limit); i++)
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
