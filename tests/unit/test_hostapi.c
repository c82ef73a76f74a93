/*
 * hostapi: the services a plugin calls (sdk/hookd.h), driven through real
 * plugins on a bare event_base: finishing a call (once, from any thread,
 * after a cancel), deadlines and cancellation as a plugin sees them, cancel
 * callbacks, loop timers, and what a sync plugin or a thread that is not
 * the loop may not use.
 *
 * Fixtures: tests/fixtures/u_probe.so (sync), u_async.so (async, on the
 * loop), u_thread.so (async, finishes from its own thread). What happens
 * after a call is answered is only visible in the log (one "u_... " line
 * per observation) or through a handle the test holds itself (u_async's
 * "hold" mode leaves the hookd_call * first in ctx->state).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../host/dispatch.h"
#include "../../host/plugin.h"
#include "unit_dispatch.h"

static struct ud D;

static void teardown(void)
{
	ud_fini(&D);
}

TestSuite(hostapi, .fini = teardown, .timeout = 60);

static const hookd_host_api *api(void)
{
	return dispatch_host_api();
}

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

static void never_timer(const hookd_ctx *ctx, hookd_call *call, int status, void *arg)
{
	(void)ctx;
	(void)call;
	(void)status;
	*(int *)arg += 1;
}

static void never_cancel(const hookd_ctx *ctx, hookd_call *call, void *arg)
{
	never_timer(ctx, call, 0, arg);
}

/* One "u_async"/"u_thread" deployment with a hook deadline of `ms`. */
static void load_async(int ms)
{
	char members[256];

	ud_install(&D, "fixtures/u_async.so", "u_async.so");
	ud_install(&D, "fixtures/u_thread.so", "u_thread.so");
	ud_install(&D, "fixtures/u_probe.so", "u_probe.so");
	snprintf(members, sizeof(members), "'timeout_ms': %d,", ms);
	ud_load(&D, members, 1);
}

Test(hostapi, the_table_matches_the_sdk_and_refuses_a_null_handle)
{
	const hookd_host_api *a = api();
	int calls = 0;

	cr_assert_eq(a->size, sizeof(hookd_host_api));
	cr_assert_eq(a->abi_major, HOOKD_ABI_MAJOR);
	cr_assert_eq(a->abi_minor, HOOKD_ABI_MINOR);
	cr_assert_eq(a->fail(NULL, 500, "x"), HOOKD_EINVAL);
	cr_assert_eq(a->complete(NULL, cJSON_CreateObject()), HOOKD_EINVAL,
		     "(and frees the output: LeakSanitizer says so under make asan)");
	cr_assert_neq(a->cancelled(NULL), 0);
	cr_assert_eq(a->remaining_ms(NULL), 0);
	cr_assert_eq(a->on_cancel(NULL, never_cancel, &calls), HOOKD_EPERM);
	cr_assert_null(a->timer_start(NULL, 1, never_timer, &calls));
	cr_assert_eq(a->timer_stop(NULL), HOOKD_EINVAL);
	cr_assert_eq(calls, 0);
	ud_end(&D);
}

/* ---- finishing a call ----------------------------------------------- */

Test(hostapi, an_async_plugin_finishing_twice_is_told_ealready_and_the_first_wins)
{
	struct ud_call c;

	ud_init(&D, 1, 1);
	load_async(30000);
	ud_start(&D, "u_async", "{'mode': 'fail_twice'}", &c);
	cr_assert_eq(c.ndone, 1);
	cr_assert_eq(c.outcome, DISPATCH_STEP_FAILED);
	cr_assert_eq(c.plugin_status, 409);
	cr_assert_str_eq(c.error, "first");
	cr_assert_eq(ud_log_count(&D, "u_async fail_twice rc1=0 rc2=-114 rc3=-114"), 1);
	cr_assert_eq(ud_log_count(&D, "call finished twice"), 2, "both bugs are logged");
	ud_wait_idle(&D);
	ud_end(&D);
}

