/* The library's one log sink, chosen by the program. */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static kf_log_fn log_fn;
static void *log_arg;
static int log_max = KF_LOG_INFO;

void
kf_log_set_sink(kf_log_fn fn, void *arg, int max_level)
{
	log_arg = arg;
	log_max = max_level;
	__atomic_store_n(&log_fn, fn, __ATOMIC_RELEASE);
}

bool
kfi_log_enabled(int level)
{
	return __atomic_load_n(&log_fn, __ATOMIC_ACQUIRE) != NULL &&
	       level <= log_max;
}

void
kfi_log_emit(int level, const char *id, const char *fmt, ...)
{
	kf_log_fn fn = __atomic_load_n(&log_fn, __ATOMIC_ACQUIRE);
	char msg[1024];
	va_list ap;

	if (fn == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fn(log_arg, level, id, msg);
}

const char *
kf_log_level_name(int level)
{
	switch (level) {
	case KF_LOG_ERR:
		return "err";
	case KF_LOG_WARNING:
		return "warning";
	case KF_LOG_NOTICE:
		return "notice";
	case KF_LOG_INFO:
		return "info";
	case KF_LOG_DEBUG:
		return "debug";
	default:
		return level < KF_LOG_ERR ? "crit" : "debug";
	}
}
