/*
 * harness -- start the real hookd on an ephemeral loopback port, talk to it
 * over real HTTP (libcurl), send it signals, read its log.
 *
 * Each daemon gets its own temp dir (config, plugin folder, runtime dir,
 * log), so Criterion's parallel test processes never share anything.
 * Binaries come from $HOOKD_BUILD (default "build"): hookd, plugins/NAME.so,
 * fixtures/NAME.so. With HOOKD_TSAN=1 the daemon runs with
 * TSAN_OPTIONS=halt_on_error=1:exitcode=66 and timeouts are stretched.
 * hd_stop() fails the test on a sanitizer report in the daemon's log.
 */
#ifndef HOOKD_TEST_HARNESS_H
#define HOOKD_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct hd {
	pid_t pid;
	int port;
	char dir[256];        /* temp dir of this daemon */
	char plugin_dir[320];
	char config[320];
	char log[320];
	bool stopped;
	int exit_status;      /* after hd_stop: exit code, or 128+signal */
	/* extra environment for the daemon: "NAME=VALUE" strings, NULL-terminated
	 * (or NULL); set before hd_launch, borrowed */
	const char *const *env;
};

struct hd_resp {
	long status;          /* 0: transport error */
	char *body;           /* NUL-terminated, malloc'ed (hd_resp_free) */
	size_t len;
	char retry_after[32]; /* Retry-After header, or "" */
	char content_type[64];
	double seconds;       /* total time of the request */
	double connect_s;     /* hd_post_many: time to get the connection (CONNECT) */
};

/* Multiplier for every timeout (large under TSan). */
int hd_scale(void);

/* Path of a build product: hd_path("plugins/echo.so"). Static buffer per
 * call slot: copy it if you need two at once. */
const char *hd_build_path(const char *rel, char *buf, size_t len);

/* Write a config with `members` (JSON object members, may be "" ) next to
 * the required listen/plugin_dir/runtime_dir, install the named example
 * plugins (NULL-terminated list of names from build/plugins, or NULL for
 * none) and start the daemon. Asserts on failure. */
void hd_start(struct hd *d, const char *members, const char *const *plugins);

/* Only prepare the directory and config (no start): for -t tests. */
void hd_prepare(struct hd *d, const char *members, const char *const *plugins);
/* Start a prepared daemon and wait until it is ready: it announced its port
 * in its log and answers GET /health there (polled, bounded by timeout_ms,
 * scaled). Returns false if it exited first or the time ran out, after
 * logging why with the end of its log. */
bool hd_launch(struct hd *d, int timeout_ms);
/* hd_launch with extra command-line arguments after "-c CONFIG"
 * (NULL-terminated, at most 12). */
bool hd_launch_args(struct hd *d, int timeout_ms, const char *const *args);
/* The same, failing the test when it does not start. */
void hd_launch_or_fail(struct hd *d);

/* A suite's .fini: a test that failed before hd_stop leaves its daemon
 * running; show its log (the evidence) and kill it. The daemon is the last
 * one hd_prepare/hd_start set up in this test process, so it must have
 * static storage (the test function has returned when .fini runs). */
void hd_suite_teardown(void);

/* CURLOPT_WRITEFUNCTION collecting a body into a struct hd_resp. */
size_t hd_curl_body(char *p, size_t size, size_t n, void *arg);

/* SIGTERM, wait for exit (SIGKILL after a long timeout). Returns the exit
 * status. Fails the test on a sanitizer report. Removes the temp dir. */
int hd_stop(struct hd *d);
/* Stop with SIGKILL and clean up, no checks (for teardown after failure). */
void hd_kill(struct hd *d);

void hd_signal(struct hd *d, int sig);

/* Rewrite the config (same preamble) with new members. */
void hd_write_config(struct hd *d, const char *members);

/* Atomically install build file `rel` (e.g. "fixtures/ver_a.so") into the
 * plugin folder as `name` (copy to a temp name, then rename). */
void hd_install(struct hd *d, const char *rel, const char *name);
/* Remove `name` from the plugin folder. */
void hd_uninstall(struct hd *d, const char *name);

