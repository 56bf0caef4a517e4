/* Unit tests of the local query executor (region/qexec.c), and the
 * conformance test: the same queries over the same generated orders run in
 * Agate's engine and in SQLite, and must give the same rows.
 *
 * The generated data keeps to what both languages mean alike: every field
 * is present (nil where SQLite has NULL; UNDEFINED has no SQL twin and is
 * tested in test_qeval.c), strings are ASCII, and SQLite's LIKE is made
 * case-sensitive. Queries without ORDER BY are compared as multisets.
 *
 * Every conformance query also runs scattered and gathered, as on a
 * cluster: the orders split into parts (splits[]: by a hash of the key, an
 * uneven split with an empty and a one-order part, one where a part's rows
 * are added by the gatherer itself, one by qty value), a partial executor
 * per part packs its partial result (qexec_pack_partial), a gatherer merges
 * them (qexec_merge_partial) and finishes, and the rows must again be
 * SQLite's. Malformed partials must be refused with -EINVAL, without a
 * crash or a leak.
 *
 * And every conformance query runs once more through indexes
 * (region/qindex.h): the orders go into a region with range and hash
 * indexes on every field, the planner picks an index where a conjunct
 * allows, the executor sees only the entries the probe yields, and the
 * rows must still be SQLite's. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "region/qagg.h"
#include "region/qast.h"
#include "common/hash.h"
#include "region/qexec.h"
#include "region/qindex.h"
#include "region/qvalue.h"
#include "region/region.h"
#include "tu.h"

/* ---- generated orders ---- */

#define NORDERS 3000

typedef struct order {
    char key[24];
    int64_t id, qty;
    double total;
    const char *status, *city;
    const char *note;   /* NULL: nil */
    int64_t discount;   /* -1: nil */
    msgpack_sbuffer value;
} order;

static order orders[NORDERS];
static const char *statuses[] = {"new", "paid", "shipped", "delivered"};
static const char *cities[] = {"Lisbon", "Oslo", "Quito", "Perth", "Dakar", "Hanoi", "Lima", "Bergen"};
static const char *notes[] = {"gift", "fragile", "call first", "100% cotton", "a_b"};

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void gen_orders(void)
{
    unsigned seed = 42;
    for (int i = 0; i < NORDERS; i++) {
        order *o = &orders[i];
        snprintf(o->key, sizeof o->key, "order-%05d", i);
        o->id = i;
        o->qty = rand_r(&seed) % 9 - 1; /* -1 .. 7 */
        o->total = (double)(rand_r(&seed) % 50000) / 100.0;
        o->status = statuses[rand_r(&seed) % 4];
        o->city = cities[rand_r(&seed) % 8];
        o->note = rand_r(&seed) % 3 ? NULL : notes[rand_r(&seed) % 5];
        o->discount = rand_r(&seed) % 4 ? rand_r(&seed) % 20 : -1;
        msgpack_sbuffer_init(&o->value);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &o->value, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 7);
        pack_cstr(&pk, "id");
        msgpack_pack_int64(&pk, o->id);
        pack_cstr(&pk, "qty");
        msgpack_pack_int64(&pk, o->qty);
        pack_cstr(&pk, "total");
        msgpack_pack_double(&pk, o->total);
        pack_cstr(&pk, "status");
        pack_cstr(&pk, o->status);
        pack_cstr(&pk, "customer");
        msgpack_pack_map(&pk, 1);
        pack_cstr(&pk, "city");
        pack_cstr(&pk, o->city);
        pack_cstr(&pk, "note");
        if (o->note)
            pack_cstr(&pk, o->note);
        else
            msgpack_pack_nil(&pk);
        pack_cstr(&pk, "discount");
        if (o->discount >= 0)
            msgpack_pack_int64(&pk, o->discount);
        else
            msgpack_pack_nil(&pk);
    }
}

static sqlite3 *db;

