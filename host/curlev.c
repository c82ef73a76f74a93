/*
 * curlev -- see curlev.h. Sockets curl tells us about get one event each
 * (struct csock, found again through curl_multi_assign); one timer stands
 * for curl's single timeout.
 */
#include "curlev.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/queue.h>

#include <event2/event_struct.h>

#define CURLEV_IDLE_EASY 1024   /* easy handles kept for reuse (a fan-out runs hundreds) */
#define CURLEV_MAXCONNECTS 1024L /* idle connections kept, for a fan-out to reuse */

struct csock {
	struct event ev;
	curl_socket_t fd;
	TAILQ_ENTRY(csock) link;
};

struct curlev {
	struct event_base *base;
	CURLM *multi;
	curlev_done_fn done;
	struct event timer;
	int still_running;
	TAILQ_HEAD(, csock) socks; /* every socket curl told us about */
	CURL *idle[CURLEV_IDLE_EASY];
	unsigned nidle;
};

static void check_done(struct curlev *ce)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(ce->multi, &left))) {
		CURL *easy = m->easy_handle;
		CURLcode result = m->data.result;
		void *priv = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&priv);
		/* m is invalid after the remove: copied above */
		curl_multi_remove_handle(ce->multi, easy);
		if (priv)
			ce->done(easy, result, priv);
	}
}

static void on_socket(evutil_socket_t fd, short kind, void *arg)
{
	struct curlev *ce = arg;
	int action = ((kind & EV_READ) ? CURL_CSELECT_IN : 0) |
		     ((kind & EV_WRITE) ? CURL_CSELECT_OUT : 0);

	curl_multi_socket_action(ce->multi, fd, action, &ce->still_running);
	check_done(ce);
	if (ce->still_running <= 0 && evtimer_pending(&ce->timer, NULL))
		evtimer_del(&ce->timer);
}

static void on_timeout(evutil_socket_t fd, short kind, void *arg)
{
	struct curlev *ce = arg;

	(void)fd;
	(void)kind;
	curl_multi_socket_action(ce->multi, CURL_SOCKET_TIMEOUT, 0, &ce->still_running);
	check_done(ce);
}

/* CURLMOPT_TIMERFUNCTION: only arm our timer, never act from inside curl */
static int curl_timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct curlev *ce = arg;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	(void)multi;
	if (timeout_ms < 0)
		evtimer_del(&ce->timer);
	else
		evtimer_add(&ce->timer, &tv);
	return 0;
}

static void csock_free(struct curlev *ce, struct csock *s)
{
	event_del(&s->ev);
	TAILQ_REMOVE(&ce->socks, s, link);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in a socket onto an event */
static int curl_socket_cb(CURL *e, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct curlev *ce = arg;
	struct csock *s = sockp;
	short kind;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(ce->multi, fd, NULL);
			csock_free(ce, s);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->fd = fd;
		TAILQ_INSERT_TAIL(&ce->socks, s, link);
		curl_multi_assign(ce->multi, fd, s);
	} else {
		event_del(&s->ev);
	}
	kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) |
		       EV_PERSIST);
	event_assign(&s->ev, ce->base, fd, kind, on_socket, ce);
	event_add(&s->ev, NULL);
	return 0;
}

int curlev_create(struct event_base *base, curlev_done_fn done, struct curlev **out)
{
	struct curlev *ce;

	*out = NULL;
	if (!(ce = calloc(1, sizeof(*ce))))
		return -ENOMEM;
	ce->base = base;
	ce->done = done;
	TAILQ_INIT(&ce->socks);
	if (!(ce->multi = curl_multi_init()))
		goto fail;
	evtimer_assign(&ce->timer, base, on_timeout, ce);
	curl_multi_setopt(ce->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
	curl_multi_setopt(ce->multi, CURLMOPT_SOCKETDATA, ce);
	curl_multi_setopt(ce->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(ce->multi, CURLMOPT_TIMERDATA, ce);
	curl_multi_setopt(ce->multi, CURLMOPT_MAXCONNECTS, CURLEV_MAXCONNECTS);
	*out = ce;
	return 0;
fail:
	free(ce);
	return -ENOMEM;
}

void curlev_free(struct curlev *ce)
{
	if (!ce)
		return;
	curl_multi_cleanup(ce->multi); /* closes cached connections */
	while (!TAILQ_EMPTY(&ce->socks))
		csock_free(ce, TAILQ_FIRST(&ce->socks));
	evtimer_del(&ce->timer);
	while (ce->nidle)
		curl_easy_cleanup(ce->idle[--ce->nidle]);
	free(ce);
}

int curlev_add(struct curlev *ce, CURL *easy)
{
	/* curl calls the timer callback from here; the transfer starts on
	 * the next tick of that timer, so done() never runs inside this */
	return curl_multi_add_handle(ce->multi, easy) == CURLM_OK ? 0 : -1;
}

void curlev_remove(struct curlev *ce, CURL *easy)
{
	curl_multi_remove_handle(ce->multi, easy);
}

CURL *curlev_easy_get(struct curlev *ce)
{
	return ce->nidle ? ce->idle[--ce->nidle] : curl_easy_init();
}

void curlev_easy_put(struct curlev *ce, CURL *easy)
{
	if (!easy)
		return;
	if (ce->nidle < CURLEV_IDLE_EASY)
		ce->idle[ce->nidle++] = easy; /* reset by the next user, once */
	else
		curl_easy_cleanup(easy);
}
