/* Continuous queries on a member (see cq.h). */
#include "server/cq.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/frame.h"
#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "region/journal.h"
#include "region/qeval.h"
#include "server/registry.h"
#include "server/request.h"

#define CQ_MAX_WORKERS 64
#define CQ_VALUE_DEPTH 256
#define CQ_BATCH_EVENTS 256
#define CQ_BATCH_BYTES (256u << 10)
#define CQ_PASS_EVENTS 8192 /* then the pump yields to the worker's other events */
#define CQ_TICK_MS 50

typedef struct cq_worker cq_worker;
typedef struct cq_sub sub;

typedef struct cq {
    uint64_t id;
    char name[CQ_NAME_MAX + 1];
    char region_name[REGION_NAME_MAX + 1];
    char *text;
    query_t *q;
    uint8_t *params_raw;
    qvalue *params;
    qenv env;
    region_t *region;   /* valid only while registry_find(region_name) gives it and !gone */
    journal_t *journal;
    uint32_t nbuckets;
    uint64_t *cursor;   /* per bucket: every event up to it was judged */
    uint64_t *sent;     /* per bucket: the last seq an event or progress told the client */
    sub *owner;
    struct cq *next;             /* in owner's list */
    struct cq *hub_prev, *hub_next;
    char client[64], peer[64];
    /* set by other threads */
    _Atomic bool gone;           /* the region's journal was freed */
    _Atomic bool replay_pending; /* replay_bits has bits (under hub.lock) */
    uint8_t *replay_bits;
    _Atomic uint64_t events, queued;
} cq;

struct cq_sub {
    conn_t *c;
    cq_worker *cw;
    cq *cqs;
    uint32_t ncq;
    bool paused;
    sub *prev, *next;
};

struct cq_worker {
    worker_t *w;
    struct event *pump_ev, *tick_ev;
    sub *subs;
    bool draining;
    int64_t progress_ms;
    buf_t batch;
};

/* The member's CQs, one per process like the journal hooks that feed it:
 * the list (CQ_LIST, the member agent's replays, a freed journal) and the
 * wake-up of the workers that hold CQs. A CQ's delivery state (cursors,
 * its connection) is touched only by its worker. */
static struct {
    pthread_mutex_t lock; /* the list of CQs, their replay bits */
    cq *all;
    uint32_t ncq;
    _Atomic uint32_t active;
    _Atomic uint64_t next_id;
    pthread_mutex_t wake_lock; /* workers[] against their teardown */
    cq_worker *workers[CQ_MAX_WORKERS];
    _Atomic bool woken[CQ_MAX_WORKERS];
    _Atomic int nworkers; /* highest worker index with CQs, + 1 */
    pthread_once_t once;
} hub = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake_lock = PTHREAD_MUTEX_INITIALIZER,
    .once = PTHREAD_ONCE_INIT,
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- waking workers ---- */

static void wake(int i)
{
    if (atomic_load_explicit(&hub.woken[i], memory_order_relaxed) ||
        atomic_exchange(&hub.woken[i], true))
        return;
    pthread_mutex_lock(&hub.wake_lock);
    if (hub.workers[i])
        event_active(hub.workers[i]->pump_ev, 0, 0);
    pthread_mutex_unlock(&hub.wake_lock);
}

/* A write was journaled (under its bucket's lock): wake every worker that
 * holds CQs; they check cheaply which of theirs have anything new. */
static void on_append(journal_t *j, uint32_t bucket)
{
    (void)j;
    (void)bucket;
    if (!atomic_load_explicit(&hub.active, memory_order_relaxed))
        return;
    int n = atomic_load_explicit(&hub.nworkers, memory_order_relaxed);
    for (int i = 0; i < n; i++)
        wake(i);
}

/* A journal is freed with its region (memory reclaimer): its CQs end. */
static void on_journal_free(journal_t *j)
{
    pthread_mutex_lock(&hub.lock);
    for (cq *q = hub.all; q; q = q->hub_next)
        if (q->journal == j) {
            atomic_store(&q->gone, true);
            atomic_store(&hub.woken[q->owner->cw->w->id], false);
            wake(q->owner->cw->w->id);
        }
    pthread_mutex_unlock(&hub.lock);
}

static const journal_hooks hooks = {.on_append = on_append, .on_free = on_journal_free};

