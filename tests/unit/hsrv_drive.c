/*
 * hsrv_drive -- see hsrv_drive.h.
 */
#include "hsrv_drive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "../../host/hsrv.h"
#include "../../host/name.h"

#define MAX_EXPECT 512         /* replies checked per run */
#define MAX_RX (16u << 20)     /* bytes the client keeps */
#define QUIET_PASSES 3         /* passes without progress: the server is waiting */
#define MAX_PASSES 5000        /* per wait: far more than any input needs */
#define SERVER_SNDBUF 4096     /* small: "/big" replies go out in pieces */

/* A reply the owner sent, as the client must read it. */
struct expect {
	int status;
	bool no_length; /* 204: no Content-Type, no Content-Length */
	bool head_only; /* HEAD: Content-Length, no body */
	size_t len;
	uint64_t hash;  /* FNV-1a of the body */
};

static struct event_base *base;
static struct hsrv *srv;
static struct hsrv_budget budget;
static struct log lg;
static struct hsd_stats stats;

static struct run {
	const char *violation;
	unsigned count;          /* requests handed up */
	struct hsrv_req *held;
	int token;
	struct expect exp[MAX_EXPECT];
	unsigned nexp;
	bool exp_overflow;
	char *rx;
	size_t rx_len, rx_cap;
	bool rx_overflow, rx_eof;
	int cl;
} R;

static void fail(const char *why)
{
	if (!R.violation)
		R.violation = why;
}

static uint64_t fnv(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
	return h;
}

/* The body limit http.c would give `path`. */
static uint64_t route_limit(const char *path)
{
	if (strncmp(path, "/hooks/", 7) == 0 && name_valid(path + 7))
		return strcmp(path + 7, "small") == 0   ? HSD_SMALL_LIMIT
		       : strcmp(path + 7, "large") == 0 ? HSD_LARGE_LIMIT
							: HSD_HOOK_LIMIT;
	return HSD_LIMIT;
}

static void expect_reply(const struct hsrv_req *req, int status, const char *body, size_t len)
{
	struct expect *e;

	if (R.nexp >= MAX_EXPECT) {
		R.exp_overflow = true;
		return;
	}
	e = &R.exp[R.nexp++];
	e->status = status;
	e->no_length = status == 204;
	e->head_only = hsrv_req_parsed(req) && hsrv_req_method(req) == HSRV_HEAD;
	e->len = e->no_length ? 0 : len;
	e->hash = fnv(body, e->no_length ? 0 : len);
}

static void reply(struct hsrv_req *req)
{
	const char *path = hsrv_req_path(req);
	int status = 200;
	size_t len;
	char *body;

	if (strcmp(path, "/big") == 0) {
		len = HSD_BIG;
		if (!(body = malloc(len)))
			abort();
		memset(body, 'x', len);
	} else {
		size_t blen;
		hsrv_req_body(req, &blen);
		if (strcmp(path, "/204") == 0)
			status = 204;
		int n = asprintf(&body, "{\"ok\":true,\"request\":%u,\"body\":%zu}", R.count, blen);
		if (n < 0)
			abort();
		len = (size_t)n;
	}
	hsrv_add_header(req, "X-Test", "1");
	expect_reply(req, status, body, len);
	hsrv_send(req, status, "application/json", body, len);
}

static uint64_t own_body_limit(void *arg, struct hsrv_req *req, const char **what)
{
	const char *path = hsrv_req_path(req);

	(void)arg;
	if (!hsrv_req_parsed(req) || !path) {
		fail("body_limit asked before the head was parsed");
		return 0;
	}
	*what = strncmp(path, "/hooks/", 7) == 0 ? "the hook's max_body" : "max_body";
	return route_limit(path);
}

static void own_request(void *arg, struct hsrv_req *req)
{
	const char *path = hsrv_req_path(req), *name, *value;
	size_t len;
	uint16_t port;

	(void)arg;
	stats.requests++;
	if (R.held)
		fail("a request was handed up while the one before it is held");
	if (!hsrv_req_parsed(req) || !path) {
		fail("a request handed up without its head");
		path = "/";
	}
	if (hsrv_req_method(req) == HSRV_OTHER)
		fail("a request with an unknown method was handed up");
	if (path[0] != '/' && !(path[0] == '*' && !path[1]))
		fail("a request's path is neither origin-form nor *");
	hsrv_req_body(req, &len);
	if (len > route_limit(path))
		fail("a body over its limit was handed up");
	for (unsigned i = 0; i < hsrv_req_nheaders(req); i++) {
		hsrv_req_header_at(req, i, &name, &value);
		if (!name || !value || !*name || !hsrv_req_header(req, name))
			fail("a header field cannot be found by its name");
	}
	if (strcmp(hsrv_req_peer(req, &port), "") != 0 || port)
		fail("a Unix socket's peer is not \"\"");
	if (!hsrv_req_charge(req, len + 64)) {
		int n;
		char *body;
		if ((n = asprintf(&body, "{\"error\":\"budget\"}")) < 0)
			abort();
		expect_reply(req, 503, body, (size_t)n);
		hsrv_send(req, 503, NULL, body, (size_t)n);
		R.count++;
		return;
	}
	if (R.count++ % 3 == 2) {
		stats.held++;
		hsrv_req_hold(req, &R.token);
		R.held = req;
		return;
	}
	reply(req);
}

