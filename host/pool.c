/*
 * pool -- see pool.h. One mutex guards the queue; idle workers park on a
 * semaphore (cheaper than a condition variable, see worker_main), and a
 * submit wakes one only when one is parked and not already owed a wake-up.
 * Invariants: `queued` == length of the list, and is never above
 * `queue_max` plus the idle workers; after `stopping` is set no job is
 * accepted, but every job already accepted still runs.
 */
#include "pool.h"
#include "clock.h"

#include "crash.h"

#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct pool {
	pthread_mutex_t mu;
	sem_t park;        /* idle workers sleep here; one post per wake-up owed */
	struct pool_job *head, *tail;
	unsigned queued, queue_max, running;
	unsigned sleeping; /* parked workers not yet owed a wake-up */
	bool stopping;
	unsigned nthreads;   /* workers alive */
	unsigned target;     /* workers wanted (pool_create's `threads`) */
	unsigned stuck, max_stuck; /* workers inside a stuck job; the bound */
	unsigned nspawned, cap; /* threads[0..nspawned) started, for the join */
	pthread_t *threads;
};

int pool_sink_init(struct pool_sink *s, void (*notify)(void *arg), void *arg)
{
	int rc = pthread_mutex_init(&s->mu, NULL);

	if (rc)
		return -rc;
	atomic_init(&s->posting, 0);
	s->head = s->tail = NULL;
	s->notify = notify;
	s->arg = arg;
	return 0;
}

void pool_sink_destroy(struct pool_sink *s)
{
	/* a poster may still be between its unlock and its notify */
	while (atomic_load_explicit(&s->posting, memory_order_acquire))
		sched_yield();
	pthread_mutex_destroy(&s->mu);
}

void pool_sink_post(struct pool_sink *s, struct pool_job *job)
{
	bool was_empty;

	/* Once `mu` is released a drain may take the job, run its done() and
	 * let the sink's owner free it while we still notify -- a plugin thread
	 * finishing the last async call races the loop's shutdown exactly so.
	 * pool_sink_destroy waits for `posting` to drop to 0 first. */
	atomic_fetch_add_explicit(&s->posting, 1, memory_order_acquire);
	job->next = NULL;
	pthread_mutex_lock(&s->mu);
	was_empty = s->head == NULL;
	if (s->tail)
		s->tail->next = job;
	else
		s->head = job;
	s->tail = job;
	pthread_mutex_unlock(&s->mu);
	/* Only the first result of a burst wakes the consumer: it drains the
	 * whole list, so later posts before it runs ride along. Notify after
	 * unlocking: the consumer wakes at once and would block on `mu`. */
	if (was_empty)
		s->notify(s->arg);
	atomic_fetch_sub_explicit(&s->posting, 1, memory_order_release);
}

size_t pool_sink_drain(struct pool_sink *s)
{
	struct pool_job *list, *next;
	size_t n = 0;

	pthread_mutex_lock(&s->mu);
	list = s->head;
	s->head = s->tail = NULL;
	pthread_mutex_unlock(&s->mu);
	for (; list; list = next) {
		next = list->next;
		list->done(list);
		n++;
	}
	return n;
}

/* Take the queue's head for this worker. Called with `mu` held and a job
 * queued. */
static struct pool_job *pool_take_locked(struct pool *p)
{
	struct pool_job *job = p->head;

	p->head = job->next;
	if (!p->head)
		p->tail = NULL;
	p->queued--;
	p->running++;
	job->active = true;
	return job;
}

