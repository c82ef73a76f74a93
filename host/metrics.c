/*
 * metrics -- see metrics.h.
 *
 * Layout: struct metrics holds the interned names (per namespace, an
 * append-only array whose length is published with a release store) and
 * the shards (a fixed array of pointers, its length published the same
 * way). A shard holds, per namespace, METRICS_CHUNKS pointers to chunks of
 * METRICS_CHUNK cells. `mu` serialises the writers of all of this
 * (intern, shard_new); readers (the hot path, the scrape) never lock.
 *
 * A counter has one writer, the shard's owner: it adds with a relaxed
 * load + store (no locked instruction). Histograms keep no separate count:
 * _count is the +Inf bucket's cumulative value, so a scrape that races an
 * observation still shows buckets and _count that agree.
 */
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

const int64_t metrics_bounds_ns[METRICS_BUCKETS - 1] = {
	50000,      100000,     250000,     500000,     1000000,     2500000,
	5000000,    10000000,   25000000,   50000000,   100000000,   250000000,
	500000000,  1000000000, 2500000000, 5000000000, 10000000000,
};

/* Bounds as printed in le="..." (Prometheus' float formatting). */
static const char *const bound_text[METRICS_BUCKETS] = {
	"5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
	"0.05",  "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",   "+Inf",
};

static const char *const outcome_names[METRICS_OUTCOMES] = {
	"ok", "failed", "timeout", "crashed", "skipped", "refused",
};

static const char *const fetch_names[METRICS_FETCH_OUTCOMES] = {
	"ok", "http_error", "timeout", "failed",
};

struct code_cell {
	atomic_int code; /* 0: free; set once by the owner */
	atomic_ullong n;
};

struct hook_cell {
	struct code_cell codes[METRICS_CODES];
	atomic_ullong other;          /* codes beyond METRICS_CODES distinct ones */
	struct metrics_hist duration;
};

struct plugin_cell {
	atomic_ullong outcome[METRICS_OUTCOMES];
	atomic_ullong loop_ns;
	atomic_ullong fetch[METRICS_FETCH_OUTCOMES];
	struct metrics_hist duration;
	struct metrics_hist fetch_duration;
};

struct metrics_shard {
	unsigned id;
	_Atomic(struct hook_cell *) hooks[METRICS_CHUNKS];
	_Atomic(struct plugin_cell *) plugins[METRICS_CHUNKS];
	struct metrics_hist loop_lag;
	struct metrics_hist queue_wait;
};

struct metrics {
	pthread_mutex_t mu;
	char *names[METRICS_NS][METRICS_MAX_NAMES];
	atomic_uint nnames[METRICS_NS];
	struct metrics_shard *shards[METRICS_MAX_SHARDS];
	atomic_uint nshards;
};

const char *metrics_outcome_name(enum metrics_outcome o)
{
	return (unsigned)o < METRICS_OUTCOMES ? outcome_names[o] : "unknown";
}

const char *metrics_fetch_name(enum metrics_fetch o)
{
	return (unsigned)o < METRICS_FETCH_OUTCOMES ? fetch_names[o] : "unknown";
}

/* ---- registry ------------------------------------------------------ */

int metrics_create(struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->mu, NULL);
	for (int ns = 0; ns < METRICS_NS; ns++) {
		if (!(m->names[ns][METRICS_UNKNOWN] = strdup(METRICS_UNKNOWN_NAME))) {
			metrics_free(m);
			return -ENOMEM;
		}
		atomic_init(&m->nnames[ns], 1);
	}
	*out = m;
	return 0;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (unsigned i = 0; i < atomic_load(&m->nshards); i++) {
		struct metrics_shard *s = m->shards[i];
		for (int c = 0; c < METRICS_CHUNKS; c++) {
			free(atomic_load(&s->hooks[c]));
			free(atomic_load(&s->plugins[c]));
		}
		free(s);
	}
	for (int ns = 0; ns < METRICS_NS; ns++)
		for (unsigned i = 0; i < METRICS_MAX_NAMES; i++)
			free(m->names[ns][i]);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* Give shard s the chunk `c` of namespace ns if it has none. With mu held.
 * Returns 0 or -ENOMEM. */
