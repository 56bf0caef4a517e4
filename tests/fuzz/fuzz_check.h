/* fuzz_check.h - CHECK(cond) for the fuzz targets: a broken invariant
 * prints which one and where, then aborts, so libFuzzer (or the replay
 * driver) reports the input as a crash. Define FUZZ_NAME, the target's name
 * for the message, before including this. */
#ifndef AGATE_TESTS_FUZZ_CHECK_H
#define AGATE_TESTS_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, FUZZ_NAME ": invariant failed: %s (%s:%d)\n", #cond, __FILE__,         \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
