/*
 * Secure loading: hookd runs no code that someone other than root or its
 * own user could have put there (a group- or world-writable file or folder,
 * a file owned by another user, a symlink leading out of the plugin
 * folder), records the SHA-256 of every file it loads, and with
 * trusted_sha256 loads only the files listed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../host/config.h"
#include "../../host/loader.h"
#include "../../host/plugin.h"
#include "unit.h"

static struct u_env E;

static void setup(void)
{
	u_env_init(&E);
}

static void teardown(void)
{
	u_env_fini(&E);
}

TestSuite(loader_secure, .init = setup, .fini = teardown, .timeout = 30);

/* Scan with `members` and expect `file` rejected with `why` in the reason. */
static void expect_rejected(const char *members, const char *file, const char *why)
{
	struct config *cfg = u_env_config(&E, members);
	struct loader_result r;
	const struct loader_reject *rj;

	u_env_scan(&E, cfg, NULL, 1, &r);
	rj = u_find_reject(&r, file);
	cr_assert_not_null(rj, "%s was not rejected", file);
	cr_assert(strstr(rj->reason, why), "%s: %s", file, rj->reason);
	cr_assert_null(u_find_plugin(&r, file));
	loader_result_free(&r);
	config_free(cfg);
}

static struct plugin *expect_loaded(const char *members, const char *file, struct loader_result *r,
				    struct config **cfg)
{
	struct plugin *p;

	*cfg = u_env_config(&E, members);
	u_env_scan(&E, *cfg, NULL, 1, r);
	p = u_find_plugin(r, file);
	cr_assert_not_null(p, "%s not loaded: %s", file,
			   r->nrejects ? r->rejects[0].reason : "no reason");
	return p;
}

static void path_of(char *out, size_t len, const char *file)
{
	snprintf(out, len, "%s/%s", E.plugins, file);
}

Test(loader_secure, a_group_or_world_writable_file_is_refused)
{
	char path[512];

	u_env_install(&E, "plugins/echo.so", "echo.so");
	path_of(path, sizeof(path), "echo.so");
	cr_assert_eq(chmod(path, 0666), 0);
	expect_rejected("", "echo.so", "writable by group or others (mode 0666)");
	cr_assert_eq(chmod(path, 0620), 0);
	expect_rejected("", "echo.so", "writable by group or others (mode 0620)");
}

Test(loader_secure, a_writable_plugin_folder_loads_nothing)
{
	u_env_install(&E, "plugins/echo.so", "echo.so");
	cr_assert_eq(chmod(E.plugins, 0777), 0);
	expect_rejected("", "echo.so", "is writable by group or others (mode 0777): refusing to "
				       "load code from it");
	cr_assert_eq(chmod(E.plugins, 0755), 0);
	struct loader_result r;
	struct config *cfg;
	expect_loaded("", "echo.so", &r, &cfg);
	loader_result_free(&r);
	config_free(cfg);
}

Test(loader_secure, a_file_owned_by_another_user_is_refused)
{
	char path[512];

	if (geteuid() != 0)
		cr_skip_test("needs root to give a file away");
	u_env_install(&E, "plugins/echo.so", "echo.so");
	path_of(path, sizeof(path), "echo.so");
	cr_assert_eq(chown(path, 12345, 0), 0, "%s", strerror(errno));
	expect_rejected("", "echo.so", "owned by uid 12345, neither root nor hookd's user");
}

Test(loader_secure, a_symlink_leading_out_of_the_folder_is_refused_one_inside_loads)
{
	char outside[512], link[512], inside[512];
	struct loader_result r;
	struct config *cfg;

	snprintf(outside, sizeof(outside), "%s/elsewhere.so", E.dir);
	u_build_path(inside, sizeof(inside), "plugins/echo.so");
	u_copy_file(inside, outside);
	cr_assert_eq(chmod(outside, 0644), 0);
	path_of(link, sizeof(link), "out.so");
	cr_assert_eq(symlink(outside, link), 0);
	expect_rejected("", "out.so", "a symlink to ");
	expect_rejected("", "out.so", "outside the plugin folder");
	cr_assert_eq(unlink(link), 0);

	/* a link to a file in the folder (a versioned name) is fine */
	u_env_install(&E, "plugins/echo.so", ".echo-1.2.so");
	cr_assert_eq(symlink(".echo-1.2.so", link), 0);
	expect_loaded("", "out.so", &r, &cfg);
	loader_result_free(&r);
	config_free(cfg);
}

/* sha256sum's opinion of `path`. */
static void sha256sum(const char *path, char hex[65])
{
	char cmd[600];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "sha256sum '%s'", path);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%64s", hex), 1);
	pclose(f);
}

Test(loader_secure, every_loaded_file_has_its_sha256_and_trusted_sha256_is_an_allow_list)
{
	char path[512], hex[65], members[256];
	struct loader_result r;
	struct config *cfg;
	struct plugin *p;

	u_env_install(&E, "plugins/echo.so", "echo.so");
	u_env_install(&E, "plugins/tag.so", "tag.so");
	path_of(path, sizeof(path), "echo.so");
	sha256sum(path, hex);
	p = expect_loaded("", "echo.so", &r, &cfg);
	cr_assert_str_eq(p->sha256, hex);
	loader_result_free(&r);
	config_free(cfg);

	/* only echo's digest is trusted (upper case works too) */
	char upper[65];
	for (int i = 0; i < 65; i++)
		upper[i] = (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 32 : hex[i]);
	snprintf(members, sizeof(members), "\"trusted_sha256\": [\"%s\"], ", upper);
	p = expect_loaded(members, "echo.so", &r, &cfg);
	const struct loader_reject *rj = u_find_reject(&r, "tag.so");
	cr_assert_not_null(rj);
	cr_assert(strstr(rj->reason, " is not in trusted_sha256"), "%s", rj->reason);
	loader_result_free(&r);
	config_free(cfg);

	/* an empty list trusts nothing */
	expect_rejected("\"trusted_sha256\": [], ", "echo.so", "is not in trusted_sha256");
}

Test(loader_secure, a_malformed_digest_is_a_config_error_naming_it)
{
	struct config *cfg = NULL;
	char err[512];
	const char *text = "{\"listen\": \"127.0.0.1:0\", \"plugin_dir\": \".\", "
			   "\"trusted_sha256\": [\"abc\"]}";

	cr_assert_eq(config_parse(text, strlen(text), "x.json", &cfg, err, sizeof(err)), -1);
	cr_assert(strstr(err, "trusted_sha256[0]: expected 64 hexadecimal digits"), "%s", err);
}
