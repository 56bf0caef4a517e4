/* Entry operations: put, get, remove, bulk and scans. */
#include <errno.h>
#include <stdlib.h>

#include "common/mpw.h"
#include "common/proto.h"
#include "server/command.h"
#include "server/cluster.h"
#include "server/handlers.h"
#include "server/replicate.h"
#include "server/worker.h"

#define SCAN_MAX_LIMIT 10000

static void reply_no_memory(req_ctx *x)
{
    reply_error(x, ST_NO_MEMORY, "out of memory");
}

/* ---- clusters: routing checks and the event id ---- */

static void reply_redirect(req_ctx *x, uint32_t primary_id)
{
    reply_head(x, ST_REDIRECT, 2);
    msgpack_pack_uint64(&x->pk, atomic_load(&x->srv->metadata_version));
    msgpack_pack_uint32(&x->pk, primary_id);
    reply_done(x);
}

/* For a clustered region: may this member serve a read of the key's
 * bucket? If not, answers REDIRECT or UNAVAILABLE and returns -1. */
static int cluster_read_ok(req_ctx *x, region_t *r, uint64_t hash)
{
    if (!region_clustered(r))
        return 0;
    uint32_t pid, bucket = region_bucket_of(r, hash);
    int rc = region_read_check(r, bucket, cluster_serving(x->srv), &pid);
    if (rc == RW_NOT_PRIMARY) {
        reply_redirect(x, pid);
        return -1;
    }
    if (rc) {
        reply_error(x, ST_UNAVAILABLE, "bucket %u is not being served here right now; retry",
                    bucket);
        return -1;
    }
    return 0;
}

/* Reads the optional event id argument i ([client_id, seq] or nil). */
static int arg_event_id(req_ctx *x, int i, uint64_t *client_id, uint64_t *seq)
{
    *client_id = *seq = 0;
    if ((uint32_t)i >= x->req->argc)
        return 0;
    mp_cursor c;
    uint32_t n;
    arg_cursor(x, i, &c);
    if (mp_read_nil(&c) == 0)
        return 0;
    arg_cursor(x, i, &c);
    if (mp_read_array(&c, &n) || n != 2 || mp_read_uint(&c, client_id) || mp_read_uint(&c, seq)) {
        reply_error(x, ST_BAD_REQUEST, "%s: event_id must be [client_id, sequence]", x->cmd->name);
        return -1;
    }
    return 0;
}

static void cluster_key_write(req_ctx *x, region_t *r, const key_arg *k, int kind,
                              const msg_slice *v, int event_arg)
{
    region_op op = {.kind = (uint8_t)kind, .hash = k->hash, .key = k->p, .klen = k->n,
                    .key_is_str = k->is_str};
    if (v) {
        op.value = v->p;
        op.vlen = v->n;
    }
    if (arg_event_id(x, event_arg, &op.client_id, &op.seq))
        return;
    repl_write(x, r, &op, 1, NULL, REPL_REPLY_STATUS, 0);
}

void handle_put(req_ctx *x)
{
    region_t *r;
    key_arg k;
    const msg_slice *v = &x->req->arg[2];
    if (arg_region(x, 0, &r) || arg_key(x, 1, &k) || check_value(x, "value", v->n))
        return;
    if (region_clustered(r)) {
        cluster_key_write(x, r, &k, REGION_OP_PUT, v, 3);
        return;
    }
    if (region_put(r, k.hash, k.p, k.n, k.is_str, v->p, v->n, NULL)) {
        reply_no_memory(x);
        return;
    }
    reply_status(x, ST_OK);
}

/* Visitors run under the bucket lock and write the reply directly, so a get
 * copies the value exactly once: from the entry into the output buffer. */
static int write_value_reply(void *arg, const entry_view *e)
{
    req_ctx *x = arg;
    reply_head(x, ST_OK, 1);
    mpw_raw(&x->pk, e->value, e->vlen);
    reply_done(x);
    return 0;
}

void handle_get(req_ctx *x)
{
    region_t *r;
    key_arg k;
    if (arg_region(x, 0, &r) || arg_key(x, 1, &k) || cluster_read_ok(x, r, k.hash))
        return;
    if (!region_get(r, k.hash, k.p, k.n, write_value_reply, x))
        reply_status(x, ST_NOT_FOUND);
}

static int write_entry_reply(void *arg, const entry_view *e)
{
    req_ctx *x = arg;
    reply_head(x, ST_OK, 3);
    mpw_raw(&x->pk, e->value, e->vlen);
    msgpack_pack_uint32(&x->pk, e->version.member_id);
    msgpack_pack_uint64(&x->pk, e->version.counter);
    reply_done(x);
    return 0;
}

void handle_get_entry(req_ctx *x)
{
    region_t *r;
    key_arg k;
    if (arg_region(x, 0, &r) || arg_key(x, 1, &k) || cluster_read_ok(x, r, k.hash))
        return;
    if (!region_get(r, k.hash, k.p, k.n, write_entry_reply, x))
        reply_status(x, ST_NOT_FOUND);
}

