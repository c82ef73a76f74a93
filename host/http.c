/*
 * http -- see http.h.
 *
 * Every reply carries a JSON body (or the plugin's) and an explicit
 * Content-Length, the transport's refusals (hsrv.h: malformed framing,
 * limits, timeouts) too: they come here as hsrv_ops.refuse and are
 * answered like any other error.
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

#include <event2/util.h>

#include "form.h"
#include "inbound.h"
#include "json.h"
#include "name.h"
#include "reply.h"
#include "ratelog.h"
#include "verify.h"

/* what one parsed JSON value costs in memory: a cJSON node and malloc's
 * overhead (strings are counted by the body's length) */
#define HTTP_JSON_VALUE_COST (sizeof(cJSON) + 16)
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
	struct hsrv *hs;
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
	size_t max_json_values;
	uint16_t port;
	bool stopping;
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
	struct hsrv_req *req;       /* the transport's, until answered or gone */
	struct dispatch_call *call; /* NULL once answered */
	int64_t t0_ns;              /* CLOCK_MONOTONIC on arrival: the call's duration */
	bool starting, answered;    /* done may run inside dispatch_call_start */
	struct http_dedup *dk;      /* remembered delivery, or NULL */
	struct http_access acc;
};

/* Send the text in `b` (taken) of type `ctype` with `status` (204: no
 * body, no Content-Type, no Content-Length). */
