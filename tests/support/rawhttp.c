/* rawhttp -- see rawhttp.h. */
#include "rawhttp.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* The poll timeout left until `end` (monotonic ms), >= 0. */
static int left_ms(double end)
{
	double l = end - hd_now_ms();

	return l <= 0 ? 0 : l > 1e9 ? 1000000000 : (int)l + 1;
}

void rh_connect_bufs(struct rh_conn *c, int port, int rcvbuf, int sndbuf)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1;

	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(c->fd, 0, "socket: %s", strerror(errno));
	if (rcvbuf > 0)
		cr_assert_eq(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
	if (sndbuf > 0)
		cr_assert_eq(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
	/* small writes (a head, then its body) go out as written */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* blocking connect: on loopback it completes at once, or is refused; a
	 * paused listener still completes it (the kernel's backlog) */
	cr_assert_eq(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect to port %d: %s",
		     port, strerror(errno));
	cr_assert_eq(fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK), 0);
	c->cap = 4096;
	c->buf = malloc(c->cap);
	cr_assert_not_null(c->buf);
	c->buf[0] = '\0';
}

void rh_connect(struct rh_conn *c, int port)
{
	rh_connect_bufs(c, port, 0, 0);
}

void rh_close(struct rh_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

int rh_send_some(struct rh_conn *c, const void *p, size_t n, int timeout_ms, size_t *sent)
{
	double end = hd_now_ms() + (double)timeout_ms * hd_scale();
	const char *s = p;
	size_t done = 0;
	int rc = RH_OK;

	while (done < n) {
		ssize_t w = send(c->fd, s + done, n - done, MSG_NOSIGNAL);
		if (w > 0) {
			done += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
			int pr = poll(&pf, 1, left_ms(end));
			if (pr == 0) {
				rc = RH_TIMEOUT;
				break;
			}
			continue; /* writable, or an error the next send reports */
		}
		rc = RH_CLOSED; /* EPIPE, ECONNRESET */
		break;
	}
	if (sent)
		*sent = done;
	return rc;
}

void rh_send(struct rh_conn *c, const void *p, size_t n)
{
	size_t sent = 0;
	int rc = rh_send_some(c, p, n, 10000, &sent);

	cr_assert_eq(rc, RH_OK, "send: %s after %zu of %zu bytes", rh_result_str(rc), sent, n);
}

void rh_send_str(struct rh_conn *c, const char *s)
{
	rh_send(c, s, strlen(s));
}

int rh_fill(struct rh_conn *c, int timeout_ms)
{
	double end = hd_now_ms() + (double)timeout_ms * hd_scale();

	if (c->closed)
		return RH_CLOSED;
	for (;;) {
		if (c->cap - c->len < 65536 + 1) {
			c->cap = c->cap * 2 + 65536 + 1;
			c->buf = realloc(c->buf, c->cap);
			cr_assert_not_null(c->buf);
		}
		ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
		if (n > 0) {
			c->len += (size_t)n;
			c->buf[c->len] = '\0';
			return (int)n;
		}
		if (n == 0) {
			c->closed = true;
			return RH_CLOSED;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			/* a reset: what came before it was already handed out */
			c->closed = true;
			c->err = errno;
			return RH_CLOSED;
		}
		struct pollfd pf = {.fd = c->fd, .events = POLLIN};
		int pr = poll(&pf, 1, left_ms(end));
		if (pr == 0)
			return RH_TIMEOUT;
		if (pr < 0 && errno != EINTR)
			cr_assert_fail("poll: %s", strerror(errno));
	}
}

/* Drop the first n bytes of the buffer. */
static void consume(struct rh_conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
	c->buf[c->len] = '\0';
}

static char *dup_range(const char *p, size_t n)
{
	char *s = malloc(n + 1);

	cr_assert_not_null(s);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

void rh_reply_free(struct rh_reply *r)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* Parse the head in buf[0, head_len) (status line and header lines, each
 * ending in CRLF; the blank line after them excluded) into r. */
static int parse_head(const char *buf, size_t head_len, struct rh_reply *r)
{
	const char *p = buf, *end = buf + head_len, *eol;
	char code[4];

	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	eol = memchr(p, '\r', (size_t)(end - p));
	if (!eol || eol + 1 >= end || eol[1] != '\n')
		return RH_MALFORMED;
	/* HTTP/1.x SP 3DIGIT SP reason */
	if ((size_t)(eol - p) < 12 || strncmp(p, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)p[7]) ||
	    p[8] != ' ' || !isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) ||
	    !isdigit((unsigned char)p[11]) || (eol - p > 12 && p[12] != ' '))
		return RH_MALFORMED;
	memcpy(r->version, p, 8);
	memcpy(code, p + 9, 3);
	code[3] = '\0';
	r->status = atoi(code);
	if (eol - p > 13)
		snprintf(r->reason, sizeof(r->reason), "%.*s", (int)(eol - p - 13), p + 13);
	p = eol + 2;
	while (p < end) {
		const char *colon, *v, *ve;
		eol = memchr(p, '\r', (size_t)(end - p));
		if (!eol || eol + 1 >= end || eol[1] != '\n')
			return RH_MALFORMED;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p)
			return RH_MALFORMED;
		for (const char *q = p; q < colon; q++)
			if (*q == ' ' || *q == '\t' || (unsigned char)*q < 0x21)
				return RH_MALFORMED;
		v = colon + 1;
		ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		r->headers = realloc(r->headers, (r->nheaders + 1) * sizeof(*r->headers));
		cr_assert_not_null(r->headers);
		r->headers[r->nheaders].name = dup_range(p, (size_t)(colon - p));
		r->headers[r->nheaders].value = dup_range(v, (size_t)(ve - v));
		r->nheaders++;
		p = eol + 2;
	}
	return RH_OK;
}

