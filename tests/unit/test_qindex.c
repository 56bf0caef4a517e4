/* Unit tests of indexes (region/ipart.c, qindex.c, qindex_plan.c):
 *   - a bucket part on its own: replace, remove, clear, = and ranges with
 *     integers and floats mixed, strings, booleans, values that are not
 *     indexed (NULL, arrays, maps);
 *   - an index on a region kept in step with puts, replaces, removes and
 *     clears, built over existing data, and on a cluster copy with image
 *     entries, replicated removes, a clear below a floor and a bucket that
 *     leaves the member;
 *   - definitions: names, expressions with error positions, duplicates,
 *     the per-region limit, destroy while a probe holds the index;
 *   - the planner: which conjunct and index it picks, aliases and
 *     .entries, bind parameters, the plan's text;
 *   - a differential test: random values and random predicates, where the
 *     index's candidates must include every entry a full scan matches, and
 *     candidates filtered by the WHERE must be exactly the scan's matches. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/hash.h"
#include "region/ipart.h"
#include "region/qeval.h"
#include "region/qindex.h"
#include "region/region.h"
#include "tools/cli/json_mp.h"
#include "tu.h"

/* ---- helpers ---- */

static region_t *new_region(region_type type, uint32_t nbuckets)
{
    region_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.name, sizeof cfg.name, "r");
    cfg.type = type;
    cfg.redundant_copies = region_type_default_copies(type);
    cfg.total_num_buckets = nbuckets;
    const char *why = NULL;
    ck_assert_int_eq(region_config_check(&cfg, &why), 0);
    region_t *r = region_new(&cfg, 1);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* JSON to MessagePack (b to free). */
static void mp_of(const char *json, buf_t *b)
{
    buf_init(b);
    ck_assert_msg(json_mp_parse(json, strlen(json), b, NULL) == 0, "bad JSON: %s", json);
}

static void put(region_t *r, const char *key, const char *json)
{
    buf_t b;
    mp_of(json, &b);
    ck_assert_int_eq(region_put(r, hash_key(key, strlen(key)), (const uint8_t *)key,
                                (uint32_t)strlen(key), true, buf_rptr(&b),
                                (uint32_t)buf_readable(&b), NULL),
                     0);
    buf_free(&b);
}

static void del(region_t *r, const char *key)
{
    region_remove(r, hash_key(key, strlen(key)), (const uint8_t *)key, (uint32_t)strlen(key));
}

static void create(region_t *r, const char *name, const char *expr, qindex_kind kind)
{
    qerror err;
    int rc = qindex_create(r, name, expr, strlen(expr), kind, &err);
    ck_assert_msg(rc == 0, "create %s on %s: %d %s", name, expr, rc, err.msg);
}

/* The sorted, comma-joined keys a query's probe yields that also match its
 * WHERE ("-" when no index was used); *cands counts the probe's entries. */
typedef struct collect {
    const query_t *q;
    const qvalue *params;
    uint32_t nparams;
    char keys[512][32];
    int n;
    int cands;
    bool check_where;
} collect;

static int by_str(const void *a, const void *b) { return strcmp(a, b); }

static bool where_matches(const query_t *q, const qvalue *params, uint32_t nparams,
                          const entry_view *e)
{
    qrow row = {.key = qv_str(e->key, e->klen)};
    ck_assert(qvalue_decode(e->value, e->vlen, 64, &row.value) == e->vlen);
    qenv env = {.source = q->source, .alias = q->alias, .params = params, .nparams = nparams};
    bool m = false;
    ck_assert_int_eq(qeval_match(q->where, &env, &row, &m, NULL), 0);
    return m;
}

static int collect_visit(void *arg, const entry_view *e)
{
    collect *c = arg;
    c->cands++;
    if (c->check_where && !where_matches(c->q, c->params, c->nparams, e))
        return 0;
    ck_assert_int_lt(c->n, 512);
    ck_assert_uint_lt(e->klen, 32);
    memcpy(c->keys[c->n], e->key, e->klen);
    c->keys[c->n][e->klen] = 0;
    c->n++;
    return 0;
}

static void joined(collect *c, char *out, size_t cap)
{
    qsort(c->keys, (size_t)c->n, sizeof c->keys[0], by_str);
    out[0] = 0;
    for (int i = 0; i < c->n; i++) {
        if (i)
            strncat(out, ",", cap - strlen(out) - 1);
        strncat(out, c->keys[i], cap - strlen(out) - 1);
    }
}

static collect *run_probe(region_t *r, const query_t *q, const qvalue *params, uint32_t nparams,
                          bool check_where, qindex_probe **probe_out)
{
    collect *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    c->q = q;
    c->params = params;
    c->nparams = nparams;
    c->check_where = check_where;
    qindex_probe *p = NULL;
    ck_assert_int_eq(qindex_plan(r, q, params, nparams, &p), 0);
    if (p) {
        for (uint32_t b = 0; b < region_cfg(r)->total_num_buckets; b++)
            ck_assert_int_eq(qindex_probe_bucket(p, r, b, collect_visit, c), 0);
    } else {
        c->n = -1;
    }
    if (probe_out)
        *probe_out = p;
    else
        qindex_probe_free(p);
    return c;
}

