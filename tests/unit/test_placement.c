/* Unit tests for server/placement.h: the locator's bucket placement rules,
 * on cluster maps built in memory (no locator, no network).
 *
 * Checked throughout: no member holds two copies of a bucket, every copy is
 * on a member of the view, a primary is ready, buckets reach
 * 1 + redundant_copies copies when there are enough members (every member
 * for REPLICATE), load is even, the result is deterministic, and losing a
 * member promotes a ready copy with a new term. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/cmap.h"
#include "common/log.h"
#include "common/mpw.h"
#include "server/placement.h"
#include "tu.h"

/* Check's ck_assert_* record a checkpoint on every success (slow in loops);
 * REQ only reports failures. */
#define REQ(cond)                                                                                  \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: assertion failed: %s", __FILE__, __LINE__, #cond);                \
    } while (0)

/* ---- helpers ------------------------------------------------------------ */

/* Member ids are not 1..n on purpose: placement must not assume it. */
static uint32_t member_id(int i) { return (uint32_t)(1000 + 37 * i); }

static cmap_t *make_map(int nmembers)
{
    cmap_t *m = cmap_new();
    ck_assert_ptr_nonnull(m);
    for (int i = 0; i < nmembers; i++) {
        cmap_member mem;
        memset(&mem, 0, sizeof mem);
        mem.id = member_id(i);
        snprintf(mem.name, sizeof mem.name, "m%d", i);
        snprintf(mem.host, sizeof mem.host, "127.0.0.1");
        mem.port = (uint16_t)(40000 + i);
        ck_assert_int_eq(cmap_member_add(m, &mem), 0);
    }
    return m;
}

static void add_member(cmap_t *m, uint32_t id)
{
    cmap_member mem;
    memset(&mem, 0, sizeof mem);
    mem.id = id;
    snprintf(mem.name, sizeof mem.name, "late%u", id);
    snprintf(mem.host, sizeof mem.host, "127.0.0.1");
    mem.port = 1;
    ck_assert_int_eq(cmap_member_add(m, &mem), 0);
}

static cmap_region *add_region(cmap_t *m, const char *name, const char *type, uint32_t redundant,
                               uint32_t nbuckets)
{
    ck_assert_int_eq(cmap_region_add(m, name, type, redundant, nbuckets), 0);
    cmap_region *r = cmap_region_find(m, name, strlen(name));
    ck_assert_ptr_nonnull(r);
    return r;
}

static void set_bucket(cmap_bucket *b, uint64_t term, const uint32_t *ids, const bool *init,
                       uint32_t n)
{
    cmap_copy c[16];
    REQ(n <= 16);
    for (uint32_t i = 0; i < n; i++)
        c[i] = (cmap_copy){.member_id = ids[i], .init = init ? init[i] : false};
    b->term = term;
    REQ(cmap_bucket_set(b, c, n) == 0);
}

/* Marks every initializing copy ready (what BUCKET_READY does). */
static void all_ready(cmap_t *m)
{
    for (size_t i = 0; i < m->nregions; i++)
        for (uint32_t b = 0; b < m->regions[i].nbuckets; b++)
            for (uint32_t j = 0; j < m->regions[i].buckets[b].ncopies; j++)
                m->regions[i].buckets[b].copies[j].init = false;
}

static void encode(const cmap_t *m, buf_t *out)
{
    msgpack_packer pk;
    buf_init(out);
    mpw_init(&pk, out);
    REQ(cmap_encode(m, &pk) == 0);
}

static bool maps_same(const cmap_t *a, const cmap_t *b)
{
    buf_t x, y;
    encode(a, &x);
    encode(b, &y);
    bool same = buf_readable(&x) == buf_readable(&y) &&
                memcmp(buf_rptr(&x), buf_rptr(&y), buf_readable(&x)) == 0;
    buf_free(&x);
    buf_free(&y);
    return same;
}

static uint32_t want_copies(const cmap_t *m, const cmap_region *r)
{
    uint32_t want = placement_replicated(r->type) ? (uint32_t)m->nmembers : 1 + r->redundant_copies;
    return want < m->nmembers ? want : (uint32_t)m->nmembers;
}

/* The invariants every placed bucket keeps; full: copies were added. */
static void ck_placed(const cmap_t *m, bool full)
{
    for (size_t i = 0; i < m->nregions; i++) {
        const cmap_region *r = &m->regions[i];
        for (uint32_t b = 0; b < r->nbuckets; b++) {
            const cmap_bucket *bk = &r->buckets[b];
            if (m->nmembers == 0) {
                REQ(bk->ncopies == 0);
                continue;
            }
            REQ(bk->ncopies >= 1);
            REQ(bk->copies[0].member_id != 0);
            REQ(!bk->copies[0].init); /* a primary is ready */
            REQ(bk->term >= 1);
            REQ(cmap_role(r, b, bk->copies[0].member_id) == CMAP_PRIMARY);
            for (uint32_t j = 0; j < bk->ncopies; j++) {
                REQ(cmap_member_find(m, bk->copies[j].member_id) != NULL);
                for (uint32_t k = 0; k < j; k++)
                    REQ(bk->copies[k].member_id != bk->copies[j].member_id);
            }
            if (full)
                REQ(bk->ncopies == want_copies(m, r));
        }
    }
}

