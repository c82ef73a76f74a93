/*
 * hsrv_drive -- one client connection to a real host/hsrv server, as the
 * fuzzer drives it: the input's bytes are written to the client end of a
 * socketpair in pieces, the server (on its own event base, created once
 * per process) is pumped between them, and a fake owner routes like
 * http.c does: "/hooks/<name>" (name_valid) gets a body limit of its own
 * (HSD_SMALL_LIMIT for the hook "small", HSD_LARGE_LIMIT for "large",
 * HSD_HOOK_LIMIT for the others, HSD_LIMIT off the hooks), every request is charged to the budget, every
 * third one is held and answered on the next loop pass, "/big" gets a
 * reply larger than the server's socket buffer (written in pieces), "/204"
 * a 204, and refusals a JSON body.
 *
 * Input format: byte 0 chooses the split points (bits 0-2 and 3-5: two
 * cuts at eighths of the rest) and whether the loop runs between pieces
 * (bit 6) or only once all of it is written, and whether the client
 * shuts its write side right after writing (bit 7: a held request is then
 * reported gone) or once the server is done; the rest is the stream. The
 * client reads everything, and the connection must end by itself.
 *
 * Invariants checked (the first broken one is returned):
 *  - a whole request is parsed, has a known method and a path, and its
 *    body is within the limit body_limit gave; one request at a time per
 *    connection (none handed up while one is held);
 *  - a refusal has a status hsrv.h lists and a one-line reason;
 *  - `gone` comes only for the held request, with what it was held with;
 *  - the client reads, in order, exactly the replies the owner sent (1xx
 *    Continue between them): status, Content-Length, the body bytes (none
 *    for HEAD, 204), possibly cut short at the end by a hang-up;
 *  - the connection closes once the client has half-closed, and then no
 *    reply is unsent and the memory budget is back to 0.
 *
 * Shared by the fuzzer (tests/fuzz/fuzz_hsrv.c) and the unit suite, which
 * replays tests/fuzz/corpus/hsrv: no Criterion here.
 */
#ifndef HOOKD_TEST_HSRV_DRIVE_H
#define HOOKD_TEST_HSRV_DRIVE_H

#include <stddef.h>
#include <stdint.h>

#define HSD_LIMIT       1024   /* body limit off the hooks */
#define HSD_HOOK_LIMIT  2048   /* a hook's */
#define HSD_SMALL_LIMIT 16     /* the hook "small" */
#define HSD_LARGE_LIMIT 65536  /* the hook "large": over the budget */
#define HSD_BUDGET      32768  /* the memory budget of requests in flight */
#define HSD_BIG         20000  /* the body of "/big"'s reply */

/* Run one input. NULL, or the first invariant broken (a literal or a
 * static buffer). */
const char *hsd_run(const uint8_t *data, size_t size);

/* Counters over every run of this process (what the fuzz seeds reach). */
struct hsd_stats {
	unsigned long runs, requests, refusals, gone, held, replies_checked;
	unsigned long refused[600]; /* by status */
};
const struct hsd_stats *hsd_stats(void);

/* Free the server and its base (a unit test's leak check). */
void hsd_teardown(void);

#endif
