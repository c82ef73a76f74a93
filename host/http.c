/*
 * http -- see http.h.
 *
 * Every reply carries a JSON body and an explicit Content-Length, except the
 * few errors that evhttp 2.1 answers itself before any callback runs
 * (malformed request line or headers, headers over the limit, a body over
 * max_body): those carry libevent's HTML page; there is no hook for them in
 * libevent 2.1.
 */
#include "http.h"
#include "clock.h"

#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <sys/queue.h>

#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "form.h"
#include "inbound.h"
#include "json.h"
#include "name.h"
#include "reply.h"
#include "ratelog.h"
#include "verify.h"

#define HTTP_MAX_HEADERS (64 * 1024)
#define HTTP_IO_TIMEOUT_S 60
/* evhttp_bind_socket listens with 128: a burst of 200 connections overflowed
 * it and the clients waited ~1 s for a SYN retransmit. The kernel caps this
 * at net.core.somaxconn. */
#define HTTP_BACKLOG 4096
#define HTTP_ACCEPT_PAUSE_MS 100 /* after EMFILE */
#define HTTP_TRIM_AFTER (1u << 20) /* give memory back after freeing this much at once */
#define HTTP_WATCH_AFTER_MS 100  /* calls in flight longer than this watch their client */
#define HTTP_5XX_RATE 10         /* 5xx log lines per second and loop ... */
#define HTTP_5XX_BURST 20        /* ... with bursts of this many */
#define HTTP_5XX_SUMMARY_MS 1000 /* then "suppressed N similar lines" this often */
#define HTTP_INBOUND_HEADERS 32  /* request headers copied without an allocation */

/* What the access log and the 5xx log say about one hook request (POST
 * /hooks/...), answered or not. On the stack while the request is routed,
 * copied into its http_call when the answer is deferred. */
struct http_access {
	char rid[ALOG_RID_MAX + 1]; /* the request id (X-Request-Id) */
	int64_t start_ns;           /* CLOCK_MONOTONIC, when routed */
	size_t bytes_in;            /* request body */
	int status;                 /* the reply's, 0 until it was sent */
	size_t bytes_out;           /* reply body */
	const char *outcome;        /* set by a reply that names one, or NULL */
	char reason[256];           /* an error reply's message */
};

struct http_server {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct dispatch_env *env;
	struct registry *reg;
	const struct log *log;
	void (*health)(void *arg, cJSON *out);
	void *health_arg;
	struct metrics *metrics;
	struct metrics_shard *shard;
	void (*metrics_cb)(void *arg, struct metrics_text *out);
	void *metrics_arg;
	bool (*ready)(void *arg, cJSON *reasons);
	void *ready_arg;
	enum http_routes routes;
	char *unix_path;      /* the Unix socket to remove at the end, or NULL */
	size_t max_body;
	uint16_t port;
	bool stopping;
	atomic_uint unsent;   /* replies handed to evhttp, not yet written out */
	struct event *resume; /* re-enables accepting after EMFILE */
	/* calls in flight whose client is not watched yet, oldest first, and
	 * the sweep that starts watching those older than HTTP_WATCH_AFTER_MS */
	TAILQ_HEAD(, http_call) unwatched;
	struct event *sweep;
	const struct alog *alog;     /* access log (may be off), or NULL */
	struct alog_batch *alines;   /* this loop's access lines not written yet */
	struct event *alog_flush;    /* writes them once the loop's pass is done */
	char rid_prefix[17];         /* this loop's random request-id prefix */
	uint64_t rid_next;           /* this loop's request-id counter */
	struct ratelog errlog;       /* 5xx lines of this loop */
	struct event *errlog_flush;  /* writes what errlog held back */
	struct http_access *acc;     /* the hook request being answered, or NULL */
	struct dedup *dedup;         /* shared by every loop, or NULL */
	struct dedup_reply *capture; /* set while a reply to remember is sent */
	int64_t dedup_swept_ns;      /* this loop's last dedup_expire */
};

/* A call whose delivery key is remembered (hooks.<name>.dedup): what its
 * end tells the table. */
struct http_dedup {
	char hook[NAME_MAX_LEN + 1];
	unsigned char key[DEDUP_KEY_MAX];
	size_t keylen;
	struct dedup_limits lim;
};

/* One hook call waiting for its answer. */
struct http_call {
	struct http_server *srv;
	struct evhttp_request *req;
	struct dispatch_call *call; /* NULL once answered */
	struct event *closed;       /* peer-close watch while the reply is deferred */
	struct timeval started;     /* the loop's cached time when it was accepted */
	int64_t t0_ns;              /* CLOCK_MONOTONIC on arrival: the call's duration */
	bool starting, answered;    /* done may run inside dispatch_call_start */
	bool unwatched;             /* on srv's list of calls not watched yet */
	struct http_dedup *dk;      /* remembered delivery, or NULL */
	TAILQ_ENTRY(http_call) link;
	struct http_access acc;
};

static void free_buffer(const void *data, size_t len, void *arg)
{
	(void)arg;
	free((void *)data);
	/* glibc keeps what a large reply freed (RSS stays up): hand it back */
	if (len >= HTTP_TRIM_AFTER)
		malloc_trim(0);
}

/* The reply was written out (evhttp does not call this when the connection
 * fails first: on_reply_lost counts those). */
static void on_reply_sent(struct evhttp_request *req, void *arg)
{
	struct http_server *srv = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	if (evcon)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	atomic_fetch_sub_explicit(&srv->unsent, 1, memory_order_relaxed);
}

/* The connection went away with its reply not written out. A connection
 * carries one reply at a time, so its close callback is armed only while a
 * reply is pending. */
static void on_reply_lost(struct evhttp_connection *evcon, void *arg)
{
	struct http_server *srv = arg;

	evhttp_connection_set_closecb(evcon, NULL, NULL);
	atomic_fetch_sub_explicit(&srv->unsent, 1, memory_order_relaxed);
}

/* Send the text in `b` (taken) of type `ctype` with `status` (204: no
 * body, no Content-Type, no Content-Length). */
