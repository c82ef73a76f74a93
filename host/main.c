/*
 * main -- command line, start-up and shutdown order, signals.
 *
 * Start: config, libcurl, loader (private dir), worker pool, the loader
 * thread, registry with the first generation (loaded on this thread, before
 * anything is served), then `reactors` event loops sharing the port
 * (reactor 0 on this thread), then signal events. Signals arrive as
 * libevent events on reactor 0 (every other thread blocks them), so no work
 * ever happens in a raw handler:
 *   SIGHUP           on the loader thread (reloader.h): re-read the config,
 *                    rescan the plugin folder, build the new generation;
 *                    then, back on reactor 0, swap it in (or keep the old
 *                    one, logged). SIGHUPs during a reload make one more.
 *   SIGUSR1          reopen the access log at its path (logrotate renamed
 *                    it): every loop writes to the new file at once (alog.h)
 *   SIGTERM, SIGINT  every reactor stops accepting; calls in flight finish
 *                    up to drain_ms, the rest are answered 503; replies are
 *                    written out; every plugin is unloaded; exit 0. A second
 *                    signal skips the wait.
 * Everything the daemon owns lives in `struct daemon`, on main's stack.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "alog.h"
#include "dedup.h"
#include "config.h"
#include "control.h"
#include "crash.h"
#include "http.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "notify.h"
#include "pool.h"
#include "reactor.h"
#include "registry.h"
#include "isolate.h"
#include "probe.h"
#include "runner.h"
#include "reloader.h"
#include "status.h"
#include "version.h"
#include "watchdog.h"

#define SHUTDOWN_FLUSH_MS 2000 /* after the drain: time left to write replies out */
#define SHUTDOWN_POLL_MS 10    /* how often reactor 0 looks at the others while draining */
#define SHUTDOWN_ACCEPT_WAIT_MS 1000 /* for the other loops to close their listeners */

enum phase { RUNNING, DRAINING, CANCELLED, EXITING };

/* The crash record the last run left: its plugin file is not loaded again
 * until the file changes (then the record is cleared). */
struct quarantine {
	const struct log *log;
	const char *state_dir;
	bool active;
	bool check_only;         /* hookd -t: never clear the record */
	struct crash_record rec;
	char why[320];
};

struct daemon {
	struct log log;
	const char *config_path;
	const char *listen;      /* -l/--listen: overrides the file's listen, or NULL */
	struct config *boot;     /* settings that need a restart: listen, reactors, workers, queue */
	struct event_base *base; /* reactor 0's */
	struct pool *pool;
	struct loader *loader;
	struct registry reg;
	bool reg_ready, curl_ready;
	struct reloader_ops reload_ops;
	struct reloader *reloader; /* loads and unloads plugins once serving */
	struct reactor_shared shared;
	struct hsrv_limits limits; /* the transport's, from boot's "http" */
	struct hsrv_budget budget; /* memory of requests in flight, every listener's */
	struct reactor **reactors;
	/* reactors[0..nreactors) are serving; a reactor serves GET /health
	 * before main has started the next one, hence the atomic publication */
	atomic_uint nreactors;
	struct event *sig_hup, *sig_term, *sig_int, *drain_timer, *flush_timer, *poll_timer;
	struct alog alog;          /* the access log, shared by every reactor */
	struct dedup *dedup;       /* hooks' remembered deliveries, shared by every reactor */
	struct event *sig_usr1;
	uint64_t next_gen;
	enum phase phase;
	struct quarantine q;
	struct names names; /* who served each plugin name last (state_dir) */
	struct watchdog *watchdog;
	struct isolate_sup *sup;   /* isolated plugins' processes */
	struct status status;      /* the last reload's outcome */
	bool status_ready;
	atomic_bool draining;      /* read by GET /ready on any loop */
	struct http_server *admin; /* admin_listen's server (reactor 0's loop), or NULL */
	bool pid_written;
	struct metrics *metrics;   /* GET /metrics: names and the reactors' shards */
	char exe[4096];            /* this binary: the probe and the runners run it */
	struct notify notify;      /* systemd's NOTIFY_SOCKET (no-op when unset) */
};

static unsigned reactor_count(struct daemon *d)
{
	return atomic_load_explicit(&d->nreactors, memory_order_acquire);
}

/* config_load, then the command line's -l over the file's "listen". */
static int load_config(const char *path, const char *listen, struct config **out, char *err,
		       size_t errlen)
{
	if (config_load(path, out, err, errlen) < 0)
		return -1;
	if (listen && config_set_listen(*out, listen, err, errlen) < 0) {
		config_free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hookd [-t] -c FILE [-l HOST:PORT | -l PORT]\n"
		"       hookd -s reload|stop -c FILE\n"
		"       hookd -V | -h\n"
		"\n"
		"Serve compiled plugins as HTTP hooks (POST /hooks/<name>).\n"
		"\n"
		"  -c FILE  the JSON configuration file\n"
		"  -l, --listen HOST:PORT | PORT\n"
		"           listen there instead of the file's \"listen\" (a bare PORT keeps\n"
		"           the file's host); reloads keep it\n"
		"  -t       check the configuration and load the plugin folder the way a\n"
		"           start would (runs the plugins' init, then unloads them); print\n"
		"           the result, exit 0 (valid) or 1 (not, or no plugin would load,\n"
		"           or a hook's chain names a plugin that would not load)\n"
		"  -s reload  signal the hookd running with FILE (its pid_file) to reload,\n"
		"           wait for the outcome, print it; exit 0 (reloaded) or 1 (failed:\n"
		"           the old generation still serves)\n"
		"  -s stop  signal it to drain and exit, wait until it has; exit 0 or 1\n"
		"  -V       print the version and exit\n"
		"  -h       print this help and exit\n"
		"\n"
		"Runs in the foreground and logs to stderr.\n"
		"Signals: SIGHUP reloads the configuration and the plugin folder;\n"
		"         SIGUSR1 reopens the access log (after logrotate renamed it);\n"
		"         SIGTERM/SIGINT finish calls in flight (up to drain_ms) and exit.\n");
}

static void metrics_name_generation(struct daemon *d, struct generation *g);

/* Scan the plugin folder against the current generation and build the
 * next generation from cfg (taken). Runs plugins' init: on the loader
 * thread once the daemon serves, on main's before. Returns it (one
 * reference), or NULL with err (the current generation stays). */
