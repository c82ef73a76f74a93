/*
 * reply: what a step may set of its call's reply. A 2xx status only;
 * header names are RFC 9110 tokens, values without control characters (a
 * tab is fine); the headers hookd owns (framing, hop-by-hop, its own) are
 * HOOKD_EFORBIDDEN whatever their case; at most 32 headers of 8 KiB each;
 * a raw body is copied with its type; merging lets the later step win; the
 * wire form round-trips and its decoder refuses what a forged frame from an
 * isolated child could carry.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hookd.h>

#include "../../host/json.h"
#include "../../host/reply.h"
#include "unit.h"

/* The header called `name` (exact case), or NULL. */
static const struct reply_header *find(const struct reply *r, const char *name)
{
	for (unsigned i = 0; i < r->nheaders; i++)
		if (strcmp(r->headers[i].name, name) == 0)
			return &r->headers[i];
	return NULL;
}

/* ---- status ------------------------------------------------------------ */

Test(reply, status_must_be_2xx)
{
	struct reply r = {0};
	static const int bad[] = {0, 1, 100, 199, 300, 301, 404, 500, 599, -200, 2000};

	cr_assert_eq(reply_set_status(&r, 200), HOOKD_OK);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(reply_set_status(&r, 299), HOOKD_OK);
	cr_assert_eq(r.status, 299);
	cr_assert_eq(reply_set_status(&r, 204), HOOKD_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(reply_set_status(&r, bad[i]), HOOKD_EINVAL, "status %d", bad[i]);
		cr_assert_eq(r.status, 204, "a refused status leaves the reply as it was");
	}
	reply_clear(&r);
}

/* ---- headers ----------------------------------------------------------- */

Test(reply, header_names_are_tokens)
{
	struct reply r = {0};
	static const char *const bad[] = {
		"", "X Space", "X:Colon", "X-Tab\t", "(paren)", "X\"q", "X/slash", "X@at",
		"X-\xC3\xA9", "\x80", "X\r\nY", "X{", "[x]", "X,Y", "X;Y", "X=Y", "X?",
	};
	static const char *const good[] = {
		"X-Ok", "x", "X-Hub-Signature-256", "!#$%&'*+-.^_`|~09azAZ",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(reply_set_header(&r, bad[i], "v"), HOOKD_EINVAL, "name \"%s\"", bad[i]);
	cr_assert_eq(reply_set_header(&r, NULL, "v"), HOOKD_EINVAL);
	cr_assert_eq(r.nheaders, 0, "nothing refused was kept");
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_eq(reply_set_header(&r, good[i], "v"), HOOKD_OK, "name \"%s\"", good[i]);
	cr_assert_eq(r.nheaders, sizeof(good) / sizeof(good[0]));
	reply_clear(&r);
}

Test(reply, header_values_without_control_characters)
{
	struct reply r = {0};
	static const char *const bad[] = {
		"a\rb", "a\nb", "a\r\nX-Injected: 1", "\x01", "a\x1f", "a\x7f", "\x7f",
	};
	const struct reply_header *h;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(reply_set_header(&r, "X-V", bad[i]), HOOKD_EINVAL, "value %zu", i);
	cr_assert_eq(r.nheaders, 0);
	/* a NUL ends the C string: what follows it is not part of the value */
	cr_assert_eq(reply_set_header(&r, "X-Tab", "a\tb c"), HOOKD_OK, "a tab is allowed");
	cr_assert_eq(reply_set_header(&r, "X-Empty", ""), HOOKD_OK);
	cr_assert_eq(reply_set_header(&r, "X-Utf8", "caf\xC3\xA9"), HOOKD_OK, "obs-text is fine");
	h = find(&r, "X-Tab");
	cr_assert_not_null(h);
	cr_assert_str_eq(h->value, "a\tb c");
	cr_assert_str_eq(find(&r, "X-Empty")->value, "");
	reply_clear(&r);
}

Test(reply, every_owned_header_is_forbidden_in_any_case)
{
	static const char *const owned[] = {
		"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "TE",
		"Trailer", "Proxy-Authenticate", "Proxy-Connection", "Proxy-Anything", "Content-Type",
		"Date", "Server", "X-Request-Id",
	};
	struct reply r = {0};
	char lower[64], upper[64];

	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
		size_t n = strlen(owned[i]);
		for (size_t j = 0; j <= n; j++) {
			lower[j] = (char)(owned[i][j] >= 'A' && owned[i][j] <= 'Z' ? owned[i][j] + 32
										 : owned[i][j]);
			upper[j] = (char)(owned[i][j] >= 'a' && owned[i][j] <= 'z' ? owned[i][j] - 32
										 : owned[i][j]);
		}
		cr_assert(reply_header_forbidden(owned[i]), "%s", owned[i]);
		cr_assert_eq(reply_set_header(&r, owned[i], "1"), HOOKD_EFORBIDDEN, "%s", owned[i]);
		cr_assert_eq(reply_set_header(&r, lower, "1"), HOOKD_EFORBIDDEN, "%s", lower);
		cr_assert_eq(reply_set_header(&r, upper, "1"), HOOKD_EFORBIDDEN, "%s", upper);
		/* removing one is refused too */
		cr_assert_eq(reply_set_header(&r, owned[i], NULL), HOOKD_EFORBIDDEN, "%s", owned[i]);
	}
	cr_assert_eq(r.nheaders, 0);
	/* near misses are ordinary headers */
	cr_assert(!reply_header_forbidden("Content-Language"));
	cr_assert(!reply_header_forbidden("Proxy"));
	cr_assert(!reply_header_forbidden("TEE"));
	cr_assert(!reply_header_forbidden("X-Request-Ids"));
	cr_assert(!reply_header_forbidden("Location"));
	cr_assert_eq(reply_set_header(&r, "Location", "/x"), HOOKD_OK);
	cr_assert_eq(reply_set_header(&r, "Cache-Control", "no-store"), HOOKD_OK);
	reply_clear(&r);
}

