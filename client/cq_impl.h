/* cq_impl.h - libagate's continuous queries, shared by their sources
 * (internal). cq.c: the public calls, opening and closing; cq_sub.c: the
 * subscriptions (one connection per member) and the pushes arriving on
 * them; cq_map.c: following the cluster map (the locator's WATCH_MAP, or
 * polling members). cq_cursor.h: the per-bucket dedup and gap logic. */
#ifndef AGATE_CLIENT_CQ_IMPL_H
#define AGATE_CLIENT_CQ_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "client/client.h"
#include "client/cq_cursor.h"
#include "common/cmap.h"

#define CQ_BACKOFF_MIN_MS 50
#define CQ_BACKOFF_MAX_MS 1000
/* Without a locator: how often the map is fetched from a member, and how
 * often the locators are tried again. */
#define CQ_MAP_POLL_MS 1000
/* CQ_CLOSE at agate_cq_close waits at most this long per member: the
 * connection's close ends the CQ there anyway. */
#define CQ_CLOSE_WAIT_MS 1000

/* A push waiting to be handled. */
typedef struct cq_msg {
    struct cq_msg *next;
    struct cq_sub *sub;
    uint64_t gen; /* the connection's generation when it was read */
    uint32_t len;
    uint8_t body[];
} cq_msg;

typedef struct cq_sub {
    agate_cq *cq;
    uint32_t member_id;  /* 0: stand-alone server, or the locator watcher */
    char addr[CMAP_HOST_MAX + 12];
    agate_client *conn;  /* NULL until first connected */
    uint64_t cq_id;      /* registered on conn; 0: not (yet, or any more) */
    uint64_t reg_gen;    /* conn->gen when registered */
    int64_t retry_at;    /* when to register (again); -1: nothing due */
    int backoff_ms;
    bool gone;           /* left the map: freed once the queue is empty */
    bool lost_push;      /* a push could not be queued: re-register */
    int reg_fd;          /* descriptor in the CQ's epoll set, -1: none */
    uint64_t ep_gen;     /* conn->gen when reg_fd was added */
} cq_sub;

struct agate_cq {
    char *name, *query, *region;
    uint8_t *params;
    size_t params_len;
    int flags;
    agate_cq_cb cb;
    void *arg;
    agate_options opts;  /* for the CQ's connections */
    char *client_name;

    cq_cursor cur;
    cq_sub **subs;
    size_t nsubs, capsubs;

    bool cluster;
    cmap_t *map;         /* cluster: the newest map seen */
    cq_sub *loc;         /* cluster: the locator watcher (its conn's servers: the locators) */
    bool watching;       /* WATCH_MAP accepted on loc->conn's current connection */
    int64_t loc_retry_at, map_poll_at;

    cq_msg *qhead, *qtail;
    int epfd, tfd;
    int in_cb;
    bool brk;
    int fail_rc;         /* the CQ ended: agate_cq_process returns it */
    agate_cq_stats stats;
    char errmsg[CLIENT_ERRMSG_MAX];
};

/* CQ_OPEN's results. */
typedef struct open_result {
    uint64_t cq_id;
    uint32_t nheads;
    uint64_t (*heads)[2]; /* [bucket, seq] */
    agate_buf initial;    /* the [[key, value], ...] array */
} open_result;

/* ---- cq.c ---------------------------------------------------------------- */

/* Runs the callback with ev (its name filled in), counting events. */
void client_cq_deliver(agate_cq *cq, agate_cq_event *ev);
/* The CQ ended: one ERROR event with the message, then agate_cq_process
 * returns rc. Returns rc (or the first failure's). */
int client_cq_fail(agate_cq *cq, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- cq_sub.c: subscriptions ------------------------------------------- */

/* client_push_fn of every CQ connection (arg: its cq_sub): queues a copy. */
void client_cq_on_push(agate_client *conn, const msg_push *p, const uint8_t *body, uint32_t len,
                       void *arg);
/* A subscription to addr (not connected, not in cq->subs), or NULL. */
cq_sub *client_cq_sub_new(agate_cq *cq, uint32_t member_id, const char *addr);
/* The same, appended to cq->subs. NULL if out of memory. */
cq_sub *client_cq_sub_add(agate_cq *cq, uint32_t member_id, const char *addr);
/* Closes s's connection (ending its CQ on the member), drops its queued
 * pushes and frees it. NULL is allowed. */
void client_cq_sub_free(agate_cq *cq, cq_sub *s);
/* CQ_OPEN on s's connection (connected first), waiting for the reply into
 * *o (free with client_cq_open_result_free, also on failure). On success
 * the subscription is live. Returns 0 or the AGATE_E* error (s->conn's
 * errmsg says why). */
int client_cq_sub_register(agate_cq *cq, cq_sub *s, bool replay, bool initial, open_result *o);
void client_cq_open_result_free(open_result *o);
/* Handles every queued push in arrival order (callbacks run). */
void client_cq_drain_queue(agate_cq *cq);
/* Re-registers (with replay) the subscriptions that broke or are due. */
void client_cq_sub_work(agate_cq *cq, int64_t now);
/* Frees the subscriptions whose member left the map. */
void client_cq_free_gone(agate_cq *cq);

/* ---- cq_map.c: the cluster map ----------------------------------------- */

/* "host:port" of a map member ("[v6]:port"); false when it does not fit. */
bool client_cq_member_addr(const cmap_member *m, char *out, size_t cap);
/* A map (taken): subscriptions for new members, departed ones marked gone;
 * a map without the region ends the CQ. Older maps are ignored. */
void client_cq_apply_map(agate_cq *cq, cmap_t *m);
/* Keeps the map watch alive: re-sends WATCH_MAP to a locator every second
 * while none answers, and meanwhile fetches the map from a member. */
void client_cq_map_work(agate_cq *cq, int64_t now);
/* Starts the map watch of a cluster CQ: the map's locators, else the ones
 * c was given. 0 or AGATE_ENOMEM. */
int client_cq_loc_start(agate_cq *cq, agate_client *c);

#endif
