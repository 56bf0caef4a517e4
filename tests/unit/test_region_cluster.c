/* Unit tests for the cluster side of a region (region/region.h, "Clusters";
 * region/region_cluster.c): bucket roles, writes at the primary and their
 * outcomes, version counters from term << 32, replicated writes at copies
 * (newer only, older terms refused), tombstones and their purge, clears and
 * the clear floor, and an image transfer between two regions. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "region/region.h"
#include "region/tracker.h"
#include "tu.h"

#define REQ(cond)                                                                                  \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: assertion failed: %s", __FILE__, __LINE__, #cond);                \
    } while (0)

#define NBUCKETS 7
#define ME 11    /* this member */
#define OTHER 22 /* another member */
/* Replication targets of a primary. Tests give every primary a copy:
 * without one, region_primary_write runs into the undefined behaviour
 * write_without_copies reproduces (an abort under UBSan). */
#define COPIES (const uint32_t[]){44}, 1

/* ---- helpers ------------------------------------------------------------ */

static region_t *new_region(region_type type, uint32_t nbuckets, uint32_t member)
{
    region_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.name, sizeof cfg.name, "r");
    cfg.type = type;
    cfg.redundant_copies = region_type_default_copies(type);
    cfg.total_num_buckets = nbuckets;
    const char *why = NULL;
    ck_assert_int_eq(region_config_check(&cfg, &why), 0);
    region_t *r = region_new(&cfg, member);
    ck_assert_ptr_nonnull(r);
    region_set_clustered(r);
    return r;
}

static region_t *new_partitioned(uint32_t member) { return new_region(REGION_PARTITION_REDUNDANT, NBUCKETS, member); }

/* The n-th key (of the form "k<i>") that falls in bucket b of r. */
static const char *key_in(region_t *r, uint32_t b, int n, char *buf, size_t cap)
{
    for (int i = 0;; i++) {
        snprintf(buf, cap, "k%d", i);
        if (region_bucket_of(r, hash_key(buf, strlen(buf))) == b && n-- == 0)
            return buf;
    }
}

static region_op put_op(const char *key, const char *value, uint64_t client, uint64_t seq)
{
    region_op op;
    memset(&op, 0, sizeof op);
    op.kind = REGION_OP_PUT;
    op.key = (const uint8_t *)key;
    op.klen = (uint32_t)strlen(key);
    op.key_is_str = true;
    op.hash = hash_key(key, op.klen);
    op.value = (const uint8_t *)value;
    op.vlen = (uint32_t)strlen(value);
    op.client_id = client;
    op.seq = seq;
    return op;
}

static region_op remove_op(const char *key, uint64_t client, uint64_t seq)
{
    region_op op = put_op(key, "", client, seq);
    op.kind = REGION_OP_REMOVE;
    op.value = NULL;
    op.vlen = 0;
    return op;
}

/* A replicated op as a copy receives it: version given. */
static region_op at(region_op op, uint64_t counter, uint32_t member)
{
    op.counter = counter;
    op.member_id = member;
    return op;
}

static region_write_result write_at_primary(region_t *r, region_op *op, bool serving)
{
    region_write_result out;
    memset(&out, 0xEE, sizeof out);
    region_primary_write(r, op, serving, &out);
    return out;
}

static region_write_result clear_at_primary(region_t *r, uint32_t bucket, uint64_t client, uint64_t seq)
{
    region_op op;
    memset(&op, 0, sizeof op);
    op.kind = REGION_OP_CLEAR;
    op.client_id = client;
    op.seq = seq;
    region_write_result out;
    memset(&out, 0, sizeof out);
    out.bucket = bucket;
    region_primary_write(r, &op, true, &out);
    return out;
}

typedef struct got {
    char value[256];
    uint32_t vlen;
    entry_version ver;
    bool tomb;
} got;

static int copy_entry(void *arg, const entry_view *e)
{
    got *g = arg;
    REQ(e->vlen < sizeof g->value);
    memcpy(g->value, e->value, e->vlen);
    g->value[e->vlen] = 0;
    g->vlen = e->vlen;
    g->ver = e->version;
    g->tomb = e->tomb;
    return 0;
}

/* The live value of key ("" and counter 0 when absent). */
static got get(region_t *r, const char *key)
{
    got g;
    memset(&g, 0, sizeof g);
    region_get(r, hash_key(key, strlen(key)), (const uint8_t *)key, (uint32_t)strlen(key), copy_entry, &g);
    return g;
}

static bool has(region_t *r, const char *key)
{
    return region_contains(r, hash_key(key, strlen(key)), (const uint8_t *)key, (uint32_t)strlen(key));
}

/* Every entry (tombstones too) of one bucket, through image pages. */
typedef struct ientry {
    char key[64];
    uint32_t klen;
    bool key_is_str;
    char value[256];
    uint32_t vlen;
    entry_version ver;
    bool tomb;
} ientry;

typedef struct ilist {
    ientry e[512];
    int n;
    int stop_after; /* >0: the visitor answers 7 after this many entries */
} ilist;

static int collect(void *arg, const entry_view *e)
{
    ilist *l = arg;
    if (l->stop_after && l->n == l->stop_after)
        return 7;
    REQ(l->n < 512);
    ientry *x = &l->e[l->n++];
    REQ(e->klen < sizeof x->key && e->vlen < sizeof x->value);
    memcpy(x->key, e->key, e->klen);
    x->key[e->klen] = 0;
    x->klen = e->klen;
    x->key_is_str = e->key_is_str;
    memcpy(x->value, e->value, e->vlen);
    x->vlen = e->vlen;
    x->ver = e->version;
    x->tomb = e->tomb;
    return 0;
}

/* Pages through a bucket's image; returns the number of pages and sets
 * *largest (if not NULL) to the most entries one page held. */
static int scan_bucket_pages(region_t *r, uint32_t bucket, uint32_t limit, size_t max_bytes, ilist *l,
                             int *largest)
{
    region_page_bound bound = {.limit = limit, .max_bytes = max_bytes, .per_entry = 32, .with_values = true};
    uint64_t cursor = 0;
    int pages = 0;
    do {
        int before = l->n;
        uint64_t next = 0;
        REQ(region_image_scan(r, bucket, cursor, &bound, collect, l, &next) == 0);
        pages++;
        REQ(next == 0 || next > cursor);
        REQ(next == 0 || l->n > before); /* a page that is not the last one is not empty */
        if (largest && l->n - before > *largest)
            *largest = l->n - before;
        cursor = next;
        REQ(pages < 10000);
    } while (cursor);
    return pages;
}

static int scan_bucket(region_t *r, uint32_t bucket, uint32_t limit, size_t max_bytes, ilist *l)
{
    return scan_bucket_pages(r, bucket, limit, max_bytes, l, NULL);
}

static const ientry *find_ientry(const ilist *l, const char *key)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->e[i].key, key) == 0)
            return &l->e[i];
    return NULL;
}

/* ---- roles ------------------------------------------------------------- */

