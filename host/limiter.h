/*
 * limiter -- one plugin's outbound-HTTP limits, shared by every event
 * loop: at most `concurrency` transfers hold a slot at once, and a token
 * bucket admits `rate` per second with bursts of `burst`. Who cannot go
 * now waits in one FIFO: nobody overtakes a waiter, whichever loop it
 * belongs to.
 *
 * Invariants:
 *   - A waiter is only ever touched by its owner's loop thread, except
 *     for the one hand-over below, done under the limiter's lock.
 *   - When capacity frees on one loop and the next in line belongs to
 *     another, the freeing loop takes the slot on the waiter's behalf
 *     (state GRANTED) and calls its owner's grant(), which queues it for
 *     the owner's loop and wakes that loop; the owner starts it there.
 *   - Waiters of the calling loop that may go are never started under the
 *     lock: they are appended to a `ready` list that the caller walks
 *     after the call returns (starting one may re-enter the limiter).
 *   - Lock order: the limiter's lock, then whatever grant()/ungrant()
 *     take (an owner's hand-over list lock); never the reverse.
 *
 * Lifetime: refcounted (limiter_retain/limiter_release); every generation
 * that holds the plugin holds one reference, so a limiter lives exactly
 * as long as some generation can still start transfers through it.
 */
#ifndef HOOKD_LIMITER_H
#define HOOKD_LIMITER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/queue.h>

struct limiter;
struct limiter_waiter;

struct limiter_limits {
	unsigned concurrency; /* 0: unlimited */
	double rate;          /* admissions per second; 0: unlimited */
	double burst;         /* bucket size; 0 with a rate: max(1, rate) */
};

/* One event loop as seen by the limiters (embedded in its fetch engine). */
struct limiter_owner {
	/* Another loop's thread, under the limiter's lock: w, one of ours,
	 * was granted a slot; hand it to our loop. Must not call into any
	 * limiter. */
	void (*grant)(struct limiter_owner *o, struct limiter_waiter *w);
	/* Our loop thread, under the limiter's lock: take back a GRANTED w
	 * that grant() handed over and the loop has not taken yet (w is being
	 * cancelled). */
	void (*ungrant)(struct limiter_owner *o, struct limiter_waiter *w);
	atomic_uint waiting; /* our waiters queued in any limiter (stats) */
};

enum limiter_wstate {
	LIMITER_IDLE,    /* neither queued nor holding a slot */
	LIMITER_QUEUED,  /* in the limiter's FIFO */
	LIMITER_GRANTED, /* holds a slot, handed to its owner's loop by another */
	LIMITER_HOLDS    /* holds a slot, on its owner's loop */
};

struct limiter_waiter {
	struct limiter_owner *owner;
	enum limiter_wstate state;
	TAILQ_ENTRY(limiter_waiter) qlink;  /* the limiter's FIFO */
	STAILQ_ENTRY(limiter_waiter) rlink; /* a ready list, or the owner's hand-over list */
};

STAILQ_HEAD(limiter_list, limiter_waiter);

/* A limiter with one reference, or *out = NULL when `lim` limits nothing.
 * Returns 0 or -ENOMEM. */
int limiter_create(const struct limiter_limits *lim, struct limiter **out);
/* One more reference (any thread; l may be NULL). */
void limiter_retain(struct limiter *l);
/* Drop one; the last frees it: no waiter may be queued or hold a slot. */
void limiter_release(struct limiter *l);

/* Owner thread, w IDLE: ask for a slot. True: w HOLDS one. False: w is
 * QUEUED; if tokens (not the concurrency bound) hold it back, *wait_s > 0
 * says when to look again with limiter_poll, else a limiter_leave of
 * another waiter will move it. */
bool limiter_enter(struct limiter *l, struct limiter_waiter *w, double *wait_s);

/* Owner thread, w HOLDS (or GRANTED and taken by its loop): give the slot
 * back (w becomes IDLE). Waiters of w's owner that may go now are appended
 * to `ready` (in order; start them after this returns). */
void limiter_leave(struct limiter *l, struct limiter_waiter *w, struct limiter_list *ready);

/* Owner thread, w's token wait expired: hand out what the bucket holds
 * now (to `ready` as above, w perhaps among them). Returns when to look
 * again for w if tokens still hold it back, else 0. */
double limiter_poll(struct limiter *l, struct limiter_waiter *w, struct limiter_list *ready);

/* Owner thread: a GRANTED w was taken off the owner's hand-over list; it
 * now HOLDS its slot like one that entered directly. */
static inline void limiter_granted_taken(struct limiter_waiter *w)
{
	w->state = LIMITER_HOLDS;
}

/* Owner thread: w (QUEUED, or GRANTED and not yet taken by its loop) gives
 * up; a granted slot is passed on (to `ready` as above). w becomes IDLE. */
void limiter_cancel(struct limiter *l, struct limiter_waiter *w, struct limiter_list *ready);

#endif
