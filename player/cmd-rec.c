/* cmd-rec.c: being written */
