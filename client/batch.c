/* batch.c - put_all and get_all: many items split into pipelined requests.
 *
 * Items are packed into batches of about CLIENT_BATCH_TARGET bytes (never
 * above the server's max_frame) so that the server applies one batch while
 * the next is on the wire. All batches are queued without waiting for
 * replies; once a lot of output is queued it is written out first, so a
 * huge batch does not have to be copied into memory as a whole. The items
 * container is written with a 32-bit count placeholder (map32 / array32)
 * that is patched when the batch is closed. */
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "client/router.h"
#include "common/frame.h"
#include "common/mpw.h"
#include "common/proto.h"

typedef struct batch_range {
    size_t start;
    size_t count;
} batch_range;

typedef struct batch_spec {
    int op;
    const char *region;
    uint8_t container;                             /* 0xdf map32, 0xdd array32 */
    size_t n;
    size_t (*item_size)(const void *items, size_t i); /* bytes packed */
    int (*pack_item)(msgpack_packer *pk, const void *items, size_t i);
    const void *items;
    /* get_all remembers each batch's range to check and place its reply;
     * put_all with item_rc too, to record each batch's outcome */
    batch_range *ranges;
    size_t nranges, capranges;
    /* put_all in a cluster: per-item event sequence numbers (a batch sends
     * [client_id, seq of its first item] and holds consecutive ones only),
     * and per-item outcomes; NULL when not wanted */
    const uint64_t *seqs;
    uint64_t client_id;
    int *item_rc;
    client_done_fn done; /* completion of each batch; NULL: client_call_done */
} batch_spec;

/* Bytes of an event id argument [uint64, uint64] (upper bound). */
#define EVID_SIZE 19

/* Body bytes of a batch request besides its items (upper bound). */
static size_t batch_overhead(const batch_spec *s)
{
    /* array header, kind, id (uint64), opcode, region str, container */
    return 1 + 1 + 9 + 1 + 5 + strlen(s->region) + 5 + (s->seqs ? EVID_SIZE : 0);
}

static int remember_range(agate_client *c, batch_spec *s, size_t start, size_t count)
{
    if (s->nranges == s->capranges) {
        size_t cap = s->capranges ? s->capranges * 2 : 8;
        batch_range *r = realloc(s->ranges, cap * sizeof(*r));
        if (!r)
            return client_err(c, AGATE_ENOMEM, "out of memory");
        s->ranges = r;
        s->capranges = cap;
    }
    s->ranges[s->nranges].start = start;
    s->ranges[s->nranges].count = count;
    s->nranges++;
    return 0;
}

/* Queues one batch starting at item *next; advances *next past it. */
static int queue_batch(agate_client *c, client_call *call, batch_spec *s, size_t *next,
                       size_t target)
{
    client_req rq;
    size_t start = *next;
    int rc = client_check_blocking(c, proto_op_name(s->op));
    if (!rc)
        rc = client_req_begin(c, &rq, s->op, s->seqs ? 3 : 2, s->done ? s->done : client_call_done,
                              NULL, call, s->nranges);
    if (rc)
        return rc;
    int e = mpw_cstr(&rq.pk, s->region);
    /* offsets relative to the read position, which compaction preserves */
    size_t head_rel = c->out.len - c->out.rpos;
    uint8_t head[5] = {s->container, 0, 0, 0, 0};
    e |= buf_append(&c->out, head, sizeof(head));
    size_t body_rel = rq.frame_off + FRAME_HEADER;
    size_t i = start;
    while (i < s->n && !e) {
        size_t body = c->out.len - c->out.rpos - body_rel;
        if (i > start && body + s->item_size(s->items, i) > target)
            break;
        if (i > start && s->seqs && s->seqs[i] != s->seqs[i - 1] + 1)
            break; /* one event id covers consecutive sequence numbers only */
        e |= s->pack_item(&rq.pk, s->items, i);
        i++;
    }
    if (!e)
        client_put_be32(c->out.data + c->out.rpos + head_rel + 1, (uint32_t)(i - start));
    if (s->seqs) {
        client_evid ev = {s->client_id, s->seqs[start]};
        e |= client_pack_evid(&rq.pk, &ev);
    }
    bool remembered = false;
    if ((s->op == OP_GET_ALL || s->item_rc) && !e) {
        if (remember_range(c, s, start, i - start)) {
            client_req_abort(c, &rq);
            return AGATE_ENOMEM;
        }
        remembered = true;
    }
    rc = client_call_end(c, call, &rq, e);
    if (rc) {
        if (remembered)
            s->nranges--; /* the batch was rolled back: its items stay unsent */
        return rc;
    }
    if (s->item_rc) /* sent: "no answer" until its reply says otherwise */
        for (size_t j = start; j < i; j++)
            s->item_rc[j] = AGATE_ETIMEDOUT;
    *next = i;
    return 0;
}

