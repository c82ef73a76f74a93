/*
 * reloader -- see reloader.h.
 *
 * One mutex and one condition variable guard the three things the thread
 * waits for: a reload asked for (pending) while none is under way (busy),
 * generations to free (dead, a FIFO), and stop. A built generation goes to
 * the loop through `ready` and the loop's wake-up; busy ends only once the
 * loop has applied it.
 */
#include "reloader.h"

#include "crash.h"
#include "wake.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reloader {
	const struct reloader_ops *ops;
	const struct log *log;
	struct generation_reaper reaper;
	struct wake wake;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	bool stop;
	bool joined;                    /* the thread is gone: the reaper frees at once */
	bool pending;                   /* a reload was asked for and has not started */
	bool busy;                      /* a reload runs, or its generation awaits apply */
	struct generation *ready;       /* built, for the loop to apply */
	struct generation *dead, *dead_tail; /* to free, oldest first */
};

/* Any thread: the last reference of g went. */
static void reap(void *arg, struct generation *g)
{
	struct reloader *r = arg;

	pthread_mutex_lock(&r->mu);
	if (r->joined) {
		pthread_mutex_unlock(&r->mu);
		generation_free(g); /* reloader_stop's caller: no loop runs any more */
		return;
	}
	g->next_dead = NULL;
	if (r->dead_tail)
		r->dead_tail->next_dead = g;
	else
		r->dead = g;
	r->dead_tail = g;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Free the queued generations; called and returns with mu held. */
static void drain_dead(struct reloader *r)
{
	while (r->dead) {
		struct generation *g = r->dead;
		r->dead = r->dead_tail = NULL;
		pthread_mutex_unlock(&r->mu);
		while (g) {
			struct generation *next = g->next_dead;
			generation_free(g); /* fini + dlclose of its last plugins */
			g = next;
		}
		pthread_mutex_lock(&r->mu);
	}
}

/* The loop: a built generation is ready. */
static void on_ready(void *arg)
{
	struct reloader *r = arg;
	struct generation *g;

	pthread_mutex_lock(&r->mu);
	g = r->ready;
	r->ready = NULL;
	pthread_mutex_unlock(&r->mu);
	if (!g)
		return; /* a wake-up that an earlier callback already served */
	r->ops->apply(r->ops->arg, g);
	pthread_mutex_lock(&r->mu);
	r->busy = false; /* the next scan starts from what is current now */
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void *thread_main(void *arg)
{
	struct reloader *r = arg;

	crash_thread_init(); /* a crash in init or fini is reported too */
	pthread_mutex_lock(&r->mu);
	for (;;) {
		drain_dead(r);
		if (r->stop)
			break;
		if (r->pending && !r->busy) {
			struct generation *g;
			r->pending = false;
			r->busy = true;
			pthread_mutex_unlock(&r->mu);
			g = r->ops->build(r->ops->arg);
			pthread_mutex_lock(&r->mu);
			if (g) {
				r->ready = g;
				wake_signal(&r->wake);
			} else {
				r->busy = false;
			}
			continue;
		}
		pthread_cond_wait(&r->cv, &r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	crash_thread_fini();
	return NULL;
}

int reloader_start(struct event_base *base, const struct reloader_ops *ops,
		   const struct log *log, struct reloader **out, char *err, size_t errlen)
{
	struct reloader *r = calloc(1, sizeof(*r));
	sigset_t all, old;
	int rc;

	*out = NULL;
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->ops = ops;
	r->log = log;
	r->reaper = (struct generation_reaper){reap, r};
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if ((rc = wake_init(&r->wake, base, on_ready, r)) < 0) {
		snprintf(err, errlen, "loader thread: cannot arm its wake-up: %s", strerror(-rc));
		goto fail;
	}
	/* signals belong to the main thread's loop */
	crash_blockable_signals(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&r->thread, NULL, thread_main, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot start the loader thread: %s", strerror(rc));
		wake_fini(&r->wake);
		goto fail;
	}
	*out = r;
	return 0;
fail:
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
	return -1;
}

bool reloader_request(struct reloader *r)
{
	bool fresh;

	pthread_mutex_lock(&r->mu);
	fresh = !r->busy && !r->pending;
	r->pending = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return fresh;
}

const struct generation_reaper *reloader_reaper(const struct reloader *r)
{
	return &r->reaper;
}

void reloader_stop(struct reloader *r)
{
	struct generation *g;

	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	wake_fini(&r->wake);
	pthread_mutex_lock(&r->mu);
	r->joined = true;
	g = r->ready;
	r->ready = NULL;
	drain_dead(r); /* what came after the thread's last look */
	pthread_mutex_unlock(&r->mu);
	generation_release(g); /* built, never applied: freed at once now */
}

void reloader_free(struct reloader *r)
{
	if (!r)
		return;
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
