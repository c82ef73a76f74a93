/*
 * watchdog -- see watchdog.h.
 */
#include "watchdog.h"
#include "clock.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blame.h"
#include "crash.h"
#include "plugin.h"
#include "sigfmt.h"

#define WATCH_REPEAT_MS 1000 /* a loop still held is named again this often */

struct watchdog {
	pthread_t thread;
	pthread_mutex_t mu;   /* slots, stopping */
	pthread_cond_t cv;
	struct watch_slot *slots;
	bool stopping;
	unsigned period_ms;
	unsigned warn_ms;
	unsigned ping_ms;                    /* the service manager's watchdog, or 0 */
	void (*ping)(void *arg, const char *stuck);
	void *ping_arg;
	int64_t next_ping_ns;
	char stuck[160];
};

/* Set once by watchdog_start before any loop runs plugin code. */
static struct {
	unsigned warn_ms, abort_ms;
	int log_fd;
} conf = {.log_fd = 2};

static _Thread_local struct watch_slot *self;

/* On the held loop's thread, interrupting the plugin code that holds it. */
static void on_watch_signal(int sig, siginfo_t *si, void *uctx)
{
	int saved = errno;
	struct watch_slot *s = self;
	const struct blame_frame *f = blame_current();
	char buf[768];
	struct sbuf b = {buf, 0, sizeof(buf) - 1};
	struct timespec now;
	int64_t held_ms;
	bool abort_now;

	(void)sig;
	(void)si;
	(void)uctx;
	if (!s || !f || !(atomic_load_explicit(&s->seq, memory_order_acquire) & 1))
		goto out; /* it let go meanwhile */
	held_ms = (clock_mono_ns() - atomic_load_explicit(&s->since_ns, memory_order_relaxed)) / 1000000;
	abort_now = conf.abort_ms && held_ms >= conf.abort_ms;
	clock_gettime(CLOCK_REALTIME, &now);
	sb_log_time(&b, &now);
	sb_str(&b, abort_now ? " error " : " warn ");
	sb_str(&b, "loop ");
	sb_u64(&b, s->id);
	sb_str(&b, " held for ");
	sb_u64(&b, (uint64_t)held_ms);
	sb_str(&b, " ms and counting by ");
	blame_describe(&b, f);
	sb_str(&b, ": every call on this loop waits");
	if (abort_now) {
		sb_str(&b, "; loop_abort_ms (");
		sb_u64(&b, conf.abort_ms);
		sb_str(&b, ") passed: aborting");
	}
	buf[b.n++] = '\n';
	sb_write_all(conf.log_fd, buf, b.n);
	if (abort_now)
		abort(); /* the crash handler names it again and writes the record */
out:
	errno = saved;
}

static void check_slot(struct watchdog *w, struct watch_slot *s, int64_t now)
{
	unsigned seq = atomic_load_explicit(&s->seq, memory_order_acquire);
	int64_t since = atomic_load_explicit(&s->since_ns, memory_order_relaxed);

	if (!w->warn_ms || !(seq & 1) || atomic_load_explicit(&s->seq, memory_order_acquire) != seq)
		return;
	int64_t abort_ns = (int64_t)conf.abort_ms * 1000000;
	if (now - since < (int64_t)w->warn_ms * 1000000)
		return;
	/* once per entry, then once a second, and as soon as abort_ms passes */
	bool first = s->signalled_seq != seq;
	bool repeat = now - s->signalled_ns >= (int64_t)WATCH_REPEAT_MS * 1000000;
	bool abort_due = abort_ns && now - since >= abort_ns && s->signalled_ns - since < abort_ns;
	if (!first && !repeat && !abort_due)
		return;
	s->signalled_seq = seq;
	s->signalled_ns = now;
	pthread_kill(s->thread, HOOKD_WATCH_SIGNAL);
}

/* Time for the service manager's ping? Only if every loop is fresh (none
 * held by plugin code for ping_ms or more), so a blocked loop stops them.
 * Returns true when due, with *stuck NULL or naming the loop held. */
