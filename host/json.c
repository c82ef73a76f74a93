/*
 * json -- see json.h. The printer walks the cJSON tree itself rather than
 * calling cJSON_Print*, because cJSON's number printing is lossy: it
 * prints %1.15g and accepts a merely close double, so 139.70372892916203
 * comes back as 139.703728929162 and the id 788032119674292900 as
 * 7.88032119674293e+17.
 */
#include "json.h"
#include "hex.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
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
	if (b->limit && need > b->limit)
		return -E2BIG;
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
	int rc = jbuf_reserve(b, n);

	if (rc < 0)
		return rc;
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

	size_t limit = out->limit;
	int rc;

	/* at least n + 2 bytes: past the limit already? */
	if (limit && (n > SIZE_MAX - 2 || out->len + n + 2 > limit))
		return -E2BIG;
	/* worst case every byte becomes \ufffd (6 bytes): reserve that much
	 * even past the limit, and check the limit on what was written */
	if (n > (SIZE_MAX - 2) / 6)
		return -ENOMEM;
	out->limit = 0;
	rc = jbuf_reserve(out, n * 6 + 2);
	out->limit = limit;
	if (rc < 0)
		return rc;
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
	if (limit && (size_t)(o - out->data) > limit)
		return -E2BIG; /* out->len unchanged: nothing of it counts */
	out->len = (size_t)(o - out->data);
	return 0;
}

