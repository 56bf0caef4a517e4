/* Index definitions and their maintenance (see qindex.h). */
#include "region/qindex_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/hash.h"
#include "region/bucket.h"
#include "region/qeval.h"

#define QINDEX_VALUE_DEPTH 64 /* as the query handlers decode values */

int qindex_name_check(const char *name, size_t n)
{
    if (n == 0 || n > QINDEX_NAME_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return -EINVAL;
    }
    return 0;
}

int qindex_kind_parse(const char *s, size_t n, qindex_kind *out)
{
    if (n == 5 && strncasecmp(s, "range", 5) == 0)
        *out = QINDEX_RANGE;
    else if (n == 4 && strncasecmp(s, "hash", 4) == 0)
        *out = QINDEX_HASH;
    else
        return -EINVAL;
    return 0;
}

const char *qindex_kind_name(qindex_kind k) { return k == QINDEX_HASH ? "hash" : "range"; }

/* ---- paths ---- */

static bool push_field(qpath *out, const char *name, uint32_t len)
{
    if (out->n == QPATH_MAX)
        return false;
    out->s[out->n++] = (qpath_step){.name = name, .len = len};
    return true;
}

/* Entries source: the alias alone (`e`) is no row value yet: it becomes
 * the value only through .value / ['value']. */
enum { AT_VALUE = 0, AT_ENTRY = 1 };

static bool path_rec(const qexpr *e, const qpath_ctx *ctx, qpath *out, int *at, int depth)
{
    if (depth > QPATH_MAX + 1)
        return false;
    switch (e->kind) {
    case QX_IDENT: {
        bool is_alias = ctx->alias && strcmp(e->name, ctx->alias) == 0;
        *at = AT_VALUE;
        if (ctx->source == QSRC_KEYS)
            return false;
        if (ctx->source == QSRC_ENTRIES) {
            if (is_alias) {
                *at = AT_ENTRY;
                return true;
            }
            if (strcmp(e->name, "value") == 0)
                return true;
            if (strcmp(e->name, "key") == 0)
                return false;
            return push_field(out, e->name, e->name_len);
        }
        return is_alias ? true : push_field(out, e->name, e->name_len);
    }
    case QX_FIELD:
    case QX_SUBSCRIPT: {
        if (!path_rec(e->a, ctx, out, at, depth + 1))
            return false;
        const char *name = NULL;
        uint32_t len = 0;
        if (e->kind == QX_FIELD) {
            name = e->name;
            len = e->name_len;
        } else if (e->b->kind == QX_LITERAL && e->b->lit.type == QT_STR) {
            name = (const char *)e->b->lit.v.s.p;
            len = e->b->lit.v.s.n;
        } else if (e->b->kind == QX_LITERAL && e->b->lit.type == QT_INT && *at == AT_VALUE) {
            if (out->n == QPATH_MAX)
                return false;
            out->s[out->n++] = (qpath_step){.is_index = true, .index = e->b->lit.v.i};
            return true;
        } else {
            return false;
        }
        if (*at == AT_ENTRY) {
            *at = AT_VALUE;
            return len == 5 && memcmp(name, "value", 5) == 0;
        }
        return push_field(out, name, len);
    }
    default:
        return false;
    }
}

bool qpath_of(const qexpr *e, const qpath_ctx *ctx, qpath *out)
{
    int at = AT_VALUE;
    out->n = 0;
    return path_rec(e, ctx, out, &at, 0) && at == AT_VALUE && out->n > 0;
}

bool qpath_equal(const qpath *a, const qpath *b)
{
    if (a->n != b->n)
        return false;
    for (uint32_t i = 0; i < a->n; i++) {
        const qpath_step *x = &a->s[i], *y = &b->s[i];
        if (x->is_index != y->is_index)
            return false;
        if (x->is_index ? x->index != y->index
                        : x->len != y->len || memcmp(x->name, y->name, x->len) != 0)
            return false;
    }
    return true;
}

static const qpath_ctx index_ctx = {.source = QSRC_VALUES, .alias = NULL};

/* Parses text into an expression that is a path; *arena owns it. */
static int parse_path(const char *text, size_t len, qexpr **out, struct qarena **arena,
                      qpath *path, qerror *err)
{
    if (len > QINDEX_EXPR_MAX) {
        err->pos = QINDEX_EXPR_MAX;
        snprintf(err->msg, sizeof err->msg, "an index expression is at most %d bytes",
                 QINDEX_EXPR_MAX);
        return -EINVAL;
    }
    int rc = qexpr_parse(text, len, out, arena, err);
    if (rc)
        return rc;
    if (!qpath_of(*out, &index_ctx, path)) {
        err->pos = (*out)->pos;
        snprintf(err->msg, sizeof err->msg,
                 "an index expression is a path into the value, like status, customer.city, "
                 "items[0] or customer['first name'] (at most %d steps, no alias)",
                 QPATH_MAX);
        qarena_free(*arena);
        *arena = NULL;
        return -EINVAL;
    }
    return 0;
}

