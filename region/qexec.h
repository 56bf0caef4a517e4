/* qexec.h - runs a parsed query (qast.h) over rows and produces its result
 * (docs/query.md): WHERE, projection, GROUP BY with aggregates, DISTINCT,
 * ORDER BY and LIMIT.
 *
 * The caller feeds every row of the region (or of the buckets it holds)
 * with qexec_add, then calls qexec_finish and reads the result rows. Rows'
 * bytes need only live during qexec_add: what the result keeps is copied.
 * Memory is bounded by the result, not by the rows seen: with ORDER BY and
 * LIMIT n at most 2n candidate rows are kept at a time, a LIMIT without
 * ORDER BY (and without DISTINCT or grouping) reports when it has enough,
 * and grouped queries keep one accumulator set per group.
 *
 * A result row is one MessagePack array with one element per column.
 * SELECT * gives the column "value" (FROM /r or /r.values), "key" (FROM
 * /r.keys) or "key", "value" (FROM /r.entries); a selected entries alias
 * on its own gives a map {"key": k, "value": v}. */
#ifndef AGATE_REGION_QEXEC_H
#define AGATE_REGION_QEXEC_H

#include <stddef.h>
#include <stdint.h>

#include "region/qast.h"
#include "region/qeval.h"
#include "region/qvalue.h"

typedef struct qexec qexec;

/* qexec_add's answer when no later row can change the result. */
#define QEXEC_ENOUGH 1

/* Prepares q (which must outlive the executor) with its bind parameters
 * (params[0] is $1; the values' bytes must outlive it too). Returns 0 and
 * *out; -EINVAL with err when fewer parameters than q uses were given or
 * the LIMIT parameter is not a non-negative integer; -ENOMEM. */
int qexec_new(const query_t *q, const qvalue *params, uint32_t nparams, qexec **out, qerror *err);
void qexec_free(qexec *x);

/* Feeds one row. Returns 0, QEXEC_ENOUGH (the caller may stop feeding),
 * -EINVAL with err (an evaluation error), -E2BIG (a DISTINCT aggregate's
 * set is full) or -ENOMEM. */
int qexec_add(qexec *x, const qrow *row, qerror *err);

/* Computes the result: evaluates the groups, applies DISTINCT, sorts and
 * cuts to the LIMIT. Returns 0, or an error as qexec_add. Call once. */
int qexec_finish(qexec *x, qerror *err);

/* The result's columns: their count and names (AS name, else the item as
 * text). Valid from qexec_new on. */
uint32_t qexec_ncolumns(const qexec *x);
const char *qexec_column(const qexec *x, uint32_t i);

/* After qexec_finish: the rows, in order. Each is an encoded MessagePack
 * array (*len bytes), owned by x. */
size_t qexec_nrows(const qexec *x);
const uint8_t *qexec_row(const qexec *x, size_t i, size_t *len);

/* The LIMIT in force (a parameter resolved), or -1 when there is none. */
int64_t qexec_limit(const qexec *x);

/* Rows that passed WHERE (before grouping, DISTINCT and LIMIT). */
uint64_t qexec_matched(const qexec *x);

/* ---- Scatter and gather (clusters, docs/query.md) ----
 * Each member runs the query over the buckets it is primary for and,
 * instead of qexec_finish, packs a partial result: the rows it would
 * return (projected, with their ORDER BY values; DISTINCT applied; cut to
 * the LIMIT when that is safe: with ORDER BY its best n, without ORDER BY
 * any n), or for a grouped query every group's key, first row and the
 * partial states of its aggregates (qagg_pack). The gatherer, an executor
 * for the same query and parameters, merges every member's partial (it
 * may also add rows of its own with qexec_add), then qexec_finish gives
 * the same result as one executor over all the rows (float sums may
 * differ in their last bits). */

/* Appends x's partial result to pk (a msgpack_packer *) as one MessagePack
 * object. Instead of qexec_finish; x is only good for qexec_free after.
 * Returns 0, -ENOMEM, or -EINVAL with err. */
int qexec_pack_partial(qexec *x, void *pk, qerror *err);
/* Merges one partial (n bytes at p, exactly one object, from an executor
 * of the same query and parameters). Returns 0, QEXEC_ENOUGH (as
 * qexec_add), -EINVAL with err when the bytes are not such a partial,
 * -E2BIG (a DISTINCT aggregate's set), -ENOMEM. */
int qexec_merge_partial(qexec *x, const uint8_t *p, size_t n, qerror *err);

#endif
