/*
 * The SDK can grow without breaking anyone, seen from the outside: plugins
 * built against an older and a newer minor of hookd.h load and serve in a
 * real daemon next to each other, one of another major is refused with a
 * log line naming the file and both ABIs; a C++ plugin written with the
 * SDK's macros exports exactly one symbol and serves.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <hookd.h>

#include "../support/harness.h"

TestSuite(sdk, .fini = hd_suite_teardown);

static cJSON *post_json(struct hd *d, const char *path, const char *body)
{
	struct hd_resp r;
	cJSON *o;

	hd_post(d, path, body, &r);
	cr_assert_eq(r.status, 200, "POST %s: %ld %s", path, r.status, r.body);
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o, "%s", r.body);
	hd_resp_free(&r);
	return o;
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	cr_assert(cJSON_IsNumber(v), "no number \"%s\"", key);
	return v->valuedouble;
}

Test(sdk, older_and_newer_minors_serve_another_major_is_refused, .timeout = 60)
{
	static struct hd d;
	char path[600], want[200];
	struct hd_resp r;
	cJSON *o;

	hd_prepare(&d, "", (const char *const[]){"echo", NULL});
	hd_install(&d, "fixtures/abi_older.so", "abi_older.so");
	hd_install(&d, "fixtures/abi_newer.so", "abi_newer.so");
	hd_install(&d, "fixtures/abi_major.so", "abi_major.so");
	hd_launch_or_fail(&d);

	o = post_json(&d, "/hooks/abi_older", "{\"k\":1}");
	cr_assert_eq(num(o, "k"), 1);
	cr_assert_eq(num(o, "built_minor"), HOOKD_ABI_MINOR - 1);
	cJSON_Delete(o);

	/* the newer plugin runs, and saw (in init, through api->abi_minor and
	 * api->size) that this host lacks the service its header has */
	o = post_json(&d, "/hooks/abi_newer", "{}");
	cr_assert_eq(num(o, "built_minor"), HOOKD_ABI_MINOR + 1);
	cr_assert_eq(num(o, "host_minor"), HOOKD_ABI_MINOR);
	cr_assert_eq(num(o, "api_size"), (double)sizeof(hookd_host_api));
	cr_assert_str_eq(cJSON_GetObjectItem(o, "next_service")->valuestring, "unavailable");
	cJSON_Delete(o);

	hd_post(&d, "/hooks/abi_major", "{}", &r);
	cr_assert_eq(r.status, 404, "a plugin of another major serves nothing: %s", r.body);
	hd_resp_free(&r);
	hd_get(&d, "/plugins", &r);
	cr_assert_eq(r.status, 200);
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o);
	hd_resp_free(&r);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "plugins")), 3);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "rejected")), 1);
	{
		const cJSON *rj = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "rejected"), 0);
		cr_assert_str_eq(cJSON_GetObjectItem(rj, "file")->valuestring, "abi_major.so");
		snprintf(want, sizeof(want), "incompatible ABI %d.0: this host speaks ABI %d.%d",
			 HOOKD_ABI_MAJOR + 1, HOOKD_ABI_MAJOR, HOOKD_ABI_MINOR);
		cr_assert(strstr(cJSON_GetObjectItem(rj, "reason")->valuestring, want), "%s",
			  cJSON_GetObjectItem(rj, "reason")->valuestring);
	}
	cJSON_Delete(o);
	/* the operator's log line: the file, its ABI and ours */
	snprintf(path, sizeof(path), "plugin file %s/abi_major.so rejected: %s", d.plugin_dir,
		 want);
	cr_assert_eq(hd_log_count(&d, path), 1, "no log line \"%s\"", path);
	snprintf(want, sizeof(want), "built for ABI %d.%d, newer than this host's %d.%d",
		 HOOKD_ABI_MAJOR, HOOKD_ABI_MINOR + 1, HOOKD_ABI_MAJOR, HOOKD_ABI_MINOR);
	cr_assert_eq(hd_log_count(&d, want), 1, "the newer plugin is not logged as such");
	cr_assert_eq(hd_stop(&d), 0);
}

/* nm -D --defined-only: the .so's exported symbols, one per line. */
static int exports(const char *so, char *names, size_t len)
{
	char cmd[700], line[256];
	int n = 0;
	FILE *f;

	names[0] = '\0';
	snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s'", so);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		/* ASan's ODR indicator for an exported global (sanitizer builds) */
		if (strstr(line, " __odr_asan."))
			continue;
		n++;
		strncat(names, line, len - strlen(names) - 1);
	}
	cr_assert_eq(pclose(f), 0, "%s failed", cmd);
	return n;
}

Test(sdk, a_cxx_plugin_exports_one_symbol_and_serves, .timeout = 60)
{
	static struct hd d;
	char so[512], names[2048];
	struct hd_resp r;
	cJSON *o;

	hd_build_path("fixtures/cxx_plugin.so", so, sizeof(so));
	cr_assert_eq(exports(so, names, sizeof(names)), 1, "%s exports:\n%s", so, names);
	cr_assert(strstr(names, " D hookd_plugin\n"), "%s", names);

	hd_prepare(&d, "", NULL);
	hd_install(&d, "fixtures/cxx_plugin.so", "cxx_plugin.so");
	hd_launch_or_fail(&d);
	o = post_json(&d, "/hooks/cxx", "{\"name\":\"Ada\"}");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "greeting")->valuestring, "Hello from C++, Ada!");
	cr_assert_geq(num(o, "cplusplus"), 202002, "built as C++20");
	cJSON_Delete(o);
	hd_post(&d, "/hooks/cxx", "{\"name\":7}", &r);
	cr_assert_eq(r.status, 422, "%s", r.body);
	cr_assert(strstr(r.body, "\"plugin\":\"cxx\""), "%s", r.body);
	hd_resp_free(&r);
	hd_get(&d, "/plugins", &r);
	cr_assert(strstr(r.body, "\"name\":\"cxx\""), "%s", r.body);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}
