/*
 * Hot reload (SIGHUP) of the real daemon: add, remove and replace plugins
 * under concurrent load with zero failed calls, generations in GET
 * /plugins, last known good, rejected files, a bad config keeping the old
 * generation whole, calls in flight keeping their plugin loaded until they
 * end, explicit chains waiting for their plugin, and many reloads in a row.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"

/* ---- helpers ---------------------------------------------------------- */

/* libevent times its timers with CLOCK_MONOTONIC_COARSE (a tick of up to
 * 10 ms here): a plugin's timer may fire that much before `ms` measured
 * with the precise clock. */
#define COARSE_MS 25

/* How many answers a load gets before and after the change it straddles:
 * counted, not timed, so that a slow machine still sees the load run on
 * both sides of the change. */
#define LOAD_CALLS 20

TestSuite(reload, .fini = hd_suite_teardown);

/* GET /plugins, parsed. */
static cJSON *plugins_json(struct hd *d)
{
	struct hd_resp r;
	cJSON *o;

	hd_get(d, "/plugins", &r);
	cr_assert_eq(r.status, 200, "GET /plugins: %ld %s", r.status, r.body);
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o, "GET /plugins is not JSON: %s", r.body);
	hd_resp_free(&r);
	return o;
}

static int top_generation(const cJSON *root)
{
	const cJSON *g = cJSON_GetObjectItem(root, "generation");

	cr_assert(cJSON_IsNumber(g), "no top-level generation");
	return (int)g->valuedouble;
}

/* The element of array `arr` whose string member `key` is `val`, or NULL. */
static cJSON *find_by(const cJSON *arr, const char *key, const char *val)
{
	cJSON *e;

	cJSON_ArrayForEach(e, arr)
	{
		const cJSON *k = cJSON_GetObjectItem(e, key);
		if (cJSON_IsString(k) && strcmp(k->valuestring, val) == 0)
			return e;
	}
	return NULL;
}

/* The generation that loaded plugin `name`, or -1 if it is not listed. */
static int plugin_generation(const cJSON *root, const char *name)
{
	const cJSON *p = find_by(cJSON_GetObjectItem(root, "plugins"), "name", name);

	return p ? (int)cJSON_GetObjectItem(p, "generation")->valuedouble : -1;
}

/* The reason `file` is rejected for, or NULL if it is not. */
static const char *rejected_reason(const cJSON *root, const char *file)
{
	const cJSON *r = find_by(cJSON_GetObjectItem(root, "rejected"), "file", file);

	return r ? cJSON_GetObjectItem(r, "reason")->valuestring : NULL;
}

static int current_generation(struct hd *d)
{
	cJSON *o = plugins_json(d);
	int g = top_generation(o);

	cJSON_Delete(o);
	return g;
}

/* SIGHUP and wait for generation `gen` to be current. */
static void reload_to(struct hd *d, int gen)
{
	hd_signal(d, SIGHUP);
	cr_assert(hd_wait_generation(d, gen, 10000), "generation %d never came", gen);
	cr_assert_eq(current_generation(d), gen, "one SIGHUP, one generation");
}

static void expect_status(struct hd *d, const char *path, const char *body, long status)
{
	struct hd_resp r;

	hd_post(d, path, body, &r);
	cr_assert_eq(r.status, status, "POST %s: %ld %s (expected %ld)", path, r.status, r.body,
		     status);
	hd_resp_free(&r);
}

/* POST /hooks/ver and check which version answered; the input must come
 * back in "input". */
static void expect_version(struct hd *d, const char *version)
{
	struct hd_resp r;
	cJSON *o;

	hd_post(d, "/hooks/ver", "{\"n\": 42}", &r);
	cr_assert_eq(r.status, 200, "POST /hooks/ver: %ld %s", r.status, r.body);
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o, "%s", r.body);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "version")->valuestring, version, "%s", r.body);
	cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "input"), "n")->valuedouble, 42);
	cJSON_Delete(o);
	hd_resp_free(&r);
}

/* The version "ver" answers with now: "a", "b", or "" on a non-200. */
static void current_version(struct hd *d, char out[8])
{
	struct hd_resp r;
	cJSON *o;

	out[0] = '\0';
	hd_post(d, "/hooks/ver", "{}", &r);
	if (r.status == 200 && (o = cJSON_Parse(r.body))) {
		const cJSON *v = cJSON_GetObjectItem(o, "version");
		if (cJSON_IsString(v))
			snprintf(out, 8, "%s", v->valuestring);
		cJSON_Delete(o);
	}
	hd_resp_free(&r);
}

static void expect_no_failures(const char *what, const struct hd_load_result *res)
{
	cr_assert_eq(res->failed, 0, "%s: %ld call(s) failed (of %ld); last: status %ld, %s", what,
		     res->failed, res->failed + res->ok, res->last_bad_status,
		     res->last_bad_body);
	cr_assert_gt(res->ok, 0, "%s: the load generator made no call", what);
}

/* Is there one log line holding every one of the NULL-terminated needles? */
static bool log_line_with(struct hd *d, const char *const *needles)
{
	char *log = hd_log_read(d), *line = log, *nl;
	bool found = false;

	for (; !found && line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		found = true;
		for (size_t i = 0; found && needles[i]; i++)
			found = strstr(line, needles[i]) != NULL;
	}
	free(log);
	return found;
}

/* Files in the daemon's private directory (run/hookd-PID-XXXXXX), or -1
 * when there is none. */
