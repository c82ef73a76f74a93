/*
 * config: a valid file gives the right values and defaults; every error
 * names the file and the key path; relative plugin_dir follows the file.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../host/config.h"
#include "../../host/log.h"
#include "unit.h"

#define CFG_PATH "/srv/hookd/conf.json"
/* the two required members */
#define REQ "\"listen\": \"127.0.0.1:8080\", \"plugin_dir\": \"/opt/plugins\""

static struct config *parse_ok(const char *text)
{
	struct config *cfg = NULL;
	char err[512] = "";

	cr_assert_eq(config_parse(text, strlen(text), CFG_PATH, &cfg, err, sizeof(err)), 0,
		     "refused: %s\n%s", err, text);
	cr_assert_not_null(cfg);
	cr_assert_str_eq(err, "");
	return cfg;
}

/* Parsing `text` fails with "CFG_PATH: key: ..." (or "CFG_PATH: ..." when
 * key is NULL) and the message contains `what`. */
static void expect_error(const char *text, const char *key, const char *what)
{
	struct config *cfg = (struct config *)1;
	char err[512] = "", prefix[300];

	cr_assert_eq(config_parse(text, strlen(text), CFG_PATH, &cfg, err, sizeof(err)), -1,
		     "accepted: %s", text);
	cr_assert_null(cfg, "*out must be NULL on failure: %s", text);
	snprintf(prefix, sizeof(prefix), "%s: %s%s", CFG_PATH, key ? key : "", key ? ": " : "");
	cr_assert_eq(strncmp(err, prefix, strlen(prefix)), 0,
		     "error does not start with \"%s\": \"%s\" (input %s)", prefix, err, text);
	cr_assert_not_null(strstr(err, what), "error lacks \"%s\": \"%s\" (input %s)", what, err,
			   text);
	cr_assert_null(strchr(err, '\n'), "error is not one line: %s", err);
}

Test(config, full_config_has_the_right_values)
{
	const char *text =
		"{\n"
		"  \"listen\": \"0.0.0.0:9090\",\n"
		"  \"plugin_dir\": \"/var/lib/hookd/plugins\",\n"
		"  \"runtime_dir\": \"/run/hookd\",\n"
		"  \"workers\": 3,\n"
		"  \"queue\": 17,\n"
		"  \"timeout_ms\": 2500,\n"
		"  \"max_body\": 4096,\n"
		"  \"drain_ms\": 0,\n"
		"  \"log_level\": \"debug\",\n"
		"  \"hooks\": {\n"
		"    \"mixed\": {\"chain\": [\"tag\", \"tag_async\", \"echo\"], \"timeout_ms\": 2000},\n"
		"    \"sleep\": {\"timeout_ms\": 30000},\n"
		"    \"alpha\": {}\n"
		"  },\n"
		"  \"plugins\": {\"tag\": {\"label\": \"sync step\", \"n\": [1, 2]}, \"x\": {}}\n"
		"}\n";
	struct config *cfg = parse_ok(text);

	cr_assert_str_eq(cfg->path, CFG_PATH);
	cr_assert_str_eq(cfg->listen, "0.0.0.0:9090");
	cr_assert_str_eq(cfg->listen_host, "0.0.0.0");
	cr_assert_eq(cfg->listen_port, 9090);
	cr_assert_str_eq(cfg->plugin_dir, "/var/lib/hookd/plugins");
	cr_assert_str_eq(cfg->runtime_dir, "/run/hookd");
	cr_assert_eq(cfg->workers, 3);
	cr_assert_eq(cfg->queue, 17);
	cr_assert_eq(cfg->timeout_ms, 2500);
	cr_assert_eq(cfg->max_body, 4096);
	cr_assert_eq(cfg->drain_ms, 0);
	cr_assert_eq(cfg->log_level, LOG_DEBUG);

	/* hooks sorted by name */
	cr_assert_eq(cfg->nhooks, 3);
	cr_assert_str_eq(cfg->hooks[0].name, "alpha");
	cr_assert_str_eq(cfg->hooks[1].name, "mixed");
	cr_assert_str_eq(cfg->hooks[2].name, "sleep");
	cr_assert_null(cfg->hooks[0].chain);
	cr_assert_eq(cfg->hooks[0].timeout_ms, 0);
	cr_assert_eq(cfg->hooks[1].nchain, 3);
	cr_assert_str_eq(cfg->hooks[1].chain[0], "tag");
	cr_assert_str_eq(cfg->hooks[1].chain[1], "tag_async");
	cr_assert_str_eq(cfg->hooks[1].chain[2], "echo");
	cr_assert_eq(cfg->hooks[1].timeout_ms, 2000);
	cr_assert_null(cfg->hooks[2].chain);
	cr_assert_eq(cfg->hooks[2].nchain, 0);
	cr_assert_eq(cfg->hooks[2].timeout_ms, 30000);

	cr_assert(cJSON_IsObject(cfg->plugins));
	cr_assert_eq(cJSON_GetArraySize(cfg->plugins), 2);
	config_free(cfg);
}

Test(config, defaults_when_only_the_required_keys_are_given)
{
	struct config *cfg = parse_ok("{" REQ "}");
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	cr_assert_gt(ncpu, 0);
	cr_assert_eq(cfg->workers, (unsigned)ncpu);
	cr_assert_eq(cfg->queue, 64u * (unsigned)ncpu);
	cr_assert_eq(cfg->timeout_ms, 10000);
	cr_assert_eq(cfg->max_body, 1024 * 1024);
	cr_assert_eq(cfg->drain_ms, 10000);
	cr_assert_eq(cfg->log_level, LOG_INFO);
	cr_assert_null(cfg->runtime_dir);
	cr_assert_eq(cfg->nhooks, 0);
	cr_assert_not_null(cfg->plugins, "plugins is never NULL");
	cr_assert(cJSON_IsObject(cfg->plugins));
	cr_assert_null(cfg->plugins->child);
	cr_assert_null(config_find_hook(cfg, "anything"));
	cr_assert_null(config_plugin_section(cfg, "anything"));
	cr_assert_eq(config_hook_timeout(cfg, "anything"), 10000);
	config_free(cfg);
}

Test(config, queue_default_is_64_per_worker_of_the_configured_count)
{
	struct config *cfg = parse_ok("{" REQ ", \"workers\": 3}");

	cr_assert_eq(cfg->workers, 3);
	cr_assert_eq(cfg->queue, 192);
	config_free(cfg);
	/* an explicit queue wins, whatever the order of the keys */
	cfg = parse_ok("{\"queue\": 5, " REQ ", \"workers\": 3}");
	cr_assert_eq(cfg->queue, 5);
	config_free(cfg);
}

