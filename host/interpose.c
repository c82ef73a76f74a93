/*
 * interpose -- see interpose.h.
 *
 * Why the blame frame and not the caller's address (return address +
 * dladdr): a C++ plugin's std::thread is created by libstdc++
 * (std::thread::_M_start_thread calls pthread_create, and the start routine
 * is libstdc++'s too), so neither address lies in the plugin and every C++
 * plugin thread would go unseen. The frame sees them, and every thread a
 * library starts on the plugin's behalf during init or a call. Its cost: a
 * library thread started inside a call (the threaded DNS resolver of a
 * plugin's own libcurl) counts as the plugin's; it ends with its lookup, so
 * it matters only if it outlives fini and the grace period, and then the
 * answer (keep the code mapped) is the safe one. Not seen: threads started
 * by a plugin's ELF constructors (they run in dlopen, before init's frame).
 */
#include "interpose.h"

#include "blame.h"
#include "plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
typedef int (*key_create_fn)(pthread_key_t *, void (*)(void *));
typedef int (*key_delete_fn)(pthread_key_t);

/* The plugin that owns this thread (NULL: a host or library thread), set by
 * trampoline(): the threads a plugin's thread starts are the plugin's too. */
static _Thread_local struct plugin *owner;

/* Module-private state, justified: the interposed functions are called by
 * code that knows nothing of hookd (a plugin, libstdc++, libcurl), so the
 * only place to keep what they learn is here.
 *   - the real functions, looked up once; a race only stores the same value
 *     twice;
 *   - which plugin created each pthread key with a destructor in its code,
 *     by key (keys are small integers below PTHREAD_KEYS_MAX), so that
 *     pthread_key_delete, called with the key alone, finds the plugin. */
static create_fn real_create_fn;
static key_create_fn real_key_create_fn;
static key_delete_fn real_key_delete_fn;
static pthread_mutex_t keys_mu = PTHREAD_MUTEX_INITIALIZER;
static struct plugin *key_owner[PTHREAD_KEYS_MAX];

/* Set once hookd's own constructors run. Sanitizer runtimes call these
 * functions while they initialise, before then (TSan's pthread_key_create
 * for its thread finaliser): until `ready`, everything passes straight
 * through, and the exported functions and what they call before that test
 * are not instrumented (a ThreadSanitizer hook called while TSan
 * initialises crashes). */
static bool ready;

#define INTERPOSE_RAW __attribute__((no_sanitize("thread")))

__attribute__((constructor)) static void interpose_ready(void)
{
	__atomic_store_n(&ready, true, __ATOMIC_RELEASE);
}

INTERPOSE_RAW static bool is_ready(void)
{
	return __atomic_load_n(&ready, __ATOMIC_ACQUIRE);
}

INTERPOSE_RAW static void *real(void **cache, const char *name)
{
	void *fn = __atomic_load_n(cache, __ATOMIC_ACQUIRE);

	if (!fn) {
		fn = dlsym(RTLD_NEXT, name);
		__atomic_store_n(cache, fn, __ATOMIC_RELEASE);
	}
	return fn;
}

/* The object (executable or shared library) whose code holds `addr`, or NULL. */
static struct link_map *object_of(const void *addr)
{
	struct link_map *lm = NULL;
	Dl_info info;

	if (!dladdr1(addr, &info, (void **)&lm, RTLD_DL_LINKMAP))
		return NULL;
	return lm;
}

static bool is_code_of(const struct plugin *p, const void *addr)
{
	struct link_map *mine = NULL;

	if (!p->dl || dlinfo(p->dl, RTLD_DI_LINKMAP, &mine) != 0)
		return false;
	return mine && object_of(addr) == mine;
}

static bool is_host_code(const void *addr)
{
	struct link_map *lm = object_of(addr);

	return lm && lm == object_of((const void *)interpose_wait_threads);
}

/* The plugin on whose behalf the calling thread runs, or NULL. The frame's
 * plugin is const for readers; its counters are the atomics it shares. */
static struct plugin *responsible(void)
{
	const struct blame_frame *f = blame_current();

	return f ? (struct plugin *)f->plugin : owner;
}

