#include "region/region.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <string.h>

#include "common/hash.h"
#include "region/region_impl.h"

region_t *region_new(const region_config *cfg, uint32_t member_id)
{
    region_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->cfg = *cfg;
    pthread_mutex_init(&r->obs_lock, NULL);
    r->member_id = member_id;
    size_t n = cfg->total_num_buckets;
    r->buckets = aligned_alloc(_Alignof(bucket_t), n * sizeof(bucket_t));
    if (!r->buckets) {
        free(r);
        return NULL;
    }
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (uint64_t)(uintptr_t)r ^ (uint64_t)time(NULL); /* no entropy: still varies per run */
    for (size_t i = 0; i < n; i++)
        bucket_init(&r->buckets[i], seed, (uint32_t)i, r->observers);
    return r;
}

void region_free(region_t *r)
{
    if (!r)
        return;
    for (int i = 0; i < REGION_MAX_OBSERVERS; i++)
        if (r->observers[i].on_change && r->obs_free[i])
            r->obs_free[i](r->observers[i].ctx);
    for (uint32_t i = 0; i < r->cfg.total_num_buckets; i++)
        bucket_destroy(&r->buckets[i]);
    free(r->buckets);
    pthread_mutex_destroy(&r->obs_lock);
    free(r);
}

const region_config *region_cfg(const region_t *r) { return &r->cfg; }


int region_put(region_t *r, uint64_t hash, const uint8_t *key, uint32_t klen, bool key_is_str,
               const uint8_t *value, uint32_t vlen, entry_version *ver)
{
    bucket_t *b = bucket_for(r, hash);
    pthread_mutex_lock(&b->lock);
    int rc = bucket_locked_put(b, hash, key, klen, key_is_str, value, vlen, r->member_id, ver);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

int region_get(region_t *r, uint64_t hash, const uint8_t *key, uint32_t klen,
               region_visit_fn fn, void *arg)
{
    bucket_t *b = bucket_for(r, hash);
    pthread_mutex_lock(&b->lock);
    entry_t *e = bucket_locked_find(b, hash, key, klen);
    if (e && e->tomb)
        e = NULL;
    if (e) {
        entry_view v;
        entry_to_view(e, &v);
        fn(arg, &v);
    }
    pthread_mutex_unlock(&b->lock);
    return e != NULL;
}

int region_remove(region_t *r, uint64_t hash, const uint8_t *key, uint32_t klen)
{
    bucket_t *b = bucket_for(r, hash);
    pthread_mutex_lock(&b->lock);
    int rc = bucket_locked_remove(b, hash, key, klen);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

bool region_contains(region_t *r, uint64_t hash, const uint8_t *key, uint32_t klen)
{
    bucket_t *b = bucket_for(r, hash);
    pthread_mutex_lock(&b->lock);
    entry_t *e = bucket_locked_find(b, hash, key, klen);
    bool found = e && !e->tomb;
    pthread_mutex_unlock(&b->lock);
    return found;
}

uint64_t region_clear(region_t *r)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < r->cfg.total_num_buckets; i++) {
        bucket_t *b = &r->buckets[i];
        pthread_mutex_lock(&b->lock);
        n += bucket_locked_clear(b, false);
        pthread_mutex_unlock(&b->lock);
    }
    return n;
}

uint64_t region_size(const region_t *r)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < r->cfg.total_num_buckets; i++)
        n += atomic_load_explicit(&r->buckets[i].count, memory_order_relaxed);
    return n;
}

uint64_t region_bytes(const region_t *r)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < r->cfg.total_num_buckets; i++)
        n += atomic_load_explicit(&r->buckets[i].bytes, memory_order_relaxed);
    return n;
}

/* Cursor layout: bucket index in the high 32 bits, slot index in the low 32.
 * Tables only grow, by doubling, so an entry in slot s moves to s or
 * s + old_size: walking slots upwards never skips an entry that was present
 * throughout (it may meet one twice). */
static inline uint64_t cursor_make(uint32_t bucket, uint32_t slot)
{
    return (uint64_t)bucket << 32 | slot;
}

/* Visits one slot's chain; returns fn's first nonzero result. */
static int visit_chain(const entry_t *e, region_visit_fn fn, void *arg, uint32_t *visited)
{
    for (; e; e = e->next) {
        if (e->tomb)
            continue;
        entry_view v;
        entry_to_view(e, &v);
        int rc = fn(arg, &v);
        if (rc)
            return rc;
        (*visited)++;
    }
    return 0;
}

