/* echo_async -- async: returns its input at once, on the event loop. */
#include <hookd.h>

static void echo_async(const hookd_ctx *ctx, hookd_call *call, cJSON *input)
{
	hookd_complete(ctx, call, input);
}

HOOKD_PLUGIN_ASYNC("echo_async", "1.0.0", HOOKD_HOOKS("echo_async"), NULL, NULL, echo_async);
