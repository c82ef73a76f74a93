/*
 * registry: generations map hooks to chains (implicit in file-name order,
 * or explicit from the config), carry per-hook deadlines and say why a
 * hook cannot run; the registry's refcounts keep a generation and its
 * plugins loaded exactly as long as someone holds it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../host/config.h"
#include "../../host/json.h"
#include "../../host/loader.h"
#include "../../host/plugin.h"
#include "../../host/registry.h"
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

TestSuite(registry, .init = setup, .fini = teardown, .timeout = 60);

/* Scan with `prev`'s plugins and build generation `id` (cfg is taken). */
static struct generation *build(struct config *cfg, const struct generation *prev, uint64_t id)
{
	struct loader_result lr;
	struct generation *g = NULL;

	u_env_scan(&E, cfg, prev ? &prev->lr : NULL, id, &lr);
	cr_assert_eq(generation_build(cfg, &lr, id, &E.log, &g), 0);
	cr_assert_not_null(g);
	cr_assert_eq(lr.nplugins, 0, "generation_build takes the loader result");
	cr_assert_null(lr.plugins);
	cr_assert_eq(g->id, id);
	cr_assert_eq(g->cfg, cfg);
	cr_assert_eq(atomic_load(&g->refs), 1);
	return g;
}

static const struct hook_entry *hook(const struct generation *g, const char *name)
{
	const struct hook_entry *h = generation_find_hook(g, name);

	cr_assert_not_null(h, "hook %s missing", name);
	cr_assert_str_eq(h->name, name);
	return h;
}

/* The chain of `name` is exactly the plugins named in the NULL-terminated
 * list. */
static void expect_chain(const struct generation *g, const char *name, const char *const *want)
{
	const struct hook_entry *h = hook(g, name);
	size_t n = 0;

	for (; want[n]; n++) {
		cr_assert_lt(n, h->nchain, "hook %s: chain too short (%zu)", name, h->nchain);
		cr_assert_str_eq(h->chain[n]->desc.name, want[n], "hook %s step %zu", name, n);
	}
	cr_assert_eq(h->nchain, n, "hook %s: %zu steps, expected %zu", name, h->nchain, n);
}

#define CHAIN(...) ((const char *const[]){__VA_ARGS__, NULL})

static char *read_mark(const char *path)
{
	char *m = u_read_file(path, NULL);

	return m ? m : strdup("");
}

static bool file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

Test(registry, implicit_chains_follow_file_name_order)
{
	struct generation *g;
	char from[512], to[512];

	u_env_install(&E, "fixtures/fini_mark.so", "10-mark.so");
	u_env_install(&E, "fixtures/multi_hook.so", "20-multi.so");
	u_env_install(&E, "plugins/echo.so", "echo.so");
	g = build(u_env_config(&E, NULL), NULL, 1);
	cr_assert_eq(g->nhooks, 4);
	expect_chain(g, "shared", CHAIN("fini_mark", "multi_hook"));
	expect_chain(g, "fini_mark", CHAIN("fini_mark"));
	expect_chain(g, "multi_hook", CHAIN("multi_hook"));
	expect_chain(g, "echo", CHAIN("echo"));
	for (size_t i = 0; i < g->nhooks; i++) {
		cr_assert_not(g->hooks[i].explicit_chain);
		cr_assert_null(g->hooks[i].unavailable);
		cr_assert_eq(g->hooks[i].timeout_ms, 10000, "the global default");
		if (i)
			cr_assert_lt(strcmp(g->hooks[i - 1].name, g->hooks[i].name), 0, "sorted");
	}
	/* the chain holds the generation's own plugin objects */
	cr_assert_eq(hook(g, "shared")->chain[0], g->lr.plugins[0]);
	generation_release(g);

	/* the same plugins under other file names: the other order */
	snprintf(from, sizeof(from), "%s/10-mark.so", E.plugins);
	snprintf(to, sizeof(to), "%s/30-mark.so", E.plugins);
	cr_assert_eq(rename(from, to), 0);
	g = build(u_env_config(&E, NULL), NULL, 2);
	expect_chain(g, "shared", CHAIN("multi_hook", "fini_mark"));
	generation_release(g);
}

