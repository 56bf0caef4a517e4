/* Unit tests for server/qsbr.h and server/registry.h: reclamation only after
 * every online reader went offline, and lock-free lookups racing with
 * create/destroy (meant to run under AddressSanitizer, which turns a
 * premature free into a heap-use-after-free report). */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "server/qsbr.h"
#include "server/registry.h"
#include "tu.h"

/* ---- qsbr ---- */

static int freed_count;
static void count_free(void *p)
{
    freed_count++;
    free(p);
}

START_TEST(qsbr_all_offline_frees_at_once)
{
    qsbr_t *q = qsbr_new(2);
    ck_assert_ptr_nonnull(q);
    freed_count = 0;
    qsbr_retire(q, malloc(16), count_free);
    qsbr_retire(q, malloc(16), count_free);
    ck_assert_uint_eq(qsbr_reclaim(q), 2);
    ck_assert_int_eq(freed_count, 2);
    ck_assert_uint_eq(qsbr_reclaim(q), 0);
    qsbr_free(q);
}
END_TEST

START_TEST(qsbr_waits_for_every_online_reader)
{
    qsbr_t *q = qsbr_new(2);
    freed_count = 0;
    qsbr_online(q, 0);
    qsbr_online(q, 1);
    qsbr_retire(q, malloc(16), count_free);
    ck_assert_uint_eq(qsbr_reclaim(q), 0);
    qsbr_offline(q, 0);
    ck_assert_uint_eq(qsbr_reclaim(q), 0); /* slot 1 is still inside */
    ck_assert_int_eq(freed_count, 0);
    qsbr_online(q, 0); /* slot 0 re-entering does not matter any more */
    ck_assert_uint_eq(qsbr_reclaim(q), 0);
    qsbr_offline(q, 1);
    ck_assert_uint_eq(qsbr_reclaim(q), 1);
    ck_assert_int_eq(freed_count, 1);
    qsbr_offline(q, 0);
    qsbr_free(q);
}
END_TEST

START_TEST(qsbr_offline_then_online_again_counts)
{
    /* a reader that went offline and came back online since the retire
     * cannot hold the old pointer: the object may go */
    qsbr_t *q = qsbr_new(2);
    freed_count = 0;
    qsbr_online(q, 0);
    qsbr_retire(q, malloc(16), count_free);
    qsbr_offline(q, 0);
    qsbr_online(q, 0);
    ck_assert_uint_eq(qsbr_reclaim(q), 1);
    /* an object retired while slot 0 is online again waits for it */
    qsbr_retire(q, malloc(16), count_free);
    ck_assert_uint_eq(qsbr_reclaim(q), 0);
    qsbr_offline(q, 0);
    ck_assert_uint_eq(qsbr_reclaim(q), 1);
    ck_assert_int_eq(freed_count, 2);
    qsbr_free(q);
}
END_TEST

START_TEST(qsbr_offline_reader_does_not_block)
{
    qsbr_t *q = qsbr_new(3);
    freed_count = 0;
    qsbr_online(q, 2); /* only slot 2 is online */
    qsbr_retire(q, malloc(8), count_free);
    qsbr_online(q, 0); /* slot 0 comes online after the retire: irrelevant */
    ck_assert_uint_eq(qsbr_reclaim(q), 0);
    qsbr_offline(q, 2);
    ck_assert_uint_eq(qsbr_reclaim(q), 1);
    qsbr_offline(q, 0);
    qsbr_free(q);
}
END_TEST

START_TEST(qsbr_free_releases_pending)
{
    qsbr_t *q = qsbr_new(1);
    freed_count = 0;
    qsbr_online(q, 0);
    for (int i = 0; i < 10; i++)
        qsbr_retire(q, malloc(32), count_free);
    ck_assert_uint_eq(qsbr_reclaim(q), 0);
    qsbr_offline(q, 0);
    qsbr_free(q); /* frees the 10 (LeakSanitizer checks) */
    ck_assert_int_eq(freed_count, 10);
    qsbr_free(NULL);
}
END_TEST

