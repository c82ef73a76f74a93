/*
 * h1_drive -- a connection's read side around host/h1, as the transport
 * will drive it: bytes of a stream arrive in pieces (ending at the given
 * cuts), the head is parsed, the body decoded, and pipelined requests follow
 * one another until the stream ends, a refusal closes the connection, or a
 * request asks to close it.
 *
 * Every time bytes arrive, the unread ones are copied into a new buffer of
 * exactly their size (the old one freed), so that a parser that keeps a
 * pointer across calls or reads past what it was given trips ASan.
 * Invariants are checked on the way (consumed within what was given, every
 * pointer of the request inside the buffer, decoded body length equal to
 * Content-Length, chunked bodies within max_body); the first one broken is
 * named in `violation`.
 *
 * Shared by tests/unit/test_h1.c and the fuzzer (tests/fuzz/fuzz_h1.c): no
 * Criterion here.
 */
#ifndef HOOKD_TEST_H1_DRIVE_H
#define HOOKD_TEST_H1_DRIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../host/h1.h"

#define H1D_MAX_REQS 64
#define H1D_KEEP     256  /* bytes of method, target and body kept per request */

/* One request of the stream as the connection saw it. */
struct h1d_req {
	int status;          /* 0: head and body complete; else the refusal */
	const char *why;     /* the refusal's reason (a literal) */
	bool must_close;
	bool head_done;      /* the head was parsed (request fields below valid) */
	char method[H1D_KEEP], target[H1D_KEEP];
	int version_minor;
	unsigned nfields;
	bool chunked, has_length, keep_alive, expect_continue, has_host;
	uint64_t content_length;
	size_t head_len;
	uint64_t body_len;   /* decoded */
	uint64_t body_hash;  /* FNV-1a of the decoded body */
	char body[H1D_KEEP]; /* its first bytes, NUL-terminated */
};

struct h1d_outcome {
	unsigned nreq;
	struct h1d_req req[H1D_MAX_REQS];
	bool incomplete;       /* the stream ended inside a request */
	bool closed;           /* stopped by a refusal or Connection: close */
	size_t used;           /* bytes of the stream consumed by finished requests */
	const char *violation; /* NULL, or the first invariant broken */
};

/* Drive stream[0..n) arriving in pieces that end at cuts[0..ncuts)
 * (ascending; cuts outside (0, n) are ignored; the last piece ends at n)
 * with limits `lim` and max_body. Fills *out (caller storage). */
void h1d_run(const char *stream, size_t n, const size_t *cuts, size_t ncuts,
	     const struct h1_limits *lim, uint64_t max_body, struct h1d_outcome *out);

/* NULL if a and b are the same outcome, else what differs. */
const char *h1d_diff(const struct h1d_outcome *a, const struct h1d_outcome *b);

/*
 * One fuzzer input (tests/fuzz/fuzz_h1.c; the seed corpus is replayed by
 * test_h1): data[0] & 15 = the number of cuts k; data[1] = the settings
 * (bit 0: tiny limits, so that 414/431 and the chunk bounds are reached;
 * bits 1-2: max_body 0, 16, 1 MiB or none); then k bytes, each the length of
 * a piece (0 counts as 1); the rest is the stream. The stream is driven
 * whole, in those pieces and (when short) one byte at a time. Returns NULL,
 * or the invariant broken or the difference between the runs.
 */
const char *h1d_check_input(const uint8_t *data, size_t size);

#endif
