/*
 * hookd's own HTTP/1.x transport (issue 12), driven over raw loopback TCP
 * (tests/support/rawhttp.h): every refusal class with its status, JSON body
 * and what happens to the connection (closed, or kept for the next
 * request), every limit of the config's "http" object, keep-alive and
 * pipelining, HEAD, Expect: 100-continue, the per-connection output bound,
 * max_connections, reload and drain with connections open.
 *
 *   make build/tests/integration && build/tests/integration --filter 'transport/?*'
 *
 * Names: rNNN_* is a refusal with status NNN; the others are behaviours.
 *
 * Every wait is bounded (rawhttp's timeouts, scaled by hd_scale()); no test
 * asserts an upper bound on how long something took. Two assert a lower
 * bound: a timeout must not fire before its time.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"
#include "../support/rawhttp.h"

TestSuite(transport, .fini = hd_suite_teardown);

/* libevent times its timers with CLOCK_MONOTONIC_COARSE (a tick of up to
 * 10 ms here): a timer may fire that much before its time measured with
 * the precise clock. */
#define COARSE_MS 25

/* How long to wait for a reply the server owes now (scaled by rawhttp). */
#define REPLY_MS 10000
/* How long to watch a connection the server must keep open. */
#define OPEN_MS 200

#define HOST "Host: 127.0.0.1\r\n"

static const char *const plugins[] = {"echo", "delay", NULL};

/* Criterion runs each test in a process of its own: one daemon per test,
 * static for hd_suite_teardown. */
static struct hd d;

static void start(const char *members)
{
	hd_start(&d, members, plugins);
}

/* ---- assertions on replies ---------------------------------------------- */

/* Read one reply (asserts it came, whole and well-formed). */
static void read_reply(struct rh_conn *c, struct rh_reply *r, bool head, const char *what)
{
	int rc = rh_read_reply(c, r, REPLY_MS, head);

	cr_assert_eq(rc, RH_OK, "%s: no reply: %s; unread bytes: \"%s\"", what, rh_result_str(rc),
		     rh_peek(c));
}

/* The JSON body of r, parsed (asserts it parses). Caller frees. */
static cJSON *json_body(const struct rh_reply *r, const char *what)
{
	cJSON *o = cJSON_ParseWithLength(r->body, r->body_len);

	cr_assert_not_null(o, "%s: the body is not JSON: \"%s\"", what, r->body);
	return o;
}

/* The headers every reply of the transport has. */
static void expect_framing(const struct rh_reply *r, const char *what)
{
	const char *ct = rh_header(r, "Content-Type");

	cr_assert_str_eq(r->version, "HTTP/1.1", "%s", what);
	cr_assert_not_null(rh_header(r, "Date"), "%s: no Date header", what);
	cr_assert_eq(rh_header_count(r, "Content-Length"), 1, "%s: one Content-Length", what);
	cr_assert_eq(r->content_length, (long long)r->body_len, "%s", what);
	cr_assert(ct && strncmp(ct, "application/json", 16) == 0, "%s: Content-Type %s", what,
		  ct ? ct : "(none)");
}

/* A refusal: `status`, the transport's headers, a JSON body whose "error"
 * is a non-empty string and whose "status" is the HTTP status; a
 * "request_id", if any, is the X-Request-Id header's. Returns the body
 * (caller frees). */
static cJSON *expect_refusal(const struct rh_reply *r, int status, const char *what)
{
	cJSON *o, *e, *s, *rid;
	const char *hrid = rh_header(r, "X-Request-Id");

	cr_assert_eq(r->status, status, "%s: status %d (%s), expected %d; body: %s", what, r->status,
		     r->reason, status, r->body);
	expect_framing(r, what);
	o = json_body(r, what);
	e = cJSON_GetObjectItemCaseSensitive(o, "error");
	s = cJSON_GetObjectItemCaseSensitive(o, "status");
	cr_assert(cJSON_IsString(e) && e->valuestring[0], "%s: no \"error\" string: %s", what,
		  r->body);
	cr_assert(cJSON_IsNumber(s) && s->valuedouble == status, "%s: \"status\" is not %d: %s",
		  what, status, r->body);
	rid = cJSON_GetObjectItemCaseSensitive(o, "request_id");
	if (rid && hrid)
		cr_assert_str_eq(rid->valuestring, hrid, "%s: request_id differs from X-Request-Id",
				 what);
	cr_assert_eq(r->body_len > 0 ? r->body[r->body_len - 1] : 0, '\n',
		     "%s: the body does not end with a newline", what);
	return o;
}

/* A refusal of a request to /hooks/<hook>: it names the hook and the
 * request id. */
static void expect_hook_named(const struct rh_reply *r, const cJSON *o, const char *hook,
			      const char *what)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "hook");
	const char *rid = rh_header(r, "X-Request-Id");

	cr_assert(cJSON_IsString(h) && strcmp(h->valuestring, hook) == 0,
		  "%s: \"hook\" is not \"%s\": %s", what, hook, r->body);
	cr_assert(rid && rid[0], "%s: no X-Request-Id header", what);
}

/* The server closes the connection after r: it said so, and EOF follows
 * (no byte more). */
static void expect_closed(struct rh_conn *c, const struct rh_reply *r, const char *what)
{
	int rc;

	cr_assert(rh_header_has_token(r, "Connection", "close"),
		  "%s: the reply has no \"Connection: close\"", what);
	rc = rh_wait_close(c, REPLY_MS);
	cr_assert_eq(rc, RH_CLOSED, "%s: the connection was not closed: %s; bytes: \"%s\"", what,
		     rh_result_str(rc), rh_peek(c));
}

/* Send GET /health on c and expect 200 (the connection still works). */
static void expect_health(struct rh_conn *c, const char *what)
{
	struct rh_reply r;
	cJSON *o;

	rh_send_str(c, "GET /health HTTP/1.1\r\n" HOST "\r\n");
	read_reply(c, &r, false, what);
	cr_assert_eq(r.status, 200, "%s: GET /health answered %d: %s", what, r.status, r.body);
	o = json_body(&r, what);
	const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "status"));
	cr_assert(st && strcmp(st, "ok") == 0, "%s: GET /health: %s", what, r.body);
	cJSON_Delete(o);
	rh_reply_free(&r);
}

/* The server keeps the connection after r: no "Connection: close", it
 * stays open and silent, and the next request on it is answered. */
static void expect_open(struct rh_conn *c, const struct rh_reply *r, const char *what)
{
	int rc;

	cr_assert(!rh_header_has_token(r, "Connection", "close"),
		  "%s: the reply has \"Connection: close\"", what);
	rc = rh_wait_close(c, OPEN_MS);
	cr_assert_eq(rc, RH_TIMEOUT, "%s: after the reply: %s; bytes: \"%s\"", what,
		     rh_result_str(rc), rh_peek(c));
	expect_health(c, what);
}

