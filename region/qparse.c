/* qparse.c - the query parser and formatter; see qast.h and docs/query.md.
 *
 * Recursive descent, one function per precedence level, from the loosest:
 *
 *   expr    := or
 *   or      := and (OR and)*
 *   and     := not (AND not)*
 *   not     := NOT not | cmp
 *   cmp     := add [cmpop add | [NOT] IN (expr, ...) | [NOT] LIKE add | IS [NOT] NULL]
 *   add     := mul ((+|-) mul)*
 *   mul     := unary ((*|/|%) unary)*
 *   unary   := - unary | postfix
 *   postfix := primary (. name | [ expr ])*
 *   primary := number | string | $n | TRUE | FALSE | NULL | UNDEFINED
 *            | name | func ( args ) | ( expr )
 *
 * Comparisons do not chain (a < b < c is refused, not read as (a < b) < c).
 * Function names (COUNT, SUM, AVG, MIN, MAX, IS_DEFINED, IS_UNDEFINED) are
 * not reserved: they are functions only when followed by '(', so a field
 * may be called count.
 *
 * Every node and string goes into one arena; an error abandons the whole
 * arena, so no partial tree is ever unwound. The first error is the one
 * reported. Two limits keep every later recursive walk (validation here,
 * the evaluator, the formatter) within a small stack: parser recursion
 * (parentheses, unary chains) and tree height are both at most
 * QAST_MAX_DEPTH. */
#include "region/qast.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "region/qarena.h"
#include "region/qlex.h"

/* A qexpr with its height (a leaf is 1), which the depth limit needs.
 * Every qexpr the parser makes is the first member of one of these. */
typedef struct qnode {
    qexpr e;
    uint32_t height;
} qnode;

typedef struct parser {
    qlex lx;
    qtoken tok;      /* the current token, not consumed yet */
    qtoken prev;     /* the last consumed one, for "after X" in messages */
    bool has_prev;
    const char *text;
    struct qarena *arena;
    qerror *err;
    int rc;          /* 0, or the first error: -EINVAL, -ENOMEM */
    int depth;       /* current recursion depth, against QAST_MAX_DEPTH */
    uint32_t nparams;
    const char *end_name; /* how the end of the text is called in messages */
} parser;

/* A short description of a token for messages, returned by value so that
 * it can be built inside a call's argument list. */
typedef struct tokname {
    char s[64];
} tokname;

/* ---- errors ---------------------------------------------------------- */

/* Records an -EINVAL error at pos unless one is recorded already (the
 * first error is the one that explains the others). Returns NULL so that
 * parse functions can `return fail(...)`. */
