/* client.h - libagate internals shared by the client sources.
 *
 * The library is built with -fvisibility=hidden; the public header is
 * included here under default visibility so that exactly the agate_*
 * functions it declares are exported. Everything below is internal and
 * named client_*. */
#ifndef AGATE_CLIENT_CLIENT_H
#define AGATE_CLIENT_CLIENT_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(default)
#include "agate/agate.h"
#pragma GCC visibility pop

#include <msgpack.h>

#include "common/buf.h"
#include "common/msg.h"

/* Replies larger than this are refused (AGATE_EPROTO). Requests are bounded
 * by the server's max_frame, but a reply (a page of entries, a get_all
 * batch) can legitimately be larger; this is a sanity bound, not a quota:
 * memory grows only with bytes actually received. */
#define CLIENT_MAX_REPLY (1u << 30)
/* Before the handshake the peer is unproven: a HELLO reply is tiny. */
#define CLIENT_HANDSHAKE_MAX_REPLY (1u << 20)
/* Read size per recv(). */
#define CLIENT_READ_CHUNK (64u << 10)
/* Idle buffers above this are given back after a burst of big frames. */
#define CLIENT_IDLE_KEEP (256u << 10)
/* Target body size of one put_all / get_all batch: small enough that the
 * server works on one batch while the next is on the wire. */
#define CLIENT_BATCH_TARGET (1u << 20)
/* While pipelining batches, flush once this much output is queued so a huge
 * put_all does not copy everything into memory first. */
#define CLIENT_BATCH_OUT_HIGH (8u << 20)
#define CLIENT_ERRMSG_MAX 512

/* ---- Outstanding requests (pending.c) -------------------------------- */

/* Completion of an internal request: r is the parsed reply, or NULL when the
 * request failed without one (err then is the AGATE_E* code). Returns 0, or
 * AGATE_EPROTO when the reply's results do not have the promised shape: the
 * caller then drops the connection. */
typedef int (*client_done_fn)(agate_client *c, const msg_response *r, int err, void *arg,
                              uintptr_t aux);

typedef struct client_pending_entry {
    uint64_t id;        /* 0: free slot (request ids start at 1) */
    client_done_fn fn;  /* internal completion, or NULL */
    agate_reply_cb cb;  /* user callback of an *_async request, or NULL */
    void *arg;
    uintptr_t aux;      /* per-request detail for fn (e.g. a batch offset) */
    uint8_t op;
    uint8_t abandoned;  /* timed out: the reply, if any, is discarded */
} client_pending_entry;

/* Open-addressing hash keyed by request id, linear probing, home slot
 * id & mask. Ids are allocated sequentially, so consecutive requests land in
 * consecutive slots and collisions only come from stragglers. */
typedef struct client_pending {
    client_pending_entry *slots;
    size_t mask;  /* capacity - 1; capacity is a power of two, or 0 */
    size_t count; /* occupied slots, abandoned included */
    size_t live;  /* occupied and not abandoned: what agate_pending reports */
} client_pending;

/* Returns a zeroed slot for id (the caller fills it), or NULL if out of
 * memory. The pointer is valid until the next add. */
client_pending_entry *client_pending_add(client_pending *t, uint64_t id);
/* Removes id's entry into *out. Returns 1 if it was there, else 0. */
int client_pending_take(client_pending *t, uint64_t id, client_pending_entry *out);
/* Marks every entry whose arg is arg as abandoned. */
void client_pending_abandon(client_pending *t, const void *arg);
/* Empties the table and hands its slot array to the caller (free() it);
 * *cap gets the array's length. The table is reusable afterwards. */
client_pending_entry *client_pending_detach(client_pending *t, size_t *cap);
void client_pending_free(client_pending *t);

/* ---- The client ------------------------------------------------------ */

/* A push frame arrived on c: p is parsed, body..body+len its bytes (valid
 * only during the call). Runs inside the reply dispatcher: it must not
 * block, call back into c or free it. */
typedef void (*client_push_fn)(agate_client *c, const msg_push *p, const uint8_t *body,
                               uint32_t len, void *arg);