/* Spread of a region over the view: max - min of buckets and primaries. */
static void spread(const cmap_t *m, const cmap_region *r, uint32_t *db, uint32_t *dp,
                   uint32_t *total_b, uint32_t *total_p)
{
    uint32_t minb = UINT32_MAX, maxb = 0, minp = UINT32_MAX, maxp = 0, tb = 0, tp = 0;
    for (size_t i = 0; i < m->nmembers; i++) {
        uint32_t nb, np;
        placement_load(r, m->members[i].id, &nb, &np);
        minb = nb < minb ? nb : minb;
        maxb = nb > maxb ? nb : maxb;
        minp = np < minp ? np : minp;
        maxp = np > maxp ? np : maxp;
        tb += nb;
        tp += np;
    }
    *db = maxb - minb;
    *dp = maxp - minp;
    if (total_b)
        *total_b = tb;
    if (total_p)
        *total_p = tp;
}

/* ---- small pieces ------------------------------------------------------- */

START_TEST(replicated_types)
{
    ck_assert(placement_replicated("REPLICATE"));
    ck_assert(placement_replicated("REPLICATE_PERSISTENT"));
    ck_assert(!placement_replicated("PARTITION"));
    ck_assert(!placement_replicated("PARTITION_REDUNDANT"));
    ck_assert(!placement_replicated("PARTITION_REDUNDANT_PERSISTENT"));
    ck_assert(!placement_replicated("REPLICAT"));
    ck_assert(!placement_replicated(""));
}
END_TEST

START_TEST(load_counts)
{
    cmap_t *m = make_map(3);
    cmap_region *r = add_region(m, "r", "PARTITION_REDUNDANT", 1, 4);
    uint32_t a = member_id(0), b = member_id(1), c = member_id(2);
    set_bucket(&r->buckets[0], 1, (uint32_t[]){a, b}, NULL, 2);
    set_bucket(&r->buckets[1], 1, (uint32_t[]){b, a}, (bool[]){false, true}, 2);
    set_bucket(&r->buckets[2], 1, (uint32_t[]){a}, NULL, 1);
    /* bucket 3 empty */
    uint32_t nb = 99, np = 99;
    placement_load(r, a, &nb, &np);
    ck_assert_uint_eq(nb, 3);
    ck_assert_uint_eq(np, 2);
    placement_load(r, b, &nb, &np);
    ck_assert_uint_eq(nb, 2); /* an initializing copy is a bucket held too */
    ck_assert_uint_eq(np, 1);
    placement_load(r, c, &nb, &np);
    ck_assert_uint_eq(nb, 0);
    ck_assert_uint_eq(np, 0);
    placement_load(r, 424242, &nb, &np);
    ck_assert_uint_eq(nb, 0);
    ck_assert_uint_eq(np, 0);
    cmap_free(m);
}
END_TEST

/* ---- fresh layouts ------------------------------------------------------ */

START_TEST(fresh_region_three_members)
{
    cmap_t *m = make_map(3);
    cmap_region *r = add_region(m, "orders", "PARTITION_REDUNDANT", 1, 113);
    placement_report rep = {0};
    ck_assert(placement_fix(m, true, &rep));
    ck_placed(m, true);
    ck_assert_uint_eq(rep.added, 113); /* one initializing copy per bucket */
    ck_assert_uint_eq(rep.promoted, 0);
    ck_assert_uint_eq(rep.lost, 0);
    ck_assert_uint_eq(rep.dropped, 0);
    for (uint32_t b = 0; b < r->nbuckets; b++) {
        ck_assert(r->buckets[b].term == 1); /* first primary: term 1 */
        ck_assert_uint_eq(r->buckets[b].ncopies, 2);
        ck_assert(r->buckets[b].copies[1].init); /* filled by an image transfer */
        ck_assert_int_eq(cmap_role(r, b, r->buckets[b].copies[1].member_id), CMAP_INIT);
        ck_assert_uint_eq(cmap_ready_copies(r, b), 1);
    }
    uint32_t db, dp, tb, tp;
    spread(m, r, &db, &dp, &tb, &tp);
    ck_assert_uint_eq(tb, 226);
    ck_assert_uint_eq(tp, 113);
    ck_assert_uint_le(dp, 1); /* 37/38/38 primaries */
    ck_assert_uint_le(db, 1); /* 75/75/76 buckets */
    cmap_free(m);
}
END_TEST

