/*
 * hostapi -- the services a plugin calls through ctx->api (sdk/hookd.h):
 * logging, finishing a call, deadlines, cancellation and loop timers.
 *
 * The table is static and immutable; every function finds its way back to
 * the loop through the call handle. Functions the SDK allows from any
 * thread touch only the step's atomics and, for a finish off the loop, hand
 * the step to the loop through the dispatcher's sink.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dispatch_int.h"
#include "plugin.h"

static void api_log(const hookd_ctx *ctx, hookd_log_level level, const char *fmt, ...)
{
	const struct plugin *p = plugin_of_ctx(ctx);
	char tag[80];
	va_list ap;

	snprintf(tag, sizeof(tag), "plugin %s", ctx->name ? ctx->name : "?");
	if ((int)level < LOG_ERROR)
		level = HOOKD_LOG_ERROR;
	if ((int)level > LOG_DEBUG)
		level = HOOKD_LOG_DEBUG;
	va_start(ap, fmt);
	log_vmsg(p->log, (enum log_level)level, tag, fmt, ap);
	va_end(ap);
}

static int finish_result(struct hookd_call *s)
{
	return atomic_load(&s->cancelled) ? HOOKD_ECANCELED : HOOKD_OK;
}

static int claim_finish(struct hookd_call *s)
{
	int expected = 0;

	if (!atomic_compare_exchange_strong(&s->finished, &expected, 1)) {
		api_log(&s->plugin->ctx, HOOKD_LOG_ERROR,
			"call finished twice (complete/fail after the call was finished): "
			"this is a bug in the plugin");
		return HOOKD_EALREADY;
	}
	return HOOKD_OK;
}

static int api_fail(hookd_call *s, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int rc;

	if (!s)
		return HOOKD_EINVAL;
	if (status < 400 || status > 599)
		status = 500;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt ? fmt : "plugin failed the call", ap);
	va_end(ap);

	if (!plugin_is_async(s->plugin)) {
		/* inside call_sync, on the worker that owns s right now */
		if (!s->fail_status) {
			s->fail_status = status;
			s->fail_msg = strdup(msg);
		}
		return finish_result(s);
	}
	if ((rc = claim_finish(s)) < 0)
		return rc;
	s->fail_status = status;
	s->fail_msg = strdup(msg);
	rc = finish_result(s); /* read before s may be freed on the loop */
	dispatch_step_finished(s);
	return rc;
}

static int api_complete(hookd_call *s, cJSON *output)
{
	int rc;

	if (!s) {
		cJSON_Delete(output);
		return HOOKD_EINVAL;
	}
	if (!plugin_is_async(s->plugin)) {
		api_log(&s->plugin->ctx, HOOKD_LOG_ERROR,
			"complete() called by a sync plugin: return the output from call_sync");
		if (output != s->input)
			cJSON_Delete(output);
		return HOOKD_EPERM;
	}
	if ((rc = claim_finish(s)) < 0)
		return rc; /* s->input may already belong to the next step: free nothing */
	s->output = output;
	rc = finish_result(s);
	dispatch_step_finished(s);
	return rc;
}

static int64_t api_remaining_ms(const hookd_call *s)
{
	int64_t left;

	if (!s)
		return 0;
	left = s->deadline_ns - dispatch_now_ns();
	return left > 0 ? (left + 999999) / 1000000 : left / 1000000;
}

static int api_cancelled(const hookd_call *s)
{
	return s ? atomic_load(&s->cancelled) : 1;
}

static bool async_on_loop(const hookd_call *s)
{
	return s && plugin_is_async(s->plugin) && dispatch_on_loop(s->call->env);
}

static int api_on_cancel(hookd_call *s, hookd_cancel_fn fn, void *arg)
{
	if (!async_on_loop(s))
		return HOOKD_EPERM;
	if (atomic_load(&s->cancelled))
		return HOOKD_ECANCELED;
	if (atomic_load(&s->finished))
		return HOOKD_EALREADY;
	s->cancel_fn = fn;
	s->cancel_arg = arg;
	return HOOKD_OK;
}

static void timer_unlink(struct hookd_timer *t)
{
	TAILQ_REMOVE(&t->step->timers, t, link);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct hookd_timer *t = arg;
	struct hookd_call *s = t->step;

	(void)fd;
	(void)what;
	timer_unlink(t);
	t->firing = true;
	t->fn(&s->plugin->ctx, s, t->status, t->arg);
	free(t);
	dispatch_step_unref(s);
}

static hookd_timer *api_timer_start(hookd_call *s, uint64_t ms, hookd_timer_fn fn, void *arg)
{
	struct hookd_timer *t;
	struct timeval tv;

	if (!async_on_loop(s) || !fn || atomic_load(&s->cancelled) || atomic_load(&s->finished))
		return NULL;
	if (ms > (uint64_t)365 * 24 * 3600 * 1000)
		ms = (uint64_t)365 * 24 * 3600 * 1000;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->step = s;
	t->fn = fn;
	t->arg = arg;
	t->status = HOOKD_OK;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	event_assign(&t->ev, s->call->env->base, -1, 0, on_timer, t);
	if (event_add(&t->ev, &tv) < 0) {
		free(t);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&s->timers, t, link);
	dispatch_step_ref(s);
	return t;
}

