/* The local query executor (see qexec.h). */
#include "region/qexec.h"

#include <errno.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mp.h"
#include "common/mpw.h"
#include "region/qagg.h"

#define QEXEC_DEPTH 64 /* nesting allowed when decoding our own encodings */

/* A result row in the making: its columns and its ORDER BY values, each an
 * encoded MessagePack array. */
typedef struct cand {
    uint8_t *row;
    size_t rlen;
    uint8_t *sort;
    size_t slen;
} cand;

/* A GROUP BY group (or the single group of an aggregate query without
 * GROUP BY): its key, a copy of its first row (group keys and other plain
 * items are evaluated on it) and one accumulator per aggregate. */
typedef struct group {
    uint8_t *key;
    size_t klen;
    uint8_t *first; /* [key, value] of the first row */
    size_t flen;
    qagg_acc *accs;
} group;

/* Open addressing over tuples stored elsewhere (rows or group keys): a
 * slot holds an index + 1 (0: empty) and the tuple's hash. */
typedef struct tindex {
    size_t *slot;
    uint64_t *hash;
    size_t cap, used;
} tindex;

struct qexec {
    const query_t *q;
    qenv env;
    uint32_t ncols;
    char **cols;
    int *order_col;     /* per ORDER BY item: the select item it names, or -1 */
    const qexpr **aggs; /* every aggregate node of the select list and ORDER BY */
    uint32_t naggs;
    bool grouped;       /* GROUP BY, or aggregates */
    bool has_limit;
    uint64_t limit;
    cand *rows;
    size_t nrows, cap;
    tindex distinct; /* over rows, when DISTINCT */
    group *groups;
    size_t ngroups, gcap;
    tindex gindex;
    group *eval_group; /* the group the aggregate callback reads */
    uint64_t matched;
    bool enough;
    bool done; /* finished or packed: only qexec_free (and the readers) now */
    buf_t tmp;
};

/* ---- tuples: encoded arrays compared and hashed by value ---- */

/* Skips an array header; returns its element count, or -1. */
static long array_open(const uint8_t **p, size_t *n)
{
    if (*n < 1)
        return -1;
    uint8_t b = (*p)[0];
    size_t hl;
    long count;
    if ((b & 0xf0) == 0x90) {
        hl = 1;
        count = b & 0x0f;
    } else if (b == 0xdc && *n >= 3) {
        hl = 3;
        count = (long)((*p)[1] << 8 | (*p)[2]);
    } else if (b == 0xdd && *n >= 5) {
        hl = 5;
        count = (long)((uint32_t)(*p)[1] << 24 | (uint32_t)(*p)[2] << 16 | (uint32_t)(*p)[3] << 8 |
                       (*p)[4]);
    } else {
        return -1;
    }
    *p += hl;
    *n -= hl;
    return count;
}

/* The next element of an opened array; false at a malformed one. */
static bool array_next(const uint8_t **p, size_t *n, qvalue *v)
{
    size_t used = qvalue_decode(*p, *n, QEXEC_DEPTH, v);
    if (!used)
        return false;
    *p += used;
    *n -= used;
    return true;
}

static uint64_t tuple_hash(const uint8_t *p, size_t n)
{
    long count = array_open(&p, &n);
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)count;
    qvalue v;
    for (long i = 0; i < count && array_next(&p, &n, &v); i++)
        h = (h ^ qvalue_hash(&v)) * 0x100000001B3ULL;
    return h;
}

static bool tuple_equal(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    long ca = array_open(&a, &an), cb = array_open(&b, &bn);
    if (ca != cb || ca < 0)
        return false;
    qvalue x, y;
    for (long i = 0; i < ca; i++)
        if (!array_next(&a, &an, &x) || !array_next(&b, &bn, &y) || !qvalue_equal(&x, &y))
            return false;
    return true;
}

/* qvalue_order over the elements, each flipped where desc[i]. */
static int tuple_order(const uint8_t *a, size_t an, const uint8_t *b, size_t bn,
                       const qorder *order)
{
    long ca = array_open(&a, &an), cb = array_open(&b, &bn);
    qvalue x, y;
    for (long i = 0; i < ca && i < cb; i++) {
        if (!array_next(&a, &an, &x) || !array_next(&b, &bn, &y))
            return 0;
        int c = qvalue_order(&x, &y);
        if (c)
            return order[i].desc ? -c : c;
    }
    return 0;
}

/* ---- the tuple index ---- */

typedef const uint8_t *(*tuple_at_fn)(const qexec *x, size_t i, size_t *len);

static const uint8_t *row_tuple(const qexec *x, size_t i, size_t *len)
{
    *len = x->rows[i].rlen;
    return x->rows[i].row;
}

static const uint8_t *group_tuple(const qexec *x, size_t i, size_t *len)
{
    *len = x->groups[i].klen;
    return x->groups[i].key;
}