Test(registry, an_explicit_chain_from_the_config_overrides)
{
	struct generation *g;

	u_env_install(&E, "fixtures/fini_mark.so", "10-mark.so");
	u_env_install(&E, "fixtures/multi_hook.so", "20-multi.so");
	u_env_install(&E, "plugins/echo.so", "echo.so");
	g = build(u_env_config(&E, "\"hooks\": {"
				   "\"shared\": {\"chain\": [\"multi_hook\", \"echo\", \"fini_mark\"]},"
				   "\"pipeline\": {\"chain\": [\"echo\", \"multi_hook\", \"echo\"]}},"),
		  NULL, 1);
	expect_chain(g, "shared", CHAIN("multi_hook", "echo", "fini_mark"));
	cr_assert(hook(g, "shared")->explicit_chain);
	/* a hook no descriptor lists, wired by the config alone */
	expect_chain(g, "pipeline", CHAIN("echo", "multi_hook", "echo"));
	cr_assert(hook(g, "pipeline")->explicit_chain);
	cr_assert_null(hook(g, "pipeline")->unavailable);
	/* the others stay implicit */
	expect_chain(g, "echo", CHAIN("echo"));
	cr_assert_not(hook(g, "echo")->explicit_chain);
	expect_chain(g, "multi_hook", CHAIN("multi_hook"));
	cr_assert_eq(g->nhooks, 5);
	generation_release(g);
}

Test(registry, a_chain_naming_a_plugin_that_is_not_loaded_makes_the_hook_unavailable)
{
	struct generation *g;
	const struct hook_entry *h;
	char *log;

	u_env_install(&E, "plugins/echo.so", "echo.so");
	u_env_install(&E, "fixtures/init_fail.so", "init_fail.so");
	g = build(u_env_config(&E, "\"hooks\": {"
				   "\"a\": {\"chain\": [\"echo\", \"nosuch\"]},"
				   "\"b\": {\"chain\": [\"init_fail\", \"echo\"]}},"),
		  NULL, 1);
	h = hook(g, "a");
	cr_assert_not_null(h->unavailable);
	cr_assert_not_null(strstr(h->unavailable, "plugin nosuch is not loaded"), "%s",
			   h->unavailable);
	h = hook(g, "b");
	cr_assert_not_null(h->unavailable);
	cr_assert_not_null(strstr(h->unavailable, "plugin init_fail is not loaded"), "%s",
			   h->unavailable);
	cr_assert_not_null(strstr(h->unavailable, "init failed"),
			   "the reason includes why its file was rejected: %s", h->unavailable);
	cr_assert_null(hook(g, "echo")->unavailable, "other hooks are not affected");
	log = u_read_file(E.logpath, NULL);
	cr_assert_not_null(strstr(log, "hooks.a.chain[1]"), "the log names the chain entry");
	free(log);
	generation_release(g);
}

Test(registry, per_hook_timeouts_override_the_global_one)
{
	struct generation *g;

	u_env_install(&E, "plugins/echo.so", "echo.so");
	u_env_install(&E, "plugins/tag.so", "tag.so");
	u_env_install(&E, "fixtures/multi_hook.so", "multi.so");
	g = build(u_env_config(&E, "\"timeout_ms\": 5000, \"hooks\": {"
				   "\"echo\": {\"timeout_ms\": 250},"
				   "\"both\": {\"chain\": [\"tag\", \"echo\"], \"timeout_ms\": 42},"
				   "\"ghost\": {\"timeout_ms\": 7}},"),
		  NULL, 1);
	cr_assert_eq(hook(g, "echo")->timeout_ms, 250);
	cr_assert_eq(hook(g, "both")->timeout_ms, 42);
	cr_assert_eq(hook(g, "tag")->timeout_ms, 5000);
	cr_assert_eq(hook(g, "shared")->timeout_ms, 5000);
	/* settings for a hook that nothing serves do not invent the hook */
	cr_assert_null(generation_find_hook(g, "ghost"));
	generation_release(g);
}

Test(registry, find_hook_finds_every_hook_and_nothing_else)
{
	static const char *const names[] = {"echo", "fini_mark", "multi_hook", "shared", "tag", "x"};
	struct generation *g;

	u_env_install(&E, "plugins/echo.so", "echo.so");
	u_env_install(&E, "plugins/tag.so", "tag.so");
	u_env_install(&E, "fixtures/fini_mark.so", "fini_mark.so");
	u_env_install(&E, "fixtures/multi_hook.so", "multi_hook.so");
	g = build(u_env_config(&E, "\"hooks\": {\"x\": {\"chain\": [\"tag\"]}},"), NULL, 1);
	cr_assert_eq(g->nhooks, sizeof(names) / sizeof(names[0]));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		cr_assert_eq(generation_find_hook(g, names[i]), &g->hooks[i], "%s", names[i]);
	}
	cr_assert_null(generation_find_hook(g, ""));
	cr_assert_null(generation_find_hook(g, "a"));
	cr_assert_null(generation_find_hook(g, "sharedx"));
	cr_assert_null(generation_find_hook(g, "zzz"));
	cr_assert_null(generation_find_hook(g, "Echo"));
	generation_release(g);
}

