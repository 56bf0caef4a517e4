/* fuzz_query - libFuzzer target for the query engine (docs/query.md):
 * the parser (query_parse, qexpr_parse), the formatter (qexpr_format) and
 * the executor (qexec_new / qexec_add / qexec_finish).
 *
 * The input is one query text (at most FUZZ_MAX_INPUT bytes). When it parses:
 *   - every expression of the tree (select items, WHERE, GROUP BY, ORDER
 *     BY, and every node below them) is formatted; the length qexpr_format
 *     reports must be what it writes, and a smaller buffer must get a
 *     NUL-terminated prefix of it;
 *   - the formatted WHERE, placed into "SELECT * FROM /r WHERE <text>",
 *     must parse again and format to the same bytes;
 *   - the whole query, written back from its tree (clauses in order, each
 *     expression with qexpr_format), must parse again to a query that is
 *     written back to the same bytes, with the same shape (items, keys,
 *     source, LIMIT, parameters, aggregates);
 *   - each subexpression without an aggregate must parse on its own
 *     (qexpr_parse) and format the same (up to a budget of text per input);
 *   - in each of these three round trips the tree parsed again must be the
 *     same tree (positions aside), so that a formatter that drops a needed
 *     parenthesis or a literal's bits, printing two trees alike, is caught;
 *   - the query runs over a few fixed rows (maps with nested maps, arrays,
 *     nil, integers, floats, strings and a binary; string keys) with the
 *     parameters $1..$3 = 2, 0, -1. Evaluation errors (-EINVAL, -E2BIG) are
 *     fine; anything else, a result row that is not an array of one element
 *     per column, or more rows than the LIMIT, the matched rows or (for an
 *     aggregate without GROUP BY) one allow, is a bug.
 * When it does not parse, the error must be -EINVAL with a message and a
 * position inside the text.
 *
 * Besides crashes, leaks and sanitizer reports, the target aborts when one
 * of these invariants breaks. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mpw.h"
#include "region/qast.h"
#include "region/qexec.h"
#include "region/qvalue.h"

#define FUZZ_NAME "fuzz_query"
#include "fuzz_check.h"

/* Longer inputs are skipped: each run stays fast and small. */
#define FUZZ_MAX_INPUT 4096
/* Bytes of subexpression text re-parsed on its own per input; a long
 * a.b.c... chain has as many subexpressions as fields. */
#define REPARSE_BUDGET (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- text helpers ---- */

static void append(buf_t *b, const void *p, size_t n)
{
    CHECK(buf_append(b, p, n) == 0);
}

static void append_str(buf_t *b, const char *s)
{
    append(b, s, strlen(s));
}

/* Appends qexpr_format(e) to b, checking what qexpr_format reports: the
 * length it needs is what it writes (the text may hold NUL bytes from
 * string literals, so lengths are compared, not strlen), and a buffer one
 * byte too small, or half as large, gets a NUL-terminated prefix. */
static void append_expr(buf_t *b, const qexpr *e)
{
    size_t n = qexpr_format(e, NULL, 0);
    CHECK(n > 0);
    char *s = malloc(n + 1);
    CHECK(s != NULL);
    memset(s, 0x5a, n + 1);
    CHECK(qexpr_format(e, s, n + 1) == n);
    CHECK(s[n] == 0);
    char *t = malloc(n + 1);
    CHECK(t != NULL);
    size_t caps[2] = {n, n / 2 + 1};
    for (int i = 0; i < 2; i++) {
        size_t cap = caps[i];
        memset(t, 0x5a, n + 1);
        CHECK(qexpr_format(e, t, cap) == n);
        CHECK(t[cap - 1] == 0 && memcmp(t, s, cap - 1) == 0);
        CHECK((unsigned char)t[cap] == 0x5a);
    }
    free(t);
    append(b, s, n);
    free(s);
}

