/* Index administration on a member: INDEX_CREATE, INDEX_DESTROY,
 * INDEX_LIST (docs/protocol.md; the indexes themselves: region/qindex.h).
 *
 * A stand-alone server keeps its index definitions with the region (the
 * region's index set, freed with it). A cluster member takes them from the
 * cluster map (server/member.c), so it refuses CREATE and DESTROY and
 * points at the locator, and lists its own copies' indexes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "region/qindex.h"
#include "server/handlers.h"
#include "server/conn.h"
#include "server/index_args.h"
#include "server/query_pool.h"
#include "server/registry.h"

/* A cluster's indexes are defined at its locator (they are in the map). */
static bool refuse_in_cluster(req_ctx *x, const char *what)
{
    if (!x->srv->clustered)
        return false;
    reply_error(x, ST_BAD_REQUEST, "this server is a member of a cluster: %s indexes through its "
                                   "locator (%s)", what, x->srv->cfg.locators[0]);
    return true;
}

/* Answers a failed qindex_create. */
static void index_create_error(req_ctx *x, int rc, const char *region, const char *name,
                        const char *expr, const qerror *err)
{
    switch (rc) {
    case -EEXIST:
        reply_error(x, ST_INDEX_EXISTS, "index '%s' already exists on region '%s'", name, region);
        break;
    case -EINVAL:
        reply_error(x, ST_BAD_ARGUMENT, "index expression '%.200s': at %u: %s", expr, err->pos,
                    err->msg);
        break;
    case -ENOSPC:
        reply_error(x, ST_BAD_ARGUMENT, "region '%s' has the most indexes it can (%d)", region,
                    QINDEX_MAX);
        break;
    default:
        reply_error(x, ST_NO_MEMORY, "out of memory building index '%s'", name);
        break;
    }
}

/* Building an index reads the whole region (about 1 s per million
 * entries): it runs on the query threads, not on the worker, and the
 * reply follows from the worker when it is done. */
typedef struct index_job {
    qjob job; /* keep first */
    char region[REGION_NAME_MAX + 1];
    index_args ia;
    conn_t *conn;
    uint64_t req_id;
    int rc;
    qerror err;
    uint64_t entries;
} index_job;

static void index_job_run(qjob *j)
{
    index_job *ij = (index_job *)j;
    ij->rc = 0;
    region_t *r = registry_find(j->w->srv->registry, (const uint8_t *)ij->region,
                                strlen(ij->region));
    if (!r) {
        ij->rc = -ENOENT; /* destroyed meanwhile */
        return;
    }
    ij->rc = qindex_create(r, ij->ia.name, ij->ia.expr, ij->ia.elen, ij->ia.kind, &ij->err);
    qindex_info info;
    if (ij->rc == 0 && qindex_get(r, ij->ia.name, &info) == 0)
        ij->entries = info.entries;
}

static void index_job_done(qjob *j, bool orphan)
{
    index_job *ij = (index_job *)j;
    conn_t *c = ij->conn;
    if (!orphan && !c->dead) {
        msg_request req = {.id = ij->req_id};
        req_ctx x = {.conn = c, .w = j->w, .srv = j->w->srv, .req = &req};
        msgpack_packer_init(&x.pk, c, conn_pack_write);
        if (ij->rc == -ESHUTDOWN) {
            reply_error(&x, ST_SHUTTING_DOWN, "the server is stopping");
        } else if (ij->rc == -ENOENT) {
            reply_error(&x, ST_UNKNOWN_REGION, "region '%s' was destroyed", ij->region);
        } else if (ij->rc) {
            index_create_error(&x, ij->rc, ij->region, ij->ia.name, ij->ia.expr, &ij->err);
        } else {
            log_info("created %s index %s on %s (%s): %llu entries",
                     qindex_kind_name(ij->ia.kind), ij->ia.name, ij->region, ij->ia.expr,
                     (unsigned long long)ij->entries);
            reply_status(&x, ST_OK);
        }
        conn_kick(c);
    }
    conn_wait_done(c);
    free(ij);
}

void handle_index_create(req_ctx *x)
{
    region_t *r;
    index_job *ij = calloc(1, sizeof(*ij));
    if (!ij) {
        reply_error(x, ST_NO_MEMORY, "out of memory");
        return;
    }
    if (refuse_in_cluster(x, "create") || arg_region(x, 0, &r) || index_args_read(x, &ij->ia)) {
        free(ij);
        return;
    }
    snprintf(ij->region, sizeof ij->region, "%s", region_cfg(r)->name);
    ij->conn = x->conn;
    ij->req_id = x->req->id;
    ij->rc = -ESHUTDOWN; /* until it runs: the pool may be stopping */
    ij->job.run = index_job_run;
    ij->job.done = index_job_done;
    ij->job.w = x->w;
    x->conn->waits++; /* answered from index_job_done */
    qpool_submit(x->srv->qpool, &ij->job);
}

void handle_index_destroy(req_ctx *x)
{
    region_t *r;
    char name[QINDEX_NAME_MAX + 1];
    if (refuse_in_cluster(x, "destroy") || arg_region(x, 0, &r) || index_arg_name(x, 1, name))
        return;
    if (qindex_destroy(r, name)) {
        reply_error(x, ST_NOT_FOUND, "index '%s' not found on region '%s'", name,
                    region_cfg(r)->name);
        return;
    }
    log_info("destroyed index %s on %s", name, region_cfg(r)->name);
    reply_status(x, ST_OK);
}

static void pack_info(msgpack_packer *pk, const char *region, const qindex_info *i)
{
    msgpack_pack_map(pk, 7);
    mpw_kv_str(pk, "name", i->name);
    mpw_kv_str(pk, "region", region);
    mpw_kv_str(pk, "expression", i->expr);
    mpw_kv_str(pk, "type", qindex_kind_name(i->kind));
    mpw_kv_uint(pk, "entries", i->entries);
    mpw_kv_uint(pk, "bytes", i->bytes);
    mpw_kv_bool(pk, "valid", i->valid);
}

/* INDEX_LIST [region?]: every index of one region, or of every region. */
void handle_index_list(req_ctx *x)
{
    region_t *only = NULL;
    if (x->req->argc > 0) {
        mp_cursor c;
        arg_cursor(x, 0, &c);
        if (mp_read_nil(&c) != 0 && arg_region(x, 0, &only))
            return;
    }
    const registry_view *v = registry_snapshot(x->srv->registry);
    size_t nr = only ? 1 : registry_view_count(v);
    qindex_info *infos = malloc((nr ? nr : 1) * QINDEX_MAX * sizeof(*infos));
    size_t *counts = malloc((nr ? nr : 1) * sizeof(*counts));
    if (!infos || !counts) {
        free(infos);
        free(counts);
        reply_error(x, ST_NO_MEMORY, "INDEX_LIST: out of memory");
        return;
    }
    size_t total = 0;
    for (size_t i = 0; i < nr; i++) {
        size_t n = qindex_list(only ? only : registry_view_at(v, i), infos + i * QINDEX_MAX,
                               QINDEX_MAX);
        counts[i] = n < QINDEX_MAX ? n : QINDEX_MAX;
        total += counts[i];
    }
    reply_head(x, ST_OK, 1);
    msgpack_pack_array(&x->pk, (uint32_t)total);
    for (size_t i = 0; i < nr; i++) {
        region_t *r = only ? only : registry_view_at(v, i);
        for (size_t k = 0; k < counts[i]; k++)
            pack_info(&x->pk, region_cfg(r)->name, &infos[i * QINDEX_MAX + k]);
    }
    reply_done(x);
    free(infos);
    free(counts);
}
