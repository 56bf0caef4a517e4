/* cq_sub.c - a continuous query's subscriptions: one connection per member
 * (or to the one server) on which CQ_OPEN was sent and the member pushes
 * the events of the buckets it is primary for.
 *
 * Pushes are copied into the CQ's queue as they are read (the connection's
 * dispatcher must not run user code, and a subscription may be read while
 * a synchronous request waits on it) and handled in arrival order by
 * client_cq_drain_queue: an event is delivered unless its bucket's cursor
 * (cq_cursor.h) has passed it, a replay that starts above the cursor is a
 * GAP, a progress report moves the cursor. A subscription whose connection
 * broke, or that its member closed (stopping, or we were too slow), is
 * opened again with replay while the member stays in the map, with a
 * backoff of 50 ms doubling to 1 s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cq_impl.h"
#include "common/mpw.h"
#include "common/proto.h"

/* The connection's dispatcher hands us every push: queue a copy. */
void client_cq_on_push(agate_client *conn, const msg_push *p, const uint8_t *body, uint32_t len,
                       void *arg)
{
    (void)p;
    cq_sub *sub = arg;
    agate_cq *cq = sub->cq;
    cq_msg *m = malloc(sizeof(*m) + len);
    if (!m) {
        sub->lost_push = true; /* handled as a broken subscription: replay */
        return;
    }
    m->next = NULL;
    m->sub = sub;
    m->gen = conn->gen;
    m->len = len;
    memcpy(m->body, body, len);
    if (cq->qtail)
        cq->qtail->next = m;
    else
        cq->qhead = m;
    cq->qtail = m;
}

cq_sub *client_cq_sub_new(agate_cq *cq, uint32_t member_id, const char *addr)
{
    cq_sub *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cq = cq;
    s->member_id = member_id;
    snprintf(s->addr, sizeof(s->addr), "%s", addr);
    s->retry_at = -1;
    s->backoff_ms = CQ_BACKOFF_MIN_MS;
    s->reg_fd = -1;
    return s;
}

cq_sub *client_cq_sub_add(agate_cq *cq, uint32_t member_id, const char *addr)
{
    if (cq->nsubs == cq->capsubs) {
        size_t cap = cq->capsubs ? cq->capsubs * 2 : 4;
        cq_sub **n = realloc(cq->subs, cap * sizeof(*n));
        if (!n)
            return NULL;
        cq->subs = n;
        cq->capsubs = cap;
    }
    cq_sub *s = client_cq_sub_new(cq, member_id, addr);
    if (s)
        cq->subs[cq->nsubs++] = s;
    return s;
}

/* Drops queued pushes of sub (it is about to be freed). */
static void queue_forget(agate_cq *cq, const cq_sub *sub)
{
    cq_msg **pp = &cq->qhead;
    cq->qtail = NULL;
    while (*pp) {
        if ((*pp)->sub == sub) {
            cq_msg *m = *pp;
            *pp = m->next;
            free(m);
        } else {
            cq->qtail = *pp;
            pp = &(*pp)->next;
        }
    }
}

void client_cq_sub_free(agate_cq *cq, cq_sub *s)
{
    if (!s)
        return;
    queue_forget(cq, s);
    agate_client_free(s->conn); /* closing the connection ends its CQ on the member */
    free(s);
}

/* Connects sub's connection if it is not. */
static int sub_connect(agate_cq *cq, cq_sub *s)
{
    if (s->conn && s->conn->fd >= 0)
        return 0;
    if (!s->conn) {
        s->conn = agate_client_new(&cq->opts);
        if (!s->conn)
            return AGATE_ENOMEM;
        s->conn->plain = 1; /* a subscription never routes */
        s->conn->on_push = client_cq_on_push;
        s->conn->push_arg = s;
        return agate_connect(s->conn, s->addr);
    }
    return client_ensure_conn(s->conn);
}

static int ok_open(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    (void)aux;
    open_result *o = call->out;
    mp_cursor cur = r->results;
    uint32_t n;
    if (r->nresults < 3 || mp_read_uint(&cur, &o->cq_id) || o->cq_id == 0 ||
        mp_read_array(&cur, &n))
        return client_bad_reply(c, "CQ_OPEN reply is not [cq_id, heads, initial]");
    o->heads = calloc(n ? n : 1, sizeof(*o->heads));
    if (!o->heads)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        uint32_t two;
        if (mp_read_array(&cur, &two) || two != 2 || mp_read_uint(&cur, &o->heads[i][0]) ||
            mp_read_uint(&cur, &o->heads[i][1]))
            return client_bad_reply(c, "CQ_OPEN reply: a head is not [bucket, seq]");
        o->nheads++;
    }
    mp_type t;
    const uint8_t *p;
    size_t len;
    if (mp_peek_type(&cur, &t) || t != MP_ARRAY || client_read_raw(c, &cur, &p, &len))
        return client_bad_reply(c, "CQ_OPEN reply: initial is not an array");
    if (client_buf_copy(&o->initial, p, len))
        return client_err(c, AGATE_ENOMEM, "out of memory");
    return 0;
}

