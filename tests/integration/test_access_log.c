/*
 * The access log, request ids and the 5xx log against the real daemon:
 * one line per hook call (2xx, 4xx, 5xx, refused ones too) in text and in
 * JSON with its request id, hook, status, steps and bytes; a valid
 * X-Request-Id kept and echoed, an invalid one replaced; every 5xx in the
 * daemon's log with its request id, rate-limited with a count of what was
 * held back; SIGUSR1 switches to a new file after a rename (logrotate);
 * a reload turns the log on and changes its format.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../support/harness.h"

TestSuite(access_log, .fini = hd_suite_teardown);

static const char *const plugins[] = {"echo", "echo_async", "tag", "tag_async", "fail", NULL};

#define HOOKS "\"hooks\": {\"mixed\": {\"chain\": [\"tag\", \"tag_async\", \"echo\"]}}, " \
	      "\"plugins\": {\"tag\": {\"label\": \"S\"}, \"tag_async\": {\"label\": \"A\"}}"

struct reply {
	long status;
	char rid[160];   /* X-Request-Id of the reply, "" if none */
	char body[4096];
	size_t len;
};

static size_t on_hdr(char *p, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t len = size * n;

	if (len > 14 && strncasecmp(p, "X-Request-Id:", 13) == 0) {
		size_t v = len - 13;
		const char *s = p + 13;
		while (v && (*s == ' ')) {
			s++;
			v--;
		}
		while (v && (s[v - 1] == '\r' || s[v - 1] == '\n'))
			v--;
		snprintf(r->rid, sizeof(r->rid), "%.*s", (int)v, s);
	}
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t len = size * n, room = sizeof(r->body) - 1 - r->len;

	memcpy(r->body + r->len, p, len < room ? len : room);
	r->len += len < room ? len : room;
	r->body[r->len] = 0;
	return len;
}

/* `method` path with body (NULL: none) and X-Request-Id `rid` (NULL: none). */
static void call(struct hd *d, const char *method, const char *path, const char *body,
		 const char *rid, struct reply *r)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	char url[512], hdr[512];

	memset(r, 0, sizeof(*r));
	cr_assert_not_null(c);
	h = curl_slist_append(h, "Expect:");
	if (rid) {
		snprintf(hdr, sizeof(hdr), "X-Request-Id: %s", rid);
		h = curl_slist_append(h, hdr);
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", d->port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L * hd_scale());
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_hdr);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

static void alog_path(struct hd *d, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", d->dir, name);
}

/* The line of `file` that holds `needle` (malloc'ed, no newline), waiting
 * for it (bounded); NULL if it never came. Asserts it is the only one. */
static char *line_with(const char *file, const char *needle)
{
	double end = hd_now_ms() + 10000.0 * hd_scale();

	for (;;) {
		char *all = hd_read_file(file, NULL), *hit = all ? strstr(all, needle) : NULL;
		if (hit) {
			char *start = hit, *stop;
			while (start > all && start[-1] != '\n')
				start--;
			stop = strchr(hit, '\n');
			cr_assert_not_null(stop, "a line without its newline: %s", start);
			char *again = strstr(stop, needle);
			cr_assert_null(again, "two lines hold %s:\n%s", needle, all);
			char *line = strndup(start, (size_t)(stop - start));
			free(all);
			return line;
		}
		free(all);
		if (hd_now_ms() > end)
			return NULL;
		hd_sleep_ms(10);
	}
}

/* The value of text field `key` in `line` ("" if absent). */
static const char *field(const char *line, const char *key, char *buf, size_t len)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), " %s=", key);
	p = strstr(line, pat);
	if (!p) {
		buf[0] = 0;
		return buf;
	}
	p += strlen(pat);
	snprintf(buf, len, "%.*s", (int)strcspn(p, " "), p);
	return buf;
}

static void expect_field(const char *line, const char *key, const char *want)
{
	char v[1024];

	cr_assert_str_eq(field(line, key, v, sizeof(v)), want, "%s in: %s", key, line);
}

static void expect_fieldn(const char *line, const char *key, long want)
{
	char v[64], w[64];

	snprintf(w, sizeof(w), "%ld", want);
	cr_assert_str_eq(field(line, key, v, sizeof(v)), w, "%s in: %s", key, line);
}