static void own_refuse(void *arg, struct hsrv_req *req, int status, const char *why)
{
	static const int ok[] = {400, 408, 411, 413, 414, 417, 431, 501, 503, 505};
	bool known = false;
	char *body;
	int n;

	(void)arg;
	stats.refusals++;
	if (status >= 0 && status < 600)
		stats.refused[status]++;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		known |= ok[i] == status;
	if (!known)
		fail("a refusal with a status hsrv.h does not list");
	if (!why || !*why || strpbrk(why, "\r\n"))
		fail("a refusal without a one-line reason");
	if (R.held)
		fail("a refusal while a request is held");
	if ((n = asprintf(&body, "{\"error\":\"refused\",\"status\":%d}", status)) < 0)
		abort();
	expect_reply(req, status, body, (size_t)n);
	hsrv_send(req, status, NULL, body, (size_t)n);
}

static void own_gone(void *arg, struct hsrv_req *req, void *held)
{
	(void)arg;
	stats.gone++;
	if (req != R.held || held != &R.token)
		fail("gone for a request that is not the held one, or with another pointer");
	R.held = NULL;
}

static const struct hsrv_ops ops = {
	.body_limit = own_body_limit,
	.request = own_request,
	.refuse = own_refuse,
	.gone = own_gone,
};

static void setup(void)
{
	struct hsrv_options opt = {.host = "127.0.0.1", .port = 0, .budget = &budget};
	char err[256];

	if (srv)
		return;
	log_init(&lg, 2, LOG_ERROR);
	budget.limit = HSD_BUDGET;
	hsrv_limits_default(&opt.limits);
	/* small: the fuzzer reaches 414, 431 and the chunk-line limits */
	opt.limits.h1.max_line = 256;
	opt.limits.h1.max_headers = 1024;
	opt.limits.h1.max_fields = 16;
	opt.limits.h1.max_chunk_line = 64;
	opt.limits.h1.max_trailers = 256;
	if (!(base = event_base_new()) ||
	    hsrv_create(base, &opt, &ops, NULL, &lg, &srv, err, sizeof(err)) < 0) {
		fprintf(stderr, "hsrv_drive: cannot start the server: %s\n", srv ? "" : err);
		abort();
	}
}

void hsd_teardown(void)
{
	hsrv_free(srv);
	srv = NULL;
	if (base)
		event_base_free(base);
	base = NULL;
	free(R.rx);
	R.rx = NULL;
	R.rx_len = R.rx_cap = 0;
}

const struct hsd_stats *hsd_stats(void)
{
	return &stats;
}