static void load_sqlite(void)
{
    ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db,
                                  "PRAGMA case_sensitive_like = ON;"
                                  "CREATE TABLE t (key TEXT, id INTEGER, qty INTEGER, total REAL,"
                                  " status TEXT, city TEXT, note TEXT, discount INTEGER)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?,?,?,?,?,?,?,?)", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (int i = 0; i < NORDERS; i++) {
        const order *o = &orders[i];
        sqlite3_bind_text(st, 1, o->key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, o->id);
        sqlite3_bind_int64(st, 3, o->qty);
        sqlite3_bind_double(st, 4, o->total);
        sqlite3_bind_text(st, 5, o->status, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, o->city, -1, SQLITE_STATIC);
        if (o->note)
            sqlite3_bind_text(st, 7, o->note, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 7);
        if (o->discount >= 0)
            sqlite3_bind_int64(st, 8, o->discount);
        else
            sqlite3_bind_null(st, 8);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_finalize(st);
}

static void setup(void)
{
    gen_orders();
    load_sqlite();
}

static region_t *indexed;   /* the orders with indexes, made on first use */
static int indexed_used;    /* queries that read through an index */

static void teardown(void)
{
    region_free(indexed);
    indexed = NULL;
    for (int i = 0; i < NORDERS; i++)
        msgpack_sbuffer_destroy(&orders[i].value);
    sqlite3_close(db);
}

/* ---- a result as comparable cells ---- */

typedef struct cell {
    int type; /* 0 null, 1 int, 2 float, 3 text */
    int64_t i;
    double f;
    char s[64];
} cell;

typedef struct result {
    int ncols;
    size_t nrows;
    cell *cells; /* nrows * ncols */
} result;

static cell *cell_at(result *r, size_t row, int col) { return &r->cells[row * (size_t)r->ncols + col]; }

static void result_push_row(result *r)
{
    r->cells = realloc(r->cells, (r->nrows + 1) * (size_t)r->ncols * sizeof(cell));
    ck_assert_ptr_nonnull(r->cells);
    memset(cell_at(r, r->nrows, 0), 0, (size_t)r->ncols * sizeof(cell));
    r->nrows++;
}

static void cell_from_qvalue(cell *c, const qvalue *v)
{
    switch (v->type) {
    case QT_INT:
        c->type = 1;
        c->i = v->v.i;
        break;
    case QT_FLOAT:
        c->type = 2;
        c->f = v->v.f;
        break;
    case QT_BOOL: /* SQLite has no booleans: 0 and 1 */
        c->type = 1;
        c->i = v->v.b;
        break;
    case QT_STR:
        c->type = 3;
        snprintf(c->s, sizeof c->s, "%.*s", (int)v->v.s.n, (const char *)v->v.s.p);
        break;
    default:
        c->type = 0;
    }
}

/* ---- running a query in Agate: one executor, or scattered and gathered ---- */

/* How the orders are split over "members" (like buckets over members): a
 * partial executor per part packs its partial result (qexec_pack_partial),
 * and a gatherer merges them all (qexec_merge_partial), except the part
 * `direct`, whose rows it adds itself (qexec_add) in that part's turn. */
typedef struct split {
    const char *name;
    int nparts;
    int (*part_of)(int i); /* the part of orders[i] */
    int direct;            /* -1: none */
} split;

static uint32_t key_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int part_hash3(int i) { return (int)(key_hash(orders[i].key) % 3); }
/* the rest, nothing, one order */
static int part_uneven(int i) { return i == 1499 ? 2 : 0; }
/* by qty: the highest values (and their duplicates) gather in one part */
static int part_by_qty(int i) { return orders[i].qty >= 6 ? 0 : orders[i].qty >= 3 ? 1 : 2; }

static const split splits[] = {
    {"hash3", 3, part_hash3, -1},
    {"uneven", 3, part_uneven, -1},
    {"hash3+direct", 3, part_hash3, 1},
    {"by-qty", 3, part_by_qty, 0},
};
#define NSPLITS (sizeof splits / sizeof splits[0])

static void order_row(int i, qrow *row)
{
    row->key = qv_str(orders[i].key, (uint32_t)strlen(orders[i].key));
    ck_assert(qvalue_decode((const uint8_t *)orders[i].value.data, orders[i].value.size, 32,
                            &row->value));
}

/* Adds the orders of part (every order for part -1) until x has enough. */
static int feed(qexec *x, const split *sp, int part, const char *text)
{
    int rc = 0;
    qerror err;
    for (int i = 0; i < NORDERS && rc != QEXEC_ENOUGH; i++) {
        if (part >= 0 && sp->part_of(i) != part)
            continue;
        qrow row;
        order_row(i, &row);
        rc = qexec_add(x, &row, &err);
        ck_assert_msg(rc >= 0, "%s: %s", text, err.msg);
    }
    return rc;
}

/* A member's partial result over its part, into *out (to destroy). */
static void pack_part(const query_t *q, const qvalue *params, uint32_t nparams, const split *sp,
                      int part, const char *text, msgpack_sbuffer *out)
{
    qerror err;
    qexec *x;
    ck_assert_msg(qexec_new(q, params, nparams, &x, &err) == 0, "qexec_new %s: %s", text, err.msg);
    feed(x, sp, part, text);
    msgpack_sbuffer_init(out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    ck_assert_msg(qexec_pack_partial(x, &pk, &err) == 0, "pack %s: %s", text, err.msg);
    qexec_free(x);
}

/* The gatherer: merges (or, for the direct part, adds) every part. */
static void gather(qexec *g, const query_t *q, const qvalue *params, uint32_t nparams,
                   const split *sp, const char *text)
{
    qerror err;
    bool enough = false;
    for (int part = 0; part < sp->nparts; part++) {
        int rc;
        if (part == sp->direct) {
            rc = feed(g, sp, part, text);
        } else {
            msgpack_sbuffer b;
            pack_part(q, params, nparams, sp, part, text, &b);
            rc = qexec_merge_partial(g, (const uint8_t *)b.data, b.size, &err);
            msgpack_sbuffer_destroy(&b);
            ck_assert_msg(rc >= 0, "merge %s (%s, part %d): %s", text, sp->name, part, err.msg);
        }
        /* enough stays enough */
        ck_assert_msg(!enough || rc == QEXEC_ENOUGH, "%s (%s): enough, then not", text, sp->name);
        enough = rc == QEXEC_ENOUGH;
    }
}

static void result_of(qexec *x, result *r)
{
    r->ncols = (int)qexec_ncolumns(x);
    r->nrows = 0;
    r->cells = NULL;
    for (size_t i = 0; i < qexec_nrows(x); i++) {
        size_t len;
        const uint8_t *p = qexec_row(x, i, &len);
        qvalue arr;
        ck_assert(qvalue_decode(p, len, 32, &arr) == len && arr.type == QT_ARRAY);
        result_push_row(r);
        for (int c = 0; c < r->ncols; c++) {
            qvalue v = qvalue_element(&arr, c);
            cell_from_qvalue(cell_at(r, r->nrows - 1, c), &v);
        }
    }
}

/* ---- through indexes ---- */


static region_t *indexed_region(void)
{
    if (indexed)
        return indexed;
    region_config cfg = {.type = REGION_PARTITION, .total_num_buckets = 17};
    snprintf(cfg.name, sizeof cfg.name, "orders");
    indexed = region_new(&cfg, 1);
    ck_assert_ptr_nonnull(indexed);
    static const struct {
        const char *name, *expr;
        qindex_kind kind;
    } defs[] = {
        {"id", "id", QINDEX_RANGE},         {"qty", "qty", QINDEX_HASH},
        {"qty_r", "qty", QINDEX_RANGE},     {"total", "total", QINDEX_RANGE},
        {"status", "status", QINDEX_HASH},  {"city", "customer.city", QINDEX_RANGE},
        {"note", "note", QINDEX_HASH},      {"discount", "discount", QINDEX_RANGE},
    };
    /* half the indexes before the data (kept in step), half after (built) */
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        if (i == 4)
            for (int k = 0; k < NORDERS; k++) {
                const order *o = &orders[k];
                ck_assert_int_eq(region_put(indexed, hash_key(o->key, strlen(o->key)),
                                            (const uint8_t *)o->key, (uint32_t)strlen(o->key), true,
                                            (const uint8_t *)o->value.data,
                                            (uint32_t)o->value.size, NULL),
                                 0);
            }
        qerror err;
        ck_assert_int_eq(qindex_create(indexed, defs[i].name, defs[i].expr, strlen(defs[i].expr),
                                       defs[i].kind, &err),
                         0);
    }
    return indexed;
}

typedef struct ifeed {
    qexec *x;
    const char *text;
} ifeed;

static int ifeed_visit(void *arg, const entry_view *e)
{
    ifeed *f = arg;
    qrow row = {.key = qv_str(e->key, e->klen)};
    ck_assert(qvalue_decode(e->value, e->vlen, 32, &row.value) == e->vlen);
    qerror err;
    int rc = qexec_add(f->x, &row, &err);
    ck_assert_msg(rc >= 0, "%s: %s", f->text, err.msg);
    return rc == QEXEC_ENOUGH;
}

/* Runs text over the indexed region: through the planner's probe, or a
 * scan when no index applies. */
static void run_indexed(const char *text, const qvalue *params, uint32_t nparams, result *r)
{
    region_t *reg = indexed_region();
    query_t *q;
    qerror err;
    ck_assert_int_eq(query_parse(text, strlen(text), &q, &err), 0);
    qindex_probe *probe;
    ck_assert_int_eq(qindex_plan(reg, q, params, nparams, &probe), 0);
    ifeed f = {.text = text};
    ck_assert_int_eq(qexec_new(q, params, nparams, &f.x, &err), 0);
    if (probe) {
        indexed_used++;
        for (uint32_t b = 0; b < 17; b++)
            if (qindex_probe_bucket(probe, reg, b, ifeed_visit, &f))
                break;
    } else {
        uint64_t next;
        region_scan(reg, 0, UINT32_MAX, ifeed_visit, &f, &next);
    }
    ck_assert_msg(qexec_finish(f.x, &err) == 0, "%s: %s", text, err.msg);
    result_of(f.x, r);
    qexec_free(f.x);
    qindex_probe_free(probe);
    query_free(q);
}

/* Runs text over every order: with one executor (sp NULL) or split. */
static void run_agate(const char *text, const qvalue *params, uint32_t nparams, const split *sp,
                      result *r)
{
    query_t *q;
    qerror err;
    int rc = query_parse(text, strlen(text), &q, &err);
    ck_assert_msg(rc == 0, "parse %s: at %u: %s", text, err.pos, err.msg);
    qexec *x;
    rc = qexec_new(q, params, nparams, &x, &err);
    ck_assert_msg(rc == 0, "qexec_new %s: %s", text, err.msg);
    if (sp)
        gather(x, q, params, nparams, sp, text);
    else
        feed(x, NULL, -1, text);
    ck_assert_msg(qexec_finish(x, &err) == 0, "%s: %s", text, err.msg);
    result_of(x, r);
    qexec_free(x);
    query_free(q);
}

static void run_sqlite(const char *sql, const int64_t *iparams, int nparams, result *r)
{
    sqlite3_stmt *st;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(db));
    for (int i = 0; i < nparams; i++)
        sqlite3_bind_int64(st, i + 1, iparams[i]);
    r->ncols = sqlite3_column_count(st);
    r->nrows = 0;
    r->cells = NULL;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        result_push_row(r);
        for (int c = 0; c < r->ncols; c++) {
            cell *x = cell_at(r, r->nrows - 1, c);
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER:
                x->type = 1;
                x->i = sqlite3_column_int64(st, c);
                break;
            case SQLITE_FLOAT:
                x->type = 2;
                x->f = sqlite3_column_double(st, c);
                break;
            case SQLITE_TEXT:
                x->type = 3;
                snprintf(x->s, sizeof x->s, "%s", (const char *)sqlite3_column_text(st, c));
                break;
            default:
                x->type = 0;
            }
        }
    }
    ck_assert_msg(rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
}

