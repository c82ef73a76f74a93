/*
 * dedup -- the table that remembers webhook deliveries by (hook, key), so
 * that a repeat of a delivery that succeeded is answered with the first
 * reply without running the chain, a repeat while the first still runs is
 * told so, and a failed delivery may be retried.
 *
 * One table per process, shared by every event loop: all state is under
 * one mutex, held for lookups and pointer moves only. Allocation and
 * copying of replies happen outside it (a stored reply is immutable and
 * refcounted; a replay copies it after the lock is released), and entries
 * evicted under the lock are freed after it.
 *
 * Invariants:
 *   - An entry is IN_FLIGHT (its first delivery runs; it is never evicted
 *     and never expires: the caller's dedup_finish ends it) or DONE (the
 *     delivery succeeded at done_ns; kept until done_ns + ttl).
 *   - Per hook, at most lim->max_entries entries (both states) and at most
 *     lim->max_bytes stored bytes (DONE entries: key + content type + body
 *     + headers). A hook's flood evicts only that hook's oldest DONE
 *     entries, never another hook's.
 *   - DONE entries sit in their hook's list in the order they finished:
 *     expiry and eviction pop from its head (O(1) amortised).
 *   - The limits are those passed with each call (a reload may change
 *     them); the TTL is applied when looking, so a shorter TTL after a
 *     reload takes effect at once.
 *   - Keys may come from hostile clients: buckets are chosen by SipHash-2-4
 *     under a per-table random key (getrandom).
 */
#ifndef HOOKD_DEDUP_H
#define HOOKD_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest key a caller should pass (the caller checks; longer keys
 * work but cost their length in stored bytes). */
#define DEDUP_KEY_MAX 256

struct dedup;

struct dedup_limits {
	uint32_t ttl_s;        /* how long a DONE entry is remembered (from its finish) */
	uint32_t max_entries;  /* per hook: entries (both states) at most; 0 admits none */
	size_t max_bytes;      /* per hook: bytes of stored replies (bodies + headers + key) at most */
};

/* A stored reply: everything the transport needs to answer a repeat. */
struct dedup_reply {
	int status;
	char *content_type;   /* NUL-terminated, owned */
	char *body;           /* owned, body_len bytes (may be NULL when 0) */
	size_t body_len;
	char *headers;        /* owned opaque blob the transport encodes (e.g. "name\0value\0..."), may be NULL */
	size_t headers_len;
};

enum dedup_verdict {
	DEDUP_FIRST,     /* new: an IN_FLIGHT entry was created; the caller runs the chain and MUST call dedup_finish */
	DEDUP_REPLAY,    /* a DONE entry: *replay is filled with a deep copy (caller frees with dedup_reply_clear) */
	DEDUP_IN_FLIGHT, /* the first delivery is still running: caller answers 409 + Retry-After */
	DEDUP_FULL,      /* no room: every entry of this hook is IN_FLIGHT (caller answers 503) */
	DEDUP_NOMEM,
};

/* A new empty table in *out (the caller owns it; dedup_free). 0 or -ENOMEM. */
int dedup_new(struct dedup **out);

/* Free the table, its entries and their stored replies (NULL: no-op). No
 * other thread may be using it; IN_FLIGHT entries are dropped (their
 * dedup_finish must not come after this). */
void dedup_free(struct dedup *d);

/*
 * Any thread. Look up (hook, key) at now_ns (CLOCK_MONOTONIC, clock.h).
 * hook is borrowed (NUL-terminated; copied when the hook is first seen),
 * key is borrowed (keylen bytes, any content, may be NULL when 0), lim is
 * borrowed. replay must not be NULL: it is zeroed on every verdict and,
 * on DEDUP_REPLAY only, filled with a deep copy the caller owns and frees
 * with dedup_reply_clear (a DONE entry finished without a reply replays
 * as status 0, everything NULL). DEDUP_FIRST obliges the caller to one
 * dedup_finish with the same hook and key.
 * Expired DONE entries of the hook are reclaimed here; making room for a
 * new entry evicts the hook's oldest DONE entry.
 */
enum dedup_verdict dedup_begin(struct dedup *d, const char *hook, const void *key, size_t keylen,
			       const struct dedup_limits *lim, int64_t now_ns, struct dedup_reply *replay);

/*
 * Any thread. The first delivery ended. ok: store a deep copy of *reply
 * (borrowed: the caller still owns and frees it; NULL = store nothing but
 * remember the id; a repeat then gets DEDUP_REPLAY with status 0), the
 * entry becomes DONE and expires at now_ns + ttl; if the stored bytes
 * would exceed lim->max_bytes, the hook's oldest DONE entries are evicted,
 * and a reply larger than max_bytes on its own is not stored (the entry
 * is removed: a repeat runs again). !ok: the entry is removed. An unknown
 * entry, or one that is not IN_FLIGHT: nothing happens. Out of memory
 * copying the reply: the entry is removed (a repeat runs again).
 */
void dedup_finish(struct dedup *d, const char *hook, const void *key, size_t keylen,
		  const struct dedup_limits *lim, bool ok, const struct dedup_reply *reply, int64_t now_ns);

/*
 * Any thread. Reclaim every hook's expired DONE entries (each hook under
 * the TTL it was last called with) and forget hooks left with no entry.
 * begin only reclaims the hook it is called for: without this sweep, a
 * hook that gets no more deliveries (idle, or removed by a reload) keeps
 * its DONE entries (within its bounds) until the table is freed. Call it
 * now and then (a timer, a reload); O(hooks + reclaimed).
 */
void dedup_expire(struct dedup *d, int64_t now_ns);

/* Free what r owns and zero it (r may be zeroed already; NULL: no-op). */
void dedup_reply_clear(struct dedup_reply *r);

/* Any thread. For /metrics and tests: entries (both states) and stored
 * bytes of the whole table. Either pointer may be NULL. */
void dedup_stats(struct dedup *d, size_t *entries, size_t *bytes);

/* Any thread. The same for one hook (0, 0 for a hook never seen). */
void dedup_hook_stats(struct dedup *d, const char *hook, size_t *entries, size_t *bytes);

/* SipHash-2-4 of len bytes of data under the key (k0, k1) (each the
 * little-endian reading of 8 key bytes): the table's bucket hash, exposed
 * for its test vectors. Pure; data may be NULL when len is 0. */
uint64_t dedup_hash(uint64_t k0, uint64_t k1, const void *data, size_t len);

#endif
