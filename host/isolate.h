/*
 * isolate -- the third executor beside the worker pool and the loop: a
 * plugin configured `isolate` runs in supervised child processes (runner.c,
 * the same binary started with --runner), never in hookd's own.
 *
 * One supervisor thread (with its own event base) owns every child: it
 * spawns them (posix_spawn of /proc/self/exe), reads their results, reaps
 * them (pidfd), respawns a crashed one with backoff and quarantines a
 * plugin that crashes `quarantine_after` times within `quarantine_window_s`.
 * Loop threads submit requests and cancel them; a request's result comes
 * back on the submitter's loop through its pool_job (job.sink), exactly
 * once, like a worker's.
 *
 * Lifetimes: a group lives as long as its plugin (plugin.h: plugin->iso);
 * isolate_group_free hands it to the supervisor, which closes the children
 * (EOF: they run fini and exit; SIGKILL after a grace period) and frees it.
 */
#ifndef HOOKD_ISOLATE_H
#define HOOKD_ISOLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "pool.h"

struct isolate_sup;
struct isolate_group;

/* How an isolated request ended. */
enum isolate_end {
	ISOLATE_RESULT,      /* the child answered: outcome, plugin_status, error, output */
	ISOLATE_CRASHED,     /* the child died while running it (error names the signal) */
	ISOLATE_KILLED,      /* the child was killed: a sync call in it passed its deadline */
	ISOLATE_QUARANTINED, /* the plugin is quarantined (error says why, since when) */
	ISOLATE_OVERLOADED,  /* no child can take it: too many requests waiting */
	ISOLATE_CANCELLED,   /* isolate_cancel took it back */
	ISOLATE_SHUTDOWN,    /* the group was closed */
};

/* One call of an isolated plugin. The caller fills job.done / job.sink,
 * hook, timeout_ms and input, and must not touch the rest until job.done
 * runs on its loop. */
struct isolate_req {
	struct pool_job job;     /* posted to job.sink when the request is over */
	const char *hook;        /* borrowed until job.done */
	uint32_t timeout_ms;     /* the child's own deadline for the call */
	char *input;             /* JSON text, owned by the request (freed once sent) */
	size_t input_len;
	char *inbound;           /* the request's wire form (inbound_encode), owned like
	                          * input, or NULL */
	size_t inbound_len;
	/* results, valid in job.done */
	enum isolate_end end;
	int outcome;             /* ISOLATE_RESULT: the child's enum dispatch_outcome */
	int plugin_status;       /* ISOLATE_RESULT, step failed: the plugin's status */
	char *error;             /* owned: the reason, or NULL */
	cJSON *output;           /* owned: ISOLATE_RESULT, outcome ok */
	struct reply *reply;     /* owned: ISOLATE_RESULT, outcome ok: what the step set
	                          * of the reply, or NULL */
	pid_t pid;               /* the child that ran it (0: none) */
	/* private to isolate.c */
	uint64_t id;
	struct isolate_child *child;
	struct isolate_req *next, *prev;
};

/* Free the request's results (error, output, input). */
void isolate_req_clear(struct isolate_req *r);

/* Start the supervisor thread; `exe` is the hookd binary children run.
 * Returns 0 or -1 with err. */
int isolate_sup_start(const char *exe, const struct log *log, struct isolate_sup **out,
		      char *err, size_t errlen);

/* Stop it: every group must have been freed. Kills children left. */
void isolate_sup_stop(struct isolate_sup *sup);

struct isolate_options {
	const char *name;        /* plugin name (copied) */
	const char *file;        /* its file in the plugin folder (copied) */
	const char *copy_path;   /* the private copy the children load (copied) */
	uint64_t generation;
	bool sync;               /* a sync plugin: a call past its deadline kills its child */
	unsigned procs;          /* children (>= 1) */
	unsigned queue;          /* requests waiting for a child at most */
	unsigned quarantine_after;
	uint32_t quarantine_window_s;
	uint64_t rlimit_as;      /* 0: none */
	uint32_t rlimit_cpu;     /* 0: none */
	const char *init;        /* WIRE_INIT payload: JSON text (copied) */
	uint32_t start_timeout_ms; /* for the children to load and init */
};

/* Start `o->procs` children and wait until they are ready. Returns 0 and
 * *out, or -1 with the reason in err (the child's own words when it could
 * not load or init the plugin, or the signal it died of). Any thread but
 * the supervisor's. */
int isolate_group_create(struct isolate_sup *sup, const struct isolate_options *o,
			 struct isolate_group **out, char *err, size_t errlen);

/* Close the group (see above). No request may be outstanding. Any thread. */
void isolate_group_free(struct isolate_group *g);

/* Send `r` to a child. Returns 0 (r's job.done will run), or, with r
 * untouched but its end set: -EPERM quarantined, -EAGAIN overloaded (the
 * caller answers at once). Any thread. */
int isolate_submit(struct isolate_group *g, struct isolate_req *r);

/* Take `r` back (client gone, deadline, shutdown): it ends ISOLATE_CANCELLED
 * at once unless its result is already on the way. `kill_child`: a sync call
 * past its deadline -- the child running it is killed and replaced (every
 * other call in that child ends ISOLATE_KILLED). Any thread. */
void isolate_cancel(struct isolate_group *g, struct isolate_req *r, bool kill_child);

/* The INIT frame for plugin `name`'s processes (caller frees): its private
 * copy, its section, and the settings of cfg a runner needs. NULL: out of
 * memory. */
struct config;
char *isolate_init_text(const struct config *cfg, const char *name, const char *file,
			const char *copy, uint64_t generation, const char *const *hooks);

/* Is the plugin quarantined? If so and why != NULL, why gets the reason.
 * Any thread. */
bool isolate_quarantined(struct isolate_group *g, char *why, size_t len);

/* Add "isolated": {...} (pids, crashes, quarantine) to a GET /plugins entry. */
void isolate_describe(struct isolate_group *g, cJSON *o);

#endif
