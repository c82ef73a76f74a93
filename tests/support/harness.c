/* harness -- see harness.h. */
#include "harness.h"

#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


double hd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void hd_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int hd_scale(void)
{
	const char *t = getenv("HOOKD_TSAN");

	return t && *t == '1' ? 10 : 1;
}

static const char *build_dir(void)
{
	const char *b = getenv("HOOKD_BUILD");

	return b && *b ? b : "build";
}

const char *hd_build_path(const char *rel, char *buf, size_t len)
{
	const char *b = build_dir();

	if (b[0] == '/')
		snprintf(buf, len, "%s/%s", b, rel);
	else {
		char cwd[512];
		cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
		snprintf(buf, len, "%s/%s/%s", cwd, b, rel);
	}
	return buf;
}

static void copy_file(const char *src, const char *dst)
{
	char buf[65536];
	int in = open(src, O_RDONLY), out;
	ssize_t n;

	cr_assert_geq(in, 0, "cannot open %s: %s", src, strerror(errno));
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	cr_assert_geq(out, 0, "cannot create %s: %s", dst, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_assert_eq(write(out, buf, (size_t)n), n);
	/* whatever the umask: hookd refuses a group- or world-writable plugin */
	cr_assert_eq(fchmod(out, 0755), 0);
	close(in);
	close(out);
}

void hd_install(struct hd *d, const char *rel, const char *name)
{
	char src[512], tmp[512], dst[512];
	static unsigned seq;

	hd_build_path(rel, src, sizeof(src));
	snprintf(tmp, sizeof(tmp), "%s/.installing-%u-%s", d->plugin_dir, seq++, name);
	snprintf(dst, sizeof(dst), "%s/%s", d->plugin_dir, name);
	copy_file(src, tmp);
	cr_assert_eq(rename(tmp, dst), 0, "rename %s: %s", dst, strerror(errno));
}

void hd_uninstall(struct hd *d, const char *name)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", d->plugin_dir, name);
	cr_assert_eq(unlink(p), 0, "unlink %s: %s", p, strerror(errno));
}

void hd_write_config(struct hd *d, const char *members)
{
	char tmp[400];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", d->config);
	f = fopen(tmp, "w");
	cr_assert_not_null(f);
	/* HOOKD_REACTORS=N runs every daemon with N event loops (the suite runs
	 * with 1 and with 2), unless the test sets "reactors" itself */
	const char *nr = getenv("HOOKD_REACTORS");
	char reactors[64] = "";
	if (nr && *nr && !(members && strstr(members, "\"reactors\"")))
		snprintf(reactors, sizeof(reactors), ",\n  \"reactors\": %d", atoi(nr));
	/* HOOKD_ISOLATE=1 runs every plugin isolated (the payload and chain
	 * suites run that way too), unless the test sets "isolate" itself */
	const char *iso = getenv("HOOKD_ISOLATE");
	const char *isolate = iso && *iso == '1' && !(members && strstr(members, "\"isolate\""))
				      ? ",\n  \"isolate\": true"
				      : "";
	fprintf(f, "{\n  \"listen\": \"127.0.0.1:0\",\n  \"plugin_dir\": \"plugins\",\n"
		   "  \"runtime_dir\": \"%s/run\"%s%s%s%s\n}\n",
		d->dir, reactors, isolate, members && *members ? ",\n  " : "",
		members ? members : "");
	fclose(f);
	cr_assert_eq(rename(tmp, d->config), 0);
}

/* The daemon of this test process (Criterion runs one test per process),
 * for hd_suite_teardown. */
static struct hd *current_daemon;

void hd_suite_teardown(void)
{
	if (current_daemon && current_daemon->dir[0]) {
		char *log = hd_log_read(current_daemon);
		cr_log_error("daemon log (%s):\n%s", current_daemon->dir, log);
		free(log);
		hd_kill(current_daemon);
	}
	current_daemon = NULL;
}