static void send_body(struct http_server *srv, struct evhttp_request *req, int status,
		      const char *ctype, struct jbuf *b, unsigned retry_after)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	char num[32];

	if (status == 204)
		b->len = 0;
	if (srv->acc) {
		srv->acc->status = status;
		srv->acc->bytes_out = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD ? 0 : b->len;
	}
	if (srv->capture && status >= 200 && status <= 299) {
		/* remembered for repeats of the delivery (dedup) */
		struct dedup_reply *c = srv->capture;
		c->status = status;
		c->content_type = strdup(ctype);
		c->body = b->len ? malloc(b->len) : NULL;
		c->body_len = c->body ? b->len : 0;
		if (c->body)
			memcpy(c->body, b->data, b->len);
	}
	if (status != 204) {
		evhttp_add_header(h, "Content-Type", ctype);
		snprintf(num, sizeof(num), "%zu", b->len);
		evhttp_add_header(h, "Content-Length", num);
	}
	if (retry_after) {
		snprintf(num, sizeof(num), "%u", retry_after);
		evhttp_add_header(h, "Retry-After", num);
	}
	if (srv->stopping)
		evhttp_add_header(h, "Connection", "close");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD || !b->len) {
		/* HEAD: headers only, or a keep-alive client desynchronises */
		jbuf_free(b);
	} else if (evbuffer_add_reference(out, b->data, b->len, free_buffer, NULL) < 0) {
		jbuf_free(b);
	}
	atomic_fetch_add_explicit(&srv->unsent, 1, memory_order_relaxed);
	evhttp_request_set_on_complete_cb(req, on_reply_sent, srv);
	if (evhttp_request_get_connection(req))
		evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_reply_lost,
					      srv);
	evhttp_send_reply(req, status, NULL, NULL);
}

/* Send the JSON text in `b` (taken) with `status`. */
static void send_json(struct http_server *srv, struct evhttp_request *req, int status,
		      struct jbuf *b, unsigned retry_after)
{
	send_body(srv, req, status, "application/json", b, retry_after);
}

/* The metrics slot of hook `name` (METRICS_UNKNOWN: not configured): for
 * the few answers given before the call reaches dispatch (405, 413, 400).
 * `g`: the generation the caller holds already, or NULL (then the current
 * one is looked up). */
static unsigned hook_slot(struct http_server *srv, struct generation *g, const char *name)
{
	struct generation *own = NULL;
	const struct hook_entry *h;

	if (!srv->shard)
		return METRICS_UNKNOWN;
	if (!g)
		g = own = registry_acquire(srv->reg);
	h = g ? generation_find_hook(g, name) : NULL;
	generation_release(own);
	return h ? h->metric_slot : METRICS_UNKNOWN;
}

/* Send `body`, a tree the host built, with `status`. */
static void reply(struct http_server *srv, struct evhttp_request *req, int status,
		  const cJSON *body, unsigned retry_after)
{
	struct jbuf b = {0};

	if (json_print(body, &b) < 0 || jbuf_append(&b, "\n", 1) < 0) {
		static const char oom[] = "{\"error\":\"out of memory\",\"status\":500}\n";
		log_error(srv->log, "cannot print a reply (status %d): out of memory", status);
		jbuf_free(&b);
		status = 500;
		jbuf_append(&b, oom, sizeof(oom) - 1);
	}
	send_json(srv, req, status, &b, retry_after);
}

static void __attribute__((format(printf, 5, 6)))
reply_error(struct http_server *srv, struct evhttp_request *req, int status, const char *hook,
	    const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	cJSON *o = cJSON_CreateObject();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (o) {
		cJSON_AddStringToObject(o, "error", msg);
		if (hook)
			cJSON_AddStringToObject(o, "hook", hook);
		if (srv->acc)
			cJSON_AddStringToObject(o, "request_id", srv->acc->rid);
		cJSON_AddNumberToObject(o, "status", status);
	}
	if (srv->acc)
		snprintf(srv->acc->reason, sizeof(srv->acc->reason), "%.255s", msg);
	reply(srv, req, status, o, status == 503 ? 1 : 0);
	cJSON_Delete(o);
}

static void unwatched_remove(struct http_server *srv, struct http_call *hc);

/* What a call's outcome means in HTTP: the status, and the seconds to
 * suggest in Retry-After (0: none). */
/* ---- access log, request ids, 5xx log ------------------------------- */

static const char *method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "?";
}

/* The outcome of a hook request refused before any call started. */
static const char *refusal_outcome(int status)
{
	switch (status) {
	case 400: return "bad_request";
	case 404: return "no_hook";
	case 405: return "bad_method";
	case 413: return "too_large";
	case 503: return "shutdown";
	default: return status >= 500 ? "nomem" : "refused";
	}
}

/* A hook request arrives: its request id (the client's X-Request-Id when
 * valid, else a new one), echoed on the reply whatever it is. */
static void access_begin(struct http_server *srv, struct evhttp_request *req,
			 struct http_access *acc)
{
	const char *in = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Request-Id");

	acc->start_ns = clock_mono_ns();
	acc->bytes_in = evbuffer_get_length(evhttp_request_get_input_buffer(req));
	acc->status = 0;
	acc->bytes_out = 0;
	acc->outcome = NULL;
	acc->reason[0] = 0;
	if (alog_rid_valid(in))
		memcpy(acc->rid, in, strlen(in) + 1);
	else
		alog_rid_make(acc->rid, sizeof(acc->rid), srv->rid_prefix, ++srv->rid_next);
	evhttp_add_header(evhttp_request_get_output_headers(req), "X-Request-Id", acc->rid);
}

static void on_alog_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	alog_batch_flush(((struct http_server *)arg)->alines);
}

static void on_errlog_flush(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *srv = arg;
	unsigned n = ratelog_flush(&srv->errlog);

	(void)fd;
	(void)what;
	if (n)
		log_warn(srv->log, "5xx log: suppressed %u similar lines (over %d a second on "
			 "this loop)", n, HTTP_5XX_RATE);
}

/* Every 5xx is logged, at most HTTP_5XX_RATE lines a second per loop: the
 * rest are counted and summed up in one line when the storm passes. */
static void log_5xx(struct http_server *srv, const struct alog_entry *e, const char *reason,
		    int64_t now_ns)
{
	if (!ratelog_take(&srv->errlog, now_ns)) {
		if (!evtimer_pending(srv->errlog_flush, NULL)) {
			struct timeval tv = {HTTP_5XX_SUMMARY_MS / 1000,
					     (HTTP_5XX_SUMMARY_MS % 1000) * 1000};
			evtimer_add(srv->errlog_flush, &tv);
		}
		return;
	}
	log_warn(srv->log, "call answered %d: hook %s, plugin %s, outcome %s, generation %llu, "
		 "request_id %s: %s", e->status, e->hook ? e->hook : "-",
		 e->plugin ? e->plugin : "-", e->outcome, (unsigned long long)e->generation, e->rid,
		 reason && *reason ? reason : "-");
}

/* The hook request was answered (or its client left): its access line,
 * and its 5xx line. `r`: the call's result, NULL when no call answered. */
