/*
 * hsrv: the HTTP/1.x server transport, driven for real inside the test
 * process: a server on its own event base, one connection adopted from a
 * socketpair (the server end), and a small fake owner (struct hsrv_ops)
 * that records what it saw and answers: an echo of the body, a held
 * request answered later, a JSON body for a refusal.
 *
 * The loop is pumped (EVLOOP_NONBLOCK) between bounded poll()s of the
 * client end until the outcome a test waits for is there; waits are
 * generous (WAIT_MS) and no assertion is about time. Every test ends with
 * the memory budget back to 0, no reply unsent, the server freed and (in
 * ASan builds) no leak.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../../host/hsrv.h"
#include "hsrv_drive.h"
#include "unit.h"

TestSuite(hsrv);

#define WAIT_MS 5000  /* the most a test waits for an outcome (TSan, a loaded machine) */
#define FEW_PASSES 30 /* loop passes that show nothing happens (no wall clock) */
#define MAXREC 16

enum owner_mode {
	OWN_ECHO,  /* answer at once: 200 and the body (or "{}" when empty) */
	OWN_HOLD,  /* hold the first `hold_n` requests, echo the rest */
};

/* The fake owner and the client's end: one per test process. */
static struct fx {
	struct event_base *base;
	struct hsrv *s;
	struct hsrv_budget budget;
	struct log log;
	int cl;                   /* the client's end of the socketpair */
	int sdup;                 /* a dup of the server's end (read-ahead test), or -1 */
	/* what the owner does */
	enum owner_mode mode;
	unsigned hold_n;
	int status;               /* the answer's status (200) */
	const char *body;         /* a fixed answer body, or NULL: echo */
	uint64_t limit;           /* body_limit's answer */
	size_t charge;            /* hsrv_req_charge'd by each request */
	bool charge_ok;
	int token;                /* what a held request is held with */
	/* what the owner saw */
	unsigned nreq, nrefuse, ngone, nlimit;
	struct hsrv_req *held;    /* the held request, until answered or gone */
	struct hsrv_req *gone_req;
	void *gone_held;
	char method[MAXREC][16];
	char path[MAXREC][128];
	char query[MAXREC][64];
	char xtest[MAXREC][64];   /* the request's X-Test header */
	char *rbody[MAXREC];
	size_t rbody_len[MAXREC];
	int rstatus[MAXREC];
	char rwhy[MAXREC][256];
	bool rparsed[MAXREC];
	/* what the client read */
	char *rx;
	size_t rx_len, rx_cap;
	bool rx_eof;
} F;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the fake owner ------------------------------------------------------ */

static uint64_t own_body_limit(void *arg, struct hsrv_req *req, const char **what)
{
	(void)arg;
	cr_assert(hsrv_req_parsed(req), "body_limit is asked once the head is parsed");
	F.nlimit++;
	*what = "the test's limit";
	return F.limit;
}

static void answer(struct hsrv_req *req, unsigned i)
{
	size_t len = 0;
	const char *b = hsrv_req_body(req, &len);
	char *out;
	char seq[16];

	if (F.body) {
		b = F.body;
		len = strlen(F.body);
	} else if (!len) {
		b = "{}";
		len = 2;
	}
	out = malloc(len ? len : 1);
	cr_assert_not_null(out);
	memcpy(out, b, len);
	snprintf(seq, sizeof(seq), "%u", i + 1);
	hsrv_add_header(req, "X-Seq", seq);
	hsrv_send(req, F.status, "text/plain", out, len);
}

static void own_request(void *arg, struct hsrv_req *req)
{
	unsigned i = F.nreq++;
	const char *v;
	size_t len;
	const char *b;

	(void)arg;
	cr_assert_lt(i, MAXREC);
	cr_assert(hsrv_req_parsed(req));
	snprintf(F.method[i], sizeof(F.method[i]), "%s", hsrv_req_method_name(req));
	snprintf(F.path[i], sizeof(F.path[i]), "%s", hsrv_req_path(req));
	v = hsrv_req_query(req);
	snprintf(F.query[i], sizeof(F.query[i]), "%s", v ? v : "(none)");
	v = hsrv_req_header(req, "x-test");
	snprintf(F.xtest[i], sizeof(F.xtest[i]), "%s", v ? v : "(none)");
	b = hsrv_req_body(req, &len);
	F.rbody[i] = malloc(len + 1);
	cr_assert_not_null(F.rbody[i]);
	memcpy(F.rbody[i], b, len);
	F.rbody[i][len] = 0;
	F.rbody_len[i] = len;
	if (F.charge)
		F.charge_ok = hsrv_req_charge(req, F.charge);
	if (F.mode == OWN_HOLD && i < F.hold_n) {
		cr_assert_null(F.held, "one request at a time per connection");
		hsrv_req_hold(req, &F.token);
		F.held = req;
		return;
	}
	answer(req, i);
}

static void own_refuse(void *arg, struct hsrv_req *req, int status, const char *why)
{
	unsigned i = F.nrefuse++;
	char *body;
	int n;

	(void)arg;
	cr_assert_lt(i, MAXREC);
	F.rstatus[i] = status;
	snprintf(F.rwhy[i], sizeof(F.rwhy[i]), "%s", why);
	F.rparsed[i] = hsrv_req_parsed(req);
	if (!hsrv_req_parsed(req)) {
		cr_assert_null(hsrv_req_path(req));
		cr_assert_str_eq(hsrv_req_method_name(req), "?");
	}
	n = asprintf(&body, "{\"error\":\"%s\",\"status\":%d}", why, status);
	cr_assert_gt(n, 0);
	hsrv_send(req, status, NULL, body, (size_t)n);
}

static void own_gone(void *arg, struct hsrv_req *req, void *held)
{
	(void)arg;
	F.ngone++;
	F.gone_req = req;
	F.gone_held = held;
	if (req == F.held)
		F.held = NULL;
}

static const struct hsrv_ops own_ops = {
	.body_limit = own_body_limit,
	.request = own_request,
	.refuse = own_refuse,
	.gone = own_gone,
};

/* ---- the harness ----------------------------------------------------------- */

/* A server with `lim` (NULL: the defaults) and a budget of `budget_limit`
 * bytes (0: none), and one adopted connection. */
