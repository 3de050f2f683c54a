/*
 * podgate-broker --kube-pick: the pod picker a PTY session runs when the
 * user gave no target (broker/session-pick.c builds its argv). It lists
 * the pods the user's rules allow (kubectl get pods -o json per cluster,
 * identity and namespace, bounded by the cluster's timeout), shows them
 * on its terminal, and lets the user pick one. A pick is written to fd 3
 * as one line holding the target name; the exit status is then 0. 1 means
 * the user cancelled, 2 that there was nothing to pick (the reasons were
 * shown on the terminal).
 */
#ifndef PODGATE_KUBE_PICK_H
#define PODGATE_KUBE_PICK_H

#define KUBE_PICK_OK 0
#define KUBE_PICK_CANCEL 1
#define KUBE_PICK_NONE 2

/* The helper's main; argv[0] is "--kube-pick". */
int kube_pick_main(int argc, char **argv);

#endif
