/*
 * Sender verification in the real daemon: a hook with "verify" runs its
 * chain only for a request signed with its secret (GitHub's published
 * vector), answers 401 with a JSON reason otherwise, logs it, and a reload
 * re-reads a rotated secret file.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(verify_http, .fini = hd_suite_teardown);

#define GH_SIG "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

/* POST `body` to `path` with one extra header line (NULL: none). */
static void post_with(struct hd *d, const char *path, const char *body, const char *header,
		      struct hd_resp *r)
{
	char url[256];
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;

	memset(r, 0, sizeof(*r));
	cr_assert_not_null(c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", d->port, path);
	h = curl_slist_append(h, "Content-Type: application/json");
	if (header)
		h = curl_slist_append(h, header);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L * hd_scale());
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hd_curl_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (!r->body)
		r->body = calloc(1, 1);
}

static void write_secret(struct hd *d, const char *text)
{
	char path[400];
	FILE *f;

	snprintf(path, sizeof(path), "%s/gh.secret", d->dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

/* The body must be JSON for the chain, and GitHub's vector signs the text
 * "Hello, World!": the check runs on the raw bytes before any parse, so a
 * verified non-JSON body gets 400, an unverified one 401. */
Test(verify_http, github_signature_gates_the_chain, .timeout = 60)
{
	static struct hd d;
	struct hd_resp r;

	hd_prepare(&d, "\"hooks\": {\"echo\": {\"verify\": {\"scheme\": \"github\", "
		       "\"secret_file\": \"gh.secret\"}}}", (const char *[]){"echo", NULL});
	write_secret(&d, "It's a Secret to Everybody\n");
	hd_launch_or_fail(&d);

	post_with(&d, "/hooks/echo", "Hello, World!", "X-Hub-Signature-256: " GH_SIG, &r);
	cr_assert_eq(r.status, 400, "a verified request reaches the JSON parse: %ld %s",
		     r.status, r.body);
	hd_resp_free(&r);

	post_with(&d, "/hooks/echo", "Hello, World?", "X-Hub-Signature-256: " GH_SIG, &r);
	cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "sender verification failed (github)") &&
		  strstr(r.body, "does not match"), "%s", r.body);
	cr_assert(strstr(r.body, "\"hook\":\"echo\""), "%s", r.body);
	hd_resp_free(&r);

	post_with(&d, "/hooks/echo", "{\"a\":1}", NULL, &r);
	cr_assert_eq(r.status, 401);
	cr_assert(strstr(r.body, "missing X-Hub-Signature-256"), "%s", r.body);
	hd_resp_free(&r);
	cr_assert(hd_wait_log(&d, "hook echo: sender verification failed (github)", 2, 5000));

	/* a hook without verify is not affected */
	hd_post(&d, "/hooks/echo_unverified", "{}", &r);
	cr_assert_eq(r.status, 404);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

/* A JSON body signed with a secret computed here: 200 through the chain;
 * after the secret file is rotated (the new secret only) and a reload, the
 * old signature is refused. */
Test(verify_http, a_reload_rereads_a_rotated_secret, .timeout = 60)
{
	static struct hd d;
	struct hd_resp r;
	/* HMAC-SHA256 of {"a":1} under "It's a Secret to Everybody" */
	char cmd[512], sig[128] = "", header[200];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "printf '%%s' '{\"a\":1}' | openssl dgst -sha256 -hmac "
		 "\"It's a Secret to Everybody\" -r | cut -d' ' -f1");
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_not_null(fgets(sig, sizeof(sig), p));
	pclose(p);
	sig[strcspn(sig, "\n")] = '\0';
	cr_assert_eq(strlen(sig), 64, "openssl gave \"%s\"", sig);
	snprintf(header, sizeof(header), "X-Hub-Signature-256: sha256=%s", sig);

	hd_prepare(&d, "\"hooks\": {\"echo\": {\"verify\": {\"scheme\": \"github\", "
		       "\"secret_file\": \"gh.secret\"}}}", (const char *[]){"echo", NULL});
	write_secret(&d, "It's a Secret to Everybody\n");
	hd_launch_or_fail(&d);
	post_with(&d, "/hooks/echo", "{\"a\":1}", header, &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	cr_assert_str_eq(r.body, "{\"a\":1}\n");
	hd_resp_free(&r);

	write_secret(&d, "a brand new secret\n");
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 2, 10000));
	post_with(&d, "/hooks/echo", "{\"a\":1}", header, &r);
	cr_assert_eq(r.status, 401, "the old secret still verifies after the reload: %ld %s",
		     r.status, r.body);
	hd_resp_free(&r);

	/* an unreadable secret file fails the reload: the old generation stays */
	char path[400];
	snprintf(path, sizeof(path), "%s/gh.secret", d.dir);
	cr_assert_eq(unlink(path), 0);
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_log(&d, "reload failed", 1, 10000));
	cr_assert(hd_log_count(&d, "hooks.echo.verify.secret_file: cannot read") >= 1);
	cr_assert_eq(hd_stop(&d), 0);
}
