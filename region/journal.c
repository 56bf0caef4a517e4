/* The per-bucket event journal (journal.h). */
#include "region/journal.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "region/bucket.h"

/* An event as stored: the header, then key, old value, new value. */
typedef struct jevent {
    uint64_t seq;
    uint32_t alloc; /* bytes malloc'd for it (an evicted event's memory is reused) */
    uint32_t klen, old_vlen, new_vlen;
    uint8_t op;
    bool key_is_str;
    bool has_old;
    uint8_t data[];
} jevent;

/* One bucket's journal: a ring of events sorted by seq. Guarded by the
 * bucket's lock, except the two atomics that readers may peek at. */
typedef struct jbucket {
    jevent **ring;
    uint32_t cap, head, n; /* cap: 0 or a power of two */
    size_t bytes;
    _Atomic size_t bytes_seen; /* bytes, for racy stats reads (a plain store, no lock prefix) */
    _Atomic uint64_t last;
    _Atomic uint64_t complete_since;
    bool armed;            /* recording (journal_arm) */
} jbucket;

struct journal {
    region_t *r;
    uint32_t nbuckets;
    size_t cap;            /* bytes per bucket */
    struct bucket **locks; /* each bucket, for its lock (from attach) */
    jbucket *jb;
    struct journal *next; /* in the live list */
    _Atomic bool armed;   /* journal_arm ran */
    pthread_mutex_t arm_lock;
};

static const journal_hooks *_Atomic hooks;
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static journal_t *live;

void journal_set_hooks(const journal_hooks *h) { atomic_store(&hooks, h); }

static size_t event_size(const jevent *e)
{
    return offsetof(jevent, data) + e->klen + e->old_vlen + e->new_vlen;
}

static jevent *at(const jbucket *q, uint32_t i) { return q->ring[(q->head + i) & (q->cap - 1)]; }

