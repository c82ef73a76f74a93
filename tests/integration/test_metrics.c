/*
 * GET /metrics of the real daemon: exact counts after known calls, the whole
 * exposition read by Prometheus' own parser (python3-prometheus-client),
 * and a real Prometheus server (Debian's `prometheus`) scraping the daemon
 * and answering a per-plugin call rate and a p99 through its query API.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/harness.h"
#include "../support/upstream.h"

static const char *const plugins[] = {"echo", "echo_async", "fail", NULL};

/* A Prometheus this test process started (killed by the suite's .fini if
 * a test failed with it running). */
static pid_t prom_pid;

static void prom_kill(void)
{
	int st;

	if (prom_pid <= 0)
		return;
	kill(prom_pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(prom_pid, &st, WNOHANG) == prom_pid) {
			prom_pid = 0;
			return;
		}
		hd_sleep_ms(50);
	}
	kill(prom_pid, SIGKILL);
	waitpid(prom_pid, &st, 0);
	prom_pid = 0;
}

static void suite_fini(void)
{
	prom_kill();
	hd_suite_teardown();
}

TestSuite(metrics, .fini = suite_fini);

/* The value of the sample line `series value` in text, or -1. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

/* Scrape until `series` reads `want` (a count another loop may still be
 * adding: the answer goes out just before it is counted), bounded. Returns
 * the last scrape (free it). */
static char *scrape_until(struct hd *d, const char *series, double want)
{
	double until = hd_now_ms() + 10000.0 * hd_scale();
	struct hd_resp r;

	for (;;) {
		hd_get(d, "/metrics", &r);
		cr_assert_eq(r.status, 200, "GET /metrics: %ld %s", r.status, r.body);
		if (sample(r.body, series) == want || hd_now_ms() > until)
			return r.body; /* the caller asserts */
		hd_resp_free(&r);
		hd_sleep_ms(20);
	}
}

Test(metrics, counts_calls_steps_and_unknown_hooks_exactly, .timeout = 60)
{
	static struct hd d;
	struct hd_resp r;
	char *text;

	hd_start(&d, "", plugins);
	for (int i = 0; i < 3; i++) {
		hd_post(&d, "/hooks/echo", "{\"i\":1}", &r);
		cr_assert_eq(r.status, 200);
		hd_resp_free(&r);
	}
	for (int i = 0; i < 2; i++) {
		hd_post(&d, "/hooks/echo_async", "[1]", &r);
		cr_assert_eq(r.status, 200);
		hd_resp_free(&r);
	}
	hd_post(&d, "/hooks/fail", "{}", &r);
	long fail_status = r.status;
	cr_assert_geq(fail_status, 400);
	hd_resp_free(&r);
	hd_post(&d, "/hooks/nope", "{}", &r); /* a hook nobody configured */
	cr_assert_eq(r.status, 404);
	hd_resp_free(&r);
	hd_post(&d, "/hooks/nope2", "{}", &r); /* the same label: no new series */
	hd_resp_free(&r);
	hd_get(&d, "/hooks/echo", &r); /* 405, still a call of echo */
	cr_assert_eq(r.status, 405);
	hd_resp_free(&r);
	hd_post(&d, "/hooks/echo", "{", &r); /* 400 */
	cr_assert_eq(r.status, 400);
	hd_resp_free(&r);

	hd_get(&d, "/metrics", &r);
	cr_assert_str_eq(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
	hd_resp_free(&r);
	text = scrape_until(&d, "hookd_calls_total{hook=\"(unknown)\",code=\"404\"}", 2);
	char series[160];
	cr_assert_eq(sample(text, "hookd_calls_total{hook=\"echo\",code=\"200\"}"), 3, "%s", text);
	cr_assert_eq(sample(text, "hookd_calls_total{hook=\"echo\",code=\"405\"}"), 1);
	cr_assert_eq(sample(text, "hookd_calls_total{hook=\"echo\",code=\"400\"}"), 1);
	cr_assert_eq(sample(text, "hookd_calls_total{hook=\"echo_async\",code=\"200\"}"), 2);
	snprintf(series, sizeof(series), "hookd_calls_total{hook=\"fail\",code=\"%ld\"}", fail_status);
	cr_assert_eq(sample(text, series), 1, "%s", text);
	cr_assert_eq(sample(text, "hookd_calls_total{hook=\"(unknown)\",code=\"404\"}"), 2);
	cr_assert_null(strstr(text, "nope"), "a client created a label value");
	cr_assert_eq(sample(text, "hookd_call_duration_seconds_count{hook=\"echo\"}"), 5);
	cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"echo\",outcome=\"ok\"}"), 3);
	cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"echo_async\",outcome=\"ok\"}"), 2);
	cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"fail\",outcome=\"failed\"}"), 1);
	cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"fail\",outcome=\"ok\"}"), 0);
	cr_assert_eq(sample(text, "hookd_plugin_duration_seconds_count{plugin=\"echo\"}"), 3);
	cr_assert_eq(sample(text, "hookd_generation"), 1);
	cr_assert_eq(sample(text, "hookd_plugins{state=\"loaded\"}") +
			     sample(text, "hookd_plugins{state=\"isolated\"}"), 3, "%s", text);
	cr_assert(strstr(text, "hookd_build_info{version=\""), "%s", text);
	cr_assert_gt(sample(text, "process_resident_memory_bytes"), 0);
	cr_assert_gt(sample(text, "process_open_fds"), 0);
	cr_assert_gt(sample(text, "process_max_fds"), 0);
	cr_assert_gt(sample(text, "process_start_time_seconds"), 1e9);

	/* the whole exposition, as Prometheus' client library parses it */
	char path[400], cmd[1200], out[512] = "";
	snprintf(path, sizeof(path), "%s/scrape.txt", d.dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	const char *py = getenv("HOOKD_PYTHON");
	snprintf(cmd, sizeof(cmd),
		 "%s -c 'import sys\n"
		 "from prometheus_client.parser import text_string_to_metric_families as p\n"
		 "fams = {f.name: f for f in p(open(sys.argv[1]).read())}\n"
		 "v = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}\n"
		 "print(len(fams), fams[\"hookd_plugin_duration_seconds\"].type,"
		 " v[(\"hookd_plugin_calls_total\", ((\"outcome\", \"ok\"), (\"plugin\", \"echo\")))])' %s 2>&1",
		 py && *py ? py : "/usr/bin/python3", path);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
	cr_assert_eq(pclose(f), 0, "prometheus_client could not parse /metrics (scripts/deps.sh "
		     "test installs python3-prometheus-client): %s", out);
	int fams = 0;
	char type[32] = "";
	double ok = -1;
	cr_assert_eq(sscanf(out, "%d %31s %lf", &fams, type, &ok), 3, "%s", out);
	cr_assert_geq(fams, 20, "%s", out);
	cr_assert_str_eq(type, "histogram");
	cr_assert_eq(ok, 3.0);
	free(text);
	cr_assert_eq(hd_stop(&d), 0);
}

