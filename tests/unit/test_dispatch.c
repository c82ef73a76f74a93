/*
 * dispatch: the call state machine on a bare event_base (no HTTP). Chains
 * of sync (worker pool) and async (loop) steps, every outcome, deadline
 * while running vs while queued, abort, shutdown, races between a result
 * and the end of the call, the generation a held step pins, and counters.
 *
 * Fixtures: plugins/{echo,echo_async,tag,tag_async,fail}.so and
 * tests/fixtures/{null_output,hang_async,u_probe,u_async,u_thread}.so. A
 * plugin exports one symbol, so what a test must see of a plugin's inside
 * goes through a file (u_probe's "mark": one line per entry), the log, or
 * the output. Timing only ever bounds a loop (UD_LIMIT_MS) or gives a lower
 * bound: nothing here fails because the machine is slow.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../host/dispatch.h"
#include "../../host/plugin.h"
#include "../../host/pool.h"
#include "unit_dispatch.h"

static struct ud D;

static void teardown(void)
{
	ud_fini(&D);
}

TestSuite(dispatch, .fini = teardown, .timeout = 60);

#define LABELS "'plugins': {'tag': {'label': 'S'}, 'tag_async': {'label': 'A'}},"

static void install_tags(void)
{
	ud_install(&D, "plugins/tag.so", "tag.so");
	ud_install(&D, "plugins/tag_async.so", "tag_async.so");
	ud_install(&D, "plugins/echo.so", "echo.so");
	ud_install(&D, "plugins/echo_async.so", "echo_async.so");
}

/* The output's "trace" is exactly the NULL-terminated labels. */
static void expect_trace(const struct ud_call *c, const char *const *want)
{
	const cJSON *tr = cJSON_GetObjectItemCaseSensitive(c->output, "trace");
	int n = 0;

	cr_assert(cJSON_IsArray(tr), "no trace in the output");
	for (; want[n]; n++) {
		const cJSON *e = cJSON_GetArrayItem(tr, n);
		cr_assert(cJSON_IsString(e), "trace[%d] missing", n);
		cr_assert_str_eq(e->valuestring, want[n], "trace[%d]", n);
	}
	cr_assert_eq(cJSON_GetArraySize(tr), n);
}

#define TRACE(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_ok(const struct ud_call *c, const char *hook)
{
	cr_assert_eq(c->ndone, 1);
	cr_assert_eq(c->outcome, DISPATCH_OK, "%s: %s", dispatch_outcome_name(c->outcome),
		     c->error);
	cr_assert_str_eq(c->hook, hook);
	cr_assert_not_null(c->output);
	/* an OK result names the plugin whose output it is: the last step */
	cr_assert(c->has_plugin);
	cr_assert_geq(c->step, 0);
	cr_assert(c->on_loop);
	cr_assert(c->handle_cleared, "*out still points at the answered call");
}

/* ---- chains ---------------------------------------------------------- */

Test(dispatch, a_sync_chain_feeds_each_output_to_the_next_step)
{
	struct ud_call c;
	struct dispatch_stats st;

	ud_init(&D, 2, 8);
	install_tags();
	ud_load(&D, LABELS "'hooks': {'s': {'chain': ['tag', 'echo', 'tag', 'tag']}},", 1);
	ud_start(&D, "s", "{'x': 7, 'trace': ['in']}", &c);
	cr_assert_eq(c.ndone, 0, "a sync step answers through the pool, not inside start");
	cr_assert_not_null(c.handle);
	st = ud_stats(&D);
	cr_assert_eq(st.pending, 1);
	cr_assert_eq(st.live, 1);
	ud_wait(&c);
	expect_ok(&c, "s");
	cr_assert_not(c.during_start);
	cr_assert_eq(c.generation, 1);
	expect_trace(&c, TRACE("in", "S", "S", "S"));
	cr_assert_eq(ud_out_num(&c, "x", NULL), 7, "the rest of the input travels along");
	ud_call_clear(&c);
	ud_wait_idle(&D);
	st = ud_stats(&D);
	cr_assert_eq(st.started, 1);
	cr_assert_eq(st.answered_ok, 1);
	cr_assert_eq(st.answered_err, 0);
	cr_assert_eq(st.pending, 0);
	ud_end(&D);
}

Test(dispatch, an_async_chain_that_completes_at_once_answers_inside_call_start)
{
	struct ud_call c;

	ud_init(&D, 1, 1);
	install_tags();
	ud_load(&D, LABELS "'hooks': {'a': {'chain': ['tag_async', 'echo_async', 'tag_async']}},",
		1);
	ud_start(&D, "a", "{}", &c);
	cr_assert_eq(c.ndone, 1, "every step completed inside call_async");
	cr_assert(c.during_start);
	cr_assert_null(c.handle, "*out is cleared when the call is answered");
	expect_ok(&c, "a");
	expect_trace(&c, TRACE("A", "A"));
	ud_call_clear(&c);
	ud_wait_idle(&D);
	ud_end(&D);
}

