/*
 * loader: every broken fixture is rejected with a reason that says why,
 * next to good plugins that load; unchanged files are reused, changed ones
 * reloaded, broken replacements keep the last known good version; private
 * copies live in loader_dir() and go with their plugin.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../host/config.h"
#include "../../host/dispatch.h"
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

TestSuite(loader, .init = setup, .fini = teardown, .timeout = 60);

static bool file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static char *log_text(void)
{
	char *s = u_read_file(E.logpath, NULL);

	cr_assert_not_null(s);
	return s;
}

/* "<plugin_dir>/<name>" */
static const char *plugin_path(const char *name)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "%s/%s", E.plugins, name);
	return buf;
}

static void set_mtime(const char *name, time_t t)
{
	struct timespec ts[2] = {{t, 0}, {t, 0}};

	cr_assert_eq(utimensat(AT_FDCWD, plugin_path(name), ts, 0), 0, "%s", strerror(errno));
}

static void expect_rejected(const struct loader_result *r, const char *file, const char *phrase)
{
	const struct loader_reject *rj = u_find_reject(r, file);

	cr_assert_not_null(rj, "%s was not rejected", file);
	cr_assert_not_null(strstr(rj->reason, phrase), "%s: reason \"%s\" lacks \"%s\"", file,
			   rj->reason, phrase);
	cr_assert_null(strchr(rj->reason, '\n'), "%s: reason is not one line", file);
	cr_assert_null(u_find_plugin(r, file), "%s was rejected and loaded", file);
}

/* The private copy of p: under loader_dir, present. */
static void expect_private_copy(const struct plugin *p)
{
	const char *dir = loader_dir(E.ld);

	cr_assert_not_null(p->copy_path);
	cr_assert_eq(strncmp(p->copy_path, dir, strlen(dir)), 0, "%s not under %s", p->copy_path,
		     dir);
	cr_assert_eq(p->copy_path[strlen(dir)], '/');
	cr_assert(file_exists(p->copy_path), "%s missing", p->copy_path);
}

static const struct {
	const char *src, *file, *phrase;
} broken[] = {
	{"fixtures/bad_magic.so", "bad_magic.so", "magic"},
	{"fixtures/abi_major.so", "abi_major.so", "incompatible ABI"},
	{"fixtures/small_size.so", "small_size.so", "smaller than ABI"},
	{"fixtures/big_size.so", "big_size.so", "larger than ABI"},
	{"fixtures/reserved_set.so", "reserved_set.so", "reserved[3] is not zero"},
	{"fixtures/no_descriptor.so", "no_descriptor.so", "no descriptor"},
	{"fixtures/empty_name.so", "empty_name.so", "empty name"},
	{"fixtures/bad_name.so", "bad_name.so", "invalid plugin name"},
	{"fixtures/bad_mode.so", "bad_mode.so", "unknown mode"},
	{"fixtures/no_entry.so", "no_entry.so", "without a call_async"},
	{"fixtures/no_hooks.so", "no_hooks.so", "serves no hooks"},
	{"fixtures/bad_hook.so", "bad_hook.so", "invalid hook name"},
	{"fixtures/dup_hook.so", "dup_hook.so", "listed twice"},
	{"fixtures/init_fail.so", "init_fail.so", "init failed"},
	{"fixtures/not_elf.so", "not_elf.so", "dlopen failed"},
	{"fixtures/unresolved.so", "unresolved.so", "dlopen failed"},
	/* dup_name.so claims "echo" too, and nothing says which served it
	 * last: both are refused, whatever their order */
	{"plugins/echo.so", "echo.so", "is claimed by dup_name.so and echo.so: refusing both"},
	{"fixtures/dup_name.so", "dup_name.so", "is claimed by dup_name.so and echo.so"},
};
#define NBROKEN (sizeof(broken) / sizeof(broken[0]))

