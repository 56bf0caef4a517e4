/* The coordinator of a query over a clustered region (see query_local.h).
 *
 * The member that receives QUERY scans the buckets it is primary for into
 * a gathering executor, sends QUERY_PART to every other member of its view
 * (one short-lived link each, from this worker's event loop) and merges
 * their partial results as they arrive. Every member also says which
 * buckets it covered: the reply goes out only when each bucket of the
 * region was covered exactly once, else (a bucket moved or has no primary
 * right now) it is UNAVAILABLE and the client retries. So a query never
 * counts a bucket twice or misses one, even during a rebalance. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "server/cluster.h"
#include "server/conn.h"
#include "server/link.h"
#include "server/query_local.h"
#include "server/worker.h"

/* Extra time a member's answer may take beyond the query's own timeout. */
#define COORD_LINK_MARGIN_MS 5000

typedef struct qcoord {
    conn_t *conn;
    uint64_t req_id;
    worker_t *w;
    server_t *srv;
    /* copies: the request is gone once the handler returns */
    char *text;
    uint32_t tlen;
    uint8_t *params_raw;
    size_t params_len;
    qvalue params[QUERY_MAX_PARAMS];
    uint32_t nparams;
    int64_t timeout_ms;
    int64_t t0;
    query_t *q;
    qexec *ex;
    uint32_t nbuckets;
    uint8_t *covered;
    bool overlap;
    uint64_t matched, scanned;
    link_t **links;
    size_t nlinks;
    uint32_t pending;
    query_fail fail; /* the first failure (status 0: none) */
} qcoord;

typedef struct part_ctx {
    qcoord *co;
    uint32_t member;
} part_ctx;

static void coord_free(qcoord *co)
{
    for (size_t i = 0; i < co->nlinks; i++)
        link_free(co->links[i]); /* deferred by the link itself when inside its callback */
    free(co->links);
    qexec_free(co->ex);
    query_free(co->q);
    free(co->covered);
    free(co->text);
    free(co->params_raw);
    free(co);
}

static void note_fail(qcoord *co, int status, const char *msg)
{
    if (co->fail.status)
        return;
    co->fail.status = status;
    snprintf(co->fail.msg, sizeof co->fail.msg, "%s", msg);
}

/* Adds a member's covered buckets; a bucket seen twice is an overlap. */
static void cover(qcoord *co, const uint8_t *bits, size_t n)
{
    for (size_t i = 0; i < n && i < (co->nbuckets + 7) / 8; i++) {
        if (co->covered[i] & bits[i])
            co->overlap = true;
        co->covered[i] |= bits[i];
    }
}

static bool covered_all(const qcoord *co)
{
    for (uint32_t b = 0; b < co->nbuckets; b++)
        if (!(co->covered[b / 8] & (1u << (b % 8))))
            return false;
    return true;
}

/* Replies on the client's connection (now, or later from a link callback). */
static void reply(qcoord *co, req_ctx *x)
{
    if (!co->fail.status && (co->overlap || !covered_all(co)))
        note_fail(co, ST_UNAVAILABLE, "QUERY: the region's buckets moved during the query (or a "
                                      "bucket has no primary right now); retry");
    if (co->fail.status)
        query_reply_fail(x, &co->fail);
    else
        query_reply_result(x, co->ex, co->matched, co->scanned, co->t0);
}

static void finish_late(qcoord *co)
{
    conn_t *c = co->conn;
    if (!c->dead) {
        msg_request req = {.id = co->req_id};
        req_ctx x = {.conn = c, .w = co->w, .srv = co->srv, .req = &req};
        msgpack_packer_init(&x.pk, c, conn_pack_write);
        reply(co, &x);
        conn_kick(c);
    }
    conn_wait_done(c);
    coord_free(co);
}

