/* upstream -- see upstream.h. */
#include "upstream.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>

#define ARRIVALS 4096
#define KEYS 64
#define UPSTREAM_WATCH_MS 1000 /* delays this long watch for the client closing */

struct upstream {
	struct event_base *base;
	struct evhttp *http;
	struct event *stop_ev;
	pthread_t tid;
	uint16_t port;
	pthread_mutex_t mu;
	struct upstream_stats st;
	double arrival_ms[ARRIVALS];
	char arrival_path[ARRIVALS][48];
	long narrivals;
	struct {
		char key[32];
		long seen;
	} keys[KEYS];
};

struct held {
	struct upstream *u;
	struct evhttp_request *req;
	struct event timer;
	struct event *closed; /* long delays only, see hold() */
};

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void answer(struct upstream *u, struct evhttp_request *req, int code, const char *body)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add(b, body, strlen(body));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
	evhttp_send_reply(req, code, NULL, b);
	evbuffer_free(b);
	pthread_mutex_lock(&u->mu);
	u->st.in_flight--;
	u->st.answered++;
	pthread_mutex_unlock(&u->mu);
}

static void held_free(struct held *h)
{
	event_del(&h->timer);
	if (h->closed)
		event_free(h->closed);
	free(h);
}

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
	struct held *h = arg;

	(void)fd;
	(void)what;
	answer(h->u, h->req, 200, "ok");
	held_free(h);
}

static void on_closed(evutil_socket_t fd, short what, void *arg)
{
	struct held *h = arg;
	struct upstream *u = h->u;
	struct evhttp_connection *evcon = evhttp_request_get_connection(h->req);

	(void)fd;
	(void)what;
	pthread_mutex_lock(&u->mu);
	u->st.in_flight--;
	u->st.closed_early++;
	pthread_mutex_unlock(&u->mu);
	held_free(h);
	evhttp_connection_free(evcon);
}