struct start {
	void *(*fn)(void *);
	void *arg;
	struct plugin *p;
};

static void thread_ended(void *arg)
{
	struct plugin *p = arg;

	/* the last touch of p: once the count is 0 the loader may free it */
	atomic_fetch_sub_explicit(&p->live_threads, 1, memory_order_release);
}

/* Runs a counted thread's start routine; the cleanup handler also runs on
 * pthread_exit and cancellation. */
static void *trampoline(void *arg)
{
	struct start s = *(struct start *)arg;
	void *volatile ret = NULL; /* volatile: set between the cleanup's setjmp and its use */

	free(arg);
	owner = s.p;
	pthread_cleanup_push(thread_ended, s.p);
	ret = s.fn(s.arg);
	pthread_cleanup_pop(1);
	return ret;
}

static int create_counted(create_fn create, pthread_t *t, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg);

/* Exported: a plugin's pthread_create lands here. */
INTERPOSE_RAW int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
				 void *arg)
{
	create_fn create = (create_fn)real((void **)&real_create_fn, "pthread_create");

	if (!create)
		return EAGAIN;
	if (!is_ready())
		return create(t, attr, fn, arg);
	return create_counted(create, t, attr, fn, arg);
}

static int create_counted(create_fn create, pthread_t *t, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg)
{
	struct plugin *p = responsible();
	struct start *s;
	int rc;

	if (!p || is_host_code((const void *)fn))
		return create(t, attr, fn, arg);
	if (!(s = malloc(sizeof(*s))))
		return EAGAIN;
	*s = (struct start){.fn = fn, .arg = arg, .p = p};
	atomic_fetch_add_explicit(&p->live_threads, 1, memory_order_relaxed);
	rc = create(t, attr, trampoline, s);
	if (rc != 0) {
		atomic_fetch_sub_explicit(&p->live_threads, 1, memory_order_relaxed);
		free(s);
	}
	return rc;
}

static void key_created(pthread_key_t key, void (*destructor)(void *))
{
	struct plugin *p = responsible();

	if (!p || !is_code_of(p, (const void *)destructor))
		return;
	pthread_mutex_lock(&keys_mu);
	key_owner[key] = p;
	atomic_fetch_add_explicit(&p->live_keys, 1, memory_order_relaxed);
	pthread_mutex_unlock(&keys_mu);
}

/* Exported. */
INTERPOSE_RAW int pthread_key_create(pthread_key_t *key, void (*destructor)(void *))
{
	key_create_fn create =
		(key_create_fn)real((void **)&real_key_create_fn, "pthread_key_create");
	int rc;

	if (!create)
		return EAGAIN;
	rc = create(key, destructor);
	if (rc == 0 && destructor && *key < PTHREAD_KEYS_MAX && is_ready())
		key_created(*key, destructor);
	return rc;
}

static void key_deleted(pthread_key_t key)
{
	pthread_mutex_lock(&keys_mu);
	if (key_owner[key]) {
		atomic_fetch_sub_explicit(&key_owner[key]->live_keys, 1, memory_order_relaxed);
		key_owner[key] = NULL;
	}
	pthread_mutex_unlock(&keys_mu);
}

/* Exported. Forgotten before the real delete: the key's number may be
 * handed out again as soon as that returns. */
INTERPOSE_RAW int pthread_key_delete(pthread_key_t key)
{
	key_delete_fn del =
		(key_delete_fn)real((void **)&real_key_delete_fn, "pthread_key_delete");

	if (!del)
		return EINVAL;
	if (key < PTHREAD_KEYS_MAX && is_ready())
		key_deleted(key);
	return del(key);
}

unsigned interpose_wait_threads(struct plugin *p, int timeout_ms)
{
	struct timespec nap = {0, 1000000L};
	unsigned n;

	for (int waited = 0;; waited++) {
		n = atomic_load_explicit(&p->live_threads, memory_order_acquire);
		if (n == 0 || waited >= timeout_ms)
			return n;
		nanosleep(&nap, NULL);
	}
}

unsigned interpose_live_keys(const struct plugin *p)
{
	return atomic_load_explicit(&p->live_keys, memory_order_relaxed);
}
