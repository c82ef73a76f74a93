/*
 * inbound: the request snapshot plugins see is one self-contained copy
 * (nothing points back at the transport's buffers), NULL strings read as
 * "", the body keeps every byte and is NUL-terminated after body_len,
 * header lookup is case-insensitive and takes the first, the block is
 * reference-counted; and its wire form (the CALL frame of an isolated
 * step, with whether the reply is already sent) round-trips, refusing
 * every truncated or inflated frame.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../host/inbound.h"
#include "../../host/json.h"
#include "unit.h"

/* Heap copies of everything, so the test can scribble and free them. */
struct sources {
	char *hook, *method, *path, *query, *client, *rid, *ctype, *body;
	size_t body_len;
	hookd_header hs[3];
};

static char *dup_or_die(const char *s)
{
	char *d = strdup(s);

	cr_assert_not_null(d);
	return d;
}

static void sources_make(struct sources *s, struct inbound_parts *p)
{
	static const char body[] = "{\"a\":1}\0\xff\x01tail";

	s->hook = dup_or_die("github");
	s->method = dup_or_die("POST");
	s->path = dup_or_die("/hooks/github");
	s->query = dup_or_die("x=1&y=%20");
	s->client = dup_or_die("127.0.0.1");
	s->rid = dup_or_die("req-42");
	s->ctype = dup_or_die("application/json");
	s->body_len = sizeof(body) - 1;
	s->body = malloc(s->body_len);
	cr_assert_not_null(s->body);
	memcpy(s->body, body, s->body_len);
	s->hs[0] = (hookd_header){dup_or_die("X-GitHub-Event"), dup_or_die("push")};
	s->hs[1] = (hookd_header){dup_or_die("Content-Type"), dup_or_die("application/json")};
	s->hs[2] = (hookd_header){dup_or_die("x-github-event"), dup_or_die("second")};
	*p = (struct inbound_parts){.hook = s->hook, .method = s->method, .path = s->path,
				    .query = s->query, .client_addr = s->client,
				    .request_id = s->rid, .content_type = s->ctype,
				    .client_port = 54321, .body = s->body, .body_len = s->body_len,
				    .headers = s->hs, .nheaders = 3};
}

/* Overwrite every source byte, then free it. */
static void sources_trash(struct sources *s)
{
	char *strs[] = {s->hook, s->method, s->path, s->query, s->client, s->rid, s->ctype};

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		memset(strs[i], '#', strlen(strs[i]));
		free(strs[i]);
	}
	memset(s->body, '#', s->body_len);
	free(s->body);
	for (size_t i = 0; i < 3; i++) {
		memset((char *)s->hs[i].name, '#', strlen(s->hs[i].name));
		memset((char *)s->hs[i].value, '#', strlen(s->hs[i].value));
		free((char *)s->hs[i].name);
		free((char *)s->hs[i].value);
		s->hs[i] = (hookd_header){"##", "##"};
	}
}

/* in holds what sources_make put in. */
static void expect_sample(const hookd_inbound *in)
{
	static const char body[] = "{\"a\":1}\0\xff\x01tail";

	cr_assert_eq(in->size, sizeof(hookd_inbound));
	cr_assert_str_eq(in->hook, "github");
	cr_assert_str_eq(in->method, "POST");
	cr_assert_str_eq(in->path, "/hooks/github");
	cr_assert_str_eq(in->query, "x=1&y=%20");
	cr_assert_str_eq(in->client_addr, "127.0.0.1");
	cr_assert_eq(in->client_port, 54321);
	cr_assert_str_eq(in->request_id, "req-42");
	cr_assert_str_eq(in->content_type, "application/json");
	cr_assert_eq(in->body_len, sizeof(body) - 1);
	cr_assert_eq(memcmp(in->body, body, sizeof(body) - 1), 0, "binary bytes kept");
	cr_assert_eq(in->body[in->body_len], '\0', "NUL-terminated after body_len");
	cr_assert_eq(in->nheaders, 3);
	cr_assert_str_eq(in->headers[0].name, "X-GitHub-Event");
	cr_assert_str_eq(in->headers[0].value, "push");
	cr_assert_str_eq(in->headers[1].name, "Content-Type");
	cr_assert_str_eq(in->headers[2].name, "x-github-event");
	cr_assert_str_eq(in->headers[2].value, "second");
}

Test(inbound, new_copies_everything)
{
	struct sources s;
	struct inbound_parts p;
	struct inbound *in;

	sources_make(&s, &p);
	in = inbound_new(&p);
	cr_assert_not_null(in);
	sources_trash(&s);
	expect_sample(&in->pub);
	inbound_unref(in);
	u_assert_no_leaks();
}

