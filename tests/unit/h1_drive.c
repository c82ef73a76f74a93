/*
 * h1_drive -- see h1_drive.h.
 */
#include "h1_drive.h"

#include <stdlib.h>
#include <string.h>

struct piece {
	char *buf;   /* exactly len bytes (NULL when len is 0) */
	size_t len;
};

struct sink_ctx {
	struct h1d_req *r;
	const char *lo, *hi; /* the buffer being fed */
	const char **violation;
};

static void copy_str(char *dst, const char *src, size_t n)
{
	if (n >= H1D_KEEP)
		n = H1D_KEEP - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* stream[from..to) into a new exact-size buffer (the previous one freed) */
static void refill(struct piece *p, const char *stream, size_t from, size_t to)
{
	free(p->buf);
	p->len = to - from;
	p->buf = p->len ? malloc(p->len) : NULL;
	if (p->len)
		memcpy(p->buf, stream + from, p->len);
}

static bool inside(const char *p, size_t n, const char *lo, const char *hi)
{
	return n == 0 || (p >= lo && p <= hi && (size_t)(hi - p) >= n);
}

static int sink(void *arg, const char *data, size_t n)
{
	struct sink_ctx *s = arg;
	struct h1d_req *r = s->r;

	if (!inside(data, n, s->lo, s->hi) && !*s->violation)
		*s->violation = "the sink got bytes outside the buffer fed";
	for (size_t i = 0; i < n; i++) {
		if (r->body_len < H1D_KEEP - 1)
			r->body[r->body_len] = data[i];
		r->body_hash = (r->body_hash ^ (unsigned char)data[i]) * 1099511628211ULL;
		r->body_len++;
	}
	return 0;
}

static size_t next_cut(size_t avail, size_t n, const size_t *cuts, size_t ncuts)
{
	for (size_t i = 0; i < ncuts; i++)
		if (cuts[i] > avail && cuts[i] < n)
			return cuts[i];
	return n;
}

/* An independent, naive check of what the parser accepted: the method and
 * names are tokens, the target a path (or "*"), values hold no CTL but HTAB
 * and start and end with neither SP nor HTAB. */
static bool token(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c && strchr("!#$%&'*+-.^_`|~", c))))
			return false;
	}
	return true;
}

static bool accepted_shape(const struct h1_request *req, const struct h1_limits *lim)
{
	if (!token(req->method, req->method_len) || req->target_len == 0 ||
	    req->target_len > lim->max_line || (req->version_minor != 0 && req->version_minor != 1))
		return false;
	if (req->target[0] != '/' && !(req->target_len == 1 && req->target[0] == '*'))
		return false;
	for (size_t i = 0; i < req->target_len; i++)
		if ((unsigned char)req->target[i] <= 0x20 || (unsigned char)req->target[i] >= 0x7f)
			return false;
	for (unsigned f = 0; f < req->nfields; f++) {
		const struct h1_field *x = &req->fields[f];
		if (!token(x->name, x->name_len))
			return false;
		for (size_t i = 0; i < x->value_len; i++) {
			unsigned char c = (unsigned char)x->value[i];
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return false;
		}
		if (x->value_len > 0 && (x->value[0] == ' ' || x->value[0] == '\t' ||
					 x->value[x->value_len - 1] == ' ' ||
					 x->value[x->value_len - 1] == '\t'))
			return false;
	}
	return true;
}

#define VIOLATE(o, msg) do { if (!(o)->violation) (o)->violation = (msg); } while (0)