static void *fail(parser *p, uint32_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void *fail(parser *p, uint32_t pos, const char *fmt, ...)
{
    if (p->rc)
        return NULL;
    p->rc = -EINVAL;
    p->err->pos = pos;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
    va_end(ap);
    return NULL;
}

/* Records -ENOMEM (unless an error came first); returns NULL. */
static void *nomem(parser *p)
{
    if (!p->rc) {
        p->rc = -ENOMEM;
        p->err->pos = 0;
        snprintf(p->err->msg, sizeof(p->err->msg), "out of memory");
    }
    return NULL;
}

/* text[0..n) quoted, cut at 40 bytes, with control and non-ASCII bytes
 * shown as '?' so that a message stays printable. */
static tokname quoted(const char *text, uint32_t n)
{
    tokname t;
    size_t k = 0;
    t.s[k++] = '\'';
    for (uint32_t i = 0; i < n && i < 40; i++) {
        unsigned char c = (unsigned char)text[i];
        t.s[k++] = c >= ' ' && c < 0x7f ? (char)c : '?';
    }
    if (n > 40) {
        memcpy(t.s + k, "...", 3);
        k += 3;
    }
    t.s[k++] = '\'';
    t.s[k] = 0;
    return t;
}

/* What the current token is, for "found X": its text, or the end. */
static tokname found(const parser *p)
{
    if (p->tok.kind == QTK_EOF) {
        tokname t;
        snprintf(t.s, sizeof(t.s), "%s", p->end_name);
        return t;
    }
    return quoted(p->text + p->tok.pos, p->tok.len);
}

/* What the last consumed token is, for "after X": a keyword by its
 * upper-case name (after WHERE), anything else quoted (after '='). */
static tokname after(const parser *p)
{
    tokname t;
    if (p->prev.kind == QTK_KEYWORD) {
        snprintf(t.s, sizeof(t.s), "%s", qlex_keyword_name(p->prev.kw));
        return t;
    }
    return quoted(p->text + p->prev.pos, p->prev.len);
}

/* ---- tokens ---------------------------------------------------------- */

/* Consumes the current token. A lexical error in the next one is
 * recorded at once: it is the first thing wrong in the text. */
static void advance(parser *p)
{
    p->prev = p->tok;
    p->has_prev = true;
    qlex_next(&p->lx, &p->tok);
    if (p->tok.kind == QTK_ERROR)
        fail(p, p->tok.pos, "%s", p->lx.msg);
}

/* Whether the current token is of kind k / is the keyword k. */
static bool is_tok(const parser *p, qtok k) { return p->tok.kind == k; }
static bool is_kw(const parser *p, qkw k)
{
    return p->tok.kind == QTK_KEYWORD && p->tok.kw == k;
}

/* Consumes the keyword k if it is the current token. */
static bool accept_kw(parser *p, qkw k)
{
    if (!is_kw(p, k))
        return false;
    advance(p);
    return true;
}

/* The kind of the token after the current one, without consuming
 * anything (the lexer is copied). */
static qtok peek_kind(const parser *p)
{
    qlex copy = p->lx;
    qtoken t;
    qlex_next(&copy, &t);
    return t.kind;
}

/* Whether the current token can begin an expression. */
static bool starts_expr(const parser *p)
{
    switch (p->tok.kind) {
    case QTK_NUMBER: case QTK_STRING: case QTK_PARAM: case QTK_LPAREN: case QTK_IDENT:
    case QTK_MINUS:
        return true;
    case QTK_KEYWORD:
        return p->tok.kw == QKW_NOT || p->tok.kw == QKW_TRUE || p->tok.kw == QKW_FALSE ||
               p->tok.kw == QKW_NULL || p->tok.kw == QKW_UNDEFINED;
    default:
        return false;
    }
}

/* The current token's text copied into the arena (a name). */
static char *tok_dup(parser *p, uint32_t skip)
{
    char *s = qarena_strndup(p->arena, p->text + p->tok.pos + skip, p->tok.len - skip);
    return s ? s : nomem(p);
}

/* ---- nodes ----------------------------------------------------------- */

static uint32_t height(const qexpr *e)
{
    return e ? ((const qnode *)(const void *)e)->height : 0;
}

/* A new leaf node; NULL when out of memory. */
static qexpr *node(parser *p, qexpr_kind kind, uint32_t pos)
{
    qnode *n = qarena_alloc(p->arena, sizeof(*n));
    if (!n)
        return nomem(p);
    n->e.kind = kind;
    n->e.pos = pos;
    n->height = 1;
    return &n->e;
}

/* Sets e's height from its children, once they are linked, and refuses a
 * tree taller than QAST_MAX_DEPTH (a long a + b + c ... chain is as tall
 * as it is long), pointing at `at`. Returns e or NULL. */
static qexpr *seal(parser *p, qexpr *e, uint32_t at)
{
    uint32_t h = height(e->a) > height(e->b) ? height(e->a) : height(e->b);
    for (uint32_t i = 0; i < e->nlist; i++)
        if (height(e->list[i]) > h)
            h = height(e->list[i]);
    ((qnode *)(void *)e)->height = h + 1;
    if (h + 1 > QAST_MAX_DEPTH)
        return fail(p, at, "expression too deep (more than %d levels of operators)",
                    QAST_MAX_DEPTH);
    return e;
}

/* a op b; NULL when either operand failed. `at` is the operator. */
static qexpr *binary(parser *p, qop op, qexpr *a, qexpr *b, uint32_t at)
{
    if (!a || !b)
        return NULL;
    qexpr *e = node(p, QX_BINARY, a->pos);
    if (!e)
        return NULL;
    e->op = op;
    e->a = a;
    e->b = b;
    return seal(p, e, at);
}

/* op a for QOP_NOT and QOP_NEG, starting at pos. */
static qexpr *unary(parser *p, qop op, qexpr *a, uint32_t pos)
{
    if (!a)
        return NULL;
    qexpr *e = node(p, QX_UNARY, pos);
    if (!e)
        return NULL;
    e->op = op;
    e->a = a;
    return seal(p, e, pos);
}

/* Negates a numeric literal in place, so that -7 is the literal -7 (and
 * -9223372036854775808 fits QT_INT). False when the result would not be
 * a literal: not a number, or a QT_UINT below INT64_MIN. */
static bool fold_neg(qvalue *v)
{
    switch (v->type) {
    case QT_INT:
        if (v->v.i == INT64_MIN)
            *v = (qvalue){.type = QT_UINT, .v.u = (uint64_t)INT64_MAX + 1};
        else
            v->v.i = -v->v.i;
        return true;
    case QT_UINT:
        if (v->v.u != (uint64_t)INT64_MAX + 1)
            return false;
        *v = qv_int(INT64_MIN);
        return true;
    case QT_FLOAT:
        v->v.f = -v->v.f;
        return true;
    default:
        return false;
    }
}

/* -a, folded into the literal when a is a number. */
static qexpr *negate(parser *p, qexpr *a, uint32_t pos)
{
    if (a && a->kind == QX_LITERAL && fold_neg(&a->lit)) {
        a->pos = pos;
        return a;
    }
    return unary(p, QOP_NEG, a, pos);
}

/* The first aggregate in e (preorder), or NULL. The tree's height is
 * bounded, so is the recursion. */
static const qexpr *find_agg(const qexpr *e)
{
    if (!e)
        return NULL;
    if (e->kind == QX_AGGREGATE)
        return e;
    const qexpr *f = find_agg(e->a);
    if (!f)
        f = find_agg(e->b);
    for (uint32_t i = 0; !f && i < e->nlist; i++)
        f = find_agg(e->list[i]);
    return f;
}

/* Refuses an aggregate anywhere in e; `where` names the place. */
static bool no_aggregate(parser *p, const qexpr *e, const char *where)
{
    const qexpr *a = find_agg(e);
    if (a)
        fail(p, a->pos, "aggregates are not allowed in %s", where);
    return !a;
}

/* A growable array in the arena (the old copies stay in the arena until it
 * is freed: at most as much again as the final array). */
typedef struct vec {
    void *items;
    uint32_t n, cap;
} vec;

/* Appends the size bytes at item to v. */
static bool vec_push(parser *p, vec *v, const void *item, size_t size)
{
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 4;
        void *bigger = qarena_alloc(p->arena, (size_t)cap * size);
        if (!bigger)
            return nomem(p) != NULL;
        if (v->n)
            memcpy(bigger, v->items, (size_t)v->n * size);
        v->items = bigger;
        v->cap = cap;
    }
    memcpy((char *)v->items + (size_t)v->n * size, item, size);
    v->n++;
    return true;
}

/* ---- expressions ------------------------------------------------------ */

static qexpr *parse_expr(parser *p);

/* Counts one level of recursion; false (error recorded) past the limit.
 * The caller undoes it with p->depth-- whatever the answer. */
static bool enter(parser *p)
{
    if (++p->depth <= QAST_MAX_DEPTH)
        return true;
    fail(p, p->tok.pos, "expression nested too deeply (more than %d levels)", QAST_MAX_DEPTH);
    return false;
}

/* The error for a token that cannot start an expression. */
static qexpr *expected_expr(parser *p)
{
    if (!p->has_prev)
        return fail(p, p->tok.pos, "expected an expression, found %s", found(p).s);
    return fail(p, p->tok.pos, "expected an expression after %s, found %s", after(p).s,
                found(p).s);
}

/* A literal node holding v. */
static qexpr *literal(parser *p, qvalue v, uint32_t pos)
{
    qexpr *e = node(p, QX_LITERAL, pos);
    if (e)
        e->lit = v;
    return e;
}

/* 'text': the unquoted bytes go into the arena (NUL-terminated too). */
static qexpr *string_literal(parser *p)
{
    char *s = qarena_alloc(p->arena, p->tok.len);
    if (!s)
        return nomem(p);
    size_t n = qlex_unquote(p->text, &p->tok, s);
    uint32_t pos = p->tok.pos;
    advance(p);
    return literal(p, qv_str(s, (uint32_t)n), pos);
}