/* Prints len bytes to stderr as a C string, for a failure's report. */
static void print_c_string(const char *label, const void *p, size_t len)
{
    const unsigned char *s = p;
    fprintf(stderr, "%s (%zu bytes): \"", label, len);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            fprintf(stderr, "\\%c", s[i]);
        else if (s[i] >= ' ' && s[i] < 0x7f)
            fputc(s[i], stderr);
        else
            fprintf(stderr, "\\x%02x\"\"", s[i]);
    }
    fprintf(stderr, "\"\n");
}

/* ---- comparing trees ---- */

/* Whether two literals are the same value, bit for bit (-0.0 is not 0.0:
 * the formatter writes them differently). */
static bool same_literal(const qvalue *x, const qvalue *y)
{
    if (x->type != y->type)
        return false;
    switch (x->type) {
    case QT_BOOL: return x->v.b == y->v.b;
    case QT_INT: return x->v.i == y->v.i;
    case QT_UINT: return x->v.u == y->v.u;
    case QT_FLOAT: return memcmp(&x->v.f, &y->v.f, sizeof(double)) == 0;
    case QT_STR:
    case QT_BIN:
        return x->v.s.n == y->v.s.n && (!x->v.s.n || memcmp(x->v.s.p, y->v.s.p, x->v.s.n) == 0);
    case QT_ARRAY:
    case QT_MAP:
        return x->v.mp.n == y->v.mp.n && memcmp(x->v.mp.p, y->v.mp.p, x->v.mp.n) == 0;
    default: return true; /* UNDEFINED, NULL */
    }
}

