/*
 * dedup: the delivery table on its own. First / replay / in flight /
 * failed-then-retry, TTL expiry (now_ns passed explicitly: no sleeping),
 * hooks isolated from each other, eviction order under max_entries and
 * max_bytes, an oversize reply not stored, FULL when all are in flight,
 * deep copies both ways, memory bounded under a flood of unique keys, and
 * one first delivery among threads racing on one key.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../host/dedup.h"

TestSuite(dedup);

#define S 1000000000LL

static struct dedup *mk(void)
{
	struct dedup *d = NULL;

	cr_assert_eq(dedup_new(&d), 0);
	cr_assert_not_null(d);
	return d;
}

static enum dedup_verdict begin(struct dedup *d, const char *hook, const char *key,
				const struct dedup_limits *lim, int64_t now, struct dedup_reply *r)
{
	struct dedup_reply tmp;
	enum dedup_verdict v = dedup_begin(d, hook, key, strlen(key), lim, now, r ? r : &tmp);

	if (!r)
		dedup_reply_clear(&tmp);
	return v;
}

/* Finish key with a reply whose body is `body` (status 200, JSON). */
static void finish(struct dedup *d, const char *hook, const char *key,
		   const struct dedup_limits *lim, bool ok, const char *body, int64_t now)
{
	struct dedup_reply r = {
		.status = 200,
		.content_type = (char *)"application/json",
		.body = (char *)body,
		.body_len = body ? strlen(body) : 0,
	};

	dedup_finish(d, hook, key, strlen(key), lim, ok, body ? &r : NULL, now);
}

static size_t hook_entries(struct dedup *d, const char *hook)
{
	size_t n;

	dedup_hook_stats(d, hook, &n, NULL);
	return n;
}

static size_t hook_bytes(struct dedup *d, const char *hook)
{
	size_t n;

	dedup_hook_stats(d, hook, NULL, &n);
	return n;
}

static const struct dedup_limits big = { .ttl_s = 3600, .max_entries = 1000, .max_bytes = 1 << 20 };

Test(dedup, siphash_matches_the_reference_vectors)
{
	/* Key 00..0f, messages 00..(n-1): the paper's vectors. */
	unsigned char msg[16];
	uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;

	for (int i = 0; i < 16; i++)
		msg[i] = (unsigned char)i;
	cr_assert_eq(dedup_hash(k0, k1, NULL, 0), 0x726fdb47dd0e0e31ULL);
	cr_assert_eq(dedup_hash(k0, k1, msg, 1), 0x74f839c593dc67fdULL);
	cr_assert_eq(dedup_hash(k0, k1, msg, 15), 0xa129ca6149be45e5ULL);
}

Test(dedup, two_tables_share_nothing)
{
	struct dedup *a = mk(), *b = mk();

	cr_assert_eq(begin(a, "h", "k", &big, 0, NULL), DEDUP_FIRST);
	finish(a, "h", "k", &big, true, "{}", 0);
	cr_assert_eq(begin(a, "h", "k", &big, 1, NULL), DEDUP_REPLAY);
	cr_assert_eq(begin(b, "h", "k", &big, 1, NULL), DEDUP_FIRST);
	dedup_free(a);
	dedup_free(b);
}

