/*
 * loader -- turns the plugin folder into loaded plugins.
 *
 * Every file is copied to a private path before dlopen(RTLD_NOW |
 * RTLD_LOCAL): glibc returns the cached handle for a path it has open, and
 * writing over a mapped .so kills the process (SIGSEGV; a truncated one,
 * SIGBUS). The descriptor's
 * magic and ABI are checked before anything else in it is read. Every
 * rejection names the file and the reason, and never stops the other files.
 * A file that has not changed (same inode, size, mtime, same config
 * section) keeps its already-loaded copy; a file that fails to load while
 * an earlier version of it is loaded keeps that version (last known good).
 * When files claim one plugin name, the one that serves it now keeps it,
 * else the one the owner record names (loader_set_owner), else all of them
 * are refused: never file-name order. Names are settled after dlopen and
 * before any init, so a refused file's init never runs (its constructors
 * have).
 *
 * The loader is used by one thread at a time (dlerror is not thread-safe):
 * main's at start-up, then only the loader thread (reloader.h).
 */
#ifndef HOOKD_LOADER_H
#define HOOKD_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <stdint.h>

#include "config.h"
#include "log.h"
#include "plugin.h"

struct loader;

struct loader_reject {
	char *file;   /* file name in the plugin folder */
	char *reason; /* one line */
};

struct loader_result {
	struct plugin **plugins; /* one reference each, sorted by file name */
	size_t nplugins;
	struct loader_reject *rejects;
	size_t nrejects;
};

/* Create a loader whose private copies live in a new directory under
 * `parent` (NULL: $TMPDIR, else /tmp). `api` is handed to every plugin in
 * its ctx. Returns 0 or -1 with a reason in err. */
int loader_create(const char *parent, const struct log *log, const hookd_host_api *api,
		  struct loader **out, char *err, size_t errlen);

/* Asked about a file about to be loaded: return true (with why) to run it
 * isolated whatever the config says (it crashed the host before). */
typedef bool (*loader_isolate_fn)(void *arg, const char *file, const struct stat *st, char *why,
				  size_t len);

/* Probe every new file in a child (`exe --probe`, probe.h) before mapping
 * it, and run plugins configured `isolate` (or that `fn` names) in child
 * processes supervised by `sup` instead of mapping them. exe and sup must
 * outlive the loader; NULL exe: no probing, no isolation (in-process). */
struct isolate_sup;
void loader_set_isolation(struct loader *ld, const char *exe, struct isolate_sup *sup,
			  loader_isolate_fn fn, void *arg);

/* hookd -t: every file is probed (loader_set_isolation's exe is required)
 * and known by its probe's descriptor: nothing is mapped, no init runs. */
void loader_set_probe_only(struct loader *ld, bool on);

/* Load the single file at `path` (called `file` in logs and GET /plugins)
 * into out (appended), in-process: what an isolated plugin's process does.
 * Returns 0, or -1 with the reason. */
int loader_load_path(struct loader *ld, const struct config *cfg, const char *path,
		     const char *file, uint64_t generation, struct loader_result *out,
		     char *reason, size_t len);

/* dlopen `path` here, read and validate its descriptor, and describe it as
 * probe.h says (the probe child's work). Returns 0 and *out, or -1. */
int loader_describe_file(const char *path, cJSON **out, char *reason, size_t len);

/* Which file served plugin `name` last (a record kept across restarts),
 * or NULL. Asked only when files of one scan claim one name and none of
 * them serves it now. */
typedef const char *(*loader_owner_fn)(void *arg, const char *name);

/* Install (or clear, fn NULL) the owner record; `arg` must outlive the
 * loader. */
void loader_set_owner(struct loader *ld, loader_owner_fn fn, void *arg);

/* Remove the private directory (copies still loaded are unlinked when they
 * are unloaded) and free the loader. */
void loader_destroy(struct loader *ld);

/* The private directory's path. */
const char *loader_dir(const struct loader *ld);

/* Scan cfg->plugin_dir. `prev`/`nprev` are the plugins of the generation
 * being replaced (borrowed; reused ones get a new reference). Rejections
 * are logged and listed in out. Returns 0, or -1 (with err) when the folder
 * itself cannot be read: nothing was loaded then. */
int loader_scan(struct loader *ld, const struct config *cfg, struct plugin *const *prev,
		size_t nprev, uint64_t generation, struct loader_result *out, char *err,
		size_t errlen);

/* Release the result's references and memory. */
void loader_result_free(struct loader_result *r);

#endif
