/* qagg.c - aggregate accumulators and their partial states (qagg.h). */
#include "region/qagg.h"

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "common/mp.h"

#define PARTIAL_FIELDS 8
enum { F_DISTINCT = 1, F_STAR = 2, F_FLOAT = 4 };

/* ---- exact sums -------------------------------------------------------------- */

/* Adds a 128-bit two's complement number (hi:lo); unsigned arithmetic
 * wraps like the 128-bit type would. Fewer than 2^63 additions of 64-bit
 * values cannot overflow 128 bits. */
static void add128(qagg_sum *s, uint64_t lo, uint64_t hi)
{
    uint64_t l = s->lo + lo;
    s->hi += hi + (l < s->lo);
    s->lo = l;
}

static void sum_number(qagg_sum *s, const qvalue *v)
{
    s->n++;
    if (v->type == QT_INT)
        add128(s, (uint64_t)v->v.i, v->v.i < 0 ? UINT64_MAX : 0);
    else if (v->type == QT_UINT)
        add128(s, v->v.u, 0);
    else {
        s->fsum += v->v.f;
        s->has_float = true;
    }
}

static void sum_merge(qagg_sum *s, const qagg_sum *o)
{
    s->n += o->n;
    add128(s, o->lo, o->hi);
    s->fsum += o->fsum;
    s->has_float |= o->has_float;
}

static double int128_double(const qagg_sum *s)
{
    /* Sums that fit 64 bits convert exactly: -2^64 + lo would lose a small
     * negative sum's low bits to rounding (-1 came out as 0) */
    if (s->hi == 0)
        return (double)s->lo;
    if (s->hi == UINT64_MAX && s->lo > INT64_MAX)
        return -(double)(~s->lo + 1); /* minus its magnitude, 2^64 - lo */
    /* hi as signed: the two's complement reading of its bits */
    double hi = s->hi >> 63 ? -(double)(~s->hi) - 1.0 : (double)s->hi;
    return hi * 18446744073709551616.0 + (double)s->lo;
}

/* SUM: NULL over no number, the integer sum while it fits 64 bits, else a
 * float (also as soon as a float was added). */
static qvalue sum_value(const qagg_sum *s)
{
    if (s->n == 0)
        return qv_null();
    if (s->has_float)
        return qv_float(int128_double(s) + s->fsum);
    if (s->hi == 0)
        return s->lo <= INT64_MAX ? qv_int((int64_t)s->lo)
                                  : (qvalue){.type = QT_UINT, .v.u = s->lo};
    if (s->hi == UINT64_MAX && s->lo > INT64_MAX)
        return qv_int((int64_t)(s->lo - INT64_MAX - 1) + INT64_MIN);
    return qv_float(int128_double(s));
}

static qvalue avg_value(const qagg_sum *s)
{
    if (s->n == 0)
        return qv_null();
    return qv_float((int128_double(s) + s->fsum) / (double)s->n);
}

/* ---- values kept by copy ------------------------------------------------------- */

/* The bytes a value refers to (none for numbers, booleans, nil). */
static const uint8_t *value_bytes(const qvalue *v, size_t *n)
{
    switch (v->type) {
    case QT_STR: case QT_BIN: *n = v->v.s.n; return v->v.s.p;
    case QT_ARRAY: case QT_MAP: *n = v->v.mp.n; return v->v.mp.p;
    default: *n = 0; return NULL;
    }
}

/* v pointing at a copy of its bytes at dst. */
static qvalue rebase(const qvalue *v, uint8_t *dst)
{
    qvalue c = *v;
    if (v->type == QT_STR || v->type == QT_BIN)
        c.v.s.p = dst;
    else if (v->type == QT_ARRAY || v->type == QT_MAP)
        c.v.mp.p = dst;
    return c;
}

static int cmp_raw(const qvalue *a, const qvalue *b)
{
    size_t an, bn;
    const uint8_t *ap = value_bytes(a, &an), *bp = value_bytes(b, &bn);
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(ap, bp, n) : 0;
    return c ? c : (an > bn) - (an < bn);
}

/* Of two values that qvalue_order finds equal, whether cand should replace
 * cur, so that which one is kept does not depend on the order they came
 * in: an integer over a float, else the smaller bits or encoding. */
static bool prefer(const qvalue *cand, const qvalue *cur)
{
    if (qvalue_is_number(cand) && qvalue_is_number(cur)) {
        if (cand->type != QT_FLOAT || cur->type != QT_FLOAT)
            return cand->type != QT_FLOAT && cur->type == QT_FLOAT;
        uint64_t x, y; /* equal floats: 0.0 and -0.0, or two NaNs */
        memcpy(&x, &cand->v.f, sizeof x);
        memcpy(&y, &cur->v.f, sizeof y);
        return x < y;
    }
    if (cand->type == QT_ARRAY || cand->type == QT_MAP)
        return cmp_raw(cand, cur) < 0;
    return false;
}

