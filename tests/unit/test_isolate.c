/*
 * isolate + wire + probe: the frames, the probe of a file, and a supervised
 * group of real runner processes (build/hookd --runner) answering, crashing,
 * being cancelled and quarantined.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"
#include "../../host/dispatch.h"
#include "../../host/isolate.h"
#include "../../host/probe.h"
#include "../../host/wire.h"

/* ---- wire ---------------------------------------------------------------- */

Test(wire, a_frame_is_whole_only_when_every_byte_is_in)
{
	struct jbuf b = {0};
	struct wire_frame f = {0};

	cr_assert_eq(wire_put_header(&b, WIRE_CALL, 42, 5), 0);
	cr_assert_eq(jbuf_append(&b, "hello", 5), 0);
	for (size_t n = 0; n < b.len; n++)
		cr_assert_eq(wire_next(b.data, n, &f), 0, "whole at %zu of %zu bytes", n, b.len);
	cr_assert_eq(wire_next(b.data, b.len, &f), (long long)b.len);
	cr_assert_eq(f.type, WIRE_CALL);
	cr_assert_eq(f.id, 42);
	cr_assert_eq(f.len, 5);
	cr_assert_eq(memcmp(f.payload, "hello", 5), 0);
	jbuf_free(&b);
}

Test(wire, garbage_is_refused)
{
	struct jbuf b = {0};
	struct wire_frame f = {0};

	cr_assert_eq(wire_put_header(&b, 99, 1, 0), 0);
	cr_assert_eq(wire_next(b.data, b.len, &f), -1, "unknown type");
	b.len = 0;
	cr_assert_eq(wire_put_header(&b, WIRE_RESULT, 1, WIRE_MAX_FRAME + 1u), 0);
	cr_assert_eq(wire_next(b.data, b.len, &f), -1, "larger than any frame");
	jbuf_free(&b);
}

/* ---- probe ----------------------------------------------------------------- */

static void exe_path(char *out, size_t len)
{
	char rel[64];

	u_build_path(rel, sizeof(rel), "hookd");
	cr_assert_not_null(realpath(rel, out), "%s: %s", rel, strerror(errno));
	(void)len;
}

Test(probe, reads_the_descriptor_in_a_child)
{
	char exe[4096], so[4096], reason[512];
	cJSON *d;

	exe_path(exe, sizeof(exe));
	u_build_path(so, sizeof(so), "plugins/echo_async.so");
	cr_assert_eq(probe_run(exe, so, PROBE_TIMEOUT_MS, &d, reason, sizeof(reason)), 0, "%s",
		     reason);
	cr_assert_str_eq(cJSON_GetObjectItem(d, "name")->valuestring, "echo_async");
	cr_assert_str_eq(cJSON_GetObjectItem(d, "mode")->valuestring, "async");
	cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(d, "hooks"), 0)->valuestring,
			 "echo_async");
	cJSON_Delete(d);
}

Test(probe, names_the_signal_of_a_constructor_that_crashes)
{
	char exe[4096], so[4096], reason[512];
	cJSON *d;

	exe_path(exe, sizeof(exe));
	u_build_path(so, sizeof(so), "fixtures/ctor_crash.so");
	cr_assert_eq(probe_run(exe, so, PROBE_TIMEOUT_MS, &d, reason, sizeof(reason)), -1);
	cr_assert_null(d);
	cr_assert(strstr(reason, "probe: loading it killed the probe process with SIGSEGV"), "%s",
		  reason);
}

Test(probe, passes_on_the_loaders_own_reason)
{
	char exe[4096], so[4096], reason[512];
	cJSON *d;

	exe_path(exe, sizeof(exe));
	u_build_path(so, sizeof(so), "fixtures/bad_magic.so");
	cr_assert_eq(probe_run(exe, so, PROBE_TIMEOUT_MS, &d, reason, sizeof(reason)), -1);
	cr_assert(strstr(reason, "not a hookd plugin: descriptor magic"), "%s", reason);
}

/* ---- isolate ---------------------------------------------------------------- */

/* A sink whose results are waited for on a condition variable. */
struct waiter {
	struct pool_sink sink;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int posted;
};

static void w_notify(void *arg)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->mu);
	w->posted++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void w_init(struct waiter *w)
{
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->posted = 0;
	cr_assert_eq(pool_sink_init(&w->sink, w_notify, w), 0);
}

static void done_noop(struct pool_job *job)
{
	(void)job;
}