Test(reply, the_same_name_in_any_case_replaces)
{
	struct reply r = {0};

	cr_assert_eq(reply_set_header(&r, "X-Thing", "1"), HOOKD_OK);
	cr_assert_eq(reply_set_header(&r, "x-thing", "2"), HOOKD_OK);
	cr_assert_eq(reply_set_header(&r, "X-THING", "3"), HOOKD_OK);
	cr_assert_eq(r.nheaders, 1);
	cr_assert_str_eq(r.headers[0].name, "X-Thing", "the first spelling stays");
	cr_assert_str_eq(r.headers[0].value, "3");
	cr_assert_eq(reply_set_header(&r, "X-Other", "o"), HOOKD_OK);
	cr_assert_eq(r.nheaders, 2);
	reply_clear(&r);
}

Test(reply, a_null_value_removes)
{
	struct reply r = {0};

	cr_assert_eq(reply_set_header(&r, "X-Gone", "1"), HOOKD_OK);
	cr_assert_eq(reply_set_header(&r, "x-gone", NULL), HOOKD_OK);
	cr_assert_eq(r.nheaders, 1, "kept as a removal, for merging");
	cr_assert_null(r.headers[0].value);
	/* removing a header never set records the removal */
	cr_assert_eq(reply_set_header(&r, "X-Never", NULL), HOOKD_OK);
	cr_assert_null(find(&r, "X-Never")->value);
	/* and setting it again brings it back */
	cr_assert_eq(reply_set_header(&r, "X-GONE", "2"), HOOKD_OK);
	cr_assert_str_eq(r.headers[0].value, "2");
	reply_clear(&r);
}

Test(reply, at_most_32_headers)
{
	struct reply r = {0};
	char name[32];

	for (int i = 0; i < REPLY_MAX_HEADERS; i++) {
		snprintf(name, sizeof(name), "X-H%d", i);
		cr_assert_eq(reply_set_header(&r, name, "v"), HOOKD_OK, "%s", name);
	}
	cr_assert_eq(r.nheaders, 32);
	cr_assert_eq(reply_set_header(&r, "X-One-Too-Many", "v"), HOOKD_EINVAL);
	cr_assert_eq(r.nheaders, 32);
	cr_assert_null(find(&r, "X-One-Too-Many"));
	/* replacing one of the 32 still works */
	cr_assert_eq(reply_set_header(&r, "x-h7", "new"), HOOKD_OK);
	cr_assert_str_eq(find(&r, "X-H7")->value, "new");
	reply_clear(&r);
	cr_assert_eq(r.nheaders, 0);
	u_assert_no_leaks();
}

