/*
 * The README's promise: a plugin written from it, compiled with its
 * one-line command, dropped into the folder and picked up by SIGHUP.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

/* The compile command exactly as the README shows it (with -I sdk because
 * the test runs from the source tree instead of an installed header). */
#define README_CC "cc -std=c11 -O2 -fPIC -shared -fvisibility=hidden -Wl,--no-undefined " \
		  "-I sdk -o %s %s -lcjson"

static void compile(const char *src, const char *out)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), README_CC, out, src);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

Test(examples, readme_plugins_compile_load_and_answer, .timeout = 60)
{
	struct hd d;
	struct hd_resp r;
	char so[512], tmp[600];

	hd_start(&d, "", (const char *const[]){"echo", NULL});
	hd_post(&d, "/hooks/greet", "{\"name\":\"Ada\"}", &r);
	cr_assert_eq(r.status, 404);
	hd_resp_free(&r);

	/* build into a temp name, then rename: the way the README says */
	snprintf(tmp, sizeof(tmp), "%s/.hello.so.tmp", d.plugin_dir);
	snprintf(so, sizeof(so), "%s/hello.so", d.plugin_dir);
	compile("plugins/hello.c", tmp);
	cr_assert_eq(rename(tmp, so), 0);
	snprintf(tmp, sizeof(tmp), "%s/.hello_async.so.tmp", d.plugin_dir);
	snprintf(so, sizeof(so), "%s/hello_async.so", d.plugin_dir);
	compile("plugins/hello_async.c", tmp);
	cr_assert_eq(rename(tmp, so), 0);
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 2, 5000));

	hd_post(&d, "/hooks/greet", "{\"name\":\"Ada\"}", &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(r.body, "{\"greeting\":\"Hello, Ada!\"}\n");
	hd_resp_free(&r);
	hd_post(&d, "/hooks/greet", "{\"name\":42}", &r);
	cr_assert_eq(r.status, 422);
	cr_assert(strstr(r.body, "\"plugin\":\"hello\""), "%s", r.body);
	hd_resp_free(&r);
	hd_post(&d, "/hooks/greet_later", "{\"ms\":50}", &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(r.body, "{\"ms\":50,\"greeting\":\"Hello, later!\"}\n");
	cr_assert_geq(r.seconds, 0.045);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}
