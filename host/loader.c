/*
 * loader -- see loader.h.
 *
 * Load order of one file: open + fstat (the identity is taken from the
 * descriptor we copy from, so a rename in between cannot mix versions),
 * private copy, dlopen, descriptor (magic and ABI first, then at most the
 * plugin's own `size` bytes, and never more than our own struct: a plugin
 * of a newer minor may carry fields we do not know), validation, name
 * uniqueness, init.
 */
#include "loader.h"
#include "blame.h"
#include "interpose.h"
#include "name.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <signal.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define LOADER_MAX_HOOKS 256
#define LOADER_REASON_MAX 512
/* How long an unload waits for the threads of a plugin that fini told to
 * stop but did not join: long enough for a thread on its way out. */
#define LOADER_THREAD_GRACE_MS 200

struct loader {
	const struct log *log;
	const hookd_host_api *api;
	char *dir;    /* private copies */
	uint64_t seq; /* copies made, for unique names */
	loader_veto_fn veto;
	void *veto_arg;
	char dir_problem[LOADER_REASON_MAX]; /* this scan: why the folder is unsafe, or "" */
};

void loader_set_veto(struct loader *ld, loader_veto_fn fn, void *arg)
{
	ld->veto = fn;
	ld->veto_arg = arg;
}

struct plugin *plugin_of_ctx(const hookd_ctx *ctx)
{
	return (struct plugin *)((char *)ctx - offsetof(struct plugin, ctx));
}

