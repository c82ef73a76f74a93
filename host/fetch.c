/*
 * fetch -- see fetch.h.
 *
 * A transfer's life: WAITING (held by its limiter, in order) -> RUNNING (in
 * the multi handle) -> done, or -> BACKOFF (a timer) -> WAITING/RUNNING
 * again for a retry. Results are collected after every
 * curl_multi_socket_action from curl_multi_info_read, never inside a curl
 * callback (curl refuses re-entrant calls: CURLM_RECURSIVE_API_CALL), so
 * done() may start or cancel other transfers freely.
 */
#include "fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/event_struct.h>

#include "json.h"

#define FETCH_IDLE_EASY 1024    /* easy handles kept for reuse (a fan-out runs hundreds) */
#define FETCH_MAX_REDIRECTS 5L
#define FETCH_DEFAULT_RETRY_BASE_MS 100u
#define FETCH_DEFAULT_RETRY_CAP_MS 2000u

enum xstate { X_NEW, X_WAITING, X_RUNNING, X_BACKOFF, X_DEFERRED, X_DONE };

struct fsock {
	struct event ev;
	struct fetch_engine *fe;
	curl_socket_t fd;
	TAILQ_ENTRY(fsock) link;
};

struct fetch_engine {
	struct event_base *base;
	const struct log *log;
	CURLM *multi;
	struct event timer;
	int still_running;
	CURL *idle[FETCH_IDLE_EASY];
	unsigned nidle;
	TAILQ_HEAD(, fsock) socks;   /* every socket curl told us about */
	uint64_t rng;
	/* counters: written by the owner thread (waiting: by any), read by any */
	atomic_uint alive, running, waiting;
	struct curl_slist *no_expect; /* the headers of a request without its own */
	atomic_ullong started, finished;
	/* slots other loops granted to this loop's waiting transfers */
	pthread_mutex_t gmu;
	struct fetch_xfer *granted, *granted_tail;
	int wake_fd;                 /* eventfd: "you have granted transfers" */
	unsigned wakes;
	struct event wake_ev;
};

/*
 * A limiter is shared by every loop (one per plugin): its counters and its
 * FIFO of waiting transfers are under `mu`. A transfer is only ever
 * launched, stopped or freed by its own loop's thread; when capacity frees
 * on another loop and the next in line belongs elsewhere, that loop takes
 * the slot on the transfer's behalf ("granted"), queues it on the owner's
 * engine and wakes it. Lock order: limiter mu, then engine gmu.
 */
struct fetch_limiter {
	pthread_mutex_t mu;
	struct fetch_limits lim;
	unsigned active;           /* slots held or granted */
	double tokens;
	int64_t last_ns;
	TAILQ_HEAD(, fetch_xfer) waiting; /* in arrival order */
	unsigned nwaiting;
};