static bool ping_due(struct watchdog *w, int64_t now, const char **stuck)
{
	*stuck = NULL;
	if (!w->ping_ms || now < w->next_ping_ns)
		return false;
	w->next_ping_ns = now + (int64_t)w->ping_ms * 1000000;
	for (struct watch_slot *s = w->slots; s && !*stuck; s = s->next) {
		unsigned seq = atomic_load_explicit(&s->seq, memory_order_acquire);
		int64_t since = atomic_load_explicit(&s->since_ns, memory_order_relaxed);
		if (!(seq & 1) || now - since < (int64_t)w->ping_ms * 1000000)
			continue;
		snprintf(w->stuck, sizeof(w->stuck), "loop %u held by plugin code for %lld ms",
			 s->id, (long long)((now - since) / 1000000));
		*stuck = w->stuck;
	}
	return true;
}

static void *watchdog_main(void *arg)
{
	struct watchdog *w = arg;
	struct timespec until;
	const char *stuck;

	pthread_mutex_lock(&w->mu);
	while (!w->stopping) {
		int64_t now = clock_mono_ns();
		for (struct watch_slot *s = w->slots; s; s = s->next)
			check_slot(w, s, now);
		if (ping_due(w, now, &stuck)) {
			/* a status line may wait for room in the manager's queue:
			 * never with the slots' lock held */
			pthread_mutex_unlock(&w->mu);
			w->ping(w->ping_arg, stuck);
			pthread_mutex_lock(&w->mu);
			if (w->stopping)
				break; /* its wake-up came while unlocked */
		}
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += (long)w->period_ms * 1000000;
		until.tv_sec += until.tv_nsec / 1000000000;
		until.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&w->cv, &w->mu, &until);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int watchdog_start(const struct watchdog_options *opt, struct watchdog **out, char *err,
		   size_t errlen)
{
	struct watchdog *w = NULL;
	struct sigaction sa;
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	*out = NULL;
	if (!opt->warn_ms && !(opt->ping_ms && opt->ping))
		return 0;
	conf.warn_ms = opt->warn_ms;
	conf.abort_ms = opt->abort_ms;
	conf.log_fd = opt->log_fd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_watch_signal;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(HOOKD_WATCH_SIGNAL, &sa, NULL) < 0) {
		snprintf(err, errlen, "watchdog: sigaction: %s", strerror(errno));
		return -1;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(err, errlen, "watchdog: out of memory");
		return -1;
	}
	w->warn_ms = opt->warn_ms;
	w->ping_ms = opt->ping ? opt->ping_ms : 0;
	w->ping = opt->ping;
	w->ping_arg = opt->ping_arg;
	/* a few looks per warn_ms, so the name comes soon after it passes;
	 * at least two per ping period */
	unsigned look = opt->warn_ms ? opt->warn_ms / 4 : 100;
	if (w->ping_ms && look > w->ping_ms / 2)
		look = w->ping_ms / 2;
	w->period_ms = look < 5 ? 5 : look > 100 ? 100 : look;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* the thread takes no signal: they belong to the loops */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&w->thread, NULL, watchdog_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		snprintf(err, errlen, "watchdog: cannot start its thread: %s", strerror(rc));
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return -1;
	}
	*out = w;
	return 0;
}

void watchdog_stop(struct watchdog *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

void watchdog_slot_init(struct watch_slot *s, unsigned id)
{
	s->id = id;
	s->thread = pthread_self();
	self = s;
}

void watchdog_add(struct watchdog *w, struct watch_slot *s)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	s->next = w->slots;
	w->slots = s;
	pthread_mutex_unlock(&w->mu);
}

void watchdog_remove(struct watchdog *w, struct watch_slot *s)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	for (struct watch_slot **p = &w->slots; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	pthread_mutex_unlock(&w->mu);
	if (self == s)
		self = NULL;
}