/* ---- registry ---- */

static region_config cfg_of(const char *name, region_type t)
{
    region_config c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "%s", name);
    c.type = t;
    c.redundant_copies = region_type_default_copies(t);
    c.total_num_buckets = 13;
    return c;
}

static region_t *find(registry_t *reg, const char *name)
{
    return registry_find(reg, (const uint8_t *)name, strlen(name));
}

START_TEST(registry_create_find_destroy)
{
    qsbr_t *q = qsbr_new(1);
    registry_t *reg = registry_new(q, 77);
    ck_assert_ptr_nonnull(reg);
    ck_assert_ptr_null(find(reg, "orders"));
    ck_assert_uint_eq(registry_view_count(registry_snapshot(reg)), 0);
    region_type existing = REGION_TYPE_COUNT;
    region_config c = cfg_of("orders", REGION_PARTITION);
    ck_assert_int_eq(registry_create(reg, &c, 0, &existing), REG_CREATED);
    region_t *r = find(reg, "orders");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(region_cfg(r)->name, "orders");
    /* the region stamps the registry's member id */
    entry_version v;
    ck_assert_int_eq(region_put(r, hash_key("k", 1), (const uint8_t *)"k", 1, true,
                                (const uint8_t *)"\xc0", 1, &v),
                     0);
    ck_assert_uint_eq(v.member_id, 77);
    /* names are exact: no prefix, no case folding */
    ck_assert_ptr_null(find(reg, "order"));
    ck_assert_ptr_null(find(reg, "orders2"));
    ck_assert_ptr_null(find(reg, "Orders"));
    ck_assert_ptr_null(registry_find(reg, (const uint8_t *)"orders", 5));
    ck_assert_int_eq(registry_destroy(reg, (const uint8_t *)"orders", 6), 0);
    ck_assert_ptr_null(find(reg, "orders"));
    ck_assert_int_eq(registry_destroy(reg, (const uint8_t *)"orders", 6), -ENOENT);
    ck_assert_uint_ge(qsbr_reclaim(q), 2); /* the region and old views */
    registry_free(reg);
    qsbr_free(q);
}
END_TEST

START_TEST(registry_if_not_exists)
{
    qsbr_t *q = qsbr_new(1);
    registry_t *reg = registry_new(q, 1);
    region_type existing = REGION_TYPE_COUNT;
    region_config c = cfg_of("r", REGION_REPLICATE);
    ck_assert_int_eq(registry_create(reg, &c, 1, &existing), REG_CREATED);
    region_t *first = find(reg, "r");
    /* again, without if_not_exists: -EEXIST, type reported */
    ck_assert_int_eq(registry_create(reg, &c, 0, &existing), -EEXIST);
    ck_assert_int_eq(existing, REGION_REPLICATE);
    /* with if_not_exists and the same type: fine, same region kept */
    ck_assert_int_eq(registry_create(reg, &c, 1, &existing), REG_EXISTED);
    ck_assert_ptr_eq(find(reg, "r"), first);
    /* with if_not_exists but another type: still -EEXIST */
    region_config other = cfg_of("r", REGION_PARTITION);
    existing = REGION_TYPE_COUNT;
    ck_assert_int_eq(registry_create(reg, &other, 1, &existing), -EEXIST);
    ck_assert_int_eq(existing, REGION_REPLICATE);
    ck_assert_int_eq(region_cfg(find(reg, "r"))->type, REGION_REPLICATE);
    ck_assert_uint_eq(registry_view_count(registry_snapshot(reg)), 1);
    registry_free(reg);
    qsbr_free(q);
}
END_TEST

