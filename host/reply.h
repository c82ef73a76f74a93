/*
 * reply -- how the steps of a hook call shape its successful reply
 * (set_status, set_header, set_body in sdk/hookd.h): the validation of what
 * a plugin asks for, and the settings of one step or one call.
 *
 * A step records its own settings (on the thread that runs it); the loop
 * merges them into the call's when the step succeeds, so nothing here is
 * ever shared between threads.
 */
#ifndef HOOKD_REPLY_H
#define HOOKD_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define REPLY_MAX_HEADERS 32
#define REPLY_MAX_HEADER_BYTES 8192 /* one header's name and value together */

struct reply_header {
	char *name, *value; /* owned; value NULL: removed (a step undoing an earlier one) */
};

struct reply {
	int status;              /* 0: not set (200) */
	bool body_set;           /* set_body was called (body may then be NULL: JSON again) */
	char *body;              /* owned raw body, or NULL: the JSON output */
	size_t body_len;
	char *content_type;      /* owned, with body */
	struct reply_header headers[REPLY_MAX_HEADERS];
	unsigned nheaders;
};

/* The setters return 0 or HOOKD_EINVAL / HOOKD_EFORBIDDEN / HOOKD_ENOMEM
 * (sdk/hookd.h); *r is unchanged on an error. Arguments are copied. */
int reply_set_status(struct reply *r, int status);
int reply_set_header(struct reply *r, const char *name, const char *value);
int reply_set_body(struct reply *r, const void *body, size_t len, const char *content_type);

/* Is `name` a header hookd owns (framing, hop-by-hop, its own)? */
bool reply_header_forbidden(const char *name);

/* Move what `from` set onto `into` (later settings win); `from` is left
 * empty. */
void reply_merge(struct reply *into, struct reply *from);

/* Free what r owns; r is empty again. */
void reply_clear(struct reply *r);

/* Free an allocated r and what it owns (NULL: nothing). */
void reply_free(struct reply *r);

/* The wire form (an isolated step's RESULT frame): append r to b / read
 * one back from [*p, end) into *out (empty before). Return 0, -ENOMEM, or
 * -EINVAL (short or malformed). */
struct jbuf;
int reply_encode(const struct reply *r, struct jbuf *b);
int reply_decode(const char **p, const char *end, struct reply *out);

#endif
