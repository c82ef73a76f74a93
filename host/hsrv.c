/*
 * hsrv -- see hsrv.h.
 *
 * A connection's life: ST_HEAD (reading a head; idle when nothing of it
 * is in) -> ST_BODY -> ST_REQ (the owner has the request) -> ST_WRITE (the
 * reply did not fit in one sendmsg) -> ST_HEAD again, or ST_LINGER (the
 * reply is out, the write side shut, what the client still sends is read
 * and dropped for a while) -> closed.
 *
 * The input buffer holds the current request's head and, for a
 * Content-Length body, the body right after it (the request's strings and
 * body are slices of it, NUL-terminated in place once the head is parsed:
 * no copy); a chunked body is decoded into a buffer of its own and its raw
 * bytes dropped as they are decoded. The request keeps offsets, not
 * pointers, so the buffer may grow (realloc) while the request is held and
 * the client reads ahead.
 *
 * Timeouts: one timer per connection, re-armed lazily: a later deadline
 * only updates a field (the timer, when it fires, goes back to sleep for
 * the rest), so a keep-alive request costs no timer operation unless its
 * head or body is split over reads.
 */
#include "hsrv.h"
#include "clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#define HSRV_INBUF 4096               /* input bytes a connection has without charge */
#define HSRV_RBUF HSRV_INBUF          /* the first read of a request: never charged */
#define HSRV_HEAD_ROOM 400            /* status line, Date, Content-Type/-Length, Connection */
#define HSRV_BACKLOG 4096             /* listen(2); capped by net.core.somaxconn */
#define HSRV_ACCEPT_PAUSE_MS 100      /* after EMFILE */
#define HSRV_LINGER_MS 2000           /* reading what a refused client still sends */
#define HSRV_LINGER_BYTES (1u << 20)  /* ... at most this much */
#define HSRV_TRIM_AFTER (1u << 20)    /* give memory back after freeing this much */

/* the 503 of a request the memory budget has no room for */
static const char budget_spent[] = "the server's memory budget for requests in flight "
				   "(http.max_inflight_bytes) is spent: retry later";

enum conn_state { ST_HEAD, ST_BODY, ST_REQ, ST_WRITE, ST_LINGER };
enum deadline { DL_NONE, DL_IDLE, DL_HEADER, DL_BODY, DL_SEND, DL_LINGER };

struct hsrv_conn;

/* A request's field: offsets into the connection's input buffer. */
struct req_field {
	uint32_t name, value;
};

struct hsrv_req {
	struct hsrv_conn *c;
	bool parsed;        /* method, path, query and fields are set */
	bool answered;
	bool head_only;     /* HEAD */
	enum hsrv_method method;
	uint32_t method_off, path_off, query_off; /* query_off 0: none */
	struct req_field *fields;
	unsigned nfields, fields_cap;
	int version_minor;
	bool keep_alive;
	uint64_t body_len;  /* Content-Length (the body follows the head), or decoded */
	char *chunked;      /* a decoded chunked body, or NULL */
	size_t chunked_len, chunked_cap;
	size_t charged;     /* budget taken by hsrv_req_charge and the chunked body */
	void *held;         /* hsrv_req_hold's, or NULL */
	char *oh;           /* reply headers added: "Name: value\r\n"... */
	size_t oh_len, oh_cap;
};

struct hsrv_conn {
	struct hsrv *s;
	evutil_socket_t fd;
	enum conn_state state;
	struct event rev, wev, tmo;
	bool reading_paused;   /* rev waits for EV_CLOSED only (read-ahead full) */
	/* deadlines: the one that counts, and the timer's own */
	enum deadline dl;
	int64_t dl_ns, tmo_ns;
	bool tmo_pending;
	bool head_timed;       /* this request's header deadline is set */
	bool close_after;      /* close once the current reply is out */
	bool broken;           /* writing failed: close without lingering */
	bool in_owner;         /* the owner's request/refuse callback is running */
	bool chunked;          /* the body being read is chunked */
	bool peer_eof;         /* the client half-closed while its reply went out */
	/* input */
	char *in;
	size_t in_len, in_cap, in_charged;
	struct h1_head hp;
	struct h1_body bd;
	size_t head_len;       /* the parsed head's bytes */
	size_t body_pos;       /* next body byte to decode */
	size_t req_end;        /* where the next request starts */
	size_t lingered;
	/* output: a reply hsrv_send prepared (r->oh from ph_start, then pbody) */
	bool reply_ready;
	size_t ph_start;
	char *pbody;
	size_t pbody_len;
	char *out;
	size_t out_len, out_off;
	bool counted_unsent;
	/* the peer */
	struct sockaddr_storage peer;
	socklen_t peer_len;
	char peer_str[INET6_ADDRSTRLEN];
	struct hsrv_req req;
	TAILQ_ENTRY(hsrv_conn) link;
};

struct hsrv {
	struct event_base *base;
	const struct hsrv_ops *ops;
	void *arg;
	const struct log *log;
	struct evconnlistener *lev;
	struct event *resume;
	struct hsrv_limits lim;
	struct hsrv_budget *budget;
	char *unix_path;
	uint16_t port;
	bool draining;
	bool paused;           /* listener off: max_connections reached */
	unsigned nconns;
	atomic_uint unsent;
	struct h1_field *scratch; /* h1_head_parse's field storage (max_fields) */
	char *rbuf;             /* HSRV_RBUF: where a connection without input reads */
	int64_t date_sec;
	char date[48];          /* "Date: ...\r\n" of date_sec */
	TAILQ_HEAD(, hsrv_conn) conns;
};