static void read_client(void)
{
	while (R.cl >= 0 && !R.rx_eof) {
		char drop[65536];
		char *to = drop;
		size_t room = sizeof(drop);
		ssize_t n;

		if (!R.rx_overflow) {
			if (R.rx_cap - R.rx_len < 65536) {
				size_t cap = R.rx_cap * 2 + 65536;
				char *p = cap <= MAX_RX ? realloc(R.rx, cap) : NULL;
				if (p) {
					R.rx = p;
					R.rx_cap = cap;
				} else {
					R.rx_overflow = true;
				}
			}
			if (!R.rx_overflow) {
				to = R.rx + R.rx_len;
				room = R.rx_cap - R.rx_len;
			}
		}
		n = read(R.cl, to, room);
		if (n > 0) {
			if (!R.rx_overflow)
				R.rx_len += (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			R.rx_eof = true;
		return;
	}
}

/* One loop pass: the held request (held during the previous pass) is
 * answered, the server's ready events run, the client reads. */
static void pass(void)
{
	if (R.held) {
		struct hsrv_req *r = R.held;
		R.held = NULL;
		reply(r);
	}
	event_base_loop(base, EVLOOP_NONBLOCK);
	read_client();
}

static size_t progress(void)
{
	return R.rx_len + R.count + R.nexp + stats.gone + (R.held ? 1 : 0) +
	       hsrv_connections(srv) + (R.rx_eof ? 1 : 0);
}

/* Pass until nothing moves for a few passes (or `done` holds). */
static void settle(bool (*done)(void))
{
	size_t last = progress();
	int quiet = 0;

	for (int i = 0; i < MAX_PASSES && quiet < QUIET_PASSES; i++) {
		size_t now;
		pass();
		if (done && done())
			return;
		now = progress();
		quiet = now == last && !R.held ? quiet + 1 : 0;
		last = now;
	}
}

static bool closed(void)
{
	return hsrv_connections(srv) == 0;
}

/* Write data[0..n) from the client; false: the server is gone. */
static bool client_write(const uint8_t *data, size_t n)
{
	size_t off = 0;
	int stalls = 0;

	while (off < n) {
		ssize_t w = send(R.cl, data + off, n - off, MSG_NOSIGNAL);
		if (w > 0) {
			off += (size_t)w;
			stalls = 0;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return false; /* closed by the server */
		if (++stalls > MAX_PASSES) {
			fail("the server stopped reading a client that reads its replies");
			return false;
		}
		pass();
	}
	return true;
}

/* Find the field `name` in head[0..hl) (after the status line). */
static const char *field(const char *head, size_t hl, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *p = memchr(head, '\n', hl), *end = head + hl;

	while (p && p + 1 < end) {
		const char *line = p + 1, *eol = memchr(line, '\r', (size_t)(end - line));
		if (!eol)
			break;
		if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
			const char *v = line + nl + 1;
			while (v < eol && *v == ' ')
				v++;
			*vlen = (size_t)(eol - v);
			return v;
		}
		p = memchr(line, '\n', (size_t)(end - line));
	}
	return NULL;
}

/* The client read exactly the replies sent, in order (a cut at the end
 * allowed: a hang-up drops what was not written). */
static void check_stream(void)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	size_t off = 0;
	unsigned i = 0;

	if (R.rx_overflow || R.exp_overflow)
		return;
	while (off < R.rx_len) {
		const char *p = R.rx + off, *e, *v;
		size_t left = R.rx_len - off, hl, vlen, blen;
		const struct expect *x;

		if (left >= sizeof(cont) - 1 && memcmp(p, cont, sizeof(cont) - 1) == 0) {
			off += sizeof(cont) - 1;
			continue;
		}
		if (i >= R.nexp) {
			fail("the client read bytes after the last reply sent");
			return;
		}
		x = &R.exp[i];
		if (left < 9 || memcmp(p, "HTTP/1.1 ", 9) != 0) {
			if (memcmp(p, "HTTP/1.1 ", left < 9 ? left : 9) == 0)
				return; /* cut short */
			fail("a reply does not start with HTTP/1.1");
			return;
		}
		if (!(e = memmem(p, left, "\r\n\r\n", 4)))
			return; /* cut short in the head */
		hl = (size_t)(e - p) + 4;
		if (atoi(p + 9) != x->status) {
			fail("a reply's status is not the one sent");
			return;
		}
		v = field(p, hl, "Content-Length", &vlen);
		if (x->no_length) {
			if (v || field(p, hl, "Content-Type", &vlen)) {
				fail("a 204 carries Content-Length or Content-Type");
				return;
			}
		} else if (!v || strtoull(v, NULL, 10) != x->len) {
			fail("a reply's Content-Length is not the body's length");
			return;
		}
		if (!field(p, hl, "X-Test", &vlen) && x->status < 300) {
			fail("the owner's header is missing");
			return;
		}
		blen = x->head_only || x->no_length ? 0 : x->len;
		if (hl + blen > left)
			return; /* cut short in the body */
		if (fnv(p + hl, blen) != (x->head_only ? fnv("", 0) : x->hash)) {
			fail("a reply's body is not the one sent");
			return;
		}
		stats.replies_checked++;
		off += hl + blen;
		i++;
	}
}

const char *hsd_run(const uint8_t *data, size_t size)
{
	size_t cuts[3], n;
	bool step, hangup;
	int sv[2], buf = SERVER_SNDBUF;

	setup();
	free(R.rx);
	memset(&R, 0, sizeof(R));
	R.cl = -1;
	stats.runs++;
	if (!size)
		return NULL;
	n = size - 1;
	cuts[0] = n * (data[0] & 7) / 8;
	cuts[1] = n * ((data[0] >> 3) & 7) / 8;
	if (cuts[0] > cuts[1]) {
		size_t t = cuts[0];
		cuts[0] = cuts[1];
		cuts[1] = t;
	}
	cuts[2] = n;
	step = data[0] & 0x40;
	hangup = data[0] & 0x80;
	data++;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	R.cl = sv[0];
	if (fcntl(R.cl, F_SETFL, fcntl(R.cl, F_GETFL) | O_NONBLOCK) < 0 || hsrv_adopt(srv, sv[1]) < 0)
		abort();
	for (size_t k = 0, from = 0; k < 3; k++) {
		if (cuts[k] <= from)
			continue;
		if (!client_write(data + from, cuts[k] - from))
			break;
		from = cuts[k];
		if (step)
			settle(NULL);
	}
	if (!hangup)
		settle(NULL); /* else the hang-up comes while a request may be held: gone */
	shutdown(R.cl, SHUT_WR);
	settle(closed);
	if (!closed()) {
		fail("the connection did not end after the client's half-close");
		close(R.cl);
		R.cl = -1;
		settle(closed);
		if (!closed()) { /* start over with a new server */
			hsd_teardown();
			return R.violation;
		}
	}
	read_client();
	check_stream();
	if (hsrv_unsent(srv))
		fail("replies counted unsent after the connection closed");
	if (atomic_load(&budget.used))
		fail("the memory budget is not back to 0 after the connection closed");
	if (R.cl >= 0)
		close(R.cl);
	R.cl = -1;
	return R.violation;
}
