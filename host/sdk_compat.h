/*
 * sdk_compat -- the host's private copy of SDK layouts that plugins built
 * against an older HOOKD_ABI_MINOR still hand us, and their conversions to
 * and from the current ones. Never installed, never seen by plugins.
 *
 * ABI 1.1 (outbound HTTP without sizes): hookd_request and hookd_response
 * had no leading size, fetch_all took a contiguous array of requests and
 * its callback got a contiguous array of responses. The host knows a
 * plugin's minor from its descriptor and picks the layout by it; a 1.2+
 * request is read through its own `size` (at least SDK_REQUEST_MIN_1_2,
 * at most what the host knows).
 *
 * These structs are frozen: never edit them. A future minor that changes
 * a layout again adds its own block here.
 */
#ifndef HOOKD_SDK_COMPAT_H
#define HOOKD_SDK_COMPAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <hookd.h>

/* ---- ABI 1.1 --------------------------------------------------------- */

struct hookd_request_1_1 {
	const char *method;
	const char *url;
	const hookd_header *headers;
	size_t nheaders;
	const void *body;
	size_t body_len;
	uint32_t timeout_ms;
	uint32_t retries;
	uint32_t retry_base_ms;
	uint32_t retry_cap_ms;
	size_t max_response;
	uint32_t flags;
};

struct hookd_response_1_1 {
	int error;
	const char *error_message;
	long status;
	const char *body;
	size_t body_len;
	const hookd_header *headers;
	size_t nheaders;
	double total_ms;
	double dns_ms, connect_ms, first_byte_ms;
	unsigned attempts;
	const char *url;
};

typedef void (*hookd_fetch_fn_1_1)(const hookd_ctx *ctx, hookd_call *call,
				   const struct hookd_response_1_1 *resp, void *arg);
typedef void (*hookd_gather_fn_1_1)(const hookd_ctx *ctx, hookd_call *call,
				    const struct hookd_response_1_1 *resps, size_t n, void *arg);

/* A plugin built before ABI 1.2 hands us (and expects) the 1.1 layouts. */
static inline int sdk_uses_1_1(uint16_t plugin_abi_minor)
{
	return plugin_abi_minor < 2;
}

/* The smallest hookd_request of 1.2: every field 1.2 defined. */
#define SDK_REQUEST_MIN_1_2 (offsetof(hookd_request, flags) + sizeof(uint32_t))

/* Read a 1.2+ request (`in` borrowed; its pointers stay the plugin's)
 * into *out: HOOKD_EINVAL when its size is below SDK_REQUEST_MIN_1_2; no
 * byte beyond in->size is read, fields the plugin does not know are zero
 * (their defaults). */
static inline int sdk_request_read(hookd_request *out, const hookd_request *in)
{
	uint32_t size;

	if (!in)
		return HOOKD_EINVAL;
	/* bytes, not members: the plugin promised `size` bytes, not a whole
	 * (or aligned) struct */
	memcpy(&size, in, sizeof(size));
	if (size < SDK_REQUEST_MIN_1_2)
		return HOOKD_EINVAL;
	memset(out, 0, sizeof(*out));
	memcpy(out, in, size < sizeof(*out) ? size : sizeof(*out));
	out->size = sizeof(*out);
	return HOOKD_OK;
}

static inline void sdk_request_from_1_1(hookd_request *out, const struct hookd_request_1_1 *in)
{
	memset(out, 0, sizeof(*out));
	out->size = sizeof(*out);
	out->method = in->method;
	out->url = in->url;
	out->headers = in->headers;
	out->nheaders = in->nheaders;
	out->body = in->body;
	out->body_len = in->body_len;
	out->timeout_ms = in->timeout_ms;
	out->retries = in->retries;
	out->retry_base_ms = in->retry_base_ms;
	out->retry_cap_ms = in->retry_cap_ms;
	out->max_response = in->max_response;
	out->flags = in->flags;
}

/* `out` points into the same storage as `in` (valid as long as it is). */
static inline void sdk_response_to_1_1(struct hookd_response_1_1 *out, const hookd_response *in)
{
	out->error = in->error;
	out->error_message = in->error_message;
	out->status = in->status;
	out->body = in->body;
	out->body_len = in->body_len;
	out->headers = in->headers;
	out->nheaders = in->nheaders;
	out->total_ms = in->total_ms;
	out->dns_ms = in->dns_ms;
	out->connect_ms = in->connect_ms;
	out->first_byte_ms = in->first_byte_ms;
	out->attempts = in->attempts;
	out->url = in->url;
}

#endif
