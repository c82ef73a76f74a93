/*
 * dispatch's phases, in-process (unit_dispatch.h): when the chain fails,
 * the hook's on_error steps run in order with {"error", "input"}; the
 * first that returns anything but null replaces the answer (DISPATCH_OK,
 * recovered, its reply settings), a null or a failure passes on to the
 * next, and when none replaces it (or their deadline, after_timeout_ms,
 * passes) the client gets the chain's own error. Once the done callback
 * has answered, the `after` observers get a summary whose status is what
 * the callback says it sent (res->sent_status); they cannot shape the
 * reply, and their failures and deadline change nothing of it.
 *
 * Fixtures: recover (on_error: a 5xx becomes 202 + X-Recovered-From, a
 * 4xx is left alone), observe (writes one JSON line per call to a file;
 * "fail": fails after writing; "gate": waits for a file until cancelled).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../host/dispatch.h"
#include "unit_dispatch.h"

static struct ud D;

static void teardown(void)
{
	ud_fini(&D);
}

TestSuite(dispatch_phases, .fini = teardown, .timeout = 60);

/* ---- the observe fixture's file ---------------------------------------- */

struct lines {
	const char *path;
	size_t want;
};

static size_t count_lines(const char *path)
{
	char *s = u_read_file(path, NULL);
	size_t n = s ? u_count_str(s, "\n") : 0;

	free(s);
	return n;
}

static bool has_lines(void *arg)
{
	struct lines *l = arg;

	return count_lines(l->path) >= l->want;
}

/* Line `i` (0-based) of the observe file, parsed (caller deletes). */
static cJSON *observed(const char *path, size_t i)
{
	char *s = u_read_file(path, NULL), *line;
	cJSON *o;

	cr_assert_not_null(s, "%s was not written", path);
	line = s;
	for (size_t k = 0; k < i; k++) {
		line = strchr(line, '\n');
		cr_assert_not_null(line, "%s has fewer than %zu lines", path, i + 1);
		line++;
	}
	o = cJSON_ParseWithOpts(line, NULL, 0);
	cr_assert_not_null(o, "line %zu of %s is not JSON: %s", i, path, line);
	free(s);
	return o;
}

/* o's member path (a JSON pointer). */
static const cJSON *at(const cJSON *o, const char *ptr)
{
	const cJSON *v = json_pointer_get(o, ptr);

	cr_assert_not_null(v, "no %s in %s", ptr, cJSON_PrintUnformatted(o));
	return v;
}

static double num_at(const cJSON *o, const char *ptr)
{
	const cJSON *v = at(o, ptr);

	cr_assert(cJSON_IsNumber(v), "%s is not a number", ptr);
	return v->valuedouble;
}

static const char *str_at(const cJSON *o, const char *ptr)
{
	const cJSON *v = at(o, ptr);

	cr_assert(cJSON_IsString(v), "%s is not a string", ptr);
	return v->valuestring;
}

/* ---- on_error ----------------------------------------------------------- */

