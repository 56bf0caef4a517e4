/* Unit tests for region/tracker.h: per bucket, the highest event sequence
 * applied per client id, in a cache of TRACKER_SETS sets of TRACKER_WAYS
 * clients with least-recently-noted eviction within a set.
 *
 * Which set a client lands in is found by noting it in a fresh tracker and
 * looking where it went (the struct is public), not by copying the hash. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "region/tracker.h"
#include "tu.h"

#define REQ(cond)                                                                                  \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: assertion failed: %s", __FILE__, __LINE__, #cond);                \
    } while (0)

/* ---- helpers ------------------------------------------------------------ */

static int set_of_client(uint64_t client_id)
{
    tracker_t *t = NULL;
    REQ(tracker_note(&t, client_id, 1) == 0);
    REQ(t != NULL);
    int found = -1;
    for (int s = 0; s < TRACKER_SETS; s++)
        for (int w = 0; w < TRACKER_WAYS; w++)
            if (t->slot[s][w].client_id == client_id) {
                REQ(found == -1); /* in exactly one slot */
                found = s;
            }
    free(t);
    REQ(found >= 0);
    return found;
}

/* n distinct nonzero client ids that share one set, from start upwards. */
static int same_set_clients(uint64_t start, uint64_t *out, int n)
{
    int set = set_of_client(start);
    out[0] = start;
    int k = 1;
    for (uint64_t id = start + 1; k < n; id++)
        if (id != 0 && set_of_client(id) == set)
            out[k++] = id;
    return set;
}

static bool holds(const tracker_t *t, uint64_t client_id)
{
    for (int s = 0; s < TRACKER_SETS; s++)
        for (int w = 0; w < TRACKER_WAYS; w++)
            if (t->slot[s][w].client_id == client_id)
                return true;
    return false;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ---- tests ------------------------------------------------------------ */

START_TEST(empty_tracker)
{
    ck_assert(!tracker_is_dup(NULL, 1, 0));
    ck_assert(!tracker_is_dup(NULL, 1, UINT64_MAX));
    uint64_t pairs[4][2];
    ck_assert_uint_eq(tracker_export(NULL, pairs, 4), 0);
    /* client id 0 means "no event id": never recorded, never a duplicate,
     * and noting it allocates nothing */
    tracker_t *t = NULL;
    ck_assert_int_eq(tracker_note(&t, 0, 5), 0);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(tracker_note(&t, 9, 5), 0);
    ck_assert_ptr_nonnull(t);
    tracker_t *same = t;
    ck_assert_int_eq(tracker_note(&t, 0, 7), 0);
    ck_assert_ptr_eq(t, same);
    ck_assert(!tracker_is_dup(t, 0, 0));
    ck_assert(!tracker_is_dup(t, 0, 5));
    ck_assert_uint_eq(tracker_export(t, pairs, 4), 1);
    ck_assert(pairs[0][0] == 9 && pairs[0][1] == 5);
    free(t);
}
END_TEST

START_TEST(duplicates_and_newer)
{
    tracker_t *t = NULL;
    ck_assert(!tracker_is_dup(t, 42, 1));
    ck_assert_int_eq(tracker_note(&t, 42, 5), 0);
    ck_assert(tracker_is_dup(t, 42, 5));
    ck_assert(tracker_is_dup(t, 42, 4));
    ck_assert(tracker_is_dup(t, 42, 0));
    ck_assert(!tracker_is_dup(t, 42, 6));
    ck_assert(!tracker_is_dup(t, 42, UINT64_MAX));
    ck_assert(!tracker_is_dup(t, 43, 1)); /* another client */
    /* an older sequence noted (a reordered retry) does not lower it */
    ck_assert_int_eq(tracker_note(&t, 42, 3), 0);
    ck_assert(tracker_is_dup(t, 42, 5));
    ck_assert(!tracker_is_dup(t, 42, 6));
    /* a newer one raises it */
    ck_assert_int_eq(tracker_note(&t, 42, 10), 0);
    ck_assert(tracker_is_dup(t, 42, 10));
    ck_assert(tracker_is_dup(t, 42, 6));
    ck_assert(!tracker_is_dup(t, 42, 11));
    /* extremes */
    ck_assert_int_eq(tracker_note(&t, UINT64_MAX, UINT64_MAX), 0);
    ck_assert(tracker_is_dup(t, UINT64_MAX, UINT64_MAX));
    ck_assert(tracker_is_dup(t, UINT64_MAX, 0));
    ck_assert_int_eq(tracker_note(&t, 1, 0), 0);
    ck_assert(tracker_is_dup(t, 1, 0));
    ck_assert(!tracker_is_dup(t, 1, 1));
    uint64_t pairs[8][2];
    size_t n = tracker_export(t, pairs, 8);
    ck_assert_uint_eq(n, 3);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (pairs[i][0] == 42) {
            ck_assert(pairs[i][1] == 10);
            seen |= 1;
        } else if (pairs[i][0] == UINT64_MAX) {
            ck_assert(pairs[i][1] == UINT64_MAX);
            seen |= 2;
        } else if (pairs[i][0] == 1) {
            ck_assert(pairs[i][1] == 0);
            seen |= 4;
        }
    }
    ck_assert_int_eq(seen, 7);
    free(t);
}
END_TEST

