/*
 * main -- command line, start-up and shutdown order, signals.
 *
 * Start: config, loader (private dir), worker pool, event base, first
 * generation, dispatcher, HTTP listener, signal events. Signals arrive as
 * libevent events on the loop thread (workers block them all), so no work
 * ever happens in a raw handler:
 *   SIGHUP           re-read the config, rescan the plugin folder, swap in
 *                    the new generation (or keep the old one, logged).
 *   SIGTERM, SIGINT  stop accepting, let calls in flight finish up to
 *                    drain_ms, answer the rest 503, unload every plugin,
 *                    exit 0. A second signal skips the wait.
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
#include <sys/types.h>
#include <dirent.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "config.h"
#include "dispatch.h"
#include "fetch.h"
#include "http.h"
#include "loader.h"
#include "log.h"
#include "pool.h"
#include "registry.h"
#include "version.h"

#define SHUTDOWN_FLUSH_MS 2000 /* after the drain: time left to write replies out */

struct daemon {
	struct log log;
	const char *config_path;
	struct config *boot;     /* settings that need a restart: listen, workers, queue */
	struct event_base *base;
	struct pool *pool;
	struct loader *loader;
	struct registry reg;
	bool reg_ready;
	struct fetch_engine *fetch;
	bool curl_ready;
	struct dispatch_env *env;
	struct http_server *http;
	struct event *sig_hup, *sig_term, *sig_int, *drain_timer, *flush_timer;
	uint64_t next_gen;
	int stopping;            /* 0 running, 1 draining, 2 flushing replies */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hookd [-t] -c FILE\n"
		"       hookd -V | -h\n"
		"\n"
		"Serve compiled plugins as HTTP hooks (POST /hooks/<name>).\n"
		"\n"
		"  -c FILE  the JSON configuration file\n"
		"  -t       check the configuration and that the plugin folder is readable,\n"
		"           print the result, exit 0 (valid) or 1 (not)\n"
		"  -V       print the version and exit\n"
		"  -h       print this help and exit\n"
		"\n"
		"Runs in the foreground and logs to stderr.\n"
		"Signals: SIGHUP reloads the configuration and the plugin folder;\n"
		"         SIGTERM/SIGINT finish calls in flight (up to drain_ms) and exit.\n");
}

/* Scan the plugin folder against the current generation and make the result
 * current. Takes cfg. Returns 0 or -1 (err says why; the current generation
 * stays). */
static int load_generation(struct daemon *d, struct config *cfg, char *err, size_t errlen)
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
		return -1;
	}
	if (generation_build(cfg, &lr, id, &d->log, &g) < 0) {
		snprintf(err, errlen, "out of memory building generation %llu",
			 (unsigned long long)id);
		return -1;
	}
	d->next_gen++;
	log_info(&d->log, "generation %llu: %zu plugin(s), %zu hook(s), %zu file(s) rejected",
		 (unsigned long long)g->id, g->lr.nplugins, g->nhooks, g->lr.nrejects);
	registry_swap(&d->reg, g);
	return 0;
}

static void reload(struct daemon *d)
{
	struct generation *cur = registry_acquire(&d->reg);
	unsigned long long keep = cur ? (unsigned long long)cur->id : 0;
	struct config *cfg;
	char err[1024];

	generation_release(cur);
	log_info(&d->log, "SIGHUP: reloading %s", d->config_path);
	if (config_load(d->config_path, &cfg, err, sizeof(err)) < 0) {
		log_error(&d->log, "reload failed: %s; still serving generation %llu", err, keep);
		return;
	}
	if (strcmp(cfg->listen, d->boot->listen) != 0)
		log_warn(&d->log, "reload: listen changed to %s: takes effect at restart; still "
			 "listening on %s", cfg->listen, d->boot->listen);
	if (cfg->workers != d->boot->workers || cfg->queue != d->boot->queue)
		log_warn(&d->log, "reload: workers/queue changed to %u/%u: takes effect at restart; "
			 "still %u/%u", cfg->workers, cfg->queue, d->boot->workers, d->boot->queue);
	/* applied only with the generation: a failed reload changes nothing */
	int level = cfg->log_level;
	size_t max_body = cfg->max_body;
	if (load_generation(d, cfg, err, sizeof(err)) < 0) {
		log_error(&d->log, "reload failed: %s; still serving generation %llu", err, keep);
		return;
	}
	atomic_store(&d->log.level, level);
	http_server_set_max_body(d->http, max_body);
}

