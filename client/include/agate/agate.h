/* agate.h - libagate, the Agate client library.
 *
 * Conventions
 *   - Every function that can fail returns an int: 0 (or a documented
 *     non-negative count) on success, a negative AGATE_E* code on failure.
 *     agate_errmsg(c) then gives a readable message for the last failure.
 *   - Keys are byte strings (key, klen). They are sent as MessagePack str when
 *     they are valid UTF-8, else as bin; the server treats both the same.
 *   - Values are MessagePack: one encoded object (value, vlen), e.g. built with
 *     msgpack-c. The library checks nothing inside them; the server does.
 *   - Memory the library returns (agate_buf, pages, region infos) is owned by
 *     the caller and released with the matching agate_*_free function.
 *     Pointers passed in are only read during the call.
 *
 * Threads
 *   An agate_client is NOT thread-safe: use one per thread, or guard it with
 *   your own lock. Distinct clients are independent. agate_strerror,
 *   agate_region_type_name and agate_region_type_parse are thread-safe.
 *
 * Connections and failures
 *   agate_connect takes a comma-separated list of servers and uses the first
 *   that accepts a handshake. When the connection breaks, outstanding
 *   requests fail with AGATE_EIO; the next call reconnects, trying the
 *   servers in list order starting after the one that failed. When the server
 *   sends something that is not the protocol, the connection is dropped the
 *   same way and outstanding requests fail with AGATE_EPROTO. A request that
 *   failed with AGATE_EIO, AGATE_EPROTO or AGATE_ETIMEDOUT may or may not
 *   have been applied.
 */
#ifndef AGATE_AGATE_H
#define AGATE_AGATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AGATE_VERSION_STRING "0.1.0"

enum agate_error {
    AGATE_OK = 0,
    AGATE_ENOTFOUND = -1,       /* key absent (an outcome, not a fault) */
    AGATE_EINVAL = -2,          /* bad argument to a library call */
    AGATE_ENOMEM = -3,
    AGATE_ECONNECT = -4,        /* no server could be reached */
    AGATE_EIO = -5,             /* connection lost */
    AGATE_ETIMEDOUT = -6,
    AGATE_EPROTO = -7,          /* the peer does not speak the protocol */
    AGATE_EUNKNOWN_REGION = -8,
    AGATE_EREGION_EXISTS = -9,
    AGATE_ETOO_LARGE = -10,     /* key, value, frame or batch above a limit */
    AGATE_ETOO_DEEP = -11,      /* value nested too deeply */
    AGATE_EBAD_VALUE = -12,     /* value is not one well-formed MessagePack object */
    AGATE_EBAD_REQUEST = -13,   /* server rejected the request's form */
    AGATE_EBAD_ARGUMENT = -14,  /* server rejected an argument's value */
    AGATE_EVERSION = -15,       /* protocol version mismatch */
    AGATE_ESHUTTING_DOWN = -16,
    AGATE_ESERVER = -17,        /* internal server error */
    AGATE_EREDIRECT = -18,      /* not primary for the key (retried internally in clusters) */
    AGATE_EUNAVAILABLE = -19,   /* the cluster cannot serve the key now (retried until the
                                   request timeout) */
};

/* Static English text for an error code. Never NULL. */
const char *agate_strerror(int err);

typedef struct agate_client agate_client;

typedef struct agate_options {
    int connect_timeout_ms; /* per server address, also bounds the handshake;
                               default 5000; <= 0: only the kernel's limit on
                               connecting, and the handshake then gets
                               request_timeout_ms */
    int request_timeout_ms; /* synchronous calls; default 10000; <= 0 waits forever.
                               A call that timed out returns AGATE_ETIMEDOUT and
                               its late reply is discarded; the connection stays. */
    const char *client_name; /* sent in the handshake; may be NULL */
} agate_options;

/* Fills o with the defaults. */
void agate_options_init(agate_options *o);

