/*
 * name -- what a plugin or hook name may be: 1 to 64 of [A-Za-z0-9_.-].
 * One rule for the config, the loader and the URL router, so that a name
 * one accepts the others accept too.
 */
#ifndef HOOKD_NAME_H
#define HOOKD_NAME_H

#include <stdbool.h>
#include <stddef.h>

#define NAME_MAX_LEN 64

static inline bool name_valid(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++) {
		char c = s[n];
		if (n >= NAME_MAX_LEN)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return n >= 1;
}

#endif
