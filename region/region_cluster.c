/* The cluster side of a region: bucket roles, writes at the primary,
 * replicated writes at copies, images (see region.h, "Clusters"). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "region/region_impl.h"
#include "region/tracker.h"

void region_set_clustered(region_t *r) { r->clustered = true; }
bool region_clustered(const region_t *r) { return r->clustered; }

uint32_t region_bucket_of(const region_t *r, uint64_t hash)
{
    return hash_bucket(hash, r->cfg.total_num_buckets);
}

static bucket_t *bucket_at(region_t *r, uint32_t bucket)
{
    return &r->buckets[bucket];
}

static int set_targets(bucket_t *b, const uint32_t *targets, uint32_t n)
{
    uint32_t *t = NULL;
    if (n) {
        t = malloc(n * sizeof(*t));
        if (!t)
            return -ENOMEM;
        memcpy(t, targets, n * sizeof(*t));
    }
    free(b->targets);
    b->targets = t;
    b->ntargets = n;
    return 0;
}

enum region_role region_bucket_set_role(region_t *r, uint32_t bucket, enum region_role role,
                                        uint64_t term, uint32_t primary_id,
                                        const uint32_t *targets, uint32_t ntargets)
{
    bucket_t *b = bucket_at(r, bucket);
    if (ntargets > REGION_MAX_TARGETS)
        ntargets = REGION_MAX_TARGETS;
    pthread_mutex_lock(&b->lock);
    enum region_role old = atomic_load(&b->role);
    /* a map that changes nothing for the bucket keeps a handoff's fence:
     * maps are published for other buckets while it drains */
    bool moved = old != role || term > b->term;
    if (term > b->term)
        b->term = term;
    /* a primary of term T hands out counters from T << 32 up, above every
     * counter an earlier primary can have used (see region.h) */
    if (role == ROLE_PRIMARY && b->counter < (b->term << 32))
        b->counter = b->term << 32;
    if (set_targets(b, targets, role == ROLE_PRIMARY ? ntargets : 0) == 0 || role != ROLE_PRIMARY)
        atomic_store(&b->role, (uint8_t)role);
    atomic_store(&b->primary_id, primary_id);
    if (moved)
        atomic_store(&b->handoff, false);
    pthread_mutex_unlock(&b->lock);
    return old;
}

enum region_role region_bucket_role(region_t *r, uint32_t bucket)
{
    return atomic_load_explicit(&bucket_at(r, bucket)->role, memory_order_relaxed);
}

uint32_t region_bucket_primary(region_t *r, uint32_t bucket)
{
    return atomic_load_explicit(&bucket_at(r, bucket)->primary_id, memory_order_relaxed);
}

