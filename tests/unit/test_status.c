/*
 * status: the last load's outcome (sequence, result, counters, rejected
 * files, the reason of a failure) and the readiness verdict of a
 * generation (no generation, no plugin, a hook whose chain cannot run).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../../host/status.h"

TestSuite(status);

Test(status, reload_outcomes_are_recorded_in_order)
{
	struct status st;
	struct status_reload r;
	struct loader_reject rej[2] = {{"a.so", "not an ELF file"}, {"b.so", "no descriptor"}};
	struct generation g1 = {.id = 1}, g2 = {.id = 2};

	cr_assert_eq(status_init(&st), 0);
	status_load_begin(&st);
	uint64_t before = status_now_us();
	status_load_ok(&st, &g1, true);
	status_last(&st, &r);
	cr_assert_eq(r.seq, 1);
	cr_assert(r.ok);
	cr_assert_eq(r.generation, 1);
	cr_assert_eq(r.ok_total, 0, "the start-up load is not a reload");
	cr_assert_leq(r.started_us, before);

	status_load_begin(&st);
	status_load_failed(&st, 1, "conf.json: workers: expected an integer");
	status_last(&st, &r);
	cr_assert_eq(r.seq, 2);
	cr_assert_not(r.ok);
	cr_assert_eq(r.generation, 1, "the generation still served");
	cr_assert_eq(r.failed_total, 1);
	cr_assert_str_eq(r.errors, "conf.json: workers: expected an integer");
	cr_assert_geq(r.started_us, before);

	g2.lr.rejects = rej;
	g2.lr.nrejects = 2;
	status_load_begin(&st);
	status_load_ok(&st, &g2, false);
	status_last(&st, &r);
	cr_assert_eq(r.seq, 3);
	cr_assert(r.ok);
	cr_assert_eq(r.ok_total, 1);
	cr_assert_eq(r.failed_total, 1);
	cr_assert_eq(r.rejected, 2);
	cr_assert_str_eq(r.errors, "a.so: not an ELF file; b.so: no descriptor");

	cJSON *o = cJSON_CreateObject();
	status_describe_reload(&st, o);
	const cJSON *lr = cJSON_GetObjectItem(o, "last_reload");
	cr_assert_str_eq(cJSON_GetObjectItem(lr, "result")->valuestring, "ok");
	cr_assert_eq(cJSON_GetObjectItem(lr, "generation")->valuedouble, 2);
	cr_assert_eq(strlen(cJSON_GetObjectItem(lr, "time")->valuestring),
		     strlen("2026-12-07T11:08:22.892Z"));
	cJSON_Delete(o);
	status_destroy(&st);
}

/* A very long failure reason is cut, never overflows. */
Test(status, long_errors_are_truncated)
{
	struct status st;
	struct status_reload r;
	char big[3 * STATUS_ERRORS_MAX];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(status_init(&st), 0);
	status_load_begin(&st);
	status_load_failed(&st, 0, big);
	status_last(&st, &r);
	cr_assert_eq(strlen(r.errors), STATUS_ERRORS_MAX - 1);
	status_destroy(&st);
}

Test(status, readiness_of_a_generation)
{
	struct plugin p = {0};
	struct plugin *plugins[1] = {&p};
	struct hook_entry hooks[2] = {{.name = "a", .chain = plugins, .nchain = 1},
				      {.name = "b", .unavailable = "plugin x is not loaded"}};
	struct generation g = {.id = 3, .hooks = hooks, .nhooks = 1};
	cJSON *why = cJSON_CreateArray();

	p.desc.name = "p";
	cr_assert_not(status_hooks_ready(NULL, why));
	cr_assert_str_eq(cJSON_GetArrayItem(why, 0)->valuestring, "no generation loaded yet");

	cJSON_Delete(why);
	why = cJSON_CreateArray();
	cr_assert_not(status_hooks_ready(&g, why), "no plugin loaded must not be ready");
	cr_assert_str_eq(cJSON_GetArrayItem(why, 0)->valuestring, "no plugin loaded");

	g.lr.plugins = plugins;
	g.lr.nplugins = 1;
	cJSON_Delete(why);
	why = cJSON_CreateArray();
	cr_assert(status_hooks_ready(&g, why));
	cr_assert_eq(cJSON_GetArraySize(why), 0);

	g.nhooks = 2;
	cr_assert_not(status_hooks_ready(&g, why));
	cr_assert_str_eq(cJSON_GetArrayItem(why, 0)->valuestring,
			 "hook b: plugin x is not loaded");
	cr_assert_not(status_hooks_ready(&g, NULL), "reasons may be NULL");
	cJSON_Delete(why);
}