START_TEST(fresh_region_is_balanced_at_scale)
{
    /* many shapes: members 1..12, redundancy 0..3, bucket counts */
    static const uint32_t nbs[] = {1, 7, 64, 113, 257};
    for (int n = 1; n <= 16; n++) {
        for (uint32_t red = 0; red <= 3; red++) {
            for (size_t k = 0; k < sizeof nbs / sizeof nbs[0]; k++) {
                cmap_t *m = make_map(n);
                cmap_region *r = add_region(m, "r", "PARTITION_REDUNDANT", red, nbs[k]);
                placement_report rep = {0};
                REQ(placement_fix(m, true, &rep));
                ck_placed(m, true);
                uint32_t per = want_copies(m, r);
                REQ(rep.added == nbs[k] * (per - 1));
                uint32_t db, dp, tb, tp;
                spread(m, r, &db, &dp, &tb, &tp);
                REQ(tp == nbs[k]);
                REQ(tb == nbs[k] * per);
                /* greedy placement: primaries within 1 of each other; bucket
                 * counts within 2 (an early tie-break can leave one member a
                 * bucket above and another one below the mean, e.g. 4
                 * members, 64 buckets, 1 redundant copy: 31/32/32/33) */
                if (dp > 1 || db > 2)
                    ck_abort_msg("%d members, %u redundant, %u buckets: spread of primaries %u, "
                                 "of buckets %u", n, red, nbs[k], dp, db);
                /* a second pass has nothing to do */
                placement_report again = {0};
                REQ(!placement_fix(m, true, &again));
                REQ(again.added == 0 && again.promoted == 0 && again.lost == 0 && again.dropped == 0);
                cmap_free(m);
            }
        }
    }
}
END_TEST

START_TEST(choice_order)
{
    /* a copy goes to the member with the fewest buckets of the region, ties
     * to the fewest primaries; a primary to the fewest primaries, ties to
     * the fewest buckets */
    cmap_t *m = make_map(3);
    cmap_region *r = add_region(m, "r", "PARTITION_REDUNDANT", 1, 4);
    uint32_t a = member_id(0), b = member_id(1), c = member_id(2);
    set_bucket(&r->buckets[0], 1, (uint32_t[]){c, a}, NULL, 2);
    set_bucket(&r->buckets[1], 1, (uint32_t[]){c, a}, NULL, 2);
    set_bucket(&r->buckets[2], 1, (uint32_t[]){b}, NULL, 1);
    /* bucket 3 empty. Loads: a 2 buckets 0 primaries, b 1 and 1, c 2 and 2 */
    placement_report rep = {0};
    ck_assert(placement_fix(m, true, &rep));
    ck_placed(m, true);
    ck_assert_uint_eq(rep.added, 2);
    /* bucket 2's copy: a and c hold 2 buckets each, a has fewer primaries */
    ck_assert_uint_eq(r->buckets[2].copies[1].member_id, a);
    /* bucket 3's primary: a has the fewest primaries (0), though the most
     * buckets (3); its copy: b holds fewer buckets than c */
    ck_assert_uint_eq(cmap_primary(r, 3), a);
    ck_assert(r->buckets[3].term == 1);
    ck_assert_uint_eq(r->buckets[3].copies[1].member_id, b);
    ck_assert(r->buckets[3].copies[1].init);
    cmap_free(m);

    /* the tie broken towards a member later in the view */
    m = make_map(3);
    r = add_region(m, "r", "PARTITION_REDUNDANT", 1, 2);
    set_bucket(&r->buckets[0], 1, (uint32_t[]){a, c}, NULL, 2);
    set_bucket(&r->buckets[1], 1, (uint32_t[]){b}, NULL, 1);
    /* bucket 1's copy: a and c hold one bucket each, c no primary */
    ck_assert(placement_fix(m, true, NULL));
    ck_assert_uint_eq(r->buckets[1].copies[1].member_id, c);
    cmap_free(m);
}
END_TEST

START_TEST(deterministic)
{
    for (int n = 2; n <= 6; n++) {
        cmap_t *a = make_map(n), *b = make_map(n);
        add_region(a, "p", "PARTITION_REDUNDANT", 2, 97);
        add_region(a, "q", "REPLICATE", 0, 5);
        add_region(b, "p", "PARTITION_REDUNDANT", 2, 97);
        add_region(b, "q", "REPLICATE", 0, 5);
        ck_assert(maps_same(a, b));
        placement_fix(a, true, NULL);
        placement_fix(b, true, NULL);
        ck_assert(maps_same(a, b));
        /* and after the same loss */
        all_ready(a);
        all_ready(b);
        cmap_member_remove(a, member_id(1));
        cmap_member_remove(b, member_id(1));
        placement_report ra = {0}, rb = {0};
        placement_fix(a, true, &ra);
        placement_fix(b, true, &rb);
        ck_assert(maps_same(a, b));
        ck_assert(memcmp(&ra, &rb, sizeof ra) == 0);
        cmap_free(a);
        cmap_free(b);
    }
}
END_TEST

START_TEST(idempotent)
{
    cmap_t *m = make_map(4);
    add_region(m, "r", "PARTITION_REDUNDANT", 1, 50);
    ck_assert(placement_fix(m, true, NULL));
    cmap_t *before = cmap_clone(m);
    placement_report rep = {0};
    ck_assert(!placement_fix(m, true, &rep));
    ck_assert(maps_same(before, m));
    all_ready(m);
    all_ready(before);
    ck_assert(!placement_fix(m, true, &rep));
    ck_assert(!placement_fix(m, false, &rep));
    ck_assert(maps_same(before, m));
    ck_assert_uint_eq(rep.added + rep.promoted + rep.lost + rep.dropped, 0);
    cmap_free(before);
    cmap_free(m);
}
END_TEST