START_TEST(roles)
{
    region_t *r = new_partitioned(ME);
    ck_assert(region_clustered(r));
    for (uint32_t b = 0; b < NBUCKETS; b++) {
        ck_assert_int_eq(region_bucket_role(r, b), ROLE_NONE);
        ck_assert_uint_eq(region_bucket_primary(r, b), 0);
        ck_assert_uint_eq(region_bucket_inflight(r, b), 0);
    }
    ck_assert_int_eq(region_bucket_set_role(r, 2, ROLE_INIT, 1, OTHER, NULL, 0), ROLE_NONE);
    ck_assert_int_eq(region_bucket_role(r, 2), ROLE_INIT);
    ck_assert_uint_eq(region_bucket_primary(r, 2), OTHER);
    ck_assert_int_eq(region_bucket_set_role(r, 2, ROLE_COPY, 1, OTHER, NULL, 0), ROLE_INIT);
    ck_assert_int_eq(region_bucket_set_role(r, 2, ROLE_PRIMARY, 2, ME, (uint32_t[]){OTHER}, 1), ROLE_COPY);
    ck_assert_int_eq(region_bucket_role(r, 2), ROLE_PRIMARY);
    ck_assert_uint_eq(region_bucket_primary(r, 2), ME);
    ck_assert_int_eq(region_bucket_set_role(r, 2, ROLE_NONE, 3, OTHER, NULL, 0), ROLE_PRIMARY);
    ck_assert_int_eq(region_bucket_role(r, 2), ROLE_NONE);
    /* other buckets untouched */
    ck_assert_int_eq(region_bucket_role(r, 1), ROLE_NONE);
    ck_assert_int_eq(region_bucket_role(r, 3), ROLE_NONE);
    /* a non-clustered region says so */
    region_config cfg = *region_cfg(r);
    region_t *plain = region_new(&cfg, ME);
    ck_assert(!region_clustered(plain));
    region_free(plain);
    /* bucket_of is the protocol's hash mod total_num_buckets */
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof k, "x%d", i);
        uint64_t h = hash_key(k, strlen(k));
        ck_assert_uint_eq(region_bucket_of(r, h), h % NBUCKETS);
    }
    region_free(r);
}
END_TEST

START_TEST(read_check)
{
    uint32_t p = 99;
    region_t *r = new_partitioned(ME);
    ck_assert_int_eq(region_read_check(r, 0, true, &p), RW_NOT_PRIMARY);
    ck_assert_uint_eq(p, 0);
    region_bucket_set_role(r, 0, ROLE_PRIMARY, 1, ME, COPIES);
    ck_assert_int_eq(region_read_check(r, 0, true, &p), 0);
    ck_assert_uint_eq(p, ME);
    ck_assert_int_eq(region_read_check(r, 0, false, &p), RW_UNAVAILABLE);
    region_bucket_set_role(r, 0, ROLE_COPY, 2, OTHER, NULL, 0);
    ck_assert_int_eq(region_read_check(r, 0, true, &p), RW_NOT_PRIMARY); /* partitioned: primary reads */
    ck_assert_uint_eq(p, OTHER);
    region_free(r);

    /* replicated: any ready copy serves reads, an initializing one does not */
    r = new_region(REGION_REPLICATE, 3, ME);
    region_bucket_set_role(r, 1, ROLE_COPY, 1, OTHER, NULL, 0);
    ck_assert_int_eq(region_read_check(r, 1, true, &p), 0);
    ck_assert_int_eq(region_read_check(r, 1, false, &p), RW_UNAVAILABLE);
    region_bucket_set_role(r, 1, ROLE_INIT, 1, OTHER, NULL, 0);
    ck_assert_int_eq(region_read_check(r, 1, true, &p), RW_NOT_PRIMARY);
    ck_assert_uint_eq(p, OTHER);
    region_bucket_set_role(r, 1, ROLE_PRIMARY, 2, ME, COPIES);
    ck_assert_int_eq(region_read_check(r, 1, true, &p), 0);
    region_free(r);
}
END_TEST

/* ---- writes at the primary ------------------------------------------------ */

START_TEST(not_primary_and_unavailable)
{
    region_t *r = new_partitioned(ME);
    char k[16];
    key_in(r, 3, 0, k, sizeof k);
    region_op op = put_op(k, "v", 0, 0);
    region_write_result out = write_at_primary(r, &op, true);
    ck_assert_int_eq(out.outcome, RW_NOT_PRIMARY);
    ck_assert_uint_eq(out.bucket, 3);
    ck_assert_uint_eq(out.primary_id, 0);
    ck_assert_uint_eq(out.ntargets, 0);
    region_bucket_set_role(r, 3, ROLE_COPY, 4, OTHER, NULL, 0);
    out = write_at_primary(r, &op, true);
    ck_assert_int_eq(out.outcome, RW_NOT_PRIMARY);
    ck_assert_uint_eq(out.primary_id, OTHER); /* where to redirect */
    ck_assert(out.term == 4);
    region_bucket_set_role(r, 3, ROLE_INIT, 4, OTHER, NULL, 0);
    out = write_at_primary(r, &op, true);
    ck_assert_int_eq(out.outcome, RW_NOT_PRIMARY);
    ck_assert(!has(r, k));

    /* primary, but the lease ran out */
    region_bucket_set_role(r, 3, ROLE_PRIMARY, 5, ME, COPIES);
    out = write_at_primary(r, &op, false);
    ck_assert_int_eq(out.outcome, RW_UNAVAILABLE);
    ck_assert(!has(r, k));
    /* primary, handing off */
    region_bucket_set_handoff(r, 3, true);
    out = write_at_primary(r, &op, true);
    ck_assert_int_eq(out.outcome, RW_UNAVAILABLE);
    ck_assert(!has(r, k));
    /* the fence is per bucket */
    char k2[16];
    key_in(r, 4, 0, k2, sizeof k2);
    region_bucket_set_role(r, 4, ROLE_PRIMARY, 5, ME, COPIES);
    region_op op2 = put_op(k2, "w", 0, 0);
    ck_assert_int_eq(write_at_primary(r, &op2, true).outcome, RW_APPLIED);
    region_bucket_set_handoff(r, 3, false);
    out = write_at_primary(r, &op, true);
    ck_assert_int_eq(out.outcome, RW_APPLIED);
    ck_assert(has(r, k));
    /* a new term lifts a fence */
    region_bucket_set_handoff(r, 3, true);
    region_bucket_set_role(r, 3, ROLE_PRIMARY, 6, ME, COPIES);
    ck_assert_int_eq(write_at_primary(r, &op, true).outcome, RW_APPLIED);
    /* a map that changes neither role nor term keeps it (the handoff is
     * draining while maps are published for other buckets) */
    region_bucket_set_handoff(r, 3, true);
    region_bucket_set_role(r, 3, ROLE_PRIMARY, 6, ME, COPIES);
    ck_assert_int_eq(write_at_primary(r, &op, true).outcome, RW_UNAVAILABLE);
    region_bucket_set_role(r, 3, ROLE_PRIMARY, 5, ME, COPIES); /* an older term: no change either */
    ck_assert_int_eq(write_at_primary(r, &op, true).outcome, RW_UNAVAILABLE);
    /* a role change lifts it */
    region_bucket_set_role(r, 3, ROLE_COPY, 6, OTHER, NULL, 0);
    region_bucket_set_role(r, 3, ROLE_PRIMARY, 6, ME, COPIES);
    ck_assert_int_eq(write_at_primary(r, &op, true).outcome, RW_APPLIED);
    /* refused writes did not take a version */
    uint64_t counter, floor;
    region_bucket_counters(r, 3, &counter, &floor);
    ck_assert(counter == (6ULL << 32) + 2);
    ck_assert(floor == 0);
    region_free(r);
}
END_TEST

