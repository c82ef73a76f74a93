/*
 * notify: NOTIFY_SOCKET addresses (path and abstract), WATCHDOG_USEC /
 * WATCHDOG_PID, the RELOADING message, and notify_init taking the
 * variables out of the environment while its messages reach a real socket.
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../host/notify.h"

Test(notify, a_path_address_is_nul_terminated_in_its_length)
{
	struct sockaddr_un a;
	socklen_t len;

	cr_assert_eq(notify_parse_addr("/run/systemd/notify", &a, &len), 0);
	cr_assert_eq(a.sun_family, AF_UNIX);
	cr_assert_str_eq(a.sun_path, "/run/systemd/notify");
	cr_assert_eq(len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/systemd/notify") + 1);
}

Test(notify, an_abstract_address_starts_with_nul_and_has_no_terminator)
{
	struct sockaddr_un a;
	socklen_t len;

	cr_assert_eq(notify_parse_addr("@sd-notify", &a, &len), 0);
	cr_assert_eq(a.sun_path[0], 0);
	cr_assert_eq(memcmp(a.sun_path + 1, "sd-notify", 9), 0);
	cr_assert_eq(len, offsetof(struct sockaddr_un, sun_path) + 10);
}

Test(notify, relative_empty_or_too_long_addresses_are_refused)
{
	struct sockaddr_un a;
	socklen_t len;
	char longp[200];

	memset(longp, 'x', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = 0;
	cr_assert_eq(notify_parse_addr("run/notify", &a, &len), -1);
	cr_assert_eq(notify_parse_addr("", &a, &len), -1);
	cr_assert_eq(notify_parse_addr("@", &a, &len), -1);
	cr_assert_eq(notify_parse_addr(NULL, &a, &len), -1);
	cr_assert_eq(notify_parse_addr(longp, &a, &len), -1);
}

Test(notify, watchdog_usec_is_for_us_only_when_watchdog_pid_is_unset_or_ours)
{
	cr_assert_eq(notify_watchdog_usec("30000000", NULL, 42), 30000000);
	cr_assert_eq(notify_watchdog_usec("30000000", "", 42), 30000000);
	cr_assert_eq(notify_watchdog_usec("30000000", "42", 42), 30000000);
	cr_assert_eq(notify_watchdog_usec("30000000", "43", 42), 0);
	cr_assert_eq(notify_watchdog_usec("30000000", "4x", 42), 0);
	cr_assert_eq(notify_watchdog_usec(NULL, NULL, 42), 0);
	cr_assert_eq(notify_watchdog_usec("0", NULL, 42), 0);
	cr_assert_eq(notify_watchdog_usec("-5", NULL, 42), 0);
	cr_assert_eq(notify_watchdog_usec("12s", NULL, 42), 0);
}

Test(notify, reloading_carries_the_monotonic_time)
{
	char buf[64];

	cr_assert_eq(notify_format_reloading(buf, sizeof(buf), 123456789), 36);
	cr_assert_str_eq(buf, "RELOADING=1\nMONOTONIC_USEC=123456789");
}

Test(notify, init_takes_the_variables_out_of_the_environment_and_sends_to_the_socket)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct notify n;
	char path[] = "/tmp/hookd-notify-XXXXXX", env[160], err[256], buf[256];
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	ssize_t got;

	cr_assert_not_null(mkdtemp(path));
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/s", path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	snprintf(env, sizeof(env), "%s", a.sun_path);
	setenv("NOTIFY_SOCKET", env, 1);
	setenv("WATCHDOG_USEC", "3000000", 1);
	cr_assert_eq(notify_init(&n, err, sizeof(err)), 0, "%s", err);
	cr_assert_null(getenv("NOTIFY_SOCKET"));
	cr_assert_null(getenv("WATCHDOG_USEC"));
	cr_assert_eq(notify_ping_ms(&n), 1500);
	notify_ready(&n, "generation %d\nloaded", 3);
	got = recv(fd, buf, sizeof(buf) - 1, 0);
	cr_assert_gt(got, 0);
	buf[got] = 0;
	cr_assert_str_eq(buf, "READY=1\nSTATUS=generation 3 loaded", "one line of status");
	notify_fini(&n);
	close(fd);
	unlink(a.sun_path);
	rmdir(path);
}

Test(notify, without_notify_socket_everything_is_a_no_op)
{
	struct notify n;
	char err[256];

	unsetenv("NOTIFY_SOCKET");
	setenv("WATCHDOG_USEC", "3000000", 1);
	cr_assert_eq(notify_init(&n, err, sizeof(err)), 0);
	cr_assert_eq(n.fd, -1);
	cr_assert_eq(notify_ping_ms(&n), 0, "no socket, no pings");
	cr_assert_eq(notify_send(&n, "READY=1", true), 0);
	cr_assert_null(getenv("WATCHDOG_USEC"));
	notify_fini(&n);
}