static void access_end(struct http_server *srv, struct evhttp_request *req,
		       struct http_access *acc, const struct dispatch_result *r)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const char *uri = evhttp_request_get_uri(req);
	char path[256], *client = NULL;
	ev_uint16_t port = 0;
	size_t plen = uri ? strcspn(uri, "?#") : 0;
	int64_t now = clock_mono_ns();
	struct alog_entry e = {
		.rid = acc->rid,
		.method = method_name(evhttp_request_get_command(req)),
		.path = path,
		.status = acc->status,
		.duration_ns = now - acc->start_ns,
		.bytes_in = acc->bytes_in,
		.bytes_out = acc->bytes_out,
	};

	if (!alog_enabled(srv->alog) && acc->status < 500)
		return;
	if (plen >= sizeof(path))
		plen = sizeof(path) - 1;
	memcpy(path, uri ? uri : "", plen);
	path[plen] = 0;
	if (evcon)
		evhttp_connection_get_peer(evcon, &client, &port);
	e.client = client;
	clock_gettime(CLOCK_REALTIME, &e.time);
	if (r) {
		e.hook = r->hook;
		e.generation = r->generation;
		e.outcome = acc->outcome ? acc->outcome : dispatch_outcome_name(r->outcome);
		if (r->outcome != DISPATCH_OK || acc->outcome)
			e.plugin = r->plugin;
		e.steps = r->steps;
		e.nsteps = r->nsteps;
		e.steps_more = r->steps_more;
	} else {
		e.hook = strncmp(path, "/hooks/", 7) == 0 && name_valid(path + 7) ? path + 7 : NULL;
		e.outcome = acc->outcome ? acc->outcome : refusal_outcome(acc->status);
	}
	if (alog_batch_add(srv->alines, &e))
		event_active(srv->alog_flush, EV_TIMEOUT, 0); /* after this pass's calls */
	if (acc->status >= 500)
		log_5xx(srv, &e, acc->reason[0] ? acc->reason : r ? r->error : NULL, now);
}

/* Answer a call that did not end well: {"error": msg, "hook", "plugin",
 * "step", "generation" (those the result knows), "outcome", "status"}. */
static void reply_failure(struct http_server *srv, struct evhttp_request *req,
			  const struct dispatch_result *r, const char *msg, const char *outcome,
			  int status, unsigned retry_after)
{
	cJSON *o = cJSON_CreateObject();

	if (o) {
		cJSON_AddStringToObject(o, "error", msg);
		if (r->hook)
			cJSON_AddStringToObject(o, "hook", r->hook);
		if (r->plugin)
			cJSON_AddStringToObject(o, "plugin", r->plugin);
		if (r->step >= 0)
			cJSON_AddNumberToObject(o, "step", r->step);
		if (r->generation)
			cJSON_AddNumberToObject(o, "generation", (double)r->generation);
		cJSON_AddStringToObject(o, "outcome", outcome);
		if (srv->acc)
			cJSON_AddStringToObject(o, "request_id", srv->acc->rid);
		cJSON_AddNumberToObject(o, "status", status);
	}
	if (srv->acc) {
		srv->acc->outcome = outcome;
		snprintf(srv->acc->reason, sizeof(srv->acc->reason), "%.255s", msg);
	}
	reply(srv, req, status, o, retry_after);
	cJSON_Delete(o);
}

/* Print a plugin's output (r->output, taken) and send it with 200. An
 * output larger than the generation's max_output, or one that is not valid
 * JSON, is the plugin's fault: 502 naming it. Printing stops at the
 * limit, so a huge output costs no more than max_output bytes of work. */
static int send_output(struct http_server *srv, struct evhttp_request *req,
		       struct dispatch_result *r)
{
	struct jbuf b = {.limit = r->max_output + 1}; /* + the newline */
	const char *plugin = r->plugin ? r->plugin : "?";
	const struct reply *rp = r->reply;
	int status = rp && rp->status ? rp->status : 200;
	int prc;
	char msg[400];

	if (rp && rp->body) {
		/* a raw body a step set: sent as it is, under the same limit */
		prc = rp->body_len > r->max_output ? -E2BIG : jbuf_append(&b, rp->body, rp->body_len);
	} else if (status == 204) {
		prc = 0;
	} else if ((prc = json_print(r->output, &b)) == 0) {
		prc = jbuf_append(&b, "\n", 1);
	}
	if (prc == 0) {
		struct evkeyvalq *h = evhttp_request_get_output_headers(req);
		struct jbuf hb = {0};
		for (unsigned i = 0; rp && i < rp->nheaders; i++) {
			if (!rp->headers[i].value)
				continue;
			evhttp_add_header(h, rp->headers[i].name, rp->headers[i].value);
			if (srv->capture &&
			    (jbuf_append(&hb, rp->headers[i].name, strlen(rp->headers[i].name) + 1) < 0 ||
			     jbuf_append(&hb, rp->headers[i].value, strlen(rp->headers[i].value) + 1) < 0))
				srv->capture->status = -1; /* not remembered: out of memory */
		}
		if (srv->capture) {
			srv->capture->headers = hb.data;
			srv->capture->headers_len = hb.len;
		} else {
			jbuf_free(&hb);
		}
		cJSON_Delete(r->output);
		r->output = NULL;
		send_body(srv, req, status, rp && rp->body ? rp->content_type : "application/json",
			  &b, 0);
		return status;
	}
	jbuf_free(&b);
	cJSON_Delete(r->output);
	r->output = NULL;
	if (prc == -E2BIG) {
		malloc_trim(0); /* the tree was at least max_output bytes of JSON */
		snprintf(msg, sizeof(msg), "the output of plugin %s is larger than max_output "
			 "(%zu bytes)", plugin, r->max_output);
	} else if (prc == -EINVAL) {
		snprintf(msg, sizeof(msg), "plugin %s returned an output that is not valid JSON "
			 "(an item of no JSON type, an object member without a name, a NaN or "
			 "infinite number, or a raw item that is not one JSON value)", plugin);
	} else {
		snprintf(msg, sizeof(msg), "out of memory printing the output of plugin %s",
			 plugin);
	}
	log_error(srv->log, "hook %s, generation %llu: %s (request_id %s)", r->hook ? r->hook : "?",
		  (unsigned long long)r->generation, msg, srv->acc ? srv->acc->rid : "-");
	reply_failure(srv, req, r, msg,
		      prc == -E2BIG ? "output_too_large" : prc == -EINVAL ? "bad_output" : "nomem",
		      prc == -ENOMEM ? 500 : 502, 0);
	return prc == -ENOMEM ? 500 : 502;
}

/* The remembered delivery *dkp (NULL: none) is over, and *dkp is freed and
 * cleared: `ok` stores `reply` for its repeats, marked with `rid`, the
 * request that ran; otherwise it is forgotten (a retry runs the chain). */
static void dedup_end(struct http_server *srv, struct http_dedup **dkp, const char *rid,
		      bool ok, struct dedup_reply *reply)
{
	struct http_dedup *dk = *dkp;

	if (!dk)
		return;
	*dkp = NULL;
	if (ok && reply) {
		/* a repeat names the request that ran (X-Hookd-Replay) */
		struct jbuf hb = {.data = reply->headers, .len = reply->headers_len,
				  .cap = reply->headers_len};
		static const char name[] = "X-Hookd-Replay";
		if (jbuf_append(&hb, name, sizeof(name)) < 0 ||
		    jbuf_append(&hb, rid, strlen(rid) + 1) < 0)
			ok = false;
		reply->headers = hb.data;
		reply->headers_len = hb.len;
	}
	dedup_finish(srv->dedup, dk->hook, dk->key, dk->keylen, &dk->lim, ok, reply,
		     clock_mono_ns());
	free(dk);
}