Test(config, integral_numbers_in_any_spelling_are_integers)
{
	struct config *cfg = parse_ok("{" REQ ", \"timeout_ms\": 1e3, \"workers\": 2.0, "
				      "\"max_body\": 2.5e1}");

	cr_assert_eq(cfg->timeout_ms, 1000);
	cr_assert_eq(cfg->workers, 2);
	cr_assert_eq(cfg->max_body, 25);
	config_free(cfg);
}

Test(config, range_bounds_are_inclusive)
{
	struct config *cfg = parse_ok("{" REQ ", \"workers\": 1024, \"queue\": 1000000, "
				      "\"timeout_ms\": 3600000, \"max_body\": 1073741824, "
				      "\"drain_ms\": 3600000, \"hooks\": {\"h\": {\"timeout_ms\": 1}}}");

	cr_assert_eq(cfg->workers, CONFIG_MAX_WORKERS);
	cr_assert_eq(cfg->queue, CONFIG_MAX_QUEUE);
	cr_assert_eq(cfg->timeout_ms, CONFIG_MAX_TIMEOUT_MS);
	cr_assert_eq(cfg->max_body, CONFIG_MAX_BODY);
	cr_assert_eq(cfg->drain_ms, CONFIG_MAX_TIMEOUT_MS);
	cr_assert_eq(config_hook_timeout(cfg, "h"), 1);
	config_free(cfg);

	cfg = parse_ok("{" REQ ", \"workers\": 1, \"queue\": 1, \"timeout_ms\": 1, "
		       "\"max_body\": 2, \"drain_ms\": 0}");
	cr_assert_eq(cfg->workers, 1);
	cr_assert_eq(cfg->queue, 1);
	cr_assert_eq(cfg->timeout_ms, 1);
	cr_assert_eq(cfg->max_body, 2);
	cr_assert_eq(cfg->drain_ms, 0);
	config_free(cfg);

	/* 1024 workers: the default queue is capped by CONFIG_MAX_QUEUE only
	 * beyond 15625 workers, so here it is the plain product */
	cfg = parse_ok("{" REQ ", \"workers\": 1024}");
	cr_assert_eq(cfg->queue, 65536);
	config_free(cfg);
}

Test(config, unknown_top_level_key_is_an_error)
{
	expect_error("{" REQ ", \"lisen\": \"127.0.0.1:1\"}", "lisen", "unknown key");
	expect_error("{\"workerz\": 4, " REQ "}", "workerz", "unknown key");
}

Test(config, unknown_key_inside_a_hook_names_the_hook)
{
	expect_error("{" REQ ", \"hooks\": {\"mixed\": {\"chian\": [\"a\"]}}}", "hooks.mixed.chian",
		     "unknown key");
	expect_error("{" REQ ", \"hooks\": {\"a\": {}, \"b\": {\"timeout\": 5}}}", "hooks.b.timeout",
		     "unknown key");
}

struct bad_case {
	const char *members; /* appended after REQ */
	const char *key;
	const char *what;
};

static void expect_errors(const struct bad_case *c, size_t n)
{
	char text[1024];

	for (size_t i = 0; i < n; i++) {
		snprintf(text, sizeof(text), "{" REQ ", %s}", c[i].members);
		expect_error(text, c[i].key, c[i].what);
	}
}

Test(config, wrong_types_name_the_key_and_the_type)
{
	static const struct bad_case cases[] = {
		{"\"workers\": \"4\"", "workers", "expected an integer between 1 and 1024, got a string"},
		{"\"queue\": true", "queue", "got a boolean"},
		{"\"timeout_ms\": null", "timeout_ms", "got null"},
		{"\"max_body\": [1]", "max_body", "got an array"},
		{"\"drain_ms\": {}", "drain_ms", "got an object"},
		{"\"runtime_dir\": 5", "runtime_dir", "expected a string, got a number"},
		{"\"log_level\": 3", "log_level", "\"error\", \"warn\", \"info\", \"debug\""},
		{"\"log_level\": \"verbose\"", "log_level", "\"debug\""},
		{"\"hooks\": []", "hooks", "expected an object"},
		{"\"hooks\": {\"h\": 5}", "hooks.h", "expected an object, got a number"},
		{"\"hooks\": {\"h\": {\"timeout_ms\": \"5\"}}", "hooks.h.timeout_ms",
		 "expected an integer between 1 and 3600000, got a string"},
		{"\"plugins\": \"tag\"", "plugins", "expected an object"},
		{"\"runtime_dir\": \"\"", "runtime_dir", "must not be empty"},
	};

	expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
	/* the required keys themselves */
	expect_error("{\"listen\": 8080, \"plugin_dir\": \"/p\"}", "listen",
		     "expected a string, got a number");
	expect_error("{\"listen\": \"127.0.0.1:1\", \"plugin_dir\": [\"/p\"]}", "plugin_dir",
		     "expected a string, got an array");
	expect_error("{\"listen\": \"127.0.0.1:1\", \"plugin_dir\": \"\"}", "plugin_dir",
		     "must not be empty");
}

Test(config, out_of_range_integers_are_refused)
{
	static const struct bad_case cases[] = {
		{"\"workers\": 0", "workers", "between 1 and 1024, got 0"},
		{"\"workers\": 1025", "workers", "got 1025"},
		{"\"workers\": -1", "workers", "got -1"},
		{"\"queue\": 0", "queue", "between 1 and 1000000"},
		{"\"queue\": 1000001", "queue", "got 1000001"},
		{"\"timeout_ms\": 0", "timeout_ms", "between 1 and 3600000"},
		{"\"timeout_ms\": 3600001", "timeout_ms", "got 3600001"},
		{"\"max_body\": 1", "max_body", "between 2 and 1073741824"},
		{"\"max_body\": 1073741825", "max_body", "got 1073741825"},
		{"\"drain_ms\": -1", "drain_ms", "between 0 and 3600000"},
		{"\"drain_ms\": 1e300", "drain_ms", "between 0 and 3600000"},
		{"\"hooks\": {\"h\": {\"timeout_ms\": 0}}", "hooks.h.timeout_ms", "got 0"},
		{"\"hooks\": {\"h\": {\"timeout_ms\": 3600001}}", "hooks.h.timeout_ms", "got 3600001"},
	};

	expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, non_integral_numbers_are_refused)
{
	static const struct bad_case cases[] = {
		{"\"workers\": 1.5", "workers", "got 1.5"},
		{"\"queue\": 10.25", "queue", "got 10.25"},
		{"\"timeout_ms\": 1e-3", "timeout_ms", "got 0.001"},
		{"\"drain_ms\": 0.5", "drain_ms", "got 0.5"},
		{"\"hooks\": {\"h\": {\"timeout_ms\": 99.9}}", "hooks.h.timeout_ms", "got 99.9"},
	};

	expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, listen_forms_that_are_accepted)
{
	static const struct {
		const char *listen, *host;
		unsigned port;
	} ok[] = {
		{"127.0.0.1:8080", "127.0.0.1", 8080},
		{"[::1]:80", "::1", 80},
		{"[fe80::1%eth0]:443", "fe80::1%eth0", 443},
		{"localhost:0", "localhost", 0},
		{"0.0.0.0:65535", "0.0.0.0", 65535},
	};
	char text[256];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct config *cfg;
		snprintf(text, sizeof(text), "{\"listen\": \"%s\", \"plugin_dir\": \"/p\"}",
			 ok[i].listen);
		cfg = parse_ok(text);
		cr_assert_str_eq(cfg->listen, ok[i].listen);
		cr_assert_str_eq(cfg->listen_host, ok[i].host, "%s", ok[i].listen);
		cr_assert_eq(cfg->listen_port, ok[i].port, "%s", ok[i].listen);
		config_free(cfg);
	}
}