START_TEST(applied_versions_and_targets)
{
    region_t *r = new_partitioned(ME);
    char k[16], k2[16];
    key_in(r, 1, 0, k, sizeof k);
    key_in(r, 1, 1, k2, sizeof k2);
    ck_assert_int_eq(region_bucket_set_role(r, 1, ROLE_PRIMARY, 3, ME, (uint32_t[]){OTHER, 33}, 2), ROLE_NONE);
    uint64_t counter, floor;
    region_bucket_counters(r, 1, &counter, &floor);
    ck_assert(counter == 3ULL << 32); /* a primary of term 3 starts at 3 << 32 */

    region_op op = put_op(k, "one", 0, 0);
    region_write_result out = write_at_primary(r, &op, true);
    ck_assert_int_eq(out.outcome, RW_APPLIED);
    ck_assert_uint_eq(out.bucket, 1);
    ck_assert_uint_eq(out.primary_id, ME);
    ck_assert(out.term == 3);
    ck_assert(op.counter == (3ULL << 32) + 1);
    ck_assert_uint_eq(op.member_id, ME);
    ck_assert_uint_eq(out.ntargets, 2);
    ck_assert_uint_eq(out.targets[0], OTHER);
    ck_assert_uint_eq(out.targets[1], 33);
    ck_assert_uint_eq(region_bucket_inflight(r, 1), 1);
    got g = get(r, k);
    ck_assert_str_eq(g.value, "one");
    ck_assert(g.ver.counter == op.counter);
    ck_assert_uint_eq(g.ver.member_id, ME);

    region_op op2 = put_op(k2, "two", 0, 0);
    out = write_at_primary(r, &op2, true);
    ck_assert_int_eq(out.outcome, RW_APPLIED);
    ck_assert(op2.counter == op.counter + 1);
    ck_assert_uint_eq(region_bucket_inflight(r, 1), 2);
    region_bucket_inflight_done(r, 1);
    region_bucket_inflight_done(r, 1);
    ck_assert_uint_eq(region_bucket_inflight(r, 1), 0);
    /* replace */
    region_op op3 = put_op(k, "three!", 0, 0);
    ck_assert_int_eq(write_at_primary(r, &op3, true).outcome, RW_APPLIED);
    ck_assert(op3.counter == op2.counter + 1);
    ck_assert_str_eq(get(r, k).value, "three!");
    ck_assert_uint_eq(region_bucket_size(r, 1), 2);
    ck_assert_uint_gt(region_bucket_bytes(r, 1), 0);
    ck_assert_uint_eq(region_size(r), 2);
    region_bucket_counters(r, 1, &counter, &floor);
    ck_assert(counter == op3.counter);
    region_bucket_inflight_done(r, 1);

    /* the same term again (new targets): no reset */
    region_bucket_set_role(r, 1, ROLE_PRIMARY, 3, ME, (uint32_t[]){44}, 1);
    region_op op4 = put_op(k2, "four", 0, 0);
    out = write_at_primary(r, &op4, true);
    ck_assert_int_eq(out.outcome, RW_APPLIED);
    ck_assert_uint_eq(out.ntargets, 1);
    ck_assert_uint_eq(out.targets[0], 44);
    ck_assert(op4.counter == op3.counter + 1);
    region_free(r);
}
END_TEST

START_TEST(counters_follow_terms)
{
    region_t *r = new_partitioned(ME);
    char k[16];
    key_in(r, 0, 0, k, sizeof k);
    uint64_t counter, floor;
    region_op op = put_op(k, "a", 0, 0);

    region_bucket_set_role(r, 0, ROLE_PRIMARY, 1, ME, COPIES);
    ck_assert_int_eq(write_at_primary(r, &op, true).outcome, RW_APPLIED);
    ck_assert(op.counter == (1ULL << 32) + 1);
    /* a new term: counters jump to term << 32 */
    region_bucket_set_role(r, 0, ROLE_PRIMARY, 5, ME, COPIES);
    ck_assert_int_eq(write_at_primary(r, &op, true).outcome, RW_APPLIED);
    ck_assert(op.counter == (5ULL << 32) + 1);
    ck_assert(write_at_primary(r, &op, true).term == 5);
    /* an older term never lowers the bucket's term or its counter */
    region_bucket_set_role(r, 0, ROLE_PRIMARY, 4, ME, COPIES);
    region_write_result out = write_at_primary(r, &op, true);
    ck_assert(out.term == 5);
    ck_assert(op.counter == (5ULL << 32) + 3);
    /* a copy's role carries the term but hands out no counters */
    region_bucket_set_role(r, 0, ROLE_COPY, 9, OTHER, NULL, 0);
    region_bucket_counters(r, 0, &counter, &floor);
    ck_assert(counter == (5ULL << 32) + 3);
    region_bucket_set_role(r, 0, ROLE_PRIMARY, 9, ME, COPIES);
    ck_assert_int_eq(write_at_primary(r, &op, true).outcome, RW_APPLIED);
    ck_assert(op.counter == (9ULL << 32) + 1);

    /* a copy that applied its primary's writes and is promoted continues
     * above every counter it holds */
    region_t *c = new_partitioned(OTHER);
    region_bucket_set_role(c, 0, ROLE_COPY, 9, ME, NULL, 0);
    region_op rep = at(put_op(k, "b", 0, 0), (9ULL << 32) + 40, ME);
    ck_assert_int_eq(region_replica_apply(c, 0, 9, &rep), 0);
    region_bucket_counters(c, 0, &counter, &floor);
    ck_assert(counter == (9ULL << 32) + 40);
    region_bucket_set_role(c, 0, ROLE_PRIMARY, 10, OTHER, COPIES);
    region_op w = put_op(k, "c", 0, 0);
    ck_assert_int_eq(write_at_primary(c, &w, true).outcome, RW_APPLIED);
    ck_assert(w.counter == (10ULL << 32) + 1);
    ck_assert(w.counter > rep.counter);
    ck_assert_uint_eq(w.member_id, OTHER);
    /* promoted without a new term (counter above term << 32): continues */
    region_t *d = new_partitioned(OTHER);
    region_bucket_set_role(d, 0, ROLE_COPY, 9, ME, NULL, 0);
    ck_assert_int_eq(region_replica_apply(d, 0, 9, &rep), 0);
    region_bucket_set_role(d, 0, ROLE_PRIMARY, 9, OTHER, COPIES);
    w = put_op(k, "d", 0, 0);
    ck_assert_int_eq(write_at_primary(d, &w, true).outcome, RW_APPLIED);
    ck_assert(w.counter == (9ULL << 32) + 41);
    region_free(d);
    region_free(c);
    region_free(r);
}
END_TEST

