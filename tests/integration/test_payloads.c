/*
 * Payloads through the real daemon: every file of a corpus must come back
 * with the same values through a sync hook, an async hook and mixed chains.
 * Two corpora (tests/support/corpus.h): hookd's own, tests/data/payloads,
 * always; the real webhook bodies of $HOOKD_PAYLOADS or ../shared/payloads
 * as an extra check when they are there (skipped, and said so, otherwise).
 *
 * "Same" is checked by our own comparator, not cJSON_Compare (which
 * compares numbers with a tolerance): numbers exactly equal as doubles,
 * strings byte-equal, object members in the same order (duplicates
 * included). The answer must be valid UTF-8, and an integral number must
 * come back as plain digits, never in exponent form. A minified body whose
 * numbers are all integers and whose strings hold no escape must come back
 * byte for byte (README: integers of more than 15 digits pass through digit
 * for digit).
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/corpus.h"
#include "../support/harness.h"

/* the largest real payload is 617 KiB, our longest string file 150 KB */
#define MAX_BODY "\"max_body\": 4194304"

static const char *const plugins[] = {"echo", "echo_async", NULL};

/* ---- value comparison ----------------------------------------------- */

/* Prepend a path segment to `why` (built from the leaf up on a mismatch). */
static void why_prepend(char *why, size_t len, const char *seg)
{
	size_t s = strlen(seg), w = strlen(why);

	if (s + w + 1 > len)
		return;
	memmove(why + s, why, w + 1);
	memcpy(why, seg, s);
}

/* Exact equality: same type, numbers equal as doubles (and same sign of
 * zero), strings byte-equal, arrays same length, objects same members in
 * the same order. On a difference, `why` says where and what. */
static bool json_same(const cJSON *a, const cJSON *b, char *why, size_t len)
{
	int ta = a->type & 0xff, tb = b->type & 0xff;
	const cJSON *x, *y;
	size_t i = 0;

	if (ta != tb) {
		snprintf(why, len, ": type %d became %d", ta, tb);
		return false;
	}
	switch (ta) {
	case cJSON_Number:
		if (a->valuedouble != b->valuedouble ||
		    signbit(a->valuedouble) != signbit(b->valuedouble)) {
			snprintf(why, len, ": number %.17g became %.17g", a->valuedouble,
				 b->valuedouble);
			return false;
		}
		return true;
	case cJSON_String:
		if (strcmp(a->valuestring, b->valuestring) != 0) {
			snprintf(why, len, ": string \"%.60s\" became \"%.60s\"", a->valuestring,
				 b->valuestring);
			return false;
		}
		return true;
	case cJSON_Array:
	case cJSON_Object:
		for (x = a->child, y = b->child; x && y; x = x->next, y = y->next, i++) {
			char seg[160];
			if (ta == cJSON_Object && strcmp(x->string, y->string) != 0) {
				snprintf(why, len, ": member #%zu \"%.50s\" became \"%.50s\"", i,
					 x->string, y->string);
				return false;
			}
			if (!json_same(x, y, why, len)) {
				if (ta == cJSON_Object)
					snprintf(seg, sizeof(seg), ".%.100s", x->string);
				else
					snprintf(seg, sizeof(seg), "[%zu]", i);
				why_prepend(why, len, seg);
				return false;
			}
		}
		if (x || y) {
			snprintf(why, len, ": %s after %zu elements", x ? "answer ends" : "answer has more",
				 i);
			return false;
		}
		return true;
	default: /* true, false, null */
		return true;
	}
}

/* ---- text checks ---------------------------------------------------- */

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above
 * U+10FFFF). Returns the offset of the first bad byte, or -1. */
