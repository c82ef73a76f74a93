/*
 * h1 -- see h1.h for the rules.
 *
 * The request line is checked byte by byte as it arrives (a TLS hello or a
 * binary probe is refused at its first byte); each field line is found with
 * memchr and checked once complete, its bytes bounded by max_headers before
 * the LF is even seen. The outcome never depends on how the bytes were split
 * (tests/unit/test_h1.c and the fuzzer check it). When the whole head came
 * in one call, the request is filled during that scan; when it came in
 * several (the buffer may have moved between them), the complete head is
 * walked once more to take the pointers from the final buffer.
 *
 * The body decoder is a byte state machine for the chunked framing, with
 * chunk data and Content-Length bodies handed to the sink in runs.
 */
#include "h1.h"
#include "hex.h"

#include <string.h>

/* Character classes, one table lookup per byte. */
#define C_TCHAR 1 /* RFC 9110 5.6.2 tchar */
#define C_VALUE 2 /* field-vchar / SP / HTAB / obs-text */
#define C_HOST  4 /* reg-name: unreserved / pct-encoded / sub-delims */

static const unsigned char char_class[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	2, 7, 2, 3, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 2,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2, 6, 2, 6, 2, 2,
	2, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2, 2, 2, 3, 7,
	3, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2, 3, 2, 7, 0,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static bool is_tchar(unsigned char c)
{
	return char_class[c] & C_TCHAR;
}

static bool is_value_char(unsigned char c)
{
	return char_class[c] & C_VALUE;
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}


static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static bool ieq(const char *p, size_t n, const char *lower_lit)
{
	size_t m = strlen(lower_lit);

	if (n != m)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)p[i]) != (unsigned char)lower_lit[i])
			return false;
	return true;
}

static void set_err(struct h1_error *err, int status, const char *why, bool must_close)
{
	err->status = status;
	err->why = why;
	err->must_close = must_close;
}

void h1_limits_default(struct h1_limits *lim)
{
	lim->max_line = H1_MAX_LINE_DEFAULT;
	lim->max_headers = H1_MAX_HEADERS_DEFAULT;
	lim->max_fields = H1_MAX_FIELDS_DEFAULT;
	lim->max_chunk_line = H1_MAX_CHUNK_LINE_DEFAULT;
	lim->max_trailers = H1_MAX_TRAILERS_DEFAULT;
}

void h1_head_init(struct h1_head *h)
{
	memset(h, 0, sizeof(*h));
}

bool h1_name_is(const struct h1_field *f, const char *lower_lit)
{
	return ieq(f->name, f->name_len, lower_lit);
}

const struct h1_field *h1_field_find(const struct h1_request *req, const char *lower_lit)
{
	for (unsigned i = 0; i < req->nfields; i++)
		if (h1_name_is(&req->fields[i], lower_lit))
			return &req->fields[i];
	return NULL;
}

/* ---- the head ---------------------------------------------------------- */

/* The request line p[0..n) (CRLF excluded). Returns 0 (filling req when it
 * is not NULL) or an HTTP status with *why. The version is checked before
 * the target, so that the HTTP/2 preface ("PRI * HTTP/2.0") is a 505. */
static int request_line(const char *p, size_t n, struct h1_request *req, const char **why)
{
	size_t m = 0, t, te;

	while (m < n && is_tchar((unsigned char)p[m]))
		m++;
	if (m == 0) {
		*why = "the request line does not start with a method";
		return 400;
	}
	if (m == n || p[m] != ' ') {
		*why = "malformed request line (METHOD SP target SP HTTP/1.x)";
		return 400;
	}
	t = m + 1;
	te = t;
	while (te < n && p[te] != ' ')
		te++;
	if (te == t) {
		*why = "empty request target";
		return 400;
	}
	if (te == n) {
		*why = "no HTTP version in the request line (HTTP/0.9 is not served)";
		return 400;
	}
	const char *v = p + te + 1;
	size_t vlen = n - te - 1;
	if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
	    v[7] < '0' || v[7] > '9') {
		*why = "malformed HTTP version in the request line";
		return 400;
	}
	if (v[5] != '1' || v[7] > '1') {
		*why = "HTTP version not supported (HTTP/1.0 and HTTP/1.1 are)";
		return 505;
	}
	for (size_t i = t; i < te; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= 0x20 || c >= 0x7f) {
			*why = "invalid character in the request target";
			return 400;
		}
	}
	if (te - t == 1 && p[t] == '*') {
		if (!(m == 7 && memcmp(p, "OPTIONS", 7) == 0)) {
			*why = "the target \"*\" is only for OPTIONS";
			return 400;
		}
	} else if (p[t] != '/') {
		*why = "the request target is not a path starting with /";
		return 400;
	}
	if (req) {
		req->method = p;
		req->method_len = m;
		req->target = p + t;
		req->target_len = te - t;
		req->version_minor = v[7] - '0';
	}
	return 0;
}

