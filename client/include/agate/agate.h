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
    AGATE_ECANCELLED = -20,     /* a query was cancelled (agate_interrupt, agate_cursor_close) */
    AGATE_EINDEX_EXISTS = -21,  /* agate_index_create: the region has an index of that name */
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

/* ---- Indexes (docs/query.md, "Indexes") --------------------------------
 * An index on a region's values speeds up queries whose WHERE has
 * `path = c`, `path IN (...)` or a range on path. On a cluster these calls
 * go to the locator: definitions are cluster-wide. */

/* Creates index name on region over expression, a path into the value as
 * written in a WHERE without an alias ("status", "customer.city",
 * "items[0]"); type "range" (=, IN and ranges; the default when NULL) or
 * "hash" (= and IN only). The index is built over the existing entries
 * before this returns. AGATE_EINDEX_EXISTS when the region has an index of
 * that name, AGATE_EUNKNOWN_REGION, AGATE_EBAD_ARGUMENT for a bad name,
 * type or expression (agate_errmsg says where). */
int agate_index_create(agate_client *c, const char *region, const char *name,
                       const char *expression, const char *type);
/* AGATE_ENOTFOUND when the region has no such index. */
int agate_index_destroy(agate_client *c, const char *region, const char *name);
/* The indexes of region (NULL: of every region) as one MessagePack array
 * of maps {name, region, expression, type, entries, bytes, valid} (on a
 * cluster, from the locator: entries and bytes are then absent). Free out
 * with agate_buf_free. */
int agate_index_list(agate_client *c, const char *region, agate_buf *out);

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
 * [columns, rows, stats] with every row of the result (agate_query reads
 * the server's pages one after another and joins them; to hold one page
 * at a time, use agate_query_open below): columns an array of str (a column name may
 * repeat), rows an array of arrays with one value per column (any
 * MessagePack; UNDEFINED comes as nil), stats a map {"matched", "rows",
 * "scanned", "elapsed_us"} of uints (entries passing WHERE, rows returned,
 * entries read, server time). The library checks that shape (AGATE_EPROTO
 * otherwise). *out is zeroed first, whatever happens.
 *
 * Errors: AGATE_EBAD_ARGUMENT for a query that does not parse or fails to
 * evaluate (agate_errmsg: "BAD_ARGUMENT: query: at N: ...", N the byte
 * offset in the query text), AGATE_EUNKNOWN_REGION, AGATE_ETOO_LARGE when
 * one row is over the reply limit, AGATE_ECANCELLED after agate_interrupt
 * (the server stops working on it), AGATE_EUNAVAILABLE
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

/* ---- Query cursors (docs/query.md "Paging") ----------------------------
 * The server sends a query's result in pages. agate_query_open runs the
 * query and gets the first page; agate_cursor_next hands out the pages in
 * order, each as its own [columns, rows, stats] array (stats as above,
 * with "matched" and "scanned" counted so far and "cursor", the server's
 * cursor id, 0 on the last page). Only the page asked for is held, by the
 * server and by the client: a result of any size can be read this way. A
 * query without ORDER BY, GROUP BY, aggregates or DISTINCT runs as it is
 * read, a few buckets per page; the others run whole on the first page
 * and are then sent in pages.
 *
 * The server cursor lives on the server (in a cluster, the member) that
 * answered agate_query_open, for as long as pages are read: it closes
 * after the last page, on agate_cursor_close, with the connection, or
 * after 60 s without a request (then agate_cursor_next fails with
 * AGATE_EBAD_ARGUMENT). A page a cluster cannot make now (buckets moving)
 * is retried until the request timeout; if the member holding the cursor
 * is lost the query fails with AGATE_EIO and has to be run again. */
typedef struct agate_cursor agate_cursor;

typedef struct agate_query_options {
    int timeout_ms;     /* the server's time limit for each page: < 0 its default
                           (30 s), 0 none */
    uint32_t page_size; /* rows per page: 0 the server's default (1000), at most
                           100000; pages also stop at the reply size limit */
} agate_query_options;

/* Runs query (as agate_query; opts may be NULL) and returns a cursor in
 * *out, holding the first page. Errors as agate_query; *out is NULL then. */