static int tindex_grow(tindex *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    size_t *slot = calloc(cap, sizeof(*slot));
    uint64_t *hash = calloc(cap, sizeof(*hash));
    if (!slot || !hash) {
        free(slot);
        free(hash);
        return -ENOMEM;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slot[i])
            continue;
        size_t j = t->hash[i] & (cap - 1);
        while (slot[j])
            j = (j + 1) & (cap - 1);
        slot[j] = t->slot[i];
        hash[j] = t->hash[i];
    }
    free(t->slot);
    free(t->hash);
    t->slot = slot;
    t->hash = hash;
    t->cap = cap;
    return 0;
}

/* Looks up tuple p: returns its index, or -1 after reserving a slot that
 * tindex_put fills (*where). -ENOMEM as -2. */
static long tindex_find(const qexec *x, tindex *t, tuple_at_fn at, const uint8_t *p, size_t n,
                        uint64_t h, size_t *where)
{
    if ((t->used + 1) * 2 > t->cap && tindex_grow(t))
        return -2;
    size_t j = h & (t->cap - 1);
    while (t->slot[j]) {
        size_t len;
        const uint8_t *q = at(x, t->slot[j] - 1, &len);
        if (t->hash[j] == h && tuple_equal(p, n, q, len))
            return (long)(t->slot[j] - 1);
        j = (j + 1) & (t->cap - 1);
    }
    *where = j;
    return -1;
}

static void tindex_put(tindex *t, size_t where, size_t index, uint64_t h)
{
    t->slot[where] = index + 1;
    t->hash[where] = h;
    t->used++;
}

static void tindex_free(tindex *t)
{
    free(t->slot);
    free(t->hash);
}

/* ---- setting up ---- */

static int collect_aggs(qexec *x, const qexpr *e)
{
    if (!e)
        return 0;
    if (e->kind == QX_AGGREGATE) {
        const qexpr **v = realloc(x->aggs, (x->naggs + 1) * sizeof(*v));
        if (!v)
            return -ENOMEM;
        x->aggs = v;
        x->aggs[x->naggs++] = e;
        return 0;
    }
    int rc = collect_aggs(x, e->a);
    if (!rc)
        rc = collect_aggs(x, e->b);
    for (uint32_t i = 0; !rc && i < e->nlist; i++)
        rc = collect_aggs(x, e->list[i]);
    return rc;
}

static char *name_of_item(const qexec *x, const qitem *it)
{
    if (it->as)
        return strdup(it->as);
    size_t need = qexpr_format(it->expr, NULL, 0) + 1;
    char *s = malloc(need);
    if (s)
        qexpr_format(it->expr, s, need);
    (void)x;
    return s;
}

static int set_columns(qexec *x)
{
    const query_t *q = x->q;
    static const char *star_cols[][2] = {{"value", NULL}, {"key", NULL}, {"key", "value"}};
    if (q->star) {
        x->ncols = q->source == QSRC_ENTRIES ? 2 : 1;
        x->cols = calloc(x->ncols, sizeof(char *));
        if (!x->cols)
            return -ENOMEM;
        for (uint32_t i = 0; i < x->ncols; i++)
            if (!(x->cols[i] = strdup(star_cols[q->source][i])))
                return -ENOMEM;
        return 0;
    }
    x->ncols = q->nitems;
    x->cols = calloc(x->ncols ? x->ncols : 1, sizeof(char *));
    if (!x->cols)
        return -ENOMEM;
    for (uint32_t i = 0; i < q->nitems; i++)
        if (!(x->cols[i] = name_of_item(x, &q->items[i])))
            return -ENOMEM;
    return 0;
}

/* ORDER BY name, where name is a select item's AS name, sorts by it. */
static int resolve_order(qexec *x)
{
    const query_t *q = x->q;
    x->order_col = malloc((q->norder ? q->norder : 1) * sizeof(int));
    if (!x->order_col)
        return -ENOMEM;
    for (uint32_t i = 0; i < q->norder; i++) {
        const qexpr *e = q->order[i].expr;
        x->order_col[i] = -1;
        for (uint32_t k = 0; !q->star && e->kind == QX_IDENT && k < q->nitems; k++)
            if (q->items[k].as && !strcmp(q->items[k].as, e->name))
                x->order_col[i] = (int)k;
    }
    return 0;
}

static int group_aggregate(void *ctx, const qexpr *agg, qvalue *out, qerror *err)
{
    qexec *x = ctx;
    for (uint32_t i = 0; i < x->naggs; i++)
        if (x->aggs[i] == agg)
            return qagg_result(&x->eval_group->accs[i], out);
    if (err) {
        err->pos = agg->pos;
        snprintf(err->msg, sizeof err->msg, "an aggregate outside the select list and ORDER BY");
    }
    return -EINVAL;
}

static int set_limit(qexec *x, qerror *err)
{
    const query_t *q = x->q;
    x->has_limit = q->has_limit;
    x->limit = q->limit;
    if (!q->limit_param)
        return 0;
    const qvalue *v = &x->env.params[q->limit_param - 1];
    if (v->type == QT_INT && v->v.i >= 0) {
        x->limit = (uint64_t)v->v.i;
    } else if (v->type == QT_UINT) {
        x->limit = v->v.u;
    } else {
        err->pos = 0;
        snprintf(err->msg, sizeof err->msg, "LIMIT $%u must be a whole number >= 0, got %s",
                 q->limit_param, qtype_name(v->type));
        return -EINVAL;
    }
    return 0;
}