Test(dedup, first_then_in_flight_then_replay_of_the_first_reply)
{
	struct dedup *d = mk();
	struct dedup_reply in = {
		.status = 202,
		.content_type = (char *)"text/plain",
		.body = (char *)"queued",
		.body_len = 6,
		.headers = (char *)"X-A\0b\0",
		.headers_len = 6,
	};
	struct dedup_reply r;
	size_t n, bytes;

	cr_assert_eq(begin(d, "github", "d-1", &big, 0, &r), DEDUP_FIRST);
	cr_assert_eq(r.status, 0);
	cr_assert_null(r.body);
	cr_assert_eq(begin(d, "github", "d-1", &big, 1, &r), DEDUP_IN_FLIGHT);
	cr_assert_eq(begin(d, "github", "d-1", &big, 2, &r), DEDUP_IN_FLIGHT);
	dedup_finish(d, "github", "d-1", 3, &big, true, &in, 3);
	cr_assert_eq(begin(d, "github", "d-1", &big, 4, &r), DEDUP_REPLAY);
	cr_assert_eq(r.status, 202);
	cr_assert_str_eq(r.content_type, "text/plain");
	cr_assert_eq(r.body_len, 6);
	cr_assert_eq(memcmp(r.body, "queued", 6), 0);
	cr_assert_eq(r.headers_len, 6);
	cr_assert_eq(memcmp(r.headers, "X-A\0b\0", 6), 0);
	dedup_reply_clear(&r);
	cr_assert_null(r.body);
	dedup_stats(d, &n, &bytes);
	cr_assert_eq(n, 1);
	cr_assert_eq(bytes, 3 + 10 + 6 + 6); /* key + content type + body + headers */
	/* Another key of the same hook is new. */
	cr_assert_eq(begin(d, "github", "d-2", &big, 5, NULL), DEDUP_FIRST);
	dedup_free(d);
}

Test(dedup, a_failed_delivery_is_forgotten_so_a_retry_runs_again)
{
	struct dedup *d = mk();

	cr_assert_eq(begin(d, "h", "k", &big, 0, NULL), DEDUP_FIRST);
	finish(d, "h", "k", &big, false, "{}", 1);
	cr_assert_eq(hook_entries(d, "h"), 0);
	cr_assert_eq(begin(d, "h", "k", &big, 2, NULL), DEDUP_FIRST);
	cr_assert_eq(begin(d, "h", "k", &big, 3, NULL), DEDUP_IN_FLIGHT);
	finish(d, "h", "k", &big, true, "{}", 4);
	cr_assert_eq(begin(d, "h", "k", &big, 5, NULL), DEDUP_REPLAY);
	dedup_free(d);
}

Test(dedup, ok_without_a_reply_remembers_the_id_and_replays_status_0)
{
	struct dedup *d = mk();
	struct dedup_reply r;

	cr_assert_eq(begin(d, "h", "abc", &big, 0, NULL), DEDUP_FIRST);
	dedup_finish(d, "h", "abc", 3, &big, true, NULL, 1);
	cr_assert_eq(begin(d, "h", "abc", &big, 2, &r), DEDUP_REPLAY);
	cr_assert_eq(r.status, 0);
	cr_assert_null(r.content_type);
	cr_assert_null(r.body);
	cr_assert_null(r.headers);
	cr_assert_eq(hook_bytes(d, "h"), 3);
	dedup_free(d);
}

Test(dedup, finish_of_an_unknown_or_finished_entry_changes_nothing)
{
	struct dedup *d = mk();
	struct dedup_reply r;

	finish(d, "nohook", "k", &big, true, "x", 0);
	finish(d, "nohook", "k", &big, false, "x", 0);
	cr_assert_eq(begin(d, "h", "k", &big, 0, NULL), DEDUP_FIRST);
	finish(d, "h", "other", &big, true, "x", 1);
	cr_assert_eq(begin(d, "h", "k", &big, 1, NULL), DEDUP_IN_FLIGHT);
	finish(d, "h", "k", &big, true, "first", 2);
	finish(d, "h", "k", &big, true, "second", 3); /* a second finish */
	finish(d, "h", "k", &big, false, NULL, 4);    /* a late failure */
	cr_assert_eq(begin(d, "h", "k", &big, 5, &r), DEDUP_REPLAY);
	cr_assert_eq(memcmp(r.body, "first", 5), 0);
	dedup_reply_clear(&r);
	cr_assert_eq(hook_entries(d, "h"), 1);
	dedup_free(d);
}

Test(dedup, keys_are_bytes_not_strings)
{
	struct dedup *d = mk();
	struct dedup_reply r;

	cr_assert_eq(dedup_begin(d, "h", "a\0b", 3, &big, 0, &r), DEDUP_FIRST);
	cr_assert_eq(dedup_begin(d, "h", "a\0c", 3, &big, 0, &r), DEDUP_FIRST);
	cr_assert_eq(dedup_begin(d, "h", "a", 1, &big, 0, &r), DEDUP_FIRST);
	cr_assert_eq(dedup_begin(d, "h", "a\0b", 3, &big, 0, &r), DEDUP_IN_FLIGHT);
	cr_assert_eq(dedup_begin(d, "h", NULL, 0, &big, 0, &r), DEDUP_FIRST);
	cr_assert_eq(dedup_begin(d, "h", "", 0, &big, 0, &r), DEDUP_IN_FLIGHT);
	cr_assert_eq(hook_entries(d, "h"), 4);
	dedup_free(d);
}

