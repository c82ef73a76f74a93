/*
 * hookd.h -- the whole contract between hookd and a plugin.
 *
 * A plugin is a shared object that exports exactly one symbol, its
 * descriptor, `hookd_plugin` (define it with HOOKD_PLUGIN_SYNC /
 * HOOKD_PLUGIN_ASYNC, or fill one by hand after HOOKD_DESCRIPTOR). The
 * host reads the descriptor's magic and ABI before anything else, then
 * calls init() once, the entry point of the plugin's mode once per hook
 * call, and fini() once when the last call that could reach this copy of
 * the code has ended.
 *
 * Build a plugin (one line, nothing of the host is linked; add -lcurl if the
 * plugin uses libcurl itself):
 *   cc -std=c11 -D_GNU_SOURCE -Wall -Werror=implicit-function-declaration \
 *      -O2 -fPIC -shared -fvisibility=hidden -Wl,--no-undefined \
 *      -I/usr/local/include -o my.so my.c -lcjson
 * -std=c11 alone hides strdup, clock_gettime, nanosleep...: an implicitly
 * declared strdup returns an int, the pointer is truncated and the plugin
 * crashes the daemon. -D_GNU_SOURCE declares them; the -Werror makes a
 * missing declaration a compile error instead of a warning.
 * C++ plugins: the same macros, compiled as C++20 (designated initializers):
 *   g++ -std=c++20 -Wall -O2 -fPIC -shared -fvisibility=hidden \
 *      -fvisibility-inlines-hidden -Wl,--no-undefined ... -lcjson
 * (the last flag keeps std:: inline template code out of the exports;
 * tests/fixtures/cxx_plugin.cc). Entry points are called from C: no
 * exception may leave them.
 *
 * JSON values are cJSON trees (Debian package libcjson-dev). Ownership of
 * every tree that crosses the boundary is stated at each function below.
 * The host prints numbers so that they parse back to the same double. An
 * integer written with more than 15 digits keeps its original text in the
 * number node's valuestring and is printed back digit for digit unless its
 * value changes (cJSON_SetNumberValue); valuedouble holds the nearest
 * double. So never test `valuestring != NULL` to mean "is a string": use
 * cJSON_IsString.
 *
 * Threads:
 *   - SYNC plugins: call_sync runs on a worker thread of the host's pool,
 *     possibly several at once on different threads. It may block.
 *   - ASYNC plugins: call_async and every callback the host makes for them
 *     (timers, cancel) run on an event-loop thread. They must never block.
 *   - init and fini run on the host's loader thread (at start-up, init on
 *     its main thread before anything is served), never on an event loop,
 *     so they may block: a slow init delays only its own reload. Never
 *     concurrently for the same loaded copy; fini runs after every call of
 *     that copy has ended. A
 *     plugin that started threads of its own must stop them in fini: its code
 *     is unmapped right after fini returns (see fini below). On a reload the
 *     new copy's init may run while the old copy still serves calls or runs
 *     its fini on another thread: process-wide resources (ports, lock files)
 *     must allow two copies at once.
 *
 * ABI rules (the compatibility window):
 *   - HOOKD_ABI_MAJOR must match the host's exactly. A plugin of another
 *     major is refused, with a log line naming the file, its ABI and the
 *     host's.
 *   - A plugin built against the host's HOOKD_ABI_MINOR or an older one
 *     loads: a minor only ever adds.
 *   - A plugin built against a NEWER minor loads too. Before it calls a
 *     service the host may lack, it checks HOOKD_API_HAS(ctx->api, member)
 *     (api->size) or ctx->api->abi_minor, and does without it, or returns
 *     non-zero from init to refuse the load (log why first).
 *   - Within a major, new services are only appended to hookd_host_api and
 *     new descriptor fields only take `reserved` slots, in order: nothing
 *     is removed, reordered or retyped. The host reads at most its own
 *     sizeof(hookd_descriptor) of a descriptor and ignores `reserved`, so
 *     a new descriptor field must mean "as before" to a host that ignores
 *     it (a plugin that depends on it checks api->abi_minor in init).
 *   - `reserved` is zero in a plugin of the host's minor or older (the
 *     macros below make it so); the host refuses one that is not, which is
 *     what lets a later minor give those slots a meaning.
 *
 * Phases (ABI 1.3; hooks.<name> in the host config): a plugin runs as a
 * step of a hook's `chain` (each step's output is the next one's input),
 * of its `on_error` steps, or as an `after` observer -- the same entry
 * point, told apart by its input:
 *   - on_error steps run in order when the chain fails (a step failed,
 *     returned nothing, crashed, was refused, or the deadline passed), with
 *     the input {"error": {"status", "message", "outcome", "plugin", "step",
 *     "generation"}, "input": <the hook's input as it came>}. Returning
 *     anything but a JSON null (cJSON_CreateNull()) replaces the error: the
 *     client gets that output, with what the step set of the reply
 *     (set_status etc.), and the rest of the on_error steps do not run.
 *     Returning null, or failing, leaves the error to the next one; if none
 *     replaces it, the client gets the chain's error.
 *   - after observers run once the reply is sent, in order, each with
 *     {"hook", "request_id", "generation", "status" (sent), "outcome",
 *     "recovered", "duration_ms", "input", "output" or "error", "steps":
 *     [{"plugin", "ms", "outcome"}]}. Their output is dropped and their
 *     failures are logged and counted; they cannot change the reply.
 *   Both phases run under the hook's after_timeout_ms, not its timeout_ms.
 *
 * Plugins never call cJSON_InitHooks: the host and every plugin share one
 * cJSON and one allocator (the host frees trees a plugin built, and the
 * other way round), and the hooks are process-wide. Use cJSON_free /
 * cJSON_Delete on what cJSON allocated, never your own allocator.
 */
