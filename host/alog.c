/*
 * alog -- see alog.h.
 *
 * Text line (one line, space-separated key=value after the time; a value
 * never holds a space: bytes outside printable ASCII, '"' and '\' are
 * written \xHH; a missing value is "-"):
 *   TIME rid=ID client=ADDR method=M path=P hook=H status=N dur_ms=F in=N
 *   out=N gen=N outcome=O plugin=P steps=PLUGIN:MS:OUTCOME[:skipped],...
 *   [steps_more=N]
 * JSON line: one object with the same facts, "steps" an array of
 * {"plugin","duration_ms","outcome"[,"skipped":true]}.
 */
#include "alog.h"

#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

_Static_assert(ALOG_BATCH <= PIPE_BUF, "a batch must be one atomic write on a pipe");
_Static_assert(ALOG_LINE_MAX <= ALOG_BATCH, "a line must fit an empty batch");

void alog_init(struct alog *al)
{
	atomic_init(&al->on, 0);
	atomic_init(&al->format, ALOG_TEXT);
	al->fd = -1;
	al->path[0] = 0;
}

/* Open what `path` names, as a new descriptor. */
static int open_target(const char *path, char *err, size_t errlen)
{
	int fd;

	if (strcmp(path, "-") == 0)
		fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	else
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		snprintf(err, errlen, "access_log %s: cannot open: %s", path, strerror(errno));
	return fd;
}

/* Make al->fd refer to what `fd` refers to (fd is consumed). */
static int install_fd(struct alog *al, int fd, char *err, size_t errlen)
{
	if (al->fd < 0) {
		/* first time on: nobody writes yet (on is still 0) */
		al->fd = fd;
		return 0;
	}
	/* atomic under writers: al->fd is never a free descriptor number */
	if (dup3(fd, al->fd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "access_log: cannot switch files: %s", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int alog_configure(struct alog *al, const char *path, enum alog_format format, char *err,
		   size_t errlen)
{
	int fd;

	if (!path) {
		atomic_store(&al->on, 0); /* the descriptor stays: a writer may hold it */
		atomic_store(&al->format, format);
		al->path[0] = 0;
		return 0;
	}
	if (strlen(path) >= sizeof(al->path)) {
		snprintf(err, errlen, "access_log: path too long");
		return -1;
	}
	if (atomic_load(&al->on) && strcmp(path, al->path) == 0) {
		atomic_store(&al->format, format); /* same file: keep it open */
		return 0;
	}
	if ((fd = open_target(path, err, errlen)) < 0)
		return -1;
	if (install_fd(al, fd, err, errlen) < 0)
		return -1;
	snprintf(al->path, sizeof(al->path), "%s", path);
	atomic_store(&al->format, format);
	atomic_store_explicit(&al->on, 1, memory_order_release); /* after fd */
	return 0;
}

int alog_reopen(struct alog *al, char *err, size_t errlen)
{
	int fd;

	if (!atomic_load(&al->on) || strcmp(al->path, "-") == 0)
		return 0;
	if ((fd = open_target(al->path, err, errlen)) < 0)
		return -1;
	return install_fd(al, fd, err, errlen);
}

void alog_fini(struct alog *al)
{
	atomic_store(&al->on, 0);
	if (al->fd >= 0)
		close(al->fd);
	al->fd = -1;
}

/* ---- formatting -------------------------------------------------------- */

struct out {
	char *buf;
	size_t len, cap; /* cap excludes the room kept for the newline */
};

static void put(struct out *o, const char *s, size_t n)
{
	if (n > o->cap - o->len)
		n = o->cap - o->len;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3))) putf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, o->cap - o->len + 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	o->len += (size_t)n < o->cap - o->len ? (size_t)n : o->cap - o->len;
}

static const char hex[] = "0123456789abcdef";

/* A text value: "-" when missing, never a space. */
static void put_text(struct out *o, const char *s)
{
	if (!s || !*s) {
		put(o, "-", 1);
		return;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\') {
			put(o, (const char *)p, 1);
		} else {
			char e[4] = {'\\', 'x', hex[*p >> 4], hex[*p & 15]};
			put(o, e, 4);
		}
	}
}

/* A JSON string (null when missing). Bytes >= 0x80 are \u00XX: the line
 * stays valid JSON whatever a client sent. */
static void put_json(struct out *o, const char *s)
{
	if (!s) {
		puts_(o, "null");
		return;
	}
	put(o, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') {
			put(o, (const char *)p, 1);
		} else if (*p == '"' || *p == '\\') {
			char e[2] = {'\\', (char)*p};
			put(o, e, 2);
		} else {
			char e[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
			put(o, e, 6);
		}
	}
	put(o, "\"", 1);
}

static void put_time(struct out *o, const struct timespec *ts)
{
	struct tm tm;
	char t[40];
	size_t n;

	gmtime_r(&ts->tv_sec, &tm);
	n = strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(t + n, sizeof(t) - n, ".%03ldZ", ts->tv_nsec / 1000000L);
	puts_(o, t);
}

static double ms(int64_t ns)
{
	return ns < 0 ? 0 : (double)ns / 1e6;
}

