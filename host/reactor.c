/*
 * reactor -- see reactor.h.
 *
 * Start-up of a threaded reactor: the thread builds everything on itself
 * (so that every libevent and curl object is created on the thread that
 * will use it), reports success or the error through `mu`/`cv`, then runs
 * its loop until REACTOR_EXIT. Teardown happens on main's thread after
 * reactor_join(), when nothing of the reactor runs any more.
 */
#include "reactor.h"
#include "clock.h"

#include "crash.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"

struct reactor_msg {
	struct pool_job job; /* first: the dispatcher hands the job back */
	struct reactor *r;
	enum reactor_cmd cmd;
	atomic_bool queued;
};

struct reactor {
	unsigned id;
	const struct reactor_shared *sh;
	struct event_base *base;
	bool own_base;
	struct fetch_engine *fetch;
	struct dispatch_env *env;
	struct http_server *http;
	struct metrics_shard *shard; /* this loop's counters (owned by sh->metrics) */
	struct event *lag;           /* the loop-lag probe, or NULL */
	int64_t lag_due_ns;          /* when it should fire next */
	uint16_t port;
	atomic_size_t max_body;
	struct reactor_msg msgs[REACTOR_CMDS];
	atomic_bool accepting;   /* false once REACTOR_DRAIN ran */
	/* threaded start-up */
	pthread_t thread;
	bool threaded;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int started; /* 0 starting, 1 serving, -1 failed */
	char err[512];
};

static void run_cmd(struct reactor *r, enum reactor_cmd cmd)
{
	switch (cmd) {
	case REACTOR_DRAIN:
		http_server_stop_accepting(r->http);
		atomic_store(&r->accepting, false);
		break;
	case REACTOR_CANCEL:
		dispatch_cancel_all(r->env);
		break;
	case REACTOR_EXIT:
		event_base_loopexit(r->base, NULL);
		break;
	case REACTOR_MAX_BODY:
		http_server_set_max_body(r->http, atomic_load(&r->max_body));
		break;
	default:
		break;
	}
}

static void on_msg(struct pool_job *job)
{
	struct reactor_msg *m = (struct reactor_msg *)job;

	atomic_store(&m->queued, false);
	run_cmd(m->r, m->cmd);
}

void reactor_send(struct reactor *r, enum reactor_cmd cmd)
{
	struct reactor_msg *m = &r->msgs[cmd];

	if (dispatch_is_loop_thread(r->env)) {
		run_cmd(r, cmd); /* our own loop: now */
		return;
	}
	if (atomic_exchange(&m->queued, true))
		return; /* already on its way */
	m->job.done = on_msg;
	dispatch_post(r->env, &m->job);
}

void reactor_set_max_body(struct reactor *r, size_t max_body)
{
	atomic_store(&r->max_body, max_body);
	reactor_send(r, REACTOR_MAX_BODY);
}

#define REACTOR_LAG_MS 500 /* how often the loop-lag probe fires */

static void lag_arm(struct reactor *r)
{
	struct timeval tv = {REACTOR_LAG_MS / 1000, (REACTOR_LAG_MS % 1000) * 1000};

	r->lag_due_ns = clock_mono_ns() + (int64_t)REACTOR_LAG_MS * 1000000;
	evtimer_add(r->lag, &tv);
}

/* hookd_loop_lag_seconds: how late the loop ran this timer (a loop busy
 * with plugin code or a burst of work runs it late). */
static void on_lag(evutil_socket_t fd, short what, void *arg)
{
	struct reactor *r = arg;

	(void)fd;
	(void)what;
	metrics_loop_lag(r->shard, clock_mono_ns() - r->lag_due_ns);
	lag_arm(r);
}