static struct generation *build_generation(struct daemon *d, struct config *cfg, char *err,
					   size_t errlen)
{
	struct generation *cur = registry_acquire(&d->reg), *g;
	struct loader_result lr;
	uint64_t id = d->next_gen;
	int rc;

	rc = loader_scan(d->loader, cfg, cur ? cur->lr.plugins : NULL, cur ? cur->lr.nplugins : 0,
			 id, &lr, err, errlen);
	generation_release(cur);
	if (rc < 0) {
		config_free(cfg);
		return NULL;
	}
	if (generation_build(cfg, &lr, id, &d->log, &g) < 0) {
		snprintf(err, errlen, "out of memory building generation %llu",
			 (unsigned long long)id);
		return NULL;
	}
	if (d->reloader) /* its plugins are unloaded off the loops */
		g->reaper = reloader_reaper(d->reloader);
	metrics_name_generation(d, g);
	d->next_gen++;
	/* before it is current: a restart right after the swap settles names
	 * the way this generation does */
	names_save(&d->names, g->lr.plugins, g->lr.nplugins);
	return g;
}

/* Intern g's hook and plugin names (metrics.h) before g is published: a
 * plugin kept from an earlier generation has its slot already (set once,
 * never rewritten: other threads read it). */
static void metrics_name_generation(struct daemon *d, struct generation *g)
{
	if (!d->metrics)
		return; /* "metrics": false: every slot stays METRICS_UNKNOWN */
	for (size_t i = 0; i < g->nhooks; i++)
		g->hooks[i].metric_slot = metrics_intern(d->metrics, METRICS_HOOK, g->hooks[i].name);
	for (size_t i = 0; i < g->lr.nplugins; i++) {
		struct plugin *p = g->lr.plugins[i];
		unsigned slot;
		/* a kept plugin is published already: its slot is only ever
		 * written while it is 0, and never with 0 (a full table) */
		if (!p->metric_slot &&
		    (slot = metrics_intern(d->metrics, METRICS_PLUGIN, p->desc.name)))
			p->metric_slot = slot;
	}
}

/* Make g current (takes its reference). The loop thread. */
static void install_generation(struct daemon *d, struct generation *g)
{
	log_info(&d->log, "generation %llu: %zu plugin(s), %zu hook(s), %zu file(s) rejected",
		 (unsigned long long)g->id, g->lr.nplugins, g->nhooks, g->lr.nrejects);
	registry_swap(&d->reg, g);
}

static bool same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* The loader thread: re-read the config and build the next generation from
 * it. Returns it, or NULL (logged: the current generation stays). */
static struct generation *reload_build(void *arg)
{
	struct daemon *d = arg;
	struct generation *cur = registry_acquire(&d->reg), *g;
	unsigned long long keep = cur ? (unsigned long long)cur->id : 0;
	struct config *cfg;
	char err[1024];

	generation_release(cur);
	status_load_begin(&d->status);
	notify_reloading(&d->notify);
	if (load_config(d->config_path, d->listen, &cfg, err, sizeof(err)) < 0) {
		log_error(&d->log, "reload failed: %s; still serving generation %llu", err, keep);
		status_load_failed(&d->status, keep, err);
		notify_ready(&d->notify, "reload failed: %s; still serving generation %llu", err,
			     keep);
		return NULL;
	}
	if (strcmp(cfg->listen, d->boot->listen) != 0 || cfg->reactors != d->boot->reactors)
		log_warn(&d->log, "reload: listen/reactors changed to %s/%u: takes effect at "
			 "restart; still %s/%u", cfg->listen, cfg->reactors, d->boot->listen,
			 d->boot->reactors);
	if (cfg->workers != d->boot->workers || cfg->queue != d->boot->queue)
		log_warn(&d->log, "reload: workers/queue changed to %u/%u: takes effect at restart; "
			 "still %u/%u", cfg->workers, cfg->queue, d->boot->workers, d->boot->queue);
	if (memcmp(&cfg->http, &d->boot->http, sizeof(cfg->http)) != 0)
		log_warn(&d->log, "reload: the \"http\" limits changed: they take effect at restart "
			 "(max_body and the hooks' limits apply now)");
	if (!same(cfg->admin_listen, d->boot->admin_listen) || !same(cfg->pid_file, d->boot->pid_file))
		log_warn(&d->log, "reload: admin_listen/pid_file changed to %s/%s: takes effect at "
			 "restart; still %s/%s", cfg->admin_listen ? cfg->admin_listen : "(none)",
			 cfg->pid_file ? cfg->pid_file : "(none)",
			 d->boot->admin_listen ? d->boot->admin_listen : "(none)",
			 d->boot->pid_file ? d->boot->pid_file : "(none)");
	if (!(g = build_generation(d, cfg, err, sizeof(err)))) {
		log_error(&d->log, "reload failed: %s; still serving generation %llu", err, keep);
		status_load_failed(&d->status, keep, err);
		notify_ready(&d->notify, "reload failed: %s; still serving generation %llu", err,
			     keep);
	}
	return g;
}

/* Point the access log where cfg says (start-up and reload). Main's
 * thread. Returns 0, or -1 (logged; the log stays as it was). */
static int access_log_apply(struct daemon *d, const struct config *cfg)
{
	char err[512];

	if (alog_configure(&d->alog, cfg->access_log, cfg->access_log_json ? ALOG_JSON : ALOG_TEXT,
			   err, sizeof(err)) < 0) {
		if (d->reactors) /* a reload: keep serving */
			log_error(&d->log, "%s; the access log stays %s%s", err,
				  alog_enabled(&d->alog) ? "at " : "off",
				  alog_enabled(&d->alog) ? d->alog.path : "");
		else
			log_error(&d->log, "%s", err);
		return -1;
	}
	return 0;
}

/* Reactor 0's loop: swap in the generation a reload built, and only then
 * apply the settings that come with it (a failed reload changes nothing). */
