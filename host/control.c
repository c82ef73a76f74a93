/*
 * control -- see control.h.
 */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "status.h"

#define CTL_RELOAD_TIMEOUT_S 300 /* a reload probes every new file (10 s each at most) */
#define CTL_POLL_MS 50
#define CTL_UNREACHABLE_S 30     /* /health not answering this long: give up */
#define CTL_STOP_GRACE_MS 30000  /* beyond drain_ms, for the plugins' fini */

/* The pid in `path`, or 0 (errno set: ENOENT no file, EINVAL garbage). */
static pid_t read_pid(const char *path)
{
	char buf[32];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long v;
	char *end;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		errno = EINVAL;
		return 0;
	}
	buf[n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || v <= 0 || v > INT32_MAX || (*end && *end != '\n')) {
		errno = EINVAL;
		return 0;
	}
	return (pid_t)v;
}

static bool alive(pid_t pid)
{
	return kill(pid, 0) == 0 || errno == EPERM;
}

/* Is `pid` a hookd (its command name)? */
static bool is_hookd(pid_t pid)
{
	char path[64], comm[32] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	if (n <= 0)
		return false;
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	return strcmp(comm, "hookd") == 0;
}

int ctl_pidfile_write(const char *path, char *err, size_t errlen)
{
	pid_t self = getpid(), other = read_pid(path);
	char tmp[4200], text[32];
	int fd, n;

	if (other && other != self && alive(other) && is_hookd(other)) {
		snprintf(err, errlen, "pid_file %s names pid %ld, a hookd that is running: stop it "
			 "first (hookd -s stop), or give this one another pid_file", path,
			 (long)other);
		return -1;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)self) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "pid_file %s: path too long", path);
		return -1;
	}
	n = snprintf(text, sizeof(text), "%ld\n", (long)self);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, (size_t)n) != n || close(fd) < 0) {
		snprintf(err, errlen, "cannot write pid_file %s: %s", path, strerror(errno));
		if (fd >= 0)
			unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot write pid_file %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

void ctl_pidfile_remove(const char *path)
{
	if (path && read_pid(path) == getpid())
		unlink(path);
}

/* ---- hookd -s ------------------------------------------------------- */

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int stop(pid_t pid, const char *pidfile, uint32_t drain_ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	unsigned waited = 0, limit = drain_ms + CTL_STOP_GRACE_MS;

	if (kill(pid, SIGTERM) < 0) {
		fprintf(stderr, "hookd -s stop: cannot signal pid %ld (from %s): %s\n", (long)pid,
			pidfile, strerror(errno));
		if (pfd >= 0)
			close(pfd);
		return 1;
	}
	while (waited < limit) {
		if (pfd >= 0) {
			struct pollfd p = {pfd, POLLIN, 0};
			int rc = poll(&p, 1, CTL_POLL_MS);
			if (rc > 0)
				break;
		} else {
			if (!alive(pid))
				break;
			sleep_ms(CTL_POLL_MS);
		}
		waited += CTL_POLL_MS;
	}
	if (pfd >= 0)
		close(pfd);
	if (waited >= limit) {
		fprintf(stderr, "hookd -s stop: hookd (pid %ld) is still running %u ms after "
			"SIGTERM\n", (long)pid, limit);
		return 1;
	}
	printf("hookd (pid %ld) stopped\n", (long)pid);
	return 0;
}

struct body {
	char *data;
	size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	size_t add = size * n;
	char *d;

	if (b->len + add > (1u << 20) || !(d = realloc(b->data, b->len + add + 1)))
		return 0;
	memcpy(d + b->len, p, add);
	b->data = d;
	b->len += add;
	b->data[b->len] = '\0';
	return add;
}

/* GET `path` (/health, /ready) from the admin listener if there is one,
 * else the public one. Returns the parsed body (of a 200, or of a 503 for
 * /ready), or NULL with why in err. */
static cJSON *get_json(CURL *h, const struct config *cfg, const char *path, char *err,
		       size_t errlen)
{
	struct body b = {0};
	char url[512];
	const char *host = cfg->admin_listen ? cfg->admin_host : cfg->listen_host;
	unsigned port = cfg->admin_listen ? cfg->admin_port : cfg->listen_port;
	long code = 0;
	CURLcode rc;
	cJSON *o = NULL;

	curl_easy_reset(h);
	if (cfg->admin_unix) {
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, cfg->admin_unix);
		snprintf(url, sizeof(url), "http://localhost%s", path);
	} else {
		/* a wildcard address is reached on loopback */
		if (!host || !host[0] || strcmp(host, "0.0.0.0") == 0)
			host = "127.0.0.1";
		else if (strcmp(host, "::") == 0)
			host = "::1";
		snprintf(url, sizeof(url), strchr(host, ':') ? "http://[%s]:%u%s"
							       : "http://%s:%u%s", host, port, path);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (rc != CURLE_OK)
		snprintf(err, errlen, "GET %s: %s", url, curl_easy_strerror(rc));
	else if (code != 200 && !(code == 503 && strcmp(path, "/ready") == 0))
		snprintf(err, errlen, "GET %s: status %ld", url, code);
	else if (!(o = cJSON_Parse(b.data ? b.data : "")))
		snprintf(err, errlen, "GET %s: not JSON", url);
	free(b.data);
	return o;
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : "";
}

/* After a good reload: say so when a hook cannot run (the reload itself
 * succeeded: the exit status stays 0). */
static void not_ready(CURL *h, const struct config *cfg)
{
	char err[600];
	cJSON *o = get_json(h, cfg, "/ready", err, sizeof(err));
	const cJSON *why = cJSON_GetObjectItemCaseSensitive(o, "reasons"), *r;

	if (o && cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "ready")))
		cJSON_ArrayForEach(r, why)
			if (cJSON_IsString(r))
				printf("warning: not ready: %s\n", r->valuestring);
	cJSON_Delete(o);
}

