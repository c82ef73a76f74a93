/*
 * reactor -- one event loop: its thread, event base, outbound-HTTP engine,
 * dispatcher and HTTP server, accepting on the shared port (SO_REUSEPORT
 * when there are several). All reactors share the worker pool and the
 * registry; a call stays on the reactor that accepted it.
 *
 * Reactor 0 is built on the caller's thread and runs when the caller runs
 * its event base (main does: signals are handled there); the others run on
 * threads of their own that block every signal. Other threads talk to a
 * reactor only through reactor_send(), which rides the dispatcher's
 * wake-up, and read its counters, which are atomic.
 */
#ifndef HOOKD_REACTOR_H
#define HOOKD_REACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "alog.h"
#include "dispatch.h"
#include "fetch.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "registry.h"

struct reactor;

/* What every reactor uses; owned by main, outlives the reactors. */
struct reactor_shared {
	struct pool *pool;
	struct registry *reg;
	const struct log *log;
	const char *host;       /* listen address */
	size_t max_body;        /* initial request body limit */
	bool reuse_port;        /* more than one reactor */
	struct watchdog *watchdog; /* names plugin code holding a loop, or NULL */
	unsigned loop_warn_ms;  /* log plugin code that held a loop this long (0: off) */
	void (*health)(void *arg, cJSON *out); /* GET /health counters */
	void *health_arg;
	bool (*ready)(void *arg, cJSON *reasons); /* GET /ready (http.h) */
	void *ready_arg;
	enum http_routes routes; /* HTTP_ROUTES_HOOKS when an admin listener serves the rest */
	struct metrics *metrics;  /* each reactor counts into a shard of it, or NULL */
	void (*metrics_cb)(void *arg, struct metrics_text *out); /* GET /metrics: the daemon's */
	void *metrics_arg;
	const struct alog *alog; /* the access log (may be off), or NULL */
	struct dedup *dedup;     /* hooks' delivery memory, shared, or NULL */
	const struct hsrv_limits *limits; /* the transport's (config "http") */
	struct hsrv_budget *budget;       /* requests in flight, shared by every loop */
	size_t max_json_values;           /* values of one JSON body (0: no bound) */
};

enum reactor_cmd {
	REACTOR_DRAIN,    /* stop accepting; calls in flight go on */
	REACTOR_CANCEL,   /* answer every pending call 503 (drain deadline) */
	REACTOR_EXIT,     /* leave the event loop */
	REACTOR_MAX_BODY, /* apply the body limit last given to reactor_set_max_body */
	REACTOR_CMDS
};

struct reactor_counters {
	unsigned pending;  /* calls not answered */
	unsigned live;     /* calls a plugin still holds */
	unsigned unsent;   /* replies not yet written out */
	struct dispatch_stats calls;
	struct fetch_stats fetch;
};

/* Create reactor `id` listening on `port` (0: ephemeral; reactors after the
 * first take the first one's port). id 0 uses `base` and the calling
 * thread; the others ignore `base`, start a thread and return once it
 * serves. Returns 0, or -1 with a reason in err. */
int reactor_create(unsigned id, const struct reactor_shared *sh, struct event_base *base,
		   uint16_t port, struct reactor **out, char *err, size_t errlen);

uint16_t reactor_port(const struct reactor *r);

/* Have the reactor run `cmd` on its own thread: now when called from that
 * thread, else soon. Any thread; several sends of one command before it
 * runs count as one. */
void reactor_send(struct reactor *r, enum reactor_cmd cmd);

/* False once the reactor ran REACTOR_DRAIN (its listener is closed). */
bool reactor_accepting(const struct reactor *r);

/* Set the body limit (applied on the reactor's thread). Any thread. */
void reactor_set_max_body(struct reactor *r, size_t max_body);

/* Counters. Any thread. */
void reactor_counters(const struct reactor *r, struct reactor_counters *c);

/* Wait until the reactor's loop has ended (after REACTOR_EXIT). For
 * reactor 0, a no-op: its loop is the caller's. */
void reactor_join(struct reactor *r);

/* Close the reactor's connections (its loop has ended). */
void reactor_close(struct reactor *r);

/* Free what is left; the pool must be gone (no worker posts any more) and
 * no plugin may still hold a call of this reactor. */
void reactor_free(struct reactor *r);

#endif