static void init_once(void) { journal_set_hooks(&hooks); }

/* ---- frames ---- */

static bool push_begin(conn_t *c, msgpack_packer *pk, size_t *off, uint64_t id, uint32_t kind,
                       uint32_t nitems)
{
    msgpack_packer_init(pk, c, conn_pack_write);
    *off = frame_begin(&c->out);
    if (*off == (size_t)-1) {
        c->out_failed = true;
        return false;
    }
    msgpack_pack_array(pk, 3 + nitems);
    msgpack_pack_uint32(pk, MSG_PUSH);
    msgpack_pack_uint64(pk, id);
    msgpack_pack_uint32(pk, kind);
    return true;
}

static void push_end(conn_t *c, size_t off)
{
    if (frame_end(&c->out, off))
        c->out_failed = true;
}

static void push_replay(cq *q, uint32_t bucket, uint64_t complete_since)
{
    msgpack_packer pk;
    size_t off;
    conn_t *c = q->owner->c;
    if (!push_begin(c, &pk, &off, q->id, PUSH_CQ_REPLAY, 2))
        return;
    msgpack_pack_uint32(&pk, bucket);
    msgpack_pack_uint64(&pk, complete_since);
    push_end(c, off);
}

static void push_closed(cq *q, int status, const char *msg)
{
    msgpack_packer pk;
    size_t off;
    conn_t *c = q->owner->c;
    if (!push_begin(c, &pk, &off, q->id, PUSH_CQ_CLOSED, 2))
        return;
    msgpack_pack_uint32(&pk, (uint32_t)status);
    mpw_cstr(&pk, msg);
    push_end(c, off);
}

enum { CQ_CREATE = 1, CQ_UPDATE = 2, CQ_DESTROY = 3, CQ_CLEAR = 4 };

static void push_event(cq *q, uint32_t bucket, const journal_event *e, int op)
{
    msgpack_packer pk;
    size_t off;
    conn_t *c = q->owner->c;
    if (!push_begin(c, &pk, &off, q->id, PUSH_CQ_EVENT, 5))
        return;
    msgpack_pack_uint32(&pk, bucket);
    msgpack_pack_uint64(&pk, e->seq);
    msgpack_pack_uint32(&pk, (uint32_t)op);
    if (op == CQ_CLEAR)
        msgpack_pack_nil(&pk);
    else
        mpw_key(&pk, e->key, e->klen, e->key_is_str);
    if (op == CQ_CLEAR || op == CQ_DESTROY)
        msgpack_pack_nil(&pk);
    else
        mpw_raw(&pk, e->new_value, e->new_vlen);
    push_end(c, off);
    atomic_fetch_add_explicit(&q->events, 1, memory_order_relaxed);
}

/* PROGRESS for the buckets whose cursor passed what the client was told. */
static void push_progress(cq *q)
{
    uint32_t n = 0;
    for (uint32_t b = 0; b < q->nbuckets; b++)
        n += q->cursor[b] > q->sent[b];
    if (!n)
        return;
    msgpack_packer pk;
    size_t off;
    conn_t *c = q->owner->c;
    if (!push_begin(c, &pk, &off, q->id, PUSH_CQ_PROGRESS, 1))
        return;
    msgpack_pack_array(&pk, n);
    for (uint32_t b = 0; b < q->nbuckets; b++)
        if (q->cursor[b] > q->sent[b]) {
            msgpack_pack_array(&pk, 2);
            msgpack_pack_uint32(&pk, b);
            msgpack_pack_uint64(&pk, q->cursor[b]);
            q->sent[b] = q->cursor[b];
        }
    push_end(c, off);
}

/* ---- CQ lifetime ---- */

static void cq_free(cq *q)
{
    if (!q)
        return;
    query_free(q->q);
    free(q->text);
    free(q->params_raw);
    free(q->params);
    free(q->cursor);
    free(q->sent);
    free(q->replay_bits);
    free(q);
}

static void hub_add(cq *q)
{
    pthread_mutex_lock(&hub.lock);
    q->hub_prev = NULL;
    q->hub_next = hub.all;
    if (hub.all)
        hub.all->hub_prev = q;
    hub.all = q;
    hub.ncq++;
    atomic_store(&hub.active, hub.ncq);
    pthread_mutex_unlock(&hub.lock);
}

