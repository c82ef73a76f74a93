/*
 * unit_dispatch -- see unit_dispatch.h.
 */
#include "unit_dispatch.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../../host/pool.h"
#include "../../host/reply.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

static pthread_t loop_thread;

int64_t ud_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void ud_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0)
		;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

void ud_init(struct ud *d, unsigned workers, unsigned queue)
{
	struct timeval tv = {0, 10000};

	memset(d, 0, sizeof(*d));
	loop_thread = pthread_self();
	u_env_init(&d->u);
	cr_assert_eq(registry_init(&d->reg), 0);
	d->base = event_base_new();
	cr_assert_not_null(d->base);
	d->tick = event_new(d->base, -1, EV_PERSIST, on_tick, NULL);
	cr_assert_not_null(d->tick);
	cr_assert_eq(event_add(d->tick, &tv), 0);
	cr_assert_eq(pool_create(workers, queue, &d->pool), 0);
	/* no fetch engine: hostapi refuses fetch() with HOOKD_EPERM then */
	cr_assert_eq(dispatch_env_create(d->base, d->pool, &d->reg, NULL, &d->u.log, &d->env), 0);
}

static bool idle(void *arg)
{
	return ud_stats(arg).live == 0;
}

void ud_fini(struct ud *d)
{
	if (!d->env)
		return;
	cr_assert(ud_run_until(d, idle, d), "teardown: %u call(s) still held",
		  ud_stats(d).live);
	pool_destroy(d->pool);
	dispatch_env_free(d->env);
	d->env = NULL;
	event_free(d->tick);
	event_base_free(d->base);
	registry_destroy(&d->reg);
	u_env_fini(&d->u);
}

void ud_end(struct ud *d)
{
	ud_fini(d);
#ifdef __SANITIZE_ADDRESS__
	/* A leak LeakSanitizer reports when the test's process exits does not
	 * fail the test (Criterion has its result by then), nor does an
	 * assertion in a suite's .fini: look now, in the test's body, with
	 * everything of the test freed. */
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0,
		     "LeakSanitizer found leaks: see its report above");
#endif
}