void plugin_retain(struct plugin *p)
{
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

/* True when p's code must stay mapped because a thread it started still
 * runs, or a pthread key with a destructor in its code is alive (a thread
 * exiting later would call it): logged, naming the plugin and the
 * leftovers. Runs after fini (or a failed init). */
static bool left_code_in_use(struct plugin *p)
{
	unsigned threads = interpose_wait_threads(p, LOADER_THREAD_GRACE_MS);
	unsigned keys = interpose_live_keys(p);
	char what[160];

	if (!threads && !keys)
		return false;
	if (threads && keys)
		snprintf(what, sizeof(what), "%u thread%s running and %u pthread key%s with a "
			 "destructor in its code", threads, threads == 1 ? "" : "s", keys,
			 keys == 1 ? "" : "s");
	else if (threads)
		snprintf(what, sizeof(what), "%u thread%s running", threads,
			 threads == 1 ? "" : "s");
	else
		snprintf(what, sizeof(what), "%u pthread key%s with a destructor in its code",
			 keys, keys == 1 ? "" : "s");
	log_warn(p->log, "plugin %s (%s, generation %llu) left %s after %s: its code stays "
		 "mapped (a plugin bug: stop and join your threads and delete your pthread "
		 "keys in fini)", p->desc.name ? p->desc.name : "?", p->file,
		 (unsigned long long)p->generation, what, p->initialised ? "fini" : "a failed init");
	return true;
}

static void plugin_free(struct plugin *p)
{
	if (p->initialised && p->desc.fini) {
		struct blame_frame f = {.plugin = p, .generation = p->generation,
					.entry = "fini"};
		blame_push(&f);
		p->desc.fini(&p->ctx);
		blame_pop(&f);
	}
	if (p->dl && left_code_in_use(p)) {
		/* p stays too: the threads count down in it, the key table points
		 * at it. The copy may go: a mapping outlives its file. */
		/* Trap: a thread ending after the grace period leaves p unreachable: LSan reports it. */
		if (p->copy_path)
			unlink(p->copy_path);
		return;
	}
	/* desc.name lives in the plugin's own memory: log before dlclose */
	if (p->initialised)
		log_msg(p->log, LOG_INFO, NULL, "unloaded plugin %s (%s, generation %llu)",
			p->desc.name, p->file, (unsigned long long)p->generation);
	if (p->dl)
		dlclose(p->dl);
	if (p->copy_path)
		unlink(p->copy_path);
	cJSON_Delete(p->config);
	free(p->file);
	free(p->copy_path);
	free(p);
}

void plugin_release(struct plugin *p)
{
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
		plugin_free(p);
}

/* Remove the private folders that runs which died without cleaning up (a
 * crash, SIGKILL) left in `parent`: hookd-<pid>-XXXXXX of ours whose pid no
 * longer runs. Their copies are plain files. */
static void sweep_stale(const char *parent, const struct log *log)
{
	DIR *dir = opendir(parent), *sub;
	struct dirent *de, *f;
	char path[4096], fpath[4096 + 256];
	struct stat st;
	long pid;
	int n;

	if (!dir)
		return;
	while ((de = readdir(dir))) {
		if (sscanf(de->d_name, "hookd-%ld-%n", &pid, &n) != 1 || pid <= 0 ||
		    strlen(de->d_name + n) != 6)
			continue;
		if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue; /* alive, or not ours to judge */
		snprintf(path, sizeof(path), "%s/%s", parent, de->d_name);
		if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
			continue;
		if ((sub = opendir(path))) {
			while ((f = readdir(sub)))
				if (strcmp(f->d_name, ".") && strcmp(f->d_name, "..")) {
					snprintf(fpath, sizeof(fpath), "%s/%s", path, f->d_name);
					unlink(fpath);
				}
			closedir(sub);
		}
		if (rmdir(path) == 0)
			log_info(log, "removed %s: private plugin copies of a run (pid %ld) that "
				 "ended without cleaning up", path, pid);
	}
	closedir(dir);
}

/* The private folder was removed while we run (a tmp cleaner, an
 * operator): make it again, or every later load would fail. */
static void ensure_dir(struct loader *ld)
{
	struct stat st;

	if (stat(ld->dir, &st) == 0 || errno != ENOENT)
		return;
	if (mkdir(ld->dir, 0700) == 0)
		log_warn(ld->log, "private plugin folder %s had been removed: made it again",
			 ld->dir);
}

int loader_create(const char *parent, const struct log *log, const hookd_host_api *api,
		  struct loader **out, char *err, size_t errlen)
{
	struct loader *ld;
	char tmpl[4096];

	*out = NULL;
	if (!parent || !*parent)
		parent = getenv("TMPDIR");
	if (!parent || !*parent)
		parent = "/tmp";
	sweep_stale(parent, log);
	if (snprintf(tmpl, sizeof(tmpl), "%s/hookd-%ld-XXXXXX", parent, (long)getpid()) >=
	    (int)sizeof(tmpl)) {
		snprintf(err, errlen, "runtime_dir %s: path too long", parent);
		return -1;
	}
	if (!mkdtemp(tmpl)) {
		snprintf(err, errlen, "runtime_dir %s: cannot create a private directory: %s",
			 parent, strerror(errno));
		return -1;
	}
	ld = calloc(1, sizeof(*ld));
	if (!ld || !(ld->dir = strdup(tmpl))) {
		rmdir(tmpl);
		free(ld);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ld->log = log;
	ld->api = api;
	*out = ld;
	return 0;
}

void loader_destroy(struct loader *ld)
{
	DIR *dir;
	struct dirent *de;
	char path[4096];

	if (!ld)
		return;
	/* copies of plugins still loaded (a forced exit): unlinking a mapped
	 * file is safe, the mapping stays; their later unlink finds nothing */
	if ((dir = opendir(ld->dir))) {
		while ((de = readdir(dir))) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", ld->dir, de->d_name);
			unlink(path);
		}
		closedir(dir);
	}
	if (rmdir(ld->dir) < 0 && errno != ENOENT)
		log_warn(ld->log, "cannot remove %s: %s", ld->dir, strerror(errno));
	free(ld->dir);
	free(ld);
}

const char *loader_dir(const struct loader *ld)
{
	return ld->dir;
}

static void __attribute__((format(printf, 2, 3))) set_reason(char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, LOADER_REASON_MAX, fmt, ap);
	va_end(ap);
}

