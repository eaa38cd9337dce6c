/* fuzz.h: what every fuzz target shares. */
#ifndef TG_FUZZ_H
#define TG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional: libFuzzer calls it once before the first input, when a target defines it. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An assert that NDEBUG cannot compile out: a broken invariant is a crash libFuzzer reports. */
#define FUZZ_CHECK(x)                                                                              \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

#endif
