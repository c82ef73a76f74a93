/*
 * unit -- see unit.h.
 */
#include "unit.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../host/dispatch.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

void u_tmpdir(char *out, size_t len)
{
	const char *t = getenv("TMPDIR");

	if (!t || !*t)
		t = "/tmp";
	cr_assert_lt((size_t)snprintf(out, len, "%s/hookd-unit-XXXXXX", t), len);
	cr_assert_not_null(mkdtemp(out), "mkdtemp %s: %s", out, strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_DNR)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void u_rmtree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void u_assert_no_leaks(void)
{
#ifdef __SANITIZE_ADDRESS__
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0,
		     "LeakSanitizer found leaks: see its report above");
#endif
}

void u_build_path(char *out, size_t len, const char *rel)
{
	const char *b = getenv("HOOKD_BUILD");

	if (!b || !*b)
		b = "build";
	cr_assert_lt((size_t)snprintf(out, len, "%s/%s", b, rel), len);
}

char *u_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0, r;

	if (!f)
		return NULL;
	do {
		if (cap - n < 65536) {
			char *nb = realloc(buf, cap = cap * 2 + 65536);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
	} while (r > 0);
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

void u_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
	cr_assert_eq(fclose(f), 0);
}

long u_count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	long n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

size_t u_count_str(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; p && (p = strstr(p, needle)); p++)
		n++;
	return n;
}

void u_env_init(struct u_env *e)
{
	char err[512];

	memset(e, 0, sizeof(*e));
	u_tmpdir(e->dir, sizeof(e->dir));
	snprintf(e->plugins, sizeof(e->plugins), "%s/plugins", e->dir);
	snprintf(e->run, sizeof(e->run), "%s/run", e->dir);
	snprintf(e->logpath, sizeof(e->logpath), "%s/log", e->dir);
	snprintf(e->cfgpath, sizeof(e->cfgpath), "%s/hookd.json", e->dir);
	cr_assert_eq(mkdir(e->plugins, 0700), 0); /* mkdir applies the umask: 0700 or less */
	cr_assert_eq(mkdir(e->run, 0700), 0);
	e->logfd = open(e->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	cr_assert_geq(e->logfd, 0);
	log_init(&e->log, e->logfd, LOG_DEBUG);
	cr_assert_eq(loader_create(e->run, &e->log, dispatch_host_api(), &e->ld, err, sizeof(err)),
		     0, "loader_create: %s", err);
}

void u_env_fini(struct u_env *e)
{
	loader_destroy(e->ld);
	e->ld = NULL;
	if (e->logfd >= 0)
		close(e->logfd);
	u_rmtree(e->dir);
}

void u_copy_file(const char *src, const char *dst)
{
	size_t len;
	char *data = u_read_file(src, &len);
	FILE *f;

	cr_assert_not_null(data, "cannot read %s (did `make fixtures` run?)", src);
	f = fopen(dst, "wb");
	cr_assert_not_null(f, "open %s: %s", dst, strerror(errno));
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
	free(data);
}

void u_env_install(struct u_env *e, const char *rel, const char *name)
{
	char src[512], tmp[512], dst[512];

	u_build_path(src, sizeof(src), rel);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", e->plugins, name);
	snprintf(dst, sizeof(dst), "%s/%s", e->plugins, name);
	u_copy_file(src, tmp);
	/* whatever the umask: the loader refuses a group- or world-writable file */
	cr_assert_eq(chmod(tmp, 0644), 0);
	/* File timestamps are as coarse as the kernel tick, and a freed inode
	 * number may be handed out again: two installs of same-size files in
	 * one tick could look like one file to the loader. A distinct mtime
	 * per install keeps every install a new version. */
	{
		static time_t next = 1500000000;
		struct timespec ts[2] = {{next, 0}, {next, 0}};
		next++;
		cr_assert_eq(utimensat(AT_FDCWD, tmp, ts, 0), 0, "%s", strerror(errno));
	}
	cr_assert_eq(rename(tmp, dst), 0, "rename %s: %s", dst, strerror(errno));
}

struct config *u_env_config(const struct u_env *e, const char *members)
{
	char text[8192], err[512];
	struct config *cfg;

	cr_assert_lt((size_t)snprintf(text, sizeof(text),
				      "{%s \"listen\": \"127.0.0.1:0\", \"plugin_dir\": \"%s\"}",
				      members ? members : "", e->plugins),
		     sizeof(text));
	cr_assert_eq(config_parse(text, strlen(text), e->cfgpath, &cfg, err, sizeof(err)), 0,
		     "config_parse: %s\n%s", err, text);
	return cfg;
}

void u_env_scan(struct u_env *e, const struct config *cfg, const struct loader_result *prev,
		uint64_t generation, struct loader_result *out)
{
	char err[512];

	cr_assert_eq(loader_scan(e->ld, cfg, prev ? prev->plugins : NULL,
				 prev ? prev->nplugins : 0, generation, out, err, sizeof(err)),
		     0, "loader_scan: %s", err);
}

const struct loader_reject *u_find_reject(const struct loader_result *r, const char *file)
{
	for (size_t i = 0; i < r->nrejects; i++)
		if (strcmp(r->rejects[i].file, file) == 0)
			return &r->rejects[i];
	return NULL;
}

struct plugin *u_find_plugin(const struct loader_result *r, const char *file)
{
	for (size_t i = 0; i < r->nplugins; i++)
		if (strcmp(r->plugins[i]->file, file) == 0)
			return r->plugins[i];
	return NULL;
}
