/* router.h - cluster routing inside libagate (internal).
 *
 * A client connected to a cluster (agate_connect_locator, or agate_connect
 * reaching a locator or a member of a cluster) keeps the single-server
 * machinery for every connection and adds a router on top:
 *
 *   admin    a plain child client connected to the locator(s): the cluster
 *            map, region and cluster administration, ping and server info;
 *   map      the decoded cluster map (common/cmap.h), refreshed on events
 *            (a REDIRECT, an UNAVAILABLE, a member connection failing);
 *   members  one plain child client per member, created and connected the
 *            first time a request goes to that member.
 *
 * Every public call checks c->router near its top and hands over to the
 * router_* functions below, which pick the member child (bucket -> primary)
 * and call the ordinary single-server code on it.
 *
 * Files: router.c (lifecycle, map, routing, retry policy), router_ops.c
 * (synchronous calls), router_async.c (async calls and the I/O drivers),
 * cluster.c (the public cluster API). */
#ifndef AGATE_CLIENT_ROUTER_H
#define AGATE_CLIENT_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "client/client.h"
#include "common/cmap.h"

/* Retry backoff after UNAVAILABLE or a member failure (docs/cluster.md). */
#define ROUTER_BACKOFF_MIN_MS 50
#define ROUTER_BACKOFF_MAX_MS 1000
/* A map refresh waits this long at most for the locator before asking the
 * members (a hung locator keeps its connection open), and after such a
 * failure asks the members first for ROUTER_LOCATOR_SKIP_MS. */
#define ROUTER_LOCATOR_WAIT_MS 1000
#define ROUTER_LOCATOR_SKIP_MS 5000

/* Where a connection is registered in the router's epoll set (agate_fd). */
typedef struct router_reg {
    int fd;          /* registered descriptor, -1: none */
    uint64_t gen;    /* the connection's generation when registered */
    uint32_t events; /* registered interest */
} router_reg;

/* A member of the cluster as the router knows it. Entries are only ever
 * appended (their index is stable); a member that left keeps its entry. */
typedef struct router_member {
    uint32_t id;
    char addr[CMAP_HOST_MAX + 12]; /* "host:port" or "[v6-host]:port" */
    agate_client *child;          /* NULL until first used */
    router_reg reg;
} router_member;

typedef struct router_req router_req; /* an async request (router_async.c) */

typedef struct client_router {
    agate_client *admin;    /* the locator connection (plain child) */
    router_reg admin_reg;
    cmap_t *map;            /* never NULL once routing */
    router_member *members;
    size_t nmembers, capmembers;

    router_req *retry;      /* async requests waiting to be (re)issued, */
    router_req *retry_tail; /* in the order they were scheduled */
    int64_t retry_min;      /* earliest due time on the list, -1: empty */
    size_t live;            /* async requests whose callback has not run */
    int map_stale;          /* refresh the map before the next retry */
    int64_t locator_skip_until; /* members first until then (a locator failed) */
    int closing;            /* router_free in progress */

    int epfd;               /* agate_fd's epoll set, -1 until asked for */
    int tfd;                /* timerfd in it: the next retry is due */
} client_router;

/* Sync key operations: what router_keyed needs to call the member. */
typedef struct router_keyop {
    int op;             /* OP_PUT, OP_GET, OP_GET_ENTRY, OP_REMOVE, OP_CONTAINS_KEY */
    const char *region;
    const void *key;
    size_t klen;
    const void *value;  /* OP_PUT */
    size_t vlen;
    agate_buf *out;     /* OP_GET, OP_GET_ENTRY */
    agate_version *ver; /* OP_GET_ENTRY, may be NULL */
} router_keyop;

/* Retry state of one call: deadline (the request timeout) and backoff. */
typedef struct router_retry {
    int64_t start;
    int64_t deadline;   /* -1: no limit */
    int backoff_ms;
    int redirects;      /* REDIRECTs answered by a newer map so far */
    int answered_rc;    /* the last error a member answered with, 0: none */
    char answered_msg[CLIENT_ERRMSG_MAX];
} router_retry;

/* Internal result of routing without blocking: the route needs a map
 * refresh or a connection, which only a blocking context may do. */
#define ROUTER_EWOULDBLOCK (-1000)

/* ---- Lifecycle and map (router.c) ------------------------------------ */

/* After agate_connect succeeded on c: switches c to routing when the server
 * is a locator (HELLO role "locator"; its connection becomes the admin
 * connection) or a member (nonzero metadata_version and CLUSTER_MAP gives a
 * map). Returns 0 (also when c stays a single-server client) or an error
 * with c disconnected. */
int router_detect(agate_client *c);
/* agate_connect_locator: locators is "host[port]" or "host:port", comma
 * separated. */
