/*
 * Chains: a hook runs its plugins one after the other, each step's output
 * being the next step's input, whatever the executor of each step (worker
 * pool for sync plugins, the loop for async ones).
 *
 * tag (sync) and tag_async append their configured label to the input's
 * "trace" array, so the answer shows which steps ran and in which order.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

static const char *const all[] = {"echo", "echo_async", "sleep", "delay", "tag",
				  "tag_async", "fail", NULL};

#define LABELS "\"plugins\": {\"tag\": {\"label\": \"S\"}, \"tag_async\": {\"label\": \"A\"}}"

/* POST and expect 200 with exactly `want` (plus the final newline). */
static void expect_answer(struct hd *d, const char *path, const char *body, const char *want)
{
	struct hd_resp r;
	char full[4096];

	snprintf(full, sizeof(full), "%s\n", want);
	hd_post(d, path, body, &r);
	cr_assert_eq(r.status, 200, "%s %s: %ld %s", path, body, r.status, r.body);
	cr_assert_str_eq(r.body, full, "%s %s", path, body);
	hd_resp_free(&r);
}

/* POST and expect an error `status` whose JSON body names `plugin` (or has
 * no "plugin" when NULL) and `hook`; returns the parsed body. */
static cJSON *expect_error(struct hd *d, const char *path, const char *body, long status,
			   const char *hook, const char *plugin)
{
	struct hd_resp r;
	cJSON *o, *p;

	hd_post(d, path, body, &r);
	cr_assert_eq(r.status, status, "%s %s: %ld %s", path, body, r.status, r.body);
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o, "not JSON: %s", r.body);
	cr_assert(cJSON_IsString(cJSON_GetObjectItem(o, "error")), "%s", r.body);
	cr_assert_eq(cJSON_GetObjectItem(o, "status")->valuedouble, (double)status, "%s", r.body);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "hook")->valuestring, hook, "%s", r.body);
	p = cJSON_GetObjectItem(o, "plugin");
	if (plugin) {
		cr_assert(cJSON_IsString(p), "no plugin named: %s", r.body);
		cr_assert_str_eq(p->valuestring, plugin, "%s", r.body);
	} else {
		cr_assert_null(p, "%s", r.body);
	}
	hd_resp_free(&r);
	return o;
}

/* The "chain" array that GET /plugins reports for `hook`, as compact JSON
 * text (malloc'ed), or NULL when the hook is not there. */
static char *reported_chain(struct hd *d, const char *hook, double *timeout_ms)
{
	struct hd_resp r;
	cJSON *o, *h;
	char *s = NULL;

	hd_get(d, "/plugins", &r);
	cr_assert_eq(r.status, 200);
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o);
	h = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(o, "hooks"), hook);
	if (h) {
		s = cJSON_PrintUnformatted(cJSON_GetObjectItem(h, "chain"));
		if (timeout_ms)
			*timeout_ms = cJSON_GetObjectItem(h, "timeout_ms")->valuedouble;
	}
	cJSON_Delete(o);
	hd_resp_free(&r);
	return s;
}

