/*
 * hsrv -- hookd's HTTP/1.x server transport: a listener, its connections
 * and their requests, on raw libevent events over non-blocking sockets,
 * with h1.h's strict parser. It knows nothing of hooks, JSON or plugins:
 * whole requests go up to its owner (http.c) through struct hsrv_ops, and
 * the owner answers each one exactly once with hsrv_send.
 *
 * A connection serves one request at a time, in arrival order: the next
 * pipelined request is parsed only once the reply before it is written
 * out, so a connection never holds more than one reply (a client that does
 * not read its replies stops being read), and reads ahead at most
 * HSRV_READ_AHEAD bytes while its request runs. The read event stays armed
 * meanwhile, so a client that hangs up is noticed at once and its held
 * request reported `gone`.
 *
 * Refusals (malformed framing, limits, timeouts) go to ops->refuse with the
 * status and a one-line reason, and are answered by the owner like any
 * other request; the transport adds Connection: close and closes wherever
 * the framing can no longer be trusted (see h1.h for the rules), lingering
 * to read what the client still sends so that it sees the answer instead
 * of a reset.
 *
 * Every reply: one sendmsg (status line, Date, Content-Type,
 * Content-Length, the owner's headers, the body); HEAD gets the headers of
 * the reply it would get; 204 gets no body, Content-Type or
 * Content-Length.
 *
 * Threading: a server and everything under it belong to the thread that
 * runs its event base; only hsrv_unsent and the budget are read or charged
 * from any thread.
 */
#ifndef HOOKD_HSRV_H
#define HOOKD_HSRV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "h1.h"
#include "log.h"

#define HSRV_READ_AHEAD (64 * 1024) /* bytes read past a request while it runs */

/* The transport's limits (config "http"; the defaults below). */
struct hsrv_limits {
	struct h1_limits h1;        /* max_line 414, max_header_bytes/max_headers 431 */
	unsigned max_connections;   /* open connections of this server; then the
	                             * listener pauses until one closes */
	uint32_t header_timeout_ms; /* first byte of a request .. its whole head: 408 */
	uint32_t body_timeout_ms;   /* between two reads of a body: 408 */
	uint32_t idle_timeout_ms;   /* no request in progress: closed */
	uint32_t send_timeout_ms;   /* a reply making no progress: closed */
};

#define HSRV_MAX_CONNECTIONS_DEFAULT 10000
#define HSRV_HEADER_TIMEOUT_DEFAULT  10000
#define HSRV_BODY_TIMEOUT_DEFAULT    30000
#define HSRV_IDLE_TIMEOUT_DEFAULT    60000
#define HSRV_SEND_TIMEOUT_DEFAULT    60000

void hsrv_limits_default(struct hsrv_limits *lim);

/* The memory budget of requests in flight, shared by every server of the
 * process (any thread): buffered request bytes past a connection's first
 * HSRV_INBUF, decoded chunked bodies, and what the owner charges for the
 * trees it parses (hsrv_req_charge). limit 0: none. */
struct hsrv_budget {
	atomic_size_t used;
	size_t limit;
};

/* Take `n` bytes of the budget; false (nothing taken) when it would pass
 * the limit. */
bool hsrv_budget_take(struct hsrv_budget *b, size_t n);
void hsrv_budget_give(struct hsrv_budget *b, size_t n);

struct hsrv;
struct hsrv_req;

enum hsrv_method {
	HSRV_GET, HSRV_HEAD, HSRV_POST, HSRV_PUT, HSRV_DELETE, HSRV_PATCH, HSRV_OPTIONS,
	HSRV_OTHER, /* only before the head is parsed (a refusal) */
};

struct hsrv_ops {
	/* The head of `req` is in: the largest body it may have
	 * (UINT64_MAX: none), and in *what a few words naming that limit
	 * for the 413 ("the hook's max_body"), or NULL. */
	uint64_t (*body_limit)(void *arg, struct hsrv_req *req, const char **what);
	/* A whole request: answer it with hsrv_send now, or hsrv_req_hold it
	 * and answer later. */
	void (*request)(void *arg, struct hsrv_req *req);
	/* The transport refuses `req` with `status` (400 408 411 413 414 417
	 * 431 501 503 505) for `why` (one line): answer it now with hsrv_send.
	 * Its method, path and headers are there only when
	 * hsrv_req_parsed(req). */
	void (*refuse)(void *arg, struct hsrv_req *req, int status, const char *why);
	/* The connection of a held request is gone (the client hung up, or
	 * reading it failed): `req` is freed when this returns, and must not
	 * be answered. `held` is what hsrv_req_hold was given. */
	void (*gone)(void *arg, struct hsrv_req *req, void *held);
};

