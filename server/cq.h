/* cq.h - continuous queries on a member (docs/query.md "Continuous
 * queries", docs/protocol.md "Continuous queries").
 *
 * A CQ belongs to the connection that opened it (its subscription
 * connection) and so to that connection's worker thread: the worker pulls
 * the events of the region's journal (region/journal.h) after the CQ's
 * per-bucket cursor, for the buckets this member serves (is primary for),
 * judges each event's old and new value against the predicate outside the
 * bucket's lock, and appends push frames to the connection. Writers never
 * wait: they append to the journal and, coalesced, wake the workers that
 * hold CQs. Other threads (the member agent, the memory reclaimer) only
 * flag a CQ under the hub's lock and wake its worker.
 *
 * Flow control: a worker stops producing for a connection while more than
 * CQ_OUT_PAUSE bytes wait unsent on it; a CQ whose unread events were
 * evicted from the journal meanwhile is closed with PUSH_CQ_CLOSED (the
 * client re-registers with replay and learns of the gap). */
#ifndef AGATE_SERVER_CQ_H
#define AGATE_SERVER_CQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "region/qast.h"
#include "region/region.h"
#include "server/conn.h"
#include "server/worker.h"

#define CQ_NAME_MAX 256
#define CQ_MAX_PER_CONN 256
#define CQ_MAX_PER_MEMBER 4096
#define CQ_MAX_PARAMS 256
#define CQ_OUT_PAUSE (1u << 20)       /* stop producing above this much unsent output */
#define CQ_PROGRESS_MS 200

/* What CQ_OPEN asks for, parsed and checked by the handler. The query and
 * the copies of params are taken over by cq_open (on success or not). */
typedef struct cq_spec {
    const uint8_t *name;
    uint32_t name_len;
    const uint8_t *text;    /* the query text (copied) */
    uint32_t tlen;
    query_t *q;             /* parsed: SELECT * FROM /region [alias] [WHERE ...] */
    uint8_t *params_raw;    /* malloc'd encoded params array, or NULL */
    size_t params_len;
    bool initial, replay;
} cq_spec;

/* Opens a CQ on x's connection for region r (found by the handler: alive
 * while the worker is online) and writes the CQ_OPEN reply [cq_id, heads,
 * initial] itself. Takes spec->q and spec->params_raw in every case.
 * Returns 0, or an error status (ST_*) with msg filled and nothing
 * registered or replied. */
struct req_ctx;
int cq_open(struct req_ctx *x, region_t *r, cq_spec *spec, char *msg, size_t msglen);
/* Closes CQ id of connection c: 0, or -ENOENT when c has no such CQ. */
int cq_close(conn_t *c, uint64_t id);
/* Writes the CQ_LIST result (an array of maps) with the packer; returns
 * -E2BIG when it would exceed max_bytes (nothing useful written then). */
int cq_list(struct req_ctx *x, size_t max_bytes);

/* The connection closed (server/conn.c): its CQs end, silently. */
void cq_conn_closed(conn_t *c);

/* Member agent (main thread): the map made this member primary of bucket
 * of r (it was not): every CQ on r replays the bucket (PUSH_CQ_REPLAY). */
void cq_primary_gained(region_t *r, uint32_t bucket);

/* Worker hooks (server/worker.c): the worker starts draining (every CQ on
 * it is closed with SHUTTING_DOWN), and the worker's loop ended (its
 * connections are closed: free its CQ machinery). */
void cq_worker_draining(worker_t *w);
void cq_worker_stop(worker_t *w);

#endif