static void hub_remove(cq *q)
{
    pthread_mutex_lock(&hub.lock);
    if (q->hub_prev)
        q->hub_prev->hub_next = q->hub_next;
    else
        hub.all = q->hub_next;
    if (q->hub_next)
        q->hub_next->hub_prev = q->hub_prev;
    hub.ncq--;
    atomic_store(&hub.active, hub.ncq);
    pthread_mutex_unlock(&hub.lock);
}

/* Unlinks q from its subscription and the hub and frees it. */
static void cq_destroy(cq *q)
{
    sub *s = q->owner;
    for (cq **p = &s->cqs; *p; p = &(*p)->next)
        if (*p == q) {
            *p = q->next;
            break;
        }
    s->ncq--;
    hub_remove(q);
    cq_free(q);
}

static void cq_end(cq *q, int status, const char *why)
{
    log_info("continuous query %llu (%s) from %s closed: %s", (unsigned long long)q->id, q->name,
             q->peer, why);
    push_closed(q, status, why);
    cq_destroy(q);
}

/* The connection closed: its CQs go with it. */
void cq_conn_closed(conn_t *c)
{
    sub *s = c->cq_sub;
    if (!s)
        return;
    while (s->cqs)
        cq_destroy(s->cqs);
    cq_worker *cw = s->cw;
    if (s->prev)
        s->prev->next = s->next;
    else
        cw->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->cq_sub = NULL;
    free(s);
}

static void on_pump(evutil_socket_t fd, short what, void *arg);
static void on_tick(evutil_socket_t fd, short what, void *arg);

static cq_worker *worker_state(worker_t *w)
{
    if (w->id >= CQ_MAX_WORKERS)
        return NULL;
    if (hub.workers[w->id]) /* only this thread writes its slot */
        return hub.workers[w->id];
    cq_worker *cw = calloc(1, sizeof(*cw));
    if (!cw)
        return NULL;
    cw->w = w;
    buf_init(&cw->batch);
    cw->pump_ev = event_new(w->base, -1, 0, on_pump, cw);
    cw->tick_ev = event_new(w->base, -1, EV_PERSIST, on_tick, cw);
    struct timeval tv = {0, CQ_TICK_MS * 1000};
    if (!cw->pump_ev || !cw->tick_ev || event_add(cw->tick_ev, &tv)) {
        if (cw->pump_ev)
            event_free(cw->pump_ev);
        if (cw->tick_ev)
            event_free(cw->tick_ev);
        free(cw);
        return NULL;
    }
    cw->progress_ms = now_ms();
    pthread_mutex_lock(&hub.wake_lock);
    hub.workers[w->id] = cw;
    while (atomic_load(&hub.nworkers) <= w->id)
        atomic_fetch_add(&hub.nworkers, 1);
    pthread_mutex_unlock(&hub.wake_lock);
    return cw;
}

static sub *sub_of(conn_t *c) { return c->cq_sub; }

static sub *sub_get(conn_t *c)
{
    sub *s = sub_of(c);
    if (s)
        return s;
    cq_worker *cw = worker_state(c->w);
    if (!cw || !(s = calloc(1, sizeof(*s))))
        return NULL;
    s->c = c;
    s->cw = cw;
    s->next = cw->subs;
    if (cw->subs)
        cw->subs->prev = s;
    cw->subs = s;
    c->cq_sub = s;
    return s;
}

/* ---- judging events ---- */

static bool matches(const cq *q, const uint8_t *key, uint32_t klen, bool key_is_str,
                    const uint8_t *value, uint32_t vlen)
{
    if (!q->q->where)
        return true;
    qrow row;
    row.key = key_is_str ? qv_str(key, klen) : (qvalue){.type = QT_BIN, .v.s = {key, klen}};
    if (!qvalue_decode(value, vlen, CQ_VALUE_DEPTH, &row.value))
        row.value = qv_undefined();
    bool m = false;
    qerror err;
    if (qeval_match(q->q->where, &q->env, &row, &m, &err))
        return false; /* an evaluation error matches nothing */
    return m;
}

