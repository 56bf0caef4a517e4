/* Unit tests for region/qast.h: the query lexer and parser (docs/query.md,
 * "Statements" and "Expressions"), its errors and limits, and
 * qexpr_format.
 *
 * Tree shapes are checked through sx(), a test-local s-expression printer
 * that does not share code with qexpr_format, so that a precedence bug
 * cannot hide in both. Whole queries are written back by query_text(),
 * built on qexpr_format, for the round-trip checks. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "region/qast.h"
#include "tu.h"

#define REQ(cond)                                                                                  \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: assertion failed: %s", __FILE__, __LINE__, #cond);                \
    } while (0)

/* ---- helpers ------------------------------------------------------------ */

/* A growable byte string (the texts may hold NUL bytes from strings). */
typedef struct sb {
    char *p;
    size_t n, cap;
} sb;

static void sb_put(sb *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        REQ(b->p != NULL);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sb *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_fmt(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(sb *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    REQ(n >= 0 && (size_t)n < sizeof(tmp));
    sb_put(b, tmp, (size_t)n);
}

/* qexpr_format into b, checking that the length it announces is the
 * length it writes. */
static void sb_expr(sb *b, const qexpr *e)
{
    size_t n = qexpr_format(e, NULL, 0);
    sb_put(b, "", 0);
    if (b->n + n + 1 > b->cap) {
        b->cap = b->n + n + 1;
        b->p = realloc(b->p, b->cap);
        REQ(b->p != NULL);
    }
    REQ(qexpr_format(e, b->p + b->n, n + 1) == n);
    b->n += n;
}

/* A whole query written back as text. */
static void query_text(sb *b, const query_t *q)
{
    static const char *const src[] = {[QSRC_VALUES] = "", [QSRC_KEYS] = ".keys",
                                      [QSRC_ENTRIES] = ".entries"};
    sb_str(b, q->distinct ? "SELECT DISTINCT " : "SELECT ");
    if (q->star)
        sb_str(b, "*");
    for (uint32_t i = 0; i < q->nitems; i++) {
        if (i)
            sb_str(b, ", ");
        sb_expr(b, q->items[i].expr);
        if (q->items[i].as)
            sb_fmt(b, " AS %s", q->items[i].as);
    }
    sb_fmt(b, " FROM /%s%s", q->region, src[q->source]);
    if (q->alias)
        sb_fmt(b, " %s", q->alias);
    if (q->where) {
        sb_str(b, " WHERE ");
        sb_expr(b, q->where);
    }
    for (uint32_t i = 0; i < q->ngroup; i++) {
        sb_str(b, i ? ", " : " GROUP BY ");
        sb_expr(b, q->group[i]);
    }
    for (uint32_t i = 0; i < q->norder; i++) {
        sb_str(b, i ? ", " : " ORDER BY ");
        sb_expr(b, q->order[i].expr);
        if (q->order[i].desc)
            sb_str(b, " DESC");
    }
    if (q->has_limit && q->limit_param)
        sb_fmt(b, " LIMIT $%" PRIu32, q->limit_param);
    else if (q->has_limit)
        sb_fmt(b, " LIMIT %" PRIu64, q->limit);
}

static const char *op_name(const qexpr *e)
{
    static const char *const names[] = {
        [QOP_ADD] = "+", [QOP_SUB] = "-", [QOP_MUL] = "*", [QOP_DIV] = "/", [QOP_MOD] = "%",
        [QOP_NEG] = "NEG", [QOP_EQ] = "=", [QOP_NE] = "<>", [QOP_LT] = "<", [QOP_LE] = "<=",
        [QOP_GT] = ">", [QOP_GE] = ">=", [QOP_LIKE] = "LIKE", [QOP_AND] = "AND",
        [QOP_OR] = "OR", [QOP_NOT] = "NOT", [QOP_IS_NULL] = "IS NULL",
        [QOP_IS_DEFINED] = "IS_DEFINED", [QOP_IS_UNDEFINED] = "IS_UNDEFINED",
    };
    return names[e->op];
}

static void sx_into(sb *b, const qexpr *e);

static void sx_literal(sb *b, const qvalue *v)
{
    switch (v->type) {
    case QT_UNDEFINED: sb_str(b, "UNDEFINED"); break;
    case QT_NULL: sb_str(b, "NULL"); break;
    case QT_BOOL: sb_str(b, v->v.b ? "TRUE" : "FALSE"); break;
    case QT_INT: sb_fmt(b, "%" PRId64, v->v.i); break;
    case QT_UINT: sb_fmt(b, "u%" PRIu64, v->v.u); break;
    case QT_FLOAT: sb_fmt(b, "f%g", v->v.f); break;
    case QT_STR:
        sb_str(b, "\"");
        sb_put(b, (const char *)v->v.s.p, v->v.s.n);
        sb_str(b, "\"");
        break;
    default: sb_str(b, "?"); break;
    }
}

static void sx_agg(sb *b, const qexpr *e)
{
    static const char *const names[] = {"COUNT", "SUM", "AVG", "MIN", "MAX"};
    sb_fmt(b, "(%s%s ", names[e->agg], e->distinct ? " DISTINCT" : "");
    if (e->a)
        sx_into(b, e->a);
    else
        sb_str(b, "*");
    sb_str(b, ")");
}

/* (op operand ...) with the operator in front, literals bare. */
static void sx_into(sb *b, const qexpr *e)
{
    switch (e->kind) {
    case QX_LITERAL: sx_literal(b, &e->lit); return;
    case QX_PARAM: sb_fmt(b, "$%" PRIu32, e->param); return;
    case QX_IDENT: sb_str(b, e->name); return;
    case QX_AGGREGATE: sx_agg(b, e); return;
    case QX_FIELD: sb_str(b, "(. "); break;
    case QX_SUBSCRIPT: sb_str(b, "([] "); break;
    case QX_IN: sb_str(b, e->negated ? "(NOT IN " : "(IN "); break;
    case QX_IS:
        sb_fmt(b, "(%s%s ", e->negated ? "NOT " : "", op_name(e));
        break;
    default: sb_fmt(b, "(%s%s ", e->negated ? "NOT " : "", op_name(e)); break;
    }
    sx_into(b, e->a);
    if (e->kind == QX_FIELD)
        sb_fmt(b, " %s", e->name);
    if (e->b) {
        sb_str(b, " ");
        sx_into(b, e->b);
    }
    for (uint32_t i = 0; i < e->nlist; i++) {
        sb_str(b, " ");
        sx_into(b, e->list[i]);
    }
    sb_str(b, ")");
}

/* A few rotating result buffers, so that two calls fit in one assertion. */
static const char *keep(sb *b)
{
    static char *ring[8];
    static int next;
    free(ring[next]);
    ring[next] = b->p ? b->p : strdup("");
    const char *s = ring[next];
    next = (next + 1) % 8;
    return s;
}

static const char *sx(const qexpr *e)
{
    sb b = {0};
    sx_into(&b, e);
    return keep(&b);
}

static const char *fmt(const qexpr *e)
{
    sb b = {0};
    sb_expr(&b, e);
    return keep(&b);
}

/* Parses a query that must be valid. */
static query_t *parse_ok(const char *text)
{
    query_t *q = NULL;
    qerror err;
    int rc = query_parse(text, strlen(text), &q, &err);
    if (rc != 0)
        ck_abort_msg("query_parse(\"%s\") = %d at %u: %s", text, rc, err.pos, err.msg);
    REQ(q != NULL && q->arena != NULL);
    return q;
}

/* Parses a query that must be refused with -EINVAL at pos with message msg. */
static void parse_bad(const char *text, size_t len, uint32_t pos, const char *msg)
{
    query_t *q = (query_t *)1;
    qerror err;
    int rc = query_parse(text, len, &q, &err);
    ck_assert_msg(rc == -EINVAL, "query_parse(\"%s\") = %d, want -EINVAL", text, rc);
    REQ(q == NULL);
    ck_assert_str_eq(err.msg, msg);
    ck_assert_msg(err.pos == pos, "\"%s\": error at %u, want %u (%s)", text, err.pos, pos, err.msg);
}

#define BAD(text, pos, msg) parse_bad(text, strlen(text), pos, msg)

/* The s-expression of the parsed standalone expression text. */
static const char *xsx(const char *text)
{
    qexpr *e = NULL;
    struct qarena *a = NULL;
    qerror err;
    int rc = qexpr_parse(text, strlen(text), &e, &a, &err);
    if (rc != 0)
        ck_abort_msg("qexpr_parse(\"%s\") = %d at %u: %s", text, rc, err.pos, err.msg);
    const char *s = sx(e);
    qarena_free(a);
    return s;
}

/* The normalized text of the parsed standalone expression text. */
static const char *xfmt(const char *text)
{
    qexpr *e = NULL;
    struct qarena *a = NULL;
    qerror err;
    int rc = qexpr_parse(text, strlen(text), &e, &a, &err);
    if (rc != 0)
        ck_abort_msg("qexpr_parse(\"%s\") = %d at %u: %s", text, rc, err.pos, err.msg);
    const char *s = fmt(e);
    qarena_free(a);
    return s;
}

/* An expression that must be refused; returns the error. */
static qerror xbad(const char *text, size_t len)
{
    qexpr *e = (qexpr *)1;
    struct qarena *a = (struct qarena *)1;
    qerror err;
    int rc = qexpr_parse(text, len, &e, &a, &err);
    ck_assert_msg(rc == -EINVAL, "qexpr_parse(\"%.60s\") = %d, want -EINVAL", text, rc);
    REQ(e == NULL && a == NULL);
    return err;
}

/* The WHERE predicate of SELECT * FROM /r WHERE text, as an s-expression. */
static const char *where_sx(const char *text)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "SELECT * FROM /r WHERE %s", text);
    query_t *q = parse_ok(buf);
    const char *s = sx(q->where);
    query_free(q);
    return s;
}