Test(dedup, a_done_entry_expires_ttl_after_its_finish)
{
	struct dedup *d = mk();
	struct dedup_limits lim = { .ttl_s = 10, .max_entries = 100, .max_bytes = 1 << 16 };

	cr_assert_eq(begin(d, "h", "k", &lim, 0, NULL), DEDUP_FIRST);
	finish(d, "h", "k", &lim, true, "{}", 5 * S); /* from its finish, not its begin */
	cr_assert_eq(begin(d, "h", "k", &lim, 15 * S - 1, NULL), DEDUP_REPLAY);
	cr_assert_eq(begin(d, "h", "k", &lim, 15 * S, NULL), DEDUP_FIRST);
	cr_assert_eq(hook_entries(d, "h"), 1); /* the expired one was reclaimed */
	dedup_free(d);
}

Test(dedup, expired_entries_are_reclaimed_by_any_begin_of_their_hook)
{
	struct dedup *d = mk();
	struct dedup_limits lim = { .ttl_s = 10, .max_entries = 100, .max_bytes = 1 << 16 };
	char key[16];

	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(begin(d, "h", key, &lim, i * S, NULL), DEDUP_FIRST);
		finish(d, "h", key, &lim, true, "{}", i * S);
	}
	cr_assert_eq(hook_entries(d, "h"), 5);
	/* At 12 s, k0..k2 (finished at 0..2 s) have expired. */
	cr_assert_eq(begin(d, "h", "new", &lim, 12 * S, NULL), DEDUP_FIRST);
	cr_assert_eq(hook_entries(d, "h"), 3);
	cr_assert_eq(hook_bytes(d, "h"), 2 * (2 + 16 + 2));
	cr_assert_eq(begin(d, "h", "k3", &lim, 12 * S, NULL), DEDUP_REPLAY);
	dedup_free(d);
}

Test(dedup, a_shorter_ttl_after_a_reload_applies_to_entries_already_done)
{
	struct dedup *d = mk();
	struct dedup_limits lim = { .ttl_s = 3600, .max_entries = 100, .max_bytes = 1 << 16 };
	struct dedup_limits shorter = lim;

	shorter.ttl_s = 1;
	cr_assert_eq(begin(d, "h", "k", &lim, 0, NULL), DEDUP_FIRST);
	finish(d, "h", "k", &lim, true, "{}", 0);
	cr_assert_eq(begin(d, "h", "k", &lim, 2 * S, NULL), DEDUP_REPLAY);
	cr_assert_eq(begin(d, "h", "k", &shorter, 2 * S, NULL), DEDUP_FIRST);
	dedup_free(d);
}

Test(dedup, an_entry_finished_out_of_clock_order_still_expires_on_time)
{
	/* Two threads: B read the clock after A but took the lock first. */
	struct dedup *d = mk();
	struct dedup_limits lim = { .ttl_s = 10, .max_entries = 100, .max_bytes = 1 << 16 };

	cr_assert_eq(begin(d, "h", "a", &lim, 0, NULL), DEDUP_FIRST);
	cr_assert_eq(begin(d, "h", "b", &lim, 0, NULL), DEDUP_FIRST);
	finish(d, "h", "b", &lim, true, "{}", 5 * S);
	finish(d, "h", "a", &lim, true, "{}", 4 * S); /* behind b in the list */
	cr_assert_eq(begin(d, "h", "a", &lim, 14 * S, NULL), DEDUP_FIRST);
	cr_assert_eq(begin(d, "h", "b", &lim, 14 * S, NULL), DEDUP_REPLAY);
	dedup_free(d);
}

