/*
 * delay -- async: answers its input after {"ms": N} milliseconds (0 to
 * 60000) using a timer on the event loop; the loop never blocks, so one
 * thread holds any number of these calls. Shows the cancel callback: when
 * the host gives up on the call (deadline, shutdown), the timer fires early
 * with HOOKD_ECANCELED and the call is released.
 */
#include <hookd.h>

static void on_cancel(const hookd_ctx *ctx, hookd_call *call, void *arg)
{
	(void)call;
	(void)arg;
	hookd_log(ctx, HOOKD_LOG_INFO, "call cancelled by the host");
}

static void on_timer(const hookd_ctx *ctx, hookd_call *call, int status, void *arg)
{
	cJSON *input = arg;

	/* HOOKD_ECANCELED: the client already had its answer; completing just
	 * releases the call */
	(void)status;
	hookd_complete(ctx, call, input);
}

static void delay(const hookd_ctx *ctx, hookd_call *call, cJSON *input)
{
	const cJSON *ms = cJSON_GetObjectItemCaseSensitive(input, "ms");
	double v = ms && cJSON_IsNumber(ms) ? ms->valuedouble : 0;

	if (ms && (!cJSON_IsNumber(ms) || v < 0 || v > 60000)) {
		hookd_fail(ctx, call, 400, "\"ms\" must be a number of milliseconds, 0 to 60000");
		return;
	}
	ctx->api->on_cancel(call, on_cancel, NULL);
	if (!ctx->api->timer_start(call, (uint64_t)v, on_timer, input))
		hookd_fail(ctx, call, 500, "cannot arm a timer");
}

HOOKD_PLUGIN_ASYNC("delay", "1.0.0", HOOKD_HOOKS("delay"), NULL, NULL, delay);