static void hold(struct upstream *u, struct evhttp_request *req, long ms)
{
	struct held *h = calloc(1, sizeof(*h));
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	h->u = u;
	h->req = req;
	evtimer_assign(&h->timer, u->base, on_delay, h);
	/* watching the client costs an allocation and two epoll_ctl per
	 * request, which a fan-out benchmark of 10,000 requests/s would
	 * measure instead of hookd: only delays of a second or more (the
	 * tests that check closed_early) are watched */
	if (ms >= UPSTREAM_WATCH_MS) {
		h->closed = event_new(u->base, fd, EV_CLOSED, on_closed, h);
		event_add(h->closed, NULL);
	}
	/* one queue per distinct delay instead of the timer heap: a fan-out
	 * holds a thousand of the same delay at once */
	const struct timeval *ctv = event_base_init_common_timeout(u->base, &tv);
	evtimer_add(&h->timer, ctv ? ctv : &tv);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct upstream *u = arg;
	const char *uri = evhttp_request_get_uri(req);
	char path[256], body[64];
	long n;

	snprintf(path, sizeof(path), "%s", uri ? uri : "/");
	pthread_mutex_lock(&u->mu);
	u->st.requests++;
	u->st.in_flight++;
	if (u->st.in_flight > u->st.max_in_flight)
		u->st.max_in_flight = u->st.in_flight;
	u->arrival_ms[u->narrivals % ARRIVALS] = mono_ms();
	snprintf(u->arrival_path[u->narrivals % ARRIVALS], 48, "%.47s", path);
	u->narrivals++;
	pthread_mutex_unlock(&u->mu);

	if (sscanf(path, "/delay/%ld", &n) == 1 && n >= 0) {
		hold(u, req, n);
	} else if (sscanf(path, "/status/%ld", &n) == 1 && n >= 100 && n <= 599) {
		snprintf(body, sizeof(body), "status %ld", n);
		answer(u, req, (int)n, body);
	} else if (strncmp(path, "/flaky/", 7) == 0 || strncmp(path, "/flaky_date/", 12) == 0) {
		bool date = path[6] == '_';
		char key[32] = "", when[64] = "0";
		long fails = 0, seen = 0, secs = 0;
		sscanf(path + (date ? 12 : 7), "%31[^/]/%ld/%ld", key, &fails, &secs);
		if (date) {
			/* RFC 9110 IMF-fixdate, whole seconds */
			time_t t = time(NULL) + secs;
			struct tm tm;
			gmtime_r(&t, &tm);
			strftime(when, sizeof(when), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		}
		pthread_mutex_lock(&u->mu);
		for (int i = 0; i < KEYS; i++) {
			if (!u->keys[i].key[0] || strcmp(u->keys[i].key, key) == 0) {
				snprintf(u->keys[i].key, sizeof(u->keys[i].key), "%s", key);
				seen = ++u->keys[i].seen;
				break;
			}
		}
		pthread_mutex_unlock(&u->mu);
		if (seen <= fails) {
			evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", when);
			answer(u, req, 503, "try again");
		} else {
			answer(u, req, 200, "ok");
		}
	} else if (sscanf(path, "/bytes/%ld", &n) == 1 && n >= 0 && n <= 64L * 1024 * 1024) {
		struct evbuffer *b = evbuffer_new();
		char chunk[4096];
		memset(chunk, 'x', sizeof(chunk));
		for (long left = n; left > 0; left -= (long)sizeof(chunk))
			evbuffer_add(b, chunk, left < (long)sizeof(chunk) ? (size_t)left : sizeof(chunk));
		evhttp_send_reply(req, 200, NULL, b);
		evbuffer_free(b);
		pthread_mutex_lock(&u->mu);
		u->st.in_flight--;
		u->st.answered++;
		pthread_mutex_unlock(&u->mu);
	} else if (strcmp(path, "/reset") == 0) {
		struct evhttp_connection *evcon = evhttp_request_get_connection(req);
		evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
		struct linger lg = {1, 0}; /* close with RST */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		pthread_mutex_lock(&u->mu);
		u->st.in_flight--;
		pthread_mutex_unlock(&u->mu);
		evhttp_connection_free(evcon);
	} else {
		answer(u, req, 404, "no such path");
	}
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

static void *loop_main(void *arg)
{
	struct upstream *u = arg;

	event_base_dispatch(u->base);
	return NULL;
}

struct upstream *upstream_start(uint16_t port)
{
	struct upstream *u = calloc(1, sizeof(*u));
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (!u)
		return NULL;
	evthread_use_pthreads(); /* upstream_stop activates an event from another thread */
	pthread_mutex_init(&u->mu, NULL);
	u->base = event_base_new();
	u->http = evhttp_new(u->base);
	evhttp_set_gencb(u->http, on_request, u);
	evhttp_set_timeout(u->http, 120);
	/* evhttp_bind_socket listens with a backlog of 128: a fan-out of 1000
	 * connections at once would overflow it (SYN retransmits, 1 s stalls) */
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct evconnlistener *lev = evconnlistener_new_bind(
		u->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
		4096, (struct sockaddr *)&sin, sizeof(sin));
	bs = lev ? evhttp_bind_listener(u->http, lev) : NULL;
	if (!bs) {
		if (lev)
			evconnlistener_free(lev);
		evhttp_free(u->http);
		event_base_free(u->base);
		free(u);
		return NULL;
	}
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl);
	u->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	u->stop_ev = event_new(u->base, -1, 0, on_stop, u->base);
	pthread_create(&u->tid, NULL, loop_main, u);
	return u;
}

uint16_t upstream_port(const struct upstream *u)
{
	return u->port;
}

void upstream_stats(struct upstream *u, struct upstream_stats *st)
{
	pthread_mutex_lock(&u->mu);
	*st = u->st;
	pthread_mutex_unlock(&u->mu);
}

void upstream_reset_stats(struct upstream *u)
{
	pthread_mutex_lock(&u->mu);
	u->st.requests = u->st.closed_early = u->st.answered = 0;
	u->st.max_in_flight = u->st.in_flight;
	u->narrivals = 0;
	pthread_mutex_unlock(&u->mu);
}

int upstream_arrivals(struct upstream *u, const char *prefix, double *out, int max)
{
	int n = 0;

	pthread_mutex_lock(&u->mu);
	long first = u->narrivals > ARRIVALS ? u->narrivals - ARRIVALS : 0;
	for (long i = first; i < u->narrivals && n < max; i++)
		if (strncmp(u->arrival_path[i % ARRIVALS], prefix, strlen(prefix)) == 0)
			out[n++] = u->arrival_ms[i % ARRIVALS];
	pthread_mutex_unlock(&u->mu);
	return n;
}

void upstream_stop(struct upstream *u)
{
	if (!u)
		return;
	event_active(u->stop_ev, EV_TIMEOUT, 0);
	pthread_join(u->tid, NULL);
	event_free(u->stop_ev);
	evhttp_free(u->http);
	event_base_free(u->base);
	pthread_mutex_destroy(&u->mu);
	free(u);
}
