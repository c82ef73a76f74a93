/*
 * A sync plugin that never returns in time keeps its worker: past the
 * call's deadline the worker is marked stuck, named in the log and in GET
 * /health, and replaced (up to max_stuck_workers), so the other sync hooks
 * keep their workers. A call that timed out waiting for a worker says so,
 * naming itself as queued, never blaming the plugin that held the worker.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(stuck, .fini = hd_suite_teardown);

static struct hd D;

static const char *const plugins[] = {"sleep", "echo", NULL};

static void health_has(struct hd *d, const char *what)
{
	struct hd_resp r;

	hd_get(d, "/health", &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, what), "/health lacks %s: %s", what, r.body);
	hd_resp_free(&r);
}

Test(stuck, a_worker_stuck_past_the_deadline_is_named_and_replaced, .timeout = 60)
{
	struct hd_resp r;

	hd_start(&D, "\"workers\": 1, \"max_stuck_workers\": 1, \"hooks\": {"
		     "\"sleep\": {\"timeout_ms\": 200}, \"echo\": {\"timeout_ms\": 1500}}",
		 plugins);
	hd_post(&D, "/hooks/sleep", "{\"ms\": 4000}", &r);
	cr_assert_eq(r.status, 504, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "in plugin sleep (step 0)"), "%s", r.body);
	hd_resp_free(&r);
	cr_assert(hd_wait_log(&D, "worker stuck in plugin sleep (hook sleep, generation 1) for ", 1,
			      5000));
	cr_assert_eq(hd_log_count(&D, "past the call's deadline: started a replacement worker "
				      "(1 stuck)"), 1);
	health_has(&D, "\"workers_stuck\":1");
	health_has(&D, "\"stuck_workers\":{\"sleep\":1}");
	health_has(&D, "\"workers\":2");

	/* the other sync hook has a worker: without the replacement it would
	 * wait for the stuck one past its own 1.5 s deadline */
	hd_post(&D, "/hooks/echo", "{\"served\":true}", &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	cr_assert_str_eq(r.body, "{\"served\":true}\n");
	hd_resp_free(&r);

	/* the plugin returns at last: its worker leaves, the pool is whole */
	cr_assert(hd_wait_log(&D, "plugin sleep released its stuck worker ", 1, 10000));
	health_has(&D, "\"workers_stuck\":0");
	health_has(&D, "\"stuck_workers\":{}");
	health_has(&D, "\"workers\":1");
	hd_post(&D, "/hooks/echo", "{\"again\":1}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&D), 0);
}

Test(stuck, past_max_stuck_workers_a_queued_call_times_out_blaming_nobody_else, .timeout = 60)
{
	struct hd_resp r;

	hd_start(&D, "\"workers\": 1, \"max_stuck_workers\": 0, \"hooks\": {"
		     "\"sleep\": {\"timeout_ms\": 200}, \"echo\": {\"timeout_ms\": 300}}",
		 plugins);
	hd_post(&D, "/hooks/sleep", "{\"ms\": 3000}", &r);
	cr_assert_eq(r.status, 504);
	hd_resp_free(&r);
	cr_assert(hd_wait_log(&D, "past the call's deadline; no replacement: max_stuck_workers "
				  "reached", 1, 5000));
	hd_post(&D, "/hooks/echo", "{}", &r);
	cr_assert_eq(r.status, 504, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "while step 0 (plugin echo) waited for a worker: every worker "
				 "was busy"), "%s", r.body);
	cr_assert(strstr(r.body, "\"plugin\":\"echo\""), "%s", r.body);
	cr_assert_null(strstr(r.body, "sleep"), "the 504 blames the plugin that held the worker: "
						"%s", r.body);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&D), 0);
}