static int add_reject(struct loader_result *r, const char *file, const char *reason)
{
	struct loader_reject *n = realloc(r->rejects, (r->nrejects + 1) * sizeof(*n));

	if (!n)
		return -1;
	r->rejects = n;
	n[r->nrejects].file = strdup(file);
	n[r->nrejects].reason = strdup(reason);
	if (!n[r->nrejects].file || !n[r->nrejects].reason) {
		free(n[r->nrejects].file);
		free(n[r->nrejects].reason);
		return -1;
	}
	r->nrejects++;
	return 0;
}

static int add_plugin(struct loader_result *r, struct plugin *p)
{
	struct plugin **n = realloc(r->plugins, (r->nplugins + 1) * sizeof(*n));

	if (!n)
		return -1;
	r->plugins = n;
	n[r->nplugins++] = p;
	return 0;
}


/* Copy the open file `src` to a new file at `dst`. */
static int copy_file(int src, off_t size, const char *dst, char *reason)
{
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
	off_t off = 0;

	if (out < 0) {
		set_reason(reason, "cannot create private copy %s: %s", dst, strerror(errno));
		return -1;
	}
	while (off < size) {
		ssize_t n = sendfile(out, src, &off, (size_t)(size - off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			set_reason(reason, "cannot copy to %s: %s", dst,
				   n < 0 ? strerror(errno) : "file shrank while copying");
			close(out);
			unlink(dst);
			return -1;
		}
	}
	if (close(out) < 0) {
		set_reason(reason, "cannot write private copy %s: %s", dst, strerror(errno));
		unlink(dst);
		return -1;
	}
	return 0;
}

/* The SHA-256 of the file at `path`, as 64 hex digits, into hex[65]. */
static int sha256_file(const char *path, char hex[65], char *reason)
{
	unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;
	ssize_t n;

	if (!ctx || fd < 0 || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		set_reason(reason, "cannot compute the sha256 of %s: %s", path,
			   fd < 0 ? strerror(errno) : "libcrypto failed");
		goto out;
	}
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || !EVP_DigestUpdate(ctx, buf, (size_t)n)) {
			set_reason(reason, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
	}
	if (!EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 32) {
		set_reason(reason, "cannot compute the sha256 of %s", path);
		goto out;
	}
	for (unsigned i = 0; i < 32; i++) {
		hex[2 * i] = "0123456789abcdef"[md[i] >> 4];
		hex[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
	}
	hex[64] = '\0';
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(ctx);
	return rc;
}

static bool trusted(const struct config *cfg, const char *hex)
{
	if (!cfg->trusted_sha256)
		return true;
	for (size_t i = 0; i < cfg->ntrusted; i++)
		if (strcmp(cfg->trusted_sha256[i], hex) == 0)
			return true;
	return false;
}

/* Why the folder itself may not be loaded from ("" if it may): anyone who
 * can write to it can install code that hookd runs. */
static void check_dir(struct loader *ld, const struct config *cfg)
{
	struct stat st;

	ld->dir_problem[0] = '\0';
	if (stat(cfg->plugin_dir, &st) < 0)
		return; /* opendir reports it */
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		set_reason(ld->dir_problem, "the plugin folder %s is writable by group or others "
			   "(mode %04o): refusing to load code from it (chmod go-w it)",
			   cfg->plugin_dir, (unsigned)(st.st_mode & 07777));
	else if (st.st_uid != 0 && st.st_uid != geteuid())
		set_reason(ld->dir_problem, "the plugin folder %s is owned by uid %u, neither root "
			   "nor hookd's user (uid %u)", cfg->plugin_dir, (unsigned)st.st_uid,
			   (unsigned)geteuid());
}

/* True (with the reason) when the file at `path` (open, `st`) must not be
 * loaded: writable by group or others, owned by someone else than root or
 * hookd's user, or a symlink that leads out of the plugin folder. */
static bool insecure(const struct loader *ld, const struct config *cfg, const char *path,
		     const struct stat *st, char *reason)
{
	struct stat lst;

	if (ld->dir_problem[0]) {
		set_reason(reason, "%s", ld->dir_problem);
		return true;
	}
	if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
		char *real = realpath(path, NULL), *dir = realpath(cfg->plugin_dir, NULL);
		size_t dl = dir ? strlen(dir) : 0;
		bool inside = real && dir && strncmp(real, dir, dl) == 0 && real[dl] == '/';
		if (!inside)
			set_reason(reason, "a symlink to %s, outside the plugin folder",
				   real ? real : "a missing file");
		free(real);
		free(dir);
		if (!inside)
			return true;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		set_reason(reason, "writable by group or others (mode %04o): anyone among them "
			   "could change the code hookd runs (chmod go-w it)",
			   (unsigned)(st->st_mode & 07777));
		return true;
	}
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		set_reason(reason, "owned by uid %u, neither root nor hookd's user (uid %u)",
			   (unsigned)st->st_uid, (unsigned)geteuid());
		return true;
	}
	return false;
}

