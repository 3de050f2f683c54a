/*
 * In-cluster credentials for kubectl, as a kubeconfig file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kube/kube-incluster.h"

/* Whether s is a host name or an IPv4/IPv6 address: nothing YAML or a URL would read specially. */
static int
kube_incluster_host_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= 253 && strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:") == n && s[0] != '-';
}

/* Whether s is a TCP port number. */
static int
kube_incluster_port_ok(const char *s)
{
	size_t n = strlen(s);
	long v;

	if (n == 0 || n > 5 || strspn(s, "0123456789") != n)
		return 0;
	v = strtol(s, NULL, 10);
	return v > 0 && v <= 65535;
}

int
kube_incluster_write(const char *dir, char *path, size_t len)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char tmp[4096], text[1024];
	int fd = -1, n, r = 0;

	if (len > 0)
		path[0] = '\0';
	if (host == NULL || port == NULL)
		return -ENOENT;
	if (!kube_incluster_host_ok(host) || !kube_incluster_port_ok(port))
		return -EINVAL;
	n = snprintf(text, sizeof text,
	    "# Written by podgate-broker from the pod's in-cluster configuration.\n"
	    "apiVersion: v1\n"
	    "kind: Config\n"
	    "clusters:\n"
	    "- name: in-cluster\n"
	    "  cluster:\n"
	    "    server: \"https://%s%s%s:%s\"\n"
	    "    certificate-authority: " KUBE_INCLUSTER_DIR "/ca.crt\n"
	    "users:\n"
	    "- name: in-cluster\n"
	    "  user:\n"
	    "    tokenFile: " KUBE_INCLUSTER_DIR "/token\n"
	    "contexts:\n"
	    "- name: in-cluster\n"
	    "  context: {cluster: in-cluster, user: in-cluster}\n"
	    "current-context: in-cluster\n",
	    strchr(host, ':') != NULL ? "[" : "", host, strchr(host, ':') != NULL ? "]" : "",
	    port);
	if (n < 0 || (size_t)n >= sizeof text)
		return -EINVAL;
	if ((size_t)snprintf(path, len, "%s/in-cluster.kubeconfig", dir) >= len ||
	    (size_t)snprintf(tmp, sizeof tmp, "%s/.in-cluster.kubeconfig.XXXXXX", dir) >= sizeof tmp) {
		if (len > 0)
			path[0] = '\0';
		return -ENAMETOOLONG;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		r = -errno;
		goto out;
	}
	errno = 0;
	if (write(fd, text, (size_t)n) != n || fsync(fd) < 0) {
		r = errno != 0 ? -errno : -EIO;
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
	}
out:
	if (fd >= 0)
		close(fd);
	if (r < 0 && len > 0)
		path[0] = '\0';
	return r;
}

int
kube_incluster_ensure(const char *dir, char *path, size_t len)
{
	struct stat st;

	if (len > 0)
		path[0] = '\0';
	if ((size_t)snprintf(path, len, "%s/in-cluster.kubeconfig", dir) >= len) {
		if (len > 0)
			path[0] = '\0';
		return -ENAMETOOLONG;
	}
	/* The service variables do not change while the broker runs: written once. */
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
		return 0;
	return kube_incluster_write(dir, path, len);
}