static int chunk_ensure(struct metrics_shard *s, enum metrics_ns ns, unsigned c)
{
	if (ns == METRICS_HOOK) {
		if (atomic_load_explicit(&s->hooks[c], memory_order_relaxed))
			return 0;
		struct hook_cell *h = calloc(METRICS_CHUNK, sizeof(*h));
		if (!h)
			return -ENOMEM;
		atomic_store_explicit(&s->hooks[c], h, memory_order_release);
	} else {
		if (atomic_load_explicit(&s->plugins[c], memory_order_relaxed))
			return 0;
		struct plugin_cell *p = calloc(METRICS_CHUNK, sizeof(*p));
		if (!p)
			return -ENOMEM;
		atomic_store_explicit(&s->plugins[c], p, memory_order_release);
	}
	return 0;
}

unsigned metrics_intern(struct metrics *m, enum metrics_ns ns, const char *name)
{
	unsigned slot = METRICS_UNKNOWN, n;

	if (!m || !name || (unsigned)ns >= METRICS_NS)
		return METRICS_UNKNOWN;
	pthread_mutex_lock(&m->mu);
	n = atomic_load_explicit(&m->nnames[ns], memory_order_relaxed);
	for (unsigned i = 1; i < n; i++) {
		if (strcmp(m->names[ns][i], name) == 0) {
			slot = i;
			goto out;
		}
	}
	if (n == METRICS_MAX_NAMES)
		goto out;
	/* every shard gets the slot's chunk before anyone can count into it */
	for (unsigned i = 0; i < atomic_load_explicit(&m->nshards, memory_order_relaxed); i++)
		if (chunk_ensure(m->shards[i], ns, n / METRICS_CHUNK) < 0)
			goto out;
	if (!(m->names[ns][n] = strdup(name)))
		goto out;
	slot = n;
	atomic_store_explicit(&m->nnames[ns], n + 1, memory_order_release);
out:
	pthread_mutex_unlock(&m->mu);
	return slot;
}

struct metrics_shard *metrics_shard_new(struct metrics *m, unsigned id)
{
	struct metrics_shard *s;
	unsigned n;

	if (!m || !(s = calloc(1, sizeof(*s))))
		return NULL;
	s->id = id;
	pthread_mutex_lock(&m->mu);
	n = atomic_load_explicit(&m->nshards, memory_order_relaxed);
	if (n == METRICS_MAX_SHARDS)
		goto fail;
	for (int ns = 0; ns < METRICS_NS; ns++) {
		unsigned names = atomic_load_explicit(&m->nnames[ns], memory_order_relaxed);
		for (unsigned c = 0; c * METRICS_CHUNK < names; c++)
			if (chunk_ensure(s, (enum metrics_ns)ns, c) < 0)
				goto fail;
	}
	m->shards[n] = s;
	atomic_store_explicit(&m->nshards, n + 1, memory_order_release);
	pthread_mutex_unlock(&m->mu);
	return s;
fail:
	pthread_mutex_unlock(&m->mu);
	for (int c = 0; c < METRICS_CHUNKS; c++) {
		free(atomic_load(&s->hooks[c]));
		free(atomic_load(&s->plugins[c]));
	}
	free(s);
	return NULL;
}

/* ---- the hot path -------------------------------------------------- */

