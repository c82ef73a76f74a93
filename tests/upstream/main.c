/* upstream -- the test upstream as a standalone server (for bench/):
 *   build/tests/upstream [PORT]   prints "upstream listening on 127.0.0.1:PORT",
 *   serves until SIGTERM/SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../support/upstream.h"

int main(int argc, char **argv)
{
	struct upstream *u = upstream_start(argc > 1 ? (uint16_t)atoi(argv[1]) : 0);
	sigset_t set;
	int sig;

	if (!u) {
		fprintf(stderr, "upstream: cannot listen\n");
		return 1;
	}
	printf("upstream listening on 127.0.0.1:%u\n", upstream_port(u));
	fflush(stdout);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sigwait(&set, &sig);
	upstream_stop(u);
	return 0;
}
