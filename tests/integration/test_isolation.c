/*
 * Dispatch guarantees: sync plugins run on the worker pool and never hold
 * up the event loop, async plugins never block it, a full pool refuses at
 * once instead of queueing without bound, off-loop completions reach the
 * loop, and none of it races (run under ASan and against a TSan daemon:
 * the harness fails a test on a sanitizer report in the daemon's log).
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

static const char *const all[] = {"echo", "echo_async", "sleep", "delay", "tag",
				  "tag_async", "fail", NULL};

/* ---- helpers -------------------------------------------------------- */

/* One POST in a thread of its own. */
struct bg {
	struct hd *d;
	char path[128];
	char body[256];
	pthread_t tid;
	struct hd_resp r;
	double done_ms;
};

static void *bg_main(void *arg)
{
	struct bg *b = arg;

	hd_post(b->d, b->path, b->body, &b->r);
	b->done_ms = hd_now_ms();
	return NULL;
}

static void bg_start(struct bg *b, struct hd *d, const char *path, const char *body)
{
	memset(b, 0, sizeof(*b));
	b->d = d;
	snprintf(b->path, sizeof(b->path), "%s", path);
	snprintf(b->body, sizeof(b->body), "%s", body);
	cr_assert_eq(pthread_create(&b->tid, NULL, bg_main, b), 0);
}

static void bg_join(struct bg *b)
{
	pthread_join(b->tid, NULL);
}

/* A number from GET /health. */
static double health(struct hd *d, const char *key)
{
	struct hd_resp r;
	cJSON *o, *v;
	double x;

	hd_get(d, "/health", &r);
	cr_assert_eq(r.status, 200);
	o = cJSON_Parse(r.body);
	cr_assert_not_null(o, "%s", r.body);
	v = cJSON_GetObjectItem(o, key);
	cr_assert(cJSON_IsNumber(v), "no %s in %s", key, r.body);
	x = v->valuedouble;
	cJSON_Delete(o);
	hd_resp_free(&r);
	return x;
}

/* Wait until /health reports `key` == `want`. */
static bool wait_health(struct hd *d, const char *key, double want, int timeout_ms)
{
	double end = hd_now_ms() + (double)timeout_ms * hd_scale();

	while (hd_now_ms() < end) {
		if (health(d, key) == want)
			return true;
		hd_sleep_ms(5);
	}
	return health(d, key) == want;
}

/* A timed POST that must answer 200 with exactly `want` (+ newline). */
static double timed_ok(struct hd *d, const char *path, const char *body, const char *want)
{
	struct hd_resp r;
	char full[512];
	double t0 = hd_now_ms(), took;

	hd_post(d, path, body, &r);
	took = hd_now_ms() - t0;
	snprintf(full, sizeof(full), "%s\n", want);
	cr_assert_eq(r.status, 200, "%s: %ld %s", path, r.status, r.body);
	cr_assert_str_eq(r.body, full, "%s", path);
	hd_resp_free(&r);
	return took;
}

/* ---- the loop never waits for a worker ------------------------------ */

