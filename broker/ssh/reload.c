/*
 * Reloading the configuration: on SIGHUP, and when the file changes (its
 * directory is watched, and a change is loaded once it has been quiet for
 * SERVER_WATCH_SETTLE_MS and its bytes differ). Running sessions keep the
 * configuration they started under.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "policy/audit.h"
#include "targets/cgroup.h"
#include "ssh/conn.h"
#include "ssh/keys.h"
#include "kube/kube-incluster.h"
#include "kube/kube-client.h"
#include "admin/live.h"
#include "admin/peer-client.h"
#include "base/log.h"
#include "ssh/peer.h"
#include "ssh/server.h"
#include "ssh/server-internal.h"
#include "session/session.h"
#include "storage/storage.h"
#include "ssh/server-internal.h"

/* Whether two optional strings differ. */
static bool
server_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/*
 * SIGHUP: load the configuration again; keep the old one if it is broken.
 * Either way the audit log says so: config_reloaded with the hash of the
 * text now in force, or config_reload_failed with the errors.
 */
void
server_reload(struct server *srv)
{
	struct config *c = NULL, *old = srv->config;
	char *errs = NULL;
	size_t errlen = 0;
	FILE *ef;
	int r;

	/* The errors go to stderr as before, and into the audit event. */
	ef = open_memstream(&errs, &errlen);
	if (srv->config_path != NULL)
		r = config_load(srv->config_path, ef != NULL ? ef : stderr, &c);
	else
		r = config_load_string("demo", srv->demo_yaml, strlen(srv->demo_yaml),
		    ef != NULL ? ef : stderr, &c);
	if (ef != NULL && fclose(ef) != 0) {
		free(errs);
		errs = NULL;
		errlen = 0;
	}
	if (errs != NULL && errlen > 0)
		fputs(errs, stderr);
	if (r < 0) {
		log_error("reload of %s failed (%s); keeping the running configuration",
		    srv->config_path != NULL ? srv->config_path : "the demo configuration",
		    strerror(-r));
		while (errlen > 0 && errs[errlen - 1] == '\n')
			errs[--errlen] = '\0';
		if (errlen > SERVER_AUDIT_ERRORS_MAX)
			memcpy(errs + SERVER_AUDIT_ERRORS_MAX - 4, "...", 4);
		{
			struct audit_field f[] = {
				AUDIT_STR("config", srv->config_path != NULL ? srv->config_path :
				    "demo"),
				AUDIT_STR("reason", strerror(-r)),
				AUDIT_STR("errors", errs),
				AUDIT_STR("running_sha256", old->sha256),
			};
			audit_event(srv->audit, "config_reload_failed", f, 4);
		}
		free(errs);
		return;
	}
	free(errs);
	if (server_differs(c->listen_host, old->listen_host) ||
	    c->listen_port != old->listen_port)
		log_warn("reload: listen changes only at restart");
	if (server_differs(c->host_key, old->host_key))
		log_warn("reload: host_key changes only at restart");
	if (server_differs(c->audit_log, old->audit_log))
		log_warn("reload: audit_log changes only at restart");
	if (c->s3.enabled != old->s3.enabled || server_differs(c->s3.endpoint, old->s3.endpoint) ||
	    server_differs(c->s3.bucket, old->s3.bucket) ||
	    server_differs(c->s3.prefix, old->s3.prefix))
		log_warn("reload: storage changes only at restart");
	if (server_differs(c->peer_host, old->peer_host) || c->peer_port != old->peer_port ||
	    server_differs(c->peer_key, old->peer_key) ||
	    (srv->cs.peer == NULL && (c->npeers > 0 || c->peers_dns != NULL)))
		log_warn("reload: peer_listen and peer_key change only at restart");
	srv->config = c;
	config_unref(old);
	kube_client_check_config(c);
	{
		struct audit_field f[] = {
			AUDIT_STR("config", srv->config_path != NULL ? srv->config_path : "demo"),
			AUDIT_STR("sha256", c->sha256),
			AUDIT_NUM("users", c->nusers),
			AUDIT_NUM("rules", c->nrules),
		};
		audit_event(srv->audit, "config_reloaded", f, 4);
	}
	log_info("configuration reloaded: %zu users, %zu rules", c->nusers, c->nrules);
}
/*
 * The SHA-256 of the configuration file's bytes now (at most 2 MiB are
 * read: more is refused by the loader anyway). Returns false when the
 * file cannot be read.
 */
bool
server_config_digest(const char *path, unsigned char out[SERVER_DIGEST_LEN])
{
	static char buf[2u << 20];
	unsigned int len = 0;
	size_t n;
	FILE *f;
	bool ok;

	if ((f = fopen(path, "re")) == NULL)
		return false;
	n = fread(buf, 1, sizeof buf, f);
	ok = !ferror(f) && EVP_Digest(buf, n, out, &len, EVP_sha256(), NULL) == 1 &&
	    len == SERVER_DIGEST_LEN;
	fclose(f);
	return ok;
}

/* The configuration's directory settled after a change: reload if the file's bytes changed. */
static void
server_watch_timer_cb(uv_timer_t *t)
{
	struct server *srv = t->data;
	unsigned char d[SERVER_DIGEST_LEN];

	if (srv->stopping || !server_config_digest(srv->config_path, d) ||
	    memcmp(d, srv->config_digest, sizeof d) == 0)
		return;
	memcpy(srv->config_digest, d, sizeof d);
	log_info("%s changed: reloading", srv->config_path);
	server_reload(srv);
}

/* Something changed in the configuration's directory (an edit, a ConfigMap's symlink swap). */
static void
server_watch_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct server *srv = h->data;

	/* Writers and kubelet make several changes in a row: wait until they settle. */
	uv_timer_start(&srv->watch_timer, server_watch_timer_cb, SERVER_WATCH_SETTLE_MS, 0);
}

/*
 * Watch the directory holding the configuration file, so that an edited
 * file or an updated ConfigMap is loaded without a signal.
 */
void
server_watch_config(struct server *srv)
{
	char *dir = NULL, *slash;
	int r;

	if (srv->config_path == NULL)
		return;
	server_config_digest(srv->config_path, srv->config_digest);
	if ((dir = strdup(srv->config_path)) == NULL)
		return;
	if ((slash = strrchr(dir, '/')) == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	uv_timer_init(&srv->loop, &srv->watch_timer);
	srv->watch_timer.data = srv;
	uv_fs_event_init(&srv->loop, &srv->watch);
	srv->watch.data = srv;
	srv->watching = true;
	if ((r = uv_fs_event_start(&srv->watch, server_watch_cb, dir, 0)) < 0)
		log_warn("cannot watch %s for changes (%s): reload with SIGHUP", dir,
		    uv_strerror(r));
	free(dir);
}

/* Stop watching the configuration. */
void
server_unwatch_config(struct server *srv)
{
	if (!srv->watching)
		return;
	srv->watching = false;
	uv_close((uv_handle_t *)&srv->watch, NULL);
	uv_close((uv_handle_t *)&srv->watch_timer, NULL);
}