static void send_body(struct http_server *srv, struct hsrv_req *req, int status,
		      const char *ctype, struct jbuf *b, unsigned retry_after)
{
	char num[32];

	if (status == 204)
		b->len = 0;
	if (srv->acc) {
		srv->acc->status = status;
		srv->acc->bytes_out = hsrv_req_method(req) == HSRV_HEAD ? 0 : b->len;
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
	if (retry_after) {
		snprintf(num, sizeof(num), "%u", retry_after);
		hsrv_add_header(req, "Retry-After", num);
	}
	/* the transport frames it (Content-Length, HEAD, 204, Connection) */
	hsrv_send(req, status, ctype, b->data, b->len);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Send the JSON text in `b` (taken) with `status`. */
static void send_json(struct http_server *srv, struct hsrv_req *req, int status,
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
static void reply(struct http_server *srv, struct hsrv_req *req, int status,
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
reply_error(struct http_server *srv, struct hsrv_req *req, int status, const char *hook,
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


/* What a call's outcome means in HTTP: the status, and the seconds to
 * suggest in Retry-After (0: none). */
/* ---- access log, request ids, 5xx log ------------------------------- */

/* The outcome of a hook request refused before any call started. */
static const char *refusal_outcome(int status)
{
	switch (status) {
	case 400: return "bad_request";
	case 404: return "no_hook";
	case 405: return "bad_method";
	case 408: return "timeout";
	case 411: return "no_length";
	case 413: return "too_large";
	case 414: return "uri_too_long";
	case 417: return "bad_expect";
	case 431: return "headers_too_large";
	case 501: return "not_implemented";
	case 505: return "bad_version";
	case 503: return "shutdown";
	default: return status >= 500 ? "nomem" : "refused";
	}
}

/* A hook request arrives: its request id (the client's X-Request-Id when
 * valid, else a new one), echoed on the reply whatever it is. */
static void access_begin(struct http_server *srv, struct hsrv_req *req,
			 struct http_access *acc)
{
	const char *in = hsrv_req_header(req, "X-Request-Id");

	acc->start_ns = clock_mono_ns();
	hsrv_req_body(req, &acc->bytes_in);
	acc->status = 0;
	acc->bytes_out = 0;
	acc->outcome = NULL;
	acc->reason[0] = 0;
	if (alog_rid_valid(in))
		memcpy(acc->rid, in, strlen(in) + 1);
	else
		alog_rid_make(acc->rid, sizeof(acc->rid), srv->rid_prefix, ++srv->rid_next);
	hsrv_add_header(req, "X-Request-Id", acc->rid);
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
static void access_end(struct http_server *srv, struct hsrv_req *req,
		       struct http_access *acc, const struct dispatch_result *r)
{
	const char *uri = hsrv_req_path(req);
	char path[256];
	uint16_t port = 0;
	size_t plen = uri ? strlen(uri) : 0;
	int64_t now = clock_mono_ns();
	struct alog_entry e = {
		.rid = acc->rid,
		.method = hsrv_req_method_name(req),
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
	e.client = hsrv_req_peer(req, &port);
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
static void reply_failure(struct http_server *srv, struct hsrv_req *req,
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
static int send_output(struct http_server *srv, struct hsrv_req *req,
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
		struct jbuf hb = {0};
		for (unsigned i = 0; rp && i < rp->nheaders; i++) {
			if (!rp->headers[i].value)
				continue;
			hsrv_add_header(req, rp->headers[i].name, rp->headers[i].value);
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
	hc->answered = true;
	if (!hc->starting)
		free(hc);
}

/* The client hung up while its call was in flight (the transport keeps
 * reading, so this is at once): cancel the call, which cancels its
 * plugin's work. Like nginx, a half-close counts as going away. */
static void on_gone(void *arg, struct hsrv_req *req, void *held)
{
	struct http_call *hc = held;

	(void)arg;
	log_debug(hc->srv->log, "client went away during a call (request_id %s); cancelling it",
		  hc->acc.rid);
	dispatch_call_abort(hc->call); /* no done callback after this */
	dedup_end(hc->srv, &hc->dk, NULL, false, NULL); /* a retry of the delivery runs */
	hc->acc.status = 499; /* nginx's "client closed request" */
	hc->acc.outcome = "client_gone";
	access_end(hc->srv, req, &hc->acc, NULL);
	free(hc);
}

static const char *header_of(void *arg, const char *name)
{
	return hsrv_req_header(arg, name); /* case-insensitive */
}

/* The hook's "verify": does the request come from the sender it names?
 * Answers 401 (and logs, rate-limited with the 5xx lines) when not. */
static bool sender_verified(struct http_server *srv, struct hsrv_req *req,
			    const char *name, const struct config_hook *h, const char *body,
			    size_t len)
{
	char why[256];

	if (!h || !h->verify ||
	    verify_check(h->verify, header_of, req, body, len,
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
static struct inbound *inbound_of(struct http_server *srv, struct hsrv_req *req,
				  const char *hook, const char *ctype, const char *body,
				  size_t len)
{
	hookd_header stack[HTTP_INBOUND_HEADERS], *hs = stack;
	struct inbound *in;
	size_t n = hsrv_req_nheaders(req);
	const char *addr;
	uint16_t port = 0;

	if (n > HTTP_INBOUND_HEADERS && !(hs = malloc(n * sizeof(*hs))))
		return NULL;
	for (unsigned i = 0; i < n; i++)
		hsrv_req_header_at(req, i, &hs[i].name, &hs[i].value);
	addr = hsrv_req_peer(req, &port);
	struct inbound_parts parts = {
		.hook = hook, .method = "POST",
		.path = hsrv_req_path(req),
		.query = hsrv_req_query(req),
		.client_addr = addr && *addr ? addr : "unix", .client_port = port,
		.request_id = srv->acc ? srv->acc->rid : NULL, .content_type = ctype,
		.body = body, .body_len = len, .headers = hs, .nheaders = n};
	in = inbound_new(&parts);
	if (hs != stack)
		free(hs);
	return in;
}

/* Send a remembered reply again, marked X-Hookd-Replay. */
static void send_replay(struct http_server *srv, struct hsrv_req *req,
			struct dedup_reply *rp)
{
	struct jbuf b = {0};

	for (size_t off = 0; rp->headers && off < rp->headers_len;) {
		const char *n = rp->headers + off, *v = n + strlen(n) + 1;
		hsrv_add_header(req, n, v);
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
static int dedup_gate(struct http_server *srv, struct hsrv_req *req, const char *name,
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
		key = hsrv_req_header(req, cd->header);
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
		hsrv_add_header(req, "Retry-After", num);
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

/* The body limit of a hook `h` (NULL: not configured) of generation `g`:
 * its own max_body, else g's global one; without a generation, the
 * server's. */
static uint64_t body_limit_of(const struct http_server *srv, const struct generation *g,
			      const struct config_hook *h)
{
	if (!g)
		return srv->max_body;
	return h && h->max_body ? h->max_body : g->cfg->max_body;
}

static void handle_hook(struct http_server *srv, struct hsrv_req *req, const char *name)
{
	size_t len;
	const char *text = hsrv_req_body(req, &len);
	char err[256];
	cJSON *input = NULL;
	struct inbound *in = NULL;
	struct http_call *hc;
	struct generation *g = NULL;
	const struct config_hook *h = NULL;
	const char *ctype = hsrv_req_header(req, "Content-Type");
	size_t limit = srv->max_body;
	struct http_dedup *dk = NULL;
	unsigned kind;
	int status = 0;
	/* the request's arrival, read once: on_request took it for the access
	 * record (always set for a hook request) */
	int64_t t0 = srv->acc ? srv->acc->start_ns : srv->shard ? clock_mono_ns() : 0;

	if (hsrv_req_method(req) != HSRV_POST) {
		hsrv_add_header(req, "Allow", "POST");
		reply_error(srv, req, 405, name, "method not allowed: use POST /hooks/%s", name);
		metrics_call(srv->shard, hook_slot(srv, NULL, name), 405, clock_mono_ns() - t0);
		return;
	}
	/* hooks with settings of their own (verify, accept, max_body, dedup):
	 * only then is the hook looked up here, once */
	if (atomic_load_explicit(&srv->reg->gated, memory_order_acquire)) {
		g = registry_acquire(srv->reg);
		h = g ? config_find_hook(g->cfg, name) : NULL;
		limit = (size_t)body_limit_of(srv, g, h);
	}
	/* the transport refused a larger declared body already; this catches a
	 * reload between the head and the end of the body */
	if (len > limit) {
		reply_error(srv, req, 413, name, "body of %zu bytes is over the limit of %zu bytes%s",
			    len, limit, h && h->max_body ? " (the hook's max_body)" : "");
		status = 413;
		goto refused;
	}
	if (!sender_verified(srv, req, name, h, text, len)) {
		status = 401;
		goto refused;
	}
	kind = accept_kind(h ? h->accept : 0, ctype);
	if (kind == CONFIG_ACCEPT_JSON) {
		size_t values = 0;
		int prc = json_parse_max(text, len, srv->max_json_values, &input, &values, err,
					 sizeof(err));
		if (prc < 0) {
			status = prc == -E2BIG ? 413 : 400;
			reply_error(srv, req, status, name, "%s", err);
			goto refused;
		}
		/* the tree counts against the memory budget of requests in flight
		 * until the request ends */
		if (!hsrv_req_charge(req, values * HTTP_JSON_VALUE_COST + len)) {
			cJSON_Delete(input);
			reply_error(srv, req, 503, name, "the server's memory budget for requests in "
				    "flight (http.max_inflight_bytes) is spent: retry later");
			status = 503;
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
	hsrv_req_hold(req, hc); /* a hang-up comes back as on_gone */
	return;
refused:
	metrics_call(srv->shard, hook_slot(srv, g, name), status, clock_mono_ns() - t0);
	generation_release(g);
}

static void handle_plugins(struct http_server *srv, struct hsrv_req *req)
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

static void handle_health(struct http_server *srv, struct hsrv_req *req)
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
static void handle_metrics(struct http_server *srv, struct hsrv_req *req)
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
static void handle_ready(struct http_server *srv, struct hsrv_req *req)
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
static bool handle_admin(struct http_server *srv, struct hsrv_req *req, const char *path)
{
	enum hsrv_method cmd = hsrv_req_method(req);
	void (*fn)(struct http_server *, struct hsrv_req *);

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
	if (cmd != HSRV_GET && cmd != HSRV_HEAD) {
		hsrv_add_header(req, "Allow", "GET, HEAD");
		reply_error(srv, req, 405, NULL, "method not allowed: use GET %s", path);
		return true;
	}
	fn(srv, req);
	return true;
}

static void route_request(struct http_server *srv, struct hsrv_req *req)
{
	const char *path = hsrv_req_path(req);
	enum hsrv_method cmd = hsrv_req_method(req);
	bool admin = srv->routes != HTTP_ROUTES_HOOKS, hooks = srv->routes != HTTP_ROUTES_ADMIN;

	if (srv->stopping) {
		if (admin && strcmp(path, "/ready") == 0 && (cmd == HSRV_GET || cmd == HSRV_HEAD)) {
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

static void on_request(void *arg, struct hsrv_req *req)
{
	struct http_server *srv = arg;
	const char *path = hsrv_req_path(req);
	struct http_access acc;

	if (strncmp(path, "/hooks/", 7) != 0) {
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

/* The transport refuses a request (hsrv.h): a JSON error like any other,
 * and for a hook's request its id, access line and count. */
static void on_refuse(void *arg, struct hsrv_req *req, int status, const char *why)
{
	struct http_server *srv = arg;
	const char *path = hsrv_req_path(req);
	const char *hook = path && strncmp(path, "/hooks/", 7) == 0 && name_valid(path + 7)
				   ? path + 7 : NULL;
	struct http_access acc;

	if (!hook) {
		reply_error(srv, req, status, NULL, "%s", why);
		return;
	}
	access_begin(srv, req, &acc);
	srv->acc = &acc;
	reply_error(srv, req, status, hook, "%s", why);
	srv->acc = NULL;
	metrics_call(srv->shard, hook_slot(srv, NULL, hook), status,
		     clock_mono_ns() - acc.start_ns);
	access_end(srv, req, &acc, NULL);
}

/* The head of a request is in: the body it may have. A hook's own
 * max_body when it has one (read from the current generation, so a reload
 * reaches the next request of every connection), else the global one. */
static uint64_t on_body_limit(void *arg, struct hsrv_req *req, const char **what)
{
	struct http_server *srv = arg;
	const char *path = hsrv_req_path(req);
	uint64_t limit = srv->max_body;

	*what = "max_body";
	if (strncmp(path, "/hooks/", 7) == 0 &&
	    atomic_load_explicit(&srv->reg->gated, memory_order_acquire)) {
		struct generation *g = registry_acquire(srv->reg);
		const struct config_hook *h = g ? config_find_hook(g->cfg, path + 7) : NULL;
		limit = body_limit_of(srv, g, h);
		if (h && h->max_body)
			*what = "the hook's max_body";
		generation_release(g);
	}
	return limit;
}

static const struct hsrv_ops http_ops = {
	.body_limit = on_body_limit,
	.request = on_request,
	.refuse = on_refuse,
	.gone = on_gone,
};

int http_server_create(struct event_base *base, const struct http_options *opt,
		       const struct http_deps *deps, struct http_server **out, char *err,
		       size_t errlen)
{
	struct http_server *srv = calloc(1, sizeof(*srv));
	struct hsrv_options ho = {.host = opt->host, .unix_path = opt->unix_path,
				  .port = opt->port, .reuse_port = opt->reuse_port,
				  .budget = opt->budget};

	*out = NULL;
	if (opt->limits)
		ho.limits = *opt->limits;
	else
		hsrv_limits_default(&ho.limits);
	if (!srv || !(srv->errlog_flush = evtimer_new(base, on_errlog_flush, srv)) ||
	    !(srv->alog_flush = event_new(base, -1, 0, on_alog_flush, srv)) ||
	    !(srv->alines = malloc(sizeof(*srv->alines)))) {
		if (srv && srv->alog_flush)
			event_free(srv->alog_flush);
		if (srv && srv->errlog_flush)
			event_free(srv->errlog_flush);
		free(srv);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	srv->base = base;
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
	srv->max_json_values = opt->max_json_values;
	srv->alog = deps->alog;
	srv->dedup = deps->dedup;
	alog_batch_init(srv->alines, deps->alog);
	alog_rid_prefix(srv->rid_prefix, sizeof(srv->rid_prefix));
	ratelog_init(&srv->errlog, HTTP_5XX_RATE, HTTP_5XX_BURST);
	if (hsrv_create(base, &ho, &http_ops, srv, deps->log, &srv->hs, err, errlen) < 0) {
		free(srv->alines);
		event_free(srv->alog_flush);
		event_free(srv->errlog_flush);
		free(srv);
		return -1;
	}
	srv->port = hsrv_port(srv->hs);
	*out = srv;
	return 0;
}

uint16_t http_server_port(const struct http_server *srv)
{
	return srv->port;
}

void http_server_set_max_body(struct http_server *srv, size_t max_body)
{
	srv->max_body = max_body; /* read for every request's head */
}

void http_server_stop_accepting(struct http_server *srv)
{
	hsrv_drain(srv->hs);
	srv->stopping = true;
}

unsigned http_server_unsent(const struct http_server *srv)
{
	return hsrv_unsent(srv->hs);
}

void http_server_free(struct http_server *srv)
{
	if (!srv)
		return;
	hsrv_free(srv->hs);
	alog_batch_flush(srv->alines);
	free(srv->alines);
	event_free(srv->alog_flush);
	if (srv->errlog_flush) {
		/* a storm's last count is not lost at exit */
		on_errlog_flush(-1, 0, srv);
		event_free(srv->errlog_flush);
	}
	free(srv);
}