static int reload(pid_t pid, const struct config *cfg)
{
	uint64_t t0 = status_now_us();
	unsigned waited = 0, unreachable = 0;
	char err[600] = "";
	int rc = 1;
	CURL *h;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		h = NULL;
	else if (!(h = curl_easy_init()))
		curl_global_cleanup();
	if (!h) {
		fprintf(stderr, "hookd -s reload: cannot initialise libcurl\n");
		return 1;
	}
	if (kill(pid, SIGHUP) < 0) {
		fprintf(stderr, "hookd -s reload: cannot signal pid %ld: %s\n", (long)pid,
			strerror(errno));
		goto out;
	}
	/* the reload that answers this signal is the first one that started
	 * after it was sent (one under way then is followed by one more) */
	for (; waited < CTL_RELOAD_TIMEOUT_S * 1000u; waited += CTL_POLL_MS * 2) {
		cJSON *o = get_json(h, cfg, "/health", err, sizeof(err));
		const cJSON *lr = cJSON_GetObjectItemCaseSensitive(o, "last_reload");
		if (lr && num(lr, "started_monotonic_us") >= (double)t0) {
			if (strcmp(str(lr, "result"), "failed") == 0) {
				fprintf(stderr, "hookd -s reload: reload of %s failed: %s; still "
					"serving generation %.0f\n", cfg->path, str(lr, "errors"),
					num(lr, "generation"));
			} else {
				printf("reloaded %s: serving generation %.0f (%.0f plugin(s))",
				       cfg->path, num(lr, "generation"), num(o, "plugins"));
				if (num(lr, "rejected") > 0)
					printf("; %.0f file(s) rejected: %s", num(lr, "rejected"),
					       str(lr, "errors"));
				printf("\n");
				rc = 0;
				not_ready(h, cfg);
			}
			cJSON_Delete(o);
			goto out;
		}
		unreachable = o ? 0 : unreachable + CTL_POLL_MS * 2;
		cJSON_Delete(o);
		if (unreachable >= CTL_UNREACHABLE_S * 1000u) {
			fprintf(stderr, "hookd -s reload: signalled pid %ld, but its /health does not "
				"answer (%s); is the listen address in %s the one it uses (hookd -l)?\n",
				(long)pid, err, cfg->path);
			goto out;
		}
		if (!alive(pid)) {
			fprintf(stderr, "hookd -s reload: hookd (pid %ld) exited before the reload "
				"ended\n", (long)pid);
			goto out;
		}
		sleep_ms(CTL_POLL_MS * 2);
	}
	fprintf(stderr, "hookd -s reload: no outcome after %d s (%s)\n", CTL_RELOAD_TIMEOUT_S,
		err[0] ? err : "the reload is still running");
out:
	curl_easy_cleanup(h);
	curl_global_cleanup();
	return rc;
}

int ctl_main(const char *cmd, const char *config_path, const char *listen)
{
	struct config *cfg = NULL;
	char err[1024];
	pid_t pid;
	int rc = 1;

	if (strcmp(cmd, "reload") != 0 && strcmp(cmd, "stop") != 0) {
		fprintf(stderr, "hookd -s: unknown command \"%s\" (expected reload or stop)\n", cmd);
		return 1;
	}
	if (config_load(config_path, &cfg, err, sizeof(err)) < 0 ||
	    (listen && config_set_listen(cfg, listen, err, sizeof(err)) < 0)) {
		fprintf(stderr, "hookd -s %s: %s\n", cmd, err);
		goto out;
	}
	if (!cfg->pid_file) {
		fprintf(stderr, "hookd -s %s: %s sets no pid_file, so the running hookd cannot be "
			"found: add \"pid_file\"\n", cmd, config_path);
		goto out;
	}
	if (!(pid = read_pid(cfg->pid_file))) {
		fprintf(stderr, "hookd -s %s: cannot read pid_file %s: %s (is hookd running?)\n",
			cmd, cfg->pid_file, errno == EINVAL ? "no pid in it" : strerror(errno));
		goto out;
	}
	if (!alive(pid)) {
		fprintf(stderr, "hookd -s %s: hookd is not running (pid_file %s names pid %ld, "
			"which is gone)\n", cmd, cfg->pid_file, (long)pid);
		goto out;
	}
	rc = cmd[0] == 's' ? stop(pid, cfg->pid_file, cfg->drain_ms) : reload(pid, cfg);
out:
	config_free(cfg);
	return rc;
}
