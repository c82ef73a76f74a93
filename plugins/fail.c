/*
 * fail -- sync: fails the call with the status and message it is given,
 * {"status": 422, "message": "..."} (defaults 422 and "rejected"): how a
 * plugin refuses a payload.
 */
#include <hookd.h>

static cJSON *fail(const hookd_ctx *ctx, hookd_call *call, cJSON *input)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(input, "status");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(input, "message");

	hookd_fail(ctx, call, cJSON_IsNumber(st) ? (int)st->valuedouble : 422, "%s",
		   cJSON_IsString(msg) ? msg->valuestring : "rejected");
	return NULL;
}

HOOKD_PLUGIN_SYNC("fail", "1.0.0", HOOKD_HOOKS("fail"), NULL, NULL, fail);