Test(dispatch, a_long_async_chain_does_not_recurse)
{
	/* run_steps is a trampoline: steps completing inside call_async run
	 * one after the other from the same frame, never nested. u_async
	 * records its stack depth at the first and the last of 402 steps. */
	static char members[8000];
	size_t n = 0;
	struct ud_call c;
	const cJSON *sp;
	double d;

	ud_init(&D, 1, 1);
	install_tags();
	ud_install(&D, "fixtures/u_async.so", "u_async.so");
	n += (size_t)snprintf(members + n, sizeof(members) - n, "'hooks': {'long': {'chain': ['u_async'");
	for (int i = 0; i < 400; i++)
		n += (size_t)snprintf(members + n, sizeof(members) - n, ",'echo_async'");
	cr_assert_lt(n, sizeof(members) - 40);
	snprintf(members + n, sizeof(members) - n, ",'u_async']}},");
	ud_load(&D, members, 1);
	ud_start(&D, "long", "{'mode': 'sp'}", &c);
	cr_assert_eq(c.ndone, 1);
	expect_ok(&c, "long");
	sp = cJSON_GetObjectItemCaseSensitive(c.output, "sp");
	cr_assert_eq(cJSON_GetArraySize(sp), 2);
	d = cJSON_GetArrayItem(sp, 0)->valuedouble - cJSON_GetArrayItem(sp, 1)->valuedouble;
	cr_assert_lt(d < 0 ? -d : d, 1024.0, "the last step ran %.0f bytes deeper", d);
	ud_call_clear(&c);
	ud_end(&D);
}

Test(dispatch, a_mixed_chain_hops_between_pool_loop_and_plugin_threads_in_order)
{
	struct ud_call c;
	const cJSON *th;

	ud_init(&D, 2, 8);
	install_tags();
	ud_install(&D, "fixtures/u_thread.so", "u_thread.so");
	ud_load(&D,
		LABELS "'hooks': {'m': {'chain': ['tag', 'tag_async', 'u_thread', 'tag', "
		       "'tag_async', 'echo', 'tag']}},",
		1);
	ud_start(&D, "m", "{'trace': []}", &c);
	ud_wait(&c);
	expect_ok(&c, "m");
	cr_assert_not(c.during_start);
	expect_trace(&c, TRACE("S", "A", "S", "A", "S"));
	th = cJSON_GetObjectItemCaseSensitive(c.output, "thread");
	cr_assert(cJSON_IsObject(th), "u_thread's step ran on its input and fed the next");
	ud_call_clear(&c);
	ud_wait_idle(&D);
	ud_end(&D);
}

/* ---- outcomes -------------------------------------------------------- */

