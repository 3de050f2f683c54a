/*
 * In-cluster credentials for the kubectl transport. kubectl uses its
 * in-cluster configuration only when no client flag overrides anything, and
 * --as/--as-group do: impersonating kubectl then talks to localhost:8080.
 * So the broker writes the same configuration as a kubeconfig (the
 * service's address, the service account's CA and token file) and names it
 * with --kubeconfig.
 */
#ifndef PODGATE_KUBE_INCLUSTER_H
#define PODGATE_KUBE_INCLUSTER_H

#include <stddef.h>

/* The service account's files, as Kubernetes mounts them in every pod. */
#define KUBE_INCLUSTER_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/*
 * Write DIR/in-cluster.kubeconfig (mode 0600, replaced atomically) for the
 * API server named by KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT,
 * with the CA and the token file of KUBE_INCLUSTER_DIR (kubectl re-reads
 * the token file, which Kubernetes rotates). On success returns 0 and the
 * file's path in path; -ENOENT when either variable is unset (not in a
 * pod), -EINVAL when one is malformed, -ENAMETOOLONG, or another negative
 * errno from writing. The directory must exist.
 */
int kube_incluster_write(const char *dir, char *path, size_t len);

/*
 * As kube_incluster_write, but only when DIR/in-cluster.kubeconfig is not a
 * file already (the broker writes it at start; a session start then costs
 * one stat, not a synced write).
 */
int kube_incluster_ensure(const char *dir, char *path, size_t len);

#endif
