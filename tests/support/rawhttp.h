/*
 * rawhttp -- a small HTTP/1.x client over a raw loopback TCP socket, for the
 * tests that must control every byte on the wire (malformed requests,
 * pipelining, partial heads, clients that stop reading) and see exactly
 * what the server does with the connection afterwards (closed or kept).
 *
 * A connection keeps the bytes it received and has not handed out yet, so
 * pipelined replies are read one after the other. The socket is
 * non-blocking; every wait is a poll() bounded by a timeout, and every
 * timeout_ms below is multiplied by hd_scale() (TSan runs ~10x slower).
 *
 * Replies are read by the rules a strict client uses: a CRLF status line
 * and header lines (names compared case-insensitively), no body for 1xx,
 * 204, 304 or a reply to HEAD, else Content-Length bytes, else (no length)
 * everything until the server closes. A chunked reply is refused as
 * malformed: hookd sets Content-Length on every reply.
 *
 * A server that closes after its reply may reset the connection (it closed
 * with request bytes unread); Linux still hands out the bytes received
 * before the reset, then ECONNRESET, which counts as "closed" here.
 */
#ifndef HOOKD_TEST_RAWHTTP_H
#define HOOKD_TEST_RAWHTTP_H

#include <stdbool.h>
#include <stddef.h>

enum {
	RH_OK = 0,
	RH_AGAIN = -1,     /* rh_parse: the buffer holds no complete reply yet */
	RH_TIMEOUT = -2,   /* nothing (more) arrived before the timeout */
	RH_CLOSED = -3,    /* the server closed (EOF) or reset the connection */
	RH_MALFORMED = -4, /* the bytes are not an HTTP/1.x reply */
};

struct rh_conn {
	int fd;
	char *buf;        /* received, not yet handed out; NUL-terminated */
	size_t len, cap;
	bool closed;      /* EOF or reset seen */
	int err;          /* errno of the reset (ECONNRESET...), 0 for a clean EOF */
};

struct rh_header {
	char *name;
	char *value;      /* surrounding whitespace trimmed */
};

struct rh_reply {
	char version[16];        /* "HTTP/1.1" */
	int status;
	char reason[64];
	struct rh_header *headers;
	size_t nheaders;
	long long content_length; /* -1: no Content-Length header */
	char *body;              /* NUL-terminated (may hold NULs), never NULL after RH_OK */
	size_t body_len;
	size_t wire_len;         /* bytes of the whole reply on the wire */
};

/* Connect to 127.0.0.1:port (asserts). rcvbuf/sndbuf > 0 set SO_RCVBUF /
 * SO_SNDBUF before connecting (a client that does not read, with small
 * kernel buffers), 0 keeps the defaults. */
void rh_connect(struct rh_conn *c, int port);
void rh_connect_bufs(struct rh_conn *c, int port, int rcvbuf, int sndbuf);
void rh_close(struct rh_conn *c);

/* Send n bytes, waiting up to timeout_ms for the socket to take them.
 * RH_OK when all went out; RH_TIMEOUT when the server stopped taking bytes
 * (*sent says how many went); RH_CLOSED when it closed or reset. sent may
 * be NULL. */
int rh_send_some(struct rh_conn *c, const void *p, size_t n, int timeout_ms, size_t *sent);
/* All of it within 10 s (asserts). */
void rh_send(struct rh_conn *c, const void *p, size_t n);
void rh_send_str(struct rh_conn *c, const char *s);

/* Wait up to timeout_ms (0: do not wait) for bytes and append what is
 * readable to the buffer: the number of bytes read (> 0), RH_TIMEOUT, or
 * RH_CLOSED (nothing read and the server has closed). */
int rh_fill(struct rh_conn *c, int timeout_ms);

/* Take one complete reply out of the buffer without reading: RH_OK,
 * RH_AGAIN (incomplete: rh_fill more), RH_MALFORMED. A reply without a
 * length is complete only once the connection is closed. head: it answers
 * a HEAD request (no body whatever Content-Length says). */
int rh_parse(struct rh_conn *c, struct rh_reply *r, bool head);

/* rh_parse, reading as needed, until one reply is complete or timeout_ms
 * passed: RH_OK, RH_TIMEOUT, RH_CLOSED (closed before the reply was
 * complete), RH_MALFORMED. An interim 1xx reply is returned like any other. */
int rh_read_reply(struct rh_conn *c, struct rh_reply *r, int timeout_ms, bool head);

/* After a reply: does the server close the connection? Waits up to
 * timeout_ms for an event. RH_CLOSED: EOF/reset and no byte before it;
 * RH_TIMEOUT: still open and silent; RH_OK: bytes arrived (kept in the
 * buffer). A byte already buffered answers RH_OK at once. */
int rh_wait_close(struct rh_conn *c, int timeout_ms);

/* First header `name` (case-insensitive), or NULL. */
const char *rh_header(const struct rh_reply *r, const char *name);
/* How many headers are named `name`. */
int rh_header_count(const struct rh_reply *r, const char *name);
/* Does some `name` header hold `token` in its comma list (case-insensitive)? */
bool rh_header_has_token(const struct rh_reply *r, const char *name, const char *token);

void rh_reply_free(struct rh_reply *r);

/* "RH_OK", "RH_TIMEOUT", ... for assertion messages. */
const char *rh_result_str(int rc);
/* The start of the unread buffer, printable (\r \n shown escaped), for
 * assertion messages. Static buffer. */
const char *rh_peek(const struct rh_conn *c);

#endif
