/*
 * verify -- see verify.h.
 */
#include "verify.h"
#include "hex.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#define VERIFY_MAX_MAC 64 /* SHA-512 */

const char *verify_scheme_name(enum verify_scheme s)
{
	static const char *const names[] = {"github", "stripe", "slack", "standard", "hmac"};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

/* ---- encodings ------------------------------------------------------- */


/* Decode `n` hex digits; returns the byte count or -1. */
static int hex_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
	if (n % 2 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n; i += 2) {
		int hi = hex_digit((unsigned char)s[i]), lo = hex_digit((unsigned char)s[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	return (int)(n / 2);
}

/* Decode `n` characters of standard base64 (with padding); returns the
 * byte count or -1. */
static int b64_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
	unsigned char tmp[VERIFY_MAX_KEY + 4];
	int len, pad = 0;

	if (n == 0 || n % 4 || n / 4 * 3 > sizeof(tmp))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/' &&
		    !(s[i] == '=' && i >= n - 2))
			return -1;
	if (s[n - 1] == '=')
		pad++;
	if (s[n - 2] == '=')
		pad++;
	len = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
	if (len < 0 || len - pad < 0 || (size_t)(len - pad) > cap)
		return -1;
	memcpy(out, tmp, (size_t)(len - pad));
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return len - pad;
}

/* ---- HMAC -------------------------------------------------------------- */

struct part {
	const void *p;
	size_t n;
};

/* The HMAC of the concatenated parts under the key `keyed` was set up
 * with (key_contexts); returns its length or -1. */
static int hmac(const EVP_MAC_CTX *keyed, const struct part *parts, int nparts,
		unsigned char *out)
{
	/* EVP_MAC_CTX_dup takes a const ctx and only reads it (and bumps
	 * atomic reference counts): loops may dup one at once (openssl-threads(7):
	 * "thread-safe as long as the API's being invoked don't modify the object") */
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(keyed);
	size_t outl = 0;
	int rc = -1;

	if (!ctx)
		return -1;
	for (int i = 0; i < nparts; i++)
		if (parts[i].n && !EVP_MAC_update(ctx, parts[i].p, parts[i].n))
			goto out;
	if (EVP_MAC_final(ctx, out, &outl, VERIFY_MAX_MAC))
		rc = (int)outl;
out:
	EVP_MAC_CTX_free(ctx);
	return rc;
}

/* Key one HMAC context per secret, with the scheme's digest. 0 or -1. */
static int key_contexts(struct verify *v)
{
	int alg = v->scheme == VERIFY_HMAC ? v->algorithm : 256;
	char digest[16];
	OSSL_PARAM params[2];

	snprintf(digest, sizeof(digest), alg == 1 ? "SHA1" : alg == 512 ? "SHA512" : "SHA256");
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	for (unsigned k = 0; k < v->nkeys; k++) {
		if (!(v->keyed[k] = EVP_MAC_CTX_new(v->mac)) ||
		    !EVP_MAC_init(v->keyed[k], v->key[k], v->keylen[k], params))
			return -1;
	}
	return 0;
}

/* Does any key's HMAC of parts equal sig (sig_len bytes)? */
static bool any_key_matches(const struct verify *v, const struct part *parts, int n,
			    const unsigned char *sig, int sig_len)
{
	unsigned char mac[VERIFY_MAX_MAC];
	bool ok = false;

	for (unsigned k = 0; k < v->nkeys && !ok; k++) {
		int len = hmac(v->keyed[k], parts, n, mac);
		ok = len > 0 && len == sig_len && CRYPTO_memcmp(mac, sig, (size_t)len) == 0;
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok;
}

/* A list of signatures in one header, entries separated by `sep` (runs of
 * it skipped): does any entry "<prefix><hex|b64>" match the HMAC of parts
 * under any key? *nsig counts the entries with that prefix (none: the
 * header is malformed rather than wrong). Stripe: ",", "v1="; Standard
 * Webhooks: " ", "v1,". */
static bool any_listed_matches(const struct verify *v, const char *hv, const char *sep,
			       const char *prefix, bool b64, const struct part *parts, int n,
			       int *nsig)
{
	size_t pl = strlen(prefix);

	for (const char *p = hv + strspn(hv, sep); *p; p += strspn(p, sep)) {
		size_t len = strcspn(p, sep);
		unsigned char sig[VERIFY_MAX_MAC];
		if (len > pl && strncmp(p, prefix, pl) == 0) {
			int sl = b64 ? b64_decode(p + pl, len - pl, sig, sizeof(sig))
				     : hex_decode(p + pl, len - pl, sig, sizeof(sig));
			(*nsig)++;
			if (sl > 0 && any_key_matches(v, parts, n, sig, sl))
				return true;
		}
		p += len;
	}
	return false;
}

/* A Unix timestamp of digits only within tolerance of now. */
static int check_time(const struct verify *v, const char *ts, size_t n, time_t now, char *why,
		      size_t whylen)
{
	long long t = 0;

	if (n == 0 || n > 12) {
		snprintf(why, whylen, "malformed timestamp");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (ts[i] < '0' || ts[i] > '9') {
			snprintf(why, whylen, "malformed timestamp");
			return -1;
		}
		t = t * 10 + (ts[i] - '0');
	}
	if (t < (long long)now - v->tolerance_s) {
		snprintf(why, whylen, "timestamp %lld s old, over the tolerance of %u s",
			 (long long)now - t, v->tolerance_s);
		return -1;
	}
	if (t > (long long)now + v->tolerance_s) {
		snprintf(why, whylen, "timestamp %lld s in the future, over the tolerance of %u s",
			 t - (long long)now, v->tolerance_s);
		return -1;
	}
	return 0;
}

/* ---- schemes ------------------------------------------------------------ */

static int no_header(const char *name, char *why, size_t whylen)
{
	snprintf(why, whylen, "missing %s header", name);
	return -1;
}

/* "[prefix]<hex|b64>" in one header, signed over the body. */
static int check_simple(const struct verify *v, const char *hname, const char *hv,
			const char *prefix, int b64, const void *body, size_t len,
			char *why, size_t whylen)
{
	unsigned char sig[VERIFY_MAX_MAC];
	size_t pl = strlen(prefix);
	struct part parts[1] = {{body, len}};
	int n;

	if (!hv)
		return no_header(hname, why, whylen);
	if (strncmp(hv, prefix, pl) != 0) {
		snprintf(why, whylen, "malformed %s header (expected \"%s...\")", hname, prefix);
		return -1;
	}
	hv += pl;
	n = b64 ? b64_decode(hv, strlen(hv), sig, sizeof(sig))
		: hex_decode(hv, strlen(hv), sig, sizeof(sig));
	if (n <= 0) {
		snprintf(why, whylen, "malformed %s header (not %s)", hname, b64 ? "base64" : "hex");
		return -1;
	}
	if (any_key_matches(v, parts, 1, sig, n))
		return 0;
	snprintf(why, whylen, "%s does not match the body signed with any configured secret", hname);
	return -1;
}

/* Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>...][,v0=...] */
static int check_stripe(const struct verify *v, const char *hv, const void *body, size_t len,
			time_t now, char *why, size_t whylen)
{
	const char *ts = NULL, *p;
	size_t tslen = 0;
	int nsig = 0;

	if (!hv)
		return no_header("Stripe-Signature", why, whylen);
	for (p = hv; *p;) {
		size_t n = strcspn(p, ",");
		if (n > 2 && strncmp(p, "t=", 2) == 0) {
			ts = p + 2;
			tslen = n - 2;
		}
		p += n + (p[n] == ',');
	}
	if (!ts) {
		snprintf(why, whylen, "malformed Stripe-Signature header (no t=)");
		return -1;
	}
	if (check_time(v, ts, tslen, now, why, whylen) < 0)
		return -1;
	struct part parts[3] = {{ts, tslen}, {".", 1}, {body, len}};
	if (any_listed_matches(v, hv, ",", "v1=", false, parts, 3, &nsig))
		return 0;
	snprintf(why, whylen, nsig ? "no v1 signature of Stripe-Signature matches any configured "
				     "secret" : "malformed Stripe-Signature header (no v1=)");
	return -1;
}

static int check_slack(const struct verify *v, verify_header_fn header, void *arg,
		       const void *body, size_t len, time_t now, char *why, size_t whylen)
{
	const char *ts = header(arg, "X-Slack-Request-Timestamp");
	const char *hv = header(arg, "X-Slack-Signature");
	unsigned char sig[VERIFY_MAX_MAC];
	int n;

	if (!ts)
		return no_header("X-Slack-Request-Timestamp", why, whylen);
	if (!hv)
		return no_header("X-Slack-Signature", why, whylen);
	if (check_time(v, ts, strlen(ts), now, why, whylen) < 0)
		return -1;
	if (strncmp(hv, "v0=", 3) != 0 ||
	    (n = hex_decode(hv + 3, strlen(hv + 3), sig, sizeof(sig))) <= 0) {
		snprintf(why, whylen, "malformed X-Slack-Signature header (expected \"v0=<hex>\")");
		return -1;
	}
	struct part parts[4] = {{"v0:", 3}, {ts, strlen(ts)}, {":", 1}, {body, len}};
	if (any_key_matches(v, parts, 4, sig, n))
		return 0;
	snprintf(why, whylen, "X-Slack-Signature does not match any configured secret");
	return -1;
}

/* Standard Webhooks 1.0: webhook-signature is space-separated "v1,<b64>". */
static int check_standard(const struct verify *v, verify_header_fn header, void *arg,
			  const void *body, size_t len, time_t now, char *why, size_t whylen)
{
	const char *id = header(arg, "webhook-id"), *ts = header(arg, "webhook-timestamp");
	const char *hv = header(arg, "webhook-signature");
	int nsig = 0;

	if (!id)
		return no_header("webhook-id", why, whylen);
	if (!ts)
		return no_header("webhook-timestamp", why, whylen);
	if (!hv)
		return no_header("webhook-signature", why, whylen);
	if (check_time(v, ts, strlen(ts), now, why, whylen) < 0)
		return -1;
	struct part parts[5] = {{id, strlen(id)}, {".", 1}, {ts, strlen(ts)}, {".", 1}, {body, len}};
	if (any_listed_matches(v, hv, " ", "v1,", true, parts, 5, &nsig))
		return 0;
	snprintf(why, whylen, nsig ? "no v1 signature of webhook-signature matches any configured "
				     "secret" : "malformed webhook-signature header (no \"v1,\")");
	return -1;
}

int verify_check(const struct verify *v, verify_header_fn header, void *arg, const void *body,
		 size_t len, time_t now, char *why, size_t whylen)
{
	switch (v->scheme) {
	case VERIFY_GITHUB:
		return check_simple(v, "X-Hub-Signature-256", header(arg, "X-Hub-Signature-256"),
				    "sha256=", 0, body, len, why, whylen);
	case VERIFY_STRIPE:
		return check_stripe(v, header(arg, "Stripe-Signature"), body, len, now, why, whylen);
	case VERIFY_SLACK:
		return check_slack(v, header, arg, body, len, now, why, whylen);
	case VERIFY_STANDARD:
		return check_standard(v, header, arg, body, len, now, why, whylen);
	case VERIFY_HMAC:
		return check_simple(v, v->header, header(arg, v->header), v->prefix, v->base64,
				    body, len, why, whylen);
	}
	snprintf(why, whylen, "unknown scheme");
	return -1;
}

/* ---- config ------------------------------------------------------------- */

/* Add one secret (a line of the file or the variable). Standard Webhooks
 * keys are "whsec_<base64>": the key is the decoded bytes. */
static int add_secret(struct verify *v, const char *s, size_t n, const char *key, char *err,
		      size_t errlen)
{
	int len;

	while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (!n)
		return 0;
	if (v->nkeys == VERIFY_MAX_SECRETS) {
		snprintf(err, errlen, "%s: more than %d secrets", key, VERIFY_MAX_SECRETS);
		return -1;
	}
	if (v->scheme == VERIFY_STANDARD) {
		if (n <= 6 || strncmp(s, "whsec_", 6) != 0 ||
		    (len = b64_decode(s + 6, n - 6, v->key[v->nkeys], VERIFY_MAX_KEY)) <= 0) {
			snprintf(err, errlen, "%s: a Standard Webhooks secret is \"whsec_\" and base64 "
				 "(secret %u is not)", key, v->nkeys + 1);
			return -1;
		}
		v->keylen[v->nkeys++] = (size_t)len;
		return 0;
	}
	if (n > VERIFY_MAX_KEY) {
		snprintf(err, errlen, "%s: secret %u is longer than %d bytes", key, v->nkeys + 1,
			 VERIFY_MAX_KEY);
		return -1;
	}
	memcpy(v->key[v->nkeys], s, n);
	v->keylen[v->nkeys++] = n;
	return 0;
}

static int add_secrets(struct verify *v, const char *text, const char *key, char *err,
		       size_t errlen)
{
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		if (add_secret(v, p, n, key, err, errlen) < 0)
			return -1;
		p += n + (p[n] == '\n');
	}
	if (!v->nkeys) {
		snprintf(err, errlen, "%s: no secret in it", key);
		return -1;
	}
	return 0;
}

static char *read_secret_file(const char *path, char *err, size_t errlen, const char *key)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n = 0;

	if (!f) {
		snprintf(err, errlen, "%s: cannot read %s: %s", key, path, strerror(errno));
		return NULL;
	}
	buf = malloc(VERIFY_MAX_SECRETS * (VERIFY_MAX_KEY + 2) + 1);
	if (buf) {
		n = fread(buf, 1, VERIFY_MAX_SECRETS * (VERIFY_MAX_KEY + 2), f);
		buf[n] = '\0';
		if (memchr(buf, '\0', n)) {
			snprintf(err, errlen, "%s: %s holds a NUL byte", key, path);
			free(buf);
			buf = NULL;
		}
	} else {
		snprintf(err, errlen, "%s: out of memory", key);
	}
	fclose(f);
	return buf;
}

