/*
 * unit -- helpers shared by the unit suites: temp dirs, build products,
 * files, and a plugin folder with a loader around it.
 *
 * Criterion runs every test in its own process, in parallel: everything a
 * test touches lives in its own mkdtemp directory, removed at the end.
 * Build products come from $HOOKD_BUILD (default "build", relative to the
 * repository root where make runs the suite), so that the ASan suite loads
 * the ASan-built fixtures.
 */
#ifndef HOOKD_TEST_UNIT_H
#define HOOKD_TEST_UNIT_H

#include <stddef.h>

#include "../../host/config.h"
#include "../../host/loader.h"
#include "../../host/log.h"

/* A new empty directory under $TMPDIR (or /tmp). Asserts. */
void u_tmpdir(char *out, size_t len);
/* rm -rf `path` (no-op if missing). */
void u_rmtree(const char *path);

/* ASan builds: fail the test now if LeakSanitizer finds memory the test
 * left unreachable (a leak reported when the test's process exits does not
 * fail it). Call with everything of the test freed. No-op otherwise. */
void u_assert_no_leaks(void);

/* `rel` inside the build directory ("fixtures/echo.so"). */
void u_build_path(char *out, size_t len, const char *rel);

/* Whole file, NUL-terminated (caller frees), or NULL; *len if non-NULL. */
char *u_read_file(const char *path, size_t *len);
/* Copy file src to dst (created or truncated). Asserts. */
void u_copy_file(const char *src, const char *dst);
/* Create or truncate `path` with `text`. Asserts. */
void u_write_file(const char *path, const char *text);
/* Number of entries in a directory, "." and ".." excluded; -1 if it cannot
 * be opened. */
long u_count_entries(const char *dir);
/* Number of (possibly overlapping) occurrences of `needle` in `hay`. */
size_t u_count_str(const char *hay, const char *needle);

/* A plugin folder, a runtime dir, a log file and a loader, all under one
 * temp dir. */
struct u_env {
	char dir[256];
	char plugins[320];  /* plugin_dir */
	char run[320];      /* the loader's parent dir */
	char logpath[320];
	char cfgpath[320];  /* the name configs are parsed under */
	struct log log;
	int logfd;
	struct loader *ld;
};

void u_env_init(struct u_env *e);
/* Destroys the loader (every plugin must be released by then), removes
 * everything. */
void u_env_fini(struct u_env *e);
/* Install build product `rel` into the plugin folder as `name`, atomically
 * (copy to a dotfile, rename), so every install is a new inode, with an
 * mtime of its own (1500000000 + n seconds). */
void u_env_install(struct u_env *e, const char *rel, const char *name);
/* A config whose plugin_dir is the folder, plus JSON object `members`
 * (e.g. "\"timeout_ms\": 5, " -- each member followed by a comma). */
struct config *u_env_config(const struct u_env *e, const char *members);
/* Scan with `prev` (may be NULL) into *out; asserts that scan succeeds. */
void u_env_scan(struct u_env *e, const struct config *cfg, const struct loader_result *prev,
		uint64_t generation, struct loader_result *out);

/* The rejection of `file` in r, or NULL. */
const struct loader_reject *u_find_reject(const struct loader_result *r, const char *file);
/* The plugin loaded from `file` in r, or NULL. */
struct plugin *u_find_plugin(const struct loader_result *r, const char *file);

#endif
