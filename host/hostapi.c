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
	struct hookd_call *s = t->step;

	if (t->prev)
		t->prev->next = t->next;
	else
		s->timers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
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
	t->next = s->timers;
	if (s->timers)
		s->timers->prev = t;
	s->timers = t;
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
};

const hookd_host_api *dispatch_host_api(void)
{
	return &host_api;
}
