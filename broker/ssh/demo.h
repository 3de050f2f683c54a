/*
 * The --demo mode: an embedded default configuration under one state
 * directory, and instructions on stdout for connecting and replaying.
 */
#ifndef PODGATE_DEMO_H
#define PODGATE_DEMO_H

#include <stdint.h>

/*
 * Prepare DIR (mode 0700) and the demo user's key, and build the demo
 * configuration as YAML into *yaml (caller frees). listen is "HOST:PORT"
 * or NULL for 127.0.0.1:2222. *identity is the private key file for
 * `ssh -i` (caller frees; may be NULL).
 */
int demo_config(const char *dir, const char *listen, char **yaml, char **identity);

/*
 * Write DIR/known_hosts for the host key line ("TYPE BASE64") and print
 * how to connect and how to replay a recording.
 */
int demo_announce(const char *dir, const char *host, uint16_t port, const char *hostkey,
    const char *identity, const char *argv0);

#endif
