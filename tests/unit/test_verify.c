/*
 * verify: the providers' published vectors (GitHub's docs, Standard
 * Webhooks'), signatures made here with `openssl dgst` (Stripe, Slack, the
 * generic HMAC in hex and base64), and the ways a request must fail: wrong
 * secret, one body byte changed, stale and future timestamps, missing or
 * malformed headers; several signatures of which one is valid; a rotated
 * secret; config errors naming the key.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../../host/verify.h"

TestSuite(verify);

#define HDRS 6
struct hdrs {
	const char *name[HDRS], *value[HDRS];
};

static const char *lookup(void *arg, const char *name)
{
	struct hdrs *h = arg;

	for (int i = 0; i < HDRS && h->name[i]; i++)
		if (strcasecmp(h->name[i], name) == 0)
			return h->value[i];
	return NULL;
}

/* A verify from JSON text; the secrets come from $HOOKD_TEST_SECRET. */
static struct verify *make(const char *json, const char *secrets)
{
	char err[600] = "";
	struct verify *v = NULL;
	cJSON *o = cJSON_Parse(json);

	cr_assert_not_null(o, "%s", json);
	cr_assert_eq(setenv("HOOKD_TEST_SECRET", secrets, 1), 0);
	cr_assert_eq(verify_parse(o, "hooks.h.verify", "/etc/hookd/hookd.json", &v, err,
				  sizeof(err)), 0, "%s", err);
	cJSON_Delete(o);
	return v;
}

static void expect_fail(const struct verify *v, struct hdrs *h, const char *body, time_t now,
			const char *needle)
{
	char why[256] = "";

	cr_assert_eq(verify_check(v, lookup, h, body, strlen(body), now, why, sizeof(why)), -1,
		     "accepted (wanted: %s)", needle);
	cr_assert(strstr(why, needle), "reason \"%s\" lacks \"%s\"", why, needle);
}

static void expect_ok(const struct verify *v, struct hdrs *h, const char *body, time_t now)
{
	char why[256] = "";

	cr_assert_eq(verify_check(v, lookup, h, body, strlen(body), now, why, sizeof(why)), 0,
		     "refused: %s", why);
}

/* `openssl dgst -<alg> -hmac KEY` of `data`, hex (or base64 when b64). */
static void openssl_hmac(const char *alg, const char *key, const char *data, int b64, char *out,
			 size_t len)
{
	char path[] = "/tmp/hookd-verify-XXXXXX", cmd[1024];
	int fd = mkstemp(path);
	FILE *p;

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
	if (b64)
		snprintf(cmd, sizeof(cmd), "openssl dgst -%s -hmac '%s' -binary < %s | base64 -w0",
			 alg, key, path);
	else
		snprintf(cmd, sizeof(cmd), "openssl dgst -%s -hmac '%s' -r < %s | cut -d' ' -f1",
			 alg, key, path);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_not_null(fgets(out, (int)len, p));
	pclose(p);
	unlink(path);
	out[strcspn(out, "\n")] = '\0';
	cr_assert_gt(strlen(out), 20, "openssl gave \"%s\"", out);
}

Test(verify, github_published_vector)
{
	struct verify *v = make("{\"scheme\": \"github\", \"secret_env\": \"HOOKD_TEST_SECRET\"}",
				"It's a Secret to Everybody");
	struct hdrs h = {{"x-hub-signature-256"},
			 {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}};

	expect_ok(v, &h, "Hello, World!", 0);
	expect_fail(v, &h, "Hello, World?", 0, "does not match");
	h.value[0] = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1";
	expect_fail(v, &h, "Hello, World!", 0, "malformed");
	h.value[0] = "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
	expect_fail(v, &h, "Hello, World!", 0, "malformed");
	h.name[0] = "X-Other";
	expect_fail(v, &h, "Hello, World!", 0, "missing X-Hub-Signature-256");
	verify_free(v);

	/* a rotated secret: the old one still verifies, so does the new */
	v = make("{\"scheme\": \"github\", \"secret_env\": \"HOOKD_TEST_SECRET\"}",
		 "new secret\nIt's a Secret to Everybody\n");
	h.name[0] = "X-Hub-Signature-256";
	h.value[0] = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
	expect_ok(v, &h, "Hello, World!", 0);
	verify_free(v);
	v = make("{\"scheme\": \"github\", \"secret_env\": \"HOOKD_TEST_SECRET\"}", "wrong");
	expect_fail(v, &h, "Hello, World!", 0, "does not match");
	verify_free(v);
}