static void reload_apply(void *arg, struct generation *g)
{
	struct daemon *d = arg;
	int level = g->cfg->log_level;
	size_t max_body = g->cfg->max_body_any;

	if (d->phase != RUNNING) {
		log_info(&d->log, "generation %llu not applied: shutting down",
			 (unsigned long long)g->id);
		struct generation *cur = registry_acquire(&d->reg);
		status_load_failed(&d->status, cur ? cur->id : 0, "not applied: shutting down");
		generation_release(cur);
		generation_release(g);
		return;
	}
	install_generation(d, g);
	status_load_ok(&d->status, g, false);
	notify_ready(&d->notify, "generation %llu loaded: %zu plugin(s), %zu hook(s)",
		     (unsigned long long)g->id, g->lr.nplugins, g->nhooks);
	atomic_store(&d->log.level, level);
	access_log_apply(d, g->cfg);
	for (unsigned i = 0; i < reactor_count(d); i++)
		reactor_set_max_body(d->reactors[i], max_body);
}

/* Sum of every reactor's counters. Any thread. */
static void totals(struct daemon *d, struct reactor_counters *t)
{
	unsigned n = reactor_count(d);

	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < n; i++) {
		struct reactor_counters c;
		reactor_counters(d->reactors[i], &c);
		t->pending += c.pending;
		t->live += c.live;
		t->unsent += c.unsent;
		t->calls.started += c.calls.started;
		t->calls.answered_ok += c.calls.answered_ok;
		t->calls.answered_err += c.calls.answered_err;
		t->fetch.alive += c.fetch.alive;
		t->fetch.running += c.fetch.running;
		t->fetch.waiting += c.fetch.waiting;
		t->fetch.started += c.fetch.started;
	}
}

/* GET /health's counters, on whichever reactor serves it. */
/* "stuck_workers": {plugin: n} for the plugins of the current generation
 * that hold workers past their calls' deadlines. */
static void stuck_per_plugin(struct daemon *d, cJSON *o)
{
	struct generation *g = registry_acquire(&d->reg);
	cJSON *per = cJSON_AddObjectToObject(o, "stuck_workers");

	for (size_t i = 0; g && per && i < g->lr.nplugins; i++) {
		const struct plugin *p = g->lr.plugins[i];
		unsigned n = atomic_load_explicit(&p->stuck_workers, memory_order_relaxed);
		if (n)
			cJSON_AddNumberToObject(per, p->desc.name, n);
	}
	generation_release(g);
}

static void health(void *arg, cJSON *o)
{
	struct daemon *d = arg;
	struct reactor_counters t;
	unsigned queued = 0, running = 0, threads = 0;

	unsigned n = reactor_count(d);

	totals(d, &t);
	pool_stats(d->pool, &queued, &running, &threads);
	cJSON_AddNumberToObject(o, "reactors", n);
	cJSON_AddNumberToObject(o, "calls_in_flight", t.pending);
	/* answered, but a plugin has not finished its part yet (a cancelled
	 * async call it has not released): each keeps its generation loaded */
	cJSON_AddNumberToObject(o, "calls_held", t.live > t.pending ? t.live - t.pending : 0);
	cJSON_AddNumberToObject(o, "calls_started", (double)t.calls.started);
	cJSON_AddNumberToObject(o, "calls_ok", (double)t.calls.answered_ok);
	cJSON_AddNumberToObject(o, "calls_failed", (double)t.calls.answered_err);
	cJSON_AddNumberToObject(o, "workers", threads);
	cJSON_AddNumberToObject(o, "workers_busy", running);
	cJSON_AddNumberToObject(o, "workers_stuck", pool_stuck(d->pool));
	stuck_per_plugin(d, o);
	status_describe_reload(&d->status, o);
	cJSON_AddNumberToObject(o, "queue", queued);
	cJSON_AddNumberToObject(o, "fetch_alive", t.fetch.alive);
	cJSON_AddNumberToObject(o, "fetch_running", t.fetch.running);
	cJSON_AddNumberToObject(o, "fetch_waiting", t.fetch.waiting);
	cJSON_AddNumberToObject(o, "fetch_started", (double)t.fetch.started);
	cJSON *per = cJSON_AddArrayToObject(o, "calls_per_reactor");
	for (unsigned i = 0; per && i < n; i++) {
		struct reactor_counters c;
		reactor_counters(d->reactors[i], &c);
		cJSON_AddItemToArray(per, cJSON_CreateNumber((double)c.calls.started));
	}
}

