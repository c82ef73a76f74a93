/*
 * dedup -- see dedup.h. Each hook is a small record (interned name, its
 * own chained hash table, its list of DONE entries in finish order, its
 * counts); the table is a short list of such records, so a hook's bounds
 * and evictions never touch another's. Under the lock only pointers move:
 * replies are copied in (finish) before the lock and out (replay) after
 * it, and what was evicted is freed after it too.
 */
#include "dedup.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL
#define BUCKETS_MIN 16

/* A reply as stored: immutable once made, shared by the entry and any
 * replay being copied out after the lock was released. data holds the
 * content type (with its NUL), the body, then the headers. */
struct stored {
	atomic_uint refs;
	int status;
	bool has_ct;
	size_t ct_len, body_len, headers_len;
	char data[];
};

struct entry {
	struct entry *next;       /* bucket chain; the graveyard once unlinked */
	TAILQ_ENTRY(entry) age;   /* the hook's DONE list (DONE only) */
	struct stored *stored;    /* DONE: the reply, or NULL (none given) */
	int64_t done_ns;          /* DONE: when it finished */
	uint64_t hash;
	size_t bytes;             /* DONE: what it counts in the hook's bytes */
	bool done;
	size_t keylen;
	unsigned char key[];
};

TAILQ_HEAD(entry_list, entry);

struct hook {
	struct hook *next;
	struct entry **buckets;
	size_t mask;              /* buckets - 1 (a power of two) */
	size_t entries, bytes;
	uint32_t ttl_s;           /* the last limits seen, for dedup_expire */
	struct entry_list done;   /* oldest finish first */
	char name[];
};

struct dedup {
	pthread_mutex_t mu;
	uint64_t k0, k1;          /* SipHash key: set once in dedup_new */
	struct hook *hooks;
	size_t entries, bytes;
};

/* ---- SipHash-2-4 (Aumasson & Bernstein), compact ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                        \
	do {                                                            \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                  \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                  \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

uint64_t dedup_hash(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
	const unsigned char *in = data;
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
	uint64_t b = (uint64_t)len << 56, m;

	for (; len >= 8; in += 8, len -= 8) {
		memcpy(&m, in, 8);
		m = le64toh(m);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < len; i++)
		b |= (uint64_t)in[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- stored replies ---- */

static void stored_unref(struct stored *s)
{
	if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		free(s);
}

/* A stored copy of r (NULL when r is NULL: *out stays NULL). 0 or -ENOMEM. */
static int stored_make(const struct dedup_reply *r, struct stored **out)
{
	struct stored *s;
	size_t ct_len, body_len, hdr_len, n;

	*out = NULL;
	if (!r)
		return 0;
	ct_len = r->content_type ? strlen(r->content_type) : 0;
	body_len = r->body ? r->body_len : 0;
	hdr_len = r->headers ? r->headers_len : 0;
	n = sizeof(*s) + ct_len + 1;
	if (body_len > SIZE_MAX - n || hdr_len > SIZE_MAX - n - body_len)
		return -ENOMEM;
	s = malloc(n + body_len + hdr_len);
	if (!s)
		return -ENOMEM;
	atomic_init(&s->refs, 1);
	s->status = r->status;
	s->has_ct = r->content_type != NULL;
	s->ct_len = ct_len;
	s->body_len = body_len;
	s->headers_len = hdr_len;
	memcpy(s->data, r->content_type ? r->content_type : "", ct_len + 1);
	if (body_len)
		memcpy(s->data + ct_len + 1, r->body, body_len);
	if (hdr_len)
		memcpy(s->data + ct_len + 1 + body_len, r->headers, hdr_len);
	*out = s;
	return 0;
}

/* What a stored reply counts against max_bytes (besides its key). */
static size_t stored_bytes(const struct stored *s)
{
	return s ? s->ct_len + s->body_len + s->headers_len : 0;
}

