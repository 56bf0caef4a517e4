/* Unit tests for common/cmap.h: the cluster map's wire form (round trips,
 * limits, malformed inputs), its lookups and the locator's builders.
 *
 * Inputs are built with msgpack-c's packer and decoded from exact-size heap
 * copies, so under AddressSanitizer a read past the end is a report. */
#include <check.h>
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/cmap.h"
#include "common/mpw.h"
#include "tu.h"

/* Check's ck_assert_* record a checkpoint on every success, which is slow
 * in loops of many thousand checks; REQ only reports failures. */
#define REQ(cond)                                                                                  \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: assertion failed: %s", __FILE__, __LINE__, #cond);                \
    } while (0)

/* ---- helpers ---------------------------------------------------------- */

typedef struct body {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} body;

static msgpack_packer *begin(body *b)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
    return &b->pk;
}

static void done(body *b) { msgpack_sbuffer_destroy(&b->sb); }

static void pstr(msgpack_packer *pk, const char *s) { msgpack_pack_str_with_body(pk, s, strlen(s)); }

/* Decodes n bytes from an exact-size heap copy (ASan sees over-reads). */
static int decode_exact(const void *p, size_t n, cmap_t **out)
{
    uint8_t *copy = malloc(n ? n : 1);
    REQ(copy != NULL);
    if (n)
        memcpy(copy, p, n);
    int rc = cmap_decode(copy, n, out);
    free(copy);
    return rc;
}

static int decode_body(body *b, cmap_t **out) { return decode_exact(b->sb.data, b->sb.size, out); }

/* The body must be refused with -EPROTO. */
#define ck_reject(b)                                                                               \
    do {                                                                                           \
        cmap_t *m_ = NULL;                                                                         \
        int rc_ = decode_body((b), &m_);                                                           \
        if (rc_ == 0)                                                                              \
            cmap_free(m_);                                                                         \
        ck_assert_int_eq(rc_, -EPROTO);                                                            \
    } while (0)

static void encode_to(const cmap_t *m, buf_t *out)
{
    msgpack_packer pk;
    buf_init(out);
    mpw_init(&pk, out);
    REQ(cmap_encode(m, &pk) == 0);
}

static cmap_member member(uint32_t id, const char *name, const char *host, uint16_t port)
{
    cmap_member mem;
    memset(&mem, 0, sizeof mem);
    mem.id = id;
    snprintf(mem.name, sizeof mem.name, "%s", name);
    snprintf(mem.host, sizeof mem.host, "%s", host);
    mem.port = port;
    return mem;
}

static void set_bucket(cmap_region *r, uint32_t bi, uint64_t term, const uint32_t *ids,
                       const bool *init, uint32_t n)
{
    cmap_copy c[16];
    REQ((n) <= (16));
    for (uint32_t i = 0; i < n; i++)
        c[i] = (cmap_copy){.member_id = ids[i], .init = init ? init[i] : false};
    r->buckets[bi].term = term;
    REQ(cmap_bucket_set(&r->buckets[bi], c, n) == 0);
}

/* A map with a bit of everything: two locators, three members, a
 * partitioned region whose buckets cover every shape (ready copies,
 * initializing copies, no copies, no primary), a replicated region. */
static cmap_t *sample_map(void)
{
    cmap_t *m = cmap_new();
    ck_assert_ptr_nonnull(m);
    m->version = 42;
    m->view_id = 7;
    ck_assert_int_eq(cmap_locator_add(m, "127.0.0.1:10334"), 0);
    ck_assert_int_eq(cmap_locator_add(m, "locator-b.example:10335"), 0);
    cmap_member a = member(1, "alpha", "127.0.0.1", 40001);
    cmap_member b = member(2, "beta", "10.0.0.2", 40002);
    cmap_member c = member(300, "gamma", "host-c", 65535);
    ck_assert_int_eq(cmap_member_add(m, &a), 0);
    ck_assert_int_eq(cmap_member_add(m, &b), 0);
    ck_assert_int_eq(cmap_member_add(m, &c), 0);
    ck_assert_int_eq(cmap_region_add(m, "orders", "PARTITION_REDUNDANT", 1, 5), 0);
    ck_assert_int_eq(cmap_region_add(m, "config", "REPLICATE", 0, 1), 0);
    cmap_region *r = cmap_region_find(m, "orders", 6);
    ck_assert_ptr_nonnull(r);
    set_bucket(r, 0, 3, (uint32_t[]){1, 2}, NULL, 2);
    set_bucket(r, 1, 1, (uint32_t[]){2, 300}, (bool[]){false, true}, 2);
    /* bucket 2: never placed (term 0, no copies) */
    set_bucket(r, 3, 9, (uint32_t[]){0, 300}, NULL, 2); /* no primary, one copy */
    set_bucket(r, 4, 5, (uint32_t[]){300, 1, 2}, (bool[]){false, false, true}, 3);
    ck_assert_int_eq(cmap_index_add(r, "byStatus", "hash", "status"), 0);
    ck_assert_int_eq(cmap_index_add(r, "by.city-2", "range", "customer['first name'].city[0]"), 0);
    r = cmap_region_find(m, "config", 6);
    ck_assert_ptr_nonnull(r);
    set_bucket(r, 0, 1, (uint32_t[]){1, 2, 300}, NULL, 3);
    return m;
}

static void ck_maps_equal(const cmap_t *a, const cmap_t *b)
{
    REQ(a->version == b->version);
    REQ(a->view_id == b->view_id);
    REQ((a->nlocators) == (b->nlocators));
    for (size_t i = 0; i < a->nlocators; i++)
        REQ(strcmp(a->locators[i], b->locators[i]) == 0);
    REQ((a->nmembers) == (b->nmembers));
    for (size_t i = 0; i < a->nmembers; i++) {
        REQ((a->members[i].id) == (b->members[i].id));
        REQ(strcmp(a->members[i].name, b->members[i].name) == 0);
        REQ(strcmp(a->members[i].host, b->members[i].host) == 0);
        REQ((a->members[i].port) == (b->members[i].port));
    }
    REQ((a->nregions) == (b->nregions));
    for (size_t i = 0; i < a->nregions; i++) {
        const cmap_region *x = &a->regions[i], *y = &b->regions[i];
        REQ(strcmp(x->name, y->name) == 0);
        REQ(strcmp(x->type, y->type) == 0);
        REQ((x->redundant_copies) == (y->redundant_copies));
        REQ((x->nbuckets) == (y->nbuckets));
        for (uint32_t k = 0; k < x->nbuckets; k++) {
            REQ(x->buckets[k].term == y->buckets[k].term);
            REQ((x->buckets[k].ncopies) == (y->buckets[k].ncopies));
            for (uint32_t j = 0; j < x->buckets[k].ncopies; j++) {
                REQ((x->buckets[k].copies[j].member_id) == (y->buckets[k].copies[j].member_id));
                REQ((x->buckets[k].copies[j].init) == (y->buckets[k].copies[j].init));
            }
        }
        REQ(x->nindexes == y->nindexes);
        for (uint32_t k = 0; k < x->nindexes; k++) {
            REQ(strcmp(x->indexes[k].name, y->indexes[k].name) == 0);
            REQ(strcmp(x->indexes[k].type, y->indexes[k].type) == 0);
            REQ(strcmp(x->indexes[k].expr, y->indexes[k].expr) == 0);
        }
    }
}

/* Encodes m, decodes it, checks the result equals m and encodes to the
 * same bytes. */
static void ck_round_trip(const cmap_t *m)
{
    buf_t b1, b2;
    encode_to(m, &b1);
    cmap_t *d;
    REQ(decode_exact(buf_rptr(&b1), buf_readable(&b1), &d) == 0);
    REQ(d != NULL);
    ck_maps_equal(m, d);
    encode_to(d, &b2);
    REQ((buf_readable(&b1)) == (buf_readable(&b2)));
    REQ(memcmp(buf_rptr(&b1), buf_rptr(&b2), buf_readable(&b1)) == 0);
    cmap_free(d);
    buf_free(&b1);
    buf_free(&b2);
}

