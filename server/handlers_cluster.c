/* Cluster requests a member answers: the map, replicated writes, image
 * pages, peer heartbeats (docs/cluster.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "server/cluster.h"
#include "server/command.h"
#include "server/handlers.h"
#include "server/worker.h"

#define IMAGE_PAGE_BYTES (1u << 20)
#define IMAGE_PAGE_ENTRIES 4096
#define TRACKER_PAIRS_MAX 256

void handle_cluster_map(req_ctx *x)
{
    server_t *srv = x->srv;
    pthread_mutex_lock(&srv->peers_lock);
    reply_head(x, ST_OK, 1);
    if (srv->map_blob)
        mpw_raw(&x->pk, srv->map_blob, srv->map_len);
    else
        msgpack_pack_nil(&x->pk);
    reply_done(x);
    pthread_mutex_unlock(&srv->peers_lock);
}

/* [bucket, term, kind, key, value|nil, counter, member_id, client_id, seq] */
static int read_repl_op(mp_cursor *c, uint32_t nbuckets, uint32_t *bucket, uint64_t *term,
                        region_op *op)
{
    uint32_t n;
    uint64_t b, kind, mid;
    if (mp_read_array(c, &n) || n != 9 || mp_read_uint(c, &b) || b >= nbuckets ||
        mp_read_uint(c, term) || mp_read_uint(c, &kind) || kind > REGION_OP_CLEAR ||
        mp_read_bytes(c, &op->key, &op->klen, &op->key_is_str))
        return -1;
    op->kind = (uint8_t)kind;
    *bucket = (uint32_t)b;
    op->value = c->p;
    if (mp_read_nil(c)) {
        if (mp_skip(c, -1))
            return -1;
        op->vlen = (uint32_t)(c->p - op->value);
    } else {
        op->value = NULL;
        op->vlen = 0;
    }
    if (mp_read_uint(c, &op->counter) || mp_read_uint(c, &mid) || mid > UINT32_MAX ||
        mp_read_uint(c, &op->client_id) || mp_read_uint(c, &op->seq))
        return -1;
    op->member_id = (uint32_t)mid;
    op->hash = hash_key(op->key, op->klen);
    return 0;
}

void handle_replicate(req_ctx *x)
{
    region_t *r;
    mp_cursor c;
    uint32_t n;
    if (arg_region(x, 0, &r))
        return;
    arg_cursor(x, 1, &c);
    if (mp_read_array(&c, &n)) {
        reply_error(x, ST_BAD_REQUEST, "REPLICATE: ops must be an array");
        return;
    }
    if (!region_clustered(r)) {
        reply_error(x, ST_BAD_REQUEST, "REPLICATE: this server is not in a cluster");
        return;
    }
    uint32_t nb = region_cfg(r)->total_num_buckets;
    for (uint32_t i = 0; i < n; i++) {
        region_op op;
        uint32_t bucket;
        uint64_t term;
        if (read_repl_op(&c, nb, &bucket, &term, &op)) {
            reply_error(x, ST_BAD_REQUEST, "REPLICATE: malformed op %u", i);
            return;
        }
        int rc = region_replica_apply(r, bucket, term, &op);
        if (rc == -ESTALE) {
            reply_error(x, ST_UNAVAILABLE, "REPLICATE: bucket %u has a newer primary", bucket);
            return;
        }
        if (rc) {
            reply_error(x, ST_NO_MEMORY, "out of memory");
            return;
        }
    }
    reply_status(x, ST_OK);
}

typedef struct image_acc {
    msgpack_packer pk;
    uint32_t count;
} image_acc;

/* [tomb, key, value|nil, counter, member_id] */
static int collect_image(void *arg, const entry_view *e)
{
    image_acc *a = arg;
    int rc = msgpack_pack_array(&a->pk, 5);
    rc |= msgpack_pack_uint8(&a->pk, e->tomb ? REGION_OP_REMOVE : REGION_OP_PUT);
    rc |= mpw_key(&a->pk, e->key, e->klen, e->key_is_str);
    rc |= e->tomb ? msgpack_pack_nil(&a->pk) : mpw_raw(&a->pk, e->value, e->vlen);
    rc |= msgpack_pack_uint64(&a->pk, e->version.counter);
    rc |= msgpack_pack_uint32(&a->pk, e->version.member_id);
    a->count++;
    return rc ? -ENOMEM : 0;
}