Test(loader, every_broken_fixture_is_rejected_and_good_plugins_load_beside_them)
{
	struct config *cfg;
	struct loader_result r;
	char *log;

	for (size_t i = 0; i < NBROKEN; i++)
		u_env_install(&E, broken[i].src, broken[i].file);
	u_env_install(&E, "plugins/tag.so", "tag.so");
	u_env_install(&E, "plugins/echo_async.so", "echo_async.so");
	u_env_install(&E, "fixtures/ver_a.so", "ver.so");
	cfg = u_env_config(&E, NULL);
	u_env_scan(&E, cfg, NULL, 1, &r);

	for (size_t i = 0; i < NBROKEN; i++)
		expect_rejected(&r, broken[i].file, broken[i].phrase);
	cr_assert_eq(r.nrejects, NBROKEN);
	{
		const char *why = u_find_reject(&r, "unresolved.so")->reason;
		cr_assert_not_null(strstr(why, "hookd_fixture_symbol_that_does_not_exist"), "%s", why);
		cr_assert_null(strstr(why, loader_dir(E.ld)), "the private path leaks: %s", why);
		why = u_find_reject(&r, "echo.so")->reason;
		cr_assert_not_null(strstr(why, "remove one"), "says what to do: %s", why);
		why = u_find_reject(&r, "init_fail.so")->reason;
		cr_assert_not_null(strstr(why, "returned -3"), "%s", why);
	}

	/* the good ones, sorted by file name */
	cr_assert_eq(r.nplugins, 3);
	cr_assert_str_eq(r.plugins[0]->file, "echo_async.so");
	cr_assert(plugin_is_async(r.plugins[0]));
	cr_assert_str_eq(r.plugins[1]->file, "tag.so");
	cr_assert_not(plugin_is_async(r.plugins[1]));
	cr_assert_str_eq(r.plugins[2]->file, "ver.so");
	cr_assert_str_eq(r.plugins[2]->desc.version, "a");
	for (size_t i = 0; i < r.nplugins; i++) {
		struct plugin *p = r.plugins[i];
		cr_assert_eq(atomic_load(&p->refs), 1);
		cr_assert_eq(p->generation, 1);
		cr_assert(p->initialised);
		cr_assert_eq(p->ctx.name, p->desc.name);
		cr_assert_eq(p->ctx.api, dispatch_host_api());
		cr_assert_eq(plugin_of_ctx(&p->ctx), p);
		cr_assert_null(p->config, "no plugins section: init got NULL");
		expect_private_copy(p);
	}
	/* rejected files leave no private copy behind */
	cr_assert_eq(u_count_entries(loader_dir(E.ld)), (long)r.nplugins);

	log = log_text();
	cr_assert_not_null(strstr(log, "missing database URL"),
			   "init_fail's hookd_log from init reaches the host log");
	cr_assert_eq(u_count_str(log, " rejected: "), NBROKEN, "one log line per rejection");
	cr_assert_not_null(strstr(log, plugin_path("bad_magic.so")), "the log names the file");
	free(log);
	loader_result_free(&r);
	cr_assert_eq(r.nplugins, 0);
	cr_assert_null(r.plugins);
	cr_assert_eq(u_count_entries(loader_dir(E.ld)), 0);
	config_free(cfg);
}

/* The compatibility window: the major must match, any minor loads. A
 * plugin of a newer minor (which grew its descriptor and set a reserved
 * slot this host does not know) loads with only the bytes we know copied
 * and its reserved slots ignored; it sees this host's service table and
 * does without the service its header has and we lack. */
Test(loader, an_older_or_newer_minor_loads_another_major_is_refused)
{
	struct config *cfg;
	struct loader_result r;
	struct plugin *older, *newer;
	const struct loader_reject *rj;
	char want[768], *log;
	cJSON *in, *out;

	u_env_install(&E, "fixtures/abi_older.so", "abi_older.so");
	u_env_install(&E, "fixtures/abi_newer.so", "abi_newer.so");
	u_env_install(&E, "fixtures/abi_major.so", "abi_major.so");
	cfg = u_env_config(&E, NULL);
	u_env_scan(&E, cfg, NULL, 1, &r);
	cr_assert_eq(r.nplugins, 2);
	cr_assert_eq(r.nrejects, 1);

	older = u_find_plugin(&r, "abi_older.so");
	cr_assert_not_null(older, "a plugin of an older minor must load");
	cr_assert_eq(older->desc.abi_major, HOOKD_ABI_MAJOR);
	cr_assert_eq(older->desc.abi_minor, HOOKD_ABI_MINOR - 1);
	cr_assert(older->initialised);

	newer = u_find_plugin(&r, "abi_newer.so");
	cr_assert_not_null(newer, "a plugin of a newer minor must load");
	cr_assert_eq(newer->desc.abi_minor, HOOKD_ABI_MINOR + 1);
	cr_assert_gt(newer->desc.size, sizeof(hookd_descriptor), "the fixture grew its descriptor");
	for (size_t i = 0; i < sizeof(newer->desc.reserved) / sizeof(newer->desc.reserved[0]); i++)
		cr_assert_null(newer->desc.reserved[i], "reserved[%zu] of a newer minor is ignored",
			       i);
	cr_assert_str_eq(newer->ctx.state, "unavailable",
			 "the newer plugin must see that this host lacks its service");
	in = cJSON_CreateObject();
	out = newer->desc.call_sync(&newer->ctx, NULL, in);
	cr_assert_eq(out, in);
	cr_assert_eq(cJSON_GetObjectItem(out, "host_minor")->valuedouble, HOOKD_ABI_MINOR);
	cr_assert_eq(cJSON_GetObjectItem(out, "api_size")->valuedouble,
		     (double)sizeof(hookd_host_api));
	cJSON_Delete(in);

	rj = u_find_reject(&r, "abi_major.so");
	cr_assert_not_null(rj);
	snprintf(want, sizeof(want), "incompatible ABI %d.0: this host speaks ABI %d.%d",
		 HOOKD_ABI_MAJOR + 1, HOOKD_ABI_MAJOR, HOOKD_ABI_MINOR);
	cr_assert_not_null(strstr(rj->reason, want), "%s lacks \"%s\"", rj->reason, want);

	log = log_text();
	snprintf(want, sizeof(want), "plugin file %s rejected: incompatible ABI",
		 plugin_path("abi_major.so"));
	cr_assert_not_null(strstr(log, want), "the log names the file: %s", log);
	snprintf(want, sizeof(want), "built for ABI %d.%d, newer than this host's %d.%d",
		 HOOKD_ABI_MAJOR, HOOKD_ABI_MINOR + 1, HOOKD_ABI_MAJOR, HOOKD_ABI_MINOR);
	cr_assert_not_null(strstr(log, want), "a newer plugin is logged: %s", log);
	cr_assert_not_null(strstr(log, "next service unavailable"), "%s", log);
	free(log);
	loader_result_free(&r);
	config_free(cfg);
}