Test(config, listen_forms_that_are_refused_name_the_value)
{
	static const char *const bad[] = {
		"127.0.0.1",       /* no port */
		"127.0.0.1:",      /* empty port */
		":8080",           /* no host */
		"127.0.0.1:70000", /* port out of range */
		"127.0.0.1:65536",
		"127.0.0.1:-1",
		"127.0.0.1:80x",
		"127.0.0.1: 80",   /* strtol would skip the blank */
		"127.0.0.1:+80",   /* and take the sign */
		"127.0.0.1:-0",
		"::1:80",          /* bare IPv6 needs brackets */
		"::1",
		"[::1]",           /* bracketed, no port */
		"[]:80",           /* empty bracketed host */
		"[::1:80",         /* unclosed bracket */
	};
	char text[256], what[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "{\"listen\": \"%s\", \"plugin_dir\": \"/p\"}", bad[i]);
		snprintf(what, sizeof(what), "got \"%s\"", bad[i]);
		expect_error(text, "listen", what);
	}
}

Test(config, required_keys_missing)
{
	expect_error("{\"plugin_dir\": \"/p\"}", "listen", "missing");
	expect_error("{\"listen\": \"127.0.0.1:1\"}", "plugin_dir", "missing");
	expect_error("{}", "listen", "missing");
}

Test(config, chain_errors_name_the_chain_and_the_index)
{
	static const struct bad_case cases[] = {
		{"\"hooks\": {\"mixed\": {\"chain\": []}}", "hooks.mixed.chain",
		 "must name at least one plugin"},
		{"\"hooks\": {\"mixed\": {\"chain\": \"tag\"}}", "hooks.mixed.chain",
		 "expected an array of plugin names, got a string"},
		{"\"hooks\": {\"mixed\": {\"chain\": {\"a\": 1}}}", "hooks.mixed.chain",
		 "got an object"},
		{"\"hooks\": {\"mixed\": {\"chain\": [\"tag\", \"bad name\"]}}", "hooks.mixed.chain[1]",
		 "\"bad name\" is not a valid plugin name"},
		{"\"hooks\": {\"mixed\": {\"chain\": [\"tag\", \"echo\", \"../x\"]}}",
		 "hooks.mixed.chain[2]", "not a valid plugin name"},
		{"\"hooks\": {\"mixed\": {\"chain\": [\"tag\", 5]}}", "hooks.mixed.chain[1]",
		 "expected a string, got a number"},
		{"\"hooks\": {\"mixed\": {\"chain\": [\"\"]}}", "hooks.mixed.chain[0]",
		 "must not be empty"},
		{"\"hooks\": {\"mixed\": {\"chain\": [\"tag\", "
		 "\"a12345678901234567890123456789012345678901234567890123456789012345\"]}}",
		 "hooks.mixed.chain[1]", "not a valid plugin name"},
	};

	expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, names_of_64_characters_are_valid)
{
	/* 64 characters: the longest valid name */
	struct config *cfg = parse_ok(
		"{" REQ ", \"hooks\": {\"h\": {\"chain\": "
		"[\"a123456789012345678901234567890123456789012345678901234567890123\"]}}}");

	cr_assert_eq(strlen(cfg->hooks[0].chain[0]), 64);
	config_free(cfg);
}

Test(config, invalid_hook_and_plugin_names)
{
	expect_error("{" REQ ", \"hooks\": {\"bad hook\": {}}}", "hooks.bad hook",
		     "a hook name is 1-64 characters");
	expect_error("{" REQ ", \"hooks\": {\"\": {}}}", "hooks.", "a hook name is");
	expect_error("{" REQ ", \"plugins\": {\"a/b\": {}}}", "plugins.a/b",
		     "a plugin name is 1-64 characters");
}

Test(config, a_hook_defined_twice_is_an_error)
{
	expect_error("{" REQ ", \"hooks\": {\"a\": {}, \"b\": {}, \"a\": {\"timeout_ms\": 5}}}",
		     "hooks.a", "defined twice");
}

Test(config, plugins_section_errors)
{
	expect_error("{" REQ ", \"plugins\": {\"tag\": \"sync step\"}}", "plugins.tag",
		     "expected an object, got a string");
	expect_error("{" REQ ", \"plugins\": {\"tag\": {}, \"echo\": [1]}}", "plugins.echo",
		     "expected an object, got an array");
	expect_error("{" REQ ", \"plugins\": {\"tag\": {}, \"tag\": {\"label\": \"x\"}}}",
		     "plugins.tag", "defined twice");
}

/* plugins.<name>.fetch is the host's (outbound-HTTP limits): validated at
 * config-load time, strictly, naming the whole key path; the rest of the
 * section stays the plugin's own business. */
Test(config, plugin_fetch_limits_are_parsed)
{
	struct config *cfg = parse_ok(
		"{" REQ ", \"plugins\": {\"a\": {\"fetch\": {\"concurrency\": 3, \"rate\": 2.5, "
		"\"burst\": 4, \"max_response\": 1000}, \"own\": {\"fetch\": 1}}, \"b\": {}}}");
	const struct config_fetch *f = config_plugin_fetch(cfg, "a");

	cr_assert_eq(f->concurrency, 3);
	cr_assert_float_eq(f->rate, 2.5, 1e-9);
	cr_assert_float_eq(f->burst, 4, 1e-9);
	cr_assert_eq(f->max_response, 1000);
	f = config_plugin_fetch(cfg, "b");
	cr_assert(f->concurrency == 0 && f->rate == 0 && f->burst == 0 && f->max_response == 0);
	f = config_plugin_fetch(cfg, "nobody");
	cr_assert(f->concurrency == 0 && f->rate == 0 && f->max_response == 0);
	/* the plugin still gets its whole section, "fetch" included */
	cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(config_plugin_section(cfg, "a"),
							    "fetch"));
	config_free(cfg);
	cfg = parse_ok("{" REQ ", \"plugins\": {\"a\": {\"fetch\": {\"concurrency\": 0, "
		       "\"rate\": 0}}}}");
	cr_assert_eq(config_plugin_fetch(cfg, "a")->rate, 0, "0: unlimited");
	config_free(cfg);
}

