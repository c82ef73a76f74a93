/*
 * dedup_stress -- the delivery table under ThreadSanitizer (a plain
 * program: Criterion's runner does not start under TSan). `make tsan`
 * builds it with -fsanitize=thread and runs it; it exits non-zero on a
 * wrong count, and TSan (halt_on_error=1) on a race.
 *
 * Eight threads, round after round: all begin the round's key at once
 * (exactly one may get DEDUP_FIRST), the winner finishes it with a reply
 * naming the round, then all begin it again and must replay that reply
 * (copied out after the lock, while others evict and free entries of
 * their own keys in the same hook under tight bounds, and one thread
 * sweeps expired entries with dedup_expire).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../host/dedup.h"

#define THREADS 8
#define ROUNDS 300
#define OWN_PER_ROUND 20

static struct dedup *table;
static pthread_barrier_t bar;
static atomic_int firsts[ROUNDS];
static atomic_int errors;
static const struct dedup_limits lim = { .ttl_s = 60, .max_entries = 64, .max_bytes = 4096 };

static void fail(const char *what, int round)
{
	fprintf(stderr, "dedup_stress: round %d: %s\n", round, what);
	atomic_fetch_add(&errors, 1);
}

static void *run(void *arg)
{
	int id = (int)(intptr_t)arg;
	struct dedup_reply rep, out = { .status = 200, .content_type = (char *)"text/plain" };
	char key[32], body[32];

	for (int r = 0; r < ROUNDS; r++) {
		int64_t now = (int64_t)r * 1000000;
		bool mine;

		snprintf(key, sizeof(key), "round-%d", r);
		pthread_barrier_wait(&bar);
		mine = dedup_begin(table, "h", key, strlen(key), &lim, now, &rep) == DEDUP_FIRST;
		dedup_reply_clear(&rep);
		if (mine)
			atomic_fetch_add(&firsts[r], 1);
		/* Churn on keys of our own, evicting under the bounds. */
		for (int i = 0; i < OWN_PER_ROUND; i++) {
			char own[32];

			snprintf(own, sizeof(own), "t%d-%d-%d", id, r, i);
			if (dedup_begin(table, "h", own, strlen(own), &lim, now, &rep) == DEDUP_FIRST)
				dedup_finish(table, "h", own, strlen(own), &lim, i % 4 != 0, &out, now);
			dedup_reply_clear(&rep);
		}
		if (id == 0)
			dedup_expire(table, now + 61 * 1000000000LL); /* sweeps while others work */
		pthread_barrier_wait(&bar);
		if (mine) {
			snprintf(body, sizeof(body), "reply-%d", r);
			out.body = body;
			out.body_len = strlen(body);
			dedup_finish(table, "h", key, strlen(key), &lim, true, &out, now);
			out.body = NULL;
			out.body_len = 0;
		}
		pthread_barrier_wait(&bar);
		switch (dedup_begin(table, "h", key, strlen(key), &lim, now, &rep)) {
		case DEDUP_REPLAY:
			snprintf(body, sizeof(body), "reply-%d", r);
			if (rep.body_len != strlen(body) || memcmp(rep.body, body, rep.body_len) != 0)
				fail("replay of another reply", r);
			break;
		case DEDUP_FIRST: /* evicted by the churn already (tight bounds): allowed */
			dedup_finish(table, "h", key, strlen(key), &lim, false, NULL, now);
			break;
		default:
			break;
		}
		dedup_reply_clear(&rep);
	}
	return NULL;
}

int main(void)
{
	pthread_t t[THREADS];
	size_t n, bytes;

	if (dedup_new(&table) != 0)
		return 1;
	pthread_barrier_init(&bar, NULL, THREADS);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, run, (void *)(intptr_t)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (int r = 0; r < ROUNDS; r++)
		if (atomic_load(&firsts[r]) != 1)
			fail("not exactly one DEDUP_FIRST", r);
	dedup_stats(table, &n, &bytes);
	if (n > lim.max_entries || bytes > lim.max_bytes) {
		fprintf(stderr, "dedup_stress: %zu entries, %zu bytes: over the bounds\n", n, bytes);
		atomic_fetch_add(&errors, 1);
	}
	pthread_barrier_destroy(&bar);
	dedup_free(table);
	if (atomic_load(&errors))
		return 1;
	printf("dedup_stress: %d rounds x %d threads, ok\n", ROUNDS, THREADS);
	return 0;
}