struct hsrv_options {
	const char *host;       /* address to bind ("0.0.0.0", "::1", "localhost") */
	const char *unix_path;  /* non-NULL: a Unix socket instead (mode 0660) */
	uint16_t port;          /* 0: an ephemeral port */
	bool reuse_port;        /* SO_REUSEPORT: several loops accept on one port */
	struct hsrv_limits limits;
	struct hsrv_budget *budget; /* shared, outlives the server; NULL: none */
};

/* Bind and start serving on `base`. `ops` and `arg` are borrowed and
 * outlive the server. Returns 0 and *out, or -1 with a reason in err. */
int hsrv_create(struct event_base *base, const struct hsrv_options *opt,
		const struct hsrv_ops *ops, void *arg, const struct log *log, struct hsrv **out,
		char *err, size_t errlen);

/* Serve the connected stream socket `fd` (taken, made non-blocking) as if
 * it had been accepted: tests and the fuzzer drive a server through a
 * socketpair. Returns 0, or -1 (fd closed). */
int hsrv_adopt(struct hsrv *s, int fd);

/* The port bound (0 for a Unix socket). */
uint16_t hsrv_port(const struct hsrv *s);

/* Stop accepting (the listener is closed), close idle connections, and
 * close every other one after its current reply (Connection: close). */
void hsrv_drain(struct hsrv *s);

/* Replies handed to hsrv_send and not written out yet. Any thread. */
unsigned hsrv_unsent(const struct hsrv *s);

/* Open connections (this server's thread). */
unsigned hsrv_connections(const struct hsrv *s);

/* Close every connection (held requests are dropped without `gone`: no
 * call may still use them) and free the server. */
void hsrv_free(struct hsrv *s);

/* ---- a request: borrowed from the transport, valid until it is answered
 * (hsrv_send) or reported gone. Strings are NUL-terminated. */

bool hsrv_req_parsed(const struct hsrv_req *r);      /* the head was parsed */
enum hsrv_method hsrv_req_method(const struct hsrv_req *r);
const char *hsrv_req_method_name(const struct hsrv_req *r); /* "?" unparsed */
const char *hsrv_req_path(const struct hsrv_req *r);  /* the target before '?', or NULL */
const char *hsrv_req_query(const struct hsrv_req *r); /* after '?', or NULL */
/* The first header called `name` (case-insensitive), or NULL. */
const char *hsrv_req_header(const struct hsrv_req *r, const char *name);
unsigned hsrv_req_nheaders(const struct hsrv_req *r);
void hsrv_req_header_at(const struct hsrv_req *r, unsigned i, const char **name,
			const char **value);
/* The decoded body (not NUL-terminated; "" when empty). */
const char *hsrv_req_body(const struct hsrv_req *r, size_t *len);
/* The client's address ("" for a Unix socket) and port. */
const char *hsrv_req_peer(struct hsrv_req *r, uint16_t *port);

/* Charge `n` more bytes to the budget for as long as the request lives
 * (a parsed tree). False: over the budget, nothing charged. */
bool hsrv_req_charge(struct hsrv_req *r, size_t n);

/* The reply is given later: until then a hang-up calls ops->gone(arg,
 * r, held). */
void hsrv_req_hold(struct hsrv_req *r, void *held);

/* Add a reply header (copied; the caller vouches for its syntax: no CR/LF). */
void hsrv_add_header(struct hsrv_req *r, const char *name, const char *value);

/* Answer `r` with `status` and `body` (malloc'd, taken; NULL with len 0:
 * none) of type `ctype`. Ends the request. */
void hsrv_send(struct hsrv_req *r, int status, const char *ctype, char *body, size_t len);

#endif