int qindex_expr_check(const char *text, size_t len, qerror *err)
{
    qexpr *e;
    struct qarena *a = NULL;
    qpath path;
    int rc = parse_path(text, len, &e, &a, &path, err);
    if (!rc)
        qarena_free(a);
    return rc;
}

/* ---- maintenance ---- */

static void invalidate(qindex *ix) { atomic_store(&ix->valid, false); }

/* The index key of a value: what WHERE's path evaluates to. */
static qvalue key_of(const qindex *ix, const uint8_t *value, uint32_t vlen)
{
    qrow row = {.key = qv_undefined(), .value = qv_undefined()};
    qvalue out = qv_undefined();
    if (!qvalue_decode(value, vlen, QINDEX_VALUE_DEPTH, &row.value))
        return out;
    qenv env = {.source = QSRC_VALUES};
    if (qeval(ix->expr, &env, &row, &out, NULL))
        return qv_undefined();
    return out;
}

/* Adds the part's change in size to the index's totals. */
static void account(qindex *ix, const ipart *p, uint64_t n0, uint64_t b0)
{
    atomic_fetch_add(&ix->entries, ipart_count(p) - n0);
    atomic_fetch_add(&ix->bytes, ipart_bytes(p) - b0);
}

static void apply(qindex *ix, ipart *p, const bucket_change *c)
{
    uint64_t n0 = ipart_count(p), b0 = ipart_bytes(p);
    switch (c->kind) {
    case BC_PUT: {
        qvalue v = key_of(ix, c->new_value, c->new_vlen);
        if (ipart_set(p, c->hash, c->key, c->klen, &v))
            invalidate(ix);
        break;
    }
    case BC_REMOVE:
        ipart_remove(p, c->hash, c->key, c->klen);
        break;
    case BC_DROP:
        ipart_clear(p);
        break;
    default: /* BC_CLEAR: its entries came as BC_REMOVEs */
        break;
    }
    account(ix, p, n0, b0);
}

static void on_change(void *ctx, uint32_t bucket, const bucket_change *c)
{
    qindex_set *set = ctx;
    for (int i = 0; i < QINDEX_MAX; i++) {
        qindex *ix = atomic_load_explicit(&set->slots[i], memory_order_acquire);
        if (!ix || !atomic_load_explicit(&ix->valid, memory_order_relaxed))
            continue;
        ipart *p = ix->parts[bucket];
        if (p)
            apply(ix, p, c);
    }
}

static void index_free(qindex *ix)
{
    for (uint32_t i = 0; i < ix->nbuckets; i++)
        ipart_free(ix->parts[i]);
    free(ix->parts);
    qarena_free(ix->arena);
    free(ix);
}

void qindex_unref(qindex *ix)
{
    if (ix && atomic_fetch_sub(&ix->refs, 1) == 1)
        index_free(ix);
}

static void set_free(void *ctx)
{
    qindex_set *set = ctx;
    for (int i = 0; i < QINDEX_MAX; i++)
        qindex_unref(atomic_load(&set->slots[i]));
    pthread_mutex_destroy(&set->lock);
    free(set);
}

/* r's index set, created and observing r on first use. NULL: no memory
 * (*rc -ENOMEM) or no observer slot left (*rc -ENOSPC). */
static qindex_set *set_of(region_t *r, bool create, int *rc)
{
    qindex_set *set = region_index_set(r);
    if (set || !create)
        return set;
    set = calloc(1, sizeof(*set));
    if (!set) {
        *rc = -ENOMEM;
        return NULL;
    }
    set->r = r;
    pthread_mutex_init(&set->lock, NULL);
    region_observer o = {.on_change = on_change, .ctx = set};
    /* no index yet: nothing to build per bucket */
    *rc = region_observe(r, &o, NULL, set_free);
    if (*rc) {
        pthread_mutex_destroy(&set->lock);
        free(set);
        return NULL;
    }
    qindex_set *in = region_index_set_install(r, set);
    if (in != set)
        region_unobserve(r, set); /* lost a race: set_free will not run for it */
    if (in != set) {
        pthread_mutex_destroy(&set->lock);
        free(set);
    }
    return in;
}

static qindex *slot_find(qindex_set *set, const char *name)
{
    for (int i = 0; i < QINDEX_MAX; i++) {
        qindex *ix = atomic_load(&set->slots[i]);
        if (ix && strcmp(ix->name, name) == 0)
            return ix;
    }
    return NULL;
}