Test(reply, a_header_is_at_most_8_KiB_name_and_value)
{
	struct reply r = {0};
	char *v = malloc(REPLY_MAX_HEADER_BYTES + 2);

	cr_assert_not_null(v);
	/* "X-A" + value: exactly 8192 bytes is fine, one more is not */
	memset(v, 'a', REPLY_MAX_HEADER_BYTES - 3);
	v[REPLY_MAX_HEADER_BYTES - 3] = '\0';
	cr_assert_eq(reply_set_header(&r, "X-A", v), HOOKD_OK);
	memset(v, 'a', REPLY_MAX_HEADER_BYTES - 2);
	v[REPLY_MAX_HEADER_BYTES - 2] = '\0';
	cr_assert_eq(reply_set_header(&r, "X-B", v), HOOKD_EINVAL);
	cr_assert_null(find(&r, "X-B"));
	free(v);
	reply_clear(&r);
}

/* ---- body -------------------------------------------------------------- */

Test(reply, set_body_copies_the_bytes_and_the_type)
{
	struct reply r = {0};
	char body[] = "a\0b\xff";
	char ct[] = "text/plain; charset=utf-8";

	cr_assert_eq(reply_set_body(&r, body, 4, ct), HOOKD_OK);
	body[0] = 'X';
	ct[0] = 'X';
	cr_assert(r.body_set);
	cr_assert_eq(r.body_len, 4);
	cr_assert_eq(memcmp(r.body, "a\0b\xff", 4), 0, "a copy, NULs kept");
	cr_assert_str_eq(r.content_type, "text/plain; charset=utf-8");
	/* a second body replaces the first */
	cr_assert_eq(reply_set_body(&r, "<x/>", 4, "application/xml"), HOOKD_OK);
	cr_assert_eq(memcmp(r.body, "<x/>", 4), 0);
	cr_assert_str_eq(r.content_type, "application/xml");
	reply_clear(&r);
}

Test(reply, no_content_type_is_octet_stream)
{
	struct reply r = {0};

	cr_assert_eq(reply_set_body(&r, "\x01\x02", 2, NULL), HOOKD_OK);
	cr_assert_str_eq(r.content_type, "application/octet-stream");
	reply_clear(&r);
}

Test(reply, an_empty_body_is_a_body)
{
	struct reply r = {0};

	cr_assert_eq(reply_set_body(&r, "", 0, "text/plain"), HOOKD_OK);
	cr_assert_not_null(r.body, "an empty raw body, not JSON");
	cr_assert_eq(r.body_len, 0);
	reply_clear(&r);
}

Test(reply, a_null_body_goes_back_to_json)
{
	struct reply r = {0};

	cr_assert_eq(reply_set_body(&r, "raw", 3, "text/plain"), HOOKD_OK);
	cr_assert_eq(reply_set_body(&r, NULL, 0, NULL), HOOKD_OK);
	cr_assert(r.body_set, "set, to JSON: a later merge must override an earlier body");
	cr_assert_null(r.body);
	cr_assert_null(r.content_type);
	cr_assert_eq(r.body_len, 0);
	reply_clear(&r);
}

Test(reply, bad_body_arguments_change_nothing)
{
	struct reply r = {0};

	cr_assert_eq(reply_set_body(&r, "keep", 4, "text/plain"), HOOKD_OK);
	cr_assert_eq(reply_set_body(&r, NULL, 3, "text/plain"), HOOKD_EINVAL, "NULL with a length");
	cr_assert_eq(reply_set_body(&r, "x", 1, "text/plain\r\nX-Injected: 1"), HOOKD_EINVAL);
	cr_assert_eq(reply_set_body(&r, "x", 1, "text/\x7f"), HOOKD_EINVAL);
	{
		char *ct = malloc(REPLY_MAX_HEADER_BYTES + 2);
		cr_assert_not_null(ct);
		memset(ct, 'a', REPLY_MAX_HEADER_BYTES + 1);
		ct[REPLY_MAX_HEADER_BYTES + 1] = '\0';
		cr_assert_eq(reply_set_body(&r, "x", 1, ct), HOOKD_EINVAL, "a type over 8 KiB");
		ct[REPLY_MAX_HEADER_BYTES] = '\0';
		cr_assert_eq(reply_set_body(&r, "y", 1, ct), HOOKD_OK, "8 KiB exactly");
		cr_assert_eq(strlen(r.content_type), REPLY_MAX_HEADER_BYTES);
		free(ct);
		cr_assert_eq(reply_set_body(&r, "keep", 4, "text/plain"), HOOKD_OK);
	}
	cr_assert_eq(memcmp(r.body, "keep", 4), 0);
	cr_assert_str_eq(r.content_type, "text/plain");
	reply_clear(&r);
}

