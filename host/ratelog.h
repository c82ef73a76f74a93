/*
 * ratelog -- a token bucket for log lines: at most `rate` lines a second
 * with bursts of `burst`, and a count of the lines it held back, so that a
 * storm of failing calls cannot flood the disk and the operator still
 * learns how many were not written. One per loop (no lock): only its
 * owner's thread touches it. Pure: the caller passes the clock.
 */
#ifndef HOOKD_RATELOG_H
#define HOOKD_RATELOG_H

#include <stdbool.h>
#include <stdint.h>

struct ratelog {
	double rate, burst, tokens;
	int64_t last_ns;      /* when tokens was last refilled */
	unsigned suppressed;  /* lines held back since the last ratelog_flush */
};

/* A full bucket. */
void ratelog_init(struct ratelog *rl, double rate, double burst);

/* May a line be written at now_ns (monotonic)? False: count it as
 * suppressed. */
bool ratelog_take(struct ratelog *rl, int64_t now_ns);

/* Lines held back since the last call (then 0). */
unsigned ratelog_flush(struct ratelog *rl);

#endif
