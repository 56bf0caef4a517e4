/* qagg.h - aggregate accumulators: COUNT(*), COUNT, SUM, AVG, MIN, MAX,
 * with DISTINCT (docs/query.md, "Aggregates").
 *
 * An accumulator takes values row by row (qagg_add, or qagg_step which
 * evaluates the aggregate's argument first), copying what it keeps: the
 * MIN/MAX candidate and the DISTINCT value set, so the rows' bytes may go
 * away after each call. A member packs its accumulators as *partial
 * states* (qagg_pack); the gatherer starts from fresh accumulators and
 * merges every member's partials (qagg_merge), then reads the final values
 * (qagg_result). Merging partials gives the same result as one pass over
 * all the rows, except that a float SUM/AVG may differ in its last bits
 * with the grouping (float addition is not associative); integer sums are
 * exact in any order.
 *
 * Rules, from the doc and where it is silent:
 * - COUNT(*) counts rows; COUNT(x) the x that are neither NULL nor
 *   UNDEFINED. The result is an integer.
 * - SUM/AVG take numbers and skip everything else. Integers are summed
 *   exactly in 128 bits, so SUM of integers is an integer whenever the
 *   final sum fits in 64 bits (int64, or uint64 above INT64_MAX), even if a
 *   partial sum did not; otherwise a float. With any float operand the sum
 *   is a float. AVG is always a float. Over no number: NULL.
 * - MIN/MAX skip NULL and UNDEFINED and follow qvalue_order (so MIN over
 *   mixed types is the lowest type's lowest value, e.g. a boolean before
 *   any number). Over nothing: NULL. Of values that are equal but spelled
 *   differently (1 and 1.0, [1] and [1.0]) the integer one, else the
 *   bytewise smaller encoding, is kept, so that the result does not depend
 *   on the order of the rows.
 * - DISTINCT: COUNT, SUM and AVG see each distinct value once (numbers by
 *   value: 1 and 1.0 are one value, kept as the integer). MIN(DISTINCT x)
 *   and MAX(DISTINCT x) are MIN(x) and MAX(x) and keep no set. A DISTINCT
 *   sum adds its floats in ascending order, so it does not depend on the
 *   order of the rows either.
 *
 * Memory: a DISTINCT set counts its table and its copied bytes against
 * max_bytes (QAGG_DISTINCT_MAX_BYTES unless the caller changes it after
 * qagg_init). A value that would take the set past it is refused with
 * -E2BIG and the set is left as it was: the query fails ("too many distinct
 * values") rather than giving a wrong count. A partial carries the whole
 * set, so the gatherer's limit applies to the union of the members' sets. */
#ifndef AGATE_REGION_QAGG_H
#define AGATE_REGION_QAGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "region/qast.h"
#include "region/qeval.h"
#include "region/qvalue.h"

#define QAGG_DISTINCT_MAX_BYTES ((size_t)64 << 20)

struct qagg_set;

/* A count and a sum of numbers. */
typedef struct qagg_sum {
    uint64_t n;          /* COUNT: rows or values; SUM/AVG: numbers added */
    uint64_t lo, hi;     /* the integers' exact sum, 128-bit two's complement */
    double fsum;         /* the floats' sum */
    bool has_float;      /* a float was added */
} qagg_sum;

/* Fields are the implementation's; read results with qagg_result. */
typedef struct qagg_acc {
    qagg fn;
    bool star;      /* COUNT(*) */
    bool distinct;  /* COUNT/SUM/AVG (DISTINCT x) */
    qagg_sum s;     /* COUNT, and SUM/AVG without DISTINCT */
    qvalue best;    /* MIN/MAX: UNDEFINED until a value came; bytes in best_buf */
    uint8_t *best_buf;
    size_t best_cap;
    struct qagg_set *set; /* DISTINCT COUNT/SUM/AVG, created on the first value */
    size_t max_bytes;     /* the set's limit */
} qagg_acc;

/* An empty accumulator for fn (star: COUNT(*), where distinct is ignored).
 * Allocates nothing until values come; free with qagg_free. */
void qagg_init(qagg_acc *a, qagg fn, bool star, bool distinct);
/* The same from an aggregate node (QX_AGGREGATE; COUNT(*) has e->a NULL).
 * -EINVAL for another kind of node. */
int qagg_init_expr(qagg_acc *a, const qexpr *e);
/* Releases what a holds; a may then be initialized again. */
void qagg_free(qagg_acc *a);

/* Takes one row's value (ignored, and may be NULL, for COUNT(*)). v's bytes
 * need only live during the call, and must not be the accumulator's own
 * (its result). Returns 0, -ENOMEM, or -E2BIG (the DISTINCT limit, above);
 * on an error a is unchanged. */
int qagg_add(qagg_acc *a, const qvalue *v);
/* Evaluates the argument of aggregate node e (as qagg_init_expr saw it) for
 * row, then qagg_add. Returns 0, qeval's error (err filled), or
 * qagg_add's. */
int qagg_step(qagg_acc *a, const qexpr *e, const qenv *env, const qrow *row, qerror *err);

/* Appends a's partial state to pk (a msgpack_packer *) as one MessagePack
 * array:
 *   [fn, flags, count, isum_hi, isum_lo, fsum, best, values]
 * fn: the qagg value; flags: 1 distinct, 2 star, 4 has_float; count,
 * isum_hi, isum_lo: uint64 (the sum's two's complement halves); fsum:
 * float 64; best: the MIN/MAX value or nil; values: the DISTINCT set as an
 * array (its order is not significant), or nil. Returns 0 or the packer's
 * error. */
int qagg_pack(const qagg_acc *a, void *pk);
/* Merges one partial state (n bytes at p, exactly one object) into a.
 * Returns 0; -EINVAL when the bytes are not a partial of the same
 * aggregate (fn, DISTINCT, star) or are malformed (a is then unchanged);
 * -ENOMEM or -E2BIG while merging a DISTINCT set, after which a holds part
 * of the partial and is only good for qagg_free. */
int qagg_merge(qagg_acc *a, const uint8_t *p, size_t n);

/* The final value so far (a may take more values afterwards): an integer
 * for COUNT, NULL or a number for SUM/AVG, NULL or the kept value for
 * MIN/MAX (its bytes owned by a, valid until a changes or is freed).
 * Returns 0, or -ENOMEM (a DISTINCT float sum sorts a copy). */
int qagg_result(qagg_acc *a, qvalue *out);

#endif
