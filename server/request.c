#include "server/request.h"

#include <stdarg.h>
#include <stdio.h>

#include "common/frame.h"
#include "common/hash.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "server/command.h"
#include "server/registry.h"

void reply_head(req_ctx *x, int status, uint32_t nresults)
{
    x->frame_off = frame_begin(&x->conn->out);
    if (x->frame_off == (size_t)-1) {
        x->conn->out_failed = true;
        return;
    }
    msgpack_pack_array(&x->pk, 3 + nresults);
    msgpack_pack_uint32(&x->pk, 1);
    msgpack_pack_uint64(&x->pk, x->req->id);
    msgpack_pack_int(&x->pk, status);
}

void reply_done(req_ctx *x)
{
    if (!x->conn->out_failed && frame_end(&x->conn->out, x->frame_off))
        x->conn->out_failed = true;
}

size_t reply_size(const req_ctx *x)
{
    const buf_t *out = &x->conn->out;
    return out->len - (out->rpos + x->frame_off);
}

void reply_discard(req_ctx *x)
{
    buf_t *out = &x->conn->out;
    out->len = out->rpos + x->frame_off;
}

size_t reply_budget(const req_ctx *x) { return x->srv->cfg.max_frame; }

void reply_status(req_ctx *x, int status)
{
    reply_head(x, status, 0);
    reply_done(x);
}

void reply_error(req_ctx *x, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_head(x, status, 1);
    mpw_cstr(&x->pk, msg);
    reply_done(x);
}

const char *arg_name(const req_ctx *x, int i)
{
    if (x->cmd && i >= 0 && i < MSG_MAX_ARGS && x->cmd->args[i])
        return x->cmd->args[i];
    return "argument";
}

static const char *cmd_name(const req_ctx *x) { return x->cmd ? x->cmd->name : "request"; }

void arg_cursor(const req_ctx *x, int i, mp_cursor *c)
{
    mp_cursor_init(c, x->req->arg[i].p, x->req->arg[i].n);
}

int arg_str(req_ctx *x, int i, const uint8_t **p, uint32_t *n)
{
    mp_cursor c;
    arg_cursor(x, i, &c);
    if (mp_read_str(&c, p, n)) {
        reply_error(x, ST_BAD_REQUEST, "%s: %s must be a string", cmd_name(x), arg_name(x, i));
        return -1;
    }
    return 0;
}

int arg_uint(req_ctx *x, int i, uint64_t *out)
{
    mp_cursor c;
    arg_cursor(x, i, &c);
    if (mp_read_uint(&c, out)) {
        reply_error(x, ST_BAD_REQUEST, "%s: %s must be a non-negative integer", cmd_name(x),
                    arg_name(x, i));
        return -1;
    }
    return 0;
}

int arg_region(req_ctx *x, int i, region_t **out)
{
    const uint8_t *p;
    uint32_t n;
    if (arg_str(x, i, &p, &n))
        return -1;
    size_t len = n;
    if (region_name_check(&p, &len)) {
        reply_error(x, ST_BAD_ARGUMENT, "%s: invalid region name '%.*s'", cmd_name(x),
                    (int)(n > 64 ? 64 : n), (const char *)p);
        return -1;
    }
    *out = registry_find(x->srv->registry, p, len);
    if (!*out) {
        reply_error(x, ST_UNKNOWN_REGION, "region '%.*s' not found", (int)len, (const char *)p);
        return -1;
    }
    return 0;
}

int read_key(req_ctx *x, mp_cursor *c, const char *what, key_arg *k)
{
    if (mp_read_bytes(c, &k->p, &k->n, &k->is_str)) {
        reply_error(x, ST_BAD_REQUEST, "%s: %s must be a str or bin", cmd_name(x), what);
        return -1;
    }
    if (k->n > x->srv->cfg.max_key) {
        reply_error(x, ST_TOO_LARGE, "%s: %s is %u bytes, above the limit of %u", cmd_name(x),
                    what, k->n, x->srv->cfg.max_key);
        return -1;
    }
    k->hash = hash_key(k->p, k->n);
    return 0;
}

int arg_key(req_ctx *x, int i, key_arg *k)
{
    mp_cursor c;
    arg_cursor(x, i, &c);
    return read_key(x, &c, arg_name(x, i), k);
}

int check_value(req_ctx *x, const char *what, uint32_t vlen)
{
    if (vlen > x->srv->cfg.max_value) {
        reply_error(x, ST_TOO_LARGE, "%s: %s is %u bytes, above the limit of %u", cmd_name(x),
                    what, vlen, x->srv->cfg.max_value);
        return -1;
    }
    return 0;
}
