/*
 * dispatch -- see dispatch.h and dispatch_int.h.
 *
 * run_steps() is a trampoline: a step that finishes while run_steps is on
 * the stack (an async plugin completing inside call_async) only records its
 * result, and the loop in run_steps moves on. So a chain never recurses,
 * and call_end() is the only place that calls the transport back.
 */
#include "dispatch_int.h"
#include "clock.h"
#include "blame.h"
#include "crash.h"
#include "json.h"

#include <assert.h>
#include <stddef.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t dispatch_now_ns(void)
{
	return clock_mono_ns();
}

bool dispatch_on_loop(const struct dispatch_env *env)
{
	return pthread_equal(pthread_self(), env->loop_thread);
}

/* ---- plugin code on the loop ----------------------------------------- */

void dispatch_plugin_enter(struct dispatch_env *env, struct blame_frame *f)
{
	blame_push(f);
	if (!env->loop_warn_ms && !env->metrics)
		return;
	f->start_ns = dispatch_now_ns();
	f->child_ns = 0;
	if (env->watchdog)
		watch_enter(&env->watch, f->start_ns);
}

void dispatch_plugin_leave(struct dispatch_env *env, struct blame_frame *f)
{
	int64_t held, own;

	blame_pop(f);
	if (!env->loop_warn_ms && !env->metrics)
		return;
	if (env->watchdog)
		watch_leave(&env->watch);
	held = dispatch_now_ns() - f->start_ns;
	if (f->prev)
		f->prev->child_ns += held;
	own = held - f->child_ns; /* a step started inside is blamed on its own */
	metrics_plugin_loop(env->metrics, f->plugin->metric_slot, own);
	if (env->loop_warn_ms && own >= (int64_t)env->loop_warn_ms * 1000000)
		log_warn(env->log, "plugin %s held loop %u for %lld ms in %s (hook %s, generation "
			 "%llu): async code must never block; every call on this loop waited",
			 f->plugin->desc.name, env->watch.id, (long long)(own / 1000000), f->entry,
			 f->hook ? f->hook : "-", (unsigned long long)f->generation);
}

/* ---- calls ---------------------------------------------------------- */

/* The transitions of enum call_state (see dispatch_int.h), one bit per
 * state that may follow. */
static const unsigned call_next[CALL_STATE_COUNT] = {
	[CALL_NEW] = 1u << CALL_IDLE | 1u << CALL_ANSWERED,
	[CALL_IDLE] = 1u << CALL_IN_STEP | 1u << CALL_ANSWERED | 1u << CALL_ABORTED,
	[CALL_IN_STEP] = 1u << CALL_IDLE | 1u << CALL_ANSWERED | 1u << CALL_ABORTED,
	[CALL_ANSWERED] = 0,
	[CALL_ABORTED] = 0,
};

static void call_enter(struct dispatch_call *c, enum call_state to)
{
	assert(call_next[c->state] & (1u << to));
	c->state = to;
}

static bool call_over(const struct dispatch_call *c)
{
	return c->state == CALL_ANSWERED || c->state == CALL_ABORTED;
}

static const char *const outcome_names[DISPATCH_OUTCOME_COUNT] = {
	[DISPATCH_OK] = "ok",
	[DISPATCH_STEP_FAILED] = "step_failed",
	[DISPATCH_NO_OUTPUT] = "no_output",
	[DISPATCH_NO_HOOK] = "no_hook",
	[DISPATCH_HOOK_UNAVAILABLE] = "hook_unavailable",
	[DISPATCH_NOT_READY] = "not_ready",
	[DISPATCH_OVERLOADED] = "overloaded",
	[DISPATCH_DEADLINE] = "deadline",
	[DISPATCH_SHUTDOWN] = "shutdown",
	[DISPATCH_NOMEM] = "nomem",
	[DISPATCH_CRASHED] = "crashed",
	[DISPATCH_QUARANTINED] = "quarantined",
	[DISPATCH_REFUSED] = "refused",
};

const char *dispatch_outcome_name(enum dispatch_outcome o)
{
	return (unsigned)o < DISPATCH_OUTCOME_COUNT ? outcome_names[o] : "unknown";
}

const char *dispatch_phase_name(enum dispatch_phase p)
{
	return p == DISPATCH_PHASE_ON_ERROR ? "on_error" : p == DISPATCH_PHASE_AFTER ? "after"
										       : "chain";
}

int dispatch_result_status(const struct dispatch_result *r, unsigned *retry_after)
{
	*retry_after = 0;
	switch (r->outcome) {
	case DISPATCH_OK:
		return r->reply && r->reply->status ? r->reply->status : 200;
	case DISPATCH_STEP_FAILED:
		return r->plugin_status >= 400 && r->plugin_status <= 599 ? r->plugin_status : 500;
	case DISPATCH_NO_HOOK:
		return 404;
	case DISPATCH_HOOK_UNAVAILABLE:
		return 503;
	case DISPATCH_NOT_READY:
	case DISPATCH_OVERLOADED:
	case DISPATCH_SHUTDOWN:
	case DISPATCH_REFUSED:
		*retry_after = 1;
		return 503;
	case DISPATCH_DEADLINE:
		return 504;
	case DISPATCH_CRASHED:
		return 502;
	case DISPATCH_QUARANTINED:
		return 503;
	case DISPATCH_NO_OUTPUT:
	case DISPATCH_NOMEM:
	case DISPATCH_OUTCOME_COUNT:
		break;
	}
	return 500;
}

/* The request id of c for log lines ("-": the call did not come over HTTP). */
static const char *call_rid(const struct dispatch_call *c)
{
	return c->in ? c->in->pub.request_id : "-";
}

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
	cJSON_Delete(c->orig);
	cJSON_Delete(c->summary);
	inbound_unref(c->in);
	reply_free(c->reply);
	if (c->saved) {
		free(c->saved->error);
		free(c->saved);
	}
	generation_release(c->gen);
	free(c);
	atomic_fetch_sub_explicit(&env->live, 1, memory_order_relaxed);
}

/* ---- step records (the access log's view of a call) --------------- */

/* Step s starts: record it (no allocation: a fixed array in the call). */
static void rec_start(struct dispatch_call *c, struct dispatch_step *s)
{
	if (c->nrecs == DISPATCH_STEP_RECS) {
		s->rec = -1;
		c->recs_more++;
		return;
	}
	s->rec = (int)c->nrecs++;
	c->recs[s->rec] = (struct dispatch_step_rec){.plugin = s->plugin->desc.name,
						     .started_ns = s->started_ns};
}

/* Step s settled with outcome o, before the call was answered. */
static void rec_end(struct dispatch_call *c, const struct dispatch_step *s,
		    enum dispatch_outcome o)
{
	struct dispatch_step_rec *rec = s->rec >= 0 ? &c->recs[s->rec] : NULL;

	if (!rec || rec->ended)
		return;
	rec->ended = true;
	rec->outcome = o;
	rec->duration_ns = dispatch_now_ns() - rec->started_ns;
}