void hsrv_limits_default(struct hsrv_limits *lim)
{
	h1_limits_default(&lim->h1);
	lim->max_connections = HSRV_MAX_CONNECTIONS_DEFAULT;
	lim->header_timeout_ms = HSRV_HEADER_TIMEOUT_DEFAULT;
	lim->body_timeout_ms = HSRV_BODY_TIMEOUT_DEFAULT;
	lim->idle_timeout_ms = HSRV_IDLE_TIMEOUT_DEFAULT;
	lim->send_timeout_ms = HSRV_SEND_TIMEOUT_DEFAULT;
}

bool hsrv_budget_take(struct hsrv_budget *b, size_t n)
{
	if (!b || !n)
		return true;
	size_t was = atomic_fetch_add_explicit(&b->used, n, memory_order_relaxed);
	if (b->limit && was + n > b->limit) {
		atomic_fetch_sub_explicit(&b->used, n, memory_order_relaxed);
		return false;
	}
	return true;
}

void hsrv_budget_give(struct hsrv_budget *b, size_t n)
{
	if (b && n)
		atomic_fetch_sub_explicit(&b->used, n, memory_order_relaxed);
}

static void conn_process(struct hsrv_conn *c);
static bool conn_next(struct hsrv_conn *c);
static bool conn_flush(struct hsrv_conn *c);
static void conn_close(struct hsrv_conn *c);

/* ---- deadlines ---------------------------------------------------------- */

static void deadline_set(struct hsrv_conn *c, enum deadline dl, uint32_t ms)
{
	c->dl = dl;
	if (dl == DL_NONE)
		return;
	c->dl_ns = clock_mono_ns() + (int64_t)ms * 1000000;
	if (!c->tmo_pending || c->dl_ns < c->tmo_ns) {
		struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
		event_add(&c->tmo, &tv);
		c->tmo_pending = true;
		c->tmo_ns = c->dl_ns;
	}
}

static bool conn_refuse(struct hsrv_conn *c, int status, const char *why, bool must_close);

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct hsrv_conn *c = arg;
	int64_t now = clock_mono_ns();

	(void)fd;
	(void)what;
	c->tmo_pending = false;
	if (c->dl == DL_NONE)
		return;
	if (now < c->dl_ns) { /* a later deadline came meanwhile: sleep on */
		int64_t left = (c->dl_ns - now) / 1000;
		struct timeval tv = {(time_t)(left / 1000000), (suseconds_t)(left % 1000000) + 1};
		event_add(&c->tmo, &tv);
		c->tmo_pending = true;
		c->tmo_ns = c->dl_ns;
		return;
	}
	switch (c->dl) {
	case DL_HEADER:
		if (c->in_len) {
			c->dl = DL_NONE;
			conn_refuse(c, 408, "the request's head did not arrive in time "
				    "(http.header_timeout_ms)", true);
			return;
		}
		break;
	case DL_BODY:
		c->dl = DL_NONE;
		conn_refuse(c, 408, "the request's body stalled (http.body_timeout_ms)", true);
		return;
	case DL_SEND:
		log_debug(c->s->log, "a client read nothing of its reply for %u ms: closing",
			  c->s->lim.send_timeout_ms);
		break;
	default:
		break;
	}
	conn_close(c);
}

/* ---- reading ------------------------------------------------------------ */

static void reading(struct hsrv_conn *c, bool on);

/* Make room for `need` bytes in the input buffer (charging what passes
 * HSRV_INBUF to the budget): doubling, or exactly `need` when `exact`.
 * Returns 0, or the status to refuse with. */
static int in_reserve(struct hsrv_conn *c, size_t need, bool exact)
{
	size_t cap = c->in_cap ? c->in_cap : exact ? need : HSRV_INBUF, charge;
	char *p;

	if (need <= c->in_cap)
		return 0;
	while (cap < need)
		cap = cap * 2 > need && !exact ? cap * 2 : need;
	charge = cap > HSRV_INBUF ? cap - HSRV_INBUF : 0;
	if (charge > c->in_charged && !hsrv_budget_take(c->s->budget, charge - c->in_charged))
		return 503;
	if (!(p = realloc(c->in, cap))) {
		hsrv_budget_give(c->s->budget, charge > c->in_charged ? charge - c->in_charged : 0);
		return 503;
	}
	if (charge > c->in_charged)
		c->in_charged = charge;
	c->in = p;
	c->in_cap = cap;
	return 0;
}

