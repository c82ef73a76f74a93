/*
 * dispatch -- a hook call as a small state machine, transport-agnostic.
 *
 * A call pins the registry generation current when it starts, walks the
 * hook's chain step by step (a sync step on the worker pool, an async step
 * on this event loop), feeds each step's output to the next, enforces the
 * call's deadline with its own timer, and answers exactly once, on the loop
 * thread, however result, deadline, client abort and shutdown race.
 *
 * One dispatch_env per event loop. Everything here runs on that loop's
 * thread except what the pool runs on workers and the plugin-facing
 * functions that the SDK documents as callable from any thread.
 */
#ifndef HOOKD_DISPATCH_H
#define HOOKD_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <hookd.h>

#include "fetch.h"
#include "inbound.h"
#include "log.h"
#include "pool.h"
#include "registry.h"

struct dispatch_env;
struct dispatch_call;

/* How a call ended. Dispatch says what happened; the transport decides what
 * that means on its wire (http.c maps these to status codes). */
enum dispatch_outcome {
	DISPATCH_OK = 0,           /* output: the last step's output */
	DISPATCH_STEP_FAILED,      /* a plugin failed its step (plugin_status) */
	DISPATCH_NO_OUTPUT,        /* a plugin returned nothing and did not fail */
	DISPATCH_NO_HOOK,          /* no such hook in the current generation */
	DISPATCH_HOOK_UNAVAILABLE, /* the hook's chain cannot run (error says why) */
	DISPATCH_NOT_READY,        /* no generation loaded yet */
	DISPATCH_OVERLOADED,       /* the worker queue is full: retry later */
	DISPATCH_DEADLINE,         /* the call's deadline passed */
	DISPATCH_SHUTDOWN,         /* the host is shutting down */
	DISPATCH_NOMEM,            /* out of memory */
	DISPATCH_CRASHED,          /* an isolated plugin's process died running the step */
	DISPATCH_QUARANTINED,      /* the step's plugin is quarantined (crashed too often) */
	DISPATCH_REFUSED,          /* the step's plugin runs max_in_flight steps already */
	DISPATCH_OUTCOME_COUNT
};

/* A stable lower-case name ("ok", "step_failed", ...) for logs and counters. */
const char *dispatch_outcome_name(enum dispatch_outcome o);

/* The phases of a hook call (hooks.<name>.chain, on_error, after). */
enum dispatch_phase {
	DISPATCH_PHASE_CHAIN = 0, /* the steps: each output feeds the next */
	DISPATCH_PHASE_ON_ERROR,  /* the chain failed: handlers may replace the error */
	DISPATCH_PHASE_AFTER,     /* the reply is sent: observers */
};

const char *dispatch_phase_name(enum dispatch_phase p);

/* One step of a call as the access log sees it. */
struct dispatch_step_rec {
	const char *plugin;           /* the step's plugin (valid while the call's
	                               * generation is pinned: during the done callback) */
	int64_t started_ns;           /* CLOCK_MONOTONIC */
	int64_t duration_ns;          /* start to settle (or to the call's end) */
	enum dispatch_outcome outcome;/* how the step ended (the call's outcome when
	                               * the call ended first: deadline, shutdown) */
	bool ended;                   /* duration_ns and outcome are set */
	bool skipped;                 /* failed, and skipped (failure_mode open) */
};

/* Steps recorded per call (a chain longer than this records its first
 * DISPATCH_STEP_RECS steps and counts the others in steps_more). */
#define DISPATCH_STEP_RECS 8

