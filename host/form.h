/*
 * form -- application/x-www-form-urlencoded bodies (hooks.<name>.accept
 * "form"): name=value pairs joined by '&', '+' for a space and %XX escapes,
 * decoded into a JSON object of strings, the input of a hook's first step.
 */
#ifndef HOOKD_FORM_H
#define HOOKD_FORM_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Decode text[0..len) into *out, a new object (caller owns): one string
 * member per pair, in order; a name given twice keeps its last value; a
 * pair without '=' has the value ""; empty pairs ("a=1&&b=2") are skipped.
 * Returns 0, or -1 with a one-line reason in err (a bad %-escape, a NUL, an
 * empty name, text that is not UTF-8 once decoded, out of memory). */
int form_parse(const char *text, size_t len, cJSON **out, char *err, size_t errlen);

#endif
