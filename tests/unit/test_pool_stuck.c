/*
 * pool_job_stuck: a job whose caller gave up while its worker is still
 * inside gets a replacement worker (up to the bound), and the pool shrinks
 * back to its size once the stuck job returns.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <unistd.h>

#include "../../host/pool.h"

struct sjob {
	struct pool_job job;
	sem_t *gate;       /* NULL: return at once */
	atomic_int ran, done;
};

static struct pool_sink sink;

static void notify(void *arg)
{
	(void)arg;
}

static void run(struct pool_job *j)
{
	struct sjob *s = (struct sjob *)j;

	atomic_store(&s->ran, 1);
	if (s->gate)
		while (sem_wait(s->gate) < 0 && errno == EINTR)
			;
}

static void done(struct pool_job *j)
{
	atomic_store(&((struct sjob *)j)->done, 1);
}

static void init_job(struct sjob *s, sem_t *gate)
{
	*s = (struct sjob){.job = {.run = run, .done = done, .sink = &sink}, .gate = gate};
}

/* Drain the sink until `s` is done (bounded). */
static void wait_done(struct sjob *s)
{
	for (int i = 0; i < 20000 && !atomic_load(&s->done); i++) {
		pool_sink_drain(&sink);
		usleep(500);
	}
	cr_assert(atomic_load(&s->done), "job never finished");
}

static void wait_ran(struct sjob *s)
{
	for (int i = 0; i < 20000 && !atomic_load(&s->ran); i++)
		usleep(500);
	cr_assert(atomic_load(&s->ran));
}

static unsigned threads(struct pool *p)
{
	unsigned n;

	pool_stats(p, NULL, NULL, &n);
	return n;
}

Test(pool_stuck, a_stuck_job_gets_a_replacement_and_the_pool_shrinks_back, .timeout = 30)
{
	static struct sjob a, b, c, d;
	sem_t gate;
	struct pool *p;

	cr_assert_eq(pool_sink_init(&sink, notify, NULL), 0);
	sem_init(&gate, 0, 0);
	cr_assert_eq(pool_create(1, 1, &p), 0);
	pool_set_max_stuck(p, 1);

	init_job(&a, &gate);
	cr_assert_eq(pool_submit(p, &a.job), 0);
	wait_ran(&a);
	cr_assert_eq(pool_job_stuck(p, &a.job), 0);
	cr_assert_eq(pool_stuck(p), 1);
	cr_assert_eq(threads(p), 2);
	cr_assert_eq(pool_job_stuck(p, &a.job), -EALREADY, "marked twice");

	/* the replacement runs other work while `a` is stuck */
	init_job(&b, NULL);
	cr_assert_eq(pool_submit(p, &b.job), 0);
	wait_done(&b);

	/* the bound: a second stuck job gets no replacement */
	init_job(&c, &gate);
	cr_assert_eq(pool_submit(p, &c.job), 0);
	wait_ran(&c);
	cr_assert_eq(pool_job_stuck(p, &c.job), -EAGAIN);
	cr_assert_eq(threads(p), 2);

	/* `a` returns: its worker leaves, one worker is left for `c`'s */
	sem_post(&gate);
	wait_done(&a); /* posted after the worker gave its place back */
	cr_assert_eq(pool_stuck(p), 0);
	cr_assert_eq(threads(p), 1, "the pool did not shrink back");
	sem_post(&gate);
	wait_done(&c);

	/* a job that is not running is not stuck */
	init_job(&d, NULL);
	cr_assert_eq(pool_submit(p, &d.job), 0);
	wait_done(&d);
	cr_assert_eq(pool_job_stuck(p, &d.job), -EALREADY);
	pool_destroy(p);
	pool_sink_drain(&sink);
	pool_sink_destroy(&sink);
	sem_destroy(&gate);
}