/* Wait until `r` came back (its done ran through the sink). */
static void w_wait(struct waiter *w, struct isolate_req *r)
{
	r->job.done = done_noop;
	for (int i = 0; i < 1000; i++) {
		pthread_mutex_lock(&w->mu);
		if (!w->posted) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&w->cv, &w->mu, &ts);
		}
		w->posted = 0;
		pthread_mutex_unlock(&w->mu);
		if (pool_sink_drain(&w->sink))
			return;
	}
	cr_assert_fail("no result");
}

struct group_env {
	struct u_env e;
	struct log log;
	struct isolate_sup *sup;
	struct isolate_group *g;
	struct config *cfg;
	char copy[4096];
};

static void group_start(struct group_env *ge, const char *rel, const char *name,
			const char *const *hooks, const char *extra)
{
	char exe[4096], err[512], text[1024];

	u_env_init(&ge->e);
	log_init(&ge->log, ge->e.logfd, LOG_DEBUG);
	exe_path(exe, sizeof(exe));
	snprintf(text, sizeof(text), "{\"listen\":\"127.0.0.1:1\",\"plugin_dir\":\"%s\",\"workers\":2%s}",
		 ge->e.plugins, extra);
	cr_assert_eq(config_parse(text, strlen(text), ge->e.cfgpath, &ge->cfg, err, sizeof(err)), 0,
		     "%s", err);
	u_build_path(ge->copy, sizeof(ge->copy), rel);
	cr_assert_eq(isolate_sup_start(exe, &ge->log, &ge->sup, err, sizeof(err)), 0, "%s", err);
	char *init = isolate_init_text(ge->cfg, name, "x.so", ge->copy, 7, hooks);
	cr_assert_not_null(init);
	struct isolate_options o = {.name = name, .file = "x.so", .copy_path = ge->copy,
				    .generation = 7, .sync = true, .procs = 1, .queue = 8,
				    .quarantine_after = 2, .quarantine_window_s = 60,
				    .init = init, .start_timeout_ms = 20000};
	cr_assert_eq(isolate_group_create(ge->sup, &o, &ge->g, err, sizeof(err)), 0, "%s", err);
	free(init);
}

static void group_end(struct group_env *ge)
{
	isolate_group_free(ge->g);
	isolate_sup_stop(ge->sup);
	config_free(ge->cfg);
	u_env_fini(&ge->e);
}

static void call(struct group_env *ge, struct waiter *w, struct isolate_req *r, const char *hook,
		 const char *input)
{
	memset(r, 0, sizeof(*r));
	r->hook = hook;
	r->timeout_ms = 10000;
	r->input = strdup(input);
	r->input_len = strlen(input);
	r->job.sink = &w->sink;
	r->job.done = done_noop;
	cr_assert_eq(isolate_submit(ge->g, r), 0);
	w_wait(w, r);
}

/* GET /plugins' "isolated": {"quarantined": ...} of the group. */
static bool quarantined(struct isolate_group *g)
{
	cJSON *o = cJSON_CreateObject();
	bool q;

	isolate_describe(g, o);
	q = cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "isolated"), "quarantined"));
	cJSON_Delete(o);
	return q;
}

Test(isolate, a_runner_answers_and_a_crash_is_named, .timeout = 60)
{
	struct group_env ge;
	struct waiter w;
	struct isolate_req r;

	w_init(&w);
	group_start(&ge, "fixtures/crash_sync.so", "crash_sync", (const char *const[]){"crash", NULL},
		    "");
	call(&ge, &w, &r, "crash", "{\"a\":1}");
	cr_assert_eq(r.end, ISOLATE_RESULT);
	cr_assert_eq(r.outcome, DISPATCH_OK);
	cr_assert_not_null(r.output);
	cr_assert_eq(cJSON_GetObjectItem(r.output, "a")->valuedouble, 1);
	cr_assert_gt(r.pid, 0);
	isolate_req_clear(&r);

	call(&ge, &w, &r, "crash", "{\"crash\":true}");
	cr_assert_eq(r.end, ISOLATE_CRASHED);
	cr_assert(strstr(r.error, "plugin crash_sync crashed in its isolated process") &&
		  strstr(r.error, "(SIGSEGV)"), "%s", r.error);
	isolate_req_clear(&r);
	cr_assert_not(quarantined(ge.g));

	/* the second crash within the window quarantines (quarantine_after 2) */
	call(&ge, &w, &r, "crash", "{\"crash\":true}");
	cr_assert_eq(r.end, ISOLATE_CRASHED);
	isolate_req_clear(&r);
	cr_assert(quarantined(ge.g));
	memset(&r, 0, sizeof(r));
	r.hook = "crash";
	r.input = strdup("{}");
	r.input_len = 2;
	r.job.sink = &w.sink;
	cr_assert_eq(isolate_submit(ge.g, &r), -EPERM);
	cr_assert_eq(r.end, ISOLATE_QUARANTINED);
	cr_assert(strstr(r.error, "plugin crash_sync is quarantined: 2 crashes within 60 s"), "%s",
		  r.error);
	isolate_req_clear(&r);

	cJSON *o = cJSON_CreateObject();
	isolate_describe(ge.g, o);
	cJSON *iso = cJSON_GetObjectItem(o, "isolated");
	cr_assert_eq(cJSON_GetObjectItem(iso, "crashes")->valuedouble, 2);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(iso, "quarantined")));
	cJSON_Delete(o);
	group_end(&ge);
}