/* Where the query first uses $n (for an error pointing at it); -1 if not. */
static long param_pos(const qexpr *e, uint32_t n)
{
    if (!e)
        return -1;
    if (e->kind == QX_PARAM && e->param == n)
        return (long)e->pos;
    long p = param_pos(e->a, n);
    if (p < 0)
        p = param_pos(e->b, n);
    for (uint32_t i = 0; p < 0 && i < e->nlist; i++)
        p = param_pos(e->list[i], n);
    return p;
}

static uint32_t query_param_pos(const query_t *q, uint32_t n)
{
    long p = -1;
    for (uint32_t i = 0; p < 0 && !q->star && i < q->nitems; i++)
        p = param_pos(q->items[i].expr, n);
    if (p < 0)
        p = param_pos(q->where, n);
    for (uint32_t i = 0; p < 0 && i < q->ngroup; i++)
        p = param_pos(q->group[i], n);
    for (uint32_t i = 0; p < 0 && i < q->norder; i++)
        p = param_pos(q->order[i].expr, n);
    return p < 0 ? 0 : (uint32_t)p;
}

int qexec_new(const query_t *q, const qvalue *params, uint32_t nparams, qexec **out, qerror *err)
{
    qerror dummy;
    if (!err)
        err = &dummy;
    *out = NULL;
    if (nparams < q->nparams) {
        err->pos = query_param_pos(q, q->nparams);
        snprintf(err->msg, sizeof err->msg, "the query uses $%u but %u parameter%s given",
                 q->nparams, nparams, nparams == 1 ? " was" : "s were");
        return -EINVAL;
    }
    qexec *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->q = q;
    x->env = (qenv){.source = q->source, .alias = q->alias, .params = params, .nparams = nparams,
                    .aggregate = group_aggregate, .agg_ctx = x};
    x->grouped = q->ngroup > 0 || q->has_aggregates;
    buf_init(&x->tmp);
    int rc = set_columns(x);
    if (!rc)
        rc = resolve_order(x);
    for (uint32_t i = 0; !rc && !q->star && i < q->nitems; i++)
        rc = collect_aggs(x, q->items[i].expr);
    for (uint32_t i = 0; !rc && i < q->norder; i++)
        rc = collect_aggs(x, q->order[i].expr);
    if (!rc)
        rc = set_limit(x, err);
    if (rc) {
        qexec_free(x);
        return rc;
    }
    *out = x;
    return 0;
}

static void group_free(qexec *x, group *g)
{
    for (uint32_t i = 0; g->accs && i < x->naggs; i++)
        qagg_free(&g->accs[i]);
    free(g->accs);
    free(g->key);
    free(g->first);
}

void qexec_free(qexec *x)
{
    if (!x)
        return;
    for (uint32_t i = 0; x->cols && i < x->ncols; i++)
        free(x->cols[i]);
    free(x->cols);
    free(x->order_col);
    free(x->aggs);
    for (size_t i = 0; i < x->nrows; i++) {
        free(x->rows[i].row);
        free(x->rows[i].sort);
    }
    free(x->rows);
    for (size_t i = 0; i < x->ngroups; i++)
        group_free(x, &x->groups[i]);
    free(x->groups);
    tindex_free(&x->distinct);
    tindex_free(&x->gindex);
    buf_free(&x->tmp);
    free(x);
}

/* ---- projecting a row ---- */

static int pack_entry(msgpack_packer *pk, const qrow *row)
{
    int rc = msgpack_pack_map(pk, 2);
    rc |= mpw_cstr(pk, "key") || qvalue_pack(&row->key, pk);
    rc |= mpw_cstr(pk, "value") || qvalue_pack(&row->value, pk);
    return rc ? -ENOMEM : 0;
}

static bool is_entry_alias(const qexec *x, const qexpr *e)
{
    return x->q->source == QSRC_ENTRIES && x->q->alias && e->kind == QX_IDENT &&
           !strcmp(e->name, x->q->alias);
}

/* Packs one column: item expression e (NULL: the row for SELECT *). */
static int pack_expr(qexec *x, msgpack_packer *pk, const qexpr *e, const qrow *row, qerror *err)
{
    if (is_entry_alias(x, e))
        return pack_entry(pk, row);
    qvalue v;
    int rc = qeval(e, &x->env, row, &v, err);
    if (rc)
        return rc;
    return qvalue_pack(&v, pk) ? -ENOMEM : 0;
}

static int pack_star(const qexec *x, msgpack_packer *pk, const qrow *row)
{
    int rc = 0;
    if (x->q->source != QSRC_VALUES)
        rc |= qvalue_pack(&row->key, pk);
    if (x->q->source != QSRC_KEYS)
        rc |= qvalue_pack(&row->value, pk);
    return rc ? -ENOMEM : 0;
}