static void in_release(struct hsrv_conn *c)
{
	size_t cap = c->in_cap;

	hsrv_budget_give(c->s->budget, c->in_charged);
	c->in_charged = 0;
	free(c->in);
	c->in = NULL;
	c->in_cap = c->in_len = 0;
	if (cap >= HSRV_TRIM_AFTER)
		malloc_trim(0);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct hsrv_conn *c = arg;
	struct hsrv *s = c->s;
	ssize_t n;
	size_t want = 0, room;

	if (c->reply_ready) {
		/* a held request was answered (hsrv_send made this pass): its
		 * reply, then whatever is buffered; bytes waiting in the socket
		 * make the (level-triggered) event come back */
		if (conn_flush(c))
			conn_process(c);
		return;
	}
	if ((what & EV_CLOSED) && c->reading_paused) {
		/* the client went away while not being read; a reply going out
		 * is finished first (a half-close may still read it) */
		if (c->state == ST_WRITE) {
			c->peer_eof = true;
			event_del(&c->rev);
			return;
		}
		conn_close(c);
		return;
	}
	if (c->state == ST_LINGER) {
		char drop[16384];
		n = read(fd, drop, sizeof(drop));
		if (n > 0 && (c->lingered += (size_t)n) < HSRV_LINGER_BYTES)
			return;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		conn_close(c);
		return;
	}
	if (c->state == ST_HEAD || c->state == ST_BODY) {
		/* a head or body in progress grows the buffer: the parser bounds
		 * a head, the body limit a body */
		if (c->in_cap && c->in_len == c->in_cap)
			want = c->in_cap * 2; /* (none yet: read into s->rbuf below) */
	} else if (c->in_len - c->req_end >= HSRV_READ_AHEAD) {
		reading(c, false); /* read far enough ahead of a running request */
		return;
	} else if (c->in_cap - c->in_len < HSRV_INBUF) {
		want = c->req_end + HSRV_READ_AHEAD;
	}
	if (want) {
		int st = in_reserve(c, want, c->state != ST_HEAD && c->state != ST_BODY);
		if (st && (c->state == ST_HEAD || c->state == ST_BODY)) {
			conn_refuse(c, st, budget_spent, true);
			return;
		}
		if (st && c->in_len == c->in_cap) {
			reading(c, false);
			return;
		}
	}
	room = c->in_cap - c->in_len;
	if (c->state != ST_HEAD && c->state != ST_BODY &&
	    room > c->req_end + HSRV_READ_AHEAD - c->in_len)
		room = c->req_end + HSRV_READ_AHEAD - c->in_len; /* the bound, not the buffer */
	if (!c->in_cap && c->state == ST_HEAD) {
		/* nothing buffered (a new or idle connection): read into the
		 * server's buffer and keep only what came, so that 10,000 idle or
		 * waiting connections hold a few hundred bytes each, not 4 KiB */
		n = read(fd, s->rbuf, HSRV_RBUF);
		if (n > 0) {
			if (in_reserve(c, ((size_t)n + 511) & ~(size_t)511, true)) {
				conn_refuse(c, 503, budget_spent, true);
				return;
			}
			memcpy(c->in, s->rbuf, (size_t)n);
			goto got;
		}
	} else {
		n = read(fd, c->in + c->in_len, room);
	}
	if (n == 0 && c->state == ST_WRITE) {
		/* a half-close while the reply goes out: finish it, then close */
		c->peer_eof = true;
		event_del(&c->rev);
		return;
	}
	if (n == 0) {
		conn_close(c); /* the client hung up (a half-close counts, like nginx) */
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			conn_close(c);
			return;
		}
		n = 0; /* an event_active'd pass: what is buffered */
	}
got:
	c->in_len += (size_t)n;
	if (c->state == ST_HEAD || c->state == ST_BODY)
		conn_process(c);
}

/* Read, or only watch for the client going away (EV_CLOSED) while the
 * read-ahead is full. */
static void reading(struct hsrv_conn *c, bool on)
{
	if (c->reading_paused == !on)
		return;
	event_del(&c->rev);
	event_assign(&c->rev, c->s->base, c->fd, (on ? EV_READ : EV_CLOSED) | EV_PERSIST, on_read,
		     c);
	event_add(&c->rev, NULL);
	c->reading_paused = !on;
}

/* ---- a request's head ------------------------------------------------- */

static enum hsrv_method method_of(const char *m, size_t n)
{
	static const struct {
		const char *name;
		enum hsrv_method m;
	} tab[] = {{"GET", HSRV_GET},       {"HEAD", HSRV_HEAD},   {"POST", HSRV_POST},
		   {"PUT", HSRV_PUT},       {"DELETE", HSRV_DELETE}, {"PATCH", HSRV_PATCH},
		   {"OPTIONS", HSRV_OPTIONS}};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strlen(tab[i].name) == n && memcmp(tab[i].name, m, n) == 0)
			return tab[i].m;
	return HSRV_OTHER;
}

/* Take the parsed head `h` (pointing into c->in) as the request: offsets,
 * and NUL terminators written in place over the bytes after each string
 * (a space, a colon, OWS or CR, none of them needed again). Returns
 * false: out of memory. */
