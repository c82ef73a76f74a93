/*
 * A plugin that crashes the daemon: the crash explains itself (signal,
 * plugin, file, generation, hook, backtrace), the daemon dies of that signal,
 * and the crash record makes the next start run the same file isolated (in
 * child processes: it can crash only those) until a new version of it is
 * installed.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/harness.h"

TestSuite(crash, .fini = hd_suite_teardown);

static struct hd D;

/* Relaunch a daemon that died, with a fresh log (the old one is kept as
 * log.before so that its lines cannot be mistaken for the new run's). */
static void relaunch(struct hd *d)
{
	char old[400];

	snprintf(old, sizeof(old), "%s.before", d->log);
	cr_assert_eq(rename(d->log, old), 0);
	d->stopped = false;
	d->port = 0; /* a new port: port 0 in the config */
	hd_launch_or_fail(d);
}

Test(crash, a_crashing_plugin_is_named_and_isolated_until_replaced, .timeout = 90)
{
	struct hd_resp r;
	char record[400];
	char *text;

	hd_prepare(&D, "\"state_dir\": \"state\"", (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/crash_sync.so", "crash_sync.so");
	hd_launch_or_fail(&D);

	hd_post(&D, "/hooks/crash", "{\"a\":1}", &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	hd_resp_free(&r);

	hd_post(&D, "/hooks/crash", "{\"crash\":true}", &r);
	cr_assert_eq(r.status, 0, "the daemon answered %ld instead of dying", r.status);
	hd_resp_free(&r);
	cr_assert(hd_wait_exit(&D, 10000), "the daemon did not die");
	cr_assert_eq(D.exit_status, 128 + SIGSEGV, "exit status %d", D.exit_status);
	cr_assert_eq(hd_log_count(&D, "hookd crashed: SIGSEGV at address 0x0 in plugin crash_sync "
				      "(file crash_sync.so, generation 1) serving hook crash "
				      "(call_sync)"), 1);
	cr_assert_geq(hd_log_count(&D, "crash_sync.so(+0x"), 1, "no backtrace through the plugin");

	snprintf(record, sizeof(record), "%s/state/crash.json", D.dir);
	text = hd_read_file(record, NULL);
	cr_assert_not_null(text, "no crash record at %s", record);
	cr_assert(strstr(text, "\"plugin\":\"crash_sync\"") && strstr(text, "\"signal\":\"SIGSEGV\""),
		  "%s", text);
	free(text);

	/* the next start runs the same file isolated, and serves everything else */
	relaunch(&D);
	cr_assert_eq(hd_log_count(&D, "plugin crash_sync (file crash_sync.so) crashed the host at "), 1);
	/* the dead run's private copies are gone */
	cr_assert_eq(hd_log_count(&D, "that ended without cleaning up"), 1);
	hd_get(&D, "/plugins", &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, "\"why\":\"isolated after it crashed the host at "), "%s", r.body);
	cr_assert(strstr(r.body, "(SIGSEGV in hook crash, call_sync, generation 1)"), "%s", r.body);
	hd_resp_free(&r);
	hd_post(&D, "/hooks/echo", "{\"still\":\"serving\"}", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"still\":\"serving\"}\n");
	hd_resp_free(&r);
	hd_post(&D, "/hooks/crash", "{\"a\":1}", &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	hd_resp_free(&r);
	/* crashing again costs its own process and that call only */
	hd_post(&D, "/hooks/crash", "{\"crash\":true}", &r);
	cr_assert_eq(r.status, 502, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "plugin crash_sync crashed in its isolated process"), "%s", r.body);
	cr_assert(strstr(r.body, "(SIGSEGV)"), "%s", r.body);
	cr_assert(strstr(r.body, "\"outcome\":\"crashed\""), "%s", r.body);
	hd_resp_free(&r);
	hd_post(&D, "/hooks/echo", "{\"after\":1}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);

	/* a reload with the same file keeps it isolated */
	hd_signal(&D, SIGHUP);
	cr_assert(hd_wait_generation(&D, 2, 10000));
	hd_get(&D, "/plugins", &r);
	cr_assert(strstr(r.body, "\"why\":\"isolated after it crashed the host at "), "%s", r.body);
	hd_resp_free(&r);

	/* a new version of the file clears the record and loads */
	hd_install(&D, "fixtures/crash_sync.so", "crash_sync.so");
	hd_signal(&D, SIGHUP);
	cr_assert(hd_wait_generation(&D, 3, 10000));
	hd_post(&D, "/hooks/crash", "{\"a\":2}", &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	hd_resp_free(&r);
	cr_assert_eq(hd_log_count(&D, "crash record cleared: crash_sync.so changed"), 1);
	hd_get(&D, "/plugins", &r);
	cr_assert_null(strstr(r.body, "\"isolated\""), "%s", r.body);
	hd_resp_free(&r);
	cr_assert_eq(access(record, F_OK), -1, "the crash record is still there");
	cr_assert_eq(hd_stop(&D), 0);
}

Test(crash, without_a_state_dir_the_crash_is_still_named, .timeout = 60)
{
	struct hd_resp r;

	hd_prepare(&D, "", (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/crash_sync.so", "crash_sync.so");
	hd_launch_or_fail(&D);
	cr_assert_eq(hd_log_count(&D, "no state_dir: a plugin that crashes the host will not be "
				      "remembered across restarts"), 1);
	hd_post(&D, "/hooks/crash", "{\"crash\":true}", &r);
	cr_assert_eq(r.status, 0);
	hd_resp_free(&r);
	cr_assert(hd_wait_exit(&D, 10000));
	cr_assert_eq(D.exit_status, 128 + SIGSEGV);
	cr_assert_eq(hd_log_count(&D, "in plugin crash_sync (file crash_sync.so, generation 1) "
				      "serving hook crash (call_sync)"), 1);
	cr_assert_eq(hd_log_count(&D, "crash record written"), 0);
	relaunch(&D);
	hd_post(&D, "/hooks/crash", "{\"a\":1}", &r);
	cr_assert_eq(r.status, 200, "loaded again: nothing remembered");
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&D), 0);
}