/* The result row's columns into x->tmp (reset first). */
static int project(qexec *x, const qrow *row, qerror *err)
{
    msgpack_packer pk;
    buf_reset(&x->tmp);
    mpw_init(&pk, &x->tmp);
    if (msgpack_pack_array(&pk, x->ncols))
        return -ENOMEM;
    if (x->q->star)
        return pack_star(x, &pk, row);
    for (uint32_t i = 0; i < x->q->nitems; i++) {
        int rc = pack_expr(x, &pk, x->q->items[i].expr, row, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* The ORDER BY values of a row into a new buffer (*out, *len). */
static int sort_values(qexec *x, const qrow *row, uint8_t **out, size_t *len, qerror *err)
{
    buf_t b;
    buf_init(&b);
    msgpack_packer pk;
    mpw_init(&pk, &b);
    int rc = msgpack_pack_array(&pk, x->q->norder) ? -ENOMEM : 0;
    for (uint32_t i = 0; !rc && i < x->q->norder; i++) {
        const qexpr *e = x->order_col[i] >= 0 ? x->q->items[x->order_col[i]].expr
                                               : x->q->order[i].expr;
        rc = pack_expr(x, &pk, e, row, err);
    }
    if (rc) {
        buf_free(&b);
        return rc;
    }
    *len = buf_readable(&b);
    *out = malloc(*len ? *len : 1);
    if (*out)
        memcpy(*out, buf_rptr(&b), *len);
    buf_free(&b);
    return *out ? 0 : -ENOMEM;
}

static int cmp_cands(const qexec *x, const cand *a, const cand *b)
{
    return tuple_order(a->sort, a->slen, b->sort, b->slen, x->q->order);
}

/* qsort has no context argument: the executor being sorted. */
static _Thread_local const qexec *sorting;

static int cmp_cand_ptrs(const void *a, const void *b)
{
    return cmp_cands(sorting, a, b);
}

static void sort_rows(qexec *x)
{
    if (!x->q->norder || x->nrows < 2)
        return;
    sorting = x;
    qsort(x->rows, x->nrows, sizeof(cand), cmp_cand_ptrs);
    sorting = NULL;
}

static void cut_rows(qexec *x, size_t keep)
{
    for (size_t i = keep; i < x->nrows; i++) {
        free(x->rows[i].row);
        free(x->rows[i].sort);
    }
    if (x->nrows > keep)
        x->nrows = keep;
}

/* DISTINCT: 1 when the result has row p already; else 0, with the index
 * slot (*where) and hash (*h) that push_cand fills. -ENOMEM. */
static int seen_row(qexec *x, const uint8_t *p, size_t n, size_t *where, uint64_t *h)
{
    *where = 0;
    *h = 0;
    if (!x->q->distinct)
        return 0;
    *h = tuple_hash(p, n);
    long at = tindex_find(x, &x->distinct, row_tuple, p, n, *h, where);
    if (at == -2)
        return -ENOMEM;
    return at >= 0;
}

/* Appends row p (copied) with its sort values (taken over: freed on an
 * error) to the result; where and h as seen_row gave them. */
static int push_cand(qexec *x, const uint8_t *p, size_t n, uint8_t *sort, size_t slen,
                     size_t where, uint64_t h)
{
    if (x->nrows == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        cand *v = realloc(x->rows, cap * sizeof(*v));
        if (!v) {
            free(sort);
            return -ENOMEM;
        }
        x->rows = v;
        x->cap = cap;
    }
    cand c = {.row = malloc(n ? n : 1), .rlen = n, .sort = sort, .slen = slen};
    if (!c.row) {
        free(sort);
        return -ENOMEM;
    }
    memcpy(c.row, p, n);
    x->rows[x->nrows++] = c;
    if (x->q->distinct)
        tindex_put(&x->distinct, where, x->nrows - 1, h);
    return 0;
}

/* Appends the projected row in x->tmp (and its sort values) to the result,
 * unless DISTINCT has it already. */
static int keep_row(qexec *x, const qrow *row, qerror *err)
{
    const uint8_t *p = buf_rptr(&x->tmp);
    size_t n = buf_readable(&x->tmp), where;
    uint64_t h;
    int rc = seen_row(x, p, n, &where, &h);
    if (rc)
        return rc < 0 ? rc : 0;
    uint8_t *sort = NULL;
    size_t slen = 0;
    if (x->q->norder && (rc = sort_values(x, row, &sort, &slen, err)))
        return rc;
    return push_cand(x, p, n, sort, slen, where, h);
}

/* The same for a row that comes projected, with its sort values (s, sn;
 * ignored without ORDER BY), from a partial result. */
static int keep_ready(qexec *x, const uint8_t *p, size_t n, const uint8_t *s, size_t sn)
{
    size_t where;
    uint64_t h;
    int rc = seen_row(x, p, n, &where, &h);
    if (rc)
        return rc < 0 ? rc : 0;
    uint8_t *sort = NULL;
    size_t slen = 0;
    if (x->q->norder) {
        if (!(sort = malloc(sn ? sn : 1)))
            return -ENOMEM;
        memcpy(sort, s, sn);
        slen = sn;
    }
    return push_cand(x, p, n, sort, slen, where, h);
}

/* With ORDER BY and LIMIT n (no DISTINCT, no grouping) only the best n rows
 * matter: every 2n + 64 rows, sort and drop the rest. */
static void trim_top(qexec *x)
{
    if (!x->has_limit || !x->q->norder || x->q->distinct || x->nrows < 2 * x->limit + 64)
        return;
    sort_rows(x);
    cut_rows(x, x->limit);
}

/* After a row joined the result: bounds the candidates, and with a LIMIT
 * but no ORDER BY reports when there are enough rows (with DISTINCT: enough
 * distinct ones). */
static int after_keep(qexec *x)
{
    trim_top(x);
    if (x->has_limit && !x->q->norder && x->nrows >= x->limit) {
        x->enough = true;
        return QEXEC_ENOUGH;
    }
    return 0;
}

static int add_plain(qexec *x, const qrow *row, qerror *err)
{
    int rc = project(x, row, err);
    if (!rc)
        rc = keep_row(x, row, err);
    return rc ? rc : after_keep(x);
}

/* ---- grouping ---- */

static int copy_bytes(const uint8_t *p, size_t n, uint8_t **out, size_t *len)
{
    *len = n;
    *out = malloc(n ? n : 1);
    if (!*out)
        return -ENOMEM;
    memcpy(*out, p, n);
    return 0;
}

/* A new group with a copy of key (a GROUP BY tuple) and of first (its
 * first row as [key, value]), and fresh accumulators. */
static int new_group_from(qexec *x, const uint8_t *key, size_t klen, const uint8_t *first,
                          size_t flen, group **out)
{
    if (x->ngroups == x->gcap) {
        size_t cap = x->gcap ? x->gcap * 2 : 16;
        group *v = realloc(x->groups, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        x->groups = v;
        x->gcap = cap;
    }
    group *g = &x->groups[x->ngroups];
    memset(g, 0, sizeof(*g));
    g->accs = calloc(x->naggs ? x->naggs : 1, sizeof(qagg_acc));
    int rc = g->accs ? copy_bytes(key, klen, &g->key, &g->klen) : -ENOMEM;
    if (!rc)
        rc = copy_bytes(first, flen, &g->first, &g->flen);
    for (uint32_t i = 0; !rc && i < x->naggs; i++)
        rc = qagg_init_expr(&g->accs[i], x->aggs[i]);
    if (rc) {
        group_free(x, g);
        return rc;
    }
    x->ngroups++;
    *out = g;
    return 0;
}

/* A new group for row, its key in x->tmp. */
static int new_group(qexec *x, const qrow *row, group **out)
{
    buf_t b;
    buf_init(&b);
    msgpack_packer pk;
    mpw_init(&pk, &b);
    int rc = 0;
    if (msgpack_pack_array(&pk, 2) || qvalue_pack(&row->key, &pk) || qvalue_pack(&row->value, &pk))
        rc = -ENOMEM;
    if (!rc)
        rc = new_group_from(x, buf_rptr(&x->tmp), buf_readable(&x->tmp), buf_rptr(&b),
                            buf_readable(&b), out);
    buf_free(&b);
    return rc;
}

/* The group with key p: 1 and *out, or 0 with the index slot (*where) and
 * hash (*h) for a new one. -ENOMEM. */
static int lookup_group(qexec *x, const uint8_t *p, size_t n, group **out, size_t *where,
                        uint64_t *h)
{
    *where = 0;
    *h = tuple_hash(p, n);
    long at = tindex_find(x, &x->gindex, group_tuple, p, n, *h, where);
    if (at == -2)
        return -ENOMEM;
    if (at < 0)
        return 0;
    *out = &x->groups[at];
    return 1;
}

/* The group of a row: its GROUP BY values, packed into x->tmp. */
static int find_group(qexec *x, const qrow *row, group **out, qerror *err)
{
    msgpack_packer pk;
    buf_reset(&x->tmp);
    mpw_init(&pk, &x->tmp);
    if (msgpack_pack_array(&pk, x->q->ngroup))
        return -ENOMEM;
    for (uint32_t i = 0; i < x->q->ngroup; i++) {
        int rc = pack_expr(x, &pk, x->q->group[i], row, err);
        if (rc)
            return rc;
    }
    size_t where;
    uint64_t h;
    int rc = lookup_group(x, buf_rptr(&x->tmp), buf_readable(&x->tmp), out, &where, &h);
    if (rc)
        return rc < 0 ? rc : 0;
    rc = new_group(x, row, out);
    if (!rc)
        tindex_put(&x->gindex, where, x->ngroups - 1, h);
    return rc;
}

static int add_grouped(qexec *x, const qrow *row, qerror *err)
{
    group *g;
    int rc = find_group(x, row, &g, err);
    for (uint32_t i = 0; !rc && i < x->naggs; i++)
        rc = qagg_step(&g->accs[i], x->aggs[i], &x->env, row, err);
    return rc;
}

int qexec_add(qexec *x, const qrow *row, qerror *err)
{
    qerror dummy;
    if (!err)
        err = &dummy;
    if (x->enough)
        return QEXEC_ENOUGH;
    bool match = true;
    int rc = x->q->where ? qeval_match(x->q->where, &x->env, row, &match, err) : 0;
    if (rc || !match)
        return rc;
    x->matched++;
    return x->grouped ? add_grouped(x, row, err) : add_plain(x, row, err);
}

/* ---- finishing ---- */

static int emit_group(qexec *x, group *g, qerror *err)
{
    const uint8_t *p = g->first;
    size_t n = g->flen;
    qrow row;
    if (array_open(&p, &n) != 2 || !array_next(&p, &n, &row.key) || !array_next(&p, &n, &row.value))
        return -EINVAL;
    x->eval_group = g;
    int rc = project(x, &row, err);
    if (!rc)
        rc = keep_row(x, &row, err);
    x->eval_group = NULL;
    return rc;
}

/* Pack, merge and finish refuse an executor that has finished or packed. */
/* The start of finish, pack_partial and merge_partial: points a NULL
 * *err at dummy, and refuses an executor that has already finished. */
static int check_open(qexec *x, qerror **err, qerror *dummy)
{
    if (!*err)
        *err = dummy;
    if (!x->done)
        return 0;
    (*err)->pos = 0;
    snprintf((*err)->msg, sizeof (*err)->msg, "the query executor has already finished");
    return -EINVAL;
}

int qexec_finish(qexec *x, qerror *err)
{
    qerror dummy;
    int rc = check_open(x, &err, &dummy);
    if (rc)
        return rc;
    x->done = true;
    if (x->grouped) {
        /* an aggregate query without GROUP BY has one row, even over no rows */
        if (x->q->ngroup == 0 && x->ngroups == 0) {
            qrow none = {qv_undefined(), qv_undefined()};
            group *g;
            buf_reset(&x->tmp);
            msgpack_packer pk;
            mpw_init(&pk, &x->tmp);
            rc = msgpack_pack_array(&pk, 0) ? -ENOMEM : new_group(x, &none, &g);
            if (rc)
                return rc;
        }
        for (size_t i = 0; i < x->ngroups; i++) {
            rc = emit_group(x, &x->groups[i], err);
            if (rc)
                return rc;
        }
    }
    sort_rows(x);
    if (x->has_limit)
        cut_rows(x, x->limit < x->nrows ? (size_t)x->limit : x->nrows);
    return 0;
}

uint32_t qexec_ncolumns(const qexec *x) { return x->ncols; }

const char *qexec_column(const qexec *x, uint32_t i) { return i < x->ncols ? x->cols[i] : NULL; }

size_t qexec_nrows(const qexec *x) { return x->nrows; }

const uint8_t *qexec_row(const qexec *x, size_t i, size_t *len)
{
    if (i >= x->nrows)
        return NULL;
    *len = x->rows[i].rlen;
    return x->rows[i].row;
}

uint64_t qexec_matched(const qexec *x) { return x->matched; }

int64_t qexec_limit(const qexec *x)
{
    if (!x->has_limit)
        return -1;
    return x->limit > INT64_MAX ? INT64_MAX : (int64_t)x->limit;
}

/* ---- scatter and gather: partial results ----
 *
 * A partial result is one MessagePack array [kind, items]:
 *
 *   kind 0, a query without grouping:
 *     [0, [[row, sort], ...]]
 *   row: the projected row (an array of one value per column); sort: its
 *   ORDER BY values (an array of one value per ORDER BY item), or nil when
 *   the query has no ORDER BY. The rows are what the member's own
 *   qexec_finish would have returned: DISTINCT applied (keep_row keeps one
 *   of equal rows) and, with a LIMIT n, cut to n:
 *   - with ORDER BY, the member's best n. This is enough: a row r that
 *     every member holding it cut had, in each of them, n rows (distinct
 *     ones under DISTINCT) that order no later than r, and those were all
 *     sent, so the gatherer holds n rows (n distinct rows, as it dedupes
 *     the union) no later than r and its own best n never needs r. With
 *     DISTINCT the same row may come from several members and count once,
 *     but each member's n rows are distinct among themselves, so the n
 *     rows that beat r in one member are already n distinct rows.
 *     (Under DISTINCT the sort values are those of one of the equal rows,
 *     any one, as in a single executor; they are the row's own when the
 *     ORDER BY items are select items, as SQL requires.)
 *   - without ORDER BY, any n: when some member had n (distinct) rows the
 *     gatherer gets n, otherwise every member sent everything it had.
 *   qexec_add already stops at n rows (n distinct rows under DISTINCT);
 *   LIMIT 0 still keeps the first row, cut here.
 *
 *   kind 1, GROUP BY or aggregates:
 *     [1, [[key, first, [acc, ...]], ...]]
 *   key: the group's GROUP BY values (an array, empty without GROUP BY);
 *   first: the group's first row as [key, value] (plain items and the
 *   group keys are evaluated on it); one acc per aggregate of the query,
 *   in the executor's order (select list, then ORDER BY; the same query
 *   gives the same order), each a qagg_pack partial state. Nothing is cut:
 *   DISTINCT, ORDER BY and LIMIT apply to the final groups at the
 *   gatherer's qexec_finish. A member that matched no row sends no group;
 *   for an aggregate query without GROUP BY the gatherer's qexec_finish
 *   creates the one empty group when nobody sent it.
 *
 * Merging checks the whole partial (kind, shapes, the numbers of columns,
 * ORDER BY values, group keys and accumulators) before it changes
 * anything; what it cannot check in advance is an accumulator state that
 * qagg_merge refuses (another aggregate's) or a failure while merging
 * (-ENOMEM, -E2BIG), after which the executor holds part of the partial:
 * the query has failed and x is only good for qexec_free. */

#define PARTIAL_ROWS 0
#define PARTIAL_GROUPS 1

static int pack_rows(qexec *x, msgpack_packer *pk)
{
    int rc = msgpack_pack_array(pk, 2) || msgpack_pack_unsigned_int(pk, PARTIAL_ROWS) ||
             msgpack_pack_array(pk, x->nrows);
    for (size_t i = 0; !rc && i < x->nrows; i++) {
        const cand *c = &x->rows[i];
        rc = msgpack_pack_array(pk, 2) || mpw_raw(pk, c->row, c->rlen) ||
             (x->q->norder ? mpw_raw(pk, c->sort, c->slen) : msgpack_pack_nil(pk));
    }
    return rc ? -ENOMEM : 0;
}

static int pack_groups(qexec *x, msgpack_packer *pk)
{
    int rc = msgpack_pack_array(pk, 2) || msgpack_pack_unsigned_int(pk, PARTIAL_GROUPS) ||
             msgpack_pack_array(pk, x->ngroups);
    for (size_t i = 0; !rc && i < x->ngroups; i++) {
        const group *g = &x->groups[i];
        rc = msgpack_pack_array(pk, 3) || mpw_raw(pk, g->key, g->klen) ||
             mpw_raw(pk, g->first, g->flen) || msgpack_pack_array(pk, x->naggs);
        for (uint32_t k = 0; !rc && k < x->naggs; k++)
            rc = qagg_pack(&g->accs[k], pk);
    }
    return rc ? -ENOMEM : 0;
}

int qexec_pack_partial(qexec *x, void *pk, qerror *err)
{
    qerror dummy;
    int rc = check_open(x, &err, &dummy);
    if (rc)
        return rc;
    x->done = true;
    size_t count = x->grouped ? x->ngroups : x->nrows;
    if (count > UINT32_MAX) {
        err->pos = 0;
        snprintf(err->msg, sizeof err->msg, "a partial result of %zu %s is too large", count,
                 x->grouped ? "groups" : "rows");
        return -EINVAL;
    }
    if (x->grouped)
        return pack_groups(x, pk);
    /* the rows this member's qexec_finish would give (see above) */
    sort_rows(x);
    if (x->has_limit)
        cut_rows(x, x->limit < x->nrows ? (size_t)x->limit : x->nrows);
    return pack_rows(x, pk);
}

#define NO_ITEM SIZE_MAX

static int bad_partial(qerror *err, const char *what, size_t item)
{
    err->pos = 0;
    if (item == NO_ITEM)
        snprintf(err->msg, sizeof err->msg, "a partial query result is malformed: %s", what);
    else
        snprintf(err->msg, sizeof err->msg, "a partial query result is malformed: %s (item %zu)",
                 what, item);
    return -EINVAL;
}

/* Steps over one object, giving its bytes. */
static bool read_object(mp_cursor *c, const uint8_t **p, size_t *n)
{
    const uint8_t *start = c->p;
    if (mp_skip(c, MP_MAX_DEPTH_LIMIT))
        return false;
    *p = start;
    *n = (size_t)(c->p - start);
    return true;
}

/* Steps over an array of exactly count elements, giving its bytes. */
static bool read_tuple(mp_cursor *c, uint32_t count, const uint8_t **p, size_t *n)
{
    mp_cursor peek = *c;
    uint32_t k;
    return !mp_read_array(&peek, &k) && k == count && read_object(c, p, n);
}

/* A group's first row: [key, value], both readable as the finish will
 * read them (emit_group). */
static bool read_first(mp_cursor *c, const uint8_t **p, size_t *n)
{
    if (!read_object(c, p, n))
        return false;
    const uint8_t *q = *p;
    size_t left = *n;
    qvalue v;
    return array_open(&q, &left) == 2 && array_next(&q, &left, &v) &&
           array_next(&q, &left, &v) && left == 0;
}

/* One [row, sort] item. */
static bool read_row_item(const qexec *x, mp_cursor *c, const uint8_t **row, size_t *rlen,
                          const uint8_t **sort, size_t *slen)
{
    uint32_t k;
    if (mp_read_array(c, &k) || k != 2 || !read_tuple(c, x->ncols, row, rlen))
        return false;
    if (x->q->norder)
        return read_tuple(c, x->q->norder, sort, slen);
    *sort = NULL;
    *slen = 0;
    return mp_read_nil(c) == 0;
}

/* The header of one [key, first, [acc, ...]] item, leaving c at the first
 * acc. */
static bool read_group_item(const qexec *x, mp_cursor *c, const uint8_t **key, size_t *klen,
                            const uint8_t **first, size_t *flen, uint32_t *naccs)
{
    uint32_t k;
    return !mp_read_array(c, &k) && k == 3 && read_tuple(c, x->q->ngroup, key, klen) &&
           read_first(c, first, flen) && !mp_read_array(c, naccs);
}

/* Checks every item before anything is merged. */
static int check_items(const qexec *x, mp_cursor c, uint32_t count, qerror *err)
{
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *a, *b;
        size_t an, bn;
        uint32_t naccs;
        if (!x->grouped) {
            if (!read_row_item(x, &c, &a, &an, &b, &bn))
                return bad_partial(err, x->q->norder ? "a row is not [row of the query's columns, "
                                                       "its ORDER BY values]"
                                                     : "a row is not [row of the query's columns, nil]",
                                   i);
            continue;
        }
        if (!read_group_item(x, &c, &a, &an, &b, &bn, &naccs))
            return bad_partial(err, "a group is not [key of the GROUP BY values, first row as "
                                    "[key, value], accumulators]", i);
        if (naccs != x->naggs)
            return bad_partial(err, "a group has another number of accumulators than the query "
                                    "has aggregates", i);
        for (uint32_t k = 0; k < naccs; k++)
            if (!read_object(&c, &a, &an))
                return bad_partial(err, "an accumulator state", i);
    }
    return 0;
}

static int merge_rows(qexec *x, mp_cursor c, uint32_t count, qerror *err)
{
    for (uint32_t i = 0; i < count && !x->enough; i++) {
        const uint8_t *row = NULL, *sort = NULL;
        size_t rlen = 0, slen = 0;
        if (!read_row_item(x, &c, &row, &rlen, &sort, &slen)) /* checked already */
            return bad_partial(err, "a row", i);
        int rc = keep_ready(x, row, rlen, sort, slen);
        if (rc)
            return rc;
        after_keep(x);
    }
    /* also when the partial brought no row (LIMIT 0) */
    if (x->has_limit && !x->q->norder && x->nrows >= x->limit)
        x->enough = true;
    return x->enough ? QEXEC_ENOUGH : 0;
}

static int merge_group(qexec *x, mp_cursor *c, qerror *err)
{
    const uint8_t *key = NULL, *first = NULL;
    size_t klen = 0, flen = 0, where;
    uint32_t naccs = 0;
    uint64_t h;
    group *g;
    if (!read_group_item(x, c, &key, &klen, &first, &flen, &naccs) || naccs != x->naggs)
        return bad_partial(err, "a group", NO_ITEM); /* checked already */
    int rc = lookup_group(x, key, klen, &g, &where, &h);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        if ((rc = new_group_from(x, key, klen, first, flen, &g)))
            return rc;
        tindex_put(&x->gindex, where, x->ngroups - 1, h);
    }
    for (uint32_t k = 0; k < naccs; k++) {
        const uint8_t *p = NULL;
        size_t n = 0;
        if (!read_object(c, &p, &n))
            return bad_partial(err, "an accumulator state", NO_ITEM); /* checked already */
        rc = qagg_merge(&g->accs[k], p, n);
        if (rc) {
            char text[96];
            qexpr_format(x->aggs[k], text, sizeof text);
            err->pos = x->aggs[k]->pos;
            if (rc == -EINVAL)
                snprintf(err->msg, sizeof err->msg, "a partial query result is malformed: the "
                         "state of %s is not one of that aggregate", text);
            else if (rc == -E2BIG)
                snprintf(err->msg, sizeof err->msg, "too many distinct values for %s", text);
            else
                snprintf(err->msg, sizeof err->msg, "out of memory merging %s", text);
            return rc;
        }
    }
    return 0;
}

int qexec_merge_partial(qexec *x, const uint8_t *p, size_t n, qerror *err)
{
    qerror dummy;
    int rc = check_open(x, &err, &dummy);
    if (rc)
        return rc;
    mp_cursor c;
    uint32_t fields, count;
    uint64_t kind;
    if (!p || mp_check_one(p, n, MP_MAX_DEPTH_LIMIT))
        return bad_partial(err, "not one MessagePack object", NO_ITEM);
    mp_cursor_init(&c, p, n);
    if (mp_read_array(&c, &fields) || fields != 2 || mp_read_uint(&c, &kind) ||
        mp_read_array(&c, &count))
        return bad_partial(err, "not [kind, items]", NO_ITEM);
    if (kind != PARTIAL_ROWS && kind != PARTIAL_GROUPS)
        return bad_partial(err, "unknown kind", NO_ITEM);
    if ((kind == PARTIAL_GROUPS) != x->grouped) {
        err->pos = 0;
        snprintf(err->msg, sizeof err->msg, "a partial query result of a %s query, but this query "
                 "is %s", kind == PARTIAL_GROUPS ? "grouped" : "non-grouped",
                 x->grouped ? "grouped" : "not grouped");
        return -EINVAL;
    }
    if ((rc = check_items(x, c, count, err)))
        return rc;
    if (!x->grouped)
        return merge_rows(x, c, count, err);
    for (uint32_t i = 0; i < count; i++)
        if ((rc = merge_group(x, &c, err)))
            return rc;
    return 0;
}