static bool raw_valid(const char *text)
{
	cJSON *tree = NULL;
	char err[8];
	bool ok = json_parse(text, strlen(text), &tree, err, sizeof(err)) == 0;

	cJSON_Delete(tree);
	return ok;
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
		/* an integer parsed from more digits than a double holds keeps its
		 * text, printed as long as the value was not changed since */
		if (item->valuestring && strtod(item->valuestring, NULL) == item->valuedouble)
			return jbuf_append(out, item->valuestring, strlen(item->valuestring));
		if (!isfinite(item->valuedouble))
			return -EINVAL; /* JSON has no NaN or infinity */
		return jbuf_append(out, num, json_format_number(item->valuedouble, num));
	case cJSON_String:
		if (!item->valuestring)
			return -EINVAL;
		return print_string(item->valuestring, out);
	case cJSON_Raw:
		/* printed as it is, so it must be one valid JSON value */
		if (!item->valuestring || !raw_valid(item->valuestring))
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

/*
 * The parser: strict RFC 8259, recursive descent, building cJSON nodes the
 * way cJSON itself allocates them (malloc/calloc, cJSON's default hooks), so
 * cJSON_Delete and every cJSON function work on the result. Compared with
 * cJSON_Parse it keeps no global state (cJSON writes a global error
 * pointer on every parse), validates UTF-8 and control characters inside
 * strings as it goes, refuses what RFC 8259 refuses (01, 1., .5, 1.e5,
 * raw tabs in strings), refuses values cJSON would silently change (1e999
 * becomes infinity and prints as null; "\u0000" truncates a C string), and
 * reports where and why it stopped.
 */
struct jparse {
	const char *s, *end, *p;
	const char *why; /* what went wrong at p */
	int depth;
	size_t values, max_values; /* values made so far, and the bound (0: none) */
};

#define JSON_MAX_DEPTH CJSON_NESTING_LIMIT

static void skip_ws(struct jparse *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
		j->p++;
}

static cJSON *new_node(int type)
{
	cJSON *n = calloc(1, sizeof(*n));

	if (n)
		n->type = type;
	return n;
}


static bool read_hex4(struct jparse *j, const char *q, unsigned *out)
{
	unsigned v = 0;

	if (j->end - q < 4)
		return false;
	for (int i = 0; i < 4; i++) {
		int h = hex_digit(q[i]);
		if (h < 0)
			return false;
		v = v << 4 | (unsigned)h;
	}
	*out = v;
	return true;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Parse a string at j->p (on the opening quote) into a new NUL-terminated
 * buffer. */
static char *parse_string(struct jparse *j)
{
	const unsigned char *q = (const unsigned char *)j->p + 1, *e = (const unsigned char *)j->end;
	const unsigned char *start = q;
	bool escapes = false;
	char *out, *o;

	/* pass 1: find the end, validate; escapes are decoded in pass 2 */
	for (;;) {
		while (q < e && *q >= 0x20 && *q != '"' && *q != '\\' && *q < 0x80)
			q++;
		if (q >= e) {
			j->p = (const char *)q;
			j->why = "unterminated string";
			return NULL;
		}
		if (*q == '"')
			break;
		if (*q == '\\') {
			escapes = true;
			if (q + 1 >= e) {
				j->p = (const char *)q;
				j->why = "unterminated string";
				return NULL;
			}
			q += q[1] == 'u' ? 6 : 2;
			if (q > e) {
				j->p = (const char *)e;
				j->why = "unterminated string";
				return NULL;
			}
			continue;
		}
		if (*q < 0x20) {
			j->p = (const char *)q;
			j->why = "control character in a string (escape it)";
			return NULL;
		}
		size_t l = utf8_seq_len(q, (size_t)(e - q));
		if (!l) {
			j->p = (const char *)q;
			j->why = "invalid UTF-8";
			return NULL;
		}
		q += l;
	}
	out = malloc((size_t)(q - start) + 1);
	if (!out) {
		j->why = "out of memory";
		return NULL;
	}
	if (!escapes) {
		memcpy(out, start, (size_t)(q - start));
		out[q - start] = '\0';
		j->p = (const char *)q + 1;
		return out;
	}
	/* pass 2: decode (the output is never longer than the input) */
	o = out;
	const unsigned char *r;
	for (r = start; r < q;) {
		if (*r != '\\') {
			*o++ = (char)*r++;
			continue;
		}
		switch (r[1]) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/': *o++ = '/'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			unsigned cp, lo;
			if (!read_hex4(j, (const char *)r + 2, &cp))
				goto bad_escape;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				/* a high surrogate must be followed by \uDC00-\uDFFF */
				if (r + 12 > q || r[6] != '\\' || r[7] != 'u' ||
				    !read_hex4(j, (const char *)r + 8, &lo) || lo < 0xdc00 || lo > 0xdfff)
					goto bad_surrogate;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				r += 6;
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				goto bad_surrogate;
			} else if (cp == 0) {
				j->p = (const char *)r;
				j->why = "\\u0000 in a string is not supported";
				free(out);
				return NULL;
			}
			o += put_utf8(o, cp);
			r += 6;
			continue;
		}
		default:
			goto bad_escape;
		}
		r += 2;
	}
	*o = '\0';
	j->p = (const char *)q + 1;
	return out;
bad_escape:
	j->why = "invalid escape in a string";
	goto fail_at;
bad_surrogate:
	j->why = "unpaired UTF-16 surrogate in a \\u escape";
fail_at:
	j->p = (const char *)r; /* report at the escape */
	free(out);
	return NULL;
}

/* Integers with more digits than this may not survive a double: keep
 * their text (see json.h). */
#define JSON_EXACT_DIGITS 15

