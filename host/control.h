/*
 * control -- the running daemon as seen from outside: its pid file, and
 * `hookd -s reload|stop`, which signals it and waits for the outcome.
 */
#ifndef HOOKD_CONTROL_H
#define HOOKD_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "log.h"

/* Write this process's pid to `path` (through a temporary file and a
 * rename, mode 0644). Refuses (-1, err) when the file names another live
 * hookd. Returns 0, or -1 with err. */
int ctl_pidfile_write(const char *path, char *err, size_t errlen);

/* Remove `path` if it still names this process. */
void ctl_pidfile_remove(const char *path);

/* `hookd -s CMD -c FILE [-l LISTEN]`: CMD "reload" or "stop". Prints the
 * outcome on stdout (errors on stderr) and returns the exit status: 0 the
 * reload succeeded / the daemon stopped, 1 otherwise. */
int ctl_main(const char *cmd, const char *config_path, const char *listen);

#endif