void hd_launch_or_fail(struct hd *d)
{
	if (!hd_launch(d, 10000)) {
		/* hd_launch logged why, with the end of the daemon's log */
		hd_kill(d);
		d->dir[0] = '\0'; /* removed: nothing left for the suite's teardown */
		cr_assert_fail("the daemon did not become ready (exit status %d): see its log above",
			       d->stopped ? d->exit_status : -1);
	}
}

void hd_prepare(struct hd *d, const char *members, const char *const *plugins)
{
	char p[512];

	current_daemon = d;

	memset(d, 0, sizeof(*d));
	d->pid = -1;
	curl_global_init(CURL_GLOBAL_ALL);
	snprintf(d->dir, sizeof(d->dir), "/tmp/hookd-test-XXXXXX");
	cr_assert_not_null(mkdtemp(d->dir));
	snprintf(d->plugin_dir, sizeof(d->plugin_dir), "%s/plugins", d->dir);
	snprintf(d->config, sizeof(d->config), "%s/hookd.json", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/hookd.log", d->dir);
	cr_assert_eq(mkdir(d->plugin_dir, 0755), 0);
	cr_assert_eq(chmod(d->plugin_dir, 0755), 0); /* whatever the umask */
	snprintf(p, sizeof(p), "%s/run", d->dir);
	cr_assert_eq(mkdir(p, 0755), 0);
	for (size_t i = 0; plugins && plugins[i]; i++) {
		char rel[256], name[256];
		snprintf(rel, sizeof(rel), "plugins/%s.so", plugins[i]);
		snprintf(name, sizeof(name), "%s.so", plugins[i]);
		hd_install(d, rel, name);
	}
	hd_write_config(d, members);
}

char *hd_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
			buf[n] = '\0';
			if (len)
				*len = (size_t)n;
		} else {
			free(buf);
			buf = NULL;
		}
	}
	fclose(f);
	return buf;
}

char *hd_log_read(struct hd *d)
{
	char *s = hd_read_file(d->log, NULL);

	return s ? s : strdup("");
}

int hd_log_count(struct hd *d, const char *needle)
{
	char *log = hd_log_read(d), *p = log;
	int n = 0;

	while ((p = strstr(p, needle))) {
		n++;
		p += strlen(needle);
	}
	free(log);
	return n;
}

bool hd_wait_log(struct hd *d, const char *needle, int n, int timeout_ms)
{
	double end = hd_now_ms() + (double)timeout_ms * hd_scale();

	while (hd_now_ms() < end) {
		if (hd_log_count(d, needle) >= n)
			return true;
		hd_sleep_ms(5);
	}
	return hd_log_count(d, needle) >= n;
}

static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* The port the daemon announced ("listening on 127.0.0.1:PORT ..."): it
 * binds port 0, and its log is the only place that says which port it got.
 * A line counts only once it is complete (a read may catch a write half
 * done and see "...:4" of ":41234"). 0 while not announced. */
static int announced_port(struct hd *d)
{
	static const char mark[] = "listening on 127.0.0.1:";
	char *log = hd_log_read(d), *p = strstr(log, mark);
	int port = 0;

	if (p) {
		char *end;
		long v = strtol(p + strlen(mark), &end, 10);
		if (end != p + strlen(mark) && strchr(end, '\n') && v > 0 && v < 65536)
			port = (int)v;
	}
	free(log);
	return port;
}

/* Does the daemon answer GET /health with 200 right now? A short timeout:
 * this is one probe of a bounded polling loop, not a call. */
static bool health_answers(struct hd *d)
{
	char url[128];
	CURL *c = curl_easy_init();
	long status = 0;

	if (!c)
		return false;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", d->port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L * hd_scale());
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status == 200 || status == 404; /* 404: admin routes on admin_listen */
}

/* Log why the daemon is not ready, with the last lines of its log. At info
 * level: a test may expect the failure, and Criterion 2.4.1 exits 1 after a
 * run in which any test logged a warning or an error, even if all passed. */
