/*
 * dispatch -- see dispatch.h and dispatch_int.h.
 *
 * run_steps() is a trampoline: a step that finishes while run_steps is on
 * the stack (an async plugin completing inside call_async) only records its
 * result, and the loop in run_steps moves on. So a chain never recurses,
 * and answer() is the only place that calls the transport back.
 */
#include "dispatch_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

int64_t dispatch_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool dispatch_on_loop(const struct dispatch_env *env)
{
	return pthread_equal(pthread_self(), env->loop_thread);
}

/* ---- calls ---------------------------------------------------------- */

static void call_ref(struct dispatch_call *c)
{
	c->refs++;
}

static void call_unref(struct dispatch_call *c)
{
	struct dispatch_env *env = c->env;

	if (--c->refs)
		return;
	cJSON_Delete(c->value);
	generation_release(c->gen);
	free(c);
	atomic_fetch_sub_explicit(&env->live, 1, memory_order_relaxed);
}

/* Answer the call once: tell the transport (unless aborted) and drop the
 * "unanswered" reference. */
static void answer(struct dispatch_call *c, struct dispatch_reply *r)
{
	struct dispatch_env *env = c->env;

	if (c->answered) {
		cJSON_Delete(r->output);
		return;
	}
	c->answered = true;
	if (c->deadline_armed) {
		event_del(&c->deadline);
		c->deadline_armed = false;
	}
	TAILQ_REMOVE(&env->calls, c, link);
	atomic_fetch_sub_explicit(&env->pending, 1, memory_order_relaxed);
	if (r->status == 200)
		atomic_fetch_add_explicit(&env->answered_ok, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&env->answered_err, 1, memory_order_relaxed);
	if (c->out) {
		*c->out = NULL;
		c->out = NULL;
	}
	r->hook = c->hook ? c->hook->name : r->hook;
	if (!c->aborted)
		c->done(c->done_arg, r);
	else
		cJSON_Delete(r->output);
	call_unref(c);
}

