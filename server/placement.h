/* placement.h - where buckets live: the locator's pure placement rules.
 *
 * Works on a cluster map alone (no I/O), so it is unit-testable: drop
 * copies on members that left the view, promote a ready copy where the
 * primary is gone (new term), give empty buckets a primary, and add
 * initializing copies until each bucket has 1 + redundant_copies (every
 * member, for REPLICATE regions). Choices go to the member holding the
 * fewest buckets (then primaries) of that region, so load stays even and
 * no member holds two copies of one bucket. */
#ifndef AGATE_SERVER_PLACEMENT_H
#define AGATE_SERVER_PLACEMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/cmap.h"

typedef struct placement_report {
    uint32_t promoted;   /* primaries moved to a surviving copy */
    uint32_t added;      /* initializing copies created */
    uint32_t lost;       /* buckets with no surviving ready copy (data lost) */
    uint32_t dropped;    /* copies removed with their member */
} placement_report;

/* Repairs every region of m as described above; add_copies false skips
 * creating new copies (recovery delay). Returns true if m changed. */
bool placement_fix(cmap_t *m, bool add_copies, placement_report *rep);
/* Before member `leaving` goes: every bucket whose only ready copy is on
 * it gets an initializing copy on the least loaded other member (unless
 * one is already being filled). Returns how many copies were added;
 * *waiting is how many buckets still wait for a copy to become ready (a
 * bucket no other member can take is in neither count). */
uint32_t placement_cover_leaving(cmap_t *m, uint32_t leaving, uint32_t *waiting);
/* Whether region type t keeps every bucket on every member. */
bool placement_replicated(const char *type);
/* Buckets and primaries of region r held by member id. */
void placement_load(const cmap_region *r, uint32_t id, uint32_t *buckets, uint32_t *primaries);

#endif