START_TEST(event_ids)
{
    region_t *r = new_partitioned(ME);
    char k[16], k2[16], kb[16];
    key_in(r, 2, 0, k, sizeof k);
    key_in(r, 2, 1, k2, sizeof k2);
    key_in(r, 5, 0, kb, sizeof kb);
    region_bucket_set_role(r, 2, ROLE_PRIMARY, 1, ME, (uint32_t[]){OTHER}, 1);
    region_bucket_set_role(r, 5, ROLE_PRIMARY, 1, ME, COPIES);
    const uint64_t client = 0xC11E47;

    region_op op = put_op(k, "first", client, 1);
    region_write_result out = write_at_primary(r, &op, true);
    ck_assert_int_eq(out.outcome, RW_APPLIED);
    uint64_t applied = op.counter;
    /* the retry, even carrying another value, is not applied again */
    region_op retry = put_op(k, "retry", client, 1);
    out = write_at_primary(r, &retry, true);
    ck_assert_int_eq(out.outcome, RW_DUPLICATE);
    ck_assert_uint_eq(out.ntargets, 0); /* nothing to replicate */
    ck_assert_uint_eq(region_bucket_inflight(r, 2), 1);
    got g = get(r, k);
    ck_assert_str_eq(g.value, "first");
    ck_assert(g.ver.counter == applied);
    /* older sequences are duplicates too */
    region_op old = put_op(k, "old", client, 0);
    ck_assert_int_eq(write_at_primary(r, &old, true).outcome, RW_DUPLICATE);
    /* the next sequence applies, to any key of the bucket */
    region_op next = put_op(k2, "second", client, 2);
    ck_assert_int_eq(write_at_primary(r, &next, true).outcome, RW_APPLIED);
    ck_assert(next.counter == applied + 1);
    /* a retried remove answers as a duplicate, not as "absent" */
    region_op rm = remove_op(k2, client, 3);
    ck_assert_int_eq(write_at_primary(r, &rm, true).outcome, RW_APPLIED);
    region_op rm_again = remove_op(k2, client, 3);
    ck_assert_int_eq(write_at_primary(r, &rm_again, true).outcome, RW_DUPLICATE);
    /* another client with the same sequence is not a duplicate */
    region_op other = put_op(k, "other client", client + 1, 1);
    ck_assert_int_eq(write_at_primary(r, &other, true).outcome, RW_APPLIED);
    ck_assert_str_eq(get(r, k).value, "other client");
    /* no event id: never a duplicate */
    for (int i = 0; i < 3; i++) {
        region_op plain = put_op(k, "plain", 0, 0);
        ck_assert_int_eq(write_at_primary(r, &plain, true).outcome, RW_APPLIED);
    }
    /* buckets track event ids separately */
    region_op elsewhere = put_op(kb, "b5", client, 1);
    ck_assert_int_eq(write_at_primary(r, &elsewhere, true).outcome, RW_APPLIED);
    /* not serving: UNAVAILABLE even for a duplicate (checked first) */
    region_op dup = put_op(k, "x", client, 1);
    ck_assert_int_eq(write_at_primary(r, &dup, false).outcome, RW_UNAVAILABLE);
    /* a clear with an event id */
    out = clear_at_primary(r, 5, client, 2);
    ck_assert_int_eq(out.outcome, RW_APPLIED);
    ck_assert(!has(r, kb));
    region_op again = put_op(kb, "back", 0, 0);
    ck_assert_int_eq(write_at_primary(r, &again, true).outcome, RW_APPLIED);
    out = clear_at_primary(r, 5, client, 2);
    ck_assert_int_eq(out.outcome, RW_DUPLICATE);
    ck_assert(has(r, kb));
    /* the tracker is exported per bucket */
    uint64_t pairs[8][2];
    ck_assert_uint_eq(region_tracker_export(r, 2, pairs, 8), 2);
    for (int i = 0; i < 2; i++) {
        if (pairs[i][0] == client)
            ck_assert(pairs[i][1] == 3);
        else
            ck_assert(pairs[i][0] == client + 1 && pairs[i][1] == 1);
    }
    ck_assert_uint_eq(region_tracker_export(r, 5, pairs, 8), 1);
    ck_assert(pairs[0][0] == client && pairs[0][1] == 2);
    ck_assert_uint_eq(region_tracker_export(r, 0, pairs, 8), 0);
    region_free(r);
}
END_TEST

START_TEST(remove_absent_and_tombstones)
{
    region_t *r = new_partitioned(ME);
    char k[16];
    key_in(r, 6, 0, k, sizeof k);
    region_bucket_set_role(r, 6, ROLE_PRIMARY, 2, ME, (uint32_t[]){OTHER}, 1);
    region_op rm = remove_op(k, 0, 0);
    region_write_result out = write_at_primary(r, &rm, true);
    ck_assert_int_eq(out.outcome, RW_ABSENT);
    ck_assert_uint_eq(out.ntargets, 0);
    ck_assert_uint_eq(region_bucket_inflight(r, 6), 0);
    uint64_t counter, floor;
    region_bucket_counters(r, 6, &counter, &floor);
    ck_assert(counter == 2ULL << 32); /* no version taken */

    region_op put = put_op(k, "v", 0, 0);
    ck_assert_int_eq(write_at_primary(r, &put, true).outcome, RW_APPLIED);
    uint64_t bytes_live = region_bucket_bytes(r, 6);
    rm = remove_op(k, 0, 0);
    out = write_at_primary(r, &rm, true);
    ck_assert_int_eq(out.outcome, RW_APPLIED);
    ck_assert_uint_eq(out.ntargets, 1);
    ck_assert(rm.counter == put.counter + 1);
    ck_assert_uint_eq(rm.member_id, ME);
    ck_assert(!has(r, k));
    ck_assert_int_eq(region_get(r, put.hash, put.key, put.klen, copy_entry, &(got){0}), 0);
    ck_assert_uint_eq(region_bucket_size(r, 6), 0);
    ck_assert_uint_eq(region_size(r), 0);
    ck_assert_uint_ne(bytes_live, 0);
    /* a second remove: the key is absent (a tombstone is not an entry) */
    region_op rm2 = remove_op(k, 0, 0);
    ck_assert_int_eq(write_at_primary(r, &rm2, true).outcome, RW_ABSENT);
    /* the tombstone is there for images, with the remove's version */
    ilist *l = calloc(1, sizeof *l);
    scan_bucket(r, 6, 100, SIZE_MAX, l);
    ck_assert_int_eq(l->n, 1);
    ck_assert(l->e[0].tomb);
    ck_assert(l->e[0].ver.counter == rm.counter);
    ck_assert_uint_eq(l->e[0].ver.member_id, ME);
    ck_assert_str_eq(l->e[0].key, k);
    /* and invisible to region scans */
    uint64_t next;
    l->n = 0;
    ck_assert_int_eq(region_scan(r, 0, 100, collect, l, &next), 0);
    ck_assert_int_eq(l->n, 0);
    /* a put over a tombstone brings the key back, newer */
    region_op put2 = put_op(k, "again", 0, 0);
    ck_assert_int_eq(write_at_primary(r, &put2, true).outcome, RW_APPLIED);
    ck_assert(put2.counter == rm.counter + 1);
    ck_assert_str_eq(get(r, k).value, "again");
    ck_assert_uint_eq(region_bucket_size(r, 6), 1);
    l->n = 0;
    scan_bucket(r, 6, 100, SIZE_MAX, l);
    ck_assert_int_eq(l->n, 1);
    ck_assert(!l->e[0].tomb);
    free(l);
    region_free(r);
}
END_TEST

START_TEST(tombstone_purge)
{
    region_t *r = new_partitioned(ME);
    region_bucket_set_role(r, 0, ROLE_PRIMARY, 1, ME, COPIES);
    region_bucket_set_role(r, 1, ROLE_PRIMARY, 1, ME, COPIES);
    char k0[16], k1[16], keep[16];
    key_in(r, 0, 0, k0, sizeof k0);
    key_in(r, 1, 0, k1, sizeof k1);
    key_in(r, 1, 1, keep, sizeof keep);
    region_op p0 = put_op(k0, "a", 0, 0), p1 = put_op(k1, "b", 0, 0), pk = put_op(keep, "c", 0, 0);
    write_at_primary(r, &p0, true);
    write_at_primary(r, &p1, true);
    write_at_primary(r, &pk, true);
    region_op r0 = remove_op(k0, 0, 0), r1 = remove_op(k1, 0, 0);
    ck_assert_int_eq(write_at_primary(r, &r0, true).outcome, RW_APPLIED);
    ck_assert_int_eq(write_at_primary(r, &r1, true).outcome, RW_APPLIED);
    /* younger than the age: kept */
    ck_assert_uint_eq(region_purge_tombstones(r, 60), 0);
    ilist *l = calloc(1, sizeof *l);
    scan_bucket(r, 0, 100, SIZE_MAX, l);
    ck_assert_int_eq(l->n, 1);
    /* a tombstone still blocks an older replicated put */
    region_op late = at(put_op(k0, "late", 0, 0), p0.counter, OTHER);
    ck_assert_int_eq(region_image_apply(r, 0, &late), 0);
    ck_assert(!has(r, k0));
    /* older than the age (a negative age puts the cutoff in the future) */
    ck_assert_uint_eq(region_purge_tombstones(r, -10), 2);
    ck_assert_uint_eq(region_purge_tombstones(r, -10), 0);
    l->n = 0;
    scan_bucket(r, 0, 100, SIZE_MAX, l);
    ck_assert_int_eq(l->n, 0);
    l->n = 0;
    scan_bucket(r, 1, 100, SIZE_MAX, l);
    ck_assert_int_eq(l->n, 1);
    ck_assert_str_eq(l->e[0].key, keep); /* live entries are never purged */
    ck_assert(!l->e[0].tomb);
    ck_assert_str_eq(get(r, keep).value, "c");
    ck_assert_uint_eq(region_bucket_size(r, 1), 1);
    free(l);
    region_free(r);
}
END_TEST

