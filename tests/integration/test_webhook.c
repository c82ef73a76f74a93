/*
 * Webhook-grade hooks in the real daemon (issue 11): the request reaches
 * every kind of step (sync, async, isolated), form and raw bodies, replies
 * shaped by steps (status, headers, raw body, 204), on_error steps that
 * replace an error, after observers that never delay the reply, and
 * delivery de-duplication under concurrency and under a flood.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "../support/harness.h"

TestSuite(webhook, .fini = hd_suite_teardown);

/* A response with its headers. */
struct wresp {
	long status;
	char *body;
	size_t len;
	char headers[4096];
	double seconds;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct wresp *r = arg;
	char *b = realloc(r->body, r->len + size * n + 1);

	if (!b)
		return 0;
	memcpy(b + r->len, p, size * n);
	r->len += size * n;
	b[r->len] = '\0';
	r->body = b;
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct wresp *r = arg;
	size_t have = strlen(r->headers), add = size * n;

	if (have + add < sizeof(r->headers)) {
		memcpy(r->headers + have, p, add);
		r->headers[have + add] = '\0';
	}
	return size * n;
}

/* POST body (len bytes) to path with extra header lines (NULL-terminated
 * array, or NULL) through handle c (NULL: a new one). */
static void wpost(struct hd *d, CURL *reuse, const char *path, const char *body, size_t len,
		  const char *const *hdrs, struct wresp *r)
{
	char url[512];
	CURL *c = reuse ? reuse : curl_easy_init();
	struct curl_slist *h = NULL;

	memset(r, 0, sizeof(*r));
	cr_assert_not_null(c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", d->port, path);
	for (size_t i = 0; hdrs && hdrs[i]; i++)
		h = curl_slist_append(h, hdrs[i]);
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L * hd_scale());
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->seconds);
	curl_slist_free_all(h);
	if (!reuse)
		curl_easy_cleanup(c);
	if (!r->body)
		r->body = calloc(1, 1);
}

static void wfree(struct wresp *r)
{
	free(r->body);
	r->body = NULL;
}

/* The value of response header `name` in r (copied into buf), or NULL. */
static const char *wheader(const struct wresp *r, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name);

	for (const char *l = r->headers; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
			const char *v = l + n + 1;
			size_t k;
			while (*v == ' ')
				v++;
			k = strcspn(v, "\r\n");
			if (k >= len)
				k = len - 1;
			memcpy(buf, v, k);
			buf[k] = '\0';
			return buf;
		}
	}
	return NULL;
}

static cJSON *wjson(const struct wresp *r)
{
	cJSON *j = cJSON_Parse(r->body);

	cr_assert_not_null(j, "not JSON (status %ld): %s", r->status, r->body);
	return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : -1e9;
}

/* The request, as one step of the given plugin sees it: method, path,
 * query, client address and port, request id, headers (looked up
 * case-insensitively), raw body and content type. */
static void request_reaches(const char *plugin, bool isolated)
{
	static struct hd d;
	struct wresp r;
	char cfg[512], so[64], rel[80], hv[128];
	const char *body = "{\"a\": [1, 2, 3]}";

	snprintf(cfg, sizeof(cfg), "\"hooks\": {\"web\": {\"chain\": [\"%s\"]}}%s", plugin,
		 isolated ? ", \"isolate\": true" : "");
	hd_prepare(&d, cfg, NULL);
	snprintf(rel, sizeof(rel), "fixtures/%s.so", plugin);
	snprintf(so, sizeof(so), "%s.so", plugin);
	hd_install(&d, rel, so);
	hd_launch_or_fail(&d);

	wpost(&d, NULL, "/hooks/web?x=1&y=two%20words", body, strlen(body),
	      (const char *[]){"Content-Type: application/json", "X-Test: hello there",
			       "X-Request-Id: req-12345", NULL}, &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	cJSON *j = wjson(&r);
	cr_assert_str_eq(jstr(j, "plugin"), plugin);
	cr_assert_str_eq(jstr(j, "hook"), "web");
	cr_assert_str_eq(jstr(j, "method"), "POST");
	cr_assert_str_eq(jstr(j, "path"), "/hooks/web");
	cr_assert_str_eq(jstr(j, "query"), "x=1&y=two%20words");
	cr_assert_str_eq(jstr(j, "client"), "127.0.0.1");
	cr_assert_gt(jnum(j, "port"), 0);
	cr_assert_str_eq(jstr(j, "request_id"), "req-12345");
	cr_assert_str_eq(jstr(j, "content_type"), "application/json");
	cr_assert_str_eq(jstr(j, "body"), body, "the raw bytes, as sent");
	cr_assert_eq(jnum(j, "body_len"), (double)strlen(body));
	cr_assert_str_eq(jstr(j, "x_test"), "hello there", "header() is case-insensitive");
	cr_assert_str_eq(jstr(cJSON_GetObjectItemCaseSensitive(j, "headers"), "X-Test"),
			 "hello there", "every header, names as sent");
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
			     cJSON_GetObjectItemCaseSensitive(j, "input"), "a")), 3,
		     "the parsed input too");
	cr_assert_str_eq(wheader(&r, "X-Request-Id", hv, sizeof(hv)), "req-12345");
	cJSON_Delete(j);
	wfree(&r);
	hd_stop(&d);
}

