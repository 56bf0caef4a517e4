#include "server/query_cursor.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "region/qexec.h"
#include "region/qindex.h"
#include "server/link.h"
#include "server/query_part.h"
#include "server/registry.h"
#include "server/worker.h"

/* Extra time a member's answer may take beyond the query's own timeout. */
#define PART_LINK_MARGIN_MS 5000

struct qcursor {
    uint64_t id;
    conn_t *conn;
    worker_t *w;
    server_t *srv;
    qcursor *next; /* the connection's cursors */
    char region[REGION_NAME_MAX + 1];
    query_t *q;    /* for this worker's executors; jobs parse their own */
    char *text;
    uint32_t tlen;
    uint8_t *params_raw;
    size_t params_len;
    qvalue *params;
    uint32_t nparams;
    bool streaming;
    uint32_t nbuckets;
    uint32_t next_bucket; /* streaming: the first bucket not run yet */
    uint32_t batch;       /* streaming: buckets per batch */
    bool gathered;        /* all buckets run */
    qexec *shape;         /* an unused executor: the columns, for any page */
    qexec *ex;            /* finished rows being sent, or NULL */
    uint64_t pages;       /* pages sent */
    size_t row_pos;
    int64_t limit;        /* -1: none */
    uint64_t emitted;
    uint64_t matched, scanned;
    struct event *idle_ev;
    /* the request being answered */
    bool busy;
    uint64_t req_id;
    int64_t t0, timeout_ms;
    uint32_t page_rows;
    buf_t page;           /* packed rows of the page so far */
    uint32_t page_n;
    /* the batch in flight */
    qexec *gx;
    uint8_t *want, *covered;
    bool overlap;
    uint32_t pending;     /* parts not answered yet */
    qpart_job *local;
    struct part_ref *parts; /* the batch's QUERY_PARTs to other members */
    size_t nparts;
    query_fail fail;
    bool dead;            /* closed: freed once pending is 0 */
};

static void serve(qcursor *cur);

/* ---- life ---- */

/* A QUERY_PART sent for the batch: where, and its request id there. */
typedef struct part_ref {
    link_t *l;
    uint64_t req_id;
    bool answered;
} part_ref;

static void parts_forget(qcursor *cur)
{
    free(cur->parts);
    cur->parts = NULL;
    cur->nparts = 0;
}

/* Asks the members still working on the batch's parts to stop (their
 * answers, CANCELLED, still come and are counted down). An unanswered
 * part's link is alive: a link that fails or is freed answers its
 * requests first. */
static void cancel_parts(qcursor *cur)
{
    for (size_t i = 0; i < cur->nparts; i++) {
        part_ref *pr = &cur->parts[i];
        if (pr->answered)
            continue;
        uint8_t arg[9];
        arg[0] = 0xcf; /* uint64 */
        for (int k = 0; k < 8; k++)
            arg[1 + k] = (uint8_t)(pr->req_id >> (56 - 8 * k));
        link_request(pr->l, OP_QUERY_CANCEL, arg, sizeof arg, 1, NULL, NULL);
    }
}

static void cursor_free(qcursor *cur)
{
    parts_forget(cur);
    if (cur->idle_ev)
        event_free(cur->idle_ev);
    qexec_free(cur->shape);
    qexec_free(cur->ex);
    qexec_free(cur->gx);
    query_free(cur->q);
    free(cur->text);
    free(cur->params_raw);
    free(cur->params);
    free(cur->want);
    free(cur->covered);
    buf_free(&cur->page);
    free(cur);
}

static void unlink_cursor(qcursor *cur)
{
    for (qcursor **p = &cur->conn->cursors; *p; p = &(*p)->next)
        if (*p == cur) {
            *p = cur->next;
            cur->conn->ncursors--;
            return;
        }
}

/* Ends the cursor: off its connection now, freed once nothing it sent out
 * can still answer. Its owed reply (if busy) must have been given. */
static void cursor_end(qcursor *cur)
{
    if (cur->dead)
        return;
    cur->dead = true;
    unlink_cursor(cur);
    if (cur->local)
        atomic_store(&cur->local->job.cancel, true);
    cancel_parts(cur);
    if (cur->pending == 0)
        cursor_free(cur);
}

static qcursor *find(conn_t *c, uint64_t id)
{
    for (qcursor *cur = c->cursors; cur; cur = cur->next)
        if (cur->id == id)
            return cur;
    return NULL;
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    qcursor *cur = arg;
    worker_enter(cur->w);
    if (!cur->busy)
        cursor_end(cur);
    worker_leave(cur->w);
}

