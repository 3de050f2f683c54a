/* cmd-cat.c: being written */
