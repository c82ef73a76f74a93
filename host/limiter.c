/*
 * limiter -- see limiter.h. All state is under `mu`; the bucket is
 * refilled lazily from CLOCK_MONOTONIC whenever someone asks.
 */
#include "limiter.h"
#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

struct limiter {
	atomic_uint refs;
	pthread_mutex_t mu;
	struct limiter_limits lim;
	unsigned active;           /* slots held or granted */
	double tokens;
	int64_t last_ns;
	TAILQ_HEAD(, limiter_waiter) queue; /* in arrival order */
	unsigned nqueued;
};

int limiter_create(const struct limiter_limits *lim, struct limiter **out)
{
	struct limiter *l;

	*out = NULL;
	if (!lim->concurrency && !(lim->rate > 0))
		return 0;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	atomic_init(&l->refs, 1);
	pthread_mutex_init(&l->mu, NULL);
	TAILQ_INIT(&l->queue);
	l->lim = *lim;
	if (l->lim.rate > 0 && !(l->lim.burst > 0))
		l->lim.burst = l->lim.rate >= 1 ? l->lim.rate : 1;
	l->tokens = l->lim.burst;
	l->last_ns = clock_mono_ns();
	*out = l;
	return 0;
}

void limiter_retain(struct limiter *l)
{
	if (l)
		atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
}

void limiter_release(struct limiter *l)
{
	if (!l || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_destroy(&l->mu);
	free(l);
}

static void refill_locked(struct limiter *l, int64_t now)
{
	if (l->lim.rate > 0) {
		l->tokens += (double)(now - l->last_ns) / 1e9 * l->lim.rate;
		if (l->tokens > l->lim.burst)
			l->tokens = l->lim.burst;
	}
	l->last_ns = now;
}

/* Take a slot (and a token) if the limits allow one more now. */
static bool take_locked(struct limiter *l)
{
	refill_locked(l, clock_mono_ns());
	if (l->lim.concurrency && l->active >= l->lim.concurrency)
		return false;
	if (l->lim.rate > 0 && l->tokens < 1.0)
		return false;
	l->active++;
	if (l->lim.rate > 0)
		l->tokens -= 1.0;
	return true;
}

static bool full_locked(const struct limiter *l)
{
	return l->lim.concurrency && l->active >= l->lim.concurrency;
}

/* Seconds until a token for a waiter with `ahead` others before it. */
static double token_wait_locked(const struct limiter *l, double ahead)
{
	double s = (ahead + 1.0 - l->tokens) / l->lim.rate;

	return s < 0.001 ? 0.001 : s;
}

/* Hand free capacity to the queue in order: waiters of `me` go to
 * `ready`, the others are granted to their own loops. */
static void pump_locked(struct limiter *l, struct limiter_owner *me, struct limiter_list *ready)
{
	struct limiter_waiter *w;

	while ((w = TAILQ_FIRST(&l->queue)) && take_locked(l)) {
		TAILQ_REMOVE(&l->queue, w, qlink);
		l->nqueued--;
		atomic_fetch_sub_explicit(&w->owner->waiting, 1, memory_order_relaxed);
		if (w->owner == me) {
			w->state = LIMITER_HOLDS;
			STAILQ_INSERT_TAIL(ready, w, rlink);
		} else {
			w->state = LIMITER_GRANTED;
			w->owner->grant(w->owner, w);
		}
	}
}

bool limiter_enter(struct limiter *l, struct limiter_waiter *w, double *wait_s)
{
	bool rate;
	double ahead;

	*wait_s = 0;
	pthread_mutex_lock(&l->mu);
	if (TAILQ_EMPTY(&l->queue) && take_locked(l)) {
		pthread_mutex_unlock(&l->mu);
		w->state = LIMITER_HOLDS;
		return true;
	}
	/* wait in line: nobody overtakes a waiter */
	w->state = LIMITER_QUEUED;
	TAILQ_INSERT_TAIL(&l->queue, w, qlink);
	ahead = l->nqueued++;
	atomic_fetch_add_explicit(&w->owner->waiting, 1, memory_order_relaxed);
	rate = l->lim.rate > 0;
	if (rate)
		*wait_s = token_wait_locked(l, ahead);
	pthread_mutex_unlock(&l->mu);
	return false;
}

void limiter_leave(struct limiter *l, struct limiter_waiter *w, struct limiter_list *ready)
{
	if (w->state != LIMITER_HOLDS)
		return;
	w->state = LIMITER_IDLE;
	pthread_mutex_lock(&l->mu);
	l->active--;
	pump_locked(l, w->owner, ready);
	pthread_mutex_unlock(&l->mu);
}

double limiter_poll(struct limiter *l, struct limiter_waiter *w, struct limiter_list *ready)
{
	double wait_s = 0;

	pthread_mutex_lock(&l->mu);
	pump_locked(l, w->owner, ready);
	/* look again only while tokens hold it back; when the concurrency
	 * bound does, the next leave pumps the queue */
	if (w->state == LIMITER_QUEUED && !full_locked(l))
		wait_s = token_wait_locked(l, 0);
	pthread_mutex_unlock(&l->mu);
	return wait_s;
}

void limiter_cancel(struct limiter *l, struct limiter_waiter *w, struct limiter_list *ready)
{
	pthread_mutex_lock(&l->mu);
	switch (w->state) {
	case LIMITER_QUEUED:
		TAILQ_REMOVE(&l->queue, w, qlink);
		l->nqueued--;
		atomic_fetch_sub_explicit(&w->owner->waiting, 1, memory_order_relaxed);
		break;
	case LIMITER_GRANTED:
		/* another loop gave it a slot: pass the slot on */
		w->owner->ungrant(w->owner, w);
		l->active--;
		pump_locked(l, w->owner, ready);
		break;
	default:
		break;
	}
	w->state = LIMITER_IDLE;
	pthread_mutex_unlock(&l->mu);
}
