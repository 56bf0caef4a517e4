/* region.h - a region: a named map of key -> value held in buckets.
 *
 * Keys hash into total_num_buckets buckets (common/hash.h). Each bucket is
 * its own hash table under its own mutex, so writers to different buckets
 * never contend and there is no lock over the whole region. Values are
 * opaque bytes here (already-validated MessagePack); the region neither
 * parses nor interprets them.
 *
 * Lifetime: a region is freed with region_free only when no thread can still
 * be using it (the server's registry guarantees that with QSBR). */
#ifndef AGATE_REGION_REGION_H
#define AGATE_REGION_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REGION_NAME_MAX 128

typedef enum region_type {
    REGION_PARTITION,
    REGION_PARTITION_REDUNDANT,
    REGION_PARTITION_PERSISTENT,
    REGION_PARTITION_REDUNDANT_PERSISTENT,
    REGION_REPLICATE,
    REGION_REPLICATE_PERSISTENT,
    REGION_TYPE_COUNT
} region_type;

typedef struct region_config {
    char name[REGION_NAME_MAX + 1];
    region_type type;
    uint32_t redundant_copies;
    uint32_t total_num_buckets;
} region_config;

/* Geode's name of a type, e.g. "PARTITION_REDUNDANT". */
const char *region_type_name(region_type t);
/* Parses a type name (case-insensitive). Returns 0 or -1. */
int region_type_parse(const char *s, size_t n, region_type *out);
bool region_type_partitioned(region_type t);
bool region_type_persistent(region_type t);
/* Default redundant copies of a type: 1 for the _REDUNDANT types, else 0. */
uint32_t region_type_default_copies(region_type t);

/* Checks a region name ([A-Za-z0-9_.-]{1,128}, one leading '/' ignored).
 * On success returns 0 and points *name and *n at the name without the slash. */
int region_name_check(const uint8_t **name, size_t *n);
/* Checks a whole configuration; on failure returns -1 and a static reason. */
int region_config_check(const region_config *cfg, const char **why);

typedef struct entry_version {
    uint32_t member_id;
    uint64_t counter;
} entry_version;

/* A read-only view of an entry, valid only inside the visit callback (the
 * bucket is locked for its duration: keep callbacks short, no blocking). */
typedef struct entry_view {
    const uint8_t *key;
    uint32_t klen;
    bool key_is_str;
    const uint8_t *value;
    uint32_t vlen;
    entry_version version;
    bool tomb; /* a tombstone (only image scans show them) */
} entry_view;

/* Returns 0 to continue; nonzero stops a scan and is returned by it. */
typedef int (*region_visit_fn)(void *arg, const entry_view *e);

typedef struct region region_t;

/* Creates an empty region; cfg must have passed region_config_check.
 * member_id stamps the versions of writes applied here. NULL if no memory. */
region_t *region_new(const region_config *cfg, uint32_t member_id);
/* Frees the region and every entry. */
void region_free(region_t *r);
const region_config *region_cfg(const region_t *r);

/* Inserts or replaces. hash is hash_key(key). Returns 0 (with the new
 * version in *ver if not NULL) or -ENOMEM. */
int region_put(region_t *r, uint64_t hash, const uint8_t *key, uint32_t klen, bool key_is_str,
               const uint8_t *value, uint32_t vlen, entry_version *ver);
/* Calls fn on the entry under its bucket's lock. Returns 1 if found (then
 * fn's result is ignored), 0 if absent. */
int region_get(region_t *r, uint64_t hash, const uint8_t *key, uint32_t klen,
               region_visit_fn fn, void *arg);
/* Returns 1 if the key was removed, 0 if absent. */
int region_remove(region_t *r, uint64_t hash, const uint8_t *key, uint32_t klen);
bool region_contains(region_t *r, uint64_t hash, const uint8_t *key, uint32_t klen);
/* Removes every entry; returns how many. */
uint64_t region_clear(region_t *r);

/* Entries and key+value bytes, summed over buckets without locking them
 * (exact when no writes are in flight). */
uint64_t region_size(const region_t *r);
uint64_t region_bytes(const region_t *r);

/* Visits up to about limit entries starting at cursor (0 = the start) and
 * sets *next (0 = done). Every entry present for a whole scan is visited at
 * least once; the whole hash slot is visited together, so a page can exceed
 * limit by the few entries that share a slot. Returns 0, or fn's nonzero
 * result (then *next resumes at the slot fn stopped in). */