Test(inbound, null_strings_read_as_empty)
{
	struct inbound_parts p = {0};
	struct inbound *in = inbound_new(&p);

	cr_assert_not_null(in);
	cr_assert_str_eq(in->pub.hook, "");
	cr_assert_str_eq(in->pub.method, "");
	cr_assert_str_eq(in->pub.path, "");
	cr_assert_str_eq(in->pub.query, "");
	cr_assert_str_eq(in->pub.client_addr, "");
	cr_assert_str_eq(in->pub.request_id, "");
	cr_assert_str_eq(in->pub.content_type, "");
	cr_assert_not_null(in->pub.body, "an empty body is \"\", not NULL");
	cr_assert_eq(in->pub.body_len, 0);
	cr_assert_eq(in->pub.body[0], '\0');
	cr_assert_eq(in->pub.nheaders, 0);
	cr_assert_null(inbound_header(&in->pub, "Anything"));
	inbound_unref(in);
}

Test(inbound, header_lookup_is_case_insensitive_and_first_wins)
{
	struct sources s;
	struct inbound_parts p;
	struct inbound *in;

	sources_make(&s, &p);
	in = inbound_new(&p);
	sources_trash(&s);
	cr_assert_str_eq(inbound_header(&in->pub, "X-GitHub-Event"), "push");
	cr_assert_str_eq(inbound_header(&in->pub, "x-github-event"), "push", "first wins");
	cr_assert_str_eq(inbound_header(&in->pub, "X-GITHUB-EVENT"), "push");
	cr_assert_str_eq(inbound_header(&in->pub, "content-type"), "application/json");
	cr_assert_null(inbound_header(&in->pub, "X-GitHub-Even"), "no prefix match");
	cr_assert_null(inbound_header(&in->pub, "X-GitHub-Events"));
	cr_assert_null(inbound_header(&in->pub, ""));
	cr_assert_null(inbound_header(&in->pub, NULL));
	cr_assert_null(inbound_header(NULL, "X-GitHub-Event"));
	inbound_unref(in);
}

Test(inbound, references_keep_it_alive)
{
	struct inbound_parts p = {.hook = "h", .body = "b", .body_len = 1};
	struct inbound *in = inbound_new(&p);

	cr_assert_not_null(in);
	cr_assert_eq(in->refs, 1);
	cr_assert_eq(inbound_ref(in), in);
	cr_assert_eq(in->refs, 2);
	inbound_unref(in);
	cr_assert_eq(in->refs, 1);
	/* still readable: ASan would see a use after free otherwise */
	cr_assert_str_eq(in->pub.hook, "h");
	inbound_unref(in);
	cr_assert_null(inbound_ref(NULL));
	inbound_unref(NULL);
}

/* ---- wire form --------------------------------------------------------- */

static void encode(const hookd_inbound *in, struct jbuf *b)
{
	*b = (struct jbuf){0};
	cr_assert_eq(inbound_encode(in, false, b), 0);
}

Test(inbound, wire_round_trip_field_by_field)
{
	struct sources s;
	struct inbound_parts p;
	struct inbound *in, *back = NULL;
	struct jbuf b;
	const char *cur;

	sources_make(&s, &p);
	in = inbound_new(&p);
	sources_trash(&s);
	encode(&in->pub, &b);
	cur = b.data;
	cr_assert_eq(inbound_decode(&cur, b.data + b.len, &back), 0);
	cr_assert_eq(cur, b.data + b.len, "the whole frame is read");
	cr_assert_not_null(back);
	cr_assert_eq(back->refs, 1);
	cr_assert(!back->reply_sent);
	expect_sample(&back->pub);
	cr_assert_str_eq(inbound_header(&back->pub, "x-GITHUB-event"), "push");
	inbound_unref(back);
	inbound_unref(in);
	jbuf_free(&b);
	u_assert_no_leaks();
}

Test(inbound, wire_round_trip_of_an_empty_request)
{
	struct inbound_parts p = {0};
	struct inbound *in = inbound_new(&p), *back = NULL;
	struct jbuf b;
	const char *cur;

	encode(&in->pub, &b);
	cur = b.data;
	cr_assert_eq(inbound_decode(&cur, b.data + b.len, &back), 0);
	cr_assert_eq(cur, b.data + b.len);
	cr_assert_str_eq(back->pub.hook, "");
	cr_assert_eq(back->pub.nheaders, 0);
	cr_assert_eq(back->pub.body_len, 0);
	cr_assert_eq(back->pub.body[0], '\0');
	inbound_unref(back);
	inbound_unref(in);
	jbuf_free(&b);
}