/* format(parse(text)), then checks that parsing that gives the same
 * text again. Returns the first text (kept). */
static const char *round_trip(const char *text, size_t len)
{
    query_t *q1 = NULL, *q2 = NULL;
    qerror err;
    int rc = query_parse(text, len, &q1, &err);
    if (rc)
        ck_abort_msg("query_parse(\"%.*s\") = %d at %u: %s", (int)len, text, rc, err.pos, err.msg);
    sb t1 = {0}, t2 = {0};
    query_text(&t1, q1);
    rc = query_parse(t1.p, t1.n, &q2, &err);
    if (rc)
        ck_abort_msg("reparse of \"%s\" (from \"%.*s\") = %d at %u: %s", t1.p, (int)len, text,
                     rc, err.pos, err.msg);
    query_text(&t2, q2);
    ck_assert_msg(t1.n == t2.n && memcmp(t1.p, t2.p, t1.n) == 0, "round trip: \"%s\" -> \"%s\"",
                  t1.p, t2.p);
    REQ(q1->nparams == q2->nparams && q1->has_aggregates == q2->has_aggregates);
    query_free(q1);
    query_free(q2);
    free(t2.p);
    return keep(&t1);
}

#define RT(text) round_trip(text, strlen(text))

/* ---- statements --------------------------------------------------------- */

START_TEST(select_star)
{
    query_t *q = parse_ok("SELECT * FROM /orders");
    REQ(q->star && !q->distinct && q->nitems == 0 && q->items == NULL);
    ck_assert_str_eq(q->region, "orders");
    REQ(q->source == QSRC_VALUES && q->alias == NULL && q->where == NULL);
    REQ(q->ngroup == 0 && q->norder == 0 && !q->has_limit && q->limit_param == 0);
    REQ(q->nparams == 0 && !q->has_aggregates);
    query_free(q);
    query_free(NULL);
    qarena_free(NULL);
}
END_TEST

START_TEST(keywords_any_case_names_exact)
{
    query_t *q = parse_ok("select Distinct * From /Orders_2-b Where Total > 100 "
                          "oRdEr bY Total dEsC "
                          "limit 5");
    REQ(q->star && q->distinct);
    ck_assert_str_eq(q->region, "Orders_2-b");
    ck_assert_str_eq(sx(q->where), "(> Total 100)");
    REQ(q->norder == 1 && q->order[0].desc);
    REQ(q->has_limit && q->limit == 5 && q->limit_param == 0);
    query_free(q);
    q = parse_ok("SELECT * FROM /a_b-1");
    ck_assert_str_eq(q->region, "a_b-1");
    query_free(q);
    /* a field named like the keyword FROM, then a division (not a region) */
    q = parse_ok("SELECT x.from/2 FROM /r WHERE x.from/2 = 1");
    ck_assert_str_eq(sx(q->where), "(= (/ (. x from) 2) 1)");
    ck_assert_str_eq(q->region, "r");
    query_free(q);
}
END_TEST

