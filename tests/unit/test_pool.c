/*
 * pool: jobs run on workers, results come back through the sink on the
 * draining thread, in order, with one wake-up per burst; the queue bound is
 * exact; destroy runs what was queued; workers block every signal.
 *
 * Every test is deterministic: jobs that must stay queued sit behind a
 * "blocker" job that waits on a gate the test opens; nothing depends on
 * timing (the Criterion timeouts only turn a hang into a failure).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "../../host/pool.h"

#define MAXJ 512

struct tjob {
	struct pool_job job; /* first: a pool_job * is a tjob * */
	int id;
	bool block;           /* wait on the gate in run() */
	pthread_t run_thread, done_thread;
	bool ran, done;
	sigset_t mask;        /* the worker's signal mask, seen from run() */
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool gate_open;
	int started;          /* blocker jobs inside run() */
	int run_order[MAXJ], nrun;
	int done_order[MAXJ], ndone;
	struct pool_sink sink;
	sem_t wake;           /* one post per notify */
	atomic_int notifies;
} T;

static void notify(void *arg)
{
	(void)arg;
	atomic_fetch_add(&T.notifies, 1);
	sem_post(&T.wake);
}

static void setup(void)
{
	memset(&T, 0, sizeof(T));
	pthread_mutex_init(&T.mu, NULL);
	pthread_cond_init(&T.cv, NULL);
	sem_init(&T.wake, 0, 0);
	cr_assert_eq(pool_sink_init(&T.sink, notify, NULL), 0);
}

static void teardown(void)
{
	pool_sink_destroy(&T.sink);
	sem_destroy(&T.wake);
	pthread_cond_destroy(&T.cv);
	pthread_mutex_destroy(&T.mu);
}

TestSuite(pool, .init = setup, .fini = teardown, .timeout = 60);

static void job_run(struct pool_job *j)
{
	struct tjob *t = (struct tjob *)j;

	t->run_thread = pthread_self();
	pthread_sigmask(SIG_BLOCK, NULL, &t->mask);
	pthread_mutex_lock(&T.mu);
	if (t->block) {
		T.started++;
		pthread_cond_broadcast(&T.cv);
		while (!T.gate_open)
			pthread_cond_wait(&T.cv, &T.mu);
	}
	T.run_order[T.nrun++] = t->id;
	t->ran = true;
	pthread_mutex_unlock(&T.mu);
}

static void job_done(struct pool_job *j)
{
	struct tjob *t = (struct tjob *)j;

	t->done_thread = pthread_self();
	t->done = true;
	pthread_mutex_lock(&T.mu);
	T.done_order[T.ndone++] = t->id;
	pthread_mutex_unlock(&T.mu);
}

static void job_init(struct tjob *t, int id, bool block)
{
	memset(t, 0, sizeof(*t));
	t->id = id;
	t->block = block;
	t->job.run = job_run;
	t->job.done = job_done;
	t->job.sink = &T.sink;
}

static void wait_started(int n)
{
	pthread_mutex_lock(&T.mu);
	while (T.started < n)
		pthread_cond_wait(&T.cv, &T.mu);
	pthread_mutex_unlock(&T.mu);
}

static void open_gate(void)
{
	pthread_mutex_lock(&T.mu);
	T.gate_open = true;
	pthread_cond_broadcast(&T.cv);
	pthread_mutex_unlock(&T.mu);
}

static int ndone(void)
{
	int n;

	pthread_mutex_lock(&T.mu);
	n = T.ndone;
	pthread_mutex_unlock(&T.mu);
	return n;
}

/* Consumer loop: sleep until notified, drain, until n jobs are done. */
static void drain_until(int n)
{
	while (ndone() < n) {
		sem_wait(&T.wake);
		pool_sink_drain(&T.sink);
	}
}

static void *drainer_main(void *arg)
{
	drain_until(*(int *)arg);
	return NULL;
}

