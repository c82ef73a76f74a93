/*
 * inbound -- the HTTP request behind a hook call, as plugins see it
 * (hookd_inbound, sdk/hookd.h): one immutable block, built by the transport
 * (http.c) or read off the wire (runner.c), shared by every step of the
 * call and by its on_error and after phases.
 *
 * Lifetimes: reference-counted, on one loop thread only (the call and
 * every phase of it live on the loop that took the request). Plugins on
 * worker threads only read it, while their step holds the call, which
 * holds a reference.
 */
#ifndef HOOKD_INBOUND_H
#define HOOKD_INBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hookd.h>

#include "json.h"

struct inbound {
	hookd_inbound pub; /* every pointer points into this block */
	unsigned refs;
	bool reply_sent;   /* decoded for an isolated `after` step: its reply is sent
	                    * (the host's own calls know it from their phase) */
};

/* What the transport copies in. Strings may be NULL ("" then). */
struct inbound_parts {
	const char *hook, *method, *path, *query, *client_addr, *request_id, *content_type;
	uint16_t client_port;
	const char *body;
	size_t body_len;
	const hookd_header *headers;
	size_t nheaders;
};

/* Copy `p` into one new block (one reference). NULL: out of memory. */
struct inbound *inbound_new(const struct inbound_parts *p);

struct inbound *inbound_ref(struct inbound *in);
/* Drop a reference (NULL is fine); the last one frees. */
void inbound_unref(struct inbound *in);

/* The first header called `name` (case-insensitive), or NULL. Borrowed. */
const char *inbound_header(const hookd_inbound *in, const char *name);

/* The wire form (runner.c's CALL frame): append `in` to `b` / read one back
 * from [*p, end) (advancing *p). Returns 0, or -ENOMEM / -EINVAL (short or
 * malformed). */
int inbound_encode(const hookd_inbound *in, bool reply_sent, struct jbuf *b);
int inbound_decode(const char **p, const char *end, struct inbound **out);

#endif