/* Pieces of hand-built maps. */
static void pack_member(msgpack_packer *pk, uint64_t id, const char *name, const char *host,
                        uint64_t port)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint64(pk, id);
    pstr(pk, name);
    pstr(pk, host);
    msgpack_pack_uint64(pk, port);
}

static void pack_bucket(msgpack_packer *pk, uint64_t term, const uint64_t *ids, uint32_t n,
                        const uint64_t *inits, uint32_t ninit)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint64(pk, term);
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_uint64(pk, ids[i]);
    msgpack_pack_array(pk, ninit);
    for (uint32_t i = 0; i < ninit; i++)
        msgpack_pack_uint64(pk, inits[i]);
}

/* {"version": 1, "view_id": 1, "locators": [], "members": [1 "a", 2 "b"],
 *  "regions": [one region of one bucket]} with the bucket given. */
static void pack_one_bucket_map(msgpack_packer *pk, uint64_t term, const uint64_t *ids, uint32_t n,
                                const uint64_t *inits, uint32_t ninit)
{
    msgpack_pack_map(pk, 5);
    pstr(pk, "version");
    msgpack_pack_uint64(pk, 1);
    pstr(pk, "view_id");
    msgpack_pack_uint64(pk, 1);
    pstr(pk, "locators");
    msgpack_pack_array(pk, 0);
    pstr(pk, "members");
    msgpack_pack_array(pk, 2);
    pack_member(pk, 1, "a", "h", 1);
    pack_member(pk, 2, "b", "h", 2);
    pstr(pk, "regions");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 5);
    pstr(pk, "r");
    pstr(pk, "PARTITION");
    msgpack_pack_uint32(pk, 0);
    msgpack_pack_uint32(pk, 1);
    msgpack_pack_array(pk, 1);
    pack_bucket(pk, term, ids, n, inits, ninit);
}

/* {"members": [the one member given]} */
static void pack_members_only(msgpack_packer *pk, uint64_t id, const char *name, const char *host,
                              uint64_t port)
{
    msgpack_pack_map(pk, 1);
    pstr(pk, "members");
    msgpack_pack_array(pk, 1);
    pack_member(pk, id, name, host, port);
}

/* {"regions": [[name, type, redundant, nbuckets, [nb empty buckets]]]} */
static void pack_region_only(msgpack_packer *pk, const char *name, const char *type,
                             uint64_t nbuckets, uint32_t nb)
{
    msgpack_pack_map(pk, 1);
    pstr(pk, "regions");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 5);
    pstr(pk, name);
    pstr(pk, type);
    msgpack_pack_uint32(pk, 1);
    msgpack_pack_uint64(pk, nbuckets);
    msgpack_pack_array(pk, nb);
    for (uint32_t i = 0; i < nb; i++)
        pack_bucket(pk, 0, NULL, 0, NULL, 0);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

/* ---- round trips -------------------------------------------------------- */

START_TEST(round_trip_sample)
{
    cmap_t *m = sample_map();
    ck_round_trip(m);
    /* and the decoded map answers lookups as the original does */
    buf_t b;
    encode_to(m, &b);
    cmap_t *d;
    ck_assert_int_eq(decode_exact(buf_rptr(&b), buf_readable(&b), &d), 0);
    cmap_region *r = cmap_region_find(d, "orders", 6);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(cmap_primary(r, 0), 1);
    ck_assert_uint_eq(cmap_primary(r, 2), 0);
    ck_assert_uint_eq(cmap_primary(r, 3), 0);
    ck_assert_uint_eq(cmap_primary(r, 4), 300);
    ck_assert_int_eq(cmap_role(r, 1, 300), CMAP_INIT);
    ck_assert_int_eq(cmap_role(r, 4, 2), CMAP_INIT);
    ck_assert_int_eq(cmap_role(r, 4, 1), CMAP_COPY);
    ck_assert_uint_eq(cmap_ready_copies(r, 4), 2);
    ck_assert_uint_eq(cmap_ready_copies(r, 3), 1);
    ck_assert_str_eq(d->locators[1], "locator-b.example:10335");
    ck_assert_str_eq(cmap_member_find(d, 300)->host, "host-c");
    cmap_free(d);
    buf_free(&b);
    cmap_free(m);
}
END_TEST

START_TEST(round_trip_empty)
{
    cmap_t *m = cmap_new();
    ck_assert_ptr_nonnull(m);
    ck_assert(m->version == 0 && m->nmembers == 0 && m->nregions == 0 && m->nlocators == 0);
    ck_round_trip(m);
    cmap_free(m);
}
END_TEST

START_TEST(round_trip_extremes)
{
    /* every string at its maximum length, every number at its maximum */
    cmap_t *m = cmap_new();
    m->version = UINT64_MAX;
    m->view_id = UINT64_MAX - 1;
    char *loc = repeat('l', CMAP_HOST_MAX + 7);
    ck_assert_int_eq(cmap_locator_add(m, loc), 0);
    ck_assert_uint_eq(strlen(m->locators[0]), CMAP_HOST_MAX + 7);
    char *name = repeat('n', CMAP_NAME_MAX), *host = repeat('h', CMAP_HOST_MAX);
    char *type = repeat('T', CMAP_TYPE_MAX);
    cmap_member mem = member(UINT32_MAX, "", "", 65535);
    memcpy(mem.name, name, CMAP_NAME_MAX + 1);
    memcpy(mem.host, host, CMAP_HOST_MAX + 1);
    ck_assert_int_eq(cmap_member_add(m, &mem), 0);
    mem = member(1, "one", "h", 1);
    ck_assert_int_eq(cmap_member_add(m, &mem), 0);
    ck_assert_int_eq(cmap_region_add(m, name, type, UINT32_MAX, 2), 0);
    ck_assert_str_eq(m->regions[0].name, name);
    ck_assert_str_eq(m->regions[0].type, type);
    set_bucket(&m->regions[0], 0, UINT64_MAX, (uint32_t[]){UINT32_MAX, 1}, (bool[]){true, true}, 2);
    set_bucket(&m->regions[0], 1, 0, (uint32_t[]){0}, NULL, 1);
    ck_round_trip(m);
    free(loc);
    free(name);
    free(host);
    free(type);
    cmap_free(m);
}
END_TEST

START_TEST(round_trip_large)
{
    /* 4096 members (the most a decoded map may hold) and a region of
     * 65536 buckets (the most buckets), each with three copies */
    cmap_t *m = cmap_new();
    for (uint32_t i = 1; i <= 4096; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "m%u", i);
        cmap_member mem = member(i * 3, nm, "127.0.0.1", (uint16_t)(10000 + i));
        REQ(cmap_member_add(m, &mem) == 0);
    }
    ck_assert_int_eq(cmap_region_add(m, "big", "PARTITION_REDUNDANT", 2, 65536), 0);
    cmap_region *r = &m->regions[0];
    for (uint32_t b = 0; b < 65536; b++) {
        uint32_t base = b % 4094;
        set_bucket(r, b, b + 1, (uint32_t[]){(base + 1) * 3, (base + 2) * 3, (base + 3) * 3},
                   (bool[]){false, false, b % 7 == 0}, 3);
    }
    ck_round_trip(m);
    cmap_free(m);
}
END_TEST

