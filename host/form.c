/*
 * form -- see form.h.
 */
#include "form.h"
#include "hex.h"
#include "json.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Decode s[0..n) into out (n + 1 bytes at least), NUL-terminated. Returns
 * the decoded length, or -1 with err set. */
static long decode(const char *s, size_t n, char *out, const char *what, char *err,
		   size_t errlen)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			out[o++] = ' ';
		} else if (c == '%') {
			int hi = i + 2 < n ? hex_digit((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < n ? hex_digit((unsigned char)s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				snprintf(err, errlen, "form body: bad %%-escape in a %s at byte %zu",
					 what, i);
				return -1;
			}
			if (hi == 0 && lo == 0) {
				snprintf(err, errlen, "form body: a %s holds a NUL byte (%%00)", what);
				return -1;
			}
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '\0') {
			snprintf(err, errlen, "form body: a NUL byte at byte %zu", i);
			return -1;
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	size_t bad;
	if (!json_utf8_valid(out, o, &bad)) {
		snprintf(err, errlen, "form body: a %s is not UTF-8 once decoded", what);
		return -1;
	}
	return (long)o;
}

int form_parse(const char *text, size_t len, cJSON **out, char *err, size_t errlen)
{
	cJSON *o = cJSON_CreateObject();
	char *buf = malloc(len + 2);
	size_t i = 0;

	*out = NULL;
	if (!o || !buf) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	while (i <= len) {
		const char *pair = text + i;
		const char *amp = memchr(pair, '&', len - i);
		size_t plen = amp ? (size_t)(amp - pair) : len - i;
		const char *eq = memchr(pair, '=', plen);
		size_t nlen = eq ? (size_t)(eq - pair) : plen;
		char *name, *value;
		cJSON *v;

		i += plen + 1;
		if (plen == 0)
			continue;
		if (nlen == 0) {
			snprintf(err, errlen, "form body: a pair with an empty name at byte %zu",
				 (size_t)(pair - text));
			goto fail;
		}
		name = buf;
		if (decode(pair, nlen, name, "name", err, errlen) < 0)
			goto fail;
		name = strdup(name);
		if (!name) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		value = buf;
		if (decode(eq ? eq + 1 : "", eq ? plen - nlen - 1 : 0, value, "value", err,
			   errlen) < 0) {
			free(name);
			goto fail;
		}
		v = cJSON_CreateString(value);
		if (!v || (cJSON_GetObjectItemCaseSensitive(o, name)
				   ? !cJSON_ReplaceItemInObjectCaseSensitive(o, name, v)
				   : !cJSON_AddItemToObject(o, name, v))) {
			cJSON_Delete(v);
			free(name);
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		free(name);
	}
	free(buf);
	*out = o;
	return 0;
fail:
	free(buf);
	cJSON_Delete(o);
	return -1;
}
