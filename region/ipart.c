/* One bucket's part of an index (see ipart.h). */
#include "region/ipart.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SKIP_MAX 20    /* 4^20 distinct values per bucket: far beyond memory */
#define MIN_SLOTS 16u

typedef struct posting {
    struct posting *knext;         /* key table chain */
    struct posting *gprev, *gnext; /* the group's keys */
    struct igroup *g;
    uint64_t khash;
    uint32_t klen;
    uint8_t key[];
} posting;

/* The keys holding one value. A range part links groups in a skip list
 * (fwd[0..level)); a hash part chains them by vhash. The value's string or
 * binary bytes follow the node. */
typedef struct igroup {
    struct igroup *hnext;
    uint64_t vhash;
    qvalue v;
    posting *head;
    uint8_t level;
    struct igroup *fwd[];
} igroup;

struct ipart {
    qindex_kind kind;
    uint64_t rng;
    uint64_t seed; /* mixed into slot indexes: keys and values come from clients */
    uint64_t nkeys, bytes;
    posting **keys; /* key table: nkslots (power of two) chains */
    uint32_t nkslots;
    igroup **groups; /* hash parts: ngslots chains */
    uint32_t ngslots;
    uint64_t ngroups;
    igroup *head; /* range parts: skip list head (SKIP_MAX links, no value) */
    uint8_t level;
};

bool ipart_indexable(const qvalue *v)
{
    switch (v->type) {
    case QT_BOOL: case QT_INT: case QT_UINT: case QT_FLOAT: case QT_STR: case QT_BIN:
        return true;
    default:
        return false;
    }
}

/* The class a value compares within: every number type is one. */
static int vclass(const qvalue *v)
{
    return qvalue_is_number(v) ? QT_INT : (int)v->type;
}

ipart *ipart_new(qindex_kind kind, uint64_t seed)
{
    ipart *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->kind = kind;
    p->rng = seed | 1;
    p->seed = seed * 0x9e3779b97f4a7c15ULL;
    if (kind == QINDEX_RANGE) {
        p->head = calloc(1, sizeof(igroup) + SKIP_MAX * sizeof(igroup *));
        if (!p->head) {
            free(p);
            return NULL;
        }
        p->head->level = SKIP_MAX;
        p->level = 1;
    }
    return p;
}

static void free_group(igroup *g)
{
    for (posting *k = g->head, *next; k; k = next) {
        next = k->gnext;
        free(k);
    }
    free(g);
}

void ipart_clear(ipart *p)
{
    if (!p)
        return;
    if (p->kind == QINDEX_RANGE) {
        for (igroup *g = p->head->fwd[0], *next; g; g = next) {
            next = g->fwd[0];
            free_group(g);
        }
        memset(p->head->fwd, 0, SKIP_MAX * sizeof(igroup *));
        p->level = 1;
    } else {
        for (uint32_t i = 0; i < p->ngslots; i++)
            for (igroup *g = p->groups[i], *next; g; g = next) {
                next = g->hnext;
                free_group(g);
            }
        free(p->groups);
        p->groups = NULL;
        p->ngslots = 0;
    }
    free(p->keys);
    p->keys = NULL;
    p->nkslots = 0;
    p->nkeys = p->bytes = p->ngroups = 0;
}

void ipart_free(ipart *p)
{
    if (!p)
        return;
    ipart_clear(p);
    free(p->head);
    free(p);
}

uint64_t ipart_count(const ipart *p) { return p->nkeys; }

uint64_t ipart_bytes(const ipart *p)
{
    return p->bytes + sizeof(*p) + (uint64_t)p->nkslots * sizeof(posting *) +
           (uint64_t)p->ngslots * sizeof(igroup *);
}

/* ---- key table ---- */

/* A slot of n (a power of two) for hash h: h mixed with the part's seed,
 * so that keys of one bucket (which share h mod the bucket count) and
 * chosen values still spread. */
static uint32_t slot_of(const ipart *p, uint64_t h, uint32_t n)
{
    h ^= p->seed;
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 29;
    return (uint32_t)h & (n - 1);
}

static posting **key_link(const ipart *p, uint64_t khash, const uint8_t *key, uint32_t klen)
{
    if (!p->nkslots)
        return NULL;
    posting **l = &p->keys[slot_of(p, khash, p->nkslots)];
    for (; *l; l = &(*l)->knext)
        if ((*l)->khash == khash && (*l)->klen == klen && memcmp((*l)->key, key, klen) == 0)
            return l;
    return l;
}

