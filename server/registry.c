#include "server/registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "region/journal.h"

/* An immutable snapshot: regions in creation order plus an open-addressing
 * index by name. Never modified after publication. */
struct registry_view {
    size_t n;
    size_t nslots;     /* power of two, > 2n */
    region_t **order;  /* n */
    region_t **slots;  /* nslots, NULL = empty */
};

struct registry {
    qsbr_t *q;
    uint32_t member_id;
    bool clustered; /* regions created from now on are copies in a cluster */
    size_t journal_bytes; /* per bucket of each new region; 0: no journal */
    pthread_mutex_t write_lock; /* serialises create/destroy */
    _Atomic(registry_view *) view;
};

static void view_free(void *p)
{
    registry_view *v = p;
    if (!v)
        return;
    free(v->order);
    free(v->slots);
    free(v);
}

static void region_free_cb(void *p) { region_free(p); }

static uint64_t name_hash(const uint8_t *name, size_t n) { return hash_key(name, n); }

static int name_eq(const region_t *r, const uint8_t *name, size_t n)
{
    const char *rn = region_cfg(r)->name;
    return strlen(rn) == n && memcmp(rn, name, n) == 0;
}

/* Builds a view of regions[0..n). NULL if out of memory. */
static registry_view *view_build(region_t *const *regions, size_t n)
{
    registry_view *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->nslots = 8;
    while (v->nslots <= 2 * n)
        v->nslots *= 2;
    v->order = calloc(n ? n : 1, sizeof(region_t *));
    v->slots = calloc(v->nslots, sizeof(region_t *));
    if (!v->order || !v->slots) {
        view_free(v);
        return NULL;
    }
    v->n = n;
    for (size_t i = 0; i < n; i++) {
        v->order[i] = regions[i];
        const char *name = region_cfg(regions[i])->name;
        size_t s = name_hash((const uint8_t *)name, strlen(name)) & (v->nslots - 1);
        while (v->slots[s])
            s = (s + 1) & (v->nslots - 1);
        v->slots[s] = regions[i];
    }
    return v;
}

registry_t *registry_new(qsbr_t *q, uint32_t member_id)
{
    registry_t *reg = calloc(1, sizeof(*reg));
    if (!reg)
        return NULL;
    registry_view *v = view_build(NULL, 0);
    if (!v) {
        free(reg);
        return NULL;
    }
    reg->q = q;
    reg->member_id = member_id;
    pthread_mutex_init(&reg->write_lock, NULL);
    atomic_init(&reg->view, v);
    return reg;
}

void registry_free(registry_t *reg)
{
    if (!reg)
        return;
    registry_view *v = atomic_load(&reg->view);
    for (size_t i = 0; i < v->n; i++)
        region_free(v->order[i]);
    view_free(v);
    pthread_mutex_destroy(&reg->write_lock);
    free(reg);
}

const registry_view *registry_snapshot(registry_t *reg)
{
    return atomic_load_explicit(&reg->view, memory_order_acquire);
}

size_t registry_view_count(const registry_view *v) { return v->n; }
region_t *registry_view_at(const registry_view *v, size_t i) { return v->order[i]; }

static region_t *view_find(const registry_view *v, const uint8_t *name, size_t n)
{
    size_t s = name_hash(name, n) & (v->nslots - 1);
    for (region_t *r; (r = v->slots[s]) != NULL; s = (s + 1) & (v->nslots - 1))
        if (name_eq(r, name, n))
            return r;
    return NULL;
}

region_t *registry_find(registry_t *reg, const uint8_t *name, size_t n)
{
    return view_find(registry_snapshot(reg), name, n);
}

/* Publishes next and retires the snapshot it replaces. */
static void publish(registry_t *reg, registry_view *next)
{
    registry_view *old = atomic_exchange(&reg->view, next);
    qsbr_retire(reg->q, old, view_free);
}

int registry_create(registry_t *reg, const region_config *cfg, int if_not_exists,
                    region_type *existing_type)
{
    int rc = -ENOMEM;
    pthread_mutex_lock(&reg->write_lock);
    registry_view *cur = atomic_load(&reg->view);
    region_t *found = view_find(cur, (const uint8_t *)cfg->name, strlen(cfg->name));
    if (found) {
        *existing_type = region_cfg(found)->type;
        rc = if_not_exists && *existing_type == cfg->type ? REG_EXISTED : -EEXIST;
        goto out;
    }
    region_t *r = region_new(cfg, reg->member_id);
    if (!r)
        goto out;
    if (reg->clustered)
        region_set_clustered(r);
    if (reg->journal_bytes && !journal_attach(r, reg->journal_bytes)) {
        region_free(r);
        goto out;
    }
    region_t **all = malloc((cur->n + 1) * sizeof(*all));
    if (!all) {
        region_free(r);
        goto out;
    }
    memcpy(all, cur->order, cur->n * sizeof(*all));
    all[cur->n] = r;
    registry_view *next = view_build(all, cur->n + 1);
    free(all);
    if (!next) {
        region_free(r);
        goto out;
    }
    publish(reg, next);
    rc = REG_CREATED;
out:
    pthread_mutex_unlock(&reg->write_lock);
    return rc;
}

int registry_destroy(registry_t *reg, const uint8_t *name, size_t n)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&reg->write_lock);
    registry_view *cur = atomic_load(&reg->view);
    region_t *victim = view_find(cur, name, n);
    if (!victim)
        goto out;
    region_t **rest = malloc((cur->n ? cur->n : 1) * sizeof(*rest));
    if (!rest) {
        rc = -ENOMEM;
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < cur->n; i++)
        if (cur->order[i] != victim)
            rest[k++] = cur->order[i];
    registry_view *next = view_build(rest, k);
    free(rest);
    if (!next) {
        rc = -ENOMEM;
        goto out;
    }
    publish(reg, next);
    qsbr_retire(reg->q, victim, region_free_cb);
    rc = 0;
out:
    pthread_mutex_unlock(&reg->write_lock);
    return rc;
}

void registry_set_clustered(registry_t *reg) { reg->clustered = true; }
void registry_set_journal_bytes(registry_t *reg, size_t bytes) { reg->journal_bytes = bytes; }