Test(pool, jobs_run_on_workers_and_done_runs_on_the_draining_thread)
{
	static struct tjob jobs[20];
	struct pool *p;
	pthread_t drainer;
	int n = 20;

	cr_assert_eq(pool_create(3, 64, &p), 0);
	for (int i = 0; i < n; i++) {
		job_init(&jobs[i], i, false);
		cr_assert_eq(pool_submit(p, &jobs[i].job), 0);
	}
	/* a result was delivered, but done() waits for a drain */
	sem_wait(&T.wake);
	cr_assert_eq(ndone(), 0, "done() ran before anyone drained the sink");
	sem_post(&T.wake);

	cr_assert_eq(pthread_create(&drainer, NULL, drainer_main, &n), 0);
	cr_assert_eq(pthread_join(drainer, NULL), 0);
	for (int i = 0; i < n; i++) {
		cr_assert(jobs[i].ran && jobs[i].done, "job %d", i);
		cr_assert_not(pthread_equal(jobs[i].run_thread, pthread_self()),
			      "job %d ran on the submitting thread", i);
		cr_assert_not(pthread_equal(jobs[i].run_thread, drainer), "job %d", i);
		cr_assert(pthread_equal(jobs[i].done_thread, drainer),
			  "done() of job %d ran off the draining thread", i);
	}
	pool_destroy(p);
	cr_assert_eq(pool_sink_drain(&T.sink), 0, "nothing left over");
}

Test(pool, one_worker_runs_jobs_in_fifo_order_and_done_keeps_it)
{
	static struct tjob blocker, jobs[100];
	struct pool *p;

	cr_assert_eq(pool_create(1, 100, &p), 0);
	job_init(&blocker, -1, true);
	cr_assert_eq(pool_submit(p, &blocker.job), 0);
	wait_started(1); /* everything below is queued before anything runs */
	for (int i = 0; i < 100; i++) {
		job_init(&jobs[i], i, false);
		cr_assert_eq(pool_submit(p, &jobs[i].job), 0);
	}
	open_gate();
	drain_until(101);
	cr_assert_eq(T.nrun, 101);
	cr_assert_eq(T.run_order[0], -1);
	cr_assert_eq(T.done_order[0], -1);
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(T.run_order[i + 1], i, "run #%d was job %d", i + 1, T.run_order[i + 1]);
		cr_assert_eq(T.done_order[i + 1], i, "done #%d was job %d", i + 1,
			     T.done_order[i + 1]);
	}
	pool_destroy(p);
}

Test(pool, the_queue_refuses_exactly_when_queue_max_jobs_wait)
{
	static struct tjob b1, b2, jobs[4];
	struct pool *p;
	unsigned queued, running, threads;

	cr_assert_eq(pool_create(2, 3, &p), 0);
	job_init(&b1, 100, true);
	job_init(&b2, 101, true);
	cr_assert_eq(pool_submit(p, &b1.job), 0);
	cr_assert_eq(pool_submit(p, &b2.job), 0);
	wait_started(2); /* both workers busy: the queue is empty */
	pool_stats(p, &queued, &running, &threads);
	cr_assert_eq(queued, 0);
	cr_assert_eq(running, 2);
	cr_assert_eq(threads, 2);

	for (int i = 0; i < 4; i++)
		job_init(&jobs[i], i, false);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(pool_submit(p, &jobs[i].job), 0, "job %d of queue_max 3", i);
	pool_stats(p, &queued, &running, NULL);
	cr_assert_eq(queued, 3);
	cr_assert_eq(running, 2, "running jobs do not count against the queue");
	cr_assert_eq(pool_submit(p, &jobs[3].job), -EAGAIN);
	cr_assert_eq(pool_submit(p, &jobs[3].job), -EAGAIN, "still full");
	pool_stats(p, &queued, NULL, NULL);
	cr_assert_eq(queued, 3, "a refused job is not queued");

	open_gate();
	drain_until(5);
	cr_assert_not(jobs[3].ran, "the refused job was not taken");
	cr_assert_not(jobs[3].done);
	/* room again */
	cr_assert_eq(pool_submit(p, &jobs[3].job), 0);
	drain_until(6);
	cr_assert(jobs[3].ran && jobs[3].done);
	pool_stats(p, &queued, &running, NULL);
	cr_assert_eq(queued, 0);
	pool_destroy(p);
}

