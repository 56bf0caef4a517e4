/* Unit tests for region/qeval.h and region/qagg.h: every rule of
 * docs/query.md's "Types", "Three-valued logic", "Arithmetic", "Ordering"
 * and "Aggregates" sections, on expression trees built by hand (so that
 * these tests do not depend on the parser), plus the aggregates' partial
 * states: merging members' partials gives what one pass gives.
 *
 * Row values are written as JSON and converted with the CLI's converter
 * into exact-size heap blocks (AddressSanitizer sees any overread). */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "region/qagg.h"
#include "region/qeval.h"
#include "tools/cli/json_mp.h"
#include "tu.h"

/* ---- memory kept for one test ------------------------------------------------ */

static uint8_t *blocks[4096];
static int nblocks;
static qexpr pool[2048];
static int npool;

static void teardown(void)
{
    while (nblocks > 0)
        free(blocks[--nblocks]);
    npool = 0;
}

static const uint8_t *keep(const void *p, size_t n)
{
    ck_assert_int_lt(nblocks, 4096);
    uint8_t *c = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(c);
    if (n)
        memcpy(c, p, n);
    blocks[nblocks++] = c;
    return c;
}

static qvalue J(const char *json)
{
    buf_t b;
    buf_init(&b);
    ck_assert_msg(json_mp_parse(json, strlen(json), &b, NULL) == 0, "bad JSON: %s", json);
    size_t n = buf_readable(&b);
    const uint8_t *p = keep(buf_rptr(&b), n);
    buf_free(&b);
    qvalue v;
    ck_assert_uint_eq(qvalue_decode(p, n, 64, &v), n);
    return v;
}

static qvalue U(uint64_t u) { return (qvalue){.type = QT_UINT, .v.u = u}; }
static qvalue S(const char *s) { return qv_str(s, (uint32_t)strlen(s)); }

/* ---- building trees -------------------------------------------------------------- */

static qexpr *node(qexpr_kind k)
{
    ck_assert_int_lt(npool, 2048);
    qexpr *e = &pool[npool];
    memset(e, 0, sizeof *e);
    e->kind = k;
    e->pos = (uint32_t)(100 + npool++); /* a distinct offset per node */
    return e;
}

static qexpr *L(qvalue v)
{
    qexpr *e = node(QX_LITERAL);
    e->lit = v;
    return e;
}

static qexpr *LI(int64_t i) { return L(qv_int(i)); }
static qexpr *LF(double f) { return L(qv_float(f)); }
static qexpr *LS(const char *s) { return L(S(s)); }
static qexpr *LJ(const char *json) { return L(J(json)); }
static qexpr *LB(bool b) { return L(qv_bool(b)); }
static qexpr *LNULL(void) { return L(qv_null()); }
static qexpr *LUNDEF(void) { return L(qv_undefined()); }

static qexpr *ID(const char *name)
{
    qexpr *e = node(QX_IDENT);
    e->name = name;
    e->name_len = (uint32_t)strlen(name);
    return e;
}

static qexpr *FLD(qexpr *base, const char *name)
{
    qexpr *e = node(QX_FIELD);
    e->a = base;
    e->name = name;
    e->name_len = (uint32_t)strlen(name);
    return e;
}

static qexpr *SUB(qexpr *base, qexpr *k)
{
    qexpr *e = node(QX_SUBSCRIPT);
    e->a = base;
    e->b = k;
    return e;
}

static qexpr *OP(qop op, qexpr *a, qexpr *b)
{
    qexpr *e = node(QX_BINARY);
    e->op = op;
    e->a = a;
    e->b = b;
    return e;
}

static qexpr *UN(qop op, qexpr *a)
{
    qexpr *e = node(QX_UNARY);
    e->op = op;
    e->a = a;
    return e;
}

static qexpr *LIKE(qexpr *a, const char *pat, bool negated)
{
    qexpr *e = OP(QOP_LIKE, a, LS(pat));
    e->negated = negated;
    return e;
}

static qexpr *IN(qexpr *a, bool negated, int n, ...)
{
    static qexpr *lists[64][16];
    static int nlists;
    qexpr *e = node(QX_IN);
    qexpr **list = lists[nlists++ % 64];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        list[i] = va_arg(ap, qexpr *);
    va_end(ap);
    e->a = a;
    e->negated = negated;
    e->list = list;
    e->nlist = (uint32_t)n;
    return e;
}

static qexpr *IS(qop op, qexpr *a, bool negated)
{
    qexpr *e = node(QX_IS);
    e->op = op;
    e->a = a;
    e->negated = negated;
    return e;
}

static qexpr *PARAM(uint32_t n)
{
    qexpr *e = node(QX_PARAM);
    e->param = n;
    return e;
}

static qexpr *AGG(qagg fn, bool distinct, qexpr *arg)
{
    qexpr *e = node(QX_AGGREGATE);
    e->agg = fn;
    e->distinct = distinct;
    e->a = arg;
    return e;
}

/* ---- evaluating ------------------------------------------------------------------------ */

static const char *ROW_JSON =
    "{\"total\": 150, \"status\": \"paid\", \"customer\": {\"city\": \"Oslo\"},"
    " \"items\": [10, 20, 30], \"first name\": \"Ada\", \"note\": null,"
    " \"key\": \"field-key\", \"value\": \"field-value\", \"price\": 2.5,"
    " \"big\": 18446744073709551615, \"tags\": [\"a\", \"b\"], \"flag\": true}";

static qenv env;
static qrow row;
static qvalue params[4];

static void setup(void)
{
    memset(&env, 0, sizeof env);
    env.source = QSRC_VALUES;
    env.alias = "o";
    params[0] = qv_int(150);
    params[1] = S("first name");
    env.params = params;
    env.nparams = 2;
    row.key = S("order-0042");
    row.value = J(ROW_JSON);
}

static qvalue E(const qexpr *e)
{
    qvalue v;
    qerror err = {0};
    int rc = qeval(e, &env, &row, &v, &err);
    ck_assert_msg(rc == 0, "qeval: %d (%s)", rc, err.msg);
    return v;
}

#define T_TRUE 1
#define T_FALSE 0
#define T_NULL 2
#define T_UNDEF 3

/* The result as one of T_*, failing on anything else. */
static int truth_of(qvalue v)
{
    if (v.type == QT_BOOL)
        return v.v.b ? T_TRUE : T_FALSE;
    if (v.type == QT_NULL)
        return T_NULL;
    ck_assert_msg(v.type == QT_UNDEFINED, "not a truth value: %s", qtype_name(v.type));
    return T_UNDEF;
}

#define CK_T(e, want) ck_assert_int_eq(truth_of(E(e)), (want))

static void ck_int(const qexpr *e, int64_t want)
{
    qvalue v = E(e);
    ck_assert_msg(v.type == QT_INT, "want integer %lld, got %s", (long long)want, qtype_name(v.type));
    ck_assert_int_eq(v.v.i, want);
}

static void ck_uint(const qexpr *e, uint64_t want)
{
    qvalue v = E(e);
    ck_assert_int_eq(v.type, QT_UINT);
    ck_assert_uint_eq(v.v.u, want);
}

static void ck_float(const qexpr *e, double want)
{
    qvalue v = E(e);
    ck_assert_msg(v.type == QT_FLOAT, "want float %g, got %s", want, qtype_name(v.type));
    ck_assert_msg(v.v.f == want || (isnan(want) && isnan(v.v.f)), "got %.17g, want %.17g", v.v.f, want);
}

static void ck_str(const qexpr *e, const char *want)
{
    qvalue v = E(e);
    ck_assert_msg(v.type == QT_STR, "want string, got %s", qtype_name(v.type));
    ck_assert_uint_eq(v.v.s.n, strlen(want));
    ck_assert_mem_eq(v.v.s.p, want, v.v.s.n);
}

static void ck_type(const qexpr *e, qtype t)
{
    qvalue v = E(e);
    ck_assert_msg(v.type == t, "want %s, got %s", qtype_name(t), qtype_name(v.type));
}

/* ---- names and navigation --------------------------------------------------------------- */

