/*
 * notify -- see notify.h.
 */
#include "notify.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int notify_parse_addr(const char *value, struct sockaddr_un *addr, socklen_t *len)
{
	size_t n;

	if (!value || (value[0] != '/' && value[0] != '@'))
		return -1;
	n = strlen(value);
	if (n < 2 || n >= sizeof(addr->sun_path))
		return -1;
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	memcpy(addr->sun_path, value, n);
	if (value[0] == '@')
		addr->sun_path[0] = 0; /* abstract: the name is the bytes after the NUL, unterminated */
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (value[0] == '/'));
	return 0;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

uint64_t notify_watchdog_usec(const char *usec, const char *pid, pid_t self)
{
	uint64_t v, p;

	if (!parse_u64(usec, &v) || !v)
		return 0;
	if (pid && *pid && (!parse_u64(pid, &p) || p != (uint64_t)self))
		return 0; /* meant for another process (a wrapper's) */
	return v;
}

size_t notify_format_reloading(char *buf, size_t len, uint64_t monotonic_usec)
{
	int n = snprintf(buf, len, "RELOADING=1\nMONOTONIC_USEC=%llu",
			 (unsigned long long)monotonic_usec);

	return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}

int notify_init(struct notify *n, char *err, size_t errlen)
{
	const char *sock = getenv("NOTIFY_SOCKET");
	int rc = 0;

	memset(n, 0, sizeof(*n));
	n->fd = -1;
	pthread_mutex_init(&n->mu, NULL);
	if (sock && notify_parse_addr(sock, &n->addr, &n->addrlen) < 0) {
		snprintf(err, errlen, "NOTIFY_SOCKET=%s: not an absolute path or @name: not "
			 "notifying the service manager", sock);
		rc = -1;
	} else if (sock) {
		struct timeval tv = {NOTIFY_SEND_WAIT_MS / 1000, (NOTIFY_SEND_WAIT_MS % 1000) * 1000};
		n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (n->fd < 0) {
			snprintf(err, errlen, "NOTIFY_SOCKET: socket: %s", strerror(errno));
			rc = -1;
		} else {
			/* bounds a waiting send (notify_send) */
			setsockopt(n->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			n->watchdog_usec = notify_watchdog_usec(getenv("WATCHDOG_USEC"),
								getenv("WATCHDOG_PID"), getpid());
		}
	}
	/* never inherited: a probe, a runner or a plugin is not hookd */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return rc;
}

void notify_fini(struct notify *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	pthread_mutex_destroy(&n->mu);
}

int notify_send(struct notify *n, const char *msg, bool wait)
{
	ssize_t w;

	if (n->fd < 0)
		return 0;
	do
		w = sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL | (wait ? 0 : MSG_DONTWAIT),
			   (const struct sockaddr *)&n->addr, n->addrlen);
	while (w < 0 && errno == EINTR);
	return w < 0 ? -1 : 0;
}

/* Keep the status as the current one (one line) and send `head` + STATUS=. */
static void send_status(struct notify *n, const char *head, const char *fmt, va_list ap)
{
	char msg[NOTIFY_STATUS_MAX + 64];

	if (n->fd < 0)
		return;
	pthread_mutex_lock(&n->mu);
	vsnprintf(n->status, sizeof(n->status), fmt, ap);
	for (char *p = n->status; *p; p++)
		if (*p == '\n')
			*p = ' ';
	snprintf(msg, sizeof(msg), "%s%sSTATUS=%s", head, *head ? "\n" : "", n->status);
	pthread_mutex_unlock(&n->mu);
	notify_send(n, msg, true);
}

void notify_ready(struct notify *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_status(n, "READY=1", fmt, ap);
	va_end(ap);
	if (n->fd >= 0) {
		pthread_mutex_lock(&n->mu);
		n->ready = true;
		pthread_mutex_unlock(&n->mu);
	}
}

void notify_reloading(struct notify *n)
{
	char msg[64];
	if (n->fd < 0)
		return;
	notify_format_reloading(msg, sizeof(msg), (uint64_t)clock_mono_ns() / 1000);
	notify_send(n, msg, true);
}

void notify_stopping(struct notify *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_status(n, "STOPPING=1", fmt, ap);
	va_end(ap);
}

unsigned notify_ping_ms(const struct notify *n)
{
	uint64_t ms;

	if (n->fd < 0 || !n->watchdog_usec)
		return 0;
	ms = n->watchdog_usec / 2000;
	return ms < 1 ? 1 : ms > 3600000 ? 3600000 : (unsigned)ms;
}

void notify_watchdog_tick(void *arg, const char *stuck)
{
	struct notify *n = arg;
	char msg[NOTIFY_STATUS_MAX + 64];
	bool was;

	pthread_mutex_lock(&n->mu);
	if (!n->ready) {
		pthread_mutex_unlock(&n->mu);
		return;
	}
	was = n->withheld;
	n->withheld = stuck != NULL;
	if (stuck && !was)
		snprintf(msg, sizeof(msg), "STATUS=%s: watchdog pings withheld", stuck);
	else if (!stuck && was)
		snprintf(msg, sizeof(msg), "WATCHDOG=1\nSTATUS=%s", n->status);
	else
		snprintf(msg, sizeof(msg), "%s", stuck ? "" : "WATCHDOG=1");
	pthread_mutex_unlock(&n->mu);
	/* a ping may be dropped (the next comes soon); the status lines not */
	if (*msg)
		notify_send(n, msg, strcmp(msg, "WATCHDOG=1") != 0);
}
