/*
 * fetch -- see fetch.h.
 *
 * A transfer's life: WAITING (queued in its limiter, in order) -> RUNNING
 * (in the multi handle) -> done, or -> BACKOFF (a timer) -> WAITING/RUNNING
 * again for a retry. Results are collected after curl_multi_socket_action
 * (curlev.c), never inside a curl callback, so done() may start or cancel
 * other transfers freely.
 *
 * Ownership: the engine owns nothing of a transfer's but its count; a
 * transfer owns its copies of the request, its easy handle (borrowed from
 * the engine's idle cache and given back on free) and its response.
 */
#include "fetch.h"
#include "clock.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/event_struct.h>

#include "curlev.h"
#include "json.h"
#include "limiter.h"
#include "wake.h"

#define FETCH_MAX_REDIRECTS 5L
#define FETCH_DEFAULT_RETRY_BASE_MS 100u
#define FETCH_DEFAULT_RETRY_CAP_MS 2000u

enum xstate { X_NEW, X_WAITING, X_RUNNING, X_BACKOFF, X_DEFERRED, X_DONE };

struct fetch_engine {
	struct event_base *base;
	const struct log *log;
	struct curlev *curl;
	uint64_t rng;
	struct curl_slist *no_expect; /* the headers of a request without its own */
	/* counters: written by the owner thread, read by any (waiting: in lo) */
	atomic_uint alive, running;
	atomic_ullong started, finished;
	struct limiter_owner lo;     /* this loop, as the limiters see it */
	/* slots other loops granted to this loop's waiting transfers */
	pthread_mutex_t gmu;
	struct limiter_list granted; /* under gmu */
	struct wake wake;            /* "you have granted transfers" */
};

struct fetch_xfer {
	struct fetch_engine *fe;
	struct limiter *lim;
	struct limiter_waiter lw;  /* lw.owner == &fe->lo */
	enum xstate state;
	bool too_large, wait_armed;
	CURL *easy;
	struct curl_slist *headers;
	char *url, *method;
	char *body;
	size_t body_len;
	struct fetch_opts opt;
	fetch_done_fn done;
	void *arg;
	struct event ev;           /* backoff, deferred finish, or the wait for a token */
	unsigned attempts;
	CURLcode code;
	struct jbuf rbody;         /* response body */
	struct jbuf rhead;         /* "name\0value\0"... of the last response */
	size_t nhead;
	unsigned retry_after_s;    /* Retry-After of the last response, or 0 */
	hookd_header *hdrs;
	hookd_response resp;
	char errbuf[CURL_ERROR_SIZE];
	char msg[CURL_ERROR_SIZE + 64];
};

static struct fetch_xfer *xfer_of(struct limiter_waiter *w)
{
	return (struct fetch_xfer *)((char *)w - offsetof(struct fetch_xfer, lw));
}

/* ---- admission ------------------------------------------------------------ */

static void x_launch(struct fetch_xfer *x);

/* Start the transfers a limiter handed to this loop, in order. */
static void launch_ready(struct limiter_list *ready)
{
	struct limiter_waiter *w;

	while ((w = STAILQ_FIRST(ready))) {
		STAILQ_REMOVE_HEAD(ready, rlink);
		x_launch(xfer_of(w));
	}
}

/* Owner thread: the slot x held is free again. */
static void x_leave(struct fetch_xfer *x)
{
	struct limiter_list ready = STAILQ_HEAD_INITIALIZER(ready);

	if (!x->lim || x->lw.state != LIMITER_HOLDS)
		return;
	limiter_leave(x->lim, &x->lw, &ready);
	launch_ready(&ready);
}

/* limiter_owner.grant: another loop's thread, under the limiter's lock. */
static void on_grant(struct limiter_owner *o, struct limiter_waiter *w)
{
	struct fetch_engine *fe = (struct fetch_engine *)((char *)o - offsetof(struct fetch_engine, lo));
	bool was_empty;

	pthread_mutex_lock(&fe->gmu);
	was_empty = STAILQ_EMPTY(&fe->granted);
	STAILQ_INSERT_TAIL(&fe->granted, w, rlink);
	pthread_mutex_unlock(&fe->gmu);
	if (was_empty) /* a non-empty list has a wake-up on its way already */
		wake_signal(&fe->wake);
}

/* limiter_owner.ungrant: our loop thread, under the limiter's lock. */
static void on_ungrant(struct limiter_owner *o, struct limiter_waiter *w)
{
	struct fetch_engine *fe = (struct fetch_engine *)((char *)o - offsetof(struct fetch_engine, lo));

	pthread_mutex_lock(&fe->gmu);
	STAILQ_REMOVE(&fe->granted, w, limiter_waiter, rlink);
	pthread_mutex_unlock(&fe->gmu);
}

/* Owner thread, through the wake-up: other loops granted slots to our
 * waiting transfers. */