static int api_timer_stop(hookd_timer *t)
{
	struct hookd_call *s;

	if (!t)
		return HOOKD_EINVAL;
	if (t->firing)
		return HOOKD_EALREADY;
	s = t->step;
	if (!dispatch_on_loop(s->call->env))
		return HOOKD_EPERM;
	event_del(&t->ev);
	timer_unlink(t);
	free(t);
	dispatch_step_unref(s);
	return HOOKD_OK;
}


/* ---- outbound HTTP -------------------------------------------------- */

struct api_gather;

/* One request of a call: alone (fn) or one of a gather (g). Pending ones
 * are on their step's list and hold a step reference (a gather holds one
 * for all its requests). */
struct api_fetch {
	struct hookd_call *step;
	struct fetch_xfer *x;        /* NULL once done or stopped */
	hookd_fetch_fn fn;
	void *arg;
	struct api_gather *g;
	size_t index;
	char *url;                   /* for the ECANCELED report */
	struct event ev;             /* deferred ECANCELED callback (alone) */
	bool listed;                 /* on the step's fetches */
	TAILQ_ENTRY(api_fetch) link;
};

struct api_gather {
	struct hookd_call *step;
	hookd_gather_fn fn;
	void *arg;
	unsigned flags;
	size_t n, pending;
	bool fired;
	struct api_fetch *kids;      /* n of them */
	hookd_response *resps;       /* n of them */
	struct event ev;             /* deferred callback after a cancel */
};

static const char cancelled_msg[] = "cancelled: the call ended first";

static void cancelled_response(hookd_response *r, const char *url)
{
	memset(r, 0, sizeof(*r));
	r->error = HOOKD_ECANCELED;
	r->error_message = cancelled_msg;
	r->body = "";
	r->url = url ? url : "";
}

static void af_unlist(struct api_fetch *af)
{
	struct hookd_call *s = af->step;

	if (!af->listed)
		return;
	TAILQ_REMOVE(&s->fetches, af, link);
	af->listed = false;
}

static void af_list(struct api_fetch *af)
{
	struct hookd_call *s = af->step;

	TAILQ_INSERT_TAIL(&s->fetches, af, link);
	af->listed = true;
}

static bool response_failed(const hookd_response *r)
{
	return r->error != HOOKD_OK || r->status >= 400;
}

/* Every request of g is accounted for: one callback, then free it all. */
static void gather_fire(struct api_gather *g)
{
	struct hookd_call *s = g->step;

	g->fired = true;
	g->fn(&s->plugin->ctx, s, g->resps, g->n, g->arg);
	for (size_t i = 0; i < g->n; i++) {
		fetch_release(g->kids[i].x);
		free(g->kids[i].url);
	}
	free(g->kids);
	free(g->resps);
	free(g);
	dispatch_step_unref(s);
}

static void on_gather_deferred(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	gather_fire(arg);
}

/* Stop a kid still running and record it as cancelled. */
static void gather_stop_kid(struct api_fetch *k)
{
	af_unlist(k);
	fetch_cancel(k->x);
	k->x = NULL;
	cancelled_response(&k->g->resps[k->index], k->url);
	k->g->pending--;
}

static void on_kid_done(struct fetch_xfer *x, void *arg)
{
	struct api_fetch *k = arg;
	struct api_gather *g = k->g;
	const hookd_response *r = fetch_response(x);

	af_unlist(k);
	g->resps[k->index] = *r; /* points into x, released after the callback */
	g->pending--;
	if ((g->flags & HOOKD_GATHER_FAIL_FAST) && response_failed(r)) {
		for (size_t i = 0; i < g->n; i++)
			if (g->kids[i].listed)
				gather_stop_kid(&g->kids[i]);
	}
	if (!g->pending)
		gather_fire(g);
}

static void on_alone_done(struct fetch_xfer *x, void *arg)
{
	struct api_fetch *af = arg;
	struct hookd_call *s = af->step;

	af_unlist(af);
	af->fn(&s->plugin->ctx, s, fetch_response(x), af->arg);
	fetch_release(x);
	free(af->url);
	free(af);
	dispatch_step_unref(s);
}

static void on_alone_cancelled(evutil_socket_t fd, short what, void *arg)
{
	struct api_fetch *af = arg;
	struct hookd_call *s = af->step;
	hookd_response r;

	(void)fd;
	(void)what;
	cancelled_response(&r, af->url);
	af->fn(&s->plugin->ctx, s, &r, af->arg);
	free(af->url);
	free(af);
	dispatch_step_unref(s);
}

