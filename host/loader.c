/*
 * loader -- see loader.h.
 *
 * Load order of one file: open + fstat (the identity is taken from the
 * descriptor we copy from, so a rename in between cannot mix versions),
 * private copy, dlopen, descriptor (magic and ABI first, then at most the
 * plugin's own `size` bytes, and never more than our own struct: a plugin
 * of a newer minor may carry fields we do not know), validation; then,
 * once every file of the scan got that far, names (settle_names), and only
 * then init.
 */
#include "loader.h"
#include "blame.h"
#include "isolate.h"
#include "interpose.h"
#include "name.h"
#include "probe.h"

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
	loader_owner_fn owner;
	void *owner_arg;
	char dir_problem[LOADER_REASON_MAX]; /* this scan: why the folder is unsafe, or "" */
	const char *exe;              /* probe and isolation: the hookd binary, or NULL */
	struct isolate_sup *sup;
	loader_isolate_fn isolate_fn;
	void *isolate_arg;
	bool probe_only;              /* hookd -t: probe, never map, never init */
};

void loader_set_probe_only(struct loader *ld, bool on)
{
	ld->probe_only = on;
}

void loader_set_isolation(struct loader *ld, const char *exe, struct isolate_sup *sup,
			  loader_isolate_fn fn, void *arg)
{
	ld->exe = exe;
	ld->sup = sup;
	ld->isolate_fn = fn;
	ld->isolate_arg = arg;
}

void loader_set_owner(struct loader *ld, loader_owner_fn fn, void *arg)
{
	ld->owner = fn;
	ld->owner_arg = arg;
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
	if (p->iso) {
		log_msg(p->log, LOG_INFO, NULL, "unloaded isolated plugin %s (%s, generation %llu)",
			p->desc.name, p->file, (unsigned long long)p->generation);
		isolate_group_free(p->iso); /* closes its processes, in the background */
	}
	if (p->initialised && !p->iso && p->desc.fini) {
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
	if (p->initialised && !p->iso)
		log_msg(p->log, LOG_INFO, NULL, "unloaded plugin %s (%s, generation %llu)",
			p->desc.name, p->file, (unsigned long long)p->generation);
	if (p->dl)
		dlclose(p->dl);
	if (p->copy_path)
		unlink(p->copy_path); /* isolated: its processes made their own copies */
	free(p->isolated_why);
	free(p->probe_hooks);
	cJSON_Delete(p->probe_desc);
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

/* Take the descriptor the probe read (pd, taken) as the plugin's: an
 * isolated plugin is never mapped here. */
static int take_probe_desc(struct loader *ld, struct plugin *p, cJSON *pd, const char *why,
			   char *reason)
{
	const cJSON *hooks = cJSON_GetObjectItemCaseSensitive(pd, "hooks"), *h;
	size_t n = 0;

	p->probe_desc = pd;
	p->desc.magic = HOOKD_MAGIC;
	p->desc.abi_major = (uint16_t)cJSON_GetNumberValue(cJSON_GetObjectItem(pd, "abi_major"));
	p->desc.abi_minor = (uint16_t)cJSON_GetNumberValue(cJSON_GetObjectItem(pd, "abi_minor"));
	p->desc.size = sizeof(p->desc);
	p->desc.name = cJSON_GetObjectItemCaseSensitive(pd, "name")->valuestring;
	p->desc.version = cJSON_GetStringValue(cJSON_GetObjectItem(pd, "version"));
	if (!p->desc.version)
		p->desc.version = "";
	p->desc.mode = strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(pd, "mode")) ?: "", "async")
			       ? HOOKD_MODE_SYNC
			       : HOOKD_MODE_ASYNC;
	if (!(p->probe_hooks = calloc((size_t)cJSON_GetArraySize(hooks) + 1, sizeof(char *))) ||
	    !(p->isolated_why = strdup(why))) {
		set_reason(reason, "out of memory");
		return -1;
	}
	cJSON_ArrayForEach(h, hooks)
		if (cJSON_IsString(h))
			p->probe_hooks[n++] = h->valuestring;
	p->desc.hooks = p->probe_hooks;
	p->ctx.api = ld->api;
	p->ctx.name = p->desc.name;
	return 0;
}

