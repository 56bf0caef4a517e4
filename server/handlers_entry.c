/* Entry operations: put, get, remove, bulk and scans. */
#include <errno.h>

#include "common/mpw.h"
#include "common/proto.h"
#include "server/command.h"
#include "server/handlers.h"
#include "server/worker.h"

#define SCAN_MAX_LIMIT 10000

static void reply_no_memory(req_ctx *x)
{
    reply_error(x, ST_NO_MEMORY, "out of memory");
}

void handle_put(req_ctx *x)
{
    region_t *r;
    key_arg k;
    const msg_slice *v = &x->req->arg[2];
    if (arg_region(x, 0, &r) || arg_key(x, 1, &k) || check_value(x, "value", v->n))
        return;
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
    if (arg_region(x, 0, &r) || arg_key(x, 1, &k))
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
    if (arg_region(x, 0, &r) || arg_key(x, 1, &k))
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
    reply_status(x, region_remove(r, k.hash, k.p, k.n) ? ST_OK : ST_NOT_FOUND);
}

void handle_contains_key(req_ctx *x)
{
    region_t *r;
    key_arg k;
    if (arg_region(x, 0, &r) || arg_key(x, 1, &k))
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
    reply_head(x, ST_OK, 1);
    msgpack_pack_uint64(&x->pk, region_size(r));
    reply_done(x);
}

void handle_clear(req_ctx *x)
{
    region_t *r;
    if (arg_region(x, 0, &r))
        return;
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

void handle_put_all(req_ctx *x)
{
    region_t *r;
    mp_cursor c;
    uint32_t n;
    key_arg k;
    const uint8_t *v;
    uint32_t vlen;
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
        if (read_key(x, &c, "key", &k))
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
                               .with_values = with_values};
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
