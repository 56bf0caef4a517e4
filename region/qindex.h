/* qindex.h - a region's indexes and the planner that uses them
 * (docs/query.md, "Indexes").
 *
 * An index maps the value of one path expression over an entry's value
 * (`status`, `customer.city`, `items[0]`, `customer['first name']`) to
 * the keys that hold it, so that a WHERE with `path = c`, `path IN (...)`
 * or `path < c` (and <=, >, >=, or two of them) reads only the entries
 * that can match instead of every entry. The index key is what the query
 * engine computes for that path (qeval), and its order is qvalue_order,
 * so an indexed query returns exactly the rows of a full scan: the driver
 * still checks the whole WHERE on every entry the index yields.
 *
 * Layout: every index keeps one part per bucket (ipart.h) under that
 * bucket's lock. All indexes of a region form one index set, which is one
 * observer of the region (region_observe): it sees every change of a live
 * entry on every path (local writes, primary and replicated writes, image
 * transfer into a new copy, clears, a bucket leaving the member) and keeps
 * each index's part of that bucket in step. A bucket that arrives by image
 * transfer is therefore indexed as its entries arrive.
 *
 * Memory: an allocation failure while maintaining an index marks it
 * invalid rather than leaving it silently incomplete: the planner no
 * longer uses it (queries scan) and listings show it invalid until it is
 * destroyed and created again.
 *
 * Threads: create, destroy and list may run on any thread (a set's own
 * mutex serializes create and destroy); maintenance runs on the writer's
 * thread under the bucket's lock; probes take the bucket's lock. The set
 * lives as long as its region (freed by region_free). */
#ifndef AGATE_REGION_QINDEX_H
#define AGATE_REGION_QINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "region/ipart.h"
#include "region/qast.h"
#include "region/region.h"

#define QINDEX_NAME_MAX 128  /* [A-Za-z0-9_.-]{1,128}, like region names */
#define QINDEX_EXPR_MAX 1024 /* bytes of an index expression */
#define QINDEX_MAX 16        /* indexes per region */

/* Checks an index name. 0 or -EINVAL. */
int qindex_name_check(const char *name, size_t n);
/* "range" / "hash" (case-insensitive). 0 or -EINVAL. */
int qindex_kind_parse(const char *s, size_t n, qindex_kind *out);
const char *qindex_kind_name(qindex_kind k);
/* Checks an index expression: a path over the entry's value, written as in
 * `SELECT * FROM /r WHERE <path> = ...` without an alias: a name, then
 * any number of `.name`, `[integer]` and `['string']` steps. Returns 0, or
 * -EINVAL with err (byte offset and reason, like a query parse error). */
int qindex_expr_check(const char *text, size_t len, qerror *err);

/* One index as listings show it. */
typedef struct qindex_info {
    char name[QINDEX_NAME_MAX + 1];
    char expr[QINDEX_EXPR_MAX + 1];
    qindex_kind kind;
    uint64_t entries; /* keys indexed here (values of an indexable type) */
    uint64_t bytes;   /* heap bytes of the index here */
    bool valid;       /* false after an allocation failure (see above) */
} qindex_info;

/* Creates index name on region r and builds it over r's entries, bucket
 * by bucket under each bucket's lock (writers to that bucket wait for its
 * part to be built; other buckets go on). Returns 0; -EEXIST when r has an
 * index of that name (whatever its definition); -EINVAL for a bad name or
 * expression (err filled for the expression); -ENOSPC when r has
 * QINDEX_MAX indexes or no observer slot is left; -ENOMEM. */
int qindex_create(region_t *r, const char *name, const char *expr, size_t elen, qindex_kind kind,
                  qerror *err);
/* The same, but builds nothing yet: the index is listed and used at once
 * (a probe reads a bucket not built yet whole, so queries stay right), and
 * qindex_build_some builds it a few buckets at a time, so that a member's
 * control thread creating indexes from the cluster map never stops for
 * long. */
int qindex_create_deferred(region_t *r, const char *name, const char *expr, size_t elen,
                           qindex_kind kind, qerror *err);
/* Builds up to max_buckets bucket parts of r's indexes still being built,
 * each under its bucket's lock; returns how many remain (0: all built). An
 * allocation failure marks that index invalid. */
uint32_t qindex_build_some(region_t *r, uint32_t max_buckets);
/* Destroys index name of r: queries that already chose it fall back to
 * scanning. 0 or -ENOENT. */
int qindex_destroy(region_t *r, const char *name);
/* Fills up to cap infos of r's indexes (creation order); returns how many
 * r has. */
size_t qindex_list(region_t *r, qindex_info *out, size_t cap);
/* The info of one index. 0 or -ENOENT. */
int qindex_get(region_t *r, const char *name, qindex_info *out);

/* Keys index name holds in the buckets whose bit is set in bits (one bit
 * per bucket, as region_primary_bitmap fills it): a member's share of a
 * clustered index. Takes each bucket's lock in turn. 0 or -ENOENT. */
int qindex_entries_in(region_t *r, const char *name, const uint8_t *bits, uint64_t *out);

/* ---- planner ---------------------------------------------------------
 * Which index, if any, a query uses, and the entries it reads. */
typedef struct qindex_probe qindex_probe;

/* Looks at the AND-conjuncts of q's WHERE for `path = c`, `path IN (c,
 * ...)` and `path <|<=|>|>= c` (either side), where path matches an
 * index's expression once the query's alias is taken off (`o.status` in
 * `FROM /r o`, `status` in `FROM /r`, `e.value.status` in `FROM
 * /r.entries e`) and c is a literal or a bind parameter. Prefers = over
 * IN over a range, and among equal kinds the index created first; ranges
 * need a range index and combine a lower and an upper bound. Constants
 * that no index can hold (NULL, arrays, maps) rule that conjunct out.
 * q and params must outlive the probe (it points into them); a parameter
 * beyond nparams counts as UNDEFINED (the executor refuses such a query
 * anyway). Returns 0 with *out a probe, or NULL when no index applies (a
 * full scan), or -ENOMEM. */
int qindex_plan(region_t *r, const query_t *q, const qvalue *params, uint32_t nparams,
                qindex_probe **out);
/* Visits, under the bucket's lock, every live entry of the bucket that the
 * probe selects (each once; a superset of the WHERE's matches: check the
 * WHERE). When the index is gone or invalid now, visits every live entry
 * of the bucket instead. Same visit contract as region_scan_bounded.
 * Returns 0 or fn's nonzero result. */
int qindex_probe_bucket(const qindex_probe *p, region_t *r, uint32_t bucket, region_visit_fn fn,
                        void *arg);
/* The plan's access line, e.g. "index lookup: o.status = 'open' using hash
 * index byStatus" (a NUL-terminated string owned by the probe). */
const char *qindex_probe_describe(const qindex_probe *p);
void qindex_probe_free(qindex_probe *p);

#endif
