/*
 * Operating the real daemon: GET /ready turning red and back, the reload
 * outcome in GET /health and in `hookd -s reload`'s exit status, `hookd -s
 * stop`, the pid file, the admin listener (TCP and Unix socket) keeping its
 * routes off the public one, per-plugin max_in_flight, and a SIGHUP that
 * arrives while the daemon is still starting.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/harness.h"

TestSuite(ops, .fini = hd_suite_teardown);

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	return hd_curl_body(p, size, n, arg);
}

/* GET `path` on a Unix socket (sock non-NULL) or on 127.0.0.1:port. */
static void get_at(const char *sock, int port, const char *path, struct hd_resp *r)
{
	char url[256];
	CURL *c = curl_easy_init();

	memset(r, 0, sizeof(*r));
	cr_assert_not_null(c);
	if (sock) {
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
		snprintf(url, sizeof(url), "http://localhost%s", path);
	} else {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L * hd_scale());
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(c);
	if (!r->body) {
		r->body = calloc(1, 1);
		cr_assert_not_null(r->body);
	}
}

/* GET `path` on the public listener, parsed; asserts the status. */
static cJSON *get_json(struct hd *d, const char *path, long want)
{
	struct hd_resp r;
	cJSON *o;

	hd_get(d, path, &r);
	cr_assert_eq(r.status, want, "GET %s: %ld %s", path, r.status, r.body);
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o, "GET %s is not JSON: %s", path, r.body);
	hd_resp_free(&r);
	return o;
}

static const char *sval(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static double nval(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Poll GET /ready until its status is `want`; returns the last body. */
static char *wait_ready(struct hd *d, long want, int timeout_ms)
{
	double end = hd_now_ms() + (double)timeout_ms * hd_scale();
	struct hd_resp r;

	for (;;) {
		hd_get(d, "/ready", &r);
		if (r.status == want || hd_now_ms() > end)
			break;
		hd_resp_free(&r);
		hd_sleep_ms(20);
	}
	cr_assert_eq(r.status, want, "GET /ready: %ld %s", r.status, r.body);
	return r.body; /* the caller frees */
}

/* A chain naming a plugin that is not loaded turns /ready red, with the
 * hook and the plugin named; installing the plugin and reloading turns it
 * green; removing it again turns it red. /health stays 200 throughout. */
Test(ops, ready_turns_red_and_back, .timeout = 60)
{
	static struct hd d;
	char *body;

	hd_start(&d, "\"hooks\": {\"v\": {\"chain\": [\"ver\"]}}", (const char *[]){"echo", NULL});
	body = wait_ready(&d, 503, 5000);
	cr_assert(strstr(body, "hook v") && strstr(body, "plugin ver is not loaded"),
		  "503 without the reason: %s", body);
	free(body);
	cJSON_Delete(get_json(&d, "/health", 200));

	hd_install(&d, "fixtures/ver_a.so", "ver.so");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 2, 10000));
	body = wait_ready(&d, 200, 5000);
	cr_assert(strstr(body, "\"ready\":true"), "%s", body);
	free(body);

	hd_uninstall(&d, "ver.so");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 3, 10000));
	body = wait_ready(&d, 503, 5000);
	cr_assert(strstr(body, "plugin ver is not loaded"), "%s", body);
	free(body);
	cr_assert_eq(hd_stop(&d), 0);
}

/* The outcome of every load is in GET /health "last_reload": the start-up
 * one, a good reload (generation, counters), a failed one (the file and
 * the reason; the old generation still serves). */
Test(ops, reload_outcome_in_health, .timeout = 60)
{
	static struct hd d;
	cJSON *h;
	const cJSON *lr;

	hd_start(&d, "", (const char *[]){"echo", NULL});
	h = get_json(&d, "/health", 200);
	lr = cJSON_GetObjectItemCaseSensitive(h, "last_reload");
	cr_assert_not_null(lr, "no last_reload in /health");
	cr_assert_str_eq(sval(lr, "result"), "initial");
	cr_assert_eq(nval(lr, "generation"), 1);
	cJSON_Delete(h);

	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 2, 10000));
	h = get_json(&d, "/health", 200);
	lr = cJSON_GetObjectItemCaseSensitive(h, "last_reload");
	cr_assert_str_eq(sval(lr, "result"), "ok");
	cr_assert_eq(nval(lr, "generation"), 2);
	cr_assert_eq(nval(lr, "reloads_ok"), 1);
	cr_assert_eq(nval(lr, "reloads_failed"), 0);
	cJSON_Delete(h);

	hd_write_config(&d, "\"workers\": \"many\"");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_log(&d, "reload failed", 1, 10000));
	h = get_json(&d, "/health", 200);
	lr = cJSON_GetObjectItemCaseSensitive(h, "last_reload");
	cr_assert_str_eq(sval(lr, "result"), "failed");
	cr_assert_eq(nval(lr, "generation"), 2, "the old generation serves on");
	cr_assert(strstr(sval(lr, "errors"), "workers") && strstr(sval(lr, "errors"), d.config),
		  "the reason names neither the key nor the file: %s", sval(lr, "errors"));
	cr_assert_eq(nval(lr, "reloads_failed"), 1);
	cJSON_Delete(h);
	cr_assert_eq(hd_stop(&d), 0);
}

