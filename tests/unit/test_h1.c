/*
 * h1: the strict HTTP/1.x request parser. Valid requests (in one piece,
 * one byte at a time and at every 2-way split, with the same outcome), then
 * the smuggling checklist: one test per class of hostile framing, each
 * asserting the status and whether the connection must close.
 *
 * Every input goes through h1_drive (the transport's read loop, pipelining
 * included) twice, whole and one byte at a time, and both outcomes must
 * agree and keep the drive's invariants.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../host/h1.h"
#include "h1_drive.h"
#include "unit.h"

TestSuite(h1);

#define MiB (1024 * 1024)

/* stream[0..n) whole and byte by byte: same outcome, no violation. The
 * caller frees the outcome. */
static struct h1d_outcome *drive_lim(const char *s, size_t n, const struct h1_limits *lim,
				     uint64_t max_body)
{
	struct h1d_outcome *o = calloc(1, sizeof(*o)), *bytes = calloc(1, sizeof(*bytes));
	size_t *cuts = calloc(n + 1, sizeof(*cuts));
	const char *d;

	cr_assert(o && bytes && cuts);
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	h1d_run(s, n, NULL, 0, lim, max_body, o);
	h1d_run(s, n, cuts, n, lim, max_body, bytes);
	cr_assert_null(o->violation, "whole: %s", o->violation);
	cr_assert_null(bytes->violation, "byte by byte: %s", bytes->violation);
	d = h1d_diff(o, bytes);
	cr_assert_null(d, "whole vs byte by byte: %s", d);
	free(bytes);
	free(cuts);
	return o;
}

static struct h1d_outcome *drive_n(const char *s, size_t n, uint64_t max_body)
{
	struct h1_limits lim;

	h1_limits_default(&lim);
	return drive_lim(s, n, &lim, max_body);
}

#define DRIVE(lit) drive_n(lit, sizeof(lit) - 1, MiB)

/* The first request of `s` is refused with `status` and the reason `why`;
 * must_close as said. */
static void refused_lim(const char *s, size_t n, const struct h1_limits *lim, uint64_t max_body,
			int status, bool must_close, const char *why)
{
	struct h1d_outcome *o = drive_lim(s, n, lim, max_body);

	cr_assert_geq(o->nreq, 1, "nothing parsed (incomplete: %d)", o->incomplete);
	cr_assert_eq(o->req[0].status, status, "status %d (%s), wanted %d", o->req[0].status,
		     o->req[0].why ? o->req[0].why : "-", status);
	cr_assert_not_null(o->req[0].why);
	cr_assert_str_eq(o->req[0].why, why);
	cr_assert_eq(o->req[0].must_close, must_close, "must_close %d for %s",
		     o->req[0].must_close, o->req[0].why);
	if (must_close)
		cr_assert_eq(o->nreq, 1, "nothing is read after a refusal that closes");
	cr_log_info("%d %s", status, o->req[0].why);
	free(o);
}

static void refused_n(const char *s, size_t n, int status, bool must_close, const char *why)
{
	struct h1_limits lim;

	h1_limits_default(&lim);
	refused_lim(s, n, &lim, MiB, status, must_close, why);
}

#define REFUSED(lit, status, must_close, why) \
	refused_n(lit, sizeof(lit) - 1, status, must_close, why)

/* ---- valid requests ---------------------------------------------------- */

Test(h1, get_fills_the_request)
{
	struct h1d_outcome *o = DRIVE("GET /hooks/echo?x=1 HTTP/1.1\r\nHost: example.com\r\n"
				      "User-Agent:\tcurl/7.88 \t\r\nAccept: */*\r\n\r\n");
	struct h1d_req *r = &o->req[0];

	cr_assert_eq(o->nreq, 1);
	cr_assert_not(o->incomplete);
	cr_assert_eq(r->status, 0);
	cr_assert_str_eq(r->method, "GET");
	cr_assert_str_eq(r->target, "/hooks/echo?x=1");
	cr_assert_eq(r->version_minor, 1);
	cr_assert_eq(r->nfields, 3);
	cr_assert(r->keep_alive, "HTTP/1.1 keeps the connection by default");
	cr_assert(r->has_host);
	cr_assert_not(r->has_length);
	cr_assert_not(r->chunked);
	cr_assert_eq(r->body_len, 0);
	cr_assert_eq(o->used, r->head_len);
	free(o);
}