int router_connect_locators(agate_client *c, const char *locators);
/* Leaves routing: frees the children (their outstanding requests fail with
 * AGATE_EIO, callbacks run), completes deferred async requests with
 * AGATE_EIO, frees the map. c->router is NULL afterwards. */
void router_free(agate_client *c);

/* Fetches the cluster map from the locator or, failing that, from any
 * member, spending at most timeout_ms (<= 0: the request timeout) per
 * attempt. A map older than the one held is ignored. 0 or an error. */
int router_refresh(agate_client *c, int timeout_ms);
/* The member holding the primary of key's bucket. May refresh the map once
 * when the region is unknown (not when !may_block: ROUTER_EWOULDBLOCK).
 * Returns 0, AGATE_EUNKNOWN_REGION, AGATE_EUNAVAILABLE (no primary). */
int router_route(agate_client *c, const char *region, const void *key, size_t klen,
                 bool may_block, size_t *member);
/* Makes sure region is in the map (refreshing once if not). */
int router_region_known(agate_client *c, const char *region);
/* The child of members[i], created and connected if needed. When
 * !may_block and that would block: ROUTER_EWOULDBLOCK. */
int router_child(agate_client *c, size_t i, bool may_block, agate_client **out);
/* Index of the router member entry for map member id (added if missing),
 * or -1 if out of memory. */
long router_member_of(agate_client *c, uint32_t id);

/* A member's answer rc as the router sees it: UNKNOWN_REGION for a region
 * the map has means the member has not applied that map yet, so it is
 * AGATE_EUNAVAILABLE (retried); anything else is rc. */
int router_member_rc(const agate_client *c, const char *region, int rc);
/* agate_server_address of a routing client: the locator's when connected,
 * else a connected member's, else NULL. */
const char *router_server_address(const agate_client *c);
/* Copies child's errmsg into c when rc < 0; returns rc. */
int router_pass(agate_client *c, const agate_client *child, int rc);
/* Errors after which a key operation is retried: REDIRECT, UNAVAILABLE,
 * and a member connection failing (EIO, ECONNECT, ETIMEDOUT). */
bool router_retryable(int rc);
/* The locator (admin) connection into *out, or an error (c->errmsg set):
 * called from a callback (what names the call), or no locator known. */
int router_admin(agate_client *c, const char *what, agate_client **out);
/* Errors after which a write may have been applied (no answer came). */
bool router_answerless(int rc);
/* Reserves n event sequence numbers; returns the first. */
uint64_t router_next_seq(agate_client *c, uint64_t n);

void router_retry_init(const agate_client *c, router_retry *rt);
/* Milliseconds left for one attempt, for a child's request timeout (the
 * client's request timeout when unlimited). */
int router_retry_budget(const agate_client *c, const router_retry *rt);
/* After a retryable failure rc of an attempt: refreshes the map, and waits
 * the backoff (not after a REDIRECT that a newer map explains). Returns 0 to
 * try again, or rc (with c->errmsg saying so) when the request timeout is
 * used up. */
int router_retry_next(agate_client *c, router_retry *rt, int rc);

/* ---- Synchronous calls (router_ops.c) -------------------------------- */

int router_keyed(agate_client *c, const router_keyop *k);
int router_put_all(agate_client *c, const char *region, const agate_kv *kvs, size_t n);
int router_get_all(agate_client *c, const char *region, const agate_key *keys, size_t n,
                   agate_buf *values);
int router_size(agate_client *c, const char *region, uint64_t *count);
int router_clear(agate_client *c, const char *region, uint64_t *removed);
int router_scan(agate_client *c, bool values, const char *region, uint64_t cursor,
                uint32_t limit, agate_page *page);
int router_ping(agate_client *c);
int router_server_info(agate_client *c, agate_buf *out);
int router_region_create(agate_client *c, const agate_region_config *cfg);
int router_region_destroy(agate_client *c, const char *name);
int router_region_describe(agate_client *c, const char *name, agate_region_info **out);
int router_region_list(agate_client *c, agate_region_info **out, size_t *n);

/* ---- Asynchronous calls and I/O (router_async.c) --------------------- */

int router_async_submit(agate_client *c, int op, const char *region, const void *key,
                        size_t klen, const void *value, size_t vlen, agate_reply_cb cb,
                        void *arg);
size_t router_pending(const agate_client *c);
int router_fd(const agate_client *c);
int router_wants_write(const agate_client *c);
int router_flush(agate_client *c, int timeout_ms);
int router_wait(agate_client *c, int timeout_ms);
int router_process(agate_client *c);
/* Completes every deferred async request with err (router_free). */
void router_async_fail_all(agate_client *c, int err, const char *msg);
/* Brings the epoll set up to date with the children's sockets. */
void router_epoll_sync(client_router *rt);
void router_epoll_close(client_router *rt);

#endif