Test(webhook, request_reaches_a_sync_step, .timeout = 60)
{
	request_reaches("webreq", false);
}

Test(webhook, request_reaches_an_async_step, .timeout = 60)
{
	request_reaches("webreq_async", false);
}

Test(webhook, request_reaches_an_isolated_step, .timeout = 60)
{
	request_reaches("webreq", true);
}

Test(webhook, request_reaches_an_isolated_async_step, .timeout = 60)
{
	request_reaches("webreq_async", true);
}

/* accept: form bodies become an object of strings (the raw body stays);
 * raw takes anything with input null; a type not accepted is 415; a form
 * body with a bad escape is 400. */
Test(webhook, form_raw_and_refused_types, .timeout = 60)
{
	static struct hd d;
	struct wresp r;
	const char *form = "token=abc&text=hello+world%21&user_name=J%C3%BCrgen&empty=&flag";

	hd_prepare(&d, "\"hooks\": {\"web\": {\"chain\": [\"webreq\"], \"accept\": [\"json\", \"form\"]}, "
		       "\"rawweb\": {\"chain\": [\"webreq\"], \"accept\": \"raw\"}}", NULL);
	hd_install(&d, "fixtures/webreq.so", "webreq.so");
	hd_launch_or_fail(&d);

	wpost(&d, NULL, "/hooks/web", form, strlen(form),
	      (const char *[]){"Content-Type: application/x-www-form-urlencoded", NULL}, &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	cJSON *j = wjson(&r), *in = cJSON_GetObjectItemCaseSensitive(j, "input");
	cr_assert_str_eq(jstr(in, "token"), "abc");
	cr_assert_str_eq(jstr(in, "text"), "hello world!");
	cr_assert_str_eq(jstr(in, "user_name"), "J\xc3\xbcrgen");
	cr_assert_str_eq(jstr(in, "empty"), "");
	cr_assert_str_eq(jstr(in, "flag"), "");
	cr_assert_str_eq(jstr(j, "body"), form, "the raw body stays available");
	cJSON_Delete(j);
	wfree(&r);

	/* JSON still works on the same hook */
	wpost(&d, NULL, "/hooks/web", "{\"k\":1}", 7,
	      (const char *[]){"Content-Type: application/json; charset=utf-8", NULL}, &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	j = wjson(&r);
	cr_assert_eq(jnum(cJSON_GetObjectItemCaseSensitive(j, "input"), "k"), 1);
	cJSON_Delete(j);
	wfree(&r);

	wpost(&d, NULL, "/hooks/web", "a=%zz", 5,
	      (const char *[]){"Content-Type: application/x-www-form-urlencoded", NULL}, &r);
	cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "escape"), "%s", r.body);
	wfree(&r);

	wpost(&d, NULL, "/hooks/web", "<xml/>", 6,
	      (const char *[]){"Content-Type: application/xml", NULL}, &r);
	cr_assert_eq(r.status, 415, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "application/xml"), "%s", r.body);
	wfree(&r);

	wpost(&d, NULL, "/hooks/rawweb", "<xml>\x01</xml>", 12,
	      (const char *[]){"Content-Type: application/xml", NULL}, &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	j = wjson(&r);
	cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "input")), "%s", r.body);
	cr_assert_str_eq(jstr(j, "body"), "<xml>\x01</xml>");
	cr_assert_str_eq(jstr(j, "content_type"), "application/xml");
	cJSON_Delete(j);
	wfree(&r);
	hd_stop(&d);
}