/* QUERY_PART reply: [partial, buckets (bin), matched, scanned]. */
static void take_part(qcoord *co, uint32_t member, const msg_response *r)
{
    char why[400];
    if (!r) {
        snprintf(why, sizeof why, "QUERY: member %u did not answer its part; retry", member);
        note_fail(co, ST_UNAVAILABLE, why);
        return;
    }
    if (r->status != ST_OK) {
        snprintf(why, sizeof why, "%.*s", (int)r->errmsg_len, (const char *)r->errmsg);
        /* a member not knowing the region yet, or refusing for a move, is transient */
        note_fail(co, r->status == ST_UNKNOWN_REGION ? ST_UNAVAILABLE : r->status, why);
        return;
    }
    mp_cursor c = r->results;
    const uint8_t *partial = c.p, *bits;
    uint32_t nbits;
    uint64_t matched, scanned;
    if (r->nresults != 4 || mp_skip(&c, -1)) {
        note_fail(co, ST_INTERNAL, "QUERY: a member sent a malformed part");
        return;
    }
    size_t plen = (size_t)(c.p - partial);
    bool is_str;
    if (mp_read_bytes(&c, &bits, &nbits, &is_str) || is_str || mp_read_uint(&c, &matched) ||
        mp_read_uint(&c, &scanned)) {
        note_fail(co, ST_INTERNAL, "QUERY: a member sent a malformed part");
        return;
    }
    qerror err;
    int rc = qexec_merge_partial(co->ex, partial, plen, &err);
    if (rc < 0) {
        snprintf(why, sizeof why, "QUERY: merging member %u's part: %s", member, err.msg);
        note_fail(co, rc == -ENOMEM ? ST_NO_MEMORY : rc == -E2BIG ? ST_TOO_LARGE : ST_INTERNAL, why);
        return;
    }
    cover(co, bits, nbits);
    co->matched += matched;
    co->scanned += scanned;
}

static void on_part(link_t *l, const msg_response *r, void *arg)
{
    (void)l;
    part_ctx pc = *(part_ctx *)arg;
    free(arg);
    qcoord *co = pc.co;
    worker_t *w = co->w; /* co is freed by the last answer */
    worker_enter(w);
    take_part(co, pc.member, r);
    if (--co->pending == 0)
        finish_late(co);
    worker_leave(w);
}

/* Sends QUERY_PART to member p; false when it could not be sent. */
static bool send_part(qcoord *co, const peer_addr *p)
{
    /* the link's own timeout bounds a member that does not answer */
    int timeout = co->timeout_ms ? (int)co->timeout_ms + COORD_LINK_MARGIN_MS : 86400000;
    link_t *l = link_new(co->w->base, p->host, p->port, "query coordinator", timeout, NULL);
    part_ctx *pc = malloc(sizeof(*pc));
    if (!l || !pc || link_connect(l)) {
        link_free(l);
        free(pc);
        return false;
    }
    co->links[co->nlinks++] = l;
    *pc = (part_ctx){co, p->id};
    buf_t b = {0};
    msgpack_packer pk;
    mpw_init(&pk, &b);
    mpw_str(&pk, co->text, co->tlen);
    mpw_raw(&pk, co->params_raw, co->params_len);
    msgpack_pack_map(&pk, 1);
    mpw_kv_uint(&pk, "timeout_ms", (uint64_t)co->timeout_ms);
    int rc = link_request(l, OP_QUERY_PART, buf_rptr(&b), buf_readable(&b), 3, on_part, pc);
    buf_free(&b);
    if (rc) {
        free(pc);
        return false;
    }
    co->pending++;
    return true;
}

/* Copies what outlives the request and prepares the gathering executor.
 * 0, or -1 with co->fail set. */