/* The matching keys through the index, joined; "-" when none is used. The
 * plan's line goes to plan (may be NULL). */
static void lookup(region_t *r, const char *text, const qvalue *params, uint32_t nparams,
                   char *out, size_t cap, char *plan, size_t plancap)
{
    query_t *q;
    qerror err;
    ck_assert_msg(query_parse(text, strlen(text), &q, &err) == 0, "%s: %s", text, err.msg);
    qindex_probe *p;
    collect *c = run_probe(r, q, params, nparams, true, &p);
    if (plan)
        snprintf(plan, plancap, "%s", p ? qindex_probe_describe(p) : "-");
    if (c->n < 0)
        snprintf(out, cap, "-");
    else
        joined(c, out, cap);
    qindex_probe_free(p);
    free(c);
    query_free(q);
}

#define LOOKUP(r, text, want)                                                                      \
    do {                                                                                           \
        char got_[4096];                                                                           \
        lookup(r, text, NULL, 0, got_, sizeof got_, NULL, 0);                                      \
        ck_assert_msg(strcmp(got_, want) == 0, "%s: got [%s], want [%s]", text, got_, want);      \
    } while (0)

static int count_key(void *arg, uint64_t h, const uint8_t *k, uint32_t n)
{
    (void)h;
    (void)k;
    (void)n;
    (*(int *)arg)++;
    return 0;
}

static qvalue J(const char *json, buf_t *keep)
{
    mp_of(json, keep);
    qvalue v;
    ck_assert(qvalue_decode(buf_rptr(keep), buf_readable(keep), 64, &v) == buf_readable(keep));
    return v;
}

static int part_eq(ipart *p, const char *json)
{
    buf_t b;
    qvalue v = J(json, &b);
    int n = 0;
    ipart_eq(p, &v, count_key, &n);
    buf_free(&b);
    return n;
}

static int part_range(ipart *p, const char *lo, bool lo_incl, const char *hi, bool hi_incl)
{
    buf_t bl, bh;
    qvalue l, h;
    if (lo)
        l = J(lo, &bl);
    if (hi)
        h = J(hi, &bh);
    int n = 0;
    ck_assert_int_eq(ipart_range(p, lo ? &l : NULL, lo_incl, hi ? &h : NULL, hi_incl, count_key, &n),
                     0);
    if (lo)
        buf_free(&bl);
    if (hi)
        buf_free(&bh);
    return n;
}

static void part_set(ipart *p, const char *key, const char *json)
{
    buf_t b;
    qvalue v = J(json, &b);
    ck_assert_int_eq(ipart_set(p, hash_key(key, strlen(key)), (const uint8_t *)key,
                               (uint32_t)strlen(key), &v),
                     0);
    buf_free(&b);
}

/* ---- bucket parts ---- */

START_TEST(part_numbers_and_strings)
{
    for (int kind = 0; kind < 2; kind++) {
        ipart *p = ipart_new(kind, 99);
        ck_assert_ptr_nonnull(p);
        part_set(p, "a", "1");
        part_set(p, "b", "1.0");
        part_set(p, "c", "2.5");
        part_set(p, "d", "\"1\"");
        part_set(p, "e", "true");
        part_set(p, "f", "null");     /* not indexed */
        part_set(p, "g", "[1]");      /* not indexed */
        part_set(p, "h", "{\"a\":1}"); /* not indexed */
        part_set(p, "i", "-3");
        ck_assert_uint_eq(ipart_count(p), 6);
        ck_assert_int_eq(part_eq(p, "1"), 2);   /* 1 and 1.0 */
        ck_assert_int_eq(part_eq(p, "1.0"), 2);
        ck_assert_int_eq(part_eq(p, "\"1\""), 1);
        ck_assert_int_eq(part_eq(p, "true"), 1);
        ck_assert_int_eq(part_eq(p, "false"), 0);
        ck_assert_int_eq(part_eq(p, "null"), 0);
        if (kind == QINDEX_RANGE) {
            ck_assert_int_eq(part_range(p, "1", false, NULL, false), 1);  /* 2.5 */
            ck_assert_int_eq(part_range(p, "1", true, NULL, false), 3);   /* 1, 1.0, 2.5 */
            ck_assert_int_eq(part_range(p, NULL, false, "2.5", false), 3); /* -3, 1, 1.0 */
            ck_assert_int_eq(part_range(p, "-10", false, "10", false), 4); /* numbers only */
            ck_assert_int_eq(part_range(p, "\"\"", true, NULL, false), 1); /* strings only */
            ck_assert_int_eq(part_range(p, NULL, false, "true", true), 1); /* booleans only */
            ck_assert_int_eq(part_range(p, "0.5", true, "1", false), 0);
        } else {
            int n = 0;
            buf_t b;
            qvalue one = J("1", &b);
            ck_assert_int_eq(ipart_range(p, &one, true, NULL, false, count_key, &n), -EINVAL);
            buf_free(&b);
        }
        /* replace: a moves from 1 to "x", then to something not indexed */
        part_set(p, "a", "\"x\"");
        ck_assert_int_eq(part_eq(p, "1"), 1);
        ck_assert_int_eq(part_eq(p, "\"x\""), 1);
        part_set(p, "a", "null");
        ck_assert_int_eq(part_eq(p, "\"x\""), 0);
        ck_assert_uint_eq(ipart_count(p), 5);
        ipart_remove(p, hash_key("b", 1), (const uint8_t *)"b", 1);
        ipart_remove(p, hash_key("zz", 2), (const uint8_t *)"zz", 2); /* absent: no-op */
        ck_assert_int_eq(part_eq(p, "1"), 0);
        ck_assert_uint_eq(ipart_count(p), 4);
        ipart_clear(p);
        ck_assert_uint_eq(ipart_count(p), 0);
        ck_assert_int_eq(part_eq(p, "2.5"), 0);
        part_set(p, "z", "7");
        ck_assert_int_eq(part_eq(p, "7.0"), 1);
        ipart_free(p);
    }
}
END_TEST