Test(pool, notify_once_per_empty_to_non_empty_transition)
{
	static struct tjob jobs[8];

	for (int i = 0; i < 8; i++)
		job_init(&jobs[i], i, false);
	/* posts straight to the sink, as an async completion does */
	for (int i = 0; i < 5; i++)
		pool_sink_post(&T.sink, &jobs[i].job);
	cr_assert_eq(atomic_load(&T.notifies), 1, "five posts, one burst");
	cr_assert_eq(ndone(), 0);
	cr_assert_eq(pool_sink_drain(&T.sink), 5);
	cr_assert_eq(atomic_load(&T.notifies), 1);
	cr_assert_eq(pool_sink_drain(&T.sink), 0, "drained: nothing to run");
	pool_sink_post(&T.sink, &jobs[5].job);
	cr_assert_eq(atomic_load(&T.notifies), 2, "empty again: the next post notifies");
	pool_sink_post(&T.sink, &jobs[6].job);
	pool_sink_post(&T.sink, &jobs[7].job);
	cr_assert_eq(atomic_load(&T.notifies), 2);
	cr_assert_eq(pool_sink_drain(&T.sink), 3);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(T.done_order[i], i);
	for (int i = 0; i < 8; i++)
		cr_assert_not(jobs[i].ran, "post only: run() is the pool's, not the sink's");
}

Test(pool, a_burst_of_results_from_workers_notifies_once)
{
	static struct tjob blocker, jobs[5];
	struct pool *p;

	cr_assert_eq(pool_create(1, 8, &p), 0);
	job_init(&blocker, -1, true);
	cr_assert_eq(pool_submit(p, &blocker.job), 0);
	wait_started(1);
	for (int i = 0; i < 5; i++) {
		job_init(&jobs[i], i, false);
		cr_assert_eq(pool_submit(p, &jobs[i].job), 0);
	}
	open_gate();
	pool_destroy(p); /* joins the worker: all six results are posted */
	cr_assert_eq(atomic_load(&T.notifies), 1, "six results, nobody drained: one wake-up");
	cr_assert_eq(ndone(), 0);
	cr_assert_eq(pool_sink_drain(&T.sink), 6);
}

/* The consumer may free the sink as soon as a drain has run the job's
 * done(), while the poster is still between its unlock and its notify (a
 * plugin thread finishing the last call as the loop shuts down):
 * pool_sink_destroy waits for that poster. The notify here blocks until
 * the test lets it go. */
struct slow_sink {
	struct pool_sink sink;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool in_notify, release, destroyed;
};

static void slow_notify(void *arg)
{
	struct slow_sink *ss = arg;

	pthread_mutex_lock(&ss->mu);
	ss->in_notify = true;
	pthread_cond_broadcast(&ss->cv);
	while (!ss->release)
		pthread_cond_wait(&ss->cv, &ss->mu);
	pthread_mutex_unlock(&ss->mu);
}

static void *slow_poster(void *arg)
{
	static struct tjob job;
	struct slow_sink *ss = arg;

	job_init(&job, 0, false);
	pool_sink_post(&ss->sink, &job.job);
	return NULL;
}

static void *slow_destroyer(void *arg)
{
	struct slow_sink *ss = arg;

	pool_sink_destroy(&ss->sink);
	pthread_mutex_lock(&ss->mu);
	ss->destroyed = true;
	pthread_mutex_unlock(&ss->mu);
	return NULL;
}

Test(pool, sink_destroy_waits_for_a_poster_still_notifying)
{
	static struct slow_sink ss;
	pthread_t poster, destroyer;
	bool destroyed;

	pthread_mutex_init(&ss.mu, NULL);
	pthread_cond_init(&ss.cv, NULL);
	cr_assert_eq(pool_sink_init(&ss.sink, slow_notify, &ss), 0);
	pthread_create(&poster, NULL, slow_poster, &ss);
	pthread_mutex_lock(&ss.mu);
	while (!ss.in_notify)
		pthread_cond_wait(&ss.cv, &ss.mu);
	pthread_mutex_unlock(&ss.mu);
	/* the job is already drainable: the poster unlocked before notifying */
	cr_assert_eq(pool_sink_drain(&ss.sink), 1);
	pthread_create(&destroyer, NULL, slow_destroyer, &ss);
	usleep(50 * 1000);
	pthread_mutex_lock(&ss.mu);
	destroyed = ss.destroyed;
	ss.release = true;
	pthread_cond_broadcast(&ss.cv);
	pthread_mutex_unlock(&ss.mu);
	cr_assert_not(destroyed, "the sink was destroyed under a poster still notifying");
	pthread_join(poster, NULL);
	pthread_join(destroyer, NULL);
	cr_assert(ss.destroyed);
}

