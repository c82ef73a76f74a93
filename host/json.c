/*
 * json -- see json.h. The printer walks the cJSON tree itself rather than
 * calling cJSON_Print*, because cJSON's number printing is lossy
 * (PITFALLS: "cJSON's printer changes numbers").
 */
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_PRINT_MAX_DEPTH 10000

int jbuf_reserve(struct jbuf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (extra > SIZE_MAX - b->len)
		return -ENOMEM;
	need = b->len + extra;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int jbuf_append(struct jbuf *b, const void *p, size_t n)
{
	if (jbuf_reserve(b, n) < 0)
		return -ENOMEM;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void jbuf_free(struct jbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Length of the valid UTF-8 sequence starting at s (n bytes available), or
 * 0 if the byte at s does not start one. s[0] >= 0x80. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];

	if (c >= 0xc2 && c <= 0xdf) {
		if (n >= 2 && (s[1] & 0xc0) == 0x80)
			return 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0) /* overlong */
			return 0;
		if (c == 0xed && s[1] >= 0xa0) /* UTF-16 surrogate */
			return 0;
		return 3;
	} else if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90) /* overlong */
			return 0;
		if (c == 0xf4 && s[1] >= 0x90) /* above U+10FFFF */
			return 0;
		return 4;
	}
	return 0;
}

bool json_utf8_valid(const char *str, size_t n, size_t *bad)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		/* ASCII fast path, eight bytes at a time */
		while (i + 8 <= n) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (w & 0x8080808080808080ull)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		size_t l = utf8_seq_len(s + i, n - i);
		if (l == 0) {
			if (bad)
				*bad = i;
			return false;
		}
		i += l;
	}
	return true;
}

/* Print an int64 in decimal; returns length. */
static size_t fmt_i64(int64_t v, char *buf)
{
	char tmp[24];
	size_t n = 0, len = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		buf[len++] = '-';
	while (n)
		buf[len++] = tmp[--n];
	buf[len] = '\0';
	return len;
}

/* Rewrite a %g rendering of an integral value ("7.880321196742929e+17") as
 * plain digits ("788032119674292900"). Only called for |d| < 1e21. */
static size_t expand_exponent(char *buf, size_t len)
{
	char digits[32], *e = memchr(buf, 'e', len);
	size_t nd = 0, out = 0;
	long exp10;

	if (!e)
		return len;
	exp10 = strtol(e + 1, NULL, 10);
	for (char *p = buf; p < e; p++)
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	/* digits d0.d1d2... x 10^exp10; integral so exp10 >= nd - 1 */
	if (buf[0] == '-')
		buf[out++] = '-';
	for (size_t i = 0; i < nd; i++)
		buf[out++] = digits[i];
	for (long z = exp10 - (long)nd + 1; z > 0; z--)
		buf[out++] = '0';
	buf[out] = '\0';
	return out;
}

