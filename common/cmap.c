/* The cluster map: wire form and lookups (docs/cluster.md). */
#include "common/cmap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mp.h"
#include "common/mpw.h"

/* Bounds on what a decoded map may hold; far above any real cluster, they
 * keep a hostile or corrupt map from making us allocate without limit. */
#define CMAP_MAX_MEMBERS 4096
#define CMAP_MAX_REGIONS 65536
#define CMAP_MAX_BUCKETS 65536
#define CMAP_MAX_LOCATORS 64

cmap_t *cmap_new(void)
{
    return calloc(1, sizeof(cmap_t));
}

static void region_clear_buckets(cmap_region *r)
{
    free(r->indexes);
    r->indexes = NULL;
    r->nindexes = 0;
    if (!r->buckets)
        return;
    for (uint32_t i = 0; i < r->nbuckets; i++)
        free(r->buckets[i].copies);
    free(r->buckets);
    r->buckets = NULL;
}

void cmap_free(cmap_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nregions; i++)
        region_clear_buckets(&m->regions[i]);
    free(m->regions);
    free(m->members);
    free(m->locators);
    free(m);
}

int cmap_bucket_set(cmap_bucket *b, const cmap_copy *copies, uint32_t n)
{
    cmap_copy *c = NULL;
    if (n) {
        c = malloc(n * sizeof(*c));
        if (!c)
            return -ENOMEM;
        memcpy(c, copies, n * sizeof(*c));
    }
    free(b->copies);
    b->copies = c;
    b->ncopies = n;
    return 0;
}

static int region_copy(cmap_region *dst, const cmap_region *src)
{
    *dst = *src;
    dst->indexes = NULL;
    dst->nindexes = 0;
    dst->buckets = calloc(src->nbuckets ? src->nbuckets : 1, sizeof(cmap_bucket));
    if (!dst->buckets)
        return -ENOMEM;
    if (src->nindexes) {
        dst->indexes = malloc(src->nindexes * sizeof(cmap_index));
        if (!dst->indexes)
            return -ENOMEM;
        memcpy(dst->indexes, src->indexes, src->nindexes * sizeof(cmap_index));
        dst->nindexes = src->nindexes;
    }
    for (uint32_t i = 0; i < src->nbuckets; i++) {
        dst->buckets[i].term = src->buckets[i].term;
        if (cmap_bucket_set(&dst->buckets[i], src->buckets[i].copies, src->buckets[i].ncopies))
            return -ENOMEM;
    }
    return 0;
}

cmap_t *cmap_clone(const cmap_t *m)
{
    cmap_t *c = cmap_new();
    if (!c)
        return NULL;
    c->version = m->version;
    c->view_id = m->view_id;
    if (m->nlocators) {
        c->locators = malloc(m->nlocators * sizeof(*c->locators));
        if (!c->locators)
            goto fail;
        memcpy(c->locators, m->locators, m->nlocators * sizeof(*c->locators));
        c->nlocators = m->nlocators;
    }
    if (m->nmembers) {
        c->members = malloc(m->nmembers * sizeof(cmap_member));
        if (!c->members)
            goto fail;
        memcpy(c->members, m->members, m->nmembers * sizeof(cmap_member));
        c->nmembers = m->nmembers;
    }
    if (m->nregions) {
        c->regions = calloc(m->nregions, sizeof(cmap_region));
        if (!c->regions)
            goto fail;
        for (size_t i = 0; i < m->nregions; i++) {
            c->nregions = i + 1;
            if (region_copy(&c->regions[i], &m->regions[i]))
                goto fail;
        }
    }
    return c;
fail:
    cmap_free(c);
    return NULL;
}

/* ---- encoding ---- */

static int encode_bucket(const cmap_bucket *b, msgpack_packer *pk)
{
    int rc = msgpack_pack_array(pk, 3);
    rc |= msgpack_pack_uint64(pk, b->term);
    rc |= msgpack_pack_array(pk, b->ncopies);
    uint32_t ninit = 0;
    for (uint32_t i = 0; i < b->ncopies; i++) {
        rc |= msgpack_pack_uint32(pk, b->copies[i].member_id);
        ninit += b->copies[i].init;
    }
    rc |= msgpack_pack_array(pk, ninit);
    for (uint32_t i = 0; i < b->ncopies; i++)
        if (b->copies[i].init)
            rc |= msgpack_pack_uint32(pk, i);
    return rc;
}