START_TEST(single_member)
{
    cmap_t *m = make_map(1);
    add_region(m, "r", "PARTITION_REDUNDANT", 2, 20);
    cmap_region *q = add_region(m, "q", "REPLICATE", 0, 3);
    cmap_region *r = cmap_region_find(m, "r", 1); /* adding q may have moved it */
    placement_report rep = {0};
    ck_assert(placement_fix(m, true, &rep));
    ck_placed(m, true);
    ck_assert_uint_eq(rep.added, 0); /* nowhere to put a copy */
    for (uint32_t b = 0; b < 20; b++) {
        ck_assert_uint_eq(r->buckets[b].ncopies, 1);
        ck_assert_uint_eq(cmap_primary(r, b), member_id(0));
    }
    for (uint32_t b = 0; b < 3; b++)
        ck_assert_uint_eq(cmap_primary(q, b), member_id(0));
    /* a second member joins: it receives the missing copies, primaries stay */
    add_member(m, 7);
    rep = (placement_report){0};
    ck_assert(placement_fix(m, true, &rep));
    ck_placed(m, true);
    ck_assert_uint_eq(rep.added, 23);
    ck_assert_uint_eq(rep.promoted, 0);
    for (uint32_t b = 0; b < 20; b++) {
        ck_assert_uint_eq(cmap_primary(r, b), member_id(0));
        ck_assert(r->buckets[b].term == 1);
        ck_assert_int_eq(cmap_role(r, b, 7), CMAP_INIT);
    }
    cmap_free(m);
}
END_TEST

START_TEST(more_copies_than_members)
{
    cmap_t *m = make_map(2);
    cmap_region *r = add_region(m, "r", "PARTITION_REDUNDANT", 3, 10);
    placement_report rep = {0};
    ck_assert(placement_fix(m, true, &rep));
    ck_placed(m, true);
    ck_assert_uint_eq(rep.added, 10);
    for (uint32_t b = 0; b < 10; b++) {
        ck_assert_uint_eq(r->buckets[b].ncopies, 2);
        ck_assert_uint_ne(r->buckets[b].copies[0].member_id, r->buckets[b].copies[1].member_id);
    }
    /* a third and fourth member: copies up to 1 + 3, still one per member */
    add_member(m, 5);
    add_member(m, 6);
    rep = (placement_report){0};
    ck_assert(placement_fix(m, true, &rep));
    ck_placed(m, true);
    ck_assert_uint_eq(rep.added, 20);
    for (uint32_t b = 0; b < 10; b++)
        ck_assert_uint_eq(r->buckets[b].ncopies, 4);
    /* a fifth is not needed by anyone */
    add_member(m, 9);
    ck_assert(!placement_fix(m, true, NULL));
    uint32_t nb, np;
    placement_load(r, 9, &nb, &np);
    ck_assert_uint_eq(nb, 0);
    cmap_free(m);
}
END_TEST

START_TEST(no_members)
{
    cmap_t *m = make_map(0);
    cmap_region *r = add_region(m, "r", "PARTITION_REDUNDANT", 1, 8);
    placement_report rep = {0};
    ck_assert(!placement_fix(m, true, &rep));
    ck_assert_uint_eq(rep.added + rep.promoted + rep.lost + rep.dropped, 0);
    for (uint32_t b = 0; b < 8; b++) {
        ck_assert_uint_eq(r->buckets[b].ncopies, 0);
        ck_assert(r->buckets[b].term == 0);
    }
    /* and an empty map */
    cmap_t *e = cmap_new();
    ck_assert(!placement_fix(e, true, NULL));
    cmap_free(e);
    cmap_free(m);
}
END_TEST

START_TEST(without_adding_copies)
{
    /* recovery delay: empty buckets still get a primary, nobody a copy */
    cmap_t *m = make_map(3);
    cmap_region *r = add_region(m, "r", "PARTITION_REDUNDANT", 1, 30);
    placement_report rep = {0};
    ck_assert(placement_fix(m, false, &rep));
    ck_placed(m, false);
    ck_assert_uint_eq(rep.added, 0);
    for (uint32_t b = 0; b < 30; b++)
        ck_assert_uint_eq(r->buckets[b].ncopies, 1);
    uint32_t db, dp;
    spread(m, r, &db, &dp, NULL, NULL);
    ck_assert_uint_le(dp, 1);
    /* later, with copies */
    rep = (placement_report){0};
    ck_assert(placement_fix(m, true, &rep));
    ck_placed(m, true);
    ck_assert_uint_eq(rep.added, 30);
    cmap_free(m);
}
END_TEST