static void pack_tracker(req_ctx *x, region_t *r, uint32_t bucket)
{
    uint64_t (*pairs)[2] = malloc(TRACKER_PAIRS_MAX * sizeof(*pairs));
    size_t n = pairs ? region_tracker_export(r, bucket, pairs, TRACKER_PAIRS_MAX) : 0;
    msgpack_pack_array(&x->pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_array(&x->pk, 2);
        msgpack_pack_uint64(&x->pk, pairs[i][0]);
        msgpack_pack_uint64(&x->pk, pairs[i][1]);
    }
    free(pairs);
}

/* [region, bucket, requester member_id, cursor] ->
 * [next_cursor, entries, tracker pairs (last page only), counter, floor] */
void handle_image_page(req_ctx *x)
{
    region_t *r;
    uint64_t bucket, requester, cursor, version, next;
    if (arg_region(x, 0, &r) || arg_uint(x, 1, &bucket) || arg_uint(x, 2, &requester) ||
        arg_uint(x, 3, &cursor) || arg_uint(x, 4, &version))
        return;
    if (!region_clustered(r) || bucket >= region_cfg(r)->total_num_buckets ||
        requester > UINT32_MAX) {
        reply_error(x, ST_BAD_ARGUMENT, "IMAGE_PAGE: no such bucket here");
        return;
    }
    if (region_bucket_role(r, (uint32_t)bucket) != ROLE_PRIMARY || !cluster_serving(x->srv)) {
        reply_error(x, ST_UNAVAILABLE, "IMAGE_PAGE: not primary for bucket %u", (unsigned)bucket);
        return;
    }
    /* Until this primary has applied the map that made the requester a
     * copy, a map it applies meanwhile (older) would drop the requester from
     * the bucket's targets, and writes acknowledged then would never reach
     * the new copy. */
    if (atomic_load(&x->srv->metadata_version) < version) {
        reply_error(x, ST_UNAVAILABLE, "IMAGE_PAGE: map version %llu not applied here yet",
                    (unsigned long long)version);
        return;
    }
    /* from here on every write to the bucket also goes to the requester;
     * everything written before is in the pages */
    if (cursor == 0 && region_bucket_add_target(r, (uint32_t)bucket, (uint32_t)requester)) {
        reply_error(x, ST_NO_MEMORY, "IMAGE_PAGE: cannot add a copy");
        return;
    }
    buf_t *tmp = &x->w->scratch;
    buf_reset(tmp);
    image_acc a = {.count = 0};
    mpw_init(&a.pk, tmp);
    region_page_bound bound = {.limit = IMAGE_PAGE_ENTRIES, .max_bytes = IMAGE_PAGE_BYTES,
                               .per_entry = 32, .with_values = true};
    if (region_image_scan(r, (uint32_t)bucket, cursor, &bound, collect_image, &a, &next)) {
        reply_error(x, ST_NO_MEMORY, "out of memory");
        return;
    }
    uint64_t counter, floor;
    region_bucket_counters(r, (uint32_t)bucket, &counter, &floor);
    reply_head(x, ST_OK, 5);
    msgpack_pack_uint64(&x->pk, next);
    msgpack_pack_array(&x->pk, a.count);
    mpw_raw(&x->pk, tmp->data, tmp->len);
    if (next == 0)
        pack_tracker(x, r, (uint32_t)bucket);
    else
        msgpack_pack_array(&x->pk, 0);
    msgpack_pack_uint64(&x->pk, counter);
    msgpack_pack_uint64(&x->pk, floor);
    reply_done(x);
    buf_reset(tmp);
    buf_shrink_idle(tmp, 64 * 1024);
}

/* [member_id, metadata_version] -> [metadata_version, in_view] */
void handle_peer_heartbeat(req_ctx *x)
{
    uint64_t id, version;
    if (arg_uint(x, 0, &id) || arg_uint(x, 1, &version))
        return;
    peer_addr a;
    bool in_view = id <= UINT32_MAX && cluster_peer_find(x->srv, (uint32_t)id, &a) == 0;
    reply_head(x, ST_OK, 2);
    msgpack_pack_uint64(&x->pk, atomic_load(&x->srv->metadata_version));
    if (in_view)
        msgpack_pack_true(&x->pk);
    else
        msgpack_pack_false(&x->pk);
    reply_done(x);
}