size_t json_format_number(double d, char *buf)
{
	int len = 0;

	if (!isfinite(d)) {
		memcpy(buf, "null", 5);
		return 4;
	}
	if (d == 0) {
		if (signbit(d)) {
			memcpy(buf, "-0", 3);
			return 2;
		}
		memcpy(buf, "0", 2);
		return 1;
	}
	if (fabs(d) < 9007199254740992.0 && d == (double)(int64_t)d)
		return fmt_i64((int64_t)d, buf);
	for (int prec = 15; prec <= 17; prec++) {
		len = snprintf(buf, 32, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	if (d == floor(d) && fabs(d) < 1e21)
		return expand_exponent(buf, (size_t)len);
	return (size_t)len;
}

static const char hexdig[] = "0123456789abcdef";

static int print_string(const char *str, struct jbuf *out)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run, n = strlen(str);

	/* worst case every byte becomes \ufffd (6 bytes) */
	if (n > (SIZE_MAX - 2) / 6 || jbuf_reserve(out, n * 6 + 2) < 0)
		return -ENOMEM;
	char *o = out->data + out->len;
	*o++ = '"';
	while (i < n) {
		run = i;
		while (run < n && s[run] >= 0x20 && s[run] != '"' && s[run] != '\\' &&
		       s[run] < 0x80)
			run++;
		memcpy(o, s + i, run - i);
		o += run - i;
		i = run;
		if (i >= n)
			break;
		unsigned char c = s[i];
		if (c >= 0x80) {
			size_t l = utf8_seq_len(s + i, n - i);
			if (l) {
				memcpy(o, s + i, l);
				o += l;
				i += l;
			} else {
				memcpy(o, "\\ufffd", 6);
				o += 6;
				i++;
			}
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hexdig[c >> 4];
			*o++ = hexdig[c & 15];
		}
		i++;
	}
	*o++ = '"';
	out->len = (size_t)(o - out->data);
	return 0;
}

static int print_value(const cJSON *item, struct jbuf *out, int depth)
{
	char num[32];
	int rc;

	if (depth > JSON_PRINT_MAX_DEPTH)
		return -EINVAL;
	switch (item->type & 0xff) {
	case cJSON_NULL:
		return jbuf_append(out, "null", 4);
	case cJSON_False:
		return jbuf_append(out, "false", 5);
	case cJSON_True:
		return jbuf_append(out, "true", 4);
	case cJSON_Number:
		return jbuf_append(out, num, json_format_number(item->valuedouble, num));
	case cJSON_String:
		if (!item->valuestring)
			return -EINVAL;
		return print_string(item->valuestring, out);
	case cJSON_Raw:
		if (!item->valuestring)
			return -EINVAL;
		return jbuf_append(out, item->valuestring, strlen(item->valuestring));
	case cJSON_Array:
	case cJSON_Object: {
		int is_obj = (item->type & 0xff) == cJSON_Object;
		if ((rc = jbuf_append(out, is_obj ? "{" : "[", 1)) < 0)
			return rc;
		for (const cJSON *c = item->child; c; c = c->next) {
			if (c != item->child && (rc = jbuf_append(out, ",", 1)) < 0)
				return rc;
			if (is_obj) {
				if (!c->string)
					return -EINVAL;
				if ((rc = print_string(c->string, out)) < 0 ||
				    (rc = jbuf_append(out, ":", 1)) < 0)
					return rc;
			}
			if ((rc = print_value(c, out, depth + 1)) < 0)
				return rc;
		}
		return jbuf_append(out, is_obj ? "}" : "]", 1);
	}
	default:
		return -EINVAL;
	}
}

int json_print(const cJSON *item, struct jbuf *out)
{
	size_t start = out->len;
	int rc;

	if (!item)
		return -EINVAL;
	rc = print_value(item, out, 0);
	if (rc < 0)
		out->len = start;
	return rc;
}

char *json_print_string(const cJSON *item)
{
	struct jbuf b = {0};

	if (json_print(item, &b) < 0 || jbuf_append(&b, "", 1) < 0) {
		jbuf_free(&b);
		return NULL;
	}
	return b.data;
}

/* Line and column (1-based) of byte `off` in s. */
static void line_col(const char *s, size_t off, size_t *line, size_t *col)
{
	size_t l = 1, c = 1;

	for (size_t i = 0; i < off; i++) {
		if (s[i] == '\n') {
			l++;
			c = 1;
		} else {
			c++;
		}
	}
	*line = l;
	*col = c;
}

int json_parse(const char *s, size_t n, cJSON **out, char *err, size_t errlen)
{
	const char *end = NULL;
	size_t bad, line, col, off;
	cJSON *root;

	*out = NULL;
	if (n == 0) {
		snprintf(err, errlen, "empty body: expected a JSON value");
		return -EINVAL;
	}
	if (!json_utf8_valid(s, n, &bad)) {
		line_col(s, bad, &line, &col);
		snprintf(err, errlen, "invalid UTF-8 at byte %zu (line %zu, column %zu)", bad, line,
			 col);
		return -EINVAL;
	}
	root = cJSON_ParseWithLengthOpts(s, n, &end, 0);
	if (!root) {
		off = end && end >= s && end <= s + n ? (size_t)(end - s) : 0;
		line_col(s, off, &line, &col);
		if (off >= n)
			snprintf(err, errlen, "invalid JSON: unexpected end of input at byte %zu "
				 "(line %zu, column %zu)", off, line, col);
		else
			snprintf(err, errlen, "invalid JSON at byte %zu (line %zu, column %zu)",
				 off, line, col);
		return -EINVAL;
	}
	off = (size_t)(end - s);
	while (off < n && (s[off] == ' ' || s[off] == '\t' || s[off] == '\n' || s[off] == '\r'))
		off++;
	if (off < n) {
		cJSON_Delete(root);
		line_col(s, off, &line, &col);
		snprintf(err, errlen, "invalid JSON: unexpected data after the value at byte %zu "
			 "(line %zu, column %zu)", off, line, col);
		return -EINVAL;
	}
	*out = root;
	return 0;
}