static cJSON *parse_number(struct jparse *j)
{
	const char *q = j->p, *e = j->end, *start = q;
	bool integral = true;
	int digits = 0;
	int64_t iv = 0;
	char buf[64], *tmp = NULL;
	double d;
	cJSON *n;

	if (q < e && *q == '-')
		q++;
	if (q >= e || *q < '0' || *q > '9') {
		j->p = q;
		j->why = "invalid number";
		return NULL;
	}
	if (*q == '0') {
		q++;
		if (q < e && *q >= '0' && *q <= '9') {
			j->p = q;
			j->why = "leading zero in a number";
			return NULL;
		}
		digits = 1;
	} else {
		while (q < e && *q >= '0' && *q <= '9') {
			if (digits < 18)
				iv = iv * 10 + (*q - '0');
			digits++;
			q++;
		}
	}
	if (q < e && *q == '.') {
		integral = false;
		q++;
		if (q >= e || *q < '0' || *q > '9') {
			j->p = q;
			j->why = "a digit must follow the decimal point";
			return NULL;
		}
		while (q < e && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < e && (*q == 'e' || *q == 'E')) {
		integral = false;
		q++;
		if (q < e && (*q == '+' || *q == '-'))
			q++;
		if (q >= e || *q < '0' || *q > '9') {
			j->p = q;
			j->why = "a digit must follow the exponent";
			return NULL;
		}
		while (q < e && *q >= '0' && *q <= '9')
			q++;
	}
	if (integral && digits <= JSON_EXACT_DIGITS) {
		d = (double)(*start == '-' ? -iv : iv); /* exact */
		if (d == 0 && *start == '-')
			d = -0.0;
	} else {
		size_t len = (size_t)(q - start);
		char *text = len < sizeof(buf) ? buf : (tmp = malloc(len + 1));
		if (!text) {
			j->why = "out of memory";
			return NULL;
		}
		memcpy(text, start, len);
		text[len] = '\0';
		d = strtod(text, NULL);
		free(tmp);
		if (!isfinite(d)) {
			j->p = start;
			j->why = "number out of range";
			return NULL;
		}
	}
	if (!(n = new_node(cJSON_Number))) {
		j->why = "out of memory";
		return NULL;
	}
	n->valuedouble = d;
	n->valueint = d >= INT_MAX ? INT_MAX : d <= (double)INT_MIN ? INT_MIN : (int)d;
	if (integral && digits > JSON_EXACT_DIGITS &&
	    !(n->valuestring = strndup(start, (size_t)(q - start)))) {
		cJSON_Delete(n);
		j->why = "out of memory";
		return NULL;
	}
	j->p = q;
	return n;
}

static cJSON *parse_value(struct jparse *j);

static bool literal(struct jparse *j, const char *word, size_t len)
{
	if ((size_t)(j->end - j->p) < len || memcmp(j->p, word, len) != 0) {
		j->why = "invalid literal (expected true, false or null)";
		return false;
	}
	j->p += len;
	return true;
}

/* Array or object at j->p ('[' or '{'). */
static cJSON *parse_container(struct jparse *j)
{
	bool obj = *j->p == '{';
	char close = obj ? '}' : ']';
	cJSON *c, *last = NULL;

	if (++j->depth > JSON_MAX_DEPTH) {
		j->why = "nesting deeper than 1000 levels";
		return NULL;
	}
	if (!(c = new_node(obj ? cJSON_Object : cJSON_Array))) {
		j->why = "out of memory";
		return NULL;
	}
	j->p++;
	skip_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		j->depth--;
		return c;
	}
	for (;;) {
		char *key = NULL;
		cJSON *v;

		if (obj) {
			skip_ws(j);
			if (j->p >= j->end || *j->p != '"') {
				j->why = "expected a member name in quotes";
				goto fail;
			}
			if (!(key = parse_string(j)))
				goto fail;
			skip_ws(j);
			if (j->p >= j->end || *j->p != ':') {
				free(key);
				j->why = "expected ':' after a member name";
				goto fail;
			}
			j->p++;
		}
		if (!(v = parse_value(j))) {
			free(key);
			goto fail;
		}
		v->string = key;
		if (last) {
			last->next = v;
			v->prev = last;
		} else {
			c->child = v;
		}
		c->child->prev = v; /* cJSON keeps the tail in child->prev */
		last = v;
		skip_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			j->depth--;
			return c;
		}
		j->why = obj ? "expected ',' or '}'" : "expected ',' or ']'";
		goto fail;
	}
fail:
	cJSON_Delete(c);
	return NULL;
}