/* steps=a:MS:ok,b:MS:ok without the durations: "a:ok,b:ok" */
static void expect_steps(const char *line, const char *want)
{
	char v[1024], got[1024] = "";
	char *save = NULL;

	field(line, "steps", v, sizeof(v));
	if (strcmp(v, "-") == 0) {
		cr_assert_str_eq("-", want, "steps in: %s", line);
		return;
	}
	for (char *s = strtok_r(v, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
		char *c1 = strchr(s, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		cr_assert_not_null(c2, "step %s in: %s", s, line);
		*c1 = 0;
		cr_assert_gt(strtod(c1 + 1, NULL) + 1, 0.5, "a duration: %s", line);
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s:%s", got[0] ? "," : "",
			 s, c2 + 1);
	}
	cr_assert_str_eq(got, want, "steps in: %s", line);
}

Test(access_log, text_lines_for_2xx_4xx_5xx_and_refused_calls, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	struct reply r;
	char path[512], *l;

	hd_start(&d, "\"access_log\": \"access.log\", \"max_body\": 64, " HOOKS, plugins);
	alog_path(&d, "access.log", path, sizeof(path));

	/* 2xx, a chain of three */
	call(&d, "POST", "/hooks/mixed", "{\"trace\":[]}", "text-ok-1", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.rid, "text-ok-1");
	l = line_with(path, " rid=text-ok-1 ");
	cr_assert_not_null(l, "no access line for the 2xx call");
	cr_assert_eq(strncmp(l, "20", 2), 0, "starts with the time: %s", l);
	cr_assert_eq(l[10], 'T', "ISO 8601: %s", l);
	cr_assert_eq(l[23], 'Z', "with ms: %s", l);
	expect_field(l, "client", "127.0.0.1");
	expect_field(l, "method", "POST");
	expect_field(l, "path", "/hooks/mixed");
	expect_field(l, "hook", "mixed");
	expect_field(l, "status", "200");
	expect_field(l, "outcome", "ok");
	expect_field(l, "plugin", "-");
	expect_fieldn(l, "in", 12);
	expect_fieldn(l, "out", (long)r.len);
	expect_steps(l, "tag:ok,tag_async:ok,echo:ok");
	free(l);

	/* 4xx: no such hook, bad JSON, too large, wrong method */
	call(&d, "POST", "/hooks/nope", "{}", "text-404", &r);
	cr_assert_eq(r.status, 404);
	l = line_with(path, " rid=text-404 ");
	cr_assert_not_null(l);
	expect_field(l, "status", "404");
	expect_field(l, "hook", "nope");
	expect_field(l, "outcome", "no_hook");
	expect_steps(l, "-");
	free(l);
	call(&d, "POST", "/hooks/echo", "{\"a\":", "text-400", &r);
	cr_assert_eq(r.status, 400);
	l = line_with(path, " rid=text-400 ");
	cr_assert_not_null(l);
	expect_field(l, "status", "400");
	expect_field(l, "outcome", "bad_request");
	expect_fieldn(l, "in", 5);
	expect_fieldn(l, "out", (long)r.len);
	free(l);
	/* a body over max_body is answered 413 by evhttp itself, before any
	 * callback of ours (libevent 2.1 has no hook): no line, no id (README) */
	call(&d, "POST", "/hooks/echo",
	     "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30]",
	     "text-413", &r);
	cr_assert_eq(r.status, 413);
	call(&d, "GET", "/hooks/echo", NULL, "text-405", &r);
	cr_assert_eq(r.status, 405);
	l = line_with(path, " rid=text-405 ");
	cr_assert_not_null(l);
	expect_field(l, "method", "GET");
	expect_field(l, "status", "405");
	free(l);

	/* 5xx: the plugin that failed is named */
	call(&d, "POST", "/hooks/fail", "{\"status\":500,\"message\":\"boom\"}", "text-500", &r);
	cr_assert_eq(r.status, 500);
	l = line_with(path, " rid=text-500 ");
	cr_assert_not_null(l);
	expect_field(l, "status", "500");
	expect_field(l, "hook", "fail");
	expect_field(l, "plugin", "fail");
	expect_field(l, "outcome", "step_failed");
	expect_fieldn(l, "gen", 1);
	expect_steps(l, "fail:step_failed");
	free(l);

	/* non-hook routes are not in the access log */
	struct hd_resp h;
	hd_get(&d, "/health", &h);
	cr_assert_eq(h.status, 200);
	hd_resp_free(&h);
	char *all = hd_read_file(path, NULL);
	cr_assert_null(strstr(all, "/health"), "%s", all);
	free(all);
	cr_assert_eq(hd_stop(&d), 0);
}

/* The JSON line of request `rid` (parsed). */
static cJSON *json_line(const char *file, const char *rid)
{
	char needle[256], *l;
	cJSON *o;

	snprintf(needle, sizeof(needle), "\"request_id\":\"%s\"", rid);
	l = line_with(file, needle);
	cr_assert_not_null(l, "no JSON line for %s", rid);
	o = cJSON_Parse(l);
	cr_assert_not_null(o, "not JSON: %s", l);
	free(l);
	return o;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : cJSON_IsNull(v) ? "null" : "(absent)";
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	cr_assert(cJSON_IsNumber(v), "%s is not a number", k);
	return v->valuedouble;
}

Test(access_log, json_lines_for_2xx_4xx_5xx, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	struct reply r;
	char path[512];
	cJSON *o, *steps;

	hd_start(&d, "\"access_log\": \"access.json\", \"access_log_format\": \"json\", " HOOKS,
		 plugins);
	alog_path(&d, "access.json", path, sizeof(path));

	call(&d, "POST", "/hooks/mixed", "{\"trace\":[]}", "json-ok", &r);
	cr_assert_eq(r.status, 200);
	o = json_line(path, "json-ok");
	cr_assert_str_eq(jstr(o, "hook"), "mixed");
	cr_assert_str_eq(jstr(o, "path"), "/hooks/mixed");
	cr_assert_str_eq(jstr(o, "method"), "POST");
	cr_assert_str_eq(jstr(o, "client"), "127.0.0.1");
	cr_assert_str_eq(jstr(o, "outcome"), "ok");
	cr_assert_str_eq(jstr(o, "plugin"), "null");
	cr_assert_eq(jnum(o, "status"), 200);
	cr_assert_eq(jnum(o, "bytes_in"), 12);
	cr_assert_eq(jnum(o, "bytes_out"), (double)r.len);
	cr_assert_eq(jnum(o, "generation"), 1);
	cr_assert_geq(jnum(o, "duration_ms"), 0);
	cr_assert_eq(strlen(jstr(o, "time")), 24, "%s", jstr(o, "time"));
	steps = cJSON_GetObjectItem(o, "steps");
	cr_assert_eq(cJSON_GetArraySize(steps), 3);
	cr_assert_str_eq(jstr(cJSON_GetArrayItem(steps, 0), "plugin"), "tag");
	cr_assert_str_eq(jstr(cJSON_GetArrayItem(steps, 1), "plugin"), "tag_async");
	cr_assert_str_eq(jstr(cJSON_GetArrayItem(steps, 2), "plugin"), "echo");
	for (int i = 0; i < 3; i++) {
		cr_assert_str_eq(jstr(cJSON_GetArrayItem(steps, i), "outcome"), "ok");
		cr_assert_geq(jnum(cJSON_GetArrayItem(steps, i), "duration_ms"), 0);
	}
	cJSON_Delete(o);

	call(&d, "POST", "/hooks/echo", "not json", "json-400", &r);
	cr_assert_eq(r.status, 400);
	o = json_line(path, "json-400");
	cr_assert_eq(jnum(o, "status"), 400);
	cr_assert_str_eq(jstr(o, "hook"), "echo");
	cr_assert_str_eq(jstr(o, "outcome"), "bad_request");
	cr_assert_eq(jnum(o, "bytes_in"), 8);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "steps")), 0);
	cJSON_Delete(o);

	call(&d, "POST", "/hooks/fail", "{\"status\":503}", "json-503", &r);
	cr_assert_eq(r.status, 503);
	o = json_line(path, "json-503");
	cr_assert_eq(jnum(o, "status"), 503);
	cr_assert_str_eq(jstr(o, "plugin"), "fail");
	cr_assert_str_eq(jstr(o, "outcome"), "step_failed");
	steps = cJSON_GetObjectItem(o, "steps");
	cr_assert_eq(cJSON_GetArraySize(steps), 1);
	cr_assert_str_eq(jstr(cJSON_GetArrayItem(steps, 0), "outcome"), "step_failed");
	cJSON_Delete(o);
	cr_assert_eq(hd_stop(&d), 0);
}

