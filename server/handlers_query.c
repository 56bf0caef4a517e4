/* QUERY and QUERY_PART (docs/protocol.md "QUERY", docs/query.md).
 *
 *   QUERY      [query_text, params?, options?] -> [columns, rows, stats]
 *   QUERY_PART [query_text, params, options]   -> [partial, buckets, matched, scanned]
 *
 * On a stand-alone server QUERY scans the region on the worker that
 * received it, page by page (each page holds its buckets' locks only while
 * it is read), and sends the whole result in one reply; a result larger
 * than the reply limit is refused (add a LIMIT). On a cluster member the
 * receiving member coordinates (query_coord.c): QUERY_PART asks each other
 * member for its part, the buckets it is primary for, as a partial result
 * (qexec_pack_partial) with the set of buckets it covered. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/mpw.h"
#include "common/proto.h"
#include "region/qast.h"
#include "region/qexec.h"
#include "region/qplan.h"
#include "server/command.h"
#include "server/handlers.h"
#include "server/query_local.h"
#include "server/registry.h"
#include "server/worker.h"

#define QUERY_PAGE_ENTRIES 512
#define QUERY_VALUE_DEPTH 64

int64_t query_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- reading the request ---- */

int query_decode_params(const uint8_t *raw, size_t len, qvalue *params, uint32_t *n)
{
    *n = 0;
    if (!raw)
        return 0;
    mp_cursor c;
    mp_cursor_init(&c, raw, len);
    uint32_t count;
    if (mp_read_array(&c, &count) || count > QUERY_MAX_PARAMS)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        size_t used = qvalue_decode(c.p, mp_left(&c), QUERY_VALUE_DEPTH, &params[i]);
        if (!used || mp_skip(&c, -1))
            return -1;
    }
    *n = count;
    return 0;
}

/* The options map: {"timeout_ms": uint (0: no limit), "explain": bool}. */
static int read_options(req_ctx *x, int64_t *timeout_ms, bool *explain)
{
    *timeout_ms = QUERY_DEFAULT_TIMEOUT_MS;
    *explain = false;
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
        if (kn == 7 && !memcmp(k, "explain", 7) && mp_read_bool(&c, explain) == 0)
            continue;
        reply_error(x, ST_BAD_ARGUMENT, "QUERY: unknown or invalid option '%.*s' (known: timeout_ms, explain)",
                    (int)(kn > 64 ? 64 : kn), (const char *)k);
        return -1;
    }
    return 0;
bad:
    reply_error(x, ST_BAD_REQUEST, "QUERY: options must be a map");
    return -1;
}

int query_read_args(req_ctx *x, query_args *a)
{
    memset(a, 0, sizeof(*a));
    if (arg_str(x, 0, &a->text, &a->tlen))
        return -1;
    if (x->req->argc >= 2) {
        mp_cursor c;
        arg_cursor(x, 1, &c);
        a->params_raw = c.p;
        if (mp_skip(&c, -1) == 0)
            a->params_len = (size_t)(c.p - a->params_raw);
        uint32_t count;
        mp_cursor t;
        mp_cursor_init(&t, a->params_raw, a->params_len);
        if (!a->params_len || mp_read_array(&t, &count)) {
            reply_error(x, ST_BAD_REQUEST, "QUERY: params must be an array of values");
            return -1;
        }
        if (count > QUERY_MAX_PARAMS) {
            reply_error(x, ST_BAD_ARGUMENT, "QUERY: at most %d parameters", QUERY_MAX_PARAMS);
            return -1;
        }
        if (query_decode_params(a->params_raw, a->params_len, a->params, &a->nparams)) {
            reply_error(x, ST_BAD_VALUE, "QUERY: a parameter is not a MessagePack value");
            return -1;
        }
    }
    return read_options(x, &a->timeout_ms, &a->explain);
}

/* ---- scanning this member's part ---- */

typedef struct scan_run {
    qexec *x;
    qsource source;
    qerror err;
    int rc;
    uint64_t scanned;
    int64_t deadline_us;
} scan_run;

enum { RUN_ENOUGH = 1, RUN_ERROR = 2, RUN_TIMEOUT = 3 };

static int visit(void *arg, const entry_view *e)
{
    scan_run *run = arg;
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
    if (run->deadline_us && (run->scanned & 255) == 0 && query_now_us() > run->deadline_us)
        return RUN_TIMEOUT;
    return 0;
}

static void set_fail(query_fail *f, int status, const char *msg)
{
    f->status = status;
    snprintf(f->msg, sizeof f->msg, "%s", msg);
}

