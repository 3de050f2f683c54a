/* cmd-info.c: being written */
