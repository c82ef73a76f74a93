/*
 * dispatch's step records (what the access log prints): every step that
 * started, in order, with its plugin, its outcome and a duration, handed
 * to the done callback; a step the call's end overtook (deadline) ends
 * with the call's outcome; a skipped (failure_mode open) step says so; a
 * chain longer than DISPATCH_STEP_RECS counts the rest.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../../host/dispatch.h"
#include "unit_dispatch.h"

static struct ud D;

static void teardown(void)
{
	ud_fini(&D);
}

TestSuite(dispatch_steps, .fini = teardown, .timeout = 60);

#define LABELS "'plugins': {'tag': {'label': 'S'}, 'tag_async': {'label': 'A'}},"

Test(dispatch_steps, a_chain_records_every_step_in_order)
{
	struct ud_call c;

	ud_init(&D, 2, 8);
	ud_install(&D, "plugins/tag.so", "tag.so");
	ud_install(&D, "plugins/tag_async.so", "tag_async.so");
	ud_install(&D, "plugins/echo.so", "echo.so");
	ud_install(&D, "plugins/fail.so", "fail.so");
	ud_load(&D, LABELS "'hooks': {'s': {'chain': ['tag', 'tag_async', 'echo']},"
		"'f': {'chain': ['tag', 'fail', 'echo']}},", 1);
	ud_start(&D, "s", "{'trace': []}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK);
	cr_assert_str_eq(c.steps, "tag:ok,tag_async:ok,echo:ok");
	cr_assert_eq(c.nsteps, 3);
	cr_assert_eq(c.steps_more, 0);
	cr_assert(c.steps_timed);
	ud_call_clear(&c);

	/* the failing step is the last one recorded: the rest never started */
	ud_start(&D, "f", "{'status': 503}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_STEP_FAILED);
	cr_assert_str_eq(c.steps, "tag:ok,fail:step_failed");
	cr_assert(c.steps_timed);
	ud_call_clear(&c);

	/* no step ran: no records */
	ud_start(&D, "nope", "{}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_NO_HOOK);
	cr_assert_eq(c.nsteps, 0);
	cr_assert_str_eq(c.steps, "");
	ud_call_clear(&c);
	ud_wait_idle(&D);
	ud_end(&D);
}

Test(dispatch_steps, a_skipped_step_and_a_long_chain)
{
	struct ud_call c;
	char members[1024];

	ud_init(&D, 2, 8);
	ud_install(&D, "plugins/tag.so", "tag.so");
	ud_install(&D, "plugins/fail.so", "fail.so");
	snprintf(members, sizeof(members),
		 "'plugins': {'tag': {'label': 'S'}, 'fail': {'failure_mode': 'open'}},"
		 "'hooks': {'o': {'chain': ['fail', 'tag']},"
		 "'l': {'chain': ['tag','tag','tag','tag','tag','tag','tag','tag','tag','tag']}},");
	ud_load(&D, members, 1);
	ud_start(&D, "o", "{'status': 500, 'trace': []}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK, "%s", c.error);
	cr_assert_str_eq(c.steps, "fail:step_failed:skipped,tag:ok");
	ud_call_clear(&c);

	ud_start(&D, "l", "{'trace': []}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK);
	cr_assert_eq(c.nsteps, DISPATCH_STEP_RECS);
	cr_assert_eq(c.steps_more, 10 - DISPATCH_STEP_RECS);
	ud_call_clear(&c);
	ud_wait_idle(&D);
	ud_end(&D);
}

Test(dispatch_steps, a_step_overtaken_by_the_deadline_ends_with_it)
{
	struct ud_call c;
	char mark[512], members[1024];

	ud_init(&D, 2, 8);
	ud_install(&D, "fixtures/u_probe.so", "u_probe.so");
	ud_path(&D, mark, sizeof(mark), "mark");
	snprintf(members, sizeof(members),
		 "'plugins': {'u_probe': {'mark': '%s'}}, 'hooks': {'u_probe': {'timeout_ms': 300}},",
		 mark);
	ud_load(&D, members, 1);
	ud_start(&D, "u_probe", "{'until_cancelled': true}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_DEADLINE, "%s", dispatch_outcome_name(c.outcome));
	cr_assert_str_eq(c.steps, "u_probe:deadline");
	cr_assert(c.steps_timed);
	ud_call_clear(&c);
	ud_wait_idle(&D);
	ud_end(&D);
}
