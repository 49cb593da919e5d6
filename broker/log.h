/*
 * Internal logging: kfi_log() formats only when the level is enabled and a
 * sink is installed, so a disabled line costs one load and a compare.
 */
#ifndef KF_BROKER_LOG_H
#define KF_BROKER_LOG_H

#include <stdbool.h>

#include "kubefan/log.h"

bool kfi_log_enabled(int level);
void kfi_log_emit(int level, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define kfi_log(level, id, ...)                                                \
	do {                                                                   \
		if (kfi_log_enabled(level))                                    \
			kfi_log_emit((level), (id), __VA_ARGS__);              \
	} while (0)

#endif