/* MIN/MAX: copies v into best_buf (unchanged on -ENOMEM). */
static int keep_best(qagg_acc *a, const qvalue *v)
{
    size_t n;
    const uint8_t *p = value_bytes(v, &n);
    if (n > a->best_cap) {
        uint8_t *nb = realloc(a->best_buf, n);
        if (!nb)
            return -ENOMEM;
        a->best_buf = nb;
        a->best_cap = n;
    }
    if (n)
        memcpy(a->best_buf, p, n);
    a->best = rebase(v, a->best_buf);
    return 0;
}

static int offer_best(qagg_acc *a, const qvalue *v)
{
    if (a->best.type != QT_UNDEFINED) {
        int c = qvalue_order(v, &a->best);
        if (a->fn == QAGG_MAX)
            c = -c;
        if (c > 0 || (c == 0 && !prefer(v, &a->best)))
            return 0;
    }
    return keep_best(a, v);
}

/* ---- DISTINCT sets ----------------------------------------------------------------- */

/* Open addressing with linear probing; a slot is free while its value is
 * UNDEFINED (which a set never holds). Copied bytes live in chunks that
 * never move, so slots can point into them. */
typedef struct slot {
    uint64_t hash;
    qvalue v;
} slot;

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    uint8_t data[];
} chunk;

struct qagg_set {
    slot *slots;
    size_t cap;   /* a power of two, or 0 */
    size_t count;
    size_t bytes; /* everything allocated for the set */
    chunk *chunks;
};

#define CHUNK_MIN 4096

static void set_free(struct qagg_set *s)
{
    if (!s)
        return;
    while (s->chunks) {
        chunk *c = s->chunks;
        s->chunks = c->next;
        free(c);
    }
    free(s->slots);
    free(s);
}

/* The slot holding a value equal to v, or the free slot where it goes. */
static slot *set_find(const struct qagg_set *s, const qvalue *v, uint64_t h)
{
    size_t mask = s->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot *sl = &s->slots[i];
        if (sl->v.type == QT_UNDEFINED || (sl->hash == h && qvalue_equal(&sl->v, v)))
            return sl;
    }
}

static int set_grow(struct qagg_set *s, size_t ncap)
{
    slot *ns = calloc(ncap, sizeof *ns), *old = s->slots;
    if (!ns)
        return -ENOMEM;
    size_t ocap = s->cap;
    s->slots = ns;
    s->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].v.type != QT_UNDEFINED)
            *set_find(s, &old[i].v, old[i].hash) = old[i];
    free(old);
    s->bytes += (ncap - ocap) * sizeof *ns;
    return 0;
}

/* Room for n bytes to copy: what a new chunk would add to s->bytes, 0 when
 * the current chunk has room. */
static size_t chunk_need(const struct qagg_set *s, size_t n)
{
    if (n == 0 || (s->chunks && s->chunks->cap - s->chunks->used >= n))
        return 0;
    return sizeof(chunk) + (n > CHUNK_MIN ? n : CHUNK_MIN);
}

static uint8_t *set_copy(struct qagg_set *s, const uint8_t *p, size_t n)
{
    if (chunk_need(s, n)) {
        size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
        chunk *c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->next = s->chunks;
        c->used = 0;
        c->cap = cap;
        s->chunks = c;
        s->bytes += sizeof *c + cap;
    }
    uint8_t *dst = s->chunks->data + s->chunks->used;
    memcpy(dst, p, n);
    s->chunks->used += n;
    return dst;
}

/* Adds v unless an equal value is there (for numbers the preferred
 * spelling stays). Checks the limit before changing anything. */
static int set_insert(qagg_acc *a, const qvalue *v)
{
    if (!a->set && !(a->set = calloc(1, sizeof *a->set)))
        return -ENOMEM;
    struct qagg_set *s = a->set;
    uint64_t h = qvalue_hash(v);
    if (s->cap) {
        slot *sl = set_find(s, v, h);
        if (sl->v.type != QT_UNDEFINED) {
            if (qvalue_is_number(v) && prefer(v, &sl->v))
                sl->v = *v;
            return 0;
        }
    }
    size_t n;
    const uint8_t *p = value_bytes(v, &n);
    bool grow = (s->count + 1) * 4 > s->cap * 3;
    size_t ncap = s->cap ? s->cap * 2 : 16;
    size_t more = (grow ? (ncap - s->cap) * sizeof(slot) : 0) + chunk_need(s, n);
    if (sizeof *s + s->bytes + more > a->max_bytes)
        return -E2BIG;
    if (grow && set_grow(s, ncap))
        return -ENOMEM;
    uint8_t *dst = NULL;
    if (n && !(dst = set_copy(s, p, n)))
        return -ENOMEM;
    slot *sl = set_find(s, v, h);
    sl->hash = h;
    sl->v = n ? rebase(v, dst) : *v;
    s->count++;
    return 0;
}