static int coord_init(qcoord *co, const query_args *a)
{
    /* co->q (already parsed; the tree owns its strings) is kept: the text
     * is copied only to be sent to the members */
    static const uint8_t no_params[] = {0x90}; /* an empty array */
    const uint8_t *raw = a->params_raw ? a->params_raw : no_params;
    size_t rawlen = a->params_raw ? a->params_len : 1;
    co->text = malloc(a->tlen ? a->tlen : 1);
    co->params_raw = malloc(rawlen);
    if (!co->text || !co->params_raw) {
        note_fail(co, ST_NO_MEMORY, "QUERY: out of memory");
        return -1;
    }
    memcpy(co->text, a->text, a->tlen);
    co->tlen = a->tlen;
    memcpy(co->params_raw, raw, rawlen);
    co->params_len = rawlen;
    query_decode_params(co->params_raw, co->params_len, co->params, &co->nparams);
    co->timeout_ms = a->timeout_ms;
    qerror err;
    int rc = qexec_new(co->q, co->params, co->nparams, &co->ex, &err);
    if (rc) {
        char why[400];
        snprintf(why, sizeof why, "query: at %u: %s", err.pos, err.msg);
        note_fail(co, rc == -ENOMEM ? ST_NO_MEMORY : ST_BAD_ARGUMENT, why);
        return -1;
    }
    return 0;
}

/* This member's own part, straight into the gathering executor. */
static int coord_local(qcoord *co, region_t *r)
{
    uint32_t nb = co->nbuckets;
    uint8_t *mine = calloc(1, (nb + 7) / 8), *after = calloc(1, (nb + 7) / 8);
    int rc = -1;
    if (!mine || !after) {
        note_fail(co, ST_NO_MEMORY, "QUERY: out of memory");
    } else {
        region_primary_bitmap(r, mine);
        int64_t deadline = co->timeout_ms ? co->t0 + co->timeout_ms * 1000 : 0;
        uint64_t before = qexec_matched(co->ex);
        rc = query_scan(r, co->ex, co->q->source, true, deadline, &co->scanned, &co->fail);
        region_primary_bitmap(r, after);
        if (!rc && memcmp(mine, after, (nb + 7) / 8))
            note_fail(co, ST_UNAVAILABLE, "QUERY: buckets moved during the query; retry");
        co->matched += qexec_matched(co->ex) - before;
        cover(co, mine, (nb + 7) / 8);
    }
    free(mine);
    free(after);
    return co->fail.status ? -1 : rc;
}

/* Asks every other member of the view for its part. */
static void coord_scatter(qcoord *co)
{
    server_t *srv = co->srv;
    pthread_mutex_lock(&srv->peers_lock);
    size_t n = srv->npeers;
    peer_addr *peers = malloc((n ? n : 1) * sizeof(*peers));
    if (peers)
        memcpy(peers, srv->peers, n * sizeof(*peers));
    pthread_mutex_unlock(&srv->peers_lock);
    co->links = calloc(n ? n : 1, sizeof(link_t *));
    if (!peers || !co->links) {
        note_fail(co, ST_NO_MEMORY, "QUERY: out of memory");
        free(peers);
        return;
    }
    for (size_t i = 0; i < n && !co->fail.status; i++)
        if (!send_part(co, &peers[i])) {
            char why[200];
            snprintf(why, sizeof why, "QUERY: cannot reach member %u; retry", peers[i].id);
            note_fail(co, ST_UNAVAILABLE, why);
        }
    free(peers);
}

void query_coordinate(req_ctx *x, region_t *r, query_t *q, const query_args *a, int64_t t0)
{
    qcoord *co = calloc(1, sizeof(*co));
    if (!co) {
        query_free(q);
        reply_error(x, ST_NO_MEMORY, "QUERY: out of memory");
        return;
    }
    co->q = q;
    co->conn = x->conn;
    co->req_id = x->req->id;
    co->w = x->w;
    co->srv = x->srv;
    co->t0 = t0;
    co->nbuckets = region_cfg(r)->total_num_buckets;
    co->covered = calloc(1, (co->nbuckets + 7) / 8);
    if (!co->covered)
        note_fail(co, ST_NO_MEMORY, "QUERY: out of memory");
    /* the parts are requested first; they still go out only once this
     * worker's loop runs again, after the local scan (docs/query.md:
     * member parts run one after the other for now) */
    if (!co->fail.status && coord_init(co, a) == 0) {
        coord_scatter(co);
        if (!co->fail.status)
            coord_local(co, r);
    }
    if (co->pending == 0) { /* nothing to wait for (one member, or a failure) */
        reply(co, x);
        coord_free(co);
        return;
    }
    /* replies that are already on their way are waited for, failure or not */
    x->conn->waits++;
}