void h1d_run(const char *stream, size_t n, const size_t *cuts, size_t ncuts,
	     const struct h1_limits *lim, uint64_t max_body, struct h1d_outcome *out)
{
	struct piece p = {0};
	struct h1_field *fields = calloc(lim->max_fields ? lim->max_fields : 1, sizeof(*fields));
	size_t pos = 0, avail = next_cut(0, n, cuts, ncuts);

	/* the requests are cleared one by one as they start (~60 KB in all) */
	out->nreq = 0;
	out->incomplete = out->closed = false;
	out->used = 0;
	out->violation = NULL;
	while (out->nreq < H1D_MAX_REQS && !out->closed) {
		struct h1d_req *r = &out->req[out->nreq];
		struct h1_head h;
		struct h1_request req;
		struct h1_error err = {0};
		size_t consumed;
		enum h1_status st;

		if (pos == n)
			break; /* the stream ended between requests */
		memset(r, 0, sizeof(*r));
		r->body_hash = 14695981039346656037ULL;
		h1_head_init(&h);
		for (;;) {
			refill(&p, stream, pos, avail);
			st = h1_head_parse(&h, p.buf, p.len, lim, &req, fields, &consumed, &err);
			if (st == H1_MORE && p.len > lim->max_line + 2 + lim->max_headers)
				VIOLATE(out, "head: more wanted beyond max_line + 2 + max_headers");
			if (st != H1_MORE || avail == n)
				break;
			avail = next_cut(avail, n, cuts, ncuts);
		}
		if (st == H1_MORE) {
			out->incomplete = true;
			break;
		}
		out->nreq++;
		if (consumed > p.len)
			VIOLATE(out, "head: consumed past the bytes given");
		if (st == H1_ERROR) {
			r->status = err.status;
			r->why = err.why;
			r->must_close = err.must_close;
			if (!err.why || err.status < 400 || err.status > 599)
				VIOLATE(out, "head: a refusal without a status or a reason");
			if (consumed == 0 && !err.must_close)
				VIOLATE(out, "head: a refusal that keeps the connection but consumed nothing");
			if (err.must_close) {
				out->closed = true;
				break;
			}
			pos += consumed;
			out->used = pos;
			continue;
		}
		if (st != H1_HEAD_DONE) {
			VIOLATE(out, "head: an unexpected status");
			break;
		}
		const char *lo = p.buf, *hi = p.buf + consumed;
		if (!inside(req.method, req.method_len, lo, hi) ||
		    !inside(req.target, req.target_len, lo, hi))
			VIOLATE(out, "head: the request line points outside the head");
		if (req.fields != fields || req.nfields > lim->max_fields)
			VIOLATE(out, "head: fields not in the storage given");
		for (unsigned i = 0; i < req.nfields && i < lim->max_fields; i++)
			if (!inside(fields[i].name, fields[i].name_len, lo, hi) ||
			    !inside(fields[i].value, fields[i].value_len, lo, hi) ||
			    fields[i].name_len == 0)
				VIOLATE(out, "head: a field points outside the head");
		if (req.chunked && req.has_length)
			VIOLATE(out, "head: both chunked and Content-Length accepted");
		if (!accepted_shape(&req, lim))
			VIOLATE(out, "head: accepted a request line or field that breaks the grammar");
		r->head_done = true;
		copy_str(r->method, req.method, req.method_len);
		copy_str(r->target, req.target, req.target_len);
		r->version_minor = req.version_minor;
		r->nfields = req.nfields;
		r->chunked = req.chunked;
		r->has_length = req.has_length;
		r->keep_alive = req.keep_alive;
		r->expect_continue = req.expect_continue;
		r->has_host = req.has_host;
		r->content_length = req.content_length;
		r->head_len = consumed;
		pos += consumed;

		struct h1_body b;
		if (h1_body_init(&b, &req, lim, max_body, &err) != 0) {
			r->status = err.status;
			r->why = err.why;
			r->must_close = err.must_close;
			if (err.status != 413 || !err.must_close || !req.has_length ||
			    req.content_length <= max_body)
				VIOLATE(out, "body: a wrong refusal at init");
			out->closed = true;
			break;
		}
		struct sink_ctx sc = {r, NULL, NULL, &out->violation};
		for (;;) {
			refill(&p, stream, pos, avail);
			sc.lo = p.buf;
			sc.hi = p.buf ? p.buf + p.len : NULL; /* NULL + 0 is UB */
			st = h1_body_feed(&b, p.buf, p.len, &consumed, sink, &sc, &err);
			if (consumed > p.len)
				VIOLATE(out, "body: consumed past the bytes given");
			pos += consumed;
			if (st == H1_BODY && consumed != p.len)
				VIOLATE(out, "body: more wanted but not all consumed");
			if (st != H1_BODY || avail == n)
				break;
			avail = next_cut(avail, n, cuts, ncuts);
		}
		if (st == H1_BODY) {
			out->incomplete = true;
			break;
		}
		if (st == H1_ERROR) {
			r->status = err.status;
			r->why = err.why;
			r->must_close = err.must_close;
			if (!err.why || !err.must_close)
				VIOLATE(out, "body: a refusal without a reason or that keeps the connection");
			out->closed = true;
			break;
		}
		if (r->has_length && r->body_len != r->content_length)
			VIOLATE(out, "body: decoded length differs from Content-Length");
		if (!r->has_length && !r->chunked && r->body_len != 0)
			VIOLATE(out, "body: bytes decoded for a request without a body");
		if (r->body_len > max_body)
			VIOLATE(out, "body: more than max_body decoded");
		r->body[r->body_len < H1D_KEEP ? r->body_len : H1D_KEEP - 1] = '\0';
		out->used = pos;
		if (!req.keep_alive)
			out->closed = true;
	}
	free(p.buf);
	free(fields);
}