START_TEST(tombstone_bytes)
{
    /* bytes follow entries and tombstones; nothing is left once the
     * tombstone is purged */
    region_t *r = new_partitioned(ME);
    region_bucket_set_role(r, 4, ROLE_PRIMARY, 1, ME, COPIES);
    char k[16];
    key_in(r, 4, 0, k, sizeof k);
    ck_assert_uint_eq(region_bucket_bytes(r, 4), 0);
    region_op p = put_op(k, "some value", 0, 0);
    write_at_primary(r, &p, true);
    ck_assert_uint_gt(region_bucket_bytes(r, 4), 0);
    region_op rm = remove_op(k, 0, 0);
    write_at_primary(r, &rm, true);
    ck_assert_uint_eq(region_bucket_size(r, 4), 0);
    ck_assert_uint_eq(region_purge_tombstones(r, -10), 1);
    ck_assert_uint_eq(region_bucket_bytes(r, 4), 0);
    ck_assert_uint_eq(region_bytes(r), 0);
    region_free(r);
}
END_TEST

/* Regression: copy_targets (region/region_cluster.c, called by
 * region_primary_write for every applied write) once did
 * memcpy(out->targets, b->targets, 0) with b->targets == NULL when the
 * primary has no replication targets: undefined behaviour, and with
 * -fsanitize=undefined -fno-sanitize-recover (AGATE_SANITIZE) the process
 * aborts ("null pointer passed as argument 2, which is declared to never be
 * null"). Every primary without copies hits it on every write: a PARTITION
 * region (0 redundant copies), a one-member cluster, a bucket whose copies
 * were all lost. Passes without sanitizers either way. */
START_TEST(write_without_copies)
{
    region_t *r = new_partitioned(ME);
    char k[16];
    key_in(r, 1, 0, k, sizeof k);
    region_bucket_set_role(r, 1, ROLE_PRIMARY, 3, ME, NULL, 0);
    region_op op = put_op(k, "alone", 0, 0);
    region_write_result out = write_at_primary(r, &op, true);
    ck_assert_int_eq(out.outcome, RW_APPLIED);
    ck_assert_uint_eq(out.ntargets, 0);
    ck_assert_uint_eq(region_bucket_inflight(r, 1), 0); /* nothing to wait for */
    ck_assert(op.counter == (3ULL << 32) + 1);
    ck_assert_str_eq(get(r, k).value, "alone");
    region_free(r);
}
END_TEST

/* ---- copies ------------------------------------------------------------- */

START_TEST(replica_terms)
{
    region_t *c = new_partitioned(OTHER);
    char k[16];
    key_in(c, 3, 0, k, sizeof k);
    region_bucket_set_role(c, 3, ROLE_COPY, 2, ME, NULL, 0);
    region_op a = at(put_op(k, "t2", 0, 0), (2ULL << 32) + 1, ME);
    ck_assert_int_eq(region_replica_apply(c, 3, 2, &a), 0);
    ck_assert_str_eq(get(c, k).value, "t2");
    /* a deposed primary (term 1) is refused, and nothing changes */
    region_op stale = at(put_op(k, "t1", 0, 0), (2ULL << 32) + 7, ME);
    ck_assert_int_eq(region_replica_apply(c, 3, 1, &stale), -ESTALE);
    ck_assert_str_eq(get(c, k).value, "t2");
    /* a newer term is accepted and raises the bucket's */
    region_op b = at(put_op(k, "t3", 0, 0), (3ULL << 32) + 1, 33);
    ck_assert_int_eq(region_replica_apply(c, 3, 3, &b), 0);
    ck_assert_str_eq(get(c, k).value, "t3");
    ck_assert_uint_eq(get(c, k).ver.member_id, 33);
    region_op c2 = at(put_op(k, "t2 again", 0, 0), (3ULL << 32) + 9, ME);
    ck_assert_int_eq(region_replica_apply(c, 3, 2, &c2), -ESTALE);
    ck_assert_str_eq(get(c, k).value, "t3");
    /* the term raised by replication counts when this copy is promoted:
     * a role with an older term does not lower it */
    region_bucket_set_role(c, 3, ROLE_PRIMARY, 2, OTHER, COPIES);
    region_op w = put_op(k, "mine", 0, 0);
    region_write_result out = write_at_primary(c, &w, true);
    ck_assert_int_eq(out.outcome, RW_APPLIED);
    ck_assert(out.term == 3);
    ck_assert(w.counter == (3ULL << 32) + 2);
    /* terms are per bucket */
    char k4[16];
    key_in(c, 4, 0, k4, sizeof k4);
    region_op e = at(put_op(k4, "b4", 0, 0), (1ULL << 32) + 1, ME);
    /* a bucket this member does not hold ignores it (a late write for a
     * dropped bucket must not come back) */
    ck_assert_int_eq(region_replica_apply(c, 4, 1, &e), 0);
    ck_assert(!has(c, k4));
    region_bucket_set_role(c, 4, ROLE_INIT, 1, ME, NULL, 0);
    ck_assert_int_eq(region_replica_apply(c, 4, 1, &e), 0);
    ck_assert(has(c, k4));
    region_free(c);
}
END_TEST

START_TEST(replica_applies_newer_only)
{
    region_t *c = new_partitioned(OTHER);
    char k[16], k2[16];
    key_in(c, 0, 0, k, sizeof k);
    key_in(c, 0, 1, k2, sizeof k2);
    region_bucket_set_role(c, 0, ROLE_COPY, 1, ME, NULL, 0);
    const uint64_t base = 1ULL << 32;
    region_op a = at(put_op(k, "five", 0, 0), base + 5, ME);
    ck_assert_int_eq(region_replica_apply(c, 0, 1, &a), 0);
    /* older: ignored (returns 0) */
    region_op older = at(put_op(k, "four", 0, 0), base + 4, ME);
    ck_assert_int_eq(region_replica_apply(c, 0, 1, &older), 0);
    ck_assert_str_eq(get(c, k).value, "five");
    /* the same version again (a resend): ignored */
    region_op same = at(put_op(k, "FIVE", 0, 0), base + 5, ME);
    ck_assert_int_eq(region_replica_apply(c, 0, 1, &same), 0);
    ck_assert_str_eq(get(c, k).value, "five");
    /* newer: applied */
    region_op newer = at(put_op(k, "six", 0, 0), base + 6, ME);
    ck_assert_int_eq(region_replica_apply(c, 0, 1, &newer), 0);
    ck_assert_str_eq(get(c, k).value, "six");
    ck_assert(get(c, k).ver.counter == base + 6);
    /* a remove that arrives before the put it follows: the tombstone wins */
    region_op rm = at(remove_op(k2, 0, 0), base + 10, ME);
    ck_assert_int_eq(region_replica_apply(c, 0, 1, &rm), 0);
    ck_assert(!has(c, k2));
    region_op late_put = at(put_op(k2, "late", 0, 0), base + 9, ME);
    ck_assert_int_eq(region_replica_apply(c, 0, 1, &late_put), 0);
    ck_assert(!has(c, k2));
    region_op newer_put = at(put_op(k2, "newer", 0, 0), base + 11, ME);
    ck_assert_int_eq(region_replica_apply(c, 0, 1, &newer_put), 0);
    ck_assert_str_eq(get(c, k2).value, "newer");
    /* an older remove does not remove a newer value */
    region_op old_rm = at(remove_op(k2, 0, 0), base + 8, ME);
    ck_assert_int_eq(region_replica_apply(c, 0, 1, &old_rm), 0);
    ck_assert_str_eq(get(c, k2).value, "newer");
    /* replicated writes keep the copy's counter at the highest seen */
    uint64_t counter, floor;
    region_bucket_counters(c, 0, &counter, &floor);
    ck_assert(counter == base + 11);
    /* the event ids of replicated writes are tracked at the copy too (for
     * when it is promoted) */
    region_op ev = at(put_op(k, "ev", 77, 4), base + 12, ME);
    ck_assert_int_eq(region_replica_apply(c, 0, 1, &ev), 0);
    region_bucket_set_role(c, 0, ROLE_PRIMARY, 2, OTHER, COPIES);
    region_op retry = put_op(k, "retried", 77, 4);
    ck_assert_int_eq(write_at_primary(c, &retry, true).outcome, RW_DUPLICATE);
    ck_assert_str_eq(get(c, k).value, "ev");
    region_free(c);
}
END_TEST

