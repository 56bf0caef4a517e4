/* server.h - one member process: its configuration, regions and threads. */
#ifndef AGATE_SERVER_SERVER_H
#define AGATE_SERVER_SERVER_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "server/config.h"
#include "server/qsbr.h"
#include "server/registry.h"

struct worker;
struct event_base;
struct evconnlistener;

typedef struct server {
    server_config cfg;
    uint32_t member_id;
    qsbr_t *qsbr;
    registry_t *registry;
    struct worker *workers;
    int nworkers;
    unsigned next_worker;
    struct event_base *base; /* the listener's loop, on the main thread */
    struct evconnlistener *listener;
    int port;                /* the port actually bound */
    time_t started;
    _Atomic int shutting_down;
} server_t;

#endif