/* The CQ event a journal event is, or 0 (none). */
static int judge(const cq *q, const journal_event *e)
{
    if (e->op == JOURNAL_CLEAR)
        return CQ_CLEAR;
    bool was = e->old_value && matches(q, e->key, e->klen, e->key_is_str, e->old_value, e->old_vlen);
    bool is = e->op == JOURNAL_PUT &&
              matches(q, e->key, e->klen, e->key_is_str, e->new_value, e->new_vlen);
    return is ? (was ? CQ_UPDATE : CQ_CREATE) : was ? CQ_DESTROY : 0;
}

/* ---- the pump ---- */

/* Whether q's region is still the one it was opened on; the worker is
 * online, so when it is, q->region and q->journal stay valid until it
 * leaves. A freed region's journal marked q gone before its memory could
 * be reused, so an address that came back is caught too. */
static bool cq_alive(cq *q, server_t *srv)
{
    if (atomic_load(&q->gone))
        return false;
    region_t *r = registry_find(srv->registry, (const uint8_t *)q->region_name,
                                strlen(q->region_name));
    return r == q->region && !atomic_load(&q->gone);
}

/* A lock-free first look (the journal checks again under the bucket's
 * lock): copies hold the events of buckets this member does not serve. */
static bool maybe_served(const cq *q, uint32_t b)
{
    return !region_clustered(q->region) || region_bucket_role(q->region, b) == ROLE_PRIMARY;
}

static void take_replays(cq *q)
{
    if (!atomic_load(&q->replay_pending))
        return;
    size_t nbytes = (q->nbuckets + 7) / 8;
    uint8_t bits[8192];
    pthread_mutex_lock(&hub.lock);
    memcpy(bits, q->replay_bits, nbytes);
    memset(q->replay_bits, 0, nbytes);
    atomic_store(&q->replay_pending, false);
    pthread_mutex_unlock(&hub.lock);
    for (uint32_t b = 0; b < q->nbuckets; b++) {
        if (!(bits[b / 8] & (1u << (b % 8))))
            continue;
        journal_info info;
        journal_snapshot(q->journal, b, NULL, NULL, &info);
        if (!info.serving || info.complete_since == UINT64_MAX)
            continue;
        push_replay(q, b, info.complete_since);
        q->cursor[b] = q->sent[b] = info.complete_since;
    }
}

/* Delivers bucket b's new events, judging at most *left of them (the
 * pass's budget, decreased). Returns -1 when the connection's output is
 * full (stop producing for it), else 0. */
static int pump_bucket(cq *q, uint32_t b, buf_t *batch, long *left)
{
    conn_t *c = q->owner->c;
    while (*left > 0) {
        if (buf_readable(&c->out) >= CQ_OUT_PAUSE || c->out_failed)
            return -1;
        buf_reset(batch);
        journal_info info;
        long n = journal_read(q->journal, b, q->cursor[b], CQ_BATCH_EVENTS, CQ_BATCH_BYTES, batch,
                              &info);
        if (n < 0 || !info.serving)
            return 0; /* no memory (retried on the next pass), or not ours now */
        if (q->cursor[b] < info.complete_since && info.complete_since != UINT64_MAX) {
            /* events this CQ had not judged were evicted: the client learns
             * of the gap, never silently */
            push_replay(q, b, info.complete_since);
            q->cursor[b] = q->sent[b] = info.complete_since;
        }
        size_t off = 0;
        journal_event e;
        while (journal_next(batch, &off, &e)) {
            if (e.seq <= q->cursor[b])
                continue;
            int op = judge(q, &e);
            if (op) {
                push_event(q, b, &e, op);
                q->sent[b] = e.seq;
            }
            q->cursor[b] = e.seq;
            (*left)--;
        }
        if (n == 0 || q->cursor[b] >= info.last) {
            /* caught up: every write up to the counter was judged (a term's
             * jump has no events), so PROGRESS can say so */
            if (info.counter > q->cursor[b])
                q->cursor[b] = info.counter;
            return 0;
        }
    }
    return 0;
}

/* One pass over q within the budget *left. Returns 0, -1 when q's
 * connection is full, or -2 when q was closed. */