static bool req_take(struct hsrv_conn *c, const struct h1_request *h)
{
	struct hsrv_req *r = &c->req;
	char *base = c->in;
	char *target = (char *)h->target, *q;

	if (h->nfields > r->fields_cap) {
		struct req_field *f = realloc(r->fields, h->nfields * sizeof(*f));
		if (!f)
			return false;
		r->fields = f;
		r->fields_cap = h->nfields;
	}
	r->method = method_of(h->method, h->method_len);
	r->head_only = r->method == HSRV_HEAD;
	r->method_off = (uint32_t)(h->method - base);
	((char *)h->method)[h->method_len] = 0;
	target[h->target_len] = 0;
	r->path_off = (uint32_t)(target - base);
	r->query_off = 0;
	if ((q = memchr(target, '?', h->target_len))) {
		*q = 0;
		r->query_off = (uint32_t)(q + 1 - base);
	}
	for (unsigned i = 0; i < h->nfields; i++) {
		const struct h1_field *f = &h->fields[i];
		r->fields[i].name = (uint32_t)(f->name - base);
		r->fields[i].value = (uint32_t)(f->value - base);
		((char *)f->name)[f->name_len] = 0;
		((char *)f->value)[f->value_len] = 0;
	}
	r->nfields = h->nfields;
	r->version_minor = h->version_minor;
	r->keep_alive = h->keep_alive;
	r->parsed = true;
	return true;
}

static int body_sink(void *arg, const char *data, size_t n)
{
	struct hsrv_conn *c = arg;
	struct hsrv_req *r = &c->req;

	if (r->chunked_len + n > r->chunked_cap) {
		size_t cap = r->chunked_cap ? r->chunked_cap : 4096;
		char *p;
		while (cap < r->chunked_len + n)
			cap *= 2;
		if (!hsrv_budget_take(c->s->budget, cap - r->chunked_cap))
			return 503;
		if (!(p = realloc(r->chunked, cap))) {
			hsrv_budget_give(c->s->budget, cap - r->chunked_cap);
			return 503;
		}
		r->charged += cap - r->chunked_cap;
		r->chunked = p;
		r->chunked_cap = cap;
	}
	memcpy(r->chunked + r->chunked_len, data, n);
	r->chunked_len += n;
	return 0;
}

static void req_reset(struct hsrv_req *r)
{
	struct hsrv_conn *c = r->c;

	hsrv_budget_give(c->s->budget, r->charged);
	free(r->chunked);
	r->chunked = NULL;
	r->chunked_len = r->chunked_cap = r->charged = 0;
	r->parsed = r->answered = r->head_only = false;
	r->method = HSRV_OTHER;
	r->nfields = 0;
	r->held = NULL;
	r->oh_len = 0; /* oh_reserve keeps HSRV_HEAD_ROOM in front again */
	r->body_len = 0;
	r->keep_alive = false;
}

/* Refuse the request being read with `status`; `must_close`: the framing
 * is lost, the connection ends after the answer. Returns true when the
 * connection goes on with the next request (already in ST_HEAD). */
static bool conn_refuse(struct hsrv_conn *c, int status, const char *why, bool must_close)
{
	struct hsrv *s = c->s;

	if (must_close)
		c->close_after = true;
	c->state = ST_REQ;
	c->dl = DL_NONE;
	c->in_owner = true;
	s->ops->refuse(s->arg, &c->req, status, why);
	c->in_owner = false;
	if (!c->req.answered) { /* the owner must answer; never leave the client hanging */
		log_error(s->log, "hsrv: a refusal (%d) was not answered: closing", status);
		conn_close(c);
		return false;
	}
	/* the answer goes out: then close, or go on (no Host, 417, 411) */
	return conn_flush(c);
}

enum head_next { HD_BODY, HD_NEXT, HD_STOP };

/* The head is parsed: the body limit, 411/501, 413, 100-continue. Returns
 * HD_BODY (read the body), HD_NEXT (refused; the connection goes on with
 * the next request) or HD_STOP (refused, or closed). */
static enum head_next head_done(struct hsrv_conn *c, const struct h1_request *h)
{
	struct hsrv *s = c->s;
	struct hsrv_req *r = &c->req;
	struct h1_error err;
	const char *what = NULL;
	uint64_t limit;
	bool body_follows = h->chunked || (h->has_length && h->content_length);

	if (!req_take(c, h)) {
		conn_refuse(c, 503, "out of memory", true);
		return HD_STOP;
	}
	if (r->method == HSRV_OTHER) {
		return conn_refuse(c, 501, "method not implemented (hookd serves GET, HEAD, POST, "
				   "PUT, DELETE, PATCH and OPTIONS)", body_follows || !h->keep_alive)
			       ? HD_NEXT : HD_STOP;
	}
	if (!h->chunked && !h->has_length &&
	    (r->method == HSRV_POST || r->method == HSRV_PUT || r->method == HSRV_PATCH)) {
		return conn_refuse(c, 411, "a request body needs Content-Length or "
				   "Transfer-Encoding: chunked", !h->keep_alive) ? HD_NEXT : HD_STOP;
	}
	limit = s->ops->body_limit(s->arg, r, &what);
	if (h1_body_init(&c->bd, h, &s->lim.h1, limit, &err) < 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "body of %llu bytes is over the limit of %llu bytes%s%s%s",
			 (unsigned long long)h->content_length, (unsigned long long)limit,
			 what ? " (" : "", what ? what : "", what ? ")" : "");
		conn_refuse(c, 413, msg, true);
		return HD_STOP;
	}
	if (h->has_length) {
		r->body_len = h->content_length;
		if (in_reserve(c, c->head_len + (size_t)h->content_length, true)) {
			conn_refuse(c, 503, budget_spent, true);
			return HD_STOP;
		}
	}
	if (h->expect_continue && body_follows &&
	    (h->chunked || c->in_len - c->head_len < h->content_length)) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		/* the output is empty here (one request at a time): a socket buffer
		 * with no room for 25 bytes is a client that is not there */
		if (send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(cont) - 1) {
			conn_close(c);
			return HD_STOP;
		}
	}
	c->chunked = h->chunked;
	return HD_BODY;
}

