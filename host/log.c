/*
 * log -- timestamped lines, one write(2) each. Lines longer than the buffer
 * are cut and end in "...". Never allocates, so it is safe on every error
 * path (out of memory included).
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_init(struct log *lg, int fd, enum log_level level)
{
	atomic_init(&lg->level, (int)level);
	lg->fd = fd;
	lg->who[0] = 0;
}

int log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0]))
		return "?";
	return level_names[level];
}

void log_vmsg(const struct log *lg, enum log_level level, const char *tag, const char *fmt,
	      va_list ap)
{
	char line[2048];
	size_t n = 0, cap = sizeof(line) - 1; /* room for the newline */
	int saved_errno = errno;
	struct timespec ts;
	struct tm tm;
	int w;

	if ((int)level > atomic_load_explicit(&lg->level, memory_order_relaxed))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	w = snprintf(line + n, cap - n, ".%03ldZ %s ", ts.tv_nsec / 1000000L,
		     log_level_name(level));
	n += (w > 0 && (size_t)w < cap - n) ? (size_t)w : 0;
	if (lg->who[0]) {
		w = snprintf(line + n, cap - n, "[%s] ", lg->who);
		n += (w > 0 && (size_t)w < cap - n) ? (size_t)w : 0;
	}
	if (tag) {
		w = snprintf(line + n, cap - n, "%s: ", tag);
		n += (w > 0 && (size_t)w < cap - n) ? (size_t)w : 0;
	}
	w = vsnprintf(line + n, cap - n, fmt, ap);
	if (w < 0)
		w = 0;
	if ((size_t)w >= cap - n) {
		n = cap;
		memcpy(line + n - 3, "...", 3);
	} else {
		n += (size_t)w;
	}
	line[n++] = '\n';
	for (size_t off = 0; off < n;) {
		ssize_t r = write(lg->fd, line + off, n - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	errno = saved_errno;
}

void log_msg(const struct log *lg, enum log_level level, const char *tag, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lg, level, tag, fmt, ap);
	va_end(ap);
}
