/*
 * Files for tests: read a whole file (a log still being written, a
 * fixture, a config written by the test), and temporary folders that a
 * test which passed removes and a test which failed leaves for debugging.
 */
#ifndef KT_FILES_H
#define KT_FILES_H

#include <stddef.h>

/* The whole file at path, NUL-terminated and malloc'd, its byte count in
 * *len when len is not NULL; NULL when it cannot be opened or memory runs
 * out. Reads until end of file, so a log being written gives what is
 * there now. */
char *kt_file_read(const char *path, size_t *len);

/*
 * Temporary folders. kt_tmpdir_make makes a fresh /tmp/PREFIX-XXXXXX and
 * remembers it; kt_tmpdir_remove removes a folder with all it holds and
 * forgets it. A test calls kt_tmpdir_remove at the end of its body: a
 * failed assertion ends the body early, so only a test that passed
 * removes its folder, and one that failed keeps its logs, configs and
 * sockets. kt_tmpdir_report_kept, from the test's or the suite's .fini,
 * names on stderr every folder still remembered then, the ones a failure
 * kept. No Criterion here: the caller asserts on the results. One test
 * thread uses them; the table of folders is not locked.
 */

/* 0 with the folder's path in buf, or -1 with errno set (buf too small:
 * ENAMETOOLONG). */
int kt_tmpdir_make(const char *prefix, char *buf, size_t len);

/* Remove path and everything under it (symbolic links are removed, not
 * followed) and forget it; 0, or -1 with errno set when something could
 * not be removed (the folder is remembered then). */
int kt_tmpdir_remove(const char *path);

/* "kept for debugging: PATH" on stderr for every folder made and not
 * removed; forgets them. */
void kt_tmpdir_report_kept(void);

#endif