/* A hook's max_body above or below the global one. */
Test(webhook, per_hook_max_body, .timeout = 60)
{
	static struct hd d;
	struct wresp r;
	char *big = malloc(3000);

	memset(big, ' ', 3000);
	memcpy(big, "{\"x\":1}", 7);
	hd_prepare(&d, "\"max_body\": 2048, \"hooks\": {\"web\": {\"chain\": [\"webreq\"], "
		       "\"max_body\": 4096}, \"small\": {\"chain\": [\"webreq\"], \"max_body\": 16}}",
		   NULL);
	hd_install(&d, "fixtures/webreq.so", "webreq.so");
	hd_launch_or_fail(&d);
	wpost(&d, NULL, "/hooks/web", big, 3000, NULL, &r);
	cr_assert_eq(r.status, 200, "the hook's own limit is above the global one: %ld %s",
		     r.status, r.body);
	wfree(&r);
	wpost(&d, NULL, "/hooks/small", "{\"x\": \"0123456789\"}", 19, NULL, &r);
	cr_assert_eq(r.status, 413, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "max_body"), "%s", r.body);
	wfree(&r);
	wpost(&d, NULL, "/hooks/small", "{\"x\": 1}", 8, NULL, &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	wfree(&r);
	free(big);
	hd_stop(&d);
}

/* Steps shape the reply: status, headers (the host's own refused), raw
 * body with its type, 204 without a body; a later step overrides. */
static void replies_shaped(const char *plugin, bool isolated)
{
	static struct hd d;
	struct wresp r;
	char hv[256], cfg[256], rel[80], so[64];

	snprintf(cfg, sizeof(cfg), "\"hooks\": {\"web\": {\"chain\": [\"%s\"]}}%s", plugin,
		 isolated ? ", \"isolate\": true" : "");
	hd_prepare(&d, cfg, NULL);
	snprintf(rel, sizeof(rel), "fixtures/%s.so", plugin);
	snprintf(so, sizeof(so), "%s.so", plugin);
	hd_install(&d, rel, so);
	hd_launch_or_fail(&d);

	wpost(&d, NULL, "/hooks/web", "{}", 2,
	      (const char *[]){"X-Reply-Status: 202", "X-Reply-Header: X-Queue: q1", NULL}, &r);
	cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
	cr_assert_str_eq(wheader(&r, "X-Queue", hv, sizeof(hv)), "q1");
	cJSON *j = wjson(&r);
	cr_assert_eq(jnum(j, "rc_status"), 0);
	cr_assert_eq(jnum(j, "rc_header"), 0);
	cJSON_Delete(j);
	wfree(&r);

	wpost(&d, NULL, "/hooks/web", "{}", 2,
	      (const char *[]){"X-Reply-Status: 404", "X-Reply-Header: Content-Length: 1", NULL},
	      &r);
	cr_assert_eq(r.status, 200, "a 404 is not a success status: refused: %ld", r.status);
	j = wjson(&r);
	cr_assert_eq(jnum(j, "rc_status"), -22, "HOOKD_EINVAL");
	cr_assert_eq(jnum(j, "rc_header"), -13, "HOOKD_EFORBIDDEN: framing is the host's");
	cJSON_Delete(j);
	wfree(&r);

	wpost(&d, NULL, "/hooks/web", "{}", 2,
	      (const char *[]){"X-Reply-Header: Connection: close", NULL}, &r);
	j = wjson(&r);
	cr_assert_eq(jnum(j, "rc_header"), -13, "hop-by-hop headers are refused");
	cJSON_Delete(j);
	wfree(&r);

	wpost(&d, NULL, "/hooks/web", "{}", 2,
	      (const char *[]){"X-Reply-Body: <ok/>", "X-Reply-Type: application/xml", NULL}, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "<ok/>", "the raw body, not the JSON output");
	cr_assert_str_eq(wheader(&r, "Content-Type", hv, sizeof(hv)), "application/xml");
	wfree(&r);

	wpost(&d, NULL, "/hooks/web", "{}", 2, (const char *[]){"X-Reply-Status: 204", NULL}, &r);
	cr_assert_eq(r.status, 204);
	cr_assert_eq(r.len, 0, "204 sends no body: %s", r.body);
	cr_assert_null(wheader(&r, "Content-Length", hv, sizeof(hv)), "%s", r.headers);
	wfree(&r);

	/* a failed step's settings are dropped: the error is the reply */
	wpost(&d, NULL, "/hooks/web", "{}", 2, (const char *[]){"X-Fail: 503", NULL}, &r);
	cr_assert_eq(r.status, 503, "%ld %s", r.status, r.body);
	wfree(&r);

	/* keep-alive still works after a 204 and a raw reply */
	CURL *c = curl_easy_init();
	for (int i = 0; i < 3; i++) {
		wpost(&d, c, "/hooks/web", "{}", 2,
		      (const char *[]){i == 1 ? "X-Reply-Status: 204" : "X-Reply-Body: x", NULL},
		      &r);
		cr_assert_eq(r.status, i == 1 ? 204 : 200);
		wfree(&r);
	}
	curl_easy_cleanup(c);
	hd_stop(&d);
}