static int pump_cq(cq *q, server_t *srv, buf_t *batch, long *left)
{
    if (!cq_alive(q, srv)) {
        cq_end(q, ST_UNKNOWN_REGION, "the region was destroyed");
        return -2;
    }
    take_replays(q);
    for (uint32_t b = 0; b < q->nbuckets && *left > 0; b++) {
        if (journal_last(q->journal, b) <= q->cursor[b] || !maybe_served(q, b))
            continue;
        if (pump_bucket(q, b, batch, left))
            return -1;
    }
    return 0;
}

/* Sends what was produced for s (may free s's connection and s). */
static void sub_flush(sub *s)
{
    for (cq *q = s->cqs; q; q = q->next)
        atomic_store_explicit(&q->queued, buf_readable(&s->c->out), memory_order_relaxed);
    if (buf_readable(&s->c->out) || s->c->out_failed)
        conn_kick(s->c);
}

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cq_worker *cw = arg;
    worker_t *w = cw->w;
    atomic_store(&hub.woken[w->id], false); /* writes from now on wake us again */
    if (cw->draining)
        return;
    worker_enter(w);
    long left = CQ_PASS_EVENTS;
    for (sub *s = cw->subs, *next; s; s = next) {
        next = s->next;
        if (s->paused)
            continue;
        for (cq *q = s->cqs, *qn; q && left > 0; q = qn) {
            qn = q->next;
            if (pump_cq(q, w->srv, &cw->batch, &left) == -1) {
                s->paused = true;
                break;
            }
        }
        sub_flush(s);
    }
    buf_reset(&cw->batch);
    buf_shrink_idle(&cw->batch, CQ_BATCH_BYTES);
    if (left <= 0) {
        /* more may wait: after the worker's other events, and starting with
         * the next subscription, so one busy CQ does not starve the rest */
        sub *first = cw->subs;
        if (first && first->next) {
            cw->subs = first->next;
            cw->subs->prev = NULL;
            sub *last = cw->subs;
            while (last->next)
                last = last->next;
            last->next = first;
            first->prev = last;
            first->next = NULL;
        }
        event_active(cw->pump_ev, 0, 0);
    }
    worker_leave(w);
}

/* A paused subscription: resumes once its output drained; a CQ of it that
 * fell behind the journal's eviction meanwhile ends (too slow). */
static void check_paused(sub *s, server_t *srv)
{
    if (buf_readable(&s->c->out) < CQ_OUT_PAUSE / 2) {
        s->paused = false;
        return;
    }
    for (cq *q = s->cqs, *qn; q; q = qn) {
        qn = q->next;
        if (!cq_alive(q, srv))
            continue; /* the pump ends it once resumed */
        for (uint32_t b = 0; b < q->nbuckets; b++) {
            uint64_t cs = journal_complete_since(q->journal, b);
            if (q->cursor[b] < cs && cs != UINT64_MAX && journal_last(q->journal, b) > q->cursor[b]) {
                char why[160];
                snprintf(why, sizeof why,
                         "subscriber too slow: events it had not received were evicted from "
                         "bucket %u's journal; re-register with replay", b);
                cq_end(q, ST_UNAVAILABLE, why);
                break;
            }
        }
    }
}

/* Moves the cursors of q's served buckets that have no events pending to
 * the buckets' counters (a new term moves a counter without an event).
 * False when q was closed. */
static bool catch_up_counters(cq *q, server_t *srv)
{
    if (!cq_alive(q, srv)) {
        cq_end(q, ST_UNKNOWN_REGION, "the region was destroyed");
        return false;
    }
    take_replays(q);
    for (uint32_t b = 0; b < q->nbuckets; b++) {
        if (journal_last(q->journal, b) > q->cursor[b] || !maybe_served(q, b))
            continue; /* the pump gets to it, or not ours */
        journal_info info;
        journal_snapshot(q->journal, b, NULL, NULL, &info);
        if (info.serving && info.last <= q->cursor[b] && info.counter > q->cursor[b])
            q->cursor[b] = info.counter;
    }
    return true;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cq_worker *cw = arg;
    worker_t *w = cw->w;
    if (cw->draining || !cw->subs)
        return;
    worker_enter(w);
    int64_t now = now_ms();
    bool progress = now - cw->progress_ms >= CQ_PROGRESS_MS;
    if (progress)
        cw->progress_ms = now;
    bool resumed = false;
    for (sub *s = cw->subs, *next; s; s = next) {
        next = s->next;
        if (s->paused) {
            check_paused(s, w->srv);
            resumed |= !s->paused;
        } else if (progress) {
            for (cq *q = s->cqs, *qn; q; q = qn) {
                qn = q->next;
                if (catch_up_counters(q, w->srv))
                    push_progress(q);
            }
        }
        sub_flush(s);
    }
    if (resumed)
        event_active(cw->pump_ev, 0, 0);
    worker_leave(w);
}