/* ---- a real Prometheus ---------------------------------------------- */

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &l) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static const char *prometheus_bin(void)
{
	const char *p = getenv("HOOKD_PROMETHEUS");

	if (p && *p)
		return p;
	return access("/usr/bin/prometheus", X_OK) == 0 ? "/usr/bin/prometheus" : "prometheus";
}

/* One instant query; returns the first result's value, NAN when there is
 * none (yet), and sets *status to the HTTP status (0: not up yet). */
static double prom_query(int port, const char *query, long *status)
{
	CURL *c = curl_easy_init();
	struct hd_resp r = {0};
	char url[1024];
	double v = NAN;

	cr_assert_not_null(c);
	char *q = curl_easy_escape(c, query, 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/query?query=%s", port, q);
	curl_free(q);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hd_curl_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	*status = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	if (*status == 200 && r.body) {
		cJSON *o = cJSON_Parse(r.body);
		cJSON *res = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "data"), "result");
		cJSON *val = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0),
								    "value"), 1);
		if (cJSON_IsString(val))
			v = strtod(val->valuestring, NULL); /* "NaN", "+Inf" parse too */
		cJSON_Delete(o);
	}
	free(r.body);
	return v;
}

Test(metrics, a_real_prometheus_reads_a_plugin_rate_and_p99, .timeout = 180)
{
	static struct hd d;
	struct hd_load *load;
	struct hd_load_result lr;
	char yml[400], tsdb[400], plog[400], cfgarg[480], tsdbarg[480], listen[64];
	int pport = free_port();
	double rate = NAN, p99 = NAN;
	long st = 0;

	cr_assert_gt(pport, 0);
	hd_start(&d, "", plugins);
	snprintf(yml, sizeof(yml), "%s/prometheus.yml", d.dir);
	snprintf(tsdb, sizeof(tsdb), "%s/tsdb", d.dir);
	snprintf(plog, sizeof(plog), "%s/prometheus.log", d.dir);
	FILE *f = fopen(yml, "w");
	cr_assert_not_null(f);
	fprintf(f, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
		   "scrape_configs:\n  - job_name: hookd\n    static_configs:\n"
		   "      - targets: ['127.0.0.1:%d']\n", d.port);
	fclose(f);
	snprintf(cfgarg, sizeof(cfgarg), "--config.file=%s", yml);
	snprintf(tsdbarg, sizeof(tsdbarg), "--storage.tsdb.path=%s", tsdb);
	snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", pport);
	const char *bin = prometheus_bin();
	prom_pid = fork();
	cr_assert_geq(prom_pid, 0);
	if (prom_pid == 0) {
		int fd = open(plog, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp(bin, bin, cfgarg, tsdbarg, listen, "--log.level=warn", (char *)NULL);
		_exit(127);
	}

	/* calls for as long as it takes Prometheus to see a rate (bounded) */
	load = hd_load_start(&d, "/hooks/echo", "{\"x\":1}", 2);
	double until = hd_now_ms() + 30000.0 * hd_scale();
	while (hd_now_ms() < until) {
		int wst;
		if (waitpid(prom_pid, &wst, WNOHANG) == prom_pid) {
			prom_pid = 0;
			break; /* it exited: its log says why */
		}
		rate = prom_query(pport, "sum(rate(hookd_plugin_calls_total{plugin=\"echo\","
					 "outcome=\"ok\"}[5s]))", &st);
		p99 = prom_query(pport, "histogram_quantile(0.99, sum by (le) "
					"(rate(hookd_plugin_duration_seconds_bucket{plugin=\"echo\"}[5s])))",
				 &st);
		if (rate > 0 && isfinite(p99) && p99 > 0)
			break;
		hd_sleep_ms(500);
	}
	hd_load_stop(load, &lr);
	bool died = prom_pid == 0;
	prom_kill();
	if (!(rate > 0 && isfinite(p99) && p99 > 0)) {
		char *log = hd_read_file(plog, NULL);
		cr_log_info("prometheus (%s) log:\n%s", bin, log ? log : "(none)");
		free(log);
	}
	cr_assert(!died, "prometheus exited early (is the Debian package `prometheus` "
		  "installed? scripts/deps.sh test)");
	cr_assert_gt(lr.ok, 0, "the load got no answer");
	cr_assert_gt(rate, 0, "rate(hookd_plugin_calls_total{plugin=\"echo\"}) = %g (last query "
		     "status %ld)", rate, st);
	cr_assert(isfinite(p99) && p99 > 0, "p99 of hookd_plugin_duration_seconds = %g", p99);
	/* the histogram's top bound is 10 s: a p99 interpolated from it is below */
	cr_assert_leq(p99, 10.0);
	cr_log_info("prometheus: echo ok rate %.1f/s, p99 %.6f s", rate, p99);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(metrics, off_in_the_config_means_no_route, .timeout = 30)
{
	static struct hd d;
	struct hd_resp r;

	hd_start(&d, "\"metrics\": false", plugins);
	hd_post(&d, "/hooks/echo", "{}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	hd_get(&d, "/metrics", &r);
	cr_assert_eq(r.status, 404, "%s", r.body);
	cr_assert(strstr(r.body, "metrics"), "%s", r.body);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

/* The reload outcome, a series that survives reloads, steps refused by
 * max_in_flight and a step past its deadline. */
Test(metrics, reloads_refusals_and_timeouts, .timeout = 90)
{
	static struct hd d;
	static const char *const some[] = {"echo", "sleep", NULL};
	const char *cfg = "\"workers\": 4, \"hooks\": {\"slow\": {\"chain\": [\"sleep\"], "
			  "\"timeout_ms\": 100}}, \"plugins\": {\"sleep\": {\"max_in_flight\": 1}}";
	struct hd_resp r;
	char *text;

	hd_start(&d, cfg, some);
	hd_post(&d, "/hooks/echo", "{}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	text = scrape_until(&d, "hookd_calls_total{hook=\"echo\",code=\"200\"}", 1);
	cr_assert_eq(sample(text, "hookd_reloads_total{result=\"ok\"}"), 0, "%s", text);
	cr_assert_eq(sample(text, "hookd_last_reload_success"), 1);
	cr_assert_gt(sample(text, "hookd_last_reload_timestamp_seconds"), 1e9);
	free(text);

	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 2, 10000));
	hd_post(&d, "/hooks/echo", "{}", &r);
	hd_resp_free(&r);
	/* the series goes on across the reload: 2, not 1 */
	text = scrape_until(&d, "hookd_calls_total{hook=\"echo\",code=\"200\"}", 2);
	cr_assert_eq(sample(text, "hookd_calls_total{hook=\"echo\",code=\"200\"}"), 2, "%s", text);
	cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"echo\",outcome=\"ok\"}"), 2);
	cr_assert_eq(sample(text, "hookd_reloads_total{result=\"ok\"}"), 1);
	cr_assert_eq(sample(text, "hookd_generation"), 2);
	free(text);

	/* a step past the hook's deadline (100 ms): 504, outcome timeout */
	hd_post(&d, "/hooks/slow", "{\"ms\": 600}", &r);
	cr_assert_eq(r.status, 504, "%ld %s", r.status, r.body);
	hd_resp_free(&r);
	/* max_in_flight 1: the sleep still holds its worker, the next is refused */
	hd_post(&d, "/hooks/sleep", "{\"ms\": 0}", &r);
	long refused = r.status;
	hd_resp_free(&r);
	text = scrape_until(&d, "hookd_calls_total{hook=\"slow\",code=\"504\"}", 1);
	cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"sleep\",outcome=\"timeout\"}"), 1,
		     "%s", text);
	if (refused == 503)
		cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"sleep\",outcome=\"refused\"}"),
			     1, "%s", text);
	else /* the timed-out step had let go already (a slow machine) */
		cr_log_info("the call after the timeout was not refused (%ld)", refused);
	free(text);

	hd_write_config(&d, "\"workers\": \"many\"");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_log(&d, "reload failed", 1, 10000));
	text = scrape_until(&d, "hookd_reloads_total{result=\"failed\"}", 1);
	cr_assert_eq(sample(text, "hookd_reloads_total{result=\"failed\"}"), 1, "%s", text);
	cr_assert_eq(sample(text, "hookd_reloads_total{result=\"ok\"}"), 1);
	cr_assert_eq(sample(text, "hookd_last_reload_success"), 0);
	cr_assert_eq(sample(text, "hookd_generation"), 2, "the old generation serves on");
	free(text);
	cr_assert_eq(hd_stop(&d), 0);
}

