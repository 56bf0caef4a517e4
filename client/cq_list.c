/* cq_list.c - agate_cq_list: CQ_LIST on the server, or on every member of
 * a cluster with the answers merged into one array. */
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "client/router.h"
#include "common/buf.h"
#include "common/mpw.h"
#include "common/proto.h"

/* client_ok_fn: the array's elements appended to the buf_t call->out,
 * their count added to *(uint64_t *)call->out2. */
static int ok_list(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    (void)aux;
    mp_cursor cur = r->results;
    uint32_t n;
    if (r->nresults < 1 || mp_read_array(&cur, &n))
        return client_bad_reply(c, "CQ_LIST reply is not an array");
    const uint8_t *start = cur.p;
    for (uint32_t i = 0; i < n; i++)
        if (mp_skip(&cur, MP_MAX_DEPTH_LIMIT))
            return client_bad_reply(c, "malformed CQ_LIST reply");
    if (buf_append(call->out, start, (size_t)(cur.p - start)))
        return client_err(c, AGATE_ENOMEM, "out of memory");
    *(uint64_t *)call->out2 += n;
    return 0;
}

static int list_one(agate_client *conn, buf_t *items, uint64_t *count)
{
    client_call call;
    client_call_init(&call, ok_list, items);
    call.out2 = count;
    return client_simple_call(conn, &call, OP_CQ_LIST, NULL);
}

int agate_cq_list(agate_client *c, agate_buf *out)
{
    if (out)
        memset(out, 0, sizeof(*out));
    if (!c)
        return AGATE_EINVAL;
    if (!out)
        return client_err(c, AGATE_EINVAL, "no output buffer");
    int rc = client_check_blocking(c, "agate_cq_list");
    if (rc)
        return rc;
    buf_t items;
    buf_init(&items);
    uint64_t count = 0;
    if (!c->router) {
        rc = list_one(c, &items, &count);
    } else {
        /* members that cannot be reached have nothing to list for us */
        int reached = 0;
        for (size_t i = 0; i < c->router->map->nmembers && !rc; i++) {
            long k = router_member_of(c, c->router->map->members[i].id);
            agate_client *child = NULL;
            if (k < 0) {
                rc = client_err(c, AGATE_ENOMEM, "out of memory");
                break;
            }
            int r = router_child(c, (size_t)k, true, &child);
            if (!r)
                r = router_pass(c, child, list_one(child, &items, &count));
            if (!r)
                reached++;
            else if (!router_retryable(r))
                rc = r;
        }
        if (!rc && reached == 0 && c->router->map->nmembers > 0)
            rc = client_err(c, AGATE_ECONNECT, "no member could be reached");
    }
    if (!rc) {
        buf_t doc;
        buf_init(&doc);
        msgpack_packer pk;
        mpw_init(&pk, &doc);
        if (count > UINT32_MAX || msgpack_pack_array(&pk, (size_t)count) ||
            buf_append(&doc, buf_rptr(&items), buf_readable(&items)) ||
            client_buf_copy(out, buf_rptr(&doc), buf_readable(&doc)))
            rc = client_err(c, AGATE_ENOMEM, "out of memory");
        buf_free(&doc);
    }
    buf_free(&items);
    return rc;
}