/* Number of occurrences of `needle` in the daemon's log. */
int hd_log_count(struct hd *d, const char *needle);
/* Wait until the log holds `needle` at least `n` times; false on timeout. */
bool hd_wait_log(struct hd *d, const char *needle, int n, int timeout_ms);
/* The whole log (malloc'ed). */
char *hd_log_read(struct hd *d);

/* HTTP against the daemon. body may be NULL (GET) */
void hd_request(struct hd *d, const char *method, const char *path, const char *body,
		size_t len, struct hd_resp *r);
void hd_post(struct hd *d, const char *path, const char *body, struct hd_resp *r);
void hd_get(struct hd *d, const char *path, struct hd_resp *r);
void hd_resp_free(struct hd_resp *r);

/* A number from GET /health ("calls_held", "workers_busy", ...); -1 if the
 * daemon did not answer or has no such number. */
double hd_health(struct hd *d, const char *key);
/* Poll GET /health until `key` == want; false after timeout_ms (scaled).
 * The way to wait for the daemon to reach a state instead of sleeping. */
bool hd_wait_health(struct hd *d, const char *key, double want, int timeout_ms);

/* Wait until GET /plugins reports generation >= gen. */
bool hd_wait_generation(struct hd *d, int gen, int timeout_ms);

/* Concurrent load: `threads` clients each POSTing `body` to `path` in a
 * loop (keep-alive) until hd_load_stop. */
struct hd_load;
struct hd_load *hd_load_start(struct hd *d, const char *path, const char *body, int threads);
struct hd_load_result {
	long ok;       /* 200 answers */
	long failed;   /* anything else (transport errors included) */
	long last_bad_status;
	char last_bad_body[256];
};
/* Wait until the load got `n` more answers (any status) than when called:
 * proof that it runs, where a fixed sleep would only hope so. False when
 * timeout_ms (scaled) passed first. */
bool hd_load_wait(struct hd_load *l, long n, int timeout_ms);
void hd_load_stop(struct hd_load *l, struct hd_load_result *res);

/* The whole file at path, NUL-terminated (caller frees), *len if non-NULL;
 * NULL if it is absent or unreadable. */
char *hd_read_file(const char *path, size_t *len);

/* Monotonic milliseconds. */
double hd_now_ms(void);
void hd_sleep_ms(int ms);

/* ---- concurrent requests (added for test_payloads / test_isolation) -- */

/* POST bodies[i] (lens[i] bytes) to paths[i] for i < n, all at once: one
 * connection each, driven by one curl multi handle in the calling thread.
 * Fills out[i] (status 0: transport error; free each with hd_resp_free)
 * and, unless wait_ms is NULL, wait_ms[i]: the ms from the moment call i's
 * connection was established (before its request was sent) to the first
 * byte of its answer: never less than the server's time for the call, and
 * without the time to connect. Returns the wall
 * time in ms from the first connect to the last answer. */
double hd_post_many(struct hd *d, const char *const *paths, const char *const *bodies,
		    const size_t *lens, size_t n, struct hd_resp *out, double *wait_ms);

/* ---- calls in flight, exit without a signal, the binary's CLI -------- */
/* (added for tests/integration/test_reload.c and test_shutdown.c) */

/* One POST running in a thread of its own, for a call that must be in
 * flight while the test sends a signal. */
struct hd_bg;
struct hd_bg *hd_bg_post(struct hd *d, const char *path, const char *body);
/* True once the reply (or a transport error) came back. */
bool hd_bg_done(struct hd_bg *b);
/* Join the thread, hand over the response (hd_resp_free it) and the
 * monotonic time (hd_now_ms) at which it was complete; frees b. */
void hd_bg_wait(struct hd_bg *b, struct hd_resp *r, double *done_ms);

/* Wait up to timeout_ms (scaled) for the daemon to exit by itself (no
 * signal is sent) and record its exit status like hd_stop. Returns false on
 * timeout (the daemon is still running). Call hd_stop afterwards for the
 * sanitizer check and the cleanup. */
bool hd_wait_exit(struct hd *d, int timeout_ms);

/* Run $HOOKD_BUILD/hookd with `args` (NULL-terminated, argv[0] excluded),
 * wait for it; *out and *err receive its stdout and stderr (malloc'ed,
 * may be NULL to discard). Returns the exit code, or 128+signal. */
int hd_run_hookd(const char *const *args, char **out, char **err);

#endif