/* Creates a client; opts may be NULL for defaults. NULL only if out of memory. */
agate_client *agate_client_new(const agate_options *opts);
/* Closes the connection (failing outstanding requests with AGATE_EIO, their
 * callbacks run) and frees c. NULL is allowed. */
void agate_client_free(agate_client *c);

/* Connects to the first of servers ("host:port[,host:port...]") that
 * completes the handshake. Returns 0, AGATE_ECONNECT, AGATE_EVERSION, ...
 * If that server is a locator or a member of a cluster, the client routes
 * over the cluster from then on (see "Clusters" below). */
int agate_connect(agate_client *c, const char *servers);
/* Message for the last failed call on c; valid until the next call on c. */
const char *agate_errmsg(const agate_client *c);
/* "host:port" of the connected server, or NULL. Valid while connected.
 * In a cluster: the locator's (or, while it is not connected, a member's). */
const char *agate_server_address(const agate_client *c);

/* Bytes owned by the caller; release with agate_buf_free. */
typedef struct agate_buf {
    uint8_t *data;
    size_t len;
} agate_buf;
void agate_buf_free(agate_buf *b); /* frees data, zeroes b; NULL is allowed */

int agate_ping(agate_client *c);
/* The server's SERVER_INFO map, MessagePack-encoded, into *out. */
int agate_server_info(agate_client *c, agate_buf *out);

/* ---- Regions ---------------------------------------------------------- */

typedef enum agate_region_type {
    AGATE_PARTITION,
    AGATE_PARTITION_REDUNDANT,
    AGATE_PARTITION_PERSISTENT,
    AGATE_PARTITION_REDUNDANT_PERSISTENT,
    AGATE_REPLICATE,
    AGATE_REPLICATE_PERSISTENT,
} agate_region_type;

/* "PARTITION", ...; NULL for an unknown value. */
const char *agate_region_type_name(agate_region_type t);
/* Parses a type name (case-insensitive). Returns 0 or AGATE_EINVAL. */
int agate_region_type_parse(const char *name, agate_region_type *out);

typedef struct agate_region_config {
    const char *name;
    agate_region_type type;
    int redundant_copies;  /* -1: the type's default */
    int total_num_buckets; /* 0: the default, 113 */
    int if_not_exists;     /* nonzero: an existing region of the same type is fine */
} agate_region_config;

/* Fills cfg with defaults for name and type. */
void agate_region_config_init(agate_region_config *cfg, const char *name, agate_region_type type);

int agate_region_create(agate_client *c, const agate_region_config *cfg);
int agate_region_destroy(agate_client *c, const char *name);

typedef struct agate_region_member {
    char *member;
    uint32_t member_id;
    uint32_t buckets;
    uint32_t primary_buckets;
    uint64_t entries;
} agate_region_member;

typedef struct agate_region_info {
    char *name;
    agate_region_type type;
    uint32_t redundant_copies;
    uint32_t total_num_buckets;
    int partitioned;
    int persistent;
    uint64_t entries;
    uint64_t bytes;
    size_t nmembers;
    agate_region_member *members;
} agate_region_info;

/* On success *out is a new info; free it with agate_region_info_free. */
int agate_region_describe(agate_client *c, const char *name, agate_region_info **out);
void agate_region_info_free(agate_region_info *info);
/* On success *out is an array of *n infos; free with agate_region_list_free. */
int agate_region_list(agate_client *c, agate_region_info **out, size_t *n);
void agate_region_list_free(agate_region_info *infos, size_t n);

/* ---- Entries ---------------------------------------------------------- */

typedef struct agate_version {
    uint32_t member_id;
    uint64_t counter;
} agate_version;

int agate_put(agate_client *c, const char *region, const void *key, size_t klen,
              const void *value, size_t vlen);
/* 0 and the value in *value (caller frees), or AGATE_ENOTFOUND. */
int agate_get(agate_client *c, const char *region, const void *key, size_t klen,
              agate_buf *value);
/* As agate_get, plus the entry's version; ver may be NULL. */
int agate_get_entry(agate_client *c, const char *region, const void *key, size_t klen,
                    agate_buf *value, agate_version *ver);
