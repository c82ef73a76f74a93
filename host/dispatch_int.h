/*
 * dispatch_int -- the structures shared by dispatch.c (the call state
 * machine) and hostapi.c (the services plugins call). Not for other
 * modules.
 *
 * Lifetimes (all counts touched on the loop thread only):
 *   dispatch_call: one reference while unanswered, one per step handle.
 *     Freed (generation released) at zero.
 *   dispatch_step (the SDK's hookd_call): one reference held by the plugin until it
 *     finishes the step (sync: the pool job until done() runs), one per
 *     armed timer, and temporary ones around callbacks into the plugin.
 *     Holds one reference to its call.
 */
#ifndef HOOKD_DISPATCH_INT_H
#define HOOKD_DISPATCH_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <sys/queue.h>

#include <event2/event_struct.h>

#include "blame.h"
#include "dispatch.h"
#include "fetch.h"
#include "isolate.h"
#include "metrics.h"
#include "reply.h"
#include "wake.h"
#include "watchdog.h"

struct dispatch_env {
	struct event_base *base;
	struct pool *pool;
	struct registry *reg;
	struct fetch_engine *fetch;   /* outbound HTTP of this loop */
	const struct log *log;
	pthread_t loop_thread;
	struct pool_sink sink;        /* worker results, off-loop completions */
	struct wake wake;             /* behind the sink's notify */
	TAILQ_HEAD(, dispatch_call) calls; /* unanswered calls */
	struct watch_slot watch;      /* this loop, for the watchdog */
	struct watchdog *watchdog;    /* NULL: not watched */
	unsigned loop_warn_ms;        /* 0: plugin code on the loop is not logged */
	struct metrics_shard *metrics; /* this loop's counters, or NULL */
	/* written by the loop thread only; read by any (GET /health, drain) */
	atomic_uint pending, live;
	atomic_ullong started, answered_ok, answered_err;
};

/*
 * The life of a call, written once (call_enter() in dispatch.c asserts
 * every transition against this table):
 *
 *   NEW ──hook found──▶ IDLE ◀──step ok── IN_STEP
 *    │                   │ └──next step──▶ │
 *    │                   ▼                 ▼
 *    └──error──────▶ ANSWERED ◀── chain done, step failed, deadline, shutdown
 *                                          │
 *                     ABORTED ◀── client went away (no answer is sent)
 *
 * ANSWERED and ABORTED are final: the call is freed when the last step
 * handle lets go (a plugin may still hold one after the answer).
 */
enum call_state {
	CALL_NEW,      /* created; hook not resolved, no deadline yet */
	CALL_IDLE,     /* between steps: the call owns `value`; deadline armed */
	CALL_IN_STEP,  /* step `cur` holds the value; deadline armed */
	CALL_ANSWERED, /* the done callback has run */
	CALL_ABORTED,  /* ended without an answer (client gone) */
	CALL_STATE_COUNT
};

/* Whether a sync step's plugin ran: the worker (QUEUED -> ENTERED) and a
 * cancel on the loop (QUEUED -> SKIPPED) race by compare-and-swap, so "the
 * plugin never ran" is exact, not a guess. */
enum step_phase { STEP_QUEUED, STEP_ENTERED, STEP_SKIPPED };

/* ON_ERROR: the chain's failure, answered when no handler replaces it. */
struct dispatch_saved {
	enum dispatch_outcome outcome;
	int plugin_status;
	int step;
	bool queued;
	char *error;                  /* owned */
	const char *plugin;           /* the generation's (pinned) */
};

struct dispatch_call {
	struct dispatch_env *env;
	struct generation *gen;       /* pinned */
	const struct hook_entry *hook;
	enum dispatch_phase phase;
	struct plugin *const *plan;   /* the steps of this phase (the hook's chain,
	                               * on_error or after) */
	size_t nplan;
	uint32_t timeout_ms;          /* this phase's deadline */
	struct inbound *in;           /* the request (one reference), or NULL */
	struct reply *reply;          /* what succeeded steps set, or NULL */
	cJSON *orig;                  /* a copy of the input, when the hook has
	                               * on_error or after steps */
	cJSON *summary;               /* ON_ERROR, AFTER: every step gets a copy */
	struct dispatch_saved *saved; /* ON_ERROR */
	int64_t t0_ns;                /* the first phase's start */
	enum call_state state;
	size_t step;                  /* index of the step to run or running */
	cJSON *value;                 /* owned while no step holds it */
	struct dispatch_step *cur;       /* IN_STEP: the step in flight */
	struct event deadline;        /* assigned on NEW -> IDLE */
	int64_t deadline_ns;          /* CLOCK_MONOTONIC */
	unsigned refs;
	bool walking;                 /* run_steps() is on the stack (trampoline) */
	dispatch_done_fn done;
	void *done_arg;
	struct dispatch_call **out;   /* caller's copy of the pointer, cleared on answer */
	struct dispatch_step_rec recs[DISPATCH_STEP_RECS]; /* steps started, for the log */
	unsigned nrecs, recs_more;
	TAILQ_ENTRY(dispatch_call) link; /* env->calls, until answered */
};