Test(h1, fields_point_into_the_buffer_with_ows_trimmed)
{
	const char s[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Pad: \t v a l \t\r\n\r\n";
	struct h1_limits lim;
	struct h1_head h;
	struct h1_request req;
	struct h1_field fields[H1_MAX_FIELDS_DEFAULT];
	struct h1_error err;
	size_t consumed;

	h1_limits_default(&lim);
	h1_head_init(&h);
	cr_assert_eq(h1_head_parse(&h, s, sizeof(s) - 1, &lim, &req, fields, &consumed, &err),
		     H1_HEAD_DONE);
	cr_assert_eq(consumed, sizeof(s) - 1);
	cr_assert_eq(req.nfields, 3);
	cr_assert_eq(req.fields, fields);
	cr_assert_eq(req.method, s);
	const struct h1_field *e = h1_field_find(&req, "x-empty");
	cr_assert_not_null(e);
	cr_assert_eq(e->value_len, 0);
	const struct h1_field *p = h1_field_find(&req, "x-pad");
	cr_assert_not_null(p);
	cr_assert_eq(p->value_len, 5);
	cr_assert_eq(memcmp(p->value, "v a l", 5), 0);
	cr_assert(h1_name_is(&fields[0], "host"));
	cr_assert_null(h1_field_find(&req, "content-length"));
}

Test(h1, post_with_content_length)
{
	struct h1d_outcome *o = DRIVE("POST /hooks/echo HTTP/1.1\r\nHost: a\r\n"
				      "Content-Type: application/json\r\nContent-Length: 11\r\n\r\n"
				      "{\"a\": true}");
	struct h1d_req *r = &o->req[0];

	cr_assert_eq(o->nreq, 1);
	cr_assert_eq(r->status, 0);
	cr_assert(r->has_length);
	cr_assert_eq(r->content_length, 11);
	cr_assert_eq(r->body_len, 11);
	cr_assert_str_eq(r->body, "{\"a\": true}");
	cr_assert_not(o->incomplete);
	free(o);
}

Test(h1, chunked_with_extensions_and_trailers)
{
	struct h1d_outcome *o = DRIVE("POST /h HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
				      "5;name=value\r\nhello\r\n"
				      "1;a;b=\"q\\\"uo ted\";c=t\r\n \r\n"
				      "00A\r\n0123456789\r\n"
				      "0;last\r\nX-Trailer: yes\r\nChecksum: 1\r\n\r\n");
	struct h1d_req *r = &o->req[0];

	cr_assert_eq(o->nreq, 1);
	cr_assert_eq(r->status, 0, "%s", r->why);
	cr_assert(r->chunked);
	cr_assert_not(r->has_length);
	cr_assert_eq(r->body_len, 16);
	cr_assert_str_eq(r->body, "hello 0123456789");
	cr_assert_not(o->incomplete);
	free(o);
}

Test(h1, http10_closes_unless_keep_alive)
{
	struct h1d_outcome *o = DRIVE("GET / HTTP/1.0\r\n\r\nGET /second HTTP/1.0\r\n\r\n");

	cr_assert_eq(o->nreq, 1, "HTTP/1.0 closes after the first request");
	cr_assert_eq(o->req[0].status, 0);
	cr_assert_eq(o->req[0].version_minor, 0);
	cr_assert_not(o->req[0].has_host, "HTTP/1.0 needs no Host");
	cr_assert_not(o->req[0].keep_alive);
	cr_assert(o->closed);
	free(o);

	o = DRIVE("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /second HTTP/1.0\r\n\r\n");
	cr_assert_eq(o->nreq, 2);
	cr_assert(o->req[0].keep_alive);
	cr_assert_str_eq(o->req[1].target, "/second");
	cr_assert_not(o->req[1].keep_alive);
	free(o);
}

Test(h1, connection_close_ends_the_stream)
{
	struct h1d_outcome *o = DRIVE("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n"
				      "GET /never HTTP/1.1\r\nHost: a\r\n\r\n");

	cr_assert_eq(o->nreq, 1);
	cr_assert_not(o->req[0].keep_alive, "close wins over keep-alive");
	free(o);
}

Test(h1, pipelined_requests_in_one_buffer)
{
	const char s[] = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
			 "POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "2\r\nde\r\n0\r\n\r\n"
			 "\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n"
			 "GET /d HTTP/1.1\r\nHo";
	struct h1d_outcome *o = DRIVE(s);

	cr_assert_eq(o->nreq, 3);
	cr_assert_str_eq(o->req[0].target, "/a");
	cr_assert_str_eq(o->req[0].body, "abc");
	cr_assert_str_eq(o->req[1].target, "/b");
	cr_assert_str_eq(o->req[1].body, "de");
	cr_assert_str_eq(o->req[2].target, "/c", "an empty line before a request is skipped");
	cr_assert(o->incomplete, "the fourth request is not all there");
	cr_assert_eq(o->used, sizeof(s) - 1 - strlen("GET /d HTTP/1.1\r\nHo"),
		     "consumed ends exactly where each body ends");
	free(o);
}

/* A stream with something of everything: every 2-way split gives the
 * outcome of the whole. */
Test(h1, every_split_point_gives_the_same_outcome)
{
	const char s[] = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc"
			 "PUT /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "2;x=\"y\"\r\nde\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n"
			 "GET /c HTTP/1.1\r\nHost: a\r\n\r\n"
			 "GET /d HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
	size_t n = sizeof(s) - 1;
	struct h1_limits lim;
	struct h1d_outcome *whole, *split = calloc(1, sizeof(*split));

	h1_limits_default(&lim);
	whole = drive_lim(s, n, &lim, MiB);
	cr_assert_eq(whole->nreq, 4);
	cr_assert(whole->req[0].expect_continue);
	cr_assert_str_eq(whole->req[1].body, "de0123456789abcdef");
	cr_assert_eq(whole->req[3].status, 400, "the last one smuggles");
	for (size_t k = 1; k < n; k++) {
		h1d_run(s, n, &k, 1, &lim, MiB, split);
		cr_assert_null(split->violation, "split at %zu: %s", k, split->violation);
		const char *d = h1d_diff(whole, split);
		cr_assert_null(d, "split at %zu: %s", k, d);
	}
	free(whole);
	free(split);
}

Test(h1, options_star_and_leading_empty_line)
{
	struct h1d_outcome *o = DRIVE("\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");

	cr_assert_eq(o->nreq, 1);
	cr_assert_eq(o->req[0].status, 0);
	cr_assert_str_eq(o->req[0].target, "*");
	free(o);
}

Test(h1, content_length_duplicates_identical_are_one)
{
	struct h1d_outcome *o = DRIVE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
				      "Content-Length: 2\r\n\r\nok");

	cr_assert_eq(o->req[0].status, 0, "RFC 9112 6.3: identical duplicates are one length");
	cr_assert_str_eq(o->req[0].body, "ok");
	free(o);
}

