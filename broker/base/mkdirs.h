/* mkdir -p, for the state directories every layer keeps (recordings, caches). */
#ifndef PODGATE_MKDIRS_H
#define PODGATE_MKDIRS_H

#include <sys/types.h>

/* Create path and its missing parents with mode; existing ones are kept. */
int mkdirs(const char *path, mode_t mode);

#endif