/* $n, n >= 1; notes the highest n. */
static qexpr *param(parser *p)
{
    if (p->tok.param == 0)
        return fail(p, p->tok.pos, "parameters are numbered from $1, found '$0'");
    qexpr *e = node(p, QX_PARAM, p->tok.pos);
    if (!e)
        return NULL;
    e->param = p->tok.param;
    if (e->param > p->nparams)
        p->nparams = e->param;
    advance(p);
    return e;
}

/* ( expr ): no node of its own, the tree's shape keeps the grouping. */
static qexpr *parens(parser *p)
{
    uint32_t open = p->tok.pos;
    advance(p);
    qexpr *e = parse_expr(p);
    if (!e)
        return NULL;
    if (!is_tok(p, QTK_RPAREN))
        return fail(p, p->tok.pos, "expected ')' to match the '(' at %u, found %s", open,
                    found(p).s);
    advance(p);
    return e;
}

/* TRUE, FALSE, NULL, UNDEFINED; any other keyword is not an expression. */
static qexpr *keyword_literal(parser *p)
{
    qvalue v;
    switch (p->tok.kw) {
    case QKW_TRUE: v = qv_bool(true); break;
    case QKW_FALSE: v = qv_bool(false); break;
    case QKW_NULL: v = qv_null(); break;
    case QKW_UNDEFINED: v = qv_undefined(); break;
    default: return expected_expr(p);
    }
    uint32_t pos = p->tok.pos;
    advance(p);
    return literal(p, v, pos);
}

/* A bare name: an alias, or a field of the iterated value. */
static qexpr *ident(parser *p)
{
    qexpr *e = node(p, QX_IDENT, p->tok.pos);
    if (!e || !(e->name = tok_dup(p, 0)))
        return NULL;
    e->name_len = p->tok.len;
    advance(p);
    return e;
}

typedef struct qfunc {
    const char *name;
    qexpr_kind kind; /* QX_AGGREGATE or QX_IS */
    qagg agg;        /* QX_AGGREGATE */
    qop op;          /* QX_IS */
} qfunc;

/* The aggregates come first, in qagg order: funcs[e->agg].name names an
 * aggregate node in messages. */
static const qfunc funcs[] = {
    {"COUNT", QX_AGGREGATE, QAGG_COUNT, QOP_NONE},
    {"SUM", QX_AGGREGATE, QAGG_SUM, QOP_NONE},
    {"AVG", QX_AGGREGATE, QAGG_AVG, QOP_NONE},
    {"MIN", QX_AGGREGATE, QAGG_MIN, QOP_NONE},
    {"MAX", QX_AGGREGATE, QAGG_MAX, QOP_NONE},
    {"IS_DEFINED", QX_IS, QAGG_COUNT, QOP_IS_DEFINED},
    {"IS_UNDEFINED", QX_IS, QAGG_COUNT, QOP_IS_UNDEFINED},
};
#define NFUNCS (sizeof(funcs) / sizeof(funcs[0]))

/* The function named by the current token (case-insensitive), or NULL. */
static const qfunc *find_func(const parser *p)
{
    for (size_t i = 0; i < NFUNCS; i++)
        if (qlex_word_is(p->text + p->tok.pos, p->tok.len, funcs[i].name))
            return &funcs[i];
    return NULL;
}

/* The argument of an aggregate, the current token being the one after
 * '(': [DISTINCT] expr, or * for COUNT. Sets e->a and e->distinct. */
static bool agg_argument(parser *p, qexpr *e)
{
    if (e->agg == QAGG_COUNT && is_tok(p, QTK_STAR)) {
        advance(p);
        return true;
    }
    e->distinct = accept_kw(p, QKW_DISTINCT);
    if (!(e->a = parse_expr(p)))
        return false;
    const qexpr *inner = find_agg(e->a);
    if (inner)
        fail(p, inner->pos, "aggregates cannot be nested: %s inside %s",
             funcs[inner->agg].name, funcs[e->agg].name);
    return !inner;
}

/* name ( args ): an aggregate or IS_DEFINED / IS_UNDEFINED. The current
 * token is the name, and the next one is '('. */
static qexpr *call(parser *p)
{
    const qfunc *f = find_func(p);
    if (!f)
        return fail(p, p->tok.pos,
                    "unknown function %s (expected COUNT, SUM, AVG, MIN, MAX, IS_DEFINED or "
                    "IS_UNDEFINED)", found(p).s);
    qexpr *e = node(p, f->kind, p->tok.pos);
    if (!e)
        return NULL;
    e->agg = f->agg;
    e->op = f->op;
    advance(p); /* the name */
    advance(p); /* ( */
    if (f->kind == QX_AGGREGATE ? !agg_argument(p, e) : !(e->a = parse_expr(p)))
        return NULL;
    if (!is_tok(p, QTK_RPAREN))
        return fail(p, p->tok.pos, "expected ')' after the argument of %s, found %s", f->name,
                    found(p).s);
    advance(p);
    return seal(p, e, e->pos);
}

/* primary: a literal, $n, a name, a call or ( expr ). */
static qexpr *parse_primary(parser *p)
{
    switch (p->tok.kind) {
    case QTK_NUMBER: {
        qtoken t = p->tok;
        advance(p);
        return literal(p, t.num, t.pos);
    }
    case QTK_STRING: return string_literal(p);
    case QTK_PARAM: return param(p);
    case QTK_LPAREN: return parens(p);
    case QTK_KEYWORD: return keyword_literal(p);
    case QTK_IDENT: return peek_kind(p) == QTK_LPAREN ? call(p) : ident(p);
    default: return expected_expr(p);
    }
}

/* base . name; any word, keywords included, names a field (o.order). */
static qexpr *field(parser *p, qexpr *base)
{
    uint32_t dot = p->tok.pos;
    advance(p);
    if (!is_tok(p, QTK_IDENT) && !is_tok(p, QTK_KEYWORD))
        return fail(p, p->tok.pos, "expected a field name after '.', found %s", found(p).s);
    qexpr *e = node(p, QX_FIELD, base->pos);
    if (!e || !(e->name = tok_dup(p, 0)))
        return NULL;
    e->name_len = p->tok.len;
    e->a = base;
    advance(p);
    return seal(p, e, dot);
}