Test(h1, content_length_ows_is_not_part_of_the_value)
{
	/* RFC 9110 5.5: OWS around a field value is not part of it */
	struct h1d_outcome *o = DRIVE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  7 \t\r\n\r\n1234567");

	cr_assert_eq(o->req[0].status, 0);
	cr_assert_eq(o->req[0].content_length, 7);
	free(o);
}

Test(h1, expect_100_continue_is_recognised)
{
	struct h1d_outcome *o = DRIVE("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
				      "Content-Length: 1\r\n\r\nx");

	cr_assert_eq(o->req[0].status, 0);
	cr_assert(o->req[0].expect_continue);
	free(o);
	o = DRIVE("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx");
	cr_assert_eq(o->req[0].status, 0);
	cr_assert_not(o->req[0].expect_continue, "ignored for HTTP/1.0 (RFC 9110 10.1.1)");
	free(o);
}

Test(h1, limits_at_their_exact_size_pass)
{
	struct h1_limits lim;
	char s[256];
	struct h1d_outcome *o;

	h1_limits_default(&lim);
	lim.max_line = strlen("GET /abc HTTP/1.1");
	lim.max_headers = strlen("Host: a\r\nX: 1\r\n\r\n");
	lim.max_fields = 2;
	snprintf(s, sizeof(s), "GET /abc HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n");
	o = drive_lim(s, strlen(s), &lim, 0);
	cr_assert_eq(o->req[0].status, 0, "%s", o->req[0].why);
	free(o);
}