Test(chains, each_step_feeds_the_next_across_executors, .timeout = 30)
{
	struct hd d;

	hd_start(&d, LABELS ", \"hooks\": {"
		 "\"mixed\": {\"chain\": [\"tag\", \"tag_async\", \"tag\", \"tag_async\"]},"
		 "\"async_first\": {\"chain\": [\"tag_async\", \"tag\", \"tag\", \"tag_async\", "
		 "\"tag_async\"]},"
		 "\"all_sync\": {\"chain\": [\"tag\", \"tag\", \"tag\"]},"
		 "\"all_async\": {\"chain\": [\"tag_async\", \"tag_async\", \"tag_async\"]},"
		 "\"with_echo\": {\"chain\": [\"echo_async\", \"tag\", \"echo\", \"tag_async\", "
		 "\"echo\"]}}",
		 all);
	expect_answer(&d, "/hooks/mixed", "{\"trace\":[]}", "{\"trace\":[\"S\",\"A\",\"S\",\"A\"]}");
	/* the rest of the input rides along untouched; an existing trace is
	 * extended */
	expect_answer(&d, "/hooks/mixed", "{\"n\":1.5,\"trace\":[\"in\"],\"z\":null}",
		      "{\"n\":1.5,\"trace\":[\"in\",\"S\",\"A\",\"S\",\"A\"],\"z\":null}");
	expect_answer(&d, "/hooks/mixed", "{\"k\":\"v\"}",
		      "{\"k\":\"v\",\"trace\":[\"S\",\"A\",\"S\",\"A\"]}");
	expect_answer(&d, "/hooks/async_first", "{}", "{\"trace\":[\"A\",\"S\",\"S\",\"A\",\"A\"]}");
	expect_answer(&d, "/hooks/all_sync", "{}", "{\"trace\":[\"S\",\"S\",\"S\"]}");
	expect_answer(&d, "/hooks/all_async", "{}", "{\"trace\":[\"A\",\"A\",\"A\"]}");
	expect_answer(&d, "/hooks/with_echo", "{\"x\":[1,2]}", "{\"x\":[1,2],\"trace\":[\"S\",\"A\"]}");
	/* a plugin's own hook is still a one-step chain */
	expect_answer(&d, "/hooks/tag", "{}", "{\"trace\":[\"S\"]}");
	expect_answer(&d, "/hooks/tag_async", "{}", "{\"trace\":[\"A\"]}");

	char *c = reported_chain(&d, "mixed", NULL);
	cr_assert_str_eq(c, "[\"tag\",\"tag_async\",\"tag\",\"tag_async\"]");
	free(c);
	cr_assert_eq(hd_stop(&d), 0);
}

/* Builds a plugin that appends its own name to "trace" and serves the hook
 * "shared" (and one named after itself), sync or async. */
static void build_tracer(struct hd *d, const char *file, const char *name, bool async)
{
	static const char src[] =
		"#include <hookd.h>\n"
		"static int apply(cJSON *in)\n"
		"{\n"
		"	cJSON *t = cJSON_GetObjectItemCaseSensitive(in, \"trace\");\n"
		"	if (!cJSON_IsArray(t))\n"
		"		t = cJSON_AddArrayToObject(in, \"trace\");\n"
		"	return t && cJSON_AddItemToArray(t, cJSON_CreateString(NAME)) ? 0 : -1;\n"
		"}\n"
		"#ifdef ASYNC\n"
		"static void run(const hookd_ctx *ctx, hookd_call *call, cJSON *in)\n"
		"{\n"
		"	if (apply(in) < 0) { hookd_fail(ctx, call, 400, \"no\"); return; }\n"
		"	hookd_complete(ctx, call, in);\n"
		"}\n"
		"HOOKD_PLUGIN_ASYNC(NAME, \"1\", HOOKD_HOOKS(\"shared\", NAME), 0, 0, run);\n"
		"#else\n"
		"static cJSON *run(const hookd_ctx *ctx, hookd_call *call, cJSON *in)\n"
		"{\n"
		"	if (apply(in) < 0) { hookd_fail(ctx, call, 400, \"no\"); return 0; }\n"
		"	return in;\n"
		"}\n"
		"HOOKD_PLUGIN_SYNC(NAME, \"1\", HOOKD_HOOKS(\"shared\", NAME), 0, 0, run);\n"
		"#endif\n";
	char c_path[512], tmp[512], so[512], cmd[2048];
	FILE *f;

	snprintf(c_path, sizeof(c_path), "%s/tracer.c", d->dir);
	f = fopen(c_path, "w");
	cr_assert_not_null(f);
	fputs(src, f);
	fclose(f);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", d->plugin_dir, file);
	snprintf(so, sizeof(so), "%s/%s", d->plugin_dir, file);
	snprintf(cmd, sizeof(cmd),
		 "cc -std=c11 -O1 -fPIC -shared -fvisibility=hidden -Wl,--no-undefined -I sdk "
		 "-DNAME='\"%s\"' %s -o %s %s -lcjson",
		 name, async ? "-DASYNC" : "", tmp, c_path);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	cr_assert_eq(rename(tmp, so), 0);
}