/* A C++ plugin built with g++ from the SDK's macros is a plugin like any
 * other (before the descriptor was declared extern, g++ gave it internal
 * linkage and the loader found "no descriptor"). */
Test(loader, a_cxx_plugin_built_with_the_macros_loads)
{
	struct config *cfg;
	struct loader_result r;
	struct plugin *p;
	cJSON *in, *out;

	u_env_install(&E, "fixtures/cxx_plugin.so", "cxx_plugin.so");
	cfg = u_env_config(&E, NULL);
	u_env_scan(&E, cfg, NULL, 1, &r);
	cr_assert_eq(r.nrejects, 0, "%s", r.nrejects ? r.rejects[0].reason : "");
	p = u_find_plugin(&r, "cxx_plugin.so");
	cr_assert_not_null(p);
	cr_assert_str_eq(p->desc.name, "cxx");
	cr_assert_str_eq(p->desc.version, "1.0.0");
	cr_assert_not(plugin_is_async(p));
	cr_assert_eq(p->desc.abi_minor, HOOKD_ABI_MINOR);
	cr_assert_eq(p->desc.size, sizeof(hookd_descriptor));
	cr_assert_str_eq(p->desc.hooks[0], "cxx");
	cr_assert_null(p->desc.hooks[1]);
	in = cJSON_Parse("{\"name\": \"Ada\"}");
	out = p->desc.call_sync(&p->ctx, NULL, in);
	cr_assert_not_null(out);
	cr_assert_str_eq(cJSON_GetObjectItem(out, "greeting")->valuestring, "Hello from C++, Ada!");
	cr_assert_geq(cJSON_GetObjectItem(out, "cplusplus")->valuedouble, 202002);
	cJSON_Delete(out);
	cJSON_Delete(in);
	loader_result_free(&r);
	config_free(cfg);
}

Test(loader, only_visible_files_ending_in_so_are_considered)
{
	struct config *cfg;
	struct loader_result r;
	char path[512], target[512];

	u_env_install(&E, "plugins/tag.so", ".hidden.so");
	u_env_install(&E, "plugins/tag.so", "tag.so.1");
	u_env_install(&E, "plugins/tag.so", "tag.txt");
	u_env_install(&E, "plugins/tag.so", "README");
	u_env_install(&E, "plugins/tag.so", ".so");
	u_env_install(&E, "plugins/tag.so", "TAG.SO");
	/* a symlink is followed (to a file inside the folder: one leading out
	 * of it is refused, see test_loader_secure.c) */
	u_build_path(path, sizeof(path), "plugins/echo.so");
	snprintf(target, sizeof(target), "%s", plugin_path(".echo-real.so"));
	u_copy_file(path, target);
	cr_assert_eq(chmod(target, 0644), 0);
	cr_assert_eq(symlink(target, plugin_path("link.so")), 0);
	/* not regular files: refused, and a FIFO must not hang the scan */
	cr_assert_eq(mkdir(plugin_path("dir.so"), 0700), 0);
	cr_assert_eq(mkfifo(plugin_path("fifo.so"), 0600), 0);

	cfg = u_env_config(&E, NULL);
	u_env_scan(&E, cfg, NULL, 1, &r);
	cr_assert_eq(r.nplugins, 1);
	cr_assert_str_eq(r.plugins[0]->file, "link.so");
	cr_assert_str_eq(r.plugins[0]->desc.name, "echo");
	cr_assert_eq(r.nrejects, 2);
	expect_rejected(&r, "dir.so", "not a regular file");
	expect_rejected(&r, "fifo.so", "not a regular file");
	loader_result_free(&r);
	config_free(cfg);
}