START_TEST(part_many_keys)
{
    /* enough keys and values to grow both tables and build a tall list */
    for (int kind = 0; kind < 2; kind++) {
        ipart *p = ipart_new(kind, 7);
        char key[32], val[32];
        for (int i = 0; i < 20000; i++) {
            snprintf(key, sizeof key, "k%d", i);
            snprintf(val, sizeof val, "%d", i % 5000);
            part_set(p, key, val);
        }
        ck_assert_uint_eq(ipart_count(p), 20000);
        ck_assert_int_eq(part_eq(p, "4999"), 4);
        if (kind == QINDEX_RANGE)
            ck_assert_int_eq(part_range(p, "100", true, "200", false), 400);
        for (int i = 0; i < 20000; i += 2) {
            snprintf(key, sizeof key, "k%d", i);
            ipart_remove(p, hash_key(key, strlen(key)), (const uint8_t *)key, (uint32_t)strlen(key));
        }
        ck_assert_uint_eq(ipart_count(p), 10000);
        if (kind == QINDEX_RANGE)
            ck_assert_int_eq(part_range(p, "100", true, "200", false), 200);
        ck_assert_uint_gt(ipart_bytes(p), 10000 * 20);
        ipart_free(p);
    }
}
END_TEST

/* ---- an index on a region ---- */

START_TEST(region_maintenance)
{
    region_t *r = new_region(REGION_PARTITION, 13);
    put(r, "o1", "{\"status\":\"open\",\"total\":10,\"c\":{\"city\":\"Oslo\"}}");
    put(r, "o2", "{\"status\":\"paid\",\"total\":20.5,\"c\":{\"city\":\"Lima\"}}");
    put(r, "o3", "{\"status\":\"open\",\"total\":30}");
    /* built over existing data */
    create(r, "byStatus", "status", QINDEX_HASH);
    create(r, "byTotal", "total", QINDEX_RANGE);
    create(r, "byCity", "c.city", QINDEX_RANGE);
    LOOKUP(r, "SELECT * FROM /r WHERE status = 'open'", "o1,o3");
    LOOKUP(r, "SELECT * FROM /r WHERE total > 15", "o2,o3");
    LOOKUP(r, "SELECT * FROM /r o WHERE o.c.city = 'Lima'", "o2");
    /* put, replace, remove */
    put(r, "o4", "{\"status\":\"open\",\"total\":20}");
    put(r, "o1", "{\"status\":\"paid\",\"total\":10}");
    del(r, "o3");
    LOOKUP(r, "SELECT * FROM /r WHERE status = 'open'", "o4");
    LOOKUP(r, "SELECT * FROM /r WHERE status = 'paid'", "o1,o2");
    LOOKUP(r, "SELECT * FROM /r WHERE total >= 20", "o2,o4");
    LOOKUP(r, "SELECT * FROM /r o WHERE o.c.city = 'Oslo'", "");
    /* same-size replace (overwritten in place) */
    put(r, "o4", "{\"status\":\"shut\",\"total\":20}");
    LOOKUP(r, "SELECT * FROM /r WHERE status = 'shut'", "o4");
    LOOKUP(r, "SELECT * FROM /r WHERE status = 'open'", "");
    qindex_info info[QINDEX_MAX];
    ck_assert_uint_eq(qindex_list(r, info, QINDEX_MAX), 3);
    ck_assert_str_eq(info[0].name, "byStatus");
    ck_assert_str_eq(info[1].name, "byTotal");
    ck_assert_str_eq(info[2].expr, "c.city");
    ck_assert_int_eq(info[0].kind, QINDEX_HASH);
    ck_assert_uint_eq(info[0].entries, 3);
    ck_assert_uint_eq(info[2].entries, 1);
    ck_assert(info[0].valid);
    ck_assert_uint_gt(info[0].bytes, 0);
    /* clear */
    region_clear(r);
    ck_assert_uint_eq(qindex_list(r, info, QINDEX_MAX), 3);
    ck_assert_uint_eq(info[0].entries, 0);
    ck_assert_uint_eq(info[1].entries, 0);
    LOOKUP(r, "SELECT * FROM /r WHERE status = 'paid'", "");
    put(r, "o9", "{\"status\":\"paid\",\"total\":1}");
    LOOKUP(r, "SELECT * FROM /r WHERE status = 'paid'", "o9");
    ck_assert_int_eq(qindex_destroy(r, "byTotal"), 0);
    ck_assert_int_eq(qindex_destroy(r, "byTotal"), -ENOENT);
    ck_assert_uint_eq(qindex_list(r, info, QINDEX_MAX), 2);
    LOOKUP(r, "SELECT * FROM /r WHERE total = 1", "-");
    region_free(r); /* frees the indexes: the leak checker watches */
}
END_TEST

