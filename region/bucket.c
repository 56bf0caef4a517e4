#include "region/bucket.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUCKET_MIN_SLOTS 8

/* Slot index of a key hash. The hash is public (the protocol fixes it), so
 * it is mixed with the bucket's secret seed through a bijective finalizer
 * (MurmurHash3's fmix64 constants) first: without the seed nobody can pick
 * keys that share slots short of finding full 64-bit hash collisions. The
 * index is the low bits, so doubling the table sends slot s to s or
 * s + old size, which region scans rely on. */
static inline uint32_t slot_of(const bucket_t *b, uint64_t hash, uint32_t nslots)
{
    uint64_t x = hash ^ b->slot_seed;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (uint32_t)(x & (nslots - 1));
}

void bucket_init(bucket_t *b, uint64_t slot_seed, uint32_t id, const region_observer *obs)
{
    b->id = id;
    b->obs_mask = 0;
    b->obs = obs;
    b->slot_seed = slot_seed;
    pthread_mutex_init(&b->lock, NULL);
    b->slots = NULL;
    b->nslots = 0;
    atomic_init(&b->count, 0);
    atomic_init(&b->bytes, 0);
    b->counter = 0;
    atomic_init(&b->role, 0);
    atomic_init(&b->handoff, false);
    b->term = 0;
    atomic_init(&b->primary_id, 0);
    b->ntargets = 0;
    b->targets = NULL;
    b->floor = 0;
    b->ntomb = 0;
    b->trk = NULL;
    atomic_init(&b->inflight, 0);
}

static void free_chains(bucket_t *b)
{
    for (uint32_t i = 0; i < b->nslots; i++) {
        entry_t *e = b->slots[i];
        while (e) {
            entry_t *next = e->next;
            free(e);
            e = next;
        }
        b->slots[i] = NULL;
    }
}

void bucket_destroy(bucket_t *b)
{
    free_chains(b);
    free(b->slots);
    b->slots = NULL;
    b->nslots = 0;
    free(b->targets);
    b->targets = NULL;
    free(b->trk);
    b->trk = NULL;
    pthread_mutex_destroy(&b->lock);
}

void entry_to_view(const entry_t *e, entry_view *v)
{
    v->key = entry_key(e);
    v->klen = e->klen;
    v->key_is_str = e->key_is_str;
    v->value = entry_value(e);
    v->vlen = e->vlen;
    v->version.member_id = e->member_id;
    v->version.counter = e->counter;
    v->tomb = e->tomb;
}

void bucket_locked_notify(bucket_t *b, const bucket_change *c)
{
    for (unsigned i = 0, m = b->obs_mask; m; i++, m >>= 1)
        if (m & 1)
            b->obs[i].on_change(b->obs[i].ctx, b->id, c);
}

void bucket_locked_each(const bucket_t *b, region_visit_fn fn, void *arg)
{
    for (uint32_t i = 0; i < b->nslots; i++)
        for (const entry_t *e = b->slots[i]; e; e = e->next) {
            if (e->tomb)
                continue;
            entry_view v;
            entry_to_view(e, &v);
            if (fn(arg, &v))
                return;
        }
}

/* Tells the observers that key went from old (NULL or a tombstone: absent)
 * to value (tomb: absent) at version (member_id, counter). */
static void notify_store(bucket_t *b, const entry_t *old, uint64_t hash, const uint8_t *key,
                         uint32_t klen, bool key_is_str, const uint8_t *value, uint32_t vlen,
                         bool tomb, uint32_t member_id, uint64_t counter, uint8_t origin)
{
    bool had = old && !old->tomb;
    if (!had && tomb)
        return; /* absent before and after */
    bucket_change c = {
        .kind = tomb ? BC_REMOVE : BC_PUT, .origin = origin, .hash = hash, .key = key,
        .klen = klen, .key_is_str = key_is_str, .old_value = had ? entry_value(old) : NULL,
        .old_vlen = had ? old->vlen : 0, .new_value = tomb ? NULL : value,
        .new_vlen = tomb ? 0 : vlen, .counter = counter, .member_id = member_id,
    };
    bucket_locked_notify(b, &c);
}

/* A live entry removed as part of a clear (or by a plain remove). */
static void notify_remove(bucket_t *b, const entry_t *e, bool in_clear, uint64_t counter,
                          uint32_t member_id)
{
    bucket_change c = {
        .kind = BC_REMOVE, .origin = BC_ORIGIN_WRITE, .in_clear = in_clear, .hash = e->hash,
        .key = entry_key(e), .klen = e->klen, .key_is_str = e->key_is_str,
        .old_value = entry_value(e), .old_vlen = e->vlen, .counter = counter,
        .member_id = member_id,
    };
    bucket_locked_notify(b, &c);
}

