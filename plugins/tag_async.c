/* tag_async -- async: appends its label to the input's "trace" array, on the
 * loop. */
#include "tag_common.h"

static void tag_async(const hookd_ctx *ctx, hookd_call *call, cJSON *input)
{
	if (tag_apply(ctx, input) < 0) {
		hookd_fail(ctx, call, 400, "input must be a JSON object");
		return;
	}
	hookd_complete(ctx, call, input);
}

HOOKD_PLUGIN_ASYNC("tag_async", "1.0.0", HOOKD_HOOKS("tag_async"), tag_init, tag_fini,
		   tag_async);
