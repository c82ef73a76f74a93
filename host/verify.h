/*
 * verify -- sender verification of a webhook request, before any plugin
 * runs: the signature schemes of GitHub, Stripe, Slack, Standard Webhooks
 * and a generic HMAC, each checked with OpenSSL's HMAC and compared in
 * constant time (CRYPTO_memcmp). Several secrets may be configured (secret
 * rotation): a request signed with any of them passes.
 *
 * A `struct verify` is built from a hook's "verify" config object (the
 * secrets read when the config is loaded, so a reload re-reads them) and is
 * immutable afterwards: any thread may check requests against it.
 */
#ifndef HOOKD_VERIFY_H
#define HOOKD_VERIFY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/types.h>

enum verify_scheme {
	VERIFY_GITHUB,   /* X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)> */
	VERIFY_STRIPE,   /* Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256(ts.body)>[,v1=...] */
	VERIFY_SLACK,    /* X-Slack-Request-Timestamp + X-Slack-Signature: v0=<hex HMAC(v0:ts:body)> */
	VERIFY_STANDARD, /* webhook-id, webhook-timestamp, webhook-signature: v1,<b64 HMAC(id.ts.body)> ... */
	VERIFY_HMAC,     /* a header of your choice: [prefix]<hex|base64 HMAC-sha1/256/512(body)> */
};

#define VERIFY_MAX_SECRETS 16
#define VERIFY_MAX_KEY 1024

struct verify {
	enum verify_scheme scheme;
	unsigned char key[VERIFY_MAX_SECRETS][VERIFY_MAX_KEY];
	size_t keylen[VERIFY_MAX_SECRETS];
	unsigned nkeys;
	uint32_t tolerance_s;    /* timestamped schemes: how old or new a request may be */
	/* VERIFY_HMAC */
	char header[128];
	int algorithm;           /* 1, 256 or 512 (SHA-1, SHA-256, SHA-512) */
	int base64;              /* the signature is base64 (else hex) */
	char prefix[64];         /* e.g. "sha256=": stripped before decoding */
	EVP_MAC *mac;            /* OpenSSL's HMAC, fetched once (a fetch per call
	                          * cost about as much as the HMAC itself) */
	EVP_MAC_CTX *keyed[VERIFY_MAX_SECRETS]; /* one per secret, keyed once: a call
	                          * duplicates it (read-only, so any thread may)
	                          * instead of hashing the key again */
};

/* Build *out from a hook's "verify" object `v` (key names it in errors, for
 * example "hooks.github.verify"); relative secret_file paths are relative to
 * the directory of `cfgpath`. Returns 0 and *out (verify_free it), or -1
 * with one line in err naming the key. */
int verify_parse(const cJSON *v, const char *key, const char *cfgpath, struct verify **out,
		 char *err, size_t errlen);

/* Wipe the secrets and free v. NULL: nothing. */
void verify_free(struct verify *v);

/* A request's header by (case-insensitive) name, or NULL. */
typedef const char *(*verify_header_fn)(void *arg, const char *name);

/* Check one request: its headers, its raw body and the current time `now`.
 * Returns 0 when a configured secret signed it, else -1 with the reason in
 * why (one line; never a secret nor a signature). Any thread. */
int verify_check(const struct verify *v, verify_header_fn header, void *arg, const void *body,
		 size_t len, time_t now, char *why, size_t whylen);

/* The scheme's name ("github", ...). */
const char *verify_scheme_name(enum verify_scheme s);

#endif