Test(config, plugin_fetch_errors_name_the_key_path)
{
	expect_error("{" REQ ", \"plugins\": {\"fanout\": {\"fetch\": {\"concurency\": 3}}}}",
		     "plugins.fanout.fetch.concurency", "unknown key");
	expect_error("{" REQ ", \"plugins\": {\"fanout\": {\"fetch\": 3}}}",
		     "plugins.fanout.fetch", "expected an object");
	expect_error("{" REQ ", \"plugins\": {\"f\": {\"fetch\": {\"concurrency\": \"3\"}}}}",
		     "plugins.f.fetch.concurrency", "got a string");
	expect_error("{" REQ ", \"plugins\": {\"f\": {\"fetch\": {\"concurrency\": 1.5}}}}",
		     "plugins.f.fetch.concurrency", "expected an integer");
	expect_error("{" REQ ", \"plugins\": {\"f\": {\"fetch\": {\"rate\": true}}}}",
		     "plugins.f.fetch.rate", "got a boolean");
	expect_error("{" REQ ", \"plugins\": {\"f\": {\"fetch\": {\"rate\": 0.001}}}}",
		     "plugins.f.fetch.rate", "got 0.001");
	expect_error("{" REQ ", \"plugins\": {\"f\": {\"fetch\": {\"burst\": 0}}}}",
		     "plugins.f.fetch.burst", "between 1 and");
	expect_error("{" REQ ", \"plugins\": {\"f\": {\"fetch\": {\"max_response\": 0}}}}",
		     "plugins.f.fetch.max_response", "between 1 and");
	expect_error("{" REQ ", \"plugins\": {\"f\": {\"fetch\": {\"rate\": 1, \"rate\": 2}}}}",
		     "plugins.f.fetch.rate", "defined twice");
	expect_error("{" REQ ", \"plugins\": {\"f\": {\"fetch\": {}, \"fetch\": {}}}}",
		     "plugins.f.fetch", "defined twice");
}

/* cJSON keeps duplicate members; a key given twice must be an error, not a
 * silent overwrite (before the fix: "hooks" twice overran the first hooks
 * array and crashed; "listen"/"chain" twice leaked the first value). */
Test(config, a_key_given_twice_is_an_error)
{
	expect_error("{" REQ ", \"hooks\": {\"a\": {}, \"b\": {}}, \"hooks\": {\"c\": {}}}", "hooks",
		     "defined twice");
	expect_error("{" REQ ", \"listen\": \"127.0.0.1:2\"}", "listen", "defined twice");
	expect_error("{" REQ ", \"plugin_dir\": \"/q\"}", "plugin_dir", "defined twice");
	expect_error("{" REQ ", \"workers\": 2, \"workers\": 3}", "workers", "defined twice");
	expect_error("{" REQ ", \"plugins\": {}, \"plugins\": {}}", "plugins", "defined twice");
	expect_error("{" REQ ", \"hooks\": {\"h\": {\"chain\": [\"a\"], \"chain\": [\"b\", \"c\"]}}}",
		     "hooks.h.chain", "defined twice");
	expect_error("{" REQ ", \"hooks\": {\"h\": {\"timeout_ms\": 1, \"timeout_ms\": 2}}}",
		     "hooks.h.timeout_ms", "defined twice");
}

Test(config, malformed_json_gives_line_and_column)
{
	/* the error is in "oops", on line 3 (the column is cJSON's offset) */
	expect_error("{\n  \"listen\": \"127.0.0.1:1\",\n  oops\n}", NULL, "(line 3, column ");
	expect_error("{\"listen\": \"127.0.0.1:1\", \"plugin_dir\": \"/p\"} x", NULL,
		     "unexpected data after the value");
	expect_error("{\"listen\": \"\xc3\x28\"}", NULL, "UTF-8");
	expect_error("", NULL, "empty");
}

Test(config, the_top_level_must_be_an_object)
{
	expect_error("[{" REQ "}]", NULL, "expected a JSON object at the top, got an array");
	expect_error("\"listen\"", NULL, "got a string");
	expect_error("42", NULL, "got a number");
	expect_error("null", NULL, "got null");
}

Test(config, relative_plugin_dir_resolves_against_the_config_file)
{
	static const struct {
		const char *path, *dir, *want;
	} cases[] = {
		{"/etc/hookd/hookd.json", "plugins", "/etc/hookd/plugins"},
		{"/etc/hookd/hookd.json", "../lib/p", "/etc/hookd/../lib/p"},
		{"/etc/hookd/hookd.json", "/opt/p", "/opt/p"},
		{"conf/sub/hookd.json", "plugins", "conf/sub/plugins"},
		{"conf/sub/hookd.json", "/abs", "/abs"},
		{"hookd.json", "plugins", "plugins"}, /* the file is in the cwd */
		{"/hookd.json", "plugins", "/plugins"},
	};
	char text[256], err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cfg;
		snprintf(text, sizeof(text), "{\"listen\": \"127.0.0.1:1\", \"plugin_dir\": \"%s\"}",
			 cases[i].dir);
		cr_assert_eq(config_parse(text, strlen(text), cases[i].path, &cfg, err, sizeof(err)),
			     0, "%s", err);
		cr_assert_str_eq(cfg->plugin_dir, cases[i].want, "%s + %s", cases[i].path,
				 cases[i].dir);
		cr_assert_str_eq(cfg->path, cases[i].path);
		config_free(cfg);
	}
}

