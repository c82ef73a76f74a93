/* tag -- sync: appends its label to the input's "trace" array. */
#include "tag_common.h"

static cJSON *tag(const hookd_ctx *ctx, hookd_call *call, cJSON *input)
{
	if (tag_apply(ctx, input) < 0) {
		hookd_fail(ctx, call, 400, "input must be a JSON object");
		return NULL;
	}
	return input;
}

HOOKD_PLUGIN_SYNC("tag", "1.0.0", HOOKD_HOOKS("tag"), tag_init, tag_fini, tag);
