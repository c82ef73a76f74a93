/*
 * alog and ratelog: request-id validation and generation, the text and
 * JSON access lines (fields, escaping, a cut line stays one line), the
 * 5xx token bucket, and the file switch a reopen does (a renamed file
 * gets no more lines).
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../host/alog.h"
#include "../../host/ratelog.h"

Test(alog, rid_validation)
{
	char longest[ALOG_RID_MAX + 2];

	cr_assert(alog_rid_valid("a"));
	cr_assert(alog_rid_valid("req-1.2_3:Z"));
	cr_assert(alog_rid_valid("550e8400-e29b-41d4-a716-446655440000"));
	cr_assert_not(alog_rid_valid(NULL));
	cr_assert_not(alog_rid_valid(""));
	cr_assert_not(alog_rid_valid("has space"));
	cr_assert_not(alog_rid_valid("quote\""));
	cr_assert_not(alog_rid_valid("new\nline"));
	cr_assert_not(alog_rid_valid("slash/"));
	cr_assert_not(alog_rid_valid("caf\xc3\xa9"));
	memset(longest, 'x', ALOG_RID_MAX);
	longest[ALOG_RID_MAX] = 0;
	cr_assert(alog_rid_valid(longest));
	longest[ALOG_RID_MAX] = 'x';
	longest[ALOG_RID_MAX + 1] = 0;
	cr_assert_not(alog_rid_valid(longest));
}

Test(alog, generated_rids_are_valid_and_distinct)
{
	char p1[17], p2[17], a[64], b[64];

	alog_rid_prefix(p1, sizeof(p1));
	alog_rid_prefix(p2, sizeof(p2));
	cr_assert_eq(strlen(p1), 16);
	cr_assert_str_neq(p1, p2, "two loops (or two runs) got the same prefix %s", p1);
	alog_rid_make(a, sizeof(a), p1, 1);
	alog_rid_make(b, sizeof(b), p1, 2);
	cr_assert(alog_rid_valid(a), "%s", a);
	cr_assert_str_neq(a, b);
	alog_rid_make(a, sizeof(a), p1, UINT64_MAX);
	cr_assert(alog_rid_valid(a), "%s", a);
	cr_assert_eq(strlen(a), 16 + 1 + 16);
}

static const struct dispatch_step_rec steps2[] = {
	{.plugin = "tag", .duration_ns = 1500000, .outcome = DISPATCH_OK, .ended = true},
	{.plugin = "fail", .duration_ns = 250000, .outcome = DISPATCH_STEP_FAILED, .ended = true,
	 .skipped = true},
};

static struct alog_entry entry(void)
{
	return (struct alog_entry){
		.time = {1765106400, 123456789}, /* 2025-12-07T11:20:00.123Z */
		.rid = "rid-1",
		.client = "127.0.0.1",
		.method = "POST",
		.path = "/hooks/mixed",
		.hook = "mixed",
		.status = 502,
		.duration_ns = 2000000,
		.bytes_in = 12,
		.bytes_out = 99,
		.generation = 3,
		.outcome = "crashed",
		.plugin = "fail",
		.steps = steps2,
		.nsteps = 2,
	};
}

Test(alog, text_line)
{
	struct alog_entry e = entry();
	char buf[ALOG_LINE_MAX];
	size_t n = alog_format_line(&e, ALOG_TEXT, NULL, buf, sizeof(buf));

	cr_assert_gt(n, 0);
	cr_assert_eq(buf[n - 1], '\n');
	buf[n] = 0;
	cr_assert_str_eq(buf, "2025-12-07T11:20:00.123Z rid=rid-1 client=127.0.0.1 method=POST "
			 "path=/hooks/mixed hook=mixed status=502 dur_ms=2.000 in=12 out=99 gen=3 "
			 "outcome=crashed plugin=fail "
			 "steps=tag:1.500:ok,fail:0.250:step_failed:skipped\n");
}

