/*
 * blame -- which plugin the current thread is running, and for which hook
 * and generation.
 *
 * Whoever enters plugin code (a pool worker calling call_sync, a loop
 * calling call_async or a plugin's timer, cancel or fetch callback, the
 * loader calling init or fini) pushes a frame on the thread's stack first
 * and pops it when the plugin returns. Frames nest: a plugin finishing its
 * step inside a timer callback may start the next plugin's step.
 *
 * The fatal-signal handler reads the innermost frame, so a frame holds
 * only pointers that stay valid while the plugin runs (the plugin's
 * descriptor strings, the hook's name in a pinned generation) and is read
 * without locks: pushing and popping are plain stores to a thread-local.
 */
#ifndef HOOKD_BLAME_H
#define HOOKD_BLAME_H

#include <stdint.h>

struct plugin;

struct blame_frame {
	const struct plugin *plugin;
	const char *hook;        /* NULL outside a call (init, fini) */
	uint64_t generation;     /* the generation the call pinned, or the
	                          * plugin's own for init and fini */
	const char *entry;       /* "call_sync", "timer callback", "init", ... */
	int64_t start_ns;        /* for whoever times it: when it was entered, */
	int64_t child_ns;        /* and the time spent in frames nested in it */
	struct blame_frame *prev;
};

/* Make `f` (caller's storage, filled in) the innermost frame of this
 * thread until blame_pop(f). */
void blame_push(struct blame_frame *f);

/* Drop `f`, which must be the innermost frame. */
void blame_pop(struct blame_frame *f);

/* The innermost frame of this thread, or NULL when no plugin code is
 * running on it. Async-signal-safe. */
const struct blame_frame *blame_current(void);

/* Append "plugin P (file F, generation G) serving hook H (entry)" to `b`
 * (no hook part outside a call). Async-signal-safe. */
struct sbuf;
void blame_describe(struct sbuf *b, const struct blame_frame *f);

#endif