static int private_copies(struct hd *d)
{
	char run[400], sub[700];
	struct dirent *de;
	DIR *dir;
	int n = -1;

	snprintf(run, sizeof(run), "%s/run", d->dir);
	dir = opendir(run);
	cr_assert_not_null(dir);
	sub[0] = '\0';
	while ((de = readdir(dir)))
		if (strncmp(de->d_name, "hookd-", 6) == 0)
			snprintf(sub, sizeof(sub), "%s/%s", run, de->d_name);
	closedir(dir);
	if (!sub[0])
		return -1;
	dir = opendir(sub);
	cr_assert_not_null(dir);
	n = 0;
	while ((de = readdir(dir)))
		n += de->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* Poll GET /health until `n` hook calls are in flight. */
static void wait_in_flight(struct hd *d, int n)
{
	double end = hd_now_ms() + 10000.0 * hd_scale();
	int got = -1;

	while (hd_now_ms() < end) {
		struct hd_resp r;
		hd_get(d, "/health", &r);
		cJSON *o = cJSON_Parse(r.body);
		const cJSON *v = o ? cJSON_GetObjectItem(o, "calls_in_flight") : NULL;
		got = cJSON_IsNumber(v) ? (int)v->valuedouble : -1;
		cJSON_Delete(o);
		hd_resp_free(&r);
		if (got >= n)
			return;
		hd_sleep_ms(5);
	}
	cr_assert_fail("only %d call(s) in flight, expected %d", got, n);
}

/* SIGTERM, wait for the exit: status 0, every plugin copy that was loaded
 * was unloaded (fini + dlclose), the private directory is gone. */
static void stop_clean(struct hd *d)
{
	hd_signal(d, SIGTERM);
	cr_assert(hd_wait_exit(d, 20000), "the daemon did not exit after SIGTERM");
	int loaded = hd_log_count(d, " info loaded plugin ");
	int unloaded = hd_log_count(d, "unloaded plugin ");
	cr_assert_gt(loaded, 0);
	cr_assert_eq(unloaded, loaded, "%d plugin copies loaded, %d unloaded", loaded, unloaded);
	cr_assert_eq(private_copies(d), -1, "the private directory is still there");
	cr_assert_eq(hd_stop(d), 0, "exit status");
}

static const char *const echo_only[] = {"echo", NULL};

/* Wait until load `l` got LOAD_CALLS more answers: it runs (now). */
static void load_runs(struct hd_load *l, const char *when)
{
	cr_assert(hd_load_wait(l, LOAD_CALLS, 10000), "the load got no %d answers %s", LOAD_CALLS,
		  when);
}

/* ---- add, remove, replace under load --------------------------------- */

Test(reload, hot_add_under_load, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	struct hd_load *l;
	struct hd_load_result res;
	cJSON *o;

	hd_start(&d, "", echo_only);
	expect_status(&d, "/hooks/ver", "{}", 404);
	l = hd_load_start(&d, "/hooks/echo", "{\"load\": true}", 4);
	load_runs(l, "before the change");
	hd_install(&d, "fixtures/ver_a.so", "ver.so");
	reload_to(&d, 2);
	expect_version(&d, "a");
	load_runs(l, "after the change");
	hd_load_stop(l, &res);
	expect_no_failures("/hooks/echo across the reload", &res);

	o = plugins_json(&d);
	cr_assert_eq(top_generation(o), 2);
	cr_assert_eq(plugin_generation(o, "ver"), 2, "ver was loaded by generation 2");
	cr_assert_eq(plugin_generation(o, "echo"), 1, "echo was not reloaded");
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "rejected")), 0);
	cJSON_Delete(o);
	cr_assert(hd_log_count(&d, "loaded plugin ver a (ver.so, sync, generation 2)") == 1);
	stop_clean(&d);
}

Test(reload, hot_remove_under_load, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	struct hd_load *l;
	struct hd_load_result res;
	cJSON *o;

	hd_prepare(&d, "", echo_only);
	hd_install(&d, "fixtures/ver_a.so", "ver.so");
	hd_launch_or_fail(&d);
	expect_version(&d, "a");
	l = hd_load_start(&d, "/hooks/echo", "{\"load\": true}", 4);
	load_runs(l, "before the change");
	hd_uninstall(&d, "ver.so");
	reload_to(&d, 2);
	expect_status(&d, "/hooks/ver", "{}", 404);
	load_runs(l, "after the change");
	hd_load_stop(l, &res);
	expect_no_failures("/hooks/echo across the reload", &res);

	o = plugins_json(&d);
	cr_assert_eq(plugin_generation(o, "ver"), -1, "ver is still listed");
	cr_assert_eq(plugin_generation(o, "echo"), 1);
	cr_assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "hooks"), "ver"));
	cJSON_Delete(o);
	/* no call holds generation 1 any more: its ver copy is gone */
	cr_assert(hd_wait_log(&d, "unloaded plugin ver (ver.so, generation 1)", 1, 5000));
	cr_assert_eq(private_copies(&d), 1, "only echo's private copy is left");
	stop_clean(&d);
}

Test(reload, hot_replace_under_load_runs_the_new_code, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	struct hd_load *le, *lv;
	struct hd_load_result res;
	cJSON *o;

	hd_prepare(&d, "", echo_only);
	hd_install(&d, "fixtures/ver_a.so", "ver.so");
	hd_launch_or_fail(&d);
	expect_version(&d, "a");
	le = hd_load_start(&d, "/hooks/echo", "{\"load\": true}", 3);
	lv = hd_load_start(&d, "/hooks/ver", "{\"load\": true}", 3);
	load_runs(le, "before the change");
	load_runs(lv, "before the change");
	/* same path, same size, new code: a plain dlopen of plugins/ver.so
	 * would hand back glibc's cached handle and keep running "a" */
	hd_install(&d, "fixtures/ver_b.so", "ver.so");
	reload_to(&d, 2);
	expect_version(&d, "b");
	load_runs(le, "after the change");
	load_runs(lv, "after the change");
	hd_load_stop(le, &res);
	expect_no_failures("/hooks/echo across the replace", &res);
	hd_load_stop(lv, &res);
	expect_no_failures("/hooks/ver across the replace", &res);

	o = plugins_json(&d);
	cr_assert_eq(plugin_generation(o, "ver"), 2);
	cr_assert_str_eq(cJSON_GetObjectItem(find_by(cJSON_GetObjectItem(o, "plugins"), "name",
						     "ver"), "version")->valuestring, "b");
	cr_assert_eq(plugin_generation(o, "echo"), 1);
	cJSON_Delete(o);
	cr_assert(hd_wait_log(&d, "unloaded plugin ver (ver.so, generation 1)", 1, 5000));

	/* and back again */
	hd_install(&d, "fixtures/ver_a.so", "ver.so");
	reload_to(&d, 3);
	expect_version(&d, "a");
	stop_clean(&d);
}

