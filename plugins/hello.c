/* hello.c -- a complete hookd plugin: POST /hooks/greet {"name": "Ada"} */
#include <stdio.h>

#include <hookd.h>

static cJSON *greet(const hookd_ctx *ctx, hookd_call *call, cJSON *input)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(input, "name");
	char text[128];
	cJSON *out;

	if (!cJSON_IsString(name)) {
		hookd_fail(ctx, call, 422, "\"name\" must be a string");
		return NULL; /* the client gets 422 {"error": "...", "plugin": "hello"} */
	}
	snprintf(text, sizeof(text), "Hello, %s!", name->valuestring);
	out = cJSON_CreateObject();
	if (!out || !cJSON_AddStringToObject(out, "greeting", text)) {
		cJSON_Delete(out);
		hookd_fail(ctx, call, 500, "out of memory");
		return NULL;
	}
	return out; /* ownership passes to the host */
}

HOOKD_PLUGIN_SYNC("hello", "1.0.0", HOOKD_HOOKS("greet"), NULL, NULL, greet);
