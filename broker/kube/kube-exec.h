/*
 * The kubectl helper a kubernetes session runs as its child
 * (podgate-broker --kube-exec ...; see kube-exec.c).
 */
#ifndef PODGATE_KUBE_EXEC_H
#define PODGATE_KUBE_EXEC_H

/*
 * Run the helper with argv[0] "--kube-exec" and its options. Returns only
 * on a usage error (2); otherwise it ends as kubectl or with kubectl's
 * status, or exits 1 after one line on stderr.
 */
int kube_exec_main(int argc, char **argv);

#endif