static int out_low(agate_client *c, void *arg)
{
    return buf_readable(&c->out) <= CLIENT_BATCH_OUT_HIGH / 2;
}

/* Queues every batch, writing out as it goes, then waits for all replies.
 * Stops queueing at the first failure but always waits for what was sent:
 * their completions point at call. */
static int run_batches(agate_client *c, client_call *call, batch_spec *s)
{
    size_t target = c->max_frame < CLIENT_BATCH_TARGET ? c->max_frame : CLIENT_BATCH_TARGET;
    uint64_t gen = c->gen;
    size_t next = 0;
    int rc = 0;
    while (next < s->n && !call->rc && c->gen == gen) {
        rc = queue_batch(c, call, s, &next, target);
        if (rc)
            break;
        if (buf_readable(&c->out) > CLIENT_BATCH_OUT_HIGH) {
            rc = client_io_run(c, out_low, NULL, c->request_timeout_ms);
            if (rc)
                break;
        }
    }
    if (rc == AGATE_ETIMEDOUT) {
        client_pending_abandon(&c->pend, call);
        return rc;
    }
    char why[CLIENT_ERRMSG_MAX];
    memcpy(why, c->errmsg, sizeof(why));
    int wrc = client_call_wait(c, call);
    if (rc) {
        memcpy(c->errmsg, why, sizeof(why));
        return rc;
    }
    /* the connection dropped between batches, after every sent batch had
     * its reply: the rest was never sent */
    if (!wrc && next < s->n)
        wrc = client_err(c, AGATE_EIO, "connection lost: %s", c->failmsg);
    return wrc;
}

/* Checks what the server would refuse from the whole batch anyway, before
 * anything is sent: an item that cannot fit in any frame. */
static int check_fits(agate_client *c, const batch_spec *s)
{
    size_t fixed = batch_overhead(s);
    for (size_t i = 0; i < s->n; i++) {
        size_t sz = s->item_size(s->items, i);
        if (fixed + sz > c->max_frame)
            return client_err(c, AGATE_ETOO_LARGE,
                              "item %zu (%zu bytes) does not fit in the server's frame limit "
                              "(%u bytes)",
                              i, sz, c->max_frame);
    }
    return 0;
}

/* Prefixes the message of a failed item check with the item's index. */
static int item_error(agate_client *c, int rc, const char *what, size_t i)
{
    char why[CLIENT_ERRMSG_MAX];
    memcpy(why, c->errmsg, sizeof(why));
    return client_err(c, rc, "%s %zu: %s", what, i, why);
}

/* ---- put_all ----------------------------------------------------------- */

static size_t kv_size(const void *items, size_t i)
{
    const agate_kv *kv = (const agate_kv *)items + i;
    return client_key_size(kv->klen) + kv->vlen;
}

static int kv_pack(msgpack_packer *pk, const void *items, size_t i)
{
    const agate_kv *kv = (const agate_kv *)items + i;
    return client_pack_key(pk, kv->key, kv->klen) | mpw_raw(pk, kv->value, kv->vlen);
}

