/*
 * c10k -- hold N connections open at once, each with one call in flight.
 *
 *   c10k PORT N PATH BODY [HOLD_MS [RATE]]
 *
 * Opens N keep-alive connections to 127.0.0.1:PORT (non-blocking, one
 * epoll), sends one POST PATH with BODY on each as soon as it connects,
 * then reads every answer. With PATH /hooks/delay and BODY {"ms": 1000},
 * that is N calls in flight on the server at the same moment. After the
 * answers, the connections stay open for HOLD_MS (idle keep-alive) before
 * the client closes them.
 *
 * RATE (connections per second, default 0) paces the opening: 0 opens all
 * N at once. At once, N connects reach the kernel in well under 100 ms;
 * beyond the listen backlog (somaxconn, 4096 on Debian 12) the SYNs are
 * dropped and retried after 1 s (TCP's initial RTO), then after longer
 * back-offs, so the calls no longer overlap and some take seconds. With RATE 20000, 10000 calls
 * are all started within 0.5 s, all in flight during a 1 s delay.
 *
 * Latencies run from the connect() call to the whole answer, so a dropped
 * SYN shows. Prints one line of key=value results:
 *   connected answered ok failed max_ms p50_ms p99_ms open_ms connect_max_ms
 * (open_ms: from the first connect() to the last; connect_max_ms: the
 * slowest handshake) and exits 0 when every call was answered 200.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd;
	int state; /* 0 connecting, 1 sent, 2 answered, -1 failed */
	size_t sent;
	char in[1024];
	size_t have;
	double t0, ms; /* t0: connect() called */
	int status;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* A whole response in c->in? (headers + Content-Length body) */
static int complete(struct conn *c)
{
	char *end = memmem(c->in, c->have, "\r\n\r\n", 4), *cl;
	long len = 0;

	if (!end)
		return 0;
	c->in[c->have < sizeof(c->in) ? c->have : sizeof(c->in) - 1] = '\0';
	cl = strcasestr(c->in, "\r\nContent-Length:");
	if (cl)
		len = strtol(cl + 17, NULL, 10);
	if ((size_t)(end + 4 - c->in) + (size_t)len > c->have)
		return 0;
	c->status = atoi(c->in + 9);
	return 1;
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct epoll_event ev, evs[256];
	struct conn *cs;
	char req[1024];
	int n, ep, reqlen, hold_ms, connected = 0, done = 0, ok = 0, failed = 0;
	double *lat, deadline, start, rate, last_open = 0, connect_max = 0;
	int opened = 0;

	if (argc < 5) {
		fprintf(stderr, "usage: c10k PORT N PATH BODY [HOLD_MS [RATE]]\n");
		return 2;
	}
	n = atoi(argv[2]);
	hold_ms = argc > 5 ? atoi(argv[5]) : 0;
	rate = argc > 6 ? atof(argv[6]) : 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	reqlen = snprintf(req, sizeof(req),
			  "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
			  "Content-Length: %zu\r\n\r\n%s",
			  argv[3], strlen(argv[4]), argv[4]);
	sa.sin_port = htons((uint16_t)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cs = calloc((size_t)n, sizeof(*cs));
	lat = calloc((size_t)n, sizeof(*lat));
	for (int i = 0; i < n; i++)
		cs[i].fd = -1;
	ep = epoll_create1(0);
	start = now_ms();
	deadline = start + 120000;
	while (done < n && now_ms() < deadline) {
		/* open what the pace allows by now (everything when RATE is 0) */
		int want = rate > 0 ? (int)((now_ms() - start) * rate / 1000.0) + 1 : n;
		for (; opened < want && opened < n; opened++) {
			struct conn *c = &cs[opened];
			c->t0 = last_open = now_ms();
			c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			if (c->fd < 0) {
				fprintf(stderr, "c10k: socket %d: %s\n", opened, strerror(errno));
				c->state = -1;
				failed++;
				done++;
				continue;
			}
			if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
				c->state = -1;
				failed++;
				done++;
				continue;
			}
			ev.events = EPOLLOUT | EPOLLIN;
			ev.data.u32 = (uint32_t)opened;
			epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
		}
		int k = epoll_wait(ep, evs, 256, opened < n ? 1 : 1000);
		for (int e = 0; e < k; e++) {
			struct conn *c = &cs[evs[e].data.u32];
			if (c->state == 0 && (evs[e].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
				int err = 0;
				socklen_t el = sizeof(err);
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err) {
					c->state = -1;
					failed++;
					done++;
					epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
					continue;
				}
				connected++;
				if (now_ms() - c->t0 > connect_max)
					connect_max = now_ms() - c->t0;
				ssize_t w = write(c->fd, req, (size_t)reqlen); /* small: fits the buffer */
				if (w != reqlen) {
					c->state = -1;
					failed++;
					done++;
					epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
					continue;
				}
				c->state = 1;
				ev.events = EPOLLIN;
				ev.data.u32 = evs[e].data.u32;
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			}
			if (c->state == 1 && (evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
				ssize_t r = read(c->fd, c->in + c->have, sizeof(c->in) - 1 - c->have);
				if (r <= 0) {
					c->state = -1;
					failed++;
					done++;
					epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
					continue;
				}
				c->have += (size_t)r;
				if (complete(c)) {
					c->ms = now_ms() - c->t0;
					lat[done] = c->ms;
					c->state = 2;
					done++;
					if (c->status == 200)
						ok++;
					else
						failed++;
					epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				}
			}
		}
	}
	if (hold_ms > 0) {
		struct timespec ts = {hold_ms / 1000, (hold_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL); /* every connection stays open, idle */
	}
	int m = 0;
	for (int i = 0; i < n; i++)
		if (cs[i].state == 2)
			lat[m++] = cs[i].ms;
	qsort(lat, (size_t)m, sizeof(*lat), cmp_double);
	printf("connected=%d answered=%d ok=%d failed=%d max_ms=%.0f p50_ms=%.0f p99_ms=%.0f "
	       "open_ms=%.0f connect_max_ms=%.0f\n",
	       connected, m, ok, failed + (n - done), m ? lat[m - 1] : 0, m ? lat[m / 2] : 0,
	       m ? lat[(int)(m * 0.99)] : 0, last_open - start, connect_max);
	for (int i = 0; i < n; i++)
		if (cs[i].fd >= 0)
			close(cs[i].fd);
	return ok == n ? 0 : 1;
}
