/*
 * runner -- the child side of isolation: `hookd --runner`, started by
 * isolate.c with its socket as fd 3. It is a small hookd without a
 * transport: one plugin, one generation, its own worker pool, event loop,
 * outbound-HTTP engine and dispatcher, so the plugin gets exactly the host
 * services it would get in-process and cannot tell where it runs. Calls
 * arrive as CALL frames and go through dispatch like any call; their
 * dispatch_result goes back as a RESULT frame.
 *
 * It dies with the host (PR_SET_PDEATHSIG), never gains privileges
 * (PR_SET_NO_NEW_PRIVS), takes the address-space and CPU limits it is
 * given, and exits when the host closes the socket (after the plugin's
 * fini).
 */
#include "runner.h"
#include "config.h"
#include "crash.h"
#include "dispatch.h"
#include "inbound.h"
#include "reply.h"
#include "fetch.h"
#include "json.h"
#include "loader.h"
#include "log.h"
#include "pool.h"
#include "registry.h"
#include "wire.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#define RUNNER_FD 3

struct runner;

struct rcall {
	struct runner *r;
	uint64_t id;
	struct dispatch_call *call;
	TAILQ_ENTRY(rcall) link;
};

struct runner {
	struct log log;
	struct event_base *base;
	struct event *rev, *wev;
	struct jbuf in, out;
	size_t out_off;
	size_t max_output;
	struct dispatch_env *env;
	TAILQ_HEAD(, rcall) calls;
	bool closing;
};

/* Blocking write of everything (start-up and final frames only). */
static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void send_text(int fd, uint8_t type, const char *text)
{
	struct jbuf b = {0};

	if (wire_put_header(&b, type, 0, (uint32_t)strlen(text)) == 0 &&
	    jbuf_append(&b, text, strlen(text)) == 0)
		write_all(fd, b.data, b.len);
	jbuf_free(&b);
}