/* Single writer: no locked instruction, still a data-race-free access. */
static inline void bump(atomic_ullong *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

void metrics_hist_observe(struct metrics_hist *h, int64_t ns)
{
	unsigned i = 0;

	if (ns < 0)
		ns = 0;
	while (i < METRICS_BUCKETS - 1 && ns > metrics_bounds_ns[i])
		i++;
	bump(&h->bucket[i], 1);
	bump(&h->sum_ns, (uint64_t)ns);
}

static inline struct hook_cell *hook_cell(struct metrics_shard *s, unsigned slot)
{
	struct hook_cell *c;

	if (slot >= METRICS_MAX_NAMES)
		slot = METRICS_UNKNOWN;
	c = atomic_load_explicit(&s->hooks[slot / METRICS_CHUNK], memory_order_acquire);
	return c ? &c[slot % METRICS_CHUNK] : NULL;
}

static inline struct plugin_cell *plugin_cell(struct metrics_shard *s, unsigned slot)
{
	struct plugin_cell *c;

	if (slot >= METRICS_MAX_NAMES)
		slot = METRICS_UNKNOWN;
	c = atomic_load_explicit(&s->plugins[slot / METRICS_CHUNK], memory_order_acquire);
	return c ? &c[slot % METRICS_CHUNK] : NULL;
}

void metrics_call(struct metrics_shard *s, unsigned hook, int code, int64_t ns)
{
	struct hook_cell *h;

	if (!s || !(h = hook_cell(s, hook)))
		return;
	for (unsigned i = 0, at = (unsigned)code % METRICS_CODES; i < METRICS_CODES; i++) {
		struct code_cell *cc = &h->codes[(at + i) % METRICS_CODES];
		int have = atomic_load_explicit(&cc->code, memory_order_relaxed);
		if (have == 0) {
			atomic_store_explicit(&cc->code, code, memory_order_relaxed);
			have = code;
		}
		if (have == code) {
			bump(&cc->n, 1);
			goto timed;
		}
	}
	bump(&h->other, 1);
timed:
	metrics_hist_observe(&h->duration, ns);
}

void metrics_plugin_step(struct metrics_shard *s, unsigned plugin, enum metrics_outcome o,
			 int64_t ns)
{
	struct plugin_cell *p;

	if (!s || !(p = plugin_cell(s, plugin)) || (unsigned)o >= METRICS_OUTCOMES)
		return;
	bump(&p->outcome[o], 1);
	metrics_hist_observe(&p->duration, ns);
}

void metrics_plugin_refused(struct metrics_shard *s, unsigned plugin)
{
	struct plugin_cell *p;

	if (s && (p = plugin_cell(s, plugin)))
		bump(&p->outcome[METRICS_REFUSED], 1);
}

void metrics_plugin_loop(struct metrics_shard *s, unsigned plugin, int64_t ns)
{
	struct plugin_cell *p;

	if (s && ns > 0 && (p = plugin_cell(s, plugin)))
		bump(&p->loop_ns, (uint64_t)ns);
}

void metrics_fetch(struct metrics_shard *s, unsigned plugin, enum metrics_fetch o, int64_t ns)
{
	struct plugin_cell *p;

	if (!s || !(p = plugin_cell(s, plugin)) || (unsigned)o >= METRICS_FETCH_OUTCOMES)
		return;
	bump(&p->fetch[o], 1);
	metrics_hist_observe(&p->fetch_duration, ns);
}

void metrics_loop_lag(struct metrics_shard *s, int64_t ns)
{
	if (s)
		metrics_hist_observe(&s->loop_lag, ns);
}

void metrics_queue_wait(struct metrics_shard *s, int64_t ns)
{
	if (s)
		metrics_hist_observe(&s->queue_wait, ns);
}

/* ---- text ---------------------------------------------------------- */

static bool text_room(struct metrics_text *t, size_t more)
{
	if (t->oom)
		return false;
	if (t->len + more + 1 <= t->cap)
		return true;
	size_t cap = t->cap ? t->cap : 4096;
	while (cap < t->len + more + 1)
		cap *= 2;
	char *d = realloc(t->data, cap);
	if (!d) {
		t->oom = true;
		return false;
	}
	t->data = d;
	t->cap = cap;
	return true;
}

void metrics_text_printf(struct metrics_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	/* print once into the room left; only a line that did not fit is
	 * printed again after growing */
	if (!text_room(t, 256))
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= t->cap - t->len) {
		if (!text_room(t, (size_t)n))
			return;
		va_start(ap, fmt);
		vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
	}
	t->len += (size_t)n;
}

void metrics_text_escape(struct metrics_text *t, const char *v)
{
	for (; *v; v++) {
		const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
		size_t n = esc ? 2 : 1;
		if (!text_room(t, n))
			return;
		memcpy(t->data + t->len, esc ? esc : v, n);
		t->len += n;
		t->data[t->len] = '\0';
	}
}