Test(loader, unchanged_files_are_reused_not_reloaded)
{
	char mark[512], members[1024];
	struct config *cfg1, *cfg2;
	struct loader_result r1, r2;
	char *m;

	snprintf(mark, sizeof(mark), "%s/mark", E.dir);
	snprintf(members, sizeof(members), "\"plugins\": {\"fini_mark\": {\"mark\": \"%s\"}},", mark);
	u_env_install(&E, "plugins/echo.so", "echo.so");
	u_env_install(&E, "plugins/tag.so", "tag.so");
	u_env_install(&E, "fixtures/fini_mark.so", "fini_mark.so");
	cfg1 = u_env_config(&E, members);
	u_env_scan(&E, cfg1, NULL, 1, &r1);
	cr_assert_eq(r1.nplugins, 3);
	cr_assert_eq(u_count_entries(loader_dir(E.ld)), 3);

	/* a new config object with the same content, as a reload makes */
	cfg2 = u_env_config(&E, members);
	u_env_scan(&E, cfg2, &r1, 2, &r2);
	cr_assert_eq(r2.nplugins, 3);
	cr_assert_eq(r2.nrejects, 0);
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(r2.plugins[i], r1.plugins[i], "%s was reloaded", r1.plugins[i]->file);
		cr_assert_eq(atomic_load(&r2.plugins[i]->refs), 2);
		cr_assert_eq(r2.plugins[i]->generation, 1, "still the copy of generation 1");
	}
	cr_assert_eq(u_count_entries(loader_dir(E.ld)), 3, "no new private copy");
	m = u_read_file(mark, NULL);
	cr_assert_str_eq(m, "init\n", "init ran once");
	free(m);

	loader_result_free(&r1);
	cr_assert_eq(atomic_load(&r2.plugins[0]->refs), 1);
	for (size_t i = 0; i < 3; i++)
		expect_private_copy(r2.plugins[i]);
	m = u_read_file(mark, NULL);
	cr_assert_str_eq(m, "init\n", "still used by r2: no fini");
	free(m);
	loader_result_free(&r2);
	m = u_read_file(mark, NULL);
	cr_assert_str_eq(m, "init\nfini\n", "the last reference ran fini");
	free(m);
	cr_assert_eq(u_count_entries(loader_dir(E.ld)), 0);
	config_free(cfg1);
	config_free(cfg2);
}

Test(loader, a_touched_or_replaced_file_loads_a_fresh_copy)
{
	char mark[512], members[1024], *m;
	struct config *cfg;
	struct loader_result r1, r2, r3;
	struct plugin *old, *fresh;
	char *old_copy;

	snprintf(mark, sizeof(mark), "%s/mark", E.dir);
	snprintf(members, sizeof(members), "\"plugins\": {\"fini_mark\": {\"mark\": \"%s\"}},", mark);
	u_env_install(&E, "plugins/echo.so", "echo.so");
	u_env_install(&E, "fixtures/fini_mark.so", "fini_mark.so");
	cfg = u_env_config(&E, members);
	u_env_scan(&E, cfg, NULL, 1, &r1);
	old = u_find_plugin(&r1, "fini_mark.so");
	cr_assert_not_null(old);

	/* same bytes, same inode, only the mtime changes */
	set_mtime("fini_mark.so", 1000000000);
	u_env_scan(&E, cfg, &r1, 2, &r2);
	fresh = u_find_plugin(&r2, "fini_mark.so");
	cr_assert_not_null(fresh);
	cr_assert_neq(fresh, old, "a touched file must be loaded afresh");
	cr_assert_eq(fresh->generation, 2);
	cr_assert_eq(fresh->id.mtime.tv_sec, 1000000000);
	cr_assert_str_neq(fresh->copy_path, old->copy_path);
	cr_assert_eq(u_find_plugin(&r2, "echo.so"), u_find_plugin(&r1, "echo.so"),
		     "the untouched file is reused");
	cr_assert_eq(atomic_load(&old->refs), 1, "r2 holds no reference to the old copy");
	m = u_read_file(mark, NULL);
	cr_assert_str_eq(m, "init\ninit\n", "two copies, each initialised");
	free(m);
	cr_assert_eq(u_count_entries(loader_dir(E.ld)), 3);

	/* the old copy goes with its last holder */
	old_copy = strdup(old->copy_path);
	loader_result_free(&r1);
	cr_assert_not(file_exists(old_copy), "old private copy not removed");
	free(old_copy);
	m = u_read_file(mark, NULL);
	cr_assert_str_eq(m, "init\ninit\nfini\n");
	free(m);
	expect_private_copy(fresh);

	/* reinstalled by rename with the same mtime: a new inode is a new file */
	u_env_install(&E, "fixtures/fini_mark.so", "fini_mark.so");
	set_mtime("fini_mark.so", 1000000000);
	u_env_scan(&E, cfg, &r2, 3, &r3);
	cr_assert_neq(u_find_plugin(&r3, "fini_mark.so"), fresh);
	cr_assert_eq(u_find_plugin(&r3, "fini_mark.so")->generation, 3);
	loader_result_free(&r2);
	loader_result_free(&r3);
	m = u_read_file(mark, NULL);
	cr_assert_str_eq(m, "init\ninit\nfini\ninit\nfini\nfini\n");
	free(m);
	config_free(cfg);
}