Test(dedup, a_hook_flood_never_evicts_another_hooks_entries)
{
	struct dedup *d = mk();
	struct dedup_limits lim = { .ttl_s = 3600, .max_entries = 4, .max_bytes = 1 << 16 };
	char key[16];
	size_t n;

	cr_assert_eq(begin(d, "quiet", "keep", &lim, 0, NULL), DEDUP_FIRST);
	finish(d, "quiet", "keep", &lim, true, "{}", 0);
	/* The same key in another hook is another delivery. */
	cr_assert_eq(begin(d, "noisy", "keep", &lim, 0, NULL), DEDUP_FIRST);
	finish(d, "noisy", "keep", &lim, true, "{}", 0);
	for (int i = 0; i < 500; i++) {
		snprintf(key, sizeof(key), "n%d", i);
		cr_assert_eq(begin(d, "noisy", key, &lim, i, NULL), DEDUP_FIRST);
		finish(d, "noisy", key, &lim, true, "0123456789", i);
	}
	cr_assert_eq(hook_entries(d, "noisy"), 4);
	cr_assert_eq(hook_entries(d, "quiet"), 1);
	cr_assert_eq(begin(d, "quiet", "keep", &lim, 1000, NULL), DEDUP_REPLAY);
	dedup_stats(d, &n, NULL);
	cr_assert_eq(n, 5);
	dedup_free(d);
}

Test(dedup, max_entries_evicts_the_oldest_finished_entry_first)
{
	struct dedup *d = mk();
	struct dedup_limits lim = { .ttl_s = 3600, .max_entries = 3, .max_bytes = 1 << 16 };

	cr_assert_eq(begin(d, "h", "k1", &lim, 0, NULL), DEDUP_FIRST);
	cr_assert_eq(begin(d, "h", "k2", &lim, 0, NULL), DEDUP_FIRST);
	cr_assert_eq(begin(d, "h", "k3", &lim, 0, NULL), DEDUP_FIRST);
	/* Finished k2, k1, k3: k2 is the oldest DONE, whatever began first. */
	finish(d, "h", "k2", &lim, true, "{}", 1);
	finish(d, "h", "k1", &lim, true, "{}", 2);
	finish(d, "h", "k3", &lim, true, "{}", 3);
	cr_assert_eq(begin(d, "h", "k4", &lim, 4, NULL), DEDUP_FIRST); /* evicts k2 */
	cr_assert_eq(hook_entries(d, "h"), 3);
	cr_assert_eq(begin(d, "h", "k1", &lim, 5, NULL), DEDUP_REPLAY);
	cr_assert_eq(begin(d, "h", "k3", &lim, 5, NULL), DEDUP_REPLAY);
	cr_assert_eq(begin(d, "h", "k2", &lim, 5, NULL), DEDUP_FIRST); /* gone; evicts k1 */
	cr_assert_eq(begin(d, "h", "k3", &lim, 6, NULL), DEDUP_REPLAY);
	cr_assert_eq(begin(d, "h", "k1", &lim, 6, NULL), DEDUP_FIRST); /* gone; evicts k3 */
	cr_assert_eq(begin(d, "h", "k3", &lim, 7, NULL), DEDUP_FULL);  /* k4, k2, k1 in flight */
	cr_assert_eq(hook_entries(d, "h"), 3);
	dedup_free(d);
}

Test(dedup, full_when_every_entry_of_the_hook_is_in_flight)
{
	struct dedup *d = mk();
	struct dedup_limits lim = { .ttl_s = 3600, .max_entries = 2, .max_bytes = 1 << 16 };

	cr_assert_eq(begin(d, "h", "a", &lim, 0, NULL), DEDUP_FIRST);
	cr_assert_eq(begin(d, "h", "b", &lim, 0, NULL), DEDUP_FIRST);
	cr_assert_eq(begin(d, "h", "c", &lim, 0, NULL), DEDUP_FULL);
	cr_assert_eq(begin(d, "h", "a", &lim, 0, NULL), DEDUP_IN_FLIGHT); /* known keys still answer */
	cr_assert_eq(begin(d, "other", "c", &lim, 0, NULL), DEDUP_FIRST);  /* other hooks have room */
	finish(d, "h", "a", &lim, true, "{}", 1);
	cr_assert_eq(begin(d, "h", "c", &lim, 2, NULL), DEDUP_FIRST); /* evicts a */
	cr_assert_eq(begin(d, "h", "d", &lim, 2, NULL), DEDUP_FULL);
	finish(d, "h", "b", &lim, false, NULL, 3); /* a failure frees its place */
	cr_assert_eq(begin(d, "h", "d", &lim, 4, NULL), DEDUP_FIRST);
	dedup_free(d);
}

