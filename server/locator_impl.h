/* locator_impl.h - the locator's state, shared by its modules (locator.c:
 * membership, regions, requests; locator_rebalance.c: rebalance). Not a
 * public face: everything here runs on the locator's worker thread. */
#ifndef AGATE_SERVER_LOCATOR_IMPL_H
#define AGATE_SERVER_LOCATOR_IMPL_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

#include "common/cmap.h"
#include "server/conn.h"
#include "server/link.h"
#include "server/server.h"
#include "server/worker.h"

#define LOC_TICK_MS 200
#define LOC_MAX_MEMBERS 64
#define LOC_LEAVE_MAX_MS 25000
#define LOC_HANDOFF_MAX_MS 5000

enum { MS_UP, MS_SUSPECT };

typedef struct lmember {
    uint32_t id;
    char name[CMAP_NAME_MAX + 1];
    char host[CMAP_HOST_MAX + 1];
    uint16_t port;
    uint64_t pid;
    char dir[256];
    conn_t *conn;
    int64_t last_hb_ms;
    int status;
    uint64_t joined_view;
    uint8_t *stats; /* the last heartbeat's region stats (MessagePack array) */
    size_t stats_len;
    link_t *check;
    /* a LEAVE waiting for its primaries to move */
    bool leaving;
    conn_t *leave_conn;
    uint64_t leave_req;
    int64_t leave_deadline;
} lmember;

/* A primary handoff in progress. */
typedef struct handoff_op {
    char region[CMAP_NAME_MAX + 1];
    uint32_t bucket, from, to;
    int64_t deadline;
} handoff_op;

struct rb_run;

typedef struct locator {
    server_t *srv;
    worker_t *w;
    cmap_t *map;
    lmember members[LOC_MAX_MEMBERS];
    size_t nmembers;
    conn_t *watchers[64];
    size_t nwatchers;
    handoff_op handoffs[256];
    size_t nhandoffs;
    int64_t recover_at_ms; /* pending redundancy recovery (0: none) */
    int64_t adopt_until_ms; /* after a restart: map-less JOINs wait until then */
    struct event *tick;
    int64_t last_tick_ms; /* to tell the locator's own pauses from members' silence */
    struct rb_run *rb; /* the last rebalance (locator_rebalance.c), NULL: none */
    char regions_path[PATH_MAX + 32];
} locator;


/* The map changed: a new version, pushed to every member and watcher. */
void locator_publish(locator *lc);
/* A bucket of the map, or NULL. */
cmap_bucket *locator_bucket(locator *lc, const char *region, uint32_t b);
/* A member of the view, or NULL. */
lmember *locator_member(locator *lc, uint32_t id);
/* Saves the region and index definitions (locator.c). */
void locator_save_definitions(locator *lc);
/* locator_index.c: INDEX_CREATE, INDEX_DESTROY, INDEX_LIST at the locator,
 * and the index lines of the definitions file (load: true when line was
 * an index line, used or reported). */
struct req_ctx;
void loc_index_create(struct req_ctx *x);
void loc_index_destroy(struct req_ctx *x);
void loc_index_list(struct req_ctx *x);
void locator_index_save(FILE *f, const cmap_t *m);
bool locator_index_load(cmap_t *m, const char *line);
/* Whether a primary handoff of the bucket is in progress. */
bool locator_handoff_pending(locator *lc, const char *region, uint32_t bucket);
/* Starts handing the bucket's primary from member `from` to its ready
 * copy on `to`: from fences writes, drains and answers HANDOFF_DONE, then
 * the map names `to` primary (new term). 0, or -EBUSY (one is already in
 * progress for the bucket, or too many are), -ENOENT (no such member). */
int locator_handoff_start(locator *lc, const char *region, uint32_t bucket, uint32_t from,
                          uint32_t to);

#endif