/* Standard Webhooks' test vector (the one its reference libraries use). */
Test(verify, standard_webhooks_published_vector)
{
	struct verify *v = make("{\"scheme\": \"standard\", \"secret_env\": \"HOOKD_TEST_SECRET\"}",
				"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
	struct hdrs h = {{"webhook-id", "webhook-timestamp", "webhook-signature"},
			 {"msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
			  "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}};
	const char *body = "{\"test\": 2432232314}";

	expect_ok(v, &h, body, 1614265330);
	/* several signatures, one valid (rotation on the sender's side) */
	h.value[2] = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "
		     "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
	expect_ok(v, &h, body, 1614265330);
	h.value[2] = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
	expect_fail(v, &h, body, 1614265330, "no v1 signature");
	h.value[2] = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
	expect_fail(v, &h, "{\"test\": 2432232315}", 1614265330, "no v1 signature");
	expect_fail(v, &h, body, 1614265330 + 301, "old");
	expect_fail(v, &h, body, 1614265330 - 301, "future");
	h.value[1] = "16142653x0";
	expect_fail(v, &h, body, 1614265330, "malformed timestamp");
	h.value[1] = "1614265330";
	h.value[2] = "v2,abc";
	expect_fail(v, &h, body, 1614265330, "malformed webhook-signature");
	h.name[0] = "x";
	expect_fail(v, &h, body, 1614265330, "missing webhook-id");
	verify_free(v);
}

Test(verify, stripe_signed_with_openssl)
{
	struct verify *v = make("{\"scheme\": \"stripe\", \"secret_env\": \"HOOKD_TEST_SECRET\", "
				"\"tolerance_s\": 300}", "whsec_test_stripe_secret");
	const char *body = "{\"id\":\"evt_1\",\"object\":\"event\"}";
	char sig[200], signed_payload[400], header[600];
	struct hdrs h = {{"Stripe-Signature"}, {header}};

	snprintf(signed_payload, sizeof(signed_payload), "1700000000.%s", body);
	openssl_hmac("sha256", "whsec_test_stripe_secret", signed_payload, 0, sig, sizeof(sig));
	snprintf(header, sizeof(header), "t=1700000000,v1=%s,v0=6ffbb59b2300aae63f27240606", sig);
	expect_ok(v, &h, body, 1700000100);
	/* several v1 (Stripe signs with each active secret), one valid */
	snprintf(header, sizeof(header), "t=1700000000,v1=%064d,v1=%s", 0, sig);
	expect_ok(v, &h, body, 1700000100);
	expect_fail(v, &h, "{\"id\":\"evt_2\",\"object\":\"event\"}", 1700000100, "no v1");
	expect_fail(v, &h, body, 1700000000 + 301, "old");
	snprintf(header, sizeof(header), "v1=%s", sig);
	expect_fail(v, &h, body, 1700000100, "no t=");
	snprintf(header, sizeof(header), "t=1700000000");
	expect_fail(v, &h, body, 1700000100, "no v1=");
	verify_free(v);
}

Test(verify, slack_signed_with_openssl)
{
	struct verify *v = make("{\"scheme\": \"slack\", \"secret_env\": \"HOOKD_TEST_SECRET\"}",
				"8f742231b10e8888abcd99yyyzzz85a5");
	const char *body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&command=%2Fweather";
	char sig[200], base[400], header[300];
	struct hdrs h = {{"X-Slack-Request-Timestamp", "X-Slack-Signature"}, {"1531420618", header}};

	snprintf(base, sizeof(base), "v0:1531420618:%s", body);
	openssl_hmac("sha256", "8f742231b10e8888abcd99yyyzzz85a5", base, 0, sig, sizeof(sig));
	snprintf(header, sizeof(header), "v0=%s", sig);
	expect_ok(v, &h, body, 1531420618 + 60);
	expect_fail(v, &h, body, 1531420618 + 600, "old");
	h.value[0] = "1531420619";
	expect_fail(v, &h, body, 1531420618, "does not match");
	snprintf(header, sizeof(header), "v1=%s", sig);
	expect_fail(v, &h, body, 1531420619, "malformed X-Slack-Signature");
	verify_free(v);
}

Test(verify, generic_hmac_hex_and_base64)
{
	const char *body = "{\"event\":\"ping\"}";
	char sig[200], header[300];
	struct verify *v = make("{\"scheme\": \"hmac\", \"secret_env\": \"HOOKD_TEST_SECRET\", "
				"\"header\": \"X-Signature\", \"algorithm\": \"sha1\", "
				"\"prefix\": \"sha1=\"}", "k1");
	struct hdrs h = {{"x-signature"}, {header}};

	openssl_hmac("sha1", "k1", body, 0, sig, sizeof(sig));
	snprintf(header, sizeof(header), "sha1=%s", sig);
	expect_ok(v, &h, body, 0);
	expect_fail(v, &h, "{\"event\":\"pong\"}", 0, "does not match");
	verify_free(v);

	v = make("{\"scheme\": \"hmac\", \"secret_env\": \"HOOKD_TEST_SECRET\", "
		 "\"header\": \"X-Sig\", \"algorithm\": \"sha512\", \"encoding\": \"base64\"}", "k2");
	h.name[0] = "X-Sig";
	openssl_hmac("sha512", "k2", body, 1, sig, sizeof(sig));
	snprintf(header, sizeof(header), "%s", sig);
	expect_ok(v, &h, body, 0);
	header[3] ^= 1;
	expect_fail(v, &h, body, 0, "X-Sig");
	verify_free(v);
}

Test(verify, secret_file_relative_to_the_config)
{
	char dir[] = "/tmp/hookd-verify-dir-XXXXXX", path[300], cfg[300], err[600] = "";
	struct verify *v = NULL;
	FILE *f;
	cJSON *o = cJSON_Parse("{\"scheme\": \"github\", \"secret_file\": \"gh.secret\"}");

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/gh.secret", dir);
	snprintf(cfg, sizeof(cfg), "%s/hookd.json", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("It's a Secret to Everybody\n", f);
	fclose(f);
	cr_assert_eq(verify_parse(o, "hooks.h.verify", cfg, &v, err, sizeof(err)), 0, "%s", err);
	struct hdrs h = {{"X-Hub-Signature-256"},
			 {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}};
	expect_ok(v, &h, "Hello, World!", 0);
	verify_free(v);
	unlink(path);
	cr_assert_eq(verify_parse(o, "hooks.h.verify", cfg, &v, err, sizeof(err)), -1);
	cr_assert(strstr(err, "hooks.h.verify.secret_file: cannot read") && strstr(err, path),
		  "%s", err);
	cJSON_Delete(o);
	rmdir(dir);
}

static void parse_error(const char *json, const char *needle)
{
	char err[600] = "";
	struct verify *v = NULL;
	cJSON *o = cJSON_Parse(json);

	cr_assert_not_null(o, "%s", json);
	setenv("HOOKD_TEST_SECRET", "s", 1);
	cr_assert_eq(verify_parse(o, "hooks.h.verify", "/x/c.json", &v, err, sizeof(err)), -1,
		     "accepted %s", json);
	cr_assert_null(v);
	cr_assert(strstr(err, needle), "\"%s\" lacks \"%s\"", err, needle);
	cJSON_Delete(o);
}

Test(verify, config_errors_name_the_key)
{
	parse_error("{\"secret_env\": \"HOOKD_TEST_SECRET\"}", "hooks.h.verify.scheme: missing");
	parse_error("{\"scheme\": \"gitlab\", \"secret_env\": \"HOOKD_TEST_SECRET\"}",
		    "hooks.h.verify.scheme: expected github");
	parse_error("{\"scheme\": \"github\"}", "exactly one of secret_file and secret_env");
	parse_error("{\"scheme\": \"github\", \"secret_env\": \"HOOKD_NO_SUCH_VARIABLE_X\"}",
		    "is not set");
	parse_error("{\"scheme\": \"github\", \"secret_env\": \"HOOKD_TEST_SECRET\", \"x\": 1}",
		    "hooks.h.verify.x: unknown key");
	parse_error("{\"scheme\": \"github\", \"secret_env\": \"HOOKD_TEST_SECRET\", "
		    "\"header\": \"X\"}", "only for scheme hmac");
	parse_error("{\"scheme\": \"hmac\", \"secret_env\": \"HOOKD_TEST_SECRET\"}",
		    "hooks.h.verify.header");
	parse_error("{\"scheme\": \"hmac\", \"secret_env\": \"HOOKD_TEST_SECRET\", "
		    "\"header\": \"X\", \"algorithm\": \"md5\"}", "sha1, sha256 or sha512");
	parse_error("{\"scheme\": \"standard\", \"secret_env\": \"HOOKD_TEST_SECRET\"}",
		    "whsec_");
	parse_error("{\"scheme\": \"stripe\", \"secret_env\": \"HOOKD_TEST_SECRET\", "
		    "\"tolerance_s\": 0}", "tolerance_s");
}
