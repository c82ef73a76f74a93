/*
 * log -- one line per event on a file descriptor (stderr by default).
 *
 * A `struct log` is owned by main and handed to every module that logs; it
 * holds no other state than the threshold and the fd, so any thread may log
 * (each line is one write(2), so lines from threads never interleave).
 */
#ifndef HOOKD_LOG_H
#define HOOKD_LOG_H

#include <stdarg.h>
#include <stdatomic.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

struct log {
	atomic_int level; /* lines above this level are dropped */
	int fd;
	char who[48];     /* "" (hookd), or "isolated process 123": starts every line */
};

/* Initialise `lg` to write to `fd` at `level`. */
void log_init(struct log *lg, int fd, enum log_level level);

/* Parse "error" | "warn" | "info" | "debug"; returns the level or -1. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

/* Log one line: "<time> <level> [tag: ]message". `tag` may be NULL. */
void log_msg(const struct log *lg, enum log_level level, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void log_vmsg(const struct log *lg, enum log_level level, const char *tag, const char *fmt,
	      va_list ap) __attribute__((format(printf, 4, 0)));

#define log_error(lg, ...) log_msg((lg), LOG_ERROR, NULL, __VA_ARGS__)
#define log_warn(lg, ...) log_msg((lg), LOG_WARN, NULL, __VA_ARGS__)
#define log_info(lg, ...) log_msg((lg), LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(lg, ...) log_msg((lg), LOG_DEBUG, NULL, __VA_ARGS__)

#endif
