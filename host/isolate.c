/*
 * isolate -- see isolate.h.
 *
 * Locking: a group's mutex guards what submitters (loop threads) and the
 * supervisor share: the children's output buffers and in-flight lists, the
 * pending list, readiness and quarantine. Events, input buffers, spawning
 * and reaping belong to the supervisor thread alone. The supervisor's own
 * mutex guards its list of groups and their commands.
 */
#include "isolate.h"
#include "reply.h"
#include "clock.h"
#include "config.h"
#include "crash.h"
#include "sigfmt.h"
#include "wake.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

extern char **environ;

#define ISOLATE_CLOSE_GRACE_MS 2000 /* closed children get this long to run fini */
#define ISOLATE_MAX_CRASH_LOG 64     /* crash times remembered per group */

struct isolate_child {
	struct isolate_group *g;
	unsigned slot;
	pid_t pid;
	int fd, pidfd;
	struct event *rev, *wev, *pev;
	struct jbuf in;            /* supervisor only */
	struct jbuf out;           /* g->mu */
	size_t out_off;            /* g->mu: bytes of out already written */
	bool ready;                /* g->mu */
	bool want_write;           /* g->mu: the supervisor must watch for EV_WRITE */
	bool eof;                  /* supervisor */
	const char *kill_reason;   /* g->mu: why the host killed it, NULL: it died */
	struct isolate_req *inflight; /* g->mu */
	unsigned ninflight;
};

struct isolate_group {
	struct isolate_sup *sup;
	struct isolate_options o;   /* strings owned */
	pthread_mutex_t mu;
	pthread_cond_t cv;          /* creation waits here */
	struct isolate_child **slots; /* o.procs; NULL: dead, respawn due */
	struct event **respawn;      /* one timer per slot */
	struct isolate_req *pending; /* waiting for a ready child */
	unsigned npending;
	uint64_t next_id;
	/* starting */
	unsigned nready_once;       /* children that were ready at least once */
	bool start_failed;
	char start_err[512];
	/* crashes */
	int64_t crash_ns[ISOLATE_MAX_CRASH_LOG];
	unsigned ncrash_log;
	unsigned long crashes, restarts, kills;
	char last_crash[320];
	bool quarantined;
	char quarantine_why[512];
	time_t quarantine_since;
	/* closing (supervisor) */
	bool closing;
	unsigned alive;             /* children not yet reaped */
	struct event *grace;        /* SIGKILL whatever is left */
	bool start_requested;       /* supervisor command */
	bool close_requested;
	struct isolate_group *next; /* sup->groups */
};

struct isolate_sup {
	struct event_base *base;
	pthread_t thread;
	struct wake wake;
	pthread_mutex_t mu;
	struct isolate_group *groups;
	bool stopping;
	char *exe;
	const struct log *log;
	pthread_mutex_t start_mu;   /* the thread is ready */
	pthread_cond_t start_cv;
	int started;                /* 1 ok, -1 failed */
};

void isolate_req_clear(struct isolate_req *r)
{
	free(r->input);
	r->input = NULL;
	free(r->inbound);
	r->inbound = NULL;
	reply_free(r->reply);
	r->reply = NULL;
	free(r->error);
	r->error = NULL;
	cJSON_Delete(r->output);
	r->output = NULL;
}

/* ---- request lists (g->mu) ------------------------------------------ */

static void list_add(struct isolate_req **head, struct isolate_req *r)
{
	r->prev = NULL;
	r->next = *head;
	if (*head)
		(*head)->prev = r;
	*head = r;
}

static void list_del(struct isolate_req **head, struct isolate_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		*head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
}

static void post(struct isolate_req *r)
{
	pool_sink_post(r->job.sink, &r->job);
}

/* Post every request of `list` (taken off every list) with `end`/`msg`. */
static void post_all(struct isolate_req *list, enum isolate_end end, const char *msg)
{
	while (list) {
		struct isolate_req *r = list, *next = r->next;
		r->next = r->prev = NULL;
		r->child = NULL;
		r->end = end;
		free(r->error);
		r->error = msg ? strdup(msg) : NULL;
		post(r);
		list = next;
	}
}

/* ---- writing to a child (g->mu) -------------------------------------- */

/* Write what can be written now; want_write says whether some is left (a
 * broken socket leaves nothing to write: the child is dying, and the
 * supervisor reaps it). */
static void child_flush(struct isolate_child *c)
{
	c->want_write = wire_flush(c->fd, &c->out, &c->out_off) == WIRE_BLOCKED;
}