/* ---- the API directly: early refusals, the sink ------------------------- */

Test(h1, line_too_long_is_refused_before_its_end)
{
	struct h1_limits lim;
	struct h1_head h;
	struct h1_request req;
	struct h1_field fields[H1_MAX_FIELDS_DEFAULT];
	struct h1_error err;
	size_t consumed, n = H1_MAX_LINE_DEFAULT + 1;
	char *s = malloc(n);

	h1_limits_default(&lim);
	memcpy(s, "GET /", 5);
	memset(s + 5, 'a', n - 5);
	h1_head_init(&h);
	cr_assert_eq(h1_head_parse(&h, s, n - 1, &lim, &req, fields, &consumed, &err), H1_MORE);
	cr_assert_eq(h1_head_parse(&h, s, n, &lim, &req, fields, &consumed, &err), H1_ERROR,
		     "no CRLF needed to know the line is too long");
	cr_assert_eq(err.status, 414);
	cr_assert(err.must_close);
	free(s);
}

Test(h1, a_tls_client_hello_is_refused_at_its_first_byte)
{
	const char s[] = "\x16\x03\x01\x02\x00\x01";
	struct h1_limits lim;
	struct h1_head h;
	struct h1_request req;
	struct h1_field fields[H1_MAX_FIELDS_DEFAULT];
	struct h1_error err;
	size_t consumed;

	h1_limits_default(&lim);
	h1_head_init(&h);
	cr_assert_eq(h1_head_parse(&h, s, 1, &lim, &req, fields, &consumed, &err), H1_ERROR);
	cr_assert_eq(err.status, 400);
	cr_assert(err.must_close);
}

Test(h1, chunked_over_max_body_is_refused_at_the_size_line)
{
	const char s[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
	struct h1_limits lim;
	struct h1_head h;
	struct h1_request req;
	struct h1_field fields[H1_MAX_FIELDS_DEFAULT];
	struct h1_error err;
	struct h1_body b;
	size_t consumed;

	h1_limits_default(&lim);
	h1_head_init(&h);
	cr_assert_eq(h1_head_parse(&h, s, sizeof(s) - 1, &lim, &req, fields, &consumed, &err),
		     H1_HEAD_DONE);
	cr_assert_eq(h1_body_init(&b, &req, &lim, 10, &err), 0, "chunked: no length to refuse yet");
	cr_assert_eq(h1_body_feed(&b, "6\r\nabcdef\r\n", 11, &consumed, NULL, NULL, &err), H1_BODY);
	cr_assert_eq(h1_body_feed(&b, "5\r\n", 3, &consumed, NULL, NULL, &err), H1_ERROR,
		     "6 + 5 > 10 is known before the data");
	cr_assert_eq(err.status, 413);
	cr_assert(err.must_close);
	cr_assert_eq(h1_body_feed(&b, "abcde", 5, &consumed, NULL, NULL, &err), H1_ERROR,
		     "a failed decoder stays failed");
	cr_assert_eq(err.status, 413);
}

Test(h1, content_length_over_max_body_is_refused_at_init)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n",
		413, true, "request body over max_body");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n", 413,
		true, "request body over max_body");
}

static int refusing_sink(void *arg, const char *data, size_t n)
{
	size_t *seen = arg;

	(void)data;
	*seen += n;
	return *seen > 4 ? 503 : 0;
}