/* Parse and hand up whatever whole requests the buffer holds, one at a
 * time, while the connection is free to. */
static void conn_process(struct hsrv_conn *c)
{
	struct hsrv *s = c->s;
	struct h1_request h;
	struct h1_error err;
	size_t consumed;
	enum h1_status st;

	while (c->state == ST_HEAD || c->state == ST_BODY) {
		if (c->state == ST_HEAD) {
			if (!c->in_len) {
				deadline_set(c, DL_IDLE, s->lim.idle_timeout_ms);
				return;
			}
			st = h1_head_parse(&c->hp, c->in, c->in_len, &s->lim.h1, &h, s->scratch,
					   &consumed, &err);
			if (st == H1_MORE) {
				if (!c->head_timed) {
					c->head_timed = true;
					deadline_set(c, DL_HEADER, s->lim.header_timeout_ms);
				}
				return;
			}
			if (st == H1_ERROR) {
				if (consumed) { /* a whole head refused (no Host, 417): its strings */
					c->head_len = consumed;
					c->req_end = consumed;
					if (!req_take(c, &h))
						err.must_close = true;
				}
				if (conn_refuse(c, err.status, err.why, err.must_close || !consumed))
					continue;
				return;
			}
			c->head_len = consumed;
			c->body_pos = consumed;
			c->req_end = consumed;
			switch (head_done(c, &h)) {
			case HD_BODY:
				break;
			case HD_NEXT:
				continue;
			case HD_STOP:
				return;
			}
			c->state = ST_BODY;
		}
		st = h1_body_feed(&c->bd, c->in + c->body_pos, c->in_len - c->body_pos, &consumed,
				  c->chunked ? body_sink : NULL, c, &err);
		if (st == H1_ERROR) {
			conn_refuse(c, err.status, err.why, true);
			return;
		}
		c->body_pos += consumed;
		if (c->chunked && c->body_pos > c->head_len) {
			/* decoded: the raw chunks are dropped, the head stays */
			memmove(c->in + c->head_len, c->in + c->body_pos, c->in_len - c->body_pos);
			c->in_len -= c->body_pos - c->head_len;
			c->body_pos = c->head_len;
		}
		if (st == H1_BODY) {
			deadline_set(c, DL_BODY, s->lim.body_timeout_ms);
			return;
		}
		/* H1_DONE */
		c->req_end = c->body_pos;
		c->state = ST_REQ;
		c->dl = DL_NONE;
		c->in_owner = true;
		s->ops->request(s->arg, &c->req);
		c->in_owner = false;
		if (!c->req.answered)
			return; /* held */
		if (!conn_flush(c))
			return; /* writing, closed or lingering */
	}
}

/* ---- writing ------------------------------------------------------------ */

static const char *reason_of(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default:
		return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
	}
}

