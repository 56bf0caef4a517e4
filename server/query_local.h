/* query_local.h - the parts of running a query that the QUERY and
 * QUERY_PART handlers (handlers_query.c) and the cluster coordinator
 * (query_coord.c) share: reading the request, scanning this member's part
 * of a region into an executor, and the reply (docs/query.md,
 * docs/protocol.md "QUERY"). Worker-thread code. */
#ifndef AGATE_SERVER_QUERY_LOCAL_H
#define AGATE_SERVER_QUERY_LOCAL_H

#include <stdbool.h>
#include <stdint.h>

#include "region/qexec.h"
#include "region/region.h"
#include "server/request.h"

#define QUERY_MAX_PARAMS 256
#define QUERY_DEFAULT_TIMEOUT_MS 30000

/* A QUERY or QUERY_PART request's arguments. The pointers are into the
 * request (valid during the handler). */
typedef struct query_args {
    const uint8_t *text;
    uint32_t tlen;
    const uint8_t *params_raw; /* the encoded params array, or NULL */
    size_t params_len;
    qvalue params[QUERY_MAX_PARAMS];
    uint32_t nparams;
    int64_t timeout_ms; /* 0: none */
    bool explain;       /* only describe the plan */
} query_args;

/* Why a query failed: a status and its message. */
typedef struct query_fail {
    int status;
    char msg[400];
} query_fail;

int64_t query_now_us(void);

/* Reads [text, params?, options?]. Returns 0, or -1 after replying. */
int query_read_args(req_ctx *x, query_args *a);
/* Decodes an encoded params array into params (at most QUERY_MAX_PARAMS;
 * the values point into raw). 0, or -1 when it is not such an array. */
int query_decode_params(const uint8_t *raw, size_t len, qvalue *params, uint32_t *n);

/* Feeds every entry of r into ex (only the buckets this member is primary
 * for when primary_only), counting them in *scanned, until the executor has
 * enough or deadline_us (0: none) passes. 0, or -1 with *f filled. */
int query_scan(region_t *r, qexec *ex, qsource source, bool primary_only, int64_t deadline_us,
               uint64_t *scanned, query_fail *f);

/* Finishes ex and replies [columns, rows, stats] on x, or the error. */
void query_reply_result(req_ctx *x, qexec *ex, uint64_t matched, uint64_t scanned, int64_t t0);
void query_reply_fail(req_ctx *x, const query_fail *f);

/* A query over a region of a cluster: this member gathers its own part and
 * every other member's (QUERY_PART) and replies when all are in. Takes q
 * (the parsed query: it outlives the request until the reply). */
void query_coordinate(req_ctx *x, region_t *r, query_t *q, const query_args *a, int64_t t0);

#endif