static const char *str_member(const cJSON *v, const char *name)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(v, name);

	return cJSON_IsString(m) ? m->valuestring : NULL;
}

int verify_parse(const cJSON *v, const char *key, const char *cfgpath, struct verify **out,
		 char *err, size_t errlen)
{
	static const char *const known[] = {"scheme", "secret_file", "secret_env", "tolerance_s",
					    "header", "algorithm", "encoding", "prefix"};
	struct verify *vf = NULL;
	const cJSON *k;
	const char *scheme, *file, *env;
	char *text = NULL;
	int rc = -1;

	*out = NULL;
	if (!cJSON_IsObject(v)) {
		snprintf(err, errlen, "%s: expected an object {\"scheme\": ..., \"secret_file\": ...}",
			 key);
		return -1;
	}
	cJSON_ArrayForEach(k, v)
	{
		bool ok = false;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok = ok || strcmp(k->string, known[i]) == 0;
		if (!ok) {
			snprintf(err, errlen, "%s.%s: unknown key (expected scheme, secret_file, "
				 "secret_env, tolerance_s, header, algorithm, encoding, prefix)", key,
				 k->string);
			return -1;
		}
		if (strcmp(k->string, "tolerance_s") != 0 && !cJSON_IsString(k)) {
			snprintf(err, errlen, "%s.%s: expected a string", key, k->string);
			return -1;
		}
	}
	if (!(vf = calloc(1, sizeof(*vf)))) {
		snprintf(err, errlen, "%s: out of memory", key);
		return -1;
	}
	vf->tolerance_s = 300;
	if (!(vf->mac = EVP_MAC_fetch(NULL, "HMAC", NULL))) {
		snprintf(err, errlen, "%s: OpenSSL has no HMAC", key);
		goto out;
	}
	scheme = str_member(v, "scheme");
	if (!scheme) {
		snprintf(err, errlen, "%s.scheme: missing (github, stripe, slack, standard or hmac)",
			 key);
		goto out;
	}
	if (strcmp(scheme, "github") == 0)
		vf->scheme = VERIFY_GITHUB;
	else if (strcmp(scheme, "stripe") == 0)
		vf->scheme = VERIFY_STRIPE;
	else if (strcmp(scheme, "slack") == 0)
		vf->scheme = VERIFY_SLACK;
	else if (strcmp(scheme, "standard") == 0)
		vf->scheme = VERIFY_STANDARD;
	else if (strcmp(scheme, "hmac") == 0)
		vf->scheme = VERIFY_HMAC;
	else {
		snprintf(err, errlen, "%s.scheme: expected github, stripe, slack, standard or hmac, "
			 "got \"%s\"", key, scheme);
		goto out;
	}
	if ((k = cJSON_GetObjectItemCaseSensitive(v, "tolerance_s"))) {
		if (!cJSON_IsNumber(k) || k->valuedouble < 1 || k->valuedouble > 86400 ||
		    k->valuedouble != (double)(uint32_t)k->valuedouble) {
			snprintf(err, errlen, "%s.tolerance_s: expected an integer between 1 and 86400",
				 key);
			goto out;
		}
		vf->tolerance_s = (uint32_t)k->valuedouble;
	}
	if (vf->scheme == VERIFY_HMAC) {
		const char *h = str_member(v, "header"), *alg = str_member(v, "algorithm");
		const char *enc = str_member(v, "encoding"), *pre = str_member(v, "prefix");
		if (!h || !h[0] || strlen(h) >= sizeof(vf->header)) {
			snprintf(err, errlen, "%s.header: the header that carries the signature "
				 "(required by scheme hmac)", key);
			goto out;
		}
		snprintf(vf->header, sizeof(vf->header), "%s", h);
		vf->algorithm = !alg || strcmp(alg, "sha256") == 0 ? 256
				: strcmp(alg, "sha1") == 0	   ? 1
				: strcmp(alg, "sha512") == 0	   ? 512
								   : 0;
		if (!vf->algorithm) {
			snprintf(err, errlen, "%s.algorithm: expected sha1, sha256 or sha512", key);
			goto out;
		}
		if (enc && strcmp(enc, "hex") != 0 && strcmp(enc, "base64") != 0) {
			snprintf(err, errlen, "%s.encoding: expected hex or base64", key);
			goto out;
		}
		vf->base64 = enc && strcmp(enc, "base64") == 0;
		if (pre && strlen(pre) >= sizeof(vf->prefix)) {
			snprintf(err, errlen, "%s.prefix: too long", key);
			goto out;
		}
		snprintf(vf->prefix, sizeof(vf->prefix), "%s", pre ? pre : "");
	} else {
		for (const char *const *o = (const char *const[]){"header", "algorithm", "encoding",
								    "prefix", NULL}; *o; o++) {
			if (cJSON_GetObjectItemCaseSensitive(v, *o)) {
				snprintf(err, errlen, "%s.%s: only for scheme hmac", key, *o);
				goto out;
			}
		}
	}
	file = str_member(v, "secret_file");
	env = str_member(v, "secret_env");
	if (!file == !env) {
		snprintf(err, errlen, "%s: give exactly one of secret_file and secret_env", key);
		goto out;
	}
	if (file) {
		char path[4096], skey[300];
		const char *slash = strrchr(cfgpath, '/');
		if (file[0] != '/' && slash)
			snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - cfgpath), cfgpath, file);
		else
			snprintf(path, sizeof(path), "%s", file);
		snprintf(skey, sizeof(skey), "%s.secret_file", key);
		if (!(text = read_secret_file(path, err, errlen, skey)) ||
		    add_secrets(vf, text, skey, err, errlen) < 0)
			goto out;
	} else {
		char skey[300];
		const char *val = getenv(env);
		snprintf(skey, sizeof(skey), "%s.secret_env", key);
		if (!val) {
			snprintf(err, errlen, "%s: the variable %s is not set", skey, env);
			goto out;
		}
		if (add_secrets(vf, val, skey, err, errlen) < 0)
			goto out;
	}
	if (key_contexts(vf) < 0) {
		snprintf(err, errlen, "%s: OpenSSL cannot set up HMAC-SHA%d with these secrets", key,
			 vf->scheme == VERIFY_HMAC ? vf->algorithm : 256);
		goto out;
	}
	*out = vf;
	vf = NULL;
	rc = 0;
out:
	if (text) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
	verify_free(vf);
	return rc;
}

void verify_free(struct verify *v)
{
	if (!v)
		return;
	for (unsigned k = 0; k < VERIFY_MAX_SECRETS; k++)
		EVP_MAC_CTX_free(v->keyed[k]); /* holds a copy of the key: cleansed by OpenSSL */
	EVP_MAC_free(v->mac);
	OPENSSL_cleanse(v, sizeof(*v));
	free(v);
}