Test(config, find_hook_timeout_and_plugin_section)
{
	struct config *cfg = parse_ok(
		"{" REQ ", \"timeout_ms\": 777, \"hooks\": {"
		"\"zeta\": {\"timeout_ms\": 50}, \"mid\": {\"chain\": [\"b\", \"a\"]}, "
		"\"alpha\": {\"timeout_ms\": 9, \"chain\": [\"x\"]}}, "
		"\"plugins\": {\"tag\": {\"label\": \"L\", \"deep\": {\"k\": [true]}}, \"other\": {}}}");
	const struct config_hook *h;
	const cJSON *sec;

	h = config_find_hook(cfg, "mid");
	cr_assert_not_null(h);
	cr_assert_str_eq(h->name, "mid");
	cr_assert_eq(h->nchain, 2);
	cr_assert_str_eq(h->chain[0], "b");
	cr_assert_str_eq(h->chain[1], "a");
	cr_assert_eq(h->timeout_ms, 0);
	h = config_find_hook(cfg, "alpha");
	cr_assert_not_null(h);
	cr_assert_str_eq(h->chain[0], "x");
	cr_assert_not_null(config_find_hook(cfg, "zeta"));
	cr_assert_null(config_find_hook(cfg, "beta"));
	cr_assert_null(config_find_hook(cfg, "zet"));
	cr_assert_null(config_find_hook(cfg, ""));

	cr_assert_eq(config_hook_timeout(cfg, "zeta"), 50);
	cr_assert_eq(config_hook_timeout(cfg, "alpha"), 9);
	cr_assert_eq(config_hook_timeout(cfg, "mid"), 777, "no own timeout: the global one");
	cr_assert_eq(config_hook_timeout(cfg, "unknown"), 777);

	sec = config_plugin_section(cfg, "tag");
	cr_assert(cJSON_IsObject(sec));
	cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(sec, "label")->valuestring, "L");
	cr_assert(cJSON_IsTrue(cJSON_GetArrayItem(
		cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sec, "deep"), "k"),
		0)));
	cr_assert(cJSON_IsObject(config_plugin_section(cfg, "other")));
	cr_assert_null(config_plugin_section(cfg, "echo"));
	cr_assert_null(config_plugin_section(cfg, "Tag"), "names are case-sensitive");
	config_free(cfg);
}

Test(config, the_config_keeps_no_pointer_into_the_text)
{
	char *text = strdup("{" REQ ", \"hooks\": {\"h\": {\"chain\": [\"p\"]}}, "
			    "\"plugins\": {\"p\": {\"k\": \"v\"}}}");
	struct config *cfg = parse_ok(text);

	memset(text, 'x', strlen(text));
	free(text);
	cr_assert_str_eq(cfg->listen, "127.0.0.1:8080");
	cr_assert_str_eq(config_find_hook(cfg, "h")->chain[0], "p");
	cr_assert_str_eq(
		cJSON_GetObjectItemCaseSensitive(config_plugin_section(cfg, "p"), "k")->valuestring,
		"v");
	config_free(cfg);
}