/* ---- what a reload keeps ---------------------------------------------- */

Test(reload, unchanged_plugins_are_not_reloaded, .timeout = 60)
{
	static const char *const basic[] = {"echo", "echo_async", "sleep", "delay", "fail",
					    NULL};
	static struct hd d; /* static: the teardown may read it */
	cJSON *o, *p;

	hd_start(&d, "", basic);
	cr_assert_eq(hd_log_count(&d, " info loaded plugin "), 5);
	for (int gen = 2; gen <= 4; gen++)
		reload_to(&d, gen);
	o = plugins_json(&d);
	cr_assert_eq(top_generation(o), 4);
	p = cJSON_GetObjectItem(o, "plugins");
	cr_assert_eq(cJSON_GetArraySize(p), 5);
	for (int i = 0; i < 5; i++) {
		cJSON *e = cJSON_GetArrayItem(p, i);
		cr_assert_eq(cJSON_GetObjectItem(e, "generation")->valuedouble, 1,
			     "plugin %s was reloaded", cJSON_GetObjectItem(e, "name")->valuestring);
	}
	cJSON_Delete(o);
	/* no fini/dlclose, no new load, no new private copy */
	cr_assert_eq(hd_log_count(&d, " info loaded plugin "), 5);
	cr_assert_eq(hd_log_count(&d, "unloaded plugin "), 0);
	cr_assert_eq(private_copies(&d), 5);
	expect_status(&d, "/hooks/echo", "{}", 200);
	expect_status(&d, "/hooks/delay", "{\"ms\": 1}", 200);
	stop_clean(&d);
}

Test(reload, changed_plugin_config_reloads_only_that_plugin, .timeout = 60)
{
	static const char *const plugins[] = {"echo", "tag", NULL};
	static struct hd d; /* static: the teardown may read it */
	struct hd_resp r;
	cJSON *o;

	hd_start(&d, "\"plugins\": {\"tag\": {\"label\": \"one\"}}", plugins);
	hd_post(&d, "/hooks/tag", "{}", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"trace\":[\"one\"]}\n");
	hd_resp_free(&r);

	hd_write_config(&d, "\"plugins\": {\"tag\": {\"label\": \"two\"}}");
	reload_to(&d, 2);
	hd_post(&d, "/hooks/tag", "{}", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"trace\":[\"two\"]}\n", "the new section reached init");
	hd_resp_free(&r);
	o = plugins_json(&d);
	cr_assert_eq(plugin_generation(o, "tag"), 2);
	cr_assert_eq(plugin_generation(o, "echo"), 1);
	cJSON_Delete(o);
	cr_assert(hd_wait_log(&d, "unloaded plugin tag (tag.so, generation 1)", 1, 5000));
	stop_clean(&d);
}

Test(reload, new_hook_settings_apply_without_reloading_plugins, .timeout = 60)
{
	static const char *const plugins[] = {"echo", "delay", NULL};
	static struct hd d; /* static: the teardown may read it */
	char body[300];
	cJSON *o;

	memset(body, ' ', sizeof(body) - 1);
	body[0] = '[';
	body[sizeof(body) - 2] = ']';
	body[sizeof(body) - 1] = '\0';
	hd_start(&d, "", plugins);
	expect_status(&d, "/hooks/delay", "{\"ms\": 300}", 200);
	expect_status(&d, "/hooks/echo", body, 200);
	hd_write_config(&d, "\"max_body\": 64, \"hooks\": {\"delay\": {\"timeout_ms\": 100}}");
	reload_to(&d, 2);
	expect_status(&d, "/hooks/delay", "{\"ms\": 300}", 504);
	expect_status(&d, "/hooks/echo", body, 413);
	expect_status(&d, "/hooks/echo", "{}", 200);
	o = plugins_json(&d);
	cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "hooks"),
							     "delay"), "timeout_ms")->valuedouble,
		     100);
	cr_assert_eq(plugin_generation(o, "delay"), 1, "hook settings do not reload a plugin");
	cr_assert_eq(plugin_generation(o, "echo"), 1);
	cJSON_Delete(o);
	stop_clean(&d);
}

/* ---- a reload that fails keeps the old generation whole ---------------- */

Test(reload, bad_config_keeps_the_old_generation, .timeout = 60)
{
	static const struct {
		const char *members;
		const char *key;
	} bad[] = {
		{"\"bogus_key\": 1", "bogus_key"},
		{"\"workers\": \"many\"", "workers"},
		{"\"hooks\": {\"echo\": {\"chain\": []}}", "hooks.echo.chain"},
		{"\"plugins\": {\"echo\": 3}", "plugins.echo"},
	};
	static struct hd d; /* static: the teardown may read it */
	struct hd_load *l;
	struct hd_load_result res;
	FILE *f;
	int n = 0;

	hd_start(&d, "", echo_only);
	l = hd_load_start(&d, "/hooks/echo", "{\"load\": true}", 2);
	load_runs(l, "before the change");
	/* a new plugin in the folder must not come in through a failed reload */
	hd_install(&d, "fixtures/ver_a.so", "ver.so");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hd_write_config(&d, bad[i].members);
		hd_signal(&d, SIGHUP);
		cr_assert(hd_wait_log(&d, "reload failed", ++n, 5000), "no 'reload failed' for %s",
			  bad[i].members);
		cr_assert(log_line_with(&d, (const char *const[]){"reload failed", d.config,
								 bad[i].key,
								 "still serving generation 1",
								 NULL}),
			  "no log line naming %s and %s", d.config, bad[i].key);
		cr_assert_eq(current_generation(&d), 1);
		expect_status(&d, "/hooks/ver", "{}", 404);
		expect_status(&d, "/hooks/echo", "{}", 200);
	}
	/* not JSON at all */
	f = fopen(d.config, "w");
	cr_assert_not_null(f);
	fputs("{ \"listen\": \"127.0.0.1:0\", \n", f);
	fclose(f);
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_log(&d, "reload failed", ++n, 5000));
	cr_assert(log_line_with(&d, (const char *const[]){"reload failed", d.config, NULL}));
	cr_assert_eq(current_generation(&d), 1);
	expect_status(&d, "/hooks/echo", "{}", 200);

	/* fixed: the next generation is 2, with the new plugin */
	hd_write_config(&d, "");
	reload_to(&d, 2);
	expect_version(&d, "a");
	load_runs(l, "after the change");
	hd_load_stop(l, &res);
	expect_no_failures("/hooks/echo across failed reloads", &res);
	stop_clean(&d);
}

