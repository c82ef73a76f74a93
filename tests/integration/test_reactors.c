/*
 * Several event loops ("reactors") on one port: calls spread over them,
 * each call stays on the loop that accepted it, and the guarantees that
 * span loops hold: one worker pool, one registry generation, one
 * per-plugin fetch limit, one drain.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "../support/harness.h"
#include "../support/upstream.h"

static const char *const plugins[] = {"echo", "echo_async", "delay", "sleep", "fanout", NULL};

static cJSON *health(struct hd *d)
{
	struct hd_resp r;
	cJSON *o;

	hd_get(d, "/health", &r);
	cr_assert_eq(r.status, 200);
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o, "%s", r.body);
	hd_resp_free(&r);
	return o;
}

Test(reactors, connections_spread_over_every_loop, .timeout = 60)
{
	struct hd d;
	struct hd_load *l;
	struct hd_load_result lr;
	cJSON *h, *per;

	hd_start(&d, "\"reactors\": 2", plugins);
	h = health(&d);
	cr_assert_eq(cJSON_GetObjectItem(h, "reactors")->valuedouble, 2);
	cJSON_Delete(h);
	/* 16 clients, 16 connections: the kernel spreads them over both
	 * sockets (all on one: probability 2^-15) */
	l = hd_load_start(&d, "/hooks/echo_async", "{\"x\":1}", 16);
	/* until both loops served calls (or the bound passed): polled, so a
	 * slow start of the client threads is no failure */
	double end = hd_now_ms() + 10000.0 * hd_scale();
	for (;;) {
		h = health(&d);
		per = cJSON_GetObjectItem(h, "calls_per_reactor");
		cr_assert_eq(cJSON_GetArraySize(per), 2);
		if ((cJSON_GetArrayItem(per, 0)->valuedouble > 0 &&
		     cJSON_GetArrayItem(per, 1)->valuedouble > 0) || hd_now_ms() >= end)
			break;
		cJSON_Delete(h);
		hd_sleep_ms(10);
	}
	cr_assert_gt(cJSON_GetArrayItem(per, 0)->valuedouble, 0, "loop 0 got nothing");
	cr_assert_gt(cJSON_GetArrayItem(per, 1)->valuedouble, 0, "loop 1 got nothing");
	cJSON_Delete(h);
	hd_load_stop(l, &lr);
	cr_assert_eq(lr.failed, 0, "%ld %s", lr.last_bad_status, lr.last_bad_body);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(reactors, reload_and_drain_span_every_loop, .timeout = 60)
{
	struct hd d;
	struct hd_load *l;
	struct hd_load_result lr;
	struct hd_bg *bg[8];

	hd_start(&d, "\"reactors\": 2", plugins);
	l = hd_load_start(&d, "/hooks/echo", "{\"y\":2}", 8);
	/* one at a time: signals sent faster than they are handled coalesce */
	for (int i = 0; i < 20; i++) {
		hd_signal(&d, SIGHUP);
		cr_assert(hd_wait_generation(&d, i + 2, 5000));
	}
	hd_load_stop(l, &lr);
	cr_assert_eq(lr.failed, 0, "%ld %s", lr.last_bad_status, lr.last_bad_body);
	cr_assert_gt(lr.ok, 0);
	/* calls in flight on both loops finish across SIGTERM */
	for (int i = 0; i < 8; i++)
		bg[i] = hd_bg_post(&d, i % 2 ? "/hooks/delay" : "/hooks/sleep", "{\"ms\": 2000}");
	/* all eight are in flight (2 s each: they stay so while we look) */
	cr_assert(hd_wait_health(&d, "calls_in_flight", 8, 5000), "%.0f of 8 calls in flight",
		  hd_health(&d, "calls_in_flight"));
	cr_assert_eq(hd_stop(&d), 0);
	for (int i = 0; i < 8; i++) {
		struct hd_resp r;
		hd_bg_wait(bg[i], &r, NULL);
		cr_assert_eq(r.status, 200, "call %d: %ld %s", i, r.status, r.body);
		hd_resp_free(&r);
	}
}

Test(reactors, a_plugin_fetch_limit_holds_across_loops, .timeout = 60)
{
	struct upstream *u = upstream_start(0);
	struct upstream_stats st;
	struct hd d;
	struct hd_load *l;
	struct hd_load_result lr;
	char body[256];

	hd_start(&d, "\"reactors\": 2, \"plugins\": {\"fanout\": {\"fetch\": {\"concurrency\": 4}}}",
		 plugins);
	snprintf(body, sizeof(body), "{\"url\":\"http://127.0.0.1:%u/delay/20\",\"count\":6}",
		 upstream_port(u));
	l = hd_load_start(&d, "/hooks/fanout", body, 12);
	/* until the bound was reached (or the time ran out), and the load ran
	 * on past it: counted, not timed */
	double end = hd_now_ms() + 10000.0 * hd_scale();
	do {
		upstream_stats(u, &st);
		if (st.max_in_flight >= 4)
			break;
		hd_sleep_ms(10);
	} while (hd_now_ms() < end);
	cr_assert(hd_load_wait(l, 24, 10000), "the load got no 24 answers");
	hd_load_stop(l, &lr);
	cr_assert_eq(lr.failed, 0, "%ld %s", lr.last_bad_status, lr.last_bad_body);
	upstream_stats(u, &st);
	cr_assert_eq(st.max_in_flight, 4, "bound 4 across both loops, saw %ld", st.max_in_flight);
	cr_assert_eq(hd_stop(&d), 0);
	upstream_stop(u);
}
