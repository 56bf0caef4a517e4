/* query_cursor.h - a running query and the pages it sends (docs/query.md
 * "Paging", docs/protocol.md QUERY, QUERY_NEXT, QUERY_CLOSE, QUERY_CANCEL).
 *
 * The member that receives QUERY coordinates it through a cursor that
 * belongs to the client's connection and lives on its worker:
 *   - a streamable query (no ORDER BY, GROUP BY, aggregate or DISTINCT)
 *     runs a batch of buckets at a time, as many as it takes to fill a
 *     page (the batch grows while pages come out short; a query an index
 *     serves takes every bucket at once), so neither the member nor the
 *     client holds more than a batch of rows;
 *   - any other query is gathered whole first (an ORDER BY ... LIMIT n
 *     keeps n rows per member, a GROUP BY one state per group), then sent
 *     page by page.
 * A batch's buckets run on the query pool (this member's share) and, on a
 * cluster, as QUERY_PART requests to the members that are primary for the
 * rest; the batch counts only when every bucket was covered exactly once.
 * A page that could not be made (a bucket moved: UNAVAILABLE; a timeout)
 * leaves the cursor where it was, so QUERY_NEXT may be retried.
 *
 * A cursor ends with its last page, QUERY_CLOSE, its connection, or
 * QUERY_CURSOR_IDLE_MS without a request. QUERY_CANCEL stops the page
 * being made (and closes the cursor). */
#ifndef AGATE_SERVER_QUERY_CURSOR_H
#define AGATE_SERVER_QUERY_CURSOR_H

#include <stdint.h>

#include "region/qast.h"
#include "region/region.h"
#include "server/conn.h"
#include "server/query_local.h"
#include "server/request.h"

#define QUERY_CURSOR_IDLE_MS 60000
#define QUERY_CURSORS_PER_CONN 16
#define QUERY_DEFAULT_PAGE_ROWS 1000
#define QUERY_MAX_PAGE_ROWS 100000

typedef struct qcursor qcursor;

/* QUERY (not explain): opens a cursor for q (taken) over r and answers
 * with its first page, now or later. */
void qcursor_open(req_ctx *x, region_t *r, query_t *q, const query_args *a, int64_t t0);
/* QUERY_NEXT [cursor, options?]: the next page of cursor id. */
void qcursor_next(req_ctx *x, uint64_t id, const query_args *a);
/* QUERY_CLOSE [cursor]: OK, or NOT_FOUND for no such open cursor. */
void qcursor_close(req_ctx *x, uint64_t id);
/* QUERY_CANCEL [request_id]: stops the page that request is waiting for
 * (which is answered CANCELLED) and closes its cursor, or stops a
 * QUERY_PART of this connection; OK, or NOT_FOUND when no query of this
 * connection runs for that request. */
void qcursor_cancel(req_ctx *x, uint64_t request_id);
struct qpart_job;
/* QUERY_PART jobs running for connection c: cancelled if it closes. */
void qcursor_track_part(conn_t *c, struct qpart_job *p);
void qcursor_untrack_part(conn_t *c, struct qpart_job *p);
/* The worker is stopping (after its connections closed): closes the links
 * its cursors kept to the other members. */
void qcursor_worker_stop(worker_t *w);
/* The connection closed: every cursor of it ends (running work is
 * cancelled; what is still out finishes on its own and is dropped). */
void qcursor_conn_closed(conn_t *c);

#endif
