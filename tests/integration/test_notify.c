/*
 * systemd's notify protocol over a real NOTIFY_SOCKET (an AF_UNIX datagram
 * socket this test binds in the daemon's temp dir): READY=1 once it
 * listens, RELOADING=1 + MONOTONIC_USEC then READY=1 around every reload
 * (a failed one too, with a STATUS naming the failure), STOPPING=1 when it
 * drains, every message from the daemon's own pid and none from the
 * processes it spawns (they do not inherit NOTIFY_SOCKET). With
 * WATCHDOG_USEC, WATCHDOG=1 keeps coming, and stops while a plugin holds an
 * event loop.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../support/harness.h"

TestSuite(notify, .fini = hd_suite_teardown);

static struct hd D;
static char env_sock[300], env_wd[64];

/* Bind the notify socket in D's dir (prepared), with SO_PASSCRED so every
 * datagram carries its sender's pid; point D's environment at it. */
static int nsock_open(const char *watchdog_usec)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), on = 1;
	static const char *env[3];

	cr_assert_geq(fd, 0);
	cr_assert_lt(strlen(D.dir) + sizeof("/notify.sock"), sizeof(a.sun_path), "%s", D.dir);
	memcpy(a.sun_path, D.dir, strlen(D.dir));
	strcat(a.sun_path, "/notify.sock");
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind %s", a.sun_path);
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
	snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s", a.sun_path);
	env[0] = env_sock;
	env[1] = NULL;
	if (watchdog_usec) {
		snprintf(env_wd, sizeof(env_wd), "WATCHDOG_USEC=%s", watchdog_usec);
		env[1] = env_wd;
	}
	env[2] = NULL;
	D.env = env;
	return fd;
}

/* The next datagram (NUL-terminated into msg), waiting up to timeout_ms
 * (scaled); false on timeout. *pid: its sender. */
static bool nsock_next(int fd, char *msg, size_t len, pid_t *pid, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char cbuf[CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = {msg, len - 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	ssize_t n;

	if (poll(&p, 1, timeout_ms * hd_scale()) != 1)
		return false;
	n = recvmsg(fd, &mh, 0);
	cr_assert_geq(n, 0);
	msg[n] = 0;
	*pid = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred u;
			memcpy(&u, CMSG_DATA(c), sizeof(u));
			*pid = u.pid;
		}
	}
	return true;
}

/* The next message, which must come from the daemon itself. */
static void next_msg(int fd, char *msg, size_t len)
{
	pid_t pid;

	cr_assert(nsock_next(fd, msg, len, &pid, 20000), "no notify message came");
	cr_log_info("notify: %s", msg);
	cr_assert_eq(pid, D.pid, "message \"%s\" from pid %ld, not the daemon's %ld", msg,
		     (long)pid, (long)D.pid);
}

static uint64_t mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* A /proc file, whose size stat does not know: read to the end (caller
 * frees); NULL if it is gone. */
static char *read_proc(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t n = 0, cap = 4096, got;
	char *buf;

	if (!f)
		return NULL;
	buf = malloc(cap + 1);
	cr_assert_not_null(buf);
	while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			buf = realloc(buf, (cap *= 2) + 1);
			cr_assert_not_null(buf);
		}
	}
	fclose(f);
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

/* The processes the daemon spawned (isolated runners, from whichever of its
 * threads): none of them has NOTIFY_SOCKET in its environment. Returns how
 * many were looked at. */