const char *h1d_diff(const struct h1d_outcome *a, const struct h1d_outcome *b)
{
	if (a->nreq != b->nreq)
		return "a different number of requests";
	if (a->incomplete != b->incomplete || a->closed != b->closed || a->used != b->used)
		return "a different end of stream";
	for (unsigned i = 0; i < a->nreq; i++) {
		const struct h1d_req *x = &a->req[i], *y = &b->req[i];
		if (x->status != y->status || x->why != y->why || x->must_close != y->must_close)
			return "a different refusal";
		if (x->head_done != y->head_done || strcmp(x->method, y->method) != 0 ||
		    strcmp(x->target, y->target) != 0 || x->version_minor != y->version_minor ||
		    x->nfields != y->nfields || x->head_len != y->head_len)
			return "a different head";
		if (x->chunked != y->chunked || x->has_length != y->has_length ||
		    x->keep_alive != y->keep_alive || x->expect_continue != y->expect_continue ||
		    x->has_host != y->has_host || x->content_length != y->content_length)
			return "a different framing";
		if (x->body_len != y->body_len || x->body_hash != y->body_hash)
			return "a different body";
	}
	return NULL;
}

/* byte by byte copies the rest of the stream at each byte: keep it short */
#define H1D_BYTEWISE_MAX 256

const char *h1d_check_input(const uint8_t *data, size_t size)
{
	static const uint64_t bodies[4] = {0, 16, 1024 * 1024, UINT64_MAX};
	struct h1_limits lim;
	struct h1d_outcome *whole = NULL, *split = NULL;
	size_t cuts[16], ncuts = 0, off = 2, at = 0, n;
	const char *stream, *bad = NULL;
	uint64_t max_body;

	if (size < 2)
		return NULL;
	h1_limits_default(&lim);
	if (data[1] & 1) {
		lim.max_line = 24;
		lim.max_headers = 64;
		lim.max_fields = 3;
		lim.max_chunk_line = 12;
		lim.max_trailers = 16;
	}
	max_body = bodies[(data[1] >> 1) & 3];
	for (unsigned k = data[0] & 15; k > 0 && off < size; k--) {
		at += data[off] ? data[off] : 1;
		cuts[ncuts++] = at;
		off++;
	}
	stream = (const char *)data + off;
	n = size - off;
	whole = malloc(sizeof(*whole));
	split = malloc(sizeof(*split));
	if (!whole || !split) {
		bad = "out of memory";
		goto out;
	}
	h1d_run(stream, n, NULL, 0, &lim, max_body, whole);
	if ((bad = whole->violation) != NULL)
		goto out;
	h1d_run(stream, n, cuts, ncuts, &lim, max_body, split);
	if ((bad = split->violation) != NULL || (bad = h1d_diff(whole, split)) != NULL)
		goto out;
	if (n <= H1D_BYTEWISE_MAX) {
		size_t *all = malloc((n + 1) * sizeof(*all));
		if (!all) {
			bad = "out of memory";
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			all[i] = i + 1;
		h1d_run(stream, n, all, n, &lim, max_body, split);
		free(all);
		if ((bad = split->violation) != NULL || (bad = h1d_diff(whole, split)) != NULL)
			goto out;
	}
out:
	free(whole);
	free(split);
	return bad;
}