/* A NUL-terminated malloc'd copy of n bytes (n > 0), or NULL. */
static char *memdup0(const char *p, size_t n)
{
	char *c = malloc(n + 1);

	if (c) {
		memcpy(c, p, n);
		c[n] = 0;
	}
	return c;
}

/* Fill *r (zeroed) with a deep copy of s (NULL: status 0, nothing else).
 * 0, or -ENOMEM with *r zeroed. */
static int stored_copy_out(const struct stored *s, struct dedup_reply *r)
{
	if (!s)
		return 0;
	r->status = s->status;
	if (s->has_ct && !(r->content_type = memdup0(s->data, s->ct_len)))
		goto fail;
	if (s->body_len) {
		if (!(r->body = memdup0(s->data + s->ct_len + 1, s->body_len)))
			goto fail;
		r->body_len = s->body_len;
	}
	if (s->headers_len) {
		if (!(r->headers = memdup0(s->data + s->ct_len + 1 + s->body_len, s->headers_len)))
			goto fail;
		r->headers_len = s->headers_len;
	}
	return 0;
fail:
	dedup_reply_clear(r);
	return -ENOMEM;
}

void dedup_reply_clear(struct dedup_reply *r)
{
	if (!r)
		return;
	free(r->content_type);
	free(r->body);
	free(r->headers);
	memset(r, 0, sizeof(*r));
}

/* ---- entries and hooks (all under d->mu) ---- */

static void entries_free(struct entry *e)
{
	struct entry *next;

	for (; e; e = next) {
		next = e->next;
		stored_unref(e->stored);
		free(e);
	}
}

static struct hook *hook_find(struct dedup *d, const char *name)
{
	struct hook *h;

	for (h = d->hooks; h; h = h->next)
		if (strcmp(h->name, name) == 0)
			return h;
	return NULL;
}

/* The hook's record, made on first sight (once per hook name for the
 * table's life: the only allocation under the lock besides growth). */
static struct hook *hook_get(struct dedup *d, const char *name)
{
	struct hook *h = hook_find(d, name);
	size_t n;

	if (h)
		return h;
	n = strlen(name);
	h = calloc(1, sizeof(*h) + n + 1);
	if (!h)
		return NULL;
	h->buckets = calloc(BUCKETS_MIN, sizeof(*h->buckets));
	if (!h->buckets) {
		free(h);
		return NULL;
	}
	h->mask = BUCKETS_MIN - 1;
	TAILQ_INIT(&h->done);
	memcpy(h->name, name, n + 1);
	h->next = d->hooks;
	d->hooks = h;
	return h;
}

/* The link that points at (key, hash) in h's table, or at the NULL that
 * ends its chain. */
static struct entry **entry_link(struct hook *h, uint64_t hash, const void *key, size_t keylen)
{
	struct entry **l = &h->buckets[hash & h->mask];

	for (; *l; l = &(*l)->next)
		if ((*l)->hash == hash && (*l)->keylen == keylen &&
		    (keylen == 0 || memcmp((*l)->key, key, keylen) == 0))
			break;
	return l;
}

/* Take e out of d (table, DONE list, counts) and onto *grave. */
static void entry_unlink(struct dedup *d, struct hook *h, struct entry *e, struct entry **grave)
{
	struct entry **l = entry_link(h, e->hash, e->key, e->keylen);

	*l = e->next;
	if (e->done) {
		TAILQ_REMOVE(&h->done, e, age);
		h->bytes -= e->bytes;
		d->bytes -= e->bytes;
	}
	h->entries--;
	d->entries--;
	e->next = *grave;
	*grave = e;
}

static bool entry_expired(const struct entry *e, const struct dedup_limits *lim, int64_t now_ns)
{
	return e->done && now_ns - e->done_ns >= (int64_t)lim->ttl_s * NS_PER_S;
}

/* Drop the hook's expired DONE entries from the head of its list. Entries
 * finished out of clock order (threads racing to the lock) may hide an
 * expired one behind a live one: lookups check each entry anyway. */
