/*
 * fetch -- async: one GET of {"url": U} (optional "timeout_ms", "retries",
 * "retry_base_ms", "headers": true) on the event loop; answers {"status",
 * "bytes", "ms", "attempts"} and, when asked, "headers": [[name, value]...]
 * of the response. A transport failure fails the call: 504 for a timeout,
 * 502 otherwise.
 */
#include <hookd.h>

static double number(const cJSON *in, const char *key, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, key);

	return cJSON_IsNumber(v) && v->valuedouble >= 0 ? v->valuedouble : dflt;
}

static void on_done(const hookd_ctx *ctx, hookd_call *call, const hookd_response *r, void *arg)
{
	cJSON *out;

	if (r->error) {
		/* HOOKD_ECANCELED too: the client has its answer already, but the
		 * call is ours until we finish it (a no-op now that releases it) */
		hookd_fail(ctx, call, r->error == HOOKD_ETIMEDOUT ? 504 : 502, "GET %s: %s", r->url,
			   r->error_message);
		return;
	}
	out = cJSON_CreateObject();
	cJSON_AddNumberToObject(out, "status", (double)r->status);
	cJSON_AddNumberToObject(out, "bytes", (double)r->body_len);
	cJSON_AddNumberToObject(out, "ms", r->total_ms);
	cJSON_AddNumberToObject(out, "attempts", r->attempts);
	if (arg) { /* "headers": true */
		cJSON *hs = cJSON_AddArrayToObject(out, "headers");
		for (size_t i = 0; hs && i < r->nheaders; i++) {
			cJSON *pair = cJSON_CreateArray();
			cJSON_AddItemToArray(pair, cJSON_CreateString(r->headers[i].name));
			cJSON_AddItemToArray(pair, cJSON_CreateString(r->headers[i].value));
			cJSON_AddItemToArray(hs, pair);
		}
	}
	hookd_complete(ctx, call, out);
}

static void run(const hookd_ctx *ctx, hookd_call *call, cJSON *in)
{
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(in, "url");
	hookd_request req = HOOKD_REQUEST_INIT;
	int rc;

	if (!cJSON_IsString(url)) {
		hookd_fail(ctx, call, 400, "\"url\" must be a string");
		return;
	}
	req.url = url->valuestring;
	req.timeout_ms = (uint32_t)number(in, "timeout_ms", 0);
	req.retries = (uint32_t)number(in, "retries", 0);
	req.retry_base_ms = (uint32_t)number(in, "retry_base_ms", 0);
	/* arg only says "report the headers": a non-NULL marker */
	rc = ctx->api->fetch(call, &req, on_done,
			     cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(in, "headers")) ? (void *)in
											   : NULL);
	if (rc != HOOKD_OK)
		hookd_fail(ctx, call, rc == HOOKD_EINVAL ? 400 : 500, "cannot fetch %s (%d)",
			   req.url, rc);
}

HOOKD_PLUGIN_ASYNC("fetch", "1.0.0", HOOKD_HOOKS("fetch"), NULL, NULL, run);