static void log_not_ready(struct hd *d, const char *why)
{
	char *log = hd_log_read(d);
	size_t len = strlen(log), start = len > 4096 ? len - 4096 : 0;
	int lines = 0;

	/* the last 30 lines at most (and at most 4 KB) */
	for (size_t i = len; i > start; i--)
		if (log[i - 1] == '\n' && ++lines > 30) {
			start = i;
			break;
		}
	cr_log_info("daemon %s (pid %ld, port %d): %s; the end of its log (%s):\n%s",
		     d->dir, (long)d->pid, d->port, why, d->log, log + start);
	free(log);
}

/* Ready means: it announced its port, and answers GET /health there (an
 * HTTP answer, not a log line, is what every test needs next). Polls with
 * short sleeps until timeout_ms (scaled); gives up at once if it exits. */
bool hd_launch(struct hd *d, int timeout_ms)
{
	return hd_launch_args(d, timeout_ms, NULL);
}

bool hd_launch_args(struct hd *d, int timeout_ms, const char *const *args)
{
	char bin[512], why[128];
	const char *argv[16];
	size_t argc = 0;
	double t0, end;
	int status;

	hd_build_path("hookd", bin, sizeof(bin));
	d->pid = fork();
	cr_assert_geq(d->pid, 0);
	if (d->pid == 0) {
		/* a test that dies (failed assertion, timeout) takes its daemon along */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd < 0)
			_exit(127);
		dup2(fd, 2);
		dup2(fd, 1);
		close(fd);
		if (hd_scale() > 1)
			setenv("TSAN_OPTIONS", "halt_on_error=1:exitcode=66:second_deadlock_stack=1",
			       1);
		for (size_t i = 0; d->env && d->env[i]; i++)
			putenv((char *)d->env[i]);
		argv[argc++] = bin;
		argv[argc++] = "-c";
		argv[argc++] = d->config;
		for (size_t i = 0; args && args[i] && argc < 15; i++)
			argv[argc++] = args[i];
		argv[argc] = NULL;
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	t0 = hd_now_ms();
	end = t0 + (double)timeout_ms * hd_scale();
	for (;;) {
		if (!d->port)
			d->port = announced_port(d);
		if (d->port && health_answers(d))
			return true;
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->stopped = true;
			d->exit_status = WIFEXITED(status) ? WEXITSTATUS(status)
							   : 128 + WTERMSIG(status);
			snprintf(why, sizeof(why), "exited with status %d before it was ready",
				 d->exit_status);
			break;
		}
		if (hd_now_ms() >= end) {
			snprintf(why, sizeof(why), "%s after %.0f ms",
				 d->port ? "announced its port but does not answer GET /health"
					 : "never announced its port",
				 hd_now_ms() - t0);
			break;
		}
		hd_sleep_ms(5);
	}
	log_not_ready(d, why);
	return false;
}

void hd_start(struct hd *d, const char *members, const char *const *plugins)
{
	hd_prepare(d, members, plugins);
	hd_launch_or_fail(d);
}

void hd_signal(struct hd *d, int sig)
{
	cr_assert_eq(kill(d->pid, sig), 0);
}

static void rm_rf(const char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		cr_log_warn("cannot remove %s", dir);
}

void hd_kill(struct hd *d)
{
	int status;

	if (d->pid > 0 && !d->stopped) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, &status, 0);
		d->stopped = true;
	}
	if (d->dir[0])
		rm_rf(d->dir);
	d->dir[0] = '\0'; /* nothing left for the suite's teardown */
}

static void check_sanitizers(struct hd *d)
{
	static const char *const marks[] = {
		"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
		"runtime error:", "ERROR: ThreadSanitizer",
	};
	char *log = hd_log_read(d);

	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		if (strstr(log, marks[i])) {
			cr_log_error("daemon log:\n%s", log);
			free(log);
			cr_assert_fail("sanitizer report in the daemon's log: %s", marks[i]);
		}
	}
	free(log);
}

