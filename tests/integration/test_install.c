/*
 * Packaging: `make install DESTDIR=<tmp> PREFIX=/usr` lays out the binary,
 * the SDK header, hookd.pc, the man page and the systemd unit; a plugin
 * built with nothing but `pkg-config --cflags --libs hookd` pointed into
 * that tree loads and serves in the daemon; `make uninstall` takes every
 * file back. The unit's sandbox is rated by systemd-analyze offline.
 *
 * Runs make in the current directory: the suite runs from the repository's
 * root (as HOOKD_BUILD=build implies).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/harness.h"

TestSuite(install, .fini = hd_suite_teardown);

static struct hd D;

/* Run `cmd` with sh; its stdout (malloc'ed, NUL-terminated) into *out if
 * non-NULL. Returns the exit status (-1: did not run). */
static int sh(const char *cmd, char **out)
{
	FILE *p = popen(cmd, "r");
	size_t n = 0, cap = 4096, got;
	char *buf = malloc(cap + 1);
	int st;

	cr_assert_not_null(p, "%s", cmd);
	cr_assert_not_null(buf);
	while ((got = fread(buf + n, 1, cap - n, p)) > 0) {
		n += got;
		if (n == cap) {
			buf = realloc(buf, (cap *= 2) + 1);
			cr_assert_not_null(buf);
		}
	}
	buf[n] = 0;
	st = pclose(p);
	if (out)
		*out = buf;
	else
		free(buf);
	return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

static bool exists(const char *dest, const char *rel)
{
	char path[600];
	struct stat st;

	snprintf(path, sizeof(path), "%s%s", dest, rel);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *const FILES[] = {
	"/usr/bin/hookd",
	"/usr/include/hookd.h",
	"/usr/share/pkgconfig/hookd.pc",
	"/usr/share/man/man8/hookd.8",
	"/usr/lib/systemd/system/hookd.service",
	"/usr/share/hookd/hookd.json.example",
	"/usr/lib/hookd/plugins/echo.so",
	NULL,
};

Test(install, a_plugin_built_from_the_installed_pc_file_loads_and_uninstall_removes_it_all,
     .timeout = 300)
{
	char dest[] = "/tmp/hookd-install-XXXXXX", cmd[2048], *out = NULL, *build;
	struct hd_resp r;

	cr_assert(access("Makefile", R_OK) == 0 && access("plugins/echo.c", R_OK) == 0,
		  "run the suite from the repository's root");
	build = getenv("HOOKD_BUILD") ? getenv("HOOKD_BUILD") : "build";
	cr_assert_not_null(mkdtemp(dest));
	snprintf(cmd, sizeof(cmd), "make -s install DESTDIR=%s PREFIX=/usr BUILD=%s 2>&1", dest,
		 build);
	cr_assert_eq(sh(cmd, &out), 0, "%s:\n%s", cmd, out);
	free(out);
	for (size_t i = 0; FILES[i]; i++)
		cr_assert(exists(dest, FILES[i]), "make install did not install %s", FILES[i]);

	/* the .pc file, relocated into DESTDIR, is all a plugin needs */
	snprintf(cmd, sizeof(cmd), "PKG_CONFIG_PATH=%s/usr/share/pkgconfig pkg-config "
		 "--define-prefix --cflags --libs hookd", dest);
	cr_assert_eq(sh(cmd, &out), 0, "%s", cmd);
	out[strcspn(out, "\n")] = 0;
	cr_log_info("pkg-config: %s", out);
	char want[300];
	snprintf(want, sizeof(want), "-I%s/usr/include", dest);
	cr_assert(strstr(out, want), "cflags do not point into the install: %s", out);
	cr_assert(strstr(out, "-lcjson"), "Requires: libcjson is missing: %s", out);

	hd_prepare(&D, "", NULL);
	/* no -Isdk: hookd.h can only come from the installed tree */
	snprintf(cmd, sizeof(cmd), "cc -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -shared "
		 "-Wl,--no-undefined %s -o %s/echo.tmp plugins/echo.c 2>&1 && mv %s/echo.tmp "
		 "%s/echo.so", out, D.plugin_dir, D.plugin_dir, D.plugin_dir);
	free(out);
	cr_assert_eq(sh(cmd, &out), 0, "%s:\n%s", cmd, out);
	free(out);
	hd_launch_or_fail(&D);
	hd_post(&D, "/hooks/echo", "{\"built\":\"from hookd.pc\"}", &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "from hookd.pc"), "%s", r.body);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&D), 0);

	/* the installed binary runs, and the man page renders without a warning */
	snprintf(cmd, sizeof(cmd), "%s/usr/bin/hookd -V", dest);
	cr_assert_eq(sh(cmd, &out), 0);
	cr_assert(strstr(out, "hookd "), "%s", out);
	free(out);
	snprintf(cmd, sizeof(cmd), "groff -man -Tutf8 -ww %s/usr/share/man/man8/hookd.8 2>&1 "
		 ">/dev/null", dest);
	cr_assert_eq(sh(cmd, &out), 0, "%s", out);
	cr_assert_str_empty(out, "groff warnings: %s", out);
	free(out);

	snprintf(cmd, sizeof(cmd), "make -s uninstall DESTDIR=%s PREFIX=/usr BUILD=%s 2>&1", dest,
		 build);
	cr_assert_eq(sh(cmd, &out), 0, "%s:\n%s", cmd, out);
	free(out);
	for (size_t i = 0; FILES[i]; i++)
		cr_assert_not(exists(dest, FILES[i]), "make uninstall left %s", FILES[i]);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dest);
	sh(cmd, NULL);
}

