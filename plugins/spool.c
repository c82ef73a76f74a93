/*
 * spool -- sync, an on_error step: keeps a failed delivery on disk for a
 * later retry and tells the sender it was queued.
 *
 * For a server-side failure (error.status >= 500: a step failed with a 5xx,
 * crashed, was refused, the deadline passed...) it writes one file,
 * <dir>/<request id>.json, holding
 *   {"request_id", "hook", "error": <the error>, "headers": {<kept headers>},
 *    "input": <the hook's original input>}
 * and replaces the error reply with 202 {"queued": "<file name>", "error":
 * "<the error message>"}. A 4xx is the sender's fault (a malformed
 * payload): retrying it would fail again, so it returns JSON null and the
 * client gets the error unchanged.
 *
 * Config (plugins.spool):
 *   "dir":     the folder (created, mode 0700, if missing; not set: the
 *              plugin loads but leaves every error as it is). The plugin gets
 *              only its own section, not the config file's location: a
 *              relative path is relative to hookd's working directory at
 *              load time (the repository root under `make run`), and is
 *              logged resolved. Prefer an absolute path.
 *   "headers": request headers to keep (default X-GitHub-Event,
 *              X-GitHub-Delivery, Content-Type); a header absent from the
 *              request is not written.
 *
 * A file appears whole or not at all: written to a temporary name in the
 * same folder, flushed (fsync), then linked to its final name, which never
 * replaces an existing file (a client may send the same X-Request-Id twice:
 * the second gets "<id>-1.json").
 * Sync because it writes files (blocking I/O runs on a worker thread).
 */
#include <hookd.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_MAX_HEADERS 32

struct spool {
	char *dir;
	char *headers[SPOOL_MAX_HEADERS];
	size_t nheaders;
};

static void spool_free(struct spool *s)
{
	if (!s)
		return;
	free(s->dir);
	for (size_t i = 0; i < s->nheaders; i++)
		free(s->headers[i]);
	free(s);
}

/* dir made absolute against the working directory (malloc'ed), or NULL. */
static char *absolute(const char *dir)
{
	char cwd[PATH_MAX], *out;

	if (dir[0] == '/')
		return strdup(dir);
	if (!getcwd(cwd, sizeof(cwd)) || asprintf(&out, "%s/%s", cwd, dir) < 0)
		return NULL;
	return out;
}

static int spool_init(hookd_ctx *ctx, const cJSON *config)
{
	static const char *const defaults[] = {"X-GitHub-Event", "X-GitHub-Delivery",
					       "Content-Type"};
	const cJSON *dir = cJSON_GetObjectItemCaseSensitive(config, "dir");
	const cJSON *hdrs = cJSON_GetObjectItemCaseSensitive(config, "headers"), *h;
	struct spool *s = calloc(1, sizeof(*s));
	struct stat st;

	if (!s)
		goto nomem;
	if (!HOOKD_API_HAS(ctx->api, set_body)) {
		hookd_log(ctx, HOOKD_LOG_ERROR, "needs hookd ABI 1.3 (the host has 1.%u)",
			  (unsigned)ctx->api->abi_minor);
		goto fail;
	}
	if (!dir) {
		/* loads (every example does, configured or not) but keeps nothing */
		hookd_log(ctx, HOOKD_LOG_WARN, "plugins.spool.dir is not set: failed deliveries "
			  "are not spooled");
		ctx->state = s;
		return 0;
	}
	if (!cJSON_IsString(dir) || !dir->valuestring[0]) {
		hookd_log(ctx, HOOKD_LOG_ERROR, "plugins.spool.dir: expected a folder path");
		goto fail;
	}
	if (!(s->dir = absolute(dir->valuestring)))
		goto nomem;
	if (mkdir(s->dir, 0700) < 0 && errno != EEXIST) {
		hookd_log(ctx, HOOKD_LOG_ERROR, "plugins.spool.dir: cannot create %s: %s", s->dir,
			  strerror(errno));
		goto fail;
	}
	if (stat(s->dir, &st) < 0 || !S_ISDIR(st.st_mode) || access(s->dir, W_OK | X_OK) < 0) {
		hookd_log(ctx, HOOKD_LOG_ERROR, "plugins.spool.dir: %s is not a writable folder",
			  s->dir);
		goto fail;
	}
	if (hdrs && (!cJSON_IsArray(hdrs) || cJSON_GetArraySize(hdrs) > SPOOL_MAX_HEADERS)) {
		hookd_log(ctx, HOOKD_LOG_ERROR, "plugins.spool.headers: an array of at most %d "
			  "header names", SPOOL_MAX_HEADERS);
		goto fail;
	}
	if (hdrs) {
		cJSON_ArrayForEach(h, hdrs)
		{
			if (!cJSON_IsString(h)) {
				hookd_log(ctx, HOOKD_LOG_ERROR, "plugins.spool.headers: not a string");
				goto fail;
			}
			if (!(s->headers[s->nheaders] = strdup(h->valuestring)))
				goto nomem;
			s->nheaders++;
		}
	} else {
		for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
			if (!(s->headers[i] = strdup(defaults[i])))
				goto nomem;
			s->nheaders++;
		}
	}
	hookd_log(ctx, HOOKD_LOG_INFO, "spooling failed deliveries into %s", s->dir);
	ctx->state = s;
	return 0;