static int children_without_notify_socket(void)
{
	char path[300], *kids, *p, *save;
	struct dirent *t;
	DIR *tasks;
	int seen = 0;

	snprintf(path, sizeof(path), "/proc/%ld/task", (long)D.pid);
	tasks = opendir(path);
	cr_assert_not_null(tasks, "%s", path);
	while ((t = readdir(tasks))) {
		if (t->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%s/children", (long)D.pid, t->d_name);
		if (!(kids = read_proc(path, NULL)))
			continue; /* the thread ended meanwhile */
		for (p = strtok_r(kids, " \n", &save); p; p = strtok_r(NULL, " \n", &save)) {
			size_t len;
			char *env;
			snprintf(path, sizeof(path), "/proc/%s/environ", p);
			if (!(env = read_proc(path, &len)))
				continue; /* gone meanwhile */
			for (size_t i = 0; i < len; i += strlen(env + i) + 1)
				cr_assert_neq(strncmp(env + i, "NOTIFY_SOCKET=", 14), 0,
					      "child %s inherited %s", p, env + i);
			free(env);
			seen++;
		}
		free(kids);
	}
	closedir(tasks);
	return seen;
}

Test(notify, ready_reloading_ready_a_failed_reload_then_stopping_in_order, .timeout = 90)
{
	char msg[1024], want[128];
	unsigned long long usec;
	int fd;

	hd_prepare(&D, "\"plugins\": {\"echo\": {\"isolate\": true}}",
		   (const char *const[]){"echo", "hello", NULL});
	fd = nsock_open(NULL);
	hd_launch_or_fail(&D);

	/* READY=1 once it listens (the status names the port it got) */
	next_msg(fd, msg, sizeof(msg));
	snprintf(want, sizeof(want), "listening on port %d ", D.port);
	cr_assert_eq(strncmp(msg, "READY=1\nSTATUS=generation 1 loaded; ", 36), 0, "%s", msg);
	cr_assert(strstr(msg, want), "%s", msg);
	/* the isolated plugin's processes were not told where systemd listens */
	cr_assert_geq(children_without_notify_socket(), 1, "no isolated process found");

	/* a good reload */
	uint64_t before = mono_usec();
	hd_signal(&D, SIGHUP);
	next_msg(fd, msg, sizeof(msg));
	cr_assert_eq(sscanf(msg, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec), 1, "%s", msg);
	cr_assert_geq(usec, before, "MONOTONIC_USEC is CLOCK_MONOTONIC, taken after the signal");
	cr_assert_leq(usec, mono_usec());
	next_msg(fd, msg, sizeof(msg));
	cr_assert_str_eq(msg, "READY=1\nSTATUS=generation 2 loaded: 2 plugin(s), 2 hook(s)");

	/* a failed reload ends with READY=1 too, and says why */
	hd_write_config(&D, "\"no_such_key\": 1");
	hd_signal(&D, SIGHUP);
	next_msg(fd, msg, sizeof(msg));
	cr_assert_eq(strncmp(msg, "RELOADING=1\nMONOTONIC_USEC=", 27), 0, "%s", msg);
	next_msg(fd, msg, sizeof(msg));
	cr_assert_eq(strncmp(msg, "READY=1\nSTATUS=reload failed: ", 30), 0, "%s", msg);
	cr_assert(strstr(msg, "no_such_key"), "the status names the failure: %s", msg);
	cr_assert(strstr(msg, "; still serving generation 2"), "%s", msg);

	/* SIGTERM: STOPPING=1 as the drain starts, and nothing after it */
	hd_signal(&D, SIGTERM);
	next_msg(fd, msg, sizeof(msg));
	cr_assert_eq(strncmp(msg, "STOPPING=1\nSTATUS=", 18), 0, "%s", msg);
	cr_assert(hd_wait_exit(&D, 30000));
	cr_assert_eq(D.exit_status, 0);
	pid_t pid;
	cr_assert_not(nsock_next(fd, msg, sizeof(msg), &pid, 0), "after STOPPING: %s", msg);
	close(fd);
	hd_stop(&D);
}

Test(notify, watchdog_pings_keep_coming_and_stop_while_a_plugin_holds_a_loop, .timeout = 90)
{
	char msg[1024], ready[1024], body[64];
	struct hd_resp r;
	int fd, pings = 0;

	/* the call holds its loop 2 s x hd_scale() (20 s under TSan): its
	 * deadline must be longer */
	hd_prepare(&D, "\"loop_warn_ms\": 100, \"timeout_ms\": 120000",
		   (const char *const[]){"echo", NULL});
	hd_install(&D, "fixtures/busy_async.so", "busy_async.so");
	fd = nsock_open("400000"); /* a ping every 200 ms */
	hd_launch_or_fail(&D);
	/* no ping before READY=1 (systemd's watchdog starts after start-up; the
	 * socket's queue holds only ~10 datagrams, and READY=1 must not be lost) */
	next_msg(fd, ready, sizeof(ready));
	cr_assert_eq(strncmp(ready, "READY=1\n", 8), 0, "%s", ready);

	/* they keep coming */
	while (pings < 3) {
		next_msg(fd, msg, sizeof(msg));
		cr_assert_str_eq(msg, "WATCHDOG=1");
		pings++;
	}

	/* a plugin holds its loop for far longer than a ping period: the pings
	 * stop (a status says why) until it lets go; the next message is the
	 * ping with the status as it was */
	snprintf(body, sizeof(body), "{\"ms\": %d}", 2000 * hd_scale());
	struct hd_bg *bg = hd_bg_post(&D, "/hooks/busy", body);
	/* the pings before the plugin took the loop (a bounded number: the
	 * call reaches the loop at once) */
	for (int before = 0;; before++) {
		cr_assert_lt(before, 100, "the pings never stopped");
		next_msg(fd, msg, sizeof(msg));
		if (strcmp(msg, "WATCHDOG=1") != 0)
			break;
	}
	cr_assert_eq(strncmp(msg, "STATUS=loop ", 12), 0, "%s", msg);
	cr_assert(strstr(msg, " held by plugin code for "), "%s", msg);
	cr_assert(strstr(msg, ": watchdog pings withheld"), "%s", msg);
	next_msg(fd, msg, sizeof(msg));
	char back[1100];
	snprintf(back, sizeof(back), "WATCHDOG=1\n%s", ready + 8);
	cr_assert_str_eq(msg, back, "no ping while the loop was held");
	hd_bg_wait(bg, &r, NULL);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	hd_resp_free(&r);
	/* and on they go */
	next_msg(fd, msg, sizeof(msg));
	cr_assert_str_eq(msg, "WATCHDOG=1");
	close(fd);
	cr_assert_eq(hd_stop(&D), 0);
}
