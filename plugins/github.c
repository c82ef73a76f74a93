/*
 * github -- async: receives GitHub webhooks. The SDK's example of the whole
 * request/reply API (ABI 1.3): it reads request headers (api->header) and
 * the rest of the request (api->inbound: request id, raw body, client,
 * query), sets the success status (api->set_status) and a response header
 * (api->set_header), shows where a raw reply body would go (api->set_body),
 * and fails with a status of its choosing (api->fail). Routes on
 * X-GitHub-Event:
 *
 *   ping          200 {"zen": <payload zen>, "hook_id": <payload hook_id>}
 *   push          200 {"ref", "repository": <repository.full_name>,
 *                      "commits": <number of commits>, "head": <head_commit.id or null>}
 *   anything else 202 {"ignored": "<event>"}
 *   no header     400, naming the header
 *   a ping or a push without the fields above: 422, naming the field
 *
 * Every success reply carries X-GitHub-Delivery-Seen: <X-GitHub-Delivery>.
 * The signature is not checked here: the hook's "verify" (scheme github)
 * has checked it before any plugin runs (etc/github.json).
 *
 * Async because nothing here blocks: it answers on the event loop at once,
 * without a hop to a worker thread. Everything it reads (the input, the
 * inbound request, header values) is borrowed until it finishes the call.
 */
#include <hookd.h>

#include <string.h>