Test(alog, text_line_escapes_and_dashes)
{
	struct alog_entry e = entry();
	char buf[ALOG_LINE_MAX];
	size_t n;

	e.path = "/hooks/a b\"\n\xff";
	e.hook = NULL;
	e.plugin = NULL;
	e.client = NULL;
	e.nsteps = 0;
	e.steps = NULL;
	e.steps_more = 0;
	n = alog_format_line(&e, ALOG_TEXT, NULL, buf, sizeof(buf));
	buf[n] = 0;
	cr_assert(strstr(buf, " path=/hooks/a\\x20b\\x22\\x0a\\xff hook=- "), "%s", buf);
	cr_assert(strstr(buf, " client=- "), "%s", buf);
	cr_assert(strstr(buf, " plugin=- steps=-\n"), "%s", buf);
	cr_assert_eq(strchr(buf, '\n'), buf + n - 1, "one line: %s", buf);
}

Test(alog, json_line_parses_with_every_field)
{
	struct alog_entry e = entry();
	char buf[ALOG_LINE_MAX];
	size_t n;
	cJSON *o, *s;

	e.path = "/hooks/x\"\\\x01\xe9";
	e.steps_more = 4;
	n = alog_format_line(&e, ALOG_JSON, NULL, buf, sizeof(buf));
	cr_assert_eq(buf[n - 1], '\n');
	buf[n - 1] = 0;
	cr_assert_null(strchr(buf, '\n'));
	o = cJSON_Parse(buf);
	cr_assert_not_null(o, "not JSON: %s", buf);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "time")->valuestring, "2025-12-07T11:20:00.123Z");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "request_id")->valuestring, "rid-1");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "client")->valuestring, "127.0.0.1");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "method")->valuestring, "POST");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "path")->valuestring, "/hooks/x\"\\\x01\xc3\xa9");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "hook")->valuestring, "mixed");
	cr_assert_eq(cJSON_GetObjectItem(o, "status")->valueint, 502);
	cr_assert_float_eq(cJSON_GetObjectItem(o, "duration_ms")->valuedouble, 2.0, 1e-9);
	cr_assert_eq(cJSON_GetObjectItem(o, "bytes_in")->valueint, 12);
	cr_assert_eq(cJSON_GetObjectItem(o, "bytes_out")->valueint, 99);
	cr_assert_eq(cJSON_GetObjectItem(o, "generation")->valueint, 3);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "outcome")->valuestring, "crashed");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "plugin")->valuestring, "fail");
	cr_assert_eq(cJSON_GetObjectItem(o, "steps_more")->valueint, 4);
	s = cJSON_GetObjectItem(o, "steps");
	cr_assert_eq(cJSON_GetArraySize(s), 2);
	cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(s, 0), "plugin")->valuestring, "tag");
	cr_assert_float_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(s, 0), "duration_ms")->valuedouble,
			   1.5, 1e-9);
	cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(s, 1), "outcome")->valuestring,
			 "step_failed");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(s, 1), "skipped")));
	cr_assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(s, 0), "skipped"));
	cJSON_Delete(o);

	e.hook = NULL;
	e.plugin = NULL;
	n = alog_format_line(&e, ALOG_JSON, NULL, buf, sizeof(buf));
	buf[n - 1] = 0;
	o = cJSON_Parse(buf);
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "hook")), "%s", buf);
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "plugin")), "%s", buf);
	cJSON_Delete(o);
}

/* A line over the buffer is cut, stays one line, and JSON stays JSON when
 * only its steps are too many. */
Test(alog, long_lines_are_cut)
{
	struct dispatch_step_rec many[DISPATCH_STEP_RECS];
	struct alog_entry e = entry();
	char buf[400];
	size_t n;
	cJSON *o;

	for (int i = 0; i < DISPATCH_STEP_RECS; i++)
		many[i] = (struct dispatch_step_rec){
			.plugin = "a_plugin_with_quite_a_long_name", .duration_ns = 1,
			.outcome = DISPATCH_OK, .ended = true};
	e.steps = many;
	e.nsteps = DISPATCH_STEP_RECS;
	n = alog_format_line(&e, ALOG_JSON, NULL, buf, sizeof(buf));
	cr_assert_leq(n, sizeof(buf));
	cr_assert_eq(buf[n - 1], '\n');
	buf[n - 1] = 0;
	o = cJSON_Parse(buf);
	cr_assert_not_null(o, "a cut JSON line is not JSON: %s", buf);
	cr_assert_lt(cJSON_GetArraySize(cJSON_GetObjectItem(o, "steps")), DISPATCH_STEP_RECS);
	cJSON_Delete(o);
	n = alog_format_line(&e, ALOG_TEXT, NULL, buf, sizeof(buf));
	cr_assert_eq(n, sizeof(buf), "the text line fills the buffer: %zu", n);
	cr_assert_eq(buf[n - 1], '\n');
	cr_assert_eq(memchr(buf, '\n', n), buf + n - 1);
}