static void arm_idle(qcursor *cur)
{
    struct timeval tv = {QUERY_CURSOR_IDLE_MS / 1000, (QUERY_CURSOR_IDLE_MS % 1000) * 1000};
    event_add(cur->idle_ev, &tv);
}

/* ---- answering ---- */

/* A req_ctx for the owed reply (the request itself is gone). */
static void late_ctx(qcursor *cur, msg_request *req, req_ctx *x)
{
    *req = (msg_request){.id = cur->req_id};
    *x = (req_ctx){.conn = cur->conn, .w = cur->w, .srv = cur->srv, .req = req};
    msgpack_packer_init(&x->pk, cur->conn, conn_pack_write);
}

/* Ends the request being answered: the reply went out (or is dropped). */
static void request_done(qcursor *cur)
{
    conn_t *c = cur->conn;
    cur->busy = false;
    if (!c->dead)
        conn_kick(c);
    conn_wait_done(c); /* may free a dead c */
}

static void reply_fail(qcursor *cur, const query_fail *f)
{
    msg_request req;
    req_ctx x;
    if (!cur->conn->dead) {
        late_ctx(cur, &req, &x);
        query_reply_fail(&x, f);
    }
    /* transient, on a cursor the client knows of (QUERY answered): the
     * client may ask for this page again */
    bool keep = f->status == ST_UNAVAILABLE && !cur->dead && cur->pages > 0;
    request_done(cur);
    if (keep)
        arm_idle(cur);
    else
        cursor_end(cur);
}

static bool finished(const qcursor *cur)
{
    bool drained = !cur->ex || cur->row_pos >= qexec_nrows(cur->ex);
    if (cur->limit >= 0 && cur->emitted >= (uint64_t)cur->limit)
        return true;
    return drained && (cur->streaming ? cur->next_bucket >= cur->nbuckets : cur->gathered);
}

static void reply_page(qcursor *cur)
{
    bool last = finished(cur);
    msg_request req;
    req_ctx x;
    late_ctx(cur, &req, &x);
    if (!cur->conn->dead) {
        reply_head(&x, ST_OK, 3);
        msgpack_pack_array(&x.pk, qexec_ncolumns(cur->shape));
        for (uint32_t i = 0; i < qexec_ncolumns(cur->shape); i++)
            mpw_cstr(&x.pk, qexec_column(cur->shape, i));
        msgpack_pack_array(&x.pk, cur->page_n);
        mpw_raw(&x.pk, buf_rptr(&cur->page), buf_readable(&cur->page));
        msgpack_pack_map(&x.pk, 5);
        mpw_kv_uint(&x.pk, "matched", cur->matched);
        mpw_kv_uint(&x.pk, "rows", cur->page_n);
        mpw_kv_uint(&x.pk, "scanned", cur->scanned);
        mpw_kv_uint(&x.pk, "elapsed_us", (uint64_t)(query_now_us() - cur->t0));
        mpw_kv_uint(&x.pk, "cursor", last ? 0 : cur->id);
        reply_done(&x);
    }
    buf_reset(&cur->page);
    cur->page_n = 0;
    cur->pages++;
    request_done(cur);
    if (last)
        cursor_end(cur);
    else
        arm_idle(cur);
}

/* Moves finished rows into the page while they fit. false when one row
 * alone is over the reply limit (the cursor failed). */
static bool fill_page(qcursor *cur, size_t budget)
{
    while (cur->ex && cur->row_pos < qexec_nrows(cur->ex) && cur->page_n < cur->page_rows &&
           (cur->limit < 0 || cur->emitted < (uint64_t)cur->limit)) {
        size_t len;
        const uint8_t *row = qexec_row(cur->ex, cur->row_pos, &len);
        if (buf_readable(&cur->page) + len > budget) {
            if (cur->page_n)
                return true; /* the next page starts with it */
            char why[200];
            snprintf(why, sizeof why, "QUERY: one result row of %zu bytes is over the reply "
                     "limit of %zu bytes; select fewer fields", len, budget);
            cur->fail.status = ST_TOO_LARGE;
            snprintf(cur->fail.msg, sizeof cur->fail.msg, "%s", why);
            return false;
        }
        if (buf_append(&cur->page, row, len)) {
            cur->fail.status = ST_NO_MEMORY;
            snprintf(cur->fail.msg, sizeof cur->fail.msg, "QUERY: out of memory");
            return false;
        }
        cur->page_n++;
        cur->row_pos++;
        cur->emitted++;
    }
    return true;
}