Test(reload, unreadable_plugin_dir_keeps_the_old_generation, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	char away[400];

	hd_start(&d, "", echo_only);
	snprintf(away, sizeof(away), "%s.away", d.plugin_dir);
	cr_assert_eq(rename(d.plugin_dir, away), 0);
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_log(&d, "reload failed", 1, 5000));
	cr_assert(log_line_with(&d, (const char *const[]){"reload failed", "plugin_dir",
							 d.plugin_dir, "still serving generation 1",
							 NULL}));
	cr_assert_eq(current_generation(&d), 1);
	expect_status(&d, "/hooks/echo", "{}", 200);
	cr_assert_eq(rename(away, d.plugin_dir), 0);
	reload_to(&d, 2);
	expect_status(&d, "/hooks/echo", "{}", 200);
	stop_clean(&d);
}

/* A reload that fails ("reload failed: plugin_dir ...: cannot open ...;
 * still serving generation 1") changes nothing: not even the body limit or
 * the log level of the config it could not apply. */
Test(reload, failed_reload_does_not_apply_half_of_the_new_config, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	char away[400], body[300];

	hd_start(&d, "", echo_only);
	memset(body, ' ', sizeof(body) - 1);
	body[0] = '[';
	body[sizeof(body) - 2] = ']';
	body[sizeof(body) - 1] = '\0';
	expect_status(&d, "/hooks/echo", body, 200);
	/* a config that validates, but its plugin folder cannot be read */
	hd_write_config(&d, "\"max_body\": 64");
	snprintf(away, sizeof(away), "%s.away", d.plugin_dir);
	cr_assert_eq(rename(d.plugin_dir, away), 0);
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_log(&d, "reload failed", 1, 5000));
	cr_assert_eq(current_generation(&d), 1);
	/* generation 1 was built with max_body 1 MiB */
	expect_status(&d, "/hooks/echo", body, 200);
	cr_assert_eq(rename(away, d.plugin_dir), 0);
	stop_clean(&d);
}

/* ---- rejected files --------------------------------------------------- */

Test(reload, broken_replacement_keeps_the_last_good_version, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	struct hd_load *l;
	struct hd_load_result res;
	const char *why;
	cJSON *o;

	hd_prepare(&d, "", echo_only);
	hd_install(&d, "fixtures/ver_a.so", "ver.so");
	hd_launch_or_fail(&d);
	expect_version(&d, "a");
	l = hd_load_start(&d, "/hooks/ver", "{\"load\": true}", 3);
	load_runs(l, "before the change");
	hd_install(&d, "fixtures/not_elf.so", "ver.so");
	reload_to(&d, 2);
	expect_version(&d, "a");
	o = plugins_json(&d);
	why = rejected_reason(o, "ver.so");
	cr_assert_not_null(why, "ver.so is not listed in \"rejected\"");
	cr_assert(strstr(why, "still serving the previous version"), "%s", why);
	cr_assert(strstr(why, "dlopen failed"), "%s", why);
	cr_assert_eq(plugin_generation(o, "ver"), 1, "the old copy serves");
	cJSON_Delete(o);
	cr_assert(log_line_with(&d, (const char *const[]){"plugin file", "/plugins/ver.so",
							 "rejected",
							 "still serving the previous version", NULL}));

	/* still broken at the next reload: still the last good one */
	reload_to(&d, 3);
	expect_version(&d, "a");
	o = plugins_json(&d);
	cr_assert_not_null(rejected_reason(o, "ver.so"));
	cr_assert_eq(plugin_generation(o, "ver"), 1);
	cJSON_Delete(o);

	/* a good file again */
	hd_install(&d, "fixtures/ver_b.so", "ver.so");
	reload_to(&d, 4);
	expect_version(&d, "b");
	load_runs(l, "after the change");
	hd_load_stop(l, &res);
	expect_no_failures("/hooks/ver across a broken replacement", &res);
	o = plugins_json(&d);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "rejected")), 0);
	cr_assert_eq(plugin_generation(o, "ver"), 4);
	cJSON_Delete(o);
	stop_clean(&d);
}

