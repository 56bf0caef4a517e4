/* query.c - agate_query: the QUERY request (docs/protocol.md, docs/query.md).
 *
 *   [query_text, params, options?] -> [columns, rows, stats]
 *
 * The three results are handed to the caller as one MessagePack array,
 * after checking their shape, so that a caller decoding them with
 * msgpack-c can rely on it. */
#include <limits.h>
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

/* Checks params: NULL with no length, or exactly one well-formed array. */
static int check_params(agate_client *c, const void *params, size_t params_len)
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
 * (arrays of one value per column), stats (map)]; *end gets where they end. */
static int check_result(agate_client *c, const msg_response *r, const uint8_t **end)
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
    for (uint32_t i = 0; i < 2 * npairs; i++)
        if (mp_skip(&cur, MP_MAX_DEPTH_LIMIT))
            return client_bad_reply(c, "malformed result");
    *end = cur.p;
    return 0;
}

/* client_ok_fn: the three results, behind an array header, into call->out. */
static int ok_query(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    (void)aux;
    const uint8_t *end = NULL;
    int rc = check_result(c, r, &end);
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

/* In a cluster any member coordinates a query (server/query_coord.c): ask
 * the members in turn, from a different one on each call, and retry what
 * a member could not answer now (UNAVAILABLE: buckets moving; a member
 * lost) until the request timeout. */
static int query_run(agate_client *c, const char *query, const void *params, size_t params_len,
                     int timeout_ms, bool explain, agate_buf *out);

static int query_cluster(agate_client *c, const char *query, const void *params, size_t params_len,
                         int timeout_ms, bool explain, agate_buf *out)
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
                rc = router_pass(c, child,
                                 query_run(child, query, params, params_len, timeout_ms, explain, out));
            }
        }
        if (!router_retryable(rc))
            return rc;
        rc = router_retry_next(c, &rt, rc);
        if (rc)
            return rc;
    }
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
    if (!query)
        return client_err(c, AGATE_EINVAL, "no query text");
    size_t qlen = strlen(query);
    if (qlen > UINT32_MAX)
        return client_err(c, AGATE_EINVAL, "query text of %zu bytes is too long", qlen);
    if (c->router)
        return query_cluster(c, query, params, params_len, timeout_ms, explain, out);
    int rc = client_check_blocking(c, explain ? "agate_query_explain" : "agate_query");
    if (!rc)
        rc = check_params(c, params, params_len);
    if (rc)
        return rc;

    client_call call;
    client_req rq;
    client_call_init(&call, ok_query, out);
    bool options = timeout_ms >= 0 || explain;
    rc = client_req_begin(c, &rq, OP_QUERY, options ? 3 : 2, client_call_done, NULL, &call, 0);
    if (rc)
        return rc;
    int e = mpw_str(&rq.pk, query, qlen);
    e |= params ? mpw_raw(&rq.pk, params, params_len) : msgpack_pack_array(&rq.pk, 0);
    if (options)
        e |= msgpack_pack_map(&rq.pk, (timeout_ms >= 0) + explain);
    if (timeout_ms >= 0)
        e |= mpw_kv_uint(&rq.pk, "timeout_ms", (uint64_t)timeout_ms);
    if (explain)
        e |= mpw_kv_bool(&rq.pk, "explain", true);
    rc = client_call_end(c, &call, &rq, e);
    if (rc)
        return rc;
    /* the reply may take as long as the server is allowed to work */
    int saved = c->request_timeout_ms;
    c->request_timeout_ms = query_wait_ms(c, timeout_ms);
    rc = client_call_wait(c, &call);
    c->request_timeout_ms = saved;
    if (rc)
        agate_buf_free(out);
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