/* A region is [name, type, redundant_copies, nbuckets, buckets], and
 * [name, type, copies, nbuckets, buckets, indexes] when it has indexes:
 * each index [name, type, expression]. */
static int encode_region(const cmap_region *r, msgpack_packer *pk)
{
    int rc = msgpack_pack_array(pk, r->nindexes ? 6 : 5);
    rc |= mpw_cstr(pk, r->name);
    rc |= mpw_cstr(pk, r->type);
    rc |= msgpack_pack_uint32(pk, r->redundant_copies);
    rc |= msgpack_pack_uint32(pk, r->nbuckets);
    rc |= msgpack_pack_array(pk, r->nbuckets);
    for (uint32_t i = 0; i < r->nbuckets && !rc; i++)
        rc |= encode_bucket(&r->buckets[i], pk);
    if (r->nindexes) {
        rc |= msgpack_pack_array(pk, r->nindexes);
        for (uint32_t i = 0; i < r->nindexes && !rc; i++) {
            rc |= msgpack_pack_array(pk, 3);
            rc |= mpw_cstr(pk, r->indexes[i].name);
            rc |= mpw_cstr(pk, r->indexes[i].type);
            rc |= mpw_cstr(pk, r->indexes[i].expr);
        }
    }
    return rc;
}

int cmap_encode(const cmap_t *m, msgpack_packer *pk)
{
    int rc = msgpack_pack_map(pk, 5);
    rc |= mpw_kv_uint(pk, "version", m->version);
    rc |= mpw_kv_uint(pk, "view_id", m->view_id);
    rc |= mpw_cstr(pk, "locators");
    rc |= msgpack_pack_array(pk, (uint32_t)m->nlocators);
    for (size_t i = 0; i < m->nlocators; i++)
        rc |= mpw_cstr(pk, m->locators[i]);
    rc |= mpw_cstr(pk, "members");
    rc |= msgpack_pack_array(pk, (uint32_t)m->nmembers);
    for (size_t i = 0; i < m->nmembers; i++) {
        const cmap_member *mem = &m->members[i];
        rc |= msgpack_pack_array(pk, 4);
        rc |= msgpack_pack_uint32(pk, mem->id);
        rc |= mpw_cstr(pk, mem->name);
        rc |= mpw_cstr(pk, mem->host);
        rc |= msgpack_pack_uint16(pk, mem->port);
    }
    rc |= mpw_cstr(pk, "regions");
    rc |= msgpack_pack_array(pk, (uint32_t)m->nregions);
    for (size_t i = 0; i < m->nregions && !rc; i++)
        rc |= encode_region(&m->regions[i], pk);
    return rc;
}

/* ---- decoding ---- */

static int read_cstr(mp_cursor *c, char *dst, size_t cap)
{
    const uint8_t *p;
    uint32_t n;
    if (mp_read_str(c, &p, &n) || n >= cap || memchr(p, 0, n))
        return -EPROTO;
    memcpy(dst, p, n);
    dst[n] = 0;
    return 0;
}

static int read_u32(mp_cursor *c, uint32_t *out)
{
    uint64_t v;
    if (mp_read_uint(c, &v) || v > UINT32_MAX)
        return -EPROTO;
    *out = (uint32_t)v;
    return 0;
}

static int decode_bucket(mp_cursor *c, cmap_bucket *b)
{
    uint32_t n, ncopies, ninit;
    if (mp_read_array(c, &n) || n != 3 || mp_read_uint(c, &b->term) ||
        mp_read_array(c, &ncopies) || ncopies > CMAP_MAX_MEMBERS)
        return -EPROTO;
    if (ncopies) {
        b->copies = calloc(ncopies, sizeof(cmap_copy));
        if (!b->copies)
            return -ENOMEM;
        b->ncopies = ncopies;
    }
    for (uint32_t i = 0; i < ncopies; i++)
        if (read_u32(c, &b->copies[i].member_id))
            return -EPROTO;
    if (mp_read_array(c, &ninit))
        return -EPROTO;
    for (uint32_t i = 0; i < ninit; i++) {
        uint32_t idx;
        if (read_u32(c, &idx) || idx >= ncopies)
            return -EPROTO;
        b->copies[idx].init = true;
    }
    return 0;
}

/* The checks of cmap.h on one index definition. */
static bool index_valid(const char *name, const char *type, const char *expr)
{
    size_t n = strlen(name);
    if (n == 0 || n > CMAP_NAME_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyz"
                                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != n)
        return false;
    if (strcmp(type, "range") != 0 && strcmp(type, "hash") != 0)
        return false;
    n = strlen(expr);
    return n > 0 && n <= CMAP_INDEX_EXPR_MAX;
}