static bool cell_eq(const cell *a, const cell *b)
{
    if (a->type == 0 || b->type == 0)
        return a->type == b->type;
    if (a->type == 3 || b->type == 3)
        return a->type == b->type && !strcmp(a->s, b->s);
    double x = a->type == 1 ? (double)a->i : a->f, y = b->type == 1 ? (double)b->i : b->f;
    if (a->type == 1 && b->type == 1)
        return a->i == b->i;
    return fabs(x - y) <= 1e-9 * fmax(1.0, fmax(fabs(x), fabs(y)));
}

static int ncols_sort;

static int cell_cmp(const cell *a, const cell *b)
{
    if (a->type != b->type)
        return a->type - b->type;
    if (a->type == 1)
        return (a->i > b->i) - (a->i < b->i);
    if (a->type == 2)
        return (a->f > b->f) - (a->f < b->f);
    if (a->type == 3)
        return strcmp(a->s, b->s);
    return 0;
}

static int row_cmp(const void *a, const void *b)
{
    const cell *x = a, *y = b;
    for (int c = 0; c < ncols_sort; c++) {
        int r = cell_cmp(&x[c], &y[c]);
        if (r)
            return r;
    }
    return 0;
}

static void describe(const result *r, char *out, size_t cap)
{
    size_t used = 0;
    for (size_t i = 0; i < r->nrows && i < 6 && used < cap; i++) {
        used += (size_t)snprintf(out + used, cap - used, "[");
        for (int c = 0; c < r->ncols && used < cap; c++) {
            const cell *x = &r->cells[i * (size_t)r->ncols + c];
            if (x->type == 1)
                used += (size_t)snprintf(out + used, cap - used, "%lld ", (long long)x->i);
            else if (x->type == 2)
                used += (size_t)snprintf(out + used, cap - used, "%g ", x->f);
            else if (x->type == 3)
                used += (size_t)snprintf(out + used, cap - used, "'%s' ", x->s);
            else
                used += (size_t)snprintf(out + used, cap - used, "null ");
        }
        if (used < cap)
            used += (size_t)snprintf(out + used, cap - used, "] ");
    }
}

static void sort_result(result *r)
{
    if (r->nrows > 1) {
        ncols_sort = r->ncols;
        qsort(r->cells, r->nrows, (size_t)r->ncols * sizeof(cell), row_cmp);
    }
}

/* Compares Agate's result a (run as how) with SQLite's s (sorted already
 * when !ordered). */
static void compare(const char *agate, const char *how, bool ordered, result *a, const result *s)
{
    ck_assert_msg(a->ncols == s->ncols, "%s [%s]: %d columns, SQLite %d", agate, how, a->ncols,
                  s->ncols);
    if (!ordered)
        sort_result(a);
    char da[600] = "", ds[600] = "";
    describe(a, da, sizeof da);
    describe(s, ds, sizeof ds);
    ck_assert_msg(a->nrows == s->nrows, "%s [%s]: %zu rows, SQLite %zu\n agate: %s\n sqlite: %s",
                  agate, how, a->nrows, s->nrows, da, ds);
    for (size_t i = 0; i < a->nrows; i++)
        for (int c = 0; c < a->ncols; c++)
            ck_assert_msg(cell_eq(cell_at(a, i, c), cell_at((result *)s, i, c)),
                          "%s [%s]: row %zu column %d differs\n agate: %s\n sqlite: %s", agate, how,
                          i, c, da, ds);
}

/* Runs both and compares; ordered: the row order must match too. Agate
 * runs with one executor and then split over parts in every way of
 * splits[] (partials packed, merged and finished by a gatherer): each must
 * give SQLite's rows. */
static void conform_ex(const char *agate, const char *sql, bool ordered, const int64_t *params,
                       int nparams, bool allow_empty)
{
    qvalue qp[4] = {{0}};
    for (int i = 0; i < nparams; i++)
        qp[i] = qv_int(params[i]);
    result s;
    run_sqlite(sql, params, nparams, &s);
    if (!ordered)
        sort_result(&s);
    ck_assert_msg(allow_empty || s.nrows > 0, "%s: an empty result proves little", agate);
    for (int m = -1; m < (int)NSPLITS; m++) {
        result a;
        run_agate(agate, qp, (uint32_t)nparams, m < 0 ? NULL : &splits[m], &a);
        compare(agate, m < 0 ? "single" : splits[m].name, ordered, &a, &s);
        free(a.cells);
    }
    if (strstr(agate, "/orders.keys") == NULL) {
        result a;
        run_indexed(agate, qp, (uint32_t)nparams, &a);
        compare(agate, "indexed", ordered, &a, &s);
        free(a.cells);
    }
    free(s.cells);
}

static void conform(const char *agate, const char *sql, bool ordered, const int64_t *params, int nparams)
{
    conform_ex(agate, sql, ordered, params, nparams, false);
}

#define C(agate, sql) conform(agate, sql, false, NULL, 0)
#define CO(agate, sql) conform(agate, sql, true, NULL, 0)

START_TEST(filters)
{
    C("SELECT o.id FROM /orders o WHERE o.total > 250", "SELECT id FROM t WHERE total > 250");
    C("SELECT id FROM /orders WHERE status IN ('paid', 'new') AND qty >= 3",
      "SELECT id FROM t WHERE status IN ('paid', 'new') AND qty >= 3");
    C("SELECT id FROM /orders WHERE status NOT IN ('paid', 'new') OR qty < 0",
      "SELECT id FROM t WHERE status NOT IN ('paid', 'new') OR qty < 0");
    C("SELECT id, customer.city FROM /orders WHERE customer.city LIKE '%a%'",
      "SELECT id, city FROM t WHERE city LIKE '%a%'");
    C("SELECT id FROM /orders WHERE customer.city LIKE 'L_ma'", "SELECT id FROM t WHERE city LIKE 'L_ma'");
    C("SELECT id FROM /orders WHERE customer.city NOT LIKE '%o%'",
      "SELECT id FROM t WHERE city NOT LIKE '%o%'");
    C("SELECT id FROM /orders WHERE note LIKE '%\\%%'", "SELECT id FROM t WHERE note LIKE '%\\%%' ESCAPE '\\'");
    C("SELECT id, note FROM /orders WHERE note IS NULL AND qty = 2",
      "SELECT id, note FROM t WHERE note IS NULL AND qty = 2");
    C("SELECT id FROM /orders WHERE note IS NOT NULL", "SELECT id FROM t WHERE note IS NOT NULL");
    /* three-valued logic with nil discounts */
    C("SELECT id FROM /orders WHERE NOT (discount > 5)", "SELECT id FROM t WHERE NOT (discount > 5)");
    C("SELECT id FROM /orders WHERE NOT (status = 'paid') OR discount > 15",
      "SELECT id FROM t WHERE NOT (status = 'paid') OR discount > 15");
    C("SELECT id FROM /orders WHERE discount = NULL OR id < 0 OR id = 7",
      "SELECT id FROM t WHERE discount = NULL OR id < 0 OR id = 7");
    C("SELECT id FROM /orders WHERE discount IN (1, 2, NULL) AND qty > 4",
      "SELECT id FROM t WHERE discount IN (1, 2, NULL) AND qty > 4");
    C("SELECT e.key FROM /orders.entries e WHERE e.value.id < 5", "SELECT key FROM t WHERE id < 5");
    C("SELECT k FROM /orders.keys k WHERE k LIKE 'order-0001_'", "SELECT key FROM t WHERE key LIKE 'order-0001_'");
    /* through indexes: = and IN (hash and range), ranges, a path, .entries */
    C("SELECT id FROM /orders WHERE total >= 120.5 AND total < 130",
      "SELECT id FROM t WHERE total >= 120.5 AND total < 130");
    C("SELECT id FROM /orders o WHERE o.customer.city = 'Oslo' AND o.qty IN (1, 2.0, 2, NULL)",
      "SELECT id FROM t WHERE city = 'Oslo' AND qty IN (1, 2, NULL)");
    C("SELECT id FROM /orders WHERE customer.city > 'Lima' AND customer.city <= 'Perth'",
      "SELECT id FROM t WHERE city > 'Lima' AND city <= 'Perth'");
    C("SELECT id FROM /orders WHERE note = 'gift' AND discount > 3",
      "SELECT id FROM t WHERE note = 'gift' AND discount > 3");
    C("SELECT id FROM /orders WHERE 10 > discount", "SELECT id FROM t WHERE 10 > discount");
    C("SELECT e.key FROM /orders.entries e WHERE e.value.id IN (5, 6, 7.0, 7.5)",
      "SELECT key FROM t WHERE id IN (5, 6, 7)");
    C("SELECT id FROM /orders WHERE qty = 3.0", "SELECT id FROM t WHERE qty = 3");
    ck_assert_int_ge(indexed_used, 12);
}
END_TEST

