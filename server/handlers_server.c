/* Connection and server-level requests: HELLO, PING, SERVER_INFO. */
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "server/handlers.h"
#include "server/registry.h"
#include "server/worker.h"

/* Appends the client's name from HELLO to the connection's description, so
 * every later log line about the connection says who it is. */
static void note_client_name(req_ctx *x)
{
    mp_cursor c;
    const uint8_t *name;
    uint32_t n;
    arg_cursor(x, 2, &c);
    if (mp_read_str(&c, &name, &n) || n == 0)
        return;
    conn_t *conn = x->conn;
    char clean[65];
    uint32_t k = 0;
    /* printable ASCII only: the name ends up in log lines */
    for (uint32_t i = 0; i < n && k < sizeof(clean) - 1; i++)
        clean[k++] = name[i] >= 0x20 && name[i] < 0x7f ? (char)name[i] : '?';
    clean[k] = 0;
    size_t used = strlen(conn->peer);
    snprintf(conn->peer + used, sizeof(conn->peer) - used, " (%s)", clean);
    log_debug("connection from %s: handshake done", conn->peer);
}

void handle_hello(req_ctx *x)
{
    mp_cursor c;
    const uint8_t *magic;
    uint32_t mlen;
    uint64_t version;
    arg_cursor(x, 0, &c);
    bool magic_ok = mp_read_str(&c, &magic, &mlen) == 0 && mlen == strlen(AGATE_PROTO_MAGIC) &&
                    memcmp(magic, AGATE_PROTO_MAGIC, mlen) == 0;
    arg_cursor(x, 1, &c);
    if (!magic_ok || mp_read_uint(&c, &version) || version != AGATE_PROTO_VERSION) {
        reply_error(x, ST_BAD_VERSION, "expected magic '%s' and protocol version %d",
                    AGATE_PROTO_MAGIC, AGATE_PROTO_VERSION);
        x->conn->close_after_flush = true;
        return;
    }
    mp_type t;
    arg_cursor(x, 2, &c);
    if (mp_peek_type(&c, &t) || t != MP_STR) {
        reply_error(x, ST_BAD_REQUEST, "HELLO: client_name must be a string");
        x->conn->close_after_flush = true;
        return;
    }
    arg_cursor(x, 3, &c);
    if (mp_peek_type(&c, &t) || (t != MP_NIL && t != MP_MAP)) {
        reply_error(x, ST_BAD_REQUEST, "HELLO: credentials must be nil (or a map, reserved)");
        x->conn->close_after_flush = true;
        return;
    }
    x->conn->handshaken = true;
    note_client_name(x);
    const server_config *cfg = &x->srv->cfg;
    msgpack_packer *pk = &x->pk;
    reply_head(x, ST_OK, 1);
    msgpack_pack_map(pk, 10);
    mpw_kv_str(pk, "server", cfg->name);
    mpw_kv_str(pk, "role", x->srv->is_locator ? "locator" : "server");
    mpw_kv_uint(pk, "member_id", x->srv->member_id);
    mpw_kv_uint(pk, "protocol", AGATE_PROTO_VERSION);
    mpw_kv_str(pk, "version", AGATE_VERSION);
    mpw_kv_uint(pk, "max_frame", cfg->max_frame);
    mpw_kv_uint(pk, "max_key", cfg->max_key);
    mpw_kv_uint(pk, "max_value", cfg->max_value);
    mpw_kv_uint(pk, "max_depth", cfg->max_depth);
    mpw_kv_uint(pk, "metadata_version", atomic_load(&x->srv->metadata_version));
    reply_done(x);
}

void handle_ping(req_ctx *x) { reply_status(x, ST_OK); }

/* Sums every worker's counter for op (relaxed reads: a snapshot). */
static uint64_t ops_total(const server_t *srv, int op)
{
    uint64_t n = 0;
    for (int i = 0; i < srv->nworkers; i++)
        n += atomic_load_explicit(&srv->workers[i].ops[op], memory_order_relaxed);
    return n;
}

static void pack_ops(msgpack_packer *pk, const server_t *srv)
{
    uint32_t n = 0;
    for (int op = 0; op < WORKER_OPS_TRACKED; op++)
        n += proto_op_name(op) != NULL;
    msgpack_pack_map(pk, n);
    for (int op = 0; op < WORKER_OPS_TRACKED; op++)
        if (proto_op_name(op))
            mpw_kv_uint(pk, proto_op_name(op), ops_total(srv, op));
}

void handle_server_info(req_ctx *x)
{
    const server_t *srv = x->srv;
    msgpack_packer *pk = &x->pk;
    uint64_t conns = 0, entries = 0;
    for (int i = 0; i < srv->nworkers; i++)
        conns += atomic_load_explicit(&srv->workers[i].nconns, memory_order_relaxed);
    const registry_view *v = registry_snapshot(srv->registry);
    for (size_t i = 0; i < registry_view_count(v); i++)
        entries += region_size(registry_view_at(v, i));
    reply_head(x, ST_OK, 1);
    msgpack_pack_map(pk, 14);
    mpw_kv_str(pk, "name", srv->cfg.name);
    mpw_kv_uint(pk, "member_id", srv->member_id);
    mpw_kv_uint(pk, "pid", (uint64_t)getpid());
    mpw_kv_str(pk, "version", AGATE_VERSION);
    mpw_kv_uint(pk, "protocol", AGATE_PROTO_VERSION);
    mpw_kv_uint(pk, "uptime_s", (uint64_t)(time(NULL) - srv->started));
    mpw_kv_uint(pk, "threads", (uint64_t)srv->nworkers);
    mpw_kv_uint(pk, "connections", conns);
    mpw_kv_uint(pk, "regions", registry_view_count(v));
    mpw_kv_uint(pk, "entries", entries);
    mpw_kv_str(pk, "bind", srv->cfg.bind);
    mpw_kv_uint(pk, "port", (uint64_t)srv->port);
    mpw_kv_str(pk, "dir", srv->cfg.dir);
    mpw_cstr(pk, "ops");
    pack_ops(pk, srv);
    reply_done(x);
}