START_TEST(clone_is_deep)
{
    cmap_t *m = sample_map();
    cmap_t *c = cmap_clone(m);
    ck_assert_ptr_nonnull(c);
    ck_maps_equal(m, c);
    ck_assert_ptr_ne(c->members, m->members);
    ck_assert_ptr_ne(c->regions, m->regions);
    ck_assert_ptr_ne(c->regions[0].buckets, m->regions[0].buckets);
    ck_assert_ptr_ne(c->regions[0].buckets[0].copies, m->regions[0].buckets[0].copies);
    /* changing the clone leaves the original alone */
    c->regions[0].buckets[0].copies[0].member_id = 300;
    c->regions[0].buckets[0].term = 100;
    set_bucket(&c->regions[0], 2, 1, (uint32_t[]){2}, NULL, 1);
    snprintf(c->members[0].name, sizeof c->members[0].name, "changed");
    snprintf(c->locators[0], sizeof c->locators[0], "changed:1");
    cmap_member_remove(c, 2);
    ck_assert_int_eq(cmap_region_remove(c, "config"), 0);
    ck_assert_uint_eq(cmap_primary(&m->regions[0], 0), 1);
    ck_assert(m->regions[0].buckets[0].term == 3);
    ck_assert_uint_eq(m->regions[0].buckets[2].ncopies, 0);
    ck_assert_str_eq(m->members[0].name, "alpha");
    ck_assert_str_eq(m->locators[0], "127.0.0.1:10334");
    ck_assert_uint_eq(m->nmembers, 3);
    ck_assert_uint_eq(m->nregions, 2);
    cmap_free(c);
    /* an empty map clones too */
    cmap_t *e = cmap_new();
    c = cmap_clone(e);
    ck_assert_ptr_nonnull(c);
    ck_maps_equal(e, c);
    cmap_free(c);
    cmap_free(e);
    cmap_free(m);
    cmap_free(NULL); /* a no-op */
}
END_TEST

/* A packer whose writes fail once `budget` bytes were accepted. */
typedef struct limited {
    size_t budget;
} limited;

static int limited_write(void *data, const char *p, size_t n)
{
    (void)p;
    limited *l = data;
    if (n > l->budget)
        return -1;
    l->budget -= n;
    return 0;
}

START_TEST(encode_reports_write_errors)
{
    cmap_t *m = sample_map();
    buf_t full;
    encode_to(m, &full);
    size_t len = buf_readable(&full);
    for (size_t cut = 0; cut < len; cut++) {
        limited l = {.budget = cut};
        msgpack_packer pk;
        msgpack_packer_init(&pk, &l, limited_write);
        if (cmap_encode(m, &pk) == 0)
            ck_abort_msg("encode succeeded with only %zu of %zu bytes", cut, len);
    }
    limited l = {.budget = len};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &l, limited_write);
    ck_assert_int_eq(cmap_encode(m, &pk), 0);
    ck_assert_uint_eq(l.budget, 0);
    buf_free(&full);
    cmap_free(m);
}
END_TEST

/* ---- lookups and builders ------------------------------------------------- */

START_TEST(lookups)
{
    cmap_t *m = sample_map();
    ck_assert_int_eq(cmap_member_index(m, 1), 0);
    ck_assert_int_eq(cmap_member_index(m, 300), 2);
    ck_assert_int_eq(cmap_member_index(m, 3), -1);
    ck_assert_int_eq(cmap_member_index(m, 0), -1);
    ck_assert_ptr_null(cmap_member_find(m, 4));
    ck_assert_str_eq(cmap_member_find(m, 2)->name, "beta");
    ck_assert_uint_eq(cmap_member_find(m, 300)->port, 65535);

    /* names are (pointer, length): no terminator needed, no prefix match */
    const char buf[] = "ordersXYZ";
    ck_assert_ptr_eq(cmap_region_find(m, buf, 6), &m->regions[0]);
    ck_assert_ptr_null(cmap_region_find(m, buf, 5));
    ck_assert_ptr_null(cmap_region_find(m, buf, 7));
    ck_assert_ptr_null(cmap_region_find(m, "", 0));
    ck_assert_ptr_eq(cmap_region_find(m, "config", 6), &m->regions[1]);

    cmap_region *r = &m->regions[0];
    ck_assert_uint_eq(cmap_primary(r, 0), 1);
    ck_assert_uint_eq(cmap_primary(r, 1), 2);
    ck_assert_uint_eq(cmap_primary(r, 2), 0); /* no copies */
    ck_assert_uint_eq(cmap_primary(r, 3), 0); /* no primary */
    ck_assert_uint_eq(cmap_primary(r, 5), 0); /* no such bucket */
    ck_assert_uint_eq(cmap_primary(r, UINT32_MAX), 0);
    ck_assert_uint_eq(cmap_primary(NULL, 0), 0);

    ck_assert_int_eq(cmap_role(r, 0, 1), CMAP_PRIMARY);
    ck_assert_int_eq(cmap_role(r, 0, 2), CMAP_COPY);
    ck_assert_int_eq(cmap_role(r, 0, 300), CMAP_NONE);
    ck_assert_int_eq(cmap_role(r, 1, 2), CMAP_PRIMARY);
    ck_assert_int_eq(cmap_role(r, 1, 300), CMAP_INIT);
    ck_assert_int_eq(cmap_role(r, 2, 1), CMAP_NONE);
    ck_assert_int_eq(cmap_role(r, 3, 300), CMAP_COPY);
    ck_assert_int_eq(cmap_role(r, 3, 0), CMAP_NONE); /* 0 is "no primary", nobody's role */
    ck_assert_int_eq(cmap_role(r, 4, 300), CMAP_PRIMARY);
    ck_assert_int_eq(cmap_role(r, 4, 1), CMAP_COPY);
    ck_assert_int_eq(cmap_role(r, 4, 2), CMAP_INIT);
    ck_assert_int_eq(cmap_role(r, 5, 1), CMAP_NONE);
    ck_assert_int_eq(cmap_role(NULL, 0, 1), CMAP_NONE);

    ck_assert_uint_eq(cmap_ready_copies(r, 0), 2);
    ck_assert_uint_eq(cmap_ready_copies(r, 1), 1); /* the initializing copy does not count */
    ck_assert_uint_eq(cmap_ready_copies(r, 2), 0);
    ck_assert_uint_eq(cmap_ready_copies(r, 3), 1); /* the missing primary does not count */
    ck_assert_uint_eq(cmap_ready_copies(r, 4), 2);
    ck_assert_uint_eq(cmap_ready_copies(r, 5), 0);
    ck_assert_uint_eq(cmap_ready_copies(NULL, 0), 0);
    ck_assert_uint_eq(cmap_ready_copies(&m->regions[1], 0), 3);
    cmap_free(m);
}
END_TEST