START_TEST(arithmetic)
{
    C("SELECT id, qty * 2 + 1 AS x, qty / 2, qty % 3, total * qty FROM /orders WHERE id < 200",
      "SELECT id, qty * 2 + 1, qty / 2, qty % 3, total * qty FROM t WHERE id < 200");
    C("SELECT id, discount - qty FROM /orders WHERE id < 100", "SELECT id, discount - qty FROM t WHERE id < 100");
    C("SELECT id, -qty, total / 4 FROM /orders WHERE id < 50", "SELECT id, -qty, total / 4 FROM t WHERE id < 50");
    /* division by zero is NULL in both */
    C("SELECT id, 10 / qty, 10 % qty FROM /orders WHERE qty = 0 AND id < 300",
      "SELECT id, 10 / qty, 10 % qty FROM t WHERE qty = 0 AND id < 300");
}
END_TEST

START_TEST(ordering)
{
    CO("SELECT id, total FROM /orders ORDER BY total DESC, id LIMIT 10",
       "SELECT id, total FROM t ORDER BY total DESC, id LIMIT 10");
    CO("SELECT id, discount FROM /orders ORDER BY discount, id LIMIT 25",
       "SELECT id, discount FROM t ORDER BY discount, id LIMIT 25");
    CO("SELECT id, note FROM /orders ORDER BY note DESC, id DESC LIMIT 40",
       "SELECT id, note FROM t ORDER BY note DESC, id DESC LIMIT 40");
    CO("SELECT DISTINCT customer.city FROM /orders ORDER BY customer.city",
       "SELECT DISTINCT city FROM t ORDER BY city");
    CO("SELECT DISTINCT status, qty FROM /orders WHERE qty > 5 ORDER BY status, qty",
       "SELECT DISTINCT status, qty FROM t WHERE qty > 5 ORDER BY status, qty");
    CO("SELECT id, qty * total AS v FROM /orders ORDER BY v DESC, id LIMIT 7",
       "SELECT id, qty * total AS v FROM t ORDER BY v DESC, id LIMIT 7");
    int64_t p[] = {13};
    conform("SELECT id FROM /orders WHERE qty = 3 ORDER BY id LIMIT $1",
            "SELECT id FROM t WHERE qty = 3 ORDER BY id LIMIT ?1", true, p, 1);
}
END_TEST

START_TEST(aggregates)
{
    C("SELECT COUNT(*), SUM(qty), AVG(total), MIN(customer.city), MAX(total) FROM /orders",
      "SELECT COUNT(*), SUM(qty), AVG(total), MIN(city), MAX(total) FROM t");
    C("SELECT COUNT(note), COUNT(discount), SUM(discount), AVG(discount) FROM /orders",
      "SELECT COUNT(note), COUNT(discount), SUM(discount), AVG(discount) FROM t");
    C("SELECT COUNT(DISTINCT customer.city), COUNT(DISTINCT discount), SUM(DISTINCT qty) FROM /orders",
      "SELECT COUNT(DISTINCT city), COUNT(DISTINCT discount), SUM(DISTINCT qty) FROM t");
    C("SELECT status, COUNT(*), SUM(qty), MIN(total), MAX(customer.city) FROM /orders GROUP BY status",
      "SELECT status, COUNT(*), SUM(qty), MIN(total), MAX(city) FROM t GROUP BY status");
    CO("SELECT customer.city, status, COUNT(*) AS n FROM /orders GROUP BY customer.city, status "
       "ORDER BY n DESC, customer.city, status LIMIT 5",
       "SELECT city, status, COUNT(*) AS n FROM t GROUP BY city, status ORDER BY n DESC, city, status LIMIT 5");
    C("SELECT discount, COUNT(*) FROM /orders GROUP BY discount", "SELECT discount, COUNT(*) FROM t GROUP BY discount");
    /* over no rows: one row of NULLs (and a zero count) */
    C("SELECT COUNT(*), SUM(qty), MIN(total) FROM /orders WHERE id < 0",
      "SELECT COUNT(*), SUM(qty), MIN(total) FROM t WHERE id < 0");
}
END_TEST