/* GET /metrics: the daemon's own families (any reactor's thread). */
static void metrics_daemon(void *arg, struct metrics_text *t)
{
	struct daemon *d = arg;
	struct generation *g = registry_acquire(&d->reg);
	unsigned queued = 0, running = 0, threads = 0, stuck = pool_stuck(d->pool);
	size_t loaded = 0, isolated = 0, quarantined = 0;

	pool_stats(d->pool, &queued, &running, &threads);
	metrics_text_family(t, "hookd_build_info", "gauge", "hookd's version and plugin ABI.");
	metrics_text_printf(t, "hookd_build_info{version=\"");
	metrics_text_escape(t, HOOKD_VERSION);
	metrics_text_printf(t, "\",abi=\"%d.%d\"} 1\n", HOOKD_ABI_MAJOR, HOOKD_ABI_MINOR);
	if (d->dedup) {
		size_t entries, bytes;
		dedup_stats(d->dedup, &entries, &bytes);
		metrics_text_family(t, "hookd_dedup_entries", "gauge",
				    "Deliveries remembered (hooks.<name>.dedup), in flight or done.");
		metrics_text_printf(t, "hookd_dedup_entries %zu\n", entries);
		metrics_text_family(t, "hookd_dedup_bytes", "gauge",
				    "Bytes of replies remembered for repeated deliveries.");
		metrics_text_printf(t, "hookd_dedup_bytes %zu\n", bytes);
	}
	metrics_text_family(t, "hookd_http_inflight_bytes", "gauge",
			    "Memory of HTTP requests in flight charged to http.max_inflight_bytes.");
	metrics_text_printf(t, "hookd_http_inflight_bytes %zu\n",
			    atomic_load_explicit(&d->budget.used, memory_order_relaxed));
	metrics_text_family(t, "hookd_workers", "gauge", "Worker threads, by state.");
	/* a stuck worker is busy too; its replacement is counted in threads */
	metrics_text_printf(t, "hookd_workers{state=\"busy\"} %u\n",
			    running > stuck ? running - stuck : 0);
	metrics_text_printf(t, "hookd_workers{state=\"idle\"} %u\n",
			    threads > running ? threads - running : 0);
	metrics_text_printf(t, "hookd_workers{state=\"stuck\"} %u\n", stuck);
	metrics_text_family(t, "hookd_queue_depth", "gauge", "Sync steps waiting for a worker.");
	metrics_text_printf(t, "hookd_queue_depth %u\n", queued);
	metrics_text_family(t, "hookd_generation", "gauge",
			    "The registry generation being served (0: none yet).");
	metrics_text_printf(t, "hookd_generation %llu\n",
			    g ? (unsigned long long)generation_id(g) : 0ULL);
	for (size_t i = 0; g && i < g->lr.nplugins; i++) {
		struct plugin *p = g->lr.plugins[i];
		cJSON *o, *q;
		if (!p->iso) {
			loaded++;
			continue;
		}
		isolated++;
		if (!(o = cJSON_CreateObject()))
			continue;
		isolate_describe(p->iso, o);
		q = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "isolated"),
						     "quarantined");
		if (cJSON_IsTrue(q))
			quarantined++;
		cJSON_Delete(o);
	}
	metrics_text_family(t, "hookd_plugins", "gauge",
			    "Plugins of the current generation, by state (loaded: in this "
			    "process; isolated: in child processes, quarantined among them; "
			    "rejected: files that did not load).");
	metrics_text_printf(t, "hookd_plugins{state=\"loaded\"} %zu\n", loaded);
	metrics_text_printf(t, "hookd_plugins{state=\"rejected\"} %zu\n", g ? g->lr.nrejects : 0);
	metrics_text_printf(t, "hookd_plugins{state=\"quarantined\"} %zu\n", quarantined);
	metrics_text_printf(t, "hookd_plugins{state=\"isolated\"} %zu\n", isolated);
	generation_release(g);
	if (d->status_ready) {
		struct status_reload last;
		status_last(&d->status, &last);
		metrics_text_family(t, "hookd_reloads_total", "counter",
				    "Reloads (SIGHUP, hookd -s reload) by result; start-up not counted.");
		metrics_text_printf(t, "hookd_reloads_total{result=\"ok\"} %llu\n",
				    (unsigned long long)last.ok_total);
		metrics_text_printf(t, "hookd_reloads_total{result=\"failed\"} %llu\n",
				    (unsigned long long)last.failed_total);
		metrics_text_family(t, "hookd_last_reload_success", "gauge",
				    "1 if the last load (start-up or reload) made a new generation "
				    "current, else 0.");
		metrics_text_printf(t, "hookd_last_reload_success %d\n", last.ok ? 1 : 0);
		metrics_text_family(t, "hookd_last_reload_timestamp_seconds", "gauge",
				    "When the last load ended (Unix time).");
		metrics_text_printf(t, "hookd_last_reload_timestamp_seconds %.3f\n", last.time);
	}
	metrics_render_process(t);
}

/* GET /ready's verdict beyond the listener's own (any loop). */
static bool ready(void *arg, cJSON *reasons)
{
	struct daemon *d = arg;
	bool ok = true;

	if (atomic_load(&d->draining)) {
		cJSON_AddItemToArray(reasons, cJSON_CreateString("shutting down: draining calls "
								 "in flight"));
		ok = false;
	}
	struct generation *g = registry_acquire(&d->reg);
	if (!status_hooks_ready(g, reasons))
		ok = false;
	generation_release(g);
	return ok;
}

static void send_all(struct daemon *d, enum reactor_cmd cmd)
{
	for (unsigned i = 0; i < reactor_count(d); i++)
		reactor_send(d->reactors[i], cmd);
}

static void exit_all(struct daemon *d)
{
	d->phase = EXITING;
	event_del(d->poll_timer);
	event_del(d->drain_timer);
	event_del(d->flush_timer);
	for (unsigned i = 1; i < reactor_count(d); i++)
		reactor_send(d->reactors[i], REACTOR_EXIT);
	event_base_loopexit(d->base, NULL);
}

/* While draining: are all calls answered and released, all replies out? */
static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct reactor_counters t;

	(void)fd;
	(void)what;
	totals(d, &t);
	if (t.pending || t.live) {
		if (d->phase != CANCELLED || t.pending)
			return;
		/* cancelled, and plugins still hold calls (a sync plugin still
		 * running, an async one not finishing): the flush bound decides */
	}
	if (!t.unsent && !t.live)
		exit_all(d);
	else if (!event_pending(d->flush_timer, EV_TIMEOUT, NULL)) {
		struct timeval tv = {SHUTDOWN_FLUSH_MS / 1000, (SHUTDOWN_FLUSH_MS % 1000) * 1000};
		event_add(d->flush_timer, &tv);
	}
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct reactor_counters t;

	(void)fd;
	(void)what;
	totals(d, &t);
	if (t.pending)
		log_warn(&d->log, "drain deadline passed with %u call(s) unanswered: answering 503",
			 t.pending);
	d->phase = CANCELLED;
	send_all(d, REACTOR_CANCEL);
}

static void on_flush_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct reactor_counters t;

	(void)fd;
	(void)what;
	totals(d, &t);
	if (t.live)
		log_warn(&d->log, "%u call(s) still held by plugins; their code stays loaded",
			 t.live);
	exit_all(d);
}