struct fetch_xfer {
	struct fetch_engine *fe;
	struct fetch_limiter *lim;
	enum xstate state;
	bool holds_slot, too_large, granted, wait_armed;
	CURL *easy;
	struct curl_slist *headers;
	char *url, *method;
	char *body;
	size_t body_len;
	struct fetch_opts opt;
	fetch_done_fn done;
	void *arg;
	struct event ev;           /* backoff, deferred finish, or the wait for a token */
	TAILQ_ENTRY(fetch_xfer) qlink; /* the limiter's waiting queue */
	struct fetch_xfer *gnext;  /* engine's granted list, or a local launch list */
	unsigned attempts;
	CURLcode code;
	struct jbuf rbody;         /* response body */
	struct jbuf rhead;         /* "name\0value\0"... of the last response */
	size_t nhead;
	hookd_header *hdrs;
	hookd_response resp;
	char errbuf[CURL_ERROR_SIZE];
	char msg[CURL_ERROR_SIZE + 64];
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- limits ----------------------------------------------------------- */

int fetch_limits_parse(const cJSON *section, struct fetch_limits *out, char *err, size_t errlen)
{
	const cJSON *f = section ? cJSON_GetObjectItemCaseSensitive(section, "fetch") : NULL;
	const cJSON *k;

	memset(out, 0, sizeof(*out));
	out->max_response = FETCH_DEFAULT_MAX_RESPONSE;
	if (!f)
		return 0;
	if (!cJSON_IsObject(f)) {
		snprintf(err, errlen, "fetch: expected an object with concurrency, rate, burst, "
			 "max_response");
		return -1;
	}
	cJSON_ArrayForEach(k, f)
	{
		double v = k->valuedouble;
		bool num = cJSON_IsNumber(k), integral = num && v == floor(v);
		if (strcmp(k->string, "concurrency") == 0) {
			if (!integral || v < 0 || v > 100000)
				goto bad;
			out->concurrency = (unsigned)v;
		} else if (strcmp(k->string, "rate") == 0) {
			if (!num || v < 0 || v > 1e6 || (v > 0 && v < 0.01))
				goto bad;
			out->rate = v;
		} else if (strcmp(k->string, "burst") == 0) {
			if (!num || v < 1 || v > 1e6)
				goto bad;
			out->burst = v;
		} else if (strcmp(k->string, "max_response") == 0) {
			if (!integral || v < 1 || v > 1024.0 * 1024 * 1024)
				goto bad;
			out->max_response = (size_t)v;
		} else {
			snprintf(err, errlen, "fetch.%s: unknown key (expected concurrency, rate, "
				 "burst, max_response)", k->string);
			return -1;
		}
		continue;
bad:
		snprintf(err, errlen, "fetch.%s: %s", k->string,
			 strcmp(k->string, "concurrency") == 0 ? "expected an integer 0-100000 "
								 "(0: unlimited)"
			 : strcmp(k->string, "rate") == 0 ? "expected requests per second, 0.01-1000000 "
							    "(0: unlimited)"
			 : strcmp(k->string, "burst") == 0 ? "expected a number 1-1000000"
							     : "expected bytes, 1-1073741824");
		return -1;
	}
	if (out->rate > 0 && out->burst == 0)
		out->burst = out->rate >= 1 ? out->rate : 1;
	return 0;
}

int fetch_limiter_create(const struct fetch_limits *lim, struct fetch_limiter **out)
{
	struct fetch_limiter *l;

	*out = NULL;
	if (!lim->concurrency && !(lim->rate > 0))
		return 0;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	pthread_mutex_init(&l->mu, NULL);
	TAILQ_INIT(&l->waiting);
	l->lim = *lim;
	l->tokens = lim->burst;
	l->last_ns = now_ns();
	*out = l;
	return 0;
}

void fetch_limiter_free(struct fetch_limiter *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->mu);
	free(l);
}

static void limiter_refill(struct fetch_limiter *l, int64_t now)
{
	if (l->lim.rate > 0) {
		l->tokens += (double)(now - l->last_ns) / 1e9 * l->lim.rate;
		if (l->tokens > l->lim.burst)
			l->tokens = l->lim.burst;
	}
	l->last_ns = now;
}

/* Under mu: take a slot (and a token) if the limits allow one more now. */
static bool limiter_take(struct fetch_limiter *l)
{
	limiter_refill(l, now_ns());
	if (l->lim.concurrency && l->active >= l->lim.concurrency)
		return false;
	if (l->lim.rate > 0 && l->tokens < 1.0)
		return false;
	l->active++;
	if (l->lim.rate > 0)
		l->tokens -= 1.0;
	return true;
}

static void x_launch(struct fetch_xfer *x);

/* A list of transfers to launch once the limiter's lock is released. */
struct launch_list {
	struct fetch_xfer *head, *tail;
};

static void launch_add(struct launch_list *ll, struct fetch_xfer *x)
{
	x->gnext = NULL;
	if (ll->tail)
		ll->tail->gnext = x;
	else
		ll->head = x;
	ll->tail = x;
}

static void launch_all(struct launch_list *ll)
{
	struct fetch_xfer *x, *next;

	for (x = ll->head; x; x = next) {
		next = x->gnext;
		x_launch(x);
	}
}

static void engine_wake(struct fetch_engine *fe)
{
	uint64_t one = 1;
	ssize_t r;

	do
		r = write(fe->wake_fd, &one, sizeof(one));
	while (r < 0 && errno == EINTR);
}

/* Under l->mu: hand free capacity to the waiting transfers in order. Those
 * of `me` go to `mine` (launch them after unlocking); the others get their
 * slot granted and their loop woken. */
