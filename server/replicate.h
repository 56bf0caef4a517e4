/* replicate.h - writes at a primary: apply here, send to every copy of the
 * bucket, answer the client when all copies the current view lists have
 * acknowledged (docs/cluster.md, "Replication").
 *
 * Per worker thread: each worker keeps its own links to the peers, so a
 * client connection, its waits and the links it uses all live on one
 * thread and need no lock. Unacknowledged messages are kept and resent
 * after a reconnect; copies apply them only when newer, so resends and
 * reordering between workers are harmless. */
#ifndef AGATE_SERVER_REPLICATE_H
#define AGATE_SERVER_REPLICATE_H

#include <stddef.h>

#include "region/region.h"
#include "server/request.h"

struct worker;
typedef struct repl repl_t;

repl_t *repl_new(struct worker *w);
/* Drops every link and wait (owed replies are not sent). */
void repl_free(repl_t *rp);
/* The view changed: stop waiting for members that left it. */
void repl_view_changed(struct worker *w);

/* How a completed write is answered. */
enum repl_reply {
    REPL_REPLY_STATUS, /* OK (or NOT_FOUND for a remove of an absent key) */
    REPL_REPLY_COUNT,  /* OK with one uint: entries written (PUT_ALL) or removed (CLEAR) */
};

/* Applies ops (all of region r; hash, key, value, event id filled in) as
 * primary and answers x's request, now or when the copies acknowledged.
 * A single op that is not primary here is answered REDIRECT; a batch that
 * meets a bucket it is not primary for (the map moved while it ran)
 * is answered UNAVAILABLE after applying the rest: the client retries
 * with the same event ids and the applied part is not applied again.
 * For CLEAR pass one op per bucket with kind REGION_OP_CLEAR and the
 * bucket in clear_buckets[i]; count is added to the reply's count. */
void repl_write(req_ctx *x, region_t *r, region_op *ops, size_t nops, const uint32_t *clear_buckets,
                int reply_kind, uint64_t count);

#endif