static void format_text(const struct alog_entry *e, struct out *o)
{
	put_time(o, &e->time);
	puts_(o, " rid=");
	put_text(o, e->rid);
	puts_(o, " client=");
	put_text(o, e->client);
	puts_(o, " method=");
	put_text(o, e->method);
	puts_(o, " path=");
	put_text(o, e->path);
	puts_(o, " hook=");
	put_text(o, e->hook);
	putf(o, " status=%d dur_ms=%.3f in=%zu out=%zu gen=%llu outcome=", e->status,
	     ms(e->duration_ns), e->bytes_in, e->bytes_out, (unsigned long long)e->generation);
	put_text(o, e->outcome);
	puts_(o, " plugin=");
	put_text(o, e->plugin);
	puts_(o, " steps=");
	if (!e->nsteps)
		put(o, "-", 1);
	for (unsigned i = 0; i < e->nsteps; i++) {
		const struct dispatch_step_rec *s = &e->steps[i];
		if (i)
			put(o, ",", 1);
		put_text(o, s->plugin);
		putf(o, ":%.3f:%s%s", ms(s->duration_ns), dispatch_outcome_name(s->outcome),
		     s->skipped ? ":skipped" : "");
	}
	if (e->steps_more)
		putf(o, " steps_more=%u", e->steps_more);
}

static void format_json(const struct alog_entry *e, struct out *o)
{
	puts_(o, "{\"time\":\"");
	put_time(o, &e->time);
	puts_(o, "\",\"request_id\":");
	put_json(o, e->rid);
	puts_(o, ",\"client\":");
	put_json(o, e->client);
	puts_(o, ",\"method\":");
	put_json(o, e->method);
	puts_(o, ",\"path\":");
	put_json(o, e->path);
	puts_(o, ",\"hook\":");
	put_json(o, e->hook);
	putf(o, ",\"status\":%d,\"duration_ms\":%.3f,\"bytes_in\":%zu,\"bytes_out\":%zu,"
	     "\"generation\":%llu,\"outcome\":", e->status, ms(e->duration_ns), e->bytes_in,
	     e->bytes_out, (unsigned long long)e->generation);
	put_json(o, e->outcome);
	puts_(o, ",\"plugin\":");
	put_json(o, e->plugin);
	puts_(o, ",\"steps\":[");
	for (unsigned i = 0; i < e->nsteps; i++) {
		const struct dispatch_step_rec *s = &e->steps[i];
		size_t mark = o->len;
		if (i)
			put(o, ",", 1);
		puts_(o, "{\"plugin\":");
		put_json(o, s->plugin);
		putf(o, ",\"duration_ms\":%.3f,\"outcome\":\"%s\"%s}", ms(s->duration_ns),
		     dispatch_outcome_name(s->outcome), s->skipped ? ",\"skipped\":true" : "");
		if (o->len + 64 >= o->cap) { /* keep room to close the object */
			o->len = mark;
			break;
		}
	}
	put(o, "]", 1);
	if (e->steps_more)
		putf(o, ",\"steps_more\":%u", e->steps_more);
	put(o, "}", 1);
}

size_t alog_format_line(const struct alog_entry *e, enum alog_format format, char *buf,
			size_t cap)
{
	struct out o = {buf, 0, cap - 1};

	if (cap < 2)
		return 0;
	if (format == ALOG_JSON)
		format_json(e, &o);
	else
		format_text(e, &o);
	buf[o.len++] = '\n';
	return o.len;
}

/* One write(2) of whole lines (O_APPEND: never interleaved). */
static void write_all(int fd, const char *p, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t w = write(fd, p + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* a full disk loses lines, never the daemon */
		off += (size_t)w;
	}
}

static enum alog_format format_of(const struct alog *al)
{
	return (enum alog_format)atomic_load_explicit(&al->format, memory_order_relaxed);
}

void alog_write(const struct alog *al, const struct alog_entry *e)
{
	char line[ALOG_LINE_MAX];
	size_t n;

	if (!alog_enabled(al))
		return;
	n = alog_format_line(e, format_of(al), line, sizeof(line));
	write_all(al->fd, line, n);
}

void alog_batch_init(struct alog_batch *b, const struct alog *al)
{
	b->al = al;
	b->len = 0;
}

bool alog_batch_add(struct alog_batch *b, const struct alog_entry *e)
{
	char line[ALOG_LINE_MAX];
	size_t n;
	bool was_empty;

	if (!alog_enabled(b->al))
		return false;
	n = alog_format_line(e, format_of(b->al), line, sizeof(line));
	if (b->len + n > sizeof(b->buf))
		alog_batch_flush(b);
	was_empty = b->len == 0;
	memcpy(b->buf + b->len, line, n);
	b->len += n;
	return was_empty;
}

void alog_batch_flush(struct alog_batch *b)
{
	if (b->len && b->al && b->al->fd >= 0)
		write_all(b->al->fd, b->buf, b->len);
	b->len = 0;
}

/* ---- request ids --------------------------------------------------------- */

bool alog_rid_valid(const char *s)
{
	size_t n = 0;

	if (!s)
		return false;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= ALOG_RID_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return n > 0;
}

void alog_rid_make(char *buf, size_t len, const char *prefix, uint64_t n)
{
	snprintf(buf, len, "%s-%llx", prefix, (unsigned long long)n);
}

void alog_rid_prefix(char *buf, size_t len)
{
	uint64_t r = 0;
	struct timespec ts;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		r = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
		    ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)buf;
	}
	snprintf(buf, len, "%016llx", (unsigned long long)r);
}