/* No "chain" in the config: the hook runs every plugin that lists it, in
 * file-name order (not plugin-name order, not load order of hooks). */
Test(chains, implicit_chain_is_every_plugin_of_the_hook_in_file_name_order, .timeout = 60)
{
	struct hd d;
	double t;

	hd_prepare(&d, LABELS ", \"hooks\": {\"shared\": {\"timeout_ms\": 4000}, "
		   "\"picked\": {\"chain\": [\"mike\", \"zulu\"]}}",
		   all);
	/* file names sort a < b < c; plugin names sort the other way round */
	build_tracer(&d, "a_first.so", "zulu", false);
	build_tracer(&d, "b_second.so", "mike", true);
	build_tracer(&d, "c_third.so", "alpha", false);
	cr_assert(hd_launch(&d, 10000));

	expect_answer(&d, "/hooks/shared", "{}", "{\"trace\":[\"zulu\",\"mike\",\"alpha\"]}");
	expect_answer(&d, "/hooks/shared", "{\"trace\":[0]}",
		      "{\"trace\":[0,\"zulu\",\"mike\",\"alpha\"]}");
	char *c = reported_chain(&d, "shared", &t);
	cr_assert_str_eq(c, "[\"zulu\",\"mike\",\"alpha\"]");
	cr_assert_eq(t, 4000, "a hook setting without a chain keeps the implicit chain");
	free(c);
	/* an explicit chain names its own steps */
	expect_answer(&d, "/hooks/picked", "{}", "{\"trace\":[\"mike\",\"zulu\"]}");
	/* each plugin's own hook is a one-step implicit chain */
	expect_answer(&d, "/hooks/mike", "{}", "{\"trace\":[\"mike\"]}");
	expect_answer(&d, "/hooks/tag", "{}", "{\"trace\":[\"S\"]}");
	cr_assert_eq(hd_stop(&d), 0);
}

Test(chains, failing_step_stops_the_chain_with_its_status, .timeout = 30)
{
	struct hd d;
	cJSON *o;
	double t0;

	hd_start(&d, LABELS ", \"hooks\": {"
		 "\"sync_mid\": {\"chain\": [\"tag\", \"fail\", \"tag\"]},"
		 "\"async_mid\": {\"chain\": [\"tag_async\", \"fail\", \"tag_async\"]},"
		 "\"then_delay\": {\"chain\": [\"tag_async\", \"fail\", \"delay\"]},"
		 "\"then_sleep\": {\"chain\": [\"delay\", \"fail\", \"sleep\"]},"
		 "\"async_fails\": {\"chain\": [\"echo\", \"tag_async\", \"tag\"]},"
		 "\"sync_fails\": {\"chain\": [\"echo_async\", \"tag\", \"tag_async\"]},"
		 "\"fine\": {\"chain\": [\"tag\", \"tag_async\"]}}",
		 all);
	o = expect_error(&d, "/hooks/sync_mid", "{\"status\": 409, \"message\": \"conflict here\"}",
			 409, "sync_mid", "fail");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "error")->valuestring, "conflict here");
	cJSON_Delete(o);
	o = expect_error(&d, "/hooks/async_mid", "{\"message\": \"nope\"}", 422, "async_mid",
			 "fail");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "error")->valuestring, "nope");
	cJSON_Delete(o);

	/* the steps after the failure never run: a 3 s delay or sleep would
	 * hold the answer */
	t0 = hd_now_ms();
	cJSON_Delete(expect_error(&d, "/hooks/then_delay", "{\"ms\": 3000, \"status\": 451}", 451,
				  "then_delay", "fail"));
	cr_assert_lt(hd_now_ms() - t0, 1500.0 * hd_scale(), "the delay after the failure ran");
	t0 = hd_now_ms();
	cJSON_Delete(expect_error(&d, "/hooks/then_sleep", "{\"ms\": 1000, \"status\": 503}", 503,
				  "then_sleep", "fail"));
	double took = hd_now_ms() - t0;
	cr_assert_geq(took, 990.0, "the first step (delay 1000) ran before the failure");
	cr_assert_lt(took, 1000.0 + 700.0 * hd_scale(), "the sleep after the failure ran");

	/* a step that fails on its own (tag* refuse a non-object input), async
	 * and sync, in the middle of a chain */
	cJSON_Delete(expect_error(&d, "/hooks/async_fails", "[1,2]", 400, "async_fails",
				  "tag_async"));
	cJSON_Delete(expect_error(&d, "/hooks/sync_fails", "\"str\"", 400, "sync_fails", "tag"));
	/* an out-of-range status from the plugin becomes 500, still named */
	cJSON_Delete(expect_error(&d, "/hooks/sync_mid", "{\"status\": 302}", 500, "sync_mid",
				  "fail"));
	/* nothing of the failures leaks into the next calls */
	expect_answer(&d, "/hooks/fine", "{}", "{\"trace\":[\"S\",\"A\"]}");
	cr_assert_eq(hd_stop(&d), 0);
}