Test(loader, a_changed_plugins_section_loads_a_fresh_copy)
{
	struct config *c1, *c2, *c3, *c4;
	struct loader_result r1, r2, r3, r4;
	struct plugin *t1, *t2;

	u_env_install(&E, "plugins/echo.so", "echo.so");
	u_env_install(&E, "plugins/tag.so", "tag.so");
	c1 = u_env_config(&E, "\"plugins\": {\"tag\": {\"label\": \"one\"}},");
	c2 = u_env_config(&E, "\"plugins\": {\"tag\": {\"label\": \"two\"}},");
	c3 = u_env_config(&E, "\"plugins\": {\"tag\": {\"label\": \"two\"}},");
	c4 = u_env_config(&E, "\"plugins\": {\"echo\": {}},");
	u_env_scan(&E, c1, NULL, 1, &r1);
	t1 = u_find_plugin(&r1, "tag.so");
	cr_assert_str_eq(cJSON_GetObjectItem(t1->config, "label")->valuestring, "one");
	cr_assert_str_eq(t1->ctx.state, "one", "init saw its section");

	u_env_scan(&E, c2, &r1, 2, &r2);
	t2 = u_find_plugin(&r2, "tag.so");
	cr_assert_neq(t2, t1, "a changed section must reload the plugin");
	cr_assert_str_eq(t2->ctx.state, "two");
	cr_assert_eq(u_find_plugin(&r2, "echo.so"), u_find_plugin(&r1, "echo.so"));

	/* an equal section in another config object: reused */
	u_env_scan(&E, c3, &r2, 3, &r3);
	cr_assert_eq(u_find_plugin(&r3, "tag.so"), t2);

	/* tag loses its section (reload, config NULL); echo gains one (reload) */
	u_env_scan(&E, c4, &r3, 4, &r4);
	cr_assert_neq(u_find_plugin(&r4, "tag.so"), t2);
	cr_assert_null(u_find_plugin(&r4, "tag.so")->config);
	cr_assert_str_eq(u_find_plugin(&r4, "tag.so")->ctx.state, "tag", "default label");
	cr_assert_neq(u_find_plugin(&r4, "echo.so"), u_find_plugin(&r3, "echo.so"));
	cr_assert(cJSON_IsObject(u_find_plugin(&r4, "echo.so")->config));

	loader_result_free(&r1);
	loader_result_free(&r2);
	loader_result_free(&r3);
	loader_result_free(&r4);
	cr_assert_eq(u_count_entries(loader_dir(E.ld)), 0);
	config_free(c1);
	config_free(c2);
	config_free(c3);
	config_free(c4);
}

Test(loader, a_broken_replacement_keeps_the_last_known_good_version)
{
	struct config *cfg;
	struct loader_result r1, r2, r3, r4;
	struct plugin *good;
	const struct loader_reject *rj;
	char *log;

	u_env_install(&E, "plugins/echo.so", "echo.so");
	u_env_install(&E, "fixtures/ver_a.so", "ver.so");
	cfg = u_env_config(&E, NULL);
	u_env_scan(&E, cfg, NULL, 1, &r1);
	good = u_find_plugin(&r1, "ver.so");
	cr_assert_not_null(good);
	cr_assert_str_eq(good->desc.version, "a");

	u_env_install(&E, "fixtures/bad_magic.so", "ver.so");
	u_env_scan(&E, cfg, &r1, 2, &r2);
	cr_assert_eq(u_find_plugin(&r2, "ver.so"), good, "the previous version keeps serving");
	cr_assert_eq(atomic_load(&good->refs), 2);
	rj = u_find_reject(&r2, "ver.so");
	cr_assert_not_null(rj, "the broken file is still reported");
	cr_assert_not_null(strstr(rj->reason, "magic"), "%s", rj->reason);
	cr_assert_not_null(strstr(rj->reason, "still serving the previous version"), "%s",
			   rj->reason);
	cr_assert_not_null(strstr(rj->reason, "generation 1"), "%s", rj->reason);
	cr_assert_eq(r2.nplugins, 2);
	cr_assert_eq(r2.nrejects, 1);

	/* still broken on the next reload: still the same good copy */
	u_env_install(&E, "fixtures/not_elf.so", "ver.so");
	u_env_scan(&E, cfg, &r2, 3, &r3);
	cr_assert_eq(u_find_plugin(&r3, "ver.so"), good);
	rj = u_find_reject(&r3, "ver.so");
	cr_assert_not_null(rj);
	cr_assert_not_null(strstr(rj->reason, "dlopen failed"), "%s", rj->reason);
	cr_assert_not_null(strstr(rj->reason, "still serving the previous version (loaded in "
					      "generation 1)"), "%s", rj->reason);

	/* fixed: the new version replaces it */
	u_env_install(&E, "fixtures/ver_b.so", "ver.so");
	u_env_scan(&E, cfg, &r3, 4, &r4);
	cr_assert_neq(u_find_plugin(&r4, "ver.so"), good);
	cr_assert_str_eq(u_find_plugin(&r4, "ver.so")->desc.version, "b");
	cr_assert_eq(u_find_plugin(&r4, "ver.so")->generation, 4);
	cr_assert_eq(r4.nrejects, 0);

	log = log_text();
	cr_assert_geq(u_count_str(log, "still serving the previous version"), 2);
	free(log);
	loader_result_free(&r1);
	loader_result_free(&r2);
	loader_result_free(&r3);
	cr_assert_eq(u_count_entries(loader_dir(E.ld)), 2, "version a unloaded with r3");
	loader_result_free(&r4);
	config_free(cfg);
}

