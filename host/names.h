/*
 * names -- which file served each plugin name last, remembered across
 * restarts, so that two files claiming one name are settled the same way at
 * start as at a reload (loader.h), never by file-name order.
 *
 * The record is <state_dir>/names.json, one object {"plugin": "file.so"},
 * rewritten (temporary name, fsync, rename) whenever the generation about to
 * be made current maps names to other files than the record says. Used by
 * one thread at a time: main's at start, then the loader thread.
 */
#ifndef HOOKD_NAMES_H
#define HOOKD_NAMES_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "plugin.h"

struct names {
	const struct log *log;
	const char *state_dir; /* borrowed; NULL: nothing is remembered */
	cJSON *map;            /* owned: plugin name -> file name */
};

/* Read the record in `state_dir` (NULL: none) into n. A record that cannot
 * be read is logged and ignored (every collision then refuses all its
 * files). `state_dir` and `log` are borrowed. */
void names_load(struct names *n, const char *state_dir, const struct log *log);

/* A loader_owner_fn (arg: struct names *): the file that served `name`
 * last, or NULL. Borrowed from the record. */
const char *names_owner(void *arg, const char *name);

/* Record that `plugins` (borrowed) serve their names from their files,
 * and nothing else; written to the state_dir when it changed. A failure is
 * logged (the record on disk stays as it was). */
void names_save(struct names *n, struct plugin *const *plugins, size_t nplugins);

/* Free the record in memory. */
void names_free(struct names *n);

#endif