START_TEST(sources_and_aliases)
{
    static const struct {
        const char *text;
        const char *region;
        qsource src;
        const char *alias;
    } cases[] = {
        {"SELECT * FROM /orders", "orders", QSRC_VALUES, NULL},
        {"SELECT * FROM /orders.values", "orders", QSRC_VALUES, NULL},
        {"SELECT * FROM /orders.keys", "orders", QSRC_KEYS, NULL},
        {"SELECT * FROM /orders.entries", "orders", QSRC_ENTRIES, NULL},
        {"SELECT * FROM /orders.KEYS k", "orders", QSRC_KEYS, "k"},
        {"SELECT * FROM /orders o", "orders", QSRC_VALUES, "o"},
        {"SELECT * FROM /orders AS o", "orders", QSRC_VALUES, "o"},
        {"SELECT * FROM /orders as Ord_1", "orders", QSRC_VALUES, "Ord_1"},
        {"SELECT * FROM /orders.entries AS e", "orders", QSRC_ENTRIES, "e"},
        {"SELECT * FROM/x.values v", "x", QSRC_VALUES, "v"},
        {"SELECT * FROM /orders count", "orders", QSRC_VALUES, "count"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        query_t *q = parse_ok(cases[i].text);
        ck_assert_str_eq(q->region, cases[i].region);
        ck_assert_int_eq(q->source, cases[i].src);
        if (cases[i].alias)
            ck_assert_str_eq(q->alias, cases[i].alias);
        else
            REQ(q->alias == NULL);
        query_free(q);
    }
}
END_TEST

START_TEST(doc_examples)
{
    query_t *q = parse_ok("SELECT o.total FROM /orders o WHERE o.status = 'paid'");
    REQ(q->nitems == 1 && q->items[0].as == NULL && q->items[0].pos == 7);
    ck_assert_str_eq(sx(q->items[0].expr), "(. o total)");
    ck_assert_str_eq(sx(q->where), "(= (. o status) \"paid\")");
    query_free(q);

    q = parse_ok("SELECT k FROM /orders.keys k WHERE k LIKE 'order-00%'");
    REQ(q->source == QSRC_KEYS);
    ck_assert_str_eq(sx(q->where), "(LIKE k \"order-00%\")");
    query_free(q);

    q = parse_ok("SELECT e.key, e.value.total FROM /orders.entries e");
    REQ(q->source == QSRC_ENTRIES && q->nitems == 2);
    ck_assert_str_eq(sx(q->items[0].expr), "(. e key)");
    ck_assert_str_eq(sx(q->items[1].expr), "(. (. e value) total)");
    REQ(q->items[1].pos == 14);
    query_free(q);

    q = parse_ok("SELECT * FROM /orders WHERE total > 100");
    ck_assert_str_eq(sx(q->where), "(> total 100)");
    query_free(q);
    q = parse_ok("SELECT * FROM /orders o WHERE o.total > 100");
    ck_assert_str_eq(sx(q->where), "(> (. o total) 100)");
    query_free(q);

    /* the expression table */
    ck_assert_str_eq(xsx("o.customer.city"), "(. (. o customer) city)");
    ck_assert_str_eq(xsx("o.items[0]"), "([] (. o items) 0)");
    ck_assert_str_eq(xsx("o.items[-1]"), "([] (. o items) -1)");
    ck_assert_str_eq(xsx("o['first name']"), "([] o \"first name\")");
    ck_assert_str_eq(xsx("o[$1]"), "([] o $1)");
    ck_assert_str_eq(xsx("42"), "42");
    ck_assert_str_eq(xsx("-7"), "-7");
    ck_assert_str_eq(xsx("3.5"), "f3.5");
    ck_assert_str_eq(xsx("1e6"), "f1e+06");
    ck_assert_str_eq(xsx("'text'"), "\"text\"");
    ck_assert_str_eq(xsx("'it''s'"), "\"it's\"");
    ck_assert_str_eq(xsx("TRUE"), "TRUE");
    ck_assert_str_eq(xsx("FALSE"), "FALSE");
    ck_assert_str_eq(xsx("NULL"), "NULL");
    ck_assert_str_eq(xsx("UNDEFINED"), "UNDEFINED");
    ck_assert_str_eq(xsx("$2"), "$2");
    ck_assert_str_eq(xsx("a + b - c * d / e % f"), "(- (+ a b) (% (/ (* c d) e) f))");
    ck_assert_str_eq(xsx("-a"), "(NEG a)");
    ck_assert_str_eq(xsx("a = 1 AND b <> 2 OR NOT c != 3"),
                     "(OR (AND (= a 1) (<> b 2)) (NOT (<> c 3)))");
    ck_assert_str_eq(xsx("a < 1 OR a <= 2 OR a > 3 OR a >= 4"),
                     "(OR (OR (OR (< a 1) (<= a 2)) (> a 3)) (>= a 4))");
    ck_assert_str_eq(xsx("x IN ('a', 'b', 3)"), "(IN x \"a\" \"b\" 3)");
    ck_assert_str_eq(xsx("x NOT IN (1)"), "(NOT IN x 1)");
    ck_assert_str_eq(xsx("x LIKE 'a%b_c'"), "(LIKE x \"a%b_c\")");
    ck_assert_str_eq(xsx("x NOT LIKE $1"), "(NOT LIKE x $1)");
    ck_assert_str_eq(xsx("x IS NULL"), "(IS NULL x)");
    ck_assert_str_eq(xsx("x IS NOT NULL"), "(NOT IS NULL x)");
    ck_assert_str_eq(xsx("IS_DEFINED(x.y)"), "(IS_DEFINED (. x y))");
    ck_assert_str_eq(xsx("is_undefined(x)"), "(IS_UNDEFINED x)");
}
END_TEST

START_TEST(select_items)
{
    query_t *q = parse_ok("SELECT DISTINCT o.a AS first, o.b, o.a + 1 AS next FROM /r o");
    REQ(q->distinct && !q->star && q->nitems == 3);
    ck_assert_str_eq(q->items[0].as, "first");
    REQ(q->items[1].as == NULL);
    ck_assert_str_eq(q->items[2].as, "next");
    ck_assert_str_eq(sx(q->items[2].expr), "(+ (. o a) 1)");
    REQ(q->items[0].pos == 16 && q->items[1].pos == 30 && q->items[2].pos == 35);
    query_free(q);
    /* names that are function names are not reserved */
    q = parse_ok("SELECT count, sum.min AS max FROM /r WHERE avg > 1");
    ck_assert_str_eq(sx(q->items[0].expr), "count");
    ck_assert_str_eq(sx(q->items[1].expr), "(. sum min)");
    REQ(!q->has_aggregates);
    query_free(q);
    /* any word is a field name after '.', keywords too */
    q = parse_ok("SELECT o.order, o.select, o.NULL FROM /r o");
    ck_assert_str_eq(sx(q->items[0].expr), "(. o order)");
    ck_assert_str_eq(sx(q->items[2].expr), "(. o NULL)");
    query_free(q);
}
END_TEST

START_TEST(where_group_order_limit)
{
    query_t *q = parse_ok("SELECT o.city, o.kind, COUNT(*) AS n, SUM(o.total) FROM /orders o "
                          "WHERE o.status = 'paid' GROUP BY o.city, o.kind "
                          "ORDER BY o.city ASC, COUNT(*) DESC, o.kind LIMIT 10");
    REQ(q->ngroup == 2 && q->norder == 3 && q->has_aggregates);
    ck_assert_str_eq(sx(q->group[1]), "(. o kind)");
    REQ(!q->order[0].desc && q->order[1].desc && !q->order[2].desc);
    ck_assert_str_eq(sx(q->order[1].expr), "(COUNT *)");
    REQ(q->has_limit && q->limit == 10);
    query_free(q);

    q = parse_ok("SELECT * FROM /r LIMIT $3");
    REQ(q->has_limit && q->limit_param == 3 && q->nparams == 3);
    query_free(q);
    q = parse_ok("SELECT * FROM /r LIMIT 0");
    REQ(q->has_limit && q->limit == 0 && q->limit_param == 0);
    query_free(q);
    q = parse_ok("SELECT * FROM /r LIMIT 18446744073709551615");
    REQ(q->has_limit && q->limit == UINT64_MAX);
    query_free(q);
    q = parse_ok("SELECT * FROM /r ORDER BY a LIMIT 1");
    REQ(q->norder == 1 && q->limit == 1);
    query_free(q);
    /* GROUP BY alone: the select list holds only keys */
    q = parse_ok("SELECT o.city FROM /r o GROUP BY o.city");
    REQ(!q->has_aggregates && q->ngroup == 1);
    query_free(q);
}
END_TEST

START_TEST(literals)
{
    ck_assert_str_eq(xsx("0"), "0");
    ck_assert_str_eq(xsx("007"), "7");
    ck_assert_str_eq(xsx("9223372036854775807"), "9223372036854775807");
    ck_assert_str_eq(xsx("9223372036854775808"), "u9223372036854775808");
    ck_assert_str_eq(xsx("18446744073709551615"), "u18446744073709551615");
    ck_assert_str_eq(xsx("-9223372036854775808"), "-9223372036854775808");
    ck_assert_str_eq(xsx("-18446744073709551615"), "(NEG u18446744073709551615)");
    ck_assert_str_eq(xsx("- -7"), "7");
    ck_assert_str_eq(xsx("-1.5"), "f-1.5");
    ck_assert_str_eq(xsx("2.5E-3"), "f0.0025");
    ck_assert_str_eq(xsx("1e+2"), "f100");
    ck_assert_str_eq(xsx("1.25e2"), "f125");
    ck_assert_str_eq(xsx("1e-400"), "f0");
    ck_assert_str_eq(xsx("''"), "\"\"");
    ck_assert_str_eq(xsx("''''"), "\"'\"");
    ck_assert_str_eq(xsx("'a''b''''c'"), "\"a'b''c\"");
    ck_assert_str_eq(xsx("'caf\xc3\xa9 %_\\'"), "\"caf\xc3\xa9 %_\\\"");
    ck_assert_str_eq(xsx("true"), "TRUE");
    ck_assert_str_eq(xsx("False"), "FALSE");
    ck_assert_str_eq(xsx("nUlL"), "NULL");
    ck_assert_str_eq(xsx("undefined"), "UNDEFINED");

    /* types and values as the evaluator sees them */
    qexpr *e;
    struct qarena *a;
    qerror err;
    REQ(qexpr_parse("'x''y'", 6, &e, &a, &err) == 0);
    REQ(e->kind == QX_LITERAL && e->lit.type == QT_STR && e->lit.v.s.n == 3);
    REQ(memcmp(e->lit.v.s.p, "x'y", 3) == 0);
    qarena_free(a);
    REQ(qexpr_parse("18446744073709551615", 20, &e, &a, &err) == 0);
    REQ(e->lit.type == QT_UINT && e->lit.v.u == UINT64_MAX);
    qarena_free(a);
    REQ(qexpr_parse("-9223372036854775808", 20, &e, &a, &err) == 0);
    REQ(e->lit.type == QT_INT && e->lit.v.i == INT64_MIN && e->pos == 0);
    qarena_free(a);
    REQ(qexpr_parse("  1e6", 5, &e, &a, &err) == 0);
    REQ(e->lit.type == QT_FLOAT && e->lit.v.f == 1e6 && e->pos == 2);
    qarena_free(a);
    /* the text need not be NUL-terminated */
    REQ(qexpr_parse("12345", 2, &e, &a, &err) == 0);
    REQ(e->lit.type == QT_INT && e->lit.v.i == 12);
    qarena_free(a);
}
END_TEST

START_TEST(params)
{
    query_t *q = parse_ok("SELECT o[$2] FROM /r o WHERE o.a = $1 AND o.b IN ($5, 1) LIMIT $3");
    REQ(q->nparams == 5 && q->limit_param == 3);
    ck_assert_str_eq(sx(q->items[0].expr), "([] o $2)");
    query_free(q);
    q = parse_ok("SELECT * FROM /r WHERE a = $65535");
    REQ(q->nparams == 65535);
    query_free(q);
    q = parse_ok("SELECT * FROM /r LIMIT $9");
    REQ(q->nparams == 9);
    query_free(q);
}
END_TEST

START_TEST(aggregates)
{
    query_t *q = parse_ok("SELECT COUNT(*), count(o.x), SUM(DISTINCT o.x), avg(o.x), MIN(o.x), "
                          "MAX(o.x) AS top, COUNT(DISTINCT o.y) FROM /r o");
    REQ(q->has_aggregates && q->nitems == 7);
    ck_assert_str_eq(sx(q->items[0].expr), "(COUNT *)");
    ck_assert_str_eq(sx(q->items[1].expr), "(COUNT (. o x))");
    ck_assert_str_eq(sx(q->items[2].expr), "(SUM DISTINCT (. o x))");
    ck_assert_str_eq(sx(q->items[3].expr), "(AVG (. o x))");
    ck_assert_str_eq(sx(q->items[4].expr), "(MIN (. o x))");
    ck_assert_str_eq(sx(q->items[5].expr), "(MAX (. o x))");
    ck_assert_str_eq(sx(q->items[6].expr), "(COUNT DISTINCT (. o y))");
    REQ(q->items[0].expr->a == NULL && q->items[0].expr->agg == QAGG_COUNT);
    query_free(q);

    /* expressions of aggregates, constants, parameters */
    q = parse_ok("SELECT SUM(o.a) / COUNT(*) + 1, 'x', $1, MAX(o.a) IS NULL FROM /r o");
    REQ(q->has_aggregates);
    query_free(q);
    /* group keys inside expressions, and paths under a key */
    q = parse_ok("SELECT o.city, -o.city, o.city + 1 AS c1, COUNT(*) * 2 FROM /r o "
                 "GROUP BY o.city");
    query_free(q);
    q = parse_ok("SELECT o.a, o.a.b, o.a['c'], COUNT(*) FROM /r o GROUP BY o.a");
    query_free(q);
    q = parse_ok("SELECT e.key, MAX(e.value.n) FROM /r.entries e GROUP BY e.key ORDER BY e.key");
    query_free(q);
    /* ORDER BY an aggregate: grouped, or with an aggregate select list */
    q = parse_ok("SELECT o.c FROM /r o GROUP BY o.c ORDER BY COUNT(*) DESC");
    REQ(!q->has_aggregates);
    query_free(q);
    q = parse_ok("SELECT COUNT(*) FROM /r ORDER BY COUNT(*)");
    query_free(q);
    /* IS_DEFINED around an aggregate is an expression of it */
    q = parse_ok("SELECT IS_DEFINED(MAX(x)) FROM /r");
    REQ(q->has_aggregates);
    query_free(q);
}
END_TEST

START_TEST(aggregate_rules)
{
    BAD("SELECT a FROM /r WHERE COUNT(*) > 1", 23, "aggregates are not allowed in WHERE");
    BAD("SELECT a FROM /r WHERE a = 1 AND (b IN (1, SUM(c)))", 43,
        "aggregates are not allowed in WHERE");
    BAD("SELECT COUNT(*) FROM /r GROUP BY MAX(a)", 33, "aggregates are not allowed in GROUP BY");
    BAD("SELECT SUM(MAX(x)) FROM /r", 11, "aggregates cannot be nested: MAX inside SUM");
    BAD("SELECT COUNT(DISTINCT a + AVG(b)) FROM /r", 26,
        "aggregates cannot be nested: AVG inside COUNT");
    BAD("SELECT o.city, COUNT(*) FROM /r o", 7,
        "'o.city' is not inside an aggregate (without GROUP BY, a select list with an aggregate "
        "may only hold aggregates)");
    BAD("SELECT COUNT(*) + x FROM /r", 18,
        "'x' is not inside an aggregate (without GROUP BY, a select list with an aggregate may "
        "only hold aggregates)");
    BAD("SELECT o.name, COUNT(*) FROM /r o GROUP BY o.city", 7,
        "'o.name' is neither a GROUP BY key nor inside an aggregate");
    BAD("SELECT o.a.b, COUNT(*) FROM /r o GROUP BY o.a.c", 7,
        "'o.a.b' is neither a GROUP BY key nor inside an aggregate");
    BAD("SELECT o[k], COUNT(*) FROM /r o GROUP BY o", 7,
        "'o[k]' is neither a GROUP BY key nor inside an aggregate");
    BAD("SELECT * FROM /r GROUP BY a", 17,
        "SELECT * cannot be used with GROUP BY (select the keys and aggregates)");
    BAD("SELECT a FROM /r ORDER BY COUNT(*)", 26,
        "aggregates are not allowed in ORDER BY unless the query has GROUP BY or aggregates in "
        "its select list");
    /* keys are matched by their normalized text, not by their spelling */
    query_t *q = parse_ok("SELECT (o.city), count(*) FROM /r o GROUP BY o . city");
    query_free(q);
    /* a standalone expression (a CQ predicate) has no place for aggregates */
    qerror err = xbad("COUNT(*) > 1", 12);
    REQ(err.pos == 0);
    ck_assert_str_eq(err.msg, "aggregates are not allowed in a standalone expression");
}
END_TEST

/* ---- precedence and formatting ------------------------------------------- */

START_TEST(precedence)
{
    static const char *const cases[][2] = {
        {"a OR b AND c", "(OR a (AND b c))"},
        {"a AND b OR c", "(OR (AND a b) c)"},
        {"NOT a = b", "(NOT (= a b))"},
        {"-a.b * 2 + 3 % 2", "(+ (* (NEG (. a b)) 2) (% 3 2))"},
        {"NOT NOT a", "(NOT (NOT a))"},
        {"NOT a AND b", "(AND (NOT a) b)"},
        {"NOT a OR NOT b AND c", "(OR (NOT a) (AND (NOT b) c))"},
        {"a = b AND c IN (1) OR d LIKE 'x' AND e IS NULL",
         "(OR (AND (= a b) (IN c 1)) (AND (LIKE d \"x\") (IS NULL e)))"},
        {"a + b = c * d", "(= (+ a b) (* c d))"},
        {"a - b - c", "(- (- a b) c)"},
        {"a / b * c % d", "(% (* (/ a b) c) d)"},
        {"a - b * c", "(- a (* b c))"},
        {"-a[0].b", "(NEG (. ([] a 0) b))"},
        {"- (a + b)", "(NEG (+ a b))"},
        {"- - a", "(NEG (NEG a))"},
        {"--a", "(NEG (NEG a))"},
        {"(a OR b) AND c", "(AND (OR a b) c)"},
        {"a AND (b AND c)", "(AND a (AND b c))"},
        {"a.b[c.d][0]", "([] ([] (. a b) (. c d)) 0)"},
        {"x + 1 NOT IN (1, 2 + 3, y)", "(NOT IN (+ x 1) 1 (+ 2 3) y)"},
        {"x IN (a OR b, NOT c)", "(IN x (OR a b) (NOT c))"},
        {"x LIKE 'a' + b", "(LIKE x (+ \"a\" b))"},
        {"-x IS NOT NULL", "(NOT IS NULL (NEG x))"},
        {"a * b IS NULL", "(IS NULL (* a b))"},
        {"(a = b) = c", "(= (= a b) c)"},
        {"a = (b < c)", "(= a (< b c))"},
        {"2 - -3", "(- 2 -3)"},
        {"2--3", "(- 2 -3)"},
        {"2*-3", "(* 2 -3)"},
        {"a-1", "(- a 1)"},
        {"a/b", "(/ a b)"},
        {"7.x", "(. 7 x)"},
        {"1.5.x", "(. f1.5 x)"},
        {"(-7).x", "(. -7 x)"},
        {"-7.x", "(NEG (. 7 x))"},
        {"'s'[0]", "([] \"s\" 0)"},
        {"IS_DEFINED(a) AND IS_UNDEFINED(b.c)", "(AND (IS_DEFINED a) (IS_UNDEFINED (. b c)))"},
        {"NOT IS_DEFINED(a)", "(NOT (IS_DEFINED a))"},
        {"a=1", "(= a 1)"},
        {"a<>1", "(<> a 1)"},
        {"a!=1", "(<> a 1)"},
        {"a<=1", "(<= a 1)"},
        {"a>=1", "(>= a 1)"},
        {"a<1", "(< a 1)"},
        {"a>1", "(> a 1)"},
        {"a < -1", "(< a -1)"},
        {"\ta\n=\r\n1 ", "(= a 1)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_str_eq(xsx(cases[i][0]), cases[i][1]);
        ck_assert_str_eq(where_sx(cases[i][0]), cases[i][1]);
    }
}
END_TEST

START_TEST(format_normalizes)
{
    static const char *const cases[][2] = {
        {"a   or  b and c", "a OR b AND c"},
        {"(a OR b) AND c", "(a OR b) AND c"},
        {"a AND (b AND c)", "a AND (b AND c)"},
        {"(a AND b) AND c", "a AND b AND c"},
        {"((a))", "a"},
        {"a - (b - c)", "a - (b - c)"},
        {"(a - b) - c", "a - b - c"},
        {"a * (b + c)", "a * (b + c)"},
        {"(a * b) + c", "a * b + c"},
        {"a / (b * c)", "a / (b * c)"},
        {"-(a + b)", "-(a + b)"},
        {"-(-a)", "--a"},
        {"- -7", "7"},
        {"-(7)", "-7"},
        {"(-7).x", "(-7).x"},
        {"(-7)[0]", "(-7)[0]"},
        {"(-1.5).x", "(-1.5).x"},
        {"(-a).b", "(-a).b"},
        {"-a.b", "-a.b"},
        {"-(a.b)", "-a.b"},
        {"NOT (a AND b)", "NOT (a AND b)"},
        {"NOT (a = b)", "NOT a = b"},
        {"(NOT a) = b", "(NOT a) = b"},
        {"NOT (NOT a)", "NOT NOT a"},
        {"a = (b = c)", "a = (b = c)"},
        {"(a = b) = c", "(a = b) = c"},
        {"(a IS NULL) IS NULL", "(a IS NULL) IS NULL"},
        {"(a IN (1)) = TRUE", "(a IN (1)) = TRUE"},
        {"(a LIKE 'x') LIKE b", "(a LIKE 'x') LIKE b"},
        {"a LIKE (b LIKE c)", "a LIKE (b LIKE c)"},
        {"(a + b).c[(1)]", "(a + b).c[1]"},
        {"(a.b).c", "a.b.c"},
        {"x != 1", "x <> 1"},
        {"x not in (1,2)", "x NOT IN (1, 2)"},
        {"x in ((1),-2)", "x IN (1, -2)"},
        {"x not like 'a%'", "x NOT LIKE 'a%'"},
        {"x is not null", "x IS NOT NULL"},
        {"x Is Null", "x IS NULL"},
        {"is_defined(x)", "IS_DEFINED(x)"},
        {"Is_Undefined((x))", "IS_UNDEFINED(x)"},
        {"'it''s'", "'it''s'"},
        {"''''''", "''''''"},
        {"1e6", "1000000.0"},
        {"0.1", "0.1"},
        {"1.5e300", "1.5e+300"},
        {"3.0", "3.0"},
        {"-0.0", "-0.0"},
        {"2.5E-3", "0.0025"},
        {"123456789012345678.0", "1.2345678901234568e+17"},
        {"true and false or null", "TRUE AND FALSE OR NULL"},
        {"x = undefined", "x = UNDEFINED"},
        {"o.order", "o.order"},
        {"o.Select", "o.Select"},
        {"$1 + $22", "$1 + $22"},
        {"9223372036854775808", "9223372036854775808"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"-18446744073709551615", "-18446744073709551615"},
        {"(-18446744073709551615).a", "(-18446744073709551615).a"},
        {"a - -1", "a - -1"},
        {"a - (-1)", "a - -1"},
        {"7.x", "7.x"},
        {"1e6.x", "1000000.0.x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *once = xfmt(cases[i][0]);
        ck_assert_str_eq(once, cases[i][1]);
        ck_assert_str_eq(xfmt(once), once);
    }
}
END_TEST

START_TEST(format_like_snprintf)
{
    qexpr *e;
    struct qarena *a;
    qerror err;
    REQ(qexpr_parse("abc + 1", 7, &e, &a, &err) == 0);
    char buf[16];
    memset(buf, 'x', sizeof(buf));
    REQ(qexpr_format(e, buf, 4) == 7);
    ck_assert_str_eq(buf, "abc");
    REQ(buf[4] == 'x');
    REQ(qexpr_format(e, buf, 0) == 7);
    REQ(qexpr_format(e, NULL, 0) == 7);
    REQ(qexpr_format(e, buf, 8) == 7);
    ck_assert_str_eq(buf, "abc + 1");
    REQ(qexpr_format(NULL, buf, sizeof(buf)) == 0 && buf[0] == 0);
    qarena_free(a);

    /* aggregates, through a query */
    query_t *q = parse_ok("SELECT count(*), Sum(distinct (x)), min(x) + max(-x) FROM /r");
    ck_assert_str_eq(fmt(q->items[0].expr), "COUNT(*)");
    ck_assert_str_eq(fmt(q->items[1].expr), "SUM(DISTINCT x)");
    ck_assert_str_eq(fmt(q->items[2].expr), "MIN(x) + MAX(-x)");
    query_free(q);
}
END_TEST

START_TEST(node_positions)
{
    const char *text = "SELECT * FROM /r WHERE  a.b[ 1 ] + -c * 2 IN ($1) AND COUNT IS NULL";
    query_t *q = parse_ok(text);
    const qexpr *and = q->where, *in = and->a, *add = in->a;
    REQ(and->kind == QX_BINARY && and->op == QOP_AND && and->pos == 24);
    REQ(in->kind == QX_IN && in->pos == 24 && in->nlist == 1 && in->list[0]->pos == 46);
    REQ(add->pos == 24 && add->a->pos == 24 && add->a->a->pos == 24);
    REQ(add->a->b->pos == 29);                    /* 1 */
    REQ(add->b->pos == 35 && add->b->a->pos == 35); /* -c * 2, -c */
    REQ(add->b->a->a->pos == 36 && add->b->b->pos == 40);
    REQ(and->b->kind == QX_IS && and->b->pos == 54);
    ck_assert_str_eq(and->b->a->name, "COUNT");
    REQ(and->b->a->name_len == 5);
    query_free(q);
}
END_TEST

/* ---- errors ----------------------------------------------------------- */

START_TEST(error_messages)
{
    BAD("SELECT * FORM /orders", 9, "expected FROM after the select list, found 'FORM'");
    BAD("SELECT * FROM /orders WHERE a =", 31,
        "expected an expression after '=', found end of query");
    BAD("SELECT * FROM /r WHERE name = 'abc", 30, "unterminated string starting here");
    BAD("SELECT * FROM /r WHERE name = 'it''s", 30, "unterminated string starting here");
    BAD("SELECT * FROM /r LIMIT 1.5", 23,
        "LIMIT needs a whole number or a $parameter, found '1.5'");
    BAD("SELECT * FROM /r LIMIT -1", 23, "LIMIT needs a whole number or a $parameter, found '-'");
    BAD("SELECT * FROM /r LIMIT", 22,
        "LIMIT needs a whole number or a $parameter, found end of query");
    BAD("SELECT * FROM /r LIMIT $0", 23, "parameters are numbered from $1, found '$0'");
    BAD("SELECT * FROM /r WHERE a # 1", 25, "unexpected character '#'");
    BAD("SELECT * FROM /r WHERE a = \"x\"", 27, "unexpected character '\"'");
    BAD("SELECT * FROM /r WHERE a = ! b", 27, "unexpected character '!'");
    parse_bad("SELECT * FROM /r WHERE a = b\x01", 29, 28, "unexpected byte 0x01");
    parse_bad("SELECT * FROM /r WHERE a = \0", 28, 27, "unexpected byte 0x00");
    BAD("SELECT * FROM /r WHERE a = \xc3\xa9", 27, "unexpected byte 0xc3");
    BAD("SELECT * FROM orders", 14,
        "expected a region path such as /orders after FROM, found 'orders'");
    BAD("SELECT * FROM / orders", 14,
        "expected a region path such as /orders after FROM, found '/'");
    BAD("SELECT * FROM", 13,
        "expected a region path such as /orders after FROM, found end of query");
    BAD("SELECT * FROM /r WHERE a = $0", 27, "parameters are numbered from $1, found '$0'");
    BAD("SELECT * FROM /r WHERE a = $", 27, "expected a parameter number after '$'");
    BAD("SELECT * FROM /r WHERE a = $1x", 27, "bad parameter '$1x' (expected $1 to $65535)");
    BAD("SELECT * FROM /r WHERE a = $65536", 27, "bad parameter '$65536' (expected $1 to $65535)");
    BAD("SELECT * FROM /r AS where", 20, "expected an alias after AS, found the keyword 'where'");
    BAD("SELECT * FROM /r AS", 19, "expected an alias after AS, found end of query");
    BAD("SELECT a AS FROM /r", 12, "expected a name after AS, found the keyword 'FROM'");
    BAD("SELECT a AS 'x' FROM /r", 12, "expected a name after AS, found ''x''");
    BAD("SELECT * FROM /r WHERE 1 < a < 3", 29,
        "expected AND or OR after a comparison, found '<' (comparisons do not chain)");
    BAD("SELECT * FROM /r WHERE a IS NULL = TRUE", 33,
        "expected AND or OR after a comparison, found '=' (comparisons do not chain)");
    BAD("SELECT * FROM /r WHERE a NOT IN (1) IN (2)", 36,
        "expected AND or OR after a comparison, found 'IN' (comparisons do not chain)");
    BAD("SELECT * FROM /r WHERE (a = 1", 29,
        "expected ')' to match the '(' at 23, found end of query");
    BAD("SELECT * FROM /r WHERE a[1", 26,
        "expected ']' to match the '[' at 24, found end of query");
    BAD("SELECT * FROM /r WHERE x IN 1", 28, "expected '(' after IN, found '1'");
    BAD("SELECT * FROM /r WHERE x IN ()", 29, "expected an expression after '(', found ')'");
    BAD("SELECT * FROM /r WHERE x IN (1 2)", 31, "expected ',' or ')' in the IN list, found '2'");
    BAD("SELECT * FROM /r WHERE x IS 3", 28, "expected NULL or NOT NULL after IS, found '3'");
    BAD("SELECT * FROM /r WHERE x IS NOT", 31, "expected NULL after IS NOT, found end of query");
    BAD("SELECT * FROM /r WHERE a NOT 3", 29, "expected IN or LIKE after NOT, found '3'");
    BAD("SELECT * FROM /r.items", 17,
        "expected keys, values or entries after '/r.', found 'items'");
    BAD("SELECT FROM /r", 7, "expected * or an expression after SELECT, found 'FROM'");
    BAD("SELECT DISTINCT", 15, "expected * or an expression after DISTINCT, found end of query");
    BAD("SELECT a, FROM /r", 10, "expected an expression after ',', found 'FROM'");
    BAD("SELECT * FROM /r ORDER x", 23, "expected BY after ORDER, found 'x'");
    BAD("SELECT * FROM /r GROUP", 22, "expected BY after GROUP, found end of query");
    BAD("SELECT * FROM /r WHERE foo(1)", 23,
        "unknown function 'foo' (expected COUNT, SUM, AVG, MIN, MAX, IS_DEFINED or IS_UNDEFINED)");
    BAD("SELECT COUNT(a b) FROM /r", 15, "expected ')' after the argument of COUNT, found 'b'");
    BAD("SELECT SUM(*) FROM /r", 11, "expected an expression after '(', found '*'");
    BAD("SELECT * FROM /r WHERE a = 99999999999999999999", 27,
        "integer 99999999999999999999 is out of range (at most 18446744073709551615)");
    BAD("SELECT * FROM /r WHERE a = 1e999", 27, "number 1e999 is out of range");
    BAD("SELECT * FROM /r WHERE a = 12abc", 27, "malformed number '12abc'");
    BAD("SELECT * FROM /r WHERE a = 1e", 27, "malformed number '1e'");
    BAD("SELECT * FROM /r WHERE a. = 1", 26, "expected a field name after '.', found '='");
    BAD("SELECT * FROM /r WHERE a.1", 25, "expected a field name after '.', found '1'");
    BAD("SELECT * FROM /r x y", 19,
        "expected WHERE, GROUP BY, ORDER BY, LIMIT or end of query, found 'y'");
    BAD("SELECT * FROM /r WHERE a b", 25,
        "expected GROUP BY, ORDER BY, LIMIT or end of query, found 'b'");
    BAD("SELECT * FROM /r ORDER BY a LIMIT 1 WHERE a", 36, "expected end of query, found 'WHERE'");
    BAD("SELECT * FROM /r WHERE a = (1)) ", 30,
        "expected GROUP BY, ORDER BY, LIMIT or end of query, found ')'");
    BAD("", 0, "expected SELECT at the start of the query, found end of query");
    BAD("   ", 3, "expected SELECT at the start of the query, found end of query");
    BAD("DELETE FROM /r", 0, "expected SELECT at the start of the query, found 'DELETE'");
    /* a long token is cut in the message */
    BAD("SELECT * FROM /r WHERE a = 1 'a very long string literal that goes on and on'", 29,
        "expected GROUP BY, ORDER BY, LIMIT or end of query, "
        "found ''a very long string literal that goes on...'");
}
END_TEST

START_TEST(expression_errors)
{
    qerror err = xbad("", 0);
    REQ(err.pos == 0);
    ck_assert_str_eq(err.msg, "expected an expression, found end of expression");
    err = xbad("a = 1 b", 7);
    REQ(err.pos == 6);
    ck_assert_str_eq(err.msg, "expected an operator or end of expression, found 'b'");
    err = xbad("a AND", 5);
    REQ(err.pos == 5);
    ck_assert_str_eq(err.msg, "expected an expression after AND, found end of expression");
    err = xbad("SELECT", 6);
    REQ(err.pos == 0);
    ck_assert_str_eq(err.msg, "expected an expression, found 'SELECT'");
    err = xbad("x / /r", 6); /* no region outside FROM */
    REQ(err.pos == 4);
    ck_assert_str_eq(err.msg, "expected an expression after '/', found '/'");
    /* a lexical error is reported even past a syntax error's place */
    err = xbad("'abc", 4);
    REQ(err.pos == 0);
    ck_assert_str_eq(err.msg, "unterminated string starting here");
}
END_TEST

/* ---- limits --------------------------------------------------------------- */

/* prefix, then n copies of open, mid, then n copies of close; malloc'd. */
static char *nest(const char *prefix, const char *open, int n, const char *mid, const char *close)
{
    sb b = {0};
    sb_str(&b, prefix);
    for (int i = 0; i < n; i++)
        sb_str(&b, open);
    sb_str(&b, mid);
    for (int i = 0; i < n; i++)
        sb_str(&b, close);
    return b.p;
}

/* Whether the text parses as a query; the message must be msg if not. */
static bool parses(const char *text, const char *msg)
{
    query_t *q = NULL;
    qerror err;
    int rc = query_parse(text, strlen(text), &q, &err);
    if (rc == 0) {
        query_free(q);
        return true;
    }
    ck_assert_int_eq(rc, -EINVAL);
    ck_assert_str_eq(err.msg, msg);
    return false;
}

static const char *nested_msg = "expression nested too deeply (more than 64 levels)";
static const char *deep_msg = "expression too deep (more than 64 levels of operators)";

START_TEST(depth_limit)
{
    /* WHERE's expression is one level, each parenthesis one more */
    char *t = nest("SELECT * FROM /r WHERE ", "(", QAST_MAX_DEPTH - 1, "a", ")");
    REQ(parses(t, NULL));
    free(t);
    t = nest("SELECT * FROM /r WHERE ", "(", QAST_MAX_DEPTH, "a", ")");
    REQ(!parses(t, nested_msg));
    free(t);
    /* far beyond the limit: refused, not a stack overflow */
    static const char *const opens[] = {"(", "-", "NOT ", "a[", "COUNT(", "x IN (", "IS_DEFINED("};
    static const char *const closes[] = {")", "", "", "]", ")", ")", ")"};
    for (size_t i = 0; i < sizeof(opens) / sizeof(opens[0]); i++) {
        t = nest("SELECT * FROM /r WHERE ", opens[i], 200000, "a", closes[i]);
        query_t *q = NULL;
        qerror err;
        REQ(query_parse(t, strlen(t), &q, &err) == -EINVAL && q == NULL);
        free(t);
    }
    /* tree height: a chain of n terms is n levels high */
    sb b = {0};
    sb_str(&b, "a");
    for (int i = 1; i < QAST_MAX_DEPTH; i++)
        sb_str(&b, " + a");
    qexpr *e;
    struct qarena *a;
    qerror err;
    REQ(qexpr_parse(b.p, b.n, &e, &a, &err) == 0);
    qarena_free(a);
    sb_str(&b, " + a");
    REQ(qexpr_parse(b.p, b.n, &e, &a, &err) == -EINVAL);
    ck_assert_str_eq(err.msg, deep_msg);
    REQ(err.pos == 4 * QAST_MAX_DEPTH - 2); /* the '+' that made it too high */
    for (int i = 0; i < 100000; i++)
        sb_str(&b, " AND a");
    REQ(qexpr_parse(b.p, b.n, &e, &a, &err) == -EINVAL);
    ck_assert_str_eq(err.msg, deep_msg);
    free(b.p);
    /* long paths are as high as they are long */
    t = nest("SELECT * FROM /r WHERE a", ".b", 200000, "", "");
    REQ(!parses(t, deep_msg));
    free(t);
    t = nest("SELECT * FROM /r WHERE a", "[0]", 200000, "", "");
    REQ(!parses(t, deep_msg));
    free(t);
}
END_TEST

START_TEST(text_limit)
{
    char *t = malloc(QAST_MAX_TEXT + 1);
    REQ(t != NULL);
    memset(t, ' ', QAST_MAX_TEXT + 1);
    memcpy(t, "SELECT * FROM /r", 16);
    query_t *q = NULL;
    qerror err;
    REQ(query_parse(t, QAST_MAX_TEXT, &q, &err) == 0);
    query_free(q);
    parse_bad(t, QAST_MAX_TEXT + 1, 0, "text too long: 1048577 bytes (at most 1048576)");
    qexpr *e;
    struct qarena *a;
    REQ(qexpr_parse(t, (size_t)QAST_MAX_TEXT + 1, &e, &a, &err) == -EINVAL);
    ck_assert_str_eq(err.msg, "text too long: 1048577 bytes (at most 1048576)");

    /* many items and many keys: matched by sorted text, not items x keys */
    sb g = {0};
    sb_str(&g, "SELECT COUNT(*)");
    for (int i = 0; i < 40000; i++)
        sb_fmt(&g, ", k%d", i);
    sb_str(&g, " FROM /r GROUP BY k0");
    for (int i = 39999; i > 0; i--)
        sb_fmt(&g, ", k%d", i);
    q = parse_ok(g.p);
    REQ(q->nitems == 40001 && q->ngroup == 40000 && q->has_aggregates);
    query_free(q);
    free(g.p);

    /* a query that fills the limit: a huge IN list, and a huge string */
    sb b = {0};
    sb_str(&b, "SELECT * FROM /r WHERE x IN (0");
    uint32_t n = 1;
    while (b.n < QAST_MAX_TEXT - 20)
        sb_fmt(&b, ", %u", n++);
    sb_str(&b, ")");
    q = parse_ok(b.p);
    REQ(q->where->kind == QX_IN && q->where->nlist == n);
    REQ(q->where->list[n - 1]->lit.v.i == (int64_t)n - 1);
    query_free(q);
    round_trip(b.p, b.n);
    free(b.p);

    memset(t, 'x', QAST_MAX_TEXT);
    memcpy(t, "SELECT * FROM /r WHERE s = '", 28);
    t[QAST_MAX_TEXT - 1] = '\'';
    REQ(query_parse(t, QAST_MAX_TEXT, &q, &err) == 0);
    REQ(q->where->b->lit.type == QT_STR && q->where->b->lit.v.s.n == QAST_MAX_TEXT - 29);
    query_free(q);
    free(t);
}
END_TEST

/* ---- round trips ------------------------------------------------------------ */

static const char *const queries[] = {
    "SELECT * FROM /orders",
    "SELECT DISTINCT * FROM /orders.values",
    "SELECT o.total FROM /orders o WHERE o.status = 'paid'",
    "SELECT k FROM /orders.keys k WHERE k LIKE 'order-00%'",
    "SELECT e.key, e.value.total FROM /orders.entries e",
    "SELECT * FROM /orders WHERE total > 100",
    "SELECT * FROM /orders o WHERE o.total > 100",
    "select o.customer.city as city, o.items[0], o.items[-1], o['first name'], o[$1] "
    "from /a_b-1 as o",
    "SELECT 42, -7, 3.5, 1e6, 'text', 'it''s', TRUE, FALSE, NULL, UNDEFINED, $1, $2 FROM /r",
    "SELECT a + b - c * d / e % f, -a FROM /r",
    "SELECT * FROM /r WHERE a = 1 AND b <> 2 OR c != 3 AND NOT d < 4 OR e <= 5 AND f > 6 OR g >= 7",
    "SELECT * FROM /r WHERE x IN (1, 'a', $3) AND y NOT IN (2) AND z LIKE 'a\\%b_c' AND "
    "w NOT LIKE $4",
    "SELECT * FROM /r WHERE x IS NULL OR x IS NOT NULL OR IS_DEFINED(x) OR IS_UNDEFINED(x.y)",
    "SELECT COUNT(*), COUNT(x), SUM(x), AVG(x), MIN(x), MAX(x), COUNT(DISTINCT x), "
    "SUM(DISTINCT x + 1) FROM /r",
    "SELECT o.city, COUNT(*) AS n, SUM(o.total) / COUNT(*) FROM /orders o WHERE o.status = 'paid' "
    "GROUP BY o.city ORDER BY COUNT(*) DESC, o.city ASC LIMIT 10",
    "SELECT * FROM /r ORDER BY a, b DESC, c ASC LIMIT $2",
    "SELECT * FROM /r WHERE (a OR b) AND (c OR d) AND NOT (e AND f)",
    "SELECT * FROM /r WHERE -a.b * 2 + 3 % 2 = (-(x + 1)) * -(-y)",
    "SELECT * FROM /r WHERE (a = b) = (c <> d) AND (x IS NULL) = FALSE",
    "SELECT * FROM /r WHERE a - (b - c) = (a - b) - c AND a / (b * c) > 0",
    "SELECT (-7).x, (-1.5)[0], 7.x, 1.5.y, 'str'[0], (a + b).c FROM /r",
    "SELECT 9223372036854775807, 9223372036854775808, 18446744073709551615, "
    "-9223372036854775808, -18446744073709551615 FROM /r",
    "SELECT 0.1, 1e-300, 1.7976931348623157e308, 5e-324, -0.0, 2.5e-3, 100.0 FROM /r",
    "SELECT o.order, o.select, o.from, o.Where, count, min.max FROM /r o",
    "SELECT * FROM /r count WHERE count.x = 1",
    "SELECT * FROM /r WHERE s = '' OR s = '''' OR s = 'caf\xc3\xa9' OR s = 'a''b''c'",
    "SELECT * FROM /r.entries e WHERE e.value.tags[0] IN (e.key, e.value.alt, UNDEFINED)",
    "SELECT o.a.b, o.a['c'], COUNT(*) FROM /r o GROUP BY o.a",
    "SELECT x, y, MAX(z) FROM /r GROUP BY x, y",
    "SELECT * FROM /r WHERE NOT NOT NOT a",
    "SELECT * FROM /r WHERE a LIKE (b LIKE c) AND (a LIKE b) = TRUE",
    "SELECT * FROM /r LIMIT 0",
    "SELECT * FROM /r LIMIT 18446744073709551615",
    "SELECT * FROM /r WHERE a = 1 LIMIT 5",
    "SELECT * FROM /r WHERE a[b[c[d]]] = e.f.g.h",
};

START_TEST(round_trips)
{
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++)
        RT(queries[i]);
    /* and a few exact results */
    ck_assert_str_eq(RT("select * from /r o where o.a=1 and not(o.b<>2 or o.c!=3) limit $1"),
                     "SELECT * FROM /r o WHERE o.a = 1 AND NOT (o.b <> 2 OR o.c <> 3) LIMIT $1");
    ck_assert_str_eq(RT("SELECT count(*) as n, o.x FROM /r.Entries AS o GROUP BY o . x "
                        "order by n desc"),
                     "SELECT COUNT(*) AS n, o.x FROM /r.entries o GROUP BY o.x ORDER BY n DESC");
}
END_TEST

/* ---- fuzzing ---------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Parses text[0..n) as a query and as an expression; whatever parses must
 * round-trip. Nothing may crash or leak (ASan, LSan). */
static void try_parse(const char *text, size_t n)
{
    query_t *q = NULL;
    qerror err;
    int rc = query_parse(text, n, &q, &err);
    REQ(rc == 0 || rc == -EINVAL);
    if (rc == 0) {
        query_free(q);
        round_trip(text, n);
    } else {
        REQ(q == NULL && err.pos <= n && strlen(err.msg) > 0);
    }
    qexpr *e = NULL;
    struct qarena *a = NULL;
    rc = qexpr_parse(text, n, &e, &a, &err);
    REQ(rc == 0 || rc == -EINVAL);
    if (rc != 0) {
        REQ(e == NULL && a == NULL && err.pos <= n);
        return;
    }
    sb b1 = {0}, b2 = {0};
    sb_expr(&b1, e);
    qarena_free(a);
    rc = qexpr_parse(b1.p, b1.n, &e, &a, &err);
    ck_assert_msg(rc == 0, "reparse of \"%s\": %s", b1.p, err.msg);
    sb_expr(&b2, e);
    qarena_free(a);
    REQ(b1.n == b2.n && memcmp(b1.p, b2.p, b1.n) == 0);
    free(b1.p);
    free(b2.p);
}

START_TEST(every_prefix)
{
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        size_t n = strlen(queries[i]);
        for (size_t k = 0; k <= n; k++) {
            /* an exact-size copy, so that ASan sees any read past the end */
            char *copy = malloc(k ? k : 1);
            memcpy(copy, queries[i], k);
            try_parse(copy, k);
            /* the WHERE clause alone, as an expression */
            const char *w = strstr(queries[i], "WHERE ");
            if (w && (size_t)(w - queries[i]) + 6 < k)
                try_parse(copy + (w - queries[i]) + 6, k - (size_t)(w - queries[i]) - 6);
            free(copy);
        }
    }
}
END_TEST

/* One random edit of b: replace, insert or delete bytes, or splice a
 * token that is likely to matter to the parser. */
static void mutate(sb *b)
{
    static const char bytes[] = "()[],.'$-+*/%<>=! \t0123456789aeZ_\\\"#\x01\x80\xff";
    static const char *const snippets[] = {
        "AND ", "OR ", "NOT ", " IN (", " LIKE ", " IS ", "NULL", "COUNT(", "SUM(DISTINCT ",
        "IS_DEFINED(", "'", "''", "SELECT ", " FROM /r ", " WHERE ", " GROUP BY ", " ORDER BY ",
        " LIMIT ", "$1", "$0", "1e", "1.5", "-", "((", "))", "18446744073709551616", ".keys",
        " AS ", "*", ",",
    };
    size_t at = b->n ? rnd() % (b->n + 1) : 0;
    char tmp[64];
    size_t n = 0;
    switch (rnd() % 4) {
    case 0: /* replace a byte */
        if (at < b->n)
            b->p[at] = bytes[rnd() % (sizeof(bytes) - 1)];
        return;
    case 1: /* delete up to 8 bytes */
        n = rnd() % 8;
        if (at + n > b->n)
            n = b->n - at;
        memmove(b->p + at, b->p + at + n, b->n - at - n);
        b->n -= n;
        return;
    case 2: /* insert a byte */
        tmp[n++] = bytes[rnd() % (sizeof(bytes) - 1)];
        break;
    default: { /* insert a snippet */
        const char *s = snippets[rnd() % (sizeof(snippets) / sizeof(snippets[0]))];
        n = strlen(s);
        memcpy(tmp, s, n);
        break;
    }
    }
    size_t tail = b->n - at;
    sb_put(b, tmp, n); /* grows; the bytes are moved into place below */
    memmove(b->p + at + n, b->p + at, tail);
    memcpy(b->p + at, tmp, n);
}

START_TEST(random_mutations)
{
    size_t nq = sizeof(queries) / sizeof(queries[0]);
    int ok = 0;
    for (int iter = 0; iter < 40000; iter++) {
        sb b = {0};
        sb_str(&b, queries[rnd() % nq]);
        int edits = 1 + (int)(rnd() % 4);
        for (int k = 0; k < edits; k++)
            mutate(&b);
        char *copy = malloc(b.n ? b.n : 1);
        memcpy(copy, b.p, b.n);
        query_t *q = NULL;
        qerror err;
        if (query_parse(copy, b.n, &q, &err) == 0) {
            ok++;
            query_free(q);
        }
        try_parse(copy, b.n);
        free(copy);
        free(b.p);
    }
    /* the mutations are not all fatal: round trips were exercised */
    ck_assert_int_gt(ok, 1000);
}
END_TEST

START_TEST(random_bytes)
{
    char buf[64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = rnd() % sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)(rnd() & 0xff);
        try_parse(buf, n);
    }
}
END_TEST