/* Read and check the descriptor at `sym` into p->desc. */
static int read_descriptor(struct plugin *p, const void *sym, char *reason)
{
	const hookd_descriptor *d = sym;
	size_t n;

	/* magic and ABI first: nothing else may be trusted before them */
	if (d->magic != HOOKD_MAGIC) {
		set_reason(reason, "not a hookd plugin: descriptor magic is 0x%08x, expected 0x%08x",
			   d->magic, HOOKD_MAGIC);
		return -1;
	}
	if (d->abi_major != HOOKD_ABI_MAJOR) {
		set_reason(reason, "incompatible ABI %u.%u: this host speaks ABI %u.%u (the major "
			   "version must match; rebuild the plugin against this host's hookd.h)",
			   d->abi_major, d->abi_minor, HOOKD_ABI_MAJOR, HOOKD_ABI_MINOR);
		return -1;
	}
	/* A newer minor loads too (the plugin checks api->abi_minor before using
	 * a newer service): of its descriptor we read what we know, no more, and
	 * its reserved slots, which newer minors may fill, are ignored. */
	if (d->size < offsetof(hookd_descriptor, reserved)) {
		set_reason(reason, "descriptor size %u is smaller than ABI %u.%u's %zu bytes",
			   d->size, d->abi_major, d->abi_minor,
			   offsetof(hookd_descriptor, reserved));
		return -1;
	}
	if (d->abi_minor <= HOOKD_ABI_MINOR && d->size > sizeof(hookd_descriptor)) {
		set_reason(reason, "descriptor size %u is larger than ABI %u.%u's %zu bytes",
			   d->size, d->abi_major, d->abi_minor, sizeof(hookd_descriptor));
		return -1;
	}
	n = d->size < sizeof(p->desc) ? d->size : sizeof(p->desc);
	memset(&p->desc, 0, sizeof(p->desc));
	memcpy(&p->desc, d, n);
	if (d->abi_minor <= HOOKD_ABI_MINOR) {
		/* zero up to our minor, so that a later minor can give them a meaning */
		for (size_t i = 0; i < sizeof(p->desc.reserved) / sizeof(p->desc.reserved[0]); i++)
			if (p->desc.reserved[i]) {
				set_reason(reason, "descriptor field reserved[%zu] is not zero (ABI "
					   "%u.%u leaves it unused: was the plugin built against "
					   "another hookd.h?)", i, d->abi_major, d->abi_minor);
				return -1;
			}
	}
	memset(p->desc.reserved, 0, sizeof(p->desc.reserved)); /* none we know of */

	d = &p->desc;
	if (!d->name || !d->name[0]) {
		set_reason(reason, "descriptor has an empty name");
		return -1;
	}
	if (!name_valid(d->name)) {
		set_reason(reason, "invalid plugin name \"%.80s\": use 1-64 of A-Z a-z 0-9 _ . -",
			   d->name);
		return -1;
	}
	if (d->mode != HOOKD_MODE_SYNC && d->mode != HOOKD_MODE_ASYNC) {
		set_reason(reason, "plugin %s: unknown mode %d (expected HOOKD_MODE_SYNC=1 or "
			   "HOOKD_MODE_ASYNC=2)", d->name, (int)d->mode);
		return -1;
	}
	if (d->mode == HOOKD_MODE_SYNC && !d->call_sync) {
		set_reason(reason, "plugin %s: sync plugin without a call_sync entry point",
			   d->name);
		return -1;
	}
	if (d->mode == HOOKD_MODE_ASYNC && !d->call_async) {
		set_reason(reason, "plugin %s: async plugin without a call_async entry point",
			   d->name);
		return -1;
	}
	if (!d->hooks || !d->hooks[0]) {
		set_reason(reason, "plugin %s: serves no hooks (descriptor.hooks is empty)",
			   d->name);
		return -1;
	}
	for (size_t i = 0; d->hooks[i]; i++) {
		if (i >= LOADER_MAX_HOOKS) {
			set_reason(reason, "plugin %s: more than %d hooks", d->name,
				   LOADER_MAX_HOOKS);
			return -1;
		}
		if (!name_valid(d->hooks[i])) {
			set_reason(reason, "plugin %s: invalid hook name \"%.80s\"", d->name,
				   d->hooks[i]);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(d->hooks[i], d->hooks[j]) == 0) {
				set_reason(reason, "plugin %s: hook \"%s\" listed twice", d->name,
					   d->hooks[i]);
				return -1;
			}
		}
	}
	if (!d->version)
		p->desc.version = "";
	return 0;
}