#ifndef HOOKD_H
#define HOOKD_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HOOKD_ABI_MAJOR 1
/* 1: fetch, fetch_all.
 * 2: hookd_request and hookd_response start with their size (so both may
 *    grow), fetch_all takes and hands back arrays of pointers. Plugins built
 *    against 1.1 keep working: the host reads their old layout. */
/* 3: the inbound request (inbound, header), the reply (set_status,
 *    set_header, set_body), hook phases (on_error, after). */
#define HOOKD_ABI_MINOR 3
#define HOOKD_MAGIC 0x4b4f4f48u /* "HOOK" read as little-endian bytes */
#define HOOKD_DESCRIPTOR_SYMBOL "hookd_plugin"

#define HOOKD_EXPORT __attribute__((visibility("default")))

/* Return codes of host services: 0 or a negative errno value. */
#define HOOKD_OK 0
#define HOOKD_EINVAL (-22)    /* bad argument */
#define HOOKD_ENOMEM (-12)    /* out of memory */
#define HOOKD_EPERM (-1)      /* not allowed from this thread or mode */
#define HOOKD_EALREADY (-114) /* the call was already finished by the plugin */
#define HOOKD_ECANCELED (-125) /* the call was cancelled by the host */
#define HOOKD_EFORBIDDEN (-13) /* a reply header the host owns (framing, hop-by-hop) */

/* Outbound HTTP errors (hookd_response.error); error_message has details. */
#define HOOKD_EFETCH (-1000)     /* any other transfer failure */
#define HOOKD_EDNS (-1001)       /* the host name did not resolve */
#define HOOKD_ECONNECT (-1002)   /* connection refused or unreachable */
#define HOOKD_ETIMEDOUT (-1003)  /* the request's timeout or the call's deadline */
#define HOOKD_ETLS (-1004)       /* TLS handshake or certificate failure */
#define HOOKD_ETOOLARGE (-1005)  /* the response body exceeded max_response */
#define HOOKD_ECONNRESET (-1006) /* the connection broke mid-transfer */

typedef enum hookd_mode {
	HOOKD_MODE_SYNC = 1, /* call_sync on a worker thread; may block */
	HOOKD_MODE_ASYNC = 2 /* call_async on the event loop; never blocks */
} hookd_mode;

typedef enum hookd_log_level {
	HOOKD_LOG_ERROR = 0,
	HOOKD_LOG_WARN = 1,
	HOOKD_LOG_INFO = 2,
	HOOKD_LOG_DEBUG = 3
} hookd_log_level;

/* One step of one hook call, as this plugin sees it. Opaque. Valid from the
 * entry point until the plugin finishes it (sync: when call_sync returns;
 * async: when complete() or fail() is called, from any thread). */
typedef struct hookd_call hookd_call;

/* A timer armed for an async call. Opaque; valid until its callback has
 * returned or timer_stop() was called on it. */
typedef struct hookd_timer hookd_timer;

typedef struct hookd_host_api hookd_host_api;

