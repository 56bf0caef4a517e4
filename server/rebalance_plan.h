/* rebalance_plan.h - the locator's rebalance planner: pure, no I/O, so
 * that it is unit-testable (docs/cluster.md, "Rebalance").
 *
 * Per region, over the members it is given: first bucket moves, so that
 * every member holds the same number of buckets give or take one (not for
 * REPLICATE regions, where every member holds every bucket), then primary
 * moves, so that every member is primary for the same number of buckets
 * give or take one. No member ever holds two copies of a bucket. A bucket
 * is left where it is while it is unsettled (a copy still initializing,
 * or a copy on a member not in the list), since its copies are changing.
 *
 * A bucket move from a member that is primary for the bucket carries the
 * primary with it (the executor hands the primary over to the new copy
 * before dropping the old one). Moves are meant to run in order: every
 * bucket move, then every primary move (a primary move may need the copy
 * a bucket move creates). */
#ifndef AGATE_SERVER_REBALANCE_PLAN_H
#define AGATE_SERVER_REBALANCE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "common/cmap.h"

enum rb_kind { RB_BUCKET_MOVE, RB_PRIMARY_MOVE };

typedef struct rb_move {
    char region[CMAP_NAME_MAX + 1];
    uint32_t bucket;
    uint32_t from, to; /* member ids */
    enum rb_kind kind;
} rb_move;

/* One member's share of a region. */
typedef struct rb_count {
    uint32_t member_id;
    uint32_t buckets, primaries;
} rb_count;

typedef struct rb_region {
    char name[CMAP_NAME_MAX + 1];
    uint32_t bucket_moves, primary_moves;
    size_t ncounts;   /* one per member given */
    rb_count *before; /* from the map planned on */
    rb_count *after;  /* once every move is done */
} rb_region;

typedef struct rb_plan {
    rb_move *moves; /* bucket moves first, then primary moves */
    size_t nmoves;
    rb_region *regions;
    size_t nregions;
    uint32_t bucket_moves, primary_moves;
} rb_plan;

/* Plans the rebalance of map m over the nmembers member ids in members
 * (ids not in m's view are ignored). Fills *out (release with
 * rebalance_plan_free). Returns 0 or -ENOMEM (then *out is empty). */
int rebalance_plan(const cmap_t *m, const uint32_t *members, size_t nmembers, rb_plan *out);
void rebalance_plan_free(rb_plan *p);

/* Each listed member's buckets and primaries of region r, into out[n]. */
void rebalance_counts(const cmap_region *r, const uint32_t *members, size_t n, rb_count *out);

#endif