/* Name of an already accepted plugin called `name`, or NULL. */
static const char *name_taken(const struct loader_result *r, const char *name)
{
	for (size_t i = 0; i < r->nplugins; i++)
		if (strcmp(r->plugins[i]->desc.name, name) == 0)
			return r->plugins[i]->file;
	return NULL;
}

/* Load `file` (open as fd) afresh. Returns the plugin (one reference) or
 * NULL with the reason. */
static struct plugin *load_fresh(struct loader *ld, const struct config *cfg,
				 const struct loader_result *sofar, const char *file, int fd,
				 const struct stat *st, uint64_t generation, char *reason)
{
	struct plugin *p = calloc(1, sizeof(*p));
	const cJSON *section;
	const char *other;
	char path[4096];
	void *sym;
	int rc;

	if (!p) {
		set_reason(reason, "out of memory");
		return NULL;
	}
	atomic_init(&p->refs, 1);
	p->log = ld->log;
	p->generation = generation;
	p->id = (struct plugin_id){st->st_dev, st->st_ino, st->st_size, st->st_mtim};
	if (!(p->file = strdup(file))) {
		set_reason(reason, "out of memory");
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/%llu-%s", ld->dir, (unsigned long long)++ld->seq, file);
	ensure_dir(ld);
	if (copy_file(fd, st->st_size, path, reason) < 0)
		goto fail;
	if (!(p->copy_path = strdup(path))) {
		unlink(path);
		set_reason(reason, "out of memory");
		goto fail;
	}
	/* the digest of the bytes that will be mapped, checked before any of
	 * them runs */
	if (sha256_file(p->copy_path, p->sha256, reason) < 0)
		goto fail;
	if (!trusted(cfg, p->sha256)) {
		set_reason(reason, "sha256 %s is not in trusted_sha256", p->sha256);
		goto fail;
	}
	dlerror();
	p->dl = dlopen(p->copy_path, RTLD_NOW | RTLD_LOCAL);
	if (!p->dl) {
		const char *e = dlerror();
		/* dlerror names the private copy; show the operator's file name */
		const char *tail = e ? strstr(e, ": ") : NULL;
		set_reason(reason, "dlopen failed: %s", tail ? tail + 2 : e ? e : "unknown error");
		goto fail;
	}
	dlerror();
	sym = dlsym(p->dl, HOOKD_DESCRIPTOR_SYMBOL);
	if (!sym) {
		set_reason(reason, "no descriptor: symbol \"%s\" not found (define it with "
			   "HOOKD_PLUGIN_SYNC or HOOKD_PLUGIN_ASYNC)", HOOKD_DESCRIPTOR_SYMBOL);
		goto fail;
	}
	if (read_descriptor(p, sym, reason) < 0)
		goto fail;
	if ((other = name_taken(sofar, p->desc.name))) {
		set_reason(reason, "duplicate plugin name \"%s\": already loaded from %s",
			   p->desc.name, other);
		goto fail;
	}
	section = config_plugin_section(cfg, p->desc.name);
	if (section && !(p->config = cJSON_Duplicate(section, 1))) {
		set_reason(reason, "out of memory");
		goto fail;
	}
	p->ctx.api = ld->api;
	p->ctx.name = p->desc.name;
	p->ctx.state = NULL;
	if (p->desc.init) {
		struct blame_frame f = {.plugin = p, .generation = generation, .entry = "init"};
		blame_push(&f);
		rc = p->desc.init(&p->ctx, p->config);
		blame_pop(&f);
		if (rc != 0) {
			set_reason(reason, "plugin %s: init failed (returned %d)", p->desc.name, rc);
			goto fail;
		}
	}
	p->initialised = true;
	return p;
fail:
	plugin_free(p);
	return NULL;
}

static bool same_file(const struct plugin *p, const struct stat *st)
{
	return p->id.dev == st->st_dev && p->id.ino == st->st_ino && p->id.size == st->st_size &&
	       p->id.mtime.tv_sec == st->st_mtim.tv_sec &&
	       p->id.mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static bool same_config(const struct plugin *p, const struct config *cfg)
{
	const cJSON *now = config_plugin_section(cfg, p->desc.name);

	if (!now || !p->config)
		return !now && !p->config;
	return cJSON_Compare(now, p->config, 1);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_plugin_file(const char *name)
{
	size_t n = strlen(name);

	return name[0] != '.' && n > 3 && strcmp(name + n - 3, ".so") == 0;
}

/*
 * Names are settled in three passes, so that what serves now keeps its name
 * against a newcomer (a file dropped in that claims a loaded plugin's name is
 * the one refused, never the running plugin):
 *   0: unchanged files of the previous generation (reused as they are),
 *   1: changed files of the previous generation (or their last good version),
 *   2: new files, in file-name order.
 */
enum { PASS_UNCHANGED, PASS_CHANGED, PASS_NEW, PASSES };

/* Decide what serves `file` in the new generation, if `file` belongs to
 * `pass`. Returns 1 when dealt with, 0 when it belongs to another pass, -1
 * when out of memory. */
static int scan_one(struct loader *ld, const struct config *cfg, struct plugin *const *prev,
		    size_t nprev, uint64_t generation, const char *file, int pass,
		    struct loader_result *r)
{
	char path[4096], reason[LOADER_REASON_MAX], full[LOADER_REASON_MAX + 128];
	struct plugin *old = NULL, *p = NULL;
	const char *other;
	struct stat st;
	int fd;

	for (size_t i = 0; i < nprev; i++)
		if (strcmp(prev[i]->file, file) == 0)
			old = prev[i];
	snprintf(path, sizeof(path), "%s/%s", cfg->plugin_dir, file);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 && errno == ELOOP)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a symlink is fine */
	{
		bool regular = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
		int mine = regular && old && same_file(old, &st) && same_config(old, cfg)
				   ? PASS_UNCHANGED
			   : old ? PASS_CHANGED
				 : PASS_NEW;
		if (mine != pass) {
			if (fd >= 0)
				close(fd);
			return 0;
		}
	}
	if (fd < 0) {
		set_reason(reason, "cannot open: %s", strerror(errno));
	} else if (fstat(fd, &st) < 0) {
		set_reason(reason, "cannot stat: %s", strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		set_reason(reason, "not a regular file");
	} else if (old && same_file(old, &st) && same_config(old, cfg)) {
		p = old;
		plugin_retain(p);
		if ((other = name_taken(r, p->desc.name))) {
			set_reason(reason, "duplicate plugin name \"%s\": already loaded from %s",
				   p->desc.name, other);
			plugin_release(p);
			p = NULL;
			old = NULL; /* the same file: nothing better to keep */
		}
	} else if (ld->veto && ld->veto(ld->veto_arg, file, &st, reason, sizeof(reason))) {
		/* refused before any of its code runs */
	} else if (insecure(ld, cfg, path, &st, reason)) {
		/* likewise */
	} else {
		p = load_fresh(ld, cfg, r, file, fd, &st, generation, reason);
		if (p)
			log_info(ld->log, "loaded plugin %s %s (%s, %s, generation %llu) sha256 %s",
				 p->desc.name, p->desc.version, file,
				 plugin_is_async(p) ? "async" : "sync",
				 (unsigned long long)generation, p->sha256);
		if (p && p->desc.abi_minor > HOOKD_ABI_MINOR)
			log_info(ld->log, "plugin %s (%s) was built for ABI %u.%u, newer than this "
				 "host's %u.%u: it must check api->abi_minor before using a "
				 "newer service", p->desc.name, file, p->desc.abi_major,
				 p->desc.abi_minor, HOOKD_ABI_MAJOR, HOOKD_ABI_MINOR);
	}
	if (fd >= 0)
		close(fd);
	if (p)
		return add_plugin(r, p) < 0 ? (plugin_release(p), -1) : 1;

	/* rejected: keep the last good version of the same file, if any */
	if (old && !name_taken(r, old->desc.name)) {
		snprintf(full, sizeof(full), "%s; still serving the previous version (loaded in "
			 "generation %llu)", reason, (unsigned long long)old->generation);
		log_error(ld->log, "plugin file %s rejected: %s", path, full);
		plugin_retain(old);
		if (add_plugin(r, old) < 0) {
			plugin_release(old);
			return -1;
		}
		return add_reject(r, file, full) < 0 ? -1 : 1;
	}
	log_error(ld->log, "plugin file %s rejected: %s", path, reason);
	return add_reject(r, file, reason) < 0 ? -1 : 1;
}

static int cmp_plugin_file(const void *a, const void *b)
{
	return strcmp((*(struct plugin *const *)a)->file, (*(struct plugin *const *)b)->file);
}

static int cmp_reject_file(const void *a, const void *b)
{
	return strcmp(((const struct loader_reject *)a)->file,
		      ((const struct loader_reject *)b)->file);
}

int loader_scan(struct loader *ld, const struct config *cfg, struct plugin *const *prev,
		size_t nprev, uint64_t generation, struct loader_result *out, char *err,
		size_t errlen)
{
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *dir;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	dir = opendir(cfg->plugin_dir);
	if (!dir) {
		snprintf(err, errlen, "plugin_dir %s: cannot open: %s", cfg->plugin_dir,
			 strerror(errno));
		return -1;
	}
	while ((errno = 0, de = readdir(dir))) {
		if (!is_plugin_file(de->d_name))
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*nn));
			if (!nn)
				goto oom;
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name)))
			goto oom;
		n++;
	}
	if (errno) {
		snprintf(err, errlen, "plugin_dir %s: cannot read: %s", cfg->plugin_dir,
			 strerror(errno));
		goto out;
	}
	if (n > 1) /* qsort(NULL, 0) is undefined behaviour */
		qsort(names, n, sizeof(*names), cmp_str);
	check_dir(ld, cfg);
	for (int pass = 0; pass < PASSES; pass++)
		for (size_t i = 0; i < n; i++)
			if (scan_one(ld, cfg, prev, nprev, generation, names[i], pass, out) < 0)
				goto oom;
	/* chains without a config are in file-name order */
	if (out->nplugins > 1)
		qsort(out->plugins, out->nplugins, sizeof(*out->plugins), cmp_plugin_file);
	if (out->nrejects > 1)
		qsort(out->rejects, out->nrejects, sizeof(*out->rejects), cmp_reject_file);
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "plugin_dir %s: out of memory while loading", cfg->plugin_dir);
out:
	if (rc < 0)
		loader_result_free(out);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(dir);
	return rc;
}

void loader_result_free(struct loader_result *r)
{
	for (size_t i = 0; i < r->nplugins; i++)
		plugin_release(r->plugins[i]);
	for (size_t i = 0; i < r->nrejects; i++) {
		free(r->rejects[i].file);
		free(r->rejects[i].reason);
	}
	free(r->plugins);
	free(r->rejects);
	memset(r, 0, sizeof(*r));
}