void client_cq_open_result_free(open_result *o)
{
    free(o->heads);
    agate_buf_free(&o->initial);
    memset(o, 0, sizeof(*o));
}

/* Sends CQ_OPEN on sub's connection (connecting it first) and waits for the
 * answer. On success the subscription is live: pushes with its id are
 * handled from now on. */
int client_cq_sub_register(agate_cq *cq, cq_sub *s, bool replay, bool initial, open_result *o)
{
    memset(o, 0, sizeof(*o));
    int rc = sub_connect(cq, s);
    if (rc)
        return rc;
    agate_client *c = s->conn;
    client_call call;
    client_req rq;
    client_call_init(&call, ok_open, o);
    rc = client_call_begin(c, &call, &rq, OP_CQ_OPEN, 4, 0);
    if (rc)
        return rc;
    int e = mpw_cstr(&rq.pk, cq->name) | mpw_cstr(&rq.pk, cq->query);
    e |= cq->params ? mpw_raw(&rq.pk, cq->params, cq->params_len) : msgpack_pack_nil(&rq.pk);
    e |= msgpack_pack_map(&rq.pk, 2);
    e |= mpw_kv_bool(&rq.pk, "initial", initial);
    e |= mpw_kv_bool(&rq.pk, "replay", replay);
    rc = client_call_end(c, &call, &rq, e);
    if (!rc)
        rc = client_call_wait(c, &call);
    if (rc) {
        client_cq_open_result_free(o);
        return rc;
    }
    s->cq_id = o->cq_id;
    s->reg_gen = c->gen;
    s->retry_at = -1;
    return 0;
}

/* Re-registers with replay; on failure schedules the next try. */
static void sub_reregister(agate_cq *cq, cq_sub *s)
{
    open_result o;
    int rc = client_cq_sub_register(cq, s, true, false, &o);
    client_cq_open_result_free(&o);
    if (rc == 0) {
        s->backoff_ms = CQ_BACKOFF_MIN_MS;
        cq->stats.registrations++;
        return;
    }
    if (!cq->cluster && rc == AGATE_EUNKNOWN_REGION) {
        client_cq_fail(cq, rc, "%s", s->conn ? s->conn->errmsg : "region destroyed");
        return;
    }
    /* the member may be restarting, or dead and not yet out of the map */
    s->retry_at = client_now_ms() + s->backoff_ms;
    s->backoff_ms = s->backoff_ms * 2 > CQ_BACKOFF_MAX_MS ? CQ_BACKOFF_MAX_MS : s->backoff_ms * 2;
}

/* The subscription broke in a way only a new registration mends. */
static void sub_reset(cq_sub *s, const char *why)
{
    if (s->conn && s->conn->fd >= 0)
        client_conn_fail(s->conn, AGATE_EPROTO, "%s", why);
    s->cq_id = 0;
    s->lost_push = false; /* what the next registration misses sets it again */
    s->retry_at = client_now_ms();
}

static void handle_event(agate_cq *cq, cq_sub *s, const msg_push *p)
{
    mp_cursor cur = p->items;
    uint64_t bucket, seq, op;
    agate_cq_event ev = {0};
    mp_type t;
    if (p->nitems < 5 || mp_read_uint(&cur, &bucket) || mp_read_uint(&cur, &seq) ||
        mp_read_uint(&cur, &op) || op < AGATE_CQ_CREATE || op > AGATE_CQ_CLEAR ||
        bucket >= cq->cur.nbuckets || mp_peek_type(&cur, &t)) {
        sub_reset(s, "malformed CQ event");
        return;
    }
    if (t == MP_NIL) {
        mp_read_nil(&cur);
    } else {
        const uint8_t *k;
        uint32_t klen;
        bool is_str;
        if (mp_read_bytes(&cur, &k, &klen, &is_str)) {
            sub_reset(s, "malformed CQ event key");
            return;
        }
        ev.key = k;
        ev.klen = klen;
        ev.key_is_str = is_str;
    }
    if (mp_peek_type(&cur, &t)) {
        sub_reset(s, "malformed CQ event value");
        return;
    }
    /* CREATE and UPDATE carry the new value, which may itself be nil */
    if (op == AGATE_CQ_CREATE || op == AGATE_CQ_UPDATE || t != MP_NIL) {
        const uint8_t *v = cur.p;
        if (mp_skip(&cur, MP_MAX_DEPTH_LIMIT)) {
            sub_reset(s, "malformed CQ event value");
            return;
        }
        ev.value = v;
        ev.vlen = (size_t)(cur.p - v);
    }
    if (cq_cursor_event(&cq->cur, (uint32_t)bucket, seq) != CQ_DELIVER) {
        cq->stats.duplicates++;
        return;
    }
    ev.op = (int)op;
    ev.bucket = (uint32_t)bucket;
    ev.seq = seq;
    client_cq_deliver(cq, &ev);
}

