/*
 * inbound -- see inbound.h.
 */
#include "inbound.h"
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INBOUND_NSTR 7 /* hook, method, path, query, client, request id, content type */

static const char *const *str_slots(const struct inbound_parts *p, const char *out[INBOUND_NSTR])
{
	out[0] = p->hook;
	out[1] = p->method;
	out[2] = p->path;
	out[3] = p->query;
	out[4] = p->client_addr;
	out[5] = p->request_id;
	out[6] = p->content_type;
	return out;
}

/* Copy s (NULL: "") to *cur and return where it went. */
static const char *put(char **cur, const char *s, size_t len)
{
	char *at = *cur;

	if (len)
		memcpy(at, s, len);
	at[len] = '\0';
	*cur += len + 1;
	return at;
}

struct inbound *inbound_new(const struct inbound_parts *p)
{
	const char *strs[INBOUND_NSTR];
	size_t lens[INBOUND_NSTR];
	size_t total = sizeof(struct inbound) + p->nheaders * sizeof(hookd_header);
	struct inbound *in;
	char *cur;

	str_slots(p, strs);
	for (int i = 0; i < INBOUND_NSTR; i++) {
		lens[i] = strs[i] ? strlen(strs[i]) : 0;
		total += lens[i] + 1;
	}
	for (size_t i = 0; i < p->nheaders; i++)
		total += strlen(p->headers[i].name) + strlen(p->headers[i].value) + 2;
	total += p->body_len + 1;
	in = malloc(total);
	if (!in)
		return NULL;
	in->refs = 1;
	in->reply_sent = false;
	hookd_header *hs = (hookd_header *)(void *)(in + 1);
	cur = (char *)(hs + p->nheaders);
	in->pub = (hookd_inbound){.size = sizeof(hookd_inbound), .client_port = p->client_port,
				  .body_len = p->body_len, .headers = hs,
				  .nheaders = p->nheaders};
	in->pub.hook = put(&cur, strs[0], lens[0]);
	in->pub.method = put(&cur, strs[1], lens[1]);
	in->pub.path = put(&cur, strs[2], lens[2]);
	in->pub.query = put(&cur, strs[3], lens[3]);
	in->pub.client_addr = put(&cur, strs[4], lens[4]);
	in->pub.request_id = put(&cur, strs[5], lens[5]);
	in->pub.content_type = put(&cur, strs[6], lens[6]);
	for (size_t i = 0; i < p->nheaders; i++) {
		hs[i].name = put(&cur, p->headers[i].name, strlen(p->headers[i].name));
		hs[i].value = put(&cur, p->headers[i].value, strlen(p->headers[i].value));
	}
	in->pub.body = put(&cur, p->body, p->body_len);
	return in;
}

struct inbound *inbound_ref(struct inbound *in)
{
	if (in)
		in->refs++;
	return in;
}

void inbound_unref(struct inbound *in)
{
	if (in && --in->refs == 0)
		free(in);
}

const char *inbound_header(const hookd_inbound *in, const char *name)
{
	if (!in || !name)
		return NULL;
	for (size_t i = 0; i < in->nheaders; i++)
		if (strcasecmp(in->headers[i].name, name) == 0)
			return in->headers[i].value;
	return NULL;
}

/* ---- wire form: u32 client_port, u32 nheaders, u32 reply_sent, then wire
 * strings (wire.h): the 7 strings, each header's name and value, the body ---- */

int inbound_encode(const hookd_inbound *in, bool reply_sent, struct jbuf *b)
{
	uint32_t head[3] = {in->client_port, (uint32_t)in->nheaders, reply_sent};
	const char *strs[INBOUND_NSTR] = {in->hook, in->method, in->path, in->query,
					  in->client_addr, in->request_id, in->content_type};

	if (jbuf_append(b, head, sizeof(head)) < 0)
		return -ENOMEM;
	for (int i = 0; i < INBOUND_NSTR; i++)
		if (wire_put_str(b, strs[i], strlen(strs[i])) < 0)
			return -ENOMEM;
	for (size_t i = 0; i < in->nheaders; i++)
		if (wire_put_str(b, in->headers[i].name, strlen(in->headers[i].name)) < 0 ||
		    wire_put_str(b, in->headers[i].value, strlen(in->headers[i].value)) < 0)
			return -ENOMEM;
	return wire_put_str(b, in->body, in->body_len);
}

/* A wire string (wire.h), copied NUL-terminated into a new allocation; the
 * encoder never writes the null string, so one is refused. */
static int get_str(const char **p, const char *end, char **out, size_t *len)
{
	int rc = wire_get_str(p, end, out, len);

	return rc < 0 ? rc : *out ? 0 : -EINVAL;
}

int inbound_decode(const char **p, const char *end, struct inbound **out)
{
	uint32_t head[3];
	char *strs[INBOUND_NSTR] = {0};
	char *body = NULL;
	size_t body_len = 0;
	hookd_header *hs = NULL;
	size_t nh = 0;
	int rc = -EINVAL;

	*out = NULL;
	if (end - *p < (long)sizeof(head))
		return -EINVAL;
	memcpy(head, *p, sizeof(head));
	*p += sizeof(head);
	if (head[1] > (size_t)(end - *p) / 8) /* each header takes 8 bytes at least */
		return -EINVAL;
	for (int i = 0; i < INBOUND_NSTR; i++)
		if ((rc = get_str(p, end, &strs[i], NULL)) < 0)
			goto out;
	hs = calloc(head[1] ? head[1] : 1, sizeof(*hs));
	if (!hs) {
		rc = -ENOMEM;
		goto out;
	}
	for (nh = 0; nh < head[1]; nh++) {
		char *n = NULL, *v = NULL;
		if ((rc = get_str(p, end, &n, NULL)) < 0)
			goto out;
		if ((rc = get_str(p, end, &v, NULL)) < 0) {
			free(n);
			goto out;
		}
		hs[nh] = (hookd_header){n, v};
	}
	if ((rc = get_str(p, end, &body, &body_len)) < 0)
		goto out;
	struct inbound_parts parts = {.hook = strs[0], .method = strs[1], .path = strs[2],
				      .query = strs[3], .client_addr = strs[4],
				      .request_id = strs[5], .content_type = strs[6],
				      .client_port = (uint16_t)head[0], .body = body,
				      .body_len = body_len, .headers = hs, .nheaders = nh};
	*out = inbound_new(&parts);
	rc = *out ? 0 : -ENOMEM;
	if (*out)
		(*out)->reply_sent = head[2] != 0;
out:
	for (int i = 0; i < INBOUND_NSTR; i++)
		free(strs[i]);
	for (size_t i = 0; i < nh; i++) {
		free((char *)hs[i].name);
		free((char *)hs[i].value);
	}
	free(hs);
	free(body);
	return rc;
}