static void pump_locked(struct fetch_limiter *l, struct fetch_engine *me, struct launch_list *mine)
{
	struct fetch_xfer *x;

	while ((x = TAILQ_FIRST(&l->waiting)) && limiter_take(l)) {
		TAILQ_REMOVE(&l->waiting, x, qlink);
		l->nwaiting--;
		atomic_fetch_sub(&x->fe->waiting, 1);
		x->holds_slot = true;
		if (x->fe == me) {
			launch_add(mine, x);
			continue;
		}
		struct fetch_engine *owner = x->fe;
		bool was_empty;
		x->granted = true;
		x->gnext = NULL;
		pthread_mutex_lock(&owner->gmu);
		was_empty = !owner->granted;
		if (owner->granted_tail)
			owner->granted_tail->gnext = x;
		else
			owner->granted = x;
		owner->granted_tail = x;
		pthread_mutex_unlock(&owner->gmu);
		if (was_empty)
			engine_wake(owner);
	}
}

/* Owner thread: the slot x held is free again. */
static void limiter_release(struct fetch_xfer *x)
{
	struct fetch_limiter *l = x->lim;
	struct launch_list mine = {0};

	if (!x->holds_slot)
		return;
	x->holds_slot = false;
	pthread_mutex_lock(&l->mu);
	l->active--;
	pump_locked(l, x->fe, &mine);
	pthread_mutex_unlock(&l->mu);
	launch_all(&mine);
}

static void on_token_wait(evutil_socket_t fd, short what, void *arg);

/* Owner thread, x waiting on a rate limit: look again when a token for it
 * should be there (`ahead` transfers are in line before it). */
static void arm_token_wait(struct fetch_xfer *x, double ahead, double tokens)
{
	const struct fetch_limiter *l = x->lim;
	double wait_s = (ahead + 1.0 - tokens) / l->lim.rate;
	struct timeval tv;

	if (wait_s < 0.001)
		wait_s = 0.001;
	tv.tv_sec = (time_t)wait_s;
	tv.tv_usec = (suseconds_t)((wait_s - floor(wait_s)) * 1e6) + 1;
	if (!x->wait_armed)
		evtimer_assign(&x->ev, x->fe->base, on_token_wait, x);
	x->wait_armed = true;
	evtimer_add(&x->ev, &tv);
}

static void on_token_wait(evutil_socket_t fd, short what, void *arg)
{
	struct fetch_xfer *x = arg;
	struct fetch_limiter *l = x->lim;
	struct launch_list mine = {0};
	bool still_waiting;
	double tokens = 0;

	(void)fd;
	(void)what;
	x->wait_armed = false;
	pthread_mutex_lock(&l->mu);
	pump_locked(l, x->fe, &mine);
	still_waiting = x->state == X_WAITING && !x->holds_slot;
	tokens = l->tokens;
	/* look again only while tokens hold it back; when the concurrency bound
	 * does, the next release pumps the queue */
	bool full = l->lim.concurrency && l->active >= l->lim.concurrency;
	pthread_mutex_unlock(&l->mu);
	if (still_waiting && !full)
		arm_token_wait(x, 0, tokens);
	launch_all(&mine); /* may launch x itself */
}

/* Owner thread: another loop granted slots to our waiting transfers. */
static void on_engine_wake(evutil_socket_t fd, short what, void *arg)
{
	struct fetch_engine *fe = arg;
	struct fetch_xfer *x, *next;
	uint64_t n;
	ssize_t r;

	(void)what;
	/* edge-triggered, as the dispatcher's wake-up: read now and then only */
	if ((++fe->wakes & 4095) == 0) {
		do
			r = read(fd, &n, sizeof(n));
		while (r < 0 && errno == EINTR);
	}
	pthread_mutex_lock(&fe->gmu);
	x = fe->granted;
	fe->granted = fe->granted_tail = NULL;
	pthread_mutex_unlock(&fe->gmu);
	for (; x; x = next) {
		next = x->gnext;
		x->granted = false;
		x_launch(x);
	}
}

/* ---- transfers -------------------------------------------------------- */

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
	struct fetch_xfer *x = arg;
	size_t len = size * n;

	if (x->rbody.len + len > x->opt.max_response) {
		x->too_large = true;
		return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
	}
	return jbuf_append(&x->rbody, p, len) < 0 ? 0 : len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct fetch_xfer *x = arg;
	size_t len = size * n, nl;
	char *colon;

	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		/* a new response (after 100 Continue or a redirect): start over */
		x->rhead.len = 0;
		x->nhead = 0;
		return len;
	}
	while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		len--;
	colon = memchr(p, ':', len);
	if (!colon || colon == p)
		return size * n;
	nl = (size_t)(colon - p);
	colon++;
	while (colon < p + len && (*colon == ' ' || *colon == '\t'))
		colon++;
	if (jbuf_append(&x->rhead, p, nl) < 0 || jbuf_append(&x->rhead, "", 1) < 0 ||
	    jbuf_append(&x->rhead, colon, (size_t)(p + len - colon)) < 0 ||
	    jbuf_append(&x->rhead, "", 1) < 0)
		return 0;
	x->nhead++;
	return size * n;
}

