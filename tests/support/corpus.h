/*
 * corpus -- read a folder of JSON payloads for the round-trip tests.
 * Header-only: tests/unit/test_json.c and tests/integration/test_payloads.c
 * both include it, and the two test binaries share no object file.
 *
 * Two corpora, paths relative to the directory the suite runs in (the
 * repository root under make, like $HOOKD_BUILD):
 *  - hookd's own, tests/data/payloads: committed, always there, always run
 *    (tests/data/invalid holds the bodies that must be refused);
 *  - an optional collection of real webhook bodies: $HOOKD_PAYLOADS when
 *    set (then it must exist), else ../shared/payloads when that folder is
 *    there. Absent, its tests are skipped and say so.
 * A corpus that is present must yield at least one *.json, every one
 * readable: a round trip of nothing proves nothing.
 */
#ifndef HOOKD_TEST_CORPUS_H
#define HOOKD_TEST_CORPUS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CORPUS_OWN_DIR "tests/data/payloads"
#define CORPUS_INVALID_DIR "tests/data/invalid"
#define CORPUS_REAL_DEFAULT "../shared/payloads"

struct corpus_file {
	char *name; /* file name without ".json" */
	char *text; /* NUL-terminated */
	size_t len;
};

struct corpus {
	char dir[512];
	struct corpus_file *f; /* sorted by name */
	size_t n;
};

static inline int corpus_by_name(const void *a, const void *b)
{
	return strcmp(((const struct corpus_file *)a)->name, ((const struct corpus_file *)b)->name);
}

static inline void corpus_free(struct corpus *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->f[i].name);
		free(c->f[i].text);
	}
	free(c->f);
	c->f = NULL;
	c->n = 0;
}

/* The whole file, NUL-terminated (caller frees), or NULL with errno set. */
static inline char *corpus_read(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!fp)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1))) {
		if (fread(buf, 1, (size_t)n, fp) == (size_t)n && !ferror(fp)) {
			buf[n] = '\0';
			*len = (size_t)n;
		} else {
			free(buf);
			buf = NULL;
			errno = EIO;
		}
	}
	fclose(fp);
	return buf;
}

/* Every *.json of `dir`, sorted by name. False, with a reason in err, if
 * the folder cannot be opened, holds no *.json, or a file cannot be read. */
static inline bool corpus_try_load(struct corpus *c, const char *dir, char *err, size_t errlen)
{
	DIR *dp;
	struct dirent *de;
	size_t cap = 0;

	memset(c, 0, sizeof(*c));
	snprintf(c->dir, sizeof(c->dir), "%s", dir);
	if (!(dp = opendir(dir))) {
		snprintf(err, errlen, "payload folder %s: %s", dir, strerror(errno));
		return false;
	}
	while ((de = readdir(dp))) {
		size_t l = strlen(de->d_name);
		char path[1024];
		struct corpus_file *f;

		if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		if (c->n == cap) {
			struct corpus_file *g;
			cap = cap ? cap * 2 : 64;
			if (!(g = realloc(c->f, cap * sizeof(*g)))) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			c->f = g;
		}
		f = &c->f[c->n];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f->len = 0;
		if (!(f->text = corpus_read(path, &f->len))) {
			snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
			goto fail;
		}
		if (!(f->name = strndup(de->d_name, l - 5))) {
			free(f->text);
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		c->n++;
	}
	closedir(dp);
	if (c->n == 0) {
		snprintf(err, errlen, "payload folder %s holds no *.json", dir);
		return false;
	}
	qsort(c->f, c->n, sizeof(*c->f), corpus_by_name);
	return true;
fail:
	closedir(dp);
	corpus_free(c);
	return false;
}

/* The same, failing the test on any of those reasons. */
static inline void corpus_load(struct corpus *c, const char *dir)
{
	char err[1200];

	cr_assert(corpus_try_load(c, dir, err, sizeof(err)), "%s", err);
}

/* The folder of the real corpus, or NULL when there is none to run. */
static inline const char *corpus_real_dir(void)
{
	const char *e = getenv("HOOKD_PAYLOADS");
	struct stat st;

	if (e && *e)
		return e; /* asked for: it must be there (corpus_load fails if not) */
	if (stat(CORPUS_REAL_DEFAULT, &st) == 0 && S_ISDIR(st.st_mode))
		return CORPUS_REAL_DEFAULT;
	return NULL;
}

/* Load the real corpus into c, or skip the test when there is none. */
static inline void corpus_load_real_or_skip(struct corpus *c)
{
	const char *dir = corpus_real_dir();

	if (!dir)
		cr_skip_test("real corpus absent (no " CORPUS_REAL_DEFAULT
			     ", HOOKD_PAYLOADS unset): skipped");
	corpus_load(c, dir);
}

/* Say which corpora the round trips run on: one line on stderr (shown
 * without --verbose, unlike cr_log_info), e.g.
 * "payload corpora: tests/data/payloads (28 files), ../shared/payloads (74
 * files)". Fails the test if a present corpus is empty or unreadable.
 * Returns the number of files of our own corpus. */
static inline size_t corpus_log_which(const char *suite)
{
	struct corpus own, real;
	const char *rdir = corpus_real_dir();
	size_t n;

	corpus_load(&own, CORPUS_OWN_DIR);
	n = own.n;
	if (rdir) {
		corpus_load(&real, rdir);
		fprintf(stderr, "[----] %s: payload corpora: %s (%zu files), %s (%zu files)\n",
			suite, own.dir, own.n, real.dir, real.n);
		corpus_free(&real);
	} else {
		fprintf(stderr, "[----] %s: payload corpora: %s (%zu files); real corpus absent "
			"(no %s, HOOKD_PAYLOADS unset), skipped\n",
			suite, own.dir, own.n, CORPUS_REAL_DEFAULT);
	}
	corpus_free(&own);
	return n;
}

/* The file `name` (without .json) of c; fails the test if it is missing. */
static inline const struct corpus_file *corpus_get(const struct corpus *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->f[i].name, name) == 0)
			return &c->f[i];
	cr_assert_fail("payload %s.json is not in %s", name, c->dir);
	return NULL;
}

#endif