static int decode_indexes(mp_cursor *c, cmap_region *r)
{
    uint32_t n;
    if (mp_read_array(c, &n) || n > CMAP_MAX_INDEXES)
        return -EPROTO;
    r->indexes = calloc(n ? n : 1, sizeof(cmap_index));
    if (!r->indexes)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        cmap_index *ix = &r->indexes[i];
        uint32_t k;
        if (mp_read_array(c, &k) || k != 3 || read_cstr(c, ix->name, sizeof ix->name) ||
            read_cstr(c, ix->type, sizeof ix->type) || read_cstr(c, ix->expr, sizeof ix->expr) ||
            !index_valid(ix->name, ix->type, ix->expr) || cmap_index_find(r, ix->name))
            return -EPROTO;
        r->nindexes = i + 1;
    }
    return 0;
}

static int decode_region(mp_cursor *c, cmap_region *r)
{
    uint32_t n, nb;
    if (mp_read_array(c, &n) || (n != 5 && n != 6) || read_cstr(c, r->name, sizeof r->name) ||
        read_cstr(c, r->type, sizeof r->type) || read_u32(c, &r->redundant_copies) ||
        read_u32(c, &r->nbuckets) || r->nbuckets == 0 || r->nbuckets > CMAP_MAX_BUCKETS ||
        mp_read_array(c, &nb) || nb != r->nbuckets)
        return -EPROTO;
    r->buckets = calloc(nb, sizeof(cmap_bucket));
    if (!r->buckets) {
        r->nbuckets = 0;
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < nb; i++) {
        int rc = decode_bucket(c, &r->buckets[i]);
        if (rc)
            return rc;
    }
    return n == 6 ? decode_indexes(c, r) : 0;
}

static int decode_member(mp_cursor *c, cmap_member *mem)
{
    uint32_t n, port;
    if (mp_read_array(c, &n) || n != 4 || read_u32(c, &mem->id) || mem->id == 0 ||
        read_cstr(c, mem->name, sizeof mem->name) || read_cstr(c, mem->host, sizeof mem->host) ||
        read_u32(c, &port) || port == 0 || port > 65535)
        return -EPROTO;
    mem->port = (uint16_t)port;
    return 0;
}

