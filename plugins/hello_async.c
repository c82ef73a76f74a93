/* hello_async.c -- the async variant: answers after {"ms": N} without
 * holding a thread. POST /hooks/greet_later {"name": "Ada", "ms": 100} */
#include <hookd.h>

static void fire(const hookd_ctx *ctx, hookd_call *call, int status, void *arg)
{
	cJSON *input = arg;

	/* status is HOOKD_ECANCELED if the host gave up (deadline, client
	 * gone): completing is then a no-op that releases the call */
	(void)status;
	cJSON_AddStringToObject(input, "greeting", "Hello, later!");
	hookd_complete(ctx, call, input); /* exactly once; input is a valid output */
}

static void greet_later(const hookd_ctx *ctx, hookd_call *call, cJSON *input)
{
	const cJSON *ms = cJSON_GetObjectItemCaseSensitive(input, "ms");
	uint64_t wait = cJSON_IsNumber(ms) && ms->valuedouble > 0 ? (uint64_t)ms->valuedouble : 0;

	if (!ctx->api->timer_start(call, wait, fire, input))
		hookd_fail(ctx, call, 500, "cannot arm a timer");
}

HOOKD_PLUGIN_ASYNC("hello_async", "1.0.0", HOOKD_HOOKS("greet_later"), NULL, NULL, greet_later);