/* hookd -s reload: exit 0 and "reloaded" for a good reload, exit 1 naming
 * the failure for a bad one; hookd -s stop waits until the daemon exited;
 * the pid file is written at start and removed at exit. */
Test(ops, signal_command_reload_and_stop, .timeout = 90)
{
	static struct hd d;
	char pidfile[400], *out = NULL, *err = NULL, *text, listen[32];
	int rc;

	hd_start(&d, "\"pid_file\": \"hookd.pid\"", (const char *[]){"echo", NULL});
	snprintf(pidfile, sizeof(pidfile), "%s/hookd.pid", d.dir);
	text = hd_read_file(pidfile, NULL);
	cr_assert_not_null(text, "no pid file at %s", pidfile);
	cr_assert_eq(atol(text), (long)d.pid, "pid file says %s, daemon is %ld", text, (long)d.pid);
	free(text);
	/* the config says port 0: tell -s the port, as the daemon's -l would */
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", d.port);

	rc = hd_run_hookd((const char *const[]){"-s", "reload", "-c", d.config, "-l", listen, NULL},
			  &out, &err);
	cr_assert_eq(rc, 0, "hookd -s reload: %d\n%s\n%s", rc, out, err);
	cr_assert(strstr(out, "serving generation 2"), "stdout: %s", out);
	cr_assert_null(strstr(out, "warning"), "stdout: %s", out);
	free(out);
	free(err);

	/* a good reload that leaves a hook unable to run: exit 0, and says so */
	hd_write_config(&d, "\"pid_file\": \"hookd.pid\", \"hooks\": {\"v\": {\"chain\": [\"nope\"]}}");
	rc = hd_run_hookd((const char *const[]){"-s", "reload", "-c", d.config, "-l", listen, NULL},
			  &out, &err);
	cr_assert_eq(rc, 0, "hookd -s reload: %d\n%s\n%s", rc, out, err);
	cr_assert(strstr(out, "serving generation 3") &&
		  strstr(out, "warning: not ready: hook v: plugin nope is not loaded"), "stdout: %s",
		  out);
	free(out);
	free(err);

	hd_write_config(&d, "\"pid_file\": \"hookd.pid\", \"hooks\": 7");
	/* the file no longer parses: -s reads the pid_file from a copy */
	char good[400];
	snprintf(good, sizeof(good), "%s/good.json", d.dir);
	FILE *f = fopen(good, "w");
	cr_assert_not_null(f);
	fprintf(f, "{\"listen\": \"%s\", \"plugin_dir\": \".\", \"pid_file\": \"hookd.pid\"}\n", listen);
	fclose(f);
	rc = hd_run_hookd((const char *const[]){"-s", "reload", "-c", good, NULL}, &out, &err);
	cr_assert_eq(rc, 1, "a failed reload must exit 1: %s %s", out, err);
	cr_assert(strstr(err, "failed") && strstr(err, "hooks") &&
		  strstr(err, "still serving generation 3"), "stderr: %s", err);
	free(out);
	free(err);
	/* given the broken file itself, -s cannot even find the daemon: it
	 * says why and fails without signalling (like nginx -s reload) */
	rc = hd_run_hookd((const char *const[]){"-s", "reload", "-c", d.config, NULL}, &out, &err);
	cr_assert_eq(rc, 1);
	cr_assert(strstr(err, "hooks"), "stderr: %s", err);
	free(out);
	free(err);

	hd_write_config(&d, "\"pid_file\": \"hookd.pid\"");
	rc = hd_run_hookd((const char *const[]){"-s", "stop", "-c", d.config, NULL}, &out, &err);
	cr_assert_eq(rc, 0, "hookd -s stop: %d %s %s", rc, out, err);
	cr_assert(strstr(out, "stopped"), "stdout: %s", out);
	free(out);
	free(err);
	cr_assert(hd_wait_exit(&d, 5000), "the daemon still runs after hookd -s stop returned");
	cr_assert_eq(access(pidfile, F_OK), -1, "the pid file outlived the daemon");
	hd_stop(&d);

	/* no daemon: -s says so and fails */
	rc = hd_run_hookd((const char *const[]){"-s", "reload", "-c", d.config, NULL}, &out, &err);
	cr_assert_eq(rc, 1);
	free(out);
	free(err);
}

