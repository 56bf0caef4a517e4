/* The rebalance planner (see rebalance_plan.h). */
#include "server/rebalance_plan.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "server/placement.h"

/* Members of the plan with their load and target in one region. */
typedef struct slot {
    uint32_t id;
    uint32_t load;   /* buckets (or primaries) now */
    uint32_t target; /* buckets (or primaries) wanted */
} slot;

static int copy_index(const cmap_bucket *b, uint32_t id)
{
    for (uint32_t i = 0; i < b->ncopies; i++)
        if (b->copies[i].member_id == id)
            return (int)i;
    return -1;
}

static bool listed(const slot *s, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].id == id)
            return true;
    return false;
}

/* A bucket whose copies are changing is not moved. */
static bool settled(const cmap_bucket *b, const slot *s, size_t n)
{
    if (b->ncopies == 0)
        return false;
    for (uint32_t i = 0; i < b->ncopies; i++)
        if (b->copies[i].init || !listed(s, n, b->copies[i].member_id))
            return false;
    return true;
}

void rebalance_counts(const cmap_region *r, const uint32_t *members, size_t n, rb_count *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i].member_id = members[i];
        placement_load(r, members[i], &out[i].buckets, &out[i].primaries);
    }
}

/* Spreads total over the slots: each gets total/n, and the remainder goes
 * to the ones loaded most now, so that as little as possible moves. */
static void set_targets(slot *s, size_t n, uint32_t total)
{
    uint32_t base = (uint32_t)(total / n), extra = (uint32_t)(total % n);
    bool *got = calloc(n, sizeof(*got));
    for (size_t i = 0; i < n; i++)
        s[i].target = base;
    for (uint32_t e = 0; e < extra; e++) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (!(got && got[i]) && (best == n || s[i].load > s[best].load))
                best = i;
        if (best == n)
            break;
        s[best].target++;
        if (got)
            got[best] = true;
    }
    free(got);
}

/* The slot furthest above (over) or below (!over) its target, skipping
 * the ones tried marks; n if none is off target that way. */
static size_t furthest(const slot *s, size_t n, bool over, const bool *tried)
{
    size_t best = n;
    uint32_t best_gap = 0;
    for (size_t i = 0; i < n; i++) {
        if (tried && tried[i])
            continue;
        uint32_t gap = over ? (s[i].load > s[i].target ? s[i].load - s[i].target : 0)
                            : (s[i].target > s[i].load ? s[i].target - s[i].load : 0);
        if (gap > best_gap) {
            best = i;
            best_gap = gap;
        }
    }
    return best;
}

