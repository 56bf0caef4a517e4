/* Index administration on a member: INDEX_CREATE, INDEX_DESTROY,
 * INDEX_LIST (docs/protocol.md; the indexes themselves: region/qindex.h).
 *
 * A stand-alone server keeps its index definitions with the region (the
 * region's index set, freed with it). A cluster member takes them from the
 * cluster map (server/member.c), so it refuses CREATE and DESTROY and
 * points at the locator, and lists its own copies' indexes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "region/qindex.h"
#include "server/handlers.h"
#include "server/registry.h"

/* Reads argument i as an index name into name (NUL-terminated). */
static int arg_index_name(req_ctx *x, int i, char name[QINDEX_NAME_MAX + 1])
{
    const uint8_t *p;
    uint32_t n;
    if (arg_str(x, i, &p, &n))
        return -1;
    if (qindex_name_check((const char *)p, n)) {
        reply_error(x, ST_BAD_ARGUMENT,
                    "invalid index name '%.*s': use 1-128 characters of A-Z a-z 0-9 _ . -",
                    (int)(n > 64 ? 64 : n), p);
        return -1;
    }
    memcpy(name, p, n);
    name[n] = 0;
    return 0;
}

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

void handle_index_create(req_ctx *x)
{
    region_t *r;
    char name[QINDEX_NAME_MAX + 1];
    const uint8_t *expr, *type;
    uint32_t elen, tlen = 0;
    qindex_kind kind = QINDEX_RANGE;
    if (refuse_in_cluster(x, "create") || arg_region(x, 0, &r) || arg_index_name(x, 1, name) ||
        arg_str(x, 2, &expr, &elen))
        return;
    if (x->req->argc > 3) {
        mp_cursor c;
        arg_cursor(x, 3, &c);
        if (mp_read_nil(&c) != 0) {
            if (arg_str(x, 3, &type, &tlen))
                return;
            if (qindex_kind_parse((const char *)type, tlen, &kind)) {
                reply_error(x, ST_BAD_ARGUMENT, "unknown index type '%.*s'; expected range or hash",
                            (int)(tlen > 32 ? 32 : tlen), type);
                return;
            }
        }
    }
    if (elen > QINDEX_EXPR_MAX) {
        reply_error(x, ST_TOO_LARGE, "an index expression is at most %d bytes", QINDEX_EXPR_MAX);
        return;
    }
    char text[QINDEX_EXPR_MAX + 1];
    memcpy(text, expr, elen);
    text[elen] = 0;
    qerror err;
    int rc = qindex_create(r, name, text, elen, kind, &err);
    if (rc) {
        index_create_error(x, rc, region_cfg(r)->name, name, text, &err);
        return;
    }
    qindex_info info;
    if (qindex_get(r, name, &info) == 0)
        log_info("created %s index %s on %s (%s): %llu entries", qindex_kind_name(kind), name,
                 region_cfg(r)->name, text, (unsigned long long)info.entries);
    reply_status(x, ST_OK);
}

void handle_index_destroy(req_ctx *x)
{
    region_t *r;
    char name[QINDEX_NAME_MAX + 1];
    if (refuse_in_cluster(x, "destroy") || arg_region(x, 0, &r) || arg_index_name(x, 1, name))
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