/* ---- batches ---- */

static void note_fail(qcursor *cur, int status, const char *msg)
{
    if (cur->fail.status)
        return;
    cur->fail.status = status;
    snprintf(cur->fail.msg, sizeof cur->fail.msg, "%s", msg);
}

static void cover(qcursor *cur, const uint8_t *bits, size_t n)
{
    size_t nb = (cur->nbuckets + 7) / 8;
    for (size_t i = 0; i < n && i < nb; i++) {
        if (cur->covered[i] & bits[i])
            cur->overlap = true;
        cur->covered[i] |= bits[i];
    }
}

static void merge(qcursor *cur, const uint8_t *partial, size_t plen, uint64_t matched,
                  uint64_t scanned, uint32_t member)
{
    qerror err;
    int rc = qexec_merge_partial(cur->gx, partial, plen, &err);
    if (rc < 0) {
        char why[400];
        snprintf(why, sizeof why, "QUERY: merging member %u's part: %s", member, err.msg);
        note_fail(cur, rc == -ENOMEM ? ST_NO_MEMORY : rc == -E2BIG ? ST_TOO_LARGE : ST_INTERNAL,
                  why);
        return;
    }
    cur->matched += matched;
    cur->scanned += scanned;
}

/* Every part of the batch answered: check coverage, finish, go on. */
static void batch_done(qcursor *cur)
{
    parts_forget(cur);
    if (!cur->fail.status && (cur->overlap || memcmp(cur->covered, cur->want,
                                                     (cur->nbuckets + 7) / 8)))
        note_fail(cur, ST_UNAVAILABLE, "QUERY: the region's buckets moved during the query (or a "
                                       "bucket has no primary right now); retry");
    qerror err;
    int rc = cur->fail.status ? 0 : qexec_finish(cur->gx, &err);
    if (rc)
        query_exec_fail(&cur->fail, rc, &err);
    if (cur->fail.status) {
        qexec_free(cur->gx);
        cur->gx = NULL;
        query_fail f = cur->fail;
        reply_fail(cur, &f);
        return;
    }
    qexec_free(cur->ex);
    cur->ex = cur->gx;
    cur->gx = NULL;
    cur->row_pos = 0;
    if (cur->streaming) {
        uint32_t ran = cur->nbuckets - cur->next_bucket < cur->batch
                           ? cur->nbuckets - cur->next_bucket : cur->batch;
        cur->next_bucket += ran;
        /* sparse: take more buckets next time (many more after none) */
        size_t got = qexec_nrows(cur->ex);
        if (got < cur->page_rows / 2 && cur->batch < cur->nbuckets)
            cur->batch = got == 0 ? cur->batch * 8 : cur->batch * 2;
        if (cur->batch > cur->nbuckets)
            cur->batch = cur->nbuckets;
    } else {
        cur->gathered = true;
    }
    serve(cur);
}

static void part_answered(qcursor *cur)
{
    if (--cur->pending > 0)
        return;
    if (cur->dead) {
        cursor_free(cur);
        return;
    }
    batch_done(cur);
}

/* The local share's job finished (on this worker again). */
static void on_local_done(qjob *j, bool orphan)
{
    qpart_job *p = (qpart_job *)j;
    qcursor *cur = p->owner;
    cur->local = NULL;
    if (orphan) {
        qpart_free(p);
        if (--cur->pending == 0)
            cursor_free(cur);
        return;
    }
    if (!cur->dead) {
        if (p->fail.status)
            note_fail(cur, p->fail.status, p->fail.msg);
        else
            merge(cur, buf_rptr(&p->partial), buf_readable(&p->partial), p->matched, p->scanned,
                  cur->srv->member_id);
        if (p->covered)
            cover(cur, p->covered, (p->nbuckets + 7) / 8);
    }
    qpart_free(p);
    part_answered(cur);
}

typedef struct link_part {
    qcursor *cur;
    uint32_t member;
    size_t index; /* in cur->parts */
} link_part;