static void handle_replay(agate_cq *cq, cq_sub *s, const msg_push *p)
{
    mp_cursor cur = p->items;
    uint64_t bucket, since;
    if (p->nitems < 2 || mp_read_uint(&cur, &bucket) || mp_read_uint(&cur, &since) ||
        bucket >= cq->cur.nbuckets) {
        sub_reset(s, "malformed CQ replay");
        return;
    }
    cq->stats.replays++;
    if (cq_cursor_replay(&cq->cur, (uint32_t)bucket, since) == 1) {
        cq->stats.gaps++;
        agate_cq_event ev = {.op = AGATE_CQ_GAP, .bucket = (uint32_t)bucket, .seq = since};
        client_cq_deliver(cq, &ev);
    }
}

static void handle_progress(agate_cq *cq, cq_sub *s, const msg_push *p)
{
    mp_cursor cur = p->items;
    uint32_t n;
    if (p->nitems < 1 || mp_read_array(&cur, &n)) {
        sub_reset(s, "malformed CQ progress");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t two;
        uint64_t b, seq;
        if (mp_read_array(&cur, &two) || two != 2 || mp_read_uint(&cur, &b) ||
            mp_read_uint(&cur, &seq) || b >= cq->cur.nbuckets) {
            sub_reset(s, "malformed CQ progress");
            return;
        }
        cq_cursor_progress(&cq->cur, (uint32_t)b, seq);
    }
}

static void handle_closed(agate_cq *cq, cq_sub *s, const msg_push *p)
{
    mp_cursor cur = p->items;
    uint64_t status = 0;
    const uint8_t *msg = (const uint8_t *)"";
    uint32_t mlen = 0;
    if (p->nitems >= 1)
        mp_read_uint(&cur, &status);
    if (p->nitems >= 2 && mp_read_str(&cur, &msg, &mlen))
        mlen = 0;
    s->cq_id = 0;
    if (status == ST_UNKNOWN_REGION) {
        client_cq_fail(cq, AGATE_EUNKNOWN_REGION, "%s: %.*s", s->addr, (int)mlen,
                       (const char *)msg);
        return;
    }
    /* shutting down, or we were too slow: register again (with replay)
     * while the member stays in the map */
    cq->stats.closed_by_member++;
    s->retry_at = client_now_ms() + (status == ST_SHUTTING_DOWN ? s->backoff_ms : 0);
}

static void handle_map(agate_cq *cq, const msg_push *p)
{
    if (p->event_kind != PUSH_MAP || p->nitems < 1)
        return;
    mp_cursor cur = p->items;
    const uint8_t *start = cur.p;
    if (mp_skip(&cur, MP_MAX_DEPTH_LIMIT))
        return;
    cmap_t *m = NULL;
    if (cmap_decode(start, (size_t)(cur.p - start), &m) == 0)
        client_cq_apply_map(cq, m);
}

static void handle_msg(agate_cq *cq, cq_msg *m)
{
    msg_push p;
    if (msg_push_parse(m->body, m->len, MP_MAX_DEPTH_LIMIT - 1, &p))
        return;
    cq_sub *s = m->sub;
    if (s == cq->loc) {
        handle_map(cq, &p);
        return;
    }
    /* a push of an earlier registration (another connection, or an id the
     * member closed) */
    if (s->gone || s->cq_id == 0 || m->gen != s->reg_gen || p.subscription != s->cq_id)
        return;
    switch (p.event_kind) {
    case PUSH_CQ_EVENT: handle_event(cq, s, &p); break;
    case PUSH_CQ_REPLAY: handle_replay(cq, s, &p); break;
    case PUSH_CQ_PROGRESS: handle_progress(cq, s, &p); break;
    case PUSH_CQ_CLOSED: handle_closed(cq, s, &p); break;
    default: break;
    }
}

void client_cq_drain_queue(agate_cq *cq)
{
    while (cq->qhead && !cq->fail_rc) {
        cq_msg *m = cq->qhead;
        cq->qhead = m->next;
        if (!cq->qhead)
            cq->qtail = NULL;
        handle_msg(cq, m);
        free(m);
    }
}

/* Subscriptions that broke or are due for (re)registration. */
void client_cq_sub_work(agate_cq *cq, int64_t now)
{
    for (size_t i = 0; i < cq->nsubs && !cq->fail_rc; i++) {
        cq_sub *s = cq->subs[i];
        if (s->gone)
            continue;
        if (s->cq_id &&
            (s->lost_push || !s->conn || s->conn->fd < 0 || s->conn->gen != s->reg_gen)) {
            sub_reset(s, "out of memory queueing a push: subscribing again");
            cq->stats.reconnects++;
            s->retry_at = now;
        }
        if (!s->cq_id && s->retry_at >= 0 && now >= s->retry_at)
            sub_reregister(cq, s);
    }
}

void client_cq_free_gone(agate_cq *cq)
{
    size_t k = 0;
    for (size_t i = 0; i < cq->nsubs; i++) {
        if (cq->subs[i]->gone)
            client_cq_sub_free(cq, cq->subs[i]);
        else
            cq->subs[k++] = cq->subs[i];
    }
    cq->nsubs = k;
}
