/* Primary-side replication (see replicate.h). */
#include "server/replicate.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "server/cluster.h"
#include "server/conn.h"
#include "server/link.h"
#include "server/registry.h"
#include "server/worker.h"

#define REPL_RETRY_MS 100     /* a copy that does not hold the region yet */
#define REPL_RECONNECT_MS 200 /* after a link failure */
#define REPL_LINK_TIMEOUT_MS 30000

/* One client request waiting for its copies. */
typedef struct repl_wait {
    conn_t *conn;
    uint64_t req_id;
    int status;       /* the answer once every copy acknowledged */
    int reply_kind;
    uint64_t count;
    uint32_t pending; /* messages not yet acknowledged */
    region_t *r;      /* compared, never dereferenced, after a registry lookup */
    char region[REGION_NAME_MAX + 1];
    uint32_t nbuckets;
    uint32_t *buckets; /* whose inflight count this write raised */
    uint32_t one_bucket; /* buckets' storage for a single-key write */
} repl_wait;

static void wait_free(repl_wait *wt)
{
    if (wt->buckets != &wt->one_bucket)
        free(wt->buckets);
    free(wt);
}

/* One REPLICATE message to one peer on behalf of one wait. */
typedef struct repl_msg {
    struct repl_msg *prev, *next;
    struct repl_peer *peer;
    repl_wait *wait;
    buf_t args; /* [region, [op...]] */
    bool sent;
} repl_msg;

typedef struct repl_peer {
    uint32_t id;
    repl_t *rp;
    link_t *link;
    repl_msg *head, *tail;
    repl_msg *unsent; /* every message before it was sent; NULL: all were */
    struct event *retry_ev;
} repl_peer;

struct repl {
    worker_t *w;
    repl_peer **peers;
    size_t npeers;
};

static void peer_send_unsent(repl_peer *p);

repl_t *repl_new(worker_t *w)
{
    repl_t *rp = calloc(1, sizeof(*rp));
    if (rp)
        rp->w = w;
    return rp;
}

/* ---- waits ---- */

static void wait_reply(repl_wait *wt, server_t *srv, worker_t *w)
{
    conn_t *c = wt->conn;
    if (c->dead)
        return;
    msg_request req = {.id = wt->req_id};
    req_ctx x = {.conn = c, .w = w, .srv = srv, .req = &req};
    msgpack_packer_init(&x.pk, c, conn_pack_write);
    if (wt->status == ST_OK && wt->reply_kind == REPL_REPLY_COUNT) {
        reply_head(&x, ST_OK, 1);
        msgpack_pack_uint64(&x.pk, wt->count);
        reply_done(&x);
    } else if (wt->status == ST_UNAVAILABLE) {
        reply_error(&x, ST_UNAVAILABLE, "a copy refused the write (this member is no longer "
                                         "primary); retry");
    } else if (wt->status >= 10) {
        reply_error(&x, wt->status, "replication failed");
    } else {
        reply_status(&x, wt->status);
    }
    conn_kick(c);
}

static void wait_finish(repl_wait *wt, worker_t *w)
{
    server_t *srv = w->srv;
    wait_reply(wt, srv, w);
    region_t *r = registry_find(srv->registry, (const uint8_t *)wt->region, strlen(wt->region));
    if (r && r == wt->r)
        for (uint32_t i = 0; i < wt->nbuckets; i++)
            region_bucket_inflight_done(r, wt->buckets[i]);
    conn_wait_done(wt->conn);
    wait_free(wt);
}

/* A message for wt was acknowledged (or its member left the view). */
static void wait_ack(repl_wait *wt, worker_t *w)
{
    if (--wt->pending == 0)
        wait_finish(wt, w);
}

/* ---- messages and peers ---- */

static void msg_unlink(repl_msg *m)
{
    repl_peer *p = m->peer;
    if (p->unsent == m)
        p->unsent = m->next;
    if (m->prev)
        m->prev->next = m->next;
    else
        p->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        p->tail = m->prev;
}

static void msg_done(repl_msg *m, worker_t *w)
{
    repl_wait *wt = m->wait;
    msg_unlink(m);
    buf_free(&m->args);
    free(m);
    wait_ack(wt, w);
}

static void peer_schedule(repl_peer *p, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(p->retry_ev, &tv);
}

static void on_repl_answer(repl_msg *m, repl_peer *p, worker_t *w, const msg_response *r);

