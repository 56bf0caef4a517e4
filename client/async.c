/* async.c - the asynchronous API: queueing requests with callbacks, and the
 * calls that drive I/O (flush, wait, and the pieces for external event
 * loops).
 *
 * This is the hot path of a pipelining client: queueing a request appends
 * one frame to the output buffer and fills one pending slot; a reply is
 * parsed in place and handed to the callback without copying. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "client/client.h"
#include "client/router.h"
#include "common/mpw.h"
#include "common/proto.h"

int client_async_complete(agate_client *c, const client_pending_entry *e,
                          const msg_response *r, int err)
{
    agate_reply rep = {0};
    int drop = 0;
    if (!r) {
        rep.status = err;
        rep.errmsg = c->failmsg;
    } else if (r->status == ST_OK) {
        if (e->op == OP_GET) {
            mp_cursor cur = r->results;
            const uint8_t *p;
            size_t n;
            if (r->nresults < 1 || client_read_raw(c, &cur, &p, &n)) {
                client_bad_reply(c, "GET reply without a value");
                rep.status = AGATE_EPROTO;
                rep.errmsg = c->errmsg;
                drop = 1;
            } else {
                rep.value = p;
                rep.vlen = n;
            }
        }
    } else {
        rep.status = client_status_error(r->status);
        client_status_message(r, c->replymsg, sizeof(c->replymsg));
        rep.errmsg = c->replymsg;
    }
    if (e->cb) {
        c->cb_depth++;
        e->cb(c, &rep, e->arg);
        c->cb_depth--;
    }
    return drop ? AGATE_EPROTO : 0;
}

int client_queue_keyed(agate_client *c, int op, const char *region, const void *key,
                       size_t klen, const void *value, size_t vlen, const client_evid *ev,
                       agate_reply_cb cb, void *arg)
{
    int rc = client_check_keyed(c, region, key, klen);
    if (rc)
        return rc;
    client_req rq;
    rc = client_req_begin(c, &rq, op, (value ? 3 : 2) + (ev != NULL), NULL, cb, arg, 0);
    if (rc)
        return rc;
    int e = mpw_cstr(&rq.pk, region);
    e |= client_pack_key(&rq.pk, key, klen);
    if (value)
        e |= mpw_raw(&rq.pk, value, vlen);
    if (ev)
        e |= client_pack_evid(&rq.pk, ev);
    return client_req_end(c, &rq, e);
}

/* A keyed async request: through the router in a cluster, else queued on
 * this connection. */
static int queue_keyed(agate_client *c, int op, const char *region, const void *key,
                       size_t klen, const void *value, size_t vlen, agate_reply_cb cb,
                       void *arg)
{
    if (c->router)
        return router_async_submit(c, op, region, key, klen, value, vlen, cb, arg);
    return client_queue_keyed(c, op, region, key, klen, value, vlen, NULL, cb, arg);
}

int agate_put_async(agate_client *c, const char *region, const void *key, size_t klen,
                    const void *value, size_t vlen, agate_reply_cb cb, void *arg)
{
    if (!c)
        return AGATE_EINVAL;
    int rc = client_check_value(c, value, vlen);
    return rc ? rc : queue_keyed(c, OP_PUT, region, key, klen, value, vlen, cb, arg);
}

int agate_get_async(agate_client *c, const char *region, const void *key, size_t klen,
                    agate_reply_cb cb, void *arg)
{
    if (!c)
        return AGATE_EINVAL;
    return queue_keyed(c, OP_GET, region, key, klen, NULL, 0, cb, arg);
}

int agate_remove_async(agate_client *c, const char *region, const void *key, size_t klen,
                       agate_reply_cb cb, void *arg)
{
    if (!c)
        return AGATE_EINVAL;
    return queue_keyed(c, OP_REMOVE, region, key, klen, NULL, 0, cb, arg);
}

size_t agate_pending(const agate_client *c)
{
    if (c && c->router)
        return router_pending(c);
    return c ? c->pend.live : 0;
}

int agate_fd(const agate_client *c)
{
    if (c && c->router)
        return router_fd(c);
    return c ? c->fd : -1;
}

int agate_wants_write(const agate_client *c)
{
    if (c && c->router)
        return router_wants_write(c);
    return c && c->fd >= 0 && buf_readable(&c->out) > 0;
}

/* The connection dropped during a call: report why, even if a callback
 * failed a call of its own since and overwrote errmsg. */
static int dropped(agate_client *c)
{
    memcpy(c->errmsg, c->failmsg, sizeof(c->errmsg));
    return c->fail_rc;
}

static int out_empty(agate_client *c, void *arg) { return buf_readable(&c->out) == 0; }

static int nothing_pending(agate_client *c, void *arg) { return c->pend.live == 0; }

int agate_flush(agate_client *c, int timeout_ms)
{
    if (!c)
        return AGATE_EINVAL;
    int rc = client_check_blocking(c, "agate_flush");
    if (rc)
        return rc;
    if (c->router)
        return router_flush(c, timeout_ms);
    uint64_t gen = c->gen;
    /* reads (and runs callbacks) while it waits to write, so a server
     * blocked on sending us replies cannot deadlock with us */
    rc = client_io_run(c, out_empty, NULL, timeout_ms);
    if (!rc && c->gen != gen)
        rc = dropped(c);
    return rc;
}

int agate_wait(agate_client *c, int timeout_ms)
{
    if (!c)
        return AGATE_EINVAL;
    int rc = client_check_blocking(c, "agate_wait");
    if (rc)
        return rc;
    if (c->router)
        return router_wait(c, timeout_ms);
    uint64_t gen = c->gen;
    rc = client_io_run(c, nothing_pending, NULL, timeout_ms);
    /* a connection failure completes everything, so the loop "succeeds":
     * report the failure the callbacks saw */
    if (!rc && c->gen != gen)
        rc = dropped(c);
    return rc;
}

int agate_process(agate_client *c)
{
    if (!c)
        return AGATE_EINVAL;
    int rc = client_check_blocking(c, "agate_process");
    if (rc)
        return rc;
    if (c->router)
        return router_process(c);
    if (c->fd < 0)
        return 0; /* a failure already completed everything */
    uint64_t gen = c->gen;
    client_io_write(c);
    if (c->fd >= 0)
        client_io_read(c);
    /* callbacks usually queue the next requests: send them now rather than
     * after another round through the caller's poll */
    if (c->fd >= 0 && buf_readable(&c->out) > 0)
        client_io_write(c);
    if (c->gen != gen)
        return dropped(c);
    return c->pend.live > INT_MAX ? INT_MAX : (int)c->pend.live;
}
