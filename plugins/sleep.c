/*
 * sleep -- sync: blocks its worker thread for {"ms": N} milliseconds (0 to
 * 60000), then returns its input. Stands for any plugin that blocks: a
 * database driver, a subprocess, a CPU-bound transform.
 */
#include <errno.h>
#include <time.h>

#include <hookd.h>

static cJSON *sleep_ms(const hookd_ctx *ctx, hookd_call *call, cJSON *input)
{
	const cJSON *ms = cJSON_GetObjectItemCaseSensitive(input, "ms");
	struct timespec ts;

	if (ms && (!cJSON_IsNumber(ms) || ms->valuedouble < 0 || ms->valuedouble > 60000)) {
		hookd_fail(ctx, call, 400, "\"ms\" must be a number of milliseconds, 0 to 60000");
		return NULL;
	}
	if (ms) {
		long v = (long)ms->valuedouble;
		ts.tv_sec = v / 1000;
		ts.tv_nsec = (v % 1000) * 1000000L;
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	return input;
}

HOOKD_PLUGIN_SYNC("sleep", "1.0.0", HOOKD_HOOKS("sleep"), NULL, NULL, sleep_ms);