Test(hostapi, a_sync_plugin_failing_twice_keeps_the_first_failure)
{
	struct ud_call c;

	ud_init(&D, 1, 1);
	load_async(30000);
	ud_start(&D, "u_probe", "{'fail_twice': true}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_STEP_FAILED);
	cr_assert_eq(c.plugin_status, 409);
	cr_assert_str_eq(c.error, "first");
	cr_assert_eq(ud_log_count(&D, "u_probe fail_twice rc1=0 "), 1);
	ud_wait_idle(&D);
	ud_end(&D);
}

/* A second fail() inside call_sync is the plugin's bug: the first failure
 * wins and the second is told HOOKD_EALREADY, as in the async path
 * (sdk/hookd.h documents it for both). */
Test(hostapi, a_sync_plugin_failing_twice_is_told_ealready)
{
	struct ud_call c;

	ud_init(&D, 1, 1);
	load_async(30000);
	ud_start(&D, "u_probe", "{'fail_twice': true}", &c);
	ud_wait(&c);
	cr_assert_eq(ud_log_count(&D, "u_probe fail_twice rc1=0 rc2=-114"), 1,
		     "the second fail() returned %s", log_has("rc2=0") ? "HOOKD_OK" : "?");
	ud_wait_idle(&D);
	ud_end(&D);
}

Test(hostapi, a_sync_plugin_that_fails_and_still_returns_output_fails_the_call)
{
	struct ud_call c;

	ud_init(&D, 1, 1);
	load_async(30000);
	ud_start(&D, "u_probe", "{'fail_then_return': true}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_STEP_FAILED);
	cr_assert_eq(c.plugin_status, 418);
	cr_assert_str_eq(c.error, "teapot");
	cr_assert_null(c.output);
	ud_wait_idle(&D);
	ud_end(&D);
}

static bool file_there(void *arg)
{
	return ud_exists(arg);
}

Test(hostapi, complete_from_another_thread_is_delivered_on_the_loop)
{
	struct ud_call c;
	char posted[512], in[700];

	ud_init(&D, 1, 1);
	load_async(30000);
	ud_path(&D, posted, sizeof(posted), "posted");
	snprintf(in, sizeof(in), "{'posted': '%s', 'delay_ms': 5}", posted);
	ud_start(&D, "u_thread", in, &c);
	cr_assert_eq(c.ndone, 0);
	for (int i = 0; i < UD_LIMIT_MS && !file_there(posted); i++)
		ud_sleep_ms(1);
	cr_assert(ud_exists(posted));
	cr_assert_eq(c.ndone, 0, "answered on the plugin's thread, not by the loop");
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK, "%s", c.error);
	cr_assert(c.on_loop);
	cr_assert_not(c.during_start);
	/* what the plugin's thread was told before it completed */
	cr_assert_eq(ud_out_num(&c, "thread", "on_cancel"), HOOKD_EPERM, "on_cancel off the loop");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
			  cJSON_GetObjectItemCaseSensitive(c.output, "thread"), "timer_null")),
		  "timer_start off the loop");
	cr_assert_eq(ud_out_num(&c, "thread", "cancelled"), 0);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(c.output, "thread"), "remaining_positive")));
	cr_assert_eq(ud_log_count(&D, "u_thread complete rc=0"), 1);
	ud_call_clear(&c);
	ud_wait_idle(&D);
	cr_assert_eq(ud_log_count(&D, "u_thread timer armed off the loop"), 0);
	ud_end(&D);
}