/* Read one whole frame, blocking (the INIT frame). */
static int read_frame(int fd, struct jbuf *b, struct wire_frame *f)
{
	long long n;

	while ((n = wire_next(b->data, b->len, f)) == 0) {
		if (jbuf_reserve(b, 65536) < 0)
			return -1;
		ssize_t r = recv(fd, b->data + b->len, b->cap - b->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b->len += (size_t)r;
	}
	return n < 0 ? -1 : 0;
}

/* ---- answering -------------------------------------------------------- */

static void flush_out(struct runner *r)
{
	switch (wire_flush(RUNNER_FD, &r->out, &r->out_off)) {
	case WIRE_BLOCKED:
		event_add(r->wev, NULL);
		break;
	case WIRE_BROKEN:
		r->out.len = r->out_off = 0; /* the host is gone: on_read exits */
		break;
	case WIRE_SENT:
		break;
	}
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush_out(arg);
}

static void put_result(struct runner *r, uint64_t id, uint32_t outcome, uint32_t status,
		       const char *err, const struct jbuf *output, const struct jbuf *reply)
{
	size_t el = err ? strlen(err) : 0, ol = output ? output->len : 0;
	size_t rl = reply ? reply->len : 0;
	size_t mark = r->out.len;

	if (wire_put_header(&r->out, WIRE_RESULT, id, (uint32_t)(16 + el + rl + ol)) < 0 ||
	    wire_put_u32(&r->out, outcome) < 0 || wire_put_u32(&r->out, status) < 0 ||
	    wire_put_u32(&r->out, (uint32_t)el) < 0 || (el && jbuf_append(&r->out, err, el) < 0) ||
	    wire_put_u32(&r->out, (uint32_t)rl) < 0 ||
	    (rl && jbuf_append(&r->out, reply->data, rl) < 0) ||
	    (ol && jbuf_append(&r->out, output->data, ol) < 0)) {
		r->out.len = mark;
		if (output) /* try once more without the output */
			put_result(r, id, DISPATCH_NOMEM, 0, "out of memory in the isolated process",
				   NULL, NULL);
		return;
	}
	if (!event_pending(r->wev, EV_WRITE, NULL))
		flush_out(r);
}

static void call_done(void *arg, struct dispatch_result *res)
{
	struct rcall *rc = arg;
	struct runner *r = rc->r;
	struct jbuf out = {0};
	char msg[512];

	TAILQ_REMOVE(&r->calls, rc, link);
	if (res->outcome != DISPATCH_OK) {
		put_result(r, rc->id, (uint32_t)res->outcome, (uint32_t)res->plugin_status,
			   res->error, NULL, NULL);
		goto done;
	}
	/* the host's own checks (max_output, a tree that is not JSON), made
	 * here so that no more than max_output bytes cross the socket */
	out.limit = r->max_output;
	int prc = json_print(res->output, &out);
	struct jbuf rep = {0};
	if (prc == 0 && res->reply && (prc = reply_encode(res->reply, &rep)) < 0)
		prc = -ENOMEM;
	if (prc == 0) {
		put_result(r, rc->id, DISPATCH_OK, 0, NULL, &out, res->reply ? &rep : NULL);
	} else {
		if (prc == -E2BIG)
			snprintf(msg, sizeof(msg), "plugin %s returned an output larger than max_output "
				 "(%zu bytes)", res->plugin ? res->plugin : "?", r->max_output);
		else if (prc == -EINVAL)
			snprintf(msg, sizeof(msg), "plugin %s returned a tree that is not valid JSON "
				 "(NaN or infinity, a raw item that is not JSON, or a member without "
				 "a name)", res->plugin ? res->plugin : "?");
		else
			snprintf(msg, sizeof(msg), "out of memory printing plugin %s's output",
				 res->plugin ? res->plugin : "?");
		put_result(r, rc->id, DISPATCH_STEP_FAILED, 502, msg, NULL, NULL);
	}
	jbuf_free(&rep);
	jbuf_free(&out);
	cJSON_Delete(res->output);
	res->output = NULL;
done:
	free(rc);
}

/* ---- frames from the host -------------------------------------------- */

static void start_call(struct runner *r, const struct wire_frame *f)
{
	const char *p = f->payload, *end = f->payload + f->len;
	uint32_t timeout, il;
	uint16_t hl;
	struct inbound *in = NULL;
	char hook[128], err[256];
	cJSON *input = NULL;
	struct rcall *rc;

	if (wire_get_u32(&p, end, &timeout) < 0 || end - p < 2)
		return;
	memcpy(&hl, p, 2);
	p += 2;
	if (hl >= sizeof(hook) || end - p < hl)
		return;
	memcpy(hook, p, hl);
	hook[hl] = 0;
	p += hl;
	if (wire_get_u32(&p, end, &il) < 0 || (size_t)(end - p) < il)
		return;
	if (il) {
		const char *ip = p;
		if (inbound_decode(&ip, p + il, &in) < 0 || ip != p + il) {
			inbound_unref(in);
			put_result(r, f->id, DISPATCH_NOMEM, 0, "malformed request in the CALL frame",
				   NULL, NULL);
			return;
		}
		p += il;
	}
	if (json_parse(p, (size_t)(end - p), &input, err, sizeof(err)) < 0) {
		inbound_unref(in);
		put_result(r, f->id, DISPATCH_NOMEM, 0, err, NULL, NULL);
		return;
	}
	if (!(rc = calloc(1, sizeof(*rc)))) {
		cJSON_Delete(input);
		inbound_unref(in);
		put_result(r, f->id, DISPATCH_NOMEM, 0, "out of memory in the isolated process",
			   NULL, NULL);
		return;
	}
	rc->r = r;
	rc->id = f->id;
	TAILQ_INSERT_TAIL(&r->calls, rc, link);
	dispatch_call_start(r->env, hook, input, in, call_done, rc, &rc->call);
}

static void cancel_call(struct runner *r, uint64_t id)
{
	struct rcall *rc;

	TAILQ_FOREACH(rc, &r->calls, link)
		if (rc->id == id) {
			TAILQ_REMOVE(&r->calls, rc, link);
			dispatch_call_abort(rc->call);
			free(rc);
			return;
		}
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct runner *r = arg;
	struct wire_frame f;
	long long n;
	size_t off = 0;

	(void)what;
	if (jbuf_reserve(&r->in, 65536) < 0)
		return;
	ssize_t got = recv(fd, r->in.data + r->in.len, r->in.cap - r->in.len, MSG_DONTWAIT);
	if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (got <= 0) {
		/* the host closed us (or is gone): unload and leave */
		r->closing = true;
		event_base_loopbreak(r->base);
		return;
	}
	r->in.len += (size_t)got;
	while ((n = wire_next(r->in.data + off, r->in.len - off, &f)) > 0) {
		off += (size_t)n;
		if (f.type == WIRE_CALL)
			start_call(r, &f);
		else if (f.type == WIRE_CANCEL)
			cancel_call(r, f.id);
	}
	if (n < 0) {
		log_error(&r->log, "isolated process %ld: malformed frame from the host: exiting",
			  (long)getpid());
		r->closing = true;
		event_base_loopbreak(r->base);
		return;
	}
	memmove(r->in.data, r->in.data + off, r->in.len - off);
	r->in.len -= off;
}

/* ---- start-up ---------------------------------------------------------- */

static void apply_limits(struct runner *r, const cJSON *init)
{
	const cJSON *as = cJSON_GetObjectItemCaseSensitive(init, "rlimit_as");
	const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(init, "rlimit_cpu");

	if (cJSON_IsNumber(as) && as->valuedouble > 0) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
		/* the sanitizers reserve terabytes of shadow address space */
		log_info(&r->log, "rlimit_as is not applied in a sanitizer build");
#else
		struct rlimit rl = {(rlim_t)as->valuedouble, (rlim_t)as->valuedouble};
		if (setrlimit(RLIMIT_AS, &rl) < 0)
			log_warn(&r->log, "rlimit_as: %s", strerror(errno));
#endif
	}
	if (cJSON_IsNumber(cpu) && cpu->valuedouble > 0) {
		/* SIGXCPU at the soft limit (a crash the host names), SIGKILL 1 s later */
		struct rlimit rl = {(rlim_t)cpu->valuedouble, (rlim_t)cpu->valuedouble + 1};
		if (setrlimit(RLIMIT_CPU, &rl) < 0)
			log_warn(&r->log, "rlimit_cpu: %s", strerror(errno));
	}
}