static void on_call_done(void *arg, struct dispatch_result *r)
{
	struct http_call *hc = arg;
	struct http_server *srv = hc->srv;
	struct http_access *prev = srv->acc; /* set when answered inside on_request */
	unsigned retry_after;
	int status = dispatch_result_status(r, &retry_after);
	struct dedup_reply keep = {0}; /* the reply, when the delivery is remembered */

	srv->acc = &hc->acc;
	if (hc->dk)
		srv->capture = &keep;
	if (r->outcome == DISPATCH_OK) {
		status = send_output(srv, hc->req, r); /* a bad output is answered there */
		if (r->recovered)
			hc->acc.outcome = "recovered";
	} else {
		reply_failure(srv, hc->req, r, r->error ? r->error : "call failed",
			      dispatch_outcome_name(r->outcome), status, retry_after);
	}
	r->sent_status = status;
	srv->capture = NULL;
	dedup_end(srv, &hc->dk, hc->acc.rid, status >= 200 && status <= 299 && keep.status > 0,
		  &keep);
	dedup_reply_clear(&keep);
	if (srv->shard)
		metrics_call(srv->shard, r->hook_slot, status, clock_mono_ns() - hc->t0_ns);
	srv->acc = prev;
	access_end(srv, hc->req, &hc->acc, r);
	if (hc->closed)
		event_free(hc->closed);
	hc->closed = NULL;
	unwatched_remove(srv, hc);
	hc->answered = true;
	if (!hc->starting)
		free(hc);
}

/* The client closed its end while its call was in flight (evhttp does not
 * read a connection whose reply is deferred, so it would never notice):
 * cancel the call, which cancels its plugin's work, and drop the
 * connection. Like nginx, a half-close counts as going away. */
static void on_client_closed(evutil_socket_t fd, short what, void *arg)
{
	struct http_call *hc = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(hc->req);

	(void)fd;
	(void)what;
	event_free(hc->closed);
	hc->closed = NULL;
	log_debug(hc->srv->log, "client went away during a call (request_id %s); cancelling it",
		  hc->acc.rid);
	dispatch_call_abort(hc->call); /* no done callback after this */
	dedup_end(hc->srv, &hc->dk, NULL, false, NULL); /* a retry of the delivery runs */
	hc->acc.status = 499; /* nginx's "client closed request" */
	hc->acc.outcome = "client_gone";
	access_end(hc->srv, hc->req, &hc->acc, NULL);
	free(hc);
	if (evcon)
		evhttp_connection_free(evcon);
}

static void unwatched_remove(struct http_server *srv, struct http_call *hc)
{
	if (!hc->unwatched)
		return;
	TAILQ_REMOVE(&srv->unwatched, hc, link);
	hc->unwatched = false;
}

static void watch_peer_close(struct http_server *srv, struct http_call *hc)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(hc->req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;

	if (fd < 0)
		return;
	hc->closed = event_new(srv->base, fd, EV_CLOSED, on_client_closed, hc);
	if (hc->closed && event_add(hc->closed, NULL) < 0) {
		event_free(hc->closed);
		hc->closed = NULL;
	}
}


/* Count the request headers called `name`. */
static int header_count(struct evkeyvalq *headers, const char *name)
{
	struct evkeyval *kv;
	int n = 0;

	TAILQ_FOREACH(kv, headers, next)
		if (strcasecmp(kv->key, name) == 0)
			n++;
	return n;
}

static const char *header_of(void *arg, const char *name)
{
	return evhttp_find_header(arg, name); /* case-insensitive */
}

/* The hook's "verify": does the request come from the sender it names?
 * Answers 401 (and logs, rate-limited with the 5xx lines) when not. */
static bool sender_verified(struct http_server *srv, struct evhttp_request *req,
			    const char *name, const struct config_hook *h, const char *body,
			    size_t len)
{
	char why[256];

	if (!h || !h->verify ||
	    verify_check(h->verify, header_of, evhttp_request_get_input_headers(req), body, len,
			 time(NULL), why, sizeof(why)) == 0)
		return true;
	reply_error(srv, req, 401, name, "sender verification failed (%s): %s",
		    verify_scheme_name(h->verify->scheme), why);
	if (ratelog_take(&srv->errlog, clock_mono_ns()))
		log_warn(srv->log, "hook %s: sender verification failed (%s): %s; answered 401, "
			 "request_id %s", name, verify_scheme_name(h->verify->scheme), why,
			 srv->acc ? srv->acc->rid : "-");
	return false;
}

/* Is the media type of `ctype` (parameters ignored, case-insensitive)
 * `type`, or, with `suffix`, any type ending in it (application/x+json)? */
static bool media_is(const char *ctype, const char *type, const char *suffix)
{
	size_t n = strcspn(ctype, "; \t");
	size_t tl = strlen(type), sl = suffix ? strlen(suffix) : 0;

	return (n == tl && strncasecmp(ctype, type, n) == 0) ||
	       (sl && n > sl && strncasecmp(ctype + n - sl, suffix, sl) == 0);
}

/* The kind of input a body of type `ctype` makes for a hook that accepts
 * `accept` (CONFIG_ACCEPT_*; 0: JSON whatever the type, as always), or 0:
 * 415. */
static unsigned accept_kind(unsigned accept, const char *ctype)
{
	if (!accept)
		return CONFIG_ACCEPT_JSON;
	if (!ctype)
		ctype = "";
	if ((accept & CONFIG_ACCEPT_JSON) &&
	    (media_is(ctype, "application/json", "+json") ||
	     (!*ctype && !(accept & CONFIG_ACCEPT_RAW))))
		return CONFIG_ACCEPT_JSON;
	if ((accept & CONFIG_ACCEPT_FORM) &&
	    (media_is(ctype, "application/x-www-form-urlencoded", NULL) ||
	     (!*ctype && accept == CONFIG_ACCEPT_FORM)))
		return CONFIG_ACCEPT_FORM;
	if (accept & CONFIG_ACCEPT_RAW)
		return CONFIG_ACCEPT_RAW;
	if (accept == CONFIG_ACCEPT_JSON)
		return CONFIG_ACCEPT_JSON; /* "json" alone: lenient, as without the key */
	return 0;
}

/* The request as the call's steps see it (inbound.h), or NULL: out of
 * memory. */
