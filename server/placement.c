/* Bucket placement (see placement.h). */
#include "server/placement.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

bool placement_replicated(const char *type) { return strncmp(type, "REPLICATE", 9) == 0; }

void placement_load(const cmap_region *r, uint32_t id, uint32_t *buckets, uint32_t *primaries)
{
    *buckets = *primaries = 0;
    for (uint32_t b = 0; b < r->nbuckets; b++) {
        const cmap_bucket *bk = &r->buckets[b];
        for (uint32_t i = 0; i < bk->ncopies; i++)
            if (bk->copies[i].member_id == id) {
                (*buckets)++;
                *primaries += i == 0;
            }
    }
}

static bool holds(const cmap_bucket *b, uint32_t id)
{
    for (uint32_t i = 0; i < b->ncopies; i++)
        if (b->copies[i].member_id == id)
            return true;
    return false;
}

/* The member with the fewest buckets (then primaries) of r that does not
 * hold bucket b and is not `except`; 0 if there is none. */
static uint32_t least_loaded_except(const cmap_t *m, const cmap_region *r, const cmap_bucket *b,
                                    bool by_primaries, uint32_t except)
{
    uint32_t best = 0, best_b = UINT32_MAX, best_p = UINT32_MAX;
    for (size_t i = 0; i < m->nmembers; i++) {
        uint32_t id = m->members[i].id, nb, np;
        if (id == except || holds(b, id))
            continue;
        placement_load(r, id, &nb, &np);
        uint32_t k1 = by_primaries ? np : nb, k2 = by_primaries ? nb : np;
        uint32_t b1 = by_primaries ? best_p : best_b, b2 = by_primaries ? best_b : best_p;
        if (k1 < b1 || (k1 == b1 && k2 < b2)) {
            best = id;
            best_b = nb;
            best_p = np;
        }
    }
    return best;
}

static uint32_t least_loaded(const cmap_t *m, const cmap_region *r, const cmap_bucket *b,
                             bool by_primaries)
{
    return least_loaded_except(m, r, b, by_primaries, 0);
}

/* Removes copies whose member left; returns how many. */
static uint32_t drop_departed(const cmap_t *m, cmap_bucket *b, bool *primary_lost)
{
    uint32_t n = 0, k = 0;
    *primary_lost = false;
    for (uint32_t i = 0; i < b->ncopies; i++) {
        uint32_t id = b->copies[i].member_id;
        if (id && cmap_member_find(m, id)) {
            b->copies[k++] = b->copies[i];
        } else if (id || i == 0) {
            *primary_lost |= i == 0;
            n += id != 0;
        }
    }
    b->ncopies = k;
    return n;
}

/* Moves the first ready copy to the front as primary. */
static bool promote(cmap_bucket *b)
{
    for (uint32_t i = 0; i < b->ncopies; i++) {
        if (b->copies[i].init)
            continue;
        cmap_copy c = b->copies[i];
        memmove(&b->copies[1], &b->copies[0], i * sizeof(cmap_copy));
        b->copies[0] = c;
        b->term++;
        return true;
    }
    return false;
}

static int append_copy(cmap_bucket *b, uint32_t id, bool init)
{
    cmap_copy *c = realloc(b->copies, (b->ncopies + 1) * sizeof(cmap_copy));
    if (!c)
        return -1;
    b->copies = c;
    c[b->ncopies++] = (cmap_copy){.member_id = id, .init = init};
    return 0;
}

static bool fix_bucket(const cmap_t *m, const cmap_region *r, uint32_t bi, bool add_copies,
                       placement_report *rep)
{
    cmap_bucket *b = &r->buckets[bi];
    bool primary_lost, changed = false;
    uint32_t dropped = drop_departed(m, b, &primary_lost);
    rep->dropped += dropped;
    changed |= dropped > 0;
    bool had_data = b->term > 0;
    if (b->ncopies == 0 || primary_lost || b->copies[0].init) {
        if (b->ncopies && promote(b)) {
            rep->promoted++;
            changed = true;
        } else if (m->nmembers) {
            /* nothing ready survives: start the bucket afresh */
            if (had_data) {
                rep->lost++;
                log_error("region %s bucket %u: no copy survived; its data is lost", r->name, bi);
            }
            b->ncopies = 0;
            uint32_t id = least_loaded(m, r, b, true);
            if (id && append_copy(b, id, false) == 0) {
                b->term++;
                changed = true;
            }
        }
    }
    if (!add_copies || b->ncopies == 0)
        return changed;
    uint32_t want = placement_replicated(r->type) ? (uint32_t)m->nmembers : 1 + r->redundant_copies;
    while (b->ncopies < want) {
        uint32_t id = least_loaded(m, r, b, false);
        if (!id || append_copy(b, id, true))
            break;
        rep->added++;
        changed = true;
    }
    return changed;
}

bool placement_fix(cmap_t *m, bool add_copies, placement_report *rep)
{
    placement_report local = {0};
    if (!rep)
        rep = &local;
    bool changed = false;
    for (size_t i = 0; i < m->nregions; i++)
        for (uint32_t b = 0; b < m->regions[i].nbuckets; b++)
            changed |= fix_bucket(m, &m->regions[i], b, add_copies, rep);
    return changed;
}

uint32_t placement_cover_leaving(cmap_t *m, uint32_t leaving, uint32_t *waiting)
{
    uint32_t added = 0;
    *waiting = 0;
    for (size_t i = 0; i < m->nregions; i++) {
        const cmap_region *r = &m->regions[i];
        for (uint32_t bi = 0; bi < r->nbuckets; bi++) {
            cmap_bucket *b = &r->buckets[bi];
            if (!holds(b, leaving))
                continue;
            bool ready_elsewhere = false, init_elsewhere = false;
            for (uint32_t c = 0; c < b->ncopies; c++) {
                if (b->copies[c].member_id == leaving)
                    continue;
                ready_elsewhere |= !b->copies[c].init;
                init_elsewhere |= b->copies[c].init;
            }
            if (ready_elsewhere)
                continue;
            if (!init_elsewhere) {
                uint32_t id = least_loaded_except(m, r, b, false, leaving);
                if (!id || append_copy(b, id, true))
                    continue; /* nowhere to go: the bucket leaves with the member */
                added++;
            }
            (*waiting)++;
        }
    }
    return added;
}