static long utf8_bad_offset(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t l;
		unsigned long cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			l = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			l = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			l = 4;
			cp = c & 0x07;
		} else {
			return (long)i;
		}
		if (i + l > n)
			return (long)i;
		for (size_t k = 1; k < l; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return (long)i;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((l == 3 && cp < 0x800) || (l == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return (long)i;
		i += l;
	}
	return -1;
}

/* Calls fn for every number token (outside strings) of a JSON text. */
static void each_number(const char *s, size_t n,
			void (*fn)(const char *tok, size_t len, void *arg), void *arg)
{
	size_t i = 0;

	while (i < n) {
		char c = s[i];
		if (c == '"') {
			for (i++; i < n && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			i++;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			size_t st = i;
			while (i < n && strchr("+-0123456789.eE", s[i]))
				i++;
			fn(s + st, i - st, arg);
		} else {
			i++;
		}
	}
}

struct num_check {
	int bad;
	char first_bad[64];
	int integral; /* integral tokens seen */
};

/* An integral value below 1e21 must be printed as plain digits. */
static void check_integral_token(const char *tok, size_t len, void *arg)
{
	struct num_check *nc = arg;
	char buf[64];
	double v;

	snprintf(buf, sizeof(buf), "%.*s", (int)len, tok);
	v = strtod(buf, NULL);
	if (!isfinite(v) || v != floor(v) || fabs(v) >= 1e21)
		return;
	nc->integral++;
	if (strspn(buf + (buf[0] == '-'), "0123456789") != strlen(buf + (buf[0] == '-'))) {
		if (!nc->bad++)
			snprintf(nc->first_bad, sizeof(nc->first_bad), "%s", buf);
	}
}

/* Remove insignificant whitespace (outside strings); the bytes of every
 * token stay as they are. Malloc'ed, NUL-terminated. */
static char *minify(const char *s, size_t n, size_t *outlen)
{
	char *o = malloc(n + 1);
	size_t k = 0;
	bool in_str = false;

	cr_assert_not_null(o);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (in_str) {
			o[k++] = c;
			if (c == '\\' && i + 1 < n)
				o[k++] = s[++i];
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
			o[k++] = c;
		} else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			o[k++] = c;
		}
	}
	o[k] = '\0';
	*outlen = k;
	return o;
}

/* A token that the host must print back with the same bytes: an integer
 * literal. Up to 15 digits it is exact as a double and printed as plain
 * digits; longer, the host keeps its text (README: "passes through
 * unchanged, digit for digit"). A fraction or an exponent may be re-spelt. */
static void check_int_literal(const char *tok, size_t len, void *arg)
{
	bool *ok = arg;
	size_t d = tok[0] == '-';

	if (strspn(tok + d, "0123456789") != len - d)
		*ok = false;
}

/* True when a byte-exact round trip is a fair demand of this payload: no
 * escape in any string (an escape may be re-spelt), only integers. */
static bool byte_exact_candidate(const struct corpus_file *p)
{
	bool ok = memchr(p->text, '\\', p->len) == NULL;

	if (ok)
		each_number(p->text, p->len, check_int_literal, &ok);
	return ok;
}

/* ---- round trips ---------------------------------------------------- */

static cJSON *parse_exactly(const char *text, size_t len)
{
	const char *end = NULL;
	cJSON *v = cJSON_ParseWithLengthOpts(text, len, &end, 0);

	if (v) {
		while (end < text + len && strchr(" \t\r\n", *end))
			end++;
		if (end != text + len) {
			cJSON_Delete(v);
			v = NULL;
		}
	}
	return v;
}

/* Checks one answer against its payload; logs and returns false on the
 * first difference. */