START_TEST(replicate_region_everywhere)
{
    cmap_t *m = make_map(5);
    cmap_region *r = add_region(m, "cfg", "REPLICATE", 0, 4);
    placement_report rep = {0};
    ck_assert(placement_fix(m, true, &rep));
    ck_placed(m, true);
    ck_assert_uint_eq(rep.added, 16);
    for (uint32_t b = 0; b < 4; b++) {
        ck_assert_uint_eq(r->buckets[b].ncopies, 5);
        for (int i = 0; i < 5; i++)
            ck_assert_int_ne(cmap_role(r, b, member_id(i)), CMAP_NONE);
    }
    uint32_t db, dp;
    spread(m, r, &db, &dp, NULL, NULL);
    ck_assert_uint_eq(db, 0);
    ck_assert_uint_le(dp, 1);
    /* a new member gets every bucket */
    add_member(m, 3);
    rep = (placement_report){0};
    ck_assert(placement_fix(m, true, &rep));
    ck_assert_uint_eq(rep.added, 4);
    for (uint32_t b = 0; b < 4; b++)
        ck_assert_int_eq(cmap_role(r, b, 3), CMAP_INIT);
    cmap_free(m);
}
END_TEST

START_TEST(join_moves_nothing)
{
    /* redundancy satisfied: a new member receives nothing (rebalance's job) */
    cmap_t *m = make_map(3);
    add_region(m, "r", "PARTITION_REDUNDANT", 1, 40);
    placement_fix(m, true, NULL);
    all_ready(m);
    cmap_t *before = cmap_clone(m);
    add_member(m, 77);
    cmap_member mem = *cmap_member_find(m, 77);
    placement_report rep = {0};
    ck_assert(!placement_fix(m, true, &rep));
    ck_assert_uint_eq(rep.added + rep.promoted + rep.dropped + rep.lost, 0);
    ck_assert_int_eq(cmap_member_add(before, &mem), 0);
    ck_assert(maps_same(before, m));
    cmap_free(before);
    cmap_free(m);
}
END_TEST

/* ---- losing members ------------------------------------------------------- */

START_TEST(member_loss_promotes_copies)
{
    cmap_t *m = make_map(4);
    cmap_region *r = add_region(m, "r", "PARTITION_REDUNDANT", 1, 113);
    placement_fix(m, true, NULL);
    all_ready(m);
    cmap_t *before = cmap_clone(m);
    const cmap_region *rb = &before->regions[0];
    uint32_t gone = member_id(2), nb, np;
    placement_load(r, gone, &nb, &np);
    ck_assert_uint_gt(np, 0);
    ck_assert_uint_gt(nb, np);
    cmap_member_remove(m, gone);

    placement_report rep = {0};
    ck_assert(placement_fix(m, false, &rep));
    ck_placed(m, false);
    ck_assert_uint_eq(rep.promoted, np);
    ck_assert_uint_eq(rep.dropped, nb);
    ck_assert_uint_eq(rep.lost, 0);
    ck_assert_uint_eq(rep.added, 0);
    for (uint32_t b = 0; b < 113; b++) {
        const cmap_bucket *old = &rb->buckets[b], *now = &r->buckets[b];
        if (old->copies[0].member_id == gone) {
            /* the surviving copy is primary now, with a new term */
            ck_assert_uint_eq(now->ncopies, 1);
            ck_assert_uint_eq(now->copies[0].member_id, old->copies[1].member_id);
            ck_assert(now->term == old->term + 1);
        } else if (old->copies[1].member_id == gone) {
            /* the primary stays, same term; the copy is gone */
            ck_assert_uint_eq(now->ncopies, 1);
            ck_assert_uint_eq(now->copies[0].member_id, old->copies[0].member_id);
            ck_assert(now->term == old->term);
        } else {
            ck_assert_uint_eq(now->ncopies, 2);
            ck_assert_uint_eq(now->copies[0].member_id, old->copies[0].member_id);
            ck_assert_uint_eq(now->copies[1].member_id, old->copies[1].member_id);
            ck_assert(now->term == old->term);
        }
        ck_assert_int_eq(cmap_role(r, b, gone), CMAP_NONE);
    }
    /* recovery: redundancy restored on the survivors, primaries untouched */
    cmap_t *mid = cmap_clone(m);
    rep = (placement_report){0};
    ck_assert(placement_fix(m, true, &rep));
    ck_placed(m, true);
    ck_assert_uint_eq(rep.added, nb);
    ck_assert_uint_eq(rep.promoted, 0);
    for (uint32_t b = 0; b < 113; b++) {
        ck_assert_uint_eq(cmap_primary(r, b), cmap_primary(&mid->regions[0], b));
        ck_assert(r->buckets[b].term == mid->regions[0].buckets[b].term);
    }
    uint32_t db, dp;
    spread(m, r, &db, &dp, NULL, NULL);
    ck_assert_uint_le(db, 2);
    cmap_free(mid);
    cmap_free(before);
    cmap_free(m);
}
END_TEST