/* ---- merge and clear --------------------------------------------------- */

Test(reply, merge_later_wins_and_headers_merge)
{
	struct reply call = {0}, step = {0};

	cr_assert_eq(reply_set_status(&call, 201), HOOKD_OK);
	cr_assert_eq(reply_set_header(&call, "X-A", "call"), HOOKD_OK);
	cr_assert_eq(reply_set_header(&call, "X-B", "call"), HOOKD_OK);
	cr_assert_eq(reply_set_body(&call, "first", 5, "text/plain"), HOOKD_OK);

	cr_assert_eq(reply_set_status(&step, 202), HOOKD_OK);
	cr_assert_eq(reply_set_header(&step, "x-b", "step"), HOOKD_OK);
	cr_assert_eq(reply_set_header(&step, "X-A", NULL), HOOKD_OK);
	cr_assert_eq(reply_set_header(&step, "X-C", "step"), HOOKD_OK);
	cr_assert_eq(reply_set_body(&step, "second", 6, "text/csv"), HOOKD_OK);
	reply_merge(&call, &step);

	cr_assert_eq(call.status, 202);
	cr_assert_eq(call.body_len, 6);
	cr_assert_eq(memcmp(call.body, "second", 6), 0);
	cr_assert_str_eq(call.content_type, "text/csv");
	cr_assert_eq(call.nheaders, 3);
	cr_assert_null(find(&call, "X-A")->value, "the step removed it");
	cr_assert_str_eq(find(&call, "X-B")->value, "step");
	cr_assert_str_eq(find(&call, "X-C")->value, "step");
	/* from is left empty */
	cr_assert_eq(step.status, 0);
	cr_assert_eq(step.nheaders, 0);
	cr_assert_null(step.body);
	cr_assert(!step.body_set);
	reply_clear(&call);
	u_assert_no_leaks();
}

Test(reply, merge_of_what_a_step_did_not_set_keeps_the_call)
{
	struct reply call = {0}, step = {0};

	cr_assert_eq(reply_set_status(&call, 204), HOOKD_OK);
	cr_assert_eq(reply_set_body(&call, "b", 1, "text/plain"), HOOKD_OK);
	cr_assert_eq(reply_set_header(&step, "X-Only", "1"), HOOKD_OK);
	reply_merge(&call, &step);
	cr_assert_eq(call.status, 204, "status 0 means not set");
	cr_assert_eq(memcmp(call.body, "b", 1), 0, "the body was not set by the step");
	cr_assert_str_eq(find(&call, "X-Only")->value, "1");
	/* a step that went back to JSON overrides an earlier raw body */
	cr_assert_eq(reply_set_body(&step, NULL, 0, NULL), HOOKD_OK);
	reply_merge(&call, &step);
	cr_assert_null(call.body);
	cr_assert_null(call.content_type);
	cr_assert(call.body_set);
	reply_clear(&call);
}

Test(reply, clear_empties_and_is_idempotent)
{
	struct reply r = {0};

	cr_assert_eq(reply_set_status(&r, 202), HOOKD_OK);
	cr_assert_eq(reply_set_header(&r, "X-A", "1"), HOOKD_OK);
	cr_assert_eq(reply_set_body(&r, "b", 1, NULL), HOOKD_OK);
	reply_clear(&r);
	cr_assert_eq(r.status, 0);
	cr_assert_eq(r.nheaders, 0);
	cr_assert_null(r.body);
	cr_assert_null(r.content_type);
	cr_assert(!r.body_set);
	reply_clear(&r);
}

/* ---- wire form --------------------------------------------------------- */

static void encode(const struct reply *r, struct jbuf *b)
{
	*b = (struct jbuf){0};
	cr_assert_eq(reply_encode(r, b), 0);
}