/* An executor error (from qexec_new, _add, _finish, _merge) as a failure. */
static void exec_fail(query_fail *f, int rc, const qerror *err)
{
    if (rc == -ENOMEM) {
        set_fail(f, ST_NO_MEMORY, "QUERY: out of memory");
    } else if (rc == -E2BIG) {
        set_fail(f, ST_TOO_LARGE, "QUERY: too many distinct values for an aggregate");
    } else {
        f->status = ST_BAD_ARGUMENT;
        snprintf(f->msg, sizeof f->msg, "query: at %u: %s", err->pos, err->msg);
    }
}

int query_scan(region_t *r, qexec *ex, qsource source, bool primary_only, int64_t deadline_us,
               uint64_t *scanned, query_fail *f)
{
    scan_run run = {.x = ex, .source = source, .deadline_us = deadline_us};
    region_page_bound bound = {.limit = QUERY_PAGE_ENTRIES, .max_bytes = SIZE_MAX,
                               .with_values = true, .primary_only = primary_only};
    uint64_t cursor = 0, next;
    int rc;
    do {
        rc = region_scan_bounded(r, cursor, &bound, visit, &run, &next);
        cursor = next;
    } while (rc == 0 && cursor);
    *scanned += run.scanned;
    if (rc == 0 || rc == RUN_ENOUGH)
        return 0;
    if (rc == RUN_TIMEOUT) {
        f->status = ST_UNAVAILABLE;
        snprintf(f->msg, sizeof f->msg, "QUERY: timed out (%llu entries scanned); narrow the query "
                 "or raise timeout_ms", (unsigned long long)*scanned);
    } else if (rc == RUN_ERROR) {
        exec_fail(f, run.rc, &run.err);
    } else {
        set_fail(f, ST_NO_MEMORY, "QUERY: out of memory");
    }
    return -1;
}

/* ---- replying ---- */

void query_reply_fail(req_ctx *x, const query_fail *f) { reply_error(x, f->status, "%s", f->msg); }

void query_reply_result(req_ctx *x, qexec *ex, uint64_t matched, uint64_t scanned, int64_t t0)
{
    qerror err;
    int rc = qexec_finish(ex, &err);
    if (rc) {
        query_fail f;
        exec_fail(&f, rc, &err);
        query_reply_fail(x, &f);
        return;
    }
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
    mpw_kv_uint(&x->pk, "matched", matched);
    mpw_kv_uint(&x->pk, "rows", qexec_nrows(ex));
    mpw_kv_uint(&x->pk, "scanned", scanned);
    mpw_kv_uint(&x->pk, "elapsed_us", (uint64_t)(query_now_us() - t0));
    reply_done(x);
}

/* ---- the handlers ---- */

/* Parses a's text; replies the error itself (NULL). */
static query_t *parse(req_ctx *x, const query_args *a)
{
    query_t *q;
    qerror err;
    int rc = query_parse((const char *)a->text, a->tlen, &q, &err);
    if (rc == -ENOMEM)
        reply_error(x, ST_NO_MEMORY, "QUERY: out of memory");
    else if (rc)
        reply_error(x, ST_BAD_ARGUMENT, "query: at %u: %s", err.pos, err.msg);
    return rc ? NULL : q;
}

static region_t *find_region(req_ctx *x, const query_t *q)
{
    region_t *r = registry_find(x->srv->registry, (const uint8_t *)q->region, strlen(q->region));
    if (!r)
        reply_error(x, ST_UNKNOWN_REGION, "QUERY: no region named '%s'", q->region);
    return r;
}

static void run_local(req_ctx *x, region_t *r, const query_t *q, const query_args *a, int64_t t0)
{
    qexec *ex;
    qerror err;
    query_fail f;
    int rc = qexec_new(q, a->params, a->nparams, &ex, &err);
    if (rc) {
        exec_fail(&f, rc, &err);
        query_reply_fail(x, &f);
        return;
    }
    uint64_t scanned = 0;
    int64_t deadline = a->timeout_ms ? t0 + a->timeout_ms * 1000 : 0;
    if (query_scan(r, ex, q->source, false, deadline, &scanned, &f))
        query_reply_fail(x, &f);
    else
        query_reply_result(x, ex, qexec_matched(ex), scanned, t0);
    qexec_free(ex);
}

/* The plan's lines, collected for the reply. */
typedef struct plan_lines {
    char **v;
    size_t n;
    bool failed;
} plan_lines;

static void collect_line(void *arg, const char *line)
{
    plan_lines *pl = arg;
    char **v = realloc(pl->v, (pl->n + 1) * sizeof(*v));
    char *s = strdup(line);
    if (!v || !s) {
        free(s);
        if (v)
            pl->v = v;
        pl->failed = true;
        return;
    }
    pl->v = v;
    pl->v[pl->n++] = s;
}