Test(loader, a_config_change_that_makes_init_fail_keeps_the_last_known_good)
{
	struct config *c1, *c2;
	struct loader_result r1, r2;
	struct plugin *good;
	const struct loader_reject *rj;

	u_env_install(&E, "plugins/tag.so", "tag.so");
	c1 = u_env_config(&E, "\"plugins\": {\"tag\": {\"label\": \"ok\"}},");
	c2 = u_env_config(&E, "\"plugins\": {\"tag\": {\"label\": 5}},"); /* tag's init refuses */
	u_env_scan(&E, c1, NULL, 1, &r1);
	good = u_find_plugin(&r1, "tag.so");
	cr_assert_not_null(good);
	u_env_scan(&E, c2, &r1, 2, &r2);
	cr_assert_eq(u_find_plugin(&r2, "tag.so"), good);
	cr_assert_str_eq(good->ctx.state, "ok", "the old copy keeps its old config");
	rj = u_find_reject(&r2, "tag.so");
	cr_assert_not_null(rj);
	cr_assert_not_null(strstr(rj->reason, "init failed"), "%s", rj->reason);
	cr_assert_not_null(strstr(rj->reason, "still serving the previous version"), "%s",
			   rj->reason);
	loader_result_free(&r1);
	loader_result_free(&r2);
	config_free(c1);
	config_free(c2);
}

Test(loader, a_removed_file_disappears)
{
	struct config *cfg;
	struct loader_result r1, r2;
	char *copy;

	u_env_install(&E, "plugins/echo.so", "echo.so");
	u_env_install(&E, "plugins/tag.so", "tag.so");
	cfg = u_env_config(&E, NULL);
	u_env_scan(&E, cfg, NULL, 1, &r1);
	cr_assert_eq(r1.nplugins, 2);
	copy = strdup(u_find_plugin(&r1, "tag.so")->copy_path);
	cr_assert_eq(unlink(plugin_path("tag.so")), 0);
	u_env_scan(&E, cfg, &r1, 2, &r2);
	cr_assert_eq(r2.nplugins, 1);
	cr_assert_str_eq(r2.plugins[0]->file, "echo.so");
	cr_assert_eq(r2.plugins[0], u_find_plugin(&r1, "echo.so"));
	cr_assert_eq(r2.nrejects, 0, "a removed file is not an error");
	cr_assert(file_exists(copy), "r1 still holds tag");
	loader_result_free(&r1);
	cr_assert_not(file_exists(copy));
	free(copy);
	loader_result_free(&r2);
	config_free(cfg);
}

/* On a rescan, what serves keeps its name: a newcomer claiming it is the
 * one refused, even though it sorts first. */
Test(loader, a_loaded_plugin_keeps_its_name_against_a_newcomer_on_rescan)
{
	struct config *cfg;
	struct loader_result r1, r2;
	const struct loader_reject *rj;

	u_env_install(&E, "plugins/echo.so", "echo.so");
	cfg = u_env_config(&E, NULL);
	u_env_scan(&E, cfg, NULL, 1, &r1);
	u_env_install(&E, "fixtures/dup_name.so", "dup_name.so");
	u_env_scan(&E, cfg, &r1, 2, &r2);
	cr_assert_eq(r2.nplugins, 1);
	cr_assert_str_eq(r2.plugins[0]->file, "echo.so");
	cr_assert_eq(r2.plugins[0], r1.plugins[0], "the same loaded copy, not reloaded");
	rj = u_find_reject(&r2, "dup_name.so");
	cr_assert_not_null(rj);
	cr_assert_not_null(strstr(rj->reason, "duplicate plugin name \"echo\""), "%s", rj->reason);
	cr_assert_not_null(strstr(rj->reason, "echo.so"), "%s", rj->reason);
	loader_result_free(&r1);
	loader_result_free(&r2);
	config_free(cfg);
}

/* An owner record for the tests: "echo" was last served by `echo_file`. */
static const char *echo_file;
static const char *record_owner(void *arg, const char *name)
{
	(void)arg;
	return strcmp(name, "echo") == 0 ? echo_file : NULL;
}

/* Two files claim "echo" at start; the record names `owner`: `kept` loads,
 * the other is refused naming `kept` (kept NULL: both refused). */
