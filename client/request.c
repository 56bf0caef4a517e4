/* request.c - framing requests into the output buffer, and synchronous
 * calls built on the asynchronous machinery.
 *
 * A request is written straight into c->out (no intermediate buffer, no
 * allocation once the buffer has grown) and registered in the pending table
 * before its reply can possibly arrive. A synchronous call is a client_call
 * on the caller's stack that the completions of its requests update; the
 * caller runs the I/O loop until they have all completed. */
#include <string.h>

#include "client/client.h"
#include "common/frame.h"
#include "common/mpw.h"
#include "common/proto.h"

/* Offsets into c->out are kept relative to its read position: a partial
 * write consumes from the front, and a later buf_reserve may then compact
 * the buffer, which moves absolute offsets but not relative ones. (For the
 * same reason the header is located and written here rather than through
 * frame_begin's returned offset and frame_end.) */
static size_t out_abs(const agate_client *c, size_t rel) { return c->out.rpos + rel; }

int client_req_begin(agate_client *c, client_req *rq, int op, uint32_t nargs,
                     client_done_fn fn, agate_reply_cb cb, void *arg, uintptr_t aux)
{
    if (c->fd < 0) {
        int rc = client_ensure_conn(c);
        if (rc)
            return rc;
    }
    uint64_t id = c->next_id++;
    client_pending_entry *e = client_pending_add(&c->pend, id);
    if (!e)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    e->fn = fn;
    e->cb = cb;
    e->arg = arg;
    e->aux = aux;
    e->op = (uint8_t)op;
    rq->id = id;
    if (frame_begin(&c->out) == (size_t)-1) {
        client_pending_entry gone;
        client_pending_take(&c->pend, id, &gone);
        return client_err(c, AGATE_ENOMEM, "out of memory");
    }
    rq->frame_off = c->out.len - FRAME_HEADER - c->out.rpos;
    mpw_init(&rq->pk, &c->out);
    int e1 = msgpack_pack_array(&rq->pk, 3 + nargs);
    int e2 = msgpack_pack_uint8(&rq->pk, MSG_REQUEST);
    int e3 = msgpack_pack_uint64(&rq->pk, id);
    int e4 = msgpack_pack_uint8(&rq->pk, (uint8_t)op);
    if (e1 | e2 | e3 | e4) {
        client_req_abort(c, rq);
        return client_err(c, AGATE_ENOMEM, "out of memory");
    }
    return 0;
}

void client_req_abort(agate_client *c, client_req *rq)
{
    c->out.len = out_abs(c, rq->frame_off);
    client_pending_entry gone;
    client_pending_take(&c->pend, rq->id, &gone);
}

int client_req_end(agate_client *c, client_req *rq, int pack_err)
{
    if (pack_err) {
        client_req_abort(c, rq);
        return client_err(c, AGATE_ENOMEM, "out of memory");
    }
    size_t off = out_abs(c, rq->frame_off);
    size_t body = c->out.len - off - FRAME_HEADER;
    /* The server refuses an oversized frame from its header and closes the
     * connection, failing everything else in flight: better to refuse here
     * and keep the connection. */
    if (body > c->max_frame) {
        client_req_abort(c, rq);
        return client_err(c, AGATE_ETOO_LARGE,
                          "request of %zu bytes is above the server's frame limit (%u bytes)",
                          body, c->max_frame);
    }
    client_put_be32(c->out.data + off, (uint32_t)body);
    return 0;
}

bool client_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* most keys are ASCII: check eight bytes at a time */
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        uint8_t b = p[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((b & 0xe0) == 0xc0) {
            len = 2;
            cp = b & 0x1fu;
            min = 0x80;
        } else if ((b & 0xf0) == 0xe0) {
            len = 3;
            cp = b & 0x0fu;
            min = 0x800;
        } else if ((b & 0xf8) == 0xf0) {
            len = 4;
            cp = b & 0x07u;
            min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3fu);
        }
        /* overlong forms, surrogates and code points past U+10FFFF are not
         * UTF-8, and a server decoding them as str might object */
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