/* Queue the CALL frame of `r` on child `c` and make `r` in flight there. */
static int child_send_call(struct isolate_child *c, struct isolate_req *r, bool *wake)
{
	struct isolate_group *g = c->g;
	size_t hl = strlen(r->hook);
	uint16_t hl16 = (uint16_t)hl;
	size_t mark = c->out.len;
	int rc;

	r->id = ++g->next_id;
	if ((rc = wire_put_header(&c->out, WIRE_CALL, r->id,
				  (uint32_t)(4 + 2 + hl + 4 + r->inbound_len + r->input_len))) < 0 ||
	    (rc = wire_put_u32(&c->out, r->timeout_ms)) < 0 ||
	    (rc = jbuf_append(&c->out, &hl16, 2)) < 0 || (rc = jbuf_append(&c->out, r->hook, hl)) < 0 ||
	    (rc = wire_put_u32(&c->out, (uint32_t)r->inbound_len)) < 0 ||
	    (r->inbound_len && (rc = jbuf_append(&c->out, r->inbound, r->inbound_len)) < 0) ||
	    (rc = jbuf_append(&c->out, r->input, r->input_len)) < 0) {
		c->out.len = mark;
		return rc;
	}
	free(r->input);
	r->input = NULL;
	free(r->inbound);
	r->inbound = NULL;
	r->child = c;
	r->pid = c->pid;
	list_add(&c->inflight, r);
	c->ninflight++;
	if (!c->want_write) {
		child_flush(c);
		if (c->want_write)
			*wake = true;
	}
	return 0;
}

static struct isolate_child *least_busy(struct isolate_group *g)
{
	struct isolate_child *best = NULL;

	for (unsigned i = 0; i < g->o.procs; i++) {
		struct isolate_child *c = g->slots[i];
		if (c && c->ready && !c->kill_reason && (!best || c->ninflight < best->ninflight))
			best = c;
	}
	return best;
}

/* ---- submit / cancel (any thread) ------------------------------------ */

int isolate_submit(struct isolate_group *g, struct isolate_req *r)
{
	struct isolate_child *c;
	bool wake = false;
	int rc = 0;

	r->job.run = NULL;
	r->child = NULL;
	r->next = r->prev = NULL;
	r->output = NULL;
	r->error = NULL;
	r->pid = 0;
	r->end = ISOLATE_RESULT;
	pthread_mutex_lock(&g->mu);
	if (g->quarantined) {
		r->end = ISOLATE_QUARANTINED;
		r->error = strdup(g->quarantine_why);
		rc = -EPERM;
	} else if ((c = least_busy(g))) {
		if (child_send_call(c, r, &wake) < 0) {
			r->end = ISOLATE_OVERLOADED;
			rc = -EAGAIN;
		}
	} else if (g->npending >= g->o.queue) {
		r->end = ISOLATE_OVERLOADED;
		rc = -EAGAIN;
	} else {
		list_add(&g->pending, r);
		g->npending++;
	}
	pthread_mutex_unlock(&g->mu);
	if (wake)
		wake_signal(&g->sup->wake);
	return rc;
}

void isolate_cancel(struct isolate_group *g, struct isolate_req *r, bool kill_child)
{
	struct isolate_child *c;
	bool posted = false, wake = false;

	pthread_mutex_lock(&g->mu);
	if ((c = r->child)) {
		list_del(&c->inflight, r);
		c->ninflight--;
		r->child = NULL;
		posted = true;
		if (kill_child) {
			if (!c->kill_reason) {
				c->kill_reason = "a sync call in it passed its deadline";
				g->kills++;
				if (pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0) < 0)
					kill(c->pid, SIGKILL);
			}
		} else if (wire_put_header(&c->out, WIRE_CANCEL, r->id, 0) == 0 && !c->want_write) {
			child_flush(c);
			wake = c->want_write;
		}
	} else {
		for (struct isolate_req *q = g->pending; q; q = q->next)
			if (q == r) {
				list_del(&g->pending, r);
				g->npending--;
				posted = true;
				break;
			}
	}
	if (posted) {
		r->end = ISOLATE_CANCELLED;
		post(r);
	}
	pthread_mutex_unlock(&g->mu);
	if (wake)
		wake_signal(&g->sup->wake);
}

bool isolate_quarantined(struct isolate_group *g, char *why, size_t len)
{
	bool q;

	pthread_mutex_lock(&g->mu);
	q = g->quarantined;
	if (q && why && len)
		snprintf(why, len, "%s", g->quarantine_why);
	pthread_mutex_unlock(&g->mu);
	return q;
}

