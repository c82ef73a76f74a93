/*
 * pool -- a fixed set of worker threads running jobs from one bounded FIFO
 * queue, and the sink that hands finished jobs back to an event loop.
 *
 * The pool knows nothing of HTTP, plugins or libevent: a job is a run()
 * executed on a worker and a done() executed by whoever drains the job's
 * sink (the loop thread). A sink is a mutex-protected list plus a notify
 * function that the pool calls only when the list goes from empty to
 * non-empty, so a burst of results costs the loop one wake-up
 * (nginx's ngx_thread_pool + ngx_notify, libuv's uv_async_send).
 *
 * Worker threads block every signal, so signals reach the loop only.
 */
#ifndef HOOKD_POOL_H
#define HOOKD_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pool;
struct pool_sink;

struct pool_job {
	struct pool_job *next;               /* the pool's and the sink's link */
	void (*run)(struct pool_job *job);   /* worker thread; may be NULL (post only) */
	void (*done)(struct pool_job *job);  /* the sink's draining thread */
	struct pool_sink *sink;              /* where done() is delivered */
	bool active;                         /* the pool's: a worker is running it */
	bool stuck;                          /* the pool's: marked by pool_job_stuck */
	int64_t queued_ns;                   /* the pool's: CLOCK_MONOTONIC at pool_submit */
	int64_t waited_ns;                   /* the pool's: how long it waited for a worker
	                                      * (read it in done()) */
};

struct pool_sink {
	pthread_mutex_t mu;
	struct pool_job *head, *tail;
	atomic_uint posting;       /* posts in progress (see pool_sink_destroy) */
	void (*notify)(void *arg); /* any thread; must not block or take `mu` */
	void *arg;
};

/* Initialise a sink whose `notify(arg)` wakes its consumer. Returns 0 or a
 * negative errno. */
int pool_sink_init(struct pool_sink *s, void (*notify)(void *arg), void *arg);
/* Destroy a drained sink (waits for a post still notifying). */
void pool_sink_destroy(struct pool_sink *s);
/* Hand `job` to its sink's consumer (job->done runs there). Any thread;
 * the job is owned by the consumer from now on. */
void pool_sink_post(struct pool_sink *s, struct pool_job *job);
/* Consumer side: run done() of every job posted so far, oldest first.
 * Returns how many ran. */
size_t pool_sink_drain(struct pool_sink *s);

/* Start `threads` workers with a queue of at most `queue_max` waiting jobs.
 * Returns 0 and *out, or a negative errno. */
int pool_create(unsigned threads, unsigned queue_max, struct pool **out);

/* Queue `job` (job->sink must be set). Returns 0; -EAGAIN when queue_max
 * jobs already wait for a worker beyond those the idle workers are about to
 * take (the job is not taken: retry later or refuse); a worker is idle again
 * before its job's result reaches the sink, so whoever saw a result finds
 * its worker's room (threads + queue_max in all); -ESHUTDOWN once
 * pool_destroy began. On success the job belongs to the pool until its
 * done() runs on the sink's thread. Any thread. */
int pool_submit(struct pool *p, struct pool_job *job);

/* Allow up to `n` replacement workers at once (default 0: none); see
 * pool_job_stuck. Call before the pool is used. */
void pool_set_max_stuck(struct pool *p, unsigned n);

/* `job` has run for too long (its caller gave up on it) and its worker is
 * still inside it: start a replacement worker so that the configured number
 * stays available. When the stuck job returns, its worker exits if the pool
 * has more workers than configured. Returns 0; -EALREADY when the job is
 * not running (it just finished, or never started); -EAGAIN when the
 * max_stuck bound is reached; -ESHUTDOWN; or another negative errno when
 * no thread could be started. Any thread; `job` must stay valid during the
 * call (it is, until its done() runs). */
int pool_job_stuck(struct pool *p, struct pool_job *job);

/* Workers inside a job marked stuck, right now. */
unsigned pool_stuck(struct pool *p);

/* Stop accepting, let the workers finish every queued job, join them and
 * free the pool. done() of those jobs is posted to their sinks as usual:
 * drain the sinks afterwards. */
void pool_destroy(struct pool *p);

/* Jobs waiting and jobs running right now (a snapshot, for stats). */
void pool_stats(struct pool *p, unsigned *queued, unsigned *running, unsigned *threads);

#endif