START_TEST(paths_and_undefined)
{
    ck_int(FLD(ID("o"), "total"), 150);
    ck_str(FLD(FLD(ID("o"), "customer"), "city"), "Oslo");
    ck_int(SUB(FLD(ID("o"), "items"), LI(0)), 10);
    ck_int(SUB(FLD(ID("o"), "items"), LI(-1)), 30);
    ck_str(SUB(ID("o"), LS("first name")), "Ada");
    ck_str(SUB(ID("o"), PARAM(2)), "Ada");
    /* paths that lead nowhere are UNDEFINED, not NULL */
    ck_type(FLD(ID("o"), "missing"), QT_UNDEFINED);
    ck_type(SUB(FLD(ID("o"), "items"), LI(3)), QT_UNDEFINED);
    ck_type(SUB(FLD(ID("o"), "items"), LI(-4)), QT_UNDEFINED);
    ck_type(FLD(FLD(ID("o"), "status"), "x"), QT_UNDEFINED);
    ck_type(FLD(FLD(ID("o"), "missing"), "x"), QT_UNDEFINED);
    ck_type(FLD(FLD(ID("o"), "note"), "x"), QT_UNDEFINED);
    ck_type(SUB(FLD(ID("o"), "items"), LS("0")), QT_UNDEFINED);
    ck_type(SUB(FLD(ID("o"), "items"), LNULL()), QT_UNDEFINED);
    ck_type(FLD(ID("o"), "note"), QT_NULL);
    CK_T(IS(QOP_IS_NULL, FLD(ID("o"), "missing"), false), T_FALSE);
    CK_T(IS(QOP_IS_NULL, FLD(ID("o"), "missing"), true), T_TRUE);
    CK_T(IS(QOP_IS_UNDEFINED, FLD(ID("o"), "missing"), false), T_TRUE);
    CK_T(IS(QOP_IS_DEFINED, FLD(ID("o"), "missing"), false), T_FALSE);
    CK_T(IS(QOP_IS_NULL, FLD(ID("o"), "note"), false), T_TRUE);
    CK_T(IS(QOP_IS_NULL, FLD(ID("o"), "note"), true), T_FALSE);
    CK_T(IS(QOP_IS_DEFINED, FLD(ID("o"), "note"), false), T_TRUE);
    CK_T(IS(QOP_IS_UNDEFINED, FLD(ID("o"), "note"), false), T_FALSE);
    CK_T(IS(QOP_IS_NULL, LI(0), false), T_FALSE);
    CK_T(IS(QOP_IS_NULL, LUNDEF(), false), T_FALSE);
    CK_T(IS(QOP_IS_DEFINED, LNULL(), false), T_TRUE);
}
END_TEST

START_TEST(names_values_source)
{
    /* with an alias: the alias is the value; a bare name is a field */
    ck_type(ID("o"), QT_MAP);
    ck_int(ID("total"), 150);
    ck_str(ID("key"), "field-key");     /* QSRC_VALUES: key/value are fields */
    ck_str(ID("value"), "field-value");
    ck_type(ID("missing"), QT_UNDEFINED);
    /* without one, bare names are fields (and "o" is just a field name) */
    env.alias = NULL;
    ck_int(ID("total"), 150);
    ck_type(ID("o"), QT_UNDEFINED);
    ck_str(FLD(ID("customer"), "city"), "Oslo");
    /* an alias that is a prefix of a name does not match it */
    env.alias = "tot";
    ck_int(ID("total"), 150);
}
END_TEST

START_TEST(names_keys_source)
{
    env.source = QSRC_KEYS;
    env.alias = "k";
    ck_str(ID("k"), "order-0042");
    ck_str(ID("key"), "order-0042");
    ck_type(ID("total"), QT_UNDEFINED); /* a field of a string key */
    CK_T(LIKE(ID("k"), "order-00%", false), T_TRUE);
    env.alias = NULL;
    CK_T(LIKE(ID("key"), "order-00%", false), T_TRUE);
    /* a binary key is LIKE-able too */
    row.key = (qvalue){.type = QT_BIN, .v.s = {(const uint8_t *)"\x01order", 6}};
    CK_T(LIKE(ID("key"), "_order", false), T_TRUE);
}
END_TEST

START_TEST(names_entries_source)
{
    env.source = QSRC_ENTRIES;
    env.alias = "e";
    ck_str(FLD(ID("e"), "key"), "order-0042");
    ck_type(FLD(ID("e"), "value"), QT_MAP);
    ck_int(FLD(FLD(ID("e"), "value"), "total"), 150);
    ck_str(SUB(ID("e"), LS("key")), "order-0042");
    ck_int(FLD(SUB(ID("e"), LS("value")), "total"), 150);
    ck_type(FLD(ID("e"), "total"), QT_UNDEFINED);
    ck_type(SUB(ID("e"), LI(0)), QT_UNDEFINED);
    ck_type(ID("e"), QT_UNDEFINED); /* an entry is not one value */
    /* bare key and value are the entry's; other bare names the value's */
    ck_str(ID("key"), "order-0042");
    ck_int(FLD(ID("value"), "total"), 150);
    ck_str(FLD(ID("value"), "key"), "field-key");
    ck_int(ID("total"), 150);
    env.alias = NULL;
    ck_str(ID("key"), "order-0042");
    ck_int(FLD(ID("value"), "total"), 150);
    ck_type(FLD(ID("e"), "key"), QT_UNDEFINED);
    /* an alias named like a member still wins */
    env.alias = "value";
    ck_str(FLD(ID("value"), "key"), "order-0042");
}
END_TEST

START_TEST(null_row_and_params)
{
    qvalue v;
    qerror err;
    /* no row: key and value UNDEFINED */
    ck_assert_int_eq(qeval(FLD(ID("o"), "total"), &env, NULL, &v, &err), 0);
    ck_assert_int_eq(v.type, QT_UNDEFINED);
    ck_int(PARAM(1), 150);
    CK_T(OP(QOP_EQ, FLD(ID("o"), "total"), PARAM(1)), T_TRUE);
    /* a parameter that was not given is an error, pointing at it */
    qexpr *p3 = PARAM(3);
    ck_assert_int_eq(qeval(OP(QOP_ADD, LI(1), p3), &env, &row, &v, &err), -EINVAL);
    ck_assert_uint_eq(err.pos, p3->pos);
    ck_assert_msg(strstr(err.msg, "$3") != NULL, "%s", err.msg);
    ck_assert_int_eq(qeval(PARAM(0), &env, &row, &v, &err), -EINVAL);
    env.nparams = 0;
    ck_assert_int_eq(qeval(PARAM(1), &env, &row, &v, NULL), -EINVAL); /* err may be NULL */
    bool m = true;
    ck_assert_int_eq(qeval_match(PARAM(1), &env, &row, &m, &err), -EINVAL);
    ck_assert(!m);
}
END_TEST

/* ---- comparison ---------------------------------------------------------------------------- */