/* One field line p[0..n) (CRLF excluded, n > 0). Returns 0 (filling f when
 * it is not NULL) or 400 with *why. */
static int field_line(const char *p, size_t n, struct h1_field *f, const char **why)
{
	size_t k = 0, v, e;

	if (is_ows((unsigned char)p[0])) {
		*why = "obs-fold: a header line starting with whitespace";
		return 400;
	}
	while (k < n && is_tchar((unsigned char)p[k]))
		k++;
	if (k == n) {
		*why = "a header line without a colon";
		return 400;
	}
	if (p[k] != ':') {
		size_t w = k;
		while (w < n && is_ows((unsigned char)p[w]))
			w++;
		if (w > k && w < n && p[w] == ':')
			*why = "whitespace between a header name and its colon";
		else if (w > k)
			*why = "a header line without a colon";
		else if (p[k] == '\r')
			*why = "CR not followed by LF";
		else
			*why = "invalid character in a header name";
		return 400;
	}
	if (k == 0) {
		*why = "empty header name";
		return 400;
	}
	for (size_t i = k + 1; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (!is_value_char(c)) {
			*why = c == '\0'   ? "NUL byte in a header value"
			       : c == '\r' ? "CR not followed by LF"
					   : "control character in a header value";
			return 400;
		}
	}
	v = k + 1;
	while (v < n && is_ows((unsigned char)p[v]))
		v++;
	e = n;
	while (e > v && is_ows((unsigned char)p[e - 1]))
		e--;
	if (f) {
		f->name = p;
		f->name_len = k;
		f->value = p + v;
		f->value_len = e - v;
	}
	return 0;
}

/* Host = uri-host [ ":" port ] (RFC 9112 3.2: an invalid one is a 400):
 * an IP-literal in brackets, or reg-name / IPv4 characters (unreserved,
 * pct-encoded, sub-delims); the port is digits. Empty is allowed. */
