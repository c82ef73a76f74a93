/*
 * alog -- the access log: one line per hook call, text or JSON, and the
 * request ids that tie a call's lines together.
 *
 * A `struct alog` is owned by main and shared read-only by every loop.
 * Each loop gathers its complete lines in its own batch (alog_batch) and
 * writes them with one write(2) on an O_APPEND descriptor, so lines from
 * several loops never interleave. The descriptor number never changes once the log was
 * first turned on: a reopen (SIGUSR1, logrotate) or a new path (reload)
 * opens the new file and dup2()s it over that number, which swaps the file
 * atomically under a writer (a write in progress ends in the old file, the
 * next one goes to the new). Nothing is ever closed under a writer, so no
 * loop can write into a recycled descriptor. Turning the log off keeps the
 * descriptor open (unused) until alog_fini.
 */
#ifndef HOOKD_ALOG_H
#define HOOKD_ALOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dispatch.h"

#define ALOG_RID_MAX 128     /* longest request id kept from a client */
#define ALOG_LINE_MAX 4096   /* longer lines are cut (steps first); at most ALOG_BATCH */

enum alog_format { ALOG_TEXT = 0, ALOG_JSON = 1 };

struct alog {
	atomic_int on;      /* lines are written */
	atomic_int format;  /* enum alog_format */
	int fd;             /* ours (never stderr's own number); -1 until first on */
	char path[4096];    /* "-" (stderr) or a file; main's thread only */
};

/* What one line says about one call. Every pointer is borrowed. */
struct alog_entry {
	struct timespec time;     /* CLOCK_REALTIME when answered */
	const char *rid;          /* request id */
	const char *client;       /* peer address, or NULL */
	const char *method;       /* "POST", ... */
	const char *path;         /* request path (without the query) */
	const char *hook;         /* hook name, or NULL (not a valid name) */
	int status;               /* HTTP status (499: the client went away) */
	int64_t duration_ns;      /* request handed to hookd to answer handed to evhttp */
	size_t bytes_in, bytes_out; /* request body, reply body */
	uint64_t generation;      /* 0: none */
	const char *outcome;      /* "ok", "step_failed", "no_hook", ... */
	const char *plugin;       /* the plugin that failed or held the call, or NULL */
	const struct dispatch_step_rec *steps;
	unsigned nsteps, steps_more;
};

/* A log that is off. */
void alog_init(struct alog *al);

/* Main's thread: point the log at `path` ("-": stderr; NULL: off) in
 * `format`. Opens the file (O_WRONLY|O_APPEND|O_CREAT, 0640) before
 * switching; on failure returns -1 with a reason in err and changes
 * nothing. Returns 0. */
int alog_configure(struct alog *al, const char *path, enum alog_format format, char *err,
		   size_t errlen);

/* Main's thread: open the file again at its path (after logrotate renamed
 * it) and switch every writer to it. 0 (also when off or on stderr), or -1
 * with a reason in err (the old file stays in use). */
int alog_reopen(struct alog *al, char *err, size_t errlen);

/* Close the descriptor; no writer may be left. */
void alog_fini(struct alog *al);

/* Whether lines are written. Any thread. */
static inline bool alog_enabled(const struct alog *al)
{
	/* acquire: pairs with the store that turned it on after setting fd */
	return al && atomic_load_explicit(&al->on, memory_order_acquire);
}

/* Write e's line (if the log is on). Any thread; one write(2). */
void alog_write(const struct alog *al, const struct alog_entry *e);

/* The text of the last second formatted (one per loop: gmtime_r and
 * strftime once a second, not once a line). */
struct alog_tcache {
	time_t sec;
	char text[24];    /* "YYYY-MM-DDTHH:MM:SS", "" when empty */
};

/*
 * A loop's batch of lines: complete lines gathered during one pass of the
 * loop and written with one write(2) of at most ALOG_BATCH bytes. A write
 * of whole lines on an O_APPEND file, or of at most PIPE_BUF bytes on a
 * pipe (stderr under systemd), is never interleaved with another loop's,
 * so lines stay whole; one write(2) per line cost ~5 us on the development
 * VM, an eighth of a whole echo call. Owned by one loop thread.
 */
#define ALOG_BATCH 4096 /* PIPE_BUF */

struct alog_batch {
	const struct alog *al;
	struct alog_tcache tcache;
	size_t len;
	char buf[ALOG_BATCH];
};

void alog_batch_init(struct alog_batch *b, const struct alog *al);

/* Add e's line (if the log is on); a batch that cannot take it is written
 * first. Returns true when the batch was empty before: the caller arranges
 * for alog_batch_flush to run once the loop's current pass is done. */
bool alog_batch_add(struct alog_batch *b, const struct alog_entry *e);

/* Write what the batch holds (one write(2)). */
void alog_batch_flush(struct alog_batch *b);


/* Format e's line (with its newline) into buf[0..cap); returns its length
 * (a line that does not fit is cut: steps first, then the end). `cache`
 * may be NULL. Pure but for the cache. Durations are printed in ms with
 * three decimals (microseconds, cut, not rounded). */
size_t alog_format_line(const struct alog_entry *e, enum alog_format format,
			struct alog_tcache *cache, char *buf, size_t cap);

/* A client's X-Request-Id is kept when it is 1..ALOG_RID_MAX characters of
 * [A-Za-z0-9._:-]. Pure. */
bool alog_rid_valid(const char *s);

/* Make request id `n` of a loop whose random prefix is `prefix` (16 hex
 * digits, alog_rid_prefix) into buf (at least 40 bytes): "PREFIX-N" in hex. */
void alog_rid_make(char *buf, size_t len, const char *prefix, uint64_t n);

/* 16 hex digits from getrandom (a clock and pid mix if it fails): unique
 * per loop and across restarts. buf: at least 17 bytes. */
void alog_rid_prefix(char *buf, size_t len);

#endif