static Suite *qparse_suite(void)
{
    Suite *s = suite_create("qparse");
    TCase *tc = tu_tcase(s, "statements", 30);
    tcase_add_test(tc, select_star);
    tcase_add_test(tc, keywords_any_case_names_exact);
    tcase_add_test(tc, sources_and_aliases);
    tcase_add_test(tc, doc_examples);
    tcase_add_test(tc, select_items);
    tcase_add_test(tc, where_group_order_limit);
    tcase_add_test(tc, literals);
    tcase_add_test(tc, params);
    tcase_add_test(tc, aggregates);
    tcase_add_test(tc, aggregate_rules);
    tc = tu_tcase(s, "expressions", 30);
    tcase_add_test(tc, precedence);
    tcase_add_test(tc, format_normalizes);
    tcase_add_test(tc, format_like_snprintf);
    tcase_add_test(tc, node_positions);
    tc = tu_tcase(s, "errors", 60);
    tcase_add_test(tc, error_messages);
    tcase_add_test(tc, expression_errors);
    tcase_add_test(tc, depth_limit);
    tcase_add_test(tc, text_limit);
    tc = tu_tcase(s, "round trips", 120);
    tcase_add_test(tc, round_trips);
    tcase_add_test(tc, every_prefix);
    tcase_add_test(tc, random_mutations);
    tcase_add_test(tc, random_bytes);
    return s;
}

int main(void)
{
    Suite *s = qparse_suite();
    return tu_run(&s, 1);
}
