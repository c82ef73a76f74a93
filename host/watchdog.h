/*
 * watchdog -- notices an event loop held by plugin code, and names it.
 *
 * Async plugins must never block their loop; one that does stalls every
 * call on it. Each loop owns a watch_slot and marks entering and leaving
 * plugin code (a clock read and two atomic stores). A watchdog thread looks
 * at every slot every few milliseconds; a loop held for longer than warn_ms
 * is sent HOOKD_WATCH_SIGNAL, whose handler runs on that loop's thread, so
 * the blame frame it reads (blame.h) is the live one of the code that holds
 * the loop: it logs the plugin, its file, generation, hook and for how long,
 * once, then once a second while the loop stays held (an infinite loop is
 * named too). Past abort_ms (0: never) the handler aborts: the crash
 * handler then writes the crash record and the next start does not load
 * that plugin (HAProxy's watchdog is the model).
 *
 * The handler is async-signal-safe (sigfmt.h). Its settings are a static
 * set once by watchdog_start, before the loops run: a handler has no
 * argument.
 */
#ifndef HOOKD_WATCHDOG_H
#define HOOKD_WATCHDOG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct watchdog;

/* One per event loop. Zero-initialise, then watchdog_slot_init on the
 * loop's thread. */
struct watch_slot {
	atomic_uint seq;          /* odd while plugin code holds the loop */
	atomic_llong since_ns;    /* when it took it (CLOCK_MONOTONIC) */
	unsigned depth;           /* loop thread: nested plugin entries */
	unsigned id;              /* the loop's number, for the log */
	pthread_t thread;
	/* the watchdog thread's own */
	unsigned signalled_seq;
	int64_t signalled_ns;
	struct watch_slot *next;
};

struct watchdog_options {
	unsigned warn_ms;  /* a loop held this long is named (0: no watchdog) */
	unsigned abort_ms; /* and past this the process aborts (0: never) */
	int log_fd;
	/* The service manager's watchdog (notify.h): every ping_ms (0: never)
	 * the thread calls ping(ping_arg, stuck) with stuck NULL when no loop
	 * has been held by plugin code for ping_ms or more, else a line naming
	 * the loop that is (a static buffer of the thread's). */
	unsigned ping_ms;
	void (*ping)(void *arg, const char *stuck);
	void *ping_arg;
};

/* Install the signal handler and start the thread. Call before the loops
 * run plugin code. Returns 0, or -1 with err. With warn_ms and ping_ms 0
 * nothing starts and *out is NULL (every other function accepts NULL).
 * With warn_ms 0 no loop is watched (pings, if any, always go). */
int watchdog_start(const struct watchdog_options *opt, struct watchdog **out, char *err,
		   size_t errlen);

/* Stop the thread and free the watchdog (slots must be removed first). */
void watchdog_stop(struct watchdog *w);

/* On the loop's thread: bind the slot to it. */
void watchdog_slot_init(struct watch_slot *s, unsigned id);

/* Watch / stop watching a slot. Any thread. */
void watchdog_add(struct watchdog *w, struct watch_slot *s);
void watchdog_remove(struct watchdog *w, struct watch_slot *s);

/* The loop enters plugin code (`now_ns`: CLOCK_MONOTONIC) / leaves it.
 * Nested entries count once. Loop thread only. */
static inline void watch_enter(struct watch_slot *s, int64_t now_ns)
{
	if (s->depth++)
		return;
	atomic_store_explicit(&s->since_ns, now_ns, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->seq, 1, memory_order_release);
}

/* Returns true when this left the outermost entry (the loop is free). */
static inline int watch_leave(struct watch_slot *s)
{
	if (--s->depth)
		return 0;
	atomic_fetch_add_explicit(&s->seq, 1, memory_order_release);
	return 1;
}

#endif
