/*
 * What a plugin returns is checked before it is sent: an output that is
 * not valid JSON, or larger than max_output, is a 502 naming the plugin
 * (never a 200 with broken JSON, never a loop stalled printing it), and the
 * memory such an output took is given back.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(output, .fini = hd_suite_teardown);

static struct hd D;

static void expect_502(struct hd *d, const char *body, const char *outcome, const char *msg)
{
	struct hd_resp r;

	hd_post(d, "/hooks/bad_output", body, &r);
	cr_assert_eq(r.status, 502, "%s: %ld %s", body, r.status, r.body);
	cr_assert(strstr(r.body, "\"plugin\":\"bad_output\""), "%s", r.body);
	cr_assert(strstr(r.body, outcome), "%s", r.body);
	cr_assert(strstr(r.body, msg), "%s", r.body);
	cr_assert(strstr(r.body, "\"generation\":1"), "%s", r.body);
	hd_resp_free(&r);
	/* and the daemon serves on */
	hd_post(d, "/hooks/echo", "{\"after\":true}", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"after\":true}\n");
	hd_resp_free(&r);
}

Test(output, an_output_that_is_not_json_is_a_502_naming_the_plugin, .timeout = 60)
{
	hd_prepare(&D, "", (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/bad_output.so", "bad_output.so");
	hd_launch_or_fail(&D);
	expect_502(&D, "{\"kind\":\"nan\"}", "\"outcome\":\"bad_output\"",
		   "plugin bad_output returned an output that is not valid JSON");
	expect_502(&D, "{\"kind\":\"raw\"}", "\"outcome\":\"bad_output\"", "not valid JSON");
	expect_502(&D, "{\"kind\":\"noname\"}", "\"outcome\":\"bad_output\"", "not valid JSON");
	cr_assert_eq(hd_log_count(&D, "hook bad_output, generation 1: plugin bad_output returned "
				      "an output that is not valid JSON"), 3);
	cr_assert_eq(hd_stop(&D), 0);
}

static long rss_kb(struct hd *d)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)d->pid);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

Test(output, an_output_over_max_output_is_refused_and_its_memory_given_back, .timeout = 120)
{
	const char *build = getenv("HOOKD_BUILD");
	struct hd_resp r;
	long before, after;

	hd_prepare(&D, "\"max_output\": 1048576", (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/bad_output.so", "bad_output.so");
	hd_launch_or_fail(&D);

	/* just under the limit: sent whole */
	hd_post(&D, "/hooks/bad_output", "{\"kind\":\"big\",\"kb\":1000}", &r);
	cr_assert_eq(r.status, 200, "%ld", r.status);
	cr_assert_eq(r.len, 1000 * 1027 + 2, "%zu bytes", r.len); /* "x..."(1026) + ',' */
	hd_resp_free(&r);
	before = rss_kb(&D);

	/* 64 MiB of JSON against a 1 MiB limit */
	hd_post(&D, "/hooks/bad_output", "{\"kind\":\"big\",\"kb\":65536}", &r);
	cr_assert_eq(r.status, 502, "%ld", r.status);
	cr_assert(strstr(r.body, "the output of plugin bad_output is larger than max_output "
				 "(1048576 bytes)"), "%s", r.body);
	cr_assert(strstr(r.body, "\"outcome\":\"output_too_large\""), "%s", r.body);
	hd_resp_free(&r);
	after = rss_kb(&D);
	/* the sanitizers' allocators keep freed memory (ASan's quarantine,
	 * TSan's own heap): RSS says nothing about glibc there */
	if ((!build || !strstr(build, "asan")) && hd_scale() == 1)
		cr_assert_lt(after, before + 16 * 1024,
			     "RSS %ld kB before, %ld kB after a refused 64 MiB output", before,
			     after);
	hd_post(&D, "/hooks/echo", "{\"after\":true}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&D), 0);
}

/* A plugin that never finishes a call the host cancelled keeps the call and
 * its generation loaded: the log names it, a few seconds after the cancel. */
Test(output, a_cancelled_call_a_plugin_never_finishes_is_named, .timeout = 60)
{
	struct hd_resp r;

	hd_prepare(&D, "\"hooks\": {\"never\": {\"timeout_ms\": 100}}",
		   (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/never_async.so", "never_async.so");
	hd_launch_or_fail(&D);
	hd_post(&D, "/hooks/never", "{}", &r);
	cr_assert_eq(r.status, 504, "%ld %s", r.status, r.body);
	hd_resp_free(&r);
	cr_assert(hd_wait_log(&D, "plugin never_async has not finished a call of hook never "
				  "(generation 1) 5000 ms after hookd cancelled it", 1, 20000));
	cr_assert_eq(hd_health(&D, "calls_held"), 1);
	hd_post(&D, "/hooks/echo", "{\"still\":1}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&D), 0);
}

/* Calls a plugin never finishes cannot grow without bound: once it holds
 * `queue` of them, its new calls are refused (503 naming it); others serve. */
Test(output, cancelled_calls_a_plugin_never_finishes_are_bounded, .timeout = 60)
{
	struct hd_resp r;

	hd_prepare(&D, "\"queue\": 3, \"hooks\": {\"never\": {\"timeout_ms\": 50}}",
		   (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/never_async.so", "never_async.so");
	hd_launch_or_fail(&D);
	for (int i = 0; i < 3; i++) {
		hd_post(&D, "/hooks/never", "{}", &r);
		cr_assert_eq(r.status, 504, "%ld %s", r.status, r.body);
		hd_resp_free(&r);
	}
	hd_post(&D, "/hooks/never", "{}", &r);
	cr_assert_eq(r.status, 503, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "plugin never_async holds 3 cancelled calls it never finished "
				 "(the bound is queue = 3)"), "%s", r.body);
	cr_assert(strstr(r.body, "\"plugin\":\"never_async\""), "%s", r.body);
	hd_resp_free(&r);
	/* hookd writes a reply from inside the call's done callback, before the
	 * call is released: /health on the other loop may still count the
	 * refused call live for a moment */
	cr_assert(hd_wait_health(&D, "calls_held", 3, 5000), "calls_held %.0f, expected 3",
		  hd_health(&D, "calls_held"));
	hd_post(&D, "/hooks/echo", "{\"still\":1}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&D), 0);
}