static void start_with_two_echoes(const char *owner, const char *kept)
{
	struct config *cfg;
	struct loader_result r;
	const struct loader_reject *rj;

	u_env_install(&E, "plugins/echo.so", "echo.so");
	u_env_install(&E, "fixtures/dup_name.so", "dup_name.so");
	echo_file = owner;
	loader_set_owner(E.ld, record_owner, NULL);
	cfg = u_env_config(&E, NULL);
	u_env_scan(&E, cfg, NULL, 1, &r);
	if (kept) {
		const char *lost = strcmp(kept, "echo.so") == 0 ? "dup_name.so" : "echo.so";
		cr_assert_eq(r.nplugins, 1);
		cr_assert_str_eq(r.plugins[0]->file, kept);
		cr_assert_eq(r.nrejects, 1);
		rj = u_find_reject(&r, lost);
		cr_assert_not_null(rj, "%s is not the one refused", lost);
		cr_assert_not_null(strstr(rj->reason, "duplicate plugin name \"echo\""), "%s",
				   rj->reason);
		cr_assert_not_null(strstr(rj->reason, kept), "names the keeper: %s", rj->reason);
	} else {
		cr_assert_eq(r.nplugins, 0);
		cr_assert_eq(r.nrejects, 2);
		for (int i = 0; i < 2; i++)
			cr_assert_str_eq(r.rejects[i].reason,
					 "plugin name \"echo\" is claimed by dup_name.so and echo.so: "
					 "refusing both; remove one");
	}
	cr_assert_eq(u_count_entries(loader_dir(E.ld)), (long)r.nplugins,
		     "a refused copy is unloaded");
	loader_result_free(&r);
	config_free(cfg);
}

/* The record of who served a name last decides at start, whichever file
 * sorts first; without a word from it, both are refused. */
Test(loader, at_start_the_record_decides_which_file_keeps_a_name)
{
	start_with_two_echoes("echo.so", "echo.so");
}

Test(loader, at_start_the_record_decides_even_for_the_file_that_sorts_first)
{
	start_with_two_echoes("dup_name.so", "dup_name.so");
}

Test(loader, at_start_a_record_naming_neither_file_refuses_both)
{
	start_with_two_echoes("gone.so", NULL);
}

Test(loader, at_start_without_a_record_both_files_are_refused)
{
	start_with_two_echoes(NULL, NULL);
}

/* Names are settled before init: neither copy of a refused pair runs its
 * init; three claimants are all refused. */
Test(loader, refused_claimants_never_run_init)
{
	struct config *cfg;
	struct loader_result r;
	char *log;

	u_env_install(&E, "fixtures/init_fail.so", "a.so");
	u_env_install(&E, "fixtures/init_fail.so", "b.so");
	u_env_install(&E, "fixtures/init_fail.so", "c.so");
	cfg = u_env_config(&E, NULL);
	u_env_scan(&E, cfg, NULL, 1, &r);
	cr_assert_eq(r.nplugins, 0);
	cr_assert_eq(r.nrejects, 3);
	for (int i = 0; i < 3; i++)
		cr_assert_str_eq(r.rejects[i].reason,
				 "plugin name \"init_fail\" is claimed by a.so, b.so and c.so: "
				 "refusing all of them; keep one");
	log = log_text();
	cr_assert_null(strstr(log, "missing database URL"), "a refused file's init ran");
	free(log);
	loader_result_free(&r);
	config_free(cfg);
}

/* A changed file that serves a name keeps it against a newcomer: the new
 * version of the file that served it last is the one loaded. */
Test(loader, a_changed_plugin_keeps_its_name_against_a_newcomer)
{
	struct config *cfg;
	struct loader_result r1, r2;

	u_env_install(&E, "fixtures/ver_a.so", "zz.so");
	cfg = u_env_config(&E, NULL);
	u_env_scan(&E, cfg, NULL, 1, &r1);
	u_env_install(&E, "fixtures/ver_b.so", "zz.so");
	u_env_install(&E, "fixtures/ver_a.so", "aa.so");
	u_env_scan(&E, cfg, &r1, 2, &r2);
	cr_assert_eq(r2.nplugins, 1);
	cr_assert_str_eq(r2.plugins[0]->file, "zz.so");
	cr_assert_str_eq(r2.plugins[0]->desc.version, "b");
	cr_assert_eq(r2.plugins[0]->generation, 2);
	cr_assert_not_null(u_find_reject(&r2, "aa.so"));
	loader_result_free(&r1);
	loader_result_free(&r2);
	config_free(cfg);
}

static void expect_scan_fails(const char *dir, const char *what)
{
	char text[1024], err[512];
	struct config *cfg;
	struct loader_result r;

	snprintf(text, sizeof(text), "{\"listen\": \"127.0.0.1:0\", \"plugin_dir\": \"%s\"}", dir);
	cr_assert_eq(config_parse(text, strlen(text), E.cfgpath, &cfg, err, sizeof(err)), 0);
	memset(&r, 0x5a, sizeof(r));
	err[0] = '\0';
	cr_assert_eq(loader_scan(E.ld, cfg, NULL, 0, 1, &r, err, sizeof(err)), -1, "%s", dir);
	cr_assert_not_null(strstr(err, dir), "error does not name the dir: %s", err);
	cr_assert_not_null(strstr(err, what), "%s", err);
	cr_assert_eq(r.nplugins, 0);
	cr_assert_null(r.plugins);
	cr_assert_eq(r.nrejects, 0);
	loader_result_free(&r); /* safe on the failed result */
	config_free(cfg);
}

