/*
 * Logging. The library never writes to stderr or anywhere else on its own:
 * every line goes to the one sink the program installs, or nowhere. Levels
 * are syslog's. Each line has a stable message id ("KF-WATCH-GONE") that
 * operators can alert on; ids are listed in docs/operations.md.
 *
 * Per-event work is counted, not logged. Tokens and keys are never logged.
 * The sink may be called from any kubefan thread, concurrently; it must be
 * thread-safe and must not call back into kubefan.
 */
#ifndef KUBEFAN_LOG_H
#define KUBEFAN_LOG_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

enum kf_log_level {
	KF_LOG_ERR = 3,
	KF_LOG_WARNING = 4,
	KF_LOG_NOTICE = 5,
	KF_LOG_INFO = 6,
	KF_LOG_DEBUG = 7,
};

typedef void (*kf_log_fn)(void *arg, int level, const char *id,
			  const char *msg);

/* Install the sink (NULL drops everything) and the most verbose level
 * passed to it. Not synchronised with lines being logged: call it before
 * starting watchers, or accept that a line in flight may use the old sink. */
KF_API void kf_log_set_sink(kf_log_fn fn, void *arg, int max_level);

/* The text name of a level ("err", "warning", ...). */
KF_API const char *kf_log_level_name(int level);

#ifdef __cplusplus
}
#endif

#endif
