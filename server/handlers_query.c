/* The query requests (docs/protocol.md "QUERY", docs/query.md):
 *
 *   QUERY        [query_text, params?, options?] -> [columns, rows, stats]
 *   QUERY_NEXT   [cursor, options?]               -> [columns, rows, stats]
 *   QUERY_CLOSE  [cursor]                         -> OK | NOT_FOUND
 *   QUERY_CANCEL [request_id]                     -> OK | NOT_FOUND
 *   QUERY_PART   [query_text, params, options]    -> [partial, buckets, matched, scanned]
 *
 * QUERY opens a cursor (query_cursor.h) that answers page by page; the
 * scans run on the query pool, never on the worker. QUERY_PART is one
 * member's share of a cluster query for the buckets it is asked for and
 * is primary for, also run on the pool. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/mpw.h"
#include "common/proto.h"
#include "region/qast.h"
#include "region/qexec.h"
#include "region/qindex.h"
#include "region/qplan.h"
#include "server/command.h"
#include "server/handlers.h"
#include "server/query_cursor.h"
#include "server/query_local.h"
#include "server/query_part.h"
#include "server/query_pool.h"
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

static bool key_is(const uint8_t *k, uint32_t kn, const char *name)
{
    return kn == strlen(name) && memcmp(k, name, kn) == 0;
}

/* One option of the map; false when the key is unknown or its value wrong. */
static bool read_option(mp_cursor *c, const uint8_t *k, uint32_t kn, query_args *a)
{
    uint64_t v;
    bool is_str;
    if (key_is(k, kn, "timeout_ms") && mp_read_uint(c, &v) == 0 && v <= INT32_MAX) {
        a->timeout_ms = (int64_t)v;
        return true;
    }
    if (key_is(k, kn, "explain"))
        return mp_read_bool(c, &a->explain) == 0;
    if (key_is(k, kn, "page_size") && mp_read_uint(c, &v) == 0 && v >= 1 && v <= UINT32_MAX) {
        a->page_size = v;
        return true;
    }
    if (key_is(k, kn, "buckets"))
        return mp_read_bytes(c, &a->buckets, &a->buckets_len, &is_str) == 0 && !is_str;
    return false;
}

int query_read_options(req_ctx *x, int i, query_args *a)
{
    a->timeout_ms = QUERY_DEFAULT_TIMEOUT_MS;
    a->explain = false;
    a->page_size = 0;
    a->buckets = NULL;
    if ((int)x->req->argc <= i)
        return 0;
    mp_cursor c;
    uint32_t n;
    arg_cursor(x, i, &c);
    if (mp_read_map(&c, &n)) {
        reply_error(x, ST_BAD_REQUEST, "QUERY: options must be a map");
        return -1;
    }
    for (uint32_t k = 0; k < n; k++) {
        const uint8_t *key;
        uint32_t kn;
        if (mp_read_str(&c, &key, &kn)) {
            reply_error(x, ST_BAD_REQUEST, "QUERY: option names must be strings");
            return -1;
        }
        if (!read_option(&c, key, kn, a)) {
            reply_error(x, ST_BAD_ARGUMENT, "QUERY: unknown or invalid option '%.*s' (known: "
                        "timeout_ms, page_size, explain)", (int)(kn > 64 ? 64 : kn),
                        (const char *)key);
            return -1;
        }
    }
    return 0;
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
    return query_read_options(x, 2, a);
}

/* ---- failures ---- */

void query_exec_fail(query_fail *f, int rc, const qerror *err)
{
    if (rc == -ENOMEM) {
        f->status = ST_NO_MEMORY;
        snprintf(f->msg, sizeof f->msg, "QUERY: out of memory");
    } else if (rc == -E2BIG) {
        f->status = ST_TOO_LARGE;
        snprintf(f->msg, sizeof f->msg, "QUERY: too many distinct values for an aggregate");
    } else {
        f->status = ST_BAD_ARGUMENT;
        snprintf(f->msg, sizeof f->msg, "query: at %u: %s", err->pos, err->msg);
    }
}

void query_reply_fail(req_ctx *x, const query_fail *f) { reply_error(x, f->status, "%s", f->msg); }

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