/*
 * One step of a call: one plugin's turn in the chain. The SDK calls it a
 * `hookd_call` (from the plugin's side, its step is the call it serves);
 * the host never defines struct hookd_call: a handle is a dispatch_step
 * converted by step_handle() / handle_step().
 */
struct dispatch_step {
	struct pool_job job;          /* sync: the pool job; async: off-loop finish */
	struct dispatch_call *call;
	struct plugin *plugin;
	size_t index;                 /* position in the hook's chain */
	int rec;                      /* index in call->recs, or -1 (not recorded) */
	int64_t started_ns;           /* when the step was started */
	struct blame_frame frame;     /* sync: filled on the loop, pushed by the worker
	                               * (which then reads nothing of the call) */
	bool stuck;                   /* sync: its worker was replaced (loop thread) */
	bool counted;                 /* its end is counted in metrics (or must not be) */
	bool held_armed;              /* async: held_ev watches a cancelled step */
	bool held_counted;            /* async: counted in plugin->held_calls */
	bool in_flight;               /* counted in plugin->in_flight (max_in_flight) */
	struct event held_ev;         /* fires if the plugin never finishes it */
	cJSON *input;                 /* lent by the call */
	cJSON *output;
	int fail_status;              /* 0: not failed */
	char *fail_msg;
	bool host_failed;             /* the host failed the step: host_outcome, fail_msg */
	enum dispatch_outcome host_outcome;
	cJSON *open_input;            /* fail-open last step: the input to answer with if
	                               * its deadline passes */
	struct isolate_req iso;       /* isolated plugin: the request to its process */
	struct reply *reply;          /* what the plugin set of the reply, or NULL
	                               * (written by the thread running the step) */
	int64_t deadline_ns;
	atomic_int cancelled;         /* the host gave up on it */
	atomic_int phase;             /* sync: enum step_phase, settled by CAS */
	atomic_int finished;          /* the plugin finished it */
	unsigned refs;
	hookd_cancel_fn cancel_fn;
	void *cancel_arg;
	TAILQ_HEAD(, hookd_timer) timers; /* armed, not yet called back */
	TAILQ_HEAD(, api_fetch) fetches;  /* outbound requests not yet called back */
};

struct hookd_timer {
	struct event ev;
	struct dispatch_step *step;
	hookd_timer_fn fn;
	void *arg;
	int status;                   /* what the callback will be told */
	bool firing;
	TAILQ_ENTRY(hookd_timer) link; /* the step's timers, until called back */
};

static inline hookd_call *step_handle(struct dispatch_step *s)
{
	return (hookd_call *)(void *)s;
}

static inline struct dispatch_step *handle_step(const hookd_call *h)
{
	return (struct dispatch_step *)(void *)(uintptr_t)h;
}

/* hostapi.c -> dispatch.c */
bool dispatch_on_loop(const struct dispatch_env *env);
void dispatch_step_ref(struct dispatch_step *s);
void dispatch_step_unref(struct dispatch_step *s);
/* The plugin finished async step `s` (complete or fail already recorded
 * in it). Loop thread: settles now; other threads: posts to the loop. */
void dispatch_step_finished(struct dispatch_step *s);
/* The step is over (finished or cancelled): make every armed timer and
 * every outbound request of `s` call back soon with HOOKD_ECANCELED
 * (requests are stopped and freed now). */
void dispatch_step_cancel_pending(struct dispatch_step *s);

/* The loop thread enters plugin code (f filled in but for the timing) /
 * leaves it: blames it (blame.h), shows it to the watchdog, and logs code
 * that held the loop longer than loop_warn_ms. */
void dispatch_plugin_enter(struct dispatch_env *env, struct blame_frame *f);
void dispatch_plugin_leave(struct dispatch_env *env, struct blame_frame *f);

/* hostapi.c: the outbound-request part of dispatch_step_cancel_pending. */
void hostapi_cancel_fetches(struct dispatch_step *s);
int64_t dispatch_now_ns(void);

#endif