/* Once a job's result can be drained, its worker counts as idle again: a
 * caller that saw the answer and submits at once must find the full
 * threads + queue_max room. (The worker used to release its slot only after
 * posting; preempted in between -- a busy machine -- it made pool_submit
 * refuse a call within the bound: integration test
 * isolation::calls_within_workers_plus_queue_are_all_accepted, 1 of 40.)
 * The sink's notify holds the worker right after its post, deterministically
 * inside that window. */
Test(pool, a_worker_is_idle_again_before_its_result_can_be_drained)
{
	static struct slow_sink ss;
	static struct tjob first, again[2];
	unsigned queued, running;
	struct pool *p;

	pthread_mutex_init(&ss.mu, NULL);
	pthread_cond_init(&ss.cv, NULL);
	cr_assert_eq(pool_sink_init(&ss.sink, slow_notify, &ss), 0);
	cr_assert_eq(pool_create(1, 1, &p), 0);
	job_init(&first, 0, false);
	first.job.sink = &ss.sink;
	cr_assert_eq(pool_submit(p, &first.job), 0);
	pthread_mutex_lock(&ss.mu);
	while (!ss.in_notify)
		pthread_cond_wait(&ss.cv, &ss.mu);
	pthread_mutex_unlock(&ss.mu);
	/* the worker is held inside its post: the caller gets the result */
	cr_assert_eq(pool_sink_drain(&ss.sink), 1);
	cr_assert(first.done);
	pool_stats(p, &queued, &running, NULL);
	cr_assert_eq(running, 0, "a job whose result was delivered still counts as running");
	/* and submits again: one job for the (idle) worker, one for the queue */
	for (int i = 0; i < 2; i++) {
		job_init(&again[i], 1 + i, false);
		again[i].job.sink = &ss.sink;
		cr_assert_eq(pool_submit(p, &again[i].job), 0,
			     "job %d of threads 1 + queue_max 1 refused", i);
	}
	pthread_mutex_lock(&ss.mu);
	ss.release = true;
	pthread_cond_broadcast(&ss.cv);
	pthread_mutex_unlock(&ss.mu);
	pool_destroy(p);
	cr_assert_eq(pool_sink_drain(&ss.sink), 2);
	cr_assert(again[0].done && again[1].done);
	pool_sink_destroy(&ss.sink);
}

struct destroyer {
	struct pool *p;
};

static void *destroyer_main(void *arg)
{
	pool_destroy(((struct destroyer *)arg)->p);
	return NULL;
}

#define NPROBES 4096

