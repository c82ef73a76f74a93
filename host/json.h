/*
 * json -- parse request bodies and print JSON replies, exactly.
 *
 * Trees are cJSON's (the SDK's currency), but parsing and printing are our
 * own, because a relay of other people's payloads needs what cJSON lacks:
 *  - a strict RFC 8259 parser (cJSON takes 01, 1., raw tabs in strings)
 *    that validates UTF-8, refuses what it cannot represent instead of
 *    changing it (1e999, "\u0000"), says where and why input went wrong,
 *    and keeps no global state (cJSON_Parse writes a global error pointer);
 *  - a printer whose numbers parse back to the same double (cJSON's rounds
 *    to 15 digits and prints large integers in exponent form): integral
 *    values as plain digits (up to 1e21), others as the shortest of
 *    %.15g/%.16g/%.17g that round-trips;
 *  - integers written with more than 15 digits keep their original text in
 *    the node's valuestring and print back byte for byte unless a plugin
 *    changed the value (an id like 820982911946154508 survives a relay);
 *  - invalid UTF-8 in a string (a plugin's bug) prints as U+FFFD so that
 *    the reply stays valid JSON.
 *
 * All functions are thread-safe.
 */
#ifndef HOOKD_JSON_H
#define HOOKD_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* A growable byte buffer. Zero-initialise; free `data` with free(). */
struct jbuf {
	char *data;
	size_t len, cap;
	size_t limit;   /* 0: none; else len never grows past it (-E2BIG) */
};

/* Make room for `extra` more bytes. Returns 0, -ENOMEM or -E2BIG. */
int jbuf_reserve(struct jbuf *b, size_t extra);
/* Append bytes. Returns 0, -ENOMEM or -E2BIG. */
int jbuf_append(struct jbuf *b, const void *p, size_t n);
/* Release the buffer's memory and zero it. */
void jbuf_free(struct jbuf *b);

/* Append the compact JSON text of `item` to `out` (no NUL terminator).
 * Returns 0; -ENOMEM; -E2BIG when out->limit would be passed (printing
 * stops there, so a huge tree costs no more than `limit` bytes of work);
 * or -EINVAL for a tree that is not valid JSON: an invalid item type, an
 * object member without a name, a NaN or infinite number, a raw item whose
 * text is not one JSON value, nesting deeper than 10000. On error `out` is
 * as it was. `item` is not modified. */
int json_print(const cJSON *item, struct jbuf *out);

/* Print `item` into a new NUL-terminated string (caller frees), or NULL. */
char *json_print_string(const cJSON *item);

/* Format a number the way json_print does; `buf` needs 32 bytes. Returns
 * the length written (no NUL counted; a NUL is written). */
size_t json_format_number(double d, char *buf);

/* Returns true if s[0..n) is valid UTF-8 (no overlongs, no surrogates, no
 * code point above U+10FFFF). On false, *bad (if non-NULL) is the offset of
 * the first invalid byte. */
bool json_utf8_valid(const char *s, size_t n, size_t *bad);

/* Parse exactly one JSON value from s[0..n) (trailing whitespace allowed).
 * On success returns 0 and *out owns a new tree (free with cJSON_Delete).
 * On failure returns -EINVAL and writes a one-line reason naming the byte,
 * line and column into err[0..errlen). `s` need not be NUL-terminated. */
int json_parse(const char *s, size_t n, cJSON **out, char *err, size_t errlen);

/* The same, making at most `max_values` values (nodes; 0: no bound): past
 * it, -E2BIG with the reason in err, having freed what it built (at most
 * max_values nodes at any time). On success *values (if non-NULL) is the
 * number of values of the tree. */
int json_parse_max(const char *s, size_t n, size_t max_values, cJSON **out, size_t *values,
		   char *err, size_t errlen);

/* The item at JSON pointer `ptr` (RFC 6901: "/a/0/b", ~1 for '/', ~0 for
 * '~'; "" is the root) in root, or NULL (also for a reference token
 * longer than 255 bytes). Borrowed from root. */
const cJSON *json_pointer_get(const cJSON *root, const char *ptr);

#endif
