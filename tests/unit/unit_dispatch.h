/*
 * unit_dispatch -- drive dispatch and the host services on a bare
 * event_base (no HTTP): a plugin folder and loader (unit.h), a registry, a
 * worker pool and one dispatch_env on a fresh base owned by the test's
 * thread, which is the loop thread. Calls are started with ud_start and
 * their answer is copied into a struct ud_call by the done callback.
 *
 * Every loop run is bounded (UD_LIMIT_MS, a safety net against hangs, not a
 * timing assertion): a 10 ms tick keeps EVLOOP_ONCE from blocking forever.
 *
 * No evthread_use_pthreads(): like the daemon, dispatch never touches the
 * base from another thread (workers and plugin threads post through the
 * env's eventfd sink), so the tests run the base the way hookd does.
 */
#ifndef HOOKD_TEST_UNIT_DISPATCH_H
#define HOOKD_TEST_UNIT_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "../../host/dispatch.h"
#include "../../host/registry.h"
#include "unit.h"

#define UD_LIMIT_MS 20000

struct ud {
	struct u_env u;
	struct event_base *base;
	struct event *tick;
	struct pool *pool;
	struct registry reg;
	struct dispatch_env *env;
	bool in_start;    /* inside dispatch_call_start */
	int sent_status;  /* what done callbacks report as sent (res->sent_status,
	                   * the after phase's "status"); 0: dispatch_result_status */
};

/* One call, and its answer as the done callback saw it (copied). */
struct ud_call {
	struct ud *d;
	struct dispatch_call *handle; /* dispatch_call_start's *out */
	int ndone;                    /* times the done callback ran */
	bool on_loop;                 /* it ran on the loop thread */
	bool during_start;            /* it ran inside dispatch_call_start */
	bool handle_cleared;          /* *out was NULL when it ran */
	enum dispatch_outcome outcome;
	int plugin_status;
	char error[512];
	char hook[128];
	char plugin[128];             /* "" when res->plugin was NULL */
	bool has_plugin;
	uint64_t generation;
	int step;
	bool queued;
	cJSON *output;                /* owned; freed by ud_call_clear */
	int64_t done_ns;              /* CLOCK_MONOTONIC when it ran */
	char steps[512];              /* res->steps: "plugin:outcome[:skipped],..." */
	unsigned nsteps, steps_more;
	bool steps_timed;             /* every step has a duration >= 0 */
	bool recovered;               /* res->recovered */
	bool has_reply;               /* res->reply was not NULL */
	int reply_status;             /* res->reply->status */
	char reply_headers[512];      /* res->reply's headers: "Name: value\n"... */
};

/* Temp dirs, loader, registry (empty), base, pool, dispatch env. */
void ud_init(struct ud *d, unsigned workers, unsigned queue);
/* Wait until every call is freed (asserts), destroy the pool, the env, the
 * base, the registry (plugins' fini) and the temp dirs. No-op if already
 * done or never initialised. For a suite's .fini (cleanup after a failed
 * test): an assertion there does not fail the test (Criterion 2.4.1). */
void ud_fini(struct ud *d);
/* The last statement of every test: ud_fini, then (ASan builds) fail the
 * test if LeakSanitizer finds anything the test left unreachable. */
void ud_end(struct ud *d);

/* Install build product `rel` ("plugins/echo.so") into the plugin folder. */
void ud_install(struct ud *d, const char *rel, const char *name);
/* Scan the folder (reusing the current generation's unchanged plugins),
 * build generation `id` with config members `members` (see u_env_config;
 * ' stands for "), make it current. */
void ud_load(struct ud *d, const char *members, uint64_t id);

/* Start a call of `hook` with the JSON text `input` (' stands for "). */
void ud_start(struct ud *d, const char *hook, const char *input, struct ud_call *c);
/* The same with the request `in` (taken; NULL: none). */
void ud_start_in(struct ud *d, const char *hook, const char *input, struct inbound *in,
		 struct ud_call *c);
void ud_call_clear(struct ud_call *c);

/* Run the loop until cond(arg) or UD_LIMIT_MS; returns cond(arg). */
bool ud_run_until(struct ud *d, bool (*cond)(void *arg), void *arg);
/* Run the loop for about `ms` (never asserts on time). */
void ud_run_for(struct ud *d, long ms);
/* Run until the call is answered; asserts it is, exactly once. */
void ud_wait(struct ud_call *c);
/* Run until every call is freed (stats.live == 0); asserts. */
void ud_wait_idle(struct ud *d);

struct dispatch_stats ud_stats(struct ud *d);
/* The plugin at `step` of `hook` in the current generation (borrowed: the
 * generation keeps it). */
struct plugin *ud_plugin(struct ud *d, const char *hook, size_t step);
/* The log so far (caller frees) and how often `needle` occurs in it. */
char *ud_log(struct ud *d);
size_t ud_log_count(struct ud *d, const char *needle);
/* A path inside the test's temp dir. */
void ud_path(struct ud *d, char *out, size_t len, const char *name);
bool ud_exists(const char *path);
int64_t ud_now_ns(void);
void ud_sleep_ms(long ms);
/* A member of the output object (asserts it is a number). */
double ud_out_num(const struct ud_call *c, const char *path1, const char *path2);

#endif