Test(dedup, max_entries_zero_admits_nothing)
{
	struct dedup *d = mk();
	struct dedup_limits lim = { .ttl_s = 3600, .max_entries = 0, .max_bytes = 1 << 16 };

	cr_assert_eq(begin(d, "h", "a", &lim, 0, NULL), DEDUP_FULL);
	cr_assert_eq(hook_entries(d, "h"), 0);
	dedup_free(d);
}

Test(dedup, lower_bounds_after_a_reload_are_enforced_at_the_next_begin)
{
	struct dedup *d = mk();
	struct dedup_limits lim = { .ttl_s = 3600, .max_entries = 10, .max_bytes = 1 << 16 };
	struct dedup_limits low = { .ttl_s = 3600, .max_entries = 3, .max_bytes = 1 << 16 };
	char key[16];

	for (int i = 0; i < 8; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(begin(d, "h", key, &lim, i, NULL), DEDUP_FIRST);
		finish(d, "h", key, &lim, true, "{}", i);
	}
	cr_assert_eq(begin(d, "h", "new", &low, 10, NULL), DEDUP_FIRST);
	cr_assert_eq(hook_entries(d, "h"), 3);
	cr_assert_eq(begin(d, "h", "k7", &low, 11, NULL), DEDUP_REPLAY);
	cr_assert_eq(begin(d, "h", "k6", &low, 11, NULL), DEDUP_REPLAY);
	/* And max_bytes lowered: 2 entries of 2+16+2 bytes exceed 30. */
	low.max_bytes = 30;
	cr_assert_eq(begin(d, "h", "new2", &low, 12, NULL), DEDUP_FIRST);
	cr_assert_leq(hook_bytes(d, "h"), 30);
	cr_assert_eq(begin(d, "h", "k7", &low, 13, NULL), DEDUP_REPLAY);
	dedup_free(d);
}

Test(dedup, max_bytes_evicts_the_oldest_finished_entries_first)
{
	struct dedup *d = mk();
	/* Each entry: key 2 + "application/json" 16 + body 12 = 30 bytes. */
	struct dedup_limits lim = { .ttl_s = 3600, .max_entries = 100, .max_bytes = 100 };
	const char *body = "0123456789ab";
	char key[4];

	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(begin(d, "h", key, &lim, i, NULL), DEDUP_FIRST);
		finish(d, "h", key, &lim, true, body, i);
	}
	cr_assert_eq(hook_bytes(d, "h"), 90);
	cr_assert_eq(begin(d, "h", "k3", &lim, 3, NULL), DEDUP_FIRST);
	finish(d, "h", "k3", &lim, true, body, 3); /* 120 > 100: k0 goes */
	cr_assert_eq(hook_bytes(d, "h"), 90);
	cr_assert_eq(hook_entries(d, "h"), 3);
	cr_assert_eq(begin(d, "h", "k1", &lim, 4, NULL), DEDUP_REPLAY);
	cr_assert_eq(begin(d, "h", "k2", &lim, 4, NULL), DEDUP_REPLAY);
	cr_assert_eq(begin(d, "h", "k3", &lim, 4, NULL), DEDUP_REPLAY);
	cr_assert_eq(begin(d, "h", "k0", &lim, 4, NULL), DEDUP_FIRST);
	/* A reply of 70 bytes needs the room of k1 and k2 (then 30 + 70). */
	finish(d, "h", "k0", &lim, true, "0123456789012345678901234567890123456789012345678901", 5);
	cr_assert_eq(hook_bytes(d, "h"), 100);
	cr_assert_eq(hook_entries(d, "h"), 2);
	cr_assert_eq(begin(d, "h", "k3", &lim, 6, NULL), DEDUP_REPLAY);
	cr_assert_eq(begin(d, "h", "k0", &lim, 6, NULL), DEDUP_REPLAY);
	dedup_free(d);
}

