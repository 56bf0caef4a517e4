/* cmap.h - the cluster map: the membership view and, for every bucket of
 * every region, its primary and copies (docs/cluster.md, "The cluster map").
 *
 * The locator builds and mutates it; members and clients decode the copy
 * pushed or fetched over the wire. A cmap_t owns all its memory; decoded
 * strings are copied. Not thread-safe: share an immutable map, or copy it. */
#ifndef AGATE_COMMON_CMAP_H
#define AGATE_COMMON_CMAP_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CMAP_NAME_MAX 128
#define CMAP_HOST_MAX 64
#define CMAP_TYPE_MAX 40

typedef struct cmap_member {
    uint32_t id;
    char name[CMAP_NAME_MAX + 1];
    char host[CMAP_HOST_MAX + 1];
    uint16_t port;
} cmap_member;

typedef struct cmap_copy {
    uint32_t member_id;
    bool init; /* still being filled by an image transfer */
} cmap_copy;

/* copies[0] is the primary when its member_id is nonzero. */
typedef struct cmap_bucket {
    uint64_t term;
    uint32_t ncopies;
    cmap_copy *copies;
} cmap_bucket;

#define CMAP_INDEX_EXPR_MAX 1024 /* bytes of an index expression */
#define CMAP_MAX_INDEXES 16      /* per region */

/* An index definition (docs/query.md, "Indexes"): cluster-wide, so every
 * member indexes its copies of the region's buckets, also members that
 * join later. Checked on decode: a name of 1-128 [A-Za-z0-9_.-], unique in
 * the region; type "range" or "hash"; an expression of 1-1024 bytes. */
typedef struct cmap_index {
    char name[CMAP_NAME_MAX + 1];
    char type[8];
    char expr[CMAP_INDEX_EXPR_MAX + 1];
} cmap_index;

typedef struct cmap_region {
    char name[CMAP_NAME_MAX + 1];
    char type[CMAP_TYPE_MAX + 1]; /* Geode's type name, e.g. "PARTITION_REDUNDANT" */
    uint32_t redundant_copies;
    uint32_t nbuckets;
    cmap_bucket *buckets; /* nbuckets of them */
    uint32_t nindexes;
    cmap_index *indexes;  /* in creation order */
} cmap_region;

typedef struct cmap {
    uint64_t version;
    uint64_t view_id;
    size_t nlocators;
    char (*locators)[CMAP_HOST_MAX + 8]; /* "host:port" */
    size_t nmembers;
    cmap_member *members;
    size_t nregions;
    cmap_region *regions;
} cmap_t;

enum cmap_role { CMAP_NONE = 0, CMAP_PRIMARY = 1, CMAP_COPY = 2, CMAP_INIT = 3 };

/* A new empty map (version 0). NULL if out of memory. */
cmap_t *cmap_new(void);
void cmap_free(cmap_t *m);
/* A deep copy, or NULL if out of memory. */
cmap_t *cmap_clone(const cmap_t *m);

/* Decodes one map object at p..p+n (exactly one object). Returns 0 with a
 * new map in *out, -EPROTO when the bytes are not a well-formed cluster map
 * (every member id, bucket count and copy index is checked), -ENOMEM. */
int cmap_decode(const uint8_t *p, size_t n, cmap_t **out);
/* Appends the wire form. Returns 0 or the packer's error. */
int cmap_encode(const cmap_t *m, msgpack_packer *pk);

const cmap_member *cmap_member_find(const cmap_t *m, uint32_t id);
int cmap_member_index(const cmap_t *m, uint32_t id); /* -1 if absent */
cmap_region *cmap_region_find(const cmap_t *m, const char *name, size_t n);

/* The primary of a bucket (0: none, or no such bucket). */
uint32_t cmap_primary(const cmap_region *r, uint32_t bucket);
/* What member_id holds of a bucket. */
enum cmap_role cmap_role(const cmap_region *r, uint32_t bucket, uint32_t member_id);
/* Ready copies (primary included) of a bucket. */
uint32_t cmap_ready_copies(const cmap_region *r, uint32_t bucket);

/* ---- Building (locator) ---- */
/* Adds a member (or updates one with the same id). 0 or -ENOMEM. */
int cmap_member_add(cmap_t *m, const cmap_member *mem);
/* Removes a member from the view (not from the buckets). */
void cmap_member_remove(cmap_t *m, uint32_t id);
/* Adds a region with nbuckets empty buckets. 0, -EEXIST or -ENOMEM. */
int cmap_region_add(cmap_t *m, const char *name, const char *type, uint32_t redundant,
                    uint32_t nbuckets);
/* 0 or -ENOENT. */
int cmap_region_remove(cmap_t *m, const char *name);
/* Replaces a bucket's copies. 0 or -ENOMEM. */
int cmap_bucket_set(cmap_bucket *b, const cmap_copy *copies, uint32_t n);
/* Adds an index definition to r: 0, -EEXIST (the name is taken), -ENOSPC
 * (CMAP_MAX_INDEXES), -EINVAL (fails the decode checks above), -ENOMEM. */
int cmap_index_add(cmap_region *r, const char *name, const char *type, const char *expr);
/* 0 or -ENOENT. */
int cmap_index_remove(cmap_region *r, const char *name);
const cmap_index *cmap_index_find(const cmap_region *r, const char *name);
/* Adds a locator address. 0 or -ENOMEM. */
int cmap_locator_add(cmap_t *m, const char *addr);

#endif