Test(chains, timeout_ms_of_a_hook_applies_to_that_hook_only, .timeout = 60)
{
	struct hd d;
	double t0, took, t;
	char *c;
	cJSON *o;

	hd_start(&d, "\"workers\": 4, \"timeout_ms\": 10000, \"hooks\": {"
		 "\"quick\": {\"chain\": [\"delay\"], \"timeout_ms\": 150},"
		 "\"sleep\": {\"timeout_ms\": 150},"
		 "\"slow_sleep\": {\"chain\": [\"sleep\"]},"
		 "\"two\": {\"chain\": [\"echo\", \"delay\", \"delay\"], \"timeout_ms\": 300}}",
		 all);
	c = reported_chain(&d, "quick", &t);
	cr_assert_eq(t, 150);
	free(c);
	c = reported_chain(&d, "delay", &t);
	cr_assert_eq(t, 10000);
	free(c);

	/* the hook with the short deadline: 504 at its deadline, naming the
	 * step that was running */
	t0 = hd_now_ms();
	o = expect_error(&d, "/hooks/quick", "{\"ms\": 2000}", 504, "quick", "delay");
	took = hd_now_ms() - t0;
	cr_assert_not_null(strstr(cJSON_GetObjectItem(o, "error")->valuestring, "150 ms"), "%s",
			   cJSON_GetObjectItem(o, "error")->valuestring);
	cJSON_Delete(o);
	cr_assert_geq(took, 140.0);
	cr_assert_lt(took, 1000.0 * hd_scale());
	/* the same plugin under its own hook: the global 10 s */
	t0 = hd_now_ms();
	expect_answer(&d, "/hooks/delay", "{\"ms\": 400}", "{\"ms\":400}");
	cr_assert_geq(hd_now_ms() - t0, 390.0);

	/* a setting for an implicit chain (hook "sleep") */
	t0 = hd_now_ms();
	cJSON_Delete(expect_error(&d, "/hooks/sleep", "{\"ms\": 2000}", 504, "sleep", "sleep"));
	took = hd_now_ms() - t0;
	cr_assert_geq(took, 140.0);
	cr_assert_lt(took, 1000.0 * hd_scale(), "504 at the deadline, not when the sleep ends");
	/* the plugin "sleep" in another hook is not bound by the "sleep" hook's
	 * deadline: timeouts belong to hooks, not plugins */
	expect_answer(&d, "/hooks/slow_sleep", "{\"ms\": 400}", "{\"ms\":400}");

	/* the deadline covers the whole chain, not each step: 2 x 200 ms is
	 * over 300 ms though each step alone is not */
	cJSON_Delete(expect_error(&d, "/hooks/two", "{\"ms\": 200}", 504, "two", "delay"));
	expect_answer(&d, "/hooks/two", "{\"ms\": 20}", "{\"ms\":20}");
	cr_assert_eq(hd_stop(&d), 0);
}

/* async, sync, async (and the other way round): the steps run one after
 * the other, so the answer comes after the sum of their waits, and no
 * step waits for more than its own time. */