static bool rid_ok(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= 128 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					  "0123456789._:-") == n;
}

Test(access_log, request_ids_kept_replaced_and_in_the_5xx_line, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	struct reply r, r2;
	char path[512], needle[256], *l, *log;
	cJSON *o;

	hd_start(&d, "\"access_log\": \"access.log\"", plugins);
	alog_path(&d, "access.log", path, sizeof(path));

	/* kept: echoed in the header and in the error body */
	call(&d, "POST", "/hooks/fail", "{\"status\":422}", "Abc.123_x:y-z", &r);
	cr_assert_eq(r.status, 422);
	cr_assert_str_eq(r.rid, "Abc.123_x:y-z");
	o = cJSON_Parse(r.body);
	cr_assert_str_eq(jstr(o, "request_id"), "Abc.123_x:y-z", "%s", r.body);
	cJSON_Delete(o);
	l = line_with(path, " rid=Abc.123_x:y-z ");
	cr_assert_not_null(l);
	free(l);

	/* none given: one is made, different per call, on success too */
	call(&d, "POST", "/hooks/echo", "{}", NULL, &r);
	call(&d, "POST", "/hooks/echo", "{}", NULL, &r2);
	cr_assert_eq(r.status, 200);
	cr_assert(rid_ok(r.rid), "generated id %s", r.rid);
	cr_assert(rid_ok(r2.rid), "generated id %s", r2.rid);
	cr_assert_str_neq(r.rid, r2.rid);
	snprintf(needle, sizeof(needle), " rid=%s ", r.rid);
	l = line_with(path, needle);
	cr_assert_not_null(l);
	free(l);

	/* invalid: replaced (too long, bad characters) */
	char longid[200];
	memset(longid, 'a', 129);
	longid[129] = 0;
	call(&d, "POST", "/hooks/echo", "{}", longid, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_neq(r.rid, longid);
	cr_assert(rid_ok(r.rid), "%s", r.rid);
	call(&d, "POST", "/hooks/echo", "{}", "bad id;<x>", &r);
	cr_assert(rid_ok(r.rid), "%s", r.rid);
	snprintf(needle, sizeof(needle), " rid=%s ", r.rid);
	l = line_with(path, needle);
	cr_assert_not_null(l, "the replacement is logged");
	free(l);
	char *all = hd_read_file(path, NULL);
	cr_assert_null(strstr(all, "bad"), "the invalid id is not logged: %s", all);
	cr_assert_null(strstr(all, longid), "the invalid id is not logged");
	free(all);

	/* a 5xx: the daemon's log names hook, plugin, outcome, generation, id */
	call(&d, "POST", "/hooks/fail", "{\"status\":502,\"message\":\"upstream sad\"}", "five-1",
	     &r);
	cr_assert_eq(r.status, 502);
	cr_assert(hd_wait_log(&d, "request_id five-1", 1, 10000), "no 5xx line");
	log = hd_log_read(&d);
	char *p = strstr(log, "request_id five-1");
	while (p > log && p[-1] != '\n')
		p--;
	cr_assert(strncmp(strchr(p, ' ') + 1, "warn ", 5) == 0, "not a warn line: %.300s", p);
	cr_assert(strstr(p, "call answered 502: hook fail, plugin fail, outcome step_failed, "
			 "generation 1, request_id five-1: upstream sad"), "%.300s", p);
	free(log);
	/* a 4xx is not in the daemon's log */
	cr_assert_eq(hd_log_count(&d, "call answered 422"), 0);
	cr_assert_eq(hd_stop(&d), 0);
}

/* Sum of N in every "suppressed N similar lines" of the daemon's log. */
static long suppressed_total(struct hd *d)
{
	char *log = hd_log_read(d), *p = log;
	long n = 0;

	while (p && (p = strstr(p, "5xx log: suppressed "))) {
		p += strlen("5xx log: suppressed ");
		n += strtol(p, NULL, 10);
	}
	free(log);
	return n;
}

/* A storm of 5xx: every one is either logged or counted, and far fewer
 * lines than calls are written. */
Test(access_log, a_burst_of_5xx_is_rate_limited_with_a_summary, .timeout = 120)
{
	static struct hd d; /* static: the teardown may read it */
	struct hd_resp r;
	const int n = 300;
	long logged = 0, held = 0;

	hd_start(&d, "", plugins);
	for (int i = 0; i < n; i++) {
		hd_post(&d, "/hooks/fail", "{\"status\":500}", &r);
		cr_assert_eq(r.status, 500);
		hd_resp_free(&r);
	}
	/* the summary comes when the storm has passed: wait until every
	 * call is accounted for (bounded) */
	double end = hd_now_ms() + 20000.0 * hd_scale();
	while (hd_now_ms() < end) {
		logged = hd_log_count(&d, "call answered 500");
		held = suppressed_total(&d);
		if (logged + held >= n)
			break;
		hd_sleep_ms(50);
	}
	cr_log_info("%d calls: %ld lines, %ld suppressed", n, logged, held);
	cr_assert_eq(logged + held, n, "every 5xx is logged or counted: %ld + %ld", logged, held);
	cr_assert_gt(held, 0, "a burst of %d was not limited", n);
	cr_assert_lt(logged, n / 2);
	cr_assert_gt(hd_log_count(&d, "similar lines"), 0);
	cr_assert_eq(hd_stop(&d), 0);
}

/* logrotate: rename, SIGUSR1, the next call lands in the new file and the
 * renamed one gets nothing more. */
Test(access_log, sigusr1_reopens_the_file, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	struct reply r;
	char path[512], old[512], *l, *all;

	hd_start(&d, "\"access_log\": \"access.log\"", plugins);
	alog_path(&d, "access.log", path, sizeof(path));
	alog_path(&d, "access.log.1", old, sizeof(old));
	call(&d, "POST", "/hooks/echo", "{}", "before-rotate", &r);
	cr_assert_eq(r.status, 200);
	l = line_with(path, " rid=before-rotate ");
	cr_assert_not_null(l);
	free(l);
	cr_assert_eq(rename(path, old), 0);
	hd_signal(&d, SIGUSR1);
	cr_assert(hd_wait_log(&d, "SIGUSR1: access log reopened", 1, 10000));
	/* every loop writes to the new file (several calls: with two loops,
	 * each likely serves some) */
	for (int i = 0; i < 8; i++) {
		char rid[32];
		snprintf(rid, sizeof(rid), "after-rotate-%d", i);
		call(&d, "POST", "/hooks/echo_async", "{}", rid, &r);
		cr_assert_eq(r.status, 200);
	}
	for (int i = 0; i < 8; i++) {
		char needle[64];
		snprintf(needle, sizeof(needle), " rid=after-rotate-%d ", i);
		l = line_with(path, needle);
		cr_assert_not_null(l, "call %d is not in the new file", i);
		free(l);
	}
	all = hd_read_file(old, NULL);
	cr_assert_not_null(all);
	cr_assert(strstr(all, "rid=before-rotate "), "%s", all);
	cr_assert_null(strstr(all, "after-rotate"), "the renamed file got lines: %s", all);
	free(all);
	cr_assert_eq(hd_stop(&d), 0);
}

/* access_log is reloadable: off -> a file (JSON) -> stderr ("-"); a path
 * that cannot be opened keeps the current log. */
Test(access_log, reload_turns_it_on_and_changes_format, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	struct reply r;
	char path[512], *l;
	cJSON *o;

	hd_start(&d, "", plugins);
	alog_path(&d, "a.log", path, sizeof(path));
	call(&d, "POST", "/hooks/echo", "{}", "while-off", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.rid, "while-off", "ids are echoed with the log off too");
	hd_write_config(&d, "\"access_log\": \"a.log\", \"access_log_format\": \"json\"");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 2, 10000));
	call(&d, "POST", "/hooks/echo", "{}", "after-reload", &r);
	o = json_line(path, "after-reload");
	cr_assert_str_eq(jstr(o, "hook"), "echo");
	cJSON_Delete(o);
	l = hd_read_file(path, NULL);
	cr_assert_null(strstr(l, "while-off"), "%s", l);
	free(l);

	hd_write_config(&d, "\"access_log\": \"-\"");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 3, 10000));
	call(&d, "POST", "/hooks/echo", "{}", "to-stderr", &r);
	cr_assert(hd_wait_log(&d, " rid=to-stderr ", 1, 10000), "not on stderr");
	l = hd_read_file(path, NULL);
	cr_assert_null(strstr(l, "to-stderr"), "%s", l);
	free(l);

	/* a path that cannot be opened: the reload goes through, the log stays */
	hd_write_config(&d, "\"access_log\": \"no-such-dir/x.log\"");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 4, 10000));
	cr_assert(hd_wait_log(&d, "no-such-dir/x.log: cannot open", 1, 10000));
	cr_assert_gt(hd_log_count(&d, "the access log stays at -"), 0);
	call(&d, "POST", "/hooks/echo", "{}", "still-stderr", &r);
	cr_assert_eq(r.status, 200);
	cr_assert(hd_wait_log(&d, " rid=still-stderr ", 1, 10000));
	cr_assert_eq(hd_stop(&d), 0);
}

/* A path that cannot be opened stops the start with a message naming it. */
Test(access_log, an_unopenable_path_fails_the_start, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */

	char *err = NULL;

	hd_prepare(&d, "\"access_log\": \"no-such-dir/access.log\"", plugins);
	cr_assert_eq(hd_run_hookd((const char *const[]){"-c", d.config, NULL}, NULL, &err), 1);
	cr_assert_not_null(err);
	cr_assert(strstr(err, "no-such-dir/access.log: cannot open"), "%s", err);
	free(err);
	hd_kill(&d);
}