Test(registry, a_folder_where_nothing_loads_gives_a_generation_without_hooks)
{
	struct generation *g;

	u_env_install(&E, "fixtures/not_elf.so", "not_elf.so");
	g = build(u_env_config(&E, "\"hooks\": {\"h\": {\"timeout_ms\": 5}},"), NULL, 1);
	cr_assert_eq(g->lr.nplugins, 0);
	cr_assert_eq(g->lr.nrejects, 1);
	cr_assert_eq(g->nhooks, 0);
	cr_assert_null(generation_find_hook(g, "h"));
	cr_assert_null(generation_find_hook(g, "echo"));
	generation_release(g);
}

Test(registry, a_held_generation_keeps_its_plugins_loaded_until_released)
{
	char mark[512], members[1024], *m, *old_copy, *echo_copy;
	struct registry reg;
	struct generation *g1, *g2, *held, *cur;
	struct plugin *old;

	snprintf(mark, sizeof(mark), "%s/mark", E.dir);
	snprintf(members, sizeof(members), "\"plugins\": {\"fini_mark\": {\"mark\": \"%s\"}},", mark);
	u_env_install(&E, "plugins/echo.so", "echo.so");
	u_env_install(&E, "fixtures/fini_mark.so", "fini_mark.so");

	cr_assert_eq(registry_init(&reg), 0);
	cr_assert_null(registry_acquire(&reg), "nothing before the first swap");
	g1 = build(u_env_config(&E, members), NULL, 1);
	registry_swap(&reg, g1);
	held = registry_acquire(&reg); /* a call in flight */
	cr_assert_eq(held, g1);
	cr_assert_eq(atomic_load(&g1->refs), 2);
	old = hook(g1, "fini_mark")->chain[0];
	old_copy = strdup(old->copy_path);
	echo_copy = strdup(hook(g1, "echo")->chain[0]->copy_path);

	/* reload: fini_mark.so changed, echo.so did not */
	{
		struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
		char path[512];
		snprintf(path, sizeof(path), "%s/fini_mark.so", E.plugins);
		cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
	}
	g2 = build(u_env_config(&E, members), g1, 2);
	cr_assert_eq(hook(g2, "echo")->chain[0], hook(g1, "echo")->chain[0], "echo is shared");
	cr_assert_neq(hook(g2, "fini_mark")->chain[0], old);
	registry_swap(&reg, g2);

	cur = registry_acquire(&reg);
	cr_assert_eq(cur, g2);
	generation_release(cur);
	/* the held generation is intact: its plugins are loaded, fini not run */
	cr_assert_eq(atomic_load(&held->refs), 1, "only the call holds it now");
	cr_assert_eq(hook(held, "fini_mark")->chain[0], old);
	cr_assert_str_eq(old->desc.name, "fini_mark", "the old code is still mapped");
	cr_assert(file_exists(old_copy));
	m = read_mark(mark);
	cr_assert_str_eq(m, "init\ninit\n", "fini of the old copy ran while a call held it");
	free(m);

	/* the call ends: the old generation goes, and with it the old copy */
	generation_release(held);
	m = read_mark(mark);
	cr_assert_str_eq(m, "init\ninit\nfini\n");
	free(m);
	cr_assert_not(file_exists(old_copy), "old private copy not removed");
	cr_assert(file_exists(echo_copy), "echo is still used by generation 2");

	registry_destroy(&reg);
	m = read_mark(mark);
	cr_assert_str_eq(m, "init\ninit\nfini\nfini\n");
	free(m);
	cr_assert_not(file_exists(echo_copy));
	cr_assert_eq(u_count_entries(loader_dir(E.ld)), 0);
	free(old_copy);
	free(echo_copy);
}

