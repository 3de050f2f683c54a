/* audit.c: being written */
