/*
 * Isolated plugins (isolate.h, runner.c): a plugin configured `isolate`
 * runs in child processes. A crash there costs the calls that process was
 * running (502 naming the plugin and the signal), never the host; the
 * process is replaced; a plugin crashing too often is quarantined (503)
 * until its file changes; a sync call past its deadline gets its process
 * killed and replaced; failure_mode "open" skips a failed step. Every test
 * shows an unrelated in-process hook serving throughout.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../support/harness.h"

TestSuite(isolate, .fini = hd_suite_teardown);

static struct hd D;

static void expect(struct hd *d, const char *path, const char *body, long status,
		   const char *needle)
{
	struct hd_resp r;

	hd_post(d, path, body, &r);
	cr_assert_eq(r.status, status, "%s %s: %ld %s", path, body, r.status, r.body);
	if (needle)
		cr_assert(r.body && strstr(r.body, needle), "%s: no \"%s\" in %s", path, needle,
			  r.body);
	hd_resp_free(&r);
}

static void plugins_has(struct hd *d, const char *needle)
{
	struct hd_resp r;

	hd_get(d, "/plugins", &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, needle), "no \"%s\" in %s", needle, r.body);
	hd_resp_free(&r);
}

Test(isolate, a_crash_costs_its_call_and_the_process_is_replaced, .timeout = 90)
{
	hd_prepare(&D, "\"isolate_procs\": 1, \"quarantine_after\": 5, "
		       "\"plugins\": {\"crash_sync\": {\"isolate\": true}}",
		   (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/crash_sync.so", "crash_sync.so");
	hd_launch_or_fail(&D);
	plugins_has(&D, "\"why\":\"configured (isolate: true)\"");

	expect(&D, "/hooks/crash", "{\"a\":1}", 200, "{\"a\":1}");
	expect(&D, "/hooks/crash", "{\"crash\":true}", 502,
	       "\"error\":\"plugin crash_sync crashed in its isolated process ");
	cr_assert(hd_wait_log(&D, "(SIGSEGV), generation 1, file crash_sync.so: 1 call(s) it was "
				  "running answered 502", 1, 10000));
	/* the host's crash handler did not fire: the process that died was the child's */
	cr_assert_eq(hd_log_count(&D, "error hookd crashed"), 0);
	cr_assert_eq(hd_log_count(&D, "crashed: SIGSEGV at address 0x0 in plugin crash_sync"), 1);
	expect(&D, "/hooks/echo", "{\"still\":\"serving\"}", 200, "{\"still\":\"serving\"}");
	/* replaced: the next call is served by a new process */
	cr_assert(hd_wait_log(&D, "isolated plugin crash_sync (crash_sync.so, generation 1): "
				  "process", 2, 10000));
	expect(&D, "/hooks/crash", "{\"b\":2}", 200, "{\"b\":2}");
	plugins_has(&D, "\"crashes\":1,\"restarts\":1");
	cr_assert_eq(hd_stop(&D), 0);
}

