/*
 * metrics: histogram buckets, sums over shards, label escaping, names that
 * keep their slot across "reloads", chunks that appear while scrapers read,
 * and an exposition that Prometheus' own parser (python3-prometheus-client)
 * reads back with the values counted.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../host/metrics.h"

static char *render(struct metrics *m)
{
	struct metrics_text t = {0};

	metrics_render(m, &t);
	cr_assert(!t.oom);
	cr_assert_not_null(t.data);
	return t.data;
}

/* The value of the sample line starting with `series ` in text, or -1. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

Test(metrics, histogram_buckets_are_upper_inclusive)
{
	struct metrics_hist h;

	memset(&h, 0, sizeof(h));
	metrics_hist_observe(&h, 0);
	metrics_hist_observe(&h, 50000);      /* le=5e-05 exactly */
	metrics_hist_observe(&h, 50001);      /* next bucket */
	metrics_hist_observe(&h, 1000000);    /* le=0.001 */
	metrics_hist_observe(&h, 10000000001); /* over 10 s: +Inf */
	metrics_hist_observe(&h, -5);         /* a clock step back counts as 0 */
	cr_assert_eq(atomic_load(&h.bucket[0]), 3);
	cr_assert_eq(atomic_load(&h.bucket[1]), 1);
	cr_assert_eq(atomic_load(&h.bucket[4]), 1);
	cr_assert_eq(atomic_load(&h.bucket[METRICS_BUCKETS - 1]), 1);
	cr_assert_eq(atomic_load(&h.sum_ns), 50000u + 50001u + 1000000u + 10000000001u);
}

Test(metrics, shards_are_summed_and_histograms_cumulative)
{
	struct metrics *m;
	struct metrics_shard *a, *b;
	unsigned echo, hook;
	char *text;

	cr_assert_eq(metrics_create(&m), 0);
	a = metrics_shard_new(m, 0);
	b = metrics_shard_new(m, 1);
	cr_assert(a && b);
	echo = metrics_intern(m, METRICS_PLUGIN, "echo");
	hook = metrics_intern(m, METRICS_HOOK, "echo");
	cr_assert_neq(echo, METRICS_UNKNOWN);
	metrics_plugin_step(a, echo, METRICS_OK, 1000);     /* 1 us */
	metrics_plugin_step(a, echo, METRICS_OK, 2000000);  /* 2 ms */
	metrics_plugin_step(b, echo, METRICS_OK, 3000);
	metrics_plugin_step(b, echo, METRICS_FAILED, 3000);
	metrics_plugin_refused(b, echo);
	metrics_plugin_loop(a, echo, 250000000);
	metrics_plugin_loop(b, echo, 250000000);
	metrics_call(a, hook, 200, 1000);
	metrics_call(b, hook, 200, 1000);
	metrics_call(b, hook, 503, 1000);
	metrics_call(NULL, hook, 200, 1000); /* no shard: a no-op */
	text = render(m);
	cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"echo\",outcome=\"ok\"}"), 3);
	cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"echo\",outcome=\"failed\"}"), 1);
	cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"echo\",outcome=\"refused\"}"), 1);
	cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"echo\",outcome=\"timeout\"}"), 0);
	cr_assert_eq(sample(text, "hookd_plugin_loop_seconds_total{plugin=\"echo\"}"), 0.5);
	cr_assert_eq(sample(text, "hookd_calls_total{hook=\"echo\",code=\"200\"}"), 2);
	cr_assert_eq(sample(text, "hookd_calls_total{hook=\"echo\",code=\"503\"}"), 1);
	/* cumulative: three steps took <= 5e-05 s, all four <= 0.0025 s */
	cr_assert_eq(sample(text, "hookd_plugin_duration_seconds_bucket{plugin=\"echo\",le=\"5e-05\"}"),
		     3);
	cr_assert_eq(sample(text, "hookd_plugin_duration_seconds_bucket{plugin=\"echo\",le=\"0.001\"}"),
		     3);
	cr_assert_eq(sample(text, "hookd_plugin_duration_seconds_bucket{plugin=\"echo\",le=\"0.0025\"}"),
		     4);
	cr_assert_eq(sample(text, "hookd_plugin_duration_seconds_bucket{plugin=\"echo\",le=\"+Inf\"}"),
		     4);
	cr_assert_eq(sample(text, "hookd_plugin_duration_seconds_count{plugin=\"echo\"}"), 4);
	cr_assert_float_eq(sample(text, "hookd_plugin_duration_seconds_sum{plugin=\"echo\"}"),
			   0.002007, 1e-9);
	/* no unknown hook was called: no "(unknown)" series */
	cr_assert_null(strstr(text, "(unknown)"), "%s", text);
	free(text);
	metrics_free(m);
}

