/*
 * hex -- the value of one hexadecimal digit, shared by the parsers that
 * read them (json \u escapes, form %XX, chunk sizes, hex signatures).
 */
#ifndef HOOKD_HEX_H
#define HOOKD_HEX_H

/* 0..15 for [0-9a-fA-F], -1 for anything else (any int, EOF included). */
static inline int hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
