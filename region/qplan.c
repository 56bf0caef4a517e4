/* Query plans in words (see qplan.h). */
#include "region/qplan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing line of text. */
typedef struct line {
    char *p;
    size_t n, cap;
    bool failed;
} line;

static void put(line *l, const char *s, size_t n)
{
    if (l->failed)
        return;
    if (l->n + n + 1 > l->cap) {
        size_t cap = (l->n + n + 1) * 2;
        char *p = realloc(l->p, cap);
        if (!p) {
            l->failed = true;
            return;
        }
        l->p = p;
        l->cap = cap;
    }
    memcpy(l->p + l->n, s, n);
    l->n += n;
    l->p[l->n] = 0;
}

static void puts_(line *l, const char *s) { put(l, s, strlen(s)); }

static void put_expr(line *l, const qexpr *e)
{
    size_t need = qexpr_format(e, NULL, 0) + 1;
    char *s = malloc(need);
    if (!s) {
        l->failed = true;
        return;
    }
    qexpr_format(e, s, need);
    puts_(l, s);
    free(s);
}

/* Ends the line: hands it to emit and starts the next. */
static int emit_line(line *l, void (*emit)(void *, const char *), void *arg)
{
    if (l->failed)
        return -ENOMEM;
    emit(arg, l->p ? l->p : "");
    l->n = 0;
    if (l->p)
        l->p[0] = 0;
    return 0;
}

static const char *source_name(qsource s)
{
    return s == QSRC_KEYS ? ".keys" : s == QSRC_ENTRIES ? ".entries" : "";
}

static void describe_read(line *l, const query_t *q, bool clustered, const char *access)
{
    if (access) {
        puts_(l, clustered ? "scatter: every member reads the buckets it is primary for of /"
                           : "read /");
        puts_(l, q->region);
        puts_(l, source_name(q->source));
        puts_(l, " through an index: ");
        puts_(l, access);
        return;
    }
    puts_(l, clustered ? "scatter: every member reads the buckets it is primary for of /"
                       : "scan: every entry of /");
    puts_(l, q->region);
    puts_(l, source_name(q->source));
    puts_(l, q->source == QSRC_KEYS ? " (keys only)" : "");
    puts_(l, " (full scan: no index applies)");
}

static void describe_groups(line *l, const query_t *q, bool clustered)
{
    if (q->ngroup) {
        puts_(l, "group by: ");
        for (uint32_t i = 0; i < q->ngroup; i++) {
            if (i)
                puts_(l, ", ");
            put_expr(l, q->group[i]);
        }
    } else {
        puts_(l, "aggregate: one group over every matching entry");
    }
    puts_(l, clustered ? "; each member keeps partial aggregate states, the gatherer merges them"
                       : "");
}

static void describe_order(line *l, const query_t *q, bool clustered)
{
    puts_(l, "order by: ");
    for (uint32_t i = 0; i < q->norder; i++) {
        if (i)
            puts_(l, ", ");
        put_expr(l, q->order[i].expr);
        puts_(l, q->order[i].desc ? " DESC" : "");
    }
    if (q->has_limit && q->ngroup == 0 && !q->has_aggregates)
        puts_(l, clustered ? "; each member sends only its best rows up to the limit"
                           : "; only the best rows up to the limit are kept while scanning");
}

static void describe_limit(line *l, const query_t *q)
{
    char num[48];
    puts_(l, "limit: ");
    if (q->limit_param)
        snprintf(num, sizeof num, "$%u", q->limit_param);
    else
        snprintf(num, sizeof num, "%" PRIu64, q->limit);
    puts_(l, num);
    if (!q->norder && !q->ngroup && !q->has_aggregates)
        puts_(l, q->distinct ? " (the scan stops at that many distinct rows)"
                             : " (the scan stops at that many rows)");
}

static void describe_columns(line *l, const query_t *q)
{
    puts_(l, "columns: ");
    if (q->star) {
        puts_(l, q->source == QSRC_ENTRIES ? "key, value" : q->source == QSRC_KEYS ? "key" : "value");
        return;
    }
    for (uint32_t i = 0; i < q->nitems; i++) {
        if (i)
            puts_(l, ", ");
        put_expr(l, q->items[i].expr);
        if (q->items[i].as) {
            puts_(l, " AS ");
            puts_(l, q->items[i].as);
        }
    }
}

int qplan_describe(const query_t *q, bool clustered, const char *access,
                   void (*emit)(void *arg, const char *line), void *arg)
{
    line l = {0};
    int rc;
    describe_read(&l, q, clustered, access);
    rc = emit_line(&l, emit, arg);
    if (!rc && q->where) {
        puts_(&l, "filter: ");
        put_expr(&l, q->where);
        rc = emit_line(&l, emit, arg);
    }
    if (!rc && (q->ngroup || q->has_aggregates)) {
        describe_groups(&l, q, clustered);
        rc = emit_line(&l, emit, arg);
    }
    if (!rc && q->distinct) {
        puts_(&l, "distinct: duplicate rows dropped (numbers by value: 1 and 1.0 are one)");
        rc = emit_line(&l, emit, arg);
    }
    if (!rc && q->norder) {
        describe_order(&l, q, clustered);
        rc = emit_line(&l, emit, arg);
    }
    if (!rc && q->has_limit) {
        describe_limit(&l, q);
        rc = emit_line(&l, emit, arg);
    }
    if (!rc) {
        describe_columns(&l, q);
        rc = emit_line(&l, emit, arg);
    }
    free(l.p);
    return rc;
}