static struct inbound *inbound_of(struct http_server *srv, struct evhttp_request *req,
				  const char *hook, const char *ctype, const char *body,
				  size_t len)
{
	hookd_header stack[HTTP_INBOUND_HEADERS], *hs = stack;
	struct evkeyvalq *in_h = evhttp_request_get_input_headers(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct evkeyval *kv;
	struct inbound *in;
	size_t n = 0;
	char *addr = NULL;
	ev_uint16_t port = 0;

	TAILQ_FOREACH(kv, in_h, next)
		n++;
	if (n > HTTP_INBOUND_HEADERS && !(hs = malloc(n * sizeof(*hs))))
		return NULL;
	n = 0;
	TAILQ_FOREACH(kv, in_h, next)
		hs[n++] = (hookd_header){kv->key, kv->value};
	if (evcon)
		evhttp_connection_get_peer(evcon, &addr, &port);
	struct inbound_parts parts = {
		.hook = hook, .method = "POST",
		.path = uri ? evhttp_uri_get_path(uri) : NULL,
		.query = uri ? evhttp_uri_get_query(uri) : NULL,
		.client_addr = addr && *addr ? addr : "unix", .client_port = port,
		.request_id = srv->acc ? srv->acc->rid : NULL, .content_type = ctype,
		.body = body, .body_len = len, .headers = hs, .nheaders = n};
	in = inbound_new(&parts);
	if (hs != stack)
		free(hs);
	return in;
}

/* Send a remembered reply again, marked X-Hookd-Replay. */
static void send_replay(struct http_server *srv, struct evhttp_request *req,
			struct dedup_reply *rp)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct jbuf b = {0};

	for (size_t off = 0; rp->headers && off < rp->headers_len;) {
		const char *n = rp->headers + off, *v = n + strlen(n) + 1;
		evhttp_add_header(h, n, v);
		off = (size_t)(v - rp->headers) + strlen(v) + 1;
	}
	if (rp->body_len && jbuf_append(&b, rp->body, rp->body_len) < 0) {
		reply_error(srv, req, 500, NULL, "out of memory");
		return;
	}
	if (srv->acc)
		srv->acc->outcome = "replayed";
	send_body(srv, req, rp->status, rp->content_type ? rp->content_type : "application/json",
		  &b, 0);
}

/* hooks.<name>.dedup: has this delivery been seen? Returns 0 (run it; *dk
 * set when it is remembered) or the status already answered (replayed,
 * 409 in flight, 400 bad key, 503 full). */
static int dedup_gate(struct http_server *srv, struct evhttp_request *req, const char *name,
		      const struct config_hook *h, const cJSON *input, struct http_dedup **dk)
{
	const struct config_dedup *cd = h->dedup;
	struct dedup_limits lim = {cd->ttl_s, cd->max_entries, (size_t)cd->max_bytes};
	struct dedup_reply rp = {0};
	char num[32];
	const char *key = NULL;
	size_t keylen;
	int64_t now = clock_mono_ns();
	int status = 0;

	if (now - srv->dedup_swept_ns > (int64_t)10 * 1000000000) {
		srv->dedup_swept_ns = now; /* expired entries of idle hooks, too */
		dedup_expire(srv->dedup, now);
	}
	if (cd->header) {
		key = evhttp_find_header(evhttp_request_get_input_headers(req), cd->header);
	} else {
		const cJSON *v = json_pointer_get(input, cd->pointer);
		if (cJSON_IsString(v)) {
			key = v->valuestring;
		} else if (cJSON_IsNumber(v)) {
			json_format_number(v->valuedouble, num);
			key = num;
		}
	}
	if (!key || !*key)
		return 0; /* nothing to know it by: it runs */
	keylen = strlen(key);
	if (keylen > DEDUP_KEY_MAX) {
		reply_error(srv, req, 400, name, "the delivery id (%s %s) is longer than %d bytes",
			    cd->header ? "header" : "JSON pointer", cd->header ? cd->header : cd->pointer,
			    DEDUP_KEY_MAX);
		return 400;
	}
	switch (dedup_begin(srv->dedup, name, key, keylen, &lim, now, &rp)) {
	case DEDUP_FIRST:
		if (!(*dk = calloc(1, sizeof(**dk)))) {
			dedup_finish(srv->dedup, name, key, keylen, &lim, false, NULL, now);
			break; /* runs, not remembered */
		}
		snprintf((*dk)->hook, sizeof((*dk)->hook), "%.64s", name);
		memcpy((*dk)->key, key, keylen);
		(*dk)->keylen = keylen;
		(*dk)->lim = lim;
		break;
	case DEDUP_REPLAY:
		send_replay(srv, req, &rp);
		status = rp.status;
		dedup_reply_clear(&rp);
		break;
	case DEDUP_IN_FLIGHT:
		snprintf(num, sizeof(num), "%u", (h->timeout_ms ? h->timeout_ms : 30000) / 1000 + 1);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", num);
		if (srv->acc)
			srv->acc->outcome = "in_flight";
		reply_error(srv, req, 409, name, "delivery %.*s is being processed: retry later",
			    (int)(keylen > 80 ? 80 : keylen), key);
		status = 409;
		break;
	case DEDUP_FULL:
	case DEDUP_NOMEM:
		reply_error(srv, req, 503, name, "no room to remember delivery %.*s (dedup "
			    "max_entries %u, every one in flight): retry later",
			    (int)(keylen > 80 ? 80 : keylen), key, lim.max_entries);
		status = 503;
		break;
	}
	return status;
}