/* "Date: <IMF-fixdate>\r\n", formatted once a second. */
static const char *date_line(struct hsrv *s)
{
	struct timeval tv;
	struct tm tm;

	event_base_gettimeofday_cached(s->base, &tv);
	if (tv.tv_sec != s->date_sec) {
		time_t t = tv.tv_sec;
		s->date_sec = tv.tv_sec;
		gmtime_r(&t, &tm);
		strftime(s->date, sizeof(s->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	}
	return s->date;
}

/* The reply is out (or lost with its connection): account for it. */
static void unsent_done(struct hsrv_conn *c)
{
	if (c->counted_unsent) {
		c->counted_unsent = false;
		atomic_fetch_sub_explicit(&c->s->unsent, 1, memory_order_relaxed);
	}
}

/* The current request is over and its reply out: get ready for the next
 * one (true), or close (false: `c` is gone or lingering). Never called
 * while the owner's callback is on the stack. */
static bool conn_next(struct hsrv_conn *c)
{
	unsent_done(c);
	req_reset(&c->req);
	if (c->broken || c->peer_eof) {
		conn_close(c);
		return false;
	}
	if (c->close_after) {
		/* lingering close: the client may still be sending (a refused
		 * body, pipelined requests); reading and dropping it for a while
		 * lets it read the answer instead of a reset */
		shutdown(c->fd, SHUT_WR);
		c->state = ST_LINGER;
		c->lingered = 0;
		in_release(c);
		reading(c, true);
		deadline_set(c, DL_LINGER, HSRV_LINGER_MS);
		return false;
	}
	/* the next request starts at req_end */
	if (c->req_end < c->in_len)
		memmove(c->in, c->in + c->req_end, c->in_len - c->req_end);
	c->in_len -= c->req_end;
	c->req_end = c->head_len = c->body_pos = 0;
	h1_head_init(&c->hp);
	c->head_timed = false;
	c->chunked = false;
	c->state = ST_HEAD;
	if (!c->in_len)
		in_release(c); /* idle: the next request is read into s->rbuf */
	if (c->reading_paused)
		reading(c, true);
	return true;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct hsrv_conn *c = arg;
	ssize_t n;

	(void)what;
	n = send(fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_close(c);
		return;
	}
	c->out_off += (size_t)n;
	if (c->out_off < c->out_len) {
		deadline_set(c, DL_SEND, c->s->lim.send_timeout_ms);
		return;
	}
	event_del(&c->wev);
	free(c->out);
	if (c->out_len >= HSRV_TRIM_AFTER)
		malloc_trim(0);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	c->state = ST_REQ;
	if (conn_next(c))
		conn_process(c);
}

/* Room for r->oh to grow by `extra` bytes; the first HSRV_HEAD_ROOM bytes
 * are kept for the status line and the transport's headers, written in
 * front of the owner's by hsrv_send. False: out of memory. */
static bool oh_reserve(struct hsrv_req *r, size_t extra)
{
	size_t need, cap;
	char *p;

	if (!r->oh_len)
		r->oh_len = HSRV_HEAD_ROOM;
	need = r->oh_len + extra;
	if (need <= r->oh_cap)
		return true;
	cap = r->oh_cap ? r->oh_cap : 1024;
	while (cap < need)
		cap *= 2;
	if (!(p = realloc(r->oh, cap)))
		return false;
	r->oh = p;
	r->oh_cap = cap;
	return true;
}

/* Write the reply hsrv_send prepared: one sendmsg, the rest (if any) from
 * c->out as the socket takes it. Returns true when the connection is ready
 * for its next request (conn_next), false when it writes on, closed or
 * lingers. Never called while the owner's callback is on the stack, so
 * the call is released (and counted so) before its client can see the
 * reply. */
static bool conn_flush(struct hsrv_conn *c)
{
	struct hsrv_req *r = &c->req;
	struct iovec iov[2] = {{r->oh + c->ph_start, r->oh_len - c->ph_start},
			       {c->pbody, c->pbody_len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = c->pbody_len ? 2 : 1};
	size_t total = iov[0].iov_len + iov[1].iov_len, sent;
	ssize_t n;

	c->reply_ready = false;
	if (c->broken)
		goto written; /* hsrv_send had no memory for the head */
	n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		c->broken = true; /* the client is gone */
		n = (ssize_t)total;
	}
	sent = n > 0 ? (size_t)n : 0;
	if (sent < total) {
		/* the rest waits for the socket, in one buffer */
		size_t off = 0, skip = sent;
		if (!(c->out = malloc(total - sent))) {
			c->broken = true;
			goto written;
		}
		c->out_len = total - sent;
		c->out_off = 0;
		for (int i = 0; i < (int)mh.msg_iovlen; i++) {
			size_t l = iov[i].iov_len;
			if (skip >= l) {
				skip -= l;
				continue;
			}
			memcpy(c->out + off, (char *)iov[i].iov_base + skip, l - skip);
			off += l - skip;
			skip = 0;
		}
		free(c->pbody);
		c->pbody = NULL;
		c->state = ST_WRITE;
		event_add(&c->wev, NULL);
		deadline_set(c, DL_SEND, c->s->lim.send_timeout_ms);
		return false;
	}
written:
	free(c->pbody);
	c->pbody = NULL;
	c->pbody_len = 0;
	return conn_next(c);
}

void hsrv_send(struct hsrv_req *r, int status, const char *ctype, char *body, size_t len)
{
	struct hsrv_conn *c = r->c;
	struct hsrv *s = c->s;
	char head[HSRV_HEAD_ROOM];
	int hl;
	bool no_body = status == 204 || status == 304 || status < 200;

	if (r->answered) {
		free(body);
		return;
	}
	r->answered = true;
	if (no_body) {
		free(body);
		body = NULL;
		len = 0;
	}
	if (s->draining || !r->parsed || !r->keep_alive)
		c->close_after = true;
	hl = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n%s", status, reason_of(status),
		      date_line(s));
	if (!no_body)
		hl += snprintf(head + hl, sizeof(head) - (size_t)hl,
			       "Content-Type: %.200s\r\nContent-Length: %zu\r\n",
			       ctype ? ctype : "application/json", len);
	if (c->close_after)
		hl += snprintf(head + hl, sizeof(head) - (size_t)hl, "Connection: close\r\n");
	else if (r->version_minor == 0)
		hl += snprintf(head + hl, sizeof(head) - (size_t)hl, "Connection: keep-alive\r\n");
	if (hl >= (int)sizeof(head))
		hl = (int)sizeof(head) - 1; /* cannot happen: 200 bytes of type at most */
	if (r->head_only) {
		free(body);
		body = NULL;
		len = 0;
	}
	atomic_fetch_add_explicit(&s->unsent, 1, memory_order_relaxed);
	c->counted_unsent = true;
	if (!oh_reserve(r, 2)) {
		free(body);
		c->broken = true; /* no memory for the head: the connection ends */
		r->oh_len = 0;
		c->ph_start = 0;
		c->pbody = NULL;
		c->pbody_len = 0;
	} else {
		/* the whole head in one block: ours in front of the owner's */
		memcpy(r->oh + r->oh_len, "\r\n", 2);
		r->oh_len += 2;
		c->ph_start = HSRV_HEAD_ROOM - (size_t)hl;
		memcpy(r->oh + c->ph_start, head, (size_t)hl);
		c->pbody = body;
		c->pbody_len = len;
	}
	c->reply_ready = true;
	/* written once the caller is done: inside the owner's request or
	 * refuse callback, conn_process (or conn_refuse) flushes when it
	 * returns; a held request's reply goes out on the loop's next pass */
	if (!c->in_owner)
		event_active(&c->rev, EV_READ, 0);
}

void hsrv_add_header(struct hsrv_req *r, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);

	if (!oh_reserve(r, nl + vl + 4))
		return; /* a header lost to out of memory: the reply still goes */
	memcpy(r->oh + r->oh_len, name, nl);
	memcpy(r->oh + r->oh_len + nl, ": ", 2);
	memcpy(r->oh + r->oh_len + nl + 2, value, vl);
	memcpy(r->oh + r->oh_len + nl + 2 + vl, "\r\n", 2);
	r->oh_len += nl + vl + 4;
}

