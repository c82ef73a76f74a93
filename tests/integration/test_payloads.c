/*
 * Real webhook bodies (../shared/payloads, or $HOOKD_PAYLOADS) through the
 * real daemon: every file must come back with the same values through a
 * sync hook, an async hook and mixed chains.
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
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"

#define CORPUS_SIZE 74 /* files in ../shared/payloads (README.md) */
#define MAX_BODY "\"max_body\": 4194304" /* the twitter file is 617 KiB */

static const char *const plugins[] = {"echo", "echo_async", NULL};

struct payload {
	char *name;
	char *text;
	size_t len;
};

struct corpus {
	struct payload *p;
	size_t n;
};

static const char *payload_dir(void)
{
	const char *e = getenv("HOOKD_PAYLOADS");

	if (e && *e)
		return e;
	/* the corpus sits beside the project (../shared); a clone elsewhere
	 * finds the workplace's copy */
	return access("../shared/payloads", R_OK) == 0 || access("/work/shared/payloads", R_OK) != 0
		       ? "../shared/payloads"
		       : "/work/shared/payloads";
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct payload *)a)->name, ((const struct payload *)b)->name);
}

/* Every *.json of the corpus, sorted by name. A missing or short corpus
 * fails the test: a round trip of nothing proves nothing. */
static void corpus_load(struct corpus *c)
{
	const char *dir = payload_dir();
	DIR *dp = opendir(dir);
	struct dirent *de;
	size_t cap = 0;

	memset(c, 0, sizeof(*c));
	cr_assert_not_null(dp, "payload corpus %s: %s (set HOOKD_PAYLOADS to its directory)",
			   dir, strerror(errno));
	while ((de = readdir(dp))) {
		size_t l = strlen(de->d_name);
		char path[1024];
		if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		if (c->n == cap) {
			cap = cap ? cap * 2 : 128;
			c->p = realloc(c->p, cap * sizeof(*c->p));
			cr_assert_not_null(c->p);
		}
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		c->p[c->n].name = strndup(de->d_name, l - 5);
		c->p[c->n].text = hd_read_file(path, &c->p[c->n].len);
		cr_assert_not_null(c->p[c->n].text, "cannot read %s", path);
		c->n++;
	}
	closedir(dp);
	if (getenv("HOOKD_PAYLOADS"))
		cr_assert_gt(c->n, 0, "no *.json in %s", dir);
	else
		cr_assert_eq(c->n, CORPUS_SIZE, "%s holds %zu payloads, expected %d", dir, c->n,
			     CORPUS_SIZE);
	qsort(c->p, c->n, sizeof(*c->p), by_name);
}

static void corpus_free(struct corpus *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->p[i].name);
		free(c->p[i].text);
	}
	free(c->p);
}

static const struct payload *corpus_get(const struct corpus *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->p[i].name, name) == 0)
			return &c->p[i];
	cr_assert_fail("payload %s.json is not in %s", name, payload_dir());
	return NULL;
}

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
static bool byte_exact_candidate(const struct payload *p)
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
static bool check_answer(const char *hook, const struct payload *p, const struct hd_resp *r)
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
		hd_request(d, "POST", path, c->p[i].text, c->p[i].len, &r);
		failed += !check_answer(hook, &c->p[i], &r);
		hd_resp_free(&r);
	}
	return failed;
}

Test(payloads, corpus_round_trips_through_sync_echo, .timeout = 60)
{
	struct corpus c;
	struct hd d;
	int failed;

	corpus_load(&c);
	hd_start(&d, MAX_BODY, plugins);
	failed = roundtrip_corpus(&d, &c, "echo");
	cr_assert_eq(failed, 0, "%d of %zu payloads changed through /hooks/echo (see log)",
		     failed, c.n);
	cr_assert_eq(hd_stop(&d), 0);
	corpus_free(&c);
}

Test(payloads, corpus_round_trips_through_async_echo, .timeout = 60)
{
	struct corpus c;
	struct hd d;
	int failed;

	corpus_load(&c);
	hd_start(&d, MAX_BODY, plugins);
	failed = roundtrip_corpus(&d, &c, "echo_async");
	cr_assert_eq(failed, 0, "%d of %zu payloads changed through /hooks/echo_async (see log)",
		     failed, c.n);
	cr_assert_eq(hd_stop(&d), 0);
	corpus_free(&c);
}

Test(payloads, corpus_round_trips_through_mixed_chains, .timeout = 60)
{
	struct corpus c;
	struct hd d;
	int failed;

	corpus_load(&c);
	/* each step's output is the next one's input, across both executors
	 * and starting on either */
	hd_start(&d, MAX_BODY ", \"hooks\": {"
		 "\"rt\": {\"chain\": [\"echo\", \"echo_async\", \"echo\"]},"
		 "\"rt_async_first\": {\"chain\": [\"echo_async\", \"echo\", \"echo_async\"]}}",
		 plugins);
	failed = roundtrip_corpus(&d, &c, "rt");
	failed += roundtrip_corpus(&d, &c, "rt_async_first");
	cr_assert_eq(failed, 0, "%d round trips of %zu payloads changed through chains (see log)",
		     failed, c.n);
	cr_assert_eq(hd_stop(&d), 0);
	corpus_free(&c);
}

/* The whole corpus at once through a chain: each answer is its own
 * payload (no call sees another call's tree). */
