/*
 * ref -- the benchmarks' reference: a bare libevent evhttp server, one
 * thread, that parses the JSON body with cJSON and answers it re-serialised
 * (cJSON_PrintUnformatted). It is the floor a hook host built on the same
 * two libraries is measured against: no routing table, no plugins, no
 * worker pool, no number-printing care (cJSON's own %1.15g printer).
 *
 *   ref PORT        (0: a free port) prints "ref listening on 127.0.0.1:PORT"
 *
 * Any POST path echoes its body, except POST /hooks/cpu, which does the same
 * work as plugins/cpu.c inline on the loop thread ({"n": N} rounds of the
 * same hash) so the CPU-bound rows have a floor too. Bad JSON: 400.
 * SIGTERM/SIGINT: leave the loop, free everything, exit 0 (callgrind.sh
 * relies on a clean exit).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

/* Must stay the same as plugins/cpu.c (run.sh compares the hashes). */
#define CPU_DEFAULT_N 700000

static void reply(struct evhttp_request *req, int code, const char *text, size_t len)
{
	struct evbuffer *b = evhttp_request_get_output_buffer(req);

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evbuffer_add(b, text, len);
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Bad Request", NULL);
}

static cJSON *cpu_work(const cJSON *in)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(in, "n");
	uint64_t rounds = cJSON_IsNumber(n) && n->valuedouble >= 0 ? (uint64_t)n->valuedouble
								    : CPU_DEFAULT_N;
	uint64_t h = 0xcbf29ce484222325ULL;
	char hex[17];
	cJSON *out = cJSON_CreateObject();

	for (uint64_t i = 0; i < rounds; i++)
		h = (h ^ i) * 0x100000001b3ULL;
	snprintf(hex, sizeof(hex), "%016" PRIx64, h);
	cJSON_AddStringToObject(out, "hash", hex);
	cJSON_AddNumberToObject(out, "n", (double)rounds);
	return out;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *uri = evhttp_request_get_uri(req);
	char *body, *text;
	cJSON *json, *out;

	(void)arg;
	if (len == 0) {
		reply(req, 400, "{\"error\":\"empty body\"}", 22);
		return;
	}
	body = (char *)evbuffer_pullup(in, -1); /* contiguous; cJSON gets the length */
	json = cJSON_ParseWithLength(body, len);
	if (!json) {
		reply(req, 400, "{\"error\":\"malformed JSON\"}", 26);
		return;
	}
	out = json;
	if (uri && strcmp(uri, "/hooks/cpu") == 0) {
		out = cpu_work(json);
		cJSON_Delete(json);
	}
	text = cJSON_PrintUnformatted(out);
	cJSON_Delete(out);
	if (!text) {
		reply(req, 400, "{\"error\":\"out of memory\"}", 25);
		return;
	}
	reply(req, 200, text, strlen(text));
	cJSON_free(text);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bs;
	struct event *term, *intr;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	http = evhttp_new(base);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_POST);
	evhttp_set_max_body_size(http, 1 << 20);
	evhttp_set_gencb(http, on_request, NULL);
	bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)atoi(argv[1]));
	if (!bs) {
		fprintf(stderr, "ref: cannot listen on 127.0.0.1:%s\n", argv[1]);
		return 1;
	}
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &sl);
	term = evsignal_new(base, SIGTERM, on_signal, base);
	intr = evsignal_new(base, SIGINT, on_signal, base);
	evsignal_add(term, NULL);
	evsignal_add(intr, NULL);
	printf("ref listening on 127.0.0.1:%u\n", ntohs(sin.sin_port));
	fflush(stdout);
	event_base_dispatch(base);
	evhttp_free(http);
	event_free(term);
	event_free(intr);
	event_base_free(base);
	return 0;
}