START_TEST(clear_and_floor)
{
    region_t *r = new_partitioned(ME);
    region_bucket_set_role(r, 2, ROLE_PRIMARY, 1, ME, (uint32_t[]){OTHER}, 1);
    region_bucket_set_role(r, 3, ROLE_PRIMARY, 1, ME, COPIES);
    char k[4][16], other[16];
    for (int i = 0; i < 4; i++) {
        key_in(r, 2, i, k[i], sizeof k[i]);
        region_op p = put_op(k[i], "v", 0, 0);
        write_at_primary(r, &p, true);
    }
    key_in(r, 3, 0, other, sizeof other);
    region_op po = put_op(other, "o", 0, 0);
    write_at_primary(r, &po, true);
    region_op rm = remove_op(k[3], 0, 0);
    write_at_primary(r, &rm, true); /* a tombstone too */
    uint64_t before, floor;
    region_bucket_counters(r, 2, &before, &floor);
    ck_assert(floor == 0);

    region_write_result out = clear_at_primary(r, 2, 0, 0);
    ck_assert_int_eq(out.outcome, RW_APPLIED);
    ck_assert_uint_eq(out.bucket, 2);
    ck_assert_uint_eq(out.ntargets, 1);
    region_bucket_inflight_done(r, 2);
    uint64_t counter;
    region_bucket_counters(r, 2, &counter, &floor);
    ck_assert(counter == before + 1);
    ck_assert(floor == counter); /* everything below the clear is gone */
    ck_assert_uint_eq(region_bucket_size(r, 2), 0);
    ck_assert_uint_eq(region_bucket_bytes(r, 2), 0);
    ilist *l = calloc(1, sizeof *l);
    scan_bucket(r, 2, 100, SIZE_MAX, l);
    ck_assert_int_eq(l->n, 0); /* tombstones too */
    ck_assert_uint_eq(region_purge_tombstones(r, -10), 0);
    /* other buckets untouched */
    ck_assert_str_eq(get(r, other).value, "o");
    /* writes after the clear apply */
    region_op p = put_op(k[0], "after", 0, 0);
    ck_assert_int_eq(write_at_primary(r, &p, true).outcome, RW_APPLIED);
    ck_assert(p.counter == counter + 1);
    ck_assert_str_eq(get(r, k[0]).value, "after");

    /* at a copy: the replicated clear removes older entries only, and
     * older writes arriving after it are refused */
    region_t *c = new_partitioned(OTHER);
    region_bucket_set_role(c, 2, ROLE_COPY, 1, ME, NULL, 0);
    const uint64_t base = 1ULL << 32;
    region_op a = at(put_op(k[0], "a", 0, 0), base + 5, ME);
    region_op b = at(put_op(k[1], "b", 0, 0), base + 6, ME);
    region_op z = at(put_op(k[2], "z", 0, 0), base + 20, ME); /* reordered: after the clear */
    ck_assert_int_eq(region_replica_apply(c, 2, 1, &a), 0);
    ck_assert_int_eq(region_replica_apply(c, 2, 1, &b), 0);
    ck_assert_int_eq(region_replica_apply(c, 2, 1, &z), 0);
    region_op clr;
    memset(&clr, 0, sizeof clr);
    clr.kind = REGION_OP_CLEAR;
    clr.counter = base + 10;
    clr.member_id = ME;
    ck_assert_int_eq(region_replica_apply(c, 2, 1, &clr), 0);
    ck_assert(!has(c, k[0]));
    ck_assert(!has(c, k[1]));
    ck_assert_str_eq(get(c, k[2]).value, "z");
    region_bucket_counters(c, 2, &counter, &floor);
    ck_assert(floor == base + 10);
    ck_assert(counter == base + 20);
    region_op late = at(put_op(k[3], "late", 0, 0), base + 8, ME);
    ck_assert_int_eq(region_replica_apply(c, 2, 1, &late), 0);
    ck_assert(!has(c, k[3]));
    region_op late_rm = at(remove_op(k[2], 0, 0), base + 9, ME);
    ck_assert_int_eq(region_replica_apply(c, 2, 1, &late_rm), 0);
    ck_assert_str_eq(get(c, k[2]).value, "z");
    /* an older clear (resent) changes nothing */
    region_op old_clr = clr;
    old_clr.counter = base + 7;
    ck_assert_int_eq(region_replica_apply(c, 2, 1, &old_clr), 0);
    region_bucket_counters(c, 2, &counter, &floor);
    ck_assert(floor == base + 10);
    ck_assert_str_eq(get(c, k[2]).value, "z");
    /* newer writes apply */
    region_op fresh = at(put_op(k[3], "fresh", 0, 0), base + 21, ME);
    ck_assert_int_eq(region_replica_apply(c, 2, 1, &fresh), 0);
    ck_assert_str_eq(get(c, k[3]).value, "fresh");
    /* raising counters: a higher floor clears below it, lower values do not
     * lower anything */
    region_bucket_raise_counters(c, 2, base + 5, base + 3);
    region_bucket_counters(c, 2, &counter, &floor);
    ck_assert(counter == base + 21 && floor == base + 10);
    region_bucket_raise_counters(c, 2, base + 100, base + 21);
    region_bucket_counters(c, 2, &counter, &floor);
    ck_assert(counter == base + 100 && floor == base + 21);
    ck_assert(!has(c, k[2])); /* counter 20 < floor 21 */
    ck_assert_str_eq(get(c, k[3]).value, "fresh");
    free(l);
    region_free(c);
    region_free(r);
}
END_TEST

