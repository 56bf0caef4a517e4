/* server.h - one member process: its configuration, regions and threads. */
#ifndef AGATE_SERVER_SERVER_H
#define AGATE_SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "server/config.h"
#include "server/qsbr.h"
#include "server/registry.h"

struct worker;
struct event_base;
struct evconnlistener;
struct member_agent;
struct locator;

/* A peer member's address, as the cluster map gives it. */
typedef struct peer_addr {
    uint32_t id;
    char host[72];
    uint16_t port;
} peer_addr;

typedef struct server {
    server_config cfg;
    uint32_t member_id;
    qsbr_t *qsbr;
    registry_t *registry;
    struct worker *workers;
    int nworkers;
    struct qpool *qpool;     /* query scans (server/query_pool.h) */
    unsigned next_worker;
    struct event_base *base; /* the listener's loop, on the main thread */
    struct evconnlistener *listener;
    int port;                /* the port actually bound */
    time_t started;
    _Atomic int shutting_down;

    /* Clusters (server/cluster.h). */
    bool clustered;                   /* a server member of a cluster (--locators) */
    bool is_locator;                  /* --role=locator */
    struct member_agent *agent;       /* the member's control plane (main thread) */
    struct locator *locator;          /* the locator's state (worker 0's thread) */
    _Atomic int64_t lease_until_ms;   /* CLOCK_MONOTONIC ms; primaries serve before it */
    _Atomic uint64_t metadata_version;
    pthread_mutex_t peers_lock;       /* guards peers, npeers */
    peer_addr *peers;                 /* the view's members (other than this one) */
    size_t npeers;
    _Atomic uint64_t peers_version;   /* bumped when peers changes */
    uint8_t *map_blob;                /* the cluster map as last applied (peers_lock) */
    size_t map_len;
} server_t;

#endif