static void notify_kind(bucket_t *b, uint8_t kind, uint64_t counter)
{
    bucket_change c = {.kind = kind, .origin = BC_ORIGIN_WRITE, .counter = counter};
    bucket_locked_notify(b, &c);
}

/* Doubles the table (or creates it). Growth only, never shrinking: region
 * scans rely on it to visit every entry at least once (see region_scan). */
static int grow(bucket_t *b)
{
    uint32_t n = b->nslots ? b->nslots * 2 : BUCKET_MIN_SLOTS;
    if (n < b->nslots)
        return -ENOMEM;
    entry_t **slots = calloc(n, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (uint32_t i = 0; i < b->nslots; i++) {
        entry_t *e = b->slots[i];
        while (e) {
            entry_t *next = e->next;
            uint32_t s = slot_of(b, e->hash, n);
            e->next = slots[s];
            slots[s] = e;
            e = next;
        }
    }
    free(b->slots);
    b->slots = slots;
    b->nslots = n;
    return 0;
}

static entry_t **find_link(const bucket_t *b, uint64_t hash, const uint8_t *key, uint32_t klen)
{
    if (b->nslots == 0)
        return NULL;
    entry_t **link = &b->slots[slot_of(b, hash, b->nslots)];
    for (; *link; link = &(*link)->next) {
        entry_t *e = *link;
        if (e->hash == hash && e->klen == klen && memcmp(entry_key(e), key, klen) == 0)
            return link;
    }
    return link; /* the chain's terminating NULL */
}

entry_t *bucket_locked_find(const bucket_t *b, uint64_t hash, const uint8_t *key, uint32_t klen)
{
    entry_t **link = find_link(b, hash, key, klen);
    return link ? *link : NULL;
}

static entry_t *entry_new(uint64_t hash, const uint8_t *key, uint32_t klen, bool key_is_str,
                          const uint8_t *value, uint32_t vlen)
{
    entry_t *e = malloc(sizeof(*e) + (size_t)klen + vlen);
    if (!e)
        return NULL;
    e->next = NULL;
    e->hash = hash;
    e->klen = klen;
    e->vlen = vlen;
    e->key_is_str = key_is_str;
    e->tomb = false;
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, value, vlen);
    return e;
}

static void account(bucket_t *b, const entry_t *e, int sign)
{
    if (e->tomb)
        b->ntomb = sign > 0 ? b->ntomb + 1 : b->ntomb - 1;
    else if (sign > 0)
        atomic_fetch_add_explicit(&b->count, 1, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&b->count, 1, memory_order_relaxed);
    if (sign > 0)
        atomic_fetch_add_explicit(&b->bytes, entry_footprint(e), memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&b->bytes, entry_footprint(e), memory_order_relaxed);
}

/* Inserts or replaces the entry for key with the given bytes and version. */
static int store(bucket_t *b, uint64_t hash, const uint8_t *key, uint32_t klen, bool key_is_str,
                 const uint8_t *value, uint32_t vlen, bool tomb, uint32_t member_id,
                 uint64_t counter, uint8_t origin)
{
    entry_t **link = find_link(b, hash, key, klen);
    entry_t *old = link ? *link : NULL;
    if (old && old->vlen == vlen && old->tomb == tomb) {
        /* same size: overwrite in place, no allocator round trip */
        if (b->obs_mask)
            notify_store(b, old, hash, key, klen, key_is_str, value, vlen, tomb, member_id,
                         counter, origin);
        memcpy(old->data + klen, value, vlen);
        old->key_is_str = key_is_str;
        old->member_id = member_id;
        old->counter = counter;
        return 0;
    }
    entry_t *e = entry_new(hash, key, klen, key_is_str, value, vlen);
    if (!e)
        return -ENOMEM;
    e->tomb = tomb;
    e->member_id = member_id;
    e->counter = counter;
    if (old) {
        e->next = old->next;
        *link = e;
        account(b, old, -1);
        account(b, e, +1);
        if (b->obs_mask)
            notify_store(b, old, hash, key, klen, key_is_str, value, vlen, tomb, member_id,
                         counter, origin);
        free(old);
        return 0;
    }
    if (atomic_load_explicit(&b->count, memory_order_relaxed) + b->ntomb >= b->nslots && grow(b)) {
        free(e);
        return -ENOMEM;
    }
    uint32_t s = slot_of(b, hash, b->nslots);
    e->next = b->slots[s];
    b->slots[s] = e;
    account(b, e, +1);
    if (b->obs_mask)
        notify_store(b, NULL, hash, key, klen, key_is_str, value, vlen, tomb, member_id, counter,
                     origin);
    return 0;
}