int hd_stop(struct hd *d)
{
	double end;
	int status = 0;

	if (!d->stopped) {
		kill(d->pid, SIGTERM);
		end = hd_now_ms() + 30000.0 * hd_scale();
		for (;;) {
			pid_t r = waitpid(d->pid, &status, WNOHANG);
			if (r == d->pid)
				break;
			if (hd_now_ms() > end) {
				kill(d->pid, SIGKILL);
				waitpid(d->pid, &status, 0);
				break;
			}
			hd_sleep_ms(5);
		}
		d->stopped = true;
		d->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
	check_sanitizers(d);
	if (d->exit_status != 0) {
		char *log = hd_log_read(d);
		cr_log_error("daemon log:\n%s", log);
		free(log);
	}
	rm_rf(d->dir);
	d->dir[0] = '\0';
	return d->exit_status;
}

/* ---- HTTP ------------------------------------------------------------ */

size_t hd_curl_body(char *p, size_t size, size_t n, void *arg)
{
	struct hd_resp *r = arg;
	size_t add = size * n;
	char *nb = realloc(r->body, r->len + add + 1);

	if (!nb)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, p, add);
	r->len += add;
	r->body[r->len] = '\0';
	return add;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct hd_resp *r = arg;
	size_t len = size * n;

	if (len > 13 && strncasecmp(p, "Retry-After:", 12) == 0)
		snprintf(r->retry_after, sizeof(r->retry_after), "%.*s", (int)(len - 13 - 2),
			 p + 13);
	if (len > 14 && strncasecmp(p, "Content-Type:", 13) == 0)
		snprintf(r->content_type, sizeof(r->content_type), "%.*s", (int)(len - 14 - 2),
			 p + 14);
	return len;
}

static void setup_easy(CURL *c, struct hd *d, const char *method, const char *path,
		       const char *body, size_t len, struct hd_resp *r, struct curl_slist *h)
{
	char url[512];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", d->port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L * hd_scale());
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hd_curl_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
}

void hd_request(struct hd *d, const char *method, const char *path, const char *body,
		size_t len, struct hd_resp *r)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");

	h = curl_slist_append(h, "Expect:");
	memset(r, 0, sizeof(*r));
	cr_assert_not_null(c);
	setup_easy(c, d, method, path, body, len, r, h);
	if (curl_easy_perform(c) == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
		curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->seconds);
	}
	if (!r->body)
		r->body = strdup("");
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

void hd_post(struct hd *d, const char *path, const char *body, struct hd_resp *r)
{
	hd_request(d, "POST", path, body, strlen(body), r);
}

void hd_get(struct hd *d, const char *path, struct hd_resp *r)
{
	hd_request(d, "GET", path, NULL, 0, r);
}

void hd_resp_free(struct hd_resp *r)
{
	free(r->body);
	r->body = NULL;
}

bool hd_wait_generation(struct hd *d, int gen, int timeout_ms)
{
	double end = hd_now_ms() + (double)timeout_ms * hd_scale();
	struct hd_resp r;

	while (hd_now_ms() < end) {
		hd_get(d, "/plugins", &r);
		const char *p = r.body ? strstr(r.body, "\"generation\":") : NULL;
		int g = p ? atoi(p + 13) : 0;
		hd_resp_free(&r);
		if (g >= gen)
			return true;
		hd_sleep_ms(10);
	}
	return false;
}

double hd_health(struct hd *d, const char *key)
{
	struct hd_resp r;
	cJSON *o, *v;
	double x = -1;

	hd_get(d, "/health", &r);
	o = r.status == 200 ? cJSON_Parse(r.body) : NULL;
	v = o ? cJSON_GetObjectItem(o, key) : NULL;
	if (cJSON_IsNumber(v))
		x = v->valuedouble;
	cJSON_Delete(o);
	hd_resp_free(&r);
	return x;
}

bool hd_wait_health(struct hd *d, const char *key, double want, int timeout_ms)
{
	double end = hd_now_ms() + (double)timeout_ms * hd_scale();

	while (hd_health(d, key) != want) {
		if (hd_now_ms() >= end)
			return false;
		hd_sleep_ms(5);
	}
	return true;
}

/* ---- load ------------------------------------------------------------ */

struct hd_load {
	struct hd *d;
	const char *path;
	const char *body;
	int nthreads;
	pthread_t tids[64];
	volatile int stop;
	long answered; /* answers so far, any status (atomic) */
	pthread_mutex_t mu;
	struct hd_load_result res;
};

