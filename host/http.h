/*
 * http -- hookd's HTTP routes over its own transport (hsrv.h): request
 * limits, JSON in and out, status codes. It knows nothing of threads or
 * dlopen: a hook call is handed to the dispatcher and answered from its
 * done callback, on the loop thread that owns the server.
 *
 *   POST /hooks/<name>  run the hook's chain   200 | 400 404 405 413 503 504 | plugin's
 * and the admin routes (on the public listener unless admin_listen is set,
 * then only on the admin listener):
 *   GET  /plugins       loaded plugins, rejected files, hooks
 *   GET  /health        liveness, counters, the last reload's outcome
 *   GET  /ready         200 when accepting and every hook can run, else 503
 *                       with the reasons
 *   GET  /metrics       Prometheus text exposition (metrics.h)
 *
 * Every hook request (POST /hooks/..., refused ones too) gets a request id
 * (a valid X-Request-Id from the client, else a new one), echoed in the
 * X-Request-Id header and in error bodies ("request_id"), one access-log
 * line (alog.h) when the log is on, and, when answered 5xx, a warn line in
 * the daemon's log (rate-limited per loop).
 */
#ifndef HOOKD_HTTP_H
#define HOOKD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "alog.h"
#include "dedup.h"
#include "dispatch.h"
#include "hsrv.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"

struct http_server;

/* Which routes a server serves. */
enum http_routes {
	HTTP_ROUTES_ALL,   /* hooks and admin routes (no admin listener) */
	HTTP_ROUTES_HOOKS, /* hooks only (the public listener beside an admin one) */
	HTTP_ROUTES_ADMIN, /* admin routes only (the admin listener) */
};

struct http_options {
	const char *host;  /* address to bind ("0.0.0.0", "::1", "localhost") */
	const char *unix_path; /* non-NULL: listen on this Unix socket instead */
	enum http_routes routes;
	uint16_t port;     /* 0: an ephemeral port */
	size_t max_body;   /* request body limit (a hook's own max_body is looked up) */
	bool reuse_port;   /* SO_REUSEPORT: several loops accept on one port */
	const struct hsrv_limits *limits; /* the transport's (config "http"); NULL: defaults */
	struct hsrv_budget *budget;       /* shared by every server; NULL: none */
	size_t max_json_values;           /* values of one JSON body (0: no bound) */
};

/* What the transport talks to (all borrowed; they outlive the server). */
struct http_deps {
	struct dispatch_env *env;   /* runs the hook calls */
	struct registry *reg;       /* for GET /plugins */
	const struct log *log;
	/* adds the daemon's counters to GET /health's object (any loop) */
	void (*health)(void *arg, cJSON *out);
	void *health_arg;
	/* GET /ready: true when every hook can run, else false with the
	 * reasons appended to `reasons` (an array); the server adds its own
	 * (not accepting). NULL: only the server's own. Any loop. */
	bool (*ready)(void *arg, cJSON *reasons);
	void *ready_arg;
	/* GET /metrics: the sharded families of `metrics` (NULL: none), then
	 * the daemon's own (gauges, process_*) from metrics_cb (any loop) */
	struct metrics *metrics;
	struct metrics_shard *shard; /* this loop's: hookd_calls_total and the call durations */
	void (*metrics_cb)(void *arg, struct metrics_text *out);
	void *metrics_arg;
	const struct alog *alog;    /* the access log (may be off), or NULL */
	struct dedup *dedup;        /* hooks' delivery memory (dedup.h, shared by every
	                             * loop), or NULL: "dedup" is not honoured */
};

/* Bind and start serving on `base`. Returns 0 and *out, or -1 with a
 * reason in err. */
int http_server_create(struct event_base *base, const struct http_options *opt,
		       const struct http_deps *deps, struct http_server **out, char *err,
		       size_t errlen);

/* The port actually bound (useful with port 0). */
uint16_t http_server_port(const struct http_server *srv);

/* Apply a new body limit (reload). */
void http_server_set_max_body(struct http_server *srv, size_t max_body);

/* Stop accepting connections and close idle ones; requests arriving on
 * open connections get 503 with Connection: close. Calls in flight
 * continue, and their connections close after their replies. */
void http_server_stop_accepting(struct http_server *srv);

/* Replies not yet written out to their clients (an estimate: a reply
 * whose connection failed is never counted down). Any thread. */
unsigned http_server_unsent(const struct http_server *srv);

/* Close every connection and free the server. No call may be pending. */
void http_server_free(struct http_server *srv);

#endif
