/*
 * form: application/x-www-form-urlencoded bodies become a JSON object of
 * strings ('+' is a space, %XX either case, a pair without '=' has "",
 * empty pairs skipped, the last of a repeated name wins), and anything that
 * would not be a clean UTF-8 string (bad escapes, NUL, an empty name,
 * invalid UTF-8 once decoded) is refused with a reason.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../../host/form.h"
#include "unit.h"

/* Parse `text` (its strlen); asserts it succeeds and gives an object. */
static cJSON *form_ok(const char *text)
{
	char err[256] = "";
	cJSON *o = (cJSON *)1;

	cr_assert_eq(form_parse(text, strlen(text), &o, err, sizeof(err)), 0, "%s: %s", text,
		     err);
	cr_assert(cJSON_IsObject(o), "%s: not an object", text);
	return o;
}

/* The string member `name` of o is `want`. */
static void member_is(const cJSON *o, const char *name, const char *want)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	cr_assert(cJSON_IsString(v), "no string member \"%s\"", name);
	cr_assert_str_eq(v->valuestring, want, "member \"%s\"", name);
}

/* Parsing text[0..len) fails, *out is NULL, and the reason contains `what`. */
static void form_bad_n(const char *text, size_t len, const char *what)
{
	char err[256] = "";
	cJSON *o = (cJSON *)1;

	cr_assert_eq(form_parse(text, len, &o, err, sizeof(err)), -1, "accepted: %s", text);
	cr_assert_null(o, "*out must be NULL on failure: %s", text);
	cr_assert_not_null(strstr(err, what), "%s: reason \"%s\" lacks \"%s\"", text, err, what);
}

static void form_bad(const char *text, const char *what)
{
	form_bad_n(text, strlen(text), what);
}

Test(form, pairs_in_order)
{
	cJSON *o = form_ok("a=1&b=two&c=3");

	cr_assert_eq(cJSON_GetArraySize(o), 3);
	member_is(o, "a", "1");
	member_is(o, "b", "two");
	member_is(o, "c", "3");
	cr_assert_str_eq(o->child->string, "a");
	cr_assert_str_eq(o->child->next->string, "b");
	cr_assert_str_eq(o->child->next->next->string, "c");
	cJSON_Delete(o);
}

Test(form, plus_is_a_space_in_names_and_values)
{
	cJSON *o = form_ok("first+name=Ada+Lovelace&x=a%2Bb");

	member_is(o, "first name", "Ada Lovelace");
	member_is(o, "x", "a+b"); /* an escaped '+' stays a '+' */
	cJSON_Delete(o);
}

Test(form, percent_escapes_in_either_case)
{
	cJSON *o = form_ok("k%3Dy=%2F%2f%41%6a&u=%C3%A9&amp=%26");

	member_is(o, "k=y", "//Aj");
	member_is(o, "u", "\xC3\xA9"); /* e acute, two escaped bytes */
	member_is(o, "amp", "&");
	cJSON_Delete(o);
}

Test(form, slack_like_body)
{
	cJSON *o = form_ok("token=abc&team_id=T0001&command=%2Fweather&text=94070&"
			   "response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1234%2F5678");

	member_is(o, "command", "/weather");
	member_is(o, "response_url", "https://hooks.slack.com/commands/1234/5678");
	cJSON_Delete(o);
}

Test(form, empty_value_and_a_pair_without_equals)
{
	cJSON *o = form_ok("a=&flag&b=2&c=");

	cr_assert_eq(cJSON_GetArraySize(o), 4);
	member_is(o, "a", "");
	member_is(o, "flag", "");
	member_is(o, "b", "2");
	member_is(o, "c", "");
	cJSON_Delete(o);
}

Test(form, a_value_may_hold_equals_signs)
{
	cJSON *o = form_ok("sig=v1=abc==");

	member_is(o, "sig", "v1=abc==");
	cJSON_Delete(o);
}

Test(form, empty_pairs_are_skipped)
{
	cJSON *o = form_ok("&a=1&&b=2&");

	cr_assert_eq(cJSON_GetArraySize(o), 2);
	member_is(o, "a", "1");
	member_is(o, "b", "2");
	cJSON_Delete(o);
	o = form_ok("&&&");
	cr_assert_eq(cJSON_GetArraySize(o), 0);
	cJSON_Delete(o);
}

Test(form, a_repeated_name_keeps_the_last_value)
{
	cJSON *o = form_ok("a=1&b=x&a=2&a=3");

	cr_assert_eq(cJSON_GetArraySize(o), 2, "one member per name");
	member_is(o, "a", "3");
	member_is(o, "b", "x");
	cJSON_Delete(o);
	u_assert_no_leaks();
}

Test(form, an_empty_body_is_an_empty_object)
{
	cJSON *o = form_ok("");

	cr_assert_eq(cJSON_GetArraySize(o), 0);
	cr_assert_null(o->child);
	cJSON_Delete(o);
}

Test(form, only_len_bytes_are_read)
{
	char err[256] = "";
	cJSON *o = NULL;

	/* the text is not NUL-terminated where len ends */
	cr_assert_eq(form_parse("a=1&b=2garbage", 7, &o, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cJSON_GetArraySize(o), 2);
	member_is(o, "b", "2");
	cJSON_Delete(o);
}

Test(form, bad_escapes_are_refused)
{
	form_bad("a=%zz", "bad %-escape in a value");
	form_bad("a=%", "bad %-escape");
	form_bad("a=1%", "bad %-escape");
	form_bad("a=%4", "bad %-escape");
	form_bad("a=%4g", "bad %-escape");
	form_bad("a=%g4", "bad %-escape");
	form_bad("%zz=1", "bad %-escape in a name");
	form_bad("ok=1&a%=1", "bad %-escape in a name");
	/* a trailing '%' cut off by len, the byte after it not counted */
	form_bad_n("a=%41", 4, "bad %-escape");
	u_assert_no_leaks();
}

Test(form, nul_bytes_are_refused)
{
	form_bad("a=%00", "NUL");
	form_bad("%00=1", "NUL");
	form_bad_n("a=1\0b", 5, "NUL");
}

Test(form, an_empty_name_is_refused)
{
	form_bad("=1", "empty name");
	form_bad("a=1&=2", "empty name");
	form_bad("=", "empty name");
}

Test(form, invalid_utf8_once_decoded_is_refused)
{
	form_bad("a=%C3%28", "not UTF-8");      /* a lead byte, then no continuation */
	form_bad("a=%C0%AF", "not UTF-8");      /* overlong '/' */
	form_bad("a=%ED%A0%80", "not UTF-8");   /* a surrogate */
	form_bad("a=%FF", "not UTF-8");
	form_bad("a=%C3", "not UTF-8");         /* truncated sequence */
	form_bad("%C3%28=1", "a name is not UTF-8");
	form_bad("a=\xC3\x28", "not UTF-8");    /* raw bytes, not only escapes */
	u_assert_no_leaks();
}

Test(form, a_failure_after_good_pairs_frees_them)
{
	/* under ASan a leak of the pairs already built fails the run */
	form_bad("a=1&b=2&c=%zz", "bad %-escape");
	u_assert_no_leaks();
}

Test(form, a_small_error_buffer_is_truncated)
{
	char err[8];
	cJSON *o = NULL;

	memset(err, 'x', sizeof(err));
	cr_assert_eq(form_parse("a=%zz", 5, &o, err, sizeof(err)), -1);
	cr_assert_eq(strlen(err), sizeof(err) - 1);
}
