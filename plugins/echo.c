/* echo -- sync: returns its input unchanged (the pool hop, nothing else). */
#include <hookd.h>

static cJSON *echo(const hookd_ctx *ctx, hookd_call *call, cJSON *input)
{
	(void)ctx;
	(void)call;
	return input; /* the input itself is a valid output: no copy */
}

HOOKD_PLUGIN_SYNC("echo", "1.0.0", HOOKD_HOOKS("echo"), NULL, NULL, echo);
