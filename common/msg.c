#include "common/msg.h"

#include "common/proto.h"

/* Reads [kind, u64, u32] from an array and returns remaining element count. */
static int read_envelope(mp_cursor *c, uint64_t want_kind, uint64_t *id, uint64_t *code,
                         uint32_t *left)
{
    uint32_t n;
    uint64_t kind;
    if (mp_read_array(c, &n) || n < 3)
        return MSG_EMALFORMED;
    if (mp_read_uint(c, &kind))
        return MSG_EMALFORMED;
    if (kind != want_kind)
        return MSG_EKIND;
    if (mp_read_uint(c, id))
        return MSG_EMALFORMED;
    *left = n - 3;
    return mp_read_uint(c, code) ? MSG_EMALFORMED : 0;
}

int msg_request_head(const uint8_t *body, uint32_t len, msg_request *req)
{
    mp_cursor c;
    uint64_t op;
    mp_cursor_init(&c, body, len);
    int rc = read_envelope(&c, MSG_REQUEST, &req->id, &op, &req->argc);
    if (rc)
        return rc;
    if (op > UINT32_MAX)
        return MSG_EMALFORMED;
    req->op = (uint32_t)op;
    req->rest = c;
    return 0;
}

int msg_request_args(msg_request *req, int max_depth, int *mp_err)
{
    req->bad_arg = -1;
    if (req->argc > MSG_MAX_ARGS) {
        *mp_err = MP_ERANGE;
        return MSG_EARGS;
    }
    mp_cursor c = req->rest;
    for (uint32_t i = 0; i < req->argc; i++) {
        const uint8_t *start = c.p;
        int rc = mp_skip(&c, max_depth);
        if (rc) {
            *mp_err = rc;
            req->bad_arg = (int)i;
            return MSG_EARGS;
        }
        req->arg[i].p = start;
        req->arg[i].n = (uint32_t)(c.p - start);
    }
    if (mp_left(&c) != 0) {
        *mp_err = MP_EINVALID;
        return MSG_EARGS;
    }
    return 0;
}

int msg_server_kind(const uint8_t *body, uint32_t len)
{
    mp_cursor c;
    uint32_t n;
    uint64_t kind;
    mp_cursor_init(&c, body, len);
    if (mp_read_array(&c, &n) || n < 3 || mp_read_uint(&c, &kind))
        return MSG_EMALFORMED;
    if (kind != MSG_RESPONSE && kind != MSG_PUSH)
        return MSG_EMALFORMED;
    return (int)kind;
}

int msg_response_parse(const uint8_t *body, uint32_t len, int max_depth, msg_response *out)
{
    if (mp_check_one(body, len, max_depth + 1))
        return MSG_EMALFORMED;
    mp_cursor c;
    uint64_t status;
    mp_cursor_init(&c, body, len);
    int rc = read_envelope(&c, MSG_RESPONSE, &out->id, &status, &out->nresults);
    if (rc)
        return rc;
    if (status > 0xffff)
        return MSG_EMALFORMED;
    out->status = (int)status;
    out->errmsg = NULL;
    out->errmsg_len = 0;
    out->results = c;
    if (out->status >= ST_BAD_REQUEST && out->nresults >= 1) {
        mp_cursor m = c;
        if (mp_read_str(&m, &out->errmsg, &out->errmsg_len))
            out->errmsg = NULL;
    }
    return 0;
}

int msg_push_parse(const uint8_t *body, uint32_t len, int max_depth, msg_push *out)
{
    if (mp_check_one(body, len, max_depth + 1))
        return MSG_EMALFORMED;
    mp_cursor c;
    uint64_t kind;
    mp_cursor_init(&c, body, len);
    int rc = read_envelope(&c, MSG_PUSH, &out->subscription, &kind, &out->nitems);
    if (rc)
        return rc;
    if (kind > UINT32_MAX)
        return MSG_EMALFORMED;
    out->event_kind = (uint32_t)kind;
    out->items = c;
    return 0;
}