static int decode_list(mp_cursor *c, cmap_t *m, const uint8_t *k, uint32_t kn)
{
    uint32_t n;
    if (mp_read_array(c, &n))
        return -EPROTO;
    if (kn == 8 && !memcmp(k, "locators", 8)) {
        if (n > CMAP_MAX_LOCATORS || m->locators)
            return -EPROTO;
        m->locators = calloc(n ? n : 1, sizeof(*m->locators));
        if (!m->locators)
            return -ENOMEM;
        for (m->nlocators = 0; m->nlocators < n; m->nlocators++)
            if (read_cstr(c, m->locators[m->nlocators], sizeof m->locators[0]))
                return -EPROTO;
        return 0;
    }
    if (kn == 7 && !memcmp(k, "members", 7)) {
        if (n > CMAP_MAX_MEMBERS || m->members)
            return -EPROTO;
        m->members = calloc(n ? n : 1, sizeof(cmap_member));
        if (!m->members)
            return -ENOMEM;
        for (m->nmembers = 0; m->nmembers < n; m->nmembers++)
            if (decode_member(c, &m->members[m->nmembers]))
                return -EPROTO;
        return 0;
    }
    if (kn == 7 && !memcmp(k, "regions", 7)) {
        if (n > CMAP_MAX_REGIONS || m->regions)
            return -EPROTO;
        m->regions = calloc(n ? n : 1, sizeof(cmap_region));
        if (!m->regions)
            return -ENOMEM;
        for (uint32_t i = 0; i < n; i++) {
            m->nregions = i + 1;
            int rc = decode_region(c, &m->regions[i]);
            if (rc)
                return rc;
        }
        return 0;
    }
    return -EPROTO;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether the sorted ids hold a duplicate. */
static bool ids_repeat(const uint32_t *ids, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (ids[i] == ids[i - 1])
            return true;
    return false;
}

/* 1 when two regions share a name, 0 if not, -ENOMEM. */
static int names_repeat(const cmap_t *m)
{
    const char **names = malloc((m->nregions ? m->nregions : 1) * sizeof(*names));
    if (!names)
        return -ENOMEM;
    for (size_t i = 0; i < m->nregions; i++)
        names[i] = m->regions[i].name;
    qsort(names, m->nregions, sizeof(*names), cmp_name);
    bool rep = false;
    for (size_t i = 1; i < m->nregions && !rep; i++)
        rep = !strcmp(names[i], names[i - 1]);
    free(names);
    return rep;
}

/* Every copy names a member of the sorted view ids (only the primary's
 * slot may be 0: no primary), and no bucket names a member twice. */
static bool copies_valid(const cmap_t *m, const uint32_t *ids)
{
    for (size_t i = 0; i < m->nregions; i++) {
        const cmap_region *r = &m->regions[i];
        for (uint32_t b = 0; b < r->nbuckets; b++) {
            const cmap_bucket *bk = &r->buckets[b];
            for (uint32_t j = 0; j < bk->ncopies; j++) {
                uint32_t id = bk->copies[j].member_id;
                if (id == 0 ? j > 0 : !bsearch(&id, ids, m->nmembers, sizeof(*ids), cmp_u32))
                    return false;
                for (uint32_t k = 0; k < j; k++)
                    if (bk->copies[k].member_id == id)
                        return false;
            }
        }
    }
    return true;
}

/* Member ids and region names are unique, and copies name members of the
 * view. The locator never publishes anything else, and a client routing
 * by such a map could not find the member. Sorting keeps this
 * O(n log n) for the largest maps the limits allow. */
static int check_buckets(const cmap_t *m)
{
    uint32_t *ids = malloc((m->nmembers ? m->nmembers : 1) * sizeof(*ids));
    if (!ids)
        return -ENOMEM;
    for (size_t i = 0; i < m->nmembers; i++)
        ids[i] = m->members[i].id;
    qsort(ids, m->nmembers, sizeof(*ids), cmp_u32);
    int rc = ids_repeat(ids, m->nmembers) ? 1 : names_repeat(m);
    if (rc == 0 && !copies_valid(m, ids))
        rc = 1;
    free(ids);
    return rc > 0 ? -EPROTO : rc;
}

static int decode_map(mp_cursor *c, cmap_t *m)
{
    uint32_t n;
    if (mp_read_map(c, &n))
        return -EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t kn;
        int rc;
        if (mp_read_str(c, &k, &kn))
            return -EPROTO;
        if (kn == 7 && !memcmp(k, "version", 7))
            rc = mp_read_uint(c, &m->version) ? -EPROTO : 0;
        else if (kn == 7 && !memcmp(k, "view_id", 7))
            rc = mp_read_uint(c, &m->view_id) ? -EPROTO : 0;
        else
            rc = decode_list(c, m, k, kn);
        if (rc)
            return rc;
    }
    return mp_left(c) ? -EPROTO : check_buckets(m);
}

