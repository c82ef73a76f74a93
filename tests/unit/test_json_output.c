/*
 * json_print as the guard of what plugins return: a byte limit that stops
 * printing where it is reached (and leaves the buffer as it was), and
 * refusal of every tree that would not print as valid JSON.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "../../host/json.h"

static int print_limited(const cJSON *item, size_t limit, struct jbuf *b)
{
	memset(b, 0, sizeof(*b));
	b->limit = limit;
	return json_print(item, b);
}

Test(json_output, a_tree_that_fits_the_limit_exactly_prints)
{
	cJSON *a = cJSON_CreateArray();
	struct jbuf b;

	cJSON_AddItemToArray(a, cJSON_CreateString("abc"));
	cJSON_AddItemToArray(a, cJSON_CreateNumber(12));
	cr_assert_eq(print_limited(a, 11, &b), 0); /* ["abc",12] */
	cr_assert_eq(b.len, 10);
	cr_assert_eq(memcmp(b.data, "[\"abc\",12]", 10), 0);
	jbuf_free(&b);
	cr_assert_eq(print_limited(a, 10, &b), 0);
	jbuf_free(&b);
	cr_assert_eq(print_limited(a, 9, &b), -E2BIG);
	cr_assert_eq(b.len, 0, "a refused print leaves the buffer as it was");
	jbuf_free(&b);
	cJSON_Delete(a);
}

Test(json_output, a_string_past_the_limit_is_refused_before_it_is_copied)
{
	static char big[1 << 20];
	cJSON *s;
	struct jbuf b;

	memset(big, 'y', sizeof(big) - 1);
	s = cJSON_CreateString(big);
	cr_assert_eq(print_limited(s, 1000, &b), -E2BIG);
	cr_assert_lt(b.cap, 4096, "reserved %zu bytes for a refused string", b.cap);
	jbuf_free(&b);
	/* escapes count: 300 quotes print as 600 bytes */
	cJSON_Delete(s);
	memset(big, '"', 300);
	big[300] = '\0';
	s = cJSON_CreateString(big);
	cr_assert_eq(print_limited(s, 500, &b), -E2BIG);
	jbuf_free(&b);
	cr_assert_eq(print_limited(s, 602, &b), 0);
	cr_assert_eq(b.len, 602);
	jbuf_free(&b);
	cJSON_Delete(s);
}

Test(json_output, a_huge_array_stops_at_the_limit)
{
	cJSON *a = cJSON_CreateArray();
	struct jbuf b;

	for (int i = 0; i < 100000; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber(i));
	cr_assert_eq(print_limited(a, 4096, &b), -E2BIG);
	cr_assert_leq(b.cap, 8192, "the buffer grew to %zu", b.cap);
	jbuf_free(&b);
	cr_assert_eq(print_limited(a, 0, &b), 0, "0 means no limit");
	jbuf_free(&b);
	cJSON_Delete(a);
}

Test(json_output, numbers_json_cannot_hold_are_refused)
{
	double bad[] = {NAN, -NAN, INFINITY, -INFINITY};
	struct jbuf b = {0};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "x", cJSON_CreateNumber(bad[i]));
		cr_assert_eq(json_print(o, &b), -EINVAL, "value %zu", i);
		cr_assert_eq(b.len, 0);
		cJSON_Delete(o);
	}
	jbuf_free(&b);
}

Test(json_output, raw_items_must_be_one_json_value)
{
	const char *good[] = {"{\"a\":[1,2]}", "3", "\"s\"", "null"};
	const char *bad[] = {"{not json", "", "1 2", "[1,]", "nul"};
	struct jbuf b = {0};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cJSON *r = cJSON_CreateRaw(good[i]);
		cr_assert_eq(json_print(r, &b), 0, "%s", good[i]);
		cr_assert_eq(b.len, strlen(good[i]));
		b.len = 0;
		cJSON_Delete(r);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cJSON *a = cJSON_CreateArray();
		cJSON_AddItemToArray(a, cJSON_CreateRaw(bad[i]));
		cr_assert_eq(json_print(a, &b), -EINVAL, "raw \"%s\" printed", bad[i]);
		cr_assert_eq(b.len, 0);
		cJSON_Delete(a);
	}
	jbuf_free(&b);
}

Test(json_output, an_object_member_without_a_name_is_refused)
{
	cJSON *o = cJSON_CreateObject();
	struct jbuf b = {0};

	cJSON_AddItemToObject(o, "fine", cJSON_CreateTrue());
	cJSON_AddItemToArray(o, cJSON_CreateNumber(1));
	cr_assert_eq(json_print(o, &b), -EINVAL);
	cr_assert_eq(b.len, 0);
	jbuf_free(&b);
	cJSON_Delete(o);
}