void cq_worker_draining(worker_t *w)
{
    if (w->id >= CQ_MAX_WORKERS || !hub.workers[w->id])
        return;
    cq_worker *cw = hub.workers[w->id];
    cw->draining = true;
    for (sub *s = cw->subs; s; s = s->next)
        while (s->cqs)
            cq_end(s->cqs, ST_SHUTTING_DOWN, "the member is shutting down");
}

void cq_worker_stop(worker_t *w)
{
    if (w->id >= CQ_MAX_WORKERS || !hub.workers[w->id])
        return;
    cq_worker *cw = hub.workers[w->id];
    while (cw->subs) /* normally gone with their connections */
        cq_conn_closed(cw->subs->c);
    pthread_mutex_lock(&hub.wake_lock);
    hub.workers[w->id] = NULL;
    pthread_mutex_unlock(&hub.wake_lock);
    event_free(cw->pump_ev);
    event_free(cw->tick_ev);
    buf_free(&cw->batch);
    free(cw);
}

/* ---- member agent ---- */

void cq_primary_gained(region_t *r, uint32_t bucket)
{
    pthread_mutex_lock(&hub.lock);
    for (cq *q = hub.all; q; q = q->hub_next) {
        if (q->region != r || atomic_load(&q->gone) || bucket >= q->nbuckets)
            continue;
        q->replay_bits[bucket / 8] |= (uint8_t)(1u << (bucket % 8));
        atomic_store(&q->replay_pending, true);
        wake(q->owner->cw->w->id);
    }
    pthread_mutex_unlock(&hub.lock);
}

/* ---- CQ_OPEN, CQ_CLOSE, CQ_LIST ---- */

typedef struct initial_acc {
    const cq *q;
    msgpack_packer pk;
    buf_t *out;
    uint32_t count;
    size_t budget;
    bool over;
} initial_acc;

static int collect_initial(void *arg, const entry_view *e)
{
    initial_acc *a = arg;
    if (!matches(a->q, e->key, e->klen, e->key_is_str, e->value, e->vlen))
        return 0;
    if (a->out->len + e->klen + e->vlen + 16 > a->budget) {
        a->over = true;
        return 1;
    }
    msgpack_pack_array(&a->pk, 2);
    mpw_key(&a->pk, e->key, e->klen, e->key_is_str);
    mpw_raw(&a->pk, e->value, e->vlen);
    a->count++;
    return 0;
}

static int build(cq *q, region_t *r, cq_spec *spec, conn_t *c)
{
    q->q = spec->q;
    spec->q = NULL;
    q->params_raw = spec->params_raw;
    spec->params_raw = NULL;
    q->text = malloc(spec->tlen + 1);
    q->nbuckets = region_cfg(r)->total_num_buckets;
    q->cursor = calloc(q->nbuckets, sizeof(uint64_t));
    q->sent = calloc(q->nbuckets, sizeof(uint64_t));
    q->replay_bits = calloc((q->nbuckets + 7) / 8, 1);
    q->params = calloc(CQ_MAX_PARAMS, sizeof(qvalue));
    if (!q->text || !q->cursor || !q->sent || !q->replay_bits || !q->params)
        return -ENOMEM;
    memcpy(q->text, spec->text, spec->tlen);
    q->text[spec->tlen] = 0;
    snprintf(q->name, sizeof q->name, "%.*s", (int)spec->name_len, (const char *)spec->name);
    snprintf(q->region_name, sizeof q->region_name, "%s", region_cfg(r)->name);
    uint32_t np = 0;
    if (q->params_raw) {
        mp_cursor mc;
        mp_cursor_init(&mc, q->params_raw, spec->params_len);
        uint32_t count;
        if (mp_read_array(&mc, &count) || count > CQ_MAX_PARAMS)
            return -EINVAL;
        for (; np < count; np++) {
            size_t used = qvalue_decode(mc.p, mp_left(&mc), CQ_VALUE_DEPTH, &q->params[np]);
            if (!used || mp_skip(&mc, -1))
                return -EINVAL;
        }
    }
    q->env = (qenv){.source = q->q->source, .alias = q->q->alias, .params = q->params,
                    .nparams = np};
    q->region = r;
    q->journal = journal_find(r);
    if (q->journal) /* before the heads are read: events after them are kept */
        journal_arm(q->journal);
    /* "ip:port (client name)" from the handshake */
    const char *open = strstr(c->peer, " (");
    size_t plen = open ? (size_t)(open - c->peer) : strlen(c->peer);
    snprintf(q->peer, sizeof q->peer, "%.*s", (int)(plen < 63 ? plen : 63), c->peer);
    if (open) {
        size_t n = strlen(open + 2); /* "name)" */
        int k = n ? (int)(n - 1 < 63 ? n - 1 : 63) : 0;
        snprintf(q->client, sizeof q->client, "%.*s", k, open + 2);
    }
    return np < q->q->nparams ? -ERANGE : 0;
}