void isolate_describe(struct isolate_group *g, cJSON *o)
{
	cJSON *iso = cJSON_AddObjectToObject(o, "isolated"), *pids;

	if (!iso)
		return;
	pthread_mutex_lock(&g->mu);
	pids = cJSON_AddArrayToObject(iso, "pids");
	for (unsigned i = 0; pids && i < g->o.procs; i++)
		if (g->slots[i] && g->slots[i]->ready)
			cJSON_AddItemToArray(pids, cJSON_CreateNumber(g->slots[i]->pid));
	cJSON_AddNumberToObject(iso, "processes", g->o.procs);
	cJSON_AddNumberToObject(iso, "crashes", (double)g->crashes);
	cJSON_AddNumberToObject(iso, "restarts", (double)g->restarts);
	cJSON_AddNumberToObject(iso, "killed_past_deadline", (double)g->kills);
	if (g->last_crash[0])
		cJSON_AddStringToObject(iso, "last_crash", g->last_crash);
	cJSON_AddBoolToObject(iso, "quarantined", g->quarantined);
	if (g->quarantined) {
		char since[32];
		struct tm tm;
		gmtime_r(&g->quarantine_since, &tm);
		strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
		cJSON_AddStringToObject(iso, "quarantine_reason", g->quarantine_why);
		cJSON_AddStringToObject(iso, "quarantined_since", since);
	}
	pthread_mutex_unlock(&g->mu);
}

/* ---- the supervisor's side of a child -------------------------------- */

static void child_spawn(struct isolate_group *g, unsigned slot);
static void group_maybe_free(struct isolate_group *g);

static void on_child_write(evutil_socket_t fd, short what, void *arg)
{
	struct isolate_child *c = arg;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&c->g->mu);
	child_flush(c);
	if (c->want_write)
		event_add(c->wev, NULL);
	pthread_mutex_unlock(&c->g->mu);
}

/* A RESULT frame: hand the request back to its loop. */
static void child_result(struct isolate_child *c, const struct wire_frame *f)
{
	struct isolate_group *g = c->g;
	const char *p = f->payload, *end = f->payload + f->len;
	uint32_t outcome, status, elen, rlen;
	struct isolate_req *r;
	char err[256];

	if (wire_get_u32(&p, end, &outcome) < 0 || wire_get_u32(&p, end, &status) < 0 ||
	    wire_get_u32(&p, end, &elen) < 0 || (size_t)(end - p) < elen)
		return;
	pthread_mutex_lock(&g->mu);
	for (r = c->inflight; r; r = r->next)
		if (r->id == f->id)
			break;
	if (r) {
		list_del(&c->inflight, r);
		c->ninflight--;
		r->child = NULL;
	}
	pthread_mutex_unlock(&g->mu);
	if (!r)
		return; /* cancelled meanwhile */
	r->end = ISOLATE_RESULT;
	r->outcome = (int)outcome;
	r->plugin_status = (int)status;
	if (elen)
		r->error = strndup(p, elen);
	p += elen;
	if (wire_get_u32(&p, end, &rlen) < 0 || (size_t)(end - p) < rlen) {
		r->outcome = -1;
		free(r->error);
		r->error = strdup("isolated process sent a malformed result");
		post(r);
		return;
	}
	if (rlen && outcome == 0) {
		const char *rp = p;
		r->reply = calloc(1, sizeof(*r->reply));
		if (!r->reply || reply_decode(&rp, p + rlen, r->reply) < 0 || rp != p + rlen) {
			free(r->reply);
			r->reply = NULL;
			r->outcome = -1;
			free(r->error);
			r->error = strdup("isolated process sent a malformed reply");
			post(r);
			return;
		}
	}
	p += rlen;
	if (outcome == 0 && json_parse(p, (size_t)(end - p), &r->output, err, sizeof(err)) < 0) {
		/* the child printed it: this cannot fail but for memory */
		r->outcome = -1;
		free(r->error);
		r->error = strdup(err);
	}
	post(r);
}

static void child_frames(struct isolate_child *c)
{
	struct isolate_group *g = c->g;
	size_t off = 0;
	struct wire_frame f;
	long long n;
	bool wake = false;

	while ((n = wire_next(c->in.data + off, c->in.len - off, &f)) > 0) {
		off += (size_t)n;
		switch (f.type) {
		case WIRE_READY:
			pthread_mutex_lock(&g->mu);
			c->ready = true;
			g->nready_once++;
			while (g->pending) {
				struct isolate_req *r = g->pending;
				list_del(&g->pending, r);
				g->npending--;
				if (child_send_call(c, r, &wake) < 0) {
					r->end = ISOLATE_OVERLOADED;
					post(r);
				}
			}
			if (c->want_write)
				event_add(c->wev, NULL);
			pthread_cond_broadcast(&g->cv);
			pthread_mutex_unlock(&g->mu);
			log_info(g->sup->log, "isolated plugin %s (%s, generation %llu): process %ld "
				 "ready", g->o.name, g->o.file, (unsigned long long)g->o.generation,
				 (long)c->pid);
			break;
		case WIRE_FAILED:
			pthread_mutex_lock(&g->mu);
			snprintf(g->start_err, sizeof(g->start_err), "%.*s", (int)f.len, f.payload);
			pthread_mutex_unlock(&g->mu);
			break;
		case WIRE_RESULT:
			child_result(c, &f);
			break;
		default:
			break;
		}
	}
	if (n < 0) {
		log_error(g->sup->log, "isolated plugin %s: process %ld sent a malformed frame: "
			  "killing it", g->o.name, (long)c->pid);
		kill(c->pid, SIGKILL);
		c->in.len = 0;
		return;
	}
	memmove(c->in.data, c->in.data + off, c->in.len - off);
	c->in.len -= off;
}