static bool check_answer(const char *hook, const struct corpus_file *p, const struct hd_resp *r)
{
	char why[512] = "";
	struct num_check nc = {0};
	cJSON *want, *got;
	long bad;
	bool ok;

	if (r->status != 200) {
		cr_log_error("%s via %s: status %ld: %.300s", p->name, hook, r->status, r->body);
		return false;
	}
	if (strcmp(r->content_type, "application/json") != 0) {
		cr_log_error("%s via %s: Content-Type \"%s\"", p->name, hook, r->content_type);
		return false;
	}
	if ((bad = utf8_bad_offset(r->body, r->len)) >= 0) {
		cr_log_error("%s via %s: answer is not UTF-8 at byte %ld", p->name, hook, bad);
		return false;
	}
	want = parse_exactly(p->text, p->len);
	cr_assert_not_null(want, "%s: the corpus file itself does not parse", p->name);
	got = parse_exactly(r->body, r->len);
	if (!got) {
		cr_log_error("%s via %s: answer is not one JSON value: %.300s", p->name, hook,
			     r->body);
		cJSON_Delete(want);
		return false;
	}
	ok = json_same(want, got, why, sizeof(why));
	if (!ok)
		cr_log_error("%s via %s: differs at $%s", p->name, hook, why);
	cJSON_Delete(want);
	cJSON_Delete(got);
	each_number(r->body, r->len, check_integral_token, &nc);
	if (nc.bad) {
		cr_log_error("%s via %s: %d integral number(s) not in plain digits, first: %s",
			     p->name, hook, nc.bad, nc.first_bad);
		ok = false;
	}
	return ok;
}

/* Every payload through POST /hooks/<hook> of a running daemon, one after
 * the other. Returns the number of payloads that did not come back. */
static int roundtrip_corpus(struct hd *d, const struct corpus *c, const char *hook)
{
	char path[128];
	int failed = 0;

	snprintf(path, sizeof(path), "/hooks/%s", hook);
	for (size_t i = 0; i < c->n; i++) {
		struct hd_resp r;
		hd_request(d, "POST", path, c->f[i].text, c->f[i].len, &r);
		failed += !check_answer(hook, &c->f[i], &r);
		hd_resp_free(&r);
	}
	return failed;
}

/* ---- which corpora run ---------------------------------------------- */

/* One line in the test output says which corpora the round trips below
 * run on; a present corpus that is empty or unreadable fails here too. */
Test(payloads, corpora_in_use, .timeout = 30)
{
	cr_assert_gt(corpus_log_which("integration"), 0);
}

/* ---- every file of a corpus, both corpora --------------------------- */

static void round_trips_through_sync_echo(const struct corpus *c)
{
	struct hd d;
	int failed;

	hd_start(&d, MAX_BODY, plugins);
	failed = roundtrip_corpus(&d, c, "echo");
	cr_assert_eq(failed, 0, "%d of %zu payloads of %s changed through /hooks/echo (see log)",
		     failed, c->n, c->dir);
	cr_assert_eq(hd_stop(&d), 0);
}

static void round_trips_through_async_echo(const struct corpus *c)
{
	struct hd d;
	int failed;

	hd_start(&d, MAX_BODY, plugins);
	failed = roundtrip_corpus(&d, c, "echo_async");
	cr_assert_eq(failed, 0,
		     "%d of %zu payloads of %s changed through /hooks/echo_async (see log)", failed,
		     c->n, c->dir);
	cr_assert_eq(hd_stop(&d), 0);
}

static void round_trips_through_mixed_chains(const struct corpus *c)
{
	struct hd d;
	int failed;

	/* each step's output is the next one's input, across both executors
	 * and starting on either */
	hd_start(&d, MAX_BODY ", \"hooks\": {"
		 "\"rt\": {\"chain\": [\"echo\", \"echo_async\", \"echo\"]},"
		 "\"rt_async_first\": {\"chain\": [\"echo_async\", \"echo\", \"echo_async\"]}}",
		 plugins);
	failed = roundtrip_corpus(&d, c, "rt");
	failed += roundtrip_corpus(&d, c, "rt_async_first");
	cr_assert_eq(failed, 0, "%d round trips of %zu payloads of %s changed through chains "
		     "(see log)", failed, c->n, c->dir);
	cr_assert_eq(hd_stop(&d), 0);
}

/* The whole corpus at once through a chain: each answer is its own
 * payload (no call sees another call's tree). */