static void *worker_main(void *arg)
{
	struct pool *p = arg;
	struct pool_job *job, *next;
	bool leave = false;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->head && !p->stopping) {
			/* park: a semaphore rather than a condition variable, whose
			 * wait hands the mutex back marked contended (a futex call on
			 * every unlock after it) */
			p->sleeping++;
			pthread_mutex_unlock(&p->mu);
			while (sem_wait(&p->park) < 0 && errno == EINTR)
				;
			pthread_mutex_lock(&p->mu);
		}
		if (!p->head)
			break; /* stopping and nothing left */
		job = pool_take_locked(p);
		pthread_mutex_unlock(&p->mu);

		for (; job; job = next) {
			job->waited_ns = clock_mono_ns() - job->queued_ns;
			if (job->run)
				job->run(job);
			/* Give the worker back to the queue bound BEFORE the result
			 * is posted: once posted, the caller may see its answer and
			 * submit again at once, and must then find this worker idle.
			 * Releasing it after the post left a window (the worker
			 * preempted between post and lock, common on a busy machine)
			 * in which pool_submit counted the job as still running and
			 * refused work that was within threads + queue_max. The same
			 * lock pass takes the next job, so a busy worker still locks
			 * once per job. */
			pthread_mutex_lock(&p->mu);
			p->running--;
			job->active = false;
			if (job->stuck) {
				/* back from a stuck job: a replacement took this
				 * worker's place, so one of the two leaves */
				job->stuck = false;
				p->stuck--;
				if (p->nthreads > p->target) {
					p->nthreads--;
					leave = true;
				}
			}
			next = !leave && p->head ? pool_take_locked(p) : NULL;
			pthread_mutex_unlock(&p->mu);
			pool_sink_post(job->sink, job);
		}
		if (leave)
			return NULL;
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int pool_create(unsigned threads, unsigned queue_max, struct pool **out)
{
	sigset_t all, old;
	struct pool *p;
	int rc;

	*out = NULL;
	if (threads == 0 || queue_max == 0)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->threads = calloc(threads, sizeof(*p->threads));
	if (!p->threads) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	sem_init(&p->park, 0, 0);
	p->queue_max = queue_max;

	/* Workers inherit the creator's mask: block everything while they
	 * are created, so that signals are only ever delivered to the loop
	 * (all but the fatal ones, which must reach the crash handler). */
	crash_blockable_signals(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	p->target = p->cap = threads;
	for (; p->nthreads < threads; p->nthreads++, p->nspawned++) {
		rc = pthread_create(&p->threads[p->nthreads], NULL, worker_main, p);
		if (rc) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			pool_destroy(p);
			return -rc;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	*out = p;
	return 0;
}

int pool_submit(struct pool *p, struct pool_job *job)
{
	bool wake = false;
	int rc = 0;

	job->next = NULL;
	job->queued_ns = clock_mono_ns(); /* before the lock: no clock read under it */
	pthread_mutex_lock(&p->mu);
	if (p->stopping) {
		rc = -ESHUTDOWN;
	} else if (p->queued >= p->queue_max + (p->nthreads - p->running)) {
		/* `queue` bounds the jobs waiting for a worker: a job an idle
		 * worker is about to take (it has not woken up yet) is not
		 * waiting, so idle workers add room */
		rc = -EAGAIN;
	} else {
		if (p->tail)
			p->tail->next = job;
		else
			p->head = job;
		p->tail = job;
		p->queued++;
		if (p->sleeping) {
			p->sleeping--; /* that worker is ours to wake */
			wake = true;
		}
	}
	pthread_mutex_unlock(&p->mu);
	/* after unlocking: a worker woken under the lock would block on it at
	 * once; and no wake-up at all when nobody sleeps */
	if (wake)
		sem_post(&p->park);
	return rc;
}

void pool_destroy(struct pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	while (p->sleeping) {
		p->sleeping--;
		sem_post(&p->park);
	}
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->nspawned; i++)
		pthread_join(p->threads[i], NULL);
	sem_destroy(&p->park);
	pthread_mutex_destroy(&p->mu);
	free(p->threads);
	free(p);
}

void pool_set_max_stuck(struct pool *p, unsigned n)
{
	pthread_mutex_lock(&p->mu);
	p->max_stuck = n;
	pthread_mutex_unlock(&p->mu);
}

int pool_job_stuck(struct pool *p, struct pool_job *job)
{
	sigset_t all, old;
	int rc = 0;

	pthread_mutex_lock(&p->mu);
	if (p->stopping) {
		rc = -ESHUTDOWN;
	} else if (!job->active || job->stuck) {
		rc = -EALREADY;
	} else if (p->stuck >= p->max_stuck) {
		rc = -EAGAIN;
	} else if (p->nspawned == p->cap) {
		pthread_t *t = realloc(p->threads, (size_t)p->cap * 2 * sizeof(*t));
		if (!t)
			rc = -ENOMEM;
		else {
			p->threads = t;
			p->cap *= 2;
		}
	}
	if (rc == 0) {
		crash_blockable_signals(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = -pthread_create(&p->threads[p->nspawned], NULL, worker_main, p);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (rc == 0) {
		p->nspawned++;
		p->nthreads++;
		p->stuck++;
		job->stuck = true;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

unsigned pool_stuck(struct pool *p)
{
	unsigned n;

	pthread_mutex_lock(&p->mu);
	n = p->stuck;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void pool_stats(struct pool *p, unsigned *queued, unsigned *running, unsigned *threads)
{
	pthread_mutex_lock(&p->mu);
	if (queued)
		*queued = p->queued;
	if (running)
		*running = p->running;
	if (threads)
		*threads = p->nthreads;
	pthread_mutex_unlock(&p->mu);
}