/* Load the plugin named by INIT. Returns 0, or -1 with the reason. */
static int load(struct runner *r, const cJSON *init, struct registry *reg, struct loader **ld,
		char *reason, size_t len)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(init, "config");
	const cJSON *copy = cJSON_GetObjectItemCaseSensitive(init, "copy");
	const cJSON *file = cJSON_GetObjectItemCaseSensitive(init, "file");
	const cJSON *gen = cJSON_GetObjectItemCaseSensitive(init, "generation");
	struct loader_result lr = {0};
	struct generation *g;
	struct config *cfg;
	char *text;

	if (!cJSON_IsObject(c) || !cJSON_IsString(copy) || !cJSON_IsString(file) ||
	    !cJSON_IsNumber(gen)) {
		snprintf(reason, len, "malformed INIT frame");
		return -1;
	}
	if (!(text = cJSON_PrintUnformatted(c))) {
		snprintf(reason, len, "out of memory");
		return -1;
	}
	int rc = config_parse(text, strlen(text), "(isolated process)", &cfg, reason, len);
	free(text);
	if (rc < 0)
		return -1;
	r->max_output = cfg->max_output;
	atomic_store(&r->log.level, cfg->log_level);
	if (loader_create(cfg->runtime_dir, &r->log, dispatch_host_api(), ld, reason, len) < 0) {
		config_free(cfg);
		return -1;
	}
	if (loader_load_path(*ld, cfg, copy->valuestring, file->valuestring,
			     (uint64_t)gen->valuedouble, &lr, reason, len) < 0) {
		config_free(cfg);
		return -1;
	}
	if (generation_build(cfg, &lr, (uint64_t)gen->valuedouble, &r->log, &g) < 0) {
		snprintf(reason, len, "out of memory");
		return -1;
	}
	/* mapped now: the copy and the private folder can go, so that a
	 * process that crashes leaves nothing behind */
	unlink(g->lr.plugins[0]->copy_path);
	free(g->lr.plugins[0]->copy_path);
	g->lr.plugins[0]->copy_path = NULL;
	loader_destroy(*ld);
	*ld = NULL;
	registry_swap(reg, g);
	return 0;
}

