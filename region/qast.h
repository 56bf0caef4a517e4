/* qast.h - the syntax tree of a query (docs/query.md) and the parser that
 * builds it.
 *
 *   SELECT [DISTINCT] * | expr [AS name], ...
 *   FROM /region[.keys|.values|.entries] [[AS] alias]
 *   [WHERE expr] [GROUP BY expr, ...] [ORDER BY expr [ASC|DESC], ...]
 *   [LIMIT n | LIMIT $n]
 *
 * A query_t owns every node and string of its tree (one arena, freed by
 * query_free). Every node carries the byte offset where it starts in the
 * text, so that later errors (a type rule, a missing parameter) can point
 * at it too. The same expressions serve continuous-query predicates and,
 * later, stream filters and projections. */
#ifndef AGATE_REGION_QAST_H
#define AGATE_REGION_QAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "region/qvalue.h"

typedef enum qexpr_kind {
    QX_LITERAL,   /* lit: a number, string, TRUE/FALSE, NULL, UNDEFINED */
    QX_PARAM,     /* $param (1-based) */
    QX_IDENT,     /* name: an alias, or a field of the iterated value */
    QX_FIELD,     /* a.name */
    QX_SUBSCRIPT, /* a[b]: array element or map key */
    QX_UNARY,     /* op a: QOP_NOT, QOP_NEG */
    QX_BINARY,    /* a op b */
    QX_IN,        /* a [NOT] IN (list): negated says NOT */
    QX_IS,        /* a IS [NOT] NULL (QOP_IS_NULL; negated), IS_DEFINED(a),
                     IS_UNDEFINED(a) (QOP_IS_DEFINED / QOP_IS_UNDEFINED) */
    QX_AGGREGATE, /* agg(a) or agg(DISTINCT a); COUNT(*) has a == NULL */
} qexpr_kind;

typedef enum qop {
    QOP_NONE = 0,
    /* arithmetic */
    QOP_ADD, QOP_SUB, QOP_MUL, QOP_DIV, QOP_MOD, QOP_NEG,
    /* comparison */
    QOP_EQ, QOP_NE, QOP_LT, QOP_LE, QOP_GT, QOP_GE,
    QOP_LIKE, /* negated: NOT LIKE */
    /* logic */
    QOP_AND, QOP_OR, QOP_NOT,
    /* tests (QX_IS) */
    QOP_IS_NULL, QOP_IS_DEFINED, QOP_IS_UNDEFINED,
} qop;

typedef enum qagg {
    QAGG_COUNT, QAGG_SUM, QAGG_AVG, QAGG_MIN, QAGG_MAX,
} qagg;

typedef struct qexpr {
    qexpr_kind kind;
    uint32_t pos;    /* byte offset in the query text */
    qop op;          /* QX_UNARY, QX_BINARY, QX_IS */
    qagg agg;        /* QX_AGGREGATE */
    bool negated;    /* NOT IN, NOT LIKE, IS NOT NULL */
    bool distinct;   /* COUNT(DISTINCT a) ... */
    qvalue lit;      /* QX_LITERAL (strings point into the arena) */
    uint32_t param;  /* QX_PARAM */
    const char *name; /* QX_IDENT, QX_FIELD (NUL-terminated, in the arena) */
    uint32_t name_len;
    struct qexpr *a, *b;    /* operands; QX_FIELD/QX_SUBSCRIPT: a is the base */
    struct qexpr **list;    /* QX_IN: the list */
    uint32_t nlist;
} qexpr;

/* What FROM iterates. */
typedef enum qsource {
    QSRC_VALUES,  /* /r and /r.values: the alias is the value */
    QSRC_KEYS,    /* /r.keys: the alias is the key (a string or binary) */
    QSRC_ENTRIES, /* /r.entries: alias.key and alias.value */
} qsource;

typedef struct qitem {
    qexpr *expr;      /* NULL for * */
    const char *as;   /* AS name, or NULL (a name is derived for output) */
    uint32_t pos;
} qitem;

typedef struct qorder {
    qexpr *expr;
    bool desc;
} qorder;

typedef struct query {
    bool distinct;
    bool star;        /* SELECT * */
    qitem *items;     /* when !star */
    uint32_t nitems;
    const char *region; /* without the leading '/' */
    qsource source;
    const char *alias;  /* NULL when none was given */
    qexpr *where;       /* NULL: every entry */
    qexpr **group;
    uint32_t ngroup;
    qorder *order;
    uint32_t norder;
    bool has_limit;
    uint64_t limit;        /* when has_limit and !limit_param */
    uint32_t limit_param;  /* LIMIT $n (1-based), 0: none */
    uint32_t nparams;      /* the highest $n used anywhere */
    bool has_aggregates;   /* some item is or contains an aggregate */
    struct qarena *arena;  /* owns everything above */
} query_t;

/* A parse error: where (byte offset in the text) and what was expected. */
typedef struct qerror {
    uint32_t pos;
    char msg[240]; /* e.g. "expected FROM after the select list, found 'WHERE'" */
} qerror;

/* Parses text[0..len) (need not be NUL-terminated). Returns 0 with a new
 * query in *out (free with query_free), -EINVAL with *err filled when the
 * text is not a valid query (syntax, or a rule such as an aggregate in
 * WHERE, a non-aggregate item outside GROUP BY, $0), -ENOMEM. Keywords
 * are case-insensitive; names are not. Nesting deeper than
 * QAST_MAX_DEPTH and texts longer than QAST_MAX_TEXT are refused. */
#define QAST_MAX_DEPTH 64
#define QAST_MAX_TEXT (1u << 20)
int query_parse(const char *text, size_t len, query_t **out, qerror *err);
void query_free(query_t *q);

/* Parses one expression (a continuous query's or a stream filter's
 * predicate) the same way; the tree lives in *arena_out (free with
 * qarena_free). */
int qexpr_parse(const char *text, size_t len, qexpr **out, struct qarena **arena_out, qerror *err);
void qarena_free(struct qarena *a);

/* Writes the expression back as text (normalized: keywords upper case,
 * minimal parentheses kept for precedence) into buf; returns the length it
 * needs, like snprintf. For --explain and messages. */
size_t qexpr_format(const qexpr *e, char *buf, size_t cap);

#endif