/* The init of an isolated plugin: start its processes (they load it and run
 * its init). Returns 0 or -1 (reason). */
static int start_isolated(struct loader *ld, const struct config *cfg, struct plugin *p,
			  char *reason)
{
	const struct config_plugin *cp = config_plugin_settings(cfg, p->desc.name);
	char err[512];
	char *init = isolate_init_text(cfg, p->desc.name, p->file, p->copy_path, p->generation,
				       p->desc.hooks);
	struct isolate_options o = {
		.name = p->desc.name,
		.file = p->file,
		.copy_path = p->copy_path,
		.generation = p->generation,
		.sync = p->desc.mode == HOOKD_MODE_SYNC,
		.procs = cfg->isolate_procs,
		.queue = cfg->queue,
		.quarantine_after = cfg->quarantine_after,
		.quarantine_window_s = cfg->quarantine_window_s,
		.rlimit_as = cp ? cp->rlimit_as : 0,
		.rlimit_cpu = cp ? cp->rlimit_cpu : 0,
		.init = init,
		.start_timeout_ms = PROBE_TIMEOUT_MS,
	};

	if (!init) {
		set_reason(reason, "out of memory");
		return -1;
	}
	int rc = isolate_group_create(ld->sup, &o, &p->iso, err, sizeof(err));
	free(init);
	if (rc < 0) {
		set_reason(reason, "plugin %s (isolated): %s", p->desc.name, err);
		return -1;
	}
	p->initialised = true; /* its processes ran init; they run fini */
	log_info(ld->log, "plugin %s runs isolated in %u process(es): %s", p->desc.name,
		 cfg->isolate_procs, p->isolated_why);
	return 0;
}

/* Load `file` (open as fd) afresh, up to its descriptor: copied, checked,
 * dlopen'ed (its constructors have run), not initialised. Returns the
 * plugin (one reference) or NULL with the reason. */