Test(ratelog, burst_then_rate_and_count)
{
	struct ratelog rl;
	int64_t t = 1000000000;
	int ok = 0;

	ratelog_init(&rl, 10, 20);
	for (int i = 0; i < 100; i++)
		ok += ratelog_take(&rl, t);
	cr_assert_eq(ok, 20, "the burst");
	cr_assert_eq(ratelog_flush(&rl), 80);
	cr_assert_eq(ratelog_flush(&rl), 0);
	/* half a second later: 5 more tokens */
	t += 500000000;
	ok = 0;
	for (int i = 0; i < 100; i++)
		ok += ratelog_take(&rl, t);
	cr_assert_eq(ok, 5);
	cr_assert_eq(ratelog_flush(&rl), 95);
	/* a long calm refills the bucket to its size, never more */
	t += 3600 * 1000000000LL;
	ok = 0;
	for (int i = 0; i < 100; i++)
		ok += ratelog_take(&rl, t);
	cr_assert_eq(ok, 20);
	/* a clock that goes back does not mint tokens */
	ok = ratelog_take(&rl, t - 1000000000LL);
	cr_assert_eq(ok, 0);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = calloc(1, 65536);
	if (f) {
		size_t n = fread(buf, 1, 65535, f);
		buf[n] = 0;
		fclose(f);
	}
	return buf;
}

/* logrotate's way: rename, reopen; the renamed file gets no more lines.
 * Turning the log off and on keeps one descriptor number. */
