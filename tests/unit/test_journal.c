/* Unit tests for region/journal: events from a region's writes, seq order
 * with out-of-order replicated writes, eviction and complete_since, clear,
 * drop, image origin, batch reads, snapshots, and a writer racing a
 * reader (run under ASan/TSan-free builds for memory errors). */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "region/journal.h"
#include "region/region.h"
#include "tu.h"

#define MEMBER 7u

static region_t *mk(uint32_t buckets, bool clustered)
{
    region_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.name, sizeof(cfg.name), "j");
    cfg.type = REGION_PARTITION;
    cfg.total_num_buckets = buckets;
    region_t *r = region_new(&cfg, MEMBER);
    ck_assert_ptr_nonnull(r);
    if (clustered)
        region_set_clustered(r);
    return r;
}

static void put(region_t *r, const char *k, const char *v)
{
    ck_assert_int_eq(region_put(r, hash_key(k, strlen(k)), (const uint8_t *)k,
                                (uint32_t)strlen(k), true, (const uint8_t *)v,
                                (uint32_t)strlen(v), NULL),
                     0);
}

/* Reads every event of bucket after seq into evs (at most cap). */
static size_t read_all(journal_t *j, uint32_t b, uint64_t after, journal_event *evs, size_t cap,
                       buf_t *batch, journal_info *info)
{
    buf_reset(batch);
    long n = journal_read(j, b, after, cap, SIZE_MAX, batch, info);
    ck_assert_int_ge(n, 0);
    size_t off = 0, i = 0;
    while (i < cap && journal_next(batch, &off, &evs[i]))
        i++;
    ck_assert_uint_eq(i, (size_t)n);
    return i;
}

/* A journal that records from now on (as after a first CQ_OPEN). */
static journal_t *attach_armed(region_t *r, size_t bytes)
{
    journal_t *j = journal_attach(r, bytes);
    ck_assert_ptr_nonnull(j);
    journal_arm(j);
    ck_assert(journal_armed(j));
    return j;
}

/* Until armed, writes are not recorded (they cost one branch); arming
 * makes each bucket complete from its counter at that moment. */
START_TEST(records_only_once_armed)
{
    region_t *r = mk(1, false);
    journal_t *j = journal_attach(r, 1 << 16);
    ck_assert_ptr_nonnull(j);
    ck_assert(!journal_armed(j));
    put(r, "a", "1");
    put(r, "b", "2");
    buf_t batch;
    buf_init(&batch);
    journal_info info;
    ck_assert_int_eq(journal_read(j, 0, 0, 16, 1 << 20, &batch, &info), 0);
    journal_arm(j);
    journal_arm(j); /* idempotent */
    ck_assert_uint_eq(journal_complete_since(j, 0), info.counter);
    put(r, "c", "3");
    buf_reset(&batch);
    ck_assert_int_eq(journal_read(j, 0, 0, 16, 1 << 20, &batch, &info), 1);
    size_t off = 0;
    journal_event ev;
    ck_assert(journal_next(&batch, &off, &ev));
    ck_assert_uint_eq(ev.klen, 1);
    ck_assert_int_eq(ev.key[0], 'c');
    buf_free(&batch);
    region_free(r);
}
END_TEST

START_TEST(writes_are_events)
{
    region_t *r = mk(1, false);
    journal_t *j = attach_armed(r, 1 << 16);
    ck_assert_ptr_nonnull(j);
    ck_assert_ptr_eq(journal_find(r), j);
    put(r, "a", "1");
    put(r, "a", "22");
    put(r, "b", "3");
    ck_assert_int_eq(region_remove(r, hash_key("a", 1), (const uint8_t *)"a", 1), 1);
    buf_t batch;
    buf_init(&batch);
    journal_event ev[8];
    journal_info info;
    size_t n = read_all(j, 0, 0, ev, 8, &batch, &info);
    ck_assert_uint_eq(n, 4);
    ck_assert(info.serving);
    ck_assert_uint_eq(info.last, 4);
    ck_assert_uint_eq(info.complete_since, 0);
    ck_assert_uint_eq(ev[0].op, JOURNAL_PUT);
    ck_assert_ptr_null(ev[0].old_value);
    ck_assert_uint_eq(ev[1].op, JOURNAL_PUT);
    ck_assert_uint_eq(ev[1].old_vlen, 1);
    ck_assert_int_eq(memcmp(ev[1].old_value, "1", 1), 0);
    ck_assert_uint_eq(ev[1].new_vlen, 2);
    ck_assert_int_eq(memcmp(ev[1].new_value, "22", 2), 0);
    ck_assert_uint_eq(ev[3].op, JOURNAL_REMOVE);
    ck_assert_uint_eq(ev[3].klen, 1);
    ck_assert_int_eq(memcmp(ev[3].key, "a", 1), 0);
    ck_assert_int_eq(memcmp(ev[3].old_value, "22", 2), 0);
    ck_assert_ptr_null(ev[3].new_value);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(ev[i].seq, i + 1);
    /* a batch after a seq, bounded by count */
    buf_reset(&batch);
    ck_assert_int_eq(journal_read(j, 0, 2, 1, SIZE_MAX, &batch, &info), 1);
    size_t off = 0;
    ck_assert(journal_next(&batch, &off, &ev[0]));
    ck_assert_uint_eq(ev[0].seq, 3);
    ck_assert(!journal_next(&batch, &off, &ev[0]));
    /* by bytes: the first event always comes */
    buf_reset(&batch);
    ck_assert_int_eq(journal_read(j, 0, 0, 100, 1, &batch, &info), 1);
    buf_free(&batch);
    region_free(r);
}
END_TEST

