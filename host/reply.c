/*
 * reply -- see reply.h.
 */
#include "reply.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hookd.h>

int reply_set_status(struct reply *r, int status)
{
	if (status < 200 || status > 299)
		return HOOKD_EINVAL;
	r->status = status;
	return HOOKD_OK;
}

/* RFC 9110 token characters. */
static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

bool reply_header_forbidden(const char *name)
{
	static const char *const owned[] = {
		"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
		"te", "trailer", "content-type", "date", "server", "x-request-id",
	};

	if (strncasecmp(name, "proxy-", 6) == 0)
		return true;
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
		if (strcasecmp(name, owned[i]) == 0)
			return true;
	return false;
}

static int header_valid(const char *name, const char *value)
{
	size_t n = 0;

	if (!name || !*name)
		return HOOKD_EINVAL;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++, n++)
		if (!is_tchar(*p))
			return HOOKD_EINVAL;
	if (value) {
		for (const unsigned char *p = (const unsigned char *)value; *p; p++, n++)
			if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
				return HOOKD_EINVAL;
	}
	if (n > REPLY_MAX_HEADER_BYTES)
		return HOOKD_EINVAL;
	return reply_header_forbidden(name) ? HOOKD_EFORBIDDEN : HOOKD_OK;
}

/* Set header (name, value) (value NULL: removed), copying both. */
static int header_put(struct reply *r, const char *name, const char *value)
{
	char *v = NULL;
	unsigned i;

	if (value && !(v = strdup(value)))
		return HOOKD_ENOMEM;
	for (i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			break;
	if (i == r->nheaders) {
		char *n;
		if (r->nheaders == REPLY_MAX_HEADERS) {
			free(v);
			return HOOKD_EINVAL;
		}
		if (!(n = strdup(name))) {
			free(v);
			return HOOKD_ENOMEM;
		}
		r->headers[r->nheaders++] = (struct reply_header){n, NULL};
	}
	free(r->headers[i].value);
	r->headers[i].value = v;
	return HOOKD_OK;
}

int reply_set_header(struct reply *r, const char *name, const char *value)
{
	int rc = header_valid(name, value);

	return rc ? rc : header_put(r, name, value);
}

int reply_set_body(struct reply *r, const void *body, size_t len, const char *content_type)
{
	char *b = NULL, *ct = NULL;

	if (!body && len)
		return HOOKD_EINVAL;
	if (content_type) {
		for (const unsigned char *p = (const unsigned char *)content_type; *p; p++)
			if (*p < 0x20 || *p == 0x7f)
				return HOOKD_EINVAL;
		if (strlen(content_type) > REPLY_MAX_HEADER_BYTES)
			return HOOKD_EINVAL;
	}
	if (body) {
		b = malloc(len ? len : 1);
		ct = strdup(content_type ? content_type : "application/octet-stream");
		if (!b || !ct) {
			free(b);
			free(ct);
			return HOOKD_ENOMEM;
		}
		if (len)
			memcpy(b, body, len);
	}
	free(r->body);
	free(r->content_type);
	r->body = b;
	r->body_len = b ? len : 0;
	r->content_type = ct;
	r->body_set = true;
	return HOOKD_OK;
}

void reply_merge(struct reply *into, struct reply *from)
{
	if (from->status)
		into->status = from->status;
	if (from->body_set) {
		free(into->body);
		free(into->content_type);
		into->body = from->body;
		into->body_len = from->body_len;
		into->content_type = from->content_type;
		into->body_set = true;
		from->body = from->content_type = NULL;
	}
	for (unsigned i = 0; i < from->nheaders; i++) {
		/* both were valid when set; only memory can fail here, and then
		 * the header is lost rather than the call */
		(void)header_put(into, from->headers[i].name, from->headers[i].value);
	}
	reply_clear(from);
}

void reply_clear(struct reply *r)
{
	for (unsigned i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->body);
	free(r->content_type);
	*r = (struct reply){0};
}
