#include "server/index_args.h"

#include <string.h>

#include "common/proto.h"

int index_arg_name(req_ctx *x, int i, char name[QINDEX_NAME_MAX + 1])
{
    const uint8_t *p;
    uint32_t n;
    if (arg_str(x, i, &p, &n))
        return -1;
    if (qindex_name_check((const char *)p, n)) {
        reply_error(x, ST_BAD_ARGUMENT,
                    "invalid index name '%.*s': use 1-128 characters of A-Z a-z 0-9 _ . -",
                    (int)(n > 64 ? 64 : n), p);
        return -1;
    }
    memcpy(name, p, n);
    name[n] = 0;
    return 0;
}

/* The optional type at argument 3 (absent or nil: range). */
static int arg_kind(req_ctx *x, qindex_kind *kind)
{
    *kind = QINDEX_RANGE;
    if (x->req->argc <= 3)
        return 0;
    mp_cursor c;
    arg_cursor(x, 3, &c);
    if (mp_read_nil(&c) == 0)
        return 0;
    const uint8_t *t;
    uint32_t tlen;
    if (arg_str(x, 3, &t, &tlen))
        return -1;
    if (qindex_kind_parse((const char *)t, tlen, kind)) {
        reply_error(x, ST_BAD_ARGUMENT, "unknown index type '%.*s'; expected range or hash",
                    (int)(tlen > 32 ? 32 : tlen), t);
        return -1;
    }
    return 0;
}

int index_args_read(req_ctx *x, index_args *a)
{
    const uint8_t *e;
    if (index_arg_name(x, 1, a->name) || arg_str(x, 2, &e, &a->elen) || arg_kind(x, &a->kind))
        return -1;
    if (a->elen > QINDEX_EXPR_MAX) {
        reply_error(x, ST_TOO_LARGE, "an index expression is at most %d bytes", QINDEX_EXPR_MAX);
        return -1;
    }
    memcpy(a->expr, e, a->elen);
    a->expr[a->elen] = 0;
    return 0;
}