/* Decoding all of b gives 0 and consumes it exactly. */
static void decode_all(const struct jbuf *b, struct reply *out)
{
	const char *p = b->data;

	cr_assert_eq(reply_decode(&p, b->data + b->len, out), 0);
	cr_assert_eq(p, b->data + b->len, "the whole frame is read");
}

static void decode_bad(const struct jbuf *b, const char *why)
{
	struct reply out;
	const char *p = b->data;

	cr_assert_eq(reply_decode(&p, b->data + b->len, &out), -EINVAL, "%s", why);
	cr_assert_eq(out.nheaders, 0, "%s: out is left empty", why);
	cr_assert_null(out.body, "%s", why);
	cr_assert_null(out.content_type, "%s", why);
}

static void full_reply(struct reply *r)
{
	*r = (struct reply){0};
	cr_assert_eq(reply_set_status(r, 202), HOOKD_OK);
	cr_assert_eq(reply_set_header(r, "X-One", "1"), HOOKD_OK);
	cr_assert_eq(reply_set_header(r, "X-Gone", NULL), HOOKD_OK);
	cr_assert_eq(reply_set_header(r, "X-Empty", ""), HOOKD_OK);
	cr_assert_eq(reply_set_body(r, "bin\0ary", 7, "application/x-thing"), HOOKD_OK);
}

Test(reply, wire_round_trip)
{
	struct reply r, back;
	struct jbuf b;

	full_reply(&r);
	encode(&r, &b);
	decode_all(&b, &back);
	cr_assert_eq(back.status, 202);
	cr_assert(back.body_set);
	cr_assert_eq(back.body_len, 7);
	cr_assert_eq(memcmp(back.body, "bin\0ary", 7), 0);
	cr_assert_str_eq(back.content_type, "application/x-thing");
	cr_assert_eq(back.nheaders, 3);
	for (unsigned i = 0; i < 3; i++) {
		cr_assert_str_eq(back.headers[i].name, r.headers[i].name);
		if (r.headers[i].value)
			cr_assert_str_eq(back.headers[i].value, r.headers[i].value);
		else
			cr_assert_null(back.headers[i].value, "a removal stays a removal");
	}
	reply_clear(&back);
	reply_clear(&r);
	jbuf_free(&b);
	u_assert_no_leaks();
}

Test(reply, wire_round_trip_of_an_empty_and_a_json_again_reply)
{
	struct reply r = {0}, back;
	struct jbuf b;

	encode(&r, &b);
	decode_all(&b, &back);
	cr_assert_eq(back.status, 0);
	cr_assert(!back.body_set);
	cr_assert_null(back.body);
	cr_assert_eq(back.nheaders, 0);
	jbuf_free(&b);

	cr_assert_eq(reply_set_body(&r, NULL, 0, NULL), HOOKD_OK);
	encode(&r, &b);
	decode_all(&b, &back);
	cr_assert(back.body_set);
	cr_assert_null(back.body, "back to JSON survives the wire");
	jbuf_free(&b);
	reply_clear(&back);

	cr_assert_eq(reply_set_body(&r, "", 0, "text/plain"), HOOKD_OK);
	encode(&r, &b);
	decode_all(&b, &back);
	cr_assert_not_null(back.body, "an empty raw body is not NULL");
	cr_assert_eq(back.body_len, 0);
	jbuf_free(&b);
	reply_clear(&back);
	reply_clear(&r);
}

Test(reply, decode_refuses_every_truncation)
{
	struct reply r;
	struct jbuf b;

	full_reply(&r);
	encode(&r, &b);
	for (size_t n = 0; n < b.len; n++) {
		/* a copy of exactly n bytes: ASan sees any read past it */
		char *cut = malloc(n ? n : 1);
		const char *p = cut;
		struct reply out;
		cr_assert_not_null(cut);
		memcpy(cut, b.data, n);
		cr_assert_eq(reply_decode(&p, cut + n, &out), -EINVAL, "cut at %zu of %zu", n,
			     b.len);
		cr_assert_eq(out.nheaders, 0);
		cr_assert_null(out.body);
		free(cut);
	}
	reply_clear(&r);
	jbuf_free(&b);
	u_assert_no_leaks();
}