Test(reload, broken_files_dropped_in_are_rejected_and_the_rest_keeps_serving, .timeout = 60)
{
	static const struct {
		const char *fixture;
		const char *hook; /* a hook it would serve */
		const char *reason;
	} broken[] = {
		{"not_elf", "not_elf", "dlopen failed"},
		{"abi_major", "abi_major", "incompatible ABI"},
		{"bad_hook", "ok", "invalid hook name"},
		{"bad_magic", "bad_magic", "descriptor magic"},
		{"bad_mode", "bad_mode", "unknown mode"},
		{"bad_name", "bad_name", "invalid plugin name"},
		{"empty_name", "empty_name", "empty name"},
		{"init_fail", "init_fail", "init failed"},
		{"no_descriptor", "no_descriptor", "no descriptor"},
		{"no_entry", "no_entry", "without a call_async"},
		{"no_hooks", "no_hooks", "serves no hooks"},
		{"small_size", "small_size", "descriptor size"},
		{"unresolved", "unresolved", "undefined symbol"},
	};
	const size_t nbroken = sizeof(broken) / sizeof(broken[0]);
	static const char *const plugins[] = {"echo", "delay", NULL};
	static struct hd d; /* static: the teardown may read it */
	struct hd_load *l;
	struct hd_load_result res;
	char rel[128], file[128], path[600];
	cJSON *o;

	hd_start(&d, "", plugins);
	l = hd_load_start(&d, "/hooks/echo", "{\"load\": true}", 3);
	load_runs(l, "before the change");
	for (size_t i = 0; i < nbroken; i++) {
		snprintf(rel, sizeof(rel), "fixtures/%s.so", broken[i].fixture);
		snprintf(file, sizeof(file), "%s.so", broken[i].fixture);
		hd_install(&d, rel, file);
	}
	hd_install(&d, "fixtures/ver_a.so", "ver.so"); /* a good one among them */
	reload_to(&d, 2);
	o = plugins_json(&d);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "rejected")), (int)nbroken,
		     "rejected: %d", cJSON_GetArraySize(cJSON_GetObjectItem(o, "rejected")));
	for (size_t i = 0; i < nbroken; i++) {
		snprintf(file, sizeof(file), "%s.so", broken[i].fixture);
		snprintf(path, sizeof(path), "%s/%s", d.plugin_dir, file);
		const char *why = rejected_reason(o, file);
		cr_assert_not_null(why, "%s is not listed in \"rejected\"", file);
		cr_assert(strstr(why, broken[i].reason), "%s: %s", file, why);
		cr_assert(log_line_with(&d, (const char *const[]){"plugin file", path, "rejected",
								 broken[i].reason, NULL}),
			  "no log line naming %s and why", path);
		expect_status(&d, (snprintf(path, sizeof(path), "/hooks/%s", broken[i].hook), path),
			      "{}", 404);
	}
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "plugins")), 3);
	cr_assert_eq(plugin_generation(o, "echo"), 1);
	cr_assert_eq(plugin_generation(o, "delay"), 1);
	cr_assert_eq(plugin_generation(o, "ver"), 2);
	cJSON_Delete(o);
	/* the plugin's own explanation reached the log too */
	cr_assert_eq(hd_log_count(&d, "plugin init_fail: missing database URL"), 1);
	expect_version(&d, "a");
	expect_status(&d, "/hooks/delay", "{\"ms\": 1}", 200);

	/* they are tried again at every reload, and never do harm */
	reload_to(&d, 3);
	cr_assert_eq(hd_log_count(&d, "plugin init_fail: missing database URL"), 2);
	expect_version(&d, "a");
	load_runs(l, "after the change");
	hd_load_stop(l, &res);
	expect_no_failures("/hooks/echo while broken files came in", &res);
	stop_clean(&d);
}

/* A newcomer whose descriptor claims the name of a loaded plugin
 * (fixtures/dup_name.so calls itself "echo") is the one refused on reload,
 * even though it sorts first: what serves keeps serving. */
Test(reload, duplicate_name_dropped_in_does_not_evict_the_loaded_plugin, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	struct hd_load *l;
	struct hd_load_result res;
	const char *why;
	cJSON *o;

	hd_start(&d, "", echo_only);
	l = hd_load_start(&d, "/hooks/echo", "{\"load\": true}", 2);
	load_runs(l, "before the change");
	hd_install(&d, "fixtures/dup_name.so", "dup_name.so");
	reload_to(&d, 2);
	expect_status(&d, "/hooks/echo", "{}", 200);
	load_runs(l, "after the change");
	hd_load_stop(l, &res);
	expect_no_failures("/hooks/echo after a duplicate name came in", &res);
	o = plugins_json(&d);
	why = rejected_reason(o, "dup_name.so");
	cr_assert_not_null(why, "dup_name.so is not the file rejected");
	cr_assert(strstr(why, "duplicate plugin name"), "%s", why);
	cr_assert_null(rejected_reason(o, "echo.so"), "the serving echo.so was rejected");
	cJSON_Delete(o);
	stop_clean(&d);
}

/* ---- explicit chains waiting for a plugin ------------------------------ */

Test(reload, explicit_chain_answers_503_until_its_plugin_is_added, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	struct hd_resp r;
	cJSON *o;
	const cJSON *h;

	hd_start(&d, "\"hooks\": {\"pipe\": {\"chain\": [\"echo\", \"ver\"]}}", echo_only);
	hd_post(&d, "/hooks/pipe", "{\"k\": 1}", &r);
	cr_assert_eq(r.status, 503, "%ld %s", r.status, r.body);
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o);
	cr_assert(strstr(cJSON_GetObjectItem(o, "error")->valuestring, "plugin ver is not loaded"),
		  "%s", r.body);
	cJSON_Delete(o);
	hd_resp_free(&r);
	cr_assert(log_line_with(&d, (const char *const[]){"hooks.pipe.chain[1]", "ver", NULL}));
	o = plugins_json(&d);
	h = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "hooks"), "pipe");
	cr_assert(cJSON_IsString(cJSON_GetObjectItem(h, "unavailable")));
	cJSON_Delete(o);

	hd_install(&d, "fixtures/ver_a.so", "ver.so");
	reload_to(&d, 2);
	hd_post(&d, "/hooks/pipe", "{\"k\": 1}", &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	cr_assert_str_eq(r.body, "{\"version\":\"a\",\"input\":{\"k\":1}}\n");
	hd_resp_free(&r);
	o = plugins_json(&d);
	h = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "hooks"), "pipe");
	cr_assert_null(cJSON_GetObjectItem(h, "unavailable"));
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(h, "chain")), 2);
	cJSON_Delete(o);

	/* gone again, then present but broken: 503 says why */
	hd_uninstall(&d, "ver.so");
	reload_to(&d, 3);
	expect_status(&d, "/hooks/pipe", "{}", 503);
	hd_install(&d, "fixtures/not_elf.so", "ver.so");
	reload_to(&d, 4);
	hd_post(&d, "/hooks/pipe", "{}", &r);
	cr_assert_eq(r.status, 503);
	cr_assert(strstr(r.body, "plugin ver is not loaded") && strstr(r.body, "dlopen failed"),
		  "%s", r.body);
	hd_resp_free(&r);
	expect_status(&d, "/hooks/echo", "{}", 200);
	stop_clean(&d);
}

/* ---- calls in flight across a reload ----------------------------------- */

