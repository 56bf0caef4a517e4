/* query.c - queries and their cursors (docs/protocol.md, docs/query.md):
 *
 *   QUERY        [query_text, params, options?] -> [columns, rows, stats]
 *   QUERY_NEXT   [cursor, options?]              -> [columns, rows, stats]
 *   QUERY_CLOSE  [cursor]
 *   QUERY_CANCEL [request_id]
 *
 * Every reply is a page; stats.cursor names the server's cursor while more
 * pages follow. Each page is handed to the caller as one MessagePack array
 * after checking its shape, so that a caller decoding it with msgpack-c can
 * rely on it. agate_query reads every page and joins them. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "client/router.h"
#include "common/mpw.h"
#include "common/proto.h"

/* The server's time limit when the request carries none (docs/protocol.md). */
#define QUERY_SERVER_DEFAULT_TIMEOUT_MS 30000
/* How much longer than the server's limit the client waits: the server
 * checks its clock every few hundred rows and then still sends the reply. */
#define QUERY_WAIT_MARGIN_MS 1000

int client_check_params(agate_client *c, const void *params, size_t params_len)
{
    if (!params)
        return params_len ? client_err(c, AGATE_EINVAL, "params is NULL but params_len is %zu",
                                       params_len)
                          : 0;
    if (params_len == 0 || params_len > UINT32_MAX)
        return client_err(c, AGATE_EINVAL,
                          "params must be one encoded MessagePack array (params_len is %zu)",
                          params_len);
    int e = mp_check_one(params, params_len, MP_MAX_DEPTH_LIMIT);
    if (e)
        return client_err(c, AGATE_EINVAL,
                          "params is not one well-formed MessagePack array (%s)",
                          e == MP_EINVALID ? "malformed, or bytes after the array" : mp_strerror(e));
    mp_cursor cur;
    mp_type t;
    mp_cursor_init(&cur, params, params_len);
    if (mp_peek_type(&cur, &t) || t != MP_ARRAY)
        return client_err(c, AGATE_EINVAL,
                          "params must be a MessagePack array of the values of $1, $2, ...");
    return 0;
}

/* Checks that the three results at cur are [columns (array of str), rows
 * (arrays of one value per column), stats (map)]; *end gets where they end
 * and *cursor the stats' "cursor" (0 when absent: the last page). */
static int check_result(agate_client *c, const msg_response *r, const uint8_t **end,
                        uint64_t *cursor)
{
    mp_cursor cur = r->results;
    uint32_t ncols, nrows, npairs;
    if (r->nresults < 3 || mp_read_array(&cur, &ncols))
        return client_bad_reply(c, "QUERY reply is not [columns, rows, stats]");
    for (uint32_t i = 0; i < ncols; i++) {
        const uint8_t *s;
        uint32_t n;
        if (mp_read_str(&cur, &s, &n))
            return client_bad_reply(c, "QUERY reply: a column name is not a string");
    }
    if (mp_read_array(&cur, &nrows))
        return client_bad_reply(c, "QUERY reply: rows is not an array");
    for (uint32_t i = 0; i < nrows; i++) {
        uint32_t n;
        if (mp_read_array(&cur, &n) || n != ncols)
            return client_bad_reply(c, "QUERY reply: a row is not an array of one value per column");
        for (uint32_t k = 0; k < n; k++)
            if (mp_skip(&cur, MP_MAX_DEPTH_LIMIT))
                return client_bad_reply(c, "malformed result");
    }
    mp_type t;
    if (mp_peek_type(&cur, &t) || t != MP_MAP || mp_read_map(&cur, &npairs))
        return client_bad_reply(c, "QUERY reply: stats is not a map");
    *cursor = 0;
    for (uint32_t i = 0; i < npairs; i++) {
        const uint8_t *k;
        uint32_t kn;
        if (mp_read_str(&cur, &k, &kn))
            return client_bad_reply(c, "QUERY reply: a stats name is not a string");
        if (kn == 6 && memcmp(k, "cursor", 6) == 0) {
            if (mp_read_uint(&cur, cursor))
                return client_bad_reply(c, "QUERY reply: stats.cursor is not an integer");
        } else if (mp_skip(&cur, MP_MAX_DEPTH_LIMIT)) {
            return client_bad_reply(c, "malformed result");
        }
    }
    *end = cur.p;
    return 0;
}

