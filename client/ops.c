/* ops.c - the synchronous single-request operations: build the request,
 * wait for it, read its results into the caller's memory. */
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "client/router.h"
#include "common/mpw.h"
#include "common/proto.h"

/* ---- Result readers (client_ok_fn) ------------------------------------ */

int client_ok_value(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    mp_cursor cur = r->results;
    const uint8_t *p;
    size_t n;
    if (r->nresults < 1)
        return client_bad_reply(c, "reply without a value");
    int rc = client_read_raw(c, &cur, &p, &n);
    if (rc)
        return rc;
    if (client_buf_copy(call->out, p, n))
        return client_err(c, AGATE_ENOMEM, "out of memory");
    return 0;
}

static int ok_map(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    mp_type t;
    if (r->nresults < 1 || mp_peek_type(&r->results, &t) || t != MP_MAP)
        return client_bad_reply(c, "reply is not a map");
    return client_ok_value(c, call, r, aux);
}

/* value, member_id, counter */
static int ok_entry(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    mp_cursor cur = r->results;
    const uint8_t *p;
    size_t n;
    uint64_t member, counter;
    if (r->nresults < 3 || client_read_raw(c, &cur, &p, &n) || mp_read_uint(&cur, &member) ||
        mp_read_uint(&cur, &counter) || member > UINT32_MAX)
        return client_bad_reply(c, "GET_ENTRY reply is not [value, member_id, counter]");
    if (client_buf_copy(call->out, p, n))
        return client_err(c, AGATE_ENOMEM, "out of memory");
    agate_version *ver = call->out2;
    if (ver) {
        ver->member_id = (uint32_t)member;
        ver->counter = counter;
    }
    return 0;
}

static int ok_bool(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    mp_cursor cur = r->results;
    bool b;
    if (r->nresults < 1 || mp_read_bool(&cur, &b))
        return client_bad_reply(c, "reply is not a bool");
    *(int *)call->out = b;
    return 0;
}

int client_ok_uint(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    mp_cursor cur = r->results;
    uint64_t v;
    if (r->nresults < 1 || mp_read_uint(&cur, &v))
        return client_bad_reply(c, "reply is not a count");
    if (call->out)
        *(uint64_t *)call->out = v;
    return 0;
}

/* ---- Operations -------------------------------------------------------- */

int client_pack_evid(msgpack_packer *pk, const client_evid *ev)
{
    return msgpack_pack_array(pk, 2) | msgpack_pack_uint64(pk, ev->client_id) |
           msgpack_pack_uint64(pk, ev->seq);
}

/* Sends [region, key] or [region, key, value], plus the event id when ev is
 * not NULL, as op and waits. */
static int keyed_call(agate_client *c, client_call *call, int op, const char *region,
                      const void *key, size_t klen, const void *value, size_t vlen,
                      const client_evid *ev)
{
    int rc = client_check_keyed(c, region, key, klen);
    if (!rc && value)
        rc = client_check_value(c, value, vlen);
    if (rc)
        return rc;
    client_req rq;
    rc = client_call_begin(c, call, &rq, op, (value ? 3 : 2) + (ev != NULL), 0);
    if (rc)
        return rc;
    int e = mpw_cstr(&rq.pk, region);
    e |= client_pack_key(&rq.pk, key, klen);
    if (value)
        e |= mpw_raw(&rq.pk, value, vlen);
    if (ev)
        e |= client_pack_evid(&rq.pk, ev);
    rc = client_call_end(c, call, &rq, e);
    return rc ? rc : client_call_wait(c, call);
}

int client_simple_call(agate_client *c, client_call *call, int op, const char *name)
{
    client_req rq;
    int rc = client_call_begin(c, call, &rq, op, name ? 1 : 0, 0);
    if (rc)
        return rc;
    int e = name ? mpw_cstr(&rq.pk, name) : 0;
    rc = client_call_end(c, call, &rq, e);
    return rc ? rc : client_call_wait(c, call);
}

int agate_ping(agate_client *c)
{
    if (!c)
        return AGATE_EINVAL;
    if (c->router)
        return router_ping(c);
    client_call call;
    client_call_init(&call, NULL, NULL);
    return client_simple_call(c, &call, OP_PING, NULL);
}