/* The bucket of key, on a clustered region. */
static uint32_t bucket_of(region_t *r, const char *key)
{
    return region_bucket_of(r, hash_key(key, strlen(key)));
}

static void image_put(region_t *r, const char *key, const char *json, uint64_t counter)
{
    buf_t b;
    mp_of(json, &b);
    region_op op = {.kind = REGION_OP_PUT, .hash = hash_key(key, strlen(key)),
                    .key = (const uint8_t *)key, .klen = (uint32_t)strlen(key), .key_is_str = true,
                    .value = buf_rptr(&b), .vlen = (uint32_t)buf_readable(&b),
                    .counter = counter, .member_id = 2};
    ck_assert_int_eq(region_image_apply(r, bucket_of(r, key), &op), 0);
    buf_free(&b);
}

static void replica_op(region_t *r, uint8_t kind, const char *key, const char *json,
                       uint64_t counter)
{
    buf_t b;
    buf_init(&b);
    if (json)
        mp_of(json, &b);
    region_op op = {.kind = kind, .hash = hash_key(key, strlen(key)),
                    .key = (const uint8_t *)key, .klen = (uint32_t)strlen(key), .key_is_str = true,
                    .value = buf_rptr(&b), .vlen = (uint32_t)buf_readable(&b),
                    .counter = counter, .member_id = 2};
    ck_assert_int_eq(region_replica_apply(r, bucket_of(r, key), 1, &op), 0);
    buf_free(&b);
}

