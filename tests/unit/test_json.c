/*
 * json: numbers print so that they parse back to the same double (and
 * integral ones as plain digits), UTF-8 is validated strictly, strings are
 * escaped into valid JSON, parse errors say where, and every payload of our
 * own corpus (tests/data/payloads), and of the real one when it is there,
 * survives parse -> print -> parse value for value.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "../../host/json.h"
#include "../support/corpus.h"
#include "unit.h"

/* ---- numbers ------------------------------------------------------------ */

static uint64_t bits_of(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static double double_of(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

/* Format d, check the returned length, and that the text parses back to
 * exactly d (bit for bit, so -0.0 stays -0.0). Returns the text in buf. */
static void round_trip(double d, char *buf)
{
	size_t n;
	char *end;
	double back;

	memset(buf, 0x55, 32);
	n = json_format_number(d, buf);
	cr_assert_lt(n, 32);
	cr_assert_eq(strlen(buf), n, "length returned for %.17g", d);
	back = strtod(buf, &end);
	cr_assert_eq(*end, '\0', "\"%s\" is not all number", buf);
	cr_assert_eq(bits_of(back), bits_of(d), "%.17g printed as \"%s\" parses back to %.17g", d, buf,
		     back);
}

static void expect_number(double d, const char *want)
{
	char buf[32];

	round_trip(d, buf);
	cr_assert_str_eq(buf, want, "%.17g", d);
}

/* floor() without libm (the unit binary does not link it) */
static bool is_integral(double d)
{
	if (!isfinite(d))
		return false;
	if (fabs(d) >= 4503599627370496.0) /* 2^52: no fraction bits left */
		return true;
	return d == (double)(int64_t)d;
}

static bool all_digits(const char *s)
{
	if (*s == '-')
		s++;
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

Test(json_number, known_values_print_exactly_and_shortest)
{
	expect_number(0.0, "0");
	expect_number(-0.0, "-0");
	expect_number(1.0, "1");
	expect_number(-1.0, "-1");
	expect_number(0.1, "0.1");
	expect_number(0.5, "0.5");
	expect_number(-2.5, "-2.5");
	expect_number(1.1, "1.1");
	expect_number(139.70372892916203, "139.70372892916203");
	expect_number(1.417566161e+09, "1417566161");
	expect_number(788032119674292900.0, "788032119674292900");
	expect_number(-788032119674292900.0, "-788032119674292900");
	expect_number(820982911946154508.0, "820982911946154500");
	expect_number(9007199254740992.0, "9007199254740992"); /* 2^53 */
	expect_number(9007199254740993.0, "9007199254740992"); /* rounds to 2^53 */
	expect_number(9007199254740994.0, "9007199254740994");
	expect_number(1e20, "100000000000000000000");
	expect_number(-1e20, "-100000000000000000000");
	expect_number(123456789012345678901.0, "123456789012345680000");
	expect_number(4294967296.0, "4294967296");
	expect_number(-9223372036854775808.0, "-9223372036854776000"); /* -2^63 */
	expect_number(0.30000000000000004, "0.30000000000000004");
}

Test(json_number, extremes_round_trip)
{
	static const double vals[] = {
		1e-7, 1e-300, DBL_MAX, -DBL_MAX, DBL_MIN, -DBL_MIN, DBL_EPSILON,
		4.9406564584124654e-324,  /* smallest denormal */
		-4.9406564584124654e-324,
		2.2250738585072009e-308,  /* largest denormal */
		1.0000000000000002,       /* 1 + 1 ulp */
		0.9999999999999999,
		1e21, 1e22, 1e308, 1.7976931348623155e308,
		123456.789e-20, 3.141592653589793, 2.718281828459045,
		5e-324 * 3, 1e23, 8.98846567431158e307,
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		round_trip(vals[i], buf);
	/* 1e21 and above may use an exponent, but must still be exact */
	round_trip(1e21, buf);
	round_trip(DBL_MAX, buf);
	cr_assert_not_null(strchr(buf, 'e'), "DBL_MAX as plain digits would be 309 characters");
}

Test(json_number, not_finite_prints_null)
{
	char buf[32];

	cr_assert_eq(json_format_number(NAN, buf), 4);
	cr_assert_str_eq(buf, "null");
	cr_assert_eq(json_format_number(-NAN, buf), 4);
	cr_assert_str_eq(buf, "null");
	cr_assert_eq(json_format_number(INFINITY, buf), 4);
	cr_assert_str_eq(buf, "null");
	cr_assert_eq(json_format_number(-INFINITY, buf), 4);
	cr_assert_str_eq(buf, "null");
}

Test(json_number, integral_values_below_1e21_are_plain_digits)
{
	char buf[32], want[64];

	/* every power of two and of ten in range, both signs, and neighbours */
	for (int e = 0; e < 70; e++) {
		double p = ldexp(1.0, e);
		double vals[] = {p, -p, p + ldexp(1.0, e > 52 ? e - 52 : 0), p * 3};
		for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
			if (fabs(vals[i]) >= 1e21)
				continue;
			round_trip(vals[i], buf);
			cr_assert(all_digits(buf), "%.17g printed as \"%s\"", vals[i], buf);
			if (fabs(vals[i]) <= 9007199254740992.0) {
				/* exactly representable integers print exactly */
				snprintf(want, sizeof(want), "%.0f", vals[i]);
				cr_assert_str_eq(buf, want);
			}
		}
	}
	for (double p = 1; p < 1e21; p *= 10) {
		round_trip(p, buf);
		cr_assert(all_digits(buf), "%.17g printed as \"%s\"", p, buf);
		round_trip(-p, buf);
		cr_assert(all_digits(buf), "%.17g printed as \"%s\"", -p, buf);
	}
}

/* xorshift64*: a fixed seed, so every run checks the same values */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

Test(json_number, random_bit_patterns_round_trip_exactly)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	char buf[32];
	size_t finite = 0;

	for (int i = 0; i < 100000; i++) {
		double d = double_of(rng_next(&seed));
		if (!isfinite(d)) {
			json_format_number(d, buf);
			cr_assert_str_eq(buf, "null");
			continue;
		}
		finite++;
		round_trip(d, buf);
		if (is_integral(d) && fabs(d) < 1e21)
			cr_assert(all_digits(buf), "%.17g printed as \"%s\"", d, buf);
	}
	cr_assert_gt(finite, 99000); /* the generator did produce doubles */
}

Test(json_number, random_decimals_and_big_integers_round_trip_exactly)
{
	uint64_t seed = 42;
	char buf[32];

	for (int i = 0; i < 50000; i++) {
		uint64_t r = rng_next(&seed);
		/* a "human" decimal as a parser makes it: up to 17 significant
		 * digits at any scale */
		char lit[64];
		double d;
		snprintf(lit, sizeof(lit), "%llue%d", (unsigned long long)(r % 100000000000000000ull),
			 (int)(r >> 55) - 300);
		d = strtod(lit, NULL);
		round_trip(d, buf);
		/* an integer between 2^53 and 1e21: digits, never an exponent */
		d = ldexp((double)(r >> 11), (int)(rng_next(&seed) % 17)) + 9007199254740992.0;
		cr_assert(is_integral(d));
		if (d < 1e21) {
			round_trip(d, buf);
			cr_assert(all_digits(buf), "%.17g printed as \"%s\"", d, buf);
		}
	}
}

/* ---- UTF-8 -------------------------------------------------------------- */

static bool utf8(const char *s, size_t n, size_t *bad)
{
	/* an exact-size copy: a read past n is an ASan report */
	char *copy = calloc(1, n ? n : 1);
	bool ok;

	memcpy(copy, s, n);
	ok = json_utf8_valid(copy, n, bad);
	free(copy);
	return ok;
}

#define VALID(lit) cr_assert(utf8(lit, sizeof(lit) - 1, NULL), "rejected: %s", #lit)
#define INVALID_AT(lit, off)                                                                  \
	do {                                                                                  \
		size_t bad_ = (size_t)-1;                                                     \
		cr_assert_not(utf8(lit, sizeof(lit) - 1, &bad_), "accepted: %s", #lit);       \
		cr_assert_eq(bad_, (size_t)(off), "%s: bad offset %zu, expected %zu", #lit,   \
			     bad_, (size_t)(off));                                            \
	} while (0)

Test(json_utf8, valid_sequences_are_accepted)
{
	VALID("");
	VALID("plain ascii, with \x01 controls and \x7f DEL");
	VALID("\xc2\x80");                 /* U+0080, smallest 2-byte */
	VALID("\xc3\xa9t\xc3\xa9");        /* été */
	VALID("\xdf\xbf");                 /* U+07FF */
	VALID("\xe0\xa0\x80");             /* U+0800, smallest 3-byte */
	VALID("\xe2\x82\xac");             /* € */
	VALID("\xed\x9f\xbf");             /* U+D7FF, just below the surrogates */
	VALID("\xee\x80\x80");             /* U+E000, just above them */
	VALID("\xef\xbf\xbf");             /* U+FFFF */
	VALID("\xf0\x90\x80\x80");         /* U+10000, smallest 4-byte */
	VALID("\xf0\x9f\x98\x80");         /* 😀 */
	VALID("\xf4\x8f\xbf\xbf");         /* U+10FFFF, the last code point */
	VALID("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e ok"); /* 日本語 */
	cr_assert(utf8("a\0b", 3, NULL), "NUL is a valid code point");
}

Test(json_utf8, overlongs_surrogates_and_out_of_range_are_rejected)
{
	INVALID_AT("\xc0\x80", 0);         /* overlong NUL */
	INVALID_AT("\xc1\xbf", 0);         /* overlong U+007F */
	INVALID_AT("\xe0\x80\x80", 0);     /* overlong 3-byte */
	INVALID_AT("\xe0\x9f\xbf", 0);     /* overlong U+07FF */
	INVALID_AT("\xf0\x80\x80\x80", 0); /* overlong 4-byte */
	INVALID_AT("\xf0\x8f\xbf\xbf", 0); /* overlong U+FFFF */
	INVALID_AT("\xed\xa0\x80", 0);     /* U+D800 */
	INVALID_AT("\xed\xbf\xbf", 0);     /* U+DFFF */
	INVALID_AT("\xed\xa0\xbd\xed\xb8\x80", 0); /* CESU-8 pair */
	INVALID_AT("\xf4\x90\x80\x80", 0); /* U+110000 */
	INVALID_AT("\xf5\x80\x80\x80", 0);
	INVALID_AT("\xf8\x88\x80\x80\x80", 0); /* old 5-byte form */
	INVALID_AT("\xfe", 0);
	INVALID_AT("\xff", 0);
	INVALID_AT("\x80", 0);             /* lone continuation byte */
	INVALID_AT("\xbf", 0);
}

Test(json_utf8, truncated_and_broken_sequences_are_rejected)
{
	INVALID_AT("\xc3", 0);
	INVALID_AT("\xe2\x82", 0);
	INVALID_AT("\xf0\x9f\x98", 0);
	INVALID_AT("\xc3\x28", 0);         /* continuation expected, ASCII found */
	INVALID_AT("\xe2\x28\xa1", 0);
	INVALID_AT("\xe2\x82\x28", 0);
	INVALID_AT("\xf0\x9f\x28\x80", 0);
	INVALID_AT("\xc3\xc3\xa9", 0);
	/* a valid lead byte cut off by n, though the byte after it is there */
	{
		size_t bad = 99;
		cr_assert_not(json_utf8_valid("\xc3\xa9", 1, &bad));
		cr_assert_eq(bad, 0);
		cr_assert_not(json_utf8_valid("ab\xf0\x9f\x98\x80", 5, &bad));
		cr_assert_eq(bad, 2);
	}
	cr_assert_not(json_utf8_valid("\xff", 1, NULL), "bad may be NULL");
}

Test(json_utf8, the_offset_is_the_first_invalid_byte)
{
	INVALID_AT("abc\xc3\x28", 3);
	INVALID_AT("\xc3\xa9\xff", 2);
	INVALID_AT("\xe2\x82\xac\xf0\x9f\x98\x80x\xed\xa0\x80", 8);
	/* ASCII runs around the 8-byte fast path, at every alignment */
	for (size_t pre = 0; pre < 40; pre++) {
		char buf[64];
		size_t bad = 0;
		memset(buf, 'a', pre);
		buf[pre] = (char)0x80;
		memcpy(buf + pre + 1, "tail after it", 13);
		cr_assert_not(utf8(buf, pre + 14, &bad), "prefix %zu", pre);
		cr_assert_eq(bad, pre, "prefix %zu: offset %zu", pre, bad);
		memcpy(buf + pre, "\xc3\xa9", 2);
		cr_assert(utf8(buf, pre + 2, NULL), "prefix %zu", pre);
	}
}

/* ---- printing ----------------------------------------------------------- */

/* json_print of item, NUL-terminated (caller frees). */
static char *print(const cJSON *item)
{
	char *s = json_print_string(item);

	cr_assert_not_null(s, "json_print_string failed");
	return s;
}

static void expect_string_prints(const char *value, const char *want)
{
	cJSON *s = cJSON_CreateString(value);
	char *got = print(s);

	cr_assert_str_eq(got, want);
	free(got);
	cJSON_Delete(s);
}

Test(json_print, control_characters_quotes_and_backslash_are_escaped)
{
	expect_string_prints("", "\"\"");
	expect_string_prints("\x01", "\"\\u0001\"");
	expect_string_prints("a\x1f" "b", "\"a\\u001fb\"");
	expect_string_prints("\x1b[0m", "\"\\u001b[0m\"");
	expect_string_prints("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
	expect_string_prints("say \"hi\"", "\"say \\\"hi\\\"\"");
	expect_string_prints("C:\\dir\\", "\"C:\\\\dir\\\\\"");
	expect_string_prints("a/b", "\"a/b\"");      /* no need to escape '/' */
	expect_string_prints("\x7f", "\"\x7f\"");     /* DEL is not a control character in JSON */
	expect_string_prints(" ~", "\" ~\"");
}

Test(json_print, valid_utf8_is_kept_as_is)
{
	expect_string_prints("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
			     "\"\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"");
}

Test(json_print, invalid_utf8_in_strings_becomes_replacement_characters)
{
	expect_string_prints("a\xff" "b", "\"a\\ufffdb\"");
	expect_string_prints("\xc3\x28", "\"\\ufffd(\"");
	expect_string_prints("x\xe2\x82", "\"x\\ufffd\\ufffd\"");
	expect_string_prints("\xc0\x80", "\"\\ufffd\\ufffd\"");
	expect_string_prints("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");
	expect_string_prints("\xf4\x90\x80\x80!", "\"\\ufffd\\ufffd\\ufffd\\ufffd!\"");
	/* valid sequences around an invalid byte survive */
	expect_string_prints("\xc3\xa9\x80\xc3\xa9", "\"\xc3\xa9\\ufffd\xc3\xa9\"");
	/* worst case: every byte replaced (6 bytes each) */
	{
		char in[257];
		struct jbuf b = {0};
		cJSON *s;
		memset(in, 0xff, 256);
		in[256] = '\0';
		s = cJSON_CreateString(in);
		cr_assert_eq(json_print(s, &b), 0);
		cr_assert_eq(b.len, 256 * 6 + 2);
		cr_assert(json_utf8_valid(b.data, b.len, NULL));
		jbuf_free(&b);
		cJSON_Delete(s);
	}
}

Test(json_print, output_is_always_valid_utf8_and_parses_back)
{
	/* every single byte value, alone and between ASCII */
	for (int c = 1; c < 256; c++) {
		char in[4] = {'a', (char)c, 'z', '\0'};
		cJSON *s = cJSON_CreateString(in), *back;
		char *out = print(s);
		char err[128];
		cr_assert(json_utf8_valid(out, strlen(out), NULL), "byte 0x%02x: %s", c, out);
		cr_assert_eq(json_parse(out, strlen(out), &back, err, sizeof(err)), 0,
			     "byte 0x%02x: %s: %s", c, out, err);
		cr_assert(cJSON_IsString(back));
		if (c < 0x80)
			cr_assert_str_eq(back->valuestring, in, "byte 0x%02x", c);
		else
			cr_assert_str_eq(back->valuestring, "a\xef\xbf\xbdz", "byte 0x%02x", c);
		cJSON_Delete(back);
		free(out);
		cJSON_Delete(s);
	}
}

Test(json_print, nested_structures_print_compactly)
{
	const char *text = "{ \"a\" : [ 1 , 2.5 , \"x\" , true , false , null , { } , [ ] ] ,\n"
			   "  \"b\" : { \"c\" : [ [ [ -0.0 ] ] ] , \"d\" : 1e2 } , \"\" : \"\" }";
	cJSON *root;
	char err[128], *out;

	cr_assert_eq(json_parse(text, strlen(text), &root, err, sizeof(err)), 0, "%s", err);
	out = print(root);
	cr_assert_str_eq(out, "{\"a\":[1,2.5,\"x\",true,false,null,{},[]],"
			      "\"b\":{\"c\":[[[-0]]],\"d\":100},\"\":\"\"}");
	free(out);
	cJSON_Delete(root);
}

Test(json_print, object_keys_are_escaped_like_strings)
{
	cJSON *o = cJSON_CreateObject();
	char *out;

	cJSON_AddNumberToObject(o, "k\"\n\x01\xc3\xa9", 1);
	cJSON_AddNullToObject(o, "bad\xff");
	cJSON_AddTrueToObject(o, "back\\slash");
	out = print(o);
	cr_assert_str_eq(out, "{\"k\\\"\\n\\u0001\xc3\xa9\":1,\"bad\\ufffd\":null,"
			      "\"back\\\\slash\":true}");
	free(out);
	cJSON_Delete(o);
}

Test(json_print, duplicate_members_and_order_are_kept)
{
	const char *text = "{\"b\":1,\"a\":2,\"b\":3}";
	cJSON *root;
	char err[64], *out;

	cr_assert_eq(json_parse(text, strlen(text), &root, err, sizeof(err)), 0);
	out = print(root);
	cr_assert_str_eq(out, text);
	free(out);
	cJSON_Delete(root);
}

Test(json_print, numbers_inside_trees_print_exactly)
{
	const char *text = "[788032119674292900,139.70372892916203,1.417566161e+09,0.1,1e-7,"
			   "-0,1e21,5e-324,1.7976931348623157e308]";
	cJSON *root;
	char err[64], *out;

	cr_assert_eq(json_parse(text, strlen(text), &root, err, sizeof(err)), 0);
	out = print(root);
	cr_assert_str_eq(out, "[788032119674292900,139.70372892916203,1417566161,0.1,1e-07,-0,"
			      "1e+21,4.94065645841247e-324,1.7976931348623157e+308]");
	free(out);
	cJSON_Delete(root);
}

Test(json_print, appends_to_the_buffer_and_restores_it_on_failure)
{
	struct jbuf b = {0};
	cJSON *ok = cJSON_CreateArray(), *bad = cJSON_CreateObject(), *inv = cJSON_CreateNull();

	cr_assert_eq(jbuf_append(&b, "xx", 2), 0);
	cJSON_AddItemToArray(ok, cJSON_CreateNumber(7));
	cr_assert_eq(json_print(ok, &b), 0);
	cr_assert_eq(b.len, 5);
	cr_assert_eq(memcmp(b.data, "xx[7]", 5), 0);

	/* an invalid item deep inside: -EINVAL, and nothing of it is left */
	inv->type = cJSON_Invalid;
	cJSON_AddItemToObject(bad, "fine", cJSON_CreateString("long enough to be written"));
	cJSON_AddItemToObject(bad, "broken", inv);
	cr_assert_eq(json_print(bad, &b), -EINVAL);
	cr_assert_eq(b.len, 5);
	cr_assert_eq(json_print(NULL, &b), -EINVAL);
	cr_assert_eq(b.len, 5);
	cr_assert_null(json_print_string(bad));
	jbuf_free(&b);
	cr_assert_null(b.data);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(b.cap, 0);
	cJSON_Delete(ok);
	cJSON_Delete(bad);
}

Test(json_print, raw_items_print_verbatim_and_a_string_without_value_fails)
{
	cJSON *a = cJSON_CreateArray(), *s = cJSON_CreateString("x");
	struct jbuf b = {0};
	char *out;

	cJSON_AddItemToArray(a, cJSON_CreateRaw("{\"pre\":1}"));
	out = print(a);
	cr_assert_str_eq(out, "[{\"pre\":1}]");
	free(out);
	free(s->valuestring);
	s->valuestring = NULL;
	cr_assert_eq(json_print(s, &b), -EINVAL);
	cr_assert_eq(b.len, 0);
	jbuf_free(&b);
	cJSON_Delete(s);
	cJSON_Delete(a);
}

static cJSON *nest(int depth)
{
	cJSON *root = cJSON_CreateArray(), *cur = root;

	for (int i = 1; i < depth; i++) {
		cJSON *n = cJSON_CreateArray();
		cJSON_AddItemToArray(cur, n);
		cur = n;
	}
	return root;
}

Test(json_print, nesting_deeper_than_10000_is_refused_not_a_crash)
{
	cJSON *ok = nest(10000), *deep = nest(10002);
	struct jbuf b = {0};

	cr_assert_eq(json_print(ok, &b), 0);
	cr_assert_eq(b.len, 20000);
	b.len = 0;
	cr_assert_eq(json_print(deep, &b), -EINVAL);
	cr_assert_eq(b.len, 0);
	jbuf_free(&b);
	cJSON_Delete(ok);
	cJSON_Delete(deep);
}

Test(json_buf, reserve_grows_and_refuses_overflow)
{
	struct jbuf b = {0};

	cr_assert_eq(jbuf_reserve(&b, 1), 0);
	cr_assert_geq(b.cap, 1);
	for (int i = 0; i < 10000; i++)
		cr_assert_eq(jbuf_append(&b, "0123456789", 10), 0);
	cr_assert_eq(b.len, 100000);
	cr_assert_geq(b.cap, 100000);
	cr_assert_eq(memcmp(b.data + 99990, "0123456789", 10), 0);
	cr_assert_eq(jbuf_reserve(&b, SIZE_MAX), -ENOMEM);
	cr_assert_eq(jbuf_reserve(&b, SIZE_MAX - b.len + 1), -ENOMEM);
	cr_assert_eq(b.len, 100000, "a failed reserve changes nothing");
	jbuf_free(&b);
}

/* ---- parsing ------------------------------------------------------------ */

/* json_parse on an exact-size copy of text (no NUL after it). Returns rc. */
static int parse(const char *text, size_t n, cJSON **out, char *err, size_t errlen)
{
	char *copy = calloc(1, n ? n : 1);
	int rc;

	memcpy(copy, text, n);
	*out = (cJSON *)1;
	rc = json_parse(copy, n, out, err, errlen);
	free(copy);
	if (rc < 0)
		cr_assert_null(*out, "*out must be NULL on failure");
	return rc;
}

static void expect_parse_error(const char *text, size_t n, const char *what1, const char *what2)
{
	cJSON *out;
	char err[256] = "";

	cr_assert_eq(parse(text, n, &out, err, sizeof(err)), -EINVAL, "accepted: %.*s", (int)n,
		     text);
	cr_assert_not_null(strstr(err, what1), "\"%s\" lacks \"%s\"", err, what1);
	if (what2)
		cr_assert_not_null(strstr(err, what2), "\"%s\" lacks \"%s\"", err, what2);
}

Test(json_parse, valid_documents_parse_without_a_terminator)
{
	static const char *const ok[] = {
		"{}", "[]", "0", "-1.5e3", "\"s\"", "true", "false", "null", "[1,2,3]",
		" \n\t{\"a\":{\"b\":[null]}}\r\n ", "\"\\u00e9\\ud83d\\ude00\"", "123",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cJSON *out;
		char err[128];
		cr_assert_eq(parse(ok[i], strlen(ok[i]), &out, err, sizeof(err)), 0, "%s: %s", ok[i],
			     err);
		cr_assert_not_null(out);
		cJSON_Delete(out);
	}
}

Test(json_parse, escapes_decode_to_utf8)
{
	const char *text = "\"\\u00e9\\ud83d\\ude00\\n\\\"\\/\"";
	cJSON *out;
	char err[128];

	cr_assert_eq(parse(text, strlen(text), &out, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(out->valuestring, "\xc3\xa9\xf0\x9f\x98\x80\n\"/");
	cJSON_Delete(out);
	/* a lone surrogate escape cannot become UTF-8 */
	expect_parse_error("\"\\ud800\"", 8, "invalid JSON", NULL);
	expect_parse_error("\"\\udc00x\"", 9, "invalid JSON", NULL);
}

Test(json_parse, empty_input_is_an_error)
{
	expect_parse_error("", 0, "empty", NULL);
	expect_parse_error("   \n ", 5, "empty", NULL);
}

Test(json_parse, trailing_data_is_an_error)
{
	expect_parse_error("{} {}", 5, "unexpected data after the value", "byte 3");
	expect_parse_error("[1]\n\n  x", 8, "after the value", "line 3, column 3");
	expect_parse_error("{}\0", 3, "after the value", "byte 2");
	expect_parse_error("1 2", 3, "after the value", "byte 2");
}

Test(json_parse, invalid_utf8_names_the_byte_line_and_column)
{
	expect_parse_error("\"\xc3\x28\"", 4, "UTF-8", "byte 1 (line 1, column 2)");
	expect_parse_error("{\n\"a\":\"\xff\"}", 10, "UTF-8", "byte 7 (line 2, column 6)");
	/* invalid UTF-8 anywhere, even where the JSON is broken anyway */
	expect_parse_error("[1,\n\xed\xa0\x80]", 8, "UTF-8", "byte 4 (line 2, column 1)");
	/* overlong encodings of a quote are not quotes */
	expect_parse_error("\"a\xc0\xa2", 4, "UTF-8", "byte 2");
}

Test(json_parse, syntax_errors_name_line_and_column)
{
	expect_parse_error("{\"a\":\n  tru}", 12, "invalid JSON", "line 2, column 3");
	expect_parse_error("[1,\n2,\n\n   ?]", 13, "line 4, column 4", "byte 11");
	expect_parse_error("{\"a\" 1}", 7, "invalid JSON", "line 1");
	expect_parse_error("[1,2", 4, "invalid JSON", "line 1");
	expect_parse_error("\"abc", 4, "invalid JSON", "line 1");
	expect_parse_error("-", 1, "invalid JSON", NULL);
	expect_parse_error("nul", 3, "invalid JSON", NULL);
}

Test(json_parse, errors_fit_a_small_buffer)
{
	char err[24];
	cJSON *out;

	memset(err, 'Z', sizeof(err));
	cr_assert_eq(json_parse("\xff", 1, &out, err, 10), -EINVAL);
	cr_assert_eq(strlen(err), 9);
	cr_assert_eq(err[10], 'Z');
}

Test(json_parse, deep_nesting_fails_cleanly)
{
	size_t n = 200000;
	char *text = malloc(n);

	memset(text, '[', n / 2);
	memset(text + n / 2, ']', n / 2);
	expect_parse_error(text, n, "invalid JSON", NULL);
	free(text);
}

Test(json_parse, big_integers_become_the_nearest_double)
{
	const char *text = "[820982911946154508, 788032119674292900, 9007199254740993]";
	cJSON *out;
	char err[64];

	cr_assert_eq(parse(text, strlen(text), &out, err, sizeof(err)), 0);
	cr_assert_eq(cJSON_GetArrayItem(out, 0)->valuedouble, 820982911946154508.0);
	cr_assert_eq(cJSON_GetArrayItem(out, 1)->valuedouble, 788032119674292900.0);
	cr_assert_eq(cJSON_GetArrayItem(out, 2)->valuedouble, 9007199254740992.0);
	cJSON_Delete(out);
}

/* ---- the webhook corpus ------------------------------------------------- */

/* a and b are the same JSON value: same types, same member names in the
 * same order, bit-identical numbers (cJSON_Compare allows a tolerance). */
static void same_tree(const cJSON *a, const cJSON *b, const char *file, const char *where)
{
	char sub[512];

	cr_assert_eq(a->type & 0xff, b->type & 0xff, "%s: %s: type %d vs %d", file, where,
		     a->type & 0xff, b->type & 0xff);
	switch (a->type & 0xff) {
	case cJSON_Number:
		cr_assert_eq(bits_of(a->valuedouble), bits_of(b->valuedouble),
			     "%s: %s: %.17g vs %.17g", file, where, a->valuedouble, b->valuedouble);
		break;
	case cJSON_String:
		cr_assert_str_eq(a->valuestring, b->valuestring, "%s: %s", file, where);
		break;
	case cJSON_Array:
	case cJSON_Object: {
		const cJSON *x = a->child, *y = b->child;
		size_t i = 0;
		for (; x && y; x = x->next, y = y->next, i++) {
			if (x->string || y->string) {
				cr_assert(x->string && y->string, "%s: %s: member name", file, where);
				cr_assert_str_eq(x->string, y->string, "%s: %s[%zu]", file, where, i);
				snprintf(sub, sizeof(sub), "%.400s.%.80s", where, x->string);
			} else {
				snprintf(sub, sizeof(sub), "%.400s[%zu]", where, i);
			}
			same_tree(x, y, file, sub);
		}
		cr_assert(!x && !y, "%s: %s: different number of members", file, where);
		break;
	}
	default: /* true, false, null: the type says it all */
		break;
	}
}

/* Every number of the tree prints as it must: integral ones below 1e21 as
 * plain digits, all of them exactly. Returns how many there were. */
static size_t check_numbers(const cJSON *t, const char *file)
{
	size_t n = 0;
	char buf[32];

	if (cJSON_IsNumber(t)) {
		double d = t->valuedouble;
		round_trip(d, buf);
		if (is_integral(d) && fabs(d) < 1e21)
			cr_assert(all_digits(buf), "%s: %.17g printed as \"%s\"", file, d, buf);
		return 1;
	}
	for (const cJSON *c = t->child; c; c = c->next)
		n += check_numbers(c, file);
	return n;
}

/* ---- the payload corpora (tests/support/corpus.h) --------------------- */

/* One line says which corpora run; ours holds every trait these tests
 * rely on, and its README says what each file is for. */
Test(json_corpus, corpora_in_use_and_our_corpus_is_complete)
{
	static const char *const traits[] = {
		"numbers-big-integers", "numbers-floats", "numbers-exponents",
		"numbers-negative-zero", "strings-escapes", "strings-unicode", "strings-long",
		"nesting-deep-500", "containers-empty", "keys-duplicate", "top-empty-object",
		"top-empty-array", "top-array", "top-string", "top-number", "top-number-big",
		"top-number-float", "top-true", "top-false", "top-null",
	};
	struct corpus c;
	char *readme;
	size_t len, webhooks = 0;

	cr_assert_gt(corpus_log_which("unit"), 0);
	corpus_load(&c, CORPUS_OWN_DIR);
	for (size_t i = 0; i < sizeof(traits) / sizeof(traits[0]); i++)
		corpus_get(&c, traits[i]);
	readme = u_read_file(CORPUS_OWN_DIR "/README.md", &len);
	cr_assert_not_null(readme, CORPUS_OWN_DIR "/README.md");
	for (size_t i = 0; i < c.n; i++) {
		char line[300];
		snprintf(line, sizeof(line), "| `%s.json` |", c.f[i].name);
		cr_assert_not_null(strstr(readme, line), "README.md says nothing of %s.json",
				   c.f[i].name);
		/* realistic webhook bodies, 1 to 60 KB */
		if (strncmp(c.f[i].name, "webhook-", 8) == 0) {
			webhooks++;
			cr_assert(c.f[i].len >= 1000 && c.f[i].len <= 60000, "%s: %zu bytes",
				  c.f[i].name, c.f[i].len);
		}
	}
	cr_assert_geq(webhooks, 6);
	free(readme);
	corpus_free(&c);
}

static void survives_parse_print_parse_exactly(const struct corpus *c)
{
	size_t numbers = 0;

	for (size_t i = 0; i < c->n; i++) {
		const char *name = c->f[i].name;
		char err[256];
		struct jbuf b1 = {0}, b2 = {0};
		cJSON *t1, *t2, *t3;

		cr_assert_eq(json_parse(c->f[i].text, c->f[i].len, &t1, err, sizeof(err)), 0,
			     "%s/%s: %s", c->dir, name, err);
		cr_assert_eq(json_print(t1, &b1), 0, "%s", name);
		cr_assert(json_utf8_valid(b1.data, b1.len, NULL), "%s: printed invalid UTF-8", name);
		/* cJSON itself reads our output back: another parser than json_parse */
		t2 = cJSON_ParseWithLength(b1.data, b1.len);
		cr_assert_not_null(t2, "%s: cJSON cannot parse what json_print wrote", name);
		same_tree(t1, t2, name, "$");
		/* and printing is a fixed point: print(parse(print(x))) == print(x) */
		cr_assert_eq(json_parse(b1.data, b1.len, &t3, err, sizeof(err)), 0, "%s: %s", name,
			     err);
		cr_assert_eq(json_print(t3, &b2), 0);
		cr_assert_eq(b1.len, b2.len, "%s: second print differs", name);
		cr_assert_eq(memcmp(b1.data, b2.data, b1.len), 0, "%s: second print differs", name);
		numbers += check_numbers(t1, name);
		cJSON_Delete(t1);
		cJSON_Delete(t2);
		cJSON_Delete(t3);
		jbuf_free(&b1);
		jbuf_free(&b2);
	}
	cr_assert_gt(numbers, 0, "%s has numbers", c->dir);
}

Test(json_corpus, own_corpus_survives_parse_print_parse_exactly, .timeout = 120)
{
	struct corpus c;

	corpus_load(&c, CORPUS_OWN_DIR);
	survives_parse_print_parse_exactly(&c);
	corpus_free(&c);
}

Test(json_corpus, real_corpus_survives_parse_print_parse_exactly, .timeout = 120)
{
	struct corpus c;

	corpus_load_real_or_skip(&c);
	survives_parse_print_parse_exactly(&c);
	corpus_free(&c);
}

/* json_print of a corpus file, NUL-terminated (caller frees). */
static char *print_file(const struct corpus *c, const char *name)
{
	const struct corpus_file *f = corpus_get(c, name);
	char err[256], *out;
	cJSON *t;

	cr_assert_eq(json_parse(f->text, f->len, &t, err, sizeof(err)), 0, "%s: %s", name, err);
	out = print(t);
	cJSON_Delete(t);
	return out;
}

/* What the trait files must print as, byte for byte. */
Test(json_corpus, traits_of_our_corpus_print_exactly)
{
	static const struct {
		const char *file, *want;
	} exact[] = {
		{"numbers-big-integers",
		 "{\"u64_max\":18446744073709551615,\"i64_min\":-9223372036854775808,"
		 "\"i64_max\":9223372036854775807,\"rounded_id\":788032119674292900,"
		 "\"exact_id\":820982911946154508,\"twitter_id\":505874924095815681,"
		 "\"two_pow_53\":9007199254740992,\"two_pow_53_plus_1\":9007199254740993,"
		 "\"neg_two_pow_53_plus_1\":-9007199254740993,\"sixteen_digits\":1234567890123456,"
		 "\"fifteen_digits\":999999999999999,\"twenty_digits\":12345678901234567890,"
		 "\"ids\":[18446744073709551615,788032119674292900,141249953214522980,"
		 "706405506930370000],\"gid\":\"gid://shopify/Order/820982911946154508\"}"},
		{"numbers-negative-zero", "{\"neg_zero\":-0,\"neg_zero_float\":-0,\"neg_zero_exp\":-0,"
					  "\"zeros\":[-0,0,-0,0],\"pos_zero\":0}"},
		{"keys-duplicate", "{\"a\":1,\"b\":{\"c\":true,\"c\":false},\"a\":\"two\","
				   "\"list\":[{\"id\":1,\"id\":2}],\"a\":null}"},
		{"containers-empty", "{\"object\":{},\"array\":[],\"string\":\"\",\"nested\":[[],[{}],"
				     "{\"x\":[]},[[[]]],{\"y\":{\"z\":{}}}],\"spaced\":[],"
				     "\"spaced_object\":{}}"},
		{"top-empty-object", "{}"},
		{"top-empty-array", "[]"},
		{"top-array", "[1,\"two\",3.5,true,false,null,{\"k\":[]},[-0],18446744073709551615]"},
		{"top-string", "\"a string at top level, with escapes \\n \xc3\xa9 \xf0\x9f\x98\x80\""},
		{"top-number", "42"},
		{"top-number-big", "18446744073709551615"},
		{"top-number-float", "-0.30000000000000004"},
		{"top-true", "true"},
		{"top-false", "false"},
		{"top-null", "null"},
	};
	static const struct {
		const char *file, *needle;
	} has[] = {
		/* exponents: integral values as digits, others re-spelt exactly */
		{"numbers-exponents", "\"pushed_at\":1417566161,\"hundred\":[100,100,100,100],"},
		{"numbers-exponents", "\"half_milli\":0.0005,\"zero_exp\":0,\"two_and_a_half\":2.5}"},
		/* 16 and 17 significant digits */
		{"numbers-floats", "{\"longitude\":139.70372892916203,\"latitude\":35.65910807942215,"
				   "\"point_one_plus_point_two\":0.30000000000000004,\"tenth\":0.1,"},
		{"numbers-floats", "\"one_point_zero\":1,\"trailing_zero\":100.5,"},
		/* escapes decoded, then re-escaped only where JSON requires it */
		{"strings-escapes", "\"short_escapes\":\"quote \\\" backslash \\\\ slash / bs \\b ff "
				    "\\f nl \\n cr \\r tab \\t\""},
		{"strings-escapes", "\"gitlab_style\":\"a & b\\tc\""},
		{"strings-escapes", "\"controls\":\"\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007"
				    "\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013"
				    "\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c"
				    "\\u001d\\u001e\\u001f\""},
		/* surrogate pairs become the 4 UTF-8 bytes, up to U+10FFFF */
		{"strings-escapes", "\"pair\":\"\xf0\x9f\x98\x80\",\"pair_upper_hex\":\"\xf0\x9f\x98\x80\","
				    "\"pairs\":\"\xf0\x9f\x8e\x89 \xf0\x9d\x84\x9e \xf4\x8f\xbf\xbf\""},
		{"strings-escapes", "\"mixed\":\"\xe6\x9d\xb1\xe4\xba\xac \xe6\x9d\xb1\xe4\xba\xac\","
				    "\"key\":\"a member name written with an escape\",\"\":"},
		/* raw UTF-8 of every length kept as it is */
		{"strings-unicode", "\"emoji\":\"\xf0\x9f\x8e\x89\xf0\x9f\x9a\x80"},
		{"strings-unicode", "\"\xf0\x9f\x94\x91\":\"an astral member name\""},
		/* \u escapes of the ensure_ascii style, a pair among them */
		{"webhook-shopify-order-create",
		 "\"note\":\"Bitte klingeln \xf0\x9f\x94\x94 \xe2\x80\x94 danke!\""},
		{"webhook-shopify-order-create", "{\"id\":820982911946154508,"},
	};
	struct corpus c;
	char *out;

	corpus_load(&c, CORPUS_OWN_DIR);
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
		out = print_file(&c, exact[i].file);
		cr_assert_str_eq(out, exact[i].want, "%s", exact[i].file);
		free(out);
	}
	for (size_t i = 0; i < sizeof(has) / sizeof(has[0]); i++) {
		out = print_file(&c, has[i].file);
		cr_assert_not_null(strstr(out, has[i].needle), "%s: no %s in %.400s", has[i].file,
				   has[i].needle, out);
		free(out);
	}
	corpus_free(&c);
}

/* 500 levels print as the file minus its blanks; a 100 KB+ string whole. */
Test(json_corpus, deep_nesting_and_long_strings_print_whole)
{
	const struct corpus_file *f;
	struct corpus c;
	char *out, *want, err[256];
	size_t k = 0, depth = 0, max_depth = 0;
	cJSON *t;

	corpus_load(&c, CORPUS_OWN_DIR);
	f = corpus_get(&c, "nesting-deep-500");
	want = malloc(f->len + 1);
	cr_assert_not_null(want);
	for (size_t i = 0; i < f->len; i++) {
		if (f->text[i] != ' ' && f->text[i] != '\n')
			want[k++] = f->text[i];
		if (f->text[i] == '[' || f->text[i] == '{')
			max_depth = ++depth > max_depth ? depth : max_depth;
		else if (f->text[i] == ']' || f->text[i] == '}')
			depth--;
	}
	want[k] = '\0';
	cr_assert_eq(max_depth, 500);
	out = print_file(&c, "nesting-deep-500");
	cr_assert_str_eq(out, want);
	free(out);
	free(want);

	f = corpus_get(&c, "strings-long");
	cr_assert_eq(json_parse(f->text, f->len, &t, err, sizeof(err)), 0, "%s", err);
	cr_assert_gt(strlen(cJSON_GetObjectItem(t, "body")->valuestring), 100000);
	out = print(t);
	cr_assert_gt(strlen(out), f->len - 100, "printed %zu of %zu bytes", strlen(out), f->len);
	cr_assert_not_null(strstr(out, "\",\"tail\":\"end\"}"));
	free(out);
	cJSON_Delete(t);
	corpus_free(&c);
}

/* The deliberately broken bodies: each refused, saying why (1E400 is not
 * turned into infinity, \u0000 does not cut a string). */
Test(json_corpus, invalid_files_are_refused)
{
	static const struct {
		const char *file, *why;
	} named[] = {
		{"number-1E400", "number out of range"},
		{"number-neg-1e999", "number out of range"},
		{"number-leading-zero", "leading zero"},
		{"string-nul-escape", "\\u0000"},
		{"string-lone-surrogate", "unpaired UTF-16 surrogate"},
		{"string-raw-tab", "control character"},
		{"string-invalid-utf8", "invalid UTF-8 at byte 7"},
		{"nesting-1001", "nesting deeper than 1000"},
		{"two-values", "unexpected data after the value"},
		{"empty", "empty body"},
	};
	struct corpus c;

	corpus_load(&c, CORPUS_INVALID_DIR);
	for (size_t i = 0; i < c.n; i++)
		expect_parse_error(c.f[i].text, c.f[i].len, "", NULL);
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		const struct corpus_file *f = corpus_get(&c, named[i].file);
		expect_parse_error(f->text, f->len, named[i].why, NULL);
	}
	corpus_free(&c);
}

/* A corpus folder that is there but empty, or holds a file that cannot be
 * read, is an error (a round trip of nothing proves nothing). */
Test(json_corpus, a_present_corpus_must_be_non_empty_and_readable)
{
	char dir[256], path[400], err[1200];
	struct corpus c;

	u_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/README.md", dir);
	u_write_file(path, "not a payload\n");
	cr_assert_not(corpus_try_load(&c, dir, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "no *.json"), "%s", err);

	snprintf(path, sizeof(path), "%s/a.json", dir);
	u_write_file(path, "{}");
	cr_assert(corpus_try_load(&c, dir, err, sizeof(err)), "%s", err);
	cr_assert_eq(c.n, 1);
	cr_assert_str_eq(c.f[0].name, "a");
	cr_assert_str_eq(c.f[0].text, "{}");
	corpus_free(&c);

	/* a dangling link: unreadable even for root */
	snprintf(path, sizeof(path), "%s/b.json", dir);
	cr_assert_eq(symlink("nowhere.json", path), 0, "%s", strerror(errno));
	cr_assert_not(corpus_try_load(&c, dir, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "cannot read"), "%s", err);
	cr_assert_eq(c.n, 0);

	snprintf(path, sizeof(path), "%s/missing", dir);
	cr_assert_not(corpus_try_load(&c, path, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "No such file"), "%s", err);
	u_rmtree(dir);
}

/* ---- strict RFC 8259 (our parser, not cJSON's) ----------------------- */

Test(json_parse, refuses_what_rfc8259_refuses)
{
	static const char *const bad[] = {
		"01", "-01", "1.", ".5", "1.e5", "1e", "1e+", "-", "+1", "[1,]", "{\"a\":1,}",
		"\"a\tb\"", "\"a\nb\"", "[1 2]", "{\"a\" 1}", "{a:1}", "nul", "True", "'s'",
		"\"\\x41\"", "\"\\u12\"", "[", "{", "\"",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_parse_error(bad[i], strlen(bad[i]), "invalid JSON", NULL);
}

Test(json_parse, refuses_values_it_could_only_change)
{
	/* cJSON would turn these into infinity (printed null) and "" */
	expect_parse_error("[1e999]", 7, "number out of range", "byte 1");
	expect_parse_error("-1e400", 6, "number out of range", NULL);
	expect_parse_error("\"a\\u0000b\"", 10, "\\u0000", "byte 2");
}

Test(json_parse, errors_say_why)
{
	expect_parse_error("[1,2", 4, "end of input", "expected ',' or ']'");
	expect_parse_error("{\"a\":1 \"b\":2}", 13, "byte 7", "expected ',' or '}'");
	expect_parse_error("{\"a\"}", 5, "expected ':'", NULL);
	expect_parse_error("\"abc", 4, "unterminated string", NULL);
	expect_parse_error("012", 3, "leading zero", NULL);
}

Test(json_parse, edge_numbers_parse_exactly)
{
	static const struct {
		const char *text;
		double value;
	} cases[] = {
		{"-0", -0.0}, {"0.5e-3", 0.0005}, {"1E+2", 100}, {"-123456789012345", -123456789012345.0},
		{"1.7976931348623157e308", 1.7976931348623157e308}, {"5e-324", 5e-324},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *out;
		char err[128];
		cr_assert_eq(parse(cases[i].text, strlen(cases[i].text), &out, err, sizeof(err)), 0,
			     "%s: %s", cases[i].text, err);
		cr_assert(memcmp(&out->valuedouble, &cases[i].value, sizeof(double)) == 0, "%s",
			  cases[i].text);
		cr_assert_null(out->valuestring, "short numbers keep no text");
		cJSON_Delete(out);
	}
}

Test(json_parse, long_integers_keep_their_digits_through_a_print)
{
	const char *text = "{\"id\":820982911946154508,\"neg\":-9007199254740993,"
			   "\"small\":42,\"x\":1234567890123456789012}";
	cJSON *root, *id;
	char err[128], *printed;

	cr_assert_eq(parse(text, strlen(text), &root, err, sizeof(err)), 0, "%s", err);
	printed = json_print_string(root);
	cr_assert_str_eq(printed, text);
	free(printed);
	/* plugins still read the nearest double */
	id = cJSON_GetObjectItem(root, "id");
	cr_assert_eq(id->valuedouble, 820982911946154508.0);
	/* a plugin that changes the value gets the new value printed */
	cJSON_SetNumberValue(id, 7);
	printed = json_print_string(root);
	cr_assert_str_eq(printed, "{\"id\":7,\"neg\":-9007199254740993,\"small\":42,"
				  "\"x\":1234567890123456789012}");
	free(printed);
	/* and a copy keeps the digits too */
	cJSON *dup = cJSON_Duplicate(cJSON_GetObjectItem(root, "neg"), 1);
	printed = json_print_string(dup);
	cr_assert_str_eq(printed, "-9007199254740993");
	free(printed);
	cJSON_Delete(dup);
	cJSON_Delete(root);
}

Test(json_parse, a_byte_order_mark_is_tolerated)
{
	cJSON *out;
	char err[128];

	cr_assert_eq(parse("\xef\xbb\xbf{\"a\":1}", 10, &out, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cJSON_GetObjectItem(out, "a")->valuedouble, 1);
	cJSON_Delete(out);
}

/* ---- JSON pointers (RFC 6901): dedup's json_pointer key ------------------ */

static cJSON *pointer_doc(void)
{
	static const char text[] =
		"{\"a\": {\"0\": \"obj-zero\", \"01\": \"obj-01\"}, \"arr\": [{\"b\": \"deep\"}, 7, "
		"[10, 11]], \"a~b\": \"tilde\", \"c/d\": \"slash\", \"~1\": \"literal\", "
		"\"\": \"empty-key\", \"n\": 5, \"s\": \"str\", \"id\": \"evt_1\"}";
	cJSON *doc = cJSON_Parse(text);

	cr_assert_not_null(doc);
	return doc;
}

static void pointer_is_string(const cJSON *doc, const char *ptr, const char *want)
{
	const cJSON *v = json_pointer_get(doc, ptr);

	cr_assert(cJSON_IsString(v), "\"%s\" does not find a string", ptr);
	cr_assert_str_eq(v->valuestring, want, "\"%s\"", ptr);
}

Test(json_pointer, the_empty_pointer_is_the_whole_document)
{
	cJSON *doc = pointer_doc();

	cr_assert_eq(json_pointer_get(doc, ""), doc);
	cJSON_Delete(doc);
}

Test(json_pointer, members_and_array_indexes)
{
	cJSON *doc = pointer_doc();

	pointer_is_string(doc, "/id", "evt_1");
	cr_assert_eq(json_pointer_get(doc, "/a"), cJSON_GetObjectItemCaseSensitive(doc, "a"));
	pointer_is_string(doc, "/arr/0/b", "deep");
	cr_assert_eq(json_pointer_get(doc, "/arr/1")->valuedouble, 7);
	cr_assert_eq(json_pointer_get(doc, "/arr/2/1")->valuedouble, 11);
	pointer_is_string(doc, "/a/0", "obj-zero"); /* "0" is a member name in an object */
	pointer_is_string(doc, "/a/01", "obj-01");  /* and so is "01" */
	pointer_is_string(doc, "/", "empty-key");   /* "/" is the member "" */
	cr_assert_null(json_pointer_get(doc, "/missing"));
	cr_assert_null(json_pointer_get(doc, "/ID"), "member names are case-sensitive");
	cJSON_Delete(doc);
}

Test(json_pointer, tilde_escapes)
{
	cJSON *doc = pointer_doc();

	pointer_is_string(doc, "/a~0b", "tilde");
	pointer_is_string(doc, "/c~1d", "slash");
	/* ~01 is "~1" (decoded once, left to right), not "/" */
	pointer_is_string(doc, "/~01", "literal");
	cr_assert_null(json_pointer_get(doc, "/c/d"), "an unescaped / splits the token");
	cr_assert_null(json_pointer_get(doc, "/a~2b"), "~2 is not an escape");
	cr_assert_null(json_pointer_get(doc, "/a~b"), "a bare ~ is not an escape");
	cr_assert_null(json_pointer_get(doc, "/a~"), "a trailing ~");
	cr_assert_null(json_pointer_get(doc, "/~"));
	cJSON_Delete(doc);
}

Test(json_pointer, array_indexes_are_strict)
{
	cJSON *doc = pointer_doc();

	cr_assert_null(json_pointer_get(doc, "/arr/01"), "leading zero");
	cr_assert_null(json_pointer_get(doc, "/arr/00"));
	cr_assert_null(json_pointer_get(doc, "/arr/3"), "one past the end");
	cr_assert_null(json_pointer_get(doc, "/arr/99999999999"));
	cr_assert_null(json_pointer_get(doc, "/arr/18446744073709551617"), "beyond 64 bits");
	cr_assert_null(json_pointer_get(doc, "/arr/-"), "the end marker finds nothing");
	cr_assert_null(json_pointer_get(doc, "/arr/-1"));
	cr_assert_null(json_pointer_get(doc, "/arr/+1"));
	cr_assert_null(json_pointer_get(doc, "/arr/ 1"));
	cr_assert_null(json_pointer_get(doc, "/arr/1x"));
	cr_assert_null(json_pointer_get(doc, "/arr/"), "an empty index");
	cr_assert_not_null(json_pointer_get(doc, "/arr/0"), "a lone 0 is fine");
	cJSON_Delete(doc);
}

Test(json_pointer, no_way_into_a_scalar)
{
	cJSON *doc = pointer_doc();

	cr_assert_null(json_pointer_get(doc, "/n/x"));
	cr_assert_null(json_pointer_get(doc, "/n/0"));
	cr_assert_null(json_pointer_get(doc, "/s/0"), "a string is not an array");
	cr_assert_null(json_pointer_get(doc, "/arr/1/0"));
	cJSON_Delete(doc);
}

Test(json_pointer, a_pointer_starts_with_a_slash)
{
	cJSON *doc = pointer_doc();

	cr_assert_null(json_pointer_get(doc, "a"));
	cr_assert_null(json_pointer_get(doc, "id"));
	cr_assert_null(json_pointer_get(doc, "#/id"), "the URI fragment form is not taken");
	cr_assert_null(json_pointer_get(doc, NULL));
	cr_assert_null(json_pointer_get(NULL, "/id"));
	cJSON_Delete(doc);
}

Test(json_parse_max, counts_values_and_refuses_past_the_bound)
{
	cJSON *o = NULL;
	char err[256];
	size_t n = 0;

	/* an object with 2 members: 3 values; nested containers count too */
	cr_assert_eq(json_parse_max("{\"a\":1,\"b\":[true,null]}", 23, 0, &o, &n, err,
				    sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 5);
	cJSON_Delete(o);
	cr_assert_eq(json_parse_max("{\"a\":1,\"b\":[true,null]}", 23, 5, &o, &n, err,
				    sizeof(err)), 0, "exactly at the bound: %s", err);
	cJSON_Delete(o);
	o = NULL;
	cr_assert_eq(json_parse_max("{\"a\":1,\"b\":[true,null]}", 23, 4, &o, &n, err,
				    sizeof(err)), -E2BIG);
	cr_assert_null(o);
	cr_assert_not_null(strstr(err, "more than 4 values"), "%s", err);
	cr_assert_not_null(strstr(err, "http.max_json_values"), "%s", err);
	/* a malformed body is still a syntax error, not E2BIG, below the bound */
	cr_assert_eq(json_parse_max("[1,", 3, 10, &o, &n, err, sizeof(err)), -EINVAL);
	/* the attacker: an array of zeros, refused once past the bound */
	{
		size_t len = 2 * 100000 + 1;
		char *s = malloc(len);
		cr_assert_not_null(s);
		s[0] = '[';
		for (size_t i = 0; i < 100000; i++) {
			s[1 + 2 * i] = '0';
			s[2 + 2 * i] = i + 1 < 100000 ? ',' : ']';
		}
		cr_assert_eq(json_parse_max(s, len, 1000, &o, &n, err, sizeof(err)), -E2BIG);
		cr_assert_eq(json_parse_max(s, len, 0, &o, &n, err, sizeof(err)), 0);
		cr_assert_eq(n, 100001);
		cJSON_Delete(o);
		free(s);
	}
	u_assert_no_leaks();
}
