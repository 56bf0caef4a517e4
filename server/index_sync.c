/* A member's indexes follow the cluster map (see index_sync.h). */
#include "server/index_sync.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/mpw.h"
#include "region/qindex.h"
#include "server/registry.h"
#include "server/server.h"

/* Buckets built per index and region per timer tick: ~9,000 entries per
 * bucket at a million entries take a few ms each. */
#define BUILD_STEP 4

/* The build timer: one member agent per process. */
static struct {
    struct server *srv;
    bool scheduled;
} g_build;

static void on_build_tick(evutil_socket_t fd, short what, void *arg)
{
    struct event_base *base = arg;
    (void)fd;
    (void)what;
    g_build.scheduled = false;
    const registry_view *v = registry_snapshot(g_build.srv->registry);
    uint32_t left = 0;
    for (size_t i = 0; i < registry_view_count(v); i++)
        left += qindex_build_some(registry_view_at(v, i), BUILD_STEP);
    if (left) {
        struct timeval now = {0, 0}; /* after the events already waiting */
        g_build.scheduled = event_base_once(base, -1, EV_TIMEOUT, on_build_tick, base, &now) == 0;
    } else {
        log_info("indexes built");
    }
}

static void build_later(struct event_base *base, struct server *srv)
{
    g_build.srv = srv;
    if (g_build.scheduled)
        return;
    struct timeval now = {0, 0};
    g_build.scheduled = event_base_once(base, -1, EV_TIMEOUT, on_build_tick, base, &now) == 0;
}

static bool same_definition(const qindex_info *have, const cmap_index *want)
{
    return strcmp(have->expr, want->expr) == 0 &&
           strcmp(qindex_kind_name(have->kind), want->type) == 0;
}

static bool create_one(region_t *r, const cmap_region *mr, const cmap_index *ix)
{
    qindex_kind kind;
    if (qindex_kind_parse(ix->type, strlen(ix->type), &kind)) {
        log_error("index %s on %s: unknown type %s in the cluster map", ix->name, mr->name,
                  ix->type);
        return false;
    }
    qerror err;
    int rc = qindex_create_deferred(r, ix->name, ix->expr, strlen(ix->expr), kind, &err);
    if (rc == -EINVAL)
        log_error("index %s on %s: expression '%s': at %u: %s", ix->name, mr->name, ix->expr,
                  err.pos, err.msg);
    else if (rc)
        log_error("index %s on %s: cannot build it here (%s)", ix->name, mr->name,
                  rc == -ENOSPC ? "no room for more indexes" : "out of memory");
    else
        log_info("building %s index %s on %s (%s) from the cluster map", ix->type, ix->name,
                 mr->name, ix->expr);
    return rc == 0;
}

int index_pack_stats(region_t *r, msgpack_packer *pk)
{
    qindex_info infos[QINDEX_MAX];
    size_t n = qindex_list(r, infos, QINDEX_MAX);
    if (n > QINDEX_MAX)
        n = QINDEX_MAX;
    uint8_t *bits = NULL;
    if (n && (bits = calloc((region_cfg(r)->total_num_buckets + 7) / 8, 1)))
        region_primary_bitmap(r, bits);
    int rc = msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n && !rc; i++) {
        uint64_t primary = 0;
        if (bits)
            qindex_entries_in(r, infos[i].name, bits, &primary);
        rc |= msgpack_pack_array(pk, 5);
        rc |= mpw_cstr(pk, infos[i].name);
        rc |= msgpack_pack_uint64(pk, primary);
        rc |= msgpack_pack_uint64(pk, infos[i].entries);
        rc |= msgpack_pack_uint64(pk, infos[i].bytes);
        rc |= infos[i].valid ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    }
    free(bits);
    return rc;
}

void index_sync_region(struct event_base *base, struct server *srv, region_t *r,
                       const cmap_region *mr)
{
    qindex_info have[QINDEX_MAX];
    size_t n = qindex_list(r, have, QINDEX_MAX);
    if (n > QINDEX_MAX)
        n = QINDEX_MAX;
    /* first the ones that went or changed, which frees their room */
    for (size_t i = 0; i < n; i++) {
        const cmap_index *want = cmap_index_find(mr, have[i].name);
        if (want && same_definition(&have[i], want))
            continue;
        qindex_destroy(r, have[i].name);
        log_info("dropped index %s on %s: %s", have[i].name, mr->name,
                 want ? "its definition changed" : "no longer in the cluster map");
    }
    bool created = false;
    for (uint32_t k = 0; k < mr->nindexes; k++) {
        qindex_info info;
        if (qindex_get(r, mr->indexes[k].name, &info) != 0)
            created |= create_one(r, mr, &mr->indexes[k]);
    }
    if (created)
        build_later(base, srv);
}