/* QUERY_PART reply: [partial, buckets (bin), matched, scanned]. */
static void take_part(qcursor *cur, uint32_t member, const msg_response *r)
{
    char why[400];
    if (!r) {
        snprintf(why, sizeof why, "QUERY: member %u did not answer its part; retry", member);
        note_fail(cur, ST_UNAVAILABLE, why);
        return;
    }
    if (r->status != ST_OK) {
        snprintf(why, sizeof why, "%.*s", (int)r->errmsg_len, (const char *)r->errmsg);
        /* a member not knowing the region yet, or refusing for a move, is transient */
        note_fail(cur, r->status == ST_UNKNOWN_REGION ? ST_UNAVAILABLE : r->status, why);
        return;
    }
    mp_cursor c = r->results;
    const uint8_t *partial = c.p, *bits;
    uint32_t nbits;
    uint64_t matched, scanned;
    bool is_str;
    if (r->nresults != 4 || mp_skip(&c, -1)) {
        note_fail(cur, ST_INTERNAL, "QUERY: a member sent a malformed part");
        return;
    }
    size_t plen = (size_t)(c.p - partial);
    if (mp_read_bytes(&c, &bits, &nbits, &is_str) || is_str || mp_read_uint(&c, &matched) ||
        mp_read_uint(&c, &scanned)) {
        note_fail(cur, ST_INTERNAL, "QUERY: a member sent a malformed part");
        return;
    }
    merge(cur, partial, plen, matched, scanned, member);
    cover(cur, bits, nbits);
}

static void on_link_part(link_t *l, const msg_response *r, void *arg)
{
    (void)l;
    link_part lp = *(link_part *)arg;
    free(arg);
    worker_t *w = lp.cur->w;
    worker_enter(w);
    lp.cur->parts[lp.index].answered = true;
    if (!lp.cur->dead)
        take_part(lp.cur, lp.member, r);
    part_answered(lp.cur);
    worker_leave(w);
}

/* ---- links to the other members ----
 * One link per member and worker, kept open for the queries that follow
 * (a link per QUERY_PART cost a connect and a HELLO each time). A link
 * that failed is replaced at its next use. */
typedef struct part_link {
    uint32_t id;
    char host[72];
    uint16_t port;
    link_t *l;
    bool failed;
    struct part_link *next;
} part_link;

static void on_part_link_state(link_t *l, bool up, void *arg)
{
    (void)l;
    if (!up)
        ((part_link *)arg)->failed = true;
}

/* Kept links give no timeout of their own to requests (each QUERY_PART
 * brings its own); this one bounds connecting and the handshake. */
#define PART_LINK_CONNECT_MS 10000

static link_t *part_link_get(worker_t *w, const peer_addr *p)
{
    part_link *pl = w->query_links;
    while (pl && pl->id != p->id)
        pl = pl->next;
    if (pl && !pl->failed && pl->port == p->port && strcmp(pl->host, p->host) == 0)
        return pl->l;
    if (!pl) {
        pl = calloc(1, sizeof(*pl));
        if (!pl)
            return NULL;
        pl->next = w->query_links;
        w->query_links = pl;
    }
    link_free(pl->l); /* answers what it still had: those parts fail (retry) */
    pl->id = p->id;
    snprintf(pl->host, sizeof pl->host, "%s", p->host);
    pl->port = p->port;
    pl->failed = false;
    link_callbacks cb = {.on_state = on_part_link_state, .arg = pl};
    pl->l = link_new(w->base, p->host, p->port, "query coordinator", PART_LINK_CONNECT_MS, &cb);
    if (pl->l && link_connect(pl->l)) {
        link_free(pl->l);
        pl->l = NULL;
    }
    pl->failed = pl->l == NULL;
    return pl->l;
}

void qcursor_worker_stop(worker_t *w)
{
    part_link *pl = w->query_links;
    w->query_links = NULL;
    while (pl) {
        part_link *next = pl->next;
        link_free(pl->l); /* the cursors are gone: their parts just count down */
        free(pl);
        pl = next;
    }
}