static void *load_main(void *arg)
{
	struct hd_load *l = arg;
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	long ok = 0, bad = 0;

	h = curl_slist_append(h, "Expect:");
	while (!__atomic_load_n(&l->stop, __ATOMIC_RELAXED)) {
		struct hd_resp r = {0};
		setup_easy(c, l->d, "POST", l->path, l->body, strlen(l->body), &r, h);
		CURLcode rc = curl_easy_perform(c);
		long status = 0;
		if (rc == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		__atomic_add_fetch(&l->answered, 1, __ATOMIC_RELAXED);
		if (status == 200) {
			ok++;
		} else {
			bad++;
			pthread_mutex_lock(&l->mu);
			l->res.last_bad_status = status ? status : -(long)rc;
			snprintf(l->res.last_bad_body, sizeof(l->res.last_bad_body), "%s",
				 r.body ? r.body : curl_easy_strerror(rc));
			pthread_mutex_unlock(&l->mu);
		}
		free(r.body);
	}
	pthread_mutex_lock(&l->mu);
	l->res.ok += ok;
	l->res.failed += bad;
	pthread_mutex_unlock(&l->mu);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return NULL;
}

struct hd_load *hd_load_start(struct hd *d, const char *path, const char *body, int threads)
{
	struct hd_load *l = calloc(1, sizeof(*l));

	cr_assert_not_null(l);
	cr_assert_leq(threads, 64);
	l->d = d;
	l->path = path;
	l->body = body;
	l->nthreads = threads;
	pthread_mutex_init(&l->mu, NULL);
	for (int i = 0; i < threads; i++)
		cr_assert_eq(pthread_create(&l->tids[i], NULL, load_main, l), 0);
	return l;
}

bool hd_load_wait(struct hd_load *l, long n, int timeout_ms)
{
	long want = __atomic_load_n(&l->answered, __ATOMIC_RELAXED) + n;
	double end = hd_now_ms() + (double)timeout_ms * hd_scale();

	while (__atomic_load_n(&l->answered, __ATOMIC_RELAXED) < want) {
		if (hd_now_ms() >= end)
			return false;
		hd_sleep_ms(2);
	}
	return true;
}

void hd_load_stop(struct hd_load *l, struct hd_load_result *res)
{
	__atomic_store_n(&l->stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < l->nthreads; i++)
		pthread_join(l->tids[i], NULL);
	*res = l->res;
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* ---- calls in flight, exit without a signal, the binary's CLI -------- */

struct hd_bg {
	struct hd *d;
	char *path;
	char *body;
	pthread_t tid;
	struct hd_resp r;
	double done_ms;
	int done;
};

static void *bg_main(void *arg)
{
	struct hd_bg *b = arg;

	hd_request(b->d, "POST", b->path, b->body, strlen(b->body), &b->r);
	b->done_ms = hd_now_ms();
	__atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

struct hd_bg *hd_bg_post(struct hd *d, const char *path, const char *body)
{
	struct hd_bg *b = calloc(1, sizeof(*b));

	cr_assert_not_null(b);
	b->d = d;
	b->path = strdup(path);
	b->body = strdup(body);
	cr_assert(b->path && b->body);
	cr_assert_eq(pthread_create(&b->tid, NULL, bg_main, b), 0);
	return b;
}

bool hd_bg_done(struct hd_bg *b)
{
	return __atomic_load_n(&b->done, __ATOMIC_ACQUIRE) != 0;
}

void hd_bg_wait(struct hd_bg *b, struct hd_resp *r, double *done_ms)
{
	pthread_join(b->tid, NULL);
	*r = b->r;
	if (done_ms)
		*done_ms = b->done_ms;
	free(b->path);
	free(b->body);
	free(b);
}

bool hd_wait_exit(struct hd *d, int timeout_ms)
{
	double end = hd_now_ms() + (double)timeout_ms * hd_scale();
	int status;

	if (d->stopped)
		return true;
	for (;;) {
		pid_t r = waitpid(d->pid, &status, WNOHANG);
		if (r == d->pid)
			break;
		if (hd_now_ms() > end)
			return false;
		hd_sleep_ms(5);
	}
	d->stopped = true;
	d->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	return true;
}

int hd_run_hookd(const char *const *args, char **out, char **err)
{
	char bin[512], fo[] = "/tmp/hookd-cli-out-XXXXXX", fe[] = "/tmp/hookd-cli-err-XXXXXX";
	const char *argv[32];
	int o = mkstemp(fo), e = mkstemp(fe), status = 0;
	size_t n = 0;
	pid_t pid;

	cr_assert(o >= 0 && e >= 0);
	hd_build_path("hookd", bin, sizeof(bin));
	argv[n++] = bin;
	for (size_t i = 0; args && args[i]; i++) {
		cr_assert_lt(n, sizeof(argv) / sizeof(argv[0]) - 1);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(o, 1);
		dup2(e, 2);
		if (hd_scale() > 1)
			setenv("TSAN_OPTIONS", "halt_on_error=1:exitcode=66", 1);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(o);
	close(e);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (out)
		*out = hd_read_file(fo, NULL);
	if (err)
		*err = hd_read_file(fe, NULL);
	if (out && !*out)
		*out = strdup("");
	if (err && !*err)
		*err = strdup("");
	unlink(fo);
	unlink(fe);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- concurrent requests (added for test_payloads / test_isolation) -- */

double hd_post_many(struct hd *d, const char *const *paths, const char *const *bodies,
		    const size_t *lens, size_t n, struct hd_resp *out, double *wait_ms)
{
	CURLM *m = curl_multi_init();
	CURL **e = calloc(n ? n : 1, sizeof(*e));
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	int running = 0;
	double t0;

	h = curl_slist_append(h, "Expect:");
	cr_assert_not_null(m);
	cr_assert_not_null(e);
	for (size_t i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		e[i] = curl_easy_init();
		cr_assert_not_null(e[i]);
		setup_easy(e[i], d, "POST", paths[i], bodies[i], lens[i], &out[i], h);
		curl_easy_setopt(e[i], CURLOPT_PRIVATE, (char *)NULL + i);
		cr_assert_eq(curl_multi_add_handle(m, e[i]), CURLM_OK);
	}
	t0 = hd_now_ms();
	do {
		CURLMsg *msg;
		int left;
		cr_assert_eq(curl_multi_perform(m, &running), CURLM_OK);
		while ((msg = curl_multi_info_read(m, &left))) {
			char *priv = NULL;
			size_t i;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
			i = (size_t)(priv - (char *)NULL);
			if (msg->data.result == CURLE_OK) {
				curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE,
						  &out[i].status);
				curl_easy_getinfo(msg->easy_handle, CURLINFO_TOTAL_TIME,
						  &out[i].seconds);
				curl_easy_getinfo(msg->easy_handle, CURLINFO_CONNECT_TIME,
						  &out[i].connect_s);
			}
			if (wait_ms) {
				/* from the connect, not PRETRANSFER: libcurl 7.88 stamps
				 * PRETRANSFER on entering its DID state, i.e. after the
				 * request went out, so a client thread preempted there
				 * (a loaded machine) measured less than the server's own
				 * time. The connect is stamped before anything is sent. */
				curl_off_t pre = 0, first = 0;
				curl_easy_getinfo(msg->easy_handle, CURLINFO_CONNECT_TIME_T, &pre);
				curl_easy_getinfo(msg->easy_handle, CURLINFO_STARTTRANSFER_TIME_T,
						  &first);
				wait_ms[i] = (double)(first - pre) / 1000.0;
			}
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	} while (running);
	t0 = hd_now_ms() - t0;
	for (size_t i = 0; i < n; i++) {
		curl_multi_remove_handle(m, e[i]);
		curl_easy_cleanup(e[i]);
		if (!out[i].body)
			out[i].body = strdup("");
	}
	curl_multi_cleanup(m);
	curl_slist_free_all(h);
	free(e);
	return t0;
}