/* Each value must be exactly one object: inside a map a short or long value
 * would shift the following keys and values instead of being rejected. */
int client_check_kvs(agate_client *c, const agate_kv *kvs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = client_check_keyed(c, "", kvs[i].key, kvs[i].klen);
        if (!rc)
            rc = client_check_value(c, kvs[i].value, kvs[i].vlen);
        if (rc)
            return item_error(c, rc, "entry", i);
        int mrc = mp_check_one(kvs[i].value, kvs[i].vlen, MP_MAX_DEPTH_LIMIT);
        if (mrc == MP_EDEPTH)
            return client_err(c, AGATE_ETOO_DEEP, "entry %zu: value nested too deeply", i);
        if (mrc)
            return client_err(c, AGATE_EBAD_VALUE,
                              "entry %zu: value is not exactly one MessagePack object (%s)", i,
                              mp_strerror(mrc));
    }
    return 0;
}

static int ok_count(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    mp_cursor cur = r->results;
    uint64_t v;
    if (r->nresults < 1 || mp_read_uint(&cur, &v))
        return client_bad_reply(c, "PUT_ALL reply is not a count");
    return 0;
}

/* Records a put_all batch's outcome for its items, then completes it as
 * every synchronous request is. */
static int put_all_done(agate_client *c, const msg_response *r, int err, void *arg,
                        uintptr_t aux)
{
    client_call *call = arg;
    batch_spec *s = call->out2;
    const batch_range *range = &s->ranges[aux];
    int rc = !r ? err : r->status == ST_OK ? 0 : client_status_error(r->status);
    for (size_t j = 0; j < range->count; j++)
        s->item_rc[range->start + j] = rc;
    return client_call_done(c, r, err, arg, aux);
}

int client_put_all_ev(agate_client *c, const char *region, const agate_kv *kvs, size_t n,
                      uint64_t client_id, const uint64_t *seqs, int *item_rc)
{
    for (size_t i = 0; i < n; i++)
        item_rc[i] = CLIENT_NOT_SENT;
    if (n == 0)
        return 0;
    int rc = client_ensure_conn(c);
    batch_spec s = {.op = OP_PUT_ALL, .region = region, .container = 0xdf, .n = n,
                    .item_size = kv_size, .pack_item = kv_pack, .items = kvs,
                    .seqs = seqs, .client_id = client_id, .item_rc = item_rc,
                    .done = put_all_done};
    if (!rc)
        rc = check_fits(c, &s);
    if (rc)
        return rc;
    client_call call;
    client_call_init(&call, ok_count, NULL);
    call.out2 = &s;
    rc = run_batches(c, &call, &s);
    free(s.ranges);
    return rc;
}

int agate_put_all(agate_client *c, const char *region, const agate_kv *kvs, size_t n)
{
    if (!c)
        return AGATE_EINVAL;
    int rc = client_check_blocking(c, "agate_put_all");
    if (rc)
        return rc;
    if (!region || (n > 0 && !kvs))
        return client_err(c, AGATE_EINVAL, "no region name or entries");
    if (n == 0)
        return 0;
    rc = client_check_kvs(c, kvs, n);
    if (!rc && c->router)
        return router_put_all(c, region, kvs, n);
    if (!rc)
        rc = client_ensure_conn(c); /* for the server's frame limit */
    batch_spec s = {.op = OP_PUT_ALL, .region = region, .container = 0xdf, .n = n,
                    .item_size = kv_size, .pack_item = kv_pack, .items = kvs};
    if (!rc)
        rc = check_fits(c, &s);
    if (rc)
        return rc;
    client_call call;
    client_call_init(&call, ok_count, NULL);
    return run_batches(c, &call, &s);
}

/* ---- get_all ----------------------------------------------------------- */

static size_t key_size(const void *items, size_t i)
{
    return client_key_size(((const agate_key *)items)[i].klen);
}

