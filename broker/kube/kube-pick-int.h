/*
 * Inside podgate-broker --kube-pick (kube-pick.c: listing and options;
 * kube-pick-screen.c: the terminal). Not for use elsewhere: kube-pick.h
 * is the interface.
 */
#ifndef PODGATE_KUBE_PICK_INT_H
#define PODGATE_KUBE_PICK_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <termios.h>
#include <time.h>

#include "kube/kube.h"

#define KP_MAXGROUPS 32		/* query groups */
#define KP_MAXLIST 64		/* namespaces, allow patterns, as-groups per group */
#define KP_OUT_MAX (32u * 1024 * 1024)
#define KP_ERR_MAX (64u * 1024)
#define KP_FILTER_MAX 64
#define KP_MSG_MAX 512
#define KP_RESULT_FD 3

/* One query group: a cluster, an identity, namespaces and patterns. */
struct kp_group {
	const char *cluster, *cache;
	struct kube_exec e;
	unsigned timeout;
	bool all;
	const char *ns[KP_MAXLIST];
	size_t nns;
	const char *allow[KP_MAXLIST];
	size_t nallow;
	const char *as_groups[KP_MAXLIST + 1];
	size_t nas_groups;
	bool native;			/* --native: the API server directly, not kubectl */
	struct kube_conn *conn;		/* native: kept alive across the group's lists */
};

/* One row of the list. */
struct kp_entry {
	char *target;		/* what a pick writes: "CLUSTER:NS/POD[/CONTAINER]" or "local" */
	char *where;		/* NAMESPACE column ("CLUSTER:NS" with several clusters) */
	char *name;
	char *containers;	/* "app,sidecar" */
	char *status;
	time_t created;		/* 0: unknown (no age shown) */
	char *key;		/* lowercase text the filter looks in */
};

struct kp {
	struct kp_group g[KP_MAXGROUPS];
	size_t ng;
	bool local;
	bool multi;		/* several clusters: show the cluster with the namespace */
	struct kp_entry *v;
	size_t n, max;
	char msg[KP_MSG_MAX];	/* failures of the listing, shown under the list */
	/* the screen */
	unsigned cols, rows;
	char filter[KP_FILTER_MAX];
	size_t nfilter;
	size_t *shown, nshown;	/* indexes into v that pass the filter */
	size_t sel, top;	/* selected and first visible index into shown */
	struct termios saved;
	bool raw;
};

/* kube-pick-screen.c: the terminal */
void kp_winch_cb(int sig);
void kp_size(struct kp *k);
void kp_enter(struct kp *k);
void kp_restore(struct kp *k);
void kp_printable(char *s);
void kp_note(struct kp *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kp_status(struct kp *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kp_refilter(struct kp *k);
void kp_loop(struct kp *k);

#endif