Test(registry, a_plugin_shared_by_two_generations_is_unloaded_when_both_are_gone)
{
	char mark[512], members[1024], *m, *copy;
	struct generation *g1, *g2;
	struct plugin *p;

	snprintf(mark, sizeof(mark), "%s/mark", E.dir);
	snprintf(members, sizeof(members), "\"plugins\": {\"fini_mark\": {\"mark\": \"%s\"}},", mark);
	u_env_install(&E, "fixtures/fini_mark.so", "fini_mark.so");
	g1 = build(u_env_config(&E, members), NULL, 1);
	g2 = build(u_env_config(&E, members), g1, 2);
	p = g1->lr.plugins[0];
	cr_assert_eq(g2->lr.plugins[0], p);
	cr_assert_eq(atomic_load(&p->refs), 2);
	copy = strdup(p->copy_path);

	/* the newer one goes first */
	generation_release(g2);
	cr_assert_eq(atomic_load(&p->refs), 1);
	m = read_mark(mark);
	cr_assert_str_eq(m, "init\n", "unloaded while generation 1 still holds it");
	free(m);
	cr_assert(file_exists(copy));
	generation_release(g1);
	m = read_mark(mark);
	cr_assert_str_eq(m, "init\nfini\n");
	free(m);
	cr_assert_not(file_exists(copy));
	free(copy);
}

Test(registry, describe_lists_plugins_rejections_and_hooks)
{
	struct generation *g;
	const cJSON *v, *arr, *o;
	cJSON *d, *back;
	char *text, err[128];
	bool seen_multi = false;

	u_env_install(&E, "plugins/echo.so", "echo.so");
	u_env_install(&E, "fixtures/multi_hook.so", "multi.so");
	u_env_install(&E, "fixtures/bad_magic.so", "bad_magic.so");
	g = build(u_env_config(&E, "\"timeout_ms\": 1234, \"hooks\": {"
				   "\"down\": {\"chain\": [\"echo\", \"bad_magic\"]}},"),
		  NULL, 7);
	d = generation_describe(g);
	cr_assert_not_null(d);

	v = cJSON_GetObjectItemCaseSensitive(d, "generation");
	cr_assert(cJSON_IsNumber(v));
	cr_assert_eq(v->valuedouble, 7);
	v = cJSON_GetObjectItemCaseSensitive(d, "loaded_at");
	cr_assert(cJSON_IsString(v));
	cr_assert_eq(strlen(v->valuestring), 20, "%s", v->valuestring);
	cr_assert_eq(v->valuestring[10], 'T');
	cr_assert_eq(v->valuestring[19], 'Z');
	v = cJSON_GetObjectItemCaseSensitive(d, "plugin_dir");
	cr_assert(cJSON_IsString(v));
	cr_assert_str_eq(v->valuestring, E.plugins);

	arr = cJSON_GetObjectItemCaseSensitive(d, "plugins");
	cr_assert(cJSON_IsArray(arr));
	cr_assert_eq(cJSON_GetArraySize(arr), 2);
	cJSON_ArrayForEach(o, arr)
	{
		const char *name = cJSON_GetObjectItemCaseSensitive(o, "name")->valuestring;
		const cJSON *hooks = cJSON_GetObjectItemCaseSensitive(o, "hooks");
		cr_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "generation")));
		cr_assert_eq(cJSON_GetObjectItemCaseSensitive(o, "generation")->valuedouble, 7);
		cr_assert(cJSON_IsArray(hooks));
		if (strcmp(name, "multi_hook") == 0) {
			seen_multi = true;
			cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "version")->valuestring,
					 "2.0");
			cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "mode")->valuestring,
					 "async");
			cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "file")->valuestring,
					 "multi.so");
			cr_assert_eq(cJSON_GetArraySize(hooks), 2);
			cr_assert_str_eq(cJSON_GetArrayItem(hooks, 0)->valuestring, "shared");
			cr_assert_str_eq(cJSON_GetArrayItem(hooks, 1)->valuestring, "multi_hook");
		} else {
			cr_assert_str_eq(name, "echo");
			cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "mode")->valuestring,
					 "sync");
			cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "file")->valuestring,
					 "echo.so");
			cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "version")->valuestring,
					 "1.0.0");
		}
	}
	cr_assert(seen_multi);

	arr = cJSON_GetObjectItemCaseSensitive(d, "rejected");
	cr_assert(cJSON_IsArray(arr));
	cr_assert_eq(cJSON_GetArraySize(arr), 1);
	o = cJSON_GetArrayItem(arr, 0);
	cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "file")->valuestring, "bad_magic.so");
	cr_assert_not_null(
		strstr(cJSON_GetObjectItemCaseSensitive(o, "reason")->valuestring, "magic"));

	o = cJSON_GetObjectItemCaseSensitive(d, "hooks");
	cr_assert(cJSON_IsObject(o));
	cr_assert_eq(cJSON_GetArraySize(o), 4); /* down, echo, multi_hook, shared */
	v = cJSON_GetObjectItemCaseSensitive(o, "echo");
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(v, "chain")), 1);
	cr_assert_str_eq(
		cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(v, "chain"), 0)->valuestring,
		"echo");
	cr_assert_eq(cJSON_GetObjectItemCaseSensitive(v, "timeout_ms")->valuedouble, 1234);
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(v, "unavailable"));
	v = cJSON_GetObjectItemCaseSensitive(o, "down");
	cr_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "unavailable")));
	cr_assert_not_null(strstr(cJSON_GetObjectItemCaseSensitive(v, "unavailable")->valuestring,
				  "bad_magic"));

	/* it is what GET /plugins prints: it must print and parse back */
	text = json_print_string(d);
	cr_assert_not_null(text);
	cr_assert_eq(json_parse(text, strlen(text), &back, err, sizeof(err)), 0, "%s", err);
	cJSON_Delete(back);
	free(text);
	cJSON_Delete(d);
	generation_release(g);
}