Test(webhook, replies_shaped_by_a_sync_step, .timeout = 60)
{
	replies_shaped("webreq", false);
}

Test(webhook, replies_shaped_by_an_async_step, .timeout = 60)
{
	replies_shaped("webreq_async", false);
}

Test(webhook, replies_shaped_by_an_isolated_step, .timeout = 60)
{
	replies_shaped("webreq", true);
}

/* Lines in file `path` (0 when absent). */
static int lines_in(const char *path)
{
	char *t = hd_read_file(path, NULL);
	int n = 0;

	for (char *p = t; p && *p; p++)
		n += *p == '\n';
	free(t);
	return n;
}

static bool wait_lines(const char *path, int n, int timeout_ms)
{
	double end = hd_now_ms() + (double)timeout_ms * hd_scale();

	while (hd_now_ms() < end) {
		if (lines_in(path) >= n)
			return true;
		hd_sleep_ms(5);
	}
	return false;
}

/* on_error: a 5xx of the chain becomes recover's 202 with its header; a
 * 4xx is left as it was (recover returns null); the handler sees the
 * error and the original input. */
Test(webhook, on_error_replaces_or_leaves_the_error, .timeout = 60)
{
	static struct hd d;
	struct wresp r;
	char hv[128];

	hd_prepare(&d, "\"hooks\": {\"web\": {\"chain\": [\"webreq\"], \"on_error\": [\"recover\"]}}",
		   NULL);
	hd_install(&d, "fixtures/webreq.so", "webreq.so");
	hd_install(&d, "fixtures/recover.so", "recover.so");
	hd_launch_or_fail(&d);

	wpost(&d, NULL, "/hooks/web", "{\"order\": 7}", 12, (const char *[]){"X-Fail: 500", NULL},
	      &r);
	cr_assert_eq(r.status, 202, "recover turned the 500 into 202: %ld %s", r.status, r.body);
	cr_assert_str_eq(wheader(&r, "X-Recovered-From", hv, sizeof(hv)), "webreq");
	cJSON *j = wjson(&r), *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "queued")));
	cr_assert_eq(jnum(e, "status"), 500);
	cr_assert_str_eq(jstr(e, "plugin"), "webreq");
	cr_assert_eq(jnum(e, "step"), 0);
	cr_assert_str_eq(jstr(e, "outcome"), "step_failed");
	cr_assert(strstr(jstr(e, "message"), "asked to fail"), "%s", r.body);
	cr_assert_eq(jnum(cJSON_GetObjectItemCaseSensitive(j, "input"), "order"), 7,
		     "the hook's original input");
	cJSON_Delete(j);
	wfree(&r);

	wpost(&d, NULL, "/hooks/web", "{}", 2, (const char *[]){"X-Fail: 422", NULL}, &r);
	cr_assert_eq(r.status, 422, "a 4xx is left alone: %ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "asked to fail"), "%s", r.body);
	wfree(&r);

	wpost(&d, NULL, "/hooks/web", "{}", 2, NULL, &r);
	cr_assert_eq(r.status, 200, "no error: on_error does not run: %ld", r.status);
	wfree(&r);
	hd_stop(&d);
}

/* An after observer runs once the reply is sent: the client has its
 * answer while the observer is still blocked (it waits for a file the test
 * creates only after reading the reply); it sees the status sent, the
 * input, the output and the steps; its set_status is refused. */
