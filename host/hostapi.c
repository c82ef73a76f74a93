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
#include "sdk_compat.h"

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

static int finish_result(struct dispatch_step *s)
{
	return atomic_load(&s->cancelled) ? HOOKD_ECANCELED : HOOKD_OK;
}

static int claim_finish(struct dispatch_step *s)
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

static int api_fail(hookd_call *h, int status, const char *fmt, ...)
{
	struct dispatch_step *s = handle_step(h);
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
		/* inside call_sync, on the worker that owns s right now; the
		 * first failure wins, a second one is the plugin's bug */
		if (s->fail_status) {
			api_log(&s->plugin->ctx, HOOKD_LOG_ERROR,
				"fail() called twice for one call: this is a bug in the plugin");
			return HOOKD_EALREADY;
		}
		s->fail_status = status;
		s->fail_msg = strdup(msg);
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

static int api_complete(hookd_call *h, cJSON *output)
{
	struct dispatch_step *s = handle_step(h);
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

static int64_t api_remaining_ms(const hookd_call *h)
{
	struct dispatch_step *s = handle_step(h);
	int64_t left;

	if (!s)
		return 0;
	left = s->deadline_ns - dispatch_now_ns();
	return left > 0 ? (left + 999999) / 1000000 : left / 1000000;
}

static int api_cancelled(const hookd_call *h)
{
	struct dispatch_step *s = handle_step(h);
	return s ? atomic_load(&s->cancelled) : 1;
}

static bool async_on_loop(const struct dispatch_step *s)
{
	return s && plugin_is_async(s->plugin) && dispatch_on_loop(s->call->env);
}

static int api_on_cancel(hookd_call *h, hookd_cancel_fn fn, void *arg)
{
	struct dispatch_step *s = handle_step(h);
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
	struct dispatch_step *s = t->step;

	(void)fd;
	(void)what;
	timer_unlink(t);
	t->firing = true;
	struct blame_frame f = {s->plugin, s->call->hook->name, s->call->gen->id, "timer callback"};
	dispatch_plugin_enter(s->call->env, &f);
	t->fn(&s->plugin->ctx, step_handle(s), t->status, t->arg);
	dispatch_plugin_leave(s->call->env, &f);
	free(t);
	dispatch_step_unref(s);
}

static hookd_timer *api_timer_start(hookd_call *h, uint64_t ms, hookd_timer_fn fn, void *arg)
{
	struct dispatch_step *s = handle_step(h);
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
	struct dispatch_step *s;

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

/*
 * A plugin's requests arrive in the layout of the ABI minor it was built
 * with (sdk_compat.h): 1.2+ requests are read through their `size`, 1.1
 * ones (no size; fetch_all with a contiguous array) are converted, and
 * results go back in the layout the plugin's callback expects. Callbacks
 * are kept as void (*)(void) and cast back to the plugin's type to call.
 */

struct api_gather;

/* One request of a call: alone (fn) or one of a gather (g). Pending ones
 * are on their step's list and hold a step reference (a gather holds one
 * for all its requests). */
struct api_fetch {
	struct dispatch_step *step;
	struct fetch_xfer *x;        /* NULL once done or stopped */
	void (*fn)(void);            /* hookd_fetch_fn, or hookd_fetch_fn_1_1 (compat) */
	void *arg;
	bool compat;                 /* the plugin speaks the 1.1 layouts */
	struct api_gather *g;
	size_t index;
	char *url;                   /* for the ECANCELED report */
	struct event ev;             /* deferred ECANCELED callback (alone) */
	bool listed;                 /* on the step's fetches */
	int64_t started_ns;          /* for hookd_fetch_duration_seconds */
	TAILQ_ENTRY(api_fetch) link;
};

/* Count a finished transfer of af's plugin in the loop's metrics. */
static void fetch_count(const struct api_fetch *af, const hookd_response *r)
{
	enum metrics_fetch o = r->error == HOOKD_ETIMEDOUT ? METRICS_FETCH_TIMEOUT
			       : r->error != HOOKD_OK     ? METRICS_FETCH_FAILED
			       : r->status >= 400         ? METRICS_FETCH_HTTP_ERROR
							  : METRICS_FETCH_OK;

	metrics_fetch(af->step->call->env->metrics, af->step->plugin->metric_slot, o,
		      dispatch_now_ns() - af->started_ns);
}

struct api_gather {
	struct dispatch_step *step;
	void (*fn)(void);            /* hookd_gather_fn, or hookd_gather_fn_1_1 (compat) */
	void *arg;
	bool compat;
	unsigned flags;
	size_t n, pending;
	bool fired;
	struct api_fetch *kids;      /* n of them */
	hookd_response *resps;       /* n of them */
	const hookd_response **ptrs; /* 1.2: n pointers into resps, handed to fn */
	struct hookd_response_1_1 *old; /* 1.1: n of them, filled when firing */
	struct event ev;             /* deferred callback after a cancel */
};

static const char cancelled_msg[] = "cancelled: the call ended first";

static void cancelled_response(hookd_response *r, const char *url)
{
	memset(r, 0, sizeof(*r));
	r->size = sizeof(*r);
	r->error = HOOKD_ECANCELED;
	r->error_message = cancelled_msg;
	r->body = "";
	r->url = url ? url : "";
}

/* The plugin's request `req` (in the layout of its ABI minor; borrowed)
 * as a current hookd_request in *out, whose pointers are the plugin's. */
static int request_of(const struct plugin *p, const void *req, hookd_request *out)
{
	int rc;

	if (!req)
		return HOOKD_EINVAL;
	if (sdk_uses_1_1(p->desc.abi_minor))
		sdk_request_from_1_1(out, req);
	else if ((rc = sdk_request_read(out, req)) < 0)
		return rc;
	if (!out->url || (strncasecmp(out->url, "http://", 7) != 0 &&
			  strncasecmp(out->url, "https://", 8) != 0))
		return HOOKD_EINVAL;
	return HOOKD_OK;
}

/* Call a fetch callback with `r` (borrowed for the call). */
static void fetch_callback(struct api_fetch *af, const hookd_response *r)
{
	struct dispatch_step *s = af->step;
	struct blame_frame f = {s->plugin, s->call->hook->name, s->call->gen->id, "fetch callback"};

	dispatch_plugin_enter(s->call->env, &f);
	if (af->compat) {
		struct hookd_response_1_1 old;
		sdk_response_to_1_1(&old, r);
		((hookd_fetch_fn_1_1)af->fn)(&s->plugin->ctx, step_handle(s), &old, af->arg);
	} else {
		((hookd_fetch_fn)af->fn)(&s->plugin->ctx, step_handle(s), r, af->arg);
	}
	dispatch_plugin_leave(s->call->env, &f);
}

static void af_unlist(struct api_fetch *af)
{
	struct dispatch_step *s = af->step;

	if (!af->listed)
		return;
	TAILQ_REMOVE(&s->fetches, af, link);
	af->listed = false;
}

static void af_list(struct api_fetch *af)
{
	struct dispatch_step *s = af->step;

	TAILQ_INSERT_TAIL(&s->fetches, af, link);
	af->listed = true;
}

static bool response_failed(const hookd_response *r)
{
	return r->error != HOOKD_OK || r->status >= 400;
}

static void gather_free(struct api_gather *g)
{
	free(g->kids);
	free(g->resps);
	free(g->ptrs);
	free(g->old);
	free(g);
}

/* Every request of g is accounted for: one callback, then free it all. */
static void gather_fire(struct api_gather *g)
{
	struct dispatch_step *s = g->step;

	struct blame_frame f = {s->plugin, s->call->hook->name, s->call->gen->id, "fetch_all callback"};

	g->fired = true;
	dispatch_plugin_enter(s->call->env, &f);
	if (g->compat) {
		for (size_t i = 0; i < g->n; i++)
			sdk_response_to_1_1(&g->old[i], &g->resps[i]);
		((hookd_gather_fn_1_1)g->fn)(&s->plugin->ctx, step_handle(s), g->old, g->n, g->arg);
	} else {
		((hookd_gather_fn)g->fn)(&s->plugin->ctx, step_handle(s), g->ptrs, g->n, g->arg);
	}
	dispatch_plugin_leave(s->call->env, &f);
	for (size_t i = 0; i < g->n; i++) {
		fetch_release(g->kids[i].x);
		free(g->kids[i].url);
	}
	gather_free(g);
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

	fetch_count(k, r);
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
	struct dispatch_step *s = af->step;

	af_unlist(af);
	fetch_count(af, fetch_response(x));
	fetch_callback(af, fetch_response(x));
	fetch_release(x);
	free(af->url);
	free(af);
	dispatch_step_unref(s);
}

static void on_alone_cancelled(evutil_socket_t fd, short what, void *arg)
{
	struct api_fetch *af = arg;
	struct dispatch_step *s = af->step;
	hookd_response r;

	(void)fd;
	(void)what;
	cancelled_response(&r, af->url);
	fetch_callback(af, &r);
	free(af->url);
	free(af);
	dispatch_step_unref(s);
}

void hostapi_cancel_fetches(struct dispatch_step *s)
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

static void fetch_opts_of(const struct dispatch_step *s, const hookd_request *req, struct fetch_opts *o)
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

static int fetch_allowed(struct dispatch_step *s)
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

/* `req_any`: a hookd_request, or a hookd_request_1_1 from a 1.1 plugin;
 * `fn`: likewise its hookd_fetch_fn or hookd_fetch_fn_1_1. */
static int api_fetch(hookd_call *h, const hookd_request *req_any, hookd_fetch_fn fn, void *arg)
{
	struct dispatch_step *s = handle_step(h);
	struct api_fetch *af = NULL;
	hookd_request req;
	struct fetch_opts o;
	int rc;

	if ((rc = fetch_allowed(s)) < 0)
		return rc;
	if (!fn || (rc = request_of(s->plugin, req_any, &req)) < 0)
		return fn ? rc : HOOKD_EINVAL;
	if (!(af = calloc(1, sizeof(*af))) || !(af->url = strdup(req.url))) {
		rc = HOOKD_ENOMEM;
		goto fail;
	}
	af->step = s;
	af->fn = (void (*)(void))fn;
	af->arg = arg;
	af->compat = sdk_uses_1_1(s->plugin->desc.abi_minor);
	fetch_opts_of(s, &req, &o);
	af->started_ns = dispatch_now_ns();
	af->x = fetch_start(s->call->env->fetch, s->plugin->limiter, &req, &o, on_alone_done, af, &rc);
	if (!af->x)
		goto fail;
	af_list(af);
	dispatch_step_ref(s);
	return HOOKD_OK;
fail:
	if (af)
		free(af->url);
	free(af);
	return rc;
}

/* `reqs_any`: n pointers to hookd_request, or (1.1 plugin) a contiguous
 * array of n hookd_request_1_1; `fn`: the matching gather callback. */
static int api_fetch_all(hookd_call *h, const hookd_request *const *reqs_any, size_t n,
			 unsigned flags, hookd_gather_fn fn, void *arg)
{
	struct dispatch_step *s = handle_step(h);
	const struct hookd_request_1_1 *old_reqs = (const void *)reqs_any;
	struct api_gather *g = NULL;
	hookd_request *reqs = NULL; /* the plugin's, read and checked before anything starts */
	struct fetch_opts o;
	bool compat = sdk_uses_1_1(s ? s->plugin->desc.abi_minor : HOOKD_ABI_MINOR);
	size_t started = 0;
	int rc;

	if ((rc = fetch_allowed(s)) < 0)
		return rc;
	if (!reqs_any || !fn || n == 0 || n > 1024)
		return HOOKD_EINVAL;
	rc = HOOKD_ENOMEM;
	if (!(reqs = calloc(n, sizeof(*reqs))) || !(g = calloc(1, sizeof(*g))) ||
	    !(g->kids = calloc(n, sizeof(*g->kids))) || !(g->resps = calloc(n, sizeof(*g->resps))))
		goto fail;
	if (compat ? !(g->old = calloc(n, sizeof(*g->old))) : !(g->ptrs = calloc(n, sizeof(*g->ptrs))))
		goto fail;
	for (size_t i = 0; i < n; i++) {
		const void *r = compat ? (const void *)&old_reqs[i] : (const void *)reqs_any[i];
		if ((rc = request_of(s->plugin, r, &reqs[i])) < 0)
			goto fail;
		if (g->ptrs)
			g->ptrs[i] = &g->resps[i];
	}
	g->step = s;
	g->fn = (void (*)(void))fn;
	g->arg = arg;
	g->compat = compat;
	g->flags = flags;
	g->n = n;
	for (; started < n; started++) {
		struct api_fetch *k = &g->kids[started];
		k->step = s;
		k->g = g;
		k->index = started;
		k->started_ns = dispatch_now_ns();
		fetch_opts_of(s, &reqs[started], &o);
		if (!(k->url = strdup(reqs[started].url))) {
			rc = HOOKD_ENOMEM;
			goto fail;
		}
		k->x = fetch_start(s->call->env->fetch, s->plugin->limiter, &reqs[started], &o,
				   on_kid_done, k, &rc);
		if (!k->x) {
			free(k->url);
			goto fail;
		}
	}
	free(reqs);
	for (size_t i = 0; i < n; i++)
		af_list(&g->kids[i]);
	g->pending = n;
	dispatch_step_ref(s);
	return HOOKD_OK;
fail:
	/* undo: nothing has called back yet (never inside fetch_start) */
	for (size_t j = 0; g && j < started; j++) {
		fetch_cancel(g->kids[j].x);
		free(g->kids[j].url);
	}
	if (g)
		gather_free(g);
	free(reqs);
	return rc;
}

/* ---- ABI 1.3: the inbound request, the reply --------------------- */

static const hookd_inbound *api_inbound(const hookd_call *h)
{
	struct dispatch_step *s = handle_step(h);

	return s && s->call->in ? &s->call->in->pub : NULL;
}

static const char *api_header(const hookd_call *h, const char *name)
{
	return inbound_header(api_inbound(h), name);
}

/* The reply settings of step s, for a setter called now: NULL and *rc set
 * when the setter may not run (see set_status in sdk/hookd.h). */
static struct reply *step_reply(struct dispatch_step *s, int *rc)
{
	*rc = HOOKD_OK;
	if (!s)
		*rc = HOOKD_EINVAL;
	else if (s->call->phase == DISPATCH_PHASE_AFTER ||
		 (s->call->in && s->call->in->reply_sent))
		*rc = HOOKD_EPERM;
	else if (plugin_is_async(s->plugin) ? !dispatch_on_loop(s->call->env)
		 : dispatch_on_loop(s->call->env) ||
			   atomic_load(&s->phase) != STEP_ENTERED)
		*rc = HOOKD_EPERM;
	else if (atomic_load(&s->cancelled))
		*rc = HOOKD_ECANCELED;
	else if (atomic_load(&s->finished))
		*rc = HOOKD_EALREADY;
	else if (!s->reply && !(s->reply = calloc(1, sizeof(*s->reply))))
		*rc = HOOKD_ENOMEM;
	return *rc ? NULL : s->reply;
}

static int api_set_status(hookd_call *h, int status)
{
	int rc;
	struct reply *r = step_reply(handle_step(h), &rc);

	return r ? reply_set_status(r, status) : rc;
}

static int api_set_header(hookd_call *h, const char *name, const char *value)
{
	int rc;
	struct reply *r = step_reply(handle_step(h), &rc);

	return r ? reply_set_header(r, name, value) : rc;
}

static int api_set_body(hookd_call *h, const void *body, size_t len, const char *content_type)
{
	int rc;
	struct reply *r = step_reply(handle_step(h), &rc);

	return r ? reply_set_body(r, body, len, content_type) : rc;
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
	.inbound = api_inbound,
	.header = api_header,
	.set_status = api_set_status,
	.set_header = api_set_header,
	.set_body = api_set_body,
};

const hookd_host_api *dispatch_host_api(void)
{
	return &host_api;
}