/* Sends QUERY_PART for the buckets in bits to member p. */
static bool send_part(qcursor *cur, const peer_addr *p, const uint8_t *bits)
{
    int64_t left = cur->timeout_ms ? cur->timeout_ms - (query_now_us() - cur->t0) / 1000 : 0;
    if (cur->timeout_ms && left < 1)
        left = 1;
    /* the member's own deadline ends the part; the margin covers a member
     * that does not answer at all */
    int timeout = cur->timeout_ms ? (int)left + PART_LINK_MARGIN_MS : 86400000;
    link_t *l = part_link_get(cur->w, p);
    link_part *lp = malloc(sizeof(*lp));
    if (!l || !lp) {
        free(lp);
        return false;
    }
    *lp = (link_part){cur, p->id, cur->nparts};
    buf_t b = {0};
    msgpack_packer pk;
    mpw_init(&pk, &b);
    mpw_str(&pk, cur->text, cur->tlen);
    mpw_raw(&pk, cur->params_raw, cur->params_len);
    msgpack_pack_map(&pk, 2);
    mpw_kv_uint(&pk, "timeout_ms", cur->timeout_ms ? (uint64_t)left : 0);
    mpw_cstr(&pk, "buckets");
    msgpack_pack_bin(&pk, (cur->nbuckets + 7) / 8);
    msgpack_pack_bin_body(&pk, bits, (cur->nbuckets + 7) / 8);
    part_ref *pr = &cur->parts[cur->nparts];
    *pr = (part_ref){.l = l};
    int rc = link_request_ex(l, OP_QUERY_PART, buf_rptr(&b), buf_readable(&b), 3, timeout,
                             on_link_part, lp, &pr->req_id);
    buf_free(&b);
    if (rc) {
        free(lp);
        return false;
    }
    cur->nparts++;
    cur->pending++;
    return true;
}

/* The local share: a job on the query pool. */
static bool start_local(qcursor *cur, const uint8_t *bits, bool primary_only)
{
    qpart_job *p = qpart_new(cur->region, (const uint8_t *)cur->text, cur->tlen, cur->params_raw,
                             cur->params_len, bits, cur->nbuckets);
    if (!p)
        return false;
    p->primary_only = primary_only;
    p->deadline_us = cur->timeout_ms ? cur->t0 + cur->timeout_ms * 1000 : 0;
    p->owner = cur;
    p->job.done = on_local_done;
    p->job.w = cur->w;
    cur->local = p;
    cur->pending++;
    qpool_submit(cur->srv->qpool, &p->job);
    return true;
}

/* Groups the wanted buckets by primary and asks each member for its own:
 * this member through the pool, the others with QUERY_PART. */
