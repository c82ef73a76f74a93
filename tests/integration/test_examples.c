/*
 * The README's promise: a plugin written from it, compiled with its
 * one-line command, dropped into the folder and picked up by SIGHUP.
 *
 * The command is read from README.md itself (and compared with the one in
 * sdk/hookd.h's header comment), never copied here: if the README drifts,
 * these tests run the drifted line. It must build every example in
 * plugins/ without a single line of compiler output -- a plugin built with
 * an implicitly declared strdup() only warns, then crashes the daemon.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "../support/harness.h"

/* What the README's line says for its own example: the part replaced by
 * the output and the source of each build. */
#define README_OUT_SRC "-o hello.so hello.c"

static char *read_all(const char *path)
{
	char *s = hd_read_file(path, NULL);

	cr_assert_not_null(s, "cannot read %s", path);
	return s;
}

/* The README's compile line, split around "-o hello.so hello.c". */
struct readme_cc {
	char head[512]; /* "cc -std=c11 ... -I sdk " */
	char tail[128]; /* " -lcjson" */
};

/* The one README line starting with `cmd` that contains `out_src`. */
static void readme_line(struct readme_cc *c, const char *cmd, const char *out_src)
{
	char *md = read_all("README.md"), *line = NULL, *at, *end;
	int found = 0;

	for (char *p = md; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, cmd, strlen(cmd)) != 0)
			continue;
		end = strchr(p, '\n');
		at = strstr(p, out_src);
		if (at && (!end || at < end)) {
			line = p;
			found++;
		}
	}
	cr_assert_eq(found, 1, "README.md must show exactly one line \"%s... %s ...\"", cmd,
		     out_src);
	end = strchr(line, '\n');
	at = strstr(line, out_src);
	cr_assert_lt((size_t)(at - line), sizeof(c->head));
	memcpy(c->head, line, (size_t)(at - line));
	c->head[at - line] = '\0';
	at += strlen(out_src);
	cr_assert_lt((size_t)(end - at), sizeof(c->tail));
	memcpy(c->tail, at, (size_t)(end - at));
	c->tail[end - at] = '\0';
	free(md);
}

static void readme_cc(struct readme_cc *c)
{
	readme_line(c, "cc ", README_OUT_SRC);
	/* the flags that keep strdup & co. declared (PITFALLS) */
	cr_assert(strstr(c->head, "-std=c11"), "%s", c->head);
	cr_assert(strstr(c->head, "-D_GNU_SOURCE") || strstr(c->head, "-D_POSIX_C_SOURCE="),
		  "the README line lacks a feature macro: %s", c->head);
	cr_assert(strstr(c->head, "-Werror=implicit-function-declaration"), "%s", c->head);
}

/* Compile `src` into `out` with the README's line; `extra` goes at the end
 * (the README says "-lcurl" for a plugin using libcurl). Fails the test on
 * a non-zero exit or any output at all. */
static void readme_compile(const struct readme_cc *c, const char *src, const char *out,
			   const char *extra)
{
	char cmd[1536], buf[512], text[4096] = "";
	size_t len = 0;
	FILE *f;
	int st;

	snprintf(cmd, sizeof(cmd), "%s-o '%s' '%s'%s%s%s 2>&1", c->head, out, src, c->tail,
		 extra ? " " : "", extra ? extra : "");
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	while (fgets(buf, sizeof(buf), f))
		len += (size_t)snprintf(text + len, len < sizeof(text) ? sizeof(text) - len : 0,
					"%s", buf);
	st = pclose(f);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s\nfailed:\n%s", cmd, text);
	cr_assert_eq(len, 0, "%s\nprinted (a warning is a crash waiting to happen):\n%s", cmd,
		     text);
}

/* The .so exports exactly one symbol, hookd_plugin. */
static void expect_one_export(const char *so)
{
	char cmd[700], line[256], names[1024] = "";
	int n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s'", so);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		n++;
		strncat(names, line, sizeof(names) - strlen(names) - 1);
	}
	cr_assert_eq(pclose(f), 0, "%s failed", cmd);
	cr_assert_eq(n, 1, "%s exports %d symbols:\n%s", so, n, names);
	cr_assert(strstr(names, " hookd_plugin\n"), "%s", names);
}

/* Build src into d's plugin folder as NAME.so, the way the README says:
 * into a temporary name, then rename. */
static void build_into(struct hd *d, const struct readme_cc *c, const char *src,
		       const char *name, const char *extra)
{
	char so[512], tmp[600];

	snprintf(tmp, sizeof(tmp), "%s/.%s.so.tmp", d->plugin_dir, name);
	snprintf(so, sizeof(so), "%s/%s.so", d->plugin_dir, name);
	readme_compile(c, src, tmp, extra);
	expect_one_export(tmp);
	cr_assert_eq(rename(tmp, so), 0);
}