START_TEST(builders)
{
    cmap_t *m = cmap_new();
    cmap_member a = member(5, "a", "ha", 1), b = member(6, "b", "hb", 2), c = member(7, "c", "hc", 3);
    ck_assert_int_eq(cmap_member_add(m, &a), 0);
    ck_assert_int_eq(cmap_member_add(m, &b), 0);
    ck_assert_int_eq(cmap_member_add(m, &c), 0);
    /* same id: updated in place, not added */
    cmap_member b2 = member(6, "b2", "hb2", 22);
    ck_assert_int_eq(cmap_member_add(m, &b2), 0);
    ck_assert_uint_eq(m->nmembers, 3);
    ck_assert_int_eq(cmap_member_index(m, 6), 1);
    ck_assert_str_eq(cmap_member_find(m, 6)->name, "b2");
    ck_assert_uint_eq(cmap_member_find(m, 6)->port, 22);
    /* removing keeps the others in order; an absent id is a no-op */
    cmap_member_remove(m, 6);
    ck_assert_uint_eq(m->nmembers, 2);
    ck_assert_uint_eq(m->members[0].id, 5);
    ck_assert_uint_eq(m->members[1].id, 7);
    cmap_member_remove(m, 6);
    cmap_member_remove(m, 0);
    ck_assert_uint_eq(m->nmembers, 2);
    cmap_member_remove(m, 7);
    cmap_member_remove(m, 5);
    ck_assert_uint_eq(m->nmembers, 0);
    ck_assert_ptr_null(cmap_member_find(m, 5));

    ck_assert_int_eq(cmap_region_add(m, "r1", "PARTITION", 0, 3), 0);
    ck_assert_int_eq(cmap_region_add(m, "r2", "REPLICATE", 0, 1), 0);
    ck_assert_int_eq(cmap_region_add(m, "r3", "PARTITION_REDUNDANT", 2, 113), 0);
    ck_assert_int_eq(cmap_region_add(m, "r2", "PARTITION", 1, 7), -EEXIST);
    ck_assert_uint_eq(m->nregions, 3);
    cmap_region *r3 = cmap_region_find(m, "r3", 2);
    ck_assert_uint_eq(r3->nbuckets, 113);
    ck_assert_uint_eq(r3->redundant_copies, 2);
    ck_assert_str_eq(r3->type, "PARTITION_REDUNDANT");
    for (uint32_t i = 0; i < 113; i++) {
        ck_assert_uint_eq(r3->buckets[i].ncopies, 0);
        ck_assert(r3->buckets[i].term == 0);
    }
    set_bucket(r3, 112, 4, (uint32_t[]){5, 7}, NULL, 2);
    ck_assert_int_eq(cmap_region_remove(m, "r2"), 0);
    ck_assert_int_eq(cmap_region_remove(m, "r2"), -ENOENT);
    ck_assert_int_eq(cmap_region_remove(m, "nope"), -ENOENT);
    ck_assert_uint_eq(m->nregions, 2);
    ck_assert_str_eq(m->regions[0].name, "r1");
    ck_assert_str_eq(m->regions[1].name, "r3");
    r3 = cmap_region_find(m, "r3", 2);
    ck_assert_uint_eq(cmap_primary(r3, 112), 5);
    /* the name is free again */
    ck_assert_int_eq(cmap_region_add(m, "r2", "PARTITION", 0, 2), 0);
    ck_assert_uint_eq(cmap_region_find(m, "r2", 2)->nbuckets, 2);

    /* cmap_bucket_set replaces, copies the input, and takes n = 0 */
    cmap_bucket *bk = &m->regions[0].buckets[1];
    cmap_copy cp[3] = {{9, false}, {8, true}, {7, false}};
    ck_assert_int_eq(cmap_bucket_set(bk, cp, 3), 0);
    cp[0].member_id = 1;
    ck_assert_uint_eq(bk->ncopies, 3);
    ck_assert_uint_eq(bk->copies[0].member_id, 9);
    ck_assert(bk->copies[1].init);
    ck_assert_int_eq(cmap_bucket_set(bk, cp, 1), 0);
    ck_assert_uint_eq(bk->ncopies, 1);
    ck_assert_uint_eq(bk->copies[0].member_id, 1);
    ck_assert_int_eq(cmap_bucket_set(bk, NULL, 0), 0);
    ck_assert_uint_eq(bk->ncopies, 0);
    ck_assert_ptr_null(bk->copies);

    ck_assert_int_eq(cmap_locator_add(m, "a:1"), 0);
    ck_assert_int_eq(cmap_locator_add(m, "b:2"), 0);
    ck_assert_uint_eq(m->nlocators, 2);
    ck_assert_str_eq(m->locators[1], "b:2");
    /* a published map names only members of its view */
    ck_assert_int_eq(cmap_member_add(m, &a), 0);
    ck_assert_int_eq(cmap_member_add(m, &c), 0);
    ck_round_trip(m);
    cmap_free(m);
}
END_TEST

/* ---- malformed input ------------------------------------------------------ */

START_TEST(every_truncation_rejected)
{
    cmap_t *m = sample_map();
    buf_t b;
    encode_to(m, &b);
    size_t len = buf_readable(&b);
    for (size_t n = 0; n < len; n++) {
        cmap_t *d = NULL;
        int rc = decode_exact(buf_rptr(&b), n, &d);
        if (rc != -EPROTO)
            ck_abort_msg("prefix of %zu/%zu bytes: %d", n, len, rc);
    }
    /* one byte too many: not exactly one object */
    uint8_t *more = malloc(len + 1);
    memcpy(more, buf_rptr(&b), len);
    more[len] = 0xc0;
    cmap_t *d;
    ck_assert_int_eq(decode_exact(more, len + 1, &d), -EPROTO);
    /* two maps back to back */
    uint8_t *two = malloc(2 * len);
    memcpy(two, buf_rptr(&b), len);
    memcpy(two + len, buf_rptr(&b), len);
    ck_assert_int_eq(decode_exact(two, 2 * len, &d), -EPROTO);
    free(two);
    free(more);
    buf_free(&b);
    cmap_free(m);
}
END_TEST

/* Whatever a decoded map holds, it keeps the invariants the decoder
 * promises: copies name members (nonzero past the primary), no member
 * twice in a bucket, bucket arrays as long as their counts. */
static void ck_invariants(const cmap_t *m)
{
    for (size_t i = 0; i < m->nregions; i++) {
        const cmap_region *r = &m->regions[i];
        REQ((r->nbuckets) > (0));
        REQ((r->nbuckets) <= (65536));
        REQ(r->buckets != NULL);
        for (uint32_t b = 0; b < r->nbuckets; b++) {
            const cmap_bucket *bk = &r->buckets[b];
            for (uint32_t j = 0; j < bk->ncopies; j++) {
                if (j > 0)
                    REQ((bk->copies[j].member_id) != (0));
                for (uint32_t k = 0; k < j; k++)
                    REQ((bk->copies[k].member_id) != (bk->copies[j].member_id));
            }
        }
    }
    for (size_t i = 0; i < m->nmembers; i++) {
        REQ((m->members[i].id) != (0));
        REQ((m->members[i].port) != (0));
    }
}

START_TEST(mutants_never_crash)
{
    /* every byte of a valid map replaced by several values: each mutant is
     * refused, or decodes to a map that keeps the invariants and round-trips */
    cmap_t *m = sample_map();
    buf_t b;
    encode_to(m, &b);
    size_t len = buf_readable(&b);
    uint8_t *mut = malloc(len);
    static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0x90, 0x9f, 0xa0, 0xc0, 0xc1, 0xc4, 0xcc,
                                   0xcd, 0xce, 0xcf, 0xd0, 0xd3, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xff};
    int accepted = 0, refused = 0;
    for (size_t pos = 0; pos < len; pos++) {
        for (size_t v = 0; v < sizeof vals + 2; v++) {
            memcpy(mut, buf_rptr(&b), len);
            uint8_t orig = mut[pos];
            mut[pos] = v < sizeof vals ? vals[v] : (uint8_t)(orig + (v == sizeof vals ? 1 : -1));
            if (mut[pos] == orig)
                continue;
            cmap_t *d = NULL;
            int rc = decode_exact(mut, len, &d);
            if (rc) {
                REQ(rc == -EPROTO);
                refused++;
                continue;
            }
            accepted++;
            ck_invariants(d);
            ck_round_trip(d);
            cmap_free(d);
        }
    }
    ck_assert_int_gt(refused, 0);
    ck_assert_int_gt(accepted, 0); /* e.g. a changed digit in a name or number */
    free(mut);
    buf_free(&b);
    cmap_free(m);
}
END_TEST

START_TEST(not_a_map)
{
    body b;
    msgpack_packer *pk = begin(&b);
    msgpack_pack_array(pk, 0);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    msgpack_pack_nil(pk);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    msgpack_pack_uint8(pk, 1);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pstr(pk, "version");
    ck_reject(&b);
    done(&b);
    cmap_t *m = NULL;
    ck_assert_int_eq(decode_exact("", 0, &m), -EPROTO);
    ck_assert_int_eq(decode_exact("\xc1", 1, &m), -EPROTO);
    /* a map that claims more pairs than it holds */
    ck_assert_int_eq(decode_exact("\x81", 1, &m), -EPROTO);
    ck_assert_int_eq(decode_exact("\xdf\xff\xff\xff\xff", 5, &m), -EPROTO);
    /* the empty map is a valid (empty) cluster map */
    ck_assert_int_eq(decode_exact("\x80", 1, &m), 0);
    ck_assert(m->version == 0 && m->nmembers == 0 && m->nregions == 0);
    cmap_free(m);
}
END_TEST

