/*
 * fetch -- outbound HTTP transfers of one event loop: what one request of
 * a plugin becomes (attempts, retries with backoff, the result).
 *
 *   fetch.c    transfers: admission through the plugin's limiter, one
 *              curl easy handle per attempt, retries with exponential
 *              backoff and jitter (Retry-After honoured), never past the
 *              call's deadline; the result as an SDK hookd_response
 *   curlev.c   the curl multi handle on the loop's event base
 *   limiter.c  per-plugin concurrency + token bucket, shared by the loops
 *   wake.c     the cross-loop wake-up (a slot granted by another loop)
 *
 * DNS runs on libcurl's threaded resolver and never blocks the loop; a
 * transfer stopped during its lookup does not wait for it
 * (CURLOPT_QUICK_EXIT).
 *
 * Invariants: everything here runs on the loop thread that owns the engine,
 * except the hand-over of a slot granted by another loop (limiter.h), which
 * goes through the engine's `granted` list under its lock and a wake-up. A
 * transfer's done() runs exactly once, on the loop, never inside the call
 * that started it. The SDK's view (ownership per call) is in hostapi.c.
 */
#ifndef HOOKD_FETCH_H
#define HOOKD_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <hookd.h>

#include "log.h"

#define FETCH_DEFAULT_MAX_RESPONSE (8u * 1024u * 1024u)

struct fetch_engine;
struct fetch_xfer;
struct limiter;

struct fetch_opts {
	uint32_t timeout_ms;     /* per attempt; 0: none besides the deadline */
	int64_t deadline_ns;     /* CLOCK_MONOTONIC; 0: none */
	uint32_t retries;
	uint32_t retry_base_ms;
	uint32_t retry_cap_ms;
	size_t max_response;
	bool follow_redirects;
};

typedef void (*fetch_done_fn)(struct fetch_xfer *x, void *arg);

struct fetch_stats {
	unsigned alive;   /* transfers not yet released */
	unsigned running; /* in the multi handle now */
	unsigned waiting; /* held back by a limiter */
	uint64_t started, finished;
};

/* Create the engine of `base` (the calling thread is its loop thread).
 * curl_global_init must have run. Returns 0 and *out (the caller owns it:
 * fetch_engine_free), or a negative errno. */
int fetch_engine_create(struct event_base *base, const struct log *log, struct fetch_engine **out);
/* Free the engine; every transfer must have been released or cancelled. */
void fetch_engine_free(struct fetch_engine *fe);
void fetch_engine_stats(const struct fetch_engine *fe, struct fetch_stats *st);

/* Start a transfer; everything in `req` (the current layout, whole:
 * hostapi.c reads a plugin's own layout into one) is copied, the caller
 * keeps owning req. `lim` may be NULL; it is borrowed and must outlive the
 * transfer.
 * Returns the transfer, whose `done(x, arg)` will run exactly once on the
 * loop (never inside this call), or NULL with *err = HOOKD_EINVAL (not an
 * http(s) URL, bad header) or HOOKD_ENOMEM. */
struct fetch_xfer *fetch_start(struct fetch_engine *fe, struct limiter *lim,
			       const hookd_request *req, const struct fetch_opts *opt,
			       fetch_done_fn done, void *arg, int *err);

/* The outcome, from done() until fetch_release(): owned by x, every
 * pointer in it valid until then. */
const hookd_response *fetch_response(const struct fetch_xfer *x);

/* Free a transfer whose done() has run (x is the caller's since done();
 * NULL is fine). */
void fetch_release(struct fetch_xfer *x);

/* Stop a transfer whose done() has not run, and free it; done() will not
 * run. Never blocks (not even on a DNS lookup in progress). */
void fetch_cancel(struct fetch_xfer *x);

#endif