/* client_ok_fn: the three results, behind an array header, into call->out,
 * and the cursor into call->out2 (a uint64_t). */
static int ok_query(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    (void)aux;
    const uint8_t *end = NULL;
    int rc = check_result(c, r, &end, call->out2);
    if (rc)
        return rc;
    const uint8_t *start = r->results.p;
    size_t n = (size_t)(end - start);
    agate_buf *out = call->out;
    out->data = malloc(n + 1);
    if (!out->data)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    out->data[0] = 0x93; /* fixarray of 3 */
    memcpy(out->data + 1, start, n);
    out->len = n + 1;
    return 0;
}

/* How long to wait for the reply: the request timeout, or the query's own
 * limit and a margin when that is longer; 0 waits without limit. */
static int query_wait_ms(const agate_client *c, int timeout_ms)
{
    int wait = c->request_timeout_ms;
    if (wait <= 0)
        return 0;
    long long server = timeout_ms < 0 ? QUERY_SERVER_DEFAULT_TIMEOUT_MS : timeout_ms;
    if (server == 0)
        return 0;
    long long want = server + QUERY_WAIT_MARGIN_MS;
    if (want > INT_MAX)
        want = INT_MAX;
    return want > wait ? (int)want : wait;
}

/* ---- cursors ---- */

struct agate_cursor {
    agate_client *c;     /* the caller's client */
    uint32_t member;     /* cluster: the member that holds the server cursor */
    uint64_t id;         /* the server's cursor; 0: no more pages */
    agate_buf first;     /* the first page, until agate_cursor_next takes it */
    bool have_first;
    int timeout_ms;
    uint32_t page_size;
};

/* The connection a cursor's requests go on: c, or in a cluster the child
 * of the member that coordinates it. */
static int cursor_conn(agate_cursor *cur, agate_client **out)
{
    agate_client *c = cur->c;
    if (!c->router) {
        *out = c;
        return 0;
    }
    client_router *r = c->router;
    for (size_t i = 0; i < r->nmembers; i++)
        if (r->members[i].id == cur->member)
            return router_child(c, i, true, out);
    return client_err(c, AGATE_EIO, "member %u, which held the query's cursor, left the cluster; "
                      "run the query again", cur->member);
}

/* Tells the server to stop working on request id (after a timeout or an
 * interrupt). Best effort: sent without waiting for the answer. */
static void send_cancel(agate_client *c, uint64_t id)
{
    client_req rq;
    if (c->fd < 0 || client_req_begin(c, &rq, OP_QUERY_CANCEL, 1, NULL, NULL, NULL, 0))
        return;
    if (client_req_end(c, &rq, msgpack_pack_uint64(&rq.pk, id)) == 0)
        client_io_write(c);
}

/* Waits for call (a QUERY or QUERY_NEXT sent as id), allowing the server
 * its time limit; cancels the server's work when the wait ends early. */
static int wait_page(agate_client *c, client_call *call, uint64_t id, int timeout_ms)
{
    int saved = c->request_timeout_ms;
    c->request_timeout_ms = query_wait_ms(c, timeout_ms);
    int rc = client_call_wait(c, call);
    c->request_timeout_ms = saved;
    if (rc == AGATE_ETIMEDOUT || rc == AGATE_ECANCELLED)
        send_cancel(c, id);
    return rc;
}

static int pack_options(msgpack_packer *pk, int timeout_ms, uint32_t page_size, bool explain)
{
    int e = msgpack_pack_map(pk, (timeout_ms >= 0) + (page_size > 0) + explain);
    if (timeout_ms >= 0)
        e |= mpw_kv_uint(pk, "timeout_ms", (uint64_t)timeout_ms);
    if (page_size > 0)
        e |= mpw_kv_uint(pk, "page_size", page_size);
    if (explain)
        e |= mpw_kv_bool(pk, "explain", true);
    return e;
}