struct dispatch_result {
	enum dispatch_outcome outcome;
	int plugin_status;      /* DISPATCH_STEP_FAILED: the status the plugin asked
	                         * for (400..599) */
	cJSON *output;          /* DISPATCH_OK: ownership passes to the done callback */
	size_t max_output;      /* DISPATCH_OK: the generation's max_output: a reply
	                         * printed from `output` must not be larger */
	const char *error;      /* otherwise: a one-line message */
	const char *hook;       /* the hook called */
	const char *plugin;     /* the plugin that failed or held the call (OK: the one
	                         * that produced the output), or NULL */
	uint64_t generation;    /* the generation the call ran on, 0 if none */
	int step;               /* index in the chain of `plugin`'s step, or -1 */
	bool queued;            /* DISPATCH_DEADLINE: the step was still waiting for
	                         * a worker (the plugin never ran) */
	unsigned hook_slot;     /* the hook's metrics slot (METRICS_UNKNOWN: no such hook) */
	const struct dispatch_step_rec *steps; /* the steps that started, in order
	                         * (NULL when none did); valid during the callback */
	unsigned nsteps;        /* entries in steps */
	unsigned steps_more;    /* steps started beyond DISPATCH_STEP_RECS */
	const struct reply *reply; /* DISPATCH_OK: what the steps set of the reply
	                         * (status, headers, raw body: reply.h), or NULL;
	                         * valid during the callback */
	bool recovered;         /* DISPATCH_OK: an on_error step replaced a failure */
	int sent_status;        /* set by the done callback: the status the client
	                         * got (the after phase reports it) */
};

/* The status a result means over HTTP, and the seconds of Retry-After to
 * suggest (0: none). */
int dispatch_result_status(const struct dispatch_result *r, unsigned *retry_after);

/* Called exactly once per call unless the call was aborted; may be called
 * before dispatch_call_start returns. All pointers in `res` except
 * `output` are valid only during the callback. */
typedef void (*dispatch_done_fn)(void *arg, struct dispatch_result *res);

struct dispatch_stats {
	unsigned pending;  /* calls not yet answered */
	unsigned live;     /* calls not yet freed (a plugin still holds a step) */
	uint64_t started, answered_ok, answered_err;
};

/* The table of host services handed to every plugin (static, immutable). */
const hookd_host_api *dispatch_host_api(void);

/* Create the dispatcher of the loop `base`; the calling thread is the loop
 * thread. Results from `pool` come back through an eventfd on `base`;
 * async plugins' outbound HTTP runs on `fetch` (the same loop's engine).
 * Returns 0 or a negative errno. */
int dispatch_env_create(struct event_base *base, struct pool *pool, struct registry *reg,
			struct fetch_engine *fetch, const struct log *log,
			struct dispatch_env **out);

/* Time plugin code on this loop: code that held it longer than warn_ms
 * (0: not timed) is logged when it returns, and `w` (may be NULL) names
 * code that holds it still. Loop thread, before any call starts. */
struct watchdog;
void dispatch_env_watch(struct dispatch_env *env, struct watchdog *w, unsigned loop_id,
			unsigned warn_ms);

/* Count this loop's plugin steps, loop time, queue waits and outbound
 * requests into `shard` (metrics.h; NULL: not counted). Loop thread,
 * before any call starts. */
struct metrics_shard;
void dispatch_env_metrics(struct dispatch_env *env, struct metrics_shard *shard);

/* Free the dispatcher. Every call must have been freed (stats.live == 0)
 * and the pool destroyed or drained of this env's jobs. */
void dispatch_env_free(struct dispatch_env *env);

/* Start a call of `hook` with `input` and the request it came with, `in`
 * (NULL: none; both taken in every case). *out is set before any step
 * runs (NULL once the call is answered, for the caller's bookkeeping: clear
 * your copy in the done callback). When the hook has `after` observers,
 * they run once the done callback has returned, as a call of their own. */
void dispatch_call_start(struct dispatch_env *env, const char *hook, cJSON *input,
			 struct inbound *in, dispatch_done_fn done, void *arg,
			 struct dispatch_call **out);

/* The client is gone: cancel the call; its done callback will not run. */
void dispatch_call_abort(struct dispatch_call *call);

/* End every pending call with DISPATCH_SHUTDOWN. */
void dispatch_cancel_all(struct dispatch_env *env);

/* Run job->done on this env's loop thread, soon (the same wake-up that
 * brings worker results back). Any thread; job is owned by the loop until
 * done runs. */
void dispatch_post(struct dispatch_env *env, struct pool_job *job);

/* True on this env's loop thread. */
bool dispatch_is_loop_thread(const struct dispatch_env *env);

/* Counters, readable from any thread. */
void dispatch_stats(const struct dispatch_env *env, struct dispatch_stats *st);

#endif