Test(config, text_need_not_be_nul_terminated)
{
	const char *src = "{" REQ "}";
	size_t n = strlen(src);
	char *text = malloc(n); /* exactly n bytes: ASan catches a read past them */
	struct config *cfg;
	char err[256];

	memcpy(text, src, n);
	cr_assert_eq(config_parse(text, n, CFG_PATH, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(cfg->plugin_dir, "/opt/plugins");
	config_free(cfg);
	free(text);
}

Test(config, a_small_error_buffer_is_truncated_not_overrun)
{
	char err[24];
	struct config *cfg;

	memset(err, 'Z', sizeof(err));
	cr_assert_eq(config_parse("{}", 2, CFG_PATH, &cfg, err, 16), -1);
	cr_assert_eq(err[15], '\0', "NUL-terminated within errlen");
	cr_assert_eq(strlen(err), 15);
	cr_assert_eq(strncmp(err, CFG_PATH, 15), 0);
	cr_assert_eq(err[16], 'Z', "nothing written past errlen");
}

Test(config, load_reads_the_file_and_resolves_against_its_directory)
{
	char dir[256], sub[300], path[400], err[512];
	struct config *cfg;

	u_tmpdir(dir, sizeof(dir));
	snprintf(sub, sizeof(sub), "%s/etc", dir);
	cr_assert_eq(mkdir(sub, 0700), 0);
	snprintf(path, sizeof(path), "%s/hookd.json", sub);
	u_write_file(path, "{\n  \"listen\": \"[::1]:8080\",\n  \"plugin_dir\": \"../plugins\",\n"
			   "  \"hooks\": {\"h\": {\"timeout_ms\": 3}}\n}\n");
	cr_assert_eq(config_load(path, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(cfg->path, path);
	cr_assert_str_eq(cfg->listen_host, "::1");
	cr_assert_eq(cfg->listen_port, 8080);
	{
		char want[400];
		snprintf(want, sizeof(want), "%s/../plugins", sub);
		cr_assert_str_eq(cfg->plugin_dir, want);
	}
	cr_assert_eq(config_hook_timeout(cfg, "h"), 3);
	config_free(cfg);

	/* errors in a loaded file name it, with line and column */
	u_write_file(path, "{\n  \"listen\": \"127.0.0.1:1\",\n  \"plugin_dir\": \"p\",\n"
			   "  \"hooks\": {\"h\": {\"chain\": [\"ok\", \"not ok\"]}}\n}\n");
	cr_assert_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	cr_assert_null(cfg);
	cr_assert_eq(strncmp(err, path, strlen(path)), 0, "%s", err);
	cr_assert_not_null(strstr(err, "hooks.h.chain[1]"), "%s", err);
	u_write_file(path, "{\n\n   ]");
	cr_assert_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "line 3, column 4"), "%s", err);
	cr_assert_eq(strncmp(err, path, strlen(path)), 0, "%s", err);
	u_rmtree(dir);
}

Test(config, load_of_a_missing_file_names_it)
{
	char dir[256], path[300], err[512];
	struct config *cfg = (struct config *)1;

	u_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/nope.json", dir);
	cr_assert_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	cr_assert_null(cfg);
	cr_assert_eq(strncmp(err, path, strlen(path)), 0, "%s", err);
	cr_assert_not_null(strstr(err, "cannot open"), "%s", err);
	cr_assert_not_null(strstr(err, "No such file"), "%s", err);

	/* a directory is not a config file */
	cr_assert_eq(config_load(dir, &cfg, err, sizeof(err)), -1);
	cr_assert_eq(strncmp(err, dir, strlen(dir)), 0, "%s", err);
	cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
	u_rmtree(dir);
}

/* admin_listen: HOST:PORT (IPv6 in brackets) or unix:PATH (relative to
 * the config file); pid_file relative to the config file;
 * plugins.<name>.max_in_flight. */
Test(config, operations_keys)
{
	struct config *cfg = parse_ok("{" REQ ", \"admin_listen\": \"[::1]:9901\", "
				      "\"pid_file\": \"run/hookd.pid\", "
				      "\"plugins\": {\"echo\": {\"max_in_flight\": 8}}}");
	cr_assert_str_eq(cfg->admin_host, "::1");
	cr_assert_eq(cfg->admin_port, 9901);
	cr_assert_null(cfg->admin_unix);
	cr_assert_str_eq(cfg->pid_file, "/srv/hookd/run/hookd.pid");
	cr_assert_eq(config_plugin_settings(cfg, "echo")->max_in_flight, 8);
	config_free(cfg);

	cfg = parse_ok("{" REQ ", \"admin_listen\": \"unix:admin.sock\"}");
	cr_assert_str_eq(cfg->admin_unix, "/srv/hookd/admin.sock");
	cr_assert_null(cfg->admin_host);
	cr_assert_null(cfg->pid_file);
	config_free(cfg);

	cfg = parse_ok("{" REQ ", \"admin_listen\": \"unix:/run/hookd/admin.sock\"}");
	cr_assert_str_eq(cfg->admin_unix, "/run/hookd/admin.sock");
	config_free(cfg);

	expect_error("{" REQ ", \"admin_listen\": \"localhost\"}", "admin_listen", "HOST:PORT");
	expect_error("{" REQ ", \"admin_listen\": \"unix:\"}", "admin_listen", "unix:PATH");
	expect_error("{" REQ ", \"admin_listen\": 9901}", "admin_listen", "string");
	expect_error("{" REQ ", \"pid_file\": 1}", "pid_file", "string");
	expect_error("{" REQ ", \"plugins\": {\"echo\": {\"max_in_flight\": 0}}}",
		     "plugins.echo.max_in_flight", "between");
	expect_error("{" REQ ", \"plugins\": {\"echo\": {\"max_in_flight\": true}}}",
		     "plugins.echo.max_in_flight", "");
}

Test(config, access_log_keys)
{
	struct config *cfg = parse_ok("{" REQ "}");

	cr_assert_null(cfg->access_log, "off by default");
	cr_assert_eq(cfg->access_log_json, 0);
	config_free(cfg);
	cfg = parse_ok("{" REQ ", \"access_log\": \"logs/access.log\", "
		       "\"access_log_format\": \"json\"}");
	cr_assert_str_eq(cfg->access_log, "/srv/hookd/logs/access.log", "relative to the file");
	cr_assert_eq(cfg->access_log_json, 1);
	config_free(cfg);
	cfg = parse_ok("{" REQ ", \"access_log\": \"/var/log/hookd/a.log\", "
		       "\"access_log_format\": \"text\"}");
	cr_assert_str_eq(cfg->access_log, "/var/log/hookd/a.log");
	cr_assert_eq(cfg->access_log_json, 0);
	config_free(cfg);
	cfg = parse_ok("{" REQ ", \"access_log\": \"-\"}");
	cr_assert_str_eq(cfg->access_log, "-", "stderr");
	config_free(cfg);
	cfg = parse_ok("{" REQ ", \"access_log\": \"off\"}");
	cr_assert_null(cfg->access_log);
	config_free(cfg);
	expect_error("{" REQ ", \"access_log\": true}", "access_log", "expected a string");
	expect_error("{" REQ ", \"access_log\": \"\"}", "access_log", "must not be empty");
	expect_error("{" REQ ", \"access_log_format\": \"xml\"}", "access_log_format",
		     "\"text\" or \"json\"");
	expect_error("{" REQ ", \"access_log_format\": 1}", "access_log_format", "\"json\"");
	expect_error("{" REQ ", \"access_log\": \"a\", \"access_log\": \"b\"}", "access_log",
		     "defined twice");
}

/* ---- issue 11: per-hook phases, accept, max_body, dedup ----------------- */

Test(config, hook_phases_accept_max_body_and_dedup_are_parsed)
{
	struct config *cfg = parse_ok(
		"{" REQ ", \"hooks\": {\"gh\": {\"chain\": [\"github\"], "
		"\"on_error\": [\"recover\", \"alert\"], \"after\": [\"audit\"], "
		"\"after_timeout_ms\": 250, \"max_body\": 65536, \"accept\": [\"json\", \"form\"], "
		"\"dedup\": {\"header\": \"X-GitHub-Delivery\", \"ttl_s\": 600, "
		"\"max_entries\": 50, \"max_bytes\": 0}}, "
		"\"stripe\": {\"accept\": \"raw\", \"dedup\": {\"json_pointer\": \"/id\"}}}}");
	const struct config_hook *gh = config_find_hook(cfg, "gh");
	const struct config_hook *st = config_find_hook(cfg, "stripe");

	cr_assert_not_null(gh);
	cr_assert_eq(gh->non_error, 2);
	cr_assert_str_eq(gh->on_error[0], "recover");
	cr_assert_str_eq(gh->on_error[1], "alert");
	cr_assert_eq(gh->nafter, 1);
	cr_assert_str_eq(gh->after[0], "audit");
	cr_assert_eq(gh->after_timeout_ms, 250);
	cr_assert_eq(gh->max_body, 65536);
	cr_assert_eq(gh->accept, CONFIG_ACCEPT_JSON | CONFIG_ACCEPT_FORM);
	cr_assert_not_null(gh->dedup);
	cr_assert_str_eq(gh->dedup->header, "X-GitHub-Delivery");
	cr_assert_null(gh->dedup->pointer);
	cr_assert_eq(gh->dedup->ttl_s, 600);
	cr_assert_eq(gh->dedup->max_entries, 50);
	cr_assert_eq(gh->dedup->max_bytes, 0);

	cr_assert_not_null(st);
	cr_assert_eq(st->accept, CONFIG_ACCEPT_RAW);
	cr_assert_null(st->dedup->header);
	cr_assert_str_eq(st->dedup->pointer, "/id");
	/* dedup defaults */
	cr_assert_eq(st->dedup->ttl_s, 86400);
	cr_assert_eq(st->dedup->max_entries, 10000);
	cr_assert_eq(st->dedup->max_bytes, 16u << 20);
	/* phase defaults */
	cr_assert_null(st->on_error);
	cr_assert_eq(st->non_error, 0);
	cr_assert_null(st->after);
	cr_assert_eq(st->nafter, 0);
	cr_assert_eq(st->after_timeout_ms, 5000);
	cr_assert_eq(st->max_body, 0, "0: the global max_body");
	config_free(cfg);
}

Test(config, a_hook_without_the_new_keys_keeps_the_old_behaviour)
{
	struct config *cfg = parse_ok("{" REQ ", \"hooks\": {\"h\": {}}}");
	const struct config_hook *h = config_find_hook(cfg, "h");

	cr_assert_eq(h->accept, 0, "0: JSON, as before the key existed");
	cr_assert_null(h->dedup);
	cr_assert_eq(h->max_body, 0);
	cr_assert_eq(h->after_timeout_ms, 5000);
	cr_assert_eq(h->non_error, 0);
	cr_assert_eq(h->nafter, 0);
	config_free(cfg);
}

Test(config, accept_every_form)
{
	static const struct {
		const char *value;
		unsigned bits;
	} ok[] = {
		{"\"json\"", CONFIG_ACCEPT_JSON},
		{"\"form\"", CONFIG_ACCEPT_FORM},
		{"\"raw\"", CONFIG_ACCEPT_RAW},
		{"[\"raw\", \"json\"]", CONFIG_ACCEPT_RAW | CONFIG_ACCEPT_JSON},
		{"[\"json\", \"form\", \"raw\"]",
		 CONFIG_ACCEPT_JSON | CONFIG_ACCEPT_FORM | CONFIG_ACCEPT_RAW},
		{"[\"form\"]", CONFIG_ACCEPT_FORM},
	};
	char text[512];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct config *cfg;
		snprintf(text, sizeof(text), "{" REQ ", \"hooks\": {\"x\": {\"accept\": %s}}}",
			 ok[i].value);
		cfg = parse_ok(text);
		cr_assert_eq(cfg->hooks[0].accept, ok[i].bits, "%s", ok[i].value);
		config_free(cfg);
	}
}

Test(config, accept_errors_name_the_key)
{
	static const struct bad_case cases[] = {
		{"\"hooks\": {\"x\": {\"accept\": \"xml\"}}", "hooks.x.accept",
		 "expected \"json\", \"form\" or \"raw\" (or an array of them), got \"xml\""},
		{"\"hooks\": {\"x\": {\"accept\": \"JSON\"}}", "hooks.x.accept", "got \"JSON\""},
		{"\"hooks\": {\"x\": {\"accept\": 1}}", "hooks.x.accept", "got a number"},
		{"\"hooks\": {\"x\": {\"accept\": {}}}", "hooks.x.accept", "got an object"},
		{"\"hooks\": {\"x\": {\"accept\": null}}", "hooks.x.accept", "got null"},
		{"\"hooks\": {\"x\": {\"accept\": []}}", "hooks.x.accept",
		 "must name at least one of"},
		{"\"hooks\": {\"x\": {\"accept\": [\"json\", \"yaml\"]}}", "hooks.x.accept",
		 "got \"yaml\""},
		{"\"hooks\": {\"x\": {\"accept\": [\"json\", 2]}}", "hooks.x.accept", "got a number"},
		{"\"hooks\": {\"x\": {\"accept\": [[\"json\"]]}}", "hooks.x.accept", "got an array"},
		{"\"hooks\": {\"x\": {\"accept\": \"raw\", \"accept\": \"json\"}}", "hooks.x.accept",
		 "defined twice"},
	};

	expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, phase_lists_errors_name_the_key_and_the_index)
{
	static const struct bad_case cases[] = {
		{"\"hooks\": {\"x\": {\"on_error\": []}}", "hooks.x.on_error",
		 "must name at least one plugin"},
		{"\"hooks\": {\"x\": {\"on_error\": \"recover\"}}", "hooks.x.on_error",
		 "expected an array of plugin names, got a string"},
		{"\"hooks\": {\"x\": {\"on_error\": [\"recover\", \"bad name\"]}}",
		 "hooks.x.on_error[1]", "\"bad name\" is not a valid plugin name"},
		{"\"hooks\": {\"x\": {\"on_error\": [3]}}", "hooks.x.on_error[0]",
		 "expected a string, got a number"},
		{"\"hooks\": {\"x\": {\"on_error\": [\"\"]}}", "hooks.x.on_error[0]",
		 "must not be empty"},
		{"\"hooks\": {\"x\": {\"after\": []}}", "hooks.x.after", "must name at least one"},
		{"\"hooks\": {\"x\": {\"after\": {\"audit\": 1}}}", "hooks.x.after", "got an object"},
		{"\"hooks\": {\"x\": {\"after\": [\"audit\", \"../x\"]}}", "hooks.x.after[1]",
		 "not a valid plugin name"},
		{"\"hooks\": {\"x\": {\"after\": [\"a\"], \"after\": [\"b\"]}}", "hooks.x.after",
		 "defined twice"},
		{"\"hooks\": {\"x\": {\"on_error\": [\"a\"], \"on_error\": [\"b\"]}}",
		 "hooks.x.on_error", "defined twice"},
	};

	expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, after_timeout_ms_and_max_body_ranges)
{
	static const struct bad_case cases[] = {
		{"\"hooks\": {\"x\": {\"after_timeout_ms\": 0}}", "hooks.x.after_timeout_ms",
		 "expected an integer between 1 and 3600000, got 0"},
		{"\"hooks\": {\"x\": {\"after_timeout_ms\": 3600001}}", "hooks.x.after_timeout_ms",
		 "got 3600001"},
		{"\"hooks\": {\"x\": {\"after_timeout_ms\": 1.5}}", "hooks.x.after_timeout_ms",
		 "got 1.5"},
		{"\"hooks\": {\"x\": {\"after_timeout_ms\": \"5\"}}", "hooks.x.after_timeout_ms",
		 "got a string"},
		{"\"hooks\": {\"x\": {\"max_body\": 0}}", "hooks.x.max_body",
		 "expected an integer between 1 and 1073741824, got 0"},
		{"\"hooks\": {\"x\": {\"max_body\": 1073741825}}", "hooks.x.max_body",
		 "got 1073741825"},
		{"\"hooks\": {\"x\": {\"max_body\": -1}}", "hooks.x.max_body", "got -1"},
		{"\"hooks\": {\"x\": {\"max_body\": true}}", "hooks.x.max_body", "got a boolean"},
	};
	struct config *cfg;

	expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
	cfg = parse_ok("{" REQ ", \"hooks\": {\"x\": {\"after_timeout_ms\": 1, \"max_body\": 1}, "
		       "\"y\": {\"after_timeout_ms\": 3600000, \"max_body\": 1073741824}}}");
	cr_assert_eq(config_find_hook(cfg, "x")->after_timeout_ms, 1);
	cr_assert_eq(config_find_hook(cfg, "x")->max_body, 1);
	cr_assert_eq(config_find_hook(cfg, "y")->after_timeout_ms, 3600000);
	cr_assert_eq(config_find_hook(cfg, "y")->max_body, 1073741824);
	config_free(cfg);
}

Test(config, dedup_errors_name_the_key_path)
{
	static const struct bad_case cases[] = {
		{"\"hooks\": {\"x\": {\"dedup\": \"X-GitHub-Delivery\"}}", "hooks.x.dedup",
		 "expected an object"},
		{"\"hooks\": {\"x\": {\"dedup\": {}}}", "hooks.x.dedup",
		 "give exactly one of \"header\" and \"json_pointer\""},
		{"\"hooks\": {\"x\": {\"dedup\": {\"ttl_s\": 60}}}", "hooks.x.dedup",
		 "exactly one of"},
		{"\"hooks\": {\"x\": {\"dedup\": {\"header\": \"a\", \"json_pointer\": \"/id\"}}}",
		 "hooks.x.dedup", "exactly one of"},
		{"\"hooks\": {\"x\": {\"dedup\": {\"header\": \"\"}}}", "hooks.x.dedup.header",
		 "must"},
		{"\"hooks\": {\"x\": {\"dedup\": {\"header\": 5}}}", "hooks.x.dedup.header",
		 "expected a string, got a number"},
		{"\"hooks\": {\"x\": {\"dedup\": {\"json_pointer\": \"id\"}}}",
		 "hooks.x.dedup.json_pointer", "starts with \"/\" (RFC 6901), got \"id\""},
		{"\"hooks\": {\"x\": {\"dedup\": {\"json_pointer\": \"\"}}}",
		 "hooks.x.dedup.json_pointer", "must"},
		{"\"hooks\": {\"x\": {\"dedup\": {\"json_pointer\": \"#/id\"}}}",
		 "hooks.x.dedup.json_pointer", "starts with \"/\""},
		{"\"hooks\": {\"x\": {\"dedup\": {\"header\": \"h\", \"max_entries\": 0}}}",
		 "hooks.x.dedup.max_entries", "expected an integer between 1 and 10000000, got 0"},
		{"\"hooks\": {\"x\": {\"dedup\": {\"header\": \"h\", \"max_entries\": 10000001}}}",
		 "hooks.x.dedup.max_entries", "got 10000001"},
		{"\"hooks\": {\"x\": {\"dedup\": {\"header\": \"h\", \"ttl_s\": 0}}}",
		 "hooks.x.dedup.ttl_s", "between 1 and 2592000, got 0"},
		{"\"hooks\": {\"x\": {\"dedup\": {\"header\": \"h\", \"ttl_s\": 2592001}}}",
		 "hooks.x.dedup.ttl_s", "got 2592001"},
		{"\"hooks\": {\"x\": {\"dedup\": {\"header\": \"h\", \"max_bytes\": -1}}}",
		 "hooks.x.dedup.max_bytes", "got -1"},
		{"\"hooks\": {\"x\": {\"dedup\": {\"header\": \"h\", \"ttl\": 5}}}",
		 "hooks.x.dedup.ttl", "unknown key"},
		{"\"hooks\": {\"x\": {\"dedup\": {\"header\": \"a\", \"header\": \"b\"}}}",
		 "hooks.x.dedup.header", "defined twice"},
		{"\"hooks\": {\"x\": {\"dedup\": {\"header\": \"a\"}, \"dedup\": {\"header\": \"b\"}}}",
		 "hooks.x.dedup", "defined twice"},
	};

	expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

Test(config, max_body_any_is_the_largest_body_any_hook_takes)
{
	struct config *cfg;

	/* no hook overrides: the global */
	cfg = parse_ok("{" REQ ", \"max_body\": 4096, \"hooks\": {\"a\": {}}}");
	cr_assert_eq(cfg->max_body_any, 4096);
	config_free(cfg);
	/* a hook below the global does not lower it */
	cfg = parse_ok("{" REQ ", \"max_body\": 4096, \"hooks\": {\"a\": {\"max_body\": 100}}}");
	cr_assert_eq(cfg->max_body_any, 4096);
	cr_assert_eq(cfg->max_body, 4096);
	config_free(cfg);
	/* the largest hook above it raises it, whatever the order */
	cfg = parse_ok("{" REQ ", \"max_body\": 4096, \"hooks\": {\"z\": {\"max_body\": 70000}, "
		       "\"a\": {\"max_body\": 9000}, \"m\": {}}}");
	cr_assert_eq(cfg->max_body_any, 70000);
	cr_assert_eq(cfg->max_body, 4096, "the global itself is unchanged");
	config_free(cfg);
	/* the default global (1 MiB) */
	cfg = parse_ok("{" REQ ", \"hooks\": {\"a\": {\"max_body\": 2097152}}}");
	cr_assert_eq(cfg->max_body_any, 2097152);
	config_free(cfg);
	cfg = parse_ok("{" REQ "}");
	cr_assert_eq(cfg->max_body_any, 1024 * 1024);
	config_free(cfg);
}

Test(config, http_limits_defaults_and_values)
{
	struct config *cfg = parse_ok("{" REQ "}");

	cr_assert_eq(cfg->http.max_connections, 0, "0: from the open-file limit");
	cr_assert_eq(cfg->http.header_timeout_ms, 10000);
	cr_assert_eq(cfg->http.body_timeout_ms, 30000);
	cr_assert_eq(cfg->http.idle_timeout_ms, 60000);
	cr_assert_eq(cfg->http.send_timeout_ms, 60000);
	cr_assert_eq(cfg->http.max_line, 8192);
	cr_assert_eq(cfg->http.max_header_bytes, 65536);
	cr_assert_eq(cfg->http.max_headers, 100);
	cr_assert_eq(cfg->http.max_inflight_bytes, 256u << 20);
	cr_assert_eq(cfg->http.max_json_values, 200000);
	config_free(cfg);
	cfg = parse_ok("{" REQ ", \"http\": {\"max_connections\": 3, \"header_timeout_ms\": 1, "
		       "\"body_timeout_ms\": 2, \"idle_timeout_ms\": 4, \"send_timeout_ms\": 5, "
		       "\"max_line\": 64, \"max_header_bytes\": 256, \"max_headers\": 1, "
		       "\"max_inflight_bytes\": 17592186044416, \"max_json_values\": 0}}");
	cr_assert_eq(cfg->http.max_connections, 3);
	cr_assert_eq(cfg->http.header_timeout_ms, 1);
	cr_assert_eq(cfg->http.body_timeout_ms, 2);
	cr_assert_eq(cfg->http.idle_timeout_ms, 4);
	cr_assert_eq(cfg->http.send_timeout_ms, 5);
	cr_assert_eq(cfg->http.max_line, 64);
	cr_assert_eq(cfg->http.max_header_bytes, 256);
	cr_assert_eq(cfg->http.max_headers, 1);
	cr_assert_eq(cfg->http.max_inflight_bytes, UINT64_C(1) << 44);
	cr_assert_eq(cfg->http.max_json_values, 0);
	config_free(cfg);
}

Test(config, http_errors_name_the_key)
{
	expect_error("{" REQ ", \"http\": 5}", "http", "expected an object");
	expect_error("{" REQ ", \"http\": {\"max_conns\": 5}}", "http.max_conns", "unknown key");
	expect_error("{" REQ ", \"http\": {\"max_connections\": -1}}", "http.max_connections",
		     "between 0 and");
	expect_error("{" REQ ", \"http\": {\"max_line\": 63}}", "http.max_line", "between 64 and");
	expect_error("{" REQ ", \"http\": {\"header_timeout_ms\": \"1s\"}}",
		     "http.header_timeout_ms", "expected an integer");
	expect_error("{" REQ ", \"http\": {\"max_headers\": 1, \"max_headers\": 2}}",
		     "http.max_headers", "defined twice");
	expect_error("{" REQ ", \"http\": {\"max_inflight_bytes\": 17592186044417}}",
		     "http.max_inflight_bytes", "between 0 and");
}
