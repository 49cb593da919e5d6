/*
 * kubefand's log sinks: the kf_log_fn the daemon installs with
 * kf_log_set_sink(). One sink writes every line to one destination:
 *
 *   text lines   2026-12-03T16:00:00.123Z warning KF-WATCH-GONE message
 *   JSON lines   {"ts":"2026-12-03T16:00:00.123Z","level":"warning",
 *                 "id":"KF-WATCH-GONE","msg":"message"}   (one line)
 *
 * to stderr or a file (appended), or through syslog(3) (priority = the
 * level, text "KF-ID message"; the system logger adds time and host).
 * Timestamps are UTC with milliseconds.
 *
 * Before writing, every message passes a redaction guard (defence in
 * depth: the library already never logs credentials): the token after
 * "Bearer " and any run of 32 or more base64 characters that mixes upper
 * case, lower case and digits, or of 32 or more hex digits, becomes
 * "[REDACTED]". Control characters are escaped, so one call is one line.
 *
 * Threads: kfi_logsink_write may be called from any thread at once; lines
 * never interleave. kfi_logsink_reopen is safe at any time from a normal
 * thread (not from a signal handler): call it after SIGHUP from the
 * daemon's signal-waiting thread.
 */
#ifndef KF_BROKER_LOGSINK_H
#define KF_BROKER_LOGSINK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "kubefan/err.h"

typedef struct kfi_logsink kfi_logsink;

enum kfi_log_dest {
	KFI_LOG_STDERR = 0,
	KFI_LOG_FILE,
	KFI_LOG_SYSLOG,
};

enum kfi_log_format {
	KFI_LOG_TEXT = 0,
	KFI_LOG_JSON,
};

struct kfi_logsink_opts {
	enum kfi_log_dest dest;
	enum kfi_log_format format; /* stderr and file; syslog is text */
	const char *path;	    /* KFI_LOG_FILE: appended, created 0640 */
	const char *ident;	    /* syslog; NULL means "kubefand" */
	int facility;		    /* syslog; 0 means LOG_DAEMON */
	/* Tests: the clock (NULL means CLOCK_REALTIME). */
	void (*now)(struct timespec *ts);
};

/* KF_EIO (errbuf names the path and errno's text) when the file cannot be
 * opened; KF_EINVAL on a bad destination or format. */
kf_err kfi_logsink_alloc(const struct kfi_logsink_opts *opts, char *errbuf,
			 size_t errlen, kfi_logsink **out);

/* The kf_log_fn: kf_log_set_sink(kfi_logsink_write, sink, level). A line
 * that cannot be written is counted (kfi_logsink_failures), not retried. */
void kfi_logsink_write(void *sink, int level, const char *id, const char *msg);

/* Reopen the file by its path (after rotation); the old file stays in use
 * if that fails (KF_EIO, errbuf says why). A no-op for stderr and
 * syslog. */
kf_err kfi_logsink_reopen(kfi_logsink *s, char *errbuf, size_t errlen);

/* Lines that could not be written (or formatted) since alloc. */
uint64_t kfi_logsink_failures(kfi_logsink *s);

/* Close the file or the syslog connection and free. Uninstall the sink
 * (kf_log_set_sink(NULL, ...)) and stop the threads that log first. */
void kfi_logsink_free(kfi_logsink *s);

/* The redaction guard alone: a malloc'd copy of msg with secrets masked
 * (NULL when out of memory). */
char *kfi_log_redact(const char *msg);

#endif
