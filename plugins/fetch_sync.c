/*
 * fetch_sync -- sync: the same GET as `fetch`, done with a blocking libcurl
 * easy handle on a worker thread, for comparison. The pattern for sync
 * plugins that do HTTP:
 *   - the host has called curl_global_init() once before any thread;
 *   - CURLOPT_NOSIGNAL=1 (timeouts must not use signals in a threaded host);
 *   - a handle is used by one thread at a time: here a small stack of idle
 *     handles under a mutex, so connections are reused across calls;
 *   - never longer than the call's deadline (remaining_ms).
 * Links libcurl itself: -lcurl.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>

#include <hookd.h>

#define IDLE_MAX 16

struct state {
	pthread_mutex_t mu;
	CURL *idle[IDLE_MAX];
	int nidle;
};

static size_t count_bytes(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	*(size_t *)arg += size * n;
	return size * n;
}

static CURL *take(struct state *s)
{
	CURL *e = NULL;

	pthread_mutex_lock(&s->mu);
	if (s->nidle)
		e = s->idle[--s->nidle];
	pthread_mutex_unlock(&s->mu);
	return e ? e : curl_easy_init();
}

static void give_back(struct state *s, CURL *e)
{
	pthread_mutex_lock(&s->mu);
	if (s->nidle < IDLE_MAX) {
		curl_easy_reset(e);
		s->idle[s->nidle++] = e;
		e = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	if (e)
		curl_easy_cleanup(e);
}

static int init(hookd_ctx *ctx, const cJSON *config)
{
	struct state *s = calloc(1, sizeof(*s));

	(void)config;
	if (!s)
		return -1;
	pthread_mutex_init(&s->mu, NULL);
	ctx->state = s;
	return 0;
}

static void fini(hookd_ctx *ctx)
{
	struct state *s = ctx->state;

	while (s->nidle)
		curl_easy_cleanup(s->idle[--s->nidle]);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static cJSON *run(const hookd_ctx *ctx, hookd_call *call, cJSON *in)
{
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(in, "url");
	int64_t left = ctx->api->remaining_ms(call);
	size_t bytes = 0;
	long status = 0;
	curl_off_t us = 0;
	CURLcode rc;
	CURL *e;
	cJSON *out;

	if (!cJSON_IsString(url)) {
		hookd_fail(ctx, call, 400, "\"url\" must be a string");
		return NULL;
	}
	if (!(e = take(ctx->state))) {
		hookd_fail(ctx, call, 500, "out of memory");
		return NULL;
	}
	curl_easy_setopt(e, CURLOPT_URL, url->valuestring);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(left > 0 ? left : 1));
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, count_bytes);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &bytes);
	rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &us);
	give_back(ctx->state, e);
	if (rc != CURLE_OK) {
		hookd_fail(ctx, call, rc == CURLE_OPERATION_TIMEDOUT ? 504 : 502, "GET %s: %s",
			   url->valuestring, curl_easy_strerror(rc));
		return NULL;
	}
	out = cJSON_CreateObject();
	cJSON_AddNumberToObject(out, "status", (double)status);
	cJSON_AddNumberToObject(out, "bytes", (double)bytes);
	cJSON_AddNumberToObject(out, "ms", (double)us / 1e3);
	return out;
}

HOOKD_PLUGIN_SYNC("fetch_sync", "1.0.0", HOOKD_HOOKS("fetch_sync"), init, fini, run);