void hostapi_cancel_fetches(struct hookd_call *s)
{
	struct api_fetch *af;

	while ((af = TAILQ_FIRST(&s->fetches))) {
		if (af->g) {
			struct api_gather *g = af->g;
			gather_stop_kid(af);
			if (!g->pending && !g->fired) {
				g->fired = true; /* on its way: never twice */
				event_assign(&g->ev, s->call->env->base, -1, 0, on_gather_deferred, g);
				event_active(&g->ev, EV_TIMEOUT, 0);
			}
			continue;
		}
		af_unlist(af);
		fetch_cancel(af->x);
		af->x = NULL;
		event_assign(&af->ev, s->call->env->base, -1, 0, on_alone_cancelled, af);
		event_active(&af->ev, EV_TIMEOUT, 0);
	}
}

static void fetch_opts_of(const hookd_call *s, const hookd_request *req, struct fetch_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->timeout_ms = req->timeout_ms;
	o->deadline_ns = s->deadline_ns;
	o->retries = req->retries;
	o->retry_base_ms = req->retry_base_ms;
	o->retry_cap_ms = req->retry_cap_ms;
	o->max_response = req->max_response ? req->max_response : s->plugin->fetch_max_response;
	o->follow_redirects = (req->flags & HOOKD_FETCH_FOLLOW_REDIRECTS) != 0;
}

static int fetch_allowed(hookd_call *s)
{
	if (!async_on_loop(s))
		return HOOKD_EPERM;
	if (atomic_load(&s->cancelled))
		return HOOKD_ECANCELED;
	if (atomic_load(&s->finished))
		return HOOKD_EALREADY;
	if (!s->call->env->fetch)
		return HOOKD_EPERM;
	return HOOKD_OK;
}

static int api_fetch(hookd_call *s, const hookd_request *req, hookd_fetch_fn fn, void *arg)
{
	struct api_fetch *af;
	struct fetch_opts o;
	int rc;

	if ((rc = fetch_allowed(s)) < 0)
		return rc;
	if (!req || !req->url || !fn)
		return HOOKD_EINVAL;
	if (!(af = calloc(1, sizeof(*af))) || !(af->url = strdup(req->url))) {
		free(af);
		return HOOKD_ENOMEM;
	}
	af->step = s;
	af->fn = fn;
	af->arg = arg;
	fetch_opts_of(s, req, &o);
	af->x = fetch_start(s->call->env->fetch, s->plugin->limiter, req, &o, on_alone_done, af, &rc);
	if (!af->x) {
		free(af->url);
		free(af);
		return rc;
	}
	af_list(af);
	dispatch_step_ref(s);
	return HOOKD_OK;
}

static int api_fetch_all(hookd_call *s, const hookd_request *reqs, size_t n, unsigned flags,
			 hookd_gather_fn fn, void *arg)
{
	struct api_gather *g;
	struct fetch_opts o;
	int rc;

	if ((rc = fetch_allowed(s)) < 0)
		return rc;
	if (!reqs || !fn || n == 0 || n > 1024)
		return HOOKD_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!reqs[i].url || (strncasecmp(reqs[i].url, "http://", 7) != 0 &&
				     strncasecmp(reqs[i].url, "https://", 8) != 0))
			return HOOKD_EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g || !(g->kids = calloc(n, sizeof(*g->kids))) ||
	    !(g->resps = calloc(n, sizeof(*g->resps)))) {
		if (g)
			free(g->kids);
		free(g);
		return HOOKD_ENOMEM;
	}
	g->step = s;
	g->fn = fn;
	g->arg = arg;
	g->flags = flags;
	g->n = n;
	for (size_t i = 0; i < n; i++) {
		struct api_fetch *k = &g->kids[i];
		k->step = s;
		k->g = g;
		k->index = i;
		k->url = strdup(reqs[i].url);
		fetch_opts_of(s, &reqs[i], &o);
		k->x = k->url ? fetch_start(s->call->env->fetch, s->plugin->limiter, &reqs[i], &o,
					    on_kid_done, k, &rc)
			      : NULL;
		if (!k->x) {
			/* undo: nothing has called back yet (callbacks are never
			 * made inside fetch_start) */
			for (size_t j = 0; j <= i; j++) {
				fetch_cancel(g->kids[j].x);
				free(g->kids[j].url);
			}
			free(g->kids);
			free(g->resps);
			free(g);
			return k->url ? rc : HOOKD_ENOMEM;
		}
	}
	for (size_t i = 0; i < n; i++)
		af_list(&g->kids[i]);
	g->pending = n;
	dispatch_step_ref(s);
	return HOOKD_OK;
}

static const hookd_host_api host_api = {
	.size = sizeof(hookd_host_api),
	.abi_major = HOOKD_ABI_MAJOR,
	.abi_minor = HOOKD_ABI_MINOR,
	.log = api_log,
	.fail = api_fail,
	.complete = api_complete,
	.remaining_ms = api_remaining_ms,
	.cancelled = api_cancelled,
	.on_cancel = api_on_cancel,
	.timer_start = api_timer_start,
	.timer_stop = api_timer_stop,
	.fetch = api_fetch,
	.fetch_all = api_fetch_all,
};

const hookd_host_api *dispatch_host_api(void)
{
	return &host_api;
}
