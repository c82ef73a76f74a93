/*
 * hookd -l/--listen (what `make run PORT=9090` uses): the command line's
 * address replaces the file's "listen", a bare port keeps the file's host,
 * and a reload keeps the command line's address without a "listen changed"
 * warning.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(listen, .fini = hd_suite_teardown);

/* A config whose "listen" cannot be bound here (TEST-NET-3 is no local
 * address): the daemon only starts if -l replaces it. */
#define UNBINDABLE "203.0.113.1:9"

static void write_unbindable_config(struct hd *d)
{
	FILE *f = fopen(d->config, "w");

	cr_assert_not_null(f);
	fprintf(f, "{\"listen\": \"%s\", \"plugin_dir\": \"plugins\", \"runtime_dir\": \"%s/run\"}\n",
		UNBINDABLE, d->dir);
	fclose(f);
}

Test(listen, dash_l_replaces_the_files_address_and_survives_a_reload, .timeout = 60)
{
	static struct hd d;
	struct hd_resp r;

	hd_prepare(&d, "", (const char *const[]){"echo", NULL});
	write_unbindable_config(&d);
	/* without -l: the file's address, which fails */
	cr_assert_not(hd_launch(&d, 10000), "the daemon bound " UNBINDABLE);
	cr_assert_neq(d.exit_status, 0);
	cr_assert_geq(hd_log_count(&d, "203.0.113.1"), 1, "the failure names the address");

	d.stopped = false;
	cr_assert(hd_launch_args(&d, 10000, (const char *const[]){"-l", "127.0.0.1:0", NULL}),
		  "-l 127.0.0.1:0 did not start the daemon");
	hd_post(&d, "/hooks/echo", "{\"via\":\"-l\"}", &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(r.body, "{\"via\":\"-l\"}\n");
	hd_resp_free(&r);

	/* a reload re-reads the file: the command line still wins, silently */
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 2, 5000));
	cr_assert_eq(hd_log_count(&d, "listen/reactors changed"), 0,
		     "a reload warns about a listen change that never happened");
	hd_post(&d, "/hooks/echo", "{}", &r);
	cr_assert_eq(r.status, 200);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

static int run(const char *const *args, char **out, char **err)
{
	int rc = hd_run_hookd(args, out, err);

	cr_log_info("hookd exit %d\nstdout: %s\nstderr: %s", rc, *out, *err);
	return rc;
}

Test(listen, a_bare_port_keeps_the_files_host_and_bad_values_are_refused, .timeout = 30)
{
	static struct hd d;
	char *out, *err;

	/* with echo: -t also loads the folder, and an empty one is an error */
	hd_prepare(&d, "", (const char *const[]){"echo", NULL});
	write_unbindable_config(&d);
	cr_assert_eq(run((const char *const[]){"-t", "-c", d.config, "-l", "9090", NULL}, &out,
			 &err), 0);
	cr_assert(strstr(out, "listen 203.0.113.1:9090,"), "%s", out);
	free(out);
	free(err);
	cr_assert_eq(run((const char *const[]){"-t", "-c", d.config, "--listen", "[::1]:7", NULL},
			 &out, &err), 0);
	cr_assert(strstr(out, "listen [::1]:7,"), "%s", out);
	free(out);
	free(err);
	cr_assert_eq(run((const char *const[]){"-t", "--listen=0.0.0.0:80", "-c", d.config, NULL},
			 &out, &err), 0);
	cr_assert(strstr(out, "listen 0.0.0.0:80,"), "%s", out);
	free(out);
	free(err);

	static const char *const bad[] = {"nowhere", "70000", "host:", "::1:80", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(run((const char *const[]){"-t", "-c", d.config, "-l", bad[i], NULL},
				 &out, &err), 1, "-l \"%s\" accepted", bad[i]);
		cr_assert(strstr(err, "--listen"), "-l \"%s\": %s", bad[i], err);
		free(out);
		free(err);
		/* the daemon itself refuses it the same way, before binding */
		cr_assert_eq(run((const char *const[]){"-c", d.config, "-l", bad[i], NULL}, &out,
				 &err), 1);
		cr_assert(strstr(err, "--listen"), "-l \"%s\": %s", bad[i], err);
		free(out);
		free(err);
	}
	/* -h documents it */
	cr_assert_eq(run((const char *const[]){"-h", NULL}, &out, &err), 0);
	cr_assert(strstr(out, "--listen"), "%s", out);
	free(out);
	free(err);
	hd_kill(&d);
	d.dir[0] = '\0'; /* cleaned up: nothing for the teardown */
}