START_TEST(clear_is_one_event)
{
    region_t *r = mk(1, false);
    journal_t *j = attach_armed(r, 1 << 16);
    put(r, "a", "1");
    put(r, "b", "2");
    ck_assert_uint_eq(region_clear(r), 2);
    buf_t batch;
    buf_init(&batch);
    journal_event ev[8];
    journal_info info;
    size_t n = read_all(j, 0, 0, ev, 8, &batch, &info);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(ev[2].op, JOURNAL_CLEAR);
    ck_assert_ptr_null(ev[2].key);
    ck_assert_uint_eq(ev[2].seq, 3);
    buf_free(&batch);
    region_free(r);
}
END_TEST

static region_op op_put(const char *k, const char *v, uint64_t counter)
{
    region_op op = {.kind = REGION_OP_PUT, .hash = hash_key(k, strlen(k)),
                    .key = (const uint8_t *)k, .klen = (uint32_t)strlen(k), .key_is_str = true,
                    .value = (const uint8_t *)v, .vlen = (uint32_t)strlen(v),
                    .counter = counter, .member_id = 9};
    return op;
}

START_TEST(replicated_out_of_order_sorted)
{
    region_t *r = mk(1, true);
    journal_t *j = attach_armed(r, 1 << 16);
    region_bucket_set_role(r, 0, ROLE_COPY, 1, 9, NULL, 0);
    static const uint64_t order[] = {10, 12, 11, 15, 13, 14, 9};
    char k[8];
    for (size_t i = 0; i < 7; i++) {
        snprintf(k, sizeof k, "k%llu", (unsigned long long)order[i]);
        region_op op = op_put(k, "v", order[i]);
        ck_assert_int_eq(region_replica_apply(r, 0, 1, &op), 0);
    }
    buf_t batch;
    buf_init(&batch);
    journal_event ev[16];
    journal_info info;
    size_t n = read_all(j, 0, 0, ev, 16, &batch, &info);
    ck_assert_uint_eq(n, 7);
    ck_assert(!info.serving); /* a copy: not served here */
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(ev[i].seq, 9 + i);
    ck_assert_uint_eq(info.last, 15);
    /* after 11: the rest, in order */
    n = read_all(j, 0, 11, ev, 16, &batch, &info);
    ck_assert_uint_eq(n, 4);
    ck_assert_uint_eq(ev[0].seq, 12);
    /* an image entry is state, not an event */
    region_op im = op_put("img", "v", 30);
    ck_assert_int_eq(region_image_apply(r, 0, &im), 0);
    n = read_all(j, 0, 15, ev, 16, &batch, &info);
    ck_assert_uint_eq(n, 0);
    /* promoted: served */
    region_bucket_set_role(r, 0, ROLE_PRIMARY, 2, MEMBER, NULL, 0);
    read_all(j, 0, 0, ev, 16, &batch, &info);
    ck_assert(info.serving);
    buf_free(&batch);
    region_free(r);
}
END_TEST

START_TEST(drop_and_image_start)
{
    region_t *r = mk(2, true);
    journal_t *j = attach_armed(r, 1 << 16);
    region_bucket_set_role(r, 1, ROLE_COPY, 1, 9, NULL, 0);
    region_op op = op_put("x", "v", 5);
    ck_assert_int_eq(region_replica_apply(r, 1, 1, &op), 0);
    ck_assert_uint_eq(journal_last(j, 1), 5);
    region_bucket_set_role(r, 1, ROLE_NONE, 1, 9, NULL, 0);
    region_bucket_drop(r, 1);
    buf_t batch;
    buf_init(&batch);
    journal_event ev[4];
    journal_info info;
    ck_assert_uint_eq(read_all(j, 1, 0, ev, 4, &batch, &info), 0);
    ck_assert_uint_eq(info.complete_since, UINT64_MAX);
    journal_image_start(j, 1, 40);
    ck_assert_uint_eq(journal_complete_since(j, 1), 40);
    ck_assert_uint_eq(journal_complete_since(j, 0), 0); /* the other bucket untouched */
    buf_free(&batch);
    region_free(r);
}
END_TEST