/* base [ expr ] */
static qexpr *subscript(parser *p, qexpr *base)
{
    uint32_t open = p->tok.pos;
    advance(p);
    qexpr *k = parse_expr(p);
    if (!k)
        return NULL;
    if (!is_tok(p, QTK_RBRACKET))
        return fail(p, p->tok.pos, "expected ']' to match the '[' at %u, found %s", open,
                    found(p).s);
    advance(p);
    qexpr *e = node(p, QX_SUBSCRIPT, base->pos);
    if (!e)
        return NULL;
    e->a = base;
    e->b = k;
    return seal(p, e, open);
}

/* postfix: primary followed by any number of .name and [expr]. */
static qexpr *parse_postfix(parser *p)
{
    qexpr *e = parse_primary(p);
    while (e) {
        if (is_tok(p, QTK_DOT))
            e = field(p, e);
        else if (is_tok(p, QTK_LBRACKET))
            e = subscript(p, e);
        else
            break;
    }
    return e;
}

/* unary: - unary | postfix; each '-' is one level of recursion. */
static qexpr *parse_unary(parser *p)
{
    if (!is_tok(p, QTK_MINUS))
        return parse_postfix(p);
    uint32_t pos = p->tok.pos;
    advance(p);
    qexpr *a = enter(p) ? parse_unary(p) : NULL;
    p->depth--;
    return a ? negate(p, a, pos) : NULL;
}

/* The operator of a * / % token, or QOP_NONE. */
static qop mul_op(qtok k)
{
    return k == QTK_STAR      ? QOP_MUL
           : k == QTK_SLASH   ? QOP_DIV
           : k == QTK_PERCENT ? QOP_MOD
                              : QOP_NONE;
}

/* mul: unary ((*|/|%) unary)*, left-associative. */
static qexpr *parse_mul(parser *p)
{
    qexpr *e = parse_unary(p);
    qop op;
    while (e && (op = mul_op(p->tok.kind)) != QOP_NONE) {
        uint32_t at = p->tok.pos;
        advance(p);
        e = binary(p, op, e, parse_unary(p), at);
    }
    return e;
}

/* add: mul ((+|-) mul)*, left-associative. */
static qexpr *parse_add(parser *p)
{
    qexpr *e = parse_mul(p);
    while (e && (is_tok(p, QTK_PLUS) || is_tok(p, QTK_MINUS))) {
        qop op = is_tok(p, QTK_PLUS) ? QOP_ADD : QOP_SUB;
        uint32_t at = p->tok.pos;
        advance(p);
        e = binary(p, op, e, parse_mul(p), at);
    }
    return e;
}

/* The operator of a comparison token (= <> != < <= > >=), or QOP_NONE. */
static qop cmp_op(qtok k)
{
    switch (k) {
    case QTK_EQ: return QOP_EQ;
    case QTK_NE: return QOP_NE;
    case QTK_LT: return QOP_LT;
    case QTK_LE: return QOP_LE;
    case QTK_GT: return QOP_GT;
    case QTK_GE: return QOP_GE;
    default: return QOP_NONE;
    }
}

/* a [NOT] IN ( expr, ... ); the current token is IN. */
static qexpr *in_list(parser *p, qexpr *a, bool negated, uint32_t at)
{
    advance(p);
    if (!is_tok(p, QTK_LPAREN))
        return fail(p, p->tok.pos, "expected '(' after IN, found %s", found(p).s);
    vec v = {0};
    do {
        advance(p); /* ( or , */
        qexpr *item = parse_expr(p);
        if (!item || !vec_push(p, &v, &item, sizeof(item)))
            return NULL;
    } while (is_tok(p, QTK_COMMA));
    if (!is_tok(p, QTK_RPAREN))
        return fail(p, p->tok.pos, "expected ',' or ')' in the IN list, found %s", found(p).s);
    advance(p);
    qexpr *e = node(p, QX_IN, a->pos);
    if (!e)
        return NULL;
    e->a = a;
    e->list = v.items;
    e->nlist = v.n;
    e->negated = negated;
    return seal(p, e, at);
}

/* a IS [NOT] NULL; the current token is IS. */
static qexpr *is_null(parser *p, qexpr *a)
{
    uint32_t at = p->tok.pos;
    advance(p);
    bool negated = accept_kw(p, QKW_NOT);
    if (!accept_kw(p, QKW_NULL))
        return fail(p, p->tok.pos, "expected %s after IS%s, found %s",
                    negated ? "NULL" : "NULL or NOT NULL", negated ? " NOT" : "", found(p).s);
    qexpr *e = node(p, QX_IS, a->pos);
    if (!e)
        return NULL;
    e->op = QOP_IS_NULL;
    e->negated = negated;
    e->a = a;
    return seal(p, e, at);
}

/* The comparison that may follow the operand l, or l itself. */
static qexpr *cmp_tail(parser *p, qexpr *l)
{
    uint32_t at = p->tok.pos;
    qop op = cmp_op(p->tok.kind);
    if (op != QOP_NONE) {
        advance(p);
        return binary(p, op, l, parse_add(p), at);
    }
    if (is_kw(p, QKW_IS))
        return is_null(p, l);
    bool negated = accept_kw(p, QKW_NOT);
    if (negated && !is_kw(p, QKW_IN) && !is_kw(p, QKW_LIKE))
        return fail(p, p->tok.pos, "expected IN or LIKE after NOT, found %s", found(p).s);
    if (is_kw(p, QKW_IN))
        return in_list(p, l, negated, at);
    if (!is_kw(p, QKW_LIKE))
        return l;
    advance(p);
    qexpr *e = binary(p, QOP_LIKE, l, parse_add(p), at);
    if (e)
        e->negated = negated;
    return e;
}

/* Whether the current token would start a comparison. */
static bool at_comparison(const parser *p)
{
    return cmp_op(p->tok.kind) != QOP_NONE || is_kw(p, QKW_IN) || is_kw(p, QKW_LIKE) ||
           is_kw(p, QKW_IS);
}

