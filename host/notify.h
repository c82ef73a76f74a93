/*
 * notify -- tell the service manager (systemd) where the daemon is, with
 * its datagram protocol spoken directly (no libsystemd): READY=1 once
 * serving, RELOADING=1 + MONOTONIC_USEC while a reload runs, STOPPING=1
 * when a drain starts, STATUS= lines, and WATCHDOG=1 pings.
 *
 * The protocol (sd_notify(3)): one datagram per message on an AF_UNIX
 * SOCK_DGRAM socket named by $NOTIFY_SOCKET (a path, or "@name" for the
 * abstract namespace), newline-separated VAR=value lines. Unset: every
 * function is a no-op. notify_init takes NOTIFY_SOCKET, WATCHDOG_USEC and
 * WATCHDOG_PID out of the environment (before any thread exists), so the
 * processes hookd spawns (probes, isolated runners) and the plugins never
 * talk to systemd as if they were hookd.
 *
 * Watchdog pings come from the loop watchdog's thread (watchdog.h) at half
 * WATCHDOG_USEC, and only while no event loop is held by plugin code for
 * longer than that: a loop blocked by a plugin stops the pings (a STATUS
 * line says which loop), and systemd restarts the service.
 *
 * A struct notify is owned by main; notify_send and the notify_* messages
 * may be called from any thread (one sendto each, the status under a lock).
 */
#ifndef HOOKD_NOTIFY_H
#define HOOKD_NOTIFY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#define NOTIFY_STATUS_MAX 512

struct notify {
	int fd;                      /* -1: no NOTIFY_SOCKET, nothing is sent */
	struct sockaddr_un addr;
	socklen_t addrlen;
	uint64_t watchdog_usec;      /* 0: no WATCHDOG=1 pings */
	pthread_mutex_t mu;          /* status, withheld */
	char status[NOTIFY_STATUS_MAX]; /* the last STATUS= said (sent again after a stall) */
	bool withheld;               /* watchdog pings are held back: a loop is stuck */
	bool ready;                  /* READY=1 went out: pings start then */
};

/* Parse a NOTIFY_SOCKET value into an address: "/path" or "@abstract".
 * Returns 0, or -1 (empty, relative, too long). */
int notify_parse_addr(const char *value, struct sockaddr_un *addr, socklen_t *len);

/* The watchdog interval in µs for process `self` from WATCHDOG_USEC and
 * WATCHDOG_PID (either may be NULL): 0 when unset, invalid, or meant for
 * another pid. */
uint64_t notify_watchdog_usec(const char *usec, const char *pid, pid_t self);

/* "RELOADING=1\nMONOTONIC_USEC=<usec>" into buf. Returns its length. */
size_t notify_format_reloading(char *buf, size_t len, uint64_t monotonic_usec);

/* Read (and unset) NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID and open the
 * socket. Call in main before any thread starts (unsetenv). A bad
 * NOTIFY_SOCKET is not fatal: returns -1 with err and n stays a no-op. */
int notify_init(struct notify *n, char *err, size_t errlen);

/* Close the socket. */
void notify_fini(struct notify *n);

/* Send msg (newline-separated assignments) as one datagram. Returns 0, or
 * -1 (errno); 0 when there is no socket. Any thread. A datagram socket's
 * queue is short (net.unix.max_dgram_qlen, 10 by default): with `wait`
 * the send waits for room up to NOTIFY_SEND_WAIT_MS (state changes must
 * not be lost), without it a full queue drops the message (pings). */
#define NOTIFY_SEND_WAIT_MS 1000
int notify_send(struct notify *n, const char *msg, bool wait);

/* Messages. The STATUS= text (printf-style, one line: newlines become
 * spaces) is kept as the current status. Any thread. */
void notify_ready(struct notify *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void notify_reloading(struct notify *n);
void notify_stopping(struct notify *n, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* How often to ping in ms (half the interval, at least 1), or 0. */
unsigned notify_ping_ms(const struct notify *n);

/* The watchdog thread, every notify_ping_ms: `stuck` is NULL when every
 * loop is fresh (WATCHDOG=1 is sent; after a stall the status is sent
 * again), else what holds a loop (the first time: a STATUS= line saying so,
 * and no ping). Nothing before the first READY=1: systemd arms its watchdog
 * once start-up is over, and early pings would only fill the queue. */
void notify_watchdog_tick(void *arg, const char *stuck);

#endif
