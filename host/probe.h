/*
 * probe -- look at a plugin file in a throw-away child before hookd maps
 * it: `hookd --probe FILE` dlopens it (its constructors run there), reads
 * and validates its descriptor and prints it as JSON. A file whose
 * constructors crash, hang or exit, or a .so still being written (SIGBUS),
 * costs that child, never hookd; the descriptor it prints is what hookd
 * needs to run the plugin isolated without ever mapping it.
 */
#ifndef HOOKD_PROBE_H
#define HOOKD_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define PROBE_TIMEOUT_MS 10000u

/* Run `exe --probe path` and wait up to timeout_ms. Returns 0 and *desc
 * (caller owns: {"name", "version", "mode": "sync"|"async", "abi_major",
 * "abi_minor", "hooks": [...]}), or -1 with a one-line reason ("loading it
 * killed the probe with SIGSEGV", "did not load within 10000 ms", or the
 * loader's own rejection). Any thread. */
int probe_run(const char *exe, const char *path, uint32_t timeout_ms, cJSON **desc,
	      char *reason, size_t len);

/* The child's side: print the descriptor of `path` (or {"error": reason})
 * on stdout. Returns the exit status. */
int probe_main(const char *path);

#endif
