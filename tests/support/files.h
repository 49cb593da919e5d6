/*
 * Files for tests: read a whole file (a log still being written, a
 * fixture, a config written by the test).
 */
#ifndef KT_FILES_H
#define KT_FILES_H

#include <stddef.h>

/* The whole file at path, NUL-terminated and malloc'd, its byte count in
 * *len when len is not NULL; NULL when it cannot be opened or memory runs
 * out. Reads until end of file, so a log being written gives what is
 * there now. */
char *kt_file_read(const char *path, size_t *len);

#endif