/* Rehashes the key table to twice its size (or creates it). */
static int keys_grow(ipart *p)
{
    uint32_t n = p->nkslots ? p->nkslots * 2 : MIN_SLOTS;
    if (n < p->nkslots)
        return -ENOMEM;
    posting **t = calloc(n, sizeof(*t));
    if (!t)
        return -ENOMEM;
    for (uint32_t i = 0; i < p->nkslots; i++)
        for (posting *k = p->keys[i], *next; k; k = next) {
            next = k->knext;
            uint32_t s = slot_of(p, k->khash, n);
            k->knext = t[s];
            t[s] = k;
        }
    free(p->keys);
    p->keys = t;
    p->nkslots = n;
    return 0;
}

/* ---- groups ---- */

static size_t value_bytes(const qvalue *v)
{
    return v->type == QT_STR || v->type == QT_BIN ? v->v.s.n : 0;
}

static igroup *group_new(const qvalue *v, uint8_t level)
{
    size_t links = (size_t)level * sizeof(igroup *);
    size_t vn = value_bytes(v);
    igroup *g = malloc(sizeof(igroup) + links + vn);
    if (!g)
        return NULL;
    memset(g, 0, sizeof(igroup) + links);
    g->level = level;
    g->v = *v;
    if (vn || v->type == QT_STR || v->type == QT_BIN) {
        uint8_t *bytes = (uint8_t *)g + sizeof(igroup) + links;
        if (vn)
            memcpy(bytes, v->v.s.p, vn);
        g->v.v.s.p = bytes;
    }
    g->vhash = qvalue_hash(v);
    return g;
}

static uint64_t group_size(const igroup *g)
{
    return sizeof(igroup) + (uint64_t)g->level * sizeof(igroup *) + value_bytes(&g->v);
}

static igroup *hash_find(const ipart *p, const qvalue *v, uint64_t vh)
{
    if (!p->ngslots)
        return NULL;
    for (igroup *g = p->groups[slot_of(p, vh, p->ngslots)]; g; g = g->hnext)
        if (g->vhash == vh && qvalue_equal(&g->v, v))
            return g;
    return NULL;
}

static int groups_grow(ipart *p)
{
    uint32_t n = p->ngslots ? p->ngslots * 2 : MIN_SLOTS;
    if (n < p->ngslots)
        return -ENOMEM;
    igroup **t = calloc(n, sizeof(*t));
    if (!t)
        return -ENOMEM;
    for (uint32_t i = 0; i < p->ngslots; i++)
        for (igroup *g = p->groups[i], *next; g; g = next) {
            next = g->hnext;
            uint32_t s = slot_of(p, g->vhash, n);
            g->hnext = t[s];
            t[s] = g;
        }
    free(p->groups);
    p->groups = t;
    p->ngslots = n;
    return 0;
}

/* Skip list: fills upd[i] with the last group before v at each level and
 * returns the first group >= v. */
static igroup *skip_seek(const ipart *p, const qvalue *v, igroup **upd)
{
    igroup *x = p->head;
    for (int i = p->level - 1; i >= 0; i--) {
        while (x->fwd[i] && qvalue_order(&x->fwd[i]->v, v) < 0)
            x = x->fwd[i];
        if (upd)
            upd[i] = x;
    }
    return x->fwd[0];
}

static uint8_t random_level(ipart *p)
{
    /* xorshift64; two bits per level: p = 1/4 */
    uint64_t x = p->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p->rng = x;
    uint8_t level = 1;
    while (level < SKIP_MAX && (x & 3) == 0) {
        level++;
        x >>= 2;
    }
    return level;
}

/* The group of v, created when absent. NULL if no memory. */
static igroup *group_get(ipart *p, const qvalue *v)
{
    if (p->kind == QINDEX_HASH) {
        uint64_t vh = qvalue_hash(v);
        igroup *g = hash_find(p, v, vh);
        if (g)
            return g;
        if (p->ngroups >= p->ngslots && groups_grow(p))
            return NULL;
        if (!(g = group_new(v, 0)))
            return NULL;
        uint32_t s = slot_of(p, vh, p->ngslots);
        g->hnext = p->groups[s];
        p->groups[s] = g;
        p->ngroups++;
        p->bytes += group_size(g);
        return g;
    }
    igroup *upd[SKIP_MAX];
    igroup *g = skip_seek(p, v, upd);
    if (g && qvalue_order(&g->v, v) == 0)
        return g;
    uint8_t level = random_level(p);
    for (uint8_t i = p->level; i < level; i++)
        upd[i] = p->head;
    if (!(g = group_new(v, level)))
        return NULL;
    if (level > p->level)
        p->level = level;
    for (uint8_t i = 0; i < level; i++) {
        g->fwd[i] = upd[i]->fwd[i];
        upd[i]->fwd[i] = g;
    }
    p->ngroups++;
    p->bytes += group_size(g);
    return g;
}

