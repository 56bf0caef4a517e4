/* QUERY: runs a query (docs/query.md) over a region of this server.
 *
 *   [query_text, params?, options?] -> [columns, rows, stats]
 *
 * The query runs on the worker that received it, scanning the region page
 * by page; each page holds its buckets' locks only while it is read. The
 * whole result goes back in one reply: a result larger than the reply
 * limit is refused (add a LIMIT). A cluster member holds only part of a
 * partitioned region, so a member refuses queries until a coordinator
 * gathers the members' parts (issue 4's next step). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/mpw.h"
#include "common/proto.h"
#include "region/qast.h"
#include "region/qexec.h"
#include "server/command.h"
#include "server/handlers.h"
#include "server/registry.h"
#include "server/worker.h"

#define QUERY_MAX_PARAMS 256
#define QUERY_PAGE_ENTRIES 512
#define QUERY_DEFAULT_TIMEOUT_MS 30000
#define QUERY_VALUE_DEPTH 64

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* What the scan callback needs. */
typedef struct query_run {
    qexec *x;
    qsource source;
    qerror err;
    int rc;          /* qexec_add's error, when the scan stopped for one */
    uint64_t scanned;
    int64_t deadline_us; /* 0: none */
} query_run;

enum { RUN_ENOUGH = 1, RUN_ERROR = 2, RUN_TIMEOUT = 3 };

static int visit(void *arg, const entry_view *e)
{
    query_run *run = arg;
    if (e->tomb)
        return 0;
    run->scanned++;
    qrow row;
    row.key = e->key_is_str ? qv_str(e->key, e->klen)
                            : (qvalue){.type = QT_BIN, .v.s = {e->key, e->klen}};
    row.value = qv_undefined();
    if (run->source != QSRC_KEYS &&
        !qvalue_decode(e->value, e->vlen, QUERY_VALUE_DEPTH, &row.value))
        row.value = qv_undefined(); /* values are checked on write: cannot happen */
    int rc = qexec_add(run->x, &row, &run->err);
    if (rc == QEXEC_ENOUGH)
        return RUN_ENOUGH;
    if (rc < 0) {
        run->rc = rc;
        return RUN_ERROR;
    }
    /* the clock is read every 256 rows: cheap, and fine-grained enough */
    if (run->deadline_us && (run->scanned & 255) == 0 && mono_us() > run->deadline_us)
        return RUN_TIMEOUT;
    return 0;
}

/* The params argument: an array of values ($1 is the first). */
static int read_params(req_ctx *x, qvalue *params, uint32_t *n)
{
    *n = 0;
    if (x->req->argc < 2)
        return 0;
    mp_cursor c;
    uint32_t count;
    arg_cursor(x, 1, &c);
    if (mp_read_array(&c, &count)) {
        reply_error(x, ST_BAD_REQUEST, "QUERY: params must be an array of values");
        return -1;
    }
    if (count > QUERY_MAX_PARAMS) {
        reply_error(x, ST_BAD_ARGUMENT, "QUERY: at most %d parameters", QUERY_MAX_PARAMS);
        return -1;
    }
    for (uint32_t i = 0; i < count; i++) {
        size_t used = qvalue_decode(c.p, mp_left(&c), QUERY_VALUE_DEPTH, &params[i]);
        if (!used || mp_skip(&c, -1)) {
            reply_error(x, ST_BAD_VALUE, "QUERY: parameter $%u is not a MessagePack value", i + 1);
            return -1;
        }
    }
    *n = count;
    return 0;
}

/* The options map: {"timeout_ms": uint} (0: no limit). */
static int read_options(req_ctx *x, int64_t *timeout_ms)
{
    *timeout_ms = QUERY_DEFAULT_TIMEOUT_MS;
    if (x->req->argc < 3)
        return 0;
    mp_cursor c;
    uint32_t n;
    arg_cursor(x, 2, &c);
    if (mp_read_map(&c, &n))
        goto bad;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t kn;
        uint64_t v;
        if (mp_read_str(&c, &k, &kn))
            goto bad;
        if (kn == 10 && !memcmp(k, "timeout_ms", 10) && mp_read_uint(&c, &v) == 0 && v <= INT32_MAX) {
            *timeout_ms = (int64_t)v;
            continue;
        }
        reply_error(x, ST_BAD_ARGUMENT, "QUERY: unknown or invalid option '%.*s' (known: timeout_ms)",
                    (int)(kn > 64 ? 64 : kn), (const char *)k);
        return -1;
    }
    return 0;
bad:
    reply_error(x, ST_BAD_REQUEST, "QUERY: options must be a map");
    return -1;
}