/* cmp: add, then at most one comparison (they do not chain). */
static qexpr *parse_cmp(parser *p)
{
    qexpr *e = parse_add(p);
    if (!e)
        return NULL;
    bool compared = at_comparison(p) || is_kw(p, QKW_NOT);
    if (!(e = cmp_tail(p, e)))
        return NULL;
    if (compared && at_comparison(p))
        return fail(p, p->tok.pos,
                    "expected AND or OR after a comparison, found %s (comparisons do not chain)",
                    found(p).s);
    return e;
}

/* not: NOT not | cmp; each NOT is one level of recursion. */
static qexpr *parse_not(parser *p)
{
    if (!is_kw(p, QKW_NOT))
        return parse_cmp(p);
    uint32_t pos = p->tok.pos;
    advance(p);
    qexpr *a = enter(p) ? parse_not(p) : NULL;
    p->depth--;
    return unary(p, QOP_NOT, a, pos);
}

/* operand (KW operand)*, left-associative, as op nodes. */
static qexpr *parse_chain(parser *p, qkw kw, qop op, qexpr *(*operand)(parser *p))
{
    qexpr *e = operand(p);
    while (e && is_kw(p, kw)) {
        uint32_t at = p->tok.pos;
        advance(p);
        e = binary(p, op, e, operand(p), at);
    }
    return e;
}

/* and: not (AND not)*. */
static qexpr *parse_and(parser *p) { return parse_chain(p, QKW_AND, QOP_AND, parse_not); }

/* or: and (OR and)*. */
static qexpr *parse_or(parser *p) { return parse_chain(p, QKW_OR, QOP_OR, parse_and); }

/* A whole expression; each nested one (parentheses, subscripts, function
 * arguments, IN lists) counts against QAST_MAX_DEPTH. */
static qexpr *parse_expr(parser *p)
{
    qexpr *e = enter(p) ? parse_or(p) : NULL;
    p->depth--;
    return e;
}

/* ---- statements ------------------------------------------------------- */

/* A name after AS or an alias: an identifier, never a keyword. */
static const char *name(parser *p, const char *what)
{
    if (is_tok(p, QTK_KEYWORD))
        return fail(p, p->tok.pos, "expected %s, found the keyword %s", what, found(p).s);
    if (!is_tok(p, QTK_IDENT))
        return fail(p, p->tok.pos, "expected %s, found %s", what, found(p).s);
    const char *s = tok_dup(p, 0);
    if (s)
        advance(p);
    return s;
}

/* One select item: expr [AS name]. */
static bool select_item(parser *p, vec *items)
{
    qitem it = {.pos = p->tok.pos};
    if (!items->n && !starts_expr(p)) {
        fail(p, p->tok.pos, "expected * or an expression after %s, found %s", after(p).s,
             found(p).s);
        return false;
    }
    if (!(it.expr = parse_expr(p)))
        return false;
    if (accept_kw(p, QKW_AS) && !(it.as = name(p, "a name after AS")))
        return false;
    return vec_push(p, items, &it, sizeof(it));
}

/* SELECT [DISTINCT] * | item, ... */
static bool select_list(parser *p, query_t *q)
{
    if (!accept_kw(p, QKW_SELECT)) {
        fail(p, p->tok.pos, "expected SELECT at the start of the query, found %s", found(p).s);
        return false;
    }
    q->distinct = accept_kw(p, QKW_DISTINCT);
    if (is_tok(p, QTK_STAR)) {
        q->star = true;
        advance(p);
        return true;
    }
    vec v = {0};
    if (!select_item(p, &v))
        return false;
    while (is_tok(p, QTK_COMMA)) {
        advance(p);
        if (!select_item(p, &v))
            return false;
    }
    q->items = v.items;
    q->nitems = v.n;
    return true;
}

/* After /region: [.keys | .values | .entries]. */
static bool source(parser *p, query_t *q)
{
    if (!is_tok(p, QTK_DOT))
        return true;
    advance(p);
    const char *w = p->text + p->tok.pos;
    uint32_t n = p->tok.len;
    if (is_tok(p, QTK_IDENT) && qlex_word_is(w, n, "KEYS"))
        q->source = QSRC_KEYS;
    else if (is_tok(p, QTK_IDENT) && qlex_word_is(w, n, "VALUES"))
        q->source = QSRC_VALUES;
    else if (is_tok(p, QTK_IDENT) && qlex_word_is(w, n, "ENTRIES"))
        q->source = QSRC_ENTRIES;
    else {
        fail(p, p->tok.pos, "expected keys, values or entries after '/%s.', found %s", q->region,
             found(p).s);
        return false;
    }
    advance(p);
    return true;
}

/* FROM /region[.source] [[AS] alias] */
static bool from_clause(parser *p, query_t *q)
{
    if (!accept_kw(p, QKW_FROM)) {
        fail(p, p->tok.pos, "expected FROM after the select list, found %s", found(p).s);
        return false;
    }
    if (!is_tok(p, QTK_REGION)) {
        fail(p, p->tok.pos, "expected a region path such as /orders after FROM, found %s",
             found(p).s);
        return false;
    }
    if (!(q->region = tok_dup(p, 1)))
        return false;
    advance(p);
    if (!source(p, q))
        return false;
    if (accept_kw(p, QKW_AS))
        return (q->alias = name(p, "an alias after AS")) != NULL;
    if (is_tok(p, QTK_IDENT))
        return (q->alias = name(p, "an alias")) != NULL;
    return true;
}

/* [WHERE expr], without aggregates. */
static bool where_clause(parser *p, query_t *q)
{
    if (!accept_kw(p, QKW_WHERE))
        return true;
    return (q->where = parse_expr(p)) && no_aggregate(p, q->where, "WHERE");
}

/* The BY after GROUP or ORDER, which the caller has consumed. */
static bool expect_by(parser *p)
{
    const char *what = qlex_keyword_name(p->prev.kw);
    if (accept_kw(p, QKW_BY))
        return true;
    fail(p, p->tok.pos, "expected BY after %s, found %s", what, found(p).s);
    return false;
}

/* [GROUP BY expr, ...], without aggregates. */
static bool group_clause(parser *p, query_t *q, uint32_t *group_pos)
{
    if (!is_kw(p, QKW_GROUP))
        return true;
    *group_pos = p->tok.pos;
    advance(p);
    if (!expect_by(p))
        return false;
    vec v = {0};
    do {
        if (v.n)
            advance(p); /* , */
        qexpr *e = parse_expr(p);
        if (!e || !no_aggregate(p, e, "GROUP BY") || !vec_push(p, &v, &e, sizeof(e)))
            return false;
    } while (is_tok(p, QTK_COMMA));
    q->group = v.items;
    q->ngroup = v.n;
    return true;
}