static CURL *easy_get(struct fetch_engine *fe)
{
	return fe->nidle ? fe->idle[--fe->nidle] : curl_easy_init();
}

static void easy_put(struct fetch_engine *fe, CURL *e)
{
	if (!e)
		return;
	if (fe->nidle < FETCH_IDLE_EASY) {
		/* not reset here: x_launch resets it before every use anyway */
		fe->idle[fe->nidle++] = e;
	} else {
		curl_easy_cleanup(e);
	}
}

static void x_free(struct fetch_xfer *x)
{
	struct fetch_engine *fe = x->fe;

	easy_put(fe, x->easy);
	curl_slist_free_all(x->headers);
	free(x->url);
	free(x->method);
	free(x->body);
	jbuf_free(&x->rbody);
	jbuf_free(&x->rhead);
	free(x->hdrs);
	free(x);
	atomic_fetch_sub_explicit(&fe->alive, 1, memory_order_relaxed);
}

static void x_finish(struct fetch_xfer *x);

/* Map curl's outcome of the last attempt onto x->resp. */
static void x_collect(struct fetch_xfer *x)
{
	hookd_response *r = &x->resp;
	curl_off_t t;
	long status = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	r->status = status;
	r->total_ms = curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &t) == CURLE_OK ? t / 1e3 : 0;
	r->dns_ms = curl_easy_getinfo(x->easy, CURLINFO_NAMELOOKUP_TIME_T, &t) == CURLE_OK ? t / 1e3 : 0;
	r->connect_ms = curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &t) == CURLE_OK ? t / 1e3 : 0;
	r->first_byte_ms =
		curl_easy_getinfo(x->easy, CURLINFO_STARTTRANSFER_TIME_T, &t) == CURLE_OK ? t / 1e3 : 0;

	switch (x->code) {
	case CURLE_OK:
		r->error = HOOKD_OK;
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		r->error = HOOKD_EDNS;
		break;
	case CURLE_COULDNT_CONNECT:
		r->error = HOOKD_ECONNECT;
		break;
	case CURLE_OPERATION_TIMEDOUT:
		r->error = HOOKD_ETIMEDOUT;
		break;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_USE_SSL_FAILED:
		r->error = HOOKD_ETLS;
		break;
	case CURLE_FILESIZE_EXCEEDED:
		r->error = HOOKD_ETOOLARGE;
		break;
	case CURLE_WRITE_ERROR:
		r->error = x->too_large ? HOOKD_ETOOLARGE : HOOKD_EFETCH;
		break;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		r->error = HOOKD_ECONNRESET;
		break;
	default:
		r->error = HOOKD_EFETCH;
	}
	if (r->error == HOOKD_ETOOLARGE)
		snprintf(x->msg, sizeof(x->msg), "response body larger than %zu bytes",
			 x->opt.max_response);
	else if (r->error != HOOKD_OK)
		snprintf(x->msg, sizeof(x->msg), "%s", x->errbuf[0] ? x->errbuf
								 : curl_easy_strerror(x->code));
	else
		x->msg[0] = '\0';
}

static bool retryable(const struct fetch_xfer *x)
{
	const hookd_response *r = &x->resp;

	switch (r->error) {
	case HOOKD_ECONNECT:
	case HOOKD_ETIMEDOUT:
	case HOOKD_ECONNRESET:
		return true;
	case HOOKD_OK:
		return r->status == 429 || r->status == 502 || r->status == 503 || r->status == 504;
	default:
		return false;
	}
}

static uint64_t rng_next(struct fetch_engine *fe)
{
	/* xorshift64*: jitter only, not security */
	fe->rng ^= fe->rng >> 12;
	fe->rng ^= fe->rng << 25;
	fe->rng ^= fe->rng >> 27;
	return fe->rng * 2685821657736338717ull;
}

/* Seconds in a Retry-After header of the last response, or 0. */
static unsigned retry_after_s(const struct fetch_xfer *x)
{
	const char *p = x->rhead.data;

	for (size_t i = 0; p && i < x->nhead; i++) {
		const char *name = p, *value = p + strlen(p) + 1;
		if (strcasecmp(name, "Retry-After") == 0) {
			long v = strtol(value, NULL, 10);
			return v > 0 && v < 3600 ? (unsigned)v : 0;
		}
		p = value + strlen(value) + 1;
	}
	return 0;
}

