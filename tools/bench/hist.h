/* hist.h - a log-linear latency histogram in the spirit of HdrHistogram.
 *
 * Values are nanoseconds. Below 2^HIST_SUB_BITS+1 every value has its own
 * bucket; above, each power of two is split into 2^HIST_SUB_BITS equal
 * buckets, so a recorded value is known to within 1/2^HIST_SUB_BITS (0.8%).
 * Recording is a few shifts and an increment: no allocation, no locking
 * (one histogram per thread, merged at the end). */
#ifndef AGATE_BENCH_HIST_H
#define AGATE_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)           /* 128 buckets per power of two */
#define HIST_MAX_SHIFT 40                          /* values up to ~2^47 ns (39 hours) */
#define HIST_BUCKETS (2 * HIST_SUB + HIST_MAX_SHIFT * HIST_SUB)

typedef struct hist {
    uint64_t count;
    uint64_t sum;  /* exact, for the average */
    uint64_t min;
    uint64_t max;
    uint64_t b[HIST_BUCKETS];
} hist;

void hist_init(hist *h);
void hist_record(hist *h, uint64_t v);
/* Adds src into dst. */
void hist_merge(hist *dst, const hist *src);
/* The value at percentile p (0..100): the highest value of the bucket that
 * holds it, clamped to [min, max]. 0 for an empty histogram. */
uint64_t hist_percentile(const hist *h, double p);
/* How many recorded values are <= v (to the bucket's precision). */
uint64_t hist_count_le(const hist *h, uint64_t v);
double hist_mean(const hist *h);

#endif