static void finish_loop_if_done(struct daemon *d)
{
	struct dispatch_stats st;

	if (!d->stopping)
		return;
	dispatch_stats(d->env, &st);
	if (st.pending || st.live)
		return;
	if (d->stopping == 1) {
		/* every call answered and released: let the replies go out */
		d->stopping = 2;
		event_del(d->drain_timer);
		struct timeval tv = {SHUTDOWN_FLUSH_MS / 1000, (SHUTDOWN_FLUSH_MS % 1000) * 1000};
		event_add(d->flush_timer, &tv);
	}
	if (http_server_unsent(d->http) == 0)
		event_base_loopexit(d->base, NULL);
}

static void on_watch(void *arg)
{
	finish_loop_if_done(arg);
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct dispatch_stats st;

	(void)fd;
	(void)what;
	dispatch_stats(d->env, &st);
	log_warn(&d->log, "drain deadline passed with %u call(s) unanswered: answering 503",
		 st.pending);
	dispatch_cancel_all(d->env, 503, "server shutting down");
	dispatch_stats(d->env, &st);
	if (st.live) {
		/* plugins still hold steps (a sync plugin still running, an async one
		 * that has not finished its cancelled call): stop waiting for them */
		log_warn(&d->log, "%u call(s) still held by plugins; their code stays loaded",
			 st.live);
		d->stopping = 2;
		struct timeval tv = {SHUTDOWN_FLUSH_MS / 1000, (SHUTDOWN_FLUSH_MS % 1000) * 1000};
		event_add(d->flush_timer, &tv);
	}
	finish_loop_if_done(d);
}

static void on_flush_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	event_base_loopexit(d->base, NULL);
}

static void shutdown_begin(struct daemon *d, int sig)
{
	struct generation *g = registry_acquire(&d->reg);
	uint32_t drain_ms = g ? g->cfg->drain_ms : d->boot->drain_ms;
	struct dispatch_stats st;

	generation_release(g);
	if (d->stopping) {
		log_warn(&d->log, "%s again: not waiting any longer", strsignal(sig));
		on_drain_deadline(-1, 0, d);
		return;
	}
	d->stopping = 1;
	http_server_stop_accepting(d->http);
	dispatch_stats(d->env, &st);
	log_info(&d->log, "%s: shutting down; %u call(s) in flight, waiting up to %u ms",
		 strsignal(sig), st.pending, drain_ms);
	dispatch_set_watch(d->env, on_watch, d);
	http_server_set_flushed_cb(d->http, on_watch, d);
	struct timeval tv = {drain_ms / 1000, (drain_ms % 1000) * 1000};
	event_add(d->drain_timer, &tv);
	finish_loop_if_done(d);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)what;
	if (sig == SIGHUP) {
		if (!d->stopping)
			reload(d);
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

static int check_config(const char *path)
{
	struct config *cfg;
	char err[1024];
	struct dirent *de;
	DIR *dir;
	size_t n = 0;

	if (config_load(path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "hookd: %s\n", err);
		return 1;
	}
	dir = opendir(cfg->plugin_dir);
	if (!dir) {
		fprintf(stderr, "hookd: %s: plugin_dir %s: cannot open: %s\n", path,
			cfg->plugin_dir, strerror(errno));
		config_free(cfg);
		return 1;
	}
	errno = 0;
	while ((de = readdir(dir))) {
		size_t l = strlen(de->d_name);
		n += de->d_name[0] != '.' && l > 3 && strcmp(de->d_name + l - 3, ".so") == 0;
	}
	if (errno) {
		fprintf(stderr, "hookd: %s: plugin_dir %s: cannot read: %s\n", path,
			cfg->plugin_dir, strerror(errno));
		closedir(dir);
		config_free(cfg);
		return 1;
	}
	closedir(dir);
	printf("hookd: %s: configuration OK (listen %s, plugin_dir %s with %zu plugin file(s), "
	       "%u workers, queue %u, %zu hook setting(s))\n",
	       path, cfg->listen, cfg->plugin_dir, n, cfg->workers, cfg->queue, cfg->nhooks);
	config_free(cfg);
	return 0;
}

/* Release everything in reverse order of creation. Returns false when a
 * plugin still runs code for a call (drain deadline passed): nothing of it
 * may be unmapped and its worker may never come back, so the caller exits
 * without running destructors. */
static bool teardown(struct daemon *d)
{
	struct dispatch_stats st = {0};

	if (d->env)
		dispatch_stats(d->env, &st);
	if (d->http)
		http_server_free(d->http);
	if (st.live) {
		/* a plugin is still running code for a call: never unmap it, and
		 * never join a worker that may not come back */
		if (d->reg_ready)
			registry_swap(&d->reg, NULL);
		log_warn(&d->log, "exiting with %u call(s) still held by plugins", st.live);
		return false;
	}
	if (d->pool)
		pool_destroy(d->pool);
	if (d->env)
		dispatch_env_free(d->env);
	if (d->reg_ready)
		registry_destroy(&d->reg); /* last generation: fini every plugin */
	fetch_engine_free(d->fetch);
	if (d->curl_ready)
		curl_global_cleanup();
	loader_destroy(d->loader);
	if (d->sig_hup)
		event_free(d->sig_hup);
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->drain_timer)
		event_free(d->drain_timer);
	if (d->flush_timer)
		event_free(d->flush_timer);
	if (d->base)
		event_base_free(d->base);
	config_free(d->boot);
	return true;
}