/* LIMIT, ORDER BY and DISTINCT at their edges, single and split. */
START_TEST(limits_and_distinct)
{
    /* LIMIT 0: nothing, whatever else the query does */
    conform_ex("SELECT id FROM /orders LIMIT 0", "SELECT id FROM t LIMIT 0", true, NULL, 0, true);
    conform_ex("SELECT id FROM /orders ORDER BY id LIMIT 0", "SELECT id FROM t ORDER BY id LIMIT 0",
               true, NULL, 0, true);
    conform_ex("SELECT DISTINCT status FROM /orders LIMIT 0", "SELECT DISTINCT status FROM t LIMIT 0",
               true, NULL, 0, true);
    conform_ex("SELECT DISTINCT status FROM /orders ORDER BY status LIMIT 0",
               "SELECT DISTINCT status FROM t ORDER BY status LIMIT 0", true, NULL, 0, true);
    conform_ex("SELECT status, COUNT(*) FROM /orders GROUP BY status LIMIT 0",
               "SELECT status, COUNT(*) FROM t GROUP BY status LIMIT 0", true, NULL, 0, true);
    conform_ex("SELECT COUNT(*) FROM /orders LIMIT 0", "SELECT COUNT(*) FROM t LIMIT 0", true, NULL,
               0, true);
    int64_t zero[] = {0};
    conform_ex("SELECT id FROM /orders WHERE qty = 3 LIMIT $1", "SELECT id FROM t WHERE qty = 3 LIMIT ?1",
               true, zero, 1, true);
    /* a LIMIT above the number of rows: all of them */
    C("SELECT id FROM /orders WHERE id < 10 LIMIT 50", "SELECT id FROM t WHERE id < 10 LIMIT 50");
    CO("SELECT id, total FROM /orders WHERE id < 10 ORDER BY total, id LIMIT 50",
       "SELECT id, total FROM t WHERE id < 10 ORDER BY total, id LIMIT 50");
    C("SELECT DISTINCT status FROM /orders LIMIT 10", "SELECT DISTINCT status FROM t LIMIT 10");
    C("SELECT DISTINCT customer.city FROM /orders LIMIT 8", "SELECT DISTINCT city FROM t LIMIT 8");
    CO("SELECT DISTINCT status FROM /orders ORDER BY status DESC LIMIT 100",
       "SELECT DISTINCT status FROM t ORDER BY status DESC LIMIT 100");
    CO("SELECT status, COUNT(*) AS n FROM /orders GROUP BY status ORDER BY status LIMIT 9",
       "SELECT status, COUNT(*) AS n FROM t GROUP BY status ORDER BY status LIMIT 9");
    /* DISTINCT + ORDER BY + LIMIT, the duplicates in every part (hash3) or
     * the best values' duplicates crowded into one part (by-qty) */
    CO("SELECT DISTINCT qty FROM /orders ORDER BY qty DESC LIMIT 3",
       "SELECT DISTINCT qty FROM t ORDER BY qty DESC LIMIT 3");
    CO("SELECT DISTINCT qty FROM /orders ORDER BY qty LIMIT 4", "SELECT DISTINCT qty FROM t ORDER BY qty LIMIT 4");
    CO("SELECT DISTINCT customer.city, status FROM /orders ORDER BY status DESC, customer.city LIMIT 6",
       "SELECT DISTINCT city, status FROM t ORDER BY status DESC, city LIMIT 6");
    CO("SELECT DISTINCT discount FROM /orders ORDER BY discount LIMIT 4",
       "SELECT DISTINCT discount FROM t ORDER BY discount LIMIT 4");
    CO("SELECT DISTINCT qty % 3 AS m, status FROM /orders WHERE qty >= 0 ORDER BY m DESC, status LIMIT 5",
       "SELECT DISTINCT qty % 3 AS m, status FROM t WHERE qty >= 0 ORDER BY m DESC, status LIMIT 5");
    CO("SELECT DISTINCT qty, status FROM /orders WHERE qty >= 6 ORDER BY qty DESC, status LIMIT 5",
       "SELECT DISTINCT qty, status FROM t WHERE qty >= 6 ORDER BY qty DESC, status LIMIT 5");
    /* aggregates where some parts match nothing */
    C("SELECT COUNT(*), SUM(qty), MAX(total) FROM /orders WHERE qty = 7",
      "SELECT COUNT(*), SUM(qty), MAX(total) FROM t WHERE qty = 7");
    C("SELECT COUNT(DISTINCT status), AVG(DISTINCT total), MIN(note) FROM /orders WHERE id = 1499",
      "SELECT COUNT(DISTINCT status), AVG(DISTINCT total), MIN(note) FROM t WHERE id = 1499");
    /* negative integer sums convert exactly (AVG of -1 was 0) */
    C("SELECT AVG(qty), SUM(qty + 0.5), AVG(DISTINCT qty) FROM /orders WHERE qty < 0 AND id < 40",
      "SELECT AVG(qty), SUM(qty + 0.5), AVG(DISTINCT qty) FROM t WHERE qty < 0 AND id < 40");
    C("SELECT status, SUM(DISTINCT qty), AVG(total) FROM /orders WHERE qty > 4 GROUP BY status",
      "SELECT status, SUM(DISTINCT qty), AVG(total) FROM t WHERE qty > 4 GROUP BY status");
}
END_TEST

/* ---- scatter and gather specifics ---- */

/* Parses text and makes an executor for it (no parameters). */
static qexec *make_exec(const char *text, query_t **q)
{
    qerror err;
    ck_assert_msg(query_parse(text, strlen(text), q, &err) == 0, "%s: %s", text, err.msg);
    qexec *x;
    ck_assert_msg(qexec_new(*q, NULL, 0, &x, &err) == 0, "%s: %s", text, err.msg);
    return x;
}

/* The number of items in a packed partial. */
static uint32_t partial_items(const msgpack_sbuffer *b)
{
    qvalue top;
    ck_assert(qvalue_decode((const uint8_t *)b->data, b->size, 64, &top) == b->size);
    ck_assert(top.type == QT_ARRAY);
    qvalue items = qvalue_element(&top, 1);
    ck_assert(items.type == QT_ARRAY);
    uint32_t n = 0;
    while (qvalue_element(&items, n).type != QT_UNDEFINED)
        n++;
    return n;
}