START_TEST(comparisons)
{
    CK_T(OP(QOP_EQ, LI(1), LF(1.0)), T_TRUE);
    CK_T(OP(QOP_EQ, LI(0), LF(-0.0)), T_TRUE);
    CK_T(OP(QOP_LT, LI(1), LF(1.5)), T_TRUE);
    CK_T(OP(QOP_GE, FLD(ID("o"), "total"), LF(149.99)), T_TRUE);
    CK_T(OP(QOP_GT, FLD(ID("o"), "big"), LI(INT64_MAX)), T_TRUE);
    CK_T(OP(QOP_EQ, LI(9007199254740993LL), LF(9007199254740992.0)), T_FALSE);
    CK_T(OP(QOP_NE, LI(9007199254740993LL), LF(9007199254740992.0)), T_TRUE);
    CK_T(OP(QOP_LE, LI(2), LI(2)), T_TRUE);
    CK_T(OP(QOP_GT, LI(2), LI(2)), T_FALSE);
    /* strings bytewise (UTF-8: code point order), booleans FALSE < TRUE */
    CK_T(OP(QOP_LT, LS("a"), LS("b")), T_TRUE);
    CK_T(OP(QOP_LT, LS("Z"), LS("a")), T_TRUE);
    CK_T(OP(QOP_GT, LS("\xc3\xa9"), LS("z")), T_TRUE);
    CK_T(OP(QOP_LT, LS("ab"), LS("abc")), T_TRUE);
    CK_T(OP(QOP_EQ, FLD(ID("o"), "status"), LS("paid")), T_TRUE);
    CK_T(OP(QOP_LT, LB(false), LB(true)), T_TRUE);
    CK_T(OP(QOP_EQ, FLD(ID("o"), "flag"), LB(true)), T_TRUE);
    /* different types: FALSE, also for <> (docs: "a comparison between
     * values of different types is FALSE") */
    CK_T(OP(QOP_EQ, LS("10"), LI(10)), T_FALSE);
    CK_T(UN(QOP_NOT, OP(QOP_EQ, LS("10"), LI(10))), T_TRUE);
    CK_T(OP(QOP_NE, LS("10"), LI(10)), T_FALSE);
    CK_T(OP(QOP_LT, LS("10"), LI(10)), T_FALSE);
    CK_T(OP(QOP_GE, LS("10"), LI(10)), T_FALSE);
    CK_T(OP(QOP_EQ, LB(true), LI(1)), T_FALSE);
    CK_T(OP(QOP_EQ, FLD(ID("o"), "items"), LI(10)), T_FALSE);
    /* arrays and maps: = and <> only, numbers normalized */
    CK_T(OP(QOP_EQ, FLD(ID("o"), "items"), LJ("[10, 20.0, 30]")), T_TRUE);
    CK_T(OP(QOP_NE, FLD(ID("o"), "items"), LJ("[10, 20.0, 30]")), T_FALSE);
    CK_T(OP(QOP_NE, FLD(ID("o"), "items"), LJ("[10, 20]")), T_TRUE);
    CK_T(OP(QOP_EQ, FLD(ID("o"), "customer"), LJ("{\"city\": \"Oslo\"}")), T_TRUE);
    CK_T(OP(QOP_LT, LJ("[1]"), LJ("[2]")), T_FALSE);
    CK_T(OP(QOP_GE, LJ("[1]"), LJ("[1]")), T_FALSE);
    CK_T(OP(QOP_EQ, LJ("[]"), LJ("{}")), T_FALSE);
    /* NULL and UNDEFINED operands are unknown */
    CK_T(OP(QOP_EQ, LNULL(), LI(1)), T_NULL);
    CK_T(OP(QOP_NE, LI(1), FLD(ID("o"), "note")), T_NULL);
    CK_T(OP(QOP_EQ, LNULL(), LNULL()), T_NULL);
    CK_T(OP(QOP_EQ, FLD(ID("o"), "missing"), LI(1)), T_UNDEF);
    CK_T(OP(QOP_LT, LI(1), FLD(ID("o"), "missing")), T_UNDEF);
    CK_T(OP(QOP_EQ, LUNDEF(), LNULL()), T_UNDEF);
    CK_T(OP(QOP_EQ, LNULL(), LUNDEF()), T_UNDEF);
    CK_T(OP(QOP_EQ, LNULL(), LS("x")), T_NULL);
    /* NaN: equal to itself, above every number */
    CK_T(OP(QOP_EQ, LF(NAN), LF(NAN)), T_TRUE);
    CK_T(OP(QOP_GT, LF(NAN), LF(INFINITY)), T_TRUE);
    CK_T(OP(QOP_LT, LI(INT64_MAX), LF(NAN)), T_TRUE);
    CK_T(OP(QOP_NE, LF(NAN), LI(0)), T_TRUE);
}
END_TEST

START_TEST(like_and_in)
{
    CK_T(LIKE(FLD(ID("o"), "status"), "p%", false), T_TRUE);
    CK_T(LIKE(FLD(ID("o"), "status"), "p_i_", false), T_TRUE);
    CK_T(LIKE(FLD(ID("o"), "status"), "p%", true), T_FALSE);
    CK_T(LIKE(FLD(ID("o"), "status"), "x%", true), T_TRUE);
    CK_T(LIKE(LS("50%"), "50\\%", false), T_TRUE);
    CK_T(LIKE(FLD(ID("o"), "note"), "%", false), T_NULL);
    CK_T(LIKE(FLD(ID("o"), "note"), "%", true), T_NULL);
    CK_T(LIKE(FLD(ID("o"), "missing"), "%", false), T_UNDEF);
    CK_T(LIKE(FLD(ID("o"), "missing"), "%", true), T_NULL); /* NOT unknown */
    CK_T(LIKE(FLD(ID("o"), "total"), "1%", false), T_FALSE); /* not a string */
    CK_T(LIKE(FLD(ID("o"), "total"), "1%", true), T_TRUE);
    CK_T(OP(QOP_LIKE, LS("abc"), LI(1)), T_FALSE);
    CK_T(OP(QOP_LIKE, LS("abc"), LNULL()), T_NULL);
    /* IN is = OR =; NOT IN is NOT (IN) */
    CK_T(IN(FLD(ID("o"), "status"), false, 2, LS("new"), LS("paid")), T_TRUE);
    CK_T(IN(FLD(ID("o"), "status"), false, 2, LS("new"), LS("void")), T_FALSE);
    CK_T(IN(FLD(ID("o"), "status"), true, 2, LS("new"), LS("void")), T_TRUE);
    CK_T(IN(FLD(ID("o"), "status"), true, 2, LS("new"), LS("paid")), T_FALSE);
    CK_T(IN(LI(1), false, 3, LS("1"), LF(2.0), LF(1.0)), T_TRUE);
    CK_T(IN(LI(1), false, 2, LI(2), LNULL()), T_NULL);
    CK_T(IN(LI(1), false, 2, LNULL(), LI(1)), T_TRUE);
    CK_T(IN(LI(1), true, 2, LI(2), LNULL()), T_NULL);
    CK_T(IN(LI(1), false, 2, LI(2), LS("1")), T_FALSE);
    CK_T(IN(FLD(ID("o"), "missing"), false, 1, LI(1)), T_NULL);
    CK_T(IN(FLD(ID("o"), "missing"), true, 1, LI(1)), T_NULL);
    CK_T(IN(LNULL(), false, 1, LNULL()), T_NULL);
    CK_T(IN(LI(1), false, 0), T_FALSE);
    CK_T(IN(FLD(ID("o"), "items"), false, 1, LJ("[10, 20, 30.0]")), T_TRUE);
    /* IN stops at the first equal element: a missing $9 after it is not reached */
    CK_T(IN(LI(1), false, 2, LI(1), PARAM(9)), T_TRUE);
    qvalue v;
    qerror err;
    ck_assert_int_eq(qeval(IN(LI(1), false, 2, LI(2), PARAM(9)), &env, &row, &v, &err), -EINVAL);
}
END_TEST

/* ---- three-valued logic ------------------------------------------------------------------- */

/* Kleene's tables over TRUE, FALSE and unknown (NULL, UNDEFINED, or not a
 * boolean); an unknown result is NULL. */
START_TEST(kleene_tables)
{
    int kind[5] = {T_TRUE, T_FALSE, -1, -1, -1}; /* -1: unknown */
    qvalue vals[5] = {qv_bool(true), qv_bool(false), qv_null(), qv_undefined(), qv_int(1)};
    for (int i = 0; i < 5; i++) {
        int want_not = kind[i] < 0 ? T_NULL : !kind[i];
        CK_T(UN(QOP_NOT, L(vals[i])), want_not);
        for (int j = 0; j < 5; j++) {
            int a = kind[i], b = kind[j];
            int want_and = (a == T_FALSE || b == T_FALSE) ? T_FALSE
                           : (a == T_TRUE && b == T_TRUE) ? T_TRUE : T_NULL;
            int want_or = (a == T_TRUE || b == T_TRUE) ? T_TRUE
                          : (a == T_FALSE && b == T_FALSE) ? T_FALSE : T_NULL;
            ck_assert_msg(truth_of(E(OP(QOP_AND, L(vals[i]), L(vals[j])))) == want_and, "AND %d %d", i, j);
            ck_assert_msg(truth_of(E(OP(QOP_OR, L(vals[i]), L(vals[j])))) == want_or, "OR %d %d", i, j);
        }
    }
}
END_TEST