int main(int argc, char **argv)
{
	struct daemon d = {.next_gen = 1};
	const char *config_path = NULL;
	bool test_only = false;
	struct config *cfg = NULL;
	char err[1024];
	int opt, rc = 1;

	log_init(&d.log, STDERR_FILENO, LOG_INFO);
	while ((opt = getopt(argc, argv, "c:thV")) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
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
		return check_config(config_path);

	d.config_path = config_path;
	if (config_load(config_path, &d.boot, err, sizeof(err)) < 0) {
		log_error(&d.log, "%s", err);
		return 1;
	}
	atomic_store(&d.log.level, d.boot->log_level);
	signal(SIGPIPE, SIG_IGN);
	/* once, before any thread exists (libcurl's global init is not
	 * thread-safe); sync plugins rely on it too */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error(&d.log, "cannot initialise libcurl");
		goto out;
	}
	d.curl_ready = true;
	raise_fd_limit(&d);
	if (config_load(config_path, &cfg, err, sizeof(err)) < 0) {
		log_error(&d.log, "%s", err);
		goto out;
	}
	if (loader_create(d.boot->runtime_dir, &d.log, dispatch_host_api(), &d.loader, err,
			  sizeof(err)) < 0) {
		log_error(&d.log, "%s", err);
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
	rc = 1;
	if (!(d.base = event_base_new())) {
		log_error(&d.log, "cannot create the event base");
		config_free(cfg);
		goto out;
	}
	if (fetch_engine_create(d.base, &d.log, &d.fetch) < 0) {
		log_error(&d.log, "cannot create the outbound HTTP engine");
		config_free(cfg);
		goto out;
	}
	if (dispatch_env_create(d.base, d.pool, &d.reg, d.fetch, &d.log, &d.env) < 0) {
		log_error(&d.log, "cannot create the dispatcher");
		config_free(cfg);
		goto out;
	}
	if (load_generation(&d, cfg, err, sizeof(err)) < 0) {
		log_error(&d.log, "%s", err);
		goto out;
	}
	struct http_options ho = {d.boot->listen_host, d.boot->listen_port, d.boot->max_body};
	struct http_deps hd = {d.env, &d.reg, d.pool, d.fetch, &d.log};
	if (http_server_create(d.base, &ho, &hd, &d.http, err, sizeof(err)) < 0) {
		log_error(&d.log, "%s", err);
		goto out;
	}
	d.sig_hup = evsignal_new(d.base, SIGHUP, on_signal, &d);
	d.sig_term = evsignal_new(d.base, SIGTERM, on_signal, &d);
	d.sig_int = evsignal_new(d.base, SIGINT, on_signal, &d);
	d.drain_timer = evtimer_new(d.base, on_drain_deadline, &d);
	d.flush_timer = evtimer_new(d.base, on_flush_deadline, &d);
	if (!d.sig_hup || !d.sig_term || !d.sig_int || !d.drain_timer || !d.flush_timer ||
	    evsignal_add(d.sig_hup, NULL) < 0 || evsignal_add(d.sig_term, NULL) < 0 ||
	    evsignal_add(d.sig_int, NULL) < 0) {
		log_error(&d.log, "cannot install signal handlers");
		goto out;
	}
	log_info(&d.log, "hookd %s listening on %s%s%s:%u (pid %ld, %u workers, queue %u)",
		 HOOKD_VERSION, strchr(d.boot->listen_host, ':') ? "[" : "", d.boot->listen_host,
		 strchr(d.boot->listen_host, ':') ? "]" : "", http_server_port(d.http),
		 (long)getpid(), d.boot->workers, d.boot->queue);
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
