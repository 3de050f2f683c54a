/* mkdir -p (mkdirs.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/mkdirs.h"

int
mkdirs(const char *path, mode_t mode)
{
	char *copy = NULL, *p, c;
	int r = 0;

	if (*path == '\0')
		return -EINVAL;
	if ((copy = strdup(path)) == NULL)
		return -ENOMEM;
	for (p = copy + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		c = *p;
		*p = '\0';
		if (mkdir(copy, mode) < 0 && errno != EEXIST) {
			r = -errno;
			goto out;
		}
		*p = c;
		if (c == '\0')
			break;
	}
out:
	free(copy);
	return r;
}