Test(isolation, loop_answers_while_every_worker_is_blocked, .timeout = 60)
{
	struct hd d;
	struct bg sl[2], queued;
	double took;

	hd_start(&d, "\"workers\": 2, \"queue\": 8, "
		 "\"plugins\": {\"tag\": {\"label\": \"S\"}, \"tag_async\": {\"label\": \"A\"}}, "
		 "\"hooks\": {\"async_chain\": {\"chain\": [\"tag_async\", \"delay\", \"tag_async\"]}}",
		 all);
	for (int i = 0; i < 2; i++)
		bg_start(&sl[i], &d, "/hooks/sleep", "{\"ms\": 3000}");
	cr_assert(wait_health(&d, "workers_busy", 2, 3000), "the two sleeps never ran");

	/* a sync call now has to wait for a worker: it is queued, not refused */
	bg_start(&queued, &d, "/hooks/echo", "{\"queued\":true}");

	/* async work is served by the loop while both workers are blocked: the
	 * proof is the order of events (answered, and the sleeps still run
	 * afterwards), not a time limit that a slow machine could miss */
	took = timed_ok(&d, "/hooks/delay", "{\"ms\": 10}", "{\"ms\":10}");
	cr_log_info("delay 10 ms: %.0f ms", took);
	took = timed_ok(&d, "/hooks/echo_async", "{\"a\":[1,2]}", "{\"a\":[1,2]}");
	cr_log_info("echo_async: %.0f ms", took);
	took = timed_ok(&d, "/hooks/async_chain", "{\"ms\": 20}",
			"{\"ms\":20,\"trace\":[\"A\",\"A\"]}");
	cr_log_info("async chain: %.0f ms", took);
	double answered_at = hd_now_ms();
	cr_assert_eq(health(&d, "workers_busy"), 2,
		     "the sleeps ended before the async calls were answered: the loop waited");

	for (int i = 0; i < 2; i++) {
		bg_join(&sl[i]);
		cr_assert_eq(sl[i].r.status, 200, "%s", sl[i].r.body);
		cr_assert_str_eq(sl[i].r.body, "{\"ms\":3000}\n");
		cr_assert_gt(sl[i].done_ms, answered_at, "a sleep ended before the async calls");
		hd_resp_free(&sl[i].r);
	}
	bg_join(&queued);
	cr_assert_eq(queued.r.status, 200, "%s", queued.r.body);
	cr_assert_str_eq(queued.r.body, "{\"queued\":true}\n");
	/* it ran when a worker came free, not before: the stamps are taken by
	 * client threads a loaded machine may schedule late, hence the slack;
	 * run early, it would have come back about 3 s before the sleeps */
	double first_free = sl[0].done_ms < sl[1].done_ms ? sl[0].done_ms : sl[1].done_ms;
	cr_assert_geq(queued.done_ms, first_free - 1000, "a sync call ran with every worker busy");
	hd_resp_free(&queued.r);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(isolation, sync_calls_beyond_workers_and_queue_get_503_at_once, .timeout = 60)
{
	struct hd d;
	struct hd_resp r;
	struct bg sl[4];
	double t0, took;
	cJSON *o;

	hd_start(&d, "\"workers\": 2, \"queue\": 2, "
		 "\"hooks\": {\"then_sync\": {\"chain\": [\"echo_async\", \"echo\"]}}", all);
	/* two to run, then two to wait (sent together, the fourth could find
	 * the first still in the queue and be refused) */
	for (int i = 0; i < 2; i++)
		bg_start(&sl[i], &d, "/hooks/sleep", "{\"ms\": 3000}");
	cr_assert(wait_health(&d, "workers_busy", 2, 3000));
	for (int i = 2; i < 4; i++)
		bg_start(&sl[i], &d, "/hooks/sleep", "{\"ms\": 3000}");
	cr_assert(wait_health(&d, "queue", 2, 3000), "two calls should wait in the queue");
	cr_assert_eq(health(&d, "workers_busy"), 2, "the sleeps ended early: timing is void");

	static const struct {
		const char *path, *body, *plugin;
	} refused[] = {
		{"/hooks/sleep", "{\"ms\": 1}", "sleep"},
		{"/hooks/echo", "{}", "echo"},
		{"/hooks/then_sync", "{}", "echo"}, /* refused at its sync step */
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		t0 = hd_now_ms();
		hd_post(&d, refused[i].path, refused[i].body, &r);
		took = hd_now_ms() - t0;
		cr_assert_eq(r.status, 503, "%s: %ld %s", refused[i].path, r.status, r.body);
		cr_log_info("%s: refused after %.0f ms", refused[i].path, took);
		cr_assert_str_eq(r.retry_after, "1");
		o = cJSON_Parse(r.body);
		cr_assert_not_null(o, "%s", r.body);
		cr_assert_str_eq(cJSON_GetObjectItem(o, "plugin")->valuestring, refused[i].plugin);
		cr_assert_eq(cJSON_GetObjectItem(o, "status")->valuedouble, 503);
		cJSON_Delete(o);
		hd_resp_free(&r);
	}
	/* the loop is not part of the pool's backpressure */
	timed_ok(&d, "/hooks/echo_async", "{}", "{}");
	timed_ok(&d, "/hooks/delay", "{\"ms\": 5}", "{\"ms\":5}");
	/* "at once": all of it happened while the pool was still full, i.e.
	 * nothing above waited for a worker (an order of events, not a time
	 * limit); 3 s calls keep it full that long on a slow machine too */
	cr_assert_eq(health(&d, "queue"), 2, "the queue moved: the refusals may have waited");
	cr_assert_eq(health(&d, "workers_busy"), 2);

	/* every call that was accepted is answered */
	for (int i = 0; i < 4; i++) {
		bg_join(&sl[i]);
		cr_assert_eq(sl[i].r.status, 200, "%s", sl[i].r.body);
		hd_resp_free(&sl[i].r);
	}
	/* and the pool takes work again */
	timed_ok(&d, "/hooks/echo", "{\"again\":1}", "{\"again\":1}");
	cr_assert_eq(hd_stop(&d), 0);
}

/* A sync call waiting in the queue gets its 504 at its own deadline, not
 * when a worker comes free, and is then never started: the worker moves
 * on to the next job at once. */
Test(isolation, queued_sync_call_times_out_in_the_queue_and_never_runs, .timeout = 60)
{
	struct hd d;
	struct hd_resp r;
	struct bg blocker;
	double t0, took;

	hd_start(&d, "\"workers\": 1, \"queue\": 4, "
		 "\"hooks\": {\"short\": {\"chain\": [\"sleep\"], \"timeout_ms\": 200}}", all);
	bg_start(&blocker, &d, "/hooks/sleep", "{\"ms\": 3000}");
	cr_assert(wait_health(&d, "workers_busy", 1, 3000));
	t0 = hd_now_ms();
	/* queued behind the blocker; had it been started it would run 20 s */
	hd_post(&d, "/hooks/short", "{\"ms\": 20000}", &r);
	took = hd_now_ms() - t0;
	cr_assert_eq(r.status, 504, "%ld %s", r.status, r.body);
	cr_log_info("504 after %.0f ms", took);
	cr_assert_not_null(strstr(r.body, "\"plugin\":\"sleep\""), "%s", r.body);
	hd_resp_free(&r);
	/* the 504 came while the blocker still ran: it did not wait for the worker */
	cr_assert_eq(health(&d, "workers_busy"), 1, "the blocker ended before the 504");

	bg_join(&blocker);
	cr_assert_eq(blocker.r.status, 200);
	hd_resp_free(&blocker.r);
	/* had the cancelled 20 s sleep been started, this would wait for it */
	took = timed_ok(&d, "/hooks/echo", "{\"next\":1}", "{\"next\":1}");
	cr_assert_lt(took, 10000.0 * hd_scale(), "echo waited %.0f ms: the cancelled call ran",
		     took);
	cr_assert(wait_health(&d, "queue", 0, 1000));
	cr_assert_eq(hd_stop(&d), 0);
}

/* "queue" bounds the calls waiting *for a worker*: with "workers": 2,
 * "queue": 2, four calls arriving together (submitted in one loop pass,
 * before any worker woke up) are all accepted: two run, two wait. */
Test(isolation, calls_within_workers_plus_queue_are_all_accepted, .timeout = 60)
{
	enum { N = 4, ROUNDS = 10 };
	const char *paths[N], *bodies[N];
	size_t lens[N];
	struct hd_resp rs[N];
	struct hd d;
	int refused = 0;

	hd_start(&d, "\"workers\": 2, \"queue\": 2", all);
	for (int i = 0; i < N; i++) {
		paths[i] = "/hooks/sleep";
		bodies[i] = "{\"ms\":100}";
		lens[i] = strlen(bodies[i]);
	}
	for (int round = 0; round < ROUNDS; round++) {
		hd_post_many(&d, paths, bodies, lens, N, rs, NULL);
		for (int i = 0; i < N; i++) {
			if (rs[i].status == 503)
				refused++;
			else
				cr_assert_eq(rs[i].status, 200, "%ld %s", rs[i].status, rs[i].body);
			hd_resp_free(&rs[i]);
		}
	}
	cr_assert_eq(refused, 0, "%d of %d calls refused although at most %d = workers + queue "
		     "were ever in flight", refused, N * ROUNDS, N);
	cr_assert_eq(hd_stop(&d), 0);
}

/* 200 async delay calls of 300 ms each, sent at once. */
static double delay_burst(struct hd *d, double *wait_ms, double *worst_connect_s)
{
	enum { N = 200 };
	static char bodies[N][48];
	const char *paths[N], *bp[N];
	size_t lens[N];
	struct hd_resp *rs = calloc(N, sizeof(*rs));
	double wall;

	cr_assert_not_null(rs);
	for (int i = 0; i < N; i++) {
		snprintf(bodies[i], sizeof(bodies[i]), "{\"ms\":300,\"id\":%d}", i);
		paths[i] = "/hooks/delay";
		bp[i] = bodies[i];
		lens[i] = strlen(bodies[i]);
	}
	wall = hd_post_many(d, paths, bp, lens, N, rs, wait_ms);
	for (int i = 0; i < N; i++) {
		char want[64];
		snprintf(want, sizeof(want), "%.60s\n", bodies[i]);
		cr_assert_eq(rs[i].status, 200, "call %d: %ld %s", i, rs[i].status, rs[i].body);
		cr_assert_str_eq(rs[i].body, want, "call %d got another call's answer", i);
		if (worst_connect_s && rs[i].connect_s > *worst_connect_s)
			*worst_connect_s = rs[i].connect_s;
		hd_resp_free(&rs[i]);
	}
	free(rs);
	return wall;
}

/* 200 async calls of 300 ms in flight at once: one loop thread holds them
 * all, so each is answered 300 ms after it arrived, however many others
 * wait with it; together they take a fraction of 200 x 300 ms. (Measured
 * per call from the moment it was sent, so that the time to get a
 * connection accepted does not count: see the next test for that.) */
Test(isolation, many_async_calls_wait_together, .timeout = 60)
{
	enum { N = 200 };
	double wait_ms[N], wall, worst = 0;
	struct hd d;

	hd_start(&d, "\"workers\": 1", all);
	wall = delay_burst(&d, wait_ms, NULL);
	for (int i = 0; i < N; i++) {
		/* 5 ms: libevent's timers run on CLOCK_MONOTONIC_COARSE (a 4 ms
		 * tick here), so a timer may fire up to a tick early */
		cr_assert_geq(wait_ms[i], 295.0, "call %d answered %.1f ms after it was sent, before "
			      "its 300 ms delay", i, wait_ms[i]);
		worst = wait_ms[i] > worst ? wait_ms[i] : worst;
	}
	cr_log_info("200 x delay 300 ms: slowest call %.0f ms after it was sent, all in %.0f ms",
		    worst, wall);
	/* held up would mean calls served one after another (200 x 300 ms);
	 * the bound leaves a loaded machine room for its scheduling */
	cr_assert_lt(worst, 300.0 + 1500.0 * hd_scale(),
		     "a call waited %.0f ms for its 300 ms delay: the loop was held up", worst);
	cr_assert_lt(wall, 5000.0 * hd_scale(), "200 x 300 ms took %.0f ms", wall);
	cr_assert_eq(health(&d, "calls_in_flight"), 0);
	cr_assert_eq(hd_stop(&d), 0);
}

/* A burst of 200 connections fits the accept queue (hookd listens with a
 * backlog of 4096; libevent's evhttp_bind_socket used 128, and the clients
 * that overflowed it waited for a SYN retransmit: the kernel's first one
 * comes after 1 s). So no connection may take a second to establish --
 * the failure's own signature, where the whole burst's time also counts
 * how loaded the machine is. */
Test(isolation, a_burst_of_200_connections_fits_the_accept_queue, .timeout = 60)
{
	struct hd d;
	double worst = 0;

	hd_start(&d, "\"workers\": 1", all);
	delay_burst(&d, NULL, &worst);
	cr_log_info("200 connections at once: the slowest connected in %.3f s", worst);
	cr_assert_lt(worst, 0.95, "a connection took %.3f s: a SYN was dropped and retransmitted "
		     "(accept queue overflow)", worst);
	cr_assert_eq(hd_stop(&d), 0);
}

/* An async plugin that finishes its calls from threads of its own: every
 * completion reaches the loop, each with its own call's output, also when
 * it races the call's deadline. */
Test(isolation, off_loop_completions_reach_their_calls, .timeout = 60)
{
	enum { N = 64 };
	static char bodies[N][64];
	const char *paths[N], *bp[N];
	size_t lens[N];
	struct hd_resp rs[N];
	struct hd d;
	double took;
	int ok = 0, late = 0;

	hd_prepare(&d, "\"plugins\": {\"tag\": {\"label\": \"S\"}, \"tag_async\": {\"label\": \"A\"}}, "
		   "\"hooks\": {\"around\": {\"chain\": [\"tag\", \"offloop\", \"tag_async\"]},"
		   "\"racing\": {\"chain\": [\"offloop\", \"echo\"], \"timeout_ms\": 5}}",
		   all);
	hd_install(&d, "fixtures/offloop.so", "offloop.so");
	cr_assert(hd_launch(&d, 10000));

	/* one call: the completion wakes the loop, no polling delay */
	took = timed_ok(&d, "/hooks/offloop", "{\"ms\":0}", "{\"ms\":0}");
	cr_assert_lt(took, 300.0 * hd_scale(), "took %.0f ms", took);

	for (int i = 0; i < N; i++) {
		snprintf(bodies[i], sizeof(bodies[i]), "{\"ms\":%d,\"id\":%d}", i % 20, i);
		paths[i] = i % 2 ? "/hooks/offloop" : "/hooks/around";
		bp[i] = bodies[i];
		lens[i] = strlen(bodies[i]);
	}
	hd_post_many(&d, paths, bp, lens, N, rs, NULL);
	for (int i = 0; i < N; i++) {
		char want[128];
		if (i % 2)
			snprintf(want, sizeof(want), "%.120s\n", bodies[i]);
		else
			snprintf(want, sizeof(want), "{\"ms\":%d,\"id\":%d,\"trace\":[\"S\",\"A\"]}\n",
				 i % 20, i);
		cr_assert_eq(rs[i].status, 200, "call %d: %ld %s", i, rs[i].status, rs[i].body);
		cr_assert_str_eq(rs[i].body, want, "call %d", i);
		hd_resp_free(&rs[i]);
	}

	/* completions racing a 5 ms deadline: 200 with the input, or 504 */
	for (int i = 0; i < N; i++) {
		snprintf(bodies[i], sizeof(bodies[i]), "{\"ms\":%d,\"id\":%d}", i % 11, i);
		paths[i] = "/hooks/racing";
		lens[i] = strlen(bodies[i]);
	}
	hd_post_many(&d, paths, bp, lens, N, rs, NULL);
	for (int i = 0; i < N; i++) {
		char want[128];
		snprintf(want, sizeof(want), "%.63s\n", bodies[i]);
		if (rs[i].status == 200) {
			cr_assert_str_eq(rs[i].body, want, "call %d", i);
			ok++;
		} else {
			cr_assert_eq(rs[i].status, 504, "call %d: %ld %s", i, rs[i].status,
				     rs[i].body);
			late++;
		}
		hd_resp_free(&rs[i]);
	}
	cr_assert_gt(late, 0, "no call of 10 ms beat a 5 ms deadline?");
	cr_log_info("racing offloop: %d answered, %d past the deadline", ok, late);
	/* late completions were released: nothing is left in flight */
	cr_assert(wait_health(&d, "calls_in_flight", 0, 2000));
	/* offloop's fini joins its threads: a clean exit */
	cr_assert_eq(hd_stop(&d), 0);
}

/* ---- stress: every path at once, deadlines racing results ---------- */

enum kind { K_ECHO, K_ECHO_ASYNC, K_MIX, K_DELAY, K_SLEEP, K_TIGHT, K_TIGHT_MIX, K_COUNT };

static const char *const kind_path[K_COUNT] = {
	"/hooks/echo", "/hooks/echo_async", "/hooks/mix", "/hooks/delay",
	"/hooks/sleep", "/hooks/tight", "/hooks/tight_mix",
};

struct stress {
	struct hd *d;
	double end_ms;
	pthread_mutex_t mu;
	long by_status[600];
	long transport_errors, wrong;
	char first_wrong[512];
};

struct stress_thread {
	struct stress *s;
	unsigned seed;
	pthread_t tid;
};

static void stress_wrong(struct stress *s, const char *fmt, const char *path, long status,
			 const char *body)
{
	pthread_mutex_lock(&s->mu);
	if (!s->wrong++)
		snprintf(s->first_wrong, sizeof(s->first_wrong), fmt, path, status, body);
	pthread_mutex_unlock(&s->mu);
}

/* Is `body` a 504 of hook path+7 naming one of the chain's plugins? */
static bool is_deadline_answer(const char *body, const char *hook)
{
	cJSON *o = cJSON_Parse(body), *p, *h, *st;
	bool ok;

	if (!o)
		return false;
	p = cJSON_GetObjectItem(o, "plugin");
	h = cJSON_GetObjectItem(o, "hook");
	st = cJSON_GetObjectItem(o, "status");
	ok = cJSON_IsString(p) && cJSON_IsString(h) && cJSON_IsNumber(st) &&
	     st->valuedouble == 504 && strcmp(h->valuestring, hook) == 0 &&
	     (strcmp(p->valuestring, "delay") == 0 || strcmp(p->valuestring, "sleep") == 0 ||
	      strcmp(p->valuestring, "echo_async") == 0);
	cJSON_Delete(o);
	return ok;
}

static void *stress_main(void *arg)
{
	struct stress_thread *t = arg;
	struct stress *s = t->s;
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	char url[256], body[256], want[320];
	long count[600] = {0}, terr = 0;
	int i = 0;

	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L * hd_scale());
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hd_curl_body);
	while (hd_now_ms() < s->end_ms) {
		enum kind k = (enum kind)(rand_r(&t->seed) % K_COUNT);
		struct hd_resp r = {0};
		long status = 0;
		CURLcode rc;
		int ms;

		i++;
		switch (k) {
		case K_TIGHT:
			ms = rand_r(&t->seed) % 11;
			break;
		case K_TIGHT_MIX:
			ms = rand_r(&t->seed) % 4;
			break;
		default:
			ms = rand_r(&t->seed) % 6;
		}
		snprintf(body, sizeof(body), "{\"ms\":%d,\"t\":%u,\"i\":%d,\"s\":\"caf\xc3\xa9 %d\"}",
			 ms, t->seed % 1000, i, i);
		if (k == K_MIX)
			snprintf(want, sizeof(want), "%.*s,\"trace\":[\"A\",\"S\"]}\n",
				 (int)strlen(body) - 1, body);
		else
			snprintf(want, sizeof(want), "%s\n", body);
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->d->port, kind_path[k]);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
		rc = curl_easy_perform(c);
		if (rc != CURLE_OK) {
			terr++;
			stress_wrong(s, "%s: transport error %ld %s", kind_path[k], (long)rc,
				     curl_easy_strerror(rc));
			free(r.body);
			continue;
		}
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 0 && status < 600)
			count[status]++;
		if (status == 200) {
			if (!r.body || strcmp(r.body, want) != 0)
				stress_wrong(s, "%s: %ld with the wrong body %s", kind_path[k], status,
					     r.body ? r.body : "(none)");
		} else if (status == 504 && (k == K_TIGHT || k == K_TIGHT_MIX)) {
			if (!is_deadline_answer(r.body ? r.body : "", kind_path[k] + 7))
				stress_wrong(s, "%s: %ld with the wrong body %s", kind_path[k], status,
					     r.body ? r.body : "(none)");
		} else {
			stress_wrong(s, "%s: unexpected status %ld: %s", kind_path[k], status,
				     r.body ? r.body : "(none)");
		}
		free(r.body);
	}
	pthread_mutex_lock(&s->mu);
	for (int k = 0; k < 600; k++)
		s->by_status[k] += count[k];
	s->transport_errors += terr;
	pthread_mutex_unlock(&s->mu);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return NULL;
}