/* QUERY on one connection: the first page into *page, the cursor into *id. */
static int query_first(agate_client *c, const char *query, const void *params,
                       size_t params_len, int timeout_ms, uint32_t page_size, bool explain,
                       agate_buf *page, uint64_t *id)
{
    int rc = client_check_blocking(c, explain ? "agate_query_explain" : "agate_query");
    if (rc)
        return rc;
    client_call call;
    client_req rq;
    client_call_init(&call, ok_query, page);
    call.out2 = id;
    bool options = timeout_ms >= 0 || page_size > 0 || explain;
    rc = client_req_begin(c, &rq, OP_QUERY, options ? 3 : 2, client_call_done, NULL, &call, 0);
    if (rc)
        return rc;
    int e = mpw_str(&rq.pk, query, strlen(query));
    e |= params ? mpw_raw(&rq.pk, params, params_len) : msgpack_pack_array(&rq.pk, 0);
    if (options)
        e |= pack_options(&rq.pk, timeout_ms, page_size, explain);
    uint64_t req_id = rq.id;
    rc = client_call_end(c, &call, &rq, e);
    if (!rc)
        rc = wait_page(c, &call, req_id, timeout_ms);
    if (rc)
        agate_buf_free(page);
    return rc;
}

/* In a cluster any member coordinates a query (docs/query.md): ask the
 * members in turn, from a different one on each call, and retry what a
 * member could not answer now (UNAVAILABLE: buckets moving; a member lost)
 * until the request timeout. *member gets the one that answered. */
static int query_first_cluster(agate_client *c, const char *query, const void *params,
                               size_t params_len, int timeout_ms, uint32_t page_size,
                               bool explain, agate_buf *page, uint64_t *id, uint32_t *member)
{
    static _Thread_local size_t next;
    router_retry rt;
    router_retry_init(c, &rt);
    for (;;) {
        client_router *r = c->router;
        int rc = AGATE_ECONNECT;
        agate_client *child = NULL;
        for (size_t k = 0; k < r->nmembers && rc == AGATE_ECONNECT; k++) {
            size_t i = (next + k) % r->nmembers;
            rc = router_child(c, i, true, &child);
            if (!rc) {
                next = i + 1;
                *member = r->members[i].id;
                rc = router_pass(c, child, query_first(child, query, params, params_len,
                                                       timeout_ms, page_size, explain, page, id));
            }
        }
        if (!router_retryable(rc) || rc == AGATE_ECANCELLED)
            return rc;
        rc = router_retry_next(c, &rt, rc);
        if (rc)
            return rc;
    }
}

/* Checks the arguments every query call shares. */
static int check_query(agate_client *c, const char *query, const void *params, size_t params_len)
{
    if (!query)
        return client_err(c, AGATE_EINVAL, "no query text");
    size_t qlen = strlen(query);
    if (qlen > UINT32_MAX)
        return client_err(c, AGATE_EINVAL, "query text of %zu bytes is too long", qlen);
    return client_check_params(c, params, params_len);
}

static int open_run(agate_client *c, const char *query, const void *params, size_t params_len,
                    int timeout_ms, uint32_t page_size, bool explain, agate_cursor **out)
{
    *out = NULL;
    int rc = check_query(c, query, params, params_len);
    if (rc)
        return rc;
    agate_cursor *cur = calloc(1, sizeof(*cur));
    if (!cur)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    cur->c = c;
    cur->timeout_ms = timeout_ms;
    cur->page_size = page_size;
    if (c->router)
        rc = query_first_cluster(c, query, params, params_len, timeout_ms, page_size, explain,
                                 &cur->first, &cur->id, &cur->member);
    else
        rc = query_first(c, query, params, params_len, timeout_ms, page_size, explain,
                         &cur->first, &cur->id);
    if (rc) {
        free(cur);
        return rc;
    }
    cur->have_first = true;
    *out = cur;
    return 0;
}

int agate_query_open(agate_client *c, const char *query, const void *params, size_t params_len,
                     const agate_query_options *opts, agate_cursor **out)
{
    if (!out)
        return c ? client_err(c, AGATE_EINVAL, "no cursor pointer") : AGATE_EINVAL;
    *out = NULL;
    if (!c)
        return AGATE_EINVAL;
    int timeout_ms = opts ? opts->timeout_ms : -1;
    uint32_t page_size = opts ? opts->page_size : 0;
    return open_run(c, query, params, params_len, timeout_ms, page_size, false, out);
}