static void shutdown_begin(struct daemon *d, int sig)
{
	struct generation *g = registry_acquire(&d->reg);
	uint32_t drain_ms = g ? g->cfg->drain_ms : d->boot->drain_ms;
	struct reactor_counters t;
	struct timeval poll = {0, SHUTDOWN_POLL_MS * 1000};

	generation_release(g);
	if (d->phase != RUNNING) {
		if (d->phase == DRAINING) {
			log_warn(&d->log, "%s again: not waiting any longer", strsignal(sig));
			event_del(d->drain_timer);
			on_drain_deadline(-1, 0, d);
		}
		return;
	}
	d->phase = DRAINING;
	atomic_store(&d->draining, true);
	notify_stopping(&d->notify, "%s: draining, up to %u ms", strsignal(sig), drain_ms);
	send_all(d, REACTOR_DRAIN);
	/* every loop closes its own listener: wait (briefly, bounded) until
	 * they all did, so that "shutting down" means no new connection */
	for (int waited = 0; waited < SHUTDOWN_ACCEPT_WAIT_MS; waited++) {
		bool all = true;
		for (unsigned i = 0; i < reactor_count(d); i++)
			all = all && !reactor_accepting(d->reactors[i]);
		if (all)
			break;
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	totals(d, &t);
	log_info(&d->log, "%s: shutting down; %u call(s) in flight, waiting up to %u ms",
		 strsignal(sig), t.pending, drain_ms);
	struct timeval tv = {drain_ms / 1000, (drain_ms % 1000) * 1000};
	event_add(d->drain_timer, &tv);
	event_add(d->poll_timer, &poll);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)what;
	if (sig == SIGUSR1) {
		char err[512];
		if (alog_reopen(&d->alog, err, sizeof(err)) < 0)
			log_error(&d->log, "SIGUSR1: %s; still writing to the old file", err);
		else
			log_info(&d->log, "SIGUSR1: access log %s", alog_enabled(&d->alog) ?
				 "reopened" : "is off: nothing to reopen");
		return;
	}
	if (sig == SIGHUP) {
		/* the reload itself runs on the loader thread: this loop serves on */
		if (d->phase != RUNNING)
			return;
		if (reloader_request(d->reloader))
			log_info(&d->log, "SIGHUP: reloading %s", d->config_path);
		else
			log_info(&d->log, "SIGHUP: reloading %s once more after the reload under way",
				 d->config_path);
		return;
	}
	shutdown_begin(d, (int)sig);
}

static void raise_fd_limit(struct daemon *d)
{
	struct rlimit rl;

	/* every connection is a descriptor: use all the system allows us */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn(&d->log, "cannot raise the open-file limit: %s", strerror(errno));
	}
}

/* Release everything in reverse order of creation. Returns false when a
 * plugin still runs code for a call (drain deadline passed): nothing of it
 * may be unmapped and its worker may never come back, so the caller exits
 * without running destructors. */
static bool teardown(struct daemon *d)
{
	struct reactor_counters t = {0};

	if (d->reactors) {
		for (unsigned i = 1; i < reactor_count(d); i++)
			reactor_send(d->reactors[i], REACTOR_EXIT);
		for (unsigned i = 0; i < reactor_count(d); i++)
			reactor_join(d->reactors[i]);
		for (unsigned i = 0; i < reactor_count(d); i++)
			reactor_close(d->reactors[i]);
		totals(d, &t);
	}
	if (t.live) {
		/* a plugin is still running code for a call: never unmap it, and
		 * never join a worker that may not come back */
		reloader_stop(d->reloader); /* it may be using the loader */
		if (d->reg_ready)
			registry_swap(&d->reg, NULL);
		log_warn(&d->log, "exiting with %u call(s) still held by plugins", t.live);
		loader_destroy(d->loader); /* the private copies: unlinking mapped files is safe */
		d->loader = NULL;
		return false;
	}
	http_server_free(d->admin);
	d->admin = NULL;
	if (d->pool)
		pool_destroy(d->pool); /* no worker posts to a reactor after this */
	for (unsigned i = 0; d->reactors && i < reactor_count(d); i++)
		reactor_free(d->reactors[i]);
	free(d->reactors);
	watchdog_stop(d->watchdog); /* no slot is left on it now */
	/* joined first: a reload under way reads the registry */
	reloader_stop(d->reloader);
	if (d->reg_ready)
		registry_destroy(&d->reg); /* last generation: fini every plugin */
	reloader_free(d->reloader);
	isolate_sup_stop(d->sup); /* isolated ones: their processes run fini and exit */
	if (d->curl_ready)
		curl_global_cleanup();
	loader_destroy(d->loader);
	names_free(&d->names);
	metrics_free(d->metrics); /* after the reactors: nobody counts any more */
	if (d->sig_hup)
		event_free(d->sig_hup);
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->sig_usr1)
		event_free(d->sig_usr1);
	alog_fini(&d->alog); /* every loop is gone */
	dedup_free(d->dedup);
	if (d->drain_timer)
		event_free(d->drain_timer);
	if (d->flush_timer)
		event_free(d->flush_timer);
	if (d->poll_timer)
		event_free(d->poll_timer);
	if (d->base)
		event_base_free(d->base);
	if (d->pid_written)
		ctl_pidfile_remove(d->boot->pid_file);
	if (d->status_ready)
		status_destroy(&d->status);
	config_free(d->boot);
	notify_fini(&d->notify);
	return true;
}

/* This program's path, which the probe and the isolated processes run.
 * Returns 0, or -1 with errno. */
static int self_exe(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);

	if (n < 0)
		return -1;
	if ((size_t)n >= len - 1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	buf[n] = 0;
	return 0;
}

/* A plugin that crashed the host last time runs isolated until its file
 * changes (then the record is cleared): it can crash only its own process. */
static bool crash_isolate(void *arg, const char *file, const struct stat *st, char *why,
			  size_t len)
{
	struct quarantine *q = arg;
	const struct crash_record *r = &q->rec;
	char err[512];

	if (!q->active || strcmp(file, r->file) != 0)
		return false;
	if (st->st_dev == r->dev && st->st_ino == r->ino && st->st_size == r->size &&
	    st->st_mtim.tv_sec == r->mtime.tv_sec && st->st_mtim.tv_nsec == r->mtime.tv_nsec) {
		snprintf(why, len, "isolated after it %s", q->why);
		return true;
	}
	if (q->check_only)
		return false;
	q->active = false;
	if (crash_record_clear(q->state_dir, err, sizeof(err)) < 0)
		log_error(q->log, "cannot clear the crash record: %s", err);
	else
		log_info(q->log, "crash record cleared: %s changed since plugin %s %s", file,
			 r->plugin, q->why);
	return false;
}

/* Where the crash record lives: state_dir, else systemd's StateDirectory
 * (the first of its paths). Created if missing; NULL: no record. */
static const char *state_dir_path(const struct config *cfg, char *buf, size_t len)
{
	const char *dir = cfg->state_dir ? cfg->state_dir : getenv("STATE_DIRECTORY");

	if (!dir || !*dir)
		return NULL;
	snprintf(buf, len, "%.*s", (int)strcspn(dir, ":"), dir);
	return buf;
}

static const char *state_dir(struct daemon *d, char *buf, size_t len)
{
	if (!state_dir_path(d->boot, buf, len))
		return NULL;
	if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
		log_error(&d->log, "state_dir %s: %s: crashes will not be remembered", buf,
			  strerror(errno));
		return NULL;
	}
	return buf;
}