static void expect_post(struct hd *d, const char *path, const char *body, long status,
			const char *expect_body)
{
	struct hd_resp r;

	hd_post(d, path, body, &r);
	cr_assert_eq(r.status, status, "POST %s %s: %ld %s", path, body, r.status, r.body);
	if (expect_body)
		cr_assert_str_eq(r.body, expect_body, "POST %s %s", path, body);
	hd_resp_free(&r);
}

TestSuite(examples, .fini = hd_suite_teardown);

Test(examples, readme_plugins_compile_load_and_answer, .timeout = 60)
{
	static struct hd d; /* static: the suite's teardown may read it */
	struct readme_cc c;
	struct hd_resp r;

	readme_cc(&c);
	hd_start(&d, "", (const char *const[]){"echo", NULL});
	hd_post(&d, "/hooks/greet", "{\"name\":\"Ada\"}", &r);
	cr_assert_eq(r.status, 404);
	hd_resp_free(&r);

	build_into(&d, &c, "plugins/hello.c", "hello", NULL);
	build_into(&d, &c, "plugins/hello_async.c", "hello_async", NULL);
	hd_signal(&d, SIGHUP);
	cr_assert(hd_wait_generation(&d, 2, 5000));

	expect_post(&d, "/hooks/greet", "{\"name\":\"Ada\"}", 200,
		    "{\"greeting\":\"Hello, Ada!\"}\n");
	hd_post(&d, "/hooks/greet", "{\"name\":42}", &r);
	cr_assert_eq(r.status, 422);
	cr_assert(strstr(r.body, "\"plugin\":\"hello\""), "%s", r.body);
	hd_resp_free(&r);
	hd_post(&d, "/hooks/greet_later", "{\"ms\":50}", &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(r.body, "{\"ms\":50,\"greeting\":\"Hello, later!\"}\n");
	cr_assert_geq(r.seconds, 0.045);
	hd_resp_free(&r);
	cr_assert_eq(hd_stop(&d), 0);
}

/* The header comment of sdk/hookd.h shows the same command (the installed
 * header is all some authors read). Its lines are joined and compared up
 * to the include path, which differs (installed vs source tree). */
Test(examples, the_header_shows_the_readme_command, .timeout = 10)
{
	struct readme_cc c;
	char *h = read_all("sdk/hookd.h"), *p, *end, joined[1024] = "";
	size_t n = 0;

	readme_cc(&c);
	p = strstr(h, " *   cc ");
	cr_assert_not_null(p, "sdk/hookd.h shows no compile command");
	p += strlen(" *   ");
	for (;;) { /* "...\\\n *      more" */
		end = strchr(p, '\n');
		cr_assert_not_null(end);
		bool cont = end > p && end[-1] == '\\';
		const char *stop = cont ? end - 1 : end;
		n += (size_t)snprintf(joined + n, sizeof(joined) - n, "%.*s", (int)(stop - p), p);
		cr_assert_lt(n, sizeof(joined));
		if (!cont)
			break;
		p = end + 1;
		while (*p == ' ' || *p == '*')
			p++;
		/* continuation lines: one space between flags */
		if (n && joined[n - 1] != ' ')
			joined[n++] = ' ', joined[n] = '\0';
	}
	{
		char *ri = strstr(c.head, " -I"), *hi = strstr(joined, " -I");
		cr_assert_not_null(ri);
		cr_assert_not_null(hi, "%s", joined);
		*ri = '\0';
		*hi = '\0';
		/* collapse runs of spaces in the header's version */
		for (char *s = joined, *t = joined;; s++) {
			if (!(*s == ' ' && t > joined && t[-1] == ' '))
				*t++ = *s;
			if (!*s)
				break;
		}
		cr_assert_str_eq(joined, c.head, "sdk/hookd.h and README.md show different flags");
	}
	free(h);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every example in plugins/, built by the README's line, loads in a real
 * daemon next to the others and answers. tag's strdup() is the plugin that
 * used to crash the daemon when built by the README's old line. */
Test(examples, every_example_builds_with_the_readme_line_and_serves, .timeout = 180)
{
	static struct hd d;
	struct readme_cc c;
	char *names[64], src[512], body[256], *md;
	size_t n = 0;
	struct dirent *de;
	DIR *dir;
	cJSON *o, *loaded;

	readme_cc(&c);
	md = read_all("README.md");
	hd_prepare(&d, "\"plugins\": {\"tag\": {\"label\": \"from-config\"},"
		       " \"tag_async\": {\"label\": \"async-label\"}}", NULL);
	dir = opendir("plugins");
	cr_assert_not_null(dir);
	while ((de = readdir(dir))) {
		size_t l = strlen(de->d_name);
		if (l > 2 && strcmp(de->d_name + l - 2, ".c") == 0) {
			cr_assert_lt(n, sizeof(names) / sizeof(names[0]));
			names[n++] = strndup(de->d_name, l - 2);
		}
	}
	closedir(dir);
	cr_assert_geq(n, 13, "the examples are missing");
	qsort(names, n, sizeof(names[0]), cmp_name);
	for (size_t i = 0; i < n; i++) {
		char *text;
		const char *extra = NULL;
		snprintf(src, sizeof(src), "plugins/%s.c", names[i]);
		text = read_all(src);
		if (strstr(text, "<curl/curl.h>")) {
			/* the README's rule for plugins that use libcurl themselves */
			cr_assert(strstr(md, "adds `-lcurl` at the end"),
				  "%s uses libcurl: the README must say how to link it", src);
			extra = "-lcurl";
		}
		free(text);
		build_into(&d, &c, src, names[i], extra);
	}
	free(md);
	hd_launch_or_fail(&d);

	{
		struct hd_resp r;
		hd_get(&d, "/plugins", &r);
		cr_assert_eq(r.status, 200);
		o = cJSON_Parse(r.body);
		cr_assert_not_null(o, "%s", r.body);
		hd_resp_free(&r);
	}
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "rejected")), 0, "rejected: %s",
		     cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "rejected")));
	loaded = cJSON_GetObjectItem(o, "plugins");
	cr_assert_eq(cJSON_GetArraySize(loaded), (int)n, "every example loads");
	cJSON_Delete(o);

	expect_post(&d, "/hooks/tag", "{\"a\":1}", 200, "{\"a\":1,\"trace\":[\"from-config\"]}\n");
	expect_post(&d, "/hooks/tag_async", "{}", 200, "{\"trace\":[\"async-label\"]}\n");
	expect_post(&d, "/hooks/echo", "{\"x\":[1,2]}", 200, "{\"x\":[1,2]}\n");
	expect_post(&d, "/hooks/echo_async", "{\"y\":true}", 200, "{\"y\":true}\n");
	expect_post(&d, "/hooks/greet", "{\"name\":\"Bo\"}", 200, "{\"greeting\":\"Hello, Bo!\"}\n");
	expect_post(&d, "/hooks/sleep", "{\"ms\":5}", 200, "{\"ms\":5}\n");
	expect_post(&d, "/hooks/delay", "{\"ms\":5}", 200, "{\"ms\":5}\n");
	expect_post(&d, "/hooks/fail", "{\"status\":418,\"message\":\"teapot\"}", 418, NULL);
	expect_post(&d, "/hooks/cpu", "{\"n\":10}", 200, NULL);
	/* the HTTP examples fetch the daemon's own /health */
	snprintf(body, sizeof(body), "{\"url\":\"http://127.0.0.1:%d/health\"}", d.port);
	{
		static const char *const http_hooks[] = {"/hooks/fetch", "/hooks/fetch_sync",
							 "/hooks/fanout"};
		for (size_t i = 0; i < 3; i++) {
			struct hd_resp r;
			hd_post(&d, http_hooks[i], body, &r);
			cr_assert_eq(r.status, 200, "%s: %ld %s", http_hooks[i], r.status, r.body);
			cr_assert(strstr(r.body, "\"status\":200"), "%s: %s", http_hooks[i], r.body);
			hd_resp_free(&r);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	cr_assert_eq(hd_stop(&d), 0, "the daemon exits cleanly after serving every example");
}

/* The README's C++ line builds the C++ fixture silently into a plugin that
 * exports hookd_plugin alone and serves. */
Test(examples, the_readme_cxx_line_builds_a_cxx_plugin_that_serves, .timeout = 60)
{
	static struct hd d;
	struct readme_cc c;

	readme_line(&c, "g++ ", "-o my.so my.cc");
	cr_assert(strstr(c.head, "-std=c++20"), "%s", c.head);
	hd_prepare(&d, "", NULL);
	build_into(&d, &c, "tests/fixtures/cxx_plugin.cc", "cxx", NULL);
	hd_launch_or_fail(&d);
	expect_post(&d, "/hooks/cxx", "{\"name\":\"Ada\"}", 200, NULL);
	cr_assert_eq(hd_stop(&d), 0);
}
