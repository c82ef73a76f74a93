/*
 * audit -- sync, an `after` observer: appends one JSON line per hook call to
 * a file: its whole input, printed unformatted, i.e.
 *   {"hook", "request_id", "generation", "status", "outcome", "recovered",
 *    "duration_ms", "input", "output" | "error", "steps": [{"plugin", "ms",
 *    "outcome"}]}
 * It runs once the reply has been sent, so it never delays it; its output
 * is dropped (it returns JSON null).
 *
 * Config (plugins.audit):
 *   "file":     the file (created mode 0640 if missing; not set: the plugin
 *               loads but writes nothing). As for spool, a
 *               relative path is relative to hookd's working directory (the
 *               repository root under `make run`). Opened once, in init,
 *               with O_APPEND: a reload opens it again, so a log rotated by
 *               rename is picked up at the next reload.
 *   "sleep_ms": wait this long before writing (default 0). A test aid that
 *               stands for a slow sink; the wait ends early when the host
 *               gives up on the step (after_timeout_ms).
 *
 * One write(2) per line on an O_APPEND descriptor: lines written by several
 * workers at once (or by the old and new copy across a reload) never mix.
 */
#include <hookd.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct audit {
	int fd;
	unsigned sleep_ms;
};

static int audit_init(hookd_ctx *ctx, const cJSON *config)
{
	const cJSON *file = cJSON_GetObjectItemCaseSensitive(config, "file");
	const cJSON *sleep = cJSON_GetObjectItemCaseSensitive(config, "sleep_ms");
	struct audit *a;

	if (file && (!cJSON_IsString(file) || !file->valuestring[0])) {
		hookd_log(ctx, HOOKD_LOG_ERROR, "plugins.audit.file: expected a file path");
		return -1;
	}
	if (sleep && (!cJSON_IsNumber(sleep) || sleep->valuedouble < 0 ||
		      sleep->valuedouble > 3600000)) {
		hookd_log(ctx, HOOKD_LOG_ERROR, "plugins.audit.sleep_ms: 0..3600000 ms");
		return -1;
	}
	if (!(a = calloc(1, sizeof(*a)))) {
		hookd_log(ctx, HOOKD_LOG_ERROR, "out of memory");
		return -1;
	}
	a->sleep_ms = sleep ? (unsigned)sleep->valuedouble : 0;
	if (!file) {
		/* loads (every example does, configured or not) but writes nothing */
		hookd_log(ctx, HOOKD_LOG_WARN, "plugins.audit.file is not set: nothing is written");
		a->fd = -1;
		ctx->state = a;
		return 0;
	}
	a->fd = open(file->valuestring, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (a->fd < 0) {
		hookd_log(ctx, HOOKD_LOG_ERROR, "plugins.audit.file: cannot open %s: %s",
			  file->valuestring, strerror(errno));
		free(a);
		return -1;
	}
	ctx->state = a;
	return 0;
}

static void audit_fini(hookd_ctx *ctx)
{
	struct audit *a = ctx->state;

	if (a) {
		if (a->fd >= 0)
			close(a->fd);
		free(a);
	}
	ctx->state = NULL;
}

/* Sleep ms in slices of 10 ms, stopping when the host gives up. */
static void slow_sink(const hookd_ctx *ctx, hookd_call *call, unsigned ms)
{
	struct timespec slice = {0, 10 * 1000000L};

	for (unsigned t = 0; t < ms && !ctx->api->cancelled(call); t += 10)
		nanosleep(&slice, NULL);
}

static cJSON *audit(const hookd_ctx *ctx, hookd_call *call, cJSON *input)
{
	const struct audit *a = ctx->state;
	const hookd_inbound *in = ctx->api->inbound(call);
	char *line;
	size_t len;
	ssize_t n;
	int err;

	/* Called as a hook of its own (POST /hooks/audit): refuse, or any
	 * client could write lines into the audit file. */
	if (in && strcmp(in->hook, "audit") == 0) {
		hookd_fail(ctx, call, 404, "audit is an after observer, not a hook");
		return NULL;
	}
	if (a->fd < 0)
		return cJSON_CreateNull();
	if (a->sleep_ms)
		slow_sink(ctx, call, a->sleep_ms);
	if (!(line = cJSON_PrintUnformatted(input))) {
		hookd_fail(ctx, call, 500, "out of memory");
		return NULL;
	}
	/* the terminating NUL becomes the newline: one buffer, one write */
	len = strlen(line);
	line[len++] = '\n';
	do
		n = write(a->fd, line, len);
	while (n < 0 && errno == EINTR);
	err = errno;
	cJSON_free(line);
	if (n < 0 || (size_t)n != len) {
		/* logged and counted by the host; the reply is already sent */
		hookd_fail(ctx, call, 500, "audit write: %s",
			   n < 0 ? strerror(err) : "short write");
		return NULL;
	}
	return cJSON_CreateNull();
}

HOOKD_PLUGIN_SYNC("audit", "1.0.0", HOOKD_HOOKS("audit"), audit_init, audit_fini, audit);