int agate_server_info(agate_client *c, agate_buf *out)
{
    if (!c || !out)
        return c ? client_err(c, AGATE_EINVAL, "no output buffer") : AGATE_EINVAL;
    memset(out, 0, sizeof(*out));
    if (c->router)
        return router_server_info(c, out);
    client_call call;
    client_call_init(&call, ok_map, out);
    return client_simple_call(c, &call, OP_SERVER_INFO, NULL);
}

int client_put(agate_client *c, const char *region, const void *key, size_t klen,
               const void *value, size_t vlen, const client_evid *ev)
{
    if (!value || !vlen)
        return client_check_value(c, value, vlen);
    client_call call;
    client_call_init(&call, NULL, NULL);
    return keyed_call(c, &call, OP_PUT, region, key, klen, value, vlen, ev);
}

int agate_put(agate_client *c, const char *region, const void *key, size_t klen,
              const void *value, size_t vlen)
{
    if (!c)
        return AGATE_EINVAL;
    if (c->router) {
        router_keyop k = {.op = OP_PUT, .region = region, .key = key, .klen = klen,
                          .value = value, .vlen = vlen};
        return router_keyed(c, &k);
    }
    return client_put(c, region, key, klen, value, vlen, NULL);
}

int agate_get(agate_client *c, const char *region, const void *key, size_t klen,
              agate_buf *value)
{
    if (!c || !value)
        return c ? client_err(c, AGATE_EINVAL, "no output buffer") : AGATE_EINVAL;
    memset(value, 0, sizeof(*value));
    if (c->router) {
        router_keyop k = {.op = OP_GET, .region = region, .key = key, .klen = klen, .out = value};
        return router_keyed(c, &k);
    }
    client_call call;
    client_call_init(&call, client_ok_value, value);
    return keyed_call(c, &call, OP_GET, region, key, klen, NULL, 0, NULL);
}

int agate_get_entry(agate_client *c, const char *region, const void *key, size_t klen,
                    agate_buf *value, agate_version *ver)
{
    if (!c || !value)
        return c ? client_err(c, AGATE_EINVAL, "no output buffer") : AGATE_EINVAL;
    memset(value, 0, sizeof(*value));
    if (c->router) {
        router_keyop k = {.op = OP_GET_ENTRY, .region = region, .key = key, .klen = klen,
                          .out = value, .ver = ver};
        return router_keyed(c, &k);
    }
    client_call call;
    client_call_init(&call, ok_entry, value);
    call.out2 = ver;
    return keyed_call(c, &call, OP_GET_ENTRY, region, key, klen, NULL, 0, NULL);
}

int client_remove(agate_client *c, const char *region, const void *key, size_t klen,
                  const client_evid *ev)
{
    client_call call;
    client_call_init(&call, NULL, NULL);
    return keyed_call(c, &call, OP_REMOVE, region, key, klen, NULL, 0, ev);
}

int agate_remove(agate_client *c, const char *region, const void *key, size_t klen)
{
    if (!c)
        return AGATE_EINVAL;
    if (c->router) {
        router_keyop k = {.op = OP_REMOVE, .region = region, .key = key, .klen = klen};
        return router_keyed(c, &k);
    }
    return client_remove(c, region, key, klen, NULL);
}

int agate_contains_key(agate_client *c, const char *region, const void *key, size_t klen)
{
    if (!c)
        return AGATE_EINVAL;
    if (c->router) {
        router_keyop k = {.op = OP_CONTAINS_KEY, .region = region, .key = key, .klen = klen};
        return router_keyed(c, &k);
    }
    int present = 0;
    client_call call;
    client_call_init(&call, ok_bool, &present);
    int rc = keyed_call(c, &call, OP_CONTAINS_KEY, region, key, klen, NULL, 0, NULL);
    return rc ? rc : present;
}

int agate_size(agate_client *c, const char *region, uint64_t *count)
{
    if (!c)
        return AGATE_EINVAL;
    if (!region || !count)
        return client_err(c, AGATE_EINVAL, "no region name or output");
    if (c->router)
        return router_size(c, region, count);
    client_call call;
    client_call_init(&call, client_ok_uint, count);
    return client_simple_call(c, &call, OP_SIZE, region);
}