/* A call to `hook` of the plugin in `file` that takes `ms` is in flight
 * while the file is removed and SIGHUP swaps in a generation without it:
 * the call still answers 200 with its input, and the plugin is unloaded
 * only once the call is over. */
static void inflight_across_removal(const char *hook, const char *file)
{
	static const char *const plugins[] = {"echo", "sleep", "delay", NULL};
	static struct hd d; /* static: the teardown may read it */
	struct hd_resp r;
	char body[96], expect[96], path[64], unload[128];
	int ms = hd_scale() > 1 ? 3000 : 1500; /* long enough for the reload to be over */
	double t0, done_ms;
	struct hd_bg *b;
	cJSON *o;

	snprintf(body, sizeof(body), "{\"ms\": %d, \"id\": \"in flight\"}", ms);
	snprintf(path, sizeof(path), "/hooks/%s", hook);
	snprintf(unload, sizeof(unload), "unloaded plugin %s (%s, generation 1)", hook, file);
	hd_start(&d, "", plugins);
	t0 = hd_now_ms();
	b = hd_bg_post(&d, path, body);
	wait_in_flight(&d, 1);
	hd_uninstall(&d, file);
	reload_to(&d, 2);
	/* new calls see generation 2, where the plugin is gone */
	expect_status(&d, path, "{\"ms\": 0}", 404);
	o = plugins_json(&d);
	cr_assert_eq(plugin_generation(o, hook), -1);
	cJSON_Delete(o);
	cr_assert(!hd_bg_done(b), "the call ended before the reload was over");

	/* The plugin's code must stay until the call is over. The daemon logs
	 * the unload just before the reply reaches the client, so the strict
	 * order is checked against the one thing that cannot come early: the
	 * plugin finishes no sooner than `ms` after the call was sent. */
	while (!hd_bg_done(b)) {
		int n = hd_log_count(&d, "unloaded plugin ");
		double now = hd_now_ms();
		cr_assert(n == 0 || now >= t0 + ms - COARSE_MS,
			  "a plugin was unloaded %.0f ms into a call of %d ms still in flight",
			  now - t0, ms);
		hd_sleep_ms(5);
	}
	hd_bg_wait(b, &r, &done_ms);
	cr_assert_eq(r.status, 200, "the call in flight: %ld %s", r.status, r.body);
	snprintf(expect, sizeof(expect), "{\"ms\":%d,\"id\":\"in flight\"}\n", ms);
	cr_assert_str_eq(r.body, expect, "the call's input comes back");
	cr_assert_geq(done_ms - t0, ms - COARSE_MS, "answered %.0f ms after it was sent, before "
		      "the plugin could have finished", done_ms - t0);
	hd_resp_free(&r);
	cr_assert(hd_wait_log(&d, unload, 1, 5000), "no '%s' after the call ended", unload);
	cr_assert_eq(hd_log_count(&d, "unloaded plugin "), 1, "only the removed plugin goes");
	expect_status(&d, "/hooks/echo", "{}", 200);
	stop_clean(&d);
}

Test(reload, inflight_async_call_survives_the_reload_that_removes_its_plugin, .timeout = 60)
{
	inflight_across_removal("delay", "delay.so");
}

Test(reload, inflight_sync_call_survives_the_reload_that_removes_its_plugin, .timeout = 60)
{
	inflight_across_removal("sleep", "sleep.so");
}

/* A call pins the generation it started with for its whole chain: the
 * step after the reload still runs the old "ver". */
Test(reload, chain_in_flight_finishes_on_the_generation_it_started_with, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	struct hd_resp r;
	struct hd_bg *b;
	char body[64];
	cJSON *o;

	hd_prepare(&d, "\"hooks\": {\"slowver\": {\"chain\": [\"delay\", \"ver\"]}}",
		(const char *const[]){"echo", "delay", NULL});
	hd_install(&d, "fixtures/ver_a.so", "ver.so");
	hd_launch_or_fail(&d);
	snprintf(body, sizeof(body), "{\"ms\": %d}", hd_scale() > 1 ? 3000 : 1500);
	b = hd_bg_post(&d, "/hooks/slowver", body);
	wait_in_flight(&d, 1);
	hd_install(&d, "fixtures/ver_b.so", "ver.so");
	reload_to(&d, 2);
	cr_assert(!hd_bg_done(b), "the call ended before the reload was over");
	hd_post(&d, "/hooks/slowver", "{\"ms\": 0}", &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "\"version\":\"b\""), "a new call: %s", r.body);
	hd_resp_free(&r);
	hd_bg_wait(b, &r, NULL);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o, "%s", r.body);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "version")->valuestring, "a",
			 "the call in flight switched code mid-chain: %s", r.body);
	cJSON_Delete(o);
	hd_resp_free(&r);
	cr_assert(hd_wait_log(&d, "unloaded plugin ver (ver.so, generation 1)", 1, 5000));
	stop_clean(&d);
}

/* A plugin that completes calls from threads of its own, reloaded again and
 * again (a new config section each time) while it is called: every old
 * copy is unloaded only after its calls and threads are over (fini joins
 * them), and no call fails. */
Test(reload, plugin_with_threads_reloaded_under_load, .timeout = 120)
{
	static struct hd d; /* static: the teardown may read it */
	struct hd_load *l;
	struct hd_load_result res;
	char members[96];
	cJSON *o;

	hd_prepare(&d, "\"plugins\": {\"offloop\": {\"round\": 0}}", echo_only);
	hd_install(&d, "fixtures/offloop.so", "offloop.so");
	hd_launch_or_fail(&d);
	l = hd_load_start(&d, "/hooks/offloop", "{\"ms\": 3}", 4);
	load_runs(l, "before the change");
	for (int i = 1; i <= 20; i++) {
		snprintf(members, sizeof(members), "\"plugins\": {\"offloop\": {\"round\": %d}}", i);
		hd_write_config(&d, members);
		reload_to(&d, i + 1);
		/* each copy serves calls (and starts threads) before it is replaced */
		cr_assert(hd_load_wait(l, 4, 10000), "no call answered by generation %d", i + 1);
	}
	load_runs(l, "after the change");
	hd_load_stop(l, &res);
	expect_no_failures("/hooks/offloop while it was reloaded 20 times", &res);
	o = plugins_json(&d);
	cr_assert_eq(plugin_generation(o, "offloop"), 21);
	cr_assert_eq(plugin_generation(o, "echo"), 1);
	cJSON_Delete(o);
	cr_assert(hd_wait_log(&d, "unloaded plugin offloop (", 20, 5000),
		  "%d of 20 old copies of offloop unloaded",
		  hd_log_count(&d, "unloaded plugin offloop ("));
	cr_assert_eq(private_copies(&d), 2);
	stop_clean(&d);
}

