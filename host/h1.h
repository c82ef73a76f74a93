/*
 * h1 -- a strict HTTP/1.x request parser for the subset hookd serves:
 * request line, header fields, Content-Length and chunked bodies. It is the
 * bottom of hookd's own server transport and knows nothing else: no socket,
 * no event loop, no routing, no allocation.
 *
 * Bytes arrive in pieces. A connection keeps its unread bytes in one buffer
 * (which may move between calls: the parser keeps offsets, not pointers)
 * and calls
 *   1. h1_head_parse() with the whole unread buffer until it answers
 *      H1_HEAD_DONE (or H1_ERROR); `consumed` is then the head's length;
 *   2. h1_body_init() once the request is routed and the hook's max_body is
 *      known: a Content-Length over it is refused there, before any body byte
 *      is read or a "100 Continue" is sent;
 *   3. h1_body_feed() with the bytes after the head until H1_DONE; decoded
 *      body bytes go to a sink; `consumed` says exactly where the body ended,
 *      and whatever follows is the next (pipelined) request.
 *
 * Every refusal is an HTTP status (400 413 414 417 431 501 505) with a
 * one-line reason (a string literal) and `must_close`: true wherever the
 * framing can no longer be trusted (the connection then cannot carry another
 * request). The rules, decided once:
 *   - request line: METHOD SP origin-form SP HTTP/1.x CRLF; `*` only with
 *     OPTIONS; absolute-form and authority-form are refused (400); HTTP/1.0
 *     and 1.1 are served, any other well-formed version is 505 (the HTTP/2
 *     preface "PRI * HTTP/2.0" too), a malformed one (HTTP/0.9's bare
 *     "GET /") 400; a line over max_line 414. Empty lines before it (CRLF
 *     only) are skipped and counted against max_line.
 *   - line endings are CRLF, a bare LF or a CR without LF is 400 anywhere.
 *   - field names are tokens (an empty name, whitespace before the colon or a
 *     line starting with whitespace, obs-fold, are 400); values hold no NUL,
 *     no CTL but HTAB; OWS around the value is trimmed. Over max_fields or
 *     max_headers bytes: 431.
 *   - Content-Length is plain decimal digits that fit in 64 bits; several are
 *     accepted only if byte-identical (RFC 9112 6.3), else 400.
 *   - Transfer-Encoding (all of its fields, as one list) must end with
 *     `chunked` (any case), once: `chunked` not last or repeated is 400, any
 *     other coding is 501 (none is supported); with Content-Length, or in an
 *     HTTP/1.0 request, 400.
 *   - HTTP/1.1 needs exactly one Host (none or two: 400); a Host that is
 *     not uri-host[:port] is 400 (RFC 9112 3.2).
 *   - the head never holds more than max_line + 2 + max_headers bytes
 *     unanswered: a caller's buffer for it stays bounded.
 *   - Expect: 100-continue sets expect_continue (ignored for HTTP/1.0, as
 *     RFC 9110 10.1.1 says); any other expectation is 417.
 *   - Connection: a comma list; `close` wins, `keep-alive` keeps an HTTP/1.0
 *     connection open; HTTP/1.1 keeps it open by default.
 *   - chunked: hex digits only for the size (no 0x, sign or spaces), 64-bit
 *     overflow refused, extensions `;name[=token|"quoted"]` checked and
 *     bounded (max_chunk_line), CRLF after each chunk's data checked,
 *     trailer fields checked like header fields, bounded (max_trailers,
 *     431) and ignored.
 *   - a body over max_body: 413 when Content-Length says so (h1_body_init),
 *     or as soon as a chunk size takes the running total over it.
 * Left to the transport: timeouts (408), and whether a request without a
 * body framing (has_length and chunked both false: an empty body here) must
 * be a 411.
 *
 * Threading: none of it is shared; a parser and a decoder belong to the one
 * thread that drives their connection. All functions are reentrant.
 */
#ifndef HOOKD_H1_H
#define HOOKD_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct h1_limits {
	size_t max_line;       /* request line (CRLF excluded), 8 KiB -> 414 */
	size_t max_headers;    /* bytes of the header block after the request line,
				* final CRLF included, 64 KiB -> 431 */
	unsigned max_fields;   /* header fields, 100 -> 431 */
	size_t max_chunk_line; /* a chunk-size line with its extensions, 1 KiB -> 400 */
	size_t max_trailers;   /* bytes of the trailer section, 8 KiB -> 431 */
};

#define H1_MAX_LINE_DEFAULT       8192
#define H1_MAX_HEADERS_DEFAULT    65536
#define H1_MAX_FIELDS_DEFAULT     100
#define H1_MAX_CHUNK_LINE_DEFAULT 1024
#define H1_MAX_TRAILERS_DEFAULT   8192

/* The defaults above. */
void h1_limits_default(struct h1_limits *lim);

enum h1_status {
	H1_MORE = 0,  /* head incomplete: call again with more bytes */
	H1_HEAD_DONE, /* head parsed, request filled, consumed = head length */
	H1_BODY,      /* body incomplete: all input consumed, feed more */
	H1_DONE,      /* body complete, consumed = where it ended */
	H1_ERROR,     /* refused: see struct h1_error */
};