static void concurrent_calls_get_their_own_payload(const struct corpus *c)
{
	struct hd d;
	const char **paths, **bodies;
	size_t *lens;
	struct hd_resp *rs;
	int failed = 0;

	hd_start(&d, MAX_BODY ", \"workers\": 2, \"hooks\": {"
		 "\"rt\": {\"chain\": [\"echo\", \"echo_async\", \"echo\"]}}",
		 plugins);
	paths = calloc(c->n, sizeof(*paths));
	bodies = calloc(c->n, sizeof(*bodies));
	lens = calloc(c->n, sizeof(*lens));
	rs = calloc(c->n, sizeof(*rs));
	cr_assert(paths && bodies && lens && rs);
	for (size_t i = 0; i < c->n; i++) {
		static const char *const hooks[] = {"/hooks/rt", "/hooks/echo", "/hooks/echo_async"};
		paths[i] = hooks[i % 3];
		bodies[i] = c->f[i].text;
		lens[i] = c->f[i].len;
	}
	hd_post_many(&d, paths, bodies, lens, c->n, rs, NULL);
	for (size_t i = 0; i < c->n; i++) {
		failed += !check_answer(paths[i], &c->f[i], &rs[i]);
		hd_resp_free(&rs[i]);
	}
	cr_assert_eq(failed, 0, "%d of %zu concurrent round trips of %s failed (see log)", failed,
		     c->n, c->dir);
	cr_assert_eq(hd_stop(&d), 0);
	free(paths);
	free(bodies);
	free(lens);
	free(rs);
}

/* Real deliveries are compact. Minified, a payload with no float and no
 * escape must come back as the very same bytes (plus the newline that ends
 * every answer). In our own corpus, the files named here must qualify. */
static void minified_payloads_come_back_byte_for_byte(const struct corpus *c)
{
	static const char *const own_named[] = {
		"numbers-big-integers", "top-number-big", "webhook-alertmanager-firing",
		"webhook-k8s-admission-review", "webhook-stripe-invoice-paid", NULL};
	static const char *const hooks[] = {"/hooks/echo", "/hooks/echo_async", "/hooks/rt"};
	struct hd d;
	int tried = 0, failed = 0;

	if (strcmp(c->dir, CORPUS_OWN_DIR) == 0)
		for (size_t i = 0; own_named[i]; i++)
			cr_assert(byte_exact_candidate(corpus_get(c, own_named[i])),
				  "%s was expected to have no float and no escape", own_named[i]);
	hd_start(&d, MAX_BODY ", \"hooks\": {"
		 "\"rt\": {\"chain\": [\"echo_async\", \"echo\", \"echo_async\"]}}",
		 plugins);
	for (size_t i = 0; i < c->n; i++) {
		const struct corpus_file *p = &c->f[i];
		size_t ml;
		char *min;
		if (!byte_exact_candidate(p))
			continue;
		min = minify(p->text, p->len, &ml);
		tried++;
		for (size_t h = 0; h < 3; h++) {
			struct hd_resp r;
			hd_request(&d, "POST", hooks[h], min, ml, &r);
			if (r.status != 200 || r.len != ml + 1 || memcmp(r.body, min, ml) != 0 ||
			    r.body[ml] != '\n') {
				size_t k = 0;
				while (k < ml && k < r.len && r.body[k] == min[k])
					k++;
				cr_log_error("%s via %s: status %ld, %zu bytes for %zu; first "
					     "difference at byte %zu: sent \"%.40s\", got \"%.40s\"",
					     p->name, hooks[h], r.status, r.len, ml + 1, k, min + k,
					     k < r.len ? r.body + k : "");
				failed++;
			}
			hd_resp_free(&r);
		}
		free(min);
	}
	cr_log_info("%s: %d of %zu payloads qualify for a byte-exact round trip", c->dir, tried,
		    c->n);
	cr_assert_eq(failed, 0, "%d byte-exact round trips failed (see log)", failed);
	cr_assert_eq(hd_stop(&d), 0);
}