/* The call is answered: steps still running end with the call's outcome;
 * hand the records to the result. */
static void recs_close(struct dispatch_call *c, struct dispatch_result *r)
{
	int64_t now = 0;

	for (unsigned i = 0; i < c->nrecs; i++) {
		if (c->recs[i].ended)
			continue;
		if (!now)
			now = dispatch_now_ns();
		c->recs[i].ended = true;
		c->recs[i].outcome = r->outcome;
		c->recs[i].duration_ns = now - c->recs[i].started_ns;
	}
	r->steps = c->nrecs ? c->recs : NULL;
	r->nsteps = c->nrecs;
	r->steps_more = c->recs_more;
}

static bool phase_handles(enum dispatch_outcome o);
static int on_error_start(struct dispatch_call *c, const struct dispatch_result *r);
static void after_start(struct dispatch_call *c, const struct dispatch_result *r, cJSON *out);

/* End the call once, in `final` (ANSWERED: tell the transport; ABORTED:
 * nobody to tell), and drop the "unanswered" reference. */
static void call_end(struct dispatch_call *c, enum call_state final, struct dispatch_result *r)
{
	struct dispatch_env *env = c->env;
	bool armed = c->state != CALL_NEW;
	bool observe;
	cJSON *out_copy = NULL;

	if (call_over(c)) {
		cJSON_Delete(r->output);
		return;
	}
	call_enter(c, final);
	if (armed)
		event_del(&c->deadline);
	TAILQ_REMOVE(&env->calls, c, link);
	atomic_fetch_sub_explicit(&env->pending, 1, memory_order_relaxed);
	if (final != CALL_ANSWERED) {
		if (c->phase != DISPATCH_PHASE_AFTER)
			atomic_fetch_add_explicit(&env->answered_err, 1, memory_order_relaxed);
		if (c->out)
			*c->out = NULL;
		cJSON_Delete(r->output);
		call_unref(c);
		return;
	}
	if (c->hook) {
		r->hook = c->hook->name;
		r->hook_slot = c->hook->metric_slot;
	}
	r->generation = c->gen ? c->gen->id : 0;
	recs_close(c, r);
	if (c->phase == DISPATCH_PHASE_CHAIN && c->hook && c->hook->non_error &&
	    phase_handles(r->outcome) && on_error_start(c, r) == 0) {
		call_unref(c); /* the on_error steps answer in its place */
		return;
	}
	if (c->phase != DISPATCH_PHASE_AFTER) /* an after phase's hook call was counted */
		atomic_fetch_add_explicit(r->outcome == DISPATCH_OK ? &env->answered_ok
								  : &env->answered_err,
					  1, memory_order_relaxed);
	if (c->out) {
		*c->out = NULL;
		c->out = NULL;
	}
	/* observed: every call that reached the hook's steps (a hook that
	 * cannot run has nothing to observe) */
	observe = c->hook && c->hook->nafter && c->phase != DISPATCH_PHASE_AFTER &&
		  r->outcome != DISPATCH_HOOK_UNAVAILABLE;
	if (r->outcome == DISPATCH_OK)
		r->reply = c->reply;
	if (observe && r->outcome == DISPATCH_OK && r->output)
		out_copy = cJSON_Duplicate(r->output, 1);
	r->sent_status = 0;
	c->done(c->done_arg, r);
	if (observe)
		after_start(c, r, out_copy);
	call_unref(c);
}