typedef struct build_ctx {
    qindex *ix;
    uint32_t bucket;
    ipart *part;
    int rc;
} build_ctx;

static int build_visit(void *arg, const entry_view *e)
{
    build_ctx *bc = arg;
    qvalue v = key_of(bc->ix, e->value, e->vlen);
    uint64_t h = hash_key(e->key, e->klen); /* as the bucket_change's hash */
    if (ipart_set(bc->part, h, e->key, e->klen, &v)) {
        bc->rc = -ENOMEM;
        return 1;
    }
    return 0;
}

/* Under the bucket's lock: builds the index's part of the bucket. */
static int build_bucket(void *arg, struct bucket *b)
{
    build_ctx *bc = arg;
    bc->part = ipart_new(bc->ix->kind, (uint64_t)time(NULL) ^ ((uint64_t)bc->bucket << 32) ^
                                           (uint64_t)(uintptr_t)bc->ix);
    if (!bc->part)
        return -ENOMEM;
    bc->rc = 0;
    region_bucket_each_locked(b, build_visit, bc);
    if (bc->rc) {
        ipart_free(bc->part);
        return bc->rc;
    }
    bc->ix->parts[bc->bucket] = bc->part;
    account(bc->ix, bc->part, 0, 0);
    return 0;
}

static qindex *index_new(const region_t *r, const char *name, const char *expr, size_t elen,
                         qindex_kind kind, qerror *err, int *rc)
{
    qindex *ix = calloc(1, sizeof(*ix));
    uint32_t nb = region_cfg(r)->total_num_buckets;
    if (!ix || !(ix->parts = calloc(nb, sizeof(ipart *)))) {
        free(ix);
        *rc = -ENOMEM;
        return NULL;
    }
    *rc = parse_path(expr, elen, &ix->expr, &ix->arena, &ix->path, err);
    if (*rc) {
        free(ix->parts);
        free(ix);
        return NULL;
    }
    atomic_init(&ix->refs, 1);
    atomic_init(&ix->valid, true);
    snprintf(ix->name, sizeof ix->name, "%s", name);
    memcpy(ix->expr_text, expr, elen);
    ix->expr_text[elen] = 0;
    ix->kind = kind;
    ix->nbuckets = nb;
    return ix;
}

/* Under set->lock: takes ix out of its slot and frees its parts, each
 * under its bucket's lock, after which no writer can be using it. */
static int drop_part(void *arg, struct bucket *b)
{
    build_ctx *bc = arg;
    (void)b;
    ipart_free(bc->ix->parts[bc->bucket]);
    bc->ix->parts[bc->bucket] = NULL;
    return 0;
}

static void retire(qindex_set *set, int slot)
{
    qindex *ix = atomic_load(&set->slots[slot]);
    atomic_store(&set->slots[slot], NULL);
    build_ctx bc = {.ix = ix};
    for (uint32_t i = 0; i < ix->nbuckets; i++) {
        bc.bucket = i;
        region_bucket_run(set->r, i, drop_part, &bc);
    }
    qindex_unref(ix);
}

static int create(region_t *r, const char *name, const char *expr, size_t elen, qindex_kind kind,
                  qerror *err, bool build)
{
    qerror ignored;
    if (!err)
        err = &ignored;
    memset(err, 0, sizeof(*err));
    if (qindex_name_check(name, strlen(name)))
        return -EINVAL;
    int rc = 0;
    qindex *ix = index_new(r, name, expr, elen, kind, err, &rc);
    if (!ix)
        return rc;
    qindex_set *set = set_of(r, true, &rc);
    if (!set) {
        qindex_unref(ix);
        return rc;
    }
    pthread_mutex_lock(&set->lock);
    int slot = -1;
    rc = slot_find(set, name) ? -EEXIST : 0;
    for (int i = 0; !rc && i < QINDEX_MAX && slot < 0; i++)
        if (!atomic_load(&set->slots[i]))
            slot = i;
    if (!rc && slot < 0)
        rc = -ENOSPC;
    if (rc) {
        pthread_mutex_unlock(&set->lock);
        qindex_unref(ix);
        return rc;
    }
    /* Published before the build: a bucket's changes reach its part from
     * the moment build_bucket made it, under the same lock. */
    atomic_store_explicit(&set->slots[slot], ix, memory_order_release);
    set->order[slot] = ++set->seq;
    build_ctx bc = {.ix = ix};
    for (; build && ix->next_build < ix->nbuckets && !rc; ix->next_build++) {
        bc.bucket = ix->next_build;
        rc = region_bucket_run(r, bc.bucket, build_bucket, &bc);
    }
    if (rc)
        retire(set, slot);
    pthread_mutex_unlock(&set->lock);
    return rc;
}

