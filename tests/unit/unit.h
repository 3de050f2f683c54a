/*
 * What the unit tests share, so that no test file carries its own copy:
 *
 *  - assert() that holds in every build type (a check that vanishes under
 *    NDEBUG is no check), and CHECK(), which reports a failed condition
 *    with its file and line and goes on, so one run shows every failure;
 *  - unit_run(): a table of tests run in order, each named on stdout as it
 *    starts (a crash then points at its test), each under a watchdog
 *    of CPU time, a count of the tests whose CHECK()s failed, and the
 *    exit status meson reads (0 all passed, 1 some failed);
 *  - a scratch directory, and whole files written and read back;
 *  - for the broker's tests, which include "policy/config.h" before this
 *    header: a configuration loaded from a string, expected to load
 *    cleanly (expect_ok) or to fail with given messages (expect_error).
 *
 * Everything is static inline: a test file pays only for what it uses,
 * and the libraries it does not link (the broker's core for the player's
 * tests) are never referred to.
 */
#ifndef PODGATE_TESTS_UNIT_H
#define PODGATE_TESTS_UNIT_H

#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/*
 * A test that spins is killed by SIGPROF after this many seconds of CPU
 * time. CPU time, not time on the clock: on a loaded machine a test
 * waits its turn for the CPU and must not be killed for it. A test that
 * blocks for good is left to meson's timeout (scaled by its -t), and the
 * last name on stdout still points at it.
 */
#define UNIT_WATCHDOG_S 60

#define UNIT_COUNT(a) (sizeof(a) / sizeof((a)[0]))

struct unit_test {
	const char *name;
	void (*fn)(void);
};

/* Failed CHECK()s so far in this process (a function, so that a file that
 * makes no CHECK() has no unused variable). */
static inline int *
unit_failures(void)
{
	static int n;

	return &n;
}

static inline void
unit_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
	(*unit_failures())++;
}

/* Report cond when false, and go on with the test. */
#define CHECK(cond) do {						\
	if (!(cond))							\
		unit_fail(__FILE__, __LINE__, #cond);			\
} while (0)

/* Two strings equal (NULL equals only NULL); both shown when not. */
#define CHECK_STR(got, want) do {					\
	const char *unit_g_ = (got), *unit_w_ = (want);			\
									\
	if (unit_g_ == NULL || unit_w_ == NULL ?			\
	    unit_g_ != unit_w_ : strcmp(unit_g_, unit_w_) != 0) {	\
		fprintf(stderr, "got:  \"%s\"\nwant: \"%s\"\n",		\
		    unit_g_ ? unit_g_ : "(null)",			\
		    unit_w_ ? unit_w_ : "(null)");			\
		unit_fail(__FILE__, __LINE__, #got " == " #want);	\
	}								\
} while (0)

/*
 * Run the n tests in order: "suite: name" before each, after() (when not
 * NULL) once each has returned, for checks that hold between tests (no
 * descriptor or child left behind). Prints "suite: all passed" or how
 * many failed, and returns the exit status for main.
 */
static inline int
unit_run_with(const char *suite, const struct unit_test *tests, size_t n, void (*after)(void))
{
	const struct itimerval watchdog = { .it_value = { .tv_sec = UNIT_WATCHDOG_S } };
	const struct itimerval off = { 0 };
	size_t i, failed = 0;
	int before;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; i < n; i++) {
		printf("%s: %s\n", suite, tests[i].name);
		before = *unit_failures();
		setitimer(ITIMER_PROF, &watchdog, NULL);
		tests[i].fn();
		setitimer(ITIMER_PROF, &off, NULL);
		if (after != NULL)
			after();
		if (*unit_failures() != before) {
			printf("%s: %s FAILED\n", suite, tests[i].name);
			failed++;
		}
	}
	if (failed != 0) {
		printf("%s: %zu of %zu failed\n", suite, failed, n);
		return 1;
	}
	printf("%s: all passed\n", suite);
	return 0;
}