int region_scan(region_t *r, uint64_t cursor, uint32_t limit, region_visit_fn fn, void *arg,
                uint64_t *next);

/* The size of a scan page: at most limit entries (as region_scan) and, past
 * the first slot, at most max_bytes, counting each entry as its key bytes
 * plus per_entry, plus its value bytes when with_values. A page stops
 * before a slot that would go over either bound, so it never splits one. */
typedef struct region_page_bound {
    uint32_t limit;
    size_t max_bytes;
    uint32_t per_entry;
    bool with_values;
    bool primary_only; /* clusters: skip buckets this member is not primary for */
} region_page_bound;

int region_scan_bounded(region_t *r, uint64_t cursor, const region_page_bound *bound,
                        region_visit_fn fn, void *arg, uint64_t *next);

/* ---- Observers ----------------------------------------------------------
 * Indexes and the event journal follow every change of the region's live
 * entries (bucket.h: bucket_change, region_observer). At most
 * REGION_MAX_OBSERVERS per region. */
struct bucket;
struct region_observer;
/* Called for each bucket, under its lock, as the observer starts watching
 * it: build state from region_bucket_each_locked(b, ...). */
typedef void (*region_observer_attach_fn)(void *ctx, uint32_t bucket, struct bucket *b);
/* Starts o (copied) on every bucket in turn: a bucket's changes reach
 * o->on_change from the moment attach ran for it. on_region_free (may be
 * NULL) runs from region_free. Returns 0 or -ENOSPC. */
int region_observe(region_t *r, const struct region_observer *o,
                   region_observer_attach_fn attach, void (*on_region_free)(void *ctx));
/* Stops every observer whose ctx is ctx; once it returns no on_change
 * call for it is running or will start. */
void region_unobserve(region_t *r, void *ctx);
/* Visits the live entries of b; only from an attach callback. */
void region_bucket_each_locked(struct bucket *b, region_visit_fn fn, void *arg);
/* Runs fn(arg, b) with bucket's lock held and returns its result: index
 * builds and probes (region/qindex.h) read a bucket's index part and
 * entries together. fn must not take other bucket locks. */
int region_bucket_run(region_t *r, uint32_t bucket, int (*fn)(void *arg, struct bucket *b),
                      void *arg);
/* The region's index set (region/qindex.h), or NULL. Installing sets it
 * only while none is set and returns the one in place afterwards. The
 * set frees itself through its observer's on_region_free. */
void *region_index_set(const region_t *r);
void *region_index_set_install(region_t *r, void *set);

/* ---- Clusters (docs/cluster.md) ----------------------------------------
 * A clustered region is one copy among members: each bucket has a role
 * here, set by the member's control thread from the cluster map. Writes at
 * the primary get versions whose counter orders them within the bucket
 * across primaries (a new primary of term T continues from at least
 * T << 32), removes leave tombstones, and copies apply replicated writes
 * only when newer. */

#define REGION_MAX_TARGETS 64 /* copies per bucket besides this member */

enum region_role { ROLE_NONE = 0, ROLE_PRIMARY = 1, ROLE_COPY = 2, ROLE_INIT = 3 };

/* Set once, before the region is used. */
void region_set_clustered(region_t *r);
bool region_clustered(const region_t *r);
uint32_t region_bucket_of(const region_t *r, uint64_t hash);

/* Sets a bucket's role, term, primary and replication targets (the other
 * copies; at most REGION_MAX_TARGETS). Clears the handoff fence when the
 * role or the term changes. Returns the previous role. */
enum region_role region_bucket_set_role(region_t *r, uint32_t bucket, enum region_role role,
                                        uint64_t term, uint32_t primary_id,
                                        const uint32_t *targets, uint32_t ntargets);
enum region_role region_bucket_role(region_t *r, uint32_t bucket);
uint32_t region_bucket_primary(region_t *r, uint32_t bucket);
/* Adds a target if absent (an image transfer begins). 0 or -ENOMEM/-ENOSPC. */
int region_bucket_add_target(region_t *r, uint32_t bucket, uint32_t member_id);
/* Sets bit b of bits (nbuckets bits, zeroed by the caller) for every bucket
 * this member is primary for now (a query's part, docs/query.md). */