/* Two tests per check: on our own corpus (always), and on the real one
 * (skipped when it is absent). */
#define ON_BOTH_CORPORA(check, secs)                                              \
	Test(payloads, own_corpus_##check, .timeout = secs)                       \
	{                                                                         \
		struct corpus c;                                                  \
		corpus_load(&c, CORPUS_OWN_DIR);                                  \
		check(&c);                                                        \
		corpus_free(&c);                                                  \
	}                                                                         \
	Test(payloads, real_corpus_##check, .timeout = secs)                      \
	{                                                                         \
		struct corpus c;                                                  \
		corpus_load_real_or_skip(&c);                                     \
		check(&c);                                                        \
		corpus_free(&c);                                                  \
	}

ON_BOTH_CORPORA(round_trips_through_sync_echo, 60)
ON_BOTH_CORPORA(round_trips_through_async_echo, 60)
ON_BOTH_CORPORA(round_trips_through_mixed_chains, 60)
ON_BOTH_CORPORA(concurrent_calls_get_their_own_payload, 60)
ON_BOTH_CORPORA(minified_payloads_come_back_byte_for_byte, 60)

/* ---- what our own corpus pins down ---------------------------------- */

/* The spelling of numbers, checked as text: integral values come back as
 * the digits a JavaScript or Python consumer expects, floats as a text
 * that reads back the same double. */
Test(payloads, numbers_come_back_in_plain_shortest_form, .timeout = 60)
{
	static const struct {
		const char *file, *needle;
	} want[] = {
		/* integral values written with an exponent: digits */
		{"numbers-exponents", "\"pushed_at\":1417566161,"},
		{"numbers-exponents", "\"hundred\":[100,100,100,100],"},
		{"numbers-exponents", "\"half_milli\":0.0005,"},
		{"numbers-exponents", "\"zero_exp\":0,\"two_and_a_half\":2.5}"},
		/* beyond 2^53: more than 15 digits pass through digit for digit,
		 * even where the text is no double (the nearest of 2^64-1 is 2^64) */
		{"numbers-big-integers", "{\"u64_max\":18446744073709551615,"},
		{"numbers-big-integers", "\"i64_min\":-9223372036854775808,"},
		{"numbers-big-integers", "\"rounded_id\":788032119674292900,"},
		{"numbers-big-integers", "\"exact_id\":820982911946154508,"},
		{"numbers-big-integers", "\"twitter_id\":505874924095815681,"},
		{"numbers-big-integers", "\"two_pow_53_plus_1\":9007199254740993,"},
		{"numbers-big-integers", "\"twenty_digits\":12345678901234567890,"},
		{"numbers-big-integers", "\"ids\":[18446744073709551615,788032119674292900,"
					 "141249953214522980,706405506930370000]"},
		{"webhook-shopify-order-create", "{\"id\":820982911946154508,"},
		{"webhook-shopify-order-create", "\"product_id\":788032119674292900,"},
		/* 17 and 16 significant digits: cJSON's own printer loses them */
		{"numbers-floats", "\"longitude\":139.70372892916203,"},
		{"numbers-floats", "\"latitude\":35.65910807942215,"},
		{"numbers-floats", "\"point_one_plus_point_two\":0.30000000000000004,"},
		{"numbers-floats", "\"price\":9.95,\"duration\":0.9678,"},
		{"numbers-floats", "\"one_point_zero\":1,\"trailing_zero\":100.5,"},
		{"webhook-shopify-order-create", "\"rate\":0.19,"},
		/* the sign of zero survives */
		{"numbers-negative-zero", "\"zeros\":[-0,0,-0,0]"},
	};
	static const char *const hooks[] = {"/hooks/echo", "/hooks/echo_async"};
	struct corpus c;
	struct hd d;

	corpus_load(&c, CORPUS_OWN_DIR);
	hd_start(&d, MAX_BODY, plugins);
	for (size_t h = 0; h < 2; h++) {
		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			const struct corpus_file *p = corpus_get(&c, want[i].file);
			struct hd_resp r;
			hd_request(&d, "POST", hooks[h], p->text, p->len, &r);
			cr_assert_eq(r.status, 200, "%s via %s: %ld", p->name, hooks[h], r.status);
			cr_assert_not_null(strstr(r.body, want[i].needle),
					   "%s via %s: no %s in the answer", p->name, hooks[h],
					   want[i].needle);
			struct num_check nc = {0};
			each_number(r.body, r.len, check_integral_token, &nc);
			cr_assert_eq(nc.bad, 0, "%s via %s: integral number not in digits: %s",
				     p->name, hooks[h], nc.first_bad);
			cr_assert_gt(nc.integral, 0);
			hd_resp_free(&r);
		}
	}
	cr_assert_eq(hd_stop(&d), 0);
	corpus_free(&c);
}

/* Every JSON type is a body, not only an object: each comes back as
 * exactly these bytes. */
Test(payloads, top_level_values_of_every_type_come_back_exactly, .timeout = 60)
{
	static const struct {
		const char *file, *answer;
	} want[] = {
		{"top-empty-object", "{}\n"},
		{"top-empty-array", "[]\n"},
		{"top-array", "[1,\"two\",3.5,true,false,null,{\"k\":[]},[-0],18446744073709551615]\n"},
		{"top-string", "\"a string at top level, with escapes \\n \xc3\xa9 \xf0\x9f\x98\x80\"\n"},
		{"top-number", "42\n"},
		{"top-number-big", "18446744073709551615\n"},
		{"top-number-float", "-0.30000000000000004\n"},
		{"top-true", "true\n"},
		{"top-false", "false\n"},
		{"top-null", "null\n"},
	};
	static const char *const hooks[] = {"/hooks/echo", "/hooks/echo_async", "/hooks/rt"};
	struct corpus c;
	struct hd d;

	corpus_load(&c, CORPUS_OWN_DIR);
	hd_start(&d, "\"hooks\": {\"rt\": {\"chain\": [\"echo_async\", \"echo\"]}}", plugins);
	for (size_t h = 0; h < 3; h++) {
		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			const struct corpus_file *p = corpus_get(&c, want[i].file);
			struct hd_resp r;
			hd_request(&d, "POST", hooks[h], p->text, p->len, &r);
			cr_assert_eq(r.status, 200, "%s via %s: %ld %s", p->name, hooks[h], r.status,
				     r.body);
			cr_assert_str_eq(r.body, want[i].answer, "%s via %s", p->name, hooks[h]);
			hd_resp_free(&r);
		}
	}
	cr_assert_eq(hd_stop(&d), 0);
	corpus_free(&c);
}