/* ---- many reloads under load ------------------------------------------- */

Test(reload, many_reloads_under_load, .timeout = 180)
{
	static struct hd d; /* static: the teardown may read it */
	struct hd_load *le, *lv;
	struct hd_load_result res;
	char v[8];
	double end;
	int gen;

	hd_prepare(&d, "", echo_only);
	hd_install(&d, "fixtures/ver_a.so", "ver.so");
	hd_launch_or_fail(&d);
	le = hd_load_start(&d, "/hooks/echo", "{\"load\": true}", 2);
	lv = hd_load_start(&d, "/hooks/ver", "{\"load\": true}", 2);
	load_runs(le, "before the change");
	load_runs(lv, "before the change");
	gen = current_generation(&d);
	for (int i = 0; i < 200; i++) {
		hd_install(&d, i % 2 ? "fixtures/ver_a.so" : "fixtures/ver_b.so", "ver.so");
		hd_signal(&d, SIGHUP);
		/* SIGHUPs come faster than reloads end, and coalesce: that is the
		 * point. The 10 ms only paces them (nothing to wait for); every 10th
		 * waits for a new generation, so that a slow machine still makes
		 * at least 20 of them instead of merging everything into a few. */
		hd_sleep_ms(10);
		if (i % 10 == 9) {
			cr_assert(hd_wait_generation(&d, gen + 1, 10000), "no reload after SIGHUP %d",
				  i + 1);
			gen = current_generation(&d);
		}
	}
	load_runs(le, "after the change");
	load_runs(lv, "after the change");
	hd_load_stop(le, &res);
	expect_no_failures("/hooks/echo during 200 reloads", &res);
	hd_load_stop(lv, &res);
	expect_no_failures("/hooks/ver during 200 reloads", &res);

	/* it still reloads: the last install wins */
	hd_install(&d, "fixtures/ver_b.so", "ver.so");
	hd_signal(&d, SIGHUP);
	end = hd_now_ms() + 10000.0 * hd_scale();
	do {
		current_version(&d, v);
		if (strcmp(v, "b") == 0)
			break;
		hd_sleep_ms(10);
	} while (hd_now_ms() < end);
	cr_assert_str_eq(v, "b", "ver never answered \"b\" after the last install");
	gen = current_generation(&d);
	cr_assert_geq(gen, 20, "only %d generations for 200 SIGHUPs", gen);
	cr_log_info("200 SIGHUPs made %d generations", gen);
	/* every old generation was freed: one private copy per plugin left (the
	 * last old one is freed on the loader thread, just after the swap) */
	for (double until = hd_now_ms() + 10000.0 * hd_scale();
	     private_copies(&d) != 2 && hd_now_ms() < until;)
		hd_sleep_ms(10);
	cr_assert_eq(private_copies(&d), 2);
	cr_assert_eq(hd_log_count(&d, " info loaded plugin ver ") -
			     hd_log_count(&d, "unloaded plugin ver "),
		     1, "old copies of ver still loaded");
	stop_clean(&d);
}

/* The bar: 1000 reloads in a row under load fail no call and leak
 * nothing (under ASan, LeakSanitizer turns a leak into a non-zero exit).
 * Each reload swaps the code of "ver" (a fresh private copy, dlopen, and
 * the old one's fini + dlclose once its calls are done), and each waits
 * for its generation, so that none coalesces with the next. */
Test(reload, a_thousand_reloads_in_a_row_under_load, .timeout = 300)
{
	static struct hd d; /* static: the teardown may read it */
	struct hd_load *le, *lv;
	struct hd_load_result res;

	hd_prepare(&d, "", echo_only);
	hd_install(&d, "fixtures/ver_a.so", "ver.so");
	hd_launch_or_fail(&d);
	le = hd_load_start(&d, "/hooks/echo", "{\"load\": true}", 2);
	lv = hd_load_start(&d, "/hooks/ver", "{\"load\": true}", 2);
	for (int i = 0; i < 1000; i++) {
		hd_install(&d, i % 2 ? "fixtures/ver_a.so" : "fixtures/ver_b.so", "ver.so");
		hd_signal(&d, SIGHUP);
		if (!hd_wait_generation(&d, i + 2, 10000)) {
			char *lg = hd_log_read(&d);
			size_t L = strlen(lg);
			struct hd_resp rr;
			hd_get(&d, "/plugins", &rr);
			fprintf(stderr, "PLUGINS status %ld: %.300s\nLOG TAIL:\n%s\n", rr.status, rr.body,
				lg + (L > 6000 ? L - 6000 : 0));
			if (getenv("HOOKD_GDB_ON_STUCK")) {
				char cmd[128];
				snprintf(cmd, sizeof(cmd), "gdb -batch -p %d -ex 'thread apply all bt' 1>&2",
					 (int)d.pid);
				if (system(cmd) < 0)
					fprintf(stderr, "gdb failed\n");
			}
			cr_assert(0, "reload %d never made its generation", i + 1);
		}
	}
	hd_load_stop(le, &res);
	expect_no_failures("/hooks/echo during 1000 reloads", &res);
	cr_assert_gt(res.ok, 0);
	hd_load_stop(lv, &res);
	expect_no_failures("/hooks/ver during 1000 reloads", &res);
	cr_assert_gt(res.ok, 0);
	cr_assert_eq(current_generation(&d), 1001);
	/* every old generation was freed: one private copy per plugin left (the
	 * last old one is freed on the loader thread, just after the swap) */
	for (double until = hd_now_ms() + 10000.0 * hd_scale();
	     private_copies(&d) != 2 && hd_now_ms() < until;)
		hd_sleep_ms(10);
	cr_assert_eq(private_copies(&d), 2);
	cr_assert_eq(hd_log_count(&d, " info loaded plugin ver ") -
			     hd_log_count(&d, "unloaded plugin ver "),
		     1, "old copies of ver still loaded");
	cr_assert_geq(hd_log_count(&d, "unloaded plugin ver "), 999);
	stop_clean(&d);
}