int cq_open(struct req_ctx *x, region_t *r, cq_spec *spec, char *msg, size_t msglen)
{
    pthread_once(&hub.once, init_once);
    int st = ST_NO_MEMORY;
    conn_t *c = x->conn;
    cq *q = NULL;
    buf_t heads, init;
    buf_init(&heads);
    buf_init(&init);
    if (!journal_find(r)) {
        snprintf(msg, msglen, "CQ_OPEN: this member keeps no event journal "
                              "(--journal-bytes-per-bucket=0)");
        st = ST_BAD_REQUEST;
        goto fail;
    }
    sub *s = sub_get(c);
    if (!s) {
        snprintf(msg, msglen, "CQ_OPEN: cannot subscribe on this connection");
        goto fail;
    }
    for (cq *o = s->cqs; o; o = o->next)
        if (strlen(o->name) == spec->name_len && !memcmp(o->name, spec->name, spec->name_len)) {
            snprintf(msg, msglen, "CQ_OPEN: a continuous query named '%s' is open on this connection",
                     o->name);
            st = ST_BAD_ARGUMENT;
            goto fail;
        }
    pthread_mutex_lock(&hub.lock);
    uint32_t total = hub.ncq;
    pthread_mutex_unlock(&hub.lock);
    if (s->ncq >= CQ_MAX_PER_CONN || total >= CQ_MAX_PER_MEMBER) {
        snprintf(msg, msglen, "CQ_OPEN: too many continuous queries (at most %d per connection, "
                              "%d per member)", CQ_MAX_PER_CONN, CQ_MAX_PER_MEMBER);
        st = ST_BAD_ARGUMENT;
        goto fail;
    }
    q = calloc(1, sizeof(*q));
    if (!q) {
        snprintf(msg, msglen, "CQ_OPEN: out of memory");
        goto fail;
    }
    int rc = build(q, r, spec, c);
    if (rc) {
        if (rc == -ERANGE)
            snprintf(msg, msglen, "CQ_OPEN: the query uses $%u but %u parameters were given",
                     q->q->nparams, q->env.nparams);
        else if (rc == -EINVAL)
            snprintf(msg, msglen, "CQ_OPEN: params must be an array of at most %d values",
                     CQ_MAX_PARAMS);
        else
            snprintf(msg, msglen, "CQ_OPEN: out of memory");
        st = rc == -ENOMEM ? ST_NO_MEMORY : rc == -EINVAL ? ST_BAD_REQUEST : ST_BAD_ARGUMENT;
        goto fail;
    }
    q->id = atomic_fetch_add(&hub.next_id, 1) + 1;
    q->owner = s;
    /* registered before the heads are read: a primary gained from here on
     * replays, one gained before shows in the heads */
    hub_add(q);
    q->next = s->cqs;
    s->cqs = q;
    s->ncq++;

    size_t budget = reply_budget(x);
    initial_acc a = {.q = q, .out = &init, .budget = budget > 4096 ? budget - 1024 : budget / 2};
    mpw_init(&a.pk, &init);
    msgpack_packer hp;
    mpw_init(&hp, &heads);
    uint32_t nheads = 0;
    for (uint32_t b = 0; b < q->nbuckets && !a.over; b++) {
        journal_info info;
        journal_snapshot(q->journal, b, spec->initial ? collect_initial : NULL, &a, &info);
        if (!info.serving)
            continue;
        msgpack_pack_array(&hp, 2);
        msgpack_pack_uint32(&hp, b);
        msgpack_pack_uint64(&hp, info.counter);
        nheads++;
        q->cursor[b] = q->sent[b] = info.counter;
    }
    if (a.over || heads.len + init.len + 64 > reply_budget(x)) {
        snprintf(msg, msglen, "CQ_OPEN: the initial result does not fit in a reply (%zu bytes "
                              "max): open without initial results or narrow the query",
                 reply_budget(x));
        st = ST_TOO_LARGE;
        cq_destroy(q);
        q = NULL;
        goto fail;
    }
    if (spec->replay) {
        /* every bucket: the pass replays those served here when it runs */
        pthread_mutex_lock(&hub.lock); /* the member agent may be setting bits too */
        memset(q->replay_bits, 0xff, (q->nbuckets + 7) / 8);
        atomic_store(&q->replay_pending, true);
        pthread_mutex_unlock(&hub.lock);
    }
    reply_head(x, ST_OK, 3);
    msgpack_pack_uint64(&x->pk, q->id);
    msgpack_pack_array(&x->pk, nheads);
    mpw_raw(&x->pk, heads.data, heads.len);
    msgpack_pack_array(&x->pk, a.count);
    mpw_raw(&x->pk, init.data, init.len);
    reply_done(x);
    buf_free(&heads);
    buf_free(&init);
    log_info("continuous query %llu (%s) opened by %s on %s: %s", (unsigned long long)q->id,
             q->name, c->peer, q->region_name, q->text);
    /* the first pass runs after this reply is queued */
    atomic_store(&hub.woken[c->w->id], false);
    wake(c->w->id);
    return 0;
fail:
    if (q && !q->owner)
        cq_free(q);
    query_free(spec->q);
    spec->q = NULL;
    free(spec->params_raw);
    spec->params_raw = NULL;
    buf_free(&heads);
    buf_free(&init);
    return st;
}

