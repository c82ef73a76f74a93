/*
 * names -- see names.h.
 */
#include "names.h"

#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NAMES_RECORD "names.json"
#define NAMES_MAX_BYTES (1 << 20)

void names_load(struct names *n, const char *state_dir, const struct log *log)
{
	char path[PATH_MAX], err[256], *text = NULL;
	cJSON *o = NULL, *e;
	ssize_t got = 0, r;
	int fd;

	n->log = log;
	n->state_dir = state_dir;
	n->map = NULL;
	if (!state_dir)
		return;
	snprintf(path, sizeof(path), "%s/" NAMES_RECORD, state_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_error(log, "%s: %s: ignoring the record of plugin names", path,
				  strerror(errno));
		return;
	}
	if (!(text = malloc(NAMES_MAX_BYTES + 1))) {
		log_error(log, "%s: out of memory: ignoring the record of plugin names", path);
		goto out;
	}
	while (got < NAMES_MAX_BYTES && (r = read(fd, text + got, NAMES_MAX_BYTES - got)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			log_error(log, "%s: %s: ignoring the record of plugin names", path,
				  strerror(errno));
			goto out;
		}
		got += r;
	}
	text[got] = '\0';
	if (json_parse(text, (size_t)got, &o, err, sizeof(err)) < 0 || !cJSON_IsObject(o)) {
		log_error(log, "%s: %s: ignoring the record of plugin names", path,
			  o ? "not an object" : err);
		goto out;
	}
	cJSON_ArrayForEach(e, o)
	{
		if (!cJSON_IsString(e)) {
			log_error(log, "%s: \"%s\" is not a file name: ignoring the record of "
				  "plugin names", path, e->string);
			goto out;
		}
	}
	n->map = o;
	o = NULL;
out:
	cJSON_Delete(o);
	free(text);
	close(fd);
}

const char *names_owner(void *arg, const char *name)
{
	const struct names *n = arg;
	const cJSON *e = n->map ? cJSON_GetObjectItemCaseSensitive(n->map, name) : NULL;

	return cJSON_IsString(e) ? e->valuestring : NULL;
}

/* Write `text` to <state_dir>/names.json by way of a temporary file. */
static int write_record(const char *dir, const char *text, char *err, size_t errlen)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	size_t len = strlen(text), off = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/" NAMES_RECORD, dir);
	snprintf(tmp, sizeof(tmp), "%s/." NAMES_RECORD ".tmp", dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		fd = -1;
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

void names_save(struct names *n, struct plugin *const *plugins, size_t nplugins)
{
	cJSON *map = cJSON_CreateObject();
	char err[PATH_MAX + 128], *text = NULL;

	if (!n->state_dir) {
		cJSON_Delete(map);
		return;
	}
	for (size_t i = 0; map && i < nplugins; i++)
		if (!cJSON_AddStringToObject(map, plugins[i]->desc.name, plugins[i]->file)) {
			cJSON_Delete(map);
			map = NULL;
		}
	if (!map || !(text = json_print_string(map))) {
		log_error(n->log, "out of memory: the record of plugin names is not updated");
		goto out;
	}
	if (n->map && cJSON_Compare(map, n->map, 1))
		goto out; /* nothing new */
	if (write_record(n->state_dir, text, err, sizeof(err)) < 0) {
		log_error(n->log, "cannot write the record of plugin names: %s", err);
		goto out;
	}
	cJSON_Delete(n->map);
	n->map = map;
	map = NULL;
out:
	free(text);
	cJSON_Delete(map);
}

void names_free(struct names *n)
{
	cJSON_Delete(n->map);
	n->map = NULL;
}