Test(isolate, crashing_too_often_quarantines_until_the_file_changes, .timeout = 120)
{
	hd_prepare(&D, "\"isolate_procs\": 1, \"quarantine_after\": 2, \"quarantine_window_s\": 600, "
		       "\"plugins\": {\"crash_sync\": {\"isolate\": true}}",
		   (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/crash_sync.so", "crash_sync.so");
	hd_launch_or_fail(&D);

	expect(&D, "/hooks/crash", "{\"crash\":true}", 502, "(SIGSEGV)");
	expect(&D, "/hooks/crash", "{\"crash\":true}", 502, "(SIGSEGV)");
	cr_assert(hd_wait_log(&D, "plugin crash_sync is quarantined: 2 crashes within 600 s", 1,
			      10000));
	expect(&D, "/hooks/crash", "{\"a\":1}", 503, "\"outcome\":\"quarantined\"");
	expect(&D, "/hooks/crash", "{\"a\":1}", 503,
	       "plugin crash_sync is quarantined: 2 crashes within 600 s (last: SIGSEGV)");
	expect(&D, "/hooks/echo", "{\"e\":1}", 200, NULL);
	plugins_has(&D, "\"quarantined\":true,\"quarantine_reason\":\"plugin crash_sync is "
			"quarantined");
	plugins_has(&D, "\"quarantined_since\":\"20");
	/* a quarantined step makes its hook unable to run: not ready */
	struct hd_resp r;
	hd_get(&D, "/ready", &r);
	cr_assert_eq(r.status, 503, "GET /ready: %ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "hook crash: plugin crash_sync is quarantined"), "%s", r.body);
	hd_resp_free(&r);

	/* a reload with the same file keeps the quarantine */
	hd_signal(&D, SIGHUP);
	cr_assert(hd_wait_generation(&D, 2, 10000));
	expect(&D, "/hooks/crash", "{\"a\":1}", 503, "quarantined");

	/* a new version of the file starts afresh */
	hd_install(&D, "fixtures/crash_sync.so", "crash_sync.so");
	hd_signal(&D, SIGHUP);
	cr_assert(hd_wait_generation(&D, 3, 10000));
	expect(&D, "/hooks/crash", "{\"a\":1}", 200, "{\"a\":1}");
	plugins_has(&D, "\"quarantined\":false");
	hd_get(&D, "/ready", &r);
	cr_assert_eq(r.status, 200, "GET /ready: %ld %s", r.status, r.body);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&D), 0);
}

Test(isolate, a_sync_call_past_its_deadline_gets_its_process_replaced, .timeout = 90)
{
	hd_prepare(&D, "\"isolate_procs\": 1, \"hooks\": {\"sleep\": {\"timeout_ms\": 300}}, "
		       "\"plugins\": {\"sleep\": {\"isolate\": true}}",
		   (const char *const[]){"echo", "sleep", NULL});
	hd_launch_or_fail(&D);

	expect(&D, "/hooks/sleep", "{\"ms\":30000}", 504, "deadline of 300 ms passed in plugin sleep");
	cr_assert(hd_wait_log(&D, "plugin sleep's isolated process ", 1, 10000));
	cr_assert(hd_wait_log(&D, "was killed: a sync call in it passed its deadline", 1, 10000));
	expect(&D, "/hooks/echo", "{\"e\":1}", 200, NULL);
	/* the worker was not lost: a new process serves */
	expect(&D, "/hooks/sleep", "{\"ms\":0}", 200, NULL);
	plugins_has(&D, "\"killed_past_deadline\":1");
	/* not a crash: no quarantine counts it */
	plugins_has(&D, "\"crashes\":0");
	cr_assert_eq(hd_stop(&D), 0);
}

Test(isolate, async_plugins_keep_their_timers_and_cancel_callbacks, .timeout = 60)
{
	hd_prepare(&D, "\"isolate\": true, \"hooks\": {\"delay\": {\"timeout_ms\": 400}}",
		   (const char *const[]){"delay", "echo_async", NULL});
	hd_launch_or_fail(&D);
	expect(&D, "/hooks/delay", "{\"ms\":50,\"x\":1}", 200, "\"x\":1");
	expect(&D, "/hooks/echo_async", "{\"y\":2}", 200, "{\"y\":2}");
	/* past the deadline: 504 from the host; the process is not killed (the
	 * call is cancelled in it, its timer fires with HOOKD_ECANCELED) */
	expect(&D, "/hooks/delay", "{\"ms\":5000}", 504, "plugin delay");
	expect(&D, "/hooks/delay", "{\"ms\":1}", 200, NULL);
	plugins_has(&D, "\"killed_past_deadline\":0");
	cr_assert_eq(hd_log_count(&D, "was killed"), 0);
	cr_assert_eq(hd_stop(&D), 0);
}

Test(isolate, failure_mode_open_skips_the_failed_step, .timeout = 90)
{
	hd_prepare(&D, "\"isolate_procs\": 1, \"quarantine_after\": 100, "
		       "\"hooks\": {\"enrich\": {\"chain\": [\"crash_sync\", \"fail\", \"echo\"]}}, "
		       "\"plugins\": {\"crash_sync\": {\"isolate\": true, \"failure_mode\": \"open\"}, "
		       "\"fail\": {\"failure_mode\": \"open\"}}",
		   (const char *const[]){"echo", "fail", NULL});
	hd_install(&D, "fixtures/crash_sync.so", "crash_sync.so");
	hd_launch_or_fail(&D);

	/* fail fails every call (422), skipped: the input flows on */
	expect(&D, "/hooks/enrich", "{\"a\":1}", 200, "{\"a\":1}");
	/* crash_sync crashes its process: skipped too */
	expect(&D, "/hooks/enrich", "{\"crash\":true}", 200, "{\"crash\":true}");
	plugins_has(&D, "\"failure_mode\":\"open\",\"skipped\":{\"failed\":0,\"crashed\":1,"
			"\"timeout\":0,\"quarantined\":0}");
	plugins_has(&D, "\"failure_mode\":\"open\",\"skipped\":{\"failed\":2,\"crashed\":0,");
	/* open applies on every hook of the plugin; closed (echo) is untouched */
	expect(&D, "/hooks/fail", "{\"status\":409}", 200, "{\"status\":409}");
	cr_assert_eq(hd_stop(&D), 0);
}

Test(isolate, a_constructor_that_crashes_is_refused_by_the_probe, .timeout = 60)
{
	struct hd_resp r;

	hd_prepare(&D, "", (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/ctor_crash.so", "ctor_crash.so");
	hd_launch_or_fail(&D);
	plugins_has(&D, "\"file\":\"ctor_crash.so\",\"reason\":\"probe: loading it killed the probe "
			"process with SIGSEGV");
	expect(&D, "/hooks/echo", "{\"e\":1}", 200, NULL);
	/* and at reload: a new file that crashes when mapped never reaches hookd */
	hd_install(&D, "fixtures/ctor_crash.so", "later.so");
	hd_signal(&D, SIGHUP);
	cr_assert(hd_wait_generation(&D, 2, 10000));
	plugins_has(&D, "\"file\":\"later.so\",\"reason\":\"probe: loading it killed the probe "
			"process with SIGSEGV");
	hd_post(&D, "/hooks/ctor_crash", "{}", &r);
	cr_assert_eq(r.status, 404);
	hd_resp_free(&r);
	expect(&D, "/hooks/echo", "{\"e\":2}", 200, NULL);
	cr_assert_eq(hd_stop(&D), 0);
}

/* A .so still being written when SIGHUP arrives (here: the first half of
 * one) is refused at the probe, whatever way it fails there. */
Test(isolate, a_half_written_file_is_refused_at_reload, .timeout = 60)
{
	char src[512], dst[600];
	size_t len;
	char *bytes;
	FILE *f;

	hd_prepare(&D, "", (const char *const[]){"echo", NULL});
	hd_launch_or_fail(&D);
	hd_build_path("plugins/echo_async.so", src, sizeof(src));
	bytes = hd_read_file(src, &len);
	cr_assert_not_null(bytes);
	snprintf(dst, sizeof(dst), "%s/partial.so", D.plugin_dir);
	f = fopen(dst, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(bytes, 1, len / 2, f), len / 2);
	fclose(f);
	chmod(dst, 0644);
	free(bytes);
	hd_signal(&D, SIGHUP);
	cr_assert(hd_wait_generation(&D, 2, 10000));
	plugins_has(&D, "\"file\":\"partial.so\",\"reason\":\"");
	cr_assert(hd_wait_log(&D, "partial.so rejected: ", 1, 5000));
	expect(&D, "/hooks/echo", "{\"e\":1}", 200, NULL);
	expect(&D, "/hooks/echo_async", "{}", 404, NULL);
	cr_assert_eq(hd_stop(&D), 0);
}

Test(isolate, rlimit_cpu_stops_a_runaway_process, .timeout = 90)
{
	hd_prepare(&D, "\"isolate_procs\": 1, \"hooks\": {\"spin\": {\"timeout_ms\": 60000}}, "
		       "\"plugins\": {\"spin_sync\": {\"isolate\": true, \"rlimit_cpu\": 1}}",
		   (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/spin_sync.so", "spin_sync.so");
	hd_launch_or_fail(&D);
	/* spins forever: the CPU limit ends it after 1 s of CPU */
	expect(&D, "/hooks/spin", "{\"spin\":true}", 502,
	       "plugin spin_sync crashed in its isolated process");
	cr_assert(hd_log_count(&D, "(SIGXCPU)") + hd_log_count(&D, "(SIGKILL)") >= 1);
	expect(&D, "/hooks/echo", "{\"e\":1}", 200, NULL);
	expect(&D, "/hooks/spin", "{\"n\":10}", 200, "\"n\":10");
	cr_assert_eq(hd_stop(&D), 0);
}