START_TEST(where_keeps_only_true)
{
    bool m;
    qerror err;
    struct { qexpr *e; bool keep; } c[] = {
        {OP(QOP_GT, FLD(ID("o"), "total"), LI(100)), true},
        {OP(QOP_GT, FLD(ID("o"), "total"), LI(200)), false},
        {OP(QOP_GT, FLD(ID("o"), "missing"), LI(100)), false},
        {UN(QOP_NOT, OP(QOP_GT, FLD(ID("o"), "missing"), LI(100))), false},
        {OP(QOP_EQ, FLD(ID("o"), "note"), LNULL()), false},
        {IS(QOP_IS_NULL, FLD(ID("o"), "note"), false), true},
        {FLD(ID("o"), "flag"), true},
        {FLD(ID("o"), "total"), false}, /* a number is not TRUE */
        {LS("true"), false},
        {OP(QOP_OR, FLD(ID("o"), "missing"), LB(true)), true},
        {OP(QOP_AND, FLD(ID("o"), "missing"), LB(true)), false},
        {UN(QOP_NOT, OP(QOP_EQ, LS("10"), LI(10))), true},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        ck_assert_int_eq(qeval_match(c[i].e, &env, &row, &m, &err), 0);
        ck_assert_msg(m == c[i].keep, "case %zu", i);
    }
}
END_TEST

START_TEST(logic_short_circuits)
{
    qvalue v;
    qerror err;
    /* the right operand is not evaluated when the left decides */
    CK_T(OP(QOP_AND, LB(false), PARAM(9)), T_FALSE);
    CK_T(OP(QOP_OR, LB(true), PARAM(9)), T_TRUE);
    qexpr *p = PARAM(9);
    ck_assert_int_eq(qeval(OP(QOP_AND, LB(true), p), &env, &row, &v, &err), -EINVAL);
    ck_assert_uint_eq(err.pos, p->pos);
    ck_assert_int_eq(qeval(OP(QOP_OR, LNULL(), PARAM(9)), &env, &row, &v, &err), -EINVAL);
    /* an unknown left operand still lets a decisive right one decide */
    CK_T(OP(QOP_AND, LNULL(), LB(false)), T_FALSE);
    CK_T(OP(QOP_OR, LUNDEF(), LB(true)), T_TRUE);
}
END_TEST

/* ---- arithmetic ---------------------------------------------------------------------------------- */

START_TEST(integer_arithmetic)
{
    ck_int(OP(QOP_ADD, LI(1), LI(2)), 3);
    ck_int(OP(QOP_SUB, LI(1), LI(2)), -1);
    ck_int(OP(QOP_MUL, LI(3), LI(-4)), -12);
    ck_int(OP(QOP_ADD, FLD(ID("o"), "total"), LI(-50)), 100);
    ck_int(UN(QOP_NEG, LI(5)), -5);
    ck_int(UN(QOP_NEG, FLD(ID("o"), "total")), -150);
    /* results beyond int64 but within uint64 stay integers */
    ck_uint(OP(QOP_ADD, LI(INT64_MAX), LI(1)), 1ULL << 63);
    ck_uint(OP(QOP_SUB, FLD(ID("o"), "big"), LI(1)), UINT64_MAX - 1);
    ck_int(OP(QOP_SUB, L(U(1ULL << 63)), LI(1)), INT64_MAX);
    ck_int(OP(QOP_ADD, FLD(ID("o"), "big"), LI(INT64_MIN)), INT64_MAX);
    ck_int(OP(QOP_MUL, L(U(1ULL << 63)), LI(-1)), INT64_MIN);
    ck_uint(UN(QOP_NEG, LI(INT64_MIN)), 1ULL << 63);
    ck_int(UN(QOP_NEG, L(U(1ULL << 63))), INT64_MIN);
    ck_int(OP(QOP_SUB, LI(INT64_MIN), LI(INT64_MIN)), 0);
    /* beyond 64 bits: a float */
    ck_float(OP(QOP_ADD, FLD(ID("o"), "big"), LI(1)), 18446744073709551616.0);
    ck_float(OP(QOP_SUB, LI(INT64_MIN), LI(1)), -9223372036854775808.0);
    ck_float(OP(QOP_MUL, LI(4294967296LL), LI(4294967296LL)), 18446744073709551616.0);
    ck_float(OP(QOP_MUL, LI(INT64_MIN), LI(2)), -18446744073709551616.0);
    ck_float(OP(QOP_SUB, LI(-1), FLD(ID("o"), "big")), -18446744073709551616.0);
    ck_float(UN(QOP_NEG, FLD(ID("o"), "big")), -18446744073709551615.0);
}
END_TEST

START_TEST(division_and_remainder)
{
    ck_int(OP(QOP_DIV, LI(7), LI(2)), 3);
    ck_int(OP(QOP_DIV, LI(-7), LI(2)), -3);
    ck_int(OP(QOP_DIV, LI(7), LI(-2)), -3);
    ck_int(OP(QOP_DIV, LI(-7), LI(-2)), 3);
    ck_int(OP(QOP_MOD, LI(7), LI(3)), 1);
    ck_int(OP(QOP_MOD, LI(-7), LI(3)), -1); /* the dividend's sign */
    ck_int(OP(QOP_MOD, LI(7), LI(-3)), 1);
    ck_int(OP(QOP_MOD, LI(-7), LI(-3)), -1);
    ck_int(OP(QOP_MOD, LI(-6), LI(3)), 0);
    ck_uint(OP(QOP_DIV, LI(INT64_MIN), LI(-1)), 1ULL << 63);
    ck_int(OP(QOP_MOD, LI(INT64_MIN), LI(-1)), 0);
    ck_int(OP(QOP_DIV, LI(INT64_MIN), L(U(1ULL << 63))), -1);
    ck_int(OP(QOP_DIV, FLD(ID("o"), "big"), LI(-2)), -INT64_MAX);
    ck_int(OP(QOP_MOD, FLD(ID("o"), "big"), LI(10)), 5);
    ck_int(OP(QOP_MOD, LI(-5), FLD(ID("o"), "big")), -5);
    ck_int(OP(QOP_DIV, LI(5), FLD(ID("o"), "big")), 0);
    /* a float operand makes a float division; % is fmod */
    ck_float(OP(QOP_DIV, LF(7.0), LI(2)), 3.5);
    ck_float(OP(QOP_DIV, LI(7), LF(2.0)), 3.5);
    ck_float(OP(QOP_DIV, FLD(ID("o"), "price"), LI(2)), 1.25);
    ck_float(OP(QOP_MOD, LF(7.5), LI(2)), 1.5);
    ck_float(OP(QOP_MOD, LF(-7.5), LI(2)), -1.5);
    ck_float(OP(QOP_MOD, LI(7), LF(2.5)), 2.0);
    /* by zero: NULL, for integers and floats */
    ck_type(OP(QOP_DIV, LI(7), LI(0)), QT_NULL);
    ck_type(OP(QOP_MOD, LI(7), LI(0)), QT_NULL);
    ck_type(OP(QOP_DIV, LF(7.0), LI(0)), QT_NULL);
    ck_type(OP(QOP_DIV, LI(7), LF(0.0)), QT_NULL);
    ck_type(OP(QOP_DIV, LI(7), LF(-0.0)), QT_NULL);
    ck_type(OP(QOP_MOD, LF(7.0), LF(0.0)), QT_NULL);
    ck_type(OP(QOP_DIV, LI(0), LI(0)), QT_NULL);
}
END_TEST