START_TEST(sets_hold_four_clients)
{
    /* TRACKER_WAYS clients of one set all stay; one more evicts */
    uint64_t c[TRACKER_WAYS + 1];
    int set = same_set_clients(1000, c, TRACKER_WAYS + 1);
    tracker_t *t = NULL;
    for (int i = 0; i < TRACKER_WAYS; i++)
        ck_assert_int_eq(tracker_note(&t, c[i], 100 + i), 0);
    for (int i = 0; i < TRACKER_WAYS; i++) {
        ck_assert(tracker_is_dup(t, c[i], 100 + i));
        ck_assert(!tracker_is_dup(t, c[i], 101 + i));
    }
    for (int w = 0; w < TRACKER_WAYS; w++)
        ck_assert(t->slot[set][w].client_id != 0);
    ck_assert_int_eq(tracker_note(&t, c[TRACKER_WAYS], 7), 0);
    int kept = 0;
    for (int i = 0; i <= TRACKER_WAYS; i++)
        kept += holds(t, c[i]);
    ck_assert_int_eq(kept, TRACKER_WAYS);
    ck_assert(tracker_is_dup(t, c[TRACKER_WAYS], 7));
    free(t);
}
END_TEST

START_TEST(eviction_is_lru)
{
    uint64_t c[8];
    same_set_clients(77, c, 8);
    tracker_t *t = NULL;
    /* A B C D noted in order, then A again: B is the least recently noted */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(tracker_note(&t, c[i], 10), 0);
    ck_assert_int_eq(tracker_note(&t, c[0], 11), 0);
    ck_assert_int_eq(tracker_note(&t, c[4], 10), 0); /* E evicts B */
    ck_assert(!holds(t, c[1]));
    ck_assert(!tracker_is_dup(t, c[1], 10)); /* B's duplicate detection is gone */
    ck_assert(tracker_is_dup(t, c[0], 11));
    ck_assert(tracker_is_dup(t, c[2], 10));
    ck_assert(tracker_is_dup(t, c[3], 10));
    ck_assert(tracker_is_dup(t, c[4], 10));
    /* order now (oldest first): C D A E; F evicts C, G evicts D */
    ck_assert_int_eq(tracker_note(&t, c[5], 1), 0);
    ck_assert(!holds(t, c[2]));
    ck_assert(holds(t, c[3]));
    ck_assert_int_eq(tracker_note(&t, c[6], 1), 0);
    ck_assert(!holds(t, c[3]));
    ck_assert(holds(t, c[0]) && holds(t, c[4]) && holds(t, c[5]) && holds(t, c[6]));
    /* a note with an older sequence still counts as use: A is refreshed,
     * so H evicts E, not A */
    ck_assert_int_eq(tracker_note(&t, c[0], 1), 0);
    ck_assert_int_eq(tracker_note(&t, c[7], 1), 0);
    ck_assert(!holds(t, c[4]));
    ck_assert(holds(t, c[0]));
    ck_assert(tracker_is_dup(t, c[0], 11)); /* and kept its highest sequence */
    /* an evicted client comes back with whatever it notes now */
    ck_assert_int_eq(tracker_note(&t, c[1], 3), 0);
    ck_assert(tracker_is_dup(t, c[1], 3));
    ck_assert(!tracker_is_dup(t, c[1], 4));
    free(t);
}
END_TEST