static void on_x_timer(evutil_socket_t fd, short what, void *arg);

/* Schedule the next attempt, or return false when none may be made. */
static bool x_schedule_retry(struct fetch_xfer *x)
{
	uint64_t exp, delay_ms;
	unsigned shift = x->attempts - 1 < 30 ? x->attempts - 1 : 30;
	struct timeval tv;

	if (x->attempts > x->opt.retries || !retryable(x))
		return false;
	/* exponential backoff, "equal jitter": half fixed, half random */
	exp = (uint64_t)x->opt.retry_base_ms << shift;
	if (exp > x->opt.retry_cap_ms)
		exp = x->opt.retry_cap_ms;
	delay_ms = exp / 2 + rng_next(x->fe) % (exp / 2 + 1);
	if (x->resp.status == 429 || x->resp.status == 503) {
		uint64_t ra = (uint64_t)retry_after_s(x) * 1000;
		if (ra > delay_ms)
			delay_ms = ra;
	}
	if (x->opt.deadline_ns && now_ns() + (int64_t)delay_ms * 1000000 >= x->opt.deadline_ns)
		return false; /* the retry could not finish in time */
	tv.tv_sec = (time_t)(delay_ms / 1000);
	tv.tv_usec = (suseconds_t)(delay_ms % 1000) * 1000;
	x->state = X_BACKOFF;
	evtimer_assign(&x->ev, x->fe->base, on_x_timer, x);
	evtimer_add(&x->ev, &tv);
	return true;
}

/* One attempt ended (x was in the multi handle). */
static void x_attempt_done(struct fetch_xfer *x, CURLcode code)
{
	struct fetch_engine *fe = x->fe;

	curl_multi_remove_handle(fe->multi, x->easy);
	atomic_fetch_sub_explicit(&fe->running, 1, memory_order_relaxed);
	x->code = code;
	x_collect(x);
	if (x->lim)
		limiter_release(x); /* may start waiting transfers */
	if (x_schedule_retry(x))
		return;
	x_finish(x);
}

static void x_fail_now(struct fetch_xfer *x, int error, const char *msg)
{
	x->resp.error = error;
	snprintf(x->msg, sizeof(x->msg), "%s", msg);
	x->state = X_DEFERRED;
	event_assign(&x->ev, x->fe->base, -1, 0, on_x_timer, x);
	event_active(&x->ev, EV_TIMEOUT, 0);
}

static void x_admit(struct fetch_xfer *x);

static void on_x_timer(evutil_socket_t fd, short what, void *arg)
{
	struct fetch_xfer *x = arg;

	(void)fd;
	(void)what;
	if (x->state == X_DEFERRED) {
		x_finish(x);
		return;
	}
	/* backoff over: next attempt, through the limiter again */
	x_admit(x);
}

static void x_set_method(struct fetch_xfer *x)
{
	CURL *e = x->easy;

	if (strcmp(x->method, "GET") == 0 && !x->body) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
		return;
	}
	if (strcmp(x->method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
		return;
	}
	if (x->body || strcmp(x->method, "POST") == 0 || strcmp(x->method, "PUT") == 0 ||
	    strcmp(x->method, "PATCH") == 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body ? x->body : "");
	}
	if (strcmp(x->method, "POST") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
}

/* Put x into the multi handle for one attempt. */
static void x_launch(struct fetch_xfer *x)
{
	struct fetch_engine *fe = x->fe;
	long timeout_ms = (long)x->opt.timeout_ms;
	CURL *e;

	if (x->wait_armed) {
		event_del(&x->ev);
		x->wait_armed = false;
	}

	/* The call's deadline is enforced by the call itself, which cancels
	 * its transfers when it passes; a curl timeout set to the same instant
	 * would race it and turn the 504 into a plugin-visible error. */
	if (x->opt.deadline_ns && x->opt.deadline_ns <= now_ns()) {
		if (x->holds_slot)
			limiter_release(x);
		x_fail_now(x, HOOKD_ETIMEDOUT, "the call's deadline passed before the request "
			   "could start");
		return;
	}
	if (!x->easy && !(x->easy = easy_get(fe))) {
		if (x->holds_slot)
			limiter_release(x);
		x_fail_now(x, HOOKD_ENOMEM, "out of memory");
		return;
	}
	e = x->easy;
	curl_easy_reset(e);
	x->rbody.len = 0;
	x->rhead.len = 0;
	x->nhead = 0;
	x->too_large = false;
	x->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, x->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* never wait for the threaded resolver when a transfer is removed */
	curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, x->opt.follow_redirects ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, FETCH_MAX_REDIRECTS);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers ? x->headers : fe->no_expect);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "hookd");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->opt.max_response);
	x_set_method(x);
	x->attempts++;
	x->resp.attempts = x->attempts;
	if (curl_multi_add_handle(fe->multi, e) != CURLM_OK) {
		if (x->holds_slot)
			limiter_release(x);
		x_fail_now(x, HOOKD_EFETCH, "cannot start the transfer");
		return;
	}
	x->state = X_RUNNING;
	atomic_fetch_add_explicit(&fe->running, 1, memory_order_relaxed);
}

