/*
 * crash -- see crash.h.
 */
#include "crash.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "blame.h"
#include "json.h"
#include "sigfmt.h"
#include "plugin.h"

#define CRASH_ALTSTACK (64 * 1024)
#define CRASH_RECORD "crash.json"
#define CRASH_FRAMES 48

static const int fatal_signals[] = {CRASH_FATAL_SIGNALS};

/* Set once by crash_init before threads start; read by the handler. */
static struct {
	int log_fd;
	bool record;
	char path[PATH_MAX];     /* <state_dir>/crash.json */
	char tmp[PATH_MAX];      /* <state_dir>/.crash.json.tmp */
	char who[64];            /* "hookd", or "isolated process 123 of hookd" */
} conf = {.log_fd = 2, .who = "hookd"};

static _Thread_local void *altstack;

/* ---- the handler ------------------------------------------------------ */

static void write_record(const struct blame_frame *f, const char *sig, int64_t now)
{
	const struct plugin *p = f->plugin;
	char buf[2048];
	struct sbuf b = {buf, 0, sizeof(buf)};
	int fd;

	sb_str(&b, "{\"plugin\":\"");
	sb_json(&b, p->desc.name);
	sb_str(&b, "\",\"file\":\"");
	sb_json(&b, p->file);
	sb_str(&b, "\",\"hook\":\"");
	sb_json(&b, f->hook ? f->hook : "");
	sb_str(&b, "\",\"entry\":\"");
	sb_json(&b, f->entry);
	sb_str(&b, "\",\"signal\":\"");
	sb_str(&b, sig);
	sb_str(&b, "\",\"generation\":\"");
	sb_u64(&b, f->generation);
	sb_str(&b, "\",\"time\":\"");
	sb_u64(&b, (uint64_t)now);
	sb_str(&b, "\",\"dev\":\"");
	sb_u64(&b, (uint64_t)p->id.dev);
	sb_str(&b, "\",\"ino\":\"");
	sb_u64(&b, (uint64_t)p->id.ino);
	sb_str(&b, "\",\"size\":\"");
	sb_u64(&b, (uint64_t)p->id.size);
	sb_str(&b, "\",\"mtime_s\":\"");
	sb_u64(&b, (uint64_t)p->id.mtime.tv_sec);
	sb_str(&b, "\",\"mtime_ns\":\"");
	sb_u64(&b, (uint64_t)p->id.mtime.tv_nsec);
	sb_str(&b, "\"}\n");
	if (b.n == b.cap)
		return; /* cut short: better no record than a broken one */
	fd = open(conf.tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	sb_write_all(fd, buf, b.n);
	fsync(fd);
	close(fd);
	rename(conf.tmp, conf.path);
}

static void on_fatal(int sig, siginfo_t *si, void *uctx)
{
	const struct blame_frame *f = blame_current();
	const char *name = sigfmt_name(sig);
	char buf[1024];
	struct sbuf b = {buf, 0, sizeof(buf) - 1};
	struct timespec ts;
	void *frames[CRASH_FRAMES];
	int n;

	(void)uctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	sb_log_time(&b, &ts);
	sb_str(&b, " error ");
	sb_str(&b, conf.who);
	sb_str(&b, " crashed: ");
	sb_str(&b, name);
	if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL) {
		sb_str(&b, " at address ");
		sb_hex(&b, (uintptr_t)si->si_addr);
	}
	if (f) {
		sb_str(&b, " in ");
		blame_describe(&b, f);
		if (conf.record)
			sb_str(&b, "; crash record written: the next start runs it isolated "
				   "until its file changes");
	} else {
		sb_str(&b, " outside plugin code (a bug in hookd: please report it with the "
			   "backtrace below)");
	}
	buf[b.n++] = '\n';
	sb_write_all(conf.log_fd, buf, b.n);
	n = backtrace(frames, CRASH_FRAMES);
	backtrace_symbols_fd(frames, n, conf.log_fd);
	if (f && conf.record)
		write_record(f, name, ts.tv_sec);
	/* SA_RESETHAND restored the default action: a fault re-executes the
	 * instruction and dies of it; a raised signal is raised again, still
	 * blocked here, and ends the process once we return */
	raise(sig);
}

/* ---- set-up ----------------------------------------------------------- */

int crash_thread_init(void)
{
	stack_t ss = {0};

	if (altstack)
		return 0;
	altstack = mmap(NULL, CRASH_ALTSTACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);
	if (altstack == MAP_FAILED) {
		altstack = NULL;
		return -1;
	}
	ss.ss_sp = altstack;
	ss.ss_size = CRASH_ALTSTACK;
	if (sigaltstack(&ss, NULL) < 0) {
		munmap(altstack, CRASH_ALTSTACK);
		altstack = NULL;
		return -1;
	}
	return 0;
}