/* Per-plugin context, owned by the host; the address is stable from init
 * until fini returns. The plugin may set and read `state`; the rest is
 * read-only. */
typedef struct hookd_ctx {
	const hookd_host_api *api; /* host services (see below) */
	const char *name;          /* the plugin's name, from its descriptor */
	void *state;               /* the plugin's own; the host never touches it */
} hookd_ctx;

/*
 * SYNC entry point. Runs on a worker thread.
 *   input:  owned by the host. The plugin may read it, modify it in place,
 *           detach items from it (cJSON_DetachItem*) into its output, or
 *           return it as the output. It must not free it or keep any
 *           pointer into it after returning.
 *   return: the output tree, ownership passes to the host (it may be
 *           `input` itself). To fail the call, call api->fail() and return
 *           NULL (a non-NULL return after fail() is freed and ignored).
 *           NULL without fail() answers 500.
 */
typedef cJSON *(*hookd_sync_fn)(const hookd_ctx *ctx, hookd_call *call, cJSON *input);

/*
 * ASYNC entry point. Runs on the event loop; must return without blocking.
 *   input:  owned by the host, valid until the plugin finishes the call. The
 *           same rules as for the sync input apply.
 * The plugin finishes the call exactly once, now or later, with
 * api->complete() or api->fail(). Until it does, the call keeps the plugin's
 * code loaded, even if the host has already answered the client (deadline,
 * client gone, shutdown): finishing a cancelled call is a harmless no-op
 * that releases it.
 */
typedef void (*hookd_async_fn)(const hookd_ctx *ctx, hookd_call *call, cJSON *input);

/* Timer callback, on the loop thread. status is HOOKD_OK when the timer
 * expired, HOOKD_ECANCELED when the call was cancelled or finished first
 * (the timer then fires early so that `arg` can be released). Every timer
 * that was not stopped calls back exactly once. As with fetch callbacks, a
 * cancelled call not finished yet must still be finished. */
typedef void (*hookd_timer_fn)(const hookd_ctx *ctx, hookd_call *call, int status, void *arg);

/* Cancel callback, on the loop thread: the host gave up on the call
 * (deadline passed, client went away, host shutting down). Release what the
 * call holds and finish it (complete/fail are no-ops now, but still needed
 * to release the call unless the plugin does so from a timer callback). */
typedef void (*hookd_cancel_fn)(const hookd_ctx *ctx, hookd_call *call, void *arg);

/* ---- outbound HTTP (ABI 1.1; sized structs since 1.2) ------------------ */

typedef struct hookd_header {
	const char *name;
	const char *value;
} hookd_header;

/* One outbound request. Start every request from HOOKD_REQUEST_INIT, which
 * sets `size`: fields added in later minors go at the end, and the host
 * reads only `size` bytes (defaults for the rest). fetch()/fetch_all() copy
 * the request and everything it points to: the plugin may free or reuse it
 * all as soon as the call returns. */
typedef struct hookd_request {
	uint32_t size;                /* sizeof(hookd_request) as the plugin was built
	                               * (HOOKD_REQUEST_INIT); smaller than the 1.2
	                               * layout: HOOKD_EINVAL */
	const char *method;           /* NULL: GET, or POST when there is a body */
	const char *url;              /* http:// or https:// only */
	const hookd_header *headers;  /* extra request headers, or NULL */
	size_t nheaders;
	const void *body;             /* request body, or NULL */
	size_t body_len;
	uint32_t timeout_ms;          /* per attempt (HOOKD_ETIMEDOUT); 0: none. The call's
	                               * deadline stops every request of the call anyway
	                               * (the callback then gets HOOKD_ECANCELED). */
	uint32_t retries;             /* extra attempts after the first, for idempotent
	                               * requests: on connect errors, timeouts, broken
	                               * connections and 429/502/503/504 */
	uint32_t retry_base_ms;       /* first backoff (0: 100 ms); doubles per attempt, */
	uint32_t retry_cap_ms;        /* up to this (0: 2000 ms); half of it is random
	                               * (jitter). A 429/503's Retry-After (seconds or a
	                               * date) is waited at least. No retry would end
	                               * past the deadline. */
	size_t max_response;          /* body limit (0: the plugin's fetch.max_response,
	                               * default 8 MiB); larger fails HOOKD_ETOOLARGE */
	uint32_t flags;               /* HOOKD_FETCH_* */
} hookd_request;