static void hook_reap(struct dedup *d, struct hook *h, const struct dedup_limits *lim,
		      int64_t now_ns, struct entry **grave)
{
	struct entry *e;

	while ((e = TAILQ_FIRST(&h->done)) && entry_expired(e, lim, now_ns))
		entry_unlink(d, h, e, grave);
}

/* Evict the hook's oldest DONE entry; false if it has none. */
static bool hook_evict_oldest(struct dedup *d, struct hook *h, struct entry **grave)
{
	struct entry *e = TAILQ_FIRST(&h->done);

	if (!e)
		return false;
	entry_unlink(d, h, e, grave);
	return true;
}

/* Keep chains short: double the buckets past one entry per bucket. A
 * failed allocation keeps the old table (longer chains, still correct). */
static void hook_grow(struct hook *h)
{
	size_t n = (h->mask + 1) * 2;
	struct entry **b, *e, *next;

	if (h->entries <= h->mask + 1 || !(b = calloc(n, sizeof(*b))))
		return;
	for (size_t i = 0; i <= h->mask; i++)
		for (e = h->buckets[i]; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	free(h->buckets);
	h->buckets = b;
	h->mask = n - 1;
}

/* ---- the table ---- */

int dedup_new(struct dedup **out)
{
	struct dedup *d;
	unsigned char seed[16];
	ssize_t n;
	struct timespec ts;

	*out = NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	do
		n = getrandom(seed, sizeof(seed), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(seed)) {
		/* No getrandom (old kernel): a weaker but per-process seed. */
		clock_gettime(CLOCK_REALTIME, &ts);
		d->k0 = ((uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
		d->k1 = (uint64_t)(uintptr_t)d ^ dedup_hash(d->k0, 0, &ts, sizeof(ts));
	} else {
		memcpy(&d->k0, seed, 8);
		memcpy(&d->k1, seed + 8, 8);
	}
	pthread_mutex_init(&d->mu, NULL);
	*out = d;
	return 0;
}

void dedup_free(struct dedup *d)
{
	struct hook *h, *hn;

	if (!d)
		return;
	for (h = d->hooks; h; h = hn) {
		hn = h->next;
		for (size_t i = 0; i <= h->mask; i++)
			entries_free(h->buckets[i]);
		free(h->buckets);
		free(h);
	}
	pthread_mutex_destroy(&d->mu);
	free(d);
}

enum dedup_verdict dedup_begin(struct dedup *d, const char *hook, const void *key, size_t keylen,
			       const struct dedup_limits *lim, int64_t now_ns, struct dedup_reply *replay)
{
	uint64_t hash = dedup_hash(d->k0, d->k1, key, keylen);
	struct entry *fresh, *e, **l, *grave = NULL;
	struct stored *st = NULL;
	struct hook *h;
	enum dedup_verdict v;

	memset(replay, 0, sizeof(*replay));
	/* Made before the lock, freed after it if the key is known. */
	fresh = calloc(1, sizeof(*fresh) + keylen);
	if (!fresh)
		return DEDUP_NOMEM;
	fresh->hash = hash;
	fresh->keylen = keylen;
	if (keylen)
		memcpy(fresh->key, key, keylen);

	pthread_mutex_lock(&d->mu);
	if (!(h = hook_get(d, hook))) {
		v = DEDUP_NOMEM;
		goto out;
	}
	h->ttl_s = lim->ttl_s;
	hook_reap(d, h, lim, now_ns, &grave);
	l = entry_link(h, hash, key, keylen);
	if ((e = *l)) {
		if (!e->done) {
			v = DEDUP_IN_FLIGHT;
			goto out;
		}
		if (!entry_expired(e, lim, now_ns)) {
			st = e->stored;
			if (st)
				atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
			v = DEDUP_REPLAY;
			goto out;
		}
		entry_unlink(d, h, e, &grave); /* expired behind a live one */
	}
	/* A reload may have lowered the bounds: bring the hook under them. */
	while (h->bytes > lim->max_bytes && hook_evict_oldest(d, h, &grave))
		;
	while (h->entries >= lim->max_entries)
		if (!hook_evict_oldest(d, h, &grave)) {
			v = DEDUP_FULL;
			goto out;
		}
	l = &h->buckets[hash & h->mask];
	fresh->next = *l;
	*l = fresh;
	fresh = NULL;
	h->entries++;
	d->entries++;
	hook_grow(h);
	v = DEDUP_FIRST;
out:
	pthread_mutex_unlock(&d->mu);
	free(fresh);
	entries_free(grave);
	if (v == DEDUP_REPLAY) {
		if (stored_copy_out(st, replay) < 0)
			v = DEDUP_NOMEM;
		stored_unref(st);
	}
	return v;
}

void dedup_finish(struct dedup *d, const char *hook, const void *key, size_t keylen,
		  const struct dedup_limits *lim, bool ok, const struct dedup_reply *reply, int64_t now_ns)
{
	uint64_t hash = dedup_hash(d->k0, d->k1, key, keylen);
	struct entry *e, *grave = NULL;
	struct stored *st = NULL;
	struct hook *h;
	size_t bytes = 0;

	/* Copied before the lock; a copy that fails counts as a failure
	 * (the entry goes, a repeat runs again). */
	if (ok && stored_make(reply, &st) < 0)
		ok = false;
	if (ok)
		bytes = keylen + stored_bytes(st);

	pthread_mutex_lock(&d->mu);
	if (!(h = hook_find(d, hook)))
		goto out;
	e = *entry_link(h, hash, key, keylen);
	if (!e || e->done)
		goto out;
	if (!ok || bytes > lim->max_bytes) {
		entry_unlink(d, h, e, &grave);
		goto out;
	}
	h->ttl_s = lim->ttl_s;
	hook_reap(d, h, lim, now_ns, &grave);
	while (h->bytes + bytes > lim->max_bytes && hook_evict_oldest(d, h, &grave))
		;
	e->done = true;
	e->done_ns = now_ns;
	e->stored = st;
	st = NULL;
	e->bytes = bytes;
	h->bytes += bytes;
	d->bytes += bytes;
	TAILQ_INSERT_TAIL(&h->done, e, age);
out:
	pthread_mutex_unlock(&d->mu);
	stored_unref(st);
	entries_free(grave);
}

void dedup_expire(struct dedup *d, int64_t now_ns)
{
	struct hook **hp, *h, *gone = NULL;
	struct entry *grave = NULL;
	struct dedup_limits lim = { 0 };

	pthread_mutex_lock(&d->mu);
	for (hp = &d->hooks; (h = *hp);) {
		lim.ttl_s = h->ttl_s;
		hook_reap(d, h, &lim, now_ns, &grave);
		if (h->entries == 0) {
			*hp = h->next;
			h->next = gone;
			gone = h;
		} else {
			hp = &h->next;
		}
	}
	pthread_mutex_unlock(&d->mu);
	entries_free(grave);
	for (; gone; gone = h) {
		h = gone->next;
		free(gone->buckets);
		free(gone);
	}
}

void dedup_stats(struct dedup *d, size_t *entries, size_t *bytes)
{
	pthread_mutex_lock(&d->mu);
	if (entries)
		*entries = d->entries;
	if (bytes)
		*bytes = d->bytes;
	pthread_mutex_unlock(&d->mu);
}

void dedup_hook_stats(struct dedup *d, const char *hook, size_t *entries, size_t *bytes)
{
	struct hook *h;

	pthread_mutex_lock(&d->mu);
	h = hook_find(d, hook);
	if (entries)
		*entries = h ? h->entries : 0;
	if (bytes)
		*bytes = h ? h->bytes : 0;
	pthread_mutex_unlock(&d->mu);
}
