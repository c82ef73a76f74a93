/*
 * probe -- see probe.h.
 */
#include "probe.h"
#include "clock.h"
#include "crash.h"
#include "loader.h"
#include "sigfmt.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PROBE_MAX_OUTPUT 65536

static int64_t ms_now(void)
{
	return clock_mono_ns() / 1000000;
}

int probe_run(const char *exe, const char *path, uint32_t timeout_ms, cJSON **desc,
	      char *reason, size_t len)
{
	char *argv[] = {(char *)exe, "--probe", (char *)path, NULL};
	posix_spawn_file_actions_t fa;
	char *buf = NULL;
	size_t got = 0;
	int pfd[2], rc, st = 0;
	int64_t until = ms_now() + timeout_ms;
	bool timed_out = false;
	pid_t pid;

	*desc = NULL;
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(reason, len, "probe: cannot make a pipe: %s", strerror(errno));
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	rc = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc != 0) {
		close(pfd[0]);
		snprintf(reason, len, "probe: cannot run %s: %s", exe, strerror(rc));
		return -1;
	}
	if (!(buf = malloc(PROBE_MAX_OUTPUT + 1)))
		goto read_done;
	for (;;) {
		int64_t left = until - ms_now();
		struct pollfd p = {pfd[0], POLLIN, 0};
		if (left <= 0) {
			timed_out = true;
			break;
		}
		int n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			timed_out = n == 0;
			break;
		}
		ssize_t r = read(pfd[0], buf + got, PROBE_MAX_OUTPUT - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (got += (size_t)r) == PROBE_MAX_OUTPUT)
			break;
	}
read_done:
	close(pfd[0]);
	if (timed_out)
		kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (timed_out) {
		snprintf(reason, len, "probe: loading it did not finish within %u ms (a "
			 "constructor that never returns?)", timeout_ms);
		goto fail;
	}
	if (WIFSIGNALED(st)) {
		snprintf(reason, len, "probe: loading it killed the probe process with %s (a "
			 "constructor that crashes, or a file still being written?)",
			 sigfmt_name(WTERMSIG(st)));
		goto fail;
	}
	if (!buf) {
		snprintf(reason, len, "probe: out of memory");
		goto fail;
	}
	buf[got] = 0;
	cJSON *j = cJSON_ParseWithLength(buf, got);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	if (cJSON_IsString(e)) {
		snprintf(reason, len, "%s", e->valuestring);
		cJSON_Delete(j);
		goto fail;
	}
	if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "name"))) {
		cJSON_Delete(j);
		if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
			snprintf(reason, len, "probe: loading it made the process exit with status "
				 "%d (a constructor that calls exit?)", WEXITSTATUS(st));
		else
			snprintf(reason, len, "probe: no descriptor came back");
		goto fail;
	}
	free(buf);
	*desc = j;
	return 0;
fail:
	free(buf);
	return -1;
}

int probe_main(const char *path)
{
	char reason[1024];
	cJSON *d = NULL;
	char *text;

	/* a constructor that writes to stdout must not garble the answer:
	 * keep the real stdout for us and give the plugin stderr */
	int out = dup(STDOUT_FILENO);
	dup2(STDERR_FILENO, STDOUT_FILENO);
	/* a fault in a constructor must kill this process by its signal, for
	 * probe_run to name it: the sanitizers' own handlers would exit 1 */
	static const int fatal[] = {CRASH_FATAL_SIGNALS};
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		signal(fatal[i], SIG_DFL);
	if (loader_describe_file(path, &d, reason, sizeof(reason)) < 0) {
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "error", reason);
	}
	text = cJSON_PrintUnformatted(d);
	if (text && out >= 0) {
		size_t n = strlen(text), off = 0;
		while (off < n) {
			ssize_t w = write(out, text + off, n - off);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
	}
	_exit(0); /* no destructors, no exit handlers of the plugin */
}