static void on_engine_wake(void *arg)
{
	struct fetch_engine *fe = arg;
	struct limiter_list mine = STAILQ_HEAD_INITIALIZER(mine);
	struct limiter_waiter *w;

	pthread_mutex_lock(&fe->gmu);
	STAILQ_CONCAT(&mine, &fe->granted);
	pthread_mutex_unlock(&fe->gmu);
	while ((w = STAILQ_FIRST(&mine))) {
		STAILQ_REMOVE_HEAD(&mine, rlink);
		limiter_granted_taken(w);
		x_launch(xfer_of(w));
	}
}

static void on_token_wait(evutil_socket_t fd, short what, void *arg);

/* Owner thread, x waiting on a rate limit: look again in wait_s. */
static void arm_token_wait(struct fetch_xfer *x, double wait_s)
{
	struct timeval tv;

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
	struct limiter_list ready = STAILQ_HEAD_INITIALIZER(ready);
	double wait_s;

	(void)fd;
	(void)what;
	x->wait_armed = false;
	wait_s = limiter_poll(x->lim, &x->lw, &ready);
	if (wait_s > 0)
		arm_token_wait(x, wait_s);
	launch_ready(&ready); /* may launch x itself */
}

static void x_admit(struct fetch_xfer *x)
{
	double wait_s;

	if (!x->lim || limiter_enter(x->lim, &x->lw, &wait_s)) {
		x_launch(x);
		return;
	}
	x->state = X_WAITING;
	if (wait_s > 0)
		arm_token_wait(x, wait_s);
}

/* ---- transfers ------------------------------------------------------------ */

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

static void x_free(struct fetch_xfer *x)
{
	struct fetch_engine *fe = x->fe;

	curlev_easy_put(fe->curl, x->easy);
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

/* Copy the last response's headers into x->rhead ("name\0value\0"...).
 * curl keeps them (the header API, 7.83+, official since 7.84; Debian's
 * 7.88 has it built in, checked): origin CURLH_HEADER leaves out 1xx and
 * trailers, request -1 is the last response after redirects. A header
 * sent twice comes twice, in order. Copied because curl's strings live
 * only until the handle's next transfer. Returns 0 or -1 (out of memory:
 * the headers are dropped, the transfer's outcome stands). */
static int x_collect_headers(struct fetch_xfer *x)
{
	struct curl_header *h, *prev = NULL;

	x->rhead.len = 0;
	x->nhead = 0;
	while ((h = curl_easy_nextheader(x->easy, CURLH_HEADER, -1, prev))) {
		if (jbuf_append(&x->rhead, h->name, strlen(h->name) + 1) < 0 ||
		    jbuf_append(&x->rhead, h->value, strlen(h->value) + 1) < 0) {
			x->rhead.len = 0;
			x->nhead = 0;
			return -1;
		}
		x->nhead++;
		prev = h;
	}
	return 0;
}

/* Map curl's outcome of the last attempt onto x->resp. */
static void x_collect(struct fetch_xfer *x)
{
	hookd_response *r = &x->resp;
	curl_off_t t, ra = 0;
	long status = 0;

	x_collect_headers(x);
	/* seconds, from either form (delay-seconds or an HTTP-date, relative
	 * to now); 0 when absent or in the past. Capped at the longest call
	 * deadline: a longer wait can never be retried in time anyway. */
	if (curl_easy_getinfo(x->easy, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra < 0)
		ra = 0;
	x->retry_after_s = ra > 3600 ? 3600 : (unsigned)ra;

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
		uint64_t ra = (uint64_t)x->retry_after_s * 1000;
		if (ra > delay_ms)
			delay_ms = ra;
	}
	if (x->opt.deadline_ns && clock_mono_ns() + (int64_t)delay_ms * 1000000 >= x->opt.deadline_ns)
		return false; /* the retry could not finish in time */
	tv.tv_sec = (time_t)(delay_ms / 1000);
	tv.tv_usec = (suseconds_t)(delay_ms % 1000) * 1000;
	x->state = X_BACKOFF;
	evtimer_assign(&x->ev, x->fe->base, on_x_timer, x);
	evtimer_add(&x->ev, &tv);
	return true;
}

/* curlev_done_fn: one attempt ended (x is already out of the multi). */
static void on_attempt_done(CURL *easy, CURLcode code, void *priv)
{
	struct fetch_xfer *x = priv;

	(void)easy;
	atomic_fetch_sub_explicit(&x->fe->running, 1, memory_order_relaxed);
	x->code = code;
	x_collect(x);
	x_leave(x); /* may start waiting transfers */
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

/* Put x into the multi handle for one attempt (x holds its slot, if any). */
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
	if (x->opt.deadline_ns && x->opt.deadline_ns <= clock_mono_ns()) {
		x_leave(x);
		x_fail_now(x, HOOKD_ETIMEDOUT, "the call's deadline passed before the request "
			   "could start");
		return;
	}
	if (!x->easy && !(x->easy = curlev_easy_get(fe->curl))) {
		x_leave(x);
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
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers ? x->headers : fe->no_expect);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "hookd");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->opt.max_response);
	x_set_method(x);
	x->attempts++;
	x->resp.attempts = x->attempts;
	if (curlev_add(fe->curl, e) < 0) {
		x_leave(x);
		x_fail_now(x, HOOKD_EFETCH, "cannot start the transfer");
		return;
	}
	x->state = X_RUNNING;
	atomic_fetch_add_explicit(&fe->running, 1, memory_order_relaxed);
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