Test(chains, mixed_waiting_steps_take_the_sum_of_their_times, .timeout = 60)
{
	static const struct {
		const char *hook;
		double steps;
	} cases[] = {{"asa", 3}, {"sas", 3}, {"aa_ss", 4}};
	struct hd d;

	hd_start(&d, "\"workers\": 2, \"hooks\": {"
		 "\"asa\": {\"chain\": [\"delay\", \"sleep\", \"delay\"]},"
		 "\"sas\": {\"chain\": [\"sleep\", \"delay\", \"sleep\"]},"
		 "\"aa_ss\": {\"chain\": [\"delay\", \"delay\", \"sleep\", \"sleep\"]}}",
		 all);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[64];
		double t0 = hd_now_ms(), took;
		snprintf(path, sizeof(path), "/hooks/%s", cases[i].hook);
		expect_answer(&d, path, "{\"ms\": 120}", "{\"ms\":120}");
		took = hd_now_ms() - t0;
		cr_assert_geq(took, cases[i].steps * 120 - 5, "%s took %.0f ms", path, took);
		cr_assert_lt(took, cases[i].steps * 120 + 400.0 * hd_scale(), "%s took %.0f ms", path,
			     took);
	}
	cr_assert_eq(hd_stop(&d), 0);
}

/* A plugin whose init refuses is rejected, with the reason, and nothing
 * else changes: the other plugins load and answer, their chains work, and
 * a chain that needs the rejected plugin answers 503 saying why. */
Test(chains, plugin_failing_init_is_rejected_alone, .timeout = 30)
{
	struct hd d;
	struct hd_resp r;
	cJSON *o, *p, *rej;

	hd_prepare(&d, LABELS ", \"hooks\": {"
		   "\"mixed\": {\"chain\": [\"tag\", \"tag_async\"]},"
		   "\"needs\": {\"chain\": [\"tag\", \"init_fail\", \"tag_async\"]}}",
		   all);
	hd_install(&d, "fixtures/init_fail.so", "init_fail.so");
	cr_assert(hd_launch(&d, 10000));

	hd_get(&d, "/plugins", &r);
	cr_assert_eq(r.status, 200);
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o);
	p = cJSON_GetObjectItem(o, "plugins");
	cr_assert_eq(cJSON_GetArraySize(p), 7, "%s", r.body);
	for (int i = 0; i < cJSON_GetArraySize(p); i++)
		cr_assert_str_neq(cJSON_GetObjectItem(cJSON_GetArrayItem(p, i), "name")->valuestring,
				  "init_fail");
	rej = cJSON_GetObjectItem(o, "rejected");
	cr_assert_eq(cJSON_GetArraySize(rej), 1, "%s", r.body);
	cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(rej, 0), "file")->valuestring,
			 "init_fail.so");
	cr_assert_not_null(strstr(cJSON_GetObjectItem(cJSON_GetArrayItem(rej, 0), "reason")
					  ->valuestring, "init failed"), "%s", r.body);
	cJSON_Delete(o);
	hd_resp_free(&r);
	/* the plugin said why, in the log, under its name */
	cr_assert(hd_wait_log(&d, "plugin init_fail: missing database URL", 1, 2000));

	hd_post(&d, "/hooks/init_fail", "{}", &r);
	cr_assert_eq(r.status, 404, "%s", r.body);
	hd_resp_free(&r);
	hd_post(&d, "/hooks/needs", "{}", &r);
	cr_assert_eq(r.status, 503, "%s", r.body);
	cr_assert_not_null(strstr(r.body, "init_fail"), "%s", r.body);
	hd_resp_free(&r);

	expect_answer(&d, "/hooks/mixed", "{}", "{\"trace\":[\"S\",\"A\"]}");
	expect_answer(&d, "/hooks/echo", "{\"a\":1}", "{\"a\":1}");
	expect_answer(&d, "/hooks/delay", "{\"ms\":1}", "{\"ms\":1}");
	cr_assert_eq(hd_stop(&d), 0);
}
