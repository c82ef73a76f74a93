/*
 * status -- what the daemon tells operators about itself beyond counters:
 * the outcome of the last reload (GET /health "last_reload", /metrics,
 * `hookd -s reload`) and readiness (GET /ready).
 *
 * A `struct status` is owned by main; the reload outcome is written by
 * whoever ends a reload (the loader thread on failure, reactor 0's loop on
 * success) and read by any loop: one mutex, taken once per reload and once
 * per read (never on a call's path).
 */
#ifndef HOOKD_STATUS_H
#define HOOKD_STATUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "registry.h"

#define STATUS_ERRORS_MAX 2048

/* The outcome of the last load: the start-up one, then each reload. */
struct status_reload {
	uint64_t seq;          /* loads finished: 1 after start-up, +1 per reload */
	uint64_t generation;   /* serving once it ended */
	bool ok;               /* a new generation was made current */
	double time;           /* when it ended (Unix time, seconds) */
	uint64_t started_us;   /* when it started (CLOCK_MONOTONIC, microseconds) */
	uint64_t ok_total;     /* reloads that succeeded (start-up not counted) */
	uint64_t failed_total; /* reloads that failed */
	unsigned rejected;     /* files the loaded generation rejected */
	/* why it failed, or (ok) the rejected files: "file: reason; ..." */
	char errors[STATUS_ERRORS_MAX];
};

struct status {
	pthread_mutex_t mu;
	struct status_reload last;
	uint64_t begun_us;     /* the load under way started then */
};

/* Returns 0 or a negative errno. */
int status_init(struct status *st);
void status_destroy(struct status *st);

/* Monotonic microseconds (CLOCK_MONOTONIC: the clock systemd's
 * MONOTONIC_USEC and `hookd -s reload` use). */
uint64_t status_now_us(void);

/* A load begins (one at a time). Any thread. */
void status_load_begin(struct status *st);

/* Record the load under way as ended. ok: g (borrowed) is now current;
 * initial: the start-up load (not counted as a reload). Failed: `err` says
 * why and generation `current` (0: none) is still served. Any thread. */
void status_load_ok(struct status *st, const struct generation *g, bool initial);
void status_load_failed(struct status *st, uint64_t current, const char *err);

/* A copy of the last outcome. Any thread. */
void status_last(struct status *st, struct status_reload *out);

/* Add "last_reload": {...} to o. Any thread. */
void status_describe_reload(struct status *st, cJSON *o);

/* Can every hook of g run? Returns true, or false with one string per
 * reason appended to `reasons` (may be NULL): no generation, no plugin
 * loaded, a hook whose chain names a plugin that is not loaded, a chain
 * step whose plugin is quarantined. Any thread; g borrowed (may be NULL). */
bool status_hooks_ready(const struct generation *g, cJSON *reasons);

#endif