/* [ORDER BY expr [ASC|DESC], ...] */
static bool order_clause(parser *p, query_t *q)
{
    if (!accept_kw(p, QKW_ORDER))
        return true;
    if (!expect_by(p))
        return false;
    vec v = {0};
    do {
        if (v.n)
            advance(p); /* , */
        qorder o = {.expr = parse_expr(p)};
        if (!o.expr)
            return false;
        if (!accept_kw(p, QKW_ASC))
            o.desc = accept_kw(p, QKW_DESC);
        if (!vec_push(p, &v, &o, sizeof(o)))
            return false;
    } while (is_tok(p, QTK_COMMA));
    q->order = v.items;
    q->norder = v.n;
    return true;
}

/* [LIMIT n | LIMIT $n] */
static bool limit_clause(parser *p, query_t *q)
{
    if (!accept_kw(p, QKW_LIMIT))
        return true;
    q->has_limit = true;
    if (is_tok(p, QTK_NUMBER) && p->tok.num.type == QT_INT)
        q->limit = (uint64_t)p->tok.num.v.i; /* literals are never negative */
    else if (is_tok(p, QTK_NUMBER) && p->tok.num.type == QT_UINT)
        q->limit = p->tok.num.v.u;
    else if (is_tok(p, QTK_PARAM) && p->tok.param > 0) {
        q->limit_param = p->tok.param;
        if (q->limit_param > p->nparams)
            p->nparams = q->limit_param;
    } else if (is_tok(p, QTK_PARAM)) {
        fail(p, p->tok.pos, "parameters are numbered from $1, found '$0'");
        return false;
    } else {
        fail(p, p->tok.pos, "LIMIT needs a whole number or a $parameter, found %s", found(p).s);
        return false;
    }
    advance(p);
    return true;
}

/* The end of the query; the message lists what could still have come. */
static bool end_of_query(parser *p, const query_t *q)
{
    if (is_tok(p, QTK_EOF))
        return true;
    const char *what = q->has_limit ? "end of query"
                       : q->norder  ? "ASC, DESC, LIMIT or end of query"
                       : q->ngroup  ? "ORDER BY, LIMIT or end of query"
                       : q->where   ? "GROUP BY, ORDER BY, LIMIT or end of query"
                                    : "WHERE, GROUP BY, ORDER BY, LIMIT or end of query";
    fail(p, p->tok.pos, "expected %s, found %s", what, found(p).s);
    return false;
}

/* ---- validation -------------------------------------------------------- */

/* e's normalized text, malloc'd (NULL: out of memory, recorded). */
static char *format_alloc(parser *p, const qexpr *e)
{
    size_t n = qexpr_format(e, NULL, 0);
    char *s = malloc(n + 1);
    if (!s)
        return nomem(p);
    qexpr_format(e, s, n + 1);
    return s;
}

/* The GROUP BY keys as normalized text, sorted for binary search: select
 * items are matched against them by text (o . city is o.city), and a
 * query of many items and many keys must not cost items x keys. */
typedef struct keyset {
    char **text;
    uint32_t n;
} keyset;

/* qsort/bsearch order of two char * keys. */
static int cmp_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Frees the key texts (also those of a half-built set). */
static void keyset_free(keyset *ks)
{
    for (uint32_t i = 0; ks->text && i < ks->n; i++)
        free(ks->text[i]);
    free(ks->text);
}

/* Formats and sorts the keys of q; false when out of memory. */
static bool keyset_build(parser *p, const query_t *q, keyset *ks)
{
    ks->n = 0;
    if (!(ks->text = calloc(q->ngroup ? q->ngroup : 1, sizeof(char *))))
        return nomem(p) != NULL;
    for (; ks->n < q->ngroup; ks->n++)
        if (!(ks->text[ks->n] = format_alloc(p, q->group[ks->n])))
            return false;
    qsort(ks->text, ks->n, sizeof(char *), cmp_text);
    return true;
}

/* Whether e is one of the keys. */
static bool is_group_key(parser *p, const qexpr *e, const keyset *ks)
{
    if (!ks->n)
        return false;
    char *s = format_alloc(p, e);
    bool yes = s && bsearch(&s, ks->text, ks->n, sizeof(char *), cmp_text);
    free(s);
    return yes;
}

/* The first part of select item e that is neither a group key nor inside
 * an aggregate (with no GROUP BY, nothing is a key), or NULL when e is
 * fine. Literals and parameters are fine anywhere; a path (o.a.b, o[k])
 * that is not a key is fine when its base is, and is reported whole. */
static const qexpr *ungrouped(parser *p, const qexpr *e, const keyset *ks)
{
    if (!e || e->kind == QX_LITERAL || e->kind == QX_PARAM || e->kind == QX_AGGREGATE)
        return NULL;
    if (is_group_key(p, e, ks) || p->rc)
        return NULL;
    if (e->kind == QX_IDENT)
        return e;
    const qexpr *bad = ungrouped(p, e->a, ks);
    if (!bad)
        bad = ungrouped(p, e->b, ks);
    for (uint32_t i = 0; !bad && i < e->nlist; i++)
        bad = ungrouped(p, e->list[i], ks);
    if (bad && (e->kind == QX_FIELD || e->kind == QX_SUBSCRIPT))
        return e;
    return bad;
}

/* Refuses bad, the offending part of a select item. */
static bool refuse_ungrouped(parser *p, const query_t *q, const qexpr *bad)
{
    char *s = format_alloc(p, bad);
    if (!s)
        return false;
    tokname t = quoted(s, (uint32_t)strlen(s));
    free(s);
    if (q->ngroup)
        fail(p, bad->pos, "%s is neither a GROUP BY key nor inside an aggregate", t.s);
    else
        fail(p, bad->pos,
             "%s is not inside an aggregate (without GROUP BY, a select list with an "
             "aggregate may only hold aggregates)", t.s);
    return false;
}

/* With GROUP BY or aggregates, each select item must be built from group
 * keys, aggregates and constants (docs/query.md, "Aggregates"). */