/* 0 if removed, AGATE_ENOTFOUND if absent. */
int agate_remove(agate_client *c, const char *region, const void *key, size_t klen);
/* 1 if present, 0 if absent, or an error. */
int agate_contains_key(agate_client *c, const char *region, const void *key, size_t klen);
int agate_size(agate_client *c, const char *region, uint64_t *count);
/* Removes every entry; *removed (may be NULL) gets how many. */
int agate_clear(agate_client *c, const char *region, uint64_t *removed);

typedef struct agate_kv {
    const void *key;
    size_t klen;
    const void *value; /* one MessagePack object */
    size_t vlen;
} agate_kv;

typedef struct agate_key {
    const void *key;
    size_t klen;
} agate_key;

/* Puts n entries. Large batches are split into several requests that fit the
 * server's frame limit and sent pipelined. Not atomic: on an error, some
 * batches may have been applied. Before anything is sent, each value is
 * checked to be exactly one MessagePack object (AGATE_EBAD_VALUE otherwise,
 * AGATE_EINVAL for a NULL or empty value: inside a batch a malformed value
 * would shift the entries after it), and
 * an entry too large for any frame fails with AGATE_ETOO_LARGE. */
int agate_put_all(agate_client *c, const char *region, const agate_kv *kvs, size_t n);
/* Gets n keys. values must point to n agate_buf; values[i].data is NULL when
 * keys[i] is absent, else the value (caller frees each with agate_buf_free).
 * Keys are sent in pipelined batches; a batch whose values would exceed the
 * server's reply limit (its frame limit) is fetched again in halves. On an
 * error nothing is left allocated. */
int agate_get_all(agate_client *c, const char *region, const agate_key *keys, size_t n,
                  agate_buf *values);

/* One page of a key or entry scan. */
typedef struct agate_page {
    uint64_t next_cursor; /* 0: the scan is complete */
    size_t n;
    agate_buf *keys;      /* n keys */
    agate_buf *values;    /* n values for agate_entries; NULL for agate_keys */
} agate_page;

/* Scans keys: start with cursor 0, pass next_cursor back until it is 0.
 * limit is the page size (1..10000). Free each page with agate_page_free. */
int agate_keys(agate_client *c, const char *region, uint64_t cursor, uint32_t limit,
               agate_page *page);
int agate_entries(agate_client *c, const char *region, uint64_t cursor, uint32_t limit,
                  agate_page *page);
void agate_page_free(agate_page *page);

/* ---- Queries (docs/query.md) -------------------------------------------
 * Runs one query, e.g. "SELECT o.id, o.total FROM /orders o WHERE
 * o.total > $1 ORDER BY o.total DESC LIMIT 10", on the server.
 *
 * params: NULL (no parameters), or exactly one encoded MessagePack array of
 * params_len bytes holding the values of $1, $2, ... in order (build it
 * with msgpack-c: msgpack_pack_array(pk, n), then the n values). Anything
 * else (malformed bytes, trailing bytes, another type) is AGATE_EINVAL and
 * nothing is sent.
 * timeout_ms: how long the server may work on the query; 0 = no limit;
 * < 0 = the server's default (30 s). The call waits for the reply for
 * request_timeout_ms, or for the query's time limit plus 1 s when that is
 * longer (without limit when timeout_ms is 0 or request_timeout_ms <= 0).
 *
 * On success *out (free with agate_buf_free) holds one MessagePack array
 * [columns, rows, stats]: columns an array of str (a column name may
 * repeat), rows an array of arrays with one value per column (any
 * MessagePack; UNDEFINED comes as nil), stats a map {"matched", "rows",
 * "scanned", "elapsed_us"} of uints (entries passing WHERE, rows returned,
 * entries read, server time). The library checks that shape (AGATE_EPROTO
 * otherwise). *out is zeroed first, whatever happens.
 *
 * Errors: AGATE_EBAD_ARGUMENT for a query that does not parse or fails to
 * evaluate (agate_errmsg: "BAD_ARGUMENT: query: at N: ...", N the byte
 * offset in the query text), AGATE_EUNKNOWN_REGION, AGATE_ETOO_LARGE when
 * the result does not fit in one reply (add a LIMIT), AGATE_EUNAVAILABLE
 * when the server's time limit ran out (or, on a cluster, after retrying
 * while buckets kept moving). On a client routing over a cluster
 * (agate_is_cluster) the query goes to one member, which gathers every
 * member's part (docs/query.md); UNAVAILABLE is retried until the request
 * timeout. */