void handle_remove(req_ctx *x)
{
    region_t *r;
    key_arg k;
    if (arg_region(x, 0, &r) || arg_key(x, 1, &k))
        return;
    if (region_clustered(r)) {
        cluster_key_write(x, r, &k, REGION_OP_REMOVE, NULL, 2);
        return;
    }
    reply_status(x, region_remove(r, k.hash, k.p, k.n) ? ST_OK : ST_NOT_FOUND);
}

void handle_contains_key(req_ctx *x)
{
    region_t *r;
    key_arg k;
    if (arg_region(x, 0, &r) || arg_key(x, 1, &k) || cluster_read_ok(x, r, k.hash))
        return;
    bool found = region_contains(r, k.hash, k.p, k.n);
    reply_head(x, ST_OK, 1);
    if (found)
        msgpack_pack_true(&x->pk);
    else
        msgpack_pack_false(&x->pk);
    reply_done(x);
}

void handle_size(req_ctx *x)
{
    region_t *r;
    if (arg_region(x, 0, &r))
        return;
    uint64_t n = 0;
    if (region_clustered(r)) { /* this member's share: its primary buckets */
        for (uint32_t b = 0; b < region_cfg(r)->total_num_buckets; b++)
            if (region_bucket_role(r, b) == ROLE_PRIMARY)
                n += region_bucket_size(r, b);
    } else {
        n = region_size(r);
    }
    reply_head(x, ST_OK, 1);
    msgpack_pack_uint64(&x->pk, n);
    reply_done(x);
}

/* Clears this member's primary buckets, replicated like any write. */
static void cluster_clear(req_ctx *x, region_t *r)
{
    uint32_t nb = region_cfg(r)->total_num_buckets, n = 0;
    uint64_t count = 0;
    region_op *ops = calloc(nb, sizeof(region_op));
    uint32_t *buckets = calloc(nb, sizeof(uint32_t));
    if (!ops || !buckets) {
        free(ops);
        free(buckets);
        reply_no_memory(x);
        return;
    }
    for (uint32_t b = 0; b < nb; b++) {
        if (region_bucket_role(r, b) != ROLE_PRIMARY)
            continue;
        count += region_bucket_size(r, b);
        ops[n].kind = REGION_OP_CLEAR;
        buckets[n++] = b;
    }
    repl_write(x, r, ops, n, buckets, REPL_REPLY_COUNT, count);
    free(ops);
    free(buckets);
}

void handle_clear(req_ctx *x)
{
    region_t *r;
    if (arg_region(x, 0, &r))
        return;
    if (region_clustered(r)) {
        cluster_clear(x, r);
        return;
    }
    uint64_t n = region_clear(r);
    reply_head(x, ST_OK, 1);
    msgpack_pack_uint64(&x->pk, n);
    reply_done(x);
}

/* Reads one key/value pair of a PUT_ALL map; the value is only located. */
static int read_pair(req_ctx *x, mp_cursor *c, key_arg *k, const uint8_t **v, uint32_t *vlen)
{
    if (read_key(x, c, "entry key", k))
        return -1;
    *v = c->p;
    mp_skip(c, -1); /* well formed and within depth: checked by dispatch */
    *vlen = (uint32_t)(c->p - *v);
    return check_value(x, "entry value", *vlen);
}

/* Every key of a batch must be primary here, checked before anything is
 * applied; entries then go through replication as one write. */
static void cluster_put_all(req_ctx *x, region_t *r, mp_cursor start, uint32_t n)
{
    uint64_t client_id, seq;
    if (arg_event_id(x, 2, &client_id, &seq))
        return;
    region_op *ops = calloc(n ? n : 1, sizeof(region_op));
    if (!ops) {
        reply_no_memory(x);
        return;
    }
    mp_cursor c = start;
    for (uint32_t i = 0; i < n; i++) {
        key_arg k;
        const uint8_t *v = NULL;
        uint32_t vlen = 0;
        read_pair(x, &c, &k, &v, &vlen);
        uint32_t b = region_bucket_of(r, k.hash);
        if (region_bucket_role(r, b) != ROLE_PRIMARY) {
            free(ops);
            reply_redirect(x, region_bucket_primary(r, b));
            return;
        }
        ops[i] = (region_op){.kind = REGION_OP_PUT, .hash = k.hash, .key = k.p, .klen = k.n,
                             .key_is_str = k.is_str, .value = v, .vlen = vlen,
                             .client_id = client_id, .seq = client_id ? seq + i : 0};
    }
    repl_write(x, r, ops, n, NULL, REPL_REPLY_COUNT, 0);
    free(ops);
}

