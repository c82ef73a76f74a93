/*
 * cpu -- sync: a fixed amount of CPU work per call, for the benchmarks
 * (bench/): {"n": N} rounds of a 64-bit FNV-style hash over the round
 * counter (default 700000, about 1 ms on the 2-core bench machine; 0 to
 * 1e9), then answers {"hash": "<16 hex digits>", "n": N}. The hash is a
 * string: a 64-bit value does not fit in a JSON number (a double).
 * bench/ref/ref.c and bench/peer_fastapi.py do exactly the same work, and
 * bench/run.sh checks that all three give the same hash.
 */
#include <inttypes.h>
#include <stdio.h>

#include <hookd.h>

#define CPU_DEFAULT_N 700000
#define CPU_MAX_N 1000000000.0
#define CPU_POLL_EVERY (1u << 20) /* rounds between two looks at cancelled() */

static cJSON *cpu(const hookd_ctx *ctx, hookd_call *call, cJSON *input)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(input, "n");
	uint64_t rounds = CPU_DEFAULT_N, h = 0xcbf29ce484222325ULL; /* FNV offset basis */
	char hex[17];
	cJSON *out;

	if (n && (!cJSON_IsNumber(n) || n->valuedouble < 0 || n->valuedouble > CPU_MAX_N)) {
		hookd_fail(ctx, call, 400, "\"n\" must be a number of rounds, 0 to 1e9");
		return NULL;
	}
	if (n)
		rounds = (uint64_t)n->valuedouble;
	for (uint64_t i = 0; i < rounds; i++) {
		h = (h ^ i) * 0x100000001b3ULL; /* FNV prime */
		/* a long job stops early when the host gave up (its late result
		 * would be discarded anyway) */
		if ((i & (CPU_POLL_EVERY - 1)) == CPU_POLL_EVERY - 1 && ctx->api->cancelled(call)) {
			hookd_fail(ctx, call, 503, "cancelled after %" PRIu64 " rounds", i + 1);
			return NULL;
		}
	}
	snprintf(hex, sizeof(hex), "%016" PRIx64, h);
	out = cJSON_CreateObject();
	if (!out || !cJSON_AddStringToObject(out, "hash", hex) ||
	    !cJSON_AddNumberToObject(out, "n", (double)rounds)) {
		cJSON_Delete(out);
		hookd_fail(ctx, call, 500, "out of memory");
		return NULL;
	}
	return out;
}

HOOKD_PLUGIN_SYNC("cpu", "1.0.0", HOOKD_HOOKS("cpu"), NULL, NULL, cpu);