static void scatter(qcursor *cur, region_t *r)
{
    size_t nb = (cur->nbuckets + 7) / 8;
    pthread_mutex_lock(&cur->srv->peers_lock);
    size_t n = cur->srv->npeers;
    peer_addr *peers = malloc((n ? n : 1) * sizeof(*peers));
    if (peers)
        memcpy(peers, cur->srv->peers, n * sizeof(*peers));
    pthread_mutex_unlock(&cur->srv->peers_lock);
    uint8_t *bits = calloc(1, nb);
    cur->parts = calloc(n ? n : 1, sizeof(part_ref));
    if (!peers || !bits || !cur->parts) {
        note_fail(cur, ST_NO_MEMORY, "QUERY: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n && !cur->fail.status; i++) {
        memset(bits, 0, nb);
        bool any = false;
        for (uint32_t b = 0; b < cur->nbuckets; b++)
            if ((cur->want[b / 8] >> (b % 8) & 1) && region_bucket_role(r, b) != ROLE_PRIMARY &&
                region_bucket_primary(r, b) == peers[i].id) {
                bits[b / 8] |= (uint8_t)(1u << (b % 8));
                any = true;
            }
        if (any && !send_part(cur, &peers[i], bits)) {
            char why[200];
            snprintf(why, sizeof why, "QUERY: cannot reach member %u; retry", peers[i].id);
            note_fail(cur, ST_UNAVAILABLE, why);
        }
    }
    /* buckets primary here, and those whose primary is unknown (they stay
     * uncovered, so the batch fails as UNAVAILABLE) */
    if (!cur->fail.status && !start_local(cur, cur->want, true))
        note_fail(cur, ST_NO_MEMORY, "QUERY: out of memory");
out:
    free(peers);
    free(bits);
}

/* Starts the next batch (streaming: the next buckets; otherwise all). */
static void start_batch(qcursor *cur)
{
    size_t nb = (cur->nbuckets + 7) / 8;
    memset(cur->want, 0, nb);
    memset(cur->covered, 0, nb);
    cur->overlap = false;
    cur->fail.status = 0;
    uint32_t from = cur->streaming ? cur->next_bucket : 0;
    uint32_t to = cur->streaming && cur->nbuckets - from > cur->batch ? from + cur->batch
                                                                         : cur->nbuckets;
    for (uint32_t b = from; b < to; b++)
        cur->want[b / 8] |= (uint8_t)(1u << (b % 8));
    qerror err;
    int rc = qexec_new(cur->q, cur->params, cur->nparams, &cur->gx, &err);
    region_t *r = rc ? NULL : registry_find(cur->srv->registry, (const uint8_t *)cur->region,
                                            strlen(cur->region));
    if (rc)
        query_exec_fail(&cur->fail, rc, &err);
    else if (!r)
        note_fail(cur, ST_UNKNOWN_REGION, "QUERY: the region was destroyed");
    else if (region_clustered(r))
        scatter(cur, r);
    else if (!start_local(cur, cur->want, false))
        note_fail(cur, ST_NO_MEMORY, "QUERY: out of memory");
    if (cur->pending == 0) /* nothing went out: fail now */
        batch_done(cur);
}

/* Fills the page from finished rows and runs batches until it is full or
 * the query is done; then replies. */
static void serve(qcursor *cur)
{
    msg_request req;
    req_ctx x;
    late_ctx(cur, &req, &x);
    size_t budget = reply_budget(&x);
    budget = budget > 4096 ? budget - 4096 : budget / 2; /* head, columns, stats */
    if (!fill_page(cur, budget)) {
        query_fail f = cur->fail;
        reply_fail(cur, &f);
        return;
    }
    bool full = cur->page_n >= cur->page_rows ||
                (cur->ex && cur->row_pos < qexec_nrows(cur->ex));
    if (full || finished(cur)) {
        reply_page(cur);
        return;
    }
    start_batch(cur);
}

/* ---- requests ---- */

static uint32_t page_rows_of(const query_args *a)
{
    if (a->page_size == 0)
        return QUERY_DEFAULT_PAGE_ROWS;
    return a->page_size > QUERY_MAX_PAGE_ROWS ? QUERY_MAX_PAGE_ROWS : (uint32_t)a->page_size;
}

/* Takes x's request as the one being answered. */
static void begin_request(qcursor *cur, req_ctx *x, const query_args *a, int64_t t0)
{
    cur->busy = true;
    cur->req_id = x->req->id;
    cur->t0 = t0;
    cur->timeout_ms = a->timeout_ms;
    cur->page_rows = page_rows_of(a);
    x->conn->waits++; /* the reply is owed until serve gives it */
    event_del(cur->idle_ev);
}

static bool is_streaming(const query_t *q)
{
    return !q->norder && !q->ngroup && !q->has_aggregates && !q->distinct;
}

/* Copies what the cursor keeps of the request. 0 or -ENOMEM. */
static int cursor_init(qcursor *cur, region_t *r, const query_args *a)
{
    static const uint8_t no_params[] = {0x90};
    const uint8_t *raw = a->params_raw ? a->params_raw : no_params;
    size_t rawlen = a->params_raw ? a->params_len : 1;
    cur->nbuckets = region_cfg(r)->total_num_buckets;
    snprintf(cur->region, sizeof cur->region, "%s", region_cfg(r)->name);
    cur->text = malloc(a->tlen ? a->tlen : 1);
    cur->params_raw = malloc(rawlen);
    cur->params = calloc(QUERY_MAX_PARAMS, sizeof(qvalue));
    cur->want = calloc(1, (cur->nbuckets + 7) / 8);
    cur->covered = calloc(1, (cur->nbuckets + 7) / 8);
    cur->idle_ev = event_new(cur->w->base, -1, 0, on_idle, cur);
    buf_init(&cur->page);
    if (!cur->text || !cur->params_raw || !cur->params || !cur->want || !cur->covered ||
        !cur->idle_ev)
        return -ENOMEM;
    memcpy(cur->text, a->text, a->tlen);
    cur->tlen = a->tlen;
    memcpy(cur->params_raw, raw, rawlen);
    cur->params_len = rawlen;
    query_decode_params(cur->params_raw, cur->params_len, cur->params, &cur->nparams);
    cur->streaming = is_streaming(cur->q);
    /* a query an index serves reads few entries per bucket: all buckets
     * at once; otherwise one bucket first, more while pages come out short */
    qindex_probe *probe = NULL;
    if (qindex_plan(r, cur->q, cur->params, cur->nparams, &probe) < 0)
        return -ENOMEM;
    cur->batch = probe ? cur->nbuckets : 1;
    qindex_probe_free(probe);
    return 0;
}

void qcursor_open(req_ctx *x, region_t *r, query_t *q, const query_args *a, int64_t t0)
{
    if (x->conn->ncursors >= QUERY_CURSORS_PER_CONN) {
        query_free(q);
        reply_error(x, ST_BAD_ARGUMENT, "QUERY: %d cursors are open on this connection; read "
                    "them to the end or close them (QUERY_CLOSE)", QUERY_CURSORS_PER_CONN);
        return;
    }
    qcursor *cur = calloc(1, sizeof(*cur));
    if (!cur) {
        query_free(q);
        reply_error(x, ST_NO_MEMORY, "QUERY: out of memory");
        return;
    }
    cur->q = q;
    cur->conn = x->conn;
    cur->w = x->w;
    cur->srv = x->srv;
    cur->id = ++x->conn->next_cursor;
    qerror err;
    int rc = cursor_init(cur, r, a);
    if (!rc)
        rc = qexec_new(q, cur->params, cur->nparams, &cur->shape, &err);
    if (rc) {
        query_fail f;
        query_exec_fail(&f, rc, &err);
        query_reply_fail(x, &f);
        cursor_free(cur);
        return;
    }
    cur->limit = qexec_limit(cur->shape); /* a LIMIT $n is known only with the parameters */
    cur->next = x->conn->cursors;
    x->conn->cursors = cur;
    x->conn->ncursors++;
    begin_request(cur, x, a, t0);
    serve(cur);
}

void qcursor_next(req_ctx *x, uint64_t id, const query_args *a)
{
    qcursor *cur = find(x->conn, id);
    if (!cur) {
        reply_error(x, ST_BAD_ARGUMENT, "QUERY_NEXT: no open cursor %llu (it was read to the "
                    "end, closed, or idle for %d s)", (unsigned long long)id,
                    QUERY_CURSOR_IDLE_MS / 1000);
        return;
    }
    if (cur->busy) {
        reply_error(x, ST_BAD_ARGUMENT, "QUERY_NEXT: cursor %llu is still making a page",
                    (unsigned long long)id);
        return;
    }
    begin_request(cur, x, a, query_now_us());
    serve(cur);
}

void qcursor_close(req_ctx *x, uint64_t id)
{
    qcursor *cur = find(x->conn, id);
    if (!cur) {
        reply_status(x, ST_NOT_FOUND);
        return;
    }
    if (cur->busy) { /* a page is being made: it is answered CANCELLED */
        query_fail f = {.status = ST_CANCELLED};
        snprintf(f.msg, sizeof f.msg, "QUERY: cancelled (cursor closed)");
        reply_fail(cur, &f);
    }
    cursor_end(cur);
    reply_status(x, ST_OK);
}

void qcursor_cancel(req_ctx *x, uint64_t request_id)
{
    for (qcursor *cur = x->conn->cursors; cur; cur = cur->next) {
        if (!cur->busy || cur->req_id != request_id)
            continue;
        query_fail f = {.status = ST_CANCELLED};
        snprintf(f.msg, sizeof f.msg, "QUERY: cancelled");
        reply_fail(cur, &f);
        cursor_end(cur);
        reply_status(x, ST_OK);
        return;
    }
    /* a coordinator stopping its QUERY_PART: it still gets the part's
     * answer (CANCELLED) */
    for (qpart_job *p = x->conn->query_parts; p; p = p->conn_next)
        if (p->req_id == request_id) {
            atomic_store(&p->job.cancel, true);
            reply_status(x, ST_OK);
            return;
        }
    reply_status(x, ST_NOT_FOUND);
}

void qcursor_track_part(conn_t *c, qpart_job *p)
{
    p->conn_next = c->query_parts;
    c->query_parts = p;
}

void qcursor_untrack_part(conn_t *c, qpart_job *p)
{
    for (qpart_job **pp = (qpart_job **)&c->query_parts; *pp; pp = &(*pp)->conn_next)
        if (*pp == p) {
            *pp = p->conn_next;
            return;
        }
}

void qcursor_conn_closed(conn_t *c)
{
    for (qpart_job *p = c->query_parts; p; p = p->conn_next)
        atomic_store(&p->job.cancel, true); /* its done still comes, and drops the answer */
    while (c->cursors) {
        qcursor *cur = c->cursors;
        if (cur->busy) {
            cur->busy = false;
            conn_wait_done(c); /* c is dead but not freed while cursors hold waits */
        }
        cursor_end(cur);
    }
}
