/*
 * Two plugin files claiming one name: settled the same way at start and at
 * reload, never by file-name order. The file that served the name last
 * keeps it (the running one at a reload; the record in state_dir at a
 * start); with nothing to decide, both files are refused and say why.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(names, .fini = hd_suite_teardown);

static void expect_status(struct hd *d, const char *path, long status)
{
	struct hd_resp r;

	hd_post(d, path, "{}", &r);
	cr_assert_eq(r.status, status, "POST %s: %ld %s (expected %ld)", path, r.status, r.body,
		     status);
	hd_resp_free(&r);
}

/* GET /plugins: the file serving plugin `name` ("" if none) and the reason
 * `file` is rejected for (NULL if it is not), copied into the buffers. */
static void plugins_view(struct hd *d, const char *name, char serving[64], const char *file,
			 char *why, size_t whylen)
{
	struct hd_resp r;
	cJSON *o, *e;

	hd_get(d, "/plugins", &r);
	cr_assert_eq(r.status, 200);
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o, "%s", r.body);
	serving[0] = '\0';
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(o, "plugins"))
		if (strcmp(cJSON_GetObjectItem(e, "name")->valuestring, name) == 0)
			snprintf(serving, 64, "%s", cJSON_GetObjectItem(e, "file")->valuestring);
	if (why) {
		why[0] = '\0';
		cJSON_ArrayForEach(e, cJSON_GetObjectItem(o, "rejected"))
			if (strcmp(cJSON_GetObjectItem(e, "file")->valuestring, file) == 0)
				snprintf(why, whylen, "%s",
					 cJSON_GetObjectItem(e, "reason")->valuestring);
	}
	cJSON_Delete(o);
	hd_resp_free(&r);
}

/* Stopped cleanly, started again on the same folder and state_dir, with a
 * fresh log (the old one kept as log.before). */
static void restart(struct hd *d)
{
	char old[400];

	hd_signal(d, SIGTERM);
	cr_assert(hd_wait_exit(d, 20000), "the daemon did not exit after SIGTERM");
	cr_assert_eq(d->exit_status, 0);
	snprintf(old, sizeof(old), "%s.before", d->log);
	cr_assert_eq(rename(d->log, old), 0);
	d->stopped = false;
	d->port = 0;
	hd_launch_or_fail(d);
}

/* fixtures/dup_name.so calls itself "echo". With no record of who served
 * "echo", neither file gets it, and each says which other file claims it;
 * the other plugins serve. */
Test(names, two_files_claiming_one_name_at_start_are_both_refused, .timeout = 60)
{
	static struct hd d; /* static: the teardown may read it */
	char serving[64], why[512];

	hd_prepare(&d, "", (const char *const[]){"echo", "delay", NULL});
	hd_install(&d, "fixtures/dup_name.so", "dup_name.so");
	hd_launch_or_fail(&d);
	plugins_view(&d, "echo", serving, "echo.so", why, sizeof(why));
	cr_assert_str_eq(serving, "", "plugin echo is served from %s", serving);
	cr_assert_str_eq(why, "plugin name \"echo\" is claimed by dup_name.so and echo.so: "
			 "refusing both; remove one");
	plugins_view(&d, "echo", serving, "dup_name.so", why, sizeof(why));
	cr_assert_str_eq(why, "plugin name \"echo\" is claimed by dup_name.so and echo.so: "
			 "refusing both; remove one");
	cr_assert_eq(hd_log_count(&d, "refusing both"), 2, "one log line per file");
	expect_status(&d, "/hooks/echo", 404);
	expect_status(&d, "/hooks/dup_name", 404);
	expect_status(&d, "/hooks/delay", 200);
	/* remove one: the other serves at the next reload */
	hd_uninstall(&d, "dup_name.so");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 2, 10000));
	plugins_view(&d, "echo", serving, "echo.so", NULL, 0);
	cr_assert_str_eq(serving, "echo.so");
	expect_status(&d, "/hooks/echo", 200);
	cr_assert_eq(hd_stop(&d), 0);
}

/* echo.so serves "echo"; dup_name.so, which sorts first, is dropped in and
 * refused at the reload; at the next start echo.so keeps "echo" again:
 * the record in state_dir says it served it last. */
Test(names, after_a_restart_the_file_that_served_the_name_keeps_it, .timeout = 90)
{
	static struct hd d; /* static: the teardown may read it */
	char serving[64], why[512], path[400], *rec;

	hd_prepare(&d, "\"state_dir\": \"state\"", (const char *const[]){"echo", NULL});
	hd_launch_or_fail(&d);
	hd_install(&d, "fixtures/dup_name.so", "dup_name.so");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 2, 10000));
	plugins_view(&d, "echo", serving, "dup_name.so", why, sizeof(why));
	cr_assert_str_eq(serving, "echo.so");
	cr_assert(strstr(why, "duplicate plugin name \"echo\": echo.so keeps it"), "%s", why);
	snprintf(path, sizeof(path), "%s/state/names.json", d.dir);
	rec = hd_read_file(path, NULL);
	cr_assert_not_null(rec, "no %s", path);
	cr_assert(strstr(rec, "\"echo\":\"echo.so\""), "%s", rec);
	free(rec);

	restart(&d);
	plugins_view(&d, "echo", serving, "dup_name.so", why, sizeof(why));
	cr_assert_str_eq(serving, "echo.so", "the newcomer took the name at the restart");
	cr_assert(strstr(why, "duplicate plugin name \"echo\": echo.so keeps it"), "%s", why);
	expect_status(&d, "/hooks/echo", 200);
	expect_status(&d, "/hooks/dup_name", 404);
	cr_assert_eq(hd_stop(&d), 0);
}

/* The other way round: the file that sorts first served the name, and the
 * record keeps it there after a restart too. */
Test(names, the_record_decides_whichever_file_sorts_first, .timeout = 90)
{
	static struct hd d; /* static: the teardown may read it */
	char serving[64], why[512];

	hd_prepare(&d, "\"state_dir\": \"state\"", NULL);
	hd_install(&d, "fixtures/dup_name.so", "dup_name.so");
	hd_launch_or_fail(&d);
	expect_status(&d, "/hooks/dup_name", 200);
	hd_install(&d, "plugins/echo.so", "echo.so");
	restart(&d);
	plugins_view(&d, "echo", serving, "echo.so", why, sizeof(why));
	cr_assert_str_eq(serving, "dup_name.so");
	cr_assert(strstr(why, "dup_name.so keeps it"), "%s", why);
	expect_status(&d, "/hooks/dup_name", 200);
	cr_assert_eq(hd_stop(&d), 0);
}