START_TEST(registry_many_in_creation_order)
{
    qsbr_t *q = qsbr_new(1);
    registry_t *reg = registry_new(q, 1);
    region_type ex;
    char name[32];
    const int N = 300;
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "region-%d", i);
        region_config c = cfg_of(name, REGION_PARTITION);
        ck_assert_int_eq(registry_create(reg, &c, 0, &ex), REG_CREATED);
        if (i % 50 == 0)
            qsbr_reclaim(q);
    }
    const registry_view *v = registry_snapshot(reg);
    ck_assert_uint_eq(registry_view_count(v), N);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "region-%d", i);
        ck_assert_str_eq(region_cfg(registry_view_at(v, (size_t)i))->name, name);
        ck_assert_ptr_eq(find(reg, name), registry_view_at(v, (size_t)i));
    }
    /* destroy every third; the rest keep their relative order */
    for (int i = 0; i < N; i += 3) {
        snprintf(name, sizeof(name), "region-%d", i);
        ck_assert_int_eq(registry_destroy(reg, (const uint8_t *)name, strlen(name)), 0);
    }
    v = registry_snapshot(reg);
    ck_assert_uint_eq(registry_view_count(v), N - N / 3);
    size_t k = 0;
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "region-%d", i);
        if (i % 3 == 0) {
            ck_assert_ptr_null(find(reg, name));
            continue;
        }
        ck_assert_str_eq(region_cfg(registry_view_at(v, k++))->name, name);
        ck_assert_ptr_nonnull(find(reg, name));
    }
    qsbr_reclaim(q);
    registry_free(reg); /* frees the remaining regions (LeakSanitizer checks) */
    qsbr_free(q);
}
END_TEST

/* A reader (slot 0) holds a region found while online; another thread's
 * destroy must not free it before the reader goes offline. Under ASan a
 * premature free makes the reader's region_put a use-after-free. */
START_TEST(destroy_waits_for_reader)
{
    qsbr_t *q = qsbr_new(2);
    registry_t *reg = registry_new(q, 1);
    region_type ex;
    region_config c = cfg_of("held", REGION_PARTITION);
    ck_assert_int_eq(registry_create(reg, &c, 0, &ex), REG_CREATED);
    qsbr_reclaim(q);

    qsbr_online(q, 0);
    const registry_view *view = registry_snapshot(reg);
    region_t *r = find(reg, "held");
    ck_assert_ptr_nonnull(r);
    /* slot 1: the writer, online while it works like a server worker */
    qsbr_online(q, 1);
    ck_assert_int_eq(registry_destroy(reg, (const uint8_t *)"held", 4), 0);
    qsbr_offline(q, 1);
    ck_assert_uint_eq(qsbr_reclaim(q), 0);
    /* the reader still uses both the region and the old snapshot */
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(region_put(r, (uint64_t)i, (const uint8_t *)&i, sizeof(i), false,
                                    (const uint8_t *)"\xc0", 1, NULL),
                         0);
    ck_assert_uint_eq(region_size(r), 100);
    ck_assert_uint_eq(registry_view_count(view), 1);
    ck_assert_ptr_eq(registry_view_at(view, 0), r);
    qsbr_offline(q, 0);
    ck_assert_uint_ge(qsbr_reclaim(q), 2); /* the old view and the region */
    registry_free(reg);
    qsbr_free(q);
}
END_TEST

/* ---- concurrency ---- */

#define READERS 4
#define NAMES 16

typedef struct race {
    qsbr_t *q;
    registry_t *reg;
    atomic_int stop;
    atomic_long lookups, hits;
} race;

typedef struct reader_arg {
    race *rc;
    int slot;
} reader_arg;