/* The deliberately broken bodies (tests/data/invalid): each answered 400
 * with a JSON error that says why, never passed on changed (1E400 is not
 * infinity, \u0000 does not cut a string); the daemon keeps serving. */
Test(payloads, invalid_bodies_are_refused_with_a_json_400, .timeout = 60)
{
	static const struct {
		const char *file, *why;
	} named[] = {
		{"number-1E400", "number out of range"},
		{"number-neg-1e999", "number out of range"},
		{"string-nul-escape", "\\u0000"},
		{"string-lone-surrogate", "surrogate"},
		{"string-invalid-utf8", "invalid UTF-8"},
		{"nesting-1001", "nesting deeper than 1000"},
		{"empty", "empty body"},
	};
	static const char *const hooks[] = {"/hooks/echo", "/hooks/echo_async"};
	struct corpus c;
	struct hd d;
	struct hd_resp r;

	corpus_load(&c, CORPUS_INVALID_DIR);
	hd_start(&d, MAX_BODY, plugins);
	for (size_t h = 0; h < 2; h++) {
		for (size_t i = 0; i < c.n; i++) {
			const struct corpus_file *p = &c.f[i];
			cJSON *e;
			hd_request(&d, "POST", hooks[h], p->text, p->len, &r);
			cr_assert_eq(r.status, 400, "%s via %s: %ld %s", p->name, hooks[h], r.status,
				     r.body);
			cr_assert_str_eq(r.content_type, "application/json", "%s", p->name);
			e = cJSON_Parse(r.body);
			cr_assert(cJSON_IsString(cJSON_GetObjectItem(e, "error")), "%s: %s", p->name,
				  r.body);
			for (size_t k = 0; k < sizeof(named) / sizeof(named[0]); k++)
				if (strcmp(p->name, named[k].file) == 0)
					cr_assert_not_null(strstr(cJSON_GetObjectItem(e, "error")
								      ->valuestring,
								  named[k].why),
							   "%s: \"%s\" lacks \"%s\"", p->name, r.body,
							   named[k].why);
			cJSON_Delete(e);
			hd_resp_free(&r);
		}
	}
	for (size_t k = 0; k < sizeof(named) / sizeof(named[0]); k++)
		corpus_get(&c, named[k].file);
	hd_request(&d, "POST", "/hooks/echo", "[1]", 3, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "[1]\n");
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
	corpus_free(&c);
}

