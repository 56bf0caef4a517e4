#include "server/query_part.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mpw.h"
#include "common/proto.h"
#include "region/qast.h"
#include "region/qexec.h"
#include "region/qindex.h"
#include "server/registry.h"

#define PART_PAGE_ENTRIES 512
#define PART_VALUE_DEPTH 64

static void qpart_run(qjob *j);

qpart_job *qpart_new(const char *region, const uint8_t *text, uint32_t tlen,
                     const uint8_t *params_raw, size_t params_len, const uint8_t *want,
                     uint32_t nbits)
{
    static const uint8_t no_params[] = {0x90}; /* an empty array */
    if (!params_raw || !params_len) {
        params_raw = no_params;
        params_len = sizeof no_params;
    }
    qpart_job *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    snprintf(p->region, sizeof p->region, "%s", region);
    p->text = malloc(tlen ? tlen : 1);
    p->params_raw = malloc(params_len);
    p->want = want ? malloc((nbits + 7) / 8) : NULL;
    if (!p->text || !p->params_raw || (want && !p->want)) {
        qpart_free(p);
        return NULL;
    }
    memcpy(p->text, text, tlen);
    p->tlen = tlen;
    memcpy(p->params_raw, params_raw, params_len);
    p->params_len = params_len;
    if (want)
        memcpy(p->want, want, (nbits + 7) / 8);
    buf_init(&p->partial);
    p->job.run = qpart_run;
    /* a job the pool never runs (the server is stopping) reports that */
    p->fail.status = ST_SHUTTING_DOWN;
    snprintf(p->fail.msg, sizeof p->fail.msg, "QUERY: the server is stopping");
    return p;
}

void qpart_free(qpart_job *p)
{
    if (!p)
        return;
    free(p->text);
    free(p->params_raw);
    free(p->want);
    free(p->covered);
    buf_free(&p->partial);
    free(p);
}

static void fail(qpart_job *p, int status, const char *fmt, const char *detail)
{
    if (p->fail.status)
        return;
    p->fail.status = status;
    snprintf(p->fail.msg, sizeof p->fail.msg, fmt, detail);
}

/* ---- the scan ---- */

typedef struct part_scan {
    qpart_job *p;
    const qindex_probe *probe; /* NULL: every entry is read */
    qexec *ex;
    qsource source;
    qerror err;
    int rc;
} part_scan;

enum { SCAN_ENOUGH = 1, SCAN_ERROR = 2, SCAN_TIMEOUT = 3, SCAN_CANCELLED = 4 };

static int visit(void *arg, const entry_view *e)
{
    part_scan *s = arg;
    if (e->tomb)
        return 0;
    s->p->scanned++;
    qrow row;
    row.key = e->key_is_str ? qv_str(e->key, e->klen)
                            : (qvalue){.type = QT_BIN, .v.s = {e->key, e->klen}};
    row.value = qv_undefined();
    if (s->source != QSRC_KEYS &&
        !qvalue_decode(e->value, e->vlen, PART_VALUE_DEPTH, &row.value))
        row.value = qv_undefined(); /* values are checked on write: cannot happen */
    int rc = qexec_add(s->ex, &row, &s->err);
    if (rc == QEXEC_ENOUGH)
        return SCAN_ENOUGH;
    if (rc < 0) {
        s->rc = rc;
        return SCAN_ERROR;
    }
    /* the clock and the cancel flag are read every 256 rows: cheap, and
     * fine-grained enough (a few hundred microseconds) */
    if ((s->p->scanned & 255) == 0) {
        if (atomic_load_explicit(&s->p->job.cancel, memory_order_relaxed))
            return SCAN_CANCELLED;
        if (s->p->deadline_us && query_now_us() > s->p->deadline_us)
            return SCAN_TIMEOUT;
    }
    return 0;
}

/* Feeds bucket b's live entries into the executor: those an index
 * selects (under the bucket's lock: an index lookup is short), else every
 * entry, page by page (each page holds the bucket's lock only while it is
 * read). */
static int scan_bucket(region_t *r, uint32_t b, part_scan *s)
{
    if (s->probe)
        return qindex_probe_bucket(s->probe, r, b, visit, s);
    region_page_bound bound = {.limit = PART_PAGE_ENTRIES, .max_bytes = SIZE_MAX,
                               .with_values = true};
    uint64_t cursor = 0, next;
    int rc;
    do {
        rc = region_image_scan(r, b, cursor, &bound, visit, s, &next);
        cursor = next;
    } while (rc == 0 && cursor);
    return rc;
}