/* systemd-analyze rates the unit without a running systemd: at most 3.5
 * ("OK"); the exit status is what --threshold (in tenths) decides. */
Test(install, the_systemd_unit_is_rated_at_most_3_5_by_systemd_analyze, .timeout = 60)
{
	char *out = NULL;
	int rc = sh("systemd-analyze security --offline=true --threshold=35 etc/hookd.service "
		    "2>&1", &out);
	const char *line = strstr(out, "Overall exposure level");

	cr_assert_not_null(line, "no rating (is systemd-analyze installed?):\n%s", out);
	cr_log_info("%.*s", (int)strcspn(line, "\n"), line);
	cr_assert_eq(rc, 0, "exposure above 3.5:\n%s", out);
	double level = 99;
	cr_assert_eq(sscanf(line, "Overall exposure level for hookd.service: %lf", &level), 1);
	cr_assert_leq(level, 3.5);
	free(out);
	/* and the unit is what the features below it need */
	char *unit = hd_read_file("etc/hookd.service", NULL);
	cr_assert_not_null(unit);
	cr_assert(strstr(unit, "\nType=notify\n"), "not Type=notify");
	cr_assert(strstr(unit, "\nNotifyAccess=main\n"));
	cr_assert(strstr(unit, "\nWatchdogSec="));
	cr_assert(strstr(unit, "\nExecReload=/usr/local/bin/hookd -s reload -c "));
	/* a stop outlasts the example config's drain plus the 2 s of flush */
	char *cfg = hd_read_file("etc/hookd.json", NULL), *p;
	unsigned stop_s = 0, drain_ms = 0;
	cr_assert_not_null(cfg);
	cr_assert((p = strstr(unit, "\nTimeoutStopSec=")) &&
		  sscanf(p, "\nTimeoutStopSec=%u", &stop_s) == 1);
	cr_assert((p = strstr(cfg, "\"drain_ms\":")) &&
		  sscanf(p, "\"drain_ms\": %u", &drain_ms) == 1);
	cr_assert_gt(stop_s * 1000, drain_ms + 2000, "TimeoutStopSec=%u, drain_ms %u", stop_s,
		     drain_ms);
	free(cfg);
	free(unit);
}
