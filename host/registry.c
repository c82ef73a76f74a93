/*
 * registry -- see registry.h. The current pointer is read and its refcount
 * bumped under one mutex so that a swap cannot free a generation between
 * the read and the increment; everything inside a generation is immutable,
 * so calls read it without locks.
 *
 * Limiters are built here, beside the hook map, from the config the
 * generation carries (config.c validated it): the loader parses no plugin
 * section.
 */
#include "registry.h"
#include "isolate.h"

#include "limiter.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_hook(const void *a, const void *b)
{
	return strcmp(((const struct hook_entry *)a)->name, ((const struct hook_entry *)b)->name);
}

static struct hook_entry *find_or_add(struct generation *g, size_t *cap, const char *name)
{
	for (size_t i = 0; i < g->nhooks; i++)
		if (strcmp(g->hooks[i].name, name) == 0)
			return &g->hooks[i];
	if (g->nhooks == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct hook_entry *n = realloc(g->hooks, nc * sizeof(*n));
		if (!n)
			return NULL;
		g->hooks = n;
		*cap = nc;
	}
	struct hook_entry *h = &g->hooks[g->nhooks];
	memset(h, 0, sizeof(*h));
	if (!(h->name = strdup(name)))
		return NULL;
	g->nhooks++;
	return h;
}