/* EXPLAIN: the plan as rows of one column "plan", shaped like a result. */
static void reply_plan(req_ctx *x, const query_t *q, bool clustered, int64_t t0)
{
    plan_lines pl = {0};
    if (qplan_describe(q, clustered, collect_line, &pl) || pl.failed) {
        reply_error(x, ST_NO_MEMORY, "QUERY: out of memory");
    } else {
        reply_head(x, ST_OK, 3);
        msgpack_pack_array(&x->pk, 1);
        mpw_cstr(&x->pk, "plan");
        msgpack_pack_array(&x->pk, (uint32_t)pl.n);
        for (size_t i = 0; i < pl.n; i++) {
            msgpack_pack_array(&x->pk, 1);
            mpw_cstr(&x->pk, pl.v[i]);
        }
        msgpack_pack_map(&x->pk, 4);
        mpw_kv_uint(&x->pk, "matched", 0);
        mpw_kv_uint(&x->pk, "rows", pl.n);
        mpw_kv_uint(&x->pk, "scanned", 0);
        mpw_kv_uint(&x->pk, "elapsed_us", (uint64_t)(query_now_us() - t0));
        reply_done(x);
    }
    for (size_t i = 0; i < pl.n; i++)
        free(pl.v[i]);
    free(pl.v);
}

/* What both handlers start with: the arguments, the parsed query and its
 * region (*r NULL after replying UNKNOWN_REGION). NULL after replying an
 * error. */
static query_t *begin(req_ctx *x, query_args *a, region_t **r)
{
    if (query_read_args(x, a))
        return NULL;
    query_t *q = parse(x, a);
    *r = q ? find_region(x, q) : NULL;
    return q;
}

void handle_query(req_ctx *x)
{
    int64_t t0 = query_now_us();
    query_args a;
    region_t *r;
    query_t *q = begin(x, &a, &r);
    if (!q)
        return;
    if (r && !a.explain && region_clustered(r)) {
        query_coordinate(x, r, q, &a, t0); /* takes q */
        return;
    }
    if (r && a.explain)
        reply_plan(x, q, region_clustered(r), t0);
    else if (r)
        run_local(x, r, q, &a, t0);
    query_free(q);
}

/* This member's part of a cluster query into ex over r: the buckets it is
 * primary for, which must not change while it scans (else the gatherer
 * could count a bucket twice or not at all). *covered gets them. */
static int scan_part(region_t *r, qexec *ex, const query_t *q, const query_args *a, int64_t t0,
                     uint8_t *covered, uint64_t *scanned, query_fail *f)
{
    uint32_t nb = region_cfg(r)->total_num_buckets;
    uint8_t *after = calloc(1, (nb + 7) / 8);
    if (!after) {
        set_fail(f, ST_NO_MEMORY, "QUERY: out of memory");
        return -1;
    }
    region_primary_bitmap(r, covered);
    int64_t deadline = a->timeout_ms ? t0 + a->timeout_ms * 1000 : 0;
    int rc = query_scan(r, ex, q->source, true, deadline, scanned, f);
    region_primary_bitmap(r, after);
    if (!rc && memcmp(covered, after, (nb + 7) / 8)) {
        set_fail(f, ST_UNAVAILABLE, "QUERY: buckets moved during the query; retry");
        rc = -1;
    }
    free(after);
    return rc;
}

static void reply_part(req_ctx *x, qexec *ex, const uint8_t *covered, uint32_t nb, uint64_t scanned)
{
    qerror err;
    reply_head(x, ST_OK, 4);
    int rc = qexec_pack_partial(ex, &x->pk, &err);
    if (rc) { /* an error now would leave a broken reply: answer it instead */
        reply_discard(x);
        query_fail f;
        exec_fail(&f, rc, &err);
        query_reply_fail(x, &f);
        return;
    }
    msgpack_pack_bin(&x->pk, (nb + 7) / 8);
    msgpack_pack_bin_body(&x->pk, covered, (nb + 7) / 8);
    msgpack_pack_uint64(&x->pk, qexec_matched(ex));
    msgpack_pack_uint64(&x->pk, scanned);
    reply_done(x);
}

/* QUERY_PART: this member's part of a cluster query, as a partial result
 * with the buckets it covered. */
void handle_query_part(req_ctx *x)
{
    int64_t t0 = query_now_us();
    query_args a;
    region_t *r;
    query_t *q = begin(x, &a, &r);
    if (!q)
        return;
    if (r) {
        qexec *ex = NULL;
        qerror err;
        query_fail f;
        uint32_t nb = region_cfg(r)->total_num_buckets;
        uint8_t *covered = calloc(1, (nb + 7) / 8);
        uint64_t scanned = 0;
        int rc = covered ? qexec_new(q, a.params, a.nparams, &ex, &err) : -ENOMEM;
        if (rc)
            exec_fail(&f, rc, &err);
        else
            rc = scan_part(r, ex, q, &a, t0, covered, &scanned, &f);
        if (rc)
            query_reply_fail(x, &f);
        else
            reply_part(x, ex, covered, nb, scanned);
        qexec_free(ex);
        free(covered);
    }
    query_free(q);
}