/* The value of member `name` of `obj` when it is a string, else NULL. */
static const char *str_member(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ping: GitHub's first delivery when a webhook is created. Returns the
 * reply (owned by the caller), or NULL after failing the call. */
static cJSON *on_ping(const hookd_ctx *ctx, hookd_call *call, const cJSON *in)
{
	const char *zen = str_member(in, "zen");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(in, "hook_id");
	cJSON *out = NULL, *hid = NULL;

	if (!zen) {
		hookd_fail(ctx, call, 422, "ping payload: \"zen\" is missing or not a string");
		return NULL;
	}
	/* a copy: `in` stays the host's (duplicating a number keeps the exact
	 * digits of a long id) */
	hid = cJSON_IsNumber(id) ? cJSON_Duplicate(id, 0) : cJSON_CreateNull();
	if (!hid || !(out = cJSON_CreateObject()) || !cJSON_AddStringToObject(out, "zen", zen) ||
	    !cJSON_AddItemToObject(out, "hook_id", hid))
		goto nomem;
	return out;
nomem:
	cJSON_Delete(hid);
	cJSON_Delete(out);
	hookd_fail(ctx, call, 500, "out of memory");
	return NULL;
}

/* push: commits pushed to a branch or tag. head_commit is null when the
 * push deleted the ref. */
static cJSON *on_push(const hookd_ctx *ctx, hookd_call *call, const cJSON *in)
{
	const char *ref = str_member(in, "ref");
	const char *repo = str_member(cJSON_GetObjectItemCaseSensitive(in, "repository"),
				      "full_name");
	const cJSON *commits = cJSON_GetObjectItemCaseSensitive(in, "commits");
	const cJSON *head = cJSON_GetObjectItemCaseSensitive(in, "head_commit");
	const char *head_id = str_member(head, "id");
	cJSON *out;

	if (!ref) {
		hookd_fail(ctx, call, 422, "push payload: \"ref\" is missing or not a string");
		return NULL;
	}
	if (!repo) {
		hookd_fail(ctx, call, 422,
			   "push payload: \"repository.full_name\" is missing or not a string");
		return NULL;
	}
	if (!cJSON_IsArray(commits)) {
		hookd_fail(ctx, call, 422, "push payload: \"commits\" is missing or not an array");
		return NULL;
	}
	if (head && !cJSON_IsNull(head) && !head_id) {
		hookd_fail(ctx, call, 422,
			   "push payload: \"head_commit\" is neither null nor an object with an id");
		return NULL;
	}
	if (!(out = cJSON_CreateObject()) || !cJSON_AddStringToObject(out, "ref", ref) ||
	    !cJSON_AddStringToObject(out, "repository", repo) ||
	    !cJSON_AddNumberToObject(out, "commits", cJSON_GetArraySize(commits)) ||
	    !(head_id ? cJSON_AddStringToObject(out, "head", head_id)
		      : cJSON_AddNullToObject(out, "head")))
		goto nomem;
	return out;
nomem:
	cJSON_Delete(out);
	hookd_fail(ctx, call, 500, "out of memory");
	return NULL;
}

/* Any other event: acknowledged, not processed. 202 says so to GitHub
 * (which shows the status in the delivery log) without counting as a
 * failure. */
static cJSON *on_other(const hookd_ctx *ctx, hookd_call *call, const char *event)
{
	cJSON *out = cJSON_CreateObject();

	if (!out || !cJSON_AddStringToObject(out, "ignored", event)) {
		cJSON_Delete(out);
		hookd_fail(ctx, call, 500, "out of memory");
		return NULL;
	}
	/* can only fail with HOOKD_ECANCELED here (the host gave up on the
	 * call): complete() below is then a harmless no-op */
	ctx->api->set_status(call, 202);
	return out;
}

static void github(const hookd_ctx *ctx, hookd_call *call, cJSON *input)
{
	const hookd_host_api *api = ctx->api;
	/* header values are borrowed until the call is finished */
	const char *event = api->header(call, "X-GitHub-Event");
	const char *delivery = api->header(call, "X-GitHub-Delivery");
	const hookd_inbound *in = api->inbound(call); /* NULL: not called over HTTP */
	cJSON *out;
	int rc;

	if (!event || !*event) {
		hookd_fail(ctx, call, 400, "missing X-GitHub-Event header: not a GitHub delivery");
		return;
	}
	if ((strcmp(event, "ping") == 0 || strcmp(event, "push") == 0) &&
	    !cJSON_IsObject(input)) {
		hookd_fail(ctx, call, 422, "%s payload: not a JSON object", event);
		return;
	}
	if (strcmp(event, "ping") == 0)
		out = on_ping(ctx, call, input);
	else if (strcmp(event, "push") == 0)
		out = on_push(ctx, call, input);
	else
		out = on_other(ctx, call, event);
	if (!out)
		return; /* failed above */

	/* Settings are copied; they apply only if the call succeeds. A value
	 * with control characters is HOOKD_EINVAL: the reply goes without. */
	if (delivery && (rc = api->set_header(call, "X-GitHub-Delivery-Seen", delivery)) != HOOKD_OK &&
	    rc != HOOKD_ECANCELED)
		hookd_log(ctx, HOOKD_LOG_INFO, "request %s: X-GitHub-Delivery not echoed (%d)",
			  in ? in->request_id : "-", rc);
	/* the rest of the request: raw body bytes (what the signature covers),
	 * client, query string; every header is in in->headers[0..nheaders) */
	if (in)
		hookd_log(ctx, HOOKD_LOG_DEBUG, "request %s: %s event, delivery %s, %zu bytes of "
			  "%s from %s:%u, query \"%s\"", in->request_id, event,
			  delivery ? delivery : "-", in->body_len, in->content_type, in->client_addr,
			  (unsigned)in->client_port, in->query);
	/* The reply is the JSON output. A plugin that answers in another format
	 * sets the bytes instead (copied; the output still feeds a next step):
	 *   api->set_body(call, "ok\n", 3, "text/plain");
	 * and 204 (set_status) sends no body at all. */
	hookd_complete(ctx, call, out); /* `out` is the host's now */
}

/* The services above came with ABI 1.3: on an older host, refuse to load
 * rather than call through a missing slot. */
static int github_init(hookd_ctx *ctx, const cJSON *config)
{
	(void)config;
	if (!HOOKD_API_HAS(ctx->api, set_body)) {
		hookd_log(ctx, HOOKD_LOG_ERROR, "needs hookd ABI 1.3 (the host has 1.%u)",
			  (unsigned)ctx->api->abi_minor);
		return -1;
	}
	return 0;
}

HOOKD_PLUGIN_ASYNC("github", "1.0.0", HOOKD_HOOKS("github"), github_init, NULL, github);