static void fx_start(const struct hsrv_limits *lim, size_t budget_limit)
{
	struct hsrv_options opt = {.host = "127.0.0.1", .port = 0};
	char err[256];
	int sv[2];

	memset(&F, 0, sizeof(F));
	F.status = 200;
	F.limit = 1024 * 1024;
	F.sdup = -1;
	F.budget.limit = budget_limit;
	atomic_init(&F.budget.used, 0);
	log_init(&F.log, 2, LOG_ERROR);
	if (lim)
		opt.limits = *lim;
	else
		hsrv_limits_default(&opt.limits);
	opt.budget = &F.budget;
	F.base = event_base_new();
	cr_assert_not_null(F.base);
	cr_assert_eq(hsrv_create(F.base, &opt, &own_ops, NULL, &F.log, &F.s, err, sizeof(err)), 0,
		     "hsrv_create: %s", err);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	F.cl = sv[0];
	cr_assert_eq(fcntl(F.cl, F_SETFL, fcntl(F.cl, F_GETFL) | O_NONBLOCK), 0);
	cr_assert_eq(hsrv_adopt(F.s, sv[1]), 0);
	cr_assert_eq(hsrv_connections(F.s), 1);
}

static void lim_default(struct hsrv_limits *lim)
{
	hsrv_limits_default(lim);
}

/* Read what the client end has (non-blocking). */
static void fx_read_client(void)
{
	for (;;) {
		ssize_t n;
		if (F.rx_cap - F.rx_len < 65536) {
			F.rx_cap = F.rx_cap * 2 + 65536;
			F.rx = realloc(F.rx, F.rx_cap + 1);
			cr_assert_not_null(F.rx);
		}
		if (F.cl < 0 || F.rx_eof)
			return;
		n = read(F.cl, F.rx + F.rx_len, F.rx_cap - F.rx_len);
		if (n > 0) {
			F.rx_len += (size_t)n;
			F.rx[F.rx_len] = 0;
			continue;
		}
		if (n == 0) {
			F.rx_eof = true;
			return;
		}
		cr_assert(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNRESET,
			  "client read: %s", strerror(errno));
		if (errno == ECONNRESET)
			F.rx_eof = true;
		return;
	}
}

/* One pass: the server's ready events, the client's bytes, a short poll. */
static void fx_step(void)
{
	struct pollfd p = {.fd = F.cl, .events = POLLIN};

	event_base_loop(F.base, EVLOOP_NONBLOCK);
	fx_read_client();
	if (F.cl >= 0 && !F.rx_eof)
		poll(&p, 1, 1);
	else
		poll(NULL, 0, 1);
	event_base_loop(F.base, EVLOOP_NONBLOCK);
	fx_read_client();
}

/* Pump until `cond` holds or WAIT_MS pass; the caller asserts `cond`. */
#define PUMP_UNTIL(cond)                                            \
	do {                                                        \
		int64_t end_ = now_ms() + WAIT_MS;                  \
		while (!(cond) && now_ms() < end_)                  \
			fx_step();                                  \
	} while (0)

/* A few passes: for "nothing more happens" checks. */
static void fx_passes(int n)
{
	for (int i = 0; i < n; i++)
		fx_step();
}

/* Write all of s[0..n) from the client, pumping the server while the
 * socket is full. */
static void fx_send_n(const char *s, size_t n)
{
	int64_t end = now_ms() + WAIT_MS;
	size_t off = 0;

	while (off < n) {
		ssize_t w = send(F.cl, s + off, n - off, MSG_NOSIGNAL);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		cr_assert(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR),
			  "client send: %s", strerror(errno));
		cr_assert_lt(now_ms(), end, "the server stopped reading (%zu of %zu bytes sent)", off,
			     n);
		fx_step();
	}
}

static void fx_send(const char *s)
{
	fx_send_n(s, strlen(s));
}

/* The client hangs up. */
static void fx_client_close(void)
{
	if (F.cl >= 0)
		close(F.cl);
	F.cl = -1;
}

/* Everything closed and freed: the budget is back to 0, nothing unsent,
 * no leak. */
static void fx_end(void)
{
	fx_client_close();
	if (F.sdup >= 0)
		close(F.sdup);
	PUMP_UNTIL(hsrv_connections(F.s) == 0);
	cr_assert_eq(hsrv_connections(F.s), 0, "the server closed the connection");
	cr_assert_eq(hsrv_unsent(F.s), 0, "no reply left unsent");
	cr_assert_eq(atomic_load(&F.budget.used), 0, "the budget is given back (%zu left)",
		     (size_t)atomic_load(&F.budget.used));
	hsrv_free(F.s);
	event_base_free(F.base);
	for (unsigned i = 0; i < MAXREC; i++)
		free(F.rbody[i]);
	free(F.rx);
	memset(&F, 0, sizeof(F));
	u_assert_no_leaks();
}

/* ---- the client's view: replies parsed from what it read --------------- */

struct resp {
	int status;
	char head[2048];   /* status line and fields, NUL-terminated */
	const char *body;  /* into F.rx */
	size_t body_len;
	long clen;         /* Content-Length, or -1 */
};

