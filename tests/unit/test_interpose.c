/*
 * interpose: the threads a plugin starts (from init, from a call, ended by
 * return or pthread_exit) and its pthread keys with a destructor are
 * counted; threads with the host's own start routine are not; at unload a
 * plugin with leftovers keeps its code mapped (logged) and one without is
 * unloaded. The unit runner exports the interposed functions like hookd
 * (Makefile: EXPORTS_LDFLAGS), so the fixtures reach them.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../host/blame.h"
#include "../../host/config.h"
#include "../../host/loader.h"
#include "../../host/plugin.h"
#include "unit.h"

static struct u_env E;

static void setup(void)
{
	u_env_init(&E);
}

static void teardown(void)
{
	u_env_fini(&E);
}

TestSuite(interpose, .init = setup, .fini = teardown, .timeout = 60);

/* Load build product `rel` as `file` with config `members`; the plugin. */
static struct plugin *load(const char *rel, const char *file, const char *members,
			   struct loader_result *r)
{
	struct config *cfg;
	struct plugin *p;

	u_env_install(&E, rel, file);
	cfg = u_env_config(&E, members);
	u_env_scan(&E, cfg, NULL, 1, r);
	config_free(cfg);
	p = u_find_plugin(r, file);
	cr_assert_not_null(p, "%s did not load", file);
	return p;
}

/* One call_sync of p, inside its blame frame as a pool worker makes it. */
static void call(struct plugin *p)
{
	struct blame_frame f = {.plugin = p, .hook = "h", .generation = 1, .entry = "call_sync"};
	cJSON *in = cJSON_CreateObject(), *out;

	blame_push(&f);
	out = p->desc.call_sync(&p->ctx, NULL, in);
	blame_pop(&f);
	cr_assert_not_null(out);
	cr_assert_null(cJSON_GetObjectItem(out, "error"), "the plugin could not start a thread");
	if (out != in)
		cJSON_Delete(out);
	cJSON_Delete(in);
}

static size_t log_has(const char *needle)
{
	char *text = u_read_file(E.logpath, NULL);
	size_t n;

	cr_assert_not_null(text);
	n = u_count_str(text, needle);
	free(text);
	return n;
}

/* Release the scan's plugins (the last reference: fini, then the decision). */
static void unload(struct loader_result *r)
{
	loader_result_free(r);
}

Test(interpose, a_thread_started_in_init_is_counted_and_keeps_the_code_mapped)
{
	struct loader_result r;
	struct plugin *p = load("fixtures/leak_thread.so", "leak_thread.so",
				"\"plugins\": {\"leak_thread\": {\"start\": \"init\"}}, ", &r);

	cr_assert_eq(atomic_load(&p->live_threads), 1);
	cr_assert_eq(atomic_load(&p->live_keys), 0);
	unload(&r);
	cr_assert_eq(log_has("plugin leak_thread (leak_thread.so, generation 1) left 1 thread "
			     "running after fini: its code stays mapped"), 1);
	cr_assert_eq(log_has("unloaded plugin leak_thread"), 0);
}

Test(interpose, a_thread_started_in_a_call_and_joined_in_fini_is_unloaded)
{
	struct loader_result r;
	struct plugin *p = load("fixtures/good_thread.so", "good_thread.so", NULL, &r);

	cr_assert_eq(atomic_load(&p->live_keys), 1, "init's key with a destructor");
	cr_assert_eq(atomic_load(&p->live_threads), 0);
	call(p);
	cr_assert_eq(atomic_load(&p->live_threads), 1);
	call(p); /* no second thread */
	cr_assert_eq(atomic_load(&p->live_threads), 1);
	unload(&r);
	cr_assert_eq(log_has("unloaded plugin good_thread (good_thread.so, generation 1)"), 1);
	cr_assert_eq(log_has("stays mapped"), 0);
}

Test(interpose, a_thread_ending_with_pthread_exit_after_fini_is_waited_for)
{
	struct loader_result r;
	struct plugin *p = load("fixtures/good_thread.so", "good_thread.so",
				"\"plugins\": {\"good_thread\": {\"join\": false, \"exit\": true}}, ",
				&r);

	call(p);
	cr_assert_eq(atomic_load(&p->live_threads), 1);
	unload(&r);
	cr_assert_eq(log_has("unloaded plugin good_thread (good_thread.so, generation 1)"), 1);
	cr_assert_eq(log_has("stays mapped"), 0);
}

Test(interpose, a_key_left_with_a_destructor_keeps_the_code_mapped)
{
	struct loader_result r;
	struct plugin *p = load("fixtures/leak_key.so", "leak_key.so", NULL, &r);

	cr_assert_eq(atomic_load(&p->live_keys), 1);
	cr_assert_eq(atomic_load(&p->live_threads), 0);
	unload(&r);
	cr_assert_eq(log_has("plugin leak_key (leak_key.so, generation 1) left 1 pthread key "
			     "with a destructor in its code after fini: its code stays mapped"), 1);
}

static void *host_thread(void *arg)
{
	return arg;
}

static void dtor(void *v)
{
	(void)v;
}

/* The host may start threads and create keys while a plugin is blamed
 * (inside a host service it called): its own start routines and
 * destructors are never the plugin's. Nor is anything done outside a
 * frame. */
Test(interpose, the_hosts_own_threads_and_keys_are_not_counted)
{
	struct loader_result r;
	struct plugin *p = load("plugins/echo.so", "echo.so", NULL, &r);
	struct blame_frame f = {.plugin = p, .hook = "h", .generation = 1, .entry = "call_sync"};
	pthread_key_t key;
	pthread_t t;

	blame_push(&f);
	cr_assert_eq(pthread_create(&t, NULL, host_thread, NULL), 0);
	cr_assert_eq(atomic_load(&p->live_threads), 0);
	cr_assert_eq(pthread_key_create(&key, dtor), 0);
	cr_assert_eq(atomic_load(&p->live_keys), 0);
	blame_pop(&f);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(pthread_key_delete(key), 0);
	unload(&r);
	cr_assert_eq(log_has("unloaded plugin echo"), 1);
}

/* std::thread: pthread_create is called by libstdc++, with libstdc++'s
 * start routine; the blame frame still names the plugin. */
Test(interpose, a_cxx_std_thread_is_counted)
{
	struct loader_result r;
	struct plugin *p = load("fixtures/cxx_thread.so", "cxx_thread.so", NULL, &r);

	call(p);
	cr_assert_eq(atomic_load(&p->live_threads), 1);
	unload(&r);
	cr_assert_eq(log_has("plugin cxx_thread (cxx_thread.so, generation 1) left 1 thread "
			     "running after fini: its code stays mapped"), 1);
}

/* A plugin thread's own thread is the plugin's too (no blame frame there:
 * the creating thread's owner says whose it is). */
Test(interpose, a_thread_started_by_a_plugin_thread_is_counted)
{
	struct loader_result r;
	struct plugin *p = load("fixtures/leak_thread.so", "leak_thread.so",
				"\"plugins\": {\"leak_thread\": {\"start\": \"init\", "
				"\"nested\": true}}, ", &r);

	for (int i = 0; i < 5000 && atomic_load(&p->live_threads) < 2; i++)
		usleep(1000);
	cr_assert_eq(atomic_load(&p->live_threads), 2);
	unload(&r);
	cr_assert_eq(log_has("plugin leak_thread (leak_thread.so, generation 1) left 2 threads "
			     "running after fini: its code stays mapped"), 1);
}
