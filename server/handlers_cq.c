/* CQ_OPEN, CQ_CLOSE and CQ_LIST (docs/protocol.md "Continuous queries").
 *
 *   CQ_OPEN  [name, query, params|nil, options] -> [cq_id, heads, initial]
 *   CQ_CLOSE [cq_id]                            -> OK | NOT_FOUND
 *   CQ_LIST  []                                 -> [{id, name, region, ...}, ...]
 *
 * The handlers read and check the arguments into a cq_spec; the CQ itself
 * lives in server/cq.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "region/qast.h"
#include "server/cq.h"
#include "server/handlers.h"
#include "server/registry.h"

/* {"initial": bool, "replay": bool}; 0, or -1 after replying. */
static int read_options(req_ctx *x, cq_spec *s)
{
    if (x->req->argc < 4)
        return 0;
    mp_cursor c;
    uint32_t n;
    arg_cursor(x, 3, &c);
    if (mp_read_nil(&c) == 0)
        return 0;
    if (mp_read_map(&c, &n)) {
        reply_error(x, ST_BAD_REQUEST, "CQ_OPEN: options must be a map");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t kn;
        if (mp_read_str(&c, &k, &kn)) {
            reply_error(x, ST_BAD_REQUEST, "CQ_OPEN: option names must be strings");
            return -1;
        }
        bool *dst = kn == 7 && !memcmp(k, "initial", 7)  ? &s->initial
                    : kn == 6 && !memcmp(k, "replay", 6) ? &s->replay
                                                         : NULL;
        if (!dst || mp_read_bool(&c, dst)) {
            reply_error(x, ST_BAD_ARGUMENT,
                        "CQ_OPEN: unknown or invalid option '%.*s' (known: initial, replay: bool)",
                        (int)(kn > 64 ? 64 : kn), (const char *)k);
            return -1;
        }
    }
    return 0;
}

/* params: nil or an array, copied for the CQ's lifetime. */
static int read_params(req_ctx *x, cq_spec *s)
{
    if (x->req->argc < 3)
        return 0;
    mp_cursor c, t;
    arg_cursor(x, 2, &c);
    if (mp_read_nil(&c) == 0)
        return 0;
    const uint8_t *start = c.p;
    uint32_t count;
    t = c;
    if (mp_read_array(&t, &count) || mp_skip(&c, -1)) {
        reply_error(x, ST_BAD_REQUEST, "CQ_OPEN: params must be an array of values or nil");
        return -1;
    }
    if (count > CQ_MAX_PARAMS) {
        reply_error(x, ST_BAD_ARGUMENT, "CQ_OPEN: at most %d parameters", CQ_MAX_PARAMS);
        return -1;
    }
    s->params_len = (size_t)(c.p - start);
    s->params_raw = malloc(s->params_len);
    if (!s->params_raw) {
        reply_error(x, ST_NO_MEMORY, "CQ_OPEN: out of memory");
        return -1;
    }
    memcpy(s->params_raw, start, s->params_len);
    return 0;
}

/* Only a plain SELECT * [WHERE] over one region is a continuous query. */
static bool plain_select(const query_t *q)
{
    return q->star && !q->distinct && !q->ngroup && !q->norder && !q->has_limit &&
           !q->limit_param && !q->has_aggregates;
}

void handle_cq_open(req_ctx *x)
{
    cq_spec s = {0};
    if (arg_str(x, 0, &s.name, &s.name_len) || arg_str(x, 1, &s.text, &s.tlen))
        return;
    if (s.name_len == 0 || s.name_len > CQ_NAME_MAX || memchr(s.name, 0, s.name_len)) {
        reply_error(x, ST_BAD_ARGUMENT, "CQ_OPEN: name must be 1..%d bytes, no NUL", CQ_NAME_MAX);
        return;
    }
    if (read_options(x, &s))
        return;
    qerror err;
    int rc = query_parse((const char *)s.text, s.tlen, &s.q, &err);
    if (rc == -ENOMEM) {
        reply_error(x, ST_NO_MEMORY, "CQ_OPEN: out of memory");
        return;
    }
    if (rc) {
        reply_error(x, ST_BAD_ARGUMENT, "query: at %u: %s", err.pos, err.msg);
        return;
    }
    if (!plain_select(s.q)) {
        query_free(s.q);
        reply_error(x, ST_BAD_ARGUMENT,
                    "CQ_OPEN: a continuous query is SELECT * FROM /region [alias] [WHERE ...]: no "
                    "projection, DISTINCT, GROUP BY, ORDER BY, LIMIT or aggregates");
        return;
    }
    region_t *r = registry_find(x->srv->registry, (const uint8_t *)s.q->region,
                                strlen(s.q->region));
    if (!r) {
        reply_error(x, ST_UNKNOWN_REGION, "CQ_OPEN: no region '%s'", s.q->region);
        query_free(s.q);
        return;
    }
    if (read_params(x, &s)) {
        query_free(s.q);
        return;
    }
    char msg[300];
    int st = cq_open(x, r, &s, msg, sizeof msg);
    if (st)
        reply_error(x, st, "%s", msg);
}

void handle_cq_close(req_ctx *x)
{
    uint64_t id;
    if (arg_uint(x, 0, &id))
        return;
    if (cq_close(x->conn, id))
        reply_status(x, ST_NOT_FOUND); /* not on this connection */
    else
        reply_status(x, ST_OK);
}

void handle_cq_list(req_ctx *x)
{
    if (cq_list(x, reply_budget(x) / 2))
        reply_error(x, ST_TOO_LARGE, "CQ_LIST: the list does not fit in a reply");
}