Test(alog, reopen_switches_files)
{
	char dir[] = "/tmp/alog-test-XXXXXX", path[128], old[128], err[256];
	struct alog al;
	struct alog_entry e = entry();
	char *a, *b;
	int fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/access.log", dir);
	snprintf(old, sizeof(old), "%s/access.log.1", dir);
	alog_init(&al);
	cr_assert_not(alog_enabled(&al));
	alog_write(&al, &e); /* off: nothing, no crash */
	cr_assert_eq(alog_configure(&al, path, ALOG_TEXT, err, sizeof(err)), 0, "%s", err);
	cr_assert(alog_enabled(&al));
	fd = al.fd;
	e.rid = "first";
	alog_write(&al, &e);
	cr_assert_eq(rename(path, old), 0);
	e.rid = "still-old";
	alog_write(&al, &e); /* before the reopen: the renamed file */
	cr_assert_eq(alog_reopen(&al, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(al.fd, fd, "the descriptor number changed");
	e.rid = "second";
	alog_write(&al, &e);
	a = slurp(old);
	b = slurp(path);
	cr_assert(strstr(a, "rid=first ") && strstr(a, "rid=still-old "), "%s", a);
	cr_assert_null(strstr(a, "rid=second "), "%s", a);
	cr_assert(strstr(b, "rid=second "), "%s", b);
	cr_assert_null(strstr(b, "rid=first "), "%s", b);
	free(a);
	free(b);
	/* format switch, then off, then on again at the same number */
	cr_assert_eq(alog_configure(&al, path, ALOG_JSON, err, sizeof(err)), 0, "%s", err);
	e.rid = "json";
	alog_write(&al, &e);
	cr_assert_eq(alog_configure(&al, NULL, ALOG_TEXT, err, sizeof(err)), 0);
	cr_assert_not(alog_enabled(&al));
	e.rid = "while-off";
	alog_write(&al, &e);
	cr_assert_eq(alog_configure(&al, old, ALOG_TEXT, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(al.fd, fd);
	b = slurp(path);
	cr_assert(strstr(b, "\"request_id\":\"json\""), "%s", b);
	cr_assert_null(strstr(b, "while-off"), "%s", b);
	free(b);
	/* a path that cannot be opened changes nothing */
	cr_assert_eq(alog_configure(&al, "/nonexistent-dir/x.log", ALOG_TEXT, err, sizeof(err)),
		     -1);
	cr_assert(strstr(err, "/nonexistent-dir/x.log"), "%s", err);
	cr_assert(alog_enabled(&al));
	cr_assert_str_eq(al.path, old);
	alog_fini(&al);
	unlink(path);
	unlink(old);
	rmdir(dir);
}

/* A loop's batch: nothing written before the flush, whole lines only, never
 * more than ALOG_BATCH bytes in one write, nothing lost. */
Test(alog, batch_writes_whole_lines_at_most_pipe_buf)
{
	int p[2];
	struct alog al;
	struct alog_batch b;
	struct alog_entry e = entry();
	char rid[32], buf[65536];
	ssize_t n;
	int lines = 0, flagged = 0;

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	alog_init(&al);
	al.fd = p[1]; /* as if configured on a pipe (stderr under systemd) */
	atomic_store(&al.on, 1);
	alog_batch_init(&b, &al);
	e.rid = "first";
	cr_assert(alog_batch_add(&b, &e), "an empty batch asks for a flush");
	cr_assert_not(alog_batch_add(&b, &e), "a batch with lines does not ask again");
	cr_assert_eq(read(p[0], buf, sizeof(buf)), -1, "written before the flush");
	alog_batch_flush(&b);
	n = read(p[0], buf, sizeof(buf));
	cr_assert_gt(n, 0);
	for (ssize_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	cr_assert_eq(lines, 2);
	cr_assert_eq(buf[n - 1], '\n');
	/* many lines: every write the pipe sees is whole lines, <= ALOG_BATCH */
	for (int i = 0; i < 100; i++) {
		snprintf(rid, sizeof(rid), "r%d", i);
		e.rid = rid;
		flagged += alog_batch_add(&b, &e);
		while ((n = read(p[0], buf, sizeof(buf))) > 0) {
			cr_assert_leq(n, ALOG_BATCH);
			cr_assert_eq(buf[n - 1], '\n', "a write cut a line");
			for (ssize_t j = 0; j < n; j++)
				lines += buf[j] == '\n';
		}
	}
	alog_batch_flush(&b);
	while ((n = read(p[0], buf, sizeof(buf))) > 0)
		for (ssize_t j = 0; j < n; j++)
			lines += buf[j] == '\n';
	cr_assert_eq(lines, 102, "lines lost: %d", lines);
	cr_assert_gt(flagged, 1, "a batch that filled up started a new one");
	close(p[0]);
	close(p[1]);
}

/* The per-loop time cache gives the same text as no cache, across seconds
 * and days; durations print as ms with microseconds, cut. */
Test(alog, time_cache_and_durations)
{
	struct alog_entry e = entry();
	struct alog_tcache c = {0};
	char a[ALOG_LINE_MAX], b[ALOG_LINE_MAX];
	const time_t secs[] = {1765106400, 1765106400, 1765106401, 1765151999, 1765152000, 0};

	for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
		e.time.tv_sec = secs[i];
		e.time.tv_nsec = (long)i * 111111111L;
		size_t na = alog_format_line(&e, ALOG_TEXT, &c, a, sizeof(a));
		size_t nb = alog_format_line(&e, ALOG_TEXT, NULL, b, sizeof(b));
		a[na] = b[nb] = 0;
		cr_assert_str_eq(a, b);
	}
	cr_assert_eq(strncmp(a, "1970-01-01T00:00:00.555Z ", 25), 0, "%s", a);
	e.duration_ns = 1234567899; /* 1234.567899 ms */
	e.nsteps = 0;
	size_t n = alog_format_line(&e, ALOG_TEXT, NULL, a, sizeof(a));
	a[n] = 0;
	cr_assert(strstr(a, " dur_ms=1234.567 "), "%s", a);
	e.duration_ns = -5; /* a clock step back: 0, never negative */
	n = alog_format_line(&e, ALOG_JSON, NULL, a, sizeof(a));
	a[n] = 0;
	cr_assert(strstr(a, "\"duration_ms\":0.000,"), "%s", a);
}