/* ---- a request's accessors -------------------------------------------- */

bool hsrv_req_parsed(const struct hsrv_req *r)
{
	return r->parsed;
}

enum hsrv_method hsrv_req_method(const struct hsrv_req *r)
{
	return r->method;
}

const char *hsrv_req_method_name(const struct hsrv_req *r)
{
	return r->parsed ? r->c->in + r->method_off : "?";
}

const char *hsrv_req_path(const struct hsrv_req *r)
{
	return r->parsed ? r->c->in + r->path_off : NULL;
}

const char *hsrv_req_query(const struct hsrv_req *r)
{
	return r->parsed && r->query_off ? r->c->in + r->query_off : NULL;
}

const char *hsrv_req_header(const struct hsrv_req *r, const char *name)
{
	for (unsigned i = 0; r->parsed && i < r->nfields; i++)
		if (strcasecmp(r->c->in + r->fields[i].name, name) == 0)
			return r->c->in + r->fields[i].value;
	return NULL;
}

unsigned hsrv_req_nheaders(const struct hsrv_req *r)
{
	return r->parsed ? r->nfields : 0;
}

void hsrv_req_header_at(const struct hsrv_req *r, unsigned i, const char **name,
			const char **value)
{
	*name = r->c->in + r->fields[i].name;
	*value = r->c->in + r->fields[i].value;
}

const char *hsrv_req_body(const struct hsrv_req *r, size_t *len)
{
	if (r->chunked) {
		*len = r->chunked_len;
		return r->chunked;
	}
	if (r->body_len && r->parsed) {
		*len = (size_t)r->body_len;
		return r->c->in + r->c->head_len;
	}
	*len = 0;
	return "";
}

const char *hsrv_req_peer(struct hsrv_req *r, uint16_t *port)
{
	struct hsrv_conn *c = r->c;

	*port = 0;
	if (c->peer.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&c->peer;
		*port = ntohs(a->sin_port);
		if (!c->peer_str[0])
			inet_ntop(AF_INET, &a->sin_addr, c->peer_str, sizeof(c->peer_str));
	} else if (c->peer.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&c->peer;
		*port = ntohs(a->sin6_port);
		if (!c->peer_str[0])
			inet_ntop(AF_INET6, &a->sin6_addr, c->peer_str, sizeof(c->peer_str));
	}
	return c->peer_str;
}

bool hsrv_req_charge(struct hsrv_req *r, size_t n)
{
	if (!hsrv_budget_take(r->c->s->budget, n))
		return false;
	r->charged += n;
	return true;
}

void hsrv_req_hold(struct hsrv_req *r, void *held)
{
	r->held = held;
}

/* ---- connections -------------------------------------------------------- */

static void conn_close(struct hsrv_conn *c)
{
	struct hsrv *s = c->s;

	if (c->state == ST_REQ && c->req.held && !c->req.answered) {
		void *held = c->req.held;
		c->req.held = NULL;
		c->req.answered = true; /* a late hsrv_send would be a bug; this makes it a no-op */
		s->ops->gone(s->arg, &c->req, held);
	}
	unsent_done(c);
	event_del(&c->rev);
	event_del(&c->wev);
	event_del(&c->tmo);
	evutil_closesocket(c->fd);
	req_reset(&c->req);
	free(c->req.fields);
	free(c->req.oh);
	free(c->pbody);
	free(c->out);
	in_release(c);
	TAILQ_REMOVE(&s->conns, c, link);
	free(c);
	s->nconns--;
	if (s->paused && s->nconns < s->lim.max_connections && s->lev) {
		s->paused = false;
		evconnlistener_enable(s->lev);
	}
}

/* Serve the connected socket `fd` (taken). Returns 0, or -1 (closed). */
static int conn_open(struct hsrv *s, evutil_socket_t fd, const struct sockaddr *sa, int salen)
{
	struct hsrv_conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c) {
		evutil_closesocket(fd);
		return -1;
	}
	c->s = s;
	c->fd = fd;
	c->req.c = c;
	c->req.method = HSRV_OTHER;
	if (sa && salen > 0 && (size_t)salen <= sizeof(c->peer)) {
		memcpy(&c->peer, sa, (size_t)salen);
		c->peer_len = (socklen_t)salen;
	}
	if (sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6))
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, on_read, c);
	event_assign(&c->wev, s->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
	evtimer_assign(&c->tmo, s->base, on_timeout, c);
	if (event_add(&c->rev, NULL) < 0) {
		evutil_closesocket(fd);
		free(c);
		return -1;
	}
	TAILQ_INSERT_TAIL(&s->conns, c, link);
	s->nconns++;
	deadline_set(c, DL_IDLE, s->lim.idle_timeout_ms);
	if (s->nconns >= s->lim.max_connections && !s->paused && s->lev) {
		/* at the limit: new connections wait in the kernel's backlog */
		s->paused = true;
		evconnlistener_disable(s->lev);
	}
	return 0;
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	(void)lev;
	conn_open(arg, fd, sa, salen);
}