/* With admin_listen, /metrics moves there with the other admin routes. */
Test(metrics, served_on_the_admin_listener_only, .timeout = 60)
{
	static struct hd d;
	struct hd_resp r;
	char *log, *p;
	int port;

	hd_start(&d, "\"admin_listen\": \"127.0.0.1:0\"", plugins);
	cr_assert(hd_wait_log(&d, "admin listener on", 1, 5000));
	log = hd_log_read(&d);
	p = strstr(log, "admin listener on 127.0.0.1:");
	port = p ? atoi(p + strlen("admin listener on 127.0.0.1:")) : 0;
	free(log);
	cr_assert_gt(port, 0);
	hd_post(&d, "/hooks/echo", "{}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	hd_get(&d, "/metrics", &r);
	cr_assert_eq(r.status, 404, "the public listener served /metrics");
	hd_resp_free(&r);
	int save = d.port;
	d.port = port; /* hd_get talks to the admin port */
	hd_get(&d, "/metrics", &r);
	d.port = save;
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	cr_assert_eq(sample(r.body, "hookd_calls_total{hook=\"echo\",code=\"200\"}"), 1, "%s", r.body);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

/* A plugin's outbound requests, by outcome, with their duration. */
Test(metrics, fetches_counted_per_plugin, .timeout = 60)
{
	static struct hd d;
	static const char *const net[] = {"fetch", NULL};
	struct upstream *u = upstream_start(0);
	struct hd_resp r;
	char body[256], *text;

	cr_assert_not_null(u);
	hd_start(&d, "", net);
	snprintf(body, sizeof(body), "{\"url\":\"http://127.0.0.1:%u/bytes/10\"}", upstream_port(u));
	hd_post(&d, "/hooks/fetch", body, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	hd_resp_free(&r);
	snprintf(body, sizeof(body), "{\"url\":\"http://127.0.0.1:%u/status/404\"}",
		 upstream_port(u));
	hd_post(&d, "/hooks/fetch", body, &r);
	hd_resp_free(&r);
	const char *iso = getenv("HOOKD_ISOLATE");
	if (iso && *iso == '1') {
		/* an isolated plugin's requests and loop time are its process's:
		 * the host counts its steps only */
		text = scrape_until(&d, "hookd_plugin_calls_total{plugin=\"fetch\",outcome=\"ok\"}", 2);
		cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"fetch\",outcome=\"ok\"}"),
			     2, "%s", text);
		free(text);
		cr_assert_eq(hd_stop(&d), 0);
		upstream_stop(u);
		return;
	}
	text = scrape_until(&d, "hookd_fetch_requests_total{plugin=\"fetch\",outcome=\"http_error\"}", 1);
	cr_assert_eq(sample(text, "hookd_fetch_requests_total{plugin=\"fetch\",outcome=\"ok\"}"), 1,
		     "%s", text);
	cr_assert_eq(sample(text, "hookd_fetch_requests_total{plugin=\"fetch\",outcome=\"http_error\"}"),
		     1);
	cr_assert_eq(sample(text, "hookd_fetch_duration_seconds_count{plugin=\"fetch\"}"), 2);
	cr_assert_gt(sample(text, "hookd_plugin_loop_seconds_total{plugin=\"fetch\"}"), 0,
		     "async code on the loop was not timed");
	free(text);
	cr_assert_eq(hd_stop(&d), 0);
	upstream_stop(u);
}
