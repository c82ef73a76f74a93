/*
 * sigfmt -- see sigfmt.h.
 */
#include "sigfmt.h"

#include <signal.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

void sb_mem(struct sbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n && b->n < b->cap; i++)
		b->p[b->n++] = s[i];
}

void sb_str(struct sbuf *b, const char *s)
{
	sb_mem(b, s, strlen(s));
}

void sb_u64(struct sbuf *b, uint64_t v)
{
	char d[24];
	size_t i = sizeof(d);

	do
		d[--i] = (char)('0' + v % 10);
	while ((v /= 10) && i);
	sb_mem(b, d + i, sizeof(d) - i);
}

void sb_hex(struct sbuf *b, uintptr_t v)
{
	char d[2 + 2 * sizeof(v)];
	size_t i = sizeof(d);

	do
		d[--i] = "0123456789abcdef"[v & 15];
	while ((v >>= 4) && i > 2);
	d[--i] = 'x';
	d[--i] = '0';
	sb_mem(b, d + i, sizeof(d) - i);
}

/* `s` as the inside of a JSON string (names are plain; file names may not
 * be). */
void sb_json(struct sbuf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			sb_mem(b, "\\", 1);
			sb_mem(b, s, 1);
		} else if (c < 0x20) {
			sb_str(b, "\\u00");
			sb_mem(b, &"0123456789abcdef"[c >> 4], 1);
			sb_mem(b, &"0123456789abcdef"[c & 15], 1);
		} else {
			sb_mem(b, s, 1);
		}
	}
}

static void sb_2(struct sbuf *b, unsigned v)
{
	char d[2] = {(char)('0' + v / 10 % 10), (char)('0' + v % 10)};
	sb_mem(b, d, 2);
}

/* ISO 8601 UTC without gmtime (which may take the time-zone lock):
 * days-to-civil from Howard Hinnant's date algorithms. */
void sb_time(struct sbuf *b, int64_t t)
{
	int64_t days = t / 86400, sec = t % 86400;
	if (sec < 0) {
		sec += 86400;
		days--;
	}
	int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;

	sb_u64(b, (uint64_t)(y + (m <= 2)));
	sb_str(b, "-");
	sb_2(b, m);
	sb_str(b, "-");
	sb_2(b, d);
	sb_str(b, "T");
	sb_2(b, (unsigned)(sec / 3600));
	sb_str(b, ":");
	sb_2(b, (unsigned)(sec / 60 % 60));
	sb_str(b, ":");
	sb_2(b, (unsigned)(sec % 60));
	sb_str(b, "Z");
}

void sb_write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t r = write(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		p += r;
		n -= (size_t)r;
	}
}

void sb_log_time(struct sbuf *b, const struct timespec *ts)
{
	long ms = ts->tv_nsec / 1000000;
	char d[3] = {(char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10)};

	sb_time(b, ts->tv_sec);
	if (b->n && b->p[b->n - 1] == 'Z')
		b->n--;
	sb_str(b, ".");
	sb_mem(b, d, 3);
	sb_str(b, "Z");
}

const char *sigfmt_name(int sig)
{
	switch (sig) {
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIGFPE: return "SIGFPE";
	case SIGILL: return "SIGILL";
	case SIGABRT: return "SIGABRT";
	case SIGSYS: return "SIGSYS";
	case SIGKILL: return "SIGKILL";
	case SIGTERM: return "SIGTERM";
	case SIGXCPU: return "SIGXCPU";
	case SIGXFSZ: return "SIGXFSZ";
	case SIGPIPE: return "SIGPIPE";
	case SIGINT: return "SIGINT";
	case SIGHUP: return "SIGHUP";
	case SIGQUIT: return "SIGQUIT";
	case SIGTRAP: return "SIGTRAP";
	case SIGUSR1: return "SIGUSR1";
	case SIGUSR2: return "SIGUSR2";
	case SIGALRM: return "SIGALRM";
	default: return "a signal";
	}
}
