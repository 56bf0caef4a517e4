/* query_local.h - what the query handlers (handlers_query.c), the cursors
 * (query_cursor.c) and the pool's part jobs (query_part.c) share: reading
 * the request, and failures as replies (docs/query.md, docs/protocol.md
 * "QUERY"). */
#ifndef AGATE_SERVER_QUERY_LOCAL_H
#define AGATE_SERVER_QUERY_LOCAL_H

#include <stdbool.h>
#include <stdint.h>

#include "region/qast.h"
#include "region/qexec.h"
#include "region/region.h"
#include "server/request.h"

#define QUERY_MAX_PARAMS 256
#define QUERY_DEFAULT_TIMEOUT_MS 30000

/* A QUERY, QUERY_PART or QUERY_NEXT request's arguments. The pointers
 * are into the request (valid during the handler). */
typedef struct query_args {
    const uint8_t *text;
    uint32_t tlen;
    const uint8_t *params_raw; /* the encoded params array, or NULL */
    size_t params_len;
    qvalue params[QUERY_MAX_PARAMS];
    uint32_t nparams;
    int64_t timeout_ms;    /* 0: none */
    bool explain;          /* only describe the plan */
    uint64_t page_size;    /* rows per page, 0: the default */
    const uint8_t *buckets; /* QUERY_PART: bitmap of the buckets wanted, or NULL */
    uint32_t buckets_len;
} query_args;

/* Why a query failed: a status and its message. */
typedef struct query_fail {
    int status;
    char msg[400];
} query_fail;

int64_t query_now_us(void);

/* Reads [text, params?, options?]. Returns 0, or -1 after replying. */
int query_read_args(req_ctx *x, query_args *a);
/* Reads an options map at argument i (absent: the defaults) into a.
 * Returns 0, or -1 after replying. */
int query_read_options(req_ctx *x, int i, query_args *a);
/* Decodes an encoded params array into params (at most QUERY_MAX_PARAMS;
 * the values point into raw). 0, or -1 when it is not such an array. */
int query_decode_params(const uint8_t *raw, size_t len, qvalue *params, uint32_t *n);

/* An executor error (from qexec_new, _add, _finish, _merge or a parse) as
 * a failure. */
void query_exec_fail(query_fail *f, int rc, const qerror *err);
void query_reply_fail(req_ctx *x, const query_fail *f);

#endif