START_TEST(float_arithmetic_and_unknowns)
{
    ck_float(OP(QOP_ADD, LI(1), LF(0.5)), 1.5);
    ck_float(OP(QOP_MUL, FLD(ID("o"), "price"), LI(4)), 10.0);
    ck_float(OP(QOP_SUB, LF(0.5), L(U(1ULL << 63))), 0.5 - 9223372036854775808.0);
    ck_float(OP(QOP_MUL, LF(1e308), LI(10)), INFINITY);
    ck_float(OP(QOP_SUB, LF(INFINITY), LF(INFINITY)), NAN);
    ck_float(UN(QOP_NEG, LF(1.5)), -1.5);
    ck_float(OP(QOP_ADD, LF(1.0), LI(1)), 2.0); /* a float, even when whole */
    /* NULL in, NULL out; UNDEFINED in, UNDEFINED out (it wins over NULL) */
    ck_type(OP(QOP_ADD, LNULL(), LI(1)), QT_NULL);
    ck_type(OP(QOP_DIV, LI(1), FLD(ID("o"), "note")), QT_NULL);
    ck_type(OP(QOP_ADD, FLD(ID("o"), "missing"), LI(1)), QT_UNDEFINED);
    ck_type(OP(QOP_MUL, LNULL(), LUNDEF()), QT_UNDEFINED);
    ck_type(OP(QOP_MOD, LUNDEF(), LNULL()), QT_UNDEFINED);
    ck_type(OP(QOP_DIV, LNULL(), LI(0)), QT_NULL);
    ck_type(UN(QOP_NEG, LNULL()), QT_NULL);
    ck_type(UN(QOP_NEG, LUNDEF()), QT_UNDEFINED);
    /* non-numbers: UNDEFINED */
    ck_type(OP(QOP_ADD, LS("1"), LI(1)), QT_UNDEFINED);
    ck_type(OP(QOP_ADD, FLD(ID("o"), "customer"), LI(1)), QT_UNDEFINED);
    ck_type(OP(QOP_SUB, LI(1), LB(true)), QT_UNDEFINED);
    ck_type(OP(QOP_DIV, LS("x"), LI(0)), QT_UNDEFINED);
    ck_type(UN(QOP_NEG, LS("a")), QT_UNDEFINED);
    ck_type(UN(QOP_NEG, FLD(ID("o"), "items")), QT_UNDEFINED);
    ck_type(OP(QOP_ADD, LS("1"), LNULL()), QT_NULL); /* NULL first, then types */
}
END_TEST

/* ---- errors and aggregates in expressions ------------------------------------------------------------ */

static int agg_cb(void *ctx, const qexpr *agg, qvalue *out, qerror *err)
{
    (void)err;
    *out = agg->agg == QAGG_COUNT ? qv_int(*(int *)ctx) : qv_int(10 * *(int *)ctx);
    return 0;
}

START_TEST(aggregates_need_the_aggregator)
{
    qvalue v;
    qerror err;
    qexpr *count = AGG(QAGG_COUNT, false, NULL);
    ck_assert_int_eq(qeval(OP(QOP_ADD, LI(1), count), &env, &row, &v, &err), -EINVAL);
    ck_assert_uint_eq(err.pos, count->pos);
    ck_assert_msg(strstr(err.msg, "COUNT") != NULL, "%s", err.msg);
    /* with the callback (after grouping), SUM(x) / COUNT(*) */
    int n = 4;
    env.aggregate = agg_cb;
    env.agg_ctx = &n;
    ck_int(OP(QOP_DIV, AGG(QAGG_SUM, false, FLD(ID("o"), "total")), count), 10);
}
END_TEST

START_TEST(depth_is_bounded)
{
    qexpr *e = LB(true);
    for (int i = 0; i < QEVAL_MAX_DEPTH - 1; i++)
        e = UN(QOP_NOT, e);
    CK_T(e, (QEVAL_MAX_DEPTH - 1) % 2 ? T_FALSE : T_TRUE);
    qvalue v;
    qerror err;
    e = UN(QOP_NOT, UN(QOP_NOT, e));
    ck_assert_int_eq(qeval(e, &env, &row, &v, &err), -EINVAL);
    ck_assert_msg(strstr(err.msg, "deep") != NULL, "%s", err.msg);
}
END_TEST

/* ---- aggregates ------------------------------------------------------------------------------------------ */

/* One aggregate over a JSON array of values, one pass. */
static qvalue agg_over(qagg_acc *a, qagg fn, bool distinct, const char *json)
{
    qvalue arr = J(json);
    qagg_init(a, fn, false, distinct);
    int n = 0;
    for (;;) {
        qvalue v = qvalue_element(&arr, n++);
        if (v.type == QT_UNDEFINED)
            break;
        ck_assert_int_eq(qagg_add(a, &v), 0);
    }
    qvalue out;
    ck_assert_int_eq(qagg_result(a, &out), 0);
    return out;
}

/* The result of fn over json, freed at once: for numbers and types. */
static qvalue agg1(qagg fn, bool distinct, const char *json)
{
    qagg_acc a;
    qvalue v = agg_over(&a, fn, distinct, json);
    ck_assert(v.type != QT_STR && v.type != QT_BIN && v.type != QT_ARRAY && v.type != QT_MAP);
    qagg_free(&a);
    return v;
}

#define CK_AGG_INT(fn, d, json, want)                                                              \
    do {                                                                                           \
        qvalue r_ = agg1(fn, d, json);                                                             \
        ck_assert_msg(r_.type == QT_INT && r_.v.i == (want), "%s: %s", json, qtype_name(r_.type)); \
    } while (0)
#define CK_AGG_FLOAT(fn, d, json, want)                                                            \
    do {                                                                                           \
        qvalue r_ = agg1(fn, d, json);                                                             \
        ck_assert_msg(r_.type == QT_FLOAT && r_.v.f == (want), "%s: %s %.17g", json,               \
                      qtype_name(r_.type), r_.v.f);                                                \
    } while (0)
#define CK_AGG_NULL(fn, d, json) ck_assert_int_eq(agg1(fn, d, json).type, QT_NULL)

START_TEST(count_rules)
{
    qagg_acc a;
    qagg_init(&a, QAGG_COUNT, true, false);
    qvalue n = qv_null(), u = qv_undefined();
    ck_assert_int_eq(qagg_add(&a, &n), 0);
    ck_assert_int_eq(qagg_add(&a, &u), 0);
    ck_assert_int_eq(qagg_add(&a, NULL), 0);
    qvalue r;
    ck_assert_int_eq(qagg_result(&a, &r), 0);
    ck_assert(r.type == QT_INT && r.v.i == 3); /* COUNT(*) counts rows */
    qagg_free(&a);
    CK_AGG_INT(QAGG_COUNT, false, "[1, null, \"x\", 2.5, [], {}, false]", 6);
    CK_AGG_INT(QAGG_COUNT, false, "[]", 0);
    CK_AGG_INT(QAGG_COUNT, false, "[null, null]", 0);
    /* DISTINCT: numbers by value; other types never equal numbers */
    CK_AGG_INT(QAGG_COUNT, true, "[1, 1.0, 2, \"1\", null, 2, \"1\", [1], [1.0], true]", 5);
    CK_AGG_INT(QAGG_COUNT, true, "[]", 0);
    /* UNDEFINED is skipped too (a missing field) */
    qagg_init(&a, QAGG_COUNT, false, false);
    ck_assert_int_eq(qagg_add(&a, &u), 0);
    ck_assert_int_eq(qagg_result(&a, &r), 0);
    ck_assert_int_eq(r.v.i, 0);
    qagg_free(&a);
}
END_TEST

START_TEST(sum_avg_rules)
{
    CK_AGG_INT(QAGG_SUM, false, "[1, 2, 3]", 6);
    CK_AGG_INT(QAGG_SUM, false, "[1, \"100\", null, true, [5], 2]", 3); /* numbers only */
    CK_AGG_FLOAT(QAGG_SUM, false, "[1, 2.5]", 3.5);
    CK_AGG_FLOAT(QAGG_SUM, false, "[1, 1.0]", 2.0); /* any float: a float */
    CK_AGG_NULL(QAGG_SUM, false, "[]");
    CK_AGG_NULL(QAGG_SUM, false, "[\"a\", null]");
    CK_AGG_INT(QAGG_SUM, false, "[-9223372036854775808, -1, 1]", INT64_MIN);
    /* beyond 64 bits: a float; back within them: an integer (exact) */
    CK_AGG_FLOAT(QAGG_SUM, false, "[18446744073709551615, 1]", 18446744073709551616.0);
    CK_AGG_FLOAT(QAGG_SUM, false, "[-9223372036854775808, -1]", -9223372036854775809.0);
    CK_AGG_INT(QAGG_SUM, false, "[9223372036854775807, 9223372036854775807, -9223372036854775807, -9223372036854775807, 5]", 5);
    qvalue r = agg1(QAGG_SUM, false, "[9223372036854775807, 1]");
    ck_assert(r.type == QT_UINT && r.v.u == 1ULL << 63);
    r = agg1(QAGG_SUM, false, "[18446744073709551615, 18446744073709551615,"
                              " -9223372036854775808, -9223372036854775808, -1]");
    ck_assert(r.type == QT_UINT && r.v.u == UINT64_MAX - 2);
    CK_AGG_FLOAT(QAGG_AVG, false, "[1, 2]", 1.5);
    CK_AGG_FLOAT(QAGG_AVG, false, "[2, 2, \"x\", null]", 2.0); /* AVG is a float */
    CK_AGG_FLOAT(QAGG_AVG, false, "[18446744073709551615, 18446744073709551615]", 18446744073709551615.0);
    CK_AGG_NULL(QAGG_AVG, false, "[]");
    CK_AGG_NULL(QAGG_AVG, false, "[{}]");
    /* DISTINCT: each value once, numbers by value (1 and 1.0 are one, the
     * integer spelling kept whatever came first) */
    CK_AGG_INT(QAGG_SUM, true, "[1, 1, 2, 2, 3]", 6);
    CK_AGG_INT(QAGG_SUM, true, "[1.0, 1, 2]", 3);
    CK_AGG_INT(QAGG_SUM, true, "[1, 1.0, 2]", 3);
    CK_AGG_FLOAT(QAGG_SUM, true, "[1, 1.5, 1.5, 2]", 4.5);
    CK_AGG_FLOAT(QAGG_AVG, true, "[1, 1, 1, 3, \"3\"]", 2.0);
    CK_AGG_NULL(QAGG_SUM, true, "[\"a\"]");
    CK_AGG_NULL(QAGG_AVG, true, "[]");
}
END_TEST