typedef struct client_server {
    char *host;
    char *port;
    char *addr; /* "host:port" as given, for messages and agate_server_address */
} client_server;

struct agate_client {
    int connect_timeout_ms;
    int request_timeout_ms;
    char *client_name;

    client_server *servers;
    size_t nservers;
    size_t cur;          /* index of the connected (or last failed) server */

    int fd;              /* -1 when disconnected */
    uint64_t gen;        /* bumped on every disconnect: stale loops bail out */
    buf_t in;
    buf_t out;
    client_pending pend;
    uint64_t next_id;

    /* The server's limits, from the HELLO reply. */
    uint32_t max_frame;
    uint32_t max_key;
    uint32_t max_value;
    uint32_t max_depth;
    uint32_t member_id;
    uint32_t max_reply;  /* frame limit for what we read */
    int parse_depth;     /* nesting allowed inside a reply's results */

    int handshaking;     /* the peer has not proven it speaks our protocol */
    int cb_depth;        /* > 0 while a user callback runs */
    int failing;         /* > 0 while outstanding requests are being failed */
    int closing;         /* agate_client_free in progress: no reconnect */
    int fail_rc;         /* error of the last connection failure */

    /* Clusters (router.h). A client is either a single-server client (router
     * NULL) or a router whose connections are plain child clients. */
    struct client_router *router;
    int plain;           /* a router's child: never switches to routing itself */
    int hello_locator;   /* the HELLO reply said role "locator" */
    uint64_t hello_mdv;  /* the HELLO reply's metadata_version (0: stand-alone) */
    uint64_t client_id;  /* event ids (docs/cluster.md): random, chosen at creation */
    uint64_t next_seq;   /* next event sequence number; starts at 1 */

    /* Push frames ([2, ...]) are handed to on_push when set (continuous
     * queries' subscription connections, client/cq.c), else dropped. */
    client_push_fn on_push;
    void *push_arg;

    /* agate_interrupt: set from anywhere (a signal handler too), taken by
     * the next blocking wait. A router's children point at its flag. */
    volatile sig_atomic_t interrupt_flag;
    volatile sig_atomic_t *interrupt;
    char errmsg[CLIENT_ERRMSG_MAX];    /* agate_errmsg */
    char failmsg[CLIENT_ERRMSG_MAX];   /* why the connection was dropped */
    char replymsg[CLIENT_ERRMSG_MAX];  /* agate_reply.errmsg of a callback */
};

/* ---- Event ids (docs/cluster.md, "Event ids") ------------------------- */

/* The optional last argument of PUT, REMOVE and PUT_ALL in a cluster. Only
 * a router sends it; a single-server client never does. */
typedef struct client_evid {
    uint64_t client_id;
    uint64_t seq;
} client_evid;

/* Packs [client_id, seq]. Returns the packer's error (0 on success). */
int client_pack_evid(msgpack_packer *pk, const client_evid *ev);

/* ---- Queries (query.c) ------------------------------------------------ */
/* Checks the bind parameters of a query or continuous query: NULL with no
 * length, or exactly one well-formed MessagePack array. 0 or AGATE_EINVAL
 * (with errmsg). */
int client_check_params(agate_client *c, const void *params, size_t params_len);

/* ---- Errors (error.c) ------------------------------------------------ */