/* ---- concurrency: acquire/release racing swaps ------------------------- */

struct racer {
	struct registry *reg;
	atomic_bool *stop;
	atomic_ulong acquired;
	bool ok;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	uint64_t last = 0;

	r->ok = true;
	while (!atomic_load(r->stop)) {
		struct generation *g = registry_acquire(r->reg);
		cr_assert_not_null(g);
		if (g->id < last)
			r->ok = false; /* went back to an older generation */
		last = g->id;
		/* read what a call reads: the generation must still be whole */
		if (g->lr.nplugins != 1 || atomic_load(&g->refs) < 1 ||
		    strcmp(g->lr.plugins[0]->desc.name, "echo") != 0)
			r->ok = false;
		atomic_fetch_add(&r->acquired, 1);
		generation_release(g);
	}
	return NULL;
}

/* A generation of id `id` holding one more reference to p. */
static struct generation *gen_with(struct plugin *p, uint64_t id)
{
	struct loader_result one = {0};
	struct generation *g;

	one.plugins = malloc(sizeof(*one.plugins));
	cr_assert_not_null(one.plugins);
	plugin_retain(p);
	one.plugins[0] = p;
	one.nplugins = 1;
	cr_assert_eq(generation_build(u_env_config(&E, NULL), &one, id, &E.log, &g), 0);
	return g;
}

Test(registry, swaps_racing_acquires_never_go_back_or_lose_a_reference)
{
	struct registry reg;
	struct loader_result lr;
	struct config *cfg;
	static struct racer rs[4];
	pthread_t th[4];
	atomic_bool stop = false;
	struct generation *g;
	struct plugin *p;

	u_env_install(&E, "plugins/echo.so", "echo.so");
	cfg = u_env_config(&E, NULL);
	u_env_scan(&E, cfg, NULL, 1, &lr);
	config_free(cfg);
	cr_assert_eq(lr.nplugins, 1);
	p = lr.plugins[0];
	plugin_retain(p); /* ours, to count the generations' references */
	loader_result_free(&lr);
	cr_assert_eq(atomic_load(&p->refs), 1);

	cr_assert_eq(registry_init(&reg), 0);
	registry_swap(&reg, gen_with(p, 1));
	for (int i = 0; i < 4; i++) {
		rs[i].reg = &reg;
		rs[i].stop = &stop;
		atomic_init(&rs[i].acquired, 0);
		cr_assert_eq(pthread_create(&th[i], NULL, racer_main, &rs[i]), 0);
	}
	/* every racer is running before the swaps start */
	for (int i = 0; i < 4; i++)
		while (atomic_load(&rs[i].acquired) == 0)
			sched_yield();
	for (uint64_t id = 2; id <= 300; id++)
		registry_swap(&reg, gen_with(p, id));
	atomic_store(&stop, true);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(pthread_join(th[i], NULL), 0);
		cr_assert(rs[i].ok, "racer %d saw an older or broken generation", i);
	}
	g = registry_acquire(&reg);
	cr_assert_eq(g->id, 300);
	generation_release(g);
	registry_destroy(&reg);
	cr_assert_eq(atomic_load(&p->refs), 1, "every generation released its plugin exactly once");
	plugin_release(p);
	cr_assert_eq(u_count_entries(loader_dir(E.ld)), 0);
}