Test(payloads, concurrent_calls_get_their_own_payload, .timeout = 60)
{
	struct corpus c;
	struct hd d;
	const char **paths, **bodies;
	size_t *lens;
	struct hd_resp *rs;
	int failed = 0;

	corpus_load(&c);
	hd_start(&d, MAX_BODY ", \"workers\": 2, \"hooks\": {"
		 "\"rt\": {\"chain\": [\"echo\", \"echo_async\", \"echo\"]}}",
		 plugins);
	paths = calloc(c.n, sizeof(*paths));
	bodies = calloc(c.n, sizeof(*bodies));
	lens = calloc(c.n, sizeof(*lens));
	rs = calloc(c.n, sizeof(*rs));
	cr_assert(paths && bodies && lens && rs);
	for (size_t i = 0; i < c.n; i++) {
		static const char *const hooks[] = {"/hooks/rt", "/hooks/echo", "/hooks/echo_async"};
		paths[i] = hooks[i % 3];
		bodies[i] = c.p[i].text;
		lens[i] = c.p[i].len;
	}
	hd_post_many(&d, paths, bodies, lens, c.n, rs, NULL);
	for (size_t i = 0; i < c.n; i++) {
		failed += !check_answer(paths[i], &c.p[i], &rs[i]);
		hd_resp_free(&rs[i]);
	}
	cr_assert_eq(failed, 0, "%d of %zu concurrent round trips failed (see log)", failed, c.n);
	cr_assert_eq(hd_stop(&d), 0);
	free(paths);
	free(bodies);
	free(lens);
	free(rs);
	corpus_free(&c);
}

/* The spelling of numbers, checked as text: integral values come back as
 * the digits a JavaScript or Python consumer expects, floats as the
 * shortest text that reads back the same double. */
Test(payloads, numbers_come_back_in_plain_shortest_form, .timeout = 60)
{
	static const struct {
		const char *file, *needle;
	} want[] = {
		/* exponent form in the file, integral values: digits */
		{"dockerhub-push-1", "\"pushed_at\":1417566161,"},
		{"dockerhub-push-1", "\"date_created\":1417494799,"},
		/* beyond 2^53: more than 15 digits pass through digit for digit */
		{"shopify-orders_create-1", "{\"id\":820982911946154500,"},
		{"shopify-orders_create-1", "\"admin_graphql_api_id\":\"gid://shopify/Order/"
					    "820982911946154508\""},
		{"shopify-refunds_create-1", "\"line_item_id\":141249953214522980,"},
		{"shopify-customers_create-1", "\"id\":706405506930370000"},
		/* 505874924095815681 is no double (the nearest is ...680): the
		 * text survives all the same */
		{"twitter-search_api_response-1", "\"id\":505874924095815681,"},
		{"twitter-search_api_response-1", "\"in_reply_to_status_id\":505874728897085440,"},
		/* 17 and 16 significant digits: cJSON's own printer loses them */
		{"line-location-1", "\"latitude\":35.65910807942215,"},
		{"line-location-1", "\"longitude\":139.70372892916203}"},
		{"gitlab-build-1", "\"build_queued_duration\":0.9678,"},
		{"commercelayer-gift_cards_create-1", "\"balance_float\":9.95,"},
	};
	static const char *const hooks[] = {"/hooks/echo", "/hooks/echo_async"};
	struct corpus c;
	struct hd d;

	corpus_load(&c);
	hd_start(&d, MAX_BODY, plugins);
	for (size_t h = 0; h < 2; h++) {
		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			const struct payload *p = corpus_get(&c, want[i].file);
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
		/* the whole body, byte for byte: one integer above 2^53 */
		const struct payload *p = corpus_get(&c, "shopify-products_delete-1");
		struct hd_resp r;
		hd_request(&d, "POST", hooks[h], p->text, p->len, &r);
		cr_assert_eq(r.status, 200);
		cr_assert_str_eq(r.body, "{\"id\":788032119674292900}\n");
		hd_resp_free(&r);
	}
	cr_assert_eq(hd_stop(&d), 0);
	corpus_free(&c);
}

/* Real deliveries are compact. Minified, a payload with no float and no
 * escape must come back as the very same bytes (plus the newline that ends
 * every answer). */
Test(payloads, minified_payloads_come_back_byte_for_byte, .timeout = 60)
{
	static const char *const named[] = {"github-ping-1", "gitlab-system_user_created-1",
					    "woocommerce-coupon_deleted-1", NULL};
	static const char *const hooks[] = {"/hooks/echo", "/hooks/echo_async", "/hooks/rt"};
	struct corpus c;
	struct hd d;
	int tried = 0, failed = 0;

	corpus_load(&c);
	for (size_t i = 0; named[i]; i++)
		cr_assert(byte_exact_candidate(corpus_get(&c, named[i])),
			  "%s was expected to have no float and no escape", named[i]);
	hd_start(&d, MAX_BODY ", \"hooks\": {"
		 "\"rt\": {\"chain\": [\"echo_async\", \"echo\", \"echo_async\"]}}",
		 plugins);
	for (size_t i = 0; i < c.n; i++) {
		const struct payload *p = &c.p[i];
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
	cr_log_info("%d of %zu payloads qualify for a byte-exact round trip", tried, c.n);
	cr_assert_geq(tried, 3);
	cr_assert_eq(failed, 0, "%d byte-exact round trips failed (see log)", failed);
	cr_assert_eq(hd_stop(&d), 0);
	corpus_free(&c);
}

/* What the corpus has little of: every escape, surrogate pairs, control
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
	static const struct payload p = {"synthetic", (char *)body, sizeof(body) - 1};
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