static void x_admit(struct fetch_xfer *x)
{
	struct fetch_limiter *l = x->lim;
	double ahead, tokens;
	bool rate;

	if (!l) {
		x_launch(x);
		return;
	}
	pthread_mutex_lock(&l->mu);
	if (TAILQ_EMPTY(&l->waiting) && limiter_take(l)) {
		pthread_mutex_unlock(&l->mu);
		x->holds_slot = true;
		x_launch(x);
		return;
	}
	/* wait in line: nobody overtakes a transfer that waits */
	x->state = X_WAITING;
	TAILQ_INSERT_TAIL(&l->waiting, x, qlink);
	ahead = l->nwaiting++;
	atomic_fetch_add(&x->fe->waiting, 1);
	tokens = l->tokens;
	rate = l->lim.rate > 0;
	pthread_mutex_unlock(&l->mu);
	if (rate)
		arm_token_wait(x, ahead, tokens);
}

static void x_finish(struct fetch_xfer *x)
{
	hookd_response *r = &x->resp;
	const char *p;

	x->state = X_DONE;
	atomic_fetch_add_explicit(&x->fe->finished, 1, memory_order_relaxed);
	if (jbuf_reserve(&x->rbody, 1) == 0) {
		x->rbody.data[x->rbody.len] = '\0';
		r->body = x->rbody.data;
		r->body_len = x->rbody.len;
	} else {
		/* the body must be NUL-terminated (SDK): no room for it, no body */
		r->body = "";
		r->body_len = 0;
		if (r->error == HOOKD_OK) {
			r->error = HOOKD_EFETCH;
			snprintf(x->msg, sizeof(x->msg), "out of memory");
		}
	}
	r->error_message = x->msg;
	r->url = x->url;
	r->headers = NULL;
	r->nheaders = 0;
	if (x->nhead && (x->hdrs = calloc(x->nhead, sizeof(*x->hdrs)))) {
		p = x->rhead.data;
		for (size_t i = 0; i < x->nhead; i++) {
			x->hdrs[i].name = p;
			p += strlen(p) + 1;
			x->hdrs[i].value = p;
			p += strlen(p) + 1;
		}
		r->headers = x->hdrs;
		r->nheaders = x->nhead;
	}
	x->done(x, x->arg); /* may release x */
}