static cJSON *parse_value(struct jparse *j)
{
	cJSON *n;
	char *str;

	skip_ws(j);
	if (j->p >= j->end) {
		j->why = "unexpected end of input: expected a value";
		return NULL;
	}
	if (++j->values > j->max_values && j->max_values) {
		j->why = "too many values";
		return NULL;
	}
	switch (*j->p) {
	case '{':
	case '[':
		return parse_container(j);
	case '"':
		if (!(str = parse_string(j)))
			return NULL;
		if (!(n = new_node(cJSON_String))) {
			free(str);
			j->why = "out of memory";
			return NULL;
		}
		n->valuestring = str;
		return n;
	case 't':
		return literal(j, "true", 4) ? new_node(cJSON_True) : NULL;
	case 'f':
		return literal(j, "false", 5) ? new_node(cJSON_False) : NULL;
	case 'n':
		return literal(j, "null", 4) ? new_node(cJSON_NULL) : NULL;
	default:
		if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
			return parse_number(j);
		j->why = "expected a value";
		return NULL;
	}
}

int json_parse(const char *s, size_t n, cJSON **out, char *err, size_t errlen)
{
	return json_parse_max(s, n, 0, out, NULL, err, errlen);
}

int json_parse_max(const char *s, size_t n, size_t max_values, cJSON **out, size_t *values,
		   char *err, size_t errlen)
{
	struct jparse j = {s, s + n, s, NULL, 0, 0, max_values};
	size_t line, col, off;
	cJSON *root;

	*out = NULL;
	if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		j.p += 3; /* a UTF-8 byte order mark: tolerated, as RFC 8259 allows */
	skip_ws(&j);
	if (j.p >= j.end) {
		snprintf(err, errlen, "empty body: expected a JSON value");
		return -EINVAL;
	}
	root = parse_value(&j);
	if (root) {
		skip_ws(&j);
		if (j.p < j.end) {
			cJSON_Delete(root);
			root = NULL;
			j.why = "unexpected data after the value";
		}
	}
	if (!root && max_values && j.values > max_values) {
		snprintf(err, errlen, "the JSON body has more than %zu values (http.max_json_values)",
			 max_values);
		return -E2BIG;
	}
	if (!root) {
		off = (size_t)(j.p - s);
		if (off > n)
			off = n;
		line_col(s, off, &line, &col);
		if (off < n && (unsigned char)s[off] >= 0x80 &&
		    !utf8_seq_len((const unsigned char *)s + off, n - off))
			j.why = "invalid UTF-8"; /* say so even where JSON was broken anyway */
		if (strcmp(j.why, "invalid UTF-8") == 0)
			snprintf(err, errlen, "invalid UTF-8 at byte %zu (line %zu, column %zu)", off,
				 line, col);
		else if (off >= n)
			snprintf(err, errlen, "invalid JSON: unexpected end of input at byte %zu "
				 "(line %zu, column %zu): %s", off, line, col, j.why);
		else
			snprintf(err, errlen, "invalid JSON at byte %zu (line %zu, column %zu): %s", off,
				 line, col, j.why);
		return -EINVAL;
	}
	*out = root;
	if (values)
		*values = j.values;
	return 0;
}

const cJSON *json_pointer_get(const cJSON *root, const char *ptr)
{
	const cJSON *cur = root;
	char tok[256];

	if (!ptr || (*ptr && *ptr != '/'))
		return NULL;
	while (cur && *ptr == '/') {
		size_t n = 0;
		ptr++;
		for (; *ptr && *ptr != '/'; ptr++) {
			char c = *ptr;
			if (c == '~') {
				if (ptr[1] != '0' && ptr[1] != '1')
					return NULL;
				c = ptr[1] == '0' ? '~' : '/';
				ptr++;
			}
			if (n + 1 >= sizeof(tok))
				return NULL;
			tok[n++] = c;
		}
		tok[n] = '\0';
		if (cJSON_IsObject(cur)) {
			cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
		} else if (cJSON_IsArray(cur)) {
			char *end;
			unsigned long i;
			if (!n || (n > 1 && tok[0] == '0') || tok[0] < '0' || tok[0] > '9')
				return NULL;
			i = strtoul(tok, &end, 10);
			if (*end || i > INT32_MAX)
				return NULL;
			cur = cJSON_GetArrayItem(cur, (int)i);
		} else {
			return NULL;
		}
	}
	return cur;
}