static void answer_error(struct dispatch_call *c, int status, const char *plugin,
			 unsigned retry_after, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void answer_error(struct dispatch_call *c, int status, const char *plugin,
			 unsigned retry_after, const char *fmt, ...)
{
	struct dispatch_reply r = {.status = status, .plugin = plugin, .retry_after = retry_after};
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r.error = msg;
	answer(c, &r);
}

/* ---- steps ---------------------------------------------------------- */

void dispatch_step_ref(struct hookd_call *s)
{
	s->refs++;
}

void dispatch_step_unref(struct hookd_call *s)
{
	struct dispatch_call *c = s->call;

	if (--s->refs)
		return;
	cJSON_Delete(s->output);
	if (s->input != s->output)
		cJSON_Delete(s->input);
	free(s->fail_msg);
	free(s);
	call_unref(c);
}

static void run_steps(struct dispatch_call *c);

/* The step's result is final: hand it to the call (or drop it when the call
 * was answered already). Runs once per step, on the loop thread. */
static void step_settle(struct hookd_call *s)
{
	struct dispatch_call *c = s->call;
	cJSON *in = s->input, *out = s->output;

	s->input = s->output = NULL;
	if (c->cur == s)
		c->cur = NULL;
	/* A result settled past the deadline is late, even when its callback
	 * ran before the deadline's: a loop held up past both (a busy machine)
	 * runs them in no useful order -- the deadline's common-timeout queue
	 * activates it one callback after a plain timer due later. */
	if (!c->answered && c->deadline_armed && dispatch_now_ns() >= c->deadline_ns)
		answer_error(c, 504, s->plugin->desc.name, 0, "deadline of %u ms passed (in plugin %s)",
			     c->hook->timeout_ms, s->plugin->desc.name);
	if (c->answered || s->fail_status || !out) {
		if (out != in)
			cJSON_Delete(out);
		c->value = in; /* freed with the call */
		if (c->answered)
			return;
		if (s->fail_status)
			answer_error(c, s->fail_status, s->plugin->desc.name, 0, "%s",
				     s->fail_msg ? s->fail_msg : "plugin failed the call");
		else
			answer_error(c, 500, s->plugin->desc.name, 0,
				     "plugin %s returned no output and did not fail the call",
				     s->plugin->desc.name);
		return;
	}
	if (out != in)
		cJSON_Delete(in);
	c->value = out;
	c->step++;
	if (!c->running)
		run_steps(c);
}

void dispatch_step_cancel_pending(struct hookd_call *s)
{
	hostapi_cancel_fetches(s);
	struct hookd_timer *t;

	TAILQ_FOREACH(t, &s->timers, link) {
		if (t->status == HOOKD_ECANCELED)
			continue; /* already on its way */
		t->status = HOOKD_ECANCELED;
		event_del(&t->ev);
		event_active(&t->ev, EV_TIMEOUT, 0);
	}
}

/* Loop thread: the async plugin finished s (complete or fail). */
static void step_finished_on_loop(struct hookd_call *s)
{
	dispatch_step_ref(s);
	step_settle(s);
	dispatch_step_cancel_pending(s);
	dispatch_step_unref(s); /* the guard */
	dispatch_step_unref(s); /* the plugin's reference */
}

static void step_finished_posted(struct pool_job *job)
{
	step_finished_on_loop((struct hookd_call *)job);
}

void dispatch_step_finished(struct hookd_call *s)
{
	struct dispatch_env *env = s->call->env;

	if (dispatch_on_loop(env)) {
		step_finished_on_loop(s);
		return;
	}
	s->job.run = NULL;
	s->job.done = step_finished_posted;
	s->job.sink = &env->sink;
	pool_sink_post(&env->sink, &s->job);
}

/* Worker thread. */
static void sync_run(struct pool_job *job)
{
	struct hookd_call *s = (struct hookd_call *)job;
	struct plugin *p = s->plugin;

	if (atomic_load_explicit(&s->cancelled, memory_order_relaxed))
		return; /* gave up while it waited in the queue: don't start it */
	s->output = p->desc.call_sync(&p->ctx, s, s->input);
}

/* Loop thread, through the sink. */
static void sync_done(struct pool_job *job)
{
	struct hookd_call *s = (struct hookd_call *)job;

	step_settle(s);
	dispatch_step_unref(s); /* the job's reference */
}

static struct hookd_call *step_new(struct dispatch_call *c, struct plugin *p)
{
	struct hookd_call *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->call = c;
	s->plugin = p;
	s->deadline_ns = c->deadline_ns;
	s->refs = 1;
	TAILQ_INIT(&s->timers);
	TAILQ_INIT(&s->fetches);
	atomic_init(&s->cancelled, 0);
	atomic_init(&s->finished, 0);
	call_ref(c);
	return s;
}

static void run_steps(struct dispatch_call *c)
{
	struct dispatch_env *env = c->env;
	int rc;

	call_ref(c);
	c->running = true;
	while (!c->answered && !c->cur) {
		if (c->step == c->hook->nchain) {
			struct dispatch_reply r = {.status = 200, .output = c->value};
			c->value = NULL;
			answer(c, &r);
			break;
		}
		struct plugin *p = c->hook->chain[c->step];
		struct hookd_call *s = step_new(c, p);
		if (!s) {
			answer_error(c, 500, p->desc.name, 0, "out of memory");
			break;
		}
		s->input = c->value;
		c->value = NULL;
		c->cur = s;
		if (!plugin_is_async(p)) {
			s->job.run = sync_run;
			s->job.done = sync_done;
			s->job.sink = &env->sink;
			rc = pool_submit(env->pool, &s->job);
			if (rc < 0) {
				c->cur = NULL;
				c->value = s->input;
				s->input = NULL;
				dispatch_step_unref(s);
				if (rc == -EAGAIN)
					answer_error(c, 503, p->desc.name, 1,
						     "worker queue full: retry later");
				else
					answer_error(c, 503, p->desc.name, 0,
						     "server shutting down");
			}
			break; /* the result comes back through the sink */
		}
		dispatch_step_ref(s); /* the plugin may finish s inside call_async */
		p->desc.call_async(&p->ctx, s, s->input);
		dispatch_step_unref(s);
	}
	c->running = false;
	call_unref(c);
}

/* ---- deadline, abort, shutdown ------------------------------------- */

static void call_cancel(struct dispatch_call *c, int status, const char *msg)
{
	struct hookd_call *s = c->cur;
	const char *plugin = s ? s->plugin->desc.name : NULL;

	if (c->answered)
		return;
	call_ref(c);
	if (s)
		dispatch_step_ref(s);
	if (status == 504)
		answer_error(c, 504, plugin, 0, "deadline of %u ms passed%s%s%s",
			     c->hook->timeout_ms, plugin ? " (in plugin " : "", plugin ? plugin : "",
			     plugin ? ")" : "");
	else
		answer_error(c, status, plugin, status == 503 ? 1 : 0, "%s", msg);
	if (s) {
		atomic_store(&s->cancelled, 1);
		if (plugin_is_async(s->plugin) && !atomic_load(&s->finished)) {
			hookd_cancel_fn fn = s->cancel_fn;
			s->cancel_fn = NULL;
			if (fn)
				fn(&s->plugin->ctx, s, s->cancel_arg);
			dispatch_step_cancel_pending(s);
		}
		dispatch_step_unref(s);
	}
	call_unref(c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct dispatch_call *c = arg;

	(void)fd;
	(void)what;
	c->deadline_armed = false;
	call_cancel(c, 504, NULL);
}

void dispatch_call_abort(struct dispatch_call *c)
{
	if (!c || c->answered)
		return;
	c->aborted = true;
	call_cancel(c, 499, "client went away");
}

void dispatch_cancel_all(struct dispatch_env *env, int status, const char *msg)
{
	while (!TAILQ_EMPTY(&env->calls))
		call_cancel(TAILQ_FIRST(&env->calls), status, msg);
}

void dispatch_call_start(struct dispatch_env *env, const char *hook, cJSON *input,
			 dispatch_done_fn done, void *arg, struct dispatch_call **out)
{
	struct dispatch_call *c = calloc(1, sizeof(*c));
	struct dispatch_reply r = {.hook = hook};

	if (out)
		*out = c;
	if (!c) {
		cJSON_Delete(input);
		r.status = 500;
		r.error = "out of memory";
		done(arg, &r);
		return;
	}
	c->env = env;
	c->refs = 1;
	c->value = input;
	c->done = done;
	c->done_arg = arg;
	c->out = out;
	TAILQ_INSERT_TAIL(&env->calls, c, link);
	atomic_fetch_add_explicit(&env->pending, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&env->live, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&env->started, 1, memory_order_relaxed);

	c->gen = registry_acquire(env->reg);
	if (!c->gen) {
		answer_error(c, 503, NULL, 1, "no plugins loaded yet");
		return;
	}
	c->hook = generation_find_hook(c->gen, hook);
	if (!c->hook) {
		answer_error(c, 404, NULL, 0, "unknown hook \"%s\"", hook);
		return;
	}
	if (c->hook->unavailable) {
		answer_error(c, 503, NULL, 0, "hook %s is unavailable: %s", hook,
			     c->hook->unavailable);
		return;
	}
	c->deadline_ns = dispatch_now_ns() + (int64_t)c->hook->timeout_ms * 1000000;
	{
		struct timeval tv = {c->hook->timeout_ms / 1000, (c->hook->timeout_ms % 1000) * 1000};
		/* one queue per distinct duration instead of the heap (O(1) add/del) */
		const struct timeval *ctv = event_base_init_common_timeout(env->base, &tv);
		event_assign(&c->deadline, env->base, -1, 0, on_deadline, c);
		if (event_add(&c->deadline, ctv ? ctv : &tv) == 0)
			c->deadline_armed = true;
	}
	run_steps(c);
}

/* ---- the environment ------------------------------------------------ */

static void wake_notify(void *arg)
{
	struct dispatch_env *env = arg;
	uint64_t one = 1;
	ssize_t r;

	do
		r = write(env->wake_fd, &one, sizeof(one));
	while (r < 0 && errno == EINTR);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct dispatch_env *env = arg;
	uint64_t n;
	ssize_t r;

	(void)what;
	/* Edge-triggered: every write to an eventfd is a new edge, so the
	 * counter need not be read back to 0 each time (a syscall per wake-up
	 * saved); reading it now and then keeps it far from its 2^64 limit. */
	if ((++env->wakes & 4095) == 0) {
		do
			r = read(fd, &n, sizeof(n));
		while (r < 0 && errno == EINTR);
	}
	pool_sink_drain(&env->sink);
}

int dispatch_env_create(struct event_base *base, struct pool *pool, struct registry *reg,
			struct fetch_engine *fetch, const struct log *log, struct dispatch_env **out)
{
	struct dispatch_env *env = calloc(1, sizeof(*env));
	int rc;

	*out = NULL;
	if (!env)
		return -ENOMEM;
	env->base = base;
	env->pool = pool;
	env->reg = reg;
	env->fetch = fetch;
	env->log = log;
	env->loop_thread = pthread_self();
	TAILQ_INIT(&env->calls);
	env->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (env->wake_fd < 0) {
		rc = -errno;
		free(env);
		return rc;
	}
	if ((rc = pool_sink_init(&env->sink, wake_notify, env)) < 0) {
		close(env->wake_fd);
		free(env);
		return rc;
	}
	event_assign(&env->wake_ev, base, env->wake_fd, EV_READ | EV_PERSIST | EV_ET, on_wake, env);
	if (event_add(&env->wake_ev, NULL) < 0) {
		pool_sink_destroy(&env->sink);
		close(env->wake_fd);
		free(env);
		return -EIO;
	}
	*out = env;
	return 0;
}

void dispatch_env_free(struct dispatch_env *env)
{
	if (!env)
		return;
	pool_sink_drain(&env->sink);
	event_del(&env->wake_ev);
	pool_sink_destroy(&env->sink);
	close(env->wake_fd);
	free(env);
}

bool dispatch_is_loop_thread(const struct dispatch_env *env)
{
	return dispatch_on_loop(env);
}

void dispatch_post(struct dispatch_env *env, struct pool_job *job)
{
	job->run = NULL;
	job->sink = &env->sink;
	pool_sink_post(&env->sink, job);
}

void dispatch_stats(const struct dispatch_env *env, struct dispatch_stats *st)
{
	st->pending = atomic_load_explicit(&env->pending, memory_order_relaxed);
	st->live = atomic_load_explicit(&env->live, memory_order_relaxed);
	st->started = atomic_load_explicit(&env->started, memory_order_relaxed);
	st->answered_ok = atomic_load_explicit(&env->answered_ok, memory_order_relaxed);
	st->answered_err = atomic_load_explicit(&env->answered_err, memory_order_relaxed);
}