int agate_query_open(agate_client *c, const char *query, const void *params, size_t params_len,
                     const agate_query_options *opts, agate_cursor **out);
/* The next page into *page (free with agate_buf_free): returns 1 with a
 * page, 0 when there are no more (page zeroed), or an error (the cursor
 * stays usable after AGATE_EUNAVAILABLE and AGATE_ETIMEDOUT: call again). */
int agate_cursor_next(agate_cursor *cur, agate_buf *page);
/* The server's cursor id (0 once the last page was sent). */
uint64_t agate_cursor_id(const agate_cursor *cur);
/* Closes the server's cursor if it is still open and frees cur (NULL is
 * allowed). Returns 0 or the error of the QUERY_CLOSE request. */
int agate_cursor_close(agate_cursor *cur);

/* Makes the blocking call in progress on c (or, if none is, the next one)
 * return AGATE_ECANCELLED at once; a query it was waiting for is cancelled
 * on the server (QUERY_CANCEL). Safe to call from a signal handler or
 * another thread: it only sets a flag. */
void agate_interrupt(agate_client *c);

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

/* ---- Continuous queries (docs/query.md, "Continuous queries") ----------
 * A continuous query (CQ) is "SELECT * FROM /region [alias] WHERE expr" on
 * one region (no projection, DISTINCT, GROUP BY, ORDER BY, LIMIT or
 * aggregates; $1, $2, ... parameters allowed). Every change of an entry is
 * judged with its old and new value: entering the result is CREATE,
 * changing inside it UPDATE, leaving it DESTROY (value NULL); a clear of
 * the region gives one CLEAR per bucket (key and value NULL: every entry
 * of that bucket you held left). Events of one key arrive in the order of
 * its writes, each at most once.
 *
 * A CQ owns its connections: one subscription connection per member (on a
 * stand-alone server, one), plus one to a locator watching the cluster
 * map; it never uses the client's own connections after agate_cq_open.
 * It registers itself on members that join, re-registers when a
 * connection to a live member breaks, and lets a member that died go: the
 * new primaries of its buckets replay their journals, and duplicates are
 * dropped by sequence number. When a replay cannot reach back far enough
 * (the member's journal evicted events this CQ had not seen), a GAP event
 * names the bucket: events of that bucket may have been lost. An event for
 * a write may be delivered although the write failed for its caller (its
 * primary died before the copies acknowledged it).
 *
 * Events are delivered to the callback on the thread that calls
 * agate_cq_open (initial results only), agate_cq_process or agate_cq_wait.
 * A CQ is not thread-safe. The callback must not call agate_cq_close,
 * agate_cq_process or agate_cq_wait on the same CQ (they return
 * AGATE_EINVAL); agate_cq_break is allowed. */

enum agate_cq_op {
    AGATE_CQ_CREATE = 1,  /* the entry entered the result */
    AGATE_CQ_UPDATE = 2,  /* changed and still matches */
    AGATE_CQ_DESTROY = 3, /* left the result (removed, or no longer matches) */
    AGATE_CQ_CLEAR = 4,   /* the bucket was cleared (key, value NULL) */
    AGATE_CQ_INITIAL = 5, /* a matching entry at registration (AGATE_CQ_INITIAL_RESULTS) */
    AGATE_CQ_GAP = 6,     /* events of bucket may have been lost before seq */
    AGATE_CQ_ERROR = 7,   /* the CQ ended (errmsg says why; e.g. region destroyed) */
};

/* agate_cq_open flags */
#define AGATE_CQ_INITIAL_RESULTS 1 /* deliver the matching entries first */

typedef struct agate_cq agate_cq;

/* One event; every pointer is valid only during the callback. */
typedef struct agate_cq_event {
    int op;              /* enum agate_cq_op */
    const char *name;    /* the CQ's name */
    const void *key;     /* NULL for CLEAR, GAP, ERROR */
    size_t klen;
    int key_is_str;      /* the key was written as a str (else bin) */
    const void *value;   /* the new value (one MessagePack object); NULL for
                            DESTROY, CLEAR, GAP, ERROR */
    size_t vlen;
    uint32_t bucket;     /* 0 for INITIAL and ERROR */
    uint64_t seq;        /* the write's sequence in its bucket; GAP: the seq
                            after which events are complete again */
    const char *errmsg;  /* ERROR only */
} agate_cq_event;