Test(h1, the_sink_can_refuse)
{
	const char s[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 8\r\n\r\n";
	struct h1_limits lim;
	struct h1_head h;
	struct h1_request req;
	struct h1_field fields[H1_MAX_FIELDS_DEFAULT];
	struct h1_error err;
	struct h1_body b;
	size_t consumed, seen = 0;

	h1_limits_default(&lim);
	h1_head_init(&h);
	cr_assert_eq(h1_head_parse(&h, s, sizeof(s) - 1, &lim, &req, fields, &consumed, &err),
		     H1_HEAD_DONE);
	cr_assert_eq(h1_body_init(&b, &req, &lim, UINT64_MAX, &err), 0);
	cr_assert_eq(h1_body_feed(&b, "abc", 3, &consumed, refusing_sink, &seen, &err), H1_BODY);
	cr_assert_eq(h1_body_feed(&b, "defgh", 5, &consumed, refusing_sink, &seen, &err),
		     H1_ERROR);
	cr_assert_eq(err.status, 503);
	cr_assert(err.must_close);
}

/* ---- the smuggling checklist ------------------------------------------- */

Test(h1, smuggle_content_length_and_transfer_encoding)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
		"0\r\n\r\n", 400, true, "both Content-Length and Transfer-Encoding");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
		400, true, "both Content-Length and Transfer-Encoding");
}

Test(h1, smuggle_content_length_duplicates_that_differ)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		400, true, "several different Content-Length fields");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\nhello",
		400, true, "several different Content-Length fields");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
		400, true, "Content-Length is not a plain decimal number within 64 bits");
}

Test(h1, smuggle_content_length_signed)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +7\r\n\r\n1234567",
		400, true, "Content-Length is not a plain decimal number within 64 bits");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -7\r\n\r\n1234567",
		400, true, "Content-Length is not a plain decimal number within 64 bits");
}

/* " 7" and "7 " with the space around the value are the value 7 (OWS, see
 * content_length_ows_is_not_part_of_the_value); a space or another blank
 * inside the digits is refused. */
Test(h1, smuggle_content_length_spaces)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 7\r\n\r\n1234567",
		400, true, "Content-Length is not a plain decimal number within 64 bits");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \v7\r\n\r\n1234567",
		400, true, "control character in a header value");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\f\r\n\r\n1234567",
		400, true, "control character in a header value");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
		400, true, "Content-Length is not a plain decimal number within 64 bits");
}

Test(h1, smuggle_content_length_hex)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x7\r\n\r\n1234567",
		400, true, "Content-Length is not a plain decimal number within 64 bits");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7.0\r\n\r\n1234567",
		400, true, "Content-Length is not a plain decimal number within 64 bits");
}

Test(h1, smuggle_content_length_overflow)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
		400, true, "Content-Length is not a plain decimal number within 64 bits");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400,
		true, "Content-Length is not a plain decimal number within 64 bits");
}

Test(h1, smuggle_te_chunked_not_last)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		400, true, "chunked is not the final transfer coding (or is applied twice)");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"
		"\r\n0\r\n\r\n",
		400, true, "chunked is not the final transfer coding (or is applied twice)");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
		400, true, "chunked is not the final transfer coding (or is applied twice)");
}

Test(h1, smuggle_te_unknown_coding)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
		501, true, "unsupported transfer coding (only chunked is)");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
		true, "unsupported transfer coding (only chunked is)");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
		501, true, "unsupported transfer coding (only chunked is)");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
		400, true, "malformed Transfer-Encoding");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
		400, true, "malformed Transfer-Encoding");
}

Test(h1, smuggle_te_space_before_colon)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
		400, true, "whitespace between a header name and its colon");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 1\r\n\r\nx",
		400, true, "whitespace between a header name and its colon");
}