START_TEST(bad_keys)
{
    body b;
    /* a key that is not a string */
    msgpack_packer *pk = begin(&b);
    msgpack_pack_map(pk, 1);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, 1);
    ck_reject(&b);
    done(&b);
    /* a bin key spelling "version" */
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    msgpack_pack_bin_with_body(pk, "version", 7);
    msgpack_pack_uint8(pk, 1);
    ck_reject(&b);
    done(&b);
    /* an unknown key, with a scalar and with an array value */
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "colour");
    msgpack_pack_uint8(pk, 1);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "colours");
    msgpack_pack_array(pk, 0);
    ck_reject(&b);
    done(&b);
    /* a known key's prefix and extension */
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "member");
    msgpack_pack_array(pk, 0);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "versions");
    msgpack_pack_uint8(pk, 1);
    ck_reject(&b);
    done(&b);
}
END_TEST

START_TEST(bad_scalars)
{
    body b;
    const char *keys[] = {"version", "view_id"};
    for (int k = 0; k < 2; k++) {
        msgpack_packer *pk = begin(&b);
        msgpack_pack_map(pk, 1);
        pstr(pk, keys[k]);
        msgpack_pack_int8(pk, -1);
        ck_reject(&b);
        done(&b);
        pk = begin(&b);
        msgpack_pack_map(pk, 1);
        pstr(pk, keys[k]);
        pstr(pk, "1");
        ck_reject(&b);
        done(&b);
        pk = begin(&b);
        msgpack_pack_map(pk, 1);
        pstr(pk, keys[k]);
        msgpack_pack_double(pk, 1.0);
        ck_reject(&b);
        done(&b);
        pk = begin(&b);
        msgpack_pack_map(pk, 1);
        pstr(pk, keys[k]);
        msgpack_pack_nil(pk);
        ck_reject(&b);
        done(&b);
        /* the largest value is fine */
        pk = begin(&b);
        msgpack_pack_map(pk, 1);
        pstr(pk, keys[k]);
        msgpack_pack_uint64(pk, UINT64_MAX);
        cmap_t *m;
        ck_assert_int_eq(decode_body(&b, &m), 0);
        ck_assert(k == 0 ? m->version == UINT64_MAX : m->view_id == UINT64_MAX);
        cmap_free(m);
        done(&b);
    }
    /* the lists must be arrays */
    const char *lists[] = {"locators", "members", "regions"};
    for (int k = 0; k < 3; k++) {
        msgpack_packer *pk = begin(&b);
        msgpack_pack_map(pk, 1);
        pstr(pk, lists[k]);
        msgpack_pack_map(pk, 0);
        ck_reject(&b);
        done(&b);
        pk = begin(&b);
        msgpack_pack_map(pk, 1);
        pstr(pk, lists[k]);
        msgpack_pack_nil(pk);
        ck_reject(&b);
        done(&b);
        /* and appear once */
        pk = begin(&b);
        msgpack_pack_map(pk, 2);
        pstr(pk, lists[k]);
        msgpack_pack_array(pk, 0);
        pstr(pk, lists[k]);
        msgpack_pack_array(pk, 0);
        ck_reject(&b);
        done(&b);
        /* an empty list is fine */
        pk = begin(&b);
        msgpack_pack_map(pk, 1);
        pstr(pk, lists[k]);
        msgpack_pack_array(pk, 0);
        cmap_t *m;
        ck_assert_int_eq(decode_body(&b, &m), 0);
        cmap_free(m);
        done(&b);
    }
}
END_TEST

START_TEST(bad_locators)
{
    body b;
    /* longest accepted: CMAP_HOST_MAX + 7 characters */
    char *ok = repeat('x', CMAP_HOST_MAX + 7), *longer = repeat('x', CMAP_HOST_MAX + 8);
    msgpack_packer *pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "locators");
    msgpack_pack_array(pk, 1);
    pstr(pk, ok);
    cmap_t *m;
    ck_assert_int_eq(decode_body(&b, &m), 0);
    ck_assert_str_eq(m->locators[0], ok);
    cmap_free(m);
    done(&b);
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "locators");
    msgpack_pack_array(pk, 1);
    pstr(pk, longer);
    ck_reject(&b);
    done(&b);
    /* not a string; a NUL inside */
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "locators");
    msgpack_pack_array(pk, 2);
    pstr(pk, "a:1");
    msgpack_pack_uint16(pk, 10334);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "locators");
    msgpack_pack_array(pk, 1);
    msgpack_pack_str_with_body(pk, "a\0b:1", 5);
    ck_reject(&b);
    done(&b);
    /* 64 locators at most */
    for (int n = 64; n <= 65; n++) {
        pk = begin(&b);
        msgpack_pack_map(pk, 1);
        pstr(pk, "locators");
        msgpack_pack_array(pk, (uint32_t)n);
        for (int i = 0; i < n; i++) {
            char s[32];
            snprintf(s, sizeof s, "l%d:%d", i, 10000 + i);
            pstr(pk, s);
        }
        if (n == 64) {
            ck_assert_int_eq(decode_body(&b, &m), 0);
            ck_assert_uint_eq(m->nlocators, 64);
            ck_assert_str_eq(m->locators[63], "l63:10063");
            cmap_free(m);
        } else {
            ck_reject(&b);
        }
        done(&b);
    }
    free(ok);
    free(longer);
}
END_TEST

START_TEST(bad_members)
{
    body b;
    cmap_t *m;
    msgpack_packer *pk;
    /* id 0, id above 32 bits, negative id, id not an integer */
    pk = begin(&b);
    pack_members_only(pk, 0, "a", "h", 1);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_members_only(pk, (uint64_t)UINT32_MAX + 1, "a", "h", 1);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "members");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 4);
    msgpack_pack_int8(pk, -1);
    pstr(pk, "a");
    pstr(pk, "h");
    msgpack_pack_uint8(pk, 1);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "members");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 4);
    pstr(pk, "1");
    pstr(pk, "a");
    pstr(pk, "h");
    msgpack_pack_uint8(pk, 1);
    ck_reject(&b);
    done(&b);
    /* port 0, port above 16 bits; 1 and 65535 are fine */
    pk = begin(&b);
    pack_members_only(pk, 1, "a", "h", 0);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_members_only(pk, 1, "a", "h", 65536);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_members_only(pk, UINT32_MAX, "a", "h", 65535);
    ck_assert_int_eq(decode_body(&b, &m), 0);
    ck_assert_uint_eq(m->members[0].id, UINT32_MAX);
    ck_assert_uint_eq(m->members[0].port, 65535);
    cmap_free(m);
    done(&b);
    /* names and hosts: at most CMAP_NAME_MAX / CMAP_HOST_MAX bytes, no NUL */
    char *name = repeat('n', CMAP_NAME_MAX), *name1 = repeat('n', CMAP_NAME_MAX + 1);
    char *host = repeat('h', CMAP_HOST_MAX), *host1 = repeat('h', CMAP_HOST_MAX + 1);
    pk = begin(&b);
    pack_members_only(pk, 1, name, host, 1);
    ck_assert_int_eq(decode_body(&b, &m), 0);
    ck_assert_str_eq(m->members[0].name, name);
    ck_assert_str_eq(m->members[0].host, host);
    cmap_free(m);
    done(&b);
    pk = begin(&b);
    pack_members_only(pk, 1, name1, "h", 1);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_members_only(pk, 1, "n", host1, 1);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "members");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_str_with_body(pk, "a\0b", 3);
    pstr(pk, "h");
    msgpack_pack_uint8(pk, 1);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "members");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 1);
    pstr(pk, "a");
    msgpack_pack_bin_with_body(pk, "h", 1);
    msgpack_pack_uint8(pk, 1);
    ck_reject(&b);
    done(&b);
    /* wrong arity: 3 and 5 fields, and a member that is not an array */
    for (uint32_t arity = 3; arity <= 5; arity += 2) {
        pk = begin(&b);
        msgpack_pack_map(pk, 1);
        pstr(pk, "members");
        msgpack_pack_array(pk, 1);
        msgpack_pack_array(pk, arity);
        msgpack_pack_uint8(pk, 1);
        pstr(pk, "a");
        pstr(pk, "h");
        if (arity == 5) {
            msgpack_pack_uint8(pk, 1);
            msgpack_pack_uint8(pk, 1);
        }
        ck_reject(&b);
        done(&b);
    }
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "members");
    msgpack_pack_array(pk, 1);
    pstr(pk, "a");
    ck_reject(&b);
    done(&b);
    /* a bad member after good ones */
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "members");
    msgpack_pack_array(pk, 3);
    pack_member(pk, 1, "a", "h", 1);
    pack_member(pk, 2, "b", "h", 2);
    pack_member(pk, 3, "c", "h", 0);
    ck_reject(&b);
    done(&b);
    free(name);
    free(name1);
    free(host);
    free(host1);
}
END_TEST