START_TEST(min_max_rules)
{
    CK_AGG_INT(QAGG_MIN, false, "[3, 1, 2]", 1);
    CK_AGG_INT(QAGG_MAX, false, "[3, 1, 2]", 3);
    CK_AGG_FLOAT(QAGG_MIN, false, "[3, 1.5, 2]", 1.5);
    CK_AGG_INT(QAGG_MIN, false, "[null, 5, null]", 5);
    CK_AGG_NULL(QAGG_MIN, false, "[]");
    CK_AGG_NULL(QAGG_MAX, false, "[null]");
    /* the total order: booleans < numbers < strings < ... < maps */
    qvalue r = agg1(QAGG_MIN, false, "[\"a\", 2, true, [1], {}]");
    ck_assert(r.type == QT_BOOL && r.v.b);
    /* equal values spelled differently: the integer, in either order */
    CK_AGG_INT(QAGG_MIN, false, "[1.0, 1, 2]", 1);
    CK_AGG_INT(QAGG_MIN, false, "[1, 1.0, 2]", 1);
    CK_AGG_INT(QAGG_MAX, true, "[1, 2.0, 2]", 2);
    /* strings and maps are copied: the result outlives the rows */
    qagg_acc a;
    qagg_init(&a, QAGG_MAX, false, false);
    for (int i = 0; i < 50; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"v\": \"s%02d\"}", (i * 37) % 50);
        uint8_t *copy;
        qvalue m = J(json), s = qvalue_field(&m, "v", 1);
        copy = malloc(s.v.s.n);
        memcpy(copy, s.v.s.p, s.v.s.n);
        s.v.s.p = copy;
        ck_assert_int_eq(qagg_add(&a, &s), 0);
        memset(copy, 'X', s.v.s.n);
        free(copy);
    }
    ck_assert_int_eq(qagg_result(&a, &r), 0);
    ck_assert_int_eq(r.type, QT_STR);
    ck_assert_mem_eq(r.v.s.p, "s49", 3);
    qagg_free(&a);
    qagg_init(&a, QAGG_MIN, false, false);
    qvalue m1 = J("[2, {\"a\": 1}]"), m2 = J("[1, 2]"), m3 = J("[1.0, 2.0]");
    ck_assert_int_eq(qagg_add(&a, &m1), 0);
    ck_assert_int_eq(qagg_add(&a, &m3), 0);
    ck_assert_int_eq(qagg_add(&a, &m2), 0);
    ck_assert_int_eq(qagg_result(&a, &r), 0);
    ck_assert(qvalue_equal(&r, &m2));
    ck_assert_uint_eq(r.v.mp.n, m2.v.mp.n); /* [1, 2] is the smaller encoding */
    ck_assert_mem_eq(r.v.mp.p, m2.v.mp.p, m2.v.mp.n);
    ck_assert_ptr_ne(r.v.mp.p, m2.v.mp.p);
    qagg_free(&a);
}
END_TEST

/* ---- partial states -------------------------------------------------------------------------------------- */

static const uint8_t *pack_partial(const qagg_acc *a, size_t *n)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(qagg_pack(a, &pk), 0);
    const uint8_t *p = keep(sb.data, sb.size);
    *n = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return p;
}

static bool same_result(const qvalue *a, const qvalue *b)
{
    if (a->type != b->type)
        return false;
    if (a->type == QT_FLOAT)
        return a->v.f == b->v.f || (isnan(a->v.f) && isnan(b->v.f));
    return qvalue_equal(a, b);
}

static const char *const DATASETS[] = {
    "[1, 2, 3, 4, 5, 6, 7]",
    "[3, 1.5, null, \"b\", 2, \"a\", 1, 1.0, 2.5, true, [1], {\"k\": 1}, 3, null, \"b\"]",
    "[9223372036854775807, 9223372036854775807, -5, -9223372036854775808, 18446744073709551615, 1]",
    "[0.5, 0.25, 0.5, 0.125, 1, 1.0, -0.0, 0]",
    "[null, null, \"x\"]",
    "[]",
};

/* Rows of a dataset dealt into nparts partials in one of three ways
 * (round robin, contiguous runs, all but one in the last), packed, and
 * merged into a fresh accumulator; the result must equal one pass. */
static void check_merge(qagg fn, bool star, bool distinct, const char *json, int nparts, int how)
{
    qvalue arr = J(json);
    int n = 0;
    while (qvalue_element(&arr, n).type != QT_UNDEFINED)
        n++;
    qagg_acc whole, part[4], merged;
    qagg_init(&whole, fn, star, distinct);
    for (int p = 0; p < nparts; p++)
        qagg_init(&part[p], fn, star, distinct);
    for (int i = 0; i < n; i++) {
        qvalue v = qvalue_element(&arr, i);
        int p = how == 0 ? i % nparts : how == 1 ? i * nparts / n : (i == 0 ? 0 : nparts - 1);
        ck_assert_int_eq(qagg_add(&whole, &v), 0);
        ck_assert_int_eq(qagg_add(&part[p], &v), 0);
    }
    qagg_init(&merged, fn, star, distinct);
    for (int p = nparts; p-- > 0;) { /* merged in another order than dealt */
        size_t len;
        const uint8_t *bytes = pack_partial(&part[p], &len);
        qagg_free(&part[p]);
        ck_assert_int_eq(qagg_merge(&merged, bytes, len), 0);
    }
    qvalue a, b;
    ck_assert_int_eq(qagg_result(&whole, &a), 0);
    ck_assert_int_eq(qagg_result(&merged, &b), 0);
    ck_assert_msg(same_result(&a, &b), "fn %d star %d distinct %d over %s (%d parts, way %d): %s vs %s",
                  fn, star, distinct, json, nparts, how, qtype_name(a.type), qtype_name(b.type));
    qagg_free(&whole);
    qagg_free(&merged);
}

START_TEST(partials_merge_like_one_pass)
{
    for (size_t d = 0; d < sizeof DATASETS / sizeof DATASETS[0]; d++)
        for (int fn = QAGG_COUNT; fn <= QAGG_MAX; fn++)
            for (int distinct = 0; distinct < 2; distinct++)
                for (int parts = 1; parts <= 4; parts++)
                    for (int how = 0; how < 3; how++) {
                        check_merge((qagg)fn, false, distinct, DATASETS[d], parts, how);
                        if (fn == QAGG_COUNT && !distinct)
                            check_merge(QAGG_COUNT, true, false, DATASETS[d], parts, how);
                    }
}
END_TEST

START_TEST(partial_of_a_partial)
{
    /* a gatherer's merged state packs and merges again like any partial */
    qagg_acc a, b, c;
    qagg_init(&a, QAGG_SUM, false, true);
    qagg_init(&b, QAGG_SUM, false, true);
    qagg_init(&c, QAGG_SUM, false, true);
    qvalue v1 = qv_int(5), v2 = qv_float(5.0), v3 = qv_float(0.5);
    ck_assert_int_eq(qagg_add(&a, &v1), 0);
    ck_assert_int_eq(qagg_add(&a, &v3), 0);
    size_t n;
    const uint8_t *p = pack_partial(&a, &n);
    ck_assert_int_eq(qagg_merge(&b, p, n), 0);
    ck_assert_int_eq(qagg_add(&b, &v2), 0);
    p = pack_partial(&b, &n);
    ck_assert_int_eq(qagg_merge(&c, p, n), 0);
    qvalue r;
    ck_assert_int_eq(qagg_result(&c, &r), 0);
    ck_assert(r.type == QT_FLOAT && r.v.f == 5.5);
    qagg_free(&a);
    qagg_free(&b);
    qagg_free(&c);
}
END_TEST