/* hookd_request req = HOOKD_REQUEST_INIT;  or, for an element of an array,
 * reqs[i] = (hookd_request)HOOKD_REQUEST_INIT; then set the fields. */
#define HOOKD_REQUEST_INIT {.size = sizeof(hookd_request)}

#define HOOKD_FETCH_FOLLOW_REDIRECTS 1u /* follow up to 5 redirects */

/* The outcome of one request, owned by the host. It and every pointer in
 * it are valid only during the callback that receives it: copy what you
 * keep. */
typedef struct hookd_response {
	uint32_t size;               /* sizeof(hookd_response) in the host: a field
	                              * beyond it (newer than the host) is absent; see
	                              * HOOKD_RESPONSE_HAS */
	int error;                   /* HOOKD_OK, or HOOKD_E* (status may then be 0) */
	const char *error_message;   /* "" when error == HOOKD_OK */
	long status;                 /* HTTP status of the last attempt, 0 if none */
	const char *body;            /* NUL-terminated (binary bodies: use body_len) */
	size_t body_len;
	const hookd_header *headers; /* the final response's headers, as received (a
	                              * header sent twice appears twice) */
	size_t nheaders;
	double total_ms;             /* last attempt: whole transfer */
	double dns_ms, connect_ms, first_byte_ms; /* last attempt: from its start */
	unsigned attempts;           /* 1 + retries made */
	const char *url;             /* the request's URL */
} hookd_response;

/* Non-zero when `resp` (from a host at least as new as the field) has it. */
#define HOOKD_RESPONSE_HAS(resp, field)                                                  \
	((resp)->size >= offsetof(hookd_response, field) + sizeof((resp)->field))

/* Loop thread. Called exactly once per successful fetch(): with the
 * result, or with error HOOKD_ECANCELED when the call ended first (the
 * transfer was stopped and freed; release `arg`). On HOOKD_ECANCELED the
 * call is still yours to finish unless you finished it already: call
 * fail() or complete() (a no-op that releases it), or the call and its
 * generation's code stay loaded. api->cancelled(call) tells the two apart.
 * `resp` is borrowed for the callback only. */
typedef void (*hookd_fetch_fn)(const hookd_ctx *ctx, hookd_call *call,
			       const hookd_response *resp, void *arg);

/* Loop thread. Called exactly once per successful fetch_all(), with one
 * response per request, in request order: resps[i] answers reqs[i]. The
 * array and the responses are the host's, borrowed for the callback only. */
typedef void (*hookd_gather_fn)(const hookd_ctx *ctx, hookd_call *call,
				const hookd_response *const *resps, size_t n, void *arg);

#define HOOKD_GATHER_ALL 0u       /* call back when every request is done */
#define HOOKD_GATHER_FAIL_FAST 1u /* call back at the first failure (an error or a
                                   * status >= 400); the requests still running are
                                   * stopped and report HOOKD_ECANCELED */

/* ---- the inbound request and the reply (ABI 1.3) ----------------------- */

/* The HTTP request that started the hook call, as every step of the call
 * sees it (chain, on_error and after steps alike; sync, async and isolated
 * alike). Owned by the host, read-only, and valid -- with every pointer in
 * it -- for as long as the plugin holds the step (until call_sync returns;
 * async: until complete() or fail()). Fields added in later minors go at
 * the end: check HOOKD_INBOUND_HAS before reading one newer than 1.3. */
typedef struct hookd_inbound {
	uint32_t size;               /* sizeof(hookd_inbound) in the host */
	const char *hook;            /* the hook called */
	const char *method;          /* "POST" */
	const char *path;            /* "/hooks/github", as sent (not decoded) */
	const char *query;           /* after the '?', as sent (not decoded); "" if none */
	const char *client_addr;     /* the peer: "127.0.0.1", "::1", or "unix" */
	uint16_t client_port;        /* 0 for a Unix socket */
	const char *request_id;      /* the X-Request-Id hookd answers with */
	const char *content_type;    /* the Content-Type header, or "" */
	const char *body;            /* the raw body bytes, NUL-terminated after body_len
	                              * (a binary body may hold NULs: use body_len) */
	size_t body_len;
	const hookd_header *headers; /* every request header, in the order received, a
	                              * header sent twice twice; names as sent (compare
	                              * with strcasecmp, or use api->header) */
	size_t nheaders;
} hookd_inbound;