START_TEST(limit_without_order_split)
{
    const split *sp = &splits[0];
    struct {
        const char *text;
        uint32_t want;     /* rows in the result */
        uint32_t per_part; /* rows in each member's partial */
        bool enough;       /* whether the first merge has enough */
    } cases[] = {
        {"SELECT id FROM /orders LIMIT 10", 10, 10, true},
        {"SELECT DISTINCT customer.city FROM /orders LIMIT 5", 5, 5, true},
        {"SELECT DISTINCT customer.city FROM /orders LIMIT 9", 8, 8, false},
        {"SELECT DISTINCT status FROM /orders WHERE qty = 7 LIMIT 2", 2, 2, true},
        {"SELECT id FROM /orders LIMIT 0", 0, 0, true},
        {"SELECT id FROM /orders ORDER BY total DESC LIMIT 7", 7, 7, false},
        {"SELECT DISTINCT qty FROM /orders ORDER BY qty LIMIT 3", 3, 3, false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        query_t *q;
        qexec *g = make_exec(cases[c].text, &q);
        qerror err;
        for (int part = 0; part < sp->nparts; part++) {
            msgpack_sbuffer b;
            pack_part(q, NULL, 0, sp, part, cases[c].text, &b);
            ck_assert_msg(partial_items(&b) == cases[c].per_part, "%s: part %d has %u rows",
                          cases[c].text, part, partial_items(&b));
            int rc = qexec_merge_partial(g, (const uint8_t *)b.data, b.size, &err);
            msgpack_sbuffer_destroy(&b);
            ck_assert_int_eq(rc, cases[c].enough ? QEXEC_ENOUGH : 0);
        }
        /* once enough, rows of its own are not wanted either */
        qrow row;
        order_row(0, &row);
        ck_assert_int_eq(qexec_add(g, &row, &err), cases[c].enough ? QEXEC_ENOUGH : 0);
        ck_assert_int_eq(qexec_finish(g, &err), 0);
        ck_assert_uint_eq(qexec_nrows(g), cases[c].want);
        /* DISTINCT rows are distinct */
        for (size_t i = 0; q->distinct && i < qexec_nrows(g); i++)
            for (size_t k = 0; k < i; k++) {
                size_t li, lk;
                const uint8_t *ri = qexec_row(g, i, &li), *rk = qexec_row(g, k, &lk);
                ck_assert(li != lk || memcmp(ri, rk, li));
            }
        qexec_free(g);
        query_free(q);
    }
    /* an empty partial of a LIMIT 0 query is enough too */
    query_t *q;
    qexec *g = make_exec("SELECT id FROM /orders WHERE id < 0 LIMIT 0", &q);
    msgpack_sbuffer b;
    pack_part(q, NULL, 0, sp, 0, "LIMIT 0", &b);
    ck_assert_uint_eq(partial_items(&b), 0);
    ck_assert_int_eq(qexec_merge_partial(g, (const uint8_t *)b.data, b.size, NULL), QEXEC_ENOUGH);
    msgpack_sbuffer_destroy(&b);
    qexec_free(g);
    query_free(q);
}
END_TEST

/* Hand-made rows {g, v} for the number normalization across members. */
static void pack_gv(msgpack_sbuffer *b, bool g_float, int64_t g, int64_t v)
{
    msgpack_sbuffer_init(b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pack_cstr(&pk, "g");
    if (g_float)
        msgpack_pack_double(&pk, (double)g);
    else
        msgpack_pack_int64(&pk, g);
    pack_cstr(&pk, "v");
    msgpack_pack_int64(&pk, v);
}

/* Member 0 has g = 1 and 2 (integers), member 1 g = 1.0 (a float): one
 * group, one DISTINCT value. */
static void gv_partial(const query_t *q, int member, msgpack_sbuffer *out)
{
    qexec *x;
    qerror err;
    ck_assert_int_eq(qexec_new(q, NULL, 0, &x, &err), 0);
    for (int i = 0; i < 3; i++) {
        msgpack_sbuffer b;
        if (member == 0)
            pack_gv(&b, false, i == 2 ? 2 : 1, 10 + i);
        else
            pack_gv(&b, true, 1, 20 + i);
        qrow row = {qv_str("k", 1), qv_undefined()};
        ck_assert(qvalue_decode((const uint8_t *)b.data, b.size, 32, &row.value));
        ck_assert_int_ge(qexec_add(x, &row, &err), 0);
        msgpack_sbuffer_destroy(&b);
    }
    msgpack_sbuffer_init(out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    ck_assert_int_eq(qexec_pack_partial(x, &pk, &err), 0);
    qexec_free(x);
}

static qexec *gv_gather(const char *text, query_t **q)
{
    qexec *g = make_exec(text, q);
    qerror err;
    for (int m = 0; m < 2; m++) {
        msgpack_sbuffer b;
        gv_partial(*q, m, &b);
        ck_assert_int_eq(qexec_merge_partial(g, (const uint8_t *)b.data, b.size, &err), 0);
        msgpack_sbuffer_destroy(&b);
    }
    ck_assert_int_eq(qexec_finish(g, &err), 0);
    return g;
}

static qvalue cell_of(const qexec *x, size_t row, int col)
{
    size_t len;
    const uint8_t *p = qexec_row(x, row, &len);
    qvalue arr;
    ck_assert(p && qvalue_decode(p, len, 32, &arr) == len);
    return qvalue_element(&arr, col);
}

START_TEST(merge_normalizes_numbers)
{
    query_t *q;
    qexec *g = gv_gather("SELECT g, COUNT(*), SUM(v) FROM /r GROUP BY g ORDER BY g", &q);
    ck_assert_uint_eq(qexec_nrows(g), 2);
    qvalue v = cell_of(g, 0, 0);
    ck_assert(v.type == QT_INT && v.v.i == 1); /* the first member's spelling */
    v = cell_of(g, 0, 1);
    ck_assert(v.type == QT_INT && v.v.i == 5);
    v = cell_of(g, 0, 2);
    ck_assert(v.type == QT_INT && v.v.i == 10 + 11 + 20 + 21 + 22);
    v = cell_of(g, 1, 1);
    ck_assert(v.type == QT_INT && v.v.i == 1);
    qexec_free(g);
    query_free(q);
    g = gv_gather("SELECT DISTINCT g FROM /r ORDER BY g", &q);
    ck_assert_uint_eq(qexec_nrows(g), 2);
    qexec_free(g);
    query_free(q);
    g = gv_gather("SELECT COUNT(DISTINCT g), MIN(g), MAX(v) FROM /r", &q);
    ck_assert_uint_eq(qexec_nrows(g), 1);
    v = cell_of(g, 0, 0);
    ck_assert(v.type == QT_INT && v.v.i == 2);
    v = cell_of(g, 0, 1);
    ck_assert(v.type == QT_INT && v.v.i == 1);
    v = cell_of(g, 0, 2);
    ck_assert(v.type == QT_INT && v.v.i == 22);
    qexec_free(g);
    query_free(q);
}
END_TEST

START_TEST(pack_merge_finish_once)
{
    query_t *q;
    qerror err;
    qexec *x = make_exec("SELECT id FROM /orders WHERE id < 3", &q);
    feed(x, NULL, -1, "once");
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    ck_assert_int_eq(qexec_pack_partial(x, &pk, &err), 0);
    size_t size = b.size;
    ck_assert_int_eq(qexec_pack_partial(x, &pk, &err), -EINVAL);
    ck_assert_msg(strstr(err.msg, "finished") != NULL, "%s", err.msg);
    ck_assert_uint_eq(b.size, size);
    ck_assert_int_eq(qexec_finish(x, &err), -EINVAL);
    ck_assert_int_eq(qexec_merge_partial(x, (const uint8_t *)b.data, b.size, &err), -EINVAL);
    qexec_free(x);
    /* merging into an executor that has finished */
    query_t *q2;
    x = make_exec("SELECT id FROM /orders WHERE id < 3", &q2);
    ck_assert_int_eq(qexec_finish(x, &err), 0);
    ck_assert_int_eq(qexec_merge_partial(x, (const uint8_t *)b.data, b.size, &err), -EINVAL);
    ck_assert_uint_eq(qexec_nrows(x), 0);
    qexec_free(x);
    query_free(q2);
    query_free(q);
    msgpack_sbuffer_destroy(&b);
}
END_TEST

/* ---- malformed partials ---- */

static const char *const q_grouped =
    "SELECT status, COUNT(*), SUM(DISTINCT qty), MIN(customer.city) FROM /orders WHERE id < 40 "
    "GROUP BY status ORDER BY status";
static const char *const q_ordered = "SELECT id, status FROM /orders WHERE id < 40 ORDER BY status, id";
static const char *const q_plain = "SELECT DISTINCT status, qty FROM /orders WHERE id < 40";

/* A member's partial over the orders of hash3 part 0. */
static void valid_partial(const char *text, msgpack_sbuffer *out)
{
    query_t *q;
    qexec *x = make_exec(text, &q);
    qexec_free(x);
    pack_part(q, NULL, 0, &splits[0], 0, text, out);
    query_free(q);
}

/* Merges n bytes at p into a fresh executor for text; returns the code
 * (with err->msg checked to say something when it fails). After a success,
 * qexec_finish must succeed too. */
static int merge_fresh(const char *text, const void *p, size_t n, qerror *err)
{
    query_t *q;
    qexec *x = make_exec(text, &q);
    err->msg[0] = 0;
    int rc = qexec_merge_partial(x, p, n, err);
    if (rc < 0)
        ck_assert_msg(err->msg[0] || rc == -ENOMEM, "no message for %d", rc);
    else
        ck_assert_int_eq(qexec_finish(x, err), 0);
    qexec_free(x);
    query_free(q);
    return rc;
}

/* A hand-made partial: pk writes into b. */
typedef struct hand {
    msgpack_sbuffer b;
    msgpack_packer pk;
} hand;

static msgpack_packer *hand_start(hand *h)
{
    msgpack_sbuffer_init(&h->b);
    msgpack_packer_init(&h->pk, &h->b, msgpack_sbuffer_write);
    return &h->pk;
}

/* Expects -EINVAL with msg containing want for text, then frees h. */
static void hand_refused(hand *h, const char *text, const char *want)
{
    qerror err;
    int rc = merge_fresh(text, h->b.data, h->b.size, &err);
    ck_assert_msg(rc == -EINVAL, "%s: %d", want, rc);
    ck_assert_msg(strstr(err.msg, want) != NULL, "wanted '%s' in '%s'", want, err.msg);
    msgpack_sbuffer_destroy(&h->b);
}

static void pack_acc(msgpack_packer *pk, qagg fn, bool star, bool distinct)
{
    qagg_acc a;
    qagg_init(&a, fn, star, distinct);
    ck_assert_int_eq(qagg_pack(&a, pk), 0);
    qagg_free(&a);
}

/* One group of q_grouped's shape: [key, first, [accs]] with the given
 * key size, first row size and accumulators (COUNT(*), SUM(DISTINCT),
 * MIN, then the extra ones as COUNT(*)). */
static void pack_group(msgpack_packer *pk, int nkey, int nfirst, int naccs, bool wrong_fn)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_array(pk, (size_t)nkey);
    for (int i = 0; i < nkey; i++)
        pack_cstr(pk, "paid");
    msgpack_pack_array(pk, (size_t)nfirst);
    for (int i = 0; i < nfirst; i++)
        pack_cstr(pk, "k");
    msgpack_pack_array(pk, (size_t)naccs);
    for (int i = 0; i < naccs; i++) {
        if (wrong_fn || i == 0 || i > 2)
            pack_acc(pk, QAGG_COUNT, true, false);
        else if (i == 1)
            pack_acc(pk, QAGG_SUM, false, true);
        else
            pack_acc(pk, QAGG_MIN, false, false);
    }
}

START_TEST(malformed_partials)
{
    const char *texts[] = {q_grouped, q_ordered, q_plain};
    qerror err;
    for (int t = 0; t < 3; t++) {
        msgpack_sbuffer good;
        valid_partial(texts[t], &good);
        ck_assert_int_eq(merge_fresh(texts[t], good.data, good.size, &err), 0);
        /* every truncation, into one gatherer: refused, nothing merged */
        query_t *q;
        qexec *g = make_exec(texts[t], &q);
        for (size_t n = 0; n < good.size; n++) {
            int rc = qexec_merge_partial(g, (const uint8_t *)good.data, n, &err);
            ck_assert_msg(rc == -EINVAL, "%s: %zu of %zu bytes: %d", texts[t], n, good.size, rc);
        }
        /* trailing bytes: not one object */
        char *more = malloc(good.size + 1);
        memcpy(more, good.data, good.size);
        more[good.size] = (char)0xc0;
        ck_assert_int_eq(qexec_merge_partial(g, (const uint8_t *)more, good.size + 1, &err), -EINVAL);
        free(more);
        /* after the refusals the gatherer is as new: the result is part 0's */
        ck_assert_int_eq(qexec_merge_partial(g, (const uint8_t *)good.data, good.size, &err), 0);
        ck_assert_int_eq(qexec_finish(g, &err), 0);
        qexec *one;
        ck_assert_int_eq(qexec_new(q, NULL, 0, &one, &err), 0);
        feed(one, &splits[0], 0, texts[t]);
        ck_assert_int_eq(qexec_finish(one, &err), 0);
        ck_assert_uint_eq(qexec_nrows(g), qexec_nrows(one));
        ck_assert_uint_gt(qexec_nrows(g), 0);
        if (q->norder)
            for (size_t i = 0; i < qexec_nrows(g); i++) {
                size_t la, lb;
                const uint8_t *a = qexec_row(g, i, &la), *b = qexec_row(one, i, &lb);
                ck_assert(la == lb && !memcmp(a, b, la));
            }
        qexec_free(one);
        qexec_free(g);
        query_free(q);
        /* the wrong kind: each into the others */
        for (int o = 0; o < 3; o++) {
            if (o == t)
                continue;
            int rc = merge_fresh(texts[o], good.data, good.size, &err);
            ck_assert_msg(rc == -EINVAL, "%s into %s: %d", texts[t], texts[o], rc);
        }
        /* every byte changed to a few others: never a crash or a leak */
        static const uint8_t subst[] = {0x00, 0x01, 0x7f, 0x90, 0x93, 0xc0, 0xc1, 0xcf, 0xdc, 0xff};
        uint8_t *bad = malloc(good.size);
        for (size_t i = 0; i < good.size; i++)
            for (size_t k = 0; k < sizeof subst; k++) {
                memcpy(bad, good.data, good.size);
                if (bad[i] == subst[k])
                    continue;
                bad[i] = subst[k];
                int rc = merge_fresh(texts[t], bad, good.size, &err);
                ck_assert_msg(rc == 0 || rc == QEXEC_ENOUGH || rc == -EINVAL,
                              "%s: byte %zu = %#x: %d", texts[t], i, subst[k], rc);
            }
        free(bad);
        msgpack_sbuffer_destroy(&good);
    }

    /* garbage */
    ck_assert_int_eq(merge_fresh(q_plain, "", 0, &err), -EINVAL);
    ck_assert_int_eq(merge_fresh(q_plain, "\xc1", 1, &err), -EINVAL);
    ck_assert_int_eq(merge_fresh(q_plain, "\xff\xff\xff", 3, &err), -EINVAL);
    ck_assert_int_eq(merge_fresh(q_grouped, "\xdd\xff\xff\xff\xff", 5, &err), -EINVAL);
    unsigned seed = 7;
    uint8_t junk[64];
    for (int i = 0; i < 2000; i++) {
        size_t n = (size_t)(rand_r(&seed) % (int)sizeof junk);
        for (size_t k = 0; k < n; k++)
            junk[k] = (uint8_t)rand_r(&seed);
        int rc = merge_fresh(i % 2 ? q_grouped : q_plain, junk, n, &err);
        ck_assert_msg(rc == 0 || rc == -EINVAL, "junk %d: %d", i, rc);
    }

    /* hand-made: the envelope */
    hand h;
    msgpack_pack_int(hand_start(&h), 0);
    hand_refused(&h, q_plain, "[kind, items]");
    msgpack_pack_array(hand_start(&h), 1);
    msgpack_pack_int(&h.pk, 0);
    hand_refused(&h, q_plain, "[kind, items]");
    msgpack_pack_array(hand_start(&h), 2);
    pack_cstr(&h.pk, "0");
    msgpack_pack_array(&h.pk, 0);
    hand_refused(&h, q_plain, "[kind, items]");
    msgpack_pack_array(hand_start(&h), 2);
    msgpack_pack_int(&h.pk, 2);
    msgpack_pack_array(&h.pk, 0);
    hand_refused(&h, q_plain, "unknown kind");
    msgpack_pack_array(hand_start(&h), 2);
    msgpack_pack_int(&h.pk, -1);
    msgpack_pack_array(&h.pk, 0);
    hand_refused(&h, q_plain, "[kind, items]");
    msgpack_pack_array(hand_start(&h), 2);
    msgpack_pack_int(&h.pk, 1);
    msgpack_pack_array(&h.pk, 0);
    hand_refused(&h, q_plain, "not grouped");
    msgpack_pack_array(hand_start(&h), 2);
    msgpack_pack_int(&h.pk, 0);
    msgpack_pack_array(&h.pk, 0);
    hand_refused(&h, q_grouped, "non-grouped");
    msgpack_pack_array(hand_start(&h), 2);
    msgpack_pack_int(&h.pk, 0);
    msgpack_pack_map(&h.pk, 0);
    hand_refused(&h, q_plain, "[kind, items]");

    /* hand-made rows of the wrong sizes */
    struct {
        const char *text;
        int nrow, nsort; /* -1: nil */
        int fields;      /* of the item */
    } rows[] = {
        {q_ordered, 3, 2, 2}, {q_ordered, 1, 2, 2}, {q_ordered, 2, 1, 2}, {q_ordered, 2, 3, 2},
        {q_ordered, 2, -1, 2}, {q_ordered, 2, 2, 3}, {q_ordered, 2, 2, 1}, {q_plain, 2, 0, 2},
        {q_plain, 2, 2, 2}, {q_plain, 3, -1, 2}, {q_plain, -1, -1, 2},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        msgpack_pack_array(hand_start(&h), 2);
        msgpack_pack_int(&h.pk, 0);
        msgpack_pack_array(&h.pk, 2);
        for (int k = 0; k < 2; k++) {
            /* a good row first, then the bad one */
            bool ok = k == 0;
            int nrow = ok ? 2 : rows[i].nrow, nsort = ok ? (rows[i].text == q_plain ? -1 : 2) : rows[i].nsort;
            msgpack_pack_array(&h.pk, ok ? 2 : (size_t)rows[i].fields);
            if (nrow < 0) {
                msgpack_pack_nil(&h.pk);
            } else {
                msgpack_pack_array(&h.pk, (size_t)nrow);
                for (int c = 0; c < nrow; c++)
                    msgpack_pack_int(&h.pk, c);
            }
            if (!ok && rows[i].fields < 2) {
                /* no sort values at all */
            } else if (nsort < 0) {
                msgpack_pack_nil(&h.pk);
            } else {
                msgpack_pack_array(&h.pk, (size_t)nsort);
                for (int c = 0; c < nsort; c++)
                    msgpack_pack_int(&h.pk, c);
            }
            for (int f = 2; !ok && f < rows[i].fields; f++)
                msgpack_pack_nil(&h.pk);
        }
        hand_refused(&h, rows[i].text, "a row is not");
    }
    /* and a good hand-made one, to show the shapes above are the only fault */
    msgpack_pack_array(hand_start(&h), 2);
    msgpack_pack_int(&h.pk, 0);
    msgpack_pack_array(&h.pk, 1);
    msgpack_pack_array(&h.pk, 2);
    msgpack_pack_array(&h.pk, 2);
    msgpack_pack_int(&h.pk, 1);
    pack_cstr(&h.pk, "paid");
    msgpack_pack_array(&h.pk, 2);
    pack_cstr(&h.pk, "paid");
    msgpack_pack_int(&h.pk, 1);
    ck_assert_int_eq(merge_fresh(q_ordered, h.b.data, h.b.size, &err), 0);
    msgpack_sbuffer_destroy(&h.b);

    /* hand-made groups: key, first row, accumulators */
    struct {
        int nkey, nfirst, naccs;
        bool wrong_fn;
        const char *want;
    } groups[] = {
        {1, 2, 3, false, NULL},
        {0, 2, 3, false, "a group is not"},
        {2, 2, 3, false, "a group is not"},
        {1, 1, 3, false, "a group is not"},
        {1, 3, 3, false, "a group is not"},
        {1, 2, 2, false, "accumulators"},
        {1, 2, 4, false, "accumulators"},
        {1, 2, 0, false, "accumulators"},
        {1, 2, 3, true, "state of SUM(DISTINCT qty)"},
    };
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        msgpack_pack_array(hand_start(&h), 2);
        msgpack_pack_int(&h.pk, 1);
        msgpack_pack_array(&h.pk, 2);
        pack_group(&h.pk, 1, 2, 3, false); /* a good one first */
        pack_group(&h.pk, groups[i].nkey, groups[i].nfirst, groups[i].naccs, groups[i].wrong_fn);
        if (!groups[i].want) {
            ck_assert_int_eq(merge_fresh(q_grouped, h.b.data, h.b.size, &err), 0);
            msgpack_sbuffer_destroy(&h.b);
        } else {
            hand_refused(&h, q_grouped, groups[i].want);
        }
    }
    /* an accumulator that is not a state at all, and a group not an array */
    msgpack_pack_array(hand_start(&h), 2);
    msgpack_pack_int(&h.pk, 1);
    msgpack_pack_array(&h.pk, 1);
    msgpack_pack_array(&h.pk, 3);
    msgpack_pack_array(&h.pk, 1);
    pack_cstr(&h.pk, "paid");
    msgpack_pack_array(&h.pk, 2);
    msgpack_pack_nil(&h.pk);
    msgpack_pack_nil(&h.pk);
    msgpack_pack_array(&h.pk, 3);
    msgpack_pack_int(&h.pk, 1);
    msgpack_pack_int(&h.pk, 2);
    msgpack_pack_int(&h.pk, 3);
    hand_refused(&h, q_grouped, "state of COUNT(*)");
    msgpack_pack_array(hand_start(&h), 2);
    msgpack_pack_int(&h.pk, 1);
    msgpack_pack_array(&h.pk, 1);
    msgpack_pack_map(&h.pk, 0);
    hand_refused(&h, q_grouped, "a group is not");
}
END_TEST

/* ---- executor specifics ---- */

static size_t run_count(const char *text, uint64_t *matched, int *enough_at)
{
    query_t *q;
    qerror err;
    ck_assert_int_eq(query_parse(text, strlen(text), &q, &err), 0);
    qexec *x;
    ck_assert_int_eq(qexec_new(q, NULL, 0, &x, &err), 0);
    *enough_at = -1;
    for (int i = 0; i < NORDERS; i++) {
        qrow row = {qv_str(orders[i].key, (uint32_t)strlen(orders[i].key)), qv_undefined()};
        qvalue_decode((const uint8_t *)orders[i].value.data, orders[i].value.size, 32, &row.value);
        if (qexec_add(x, &row, &err) == QEXEC_ENOUGH) {
            *enough_at = i;
            break;
        }
    }
    ck_assert_int_eq(qexec_finish(x, &err), 0);
    size_t n = qexec_nrows(x);
    *matched = qexec_matched(x);
    qexec_free(x);
    query_free(q);
    return n;
}

START_TEST(limit_without_order_stops_early)
{
    uint64_t matched;
    int at;
    ck_assert_uint_eq(run_count("SELECT id FROM /orders LIMIT 10", &matched, &at), 10);
    ck_assert_int_eq(at, 9); /* no later row could change the result */
    ck_assert_uint_eq(matched, 10);
    ck_assert_uint_eq(run_count("SELECT id FROM /orders ORDER BY id LIMIT 10", &matched, &at), 10);
    ck_assert_int_eq(at, -1);
    ck_assert_uint_eq(matched, NORDERS);
}
END_TEST

START_TEST(columns_and_errors)
{
    query_t *q;
    qerror err;
    const char *text = "SELECT o.id AS ident, o.total * 2, COUNT(*) FROM /orders o GROUP BY o.id, o.total";
    ck_assert_int_eq(query_parse(text, strlen(text), &q, &err), 0);
    qexec *x;
    ck_assert_int_eq(qexec_new(q, NULL, 0, &x, &err), 0);
    ck_assert_uint_eq(qexec_ncolumns(x), 3);
    ck_assert_str_eq(qexec_column(x, 0), "ident");
    ck_assert_str_eq(qexec_column(x, 1), "o.total * 2");
    ck_assert_str_eq(qexec_column(x, 2), "COUNT(*)");
    qexec_free(x);
    query_free(q);
    /* a parameter the query uses but that was not given */
    text = "SELECT * FROM /orders WHERE id = $2";
    ck_assert_int_eq(query_parse(text, strlen(text), &q, &err), 0);
    qvalue one = qv_int(1);
    ck_assert_int_eq(qexec_new(q, &one, 1, &x, &err), -EINVAL);
    ck_assert_msg(strstr(err.msg, "$2") != NULL, "%s", err.msg);
    query_free(q);
    /* SELECT * over entries: key and value columns */
    text = "SELECT * FROM /orders.entries WHERE id = 3";
    ck_assert_int_eq(query_parse(text, strlen(text), &q, &err), 0);
    ck_assert_int_eq(qexec_new(q, NULL, 0, &x, &err), 0);
    ck_assert_uint_eq(qexec_ncolumns(x), 2);
    ck_assert_str_eq(qexec_column(x, 0), "key");
    ck_assert_str_eq(qexec_column(x, 1), "value");
    qexec_free(x);
    query_free(q);
}
END_TEST

static Suite *qexec_suite(void)
{
    Suite *s = suite_create("qexec");
    TCase *tc = tcase_create("conformance");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, filters);
    tcase_add_test(tc, arithmetic);
    tcase_add_test(tc, ordering);
    tcase_add_test(tc, aggregates);
    tcase_add_test(tc, limits_and_distinct);
    tcase_add_test(tc, limit_without_order_split);
    tcase_add_test(tc, merge_normalizes_numbers);
    tcase_add_test(tc, pack_merge_finish_once);
    tcase_add_test(tc, malformed_partials);
    tcase_add_test(tc, limit_without_order_stops_early);
    tcase_add_test(tc, columns_and_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    Suite *s = qexec_suite();
    return tu_run(&s, 1);
}