START_TEST(eviction_raises_complete_since)
{
    region_t *r = mk(1, false);
    journal_t *j = attach_armed(r, 2048);
    char v[100];
    memset(v, 'v', sizeof v - 1);
    v[sizeof v - 1] = 0;
    char k[16];
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "k%d", i);
        put(r, k, v);
    }
    ck_assert_uint_le(journal_bytes(j), 2048);
    buf_t batch;
    buf_init(&batch);
    journal_event ev[256];
    journal_info info;
    size_t n = read_all(j, 0, 0, ev, 256, &batch, &info);
    ck_assert_uint_gt(n, 5);
    ck_assert_uint_lt(n, 200);
    ck_assert_uint_eq(info.last, 200);
    /* exactly the events above complete_since are held */
    ck_assert_uint_eq(info.complete_since, 200 - n);
    ck_assert_uint_eq(ev[0].seq, info.complete_since + 1);
    ck_assert_uint_eq(ev[n - 1].seq, 200);
    /* an event larger than the whole budget: the journal empties itself */
    char *big = malloc(4096);
    memset(big, 'b', 4095);
    big[4095] = 0;
    put(r, "big", big);
    free(big);
    n = read_all(j, 0, 0, ev, 256, &batch, &info);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(info.complete_since, 201);
    ck_assert_uint_eq(info.last, 201);
    buf_free(&batch);
    region_free(r);
}
END_TEST

static int count_visit(void *arg, const entry_view *e)
{
    (void)e;
    (*(int *)arg)++;
    return 0;
}

START_TEST(snapshot_with_head)
{
    region_t *r = mk(1, false);
    journal_t *j = attach_armed(r, 1 << 16);
    put(r, "a", "1");
    put(r, "b", "1");
    int seen = 0;
    journal_info info;
    journal_snapshot(j, 0, count_visit, &seen, &info);
    ck_assert_int_eq(seen, 2);
    ck_assert_uint_eq(info.last, 2);
    region_free(r);
}
END_TEST

START_TEST(attach_to_filled_region)
{
    region_t *r = mk(1, false);
    put(r, "a", "1");
    put(r, "b", "1");
    journal_t *j = attach_armed(r, 1 << 16);
    /* its past was never journaled: complete only from here */
    ck_assert_uint_eq(journal_complete_since(j, 0), 2);
    ck_assert_uint_eq(journal_last(j, 0), 2);
    region_free(r);
}
END_TEST

/* ---- a writer racing a reader ---- */

#define RACE_WRITES 50000

static void *writer(void *arg)
{
    region_t *r = arg;
    char k[16], v[40];
    for (int i = 0; i < RACE_WRITES; i++) {
        snprintf(k, sizeof k, "k%d", i % 97);
        snprintf(v, sizeof v, "value-%d", i);
        put(r, k, v);
    }
    return NULL;
}

START_TEST(writer_and_reader)
{
    region_t *r = mk(1, false);
    journal_t *j = attach_armed(r, 8192);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, writer, r), 0);
    buf_t batch;
    buf_init(&batch);
    uint64_t cursor = 0, got = 0, gaps = 0;
    while (cursor < RACE_WRITES) {
        buf_reset(&batch);
        journal_info info;
        long n = journal_read(j, 0, cursor, 64, 4096, &batch, &info);
        ck_assert_int_ge(n, 0);
        if (cursor < info.complete_since) {
            gaps++;
            cursor = info.complete_since;
        }
        size_t off = 0;
        journal_event ev;
        while (journal_next(&batch, &off, &ev)) {
            if (ev.seq <= cursor)
                continue;
            ck_assert_uint_eq(ev.seq, cursor + 1); /* nothing above complete_since is missing */
            ck_assert_uint_eq(ev.op, JOURNAL_PUT);
            ck_assert_uint_ge(ev.new_vlen, 7);
            ck_assert_int_eq(memcmp(ev.new_value, "value-", 6), 0);
            /* seq i+1 wrote value-i */
            char num[40];
            ck_assert_uint_lt(ev.new_vlen, sizeof num);
            memcpy(num, ev.new_value + 6, ev.new_vlen - 6);
            num[ev.new_vlen - 6] = 0;
            ck_assert_uint_eq(strtoull(num, NULL, 10) + 1, ev.seq);
            cursor = ev.seq;
            got++;
        }
    }
    pthread_join(t, NULL);
    ck_assert_uint_eq(cursor, RACE_WRITES);
    ck_assert_uint_gt(got, 0);
    ck_assert_uint_le(journal_bytes(j), 8192);
    (void)gaps; /* how many depends on scheduling; each was seen, never silent */
    buf_free(&batch);
    region_free(r);
}
END_TEST

static Suite *journal_suite(void)
{
    Suite *s = suite_create("journal");
    TCase *tc = tu_tcase(s, "journal", 60);
    tcase_add_test(tc, records_only_once_armed);
    tcase_add_test(tc, writes_are_events);
    tcase_add_test(tc, clear_is_one_event);
    tcase_add_test(tc, replicated_out_of_order_sorted);
    tcase_add_test(tc, drop_and_image_start);
    tcase_add_test(tc, eviction_raises_complete_since);
    tcase_add_test(tc, snapshot_with_head);
    tcase_add_test(tc, attach_to_filled_region);
    tcase_add_test(tc, writer_and_reader);
    return s;
}

int main(void)
{
    Suite *s = journal_suite();
    return tu_run(&s, 1);
}