Test(loader, an_unreadable_plugin_dir_fails_the_scan_and_names_it)
{
	char missing[512], file[512];

	snprintf(missing, sizeof(missing), "%s/no-such-dir", E.dir);
	expect_scan_fails(missing, "No such file");
	snprintf(file, sizeof(file), "%s/a-file", E.dir);
	u_write_file(file, "x");
	expect_scan_fails(file, "Not a directory");
	if (geteuid() != 0) {
		u_env_install(&E, "plugins/echo.so", "echo.so");
		cr_assert_eq(chmod(E.plugins, 0), 0);
		expect_scan_fails(E.plugins, "Permission denied");
		cr_assert_eq(chmod(E.plugins, 0700), 0);
	}
}

Test(loader, private_copies_live_under_loader_dir_and_go_with_their_plugin)
{
	struct config *cfg;
	struct loader_result r;
	struct loader *other;
	char err[256], prefix[512], src[512], dir[512];
	struct plugin *p;
	size_t a_len, b_len;
	char *a, *b;
	cJSON *in, *out;

	snprintf(prefix, sizeof(prefix), "%s/hookd-", E.run);
	cr_assert_eq(strncmp(loader_dir(E.ld), prefix, strlen(prefix)), 0, "%s",
		     loader_dir(E.ld));
	cr_assert_eq(u_count_entries(loader_dir(E.ld)), 0);
	cr_assert_eq(loader_create(E.run, &E.log, dispatch_host_api(), &other, err, sizeof(err)),
		     0);
	cr_assert_str_neq(loader_dir(other), loader_dir(E.ld), "each loader has its own dir");
	snprintf(dir, sizeof(dir), "%s", loader_dir(other));
	loader_destroy(other);
	cr_assert_not(file_exists(dir), "loader_destroy removes the dir");

	u_env_install(&E, "plugins/echo.so", "echo.so");
	cfg = u_env_config(&E, NULL);
	u_env_scan(&E, cfg, NULL, 1, &r);
	p = r.plugins[0];
	expect_private_copy(p);
	u_build_path(src, sizeof(src), "plugins/echo.so");
	a = u_read_file(src, &a_len);
	b = u_read_file(p->copy_path, &b_len);
	cr_assert_eq(a_len, b_len);
	cr_assert_eq(memcmp(a, b, a_len), 0, "the copy has the plugin's bytes");
	free(a);
	free(b);

	/* the code runs from the copy: the folder's file may go away */
	cr_assert_eq(unlink(plugin_path("echo.so")), 0);
	in = cJSON_CreateObject();
	out = p->desc.call_sync(&p->ctx, NULL, in);
	cr_assert_eq(out, in, "echo returns its input");
	cJSON_Delete(in);

	snprintf(dir, sizeof(dir), "%s", p->copy_path);
	loader_result_free(&r);
	cr_assert_not(file_exists(dir), "released plugin's copy removed");
	cr_assert_eq(u_count_entries(loader_dir(E.ld)), 0);
	snprintf(dir, sizeof(dir), "%s", loader_dir(E.ld));
	loader_destroy(E.ld);
	E.ld = NULL;
	cr_assert_not(file_exists(dir), "loader_destroy removes the dir");
	config_free(cfg);
}

/* loader_destroy while copies are still loaded (a forced exit) removes the
 * private directory all the same: a mapped file may be unlinked. */
Test(loader, destroy_with_plugins_still_loaded_still_removes_the_dir)
{
	struct config *cfg;
	struct loader_result r;
	char dir[512];

	u_env_install(&E, "plugins/echo.so", "echo.so");
	cfg = u_env_config(&E, NULL);
	u_env_scan(&E, cfg, NULL, 1, &r);
	snprintf(dir, sizeof(dir), "%s", loader_dir(E.ld));
	loader_destroy(E.ld);
	E.ld = NULL;
	loader_result_free(&r);
	cr_assert_not(file_exists(dir), "%s left behind", dir);
	config_free(cfg);
}

/* An empty plugin folder (no *.so) scans to nothing; qsort(NULL, 0) would
 * be undefined behaviour, which the UBSan build aborts on. */
Test(loader, empty_plugin_folder_scans_to_nothing)
{
	struct config *cfg;
	struct loader_result r;

	u_env_install(&E, "plugins/echo.so", "README"); /* not a plugin file */
	cfg = u_env_config(&E, NULL);
	u_env_scan(&E, cfg, NULL, 1, &r);
	cr_assert_eq(r.nplugins, 0);
	cr_assert_eq(r.nrejects, 0);
	loader_result_free(&r);
	config_free(cfg);
}