static bool check_grouping(parser *p, const query_t *q)
{
    keyset ks = {0};
    const qexpr *bad = NULL;
    if (keyset_build(p, q, &ks))
        for (uint32_t i = 0; !bad && !p->rc && i < q->nitems; i++)
            bad = ungrouped(p, q->items[i].expr, &ks);
    keyset_free(&ks);
    if (bad)
        return refuse_ungrouped(p, q, bad);
    return !p->rc;
}

/* The rules that are not syntax: has_aggregates, grouping, and where an
 * aggregate may appear in ORDER BY. */
static bool validate(parser *p, query_t *q, uint32_t group_pos)
{
    for (uint32_t i = 0; i < q->nitems; i++)
        if (find_agg(q->items[i].expr))
            q->has_aggregates = true;
    if (q->star && q->ngroup) {
        fail(p, group_pos,
             "SELECT * cannot be used with GROUP BY (select the keys and aggregates)");
        return false;
    }
    if (!q->ngroup && !q->has_aggregates) {
        for (uint32_t i = 0; i < q->norder; i++)
            if (!no_aggregate(p, q->order[i].expr,
                              "ORDER BY unless the query has GROUP BY or aggregates in its "
                              "select list"))
                return false;
        return true;
    }
    return check_grouping(p, q);
}

/* The whole statement, clause by clause, then the rules. */
static bool statement(parser *p, query_t *q)
{
    uint32_t group_pos = 0;
    return select_list(p, q) && from_clause(p, q) && where_clause(p, q) &&
           group_clause(p, q, &group_pos) && order_clause(p, q) && limit_clause(p, q) &&
           end_of_query(p, q) && validate(p, q, group_pos);
}

/* ---- entry points ------------------------------------------------------ */

/* Sets up p over text; checks the length and makes the arena. */
static int start(parser *p, const char *text, size_t len, qerror *err, const char *end_name)
{
    memset(p, 0, sizeof(*p));
    memset(err, 0, sizeof(*err));
    p->err = err;
    p->end_name = end_name;
    if (len > QAST_MAX_TEXT) {
        snprintf(err->msg, sizeof(err->msg), "text too long: %zu bytes (at most %u)", len,
                 QAST_MAX_TEXT);
        return -EINVAL;
    }
    p->text = text ? text : "";
    if (!(p->arena = qarena_new())) {
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        return -ENOMEM;
    }
    qlex_init(&p->lx, p->text, text ? len : 0);
    qlex_next(&p->lx, &p->tok);
    if (p->tok.kind == QTK_ERROR)
        fail(p, p->tok.pos, "%s", p->lx.msg);
    return 0;
}

int query_parse(const char *text, size_t len, query_t **out, qerror *err)
{
    qerror spare;
    parser p;
    *out = NULL;
    int rc = start(&p, text, len, err ? err : &spare, "end of query");
    if (rc)
        return rc;
    query_t *q = qarena_alloc(p.arena, sizeof(*q));
    if (!q)
        nomem(&p);
    else if (!statement(&p, q) && !p.rc)
        nomem(&p); /* cannot happen: every false comes with an error */
    if (p.rc) {
        qarena_free(p.arena);
        return p.rc;
    }
    q->arena = p.arena;
    q->nparams = p.nparams;
    *out = q;
    return 0;
}

void query_free(query_t *q)
{
    if (q)
        qarena_free(q->arena);
}

int qexpr_parse(const char *text, size_t len, qexpr **out, struct qarena **arena_out,
                qerror *err)
{
    qerror spare;
    parser p;
    *out = NULL;
    *arena_out = NULL;
    int rc = start(&p, text, len, err ? err : &spare, "end of expression");
    if (rc)
        return rc;
    qexpr *e = parse_expr(&p);
    if (e && !is_tok(&p, QTK_EOF))
        fail(&p, p.tok.pos, "expected an operator or end of expression, found %s", found(&p).s);
    if (e)
        no_aggregate(&p, e, "a standalone expression");
    if (p.rc) {
        qarena_free(p.arena);
        return p.rc;
    }
    *out = e;
    *arena_out = p.arena;
    return 0;
}

/* ---- formatting -------------------------------------------------------- */

/* Binding strength of what a node prints as, loosest first; an operand
 * weaker than its place requires is parenthesized. */
enum {
    P_OR = 1, P_AND, P_NOT, P_CMP, P_ADD, P_MUL, P_NEG, P_POSTFIX, P_ATOM,
};

/* snprintf-like output: counts everything, stores what fits. */
typedef struct out {
    char *buf;
    size_t cap, len;
} out;

/* Appends s[0..n) (what fits of it). */
static void put(out *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

/* Appends the NUL-terminated s. */
static void puts_(out *o, const char *s) { put(o, s, strlen(s)); }

/* A negative number literal prints with a leading '-', so it binds like
 * unary minus: (-7).x needs its parentheses. */
static bool negative_literal(const qvalue *v)
{
    return (v->type == QT_INT && v->v.i < 0) || (v->type == QT_FLOAT && signbit(v->v.f));
}

/* The strength (P_*) of what e prints as. */
static int prec(const qexpr *e)
{
    switch (e->kind) {
    case QX_LITERAL: return negative_literal(&e->lit) ? P_NEG : P_ATOM;
    case QX_FIELD: case QX_SUBSCRIPT: return P_POSTFIX;
    case QX_UNARY: return e->op == QOP_NOT ? P_NOT : P_NEG;
    case QX_IN: return P_CMP;
    case QX_IS: return e->op == QOP_IS_NULL ? P_CMP : P_ATOM;
    case QX_BINARY:
        switch (e->op) {
        case QOP_OR: return P_OR;
        case QOP_AND: return P_AND;
        case QOP_ADD: case QOP_SUB: return P_ADD;
        case QOP_MUL: case QOP_DIV: case QOP_MOD: return P_MUL;
        default: return P_CMP;
        }
    default: return P_ATOM;
    }
}

/* The shortest of %.15g, %.16g, %.17g that reads back as the same
 * double, with ".0" added when it would otherwise read as an integer. */
static void put_float(out *o, double d)
{
    char s[48];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(s, sizeof(s), "%.*g", digits, d);
        if (strtod(s, NULL) == d)
            break;
    }
    if (!strpbrk(s, ".eEn")) /* n: inf, nan (never parsed, but printable) */
        strcat(s, ".0");
    puts_(o, s);
}

