/* bucket.h - one bucket: a chained hash table of entries under one mutex.
 *
 * The unit of locking now, and of ownership and transfer once regions are
 * spread over members. Functions named bucket_locked_* expect the caller to
 * hold b->lock; the others take it themselves. */
#ifndef AGATE_REGION_BUCKET_H
#define AGATE_REGION_BUCKET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "region/region.h"

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    uint64_t counter;
    uint32_t member_id;
    uint32_t klen;
    uint32_t vlen;
    bool key_is_str;
    bool tomb;      /* a removed key's version (clusters): absent to readers; the
                       value bytes hold the removal time (int64 seconds) */
    uint8_t data[]; /* key bytes, then value bytes */
} entry_t;

struct tracker;

/* ---- Change observers ----------------------------------------------------
 * Indexes and the event journal see every change to a bucket's live
 * entries, under the bucket's lock, through the region's observers
 * (region.h, region_observe). */
enum bucket_change_kind {
    BC_PUT,    /* key now holds new_value (old_value: what it held, or NULL) */
    BC_REMOVE, /* key's live entry old_value is gone */
    BC_CLEAR,  /* after the BC_REMOVEs (in_clear) of a clear: entries below counter went */
    BC_DROP,   /* the bucket left this member: forget it, it is not a write */
};
enum bucket_change_origin {
    BC_ORIGIN_WRITE, /* a write: local, at the primary, or replicated to a copy */
    BC_ORIGIN_IMAGE, /* state copied into a new copy of the bucket: not an event */
};
typedef struct bucket_change {
    uint8_t kind;   /* enum bucket_change_kind */
    uint8_t origin; /* enum bucket_change_origin */
    bool in_clear;  /* a BC_REMOVE that is part of a clear (a BC_CLEAR follows) */
    uint64_t hash;
    const uint8_t *key;
    uint32_t klen;
    bool key_is_str;
    const uint8_t *old_value; /* NULL: the key had no live entry */
    uint32_t old_vlen;
    const uint8_t *new_value; /* BC_PUT only */
    uint32_t new_vlen;
    uint64_t counter;   /* version counter of the change (the journal's sequence) */
    uint32_t member_id; /* version member of the change */
} bucket_change;

#define REGION_MAX_OBSERVERS 4

/* Called under the bucket's lock; must not take other bucket locks. */
typedef struct region_observer {
    void (*on_change)(void *ctx, uint32_t bucket, const bucket_change *c);
    void *ctx;
} region_observer;

/* Aligned to a cache line so two threads working on neighbouring buckets do
 * not share one. */
typedef struct bucket {
    _Alignas(64) pthread_mutex_t lock;
    entry_t **slots;
    uint32_t nslots; /* 0 or a power of two */
    _Atomic uint64_t count;
    _Atomic uint64_t bytes;
    uint64_t counter; /* last version counter handed out in this bucket */
    uint64_t slot_seed; /* secret mixed into slot indexes (see slot_of) */
    /* Cluster state, written under lock by the member's control thread
     * (region_bucket_set_role) and read under lock by request handlers. */
    _Atomic uint8_t role;  /* enum region_role; also read without the lock by reads */
    _Atomic bool handoff;  /* primary handing off: refuse writes */
    uint64_t term;      /* term of the current primary */
    _Atomic uint32_t primary_id;
    uint32_t ntargets;  /* replication targets: copies other than this member */
    uint32_t *targets;
    uint64_t floor;     /* writes with a counter below this were cleared away */
    uint32_t ntomb;     /* tombstones held */
    struct tracker *trk; /* event ids seen (NULL until the first) */
    _Atomic uint32_t inflight; /* writes applied here, not yet acknowledged by copies */
    uint32_t id;        /* index in the region */
    uint8_t obs_mask;   /* observers (bits of *obs) that watch this bucket; under lock */
    const region_observer *obs; /* the region's observer slots */
} bucket_t;

/* slot_seed should be random: it keeps clients from choosing keys that all
 * land in one slot (the key hash itself is public, docs/protocol.md). */
void bucket_init(bucket_t *b, uint64_t slot_seed, uint32_t id, const region_observer *obs);
/* Frees every entry and the table; the bucket can be reused after init. */
void bucket_destroy(bucket_t *b);

/* Inserts or replaces; stamps (member_id, ++counter). 0 or -ENOMEM. */
int bucket_locked_put(bucket_t *b, uint64_t hash, const uint8_t *key, uint32_t klen,
                      bool key_is_str, const uint8_t *value, uint32_t vlen, uint32_t member_id,
                      entry_version *ver);
entry_t *bucket_locked_find(const bucket_t *b, uint64_t hash, const uint8_t *key, uint32_t klen);
/* Returns 1 if removed, 0 if absent. */
int bucket_locked_remove(bucket_t *b, uint64_t hash, const uint8_t *key, uint32_t klen);
/* Removes all entries; returns how many. drop: the bucket leaves this
 * member (observers get BC_DROP, not a clear, and the counter stays). */
uint64_t bucket_locked_clear(bucket_t *b, bool drop);
/* Clusters: replaces e (or inserts) with a tombstone at version
 * (member_id, counter). 0 or -ENOMEM. */
int bucket_locked_tombstone(bucket_t *b, uint64_t hash, const uint8_t *key, uint32_t klen,
                            bool key_is_str, uint32_t member_id, uint64_t counter,
                            uint8_t origin);
/* Stores a value at an explicit version (replication, images; origin is
 * an enum bucket_change_origin). */
int bucket_locked_put_at(bucket_t *b, uint64_t hash, const uint8_t *key, uint32_t klen,
                         bool key_is_str, const uint8_t *value, uint32_t vlen, uint32_t member_id,
                         uint64_t counter, uint8_t origin);
/* Clusters: removes every entry older than counter and raises the floor
 * (b->floor) to it, so older writes arriving later are refused. */
void bucket_locked_clear_below(bucket_t *b, uint64_t counter);
/* Tells the bucket's observers about c. */
void bucket_locked_notify(bucket_t *b, const bucket_change *c);
/* Calls fn on every live entry (observers use it to build their state). */
void bucket_locked_each(const bucket_t *b, region_visit_fn fn, void *arg);
/* Drops tombstones written before cutoff (seconds, CLOCK_MONOTONIC). */
uint32_t bucket_locked_purge(bucket_t *b, int64_t cutoff);

static inline const uint8_t *entry_key(const entry_t *e) { return e->data; }
static inline const uint8_t *entry_value(const entry_t *e) { return e->data + e->klen; }
/* Memory accounted to an entry: header, key and value. */
static inline uint64_t entry_footprint(const entry_t *e)
{
    return sizeof(entry_t) + e->klen + e->vlen;
}
void entry_to_view(const entry_t *e, entry_view *v);

#endif