static void handle_hook(struct http_server *srv, struct evhttp_request *req, const char *name)
{
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(body);
	char err[256];
	cJSON *input = NULL;
	struct inbound *in = NULL;
	struct http_call *hc;
	struct generation *g = NULL;
	const struct config_hook *h = NULL;
	const char *ctype = evhttp_find_header(evhttp_request_get_input_headers(req),
					       "Content-Type");
	size_t limit = srv->max_body;
	struct http_dedup *dk = NULL;
	unsigned kind;
	int status = 0;
	/* the request's arrival, read once: on_request took it for the access
	 * record (always set for a hook request) */
	int64_t t0 = srv->acc ? srv->acc->start_ns : srv->shard ? clock_mono_ns() : 0;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
		reply_error(srv, req, 405, name, "method not allowed: use POST /hooks/%s", name);
		metrics_call(srv->shard, hook_slot(srv, NULL, name), 405, clock_mono_ns() - t0);
		return;
	}
	/* hooks with settings of their own (verify, accept, max_body, dedup):
	 * only then is the hook looked up here, once */
	if (atomic_load_explicit(&srv->reg->gated, memory_order_acquire)) {
		g = registry_acquire(srv->reg);
		h = g ? config_find_hook(g->cfg, name) : NULL;
		if (g)
			limit = h && h->max_body ? (size_t)h->max_body : g->cfg->max_body;
	}
	if (len > limit) {
		reply_error(srv, req, 413, name, "body of %zu bytes is over the limit of %zu bytes%s",
			    len, limit, h && h->max_body ? " (the hook's max_body)" : "");
		status = 413;
		goto refused;
	}
	/* evbuffer_pullup makes the body one contiguous block (a no-op when
	 * it already is); a zero-length body is handled by json_parse. */
	const char *text = len ? (const char *)evbuffer_pullup(body, -1) : "";
	if (!text) {
		reply_error(srv, req, 500, name, "out of memory");
		status = 500;
		goto refused;
	}
	if (!sender_verified(srv, req, name, h, text, len)) {
		status = 401;
		goto refused;
	}
	kind = accept_kind(h ? h->accept : 0, ctype);
	if (kind == CONFIG_ACCEPT_JSON) {
		if (json_parse(text, len, &input, err, sizeof(err)) < 0) {
			reply_error(srv, req, 400, name, "%s", err);
			status = 400;
			goto refused;
		}
	} else if (kind == CONFIG_ACCEPT_FORM) {
		if (form_parse(text, len, &input, err, sizeof(err)) < 0) {
			reply_error(srv, req, 400, name, "%s", err);
			status = 400;
			goto refused;
		}
	} else if (kind == CONFIG_ACCEPT_RAW) {
		input = cJSON_CreateNull();
	} else {
		reply_error(srv, req, 415, name, "content type \"%s\" is not accepted by hook %s "
			    "(accept:%s%s%s)", ctype ? ctype : "", name,
			    h->accept & CONFIG_ACCEPT_JSON ? " json" : "",
			    h->accept & CONFIG_ACCEPT_FORM ? " form" : "",
			    h->accept & CONFIG_ACCEPT_RAW ? " raw" : "");
		status = 415;
		goto refused;
	}
	if (h && h->dedup && srv->dedup) {
		int gate = dedup_gate(srv, req, name, h, input, &dk);
		if (gate) {
			cJSON_Delete(input);
			status = gate;
			goto refused;
		}
	}
	in = inbound_of(srv, req, name, ctype, text, len);
	if (!in || (kind == CONFIG_ACCEPT_RAW && !input)) {
		dedup_end(srv, &dk, NULL, false, NULL);
		cJSON_Delete(input);
		inbound_unref(in);
		reply_error(srv, req, 500, name, "out of memory");
		status = 500;
		goto refused;
	}
	generation_release(g);
	g = NULL;
	hc = calloc(1, sizeof(*hc));
	if (!hc) {
		dedup_end(srv, &dk, NULL, false, NULL);
		cJSON_Delete(input);
		inbound_unref(in);
		reply_error(srv, req, 500, name, "out of memory");
		return;
	}
	struct timeval now;
	event_base_gettimeofday_cached(srv->base, &now);
	hc->srv = srv;
	hc->req = req;
	hc->t0_ns = t0;
	hc->dk = dk;
	if (srv->acc) { /* what the access line needs later; the rest is still zero */
		memcpy(hc->acc.rid, srv->acc->rid, strlen(srv->acc->rid) + 1);
		hc->acc.start_ns = srv->acc->start_ns;
		hc->acc.bytes_in = srv->acc->bytes_in;
	}
	hc->starting = true;
	dispatch_call_start(srv->env, name, input, in, on_call_done, hc, &hc->call);
	hc->starting = false;
	if (hc->answered) {
		free(hc); /* answered inline (async chain, or an immediate error) */
		return;
	}
	/* Watching the client costs two epoll_ctl calls; most calls end long
	 * before a client could matter, so only those still in flight after
	 * HTTP_WATCH_AFTER_MS are watched (the sweep below). */
	hc->started = now;
	hc->unwatched = true;
	TAILQ_INSERT_TAIL(&srv->unwatched, hc, link);
	if (!evtimer_pending(srv->sweep, NULL)) {
		struct timeval tv = {0, HTTP_WATCH_AFTER_MS * 1000};
		evtimer_add(srv->sweep, &tv);
	}
	return;
refused:
	metrics_call(srv->shard, hook_slot(srv, g, name), status, clock_mono_ns() - t0);
	generation_release(g);
}

/* Start watching the clients of calls in flight for longer than
 * HTTP_WATCH_AFTER_MS; come back while any call is left unwatched. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *srv = arg;
	struct timeval now, age;
	struct http_call *hc;

	(void)fd;
	(void)what;
	event_base_gettimeofday_cached(srv->base, &now);
	while ((hc = TAILQ_FIRST(&srv->unwatched))) {
		evutil_timersub(&now, &hc->started, &age);
		if (age.tv_sec == 0 && age.tv_usec < HTTP_WATCH_AFTER_MS * 1000)
			break;
		unwatched_remove(srv, hc);
		watch_peer_close(srv, hc);
	}
	if (!TAILQ_EMPTY(&srv->unwatched)) {
		struct timeval tv = {0, HTTP_WATCH_AFTER_MS * 1000};
		evtimer_add(srv->sweep, &tv);
	}
}

static void handle_plugins(struct http_server *srv, struct evhttp_request *req)
{
	struct generation *g = registry_acquire(srv->reg);
	cJSON *o;

	if (!g) {
		reply_error(srv, req, 503, NULL, "no plugins loaded yet");
		return;
	}
	o = generation_describe(g);
	generation_release(g);
	if (!o) {
		reply_error(srv, req, 500, NULL, "out of memory");
		return;
	}
	reply(srv, req, 200, o, 0);
	cJSON_Delete(o);
}

static void handle_health(struct http_server *srv, struct evhttp_request *req)
{
	struct generation *g = registry_acquire(srv->reg);
	cJSON *o = cJSON_CreateObject();

	if (o) {
		cJSON_AddStringToObject(o, "status", srv->stopping ? "stopping" : "ok");
		cJSON_AddNumberToObject(o, "generation", g ? (double)generation_id(g) : 0);
		cJSON_AddNumberToObject(o, "plugins", g ? (double)generation_plugin_count(g) : 0);
		if (srv->health)
			srv->health(srv->health_arg, o);
	}
	generation_release(g);
	reply(srv, req, 200, o, 0);
	cJSON_Delete(o);
}

/* GET /metrics: the Prometheus text exposition. One function, so that the
 * route moves with the admin routes. */
static void handle_metrics(struct http_server *srv, struct evhttp_request *req)
{
	struct metrics_text t = {0};
	struct jbuf b;

	if (!srv->metrics && !srv->metrics_cb) {
		reply_error(srv, req, 404, NULL, "metrics are off (\"metrics\": false in the config)");
		return;
	}
	if (srv->metrics)
		metrics_render(srv->metrics, &t);
	if (srv->metrics_cb)
		srv->metrics_cb(srv->metrics_arg, &t);
	if (t.oom) {
		metrics_text_free(&t);
		reply_error(srv, req, 500, NULL, "out of memory");
		return;
	}
	b = (struct jbuf){.data = t.data, .len = t.len, .cap = t.cap};
	send_body(srv, req, 200, "text/plain; version=0.0.4; charset=utf-8", &b, 0);
}