static void on_child_read(evutil_socket_t fd, short what, void *arg)
{
	struct isolate_child *c = arg;

	(void)what;
	for (;;) {
		if (jbuf_reserve(&c->in, 65536) < 0)
			break;
		ssize_t n = recv(fd, c->in.data + c->in.len, c->in.cap - c->in.len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			c->eof = true;
			event_del(c->rev);
			break;
		}
		c->in.len += (size_t)n;
		child_frames(c);
	}
}

/* Count a crash and quarantine the plugin when they come too fast; returns
 * the crashes of the last window (the respawn backoff grows with them).
 * g->mu. */
static unsigned count_crash(struct isolate_group *g, int64_t t)
{
	unsigned recent = 0;
	int64_t window = (int64_t)g->o.quarantine_window_s * 1000000000;

	g->crashes++;
	g->crash_ns[g->ncrash_log++ % ISOLATE_MAX_CRASH_LOG] = t;
	for (unsigned i = 0; i < ISOLATE_MAX_CRASH_LOG && i < g->ncrash_log; i++)
		if (t - g->crash_ns[i] <= window)
			recent++;
	if (recent >= g->o.quarantine_after && !g->quarantined) {
		g->quarantined = true;
		g->quarantine_since = time(NULL);
		snprintf(g->quarantine_why, sizeof(g->quarantine_why),
			 "plugin %s is quarantined: %u crashes within %u s (last: %s); install a new "
			 "version of %s and reload to load it again", g->o.name, recent,
			 g->o.quarantine_window_s, g->last_crash, g->o.file);
	}
	return recent;
}

static void child_free(struct isolate_child *c)
{
	event_free(c->rev);
	event_free(c->wev);
	event_free(c->pev);
	close(c->fd);
	close(c->pidfd);
	jbuf_free(&c->in);
	jbuf_free(&c->out);
	free(c);
}

/* The child is gone: answer what it was running, count it, respawn it. */
static void on_child_exit(evutil_socket_t fd, short what, void *arg)
{
	struct isolate_child *c = arg;
	struct isolate_group *g = c->g;
	struct isolate_req *lost, *pending = NULL;
	enum isolate_end end;
	siginfo_t si = {0};
	char how[96], msg[768];
	bool quarantined = false, was_ready;
	unsigned delay_ms = 0, nlost = 0, slot = c->slot;
	int64_t t = clock_mono_ns();

	(void)what;
	if (waitid(P_PIDFD, (id_t)fd, &si, WEXITED) < 0) {
		if (errno == EINTR)
			return; /* called again: the pidfd stays readable */
		si.si_code = CLD_EXITED;
		si.si_status = 255;
	}
	if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED)
		snprintf(how, sizeof(how), "%s", sigfmt_name(si.si_status));
	else
		snprintf(how, sizeof(how), "exit status %d", si.si_status);

	pthread_mutex_lock(&g->mu);
	g->alive--;
	g->slots[c->slot] = NULL;
	lost = c->inflight;
	c->inflight = NULL;
	for (struct isolate_req *r = lost; r; r = r->next)
		nlost++;
	was_ready = c->ready;
	if (g->closing) {
		end = ISOLATE_SHUTDOWN;
		snprintf(msg, sizeof(msg), "isolated plugin %s is being unloaded", g->o.name);
	} else if (c->kill_reason) {
		end = ISOLATE_KILLED;
		snprintf(msg, sizeof(msg), "plugin %s's isolated process %ld was killed: %s", g->o.name,
			 (long)c->pid, c->kill_reason);
	} else {
		end = ISOLATE_CRASHED;
		snprintf(g->last_crash, sizeof(g->last_crash), "%s%s%.160s", how,
			 was_ready ? "" : " while loading: ", was_ready ? "" : g->start_err);
		snprintf(msg, sizeof(msg), "plugin %s crashed in its isolated process %ld (%s)",
			 g->o.name, (long)c->pid, g->last_crash);
		if (!was_ready && g->nready_once == 0) {
			/* never came up: creation fails, nothing to respawn */
			g->start_failed = true;
			if (!g->start_err[0] || si.si_code != CLD_EXITED)
				snprintf(g->start_err, sizeof(g->start_err),
					 "its isolated process died while loading it (%s)", how);
		}
		unsigned n = count_crash(g, t);
		quarantined = g->quarantined;
		delay_ms = 100u << (n > 6 ? 6 : n ? n - 1 : 0);
		if (delay_ms > 5000)
			delay_ms = 5000;
	}
	if (quarantined) {
		pending = g->pending;
		g->pending = NULL;
		g->npending = 0;
	}
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);

	if (end == ISOLATE_CRASHED)
		log_error(g->sup->log, "%s, generation %llu, file %s: %u call(s) it was running "
			  "answered 502%s", msg, (unsigned long long)g->o.generation, g->o.file,
			  nlost,
			  quarantined ? "; quarantined" : "");
	else if (end == ISOLATE_KILLED)
		log_warn(g->sup->log, "%s (generation %llu); starting another", msg,
			 (unsigned long long)g->o.generation);
	if (quarantined)
		log_error(g->sup->log, "%s (generation %llu)", g->quarantine_why,
			  (unsigned long long)g->o.generation);
	post_all(lost, end, msg);
	post_all(pending, ISOLATE_QUARANTINED, g->quarantine_why);
	child_free(c);
	if (g->closing || g->start_failed || quarantined) {
		group_maybe_free(g);
		return;
	}
	struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
	evtimer_add(g->respawn[slot], &tv);
}

