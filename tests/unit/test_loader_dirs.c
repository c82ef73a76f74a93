/*
 * The loader's private folder: what a run that died without cleaning up
 * left behind is removed at the next start, and a folder removed under a
 * running daemon is made again before the next load.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

TestSuite(loader_dirs, .init = setup, .fini = teardown, .timeout = 30);

/* A pid that runs no process right now. */
static long dead_pid(void)
{
	for (long pid = 4000000; pid > 1000; pid -= 7919)
		if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
			return pid;
	cr_assert_fail("no free pid found");
	return -1;
}

Test(loader_dirs, copies_left_by_a_dead_run_are_removed_at_start_and_live_ones_kept)
{
	char parent[400], stale[500], copy[600], live[500], other[500], err[256];
	struct loader *ld = NULL;

	snprintf(parent, sizeof(parent), "%s/parent", E.dir);
	cr_assert_eq(mkdir(parent, 0700), 0);
	snprintf(stale, sizeof(stale), "%s/hookd-%ld-AbC123", parent, dead_pid());
	cr_assert_eq(mkdir(stale, 0700), 0);
	snprintf(copy, sizeof(copy), "%s/1-echo.so", stale);
	u_write_file(copy, "a copy a crashed run left\n");
	/* this very process is alive: its folder stays; so does anything else */
	snprintf(live, sizeof(live), "%s/hookd-%ld-XyZ789", parent, (long)getpid());
	cr_assert_eq(mkdir(live, 0700), 0);
	snprintf(other, sizeof(other), "%s/hookd-notapid", parent);
	cr_assert_eq(mkdir(other, 0700), 0);

	cr_assert_eq(loader_create(parent, &E.log, dispatch_host_api(), &ld, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(access(stale, F_OK), -1, "the dead run's folder is still there");
	cr_assert_eq(access(live, F_OK), 0);
	cr_assert_eq(access(other, F_OK), 0);
	char *log = u_read_file(E.logpath, NULL);
	cr_assert(strstr(log, "private plugin copies of a run (pid ") &&
		  strstr(log, "that ended without cleaning up"), "%s", log);
	free(log);
	/* parent: the new loader's folder, the live one and the other one */
	cr_assert_eq(u_count_entries(parent), 3);
	loader_destroy(ld);
}

Test(loader_dirs, a_private_folder_removed_while_running_is_made_again)
{
	struct config *cfg;
	struct loader_result r;
	char *log;

	u_env_install(&E, "plugins/echo.so", "echo.so");
	u_rmtree(loader_dir(E.ld));
	cr_assert_eq(access(loader_dir(E.ld), F_OK), -1);
	cfg = u_env_config(&E, "");
	u_env_scan(&E, cfg, NULL, 1, &r);
	cr_assert_eq(r.nplugins, 1, "echo did not load: %s",
		     r.nrejects ? r.rejects[0].reason : "?");
	cr_assert_eq(r.nrejects, 0);
	cr_assert_eq(access(loader_dir(E.ld), F_OK), 0);
	log = u_read_file(E.logpath, NULL);
	cr_assert(strstr(log, "had been removed: made it again"), "%s", log);
	free(log);
	loader_result_free(&r);
	config_free(cfg);
}