static int cmp_double(const void *x, const void *y)
{
    qvalue a = qv_float(*(const double *)x), b = qv_float(*(const double *)y);
    return qvalue_order(&a, &b);
}

/* The set's numbers summed: integers exactly, floats in ascending order
 * (a canonical order, so the float sum does not depend on arrival). */
static int set_sum(const struct qagg_set *s, qagg_sum *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return 0;
    double *f = malloc((s->count ? s->count : 1) * sizeof *f);
    size_t nf = 0;
    if (!f)
        return -ENOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        const qvalue *v = &s->slots[i].v;
        if (v->type == QT_FLOAT)
            f[nf++] = v->v.f;
        else if (qvalue_is_number(v))
            sum_number(out, v);
    }
    qsort(f, nf, sizeof *f, cmp_double);
    for (size_t i = 0; i < nf; i++)
        sum_number(out, &(qvalue){.type = QT_FLOAT, .v.f = f[i]});
    free(f);
    return 0;
}

/* ---- the accumulator ------------------------------------------------------------------ */

void qagg_init(qagg_acc *a, qagg fn, bool star, bool distinct)
{
    memset(a, 0, sizeof *a);
    a->fn = fn;
    a->star = star && fn == QAGG_COUNT;
    /* MIN/MAX of distinct values are MIN/MAX: no set needed */
    a->distinct = distinct && !a->star;
    a->best = qv_undefined();
    a->max_bytes = QAGG_DISTINCT_MAX_BYTES;
}

int qagg_init_expr(qagg_acc *a, const qexpr *e)
{
    if (!e || e->kind != QX_AGGREGATE || (!e->a && e->agg != QAGG_COUNT))
        return -EINVAL;
    qagg_init(a, e->agg, e->a == NULL, e->distinct);
    return 0;
}

void qagg_free(qagg_acc *a)
{
    free(a->best_buf);
    set_free(a->set);
    a->best_buf = NULL;
    a->best_cap = 0;
    a->set = NULL;
    a->best = qv_undefined();
}

static bool is_null(const qvalue *v) { return v->type == QT_NULL || v->type == QT_UNDEFINED; }

/* Whether a keeps a set, and whether a value belongs in it. */
static bool uses_set(const qagg_acc *a)
{
    return a->distinct && a->fn != QAGG_MIN && a->fn != QAGG_MAX;
}

static bool set_takes(const qagg_acc *a, const qvalue *v)
{
    return a->fn == QAGG_COUNT ? !is_null(v) : qvalue_is_number(v);
}

int qagg_add(qagg_acc *a, const qvalue *v)
{
    if (a->star) {
        a->s.n++;
        return 0;
    }
    if (uses_set(a))
        return set_takes(a, v) ? set_insert(a, v) : 0;
    switch (a->fn) {
    case QAGG_COUNT:
        a->s.n += !is_null(v);
        return 0;
    case QAGG_SUM: case QAGG_AVG:
        if (qvalue_is_number(v))
            sum_number(&a->s, v);
        return 0;
    case QAGG_MIN: case QAGG_MAX:
        return is_null(v) ? 0 : offer_best(a, v);
    }
    return -EINVAL;
}

int qagg_step(qagg_acc *a, const qexpr *e, const qenv *env, const qrow *row, qerror *err)
{
    qvalue v = qv_undefined();
    if (!a->star) {
        int rc = qeval(e->a, env, row, &v, err);
        if (rc)
            return rc;
    }
    return qagg_add(a, &v);
}

int qagg_result(qagg_acc *a, qvalue *out)
{
    qagg_sum s = a->s;
    if (uses_set(a) && a->fn == QAGG_COUNT) {
        s.n = a->set ? a->set->count : 0;
    } else if (uses_set(a)) {
        int rc = set_sum(a->set, &s);
        if (rc)
            return rc;
    }
    switch (a->fn) {
    case QAGG_COUNT:
        *out = s.n <= INT64_MAX ? qv_int((int64_t)s.n) : (qvalue){.type = QT_UINT, .v.u = s.n};
        return 0;
    case QAGG_SUM: *out = sum_value(&s); return 0;
    case QAGG_AVG: *out = avg_value(&s); return 0;
    case QAGG_MIN: case QAGG_MAX:
        *out = a->best.type == QT_UNDEFINED ? qv_null() : a->best;
        return 0;
    }
    return -EINVAL;
}

/* ---- partial states ---------------------------------------------------------------------- */