/* 200 {"ready": true} or 503 {"ready": false, "reasons": [...]}. */
static void handle_ready(struct http_server *srv, struct evhttp_request *req)
{
	cJSON *o = cJSON_CreateObject(), *reasons = cJSON_CreateArray();
	bool ok = true;

	if (srv->stopping) {
		cJSON_AddItemToArray(reasons, cJSON_CreateString("shutting down: not accepting "
								 "connections"));
		ok = false;
	}
	if (srv->ready && !srv->ready(srv->ready_arg, reasons))
		ok = false;
	if (o) {
		cJSON_AddBoolToObject(o, "ready", ok);
		if (reasons && cJSON_GetArraySize(reasons))
			cJSON_AddItemToObject(o, "reasons", reasons);
		else
			cJSON_Delete(reasons);
		reasons = NULL;
		cJSON_AddNumberToObject(o, "status", ok ? 200 : 503);
	}
	cJSON_Delete(reasons);
	reply(srv, req, ok ? 200 : 503, o, 0);
	cJSON_Delete(o);
}

/* GET/HEAD /plugins, /health, /ready, /metrics. Returns false when `path` is none
 * of them. */
static bool handle_admin(struct http_server *srv, struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	void (*fn)(struct http_server *, struct evhttp_request *);

	if (strcmp(path, "/plugins") == 0)
		fn = handle_plugins;
	else if (strcmp(path, "/health") == 0)
		fn = handle_health;
	else if (strcmp(path, "/ready") == 0)
		fn = handle_ready;
	else if (strcmp(path, "/metrics") == 0)
		fn = handle_metrics;
	else
		return false;
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		reply_error(srv, req, 405, NULL, "method not allowed: use GET %s", path);
		return true;
	}
	fn(srv, req);
	return true;
}