/* Sets c->errmsg (printf style) and returns rc, for `return client_err(...)`. */
int client_err(agate_client *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* AGATE_E* code for a wire status (never 0; ST_OK is not an error). */
int client_status_error(int status);
/* Copies a reply's error text (or the status name) into dst as a C string. */
void client_status_message(const msg_response *r, char *dst, size_t cap);

/* ---- Sockets and I/O (conn.c, io.c) ---------------------------------- */

/* Parses "host:port[,host:port...]" into c->servers. */
int client_servers_parse(agate_client *c, const char *list);
void client_servers_free(agate_client *c);
/* Opens a connected non-blocking TCP socket to host:port, waiting at most
 * timeout_ms per resolved address. Returns the fd, or -1 with err filled. */
int client_sock_connect(const char *host, const char *port, int timeout_ms, char *err,
                        size_t errcap);

/* Drops the connection: closes the socket, discards buffered I/O and
 * completes every outstanding request with err (running user callbacks). */
void client_conn_fail(agate_client *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* One send() of the queued output. Returns 0 (also on EAGAIN) or the error
 * after dropping the connection. */
int client_io_write(agate_client *c);
/* Reads what the socket has and dispatches every complete reply. Returns 0
 * or the error after dropping the connection. */
int client_io_read(agate_client *c);

/* Stop condition of client_io_run: nonzero to stop. */
typedef int (*client_until_fn)(agate_client *c, void *arg);
/* Writes, polls, reads and dispatches until until(c, arg) holds or
 * timeout_ms passes (<= 0: no limit). Returns 0 when the condition holds,
 * AGATE_ETIMEDOUT, or the connection error if the connection dropped first. */
int client_io_run(agate_client *c, client_until_fn until, void *arg, int timeout_ms);

/* ---- Connection lifecycle (session.c) -------------------------------- */

/* Connects to the servers in list order starting at index first. */
int client_connect_from(agate_client *c, size_t first);
/* Makes sure there is a connection, reconnecting after a failure. */
int client_ensure_conn(agate_client *c);
/* AGATE_EINVAL when called from inside a callback, where blocking calls
 * would re-enter the reply dispatcher. */
int client_check_blocking(agate_client *c, const char *what);
/* A new plain client (never routes) with parent's timeouts and name, not
 * connected. NULL if out of memory. */
agate_client *client_child_new(const agate_client *parent);
/* Moves src's connection (socket, buffers, outstanding requests, server
 * list, limits) into dst, which must be new and unconnected; src is left
 * unconnected with an empty server list. */
void client_conn_move(agate_client *dst, agate_client *src);

/* ---- Requests (request.c) -------------------------------------------- */

typedef struct client_req {
    msgpack_packer pk;
    size_t frame_off; /* of the frame header, relative to c->out.rpos */
    uint64_t id;
} client_req;

/* Connects if needed, registers a pending entry and starts the frame
 * [0, id, op, <nargs arguments follow>] in c->out. */
int client_req_begin(agate_client *c, client_req *rq, int op, uint32_t nargs,
                     client_done_fn fn, agate_reply_cb cb, void *arg, uintptr_t aux);
/* Closes the frame. pack_err is the OR of the packer results for the
 * arguments. On failure (out of memory, or the frame is above the server's
 * limit) the request is rolled back as if never made. */
int client_req_end(agate_client *c, client_req *rq, int pack_err);
/* Writes v big-endian (frame headers, 32-bit counts patched in place). */
static inline void client_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
/* Rolls back a begun request. */
void client_req_abort(agate_client *c, client_req *rq);
/* Packs a key as str when it is valid UTF-8, else as bin. */
int client_pack_key(msgpack_packer *pk, const void *key, size_t klen);
/* Bytes client_pack_key writes for a key of klen bytes (upper bound). */
size_t client_key_size(size_t klen);
bool client_utf8_valid(const uint8_t *p, size_t n);
/* Argument checks shared by the request builders (set errmsg, EINVAL). */
int client_check_keyed(agate_client *c, const char *region, const void *key, size_t klen);
int client_check_value(agate_client *c, const void *value, size_t vlen);

/* A synchronous call: one or more requests whose completions share it. */
typedef struct client_call client_call;
typedef int (*client_ok_fn)(agate_client *c, client_call *call, const msg_response *r,
                            uintptr_t aux);
struct client_call {
    int remaining;     /* replies still expected */
    int rc;            /* first failure, else 0 */
    client_ok_fn on_ok; /* parses an OK reply's results; NULL: none expected */
    void *out;         /* what on_ok fills */
    void *out2;
};

void client_call_init(client_call *call, client_ok_fn on_ok, void *out);
/* The client_done_fn of synchronous requests (arg is the client_call). */
int client_call_done(agate_client *c, const msg_response *r, int err, void *arg, uintptr_t aux);
/* Sends and waits for every request of call, at most the request timeout
 * between two replies. On timeout the requests are abandoned. Returns
 * call->rc or the waiting error, with c->errmsg set on failure. */
int client_call_wait(agate_client *c, client_call *call);
/* Starts a synchronous request: the checks every blocking call makes, then
 * client_req_begin with call as the completion's argument. */
int client_call_begin(agate_client *c, client_call *call, client_req *rq, int op,
                      uint32_t nargs, uintptr_t aux);
/* A whole synchronous call of op with no arguments, or with one string (a
 * region name): begin, pack, end, wait. */
int client_simple_call(agate_client *c, client_call *call, int op, const char *name);
/* Result readers shared by calls: the first result copied whole into the
 * agate_buf call->out; the first result as a uint into *(uint64_t *)call->out
 * (when out is not NULL). */
int client_ok_value(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux);
int client_ok_uint(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux);
/* client_req_end, counting the request into call. */
int client_call_end(agate_client *c, client_call *call, client_req *rq, int pack_err);

/* ---- Single-server operations with event ids (ops.c, async.c, batch.c) --
 * The bodies of agate_put, agate_remove, the *_async calls and
 * agate_put_all for one connection; ev (may be NULL: none sent) is
 * appended as the last argument. A router calls them on its children. */

int client_put(agate_client *c, const char *region, const void *key, size_t klen,
               const void *value, size_t vlen, const client_evid *ev);
int client_remove(agate_client *c, const char *region, const void *key, size_t klen,
                  const client_evid *ev);
/* Queues [region, key], [region, key, value] (+ ev) as op with callback cb. */
int client_queue_keyed(agate_client *c, int op, const char *region, const void *key,
                       size_t klen, const void *value, size_t vlen, const client_evid *ev,
                       agate_reply_cb cb, void *arg);

/* item_rc value of an entry whose batch was never queued. */
#define CLIENT_NOT_SENT 1
/* agate_put_all's checks of every entry (keys, values one object each). */
int client_check_kvs(agate_client *c, const agate_kv *kvs, size_t n);
/* put_all of kvs[0..n) where entry i carries event sequence seqs[i]: each
 * batch sends [client_id, seq of its first entry], and a batch ends where
 * the sequences stop being consecutive. Entries must have been checked
 * (client_check_kvs). item_rc (n ints, caller-owned) gets, per entry, 0 when
 * its batch was applied, the batch's AGATE_E* error (AGATE_EIO or
 * AGATE_ETIMEDOUT: no answer, it may have been applied), or CLIENT_NOT_SENT.
 * Returns 0 or the first error. */
int client_put_all_ev(agate_client *c, const char *region, const agate_kv *kvs, size_t n,
                      uint64_t client_id, const uint64_t *seqs, int *item_rc);

/* ---- Reply results (results.c) --------------------------------------- */

/* The extent of the next whole object at cur (advances past it). */
int client_read_raw(agate_client *c, mp_cursor *cur, const uint8_t **p, size_t *n);
/* Copies n bytes into a fresh agate_buf (data non-NULL even when n is 0). */
int client_buf_copy(agate_buf *b, const void *p, size_t n);
/* Protocol error about a reply's results: sets errmsg, returns AGATE_EPROTO. */
int client_bad_reply(agate_client *c, const char *what);

/* ---- Async replies (async.c) ----------------------------------------- */

/* Completes an *_async request: translates the reply for its callback. */
int client_async_complete(agate_client *c, const client_pending_entry *e,
                          const msg_response *r, int err);

/* ---- Region info (region_info.c) ------------------------------------- */

/* Parses one region info map at cur into *out (zeroed first). On failure
 * out holds nothing to free and the result is AGATE_EPROTO or AGATE_ENOMEM. */
int client_region_info_parse(agate_client *c, mp_cursor *cur, agate_region_info *out);
void client_region_info_clear(agate_region_info *info);

/* ---- Time (io.c) ----------------------------------------------------- */

int64_t client_now_ms(void);

#endif
