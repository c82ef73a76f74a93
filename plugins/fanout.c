/*
 * fanout -- async: {"url": U, "count": N} or {"urls": [...]} (optional
 * "timeout_ms", "retries", "fail_fast") starts every request at once and
 * answers when all are done: {"results": [{"status", "ms", "bytes"} or
 * {"error"}...], "ms": elapsed}. Ten 100 ms requests take about 100 ms.
 * Its config section may set "fetch": {"concurrency": K, "rate": R}.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hookd.h>

#define FANOUT_MAX 1024

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void on_all(const hookd_ctx *ctx, hookd_call *call, const hookd_response *const *r,
		   size_t n, void *arg)
{
	double *started = arg;
	cJSON *out = cJSON_CreateObject(), *results = cJSON_AddArrayToObject(out, "results");

	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		if (r[i]->error) {
			cJSON_AddStringToObject(o, "error", r[i]->error_message);
		} else {
			cJSON_AddNumberToObject(o, "status", (double)r[i]->status);
			cJSON_AddNumberToObject(o, "bytes", (double)r[i]->body_len);
		}
		cJSON_AddNumberToObject(o, "ms", (double)(long)(r[i]->total_ms + 0.5));
		cJSON_AddItemToArray(results, o);
	}
	cJSON_AddNumberToObject(out, "ms", (double)(long)(now_ms() - *started + 0.5));
	free(started);
	hookd_complete(ctx, call, out); /* a no-op if the call was cancelled */
}

static void run(const hookd_ctx *ctx, hookd_call *call, cJSON *in)
{
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(in, "url");
	const cJSON *urls = cJSON_GetObjectItemCaseSensitive(in, "urls");
	const cJSON *count = cJSON_GetObjectItemCaseSensitive(in, "count");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(in, "timeout_ms");
	const cJSON *retries = cJSON_GetObjectItemCaseSensitive(in, "retries");
	size_t n = cJSON_IsArray(urls) ? (size_t)cJSON_GetArraySize(urls)
		   : cJSON_IsNumber(count) && count->valuedouble >= 1 ? (size_t)count->valuedouble
								      : 1;
	hookd_request *reqs;
	const hookd_request **ptrs;
	double *started;
	int rc;

	if (!cJSON_IsArray(urls) && !cJSON_IsString(url)) {
		hookd_fail(ctx, call, 400, "give \"url\" (with \"count\") or \"urls\"");
		return;
	}
	if (n == 0 || n > FANOUT_MAX) {
		hookd_fail(ctx, call, 400, "between 1 and %d requests", FANOUT_MAX);
		return;
	}
	reqs = calloc(n, sizeof(*reqs));
	ptrs = calloc(n, sizeof(*ptrs));
	started = malloc(sizeof(*started));
	if (!reqs || !ptrs || !started) {
		free(reqs);
		free(ptrs);
		free(started);
		hookd_fail(ctx, call, 500, "out of memory");
		return;
	}
	*started = now_ms();
	for (size_t i = 0; i < n; i++) {
		const cJSON *u = cJSON_IsArray(urls) ? cJSON_GetArrayItem(urls, (int)i) : url;
		reqs[i] = (hookd_request)HOOKD_REQUEST_INIT;
		ptrs[i] = &reqs[i];
		reqs[i].url = cJSON_IsString(u) ? u->valuestring : "";
		reqs[i].timeout_ms = cJSON_IsNumber(t) ? (uint32_t)t->valuedouble : 0;
		reqs[i].retries = cJSON_IsNumber(retries) ? (uint32_t)retries->valuedouble : 0;
	}
	rc = ctx->api->fetch_all(call, ptrs, n,
				 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(in, "fail_fast"))
					 ? HOOKD_GATHER_FAIL_FAST
					 : HOOKD_GATHER_ALL,
				 on_all, started);
	free(reqs); /* copied by fetch_all, and so is the array of pointers */
	free(ptrs);
	if (rc != HOOKD_OK) {
		free(started);
		hookd_fail(ctx, call, rc == HOOKD_EINVAL ? 400 : 500, "cannot start the requests "
			   "(%d)", rc);
	}
}

HOOKD_PLUGIN_ASYNC("fanout", "1.0.0", HOOKD_HOOKS("fanout"), NULL, NULL, run);
