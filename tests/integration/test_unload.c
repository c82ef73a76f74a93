/*
 * Unloading is safe: a plugin that leaves a thread running (or a pthread
 * key with a destructor in its code) after fini keeps its code mapped,
 * named in the log, instead of crashing the daemon at the next reload or
 * at shutdown; a plugin that stops its threads is unloaded as before.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(unload, .fini = hd_suite_teardown);

static struct hd D;

/* POST `body` to /hooks/`hook`, expect 200 and a body holding `want`. */
static void call_ok(struct hd *d, const char *hook, const char *body, const char *want)
{
	char path[128];
	struct hd_resp r;

	snprintf(path, sizeof(path), "/hooks/%s", hook);
	hd_post(d, path, body, &r);
	cr_assert_eq(r.status, 200, "%s: %ld %s", hook, r.status, r.body);
	cr_assert(strstr(r.body, want), "%s: %s lacks %s", hook, r.body, want);
	hd_resp_free(&r);
}

/* Remove `file`, SIGHUP, wait for generation 2 and for the unload's log line. */
static void remove_and_reload(struct hd *d, const char *file, const char *line)
{
	hd_uninstall(d, file);
	hd_signal(d, SIGHUP);
	cr_assert(hd_wait_generation(d, 2, 10000), "generation 2 never came");
	cr_assert(hd_wait_log(d, line, 1, 10000), "no \"%s\" in the log", line);
}

Test(unload, a_thread_left_running_keeps_the_code_mapped_and_the_daemon_alive, .timeout = 60)
{
	hd_prepare(&D, "", (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/leak_thread.so", "leak_thread.so");
	hd_launch_or_fail(&D);
	call_ok(&D, "leak_thread", "{}", "\"ticks\":");

	remove_and_reload(&D, "leak_thread.so",
			  "plugin leak_thread (leak_thread.so, generation 1) left 1 thread "
			  "running after fini: its code stays mapped");
	cr_assert_eq(hd_log_count(&D, "unloaded plugin leak_thread"), 0);
	/* the thread wakes every 5 ms: unmapped code would have crashed by now */
	hd_sleep_ms(100);
	call_ok(&D, "echo", "{\"still\":\"serving\"}", "\"still\":\"serving\"");
	cr_assert_eq(hd_stop(&D), 0, "exit status %d", D.exit_status);
}

/* init runs inside the plugin's blame frame too: a changed config section
 * loads a new copy, and the old one's thread, started by init, is seen */
Test(unload, a_thread_started_in_init_is_seen, .timeout = 60)
{
	const char *line = "plugin leak_thread (leak_thread.so, generation 1) left 1 thread "
			   "running after fini: its code stays mapped";

	hd_prepare(&D, "\"plugins\": {\"leak_thread\": {\"start\": \"init\"}}",
		   (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/leak_thread.so", "leak_thread.so");
	hd_launch_or_fail(&D);
	hd_write_config(&D, "\"plugins\": {\"leak_thread\": {\"start\": \"init\", \"v\": 2}}");
	hd_signal(&D, SIGHUP);
	cr_assert(hd_wait_generation(&D, 2, 10000), "generation 2 never came");
	cr_assert(hd_wait_log(&D, line, 1, 10000), "no \"%s\" in the log", line);
	hd_sleep_ms(100);
	call_ok(&D, "leak_thread", "{}", "\"ticks\":");
	cr_assert_eq(hd_stop(&D), 0, "exit status %d", D.exit_status);
}

Test(unload, a_key_left_with_a_destructor_keeps_the_code_mapped, .timeout = 60)
{
	hd_prepare(&D, "", (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/leak_key.so", "leak_key.so");
	hd_launch_or_fail(&D);
	call_ok(&D, "leak_key", "{\"k\":1}", "\"k\":1");

	remove_and_reload(&D, "leak_key.so",
			  "plugin leak_key (leak_key.so, generation 1) left 1 pthread key with a "
			  "destructor in its code after fini: its code stays mapped");
	call_ok(&D, "echo", "{\"still\":\"serving\"}", "\"still\":\"serving\"");
	/* the workers exit at shutdown and run the key's destructor */
	cr_assert_eq(hd_stop(&D), 0, "exit status %d", D.exit_status);
}

static void good_thread_unloads(const char *members)
{
	hd_prepare(&D, members, (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/good_thread.so", "good_thread.so");
	hd_launch_or_fail(&D);
	call_ok(&D, "good_thread", "{}", "\"ticks\":");

	remove_and_reload(&D, "good_thread.so",
			  "unloaded plugin good_thread (good_thread.so, generation 1)");
	cr_assert_eq(hd_log_count(&D, "its code stays mapped"), 0);
	call_ok(&D, "echo", "{\"still\":\"serving\"}", "\"still\":\"serving\"");
	cr_assert_eq(hd_stop(&D), 0, "exit status %d", D.exit_status);
}

Test(unload, a_thread_joined_in_fini_is_unloaded_normally, .timeout = 60)
{
	good_thread_unloads("");
}

/* fini tells the thread to stop and returns without joining it: the
 * unload waits the moment it takes the thread to go */
Test(unload, a_thread_ending_just_after_fini_is_unloaded_normally, .timeout = 60)
{
	good_thread_unloads("\"plugins\": {\"good_thread\": {\"join\": false}}");
}