START_TEST(cluster_copy_maintenance)
{
    region_t *r = new_region(REGION_PARTITION_REDUNDANT, 5);
    region_set_clustered(r);
    create(r, "byS", "s", QINDEX_RANGE);
    /* this member receives the buckets of a, b and c as images */
    const char *keys[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        region_bucket_set_role(r, bucket_of(r, keys[i]), ROLE_INIT, 1, 2, NULL, 0);
    image_put(r, "a", "{\"s\":1}", 5);
    image_put(r, "b", "{\"s\":2}", 6);
    image_put(r, "c", "{\"s\":2.0}", 7);
    for (int i = 0; i < 3; i++)
        region_bucket_set_role(r, bucket_of(r, keys[i]), ROLE_COPY, 1, 2, NULL, 0);
    LOOKUP(r, "SELECT * FROM /r WHERE s = 2", "b,c");
    /* replicated writes: a replace and a remove (a tombstone) */
    replica_op(r, REGION_OP_PUT, "a", "{\"s\":2}", 10);
    replica_op(r, REGION_OP_REMOVE, "b", NULL, 11);
    LOOKUP(r, "SELECT * FROM /r WHERE s = 2", "a,c");
    LOOKUP(r, "SELECT * FROM /r WHERE s < 3", "a,c");
    /* a clear below a counter in c's bucket removes c (counter 7) */
    region_op clr = {.kind = REGION_OP_CLEAR, .counter = 9, .member_id = 2};
    uint32_t cb = bucket_of(r, "c");
    ck_assert_int_eq(region_replica_apply(r, cb, 1, &clr), 0);
    char want[16];
    snprintf(want, sizeof want, "%s", cb == bucket_of(r, "a") ? "" : "a");
    LOOKUP(r, "SELECT * FROM /r WHERE s = 2", want);
    /* a's bucket leaves the member: its part is dropped */
    region_bucket_drop(r, bucket_of(r, "a"));
    LOOKUP(r, "SELECT * FROM /r WHERE s = 2", "");
    qindex_info info;
    ck_assert_int_eq(qindex_get(r, "byS", &info), 0);
    ck_assert_uint_eq(info.entries, 0);
    region_free(r);
}
END_TEST

START_TEST(definitions)
{
    region_t *r = new_region(REGION_PARTITION, 3);
    qerror err;
    const char *good[] = {"a", "a.b.c", "items[0]", "items[-1]", "c['first name']", "c['x'].y[2]"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(qindex_expr_check(good[i], strlen(good[i]), &err) == 0, "%s: %s", good[i],
                      err.msg);
    struct {
        const char *text;
        uint32_t pos;
    } bad[] = {{"a +", 3}, {"a + 1", 0}, {"UPPER(a)", 0}, {"", 0}, {"a[b]", 0}, {"'x'", 0},
               {"a.b = 1", 0}, {"$1", 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        ck_assert_msg(qindex_expr_check(bad[i].text, strlen(bad[i].text), &err) == -EINVAL,
                      "accepted %s", bad[i].text);
        ck_assert_msg(err.msg[0], "%s: no message", bad[i].text);
    }
    ck_assert_int_eq(qindex_create(r, "bad name", "a", 1, QINDEX_RANGE, &err), -EINVAL);
    ck_assert_int_eq(qindex_create(r, "", "a", 1, QINDEX_RANGE, &err), -EINVAL);
    ck_assert_int_eq(qindex_create(r, "i", "a +", 3, QINDEX_RANGE, &err), -EINVAL);
    ck_assert_uint_eq(err.pos, 3);
    char longexpr[QINDEX_EXPR_MAX + 8];
    memset(longexpr, 'a', sizeof longexpr);
    ck_assert_int_eq(qindex_create(r, "i", longexpr, sizeof longexpr, QINDEX_RANGE, &err), -EINVAL);
    create(r, "i", "a", QINDEX_RANGE);
    ck_assert_int_eq(qindex_create(r, "i", "b", 1, QINDEX_HASH, &err), -EEXIST);
    char name[16];
    for (int i = 1; i < QINDEX_MAX; i++) {
        snprintf(name, sizeof name, "i%d", i);
        create(r, name, "a", QINDEX_HASH);
    }
    ck_assert_int_eq(qindex_create(r, "one-too-many", "a", 1, QINDEX_HASH, &err), -ENOSPC);
    ck_assert_int_eq(qindex_destroy(r, "i3"), 0);
    create(r, "again", "a", QINDEX_HASH);
    qindex_info info[QINDEX_MAX];
    ck_assert_uint_eq(qindex_list(r, info, 2), QINDEX_MAX);
    ck_assert_str_eq(info[0].name, "i");
    ck_assert_int_eq(qindex_get(r, "again", &info[0]), 0);
    ck_assert_int_eq(qindex_get(r, "i3", &info[0]), -ENOENT);
    ck_assert_int_eq(qindex_kind_parse("RANGE", 5, &info[0].kind), 0);
    ck_assert_int_eq(info[0].kind, QINDEX_RANGE);
    ck_assert_int_eq(qindex_kind_parse("Hash", 4, &info[0].kind), 0);
    ck_assert_int_eq(info[0].kind, QINDEX_HASH);
    ck_assert_int_eq(qindex_kind_parse("key", 3, &info[0].kind), -EINVAL);
    region_free(r);

    /* a region without indexes */
    r = new_region(REGION_PARTITION, 3);
    ck_assert_int_eq(qindex_destroy(r, "x"), -ENOENT);
    ck_assert_uint_eq(qindex_list(r, info, QINDEX_MAX), 0);
    LOOKUP(r, "SELECT * FROM /r WHERE a = 1", "-");
    region_free(r);
}
END_TEST

START_TEST(deferred_build)
{
    region_t *r = new_region(REGION_PARTITION, 7);
    char key[16], json[64];
    for (int i = 0; i < 70; i++) {
        snprintf(key, sizeof key, "k%02d", i);
        snprintf(json, sizeof json, "{\"a\": %d}", i % 5);
        put(r, key, json);
    }
    qerror err;
    ck_assert_int_eq(qindex_create_deferred(r, "ia", "a", 1, QINDEX_HASH, &err), 0);
    qindex_info info;
    ck_assert_int_eq(qindex_get(r, "ia", &info), 0);
    ck_assert_uint_eq(info.entries, 0); /* nothing built yet */
    const char *want = "k03,k08,k13,k18,k23,k28,k33,k38,k43,k48,k53,k58,k63,k68";
    char plan[256], got[1024];
    lookup(r, "SELECT * FROM /r WHERE a = 3", NULL, 0, got, sizeof got, plan, sizeof plan);
    ck_assert_str_eq(plan, "index lookup: a = 3 using hash index ia"); /* used at once */
    ck_assert_str_eq(got, want);
    put(r, "k03", "{\"a\": 4}"); /* a write to an unbuilt bucket: no part to update */
    want = "k08,k13,k18,k23,k28,k33,k38,k43,k48,k53,k58,k63,k68";
    uint32_t left = 7, steps = 0;
    while ((left = qindex_build_some(r, 2)) > 0) {
        steps++;
        LOOKUP(r, "SELECT * FROM /r WHERE a = 3", want); /* right at every step */
    }
    ck_assert_uint_eq(steps, 3); /* 7 buckets, 2 at a time */
    ck_assert_int_eq(qindex_get(r, "ia", &info), 0);
    ck_assert_uint_eq(info.entries, 70);
    LOOKUP(r, "SELECT * FROM /r WHERE a = 3", want);
    ck_assert_uint_eq(qindex_build_some(r, 2), 0);
    region_free(r);
}
END_TEST

START_TEST(destroy_under_probe)
{
    region_t *r = new_region(REGION_PARTITION, 3);
    put(r, "x", "{\"a\":1}");
    put(r, "y", "{\"a\":2}");
    create(r, "ia", "a", QINDEX_HASH);
    query_t *q;
    qerror err;
    const char *text = "SELECT * FROM /r WHERE a = 1";
    ck_assert_int_eq(query_parse(text, strlen(text), &q, &err), 0);
    qindex_probe *p;
    collect *c = run_probe(r, q, NULL, 0, false, &p);
    ck_assert_int_eq(c->cands, 1);
    free(c);
    ck_assert_int_eq(qindex_destroy(r, "ia"), 0);
    /* the probe still works: it reads whole buckets now */
    c = calloc(1, sizeof(*c));
    for (uint32_t b = 0; b < 3; b++)
        ck_assert_int_eq(qindex_probe_bucket(p, r, b, collect_visit, c), 0);
    ck_assert_int_eq(c->cands, 2);
    free(c);
    qindex_probe_free(p);
    query_free(q);
    region_free(r);
}
END_TEST

/* ---- the planner ---- */

#define PLAN(r, text, want)                                                                        \
    do {                                                                                           \
        char got_[1024], plan_[512];                                                               \
        lookup(r, text, NULL, 0, got_, sizeof got_, plan_, sizeof plan_);                          \
        ck_assert_msg(strcmp(plan_, want) == 0, "%s: plan [%s], want [%s]", text, plan_, want);   \
    } while (0)

START_TEST(planner_choices)
{
    region_t *r = new_region(REGION_PARTITION, 7);
    put(r, "k1", "{\"a\":1,\"b\":\"x\",\"c\":{\"d\":[5,6]},\"key\":3}");
    put(r, "k2", "{\"a\":2,\"b\":\"y\",\"c\":{\"d\":[6,7]}}");
    create(r, "ra", "a", QINDEX_RANGE);
    create(r, "hb", "b", QINDEX_HASH);
    create(r, "rd", "c.d[0]", QINDEX_RANGE);
    create(r, "hk", "key", QINDEX_HASH);
    PLAN(r, "SELECT * FROM /r WHERE a = 1", "index lookup: a = 1 using range index ra");
    PLAN(r, "SELECT * FROM /r o WHERE o.a > 1 AND o.b = 'y'",
         "index lookup: o.b = 'y' using hash index hb");
    PLAN(r, "SELECT * FROM /r o WHERE o.a IN (1, 2) AND o.a > 0",
         "index lookup: o.a IN (1, 2) using range index ra");
    PLAN(r, "SELECT * FROM /r WHERE 1 < a AND a <= 5 AND a < 9",
         "index range: 1 < a AND a <= 5 using range index ra");
    PLAN(r, "SELECT * FROM /r WHERE b > 'a'", "-"); /* a hash index has no order */
    PLAN(r, "SELECT * FROM /r WHERE a = 1 OR b = 'x'", "-");
    PLAN(r, "SELECT * FROM /r WHERE NOT (a = 1)", "-");
    PLAN(r, "SELECT * FROM /r WHERE a NOT IN (1)", "-");
    PLAN(r, "SELECT * FROM /r WHERE a = NULL", "-");
    PLAN(r, "SELECT * FROM /r WHERE a + 0 = 1", "-");
    PLAN(r, "SELECT * FROM /r WHERE a IS NULL", "-");
    PLAN(r, "SELECT * FROM /r", "-");
    PLAN(r, "SELECT * FROM /r.keys k WHERE k = 'k1'", "-");
    PLAN(r, "SELECT * FROM /r.entries e WHERE e.value.c.d[0] >= 6",
         "index range: e.value.c.d[0] >= 6 using range index rd");
    PLAN(r, "SELECT * FROM /r.entries e WHERE value.b = 'x'",
         "index lookup: value.b = 'x' using hash index hb");
    PLAN(r, "SELECT * FROM /r.entries e WHERE e.key = 'k1'", "-");
    PLAN(r, "SELECT * FROM /r.entries WHERE key = 3", "-"); /* the entry's key, not the field */
    PLAN(r, "SELECT * FROM /r WHERE key = 3", "index lookup: key = 3 using hash index hk");
    /* the alias is not a field: o.a in FROM /r o is a, a.x in FROM /r is a.x */
    PLAN(r, "SELECT * FROM /r a WHERE a.a = 1", "index lookup: a.a = 1 using range index ra");
    PLAN(r, "SELECT * FROM /r WHERE c['d'][0] = 5",
         "index lookup: c['d'][0] = 5 using range index rd");
    /* results */
    LOOKUP(r, "SELECT * FROM /r WHERE 1 < a AND a <= 5", "k2");
    LOOKUP(r, "SELECT * FROM /r WHERE a IN (2, 2.0, 1, NULL)", "k1,k2");
    LOOKUP(r, "SELECT * FROM /r WHERE a > 1.5", "k2");
    LOOKUP(r, "SELECT * FROM /r WHERE a > 'z'", "");
    LOOKUP(r, "SELECT * FROM /r.entries e WHERE e.value.c.d[0] >= 6", "k2");
    /* the probe ignores the string bound (a superset), the WHERE drops all */
    LOOKUP(r, "SELECT * FROM /r WHERE a > 0 AND a < 'z'", "");
    /* bind parameters */
    buf_t b1, b2;
    qvalue params[2] = {J("2", &b1), J("\"x\"", &b2)};
    char got[256], plan[512];
    lookup(r, "SELECT * FROM /r WHERE a = $1", params, 2, got, sizeof got, plan, sizeof plan);
    ck_assert_str_eq(got, "k2");
    ck_assert_str_eq(plan, "index lookup: a = $1 using range index ra");
    lookup(r, "SELECT * FROM /r WHERE b IN ($2, 'q') AND a >= $1", params, 2, got, sizeof got,
           plan, sizeof plan);
    ck_assert_str_eq(got, "");
    ck_assert_str_eq(plan, "index lookup: b IN ($2, 'q') using hash index hb");
    /* EXPLAIN without values: the plan names the index, the probe finds nothing */
    lookup(r, "SELECT * FROM /r WHERE a > $1 AND a < $2", NULL, 0, got, sizeof got, plan,
           sizeof plan);
    ck_assert_str_eq(plan, "index range: a > $1 using range index ra");
    ck_assert_str_eq(got, "");
    lookup(r, "SELECT * FROM /r WHERE b = $3", params, 2, got, sizeof got, plan, sizeof plan);
    ck_assert_str_eq(plan, "index lookup: b = $3 using hash index hb");
    buf_free(&b1);
    buf_free(&b2);
    region_free(r);
}
END_TEST

/* ---- differential: index against scan ---- */

static const char *rand_value(unsigned *seed, char *buf, size_t cap)
{
    static const char *strs[] = {"\"\"", "\"a\"", "\"ab\"", "\"b\"", "\"10\"", "\"\\u00e9\""};
    switch (rand_r(seed) % 9) {
    case 0: snprintf(buf, cap, "%d", rand_r(seed) % 11 - 5); break;
    case 1: snprintf(buf, cap, "%d.5", rand_r(seed) % 11 - 5); break;
    case 2: snprintf(buf, cap, "%d.0", rand_r(seed) % 11 - 5); break;
    case 3: snprintf(buf, cap, "%s", strs[rand_r(seed) % 6]); break;
    case 4: snprintf(buf, cap, "%s", rand_r(seed) % 2 ? "true" : "false"); break;
    case 5: snprintf(buf, cap, "null"); break;
    case 6: snprintf(buf, cap, "[%d]", rand_r(seed) % 3); break;
    case 7: snprintf(buf, cap, "{\"x\":1}"); break;
    default: snprintf(buf, cap, "%d", rand_r(seed) % 5); break;
    }
    return buf;
}

static const char *rand_const(unsigned *seed, char *buf, size_t cap)
{
    static const char *strs[] = {"''", "'a'", "'ab'", "'b'", "'10'", "'z'"};
    switch (rand_r(seed) % 7) {
    case 0: case 1: snprintf(buf, cap, "%d", rand_r(seed) % 13 - 6); break;
    case 2: snprintf(buf, cap, "%d.5", rand_r(seed) % 13 - 6); break;
    case 3: snprintf(buf, cap, "%s", strs[rand_r(seed) % 6]); break;
    case 4: snprintf(buf, cap, "%s", rand_r(seed) % 2 ? "TRUE" : "FALSE"); break;
    case 5: snprintf(buf, cap, "NULL"); break;
    default: snprintf(buf, cap, "%d.0", rand_r(seed) % 5); break;
    }
    return buf;
}

static void rand_where(unsigned *seed, char *out, size_t cap)
{
    static const char *ops[] = {"=", "<", "<=", ">", ">="};
    char c1[32], c2[32], c3[32];
    rand_const(seed, c1, sizeof c1);
    rand_const(seed, c2, sizeof c2);
    rand_const(seed, c3, sizeof c3);
    const char *path = rand_r(seed) % 4 ? "o.v" : "o.n.w";
    switch (rand_r(seed) % 6) {
    case 0: snprintf(out, cap, "%s %s %s", path, ops[rand_r(seed) % 5], c1); break;
    case 1: snprintf(out, cap, "%s %s %s", c1, ops[rand_r(seed) % 5], path); break;
    case 2: snprintf(out, cap, "%s IN (%s, %s, %s)", path, c1, c2, c3); break;
    case 3:
        snprintf(out, cap, "%s %s %s AND %s %s %s", path, ops[1 + rand_r(seed) % 4], c1, path,
                 ops[1 + rand_r(seed) % 4], c2);
        break;
    case 4: snprintf(out, cap, "%s %s %s AND o.k <> 3", path, ops[rand_r(seed) % 5], c1); break;
    default:
        snprintf(out, cap, "%s > %s AND %s < %s AND %s <> %s", path, c1, path, c2, path, c3);
        break;
    }
}

static void scan_matches(region_t *r, const query_t *q, char *out, size_t cap)
{
    collect *c = calloc(1, sizeof(*c));
    c->q = q;
    c->check_where = true;
    uint64_t next = 0;
    ck_assert_int_eq(region_scan(r, 0, UINT32_MAX, collect_visit, c, &next), 0);
    joined(c, out, cap);
    free(c);
}

static void differential(region_t *r, unsigned *seed, int rounds, int *used)
{
    for (int i = 0; i < rounds; i++) {
        char where[256], text[320], want[8192], got[8192];
        rand_where(seed, where, sizeof where);
        snprintf(text, sizeof text, "SELECT * FROM /r o WHERE %s", where);
        query_t *q;
        qerror err;
        ck_assert_msg(query_parse(text, strlen(text), &q, &err) == 0, "%s: %s", text, err.msg);
        scan_matches(r, q, want, sizeof want);
        collect *c = run_probe(r, q, NULL, 0, true, NULL);
        if (c->n >= 0) {
            (*used)++;
            joined(c, got, sizeof got);
            ck_assert_msg(strcmp(got, want) == 0, "%s:\n index [%s]\n scan  [%s]", text, got,
                          want);
            /* every candidate once: no more candidates than entries */
            ck_assert_uint_le((uint64_t)c->cands, region_size(r));
        }
        free(c);
        query_free(q);
    }
}

START_TEST(index_equals_scan)
{
    unsigned seed = 4242;
    region_t *r = new_region(REGION_PARTITION, 11);
    char key[16], v1[32], v2[32], json[128];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "k%d", i);
        rand_value(&seed, v1, sizeof v1);
        rand_value(&seed, v2, sizeof v2);
        if (rand_r(&seed) % 10 == 0) /* v missing */
            snprintf(json, sizeof json, "{\"k\":%d,\"n\":{\"w\":%s}}", i % 7, v2);
        else
            snprintf(json, sizeof json, "{\"k\":%d,\"v\":%s,\"n\":{\"w\":%s}}", i % 7, v1, v2);
        put(r, key, json);
    }
    create(r, "rv", "v", QINDEX_RANGE);
    create(r, "hv", "v", QINDEX_HASH);
    create(r, "hw", "n.w", QINDEX_HASH);
    create(r, "rw", "n.w", QINDEX_RANGE);
    int used = 0;
    for (int round = 0; round < 4; round++) {
        differential(r, &seed, 150, &used);
        /* churn: replaces, removes, inserts, between rounds */
        for (int i = 0; i < 200; i++) {
            snprintf(key, sizeof key, "k%d", rand_r(&seed) % 400);
            if (rand_r(&seed) % 4 == 0) {
                del(r, key);
                continue;
            }
            rand_value(&seed, v1, sizeof v1);
            rand_value(&seed, v2, sizeof v2);
            snprintf(json, sizeof json, "{\"k\":%d,\"v\":%s,\"n\":{\"w\":%s}}", i % 7, v1, v2);
            put(r, key, json);
        }
        if (round == 1)
            ck_assert_int_eq(qindex_destroy(r, "rv"), 0); /* = and IN by hv now */
    }
    ck_assert_int_gt(used, 300);
    region_free(r);
}
END_TEST

static Suite *qindex_suite(void)
{
    Suite *s = suite_create("qindex");
    TCase *tc = tu_tcase(s, "parts", 60);
    tcase_add_test(tc, part_numbers_and_strings);
    tcase_add_test(tc, part_many_keys);
    tc = tu_tcase(s, "indexes", 60);
    tcase_add_test(tc, region_maintenance);
    tcase_add_test(tc, cluster_copy_maintenance);
    tcase_add_test(tc, definitions);
    tcase_add_test(tc, destroy_under_probe);
    tcase_add_test(tc, deferred_build);
    tc = tu_tcase(s, "planner", 120);
    tcase_add_test(tc, planner_choices);
    tcase_add_test(tc, index_equals_scan);
    return s;
}

int main(void)
{
    Suite *s = qindex_suite();
    return tu_run(&s, 1);
}