static int key_pack(msgpack_packer *pk, const void *items, size_t i)
{
    const agate_key *k = (const agate_key *)items + i;
    return client_pack_key(pk, k->key, k->klen);
}

typedef struct get_all_ctx {
    const batch_spec *spec;
    agate_buf *values;
} get_all_ctx;

/* [[v] or nil, ...] aligned with the batch's keys */
static int ok_get_all(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    get_all_ctx *ctx = call->out;
    const batch_range *range = &ctx->spec->ranges[aux];
    mp_cursor cur = r->results;
    uint32_t n;
    if (r->nresults < 1 || mp_read_array(&cur, &n) || n != range->count)
        return client_bad_reply(c, "GET_ALL reply does not match the keys sent");
    for (uint32_t j = 0; j < n; j++) {
        agate_buf *out = &ctx->values[range->start + j];
        uint32_t one;
        const uint8_t *p;
        size_t len;
        if (mp_read_nil(&cur) == 0)
            continue;
        if (mp_read_array(&cur, &one) || one != 1 || client_read_raw(c, &cur, &p, &len))
            return client_bad_reply(c, "GET_ALL reply item is neither [value] nor nil");
        if (client_buf_copy(out, p, len))
            return client_err(c, AGATE_ENOMEM, "out of memory");
    }
    return 0;
}

/* Fetches keys[0..n) in pipelined batches; all or nothing. */
static int get_all_batches(agate_client *c, const char *region, const agate_key *keys, size_t n,
                           agate_buf *values)
{
    int rc = client_ensure_conn(c);
    batch_spec s = {.op = OP_GET_ALL, .region = region, .container = 0xdd, .n = n,
                    .item_size = key_size, .pack_item = key_pack, .items = keys};
    if (!rc)
        rc = check_fits(c, &s);
    if (rc)
        return rc;
    get_all_ctx ctx = {&s, values};
    client_call call;
    client_call_init(&call, ok_get_all, &ctx);
    rc = run_batches(c, &call, &s);
    free(s.ranges);
    if (rc) /* all or nothing for the caller: no half-filled array */
        for (size_t i = 0; i < n; i++)
            agate_buf_free(&values[i]);
    return rc;
}

/* Batches are sized by their keys, but the server also bounds each reply
 * (its frame limit) and answers TOO_LARGE when the values would exceed it.
 * Reads are safe to repeat, so such a range is fetched again in halves; a
 * single key always fits. */
static int get_all_halving(agate_client *c, const char *region, const agate_key *keys, size_t n,
                           agate_buf *values)
{
    int rc = get_all_batches(c, region, keys, n, values);
    if (rc != AGATE_ETOO_LARGE || n == 1)
        return rc;
    size_t half = n / 2;
    rc = get_all_halving(c, region, keys, half, values);
    if (!rc)
        rc = get_all_halving(c, region, keys + half, n - half, values + half);
    if (rc)
        for (size_t i = 0; i < half; i++)
            agate_buf_free(&values[i]);
    return rc;
}

int agate_get_all(agate_client *c, const char *region, const agate_key *keys, size_t n,
                  agate_buf *values)
{
    if (!c)
        return AGATE_EINVAL;
    int rc = client_check_blocking(c, "agate_get_all");
    if (rc)
        return rc;
    if (values) /* safe to free whatever happens */
        for (size_t i = 0; i < n; i++)
            values[i] = (agate_buf){NULL, 0};
    if (!region || (n > 0 && (!keys || !values)))
        return client_err(c, AGATE_EINVAL, "no region name, keys or values");
    for (size_t i = 0; i < n; i++) {
        rc = client_check_keyed(c, region, keys[i].key, keys[i].klen);
        if (rc)
            return item_error(c, rc, "key", i);
    }
    if (n > 0 && c->router)
        return router_get_all(c, region, keys, n, values);
    return n == 0 ? 0 : get_all_halving(c, region, keys, n, values);
}