/* Build the reactor's objects on the calling thread. */
static int build(struct reactor *r, uint16_t port, char *err, size_t errlen)
{
	const struct reactor_shared *sh = r->sh;
	struct http_options ho = {.host = sh->host, .routes = sh->routes, .port = port,
				  .max_body = sh->max_body, .reuse_port = sh->reuse_port,
				  .limits = sh->limits, .budget = sh->budget,
				  .max_json_values = sh->max_json_values};
	struct http_deps hd = {NULL, sh->reg, sh->log, sh->health, sh->health_arg, sh->ready,
			       sh->ready_arg};

	if (!r->base) {
		if (!(r->base = event_base_new())) {
			snprintf(err, errlen, "reactor %u: cannot create an event base", r->id);
			return -1;
		}
		r->own_base = true;
	}
	if (fetch_engine_create(r->base, sh->log, &r->fetch) < 0) {
		snprintf(err, errlen, "reactor %u: cannot create the outbound HTTP engine", r->id);
		return -1;
	}
	if (dispatch_env_create(r->base, sh->pool, sh->reg, r->fetch, sh->log, &r->env) < 0) {
		snprintf(err, errlen, "reactor %u: cannot create the dispatcher", r->id);
		return -1;
	}
	dispatch_env_watch(r->env, sh->watchdog, r->id, sh->loop_warn_ms);
	if (sh->metrics) {
		if (!(r->shard = metrics_shard_new(sh->metrics, r->id)) ||
		    !(r->lag = evtimer_new(r->base, on_lag, r))) {
			snprintf(err, errlen, "reactor %u: cannot create its metrics", r->id);
			return -1;
		}
		dispatch_env_metrics(r->env, r->shard);
		lag_arm(r);
	}
	hd.env = r->env;
	hd.metrics = sh->metrics;
	hd.shard = r->shard;
	hd.metrics_cb = sh->metrics_cb;
	hd.metrics_arg = sh->metrics_arg;
	hd.alog = sh->alog;
	hd.dedup = sh->dedup;
	if (http_server_create(r->base, &ho, &hd, &r->http, err, errlen) < 0)
		return -1;
	r->port = http_server_port(r->http);
	return 0;
}

static void *thread_main(void *arg)
{
	struct reactor *r = arg;
	char err[512];
	int rc;

	crash_thread_init();
	rc = build(r, r->port, err, sizeof(err));

	pthread_mutex_lock(&r->mu);
	r->started = rc < 0 ? -1 : 1;
	if (rc < 0)
		snprintf(r->err, sizeof(r->err), "%s", err);
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	if (rc < 0)
		return NULL;
	if (event_base_dispatch(r->base) < 0)
		log_error(r->sh->log, "reactor %u: event loop failed", r->id);
	return NULL;
}

int reactor_create(unsigned id, const struct reactor_shared *sh, struct event_base *base,
		   uint16_t port, struct reactor **out, char *err, size_t errlen)
{
	struct reactor *r = calloc(1, sizeof(*r));
	sigset_t all, old;
	int rc;

	*out = NULL;
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->id = id;
	r->sh = sh;
	r->port = port;
	atomic_init(&r->max_body, sh->max_body);
	atomic_init(&r->accepting, true);
	for (int i = 0; i < REACTOR_CMDS; i++) {
		r->msgs[i].r = r;
		r->msgs[i].cmd = (enum reactor_cmd)i;
		atomic_init(&r->msgs[i].queued, false);
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if (id == 0) {
		r->base = base;
		if (build(r, port, err, errlen) < 0) {
			reactor_close(r);
			reactor_free(r);
			return -1;
		}
		*out = r;
		return 0;
	}
	/* the loop thread blocks every signal but the fatal ones: they
	 * belong to reactor 0 */
	crash_blockable_signals(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&r->thread, NULL, thread_main, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		snprintf(err, errlen, "reactor %u: cannot start its thread: %s", id, strerror(rc));
		reactor_free(r);
		return -1;
	}
	r->threaded = true;
	pthread_mutex_lock(&r->mu);
	while (!r->started)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
	if (r->started < 0) {
		snprintf(err, errlen, "%s", r->err);
		pthread_join(r->thread, NULL);
		r->threaded = false;
		reactor_close(r);
		reactor_free(r);
		return -1;
	}
	*out = r;
	return 0;
}

bool reactor_accepting(const struct reactor *r)
{
	return atomic_load(&r->accepting);
}

uint16_t reactor_port(const struct reactor *r)
{
	return r->port;
}

void reactor_counters(const struct reactor *r, struct reactor_counters *c)
{
	memset(c, 0, sizeof(*c));
	if (r->env) {
		dispatch_stats(r->env, &c->calls);
		c->pending = c->calls.pending;
		c->live = c->calls.live;
	}
	if (r->http)
		c->unsent = http_server_unsent(r->http);
	if (r->fetch)
		fetch_engine_stats(r->fetch, &c->fetch);
}

void reactor_join(struct reactor *r)
{
	if (r->threaded) {
		pthread_join(r->thread, NULL);
		r->threaded = false;
	}
}

void reactor_close(struct reactor *r)
{
	if (r->lag) {
		event_free(r->lag);
		r->lag = NULL;
	}
	if (r->http) {
		http_server_free(r->http);
		r->http = NULL;
	}
}

void reactor_free(struct reactor *r)
{
	if (!r)
		return;
	if (r->lag)
		event_free(r->lag);
	dispatch_env_free(r->env); /* runs what the pool posted last */
	fetch_engine_free(r->fetch);
	if (r->own_base && r->base)
		event_base_free(r->base);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
