/*
 * wire -- the frames hookd and an isolated plugin's process (runner.c)
 * exchange over their socketpair. Both ends are the same binary, so the
 * frames are in host byte order; every frame is length-prefixed:
 *
 *   u32 len (of what follows the 16-byte header) | u8 type | 3 x 0 | u64 id | payload
 *
 *   host -> child  INIT    JSON text: what to load and how (isolate.c)
 *                  CALL    u32 timeout_ms, u16 hook length, hook, u32 request
 *                          length, request (inbound_encode; 0: none), input JSON text
 *                  CANCEL  (empty): the host gave up on call `id`
 *   child -> host  READY   JSON text {"pid": n}: the plugin is loaded and initialised
 *                  FAILED  text: why loading or init failed (the child then exits)
 *                  RESULT  u32 outcome (enum dispatch_outcome), u32 plugin status,
 *                          u32 error length, error, u32 reply length, reply
 *                          (reply_encode; 0: none), output JSON text (outcome ok)
 */
#ifndef HOOKD_WIRE_H
#define HOOKD_WIRE_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "json.h"

enum wire_type {
	WIRE_INIT = 1,
	WIRE_CALL,
	WIRE_CANCEL,
	WIRE_READY,
	WIRE_FAILED,
	WIRE_RESULT,
};

#define WIRE_HEADER 16u
/* A frame larger than this is a broken peer (the output limit is 1 GiB). */
#define WIRE_MAX_FRAME ((uint32_t)1 << 31)

struct wire_frame {
	uint32_t len;
	uint8_t type;
	uint64_t id;
	const char *payload; /* points into the buffer it was read from */
};

/* Append a frame header to `b` (the payload follows with jbuf_append).
 * Returns 0, -ENOMEM or -E2BIG. */
static inline int wire_put_header(struct jbuf *b, uint8_t type, uint64_t id, uint32_t len)
{
	unsigned char h[WIRE_HEADER] = {0};

	memcpy(h, &len, 4);
	h[4] = type;
	memcpy(h + 8, &id, 8);
	return jbuf_append(b, h, sizeof(h));
}

static inline int wire_put_u32(struct jbuf *b, uint32_t v)
{
	return jbuf_append(b, &v, 4);
}

/* The first whole frame in buf[0..n): returns its total size (header and
 * payload) and fills *f; 0 when the frame is not whole yet; -1 when the
 * peer sends garbage. */
static inline long long wire_next(const char *buf, size_t n, struct wire_frame *f)
{
	if (n < WIRE_HEADER)
		return 0;
	memcpy(&f->len, buf, 4);
	f->type = (uint8_t)buf[4];
	memcpy(&f->id, buf + 8, 8);
	if (f->len > WIRE_MAX_FRAME || f->type < WIRE_INIT || f->type > WIRE_RESULT)
		return -1;
	if (n - WIRE_HEADER < f->len)
		return 0;
	f->payload = buf + WIRE_HEADER;
	return (long long)WIRE_HEADER + f->len;
}

/* Read a u32 at *p within [*p, end): returns 0 or -1 when it is short. */
static inline int wire_get_u32(const char **p, const char *end, uint32_t *v)
{
	if (end - *p < 4)
		return -1;
	memcpy(v, *p, 4);
	*p += 4;
	return 0;
}

/* Strings in frames: u32 length, then the bytes; WIRE_STR_NULL as the
 * length is the null string (no bytes follow). */
#define WIRE_STR_NULL UINT32_MAX

/* Append s (len bytes; s NULL: the null string). Returns 0, -ENOMEM, or
 * -EINVAL when it is too long to frame. */
static inline int wire_put_str(struct jbuf *b, const char *s, size_t len)
{
	uint32_t n = s ? (uint32_t)len : WIRE_STR_NULL;

	if (s && len >= WIRE_STR_NULL)
		return -EINVAL;
	if (jbuf_append(b, &n, 4) < 0 || (s && len && jbuf_append(b, s, len) < 0))
		return -ENOMEM;
	return 0;
}

/* Read a string at *p within [*p, end): *out is a new NUL-terminated copy
 * (the caller frees it), or NULL for the null string; *len (if len) its
 * length. Returns 0, -EINVAL (short) or -ENOMEM. */
static inline int wire_get_str(const char **p, const char *end, char **out, size_t *len)
{
	uint32_t n;

	*out = NULL;
	if (wire_get_u32(p, end, &n) < 0)
		return -EINVAL;
	if (n == WIRE_STR_NULL)
		return 0;
	if ((size_t)(end - *p) < n)
		return -EINVAL;
	if (!(*out = malloc((size_t)n + 1)))
		return -ENOMEM;
	memcpy(*out, *p, n);
	(*out)[n] = '\0';
	*p += n;
	if (len)
		*len = n;
	return 0;
}

/* How far wire_flush got. */
enum wire_flush { WIRE_SENT, WIRE_BLOCKED, WIRE_BROKEN };

/* Send out[*off..len) on non-blocking socket fd, as much as it takes now.
 * WIRE_SENT: all of it (out and *off are emptied); WIRE_BLOCKED: the rest
 * waits for the socket to be writable; WIRE_BROKEN: the peer is gone. */
static inline enum wire_flush wire_flush(int fd, struct jbuf *out, size_t *off)
{
	while (*off < out->len) {
		ssize_t n = send(fd, out->data + *off, out->len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return WIRE_BLOCKED;
		if (n <= 0)
			return WIRE_BROKEN;
		*off += (size_t)n;
	}
	out->len = *off = 0;
	return WIRE_SENT;
}

#endif