/* Unlinks the oldest event and returns it (the caller frees or reuses it). */
static jevent *pop_oldest(journal_t *j, jbucket *q)
{
    (void)j;
    jevent *e = q->ring[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->n--;
    q->bytes -= event_size(e);
    atomic_store_explicit(&q->bytes_seen, q->bytes, memory_order_relaxed);
    if (e->seq > atomic_load_explicit(&q->complete_since, memory_order_relaxed))
        atomic_store_explicit(&q->complete_since, e->seq, memory_order_relaxed);
    return e;
}

static void drop_oldest(journal_t *j, jbucket *q) { free(pop_oldest(j, q)); }

/* Forgets every event; complete_since becomes at least floor. */
static void drop_all(journal_t *j, jbucket *q, uint64_t floor)
{
    while (q->n)
        drop_oldest(j, q);
    if (floor > atomic_load_explicit(&q->complete_since, memory_order_relaxed))
        atomic_store_explicit(&q->complete_since, floor, memory_order_relaxed);
}

static void raise_last(jbucket *q, uint64_t seq)
{
    if (seq > atomic_load_explicit(&q->last, memory_order_relaxed))
        atomic_store_explicit(&q->last, seq, memory_order_relaxed);
}

static int grow(jbucket *q)
{
    uint32_t cap = q->cap ? q->cap * 2 : 16;
    jevent **ring = malloc(cap * sizeof(*ring));
    if (!ring)
        return -ENOMEM;
    for (uint32_t i = 0; i < q->n; i++)
        ring[i] = at(q, i);
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
    return 0;
}

/* Inserts e in seq order: replicated writes arrive nearly in order, so the
 * place is found walking back from the tail. A seq already held is a
 * duplicate (dropped). */
static bool insert_sorted(jbucket *q, jevent *e)
{
    uint32_t i = q->n;
    while (i > 0 && at(q, i - 1)->seq > e->seq)
        i--;
    if (i > 0 && at(q, i - 1)->seq == e->seq)
        return false;
    for (uint32_t k = q->n; k > i; k--)
        q->ring[(q->head + k) & (q->cap - 1)] = at(q, k - 1);
    q->ring[(q->head + i) & (q->cap - 1)] = e;
    q->n++;
    return true;
}

static void record(journal_t *j, uint32_t bucket, const bucket_change *c, uint8_t op)
{
    jbucket *q = &j->jb[bucket];
    bool has_old = c->old_value != NULL && op != JOURNAL_CLEAR;
    uint32_t klen = op == JOURNAL_CLEAR ? 0 : c->klen;
    uint32_t old_vlen = has_old ? c->old_vlen : 0;
    uint32_t new_vlen = op == JOURNAL_PUT ? c->new_vlen : 0;
    size_t size = offsetof(jevent, data) + (size_t)klen + old_vlen + new_vlen;
    raise_last(q, c->counter);
    if (size > j->cap) {
        drop_all(j, q, c->counter); /* cannot hold it: readers learn of a gap */
        return;
    }
    /* a full journal evicts as it records: an evicted event's memory is
     * reused when it is large enough, sparing the allocator a round trip */
    jevent *e = NULL;
    while (q->n && q->bytes + size > j->cap) {
        jevent *old = pop_oldest(j, q);
        if (!e && old->alloc >= size)
            e = old;
        else
            free(old);
    }
    if (!e && (e = malloc(size)) != NULL)
        e->alloc = (uint32_t)size;
    if (!e || (q->n == q->cap && grow(q))) {
        free(e);
        drop_all(j, q, c->counter);
        return;
    }
    e->seq = c->counter;
    e->op = op;
    e->key_is_str = c->key_is_str;
    e->has_old = has_old;
    e->klen = klen;
    e->old_vlen = old_vlen;
    e->new_vlen = new_vlen;
    if (klen)
        memcpy(e->data, c->key, klen);
    if (old_vlen)
        memcpy(e->data + klen, c->old_value, old_vlen);
    if (new_vlen)
        memcpy(e->data + klen + old_vlen, c->new_value, new_vlen);
    if (!insert_sorted(q, e)) {
        free(e);
        return;
    }
    q->bytes += size;
    atomic_store_explicit(&q->bytes_seen, q->bytes, memory_order_relaxed);
    const journal_hooks *h = atomic_load_explicit(&hooks, memory_order_acquire);
    if (h && h->on_append)
        h->on_append(j, bucket);
}

static void on_change(void *ctx, uint32_t bucket, const bucket_change *c)
{
    journal_t *j = ctx;
    if (!j->jb[bucket].armed && c->kind != BC_DROP)
        return; /* nobody reads it yet: writes cost nothing (journal_arm) */
    switch (c->kind) {
    case BC_PUT:
    case BC_REMOVE:
        /* image state is not a write; a clear's removals are its CLEAR */
        if (c->origin == BC_ORIGIN_WRITE && !c->in_clear)
            record(j, bucket, c, c->kind == BC_PUT ? JOURNAL_PUT : JOURNAL_REMOVE);
        break;
    case BC_CLEAR:
        record(j, bucket, c, JOURNAL_CLEAR);
        break;
    case BC_DROP:
        /* the bucket left: nothing here is complete until an image restarts it */
        drop_all(j, &j->jb[bucket], UINT64_MAX);
        free(j->jb[bucket].ring);
        j->jb[bucket].ring = NULL;
        j->jb[bucket].cap = j->jb[bucket].head = 0;
        break;
    }
}

static void on_attach(void *ctx, uint32_t bucket, struct bucket *b)
{
    journal_t *j = ctx;
    j->locks[bucket] = b;
    /* a region that already holds entries has a past the journal never saw */
    atomic_store(&j->jb[bucket].complete_since, b->counter);
    atomic_store(&j->jb[bucket].last, b->counter);
}

static void journal_free(void *ctx)
{
    journal_t *j = ctx;
    const journal_hooks *h = atomic_load_explicit(&hooks, memory_order_acquire);
    if (h && h->on_free)
        h->on_free(j);
    pthread_mutex_lock(&live_lock);
    for (journal_t **p = &live; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    pthread_mutex_unlock(&live_lock);
    for (uint32_t i = 0; i < j->nbuckets; i++) {
        jbucket *q = &j->jb[i];
        for (uint32_t k = 0; k < q->n; k++)
            free(at(q, k));
        free(q->ring);
    }
    pthread_mutex_destroy(&j->arm_lock);
    free(j->jb);
    free(j->locks);
    free(j);
}

void journal_arm(journal_t *j)
{
    if (atomic_load(&j->armed))
        return;
    pthread_mutex_lock(&j->arm_lock);
    for (uint32_t i = 0; i < j->nbuckets && !atomic_load(&j->armed); i++) {
        struct bucket *b = j->locks[i];
        jbucket *q = &j->jb[i];
        pthread_mutex_lock(&b->lock);
        /* what happened before was not recorded: complete from here on */
        uint64_t cs = atomic_load(&q->complete_since);
        if (cs != UINT64_MAX && cs < b->counter)
            atomic_store(&q->complete_since, b->counter);
        if (atomic_load(&q->last) < b->counter)
            atomic_store(&q->last, b->counter);
        q->armed = true;
        pthread_mutex_unlock(&b->lock);
    }
    atomic_store(&j->armed, true);
    pthread_mutex_unlock(&j->arm_lock);
}

bool journal_armed(const journal_t *j) { return atomic_load(&j->armed); }

journal_t *journal_attach(region_t *r, size_t bytes_per_bucket)
{
    journal_t *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->r = r;
    j->nbuckets = region_cfg(r)->total_num_buckets;
    j->cap = bytes_per_bucket;
    j->jb = calloc(j->nbuckets, sizeof(*j->jb));
    j->locks = calloc(j->nbuckets, sizeof(*j->locks));
    pthread_mutex_init(&j->arm_lock, NULL);
    if (!j->jb || !j->locks) {
        free(j->jb);
        free(j->locks);
        free(j);
        return NULL;
    }
    region_observer o = {.on_change = on_change, .ctx = j};
    if (region_observe(r, &o, on_attach, journal_free)) {
        free(j->jb);
        free(j->locks);
        free(j);
        return NULL;
    }
    pthread_mutex_lock(&live_lock);
    j->next = live;
    live = j;
    pthread_mutex_unlock(&live_lock);
    return j;
}

journal_t *journal_find(const region_t *r)
{
    pthread_mutex_lock(&live_lock);
    journal_t *j = live;
    while (j && j->r != r)
        j = j->next;
    pthread_mutex_unlock(&live_lock);
    return j;
}

region_t *journal_region(const journal_t *j) { return j->r; }
uint32_t journal_nbuckets(const journal_t *j) { return j->nbuckets; }

uint64_t journal_bytes(const journal_t *j)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < j->nbuckets; i++)
        n += atomic_load_explicit(&j->jb[i].bytes_seen, memory_order_relaxed);
    return n;
}