/* Install the fatal-signal handler and read the last run's crash record. */
static int crash_setup(struct daemon *d, char *dirbuf, size_t dirlen, char *err, size_t errlen)
{
	const char *dir = state_dir(d, dirbuf, dirlen);
	int rc;

	if (crash_init(STDERR_FILENO, dir, NULL, err, errlen) < 0)
		return -1;
	d->q.log = &d->log;
	d->q.state_dir = dir;
	if (!dir) {
		log_info(&d->log, "no state_dir: a plugin that crashes the host will not be "
			 "remembered across restarts");
		return 0;
	}
	rc = crash_record_load(dir, &d->q.rec, err, errlen);
	if (rc < 0) {
		log_error(&d->log, "ignoring the crash record: %s", err);
		return 0;
	}
	if (rc == 1) {
		d->q.active = true;
		crash_record_describe(&d->q.rec, d->q.why, sizeof(d->q.why));
		log_warn(&d->log, "plugin %s (file %s) %s: it runs isolated until its file "
			 "changes", d->q.rec.plugin, d->q.rec.file, d->q.why);
	}
	return 0;
}

/* The transport's limits from the config's "http". max_connections 0: the
 * open-file limit less HOOKD_FD_RESERVE (plugins, logs, isolated
 * processes' pipes), shared by the `loops`, so that a loop pauses at its
 * share instead of meeting EMFILE. */
#define HOOKD_FD_RESERVE 256
static void http_limits_of(const struct config_http *c, unsigned loops, struct hsrv_limits *lim)
{
	struct rlimit rl;

	hsrv_limits_default(lim);
	lim->max_connections = c->max_connections;
	if (!lim->max_connections) {
		rlim_t n = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
				   ? rl.rlim_cur : 1u << 20;
		n = n > 2 * HOOKD_FD_RESERVE ? n - HOOKD_FD_RESERVE : n / 2;
		n /= loops ? loops : 1;
		lim->max_connections = n < 16 ? 16 : n > 10000000 ? 10000000 : (unsigned)n;
	}
	lim->header_timeout_ms = c->header_timeout_ms;
	lim->body_timeout_ms = c->body_timeout_ms;
	lim->idle_timeout_ms = c->idle_timeout_ms;
	lim->send_timeout_ms = c->send_timeout_ms;
	lim->h1.max_line = c->max_line;
	lim->h1.max_headers = c->max_header_bytes;
	lim->h1.max_fields = c->max_headers;
}

static int start_reactors(struct daemon *d, char *err, size_t errlen)
{
	uint16_t port = d->boot->listen_port;

	/* made here, not at the top of main: hookd -t, -s and -V never serve
	 * (and exit without the teardown that frees it) */
	if (dedup_new(&d->dedup) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}

	http_limits_of(&d->boot->http, d->boot->reactors, &d->limits);
	d->budget.limit = (size_t)d->boot->http.max_inflight_bytes;
	atomic_init(&d->budget.used, 0);
	d->shared = (struct reactor_shared){
		.limits = &d->limits,
		.budget = &d->budget,
		.max_json_values = (size_t)d->boot->http.max_json_values,
		.pool = d->pool,
		.reg = &d->reg,
		.log = &d->log,
		.host = d->boot->listen_host,
		.max_body = d->boot->max_body_any,
		.reuse_port = d->boot->reactors > 1,
		.health = health,
		.health_arg = d,
		.ready = ready,
		.ready_arg = d,
		.routes = d->boot->admin_listen ? HTTP_ROUTES_HOOKS : HTTP_ROUTES_ALL,
		.metrics = d->metrics,
		.metrics_cb = d->metrics ? metrics_daemon : NULL, /* "metrics": false */
		.metrics_arg = d,
		.watchdog = d->watchdog,
		.loop_warn_ms = d->boot->loop_warn_ms,
		.alog = &d->alog,
		.dedup = d->dedup,
	};
	d->reactors = calloc(d->boot->reactors, sizeof(*d->reactors));
	if (!d->reactors) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (unsigned i = 0; i < d->boot->reactors; i++) {
		if (reactor_create(i, &d->shared, d->base, port, &d->reactors[i], err, errlen) < 0)
			return -1;
		atomic_store_explicit(&d->nreactors, i + 1, memory_order_release);
		port = reactor_port(d->reactors[0]); /* the others join the first one's port */
	}
	return 0;
}

/* admin_listen: /plugins, /health, /ready on their own listener, served by
 * reactor 0's loop (it stays open through the drain, so /ready says why
 * the host is not ready until it exits). */
static int start_admin(struct daemon *d, char *err, size_t errlen)
{
	struct http_options ho = {.host = d->boot->admin_host, .unix_path = d->boot->admin_unix,
				  .routes = HTTP_ROUTES_ADMIN, .port = d->boot->admin_port,
				  .max_body = d->boot->max_body_any, .limits = &d->limits,
				  .budget = &d->budget,
				  .max_json_values = (size_t)d->boot->http.max_json_values};
	struct http_deps hd = {.reg = &d->reg, .log = &d->log, .health = health,
			       .health_arg = d, .ready = ready, .ready_arg = d,
			       .metrics = d->metrics,
			       .metrics_cb = d->metrics ? metrics_daemon : NULL,
			       .metrics_arg = d};

	if (!d->boot->admin_listen)
		return 0;
	if (http_server_create(d->base, &ho, &hd, &d->admin, err, errlen) < 0)
		return -1;
	if (d->boot->admin_unix)
		log_info(&d->log, "admin listener on unix:%s", d->boot->admin_unix);
	else
		log_info(&d->log, "admin listener on %s%s%s:%u",
			 strchr(d->boot->admin_host, ':') ? "[" : "", d->boot->admin_host,
			 strchr(d->boot->admin_host, ':') ? "]" : "", http_server_port(d->admin));
	return 0;
}

/* hookd -t's look at the plugin folder: scan it the way a start would (the
 * crash record and the names record are read, never written), which runs
 * the plugins' constructors and init, then unload everything. Problems go
 * to stderr: the folder cannot be read, no plugin would load, a hook's
 * chain names a plugin that would not be loaded. Returns how many problems
 * (0: none); *nloaded and *nrejected count the files. One function, so that
 * a probe in a forked child can take its place. */
