/*
 * fuzz_h1 -- libFuzzer on the request parser (host/h1.c), as the transport
 * drives it: the input chooses the split points, the limits and max_body
 * (format: h1d_check_input in tests/unit/h1_drive.h), then the stream goes
 * through head parse and body decode for every pipelined request it holds,
 * whole, in pieces and byte by byte. Any broken invariant or any difference
 * between those runs aborts; ASan and UBSan catch the rest.
 *
 * make fuzz [FUZZ_SECONDS=600]; seeds in tests/fuzz/corpus/h1 (replayed by
 * the unit suite h1). A crash input goes into that corpus and into a unit
 * test of tests/unit/test_h1.c.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../unit/h1_drive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *bad = h1d_check_input(data, size);

	if (bad) {
		fprintf(stderr, "fuzz_h1: %s\n", bad);
		abort();
	}
	return 0;
}