Test(inbound, reply_sent_survives_the_wire)
{
	struct inbound_parts p = {.hook = "h"};
	struct inbound *in = inbound_new(&p), *back = NULL;
	struct jbuf b = {0};
	const char *cur;

	cr_assert(!in->reply_sent, "a new request's reply is not sent");
	/* an isolated after observer's CALL frame says the reply is sent */
	cr_assert_eq(inbound_encode(&in->pub, true, &b), 0);
	cur = b.data;
	cr_assert_eq(inbound_decode(&cur, b.data + b.len, &back), 0);
	cr_assert(back->reply_sent);
	cr_assert_str_eq(back->pub.hook, "h");
	inbound_unref(back);
	jbuf_free(&b);
	b = (struct jbuf){0};
	cr_assert_eq(inbound_encode(&in->pub, false, &b), 0);
	cur = b.data;
	cr_assert_eq(inbound_decode(&cur, b.data + b.len, &back), 0);
	cr_assert(!back->reply_sent);
	inbound_unref(back);
	inbound_unref(in);
	jbuf_free(&b);
}

Test(inbound, decode_reads_one_frame_and_leaves_the_rest)
{
	struct inbound_parts p = {.hook = "one", .body = "x", .body_len = 1};
	struct inbound *in = inbound_new(&p), *back = NULL;
	struct jbuf b;
	const char *cur;
	size_t one;

	encode(&in->pub, &b);
	one = b.len;
	cr_assert_eq(jbuf_append(&b, "TRAILER", 7), 0);
	cur = b.data;
	cr_assert_eq(inbound_decode(&cur, b.data + b.len, &back), 0);
	cr_assert_eq(cur, b.data + one, "stops at the end of its frame");
	cr_assert_str_eq(back->pub.hook, "one");
	inbound_unref(back);
	inbound_unref(in);
	jbuf_free(&b);
}

Test(inbound, decode_refuses_every_truncation)
{
	struct sources s;
	struct inbound_parts p;
	struct inbound *in;
	struct jbuf b;

	sources_make(&s, &p);
	in = inbound_new(&p);
	sources_trash(&s);
	encode(&in->pub, &b);
	for (size_t n = 0; n < b.len; n++) {
		/* a copy of exactly n bytes: ASan sees any read past it; any
		 * partial string or header decoded before the cut must be freed
		 * (LeakSanitizer at exit) */
		char *cut = malloc(n ? n : 1);
		const char *cur = cut;
		struct inbound *out = (struct inbound *)1;
		cr_assert_not_null(cut);
		memcpy(cut, b.data, n);
		cr_assert_eq(inbound_decode(&cur, cut + n, &out), -EINVAL, "cut at %zu of %zu", n,
			     b.len);
		cr_assert_null(out, "cut at %zu", n);
		free(cut);
	}
	inbound_unref(in);
	jbuf_free(&b);
	u_assert_no_leaks();
}

Test(inbound, decode_refuses_a_header_count_larger_than_the_data)
{
	struct inbound_parts p = {.hook = "h"};
	struct inbound *in = inbound_new(&p), *out = (struct inbound *)1;
	struct jbuf b;
	const char *cur;
	static const uint32_t counts[] = {1, 1000, 0x1fffffff, UINT32_MAX};

	encode(&in->pub, &b);
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		/* the header count is the second u32 */
		memcpy(b.data + 4, &counts[i], 4);
		cur = b.data;
		cr_assert_eq(inbound_decode(&cur, b.data + b.len, &out), -EINVAL, "count %u",
			     counts[i]);
		cr_assert_null(out);
	}
	inbound_unref(in);
	jbuf_free(&b);
	u_assert_no_leaks();
}

Test(inbound, decode_refuses_a_string_longer_than_the_data)
{
	struct inbound_parts p = {.hook = "hook", .method = "POST"};
	struct inbound *in = inbound_new(&p), *out = (struct inbound *)1;
	struct jbuf b;
	const char *cur;
	uint32_t big = UINT32_MAX;

	encode(&in->pub, &b);
	/* the hook's length, right after the 12-byte head */
	memcpy(b.data + 12, &big, 4);
	cur = b.data;
	cr_assert_eq(inbound_decode(&cur, b.data + b.len, &out), -EINVAL);
	cr_assert_null(out);
	inbound_unref(in);
	jbuf_free(&b);
	u_assert_no_leaks();
}