int region_bucket_add_target(region_t *r, uint32_t bucket, uint32_t member_id)
{
    bucket_t *b = bucket_at(r, bucket);
    int rc = 0;
    pthread_mutex_lock(&b->lock);
    for (uint32_t i = 0; i < b->ntargets; i++)
        if (b->targets[i] == member_id)
            goto out;
    if (b->ntargets >= REGION_MAX_TARGETS) {
        rc = -ENOSPC;
        goto out;
    }
    uint32_t *t = realloc(b->targets, (b->ntargets + 1) * sizeof(*t));
    if (!t) {
        rc = -ENOMEM;
        goto out;
    }
    t[b->ntargets++] = member_id;
    b->targets = t;
out:
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void region_primary_bitmap(region_t *r, uint8_t *bits)
{
    for (uint32_t b = 0; b < r->cfg.total_num_buckets; b++)
        if (region_bucket_role(r, b) == ROLE_PRIMARY)
            bits[b / 8] |= (uint8_t)(1u << (b % 8));
}

void region_bucket_set_handoff(region_t *r, uint32_t bucket, bool on)
{
    bucket_t *b = bucket_at(r, bucket);
    pthread_mutex_lock(&b->lock); /* writes in progress finish before the fence shows */
    atomic_store(&b->handoff, on);
    pthread_mutex_unlock(&b->lock);
}

uint32_t region_bucket_inflight(region_t *r, uint32_t bucket)
{
    return atomic_load(&bucket_at(r, bucket)->inflight);
}

void region_bucket_inflight_done(region_t *r, uint32_t bucket)
{
    atomic_fetch_sub(&bucket_at(r, bucket)->inflight, 1);
}

void region_bucket_drop(region_t *r, uint32_t bucket)
{
    bucket_t *b = bucket_at(r, bucket);
    pthread_mutex_lock(&b->lock);
    bucket_locked_clear(b, true);
    b->floor = 0;
    free(b->trk);
    b->trk = NULL;
    pthread_mutex_unlock(&b->lock);
}

uint64_t region_bucket_size(region_t *r, uint32_t bucket)
{
    return atomic_load_explicit(&bucket_at(r, bucket)->count, memory_order_relaxed);
}

uint64_t region_bucket_bytes(region_t *r, uint32_t bucket)
{
    return atomic_load_explicit(&bucket_at(r, bucket)->bytes, memory_order_relaxed);
}

uint64_t region_purge_tombstones(region_t *r, int64_t max_age_s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t n = 0;
    for (uint32_t i = 0; i < r->cfg.total_num_buckets; i++) {
        bucket_t *b = &r->buckets[i];
        if (!b->ntomb) /* racy peek; a missed bucket is purged next time */
            continue;
        pthread_mutex_lock(&b->lock);
        n += bucket_locked_purge(b, ts.tv_sec - max_age_s);
        pthread_mutex_unlock(&b->lock);
    }
    return n;
}

/* ---- writes ---- */

static int apply_locked(bucket_t *b, const region_op *op, uint8_t origin)
{
    if (op->kind == REGION_OP_CLEAR) {
        bucket_locked_clear_below(b, op->counter);
        return 0;
    }
    if (op->kind == REGION_OP_REMOVE)
        return bucket_locked_tombstone(b, op->hash, op->key, op->klen, op->key_is_str,
                                       op->member_id, op->counter, origin);
    return bucket_locked_put_at(b, op->hash, op->key, op->klen, op->key_is_str, op->value,
                                op->vlen, op->member_id, op->counter, origin);
}

static void copy_targets(const bucket_t *b, region_write_result *out)
{
    out->ntargets = b->ntargets;
    if (b->ntargets) /* targets is NULL without copies */
        memcpy(out->targets, b->targets, b->ntargets * sizeof(uint32_t));
}

void region_primary_write(region_t *r, region_op *op, bool serving, region_write_result *out)
{
    uint32_t bi = op->kind == REGION_OP_CLEAR ? out->bucket : region_bucket_of(r, op->hash);
    bucket_t *b = bucket_at(r, bi);
    out->bucket = bi;
    out->ntargets = 0;
    pthread_mutex_lock(&b->lock);
    out->term = b->term;
    out->primary_id = atomic_load(&b->primary_id);
    if (atomic_load(&b->role) != ROLE_PRIMARY) {
        out->outcome = RW_NOT_PRIMARY;
        goto out;
    }
    if (!serving || atomic_load(&b->handoff)) {
        out->outcome = RW_UNAVAILABLE;
        goto out;
    }
    if (tracker_is_dup(b->trk, op->client_id, op->seq)) {
        out->outcome = RW_DUPLICATE;
        goto out;
    }
    if (op->kind == REGION_OP_REMOVE) {
        entry_t *e = bucket_locked_find(b, op->hash, op->key, op->klen);
        if (!e || e->tomb) {
            out->outcome = RW_ABSENT;
            goto out;
        }
    }
    op->member_id = r->member_id;
    op->counter = b->counter + 1;
    if (apply_locked(b, op, BC_ORIGIN_WRITE) || tracker_note(&b->trk, op->client_id, op->seq)) {
        out->outcome = RW_NO_MEMORY;
        goto out;
    }
    if (b->counter < op->counter)
        b->counter = op->counter;
    out->outcome = RW_APPLIED;
    copy_targets(b, out);
    if (out->ntargets)
        atomic_fetch_add(&b->inflight, 1);
out:
    pthread_mutex_unlock(&b->lock);
}

int region_read_check(region_t *r, uint32_t bucket, bool serving, uint32_t *primary_id)
{
    bucket_t *b = bucket_at(r, bucket);
    uint8_t role = atomic_load_explicit(&b->role, memory_order_acquire);
    *primary_id = atomic_load_explicit(&b->primary_id, memory_order_relaxed);
    bool replicated = !region_type_partitioned(r->cfg.type);
    if (role == ROLE_PRIMARY || (replicated && role == ROLE_COPY))
        return serving ? 0 : RW_UNAVAILABLE;
    return RW_NOT_PRIMARY;
}

/* True when op is not newer than what the bucket holds for its key. */
static bool is_old(const bucket_t *b, const region_op *op)
{
    if (op->counter < b->floor)
        return true;
    if (op->kind == REGION_OP_CLEAR)
        return false;
    const entry_t *e = bucket_locked_find(b, op->hash, op->key, op->klen);
    return e && e->counter >= op->counter;
}

static int apply_if_newer(bucket_t *b, const region_op *op, uint8_t origin)
{
    int rc = 0;
    if (!is_old(b, op))
        rc = apply_locked(b, op, origin);
    if (!rc)
        rc = tracker_note(&b->trk, op->client_id, op->seq);
    return rc;
}

int region_replica_apply(region_t *r, uint32_t bucket, uint64_t term, const region_op *op)
{
    bucket_t *b = bucket_at(r, bucket);
    int rc;
    pthread_mutex_lock(&b->lock);
    if (atomic_load(&b->role) == ROLE_NONE) {
        /* not (or no longer) a copy here: a late write for a dropped bucket
         * must not come back to life, and one that arrives before the map
         * that makes this member a copy is in the image it will fetch */
        rc = 0;
    } else if (term < b->term) {
        rc = -ESTALE;
    } else {
        b->term = term;
        rc = apply_if_newer(b, op, BC_ORIGIN_WRITE);
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

int region_image_apply(region_t *r, uint32_t bucket, const region_op *op)
{
    bucket_t *b = bucket_at(r, bucket);
    pthread_mutex_lock(&b->lock);
    int rc = apply_if_newer(b, op, BC_ORIGIN_IMAGE);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

int region_image_scan(region_t *r, uint32_t bucket, uint64_t cursor,
                      const region_page_bound *bound, region_visit_fn fn, void *arg,
                      uint64_t *next)
{
    bucket_t *b = bucket_at(r, bucket);
    uint32_t si = (uint32_t)cursor, visited = 0;
    size_t used = 0;
    int rc = 0;
    pthread_mutex_lock(&b->lock);
    for (; si < b->nslots; si++) {
        const entry_t *e = b->slots[si];
        if (!e)
            continue;
        size_t bytes = 0;
        uint32_t n = 0;
        for (const entry_t *x = e; x; x = x->next, n++)
            bytes += x->klen + x->vlen + bound->per_entry;
        if (visited && (visited + n > bound->limit || used + bytes > bound->max_bytes))
            break;
        for (; e; e = e->next) {
            entry_view v;
            entry_to_view(e, &v);
            if ((rc = fn(arg, &v)))
                break;
        }
        if (rc)
            break;
        visited += n;
        used += bytes;
    }
    *next = si < b->nslots ? si : 0;
    pthread_mutex_unlock(&b->lock);
    return rc;
}

size_t region_tracker_export(region_t *r, uint32_t bucket, uint64_t (*pairs)[2], size_t cap)
{
    bucket_t *b = bucket_at(r, bucket);
    pthread_mutex_lock(&b->lock);
    size_t n = tracker_export(b->trk, pairs, cap);
    pthread_mutex_unlock(&b->lock);
    return n;
}

int region_tracker_merge(region_t *r, uint32_t bucket, const uint64_t (*pairs)[2], size_t n)
{
    bucket_t *b = bucket_at(r, bucket);
    int rc = 0;
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < n && !rc; i++)
        rc = tracker_note(&b->trk, pairs[i][0], pairs[i][1]);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void region_bucket_counters(region_t *r, uint32_t bucket, uint64_t *counter, uint64_t *floor)
{
    bucket_t *b = bucket_at(r, bucket);
    pthread_mutex_lock(&b->lock);
    *counter = b->counter;
    *floor = b->floor;
    pthread_mutex_unlock(&b->lock);
}

void region_bucket_raise_counters(region_t *r, uint32_t bucket, uint64_t counter, uint64_t floor)
{
    bucket_t *b = bucket_at(r, bucket);
    pthread_mutex_lock(&b->lock);
    if (floor > b->floor)
        bucket_locked_clear_below(b, floor);
    if (counter > b->counter)
        b->counter = counter;
    pthread_mutex_unlock(&b->lock);
}
