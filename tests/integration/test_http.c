/*
 * HTTP contract of the real daemon: every status code the README promises,
 * with a JSON body that says what went wrong.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <signal.h>
#include <string.h>

#include "../support/harness.h"

static const char *const basic[] = {"echo", "echo_async", "sleep", "delay", "fail", NULL};

/* The JSON error body of r: asserts it parses and has an "error" string. */
static cJSON *error_body(const struct hd_resp *r)
{
	cJSON *o = cJSON_Parse(r->body);
	cr_assert_not_null(o, "not JSON: %s", r->body);
	cr_assert(cJSON_IsString(cJSON_GetObjectItem(o, "error")), "no error: %s", r->body);
	cr_assert_eq(cJSON_GetObjectItem(o, "status")->valuedouble, (double)r->status);
	return o;
}

Test(http, echo_sync_and_async_return_the_input, .timeout = 30)
{
	struct hd d;
	struct hd_resp r;

	hd_start(&d, "", basic);
	hd_post(&d, "/hooks/echo", "{\"a\":[1,2.5,\"x\"],\"b\":null}", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"a\":[1,2.5,\"x\"],\"b\":null}\n");
	cr_assert_str_eq(r.content_type, "application/json");
	hd_resp_free(&r);
	hd_post(&d, "/hooks/echo_async", "[true,false,{\"k\":\"v\"}]", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "[true,false,{\"k\":\"v\"}]\n");
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(http, malformed_json_is_400_with_position, .timeout = 30)
{
	struct hd d;
	struct hd_resp r;
	cJSON *o;

	hd_start(&d, "", basic);
	hd_post(&d, "/hooks/echo", "{\"a\":\n  tru}", &r);
	cr_assert_eq(r.status, 400);
	o = error_body(&r);
	cr_assert(strstr(cJSON_GetObjectItem(o, "error")->valuestring, "line 2"), "%s", r.body);
	cJSON_Delete(o);
	hd_resp_free(&r);

	hd_post(&d, "/hooks/echo", "", &r); /* empty body */
	cr_assert_eq(r.status, 400);
	cJSON_Delete(error_body(&r));
	hd_resp_free(&r);

	hd_post(&d, "/hooks/echo", "{} {}", &r); /* trailing data */
	cr_assert_eq(r.status, 400);
	cJSON_Delete(error_body(&r));
	hd_resp_free(&r);

	hd_request(&d, "POST", "/hooks/echo", "\"\xc3\x28\"", 4, &r); /* invalid UTF-8 */
	cr_assert_eq(r.status, 400);
	o = error_body(&r);
	cr_assert(strstr(cJSON_GetObjectItem(o, "error")->valuestring, "UTF-8"), "%s", r.body);
	cJSON_Delete(o);
	hd_resp_free(&r);

	/* still serving */
	hd_post(&d, "/hooks/echo", "{}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(http, unknown_hook_and_route_are_404, .timeout = 30)
{
	struct hd d;
	struct hd_resp r;
	cJSON *o;

	hd_start(&d, "", basic);
	hd_post(&d, "/hooks/no_such_hook", "{}", &r);
	cr_assert_eq(r.status, 404);
	o = error_body(&r);
	cr_assert(strstr(cJSON_GetObjectItem(o, "error")->valuestring, "no_such_hook"));
	cJSON_Delete(o);
	hd_resp_free(&r);
	hd_post(&d, "/hooks/bad%20name", "{}", &r);
	cr_assert_eq(r.status, 404);
	cJSON_Delete(error_body(&r));
	hd_resp_free(&r);
	hd_get(&d, "/nowhere", &r);
	cr_assert_eq(r.status, 404);
	cJSON_Delete(error_body(&r));
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(http, wrong_method_is_405, .timeout = 30)
{
	struct hd d;
	struct hd_resp r;

	hd_start(&d, "", basic);
	hd_get(&d, "/hooks/echo", &r);
	cr_assert_eq(r.status, 405);
	cJSON_Delete(error_body(&r));
	hd_resp_free(&r);
	hd_request(&d, "PUT", "/hooks/echo", "{}", 2, &r);
	cr_assert_eq(r.status, 405);
	hd_resp_free(&r);
	hd_request(&d, "DELETE", "/plugins", NULL, 0, &r);
	cr_assert_eq(r.status, 405);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(http, body_over_limit_is_413, .timeout = 30)
{
	struct hd d;
	struct hd_resp r;
	size_t n = 5000;
	char *big = malloc(n + 1);

	memset(big, ' ', n);
	memcpy(big, "[1", 2);
	big[n - 1] = ']';
	big[n] = '\0';
	hd_start(&d, "\"max_body\": 4096", basic);
	hd_post(&d, "/hooks/echo", big, &r);
	cr_assert_eq(r.status, 413);
	hd_resp_free(&r);
	big[4000] = '\0';
	big[3999] = ']';
	hd_post(&d, "/hooks/echo", big, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(r.body, "[1]\n");
	hd_resp_free(&r);
	free(big);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(http, queue_full_is_503_with_retry_after, .timeout = 60)
{
	struct hd d;
	struct hd_resp r;
	struct hd_bg *b[2];

	/* one worker, queue of one: a third concurrent sleep call is refused.
	 * The first runs and the second waits (seen in /health, not assumed
	 * after a sleep); they last 3 s, so the state holds while we probe. */
	hd_start(&d, "\"workers\": 1, \"queue\": 1", basic);
	b[0] = hd_bg_post(&d, "/hooks/sleep", "{\"ms\": 3000}");
	cr_assert(hd_wait_health(&d, "workers_busy", 1, 5000), "the first call never ran");
	b[1] = hd_bg_post(&d, "/hooks/sleep", "{\"ms\": 3000}");
	cr_assert(hd_wait_health(&d, "queue", 1, 5000), "the second call never queued");
	double t0 = hd_now_ms();
	hd_post(&d, "/hooks/sleep", "{\"ms\": 300}", &r);
	cr_assert_eq(r.status, 503, "%ld %s", r.status, r.body);
	cr_assert_str_eq(r.retry_after, "1");
	/* queued, it would have taken the 3 s of the others and its own */
	cr_assert_lt(hd_now_ms() - t0, 2000.0 * hd_scale(), "refused at once, not queued");
	cJSON_Delete(error_body(&r));
	hd_resp_free(&r);
	cr_assert_eq(hd_health(&d, "queue"), 1, "the queue emptied early: the probe proved nothing");
	for (int i = 0; i < 2; i++) {
		hd_bg_wait(b[i], &r, NULL);
		cr_assert_eq(r.status, 200, "accepted call %d: %ld %s", i, r.status, r.body);
		hd_resp_free(&r);
	}
	cr_assert_eq(hd_stop(&d), 0);
}

/* A loop that was held up (a busy machine: the daemon not scheduled for a
 * while) wakes with both the call's deadline and the plugin's later timer
 * due. The deadline came first, so the answer is 504, whichever callback
 * libevent happens to run first (the deadline sits in a common-timeout
 * queue, which activates its events one callback later than a plain
 * timer: the plugin's result ran first and answered 200). The stall is
 * made with SIGSTOP; its length is the scenario, not a wait. */
Test(http, deadline_wins_over_a_later_result_after_a_stalled_loop, .timeout = 60)
{
	struct hd d;
	struct hd_resp r;
	struct hd_bg *b;

	hd_start(&d, "\"hooks\": {\"delay\": {\"timeout_ms\": 100}}", basic);
	b = hd_bg_post(&d, "/hooks/delay", "{\"ms\": 300}");
	cr_assert(hd_wait_health(&d, "calls_in_flight", 1, 5000), "the call never started");
	hd_signal(&d, SIGSTOP);
	hd_sleep_ms(600); /* past both: the deadline (100 ms) and the timer (300 ms) */
	hd_signal(&d, SIGCONT);
	hd_bg_wait(b, &r, NULL);
	cr_assert_eq(r.status, 504, "the result due after the deadline won: %ld %s", r.status,
		     r.body);
	cr_assert(strstr(r.body, "\"plugin\":\"delay\""), "%s", r.body);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(http, deadline_is_504_for_sync_and_async, .timeout = 60)
{
	struct hd d;
	struct hd_resp r;
	cJSON *o;

	hd_start(&d, "\"timeout_ms\": 200", basic);
	double t0 = hd_now_ms();
	hd_post(&d, "/hooks/sleep", "{\"ms\": 1500}", &r);
	double took = hd_now_ms() - t0;
	cr_assert_eq(r.status, 504, "%s", r.body);
	cr_assert_lt(took, 1000.0 * hd_scale(), "504 at the deadline, not when the plugin ends");
	o = error_body(&r);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "plugin")->valuestring, "sleep");
	cJSON_Delete(o);
	hd_resp_free(&r);

	hd_post(&d, "/hooks/delay", "{\"ms\": 5000}", &r);
	cr_assert_eq(r.status, 504);
	hd_resp_free(&r);
	/* the async plugin's cancel callback ran */
	cr_assert(hd_wait_log(&d, "plugin delay: call cancelled by the host", 1, 2000));

	/* the late sync result is discarded safely (the sleep's call is held
	 * until its result comes back to the loop); the daemon still serves */
	cr_assert(hd_wait_health(&d, "calls_held", 0, 5000), "the late result never came back");
	hd_post(&d, "/hooks/echo", "{\"still\":\"here\"}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(http, plugin_chosen_status, .timeout = 30)
{
	struct hd d;
	struct hd_resp r;
	cJSON *o;

	hd_start(&d, "", basic);
	hd_post(&d, "/hooks/fail", "{\"status\": 418, \"message\": \"short and stout\"}", &r);
	cr_assert_eq(r.status, 418);
	o = error_body(&r);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "error")->valuestring, "short and stout");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "plugin")->valuestring, "fail");
	cJSON_Delete(o);
	hd_resp_free(&r);
	/* out-of-range statuses become 500 */
	hd_post(&d, "/hooks/fail", "{\"status\": 200}", &r);
	cr_assert_eq(r.status, 500);
	hd_resp_free(&r);
	hd_post(&d, "/hooks/sleep", "{\"ms\": \"soon\"}", &r);
	cr_assert_eq(r.status, 400);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(http, health_and_plugins, .timeout = 30)
{
	struct hd d;
	struct hd_resp r;
	cJSON *o, *p;

	hd_start(&d, "", basic);
	hd_get(&d, "/health", &r);
	cr_assert_eq(r.status, 200);
	o = cJSON_Parse(r.body);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "status")->valuestring, "ok");
	cJSON_Delete(o);
	hd_resp_free(&r);

	hd_get(&d, "/plugins", &r);
	cr_assert_eq(r.status, 200);
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o);
	p = cJSON_GetObjectItem(o, "plugins");
	cr_assert_eq(cJSON_GetArraySize(p), 5);
	cJSON *first = cJSON_GetArrayItem(p, 0); /* file-name order: delay.so first */
	cr_assert_str_eq(cJSON_GetObjectItem(first, "name")->valuestring, "delay");
	cr_assert_str_eq(cJSON_GetObjectItem(first, "mode")->valuestring, "async");
	cr_assert_str_eq(cJSON_GetObjectItem(first, "file")->valuestring, "delay.so");
	cr_assert_str_eq(cJSON_GetObjectItem(first, "version")->valuestring, "1.0.0");
	cr_assert_eq(cJSON_GetObjectItem(first, "generation")->valuedouble, 1);
	cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(first, "hooks"), 0)->valuestring,
			 "delay");
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "rejected")), 0);
	cJSON_Delete(o);
	hd_resp_free(&r);

	hd_request(&d, "HEAD", "/health", NULL, 0, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.len, 0);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(http, null_output_is_500, .timeout = 30)
{
	struct hd d;
	struct hd_resp r;

	hd_prepare(&d, "", basic);
	hd_install(&d, "fixtures/null_output.so", "null_output.so");
	cr_assert(hd_launch(&d, 10000));
	hd_post(&d, "/hooks/null_output", "{}", &r);
	cr_assert_eq(r.status, 500);
	cr_assert(strstr(r.body, "returned no output"), "%s", r.body);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

/* A client that gives up mid-call cancels the call: the async plugin's
 * cancel callback runs long before the plugin's own timer would have
 * fired, and the call no longer counts as in flight. */
static void post_and_give_up(struct hd *d, const char *path, const char *body, long ms)
{
	CURL *c = curl_easy_init();
	char url[256];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", d->port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	cr_assert_eq(curl_easy_perform(c), CURLE_OPERATION_TIMEDOUT);
	curl_easy_cleanup(c);
}

Test(http, client_gone_cancels_the_call, .timeout = 30)
{
	struct hd d;
	struct hd_resp r;

	hd_start(&d, "", basic);
	double t0 = hd_now_ms();
	post_and_give_up(&d, "/hooks/delay", "{\"ms\": 5000}", 200);
	cr_assert(hd_wait_log(&d, "plugin delay: call cancelled by the host", 1, 2000));
	cr_assert_lt(hd_now_ms() - t0, 4000.0 * hd_scale());
	hd_get(&d, "/health", &r);
	cr_assert(strstr(r.body, "\"calls_in_flight\":0"), "%s", r.body);
	hd_resp_free(&r);

	/* a sync call whose client left: its late result is dropped safely */
	post_and_give_up(&d, "/hooks/sleep", "{\"ms\": 400}", 100);
	cr_assert(hd_wait_health(&d, "calls_in_flight", 0, 5000), "the abandoned call is in flight");
	cr_assert(hd_wait_health(&d, "calls_held", 0, 5000), "the late result never came back");
	hd_post(&d, "/hooks/echo", "{\"ok\":1}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}