Test(hostapi, complete_after_the_deadline_returns_ecanceled_from_any_thread)
{
	struct ud_call c, t;
	struct plugin *p;

	ud_init(&D, 2, 4);
	load_async(20);
	p = ud_plugin(&D, "u_async", 0);
	/* a plugin thread that completes once it sees the cancel */
	ud_start(&D, "u_thread", "{'wait_cancel': true}", &t);
	/* a loop plugin that leaves it to the test */
	ud_start(&D, "u_async", "{'mode': 'hold'}", &c);
	ud_wait(&t);
	ud_wait(&c);
	cr_assert_eq(t.outcome, DISPATCH_DEADLINE);
	cr_assert_eq(c.outcome, DISPATCH_DEADLINE);
	cr_assert(ud_run_until(&D, log_has, "u_thread complete rc=-125"));
	/* the output is taken (and freed: LeakSanitizer under make asan) */
	cr_assert_eq(api()->complete(held_step(p), cJSON_CreateString("too late")),
		     HOOKD_ECANCELED);
	ud_wait_idle(&D);
	cr_assert_eq(t.ndone + c.ndone, 2);
	cr_assert_null(t.output);
	ud_end(&D);
}

/* ---- deadline and cancellation, as the plugin sees them --------------- */

Test(hostapi, remaining_ms_decreases_and_is_not_positive_after_the_deadline)
{
	struct ud_call c;
	long long r0, r1, r2;
	int c0, c1;
	char *log, *at;

	ud_init(&D, 1, 1);
	load_async(1000); /* generous: the plugin samples before the deadline */
	ud_start(&D, "u_probe", "{'clock': true}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_DEADLINE);
	cr_assert_not(c.queued);
	ud_wait_idle(&D);
	log = ud_log(&D);
	at = strstr(log, "u_probe clock ");
	cr_assert_not_null(at, "%s", log);
	cr_assert_eq(sscanf(at, "u_probe clock r0=%lld r1=%lld r2=%lld c0=%d c1=%d", &r0, &r1, &r2,
			    &c0, &c1),
		     5);
	free(log);
	cr_assert_gt(r0, 0);
	cr_assert_leq(r0, 1000);
	cr_assert_lt(r1, r0, "20 ms later");
	cr_assert_leq(r2, 0, "past the deadline by the plugin's own clock");
	cr_assert_eq(c0, 0);
	cr_assert_eq(c1, 1, "cancelled() flipped");
	ud_end(&D);
}

Test(hostapi, a_held_async_step_sees_its_deadline_pass_and_cancel)
{
	const hookd_host_api *a = api();
	struct ud_call c;
	struct plugin *p;
	hookd_call *h;
	int64_t t1;
	int calls = 0;

	ud_init(&D, 1, 1);
	load_async(500);
	p = ud_plugin(&D, "u_async", 0);
	ud_start(&D, "u_async", "{'mode': 'hold'}", &c);
	t1 = ud_now_ns();
	h = held_step(p);
	cr_assert_eq(a->cancelled(h), 0);
	cr_assert_gt(a->remaining_ms(h), 0);
	cr_assert_leq(a->remaining_ms(h), 500);
	cr_assert_eq(ud_log_count(&D, "u_async hold on_cancel=0 timer=1 cancelled=0"), 1);

	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_DEADLINE);
	cr_assert_neq(a->cancelled(h), 0);
	cr_assert_eq(ud_log_count(&D, "hold cancel callback cancelled=1"), 1);
	cr_assert(ud_run_until(&D, log_has, "u_async hold timer status=-125"),
		  "the armed timer calls back early with HOOKD_ECANCELED");
	while (ud_now_ns() < t1 + 501 * (int64_t)1000000)
		ud_sleep_ms(1);
	cr_assert_leq(a->remaining_ms(h), 0);
	/* a cancelled step takes no new callback */
	cr_assert_eq(a->on_cancel(h, never_cancel, &calls), HOOKD_ECANCELED);
	cr_assert_null(a->timer_start(h, 1, never_timer, &calls));
	cr_assert_eq(a->fail(h, 503, "late"), HOOKD_ECANCELED);
	ud_wait_idle(&D);
	ud_run_for(&D, 20);
	cr_assert_eq(calls, 0);
	cr_assert_eq(ud_log_count(&D, "hold timer status="), 1);
	cr_assert_eq(c.ndone, 1);
	ud_end(&D);
}