static bool wanted(const qpart_job *p, uint32_t b)
{
    return !p->want || (p->want[b / 8] >> (b % 8) & 1);
}

/* Scans every wanted bucket (primary here, when primary_only) and notes
 * it in covered; a bucket that stopped being primary here during its scan
 * fails the part (the gatherer would count it twice or not at all). */
static int scan_buckets(qpart_job *p, region_t *r, part_scan *s)
{
    int rc = 0;
    for (uint32_t b = 0; b < p->nbuckets && rc == 0; b++) {
        if (!wanted(p, b))
            continue;
        if (p->primary_only && region_bucket_role(r, b) != ROLE_PRIMARY)
            continue;
        rc = scan_bucket(r, b, s);
        if (p->primary_only && region_bucket_role(r, b) != ROLE_PRIMARY) {
            fail(p, ST_UNAVAILABLE, "%s", "QUERY: buckets moved during the query; retry");
            return -1;
        }
        p->covered[b / 8] |= (uint8_t)(1u << (b % 8));
    }
    if (rc == SCAN_ENOUGH) /* no later row can change the result: the rest counts as run */
        for (uint32_t b = 0; b < p->nbuckets; b++)
            if (wanted(p, b) && (!p->primary_only || region_bucket_role(r, b) == ROLE_PRIMARY))
                p->covered[b / 8] |= (uint8_t)(1u << (b % 8));
    return rc;
}

static void scan_failed(qpart_job *p, int rc, const part_scan *s)
{
    char why[300];
    switch (rc) {
    case SCAN_TIMEOUT:
        snprintf(why, sizeof why, "QUERY: timed out (%llu entries scanned); narrow the query "
                 "or raise timeout_ms", (unsigned long long)p->scanned);
        fail(p, ST_UNAVAILABLE, "%s", why);
        break;
    case SCAN_CANCELLED:
        fail(p, ST_CANCELLED, "%s", "QUERY: cancelled");
        break;
    case SCAN_ERROR:
        query_exec_fail(&p->fail, s->rc, &s->err);
        break;
    default:
        fail(p, ST_NO_MEMORY, "%s", "QUERY: out of memory");
    }
}

/* The job's run: parse, look the region up, scan, pack the partial. */
static void qpart_run(qjob *j)
{
    qpart_job *p = (qpart_job *)j;
    query_t *q = NULL;
    qexec *ex = NULL;
    qerror err;
    p->fail.status = 0;
    qvalue params[QUERY_MAX_PARAMS];
    uint32_t nparams = 0;
    int rc = query_parse(p->text, p->tlen, &q, &err);
    if (rc) {
        query_exec_fail(&p->fail, rc, &err);
        return;
    }
    region_t *r = registry_find(j->w->srv->registry, (const uint8_t *)q->region,
                                strlen(q->region));
    if (!r) {
        fail(p, ST_UNKNOWN_REGION, "QUERY: no region named '%s'", q->region);
        goto out;
    }
    p->nbuckets = region_cfg(r)->total_num_buckets;
    p->covered = calloc(1, (p->nbuckets + 7) / 8);
    query_decode_params(p->params_raw, p->params_len, params, &nparams);
    rc = p->covered ? qexec_new(q, params, nparams, &ex, &err) : -ENOMEM;
    if (rc) {
        query_exec_fail(&p->fail, rc, &err);
        goto out;
    }
    qindex_probe *probe = NULL;
    if (qindex_plan(r, q, params, nparams, &probe) < 0) {
        fail(p, ST_NO_MEMORY, "%s", "QUERY: out of memory");
        goto out;
    }
    part_scan s = {.p = p, .probe = probe, .ex = ex, .source = q->source};
    rc = scan_buckets(p, r, &s);
    qindex_probe_free(probe);
    if (rc > 0 && rc != SCAN_ENOUGH)
        scan_failed(p, rc, &s);
    if (!p->fail.status) {
        msgpack_packer pk;
        mpw_init(&pk, &p->partial);
        p->matched = qexec_matched(ex);
        rc = qexec_pack_partial(ex, &pk, &err);
        if (rc)
            query_exec_fail(&p->fail, rc, &err);
    }
out:
    qexec_free(ex);
    query_free(q);
}