typedef void (*agate_cq_cb)(agate_cq *cq, const agate_cq_event *ev, void *arg);

/* Registers a CQ on every member; name (1..256 bytes) is a label shown by
 * agate_cq_list. params as for agate_query. With
 * AGATE_CQ_INITIAL_RESULTS, cb receives every matching entry as an
 * AGATE_CQ_INITIAL event before this returns; events after those reflect
 * changes made after the snapshot, with nothing missed in between. On a
 * cluster the open retries (as a key operation does) until every bucket of
 * the region is served by exactly one member. Blocks for at most about
 * the request timeout. On success *out is the new CQ, which keeps copies
 * of c's timeouts and client name and nothing else of c (c may be freed
 * first); close it with agate_cq_close. Errors are reported on c:
 * AGATE_EBAD_ARGUMENT (the query does not parse or is not a plain SELECT *
 * ... WHERE; agate_errmsg has the position), AGATE_EUNKNOWN_REGION,
 * AGATE_ETOO_LARGE (initial results above the reply limit: open without
 * them or narrow the query), AGATE_EINVAL, connection errors. */
int agate_cq_open(agate_client *c, const char *name, const char *query, const void *params,
                  size_t params_len, int flags, agate_cq_cb cb, void *arg, agate_cq **out);

/* A descriptor that becomes readable when agate_cq_process has work (an
 * epoll set of the CQ's connections and a retry timer), the same for the
 * CQ's life. Poll it for reading, level-triggered. */
int agate_cq_fd(const agate_cq *cq);
/* A non-blocking step: reads what arrived and runs the callbacks. When a
 * connection must be re-established it blocks for that (at most the
 * connect and request timeouts). Returns the number of events delivered,
 * or a negative error once the CQ has ended (after its AGATE_CQ_ERROR
 * event: region destroyed, out of memory); member failures are not errors. */
int agate_cq_process(agate_cq *cq);
/* Runs agate_cq_process as events arrive until timeout_ms passes (< 0: no
 * limit), agate_cq_break is called from a callback, or a signal interrupts
 * the wait. Returns the number of events delivered, or a negative error as
 * agate_cq_process. */
int agate_cq_wait(agate_cq *cq, int timeout_ms);
/* From a callback: makes the running agate_cq_wait return after it. */
void agate_cq_break(agate_cq *cq);
/* Why the CQ ended, or "" while it runs. */
const char *agate_cq_errmsg(const agate_cq *cq);
/* Counters of a CQ since it was opened. */
typedef struct agate_cq_stats {
    uint64_t events;           /* delivered to the callback (INITIAL included) */
    uint64_t duplicates;       /* dropped as already delivered (replays) */
    uint64_t gaps;             /* GAP events */
    uint64_t replays;          /* REPLAY pushes received (a member took over a bucket) */
    uint64_t registrations;    /* CQ_OPENs accepted, the first ones included */
    uint64_t reconnects;       /* subscriptions whose connection broke */
    uint64_t closed_by_member; /* CQ_CLOSED pushes (member stopping, CQ too slow) */
    uint32_t members;          /* subscriptions live now */
} agate_cq_stats;
void agate_cq_stats_get(const agate_cq *cq, agate_cq_stats *out);
/* Closes the CQ on every member (CQ_CLOSE, then its connections) and frees
 * it. NULL is allowed. Returns 0. */
int agate_cq_close(agate_cq *cq);

/* Every CQ registered on the server, or on every member of the cluster
 * (members that cannot be reached are skipped), into *out (free with
 * agate_buf_free): one MessagePack array of maps {"id", "name", "region",
 * "query", "client", "peer", "events", "queued", "buckets"} (docs/protocol.md,
 * CQ_LIST). A CQ registered on several members appears once per member. */
int agate_cq_list(agate_client *c, agate_buf *out);

#ifdef __cplusplus
}
#endif
#endif