/* A refusal. `why` is a string literal (never freed). */
struct h1_error {
	int status;       /* 400 413 414 417 431 501 505, or the sink's status */
	const char *why;  /* one line, no quotes, for the JSON error body */
	bool must_close;  /* the framing cannot be trusted: answer, then close */
};

/* One header field; name and value point into the caller's buffer. */
struct h1_field {
	const char *name, *value;
	size_t name_len, value_len;  /* value without surrounding OWS */
};

/* Filled at H1_HEAD_DONE; every string points into the buffer given to that
 * call and lives as long as those bytes do. */
struct h1_request {
	const char *method;
	size_t method_len;
	const char *target;
	size_t target_len;
	int version_minor;        /* 0 or 1 (HTTP/1.0, HTTP/1.1) */
	struct h1_field *fields;  /* the caller's storage, in arrival order */
	unsigned nfields;
	bool chunked;             /* Transfer-Encoding: chunked */
	bool has_length;          /* Content-Length given */
	uint64_t content_length;
	bool keep_alive;          /* the client allows another request after this one */
	bool expect_continue;     /* Expect: 100-continue (HTTP/1.1) */
	bool has_host;
};

/* The head parser's state across calls: offsets only, so the caller's
 * buffer may move between calls as long as the bytes already given stay at
 * the start of it. Zero it (or h1_head_init) for each request. */
struct h1_head {
	size_t scanned;      /* bytes examined */
	size_t line_start;   /* offset of the line being read */
	size_t req_start;    /* offset of the request line (after empty lines) */
	size_t block_start;  /* offset of the first field line */
	unsigned nfields;
	bool in_fields;      /* past the request line */
};

void h1_head_init(struct h1_head *h);

/*
 * Parse the head at buf[0..len): the bytes of this request so far (those
 * given to the previous call, then new ones; buf may have moved).
 * `fields` is caller storage for lim->max_fields entries; req->fields is set
 * to it. Returns
 *   H1_MORE       need more bytes (*req and fields are scratch until
 *                 H1_HEAD_DONE);
 *   H1_HEAD_DONE  *req filled, *consumed = head length (the body, or the
 *                 next request, starts at buf + *consumed);
 *   H1_ERROR      *err filled. A refusal found once the whole head is in
 *                 (400 for Host, 417) sets *consumed and fills *req too, and
 *                 must_close is false when no body follows and the client
 *                 keeps the connection: the caller may answer and go on at
 *                 buf + *consumed. Otherwise *consumed is 0.
 * After H1_HEAD_DONE or H1_ERROR, h1_head_init before the next request.
 * Borrows everything; keeps no pointer after returning.
 */
enum h1_status h1_head_parse(struct h1_head *h, const char *buf, size_t len,
			     const struct h1_limits *lim, struct h1_request *req,
			     struct h1_field *fields, size_t *consumed, struct h1_error *err);

/* Receives decoded body bytes (a pointer into the caller's input, valid
 * during the call only). Returns 0, or an HTTP status (>= 400: e.g. 503 for
 * a memory budget) that stops decoding: h1_body_feed then fails with it. */
typedef int (*h1_sink_fn)(void *arg, const char *data, size_t n);

struct h1_body {
	uint64_t max_body;
	uint64_t total;       /* decoded bytes so far */
	uint64_t remaining;   /* of the Content-Length body, or of the current chunk */
	size_t line_len;      /* bytes of the current chunk-size line */
	size_t trailer_len;   /* bytes of the trailer section so far */
	size_t max_chunk_line, max_trailers;
	int state;            /* private, as are the rest */
	unsigned digits;      /* hex digits of the current chunk size */
	int err_status;       /* a failed decoder keeps failing the same way */
	const char *err_why;
};

/*
 * Prepare `b` for the body `req` announces (Content-Length, chunked, or
 * none: an empty body), refusing more than max_body decoded bytes
 * (UINT64_MAX: no limit). Returns 0, or -1 with *err (413, must_close) when
 * Content-Length is over max_body. Call it before sending 100 Continue.
 * Reads req and lim only during the call.
 */
int h1_body_init(struct h1_body *b, const struct h1_request *req, const struct h1_limits *lim,
		 uint64_t max_body, struct h1_error *err);

/*
 * Decode in[0..n), the bytes that follow what earlier calls consumed.
 * Decoded bytes go to sink(arg, ...) (sink NULL: discarded). Returns
 *   H1_BODY   all n bytes consumed (*consumed = n), the body goes on;
 *   H1_DONE   the body ended after *consumed bytes (the rest is the next
 *             request); further calls return H1_DONE with *consumed 0;
 *   H1_ERROR  *err filled (must_close always); *consumed = bytes used.
 * Borrows in; keeps nothing after returning.
 */
enum h1_status h1_body_feed(struct h1_body *b, const char *in, size_t n, size_t *consumed,
			    h1_sink_fn sink, void *arg, struct h1_error *err);

/* Case-insensitive comparison of a field name with a NUL-terminated
 * lower-case name ("content-type"). */
bool h1_name_is(const struct h1_field *f, const char *lower);

/* The first field called `lower` (see h1_name_is), or NULL. */
const struct h1_field *h1_field_find(const struct h1_request *req, const char *lower);

#endif