static int check_plugins(const char *path, const struct config *cfg, const struct log *log,
			 size_t *nloaded, size_t *nrejected)
{
	struct quarantine q = {.log = log, .check_only = true};
	struct names names;
	struct loader *ld = NULL;
	struct loader_result lr = {0};
	char dirbuf[4096], err[1024], exe[4096];
	int problems = 0;

	*nloaded = *nrejected = 0;
	q.state_dir = state_dir_path(cfg, dirbuf, sizeof(dirbuf));
	if (q.state_dir && crash_record_load(q.state_dir, &q.rec, err, sizeof(err)) == 1) {
		q.active = true;
		crash_record_describe(&q.rec, q.why, sizeof(q.why));
	}
	names_load(&names, q.state_dir, log);
	if (loader_create(cfg->runtime_dir, log, dispatch_host_api(), &ld, err, sizeof(err)) < 0) {
		fprintf(stderr, "hookd: %s: %s\n", path, err);
		problems++;
		goto out;
	}
	/* every file is probed in a child, as a start would: nothing of a
	 * plugin runs in this process */
	if (self_exe(exe, sizeof(exe)) < 0) {
		fprintf(stderr, "hookd: cannot find this program's path (/proc/self/exe): %s\n",
			strerror(errno));
		problems++;
		goto out;
	}
	loader_set_isolation(ld, exe, NULL, crash_isolate, &q);
	loader_set_probe_only(ld, true);
	loader_set_owner(ld, names_owner, &names);
	if (loader_scan(ld, cfg, NULL, 0, 1, &lr, err, sizeof(err)) < 0) {
		fprintf(stderr, "hookd: %s: %s\n", path, err);
		problems++;
		goto out;
	}
	*nloaded = lr.nplugins;
	*nrejected = lr.nrejects;
	if (!lr.nplugins) {
		fprintf(stderr, "hookd: %s: plugin_dir %s: no plugin would load (%zu file(s) "
			"rejected)\n", path, cfg->plugin_dir, lr.nrejects);
		problems++;
	}
	/* a start would serve without them: say which, and fail */
	for (size_t i = 0; i < lr.nrejects; i++) {
		fprintf(stderr, "hookd: %s: plugin file %s would be rejected: %s\n", path,
			lr.rejects[i].file, lr.rejects[i].reason);
		problems++;
	}
	for (size_t i = 0; i < cfg->nhooks; i++) {
		const struct config_hook *h = &cfg->hooks[i];
		for (size_t j = 0; h->chain && j < h->nchain; j++) {
			bool found = false;
			for (size_t k = 0; k < lr.nplugins && !found; k++)
				found = strcmp(lr.plugins[k]->desc.name, h->chain[j]) == 0;
			if (found)
				continue;
			fprintf(stderr, "hookd: %s: hooks.%s.chain[%zu]: plugin %s would not be "
				"loaded: the hook would answer 503\n", path, h->name, j, h->chain[j]);
			problems++;
		}
	}
out:
	loader_result_free(&lr); /* nothing was mapped: probed only */
	loader_destroy(ld);
	names_free(&names);
	return problems;
}

static int check_config(const char *path, const char *listen)
{
	struct config *cfg;
	struct log log;
	char err[1024];
	size_t nloaded, nrejected;
	int problems;

	if (load_config(path, listen, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "hookd: %s\n", err);
		return 1;
	}
	log_init(&log, STDERR_FILENO, cfg->log_level);
	problems = check_plugins(path, cfg, &log, &nloaded, &nrejected);
	if (problems) {
		config_free(cfg);
		return 1;
	}
	printf("hookd: %s: configuration OK (listen %s, plugin_dir %s with %zu plugin file(s): "
	       "%zu would load, %zu rejected; %u reactor(s), %u workers, queue %u, %zu hook "
	       "setting(s))\n", path, cfg->listen, cfg->plugin_dir, nloaded + nrejected, nloaded,
	       nrejected, cfg->reactors, cfg->workers, cfg->queue, cfg->nhooks);
	config_free(cfg);
	return 0;
}

