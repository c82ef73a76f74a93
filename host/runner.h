/*
 * runner -- the process an isolated plugin runs in (see runner.c and
 * isolate.h). `hookd --runner`, fd 3 is its socket to the host.
 */
#ifndef HOOKD_RUNNER_H
#define HOOKD_RUNNER_H

/* Serve the host until it closes the socket; never returns. */
int runner_main(void);

#endif
