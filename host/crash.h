/*
 * crash -- a fatal signal explains itself: which plugin, which file, which
 * generation, which hook, and a backtrace; it leaves a crash record behind
 * so that the next start does not load the same code again; then the
 * process dies of the same signal (its exit status says so).
 *
 * The handler is async-signal-safe: it formats with its own digits, writes
 * with write(2), and runs on an alternate stack so that a stack overflow in
 * a plugin is reported too (each thread that runs plugin code installs
 * one: crash_thread_init). The record is one small JSON object in
 * <state_dir>/crash.json, written to a temporary name and renamed.
 *
 * State: a signal handler takes no argument, so what it needs (the log's
 * fd, the record's paths) is one static set by crash_init before any other
 * thread starts and never written again.
 */
#ifndef HOOKD_CRASH_H
#define HOOKD_CRASH_H

#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <time.h>
#include <sys/types.h>

/* Install the handler for SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT and
 * SIGSYS; crash lines go to `log_fd`. `state_dir` (NULL: no record) must
 * exist. Call once, from main, before any thread starts; also sets up the
 * calling thread's alternate stack. `who` names the process in crash lines
 * (NULL: "hookd"). Returns 0 or -1 with err. */
int crash_init(int log_fd, const char *state_dir, const char *who, char *err, size_t errlen);

/* Give the calling thread an alternate signal stack (call first thing in
 * every thread that may run plugin code), and take it back before the
 * thread exits. Return 0 / nothing; failure only loses stack-overflow
 * reports on that thread. */
int crash_thread_init(void);
void crash_thread_fini(void);

/* The loop watchdog's signal (watchdog.h), sent to one thread only. */
#define HOOKD_WATCH_SIGNAL (SIGRTMIN + 2)

/* Fill `set` with every signal a thread may block: all but the fatal ones
 * and the watchdog's. A fault raised while its signal is blocked kills the
 * process at once, without running any handler (Linux forces the default
 * action). */
#define CRASH_FATAL_SIGNALS SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGSYS
static inline void crash_blockable_signals(sigset_t *set)
{
	static const int fatal[] = {CRASH_FATAL_SIGNALS};

	sigfillset(set);
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		sigdelset(set, fatal[i]);
	sigdelset(set, HOOKD_WATCH_SIGNAL);
}

/* A crash record, as read back at the next start. */
struct crash_record {
	char plugin[72];
	char file[256];      /* file name in the plugin folder */
	char hook[72];       /* "" when the crash was outside a call */
	char entry[32];      /* "call_sync", "init", ... */
	char signal[16];     /* "SIGSEGV" */
	uint64_t generation;
	int64_t time;        /* seconds since the epoch */
	dev_t dev;           /* identity of the file that crashed */
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

/* Read <state_dir>/crash.json. Returns 1 and *out when there is a record,
 * 0 when there is none, -1 with err when it exists but cannot be read. */
int crash_record_load(const char *state_dir, struct crash_record *out, char *err, size_t errlen);

/* Remove the record (the plugin's file changed, or it is gone). Returns 0
 * or -1 with err. */
int crash_record_clear(const char *state_dir, char *err, size_t errlen);

/* One line for logs and GET /plugins: "crashed the host at
 * 2026-11-29T10:00:00Z (SIGSEGV in hook h, call_sync, generation 3)". */
void crash_record_describe(const struct crash_record *r, char *out, size_t len);

#endif