Test(dedup, a_reply_larger_than_max_bytes_is_not_stored_and_evicts_nothing)
{
	struct dedup *d = mk();
	struct dedup_limits lim = { .ttl_s = 3600, .max_entries = 100, .max_bytes = 100 };
	char body[200];

	memset(body, 'x', sizeof(body) - 1);
	body[sizeof(body) - 1] = 0;
	cr_assert_eq(begin(d, "h", "small", &lim, 0, NULL), DEDUP_FIRST);
	finish(d, "h", "small", &lim, true, "{}", 0);
	cr_assert_eq(begin(d, "h", "big", &lim, 1, NULL), DEDUP_FIRST);
	finish(d, "h", "big", &lim, true, body, 2);
	cr_assert_eq(hook_entries(d, "h"), 1);
	cr_assert_eq(hook_bytes(d, "h"), 5 + 16 + 2);
	cr_assert_eq(begin(d, "h", "big", &lim, 3, NULL), DEDUP_FIRST); /* a repeat runs again */
	cr_assert_eq(begin(d, "h", "small", &lim, 3, NULL), DEDUP_REPLAY);
	dedup_free(d);
}

Test(dedup, replies_are_deep_copies_both_ways)
{
	struct dedup *d = mk();
	struct dedup_reply in = { .status = 201 }, a, b;

	in.content_type = strdup("application/octet-stream");
	in.body = malloc(4);
	memcpy(in.body, "\0\1\2\3", 4);
	in.body_len = 4;
	in.headers = malloc(8);
	memcpy(in.headers, "X-Y\0zz\0\0", 8);
	in.headers_len = 8;
	cr_assert_eq(begin(d, "h", "k", &big, 0, NULL), DEDUP_FIRST);
	dedup_finish(d, "h", "k", 1, &big, true, &in, 1);
	/* The caller frees its reply after finish (ASan: no use after free). */
	memset(in.body, 'Z', 4);
	dedup_reply_clear(&in);

	cr_assert_eq(begin(d, "h", "k", &big, 2, &a), DEDUP_REPLAY);
	cr_assert_eq(begin(d, "h", "k", &big, 2, &b), DEDUP_REPLAY);
	cr_assert_neq(a.body, b.body);
	cr_assert_neq(a.content_type, b.content_type);
	cr_assert_neq(a.headers, b.headers);
	a.body[0] = 'Q';
	a.content_type[0] = 'Q';
	a.headers[0] = 'Q';
	dedup_reply_clear(&a);
	cr_assert_eq(b.status, 201);
	cr_assert_str_eq(b.content_type, "application/octet-stream");
	cr_assert_eq(b.body_len, 4);
	cr_assert_eq(memcmp(b.body, "\0\1\2\3", 4), 0);
	cr_assert_eq(b.headers_len, 8);
	cr_assert_eq(memcmp(b.headers, "X-Y\0zz\0\0", 8), 0);
	dedup_reply_clear(&b);
	cr_assert_eq(begin(d, "h", "k", &big, 3, &a), DEDUP_REPLAY);
	cr_assert_eq(memcmp(a.body, "\0\1\2\3", 4), 0);
	dedup_reply_clear(&a);
	dedup_free(d);
}

Test(dedup, free_releases_entries_in_every_state)
{
	/* Under ASan/LeakSanitizer a leak here fails the suite. */
	struct dedup *d = mk();

	cr_assert_eq(begin(d, "a", "in-flight", &big, 0, NULL), DEDUP_FIRST);
	cr_assert_eq(begin(d, "b", "done", &big, 0, NULL), DEDUP_FIRST);
	finish(d, "b", "done", &big, true, "{\"ok\":true}", 1);
	cr_assert_eq(begin(d, "b", "bare", &big, 0, NULL), DEDUP_FIRST);
	finish(d, "b", "bare", &big, true, NULL, 1);
	dedup_free(d);
	dedup_free(NULL);
}