START_TEST(too_many_members)
{
    body b;
    cmap_t *m;
    for (uint32_t n = 4096; n <= 4097; n++) {
        msgpack_packer *pk = begin(&b);
        msgpack_pack_map(pk, 1);
        pstr(pk, "members");
        msgpack_pack_array(pk, n);
        for (uint32_t i = 1; i <= n; i++)
            pack_member(pk, i, "m", "h", 1);
        if (n == 4096) {
            ck_assert_int_eq(decode_body(&b, &m), 0);
            ck_assert_uint_eq(m->nmembers, 4096);
            ck_assert_uint_eq(m->members[4095].id, 4096);
            cmap_free(m);
        } else {
            ck_reject(&b);
        }
        done(&b);
    }
    /* a count far above what the input holds */
    msgpack_packer *pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "members");
    msgpack_pack_array(pk, 4000);
    pack_member(pk, 1, "m", "h", 1);
    ck_reject(&b);
    done(&b);
}
END_TEST

START_TEST(bad_regions)
{
    body b;
    cmap_t *m;
    msgpack_packer *pk;
    /* bucket count: 0 and above 65536 refused; must match the array */
    pk = begin(&b);
    pack_region_only(pk, "r", "PARTITION", 0, 0);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_region_only(pk, "r", "PARTITION", 65537, 0);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_region_only(pk, "r", "PARTITION", (uint64_t)UINT32_MAX + 2, 1);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_region_only(pk, "r", "PARTITION", 3, 2);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_region_only(pk, "r", "PARTITION", 3, 4);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_region_only(pk, "r", "PARTITION", 3, 3);
    ck_assert_int_eq(decode_body(&b, &m), 0);
    ck_assert_uint_eq(m->regions[0].nbuckets, 3);
    ck_assert_uint_eq(m->regions[0].redundant_copies, 1);
    cmap_free(m);
    done(&b);
    /* the largest bucket count decodes */
    pk = begin(&b);
    pack_region_only(pk, "r", "PARTITION", 65536, 65536);
    ck_assert_int_eq(decode_body(&b, &m), 0);
    ck_assert_uint_eq(m->regions[0].nbuckets, 65536);
    cmap_free(m);
    done(&b);
    /* names and types */
    char *name = repeat('n', CMAP_NAME_MAX), *name1 = repeat('n', CMAP_NAME_MAX + 1);
    char *type = repeat('T', CMAP_TYPE_MAX), *type1 = repeat('T', CMAP_TYPE_MAX + 1);
    pk = begin(&b);
    pack_region_only(pk, name, type, 1, 1);
    ck_assert_int_eq(decode_body(&b, &m), 0);
    ck_assert_str_eq(m->regions[0].name, name);
    ck_assert_str_eq(m->regions[0].type, type);
    cmap_free(m);
    done(&b);
    pk = begin(&b);
    pack_region_only(pk, name1, "PARTITION", 1, 1);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_region_only(pk, "r", type1, 1, 1);
    ck_reject(&b);
    done(&b);
    /* wrong arity, a region that is not an array, a name that is not a string */
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "regions");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 4);
    pstr(pk, "r");
    pstr(pk, "PARTITION");
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 1);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "regions");
    msgpack_pack_array(pk, 1);
    pstr(pk, "r");
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "regions");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint8(pk, 7);
    pstr(pk, "PARTITION");
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_array(pk, 1);
    pack_bucket(pk, 0, NULL, 0, NULL, 0);
    ck_reject(&b);
    done(&b);
    /* redundant copies must be a 32-bit unsigned */
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "regions");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 5);
    pstr(pk, "r");
    pstr(pk, "PARTITION");
    msgpack_pack_int8(pk, -1);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_array(pk, 1);
    pack_bucket(pk, 0, NULL, 0, NULL, 0);
    ck_reject(&b);
    done(&b);
    /* a bad region after a good one (the good one's memory is released) */
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "regions");
    msgpack_pack_array(pk, 2);
    msgpack_pack_array(pk, 5);
    pstr(pk, "good");
    pstr(pk, "PARTITION");
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 2);
    msgpack_pack_array(pk, 2);
    pack_bucket(pk, 1, (uint64_t[]){1}, 1, NULL, 0);
    pack_bucket(pk, 1, (uint64_t[]){2}, 1, NULL, 0);
    msgpack_pack_array(pk, 5);
    pstr(pk, "bad");
    pstr(pk, "PARTITION");
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 2);
    msgpack_pack_array(pk, 2);
    pack_bucket(pk, 1, (uint64_t[]){1}, 1, NULL, 0);
    pack_bucket(pk, 1, (uint64_t[]){2, 2}, 2, NULL, 0);
    ck_reject(&b);
    done(&b);
    free(name);
    free(name1);
    free(type);
    free(type1);
}
END_TEST