int runner_main(void)
{
	struct runner r = {0};
	struct registry reg;
	struct loader *ld = NULL;
	struct pool *pool = NULL;
	struct fetch_engine *fe = NULL;
	struct wire_frame f;
	cJSON *init = NULL;
	char reason[1024], ready[64];
	pid_t parent = getppid();
	int rc;

	log_init(&r.log, STDERR_FILENO, LOG_INFO);
	/* the host's log is ours too: say whose line it is */
	snprintf(r.log.who, sizeof(r.log.who), "isolated process %ld", (long)getpid());
	TAILQ_INIT(&r.calls);
	/* die with the host; never gain privileges (setuid binaries, file caps) */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent || parent == 1)
		_exit(1);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	if (read_frame(RUNNER_FD, &r.in, &f) < 0 || f.type != WIRE_INIT ||
	    !(init = cJSON_ParseWithLength(f.payload, f.len)))
		_exit(1);
	r.in.len = 0;
	apply_limits(&r, init);
	snprintf(ready, sizeof(ready), "isolated process %ld of hookd", (long)getpid());
	if (crash_init(STDERR_FILENO, NULL, ready, reason, sizeof(reason)) < 0)
		log_warn(&r.log, "isolated process: %s", reason);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		send_text(RUNNER_FD, WIRE_FAILED, "cannot initialise libcurl");
		_exit(1);
	}
	if (registry_init(&reg) < 0) {
		send_text(RUNNER_FD, WIRE_FAILED, "cannot initialise the registry");
		_exit(1);
	}
	if (load(&r, init, &reg, &ld, reason, sizeof(reason)) < 0) {
		send_text(RUNNER_FD, WIRE_FAILED, reason);
		_exit(1);
	}
	{
		struct generation *g = registry_acquire(&reg);
		const struct config *cfg = g->cfg;
		rc = pool_create(cfg->workers, cfg->queue, &pool);
		if (rc == 0)
			pool_set_max_stuck(pool, cfg->max_stuck_workers);
		unsigned warn = cfg->loop_warn_ms;
		generation_release(g);
		if (rc < 0 || !(r.base = event_base_new()) ||
		    fetch_engine_create(r.base, &r.log, &fe) < 0 ||
		    dispatch_env_create(r.base, pool, &reg, fe, &r.log, &r.env) < 0) {
			send_text(RUNNER_FD, WIRE_FAILED, "isolated process: out of resources");
			_exit(1);
		}
		dispatch_env_watch(r.env, NULL, 0, warn);
	}
	evutil_make_socket_nonblocking(RUNNER_FD);
	r.rev = event_new(r.base, RUNNER_FD, EV_READ | EV_PERSIST, on_read, &r);
	r.wev = event_new(r.base, RUNNER_FD, EV_WRITE, on_write, &r);
	if (!r.rev || !r.wev || event_add(r.rev, NULL) < 0) {
		send_text(RUNNER_FD, WIRE_FAILED, "isolated process: out of resources");
		_exit(1);
	}
	snprintf(ready, sizeof(ready), "{\"pid\":%ld}", (long)getpid());
	send_text(RUNNER_FD, WIRE_READY, ready);
	cJSON_Delete(init);
	event_base_dispatch(r.base);

	/* the host closed the socket: finish nothing more, unload (fini) and go;
	 * whatever is still running is the host's to forget */
	dispatch_cancel_all(r.env);
	while (!TAILQ_EMPTY(&r.calls)) {
		struct rcall *rc2 = TAILQ_FIRST(&r.calls);
		TAILQ_REMOVE(&r.calls, rc2, link);
		free(rc2);
	}
	registry_destroy(&reg); /* the last reference: fini, dlclose */
	loader_destroy(ld);
	_exit(0); /* no exit handlers: a worker may still be inside the plugin */
}
