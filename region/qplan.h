/* qplan.h - how a query will run, in words: what QUERY with the explain
 * option (`agate query --explain`) shows (docs/query.md, "Plans").
 *
 * The plan follows what qexec.c and the server do: how the region is read
 * (every entry; on a cluster each member its primary buckets, gathered as
 * partial results), then the filter, grouping and aggregates, DISTINCT,
 * ordering with the top-n cut, the limit and its early stop, and the
 * columns. An index the planner chose (region/qindex.h) replaces the
 * full read. */
#ifndef AGATE_REGION_QPLAN_H
#define AGATE_REGION_QPLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "region/qast.h"

/* Calls emit once per plan step, in order, with a NUL-terminated line
 * (valid during the call). clustered: the region is spread over members.
 * access: how entries are read when an index is used (the probe's line,
 * qindex_probe_describe, e.g. "index lookup: o.status = 'open' using hash
 * index byStatus"), or NULL for a full scan. Returns 0, or -ENOMEM. */
int qplan_describe(const query_t *q, bool clustered, const char *access,
                   void (*emit)(void *arg, const char *line), void *arg);

#endif
