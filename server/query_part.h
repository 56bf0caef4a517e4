/* query_part.h - one member's share of a query: a set of buckets run
 * through an executor into a partial result (qexec_pack_partial), on the
 * query pool (server/query_pool.h). The coordinator of a query (a
 * cursor's page, server/query_cursor.h) merges such partials: its own
 * and, on a cluster, the other members' QUERY_PART answers, which are
 * these jobs too.
 *
 * The job owns copies of everything it reads (the query text is parsed
 * again on the pool thread, so no tree is shared between threads) and
 * looks its region up by name while it runs. */
#ifndef AGATE_SERVER_QUERY_PART_H
#define AGATE_SERVER_QUERY_PART_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "region/region.h"
#include "server/query_local.h"
#include "server/query_pool.h"

typedef struct qpart_job {
    qjob job; /* keep first */
    /* in */
    char region[REGION_NAME_MAX + 1];
    char *text;
    uint32_t tlen;
    uint8_t *params_raw; /* an encoded array (never NULL) */
    size_t params_len;
    uint8_t *want;       /* buckets to cover (bitmap), NULL: every bucket */
    bool primary_only;   /* clusters: only the buckets this member is primary for */
    int64_t deadline_us; /* 0: none */
    void *owner;         /* the submitter's */
    uint64_t req_id;     /* the submitter's */
    struct qpart_job *conn_next; /* QUERY_PART: the connection's running parts */
    /* out (valid in done) */
    query_fail fail;     /* status 0: it ran */
    buf_t partial;       /* one MessagePack object (qexec_pack_partial) */
    uint8_t *covered;    /* nbuckets bits: the buckets it covered */
    uint32_t nbuckets;
    uint64_t matched, scanned;
} qpart_job;

/* A job for text/params (copied) over want (copied when not NULL; nbits
 * bits), with run set; the caller sets done, w, owner and the rest. NULL
 * when out of memory. */
qpart_job *qpart_new(const char *region, const uint8_t *text, uint32_t tlen,
                     const uint8_t *params_raw, size_t params_len, const uint8_t *want,
                     uint32_t nbits);
void qpart_free(qpart_job *p);

#endif