/* EXPLAIN: the plan as rows of one column "plan", shaped like a result.
 * The index it names is the one the scans would choose now, with a's
 * parameters. */
static void reply_plan(req_ctx *x, region_t *r, const query_t *q, const query_args *a,
                       int64_t t0)
{
    plan_lines pl = {0};
    qindex_probe *probe = NULL;
    int rc = qindex_plan(r, q, a->params, a->nparams, &probe);
    const char *access = probe ? qindex_probe_describe(probe) : NULL;
    if (rc < 0 || qplan_describe(q, region_clustered(r), access, collect_line, &pl) ||
        pl.failed) {
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
    qindex_probe_free(probe);
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
    if (r && !a.explain) {
        qcursor_open(x, r, q, &a, t0); /* takes q */
        return;
    }
    if (r)
        reply_plan(x, r, q, &a, t0);
    query_free(q);
}

void handle_query_next(req_ctx *x)
{
    uint64_t id;
    query_args a;
    memset(&a, 0, sizeof a);
    if (arg_uint(x, 0, &id) || query_read_options(x, 1, &a))
        return;
    qcursor_next(x, id, &a);
}

void handle_query_close(req_ctx *x)
{
    uint64_t id;
    if (arg_uint(x, 0, &id) == 0)
        qcursor_close(x, id);
}

void handle_query_cancel(req_ctx *x)
{
    uint64_t id;
    if (arg_uint(x, 0, &id) == 0)
        qcursor_cancel(x, id);
}

/* ---- QUERY_PART ---- */

static void reply_part(req_ctx *x, const qpart_job *p)
{
    if (p->fail.status) {
        query_reply_fail(x, &p->fail);
        return;
    }
    reply_head(x, ST_OK, 4);
    mpw_raw(&x->pk, buf_rptr(&p->partial), buf_readable(&p->partial));
    msgpack_pack_bin(&x->pk, (p->nbuckets + 7) / 8);
    msgpack_pack_bin_body(&x->pk, p->covered, (p->nbuckets + 7) / 8);
    msgpack_pack_uint64(&x->pk, p->matched);
    msgpack_pack_uint64(&x->pk, p->scanned);
    reply_done(x);
}

/* The part's job finished (on the worker again): answer it. */
static void on_part_done(qjob *j, bool orphan)
{
    qpart_job *p = (qpart_job *)j;
    conn_t *c = p->owner;
    qcursor_untrack_part(c, p);
    if (!orphan && !c->dead) {
        msg_request req = {.id = p->req_id};
        req_ctx x = {.conn = c, .w = j->w, .srv = j->w->srv, .req = &req};
        msgpack_packer_init(&x.pk, c, conn_pack_write);
        reply_part(&x, p);
        conn_kick(c);
    }
    conn_wait_done(c);
    qpart_free(p);
}

/* QUERY_PART: this member's share of a cluster query (the buckets of the
 * "buckets" option, or all, that it is primary for) as a partial result
 * with the buckets it covered. */
void handle_query_part(req_ctx *x)
{
    int64_t t0 = query_now_us();
    query_args a;
    region_t *r;
    query_t *q = begin(x, &a, &r);
    if (!q)
        return;
    uint32_t nb = r ? region_cfg(r)->total_num_buckets : 0;
    qpart_job *p = NULL;
    if (!r) {
        /* begin replied UNKNOWN_REGION */
    } else if (a.buckets && a.buckets_len != (nb + 7) / 8) {
        reply_error(x, ST_BAD_ARGUMENT, "QUERY_PART: buckets must be a bitmap of %u bytes",
                    (nb + 7) / 8);
    } else if (!(p = qpart_new(region_cfg(r)->name, a.text, a.tlen, a.params_raw, a.params_len,
                               a.buckets, nb))) {
        reply_error(x, ST_NO_MEMORY, "QUERY: out of memory");
    } else {
        p->primary_only = true;
        p->deadline_us = a.timeout_ms ? t0 + a.timeout_ms * 1000 : 0;
        p->owner = x->conn;
        p->req_id = x->req->id;
        p->job.done = on_part_done;
        p->job.w = x->w;
        x->conn->waits++; /* answered from on_part_done */
        qcursor_track_part(x->conn, p);
        qpool_submit(x->srv->qpool, &p->job);
    }
    query_free(q);
}
