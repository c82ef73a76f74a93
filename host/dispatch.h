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

#include <stdint.h>

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <hookd.h>

#include "fetch.h"
#include "log.h"
#include "pool.h"
#include "registry.h"

struct dispatch_env;
struct dispatch_call;

struct dispatch_reply {
	int status;             /* 200, or the error status */
	cJSON *output;          /* 200: the last step's output; ownership passes to
	                         * the done callback */
	const char *error;      /* otherwise: a one-line message */
	const char *hook;       /* the hook called */
	const char *plugin;     /* the plugin that failed or was running, or NULL */
	unsigned retry_after;   /* seconds to suggest in Retry-After, or 0 */
};

/* Called exactly once per call unless the call was aborted; may be called
 * before dispatch_call_start returns. All pointers in `reply` except
 * `output` are valid only during the callback. */
typedef void (*dispatch_done_fn)(void *arg, struct dispatch_reply *reply);

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

/* Free the dispatcher. Every call must have been freed (stats.live == 0)
 * and the pool destroyed or drained of this env's jobs. */
void dispatch_env_free(struct dispatch_env *env);

/* Start a call of `hook` with `input` (ownership taken in every case).
 * *out is set before any step runs (NULL once the call is answered, for
 * the caller's bookkeeping: clear your copy in the done callback). */
void dispatch_call_start(struct dispatch_env *env, const char *hook, cJSON *input,
			 dispatch_done_fn done, void *arg, struct dispatch_call **out);

/* The client is gone: cancel the call; its done callback will not run. */
void dispatch_call_abort(struct dispatch_call *call);

/* Answer every pending call with `status` and `msg` (shutdown). */
void dispatch_cancel_all(struct dispatch_env *env, int status, const char *msg);

/* Run job->done on this env's loop thread, soon (the same wake-up that
 * brings worker results back). Any thread; job is owned by the loop until
 * done runs. */
void dispatch_post(struct dispatch_env *env, struct pool_job *job);

/* True on this env's loop thread. */
bool dispatch_is_loop_thread(const struct dispatch_env *env);

/* Counters, readable from any thread. */
void dispatch_stats(const struct dispatch_env *env, struct dispatch_stats *st);

#endif