START_TEST(bucket_drop_and_targets)
{
    region_t *r = new_partitioned(ME);
    region_bucket_set_role(r, 1, ROLE_PRIMARY, 1, ME, COPIES);
    char k[16], k2[16];
    key_in(r, 1, 0, k, sizeof k);
    key_in(r, 1, 1, k2, sizeof k2);
    region_op p = put_op(k, "v", 5, 1), p2 = put_op(k2, "w", 0, 0);
    write_at_primary(r, &p, true);
    write_at_primary(r, &p2, true);
    region_op rm = remove_op(k2, 0, 0);
    write_at_primary(r, &rm, true);
    clear_at_primary(r, 1, 0, 0);
    region_op p3 = put_op(k, "v3", 0, 0);
    write_at_primary(r, &p3, true);
    region_bucket_drop(r, 1);
    ck_assert_uint_eq(region_bucket_size(r, 1), 0);
    ck_assert_uint_eq(region_bucket_bytes(r, 1), 0);
    ilist *l = calloc(1, sizeof *l);
    scan_bucket(r, 1, 100, SIZE_MAX, l);
    ck_assert_int_eq(l->n, 0);
    uint64_t counter, floor, pairs[4][2];
    region_bucket_counters(r, 1, &counter, &floor);
    ck_assert(floor == 0);
    ck_assert_uint_eq(region_tracker_export(r, 1, pairs, 4), 0);
    free(l);

    /* replication targets: added once each, at most REGION_MAX_TARGETS */
    region_bucket_set_role(r, 0, ROLE_PRIMARY, 1, ME, (uint32_t[]){OTHER}, 1);
    ck_assert_int_eq(region_bucket_add_target(r, 0, 33), 0);
    ck_assert_int_eq(region_bucket_add_target(r, 0, 33), 0);
    ck_assert_int_eq(region_bucket_add_target(r, 0, OTHER), 0);
    char k0[16];
    key_in(r, 0, 0, k0, sizeof k0);
    region_op w = put_op(k0, "x", 0, 0);
    region_write_result out = write_at_primary(r, &w, true);
    ck_assert_uint_eq(out.ntargets, 2);
    ck_assert_uint_eq(out.targets[0], OTHER);
    ck_assert_uint_eq(out.targets[1], 33);
    for (uint32_t id = 100; id < 100 + REGION_MAX_TARGETS - 2; id++)
        ck_assert_int_eq(region_bucket_add_target(r, 0, id), 0);
    ck_assert_int_eq(region_bucket_add_target(r, 0, 999), -ENOSPC);
    ck_assert_int_eq(region_bucket_add_target(r, 0, 100), 0); /* present already */
    out = write_at_primary(r, &w, true);
    ck_assert_uint_eq(out.ntargets, REGION_MAX_TARGETS);
    /* a role with more targets than allowed keeps the first ones */
    uint32_t many[REGION_MAX_TARGETS + 5];
    for (uint32_t i = 0; i < REGION_MAX_TARGETS + 5; i++)
        many[i] = 1000 + i;
    region_bucket_set_role(r, 0, ROLE_PRIMARY, 1, ME, many, REGION_MAX_TARGETS + 5);
    out = write_at_primary(r, &w, true);
    ck_assert_uint_eq(out.ntargets, REGION_MAX_TARGETS);
    ck_assert_uint_eq(out.targets[REGION_MAX_TARGETS - 1], 1000 + REGION_MAX_TARGETS - 1);
    /* a copy keeps no targets: promoted, it has exactly the new ones */
    region_bucket_set_role(r, 0, ROLE_COPY, 2, OTHER, many, 3);
    region_bucket_set_role(r, 0, ROLE_PRIMARY, 3, ME, (uint32_t[]){55}, 1);
    out = write_at_primary(r, &w, true);
    ck_assert_uint_eq(out.ntargets, 1);
    ck_assert_uint_eq(out.targets[0], 55);
    region_free(r);
}
END_TEST

/* ---- images ------------------------------------------------------------- */

/* Applies every collected image entry to bucket b of dst, as a member does
 * with IMAGE_PAGE replies. */
static void apply_image(region_t *dst, uint32_t b, const ilist *l)
{
    for (int i = 0; i < l->n; i++) {
        const ientry *e = &l->e[i];
        region_op op;
        memset(&op, 0, sizeof op);
        op.kind = e->tomb ? REGION_OP_REMOVE : REGION_OP_PUT;
        op.key = (const uint8_t *)e->key;
        op.klen = e->klen;
        op.key_is_str = e->key_is_str;
        op.hash = hash_key(e->key, e->klen);
        if (!e->tomb) {
            op.value = (const uint8_t *)e->value;
            op.vlen = e->vlen;
        }
        op.counter = e->ver.counter;
        op.member_id = e->ver.member_id;
        REQ(region_image_apply(dst, b, &op) == 0);
    }
}

START_TEST(image_round_trip)
{
    enum { B = 4, NKEYS = 150 };
    region_t *src = new_partitioned(ME), *dst = new_partitioned(OTHER);
    region_bucket_set_role(src, B, ROLE_PRIMARY, 3, ME, COPIES);
    /* the image starts: dst becomes a target */
    ck_assert_int_eq(region_bucket_add_target(src, B, OTHER), 0);
    region_bucket_set_role(dst, B, ROLE_INIT, 3, ME, NULL, 0);
    static char keys[NKEYS][16];
    for (int i = 0; i < NKEYS; i++) {
        key_in(src, B, i, keys[i], sizeof keys[i]);
        char v[32];
        snprintf(v, sizeof v, "value-%d", i * 7);
        region_op p = put_op(keys[i], v, 1000 + (uint64_t)(i % 5), (uint64_t)i + 1);
        REQ(write_at_primary(src, &p, true).outcome == RW_APPLIED);
    }
    for (int i = 0; i < NKEYS; i += 3) {
        region_op rm = remove_op(keys[i], 0, 0);
        REQ(write_at_primary(src, &rm, true).outcome == RW_APPLIED);
    }
    /* and one binary key with a NUL inside */
    static uint8_t bkey[3] = {'b', 0, 0};
    while (region_bucket_of(src, hash_key(bkey, 3)) != B)
        bkey[2]++;
    region_op bin = put_op("bin", "binary key", 0, 0);
    bin.key = bkey;
    bin.klen = 3;
    bin.key_is_str = false;
    bin.hash = hash_key(bkey, 3);
    REQ(write_at_primary(src, &bin, true).outcome == RW_APPLIED);
    enum { NENTRIES = NKEYS + 1 };

    /* one full pass, then pages of several sizes: the same entries each
     * time, each exactly once */
    ilist *all = calloc(1, sizeof *all), *paged = calloc(1, sizeof *paged);
    ck_assert_int_eq(scan_bucket(src, B, 100000, SIZE_MAX, all), 1);
    ck_assert_int_eq(all->n, NENTRIES);
    int tombs = 0;
    for (int i = 0; i < all->n; i++)
        tombs += all->e[i].tomb;
    ck_assert_int_eq(tombs, (NKEYS + 2) / 3);
    static const uint32_t limits[] = {1, 2, 7, 64};
    for (size_t li = 0; li < sizeof limits / sizeof limits[0]; li++) {
        paged->n = 0;
        int largest = 0, lim = (int)limits[li];
        int pages = scan_bucket_pages(src, B, limits[li], SIZE_MAX, paged, &largest);
        ck_assert_int_eq(paged->n, NENTRIES);
        /* a page goes over the limit only by its first hash slot, and
         * chains are short (151 entries in at least 256 slots) */
        ck_assert_int_le(largest, lim > 8 ? lim : 8);
        ck_assert_int_ge(pages, NENTRIES / (lim > 8 ? lim : 8));
        for (int i = 0; i < NKEYS; i++) {
            const ientry *e = find_ientry(paged, keys[i]);
            REQ(e != NULL);
            for (int j = 0; j < paged->n; j++)
                REQ(&paged->e[j] == e || strcmp(paged->e[j].key, keys[i]) != 0);
        }
    }
    /* a byte bound pages too */
    paged->n = 0;
    ck_assert_int_gt(scan_bucket(src, B, 100000, 200, paged), 5);
    ck_assert_int_eq(paged->n, NENTRIES);
    /* a visitor that stops: its value is returned */
    paged->n = 0;
    paged->stop_after = 3;
    region_page_bound bound = {.limit = 1000, .max_bytes = SIZE_MAX, .per_entry = 32, .with_values = true};
    uint64_t next;
    ck_assert_int_eq(region_image_scan(src, B, 0, &bound, collect, paged, &next), 7);
    ck_assert_int_eq(paged->n, 3);
    paged->stop_after = 0;

    /* a write replicated to dst before its image page arrives is newer than
     * the image's entry for that key: the image must not undo it */
    region_op newer = put_op(keys[1], "replicated first", 0, 0);
    REQ(write_at_primary(src, &newer, true).outcome == RW_APPLIED);
    region_bucket_inflight_done(src, B);
    ck_assert_int_eq(region_replica_apply(dst, B, 3, &newer), 0);

    apply_image(dst, B, all);
    uint64_t (*pairs)[2] = malloc(TRACKER_SETS * TRACKER_WAYS * sizeof *pairs);
    size_t np = region_tracker_export(src, B, pairs, TRACKER_SETS * TRACKER_WAYS);
    ck_assert_uint_eq(np, 5);
    ck_assert_int_eq(region_tracker_merge(dst, B, (const uint64_t(*)[2])pairs, np), 0);
    uint64_t counter, floor, dcounter, dfloor;
    region_bucket_counters(src, B, &counter, &floor);
    region_bucket_raise_counters(dst, B, counter, floor);
    region_bucket_counters(dst, B, &dcounter, &dfloor);
    ck_assert(dcounter == counter);
    ck_assert(dfloor == floor);

    /* dst now holds what src holds, versions included */
    ck_assert_uint_eq(region_bucket_size(dst, B), region_bucket_size(src, B));
    ck_assert_uint_eq(region_bucket_bytes(dst, B), region_bucket_bytes(src, B));
    ilist *back = calloc(1, sizeof *back);
    scan_bucket(dst, B, 100000, SIZE_MAX, back);
    ilist *now = calloc(1, sizeof *now);
    scan_bucket(src, B, 100000, SIZE_MAX, now);
    ck_assert_int_eq(back->n, now->n);
    for (int i = 0; i < now->n; i++) {
        const ientry *a = &now->e[i], *b = find_ientry(back, a->key);
        REQ(b != NULL);
        REQ(a->tomb == b->tomb);
        REQ(a->ver.counter == b->ver.counter && a->ver.member_id == b->ver.member_id);
        REQ(a->key_is_str == b->key_is_str);
        if (!a->tomb)
            REQ(a->vlen == b->vlen && memcmp(a->value, b->value, a->vlen) == 0);
    }
    ck_assert_str_eq(get(dst, keys[1]).value, "replicated first");
    ck_assert(!has(dst, keys[0]));
    ck_assert_str_eq(get(dst, keys[2]).value, "value-14");
    ck_assert_uint_eq(get(dst, keys[2]).ver.member_id, ME);

    /* dst is promoted (new term): retries of writes src applied are
     * duplicates, new writes get versions above everything copied */
    region_bucket_set_role(dst, B, ROLE_PRIMARY, 4, OTHER, COPIES);
    for (int i = 0; i < NKEYS; i++) {
        region_op retry = put_op(keys[i], "retry", 1000 + (uint64_t)(i % 5), (uint64_t)i + 1);
        REQ(write_at_primary(dst, &retry, true).outcome == RW_DUPLICATE);
    }
    got gb;
    memset(&gb, 0, sizeof gb);
    ck_assert_int_eq(region_get(dst, bin.hash, bkey, 3, copy_entry, &gb), 1);
    ck_assert_str_eq(gb.value, "binary key");
    region_op fresh = put_op(keys[0], "fresh", 1000, NKEYS + 1);
    ck_assert_int_eq(write_at_primary(dst, &fresh, true).outcome, RW_APPLIED);
    ck_assert(fresh.counter == (4ULL << 32) + 1);
    ck_assert(fresh.counter > counter);
    ck_assert_str_eq(get(dst, keys[0]).value, "fresh");
    /* the old primary, deposed, cannot overwrite it through dst */
    region_op stale = at(put_op(keys[0], "stale", 0, 0), counter + 1, ME);
    ck_assert_int_eq(region_replica_apply(dst, B, 3, &stale), -ESTALE);
    ck_assert_str_eq(get(dst, keys[0]).value, "fresh");

    free(pairs);
    free(all);
    free(paged);
    free(back);
    free(now);
    region_free(src);
    region_free(dst);
}
END_TEST