static int chain_append(struct hook_entry *h, struct plugin *p)
{
	struct plugin **n = realloc(h->chain, (h->nchain + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	h->chain = n;
	n[h->nchain++] = p;
	return 0;
}

static struct plugin *find_plugin(const struct generation *g, const char *name)
{
	for (size_t i = 0; i < g->lr.nplugins; i++)
		if (strcmp(g->lr.plugins[i]->desc.name, name) == 0)
			return g->lr.plugins[i];
	return NULL;
}

static const char *rejected_reason(const struct generation *g, const char *name)
{
	/* a rejected file whose name matches the plugin's (x.so for plugin x) */
	size_t n = strlen(name);

	for (size_t i = 0; i < g->lr.nrejects; i++) {
		const char *f = g->lr.rejects[i].file;
		if (strncmp(f, name, n) == 0 && strcmp(f + n, ".so") == 0)
			return g->lr.rejects[i].reason;
	}
	return NULL;
}

/* The plugins named by hooks.<name>.<key> (chain, on_error, after), in
 * order, into *out: each one loaded, or the hook is unavailable (503 until a
 * reload loads it), with the first missing one named and logged. */
static int resolve_names(struct generation *g, struct hook_entry *h, const char *key,
			 char *const *names, size_t n, struct plugin ***out, size_t *nout)
{
	/* "plugin x is not loaded" for the chain, "after plugin x ..." for a phase */
	const char *what = strcmp(key, "chain") == 0 ? "" : key;

	if (!n)
		return 0;
	if (!(*out = calloc(n, sizeof(**out))))
		return -ENOMEM;
	for (size_t j = 0; j < n; j++) {
		struct plugin *p = find_plugin(g, names[j]);
		if (p) {
			(*out)[(*nout)++] = p;
			continue;
		}
		if (!h->unavailable) {
			const char *why = rejected_reason(g, names[j]);
			size_t len = strlen(names[j]) + (why ? strlen(why) : 0) + 80;
			if (!(h->unavailable = malloc(len)))
				return -ENOMEM;
			snprintf(h->unavailable, len, "%s%splugin %s is not loaded%s%s", what,
				 *what ? " " : "", names[j], why ? ": " : "", why ? why : "");
			log_error(g->log, "config %s: hooks.%s.%s[%zu]: %s; the hook answers 503 "
				  "until it is", g->cfg->path, h->name, key, j, h->unavailable);
		}
	}
	return 0;
}

static int build_hooks(struct generation *g)
{
	size_t cap = 0;
	struct hook_entry *h;

	/* implicit chains: every plugin serving the hook, in file-name order */
	for (size_t i = 0; i < g->lr.nplugins; i++) {
		struct plugin *p = g->lr.plugins[i];
		for (size_t j = 0; p->desc.hooks[j]; j++) {
			const struct config_hook *ch = config_find_hook(g->cfg, p->desc.hooks[j]);
			if (ch && ch->chain)
				continue; /* the config decides this one */
			if (!(h = find_or_add(g, &cap, p->desc.hooks[j])) ||
			    chain_append(h, p) < 0)
				return -ENOMEM;
		}
	}
	/* explicit chains and per-hook settings from the config */
	for (size_t i = 0; i < g->cfg->nhooks; i++) {
		const struct config_hook *ch = &g->cfg->hooks[i];
		if (!ch->chain) {
			bool served = false;
			for (size_t j = 0; j < g->nhooks; j++)
				served = served || strcmp(g->hooks[j].name, ch->name) == 0;
			if (!served)
				log_warn(g->log, "config %s: hooks.%s: no loaded plugin serves this hook",
					 g->cfg->path, ch->name);
			continue;
		}
		if (!(h = find_or_add(g, &cap, ch->name)))
			return -ENOMEM;
		h->explicit_chain = 1;
		/* a fresh entry: implicit chains skip the hooks the config chains */
		if (resolve_names(g, h, "chain", ch->chain, ch->nchain, &h->chain, &h->nchain) < 0)
			return -ENOMEM;
	}
	for (size_t i = 0; i < g->nhooks; i++) {
		h = &g->hooks[i];
		h->timeout_ms = config_hook_timeout(g->cfg, h->name);
		h->cfg = config_find_hook(g->cfg, h->name);
		if (h->cfg && (resolve_names(g, h, "on_error", h->cfg->on_error, h->cfg->non_error,
					     &h->on_error, &h->non_error) < 0 ||
			       resolve_names(g, h, "after", h->cfg->after, h->cfg->nafter,
					     &h->after, &h->nafter) < 0))
			return -ENOMEM;
		h->after_timeout_ms = h->cfg ? h->cfg->after_timeout_ms : 5000;
	}
	if (g->nhooks)
		qsort(g->hooks, g->nhooks, sizeof(*g->hooks), cmp_hook);
	return 0;
}

/* Give every plugin its limiter: a new one for a plugin no generation had
 * yet, a reference to its own for a plugin kept from the last. */
static int build_limiters(struct generation *g)
{
	g->limiters = calloc(g->lr.nplugins ? g->lr.nplugins : 1, sizeof(*g->limiters));
	if (!g->limiters)
		return -ENOMEM;
	for (size_t i = 0; i < g->lr.nplugins; i++) {
		struct plugin *p = g->lr.plugins[i];
		if (!p->fetch_bound) {
			/* not published yet: nobody else reads these fields */
			const struct config_fetch *cf = config_plugin_fetch(g->cfg, p->desc.name);
			struct limiter_limits ll = {cf->concurrency, cf->rate, cf->burst};
			if (limiter_create(&ll, &p->limiter) < 0)
				return -ENOMEM;
			p->fetch_max_response = cf->max_response;
			const struct config_plugin *cp = config_plugin_settings(g->cfg, p->desc.name);
			p->max_in_flight = cp ? cp->max_in_flight : 0;
			p->fetch_bound = true;
		} else {
			limiter_retain(p->limiter);
		}
		g->limiters[i] = p->limiter;
	}
	return 0;
}

int generation_build(struct config *cfg, struct loader_result *lr, uint64_t id,
		     const struct log *log, struct generation **out)
{
	struct generation *g = calloc(1, sizeof(*g));

	*out = NULL;
	if (!g) {
		config_free(cfg);
		loader_result_free(lr);
		return -ENOMEM;
	}
	atomic_init(&g->refs, 1);
	g->id = id;
	g->cfg = cfg;
	g->lr = *lr;
	memset(lr, 0, sizeof(*lr));
	g->log = log;
	clock_gettime(CLOCK_REALTIME, &g->created);
	if (build_limiters(g) < 0 || build_hooks(g) < 0) {
		generation_release(g);
		return -ENOMEM;
	}
	*out = g;
	return 0;
}

void generation_retain(struct generation *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

void generation_release(struct generation *g)
{
	if (!g || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (g->reaper)
		g->reaper->fn(g->reaper->arg, g);
	else
		generation_free(g);
}

void generation_free(struct generation *g)
{
	for (size_t i = 0; i < g->nhooks; i++) {
		free(g->hooks[i].name);
		free(g->hooks[i].chain);
		free(g->hooks[i].on_error);
		free(g->hooks[i].after);
		free(g->hooks[i].unavailable);
	}
	free(g->hooks);
	for (size_t i = 0; g->limiters && i < g->lr.nplugins; i++)
		limiter_release(g->limiters[i]); /* no call of g is left to use them */
	free(g->limiters);
	loader_result_free(&g->lr);
	config_free(g->cfg);
	free(g);
}

const struct hook_entry *generation_find_hook(const struct generation *g, const char *name)
{
	size_t lo = 0, hi = g->nhooks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, g->hooks[mid].name);
		if (c == 0)
			return &g->hooks[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static cJSON *describe_plugin(const struct plugin *p)
{
	cJSON *o = cJSON_CreateObject(), *hooks;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "name", p->desc.name);
	cJSON_AddStringToObject(o, "version", p->desc.version);
	cJSON_AddStringToObject(o, "mode", plugin_is_async(p) ? "async" : "sync");
	hooks = cJSON_AddArrayToObject(o, "hooks");
	for (size_t i = 0; hooks && p->desc.hooks[i]; i++)
		cJSON_AddItemToArray(hooks, cJSON_CreateString(p->desc.hooks[i]));
	cJSON_AddStringToObject(o, "file", p->file);
	cJSON_AddNumberToObject(o, "generation", (double)p->generation);
	cJSON_AddStringToObject(o, "sha256", p->sha256);
	cJSON_AddStringToObject(o, "failure_mode", p->fail_open ? "open" : "closed");
	if (p->fail_open) {
		cJSON *sk = cJSON_AddObjectToObject(o, "skipped");
		static const char *const kinds[] = {"failed", "crashed", "timeout", "quarantined"};
		for (int i = 0; sk && i < 4; i++)
			cJSON_AddNumberToObject(sk, kinds[i], (double)atomic_load_explicit(
					&((struct plugin *)p)->skipped[i], memory_order_relaxed));
	}
	if (p->iso) {
		isolate_describe(p->iso, o);
		cJSON *iso = cJSON_GetObjectItemCaseSensitive(o, "isolated");
		if (iso)
			cJSON_AddStringToObject(iso, "why", p->isolated_why);
	}
	return o;
}

uint64_t generation_id(const struct generation *g)
{
	return g->id;
}

size_t generation_plugin_count(const struct generation *g)
{
	return g->lr.nplugins;
}

cJSON *generation_describe(const struct generation *g)
{
	cJSON *root = cJSON_CreateObject(), *arr, *hooks;
	char when[32];
	struct tm tm;

	if (!root)
		return NULL;
	cJSON_AddNumberToObject(root, "generation", (double)g->id);
	gmtime_r(&g->created.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	cJSON_AddStringToObject(root, "loaded_at", when);
	cJSON_AddStringToObject(root, "plugin_dir", g->cfg->plugin_dir);
	arr = cJSON_AddArrayToObject(root, "plugins");
	for (size_t i = 0; arr && i < g->lr.nplugins; i++)
		cJSON_AddItemToArray(arr, describe_plugin(g->lr.plugins[i]));
	arr = cJSON_AddArrayToObject(root, "rejected");
	for (size_t i = 0; arr && i < g->lr.nrejects; i++) {
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "file", g->lr.rejects[i].file);
		cJSON_AddStringToObject(r, "reason", g->lr.rejects[i].reason);
		cJSON_AddItemToArray(arr, r);
	}
	hooks = cJSON_AddObjectToObject(root, "hooks");
	for (size_t i = 0; hooks && i < g->nhooks; i++) {
		const struct hook_entry *h = &g->hooks[i];
		cJSON *o = cJSON_CreateObject(), *chain = cJSON_AddArrayToObject(o, "chain");
		for (size_t j = 0; chain && j < h->nchain; j++)
			cJSON_AddItemToArray(chain, cJSON_CreateString(h->chain[j]->desc.name));
		cJSON_AddNumberToObject(o, "timeout_ms", h->timeout_ms);
		if (h->unavailable)
			cJSON_AddStringToObject(o, "unavailable", h->unavailable);
		cJSON_AddItemToObject(hooks, h->name, o);
	}
	return root;
}

int registry_init(struct registry *r)
{
	r->current = NULL;
	atomic_init(&r->gated, false);
	return -pthread_mutex_init(&r->mu, NULL);
}

void registry_destroy(struct registry *r)
{
	registry_swap(r, NULL);
	pthread_mutex_destroy(&r->mu);
}

struct generation *registry_acquire(struct registry *r)
{
	struct generation *g;

	pthread_mutex_lock(&r->mu);
	g = r->current;
	if (g)
		generation_retain(g);
	pthread_mutex_unlock(&r->mu);
	return g;
}

void registry_swap(struct registry *r, struct generation *g)
{
	struct generation *old;

	bool gated = false;

	for (size_t i = 0; g && g->cfg && i < g->cfg->nhooks; i++)
		gated = gated || g->cfg->hooks[i].verify || g->cfg->hooks[i].accept ||
			g->cfg->hooks[i].max_body || g->cfg->hooks[i].dedup;
	pthread_mutex_lock(&r->mu);
	old = r->current;
	r->current = g;
	atomic_store_explicit(&r->gated, gated, memory_order_release);
	pthread_mutex_unlock(&r->mu);
	generation_release(old); /* outside the lock: without a reaper it runs fini */
}
