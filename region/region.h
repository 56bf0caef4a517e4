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
} region_page_bound;

int region_scan_bounded(region_t *r, uint64_t cursor, const region_page_bound *bound,
                        region_visit_fn fn, void *arg, uint64_t *next);

#endif