int rh_parse(struct rh_conn *c, struct rh_reply *r, bool head)
{
	const char *eoh, *cl;
	size_t head_len, need;
	int rc;

	memset(r, 0, sizeof(*r));
	eoh = memmem(c->buf, c->len, "\r\n\r\n", 4);
	if (!eoh) {
		/* a bare-LF head would never end here: say so once it is plainly there */
		if (memmem(c->buf, c->len, "\n\n", 2))
			return RH_MALFORMED;
		return RH_AGAIN;
	}
	head_len = (size_t)(eoh - c->buf) + 2; /* through the last line's CRLF */
	rc = parse_head(c->buf, head_len, r);
	if (rc != RH_OK) {
		rh_reply_free(r);
		return rc;
	}
	head_len += 2; /* the blank line */
	if (rh_header(r, "Transfer-Encoding")) {
		rh_reply_free(r);
		return RH_MALFORMED; /* chunked replies: not expected from hookd */
	}
	if (rh_header_count(r, "Content-Length") > 1) {
		rh_reply_free(r);
		return RH_MALFORMED;
	}
	if ((cl = rh_header(r, "Content-Length"))) {
		char *e;
		if (!isdigit((unsigned char)cl[0])) {
			rh_reply_free(r);
			return RH_MALFORMED;
		}
		r->content_length = strtoll(cl, &e, 10);
		if (*e) {
			rh_reply_free(r);
			return RH_MALFORMED;
		}
	}
	if (head || r->status / 100 == 1 || r->status == 204 || r->status == 304)
		need = 0;
	else if (r->content_length >= 0)
		need = (size_t)r->content_length;
	else if (c->closed)
		need = c->len - head_len; /* delimited by the close */
	else {
		rh_reply_free(r);
		return RH_AGAIN;
	}
	if (c->len - head_len < need) {
		rh_reply_free(r);
		return RH_AGAIN;
	}
	r->body = dup_range(c->buf + head_len, need);
	r->body_len = need;
	r->wire_len = head_len + need;
	consume(c, head_len + need);
	return RH_OK;
}

int rh_read_reply(struct rh_conn *c, struct rh_reply *r, int timeout_ms, bool head)
{
	double end = hd_now_ms() + (double)timeout_ms * hd_scale();

	for (;;) {
		int rc = rh_parse(c, r, head);
		if (rc != RH_AGAIN)
			return rc;
		if (c->closed)
			return RH_CLOSED;
		double left = end - hd_now_ms();
		if (left <= 0)
			return RH_TIMEOUT;
		/* rh_fill scales its timeout: hand it the unscaled rest */
		rc = rh_fill(c, (int)(left / hd_scale()) + 1);
		if (rc == RH_TIMEOUT)
			return RH_TIMEOUT;
		/* bytes, or closed: parse again (a reply without a length
		 * ends with the close) */
	}
}

int rh_wait_close(struct rh_conn *c, int timeout_ms)
{
	int rc;

	if (c->len > 0)
		return RH_OK;
	rc = rh_fill(c, timeout_ms);
	return rc > 0 ? RH_OK : rc;
}

const char *rh_header(const struct rh_reply *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

int rh_header_count(const struct rh_reply *r, const char *name)
{
	int n = 0;

	for (size_t i = 0; i < r->nheaders; i++)
		n += strcasecmp(r->headers[i].name, name) == 0;
	return n;
}

bool rh_header_has_token(const struct rh_reply *r, const char *name, const char *token)
{
	size_t tl = strlen(token);

	for (size_t i = 0; i < r->nheaders; i++) {
		const char *p = r->headers[i].value;
		if (strcasecmp(r->headers[i].name, name) != 0)
			continue;
		while (*p) {
			while (*p == ' ' || *p == '\t' || *p == ',')
				p++;
			const char *e = p;
			while (*e && *e != ',')
				e++;
			const char *te = e;
			while (te > p && (te[-1] == ' ' || te[-1] == '\t'))
				te--;
			if ((size_t)(te - p) == tl && strncasecmp(p, token, tl) == 0)
				return true;
			p = e;
		}
	}
	return false;
}

const char *rh_result_str(int rc)
{
	switch (rc) {
	case RH_OK:
		return "RH_OK";
	case RH_AGAIN:
		return "RH_AGAIN (incomplete reply)";
	case RH_TIMEOUT:
		return "RH_TIMEOUT (nothing more arrived in time)";
	case RH_CLOSED:
		return "RH_CLOSED (the server closed the connection)";
	case RH_MALFORMED:
		return "RH_MALFORMED (not an HTTP/1.x reply)";
	default:
		return rc > 0 ? "bytes arrived" : "?";
	}
}

const char *rh_peek(const struct rh_conn *c)
{
	static char out[600];
	size_t o = 0;

	for (size_t i = 0; i < c->len && o + 5 < sizeof(out); i++) {
		unsigned char ch = (unsigned char)c->buf[i];
		if (ch == '\r' || ch == '\n') {
			out[o++] = '\\';
			out[o++] = ch == '\r' ? 'r' : 'n';
		} else if (ch < 0x20 || ch >= 0x7f) {
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02x", ch);
		} else
			out[o++] = (char)ch;
	}
	out[o] = '\0';
	return out;
}
