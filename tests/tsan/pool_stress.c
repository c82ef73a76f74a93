/*
 * pool_stress -- the worker pool and its sink under ThreadSanitizer.
 * Criterion 2.4.1's runner does not start under TSan ("Could not initialize
 * inheritable arena", then SIGSEGV), so this is a plain program:
 * `make tsan` builds it with -fsanitize=thread and runs it; it exits
 * non-zero on a wrong count, and TSan (halt_on_error=1) on a race.
 *
 * Four submitter threads push jobs into a small bounded queue (retrying on
 * -EAGAIN) while two consumer threads drain their own sinks, woken by
 * eventfd-like notifications (a pipe here); every job must run exactly once
 * and come back to the sink it named.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../host/pool.h"

#define SUBMITTERS 4
#define PER_SUBMITTER 20000
#define SINKS 2

struct job {
	struct pool_job pj;
	int sink;
	atomic_int ran;
};

struct consumer {
	struct pool_sink sink;
	int pipe[2];
	long done;
	int id;
	atomic_int stop;
};

static struct consumer consumers[SINKS];
static atomic_long total_run;

static void notify(void *arg)
{
	struct consumer *c = arg;
	char b = 1;

	if (write(c->pipe[1], &b, 1) < 0 && errno != EAGAIN)
		abort();
}

static void run(struct pool_job *pj)
{
	struct job *j = (struct job *)pj;

	atomic_fetch_add(&j->ran, 1);
	atomic_fetch_add(&total_run, 1);
}

static void done(struct pool_job *pj)
{
	struct job *j = (struct job *)pj;
	struct consumer *c = (struct consumer *)pj->sink;

	if (atomic_load(&j->ran) != 1 || c->id != j->sink) {
		fprintf(stderr, "pool_stress: job ran %d times / came back to sink %d, not %d\n",
			atomic_load(&j->ran), c->id, j->sink);
		exit(2);
	}
	c->done++;
	free(j);
}

static void *consumer_main(void *arg)
{
	struct consumer *c = arg;
	char buf[64];

	for (;;) {
		ssize_t n = read(c->pipe[0], buf, sizeof(buf));
		(void)n;
		pool_sink_drain(&c->sink);
		if (atomic_load(&c->stop) && c->done == (long)SUBMITTERS * PER_SUBMITTER / SINKS)
			return NULL;
	}
}

static struct pool *pool;

static void *submitter_main(void *arg)
{
	long id = (long)arg;

	for (int i = 0; i < PER_SUBMITTER; i++) {
		struct job *j = calloc(1, sizeof(*j));
		j->pj.run = run;
		j->pj.done = done;
		j->sink = (int)((id + i) % SINKS);
		j->pj.sink = &consumers[j->sink].sink;
		while (pool_submit(pool, &j->pj) == -EAGAIN)
			sched_yield(); /* the bound holds: wait for room */
	}
	return NULL;
}

int main(void)
{
	pthread_t subs[SUBMITTERS], cons[SINKS];
	unsigned queued, running, threads;

	if (pool_create(3, 64, &pool) < 0)
		return 1;
	for (int i = 0; i < SINKS; i++) {
		consumers[i].id = i;
		if (pipe(consumers[i].pipe) < 0 ||
		    pool_sink_init(&consumers[i].sink, notify, &consumers[i]) < 0)
			return 1;
		/* the sink is the first member: done() finds its consumer from it */
		pthread_create(&cons[i], NULL, consumer_main, &consumers[i]);
	}
	for (long i = 0; i < SUBMITTERS; i++)
		pthread_create(&subs[i], NULL, submitter_main, (void *)i);
	for (int i = 0; i < SUBMITTERS; i++)
		pthread_join(subs[i], NULL);
	pool_stats(pool, &queued, &running, &threads);
	/* the bound: 64 waiting beyond what idle workers are about to take */
	if (queued > 64 + 3 || threads != 3) {
		fprintf(stderr, "pool_stress: queued %u (bound 64 + 3 idle), threads %u\n", queued,
			threads);
		return 2;
	}
	pool_destroy(pool); /* runs what is still queued */
	for (int i = 0; i < SINKS; i++) {
		atomic_store(&consumers[i].stop, 1);
		notify(&consumers[i]);
		pthread_join(cons[i], NULL);
		pool_sink_destroy(&consumers[i].sink);
	}
	if (atomic_load(&total_run) != (long)SUBMITTERS * PER_SUBMITTER) {
		fprintf(stderr, "pool_stress: %ld jobs ran, expected %d\n", atomic_load(&total_run),
			SUBMITTERS * PER_SUBMITTER);
		return 2;
	}
	printf("pool_stress: %d jobs through 3 workers and %d sinks, each exactly once\n",
	       SUBMITTERS * PER_SUBMITTER, SINKS);
	return 0;
}