static struct plugin *load_open(struct loader *ld, const struct config *cfg, const char *file,
				int fd, const struct stat *st, uint64_t generation, char *reason)
{
	struct plugin *p = calloc(1, sizeof(*p));
	char path[4096];
	void *sym;

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
	if (ld->exe) {
		/* constructors run first in a throw-away child: a file that
		 * crashes or hangs there is refused without being mapped here */
		cJSON *pd;
		char why[256] = "";
		if (probe_run(ld->exe, p->copy_path, PROBE_TIMEOUT_MS, &pd, reason,
			      LOADER_REASON_MAX) < 0)
			goto fail;
		const char *name = cJSON_GetObjectItemCaseSensitive(pd, "name")->valuestring;
		if (config_plugin_isolated(cfg, name))
			snprintf(why, sizeof(why), "configured (isolate: true)");
		else if (ld->isolate_fn)
			ld->isolate_fn(ld->isolate_arg, file, st, why, sizeof(why));
		if (ld->probe_only && !why[0])
			snprintf(why, sizeof(why), "probed only (hookd -t)");
		if (!ld->sup && !ld->probe_only)
			why[0] = 0; /* no supervisor: in-process */
		if (why[0]) {
			if (take_probe_desc(ld, p, pd, why, reason) < 0)
				goto fail; /* pd is p's now */
			return p;
		}
		cJSON_Delete(pd);
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
	return p;
fail:
	plugin_free(p);
	return NULL;
}

/* Give p (load_open'ed, its name settled) its config section and run its
 * init. Returns 0, or -1 with the reason (p is left for the caller to
 * release: no fini is owed). */
static int load_init(struct loader *ld, const struct config *cfg, struct plugin *p,
		     char *reason)
{
	const cJSON *section = config_plugin_section(cfg, p->desc.name);
	int rc;

	if (section && !(p->config = cJSON_Duplicate(section, 1))) {
		set_reason(reason, "out of memory");
		return -1;
	}
	p->fail_open = config_plugin_fail_open(cfg, p->desc.name);
	p->ctx.api = ld->api;
	p->ctx.name = p->desc.name;
	p->ctx.state = NULL;
	if (ld->probe_only)
		return 0;
	if (p->isolated_why)
		return start_isolated(ld, cfg, p, reason);
	if (p->desc.init) {
		struct blame_frame f = {.plugin = p, .generation = p->generation, .entry = "init"};
		blame_push(&f);
		rc = p->desc.init(&p->ctx, p->config);
		blame_pop(&f);
		if (rc != 0) {
			set_reason(reason, "plugin %s: init failed (returned %d)", p->desc.name, rc);
			return -1;
		}
	}
	p->initialised = true;
	return 0;
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
 * One file of the folder through a scan. Its name is settled before any
 * init runs, against every other file of the scan, never by file-name
 * order (settle_names):
 *   1. open: what the file offers (`p`): the loaded copy as it is when
 *      nothing changed, else a fresh copy up to its descriptor; when the
 *      new version fails, the previous one if any (`fallback`).
 *   2. settle: when files claim one name, the one that serves it now
 *      keeps it, else the one the owner record names; else all are
 *      refused.
 *   3. init the fresh copies that kept their names.
 */
struct cand {
	const char *file;
	struct plugin *old;   /* the previous generation's copy of this file, or NULL */
	struct plugin *p;     /* what the file offers, one reference; NULL: nothing */
	bool running;         /* p's name is the one this file serves now */
	bool fallback;        /* p is `old`, kept because the new version was refused */
	char reason[LOADER_REASON_MAX]; /* why the new version was refused, or "" */
};

/* Step 1 for c->file. */
static void open_one(struct loader *ld, const struct config *cfg, struct plugin *const *prev,
		    size_t nprev, uint64_t generation, struct cand *c)
{
	char path[4096];
	struct stat st;
	int fd;

	for (size_t i = 0; i < nprev; i++)
		if (strcmp(prev[i]->file, c->file) == 0)
			c->old = prev[i];
	snprintf(path, sizeof(path), "%s/%s", cfg->plugin_dir, c->file);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 && errno == ELOOP)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a symlink is fine */
	if (fd < 0) {
		set_reason(c->reason, "cannot open: %s", strerror(errno));
	} else if (fstat(fd, &st) < 0) {
		set_reason(c->reason, "cannot stat: %s", strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		set_reason(c->reason, "not a regular file");
	} else if (c->old && same_file(c->old, &st) && same_config(c->old, cfg)) {
		c->p = c->old;
		plugin_retain(c->p);
		c->running = true;
	} else if (insecure(ld, cfg, path, &st, c->reason)) {
		/* refused before any of its code runs */
	} else if ((c->p = load_open(ld, cfg, c->file, fd, &st, generation, c->reason))) {
		c->running = c->old && strcmp(c->old->desc.name, c->p->desc.name) == 0;
	}
	if (fd >= 0)
		close(fd);
	if (!c->p && c->old) {
		c->p = c->old;
		plugin_retain(c->p);
		c->running = c->fallback = true;
	}
}

/* The candidate other than `self` whose p is called `name`, or NULL. */
static const struct cand *holder(const struct cand *cs, size_t n, const struct cand *self,
				 const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (&cs[i] != self && cs[i].p && strcmp(cs[i].p->desc.name, name) == 0)
			return &cs[i];
	return NULL;
}

/* c's offer is refused (`reason`): fall back to the previous version if it
 * is a different copy whose name nobody else holds now. */
static void refuse(struct cand *cs, size_t n, struct cand *c, const char *reason)
{
	bool was_old = c->p == c->old;

	if (!c->fallback)
		snprintf(c->reason, sizeof(c->reason), "%s", reason);
	plugin_release(c->p); /* a fresh copy that never ran init: no fini */
	c->p = NULL;
	c->fallback = false;
	if (c->old && !was_old && !holder(cs, n, c, c->old->desc.name)) {
		c->p = c->old;
		plugin_retain(c->p);
		c->running = c->fallback = true;
	}
}

/* Does c offer a plugin called `name`? */
static bool claims(const struct cand *c, const char *name)
{
	return c->p && strcmp(c->p->desc.name, name) == 0;
}

/* Step 2: one name, one file, decided by who served it, never by order. */
static void settle_names(struct loader *ld, struct cand *cs, size_t n)
{
	char reason[LOADER_REASON_MAX], name[128];

	for (size_t i = 0; i < n; i++) {
		const struct cand *keep = NULL;
		const char *owner;
		size_t k = 0, seen = 0, len;

		if (!cs[i].p || !holder(cs + i + 1, n - i - 1, NULL, cs[i].p->desc.name))
			continue; /* nothing, or one claimant (earlier ones were settled) */
		/* a copy: refusing a claimant unmaps the name it points into */
		snprintf(name, sizeof(name), "%s", cs[i].p->desc.name);
		for (size_t j = i; j < n; j++)
			if (claims(&cs[j], name)) {
				k++;
				if (cs[j].running)
					keep = &cs[j];
			}
		if (!keep && ld->owner && (owner = ld->owner(ld->owner_arg, name)))
			for (size_t j = i; j < n && !keep; j++)
				if (claims(&cs[j], name) && strcmp(cs[j].file, owner) == 0)
					keep = &cs[j];
		if (keep) {
			set_reason(reason, "duplicate plugin name \"%s\": %s keeps it, as the file "
				   "that served it last; remove %s", name, keep->file,
				   k == 2 ? "one of the two" : "the others");
		} else {
			len = (size_t)snprintf(reason, sizeof(reason),
					       "plugin name \"%s\" is claimed by ", name);
			for (size_t j = i; j < n && len < sizeof(reason); j++)
				if (claims(&cs[j], name)) {
					seen++;
					len += (size_t)snprintf(reason + len, sizeof(reason) - len,
								"%s%s", seen == 1 ? ""
									: seen < k ? ", "
										   : " and ",
								cs[j].file);
				}
			if (len < sizeof(reason))
				snprintf(reason + len, sizeof(reason) - len, "%s",
					 k == 2 ? ": refusing both; remove one"
						: ": refusing all of them; keep one");
		}
		for (size_t j = i; j < n; j++)
			if (&cs[j] != keep && claims(&cs[j], name))
				refuse(cs, n, &cs[j], reason);
	}
}

/* Step 3 for c, and the log line of what it loaded. */
static void init_one(struct loader *ld, const struct config *cfg, struct cand *cs, size_t n,
		     struct cand *c)
{
	char reason[LOADER_REASON_MAX];
	struct plugin *p = c->p;

	if (!p || p->initialised)
		return;
	if (load_init(ld, cfg, p, reason) < 0) {
		refuse(cs, n, c, reason);
		return;
	}
	log_info(ld->log, "loaded plugin %s %s (%s, %s, generation %llu) sha256 %s", p->desc.name,
		 p->desc.version, c->file, plugin_is_async(p) ? "async" : "sync",
		 (unsigned long long)p->generation, p->sha256);
	if (p->desc.abi_minor > HOOKD_ABI_MINOR)
		log_info(ld->log, "plugin %s (%s) was built for ABI %u.%u, newer than this host's "
			 "%u.%u: it must check api->abi_minor before using a newer service",
			 p->desc.name, c->file, p->desc.abi_major, p->desc.abi_minor,
			 HOOKD_ABI_MAJOR, HOOKD_ABI_MINOR);
}

/* Into the result: c's plugin, and its rejection (logged). Returns 0 or -1
 * (out of memory). */
static int add_cand(const struct config *cfg, const struct loader *ld, struct cand *c,
		    struct loader_result *r)
{
	char full[LOADER_REASON_MAX + 128];

	if (c->p) {
		if (add_plugin(r, c->p) < 0)
			return -1;
		c->p = NULL; /* the result's now */
	}
	if (!c->reason[0])
		return 0;
	if (c->fallback)
		snprintf(full, sizeof(full), "%s; still serving the previous version (loaded in "
			 "generation %llu)", c->reason, (unsigned long long)c->old->generation);
	else
		snprintf(full, sizeof(full), "%s", c->reason);
	log_error(ld->log, "plugin file %s/%s rejected: %s", cfg->plugin_dir, c->file, full);
	return add_reject(r, c->file, full);
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
	struct cand *cs = NULL;
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
	if (!(cs = calloc(n ? n : 1, sizeof(*cs))))
		goto oom;
	check_dir(ld, cfg);
	for (size_t i = 0; i < n; i++) {
		cs[i].file = names[i];
		open_one(ld, cfg, prev, nprev, generation, &cs[i]);
	}
	settle_names(ld, cs, n);
	for (size_t i = 0; i < n; i++)
		init_one(ld, cfg, cs, n, &cs[i]);
	for (size_t i = 0; i < n; i++)
		if (add_cand(cfg, ld, &cs[i], out) < 0)
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
	for (size_t i = 0; cs && i < n; i++)
		if (cs[i].p)
			plugin_release(cs[i].p);
	free(cs);
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

int loader_load_path(struct loader *ld, const struct config *cfg, const char *path,
		     const char *file, uint64_t generation, struct loader_result *out,
		     char *reason, size_t len)
{
	char why[LOADER_REASON_MAX];
	struct plugin *p = NULL;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(reason, len, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	p = load_open(ld, cfg, file, fd, &st, generation, why);
	close(fd);
	if (p && load_init(ld, cfg, p, why) < 0) {
		plugin_release(p);
		p = NULL;
	}
	if (!p) {
		snprintf(reason, len, "%s", why);
		return -1;
	}
	if (add_plugin(out, p) < 0) {
		plugin_release(p);
		snprintf(reason, len, "out of memory");
		return -1;
	}
	return 0;
}

int loader_describe_file(const char *path, cJSON **out, char *reason, size_t len)
{
	struct plugin *p = calloc(1, sizeof(*p));
	char why[LOADER_REASON_MAX];
	cJSON *o = NULL, *hooks;
	void *dl, *sym;

	*out = NULL;
	if (!p) {
		snprintf(reason, len, "out of memory");
		return -1;
	}
	dlerror();
	if (!(dl = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
		const char *e = dlerror();
		const char *tail = e ? strstr(e, ": ") : NULL;
		snprintf(reason, len, "dlopen failed: %s", tail ? tail + 2 : e ? e : "unknown error");
		goto fail;
	}
	if (!(sym = dlsym(dl, HOOKD_DESCRIPTOR_SYMBOL))) {
		snprintf(reason, len, "no descriptor: symbol \"%s\" not found (define it with "
			 "HOOKD_PLUGIN_SYNC or HOOKD_PLUGIN_ASYNC)", HOOKD_DESCRIPTOR_SYMBOL);
		goto fail;
	}
	if (read_descriptor(p, sym, why) < 0) {
		snprintf(reason, len, "%s", why);
		goto fail;
	}
	if (!(o = cJSON_CreateObject()) || !cJSON_AddStringToObject(o, "name", p->desc.name) ||
	    !cJSON_AddStringToObject(o, "version", p->desc.version) ||
	    !cJSON_AddStringToObject(o, "mode", p->desc.mode == HOOKD_MODE_ASYNC ? "async"
										  : "sync") ||
	    !cJSON_AddNumberToObject(o, "abi_major", p->desc.abi_major) ||
	    !cJSON_AddNumberToObject(o, "abi_minor", p->desc.abi_minor) ||
	    !(hooks = cJSON_AddArrayToObject(o, "hooks"))) {
		snprintf(reason, len, "out of memory");
		goto fail;
	}
	for (size_t i = 0; p->desc.hooks[i]; i++)
		cJSON_AddItemToArray(hooks, cJSON_CreateString(p->desc.hooks[i]));
	free(p); /* dl stays open: the probe exits right after */
	*out = o;
	return 0;
fail:
	cJSON_Delete(o);
	free(p);
	return -1;
}
