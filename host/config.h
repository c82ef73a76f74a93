/*
 * config -- the daemon's JSON configuration, strictly validated.
 *
 * Every error names the file and the key path ("hooks.mixed.timeout_ms:
 * expected an integer between 1 and 3600000, got a string"). Unknown keys
 * are errors, so a typo never silently falls back to a default. Each
 * plugin's section of "plugins" is kept as JSON, untouched, for its init;
 * the one key of it the host reads itself, "fetch" (outbound-HTTP limits),
 * is validated here too and kept parsed (struct config_fetch).
 * A `struct config` is immutable once built and may be shared read-only by
 * any thread.
 */
#ifndef HOOKD_CONFIG_H
#define HOOKD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define CONFIG_MAX_WORKERS 1024
#define CONFIG_MAX_REACTORS 64
#define CONFIG_MAX_QUEUE 1000000
#define CONFIG_MAX_TIMEOUT_MS 3600000u
#define CONFIG_MAX_BODY (1024u * 1024u * 1024u)
#define CONFIG_MAX_OUTPUT (1024u * 1024u * 1024u)

#define CONFIG_MAX_FETCH_CONCURRENCY 100000u
#define CONFIG_MAX_FETCH_RATE 1e6
#define CONFIG_MIN_FETCH_RATE 0.01
#define CONFIG_MAX_FETCH_RESPONSE (1024u * 1024u * 1024u)

/* plugins.<name>.fetch: the host's limits on a plugin's outbound HTTP. */
struct config_fetch {
	unsigned concurrency; /* transfers at once; 0: unlimited */
	double rate;          /* starts per second; 0: unlimited */
	double burst;         /* token bucket size; 0: the default, max(1, rate) */
	size_t max_response;  /* default response body limit; 0: the host's default */
};

/* plugins.<name>: the keys of a plugin's section the host reads itself
 * (the whole section is still handed to the plugin's init). */
struct config_plugin {
	char *name;
	struct config_fetch fetch;
	int isolate;          /* "isolate": 1 yes, 0 no, -1 not given (the global default) */
	int fail_open;        /* "failure_mode": 1 "open", 0 "closed" (the default) */
	uint64_t rlimit_as;   /* "rlimit_as": bytes of address space per isolated process; 0: none */
	uint32_t rlimit_cpu;  /* "rlimit_cpu": CPU seconds per isolated process; 0: none */
	unsigned max_in_flight; /* "max_in_flight": its steps running at once; 0: no limit */
};

#define CONFIG_MAX_ISOLATE_PROCS 64u

/* hooks.<name>.accept: which bodies a hook takes, and what its input is. */
enum config_accept {
	CONFIG_ACCEPT_JSON = 1, /* a JSON document (the default) */
	CONFIG_ACCEPT_FORM = 2, /* application/x-www-form-urlencoded: an object of strings */
	CONFIG_ACCEPT_RAW = 4,  /* anything else: input null, the raw body in the request */
};

/* hooks.<name>.dedup: deliveries remembered by a key. */
struct config_dedup {
	char *header;        /* the key is this request header's value, or */
	char *pointer;       /* this JSON pointer's string or number in the body */
	uint32_t ttl_s;      /* a success is remembered this long (default 86400) */
	uint32_t max_entries; /* default 10000 */
	uint64_t max_bytes;  /* of stored replies, default 16 MiB */
};

struct config_hook {
	char *name;
	char **chain;        /* explicit chain (plugin names), or NULL */
	size_t nchain;
	char **on_error;     /* "on_error": plugins run when the chain fails, or NULL */
	size_t non_error;
	char **after;        /* "after": observers run once the reply is sent, or NULL */
	size_t nafter;
	uint32_t after_timeout_ms; /* the after phase's own deadline (default 5000) */
	uint32_t timeout_ms; /* 0: the global timeout_ms */
	unsigned accept;     /* CONFIG_ACCEPT_* bits; 0: JSON (as before the key existed) */
	uint64_t max_body;   /* 0: the global max_body */
	struct verify *verify; /* "verify": sender verification (verify.h), or NULL */
	struct config_dedup *dedup; /* "dedup", or NULL */
};

/* "http": the transport's limits (hsrv.h; a restart applies them). */
struct config_http {
	uint32_t max_connections;   /* per listener loop; 0: from RLIMIT_NOFILE */
	uint32_t header_timeout_ms, body_timeout_ms, idle_timeout_ms, send_timeout_ms;
	uint32_t max_line, max_header_bytes, max_headers;
	uint64_t max_inflight_bytes; /* process-wide budget of requests in flight */
	uint64_t max_json_values;    /* values (nodes) of one JSON body */
};