Test(dedup, memory_stays_bounded_under_a_flood_of_unique_keys)
{
	struct dedup *d = mk();
	struct dedup_limits lim = { .ttl_s = 3600, .max_entries = 1000, .max_bytes = 1 << 20 };
	struct dedup_limits tight = { .ttl_s = 3600, .max_entries = 1000, .max_bytes = 20000 };
	char key[32];
	size_t n, bytes;

	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "delivery-%08d", i);
		cr_assert_eq(begin(d, "flood", key, &lim, i, NULL), DEDUP_FIRST);
		finish(d, "flood", key, &lim, true, "{\"ok\":true}", i);
	}
	dedup_stats(d, &n, &bytes);
	cr_assert_eq(n, 1000);
	cr_assert_leq(bytes, lim.max_bytes);
	/* The newest 1000 are the ones remembered. */
	cr_assert_eq(begin(d, "flood", "delivery-00099999", &lim, 100000, NULL), DEDUP_REPLAY);
	cr_assert_eq(begin(d, "flood", "delivery-00099000", &lim, 100000, NULL), DEDUP_REPLAY);

	/* Bytes bind first: 20000 / (17 + 16 + 11) = 454 entries at most. */
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "tight-%011d", i);
		cr_assert_eq(begin(d, "tight", key, &tight, i, NULL), DEDUP_FIRST);
		finish(d, "tight", key, &tight, true, "{\"ok\":true}", i);
	}
	dedup_hook_stats(d, "tight", &n, &bytes);
	cr_assert_leq(bytes, tight.max_bytes);
	cr_assert_eq(n, 20000 / (17 + 16 + 11));

	/* Deliveries that never finish: FULL at the bound, never more. */
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "stuck-%d", i);
		cr_assert_eq(begin(d, "stuck", key, &lim, i, NULL), i < 1000 ? DEDUP_FIRST : DEDUP_FULL);
	}
	cr_assert_eq(hook_entries(d, "stuck"), 1000);
	dedup_stats(d, &n, NULL);
	cr_assert_eq(n, 1000 + 20000 / (17 + 16 + 11) + 1000);
	dedup_free(d);
}

/* ---- threads ---- */

#define THREADS 8
#define ROUNDS 20

struct race {
	struct dedup *d;
	pthread_barrier_t *go;
	int counts[5];
};

static void *race_begins(void *arg)
{
	struct race *r = arg;
	struct dedup_reply rep;

	pthread_barrier_wait(r->go);
	for (int i = 0; i < ROUNDS; i++) {
		enum dedup_verdict v = dedup_begin(r->d, "h", "same-id", 7, &big, 0, &rep);

		r->counts[v]++;
		dedup_reply_clear(&rep);
	}
	return NULL;
}