static int add_move(rb_plan *p, const char *region, uint32_t bucket, uint32_t from, uint32_t to,
                    enum rb_kind kind)
{
    rb_move *v = realloc(p->moves, (p->nmoves + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    p->moves = v;
    rb_move *mv = &v[p->nmoves++];
    memset(mv, 0, sizeof(*mv));
    memcpy(mv->region, region, strlen(region) + 1);
    mv->bucket = bucket;
    mv->from = from;
    mv->to = to;
    mv->kind = kind;
    return 0;
}

/* A settled bucket of r on from and not on to, preferring one from is not
 * primary for (no handoff needed); -1 if there is none. */
static long pick_bucket(const cmap_region *r, const slot *s, size_t n, uint32_t from, uint32_t to)
{
    long with_primary = -1;
    for (uint32_t b = 0; b < r->nbuckets; b++) {
        const cmap_bucket *bk = &r->buckets[b];
        int at = copy_index(bk, from);
        if (at < 0 || copy_index(bk, to) >= 0 || !settled(bk, s, n))
            continue;
        if (at > 0)
            return b;
        if (with_primary < 0)
            with_primary = b;
    }
    return with_primary;
}

/* A settled bucket of r whose primary is from and which to holds; -1 if
 * there is none. */
static long pick_primary(const cmap_region *r, const slot *s, size_t n, uint32_t from, uint32_t to)
{
    for (uint32_t b = 0; b < r->nbuckets; b++) {
        const cmap_bucket *bk = &r->buckets[b];
        if (bk->ncopies && bk->copies[0].member_id == from && copy_index(bk, to) > 0 &&
            settled(bk, s, n))
            return b;
    }
    return -1;
}

/* One step of a balancing pass: moves one bucket (or primary) from the
 * member furthest over its target to the one furthest under that can take
 * it. Returns 1 when it moved, 0 when balanced (or stuck), -ENOMEM. */
static int balance_step(rb_plan *p, cmap_region *r, slot *s, size_t n, enum rb_kind kind,
                        bool *tried_over, bool *tried_under)
{
    memset(tried_over, 0, n * sizeof(*tried_over));
    for (;;) {
        size_t f = furthest(s, n, true, tried_over);
        if (f == n)
            return 0;
        memset(tried_under, 0, n * sizeof(*tried_under));
        for (;;) {
            size_t t = furthest(s, n, false, tried_under);
            if (t == n)
                break;
            long b = kind == RB_BUCKET_MOVE ? pick_bucket(r, s, n, s[f].id, s[t].id)
                                            : pick_primary(r, s, n, s[f].id, s[t].id);
            if (b < 0) {
                tried_under[t] = true;
                continue;
            }
            cmap_bucket *bk = &r->buckets[b];
            int at = copy_index(bk, s[f].id);
            if (kind == RB_BUCKET_MOVE) {
                bk->copies[at].member_id = s[t].id; /* the primary goes along */
            } else {
                int to_at = copy_index(bk, s[t].id);
                cmap_copy tmp = bk->copies[0];
                bk->copies[0] = bk->copies[to_at];
                bk->copies[to_at] = tmp;
            }
            s[f].load--;
            s[t].load++;
            return add_move(p, r->name, (uint32_t)b, s[f].id, s[t].id, kind) ? -ENOMEM : 1;
        }
        tried_over[f] = true;
    }
}

/* Balances one kind of load of region r (in the working map) to targets. */
static int balance(rb_plan *p, cmap_region *r, slot *s, size_t n, enum rb_kind kind)
{
    uint32_t total = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t nb, np;
        placement_load(r, s[i].id, &nb, &np);
        s[i].load = kind == RB_BUCKET_MOVE ? nb : np;
        total += s[i].load;
    }
    set_targets(s, n, total);
    bool *tried = calloc(2 * n, sizeof(*tried));
    if (!tried)
        return -ENOMEM;
    int rc;
    /* every step lowers the total distance to the targets: bounded */
    while ((rc = balance_step(p, r, s, n, kind, tried, tried + n)) == 1)
        ;
    free(tried);
    return rc;
}

static int plan_region(rb_plan *p, cmap_region *work, const cmap_region *orig, slot *s, size_t n,
                       const uint32_t *ids)
{
    rb_region *pr = &p->regions[p->nregions++];
    memcpy(pr->name, orig->name, sizeof pr->name);
    pr->ncounts = n;
    pr->before = calloc(n, sizeof(rb_count));
    pr->after = calloc(n, sizeof(rb_count));
    if (!pr->before || !pr->after)
        return -ENOMEM;
    rebalance_counts(orig, ids, n, pr->before);
    size_t first = p->nmoves;
    int rc = placement_replicated(orig->type) ? 0 : balance(p, work, s, n, RB_BUCKET_MOVE);
    size_t mid = p->nmoves;
    if (!rc)
        rc = balance(p, work, s, n, RB_PRIMARY_MOVE);
    if (rc)
        return rc;
    pr->bucket_moves = (uint32_t)(mid - first);
    pr->primary_moves = (uint32_t)(p->nmoves - mid);
    rebalance_counts(work, ids, n, pr->after);
    return 0;
}

/* Bucket moves of every region before any primary move (stable). */
static int order_moves(rb_plan *p)
{
    rb_move *v = malloc((p->nmoves ? p->nmoves : 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < p->nmoves; i++)
            if ((p->moves[i].kind == RB_BUCKET_MOVE) == (pass == 0))
                v[k++] = p->moves[i];
    free(p->moves);
    p->moves = v;
    return 0;
}

int rebalance_plan(const cmap_t *m, const uint32_t *members, size_t nmembers, rb_plan *out)
{
    memset(out, 0, sizeof(*out));
    cmap_t *work = cmap_clone(m);
    slot *s = calloc(nmembers ? nmembers : 1, sizeof(*s));
    uint32_t *ids = calloc(nmembers ? nmembers : 1, sizeof(*ids));
    out->regions = calloc(m->nregions ? m->nregions : 1, sizeof(rb_region));
    int rc = work && s && ids && out->regions ? 0 : -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; !rc && i < nmembers; i++)
        if (cmap_member_find(m, members[i]) && !listed(s, n, members[i])) {
            s[n].id = members[i];
            ids[n++] = members[i];
        }
    for (size_t i = 0; !rc && n && i < m->nregions; i++)
        rc = plan_region(out, &work->regions[i], &m->regions[i], s, n, ids);
    if (!rc)
        rc = order_moves(out);
    for (size_t i = 0; !rc && i < out->nmoves; i++) {
        if (out->moves[i].kind == RB_BUCKET_MOVE)
            out->bucket_moves++;
        else
            out->primary_moves++;
    }
    cmap_free(work);
    free(s);
    free(ids);
    if (rc)
        rebalance_plan_free(out);
    return rc;
}

void rebalance_plan_free(rb_plan *p)
{
    for (size_t i = 0; i < p->nregions; i++) {
        free(p->regions[i].before);
        free(p->regions[i].after);
    }
    free(p->regions);
    free(p->moves);
    memset(p, 0, sizeof(*p));
}