static void on_repl_reply(link_t *l, const msg_response *r, void *arg)
{
    (void)l;
    repl_msg *m = arg;
    repl_peer *p = m->peer;
    worker_t *w = p->rp->w;
    if (!r) { /* link failed: resend after reconnecting */
        m->sent = false;
        p->unsent = p->head;
        if (p->link)
            peer_schedule(p, REPL_RECONNECT_MS);
        return;
    }
    worker_enter(w);
    on_repl_answer(m, p, w, r);
    worker_leave(w);
}

static void on_repl_answer(repl_msg *m, repl_peer *p, worker_t *w, const msg_response *r)
{
    if (r->status == ST_OK) {
        msg_done(m, w);
        return;
    }
    if (r->status == ST_UNKNOWN_REGION || r->status == ST_NO_MEMORY) {
        /* the copy has not applied the map that creates the region yet */
        m->sent = false;
        m->peer->unsent = m->peer->head;
        peer_schedule(p, REPL_RETRY_MS);
        return;
    }
    if (r->status == ST_UNAVAILABLE) {
        m->wait->status = ST_UNAVAILABLE; /* deposed: a newer primary exists */
    } else {
        log_error("replication to member %u refused: %s: %.*s", p->id,
                  proto_status_name(r->status), (int)r->errmsg_len, (const char *)r->errmsg);
        m->wait->status = ST_INTERNAL;
    }
    msg_done(m, w);
}

static void peer_send_unsent(repl_peer *p)
{
    if (!p->link || !link_is_up(p->link))
        return;
    /* from the first unsent message on: a write does not walk the whole
     * window of unacknowledged ones */
    for (repl_msg *m = p->unsent; m; m = m->next) {
        p->unsent = m;
        if (m->sent)
            continue;
        if (link_request(p->link, OP_REPLICATE, buf_rptr(&m->args), buf_readable(&m->args), 2,
                         on_repl_reply, m))
            return;
        m->sent = true;
    }
    p->unsent = NULL;
}

static void on_link_state(link_t *l, bool up, void *arg)
{
    (void)l;
    repl_peer *p = arg;
    if (up)
        peer_send_unsent(p);
    else
        peer_schedule(p, REPL_RECONNECT_MS);
}

/* Makes sure the peer's link exists and is connecting or up. */
static void peer_connect(repl_peer *p)
{
    server_t *srv = p->rp->w->srv;
    if (!p->link) {
        peer_addr a;
        if (cluster_peer_find(srv, p->id, &a))
            return;
        char name[96];
        snprintf(name, sizeof name, "replication from %s", srv->cfg.name);
        link_callbacks cb = {.on_state = on_link_state, .arg = p};
        p->link = link_new(p->rp->w->base, a.host, a.port, name, REPL_LINK_TIMEOUT_MS, &cb);
        if (!p->link)
            return;
    }
    if (link_connect(p->link))
        peer_schedule(p, REPL_RECONNECT_MS);
}

static void on_peer_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    repl_peer *p = arg;
    worker_enter(p->rp->w);
    if (p->link && link_is_up(p->link))
        peer_send_unsent(p);
    else
        peer_connect(p);
    worker_leave(p->rp->w);
}