Test(metrics, label_values_are_escaped)
{
	struct metrics *m;
	struct metrics_shard *s;
	unsigned slot;
	char *text;

	cr_assert_eq(metrics_create(&m), 0);
	s = metrics_shard_new(m, 0);
	slot = metrics_intern(m, METRICS_PLUGIN, "a\\b\"c\nd");
	metrics_plugin_step(s, slot, METRICS_OK, 1);
	text = render(m);
	cr_assert(strstr(text, "hookd_plugin_calls_total{plugin=\"a\\\\b\\\"c\\nd\",outcome=\"ok\"} 1\n"),
		  "%s", text);
	cr_assert_null(strstr(text, "c\nd"), "a raw newline in a label value");
	free(text);

	struct metrics_text t = {0};
	metrics_text_escape(&t, "plain");
	metrics_text_escape(&t, "\"\\\n");
	cr_assert_str_eq(t.data, "plain\\\"\\\\\\n");
	metrics_text_free(&t);
	metrics_free(m);
}

Test(metrics, names_keep_their_slot_across_reloads)
{
	struct metrics *m;
	struct metrics_shard *s, *late;
	unsigned a, b, b2, c, last = 0;
	char name[32], *text;

	cr_assert_eq(metrics_create(&m), 0);
	s = metrics_shard_new(m, 0);
	/* generation 1: plugins a, b */
	a = metrics_intern(m, METRICS_PLUGIN, "a");
	b = metrics_intern(m, METRICS_PLUGIN, "b");
	cr_assert_neq(a, b);
	metrics_plugin_step(s, b, METRICS_OK, 1);
	/* generation 2: b and c (a removed): b keeps its slot and its count */
	b2 = metrics_intern(m, METRICS_PLUGIN, "b");
	c = metrics_intern(m, METRICS_PLUGIN, "c");
	cr_assert_eq(b2, b);
	cr_assert_neq(c, a);
	cr_assert_neq(c, b);
	metrics_plugin_step(s, b2, METRICS_OK, 1);
	/* hooks are another namespace: the same name, its own slot space */
	cr_assert_eq(metrics_intern(m, METRICS_HOOK, "b"), 1);
	/* enough names to need more chunks; a shard made afterwards has them */
	for (int i = 0; i < METRICS_CHUNK * 2; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		last = metrics_intern(m, METRICS_PLUGIN, name);
	}
	cr_assert_gt(last, METRICS_CHUNK);
	late = metrics_shard_new(m, 1);
	cr_assert_not_null(late);
	metrics_plugin_step(s, last, METRICS_TIMEOUT, 1);
	metrics_plugin_step(late, last, METRICS_TIMEOUT, 1);
	cr_assert_eq(metrics_intern(m, METRICS_PLUGIN, NULL), METRICS_UNKNOWN);
	cr_assert_eq(metrics_intern(NULL, METRICS_PLUGIN, "x"), METRICS_UNKNOWN);
	text = render(m);
	cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"b\",outcome=\"ok\"}"), 2);
	cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"a\",outcome=\"ok\"}"), 0);
	snprintf(name, sizeof(name), "p%d", METRICS_CHUNK * 2 - 1);
	char series[128];
	snprintf(series, sizeof(series), "hookd_plugin_calls_total{plugin=\"%s\",outcome=\"timeout\"}",
		 name);
	cr_assert_eq(sample(text, series), 2, "%s", text);
	free(text);
	metrics_free(m);
}

Test(metrics, unknown_hooks_share_one_label_and_odd_codes_fit)
{
	struct metrics *m;
	struct metrics_shard *s;
	unsigned h;
	char *text;

	cr_assert_eq(metrics_create(&m), 0);
	s = metrics_shard_new(m, 0);
	h = metrics_intern(m, METRICS_HOOK, "h");
	metrics_call(s, METRICS_UNKNOWN, 404, 10);
	metrics_call(s, METRICS_UNKNOWN, 404, 10);
	metrics_call(s, 99999, 404, 10); /* out of range: the unknown label */
	/* more distinct codes than a cell holds: the rest count as "other" */
	for (int code = 400; code < 400 + METRICS_CODES + 3; code++)
		metrics_call(s, h, code, 10);
	text = render(m);
	cr_assert_eq(sample(text, "hookd_calls_total{hook=\"(unknown)\",code=\"404\"}"), 3);
	cr_assert_eq(sample(text, "hookd_calls_total{hook=\"h\",code=\"other\"}"), 3, "%s", text);
	cr_assert_eq(sample(text, "hookd_calls_total{hook=\"h\",code=\"400\"}"), 1);
	cr_assert_eq(sample(text, "hookd_call_duration_seconds_count{hook=\"h\"}"),
		     METRICS_CODES + 3);
	cr_assert(strstr(text, "# HELP hookd_calls_total "));
	cr_assert(strstr(text, "# TYPE hookd_calls_total counter\n"));
	cr_assert(strstr(text, "# TYPE hookd_call_duration_seconds histogram\n"));
	cr_assert(strstr(text, "# TYPE hookd_loop_lag_seconds histogram\n"));
	cr_assert(strstr(text, "hookd_loop_lag_seconds_count{loop=\"0\"} 0\n"));
	cr_assert(strstr(text, "hookd_queue_wait_seconds_count 0\n"));
	free(text);
	metrics_free(m);
}