static void race_run(struct dedup *d, int totals[5])
{
	pthread_t t[THREADS];
	struct race r[THREADS];
	pthread_barrier_t go;

	memset(totals, 0, 5 * sizeof(int));
	pthread_barrier_init(&go, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		r[i] = (struct race){ .d = d, .go = &go };
		cr_assert_eq(pthread_create(&t[i], NULL, race_begins, &r[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		for (int v = 0; v < 5; v++)
			totals[v] += r[i].counts[v];
	}
	pthread_barrier_destroy(&go);
}

Test(dedup, threads_racing_on_one_key_get_exactly_one_first)
{
	struct dedup *d = mk();
	int c[5];

	race_run(d, c);
	cr_assert_eq(c[DEDUP_FIRST], 1);
	cr_assert_eq(c[DEDUP_IN_FLIGHT], THREADS * ROUNDS - 1);
	finish(d, "h", "same-id", &big, true, "{\"once\":1}", 1);
	race_run(d, c);
	cr_assert_eq(c[DEDUP_REPLAY], THREADS * ROUNDS);
	dedup_free(d);
}

struct churn {
	struct dedup *d;
	int id;
	pthread_barrier_t *go;
	int firsts;
};

/* Every thread begins and finishes its own and shared keys in two hooks
 * with small bounds: evictions, replays and failures interleave. */
static void *churn_run(void *arg)
{
	struct churn *c = arg;
	struct dedup_limits lim = { .ttl_s = 1, .max_entries = 16, .max_bytes = 512 };
	const char *hooks[2] = { "x", "y" };
	struct dedup_reply rep;
	char key[32];

	pthread_barrier_wait(c->go);
	for (int i = 0; i < 2000; i++) {
		const char *hook = hooks[i & 1];
		int64_t now = (int64_t)i * (S / 100);

		if (i % 3 == 0)
			snprintf(key, sizeof(key), "shared-%d", i % 40);
		else
			snprintf(key, sizeof(key), "t%d-%d", c->id, i);
		if (dedup_begin(c->d, hook, key, strlen(key), &lim, now, &rep) == DEDUP_FIRST) {
			c->firsts++;
			finish(c->d, hook, key, &lim, i % 7 != 0, i % 5 ? "{\"r\":1}" : NULL, now);
		}
		dedup_reply_clear(&rep);
	}
	return NULL;
}

Test(dedup, concurrent_churn_keeps_every_bound)
{
	struct dedup *d = mk();
	pthread_t t[THREADS];
	struct churn c[THREADS];
	pthread_barrier_t go;
	size_t n, bytes;

	pthread_barrier_init(&go, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		c[i] = (struct churn){ .d = d, .id = i, .go = &go };
		cr_assert_eq(pthread_create(&t[i], NULL, churn_run, &c[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		cr_assert_gt(c[i].firsts, 0);
	}
	pthread_barrier_destroy(&go);
	/* Every delivery finished, so every remaining entry is DONE. */
	dedup_hook_stats(d, "x", &n, &bytes);
	cr_assert_leq(n, 16);
	cr_assert_leq(bytes, 512);
	dedup_hook_stats(d, "y", &n, &bytes);
	cr_assert_leq(n, 16);
	cr_assert_leq(bytes, 512);
	dedup_stats(d, &n, &bytes);
	cr_assert_leq(n, 32);
	cr_assert_leq(bytes, 1024);
	dedup_free(d);
}

Test(dedup, expire_sweeps_idle_hooks_and_forgets_empty_ones)
{
	struct dedup *d = mk();
	struct dedup_limits l10 = { .ttl_s = 10, .max_entries = 100, .max_bytes = 1 << 16 };
	struct dedup_limits l100 = { .ttl_s = 100, .max_entries = 100, .max_bytes = 1 << 16 };
	size_t n, bytes;

	cr_assert_eq(begin(d, "gone", "a", &l10, 0, NULL), DEDUP_FIRST);
	finish(d, "gone", "a", &l10, true, "{}", 0);
	cr_assert_eq(begin(d, "gone", "b", &l10, 0, NULL), DEDUP_FIRST);
	finish(d, "gone", "b", &l10, true, "{}", 0);
	cr_assert_eq(begin(d, "slow", "a", &l100, 0, NULL), DEDUP_FIRST);
	finish(d, "slow", "a", &l100, true, "{}", 0);
	cr_assert_eq(begin(d, "busy", "a", &l10, 0, NULL), DEDUP_FIRST); /* in flight */
	dedup_expire(d, 9 * S);
	dedup_stats(d, &n, NULL);
	cr_assert_eq(n, 4);
	dedup_expire(d, 50 * S); /* "gone" under its TTL of 10 s, "slow" under 100 s */
	dedup_stats(d, &n, &bytes);
	cr_assert_eq(n, 2);
	cr_assert_eq(bytes, 1 + 16 + 2);
	cr_assert_eq(hook_entries(d, "gone"), 0);
	cr_assert_eq(begin(d, "slow", "a", &l100, 50 * S, NULL), DEDUP_REPLAY);
	cr_assert_eq(begin(d, "busy", "a", &l10, 50 * S, NULL), DEDUP_IN_FLIGHT);
	/* A forgotten hook comes back as new. */
	cr_assert_eq(begin(d, "gone", "a", &l10, 51 * S, NULL), DEDUP_FIRST);
	dedup_free(d);
}