int client_pack_key(msgpack_packer *pk, const void *key, size_t klen)
{
    static const uint8_t empty[1];
    if (!key)
        key = empty;
    return mpw_key(pk, key, klen, client_utf8_valid(key, klen));
}

size_t client_key_size(size_t klen)
{
    /* str and bin headers differ below 32 bytes (fixstr vs bin8): take the
     * larger so the bound holds for either */
    return klen + (klen <= 0xff ? 2 : klen <= 0xffff ? 3 : 5);
}

int client_check_keyed(agate_client *c, const char *region, const void *key, size_t klen)
{
    if (!region)
        return client_err(c, AGATE_EINVAL, "no region name");
    if (!key && klen > 0)
        return client_err(c, AGATE_EINVAL, "key is NULL");
    if (klen > UINT32_MAX)
        return client_err(c, AGATE_EINVAL, "key of %zu bytes is too long", klen);
    return 0;
}

int client_check_value(agate_client *c, const void *value, size_t vlen)
{
    /* an empty value is not one MessagePack object, and inside a put_all
     * map it would shift every following key into a value position */
    if (!value || vlen == 0)
        return client_err(c, AGATE_EINVAL, "value must be one encoded MessagePack object");
    if (vlen > UINT32_MAX)
        return client_err(c, AGATE_EINVAL, "value of %zu bytes is too long", vlen);
    return 0;
}

/* ---- Synchronous calls ------------------------------------------------ */

void client_call_init(client_call *call, client_ok_fn on_ok, void *out)
{
    memset(call, 0, sizeof(*call));
    call->on_ok = on_ok;
    call->out = out;
}

int client_call_done(agate_client *c, const msg_response *r, int err, void *arg, uintptr_t aux)
{
    client_call *call = arg;
    call->remaining--;
    int rc, drop = 0;
    if (!r) {
        rc = err; /* c->errmsg already says why */
    } else if (r->status == ST_OK) {
        rc = call->on_ok ? call->on_ok(c, call, r, aux) : 0;
        drop = rc == AGATE_EPROTO;
    } else {
        rc = client_status_error(r->status);
        /* the first failure of a multi-request call is the one reported */
        if (!call->rc)
            client_status_message(r, c->errmsg, sizeof(c->errmsg));
    }
    if (rc && !call->rc)
        call->rc = rc;
    return drop ? AGATE_EPROTO : 0;
}

typedef struct call_wait {
    const client_call *call;
    int snapshot;
} call_wait;

static int call_progressed(agate_client *c, void *arg)
{
    const call_wait *w = arg;
    return w->call->remaining < w->snapshot;
}

int client_call_wait(agate_client *c, client_call *call)
{
    /* The timeout bounds the wait between two replies of the call, so a
     * put_all of many batches is not cut off while it makes progress. */
    while (call->remaining > 0) {
        call_wait w = {call, call->remaining};
        int rc = client_io_run(c, call_progressed, &w, c->request_timeout_ms);
        if (rc) {
            /* late replies must not touch the caller's stack */
            client_pending_abandon(&c->pend, call);
            call->remaining = 0;
            call->rc = rc; /* c->errmsg says why we stopped waiting */
            break;
        }
    }
    return call->rc;
}

int client_call_begin(agate_client *c, client_call *call, client_req *rq, int op,
                      uint32_t nargs, uintptr_t aux)
{
    int rc = client_check_blocking(c, proto_op_name(op));
    if (rc)
        return rc;
    return client_req_begin(c, rq, op, nargs, client_call_done, NULL, call, aux);
}

int client_call_end(agate_client *c, client_call *call, client_req *rq, int pack_err)
{
    int rc = client_req_end(c, rq, pack_err);
    if (!rc)
        call->remaining++;
    return rc;
}