Test(h1, smuggle_te_in_http10)
{
	REFUSED("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		400, true, "Transfer-Encoding in an HTTP/1.0 request");
}

Test(h1, smuggle_obs_fold)
{
	REFUSED("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n",
		400, true, "obs-fold: a header line starting with whitespace");
	REFUSED("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\tchunked\r\n\r\n",
		400, true, "obs-fold: a header line starting with whitespace");
	REFUSED("GET / HTTP/1.1\r\n Host: a\r\n\r\n",
		400, true, "obs-fold: a header line starting with whitespace");
}

Test(h1, smuggle_nul_in_a_value)
{
	REFUSED("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n",
		400, true, "NUL byte in a header value");
	REFUSED("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f\r\n\r\n",
		400, true, "control character in a header value");
	REFUSED("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01\r\n\r\n",
		400, true, "control character in a header value");
}

Test(h1, smuggle_bad_header_names)
{
	REFUSED("GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", 400, true, "empty header name");
	REFUSED("GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n",
		400, true, "invalid character in a header name");
	REFUSED("GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n",
		400, true, "a header line without a colon");
	REFUSED("GET / HTTP/1.1\r\nHost: a\r\nX\x80: 1\r\n\r\n",
		400, true, "invalid character in a header name");
}

Test(h1, smuggle_bare_lf)
{
	REFUSED("GET / HTTP/1.1\nHost: a\n\n", 400, true, "bare LF line ending (CRLF required)");
	REFUSED("GET / HTTP/1.1\r\nHost: a\n\r\n",
		400, true, "bare LF line ending (CRLF required)");
	REFUSED("GET / HTTP/1.1\r\nHost: a\r\n\n",
		400, true, "bare LF line ending (CRLF required)");
	REFUSED("GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", 400, true, "CR not followed by LF");
}

Test(h1, smuggle_chunk_size_hex_prefix)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
		400, true, "invalid chunk size (hex digits only)");
}

Test(h1, smuggle_chunk_size_signed_or_padded)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
		400, true, "invalid chunk size (hex digits only)");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
		400, true, "invalid chunk size (hex digits only)");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
		400, true, "invalid chunk size (hex digits only)");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
		400, true, "invalid chunk size (hex digits only)");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n",
		400, true, "invalid chunk size (hex digits only)");
}

Test(h1, smuggle_chunk_size_overflow)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		"10000000000000000\r\nhello\r\n0\r\n\r\n",
		400, true, "chunk size overflows 64 bits");
	/* within 64 bits but over max_body: 413 before any data */
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		"ffffffffffffffff\r\nhello\r\n0\r\n\r\n", 413, true, "request body over max_body");
}

Test(h1, smuggle_chunk_missing_crlf_after_data)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
		400, true, "no CRLF after chunk data");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
		400, true, "no CRLF after chunk data");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\n",
		400, true, "malformed trailer field");
	/* any byte in place of the CR, or of the LF, after the data */
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\n0\r\n\r\n",
		400, true, "no CRLF after chunk data");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\rX0\r\n\r\n",
		400, true, "no CRLF after chunk data");
}

Test(h1, smuggle_chunk_extensions)
{
	/* a bare LF or CR inside an extension (a quoted one included) */
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n",
		400, true, "malformed chunk extension");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"x\r\n\"\r\nhello\r\n"
		"0\r\n\r\n", 400, true, "malformed chunk extension");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5; a=b\r\nhello\r\n0\r\n\r\n",
		400, true, "malformed chunk extension");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;=b\r\nhello\r\n0\r\n\r\n",
		400, true, "malformed chunk extension");

	struct h1_limits lim;
	char s[4096];
	int n = snprintf(s, sizeof(s),
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=");
	h1_limits_default(&lim);
	memset(s + n, 'x', H1_MAX_CHUNK_LINE_DEFAULT);
	n += H1_MAX_CHUNK_LINE_DEFAULT;
	n += snprintf(s + n, sizeof(s) - (size_t)n, "\r\nhello\r\n0\r\n\r\n");
	refused_lim(s, (size_t)n, &lim, MiB, 400, true, "chunk size line too long");
}

Test(h1, smuggle_trailers)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX : 1\r\n\r\n",
		400, true, "malformed trailer field");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: \0\r\n\r\n",
		400, true, "control character in a trailer field");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n x: 1\r\n\r\n",
		400, true, "malformed trailer field");

	struct h1_limits lim;
	char s[16384];
	int n = snprintf(s, sizeof(s), "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "0\r\nX: ");
	h1_limits_default(&lim);
	memset(s + n, 'x', H1_MAX_TRAILERS_DEFAULT);
	n += H1_MAX_TRAILERS_DEFAULT;
	n += snprintf(s + n, sizeof(s) - (size_t)n, "\r\n\r\n");
	refused_lim(s, (size_t)n, &lim, MiB, 431, true, "trailer section too large");
}

