/* qeval.h - evaluates a query expression (qast.h) against one row
 * (docs/query.md: "Expressions", "Types", "Three-valued logic",
 * "Arithmetic").
 *
 * Evaluation allocates nothing: a result is a number, a boolean, NULL,
 * UNDEFINED, or a reference into the row's MessagePack, the query's
 * literals or the bind parameters, and stays valid as long as those do.
 *
 * Names (what an identifier stands for; the alias wins over the rest):
 *   source        alias          bare `key`  bare `value`  other bare name
 *   QSRC_VALUES   the value      -------- a field of the value --------
 *   QSRC_KEYS     the key        the key     a field of the key (UNDEFINED
 *                                            for string and binary keys)
 *   QSRC_ENTRIES  alias.key,     the key     the value     a field of the
 *                 alias.value,                             value
 *                 alias['key']
 * In QSRC_ENTRIES the alias alone (not followed by .key/.value) is
 * UNDEFINED here: an entry is not one MessagePack object, so projecting it
 * whole (SELECT e) is for the executor to build as {key, value}. Only
 * QSRC_VALUES leaves `key` and `value` as ordinary fields, so that a
 * value's own field named `key` stays reachable where the doc promises
 * "a bare name is a field of the value"; in the other sources the value's
 * field is `value.key` (or alias.value.key). */
#ifndef AGATE_REGION_QEVAL_H
#define AGATE_REGION_QEVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "region/qast.h"
#include "region/qvalue.h"

/* One row of the iteration: an entry's key (a string or binary) and its
 * value, both decoded with qvalue_decode. A QSRC_KEYS row may leave the
 * value UNDEFINED. */
typedef struct qrow {
    qvalue key;
    qvalue value;
} qrow;

/* Gives the value of an aggregate node (QX_AGGREGATE) for the row's group,
 * once the aggregation is done (a grouped query's select list and ORDER
 * BY: SUM(x) / COUNT(*)). Returns 0, or a negative errno with err filled. */
typedef int (*qeval_agg_fn)(void *ctx, const qexpr *agg, qvalue *out, qerror *err);

/* What a query's expressions are evaluated in. */
typedef struct qenv {
    qsource source;
    const char *alias;     /* NUL-terminated, or NULL: none */
    const qvalue *params;  /* $1 is params[0] */
    uint32_t nparams;
    qeval_agg_fn aggregate; /* NULL: an aggregate node is an error */
    void *agg_ctx;
} qenv;

/* Expressions nested deeper than this are refused (-EINVAL) rather than
 * risking the thread's stack; the parser's own limit is far lower. */
#define QEVAL_MAX_DEPTH 1000

/* Evaluates e for row (NULL: key and value UNDEFINED) into *out. Returns 0,
 * or -EINVAL with err (may be NULL) pointing at the node: a bind parameter
 * beyond env->nparams, an aggregate without env->aggregate, an unknown
 * node, nesting beyond QEVAL_MAX_DEPTH; or the aggregate callback's error.
 *
 * AND and OR do not evaluate their right operand when the left one decides
 * (FALSE AND ..., TRUE OR ...), and IN stops at the first equal element, so
 * a missing parameter there is only reported for rows that reach it: the
 * executor checks query_t.nparams against the given values before running.
 *
 * The rules of docs/query.md, with what the doc leaves open decided here:
 * - NULL/UNDEFINED operands of a comparison or arithmetic: UNDEFINED when
 *   either is UNDEFINED, else NULL.
 * - A comparison of different types is FALSE, for <> too ('10' <> 10 is
 *   FALSE; write NOT ('10' = 10) for "different").
 * - Arrays and maps compare with = and <> only; <, <=, >, >= of two arrays
 *   (or two maps) is FALSE.
 * - AND, OR, NOT with an unknown result give NULL (NOT UNDEFINED is NULL).
 *   The negated forms are NOT of the plain one: x NOT IN (...) is NOT (x IN
 *   (...)), x NOT LIKE p is NOT (x LIKE p) (so a non-string x gives TRUE).
 * - LIKE takes a string or binary subject and a string pattern; other
 *   types are a mismatch (FALSE).
 * - IS NULL, IS_DEFINED and IS_UNDEFINED are never unknown.
 * - Numbers: NaN equals NaN and is above every other number (qvalue.c);
 *   an integer result that fits neither int64 nor uint64 becomes a float;
 *   -(-2^63) is the unsigned 2^63; float x / 0.0 and fmod(x, 0.0) are
 *   NULL like the integer ones. */
int qeval(const qexpr *e, const qenv *env, const qrow *row, qvalue *out, qerror *err);

/* WHERE semantics: *match is true only when e evaluates to TRUE (FALSE,
 * NULL, UNDEFINED and non-booleans drop the row). Returns as qeval. */
int qeval_match(const qexpr *e, const qenv *env, const qrow *row, bool *match, qerror *err);

#endif