/* Whichever the server chose, it did what its reply said. */
static void expect_consistent(struct rh_conn *c, const struct rh_reply *r, const char *what)
{
	bool closes = rh_header_has_token(r, "Connection", "close");

	cr_log_info("%s: the server %s the connection", what, closes ? "closes" : "keeps");
	if (closes)
		expect_closed(c, r, what);
	else
		expect_open(c, r, what);
}

/* On a fresh connection: send `req` (len bytes, which may hold NULs),
 * expect the refusal `status` and a closed or kept connection. Returns
 * nothing; the daemon must be running. */
static void refuse_on_new_connection(const char *req, size_t len, int status, bool closes,
				     const char *what)
{
	struct rh_conn c;
	struct rh_reply r;
	size_t sent;
	int rc;

	rh_connect(&c, d.port);
	/* the server may refuse (and close) before it has read all of it */
	rc = rh_send_some(&c, req, len, 10000, &sent);
	cr_assert(rc == RH_OK || rc == RH_CLOSED, "%s: send: %s", what, rh_result_str(rc));
	read_reply(&c, &r, false, what);
	cJSON_Delete(expect_refusal(&r, status, what));
	/* X-Request-Id only for a request whose target is /hooks/<name> */
	if (!memmem(req, strcspn(req, "\r\n"), " /hooks/", 8))
		cr_assert_null(rh_header(&r, "X-Request-Id"), "%s: an X-Request-Id for a target "
			       "outside /hooks/", what);
	if (closes)
		expect_closed(&c, &r, what);
	else
		expect_open(&c, &r, what);
	rh_reply_free(&r);
	rh_close(&c);
}

/* One refusal test: a daemon with `members`, the request, the refusal. */
static void refusal(const char *members, const char *req, size_t len, int status, bool closes,
		    const char *what)
{
	start(members);
	refuse_on_new_connection(req, len, status, closes, what);
	cr_assert_eq(hd_stop(&d), 0);
}