Test(isolation, concurrent_mixed_calls_racing_deadlines, .timeout = 90)
{
	enum { THREADS = 8, SECONDS = 2 };
	struct stress s = {0};
	struct stress_thread th[THREADS];
	struct hd d;
	double started, ok, failed;

	hd_start(&d, "\"workers\": 4, "
		 "\"plugins\": {\"tag\": {\"label\": \"S\"}, \"tag_async\": {\"label\": \"A\"}}, "
		 "\"hooks\": {"
		 "\"mix\": {\"chain\": [\"echo\", \"tag_async\", \"echo\", \"tag\", \"echo_async\"]},"
		 "\"tight\": {\"chain\": [\"delay\"], \"timeout_ms\": 5},"
		 "\"tight_mix\": {\"chain\": [\"echo_async\", \"sleep\", \"delay\"], "
		 "\"timeout_ms\": 5}}",
		 all);
	s.d = &d;
	pthread_mutex_init(&s.mu, NULL);
	s.end_ms = hd_now_ms() + SECONDS * 1000;
	for (int i = 0; i < THREADS; i++) {
		th[i].s = &s;
		th[i].seed = 0x9e3779b9u * (unsigned)(i + 1);
		cr_assert_eq(pthread_create(&th[i].tid, NULL, stress_main, &th[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i].tid, NULL);
	pthread_mutex_destroy(&s.mu);

	cr_log_info("stress: %ld x 200, %ld x 504, %ld transport errors, %ld wrong",
		    s.by_status[200], s.by_status[504], s.transport_errors, s.wrong);
	cr_assert_eq(s.wrong, 0, "%ld wrong answers; first: %s", s.wrong, s.first_wrong);
	cr_assert_eq(s.transport_errors, 0);
	cr_assert_gt(s.by_status[200], 0);
	cr_assert_gt(s.by_status[504], 0, "no deadline was hit: the race was not exercised");

	/* every call accounted for: none left in flight (late sync results and
	 * cancelled timers were all released), answered = started */
	cr_assert(wait_health(&d, "calls_in_flight", 0, 3000));
	started = health(&d, "calls_started");
	ok = health(&d, "calls_ok");
	failed = health(&d, "calls_failed");
	cr_assert_eq(started, ok + failed, "started %.0f, ok %.0f, failed %.0f", started, ok,
		     failed);
	cr_assert_eq(ok, (double)s.by_status[200]);
	cr_assert_eq(failed, (double)s.by_status[504]);
	cr_assert_eq(hd_stop(&d), 0, "the daemon must exit cleanly after the stress");
}

/* ---- clients that leave mid-call ------------------------------------ */

struct leaver {
	struct hd *d;
	double end_ms;
	unsigned seed;
	bool leave; /* true: give up after a few ms; false: wait and check */
	pthread_t tid;
	long sent, ok, wrong, gave_up;
	char first_wrong[256];
};

static void *leaver_main(void *arg)
{
	static const char *const paths[] = {"/hooks/delay", "/hooks/sleep", "/hooks/offloop",
					    "/hooks/mix", "/hooks/echo_async"};
	struct leaver *l = arg;
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	char url[256], body[128], want[200];

	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hd_curl_body);
	while (hd_now_ms() < l->end_ms) {
		const char *path = paths[rand_r(&l->seed) % 5];
		int ms = rand_r(&l->seed) % (l->leave ? 40 : 6);
		struct hd_resp r = {0};
		long status = 0;
		CURLcode rc;

		snprintf(body, sizeof(body), "{\"ms\":%d,\"n\":%ld}", ms, l->sent);
		if (strcmp(path, "/hooks/mix") == 0)
			snprintf(want, sizeof(want), "{\"ms\":%d,\"n\":%ld,\"trace\":[\"A\",\"S\"]}\n",
				 ms, l->sent);
		else
			snprintf(want, sizeof(want), "%s\n", body);
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", l->d->port, path);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
		/* a leaver hangs up 2-30 ms into the call, racing its answer */
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
				 l->leave ? 2L + rand_r(&l->seed) % 29 : 20000L * hd_scale());
		l->sent++;
		rc = curl_easy_perform(c);
		if (rc == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (l->leave && rc == CURLE_OPERATION_TIMEDOUT) {
			l->gave_up++;
		} else if (status == 200 && r.body && strcmp(r.body, want) == 0) {
			l->ok++;
		} else if (!l->wrong++) {
			snprintf(l->first_wrong, sizeof(l->first_wrong), "%s %s: curl %d, %ld %s",
				 path, body, (int)rc, status, r.body ? r.body : "");
		}
		free(r.body);
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return NULL;
}

/* Clients hanging up in the middle of their calls (sync, async, off-loop,
 * chains), racing the answers: the others' calls are not disturbed, every
 * abandoned call is released, and the daemon exits cleanly (under ASan or
 * TSan: without a report). */
Test(isolation, clients_leaving_mid_call_do_not_disturb_the_others, .timeout = 90)
{
	enum { LEAVERS = 4, STAYERS = 4 };
	struct leaver l[LEAVERS + STAYERS];
	struct hd d;
	long gave_up = 0, ok = 0;
	double started, answered;

	hd_prepare(&d, "\"workers\": 2, "
		   "\"plugins\": {\"tag\": {\"label\": \"S\"}, \"tag_async\": {\"label\": \"A\"}}, "
		   "\"hooks\": {\"mix\": {\"chain\": [\"delay\", \"tag_async\", \"sleep\", \"tag\", "
		   "\"offloop\"]}}",
		   all);
	hd_install(&d, "fixtures/offloop.so", "offloop.so");
	cr_assert(hd_launch(&d, 10000));
	for (int i = 0; i < LEAVERS + STAYERS; i++) {
		memset(&l[i], 0, sizeof(l[i]));
		l[i].d = &d;
		l[i].end_ms = hd_now_ms() + 2000;
		l[i].seed = 7919u * (unsigned)(i + 1);
		l[i].leave = i < LEAVERS;
		cr_assert_eq(pthread_create(&l[i].tid, NULL, leaver_main, &l[i]), 0);
	}
	for (int i = 0; i < LEAVERS + STAYERS; i++)
		pthread_join(l[i].tid, NULL);
	for (int i = 0; i < LEAVERS + STAYERS; i++) {
		cr_assert_eq(l[i].wrong, 0, "%s: %ld wrong; first: %s",
			     l[i].leave ? "leaver" : "stayer", l[i].wrong, l[i].first_wrong);
		if (l[i].leave)
			gave_up += l[i].gave_up;
		else
			ok += l[i].ok;
	}
	cr_log_info("clients leaving: %ld calls abandoned, %ld answered to those who stayed",
		    gave_up, ok);
	cr_assert_gt(gave_up, 0, "no client left mid-call: the test exercised nothing");
	cr_assert_gt(ok, 0);

	/* every abandoned call was cancelled and released */
	cr_assert(wait_health(&d, "calls_in_flight", 0, 3000), "calls left in flight: %.0f",
		  health(&d, "calls_in_flight"));
	started = health(&d, "calls_started");
	answered = health(&d, "calls_ok") + health(&d, "calls_failed");
	cr_assert_eq(started, answered, "started %.0f, answered %.0f", started, answered);
	/* and the daemon still serves */
	timed_ok(&d, "/hooks/mix", "{\"ms\":1}", "{\"ms\":1,\"trace\":[\"A\",\"S\"]}");
	cr_assert_eq(hd_stop(&d), 0, "the daemon must exit cleanly");
}