/* A loop counts while another thread interns new names (new chunks) and
 * scrapes: nothing is lost, nothing crashes (and TSan-clean by design:
 * every shared word is atomic). */
struct race {
	struct metrics *m;
	struct metrics_shard *s;
	unsigned slot;
	atomic_bool stop;
};

static void *counter_thread(void *arg)
{
	struct race *r = arg;

	for (int i = 0; i < 200000; i++)
		metrics_plugin_step(r->s, r->slot, METRICS_OK, i);
	return NULL;
}

Test(metrics, scrape_and_intern_while_a_loop_counts, .timeout = 60)
{
	struct race r = {0};
	pthread_t t;
	char name[32], *text;

	cr_assert_eq(metrics_create(&r.m), 0);
	r.s = metrics_shard_new(r.m, 0);
	r.slot = metrics_intern(r.m, METRICS_PLUGIN, "hot");
	cr_assert_eq(pthread_create(&t, NULL, counter_thread, &r), 0);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		metrics_intern(r.m, METRICS_PLUGIN, name);
		metrics_shard_new(r.m, (unsigned)i + 1);
		free(render(r.m));
	}
	pthread_join(t, NULL);
	text = render(r.m);
	cr_assert_eq(sample(text, "hookd_plugin_calls_total{plugin=\"hot\",outcome=\"ok\"}"), 200000);
	cr_assert_eq(sample(text, "hookd_plugin_duration_seconds_count{plugin=\"hot\"}"), 200000);
	free(text);
	metrics_free(r.m);
}

/* Debian's python3 (not a pyenv one first on PATH), unless HOOKD_PYTHON. */
static const char *python(void)
{
	const char *p = getenv("HOOKD_PYTHON");

	return p && *p ? p : "/usr/bin/python3";
}

Test(metrics, exposition_parses_with_prometheus_client, .timeout = 60)
{
	struct metrics *m;
	struct metrics_shard *s;
	struct metrics_text t = {0};
	char path[] = "/tmp/hookd-metrics-XXXXXX", cmd[2048], out[512] = "";
	unsigned p, h;
	FILE *f;
	int fd;

	cr_assert_eq(metrics_create(&m), 0);
	s = metrics_shard_new(m, 0);
	p = metrics_intern(m, METRICS_PLUGIN, "we\"ird\\name");
	h = metrics_intern(m, METRICS_HOOK, "echo");
	metrics_plugin_step(s, p, METRICS_OK, 1500);
	metrics_call(s, h, 200, 1500);
	metrics_call(s, METRICS_UNKNOWN, 404, 10);
	metrics_fetch(s, p, METRICS_FETCH_HTTP_ERROR, 5000000);
	metrics_render(m, &t);
	metrics_render_process(&t);
	cr_assert(!t.oom);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, t.data, t.len), (ssize_t)t.len);
	close(fd);
	/* prints: families, the escaped plugin's ok count, the 404s */
	snprintf(cmd, sizeof(cmd),
		 "%s -c 'import sys\n"
		 "from prometheus_client.parser import text_string_to_metric_families as p\n"
		 "fams = list(p(open(sys.argv[1]).read()))\n"
		 "v = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams for s in f.samples}\n"
		 "print(len(fams), v[(\"hookd_plugin_calls_total\", ((\"outcome\", \"ok\"), (\"plugin\", \"we\\\"ird\\\\name\")))],"
		 " v[(\"hookd_calls_total\", ((\"code\", \"404\"), (\"hook\", \"(unknown)\")))],"
		 " v[(\"hookd_fetch_requests_total\", ((\"outcome\", \"http_error\"), (\"plugin\", \"we\\\"ird\\\\name\")))])' %s 2>&1",
		 python(), path);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	int rc = pclose(f);
	unlink(path);
	cr_assert_eq(rc, 0, "the parser failed (is python3-prometheus-client installed? "
		     "scripts/deps.sh test): %s", out);
	int fams = 0;
	double ok = 0, nf = 0, fe = 0;
	cr_assert_eq(sscanf(out, "%d %lf %lf %lf", &fams, &ok, &nf, &fe), 4, "%s", out);
	/* 9 hookd families + at least the 6 process ones */
	cr_assert_geq(fams, 15, "%s", out);
	cr_assert_eq(ok, 1.0);
	cr_assert_eq(nf, 1.0);
	cr_assert_eq(fe, 1.0);
	metrics_text_free(&t);
	metrics_free(m);
}