int cq_close(conn_t *c, uint64_t id)
{
    sub *s = sub_of(c);
    for (cq *q = s ? s->cqs : NULL; q; q = q->next)
        if (q->id == id) {
            log_info("continuous query %llu (%s) closed by %s", (unsigned long long)id, q->name,
                     q->peer);
            cq_destroy(q);
            return 0;
        }
    return -ENOENT;
}

static uint32_t serving_buckets(cq *q, server_t *srv)
{
    if (!cq_alive(q, srv))
        return 0;
    if (!region_clustered(q->region))
        return q->nbuckets;
    uint32_t n = 0;
    for (uint32_t b = 0; b < q->nbuckets; b++)
        n += region_bucket_role(q->region, b) == ROLE_PRIMARY;
    return n;
}

int cq_list(struct req_ctx *x, size_t max_bytes)
{
    buf_t out;
    buf_init(&out);
    msgpack_packer pk;
    mpw_init(&pk, &out);
    uint32_t n = 0;
    int rc = 0;
    pthread_mutex_lock(&hub.lock);
    for (cq *q = hub.all; q && !rc; q = q->hub_next) {
        msgpack_pack_map(&pk, 9);
        mpw_kv_uint(&pk, "id", q->id);
        mpw_kv_str(&pk, "name", q->name);
        mpw_kv_str(&pk, "region", q->region_name);
        mpw_kv_str(&pk, "query", q->text);
        mpw_kv_str(&pk, "client", q->client);
        mpw_kv_str(&pk, "peer", q->peer);
        mpw_kv_uint(&pk, "events", atomic_load(&q->events));
        mpw_kv_uint(&pk, "queued", atomic_load(&q->queued));
        mpw_kv_uint(&pk, "buckets", serving_buckets(q, x->srv));
        n++;
        if (out.len > max_bytes)
            rc = -E2BIG;
    }
    pthread_mutex_unlock(&hub.lock);
    if (!rc) {
        reply_head(x, ST_OK, 1);
        msgpack_pack_array(&x->pk, n);
        mpw_raw(&x->pk, out.data, out.len);
        reply_done(x);
    }
    buf_free(&out);
    return rc;
}