static int pack_set(const struct qagg_set *s, msgpack_packer *pk)
{
    int rc = msgpack_pack_array(pk, s->count);
    for (size_t i = 0; i < s->cap && !rc; i++)
        if (s->slots[i].v.type != QT_UNDEFINED)
            rc = qvalue_pack(&s->slots[i].v, pk);
    return rc;
}

int qagg_pack(const qagg_acc *a, void *pkv)
{
    msgpack_packer *pk = pkv;
    unsigned flags = (a->distinct ? F_DISTINCT : 0) | (a->star ? F_STAR : 0) |
                     (a->s.has_float ? F_FLOAT : 0);
    int rc = msgpack_pack_array(pk, PARTIAL_FIELDS);
    if (!rc) rc = msgpack_pack_unsigned_int(pk, (unsigned)a->fn);
    if (!rc) rc = msgpack_pack_unsigned_int(pk, flags);
    if (!rc) rc = msgpack_pack_uint64(pk, a->s.n);
    if (!rc) rc = msgpack_pack_uint64(pk, a->s.hi);
    if (!rc) rc = msgpack_pack_uint64(pk, a->s.lo);
    if (!rc) rc = msgpack_pack_double(pk, a->s.fsum);
    if (!rc) rc = a->best.type == QT_UNDEFINED ? msgpack_pack_nil(pk) : qvalue_pack(&a->best, pk);
    if (!rc) rc = a->set ? pack_set(a->set, pk) : msgpack_pack_nil(pk);
    return rc;
}

/* A partial, read and checked before anything is merged. */
typedef struct partial {
    qagg_sum s;
    qvalue best;       /* UNDEFINED: none */
    mp_cursor values;  /* at the first element of the set */
    uint32_t nvalues;
} partial;

/* Reads the object under the cursor as a value and steps over it. */
static bool read_value(mp_cursor *c, qvalue *v)
{
    size_t len = qvalue_decode(c->p, mp_left(c), MP_MAX_DEPTH_LIMIT, v);
    c->p += len;
    return len > 0;
}

static bool read_best(const qagg_acc *a, mp_cursor *c, partial *pt)
{
    if (!read_value(c, &pt->best))
        return false;
    if (pt->best.type == QT_NULL)
        pt->best = qv_undefined();
    return pt->best.type == QT_UNDEFINED || a->fn == QAGG_MIN || a->fn == QAGG_MAX;
}

/* The set: nil, or (for a DISTINCT accumulator) an array of values it
 * would take. */
static bool read_values(const qagg_acc *a, mp_cursor *c, partial *pt)
{
    if (mp_read_nil(c) == 0)
        return true;
    if (!uses_set(a) || mp_read_array(c, &pt->nvalues))
        return false;
    pt->values = *c;
    for (uint32_t i = 0; i < pt->nvalues; i++) {
        qvalue v;
        if (!read_value(c, &v) || !set_takes(a, &v))
            return false;
    }
    return true;
}

static int read_partial(const qagg_acc *a, const uint8_t *p, size_t n, partial *pt)
{
    mp_cursor c;
    uint32_t fields;
    uint64_t fn, flags;
    memset(pt, 0, sizeof *pt);
    if (mp_check_one(p, n, MP_MAX_DEPTH_LIMIT))
        return -EINVAL;
    mp_cursor_init(&c, p, n);
    if (mp_read_array(&c, &fields) || fields != PARTIAL_FIELDS || mp_read_uint(&c, &fn) ||
        mp_read_uint(&c, &flags) || mp_read_uint(&c, &pt->s.n) || mp_read_uint(&c, &pt->s.hi) ||
        mp_read_uint(&c, &pt->s.lo) || mp_read_double(&c, &pt->s.fsum))
        return -EINVAL;
    if (fn != (uint64_t)a->fn || flags > 7 || !(flags & F_DISTINCT) != !a->distinct ||
        !(flags & F_STAR) != !a->star)
        return -EINVAL;
    pt->s.has_float = flags & F_FLOAT;
    if (!read_best(a, &c, pt) || !read_values(a, &c, pt))
        return -EINVAL;
    return 0;
}

int qagg_merge(qagg_acc *a, const uint8_t *p, size_t n)
{
    partial pt;
    int rc = read_partial(a, p, n, &pt);
    if (rc)
        return rc;
    if (pt.best.type != QT_UNDEFINED && (rc = offer_best(a, &pt.best)))
        return rc;
    if (!uses_set(a)) {
        sum_merge(&a->s, &pt.s);
        return 0;
    }
    for (uint32_t i = 0; i < pt.nvalues; i++) {
        qvalue v;
        read_value(&pt.values, &v);
        if ((rc = set_insert(a, &v)))
            return rc;
    }
    return 0;
}