START_TEST(lookups_do_not_refresh)
{
    /* tracker_is_dup is a read (const): it does not change eviction order */
    uint64_t c[5];
    same_set_clients(5000, c, 5);
    tracker_t *t = NULL;
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(tracker_note(&t, c[i], 1), 0);
    for (int k = 0; k < 10; k++)
        ck_assert(tracker_is_dup(t, c[0], 1));
    ck_assert_int_eq(tracker_note(&t, c[4], 1), 0);
    ck_assert(!holds(t, c[0]));
    ck_assert(holds(t, c[1]));
    free(t);
}
END_TEST

START_TEST(sets_are_independent)
{
    /* filling one set never evicts a client of another */
    uint64_t a[12], b[1];
    int sa = same_set_clients(1, a, 12);
    uint64_t id = 2;
    while (set_of_client(id) == sa)
        id++;
    b[0] = id;
    tracker_t *t = NULL;
    ck_assert_int_eq(tracker_note(&t, b[0], 9), 0);
    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(tracker_note(&t, a[i], 1), 0);
    ck_assert(tracker_is_dup(t, b[0], 9));
    uint64_t pairs[64][2];
    ck_assert_uint_eq(tracker_export(t, pairs, 64), 1 + TRACKER_WAYS);
    free(t);
}
END_TEST

START_TEST(capacity_and_spread)
{
    /* consecutive client ids spread over the sets: 256 of them fill most
     * of the 256 slots */
    tracker_t *t = NULL;
    for (uint64_t id = 1; id <= TRACKER_SETS * TRACKER_WAYS; id++)
        REQ(tracker_note(&t, id, id) == 0);
    uint64_t (*pairs)[2] = malloc(1024 * sizeof *pairs);
    size_t n = tracker_export(t, pairs, 1024);
    ck_assert_uint_ge(n, TRACKER_SETS * TRACKER_WAYS * 3 / 4);
    ck_assert_uint_le(n, TRACKER_SETS * TRACKER_WAYS);
    for (size_t i = 0; i < n; i++) {
        REQ(pairs[i][0] >= 1 && pairs[i][0] <= TRACKER_SETS * TRACKER_WAYS);
        REQ(pairs[i][1] == pairs[i][0]);
        REQ(tracker_is_dup(t, pairs[i][0], pairs[i][1]));
    }
    free(t);
    /* many random clients: every slot ends up used, and the last
     * TRACKER_WAYS clients noted in each set are exactly the ones kept */
    t = NULL;
    uint64_t seed = 0x243F6A8885A308D3ULL;
    enum { N = 20000 };
    uint64_t *ids = malloc(N * sizeof *ids);
    for (int i = 0; i < N; i++) {
        ids[i] = xorshift(&seed);
        REQ(tracker_note(&t, ids[i], (uint64_t)i + 1) == 0);
    }
    ck_assert_uint_eq(tracker_export(t, pairs, 1024), TRACKER_SETS * TRACKER_WAYS);
    int per_set[TRACKER_SETS] = {0};
    int expected_kept = 0;
    for (int i = N - 1; i >= 0; i--) {
        int s = set_of_client(ids[i]);
        bool should = per_set[s] < TRACKER_WAYS;
        per_set[s] += should;
        expected_kept += should;
        if (holds(t, ids[i]) != should)
            ck_abort_msg("client %d (set %d): kept %d, expected %d", i, s, !should, should);
        if (should)
            REQ(tracker_is_dup(t, ids[i], (uint64_t)i + 1) && !tracker_is_dup(t, ids[i], (uint64_t)i + 2));
    }
    ck_assert_int_eq(expected_kept, TRACKER_SETS * TRACKER_WAYS);
    free(ids);
    free(pairs);
    free(t);
}
END_TEST