static void after_never_delays(bool isolated)
{
	static struct hd d;
	struct wresp r;
	char cfg[1024], file[400], gate[400];

	hd_prepare(&d, NULL, NULL);
	snprintf(file, sizeof(file), "%s/observed.jsonl", d.dir);
	snprintf(gate, sizeof(gate), "%s/gate", d.dir);
	snprintf(cfg, sizeof(cfg), "\"hooks\": {\"web\": {\"chain\": [\"webreq\"], \"after\": [\"observe\"], "
		 "\"after_timeout_ms\": 20000}}, \"plugins\": {\"observe\": {\"file\": \"%s\", "
		 "\"gate\": \"%s\", \"isolate\": %s}}", file, gate, isolated ? "true" : "false");
	hd_write_config(&d, cfg);
	hd_install(&d, "fixtures/webreq.so", "webreq.so");
	hd_install(&d, "fixtures/observe.so", "observe.so");
	hd_launch_or_fail(&d);

	wpost(&d, NULL, "/hooks/web?q=1", "{\"n\": 1}", 8,
	      (const char *[]){"X-Reply-Status: 201", "X-Request-Id: obs-1", NULL}, &r);
	cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
	wfree(&r);
	cr_assert_eq(lines_in(file), 0, "the observer is still waiting: the reply did not");
	FILE *g = fopen(gate, "w");
	cr_assert_not_null(g);
	fclose(g);
	cr_assert(wait_lines(file, 1, 10000), "the observer ran after the reply");
	char *t = hd_read_file(file, NULL);
	cJSON *line = cJSON_Parse(t), *in = cJSON_GetObjectItemCaseSensitive(line, "input");
	cr_assert_not_null(line, "%s", t);
	cr_assert_str_eq(jstr(in, "hook"), "web");
	cr_assert_str_eq(jstr(in, "request_id"), "obs-1");
	cr_assert_eq(jnum(in, "status"), 201, "the status the client got: %s", t);
	cr_assert_str_eq(jstr(in, "outcome"), "ok");
	cr_assert_eq(jnum(cJSON_GetObjectItemCaseSensitive(in, "input"), "n"), 1, "%s", t);
	cr_assert_str_eq(jstr(cJSON_GetObjectItemCaseSensitive(in, "output"), "query"), "q=1",
			 "the output sent: %s", t);
	const cJSON *st = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(in, "steps"), 0);
	cr_assert_str_eq(jstr(st, "plugin"), "webreq", "%s", t);
	cr_assert_str_eq(jstr(st, "outcome"), "ok", "%s", t);
	cr_assert_eq(jnum(line, "rc_set_status"), -1, "HOOKD_EPERM: the reply is sent: %s", t);
	cJSON_Delete(line);
	free(t);

	/* an error reply is observed too */
	wpost(&d, NULL, "/hooks/web", "{}", 2, (const char *[]){"X-Fail: 502", NULL}, &r);
	cr_assert_eq(r.status, 502);
	wfree(&r);
	cr_assert(wait_lines(file, 2, 10000));
	t = hd_read_file(file, NULL);
	cr_assert(strstr(strchr(t, '\n') + 1, "\"status\":502"), "%s", t);
	cr_assert(strstr(strchr(t, '\n') + 1, "\"error\":{"), "%s", t);
	free(t);
	hd_stop(&d);
}

Test(webhook, after_observers_never_delay_the_reply, .timeout = 60)
{
	after_never_delays(false);
}

Test(webhook, after_observers_never_delay_the_reply_isolated, .timeout = 60)
{
	after_never_delays(true);
}

/* An observer that passes the after phase's own deadline is cancelled
 * and logged; one that fails is logged and counted; the client got 200
 * each time, and the next call is served. */
