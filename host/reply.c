/*
 * reply -- see reply.h.
 */
#include "reply.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hookd.h>

#include "json.h"
#include "wire.h"

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

/* A Content-Type value: no control characters, at most 8 KiB. */
static bool content_type_valid(const char *ct)
{
	for (const unsigned char *p = (const unsigned char *)ct; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return strlen(ct) <= REPLY_MAX_HEADER_BYTES;
}

int reply_set_body(struct reply *r, const void *body, size_t len, const char *content_type)
{
	char *b = NULL, *ct = NULL;

	if (!body && len)
		return HOOKD_EINVAL;
	if (content_type && !content_type_valid(content_type))
		return HOOKD_EINVAL;
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

void reply_free(struct reply *r)
{
	if (!r)
		return;
	reply_clear(r);
	free(r);
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

/* ---- wire form: u32 status, u32 body_set, u32 nheaders, then strings as
 * wire strings (wire.h; the null string for NULL): body, content type, each
 * header's name and value ---- */

int reply_encode(const struct reply *r, struct jbuf *b)
{
	uint32_t head[3] = {(uint32_t)r->status, r->body_set, r->nheaders};
	int rc;

	if (jbuf_append(b, head, sizeof(head)) < 0)
		return -ENOMEM;
	if ((rc = wire_put_str(b, r->body, r->body_len)) < 0 ||
	    (rc = wire_put_str(b, r->content_type, r->content_type ? strlen(r->content_type) : 0)) < 0)
		return rc;
	for (unsigned i = 0; i < r->nheaders; i++)
		if ((rc = wire_put_str(b, r->headers[i].name, strlen(r->headers[i].name))) < 0 ||
		    (rc = wire_put_str(b, r->headers[i].value,
				  r->headers[i].value ? strlen(r->headers[i].value) : 0)) < 0)
			return rc;
	return 0;
}

int reply_decode(const char **p, const char *end, struct reply *out)
{
	uint32_t head[3];
	int rc;

	*out = (struct reply){0};
	if (end - *p < (long)sizeof(head))
		return -EINVAL;
	memcpy(head, *p, sizeof(head));
	*p += sizeof(head);
	if (head[2] > REPLY_MAX_HEADERS)
		return -EINVAL;
	out->status = (int)head[0];
	out->body_set = head[1] != 0;
	if ((rc = wire_get_str(p, end, &out->body, &out->body_len)) < 0 ||
	    (rc = wire_get_str(p, end, &out->content_type, NULL)) < 0)
		goto fail;
	for (uint32_t i = 0; i < head[2]; i++) {
		struct reply_header *h = &out->headers[out->nheaders];
		if ((rc = wire_get_str(p, end, &h->name, NULL)) < 0)
			goto fail;
		out->nheaders++;
		if (!h->name) {
			rc = -EINVAL;
			goto fail;
		}
		if ((rc = wire_get_str(p, end, &h->value, NULL)) < 0)
			goto fail;
		if (header_valid(h->name, h->value) != HOOKD_OK) {
			rc = -EINVAL; /* the child checked it: a forged frame */
			goto fail;
		}
	}
	if (out->status && (out->status < 200 || out->status > 299)) {
		rc = -EINVAL;
		goto fail;
	}
	/* what set_body makes: a body has a valid type and was set; no body,
	 * no type (http.c sends the type of a raw body as it is) */
	if (!out->body != !out->content_type || (out->body && !out->body_set) ||
	    (out->content_type && !content_type_valid(out->content_type))) {
		rc = -EINVAL;
		goto fail;
	}
	return 0;
fail:
	reply_clear(out);
	return rc;
}
