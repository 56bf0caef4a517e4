/* Unit tests of the local query executor (region/qexec.c), and the
 * conformance test: the same queries over the same generated orders run in
 * Agate's engine and in SQLite, and must give the same rows.
 *
 * The generated data keeps to what both languages mean alike: every field
 * is present (nil where SQLite has NULL; UNDEFINED has no SQL twin and is
 * tested in test_qeval.c), strings are ASCII, and SQLite's LIKE is made
 * case-sensitive. Queries without ORDER BY are compared as multisets. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "region/qast.h"
#include "region/qexec.h"
#include "region/qvalue.h"
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

static void teardown(void)
{
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

static int run_agate(const char *text, const qvalue *params, uint32_t nparams, result *r)
{
    query_t *q;
    qerror err;
    int rc = query_parse(text, strlen(text), &q, &err);
    ck_assert_msg(rc == 0, "parse %s: at %u: %s", text, err.pos, err.msg);
    qexec *x;
    rc = qexec_new(q, params, nparams, &x, &err);
    ck_assert_msg(rc == 0, "qexec_new %s: %s", text, err.msg);
    for (int i = 0; i < NORDERS; i++) {
        qrow row = {qv_str(orders[i].key, (uint32_t)strlen(orders[i].key)), qv_undefined()};
        ck_assert(qvalue_decode((const uint8_t *)orders[i].value.data, orders[i].value.size, 32,
                                &row.value));
        rc = qexec_add(x, &row, &err);
        ck_assert_msg(rc >= 0, "%s: %s", text, err.msg);
        if (rc == QEXEC_ENOUGH)
            break;
    }
    ck_assert_msg(qexec_finish(x, &err) == 0, "%s: %s", text, err.msg);
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
    qexec_free(x);
    query_free(q);
    return 0;
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

/* Runs both and compares; ordered: the row order must match too. */
static void conform(const char *agate, const char *sql, bool ordered, const int64_t *params, int nparams)
{
    qvalue qp[4] = {{0}};
    for (int i = 0; i < nparams; i++)
        qp[i] = qv_int(params[i]);
    result a, s;
    run_agate(agate, qp, (uint32_t)nparams, &a);
    run_sqlite(sql, params, nparams, &s);
    ck_assert_msg(a.ncols == s.ncols, "%s: %d columns, SQLite %d", agate, a.ncols, s.ncols);
    if (!ordered && a.nrows > 1) {
        ncols_sort = a.ncols;
        qsort(a.cells, a.nrows, (size_t)a.ncols * sizeof(cell), row_cmp);
        qsort(s.cells, s.nrows, (size_t)s.ncols * sizeof(cell), row_cmp);
    }
    char da[600] = "", ds[600] = "";
    describe(&a, da, sizeof da);
    describe(&s, ds, sizeof ds);
    ck_assert_msg(a.nrows == s.nrows, "%s: %zu rows, SQLite %zu\n agate: %s\n sqlite: %s", agate,
                  a.nrows, s.nrows, da, ds);
    for (size_t i = 0; i < a.nrows; i++)
        for (int c = 0; c < a.ncols; c++)
            ck_assert_msg(cell_eq(cell_at(&a, i, c), cell_at(&s, i, c)),
                          "%s: row %zu column %d differs\n agate: %s\n sqlite: %s", agate, i, c, da, ds);
    ck_assert_msg(a.nrows > 0, "%s: an empty result proves little", agate);
    free(a.cells);
    free(s.cells);
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