static repl_peer *peer_get(repl_t *rp, uint32_t id)
{
    for (size_t i = 0; i < rp->npeers; i++)
        if (rp->peers[i]->id == id)
            return rp->peers[i];
    repl_peer **grown = realloc(rp->peers, (rp->npeers + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    rp->peers = grown;
    repl_peer *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->id = id;
    p->rp = rp;
    p->retry_ev = event_new(rp->w->base, -1, 0, on_peer_retry, p);
    if (!p->retry_ev) {
        free(p);
        return NULL;
    }
    rp->peers[rp->npeers++] = p;
    peer_connect(p);
    return p;
}

/* Drops a peer that left the view: its messages count as acknowledged. */
static void peer_drop(repl_t *rp, size_t i)
{
    repl_peer *p = rp->peers[i];
    rp->peers[i] = rp->peers[--rp->npeers];
    link_t *l = p->link;
    p->link = NULL;
    link_free(l); /* outstanding replies come back NULL: they only mark unsent */
    while (p->head)
        msg_done(p->head, rp->w);
    event_free(p->retry_ev);
    free(p);
}

/* Whether peer p's link goes to another address than a: the member id
 * came back as a new process (it restarted) on another port. */
static bool peer_moved(const repl_peer *p, const peer_addr *a)
{
    if (!p->link)
        return false;
    char addr[sizeof a->host + 8];
    snprintf(addr, sizeof addr, "%s:%u", strcmp(a->host, "localhost") ? a->host : "127.0.0.1",
             (unsigned)a->port);
    return strcmp(link_addr(p->link), addr) != 0;
}

void repl_view_changed(worker_t *w)
{
    repl_t *rp = w->repl;
    if (!rp)
        return;
    /* A peer that left, or whose id now belongs to a restarted process,
     * will never acknowledge what was sent to the old one: what it owed
     * counts as acknowledged (as for any member that left the view), and
     * the next write opens a link to the new address. */
    for (size_t i = rp->npeers; i-- > 0;) {
        peer_addr a;
        if (cluster_peer_find(w->srv, rp->peers[i]->id, &a) || peer_moved(rp->peers[i], &a))
            peer_drop(rp, i);
    }
}

void repl_free(repl_t *rp)
{
    if (!rp)
        return;
    for (size_t i = 0; i < rp->npeers; i++) {
        repl_peer *p = rp->peers[i];
        link_t *l = p->link;
        p->link = NULL;
        link_free(l);
        while (p->head) {
            repl_msg *m = p->head;
            msg_unlink(m);
            buf_free(&m->args);
            if (--m->wait->pending == 0) {
                conn_wait_done(m->wait->conn);
                wait_free(m->wait);
            }
            free(m);
        }
        event_free(p->retry_ev);
        free(p);
    }
    free(rp->peers);
    free(rp);
}

/* ---- building a write's messages ---- */

static int pack_op(msgpack_packer *pk, const region_op *op, uint32_t bucket, uint64_t term)
{
    int rc = msgpack_pack_array(pk, 9);
    rc |= msgpack_pack_uint32(pk, bucket);
    rc |= msgpack_pack_uint64(pk, term);
    rc |= msgpack_pack_uint8(pk, op->kind);
    rc |= mpw_key(pk, op->key, op->klen, op->key_is_str);
    rc |= op->kind == REGION_OP_PUT ? mpw_raw(pk, op->value, op->vlen) : msgpack_pack_nil(pk);
    rc |= msgpack_pack_uint64(pk, op->counter);
    rc |= msgpack_pack_uint32(pk, op->member_id);
    rc |= msgpack_pack_uint64(pk, op->client_id);
    rc |= msgpack_pack_uint64(pk, op->seq);
    return rc;
}

/* What one applied op must reach. */
typedef struct applied {
    size_t op;
    region_write_result res;
} applied;

/* Packs, for target member t, [region, [every applied op that targets t]]. */
static int pack_for_target(buf_t *b, region_t *r, const region_op *ops, const applied *ap,
                           size_t nap, uint32_t t)
{
    msgpack_packer pk;
    mpw_init(&pk, b);
    uint32_t n = 0;
    for (size_t i = 0; i < nap; i++)
        for (uint32_t j = 0; j < ap[i].res.ntargets; j++)
            n += ap[i].res.targets[j] == t;
    int rc = mpw_cstr(&pk, region_cfg(r)->name);
    rc |= msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < nap; i++)
        for (uint32_t j = 0; j < ap[i].res.ntargets; j++)
            if (ap[i].res.targets[j] == t)
                rc |= pack_op(&pk, &ops[ap[i].op], ap[i].res.bucket, ap[i].res.term);
    return rc ? -ENOMEM : 0;
}

static bool seen_target(const applied *ap, size_t upto, uint32_t jmax, uint32_t t)
{
    for (size_t i = 0; i < upto; i++)
        for (uint32_t j = 0; j < ap[i].res.ntargets; j++)
            if (ap[i].res.targets[j] == t)
                return true;
    for (uint32_t j = 0; j < jmax; j++)
        if (ap[upto].res.targets[j] == t)
            return true;
    return false;
}

/* Queues one message per distinct target. Returns the number queued. */
static uint32_t send_all(repl_wait *wt, repl_t *rp, region_t *r, const region_op *ops,
                         const applied *ap, size_t nap)
{
    uint32_t queued = 0;
    for (size_t i = 0; i < nap; i++) {
        for (uint32_t j = 0; j < ap[i].res.ntargets; j++) {
            uint32_t t = ap[i].res.targets[j];
            if (seen_target(ap, i, j, t))
                continue;
            repl_peer *p = peer_get(rp, t);
            repl_msg *m = p ? calloc(1, sizeof(*m)) : NULL;
            if (!m || pack_for_target(&m->args, r, ops, ap, nap, t)) {
                if (m)
                    buf_free(&m->args);
                free(m);
                wt->status = ST_NO_MEMORY;
                continue;
            }
            m->peer = p;
            m->wait = wt;
            m->prev = p->tail;
            if (p->tail)
                p->tail->next = m;
            else
                p->head = m;
            p->tail = m;
            if (!p->unsent)
                p->unsent = m;
            queued++;
        }
    }
    return queued;
}

/* Sends what was queued on every peer touched. */
static void flush_peers(repl_t *rp)
{
    for (size_t i = 0; i < rp->npeers; i++)
        peer_send_unsent(rp->peers[i]);
}

static int single_status(req_ctx *x, const region_write_result *res)
{
    switch (res->outcome) {
    case RW_NOT_PRIMARY:
        reply_head(x, ST_REDIRECT, 2);
        msgpack_pack_uint64(&x->pk, atomic_load(&x->srv->metadata_version));
        msgpack_pack_uint32(&x->pk, res->primary_id);
        reply_done(x);
        return -1;
    case RW_UNAVAILABLE:
        reply_error(x, ST_UNAVAILABLE, "bucket %u is not being served here right now "
                                       "(lease expired or primary moving); retry",
                    res->bucket);
        return -1;
    case RW_NO_MEMORY:
        reply_error(x, ST_NO_MEMORY, "out of memory");
        return -1;
    case RW_ABSENT:
        return ST_NOT_FOUND;
    default:
        return ST_OK;
    }
}

void repl_write(req_ctx *x, region_t *r, region_op *ops, size_t nops, const uint32_t *clear_buckets,
                int reply_kind, uint64_t count)
{
    bool serving = cluster_serving(x->srv);
    /* a single-key write (the common case) allocates only its wait */
    applied one_ap;
    applied *ap = nops == 1 ? &one_ap : calloc(nops ? nops : 1, sizeof(applied));
    repl_wait *wt = calloc(1, sizeof(*wt));
    uint32_t *buckets = !wt ? NULL : nops == 1 ? &wt->one_bucket : calloc(nops ? nops : 1, sizeof(uint32_t));
    if (!ap || !wt || !buckets) {
        if (ap != &one_ap)
            free(ap);
        if (wt && buckets != &wt->one_bucket)
            free(buckets);
        free(wt);
        reply_error(x, ST_NO_MEMORY, "out of memory");
        return;
    }
    int status = ST_OK;
    size_t nap = 0;
    uint64_t written = 0;
    for (size_t i = 0; i < nops; i++) {
        region_write_result res;
        res.bucket = clear_buckets ? clear_buckets[i] : 0;
        region_primary_write(r, &ops[i], serving, &res);
        if (nops == 1 && reply_kind == REPL_REPLY_STATUS) {
            int st = single_status(x, &res);
            if (st < 0)
                goto done_early;
            status = st;
        } else if (res.outcome == RW_NOT_PRIMARY || res.outcome == RW_UNAVAILABLE) {
            status = ST_UNAVAILABLE;
        } else if (res.outcome == RW_NO_MEMORY) {
            status = ST_NO_MEMORY;
        }
        if (res.outcome == RW_APPLIED || res.outcome == RW_DUPLICATE)
            written++;
        if (res.outcome == RW_APPLIED && res.ntargets) {
            ap[nap].op = i;
            ap[nap].res = res;
            buckets[nap] = res.bucket;
            nap++;
        }
    }
    wt->conn = x->conn;
    wt->req_id = x->req->id;
    wt->status = status;
    wt->reply_kind = reply_kind;
    wt->count = reply_kind == REPL_REPLY_COUNT ? (clear_buckets ? count : written) : 0;
    wt->r = r;
    snprintf(wt->region, sizeof wt->region, "%s", region_cfg(r)->name);
    wt->buckets = buckets;
    wt->nbuckets = (uint32_t)nap;
    wt->pending = 1; /* held while queuing, so no ack can finish it early */
    x->conn->waits++;
    if (nap) {
        if (!x->w->repl)
            x->w->repl = repl_new(x->w);
        if (x->w->repl)
            wt->pending += send_all(wt, x->w->repl, r, ops, ap, nap);
        else
            wt->status = ST_NO_MEMORY;
    }
    if (ap != &one_ap)
        free(ap);
    if (x->w->repl)
        flush_peers(x->w->repl);
    wait_ack(wt, x->w);
    return;
done_early:
    if (ap != &one_ap)
        free(ap);
    wt->buckets = buckets;
    wait_free(wt);
}