/* A config without pid_file: hookd -s explains what is missing. */
Test(ops, signal_command_needs_pid_file)
{
	static struct hd d;
	char *out = NULL, *err = NULL;
	int rc;

	hd_prepare(&d, "", NULL);
	rc = hd_run_hookd((const char *const[]){"-s", "reload", "-c", d.config, NULL}, &out, &err);
	cr_assert_eq(rc, 1);
	cr_assert(strstr(err, "pid_file"), "stderr: %s", err);
	free(out);
	free(err);
	hd_kill(&d);
}

/* A second hookd given the pid_file of a running one refuses to start,
 * naming the file and the pid. */
Test(ops, pid_file_of_a_running_hookd_is_refused, .timeout = 60)
{
	static struct hd d;
	char members[600], *out = NULL, *err = NULL;
	int rc;

	snprintf(members, sizeof(members), "\"pid_file\": \"hookd.pid\"");
	hd_start(&d, members, (const char *[]){"echo", NULL});
	/* the same config, another port */
	rc = hd_run_hookd((const char *const[]){"-c", d.config, "-l", "127.0.0.1:0", NULL}, &out,
			  &err);
	cr_assert_eq(rc, 1, "a second hookd started on a running one's pid_file");
	cr_assert(strstr(err, "pid_file") && strstr(err, "a hookd that is running"), "stderr: %s",
		  err);
	free(out);
	free(err);
	/* the first one's file is intact */
	char path[400], *text;
	snprintf(path, sizeof(path), "%s/hookd.pid", d.dir);
	text = hd_read_file(path, NULL);
	cr_assert(text && atol(text) == (long)d.pid);
	free(text);
	cr_assert_eq(hd_stop(&d), 0);
}

/* admin_listen on a Unix socket: /plugins, /health and /ready are served
 * there and only there; hooks are served on the public listener only. */
