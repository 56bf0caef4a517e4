/* qindex_impl.h - the insides of indexes, shared by qindex.c (definitions
 * and maintenance) and qindex_plan.c (planner and probes) only. */
#ifndef AGATE_REGION_QINDEX_IMPL_H
#define AGATE_REGION_QINDEX_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "region/qindex.h"

#define QPATH_MAX 32 /* steps of an indexable path */

/* One step of a path below the entry's value: a field (also ['name']) or
 * an integer subscript. */
typedef struct qpath_step {
    bool is_index;
    const char *name; /* field: bytes (not NUL-terminated) */
    uint32_t len;
    int64_t index;    /* array subscript */
} qpath_step;

typedef struct qpath {
    uint32_t n;
    qpath_step s[QPATH_MAX];
} qpath;

/* The alias context a path is read in. */
typedef struct qpath_ctx {
    qsource source;
    const char *alias; /* NULL: none */
} qpath_ctx;

/* The steps of e below the value, when e is a path in ctx (see qindex.h);
 * false otherwise (an expression, the key, the value itself). */
bool qpath_of(const qexpr *e, const qpath_ctx *ctx, qpath *out);
bool qpath_equal(const qpath *a, const qpath *b);

typedef struct qindex {
    _Atomic int refs;  /* the set's, and each probe's */
    char name[QINDEX_NAME_MAX + 1];
    char expr_text[QINDEX_EXPR_MAX + 1];
    qindex_kind kind;
    qexpr *expr;       /* in arena */
    struct qarena *arena;
    qpath path;        /* points into arena */
    _Atomic bool valid;
    uint32_t nbuckets;
    uint32_t next_build; /* buckets [0, next_build) are built (under the set's lock) */
    ipart **parts;     /* per bucket, under that bucket's lock; NULL: not built or gone */
    _Atomic uint64_t entries, bytes;
} qindex;

typedef struct qindex_set {
    region_t *r;
    pthread_mutex_t lock;            /* create, destroy */
    _Atomic(qindex *) slots[QINDEX_MAX]; /* read by writers under bucket locks */
    uint64_t order[QINDEX_MAX];      /* creation sequence of each slot (listing order) */
    uint64_t seq;
} qindex_set;

void qindex_unref(qindex *ix);

#endif