static void *reader_main(void *p)
{
    reader_arg *a = p;
    race *rc = a->rc;
    char name[16];
    unsigned seed = (unsigned)a->slot * 7919u + 1;
    long lookups = 0, hits = 0;
    while (!atomic_load(&rc->stop)) {
        qsbr_online(rc->q, a->slot);
        for (int i = 0; i < 50; i++) {
            seed = seed * 1103515245u + 12345u;
            snprintf(name, sizeof(name), "n%u", (seed >> 8) % NAMES);
            region_t *r = find(rc->reg, name);
            lookups++;
            if (r) {
                hits++;
                uint64_t h = seed;
                region_put(r, h, (const uint8_t *)&h, sizeof(h), false, (const uint8_t *)"\x01", 1,
                           NULL);
                region_contains(r, h, (const uint8_t *)&h, sizeof(h));
                ck_assert_str_eq(region_cfg(r)->name, name);
            }
            const registry_view *v = registry_snapshot(rc->reg);
            size_t n = registry_view_count(v);
            for (size_t k = 0; k < n; k++)
                (void)region_size(registry_view_at(v, k));
        }
        qsbr_offline(rc->q, a->slot);
    }
    atomic_fetch_add(&rc->lookups, lookups);
    atomic_fetch_add(&rc->hits, hits);
    return NULL;
}

START_TEST(concurrent_lookups_during_create_destroy)
{
    race rc;
    rc.q = qsbr_new(READERS + 1);
    rc.reg = registry_new(rc.q, 9);
    atomic_init(&rc.stop, 0);
    atomic_init(&rc.lookups, 0);
    atomic_init(&rc.hits, 0);
    pthread_t th[READERS];
    reader_arg args[READERS];
    for (int i = 0; i < READERS; i++) {
        args[i].rc = &rc;
        args[i].slot = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader_main, &args[i]), 0);
    }
    /* the writer (slot READERS) creates and destroys regions like a worker
     * handling REGION_CREATE / REGION_DESTROY, and reclaims like the main
     * thread's timer */
    const int writer = READERS;
    char name[16];
    region_type ex;
    unsigned seed = 99;
    int64_t end = tu_now_ms() + 1500;
    int ops = 0;
    size_t freed = 0;
    while (tu_now_ms() < end || ops < 2000) {
        seed = seed * 1103515245u + 12345u;
        snprintf(name, sizeof(name), "n%u", (seed >> 8) % NAMES);
        qsbr_online(rc.q, writer);
        if (seed & 0x10000) {
            region_config c = cfg_of(name, REGION_PARTITION);
            int r = registry_create(rc.reg, &c, 1, &ex);
            ck_assert(r == REG_CREATED || r == REG_EXISTED);
        } else {
            int r = registry_destroy(rc.reg, (const uint8_t *)name, strlen(name));
            ck_assert(r == 0 || r == -ENOENT);
        }
        qsbr_offline(rc.q, writer);
        if (++ops % 8 == 0)
            freed += qsbr_reclaim(rc.q);
        if (ops > 200000)
            break;
    }
    atomic_store(&rc.stop, 1);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    freed += qsbr_reclaim(rc.q);
    ck_assert_uint_gt(freed, 0);
    ck_assert_int_gt(atomic_load(&rc.lookups), 1000);
    ck_assert_int_gt(atomic_load(&rc.hits), 0);
    registry_free(rc.reg);
    qsbr_free(rc.q);
}
END_TEST

static Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tu_tcase(s, "qsbr", 30);
    tcase_add_test(tc, qsbr_all_offline_frees_at_once);
    tcase_add_test(tc, qsbr_waits_for_every_online_reader);
    tcase_add_test(tc, qsbr_offline_then_online_again_counts);
    tcase_add_test(tc, qsbr_offline_reader_does_not_block);
    tcase_add_test(tc, qsbr_free_releases_pending);
    tc = tu_tcase(s, "registry", 30);
    tcase_add_test(tc, registry_create_find_destroy);
    tcase_add_test(tc, registry_if_not_exists);
    tcase_add_test(tc, registry_many_in_creation_order);
    tcase_add_test(tc, destroy_waits_for_reader);
    tc = tu_tcase(s, "concurrency", 120);
    tcase_add_test(tc, concurrent_lookups_during_create_destroy);
    return s;
}

int main(void)
{
    Suite *s = registry_suite();
    return tu_run(&s, 1);
}