Test(ops, admin_listener_unix, .timeout = 60)
{
	static struct hd d;
	char sock[400];
	struct hd_resp r;

	hd_start(&d, "\"admin_listen\": \"unix:admin.sock\"", (const char *[]){"echo", NULL});
	snprintf(sock, sizeof(sock), "%s/admin.sock", d.dir);
	for (const char *const *p = (const char *const[]){"/plugins", "/health", "/ready", NULL};
	     *p; p++) {
		hd_get(&d, *p, &r);
		cr_assert_eq(r.status, 404, "public GET %s: %ld %s", *p, r.status, r.body);
		cr_assert(strstr(r.body, "admin_listen"), "%s", r.body);
		hd_resp_free(&r);
		get_at(sock, 0, *p, &r);
		cr_assert_eq(r.status, 200, "admin GET %s: %ld %s", *p, r.status, r.body);
		hd_resp_free(&r);
	}
	hd_post(&d, "/hooks/echo", "{\"a\":1}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	get_at(sock, 0, "/hooks/echo", &r);
	cr_assert_eq(r.status, 404, "the admin listener served a hook: %ld", r.status);
	hd_resp_free(&r);
	struct stat st;
	cr_assert_eq(stat(sock, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0660, "socket mode %o", st.st_mode & 0777);
	cr_assert_eq(hd_stop(&d), 0);
	cr_assert_eq(access(sock, F_OK), -1, "the admin socket outlived the daemon");
}

/* The admin port from the daemon's log line "admin listener on H:P". */
static int admin_port(struct hd *d)
{
	char *log = hd_log_read(d), *p = strstr(log, "admin listener on 127.0.0.1:");
	int port = p ? atoi(p + strlen("admin listener on 127.0.0.1:")) : 0;

	free(log);
	return port;
}

/* admin_listen on TCP: the admin listener stays open through the drain, and
 * GET /ready there says 503 "shutting down" while a call finishes. */
Test(ops, admin_listener_tcp_ready_during_drain, .timeout = 60)
{
	static struct hd d;
	struct hd_resp r;
	int port;

	hd_start(&d, "\"admin_listen\": \"127.0.0.1:0\", \"drain_ms\": 20000",
		 (const char *[]){"sleep", NULL});
	cr_assert(hd_wait_log(&d, "admin listener on", 1, 5000));
	port = admin_port(&d);
	cr_assert_gt(port, 0);
	cr_assert_neq(port, d.port);
	get_at(NULL, port, "/ready", &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	hd_resp_free(&r);

	struct hd_bg *bg = hd_bg_post(&d, "/hooks/sleep", "{\"ms\": 1500}");
	double end = hd_now_ms() + 5000.0 * hd_scale();
	do {
		get_at(NULL, port, "/health", &r);
		bool busy = strstr(r.body, "\"workers_busy\":1") != NULL;
		hd_resp_free(&r);
		if (busy)
			break;
		hd_sleep_ms(10);
	} while (hd_now_ms() < end);
	hd_signal(&d, SIGTERM);
	cr_assert(hd_wait_log(&d, "shutting down", 1, 5000));
	get_at(NULL, port, "/ready", &r);
	cr_assert_eq(r.status, 503, "GET /ready during the drain: %ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "shutting down"), "%s", r.body);
	hd_resp_free(&r);
	hd_bg_wait(bg, &r, NULL);
	cr_assert_eq(r.status, 200, "the call in flight was lost: %ld %s", r.status, r.body);
	hd_resp_free(&r);
	cr_assert(hd_wait_exit(&d, 10000));
	cr_assert_eq(hd_stop(&d), 0);
}

/* plugins.<name>.max_in_flight: a call over it is refused at once with 503,
 * Retry-After and the plugin named ("outcome": "refused"); once the running
 * call is over the plugin takes calls again. */
Test(ops, max_in_flight_refuses, .timeout = 60)
{
	static struct hd d;
	struct hd_resp r;
	cJSON *o;

	hd_start(&d, "\"workers\": 4, \"plugins\": {\"sleep\": {\"max_in_flight\": 1}}",
		 (const char *[]){"sleep", NULL});
	struct hd_bg *bg = hd_bg_post(&d, "/hooks/sleep", "{\"ms\": 1500}");
	cr_assert(hd_wait_health(&d, "workers_busy", 1, 5000));
	hd_post(&d, "/hooks/sleep", "{\"ms\": 0}", &r);
	cr_assert_eq(r.status, 503, "%ld %s", r.status, r.body);
	cr_assert_str_eq(r.retry_after, "1");
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o);
	cr_assert_str_eq(sval(o, "plugin"), "sleep");
	cr_assert_str_eq(sval(o, "outcome"), "refused");
	cr_assert(strstr(sval(o, "error"), "max_in_flight"), "%s", r.body);
	cJSON_Delete(o);
	hd_resp_free(&r);
	hd_bg_wait(bg, &r, NULL);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	hd_post(&d, "/hooks/sleep", "{\"ms\": 0}", &r);
	cr_assert_eq(r.status, 200, "refused after the running call ended: %ld %s", r.status,
		     r.body);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

/* A bad max_in_flight is a config error naming the key. */
Test(ops, max_in_flight_validated)
{
	static struct hd d;
	char *out = NULL, *err = NULL;
	int rc;

	hd_prepare(&d, "\"plugins\": {\"echo\": {\"max_in_flight\": 0}}", (const char *[]){"echo", NULL});
	rc = hd_run_hookd((const char *const[]){"-t", "-c", d.config, NULL}, &out, &err);
	cr_assert_eq(rc, 1);
	cr_assert(strstr(err, "plugins.echo.max_in_flight"), "stderr: %s", err);
	free(out);
	free(err);
	hd_kill(&d);
}

/* Sends SIGHUP to the daemon once its log shows the slow init under way
 * (hd_launch sets the pid before it waits for the daemon to be ready). */
static void *hup_mid_init(void *arg)
{
	struct hd *d = arg;

	for (int i = 0; i < 2000 * hd_scale(); i++) {
		if (d->pid > 0 && hd_log_count(d, "init: sleeping") > 0) {
			kill(d->pid, SIGHUP);
			return (void *)1;
		}
		hd_sleep_ms(10);
	}
	return NULL;
}

/* A SIGHUP that arrives while the daemon is still starting (a plugin's
 * init takes its time) does not kill it: it is held and reloads once the
 * daemon serves. */
Test(ops, sighup_during_startup_is_held, .timeout = 60)
{
	static struct hd d;
	pthread_t t;
	void *sent = NULL;

	hd_prepare(&d, "\"plugins\": {\"slow_init\": {\"ms\": 1500}}", (const char *[]){"echo", NULL});
	hd_install(&d, "fixtures/slow_init.so", "slow_init.so");
	cr_assert_eq(pthread_create(&t, NULL, hup_mid_init, &d), 0);
	bool up = hd_launch(&d, 20000);
	pthread_join(t, &sent);
	cr_assert(sent, "the SIGHUP was never sent (no \"init: sleeping\" in the log)");
	cr_assert(up, "the daemon did not survive a SIGHUP during start-up");
	cr_assert(hd_wait_log(&d, "SIGHUP: reloading", 1, 10000),
		  "the SIGHUP sent during start-up was lost");
	cr_assert(hd_wait_generation(&d, 2, 10000));
	cr_assert_eq(hd_stop(&d), 0);
}