/* The members of a config whose "http" object is `fmt` (printf'ed). */
static const char *http_members(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static const char *http_members(char *buf, size_t len, const char *fmt, ...)
{
	char inner[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(inner, sizeof(inner), fmt, ap);
	va_end(ap);
	snprintf(buf, len, "\"http\": {%s}", inner);
	return buf;
}

/* A POST head to path with Content-Length n (and extra header lines). */
static int post_head(char *buf, size_t len, const char *path, size_t n, const char *extra)
{
	return snprintf(buf, len,
			"POST %s HTTP/1.1\r\n" HOST "Content-Type: application/json\r\n"
			"Content-Length: %zu\r\n%s\r\n",
			path, n, extra ? extra : "");
}

/* A JSON object of exactly n bytes (n >= 16): {"pad":"xxx..."} */
static char *json_of_size(size_t n)
{
	char *s = malloc(n + 1);

	cr_assert_not_null(s);
	memset(s, 'x', n);
	memcpy(s, "{\"pad\":\"", 8);
	memcpy(s + n - 2, "\"}", 2);
	s[n] = '\0';
	return s;
}

/* /proc/<pid>/status VmRSS in KiB, -1 if unreadable. (Not hd_read_file:
 * a /proc file has size 0 for fseek/ftell.) */
static long rss_kib(pid_t pid)
{
	char path[64], buf[4096], *p;
	size_t len = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	p = strstr(buf, "VmRSS:");
	return p ? strtol(p + 6, NULL, 10) : -1;
}

/* ==== keep-alive, pipelining, HEAD, versions (also valid for evhttp) ===== */

Test(transport, keepalive_serves_two_requests_on_one_connection, .timeout = 30)
{
	struct rh_conn c;

	start("");
	rh_connect(&c, d.port);
	expect_health(&c, "first GET /health");
	cr_assert_eq(rh_wait_close(&c, OPEN_MS), RH_TIMEOUT, "closed or spoke after a reply");
	expect_health(&c, "second GET /health on the same connection");
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(transport, unknown_route_is_404_json_and_keeps_the_connection, .timeout = 30)
{
	struct rh_conn c;
	struct rh_reply r;

	start("");
	rh_connect(&c, d.port);
	rh_send_str(&c, "GET /nowhere HTTP/1.1\r\n" HOST "\r\n");
	read_reply(&c, &r, false, "GET /nowhere");
	cJSON_Delete(expect_refusal(&r, 404, "GET /nowhere"));
	cr_assert_null(rh_header(&r, "X-Request-Id"), "X-Request-Id only for /hooks/<name>");
	expect_open(&c, &r, "after a 404");
	rh_reply_free(&r);
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(transport, echo_round_trip_with_request_id, .timeout = 30)
{
	static const char body[] = "{\"a\":[1,2.5,\"x\"],\"b\":null}";
	struct rh_conn c;
	struct rh_reply r;
	char head[512];

	start("");
	rh_connect(&c, d.port);
	post_head(head, sizeof(head), "/hooks/echo", strlen(body), NULL);
	rh_send_str(&c, head);
	rh_send_str(&c, body);
	read_reply(&c, &r, false, "POST /hooks/echo");
	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	expect_framing(&r, "POST /hooks/echo");
	cr_assert_str_eq(r.body, "{\"a\":[1,2.5,\"x\"],\"b\":null}\n");
	cr_assert_not_null(rh_header(&r, "X-Request-Id"), "a hook's reply has an X-Request-Id");
	expect_open(&c, &r, "after a hook call");
	rh_reply_free(&r);

	/* the client's own request id comes back */
	post_head(head, sizeof(head), "/hooks/echo", 2, "X-Request-Id: rawhttp-1\r\n");
	rh_send_str(&c, head);
	rh_send_str(&c, "{}");
	read_reply(&c, &r, false, "POST /hooks/echo with X-Request-Id");
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{}\n");
	cr_assert_str_eq(rh_header(&r, "X-Request-Id"), "rawhttp-1");
	rh_reply_free(&r);
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

/* `req` (a POST /hooks/echo of {"a":[1,2,3]}) is answered with that body,
 * and the connection carries on. */
static void echo_keeps_open(const char *req, size_t len, const char *what)
{
	struct rh_conn c;
	struct rh_reply r;

	start("");
	rh_connect(&c, d.port);
	rh_send(&c, req, len);
	read_reply(&c, &r, false, what);
	cr_assert_eq(r.status, 200, "%s: %d %s", what, r.status, r.body);
	cr_assert_str_eq(r.body, "{\"a\":[1,2,3]}\n", "%s", what);
	expect_open(&c, &r, what);
	rh_reply_free(&r);
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

/* A chunked body is served like a Content-Length one. */
Test(transport, chunked_body_round_trip, .timeout = 30)
{
	static const char req[] = "POST /hooks/echo HTTP/1.1\r\n" HOST
				  "Transfer-Encoding: chunked\r\n\r\n"
				  "4\r\n{\"a\"\r\n"
				  "A\r\n:[1,2,3]}\n\r\n"
				  "0\r\n\r\n";

	echo_keeps_open(req, sizeof(req) - 1, "a chunked POST /hooks/echo");
}

/* Not in the transport's spec but in h1.h: chunk extensions and trailer
 * fields are checked and ignored (evhttp answers 413 to an extension). */
Test(transport, chunk_extensions_and_trailers_are_accepted, .timeout = 30)
{
	static const char req[] = "POST /hooks/echo HTTP/1.1\r\n" HOST
				  "Transfer-Encoding: chunked\r\n\r\n"
				  "4;ext=1\r\n{\"a\"\r\n"
				  "A;name=\"quoted\"\r\n:[1,2,3]}\n\r\n"
				  "0\r\nX-Trailer: t\r\n\r\n";

	echo_keeps_open(req, sizeof(req) - 1, "chunk extensions and a trailer");
}

/* All written at once, a slow call among them: answered in order. */
Test(transport, pipelined_requests_are_answered_in_order, .timeout = 30)
{
	static const char reqs[] =
		"GET /health HTTP/1.1\r\n" HOST "\r\n"
		"GET /health HTTP/1.1\r\n" HOST "\r\n"
		"GET /nowhere HTTP/1.1\r\n" HOST "\r\n"
		"POST /hooks/delay HTTP/1.1\r\n" HOST "Content-Length: 11\r\n\r\n{\"ms\":200}\n"
		"POST /hooks/echo HTTP/1.1\r\n" HOST "Content-Length: 7\r\n\r\n{\"n\":5}"
		"GET /health HTTP/1.1\r\n" HOST "\r\n";
	static const int want[] = {200, 200, 404, 200, 200, 200};
	static const char *const bodies[] = {NULL, NULL, NULL, "{\"ms\":200}\n", "{\"n\":5}\n", NULL};
	struct rh_conn c;
	struct rh_reply r;
	char what[64];

	start("");
	rh_connect(&c, d.port);
	rh_send(&c, reqs, sizeof(reqs) - 1);
	for (int i = 0; i < 6; i++) {
		snprintf(what, sizeof(what), "pipelined reply %d", i);
		read_reply(&c, &r, false, what);
		cr_assert_eq(r.status, want[i], "%s: %d, expected %d: %s", what, r.status, want[i],
			     r.body);
		if (bodies[i])
			cr_assert_str_eq(r.body, bodies[i], "%s", what);
		else if (want[i] == 200)
			cr_assert(strstr(r.body, "\"status\":\"ok\""), "%s: %s", what, r.body);
		rh_reply_free(&r);
	}
	expect_open(&c, &(struct rh_reply){0}, "after the pipeline");
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(transport, http10_without_keepalive_is_answered_then_closed, .timeout = 30)
{
	struct rh_conn c;
	struct rh_reply r;

	start("");
	rh_connect(&c, d.port);
	rh_send_str(&c, "GET /health HTTP/1.0\r\n\r\n");
	read_reply(&c, &r, false, "HTTP/1.0 GET /health");
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, "\"status\":\"ok\""), "%s", r.body);
	expect_closed(&c, &r, "HTTP/1.0 without keep-alive");
	rh_reply_free(&r);
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(transport, http10_with_keepalive_stays_open, .timeout = 30)
{
	struct rh_conn c;
	struct rh_reply r;

	start("");
	rh_connect(&c, d.port);
	for (int i = 0; i < 2; i++) {
		rh_send_str(&c, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
		read_reply(&c, &r, false, "HTTP/1.0 keep-alive GET /health");
		cr_assert_eq(r.status, 200);
		cr_assert(rh_header_has_token(&r, "Connection", "keep-alive"),
			  "reply %d to an HTTP/1.0 keep-alive request has no Connection: keep-alive",
			  i);
		cr_assert_eq(rh_wait_close(&c, OPEN_MS), RH_TIMEOUT, "closed after reply %d", i);
		rh_reply_free(&r);
	}
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(transport, connection_close_from_the_client_is_honoured, .timeout = 30)
{
	struct rh_conn c;
	struct rh_reply r;

	start("");
	rh_connect(&c, d.port);
	rh_send_str(&c, "GET /health HTTP/1.1\r\n" HOST "Connection: close\r\n\r\n");
	read_reply(&c, &r, false, "GET /health with Connection: close");
	cr_assert_eq(r.status, 200);
	expect_closed(&c, &r, "Connection: close from the client");
	rh_reply_free(&r);
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(transport, head_has_the_get_length_and_no_body, .timeout = 30)
{
	struct rh_conn c;
	struct rh_reply r;
	long long len;

	start("");
	rh_connect(&c, d.port);
	rh_send_str(&c, "HEAD /health HTTP/1.1\r\n" HOST "\r\n");
	read_reply(&c, &r, true, "HEAD /health");
	cr_assert_eq(r.status, 200);
	len = r.content_length;
	cr_assert_gt(len, 0, "HEAD /health has no Content-Length");
	rh_reply_free(&r);
	/* no body bytes follow: they would be read as the next reply */
	cr_assert_eq(rh_wait_close(&c, OPEN_MS), RH_TIMEOUT, "after HEAD: bytes \"%s\"",
		     rh_peek(&c));
	rh_send_str(&c, "GET /health HTTP/1.1\r\n" HOST "\r\n");
	read_reply(&c, &r, false, "GET /health after HEAD");
	cr_assert_eq(r.status, 200);
	/* nothing ran in between: the same document, the same length */
	cr_assert_eq((long long)r.body_len, len, "GET body %zu bytes, HEAD said %lld: %s",
		     r.body_len, len, r.body);
	rh_reply_free(&r);
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(transport, expect_100_continue_then_the_body, .timeout = 30)
{
	struct rh_conn c;
	struct rh_reply r;
	char head[512];

	start("");
	rh_connect(&c, d.port);
	post_head(head, sizeof(head), "/hooks/echo", 7, "Expect: 100-continue\r\n");
	rh_send_str(&c, head);
	read_reply(&c, &r, false, "100 Continue before the body");
	cr_assert_eq(r.status, 100, "expected 100 Continue first, got %d %s", r.status, r.body);
	rh_reply_free(&r);
	rh_send_str(&c, "{\"a\":1}");
	read_reply(&c, &r, false, "the final reply");
	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	cr_assert_str_eq(r.body, "{\"a\":1}\n");
	expect_open(&c, &r, "after 100-continue");
	rh_reply_free(&r);
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(transport, expect_100_continue_over_max_body_is_413_without_continue, .timeout = 30)
{
	struct rh_conn c;
	struct rh_reply r;
	char head[512];
	cJSON *o;

	start("\"max_body\": 1024");
	rh_connect(&c, d.port);
	post_head(head, sizeof(head), "/hooks/echo", 5000, "Expect: 100-continue\r\n");
	rh_send_str(&c, head);
	read_reply(&c, &r, false, "Expect: 100-continue over max_body");
	cr_assert_neq(r.status, 100, "100 Continue for a body over max_body");
	o = expect_refusal(&r, 413, "Expect: 100-continue over max_body");
	expect_hook_named(&r, o, "echo", "413 with Expect");
	cJSON_Delete(o);
	expect_closed(&c, &r, "413 with Expect");
	rh_reply_free(&r);
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

/* ==== 400 + close ======================================================== */

#define REFUSAL_TEST(name, members, req, status, closes)                                  \
	Test(transport, name, .timeout = 30)                                              \
	{                                                                                 \
		static const char r_[] = req;                                             \
		refusal(members, r_, sizeof(r_) - 1, status, closes, #name);              \
	}

REFUSAL_TEST(r400_request_line_with_an_extra_token, "",
	     "GET / HTTP/1.1 x\r\n" HOST "\r\n", 400, true)
REFUSAL_TEST(r400_bare_lf_line_endings, "",
	     "GET /health HTTP/1.1\n" HOST "\n", 400, true)
REFUSAL_TEST(r400_space_before_the_colon, "",
	     "GET /health HTTP/1.1\r\n" HOST "X-Thing : 1\r\n\r\n", 400, true)
REFUSAL_TEST(r400_invalid_char_in_a_field_name, "",
	     "GET /health HTTP/1.1\r\n" HOST "X@Thing: 1\r\n\r\n", 400, true)
REFUSAL_TEST(r400_nul_in_a_field_value, "",
	     "GET /health HTTP/1.1\r\n" HOST "X-Thing: a\0b\r\n\r\n", 400, true)
REFUSAL_TEST(r400_content_length_with_a_sign, "",
	     "POST /hooks/echo HTTP/1.1\r\n" HOST "Content-Length: +7\r\n\r\n{\"a\":1}", 400, true)
REFUSAL_TEST(r400_two_different_content_lengths, "",
	     "POST /hooks/echo HTTP/1.1\r\n" HOST "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
	     400, true)
REFUSAL_TEST(r400_content_length_with_chunked, "",
	     "POST /hooks/echo HTTP/1.1\r\n" HOST "Content-Length: 2\r\n"
	     "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
	     400, true)
REFUSAL_TEST(r400_chunk_size_in_0x_form, "",
	     "POST /hooks/echo HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n"
	     "0x7\r\n{\"a\":1}\r\n0\r\n\r\n",
	     400, true)
/* no CRLF after the chunk's data */
REFUSAL_TEST(r400_bad_chunk_framing, "",
	     "POST /hooks/echo HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n"
	     "2\r\n{}XY0\r\n\r\n",
	     400, true)
REFUSAL_TEST(r400_obs_fold, "",
	     "GET /health HTTP/1.1\r\n" HOST "X-Thing: a\r\n b\r\n\r\n", 400, true)
REFUSAL_TEST(r400_absolute_form_target, "",
	     "GET http://127.0.0.1/health HTTP/1.1\r\n" HOST "\r\n", 400, true)

/* ==== 400 without close ================================================= */

REFUSAL_TEST(r400_http11_without_host_keeps_the_connection, "",
	     "GET /health HTTP/1.1\r\n\r\n", 400, false)

/* ==== 411, 413, 414, 417, 431, 501, 505 ================================== */

/* no body follows, so the framing holds: the connection goes on */
REFUSAL_TEST(r411_post_without_a_length, "",
	     "POST /hooks/echo HTTP/1.1\r\n" HOST "Content-Type: application/json\r\n\r\n", 411,
	     false)

/* Only the head is sent: the 413 must come before any body byte. */
Test(transport, r413_content_length_over_the_global_max_body, .timeout = 30)
{
	struct rh_conn c;
	struct rh_reply r;
	char head[512];
	cJSON *o;

	start("\"max_body\": 1024");
	rh_connect(&c, d.port);
	post_head(head, sizeof(head), "/hooks/echo", 1025, NULL);
	rh_send_str(&c, head);
	read_reply(&c, &r, false, "CL 1025 over max_body 1024, head only");
	o = expect_refusal(&r, 413, "CL over max_body");
	expect_hook_named(&r, o, "echo", "CL over max_body");
	cJSON_Delete(o);
	expect_closed(&c, &r, "CL over max_body");
	rh_reply_free(&r);
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(transport, r413_content_length_over_a_hooks_own_max_body, .timeout = 30)
{
	struct rh_conn c;
	struct rh_reply r;
	char head[512], *body = json_of_size(1000);
	cJSON *o;

	start("\"hooks\": {\"echo\": {\"max_body\": 512}}");
	rh_connect(&c, d.port);
	post_head(head, sizeof(head), "/hooks/echo", 1000, NULL);
	rh_send_str(&c, head);
	read_reply(&c, &r, false, "CL 1000 over echo's max_body 512, head only");
	o = expect_refusal(&r, 413, "CL over the hook's max_body");
	expect_hook_named(&r, o, "echo", "CL over the hook's max_body");
	cJSON_Delete(o);
	expect_closed(&c, &r, "CL over the hook's max_body");
	rh_reply_free(&r);
	rh_close(&c);

	/* the same body to a hook without its own limit (global: 1 MiB) */
	rh_connect(&c, d.port);
	post_head(head, sizeof(head), "/hooks/delay", 1000, NULL);
	rh_send_str(&c, head);
	rh_send_str(&c, body);
	read_reply(&c, &r, false, "the same body to /hooks/delay");
	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	rh_reply_free(&r);
	rh_close(&c);
	free(body);
	cr_assert_eq(hd_stop(&d), 0);
}

Test(transport, r413_chunked_body_over_max_body, .timeout = 30)
{
	struct rh_conn c;
	struct rh_reply r;
	char *chunk = json_of_size(2000), req[4096];
	size_t sent;
	int n, rc;
	cJSON *o;

	start("\"max_body\": 1024");
	rh_connect(&c, d.port);
	/* one chunk of 2000 bytes: its size line alone takes the body over */
	n = snprintf(req, sizeof(req),
		     "POST /hooks/echo HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n"
		     "%x\r\n%s\r\n0\r\n\r\n",
		     2000, chunk);
	rc = rh_send_some(&c, req, (size_t)n, 10000, &sent);
	cr_assert(rc == RH_OK || rc == RH_CLOSED, "send: %s", rh_result_str(rc));
	read_reply(&c, &r, false, "chunked over max_body");
	o = expect_refusal(&r, 413, "chunked over max_body");
	expect_hook_named(&r, o, "echo", "chunked over max_body");
	cJSON_Delete(o);
	expect_closed(&c, &r, "chunked over max_body");
	rh_reply_free(&r);
	rh_close(&c);

	/* several small chunks whose sum is over it */
	rh_connect(&c, d.port);
	n = snprintf(req, sizeof(req),
		     "POST /hooks/echo HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 4; i++)
		n += snprintf(req + n, sizeof(req) - (size_t)n, "1f4\r\n%.500s\r\n", chunk);
	n += snprintf(req + n, sizeof(req) - (size_t)n, "0\r\n\r\n");
	rc = rh_send_some(&c, req, (size_t)n, 10000, &sent);
	cr_assert(rc == RH_OK || rc == RH_CLOSED, "send: %s", rh_result_str(rc));
	read_reply(&c, &r, false, "4 chunks of 500 over max_body 1024");
	cJSON_Delete(expect_refusal(&r, 413, "4 chunks of 500 over max_body 1024"));
	expect_closed(&c, &r, "4 chunks of 500 over max_body 1024");
	rh_reply_free(&r);
	rh_close(&c);
	free(chunk);
	cr_assert_eq(hd_stop(&d), 0);
}

/* The budget counts values (nodes): [1,...,20] is 21 of them. */
Test(transport, r413_json_with_too_many_values_keeps_the_connection, .timeout = 30)
{
	char members[256], body[128], head[256];
	struct rh_conn c;
	struct rh_reply r;
	int n = 0;

	start(http_members(members, sizeof(members), "\"max_json_values\": 10"));
	n += snprintf(body + n, sizeof(body) - (size_t)n, "[");
	for (int i = 1; i <= 20; i++)
		n += snprintf(body + n, sizeof(body) - (size_t)n, "%s%d", i > 1 ? "," : "", i);
	snprintf(body + n, sizeof(body) - (size_t)n, "]");
	rh_connect(&c, d.port);
	post_head(head, sizeof(head), "/hooks/echo", strlen(body), NULL);
	rh_send_str(&c, head);
	rh_send_str(&c, body);
	read_reply(&c, &r, false, "21 JSON values, max_json_values 10");
	cJSON_Delete(expect_refusal(&r, 413, "too many JSON values"));
	expect_open(&c, &r, "after too many JSON values");
	rh_reply_free(&r);
	/* under the budget, on the same connection */
	post_head(head, sizeof(head), "/hooks/echo", 7, NULL);
	rh_send_str(&c, head);
	rh_send_str(&c, "[1,2,3]");
	read_reply(&c, &r, false, "4 JSON values");
	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	cr_assert_str_eq(r.body, "[1,2,3]\n");
	rh_reply_free(&r);
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

/* The default max_line (8192): a 9000-byte target. */
Test(transport, r414_request_line_over_max_line, .timeout = 30)
{
	size_t n = 9000;
	char *req = malloc(n + 64);
	int len;

	memset(req, 'a', n + 64);
	memcpy(req, "GET /", 5);
	len = snprintf(req + n, 64, " HTTP/1.1\r\n" HOST "\r\n");
	start("");
	refuse_on_new_connection(req, n + (size_t)len, 414, true, "a request line of 9000 bytes");
	free(req);
	cr_assert_eq(hd_stop(&d), 0);
}

/* The spec does not say whether a 417 closes: the reply must say what the
 * server does, and the server must do it. */
Test(transport, r417_unknown_expectation, .timeout = 30)
{
	struct rh_conn c;
	struct rh_reply r;

	start("");
	rh_connect(&c, d.port);
	rh_send_str(&c, "GET /health HTTP/1.1\r\n" HOST "Expect: something\r\n\r\n");
	read_reply(&c, &r, false, "Expect: something");
	cJSON_Delete(expect_refusal(&r, 417, "Expect: something"));
	expect_consistent(&c, &r, "after a 417");
	rh_reply_free(&r);
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

/* 30 fields of ~70 bytes: over max_header_bytes 1024, under max_headers. */
Test(transport, r431_header_block_over_max_header_bytes, .timeout = 30)
{
	char members[256], req[4096];
	int n;

	n = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\n" HOST);
	for (int i = 0; i < 30; i++)
		n += snprintf(req + n, sizeof(req) - (size_t)n,
			      "X-Pad-%02d: %060d\r\n", i, i);
	n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	start(http_members(members, sizeof(members), "\"max_header_bytes\": 1024"));
	refuse_on_new_connection(req, (size_t)n, 431, true, "2 KB of header fields");
	cr_assert_eq(hd_stop(&d), 0);
}

/* The default max_headers (100): 120 short fields (~1.5 KB). */
Test(transport, r431_more_fields_than_max_headers, .timeout = 30)
{
	char req[4096];
	int n;

	n = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\n" HOST);
	for (int i = 0; i < 120; i++)
		n += snprintf(req + n, sizeof(req) - (size_t)n, "X-%03d: v\r\n", i);
	n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	start("");
	refuse_on_new_connection(req, (size_t)n, 431, true, "121 header fields");
	cr_assert_eq(hd_stop(&d), 0);
}

Test(transport, r501_transfer_encoding_gzip, .timeout = 30)
{
	static const char chunked[] =
		"POST /hooks/echo HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip, chunked\r\n\r\n"
		"2\r\n{}\r\n0\r\n\r\n";
	static const char plain[] =
		"POST /hooks/echo HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip\r\n\r\n{}";

	start("");
	refuse_on_new_connection(chunked, sizeof(chunked) - 1, 501, true,
				 "Transfer-Encoding: gzip, chunked");
	refuse_on_new_connection(plain, sizeof(plain) - 1, 501, true, "Transfer-Encoding: gzip");
	cr_assert_eq(hd_stop(&d), 0);
}

/* without a body the framing holds: the connection goes on */
REFUSAL_TEST(r501_unknown_method, "", "BREW / HTTP/1.1\r\n" HOST "\r\n", 501, false)
REFUSAL_TEST(r501_unknown_method_with_a_body, "",
	     "BREW / HTTP/1.1\r\n" HOST "Content-Length: 2\r\n\r\n{}", 501, true)

Test(transport, r505_other_http_versions, .timeout = 30)
{
	static const char v20[] = "GET /health HTTP/2.0\r\n" HOST "\r\n";
	static const char v12[] = "GET /health HTTP/1.2\r\n" HOST "\r\n";

	start("");
	refuse_on_new_connection(v20, sizeof(v20) - 1, 505, true, "HTTP/2.0");
	refuse_on_new_connection(v12, sizeof(v12) - 1, 505, true, "HTTP/1.2");
	cr_assert_eq(hd_stop(&d), 0);
}

/* ==== 408: header and body timeouts ====================================== */

/* The head never completes: 408 once header_timeout_ms has passed. */
Test(transport, r408_header_timeout, .timeout = 30)
{
	char members[256];
	int timeout = 300 * hd_scale();
	struct rh_conn c;
	struct rh_reply r;
	double t0;

	start(http_members(members, sizeof(members), "\"header_timeout_ms\": %d", timeout));
	rh_connect(&c, d.port);
	t0 = hd_now_ms();
	rh_send_str(&c, "GET /health HTTP/1.1\r\n" HOST);
	read_reply(&c, &r, false, "a head that never ends");
	cr_assert_geq(hd_now_ms() - t0, timeout - COARSE_MS, "408 before header_timeout_ms");
	cJSON_Delete(expect_refusal(&r, 408, "header timeout"));
	expect_closed(&c, &r, "header timeout");
	rh_reply_free(&r);
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

/* A head trickled a line at a time, each well within the timeout: it
 * counts from the first byte, so the 408 still comes (slowloris). */
Test(transport, r408_header_timeout_counts_from_the_first_byte, .timeout = 30)
{
	char members[256], line[64];
	int timeout = 300 * hd_scale();
	struct rh_conn c;
	struct rh_reply r;
	int i, rc = RH_OK;

	start(http_members(members, sizeof(members), "\"header_timeout_ms\": %d", timeout));
	rh_connect(&c, d.port);
	rh_send_str(&c, "GET /health HTTP/1.1\r\n" HOST);
	/* 60 lines, 50 ms apart: 10 times the timeout in all */
	for (i = 0; i < 60; i++) {
		if (rh_wait_close(&c, 50) != RH_TIMEOUT)
			break; /* the server spoke or closed */
		snprintf(line, sizeof(line), "X-Slow-%02d: y\r\n", i);
		rc = rh_send_some(&c, line, strlen(line), 1000, NULL);
		if (rc != RH_OK)
			break;
	}
	cr_assert_lt(i, 60, "the trickled head was never refused");
	read_reply(&c, &r, false, "a trickled head");
	cJSON_Delete(expect_refusal(&r, 408, "trickled head"));
	expect_closed(&c, &r, "trickled head");
	rh_reply_free(&r);
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

/* An idle keep-alive connection has no request in progress: waiting longer
 * than header_timeout_ms before the next request is fine. */
Test(transport, idle_keepalive_is_not_subject_to_the_header_timeout, .timeout = 30)
{
	char members[256];
	int timeout = 300 * hd_scale();
	struct rh_conn c;

	start(http_members(members, sizeof(members), "\"header_timeout_ms\": %d", timeout));
	rh_connect(&c, d.port);
	expect_health(&c, "the first request");
	/* the scenario: idle for three header timeouts */
	cr_assert_eq(rh_wait_close(&c, 3 * 300), RH_TIMEOUT,
		     "an idle keep-alive connection got bytes or was closed: \"%s\"", rh_peek(&c));
	expect_health(&c, "the next request after the idle time");
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

/* A head with Content-Length 10, then 3 body bytes and nothing more. */
Test(transport, r408_body_timeout, .timeout = 30)
{
	char members[256], head[256];
	int timeout = 300 * hd_scale();
	struct rh_conn c;
	struct rh_reply r;
	double t0;

	start(http_members(members, sizeof(members), "\"body_timeout_ms\": %d", timeout));
	rh_connect(&c, d.port);
	post_head(head, sizeof(head), "/hooks/echo", 10, NULL);
	rh_send_str(&c, head);
	t0 = hd_now_ms(); /* before the last bytes: the server's wait starts after */
	rh_send_str(&c, "{\"a");
	read_reply(&c, &r, false, "a body that stops after 3 of 10 bytes");
	cr_assert_geq(hd_now_ms() - t0, timeout - COARSE_MS, "408 before body_timeout_ms");
	cJSON_Delete(expect_refusal(&r, 408, "body timeout"));
	expect_closed(&c, &r, "body timeout");
	rh_reply_free(&r);
	rh_close(&c);
	cr_assert_eq(hd_stop(&d), 0);
}

/* ==== 503: the in-flight memory budget =================================== */

/* A 200000-byte body against a budget of 65536: 503 and close, at the head
 * or while reading the body (the client sends until refused). */
Test(transport, r503_over_the_inflight_budget, .timeout = 30)
{
	char members[256], head[256];
	size_t n = 200000, off = 0, sent;
	char *body = json_of_size(n);
	struct rh_conn c;
	struct rh_reply r;
	struct hd_resp hr;
	int rc;

	start(http_members(members, sizeof(members), "\"max_inflight_bytes\": 65536"));
	rh_connect(&c, d.port);
	post_head(head, sizeof(head), "/hooks/echo", n, NULL);
	rh_send_str(&c, head);
	while (off < n) {
		if (rh_wait_close(&c, 0) != RH_TIMEOUT)
			break; /* refused (or closed) already */
		rc = rh_send_some(&c, body + off, n - off < 16384 ? n - off : 16384, 1000, &sent);
		off += sent;
		if (rc == RH_CLOSED)
			break;
		if (rc == RH_TIMEOUT) /* the server stopped reading: its answer is due */
			break;
	}
	cr_log_info("sent %zu of %zu body bytes before the refusal", off, n);
	read_reply(&c, &r, false, "a body over max_inflight_bytes");
	cJSON_Delete(expect_refusal(&r, 503, "over the in-flight budget"));
	expect_closed(&c, &r, "over the in-flight budget");
	rh_reply_free(&r);
	rh_close(&c);
	free(body);
	/* the budget is given back: a small call works */
	hd_post(&d, "/hooks/echo", "{\"after\":1}", &hr);
	cr_assert_eq(hr.status, 200, "%ld %s", hr.status, hr.body);
	hd_resp_free(&hr);
	cr_assert_eq(hd_stop(&d), 0);
}

/* ==== connection limits and timeouts ===================================== */

/* max_connections 3 (one loop: the limit is per loop): a 4th connection
 * waits unanswered until one of the 3 closes. */
Test(transport, max_connections_pauses_the_listener, .timeout = 30)
{
	char members[256];
	struct rh_conn c[4];
	struct rh_reply r;
	int rc;

	snprintf(members, sizeof(members), "\"reactors\": 1, ");
	http_members(members + strlen(members), sizeof(members) - strlen(members),
		     "\"max_connections\": 3");
	start(members);
	for (int i = 0; i < 3; i++) {
		rh_connect(&c[i], d.port);
		expect_health(&c[i], "one of the first 3 connections");
	}
	rh_connect(&c[3], d.port); /* completes: the kernel's backlog */
	rh_send_str(&c[3], "GET /health HTTP/1.1\r\n" HOST "\r\n");
	rc = rh_wait_close(&c[3], 300);
	cr_assert_eq(rc, RH_TIMEOUT, "the 4th connection was served or closed: %s \"%s\"",
		     rh_result_str(rc), rh_peek(&c[3]));
	rh_close(&c[0]);
	read_reply(&c[3], &r, false, "the 4th connection once one closed");
	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	rh_reply_free(&r);
	for (int i = 1; i < 3; i++)
		expect_health(&c[i], "the others still work");
	for (int i = 1; i < 4; i++)
		rh_close(&c[i]);
	cr_assert_eq(hd_stop(&d), 0);
}

/* Silently: EOF, not a 408. Both a fresh connection and one after a reply. */
Test(transport, idle_timeout_closes_silently, .timeout = 30)
{
	char members[256];
	struct rh_conn fresh, used;
	int rc;

	start(http_members(members, sizeof(members), "\"idle_timeout_ms\": %d", 300 * hd_scale()));
	rh_connect(&fresh, d.port);
	rh_connect(&used, d.port);
	expect_health(&used, "before going idle");
	rc = rh_wait_close(&fresh, REPLY_MS);
	cr_assert_eq(rc, RH_CLOSED, "a fresh idle connection: %s \"%s\"", rh_result_str(rc),
		     rh_peek(&fresh));
	rc = rh_wait_close(&used, REPLY_MS);
	cr_assert_eq(rc, RH_CLOSED, "an idle keep-alive connection: %s \"%s\"", rh_result_str(rc),
		     rh_peek(&used));
	rh_close(&fresh);
	rh_close(&used);
	cr_assert_eq(hd_stop(&d), 0);
}

/* An 8 MB echo reply to a client with a 4 KB receive buffer that does not
 * read: the reply makes no progress, the connection is closed after
 * send_timeout_ms. Reading afterwards gets a cut reply and EOF. 8 MB: on
 * loopback the daemon's kernel send buffer autotunes up to tcp_wmem's 4 MB
 * (checked: ~3 MB of a reply went into it with the client not reading), so
 * a smaller reply would leave the daemon with nothing stalled to time out. */
Test(transport, send_timeout_closes_a_stalled_reply, .timeout = 60)
{
	char members[512], head[256];
	size_t n = 8 * 1024 * 1024;
	char *body = json_of_size(n);
	struct rh_conn c;
	struct rh_reply r;
	struct hd_resp hr;
	int rc;

	snprintf(members, sizeof(members), "\"max_body\": %zu, ", 2 * n);
	http_members(members + strlen(members), sizeof(members) - strlen(members),
		     "\"send_timeout_ms\": %d", 300 * hd_scale());
	start(members);
	rh_connect_bufs(&c, d.port, 4096, 0);
	post_head(head, sizeof(head), "/hooks/echo", n, NULL);
	rh_send_str(&c, head);
	rh_send(&c, body, n);
	/* the scenario: no read for five send timeouts */
	hd_sleep_ms(5 * 300 * hd_scale());
	rc = rh_read_reply(&c, &r, REPLY_MS, false);
	cr_log_info("after the stall: %s, %zu bytes received", rh_result_str(rc), c.len);
	cr_assert_eq(rc, RH_CLOSED, "the stalled reply was not cut: %s", rh_result_str(rc));
	if (rc == RH_OK)
		rh_reply_free(&r);
	rh_close(&c);
	free(body);
	hd_get(&d, "/health", &hr);
	cr_assert_eq(hr.status, 200);
	hd_resp_free(&hr);
	cr_assert_eq(hd_stop(&d), 0);
}

/* ==== the per-connection output bound ==================================== */

/* The value of an unlabelled metric in GET /metrics, or -1. */
static double metric_value(const char *name)
{
	struct hd_resp r;
	double v = -1;
	size_t n = strlen(name);

	hd_get(&d, "/metrics", &r);
	for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, name, n) == 0 && p[n] == ' ') {
			v = strtod(p + n + 1, NULL);
			break;
		}
	}
	hd_resp_free(&r);
	return v;
}

/* 5000 pipelined echo calls of 1 KB from a client that does not read (small
 * kernel buffers): the daemon stops reading it, its memory grows by far
 * less than the replies' total; then every reply comes, in order. */
Test(transport, output_bound_stops_reading_a_client_that_does_not_read, .timeout = 120)
{
	enum { N = 5000, BODY = 1024 };
	static char bodies[N][BODY + 1];
	size_t total = 0, sent = 0, off, wire = 0;
	char *reqs, head[256];
	struct rh_conn c;
	struct rh_reply r;
	long rss0, rss_max;
	double inflight_max = 0;
	int got = 0, rc;
	double end;

	start("");
	/* the daemon at rest, after one call of the same kind */
	{
		struct hd_resp hr;
		hd_post(&d, "/hooks/echo", "{\"warm\":1}", &hr);
		cr_assert_eq(hr.status, 200);
		hd_resp_free(&hr);
	}
	rss0 = rss_kib(d.pid);
	cr_assert_gt(rss0, 0, "no VmRSS for pid %ld", (long)d.pid);

	reqs = malloc((size_t)N * (BODY + 256));
	cr_assert_not_null(reqs);
	for (int i = 0; i < N; i++) {
		int k = snprintf(bodies[i], sizeof(bodies[i]), "{\"i\":%d,\"pad\":\"", i);
		memset(bodies[i] + k, 'p', BODY - (size_t)k - 2);
		memcpy(bodies[i] + BODY - 2, "\"}", 3);
		int h = post_head(head, sizeof(head), "/hooks/echo", BODY, NULL);
		memcpy(reqs + total, head, (size_t)h);
		memcpy(reqs + total + h, bodies[i], BODY);
		total += (size_t)h + BODY;
	}

	rh_connect_bufs(&c, d.port, 16384, 16384);
	/* write until the daemon stops taking bytes (or all went) */
	rc = rh_send_some(&c, reqs, total, 1000, &sent);
	cr_assert(rc == RH_OK || rc == RH_TIMEOUT, "send: %s", rh_result_str(rc));
	/* its memory while it holds what it could read: sampled for a while */
	rss_max = rss0;
	for (int i = 0; i < 20; i++) {
		long v = rss_kib(d.pid);
		double inflight = metric_value("hookd_http_inflight_bytes");
		if (v > rss_max)
			rss_max = v;
		if (inflight > inflight_max)
			inflight_max = inflight;
		hd_sleep_ms(50 * hd_scale());
	}
	/* what the transport holds of the client's requests: one reply's
	 * request and the read-ahead, whatever the client sent */
	cr_assert_lt(inflight_max, 1024.0 * 1024, "hookd_http_inflight_bytes reached %.0f while "
		     "the client did not read", inflight_max);
	cr_log_info("requests: %zu of %zu bytes sent before the daemon stopped reading (%s); "
		    "VmRSS %ld -> max %ld KiB",
		    sent, total, rh_result_str(rc), rss0, rss_max);
	/* not asserted: the daemon's socket receive buffer (autotuned while it
	 * read) may hold the rest, which costs the daemon no memory of its own */

	/* now read everything, sending the rest as the daemon takes it */
	end = hd_now_ms() + 60000.0 * hd_scale();
	while (got < N) {
		cr_assert_lt(hd_now_ms(), end, "only %d of %d replies in time", got, N);
		if (sent < total) {
			rc = rh_send_some(&c, reqs + sent, total - sent, 0, &off);
			sent += off;
			cr_assert_neq(rc, RH_CLOSED, "closed after %d replies", got);
		}
		rc = rh_parse(&c, &r, false);
		if (rc == RH_AGAIN) {
			rc = rh_fill(&c, sent < total ? 10 : 5000);
			cr_assert_neq(rc, RH_CLOSED, "closed after %d replies", got);
			if (sent >= total)
				cr_assert_neq(rc, RH_TIMEOUT, "stuck after %d replies", got);
			continue;
		}
		cr_assert_eq(rc, RH_OK, "reply %d: %s \"%s\"", got, rh_result_str(rc), rh_peek(&c));
		cr_assert_eq(r.status, 200, "reply %d: %d %s", got, r.status, r.body);
		cr_assert_eq(r.body_len, BODY + 1, "reply %d: %zu bytes", got, r.body_len);
		cr_assert(memcmp(r.body, bodies[got], BODY) == 0 && r.body[BODY] == '\n',
			  "reply %d out of order or altered: %.40s", got, r.body);
		wire += r.wire_len;
		rh_reply_free(&r);
		got++;
	}
	cr_log_info("%d replies, %zu bytes; VmRSS grew by %ld KiB at most while stalled", got,
		    wire, rss_max - rss0);
	/* a sanitizer's allocator keeps freed memory in quarantine: RSS says
	 * nothing there (the budget above still does) */
	if (!getenv("HOOKD_TSAN") && !strstr(hd_build_path("", (char[512]){0}, 512), "asan"))
		cr_assert_lt((size_t)(rss_max - rss0) * 1024, wire / 4,
			     "VmRSS grew by %ld KiB while the client did not read (replies: %zu KiB)",
			     rss_max - rss0, wire / 1024);
	rh_close(&c);
	free(reqs);
	cr_assert_eq(hd_stop(&d), 0);
}

/* ==== reload, drain, client gone ========================================= */

/* A new max_body applies to the next request of a connection opened
 * before the reload. */
Test(transport, reload_applies_max_body_to_an_open_connection, .timeout = 30)
{
	char head[256], *body = json_of_size(2000);
	struct rh_conn c;
	struct rh_reply r;
	cJSON *o;

	start("\"max_body\": 4096");
	rh_connect(&c, d.port);
	post_head(head, sizeof(head), "/hooks/echo", 2000, NULL);
	rh_send_str(&c, head);
	rh_send_str(&c, body);
	read_reply(&c, &r, false, "2000 bytes under max_body 4096");
	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	rh_reply_free(&r);

	hd_write_config(&d, "\"max_body\": 1024");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 2, 10000), "the reload did not happen");

	rh_send_str(&c, head); /* the head only */
	read_reply(&c, &r, false, "2000 bytes over the reloaded max_body 1024");
	o = expect_refusal(&r, 413, "over the reloaded max_body");
	expect_hook_named(&r, o, "echo", "over the reloaded max_body");
	cJSON_Delete(o);
	expect_closed(&c, &r, "over the reloaded max_body");
	rh_reply_free(&r);
	rh_close(&c);
	free(body);
	cr_assert_eq(hd_stop(&d), 0);
}

/* SIGTERM with a slow call on one connection and an idle keep-alive one:
 * the idle one is closed while the call is still running; the call's
 * client still gets its reply. */
Test(transport, drain_closes_idle_connections_and_finishes_calls, .timeout = 60)
{
	char head[256], body[64];
	int ms = 2000 * hd_scale(), rc;
	struct rh_conn slow, idle;
	struct rh_reply r;

	char members[96];
	/* the call's deadline and the drain wait longer than the call takes */
	snprintf(members, sizeof(members), "\"drain_ms\": %d, \"timeout_ms\": %d", 3 * ms, 3 * ms);
	start(members);
	rh_connect(&idle, d.port);
	expect_health(&idle, "the idle connection's first request");
	rh_connect(&slow, d.port);
	snprintf(body, sizeof(body), "{\"ms\":%d}", ms);
	post_head(head, sizeof(head), "/hooks/delay", strlen(body), NULL);
	rh_send_str(&slow, head);
	rh_send_str(&slow, body);
	cr_assert(hd_wait_health(&d, "calls_in_flight", 1, 5000), "the slow call never started");

	hd_signal(&d, SIGTERM);
	rc = rh_wait_close(&idle, REPLY_MS);
	cr_assert_eq(rc, RH_CLOSED, "the idle connection at drain: %s \"%s\"", rh_result_str(rc),
		     rh_peek(&idle));
	cr_assert_eq(rh_wait_close(&slow, 0), RH_TIMEOUT,
		     "the slow call ended before the idle connection was closed");
	read_reply(&slow, &r, false, "the slow call's reply during the drain");
	cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
	cr_assert_eq(strncmp(r.body, body, strlen(body)), 0, "%s", r.body);
	rh_reply_free(&r);
	rh_close(&slow);
	rh_close(&idle);
	cr_assert(hd_wait_exit(&d, 20000), "the daemon did not exit");
	cr_assert_eq(d.exit_status, 0);
	cr_assert_eq(hd_stop(&d), 0);
}

/* The client hangs up while its call runs: the call is cancelled at once
 * (the async plugin's cancel callback runs, long before its 5 s timer). */
Test(transport, client_hangup_cancels_the_call, .timeout = 30)
{
	static const char body[] = "{\"ms\":5000}";
	char head[256];
	struct rh_conn c;
	struct hd_resp hr;

	start("");
	rh_connect(&c, d.port);
	post_head(head, sizeof(head), "/hooks/delay", strlen(body), NULL);
	rh_send_str(&c, head);
	rh_send_str(&c, body);
	cr_assert(hd_wait_health(&d, "calls_in_flight", 1, 5000), "the call never started");
	rh_close(&c);
	cr_assert(hd_wait_log(&d, "plugin delay: call cancelled by the host", 1, 2000),
		  "the call was not cancelled when its client left");
	cr_assert(hd_wait_health(&d, "calls_in_flight", 0, 2000), "the call is still in flight");
	hd_post(&d, "/hooks/echo", "{\"ok\":1}", &hr);
	cr_assert_eq(hr.status, 200);
	hd_resp_free(&hr);
	cr_assert_eq(hd_stop(&d), 0);
}