int main(int argc, char **argv)
{
	struct daemon d = {.next_gen = 1};
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *listen = NULL, *control = NULL;
	sigset_t hup;
	char statebuf[4096];
	bool test_only = false;
	struct config *cfg = NULL;
	char err[1024];
	int opt, rc = 1;

	/* the processes hookd starts itself (same binary, not for operators) */
	if (argc == 2 && strcmp(argv[1], "--runner") == 0)
		return runner_main();
	if (argc == 3 && strcmp(argv[1], "--probe") == 0)
		return probe_main(argv[2]);
	/* a SIGHUP that arrives while starting (its default action kills) is
	 * held until the loop handles it: blocked here, in every thread started
	 * from here, and unblocked on this thread once libevent handles it */
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	sigaddset(&hup, SIGUSR1); /* the same for a log reopen */
	pthread_sigmask(SIG_BLOCK, &hup, NULL);
	log_init(&d.log, STDERR_FILENO, LOG_INFO);
	alog_init(&d.alog);
	while ((opt = getopt_long(argc, argv, "c:l:s:thV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 's': control = optarg; break;
		case 'l': listen = optarg; break;
		case 't': test_only = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("hookd %s (plugin ABI %d.%d)\n", HOOKD_VERSION, HOOKD_ABI_MAJOR,
				 HOOKD_ABI_MINOR); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (!config_path || optind != argc) {
		usage(stderr);
		return 1;
	}
	if (test_only)
		return check_config(config_path, listen);
	if (control)
		return ctl_main(control, config_path, listen);

	/* first, before any thread: it takes the variables out of the environment */
	if (notify_init(&d.notify, err, sizeof(err)) < 0)
		log_error(&d.log, "%s", err);

	d.config_path = config_path;
	d.listen = listen;
	if (load_config(config_path, listen, &d.boot, err, sizeof(err)) < 0) {
		log_error(&d.log, "%s", err);
		return 1;
	}
	atomic_store(&d.log.level, d.boot->log_level);
	if ((opt = status_init(&d.status)) < 0) { /* rc stays 1 for every failure below */
		log_error(&d.log, "cannot initialise: %s", strerror(-opt));
		goto out;
	}
	d.status_ready = true;
	if (access_log_apply(&d, d.boot) < 0)
		goto out;
	if (crash_setup(&d, statebuf, sizeof(statebuf), err, sizeof(err)) < 0) {
		log_error(&d.log, "%s", err);
		goto out;
	}
	{
		struct watchdog_options wo = {d.boot->loop_warn_ms, d.boot->loop_abort_ms,
					      STDERR_FILENO, notify_ping_ms(&d.notify),
					      notify_watchdog_tick, &d.notify};
		if (watchdog_start(&wo, &d.watchdog, err, sizeof(err)) < 0) {
			log_error(&d.log, "%s", err);
			goto out;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(&d);
	/* once, before any thread exists (libcurl's global init is not
	 * thread-safe); sync plugins rely on it too */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error(&d.log, "cannot initialise libcurl");
		goto out;
	}
	d.curl_ready = true;
	if (load_config(config_path, listen, &cfg, err, sizeof(err)) < 0) {
		log_error(&d.log, "%s", err);
		goto out;
	}
	if (loader_create(d.boot->runtime_dir, &d.log, dispatch_host_api(), &d.loader, err,
			  sizeof(err)) < 0) {
		log_error(&d.log, "%s", err);
		config_free(cfg);
		goto out;
	}
	if (self_exe(d.exe, sizeof(d.exe)) < 0) {
		log_error(&d.log, "cannot find this program's path (/proc/self/exe): %s",
			  strerror(errno));
		config_free(cfg);
		goto out;
	}
	if (isolate_sup_start(d.exe, &d.log, &d.sup, err, sizeof(err)) < 0) {
		log_error(&d.log, "%s", err);
		config_free(cfg);
		goto out;
	}
	loader_set_isolation(d.loader, d.exe, d.sup, crash_isolate, &d.q);
	names_load(&d.names, d.q.state_dir, &d.log);
	loader_set_owner(d.loader, names_owner, &d.names);
	if (d.boot->metrics && metrics_create(&d.metrics) < 0) {
		log_error(&d.log, "out of memory");
		config_free(cfg);
		goto out;
	}
	if (registry_init(&d.reg) < 0) {
		log_error(&d.log, "cannot initialise the registry");
		config_free(cfg);
		goto out;
	}
	d.reg_ready = true;
	if ((rc = pool_create(d.boot->workers, d.boot->queue, &d.pool)) < 0) {
		log_error(&d.log, "cannot start %u worker threads: %s", d.boot->workers,
			  strerror(-rc));
		rc = 1;
		config_free(cfg);
		goto out;
	}
	pool_set_max_stuck(d.pool, d.boot->max_stuck_workers);
	rc = 1;
	if (!(d.base = event_base_new())) {
		log_error(&d.log, "cannot create the event base");
		config_free(cfg);
		goto out;
	}
	d.reload_ops = (struct reloader_ops){reload_build, reload_apply, &d};
	if (reloader_start(d.base, &d.reload_ops, &d.log, &d.reloader, err, sizeof(err)) < 0) {
		log_error(&d.log, "%s", err);
		config_free(cfg);
		goto out;
	}
	{
		/* the first load is synchronous: nothing is served before it */
		status_load_begin(&d.status);
		struct generation *g = build_generation(&d, cfg, err, sizeof(err));
		if (!g) {
			log_error(&d.log, "%s", err);
			goto out;
		}
		if (!g->lr.nplugins) /* not fatal: a reload may load some later */
			log_error(&d.log, "no plugin loaded from %s: %zu file(s) rejected; no hook "
				  "is served until a reload loads one", g->cfg->plugin_dir,
				  g->lr.nrejects);
		install_generation(&d, g);
		status_load_ok(&d.status, g, true);
	}
	if (start_reactors(&d, err, sizeof(err)) < 0 || start_admin(&d, err, sizeof(err)) < 0) {
		log_error(&d.log, "%s", err);
		goto out;
	}
	if (d.boot->pid_file) {
		if (ctl_pidfile_write(d.boot->pid_file, err, sizeof(err)) < 0) {
			log_error(&d.log, "%s", err);
			goto out;
		}
		d.pid_written = true;
	}
	d.sig_hup = evsignal_new(d.base, SIGHUP, on_signal, &d);
	d.sig_term = evsignal_new(d.base, SIGTERM, on_signal, &d);
	d.sig_int = evsignal_new(d.base, SIGINT, on_signal, &d);
	d.sig_usr1 = evsignal_new(d.base, SIGUSR1, on_signal, &d);
	d.drain_timer = evtimer_new(d.base, on_drain_deadline, &d);
	d.flush_timer = evtimer_new(d.base, on_flush_deadline, &d);
	d.poll_timer = event_new(d.base, -1, EV_PERSIST, on_poll, &d);
	if (!d.sig_hup || !d.sig_term || !d.sig_int || !d.sig_usr1 || !d.drain_timer ||
	    !d.flush_timer || !d.poll_timer || evsignal_add(d.sig_hup, NULL) < 0 ||
	    evsignal_add(d.sig_usr1, NULL) < 0 ||
	    evsignal_add(d.sig_term, NULL) < 0 || evsignal_add(d.sig_int, NULL) < 0) {
		log_error(&d.log, "cannot install signal handlers");
		goto out;
	}
	pthread_sigmask(SIG_UNBLOCK, &hup, NULL); /* a held SIGHUP now reloads (SIGUSR1 reopens) */
	log_info(&d.log, "hookd %s listening on %s%s%s:%u (pid %ld, %u reactor(s), %u workers, "
		 "queue %u)", HOOKD_VERSION, strchr(d.boot->listen_host, ':') ? "[" : "",
		 d.boot->listen_host, strchr(d.boot->listen_host, ':') ? "]" : "",
		 reactor_port(d.reactors[0]), (long)getpid(), reactor_count(&d), d.boot->workers,
		 d.boot->queue);
	notify_ready(&d.notify, "generation %llu loaded; listening on port %u (%u reactor(s))",
		     (unsigned long long)(d.next_gen - 1), reactor_port(d.reactors[0]),
		     reactor_count(&d));
	if (event_base_dispatch(d.base) < 0) {
		log_error(&d.log, "event loop failed");
		goto out;
	}
	rc = 0;
	log_info(&d.log, "stopped");
out:
	if (!teardown(&d))
		_exit(rc); /* see teardown(): no exit handlers with plugin code running */
	return rc;
}
