/* The planner: which index a query reads through, and the probe that
 * reads a bucket through it (see qindex.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "region/bucket.h"
#include "region/qindex_impl.h"

#define MAX_CONJUNCTS 256

enum probe_kind { PK_EQ = 0, PK_IN = 1, PK_RANGE = 2, PK_NONE = 3 };

struct qindex_probe {
    qindex *ix; /* a reference */
    enum probe_kind kind;
    qvalue *vals; /* PK_EQ: one; PK_IN: sorted, distinct, indexable */
    uint32_t nvals;
    qvalue lo, hi; /* PK_RANGE */
    bool has_lo, has_hi, lo_incl, hi_incl;
    char *desc;
};

/* One conjunct in the normal form `path op constant`. */
typedef struct conj {
    const qexpr *e; /* the conjunct as written (for the plan's text) */
    qop op;         /* QOP_EQ, QOP_LT, QOP_LE, QOP_GT, QOP_GE; QOP_NONE: IN */
    qpath path;
    qvalue c;       /* the constant (not IN) */
    bool unknown;   /* c is a parameter not given (EXPLAIN without values) */
} conj;

typedef struct plan_in {
    const query_t *q;
    const qvalue *params;
    uint32_t nparams;
    qpath_ctx ctx;
    conj *cs;
    uint32_t n;
} plan_in;

static bool constant(const plan_in *in, const qexpr *e, qvalue *out)
{
    if (e->kind == QX_LITERAL) {
        *out = e->lit;
        return true;
    }
    if (e->kind == QX_PARAM) {
        *out = e->param >= 1 && e->param <= in->nparams ? in->params[e->param - 1] : qv_undefined();
        return true;
    }
    return false;
}

/* A parameter with no value: the plan of an EXPLAIN without values shows
 * the index it would use; such a probe finds nothing (and the executor
 * refuses to run the query anyway). */
static bool unknown_param(const plan_in *in, const qexpr *e)
{
    return e->kind == QX_PARAM && (e->param < 1 || e->param > in->nparams);
}

/* Whether c's constant can be looked up (or may be, once given). */
static bool usable(const conj *c) { return c->unknown || ipart_indexable(&c->c); }

static qop flip(qop op)
{
    switch (op) {
    case QOP_LT: return QOP_GT;
    case QOP_LE: return QOP_GE;
    case QOP_GT: return QOP_LT;
    case QOP_GE: return QOP_LE;
    default: return op;
    }
}

/* Adds e when it is an indexable conjunct; AND splits further. */
static void collect(plan_in *in, const qexpr *e)
{
    if (e->kind == QX_BINARY && e->op == QOP_AND) {
        collect(in, e->a);
        collect(in, e->b);
        return;
    }
    if (in->n == MAX_CONJUNCTS)
        return;
    conj *c = &in->cs[in->n];
    c->e = e;
    if (e->kind == QX_BINARY && (e->op == QOP_EQ || e->op == QOP_LT || e->op == QOP_LE ||
                                 e->op == QOP_GT || e->op == QOP_GE)) {
        if (qpath_of(e->a, &in->ctx, &c->path) && constant(in, e->b, &c->c)) {
            c->op = e->op;
            c->unknown = unknown_param(in, e->b);
            in->n++;
        } else if (qpath_of(e->b, &in->ctx, &c->path) && constant(in, e->a, &c->c)) {
            c->op = flip(e->op);
            c->unknown = unknown_param(in, e->a);
            in->n++;
        }
    } else if (e->kind == QX_IN && !e->negated && qpath_of(e->a, &in->ctx, &c->path)) {
        qvalue ignored = qv_undefined();
        for (uint32_t i = 0; i < e->nlist; i++)
            if (!constant(in, e->list[i], &ignored))
                return;
        c->op = QOP_NONE;
        c->unknown = false;
        in->n++;
    }
}

/* A candidate: what an index could do for the query. */
typedef struct cand {
    enum probe_kind kind;
    const conj *eq, *in, *lo, *hi;
} cand;

static int cmp_values(const void *a, const void *b)
{
    return qvalue_order(a, b);
}

/* The values of an IN conjunct that can match (sorted, distinct), or -1
 * when one could match without being indexable (an array or a map). */