START_TEST(promotion_skips_initializing_copies)
{
    cmap_t *m = make_map(4);
    cmap_region *r = add_region(m, "r", "PARTITION_REDUNDANT", 2, 3);
    uint32_t a = member_id(0), b = member_id(1), c = member_id(2), d = member_id(3);
    /* bucket 0: primary a, init b, ready c -> c is promoted, b stays init */
    set_bucket(&r->buckets[0], 4, (uint32_t[]){a, b, c}, (bool[]){false, true, false}, 3);
    /* bucket 1: primary a, only an initializing copy b -> nothing to promote */
    set_bucket(&r->buckets[1], 6, (uint32_t[]){a, b}, (bool[]){false, true}, 2);
    /* bucket 2: primary d survives */
    set_bucket(&r->buckets[2], 2, (uint32_t[]){d, a}, NULL, 2);
    cmap_member_remove(m, a);
    placement_report rep = {0};
    ck_assert(placement_fix(m, false, &rep));
    ck_placed(m, false);
    ck_assert_uint_eq(rep.promoted, 1);
    ck_assert_uint_eq(rep.lost, 1);
    ck_assert_uint_eq(rep.dropped, 3);

    const cmap_bucket *b0 = &r->buckets[0];
    ck_assert_uint_eq(b0->ncopies, 2);
    ck_assert_uint_eq(b0->copies[0].member_id, c);
    ck_assert(!b0->copies[0].init);
    ck_assert_uint_eq(b0->copies[1].member_id, b);
    ck_assert(b0->copies[1].init);
    ck_assert(b0->term == 5);

    /* bucket 1 lost its data: restarted with a fresh primary, new term,
     * and no initializing copy of the lost data left behind */
    const cmap_bucket *b1 = &r->buckets[1];
    ck_assert_uint_eq(b1->ncopies, 1);
    ck_assert(!b1->copies[0].init);
    ck_assert(b1->term == 7);

    const cmap_bucket *b2 = &r->buckets[2];
    ck_assert_uint_eq(b2->ncopies, 1);
    ck_assert_uint_eq(b2->copies[0].member_id, d);
    ck_assert(b2->term == 2);
    cmap_free(m);
}
END_TEST

START_TEST(bucket_without_primary_gets_one)
{
    cmap_t *m = make_map(3);
    cmap_region *r = add_region(m, "r", "PARTITION_REDUNDANT", 1, 3);
    uint32_t a = member_id(0), b = member_id(1);
    /* "no primary" (0) with a ready copy: the copy is promoted */
    set_bucket(&r->buckets[0], 8, (uint32_t[]){0, b}, NULL, 2);
    /* an initializing copy in the primary's place, a ready copy behind it */
    set_bucket(&r->buckets[1], 3, (uint32_t[]){a, b}, (bool[]){true, false}, 2);
    /* placed already */
    set_bucket(&r->buckets[2], 1, (uint32_t[]){a, b}, NULL, 2);
    placement_report rep = {0};
    ck_assert(placement_fix(m, false, &rep));
    ck_placed(m, false);
    ck_assert_uint_eq(rep.promoted, 2);
    ck_assert_uint_eq(rep.lost, 0);
    ck_assert_uint_eq(rep.dropped, 0);
    ck_assert_uint_eq(r->buckets[0].ncopies, 1);
    ck_assert_uint_eq(cmap_primary(r, 0), b);
    ck_assert(r->buckets[0].term == 9);
    ck_assert_uint_eq(cmap_primary(r, 1), b);
    ck_assert_int_eq(cmap_role(r, 1, a), CMAP_INIT);
    ck_assert(r->buckets[1].term == 4);
    ck_assert_uint_eq(cmap_primary(r, 2), a);
    ck_assert(r->buckets[2].term == 1);
    cmap_free(m);
}
END_TEST

START_TEST(losing_every_copy)
{
    cmap_t *m = make_map(2);
    cmap_region *r = add_region(m, "r", "PARTITION_REDUNDANT", 1, 16);
    placement_fix(m, true, NULL);
    all_ready(m);
    cmap_member_remove(m, member_id(0));
    cmap_member_remove(m, member_id(1));
    placement_report rep = {0};
    ck_assert(placement_fix(m, true, &rep));
    ck_assert_uint_eq(rep.dropped, 32);
    ck_assert_uint_eq(rep.promoted, 0);
    for (uint32_t b = 0; b < 16; b++) {
        ck_assert_uint_eq(r->buckets[b].ncopies, 0);
        ck_assert_uint_eq(cmap_primary(r, b), 0);
        ck_assert(r->buckets[b].term == 1); /* kept: the next primary must be newer */
    }
    /* a new member starts every bucket afresh with a newer term, and the
     * loss is reported */
    add_member(m, 4242);
    rep = (placement_report){0};
    ck_assert(placement_fix(m, true, &rep));
    ck_placed(m, true);
    ck_assert_uint_eq(rep.lost, 16);
    for (uint32_t b = 0; b < 16; b++) {
        ck_assert_uint_eq(cmap_primary(r, b), 4242);
        ck_assert(r->buckets[b].term == 2);
    }
    cmap_free(m);
}
END_TEST

