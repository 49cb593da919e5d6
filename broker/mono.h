/* Internal: the monotonic clock in milliseconds, and deadlines on it. */
#ifndef KF_BROKER_MONO_H
#define KF_BROKER_MONO_H

#include <stdint.h>
#include <time.h>

static inline int64_t
kfi_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* now + after_ms, saturated: a delay too large to add is "never" (an
 * unchecked sum would wrap into the past and fire at once). */
static inline int64_t
kfi_deadline_ms(int64_t now, int64_t after_ms)
{
	return after_ms > INT64_MAX - now ? INT64_MAX : now + after_ms;
}

#endif
