/*
 * metrics -- counters and histograms for GET /metrics (Prometheus text
 * exposition 0.0.4). A leaf: every module may count, this one includes
 * nothing of dispatch, transport or plugins.
 *
 * Counting never locks and never allocates. Every thread that counts owns
 * a *shard* (one per event loop) and is its only writer: an increment is
 * a relaxed load and a relaxed store of its own cache lines, so a scrape
 * on another thread reads them race-free and sums the shards.
 *
 * Label values are hook and plugin names from the config (bounded): each
 * name is *interned* once, off the hot path (when a generation is built),
 * into a small integer slot that the hot path indexes with. A name keeps
 * its slot for the life of the process (across reloads), so a counter
 * never goes back. Slot 0 of each namespace is the fixed "(unknown)" label
 * (a hook nobody configured: a client cannot create label values).
 *
 * Storage per shard grows by chunks of METRICS_CHUNK slots. A chunk is
 * allocated by metrics_intern() (or metrics_shard_new()) for every shard
 * and published with a release store BEFORE the slot is returned, hence
 * before any generation using the slot is published: the hot path finds it
 * with one acquire load, and a scraper sees either NULL (nothing counted
 * yet) or a zeroed chunk. Chunks and shards are freed only by
 * metrics_free().
 */
#ifndef HOOKD_METRICS_H
#define HOOKD_METRICS_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_CHUNK 32            /* slots per chunk */
#define METRICS_CHUNKS 64           /* chunks per namespace: 2048 names */
#define METRICS_MAX_NAMES (METRICS_CHUNK * METRICS_CHUNKS)
#define METRICS_MAX_SHARDS 256
#define METRICS_BUCKETS 18          /* 17 bounds + +Inf */
#define METRICS_CODES 16            /* distinct status codes per hook and shard */
#define METRICS_UNKNOWN 0           /* the slot of "(unknown)" */
#define METRICS_UNKNOWN_NAME "(unknown)"

enum metrics_ns { METRICS_HOOK, METRICS_PLUGIN, METRICS_NS };

/* How a plugin's step ended (hookd_plugin_calls_total{outcome}). */
enum metrics_outcome {
	METRICS_OK,       /* produced an output */
	METRICS_FAILED,   /* failed the call, returned nothing, host error */
	METRICS_TIMEOUT,  /* the call's deadline passed in the step */
	METRICS_CRASHED,  /* an isolated plugin's process died in the step */
	METRICS_SKIPPED,  /* failed (any way) and skipped: failure_mode "open" */
	METRICS_REFUSED,  /* never ran: admission (max_in_flight), full worker
	                   * queue, quarantine, too many held calls */
	METRICS_OUTCOMES
};

/* How a plugin's outbound request ended (hookd_fetch_requests_total). */
enum metrics_fetch {
	METRICS_FETCH_OK,         /* a response below 400 */
	METRICS_FETCH_HTTP_ERROR, /* a response of 400 or more */
	METRICS_FETCH_TIMEOUT,    /* HOOKD_ETIMEDOUT */
	METRICS_FETCH_FAILED,     /* any other transfer error */
	METRICS_FETCH_OUTCOMES
};

const char *metrics_outcome_name(enum metrics_outcome o);
const char *metrics_fetch_name(enum metrics_fetch o);

/* One fixed-bucket histogram; bucket[i] counts observations in
 * (bound[i-1], bound[i]] (not cumulative: the scrape accumulates). */
struct metrics_hist {
	atomic_ullong bucket[METRICS_BUCKETS];
	atomic_ullong sum_ns;
};

/* The upper bounds, in nanoseconds (METRICS_BUCKETS - 1 of them). */
extern const int64_t metrics_bounds_ns[METRICS_BUCKETS - 1];

struct metrics;
struct metrics_shard;

/* Create an empty registry (slot 0 of each namespace interned). Returns 0
 * and *out (free with metrics_free), or -ENOMEM. */
int metrics_create(struct metrics **out);

/* Free m, its names, shards and chunks. No thread may count or scrape. */
void metrics_free(struct metrics *m);

/* The slot of `name` in `ns`, interning it (and allocating its chunk in
 * every shard) the first time. Off the hot path: takes m's lock and may
 * allocate. Returns the slot, or METRICS_UNKNOWN when m is NULL, the name
 * is NULL, or the namespace is full or out of memory. `name` is copied. */
unsigned metrics_intern(struct metrics *m, enum metrics_ns ns, const char *name);

/* A new shard for the thread that will count into it (event loop `id`:
 * its hookd_loop_lag_seconds{loop="id"}). Owned by m. Any thread, off the
 * hot path. Returns NULL (counting into NULL is a no-op) when m is NULL or
 * on failure. */
struct metrics_shard *metrics_shard_new(struct metrics *m, unsigned id);

/* ---- the hot path: only the shard's owner thread; s may be NULL ---- */

/* A hook call answered with HTTP `code` after `ns` nanoseconds. */
void metrics_call(struct metrics_shard *s, unsigned hook, int code, int64_t ns);
/* One step of plugin `plugin` ended with `o` after `ns` nanoseconds. */
void metrics_plugin_step(struct metrics_shard *s, unsigned plugin, enum metrics_outcome o,
			 int64_t ns);
/* A step of `plugin` refused before it ran (admission control). */
void metrics_plugin_refused(struct metrics_shard *s, unsigned plugin);
/* Async code of `plugin` held the loop for `ns` nanoseconds. */
void metrics_plugin_loop(struct metrics_shard *s, unsigned plugin, int64_t ns);
/* An outbound request of `plugin` ended with `o` after `ns`. */
void metrics_fetch(struct metrics_shard *s, unsigned plugin, enum metrics_fetch o, int64_t ns);
/* The loop ran a timer `ns` nanoseconds late. */
void metrics_loop_lag(struct metrics_shard *s, int64_t ns);
/* A sync job waited `ns` nanoseconds for a worker. */
void metrics_queue_wait(struct metrics_shard *s, int64_t ns);

/* Add one observation to h (its owner thread only). */
void metrics_hist_observe(struct metrics_hist *h, int64_t ns);

/* ---- the scrape: any thread ---- */

/* A growing text buffer. After an allocation failure `oom` is set and
 * appends are dropped. */
struct metrics_text {
	char *data; /* NUL-terminated; owned (metrics_text_free) */
	size_t len, cap;
	bool oom;
};

void metrics_text_printf(struct metrics_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append `v` escaped as a label value (\\, \", \n), without quotes. */
void metrics_text_escape(struct metrics_text *t, const char *v);
/* Append "# HELP name help\n# TYPE name type\n". */
void metrics_text_family(struct metrics_text *t, const char *name, const char *type,
			 const char *help);
void metrics_text_free(struct metrics_text *t);

/* Append every sharded family (calls, plugins, fetches, loop lag, queue
 * wait), summed over the shards, in the text format. */
void metrics_render(struct metrics *m, struct metrics_text *t);

/* Append the standard process_* families read from /proc/self now
 * (resident and virtual memory, open and max fds, CPU seconds, start
 * time); a file that cannot be read leaves its families out. */
void metrics_render_process(struct metrics_text *t);

#endif
