/*
 * status -- see status.h.
 */
#include "status.h"
#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "isolate.h"

int status_init(struct status *st)
{
	memset(st, 0, sizeof(*st));
	return -pthread_mutex_init(&st->mu, NULL);
}

void status_destroy(struct status *st)
{
	pthread_mutex_destroy(&st->mu);
}

uint64_t status_now_us(void)
{
	return (uint64_t)clock_mono_ns() / 1000u;
}

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void status_load_begin(struct status *st)
{
	uint64_t now = status_now_us();

	pthread_mutex_lock(&st->mu);
	st->begun_us = now;
	pthread_mutex_unlock(&st->mu);
}

void status_load_ok(struct status *st, const struct generation *g, bool initial)
{
	double now = wall_now();

	pthread_mutex_lock(&st->mu);
	st->last.seq++;
	st->last.generation = g->id;
	st->last.ok = true;
	st->last.time = now;
	st->last.started_us = st->begun_us;
	st->last.rejected = (unsigned)g->lr.nrejects;
	if (!initial)
		st->last.ok_total++;
	st->last.errors[0] = '\0';
	size_t used = 0;
	for (size_t i = 0; i < g->lr.nrejects && used < sizeof(st->last.errors) - 1; i++) {
		int n = snprintf(st->last.errors + used, sizeof(st->last.errors) - used, "%s%s: %s",
				 i ? "; " : "", g->lr.rejects[i].file, g->lr.rejects[i].reason);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	pthread_mutex_unlock(&st->mu);
}

void status_load_failed(struct status *st, uint64_t current, const char *err)
{
	double now = wall_now();

	pthread_mutex_lock(&st->mu);
	st->last.seq++;
	st->last.generation = current;
	st->last.ok = false;
	st->last.time = now;
	st->last.started_us = st->begun_us;
	st->last.rejected = 0;
	st->last.failed_total++;
	snprintf(st->last.errors, sizeof(st->last.errors), "%s", err ? err : "");
	pthread_mutex_unlock(&st->mu);
}

void status_last(struct status *st, struct status_reload *out)
{
	pthread_mutex_lock(&st->mu);
	*out = st->last;
	pthread_mutex_unlock(&st->mu);
}

void status_describe_reload(struct status *st, cJSON *o)
{
	struct status_reload r;
	cJSON *lr = cJSON_AddObjectToObject(o, "last_reload");
	char when[40];
	struct tm tm;
	time_t secs;

	if (!lr)
		return;
	status_last(st, &r);
	secs = (time_t)r.time;
	gmtime_r(&secs, &tm);
	int n = (int)strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - (size_t)n, ".%03dZ",
		 (int)((r.time - (double)secs) * 1000) % 1000);
	cJSON_AddNumberToObject(lr, "seq", (double)r.seq);
	cJSON_AddStringToObject(lr, "result", r.seq <= 1 && r.ok ? "initial" :
				r.ok ? "ok" : "failed");
	cJSON_AddNumberToObject(lr, "generation", (double)r.generation);
	cJSON_AddStringToObject(lr, "time", when);
	cJSON_AddNumberToObject(lr, "started_monotonic_us", (double)r.started_us);
	cJSON_AddNumberToObject(lr, "rejected", r.rejected);
	cJSON_AddStringToObject(lr, "errors", r.errors);
	cJSON_AddNumberToObject(lr, "reloads_ok", (double)r.ok_total);
	cJSON_AddNumberToObject(lr, "reloads_failed", (double)r.failed_total);
}

static void reason(cJSON *reasons, const char *fmt, const char *a, const char *b)
{
	char buf[768];

	if (!reasons)
		return;
	snprintf(buf, sizeof(buf), fmt, a, b);
	cJSON_AddItemToArray(reasons, cJSON_CreateString(buf));
}

bool status_hooks_ready(const struct generation *g, cJSON *reasons)
{
	bool ok = true;

	if (!g) {
		reason(reasons, "no generation loaded yet%s%s", "", "");
		return false;
	}
	if (!g->lr.nplugins) {
		reason(reasons, "no plugin loaded%s%s", "", "");
		ok = false;
	}
	for (size_t i = 0; i < g->nhooks; i++) {
		const struct hook_entry *h = &g->hooks[i];
		char why[512];

		if (h->unavailable) {
			reason(reasons, "hook %s: %s", h->name, h->unavailable);
			ok = false;
			continue;
		}
		for (size_t s = 0; s < h->nchain; s++) {
			struct plugin *p = h->chain[s];
			if (!p->iso || !isolate_quarantined(p->iso, why, sizeof(why)))
				continue;
			if (p->fail_open) /* its steps are skipped: the hook still runs */
				continue;
			char what[600];
			snprintf(what, sizeof(what), "plugin %s is quarantined (%s)", p->desc.name,
				 why);
			reason(reasons, "hook %s: %s", h->name, what);
			ok = false;
		}
	}
	return ok;
}