/* What the corpora have little of, in one body: every escape, surrogate pairs, control
 * characters, and the corners of the double range. Same values back, as
 * valid UTF-8, integral values in digits, and the characters written
 * raw (an escaped emoji comes back as its four UTF-8 bytes). */
Test(payloads, escapes_and_number_corners_keep_their_values, .timeout = 30)
{
	static const char body[] =
		"{\"esc\":\"\\u0026\\u0009\\/\\\"\\\\\\b\\f\\n\\r\\t\","
		"\"pair\":\"\\ud83d\\ude00\",\"raw\":\"\xf0\x9f\x98\x80\",\"e\":\"\\u00e9\","
		"\"cjk\":\"\\u6771\\u4eac \xe6\x9d\xb1\xe4\xba\xac\",\"ctl\":\"\\u001f\\u007f\","
		"\"line_sep\":\"\\u2028\\u2029\",\"\\u006bey\":1,"
		"\"n\":[0,-0,0.1,1e-7,100,1E2,1e+2,-1.5,1.5e300,-1.7976931348623157e308,5e-324,"
		"2.2250738585072014e-308,9007199254740992,9007199254740993,-9007199254740993,"
		"123456789012345678901234567890,1e21,-1e-21,0.30000000000000004,1.0,-0.0]}";
	static const struct corpus_file p = {(char *)"synthetic", (char *)body, sizeof(body) - 1};
	static const char *const hooks[] = {"/hooks/echo", "/hooks/echo_async", "/hooks/rt"};
	struct hd d;

	hd_start(&d, "\"hooks\": {\"rt\": {\"chain\": [\"echo\", \"echo_async\"]}}", plugins);
	for (size_t h = 0; h < 3; h++) {
		struct hd_resp r;
		hd_request(&d, "POST", hooks[h], body, sizeof(body) - 1, &r);
		cr_assert(check_answer(hooks[h], &p, &r), "see the log: %s", r.body);
		cr_assert_not_null(strstr(r.body, "\"pair\":\"\xf0\x9f\x98\x80\""), "%s", r.body);
		cr_assert_not_null(strstr(r.body, "\"key\":1"), "%s", r.body);
		/* integral values in plain digits, long integers digit for digit */
		cr_assert_not_null(strstr(r.body, ",100,100,100,"), "%s", r.body);
		cr_assert_not_null(strstr(r.body, ",9007199254740993,-9007199254740993,"
					      "123456789012345678901234567890,"), "%s", r.body);
		hd_resp_free(&r);
	}
	cr_assert_eq(hd_stop(&d), 0);
}