uint64_t journal_last(const journal_t *j, uint32_t bucket)
{
    return atomic_load_explicit(&j->jb[bucket].last, memory_order_relaxed);
}

uint64_t journal_complete_since(const journal_t *j, uint32_t bucket)
{
    return atomic_load_explicit(&j->jb[bucket].complete_since, memory_order_relaxed);
}

static void fill_info(const journal_t *j, const struct bucket *b, const jbucket *q,
                      journal_info *info)
{
    info->serving = !region_clustered(j->r) || atomic_load(&b->role) == ROLE_PRIMARY;
    info->last = atomic_load_explicit(&q->last, memory_order_relaxed);
    info->complete_since = atomic_load_explicit(&q->complete_since, memory_order_relaxed);
    info->counter = b->counter > info->last ? b->counter : info->last;
}

/* Index of the first event with seq > after (binary search: sorted). */
static uint32_t first_after(const jbucket *q, uint64_t after)
{
    uint32_t lo = 0, hi = q->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (at(q, mid)->seq <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Batch records are the stored events, each padded to 8 bytes. */
static size_t padded(size_t n) { return (n + 7) & ~(size_t)7; }

long journal_read(journal_t *j, uint32_t bucket, uint64_t after, size_t max_events,
                  size_t max_bytes, buf_t *out, journal_info *info)
{
    struct bucket *b = j->locks[bucket];
    jbucket *q = &j->jb[bucket];
    size_t start = out->len;
    long n = 0;
    size_t used = 0;
    pthread_mutex_lock(&b->lock);
    fill_info(j, b, q, info);
    for (uint32_t i = first_after(q, after); i < q->n && (size_t)n < max_events; i++) {
        const jevent *e = at(q, i);
        size_t sz = padded(event_size(e));
        if (n > 0 && used + sz > max_bytes)
            break;
        if (buf_reserve(out, sz)) {
            out->len = start;
            n = -ENOMEM;
            break;
        }
        memcpy(out->data + out->len, e, event_size(e));
        out->len += sz;
        used += sz;
        n++;
    }
    pthread_mutex_unlock(&b->lock);
    return n;
}

bool journal_next(const buf_t *batch, size_t *off, journal_event *ev)
{
    if (*off + sizeof(jevent) > batch->len)
        return false;
    jevent h;
    const uint8_t *p = batch->data + *off;
    memcpy(&h, p, sizeof h);
    const uint8_t *d = p + offsetof(jevent, data);
    ev->seq = h.seq;
    ev->op = h.op;
    ev->key_is_str = h.key_is_str;
    ev->key = h.op == JOURNAL_CLEAR ? NULL : d;
    ev->klen = h.klen;
    ev->old_value = h.has_old ? d + h.klen : NULL;
    ev->old_vlen = h.old_vlen;
    ev->new_value = h.op == JOURNAL_PUT ? d + h.klen + h.old_vlen : NULL;
    ev->new_vlen = h.new_vlen;
    *off += padded(offsetof(jevent, data) + h.klen + h.old_vlen + h.new_vlen);
    return true;
}

void journal_snapshot(journal_t *j, uint32_t bucket, region_visit_fn fn, void *arg,
                      journal_info *info)
{
    struct bucket *b = j->locks[bucket];
    pthread_mutex_lock(&b->lock);
    fill_info(j, b, &j->jb[bucket], info);
    if (fn && info->serving)
        bucket_locked_each(b, fn, arg);
    pthread_mutex_unlock(&b->lock);
}

void journal_image_start(journal_t *j, uint32_t bucket, uint64_t counter)
{
    struct bucket *b = j->locks[bucket];
    pthread_mutex_lock(&b->lock);
    atomic_store_explicit(&j->jb[bucket].complete_since, counter, memory_order_relaxed);
    pthread_mutex_unlock(&b->lock);
}