static bool host_valid(const char *p, size_t n)
{
	size_t i = 0;

	if (n > 0 && p[0] == '[') {
		for (i = 1; i < n && p[i] != ']'; i++) {
			unsigned char c = (unsigned char)p[i];
			if (!(hex_digit(c) >= 0 || c == ':' || c == '.' || c == 'v' || c == 'V'))
				return false;
		}
		if (i == n || i == 1)
			return false;
		i++;
	} else {
		for (; i < n && p[i] != ':'; i++) {
			unsigned char c = (unsigned char)p[i];
			if (!(char_class[c] & C_HOST))
				return false;
		}
	}
	if (i == n)
		return true;
	if (p[i] != ':')
		return false;
	for (i++; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

/* Content-Length = 1*DIGIT, within 64 bits. */
static bool parse_length(const char *p, size_t n, uint64_t *out)
{
	uint64_t x = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		unsigned d = (unsigned)(p[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*out = x;
	return true;
}

/* Calls fn(arg, element, len) for each element of a comma list (RFC 9110
 * 5.6.1), OWS trimmed, empty elements skipped. */
static void list_each(const char *p, size_t n, void (*fn)(void *, const char *, size_t), void *arg)
{
	size_t i = 0;

	while (i <= n) {
		size_t s = i, e;
		while (i < n && p[i] != ',')
			i++;
		e = i;
		while (s < e && is_ows((unsigned char)p[s]))
			s++;
		while (e > s && is_ows((unsigned char)p[e - 1]))
			e--;
		if (e > s)
			fn(arg, p + s, e - s);
		i++;
	}
}

static bool all_tchar(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)p[i]))
			return false;
	return n > 0;
}

struct te_scan {
	unsigned codings;
	bool last_chunked;     /* the last coding so far is chunked */
	bool chunked_not_last; /* chunked was followed by another coding */
	bool unknown;          /* a coding other than chunked */
	bool malformed;        /* an element that is not a token */
};

static void te_element(void *arg, const char *p, size_t n)
{
	struct te_scan *s = arg;

	if (!all_tchar(p, n)) {
		s->malformed = true;
		return;
	}
	if (s->last_chunked)
		s->chunked_not_last = true;
	s->codings++;
	s->last_chunked = ieq(p, n, "chunked");
	if (!s->last_chunked)
		s->unknown = true;
}

struct conn_scan {
	bool close, keep_alive;
};

static void conn_element(void *arg, const char *p, size_t n)
{
	struct conn_scan *s = arg;

	if (ieq(p, n, "close"))
		s->close = true;
	else if (ieq(p, n, "keep-alive"))
		s->keep_alive = true;
}

/* The whole head is buf[0..end): complete req (refilling its pointers from
 * buf when the scan took several calls) and apply the framing and semantic
 * rules. */
static enum h1_status head_finish(const struct h1_head *h, const char *buf, size_t end,
				  bool refill, struct h1_request *req, struct h1_field *fields,
				  size_t *consumed, struct h1_error *err)
{
	const char *why = NULL;
	const struct h1_field *cl = NULL;
	struct te_scan te = {0};
	struct conn_scan conn = {0};
	bool has_te = false, te_empty = false, expect_other = false, bad_host = false;
	unsigned hosts = 0;
	int st;

	if (refill) {
		/* all of it was checked as it arrived: this cannot fail */
		unsigned nf = 0;
		st = request_line(buf + h->req_start, h->block_start - 2 - h->req_start, req, &why);
		if (st)
			goto refuse_framing;
		for (size_t s = h->block_start; s < end - 2;) {
			const char *lf = memchr(buf + s, '\n', end - 2 - s);
			size_t e = (size_t)(lf - buf); /* the LF; the line ends at e - 1 */
			st = field_line(buf + s, e - 1 - s, &fields[nf++], &why);
			if (st)
				goto refuse_framing;
			s = e + 1;
		}
	}
	req->fields = fields;
	req->nfields = h->nfields;
	req->chunked = req->has_length = req->keep_alive = false;
	req->expect_continue = req->has_host = false;
	req->content_length = 0;

	for (unsigned i = 0; i < req->nfields; i++) {
		const struct h1_field *f = &fields[i];
		if (f->name_len == 14 && h1_name_is(f, "content-length")) {
			uint64_t x;
			if (!parse_length(f->value, f->value_len, &x)) {
				why = "Content-Length is not a plain decimal number within 64 bits";
				st = 400;
				goto refuse_framing;
			}
			if (cl && (cl->value_len != f->value_len ||
				   memcmp(cl->value, f->value, f->value_len) != 0)) {
				why = "several different Content-Length fields";
				st = 400;
				goto refuse_framing;
			}
			cl = f;
			req->has_length = true;
			req->content_length = x;
		} else if (f->name_len == 17 && h1_name_is(f, "transfer-encoding")) {
			has_te = true;
			if (f->value_len == 0)
				te_empty = true;
			list_each(f->value, f->value_len, te_element, &te);
		} else if (f->name_len == 4 && h1_name_is(f, "host")) {
			hosts++;
			if (!host_valid(f->value, f->value_len))
				bad_host = true;
		} else if (f->name_len == 6 && h1_name_is(f, "expect")) {
			if (ieq(f->value, f->value_len, "100-continue"))
				req->expect_continue = req->version_minor == 1;
			else
				expect_other = true;
		} else if (f->name_len == 10 && h1_name_is(f, "connection")) {
			list_each(f->value, f->value_len, conn_element, &conn);
		}
	}

	if (has_te) {
		st = 400;
		if (req->has_length) {
			why = "both Content-Length and Transfer-Encoding";
			goto refuse_framing;
		}
		if (req->version_minor == 0) {
			why = "Transfer-Encoding in an HTTP/1.0 request";
			goto refuse_framing;
		}
		if (te.malformed || te_empty || te.codings == 0) {
			why = "malformed Transfer-Encoding";
			goto refuse_framing;
		}
		if (te.chunked_not_last) {
			why = "chunked is not the final transfer coding (or is applied twice)";
			goto refuse_framing;
		}
		if (te.unknown) {
			why = "unsupported transfer coding (only chunked is)";
			st = 501;
			goto refuse_framing;
		}
		req->chunked = true;
	}
	req->has_host = hosts > 0;
	req->keep_alive = !conn.close && (req->version_minor == 1 || conn.keep_alive);

	/* The framing is sound from here: a refusal may leave the connection
	 * open when no body follows. */
	*consumed = end;
	if (hosts > 1) {
		why = "several Host fields";
		st = 400;
		goto refuse;
	}
	if (bad_host) {
		why = "invalid Host";
		st = 400;
		goto refuse;
	}
	if (hosts == 0 && req->version_minor == 1) {
		why = "HTTP/1.1 request without Host";
		st = 400;
		goto refuse;
	}
	if (expect_other) {
		why = "unsupported expectation (only 100-continue is)";
		st = 417;
		goto refuse;
	}
	return H1_HEAD_DONE;

refuse:
	set_err(err, st, why,
		req->chunked || (req->has_length && req->content_length > 0) || !req->keep_alive);
	return H1_ERROR;
refuse_framing:
	*consumed = 0;
	set_err(err, st, why, true);
	return H1_ERROR;
}

enum h1_status h1_head_parse(struct h1_head *h, const char *buf, size_t len,
			     const struct h1_limits *lim, struct h1_request *req,
			     struct h1_field *fields, size_t *consumed, struct h1_error *err)
{
	bool refill = h->scanned > 0; /* lines seen by earlier calls: their pointers are stale */
	size_t i = h->scanned;
	const char *why;
	int st;

	*consumed = 0;
	/* the request line, and empty lines before it, byte by byte */
	for (; i < len && !h->in_fields; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (i > h->line_start && buf[i - 1] == '\r' && c != '\n') {
			set_err(err, 400, "CR not followed by LF", true);
			goto fail;
		}
		if (c == '\n') {
			size_t n;
			if (i == h->line_start || buf[i - 1] != '\r') {
				set_err(err, 400, "bare LF line ending (CRLF required)", true);
				goto fail;
			}
			n = i - 1 - h->line_start;
			if (n == 0) {
				/* an empty line before the request: skipped, but
				 * counted against max_line, or endless CRLFs would
				 * pile up unread */
				if (i + 1 > lim->max_line) {
					set_err(err, 414, "request line too long", true);
					goto fail;
				}
			} else {
				st = request_line(buf + h->line_start, n, req, &why);
				if (st) {
					set_err(err, st, why, true);
					goto fail;
				}
				h->req_start = h->line_start;
				h->in_fields = true;
				h->block_start = i + 1;
			}
			h->line_start = i + 1;
			continue;
		}
		if (c != '\r' && (c < 0x20 || c >= 0x7f)) {
			set_err(err, 400, "invalid byte in the request line", true);
			goto fail;
		}
		if (c != '\r' && i + 1 > lim->max_line) {
			set_err(err, 414, "request line too long", true);
			goto fail;
		}
	}
	/* field lines, one memchr each; bytes past block_start + max_headers
	 * are never looked at: they are a 431 */
	while (i < len) {
		size_t limit = h->block_start + lim->max_headers;
		size_t stop = len < limit ? len : limit;
		const char *lf = i < stop ? memchr(buf + i, '\n', stop - i) : NULL;
		size_t e, n;

		if (!lf) {
			if (len > limit) {
				set_err(err, 431, "header section too large", true);
				goto fail;
			}
			break;
		}
		e = (size_t)(lf - buf);
		if (e == h->line_start || buf[e - 1] != '\r') {
			set_err(err, 400, "bare LF line ending (CRLF required)", true);
			goto fail;
		}
		n = e - 1 - h->line_start;
		if (n == 0) {
			h->scanned = e + 1;
			return head_finish(h, buf, e + 1, refill, req, fields, consumed, err);
		}
		if (h->nfields >= lim->max_fields) {
			set_err(err, 431, "too many header fields", true);
			goto fail;
		}
		st = field_line(buf + h->line_start, n, &fields[h->nfields], &why);
		if (st) {
			set_err(err, st, why, true);
			goto fail;
		}
		h->nfields++;
		h->line_start = i = e + 1;
	}
	h->scanned = len;
	return H1_MORE;
fail:
	h->scanned = len;
	return H1_ERROR;
}

/* ---- the body ---------------------------------------------------------- */

enum {
	B_DONE,
	B_LENGTH,     /* Content-Length body */
	B_SIZE,       /* chunk-size hex digits */
	B_EXT_NAME0,  /* after ';': the first byte of an extension name */
	B_EXT_NAME,
	B_EXT_VAL0,   /* after '=' */
	B_EXT_TOKEN,
	B_EXT_QUOTED,
	B_EXT_QPAIR,  /* after a backslash in a quoted value */
	B_EXT_AFTERQ, /* after the closing quote */
	B_SIZE_LF,    /* CR seen at the end of the chunk-size line */
	B_DATA,
	B_DATA_CR,
	B_DATA_LF,
	B_TR_START,   /* the start of a trailer line (or of the final CRLF) */
	B_TR_NAME,
	B_TR_VALUE,
	B_TR_LF,
	B_END_LF,
	B_FAILED,
};

int h1_body_init(struct h1_body *b, const struct h1_request *req, const struct h1_limits *lim,
		 uint64_t max_body, struct h1_error *err)
{
	memset(b, 0, sizeof(*b));
	b->max_body = max_body;
	b->max_chunk_line = lim->max_chunk_line;
	b->max_trailers = lim->max_trailers;
	if (req->chunked) {
		b->state = B_SIZE;
	} else if (req->has_length && req->content_length > 0) {
		if (req->content_length > max_body) {
			set_err(err, 413, "request body over max_body", true);
			b->state = B_FAILED;
			b->err_status = 413;
			b->err_why = err->why;
			return -1;
		}
		b->remaining = req->content_length;
		b->state = B_LENGTH;
	} else {
		b->state = B_DONE;
	}
	return 0;
}

/* One byte of the chunked framing outside chunk data. Returns 0 or an HTTP
 * status with *why. */
static int chunk_byte(struct h1_body *b, unsigned char c, const char **why)
{
	if (b->state >= B_SIZE && b->state <= B_EXT_AFTERQ && ++b->line_len > b->max_chunk_line) {
		*why = "chunk size line too long";
		return 400;
	}
	if (b->state >= B_TR_START && b->state <= B_END_LF && ++b->trailer_len > b->max_trailers) {
		*why = "trailer section too large";
		return 431;
	}
	switch (b->state) {
	case B_SIZE: {
		int v = hex_digit(c);
		if (v >= 0) {
			if (b->remaining > (UINT64_MAX >> 4)) {
				*why = "chunk size overflows 64 bits";
				return 400;
			}
			b->remaining = b->remaining << 4 | (uint64_t)v;
			b->digits++;
			return 0;
		}
		if (b->digits > 0 && (c == ';' || c == '\r')) {
			b->state = c == ';' ? B_EXT_NAME0 : B_SIZE_LF;
			return 0;
		}
		*why = "invalid chunk size (hex digits only)";
		return 400;
	}
	case B_EXT_NAME0:
		if (is_tchar(c)) {
			b->state = B_EXT_NAME;
			return 0;
		}
		break;
	case B_EXT_NAME:
		if (is_tchar(c))
			return 0;
		if (c == '=') {
			b->state = B_EXT_VAL0;
			return 0;
		}
		if (c == ';' || c == '\r') {
			b->state = c == ';' ? B_EXT_NAME0 : B_SIZE_LF;
			return 0;
		}
		break;
	case B_EXT_VAL0:
		if (is_tchar(c)) {
			b->state = B_EXT_TOKEN;
			return 0;
		}
		if (c == '"') {
			b->state = B_EXT_QUOTED;
			return 0;
		}
		break;
	case B_EXT_TOKEN:
		if (is_tchar(c))
			return 0;
		if (c == ';' || c == '\r') {
			b->state = c == ';' ? B_EXT_NAME0 : B_SIZE_LF;
			return 0;
		}
		break;
	case B_EXT_QUOTED: /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
		if (c == '"')
			b->state = B_EXT_AFTERQ;
		else if (c == '\\')
			b->state = B_EXT_QPAIR;
		else if (!is_value_char(c))
			break;
		return 0;
	case B_EXT_QPAIR:
		if (!is_value_char(c))
			break;
		b->state = B_EXT_QUOTED;
		return 0;
	case B_EXT_AFTERQ:
		if (c == ';' || c == '\r') {
			b->state = c == ';' ? B_EXT_NAME0 : B_SIZE_LF;
			return 0;
		}
		break;
	case B_SIZE_LF:
		if (c != '\n') {
			*why = "CR not followed by LF after a chunk size";
			return 400;
		}
		b->line_len = 0;
		b->digits = 0;
		if (b->remaining == 0) {
			b->state = B_TR_START;
		} else if (b->remaining > b->max_body - b->total) {
			*why = "request body over max_body";
			return 413;
		} else {
			b->state = B_DATA;
		}
		return 0;
	case B_DATA_CR:
		if (c != '\r') {
			*why = "no CRLF after chunk data";
			return 400;
		}
		b->state = B_DATA_LF;
		return 0;
	case B_DATA_LF:
		if (c != '\n') {
			*why = "no CRLF after chunk data";
			return 400;
		}
		b->state = B_SIZE;
		return 0;
	case B_TR_START:
		if (c == '\r') {
			b->state = B_END_LF;
			return 0;
		}
		if (is_tchar(c)) {
			b->state = B_TR_NAME;
			return 0;
		}
		*why = "malformed trailer field";
		return 400;
	case B_TR_NAME:
		if (is_tchar(c))
			return 0;
		if (c == ':') {
			b->state = B_TR_VALUE;
			return 0;
		}
		*why = "malformed trailer field";
		return 400;
	case B_TR_VALUE:
		if (c == '\r')
			b->state = B_TR_LF;
		else if (!is_value_char(c)) {
			*why = "control character in a trailer field";
			return 400;
		}
		return 0;
	case B_TR_LF:
	case B_END_LF:
		if (c != '\n') {
			*why = "CR not followed by LF in the trailer section";
			return 400;
		}
		b->state = b->state == B_TR_LF ? B_TR_START : B_DONE;
		return 0;
	default:
		break;
	}
	*why = "malformed chunk extension";
	return 400;
}

enum h1_status h1_body_feed(struct h1_body *b, const char *in, size_t n, size_t *consumed,
			    h1_sink_fn sink, void *arg, struct h1_error *err)
{
	size_t i = 0;
	const char *why = NULL;
	int st;

	*consumed = 0;
	if (b->state == B_FAILED) {
		set_err(err, b->err_status, b->err_why, true);
		return H1_ERROR;
	}
	while (i < n && b->state != B_DONE) {
		if (b->state == B_LENGTH || b->state == B_DATA) {
			size_t take = n - i;
			if (take > b->remaining)
				take = (size_t)b->remaining;
			if (sink && take > 0) {
				st = sink(arg, in + i, take);
				if (st) {
					why = "request body refused";
					goto fail;
				}
			}
			i += take;
			b->remaining -= take;
			b->total += take;
			if (b->remaining == 0)
				b->state = b->state == B_LENGTH ? B_DONE : B_DATA_CR;
			continue;
		}
		st = chunk_byte(b, (unsigned char)in[i], &why);
		i++;
		if (st)
			goto fail;
	}
	*consumed = i;
	return b->state == B_DONE ? H1_DONE : H1_BODY;
fail:
	*consumed = i;
	b->state = B_FAILED;
	b->err_status = st;
	b->err_why = why;
	set_err(err, st, why, true);
	return H1_ERROR;
}