Test(reply, decode_refuses_a_status_outside_2xx)
{
	static const int bad[] = {1, 199, 300, 500, -1};
	struct reply r = {0};
	struct jbuf b;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r.status = bad[i]; /* what the setter refuses: only a forged frame has it */
		encode(&r, &b);
		decode_bad(&b, "status");
		jbuf_free(&b);
	}
}

Test(reply, decode_refuses_more_than_32_headers)
{
	struct reply r = {0};
	struct jbuf b;
	uint32_t n = REPLY_MAX_HEADERS + 1;

	encode(&r, &b);
	/* the header count is the third u32; the strings for 33 headers follow */
	memcpy(b.data + 8, &n, 4);
	for (uint32_t i = 0; i < n; i++) {
		char name[16];
		uint32_t len = (uint32_t)snprintf(name, sizeof(name), "X-H%u", i), one = 1;
		cr_assert_eq(jbuf_append(&b, &len, 4), 0);
		cr_assert_eq(jbuf_append(&b, name, len), 0);
		cr_assert_eq(jbuf_append(&b, &one, 4), 0);
		cr_assert_eq(jbuf_append(&b, "v", 1), 0);
	}
	decode_bad(&b, "33 headers");
	jbuf_free(&b);
	u_assert_no_leaks();
}

Test(reply, decode_refuses_a_forbidden_or_invalid_header)
{
	static const char *const names[] = {"Content-Length", "transfer-encoding", "Proxy-X",
					    "X Bad", ""};
	static const char *const values[] = {"1", "x\r\nX-Injected: 1"};
	struct reply r = {0};
	struct jbuf b;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		r.headers[0] = (struct reply_header){(char *)names[i], (char *)"1"};
		r.nheaders = 1;
		encode(&r, &b);
		decode_bad(&b, names[i]);
		jbuf_free(&b);
	}
	for (size_t i = 1; i < sizeof(values) / sizeof(values[0]); i++) {
		r.headers[0] = (struct reply_header){(char *)"X-Ok", (char *)values[i]};
		r.nheaders = 1;
		encode(&r, &b);
		decode_bad(&b, "a value with CR LF");
		jbuf_free(&b);
	}
	/* a second header that is forbidden, after a good one: the first is freed */
	r.headers[0] = (struct reply_header){(char *)"X-Ok", (char *)"1"};
	r.headers[1] = (struct reply_header){(char *)"Connection", (char *)"close"};
	r.nheaders = 2;
	encode(&r, &b);
	decode_bad(&b, "Connection second");
	jbuf_free(&b);
	u_assert_no_leaks();
}

Test(reply, decode_refuses_a_null_header_name)
{
	struct reply r = {0};
	struct jbuf b;
	uint32_t one = 1, null = UINT32_MAX;

	encode(&r, &b);
	memcpy(b.data + 8, &one, 4);
	cr_assert_eq(jbuf_append(&b, &null, 4), 0); /* name: NULL */
	cr_assert_eq(jbuf_append(&b, &null, 4), 0); /* value: NULL */
	decode_bad(&b, "a header without a name");
	jbuf_free(&b);
	u_assert_no_leaks();
}

/* A forged frame's body and content type must be what set_body can make:
 * http.c sends rp->content_type as the Content-Type of a raw body (a NULL
 * one crashed the parent in strlen; a CR LF one reached the wire). */
Test(reply, decode_refuses_a_body_without_a_valid_content_type)
{
	struct reply r = {0};
	struct jbuf b;

	r.body_set = true;
	r.body = (char *)"raw";
	r.body_len = 3;
	r.content_type = NULL;
	encode(&r, &b);
	decode_bad(&b, "a body without a content type");
	jbuf_free(&b);

	r.content_type = (char *)"text/plain\r\nX-Injected: 1";
	encode(&r, &b);
	decode_bad(&b, "a content type with CR LF");
	jbuf_free(&b);

	r.body = NULL;
	r.body_len = 0;
	r.content_type = (char *)"text/plain";
	encode(&r, &b);
	decode_bad(&b, "a content type without a body");
	jbuf_free(&b);

	r.body = (char *)"raw";
	r.body_len = 3;
	r.body_set = false;
	encode(&r, &b);
	decode_bad(&b, "a body that was never set");
	jbuf_free(&b);
	u_assert_no_leaks();
}
