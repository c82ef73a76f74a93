/*
 * interpose -- which threads and pthread keys a plugin left behind.
 *
 * The hookd executable defines pthread_create, pthread_key_create and
 * pthread_key_delete and exports them (host/exports.list): a plugin
 * dlopen'ed RTLD_LOCAL resolves them to these (the executable comes first
 * in the global lookup), and each calls the real one found with
 * dlsym(RTLD_NEXT) -- libc's, or a sanitizer's interceptor, which comes
 * next. Along the way they count, in the plugin's struct, the threads it
 * started that have not ended yet (struct plugin.live_threads) and the keys
 * with a destructor in its code that it has not deleted (live_keys): once
 * its code is unmapped, such a thread or destructor would run into a hole.
 * The loader reads them after fini to decide whether dlclose is safe.
 *
 * Attribution: a thread belongs to the plugin blamed on the creating thread
 * (blame.h: init, fini, calls and callbacks run inside a frame), or, outside
 * any frame, to the plugin that owns the creating thread (a plugin thread's
 * own threads). Threads whose start routine is the host's own are never
 * counted. A key counts only if its destructor lies in that plugin's code.
 */
#ifndef HOOKD_INTERPOSE_H
#define HOOKD_INTERPOSE_H

struct plugin;

/* Wait up to `timeout_ms` for the threads `p` started to end (a thread
 * told to stop in fini may still be on its way out). Returns how many are
 * still running. Blocks the calling thread; returns at once when none is
 * left. */
unsigned interpose_wait_threads(struct plugin *p, int timeout_ms);

/* How many pthread keys with a destructor in p's code p has created and
 * not deleted. */
unsigned interpose_live_keys(const struct plugin *p);

#endif