/* QUERY_NEXT on the cursor's connection. */
static int next_page(agate_cursor *cur, agate_client *conn, agate_buf *page)
{
    int rc = client_check_blocking(conn, "agate_cursor_next");
    if (rc)
        return rc;
    client_call call;
    client_req rq;
    uint64_t id = 0;
    client_call_init(&call, ok_query, page);
    call.out2 = &id;
    rc = client_req_begin(conn, &rq, OP_QUERY_NEXT, 2, client_call_done, NULL, &call, 0);
    if (rc)
        return rc;
    int e = msgpack_pack_uint64(&rq.pk, cur->id);
    e |= pack_options(&rq.pk, cur->timeout_ms, cur->page_size, false);
    uint64_t req_id = rq.id;
    rc = client_call_end(conn, &call, &rq, e);
    if (!rc)
        rc = wait_page(conn, &call, req_id, cur->timeout_ms);
    if (rc) {
        agate_buf_free(page);
        return rc;
    }
    cur->id = id;
    return 0;
}

int agate_cursor_next(agate_cursor *cur, agate_buf *page)
{
    if (page)
        memset(page, 0, sizeof(*page));
    if (!cur || !page)
        return cur ? client_err(cur->c, AGATE_EINVAL, "no page buffer") : AGATE_EINVAL;
    if (cur->have_first) {
        *page = cur->first;
        memset(&cur->first, 0, sizeof cur->first);
        cur->have_first = false;
        return 1;
    }
    if (cur->id == 0)
        return 0;
    /* a page the cluster could not make now (buckets moving) is asked for
     * again: the cursor stays where it was until a page succeeds */
    router_retry rt;
    router_retry_init(cur->c, &rt);
    for (;;) {
        agate_client *conn = NULL;
        int rc = cursor_conn(cur, &conn);
        if (!rc)
            rc = next_page(cur, conn, page);
        if (conn && conn != cur->c && rc < 0)
            rc = router_pass(cur->c, conn, rc);
        if (rc != AGATE_EUNAVAILABLE || !cur->c->router)
            return rc ? rc : 1;
        rc = router_retry_next(cur->c, &rt, rc);
        if (rc)
            return rc;
    }
}

uint64_t agate_cursor_id(const agate_cursor *cur) { return cur ? cur->id : 0; }

int agate_cursor_close(agate_cursor *cur)
{
    if (!cur)
        return 0;
    int rc = 0;
    agate_buf_free(&cur->first);
    if (cur->id) { /* the server's cursor is still open: drop it */
        agate_client *conn;
        rc = cursor_conn(cur, &conn);
        client_call call;
        client_req rq;
        client_call_init(&call, NULL, NULL);
        if (!rc)
            rc = client_call_begin(conn, &call, &rq, OP_QUERY_CLOSE, 1, 0);
        if (!rc)
            rc = client_call_end(conn, &call, &rq, msgpack_pack_uint64(&rq.pk, cur->id));
        if (!rc)
            rc = client_call_wait(conn, &call);
        if (rc == AGATE_ENOTFOUND) /* it had expired: nothing left to drop */
            rc = 0;
    }
    free(cur);
    return rc;
}

/* ---- whole results ---- */

/* Appends the rows of page (a checked [columns, rows, stats]) to rows,
 * counting them; keeps the columns of the first page and the last stats. */
typedef struct joined {
    buf_t head;   /* the first page's columns */
    buf_t rows;
    uint64_t nrows;
    buf_t stats;  /* the last page's stats, rewritten at the end */
    uint64_t matched, scanned, elapsed;
} joined;

static int join_page(agate_client *c, joined *j, const agate_buf *page, bool first)
{
    mp_cursor cur;
    uint32_t n, ncols;
    mp_cursor_init(&cur, page->data, page->len);
    mp_read_array(&cur, &n);
    const uint8_t *cols = cur.p;
    mp_read_array(&cur, &ncols);
    for (uint32_t i = 0; i < ncols; i++)
        mp_skip(&cur, 1);
    if (first && buf_append(&j->head, cols, (size_t)(cur.p - cols)))
        return client_err(c, AGATE_ENOMEM, "out of memory");
    uint32_t nrows;
    mp_read_array(&cur, &nrows);
    const uint8_t *rows = cur.p;
    for (uint32_t i = 0; i < nrows; i++)
        mp_skip(&cur, MP_MAX_DEPTH_LIMIT);
    if (buf_append(&j->rows, rows, (size_t)(cur.p - rows)))
        return client_err(c, AGATE_ENOMEM, "out of memory");
    j->nrows += nrows;
    uint32_t npairs;
    mp_read_map(&cur, &npairs);
    for (uint32_t i = 0; i < npairs; i++) {
        const uint8_t *k;
        uint32_t kn;
        uint64_t v = 0;
        mp_read_str(&cur, &k, &kn);
        if (mp_read_uint(&cur, &v)) {
            mp_skip(&cur, MP_MAX_DEPTH_LIMIT);
            continue;
        }
        if (kn == 7 && !memcmp(k, "matched", 7))
            j->matched = v;
        else if (kn == 7 && !memcmp(k, "scanned", 7))
            j->scanned = v;
        else if (kn == 10 && !memcmp(k, "elapsed_us", 10))
            j->elapsed += v;
    }
    return 0;
}

