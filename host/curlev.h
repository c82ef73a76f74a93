/*
 * curlev -- a libcurl multi handle driven by one loop's event base: the
 * multi-socket API (CURLMOPT_SOCKETFUNCTION + CURLMOPT_TIMERFUNCTION +
 * curl_multi_socket_action), as curl's docs/examples/hiperfifo.c. One per
 * loop, so that connections are reused across calls; a cache of idle easy
 * handles beside it.
 *
 * Invariants:
 *   - Loop thread only.
 *   - curl's callbacks only mirror curl's wishes onto events (a socket's
 *     interest, one timer); nothing else runs inside curl, which refuses
 *     re-entrant calls (CURLM_RECURSIVE_API_CALL).
 *   - After every curl_multi_socket_action, finished transfers are read
 *     with curl_multi_info_read until none is left and reported through
 *     done(), which may add and remove transfers freely.
 *   - An easy handle is in the multi from curlev_add until done() is
 *     called for it or curlev_remove; its CURLOPT_PRIVATE is done()'s arg.
 */
#ifndef HOOKD_CURLEV_H
#define HOOKD_CURLEV_H

#include <curl/curl.h>
#include <event2/event.h>

struct curlev;

/* A transfer finished: `easy` is already out of the multi handle; `priv`
 * is its CURLOPT_PRIVATE. Runs on the loop, never inside a curlev call. */
typedef void (*curlev_done_fn)(CURL *easy, CURLcode result, void *priv);

/* Create the multi of `base` (the calling thread is its loop thread);
 * curl_global_init must have run. Returns 0 and *out (free it with
 * curlev_free), or -ENOMEM. */
int curlev_create(struct event_base *base, curlev_done_fn done, struct curlev **out);

/* Free it: closes cached connections, frees idle handles. No easy handle
 * may still be in it. */
void curlev_free(struct curlev *ce);

/* Start `easy` (set up by the caller, CURLOPT_PRIVATE included). The
 * caller keeps owning the handle. Returns 0, or -1 when curl refused. */
int curlev_add(struct curlev *ce, CURL *easy);

/* Take `easy` out before it finished (curl closes its connection);
 * done() will not be called for it. */
void curlev_remove(struct curlev *ce, CURL *easy);

/* An easy handle from the idle cache or a new one (owned by the caller:
 * give it back with curlev_easy_put), or NULL. It is NOT reset: reset it
 * before use (curl_easy_reset), once. */
CURL *curlev_easy_get(struct curlev *ce);

/* Give back a handle not in the multi (NULL is fine). */
void curlev_easy_put(struct curlev *ce, CURL *easy);

#endif
