/*
 * The GitHub example end to end (etc/github.json, plugins/github.c, spool.c,
 * audit.c) in the real daemon: signed deliveries routed on X-GitHub-Event,
 * a bad signature refused before any plugin runs, a server-side failure
 * spooled to disk and answered 202 by the on_error step, one audit line per
 * call written after the reply (a slow audit does not hold it), and a
 * redelivery answered from the dedup record.
 *
 * Signatures are HMAC-SHA256 computed here with libcrypto, as GitHub does.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "../support/harness.h"

TestSuite(github, .fini = hd_suite_teardown);

#define GH_SECRET "an example secret, not a real one"
#define PUSH_PAYLOAD "tests/data/payloads/webhook-github-push.json"

struct gh_resp {
	struct hd_resp r;
	char headers[4096]; /* the response's header lines, as received */
	size_t hlen;
};

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct gh_resp *g = arg;
	size_t len = size * n;

	if (g->hlen + len < sizeof(g->headers)) {
		memcpy(g->headers + g->hlen, p, len);
		g->hlen += len;
		g->headers[g->hlen] = '\0';
	}
	return len;
}

/* The value of response header `name` (into out), or false. */
static bool resp_header(const struct gh_resp *g, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);

	for (const char *l = g->headers; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
			const char *v = l + nl + 1;
			size_t vl;
			while (*v == ' ')
				v++;
			vl = strcspn(v, "\r\n");
			snprintf(out, len, "%.*s", (int)vl, v);
			return true;
		}
	}
	return false;
}

/* X-Hub-Signature-256 of body under secret: "sha256=<hex>" */
static void sign(const char *secret, const char *body, char *out, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	int o;

	cr_assert_not_null(HMAC(EVP_sha256(), secret, (int)strlen(secret),
				(const unsigned char *)body, strlen(body), md, &mdlen));
	o = snprintf(out, len, "sha256=");
	for (unsigned i = 0; i < mdlen; i++)
		o += snprintf(out + o, len - (size_t)o, "%02x", md[i]);
}

/* POST body to path as GitHub does: event and delivery headers (NULL:
 * left out), signed with `secret` (NULL: no signature), plus one `extra`
 * header line (or NULL). */
static void gh_post_h(struct hd *d, const char *path, const char *event, const char *delivery,
		      const char *secret, const char *body, const char *extra, struct gh_resp *g)
{
	char url[256], line[512], sig[160];
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;

	memset(g, 0, sizeof(*g));
	cr_assert_not_null(c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", d->port, path);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "User-Agent: GitHub-Hookshot/test");
	if (event) {
		snprintf(line, sizeof(line), "X-GitHub-Event: %s", event);
		h = curl_slist_append(h, line);
	}
	if (delivery) {
		snprintf(line, sizeof(line), "X-GitHub-Delivery: %s", delivery);
		h = curl_slist_append(h, line);
	}
	if (secret) {
		sign(secret, body, sig, sizeof(sig));
		snprintf(line, sizeof(line), "X-Hub-Signature-256: %s", sig);
		h = curl_slist_append(h, line);
	}
	if (extra)
		h = curl_slist_append(h, extra);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L * hd_scale());
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hd_curl_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &g->r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, g);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &g->r.status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (!g->r.body)
		g->r.body = calloc(1, 1);
}

static void gh_post(struct hd *d, const char *path, const char *event, const char *delivery,
		    const char *secret, const char *body, struct gh_resp *g)
{
	gh_post_h(d, path, event, delivery, secret, body, NULL, g);
}

/* Start a daemon with the example's plugins: hook "github" as in
 * etc/github.json (spool and audit writing under the test's temp dir),
 * plus `extra_hooks` (members of "hooks", may be "") and `audit_extra`
 * (members of plugins.audit, may be ""). */
