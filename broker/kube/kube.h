/*
 * Kubernetes targets without I/O: target names ([CLUSTER:]NAMESPACE/POD
 * [/CONTAINER], NAMESPACE/deploy/NAME, NAMESPACE/sts/NAME) checked against
 * Kubernetes' naming rules, kubectl argv built without a shell, and the
 * Kubernetes JSON (what `kubectl get -o json` prints and the API server
 * sends) read with jansson.
 */
#ifndef PODGATE_KUBE_H
#define PODGATE_KUBE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "base.h"
#include "policy/config.h"

#define KUBE_LABEL_MAX 63
#define KUBE_NAME_MAX 253

enum kube_kind {
	KUBE_POD,		/* NAMESPACE/POD */
	KUBE_DEPLOY,		/* NAMESPACE/deploy/NAME: a running pod of a deployment */
	KUBE_STS,		/* NAMESPACE/sts/NAME: a running pod of a statefulset */
};

/* A parsed target. */
struct kube_target {
	const struct cfg_kube_cluster *cluster;	/* borrowed from the config */
	enum kube_kind kind;
	char ns[KUBE_LABEL_MAX + 1];
	char name[KUBE_NAME_MAX + 1];		/* pod or workload */
	char container[KUBE_LABEL_MAX + 1];	/* "" when not named */
	/* "CLUSTER:NS/POD[/CONTAINER]" or "CLUSTER:NS/deploy/NAME[/CONTAINER]" */
	char canonical[2 * KUBE_NAME_MAX];
};

/*
 * Append n bytes of p to b (a child's captured output), keeping at most
 * cap bytes: what goes past the cap is dropped, as is everything once
 * memory runs out (b->oom), so a chatty child cannot grow the broker.
 */
void kube_capture(struct buf *b, const char *p, size_t n, size_t cap);

/* Whether s is a DNS-1123 label: 1..63 of [a-z0-9-], no '-' at either end. */
bool kube_label_ok(const char *s);

/* Whether s is a DNS-1123 subdomain: 1..253, dot-separated labels. */
bool kube_subdomain_ok(const char *s);

/*
 * Parse a target name for configuration c (which has clusters). Returns 0
 * with *t filled; -EINVAL with a one-line reason in err (no "podgate:"
 * prefix; the name is shown with anything unprintable replaced by '?')
 * when the name breaks the syntax or the naming rules; -ENOENT when it
 * names a cluster c does not have. *t is cleared on entry.
 */
int kube_target_parse(const struct config *c, const char *name, struct kube_target *t,
    char *err, size_t errlen);

/* What kubectl is asked to do. Strings are borrowed. */
struct kube_exec {
	const char *kubectl;
	const char *kubeconfig;		/* NULL: in-cluster */
	const char *context;		/* NULL: current context */
	const char *ns, *pod, *container;	/* container may be NULL */
	bool tty;
	const char *as_user;		/* NULL: no impersonation */
	char *const *as_groups;
	size_t nas_groups;
	char *const *command;		/* NULL-terminated, at least one word */
};

/*
 * Build "kubectl [--kubeconfig K] [--context C] exec -i [-t] -n NS POD
 * [-c CONTAINER] [--as USER] [--as-group G]... -- ARGV..." as a
 * NULL-terminated array of copies (free with kube_free_argv). Returns 0
 * or -ENOMEM / -EINVAL (no command); *out is NULL on failure.
 */
int kube_exec_argv(const struct kube_exec *e, char ***out);

/*
 * Build "kubectl [--kubeconfig K] [--context C] get RESOURCE [NAME] -n NS
 * -o json --request-timeout=Ns [--as USER] [--as-group G]... [EXTRA]": name
 * may be NULL (a list), extra a NULL-terminated list or NULL.
 */
int kube_get_argv(const struct kube_exec *e, const char *resource, const char *name,
    unsigned timeout, char *const *extra, char ***out);

void kube_free_argv(char **argv);

/* A pod as kubectl shows it, from its JSON. */
struct kube_pod {
	char *ns, *name;
	char *phase;			/* "Running", "Pending", "Succeeded", ... */
	char *status;			/* phase, or a container's waiting reason */
	char **containers;		/* NULL-terminated */
	char *default_container;	/* the kubectl.kubernetes.io/default-container annotation */
	time_t created;			/* 0 when unknown */
	bool deleting;			/* metadata.deletionTimestamp set */
};

/*
 * Read one Pod object. Returns 0, -EINVAL when json is not a Pod, or
 * -ENOMEM; pod is cleared on entry and must be freed with kube_pod_clear.
 */
int kube_pod_parse(const char *json, size_t len, struct kube_pod *pod);

/* Read a PodList: *pods is an array of *n pods (kube_pods_free). */
int kube_pods_parse(const char *json, size_t len, struct kube_pod **pods, size_t *n);

void kube_pod_clear(struct kube_pod *pod);
void kube_pods_free(struct kube_pod *pods, size_t n);

/*
 * Read a Deployment or StatefulSet's spec.selector.matchLabels as a label
 * selector "k=v,k2=v2" (a new string in *out). -EINVAL when there is none
 * or a key or value holds characters labels cannot have.
 */
int kube_selector_parse(const char *json, size_t len, char **out);

/* Whether pod has a container of this name. */
bool kube_pod_has_container(const struct kube_pod *pod, const char *name);

struct strv;

/*
 * Append the cluster's env to e: NAME=VALUE entries as written, NAME with
 * the broker's own value when it has one (and nothing when it has none).
 */
void kube_env_add(const struct cfg_kube_cluster *k, struct strv *e);

#endif
