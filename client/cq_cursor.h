/* cq_cursor.h - a continuous query's per-bucket delivery cursor (internal).
 *
 * The client side of docs/query.md "Continuous queries": for every bucket
 * of the CQ's region, the seq of the last event handed to the application
 * or reported judged by a PROGRESS push. Members deliver each bucket in seq
 * order, but after a failover or a handoff the new primary replays its
 * journal, so the same event can come twice (from the old and the new
 * primary): anything at or below the cursor is a duplicate. A replay that
 * starts above the cursor means events in between are gone: a gap the
 * application must be told about.
 *
 * Pure bookkeeping (no I/O), so tests/unit/test_cq_cursor.c pins it. */
#ifndef AGATE_CLIENT_CQ_CURSOR_H
#define AGATE_CLIENT_CQ_CURSOR_H

#include <stdbool.h>
#include <stdint.h>

typedef struct cq_cursor {
    uint32_t nbuckets;
    uint64_t *last;  /* nbuckets seqs */
    uint32_t *cover; /* open only: how many members reported each bucket */
} cq_cursor;

/* Allocates the arrays for nbuckets (1..65536), all zero. Returns 0, or -1
 * when out of memory or nbuckets is out of range. */
int cq_cursor_init(cq_cursor *k, uint32_t nbuckets);
void cq_cursor_free(cq_cursor *k);

/* Open: a member reported it serves bucket b from head seq. Returns false
 * when b is not a bucket of the region. */
bool cq_cursor_head(cq_cursor *k, uint32_t b, uint64_t seq);
/* Open: -1 when every bucket was reported exactly once, else the first
 * bucket reported zero times or more than once. Resets the counts. */
long cq_cursor_uncovered(cq_cursor *k);

enum cq_verdict {
    CQ_DELIVER = 0,   /* new: hand it to the application (cursor moved) */
    CQ_DUPLICATE = 1, /* at or below the cursor: drop it */
    CQ_BAD_BUCKET = -1,
};
/* An event (bucket b, seq). */
int cq_cursor_event(cq_cursor *k, uint32_t b, uint64_t seq);
/* A REPLAY of bucket b: every event above complete_since follows. Returns
 * 1 when that leaves a gap (complete_since above the cursor: events after
 * the cursor up to complete_since may be lost), 0 when not, CQ_BAD_BUCKET. */
int cq_cursor_replay(cq_cursor *k, uint32_t b, uint64_t complete_since);
/* A PROGRESS: bucket b was judged up to seq. Raises the cursor only. */
int cq_cursor_progress(cq_cursor *k, uint32_t b, uint64_t seq);

#endif