/* [columns, rows, stats] of the joined pages into out. */
static int join_finish(agate_client *c, joined *j, agate_buf *out)
{
    buf_t b;
    buf_init(&b);
    msgpack_packer pk;
    mpw_init(&pk, &b);
    int e = msgpack_pack_array(&pk, 3);
    e |= mpw_raw(&pk, buf_rptr(&j->head), buf_readable(&j->head));
    if (j->nrows > UINT32_MAX)
        e = -1;
    e |= msgpack_pack_array(&pk, (uint32_t)j->nrows);
    e |= mpw_raw(&pk, buf_rptr(&j->rows), buf_readable(&j->rows));
    e |= msgpack_pack_map(&pk, 4);
    e |= mpw_kv_uint(&pk, "matched", j->matched);
    e |= mpw_kv_uint(&pk, "rows", j->nrows);
    e |= mpw_kv_uint(&pk, "scanned", j->scanned);
    e |= mpw_kv_uint(&pk, "elapsed_us", j->elapsed);
    if (e) {
        buf_free(&b);
        return client_err(c, AGATE_ENOMEM, "out of memory");
    }
    out->len = buf_readable(&b);
    out->data = malloc(out->len ? out->len : 1);
    if (!out->data) {
        buf_free(&b);
        return client_err(c, AGATE_ENOMEM, "out of memory");
    }
    memcpy(out->data, buf_rptr(&b), out->len);
    buf_free(&b);
    return 0;
}

static int query_all(agate_client *c, agate_cursor *cur, agate_buf *out)
{
    joined j;
    memset(&j, 0, sizeof j);
    buf_init(&j.head);
    buf_init(&j.rows);
    int rc;
    bool first = true;
    agate_buf page;
    while ((rc = agate_cursor_next(cur, &page)) == 1) {
        rc = join_page(c, &j, &page, first);
        agate_buf_free(&page);
        first = false;
        if (rc)
            break;
    }
    if (rc == 0)
        rc = join_finish(c, &j, out);
    buf_free(&j.head);
    buf_free(&j.rows);
    return rc;
}

/* QUERY with its options: the timeout (< 0: the server's) and, when
 * explain, only the plan. */
static int query_run(agate_client *c, const char *query, const void *params, size_t params_len,
                     int timeout_ms, bool explain, agate_buf *out)
{
    if (out)
        memset(out, 0, sizeof(*out));
    if (!c)
        return AGATE_EINVAL;
    if (!out)
        return client_err(c, AGATE_EINVAL, "no output buffer");
    agate_cursor *cur;
    int rc = open_run(c, query, params, params_len, timeout_ms, 0, explain, &cur);
    if (rc)
        return rc;
    if (cur->id == 0) { /* one page: it is the result */
        *out = cur->first;
        memset(&cur->first, 0, sizeof cur->first);
    } else {
        rc = query_all(c, cur, out);
    }
    char msg[CLIENT_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", c->errmsg);
    agate_cursor_close(cur);
    snprintf(c->errmsg, sizeof c->errmsg, "%s", msg); /* close must not hide why it failed */
    return rc;
}

int agate_query(agate_client *c, const char *query, const void *params, size_t params_len,
                int timeout_ms, agate_buf *out)
{
    return query_run(c, query, params, params_len, timeout_ms, false, out);
}

int agate_query_explain(agate_client *c, const char *query, agate_buf *out)
{
    return query_run(c, query, NULL, 0, -1, true, out);
}

void agate_interrupt(agate_client *c)
{
    if (c)
        *c->interrupt = 1;
}