void region_primary_bitmap(region_t *r, uint8_t *bits);
/* Fences (or unfences) writes at a primary that is handing off. */
void region_bucket_set_handoff(region_t *r, uint32_t bucket, bool on);
/* Writes applied here still waiting for copies' acknowledgements. */
uint32_t region_bucket_inflight(region_t *r, uint32_t bucket);
void region_bucket_inflight_done(region_t *r, uint32_t bucket);
/* Drops every entry and tombstone of a bucket that left this member. */
void region_bucket_drop(region_t *r, uint32_t bucket);
/* Live entries and bytes of one bucket. */
uint64_t region_bucket_size(region_t *r, uint32_t bucket);
uint64_t region_bucket_bytes(region_t *r, uint32_t bucket);
/* Purges tombstones older than max_age_s in every bucket; returns how many. */
uint64_t region_purge_tombstones(region_t *r, int64_t max_age_s);

enum region_op_kind { REGION_OP_PUT = 0, REGION_OP_REMOVE = 1, REGION_OP_CLEAR = 2 };

/* One write, as applied at a primary or carried to a copy. */
typedef struct region_op {
    uint8_t kind;
    uint64_t hash;
    const uint8_t *key;
    uint32_t klen;
    bool key_is_str;
    const uint8_t *value; /* PUT */
    uint32_t vlen;
    uint64_t counter;     /* version: set by region_primary_write, given to copies */
    uint32_t member_id;
    uint64_t client_id;   /* event id, 0 when none */
    uint64_t seq;
} region_op;

enum region_write_outcome {
    RW_APPLIED,      /* applied; replicate to out->targets */
    RW_DUPLICATE,    /* this event id was applied before: answer OK, nothing to send */
    RW_ABSENT,       /* remove of an absent key: NOT_FOUND, nothing to send */
    RW_NOT_PRIMARY,  /* redirect to out->primary_id */
    RW_UNAVAILABLE,  /* primary here but fenced (lease expired or handing off) */
    RW_NO_MEMORY,
};

typedef struct region_write_result {
    int outcome;
    uint32_t bucket;
    uint32_t primary_id;
    uint64_t term;
    uint32_t ntargets;
    uint32_t targets[REGION_MAX_TARGETS];
} region_write_result;

/* Applies op (kind PUT, REMOVE or CLEAR of op->hash's bucket... CLEAR takes
 * the bucket in out->bucket on input) at the primary: checks the role,
 * the fence (serving is false when the member's lease ran out) and the event
 * id; stamps op->counter and op->member_id. On RW_APPLIED with targets the
 * bucket's inflight count was raised: call region_bucket_inflight_done once
 * the copies answered. */
void region_primary_write(region_t *r, region_op *op, bool serving, region_write_result *out);
/* Whether this member may serve a read of the bucket now: 0, or
 * RW_NOT_PRIMARY (with *primary_id) or RW_UNAVAILABLE. Partitioned regions
 * read at the primary; replicated regions at any ready copy. */
int region_read_check(region_t *r, uint32_t bucket, bool serving, uint32_t *primary_id);

/* A copy applies a replicated op if it is newer than what it holds; a
 * bucket this member does not hold (ROLE_NONE) ignores it. Returns 0
 * (applied or ignored), -ESTALE when term is older than the bucket's (the
 * sender was deposed), -ENOMEM. */
int region_replica_apply(region_t *r, uint32_t bucket, uint64_t term, const region_op *op);
/* An image entry (tombstones included) from the primary; same rule, no term. */
int region_image_apply(region_t *r, uint32_t bucket, const region_op *op);
/* Visits one bucket's entries and tombstones for an image page (see
 * region_scan_bounded; the cursor is the slot index). */
int region_image_scan(region_t *r, uint32_t bucket, uint64_t cursor,
                      const region_page_bound *bound, region_visit_fn fn, void *arg,
                      uint64_t *next);
/* The bucket's event-id tracker, copied out: up to cap pairs. */
size_t region_tracker_export(region_t *r, uint32_t bucket, uint64_t (*pairs)[2], size_t cap);
int region_tracker_merge(region_t *r, uint32_t bucket, const uint64_t (*pairs)[2], size_t n);
/* The bucket's version counter and clear floor (images carry them). */
void region_bucket_counters(region_t *r, uint32_t bucket, uint64_t *counter, uint64_t *floor);
void region_bucket_raise_counters(region_t *r, uint32_t bucket, uint64_t counter, uint64_t floor);

#endif
