/*
 * plugin -- one loaded copy of one plugin file, shared by every generation
 * that uses it and unloaded (fini, dlclose, private copy removed) when the
 * last of them lets go. Built by the loader; read-only afterwards except
 * for the refcount, the plugin's own ctx.state and the fetch fields, set
 * once by the registry before the plugin is first published.
 */
#ifndef HOOKD_PLUGIN_H
#define HOOKD_PLUGIN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <hookd.h>
#include "log.h"

struct limiter;
struct isolate_group;

/* What identifies the bytes of a file: a change of any of these is a new
 * version of the plugin. */
struct plugin_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct plugin {
	atomic_uint refs;       /* generations holding it */
	hookd_ctx ctx;          /* the plugin's context; ctx.name == desc.name */
	hookd_descriptor desc;  /* our copy of the plugin's descriptor */
	void *dl;               /* dlopen handle of copy_path */
	char *file;             /* file name inside plugin_dir ("echo.so") */
	char *copy_path;        /* the private copy that was dlopen'ed */
	struct plugin_id id;    /* identity of the file that was copied */
	char sha256[65];        /* of the private copy that was loaded, hex */
	atomic_uint stuck_workers; /* workers inside a call of it past its deadline */
	/* Kept by interpose.c (the plugin's pthread_create and key calls): */
	atomic_uint live_threads; /* threads it started that have not ended */
	atomic_uint live_keys;    /* pthread keys with a destructor in its code */
	cJSON *config;          /* copy of the section given to init, or NULL */
	uint64_t generation;    /* the generation that loaded it */
	const struct log *log;
	/* Outbound-HTTP limits, from plugins.<name>.fetch. Set by the first
	 * generation built with this plugin (registry.c), before anyone can
	 * call it, and read-only afterwards (a reused plugin has the same
	 * config section, so the same limits). The limiter is shared by every
	 * loop and refcounted by the generations holding the plugin. */
	bool fetch_bound;                /* the two below are set */
	struct limiter *limiter;         /* NULL: no concurrency or rate limit */
	size_t fetch_max_response;       /* 0: the host's default */
	bool initialised;       /* init succeeded: fini is owed */
	/* Isolated (isolate.h): the plugin runs in child processes and is
	 * never mapped here; desc holds what the probe read (no entry points). */
	struct isolate_group *iso;       /* NULL: in-process */
	char *isolated_why;              /* why it is isolated */
	cJSON *probe_desc;               /* owns desc's strings when isolated */
	const char **probe_hooks;        /* desc.hooks when isolated */
	bool fail_open;                  /* failure_mode "open": a failed step is skipped */
	atomic_ulong skipped[4];         /* fail-open skips: enum plugin_skip */
	atomic_uint held_calls;          /* cancelled calls it has not finished (async) */
	/* plugins.<name>.max_in_flight (0: none), set with the fetch limits
	 * (registry.c), and its steps begun and not yet finished */
	unsigned max_in_flight;
	atomic_uint in_flight;
	unsigned metric_slot;            /* metrics_intern(METRICS_PLUGIN) of its name, set
	                                  * once before it is first published (0: none) */
};

/* Why a fail-open step was skipped (counted apart). */
enum plugin_skip { PLUGIN_SKIP_FAILED, PLUGIN_SKIP_CRASHED, PLUGIN_SKIP_TIMEOUT,
		   PLUGIN_SKIP_QUARANTINED };

/* Take one more reference. Any thread. */
void plugin_retain(struct plugin *p);

/* Drop a reference; the last one runs fini, dlclose, removes the private
 * copy and frees p. Call from a thread on which fini may run and block:
 * the loader thread (reloader.h), or main's before or after serving;
 * never an event loop. A plugin that left a thread running or a pthread
 * key with a destructor in its code after fini is not dlclose'd and p is
 * not freed (the thread still uses both): logged as a warning, its code
 * stays mapped until exit. Waits up to 200 ms (loader.c) for its threads
 * to end. */
void plugin_release(struct plugin *p);

/* The plugin that owns `ctx` (ctx must be a plugin's ctx member). */
struct plugin *plugin_of_ctx(const hookd_ctx *ctx);

static inline bool plugin_is_async(const struct plugin *p)
{
	return p->desc.mode == HOOKD_MODE_ASYNC;
}

#endif