Test(hostapi, a_sync_plugin_may_not_use_the_async_services)
{
	struct ud_call c;
	const cJSON *probe;

	ud_init(&D, 1, 1);
	load_async(30000);
	ud_start(&D, "u_probe", "{'api': true, 'keep': 'me'}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK, "%s", c.error);
	probe = cJSON_GetObjectItemCaseSensitive(c.output, "probe");
	cr_assert(cJSON_IsObject(probe));
	cr_assert_eq(ud_out_num(&c, "probe", "complete"), HOOKD_EPERM);
	cr_assert_eq(ud_out_num(&c, "probe", "complete_input"), HOOKD_EPERM,
		     "and the input was not freed: it is the output");
	cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(c.output, "keep")->valuestring, "me");
	cr_assert_eq(ud_out_num(&c, "probe", "on_cancel"), HOOKD_EPERM);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(probe, "timer_null")));
	cr_assert_eq(ud_out_num(&c, "probe", "cancelled"), 0);
	cr_assert_gt(ud_out_num(&c, "probe", "remaining_ms"), 0);
	ud_call_clear(&c);
	ud_wait_idle(&D);
	ud_run_for(&D, 20);
	cr_assert_eq(ud_log_count(&D, "a callback of a sync step ran"), 0);
	cr_assert_eq(ud_log_count(&D, "complete() called by a sync plugin"), 2);
	ud_end(&D);
}

/* ---- timers --------------------------------------------------------- */

Test(hostapi, a_timer_fires_once_with_ok_and_the_others_are_cancelled_by_the_finish)
{
	struct ud_call c;

	ud_init(&D, 1, 1);
	load_async(30000);
	ud_start(&D, "u_async", "{'mode': 'timer', 'ms': 5, 'also_ms': 60000}", &c);
	cr_assert_eq(c.ndone, 0);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK, "%s", c.error);
	cr_assert_eq(ud_out_num(&c, "timer_status", NULL), HOOKD_OK);
	ud_call_clear(&c);
	/* the 60 s timer calls back at once, cancelled, when the step ends */
	cr_assert(ud_run_until(&D, log_has, "u_async extra timer status=-125"));
	ud_wait_idle(&D);
	ud_run_for(&D, 20);
	cr_assert_eq(ud_log_count(&D, "u_async timer status="), 1);
	cr_assert_eq(ud_log_count(&D, "u_async timer status=0"), 1);
	cr_assert_eq(ud_log_count(&D, "u_async extra timer status="), 1);
	ud_end(&D);
}

Test(hostapi, a_stopped_timer_never_calls_back_and_a_firing_one_cannot_be_stopped)
{
	struct ud_call c;

	ud_init(&D, 1, 1);
	load_async(30000);
	ud_start(&D, "u_async", "{'mode': 'stop'}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK, "%s", c.error);
	cr_assert_eq(ud_out_num(&c, "stop", NULL), HOOKD_OK, "stopped before it fired");
	cr_assert_eq(ud_out_num(&c, "stop_self", NULL), HOOKD_EALREADY,
		     "stopped from its own callback");
	cr_assert_eq(ud_out_num(&c, "status", NULL), HOOKD_OK);
	ud_call_clear(&c);
	ud_wait_idle(&D);
	ud_run_for(&D, 60); /* past the stopped timer's 30 ms */
	cr_assert_eq(ud_log_count(&D, "stopped timer called back"), 0);
	ud_end(&D);
}

Test(hostapi, a_finished_step_refuses_every_service)
{
	struct ud_call c;

	ud_init(&D, 1, 1);
	load_async(30000);
	ud_start(&D, "u_async", "{'mode': 'after_finish', 'x': 1}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK, "%s", c.error);
	cr_assert_eq(ud_out_num(&c, "x", NULL), 1, "the first complete() is the answer");
	ud_call_clear(&c);
	ud_wait_idle(&D);
	ud_run_for(&D, 20);
	cr_assert_eq(ud_log_count(&D, "u_async after_finish complete=0 timer_null=1 "
				      "on_cancel=-114 complete2=-114 fail2=-114"),
		     1);
	cr_assert_eq(ud_log_count(&D, "of a finished step called back"), 0);
	ud_end(&D);
}
