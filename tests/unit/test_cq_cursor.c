/* Unit tests for client/cq_cursor.h: a continuous query's per-bucket
 * cursor (coverage at open, duplicates, gaps on replay, progress). */
#include <check.h>
#include <stdint.h>

#include "client/cq_cursor.h"
#include "tu.h"

START_TEST(init_bounds)
{
    cq_cursor k;
    ck_assert_int_eq(cq_cursor_init(&k, 0), -1);
    ck_assert_int_eq(cq_cursor_init(&k, 65537), -1);
    ck_assert_int_eq(cq_cursor_init(&k, 65536), 0);
    ck_assert_uint_eq(k.nbuckets, 65536);
    ck_assert_uint_eq(k.last[65535], 0);
    cq_cursor_free(&k);
    cq_cursor_free(&k); /* twice is harmless */
}
END_TEST

START_TEST(coverage_exactly_once)
{
    cq_cursor k;
    ck_assert_int_eq(cq_cursor_init(&k, 4), 0);
    /* two members split the buckets */
    ck_assert(cq_cursor_head(&k, 0, 10));
    ck_assert(cq_cursor_head(&k, 1, 0));
    ck_assert(cq_cursor_head(&k, 3, 7));
    ck_assert_int_eq(cq_cursor_uncovered(&k), 2); /* bucket 2 missing */
    /* counts were reset: a second round with 2 twice */
    for (uint32_t b = 0; b < 4; b++)
        ck_assert(cq_cursor_head(&k, b, 1));
    ck_assert(cq_cursor_head(&k, 2, 5));
    ck_assert_int_eq(cq_cursor_uncovered(&k), 2);
    for (uint32_t b = 0; b < 4; b++)
        ck_assert(cq_cursor_head(&k, b, b));
    ck_assert_int_eq(cq_cursor_uncovered(&k), -1);
    ck_assert(!cq_cursor_head(&k, 4, 1)); /* not a bucket of the region */
    cq_cursor_free(&k);
}
END_TEST

START_TEST(duplicates_dropped)
{
    cq_cursor k;
    ck_assert_int_eq(cq_cursor_init(&k, 2), 0);
    cq_cursor_head(&k, 0, 5);
    cq_cursor_head(&k, 1, 0);
    ck_assert_int_eq(cq_cursor_event(&k, 0, 5), CQ_DUPLICATE); /* at the head */
    ck_assert_int_eq(cq_cursor_event(&k, 0, 4), CQ_DUPLICATE);
    ck_assert_int_eq(cq_cursor_event(&k, 0, 6), CQ_DELIVER);
    ck_assert_int_eq(cq_cursor_event(&k, 0, 6), CQ_DUPLICATE);
    ck_assert_int_eq(cq_cursor_event(&k, 0, 9), CQ_DELIVER);
    ck_assert_int_eq(cq_cursor_event(&k, 1, 1), CQ_DELIVER); /* buckets are independent */
    ck_assert_int_eq(cq_cursor_event(&k, 2, 1), CQ_BAD_BUCKET);
    /* a new primary of term 1 counts from 1 << 32 */
    ck_assert_int_eq(cq_cursor_event(&k, 0, (1ull << 32) + 1), CQ_DELIVER);
    ck_assert_int_eq(cq_cursor_event(&k, 0, 9), CQ_DUPLICATE);
    cq_cursor_free(&k);
}
END_TEST

START_TEST(replay_gap_only_above_cursor)
{
    cq_cursor k;
    ck_assert_int_eq(cq_cursor_init(&k, 1), 0);
    cq_cursor_head(&k, 0, 10);
    ck_assert_int_eq(cq_cursor_replay(&k, 0, 0), 0);  /* whole history: no gap */
    ck_assert_int_eq(cq_cursor_replay(&k, 0, 10), 0); /* exactly where we are */
    ck_assert_int_eq(cq_cursor_replay(&k, 0, 11), 1); /* 11 may be lost */
    /* a gap does not move the cursor: older events may still come */
    ck_assert_int_eq(cq_cursor_event(&k, 0, 11), CQ_DELIVER);
    ck_assert_int_eq(cq_cursor_replay(&k, 0, 11), 0);
    ck_assert_int_eq(cq_cursor_replay(&k, 0, UINT64_MAX), 1);
    ck_assert_int_eq(cq_cursor_replay(&k, 1, 0), CQ_BAD_BUCKET);
    cq_cursor_free(&k);
}
END_TEST

START_TEST(progress_raises_only)
{
    cq_cursor k;
    ck_assert_int_eq(cq_cursor_init(&k, 1), 0);
    ck_assert_int_eq(cq_cursor_progress(&k, 0, 20), 0);
    ck_assert_uint_eq(k.last[0], 20);
    ck_assert_int_eq(cq_cursor_progress(&k, 0, 3), 0);
    ck_assert_uint_eq(k.last[0], 20);
    /* judged events replayed by a new primary are duplicates */
    ck_assert_int_eq(cq_cursor_event(&k, 0, 20), CQ_DUPLICATE);
    ck_assert_int_eq(cq_cursor_replay(&k, 0, 15), 0);
    ck_assert_int_eq(cq_cursor_progress(&k, 1, 3), CQ_BAD_BUCKET);
    cq_cursor_free(&k);
}
END_TEST

static Suite *cq_cursor_suite(void)
{
    Suite *s = suite_create("cq_cursor");
    TCase *tc = tu_tcase(s, "cursor", 30);
    tcase_add_test(tc, init_bounds);
    tcase_add_test(tc, coverage_exactly_once);
    tcase_add_test(tc, duplicates_dropped);
    tcase_add_test(tc, replay_gap_only_above_cursor);
    tcase_add_test(tc, progress_raises_only);
    return s;
}

int main(void)
{
    Suite *s = cq_cursor_suite();
    return tu_run(&s, 1);
}
