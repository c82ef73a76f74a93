/*
 * reloader -- the loader thread: where plugin code is loaded and unloaded
 * once the daemon serves, so that no plugin's init or fini ever holds an
 * event loop.
 *
 * Two kinds of work, one thread:
 *   - a reload: `build` runs on the loader thread (config, folder scan,
 *     dlopen, init, generation build); the generation it returns is handed
 *     to `apply` on the loop of `base` (which swaps it in). One reload at a
 *     time, swap included: a request that arrives while one runs is
 *     coalesced into one more reload after it (so the next scan always
 *     starts from the generation the last one made current).
 *   - a release: a generation whose last reference went (on a loop, a
 *     worker, anywhere) is queued by the reaper and freed here, with its
 *     plugins' fini and dlclose. So "old code is unloaded when the last call
 *     that could run it is over" still holds, only not on that call's loop.
 */
#ifndef HOOKD_RELOADER_H
#define HOOKD_RELOADER_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "log.h"
#include "registry.h"

struct reloader;

struct reloader_ops {
	/* Loader thread: build the next generation; returns it (one
	 * reference, the caller's), or NULL when the reload failed (logged). */
	struct generation *(*build)(void *arg);
	/* The loop of `base`: make g current; takes g's reference. */
	void (*apply)(void *arg, struct generation *g);
	void *arg;
};

/* Start the loader thread (it blocks every signal but the fatal ones) and
 * arm its hand-back on `base`, whose loop must be the calling thread's.
 * `ops` and `log` are borrowed and must outlive the reloader. Returns 0, or
 * -1 with err (nothing to free then). */
int reloader_start(struct event_base *base, const struct reloader_ops *ops,
		   const struct log *log, struct reloader **out, char *err, size_t errlen);

/* Ask for a reload. The loop of `base` (or any thread). Returns false when
 * a reload was already under way: this request is the one more reload that
 * follows it (however many arrive meanwhile). */
bool reloader_request(struct reloader *r);

/* The reaper to set on every generation (borrowed from r; valid until
 * reloader_stop returns). */
const struct generation_reaper *reloader_reaper(const struct reloader *r);

/* The calling thread's loop has ended: let the reload under way finish
 * (its generation, never applied, is dropped), free every queued
 * generation and join the thread. From then on the reaper frees a
 * generation at once, on the releasing thread (plugins' fini runs there).
 * NULL: nothing. */
void reloader_stop(struct reloader *r);

/* Free r (stopped) once no generation with its reaper is left. NULL:
 * nothing. */
void reloader_free(struct reloader *r);

#endif