#define HOOKD_INBOUND_HAS(in, field)                                                     \
	((in)->size >= offsetof(hookd_inbound, field) + sizeof((in)->field))

struct hookd_host_api {
	uint32_t size;      /* sizeof(hookd_host_api) in the host */
	uint16_t abi_major; /* the host's HOOKD_ABI_MAJOR */
	uint16_t abi_minor; /* the host's HOOKD_ABI_MINOR */

	/* Log one line to the host's log, tagged with the plugin's name. Any
	 * thread, any time between init and the end of fini. */
	void (*log)(const hookd_ctx *ctx, hookd_log_level level, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

	/* Fail the call with an HTTP status (400..599; anything else becomes
	 * 500) and a message (printf format; copied). The client receives
	 * {"error": message, "plugin": name, ...} with that status.
	 * SYNC: from inside call_sync only; then return NULL.
	 * ASYNC: finishes the call, from any thread.
	 * Returns HOOKD_OK, HOOKD_ECANCELED (host already gave up; the call is
	 * released all the same) or HOOKD_EALREADY (already finished: a bug). */
	int (*fail)(hookd_call *call, int status, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

	/* ASYNC only: finish the call with `output`, whose ownership passes to
	 * the host (freed if the call was cancelled) -- except on HOOKD_EALREADY
	 * (finished twice: a bug), when nothing is taken. May be the input tree
	 * itself. From any thread; off the loop thread the result is handed to
	 * the loop. Same return values as fail(). */
	int (*complete)(hookd_call *call, cJSON *output);

	/* Milliseconds left before the call's deadline (<= 0: passed). Any
	 * thread, while the plugin holds the call. */
	int64_t (*remaining_ms)(const hookd_call *call);

	/* Non-zero once the host has given up on the call. A long-running sync
	 * plugin may poll it and return early. Any thread, while it holds the
	 * call. */
	int (*cancelled)(const hookd_call *call);

	/* ASYNC only, loop thread: register the call's cancel callback (one per
	 * call; a second registration replaces the first). Returns HOOKD_OK,
	 * HOOKD_EPERM off the loop or for a sync call, HOOKD_ECANCELED if the
	 * call is already cancelled (the callback is then not registered). */
	int (*on_cancel)(hookd_call *call, hookd_cancel_fn fn, void *arg);

	/* ASYNC only, loop thread: arm a one-shot timer of `ms` milliseconds
	 * for the call; `fn` runs on the loop. Returns NULL (no callback will
	 * ever happen) off the loop, for a sync call, after the call was
	 * finished or cancelled, or out of memory. */
	hookd_timer *(*timer_start)(hookd_call *call, uint64_t ms, hookd_timer_fn fn, void *arg);

	/* Loop thread: disarm a timer that has not fired; its callback will not
	 * run. Returns HOOKD_OK, or HOOKD_EALREADY if it already fired. */
	int (*timer_stop)(hookd_timer *timer);

	/* ---- ABI 1.1 (request and response layouts of 1.2 since 1.2) ---- */

	/* ASYNC only, loop thread: start an outbound HTTP request for the call,
	 * on the loop (non-blocking, DNS included; connections are reused
	 * across calls). `req` is copied (see hookd_request); `fn` runs once
	 * on the loop. Subject to the plugin's "fetch" limits from its config
	 * section (concurrency, rate): beyond them the request waits its turn,
	 * in order. Returns HOOKD_OK, or HOOKD_EPERM / HOOKD_ECANCELED /
	 * HOOKD_EALREADY / HOOKD_EINVAL (not an http(s) URL, req->size too
	 * small) / HOOKD_ENOMEM, in which case `fn` is never called. */
	int (*fetch)(hookd_call *call, const hookd_request *req, hookd_fetch_fn fn, void *arg);

	/* ASYNC only, loop thread: start `n` requests at once (1..1024) and get
	 * one callback with all the results (see HOOKD_GATHER_*): the `gather`
	 * of the async world. `reqs` is an array of n pointers to requests,
	 * copied like fetch()'s (the array too). Same return values as
	 * fetch(); on an error no request was started. */
	int (*fetch_all)(hookd_call *call, const hookd_request *const *reqs, size_t n,
			 unsigned flags, hookd_gather_fn fn, void *arg);

	/* ---- ABI 1.3: the inbound request, the reply ---------------------- */

	/* The request that started the call (see hookd_inbound), or NULL
	 * when the call did not come over HTTP. Any thread, while the plugin
	 * holds the step. */
	const hookd_inbound *(*inbound)(const hookd_call *call);

	/* The value of the first request header called `name` (compared
	 * case-insensitively), or NULL. Borrowed like inbound(). */
	const char *(*header)(const hookd_call *call, const char *name);

	/*
	 * The reply. Steps shape the successful reply the client gets; every
	 * setting is copied, so the arguments may be freed at once. A step's
	 * settings take effect when the step succeeds (a failed step's are
	 * dropped); a later step overrides an earlier one's status and body,
	 * and a header it sets again replaces the earlier value. None of them
	 * applies to an error reply, except from an on_error step that
	 * replaces it (see the phases in the README). From the thread that
	 * runs the step: call_sync's worker, or the loop for an async step,
	 * before it finishes the step. Each returns HOOKD_OK, HOOKD_EINVAL,
	 * HOOKD_EPERM (an `after` step: the reply is already sent; or off the
	 * step's thread), HOOKD_ECANCELED (the host gave up on the call) or
	 * HOOKD_ENOMEM.
	 */

	/* The success status, 200..299 (else HOOKD_EINVAL). 204 sends no
	 * body whatever the output. Default 200. */
	int (*set_status)(hookd_call *call, int status);

	/* Add a response header, or replace the one this call set before
	 * under the same name (case-insensitive); a NULL value removes it.
	 * Names are HTTP tokens, values printable without CR/LF/NUL, at most
	 * 8 KiB together (else HOOKD_EINVAL). Headers the host owns are
	 * HOOKD_EFORBIDDEN: framing and hop-by-hop ones (Content-Length,
	 * Transfer-Encoding, Connection, Keep-Alive, Upgrade, TE, Trailer,
	 * Proxy-*), and Content-Type (set_body sets it), Date, Server and
	 * X-Request-Id. At most 32 per call. */
	int (*set_header)(hookd_call *call, const char *name, const char *value);

	/* Reply with these raw bytes of type `content_type` (NULL:
	 * "application/octet-stream") instead of the JSON output. The step's
	 * output still feeds the next step; the last step that set a body wins,
	 * and set_body(call, NULL, 0, NULL) goes back to the JSON output. The
	 * body counts against max_output. */
	int (*set_body)(hookd_call *call, const void *body, size_t len, const char *content_type);
};

/*
 * The descriptor: the one symbol a plugin exports, named hookd_plugin.
 * The host reads magic, abi_major and abi_minor first, then no more than
 * `size` bytes of the rest, and never more than its own
 * sizeof(hookd_descriptor) (see the ABI rules at the top).
 */
typedef struct hookd_descriptor {
	uint32_t magic;     /* HOOKD_MAGIC */
	uint16_t abi_major; /* HOOKD_ABI_MAJOR the plugin was built with */
	uint16_t abi_minor; /* HOOKD_ABI_MINOR the plugin was built with */
	uint32_t size;      /* sizeof(hookd_descriptor) the plugin was built with */
	int32_t mode;       /* hookd_mode */
	const char *name;   /* unique among loaded plugins: [A-Za-z0-9_.-], 1..64 */
	const char *version; /* free-form, e.g. "1.2.0" */
	const char *const *hooks; /* hook names served, NULL-terminated, >= 1 */

	/* Optional. config: this plugin's object from the host config's
	 * "plugins" section, or NULL; borrowed for the duration of the call
	 * (copy what you keep). Set ctx->state if you need state. Return 0, or
	 * non-zero to refuse to load (log why with api->log first). */
	int (*init)(hookd_ctx *ctx, const cJSON *config);
	/* Optional. Release ctx->state. Before it returns:
	 *   - every thread the plugin started (pthread_create, std::thread,
	 *     from init, a call or another of its threads) has been told to
	 *     stop and joined: its code is unmapped right after fini;
	 *   - every pthread key it created with a destructor has been deleted
	 *     (pthread_key_delete): a thread exiting later would call it.
	 * The host counts both and, if any is left (a thread gets 200 ms to
	 * end), logs a warning naming the plugin and keeps its code mapped
	 * until exit instead of crashing: a leak, and still a bug to fix.
	 * C++ thread_local objects with destructors are fine: glibc keeps the
	 * code of a dlclose'd object until every thread that used them exits. */
	void (*fini)(hookd_ctx *ctx);

	hookd_sync_fn call_sync;   /* required for HOOKD_MODE_SYNC */
	hookd_async_fn call_async; /* required for HOOKD_MODE_ASYNC */

	void *reserved[8]; /* zero; later minors take slots here, in order */
} hookd_descriptor;

/* Convenience wrappers: hookd_log(ctx, HOOKD_LOG_INFO, "x=%d", x) etc. */
#define hookd_log(ctx, level, ...) ((ctx)->api->log((ctx), (level), __VA_ARGS__))
#define hookd_fail(ctx, call, status, ...) ((ctx)->api->fail((call), (status), __VA_ARGS__))
#define hookd_complete(ctx, call, output) ((ctx)->api->complete((call), (output)))

/* Non-zero when the host's service table has `member` (a plugin built
 * against a newer minor than the host's checks before calling a service
 * its own header has and the host may lack):
 *   if (!HOOKD_API_HAS(ctx->api, fetch_all)) ... do without ... */
#define HOOKD_API_HAS(api, member) \
	((api)->size >= offsetof(hookd_host_api, member) + sizeof((api)->member))

#define HOOKD_HOOKS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The exported descriptor, declared extern (and visible) before it is
 * defined: in C++ a const object at namespace scope has internal linkage
 * unless declared extern, and g++ then drops the visibility attribute: the
 * plugin would export nothing. extern "C" keeps the symbol's name
 * hookd_plugin. The definition repeats no attribute (g++ warns that it
 * ignores one on a redeclaration; the first declaration's applies). */
#ifdef __cplusplus
#define HOOKD_DECLARE_DESCRIPTOR_ extern "C" HOOKD_EXPORT const hookd_descriptor hookd_plugin
#else
#define HOOKD_DECLARE_DESCRIPTOR_ extern HOOKD_EXPORT const hookd_descriptor hookd_plugin
#endif

/* Define the descriptor by hand, in C or C++ (C++20: designated
 * initializers in declaration order):
 *   HOOKD_DESCRIPTOR = {.magic = HOOKD_MAGIC, .abi_major = HOOKD_ABI_MAJOR, ...}; */
#define HOOKD_DESCRIPTOR                                                                   \
	HOOKD_DECLARE_DESCRIPTOR_;                                                         \
	const hookd_descriptor hookd_plugin

/* Define the exported descriptor of a sync plugin:
 *   HOOKD_PLUGIN_SYNC("name", "1.0.0", HOOKD_HOOKS("hook1", "hook2"),
 *                     init_or_NULL, fini_or_NULL, call_sync);
 * Every member is named, in declaration order, so that the same macro is
 * valid C11 and C++20 (g++ -Wextra warns of an omitted member). In C++,
 * HOOKD_HOOKS is an array compound literal, which g++ and clang accept at
 * namespace scope with static storage (warned only by -Wpedantic; there,
 * pass a named `static const char *const hooks[] = {"a", nullptr};`). */
#define HOOKD_PLUGIN_SYNC(name_, version_, hooks_, init_, fini_, fn_)                      \
	HOOKD_DESCRIPTOR = {                                                               \
		.magic = HOOKD_MAGIC, .abi_major = HOOKD_ABI_MAJOR,                        \
		.abi_minor = HOOKD_ABI_MINOR, .size = sizeof(hookd_descriptor),            \
		.mode = HOOKD_MODE_SYNC, .name = (name_), .version = (version_),           \
		.hooks = (hooks_), .init = (init_), .fini = (fini_), .call_sync = (fn_),   \
		.call_async = NULL, .reserved = {NULL},                                    \
	}

/* The same for an async plugin; fn_ is a hookd_async_fn. */
#define HOOKD_PLUGIN_ASYNC(name_, version_, hooks_, init_, fini_, fn_)                     \
	HOOKD_DESCRIPTOR = {                                                               \
		.magic = HOOKD_MAGIC, .abi_major = HOOKD_ABI_MAJOR,                        \
		.abi_minor = HOOKD_ABI_MINOR, .size = sizeof(hookd_descriptor),            \
		.mode = HOOKD_MODE_ASYNC, .name = (name_), .version = (version_),          \
		.hooks = (hooks_), .init = (init_), .fini = (fini_), .call_sync = NULL,    \
		.call_async = (fn_), .reserved = {NULL},                                   \
	}

#ifdef __cplusplus
}
#endif
#endif /* HOOKD_H */