START_TEST(bad_buckets)
{
    body b;
    cmap_t *m;
    msgpack_packer *pk;
    /* the valid shapes first: primary + copy, primary + initializing copy,
     * no copies, no primary but a copy */
    pk = begin(&b);
    pack_one_bucket_map(pk, 5, (uint64_t[]){2, 1}, 2, (uint64_t[]){1}, 1);
    ck_assert_int_eq(decode_body(&b, &m), 0);
    ck_assert_uint_eq(cmap_primary(&m->regions[0], 0), 2);
    ck_assert_int_eq(cmap_role(&m->regions[0], 0, 1), CMAP_INIT);
    ck_assert(m->regions[0].buckets[0].term == 5);
    cmap_free(m);
    done(&b);
    pk = begin(&b);
    pack_one_bucket_map(pk, 0, NULL, 0, NULL, 0);
    ck_assert_int_eq(decode_body(&b, &m), 0);
    cmap_free(m);
    done(&b);
    pk = begin(&b);
    pack_one_bucket_map(pk, 2, (uint64_t[]){0, 1}, 2, NULL, 0);
    ck_assert_int_eq(decode_body(&b, &m), 0);
    ck_assert_uint_eq(cmap_primary(&m->regions[0], 0), 0);
    ck_assert_uint_eq(cmap_ready_copies(&m->regions[0], 0), 1);
    cmap_free(m);
    done(&b);

    /* member id 0 as a copy; twice the same member; an id above 32 bits */
    pk = begin(&b);
    pack_one_bucket_map(pk, 1, (uint64_t[]){1, 0}, 2, NULL, 0);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_one_bucket_map(pk, 1, (uint64_t[]){0, 0}, 2, NULL, 0);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_one_bucket_map(pk, 1, (uint64_t[]){1, 2, 1}, 3, NULL, 0);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_one_bucket_map(pk, 1, (uint64_t[]){1, (uint64_t)UINT32_MAX + 2}, 2, NULL, 0);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_one_bucket_map(pk, 1, (uint64_t[]){(uint64_t)UINT32_MAX + 1}, 1, NULL, 0);
    ck_reject(&b);
    done(&b);
    /* init index out of range (== ncopies, far above, with no copies) */
    pk = begin(&b);
    pack_one_bucket_map(pk, 1, (uint64_t[]){1, 2}, 2, (uint64_t[]){2}, 1);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_one_bucket_map(pk, 1, (uint64_t[]){1, 2}, 2, (uint64_t[]){(uint64_t)UINT32_MAX + 1}, 1);
    ck_reject(&b);
    done(&b);
    pk = begin(&b);
    pack_one_bucket_map(pk, 0, NULL, 0, (uint64_t[]){0}, 1);
    ck_reject(&b);
    done(&b);
    /* bucket arity and types */
    for (int variant = 0; variant < 7; variant++) {
        pk = begin(&b);
        msgpack_pack_map(pk, 1);
        pstr(pk, "regions");
        msgpack_pack_array(pk, 1);
        msgpack_pack_array(pk, 5);
        pstr(pk, "r");
        pstr(pk, "PARTITION");
        msgpack_pack_uint8(pk, 0);
        msgpack_pack_uint8(pk, 1);
        msgpack_pack_array(pk, 1);
        switch (variant) {
        case 0: /* [term, copies] */
            msgpack_pack_array(pk, 2);
            msgpack_pack_uint8(pk, 1);
            msgpack_pack_array(pk, 0);
            break;
        case 1: /* [term, copies, init, extra] */
            msgpack_pack_array(pk, 4);
            msgpack_pack_uint8(pk, 1);
            msgpack_pack_array(pk, 0);
            msgpack_pack_array(pk, 0);
            msgpack_pack_uint8(pk, 0);
            break;
        case 2: /* negative term */
            msgpack_pack_array(pk, 3);
            msgpack_pack_int8(pk, -1);
            msgpack_pack_array(pk, 0);
            msgpack_pack_array(pk, 0);
            break;
        case 3: /* copies not an array */
            msgpack_pack_array(pk, 3);
            msgpack_pack_uint8(pk, 1);
            msgpack_pack_uint8(pk, 1);
            msgpack_pack_array(pk, 0);
            break;
        case 4: /* init not an array */
            msgpack_pack_array(pk, 3);
            msgpack_pack_uint8(pk, 1);
            msgpack_pack_array(pk, 1);
            msgpack_pack_uint8(pk, 1);
            msgpack_pack_nil(pk);
            break;
        case 5: /* a copy that is a string */
            msgpack_pack_array(pk, 3);
            msgpack_pack_uint8(pk, 1);
            msgpack_pack_array(pk, 1);
            pstr(pk, "1");
            msgpack_pack_array(pk, 0);
            break;
        case 6: /* bucket is a map */
            msgpack_pack_map(pk, 0);
            break;
        }
        ck_reject(&b);
        done(&b);
    }
    /* at most 4096 copies per bucket (the view holds members 1..4096) */
    for (uint32_t n = 4096; n <= 4097; n++) {
        uint64_t *ids = malloc(n * sizeof *ids);
        for (uint32_t i = 0; i < n; i++)
            ids[i] = i + 1;
        pk = begin(&b);
        msgpack_pack_map(pk, 2);
        pstr(pk, "members");
        msgpack_pack_array(pk, 4096);
        for (uint32_t i = 1; i <= 4096; i++)
            pack_member(pk, i, "m", "h", 1);
        pstr(pk, "regions");
        msgpack_pack_array(pk, 1);
        msgpack_pack_array(pk, 5);
        pstr(pk, "r");
        pstr(pk, "REPLICATE");
        msgpack_pack_uint8(pk, 0);
        msgpack_pack_uint8(pk, 1);
        msgpack_pack_array(pk, 1);
        pack_bucket(pk, 1, ids, n, NULL, 0);
        if (n == 4096) {
            ck_assert_int_eq(decode_body(&b, &m), 0);
            ck_assert_uint_eq(m->regions[0].buckets[0].ncopies, 4096);
            cmap_free(m);
        } else {
            ck_reject(&b);
        }
        done(&b);
        free(ids);
    }
}
END_TEST

START_TEST(too_many_regions)
{
    body b;
    msgpack_packer *pk;
    cmap_t *m;
    /* 65536 regions at most */
    for (uint32_t n = 65536; n <= 65537; n++) {
        pk = begin(&b);
        msgpack_pack_map(pk, 1);
        pstr(pk, "regions");
        msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++) {
            char name[16];
            snprintf(name, sizeof name, "r%u", i);
            msgpack_pack_array(pk, 5);
            pstr(pk, name);
            pstr(pk, "PARTITION");
            msgpack_pack_uint8(pk, 0);
            msgpack_pack_uint8(pk, 1);
            msgpack_pack_array(pk, 1);
            pack_bucket(pk, 0, NULL, 0, NULL, 0);
        }
        if (n == 65536) {
            ck_assert_int_eq(decode_body(&b, &m), 0);
            ck_assert_uint_eq(m->nregions, 65536);
            ck_assert_str_eq(m->regions[65535].name, "r65535");
            cmap_free(m);
        } else {
            ck_reject(&b);
        }
        done(&b);
    }
    /* a count far above what the input holds */
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "regions");
    msgpack_pack_array(pk, 65537);
    ck_reject(&b);
    done(&b);
    /* a bucket array far longer than the input: refused before allocating */
    pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "regions");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 5);
    pstr(pk, "r");
    pstr(pk, "PARTITION");
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint32(pk, 65536);
    msgpack_pack_array(pk, 65536);
    pack_bucket(pk, 0, NULL, 0, NULL, 0);
    ck_reject(&b);
    done(&b);
}
END_TEST

/* Regression: check_buckets (common/cmap.c) once checked only that a
 * copy's member id was nonzero and unique within its bucket, not that it
 * names a member of the view, as cmap.h promises. The locator never publishes such a map (placement_fix drops
 * copies of departed members before every publish), so one that arrives is
 * corrupt: a client routes to a primary it has no address for. */
START_TEST(bucket_member_not_in_view_rejected)
{
    body b1, b2;
    cmap_t *m = NULL;
    pack_one_bucket_map(begin(&b1), 1, (uint64_t[]){1, 99}, 2, NULL, 0); /* a copy on 99 */
    pack_one_bucket_map(begin(&b2), 1, (uint64_t[]){99}, 1, NULL, 0);    /* primary 99 */
    int rc1 = decode_body(&b1, &m);
    if (rc1 == 0)
        cmap_free(m);
    int rc2 = decode_body(&b2, &m);
    if (rc2 == 0)
        cmap_free(m);
    done(&b1);
    done(&b2);
    ck_assert_int_eq(rc1, -EPROTO);
    ck_assert_int_eq(rc2, -EPROTO);
}
END_TEST

/* Regression: decoding once accepted a view that lists one member id twice
 * (with different addresses); lookups then
 * see only the first, and a fresh locator adopting such a map
 * (server/locator.c maybe_adopt) creates two member records with one id.
 * cmap_member_add never builds such a view. */
START_TEST(duplicate_member_id_rejected)
{
    body b;
    msgpack_packer *pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "members");
    msgpack_pack_array(pk, 2);
    pack_member(pk, 7, "a", "10.0.0.1", 1000);
    pack_member(pk, 7, "b", "10.0.0.2", 2000);
    cmap_t *m = NULL;
    int rc = decode_body(&b, &m);
    if (rc == 0)
        cmap_free(m);
    done(&b);
    ck_assert_int_eq(rc, -EPROTO);
}
END_TEST