Test(h1, smuggle_http11_without_host)
{
	/* the framing is sound and no body follows: the connection may go on */
	struct h1d_outcome *o = DRIVE("GET / HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n");
	cr_assert_eq(o->req[0].status, 400);
	cr_assert_not(o->req[0].must_close);
	cr_assert_eq(o->nreq, 2);
	cr_assert_eq(o->req[1].status, 0);
	cr_assert_str_eq(o->req[1].target, "/next");
	free(o);
	/* a body follows: close */
	REFUSED("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok",
		400, true, "HTTP/1.1 request without Host");
}

Test(h1, smuggle_two_hosts)
{
	REFUSED("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, false, "several Host fields");
	REFUSED("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
		400, true, "several Host fields");
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		400, true, "several Host fields");
}

Test(h1, smuggle_invalid_host)
{
	REFUSED("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, false, "invalid Host");
	REFUSED("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, false, "invalid Host");
	REFUSED("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400, false, "invalid Host");
	REFUSED("GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n", 400, false, "invalid Host");
	REFUSED("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, false, "invalid Host");
	REFUSED("GET / HTTP/1.0\r\nHost: a\"b\r\n\r\n", 400, true, "invalid Host");

	struct h1d_outcome *o = DRIVE("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"
				      "GET / HTTP/1.1\r\nHost: example.com:80\r\n\r\n"
				      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
				      "GET / HTTP/1.1\r\nHost:\r\n\r\n");
	cr_assert_eq(o->nreq, 4);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(o->req[i].status, 0, "request %u: %s", i, o->req[i].why);
	free(o);
}

Test(h1, smuggle_endless_empty_lines)
{
	/* CRLFs before a request line are skipped, not kept forever */
	size_t n = 2 * H1_MAX_LINE_DEFAULT + 2;
	char *s = malloc(n);

	for (size_t i = 0; i < n; i += 2)
		memcpy(s + i, "\r\n", 2);
	refused_n(s, n, 414, true, "request line too long");
	free(s);
}

Test(h1, smuggle_unknown_expect)
{
	REFUSED("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx",
		417, true, "unsupported expectation (only 100-continue is)");
	REFUSED("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, x\r\n\r\n",
		417, false, "unsupported expectation (only 100-continue is)");
}

Test(h1, smuggle_line_too_long)
{
	struct h1_limits lim;
	char s[128];

	h1_limits_default(&lim);
	lim.max_line = strlen("GET /abc HTTP/1.1") - 1;
	snprintf(s, sizeof(s), "GET /abc HTTP/1.1\r\nHost: a\r\n\r\n");
	refused_lim(s, strlen(s), &lim, MiB, 414, true, "request line too long");

	size_t n = H1_MAX_LINE_DEFAULT + 64;
	char *big = malloc(n);
	memset(big, 'a', n);
	memcpy(big, "GET /", 5);
	const char *tail = " HTTP/1.1\r\nHost: a\r\n\r\n";
	memcpy(big + n - strlen(tail), tail, strlen(tail));
	h1_limits_default(&lim);
	refused_lim(big, n, &lim, MiB, 414, true, "request line too long");
	free(big);
}

Test(h1, smuggle_headers_too_big)
{
	struct h1_limits lim;
	size_t n = H1_MAX_HEADERS_DEFAULT + 64;
	char *big = malloc(n);

	memset(big, 'v', n);
	memcpy(big, "GET / HTTP/1.1\r\nHost: a\r\nX: ", 28);
	memcpy(big + n - 4, "\r\n\r\n", 4);
	h1_limits_default(&lim);
	refused_lim(big, n, &lim, MiB, 431, true, "header section too large");
	free(big);

	char s[128];
	lim.max_headers = strlen("Host: a\r\nX: 1\r\n\r\n") - 1;
	snprintf(s, sizeof(s), "GET /abc HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n");
	refused_lim(s, strlen(s), &lim, MiB, 431, true, "header section too large");
}

Test(h1, smuggle_too_many_fields)
{
	char s[8192];
	size_t n = (size_t)snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nHost: a\r\n");

	for (int i = 0; i < H1_MAX_FIELDS_DEFAULT; i++)
		n += (size_t)snprintf(s + n, sizeof(s) - n, "X-%d: %d\r\n", i, i);
	n += (size_t)snprintf(s + n, sizeof(s) - n, "\r\n");
	refused_n(s, n, 431, true, "too many header fields");
}

Test(h1, smuggle_http_versions)
{
	REFUSED("GET / HTTP/2.0\r\nHost: a\r\n\r\n",
		505, true, "HTTP version not supported (HTTP/1.0 and HTTP/1.1 are)");
	REFUSED("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		505, true, "HTTP version not supported (HTTP/1.0 and HTTP/1.1 are)");
	REFUSED("GET / HTTP/1.2\r\nHost: a\r\n\r\n",
		505, true, "HTTP version not supported (HTTP/1.0 and HTTP/1.1 are)");
	REFUSED("GET / HTTP/0.9\r\n\r\n",
		505, true, "HTTP version not supported (HTTP/1.0 and HTTP/1.1 are)");
	/* HTTP/0.9's request line */
	REFUSED("GET /\r\n\r\n", 400, true,
		"no HTTP version in the request line (HTTP/0.9 is not served)");
	REFUSED("GET / HTTP/1.10\r\nHost: a\r\n\r\n",
		400, true, "malformed HTTP version in the request line");
	REFUSED("GET / http/1.1\r\nHost: a\r\n\r\n",
		400, true, "malformed HTTP version in the request line");
	REFUSED("GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
		400, true, "malformed HTTP version in the request line");
}

Test(h1, smuggle_request_line)
{
	REFUSED("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, true, "empty request target");
	REFUSED("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
		400, true, "the request target is not a path starting with /");
	REFUSED("GET * HTTP/1.1\r\nHost: a\r\n\r\n",
		400, true, "the target \"*\" is only for OPTIONS");
	REFUSED("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n",
		400, true, "invalid byte in the request line");
	REFUSED("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n",
		400, true, "invalid byte in the request line");
	REFUSED("G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
		400, true, "malformed request line (METHOD SP target SP HTTP/1.x)");
	REFUSED(" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		400, true, "the request line does not start with a method");
	REFUSED("\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		400, true, "bare LF line ending (CRLF required)");
}

Test(h1, smuggle_after_a_valid_request)
{
	/* the first request is served; the second, smuggled in its wake, is refused */
	struct h1d_outcome *o = DRIVE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n"
				      "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n");

	cr_assert_eq(o->nreq, 2);
	cr_assert_eq(o->req[0].status, 0);
	cr_assert_str_eq(o->req[0].body, "0\r\n\r");
	cr_assert_eq(o->req[1].status, 400, "\"\\nGET ...\" starts with a bare LF");
	free(o);
}

/* ---- the fuzzer's seeds and finds ---------------------------------------- */

/* Every file of the fuzzer's corpus (make runs the suite from the
 * repository root) passes the fuzzer's checks: the seeds, and each crash
 * input found, stay regression tests. */
Test(h1, fuzz_corpus_replays_clean)
{
	const char *dir = "tests/fuzz/corpus/h1";
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned files = 0;

	cr_assert_not_null(d, "%s: run the suite from the repository root", dir);
	while ((e = readdir(d)) != NULL) {
		char path[512];
		size_t len;
		char *data;
		const char *bad;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		data = u_read_file(path, &len);
		cr_assert_not_null(data, "%s", path);
		bad = h1d_check_input((const uint8_t *)data, len);
		cr_assert_null(bad, "%s: %s", path, bad);
		free(data);
		files++;
	}
	closedir(d);
	cr_assert_geq(files, 12, "the seed corpus is there");
}