struct fetch_xfer *fetch_start(struct fetch_engine *fe, struct fetch_limiter *lim,
			       const hookd_request *req, const struct fetch_opts *opt,
			       fetch_done_fn done, void *arg, int *err)
{
	struct fetch_xfer *x;
	const char *m;

	if (!req || !req->url || (strncasecmp(req->url, "http://", 7) != 0 &&
				  strncasecmp(req->url, "https://", 8) != 0)) {
		*err = HOOKD_EINVAL;
		return NULL;
	}
	x = calloc(1, sizeof(*x));
	if (!x) {
		*err = HOOKD_ENOMEM;
		return NULL;
	}
	atomic_fetch_add_explicit(&fe->alive, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&fe->started, 1, memory_order_relaxed);
	x->fe = fe;
	x->lim = lim;
	x->done = done;
	x->arg = arg;
	x->opt = *opt;
	if (!x->opt.retry_base_ms)
		x->opt.retry_base_ms = FETCH_DEFAULT_RETRY_BASE_MS;
	if (!x->opt.retry_cap_ms)
		x->opt.retry_cap_ms = FETCH_DEFAULT_RETRY_CAP_MS;
	if (!x->opt.max_response)
		x->opt.max_response = FETCH_DEFAULT_MAX_RESPONSE;
	m = req->method && *req->method ? req->method : req->body ? "POST" : "GET";
	if (!(x->url = strdup(req->url)) || !(x->method = strdup(m)))
		goto oom;
	for (char *c = x->method; *c; c++) {
		if (*c < 'A' || *c > 'Z') {
			*err = HOOKD_EINVAL; /* a method is an upper-case token */
			x_free(x);
			return NULL;
		}
	}
	if (req->body) {
		if (!(x->body = malloc(req->body_len ? req->body_len : 1)))
			goto oom;
		memcpy(x->body, req->body, req->body_len);
		x->body_len = req->body_len;
	}
	/* no "Expect: 100-continue" round trip before a body */
	if (req->nheaders && !(x->headers = curl_slist_append(NULL, "Expect:")))
		goto oom;
	for (size_t i = 0; i < req->nheaders; i++) {
		const hookd_header *h = &req->headers[i];
		char line[8192];
		struct curl_slist *n;
		if (!h->name || !h->value || !*h->name || strpbrk(h->name, ":\r\n") ||
		    strpbrk(h->value, "\r\n")) {
			*err = HOOKD_EINVAL; /* header injection */
			x_free(x);
			return NULL;
		}
		if (snprintf(line, sizeof(line), "%s: %s", h->name, h->value) >= (int)sizeof(line)) {
			*err = HOOKD_EINVAL;
			x_free(x);
			return NULL;
		}
		if (!(n = curl_slist_append(x->headers, line)))
			goto oom;
		x->headers = n;
	}
	x_admit(x);
	return x;
oom:
	*err = HOOKD_ENOMEM;
	x_free(x);
	return NULL;
}

const hookd_response *fetch_response(const struct fetch_xfer *x)
{
	return &x->resp;
}

void fetch_release(struct fetch_xfer *x)
{
	if (x)
		x_free(x);
}

void fetch_cancel(struct fetch_xfer *x)
{
	struct fetch_engine *fe;

	if (!x)
		return;
	fe = x->fe;
	switch (x->state) {
	case X_RUNNING:
		/* curl closes the connection of a transfer removed mid-way */
		curl_multi_remove_handle(fe->multi, x->easy);
		atomic_fetch_sub_explicit(&fe->running, 1, memory_order_relaxed);
		if (x->lim)
			limiter_release(x);
		break;
	case X_WAITING: {
		struct fetch_limiter *l = x->lim;
		struct launch_list mine = {0};
		if (x->wait_armed) {
			event_del(&x->ev);
			x->wait_armed = false;
		}
		pthread_mutex_lock(&l->mu);
		if (x->granted) {
			/* another loop gave it a slot: it sits in our granted list */
			struct fetch_xfer **pp;
			pthread_mutex_lock(&fe->gmu);
			for (pp = &fe->granted; *pp && *pp != x; pp = &(*pp)->gnext)
				;
			if (*pp) {
				*pp = x->gnext;
				if (fe->granted_tail == x) {
					fe->granted_tail = NULL;
					for (struct fetch_xfer *t = fe->granted; t; t = t->gnext)
						fe->granted_tail = t;
				}
			}
			pthread_mutex_unlock(&fe->gmu);
			x->granted = false;
			x->holds_slot = false;
			l->active--;
			pump_locked(l, fe, &mine);
		} else {
			TAILQ_REMOVE(&l->waiting, x, qlink);
			l->nwaiting--;
			atomic_fetch_sub(&fe->waiting, 1);
		}
		pthread_mutex_unlock(&l->mu);
		launch_all(&mine);
		break;
	}
	case X_BACKOFF:
	case X_DEFERRED:
		event_del(&x->ev);
		break;
	default:
		break;
	}
	x_free(x);
}

/* ---- the engine: curl multi on the event base --------------------------- */

static void check_done(struct fetch_engine *fe)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(fe->multi, &left))) {
		struct fetch_xfer *x = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x)
			x_attempt_done(x, m->data.result);
	}
}

static void on_socket(evutil_socket_t fd, short kind, void *arg)
{
	struct fetch_engine *fe = arg;
	int action = ((kind & EV_READ) ? CURL_CSELECT_IN : 0) |
		     ((kind & EV_WRITE) ? CURL_CSELECT_OUT : 0);

	curl_multi_socket_action(fe->multi, fd, action, &fe->still_running);
	check_done(fe);
	if (fe->still_running <= 0 && evtimer_pending(&fe->timer, NULL))
		evtimer_del(&fe->timer);
}