/* ---- index definitions ---------------------------------------------------- */

START_TEST(index_builders)
{
    cmap_t *m = sample_map();
    cmap_region *r = cmap_region_find(m, "orders", 6);
    ck_assert_uint_eq(r->nindexes, 2);
    ck_assert_ptr_nonnull(cmap_index_find(r, "byStatus"));
    ck_assert_ptr_null(cmap_index_find(r, "bystatus"));
    ck_assert_int_eq(cmap_index_add(r, "byStatus", "range", "x"), -EEXIST);
    ck_assert_int_eq(cmap_index_add(r, "bad name", "range", "x"), -EINVAL);
    ck_assert_int_eq(cmap_index_add(r, "", "range", "x"), -EINVAL);
    ck_assert_int_eq(cmap_index_add(r, "ok", "key", "x"), -EINVAL);
    ck_assert_int_eq(cmap_index_add(r, "ok", "range", ""), -EINVAL);
    char *longx = repeat('x', CMAP_INDEX_EXPR_MAX + 1);
    ck_assert_int_eq(cmap_index_add(r, "ok", "range", longx), -EINVAL);
    longx[CMAP_INDEX_EXPR_MAX] = 0;
    ck_assert_int_eq(cmap_index_add(r, "ok", "range", longx), 0); /* exactly the limit */
    free(longx);
    char name[16];
    for (int i = 3; i < CMAP_MAX_INDEXES; i++) {
        snprintf(name, sizeof name, "i%d", i);
        ck_assert_int_eq(cmap_index_add(r, name, "hash", "a.b"), 0);
    }
    ck_assert_int_eq(cmap_index_add(r, "one-more", "hash", "a"), -ENOSPC);
    ck_round_trip(m);
    ck_assert_int_eq(cmap_index_remove(r, "byStatus"), 0);
    ck_assert_int_eq(cmap_index_remove(r, "byStatus"), -ENOENT);
    ck_assert_str_eq(r->indexes[0].name, "by.city-2"); /* order kept */
    cmap_t *c = cmap_clone(m);
    ck_assert_ptr_nonnull(c);
    ck_maps_equal(m, c);
    cmap_index_remove(r, "by.city-2");
    ck_assert_uint_eq(cmap_region_find(c, "orders", 6)->nindexes, CMAP_MAX_INDEXES - 1);
    ck_round_trip(c);
    cmap_free(c);
    ck_assert_int_eq(cmap_region_remove(m, "orders"), 0); /* frees its indexes */
    cmap_free(m);
}
END_TEST

/* A one-region map whose region carries the index list packed by fn. */
static int decode_with_indexes(void (*fn)(msgpack_packer *pk))
{
    body b;
    msgpack_packer *pk = begin(&b);
    msgpack_pack_map(pk, 1);
    pstr(pk, "regions");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 6);
    pstr(pk, "r");
    pstr(pk, "PARTITION");
    msgpack_pack_uint32(pk, 0);
    msgpack_pack_uint32(pk, 1);
    msgpack_pack_array(pk, 1);
    pack_bucket(pk, 0, NULL, 0, NULL, 0);
    fn(pk);
    cmap_t *m = NULL;
    int rc = decode_body(&b, &m);
    done(&b);
    if (rc == 0) {
        ck_assert_uint_eq(m->regions[0].nindexes, 1);
        cmap_free(m);
    }
    return rc;
}

static void pack_index(msgpack_packer *pk, const char *name, const char *type, const char *expr)
{
    msgpack_pack_array(pk, 3);
    pstr(pk, name);
    pstr(pk, type);
    pstr(pk, expr);
}

static void ix_good(msgpack_packer *pk) { msgpack_pack_array(pk, 1); pack_index(pk, "i", "range", "a.b"); }
static void ix_not_array(msgpack_packer *pk) { msgpack_pack_map(pk, 0); }
static void ix_arity(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 2);
    pstr(pk, "i");
    pstr(pk, "range");
}
static void ix_bad_name(msgpack_packer *pk) { msgpack_pack_array(pk, 1); pack_index(pk, "a/b", "range", "a"); }
static void ix_empty_name(msgpack_packer *pk) { msgpack_pack_array(pk, 1); pack_index(pk, "", "range", "a"); }
static void ix_bad_type(msgpack_packer *pk) { msgpack_pack_array(pk, 1); pack_index(pk, "i", "RANGE", "a"); }
static void ix_empty_expr(msgpack_packer *pk) { msgpack_pack_array(pk, 1); pack_index(pk, "i", "hash", ""); }
static void ix_long_expr(msgpack_packer *pk)
{
    char *x = repeat('a', CMAP_INDEX_EXPR_MAX + 1);
    msgpack_pack_array(pk, 1);
    pack_index(pk, "i", "hash", x);
    free(x);
}
static void ix_nul_expr(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 3);
    pstr(pk, "i");
    pstr(pk, "hash");
    msgpack_pack_str_with_body(pk, "a\0b", 3);
}
static void ix_duplicate(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    pack_index(pk, "i", "hash", "a");
    pack_index(pk, "i", "range", "b");
}
static void ix_too_many(msgpack_packer *pk)
{
    char name[16];
    msgpack_pack_array(pk, CMAP_MAX_INDEXES + 1);
    for (int i = 0; i <= CMAP_MAX_INDEXES; i++) {
        snprintf(name, sizeof name, "i%d", i);
        pack_index(pk, name, "hash", "a");
    }
}
static void ix_name_not_str(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 3);
    msgpack_pack_int(pk, 1);
    pstr(pk, "hash");
    pstr(pk, "a");
}

START_TEST(bad_indexes)
{
    ck_assert_int_eq(decode_with_indexes(ix_good), 0);
    void (*bad[])(msgpack_packer *) = {ix_not_array, ix_arity, ix_bad_name, ix_empty_name,
                                       ix_bad_type, ix_empty_expr, ix_long_expr, ix_nul_expr,
                                       ix_duplicate, ix_too_many, ix_name_not_str};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(decode_with_indexes(bad[i]) == -EPROTO, "mutant %zu accepted", i);
}
END_TEST

static Suite *cmap_suite(void)
{
    Suite *s = suite_create("cmap");
    TCase *tc = tu_tcase(s, "round_trip", 30);
    tcase_add_test(tc, round_trip_sample);
    tcase_add_test(tc, round_trip_empty);
    tcase_add_test(tc, round_trip_extremes);
    tcase_add_test(tc, round_trip_large);
    tcase_add_test(tc, clone_is_deep);
    tcase_add_test(tc, encode_reports_write_errors);
    tc = tu_tcase(s, "api", 30);
    tcase_add_test(tc, lookups);
    tcase_add_test(tc, builders);
    tcase_add_test(tc, index_builders);
    tc = tu_tcase(s, "malformed", 60);
    tcase_add_test(tc, every_truncation_rejected);
    tcase_add_test(tc, mutants_never_crash);
    tcase_add_test(tc, not_a_map);
    tcase_add_test(tc, bad_keys);
    tcase_add_test(tc, bad_scalars);
    tcase_add_test(tc, bad_locators);
    tcase_add_test(tc, bad_members);
    tcase_add_test(tc, too_many_members);
    tcase_add_test(tc, bad_regions);
    tcase_add_test(tc, bad_buckets);
    tcase_add_test(tc, too_many_regions);
    tcase_add_test(tc, bucket_member_not_in_view_rejected);
    tcase_add_test(tc, duplicate_member_id_rejected);
    tcase_add_test(tc, bad_indexes);
    return s;
}

int main(void)
{
    Suite *s = cmap_suite();
    return tu_run(&s, 1);
}