START_TEST(stale_copies_dropped)
{
    /* copies of members that left: dropped wherever they are in the list */
    cmap_t *m = make_map(4);
    cmap_region *r = add_region(m, "r", "PARTITION_REDUNDANT", 3, 1);
    uint32_t a = member_id(0), b = member_id(1), c = member_id(2), d = member_id(3);
    set_bucket(&r->buckets[0], 2, (uint32_t[]){a, b, c, d}, (bool[]){false, false, true, false}, 4);
    cmap_member_remove(m, b);
    cmap_member_remove(m, d);
    placement_report rep = {0};
    ck_assert(placement_fix(m, false, &rep));
    ck_assert_uint_eq(rep.dropped, 2);
    ck_assert_uint_eq(rep.promoted, 0);
    ck_assert_uint_eq(r->buckets[0].ncopies, 2);
    ck_assert_uint_eq(r->buckets[0].copies[0].member_id, a);
    ck_assert_uint_eq(r->buckets[0].copies[1].member_id, c);
    ck_assert(r->buckets[0].copies[1].init);
    ck_assert(r->buckets[0].term == 2);
    cmap_free(m);
}
END_TEST

START_TEST(successive_losses_keep_invariants)
{
    /* 8 members, redundancy 2; members leave one by one, redundancy is
     * restored each time: every bucket keeps a ready primary, nothing is
     * lost, and a bucket's term rises by one exactly when its primary
     * changes */
    cmap_t *m = make_map(8);
    cmap_region *r = add_region(m, "r", "PARTITION_REDUNDANT", 2, 113);
    placement_fix(m, true, NULL);
    all_ready(m);
    uint64_t terms[113];
    uint32_t primaries[113];
    for (uint32_t b = 0; b < 113; b++) {
        terms[b] = r->buckets[b].term;
        primaries[b] = cmap_primary(r, b);
    }
    for (int gone = 7; gone >= 1; gone--) {
        cmap_member_remove(m, member_id(gone));
        placement_report rep = {0};
        ck_assert(placement_fix(m, true, &rep));
        ck_placed(m, true);
        ck_assert_uint_eq(rep.lost, 0);
        uint32_t changed = 0;
        for (uint32_t b = 0; b < 113; b++) {
            bool moved = cmap_primary(r, b) != primaries[b];
            REQ(moved == (primaries[b] == member_id(gone)));
            REQ(r->buckets[b].term == terms[b] + (moved ? 1 : 0));
            changed += moved;
            terms[b] = r->buckets[b].term;
            primaries[b] = cmap_primary(r, b);
        }
        ck_assert_uint_eq(rep.promoted, changed);
        all_ready(m);
    }
    for (uint32_t b = 0; b < 113; b++)
        ck_assert_uint_eq(cmap_primary(r, b), member_id(0));
    cmap_free(m);
}
END_TEST

START_TEST(regions_are_independent)
{
    /* the load of one region does not steer another's placement */
    cmap_t *m = make_map(3);
    cmap_region *p = add_region(m, "p", "PARTITION", 0, 9);
    placement_fix(m, true, NULL);
    cmap_region *q = add_region(m, "q", "PARTITION", 0, 9);
    p = cmap_region_find(m, "p", 1); /* the regions array may have moved */
    placement_fix(m, true, NULL);
    uint32_t db, dp;
    spread(m, p, &db, &dp, NULL, NULL);
    ck_assert_uint_eq(dp, 0);
    spread(m, q, &db, &dp, NULL, NULL);
    ck_assert_uint_eq(dp, 0);
    for (uint32_t b = 0; b < 9; b++)
        ck_assert_uint_eq(cmap_primary(p, b), cmap_primary(q, b));
    cmap_free(m);
}
END_TEST

/* ---- a member leaving ------------------------------------------------------ */