START_TEST(merge_refuses_mismatches)
{
    qagg_acc sum, other;
    qagg_init(&sum, QAGG_SUM, false, false);
    qvalue one = qv_int(1), s = S("x");
    ck_assert_int_eq(qagg_add(&sum, &one), 0);
    size_t n;
    qagg_init(&other, QAGG_COUNT, false, false);
    const uint8_t *p = pack_partial(&other, &n);
    ck_assert_int_eq(qagg_merge(&sum, p, n), -EINVAL); /* another function */
    qagg_free(&other);
    qagg_init(&other, QAGG_SUM, false, true);
    ck_assert_int_eq(qagg_add(&other, &one), 0);
    p = pack_partial(&other, &n);
    ck_assert_int_eq(qagg_merge(&sum, p, n), -EINVAL); /* DISTINCT or not */
    qagg_free(&other);
    qagg_init(&other, QAGG_COUNT, true, false);
    p = pack_partial(&other, &n);
    qagg_acc cnt;
    qagg_init(&cnt, QAGG_COUNT, false, false);
    ck_assert_int_eq(qagg_merge(&cnt, p, n), -EINVAL); /* COUNT(*) or COUNT(x) */
    qagg_free(&other);
    qagg_free(&cnt);
    /* malformed: every truncation, a trailing byte, junk */
    qagg_init(&other, QAGG_SUM, false, false);
    ck_assert_int_eq(qagg_add(&other, &one), 0);
    p = pack_partial(&other, &n);
    for (size_t k = 0; k < n; k++)
        ck_assert_int_eq(qagg_merge(&sum, keep(p, k), k), -EINVAL);
    uint8_t longer[256];
    memcpy(longer, p, n);
    longer[n] = 0xc0;
    ck_assert_int_eq(qagg_merge(&sum, keep(longer, n + 1), n + 1), -EINVAL);
    static const uint8_t junk[] = {0x92, 0x01, 0x02};
    ck_assert_int_eq(qagg_merge(&sum, keep(junk, 3), 3), -EINVAL);
    qagg_free(&other);
    /* a DISTINCT SUM partial whose set holds a string is not a SUM's */
    static const uint8_t bad_set[] = {0x98, QAGG_SUM, 0x01, 0, 0, 0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0,
                                      0xc0, 0x91, 0xa1, 'x'};
    qagg_init(&other, QAGG_SUM, false, true);
    ck_assert_int_eq(qagg_merge(&other, keep(bad_set, sizeof bad_set), sizeof bad_set), -EINVAL);
    qagg_free(&other);
    /* a refused merge changed nothing */
    qvalue r;
    ck_assert_int_eq(qagg_add(&sum, &s), 0);
    ck_assert_int_eq(qagg_result(&sum, &r), 0);
    ck_assert(r.type == QT_INT && r.v.i == 1);
    qagg_free(&sum);
}
END_TEST

START_TEST(distinct_sets_are_bounded)
{
    qagg_acc a;
    qagg_init(&a, QAGG_COUNT, false, true);
    a.max_bytes = 64 * 1024;
    char buf[64];
    int added = 0, rc = 0;
    for (int i = 0; i < 100000 && rc == 0; i++) {
        snprintf(buf, sizeof buf, "distinct-value-%06d", i);
        qvalue v = S(buf);
        if ((rc = qagg_add(&a, &v)) == 0)
            added++;
    }
    ck_assert_int_eq(rc, -E2BIG);
    ck_assert_int_gt(added, 100);
    qvalue r;
    ck_assert_int_eq(qagg_result(&a, &r), 0);
    ck_assert_int_eq(r.v.i, added); /* the refused value left no trace */
    /* values already in the set are still taken */
    qvalue again = S("distinct-value-000000");
    ck_assert_int_eq(qagg_add(&a, &again), 0);
    ck_assert_int_eq(qagg_result(&a, &r), 0);
    ck_assert_int_eq(r.v.i, added);
    /* a gatherer with the same limit refuses the union of two such sets */
    size_t n;
    const uint8_t *p = pack_partial(&a, &n);
    qagg_acc g;
    qagg_init(&g, QAGG_COUNT, false, true);
    g.max_bytes = 64 * 1024;
    ck_assert_int_eq(qagg_merge(&g, p, n), 0);
    ck_assert_int_eq(qagg_merge(&g, p, n), 0); /* the same values again: no growth */
    ck_assert_int_eq(qagg_result(&g, &r), 0);
    ck_assert_int_eq(r.v.i, added);
    qagg_free(&g);
    qagg_free(&a);
}
END_TEST

START_TEST(large_distinct_set)
{
    qagg_acc a, s;
    qagg_init(&a, QAGG_COUNT, false, true);
    qagg_init(&s, QAGG_SUM, false, true);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 100000; i++) {
            qvalue v = round ? qv_float(i) : qv_int(i);
            ck_assert_int_eq(qagg_add(&a, &v), 0);
            ck_assert_int_eq(qagg_add(&s, &v), 0);
        }
    qvalue r;
    ck_assert_int_eq(qagg_result(&a, &r), 0);
    ck_assert_int_eq(r.v.i, 100000);
    ck_assert_int_eq(qagg_result(&s, &r), 0);
    ck_assert(r.type == QT_INT && r.v.i == 4999950000LL);
    qagg_free(&a);
    qagg_free(&s);
}
END_TEST

START_TEST(step_and_init_from_nodes)
{
    qagg_acc a;
    qerror err;
    qexpr *sum = AGG(QAGG_SUM, false, FLD(ID("o"), "total"));
    ck_assert_int_eq(qagg_init_expr(&a, sum), 0);
    ck_assert_int_eq(qagg_step(&a, sum, &env, &row, &err), 0);
    ck_assert_int_eq(qagg_step(&a, sum, &env, &row, &err), 0);
    qvalue r;
    ck_assert_int_eq(qagg_result(&a, &r), 0);
    ck_assert_int_eq(r.v.i, 300);
    qagg_free(&a);
    qexpr *count = AGG(QAGG_COUNT, false, NULL);
    ck_assert_int_eq(qagg_init_expr(&a, count), 0);
    ck_assert(a.star);
    ck_assert_int_eq(qagg_step(&a, count, &env, NULL, &err), 0);
    ck_assert_int_eq(qagg_result(&a, &r), 0);
    ck_assert_int_eq(r.v.i, 1);
    qagg_free(&a);
    qexpr *bad = AGG(QAGG_MAX, false, PARAM(7));
    ck_assert_int_eq(qagg_init_expr(&a, bad), 0);
    ck_assert_int_eq(qagg_step(&a, bad, &env, &row, &err), -EINVAL);
    qagg_free(&a);
    ck_assert_int_eq(qagg_init_expr(&a, LI(1)), -EINVAL);
    ck_assert_int_eq(qagg_init_expr(&a, AGG(QAGG_SUM, false, NULL)), -EINVAL);
    /* qagg_free twice, and init after free, are fine */
    qagg_init(&a, QAGG_MIN, false, false);
    qagg_free(&a);
    qagg_free(&a);
}
END_TEST

/* ---- with the parser: docs/query.md's examples end to end ------------------------------- */

static struct qarena *arenas[64];
static int narenas;
static query_t *queries[16];
static int nqueries;

static void parsed_teardown(void)
{
    while (narenas > 0)
        qarena_free(arenas[--narenas]);
    while (nqueries > 0)
        query_free(queries[--nqueries]);
    teardown();
}

static const qexpr *P(const char *text)
{
    qexpr *e = NULL;
    struct qarena *a = NULL;
    qerror err = {0};
    int rc = qexpr_parse(text, strlen(text), &e, &a, &err);
    ck_assert_msg(rc == 0, "%s: %s", text, err.msg);
    ck_assert_int_lt(narenas, 64);
    arenas[narenas++] = a;
    return e;
}