static inline int
unit_run(const char *suite, const struct unit_test *tests, size_t n)
{
	return unit_run_with(suite, tests, n, NULL);
}

/* A new directory /tmp/podgate-test-NAME-XXXXXX (caller frees the path). */
static inline char *
unit_tmpdir(const char *name)
{
	char *path;

	assert(asprintf(&path, "/tmp/podgate-test-%s-XXXXXX", name) > 0);
	assert(mkdtemp(path) != NULL);
	return path;
}

static inline int
unit_rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* Remove path and all below it (links are removed, not followed). */
static inline void
unit_rmtree(const char *path)
{
	assert(nftw(path, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0);
}

/* Write text to dir/name (dir NULL: the current directory) with mode;
 * returns the path (caller frees). */
static inline char *
unit_write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char *path;
	FILE *f;

	if (dir != NULL)
		assert(asprintf(&path, "%s/%s", dir, name) > 0);
	else
		assert((path = strdup(name)) != NULL);
	assert((f = fopen(path, "w")) != NULL);
	assert(fputs(text, f) >= 0);
	assert(fclose(f) == 0);
	assert(chmod(path, mode) == 0);
	return path;
}

/* A whole file as a new NUL-terminated string; its length in *len when
 * len is not NULL (caller frees). */
static inline char *
unit_slurp(const char *path, size_t *len)
{
	char *buf;
	long n;
	FILE *f;

	assert((f = fopen(path, "r")) != NULL);
	assert(fseek(f, 0, SEEK_END) == 0);
	assert((n = ftell(f)) >= 0);
	rewind(f);
	assert((buf = malloc((size_t)n + 1)) != NULL);
	assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len != NULL)
		*len = (size_t)n;
	return buf;
}

#ifdef PODGATE_CONFIG_H
/*
 * Load yaml as file "t": returns config_load_string's result, *c the
 * configuration (NULL exactly when it failed) and *errs every message
 * it printed (caller frees).
 */
static inline int
load(const char *yaml, struct config **c, char **errs)
{
	size_t len = 0;
	FILE *f;
	int r;

	assert((f = open_memstream(errs, &len)) != NULL);
	r = config_load_string("t", yaml, strlen(yaml), f, c);
	fclose(f);
	assert((r == 0) == (*c != NULL));
	return r;
}

/* Load yaml expecting success with no message at all. */
static inline struct config *
expect_ok(const char *yaml)
{
	struct config *c = NULL;
	char *errs = NULL;

	if (load(yaml, &c, &errs) != 0 || *errs != '\0') {
		fprintf(stderr, "unexpected:\n%s--- for:\n%s\n", errs, yaml);
		abort();
	}
	free(errs);
	return c;
}

/* Load yaml that must load; its warnings, if any, go to stderr. */
static inline struct config *
load_valid(const char *yaml)
{
	struct config *c = NULL;

	if (config_load_string("t", yaml, strlen(yaml), stderr, &c) != 0) {
		fprintf(stderr, "--- does not load:\n%s\n", yaml);
		abort();
	}
	return c;
}

/* Load yaml expecting failure with each of the messages in want[]
 * (NULL-terminated). */
static inline void
expect_errors(const char *yaml, const char *const *want)
{
	struct config *c = (struct config *)1;
	char *errs = NULL;
	size_t i;
	int r;

	r = load(yaml, &c, &errs);
	for (i = 0; want[i] != NULL; i++) {
		if (strstr(errs, want[i]) == NULL) {
			fprintf(stderr, "missing \"%s\" in:\n%s--- for:\n%s\n", want[i], errs,
			    yaml);
			abort();
		}
	}
	assert(r == -EINVAL);
	assert(c == NULL);
	free(errs);
}

/* Load yaml expecting failure with a message containing want. */
static inline void
expect_error(const char *yaml, const char *want)
{
	const char *const list[] = { want, NULL };

	expect_errors(yaml, list);
}
#endif /* PODGATE_CONFIG_H */

#endif /* PODGATE_TESTS_UNIT_H */