int agate_clear(agate_client *c, const char *region, uint64_t *removed)
{
    if (!c)
        return AGATE_EINVAL;
    if (!region)
        return client_err(c, AGATE_EINVAL, "no region name");
    if (c->router)
        return router_clear(c, region, removed);
    client_call call;
    client_call_init(&call, client_ok_uint, removed);
    return client_simple_call(c, &call, OP_CLEAR, region);
}

/* ---- Scans ------------------------------------------------------------- */

/* [next_cursor, [k1, k2, ...]] or, with values, [next_cursor, [k1, v1, ...]] */
/* The server may exceed a page's limit only by the entries that share one
 * hash slot with the last one it takes; anything far above is refused, so
 * a broken server cannot make a 10-key page cost millions of allocations. */
#define CLIENT_PAGE_SLACK 256

static int read_page(agate_client *c, const msg_response *r, agate_page *page, bool values,
                     uint32_t limit)
{
    mp_cursor cur = r->results;
    uint64_t next;
    uint32_t n;
    if (r->nresults < 2 || mp_read_uint(&cur, &next) || mp_read_array(&cur, &n) ||
        (values && n % 2))
        return client_bad_reply(c, values ? "ENTRIES reply is not [cursor, [k, v, ...]]"
                                          : "KEYS reply is not [cursor, [keys]]");
    size_t items = values ? n / 2 : n;
    if (items > (size_t)limit + CLIENT_PAGE_SLACK)
        return client_bad_reply(c, "scan reply holds far more items than the page limit");
    page->keys = calloc(items ? items : 1, sizeof(agate_buf));
    page->values = values ? calloc(items ? items : 1, sizeof(agate_buf)) : NULL;
    if (!page->keys || (values && !page->values))
        return AGATE_ENOMEM;
    page->next_cursor = next;
    for (size_t i = 0; i < items; i++) {
        const uint8_t *k, *v;
        uint32_t klen;
        size_t vlen;
        if (mp_read_bytes(&cur, &k, &klen, NULL))
            return client_bad_reply(c, "scan reply holds a key that is not str or bin");
        if (client_buf_copy(&page->keys[page->n], k, klen))
            return AGATE_ENOMEM;
        page->n++;
        if (values) {
            int rc = client_read_raw(c, &cur, &v, &vlen);
            if (rc)
                return rc;
            if (client_buf_copy(&page->values[page->n - 1], v, vlen))
                return AGATE_ENOMEM;
        }
    }
    return 0;
}

static int ok_page(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    agate_page *page = call->out;
    /* aux: the page limit, shifted, and whether values come too */
    int rc = read_page(c, r, page, (aux & 1) != 0, (uint32_t)(aux >> 1));
    if (rc) {
        agate_page_free(page);
        if (rc == AGATE_ENOMEM)
            return client_err(c, AGATE_ENOMEM, "out of memory");
    }
    return rc;
}

static int scan(agate_client *c, int op, const char *region, uint64_t cursor, uint32_t limit,
                agate_page *page)
{
    if (page)
        memset(page, 0, sizeof(*page)); /* safe to free whatever happens */
    if (!c)
        return AGATE_EINVAL;
    if (!region || !page)
        return client_err(c, AGATE_EINVAL, "no region name or page");
    if (c->router)
        return router_scan(c, op == OP_ENTRIES, region, cursor, limit, page);
    client_call call;
    client_call_init(&call, ok_page, page);
    client_req rq;
    uintptr_t aux = (uintptr_t)limit << 1 | (op == OP_ENTRIES);
    int rc = client_call_begin(c, &call, &rq, op, 3, aux);
    if (rc)
        return rc;
    int e = mpw_cstr(&rq.pk, region);
    e |= msgpack_pack_uint64(&rq.pk, cursor);
    e |= msgpack_pack_uint32(&rq.pk, limit);
    rc = client_call_end(c, &call, &rq, e);
    return rc ? rc : client_call_wait(c, &call);
}

int agate_keys(agate_client *c, const char *region, uint64_t cursor, uint32_t limit,
               agate_page *page)
{
    return scan(c, OP_KEYS, region, cursor, limit, page);
}

int agate_entries(agate_client *c, const char *region, uint64_t cursor, uint32_t limit,
                  agate_page *page)
{
    return scan(c, OP_ENTRIES, region, cursor, limit, page);
}