START_TEST(export_respects_cap)
{
    tracker_t *t = NULL;
    for (uint64_t id = 1; id <= 40; id++)
        REQ(tracker_note(&t, id * 1000003, id) == 0);
    uint64_t pairs[64][2];
    size_t all = tracker_export(t, pairs, 64);
    ck_assert_uint_ge(all, 30);
    /* a cap below the count: exactly cap pairs, the first ones of a full export */
    uint64_t part[64][2];
    memset(part, 0xAB, sizeof part);
    ck_assert_uint_eq(tracker_export(t, part, 10), 10);
    ck_assert_mem_eq(part, pairs, 10 * sizeof pairs[0]);
    /* nothing written past the cap */
    uint64_t pattern[2];
    memset(pattern, 0xAB, sizeof pattern);
    ck_assert_mem_eq(part[10], pattern, sizeof pattern);
    ck_assert_uint_eq(tracker_export(t, part, 0), 0);
    ck_assert_uint_eq(tracker_export(t, part, 1), 1);
    /* no client exported twice, none of them 0 */
    for (size_t i = 0; i < all; i++) {
        ck_assert(pairs[i][0] != 0);
        for (size_t j = 0; j < i; j++)
            ck_assert(pairs[i][0] != pairs[j][0]);
    }
    free(t);
}
END_TEST

START_TEST(export_then_merge)
{
    /* a copy rebuilt from an export detects the same duplicates */
    tracker_t *src = NULL, *dst = NULL;
    uint64_t seed = 99;
    for (int i = 0; i < 150; i++)
        REQ(tracker_note(&src, xorshift(&seed), (uint64_t)i * 3 + 1) == 0);
    uint64_t pairs[TRACKER_SETS * TRACKER_WAYS][2];
    size_t n = tracker_export(src, pairs, TRACKER_SETS * TRACKER_WAYS);
    ck_assert_uint_gt(n, 100);
    /* the destination already knows a newer sequence for one client and
     * an older one for another */
    REQ(tracker_note(&dst, pairs[0][0], pairs[0][1] + 50) == 0);
    REQ(tracker_note(&dst, pairs[1][0], 0) == 0);
    for (size_t i = 0; i < n; i++)
        REQ(tracker_note(&dst, pairs[i][0], pairs[i][1]) == 0);
    for (size_t i = 0; i < n; i++) {
        uint64_t want = i == 0 ? pairs[0][1] + 50 : pairs[i][1];
        REQ(tracker_is_dup(dst, pairs[i][0], want));
        REQ(!tracker_is_dup(dst, pairs[i][0], want + 1));
    }
    free(src);
    free(dst);
}
END_TEST

static Suite *tracker_suite(void)
{
    Suite *s = suite_create("tracker");
    TCase *tc = tu_tcase(s, "tracker", 30);
    tcase_add_test(tc, empty_tracker);
    tcase_add_test(tc, duplicates_and_newer);
    tcase_add_test(tc, sets_hold_four_clients);
    tcase_add_test(tc, eviction_is_lru);
    tcase_add_test(tc, lookups_do_not_refresh);
    tcase_add_test(tc, sets_are_independent);
    tcase_add_test(tc, capacity_and_spread);
    tcase_add_test(tc, export_respects_cap);
    tcase_add_test(tc, export_then_merge);
    return s;
}

int main(void)
{
    Suite *s = tracker_suite();
    return tu_run(&s, 1);
}
