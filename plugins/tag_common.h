/* Shared by tag.c and tag_async.c: append the plugin's label to the
 * input's "trace" array, so that a chain's output shows which steps ran in
 * which order. The label comes from the plugin's config section
 * ({"label": "..."}), default: the plugin's name. */
#include <stdlib.h>
#include <string.h>

#include <hookd.h>

static int tag_init(hookd_ctx *ctx, const cJSON *config)
{
	const cJSON *label = cJSON_GetObjectItemCaseSensitive(config, "label");

	if (label && !cJSON_IsString(label)) {
		hookd_log(ctx, HOOKD_LOG_ERROR, "config: \"label\" must be a string");
		return -1;
	}
	ctx->state = strdup(label ? label->valuestring : ctx->name);
	return ctx->state ? 0 : -1;
}

static void tag_fini(hookd_ctx *ctx)
{
	free(ctx->state);
}

/* Returns 0, or -1 when the input is not an object. */
static int tag_apply(const hookd_ctx *ctx, cJSON *input)
{
	cJSON *trace;

	if (!cJSON_IsObject(input))
		return -1;
	trace = cJSON_GetObjectItemCaseSensitive(input, "trace");
	if (!cJSON_IsArray(trace)) {
		cJSON_DeleteItemFromObjectCaseSensitive(input, "trace");
		trace = cJSON_AddArrayToObject(input, "trace");
	}
	return trace && cJSON_AddItemToArray(trace, cJSON_CreateString(ctx->state)) ? 0 : -1;
}