/* Value of the field `name` in r's head, or NULL (copied into buf). */
static const char *resp_header(const struct resp *r, const char *name, char *buf, size_t len)
{
	size_t nl = strlen(name);
	const char *p = strstr(r->head, "\r\n");

	while (p && p[2]) {
		const char *line = p + 2, *end = strstr(line, "\r\n");
		if (!end)
			break;
		if ((size_t)(end - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
			const char *v = line + nl + 1;
			while (*v == ' ')
				v++;
			snprintf(buf, len, "%.*s", (int)(end - v), v);
			return buf;
		}
		p = end;
	}
	return NULL;
}

static bool resp_has(const struct resp *r, const char *name)
{
	char b[256];

	return resp_header(r, name, b, sizeof(b)) != NULL;
}

/* Parse the replies in F.rx (bit i of head_mask: the i-th final reply
 * answers a HEAD, no body follows). 1xx replies are skipped and counted
 * in *ncontinue. Returns the number of whole final replies. */
static int resps(struct resp *out, int max, unsigned head_mask, int *ncontinue)
{
	size_t off = 0;
	int n = 0;

	if (ncontinue)
		*ncontinue = 0;
	while (off < F.rx_len && n < max) {
		const char *p = F.rx + off, *e = strstr(p, "\r\n\r\n");
		struct resp *r = &out[n];
		char cl[32];
		size_t hl;

		if (!e)
			break;
		hl = (size_t)(e - p) + 4;
		cr_assert_eq(strncmp(p, "HTTP/1.1 ", 9), 0, "a reply starts with its status line: %.40s",
			     p);
		r->status = atoi(p + 9);
		snprintf(r->head, sizeof(r->head), "%.*s", (int)(hl - 2), p);
		if (r->status < 200) {
			if (ncontinue)
				(*ncontinue)++;
			off += hl;
			continue;
		}
		r->clen = resp_header(r, "Content-Length", cl, sizeof(cl)) ? atol(cl) : -1;
		r->body = p + hl;
		r->body_len = 0;
		if (!(head_mask & (1u << n)) && r->clen > 0) {
			if (off + hl + (size_t)r->clen > F.rx_len)
				break;
			r->body_len = (size_t)r->clen;
		}
		off += hl + r->body_len;
		n++;
	}
	return n;
}

static int nresps(unsigned head_mask)
{
	struct resp r[MAXREC];

	return resps(r, MAXREC, head_mask, NULL);
}

static void assert_body(const struct resp *r, const char *want)
{
	cr_assert_eq(r->body_len, strlen(want), "body length %zu, want %zu", r->body_len,
		     strlen(want));
	cr_assert_eq(memcmp(r->body, want, r->body_len), 0, "body %.*s, want %s", (int)r->body_len,
		     r->body, want);
}

/* ---- round trips -------------------------------------------------------- */

Test(hsrv, request_and_answer_round_trip)
{
	struct resp r[2];
	char v[128];

	fx_start(NULL, 0);
	fx_send("POST /hooks/a?x=1 HTTP/1.1\r\nHost: h\r\nX-Test: yes\r\n"
		"Content-Length: 5\r\n\r\nhello");
	PUMP_UNTIL(nresps(0) == 1);
	cr_assert_eq(resps(r, 2, 0, NULL), 1);
	cr_assert_eq(F.nreq, 1);
	cr_assert_eq(F.nlimit, 1);
	cr_assert_str_eq(F.method[0], "POST");
	cr_assert_str_eq(F.path[0], "/hooks/a");
	cr_assert_str_eq(F.query[0], "x=1");
	cr_assert_str_eq(F.xtest[0], "yes", "header lookup is case-insensitive");
	cr_assert_str_eq(F.rbody[0], "hello");
	cr_assert_eq(r[0].status, 200);
	cr_assert_str_eq(resp_header(&r[0], "Content-Type", v, sizeof(v)), "text/plain");
	cr_assert_eq(r[0].clen, 5);
	cr_assert_str_eq(resp_header(&r[0], "X-Seq", v, sizeof(v)), "1");
	cr_assert(resp_has(&r[0], "Date"));
	cr_assert_not(resp_has(&r[0], "Connection"), "HTTP/1.1 keep-alive says nothing");
	assert_body(&r[0], "hello");
	cr_assert_eq(hsrv_unsent(F.s), 0);
	cr_assert_not(F.rx_eof);
	fx_end();
}

Test(hsrv, keep_alive_serves_two_requests)
{
	struct resp r[3];

	fx_start(NULL, 0);
	fx_send("GET /one HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(nresps(0) == 1);
	fx_send("POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
	PUMP_UNTIL(nresps(0) == 2);
	cr_assert_eq(resps(r, 3, 0, NULL), 2);
	cr_assert_eq(F.nreq, 2);
	cr_assert_str_eq(F.path[0], "/one");
	cr_assert_str_eq(F.query[0], "(none)");
	cr_assert_str_eq(F.path[1], "/two");
	assert_body(&r[0], "{}");
	assert_body(&r[1], "abc");
	fx_passes(5);
	cr_assert_not(F.rx_eof, "the connection stays open");
	cr_assert_eq(hsrv_connections(F.s), 1);
	fx_end();
}

Test(hsrv, pipelined_requests_answered_in_order)
{
	struct resp r[4];
	char v[16];

	fx_start(NULL, 0);
	fx_send("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n1"
		"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n22"
		"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n333\r\n0\r\n\r\n");
	PUMP_UNTIL(nresps(0) == 3);
	cr_assert_eq(resps(r, 4, 0, NULL), 3);
	static const char *const seq[] = {"1", "2", "3"};
	for (int i = 0; i < 3; i++)
		cr_assert_str_eq(resp_header(&r[i], "X-Seq", v, sizeof(v)), seq[i]);
	assert_body(&r[0], "1");
	assert_body(&r[1], "22");
	assert_body(&r[2], "333");
	fx_end();
}

Test(hsrv, pipelined_second_request_waits_for_the_held_first)
{
	struct resp r[4];

	fx_start(NULL, 0);
	F.mode = OWN_HOLD;
	F.hold_n = 1;
	fx_send("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n1"
		"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n22"
		"GET /c HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(F.nreq == 1);
	cr_assert_eq(F.nreq, 1);
	cr_assert_not_null(F.held);
	fx_passes(FEW_PASSES);
	cr_assert_eq(F.nreq, 1, "the second request is parsed only once the first is answered");
	cr_assert_eq(F.rx_len, 0);
	/* the held request's strings are still there */
	cr_assert_str_eq(hsrv_req_path(F.held), "/a");
	answer(F.held, 0);
	F.held = NULL;
	cr_assert_eq(hsrv_unsent(F.s), 1, "counted until the connection moves on");
	PUMP_UNTIL(nresps(0) == 3);
	cr_assert_eq(resps(r, 4, 0, NULL), 3);
	cr_assert_eq(F.nreq, 3);
	assert_body(&r[0], "1");
	assert_body(&r[1], "22");
	assert_body(&r[2], "{}");
	cr_assert_str_eq(F.path[2], "/c");
	cr_assert_eq(hsrv_unsent(F.s), 0);
	fx_end();
}

/* ---- what a reply carries --------------------------------------------- */

Test(hsrv, head_gets_the_length_of_the_body_and_no_body)
{
	struct resp r[3];

	fx_start(NULL, 0);
	F.body = "{\"ok\":true}";
	fx_send("HEAD /x HTTP/1.1\r\nHost: h\r\n\r\nGET /y HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(nresps(1u) == 2);
	cr_assert_eq(resps(r, 3, 1u, NULL), 2);
	cr_assert_str_eq(F.method[0], "HEAD");
	cr_assert_eq(r[0].status, 200);
	cr_assert_eq(r[0].clen, (long)strlen(F.body), "HEAD: the length it would get");
	cr_assert_eq(r[0].body_len, 0);
	/* no body bytes: the next reply starts right after the HEAD's head */
	cr_assert_eq(r[1].status, 200);
	assert_body(&r[1], "{\"ok\":true}");
	cr_assert_eq((size_t)(r[1].body + r[1].body_len - F.rx), F.rx_len, "nothing else sent");
	fx_end();
}

Test(hsrv, no_content_has_no_type_length_or_body)
{
	struct resp r[3];

	fx_start(NULL, 0);
	F.status = 204;
	F.body = "dropped";
	fx_send("DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(nresps(0) == 1);
	cr_assert_eq(resps(r, 3, 0, NULL), 1);
	cr_assert_eq(r[0].status, 204);
	cr_assert_not(resp_has(&r[0], "Content-Type"));
	cr_assert_not(resp_has(&r[0], "Content-Length"));
	cr_assert_eq(r[0].body_len, 0);
	/* the connection goes on */
	F.status = 200;
	F.body = NULL;
	fx_send("GET /y HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(nresps(0) == 2);
	cr_assert_eq(resps(r, 3, 0, NULL), 2);
	cr_assert_eq(r[0].head[0], 'H');
	assert_body(&r[1], "{}");
	cr_assert_eq((size_t)(r[1].body + r[1].body_len - F.rx), F.rx_len, "204 sent no body");
	fx_end();
}

Test(hsrv, http10_closes_after_the_reply)
{
	struct resp r[2];
	char v[64];

	fx_start(NULL, 0);
	fx_send("GET /x HTTP/1.0\r\n\r\n");
	PUMP_UNTIL(F.rx_eof);
	cr_assert(F.rx_eof, "closed after the reply");
	cr_assert_eq(resps(r, 2, 0, NULL), 1);
	cr_assert_eq(r[0].status, 200);
	cr_assert_str_eq(resp_header(&r[0], "Connection", v, sizeof(v)), "close");
	fx_end();
}

Test(hsrv, http10_keep_alive_stays_open)
{
	struct resp r[3];
	char v[64];

	fx_start(NULL, 0);
	fx_send("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	PUMP_UNTIL(nresps(0) == 1);
	cr_assert_eq(resps(r, 3, 0, NULL), 1);
	cr_assert_str_eq(resp_header(&r[0], "Connection", v, sizeof(v)), "keep-alive");
	fx_send("GET /y HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	PUMP_UNTIL(nresps(0) == 2);
	cr_assert_eq(resps(r, 3, 0, NULL), 2);
	cr_assert_not(F.rx_eof);
	cr_assert_str_eq(F.path[1], "/y");
	/* and Connection: close on HTTP/1.1 closes */
	fx_send("GET /z HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
	PUMP_UNTIL(F.rx_eof);
	cr_assert(F.rx_eof);
	cr_assert_eq(resps(r, 3, 0, NULL), 3);
	cr_assert_str_eq(resp_header(&r[2], "Connection", v, sizeof(v)), "close");
	fx_end();
}

/* A large reply the client does not read at once: written in pieces, then
 * the next pipelined request is served. */
Test(hsrv, large_reply_is_written_in_pieces_then_the_next_request)
{
	static char big[1 << 20];
	struct resp r[3];

	fx_start(NULL, 0);
	memset(big, 'b', sizeof(big) - 1);
	F.body = big;
	fx_send("GET /big HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(nresps(0) == 2);
	cr_assert_eq(resps(r, 3, 0, NULL), 2);
	cr_assert_eq(r[0].body_len, sizeof(big) - 1);
	cr_assert_eq(r[1].body_len, sizeof(big) - 1);
	cr_assert_eq(F.nreq, 2);
	cr_assert_str_eq(F.path[1], "/next");
	fx_end();
}

/* ---- refusals --------------------------------------------------------- */

/* `req` is refused with `status` (the owner's refuse saw it, the client
 * got it with the owner's JSON body); `closes`: Connection: close and the
 * connection ends, else a next request on it is served. */
static void refused_with(const char *req, int status, bool closes, bool parsed)
{
	struct resp r[3];
	char v[64], want[64];

	fx_send(req);
	PUMP_UNTIL(nresps(0) >= 1 && (!closes || F.rx_eof));
	cr_assert_eq(F.nrefuse, 1, "refused once (%u)", F.nrefuse);
	cr_assert_eq(F.rstatus[0], status, "refused with %d, want %d (%s)", F.rstatus[0], status,
		     F.rwhy[0]);
	cr_assert_eq(F.rparsed[0], parsed, "parsed: %d", F.rparsed[0]);
	cr_assert_eq(F.nreq, 0);
	cr_assert_eq(resps(r, 3, 0, NULL), 1);
	cr_assert_eq(r[0].status, status);
	cr_assert_str_eq(resp_header(&r[0], "Content-Type", v, sizeof(v)), "application/json");
	snprintf(want, sizeof(want), "\"status\":%d}", status);
	cr_assert_not_null(strstr(r[0].body, want));
	if (closes) {
		cr_assert(F.rx_eof, "closed after %d", status);
		cr_assert_str_eq(resp_header(&r[0], "Connection", v, sizeof(v)), "close");
		return;
	}
	cr_assert_not(resp_has(&r[0], "Connection"), "%d keeps the connection", status);
	fx_send("GET /after HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(nresps(0) == 2);
	cr_assert_eq(resps(r, 3, 0, NULL), 2);
	cr_assert_eq(r[1].status, 200);
	cr_assert_eq(F.nreq, 1);
	cr_assert_str_eq(F.path[0], "/after");
	cr_assert_not(F.rx_eof);
}

Test(hsrv, refuse_400_bad_request_line_closes)
{
	fx_start(NULL, 0);
	refused_with("GET /\r\n\r\n", 400, true, false);
	fx_end();
}

Test(hsrv, refuse_400_bare_lf_closes)
{
	fx_start(NULL, 0);
	refused_with("GET / HTTP/1.1\nHost: h\n\n", 400, true, false);
	fx_end();
}

Test(hsrv, refuse_400_host_missing_keeps_the_connection)
{
	fx_start(NULL, 0);
	refused_with("GET /nohost HTTP/1.1\r\n\r\n", 400, false, true);
	fx_end();
}

Test(hsrv, refuse_411_post_without_length_keeps_the_connection)
{
	fx_start(NULL, 0);
	refused_with("POST /x HTTP/1.1\r\nHost: h\r\n\r\n", 411, false, true);
	fx_end();
}

Test(hsrv, refuse_413_before_any_body_byte)
{
	fx_start(NULL, 0);
	F.limit = 10;
	/* the client never sends the body: the answer must not wait for it */
	refused_with("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n", 413, true, true);
	cr_assert_eq(F.nlimit, 1);
	cr_assert_not_null(strstr(F.rwhy[0], "the test's limit"), "%s", F.rwhy[0]);
	fx_end();
}

Test(hsrv, refuse_414_long_request_line)
{
	struct hsrv_limits lim;
	char req[400];

	lim_default(&lim);
	lim.h1.max_line = 64;
	fx_start(&lim, 0);
	snprintf(req, sizeof(req), "GET /%0200d HTTP/1.1\r\nHost: h\r\n\r\n", 0);
	refused_with(req, 414, true, false);
	fx_end();
}

Test(hsrv, refuse_431_too_many_fields)
{
	struct hsrv_limits lim;
	char req[2048];
	size_t n;

	lim_default(&lim);
	lim.h1.max_fields = 4;
	fx_start(&lim, 0);
	n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 0; i < 8; i++)
		n += (size_t)snprintf(req + n, sizeof(req) - n, "X-F%d: v\r\n", i);
	snprintf(req + n, sizeof(req) - n, "\r\n");
	refused_with(req, 431, true, false);
	fx_end();
}

Test(hsrv, refuse_501_method_keeps_the_connection_without_a_body)
{
	fx_start(NULL, 0);
	refused_with("BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", 501, false, true);
	fx_end();
}

Test(hsrv, refuse_501_method_with_a_body_closes)
{
	fx_start(NULL, 0);
	refused_with("BREW /pot HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc", 501, true, true);
	fx_end();
}

Test(hsrv, refuse_501_transfer_coding)
{
	fx_start(NULL, 0);
	refused_with("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501, true,
		     false);
	fx_end();
}

Test(hsrv, refuse_505_version)
{
	fx_start(NULL, 0);
	refused_with("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505, true, false);
	fx_end();
}

Test(hsrv, refuse_417_expectation_keeps_the_connection_without_a_body)
{
	fx_start(NULL, 0);
	refused_with("GET / HTTP/1.1\r\nHost: h\r\nExpect: tea\r\n\r\n", 417, false, true);
	fx_end();
}

/* ---- bodies -------------------------------------------------------------- */

Test(hsrv, chunked_body_is_decoded)
{
	static const char req[] = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
	struct resp r[2];

	fx_start(NULL, 0);
	fx_send(req);
	PUMP_UNTIL(nresps(0) == 1);
	cr_assert_eq(resps(r, 2, 0, NULL), 1);
	cr_assert_str_eq(F.rbody[0], "hello world");
	cr_assert_eq(F.rbody_len[0], 11);
	assert_body(&r[0], "hello world");
	fx_end();
}

/* The same body one byte per loop pass: partial heads, sizes and chunks. */
Test(hsrv, chunked_body_byte_by_byte)
{
	static const char req[] = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
	struct resp r[2];

	fx_start(NULL, 0);
	for (size_t i = 0; i < sizeof(req) - 1; i++) {
		fx_send_n(req + i, 1);
		fx_step();
	}
	PUMP_UNTIL(nresps(0) == 1);
	cr_assert_eq(resps(r, 2, 0, NULL), 1);
	assert_body(&r[0], "hello world");
	fx_end();
}

Test(hsrv, chunked_body_held_is_charged_to_the_budget_until_answered)
{
	fx_start(NULL, 1 << 20);
	F.mode = OWN_HOLD;
	F.hold_n = 1;
	fx_send("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
		"5\r\nhello\r\n0\r\n\r\n");
	PUMP_UNTIL(F.nreq == 1);
	cr_assert_not_null(F.held);
	cr_assert_gt(atomic_load(&F.budget.used), 0, "the decoded body is charged");
	answer(F.held, 0);
	F.held = NULL;
	PUMP_UNTIL(nresps(0) == 1);
	cr_assert_eq(atomic_load(&F.budget.used), 0, "given back once answered");
	fx_end();
}

Test(hsrv, chunked_over_the_limit_is_413)
{
	fx_start(NULL, 0);
	F.limit = 8;
	refused_with("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "4\r\nabcd\r\na\r\n0123456789\r\n0\r\n\r\n", 413, true, true);
	fx_end();
}

Test(hsrv, expect_100_continue_before_the_body)
{
	struct resp r[2];
	int ncont;

	fx_start(NULL, 0);
	fx_send("POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
	PUMP_UNTIL(strstr(F.rx ? F.rx : "", "HTTP/1.1 100 Continue\r\n\r\n"));
	cr_assert_str_eq(F.rx, "HTTP/1.1 100 Continue\r\n\r\n");
	cr_assert_eq(F.nreq, 0);
	fx_send("hello");
	PUMP_UNTIL(nresps(0) == 1);
	cr_assert_eq(resps(r, 2, 0, &ncont), 1);
	cr_assert_eq(ncont, 1);
	assert_body(&r[0], "hello");
	fx_end();
}

Test(hsrv, expect_100_continue_not_sent_over_the_limit)
{
	fx_start(NULL, 0);
	F.limit = 4;
	refused_with("POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
		     413, true, true);
	cr_assert_null(strstr(F.rx, "100 Continue"));
	fx_end();
}

Test(hsrv, expect_100_continue_not_sent_when_the_body_is_there)
{
	struct resp r[2];
	int ncont;

	fx_start(NULL, 0);
	fx_send("POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello");
	PUMP_UNTIL(nresps(0) == 1);
	cr_assert_eq(resps(r, 2, 0, &ncont), 1);
	cr_assert_eq(ncont, 0);
	fx_end();
}

/* ---- a held request whose client leaves --------------------------------- */

Test(hsrv, held_request_client_gone_calls_gone_once)
{
	fx_start(NULL, 0);
	F.mode = OWN_HOLD;
	F.hold_n = 1;
	fx_send("GET /held HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(F.nreq == 1);
	cr_assert_not_null(F.held);
	struct hsrv_req *held = F.held;
	fx_client_close();
	PUMP_UNTIL(F.ngone == 1);
	cr_assert_eq(F.ngone, 1);
	cr_assert_eq(F.gone_req, held);
	cr_assert_eq(F.gone_held, &F.token);
	cr_assert_eq(hsrv_connections(F.s), 0);
	fx_passes(5);
	cr_assert_eq(F.ngone, 1, "once");
	cr_assert_eq(F.rx_len, 0, "nothing sent");
	fx_end();
}

/* A half-close counts as going away (hsrv.h, like nginx). */
Test(hsrv, held_request_client_half_close_is_gone)
{
	fx_start(NULL, 0);
	F.mode = OWN_HOLD;
	F.hold_n = 1;
	fx_send("GET /held HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(F.nreq == 1);
	shutdown(F.cl, SHUT_WR);
	PUMP_UNTIL(F.ngone == 1);
	cr_assert_eq(F.ngone, 1);
	cr_assert_eq(F.gone_held, &F.token);
	PUMP_UNTIL(F.rx_eof);
	cr_assert(F.rx_eof);
	cr_assert_eq(F.rx_len, 0);
	fx_end();
}

Test(hsrv, free_with_a_held_request_does_not_call_gone)
{
	fx_start(NULL, 0);
	F.mode = OWN_HOLD;
	F.hold_n = 1;
	fx_send("GET /held HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(F.nreq == 1);
	cr_assert_not_null(F.held);
	hsrv_free(F.s);
	cr_assert_eq(F.ngone, 0);
	F.s = NULL;
	fx_client_close();
	event_base_free(F.base);
	free(F.rbody[0]);
	free(F.rx);
	cr_assert_eq(atomic_load(&F.budget.used), 0);
	memset(&F, 0, sizeof(F));
	u_assert_no_leaks();
}

/* ---- the memory budget --------------------------------------------------- */

Test(hsrv, body_over_the_budget_is_503_and_closes)
{
	static char body[20000];
	char head[128];

	fx_start(NULL, 8192);
	memset(body, 'x', sizeof(body));
	snprintf(head, sizeof(head), "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n\r\n",
		 sizeof(body));
	refused_with(head, 503, true, true);
	cr_assert_eq(atomic_load(&F.budget.used), 0);
	fx_end();
}

Test(hsrv, chunked_body_over_the_budget_is_503_and_closes)
{
	static char req[40000];
	size_t n;

	fx_start(NULL, 8192);
	n = (size_t)snprintf(req, sizeof(req),
			     "POST /big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 16; i++) {
		n += (size_t)snprintf(req + n, sizeof(req) - n, "400\r\n");
		memset(req + n, 'y', 0x400);
		n += 0x400;
		n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
	}
	n += (size_t)snprintf(req + n, sizeof(req) - n, "0\r\n\r\n");
	refused_with(req, 503, true, true);
	fx_end();
}

Test(hsrv, request_charge_is_given_back_when_answered)
{
	fx_start(NULL, 100000);
	F.mode = OWN_HOLD;
	F.hold_n = 1;
	F.charge = 50000;
	fx_send("GET /c HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(F.nreq == 1);
	cr_assert(F.charge_ok);
	cr_assert_geq(atomic_load(&F.budget.used), 50000);
	cr_assert_not(hsrv_req_charge(F.held, 60000), "over the budget: refused");
	cr_assert_lt(atomic_load(&F.budget.used), 60000, "nothing taken when refused");
	answer(F.held, 0);
	F.held = NULL;
	PUMP_UNTIL(nresps(0) == 1);
	cr_assert_eq(atomic_load(&F.budget.used), 0);
	fx_end();
}

/* ---- timeouts -------------------------------------------------------------- */

static void lim_short(struct hsrv_limits *lim)
{
	hsrv_limits_default(lim);
	lim->header_timeout_ms = 50;
	lim->body_timeout_ms = 50;
	lim->idle_timeout_ms = 50;
}

Test(hsrv, partial_head_times_out_408_and_closes)
{
	struct hsrv_limits lim;
	struct resp r[2];
	char v[32];

	lim_short(&lim);
	fx_start(&lim, 0);
	fx_send("GET /slow HTTP/1.1\r\nHost:");
	PUMP_UNTIL(F.rx_eof);
	cr_assert(F.rx_eof);
	cr_assert_eq(F.nrefuse, 1);
	cr_assert_eq(F.rstatus[0], 408);
	cr_assert_eq(resps(r, 2, 0, NULL), 1);
	cr_assert_eq(r[0].status, 408);
	cr_assert_str_eq(resp_header(&r[0], "Connection", v, sizeof(v)), "close");
	fx_end();
}

Test(hsrv, stalled_body_times_out_408_and_closes)
{
	struct hsrv_limits lim;
	struct resp r[2];

	lim_short(&lim);
	fx_start(&lim, 0);
	fx_send("POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
	PUMP_UNTIL(F.rx_eof);
	cr_assert(F.rx_eof);
	cr_assert_eq(F.nrefuse, 1);
	cr_assert_eq(F.rstatus[0], 408);
	cr_assert(F.rparsed[0]);
	cr_assert_eq(resps(r, 2, 0, NULL), 1);
	cr_assert_eq(r[0].status, 408);
	cr_assert_eq(F.nreq, 0);
	fx_end();
}

Test(hsrv, idle_connection_is_closed_silently)
{
	struct hsrv_limits lim;

	lim_short(&lim);
	fx_start(&lim, 0);
	PUMP_UNTIL(F.rx_eof);
	cr_assert(F.rx_eof);
	cr_assert_eq(F.rx_len, 0, "nothing sent");
	cr_assert_eq(F.nrefuse, 0);
	fx_end();
}

Test(hsrv, idle_after_a_request_is_closed_silently)
{
	struct hsrv_limits lim;

	lim_short(&lim);
	fx_start(&lim, 0);
	fx_send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(F.rx_eof);
	cr_assert(F.rx_eof);
	cr_assert_eq(nresps(0), 1);
	cr_assert_eq(F.nrefuse, 0);
	fx_end();
}

Test(hsrv, held_request_has_no_timeout)
{
	struct hsrv_limits lim;
	int64_t until;

	lim_short(&lim);
	fx_start(&lim, 0);
	F.mode = OWN_HOLD;
	F.hold_n = 1;
	fx_send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(F.nreq == 1);
	/* several idle/header/body timeouts' worth of passes */
	until = now_ms() + 300;
	while (now_ms() < until)
		fx_step();
	cr_assert_not(F.rx_eof);
	cr_assert_eq(F.nrefuse, 0);
	cr_assert_not_null(F.held);
	answer(F.held, 0);
	F.held = NULL;
	PUMP_UNTIL(nresps(0) == 1);
	cr_assert_eq(nresps(0), 1);
	fx_end();
}

/* A head trickled a byte at a time (each read well within any timeout)
 * still has header_timeout_ms for all of it: 408, closed. */
Test(hsrv, trickled_head_times_out_as_a_whole)
{
	static const char head[] = "GET /slow HTTP/1.1\r\nHost: h\r\nX-Pad: "
				   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	struct hsrv_limits lim;
	int64_t end;
	size_t i = 0;

	hsrv_limits_default(&lim);
	lim.header_timeout_ms = 50;
	fx_start(&lim, 0);
	/* a byte every pass, the bytes outlast the timeout many times over:
	 * the head never completes, so the only way out is the 408 */
	end = now_ms() + WAIT_MS;
	while (!F.rx_eof && now_ms() < end) {
		if (i < sizeof(head) - 1 && send(F.cl, head + i, 1, MSG_NOSIGNAL) == 1)
			i++;
		else if (i == sizeof(head) - 1)
			i = sizeof(head) - 2; /* keep going: the head never ends */
		fx_step();
	}
	cr_assert(F.rx_eof);
	cr_assert_eq(F.nrefuse, 1);
	cr_assert_eq(F.rstatus[0], 408);
	cr_assert_eq(F.nreq, 0);
	fx_end();
}

/* A client that reads nothing of a large reply is closed after
 * send_timeout_ms. */
Test(hsrv, reply_nobody_reads_is_closed_after_send_timeout)
{
	static char big[4 << 20];
	struct hsrv_limits lim;

	hsrv_limits_default(&lim);
	lim.send_timeout_ms = 50;
	fx_start(&lim, 0);
	memset(big, 'b', sizeof(big) - 1);
	F.body = big;
	fx_send("GET /big HTTP/1.1\r\nHost: h\r\n\r\n");
	/* pump the server only: the client does not read */
	{
		int64_t end = now_ms() + WAIT_MS;
		while (hsrv_connections(F.s) && now_ms() < end) {
			event_base_loop(F.base, EVLOOP_NONBLOCK);
			poll(NULL, 0, 1);
		}
	}
	cr_assert_eq(F.nreq, 1);
	cr_assert_eq(hsrv_connections(F.s), 0, "closed: the client read nothing");
	cr_assert_eq(hsrv_unsent(F.s), 0, "the reply is no longer counted");
	fx_end();
}

/* ---- read-ahead ---------------------------------------------------------- */

static int inq(int fd)
{
	int n = -1;

	cr_assert_eq(ioctl(fd, FIONREAD, &n), 0);
	return n;
}

/* A held request (after a first request with a body of `first` bytes,
 * answered: it leaves the input buffer that large), then the client
 * trickles 1 MiB of pipelined bytes until its socket is full. Returns how
 * many of them the server read (what the client sent less what is still
 * queued on the server's socket), and leaves the request held. */
static size_t read_ahead_of_held(size_t first)
{
	static char more[1 << 20];
	size_t sent = 0, stalls = 0, read_ahead;
	int sv[2], nreq = 0;

	fx_start(NULL, 0);
	/* a connection whose server end we can look at (FIONREAD on a dup) */
	fx_client_close();
	PUMP_UNTIL(hsrv_connections(F.s) == 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	F.cl = sv[0];
	cr_assert_eq(fcntl(F.cl, F_SETFL, fcntl(F.cl, F_GETFL) | O_NONBLOCK), 0);
	F.sdup = dup(sv[1]);
	cr_assert_geq(F.sdup, 0);
	cr_assert_eq(hsrv_adopt(F.s, sv[1]), 0);
	memset(more, 'a', sizeof(more));
	if (first) {
		char head[128];
		snprintf(head, sizeof(head), "POST /first HTTP/1.1\r\nHost: h\r\n"
			 "Content-Length: %zu\r\n\r\n", first);
		fx_send(head);
		fx_send_n(more, first);
		PUMP_UNTIL(nresps(0) == 1);
		cr_assert_eq(nresps(0), 1);
		nreq = 1;
	}
	F.mode = OWN_HOLD;
	F.hold_n = (unsigned)nreq + 1;
	fx_send("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n1");
	PUMP_UNTIL(F.nreq == (unsigned)nreq + 1);
	cr_assert_not_null(F.held);
	/* one long line, only parsed once the held request is answered */
	while (sent < sizeof(more) && stalls < FEW_PASSES) {
		size_t piece = sizeof(more) - sent < 20000 ? sizeof(more) - sent : 20000;
		ssize_t w = send(F.cl, more + sent, piece, MSG_NOSIGNAL);
		if (w > 0) {
			sent += (size_t)w;
			stalls = 0;
			fx_step(); /* a client that trickles: the server reads each piece */
			continue;
		}
		cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "%s", strerror(errno));
		stalls++;
		fx_step();
	}
	cr_assert_lt(sent, sizeof(more), "the server stopped reading before 1 MiB");
	read_ahead = sent - (size_t)inq(F.sdup);
	cr_log_info("first body %zu: sent %zu, read ahead %zu, budget used %zu", first, sent,
		    read_ahead, (size_t)atomic_load(&F.budget.used));
	cr_assert_eq(F.ngone, 0);
	close(F.sdup);
	F.sdup = -1;
	return read_ahead;
}

Test(hsrv, read_ahead_is_bounded_while_a_request_is_held)
{
	struct resp r[2];
	size_t ra = read_ahead_of_held(0);

	cr_assert_leq(ra, HSRV_READ_AHEAD + 4096,
		      "read ahead %zu bytes of a held request (HSRV_READ_AHEAD %d)", ra,
		      HSRV_READ_AHEAD);
	cr_assert_eq(F.rx_len, 0);
	/* answering lets it flow again: the long line then ends in 414 */
	answer(F.held, 0);
	F.held = NULL;
	PUMP_UNTIL(nresps(0) == 2 || F.rx_eof);
	cr_assert_eq(resps(r, 2, 0, NULL), 2);
	cr_assert_eq(r[0].status, 200);
	cr_assert_eq(r[1].status, 414, "then the long line is refused: %d", r[1].status);
	fx_end();
}

/* hsrv.h: "reads ahead at most HSRV_READ_AHEAD bytes while its request
 * runs", also after a request whose body left the input buffer between
 * half and all of HSRV_READ_AHEAD (kept: not over HSRV_SHRINK_OVER). The
 * first version doubled the buffer past req_end + HSRV_READ_AHEAD and
 * filled it: 80000 bytes read ahead here, up to about twice the bound. */
Test(hsrv, read_ahead_is_bounded_after_a_large_request)
{
	size_t ra = read_ahead_of_held(60000);

	cr_assert_leq(ra, HSRV_READ_AHEAD + 4096,
		      "read ahead %zu bytes of a held request (HSRV_READ_AHEAD %d)", ra,
		      HSRV_READ_AHEAD);
	answer(F.held, 1);
	F.held = NULL;
	fx_end();
}

/* The same, with a held request and a pipelined valid request after
 * 200 KiB of valid bytes: everything flows once it is answered. */
Test(hsrv, read_ahead_resumes_after_the_answer)
{
	static char body[200 * 1024];
	char head[128];
	struct resp r[3];
	size_t hl;

	fx_start(NULL, 0);
	F.mode = OWN_HOLD;
	F.hold_n = 1;
	fx_send("GET /held HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(F.nreq == 1);
	memset(body, 'z', sizeof(body));
	hl = (size_t)snprintf(head, sizeof(head),
			      "POST /next HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n\r\n",
			      sizeof(body));
	/* send what fits without blocking */
	{
		size_t off = 0, stalls = 0;
		static char all[sizeof(body) + 128];
		memcpy(all, head, hl);
		memcpy(all + hl, body, sizeof(body));
		while (off < hl + sizeof(body) && stalls < FEW_PASSES) {
			ssize_t w = send(F.cl, all + off, hl + sizeof(body) - off, MSG_NOSIGNAL);
			if (w > 0) {
				off += (size_t)w;
				stalls = 0;
				continue;
			}
			stalls++;
			fx_step();
		}
		cr_assert_eq(F.nreq, 1);
		answer(F.held, 0);
		F.held = NULL;
		fx_send_n(all + off, hl + sizeof(body) - off);
	}
	PUMP_UNTIL(nresps(0) == 2);
	cr_assert_eq(resps(r, 3, 0, NULL), 2);
	cr_assert_eq(F.nreq, 2);
	cr_assert_eq(F.rbody_len[1], sizeof(body));
	cr_assert_eq(r[1].body_len, sizeof(body));
	fx_end();
}

/* ---- drain ----------------------------------------------------------------- */

Test(hsrv, drain_closes_idle_and_closes_after_the_held_reply)
{
	struct resp r[2];
	char v[32];

	fx_start(NULL, 0);
	F.mode = OWN_HOLD;
	F.hold_n = 1;
	fx_send("GET /held HTTP/1.1\r\nHost: h\r\n\r\n");
	PUMP_UNTIL(F.nreq == 1);
	hsrv_drain(F.s);
	cr_assert_eq(hsrv_connections(F.s), 1, "a busy connection stays until its reply");
	answer(F.held, 0);
	F.held = NULL;
	PUMP_UNTIL(F.rx_eof);
	cr_assert(F.rx_eof);
	cr_assert_eq(resps(r, 2, 0, NULL), 1);
	cr_assert_str_eq(resp_header(&r[0], "Connection", v, sizeof(v)), "close");
	fx_end();
}

/* ---- the fuzzer's seeds --------------------------------------------------- */

/* Every file of the fuzzer's corpus (make runs the suite from the
 * repository root) through the fuzzer's driver: no invariant broken, and
 * the seeds reach the refusals they are there for. */
Test(hsrv, fuzz_corpus_replays_clean)
{
	const char *dir = "tests/fuzz/corpus/hsrv";
	static const int statuses[] = {400, 411, 413, 414, 417, 431, 501, 503, 505};
	const struct hsd_stats *st = hsd_stats();
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned files = 0;

	cr_assert_not_null(d, "%s (run from the repository root)", dir);
	while ((de = readdir(d))) {
		char path[512];
		size_t len;
		char *data;
		const char *bad;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		data = u_read_file(path, &len);
		cr_assert_not_null(data, "%s", path);
		bad = hsd_run((const uint8_t *)data, len);
		cr_assert_null(bad, "%s: %s", de->d_name, bad);
		free(data);
		files++;
	}
	closedir(d);
	cr_assert_geq(files, 20, "the seed corpus is there");
	cr_log_info("%u seeds: %lu requests, %lu refusals, %lu held, %lu gone, %lu replies checked",
		    files, st->requests, st->refusals, st->held, st->gone, st->replies_checked);
	cr_assert_gt(st->held, 0);
	cr_assert_gt(st->replies_checked, files);
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		cr_assert_gt(st->refused[statuses[i]], 0, "a seed is refused with %d", statuses[i]);
	hsd_teardown();
	u_assert_no_leaks();
}

/* A client that sends its request and shuts its write side at once (nc -N,
 * some HTTP/1.0 clients) still gets the whole reply when it is larger than
 * the socket buffer: the half-close is noticed while the reply is being
 * written. The first version took that EOF for a hang-up and dropped the
 * rest of the reply: 219264 of 1048575 body bytes arrived. */
Test(hsrv, half_close_after_the_request_still_gets_a_large_reply)
{
	static char big[1 << 20];
	struct resp r[2];

	fx_start(NULL, 0);
	memset(big, 'b', sizeof(big) - 1);
	F.body = big;
	fx_send("GET /big HTTP/1.0\r\n\r\n");
	shutdown(F.cl, SHUT_WR);
	PUMP_UNTIL(F.rx_eof);
	cr_assert(F.rx_eof);
	cr_assert_eq(F.nreq, 1);
	cr_assert_eq(resps(r, 2, 0, NULL), 1, "the whole reply (%zu bytes read)", F.rx_len);
	cr_assert_eq(r[0].body_len, sizeof(big) - 1);
	fx_end();
}