/* Entries in a chain and their size as the bound counts it. */
static void chain_cost(const entry_t *e, const region_page_bound *bound, uint32_t *n, size_t *bytes)
{
    *n = 0;
    *bytes = 0;
    for (; e; e = e->next) {
        (*n)++;
        *bytes += e->klen + bound->per_entry + (bound->with_values ? e->vlen : 0);
    }
}

int region_scan_bounded(region_t *r, uint64_t cursor, const region_page_bound *bound,
                        region_visit_fn fn, void *arg, uint64_t *next)
{
    uint32_t bi = (uint32_t)(cursor >> 32);
    uint32_t si = (uint32_t)cursor;
    uint32_t visited = 0;
    size_t used = 0;
    for (; bi < r->cfg.total_num_buckets; bi++, si = 0) {
        bucket_t *b = &r->buckets[bi];
        if (bound->primary_only && atomic_load(&b->role) != ROLE_PRIMARY)
            continue;
        pthread_mutex_lock(&b->lock);
        for (; si < b->nslots; si++) {
            const entry_t *chain = b->slots[si];
            if (!chain)
                continue;
            uint32_t n;
            size_t bytes;
            chain_cost(chain, bound, &n, &bytes);
            if (visited > 0 && (visited + n > bound->limit || used + bytes > bound->max_bytes)) {
                pthread_mutex_unlock(&b->lock);
                *next = cursor_make(bi, si);
                return 0;
            }
            int rc = visit_chain(chain, fn, arg, &visited);
            if (rc) {
                pthread_mutex_unlock(&b->lock);
                *next = cursor_make(bi, si);
                return rc;
            }
            used += bytes;
        }
        pthread_mutex_unlock(&b->lock);
    }
    *next = 0;
    return 0;
}

int region_scan(region_t *r, uint64_t cursor, uint32_t limit, region_visit_fn fn, void *arg,
                uint64_t *next)
{
    region_page_bound bound = {.limit = limit, .max_bytes = SIZE_MAX, .per_entry = 0};
    return region_scan_bounded(r, cursor, &bound, fn, arg, next);
}

/* ---- observers ---- */

int region_observe(region_t *r, const region_observer *o, region_observer_attach_fn attach,
                   void (*on_region_free)(void *ctx))
{
    pthread_mutex_lock(&r->obs_lock);
    int slot = -1;
    for (int i = 0; i < REGION_MAX_OBSERVERS && slot < 0; i++)
        if (!r->observers[i].on_change)
            slot = i;
    if (slot < 0) {
        pthread_mutex_unlock(&r->obs_lock);
        return -ENOSPC;
    }
    /* writers read the slot only through a bucket's mask bit, set below
     * under that bucket's lock, so the slot is complete before any use */
    r->observers[slot] = *o;
    r->obs_free[slot] = on_region_free;
    for (uint32_t i = 0; i < r->cfg.total_num_buckets; i++) {
        bucket_t *b = &r->buckets[i];
        pthread_mutex_lock(&b->lock);
        if (attach)
            attach(o->ctx, i, b);
        b->obs_mask |= (uint8_t)(1u << slot);
        pthread_mutex_unlock(&b->lock);
    }
    pthread_mutex_unlock(&r->obs_lock);
    return 0;
}

void region_unobserve(region_t *r, void *ctx)
{
    pthread_mutex_lock(&r->obs_lock);
    for (int s = 0; s < REGION_MAX_OBSERVERS; s++) {
        if (!r->observers[s].on_change || r->observers[s].ctx != ctx)
            continue;
        for (uint32_t i = 0; i < r->cfg.total_num_buckets; i++) {
            bucket_t *b = &r->buckets[i];
            pthread_mutex_lock(&b->lock);
            b->obs_mask &= (uint8_t)~(1u << s);
            pthread_mutex_unlock(&b->lock);
        }
        memset(&r->observers[s], 0, sizeof(r->observers[s]));
        r->obs_free[s] = NULL;
    }
    pthread_mutex_unlock(&r->obs_lock);
}

void region_bucket_each_locked(struct bucket *b, region_visit_fn fn, void *arg)
{
    bucket_locked_each(b, fn, arg);
}

int region_bucket_run(region_t *r, uint32_t bucket, int (*fn)(void *arg, struct bucket *b),
                      void *arg)
{
    bucket_t *b = &r->buckets[bucket];
    pthread_mutex_lock(&b->lock);
    int rc = fn(arg, b);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void *region_index_set(const region_t *r)
{
    return atomic_load_explicit(&((region_t *)r)->index_set, memory_order_acquire);
}

void *region_index_set_install(region_t *r, void *set)
{
    void *expected = NULL;
    if (atomic_compare_exchange_strong(&r->index_set, &expected, set))
        return set;
    return expected;
}