Test(webhook, after_deadline_and_failure_are_logged_only, .timeout = 60)
{
	static struct hd d;
	struct wresp r;
	char cfg[1024], file[400], gate[400];

	hd_prepare(&d, NULL, NULL);
	snprintf(file, sizeof(file), "%s/observed.jsonl", d.dir);
	snprintf(gate, sizeof(gate), "%s/never", d.dir);
	snprintf(cfg, sizeof(cfg), "\"hooks\": {\"web\": {\"chain\": [\"webreq\"], \"after\": [\"observe\"], "
		 "\"after_timeout_ms\": 300}}, \"plugins\": {\"observe\": {\"file\": \"%s\", "
		 "\"gate\": \"%s\"}}", file, gate);
	hd_write_config(&d, cfg);
	hd_install(&d, "fixtures/webreq.so", "webreq.so");
	hd_install(&d, "fixtures/observe.so", "observe.so");
	hd_launch_or_fail(&d);
	wpost(&d, NULL, "/hooks/web", "{}", 2, (const char *[]){"X-Request-Id: late-1", NULL}, &r);
	cr_assert_eq(r.status, 200);
	wfree(&r);
	cr_assert(hd_wait_log(&d, "hook web (generation 1, request_id late-1): the after steps' "
			      "deadline of 300 ms passed in plugin observe", 1, 10000),
		  "the deadline is logged, naming the hook, generation, request and plugin");
	cr_assert_eq(lines_in(file), 0);

	/* now a failing observer (reload with fail: true, no gate) */
	snprintf(cfg, sizeof(cfg), "\"hooks\": {\"web\": {\"chain\": [\"webreq\"], \"after\": [\"observe\"]}}, "
		 "\"plugins\": {\"observe\": {\"file\": \"%s\", \"fail\": true}}", file);
	hd_write_config(&d, cfg);
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 2, 10000));
	wpost(&d, NULL, "/hooks/web", "{}", 2, NULL, &r);
	cr_assert_eq(r.status, 200, "an observer's failure never reaches the client");
	wfree(&r);
	cr_assert(hd_wait_log(&d, "after plugin observe (step 0) failed: observe fails as configured",
			      1, 10000));
	struct hd_resp m;
	hd_get(&d, "/metrics", &m);
	cr_assert(strstr(m.body, "hookd_plugin_calls_total{plugin=\"observe\",outcome=\"failed\"} 1"),
		  "counted: %s", m.body);
	hd_resp_free(&m);
	hd_stop(&d);
}

/* Twenty deliveries of one id at once: the chain runs once (observe, in
 * the chain, writes one line); the others get 409 with Retry-After while it
 * runs, or the first reply marked X-Hookd-Replay after. A failed delivery
 * is forgotten: its retry runs. */
struct dup_arg {
	struct hd *d;
	const char *id;
	struct wresp r;
};

static void *dup_post(void *arg)
{
	struct dup_arg *a = arg;
	char h[128];

	snprintf(h, sizeof(h), "X-Delivery: %s", a->id);
	wpost(a->d, NULL, "/hooks/obs", "{\"k\": 1}", 8, (const char *[]){h, NULL}, &a->r);
	return NULL;
}

Test(webhook, dedup_twenty_concurrent_deliveries_run_once, .timeout = 90)
{
	static struct hd d;
	struct dup_arg a[20];
	pthread_t t[20];
	char cfg[1024], file[400], gate[400], hv[128];
	int n409 = 0, n200 = 0;

	hd_prepare(&d, NULL, NULL);
	snprintf(file, sizeof(file), "%s/ran.jsonl", d.dir);
	snprintf(gate, sizeof(gate), "%s/gate", d.dir);
	snprintf(cfg, sizeof(cfg), "\"hooks\": {\"obs\": {\"chain\": [\"observe\"], "
		 "\"dedup\": {\"header\": \"X-Delivery\"}}}, \"plugins\": {\"observe\": "
		 "{\"file\": \"%s\", \"gate\": \"%s\"}}", file, gate);
	hd_write_config(&d, cfg);
	hd_install(&d, "fixtures/observe.so", "observe.so");
	hd_launch_or_fail(&d);

	for (int i = 0; i < 20; i++) {
		a[i] = (struct dup_arg){.d = &d, .id = "delivery-1"};
		cr_assert_eq(pthread_create(&t[i], NULL, dup_post, &a[i]), 0);
	}
	/* 19 answered 409 while the first waits at its gate */
	double end = hd_now_ms() + 20000.0 * hd_scale();
	for (;;) {
		n409 = 0;
		for (int i = 0; i < 20; i++)
			n409 += __atomic_load_n(&a[i].r.status, __ATOMIC_ACQUIRE) == 409;
		if (n409 == 19 || hd_now_ms() > end)
			break;
		hd_sleep_ms(10);
	}
	FILE *g = fopen(gate, "w");
	cr_assert_not_null(g);
	fclose(g);
	for (int i = 0; i < 20; i++)
		pthread_join(t[i], NULL);
	n409 = 0;
	for (int i = 0; i < 20; i++) {
		if (a[i].r.status == 409) {
			n409++;
			cr_assert_not_null(wheader(&a[i].r, "Retry-After", hv, sizeof(hv)));
			cr_assert(strstr(a[i].r.body, "being processed"), "%s", a[i].r.body);
		} else {
			cr_assert_eq(a[i].r.status, 201, "%ld %s", a[i].r.status, a[i].r.body);
			n200++;
		}
	}
	cr_assert_eq(n200, 1, "one delivery ran");
	cr_assert_eq(n409, 19);
	cr_assert_eq(lines_in(file), 1, "the chain ran once");

	/* a repeat now gets the first reply, marked */
	struct dup_arg again = {.d = &d, .id = "delivery-1"};
	dup_post(&again);
	cr_assert_eq(again.r.status, 201, "%ld %s", again.r.status, again.r.body);
	cr_assert_not_null(wheader(&again.r, "X-Hookd-Replay", hv, sizeof(hv)), "%s",
			   again.r.headers);
	for (int i = 0; i < 20; i++)
		if (a[i].r.status == 201)
			cr_assert_str_eq(again.r.body, a[i].r.body, "the same body");
	cr_assert_eq(lines_in(file), 1, "a replay runs nothing");
	wfree(&again.r);
	for (int i = 0; i < 20; i++)
		wfree(&a[i].r);
	hd_stop(&d);
}

