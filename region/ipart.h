/* ipart.h - one bucket's part of one index: which keys hold which value.
 *
 * An index (qindex.h) keeps one part per bucket, guarded by that bucket's
 * lock like the entries themselves, so index maintenance never takes a
 * lock of its own and never contends across buckets.
 *
 * A part maps each indexed key (its bytes and its 64-bit key hash, as the
 * bucket hashes it) to one value, and groups keys by value:
 *   - a hash part finds a value's group through a hash table (=, IN);
 *   - a range part keeps groups in a skip list ordered by qvalue_order
 *     (=, IN, <, <=, >, >= and pairs of them).
 * A key table (key -> posting) makes replacing or removing a key O(1)
 * without evaluating its old value again.
 *
 * Why a skip list: updates and seeks in O(log n) with one small node per
 * distinct value, no rebalancing code, and ordered iteration by following
 * one pointer. A sorted array would memmove ~half the part on every
 * insert (a bucket of a 1M-entry region holds ~9,000 keys: too slow for a
 * write path); a B-tree would be faster to scan but several times the code.
 *
 * Values: only booleans, numbers, strings and binaries are indexed (a
 * comparison with NULL, UNDEFINED, an array or a map is never TRUE for <,
 * and = on arrays/maps is not a lookup the planner makes); a key whose
 * value is anything else is simply absent from the part. Numbers of every
 * type form one class compared numerically (1 = 1.0), as in WHERE. */
#ifndef AGATE_REGION_IPART_H
#define AGATE_REGION_IPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "region/qvalue.h"

typedef enum qindex_kind { QINDEX_RANGE = 0, QINDEX_HASH = 1 } qindex_kind;

typedef struct ipart ipart;

/* Whether v can be held in a part (see above). */
bool ipart_indexable(const qvalue *v);

/* A new empty part; seed randomizes the skip list's levels. NULL if no
 * memory. */
ipart *ipart_new(qindex_kind kind, uint64_t seed);
/* Frees the part and everything in it (NULL is fine). */
void ipart_free(ipart *p);
/* Drops every key; the part stays usable. */
void ipart_clear(ipart *p);

/* Records that key now has value v (copied), replacing what it had; a v
 * that is not indexable just removes the key. Returns 0 or -ENOMEM (then
 * the key is absent from the part: the caller must stop trusting it). */
int ipart_set(ipart *p, uint64_t khash, const uint8_t *key, uint32_t klen, const qvalue *v);
/* Forgets key (no-op when absent). */
void ipart_remove(ipart *p, uint64_t khash, const uint8_t *key, uint32_t klen);

/* Keys held, and heap bytes used (nodes, copies of keys and values). */
uint64_t ipart_count(const ipart *p);
uint64_t ipart_bytes(const ipart *p);

/* Called once per key found; nonzero stops the visit and is returned. The
 * key bytes are valid until the part changes. */
typedef int (*ipart_visit_fn)(void *arg, uint64_t khash, const uint8_t *key, uint32_t klen);

/* Visits every key whose value equals v (qvalue_compare: 1 finds 1.0). */
int ipart_eq(const ipart *p, const qvalue *v, ipart_visit_fn fn, void *arg);
/* Range parts only (a hash part visits nothing and returns -EINVAL):
 * visits every key whose value v satisfies lo < v (lo <= v when lo_incl)
 * and v < hi (v <= hi when hi_incl), in ascending order. lo or hi may be
 * NULL (unbounded) but not both; the given bounds must be indexable and
 * of one class (numbers, strings, binaries or booleans), and only values
 * of that class are visited, as a WHERE comparison between types is
 * FALSE. */
int ipart_range(const ipart *p, const qvalue *lo, bool lo_incl, const qvalue *hi, bool hi_incl,
                ipart_visit_fn fn, void *arg);

#endif
