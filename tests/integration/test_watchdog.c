/*
 * An async plugin that holds its event loop is named: while it holds it
 * (the watchdog, within a second, an endless loop too), and when it lets go
 * (how long, in which entry point). With loop_abort_ms the daemon aborts
 * instead, leaving a crash record, and the next start does not load it.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(watchdog, .fini = hd_suite_teardown);

static struct hd D;

#define HELD "ms and counting by plugin busy_async (file busy_async.so, generation 1) " \
	     "serving hook busy (call_async): every call on this loop waits"

static void start(const char *members)
{
	hd_prepare(&D, members, (const char *const[]){"echo_async", NULL});
	hd_install(&D, "fixtures/busy_async.so", "busy_async.so");
	hd_launch_or_fail(&D);
}

Test(watchdog, a_plugin_holding_the_loop_is_named_while_it_holds_it_and_after, .timeout = 60)
{
	struct hd_resp r;
	char *log;

	start("\"loop_warn_ms\": 100");
	hd_post(&D, "/hooks/busy", "{\"ms\": 400}", &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	hd_resp_free(&r);
	/* the watchdog named it while it held the loop... */
	cr_assert(hd_wait_log(&D, HELD, 1, 5000), "no watchdog line");
	/* ...and the loop named it when it let go, with at least its 400 ms */
	cr_assert(hd_wait_log(&D, "plugin busy_async held loop ", 1, 5000));
	log = hd_log_read(&D);
	const char *p = strstr(log, "plugin busy_async held loop ");
	unsigned loop, ms;
	cr_assert_eq(sscanf(p, "plugin busy_async held loop %u for %u ms in call_async (hook "
			       "busy, generation 1)", &loop, &ms), 2, "%s", p);
	cr_assert_geq(ms, 400);
	free(log);
	/* a plugin that does not block is never named */
	hd_post(&D, "/hooks/echo_async", "{\"fine\":1}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	cr_assert_eq(hd_log_count(&D, "echo_async held"), 0);
	cr_assert_eq(hd_log_count(&D, "by plugin echo_async"), 0);
	cr_assert_eq(hd_stop(&D), 0);
}

Test(watchdog, an_endless_loop_is_named_every_second_and_aborted_past_loop_abort_ms,
     .timeout = 60)
{
	struct hd_resp r;
	char record[400], *text;

	start("\"state_dir\": \"state\", \"loop_warn_ms\": 100, \"loop_abort_ms\": 1500");
	hd_post(&D, "/hooks/busy", "{\"ms\": -1}", &r);
	cr_assert_eq(r.status, 0, "answered %ld: the plugin never returns", r.status);
	hd_resp_free(&r);
	cr_assert(hd_wait_exit(&D, 20000), "the daemon did not abort");
	cr_assert_eq(D.exit_status, 128 + SIGABRT, "exit status %d", D.exit_status);
	cr_assert_geq(hd_log_count(&D, HELD), 2, "named once, then again a second later");
	cr_assert_eq(hd_log_count(&D, "; loop_abort_ms (1500) passed: aborting"), 1);
	cr_assert_eq(hd_log_count(&D, "hookd crashed: SIGABRT in plugin busy_async (file "
				      "busy_async.so, generation 1) serving hook busy "
				      "(call_async)"), 1);
	snprintf(record, sizeof(record), "%s/state/crash.json", D.dir);
	text = hd_read_file(record, NULL);
	cr_assert_not_null(text, "no crash record");
	cr_assert(strstr(text, "\"plugin\":\"busy_async\""), "%s", text);
	free(text);
	/* the next start runs it isolated: it can hold only its own processes' loops */
	snprintf(record, sizeof(record), "%s.before", D.log);
	cr_assert_eq(rename(D.log, record), 0);
	D.stopped = false;
	D.port = 0;
	hd_launch_or_fail(&D);
	cr_assert_eq(hd_log_count(&D, "plugin busy_async runs isolated in 2 process(es): isolated "
				      "after it crashed the host at "), 1);
	hd_post(&D, "/hooks/busy", "{\"ms\": 1}", &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	hd_resp_free(&r);
	hd_post(&D, "/hooks/echo_async", "{\"fine\":1}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&D), 0);
}

Test(watchdog, loop_warn_ms_0_turns_the_watch_off, .timeout = 60)
{
	struct hd_resp r;

	start("\"loop_warn_ms\": 0");
	hd_post(&D, "/hooks/busy", "{\"ms\": 300}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	hd_post(&D, "/hooks/echo_async", "{}", &r); /* the loop turned after it */
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	cr_assert_eq(hd_log_count(&D, "busy_async held"), 0);
	cr_assert_eq(hd_log_count(&D, "and counting"), 0);
	cr_assert_eq(hd_stop(&D), 0);
}

Test(watchdog, loop_abort_ms_below_loop_warn_ms_is_a_config_error, .timeout = 30)
{
	char *err = NULL;

	hd_prepare(&D, "\"loop_warn_ms\": 500, \"loop_abort_ms\": 100", NULL);
	int rc = hd_run_hookd((const char *const[]){"-t", "-c", D.config, NULL}, NULL, &err);
	cr_assert_eq(rc, 1);
	cr_assert(err && strstr(err, "loop_abort_ms: must not be below loop_warn_ms"), "%s", err);
	free(err);
	hd_kill(&D);
}