static query_t *Q(const char *text)
{
    query_t *q = NULL;
    qerror err = {0};
    int rc = query_parse(text, strlen(text), &q, &err);
    ck_assert_msg(rc == 0, "%s: %s", text, err.msg);
    ck_assert_int_lt(nqueries, 16);
    queries[nqueries++] = q;
    return q;
}

START_TEST(parsed_expressions)
{
    CK_T(P("o.total > 100 AND o.status = 'paid'"), T_TRUE);
    CK_T(P("total > 100"), T_TRUE);
    CK_T(P("NOT ('10' = 10)"), T_TRUE);
    CK_T(P("'10' = 10"), T_FALSE);
    CK_T(P("1 = 1.0"), T_TRUE);
    CK_T(P("o.missing IS NULL"), T_FALSE);
    CK_T(P("IS_UNDEFINED(o.missing) AND IS_DEFINED(o.note) AND o.note IS NULL"), T_TRUE);
    CK_T(P("o.missing = 1 OR TRUE"), T_TRUE);
    CK_T(P("FALSE AND o.missing = 1"), T_FALSE);
    CK_T(P("NOT (o.missing = 1)"), T_NULL);
    CK_T(P("o.status IN ('new', 'paid')"), T_TRUE);
    CK_T(P("o.status NOT IN ('new', 'void')"), T_TRUE);
    CK_T(P("o.customer.city LIKE 'O_l%'"), T_TRUE);
    CK_T(P("o['first name'] NOT LIKE 'A%'"), T_FALSE);
    CK_T(P("o[$2] = 'Ada' AND o.total = $1"), T_TRUE);
    ck_int(P("7 / 2"), 3);
    ck_int(P("-7 % 3"), -1);
    ck_int(P("1 + 2 * 3 - -4"), 11);
    ck_int(P("o.items[-1] - o.items[0]"), 20);
    ck_float(P("7 / 2.0"), 3.5);
    ck_float(P("9223372036854775807 + 9223372036854775807 + 2"), 18446744073709551616.0);
    ck_type(P("7 % 0"), QT_NULL);
    ck_type(P("'a' + 1"), QT_UNDEFINED);
    ck_type(P("o.note + 1"), QT_NULL);
    ck_str(P("o.customer.city"), "Oslo");
}
END_TEST

START_TEST(parsed_queries)
{
    bool m;
    qerror err;
    qvalue v;
    /* SELECT o.total FROM /orders o WHERE o.status = 'paid' */
    query_t *q = Q("SELECT o.total FROM /orders o WHERE o.status = 'paid'");
    qenv qe = {.source = q->source, .alias = q->alias};
    ck_assert_int_eq(qeval_match(q->where, &qe, &row, &m, &err), 0);
    ck_assert(m);
    ck_assert_int_eq(qeval(q->items[0].expr, &qe, &row, &v, &err), 0);
    ck_assert(v.type == QT_INT && v.v.i == 150);
    /* keys */
    q = Q("SELECT k FROM /orders.keys k WHERE k LIKE 'order-00%'");
    qe = (qenv){.source = q->source, .alias = q->alias};
    ck_assert_int_eq(q->source, QSRC_KEYS);
    ck_assert_int_eq(qeval_match(q->where, &qe, &row, &m, &err), 0);
    ck_assert(m);
    /* entries */
    q = Q("SELECT e.key, e.value.total FROM /orders.entries e WHERE e.value.total >= $1");
    qe = (qenv){.source = q->source, .alias = q->alias, .params = params, .nparams = 1};
    ck_assert_int_eq(qeval_match(q->where, &qe, &row, &m, &err), 0);
    ck_assert(m);
    ck_assert_int_eq(qeval(q->items[0].expr, &qe, &row, &v, &err), 0);
    ck_assert(v.type == QT_STR && v.v.s.n == 10);
    ck_assert_int_eq(qeval(q->items[1].expr, &qe, &row, &v, &err), 0);
    ck_assert(v.type == QT_INT && v.v.i == 150);
    qe.nparams = 0; /* $1 not given: an error when the query runs */
    ck_assert_int_eq(qeval_match(q->where, &qe, &row, &m, &err), -EINVAL);
    /* aggregates: each item's accumulator over rows, partials merged */
    q = Q("SELECT COUNT(*), SUM(total), AVG(total), MIN(status), MAX(DISTINCT total),"
          " COUNT(DISTINCT status) FROM /orders");
    qe = (qenv){.source = q->source, .alias = q->alias};
    ck_assert_uint_eq(q->nitems, 6);
    static const char *rows[] = {"{\"total\": 10, \"status\": \"new\"}",
                                 "{\"total\": 2.5, \"status\": \"paid\"}", "{\"status\": \"paid\"}",
                                 "{\"total\": 30}"};
    qagg_acc member[2][6], gather[6];
    for (int i = 0; i < 6; i++) {
        for (int k = 0; k < 2; k++)
            ck_assert_int_eq(qagg_init_expr(&member[k][i], q->items[i].expr), 0);
        ck_assert_int_eq(qagg_init_expr(&gather[i], q->items[i].expr), 0);
    }
    for (int r = 0; r < 4; r++) {
        qrow rw = {S("k"), J(rows[r])};
        for (int i = 0; i < 6; i++)
            ck_assert_int_eq(qagg_step(&member[r % 2][i], q->items[i].expr, &qe, &rw, &err), 0);
    }
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 2; k++) {
            size_t n;
            const uint8_t *p = pack_partial(&member[k][i], &n);
            ck_assert_int_eq(qagg_merge(&gather[i], p, n), 0);
            qagg_free(&member[k][i]);
        }
    qvalue out[6];
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(qagg_result(&gather[i], &out[i]), 0);
    ck_assert(out[0].type == QT_INT && out[0].v.i == 4);
    ck_assert(out[1].type == QT_FLOAT && out[1].v.f == 42.5);
    ck_assert(out[2].type == QT_FLOAT && fabs(out[2].v.f - 42.5 / 3) < 1e-12);
    ck_assert(out[3].type == QT_STR && out[3].v.s.n == 3 && memcmp(out[3].v.s.p, "new", 3) == 0);
    ck_assert(out[4].type == QT_INT && out[4].v.i == 30);
    ck_assert(out[5].type == QT_INT && out[5].v.i == 2);
    for (int i = 0; i < 6; i++)
        qagg_free(&gather[i]);
}
END_TEST

static Suite *qeval_suite(void)
{
    Suite *s = suite_create("qeval");
    TCase *tc = tu_tcase(s, "names", 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, paths_and_undefined);
    tcase_add_test(tc, names_values_source);
    tcase_add_test(tc, names_keys_source);
    tcase_add_test(tc, names_entries_source);
    tcase_add_test(tc, null_row_and_params);
    tc = tu_tcase(s, "types", 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, comparisons);
    tcase_add_test(tc, like_and_in);
    tc = tu_tcase(s, "logic", 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, kleene_tables);
    tcase_add_test(tc, where_keeps_only_true);
    tcase_add_test(tc, logic_short_circuits);
    tc = tu_tcase(s, "arithmetic", 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, integer_arithmetic);
    tcase_add_test(tc, division_and_remainder);
    tcase_add_test(tc, float_arithmetic_and_unknowns);
    tcase_add_test(tc, aggregates_need_the_aggregator);
    tcase_add_test(tc, depth_is_bounded);
    tc = tu_tcase(s, "aggregates", 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, count_rules);
    tcase_add_test(tc, sum_avg_rules);
    tcase_add_test(tc, min_max_rules);
    tcase_add_test(tc, partials_merge_like_one_pass);
    tcase_add_test(tc, partial_of_a_partial);
    tcase_add_test(tc, merge_refuses_mismatches);
    tcase_add_test(tc, distinct_sets_are_bounded);
    tcase_add_test(tc, large_distinct_set);
    tcase_add_test(tc, step_and_init_from_nodes);
    tc = tu_tcase(s, "parsed", 30);
    tcase_add_checked_fixture(tc, setup, parsed_teardown);
    tcase_add_test(tc, parsed_expressions);
    tcase_add_test(tc, parsed_queries);
    return s;
}

int main(void)
{
    Suite *s = qeval_suite();
    return tu_run(&s, 1);
}