void handle_put_all(req_ctx *x)
{
    region_t *r;
    mp_cursor c;
    uint32_t n;
    key_arg k;
    const uint8_t *v = NULL;
    uint32_t vlen = 0;
    if (arg_region(x, 0, &r))
        return;
    arg_cursor(x, 1, &c);
    if (mp_read_map(&c, &n)) {
        reply_error(x, ST_BAD_REQUEST, "PUT_ALL: entries must be a map of key -> value");
        return;
    }
    /* check everything first, so a bad entry rejects the batch untouched */
    mp_cursor start = c;
    for (uint32_t i = 0; i < n; i++)
        if (read_pair(x, &c, &k, &v, &vlen))
            return;
    if (region_clustered(r)) {
        cluster_put_all(x, r, start, n);
        return;
    }
    c = start;
    for (uint32_t i = 0; i < n; i++) {
        read_pair(x, &c, &k, &v, &vlen);
        if (region_put(r, k.hash, k.p, k.n, k.is_str, v, vlen, NULL)) {
            reply_error(x, ST_NO_MEMORY, "PUT_ALL: out of memory after %u of %u entries", i, n);
            return;
        }
    }
    reply_head(x, ST_OK, 1);
    msgpack_pack_uint32(&x->pk, n);
    reply_done(x);
}

static int write_boxed_value(void *arg, const entry_view *e)
{
    req_ctx *x = arg;
    msgpack_pack_array(&x->pk, 1);
    mpw_raw(&x->pk, e->value, e->vlen);
    return 0;
}

void handle_get_all(req_ctx *x)
{
    region_t *r;
    mp_cursor c;
    uint32_t n;
    key_arg k;
    if (arg_region(x, 0, &r))
        return;
    arg_cursor(x, 1, &c);
    if (mp_read_array(&c, &n)) {
        reply_error(x, ST_BAD_REQUEST, "GET_ALL: keys must be an array");
        return;
    }
    mp_cursor start = c;
    for (uint32_t i = 0; i < n; i++)
        if (read_key(x, &c, "key", &k) || cluster_read_ok(x, r, k.hash))
            return;
    c = start;
    reply_head(x, ST_OK, 1);
    msgpack_pack_array(&x->pk, n);
    for (uint32_t i = 0; i < n; i++) {
        read_key(x, &c, "key", &k);
        if (!region_get(r, k.hash, k.p, k.n, write_boxed_value, x))
            msgpack_pack_nil(&x->pk);
        /* the first value always fits: it is within max_value <= max_frame */
        if (i > 0 && reply_size(x) > reply_budget(x)) {
            reply_discard(x);
            reply_error(x, ST_TOO_LARGE,
                        "GET_ALL: the values of these %u keys exceed the reply limit of %zu "
                        "bytes; ask for fewer keys per request", n, reply_budget(x));
            return;
        }
    }
    reply_done(x);
}

/* Scans pack their items into the worker's scratch buffer first: the reply
 * header holds the count and next cursor, known only after the scan. */
typedef struct scan_acc {
    msgpack_packer pk;
    uint32_t count;
    bool with_values;
} scan_acc;

static int collect(void *arg, const entry_view *e)
{
    scan_acc *a = arg;
    if (mpw_key(&a->pk, e->key, e->klen, e->key_is_str))
        return -ENOMEM;
    if (a->with_values && mpw_raw(&a->pk, e->value, e->vlen))
        return -ENOMEM;
    a->count++;
    return 0;
}

/* Reply bytes besides the items: envelope, next_cursor, array header. */
#define SCAN_REPLY_OVERHEAD 64
/* Encoding overhead of one key (str32/bin32 header) counted per entry. */
#define SCAN_KEY_HEADER 5

static void scan(req_ctx *x, bool with_values)
{
    region_t *r;
    uint64_t cursor, limit, next;
    if (arg_region(x, 0, &r) || arg_uint(x, 1, &cursor) || arg_uint(x, 2, &limit))
        return;
    if (limit < 1 || limit > SCAN_MAX_LIMIT) {
        reply_error(x, ST_BAD_ARGUMENT, "%s: limit must be 1..%d", x->cmd->name, SCAN_MAX_LIMIT);
        return;
    }
    buf_t *tmp = &x->w->scratch;
    buf_reset(tmp);
    scan_acc a = {.count = 0, .with_values = with_values};
    mpw_init(&a.pk, tmp);
    /* the page ends before a slot that would take the reply past the frame
     * limit, so a client can always read it */
    region_page_bound bound = {.limit = (uint32_t)limit,
                               .max_bytes = reply_budget(x) - SCAN_REPLY_OVERHEAD,
                               .per_entry = SCAN_KEY_HEADER,
                               .with_values = with_values,
                               .primary_only = region_clustered(r)};
    if (region_scan_bounded(r, cursor, &bound, collect, &a, &next)) {
        reply_no_memory(x);
        return;
    }
    reply_head(x, ST_OK, 2);
    msgpack_pack_uint64(&x->pk, next);
    msgpack_pack_array(&x->pk, with_values ? a.count * 2 : a.count);
    mpw_raw(&x->pk, tmp->data, tmp->len);
    reply_done(x);
    buf_reset(tmp);
    buf_shrink_idle(tmp, 64 * 1024);
}

void handle_keys(req_ctx *x) { scan(x, false); }
void handle_entries(req_ctx *x) { scan(x, true); }