struct config {
	char *path;         /* the file it came from, as given */
	char *listen;       /* "HOST:PORT" as written */
	char *listen_host;  /* HOST without brackets */
	uint16_t listen_port;
	char *plugin_dir;   /* resolved against the config file's directory */
	char *runtime_dir;  /* where private plugin copies live; NULL: $TMPDIR or /tmp */
	char *state_dir;    /* the crash record; resolved like plugin_dir; NULL: none */
	char *pid_file;     /* written at start, removed at exit; resolved; NULL: none */
	char *admin_listen; /* as written, or NULL: admin routes on the public listener */
	char *admin_host;   /* admin_listen "HOST:PORT": HOST without brackets, and ... */
	uint16_t admin_port;
	char *admin_unix;   /* ... or "unix:PATH": PATH resolved like plugin_dir */
	char (*trusted_sha256)[65]; /* allow-list of plugin file digests (hex), or NULL: any */
	size_t ntrusted;
	unsigned reactors;  /* event-loop threads sharing the port (default 1) */
	unsigned workers;   /* pool threads (default: online CPUs) */
	unsigned queue;     /* pool queue bound (default: 64 x workers) */
	unsigned max_stuck_workers; /* replacement workers at once (default: workers) */
	int max_stuck_set;  /* max_stuck_workers was given */
	uint32_t timeout_ms; /* default call deadline */
	size_t max_body;    /* request body limit in bytes (a hook's max_body overrides it) */
	size_t max_body_any; /* the largest body any hook takes: the transport's limit */
	size_t max_output;  /* limit of a reply printed from a plugin's output */
	uint32_t drain_ms;  /* how long shutdown waits for calls in flight */
	uint32_t loop_warn_ms;  /* plugin code holding a loop this long is named (0: off) */
	uint32_t loop_abort_ms; /* and past this the daemon aborts (0: never) */
	int log_level;      /* enum log_level */
	char *access_log;   /* access log file (resolved like plugin_dir), "-" (stderr),
	                     * or NULL: off (the default, also "off") */
	int access_log_json; /* access_log_format: 0 "text" (default), 1 "json" */
	int isolate;        /* plugins run isolated unless their section says otherwise */
	int metrics;        /* count for GET /metrics (default 1; a restart applies it) */
	unsigned isolate_procs;       /* processes per isolated plugin (default 2) */
	unsigned quarantine_after;    /* crashes of an isolated plugin ... (default 3) */
	uint32_t quarantine_window_s; /* ... within this many seconds quarantine it (60) */
	struct config_http http;
	struct config_hook *hooks; /* sorted by name */
	size_t nhooks;
	cJSON *plugins;     /* object: plugin name -> object; owned; never NULL */
	struct config_plugin *plugin_settings; /* what the host reads of "plugins" */
	size_t nplugin_settings;
};

/* Read and validate the file at `path`. On success returns 0 and *out owns
 * a new config (config_free). On failure returns -1 and writes one line
 * naming the file and the key into err[0..errlen). */
int config_load(const char *path, struct config **out, char *err, size_t errlen);

/* The same from text already in memory; `path` names it in errors and
 * anchors a relative plugin_dir. */
int config_parse(const char *text, size_t len, const char *path, struct config **out, char *err,
		 size_t errlen);

/* The command line's `hookd -l`: replace cfg's listen address with
 * `listen`, "HOST:PORT" as in the file, or a bare "PORT" that keeps the
 * file's host. Only on a config nobody else uses yet (right after loading
 * it). Returns 0, or -1 with one line in err (cfg unchanged). */
int config_set_listen(struct config *cfg, const char *listen, char *err, size_t errlen);

void config_free(struct config *cfg);

/* The hook's entry, or NULL. Borrowed from cfg. */
const struct config_hook *config_find_hook(const struct config *cfg, const char *name);

/* The plugin's "plugins" section, or NULL. Borrowed from cfg. */
const cJSON *config_plugin_section(const struct config *cfg, const char *name);

/* The plugin's outbound-HTTP limits: its plugins.<name>.fetch, or all
 * zero (no limit, defaults) when it has none. Borrowed from cfg. */
const struct config_fetch *config_plugin_fetch(const struct config *cfg, const char *name);

/* What the host reads of the plugin's section, or NULL when it has none.
 * Borrowed from cfg. */
const struct config_plugin *config_plugin_settings(const struct config *cfg, const char *name);

/* Whether plugin `name` runs isolated: its "isolate", else the global one. */
int config_plugin_isolated(const struct config *cfg, const char *name);

/* Whether a failure of plugin `name`'s step is skipped ("failure_mode": "open"). */
int config_plugin_fail_open(const struct config *cfg, const char *name);

/* Deadline of a hook in ms: its own timeout_ms, else the global one. */
uint32_t config_hook_timeout(const struct config *cfg, const char *hook);

#endif