/* End the call with an error outcome; `s` is the step to blame, or NULL. */
static void call_fail(struct dispatch_call *c, enum call_state final, enum dispatch_outcome o,
		      const struct dispatch_step *s, const char *hook, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static void call_fail(struct dispatch_call *c, enum call_state final, enum dispatch_outcome o,
		      const struct dispatch_step *s, const char *hook, const char *fmt, ...)
{
	struct dispatch_result r = {.outcome = o, .hook = hook, .step = -1};
	char msg[512];
	va_list ap;

	if (s) {
		r.plugin = s->plugin->desc.name;
		r.step = (int)s->index;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r.error = msg;
	call_end(c, final, &r);
}

/* ---- steps ---------------------------------------------------------- */

void dispatch_step_ref(struct dispatch_step *s)
{
	s->refs++;
}

/* Count the end of step s in the loop's metrics, once (a step the host
 * cancelled and the plugin finishes later was counted when cancelled). */
static void step_count(struct dispatch_step *s, enum metrics_outcome o)
{
	if (s->counted)
		return;
	s->counted = true;
	metrics_plugin_step(s->call->env->metrics, s->plugin->metric_slot, o,
			    dispatch_now_ns() - s->started_ns);
}

/* A step that ended without an outcome worth counting (shutdown, client
 * gone): never counted. */
static void step_uncounted(struct dispatch_step *s)
{
	s->counted = true;
}

/* The metrics outcome of a step the host failed with `o`. */
static void step_count_host(struct dispatch_step *s, enum dispatch_outcome o)
{
	switch (o) {
	case DISPATCH_CRASHED: step_count(s, METRICS_CRASHED); break;
	case DISPATCH_QUARANTINED:
	case DISPATCH_REFUSED:
	case DISPATCH_OVERLOADED: step_count(s, METRICS_REFUSED); break;
	case DISPATCH_DEADLINE: step_count(s, METRICS_TIMEOUT); break;
	case DISPATCH_SHUTDOWN: step_uncounted(s); break;
	default: step_count(s, METRICS_FAILED); break;
	}
}

/* A cancelled async step the plugin has not finished counts against its
 * plugin's bound (held_calls, at most the config's queue). */
static void held_count(struct dispatch_step *s)
{
	if (!s->held_counted && !atomic_load(&s->finished)) {
		s->held_counted = true;
		atomic_fetch_add_explicit(&s->plugin->held_calls, 1, memory_order_relaxed);
	}
}

static void held_uncount(struct dispatch_step *s)
{
	if (s->held_counted) {
		s->held_counted = false;
		atomic_fetch_sub_explicit(&s->plugin->held_calls, 1, memory_order_relaxed);
	}
}

void dispatch_step_unref(struct dispatch_step *s)
{
	struct dispatch_call *c = s->call;

	if (--s->refs)
		return;
	cJSON_Delete(s->output);
	if (s->input != s->output)
		cJSON_Delete(s->input);
	if (s->held_armed)
		event_del(&s->held_ev);
	held_uncount(s);
	if (s->in_flight)
		atomic_fetch_sub_explicit(&s->plugin->in_flight, 1, memory_order_relaxed);
	free(s->fail_msg);
	cJSON_Delete(s->open_input);
	isolate_req_clear(&s->iso);
	reply_free(s->reply);
	free(s);
	call_unref(c);
}

static void run_steps(struct dispatch_call *c);

static enum plugin_skip skip_kind(enum dispatch_outcome o)
{
	switch (o) {
	case DISPATCH_CRASHED: return PLUGIN_SKIP_CRASHED;
	case DISPATCH_QUARANTINED: return PLUGIN_SKIP_QUARANTINED;
	case DISPATCH_DEADLINE: return PLUGIN_SKIP_TIMEOUT;
	default: return PLUGIN_SKIP_FAILED;
	}
}

/* A failed step of a fail-open plugin (failure_mode "open") is skipped: its
 * input (c->value) flows to the next step. Returns true when it did so. */
static bool step_skip(struct dispatch_call *c, struct dispatch_step *s)
{
	enum dispatch_outcome o = s->host_failed ? s->host_outcome : DISPATCH_STEP_FAILED;
	static const char *const kinds[] = {"failed", "crashed", "timed out", "quarantined"};

	if (!s->plugin->fail_open || o == DISPATCH_SHUTDOWN || o == DISPATCH_NOMEM ||
	    c->phase != DISPATCH_PHASE_CHAIN)
		return false;
	enum plugin_skip k = skip_kind(o);
	atomic_fetch_add_explicit(&s->plugin->skipped[k], 1, memory_order_relaxed);
	step_count(s, METRICS_SKIPPED);
	if (s->rec >= 0)
		c->recs[s->rec].skipped = true;
	log_debug(c->env->log, "plugin %s %s in hook %s (generation %llu, step %zu): skipped "
		  "(failure_mode open): %s; request_id %s", s->plugin->desc.name, kinds[k],
		  c->hook->name, (unsigned long long)c->gen->id, s->index,
		  s->fail_msg ? s->fail_msg : "no output", call_rid(c));
	c->step++;
	call_enter(c, CALL_IDLE);
	if (!c->walking)
		run_steps(c);
	return true;
}

/* Step s succeeded: its reply settings join the call's. */
static int reply_take(struct dispatch_call *c, struct dispatch_step *s)
{
	if (!c->reply && !(c->reply = calloc(1, sizeof(*c->reply))))
		return -1;
	reply_merge(c->reply, s->reply);
	return 0;
}

static void phase_end_early(struct dispatch_call *c, struct dispatch_step *s,
			    enum dispatch_outcome o);
static void phase_step_settled(struct dispatch_call *c, struct dispatch_step *s, cJSON *in,
			       cJSON *out);

/* The step's result is final: hand it to the call (or drop it when the call
 * has ended already). Runs once per step, on the loop thread. */
static void step_settle(struct dispatch_step *s)
{
	struct dispatch_call *c = s->call;
	cJSON *in = s->input, *out = s->output;
	const char *name = s->plugin->desc.name;

	s->input = s->output = NULL;
	if (c->cur == s)
		c->cur = NULL;
	if (!call_over(c))
		rec_end(c, s, s->host_failed ? s->host_outcome
			      : s->fail_status ? DISPATCH_STEP_FAILED
			      : !out ? DISPATCH_NO_OUTPUT : DISPATCH_OK);
	/* A result settled past the deadline is late, even when its callback
	 * ran before the deadline's: a loop held up past both (a busy machine)
	 * runs them in no useful order -- the deadline's common-timeout queue
	 * activates it one callback after a plain timer due later. */
	if (!call_over(c) && dispatch_now_ns() >= c->deadline_ns) {
		step_count(s, METRICS_TIMEOUT);
		if (c->phase != DISPATCH_PHASE_CHAIN)
			phase_end_early(c, s, DISPATCH_DEADLINE);
		else
			call_fail(c, CALL_ANSWERED, DISPATCH_DEADLINE, s, NULL,
				  "deadline of %u ms passed in plugin %s (step %zu)", c->timeout_ms,
				  name, s->index);
	}
	if (!call_over(c) && c->phase != DISPATCH_PHASE_CHAIN) {
		phase_step_settled(c, s, in, out);
		return;
	}
	if (call_over(c) || s->fail_status || s->host_failed || !out) {
		if (out != in)
			cJSON_Delete(out);
		c->value = in; /* freed with the call */
		if (call_over(c)) {
			step_uncounted(s); /* counted when the call was cancelled, if at all */
			return;
		}
		if (step_skip(c, s))
			return;
		if (s->host_failed)
			step_count_host(s, s->host_outcome);
		else
			step_count(s, METRICS_FAILED);
		if (s->host_failed) {
			call_fail(c, CALL_ANSWERED, s->host_outcome, s, NULL, "%s",
				  s->fail_msg ? s->fail_msg : dispatch_outcome_name(s->host_outcome));
		} else if (s->fail_status) {
			struct dispatch_result r = {.outcome = DISPATCH_STEP_FAILED,
						    .plugin_status = s->fail_status,
						    .error = s->fail_msg ? s->fail_msg
									 : "plugin failed the call",
						    .plugin = name,
						    .step = (int)s->index};
			call_end(c, CALL_ANSWERED, &r);
		} else {
			call_fail(c, CALL_ANSWERED, DISPATCH_NO_OUTPUT, s, NULL,
				  "plugin %s returned no output and did not fail the call", name);
		}
		return;
	}
	if (out != in)
		cJSON_Delete(in);
	step_count(s, METRICS_OK);
	if (s->reply && reply_take(c, s) < 0) {
		cJSON_Delete(out);
		call_fail(c, CALL_ANSWERED, DISPATCH_NOMEM, s, NULL, "out of memory");
		return;
	}
	c->value = out;
	c->step++;
	call_enter(c, CALL_IDLE);
	if (!c->walking)
		run_steps(c);
}

void dispatch_step_cancel_pending(struct dispatch_step *s)
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
static void step_finished_on_loop(struct dispatch_step *s)
{
	held_uncount(s);
	dispatch_step_ref(s);
	step_settle(s);
	dispatch_step_cancel_pending(s);
	dispatch_step_unref(s); /* the guard */
	dispatch_step_unref(s); /* the plugin's reference */
}

static void step_finished_posted(struct pool_job *job)
{
	step_finished_on_loop((struct dispatch_step *)job);
}

void dispatch_step_finished(struct dispatch_step *s)
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
	struct dispatch_step *s = (struct dispatch_step *)job;
	struct plugin *p = s->plugin;
	int queued = STEP_QUEUED;

	/* the host gave up while it waited in the queue: don't start it */
	if (!atomic_compare_exchange_strong(&s->phase, &queued, STEP_ENTERED))
		return;
	crash_thread_init(); /* once per worker: a stack overflow is reported too */
	blame_push(&s->frame);
	s->output = p->desc.call_sync(&p->ctx, step_handle(s), s->input);
	blame_pop(&s->frame);
}

/* Loop thread, through the sink. */
static void sync_done(struct pool_job *job)
{
	struct dispatch_step *s = (struct dispatch_step *)job;

	if (atomic_load_explicit(&s->phase, memory_order_relaxed) == STEP_ENTERED)
		metrics_queue_wait(s->call->env->metrics, job->waited_ns);
	if (s->stuck) {
		struct dispatch_call *c = s->call;
		atomic_fetch_sub_explicit(&s->plugin->stuck_workers, 1, memory_order_relaxed);
		log_info(c->env->log, "plugin %s released its stuck worker %lld ms after its step "
			 "started (hook %s, generation %llu); request_id %s", s->plugin->desc.name,
			 (long long)((dispatch_now_ns() - s->started_ns) / 1000000), c->hook->name,
			 (unsigned long long)c->gen->id, call_rid(c));
	}

	step_settle(s);
	dispatch_step_unref(s); /* the job's reference */
}

static struct dispatch_step *step_new(struct dispatch_call *c, struct plugin *p)
{
	struct dispatch_step *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->call = c;
	s->plugin = p;
	s->index = c->step;
	s->started_ns = dispatch_now_ns();
	s->deadline_ns = c->deadline_ns;
	rec_start(c, s);
	s->refs = 1;
	TAILQ_INIT(&s->timers);
	TAILQ_INIT(&s->fetches);
	atomic_init(&s->cancelled, 0);
	atomic_init(&s->phase, STEP_QUEUED);
	atomic_init(&s->finished, 0);
	call_ref(c);
	return s;
}

/* The host fails step s before its plugin ran (`msg` taken, may be NULL):
 * settle it now and drop the reference its start would have handed on. */
static void step_fail_now(struct dispatch_step *s, enum dispatch_outcome o, char *msg)
{
	s->host_failed = true;
	s->host_outcome = o;
	free(s->fail_msg);
	s->fail_msg = msg;
	isolate_req_clear(&s->iso);
	step_settle(s);
	dispatch_step_unref(s);
}

/* Loop thread, through the sink: an isolated step's request is over. */
static void iso_done(struct pool_job *job)
{
	struct dispatch_step *s =
		(struct dispatch_step *)(void *)((char *)job - offsetof(struct dispatch_step, iso.job));
	struct isolate_req *r = &s->iso;

	switch (r->end) {
	case ISOLATE_RESULT:
		if (r->outcome == DISPATCH_OK) {
			s->output = r->output;
			r->output = NULL;
			s->reply = r->reply; /* what it set of the reply, in its process */
			r->reply = NULL;
		} else if (r->outcome == DISPATCH_STEP_FAILED) {
			s->fail_status = r->plugin_status;
		} else if (r->outcome != DISPATCH_NO_OUTPUT) {
			s->host_failed = true;
			s->host_outcome = r->outcome > 0 && r->outcome < DISPATCH_OUTCOME_COUNT
						  ? (enum dispatch_outcome)r->outcome
						  : DISPATCH_NOMEM;
		}
		break;
	case ISOLATE_CRASHED:
	case ISOLATE_KILLED:
		s->host_failed = true;
		s->host_outcome = DISPATCH_CRASHED;
		break;
	case ISOLATE_QUARANTINED:
		s->host_failed = true;
		s->host_outcome = DISPATCH_QUARANTINED;
		break;
	case ISOLATE_OVERLOADED:
		s->host_failed = true;
		s->host_outcome = DISPATCH_OVERLOADED;
		break;
	case ISOLATE_CANCELLED:
	case ISOLATE_SHUTDOWN:
		s->host_failed = true;
		s->host_outcome = DISPATCH_SHUTDOWN;
		break;
	}
	free(s->fail_msg);
	s->fail_msg = r->error;
	r->error = NULL;
	isolate_req_clear(r);
	step_settle(s);
	dispatch_step_unref(s); /* the request's reference */
}

/* Send step s of an isolated plugin to its processes. Returns 0 (iso_done
 * will settle it), or -1 when it was settled at once (quarantined, no
 * room): the caller goes on walking. */
static int iso_start(struct dispatch_call *c, struct dispatch_step *s)
{
	struct jbuf text = {0};
	int64_t left = c->deadline_ns - dispatch_now_ns();
	char *msg;

	if (json_print(s->input, &text) < 0) {
		jbuf_free(&text);
		step_fail_now(s, DISPATCH_NOMEM, NULL);
		return -1;
	}
	s->iso.input = text.data;
	s->iso.input_len = text.len;
	if (c->in) {
		struct jbuf req = {0};
		if (inbound_encode(&c->in->pub, c->phase == DISPATCH_PHASE_AFTER, &req) < 0) {
			jbuf_free(&req);
			step_fail_now(s, DISPATCH_NOMEM, NULL);
			return -1;
		}
		s->iso.inbound = req.data;
		s->iso.inbound_len = req.len;
	}
	s->iso.hook = c->hook->name;
	s->iso.timeout_ms = left > 0 ? (uint32_t)(left / 1000000) : 0;
	s->iso.job.done = iso_done;
	s->iso.job.sink = &c->env->sink;
	if (isolate_submit(s->plugin->iso, &s->iso) == 0)
		return 0;
	msg = s->iso.error ? s->iso.error
			   : strdup("isolated plugin: no process can take the call: retry later");
	s->iso.error = NULL;
	step_fail_now(s, s->iso.end == ISOLATE_QUARANTINED ? DISPATCH_QUARANTINED
							   : DISPATCH_OVERLOADED, msg);
	return -1;
}

/* Admission control: a plugin with max_in_flight runs at most that many
 * steps at once (begun and not finished by the plugin, on every loop); a
 * step over it is refused at once. Returns true when s may run (it counts
 * until it is freed), false when it was settled as refused. */
static bool admit(struct dispatch_step *s)
{
	struct plugin *p = s->plugin;
	unsigned was = atomic_fetch_add_explicit(&p->in_flight, 1, memory_order_relaxed);
	char msg[256];

	if (was < p->max_in_flight) {
		s->in_flight = true;
		return true;
	}
	atomic_fetch_sub_explicit(&p->in_flight, 1, memory_order_relaxed);
	snprintf(msg, sizeof(msg), "plugin %s is running %u call(s), its max_in_flight: retry "
		 "later", p->desc.name, p->max_in_flight);
	step_fail_now(s, DISPATCH_REFUSED, strdup(msg));
	return false;
}

/* Walk the chain from c->step while the call is IDLE. A trampoline: an
 * async step finished inside call_async only settles (IN_STEP -> IDLE) and
 * this loop starts the next one, so a chain never recurses. */
static void run_steps(struct dispatch_call *c)
{
	struct dispatch_env *env = c->env;
	int rc;

	call_ref(c);
	c->walking = true;
	while (c->state == CALL_IDLE) {
		if (c->step == c->nplan) {
			if (c->phase != DISPATCH_PHASE_CHAIN) {
				phase_end_early(c, NULL, DISPATCH_OK);
				break;
			}
			struct dispatch_result r = {.outcome = DISPATCH_OK, .output = c->value,
						    .step = -1,
						    .max_output = c->gen->cfg->max_output};
			if (c->step) {
				r.step = (int)c->step - 1;
				r.plugin = c->plan[c->step - 1]->desc.name;
			}
			c->value = NULL;
			call_end(c, CALL_ANSWERED, &r);
			break;
		}
		struct plugin *p = c->plan[c->step];
		struct dispatch_step *s = step_new(c, p);
		if (!s) {
			call_fail(c, CALL_ANSWERED, DISPATCH_NOMEM, NULL, NULL, "out of memory");
			break;
		}
		s->input = c->value;
		c->value = NULL;
		c->cur = s;
		/* a fail-open last step whose deadline passes answers with its
		 * input: keep a copy (the plugin may change or free its own) */
		if (p->fail_open && c->step + 1 == c->nplan && c->phase == DISPATCH_PHASE_CHAIN)
			s->open_input = cJSON_Duplicate(s->input, 1);
		call_enter(c, CALL_IN_STEP);
		if (p->max_in_flight && !admit(s))
			continue; /* refused: failed, or skipped */
		if (p->iso) {
			if (iso_start(c, s) < 0)
				continue; /* settled at once: failed, or skipped */
			break; /* the result comes back through the sink */
		}
		if (!plugin_is_async(p)) {
			/* the worker's blame frame, made here: reading the call and
			 * its generation from the worker would pull their cache
			 * lines (written by this loop every call) to its core */
			s->frame = (struct blame_frame){p, c->hook->name, c->gen->id, "call_sync"};
			s->job.run = sync_run;
			s->job.done = sync_done;
			s->job.sink = &env->sink;
			rc = pool_submit(env->pool, &s->job);
			if (rc < 0) {
				if (rc == -EAGAIN)
					step_count(s, METRICS_REFUSED);
				else
					step_uncounted(s);
				c->cur = NULL;
				c->value = s->input;
				s->input = NULL;
				if (rc == -EAGAIN)
					call_fail(c, CALL_ANSWERED, DISPATCH_OVERLOADED, s, NULL,
						  "worker queue full: retry later");
				else
					call_fail(c, CALL_ANSWERED, DISPATCH_SHUTDOWN, s, NULL,
						  "server shutting down");
				dispatch_step_unref(s);
			}
			break; /* the result comes back through the sink */
		}
		unsigned held = atomic_load_explicit(&p->held_calls, memory_order_relaxed);
		if (held >= c->gen->cfg->queue) {
			/* every call it never finishes keeps memory: bounded */
			char msg[256];
			snprintf(msg, sizeof(msg), "plugin %s holds %u cancelled calls it never "
				 "finished (the bound is queue = %u): its new calls are refused until "
				 "it finishes them", p->desc.name, held, c->gen->cfg->queue);
			step_fail_now(s, DISPATCH_OVERLOADED, strdup(msg));
			continue;
		}
		dispatch_step_ref(s); /* the plugin may finish s inside call_async */
		struct blame_frame f = {p, c->hook->name, c->gen->id, "call_async"};
		dispatch_plugin_enter(env, &f);
		p->desc.call_async(&p->ctx, step_handle(s), s->input);
		dispatch_plugin_leave(env, &f);
		dispatch_step_unref(s);
	}
	c->walking = false;
	call_unref(c);
}

/* ---- deadline, abort, shutdown ------------------------------------- */

#define DISPATCH_HELD_WARN_MS 5000 /* a cancelled step still unfinished after this is logged */

/* The plugin has still not finished a step the host cancelled: the call
 * and its generation (the plugin's code, the old config) stay loaded until
 * it does. Say so, naming it, once. */
static void on_held(evutil_socket_t fd, short what, void *arg)
{
	struct dispatch_step *s = arg;
	struct dispatch_call *c = s->call;

	(void)fd;
	(void)what;
	s->held_armed = false;
	if (atomic_load(&s->finished))
		return;
	log_warn(c->env->log, "plugin %s has not finished a call of hook %s (generation %llu) "
		 "%d ms after hookd cancelled it: the call and generation %llu stay loaded until "
		 "it calls hookd_complete or hookd_fail (a plugin bug); request_id %s",
		 s->plugin->desc.name, c->hook->name, (unsigned long long)c->gen->id,
		 DISPATCH_HELD_WARN_MS, (unsigned long long)c->gen->id, call_rid(c));
}

static void watch_held(struct dispatch_step *s)
{
	struct timeval tv = {DISPATCH_HELD_WARN_MS / 1000, DISPATCH_HELD_WARN_MS % 1000 * 1000};

	if (s->held_armed || atomic_load(&s->finished))
		return;
	evtimer_assign(&s->held_ev, s->call->env->base, on_held, s);
	if (evtimer_add(&s->held_ev, &tv) == 0)
		s->held_armed = true;
}

/* A sync step's deadline passed with its worker inside the plugin: the
 * worker is stuck there for as long as the plugin likes. Replace it, so
 * that one plugin that hangs cannot take every worker (and every sync hook)
 * down with it, and say which plugin holds it. */
static void replace_stuck_worker(struct dispatch_call *c, struct dispatch_step *s)
{
	struct dispatch_env *env = c->env;
	const char *name = s->plugin->desc.name;
	int rc = pool_job_stuck(env->pool, &s->job);

	if (rc == -EALREADY)
		return; /* it returned meanwhile: not stuck */
	if (rc == 0) {
		s->stuck = true;
		atomic_fetch_add_explicit(&s->plugin->stuck_workers, 1, memory_order_relaxed);
		log_warn(env->log, "worker stuck in plugin %s (hook %s, generation %llu) for %lld ms, "
			 "past the call's deadline: started a replacement worker (%u stuck); "
			 "request_id %s", name, c->hook->name, (unsigned long long)c->gen->id,
			 (long long)((dispatch_now_ns() - s->started_ns) / 1000000),
			 pool_stuck(env->pool), call_rid(c));
	} else {
		log_warn(env->log, "worker stuck in plugin %s (hook %s, generation %llu) for %lld ms, "
			 "past the call's deadline; no replacement: %s; request_id %s", name,
			 c->hook->name, (unsigned long long)c->gen->id,
			 (long long)((dispatch_now_ns() - s->started_ns) / 1000000),
			 rc == -EAGAIN ? "max_stuck_workers reached" : strerror(-rc), call_rid(c));
	}
}

/* End the call before its chain did (deadline, shutdown, client gone) and
 * cancel the step in flight: its plugin is told, its timers and requests
 * call back with HOOKD_ECANCELED, and a sync step still queued never runs. */
static void call_cancel(struct dispatch_call *c, enum call_state final, enum dispatch_outcome o)
{
	struct dispatch_step *s = c->state == CALL_IN_STEP ? c->cur : NULL;
	const char *plugin = s ? s->plugin->desc.name : NULL;
	bool queued = false;

	if (call_over(c))
		return;
	call_ref(c);
	if (s) {
		dispatch_step_ref(s);
		atomic_store(&s->cancelled, 1);
		if (!plugin_is_async(s->plugin) && !s->plugin->iso) {
			int expect = STEP_QUEUED;
			queued = atomic_compare_exchange_strong(&s->phase, &expect, STEP_SKIPPED);
		}
	}
	if (s && o == DISPATCH_DEADLINE)
		step_count(s, s->open_input ? METRICS_SKIPPED : METRICS_TIMEOUT);
	else if (s)
		step_uncounted(s);
	if (final == CALL_ABORTED) {
		struct dispatch_result r = {.outcome = o, .step = -1};
		call_end(c, CALL_ABORTED, &r);
	} else if (c->phase != DISPATCH_PHASE_CHAIN) {
		phase_end_early(c, s, o);
	} else if (o != DISPATCH_DEADLINE) {
		call_fail(c, final, o, s, NULL, "server shutting down");
	} else if (s && s->open_input) {
		/* failure_mode open: the last step's timeout is skipped */
		struct dispatch_result r = {.outcome = DISPATCH_OK, .output = s->open_input,
					    .plugin = plugin, .step = (int)s->index,
					    .max_output = c->gen->cfg->max_output};
		s->open_input = NULL;
		atomic_fetch_add_explicit(&s->plugin->skipped[PLUGIN_SKIP_TIMEOUT], 1,
					  memory_order_relaxed);
		rec_end(c, s, DISPATCH_DEADLINE);
		if (s->rec >= 0)
			c->recs[s->rec].skipped = true;
		log_debug(c->env->log, "plugin %s timed out in hook %s (generation %llu, step %zu): "
			  "skipped (failure_mode open); request_id %s", plugin, c->hook->name,
			  (unsigned long long)c->gen->id, s->index, call_rid(c));
		call_end(c, final, &r);
	} else if (!s) {
		call_fail(c, final, o, NULL, NULL, "deadline of %u ms passed", c->timeout_ms);
	} else if (queued) {
		struct dispatch_result r = {.outcome = o, .queued = true, .plugin = plugin,
					    .step = (int)s->index};
		char msg[256];
		snprintf(msg, sizeof(msg),
			 "deadline of %u ms passed while step %zu (plugin %s) waited for a "
			 "worker: every worker was busy", c->timeout_ms, s->index, plugin);
		r.error = msg;
		call_end(c, final, &r);
	} else {
		call_fail(c, final, o, s, NULL, "deadline of %u ms passed in plugin %s (step %zu)",
			  c->timeout_ms, plugin, s->index);
	}
	if (s && s->plugin->iso)
		/* a sync call past its deadline: its process is killed and replaced */
		isolate_cancel(s->plugin->iso, &s->iso,
			       o == DISPATCH_DEADLINE && !plugin_is_async(s->plugin));
	else if (s && o == DISPATCH_DEADLINE && !plugin_is_async(s->plugin) && !queued)
		replace_stuck_worker(c, s);
	if (s) {
		if (plugin_is_async(s->plugin) && !s->plugin->iso && !atomic_load(&s->finished)) {
			hookd_cancel_fn fn = s->cancel_fn;
			s->cancel_fn = NULL;
			if (fn) {
				struct blame_frame f = {s->plugin, c->hook->name, c->gen->id,
							"cancel callback"};
				dispatch_plugin_enter(c->env, &f);
				fn(&s->plugin->ctx, step_handle(s), s->cancel_arg);
				dispatch_plugin_leave(c->env, &f);
			}
			dispatch_step_cancel_pending(s);
			held_count(s);
			watch_held(s);
		}
		dispatch_step_unref(s);
	}
	call_unref(c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct dispatch_call *c = arg;
	int64_t left = c->deadline_ns - dispatch_now_ns();

	(void)fd;
	(void)what;
	/* libevent times its timers with a coarse clock (up to 4 ms behind)
	 * and, inside a callback, with the time cached when the loop
	 * iteration began: a deadline armed late in an iteration fires early
	 * by what the iteration had spent. The call's time is the precise
	 * clock's, as remaining_ms() tells plugins: wait for what is left. */
	if (left > 0) {
		struct timeval tv = {(time_t)(left / 1000000000),
				     (suseconds_t)(left % 1000000000 / 1000) + 1};
		if (event_add(&c->deadline, &tv) == 0)
			return;
	}
	call_cancel(c, CALL_ANSWERED, DISPATCH_DEADLINE);
}

void dispatch_call_abort(struct dispatch_call *c)
{
	if (c)
		call_cancel(c, CALL_ABORTED, DISPATCH_SHUTDOWN);
}

void dispatch_cancel_all(struct dispatch_env *env)
{
	while (!TAILQ_EMPTY(&env->calls))
		call_cancel(TAILQ_FIRST(&env->calls), CALL_ANSWERED, DISPATCH_SHUTDOWN);
}

/* ---- calls, and the phases after the chain -------------------------- */

static void call_init(struct dispatch_call *c, struct dispatch_env *env, cJSON *input,
		      struct inbound *in, dispatch_done_fn done, void *arg,
		      struct dispatch_call **out)
{
	c->env = env;
	c->state = CALL_NEW;
	c->refs = 1;
	c->value = input;
	c->in = in;
	c->done = done;
	c->done_arg = arg;
	c->out = out;
	TAILQ_INSERT_TAIL(&env->calls, c, link);
	atomic_fetch_add_explicit(&env->pending, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&env->live, 1, memory_order_relaxed);
}

/* Arm the deadline of c's phase (c->timeout_ms from now) and walk its plan. */
static void call_run(struct dispatch_call *c)
{
	struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
	/* one queue per distinct duration instead of the heap (O(1) add/del) */
	const struct timeval *ctv = event_base_init_common_timeout(c->env->base, &tv);

	c->deadline_ns = dispatch_now_ns() + (int64_t)c->timeout_ms * 1000000;
	event_assign(&c->deadline, c->env->base, -1, 0, on_deadline, c);
	if (event_add(&c->deadline, ctv ? ctv : &tv) < 0) {
		call_fail(c, CALL_ANSWERED, DISPATCH_NOMEM, NULL, NULL,
			  "cannot arm the call's deadline");
		return;
	}
	call_enter(c, CALL_IDLE);
	run_steps(c);
}

void dispatch_call_start(struct dispatch_env *env, const char *hook, cJSON *input,
			 struct inbound *in, dispatch_done_fn done, void *arg,
			 struct dispatch_call **out)
{
	struct dispatch_call *c = calloc(1, sizeof(*c));

	if (out)
		*out = c;
	if (!c) {
		struct dispatch_result r = {.outcome = DISPATCH_NOMEM, .error = "out of memory",
					    .hook = hook, .step = -1};
		cJSON_Delete(input);
		inbound_unref(in);
		done(arg, &r);
		return;
	}
	call_init(c, env, input, in, done, arg, out);
	atomic_fetch_add_explicit(&env->started, 1, memory_order_relaxed);
	c->t0_ns = dispatch_now_ns();
	c->gen = registry_acquire(env->reg);
	if (!c->gen) {
		call_fail(c, CALL_ANSWERED, DISPATCH_NOT_READY, NULL, hook, "no plugins loaded yet");
		return;
	}
	c->hook = generation_find_hook(c->gen, hook);
	if (!c->hook) {
		call_fail(c, CALL_ANSWERED, DISPATCH_NO_HOOK, NULL, hook, "unknown hook \"%s\"",
			  hook);
		return;
	}
	if (c->hook->unavailable) {
		call_fail(c, CALL_ANSWERED, DISPATCH_HOOK_UNAVAILABLE, NULL, NULL,
			  "hook %s is unavailable: %s", hook, c->hook->unavailable);
		return;
	}
	c->phase = DISPATCH_PHASE_CHAIN;
	c->plan = c->hook->chain;
	c->nplan = c->hook->nchain;
	c->timeout_ms = c->hook->timeout_ms;
	/* the phases after the chain see the input as it came: steps may
	 * change theirs in place */
	if ((c->hook->non_error || c->hook->nafter) && input &&
	    !(c->orig = cJSON_Duplicate(input, 1))) {
		call_fail(c, CALL_ANSWERED, DISPATCH_NOMEM, NULL, NULL, "out of memory");
		return;
	}
	call_run(c);
}

/* The outcomes on_error steps handle: a step failed, or the time ran out.
 * (No hook, a hook that cannot run, no plugins, shutdown: no chain ran.) */
static bool phase_handles(enum dispatch_outcome o)
{
	switch (o) {
	case DISPATCH_STEP_FAILED:
	case DISPATCH_NO_OUTPUT:
	case DISPATCH_DEADLINE:
	case DISPATCH_CRASHED:
	case DISPATCH_QUARANTINED:
	case DISPATCH_REFUSED:
	case DISPATCH_OVERLOADED:
		return true;
	default:
		return false;
	}
}

/* {"status", "message", "outcome", "plugin", "step", "generation"} of a
 * failed result, or NULL (out of memory). */
static cJSON *error_object(const struct dispatch_result *r, uint64_t generation)
{
	cJSON *e = cJSON_CreateObject();
	unsigned ra;

	if (!e)
		return NULL;
	cJSON_AddNumberToObject(e, "status", dispatch_result_status(r, &ra));
	cJSON_AddStringToObject(e, "message", r->error ? r->error : dispatch_outcome_name(r->outcome));
	cJSON_AddStringToObject(e, "outcome", dispatch_outcome_name(r->outcome));
	if (r->plugin)
		cJSON_AddStringToObject(e, "plugin", r->plugin);
	else
		cJSON_AddNullToObject(e, "plugin");
	cJSON_AddNumberToObject(e, "step", r->step);
	cJSON_AddNumberToObject(e, "generation", (double)generation);
	return e;
}

/* A call of phase `ph` of c's hook, on c's loop, generation and request. */
static struct dispatch_call *phase_call(struct dispatch_call *c, enum dispatch_phase ph,
					cJSON *summary, dispatch_done_fn done, void *arg,
					struct dispatch_call **out)
{
	struct dispatch_call *k = calloc(1, sizeof(*k));
	cJSON *first = summary ? cJSON_Duplicate(summary, 1) : NULL;

	if (!k || !first) {
		free(k);
		cJSON_Delete(first);
		cJSON_Delete(summary);
		return NULL;
	}
	call_init(k, c->env, first, inbound_ref(c->in), done, arg, out);
	generation_retain(c->gen);
	k->gen = c->gen;
	k->hook = c->hook;
	k->phase = ph;
	k->plan = ph == DISPATCH_PHASE_ON_ERROR ? c->hook->on_error : c->hook->after;
	k->nplan = ph == DISPATCH_PHASE_ON_ERROR ? c->hook->non_error : c->hook->nafter;
	k->timeout_ms = c->hook->after_timeout_ms;
	k->summary = summary;
	k->t0_ns = c->t0_ns;
	return k;
}

/* The chain of c failed with r: hand the answer to the hook's on_error
 * steps (a new call that takes over the transport's done callback). Returns
 * 0, or -1 (out of memory: c answers with r itself). */
static int on_error_start(struct dispatch_call *c, const struct dispatch_result *r)
{
	cJSON *sum = cJSON_CreateObject(), *err = error_object(r, c->gen->id);
	struct dispatch_saved *sv = calloc(1, sizeof(*sv));
	struct dispatch_call *k;

	if (!sum || !err || !sv || !cJSON_AddItemToObject(sum, "error", err))
		goto fail;
	err = NULL;
	/* a reference: each step gets a cJSON_Duplicate of sum, which copies the
	 * target (and drops the flag), and deleting sum never touches c->orig */
	if (c->orig ? !cJSON_AddItemReferenceToObject(sum, "input", c->orig)
		    : !cJSON_AddNullToObject(sum, "input"))
		goto fail;
	*sv = (struct dispatch_saved){.outcome = r->outcome, .plugin_status = r->plugin_status,
				      .step = r->step, .queued = r->queued, .plugin = r->plugin,
				      .error = strdup(r->error ? r->error : "call failed")};
	if (!sv->error)
		goto fail;
	k = phase_call(c, DISPATCH_PHASE_ON_ERROR, sum, c->done, c->done_arg, c->out);
	sum = NULL; /* taken */
	if (!k)
		goto fail;
	k->orig = c->orig; /* the summary refers to it; the after phase needs it */
	c->orig = NULL;
	k->saved = sv;
	memcpy(k->recs, c->recs, sizeof(k->recs));
	k->nrecs = c->nrecs;
	k->recs_more = c->recs_more;
	if (c->out)
		*c->out = k;
	c->out = NULL;
	log_debug(c->env->log, "hook %s (generation %llu, request_id %s): %s; running its "
		  "on_error steps", c->hook->name, (unsigned long long)c->gen->id, call_rid(c),
		  sv->error);
	call_run(k);
	return 0;
fail:
	cJSON_Delete(sum);
	cJSON_Delete(err);
	if (sv)
		free(sv->error);
	free(sv);
	return -1;
}

static void after_done(void *arg, struct dispatch_result *r)
{
	(void)arg;
	cJSON_Delete(r->output);
}

/* c was answered with r (the client got r->sent_status): run the hook's
 * after observers, under their own deadline. `out` (taken) is a copy of
 * the output sent, or NULL. */
static void after_start(struct dispatch_call *c, const struct dispatch_result *r, cJSON *out)
{
	cJSON *sum = cJSON_CreateObject(), *steps = NULL;
	struct dispatch_call *k;

	if (!sum)
		goto fail;
	cJSON_AddStringToObject(sum, "hook", c->hook->name);
	if (c->in)
		cJSON_AddStringToObject(sum, "request_id", c->in->pub.request_id);
	cJSON_AddNumberToObject(sum, "generation", (double)c->gen->id);
	cJSON_AddNumberToObject(sum, "status", r->sent_status);
	cJSON_AddStringToObject(sum, "outcome", dispatch_outcome_name(r->outcome));
	cJSON_AddBoolToObject(sum, "recovered", r->recovered);
	cJSON_AddNumberToObject(sum, "duration_ms",
				(double)(dispatch_now_ns() - c->t0_ns) / 1e6);
	if (c->orig) {
		cJSON_AddItemToObject(sum, "input", c->orig);
		c->orig = NULL;
	} else {
		cJSON_AddNullToObject(sum, "input");
	}
	if (r->outcome == DISPATCH_OK) {
		if (out)
			cJSON_AddItemToObject(sum, "output", out);
		else
			cJSON_AddNullToObject(sum, "output");
		out = NULL;
	} else {
		cJSON_AddItemToObject(sum, "error", error_object(r, c->gen->id));
	}
	if ((steps = cJSON_AddArrayToObject(sum, "steps"))) {
		for (unsigned i = 0; i < r->nsteps; i++) {
			cJSON *st = cJSON_CreateObject();
			if (!st)
				break;
			cJSON_AddStringToObject(st, "plugin", r->steps[i].plugin);
			cJSON_AddNumberToObject(st, "ms", (double)r->steps[i].duration_ns / 1e6);
			cJSON_AddStringToObject(st, "outcome",
						r->steps[i].skipped ? "skipped"
						: dispatch_outcome_name(r->steps[i].outcome));
			cJSON_AddItemToArray(steps, st);
		}
	}
	k = phase_call(c, DISPATCH_PHASE_AFTER, sum, after_done, NULL, NULL);
	sum = NULL;
	if (!k)
		goto fail;
	call_run(k);
	return;
fail:
	cJSON_Delete(sum);
	cJSON_Delete(out);
	log_error(c->env->log, "hook %s (generation %llu): out of memory: its after steps did not "
		  "run for request %s", c->hook->name, (unsigned long long)c->gen->id,
		  call_rid(c));
}

/* The on_error phase answers with the chain's failure. */
static void answer_saved(struct dispatch_call *c)
{
	struct dispatch_saved *sv = c->saved;
	struct dispatch_result r = {.outcome = sv->outcome, .plugin_status = sv->plugin_status,
				    .error = sv->error, .plugin = sv->plugin, .step = sv->step,
				    .queued = sv->queued};

	call_end(c, CALL_ANSWERED, &r);
}

/* A phase after the chain ends before its last step settled (s, or NULL):
 * deadline, shutdown, or every step done (DISPATCH_OK). */
static void phase_end_early(struct dispatch_call *c, struct dispatch_step *s,
			    enum dispatch_outcome o)
{
	if (o == DISPATCH_DEADLINE)
		log_warn(c->env->log, "hook %s (generation %llu, request_id %s): the %s steps' "
			 "deadline of %u ms passed%s%s%s", c->hook->name,
			 (unsigned long long)c->gen->id, call_rid(c),
			 dispatch_phase_name(c->phase), c->timeout_ms, s ? " in plugin " : "",
			 s ? s->plugin->desc.name : "",
			 c->phase == DISPATCH_PHASE_ON_ERROR ? "; answering with the chain's error"
							     : "; the rest did not run");
	if (c->phase == DISPATCH_PHASE_ON_ERROR) {
		answer_saved(c);
	} else {
		struct dispatch_result r = {.outcome = DISPATCH_OK, .step = -1};
		call_end(c, CALL_ANSWERED, &r);
	}
}

/* Step s of an on_error or after phase settled with (in, out). An on_error
 * step that returns anything but JSON null replaces the error with its
 * reply; otherwise (null, a failure, any after step) the next step runs,
 * with a fresh copy of the phase's input. */
static void phase_step_settled(struct dispatch_call *c, struct dispatch_step *s, cJSON *in,
			       cJSON *out)
{
	bool failed = s->fail_status || s->host_failed || !out;
	const char *name = s->plugin->desc.name;

	if (s->host_failed)
		step_count_host(s, s->host_outcome);
	else
		step_count(s, failed ? METRICS_FAILED : METRICS_OK);
	if (!failed && c->phase == DISPATCH_PHASE_ON_ERROR && !cJSON_IsNull(out)) {
		struct dispatch_result r = {.outcome = DISPATCH_OK, .output = out,
					    .plugin = name, .step = (int)s->index,
					    .max_output = c->gen->cfg->max_output,
					    .recovered = true};
		if (out != in)
			cJSON_Delete(in);
		if (s->reply && reply_take(c, s) < 0) {
			cJSON_Delete(out);
			answer_saved(c);
			return;
		}
		log_debug(c->env->log, "hook %s (generation %llu, request_id %s): on_error plugin %s "
			  "replaced the error (%s) with its reply", c->hook->name,
			  (unsigned long long)c->gen->id, call_rid(c), name,
			  c->saved->error);
		call_end(c, CALL_ANSWERED, &r);
		return;
	}
	if (failed)
		log_warn(c->env->log, "hook %s (generation %llu, request_id %s): %s plugin %s "
			 "(step %zu) %s: %s", c->hook->name, (unsigned long long)c->gen->id,
			 call_rid(c), dispatch_phase_name(c->phase), name,
			 s->index,
			 s->host_failed ? dispatch_outcome_name(s->host_outcome) : "failed",
			 s->fail_msg ? s->fail_msg : !out ? "no output" : "failed");
	if (out != in)
		cJSON_Delete(out);
	cJSON_Delete(in);
	c->step++;
	if (c->step < c->nplan && !(c->value = cJSON_Duplicate(c->summary, 1))) {
		phase_end_early(c, NULL, DISPATCH_NOMEM);
		return;
	}
	call_enter(c, CALL_IDLE);
	if (!c->walking)
		run_steps(c);
}

/* ---- the environment ------------------------------------------------ */

/* The loop's wake-up: drain every worker result and off-loop finish
 * posted so far (wake-ups coalesce). */
static void drain_sink(void *arg)
{
	pool_sink_drain(&((struct dispatch_env *)arg)->sink);
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
	if ((rc = wake_init(&env->wake, base, drain_sink, env)) < 0)
		goto fail;
	if ((rc = pool_sink_init(&env->sink, wake_notify, &env->wake)) < 0) {
		wake_fini(&env->wake);
		goto fail;
	}
	*out = env;
	return 0;
fail:
	free(env);
	return rc;
}

void dispatch_env_watch(struct dispatch_env *env, struct watchdog *w, unsigned loop_id,
			unsigned warn_ms)
{
	watchdog_slot_init(&env->watch, loop_id);
	env->loop_warn_ms = warn_ms;
	env->watchdog = warn_ms ? w : NULL;
	watchdog_add(env->watchdog, &env->watch);
}

void dispatch_env_metrics(struct dispatch_env *env, struct metrics_shard *shard)
{
	env->metrics = shard;
}

void dispatch_env_free(struct dispatch_env *env)
{
	if (!env)
		return;
	watchdog_remove(env->watchdog, &env->watch);
	pool_sink_drain(&env->sink);
	pool_sink_destroy(&env->sink); /* waits for a poster still notifying */
	wake_fini(&env->wake);
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