Test(isolate, a_cancelled_call_comes_back_cancelled_and_kill_replaces_the_process, .timeout = 60)
{
	struct group_env ge;
	struct waiter w;
	struct isolate_req r;

	w_init(&w);
	group_start(&ge, "plugins/sleep.so", "sleep", (const char *const[]){"sleep", NULL}, "");
	memset(&r, 0, sizeof(r));
	r.hook = "sleep";
	r.timeout_ms = 10000;
	r.input = strdup("{\"ms\":20000}");
	r.input_len = strlen(r.input);
	r.job.sink = &w.sink;
	cr_assert_eq(isolate_submit(ge.g, &r), 0);
	usleep(200 * 1000);
	isolate_cancel(ge.g, &r, true);
	w_wait(&w, &r);
	cr_assert_eq(r.end, ISOLATE_CANCELLED);
	isolate_req_clear(&r);
	/* killed, not crashed: a new process serves the next call */
	call(&ge, &w, &r, "sleep", "{\"ms\":0}");
	cr_assert_eq(r.end, ISOLATE_RESULT, "%d %s", r.end, r.error ? r.error : "");
	cr_assert_eq(r.outcome, DISPATCH_OK);
	isolate_req_clear(&r);
	cJSON *o = cJSON_CreateObject();
	isolate_describe(ge.g, o);
	cJSON *iso = cJSON_GetObjectItem(o, "isolated");
	cr_assert_eq(cJSON_GetObjectItem(iso, "killed_past_deadline")->valuedouble, 1);
	cr_assert_eq(cJSON_GetObjectItem(iso, "crashes")->valuedouble, 0);
	cJSON_Delete(o);
	group_end(&ge);
}

Test(isolate, init_failure_is_the_creation_error, .timeout = 60)
{
	struct u_env e;
	struct log log;
	struct isolate_sup *sup;
	struct isolate_group *g = NULL;
	struct config *cfg;
	char exe[4096], err[512], text[512], so[4096];

	u_env_init(&e);
	log_init(&log, e.logfd, LOG_DEBUG);
	exe_path(exe, sizeof(exe));
	snprintf(text, sizeof(text), "{\"listen\":\"127.0.0.1:1\",\"plugin_dir\":\"%s\"}", e.plugins);
	cr_assert_eq(config_parse(text, strlen(text), e.cfgpath, &cfg, err, sizeof(err)), 0);
	u_build_path(so, sizeof(so), "fixtures/init_fail.so");
	cr_assert_eq(isolate_sup_start(exe, &log, &sup, err, sizeof(err)), 0);
	char *init = isolate_init_text(cfg, "init_fail", "init_fail.so", so, 1,
				       (const char *const[]){"init_fail", NULL});
	struct isolate_options o = {.name = "init_fail", .file = "init_fail.so", .copy_path = so,
				    .generation = 1, .sync = true, .procs = 1, .queue = 8,
				    .quarantine_after = 3, .quarantine_window_s = 60,
				    .init = init, .start_timeout_ms = 20000};
	cr_assert_eq(isolate_group_create(sup, &o, &g, err, sizeof(err)), -1);
	cr_assert(strstr(err, "plugin init_fail: init failed"), "%s", err);
	free(init);
	isolate_sup_stop(sup);
	config_free(cfg);
	u_env_fini(&e);
}
