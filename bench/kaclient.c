/*
 * kaclient -- sends exactly N identical POSTs, one at a time, over one
 * keep-alive connection, and checks each answer is a 200 with a body.
 * callgrind.sh uses it so that a server's instruction count covers a known
 * number of calls (wrk runs for a duration, not a count).
 *
 *   kaclient PORT PATH BODYFILE N      exit 0 when all N answered 200
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static char buf[1 << 20];
static size_t have;

static int fill(int fd)
{
	ssize_t r;

	if (have == sizeof(buf))
		return -1;
	do
		r = read(fd, buf + have, sizeof(buf) - have);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return -1;
	have += (size_t)r;
	return 0;
}

/* Read one response; returns its status, or -1. */
static int response(int fd)
{
	char *end, *cl;
	size_t head, body;
	int status;

	while (!(end = memmem(buf, have, "\r\n\r\n", 4)))
		if (fill(fd) < 0)
			return -1;
	head = (size_t)(end - buf) + 4;
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	*end = '\0';
	cl = strcasestr(buf, "\r\nContent-Length:");
	if (!cl)
		return -1; /* both servers always send it */
	body = strtoul(cl + 17, NULL, 10);
	while (have < head + body)
		if (fill(fd) < 0)
			return -1;
	memmove(buf, buf + head + body, have - head - body);
	have -= head + body;
	return body > 0 ? status : -1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	char *req, *body;
	size_t blen, rlen;
	long n, bad = 0;
	FILE *f;
	int fd, one = 1;

	if (argc != 5) {
		fprintf(stderr, "usage: %s PORT PATH BODYFILE N\n", argv[0]);
		return 2;
	}
	n = atol(argv[4]);
	if (!(f = fopen(argv[3], "rb"))) {
		perror(argv[3]);
		return 2;
	}
	fseek(f, 0, SEEK_END);
	blen = (size_t)ftell(f);
	rewind(f);
	body = malloc(blen + 1);
	if (!body || fread(body, 1, blen, f) != blen)
		return 2;
	fclose(f);
	req = malloc(blen + 512);
	rlen = (size_t)sprintf(req, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			       argv[2], blen);
	memcpy(req + rlen, body, blen);
	rlen += blen;

	sin.sin_port = htons((uint16_t)atoi(argv[1]));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		perror("connect");
		return 1;
	}
	for (long i = 0; i < n; i++) {
		for (size_t off = 0; off < rlen;) {
			ssize_t w = write(fd, req + off, rlen - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fprintf(stderr, "kaclient: write failed after %ld calls\n", i);
				return 1;
			}
			off += (size_t)w;
		}
		int st = response(fd);
		if (st < 0) {
			fprintf(stderr, "kaclient: connection lost after %ld calls\n", i);
			return 1;
		}
		bad += st != 200;
	}
	close(fd);
	if (bad) {
		fprintf(stderr, "kaclient: %ld of %ld answers were not 200\n", bad, n);
		return 1;
	}
	return 0;
}