int agate_query(agate_client *c, const char *query, const void *params, size_t params_len,
                int timeout_ms, agate_buf *out);
/* How the server would run query, without running it: *out as for
 * agate_query, with one column "plan" and one row per step (docs/query.md,
 * "Plans"). Parse errors and unknown regions fail as for agate_query. */
int agate_query_explain(agate_client *c, const char *query, agate_buf *out);

/* ---- Clusters ----------------------------------------------------------
 * agate_connect_locator connects through locators ("host[port]" or
 * "host:port", comma-separated, Geode style; a bare host means port 10334;
 * the first that answers is used), fetches the cluster map and from then on
 * sends every key operation straight to the member holding the key's
 * primary bucket (single hop, one connection per member, opened on first
 * use). agate_connect does the same when the server it reaches is a
 * locator (its HELLO says role "locator") or a member of a cluster (its
 * HELLO reports a nonzero metadata_version and CLUSTER_MAP returns a map);
 * the locators are then the ones the map names.
 *
 * Retries: a REDIRECT, an UNAVAILABLE, or the member's connection failing
 * (AGATE_EIO, AGATE_ECONNECT, AGATE_ETIMEDOUT) makes the client refresh
 * the map (from the locator, else from any member) and try again: at once
 * after a REDIRECT that a newer map explains, else after a backoff of 50 ms
 * doubling to 1 s, until request_timeout_ms (counted from the call) is used
 * up. Then the last error is returned (agate_errmsg adds how long it
 * retried). A member that lost its primary stays in the map until the
 * locator removes it (member timeout plus a check, ~7.5 s by default), so
 * keep the request timeout above that to ride through a member crash.
 *
 * Writes carry an event id [client_id, sequence] (client_id random per
 * client). A write retried after no answer (timeout, connection lost)
 * reuses its event id, so the member applies it at most once; after
 * REDIRECT or UNAVAILABLE (not applied) it takes a new sequence number.
 * put_all and get_all are split by primary member (only the failed part is
 * redone); size, keys, entries and clear combine every member's share.
 * Scan cursors hold the member's index in the map in their top 16 bits and
 * the member's own cursor below: the scan guarantee holds while the
 * membership is stable. Region definitions, agate_ping, agate_server_info
 * (and agate_server_address) and the calls below go to the locator.
 *
 * The admin calls return MessagePack documents (maps and arrays, described
 * in docs/cluster.md) in *out; free with agate_buf_free. They fail with
 * AGATE_EINVAL ("not connected to a cluster") on a single-server client. */
int agate_connect_locator(agate_client *c, const char *locators);
/* 1 when the client is routing over a cluster, 0 for a single server. */
int agate_is_cluster(const agate_client *c);
int agate_cluster_status(agate_client *c, agate_buf *out);
int agate_member_list(agate_client *c, agate_buf *out);
int agate_member_describe(agate_client *c, const char *name, agate_buf *out);
/* Starts a rebalance (simulate != 0: only plans it); *out is its status. */
int agate_rebalance(agate_client *c, int simulate, agate_buf *out);
int agate_rebalance_status(agate_client *c, agate_buf *out);
/* Stops every server of the cluster (and the locators when
 * include_locators); *stopped gets how many members were told to stop. */
int agate_shutdown_cluster(agate_client *c, int include_locators, uint64_t *stopped);