static void route_request(struct http_server *srv, struct evhttp_request *req)
{
	const char *uri = evhttp_request_get_uri(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	char path[256];
	size_t plen;
	bool admin = srv->routes != HTTP_ROUTES_HOOKS, hooks = srv->routes != HTTP_ROUTES_ADMIN;

	if (!uri) {
		reply_error(srv, req, 400, NULL, "malformed request");
		return;
	}
	if (header_count(in, "Content-Length") > 1 ||
	    (header_count(in, "Content-Length") && header_count(in, "Transfer-Encoding"))) {
		/* request smuggling: evhttp would silently use the first one */
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		reply_error(srv, req, 400, NULL, "conflicting Content-Length / Transfer-Encoding "
			    "headers");
		return;
	}
	plen = strcspn(uri, "?#");
	if (plen >= sizeof(path)) {
		reply_error(srv, req, 404, NULL, "no such resource");
		return;
	}
	memcpy(path, uri, plen);
	path[plen] = '\0';
	if (srv->stopping) {
		if (admin && strcmp(path, "/ready") == 0 && (cmd == EVHTTP_REQ_GET ||
							     cmd == EVHTTP_REQ_HEAD)) {
			handle_ready(srv, req);
			return;
		}
		reply_error(srv, req, 503, NULL, "server shutting down");
		return;
	}
	if (hooks && strncmp(path, "/hooks/", 7) == 0) {
		if (!name_valid(path + 7)) {
			reply_error(srv, req, 404, NULL, "unknown hook \"%.80s\"", path + 7);
			metrics_call(srv->shard, METRICS_UNKNOWN, 404, 0);
			return;
		}
		handle_hook(srv, req, path + 7);
		return;
	}
	if (admin && handle_admin(srv, req, path))
		return;
	reply_error(srv, req, 404, NULL, "no such resource: %.100s (%s)", path,
		    srv->routes == HTTP_ROUTES_ALL ? "try POST /hooks/<name>, GET /plugins, "
						     "GET /health, GET /ready, GET /metrics"
		    : srv->routes == HTTP_ROUTES_HOOKS ? "this listener serves POST /hooks/<name>; "
							 "the admin routes are on admin_listen"
		    : "the admin listener serves GET /plugins, /health, /ready, /metrics");
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct http_server *srv = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct http_access acc;

	if (!uri || strncmp(uri, "/hooks/", 7) != 0) {
		route_request(srv, req);
		return;
	}
	/* a hook request: a request id, an access line, a 5xx line */
	access_begin(srv, req, &acc);
	srv->acc = &acc;
	route_request(srv, req);
	srv->acc = NULL;
	if (acc.status) /* answered here (refused, or the call ended at once) */
		access_end(srv, req, &acc, NULL);
}

/* The servers of this loop thread. libevent 2.1 calls a listener's error
 * callback with the evhttp's pointer (the listener's cbarg) and gives no
 * way back to ours; a loop thread has at most a public and an admin
 * server. */
#define HTTP_THREAD_SERVERS 2
static _Thread_local struct http_server *thread_servers[HTTP_THREAD_SERVERS];

static struct http_server *thread_server_of(const void *evhttp)
{
	for (int i = 0; i < HTTP_THREAD_SERVERS; i++)
		if (thread_servers[i] && thread_servers[i]->http == evhttp)
			return thread_servers[i];
	return NULL;
}

/* accept() failed: out of descriptors (or memory) would make libevent's
 * listener spin at 100 % CPU retrying (seen at ulimit -n 1024 with 5,000
 * connections); pause it instead. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	struct http_server *srv = thread_server_of(arg);
	int err = EVUTIL_SOCKET_ERROR();

	if (!srv)
		return;
	struct timeval tv = {0, HTTP_ACCEPT_PAUSE_MS * 1000};

	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		log_warn(srv->log, "accept: %s: not accepting for %d ms", strerror(err),
			 HTTP_ACCEPT_PAUSE_MS);
		evconnlistener_disable(lev);
		evtimer_add(srv->resume, &tv);
		return;
	}
	log_warn(srv->log, "accept: %s", strerror(err));
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *srv = arg;

	(void)fd;
	(void)what;
	if (srv->bound)
		evconnlistener_enable(evhttp_bound_socket_get_listener(srv->bound));
}

/* A listener on host:port; SO_REUSEPORT when several loops share it. */
static struct evconnlistener *listen_on(struct event_base *base, const struct http_options *opt,
					char *err, size_t errlen)
{
	struct addrinfo hints = {0}, *ai = NULL, *a;
	struct evconnlistener *lev = NULL;
	char port[8];
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE |
			 (opt->reuse_port ? LEV_OPT_REUSEABLE_PORT : 0);
	int rc, saved = 0;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(port, sizeof(port), "%u", opt->port);
	if ((rc = getaddrinfo(opt->host, port, &hints, &ai)) != 0) {
		snprintf(err, errlen, "cannot listen on %s:%u: %s", opt->host, opt->port,
			 gai_strerror(rc));
		return NULL;
	}
	for (a = ai; a && !lev; a = a->ai_next) {
		lev = evconnlistener_new_bind(base, NULL, NULL, flags, HTTP_BACKLOG, a->ai_addr,
					      (int)a->ai_addrlen);
		if (!lev)
			saved = errno;
	}
	freeaddrinfo(ai);
	if (!lev)
		snprintf(err, errlen, "cannot listen on %s:%u: %s", opt->host, opt->port,
			 strerror(saved));
	return lev;
}

/* A listener on the Unix socket `path` (a stale socket file left by a
 * killed daemon is replaced; any other file is not), mode 0660. */
static struct evconnlistener *listen_unix(struct event_base *base, const char *path, char *err,
					  size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct evconnlistener *lev;
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "cannot listen on unix:%s: path too long", path);
		return NULL;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "cannot listen on unix:%s: the file exists and is not a "
				 "socket", path);
			return NULL;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0660) < 0) {
		snprintf(err, errlen, "cannot listen on unix:%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	lev = evconnlistener_new(base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
				 HTTP_BACKLOG, fd);
	if (!lev) {
		snprintf(err, errlen, "cannot listen on unix:%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
	}
	return lev;
}

int http_server_create(struct event_base *base, const struct http_options *opt,
		       const struct http_deps *deps, struct http_server **out, char *err,
		       size_t errlen)
{
	struct http_server *srv = calloc(1, sizeof(*srv));
	struct sockaddr_storage ss;
	ev_socklen_t sl = sizeof(ss);
	struct evconnlistener *lev;
	evutil_socket_t fd;

	*out = NULL;
	if (!srv || !(srv->http = evhttp_new(base)) ||
	    !(srv->resume = evtimer_new(base, on_resume, srv)) ||
	    !(srv->sweep = evtimer_new(base, on_sweep, srv)) ||
	    !(srv->errlog_flush = evtimer_new(base, on_errlog_flush, srv)) ||
	    !(srv->alog_flush = event_new(base, -1, 0, on_alog_flush, srv)) ||
	    !(srv->alines = malloc(sizeof(*srv->alines)))) {
		if (srv && srv->alog_flush)
			event_free(srv->alog_flush);
		if (srv && srv->errlog_flush)
			event_free(srv->errlog_flush);
		if (srv && srv->sweep)
			event_free(srv->sweep);
		if (srv && srv->resume)
			event_free(srv->resume);
		if (srv && srv->http)
			evhttp_free(srv->http);
		free(srv);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	srv->base = base;
	TAILQ_INIT(&srv->unwatched);
	srv->env = deps->env;
	srv->reg = deps->reg;
	srv->log = deps->log;
	srv->health = deps->health;
	srv->health_arg = deps->health_arg;
	srv->metrics = deps->metrics;
	srv->shard = deps->shard;
	srv->metrics_cb = deps->metrics_cb;
	srv->metrics_arg = deps->metrics_arg;
	srv->ready = deps->ready;
	srv->ready_arg = deps->ready_arg;
	srv->routes = opt->routes;
	srv->max_body = opt->max_body;
	srv->alog = deps->alog;
	srv->dedup = deps->dedup;
	alog_batch_init(srv->alines, deps->alog);
	alog_rid_prefix(srv->rid_prefix, sizeof(srv->rid_prefix));
	ratelog_init(&srv->errlog, HTTP_5XX_RATE, HTTP_5XX_BURST);
	evhttp_set_gencb(srv->http, on_request, srv);
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
				   EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
				   EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
	evhttp_set_max_headers_size(srv->http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(srv->http, (ev_ssize_t)opt->max_body);
	evhttp_set_timeout(srv->http, HTTP_IO_TIMEOUT_S);
	evhttp_set_default_content_type(srv->http, "application/json");
	/* read (and drop) an oversized body before answering 413, so that the
	 * client sees the answer instead of a reset */
	evhttp_set_flags(srv->http, EVHTTP_SERVER_LINGERING_CLOSE);

	if (!(lev = opt->unix_path ? listen_unix(base, opt->unix_path, err, errlen)
				   : listen_on(base, opt, err, errlen)))
		goto fail;
	if (opt->unix_path && !(srv->unix_path = strdup(opt->unix_path))) {
		evconnlistener_free(lev);
		unlink(opt->unix_path);
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	evconnlistener_set_error_cb(lev, on_accept_error);
	srv->bound = evhttp_bind_listener(srv->http, lev);
	if (!srv->bound) {
		evconnlistener_free(lev);
		snprintf(err, errlen, "cannot listen on %s:%u: out of memory", opt->host, opt->port);
		goto fail;
	}
	for (int i = 0; i < HTTP_THREAD_SERVERS; i++) {
		if (!thread_servers[i]) {
			thread_servers[i] = srv;
			break;
		}
	}
	fd = evhttp_bound_socket_get_fd(srv->bound);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	*out = srv;
	return 0;
fail:
	if (srv->unix_path) {
		unlink(srv->unix_path);
		free(srv->unix_path);
	}
	free(srv->alines);
	event_free(srv->alog_flush);
	event_free(srv->errlog_flush);
	event_free(srv->sweep);
	event_free(srv->resume);
	evhttp_free(srv->http);
	free(srv);
	return -1;
}

uint16_t http_server_port(const struct http_server *srv)
{
	return srv->port;
}

void http_server_set_max_body(struct http_server *srv, size_t max_body)
{
	srv->max_body = max_body;
	evhttp_set_max_body_size(srv->http, (ev_ssize_t)max_body);
}

void http_server_stop_accepting(struct http_server *srv)
{
	evtimer_del(srv->resume);
	if (srv->bound) {
		evhttp_del_accept_socket(srv->http, srv->bound);
		srv->bound = NULL;
	}
	srv->stopping = true;
}

unsigned http_server_unsent(const struct http_server *srv)
{
	return atomic_load_explicit(&srv->unsent, memory_order_relaxed);
}

void http_server_free(struct http_server *srv)
{
	if (!srv)
		return;
	for (int i = 0; i < HTTP_THREAD_SERVERS; i++)
		if (thread_servers[i] == srv)
			thread_servers[i] = NULL;
	if (srv->unix_path) {
		unlink(srv->unix_path);
		free(srv->unix_path);
	}
	alog_batch_flush(srv->alines);
	free(srv->alines);
	event_free(srv->alog_flush);
	if (srv->errlog_flush) {
		/* a storm's last count is not lost at exit */
		on_errlog_flush(-1, 0, srv);
		event_free(srv->errlog_flush);
	}
	event_free(srv->sweep);
	event_free(srv->resume);
	evhttp_free(srv->http);
	free(srv);
}