void metrics_text_family(struct metrics_text *t, const char *name, const char *type,
			 const char *help)
{
	metrics_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_text_free(struct metrics_text *t)
{
	free(t->data);
	*t = (struct metrics_text){0};
}

/* ---- the scrape ---------------------------------------------------- */

static uint64_t rd(const atomic_ullong *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

struct hist_sum {
	uint64_t bucket[METRICS_BUCKETS];
	uint64_t sum_ns;
};

static void hist_add(struct hist_sum *to, const struct metrics_hist *h)
{
	for (int i = 0; i < METRICS_BUCKETS; i++)
		to->bucket[i] += rd(&h->bucket[i]);
	to->sum_ns += rd(&h->sum_ns);
}

/* One histogram's samples: `labels` is "" or `name="value",` text (with
 * the trailing comma) already escaped. */
static void hist_print(struct metrics_text *t, const char *name, const char *labels,
		       const struct hist_sum *h)
{
	uint64_t cum = 0;
	size_t ll = strlen(labels);
	/* "a=\"b\"," -> "a=\"b\"" for the samples without le */
	int bare = ll ? (int)ll - 1 : 0;

	for (int i = 0; i < METRICS_BUCKETS; i++) {
		cum += h->bucket[i];
		metrics_text_printf(t, "%s_bucket{%sle=\"%s\"} %llu\n", name, labels, bound_text[i],
				    (unsigned long long)cum);
	}
	metrics_text_printf(t, "%s_sum%s%.*s%s %.9f\n", name, ll ? "{" : "", bare, labels,
			    ll ? "}" : "", (double)h->sum_ns / 1e9);
	metrics_text_printf(t, "%s_count%s%.*s%s %llu\n", name, ll ? "{" : "", bare, labels,
			    ll ? "}" : "", (unsigned long long)cum);
}

/* `key="<escaped value>",` into buf (a small text of its own). */
static void label_of(struct metrics_text *buf, const char *key, const char *value)
{
	buf->len = 0;
	metrics_text_printf(buf, "%s=\"", key);
	metrics_text_escape(buf, value);
	metrics_text_printf(buf, "\",");
}

/* The label text (never NULL: "" once out of memory, which the scrape's
 * own text then reports too). */
static const char *lab_text(struct metrics_text *lab, struct metrics_text *t)
{
	if (lab->oom || !lab->data) {
		t->oom = true;
		return "";
	}
	return lab->data;
}

struct code_sum {
	int code;
	uint64_t n;
};

static void render_hooks(struct metrics *m, struct metrics_shard *const *sh, unsigned nsh,
			 unsigned names, struct metrics_text *t)
{
	struct metrics_text lab = {0};

	metrics_text_family(t, "hookd_calls_total", "counter",
			    "Hook calls answered, by hook and HTTP status code.");
	for (unsigned slot = 0; slot < names; slot++) {
		struct code_sum codes[METRICS_CODES * 4] = {{0}};
		unsigned ncodes = 0;
		uint64_t other = 0;
		for (unsigned i = 0; i < nsh; i++) {
			struct hook_cell *h = hook_cell(sh[i], slot);
			if (!h)
				continue;
			other += rd(&h->other);
			for (int c = 0; c < METRICS_CODES; c++) {
				int code = atomic_load_explicit(&h->codes[c].code,
								memory_order_relaxed);
				unsigned k = 0;
				if (!code)
					continue;
				while (k < ncodes && codes[k].code != code)
					k++;
				if (k == ncodes) {
					if (ncodes == sizeof(codes) / sizeof(codes[0])) {
						other += rd(&h->codes[c].n);
						continue;
					}
					codes[ncodes++].code = code;
				}
				codes[k].n += rd(&h->codes[c].n);
			}
		}
		label_of(&lab, "hook", m->names[METRICS_HOOK][slot]);
		for (unsigned k = 0; k < ncodes; k++)
			metrics_text_printf(t, "hookd_calls_total{%scode=\"%d\"} %llu\n",
					    lab_text(&lab, t), codes[k].code,
					    (unsigned long long)codes[k].n);
		if (other)
			metrics_text_printf(t, "hookd_calls_total{%scode=\"other\"} %llu\n",
					    lab_text(&lab, t), (unsigned long long)other);
	}
	metrics_text_family(t, "hookd_call_duration_seconds", "histogram",
			    "Time from a hook call's arrival to its answer.");
	for (unsigned slot = 0; slot < names; slot++) {
		struct hist_sum hs = {{0}};
		for (unsigned i = 0; i < nsh; i++) {
			struct hook_cell *h = hook_cell(sh[i], slot);
			if (h)
				hist_add(&hs, &h->duration);
		}
		uint64_t any = 0;
		for (int b = 0; b < METRICS_BUCKETS; b++)
			any += hs.bucket[b];
		if (slot == METRICS_UNKNOWN && !any)
			continue; /* no unknown hook called: no series */
		label_of(&lab, "hook", m->names[METRICS_HOOK][slot]);
		hist_print(t, "hookd_call_duration_seconds", lab_text(&lab, t), &hs);
	}
	metrics_text_free(&lab);
}

struct plugin_sum {
	uint64_t outcome[METRICS_OUTCOMES];
	uint64_t loop_ns;
	uint64_t fetch[METRICS_FETCH_OUTCOMES];
	struct hist_sum duration, fetch_duration;
};

static void render_plugins(struct metrics *m, struct metrics_shard *const *sh, unsigned nsh,
			   unsigned names, struct metrics_text *t)
{
	struct metrics_text lab = {0};
	struct plugin_sum *ps;

	/* slot 0 ("(unknown)") counts nothing: plugins are always interned */
	if (names <= 1)
		names = 1;
	ps = calloc(names, sizeof(*ps));
	if (!ps) {
		t->oom = true;
		return;
	}
	for (unsigned slot = 1; slot < names; slot++) {
		struct plugin_sum *s = &ps[slot];
		for (unsigned i = 0; i < nsh; i++) {
			struct plugin_cell *p = plugin_cell(sh[i], slot);
			if (!p)
				continue;
			for (int o = 0; o < METRICS_OUTCOMES; o++)
				s->outcome[o] += rd(&p->outcome[o]);
			for (int o = 0; o < METRICS_FETCH_OUTCOMES; o++)
				s->fetch[o] += rd(&p->fetch[o]);
			s->loop_ns += rd(&p->loop_ns);
			hist_add(&s->duration, &p->duration);
			hist_add(&s->fetch_duration, &p->fetch_duration);
		}
	}
	metrics_text_family(t, "hookd_plugin_calls_total", "counter",
			    "Plugin steps run or refused, by plugin and outcome.");
	for (unsigned slot = 1; slot < names; slot++) {
		label_of(&lab, "plugin", m->names[METRICS_PLUGIN][slot]);
		for (int o = 0; o < METRICS_OUTCOMES; o++)
			metrics_text_printf(t, "hookd_plugin_calls_total{%soutcome=\"%s\"} %llu\n",
					    lab_text(&lab, t), outcome_names[o],
					    (unsigned long long)ps[slot].outcome[o]);
	}
	metrics_text_family(t, "hookd_plugin_duration_seconds", "histogram",
			    "Time one plugin step took, from its start to its result.");
	for (unsigned slot = 1; slot < names; slot++) {
		label_of(&lab, "plugin", m->names[METRICS_PLUGIN][slot]);
		hist_print(t, "hookd_plugin_duration_seconds", lab_text(&lab, t), &ps[slot].duration);
	}
	metrics_text_family(t, "hookd_plugin_loop_seconds_total", "counter",
			    "Time an async plugin's code held an event loop.");
	for (unsigned slot = 1; slot < names; slot++) {
		label_of(&lab, "plugin", m->names[METRICS_PLUGIN][slot]);
		if (lab.len && !lab.oom)
			lab.data[lab.len - 1] = '\0'; /* no trailing comma */
		metrics_text_printf(t, "hookd_plugin_loop_seconds_total{%s} %.9f\n",
				    lab_text(&lab, t),
				    (double)ps[slot].loop_ns / 1e9);
	}
	metrics_text_family(t, "hookd_fetch_requests_total", "counter",
			    "Outbound HTTP requests of plugins, by plugin and outcome.");
	for (unsigned slot = 1; slot < names; slot++) {
		label_of(&lab, "plugin", m->names[METRICS_PLUGIN][slot]);
		for (int o = 0; o < METRICS_FETCH_OUTCOMES; o++)
			metrics_text_printf(t, "hookd_fetch_requests_total{%soutcome=\"%s\"} %llu\n",
					    lab_text(&lab, t), fetch_names[o],
					    (unsigned long long)ps[slot].fetch[o]);
	}
	metrics_text_family(t, "hookd_fetch_duration_seconds", "histogram",
			    "Time an outbound request of a plugin took, retries included.");
	for (unsigned slot = 1; slot < names; slot++) {
		label_of(&lab, "plugin", m->names[METRICS_PLUGIN][slot]);
		hist_print(t, "hookd_fetch_duration_seconds", lab_text(&lab, t), &ps[slot].fetch_duration);
	}
	free(ps);
	metrics_text_free(&lab);
}

void metrics_render(struct metrics *m, struct metrics_text *t)
{
	unsigned nsh = atomic_load_explicit(&m->nshards, memory_order_acquire);
	unsigned hooks = atomic_load_explicit(&m->nnames[METRICS_HOOK], memory_order_acquire);
	unsigned plugins = atomic_load_explicit(&m->nnames[METRICS_PLUGIN], memory_order_acquire);
	struct hist_sum qw = {{0}};

	render_hooks(m, m->shards, nsh, hooks, t);
	render_plugins(m, m->shards, nsh, plugins, t);
	metrics_text_family(t, "hookd_loop_lag_seconds", "histogram",
			    "How late an event loop ran a periodic timer.");
	for (unsigned i = 0; i < nsh; i++) {
		struct hist_sum h = {{0}};
		char lab[32];
		hist_add(&h, &m->shards[i]->loop_lag);
		snprintf(lab, sizeof(lab), "loop=\"%u\",", m->shards[i]->id);
		hist_print(t, "hookd_loop_lag_seconds", lab, &h);
	}
	for (unsigned i = 0; i < nsh; i++)
		hist_add(&qw, &m->shards[i]->queue_wait);
	metrics_text_family(t, "hookd_queue_wait_seconds", "histogram",
			    "Time a sync plugin's step waited for a worker.");
	hist_print(t, "hookd_queue_wait_seconds", "", &qw);
}

/* ---- process_* ------------------------------------------------------ */

static char *read_small(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	return n ? buf : NULL;
}

void metrics_render_process(struct metrics_text *t)
{
	char buf[2048], *p;
	long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	struct rlimit rl;
	DIR *dir;

	if (read_small("/proc/self/stat", buf, sizeof(buf)) && (p = strrchr(buf, ')'))) {
		/* fields after "pid (comm)": state is field 3; utime 14, stime
		 * 15, starttime 22, vsize 23, rss 24 */
		unsigned long long f[25] = {0};
		int i = 3;
		char *save = NULL, *tok;
		for (tok = strtok_r(p + 2, " ", &save); tok && i < 25;
		     tok = strtok_r(NULL, " ", &save), i++)
			f[i] = strtoull(tok, NULL, 10);
		if (i == 25 && ticks > 0) {
			char st[4096];
			double btime = -1;
			if (read_small("/proc/stat", st, sizeof(st)) && (p = strstr(st, "\nbtime ")))
				btime = strtod(p + 7, NULL);
			metrics_text_family(t, "process_cpu_seconds_total", "counter",
					    "Total user and system CPU time spent in seconds.");
			metrics_text_printf(t, "process_cpu_seconds_total %.2f\n",
					    (double)(f[14] + f[15]) / (double)ticks);
			if (btime >= 0) {
				metrics_text_family(t, "process_start_time_seconds", "gauge",
						    "Start time of the process since unix epoch in "
						    "seconds.");
				metrics_text_printf(t, "process_start_time_seconds %.2f\n",
						    btime + (double)f[22] / (double)ticks);
			}
			metrics_text_family(t, "process_virtual_memory_bytes", "gauge",
					    "Virtual memory size in bytes.");
			metrics_text_printf(t, "process_virtual_memory_bytes %llu\n", f[23]);
			metrics_text_family(t, "process_resident_memory_bytes", "gauge",
					    "Resident memory size in bytes.");
			metrics_text_printf(t, "process_resident_memory_bytes %llu\n",
					    f[24] * (unsigned long long)(page > 0 ? page : 4096));
		}
	}
	if ((dir = opendir("/proc/self/fd"))) {
		struct dirent *e;
		long n = 0;
		while ((e = readdir(dir)))
			if (e->d_name[0] != '.')
				n++;
		closedir(dir);
		metrics_text_family(t, "process_open_fds", "gauge",
				    "Number of open file descriptors.");
		metrics_text_printf(t, "process_open_fds %ld\n", n - 1); /* not the DIR's own */
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		metrics_text_family(t, "process_max_fds", "gauge",
				    "Maximum number of open file descriptors.");
		metrics_text_printf(t, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	}
}