void crash_thread_fini(void)
{
	stack_t ss = {.ss_flags = SS_DISABLE};

	if (!altstack)
		return;
	sigaltstack(&ss, NULL);
	munmap(altstack, CRASH_ALTSTACK);
	altstack = NULL;
}

int crash_init(int log_fd, const char *state_dir, const char *who, char *err, size_t errlen)
{
	struct sigaction sa;
	void *warm[2];

	conf.log_fd = log_fd;
	if (who)
		snprintf(conf.who, sizeof(conf.who), "%s", who);
	if (state_dir) {
		int a = snprintf(conf.path, sizeof(conf.path), "%s/" CRASH_RECORD, state_dir);
		int b = snprintf(conf.tmp, sizeof(conf.tmp), "%s/." CRASH_RECORD ".tmp", state_dir);
		if (a < 0 || b < 0 || (size_t)a >= sizeof(conf.path) ||
		    (size_t)b >= sizeof(conf.tmp)) {
			snprintf(err, errlen, "state_dir %s: path too long", state_dir);
			return -1;
		}
		conf.record = true;
	}
	/* the first backtrace() loads libgcc_s (dlopen, malloc): do it now,
	 * not in the handler */
	backtrace(warm, 2);
	if (crash_thread_init() < 0) {
		snprintf(err, errlen, "cannot set up an alternate signal stack: %s",
			 strerror(errno));
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fatal;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
		if (sigaction(fatal_signals[i], &sa, NULL) < 0) {
			snprintf(err, errlen, "sigaction(%s): %s", sigfmt_name(fatal_signals[i]),
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* ---- the record, read back at start ----------------------------------- */

static int copy_field(const cJSON *o, const char *key, char *out, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsString(v) || strlen(v->valuestring) >= len)
		return -1;
	memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
	return 0;
}

static int number_field(const cJSON *o, const char *key, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	char *end;

	if (!cJSON_IsString(v) || !v->valuestring[0])
		return -1;
	errno = 0;
	*out = strtoull(v->valuestring, &end, 10);
	return errno || *end ? -1 : 0;
}

int crash_record_load(const char *state_dir, struct crash_record *out, char *err, size_t errlen)
{
	char path[PATH_MAX], text[4096];
	cJSON *o = NULL;
	uint64_t dev, ino, size, ms, mns, t;
	ssize_t n;
	int fd, rc = -1;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "%s/" CRASH_RECORD, state_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	text[n] = '\0';
	if (json_parse(text, (size_t)n, &o, err, errlen) < 0)
		goto out;
	if (!cJSON_IsObject(o) || copy_field(o, "plugin", out->plugin, sizeof(out->plugin)) ||
	    copy_field(o, "file", out->file, sizeof(out->file)) ||
	    copy_field(o, "hook", out->hook, sizeof(out->hook)) ||
	    copy_field(o, "entry", out->entry, sizeof(out->entry)) ||
	    copy_field(o, "signal", out->signal, sizeof(out->signal)) ||
	    number_field(o, "generation", &out->generation) || number_field(o, "time", &t) ||
	    number_field(o, "dev", &dev) || number_field(o, "ino", &ino) ||
	    number_field(o, "size", &size) || number_field(o, "mtime_s", &ms) ||
	    number_field(o, "mtime_ns", &mns)) {
		snprintf(err, errlen, "%s: not a crash record hookd wrote", path);
		goto out;
	}
	out->time = (int64_t)t;
	out->dev = (dev_t)dev;
	out->ino = (ino_t)ino;
	out->size = (off_t)size;
	out->mtime.tv_sec = (time_t)ms;
	out->mtime.tv_nsec = (long)mns;
	rc = 1;
out:
	cJSON_Delete(o);
	return rc;
}

int crash_record_clear(const char *state_dir, char *err, size_t errlen)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/" CRASH_RECORD, state_dir);
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

void crash_record_describe(const struct crash_record *r, char *out, size_t len)
{
	char when[40];
	struct sbuf b = {when, 0, sizeof(when) - 1};

	sb_time(&b, r->time);
	when[b.n] = '\0';
	snprintf(out, len, "crashed the host at %s (%s %s%s, %s, generation %llu)", when,
		 r->signal, r->hook[0] ? "in hook " : "outside a call", r->hook, r->entry,
		 (unsigned long long)r->generation);
}