int cmap_decode(const uint8_t *p, size_t n, cmap_t **out)
{
    mp_cursor c;
    mp_cursor_init(&c, p, n);
    cmap_t *m = cmap_new();
    if (!m)
        return -ENOMEM;
    int rc = decode_map(&c, m);
    if (rc) {
        cmap_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ---- lookups ---- */

int cmap_member_index(const cmap_t *m, uint32_t id)
{
    for (size_t i = 0; i < m->nmembers; i++)
        if (m->members[i].id == id)
            return (int)i;
    return -1;
}

const cmap_member *cmap_member_find(const cmap_t *m, uint32_t id)
{
    int i = cmap_member_index(m, id);
    return i < 0 ? NULL : &m->members[i];
}

cmap_region *cmap_region_find(const cmap_t *m, const char *name, size_t n)
{
    for (size_t i = 0; i < m->nregions; i++)
        if (strlen(m->regions[i].name) == n && !memcmp(m->regions[i].name, name, n))
            return &m->regions[i];
    return NULL;
}

uint32_t cmap_primary(const cmap_region *r, uint32_t bucket)
{
    if (!r || bucket >= r->nbuckets || r->buckets[bucket].ncopies == 0)
        return 0;
    return r->buckets[bucket].copies[0].member_id;
}

enum cmap_role cmap_role(const cmap_region *r, uint32_t bucket, uint32_t member_id)
{
    if (!r || bucket >= r->nbuckets || member_id == 0)
        return CMAP_NONE;
    const cmap_bucket *b = &r->buckets[bucket];
    for (uint32_t i = 0; i < b->ncopies; i++) {
        if (b->copies[i].member_id != member_id)
            continue;
        if (b->copies[i].init)
            return CMAP_INIT;
        return i == 0 ? CMAP_PRIMARY : CMAP_COPY;
    }
    return CMAP_NONE;
}

uint32_t cmap_ready_copies(const cmap_region *r, uint32_t bucket)
{
    if (!r || bucket >= r->nbuckets)
        return 0;
    const cmap_bucket *b = &r->buckets[bucket];
    uint32_t n = 0;
    for (uint32_t i = 0; i < b->ncopies; i++)
        n += b->copies[i].member_id && !b->copies[i].init;
    return n;
}

/* ---- building ---- */

int cmap_member_add(cmap_t *m, const cmap_member *mem)
{
    int i = cmap_member_index(m, mem->id);
    if (i >= 0) {
        m->members[i] = *mem;
        return 0;
    }
    cmap_member *grown = realloc(m->members, (m->nmembers + 1) * sizeof(cmap_member));
    if (!grown)
        return -ENOMEM;
    m->members = grown;
    m->members[m->nmembers++] = *mem;
    return 0;
}

void cmap_member_remove(cmap_t *m, uint32_t id)
{
    int i = cmap_member_index(m, id);
    if (i < 0)
        return;
    memmove(&m->members[i], &m->members[i + 1], (m->nmembers - (size_t)i - 1) * sizeof(cmap_member));
    m->nmembers--;
}

int cmap_region_add(cmap_t *m, const char *name, const char *type, uint32_t redundant,
                    uint32_t nbuckets)
{
    if (cmap_region_find(m, name, strlen(name)))
        return -EEXIST;
    cmap_region *grown = realloc(m->regions, (m->nregions + 1) * sizeof(cmap_region));
    if (!grown)
        return -ENOMEM;
    m->regions = grown;
    cmap_region *r = &m->regions[m->nregions];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->type, sizeof r->type, "%s", type);
    r->redundant_copies = redundant;
    r->buckets = calloc(nbuckets, sizeof(cmap_bucket));
    if (!r->buckets)
        return -ENOMEM;
    r->nbuckets = nbuckets;
    m->nregions++;
    return 0;
}

int cmap_region_remove(cmap_t *m, const char *name)
{
    cmap_region *r = cmap_region_find(m, name, strlen(name));
    if (!r)
        return -ENOENT;
    region_clear_buckets(r);
    size_t i = (size_t)(r - m->regions);
    memmove(&m->regions[i], &m->regions[i + 1], (m->nregions - i - 1) * sizeof(cmap_region));
    m->nregions--;
    return 0;
}

const cmap_index *cmap_index_find(const cmap_region *r, const char *name)
{
    for (uint32_t i = 0; i < r->nindexes; i++)
        if (strcmp(r->indexes[i].name, name) == 0)
            return &r->indexes[i];
    return NULL;
}

int cmap_index_add(cmap_region *r, const char *name, const char *type, const char *expr)
{
    if (!index_valid(name, type, expr))
        return -EINVAL;
    if (cmap_index_find(r, name))
        return -EEXIST;
    if (r->nindexes >= CMAP_MAX_INDEXES)
        return -ENOSPC;
    cmap_index *grown = realloc(r->indexes, (r->nindexes + 1) * sizeof(cmap_index));
    if (!grown)
        return -ENOMEM;
    r->indexes = grown;
    cmap_index *ix = &r->indexes[r->nindexes++];
    memset(ix, 0, sizeof(*ix));
    snprintf(ix->name, sizeof ix->name, "%s", name);
    snprintf(ix->type, sizeof ix->type, "%s", type);
    snprintf(ix->expr, sizeof ix->expr, "%s", expr);
    return 0;
}

int cmap_index_remove(cmap_region *r, const char *name)
{
    const cmap_index *ix = cmap_index_find(r, name);
    if (!ix)
        return -ENOENT;
    size_t i = (size_t)(ix - r->indexes);
    memmove(&r->indexes[i], &r->indexes[i + 1], (r->nindexes - i - 1) * sizeof(cmap_index));
    r->nindexes--;
    return 0;
}

int cmap_locator_add(cmap_t *m, const char *addr)
{
    void *grown = realloc(m->locators, (m->nlocators + 1) * sizeof(*m->locators));
    if (!grown)
        return -ENOMEM;
    m->locators = grown;
    snprintf(m->locators[m->nlocators++], sizeof m->locators[0], "%s", addr);
    return 0;
}