static void start(struct hd *d, const char *extra_hooks, const char *audit_extra)
{
	static const char *const plugins[] = {"github", "spool", "audit", "fail", "delay", NULL};
	char members[4096], path[400];
	FILE *f;

	hd_prepare(d, "", plugins);
	snprintf(members, sizeof(members),
		 "\"hooks\": {\"github\": {\"chain\": [\"github\"], \"verify\": {\"scheme\": "
		 "\"github\", \"secret_file\": \"github.secret\"}, \"dedup\": {\"header\": "
		 "\"X-GitHub-Delivery\", \"ttl_s\": 86400, \"max_entries\": 10000}, "
		 "\"on_error\": [\"spool\"], \"after\": [\"audit\"]}%s%s},\n"
		 "  \"plugins\": {\"spool\": {\"dir\": \"%s/spool\"}, "
		 "\"audit\": {\"file\": \"%s/audit.log\"%s%s}}",
		 *extra_hooks ? ", " : "", extra_hooks, d->dir, d->dir,
		 *audit_extra ? ", " : "", audit_extra);
	hd_write_config(d, members);
	snprintf(path, sizeof(path), "%s/github.secret", d->dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(GH_SECRET "\n", f);
	fclose(f);
	hd_launch_or_fail(d);
}

/* The audit file's lines (each a JSON object), once it holds at least n;
 * fails the test when it does not within 10 s. Caller deletes the array. */
static cJSON *audit_lines(struct hd *d, int n)
{
	char path[400];
	cJSON *arr = NULL;

	snprintf(path, sizeof(path), "%s/audit.log", d->dir);
	for (int waited = 0; waited <= 10000 * hd_scale(); waited += 20) {
		char *text = hd_read_file(path, NULL), *save = NULL;
		int count = 0;
		cJSON_Delete(arr);
		arr = cJSON_CreateArray();
		for (char *l = text ? strtok_r(text, "\n", &save) : NULL; l;
		     l = strtok_r(NULL, "\n", &save)) {
			cJSON *o = cJSON_Parse(l);
			cr_assert_not_null(o, "an audit line is not JSON: %s", l);
			cJSON_AddItemToArray(arr, o);
			count++;
		}
		free(text);
		if (count >= n)
			return arr;
		hd_sleep_ms(20);
	}
	cr_assert_fail("the audit file did not get %d lines: %s", n,
		       cJSON_PrintUnformatted(arr));
	return NULL;
}

/* The value of hookd_plugin_calls_total for plugin/outcome in /metrics. */
static long plugin_calls(struct hd *d, const char *plugin, const char *outcome)
{
	struct hd_resp r;
	char needle[160];
	const char *p;
	long v = 0;

	hd_get(d, "/metrics", &r);
	cr_assert_eq(r.status, 200);
	snprintf(needle, sizeof(needle), "hookd_plugin_calls_total{plugin=\"%s\",outcome=\"%s\"} ",
		 plugin, outcome);
	if ((p = strstr(r.body, needle)))
		v = strtol(p + strlen(needle), NULL, 10);
	hd_resp_free(&r);
	return v;
}

static const cJSON *item(const cJSON *o, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(o, name);
}

/* The audit line of request `rid`: observers run on worker threads, so the
 * lines of calls made one after the other may come in either order. */
static const cJSON *line_of(const cJSON *lines, const char *rid)
{
	const cJSON *o;

	cJSON_ArrayForEach(o, lines)
	{
		const cJSON *r = item(o, "request_id");
		if (cJSON_IsString(r) && strcmp(r->valuestring, rid) == 0)
			return o;
	}
	cr_assert_fail("no audit line for request %s: %s", rid, cJSON_PrintUnformatted(lines));
	return NULL;
}

Test(github, signed_deliveries_are_routed_on_the_event, .timeout = 90)
{
	static struct hd d;
	struct gh_resp g;
	char rids[7][128], v[256];
	static const int want[] = {200, 200, 200, 202, 400, 422, 422};
	int k = 0;
	char *push = hd_read_file(PUSH_PAYLOAD, NULL);
	const cJSON *o;
	cJSON *lines;

	cr_assert_not_null(push, "%s (the suite runs from the repository root)", PUSH_PAYLOAD);
	start(&d, "", "");

	gh_post(&d, "/hooks/github", "ping", "d-ping-1", GH_SECRET,
		"{\"zen\":\"Design for failure.\",\"hook_id\":123456789,\"hook\":{\"type\":"
		"\"Repository\"}}", &g);
	cr_assert_eq(g.r.status, 200, "%ld %s", g.r.status, g.r.body);
	cr_assert(resp_header(&g, "X-Request-Id", rids[k++], sizeof(rids[0])));
	cr_assert_str_eq(g.r.body, "{\"zen\":\"Design for failure.\",\"hook_id\":123456789}\n");
	cr_assert(resp_header(&g, "X-GitHub-Delivery-Seen", v, sizeof(v)), "%s", g.headers);
	cr_assert_str_eq(v, "d-ping-1");
	hd_resp_free(&g.r);

	gh_post(&d, "/hooks/github", "push", "d-push-1", GH_SECRET, push, &g);
	cr_assert_eq(g.r.status, 200, "%ld %s", g.r.status, g.r.body);
	cr_assert(resp_header(&g, "X-Request-Id", rids[k++], sizeof(rids[0])));
	cr_assert_str_eq(g.r.body, "{\"ref\":\"refs/heads/main\",\"repository\":\"acme/hookd\","
				   "\"commits\":3,\"head\":\"8632e8f031f8d60fd49ce7e80bb2c9d3cb7b9862\"}\n");
	hd_resp_free(&g.r);

	/* a push that deleted the branch: head_commit is null */
	gh_post(&d, "/hooks/github", "push", "d-push-2", GH_SECRET,
		"{\"ref\":\"refs/heads/old\",\"repository\":{\"full_name\":\"acme/hookd\"},"
		"\"commits\":[],\"head_commit\":null,\"deleted\":true}", &g);
	cr_assert_eq(g.r.status, 200, "%ld %s", g.r.status, g.r.body);
	cr_assert(resp_header(&g, "X-Request-Id", rids[k++], sizeof(rids[0])));
	cr_assert_str_eq(g.r.body, "{\"ref\":\"refs/heads/old\",\"repository\":\"acme/hookd\","
				   "\"commits\":0,\"head\":null}\n");
	hd_resp_free(&g.r);

	gh_post(&d, "/hooks/github", "star", "d-star-1", GH_SECRET, "{\"action\":\"created\"}", &g);
	cr_assert_eq(g.r.status, 202, "%ld %s", g.r.status, g.r.body);
	cr_assert(resp_header(&g, "X-Request-Id", rids[k++], sizeof(rids[0])));
	cr_assert_str_eq(g.r.body, "{\"ignored\":\"star\"}\n");
	hd_resp_free(&g.r);

	/* the sender's mistakes: 4xx, left as they are by spool */
	gh_post(&d, "/hooks/github", NULL, "d-none-1", GH_SECRET, "{\"zen\":\"x\"}", &g);
	cr_assert_eq(g.r.status, 400, "%ld %s", g.r.status, g.r.body);
	cr_assert(resp_header(&g, "X-Request-Id", rids[k++], sizeof(rids[0])));
	cr_assert(strstr(g.r.body, "missing X-GitHub-Event header"), "%s", g.r.body);
	hd_resp_free(&g.r);
	gh_post(&d, "/hooks/github", "push", "d-push-3", GH_SECRET,
		"{\"repository\":{\"full_name\":\"acme/hookd\"},\"commits\":[]}", &g);
	cr_assert_eq(g.r.status, 422, "%ld %s", g.r.status, g.r.body);
	cr_assert(resp_header(&g, "X-Request-Id", rids[k++], sizeof(rids[0])));
	cr_assert(strstr(g.r.body, "push payload: \\\"ref\\\" is missing"), "%s", g.r.body);
	cr_assert(strstr(g.r.body, "\"plugin\":\"github\""), "%s", g.r.body);
	hd_resp_free(&g.r);
	gh_post(&d, "/hooks/github", "ping", "d-ping-2", GH_SECRET, "{\"hook_id\":1}", &g);
	cr_assert_eq(g.r.status, 422, "%ld %s", g.r.status, g.r.body);
	cr_assert(resp_header(&g, "X-Request-Id", rids[k++], sizeof(rids[0])));
	cr_assert(strstr(g.r.body, "ping payload: \\\"zen\\\" is missing"), "%s", g.r.body);
	hd_resp_free(&g.r);

	/* one audit line per call, written after the reply, with its status
	 * and steps */
	cr_assert_eq(k, 7);
	lines = audit_lines(&d, 7);
	cr_assert_eq(cJSON_GetArraySize(lines), 7, "%s", cJSON_PrintUnformatted(lines));
	for (int i = 0; i < 7; i++) {
		o = line_of(lines, rids[i]);
		cr_assert_eq((int)item(o, "status")->valuedouble, want[i], "call %d: %s", i,
			     cJSON_PrintUnformatted(o));
		cr_assert_str_eq(item(o, "hook")->valuestring, "github");
		cr_assert_str_eq(item(cJSON_GetArrayItem(item(o, "steps"), 0), "plugin")->valuestring,
				 "github");
		cr_assert(cJSON_IsObject(item(o, want[i] < 300 ? "output" : "error")), "call %d: %s",
			  i, cJSON_PrintUnformatted(o));
	}
	o = line_of(lines, rids[0]);
	cr_assert_str_eq(item(o, "outcome")->valuestring, "ok");
	cr_assert_str_eq(item(item(o, "output"), "zen")->valuestring, "Design for failure.");
	cr_assert_str_eq(item(item(o, "input"), "zen")->valuestring, "Design for failure.");
	o = line_of(lines, rids[1]);
	cr_assert_eq(cJSON_GetArraySize(item(item(o, "input"), "commits")), 3);
	o = line_of(lines, rids[5]);
	cr_assert_str_eq(item(item(o, "error"), "outcome")->valuestring, "step_failed");
	cr_assert_eq(item(o, "recovered")->type, cJSON_False);
	cJSON_Delete(lines);
	free(push);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(github, a_bad_signature_is_refused_before_the_plugin_runs, .timeout = 60)
{
	static struct hd d;
	struct gh_resp g;
	const char *body = "{\"zen\":\"Anything added dilutes everything else.\"}";
	long before;

	start(&d, "", "");
	gh_post(&d, "/hooks/github", "ping", "d-1", GH_SECRET, body, &g);
	cr_assert_eq(g.r.status, 200, "%ld %s", g.r.status, g.r.body);
	hd_resp_free(&g.r);
	before = plugin_calls(&d, "github", "ok");
	cr_assert_eq(before, 1, "the metrics count the github plugin's steps");

	gh_post(&d, "/hooks/github", "ping", "d-2", "not the secret", body, &g);
	cr_assert_eq(g.r.status, 401, "%ld %s", g.r.status, g.r.body);
	cr_assert(strstr(g.r.body, "sender verification failed (github)"), "%s", g.r.body);
	cr_assert_null(strstr(g.r.body, "zen"), "%s", g.r.body);
	hd_resp_free(&g.r);
	gh_post(&d, "/hooks/github", "ping", "d-3", NULL, body, &g);
	cr_assert_eq(g.r.status, 401, "%ld %s", g.r.status, g.r.body);
	cr_assert(strstr(g.r.body, "missing X-Hub-Signature-256"), "%s", g.r.body);
	hd_resp_free(&g.r);

	cr_assert_eq(plugin_calls(&d, "github", "ok"), before, "the plugin ran for a bad signature");
	cr_assert_eq(plugin_calls(&d, "github", "failed"), 0);
	cr_assert_eq(hd_stop(&d), 0);
}

/* The spool folder's *.json files (names into out[], malloc'ed). */
static int spool_files(struct hd *d, char **out, int max)
{
	char path[400];
	struct dirent *de;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "%s/spool", d->dir);
	dir = opendir(path);
	cr_assert_not_null(dir, "spool created its folder at load");
	while ((de = readdir(dir))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		cr_assert_neq(de->d_name[0], '.', "a temporary file was left: %s", de->d_name);
		if (n < max)
			out[n++] = strdup(de->d_name);
	}
	closedir(dir);
	return n;
}

static cJSON *spool_record(struct hd *d, const char *name)
{
	char path[600];
	char *text;
	cJSON *o;

	snprintf(path, sizeof(path), "%s/spool/%s", d->dir, name);
	text = hd_read_file(path, NULL);
	cr_assert_not_null(text, "%s", path);
	o = cJSON_Parse(text);
	cr_assert_not_null(o, "%s: %s", path, text);
	free(text);
	return o;
}

/* A server-side failure (a step's 503, the deadline) is kept on disk by
 * the on_error step and answered 202; a 4xx is left as it is. The fail and
 * delay plugins stand for a chain that breaks. */
Test(github, a_server_failure_is_spooled_and_answered_202, .timeout = 90)
{
	static struct hd d;
	struct gh_resp g;
	char rid[128], rid_spooled[128], rid_4xx[128], expect[256], *files[8];
	cJSON *rec, *lines;
	const cJSON *o;
	int n;

	start(&d, "\"broken\": {\"chain\": [\"fail\"], \"on_error\": [\"spool\"], "
		  "\"after\": [\"audit\"]}, \"slow\": {\"chain\": [\"delay\"], \"timeout_ms\": 100, "
		  "\"on_error\": [\"spool\"]}", "");

	gh_post(&d, "/hooks/broken", "push", "d-fail-1", NULL,
		"{\"status\":503,\"message\":\"database down\"}", &g);
	cr_assert_eq(g.r.status, 202, "%ld %s", g.r.status, g.r.body);
	cr_assert(resp_header(&g, "X-Request-Id", rid, sizeof(rid)));
	snprintf(expect, sizeof(expect), "{\"queued\":\"%s.json\",\"error\":\"database down\"}\n", rid);
	cr_assert_str_eq(g.r.body, expect);
	snprintf(rid_spooled, sizeof(rid_spooled), "%s", rid);
	hd_resp_free(&g.r);

	n = spool_files(&d, files, 8);
	cr_assert_eq(n, 1, "one file per spooled delivery");
	snprintf(expect, sizeof(expect), "%s.json", rid);
	cr_assert_str_eq(files[0], expect);
	rec = spool_record(&d, files[0]);
	cr_assert_str_eq(item(rec, "request_id")->valuestring, rid);
	cr_assert_str_eq(item(rec, "hook")->valuestring, "broken");
	cr_assert_eq((int)item(item(rec, "error"), "status")->valuedouble, 503);
	cr_assert_str_eq(item(item(rec, "error"), "plugin")->valuestring, "fail");
	cr_assert_str_eq(item(item(rec, "error"), "message")->valuestring, "database down");
	cr_assert_str_eq(item(item(rec, "headers"), "X-GitHub-Event")->valuestring, "push");
	cr_assert_str_eq(item(item(rec, "headers"), "X-GitHub-Delivery")->valuestring, "d-fail-1");
	cr_assert_eq((int)item(item(rec, "input"), "status")->valuedouble, 503);
	cJSON_Delete(rec);
	free(files[0]);

	/* the sender's fault: the client gets the error, nothing is kept */
	gh_post(&d, "/hooks/broken", "push", "d-fail-2", NULL,
		"{\"status\":422,\"message\":\"no ref\"}", &g);
	cr_assert_eq(g.r.status, 422, "%ld %s", g.r.status, g.r.body);
	cr_assert(strstr(g.r.body, "\"error\":\"no ref\""), "%s", g.r.body);
	cr_assert(resp_header(&g, "X-Request-Id", rid_4xx, sizeof(rid_4xx)));
	hd_resp_free(&g.r);

	/* the deadline passed in the chain: 504 turned into 202 */
	gh_post(&d, "/hooks/slow", "push", "d-slow-1", NULL, "{\"ms\":30000}", &g);
	cr_assert_eq(g.r.status, 202, "%ld %s", g.r.status, g.r.body);
	cr_assert(strstr(g.r.body, "\"queued\":\""), "%s", g.r.body);
	cr_assert(resp_header(&g, "X-Request-Id", rid, sizeof(rid)));
	hd_resp_free(&g.r);
	n = spool_files(&d, files, 8);
	cr_assert_eq(n, 2, "the 422 was not spooled, the deadline was");
	snprintf(expect, sizeof(expect), "%s.json", rid);
	rec = spool_record(&d, expect);
	cr_assert_str_eq(item(item(rec, "error"), "outcome")->valuestring, "deadline");
	cr_assert_eq((int)item(item(rec, "error"), "status")->valuedouble, 504);
	cJSON_Delete(rec);
	for (int i = 0; i < n; i++)
		free(files[i]);

	/* a client that sends the same X-Request-Id twice: the second file
	 * gets its own name, the first is not replaced */
	for (int i = 0; i < 2; i++) {
		gh_post_h(&d, "/hooks/broken", "push", "d-fail-3", NULL,
			  "{\"status\":500,\"message\":\"again\"}", "X-Request-Id: retry:7", &g);
		cr_assert_eq(g.r.status, 202, "%ld %s", g.r.status, g.r.body);
		cr_assert_str_eq(g.r.body, i ? "{\"queued\":\"retry_7-1.json\",\"error\":\"again\"}\n"
					     : "{\"queued\":\"retry_7.json\",\"error\":\"again\"}\n");
		hd_resp_free(&g.r);
	}
	n = spool_files(&d, files, 8);
	cr_assert_eq(n, 4);
	for (int i = 0; i < n; i++)
		free(files[i]);

	/* the after observer sees the reply the client got: 202, recovered */
	lines = audit_lines(&d, 2);
	o = line_of(lines, rid_spooled);
	cr_assert_eq((int)item(o, "status")->valuedouble, 202, "%s", cJSON_PrintUnformatted(o));
	cr_assert_eq(item(o, "recovered")->type, cJSON_True, "%s", cJSON_PrintUnformatted(o));
	o = line_of(lines, rid_4xx);
	cr_assert_eq((int)item(o, "status")->valuedouble, 422, "%s", cJSON_PrintUnformatted(o));
	cJSON_Delete(lines);
	cr_assert_eq(hd_stop(&d), 0);
}

/* The audit takes 1.5 s per line (sleep_ms): the reply comes before its
 * line is written. A proof by order, not by time: when the client has its
 * answer, the file is still empty. Under a shorter after_timeout_ms the
 * observer is given up on, logged, and the reply is the same. */
Test(github, a_slow_audit_does_not_delay_the_reply, .timeout = 90)
{
	static struct hd d;
	struct gh_resp g;
	char path[400], *text;
	cJSON *lines;

	start(&d, "\"cut\": {\"chain\": [\"github\"], \"after\": [\"audit\"], "
		  "\"after_timeout_ms\": 100}", "\"sleep_ms\": 1500");
	gh_post(&d, "/hooks/github", "ping", "d-1", GH_SECRET, "{\"zen\":\"Slow is smooth.\"}", &g);
	cr_assert_eq(g.r.status, 200, "%ld %s", g.r.status, g.r.body);
	hd_resp_free(&g.r);
	snprintf(path, sizeof(path), "%s/audit.log", d.dir);
	text = hd_read_file(path, NULL);
	cr_assert_not_null(text, "audit opened its file in init");
	cr_assert_str_eq(text, "", "the audit line was written before the reply was sent");
	free(text);
	lines = audit_lines(&d, 1);
	cr_assert_eq((int)item(cJSON_GetArrayItem(lines, 0), "status")->valuedouble, 200);
	cJSON_Delete(lines);

	gh_post(&d, "/hooks/cut", "ping", "d-2", NULL, "{\"zen\":\"Cut it short.\"}", &g);
	cr_assert_eq(g.r.status, 200, "%ld %s", g.r.status, g.r.body);
	cr_assert_str_eq(g.r.body, "{\"zen\":\"Cut it short.\",\"hook_id\":null}\n");
	hd_resp_free(&g.r);
	cr_assert(hd_wait_log(&d, "the after steps' deadline of 100 ms passed in plugin audit", 1,
			      10000), "the after phase's own deadline was not logged");
	cr_assert_eq(hd_stop(&d), 0);
}

/* GitHub keeps X-GitHub-Delivery on a redelivery: the second one gets the
 * first reply (status, body, the plugin's header) marked X-Hookd-Replay,
 * and the plugin does not run again. */
Test(github, a_redelivery_gets_the_first_reply, .timeout = 60)
{
	static struct hd d;
	struct gh_resp g;
	char rid[128], v[256], first[512];
	const char *body = "{\"zen\":\"Mind your words, they are important.\",\"hook_id\":7}";

	start(&d, "", "");
	gh_post(&d, "/hooks/github", "ping", "72d3162e-cc78-11e3-81ab-4c9367dc0958", GH_SECRET,
		body, &g);
	cr_assert_eq(g.r.status, 200, "%ld %s", g.r.status, g.r.body);
	cr_assert(resp_header(&g, "X-Request-Id", rid, sizeof(rid)));
	cr_assert(!resp_header(&g, "X-Hookd-Replay", v, sizeof(v)), "%s", g.headers);
	snprintf(first, sizeof(first), "%s", g.r.body);
	hd_resp_free(&g.r);

	gh_post(&d, "/hooks/github", "ping", "72d3162e-cc78-11e3-81ab-4c9367dc0958", GH_SECRET,
		body, &g);
	cr_assert_eq(g.r.status, 200, "%ld %s", g.r.status, g.r.body);
	cr_assert_str_eq(g.r.body, first);
	cr_assert(resp_header(&g, "X-Hookd-Replay", v, sizeof(v)),
		  "no X-Hookd-Replay on a redelivery (is dedup wired?): %s", g.headers);
	cr_assert_str_eq(v, rid, "X-Hookd-Replay names the first delivery's request id");
	cr_assert(resp_header(&g, "X-GitHub-Delivery-Seen", v, sizeof(v)), "%s", g.headers);
	cr_assert_str_eq(v, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
	hd_resp_free(&g.r);
	cr_assert_eq(plugin_calls(&d, "github", "ok"), 1, "the chain ran again for a redelivery");

	/* another delivery id runs the chain */
	gh_post(&d, "/hooks/github", "ping", "72d3162e-0000", GH_SECRET, body, &g);
	cr_assert_eq(g.r.status, 200, "%ld %s", g.r.status, g.r.body);
	cr_assert(!resp_header(&g, "X-Hookd-Replay", v, sizeof(v)), "%s", g.headers);
	hd_resp_free(&g.r);
	cr_assert_eq(plugin_calls(&d, "github", "ok"), 2);

	/* a failed delivery is forgotten: its retry runs the chain again */
	for (int i = 0; i < 2; i++) {
		gh_post(&d, "/hooks/github", "push", "72d3162e-0001", GH_SECRET, "{\"ref\":1}", &g);
		cr_assert_eq(g.r.status, 422, "%ld %s", g.r.status, g.r.body);
		cr_assert(!resp_header(&g, "X-Hookd-Replay", v, sizeof(v)), "%s", g.headers);
		hd_resp_free(&g.r);
	}
	cr_assert_eq(plugin_calls(&d, "github", "failed"), 2, "a failed delivery was replayed");
	cr_assert_eq(hd_stop(&d), 0);
}
