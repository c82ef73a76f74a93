/*
 * registry -- immutable generations of (config, loaded plugins, hook ->
 * chain map) and the pointer to the current one.
 *
 * A call pins the generation current when it starts (registry_acquire) and
 * releases it when it ends; reload builds a new generation and swaps it in
 * atomically. A generation is freed when its last reference goes, and then
 * releases its plugins, which are unloaded when no generation holds them.
 * So old code is unloaded exactly when the last call that could run it is
 * over.
 */
#ifndef HOOKD_REGISTRY_H
#define HOOKD_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "loader.h"
#include "log.h"
#include "plugin.h"

struct hook_entry {
	char *name;
	struct plugin **chain;   /* borrowed from the generation's plugin list */
	size_t nchain;
	struct plugin **on_error; /* hooks.<name>.on_error, borrowed like chain, or NULL */
	size_t non_error;
	struct plugin **after;   /* hooks.<name>.after (observers), or NULL */
	size_t nafter;
	uint32_t after_timeout_ms;
	const struct config_hook *cfg; /* its section of the generation's config, or NULL */
	uint32_t timeout_ms;
	char *unavailable;       /* non-NULL: the chain cannot run, and why */
	int explicit_chain;      /* chain came from the config */
	unsigned metric_slot;    /* metrics_intern(METRICS_HOOK) of its name, set before
	                          * the generation is published (0: "(unknown)") */
};

struct generation;

/* Where a generation goes when its last reference is dropped, if it has
 * one: fn(arg, g) takes g and must have generation_free(g) run later on a
 * thread where plugins' fini may run (never an event loop: main's loader
 * thread, reloader.h). */
struct generation_reaper {
	void (*fn)(void *arg, struct generation *g);
	void *arg;
};

struct generation {
	atomic_uint refs;
	uint64_t id;
	struct config *cfg;      /* owned */
	struct loader_result lr; /* owned: plugins (one ref each) and rejections */
	struct limiter **limiters; /* parallel to lr.plugins: one ref each, or NULL */
	struct hook_entry *hooks; /* sorted by name */
	size_t nhooks;
	struct timespec created;  /* CLOCK_REALTIME */
	const struct log *log;
	/* set before the generation is published, never after; NULL: the
	 * last release frees it on the releasing thread */
	const struct generation_reaper *reaper;
	struct generation *next_dead; /* the reaper's queue */
};

/* Build generation `id` from cfg and lr; takes ownership of both (also on
 * failure). Problems with the config's chains are logged and recorded in
 * the hooks' `unavailable`. A plugin new in this generation gets its
 * outbound-HTTP limiter (plugins.<name>.fetch) here; a plugin kept from an
 * earlier generation keeps its limiter, and the limits counted in it (a
 * reused plugin has an unchanged section). Returns 0 and *out (one reference), or
 * -ENOMEM. */
int generation_build(struct config *cfg, struct loader_result *lr, uint64_t id,
		     const struct log *log, struct generation **out);

void generation_retain(struct generation *g);
/* Drop a reference. Any thread. The last one hands g to its reaper, or
 * without one frees it at once (generation_free). */
void generation_release(struct generation *g);
/* Free g (no reference is left) and release its plugins: the last
 * release of a plugin runs its fini and dlclose on the calling thread. */
void generation_free(struct generation *g);

/* The hook called `name`, or NULL. Borrowed from g. */
const struct hook_entry *generation_find_hook(const struct generation *g, const char *name);

/* The generation's number (1 for the first one loaded). */
uint64_t generation_id(const struct generation *g);

/* How many plugins the generation loaded. */
size_t generation_plugin_count(const struct generation *g);

/* A JSON description for GET /plugins (caller owns it), or NULL. */
cJSON *generation_describe(const struct generation *g);

struct registry {
	pthread_mutex_t mu;
	struct generation *current; /* holds one reference */
	/* a hook of the current generation has transport settings of its own
	 * (verify, accept, max_body, dedup): the transport looks the hook up
	 * before its call only then (any thread, no lock) */
	atomic_bool gated;
};

int registry_init(struct registry *r);
/* Release the current generation and destroy the registry. */
void registry_destroy(struct registry *r);
/* The current generation with one more reference (release it), or NULL
 * before the first swap. Any thread. */
struct generation *registry_acquire(struct registry *r);
/* Make `g` current; takes the caller's reference to g. The previous
 * generation loses the registry's reference (freed if no call holds it). */
void registry_swap(struct registry *r, struct generation *g);

#endif
