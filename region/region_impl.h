/* region_impl.h - the region's insides, shared by region.c and
 * region_cluster.c only. */
#ifndef AGATE_REGION_REGION_IMPL_H
#define AGATE_REGION_REGION_IMPL_H

#include <stdatomic.h>

#include "common/hash.h"
#include "region/bucket.h"
#include "region/region.h"

struct region {
    region_config cfg;
    uint32_t member_id;
    bool clustered;    /* removes leave tombstones; set before first use */
    bucket_t *buckets; /* cfg.total_num_buckets of them, cache-line aligned */
    pthread_mutex_t obs_lock; /* serializes region_observe / region_unobserve */
    region_observer observers[REGION_MAX_OBSERVERS];
    void (*obs_free[REGION_MAX_OBSERVERS])(void *ctx);
    _Atomic(void *) index_set; /* region/qindex.h, installed once */
};

static inline bucket_t *bucket_for(region_t *r, uint64_t hash)
{
    return &r->buckets[hash_bucket(hash, r->cfg.total_num_buckets)];
}

#endif