int qindex_create(region_t *r, const char *name, const char *expr, size_t elen, qindex_kind kind,
                  qerror *err)
{
    return create(r, name, expr, elen, kind, err, true);
}

int qindex_create_deferred(region_t *r, const char *name, const char *expr, size_t elen,
                           qindex_kind kind, qerror *err)
{
    return create(r, name, expr, elen, kind, err, false);
}

uint32_t qindex_build_some(region_t *r, uint32_t max_buckets)
{
    int rc = 0;
    qindex_set *set = set_of(r, false, &rc);
    if (!set)
        return 0;
    uint32_t left = 0;
    pthread_mutex_lock(&set->lock);
    for (int i = 0; i < QINDEX_MAX; i++) {
        qindex *ix = atomic_load(&set->slots[i]);
        if (!ix)
            continue;
        build_ctx bc = {.ix = ix};
        for (; max_buckets && ix->next_build < ix->nbuckets; ix->next_build++, max_buckets--) {
            bc.bucket = ix->next_build;
            if (region_bucket_run(r, bc.bucket, build_bucket, &bc)) {
                invalidate(ix); /* probes read whole buckets; listed invalid */
                ix->next_build = ix->nbuckets;
                break;
            }
        }
        left += ix->nbuckets - ix->next_build;
    }
    pthread_mutex_unlock(&set->lock);
    return left;
}

int qindex_destroy(region_t *r, const char *name)
{
    int rc = 0;
    qindex_set *set = set_of(r, false, &rc);
    if (!set)
        return -ENOENT;
    pthread_mutex_lock(&set->lock);
    rc = -ENOENT;
    for (int i = 0; i < QINDEX_MAX; i++) {
        qindex *ix = atomic_load(&set->slots[i]);
        if (ix && strcmp(ix->name, name) == 0) {
            retire(set, i);
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&set->lock);
    return rc;
}

typedef struct count_ctx {
    qindex *ix;
    uint32_t bucket;
    uint64_t n;
} count_ctx;

static int count_part(void *arg, struct bucket *b)
{
    count_ctx *cc = arg;
    (void)b;
    const ipart *p = cc->ix->parts[cc->bucket];
    cc->n += p ? ipart_count(p) : 0;
    return 0;
}

int qindex_entries_in(region_t *r, const char *name, const uint8_t *bits, uint64_t *out)
{
    int rc = 0;
    qindex_set *set = set_of(r, false, &rc);
    if (!set)
        return -ENOENT;
    pthread_mutex_lock(&set->lock);
    qindex *ix = slot_find(set, name);
    if (ix)
        atomic_fetch_add(&ix->refs, 1);
    pthread_mutex_unlock(&set->lock);
    if (!ix)
        return -ENOENT;
    count_ctx cc = {.ix = ix};
    for (uint32_t i = 0; i < ix->nbuckets; i++) {
        if (!(bits[i / 8] & (1u << (i % 8))))
            continue;
        cc.bucket = i;
        region_bucket_run(r, i, count_part, &cc);
    }
    qindex_unref(ix);
    *out = cc.n;
    return 0;
}

static void info_of(const qindex *ix, qindex_info *out)
{
    memcpy(out->name, ix->name, sizeof out->name);
    memcpy(out->expr, ix->expr_text, sizeof out->expr);
    out->kind = ix->kind;
    out->entries = atomic_load(&((qindex *)ix)->entries);
    out->bytes = atomic_load(&((qindex *)ix)->bytes);
    out->valid = atomic_load(&((qindex *)ix)->valid);
}

size_t qindex_list(region_t *r, qindex_info *out, size_t cap)
{
    int rc = 0;
    qindex_set *set = set_of(r, false, &rc);
    if (!set)
        return 0;
    pthread_mutex_lock(&set->lock);
    int idx[QINDEX_MAX];
    size_t n = 0;
    for (int i = 0; i < QINDEX_MAX; i++)
        if (atomic_load(&set->slots[i]))
            idx[n++] = i;
    /* creation order: insertion sort on the sequence numbers */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && set->order[idx[j - 1]] > set->order[idx[j]]; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    for (size_t i = 0; i < n && i < cap; i++)
        info_of(atomic_load(&set->slots[idx[i]]), &out[i]);
    pthread_mutex_unlock(&set->lock);
    return n;
}

int qindex_get(region_t *r, const char *name, qindex_info *out)
{
    int rc = 0;
    qindex_set *set = set_of(r, false, &rc);
    if (!set)
        return -ENOENT;
    pthread_mutex_lock(&set->lock);
    qindex *ix = slot_find(set, name);
    if (ix)
        info_of(ix, out);
    pthread_mutex_unlock(&set->lock);
    return ix ? 0 : -ENOENT;
}