static bool same_name(const char *x, const char *y)
{
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

/* Whether x and y are the same tree (positions aside): the formatter
 * dropped no parenthesis and lost no literal bit that the tree needs. Two
 * trees that print alike but differ would pass the text round trip. */
static bool same_expr(const qexpr *x, const qexpr *y)
{
    if (!x || !y)
        return !x && !y;
    if (x->kind != y->kind)
        return false;
    switch (x->kind) {
    case QX_LITERAL: return same_literal(&x->lit, &y->lit);
    case QX_PARAM: return x->param == y->param;
    case QX_IDENT:
        return x->name_len == y->name_len && memcmp(x->name, y->name, x->name_len) == 0;
    case QX_FIELD:
        return x->name_len == y->name_len && memcmp(x->name, y->name, x->name_len) == 0 &&
               same_expr(x->a, y->a);
    case QX_SUBSCRIPT: return same_expr(x->a, y->a) && same_expr(x->b, y->b);
    case QX_UNARY: return x->op == y->op && same_expr(x->a, y->a);
    case QX_BINARY:
        return x->op == y->op && x->negated == y->negated && same_expr(x->a, y->a) &&
               same_expr(x->b, y->b);
    case QX_IN:
        if (x->negated != y->negated || x->nlist != y->nlist || !same_expr(x->a, y->a))
            return false;
        for (uint32_t i = 0; i < x->nlist; i++)
            if (!same_expr(x->list[i], y->list[i]))
                return false;
        return true;
    case QX_IS: return x->op == y->op && x->negated == y->negated && same_expr(x->a, y->a);
    case QX_AGGREGATE:
        return x->agg == y->agg && x->distinct == y->distinct && same_expr(x->a, y->a);
    }
    return false;
}

/* ---- subexpressions ---- */

/* Whether e holds an aggregate (qexpr_parse refuses those). */
static bool has_aggregate(const qexpr *e)
{
    if (!e)
        return false;
    if (e->kind == QX_AGGREGATE)
        return true;
    if (has_aggregate(e->a) || has_aggregate(e->b))
        return true;
    for (uint32_t i = 0; i < e->nlist; i++)
        if (has_aggregate(e->list[i]))
            return true;
    return false;
}

/* Formats e and every node below it. Each one without an aggregate must
 * parse alone, while *budget lasts, and format to the same text. */
static void walk(const qexpr *e, size_t *budget)
{
    if (!e)
        return;
    buf_t text;
    buf_init(&text);
    append_expr(&text, e);
    if (text.len <= *budget && !has_aggregate(e)) {
        *budget -= text.len;
        qexpr *again = NULL;
        struct qarena *arena = NULL;
        qerror err;
        int rc = qexpr_parse((const char *)text.data, text.len, &again, &arena, &err);
        if (rc != 0) {
            print_c_string("formatted expression", text.data, text.len);
            fprintf(stderr, "fuzz_query: it does not parse alone: %d at %u: %s\n", rc, err.pos,
                    err.msg);
        }
        CHECK(rc == 0);
        buf_t text2;
        buf_init(&text2);
        append_expr(&text2, again);
        if (text2.len != text.len || memcmp(text2.data, text.data, text.len) != 0) {
            print_c_string("formatted expression", text.data, text.len);
            print_c_string("formatted again", text2.data, text2.len);
        }
        CHECK(text2.len == text.len && memcmp(text2.data, text.data, text.len) == 0);
        if (!same_expr(e, again))
            print_c_string("formatted expression (parses to another tree)", text.data, text.len);
        CHECK(same_expr(e, again));
        buf_free(&text2);
        qarena_free(arena);
    }
    buf_free(&text);
    walk(e->a, budget);
    walk(e->b, budget);
    for (uint32_t i = 0; i < e->nlist; i++)
        walk(e->list[i], budget);
}

/* ---- the WHERE round trip ---- */

/* "SELECT * FROM /r WHERE <formatted where>" must parse, and its WHERE
 * format the same. */
static void check_where(const query_t *q)
{
    if (!q->where)
        return;
    buf_t w, text, w2;
    buf_init(&w);
    buf_init(&text);
    buf_init(&w2);
    append_expr(&w, q->where);
    append_str(&text, "SELECT * FROM /r WHERE ");
    append(&text, w.data, w.len);
    query_t *q2 = NULL;
    qerror err;
    int rc = query_parse((const char *)text.data, text.len, &q2, &err);
    if (rc != 0) {
        print_c_string("query", text.data, text.len);
        fprintf(stderr, "fuzz_query: the formatted WHERE does not parse: %d at %u: %s\n", rc,
                err.pos, err.msg);
    }
    CHECK(rc == 0);
    CHECK(q2->where != NULL);
    append_expr(&w2, q2->where);
    if (w2.len != w.len || memcmp(w2.data, w.data, w.len) != 0) {
        print_c_string("WHERE", w.data, w.len);
        print_c_string("WHERE formatted again", w2.data, w2.len);
    }
    CHECK(w2.len == w.len && memcmp(w2.data, w.data, w.len) == 0);
    if (!same_expr(q->where, q2->where))
        print_c_string("WHERE (parses to another tree)", w.data, w.len);
    CHECK(same_expr(q->where, q2->where));
    query_free(q2);
    buf_free(&w);
    buf_free(&text);
    buf_free(&w2);
}

/* ---- the whole query round trip ---- */

/* Writes q back as query text. */
static void write_query(buf_t *b, const query_t *q)
{
    char num[32];
    append_str(b, q->distinct ? "SELECT DISTINCT " : "SELECT ");
    if (q->star)
        append_str(b, "*");
    for (uint32_t i = 0; i < q->nitems; i++) {
        if (i)
            append_str(b, ", ");
        append_expr(b, q->items[i].expr);
        if (q->items[i].as) {
            append_str(b, " AS ");
            append_str(b, q->items[i].as);
        }
    }
    append_str(b, " FROM /");
    append_str(b, q->region);
    append_str(b, q->source == QSRC_KEYS      ? ".keys"
                  : q->source == QSRC_ENTRIES ? ".entries"
                                              : "");
    if (q->alias) {
        append_str(b, " AS ");
        append_str(b, q->alias);
    }
    if (q->where) {
        append_str(b, " WHERE ");
        append_expr(b, q->where);
    }
    for (uint32_t i = 0; i < q->ngroup; i++) {
        append_str(b, i ? ", " : " GROUP BY ");
        append_expr(b, q->group[i]);
    }
    for (uint32_t i = 0; i < q->norder; i++) {
        append_str(b, i ? ", " : " ORDER BY ");
        append_expr(b, q->order[i].expr);
        if (q->order[i].desc)
            append_str(b, " DESC");
    }
    if (q->has_limit && q->limit_param)
        snprintf(num, sizeof(num), " LIMIT $%u", (unsigned)q->limit_param);
    else if (q->has_limit)
        snprintf(num, sizeof(num), " LIMIT %llu", (unsigned long long)q->limit);
    if (q->has_limit)
        append_str(b, num);
}

/* q written back must parse to a query of the same shape that is written
 * back to the same text. */
static void check_query(const query_t *q)
{
    buf_t t1, t2;
    buf_init(&t1);
    buf_init(&t2);
    write_query(&t1, q);
    query_t *q2 = NULL;
    qerror err;
    int rc = query_parse((const char *)t1.data, t1.len, &q2, &err);
    if (rc != 0) {
        print_c_string("query written back", t1.data, t1.len);
        fprintf(stderr, "fuzz_query: it does not parse: %d at %u: %s\n", rc, err.pos, err.msg);
    }
    CHECK(rc == 0);
    write_query(&t2, q2);
    if (t2.len != t1.len || memcmp(t2.data, t1.data, t1.len) != 0) {
        print_c_string("query written back", t1.data, t1.len);
        print_c_string("written back again", t2.data, t2.len);
    }
    CHECK(t2.len == t1.len && memcmp(t2.data, t1.data, t1.len) == 0);
    CHECK(q2->distinct == q->distinct && q2->star == q->star && q2->nitems == q->nitems);
    CHECK(q2->source == q->source && q2->ngroup == q->ngroup && q2->norder == q->norder);
    CHECK(q2->has_limit == q->has_limit && q2->limit == q->limit);
    CHECK(q2->limit_param == q->limit_param && q2->nparams == q->nparams);
    CHECK(q2->has_aggregates == q->has_aggregates);
    CHECK(same_name(q2->alias, q->alias) && strcmp(q2->region, q->region) == 0);
    bool same = same_expr(q->where, q2->where);
    for (uint32_t i = 0; same && i < q->nitems; i++)
        same = same_expr(q->items[i].expr, q2->items[i].expr) &&
               same_name(q->items[i].as, q2->items[i].as);
    for (uint32_t i = 0; same && i < q->ngroup; i++)
        same = same_expr(q->group[i], q2->group[i]);
    for (uint32_t i = 0; same && i < q->norder; i++)
        same = same_expr(q->order[i].expr, q2->order[i].expr) &&
               q->order[i].desc == q2->order[i].desc;
    if (!same)
        print_c_string("query written back (parses to another tree)", t1.data, t1.len);
    CHECK(same);
    query_free(q2);
    buf_free(&t1);
    buf_free(&t2);
}

/* ---- execution ---- */

#define NROWS 6
static buf_t row_value[NROWS];
static qrow rows[NROWS];
static const char *const row_key[NROWS] = {"k1", "k2", "k3", "k4", "k5", "k6"};

/* Row values, written with msgpack-c's packer: K(name) packs a map key. */
#define K(name) mpw_cstr(pk, name)

static void pack_row(msgpack_packer *pk, int i)
{
    static const uint8_t bin[] = {0x00, 0xff, 0x27, 0x80};
    switch (i) {
    case 0: /* {a: 1, b: "x", c: {d: [1, 2.5, nil], e: "deep"}, n: nil,
               bin: <00 ff 27 80>, f: -1.5, s: "hello"} */
        msgpack_pack_map(pk, 7);
        K("a");
        msgpack_pack_int64(pk, 1);
        K("b");
        K("x");
        K("c");
        msgpack_pack_map(pk, 2);
        K("d");
        msgpack_pack_array(pk, 3);
        msgpack_pack_int64(pk, 1);
        msgpack_pack_double(pk, 2.5);
        msgpack_pack_nil(pk);
        K("e");
        K("deep");
        K("n");
        msgpack_pack_nil(pk);
        K("bin");
        mpw_bin(pk, bin, sizeof(bin));
        K("f");
        msgpack_pack_double(pk, -1.5);
        K("s");
        K("hello");
        break;
    case 1: /* {a: -7, b: "y%_", c: {d: []}, arr: [[1, 2], {k: "v"}],
               big: 2^64 - 1, neg: -2^63, t: true} */
        msgpack_pack_map(pk, 7);
        K("a");
        msgpack_pack_int64(pk, -7);
        K("b");
        K("y%_");
        K("c");
        msgpack_pack_map(pk, 1);
        K("d");
        msgpack_pack_array(pk, 0);
        K("arr");
        msgpack_pack_array(pk, 2);
        msgpack_pack_array(pk, 2);
        msgpack_pack_int64(pk, 1);
        msgpack_pack_int64(pk, 2);
        msgpack_pack_map(pk, 1);
        K("k");
        K("v");
        K("big");
        msgpack_pack_uint64(pk, UINT64_MAX);
        K("neg");
        msgpack_pack_int64(pk, INT64_MIN);
        K("t");
        msgpack_pack_true(pk);
        break;
    case 2: /* {a: 1.0, b: nil, c: nil, key: "k", value: 3, f: 0.1 (float 32),
               s: ""} */
        msgpack_pack_map(pk, 7);
        K("a");
        msgpack_pack_double(pk, 1.0);
        K("b");
        msgpack_pack_nil(pk);
        K("c");
        msgpack_pack_nil(pk);
        K("key");
        K("k");
        K("value");
        msgpack_pack_int64(pk, 3);
        K("f");
        msgpack_pack_float(pk, 0.1f);
        K("s");
        K("");
        break;
    case 3: /* {a: 2, b: "x", c: {d: [-1, "two", [3]], e: {f: {g: 0}}},
               s: "h\u00e9llo", t: false} */
        msgpack_pack_map(pk, 5);
        K("a");
        msgpack_pack_int64(pk, 2);
        K("b");
        K("x");
        K("c");
        msgpack_pack_map(pk, 2);
        K("d");
        msgpack_pack_array(pk, 3);
        msgpack_pack_int64(pk, -1);
        K("two");
        msgpack_pack_array(pk, 1);
        msgpack_pack_int64(pk, 3);
        K("e");
        msgpack_pack_map(pk, 1);
        K("f");
        msgpack_pack_map(pk, 1);
        K("g");
        msgpack_pack_int64(pk, 0);
        K("s");
        K("h\xc3\xa9llo");
        K("t");
        msgpack_pack_false(pk);
        break;
    case 4: /* {} */
        msgpack_pack_map(pk, 0);
        break;
    default: /* {a: 2, b: "x", "first name": "Ann", "1": "one", f: 1e300} */
        msgpack_pack_map(pk, 5);
        K("a");
        msgpack_pack_int64(pk, 2);
        K("b");
        K("x");
        K("first name");
        K("Ann");
        K("1");
        K("one");
        K("f");
        msgpack_pack_double(pk, 1e300);
        break;
    }
}

#undef K

/* Builds the rows once; they live for the whole process. */
static void make_rows(void)
{
    static bool made;
    if (made)
        return;
    made = true;
    for (int i = 0; i < NROWS; i++) {
        msgpack_packer pk;
        buf_init(&row_value[i]);
        mpw_init(&pk, &row_value[i]);
        pack_row(&pk, i);
        rows[i].key = qv_str(row_key[i], (uint32_t)strlen(row_key[i]));
        CHECK(qvalue_decode(row_value[i].data, row_value[i].len, 32, &rows[i].value) ==
              row_value[i].len);
        CHECK(rows[i].value.type == QT_MAP);
    }
}

/* Runs q over the rows and checks the result's form. */
static void run_query(const query_t *q)
{
    static const int64_t param_ints[3] = {2, 0, -1};
    qvalue params[3];
    for (int i = 0; i < 3; i++)
        params[i] = qv_int(param_ints[i]);
    make_rows();

    qexec *x = NULL;
    qerror err;
    int rc = qexec_new(q, params, 3, &x, &err);
    bool can_run = q->nparams <= 3 && (!q->limit_param || param_ints[q->limit_param - 1] >= 0);
    if (rc != 0) {
        CHECK(rc == -EINVAL && !can_run);
        return;
    }
    CHECK(can_run);
    uint32_t ncols = qexec_ncolumns(x);
    CHECK(ncols == (q->star ? (q->source == QSRC_ENTRIES ? 2u : 1u) : q->nitems));
    for (uint32_t i = 0; i < ncols; i++)
        CHECK(qexec_column(x, i) != NULL);
    for (int i = 0; i < NROWS && rc == 0; i++) {
        rc = qexec_add(x, &rows[i], &err);
        CHECK(rc == 0 || rc == QEXEC_ENOUGH || rc == -EINVAL || rc == -E2BIG);
    }
    if (rc >= 0) {
        rc = qexec_finish(x, &err);
        CHECK(rc == 0 || rc == -EINVAL || rc == -E2BIG);
    }
    if (rc == 0) {
        size_t n = qexec_nrows(x);
        uint64_t matched = qexec_matched(x);
        CHECK(matched <= NROWS);
        uint64_t limit = q->limit_param ? (uint64_t)param_ints[q->limit_param - 1] : q->limit;
        if (q->has_limit)
            CHECK(n <= limit);
        if (q->has_aggregates && !q->ngroup)
            CHECK(n == (q->has_limit && limit == 0 ? 0u : 1u));
        else
            CHECK(n <= matched);
        for (size_t i = 0; i < n; i++) {
            size_t len = 0;
            const uint8_t *p = qexec_row(x, i, &len);
            qvalue arr;
            CHECK(p != NULL && qvalue_decode(p, len, 64, &arr) == len && arr.type == QT_ARRAY);
            /* one element per column; UNDEFINED is packed as nil, so only
             * an index out of range reads as UNDEFINED */
            if (ncols)
                CHECK(qvalue_element(&arr, ncols - 1).type != QT_UNDEFINED);
            CHECK(qvalue_element(&arr, ncols).type == QT_UNDEFINED);
        }
    }
    qexec_free(x);
}

/* ---- the target ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    query_t *q = NULL;
    qerror err;
    memset(&err, 0x5a, sizeof(err));
    int rc = query_parse((const char *)data, size, &q, &err);
    if (rc != 0) {
        CHECK(rc == -EINVAL);
        CHECK(q == NULL);
        CHECK(err.pos <= size);
        size_t mlen = strnlen(err.msg, sizeof(err.msg));
        CHECK(mlen > 0 && mlen < sizeof(err.msg));
        return 0;
    }
    CHECK(q != NULL && q->region != NULL);
    CHECK(q->star == (q->nitems == 0));

    size_t budget = REPARSE_BUDGET;
    for (uint32_t i = 0; i < q->nitems; i++)
        walk(q->items[i].expr, &budget);
    walk(q->where, &budget);
    for (uint32_t i = 0; i < q->ngroup; i++)
        walk(q->group[i], &budget);
    for (uint32_t i = 0; i < q->norder; i++)
        walk(q->order[i].expr, &budget);

    check_where(q);
    check_query(q);
    run_query(q);
    query_free(q);
    return 0;
}