/* 'text' with each quote doubled. */
static void put_string(out *o, const uint8_t *s, uint32_t n)
{
    put(o, "'", 1);
    for (uint32_t i = 0, from = 0; i <= n; i++)
        if (i == n || s[i] == '\'') {
            put(o, (const char *)s + from, i - from + (i < n));
            from = i;
        }
    put(o, "'", 1);
}

/* A literal as it would be written in a query. */
static void put_literal(out *o, const qvalue *v)
{
    char num[32];
    switch (v->type) {
    case QT_UNDEFINED: puts_(o, "UNDEFINED"); return;
    case QT_NULL: puts_(o, "NULL"); return;
    case QT_BOOL: puts_(o, v->v.b ? "TRUE" : "FALSE"); return;
    case QT_INT: snprintf(num, sizeof(num), "%" PRId64, v->v.i); break;
    case QT_UINT: snprintf(num, sizeof(num), "%" PRIu64, v->v.u); break;
    case QT_FLOAT: put_float(o, v->v.f); return;
    case QT_STR: put_string(o, v->v.s.p, v->v.s.n); return;
    /* not made by the parser; printed for diagnostics only */
    case QT_BIN: puts_(o, "<binary>"); return;
    case QT_ARRAY: puts_(o, "<array>"); return;
    default: puts_(o, "<map>"); return;
    }
    puts_(o, num);
}

static void format(out *o, const qexpr *e);

/* e in a place that needs at least strength min. */
static void operand(out *o, const qexpr *e, int min)
{
    bool paren = e && prec(e) < min;
    if (paren)
        put(o, "(", 1);
    format(o, e);
    if (paren)
        put(o, ")", 1);
}

/* The operator of a QX_BINARY, with its surrounding spaces. */
static const char *binop_text(const qexpr *e)
{
    static const char *const text[] = {
        [QOP_ADD] = " + ", [QOP_SUB] = " - ", [QOP_MUL] = " * ", [QOP_DIV] = " / ",
        [QOP_MOD] = " % ", [QOP_EQ] = " = ", [QOP_NE] = " <> ", [QOP_LT] = " < ",
        [QOP_LE] = " <= ", [QOP_GT] = " > ", [QOP_GE] = " >= ", [QOP_AND] = " AND ",
        [QOP_OR] = " OR ",
    };
    if (e->op == QOP_LIKE)
        return e->negated ? " NOT LIKE " : " LIKE ";
    if ((unsigned)e->op < sizeof(text) / sizeof(text[0]) && text[e->op])
        return text[e->op];
    return " ? ";
}

/* Left-associative levels take an equal operand on the left bare (a - b
 * - c), on the right in parentheses (a - (b - c)); comparisons do not
 * chain, so an operand of equal strength is parenthesized on both sides. */
static void format_binary(out *o, const qexpr *e)
{
    int p = prec(e);
    operand(o, e->a, p == P_CMP ? p + 1 : p);
    puts_(o, binop_text(e));
    operand(o, e->b, p + 1);
}

/* a [NOT] IN (x, y, ...) */
static void format_in(out *o, const qexpr *e)
{
    operand(o, e->a, P_CMP + 1);
    puts_(o, e->negated ? " NOT IN (" : " IN (");
    for (uint32_t i = 0; i < e->nlist; i++) {
        if (i)
            put(o, ", ", 2);
        format(o, e->list[i]);
    }
    put(o, ")", 1);
}

/* a IS [NOT] NULL, IS_DEFINED(a), IS_UNDEFINED(a) */
static void format_is(out *o, const qexpr *e)
{
    if (e->op == QOP_IS_NULL) {
        operand(o, e->a, P_CMP + 1);
        puts_(o, e->negated ? " IS NOT NULL" : " IS NULL");
        return;
    }
    puts_(o, e->op == QOP_IS_DEFINED ? "IS_DEFINED(" : "IS_UNDEFINED(");
    format(o, e->a);
    put(o, ")", 1);
}

/* AGG([DISTINCT] a), COUNT(*) */
static void format_aggregate(out *o, const qexpr *e)
{
    static const char *const names[] = {
        [QAGG_COUNT] = "COUNT(", [QAGG_SUM] = "SUM(", [QAGG_AVG] = "AVG(",
        [QAGG_MIN] = "MIN(", [QAGG_MAX] = "MAX(",
    };
    puts_(o, (unsigned)e->agg <= QAGG_MAX ? names[e->agg] : "?(");
    if (e->distinct)
        puts_(o, "DISTINCT ");
    if (e->a)
        format(o, e->a);
    else
        put(o, "*", 1);
    put(o, ")", 1);
}

/* Appends e's normalized text; operands are parenthesized by operand(). */
static void format(out *o, const qexpr *e)
{
    char num[16];
    if (!e)
        return; /* only in a tree not made by the parser */
    switch (e->kind) {
    case QX_LITERAL: put_literal(o, &e->lit); break;
    case QX_PARAM:
        snprintf(num, sizeof(num), "$%" PRIu32, e->param);
        puts_(o, num);
        break;
    case QX_IDENT: put(o, e->name ? e->name : "", e->name ? e->name_len : 0); break;
    case QX_FIELD:
        operand(o, e->a, P_POSTFIX);
        put(o, ".", 1);
        put(o, e->name ? e->name : "", e->name ? e->name_len : 0);
        break;
    case QX_SUBSCRIPT:
        operand(o, e->a, P_POSTFIX);
        put(o, "[", 1);
        format(o, e->b);
        put(o, "]", 1);
        break;
    case QX_UNARY:
        puts_(o, e->op == QOP_NOT ? "NOT " : "-");
        operand(o, e->a, e->op == QOP_NOT ? P_NOT : P_NEG);
        break;
    case QX_BINARY: format_binary(o, e); break;
    case QX_IN: format_in(o, e); break;
    case QX_IS: format_is(o, e); break;
    case QX_AGGREGATE: format_aggregate(o, e); break;
    }
}

size_t qexpr_format(const qexpr *e, char *buf, size_t cap)
{
    out o = {buf, cap, 0};
    if (e)
        format(&o, e);
    if (cap)
        buf[o.len < cap ? o.len : cap - 1] = 0;
    return o.len;
}