static void on_respawn(evutil_socket_t fd, short what, void *arg)
{
	struct isolate_group *g = arg;

	(void)fd;
	(void)what;
	if (g->closing)
		return;
	for (unsigned i = 0; i < g->o.procs; i++)
		if (!g->slots[i] && !evtimer_pending(g->respawn[i], NULL)) {
			pthread_mutex_lock(&g->mu);
			g->restarts++; /* read by isolate_describe on other threads */
			pthread_mutex_unlock(&g->mu);
			child_spawn(g, i);
		}
}

/* posix_spawn the runner with the socket as fd 3. Supervisor thread. */
static void child_spawn(struct isolate_group *g, unsigned slot)
{
	struct isolate_sup *sup = g->sup;
	struct isolate_child *c = calloc(1, sizeof(*c));
	posix_spawn_file_actions_t fa;
	char *argv[] = {sup->exe, "--runner", NULL};
	int sv[2] = {-1, -1}, rc;
	pid_t pid;

	if (!c)
		goto fail;
	c->g = g;
	c->slot = slot;
	c->fd = c->pidfd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		goto fail;
	if (sv[1] == 3) { /* dup2(3, 3) would keep close-on-exec */
		int fd = fcntl(sv[1], F_DUPFD_CLOEXEC, 4);
		close(sv[1]);
		sv[1] = fd;
		if (fd < 0)
			goto fail;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
	posix_spawn_file_actions_addclosefrom_np(&fa, 4);
	rc = posix_spawn(&pid, sup->exe, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	sv[1] = -1;
	if (rc != 0) {
		errno = rc;
		goto fail;
	}
	c->pid = pid;
	c->fd = sv[0];
	sv[0] = -1;
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	c->pidfd = pidfd_open(pid, 0);
	if (c->pidfd < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto fail;
	}
	c->rev = event_new(sup->base, c->fd, EV_READ | EV_PERSIST, on_child_read, c);
	c->wev = event_new(sup->base, c->fd, EV_WRITE, on_child_write, c);
	c->pev = event_new(sup->base, c->pidfd, EV_READ, on_child_exit, c);
	if (!c->rev || !c->wev || !c->pev) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto fail;
	}
	pthread_mutex_lock(&g->mu);
	g->slots[slot] = c;
	g->alive++;
	rc = wire_put_header(&c->out, WIRE_INIT, 0, (uint32_t)strlen(g->o.init));
	if (rc == 0)
		rc = jbuf_append(&c->out, g->o.init, strlen(g->o.init));
	child_flush(c);
	if (c->want_write)
		event_add(c->wev, NULL);
	pthread_mutex_unlock(&g->mu);
	event_add(c->rev, NULL);
	event_add(c->pev, NULL);
	return;
fail:
	log_error(sup->log, "isolated plugin %s: cannot start a process: %s", g->o.name,
		  strerror(errno));
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (c) {
		if (c->fd >= 0)
			close(c->fd);
		if (c->pidfd >= 0)
			close(c->pidfd);
		event_free(c->rev);
		event_free(c->wev);
		event_free(c->pev);
		free(c);
	}
	pthread_mutex_lock(&g->mu);
	if (g->nready_once == 0) {
		g->start_failed = true;
		snprintf(g->start_err, sizeof(g->start_err), "cannot start its isolated process");
		pthread_cond_broadcast(&g->cv);
	}
	pthread_mutex_unlock(&g->mu);
	if (!g->start_failed) {
		struct timeval tv = {1, 0};
		evtimer_add(g->respawn[slot], &tv);
	}
}

/* ---- groups ---------------------------------------------------------- */

static void group_destroy(struct isolate_group *g)
{
	for (unsigned i = 0; i < g->o.procs; i++)
		if (g->respawn && g->respawn[i])
			event_free(g->respawn[i]);
	if (g->grace)
		event_free(g->grace);
	free(g->respawn);
	free(g->slots);
	free((char *)g->o.name);
	free((char *)g->o.file);
	free((char *)g->o.copy_path);
	free((char *)g->o.init);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

/* Supervisor: a closing group whose children are all reaped is freed. */
static void group_maybe_free(struct isolate_group *g)
{
	struct isolate_sup *sup = g->sup;

	if (!g->closing || g->alive)
		return;
	pthread_mutex_lock(&sup->mu);
	for (struct isolate_group **pp = &sup->groups; *pp; pp = &(*pp)->next)
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	bool done = sup->stopping && !sup->groups;
	pthread_mutex_unlock(&sup->mu);
	group_destroy(g);
	if (done)
		event_base_loopbreak(sup->base);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct isolate_group *g = arg;

	(void)fd;
	(void)what;
	for (unsigned i = 0; i < g->o.procs; i++)
		if (g->slots[i]) {
			log_warn(g->sup->log, "isolated plugin %s: process %ld did not exit %d ms "
				 "after it was closed: killing it", g->o.name, (long)g->slots[i]->pid,
				 ISOLATE_CLOSE_GRACE_MS);
			kill(g->slots[i]->pid, SIGKILL);
		}
}

static void group_close(struct isolate_group *g)
{
	struct timeval tv = {ISOLATE_CLOSE_GRACE_MS / 1000, ISOLATE_CLOSE_GRACE_MS % 1000 * 1000};
	struct isolate_req *pending;

	g->closing = true;
	pthread_mutex_lock(&g->mu);
	pending = g->pending;
	g->pending = NULL;
	g->npending = 0;
	pthread_mutex_unlock(&g->mu);
	post_all(pending, ISOLATE_SHUTDOWN, "the isolated plugin is being unloaded");
	for (unsigned i = 0; i < g->o.procs; i++) {
		evtimer_del(g->respawn[i]);
		if (g->slots[i])
			shutdown(g->slots[i]->fd, SHUT_WR); /* EOF: the runner unloads and exits */
	}
	if (g->alive && (g->grace = evtimer_new(g->sup->base, on_grace, g)))
		evtimer_add(g->grace, &tv);
	group_maybe_free(g);
}

/* The supervisor's wake-up: commands and writes asked for by other threads. */
static void on_wake(void *arg)
{
	struct isolate_sup *sup = arg;
	struct isolate_group *g, *next;

	pthread_mutex_lock(&sup->mu);
	g = sup->groups;
	pthread_mutex_unlock(&sup->mu);
	for (; g; g = next) {
		pthread_mutex_lock(&sup->mu);
		next = g->next;
		bool start = g->start_requested, close_it = g->close_requested;
		g->start_requested = false;
		g->close_requested = false;
		pthread_mutex_unlock(&sup->mu);
		if (start)
			for (unsigned i = 0; i < g->o.procs; i++)
				child_spawn(g, i);
		pthread_mutex_lock(&g->mu);
		for (unsigned i = 0; i < g->o.procs; i++) {
			struct isolate_child *c = g->slots[i];
			if (c && c->want_write && !event_pending(c->wev, EV_WRITE, NULL))
				event_add(c->wev, NULL);
		}
		pthread_mutex_unlock(&g->mu);
		if (close_it && !g->closing)
			group_close(g);
	}
	pthread_mutex_lock(&sup->mu);
	bool done = sup->stopping && !sup->groups;
	pthread_mutex_unlock(&sup->mu);
	if (done)
		event_base_loopbreak(sup->base);
}

static void *sup_main(void *arg)
{
	struct isolate_sup *sup = arg;
	sigset_t all;
	int rc;

	crash_blockable_signals(&all); /* signals go to the main loop */
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	rc = wake_init(&sup->wake, sup->base, on_wake, sup);
	pthread_mutex_lock(&sup->start_mu);
	sup->started = rc < 0 ? -1 : 1;
	pthread_cond_broadcast(&sup->start_cv);
	pthread_mutex_unlock(&sup->start_mu);
	if (rc < 0)
		return NULL;
	event_base_loop(sup->base, EVLOOP_NO_EXIT_ON_EMPTY);
	/* the wake-up is closed by isolate_sup_stop after the join: a thread
	 * may still be signalling it now (ThreadSanitizer saw the close race
	 * with the stop's own signal) */
	return NULL;
}

int isolate_sup_start(const char *exe, const struct log *log, struct isolate_sup **out,
		      char *err, size_t errlen)
{
	struct isolate_sup *sup = calloc(1, sizeof(*sup));

	*out = NULL;
	if (!sup || !(sup->exe = strdup(exe)) || !(sup->base = event_base_new())) {
		snprintf(err, errlen, "isolation: out of memory");
		goto fail;
	}
	sup->log = log;
	pthread_mutex_init(&sup->mu, NULL);
	pthread_mutex_init(&sup->start_mu, NULL);
	pthread_cond_init(&sup->start_cv, NULL);
	if (pthread_create(&sup->thread, NULL, sup_main, sup) != 0) {
		snprintf(err, errlen, "isolation: cannot start the supervisor thread");
		goto fail_sync;
	}
	pthread_mutex_lock(&sup->start_mu);
	while (!sup->started)
		pthread_cond_wait(&sup->start_cv, &sup->start_mu);
	pthread_mutex_unlock(&sup->start_mu);
	if (sup->started < 0) {
		pthread_join(sup->thread, NULL);
		snprintf(err, errlen, "isolation: cannot create the supervisor's wake-up");
		goto fail_sync;
	}
	*out = sup;
	return 0;
fail_sync:
	pthread_cond_destroy(&sup->start_cv);
	pthread_mutex_destroy(&sup->start_mu);
	pthread_mutex_destroy(&sup->mu);
fail:
	if (sup) {
		if (sup->base)
			event_base_free(sup->base);
		free(sup->exe);
		free(sup);
	}
	return -1;
}

void isolate_sup_stop(struct isolate_sup *sup)
{
	if (!sup)
		return;
	pthread_mutex_lock(&sup->mu);
	sup->stopping = true;
	for (struct isolate_group *g = sup->groups; g; g = g->next)
		g->close_requested = true;
	pthread_mutex_unlock(&sup->mu);
	wake_signal(&sup->wake);
	pthread_join(sup->thread, NULL);
	wake_fini(&sup->wake);
	event_base_free(sup->base);
	pthread_cond_destroy(&sup->start_cv);
	pthread_mutex_destroy(&sup->start_mu);
	pthread_mutex_destroy(&sup->mu);
	free(sup->exe);
	free(sup);
}

int isolate_group_create(struct isolate_sup *sup, const struct isolate_options *o,
			 struct isolate_group **out, char *err, size_t errlen)
{
	struct isolate_group *g = calloc(1, sizeof(*g));
	struct timespec until;
	int rc = 0;

	*out = NULL;
	if (!g)
		goto nomem;
	g->sup = sup;
	g->o = *o;
	g->o.name = g->o.file = g->o.copy_path = g->o.init = NULL;
	pthread_mutex_init(&g->mu, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&g->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (!(g->o.name = strdup(o->name)) || !(g->o.file = strdup(o->file)) ||
	    !(g->o.copy_path = strdup(o->copy_path)) || !(g->o.init = strdup(o->init)) ||
	    !(g->slots = calloc(o->procs, sizeof(*g->slots))) ||
	    !(g->respawn = calloc(o->procs, sizeof(*g->respawn)))) {
		group_destroy(g);
		goto nomem;
	}
	for (unsigned i = 0; i < o->procs; i++)
		if (!(g->respawn[i] = evtimer_new(sup->base, on_respawn, g))) {
			group_destroy(g);
			goto nomem;
		}
	pthread_mutex_lock(&sup->mu);
	g->next = sup->groups;
	sup->groups = g;
	g->start_requested = true;
	pthread_mutex_unlock(&sup->mu);
	wake_signal(&sup->wake);

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += o->start_timeout_ms / 1000;
	until.tv_nsec += (long)(o->start_timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&g->mu);
	while (g->nready_once < o->procs && !g->start_failed && rc == 0)
		rc = pthread_cond_timedwait(&g->cv, &g->mu, &until);
	if (g->start_failed)
		snprintf(err, errlen, "%s", g->start_err);
	else if (g->nready_once < o->procs)
		snprintf(err, errlen, "its isolated process did not load it within %u ms",
			 o->start_timeout_ms);
	rc = g->nready_once < o->procs ? -1 : 0;
	pthread_mutex_unlock(&g->mu);
	if (rc < 0) {
		isolate_group_free(g);
		return -1;
	}
	*out = g;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

void isolate_group_free(struct isolate_group *g)
{
	struct isolate_sup *sup;

	if (!g)
		return;
	sup = g->sup;
	pthread_mutex_lock(&sup->mu);
	g->close_requested = true;
	pthread_mutex_unlock(&sup->mu);
	wake_signal(&sup->wake);
}

#define RUNNER_TIMEOUT(ms) ((ms) + 1000 > CONFIG_MAX_TIMEOUT_MS ? CONFIG_MAX_TIMEOUT_MS : (ms) + 1000)

/* hooks.<hook> of a runner's config: {"chain": [name], "timeout_ms": t}. */
static int add_runner_hook(const struct config *cfg, cJSON *hs, const char *hook, const char *name)
{
	cJSON *h = cJSON_AddObjectToObject(hs, hook), *chain;
	const struct config_hook *ch = config_find_hook(cfg, hook);
	uint32_t t = config_hook_timeout(cfg, hook);

	/* its on_error and after steps have their own deadline */
	if (ch && (ch->non_error || ch->nafter) && ch->after_timeout_ms > t)
		t = ch->after_timeout_ms;
	if (!h || !(chain = cJSON_AddArrayToObject(h, "chain")) ||
	    !cJSON_AddItemToArray(chain, cJSON_CreateString(name)) ||
	    !cJSON_AddNumberToObject(h, "timeout_ms", RUNNER_TIMEOUT(t)))
		return -1;
	return 0;
}

char *isolate_init_text(const struct config *cfg, const char *name, const char *file,
			const char *copy, uint64_t generation, const char *const *hooks)
{
	const struct config_plugin *cp = config_plugin_settings(cfg, name);
	const cJSON *section = config_plugin_section(cfg, name);
	cJSON *root = cJSON_CreateObject(), *c, *hs, *ps;
	char *text = NULL;

	/* the runner's deadline is a backstop a second behind the host's, which
	 * decides (a call past it is cancelled, or its process killed) */
	if (!root || !cJSON_AddStringToObject(root, "file", file) ||
	    !cJSON_AddStringToObject(root, "copy", copy) ||
	    !cJSON_AddNumberToObject(root, "generation", (double)generation) ||
	    !cJSON_AddNumberToObject(root, "rlimit_as", cp ? (double)cp->rlimit_as : 0) ||
	    !cJSON_AddNumberToObject(root, "rlimit_cpu", cp ? cp->rlimit_cpu : 0) ||
	    !(c = cJSON_AddObjectToObject(root, "config")) ||
	    !cJSON_AddStringToObject(c, "listen", "127.0.0.1:1") ||
	    !cJSON_AddStringToObject(c, "plugin_dir", "/") ||
	    (cfg->runtime_dir && !cJSON_AddStringToObject(c, "runtime_dir", cfg->runtime_dir)) ||
	    !cJSON_AddNumberToObject(c, "workers", cfg->workers) ||
	    !cJSON_AddNumberToObject(c, "queue", cfg->queue) ||
	    !cJSON_AddNumberToObject(c, "max_stuck_workers", cfg->max_stuck_workers) ||
	    !cJSON_AddNumberToObject(c, "timeout_ms", RUNNER_TIMEOUT(cfg->timeout_ms)) ||
	    !cJSON_AddNumberToObject(c, "max_output", (double)cfg->max_output) ||
	    !cJSON_AddNumberToObject(c, "loop_warn_ms", cfg->loop_warn_ms) ||
	    !cJSON_AddStringToObject(c, "log_level", log_level_name(cfg->log_level)) ||
	    !(hs = cJSON_AddObjectToObject(c, "hooks")) ||
	    !(ps = cJSON_AddObjectToObject(c, "plugins")))
		goto out;
	/* every hook the host may call it under: its own, and every chain of
	 * the config that names it; in the runner each is a chain of one */
	for (size_t i = 0; hooks[i]; i++)
		if (add_runner_hook(cfg, hs, hooks[i], name) < 0)
			goto out;
	for (size_t i = 0; i < cfg->nhooks; i++) {
		const struct config_hook *ch = &cfg->hooks[i];
		bool named = false;
		for (size_t j = 0; j < ch->nchain; j++)
			named = named || strcmp(ch->chain[j], name) == 0;
		for (size_t j = 0; j < ch->non_error; j++)
			named = named || strcmp(ch->on_error[j], name) == 0;
		for (size_t j = 0; j < ch->nafter; j++)
			named = named || strcmp(ch->after[j], name) == 0;
		if (named && !cJSON_GetObjectItemCaseSensitive(hs, ch->name) &&
		    add_runner_hook(cfg, hs, ch->name, name) < 0)
			goto out;
	}
	if (section) {
		cJSON *dup = cJSON_Duplicate(section, 1);
		if (!dup || !cJSON_AddItemToObject(ps, name, dup)) {
			cJSON_Delete(dup);
			goto out;
		}
	}
	text = cJSON_PrintUnformatted(root);
out:
	cJSON_Delete(root);
	return text;
}