struct fetch_xfer *fetch_start(struct fetch_engine *fe, struct limiter *lim,
			       const hookd_request *req, const struct fetch_opts *opt,
			       fetch_done_fn done, void *arg, int *err)
{
	struct fetch_xfer *x;
	const char *m;

	*err = HOOKD_EINVAL;
	if (!req || !req->url || (strncasecmp(req->url, "http://", 7) != 0 &&
				  strncasecmp(req->url, "https://", 8) != 0))
		return NULL;
	if (!(x = calloc(1, sizeof(*x)))) {
		*err = HOOKD_ENOMEM;
		return NULL;
	}
	atomic_fetch_add_explicit(&fe->alive, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&fe->started, 1, memory_order_relaxed);
	x->resp.size = sizeof(x->resp);
	x->fe = fe;
	x->lim = lim;
	x->lw.owner = &fe->lo;
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
	for (char *c = x->method; *c; c++)
		if (*c < 'A' || *c > 'Z')
			goto fail; /* a method is an upper-case token */
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
		    strpbrk(h->value, "\r\n"))
			goto fail; /* header injection */
		if (snprintf(line, sizeof(line), "%s: %s", h->name, h->value) >= (int)sizeof(line))
			goto fail;
		if (!(n = curl_slist_append(x->headers, line)))
			goto oom;
		x->headers = n;
	}
	*err = HOOKD_OK;
	x_admit(x);
	return x;
oom:
	*err = HOOKD_ENOMEM;
fail:
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
	struct limiter_list ready = STAILQ_HEAD_INITIALIZER(ready);

	if (!x)
		return;
	switch (x->state) {
	case X_RUNNING:
		/* curl closes the connection of a transfer removed mid-way */
		curlev_remove(x->fe->curl, x->easy);
		atomic_fetch_sub_explicit(&x->fe->running, 1, memory_order_relaxed);
		x_leave(x);
		break;
	case X_WAITING:
		if (x->wait_armed) {
			event_del(&x->ev);
			x->wait_armed = false;
		}
		limiter_cancel(x->lim, &x->lw, &ready);
		launch_ready(&ready);
		break;
	case X_BACKOFF:
	case X_DEFERRED:
		event_del(&x->ev);
		break;
	default:
		break;
	}
	x_free(x);
}

/* ---- the engine ------------------------------------------------------------ */

int fetch_engine_create(struct event_base *base, const struct log *log, struct fetch_engine **out)
{
	struct fetch_engine *fe;
	int rc = -ENOMEM;

	*out = NULL;
	if (!(fe = calloc(1, sizeof(*fe))))
		return -ENOMEM;
	fe->base = base;
	fe->log = log;
	fe->rng = (uint64_t)clock_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)fe;
	if (!fe->rng)
		fe->rng = 88172645463325252ull;
	fe->lo.grant = on_grant;
	fe->lo.ungrant = on_ungrant;
	STAILQ_INIT(&fe->granted);
	pthread_mutex_init(&fe->gmu, NULL);
	fe->wake.fd = -1;
	if (!(fe->no_expect = curl_slist_append(NULL, "Expect:")))
		goto fail;
	if ((rc = curlev_create(base, on_attempt_done, &fe->curl)) < 0)
		goto fail;
	if ((rc = wake_init(&fe->wake, base, on_engine_wake, fe)) < 0)
		goto fail;
	*out = fe;
	return 0;
fail:
	curlev_free(fe->curl);
	curl_slist_free_all(fe->no_expect);
	pthread_mutex_destroy(&fe->gmu);
	free(fe);
	return rc;
}

void fetch_engine_free(struct fetch_engine *fe)
{
	if (!fe)
		return;
	if (atomic_load(&fe->alive))
		log_warn(fe->log, "fetch: %u transfer(s) still alive at shutdown",
			 atomic_load(&fe->alive));
	curlev_free(fe->curl);
	wake_fini(&fe->wake);
	pthread_mutex_destroy(&fe->gmu);
	curl_slist_free_all(fe->no_expect);
	free(fe);
}

void fetch_engine_stats(const struct fetch_engine *fe, struct fetch_stats *st)
{
	/* relaxed: counters for GET /health, read from any loop */
	st->alive = atomic_load_explicit(&fe->alive, memory_order_relaxed);
	st->running = atomic_load_explicit(&fe->running, memory_order_relaxed);
	st->waiting = atomic_load_explicit(&fe->lo.waiting, memory_order_relaxed);
	st->started = atomic_load_explicit(&fe->started, memory_order_relaxed);
	st->finished = atomic_load_explicit(&fe->finished, memory_order_relaxed);
}