Test(pool, destroy_runs_every_queued_job_and_refuses_new_ones_meanwhile)
{
	static struct tjob blocker, jobs[20], probes[NPROBES];
	struct destroyer d;
	pthread_t th;
	int nprobes = 0, rc;

	cr_assert_eq(pool_create(1, NPROBES + 64, &d.p), 0);
	job_init(&blocker, -1, true);
	cr_assert_eq(pool_submit(d.p, &blocker.job), 0);
	wait_started(1);
	for (int i = 0; i < 20; i++) {
		job_init(&jobs[i], i, false);
		cr_assert_eq(pool_submit(d.p, &jobs[i].job), 0);
	}
	/* destroy on another thread: it blocks joining the gated worker, so
	 * the pool stays alive and we can watch it refuse work */
	cr_assert_eq(pthread_create(&th, NULL, destroyer_main, &d), 0);
	for (;;) {
		cr_assert_lt(nprobes, NPROBES, "pool_destroy never started refusing jobs");
		job_init(&probes[nprobes], 1000 + nprobes, false);
		rc = pool_submit(d.p, &probes[nprobes].job);
		if (rc != 0)
			break;
		nprobes++; /* accepted before destroy began: it will run too */
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	cr_assert_eq(rc, -ESHUTDOWN);
	open_gate();
	cr_assert_eq(pthread_join(th, NULL), 0);
	/* destroy returned: every job it had accepted has run and was posted */
	cr_assert_eq(T.nrun, 21 + nprobes);
	for (int i = 0; i < 20; i++)
		cr_assert(jobs[i].ran, "queued job %d did not run", i);
	cr_assert_not(probes[nprobes].ran, "the refused job ran");
	cr_assert_eq(pool_sink_drain(&T.sink), (size_t)(21 + nprobes));
	for (int i = 0; i < 20; i++)
		cr_assert(jobs[i].done);
}

Test(pool, workers_block_every_signal_but_the_fatal_ones_and_the_creator_keeps_its_mask)
{
	static struct tjob jobs[4];
	sigset_t before, after;
	struct pool *p;

	pthread_sigmask(SIG_BLOCK, NULL, &before);
	cr_assert_eq(sigismember(&before, SIGTERM), 0, "test precondition: SIGTERM unblocked");
	cr_assert_eq(pool_create(2, 8, &p), 0);
	pthread_sigmask(SIG_BLOCK, NULL, &after);
	for (int s = 1; s < NSIG; s++)
		cr_assert_eq(sigismember(&after, s), sigismember(&before, s),
			     "pool_create changed the caller's mask for signal %d", s);
	for (int i = 0; i < 4; i++) {
		job_init(&jobs[i], i, false);
		cr_assert_eq(pool_submit(p, &jobs[i].job), 0);
	}
	pool_destroy(p);
	cr_assert_eq(pool_sink_drain(&T.sink), 4);
	for (int i = 0; i < 4; i++) {
		/* 32 and 33 are glibc's own (thread cancellation, setxid): it
		 * never lets them be blocked, so they are not checked */
		for (int s = 1; s < 32; s++) {
			if (s == SIGKILL || s == SIGSTOP)
				continue; /* cannot be blocked */
			/* a fault whose signal is blocked kills the process
			 * without running the crash handler */
			int fatal = s == SIGSEGV || s == SIGBUS || s == SIGFPE || s == SIGILL ||
				    s == SIGABRT || s == SIGSYS;
			cr_assert_eq(sigismember(&jobs[i].mask, s), !fatal,
				     "signal %d (%s) %sblocked in a worker", s, strsignal(s),
				     fatal ? "" : "not ");
		}
		/* but the loop watchdog's (SIGRTMIN + 2), sent to one thread */
		for (int s = SIGRTMIN; s <= SIGRTMAX; s++)
			cr_assert_eq(sigismember(&jobs[i].mask, s), s != SIGRTMIN + 2,
				     "real-time signal %d", s);
	}
}

Test(pool, jobs_without_run_are_delivered_too)
{
	static struct tjob j;
	struct pool *p;

	job_init(&j, 7, false);
	j.job.run = NULL;
	cr_assert_eq(pool_create(1, 1, &p), 0);
	cr_assert_eq(pool_submit(p, &j.job), 0);
	pool_destroy(p);
	cr_assert_not(j.ran);
	cr_assert_eq(pool_sink_drain(&T.sink), 1);
	cr_assert(j.done);
}

Test(pool, create_refuses_zero_threads_or_queue)
{
	struct pool *p = (struct pool *)1;

	cr_assert_eq(pool_create(0, 8, &p), -EINVAL);
	cr_assert_null(p);
	p = (struct pool *)1;
	cr_assert_eq(pool_create(2, 0, &p), -EINVAL);
	cr_assert_null(p);
	pool_destroy(NULL); /* a no-op */
}

Test(pool, stats_count_running_and_queued_jobs)
{
	static struct tjob b[3], q[2];
	unsigned queued, running, threads;
	struct pool *p;

	cr_assert_eq(pool_create(3, 5, &p), 0);
	pool_stats(p, &queued, &running, &threads);
	cr_assert_eq(queued, 0);
	cr_assert_eq(running, 0);
	cr_assert_eq(threads, 3);
	for (int i = 0; i < 3; i++) {
		job_init(&b[i], i, true);
		cr_assert_eq(pool_submit(p, &b[i].job), 0);
	}
	wait_started(3);
	for (int i = 0; i < 2; i++) {
		job_init(&q[i], 10 + i, false);
		cr_assert_eq(pool_submit(p, &q[i].job), 0);
	}
	pool_stats(p, &queued, &running, NULL);
	cr_assert_eq(queued, 2);
	cr_assert_eq(running, 3);
	pool_stats(p, NULL, NULL, NULL); /* every out-parameter is optional */
	open_gate();
	pool_destroy(p);
	cr_assert_eq(pool_sink_drain(&T.sink), 5);
}
