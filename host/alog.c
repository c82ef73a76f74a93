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

static const char hex[] = "0123456789abcdef";

/* Decimal, without printf (the access line's hot path). */
static void put_u64(struct out *o, uint64_t v)
{
	char d[24];
	int i = sizeof(d);

	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(o, d + i, sizeof(d) - (size_t)i);
}

/* Nanoseconds as milliseconds with three decimals (microseconds, cut). */
static void put_ms(struct out *o, int64_t ns)
{
	uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
	char f[4] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
		     (char)('0' + us % 10)};

	put_u64(o, us / 1000);
	put(o, f, 4);
}

/* A text value: "-" when missing, never a space. */
static void put_text(struct out *o, const char *s)
{
	if (!s || !*s) {
		put(o, "-", 1);
		return;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		const unsigned char *q = p;
		while (*q > 0x20 && *q < 0x7f && *q != '"' && *q != '\\')
			q++;
		put(o, (const char *)p, (size_t)(q - p)); /* the plain run at once */
		if (!*q)
			break;
		char e[4] = {'\\', 'x', hex[*q >> 4], hex[*q & 15]};
		put(o, e, 4);
		p = q + 1;
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
		const unsigned char *q = p;
		while (*q >= 0x20 && *q < 0x7f && *q != '"' && *q != '\\')
			q++;
		put(o, (const char *)p, (size_t)(q - p)); /* the plain run at once */
		if (!*q)
			break;
		p = q;
		if (*p == '"' || *p == '\\') {
			char e[2] = {'\\', (char)*p};
			put(o, e, 2);
		} else {
			char e[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
			put(o, e, 6);
		}
	}
	put(o, "\"", 1);
}

static void put_time(struct out *o, const struct timespec *ts, struct alog_tcache *c)
{
	struct alog_tcache local = {0};
	long msec = ts->tv_nsec / 1000000L;
	char f[5] = {'.', (char)('0' + msec / 100 % 10), (char)('0' + msec / 10 % 10),
		     (char)('0' + msec % 10), 'Z'};

	if (!c)
		c = &local;
	if (!c->text[0] || c->sec != ts->tv_sec) { /* once a second per loop */
		struct tm tm;
		gmtime_r(&ts->tv_sec, &tm);
		if (!strftime(c->text, sizeof(c->text), "%Y-%m-%dT%H:%M:%S", &tm))
			c->text[0] = 0;
		c->sec = ts->tv_sec;
	}
	puts_(o, c->text);
	put(o, f, 5);
}


static void format_text(const struct alog_entry *e, struct out *o, struct alog_tcache *c)
{
	put_time(o, &e->time, c);
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
	puts_(o, " status=");
	put_u64(o, e->status > 0 ? (uint64_t)e->status : 0);
	puts_(o, " dur_ms=");
	put_ms(o, e->duration_ns);
	puts_(o, " in=");
	put_u64(o, e->bytes_in);
	puts_(o, " out=");
	put_u64(o, e->bytes_out);
	puts_(o, " gen=");
	put_u64(o, e->generation);
	puts_(o, " outcome=");
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
		put(o, ":", 1);
		put_ms(o, s->duration_ns);
		put(o, ":", 1);
		puts_(o, dispatch_outcome_name(s->outcome));
		if (s->skipped)
			puts_(o, ":skipped");
	}
	if (e->steps_more) {
		puts_(o, " steps_more=");
		put_u64(o, e->steps_more);
	}
}

static void format_json(const struct alog_entry *e, struct out *o, struct alog_tcache *c)
{
	puts_(o, "{\"time\":\"");
	put_time(o, &e->time, c);
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
	puts_(o, ",\"status\":");
	put_u64(o, e->status > 0 ? (uint64_t)e->status : 0);
	puts_(o, ",\"duration_ms\":");
	put_ms(o, e->duration_ns);
	puts_(o, ",\"bytes_in\":");
	put_u64(o, e->bytes_in);
	puts_(o, ",\"bytes_out\":");
	put_u64(o, e->bytes_out);
	puts_(o, ",\"generation\":");
	put_u64(o, e->generation);
	puts_(o, ",\"outcome\":");
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
		puts_(o, ",\"duration_ms\":");
		put_ms(o, s->duration_ns);
		puts_(o, ",\"outcome\":\"");
		puts_(o, dispatch_outcome_name(s->outcome));
		puts_(o, s->skipped ? "\",\"skipped\":true}" : "\"}");
		if (o->len + 64 >= o->cap) { /* keep room to close the object */
			o->len = mark;
			break;
		}
	}
	put(o, "]", 1);
	if (e->steps_more) {
		puts_(o, ",\"steps_more\":");
		put_u64(o, e->steps_more);
	}
	put(o, "}", 1);
}

size_t alog_format_line(const struct alog_entry *e, enum alog_format format,
			struct alog_tcache *cache, char *buf, size_t cap)
{
	struct out o = {buf, 0, cap - 1};

	if (cap < 2)
		return 0;
	if (format == ALOG_JSON)
		format_json(e, &o, cache);
	else
		format_text(e, &o, cache);
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
	n = alog_format_line(e, format_of(al), NULL, line, sizeof(line));
	write_all(al->fd, line, n);
}

void alog_batch_init(struct alog_batch *b, const struct alog *al)
{
	b->al = al;
	b->len = 0;
	b->tcache.text[0] = 0;
}

bool alog_batch_add(struct alog_batch *b, const struct alog_entry *e)
{
	char line[ALOG_LINE_MAX];
	size_t n;
	bool was_empty;

	if (!alog_enabled(b->al))
		return false;
	n = alog_format_line(e, format_of(b->al), &b->tcache, line, sizeof(line));
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
	char d[17];
	int i = sizeof(d);
	size_t pl = strlen(prefix);

	/* no printf: this runs for every hook request */
	do {
		d[--i] = hex[n & 15];
		n >>= 4;
	} while (n);
	if (pl + 1 + (sizeof(d) - (size_t)i) + 1 > len) {
		if (len)
			buf[0] = 0;
		return;
	}
	memcpy(buf, prefix, pl);
	buf[pl] = '-';
	memcpy(buf + pl + 1, d + i, sizeof(d) - (size_t)i);
	buf[pl + 1 + sizeof(d) - (size_t)i] = 0;
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