START_TEST(image_after_clear_carries_floor)
{
    /* src cleared its bucket: the image carries the floor, and a write
     * from before the clear that reaches dst late is refused there */
    region_t *src = new_partitioned(ME), *dst = new_partitioned(OTHER);
    region_bucket_set_role(src, 0, ROLE_PRIMARY, 1, ME, COPIES);
    region_bucket_set_role(dst, 0, ROLE_INIT, 1, ME, NULL, 0);
    char k[3][16];
    region_op before[3];
    for (int i = 0; i < 3; i++) {
        key_in(src, 0, i, k[i], sizeof k[i]);
        before[i] = put_op(k[i], "before", 0, 0);
        REQ(write_at_primary(src, &before[i], true).outcome == RW_APPLIED);
    }
    ck_assert_int_eq(clear_at_primary(src, 0, 0, 0).outcome, RW_APPLIED);
    region_op after = put_op(k[0], "after", 0, 0);
    REQ(write_at_primary(src, &after, true).outcome == RW_APPLIED);
    ilist *l = calloc(1, sizeof *l);
    scan_bucket(src, 0, 100, SIZE_MAX, l);
    ck_assert_int_eq(l->n, 1);
    apply_image(dst, 0, l);
    uint64_t counter, floor;
    region_bucket_counters(src, 0, &counter, &floor);
    ck_assert(floor > before[2].counter);
    region_bucket_raise_counters(dst, 0, counter, floor);
    ck_assert_str_eq(get(dst, k[0]).value, "after");
    region_op late = at(put_op(k[1], "before", 0, 0), before[1].counter, ME);
    ck_assert_int_eq(region_image_apply(dst, 0, &late), 0);
    ck_assert(!has(dst, k[1]));
    ck_assert_uint_eq(region_bucket_size(dst, 0), 1);
    free(l);
    region_free(src);
    region_free(dst);
}
END_TEST

START_TEST(tracker_merge_keeps_highest)
{
    region_t *r = new_partitioned(ME);
    region_bucket_set_role(r, 3, ROLE_PRIMARY, 1, ME, COPIES);
    char k[16];
    key_in(r, 3, 0, k, sizeof k);
    region_op p = put_op(k, "v", 50, 10);
    ck_assert_int_eq(write_at_primary(r, &p, true).outcome, RW_APPLIED);
    const uint64_t pairs[3][2] = {{50, 4}, {51, 8}, {0, 99}};
    ck_assert_int_eq(region_tracker_merge(r, 3, pairs, 3), 0);
    region_op a = put_op(k, "a", 50, 10), b = put_op(k, "b", 51, 8), c = put_op(k, "c", 51, 9);
    ck_assert_int_eq(write_at_primary(r, &a, true).outcome, RW_DUPLICATE); /* 10 kept over 4 */
    ck_assert_int_eq(write_at_primary(r, &b, true).outcome, RW_DUPLICATE);
    ck_assert_int_eq(write_at_primary(r, &c, true).outcome, RW_APPLIED);
    uint64_t out[8][2];
    ck_assert_uint_eq(region_tracker_export(r, 3, out, 8), 2); /* client 0 is not an event id */
    ck_assert_int_eq(region_tracker_merge(r, 3, pairs, 0), 0);
    region_free(r);
}
END_TEST

static Suite *region_cluster_suite(void)
{
    Suite *s = suite_create("region_cluster");
    TCase *tc = tu_tcase(s, "roles", 30);
    tcase_add_test(tc, roles);
    tcase_add_test(tc, read_check);
    tc = tu_tcase(s, "primary", 30);
    tcase_add_test(tc, not_primary_and_unavailable);
    tcase_add_test(tc, applied_versions_and_targets);
    tcase_add_test(tc, counters_follow_terms);
    tcase_add_test(tc, event_ids);
    tcase_add_test(tc, remove_absent_and_tombstones);
    tcase_add_test(tc, tombstone_purge);
    tcase_add_test(tc, tombstone_bytes);
    tcase_add_test(tc, write_without_copies);
    tc = tu_tcase(s, "copies", 30);
    tcase_add_test(tc, replica_terms);
    tcase_add_test(tc, replica_applies_newer_only);
    tcase_add_test(tc, clear_and_floor);
    tcase_add_test(tc, bucket_drop_and_targets);
    tc = tu_tcase(s, "images", 30);
    tcase_add_test(tc, image_round_trip);
    tcase_add_test(tc, image_after_clear_carries_floor);
    tcase_add_test(tc, tracker_merge_keeps_highest);
    return s;
}

int main(void)
{
    Suite *s = region_cluster_suite();
    return tu_run(&s, 1);
}