static void group_unlink(ipart *p, igroup *g)
{
    if (p->kind == QINDEX_HASH) {
        igroup **l = &p->groups[slot_of(p, g->vhash, p->ngslots)];
        while (*l != g)
            l = &(*l)->hnext;
        *l = g->hnext;
    } else {
        igroup *upd[SKIP_MAX];
        skip_seek(p, &g->v, upd);
        for (uint8_t i = 0; i < g->level; i++)
            if (upd[i]->fwd[i] == g)
                upd[i]->fwd[i] = g->fwd[i];
        while (p->level > 1 && !p->head->fwd[p->level - 1])
            p->level--;
    }
    p->ngroups--;
    p->bytes -= group_size(g);
    free(g);
}

/* Unlinks posting k (already out of the key table) from its group and
 * frees it, and the group once empty. */
static void posting_drop(ipart *p, posting *k)
{
    igroup *g = k->g;
    if (k->gprev)
        k->gprev->gnext = k->gnext;
    else
        g->head = k->gnext;
    if (k->gnext)
        k->gnext->gprev = k->gprev;
    p->nkeys--;
    p->bytes -= sizeof(posting) + k->klen;
    free(k);
    if (!g->head)
        group_unlink(p, g);
}

void ipart_remove(ipart *p, uint64_t khash, const uint8_t *key, uint32_t klen)
{
    posting **l = key_link(p, khash, key, klen);
    if (!l || !*l)
        return;
    posting *k = *l;
    *l = k->knext;
    posting_drop(p, k);
}

int ipart_set(ipart *p, uint64_t khash, const uint8_t *key, uint32_t klen, const qvalue *v)
{
    posting **l = key_link(p, khash, key, klen);
    if (l && *l) {
        if (ipart_indexable(v) && qvalue_order(&(*l)->g->v, v) == 0)
            return 0; /* same value: nothing moves */
        ipart_remove(p, khash, key, klen);
    }
    if (!ipart_indexable(v))
        return 0;
    if (p->nkeys >= p->nkslots && keys_grow(p))
        return -ENOMEM;
    posting *k = malloc(sizeof(posting) + klen);
    if (!k)
        return -ENOMEM;
    igroup *g = group_get(p, v);
    if (!g) {
        free(k);
        return -ENOMEM;
    }
    k->khash = khash;
    k->klen = klen;
    memcpy(k->key, key, klen);
    k->g = g;
    k->gprev = NULL;
    k->gnext = g->head;
    if (g->head)
        g->head->gprev = k;
    g->head = k;
    uint32_t s = slot_of(p, khash, p->nkslots);
    k->knext = p->keys[s];
    p->keys[s] = k;
    p->nkeys++;
    p->bytes += sizeof(posting) + klen;
    return 0;
}

/* ---- lookups ---- */

static int visit_group(const igroup *g, ipart_visit_fn fn, void *arg)
{
    for (const posting *k = g->head; k; k = k->gnext) {
        int rc = fn(arg, k->khash, k->key, k->klen);
        if (rc)
            return rc;
    }
    return 0;
}

int ipart_eq(const ipart *p, const qvalue *v, ipart_visit_fn fn, void *arg)
{
    if (!ipart_indexable(v))
        return 0; /* = with NULL, UNDEFINED, an array or a map finds nothing here */
    const igroup *g;
    if (p->kind == QINDEX_HASH) {
        g = hash_find(p, v, qvalue_hash(v));
    } else {
        g = skip_seek(p, v, NULL);
        if (g && qvalue_order(&g->v, v) != 0)
            g = NULL;
    }
    return g ? visit_group(g, fn, arg) : 0;
}

/* True while g lies before the range's start. */
static bool before_lo(const igroup *g, int cls, const qvalue *lo, bool lo_incl)
{
    int gc = vclass(&g->v);
    if (gc != cls)
        return gc < cls; /* qtype order is the class order of qvalue_order */
    if (!lo)
        return false;
    int c = qvalue_order(&g->v, lo);
    return c < 0 || (c == 0 && !lo_incl);
}

int ipart_range(const ipart *p, const qvalue *lo, bool lo_incl, const qvalue *hi, bool hi_incl,
                ipart_visit_fn fn, void *arg)
{
    if (p->kind != QINDEX_RANGE || (!lo && !hi))
        return -EINVAL;
    if ((lo && !ipart_indexable(lo)) || (hi && !ipart_indexable(hi)) ||
        (lo && hi && vclass(lo) != vclass(hi)))
        return -EINVAL;
    int cls = vclass(lo ? lo : hi);
    igroup *x = p->head;
    for (int i = p->level - 1; i >= 0; i--)
        while (x->fwd[i] && before_lo(x->fwd[i], cls, lo, lo_incl))
            x = x->fwd[i];
    for (const igroup *g = x->fwd[0]; g; g = g->fwd[0]) {
        if (vclass(&g->v) != cls)
            break;
        if (hi) {
            int c = qvalue_order(&g->v, hi);
            if (c > 0 || (c == 0 && !hi_incl))
                break;
        }
        int rc = visit_group(g, fn, arg);
        if (rc)
            return rc;
    }
    return 0;
}
