/*
 * upstream -- a small HTTP server on loopback for the outbound-HTTP tests
 * and the fan-out benchmark. Runs its own libevent loop on its own thread.
 *
 *   GET /delay/MS        200 "ok" after MS milliseconds (a loop timer)
 *   GET /status/CODE     that status, body "status CODE"
 *   GET /flaky/KEY/N     503 (Retry-After: 0) for the first N requests of KEY, then 200
 *   GET /flaky_date/KEY/N/S  the same with "Retry-After: <HTTP-date S s from now>"
 *   GET /bytes/N         200 with N bytes of 'x'
 *   GET /reset           closes the connection without answering
 *   anything else        404
 *
 * It counts requests, requests in progress and their maximum, and
 * connections the client closed before the answer (noticed for delays of
 * 1000 ms or more only: watching costs two syscalls a request).
 */
#ifndef HOOKD_TEST_UPSTREAM_H
#define HOOKD_TEST_UPSTREAM_H

#include <stdint.h>

struct upstream;

struct upstream_stats {
	long requests;      /* requests received */
	long in_flight;     /* received and not yet answered */
	long max_in_flight; /* highest in_flight seen since the last reset */
	long closed_early;  /* clients that closed before their answer */
	long answered;
};

/* Start on 127.0.0.1:port (0: ephemeral). NULL on failure. */
struct upstream *upstream_start(uint16_t port);
uint16_t upstream_port(const struct upstream *u);
void upstream_stats(struct upstream *u, struct upstream_stats *st);
/* Zero the counters (not in_flight). */
void upstream_reset_stats(struct upstream *u);
/* Arrival times (ms, monotonic) of the last requests matching prefix, in
 * order; returns how many were written (at most max). */
int upstream_arrivals(struct upstream *u, const char *prefix, double *out, int max);
void upstream_stop(struct upstream *u);

#endif
