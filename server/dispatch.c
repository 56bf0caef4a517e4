#include "server/dispatch.h"

#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "server/command.h"
#include "server/locator.h"
#include "server/request.h"

static void ctx_init(req_ctx *x, conn_t *c, const msg_request *req, const command *cmd)
{
    x->conn = c;
    x->w = c->w;
    x->srv = c->w->srv;
    x->req = req;
    x->cmd = cmd;
    msgpack_packer_init(&x->pk, c, conn_pack_write);
}

void dispatch_frame_error(conn_t *c, int status, const char *msg)
{
    msg_request req = {.id = 0};
    req_ctx x;
    ctx_init(&x, c, &req, NULL);
    /* a misbehaving client can open connections in a loop: bound the log */
    static log_limit lim = LOG_LIMIT(10);
    log_limited(&lim, LOG_WARN, "connection from %s: %s; closing", c->peer, msg);
    reply_error(&x, status, "%s", msg);
    c->close_after_flush = true;
}

/* Answers a request whose arguments did not split cleanly. */
static void reject_args(req_ctx *x, int mp_err)
{
    const msg_request *req = x->req;
    const command *cmd = x->cmd;
    if (req->bad_arg < 0) {
        reply_error(x, ST_BAD_REQUEST, "%s: %s", cmd->name,
                    mp_err == MP_ERANGE ? "too many arguments" : "trailing bytes after the request");
        return;
    }
    const char *what = arg_name(x, req->bad_arg);
    if (mp_err == MP_EDEPTH) {
        reply_error(x, ST_TOO_DEEP, "%s: %s nested deeper than the limit of %u", cmd->name, what,
                    x->srv->cfg.max_depth);
        return;
    }
    int status = req->bad_arg == cmd->value_arg ? ST_BAD_VALUE : ST_BAD_REQUEST;
    reply_error(x, status, "%s: %s: %s", cmd->name, what, mp_strerror(mp_err));
}

void dispatch_frame(conn_t *c, const uint8_t *body, uint32_t len)
{
    msg_request req;
    req_ctx x;
    int rc = msg_request_head(body, len, &req);
    if (rc) {
        dispatch_frame_error(c, ST_BAD_REQUEST,
                             rc == MSG_EKIND ? "only requests may be sent to a server"
                                             : "malformed frame body (expected [0, id, opcode, ...])");
        return;
    }
    const command *cmd = c->w->srv->is_locator ? locator_command_lookup(req.op)
                                               : command_lookup(req.op);
    ctx_init(&x, c, &req, cmd);
    if (!c->handshaken && req.op != OP_HELLO) {
        reply_error(&x, ST_NO_HANDSHAKE, "the first request must be HELLO");
        c->close_after_flush = true;
        return;
    }
    if (!cmd) {
        reply_error(&x, ST_BAD_REQUEST, "unknown opcode %u", req.op);
        return;
    }
    if (req.argc < cmd->min_args || req.argc > cmd->max_args) {
        if (cmd->min_args == cmd->max_args)
            reply_error(&x, ST_BAD_REQUEST, "%s takes %u arguments, got %u", cmd->name,
                        cmd->min_args, req.argc);
        else
            reply_error(&x, ST_BAD_REQUEST, "%s takes %u to %u arguments, got %u", cmd->name,
                        cmd->min_args, cmd->max_args, req.argc);
        return;
    }
    int mp_err;
    if (msg_request_args(&req, (int)x.srv->cfg.max_depth + cmd->extra_depth, &mp_err)) {
        reject_args(&x, mp_err);
        return;
    }
    cmd->fn(&x);
    worker_count_op(c->w, req.op);
}
