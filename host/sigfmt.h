/*
 * sigfmt -- text for signal handlers: formatting into a caller's buffer with
 * our own digits (no printf, no locale, no allocation) and write(2). Every
 * function is async-signal-safe. Output past the buffer is dropped.
 */
#ifndef HOOKD_SIGFMT_H
#define HOOKD_SIGFMT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct sbuf {
	char *p;
	size_t n, cap;
};

void sb_mem(struct sbuf *b, const char *s, size_t n);
void sb_str(struct sbuf *b, const char *s);
void sb_u64(struct sbuf *b, uint64_t v);
void sb_hex(struct sbuf *b, uintptr_t v);
/* `s` as the inside of a JSON string. */
void sb_json(struct sbuf *b, const char *s);
/* Seconds since the epoch as ISO 8601 UTC ("2026-11-29T10:00:00Z"). */
void sb_time(struct sbuf *b, int64_t t);
/* The log's own time stamp ("2026-11-29T10:00:00.123Z"). */
void sb_log_time(struct sbuf *b, const struct timespec *ts);
/* write(2) all of it, retrying on EINTR; gives up on any other error. */
void sb_write_all(int fd, const char *p, size_t n);

/* "SIGSEGV", "SIGKILL", ... for a signal number ("a signal" when unknown).
 * Async-signal-safe. */
const char *sigfmt_name(int sig);

#endif
