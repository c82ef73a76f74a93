/*
 * wake -- one event loop's cross-thread wake-up: "there is work for you in
 * a list you own; drain it". Any thread may signal; the callback runs on
 * the loop thread.
 *
 * An eventfd watched edge-triggered (EV_ET) on the loop's base: every
 * write is a new edge, so the counter is not read back after every wake-up
 * (one syscall saved per wake), only now and then to keep it far from its
 * 2^64 limit. Signals that arrive before the loop runs coalesce into one
 * callback, so the callback must drain everything that was posted, not
 * one item. The work itself (a list under a lock, pool_sink, ...) belongs
 * to the user; wake carries no data.
 */
#ifndef HOOKD_WAKE_H
#define HOOKD_WAKE_H

#include <event2/event.h>
#include <event2/event_struct.h>

typedef void (*wake_fn)(void *arg);

struct wake {
	int fd;            /* eventfd */
	unsigned wakes;    /* callbacks so far; the counter is read every 4096 */
	struct event ev;
	wake_fn fn;
	void *arg;
};

/* Arm `w` on `base` (call on the loop thread before any signal): fn(arg)
 * runs on the loop after signals. Returns 0 or a negative errno; on error
 * nothing is left to free. */
int wake_init(struct wake *w, struct event_base *base, wake_fn fn, void *arg);

/* Any thread; never blocks, takes no lock. */
void wake_signal(struct wake *w);

/* The same with the signature of a pool_sink's notify (arg: the wake). */
void wake_notify(void *w);

/* Loop thread: disarm and close. No signal may be in progress. */
void wake_fini(struct wake *w);

#endif
