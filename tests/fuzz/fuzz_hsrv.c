/*
 * fuzz_hsrv -- libFuzzer on the server transport (host/hsrv.c over
 * host/h1.c), the whole request path: the input is written to a real
 * connection (a socketpair adopted by one server made once per process) in
 * pieces, with a fake owner that routes, limits, charges, holds and answers
 * like http.c (tests/unit/hsrv_drive.h: the input format and the
 * invariants). Any broken invariant aborts; ASan and UBSan catch the rest.
 *
 * make fuzz [FUZZ_SECONDS=600]; seeds in tests/fuzz/corpus/hsrv (replayed
 * by the unit suite hsrv). A crash input goes into that corpus and, when it
 * says something a test should keep, into tests/unit/test_hsrv.c.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../unit/hsrv_drive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *bad = hsd_run(data, size);

	if (bad) {
		fprintf(stderr, "fuzz_hsrv: %s\n", bad);
		abort();
	}
	return 0;
}
