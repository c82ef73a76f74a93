/*
 * clock -- the monotonic clock every module times with (one definition:
 * eleven private copies of it had grown, two in one file).
 */
#ifndef HOOKD_CLOCK_H
#define HOOKD_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. Any thread. */
static inline int64_t clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