/* JSON written with ' for " (test text stays readable); asserts it fits */
static char *dq(const char *text)
{
	char *s = strdup(text);

	cr_assert_not_null(s);
	for (char *p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	return s;
}

void ud_install(struct ud *d, const char *rel, const char *name)
{
	u_env_install(&d->u, rel, name);
}

void ud_load(struct ud *d, const char *members, uint64_t id)
{
	struct generation *prev = registry_acquire(&d->reg), *g = NULL;
	char *m = dq(members ? members : "");
	struct config *cfg = u_env_config(&d->u, m);
	struct loader_result lr;

	u_env_scan(&d->u, cfg, prev ? &prev->lr : NULL, id, &lr);
	cr_assert_eq(generation_build(cfg, &lr, id, &d->u.log, &g), 0);
	if (prev)
		generation_release(prev);
	registry_swap(&d->reg, g);
	free(m);
}

static void on_done(void *arg, struct dispatch_result *r)
{
	struct ud_call *c = arg;
	unsigned ra;

	c->ndone++;
	c->done_ns = ud_now_ns();
	c->on_loop = pthread_equal(pthread_self(), loop_thread);
	c->during_start = c->d->in_start;
	c->handle_cleared = c->handle == NULL;
	c->outcome = r->outcome;
	c->plugin_status = r->plugin_status;
	snprintf(c->error, sizeof(c->error), "%s", r->error ? r->error : "");
	snprintf(c->hook, sizeof(c->hook), "%s", r->hook ? r->hook : "");
	snprintf(c->plugin, sizeof(c->plugin), "%s", r->plugin ? r->plugin : "");
	c->has_plugin = r->plugin != NULL;
	c->generation = r->generation;
	c->step = r->step;
	c->queued = r->queued;
	c->nsteps = r->nsteps;
	c->steps_more = r->steps_more;
	c->steps[0] = 0;
	c->steps_timed = true;
	for (unsigned i = 0; i < r->nsteps; i++) {
		size_t n = strlen(c->steps);
		snprintf(c->steps + n, sizeof(c->steps) - n, "%s%s:%s%s", i ? "," : "",
			 r->steps[i].plugin, dispatch_outcome_name(r->steps[i].outcome),
			 r->steps[i].skipped ? ":skipped" : "");
		c->steps_timed = c->steps_timed && r->steps[i].ended && r->steps[i].duration_ns >= 0;
	}
	c->recovered = r->recovered;
	c->has_reply = r->reply != NULL;
	c->reply_status = r->reply ? r->reply->status : 0;
	c->reply_headers[0] = 0;
	for (unsigned i = 0; r->reply && i < r->reply->nheaders; i++) {
		size_t n = strlen(c->reply_headers);
		snprintf(c->reply_headers + n, sizeof(c->reply_headers) - n, "%s: %s\n",
			 r->reply->headers[i].name,
			 r->reply->headers[i].value ? r->reply->headers[i].value : "(removed)");
	}
	r->sent_status = c->d->sent_status ? c->d->sent_status : dispatch_result_status(r, &ra);
	cJSON_Delete(c->output); /* a second answer: keep the last, the count tells */
	c->output = r->output;
}

void ud_start(struct ud *d, const char *hook, const char *input, struct ud_call *c)
{
	ud_start_in(d, hook, input, NULL, c);
}

void ud_start_in(struct ud *d, const char *hook, const char *input, struct inbound *inb,
		 struct ud_call *c)
{
	char *text = dq(input);
	cJSON *in = cJSON_Parse(text);

	cr_assert_not_null(in, "bad test input %s", text);
	free(text);
	memset(c, 0, sizeof(*c));
	c->d = d;
	d->in_start = true;
	dispatch_call_start(d->env, hook, in, inb, on_done, c, &c->handle);
	d->in_start = false;
}

void ud_call_clear(struct ud_call *c)
{
	cJSON_Delete(c->output);
	c->output = NULL;
}

bool ud_run_until(struct ud *d, bool (*cond)(void *arg), void *arg)
{
	int64_t limit = ud_now_ns() + (int64_t)UD_LIMIT_MS * 1000000;

	while (!cond(arg) && ud_now_ns() < limit)
		event_base_loop(d->base, EVLOOP_ONCE);
	return cond(arg);
}

void ud_run_for(struct ud *d, long ms)
{
	int64_t until = ud_now_ns() + (int64_t)ms * 1000000;

	while (ud_now_ns() < until)
		event_base_loop(d->base, EVLOOP_ONCE);
}

static bool answered(void *arg)
{
	return ((struct ud_call *)arg)->ndone > 0;
}

void ud_wait(struct ud_call *c)
{
	cr_assert(ud_run_until(c->d, answered, c), "the call was never answered");
	cr_assert_eq(c->ndone, 1);
}

void ud_wait_idle(struct ud *d)
{
	cr_assert(ud_run_until(d, idle, d), "%u call(s) still held", ud_stats(d).live);
}

struct dispatch_stats ud_stats(struct ud *d)
{
	struct dispatch_stats st;

	dispatch_stats(d->env, &st);
	return st;
}

struct plugin *ud_plugin(struct ud *d, const char *hook, size_t step)
{
	struct generation *g = registry_acquire(&d->reg);
	const struct hook_entry *h;
	struct plugin *p;

	cr_assert_not_null(g);
	h = generation_find_hook(g, hook);
	cr_assert_not_null(h, "no hook %s", hook);
	cr_assert_lt(step, h->nchain);
	p = h->chain[step];
	generation_release(g); /* the registry still holds it */
	return p;
}

char *ud_log(struct ud *d)
{
	char *s = u_read_file(d->u.logpath, NULL);

	return s ? s : strdup("");
}

size_t ud_log_count(struct ud *d, const char *needle)
{
	char *s = ud_log(d);
	size_t n = u_count_str(s, needle);

	free(s);
	return n;
}

void ud_path(struct ud *d, char *out, size_t len, const char *name)
{
	cr_assert_lt((size_t)snprintf(out, len, "%s/%s", d->u.dir, name), len);
}

bool ud_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

double ud_out_num(const struct ud_call *c, const char *path1, const char *path2)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->output, path1);

	if (path2)
		v = cJSON_GetObjectItemCaseSensitive(v, path2);
	cr_assert(cJSON_IsNumber(v), "output has no number %s%s%s", path1, path2 ? "." : "",
		  path2 ? path2 : "");
	return v->valuedouble;
}