Test(dispatch, a_failing_step_reports_its_status_plugin_and_index)
{
	struct ud_call c;

	ud_init(&D, 2, 8);
	install_tags();
	ud_install(&D, "plugins/fail.so", "fail.so");
	ud_load(&D, LABELS "'hooks': {'f': {'chain': ['tag', 'tag_async', 'fail', 'tag']}},", 1);
	ud_start(&D, "f", "{'status': 418, 'message': 'no tea'}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_STEP_FAILED, "%s", dispatch_outcome_name(c.outcome));
	cr_assert_eq(c.plugin_status, 418);
	cr_assert_str_eq(c.plugin, "fail");
	cr_assert_eq(c.step, 2);
	cr_assert_str_eq(c.error, "no tea");
	cr_assert_str_eq(c.hook, "f");
	cr_assert_eq(c.generation, 1);
	cr_assert_null(c.output);
	cr_assert_not(c.queued);

	/* a status outside 400..599 becomes 500 */
	ud_start(&D, "fail", "{'status': 200}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_STEP_FAILED);
	cr_assert_eq(c.plugin_status, 500);
	cr_assert_eq(c.step, 0);
	cr_assert_str_eq(c.error, "rejected");
	ud_wait_idle(&D);
	cr_assert_eq(ud_stats(&D).answered_err, 2);
	ud_end(&D);
}

Test(dispatch, a_step_that_returns_nothing_gives_no_output)
{
	struct ud_call c;

	ud_init(&D, 2, 8);
	install_tags();
	ud_install(&D, "fixtures/null_output.so", "null_output.so");
	ud_install(&D, "fixtures/u_async.so", "u_async.so");
	ud_load(&D, LABELS "'hooks': {'n': {'chain': ['tag', 'null_output', 'tag']}},", 1);
	ud_start(&D, "n", "{}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_NO_OUTPUT, "%s", dispatch_outcome_name(c.outcome));
	cr_assert_str_eq(c.plugin, "null_output");
	cr_assert_eq(c.step, 1);
	cr_assert_null(c.output);
	cr_assert_not_null(strstr(c.error, "null_output"), "%s", c.error);

	ud_start(&D, "u_async", "{'mode': 'null'}", &c);
	cr_assert_eq(c.ndone, 1);
	cr_assert_eq(c.outcome, DISPATCH_NO_OUTPUT, "complete(NULL) from an async plugin");
	cr_assert_str_eq(c.plugin, "u_async");
	cr_assert_eq(c.step, 0);
	ud_wait_idle(&D);
	ud_end(&D);
}

Test(dispatch, an_unknown_hook_gives_no_hook_at_once)
{
	struct ud_call c;

	ud_init(&D, 1, 1);
	install_tags();
	ud_load(&D, NULL, 3);
	ud_start(&D, "nosuch", "{}", &c);
	cr_assert_eq(c.ndone, 1);
	cr_assert(c.during_start);
	cr_assert_null(c.handle);
	cr_assert_eq(c.outcome, DISPATCH_NO_HOOK);
	cr_assert_str_eq(c.hook, "nosuch");
	cr_assert_eq(c.generation, 3);
	cr_assert_not(c.has_plugin);
	cr_assert_eq(c.step, -1);
	cr_assert_null(c.output);
	cr_assert_not_null(strstr(c.error, "nosuch"));
	cr_assert_eq(ud_stats(&D).live, 0, "nothing holds the call once answered");
	cr_assert_eq(ud_stats(&D).answered_err, 1);
	ud_end(&D);
}

Test(dispatch, a_chain_that_cannot_run_gives_hook_unavailable)
{
	struct ud_call c;

	ud_init(&D, 1, 1);
	install_tags();
	ud_load(&D, "'hooks': {'broken': {'chain': ['echo', 'nosuch']}},", 1);
	ud_start(&D, "broken", "{}", &c);
	cr_assert_eq(c.ndone, 1);
	cr_assert_eq(c.outcome, DISPATCH_HOOK_UNAVAILABLE, "%s", dispatch_outcome_name(c.outcome));
	cr_assert_str_eq(c.hook, "broken");
	cr_assert_eq(c.generation, 1);
	cr_assert_not_null(strstr(c.error, "nosuch"), "the error says why: %s", c.error);
	cr_assert_eq(ud_stats(&D).live, 0);
	ud_end(&D);
}

Test(dispatch, no_generation_loaded_gives_not_ready)
{
	struct ud_call c;

	ud_init(&D, 1, 1);
	ud_start(&D, "echo", "{}", &c);
	cr_assert_eq(c.ndone, 1);
	cr_assert_eq(c.outcome, DISPATCH_NOT_READY);
	cr_assert_eq(c.generation, 0);
	cr_assert_str_eq(c.hook, "echo");
	cr_assert_eq(ud_stats(&D).live, 0);
	cr_assert_eq(ud_stats(&D).started, 1);
	ud_end(&D);
}

/* `until` makes u_probe block until the file exists (or the call is
 * cancelled): the test holds a worker as long as it likes. */
static void release(const char *path)
{
	u_write_file(path, "go\n");
}

Test(dispatch, a_full_worker_queue_gives_overloaded_at_once)
{
	/* pool_create refuses a queue of 0: 1 worker, 1 waiting place */
	struct ud_call a, b, c;
	char gate[512], in[700];

	ud_init(&D, 1, 1);
	install_tags();
	ud_install(&D, "fixtures/u_probe.so", "u_probe.so");
	ud_load(&D, "'hooks': {'u_probe': {'timeout_ms': 30000}},", 1);
	ud_path(&D, gate, sizeof(gate), "gate");
	snprintf(in, sizeof(in), "{'until': '%s'}", gate);
	ud_start(&D, "u_probe", in, &a); /* holds the only worker */
	ud_start(&D, "echo", "{'b': 1}", &b); /* waits in the queue */
	ud_start(&D, "echo", "{'c': 1}", &c);
	cr_assert_eq(c.ndone, 1, "refused at once");
	cr_assert_eq(c.outcome, DISPATCH_OVERLOADED, "%s", dispatch_outcome_name(c.outcome));
	cr_assert_str_eq(c.plugin, "echo");
	cr_assert_eq(c.step, 0);
	cr_assert_eq(c.generation, 1);
	cr_assert_eq(a.ndone + b.ndone, 0);

	release(gate);
	ud_wait(&a);
	ud_wait(&b);
	expect_ok(&a, "u_probe");
	expect_ok(&b, "echo");
	cr_assert_eq(ud_out_num(&b, "b", NULL), 1);
	ud_call_clear(&a);
	ud_call_clear(&b);
	ud_wait_idle(&D);
	cr_assert_eq(ud_stats(&D).answered_ok, 2);
	cr_assert_eq(ud_stats(&D).answered_err, 1);
	ud_end(&D);
}

/* ---- deadline ------------------------------------------------------- */

Test(dispatch, a_deadline_while_a_sync_plugin_runs_names_it_and_is_not_queued)
{
	struct ud_call c;
	char mark[512], members[1024], *m;

	ud_init(&D, 2, 8);
	ud_install(&D, "fixtures/u_probe.so", "u_probe.so");
	ud_path(&D, mark, sizeof(mark), "mark");
	/* generous: the idle worker must enter the plugin before the deadline */
	snprintf(members, sizeof(members),
		 "'plugins': {'u_probe': {'mark': '%s'}}, 'hooks': {'u_probe': {'timeout_ms': 1000}},",
		 mark);
	ud_load(&D, members, 1);
	ud_start(&D, "u_probe", "{'until_cancelled': true}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_DEADLINE, "%s", dispatch_outcome_name(c.outcome));
	cr_assert_not(c.queued, "the plugin was running: %s", c.error);
	cr_assert_str_eq(c.plugin, "u_probe");
	cr_assert_eq(c.step, 0);
	cr_assert_null(c.output);
	/* the plugin sees cancelled() and returns: its late output is dropped */
	ud_wait_idle(&D);
	cr_assert_eq(c.ndone, 1);
	m = u_read_file(mark, NULL);
	cr_assert_str_eq(m, "enter\n");
	free(m);
	ud_end(&D);
}

Test(dispatch, a_deadline_while_queued_says_so_and_the_plugin_never_runs)
{
	struct ud_call a, b;
	char gate[512], mark[512], members[1024], in[700], *m;

	ud_init(&D, 1, 4);
	ud_install(&D, "fixtures/u_probe.so", "u_probe.so");
	ud_path(&D, gate, sizeof(gate), "gate");
	ud_path(&D, mark, sizeof(mark), "mark");
	/* the same plugin behind two hooks: "slow" holds the only worker */
	snprintf(members, sizeof(members),
		 "'plugins': {'u_probe': {'mark': '%s'}}, 'hooks': {"
		 "'slow': {'chain': ['u_probe'], 'timeout_ms': 30000},"
		 "'u_probe': {'timeout_ms': 50}},",
		 mark);
	ud_load(&D, members, 1);
	snprintf(in, sizeof(in), "{'until': '%s'}", gate);
	ud_start(&D, "slow", in, &a);
	ud_start(&D, "u_probe", "{}", &b);
	ud_wait(&b);
	cr_assert_eq(b.outcome, DISPATCH_DEADLINE, "%s", dispatch_outcome_name(b.outcome));
	cr_assert(b.queued, "the step never got a worker: %s", b.error);
	cr_assert_str_eq(b.plugin, "u_probe");
	cr_assert_eq(b.step, 0);
	cr_assert_not_null(strstr(b.error, "waited for a worker"), "%s", b.error);
	cr_assert_eq(a.ndone, 0);

	/* free the worker: it takes b's job off the queue and must skip it */
	release(gate);
	ud_wait(&a);
	expect_ok(&a, "slow");
	ud_call_clear(&a);
	ud_wait_idle(&D); /* b's job went through the worker and back */
	cr_assert_eq(b.ndone, 1);
	m = u_read_file(mark, NULL);
	cr_assert_str_eq(m, "enter\n", "only a's step entered the plugin");
	free(m);
	ud_end(&D);
}

Test(dispatch, a_deadline_in_an_async_step_runs_its_cancel_callback_and_answers_once)
{
	struct ud_call c;

	ud_init(&D, 1, 1);
	ud_install(&D, "fixtures/hang_async.so", "hang_async.so");
	ud_load(&D, "'hooks': {'hang_async': {'timeout_ms': 30}},", 1);
	ud_start(&D, "hang_async", "{}", &c);
	cr_assert_eq(c.ndone, 0);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_DEADLINE, "%s", dispatch_outcome_name(c.outcome));
	cr_assert_not(c.queued);
	cr_assert_str_eq(c.plugin, "hang_async");
	cr_assert_eq(c.step, 0);
	/* it fails the call from its cancel callback: too late to change the
	 * answer, and releases the step */
	ud_wait_idle(&D);
	cr_assert_eq(c.ndone, 1);
	cr_assert_eq(ud_log_count(&D, "hang_async: cancel callback ran"), 1);
	cr_assert_eq(ud_log_count(&D, "fail after cancel returned -125"), 1);
	ud_end(&D);
}

/*
 * The deadline is armed on libevent's clock but measured (deadline_ns,
 * remaining_ms, fetch deadlines) with clock_gettime(CLOCK_MONOTONIC).
 * libevent 2.1 reads CLOCK_MONOTONIC_COARSE (up to a 4 ms jiffy behind
 * here) and, inside a callback, the time cached when the loop iteration
 * began, so the timer fires early: by up to a jiffy, and by all the time
 * the iteration spent before the call started (measured: a 60 ms deadline
 * fired after 14-20 ms when the iteration had spent 40 ms). on_deadline
 * re-arms for what is left on the precise clock.
 */
static void wait_time_left(struct ud_call *c, const int64_t *t0p, int ms)
{
	int64_t t0;

	ud_wait(c);
	t0 = *t0p; /* set when the call started, maybe inside the loop */
	cr_assert_eq(c->outcome, DISPATCH_DEADLINE);
	cr_assert_geq(c->done_ns - t0, (int64_t)ms * 1000000,
		      "a %d ms deadline fired after %.3f ms", ms, (double)(c->done_ns - t0) / 1e6);
}

Test(dispatch, a_deadline_never_fires_before_the_calls_time_is_up)
{
	struct ud_call c;

	ud_init(&D, 1, 1);
	ud_install(&D, "fixtures/hang_async.so", "hang_async.so");
	ud_load(&D, "'hooks': {'hang_async': {'timeout_ms': 7}},", 1);
	for (int i = 0; i < 20; i++) {
		int64_t t0 = ud_now_ns();
		ud_start(&D, "hang_async", "{}", &c);
		wait_time_left(&c, &t0, 7);
		ud_wait_idle(&D);
	}
	ud_end(&D);
}

/* A call started from inside a loop callback (as evhttp starts every call)
 * after the iteration already spent time must still get all of its time. */
struct late_start {
	struct ud_call *c;
	int64_t t0;
};

static void start_late(evutil_socket_t fd, short what, void *arg)
{
	struct late_start *ls = arg;

	(void)fd;
	(void)what;
	ud_sleep_ms(40); /* other work of the same loop iteration */
	ls->t0 = ud_now_ns();
	ud_start(&D, "hang_async", "{}", ls->c);
}

Test(dispatch, a_call_started_late_in_a_loop_iteration_gets_its_whole_deadline)
{
	struct ud_call c;
	struct late_start ls = {&c, 0};
	struct event *ev;

	ud_init(&D, 1, 1);
	ud_install(&D, "fixtures/hang_async.so", "hang_async.so");
	ud_load(&D, "'hooks': {'hang_async': {'timeout_ms': 60}},", 1);
	memset(&c, 0, sizeof(c));
	c.d = &D;
	ev = event_new(D.base, -1, 0, start_late, &ls);
	event_active(ev, EV_TIMEOUT, 0);
	wait_time_left(&c, &ls.t0, 60);
	event_free(ev);
	ud_wait_idle(&D);
	ud_end(&D);
}

/* ---- abort and shutdown --------------------------------------------- */

/* u_async keeps the hookd_call * of its last "hold" call first in
 * ctx->state: the test plays the plugin finishing it late. */
static hookd_call *held_step(struct plugin *p)
{
	hookd_call *h = *(hookd_call *const *)p->ctx.state;

	cr_assert_not_null(h, "u_async holds no call");
	return h;
}

static bool log_has(void *arg)
{
	return ud_log_count(&D, arg) > 0;
}

Test(dispatch, abort_never_answers_and_cancels_the_async_step)
{
	const hookd_host_api *api = dispatch_host_api();
	struct ud_call c;
	struct dispatch_stats st;
	struct plugin *p;

	ud_init(&D, 1, 1);
	ud_install(&D, "fixtures/u_async.so", "u_async.so");
	ud_load(&D, "'hooks': {'u_async': {'timeout_ms': 30000}},", 1);
	p = ud_plugin(&D, "u_async", 0);
	ud_start(&D, "u_async", "{'mode': 'hold'}", &c);
	cr_assert_not_null(c.handle);
	cr_assert_eq(ud_log_count(&D, "u_async hold on_cancel=0 timer=1 cancelled=0"), 1);

	dispatch_call_abort(c.handle);
	cr_assert_null(c.handle, "*out is cleared by the abort");
	cr_assert_eq(ud_log_count(&D, "hold cancel callback cancelled=1"), 1,
		     "the cancel callback runs during the abort");
	/* the armed timer calls back early, with HOOKD_ECANCELED, from the loop */
	cr_assert(ud_run_until(&D, log_has, "u_async hold timer status=-125"));
	st = ud_stats(&D);
	cr_assert_eq(st.pending, 0);
	cr_assert_eq(st.live, 1, "the plugin still holds its step");

	/* the plugin finishes late: a no-op that releases the call */
	cr_assert_eq(api->complete(held_step(p), cJSON_CreateString("late")), HOOKD_ECANCELED);
	cr_assert_eq(ud_stats(&D).live, 0);
	ud_run_for(&D, 30);
	cr_assert_eq(c.ndone, 0, "an aborted call is never answered");
	cr_assert_eq(ud_log_count(&D, "hold timer status="), 1, "the timer called back once");
	cr_assert_eq(ud_log_count(&D, "cancel callback"), 1);
	ud_end(&D);
}

Test(dispatch, abort_of_a_queued_sync_step_never_runs_the_plugin)
{
	struct ud_call a, b;
	char gate[512], mark[512], members[1024], in[700], *m;

	ud_init(&D, 1, 4);
	ud_install(&D, "fixtures/u_probe.so", "u_probe.so");
	ud_path(&D, gate, sizeof(gate), "gate");
	ud_path(&D, mark, sizeof(mark), "mark");
	snprintf(members, sizeof(members),
		 "'plugins': {'u_probe': {'mark': '%s'}}, 'hooks': {'u_probe': {'timeout_ms': 30000}},",
		 mark);
	ud_load(&D, members, 1);
	snprintf(in, sizeof(in), "{'until': '%s'}", gate);
	ud_start(&D, "u_probe", in, &a);
	ud_start(&D, "u_probe", "{}", &b);
	dispatch_call_abort(b.handle);
	cr_assert_null(b.handle);
	cr_assert_eq(ud_stats(&D).pending, 1);
	release(gate);
	ud_wait(&a);
	ud_call_clear(&a);
	ud_wait_idle(&D);
	cr_assert_eq(b.ndone, 0);
	m = u_read_file(mark, NULL);
	cr_assert_str_eq(m, "enter\n", "the aborted step entered the plugin");
	free(m);
	ud_end(&D);
}

Test(dispatch, cancel_all_answers_every_pending_call_once_with_shutdown)
{
	struct ud_call ok, as, run, q;
	char mark[512], members[1024], *m;
	struct dispatch_stats st;

	ud_init(&D, 1, 4);
	ud_install(&D, "plugins/echo.so", "echo.so");
	ud_install(&D, "fixtures/u_async.so", "u_async.so");
	ud_install(&D, "fixtures/u_probe.so", "u_probe.so");
	ud_path(&D, mark, sizeof(mark), "mark");
	snprintf(members, sizeof(members),
		 "'plugins': {'u_probe': {'mark': '%s'}}, 'timeout_ms': 30000,", mark);
	ud_load(&D, members, 1);
	ud_start(&D, "echo", "{}", &ok);
	ud_wait(&ok);
	ud_start(&D, "u_async", "{'mode': 'hold', 'finish_on_cancel': true}", &as);
	ud_start(&D, "u_probe", "{'until_cancelled': true}", &run);
	ud_start(&D, "u_probe", "{}", &q); /* behind `run` on the only worker */
	/* `run` must be in the plugin (not still queued) when the host stops */
	for (int i = 0; i < UD_LIMIT_MS && !ud_exists(mark); i++)
		ud_sleep_ms(1);
	cr_assert_eq(ud_stats(&D).pending, 3);

	dispatch_cancel_all(D.env);
	cr_assert_eq(ud_stats(&D).pending, 0);
	for (struct ud_call *c = &as; c; c = c == &as ? &run : c == &run ? &q : NULL) {
		cr_assert_eq(c->ndone, 1);
		cr_assert_eq(c->outcome, DISPATCH_SHUTDOWN, "%s", dispatch_outcome_name(c->outcome));
		cr_assert(c->handle_cleared);
		cr_assert_eq(c->step, 0);
		cr_assert_not(c->queued, "queued is a deadline detail");
	}
	cr_assert_str_eq(as.plugin, "u_async");
	cr_assert_str_eq(run.plugin, "u_probe");
	cr_assert_str_eq(q.plugin, "u_probe");
	cr_assert_eq(ok.ndone, 1, "an answered call is not touched");
	cr_assert_eq(ok.outcome, DISPATCH_OK);
	cr_assert_eq(ud_log_count(&D, "u_async hold fail after cancel rc=-125"), 1);

	ud_wait_idle(&D);
	cr_assert_eq(as.ndone + run.ndone + q.ndone, 3, "answered once each");
	m = u_read_file(mark, NULL);
	cr_assert_str_eq(m, "enter\n", "the queued step was skipped: [%s]", m);
	free(m);
	st = ud_stats(&D);
	cr_assert_eq(st.started, 4);
	cr_assert_eq(st.answered_ok, 1);
	cr_assert_eq(st.answered_err, 3);
	ud_call_clear(&ok);
	ud_end(&D);
}

/* ---- races: every call answered exactly once -------------------------- */

static bool file_there(void *arg)
{
	return ud_exists(arg);
}

/* Wait (without running the loop) until the plugin thread's completion is
 * posted to the loop but not yet delivered. */
static void wait_posted(const char *path)
{
	for (int i = 0; i < UD_LIMIT_MS && !file_there((void *)path); i++)
		ud_sleep_ms(1);
	cr_assert(ud_exists(path), "the plugin thread never completed");
}

Test(dispatch, a_completion_posted_from_a_thread_then_abort_never_answers)
{
	struct ud_call c;
	char posted[512], in[700];

	ud_init(&D, 1, 1);
	ud_install(&D, "fixtures/u_thread.so", "u_thread.so");
	ud_load(&D, NULL, 1);
	ud_path(&D, posted, sizeof(posted), "posted");
	snprintf(in, sizeof(in), "{'posted': '%s'}", posted);
	ud_start(&D, "u_thread", in, &c);
	wait_posted(posted);
	cr_assert_eq(ud_stats(&D).pending, 1, "not delivered while the loop did not run");
	dispatch_call_abort(c.handle);
	ud_wait_idle(&D); /* the posted result is delivered to an aborted call */
	cr_assert_eq(c.ndone, 0);
	cr_assert_eq(ud_log_count(&D, "u_thread complete rc=0"), 1,
		     "it completed before the abort");
	ud_end(&D);
}

Test(dispatch, a_completion_posted_from_a_thread_then_cancel_all_answers_once)
{
	struct ud_call c;
	char posted[512], in[700];

	ud_init(&D, 1, 1);
	ud_install(&D, "fixtures/u_thread.so", "u_thread.so");
	ud_load(&D, NULL, 1);
	ud_path(&D, posted, sizeof(posted), "posted");
	snprintf(in, sizeof(in), "{'posted': '%s'}", posted);
	ud_start(&D, "u_thread", in, &c);
	wait_posted(posted);
	dispatch_cancel_all(D.env);
	cr_assert_eq(c.ndone, 1);
	cr_assert_eq(c.outcome, DISPATCH_SHUTDOWN);
	ud_wait_idle(&D);
	cr_assert_eq(c.ndone, 1, "the late result did not answer again");
	cr_assert_null(c.output);
	ud_end(&D);
}

static bool pool_idle(void *arg)
{
	unsigned queued, running;

	pool_stats(arg, &queued, &running, NULL);
	return queued == 0 && running == 0;
}

Test(dispatch, a_sync_result_posted_then_cancel_all_or_abort_answers_at_most_once)
{
	struct ud_call a, b;

	ud_init(&D, 2, 4);
	ud_install(&D, "plugins/echo.so", "echo.so");
	ud_load(&D, NULL, 1);
	ud_start(&D, "echo", "{'a': 1}", &a);
	ud_start(&D, "echo", "{'b': 1}", &b);
	/* a worker posts the result before it counts itself idle */
	for (int i = 0; i < UD_LIMIT_MS && !pool_idle(D.pool); i++)
		ud_sleep_ms(1);
	cr_assert(pool_idle(D.pool));
	cr_assert_eq(a.ndone + b.ndone, 0);
	dispatch_call_abort(b.handle);
	dispatch_cancel_all(D.env);
	cr_assert_eq(a.ndone, 1);
	cr_assert_eq(a.outcome, DISPATCH_SHUTDOWN);
	cr_assert_not(a.queued);
	ud_wait_idle(&D);
	cr_assert_eq(a.ndone, 1);
	cr_assert_eq(b.ndone, 0);
	ud_end(&D);
}

#define NRACE 24

Test(dispatch, deadlines_racing_results_answer_every_call_exactly_once)
{
	static struct ud_call cs[3 * NRACE];
	char in[128];
	int ok = 0, late = 0;
	struct dispatch_stats st;

	ud_init(&D, 2, 64);
	ud_install(&D, "fixtures/u_thread.so", "u_thread.so");
	ud_install(&D, "fixtures/u_probe.so", "u_probe.so");
	ud_install(&D, "fixtures/u_async.so", "u_async.so");
	ud_load(&D, "'timeout_ms': 20,", 1);
	for (int i = 0; i < NRACE; i++) {
		int ms = 10 + i % 20; /* around the deadline */
		snprintf(in, sizeof(in), "{'delay_ms': %d}", ms);
		ud_start(&D, "u_thread", in, &cs[3 * i]);
		snprintf(in, sizeof(in), "{'sleep_ms': %d}", ms / 4);
		ud_start(&D, "u_probe", in, &cs[3 * i + 1]);
		snprintf(in, sizeof(in), "{'mode': 'timer', 'ms': %d}", ms);
		ud_start(&D, "u_async", in, &cs[3 * i + 2]);
	}
	ud_wait_idle(&D);
	for (int i = 0; i < 3 * NRACE; i++) {
		cr_assert_eq(cs[i].ndone, 1, "call %d answered %d times", i, cs[i].ndone);
		cr_assert(cs[i].outcome == DISPATCH_OK || cs[i].outcome == DISPATCH_DEADLINE ||
				  (cs[i].outcome == DISPATCH_STEP_FAILED &&
				   strcmp(cs[i].error, "timer cancelled") == 0),
			  "call %d: %s %s", i, dispatch_outcome_name(cs[i].outcome), cs[i].error);
		ok += cs[i].outcome == DISPATCH_OK;
		late += cs[i].outcome != DISPATCH_OK;
		cr_assert_eq(cs[i].output != NULL, cs[i].outcome == DISPATCH_OK);
		ud_call_clear(&cs[i]);
	}
	st = ud_stats(&D);
	cr_assert_eq(st.started, 3 * NRACE);
	cr_assert_eq(st.answered_ok, (uint64_t)ok);
	cr_assert_eq(st.answered_err, (uint64_t)late);
	cr_assert_eq(st.pending, 0);
	ud_end(&D);
}

Test(dispatch, a_result_and_the_deadline_due_in_the_same_loop_iteration_answer_once)
{
	struct ud_call a, s;
	char posted[512], in[700];
	int64_t t0;

	ud_init(&D, 1, 1);
	ud_install(&D, "fixtures/u_thread.so", "u_thread.so");
	ud_install(&D, "plugins/echo.so", "echo.so");
	ud_load(&D, "'timeout_ms': 30,", 1);
	ud_path(&D, posted, sizeof(posted), "posted");
	snprintf(in, sizeof(in), "{'posted': '%s'}", posted);
	t0 = ud_now_ns();
	ud_start(&D, "u_thread", in, &a);
	ud_start(&D, "echo", "{}", &s);
	wait_posted(posted);
	for (int i = 0; i < UD_LIMIT_MS && !pool_idle(D.pool); i++)
		ud_sleep_ms(1);
	/* both results wait on the eventfd; let both deadlines pass too */
	while (ud_now_ns() < t0 + 60 * (int64_t)1000000)
		ud_sleep_ms(1);
	cr_assert_eq(a.ndone + s.ndone, 0);
	ud_wait_idle(&D);
	cr_assert_eq(a.ndone, 1);
	cr_assert_eq(s.ndone, 1);
	cr_assert(a.outcome == DISPATCH_OK || a.outcome == DISPATCH_DEADLINE);
	cr_assert(s.outcome == DISPATCH_OK || s.outcome == DISPATCH_DEADLINE);
	cr_assert_eq(a.output != NULL, a.outcome == DISPATCH_OK);
	cr_assert_eq(s.output != NULL, s.outcome == DISPATCH_OK);
	ud_run_for(&D, 20);
	cr_assert_eq(a.ndone + s.ndone, 2);
	ud_call_clear(&a);
	ud_call_clear(&s);
	ud_end(&D);
}

/* ---- the generation a held step pins --------------------------------- */

Test(dispatch, a_cancelled_step_still_held_pins_its_generation_until_finished)
{
	const hookd_host_api *api = dispatch_host_api();
	struct ud_call c, e;
	char mark[512], members[1024], *m;
	struct plugin *p;
	hookd_call *h;

	ud_init(&D, 1, 1);
	ud_install(&D, "plugins/echo.so", "echo.so");
	ud_install(&D, "fixtures/u_async.so", "u_async.so");
	ud_path(&D, mark, sizeof(mark), "mark");
	snprintf(members, sizeof(members),
		 "'plugins': {'u_async': {'mark': '%s'}}, 'hooks': {'u_async': {'timeout_ms': 20}},",
		 mark);
	ud_load(&D, members, 1);
	p = ud_plugin(&D, "u_async", 0);
	ud_start(&D, "u_async", "{'mode': 'hold'}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_DEADLINE);
	cr_assert_eq(c.generation, 1);
	cr_assert_eq(ud_stats(&D).pending, 0);
	cr_assert_eq(ud_stats(&D).live, 1);
	h = held_step(p);

	/* reload with a new copy of u_async: generation 1 has no other holder */
	ud_install(&D, "fixtures/u_async.so", "u_async.so");
	ud_load(&D, members, 2);
	cr_assert_neq(ud_plugin(&D, "u_async", 0), p, "a new copy was loaded");
	ud_start(&D, "echo", "{}", &e);
	ud_wait(&e);
	cr_assert_eq(e.generation, 2);
	ud_call_clear(&e);
	m = u_read_file(mark, NULL);
	cr_assert_str_eq(m, "init\ninit\n", "the old copy was unloaded under a held step");
	free(m);
	cr_assert_str_eq(p->desc.name, "u_async");

	/* the plugin finishes its step at last: generation 1 goes, and the
	 * old copy with it */
	cr_assert_eq(api->complete(h, cJSON_CreateObject()), HOOKD_ECANCELED);
	cr_assert_eq(ud_stats(&D).live, 0);
	m = u_read_file(mark, NULL);
	cr_assert_str_eq(m, "init\ninit\nfini\n");
	free(m);
	cr_assert_eq(c.ndone, 1);
	ud_end(&D);
}

/* ---- counters ------------------------------------------------------- */

Test(dispatch, stats_follow_calls_from_start_to_free)
{
	const hookd_host_api *api = dispatch_host_api();
	struct ud_call hold, blk, fast, bad;
	char gate[512], in[700];
	struct dispatch_stats st;
	struct plugin *p;

	ud_init(&D, 1, 4);
	ud_install(&D, "plugins/echo.so", "echo.so");
	ud_install(&D, "fixtures/u_async.so", "u_async.so");
	ud_install(&D, "fixtures/u_probe.so", "u_probe.so");
	ud_load(&D, "'timeout_ms': 30000,", 1);
	p = ud_plugin(&D, "u_async", 0);
	ud_path(&D, gate, sizeof(gate), "gate");
	snprintf(in, sizeof(in), "{'until': '%s'}", gate);

	st = ud_stats(&D);
	cr_assert_eq(st.started + st.pending + st.live + st.answered_ok + st.answered_err, 0);
	ud_start(&D, "u_async", "{'mode': 'hold'}", &hold);
	ud_start(&D, "u_probe", in, &blk);
	ud_start(&D, "echo", "{}", &fast);
	ud_start(&D, "nosuch", "{}", &bad);
	st = ud_stats(&D);
	cr_assert_eq(st.started, 4);
	cr_assert_eq(st.pending, 3);
	cr_assert_eq(st.live, 3);
	cr_assert_eq(st.answered_ok, 0);
	cr_assert_eq(st.answered_err, 1);

	release(gate);
	ud_wait(&blk);
	ud_wait(&fast);
	st = ud_stats(&D);
	cr_assert_eq(st.pending, 1);
	cr_assert_eq(st.answered_ok, 2);

	dispatch_call_abort(hold.handle);
	st = ud_stats(&D);
	cr_assert_eq(st.pending, 0);
	cr_assert_eq(st.live, 1, "aborted, but its step is still held");
	cr_assert_eq(st.started, st.answered_ok + st.answered_err + st.pending);
	cr_assert_eq(api->complete(held_step(p), NULL), HOOKD_ECANCELED);
	ud_wait_idle(&D);
	st = ud_stats(&D);
	cr_assert_eq(st.live, 0);
	cr_assert_eq(st.started, 4);
	cr_assert_eq(st.answered_ok, 2);
	ud_call_clear(&blk);
	ud_call_clear(&fast);
	ud_end(&D);
}

/* ---- the env's other services --------------------------------------- */

struct posted_job {
	struct pool_job job; /* first */
	struct dispatch_env *env;
	pthread_t loop;
	bool other_is_loop; /* what dispatch_is_loop_thread said off the loop */
	int ran;
	bool ran_on_loop;
};

static void posted_done(struct pool_job *job)
{
	struct posted_job *pj = (struct posted_job *)job;

	pj->ran++;
	pj->ran_on_loop = pthread_equal(pthread_self(), pj->loop);
}

static void *post_from_thread(void *arg)
{
	struct posted_job *pj = arg;

	pj->other_is_loop = dispatch_is_loop_thread(pj->env);
	pj->job.done = posted_done;
	dispatch_post(pj->env, &pj->job);
	return NULL;
}

static bool job_ran(void *arg)
{
	return ((struct posted_job *)arg)->ran > 0;
}

Test(dispatch, post_runs_a_job_on_the_loop_thread_from_any_thread)
{
	struct posted_job pj = {0};
	pthread_t th;

	ud_init(&D, 1, 1);
	pj.env = D.env;
	pj.loop = pthread_self();
	cr_assert(dispatch_is_loop_thread(D.env));
	cr_assert_eq(pthread_create(&th, NULL, post_from_thread, &pj), 0);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_not(pj.other_is_loop);
	cr_assert_eq(pj.ran, 0, "only the loop runs it");
	cr_assert(ud_run_until(&D, job_ran, &pj));
	cr_assert(pj.ran_on_loop);
	ud_run_for(&D, 20);
	cr_assert_eq(pj.ran, 1);
	ud_end(&D);
}

Test(dispatch, outcome_names_are_stable)
{
	static const char *const names[DISPATCH_OUTCOME_COUNT] = {
		"ok", "step_failed", "no_output", "no_hook", "hook_unavailable",
		"not_ready", "overloaded", "deadline", "shutdown", "nomem", "crashed",
		"quarantined", "refused"};

	for (int o = 0; o < DISPATCH_OUTCOME_COUNT; o++)
		cr_assert_str_eq(dispatch_outcome_name((enum dispatch_outcome)o), names[o]);
	cr_assert_str_eq(dispatch_outcome_name(DISPATCH_OUTCOME_COUNT), "unknown");
	cr_assert_str_eq(dispatch_outcome_name((enum dispatch_outcome)-1), "unknown");
	ud_end(&D);
}

Test(dispatch, an_env_without_a_fetch_engine_refuses_fetch_with_eperm)
{
	struct ud_call c;

	ud_init(&D, 1, 1); /* dispatch_env_create(..., fetch = NULL, ...) */
	ud_install(&D, "fixtures/u_async.so", "u_async.so");
	ud_load(&D, NULL, 1);
	ud_start(&D, "u_async", "{'mode': 'fetch'}", &c);
	cr_assert_eq(c.ndone, 1);
	cr_assert_eq(c.outcome, DISPATCH_OK, "%s", c.error);
	cr_assert_eq(ud_log_count(&D, "u_async fetch rc=-1 all=-1"), 1);
	ud_call_clear(&c);
	ud_wait_idle(&D);
	cr_assert_eq(ud_log_count(&D, "fetch called back"), 0);
	ud_end(&D);
}