START_TEST(cover_leaving)
{
    cmap_t *m = make_map(4);
    cmap_region *r = add_region(m, "r", "PARTITION_REDUNDANT", 1, 6);
    uint32_t L = member_id(0), a = member_id(1), b = member_id(2), c = member_id(3);
    set_bucket(&r->buckets[0], 1, (uint32_t[]){L, b}, NULL, 2);   /* ready copy elsewhere */
    set_bucket(&r->buckets[1], 1, (uint32_t[]){L}, NULL, 1);      /* only on L */
    set_bucket(&r->buckets[2], 1, (uint32_t[]){L, b}, (bool[]){false, true}, 2); /* being filled */
    set_bucket(&r->buckets[3], 1, (uint32_t[]){b, a}, NULL, 2);   /* not on L */
    set_bucket(&r->buckets[4], 1, (uint32_t[]){c, L}, NULL, 2);   /* L is a copy */
    /* bucket 5: empty */
    cmap_t *before = cmap_clone(m);
    uint32_t waiting = 99;
    /* the least loaded other member takes it: buckets, then primaries
     * (a: 1 bucket, 0 primaries; b: 3 and 1; c: 1 and 1) */
    ck_assert_uint_eq(placement_cover_leaving(m, L, &waiting), 1);
    ck_assert_uint_eq(waiting, 2); /* buckets 1 and 2 */
    const cmap_bucket *b1 = &r->buckets[1];
    ck_assert_uint_eq(b1->ncopies, 2);
    ck_assert_uint_eq(b1->copies[0].member_id, L); /* L stays primary until it goes */
    ck_assert_uint_eq(b1->copies[1].member_id, a);
    ck_assert(b1->copies[1].init);
    for (uint32_t i = 0; i < 6; i++) {
        if (i == 1)
            continue;
        const cmap_bucket *x = &r->buckets[i], *y = &before->regions[0].buckets[i];
        ck_assert_uint_eq(x->ncopies, y->ncopies);
        for (uint32_t j = 0; j < x->ncopies; j++) {
            ck_assert_uint_eq(x->copies[j].member_id, y->copies[j].member_id);
            ck_assert_int_eq(x->copies[j].init, y->copies[j].init);
        }
        ck_assert(x->term == y->term);
    }
    /* asked again while the copies fill: nothing new, still waiting */
    ck_assert_uint_eq(placement_cover_leaving(m, L, &waiting), 0);
    ck_assert_uint_eq(waiting, 2);
    ck_assert_uint_eq(r->buckets[1].ncopies, 2);
    /* once they are ready nothing waits; then L goes and its primaries are
     * promoted with no data lost */
    all_ready(m);
    ck_assert_uint_eq(placement_cover_leaving(m, L, &waiting), 0);
    ck_assert_uint_eq(waiting, 0);
    cmap_member_remove(m, L);
    placement_report rep = {0};
    ck_assert(placement_fix(m, false, &rep));
    ck_assert_uint_eq(rep.lost, 0);
    ck_assert_uint_eq(rep.promoted, 3);
    ck_assert_uint_eq(cmap_primary(r, 0), b);
    ck_assert_uint_eq(cmap_primary(r, 1), a);
    ck_assert_uint_eq(cmap_primary(r, 2), b);
    ck_assert_uint_eq(cmap_primary(r, 4), c);
    ck_assert(r->buckets[1].term == 2 && r->buckets[4].term == 1);
    cmap_free(before);
    cmap_free(m);
}
END_TEST

START_TEST(cover_leaving_nowhere_to_go)
{
    /* the leaving member is the only one: its buckets leave with it and
     * are in neither count */
    cmap_t *m = make_map(1);
    cmap_region *r = add_region(m, "r", "PARTITION_REDUNDANT", 1, 3);
    placement_fix(m, true, NULL);
    uint32_t waiting = 99;
    ck_assert_uint_eq(placement_cover_leaving(m, member_id(0), &waiting), 0);
    ck_assert_uint_eq(waiting, 0);
    for (uint32_t i = 0; i < 3; i++)
        ck_assert_uint_eq(r->buckets[i].ncopies, 1);
    /* a member that holds nothing: nothing to do */
    add_member(m, 5);
    ck_assert_uint_eq(placement_cover_leaving(m, 5, &waiting), 0);
    ck_assert_uint_eq(waiting, 0);
    /* with another member in the view, every bucket gets a copy there */
    ck_assert_uint_eq(placement_cover_leaving(m, member_id(0), &waiting), 3);
    ck_assert_uint_eq(waiting, 3);
    for (uint32_t i = 0; i < 3; i++)
        ck_assert_int_eq(cmap_role(r, i, 5), CMAP_INIT);
    cmap_free(m);
}
END_TEST

static Suite *placement_suite(void)
{
    Suite *s = suite_create("placement");
    TCase *tc = tu_tcase(s, "basics", 30);
    tcase_add_test(tc, replicated_types);
    tcase_add_test(tc, load_counts);
    tc = tu_tcase(s, "fresh", 60);
    tcase_add_test(tc, fresh_region_three_members);
    tcase_add_test(tc, fresh_region_is_balanced_at_scale);
    tcase_add_test(tc, choice_order);
    tcase_add_test(tc, deterministic);
    tcase_add_test(tc, idempotent);
    tcase_add_test(tc, single_member);
    tcase_add_test(tc, more_copies_than_members);
    tcase_add_test(tc, no_members);
    tcase_add_test(tc, without_adding_copies);
    tcase_add_test(tc, replicate_region_everywhere);
    tcase_add_test(tc, join_moves_nothing);
    tcase_add_test(tc, regions_are_independent);
    tc = tu_tcase(s, "loss", 30);
    tcase_add_test(tc, member_loss_promotes_copies);
    tcase_add_test(tc, promotion_skips_initializing_copies);
    tcase_add_test(tc, bucket_without_primary_gets_one);
    tcase_add_test(tc, losing_every_copy);
    tcase_add_test(tc, stale_copies_dropped);
    tcase_add_test(tc, successive_losses_keep_invariants);
    tc = tu_tcase(s, "leaving", 30);
    tcase_add_test(tc, cover_leaving);
    tcase_add_test(tc, cover_leaving_nowhere_to_go);
    return s;
}

int main(void)
{
    /* the "data is lost" errors placement logs are expected in these tests */
    log_open("/dev/null");
    Suite *s = placement_suite();
    return tu_run(&s, 1);
}
