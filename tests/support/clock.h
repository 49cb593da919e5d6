/* The monotonic clock, in the units the tests count deadlines in. */
#ifndef KF_TEST_CLOCK_H
#define KF_TEST_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline double
kt_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int64_t
kt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