nomem:
	hookd_log(ctx, HOOKD_LOG_ERROR, "out of memory");
fail:
	spool_free(s);
	return -1;
}

static void spool_fini(hookd_ctx *ctx)
{
	spool_free(ctx->state);
	ctx->state = NULL;
}

/* The request id as a file name: [A-Za-z0-9._-], no leading dot, at most
 * 128 bytes (hookd validates ids a client sends; this does not rely on it). */
static void file_stem(const char *rid, char *out, size_t len)
{
	size_t i = 0;

	for (; rid && rid[i] && i + 1 < len && i < 128; i++) {
		char c = rid[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '-' || c == '_' || (c == '.' && i);
		out[i] = ok ? c : '_';
	}
	out[i] = '\0';
	if (!i)
		snprintf(out, len, "unknown");
}

/* Write `text` to a new file <dir>/<stem>.json (or <stem>-N.json when that
 * exists); its name into `name`. Returns 0, or -errno. */
static int write_atomic(const char *dir, const char *stem, const char *text, char *name,
			size_t name_len)
{
	char tmp[PATH_MAX], final[PATH_MAX];
	size_t len = strlen(text), off = 0;
	int fd, rc = 0;

	snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, stem);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0) {
		rc = -errno;
		goto out;
	}
	/* link(2), not rename(2): it fails with EEXIST instead of replacing */
	for (int i = 0; i < 100; i++) {
		if (i)
			snprintf(name, name_len, "%s-%d.json", stem, i);
		else
			snprintf(name, name_len, "%s.json", stem);
		snprintf(final, sizeof(final), "%s/%s", dir, name);
		if (link(tmp, final) == 0) {
			rc = 0;
			goto out;
		}
		rc = -errno;
		if (errno != EEXIST)
			goto out;
	}
out:
	close(fd);
	unlink(tmp);
	return rc;
}

static cJSON *spool(const hookd_ctx *ctx, hookd_call *call, cJSON *input)
{
	const struct spool *s = ctx->state;
	const hookd_inbound *in = ctx->api->inbound(call);
	cJSON *err = cJSON_GetObjectItemCaseSensitive(input, "error");
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(err, "status");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
	cJSON *rec = NULL, *hdrs, *out = NULL;
	char stem[160], name[200], *text = NULL;
	int rc;

	/* Called as a hook of its own (POST /hooks/spool), not as an on_error
	 * step: refuse rather than write what a client sent. */
	if (!cJSON_IsObject(err) || !cJSON_IsNumber(st) || (in && strcmp(in->hook, "spool") == 0)) {
		hookd_fail(ctx, call, 404, "spool is an on_error step, not a hook");
		return NULL;
	}
	if (st->valuedouble < 500 || !s->dir)
		return cJSON_CreateNull(); /* the sender's fault (or no dir): leave the error */

	if (!(rec = cJSON_CreateObject()) ||
	    !cJSON_AddStringToObject(rec, "request_id", in ? in->request_id : "") ||
	    !cJSON_AddStringToObject(rec, "hook", in ? in->hook : ""))
		goto nomem;
	/* move error and input from the host's tree into the record: input is
	 * ours to take items from, and is not used again */
	cJSON_AddItemToObject(rec, "error", cJSON_DetachItemFromObjectCaseSensitive(input, "error"));
	if (!(hdrs = cJSON_AddObjectToObject(rec, "headers")))
		goto nomem;
	for (size_t i = 0; i < s->nheaders; i++) {
		const char *v = ctx->api->header(call, s->headers[i]);
		if (v && !cJSON_AddStringToObject(hdrs, s->headers[i], v))
			goto nomem;
	}
	cJSON_AddItemToObject(rec, "input", cJSON_DetachItemFromObjectCaseSensitive(input, "input"));
	if (!(text = cJSON_PrintUnformatted(rec)))
		goto nomem;

	file_stem(in ? in->request_id : NULL, stem, sizeof(stem));
	if ((rc = write_atomic(s->dir, stem, text, name, sizeof(name))) < 0) {
		/* a failed on_error step: logged by the host, the next one runs,
		 * and without a replacement the client gets the original error */
		hookd_fail(ctx, call, 500, "cannot write to %s: %s", s->dir, strerror(-rc));
		goto out;
	}
	if (!(out = cJSON_CreateObject()) || !cJSON_AddStringToObject(out, "queued", name) ||
	    !cJSON_AddStringToObject(out, "error", cJSON_IsString(msg) ? msg->valuestring : ""))
		goto nomem;
	ctx->api->set_status(call, 202);
	hookd_log(ctx, HOOKD_LOG_INFO, "request %s: failed delivery (%d) queued as %s/%s",
		  in ? in->request_id : "-", (int)st->valuedouble, s->dir, name);
	goto out;
nomem:
	cJSON_Delete(out);
	out = NULL;
	hookd_fail(ctx, call, 500, "out of memory");
out:
	cJSON_free(text);
	cJSON_Delete(rec);
	return out;
}

HOOKD_PLUGIN_SYNC("spool", "1.0.0", HOOKD_HOOKS("spool"), spool_init, spool_fini, spool);