Test(webhook, dedup_failed_delivery_may_retry, .timeout = 60)
{
	static struct hd d;
	struct wresp r;
	char hv[64];

	hd_prepare(&d, "\"hooks\": {\"web\": {\"chain\": [\"webreq\"], "
		       "\"dedup\": {\"json_pointer\": \"/id\"}}}", NULL);
	hd_install(&d, "fixtures/webreq.so", "webreq.so");
	hd_launch_or_fail(&d);
	wpost(&d, NULL, "/hooks/web", "{\"id\": \"evt_1\"}", 15, (const char *[]){"X-Fail: 500", NULL},
	      &r);
	cr_assert_eq(r.status, 500);
	wfree(&r);
	wpost(&d, NULL, "/hooks/web", "{\"id\": \"evt_1\"}", 15, NULL, &r);
	cr_assert_eq(r.status, 200, "the retry of a failed delivery runs: %ld %s", r.status, r.body);
	cr_assert_null(wheader(&r, "X-Hookd-Replay", hv, sizeof(hv)));
	wfree(&r);
	wpost(&d, NULL, "/hooks/web", "{\"id\": \"evt_1\", \"other\": 1}", 27, NULL, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_not_null(wheader(&r, "X-Hookd-Replay", hv, sizeof(hv)), "keyed on /id only");
	wfree(&r);
	hd_stop(&d);
}

/* A flood of unique ids: the table keeps max_entries and max_bytes. */
Test(webhook, dedup_memory_bounded_under_a_flood, .timeout = 120)
{
	static struct hd d;
	struct wresp r;
	struct hd_resp m;
	CURL *c = curl_easy_init();
	char h[96];

	hd_prepare(&d, "\"hooks\": {\"web\": {\"chain\": [\"webreq\"], "
		       "\"dedup\": {\"header\": \"X-Delivery\", \"max_entries\": 100, \"max_bytes\": 65536}}}",
		   NULL);
	hd_install(&d, "fixtures/webreq.so", "webreq.so");
	hd_launch_or_fail(&d);
	for (int i = 0; i < 2000; i++) {
		snprintf(h, sizeof(h), "X-Delivery: flood-%d", i);
		wpost(&d, c, "/hooks/web", "{}", 2, (const char *[]){h, NULL}, &r);
		cr_assert_eq(r.status, 200, "%d: %ld %s", i, r.status, r.body);
		wfree(&r);
	}
	curl_easy_cleanup(c);
	hd_get(&d, "/metrics", &m);
	const char *e = strstr(m.body, "\nhookd_dedup_entries ");
	const char *b = strstr(m.body, "\nhookd_dedup_bytes ");
	cr_assert(e && b, "%s", m.body);
	long entries = atol(e + strlen("\nhookd_dedup_entries ")),
	     bytes = atol(b + strlen("\nhookd_dedup_bytes "));
	cr_assert_leq(entries, 100, "%ld", entries);
	cr_assert_gt(entries, 0);
	cr_assert_leq(bytes, 65536, "%ld", bytes);
	hd_resp_free(&m);
	hd_stop(&d);
}
