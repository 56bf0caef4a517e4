/* qeval.c - the expression evaluator (qeval.h, docs/query.md). */
#include "region/qeval.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One evaluation: what every node needs, passed down the recursion. */
typedef struct ectx {
    const qenv *env;
    const qrow *row;
    qerror *err;
} ectx;

static int ev(const ectx *x, const qexpr *e, int depth, qvalue *out);

__attribute__((format(printf, 3, 4)))
static int fail(const ectx *x, const qexpr *e, const char *fmt, ...)
{
    if (x->err) {
        va_list ap;
        x->err->pos = e->pos;
        va_start(ap, fmt);
        vsnprintf(x->err->msg, sizeof x->err->msg, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static qvalue qv_uint(uint64_t u) { return (qvalue){.type = QT_UINT, .v.u = u}; }

/* ---- three-valued logic ---------------------------------------------------- */

/* 1 TRUE, 0 FALSE, -1 unknown (NULL, UNDEFINED, or not a boolean). */
static int truth(const qvalue *v)
{
    return v->type == QT_BOOL ? (int)v->v.b : -1;
}

static qvalue from_truth(int t) { return t < 0 ? qv_null() : qv_bool(t == 1); }

/* NOT: TRUE <-> FALSE, unknown stays unknown (as NULL). */
static qvalue not3(const qvalue *v)
{
    int t = truth(v);
    return from_truth(t < 0 ? -1 : !t);
}

/* A comparison's or arithmetic's unknown operand: true with *out UNDEFINED
 * when either is UNDEFINED, else NULL when either is NULL. */
static bool unknown_operand(const qvalue *a, const qvalue *b, qvalue *out)
{
    if (a->type == QT_UNDEFINED || b->type == QT_UNDEFINED) {
        *out = qv_undefined();
        return true;
    }
    if (a->type == QT_NULL || b->type == QT_NULL) {
        *out = qv_null();
        return true;
    }
    return false;
}

/* ---- names ------------------------------------------------------------------- */

static bool name_is(const qexpr *e, const char *s, size_t n)
{
    return e->name && e->name_len == n && memcmp(e->name, s, n) == 0;
}

static bool is_alias(const qenv *env, const qexpr *e)
{
    return e->kind == QX_IDENT && env->alias && name_is(e, env->alias, strlen(env->alias));
}

/* The entry alias of QSRC_ENTRIES, whose members are key and value. */
static bool is_entry_alias(const ectx *x, const qexpr *e)
{
    return x->env->source == QSRC_ENTRIES && is_alias(x->env, e);
}

static qvalue entry_member(const ectx *x, const char *name, size_t n)
{
    if (n == 3 && memcmp(name, "key", 3) == 0)
        return x->row->key;
    if (n == 5 && memcmp(name, "value", 5) == 0)
        return x->row->value;
    return qv_undefined();
}

/* An identifier, per the table in qeval.h. */
static qvalue ev_ident(const ectx *x, const qexpr *e)
{
    const qrow *row = x->row;
    switch (x->env->source) {
    case QSRC_VALUES:
        if (is_alias(x->env, e))
            return row->value;
        return qvalue_field(&row->value, e->name, e->name_len);
    case QSRC_KEYS:
        if (is_alias(x->env, e) || name_is(e, "key", 3))
            return row->key;
        return qvalue_field(&row->key, e->name, e->name_len);
    case QSRC_ENTRIES:
        if (is_alias(x->env, e))
            return qv_undefined();
        if (name_is(e, "key", 3) || name_is(e, "value", 5))
            return entry_member(x, e->name, e->name_len);
        return qvalue_field(&row->value, e->name, e->name_len);
    }
    return qv_undefined();
}

static int ev_field(const ectx *x, const qexpr *e, int depth, qvalue *out)
{
    qvalue base;
    if (is_entry_alias(x, e->a)) {
        *out = entry_member(x, e->name, e->name_len);
        return 0;
    }
    int rc = ev(x, e->a, depth, &base);
    if (!rc)
        *out = qvalue_field(&base, e->name, e->name_len);
    return rc;
}

static int ev_subscript(const ectx *x, const qexpr *e, int depth, qvalue *out)
{
    qvalue base = qv_undefined(), k;
    int rc = ev(x, e->b, depth, &k);
    if (rc)
        return rc;
    if (is_entry_alias(x, e->a)) {
        *out = k.type == QT_STR ? entry_member(x, (const char *)k.v.s.p, k.v.s.n) : qv_undefined();
        return 0;
    }
    rc = ev(x, e->a, depth, &base);
    if (!rc)
        *out = qvalue_subscript(&base, &k);
    return rc;
}

static int ev_param(const ectx *x, const qexpr *e, qvalue *out)
{
    if (e->param == 0 || e->param > x->env->nparams)
        return fail(x, e, "bind parameter $%u was not given (%u given)", (unsigned)e->param,
                    (unsigned)x->env->nparams);
    *out = x->env->params[e->param - 1];
    return 0;
}

/* ---- arithmetic ---------------------------------------------------------------- */

static double as_double(const qvalue *v)
{
    switch (v->type) {
    case QT_INT: return (double)v->v.i;
    case QT_UINT: return (double)v->v.u;
    default: return v->v.f;
    }
}

static qvalue float_op(qop op, double a, double b)
{
    switch (op) {
    case QOP_ADD: return qv_float(a + b);
    case QOP_SUB: return qv_float(a - b);
    case QOP_MUL: return qv_float(a * b);
    case QOP_DIV: return b == 0 ? qv_null() : qv_float(a / b);
    case QOP_MOD: return b == 0 ? qv_null() : qv_float(fmod(a, b));
    default: return qv_undefined();
    }
}

/* The exact result of a builtin overflow-checked operation, as an int64
 * when it fits, else as a uint64 (above INT64_MAX) when it fits; else
 * returns false. The builtins compute in infinite precision over operands
 * of mixed signedness, which is what int64 op uint64 needs. */
#define FIT(ovf, l, r, out)                                                                        \
    do {                                                                                           \
        int64_t i_;                                                                                \
        uint64_t u_;                                                                               \
        if (!ovf((l), (r), &i_)) {                                                                 \
            *(out) = qv_int(i_);                                                                   \
            return true;                                                                           \
        }                                                                                          \
        if (!ovf((l), (r), &u_)) {                                                                 \
            *(out) = qv_uint(u_);                                                                  \
            return true;                                                                           \
        }                                                                                          \
        return false;                                                                              \
    } while (0)

/* a op b over two integers (QT_INT or QT_UINT) for one of the builtins. */
#define INT_OP(fn, ovf)                                                                            \
    static bool fn(const qvalue *a, const qvalue *b, qvalue *out)                                  \
    {                                                                                              \
        if (a->type == QT_INT && b->type == QT_INT)                                                \
            FIT(ovf, a->v.i, b->v.i, out);                                                         \
        if (a->type == QT_INT)                                                                     \
            FIT(ovf, a->v.i, b->v.u, out);                                                         \
        if (b->type == QT_INT)                                                                     \
            FIT(ovf, a->v.u, b->v.i, out);                                                         \
        FIT(ovf, a->v.u, b->v.u, out);                                                             \
    }

INT_OP(int_add, __builtin_add_overflow)
INT_OP(int_sub, __builtin_sub_overflow)
INT_OP(int_mul, __builtin_mul_overflow)

/* An integer as sign and magnitude (|INT64_MIN| = 2^63 fits). */
static uint64_t magnitude(const qvalue *v, bool *neg)
{
    *neg = v->type == QT_INT && v->v.i < 0;
    if (v->type != QT_INT)
        return v->v.u;
    return *neg ? 0 - (uint64_t)v->v.i : (uint64_t)v->v.i;
}

/* A magnitude with a sign back to a value: a negative one is at most 2^63
 * here (a quotient or remainder of a dividend of at most that size). */
static qvalue signed_result(uint64_t m, bool neg)
{
    if (neg)
        return qv_int(m == 0 ? 0 : (int64_t)(0 - m));
    return m <= INT64_MAX ? qv_int((int64_t)m) : qv_uint(m);
}

/* Integer / and %: truncation toward zero, remainder with the dividend's
 * sign, NULL for a zero divisor. Sign and magnitude avoid INT64_MIN / -1
 * (whose quotient 2^63 is a uint64). */
static qvalue int_divmod(qop op, const qvalue *a, const qvalue *b)
{
    bool na, nb;
    uint64_t ma = magnitude(a, &na), mb = magnitude(b, &nb);
    if (mb == 0)
        return qv_null();
    if (op == QOP_DIV)
        return signed_result(ma / mb, na != nb);
    return signed_result(ma % mb, na);
}

static qvalue int_op(qop op, const qvalue *a, const qvalue *b)
{
    qvalue r;
    bool ok;
    switch (op) {
    case QOP_ADD: ok = int_add(a, b, &r); break;
    case QOP_SUB: ok = int_sub(a, b, &r); break;
    case QOP_MUL: ok = int_mul(a, b, &r); break;
    default: return int_divmod(op, a, b);
    }
    /* outside 64 bits: the float of the same operation */
    return ok ? r : float_op(op, as_double(a), as_double(b));
}

static qvalue arith(qop op, const qvalue *a, const qvalue *b)
{
    qvalue r;
    if (unknown_operand(a, b, &r))
        return r;
    if (!qvalue_is_number(a) || !qvalue_is_number(b))
        return qv_undefined();
    if (a->type == QT_FLOAT || b->type == QT_FLOAT)
        return float_op(op, as_double(a), as_double(b));
    return int_op(op, a, b);
}

static qvalue negate(const qvalue *a)
{
    switch (a->type) {
    case QT_UNDEFINED: case QT_NULL: return *a;
    case QT_FLOAT: return qv_float(-a->v.f);
    case QT_INT: return a->v.i == INT64_MIN ? qv_uint((uint64_t)1 << 63) : qv_int(-a->v.i);
    case QT_UINT:
        if (a->v.u == (uint64_t)1 << 63)
            return qv_int(INT64_MIN);
        return a->v.u < (uint64_t)1 << 63 ? qv_int(-(int64_t)a->v.u) : qv_float(-(double)a->v.u);
    default: return qv_undefined();
    }
}

/* ---- comparison -------------------------------------------------------------- */

static qvalue compare(qop op, const qvalue *a, const qvalue *b)
{
    qvalue r;
    int c;
    if (unknown_operand(a, b, &r))
        return r;
    if (!qvalue_compare(a, b, &c))
        return qv_bool(false);
    bool container = a->type == QT_ARRAY || a->type == QT_MAP;
    switch (op) {
    case QOP_EQ: return qv_bool(c == 0);
    case QOP_NE: return qv_bool(c != 0);
    case QOP_LT: return qv_bool(!container && c < 0);
    case QOP_LE: return qv_bool(!container && c <= 0);
    case QOP_GT: return qv_bool(!container && c > 0);
    case QOP_GE: return qv_bool(!container && c >= 0);
    default: return qv_undefined();
    }
}

static qvalue like(const qvalue *s, const qvalue *pat)
{
    qvalue r;
    if (unknown_operand(s, pat, &r))
        return r;
    if ((s->type != QT_STR && s->type != QT_BIN) || pat->type != QT_STR)
        return qv_bool(false);
    return qv_bool(qvalue_like(s->v.s.p, s->v.s.n, pat->v.s.p, pat->v.s.n));
}

/* ---- operators ------------------------------------------------------------------ */

/* AND / OR with Kleene's rules; the right operand is skipped when the left
 * one decides. */
static int ev_logic(const ectx *x, const qexpr *e, int depth, qvalue *out)
{
    qvalue a, b;
    int decisive = e->op == QOP_OR; /* TRUE decides OR, FALSE decides AND */
    int rc = ev(x, e->a, depth, &a);
    if (rc)
        return rc;
    int ta = truth(&a);
    if (ta == decisive) {
        *out = qv_bool(decisive);
        return 0;
    }
    if ((rc = ev(x, e->b, depth, &b)))
        return rc;
    int tb = truth(&b);
    if (tb == decisive)
        *out = qv_bool(decisive);
    else
        *out = from_truth(ta < 0 || tb < 0 ? -1 : !decisive);
    return 0;
}

static int ev_binary(const ectx *x, const qexpr *e, int depth, qvalue *out)
{
    qvalue a, b;
    if (e->op == QOP_AND || e->op == QOP_OR)
        return ev_logic(x, e, depth, out);
    int rc = ev(x, e->a, depth, &a);
    if (!rc)
        rc = ev(x, e->b, depth, &b);
    if (rc)
        return rc;
    switch (e->op) {
    case QOP_ADD: case QOP_SUB: case QOP_MUL: case QOP_DIV: case QOP_MOD:
        *out = arith(e->op, &a, &b);
        return 0;
    case QOP_EQ: case QOP_NE: case QOP_LT: case QOP_LE: case QOP_GT: case QOP_GE:
        *out = compare(e->op, &a, &b);
        return 0;
    case QOP_LIKE:
        *out = like(&a, &b);
        if (e->negated)
            *out = not3(out);
        return 0;
    default:
        return fail(x, e, "unknown binary operator %d", (int)e->op);
    }
}

static int ev_unary(const ectx *x, const qexpr *e, int depth, qvalue *out)
{
    qvalue a;
    int rc = ev(x, e->a, depth, &a);
    if (rc)
        return rc;
    if (e->op == QOP_NOT)
        *out = not3(&a);
    else if (e->op == QOP_NEG)
        *out = negate(&a);
    else
        return fail(x, e, "unknown unary operator %d", (int)e->op);
    return 0;
}

/* x IN (a, b, ...) is x = a OR x = b ...: TRUE at the first equal element,
 * else unknown (NULL) when some comparison was unknown, else FALSE. */
static int ev_in(const ectx *x, const qexpr *e, int depth, qvalue *out)
{
    qvalue a, item;
    int rc = ev(x, e->a, depth, &a);
    if (rc)
        return rc;
    int result = 0;
    for (uint32_t i = 0; i < e->nlist && result != 1; i++) {
        if ((rc = ev(x, e->list[i], depth, &item)))
            return rc;
        qvalue eq = compare(QOP_EQ, &a, &item);
        int t = truth(&eq);
        if (t != 0)
            result = t;
    }
    *out = from_truth(result);
    if (e->negated)
        *out = not3(out);
    return 0;
}

static int ev_is(const ectx *x, const qexpr *e, int depth, qvalue *out)
{
    qvalue a;
    bool r;
    int rc = ev(x, e->a, depth, &a);
    if (rc)
        return rc;
    switch (e->op) {
    case QOP_IS_NULL: r = a.type == QT_NULL; break;
    case QOP_IS_DEFINED: r = a.type != QT_UNDEFINED; break;
    case QOP_IS_UNDEFINED: r = a.type == QT_UNDEFINED; break;
    default: return fail(x, e, "unknown test %d", (int)e->op);
    }
    *out = qv_bool(r != e->negated);
    return 0;
}

static const char *agg_name(qagg a)
{
    static const char *const names[] = {"COUNT", "SUM", "AVG", "MIN", "MAX"};
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "aggregate";
}

static int ev_aggregate(const ectx *x, const qexpr *e, qvalue *out)
{
    if (!x->env->aggregate)
        return fail(x, e, "%s is an aggregate, not allowed here", agg_name(e->agg));
    return x->env->aggregate(x->env->agg_ctx, e, out, x->err);
}

static int ev(const ectx *x, const qexpr *e, int depth, qvalue *out)
{
    if (++depth > QEVAL_MAX_DEPTH)
        return fail(x, e, "expression nested deeper than %d", QEVAL_MAX_DEPTH);
    switch (e->kind) {
    case QX_LITERAL: *out = e->lit; return 0;
    case QX_PARAM: return ev_param(x, e, out);
    case QX_IDENT: *out = ev_ident(x, e); return 0;
    case QX_FIELD: return ev_field(x, e, depth, out);
    case QX_SUBSCRIPT: return ev_subscript(x, e, depth, out);
    case QX_UNARY: return ev_unary(x, e, depth, out);
    case QX_BINARY: return ev_binary(x, e, depth, out);
    case QX_IN: return ev_in(x, e, depth, out);
    case QX_IS: return ev_is(x, e, depth, out);
    case QX_AGGREGATE: return ev_aggregate(x, e, out);
    }
    return fail(x, e, "unknown expression node %d", (int)e->kind);
}

int qeval(const qexpr *e, const qenv *env, const qrow *row, qvalue *out, qerror *err)
{
    static const qrow empty = {{.type = QT_UNDEFINED}, {.type = QT_UNDEFINED}};
    ectx x = {env, row ? row : &empty, err};
    return ev(&x, e, 0, out);
}

int qeval_match(const qexpr *e, const qenv *env, const qrow *row, bool *match, qerror *err)
{
    qvalue v;
    int rc = qeval(e, env, row, &v, err);
    *match = rc == 0 && v.type == QT_BOOL && v.v.b;
    return rc;
}