/* Scans r into the executor; replies the error itself (returns -1). */
static int scan_region(req_ctx *x, region_t *r, query_run *run, int64_t timeout_ms)
{
    region_page_bound bound = {.limit = QUERY_PAGE_ENTRIES, .max_bytes = SIZE_MAX,
                               .with_values = true};
    uint64_t cursor = 0, next;
    do {
        int rc = region_scan_bounded(r, cursor, &bound, visit, run, &next);
        if (rc == RUN_ENOUGH)
            return 0;
        if (rc == RUN_TIMEOUT) {
            reply_error(x, ST_UNAVAILABLE, "QUERY: timed out after %lld ms (%llu entries scanned); "
                        "narrow the query or raise timeout_ms",
                        (long long)timeout_ms, (unsigned long long)run->scanned);
            return -1;
        }
        if (rc == RUN_ERROR) {
            if (run->rc == -ENOMEM)
                reply_error(x, ST_NO_MEMORY, "QUERY: out of memory");
            else if (run->rc == -E2BIG)
                reply_error(x, ST_TOO_LARGE, "QUERY: too many distinct values for an aggregate");
            else
                reply_error(x, ST_BAD_ARGUMENT, "query: at %u: %s", run->err.pos, run->err.msg);
            return -1;
        }
        if (rc) {
            reply_error(x, ST_NO_MEMORY, "QUERY: out of memory");
            return -1;
        }
        cursor = next;
    } while (cursor);
    return 0;
}

/* The reply: [columns, rows, stats]; refused when it would not fit. */
static void reply_result(req_ctx *x, qexec *ex, const query_run *run, int64_t t0)
{
    size_t total = 64;
    for (uint32_t i = 0; i < qexec_ncolumns(ex); i++)
        total += strlen(qexec_column(ex, i)) + 5;
    for (size_t i = 0; i < qexec_nrows(ex); i++) {
        size_t len;
        qexec_row(ex, i, &len);
        total += len;
    }
    if (total + 128 > reply_budget(x)) {
        reply_error(x, ST_TOO_LARGE, "QUERY: the result (%zu rows, %zu bytes) does not fit in one "
                    "reply of %zu bytes; add a LIMIT or select fewer fields",
                    qexec_nrows(ex), total, reply_budget(x));
        return;
    }
    reply_head(x, ST_OK, 3);
    msgpack_pack_array(&x->pk, qexec_ncolumns(ex));
    for (uint32_t i = 0; i < qexec_ncolumns(ex); i++)
        mpw_cstr(&x->pk, qexec_column(ex, i));
    msgpack_pack_array(&x->pk, (uint32_t)qexec_nrows(ex));
    for (size_t i = 0; i < qexec_nrows(ex); i++) {
        size_t len;
        const uint8_t *p = qexec_row(ex, i, &len);
        mpw_raw(&x->pk, p, len);
    }
    msgpack_pack_map(&x->pk, 4);
    mpw_kv_uint(&x->pk, "matched", qexec_matched(ex));
    mpw_kv_uint(&x->pk, "rows", qexec_nrows(ex));
    mpw_kv_uint(&x->pk, "scanned", run->scanned);
    mpw_kv_uint(&x->pk, "elapsed_us", (uint64_t)(mono_us() - t0));
    reply_done(x);
}

/* Parses, finds the region and runs; replies the error itself on a failure. */
static void run_query(req_ctx *x, query_t *q, const qvalue *params, uint32_t nparams,
                      int64_t timeout_ms, int64_t t0)
{
    region_t *r = registry_find(x->srv->registry, (const uint8_t *)q->region, strlen(q->region));
    if (!r) {
        reply_error(x, ST_UNKNOWN_REGION, "QUERY: no region named '%s'", q->region);
        return;
    }
    if (region_clustered(r)) {
        reply_error(x, ST_BAD_REQUEST, "QUERY: queries on a cluster are not implemented yet "
                    "(a member holds only part of region '%s')", q->region);
        return;
    }
    query_run run = {.source = q->source};
    if (timeout_ms > 0)
        run.deadline_us = t0 + timeout_ms * 1000;
    int rc = qexec_new(q, params, nparams, &run.x, &run.err);
    if (rc) {
        reply_error(x, rc == -ENOMEM ? ST_NO_MEMORY : ST_BAD_ARGUMENT, "query: at %u: %s",
                    run.err.pos, run.err.msg);
        return;
    }
    if (scan_region(x, r, &run, timeout_ms) == 0) {
        rc = qexec_finish(run.x, &run.err);
        if (rc == 0)
            reply_result(x, run.x, &run, t0);
        else
            reply_error(x, rc == -ENOMEM ? ST_NO_MEMORY : ST_BAD_ARGUMENT, "query: at %u: %s",
                        run.err.pos, run.err.msg);
    }
    qexec_free(run.x);
}

void handle_query(req_ctx *x)
{
    int64_t t0 = mono_us();
    const uint8_t *text;
    uint32_t tlen;
    if (arg_str(x, 0, &text, &tlen))
        return;
    qvalue params[QUERY_MAX_PARAMS];
    uint32_t nparams;
    int64_t timeout_ms;
    if (read_params(x, params, &nparams) || read_options(x, &timeout_ms))
        return;
    query_t *q;
    qerror err;
    int rc = query_parse((const char *)text, tlen, &q, &err);
    if (rc) {
        if (rc == -ENOMEM)
            reply_error(x, ST_NO_MEMORY, "QUERY: out of memory");
        else
            reply_error(x, ST_BAD_ARGUMENT, "query: at %u: %s", err.pos, err.msg);
        return;
    }
    run_query(x, q, params, nparams, timeout_ms, t0);
    query_free(q);
}