/* ---- loading and unloading off the event loops ------------------------ */

/* One POST /hooks/echo and one GET /health, both answered 200 now. */
static void loop_answers(struct hd *d)
{
	struct hd_resp r;

	hd_post(d, "/hooks/echo", "{\"during\": true}", &r);
	cr_assert_eq(r.status, 200, "POST /hooks/echo: %ld %s", r.status, r.body);
	hd_resp_free(&r);
	hd_get(d, "/health", &r);
	cr_assert_eq(r.status, 200, "GET /health: %ld %s", r.status, r.body);
	hd_resp_free(&r);
}

/* A plugin whose init sleeps is loaded by SIGHUP: while its init runs, the
 * loops answer calls and /health. Order, not time: each answer must come
 * back before the log says the new generation is made (with init on a
 * loop, the call would wait for the whole init and the line would be
 * there first), and then the new plugin serves. */
Test(reload, slow_init_on_reload_holds_no_loop, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	char members[96];
	struct hd_resp r;

	snprintf(members, sizeof(members), "\"plugins\": {\"slow_init\": {\"ms\": %d}}",
		 2000 * hd_scale());
	hd_start(&d, members, echo_only);
	hd_install(&d, "fixtures/slow_init.so", "slow_init.so");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_log(&d, "plugin slow_init: init: sleeping", 1, 10000));
	for (int i = 0; i < 5; i++) {
		loop_answers(&d);
		cr_assert_eq(hd_log_count(&d, "info generation 2:"), 0,
			     "answer %d came after the reload was over", i + 1);
		cr_assert_eq(hd_log_count(&d, "plugin slow_init: init: done"), 0,
			     "answer %d came after init returned", i + 1);
	}
	cr_assert(hd_wait_generation(&d, 2, 20000), "generation 2 never came");
	hd_post(&d, "/hooks/slow_init", "{\"k\": 1}", &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	cr_assert_str_eq(r.body, "{\"k\":1}\n");
	hd_resp_free(&r);
	stop_clean(&d);
}

/* SIGHUPs that arrive while a reload runs make one more reload after it,
 * not one each: three during the slow init give generation 3, and the
 * next SIGHUP generation 4. */
Test(reload, sighups_during_a_reload_coalesce_into_one_more, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	char members[96];

	snprintf(members, sizeof(members), "\"plugins\": {\"slow_init\": {\"ms\": %d}}",
		 1500 * hd_scale());
	hd_start(&d, members, echo_only);
	hd_install(&d, "fixtures/slow_init.so", "slow_init.so");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_log(&d, "plugin slow_init: init: sleeping", 1, 10000));
	/* one at a time: the kernel merges a SIGHUP into one still pending */
	for (int i = 0; i < 3; i++) {
		hd_signal(&d, SIGHUP);
		cr_assert(hd_wait_log(&d, "once more after the reload under way", i + 1, 10000));
	}
	cr_assert_eq(hd_log_count(&d, "plugin slow_init: init: done"), 0,
		     "the SIGHUPs came after the reload");
	cr_assert(hd_wait_generation(&d, 3, 20000), "no reload after the coalesced SIGHUPs");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 4, 20000), "generation 4 never came");
	cr_assert_eq(current_generation(&d), 4, "the coalesced SIGHUPs made more than one reload");
	/* slow_init did not change: loaded once, by generation 2 */
	cr_assert_eq(hd_log_count(&d, "plugin slow_init: init: sleeping"), 1);
	stop_clean(&d);
}

/* A plugin whose fini sleeps is removed: while its fini runs, the loops
 * answer; "unloaded plugin slow_fini" comes after those answers. */
Test(reload, slow_fini_on_reload_holds_no_loop, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	char members[96];

	snprintf(members, sizeof(members), "\"plugins\": {\"slow_fini\": {\"ms\": %d}}",
		 2000 * hd_scale());
	hd_prepare(&d, members, echo_only);
	hd_install(&d, "fixtures/slow_fini.so", "slow_fini.so");
	hd_launch_or_fail(&d);
	expect_status(&d, "/hooks/slow_fini", "{}", 200);
	hd_uninstall(&d, "slow_fini.so");
	reload_to(&d, 2);
	cr_assert(hd_wait_log(&d, "plugin slow_fini: fini: sleeping", 1, 10000));
	for (int i = 0; i < 5; i++) {
		loop_answers(&d);
		cr_assert_eq(hd_log_count(&d, "unloaded plugin slow_fini"), 0,
			     "answer %d came after fini returned", i + 1);
	}
	expect_status(&d, "/hooks/slow_fini", "{}", 404);
	cr_assert(hd_wait_log(&d, "unloaded plugin slow_fini (slow_fini.so, generation 1)", 1,
			      20000));
	stop_clean(&d);
}

/* SIGTERM while a slow init runs on the loader thread: the daemon waits
 * for it, drops the generation it made without serving it, unloads every
 * copy it loaded and exits 0. */
Test(reload, shutdown_during_a_slow_reload_is_clean, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	char members[96];

	snprintf(members, sizeof(members), "\"plugins\": {\"slow_init\": {\"ms\": %d}}",
		 1000 * hd_scale());
	hd_start(&d, members, echo_only);
	hd_install(&d, "fixtures/slow_init.so", "slow_init.so");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_log(&d, "plugin slow_init: init: sleeping", 1, 10000));
	stop_clean(&d); /* loaded == unloaded: slow_init's copy too */
	cr_assert_eq(hd_log_count(&d, "info generation 2:"), 0, "generation 2 was swapped in");
}