int hsrv_adopt(struct hsrv *s, int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (evutil_make_socket_nonblocking(fd) < 0) {
		evutil_closesocket(fd);
		return -1;
	}
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		sl = 0;
	return conn_open(s, fd, sl ? (struct sockaddr *)&ss : NULL, (int)sl);
}

/* accept() failed: out of descriptors would make the listener spin at 100 %
 * CPU retrying; pause it instead. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	struct hsrv *s = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv = {0, HSRV_ACCEPT_PAUSE_MS * 1000};

	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		log_warn(s->log, "accept: %s: not accepting for %d ms", strerror(err),
			 HSRV_ACCEPT_PAUSE_MS);
		evconnlistener_disable(lev);
		evtimer_add(s->resume, &tv);
		return;
	}
	log_warn(s->log, "accept: %s", strerror(err));
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct hsrv *s = arg;

	(void)fd;
	(void)what;
	if (s->lev && !s->paused)
		evconnlistener_enable(s->lev);
}

/* A listener on host:port; SO_REUSEPORT when several loops share it. */
static struct evconnlistener *listen_on(struct hsrv *s, const struct hsrv_options *opt,
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
		lev = evconnlistener_new_bind(s->base, on_accept, s, flags, HSRV_BACKLOG,
					      a->ai_addr, (int)a->ai_addrlen);
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
static struct evconnlistener *listen_unix(struct hsrv *s, const char *path, char *err,
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
	lev = evconnlistener_new(s->base, on_accept, s,
				 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, HSRV_BACKLOG, fd);
	if (!lev) {
		snprintf(err, errlen, "cannot listen on unix:%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
	}
	return lev;
}

int hsrv_create(struct event_base *base, const struct hsrv_options *opt,
		const struct hsrv_ops *ops, void *arg, const struct log *log, struct hsrv **out,
		char *err, size_t errlen)
{
	struct hsrv *s = calloc(1, sizeof(*s));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	*out = NULL;
	if (!s || !(s->resume = evtimer_new(base, on_resume, s)) ||
	    !(s->rbuf = malloc(HSRV_RBUF)) ||
	    !(s->scratch = calloc(opt->limits.h1.max_fields ? opt->limits.h1.max_fields : 1,
				  sizeof(*s->scratch)))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	s->base = base;
	s->ops = ops;
	s->arg = arg;
	s->log = log;
	s->lim = opt->limits;
	if (!s->lim.max_connections)
		s->lim.max_connections = 1;
	s->budget = opt->budget;
	s->date_sec = -1;
	TAILQ_INIT(&s->conns);
	if (!(s->lev = opt->unix_path ? listen_unix(s, opt->unix_path, err, errlen)
				      : listen_on(s, opt, err, errlen)))
		goto fail;
	if (opt->unix_path && !(s->unix_path = strdup(opt->unix_path))) {
		unlink(opt->unix_path);
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	evconnlistener_set_error_cb(s->lev, on_accept_error);
	if (getsockname(evconnlistener_get_fd(s->lev), (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	*out = s;
	return 0;
fail:
	if (s) {
		if (s->lev)
			evconnlistener_free(s->lev);
		if (s->resume)
			event_free(s->resume);
		free(s->scratch);
		free(s->rbuf);
		free(s);
	}
	return -1;
}

uint16_t hsrv_port(const struct hsrv *s)
{
	return s->port;
}

void hsrv_drain(struct hsrv *s)
{
	struct hsrv_conn *c, *next;

	evtimer_del(s->resume);
	if (s->lev) {
		evconnlistener_free(s->lev);
		s->lev = NULL;
	}
	s->draining = true;
	for (c = TAILQ_FIRST(&s->conns); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->state == ST_HEAD && !c->in_len)
			conn_close(c); /* idle keep-alive */
		else
			c->close_after = true;
	}
}

unsigned hsrv_unsent(const struct hsrv *s)
{
	return atomic_load_explicit(&s->unsent, memory_order_relaxed);
}

unsigned hsrv_connections(const struct hsrv *s)
{
	return s->nconns;
}

void hsrv_free(struct hsrv *s)
{
	struct hsrv_conn *c;

	if (!s)
		return;
	while ((c = TAILQ_FIRST(&s->conns))) {
		c->req.held = NULL; /* no gone: nobody holds it any more */
		conn_close(c);
	}
	if (s->lev)
		evconnlistener_free(s->lev);
	if (s->unix_path) {
		unlink(s->unix_path);
		free(s->unix_path);
	}
	event_free(s->resume);
	free(s->scratch);
	free(s->rbuf);
	free(s);
}