int bucket_locked_put(bucket_t *b, uint64_t hash, const uint8_t *key, uint32_t klen,
                      bool key_is_str, const uint8_t *value, uint32_t vlen, uint32_t member_id,
                      entry_version *ver)
{
    int rc = store(b, hash, key, klen, key_is_str, value, vlen, false, member_id, b->counter + 1,
                   BC_ORIGIN_WRITE);
    if (rc)
        return rc;
    b->counter++;
    if (ver) {
        ver->member_id = member_id;
        ver->counter = b->counter;
    }
    return 0;
}

int bucket_locked_put_at(bucket_t *b, uint64_t hash, const uint8_t *key, uint32_t klen,
                         bool key_is_str, const uint8_t *value, uint32_t vlen, uint32_t member_id,
                         uint64_t counter, uint8_t origin)
{
    int rc = store(b, hash, key, klen, key_is_str, value, vlen, false, member_id, counter, origin);
    if (!rc && counter > b->counter)
        b->counter = counter;
    return rc;
}

static int64_t mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

int bucket_locked_tombstone(bucket_t *b, uint64_t hash, const uint8_t *key, uint32_t klen,
                            bool key_is_str, uint32_t member_id, uint64_t counter,
                            uint8_t origin)
{
    int64_t when = mono_seconds();
    int rc = store(b, hash, key, klen, key_is_str, (const uint8_t *)&when, sizeof when, true,
                   member_id, counter, origin);
    if (!rc && counter > b->counter)
        b->counter = counter;
    return rc;
}

/* Unlinks and frees every entry drop() selects; returns how many. */
static uint32_t remove_where(bucket_t *b, bool (*drop)(const entry_t *e, const void *arg),
                             const void *arg, uint64_t counter)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < b->nslots; i++) {
        for (entry_t **link = &b->slots[i]; *link;) {
            entry_t *e = *link;
            if (drop(e, arg)) {
                *link = e->next;
                if (b->obs_mask && !e->tomb)
                    notify_remove(b, e, true, counter, 0);
                account(b, e, -1);
                free(e);
                n++;
            } else {
                link = &e->next;
            }
        }
    }
    return n;
}

static bool tomb_older(const entry_t *e, const void *arg)
{
    int64_t when;
    if (!e->tomb)
        return false;
    memcpy(&when, entry_value(e), sizeof when);
    return when < *(const int64_t *)arg;
}

uint32_t bucket_locked_purge(bucket_t *b, int64_t cutoff)
{
    return b->ntomb ? remove_where(b, tomb_older, &cutoff, 0) : 0; /* tombstones: no observer */
}

static bool counter_below(const entry_t *e, const void *arg)
{
    return e->counter < *(const uint64_t *)arg;
}

void bucket_locked_clear_below(bucket_t *b, uint64_t counter)
{
    if (counter <= b->floor)
        return;
    remove_where(b, counter_below, &counter, counter); /* newer entries (a reordered later write) stay */
    if (b->obs_mask)
        notify_kind(b, BC_CLEAR, counter);
    b->floor = counter;
    if (b->counter < counter)
        b->counter = counter;
}

int bucket_locked_remove(bucket_t *b, uint64_t hash, const uint8_t *key, uint32_t klen)
{
    entry_t **link = find_link(b, hash, key, klen);
    if (!link || !*link)
        return 0;
    entry_t *e = *link;
    if (e->tomb)
        return 0;
    *link = e->next;
    b->counter++; /* a removal is a write too: later writes must order after it */
    if (b->obs_mask)
        notify_remove(b, e, false, b->counter, 0);
    account(b, e, -1);
    free(e);
    return 1;
}

uint64_t bucket_locked_clear(bucket_t *b, bool drop)
{
    uint64_t n = atomic_load_explicit(&b->count, memory_order_relaxed);
    if (n && !drop)
        b->counter++;
    if (b->obs_mask && drop) {
        notify_kind(b, BC_DROP, b->counter);
    } else if (b->obs_mask && n) {
        for (uint32_t i = 0; i < b->nslots; i++)
            for (const entry_t *e = b->slots[i]; e; e = e->next)
                if (!e->tomb)
                    notify_remove(b, e, true, b->counter, 0);
        notify_kind(b, BC_CLEAR, b->counter);
    }
    free_chains(b);
    atomic_store_explicit(&b->count, 0, memory_order_relaxed);
    atomic_store_explicit(&b->bytes, 0, memory_order_relaxed);
    b->ntomb = 0;
    return n;
}