/* ---- Asynchronous and pipelined requests ------------------------------
 * The *_async calls queue a request and return at once (except when the
 * connection was lost: they reconnect first, which blocks for up to the
 * connect timeout per server; call agate_connect yourself to control when);
 * nothing is sent
 * until agate_flush, agate_wait or agate_process (or a synchronous call).
 * Many requests may be in flight. Each completes by calling cb exactly once
 * (also on connection loss, with AGATE_EIO, and from agate_client_free).
 * If a *_async call itself returns an error, the request was not queued
 * and cb is never called. cb may be NULL: the reply is then discarded.
 * Callbacks run on the calling thread inside agate_wait, agate_process,
 * agate_flush, any synchronous call (replies to earlier async requests are
 * dispatched while it waits) and agate_client_free. A callback may queue
 * new *_async requests and use the non-blocking getters (agate_pending,
 * agate_fd, agate_errmsg, ...); blocking calls made from a callback fail
 * with AGATE_EINVAL, and it must not call agate_client_free. Requests
 * queued by the callbacks of a connection failure fail with AGATE_EIO
 * (no reconnect from there). */

typedef struct agate_reply {
    int status;          /* 0, AGATE_ENOTFOUND, or a negative error */
    const void *value;   /* GET: the value, valid only during the callback */
    size_t vlen;
    const char *errmsg;  /* error text when status < 0, valid during the callback */
} agate_reply;

typedef void (*agate_reply_cb)(agate_client *c, const agate_reply *reply, void *arg);

int agate_put_async(agate_client *c, const char *region, const void *key, size_t klen,
                    const void *value, size_t vlen, agate_reply_cb cb, void *arg);
int agate_get_async(agate_client *c, const char *region, const void *key, size_t klen,
                    agate_reply_cb cb, void *arg);
int agate_remove_async(agate_client *c, const char *region, const void *key, size_t klen,
                       agate_reply_cb cb, void *arg);

/* Number of requests queued or in flight. */
size_t agate_pending(const agate_client *c);
/* Sends queued requests, blocking until all are written or timeout_ms
 * passes (<= 0: no limit). Returns 0, AGATE_ETIMEDOUT or a connection
 * error. Replies arriving meanwhile are read and their callbacks run (a
 * server blocked on sending replies would otherwise never read more). */
int agate_flush(agate_client *c, int timeout_ms);
/* Sends queued requests and runs callbacks until nothing is pending or
 * timeout_ms passes. Returns 0, or AGATE_ETIMEDOUT with requests still
 * pending, or a connection error (pending callbacks then ran with it). */
int agate_wait(agate_client *c, int timeout_ms);

/* For use with your own event loop: the socket (or -1), whether there is
 * queued output to write (then poll for POLLOUT too), and a non-blocking
 * step that writes what it can, reads what is there and runs callbacks.
 * agate_process returns the number still pending, or a negative error.
 * agate_process reads a bounded amount per call (so a server that keeps
 * sending cannot make it block), so poll level-triggered (poll, select,
 * libevent's default, epoll without EPOLLET). The socket changes when the client reconnects (on the
 * first call after a failure): check agate_fd again after errors.
 *
 * In a cluster (agate_is_cluster) agate_fd is an epoll descriptor owned by
 * the client, the same for its whole life: it holds every member
 * connection (for reading, and for writing while one has output queued)
 * and a timer for the next retry, and becomes readable whenever
 * agate_process has work. Poll it for reading only (agate_wants_write is
 * then informational). agate_process never fails there (errors reach the
 * callbacks); when a retry is due it may block to refresh the map or
 * connect to a member (bounded by the timeouts). An async request there is
 * retried like a synchronous one (no more retries once request_timeout_ms,
 * counted from the request, is used up) and its callback runs once, with
 * the final outcome; the callback's client is the one you queued the
 * request on. As on a single server, a request in flight on a connection
 * that stays open but silent waits for its reply. */
int agate_fd(const agate_client *c);
int agate_wants_write(const agate_client *c);
int agate_process(agate_client *c);

#ifdef __cplusplus
}
#endif
#endif
