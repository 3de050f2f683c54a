/*
 * The local target: a command on the broker host, run by the configured
 * shell (targets.local.shell) under a PTY or with three pipes. The
 * client's command is handed to the shell as one argument of -c; the
 * broker itself never parses it. The environment is built from scratch.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <grp.h>
#include <unistd.h>

#include "base/log.h"
#include "targets/target.h"

#define TARGET_LOCAL_PATH "/usr/local/bin:/usr/bin:/bin"
#define TARGET_LOCAL_MAXENV 64

/* Whether name is the local target. */
static bool
target_local_serves(const char *target)
{
	return strcmp(target, "local") == 0;
}

/* Whether the configuration enables the local target. */
static bool
target_local_exists(const struct config *c, const char *target)
{
	return c->local.enabled && strcmp(target, "local") == 0;
}

/* Format "name=value" into a new string, or NULL when out of memory. */
static char *
target_local_var(const char *name, const char *value)
{
	char *s = NULL;

	if (asprintf(&s, "%s=%s", name, value) < 0)
		return NULL;
	return s;
}

/* Free a NULL-terminated array of strings. */
static void
target_local_free_env(char **env)
{
	char **p;

	if (env == NULL)
		return;
	for (p = env; *p != NULL; p++)
		free(*p);
	free(env);
}

/*
 * Build the child's environment: PATH, HOME, USER, LOGNAME, SHELL, TERM
 * with a PTY, then the accepted client variables (which cannot replace
 * the ones set here).
 */
static int
target_local_env(const struct config *c, const struct target_request *req, const char *home,
    char ***out)
{
	char **env = NULL;
	size_t n = 0, i;
	int r = -ENOMEM;

	*out = NULL;
	if ((env = calloc(TARGET_LOCAL_MAXENV + 8, sizeof *env)) == NULL)
		goto out;
	if ((env[n++] = target_local_var("PATH", TARGET_LOCAL_PATH)) == NULL ||
	    (env[n++] = target_local_var("HOME", home)) == NULL ||
	    (env[n++] = target_local_var("USER", req->user)) == NULL ||
	    (env[n++] = target_local_var("LOGNAME", req->user)) == NULL ||
	    (env[n++] = target_local_var("SHELL", c->local.shell)) == NULL)
		goto out;
	if (req->pty && (env[n++] = target_local_var("TERM",
	    req->term != NULL && *req->term != '\0' ? req->term : "xterm")) == NULL)
		goto out;
	for (i = 0; i < req->nenv && i < TARGET_LOCAL_MAXENV; i++) {
		const char *eq = strchr(req->env[i], '=');

		if (eq == NULL || (eq - req->env[i] == 4 &&
		    strncmp(req->env[i], "TERM", 4) == 0))
			continue;
		if ((env[n++] = strdup(req->env[i])) == NULL)
			goto out;
	}
	*out = env;
	env = NULL;	/* transferred */
	r = 0;
out:
	target_local_free_env(env);
	return r;
}

/* Start SHELL -c COMMAND, or a login shell when there is no command. */
static int
target_local_spawn(const struct config *c, const struct target_request *req,
    struct pty_child *child)
{
	struct pty_spawn_opts o;
	struct passwd pwbuf, *pw = NULL;
	struct stat st;
	char **env = NULL, *login = NULL, *pwstr = NULL;
	const char *home, *base;
	char *argv[5] = { NULL, NULL, NULL, NULL, NULL };
	gid_t *groups = NULL;
	int r, ngroups = 0, e;
	long pwlen;

	memset(child, 0, sizeof *child);
	child->master = child->in = child->out = child->err = -1;
	memset(&o, 0, sizeof o);
	if ((pwlen = sysconf(_SC_GETPW_R_SIZE_MAX)) < 1024)
		pwlen = 16384;
	if ((pwstr = malloc((size_t)pwlen)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (c->local.user != NULL)
		e = getpwnam_r(c->local.user, &pwbuf, pwstr, (size_t)pwlen, &pw);
	else
		e = getpwuid_r(geteuid(), &pwbuf, pwstr, (size_t)pwlen, &pw);
	if (c->local.user != NULL && pw == NULL) {
		r = e != 0 ? -e : -ENOENT;
		log_warn_r(r, "session %s: no account \"%s\" for the local target",
		    req->session_id, c->local.user);
		goto out;
	}
	if (c->local.user != NULL && pw->pw_uid != geteuid()) {
		/* Run as the account, with its groups, never with the broker's. */
		ngroups = 64;
		for (;;) {
			gid_t *g = realloc(groups, (size_t)ngroups * sizeof *groups);
			int want = ngroups;

			if (g == NULL) {
				r = -ENOMEM;
				goto out;
			}
			groups = g;
			if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &ngroups) >= 0)
				break;
			if (ngroups <= want)
				ngroups = want * 2;
			if (ngroups > 65536) {
				r = -E2BIG;
				goto out;
			}
		}
		o.set_ids = true;
		o.uid = pw->pw_uid;
		o.gid = pw->pw_gid;
		o.groups = groups;
		o.ngroups = (size_t)ngroups;
	}
	home = pw != NULL && pw->pw_dir != NULL ? pw->pw_dir : "/";
	/* An account without a home (nobody's /nonexistent) starts in /. */
	if (stat(home, &st) < 0 || !S_ISDIR(st.st_mode))
		home = "/";
	if ((r = target_local_env(c, req, home, &env)) < 0)
		goto out;
	base = strrchr(c->local.shell, '/');
	base = base != NULL ? base + 1 : c->local.shell;
	if (req->command != NULL) {
		/* "--": a command starting with '-' is not read as shell options. */
		argv[0] = (char *)base;
		argv[1] = (char *)"-c";
		argv[2] = (char *)"--";
		argv[3] = (char *)req->command;
	} else {
		/* A leading '-' in argv[0] makes a login shell. */
		if (asprintf(&login, "-%s", base) < 0) {
			login = NULL;
			r = -ENOMEM;
			goto out;
		}
		argv[0] = login;
	}
	o.path = c->local.shell;
	o.cgroup_procs_fd = req->cgroup_procs_fd;
	o.argv = argv;
	o.envp = env;
	o.cwd = home;
	o.stdio = req->pty ? PTY_STDIO_PTY : PTY_STDIO_PIPES;
	o.cols = req->cols;
	o.rows = req->rows;
	o.nonblock = true;
	if ((r = pty_spawn(&o, child)) < 0)
		log_warn_r(r, "session %s: cannot start %s", req->session_id, c->local.shell);
out:
	free(login);
	free(groups);
	free(pwstr);
	target_local_free_env(env);
	return r;
}

const struct target_ops target_local_ops = {
	.kind = "local",
	.serves = target_local_serves,
	.exists = target_local_exists,
	.spawn = target_local_spawn,
	.host_cgroup = true,
};