static int in_values(const plan_in *in, const conj *c, qvalue **out, uint32_t *n)
{
    const qexpr *e = c->e;
    qvalue *v = malloc((e->nlist ? e->nlist : 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    uint32_t k = 0;
    for (uint32_t i = 0; i < e->nlist; i++) {
        qvalue x = qv_undefined();
        constant(in, e->list[i], &x);
        if (x.type == QT_ARRAY || x.type == QT_MAP) {
            free(v);
            return -1;
        }
        if (ipart_indexable(&x)) /* = NULL and = UNDEFINED are never TRUE */
            v[k++] = x;
    }
    qsort(v, k, sizeof(*v), cmp_values);
    uint32_t d = 0;
    for (uint32_t i = 0; i < k; i++)
        if (d == 0 || qvalue_order(&v[d - 1], &v[i]) != 0)
            v[d++] = v[i];
    *out = v;
    *n = d;
    return 0;
}

/* A tighter lower (upper) bound than cur? Same class assumed. */
static bool tighter(const conj *c, const conj *cur, bool lower)
{
    if (!cur)
        return true;
    int o = qvalue_order(&c->c, &cur->c);
    if (o == 0) /* exclusive beats inclusive */
        return c->op == (lower ? QOP_GT : QOP_LT);
    return lower ? o > 0 : o < 0;
}

static bool same_class(const qvalue *a, const qvalue *b)
{
    return qvalue_is_number(a) ? qvalue_is_number(b) : a->type == b->type;
}

/* What ix can do for the conjuncts. */
static cand consider(const plan_in *in, const qindex *ix)
{
    cand best = {.kind = PK_NONE};
    for (uint32_t i = 0; i < in->n; i++) {
        const conj *c = &in->cs[i];
        if (!qpath_equal(&c->path, &ix->path))
            continue;
        if (c->op == QOP_EQ && usable(c)) {
            best.kind = PK_EQ;
            best.eq = c;
            return best;
        }
        if (c->op == QOP_NONE && best.kind > PK_IN) {
            bool ok = true;
            for (uint32_t k = 0; k < c->e->nlist && ok; k++) {
                qvalue x = qv_undefined();
                constant(in, c->e->list[k], &x);
                ok = x.type != QT_ARRAY && x.type != QT_MAP;
            }
            if (ok) {
                best.kind = PK_IN;
                best.in = c;
            }
        }
        if (ix->kind != QINDEX_RANGE || best.kind < PK_RANGE || c->op == QOP_EQ ||
            c->op == QOP_NONE || !usable(c))
            continue;
        const conj *other = best.lo ? best.lo : best.hi;
        if (other && (other->unknown || c->unknown || !same_class(&other->c, &c->c)))
            continue; /* a second class: ignoring it only widens the probe */
        bool lower = c->op == QOP_GT || c->op == QOP_GE;
        if (lower && tighter(c, best.lo, true))
            best.lo = c;
        if (!lower && tighter(c, best.hi, false))
            best.hi = c;
        best.kind = PK_RANGE;
    }
    return best;
}

static char *describe(const cand *c, const qindex *ix)
{
    const conj *used[2] = {NULL, NULL};
    if (c->kind == PK_EQ)
        used[0] = c->eq;
    else if (c->kind == PK_IN)
        used[0] = c->in;
    else {
        used[0] = c->lo;
        used[1] = c->hi;
    }
    char text[2][512] = {"", ""};
    for (int i = 0; i < 2; i++)
        if (used[i])
            qexpr_format(used[i]->e, text[i], sizeof text[i]);
    const char *what = c->kind == PK_RANGE ? "index range" : "index lookup";
    size_t need = strlen(what) + strlen(text[0]) + strlen(text[1]) + strlen(ix->name) + 64;
    char *s = malloc(need);
    if (!s)
        return NULL;
    snprintf(s, need, "%s: %s%s%s using %s index %s", what, text[0],
             text[0][0] && text[1][0] ? " AND " : "", text[1], qindex_kind_name(ix->kind),
             ix->name);
    return s;
}

void qindex_probe_free(qindex_probe *p)
{
    if (!p)
        return;
    qindex_unref(p->ix);
    free(p->vals);
    free(p->desc);
    free(p);
}

static int probe_new(const plan_in *in, qindex *ix, const cand *c, qindex_probe **out)
{
    qindex_probe *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->kind = c->kind;
    if (c->kind == PK_EQ) {
        if (!(p->vals = malloc(sizeof(qvalue)))) {
            free(p);
            return -ENOMEM;
        }
        p->vals[0] = c->eq->c;
        p->nvals = 1;
    } else if (c->kind == PK_IN) {
        int rc = in_values(in, c->in, &p->vals, &p->nvals);
        if (rc) {
            free(p);
            return rc == -ENOMEM ? rc : 0;
        }
    } else {
        p->has_lo = c->lo != NULL;
        p->has_hi = c->hi != NULL;
        if (c->lo) {
            p->lo = c->lo->c;
            p->lo_incl = c->lo->op == QOP_GE;
        }
        if (c->hi) {
            p->hi = c->hi->c;
            p->hi_incl = c->hi->op == QOP_LE;
        }
    }
    if (!(p->desc = describe(c, ix))) {
        free(p->vals);
        free(p);
        return -ENOMEM;
    }
    atomic_fetch_add(&ix->refs, 1);
    p->ix = ix;
    *out = p;
    return 0;
}

int qindex_plan(region_t *r, const query_t *q, const qvalue *params, uint32_t nparams,
                qindex_probe **out)
{
    *out = NULL;
    qindex_set *set = region_index_set(r);
    if (!set || !q->where || q->source == QSRC_KEYS)
        return 0;
    plan_in in = {.q = q, .params = params, .nparams = nparams,
                  .ctx = {.source = q->source, .alias = q->alias}};
    in.cs = malloc(MAX_CONJUNCTS * sizeof(conj));
    if (!in.cs)
        return -ENOMEM;
    collect(&in, q->where);
    int rc = 0;
    pthread_mutex_lock(&set->lock);
    qindex *best_ix = NULL;
    cand best = {.kind = PK_NONE};
    uint64_t best_order = 0;
    for (int i = 0; i < QINDEX_MAX && in.n; i++) {
        qindex *ix = atomic_load(&set->slots[i]);
        if (!ix || !atomic_load(&ix->valid))
            continue;
        cand c = consider(&in, ix);
        if (c.kind < best.kind || (c.kind == best.kind && c.kind != PK_NONE &&
                                   set->order[i] < best_order)) {
            best = c;
            best_ix = ix;
            best_order = set->order[i];
        }
    }
    if (best_ix) /* the probe keeps constants by value: in.cs goes now */
        rc = probe_new(&in, best_ix, &best, out);
    pthread_mutex_unlock(&set->lock);
    free(in.cs);
    return rc;
}

const char *qindex_probe_describe(const qindex_probe *p) { return p->desc; }

/* ---- probing one bucket ---- */

typedef struct probe_run {
    const qindex_probe *p;
    bucket_t *b;
    region_visit_fn fn;
    void *arg;
    int rc;
} probe_run;

static int visit_key(void *arg, uint64_t khash, const uint8_t *key, uint32_t klen)
{
    probe_run *run = arg;
    const entry_t *e = bucket_locked_find(run->b, khash, key, klen);
    if (!e || e->tomb)
        return 0; /* cannot happen: the part follows the bucket */
    entry_view v;
    entry_to_view(e, &v);
    return run->fn(run->arg, &v);
}

static int visit_all(void *arg, const entry_view *e)
{
    probe_run *run = arg;
    run->rc = run->fn(run->arg, e);
    return run->rc;
}

static int probe_locked(void *arg, struct bucket *b)
{
    probe_run *run = arg;
    const qindex_probe *p = run->p;
    run->b = b;
    ipart *part = p->ix->parts[b->id];
    if (!part || !atomic_load(&p->ix->valid)) {
        run->rc = 0;
        bucket_locked_each(b, visit_all, run);
        return run->rc;
    }
    if (p->kind == PK_RANGE) {
        if ((p->has_lo && !ipart_indexable(&p->lo)) || (p->has_hi && !ipart_indexable(&p->hi)))
            return 0; /* a parameter without a value */
        return ipart_range(part, p->has_lo ? &p->lo : NULL, p->lo_incl,
                           p->has_hi ? &p->hi : NULL, p->hi_incl, visit_key, run);
    }
    for (uint32_t i = 0; i < p->nvals; i++) {
        int rc = ipart_eq(part, &p->vals[i], visit_key, run);
        if (rc)
            return rc;
    }
    return 0;
}

int qindex_probe_bucket(const qindex_probe *p, region_t *r, uint32_t bucket, region_visit_fn fn,
                        void *arg)
{
    if (bucket >= p->ix->nbuckets)
        return 0;
    probe_run run = {.p = p, .fn = fn, .arg = arg};
    return region_bucket_run(r, bucket, probe_locked, &run);
}