Test(dispatch_phases, on_error_replaces_a_failure)
{
	struct ud_call c;

	ud_init(&D, 2, 8);
	ud_install(&D, "plugins/fail.so", "fail.so");
	ud_install(&D, "fixtures/recover.so", "recover.so");
	ud_load(&D, "'hooks': {'h': {'chain': ['fail'], 'on_error': ['recover']}},", 1);
	ud_start(&D, "h", "{'status': 503, 'message': 'down', 'k': 'v'}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK, "%s: %s", dispatch_outcome_name(c.outcome), c.error);
	cr_assert(c.recovered);
	cr_assert(c.has_reply);
	cr_assert_eq(c.reply_status, 202, "the on_error step's set_status");
	cr_assert_str_eq(c.reply_headers, "X-Recovered-From: fail\n");
	cr_assert_str_eq(c.plugin, "recover", "the plugin that produced the output");
	cr_assert_eq(c.step, 0);
	/* the handler saw the error and the chain's input */
	cr_assert(cJSON_IsTrue(at(c.output, "/queued")));
	cr_assert_eq(num_at(c.output, "/error/status"), 503);
	cr_assert_str_eq(str_at(c.output, "/error/message"), "down");
	cr_assert_str_eq(str_at(c.output, "/error/plugin"), "fail");
	cr_assert_str_eq(str_at(c.output, "/error/outcome"), "step_failed");
	cr_assert_eq(num_at(c.output, "/error/step"), 0);
	cr_assert_str_eq(str_at(c.output, "/input/k"), "v");
	/* the steps recorded are the chain's, then the handler's */
	cr_assert_str_eq(c.steps, "fail:step_failed,recover:ok");
	ud_call_clear(&c);
	ud_wait_idle(&D);
	/* one call of the transport, answered once: the phase is part of it */
	cr_assert_eq(ud_stats(&D).started, 1);
	cr_assert_eq(ud_stats(&D).answered_ok, 1);
	cr_assert_eq(ud_stats(&D).answered_err, 0);
	ud_end(&D);
}

Test(dispatch_phases, on_error_returning_null_leaves_the_error)
{
	struct ud_call c;

	ud_init(&D, 2, 8);
	ud_install(&D, "plugins/fail.so", "fail.so");
	ud_install(&D, "fixtures/recover.so", "recover.so");
	ud_load(&D, "'hooks': {'h': {'chain': ['fail'], 'on_error': ['recover']}},", 1);
	/* recover leaves a 4xx alone (returns null) */
	ud_start(&D, "h", "{'status': 422, 'message': 'bad payload'}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_STEP_FAILED, "%s", dispatch_outcome_name(c.outcome));
	cr_assert_eq(c.plugin_status, 422);
	cr_assert_str_eq(c.error, "bad payload");
	cr_assert_str_eq(c.plugin, "fail", "the chain's failing plugin, not the handler");
	cr_assert_eq(c.step, 0);
	cr_assert(!c.recovered);
	cr_assert(!c.has_reply, "an error carries no reply settings");
	cr_assert_null(c.output);
	ud_call_clear(&c);
	ud_wait_idle(&D);
	cr_assert_eq(ud_stats(&D).started, 1);
	cr_assert_eq(ud_stats(&D).answered_err, 1);
	cr_assert_eq(ud_stats(&D).answered_ok, 0);
	ud_end(&D);
}

Test(dispatch_phases, a_failing_on_error_step_passes_on_to_the_next)
{
	struct ud_call c;
	char file[512], members[1024];
	cJSON *line;

	ud_init(&D, 2, 8);
	ud_install(&D, "plugins/fail.so", "fail.so");
	ud_install(&D, "plugins/tag.so", "tag.so");
	ud_install(&D, "fixtures/recover.so", "recover.so");
	ud_install(&D, "fixtures/observe.so", "observe.so");
	ud_path(&D, file, sizeof(file), "observed");
	snprintf(members, sizeof(members),
		 "'plugins': {'observe': {'file': '%s', 'fail': true}, 'tag': {'label': 'T'}},"
		 "'hooks': {'h': {'chain': ['tag', 'fail'], 'on_error': ['observe', 'recover']}},",
		 file);
	ud_load(&D, members, 1);
	ud_start(&D, "h", "{'status': 500, 'trace': []}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK, "%s: %s", dispatch_outcome_name(c.outcome), c.error);
	cr_assert(c.recovered);
	/* observe set 201 before it failed: a failed step's settings are dropped */
	cr_assert_eq(c.reply_status, 202);
	cr_assert_str_eq(c.reply_headers, "X-Recovered-From: fail\n");
	cr_assert_str_eq(c.plugin, "recover");
	cr_assert_eq(c.step, 1, "recover is the second on_error step");
	cr_assert_str_eq(str_at(c.output, "/error/plugin"), "fail");
	cr_assert_eq(num_at(c.output, "/error/step"), 1, "fail was the chain's second step");
	cr_assert_str_eq(c.steps, "tag:ok,fail:step_failed,observe:step_failed,recover:ok");
	ud_call_clear(&c);
	/* the failing handler ran first, with the error and the chain's input */
	cr_assert_eq(count_lines(file), 1);
	line = observed(file, 0);
	cr_assert_eq(num_at(line, "/input/error/status"), 500);
	cr_assert_str_eq(str_at(line, "/input/error/plugin"), "fail");
	cr_assert(cJSON_IsArray(at(line, "/input/input/trace")));
	cr_assert_eq(cJSON_GetArraySize(at(line, "/input/input/trace")), 0,
		     "the chain's original input, not tag's output");
	cr_assert_eq(num_at(line, "/rc_set_status"), HOOKD_OK, "on_error steps may set the reply");
	cJSON_Delete(line);
	ud_wait_idle(&D);
	cr_assert_geq(ud_log_count(&D, "on_error plugin observe"), 1, "its failure is logged");
	ud_end(&D);
}

Test(dispatch_phases, on_error_also_handles_the_chain_deadline)
{
	struct ud_call c;
	char mark[512], members[1024];

	ud_init(&D, 2, 8);
	ud_install(&D, "fixtures/u_probe.so", "u_probe.so");
	ud_install(&D, "fixtures/recover.so", "recover.so");
	ud_path(&D, mark, sizeof(mark), "mark");
	snprintf(members, sizeof(members),
		 "'plugins': {'u_probe': {'mark': '%s'}}, "
		 "'hooks': {'u_probe': {'timeout_ms': 200, 'on_error': ['recover']}},",
		 mark);
	ud_load(&D, members, 1);
	ud_start(&D, "u_probe", "{'until_cancelled': true}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK, "%s: %s", dispatch_outcome_name(c.outcome), c.error);
	cr_assert(c.recovered);
	cr_assert_eq(c.reply_status, 202);
	cr_assert_str_eq(c.reply_headers, "X-Recovered-From: u_probe\n");
	cr_assert_eq(num_at(c.output, "/error/status"), 504);
	cr_assert_str_eq(str_at(c.output, "/error/outcome"), "deadline");
	ud_call_clear(&c);
	ud_wait_idle(&D);
	ud_end(&D);
}

Test(dispatch_phases, the_on_error_deadline_answers_the_original_error)
{
	struct ud_call c;
	char file[512], gate[512], members[2048];

	ud_init(&D, 2, 8);
	ud_install(&D, "plugins/fail.so", "fail.so");
	ud_install(&D, "fixtures/recover.so", "recover.so");
	ud_install(&D, "fixtures/observe.so", "observe.so");
	ud_path(&D, file, sizeof(file), "observed");
	ud_path(&D, gate, sizeof(gate), "gate-never-created");
	snprintf(members, sizeof(members),
		 "'plugins': {'observe': {'file': '%s', 'gate': '%s'}},"
		 "'hooks': {'h': {'chain': ['fail'], 'on_error': ['observe', 'recover'], "
		 "'after_timeout_ms': 200}},",
		 file, gate);
	ud_load(&D, members, 1);
	ud_start(&D, "h", "{'status': 503, 'message': 'upstream down'}", &c);
	ud_wait(&c);
	/* observe holds the phase until its deadline: recover never runs */
	cr_assert_eq(c.outcome, DISPATCH_STEP_FAILED, "%s", dispatch_outcome_name(c.outcome));
	cr_assert_eq(c.plugin_status, 503);
	cr_assert_str_eq(c.error, "upstream down");
	cr_assert_str_eq(c.plugin, "fail");
	cr_assert(!c.recovered);
	cr_assert(!c.has_reply);
	ud_call_clear(&c);
	ud_wait_idle(&D);
	cr_assert_eq(count_lines(file), 0, "observe was cancelled before its gate opened");
	cr_assert_geq(ud_log_count(&D, "the on_error steps' deadline of 200 ms passed in plugin "
				       "observe; answering with the chain's error"), 1);
	ud_end(&D);
}

Test(dispatch_phases, without_on_error_a_failure_is_answered_as_it_is)
{
	struct ud_call c;

	ud_init(&D, 2, 8);
	ud_install(&D, "plugins/fail.so", "fail.so");
	ud_install(&D, "fixtures/recover.so", "recover.so");
	ud_load(&D, "'hooks': {'h': {'chain': ['fail']}},", 1);
	ud_start(&D, "h", "{'status': 503}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_STEP_FAILED);
	cr_assert_eq(c.plugin_status, 503);
	cr_assert(!c.recovered);
	ud_call_clear(&c);
	ud_wait_idle(&D);
	ud_end(&D);
}

/* ---- after -------------------------------------------------------------- */

Test(dispatch_phases, after_observers_get_the_summary_of_a_success)
{
	struct ud_call c;
	char file[512], members[1024];
	struct lines l;
	cJSON *line;

	ud_init(&D, 2, 8);
	ud_install(&D, "plugins/echo.so", "echo.so");
	ud_install(&D, "fixtures/observe.so", "observe.so");
	ud_path(&D, file, sizeof(file), "observed");
	snprintf(members, sizeof(members),
		 "'plugins': {'observe': {'file': '%s'}},"
		 "'hooks': {'h': {'chain': ['echo'], 'after': ['observe', 'observe']}},",
		 file);
	ud_load(&D, members, 1);
	D.sent_status = 207; /* what the transport says it sent: the summary carries it */
	ud_start(&D, "h", "{'n': 1}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK);
	cr_assert(!c.recovered);
	cr_assert_eq(c.reply_status, 0, "the observer's set_status never reaches the reply");
	cr_assert_eq(ud_out_num(&c, "n", NULL), 1);
	ud_call_clear(&c);
	l = (struct lines){file, 2};
	cr_assert(ud_run_until(&D, has_lines, &l), "the observers did not both run");
	ud_wait_idle(&D);
	cr_assert_eq(count_lines(file), 2, "each observer once");
	cr_assert_eq(ud_stats(&D).started, 1);
	cr_assert_eq(ud_stats(&D).answered_ok, 1);
	for (size_t i = 0; i < 2; i++) {
		line = observed(file, i);
		cr_assert_str_eq(str_at(line, "/input/hook"), "h");
		cr_assert_eq(num_at(line, "/input/status"), 207, "res->sent_status");
		cr_assert_str_eq(str_at(line, "/input/outcome"), "ok");
		cr_assert(cJSON_IsFalse(at(line, "/input/recovered")));
		cr_assert_eq(num_at(line, "/input/generation"), 1);
		cr_assert_eq(num_at(line, "/input/input/n"), 1);
		cr_assert_eq(num_at(line, "/input/output/n"), 1);
		cr_assert_null(json_pointer_get(line, "/input/error"));
		cr_assert_str_eq(str_at(line, "/input/steps/0/plugin"), "echo");
		cr_assert_str_eq(str_at(line, "/input/steps/0/outcome"), "ok");
		cr_assert_geq(num_at(line, "/input/steps/0/ms"), 0);
		cr_assert_geq(num_at(line, "/input/duration_ms"), 0);
		cr_assert_eq(num_at(line, "/rc_set_status"), HOOKD_EPERM,
			     "an observer cannot shape a reply already sent");
		cJSON_Delete(line);
	}
	ud_end(&D);
}

Test(dispatch_phases, after_observers_get_the_error_and_the_recovery)
{
	struct ud_call c;
	char file[512], members[1024];
	struct lines l;
	cJSON *line;

	ud_init(&D, 2, 8);
	ud_install(&D, "plugins/fail.so", "fail.so");
	ud_install(&D, "fixtures/recover.so", "recover.so");
	ud_install(&D, "fixtures/observe.so", "observe.so");
	ud_path(&D, file, sizeof(file), "observed");
	snprintf(members, sizeof(members),
		 "'plugins': {'observe': {'file': '%s'}},"
		 "'hooks': {'plain': {'chain': ['fail'], 'after': ['observe']},"
		 "'rec': {'chain': ['fail'], 'on_error': ['recover'], 'after': ['observe']}},",
		 file);
	ud_load(&D, members, 1);

	/* a failure: the summary has the error, no output */
	ud_start(&D, "plain", "{'status': 418, 'message': 'teapot'}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_STEP_FAILED);
	ud_call_clear(&c);
	l = (struct lines){file, 1};
	cr_assert(ud_run_until(&D, has_lines, &l));
	ud_wait_idle(&D);
	line = observed(file, 0);
	cr_assert_eq(num_at(line, "/input/status"), 418, "dispatch_result_status of the error");
	cr_assert_str_eq(str_at(line, "/input/outcome"), "step_failed");
	cr_assert_eq(num_at(line, "/input/error/status"), 418);
	cr_assert_str_eq(str_at(line, "/input/error/message"), "teapot");
	cr_assert_str_eq(str_at(line, "/input/error/plugin"), "fail");
	cr_assert_null(json_pointer_get(line, "/input/output"));
	cr_assert_str_eq(str_at(line, "/input/steps/0/outcome"), "step_failed");
	cJSON_Delete(line);

	/* a recovered failure: ok, recovered, the handler's status */
	ud_start(&D, "rec", "{'status': 500}", &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK);
	cr_assert(c.recovered);
	ud_call_clear(&c);
	l = (struct lines){file, 2};
	cr_assert(ud_run_until(&D, has_lines, &l));
	ud_wait_idle(&D);
	line = observed(file, 1);
	cr_assert_eq(num_at(line, "/input/status"), 202);
	cr_assert_str_eq(str_at(line, "/input/outcome"), "ok");
	cr_assert(cJSON_IsTrue(at(line, "/input/recovered")));
	cr_assert(cJSON_IsTrue(at(line, "/input/output/queued")));
	cr_assert_eq(num_at(line, "/input/input/status"), 500, "the chain's original input");
	cr_assert_str_eq(str_at(line, "/input/steps/0/plugin"), "fail");
	cr_assert_str_eq(str_at(line, "/input/steps/1/plugin"), "recover");
	cJSON_Delete(line);
	ud_end(&D);
}

Test(dispatch_phases, a_held_or_failing_observer_changes_nothing_of_the_answer)
{
	struct ud_call c;
	char file[512], gate[512], members[2048];

	ud_init(&D, 2, 8);
	ud_install(&D, "plugins/echo.so", "echo.so");
	ud_install(&D, "fixtures/observe.so", "observe.so");
	ud_path(&D, file, sizeof(file), "observed");
	ud_path(&D, gate, sizeof(gate), "gate-never-created");
	snprintf(members, sizeof(members),
		 "'plugins': {'observe': {'file': '%s', 'gate': '%s', 'fail': true}},"
		 "'hooks': {'h': {'chain': ['echo'], 'after': ['observe'], "
		 "'after_timeout_ms': 200}},",
		 file, gate);
	ud_load(&D, members, 1);
	ud_start(&D, "h", "{'n': 2}", &c);
	ud_wait(&c);
	/* answered while the observer still waits for its gate */
	cr_assert_eq(c.outcome, DISPATCH_OK);
	cr_assert_eq(ud_out_num(&c, "n", NULL), 2);
	cr_assert_eq(ud_stats(&D).answered_ok, 1);
	ud_call_clear(&c);
	ud_wait_idle(&D);
	cr_assert_eq(count_lines(file), 0, "cancelled at its deadline, before writing");
	cr_assert_geq(ud_log_count(&D, "the after steps' deadline of 200 ms passed in plugin "
				       "observe; the rest did not run"), 1);
	/* the observer's own end is not a second answer */
	cr_assert_eq(c.ndone, 1);
	cr_assert_eq(ud_stats(&D).started, 1, "an after phase is not counted as a call");
	cr_assert_eq(ud_stats(&D).answered_ok, 1, "an after phase is not counted as a call");
	cr_assert_eq(ud_stats(&D).answered_err, 0);
	ud_end(&D);
}

/* ---- the request, through every phase; sync and async steps mixed -------- */

/* A request with these headers (name, value pairs, NULL-terminated). */
static struct inbound *request(const char *rid, const char *const *hv)
{
	hookd_header hs[8];
	size_t n = 0;
	struct inbound *in;

	for (; hv[2 * n]; n++) {
		cr_assert_lt(n, 8);
		hs[n] = (hookd_header){hv[2 * n], hv[2 * n + 1]};
	}
	in = inbound_new(&(struct inbound_parts){.hook = "h", .method = "POST", .path = "/hooks/h",
						  .client_addr = "127.0.0.1", .client_port = 4242,
						  .request_id = rid, .body = "{}", .body_len = 2,
						  .content_type = "application/json",
						  .headers = hs, .nheaders = n});
	cr_assert_not_null(in);
	return in;
}

Test(dispatch_phases, an_async_on_error_step_after_a_null_one_replaces_with_its_reply)
{
	static const char *const hv[] = {"X-Reply-Status", "299", "X-Reply-Header",
					 "X-From: async", NULL};
	struct ud_call c;

	ud_init(&D, 2, 8);
	ud_install(&D, "plugins/fail.so", "fail.so");
	ud_install(&D, "fixtures/recover.so", "recover.so");
	ud_install(&D, "fixtures/webreq_async.so", "webreq_async.so");
	ud_load(&D, "'hooks': {'h': {'chain': ['fail'], "
		"'on_error': ['recover', 'webreq_async']}},", 1);
	/* a 4xx: recover (sync) returns null, webreq_async (async) replaces */
	ud_start_in(&D, "h", "{'status': 409, 'message': 'conflict'}", request("rid-1", hv), &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK, "%s: %s", dispatch_outcome_name(c.outcome), c.error);
	cr_assert(c.recovered);
	cr_assert_eq(c.reply_status, 299);
	cr_assert_str_eq(c.reply_headers, "X-From: async\n");
	cr_assert_str_eq(c.plugin, "webreq_async");
	cr_assert_eq(c.step, 1);
	cr_assert_str_eq(str_at(c.output, "/request_id"), "rid-1", "the request reaches on_error");
	cr_assert_eq(num_at(c.output, "/input/error/status"), 409);
	cr_assert_eq(num_at(c.output, "/rc_status"), HOOKD_OK);
	cr_assert_eq(num_at(c.output, "/rc_header"), HOOKD_OK);
	cr_assert_str_eq(c.steps, "fail:step_failed,recover:ok,webreq_async:ok");
	ud_call_clear(&c);
	ud_wait_idle(&D);
	ud_end(&D);
}

Test(dispatch_phases, the_request_reaches_chain_steps_and_the_after_summary)
{
	static const char *const hv[] = {"X-Reply-Status", "203", "X-Reply-Header",
					 "Content-Length: 5", "x-test", "seen", NULL};
	struct ud_call c;
	char file[512], members[1024];
	struct lines l;
	cJSON *line;

	ud_init(&D, 2, 8);
	ud_install(&D, "fixtures/webreq.so", "webreq.so");
	ud_install(&D, "fixtures/webreq_async.so", "webreq_async.so");
	ud_install(&D, "fixtures/observe.so", "observe.so");
	ud_path(&D, file, sizeof(file), "observed");
	snprintf(members, sizeof(members),
		 "'plugins': {'observe': {'file': '%s'}},"
		 "'hooks': {'h': {'chain': ['webreq', 'webreq_async'], 'after': ['observe']}},",
		 file);
	ud_load(&D, members, 1);
	ud_start_in(&D, "h", "{'n': 3}", request("rid-2", hv), &c);
	ud_wait(&c);
	cr_assert_eq(c.outcome, DISPATCH_OK, "%s: %s", dispatch_outcome_name(c.outcome), c.error);
	cr_assert(!c.recovered);
	cr_assert_eq(c.reply_status, 203);
	cr_assert_str_eq(c.reply_headers, "", "Content-Length was refused");
	/* the async step's output wraps the sync step's, which wraps the input */
	cr_assert_str_eq(str_at(c.output, "/plugin"), "webreq_async");
	cr_assert_str_eq(str_at(c.output, "/x_test"), "seen");
	cr_assert_str_eq(str_at(c.output, "/client"), "127.0.0.1");
	cr_assert_eq(num_at(c.output, "/port"), 4242);
	cr_assert_eq(num_at(c.output, "/rc_header"), HOOKD_EFORBIDDEN);
	cr_assert_str_eq(str_at(c.output, "/input/plugin"), "webreq");
	cr_assert_str_eq(str_at(c.output, "/input/request_id"), "rid-2");
	cr_assert_eq(num_at(c.output, "/input/rc_header"), HOOKD_EFORBIDDEN);
	cr_assert_eq(num_at(c.output, "/input/input/n"), 3);
	ud_call_clear(&c);
	l = (struct lines){file, 1};
	cr_assert(ud_run_until(&D, has_lines, &l));
	ud_wait_idle(&D);
	line = observed(file, 0);
	cr_assert_str_eq(str_at(line, "/input/request_id"), "rid-2");
	/* no status claimed by the callback: dispatch_result_status, the steps' 203 */
	cr_assert_eq(num_at(line, "/input/status"), 203);
	cr_assert_str_eq(str_at(line, "/input/steps/1/plugin"), "webreq_async");
	cJSON_Delete(line);
	ud_end(&D);
}