static void on_timeout(evutil_socket_t fd, short kind, void *arg)
{
	struct fetch_engine *fe = arg;

	(void)fd;
	(void)kind;
	curl_multi_socket_action(fe->multi, CURL_SOCKET_TIMEOUT, 0, &fe->still_running);
	check_done(fe);
}

/* CURLMOPT_TIMERFUNCTION: only arm our timer, never act from inside curl */
static int curl_timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct fetch_engine *fe = arg;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	(void)multi;
	if (timeout_ms < 0)
		evtimer_del(&fe->timer);
	else
		evtimer_add(&fe->timer, &tv);
	return 0;
}

static void fsock_free(struct fetch_engine *fe, struct fsock *s)
{
	event_del(&s->ev);
	TAILQ_REMOVE(&fe->socks, s, link);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in a socket onto an event */
static int curl_socket_cb(CURL *e, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct fetch_engine *fe = arg;
	struct fsock *s = sockp;
	short kind;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(fe->multi, fd, NULL);
			fsock_free(fe, s);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->fe = fe;
		s->fd = fd;
		TAILQ_INSERT_TAIL(&fe->socks, s, link);
		curl_multi_assign(fe->multi, fd, s);
	} else {
		event_del(&s->ev);
	}
	kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) |
		       EV_PERSIST);
	event_assign(&s->ev, fe->base, fd, kind, on_socket, fe);
	event_add(&s->ev, NULL);
	return 0;
}

int fetch_engine_create(struct event_base *base, const struct log *log, struct fetch_engine **out)
{
	struct fetch_engine *fe = calloc(1, sizeof(*fe));

	*out = NULL;
	if (!fe)
		return -ENOMEM;
	fe->base = base;
	fe->log = log;
	fe->rng = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)fe;
	if (!fe->rng)
		fe->rng = 88172645463325252ull;
	fe->multi = curl_multi_init();
	fe->no_expect = curl_slist_append(NULL, "Expect:");
	if (!fe->multi || !fe->no_expect) {
		curl_multi_cleanup(fe->multi);
		curl_slist_free_all(fe->no_expect);
		free(fe);
		return -ENOMEM;
	}
	pthread_mutex_init(&fe->gmu, NULL);
	TAILQ_INIT(&fe->socks);
	fe->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fe->wake_fd < 0) {
		int rc = -errno;
		curl_multi_cleanup(fe->multi);
		pthread_mutex_destroy(&fe->gmu);
		free(fe);
		return rc;
	}
	event_assign(&fe->wake_ev, base, fe->wake_fd, EV_READ | EV_PERSIST | EV_ET, on_engine_wake,
		     fe);
	event_add(&fe->wake_ev, NULL);
	evtimer_assign(&fe->timer, base, on_timeout, fe);
	curl_multi_setopt(fe->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
	curl_multi_setopt(fe->multi, CURLMOPT_SOCKETDATA, fe);
	curl_multi_setopt(fe->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(fe->multi, CURLMOPT_TIMERDATA, fe);
	/* keep enough idle connections for a fan-out to reuse them */
	curl_multi_setopt(fe->multi, CURLMOPT_MAXCONNECTS, 1024L);
	*out = fe;
	return 0;
}

void fetch_engine_free(struct fetch_engine *fe)
{
	if (!fe)
		return;
	if (atomic_load(&fe->alive))
		log_warn(fe->log, "fetch: %u transfer(s) still alive at shutdown",
			 atomic_load(&fe->alive));
	curl_multi_cleanup(fe->multi); /* closes cached connections */
	while (!TAILQ_EMPTY(&fe->socks))
		fsock_free(fe, TAILQ_FIRST(&fe->socks));
	evtimer_del(&fe->timer);
	event_del(&fe->wake_ev);
	close(fe->wake_fd);
	pthread_mutex_destroy(&fe->gmu);
	while (fe->nidle)
		curl_easy_cleanup(fe->idle[--fe->nidle]);
	curl_slist_free_all(fe->no_expect);
	free(fe);
}

void fetch_engine_stats(const struct fetch_engine *fe, struct fetch_stats *st)
{
	/* relaxed: counters for GET /health, read from any loop */
	st->alive = atomic_load_explicit(&fe->alive, memory_order_relaxed);
	st->running = atomic_load_explicit(&fe->running, memory_order_relaxed);
	st->waiting = atomic_load_explicit(&fe->waiting, memory_order_relaxed);
	st->started = atomic_load_explicit(&fe->started, memory_order_relaxed);
	st->finished = atomic_load_explicit(&fe->finished, memory_order_relaxed);
}
